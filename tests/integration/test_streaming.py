"""Exec, Attach and PortForward end to end: the CRI call hands out a URL, a
SPDY/3.1 client (tests/integration/spdy_client.py, speaking what the kubelet
and crictl speak) connects to the daemon's streaming server, and the process
runs in a real runc container under conmon."""
import os
import signal
import socket
import threading
import time

import grpc
import pytest

from conftest import api_pb2
from spdy_client import UpgradeError, Session, port_forward, remote_command
from test_lifecycle import ctr_config, env, pod_config, registry, run, wait_exited  # noqa: F401


def code_of(fn, *a, **kw):
    with pytest.raises(grpc.RpcError) as e:
        fn(*a, **kw)
    return e.value.code(), e.value.details()


def test_exec_separate_streams_and_exit_code(env):
    c = env["c"]
    _, cid = run(env, "ex1", "c", ["sleep", "1000"])
    url = c.Exec(container_id=cid, cmd=["sh", "-c", "echo out; echo err >&2; exit 3"],
                 stdout=True, stderr=True).url
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    r = remote_command(url)
    assert r.protocol == "v4.channel.k8s.io"
    assert (r.stdout, r.stderr) == (b"out\n", b"err\n")
    assert r.status["reason"] == "NonZeroExitCode" and r.exit_code == 3
    r = remote_command(c.Exec(container_id=cid, cmd=["sh", "-c", "true"], stdout=True).url, stderr=False)
    assert r.status == {"metadata": {}, "status": "Success"} and r.exit_code == 0


def test_exec_stdin_megabyte_and_eof(env):
    c = env["c"]
    _, cid = run(env, "ex2", "c", ["sleep", "1000"])
    payload = os.urandom(1 << 20)
    r = remote_command(c.Exec(container_id=cid, cmd=["sh", "-c", "cat"], stdin=True, stdout=True,
                              stderr=True).url, stdin=payload)
    assert r.exit_code == 0
    assert r.stdout == payload
    # EOF reaches the process: wc only answers once its stdin closed
    r = remote_command(c.Exec(container_id=cid, cmd=["sh", "-c", "wc -c"], stdin=True, stdout=True).url,
                       stdin=b"x" * 12345, stderr=False)
    assert r.stdout.strip() == b"12345"


def test_exec_tty_and_resize(env):
    c = env["c"]
    _, cid = run(env, "ex3", "c", ["sleep", "1000"])
    url = c.Exec(container_id=cid, cmd=["sh", "-c", "stty size; tty"], tty=True,
                 stdout=True).url
    r = remote_command(url, tty=True, resize=(100, 40))
    assert r.exit_code == 0, r.error
    lines = r.stdout.decode().split("\r\n")
    assert lines[0] == "40 100", r.stdout
    assert lines[1].startswith("/dev/pts/"), r.stdout


def test_exec_older_protocol_reports_failure_as_text(env):
    c = env["c"]
    _, cid = run(env, "ex4", "c", ["sleep", "1000"])
    url = c.Exec(container_id=cid, cmd=["sh", "-c", "echo v3; exit 3"], stdout=True).url
    r = remote_command(url, stderr=False, protocols=("v3.channel.k8s.io",))
    assert r.protocol == "v3.channel.k8s.io" and r.stdout == b"v3\n"
    assert b"exit code: 3" in r.error
    url = c.Exec(container_id=cid, cmd=["sh", "-c", "true"], stdout=True).url
    r = remote_command(url, stderr=False, protocols=("v2.channel.k8s.io",))
    assert r.error == b""


def test_client_leaving_ends_the_exec_process(env):
    c = env["c"]
    _, cid = run(env, "ex6", "c", ["sleep", "1000"])
    url = c.Exec(container_id=cid, cmd=["sh", "-c", "sleep 777"], stdout=True).url
    s = Session(url, ("v4.channel.k8s.io",))
    s.open([("streamtype", "error")])
    s.open([("streamtype", "stdout")])
    deadline = time.monotonic() + 10
    ps = b""
    while time.monotonic() < deadline:
        ps = c.ExecSync(container_id=cid, cmd=["sh", "-c", "ps"], timeout=10).stdout
        if b"sleep 777" in ps:
            break
        time.sleep(0.1)
    assert b"sleep 777" in ps
    s.close()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and b"sleep 777" in ps:
        time.sleep(0.2)
        ps = c.ExecSync(container_id=cid, cmd=["sh", "-c", "ps"], timeout=10).stdout
    assert b"sleep 777" not in ps


