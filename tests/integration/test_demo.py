"""README's first command ends in `make demo`: the demo must really start the
daemon on its embedded defaults, import an image, run a pod, and show its
logs and an exec."""
import os
import subprocess

from conftest import REPO, sanitizer_report


def test_demo_runs_a_pod_end_to_end():
    if os.getuid() != 0:
        import pytest
        pytest.skip("the demo uses the root defaults (/run/hpcri)")
    env = dict(os.environ, HPCRI_DEMO_EXIT="1")
    res = subprocess.run([os.path.join(REPO, "scripts", "demo.sh")], capture_output=True,
                         text=True, timeout=300, env=env, cwd=REPO)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "runtime_name" in out or "hpcri" in out
    assert "Imported sha256:" in out
    assert "hello from an hpcri pod, tick 1" in out
    assert "inside the container: hpcri-demo" in out
    assert "hpcri stopped" in out  # clean shutdown at the end
    assert sanitizer_report(out) is None, out[-4000:]
