"""The image helper process (src/image/helper.h): the daemon links no image
libraries, kills the helper of a cancelled pull, and records nothing when the
helper crashes, fails or reports an image that is not there.

Fake helpers (Python scripts given as $HPCRI_IMAGE_HELPER) play the
misbehaving helper; the real one is exercised by test_images.py.
"""
import json
import os
import signal
import subprocess
import time

import grpc
import pytest

from conftest import BUILD, Cri, api_pb2

FAKE = """#!/usr/bin/python3
import json, os, signal, sys, time
req = json.load(sys.stdin)
with open(%(pidfile)r, "w") as f:
    f.write("%%d %%s" %% (os.getpid(), req["op"]))
def out(m):
    sys.stdout.write(json.dumps(m) + "\\n")
    sys.stdout.flush()
out({"progress": {"phase": 1, "layer_digest": None, "layer_index": 0, "layer_count": 1,
                  "layers_done": 0, "bytes_done": 10, "bytes_total": 100}})
mode = %(mode)r
if mode == "hang":
    time.sleep(300)
elif mode == "crash":
    os.kill(os.getpid(), signal.SIGSEGV)
elif mode == "lie":
    cfg = '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%(z)s"]}}'
    import hashlib
    out({"image": {"id": "sha256:" + hashlib.sha256(cfg.encode()).hexdigest(),
                   "config_json": cfg, "layers": [{"digest": "sha256:%(z)s", "size": 1}],
                   "repo_tags": ["docker.io/library/lie:latest"], "repo_digest": None,
                   "size": 2}})
elif mode == "fail":
    out({"error": {"code": 5, "msg": "no such image (fake)"}})
    sys.exit(1)
elif mode == "garbage":
    sys.stdout.write("this is not json\\n")
    sys.stdout.flush()
    time.sleep(300)
"""


def fake_helper(tmp_path, mode):
    path = str(tmp_path / ("helper-" + mode))
    pidfile = str(tmp_path / ("helper-" + mode + ".pid"))
    with open(path, "w") as f:
        f.write(FAKE % {"pidfile": pidfile, "mode": mode, "z": "0" * 64})
    os.chmod(path, 0o755)
    return path, pidfile


def start(daemon_factory, tmp_path, mode):
    helper, pidfile = fake_helper(tmp_path, mode)
    d = daemon_factory(env={"HPCRI_IMAGE_HELPER": helper})
    return d, Cri(d.socket), pidfile


def pull_req(image):
    return api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image))