def test_tokens_are_single_use_and_negotiation_is_checked(env):
    c = env["c"]
    _, cid = run(env, "tok", "c", ["sleep", "1000"])
    url = c.Exec(container_id=cid, cmd=["sh", "-c", "true"], stdout=True).url
    remote_command(url, stderr=False)
    with pytest.raises(UpgradeError) as e:
        remote_command(url, stderr=False)
    assert e.value.status == 404
    base = url.rsplit("/", 1)[0]
    with pytest.raises(UpgradeError) as e:
        remote_command(base + "/AAAAAAAAAAAAAAAA", stderr=False)
    assert e.value.status == 404
    url = c.Exec(container_id=cid, cmd=["sh", "-c", "true"], stdout=True).url
    with pytest.raises(UpgradeError) as e:
        remote_command(url, stderr=False, protocols=("v99.channel.k8s.io",))
    assert e.value.status == 403 and "v4.channel.k8s.io" in e.value.body
    # a plain GET without the upgrade
    url = c.Exec(container_id=cid, cmd=["sh", "-c", "true"], stdout=True).url
    host, port = url.split("/")[2].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as so:
        so.sendall(("GET /%s HTTP/1.1\r\nHost: x\r\n\r\n" % url.split("/", 3)[3]).encode())
        assert so.recv(100).startswith(b"HTTP/1.1 400")


