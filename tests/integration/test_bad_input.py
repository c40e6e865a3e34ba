"""Bad input over the daemon's real socket: each check sends something a
well-behaved client never would, asserts the daemon's answer, and then that
the daemon still serves.  The same checks run once more against a daemon
under valgrind, which must report no leak and no error afterwards."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import api_pb2
from h2client import H2Client, grpc_frame

VERSION = "/runtime.v1.RuntimeService/Version"
STATUS = "/runtime.v1.RuntimeService/Status"


def assert_serving(sock, timeout=15.0):
    c = H2Client(sock, timeout=timeout)
    try:
        s = c.call(VERSION, api_pb2.VersionRequest(version="v1").SerializeToString())
        assert s.grpc_status == 0, (s.headers, s.trailers)
        (msg,) = s.messages()
        assert api_pb2.VersionResponse.FromString(msg).runtime_name == "hpcri"
    finally:
        c.close()


def check_garbage_preface(sock):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sock)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(512))
    # the server drops the connection (maybe after a GOAWAY)
    got = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    assert_serving(sock)


def check_truncated_message(sock):
    c = H2Client(sock)
    sid = c.start(VERSION)
    c.send(sid, grpc_frame(b"\x0a\x02v1", length=100))  # prefix promises 100 bytes
    s = c.wait(sid)
    assert s.grpc_status not in (None, 0), (s.headers, s.trailers)
    c.close()
    assert_serving(sock)


def check_garbage_protobuf(sock):
    c = H2Client(sock)
    s = c.call(VERSION, b"\x0a\xff\xff\xff\xff\x0f")
    assert s.grpc_status == 3, (s.headers, s.trailers)  # INVALID_ARGUMENT
    assert "VersionRequest" in s.grpc_message
    c.close()
    assert_serving(sock)


def check_oversized_message(sock):
    c = H2Client(sock)
    sid = c.start(VERSION)
    c.send(sid, grpc_frame(b"", length=16 * 1024 * 1024 + 1), end_stream=False)
    s = c.wait(sid, timeout=10)
    assert s.grpc_status == 8, (s.headers, s.trailers)  # RESOURCE_EXHAUSTED
    c.close()
    assert_serving(sock)


def check_unknown_method(sock):
    c = H2Client(sock)
    s = c.call("/runtime.v1.RuntimeService/NoSuchCall")
    assert s.grpc_status == 12, (s.headers, s.trailers)  # UNIMPLEMENTED
    assert "NoSuchCall" in s.grpc_message
    c.close()


def check_wrong_content_type(sock):
    c = H2Client(sock)
    sid = c.start(VERSION, content_type="text/plain")
    c.send(sid, b"hello")
    s = c.wait(sid)
    assert s.http_status == 415, s.headers
    c.close()
    assert_serving(sock)


def check_client_killed_mid_stream(sock):
    script = (
        "import sys; sys.path.insert(0, %r)\n"
        "from h2client import H2Client, grpc_frame\n"
        "c = H2Client(%r)\n"
        "sid = c.start(%r)\n"
        "c.send(sid, grpc_frame(b'', length=1000)[:5] + b'\\x08' * 10, end_stream=False)\n"
        "print('ready', flush=True)\n"
        "import time; time.sleep(60)\n"
    ) % (os.path.dirname(os.path.abspath(__file__)), sock, STATUS)
    p = subprocess.Popen(["/usr/bin/python3", "-c", script], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert_serving(sock)


def check_reset_mid_call(sock):
    c = H2Client(sock)
    sid = c.start(STATUS)
    c.send(sid, grpc_frame(b"", length=10)[:5] + b"\x08", end_stream=False)
    c.reset(sid)
    s = c.call(VERSION)  # same connection keeps working
    assert s.grpc_status == 0
    c.close()


def check_50_concurrent_streams(sock):
    c = H2Client(sock)
    sids = [c.start(VERSION) for _ in range(50)]
    for sid in sids:
        c.send(sid, grpc_frame(api_pb2.VersionRequest(version="v1").SerializeToString()))
    streams = c.wait(*sids, timeout=30)
    assert all(s.grpc_status == 0 for s in streams), [s.trailers for s in streams]
    names = {api_pb2.VersionResponse.FromString(s.messages()[0]).runtime_name for s in streams}
    assert names == {"hpcri"}
    c.close()


def check_200_connections_dropped(sock):
    for i in range(200):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        if i % 2:
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")  # half a handshake
        s.close()
    assert_serving(sock)


CHECKS = [check_garbage_preface, check_truncated_message, check_garbage_protobuf,
          check_oversized_message, check_unknown_method, check_wrong_content_type,
          check_client_killed_mid_stream, check_reset_mid_call, check_50_concurrent_streams,
          check_200_connections_dropped]


@pytest.mark.parametrize("check", CHECKS, ids=[c.__name__[6:] for c in CHECKS])
def test_bad_input(daemon, check):
    check(daemon.socket)
    assert daemon.proc.poll() is None


@pytest.mark.valgrind
@pytest.mark.slow
def test_bad_input_under_valgrind(daemon_factory, tmp_path):
    vlog = str(tmp_path / "valgrind.log")
    d = daemon_factory(wrapper=["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
                                "--error-exitcode=99", "--log-file=" + vlog], start=False)
    d.start(timeout=120)
    for check in CHECKS:
        check(d.socket)
    rc = d.stop(signal.SIGTERM, timeout=120)
    with open(vlog) as f:
        report = f.read()
    assert rc == 0, report[-4000:]
    assert "ERROR SUMMARY: 0 errors" in report, report[-4000:]
    assert "definitely lost: 0 bytes" in report or "no leaks are possible" in report, \
        report[-4000:]