def wait_pid(pidfile, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(pidfile) as f:
                text = f.read()
            if text:
                return int(text.split()[0])
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise AssertionError("fake helper did not start")


def gone(pid, timeout=10):
    """True once pid no longer exists at all (killed and reaped: no zombie)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists("/proc/%d" % pid):
            return True
        time.sleep(0.02)
    return False


def serves_on(d, c):
    assert d.proc.poll() is None
    assert c.Version().runtime_name == "hpcri"
    assert len(c.ListImages().images) == 0


def test_daemon_links_no_image_libraries():
    out = subprocess.run(["ldd", os.path.join(BUILD, "hpcri")], capture_output=True, text=True,
                         check=True).stdout
    for lib in ("libcurl", "libarchive", "libcrypto", "libssl", "libgnutls", "libxml2"):
        assert lib not in out, out
    helper = os.path.join(BUILD, "hpcri-image")
    assert os.access(helper, os.X_OK)
    hout = subprocess.run(["ldd", helper], capture_output=True, text=True, check=True).stdout
    assert "libcurl" in hout and "libarchive" in hout


def test_helper_refuses_a_terminal_or_arguments():
    res = subprocess.run([os.path.join(BUILD, "hpcri-image"), "--help"], capture_output=True,
                         text=True, stdin=subprocess.DEVNULL)
    assert res.returncode == 2 and "image helper" in res.stderr


def test_deadline_kills_and_reaps_the_helper(daemon_factory, tmp_path):
    d, c, pidfile = start(daemon_factory, tmp_path, "hang")
    with pytest.raises(grpc.RpcError) as e:
        c.PullImage(pull_req("example.invalid/x:1"), timeout=1.5)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    pid = wait_pid(pidfile)
    assert gone(pid), "helper %d still exists after the deadline" % pid
    deadline = time.monotonic() + 10
    while "killed: the call was cancelled" not in d.read_log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "image helper pid %d killed: the call was cancelled" % pid in d.read_log()
    serves_on(d, c)
    c.close()


def test_cancelled_admin_pull_kills_the_helper(daemon_factory, tmp_path):
    import hpcri_pb2  # noqa: F401  (build/py; registers the admin messages)
    d, c, pidfile = start(daemon_factory, tmp_path, "hang")
    stream = c.channel.unary_stream(
        "/hpcri.v1.Admin/PullImage", request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=lambda b: b)(pull_req("example.invalid/x:1"), timeout=60)
    first = next(stream)  # the helper's progress report came through
    assert first
    pid = wait_pid(pidfile)
    stream.cancel()
    assert gone(pid), "helper %d still exists after the cancel" % pid
    serves_on(d, c)
    c.close()


def test_crashing_helper_records_nothing(daemon_factory, tmp_path):
    d, c, pidfile = start(daemon_factory, tmp_path, "crash")
    with pytest.raises(grpc.RpcError) as e:
        c.PullImage(pull_req("example.invalid/x:1"), timeout=30)
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert "killed by signal %d" % signal.SIGSEGV in e.value.details()
    assert gone(wait_pid(pidfile))
    serves_on(d, c)
    # the marker of a running op is gone again: nothing to collect at restart
    assert not os.path.exists(os.path.join(d.root, "images", "unsynced"))
    c.close()


def test_helper_reporting_a_missing_image_records_nothing(daemon_factory, tmp_path):
    d, c, _ = start(daemon_factory, tmp_path, "lie")
    with pytest.raises(grpc.RpcError) as e:
        c.PullImage(pull_req("lie"), timeout=30)
    assert e.value.code() == grpc.StatusCode.DATA_LOSS
    assert "is not stored" in e.value.details()
    serves_on(d, c)
    c.close()


def test_helper_error_is_the_calls_error(daemon_factory, tmp_path):
    d, c, _ = start(daemon_factory, tmp_path, "fail")
    with pytest.raises(grpc.RpcError) as e:
        c.PullImage(pull_req("example.invalid/x:1"), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no such image (fake)" in e.value.details()
    serves_on(d, c)
    c.close()


def test_garbage_output_kills_the_helper(daemon_factory, tmp_path):
    d, c, pidfile = start(daemon_factory, tmp_path, "garbage")
    with pytest.raises(grpc.RpcError) as e:
        c.PullImage(pull_req("example.invalid/x:1"), timeout=30)
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert "unexpected output" in e.value.details()
    assert gone(wait_pid(pidfile))
    serves_on(d, c)
    c.close()


def test_import_runs_in_the_helper(daemon_factory, tmp_path):
    import hpcri_pb2
    d, c, pidfile = start(daemon_factory, tmp_path, "fail")
    with pytest.raises(grpc.RpcError) as e:
        c.channel.unary_unary(
            "/hpcri.v1.Admin/ImportImage", request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=hpcri_pb2.ImportImageResponse.FromString)(
            hpcri_pb2.ImportImageRequest(path=str(tmp_path / "nope.tar")), timeout=30)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with open(pidfile) as f:
        assert f.read().split()[1] == "import"
    serves_on(d, c)
    c.close()


def test_missing_helper_is_an_error_not_a_crash(daemon_factory, tmp_path):
    d = daemon_factory(env={"HPCRI_IMAGE_HELPER": str(tmp_path / "no-such-helper")})
    c = Cri(d.socket)
    with pytest.raises(grpc.RpcError) as e:
        c.PullImage(pull_req("example.invalid/x:1"), timeout=30)
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert "cannot run image helper" in e.value.details()
    serves_on(d, c)
    c.close()