def test_bad_stream_requests(env):
    c = env["c"]
    pod, cid = run(env, "bad", "c", ["sleep", "1000"])
    assert code_of(c.Exec, container_id="nope", cmd=["sh", "-c", "true"], stdout=True)[0] == \
        grpc.StatusCode.NOT_FOUND
    assert code_of(c.Exec, container_id=cid, cmd=[], stdout=True)[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    code, msg = code_of(c.Exec, container_id=cid, cmd=["sh", "-c", "true"], tty=True, stdout=True,
                        stderr=True)
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "tty" in msg
    code, msg = code_of(c.Exec, container_id=cid, cmd=["sh", "-c", "true"])
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "stdin" in msg
    code, msg = code_of(c.Attach, container_id=cid, stdin=True, stdout=True)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "stdin" in msg
    assert code_of(c.PortForward, pod_sandbox_id="nope", port=[80])[0] == \
        grpc.StatusCode.NOT_FOUND
    assert code_of(c.PortForward, pod_sandbox_id=pod, port=[70000])[0] == \
        grpc.StatusCode.INVALID_ARGUMENT
    # a container that exited, a pod that stopped
    _, done = run(env, "bad2", "c", ["sh", "-c", "exit 0"])
    wait_exited(c, done)
    code, msg = code_of(c.Exec, container_id=done, cmd=["sh", "-c", "true"], stdout=True)
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "not running" in msg
    c.StopPodSandbox(pod_sandbox_id=pod, timeout=60)
    assert code_of(c.PortForward, pod_sandbox_id=pod, port=[80])[0] == \
        grpc.StatusCode.FAILED_PRECONDITION


def test_attach_stdin_output_and_exit(env):
    c = env["c"]
    script = 'while read l; do [ "$l" = quit ] && exit 4; echo "got $l"; done'
    _, cid = run(env, "att", "c", ["sh", "-c", script], stdin=True)
    url = c.Attach(container_id=cid, stdin=True, stdout=True, stderr=True).url
    assert "/attach/" in url
    r = remote_command(url, stdin=b"hello\nquit\n", close_stdin=False)
    assert b"got hello" in r.stdout
    assert r.exit_code == 4, r.error
    st = wait_exited(c, cid)
    assert st.exit_code == 4


def echo_pod(env, name, **pod_kw):
    c = env["c"]
    pc = pod_config(env, name)
    for k, v in pod_kw.items():
        setattr(pc, k, v) if not hasattr(v, "CopyFrom") else getattr(pc, k).CopyFrom(v)
    pod = c.RunPodSandbox(config=pc, timeout=60).pod_sandbox_id
    cid = c.CreateContainer(pod_sandbox_id=pod, config=ctr_config(
        env, "echo", ["sh", "-c", "nc -ll -p 8080 -e cat"]), sandbox_config=pc,
        timeout=60).container_id
    c.StartContainer(container_id=cid, timeout=60)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = c.ExecSync(container_id=cid, cmd=["sh", "-c", "netstat -ltn"], timeout=10).stdout
        if b":8080" in out:
            return pod
        time.sleep(0.1)
    raise AssertionError("the echo server did not listen")


def test_port_forward_into_the_pod_network_namespace(env):
    c = env["c"]
    pod = echo_pod(env, "pf")
    url = c.PortForward(pod_sandbox_id=pod, port=[8080]).url
    assert "/portforward/" in url
    got = port_forward(url, 8080, [b"first\n", b"second" * 10000])
    assert got[0] == (b"first\n", b"")
    assert got[1] == (b"second" * 10000, b"")
    # the daemon's own network has nothing on 8080, the pod's does: and a port
    # nobody listens on is reported on the error stream
    url = c.PortForward(pod_sandbox_id=pod).url
    (data, error), = port_forward(url, 8081, [b"x"])
    assert data == b"" and b"refused" in error.lower()
    url = c.PortForward(pod_sandbox_id=pod, port=[8080]).url
    (data, error), = port_forward(url, 9090, [b"x"])
    assert b"not requested" in error


def test_port_forward_host_network_pod(env):
    c = env["c"]
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    port = srv.getsockname()[1]

    def serve():
        conn, _ = srv.accept()
        data = b""
        while True:
            b = conn.recv(4096)
            if not b:
                break
            data += b
        conn.sendall(b"host saw " + data)
        conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    pc = pod_config(env, "pfhost")
    pc.linux.security_context.namespace_options.network = api_pb2.NODE
    pod = c.RunPodSandbox(config=pc, timeout=60).pod_sandbox_id
    url = c.PortForward(pod_sandbox_id=pod, port=[port]).url
    (data, error), = port_forward(url, port, [b"ping"])
    assert (data, error) == (b"host saw ping", b"")
    t.join(5)
    srv.close()


@pytest.mark.valgrind
@pytest.mark.slow
def test_streaming_under_valgrind(registry, daemon_factory, tmp_path):  # noqa: F811
    if os.getuid() != 0:
        pytest.skip("needs root (runc containers)")
    vlog = str(tmp_path / "valgrind.log")
    conf = tmp_path / "hpcri.conf"
    conf.write_text('[registry "%s"]\ninsecure = true\n\n[runtime]\ntype = oci\n'
                    'runtime_path = runc\n' % registry["host"])
    d = daemon_factory(config=str(conf), sub="d", start=False, wrapper=[
        "valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
        "--error-exitcode=99", "--trace-children=no", "--log-file=" + vlog])
    d.start(timeout=120)
    from conftest import Cri
    c = Cri(d.socket)
    image = registry["host"] + "/test/busybox:latest"
    c.PullImage(image=api_pb2.ImageSpec(image=image), timeout=300)
    e = {"c": c, "image": image, "logs": str(tmp_path / "logs")}
    script = 'while read l; do echo "got $l"; done'
    pod, cid = run(e, "vg", "c", ["sh", "-c", script], stdin=True)
    nc = c.CreateContainer(pod_sandbox_id=pod, config=ctr_config(
        e, "echo", ["sh", "-c", "nc -ll -p 8080 -e cat"]), sandbox_config=pod_config(e, "vg"),
        timeout=60).container_id
    c.StartContainer(container_id=nc, timeout=60)
    r = remote_command(c.Exec(container_id=cid, cmd=["sh", "-c", "cat; exit 3"], stdin=True,
                              stdout=True, stderr=True, timeout=60).url, stdin=b"abc" * 1000,
                       timeout=60)
    assert (r.stdout, r.exit_code) == (b"abc" * 1000, 3)
    r = remote_command(c.Exec(container_id=cid, cmd=["sh", "-c", "stty size"], tty=True,
                              stdout=True, timeout=60).url, tty=True, resize=(80, 25), timeout=60)
    assert r.stdout.strip() == b"25 80"
    url = c.Attach(container_id=cid, stdin=True, stdout=True, timeout=60).url
    s = Session(url, ("v4.channel.k8s.io",), timeout=60)
    s.open([("streamtype", "error")])
    sin = s.open([("streamtype", "stdin")])
    sout = s.open([("streamtype", "stdout")])
    s.send(sin, b"valgrind\n")
    assert s.until(lambda: b"got valgrind" in s.data.get(sout, b""))
    s.close()
    deadline = time.monotonic() + 60
    got = None
    while time.monotonic() < deadline:
        url = c.PortForward(pod_sandbox_id=pod, port=[8080], timeout=60).url
        got = port_forward(url, 8080, [b"pf\n"], timeout=60)
        if got[0][0] == b"pf\n":
            break
        time.sleep(0.5)
    assert got[0] == (b"pf\n", b"")
    with pytest.raises(UpgradeError):
        remote_command(url.rsplit("/", 1)[0] + "/AAAAAAAAAAAAAAAA", stderr=False)
    c.RemovePodSandbox(pod_sandbox_id=pod, timeout=120)
    c.close()
    rc = d.stop(signal.SIGTERM, timeout=120)
    with open(vlog) as f:
        report = f.read()
    assert rc == 0, report[-4000:]
    assert "ERROR SUMMARY: 0 errors" in report, report[-4000:]
    assert "definitely lost: 0 bytes" in report or "no leaks are possible" in report, \
        report[-4000:]
