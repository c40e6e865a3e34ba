"""Runs each libFuzzer target for a short bounded time (CI smoke run).

A crash, a sanitizer report, or (for the layer applier) any write outside the
unpack root makes the fuzzer exit non-zero.  FUZZ_SECONDS sets the budget."""
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECONDS = int(os.environ.get("FUZZ_SECONDS", "20"))


@pytest.mark.parametrize("target", ["fuzz_unpack", "fuzz_manifest"])
def test_fuzz_target_bounded(target, tmp_path):
    if os.environ.get("HPCRI_BUILD", "build") != "build":
        pytest.skip("fuzzers run once, in the plain pass")
    subprocess.run(["make", "-s", "build/fuzz/" + target], cwd=REPO, check=True)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    res = subprocess.run([os.path.join(REPO, "build", "fuzz", target),
                          "-max_total_time=%d" % SECONDS, "-max_len=65536", "-rss_limit_mb=1024",
                          str(corpus)], cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=SECONDS + 120)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "Done" in res.stderr, res.stderr[-2000:]
