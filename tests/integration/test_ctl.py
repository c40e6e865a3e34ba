"""hpcri-ctl: the C gRPC client (src/ctl/client.c) and the crictl-like tool.

Two kinds of peers:
  * the real daemon (`daemon` fixture from conftest.py);
  * `fake`, an in-process python3-grpcio server with scripted handlers, to
    exercise client paths the daemon cannot yet produce (percent-encoded status
    messages, deadlines, streams, big messages, concurrent calls) and to check
    exactly what hpcri-ctl sends (JSON config -> protobuf request).
"""
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from concurrent import futures

import grpc
import pytest

import api_pb2
from conftest import BUILD, sanitizer_report

CTL = os.environ.get("HPCRI_CTL", os.path.join(BUILD, "hpcri-ctl"))
RT = "/runtime.v1.RuntimeService/"
IMG = "/runtime.v1.ImageService/"


def ctl(socket, *args, timeout=30, env=None, check=None):
    """Run hpcri-ctl; returns CompletedProcess (text). check=rc asserts the exit code."""
    e = dict(os.environ)
    e.pop("HPCRI_SOCKET", None)
    if env:
        e.update(env)
    argv = [CTL] + (["--socket", socket] if socket else []) + list(args)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=e)
    assert sanitizer_report(res.stderr) is None, res.stderr
    if check is not None:
        assert res.returncode == check, "%s -> %d\nstdout:%s\nstderr:%s" % (
            argv, res.returncode, res.stdout, res.stderr)
    return res


# --------------------------------------------------------------------------
# Against the real daemon
# --------------------------------------------------------------------------

def test_version(daemon):
    res = ctl(daemon.socket, "version", check=0)
    lines = dict(l.split(":", 1) for l in res.stdout.strip().splitlines())
    assert lines["RuntimeName"].strip() == "hpcri"
    assert lines["RuntimeApiVersion"].strip() == "v1"
    assert lines["RuntimeVersion"].strip() != ""


def test_version_json(daemon):
    doc = json.loads(ctl(daemon.socket, "-o", "json", "version", check=0).stdout)
    assert doc["runtimeName"] == "hpcri"
    assert doc["runtimeApiVersion"] == "v1"


def test_socket_from_environment(daemon):
    res = ctl(None, "version", env={"HPCRI_SOCKET": daemon.socket}, check=0)
    assert "RuntimeName:  hpcri" in res.stdout


def test_info_shows_runtime_ready_condition(daemon):
    doc = json.loads(ctl(daemon.socket, "info", check=0).stdout)
    types = [c["type"] for c in doc["status"]["conditions"]]
    assert "RuntimeReady" in types
    assert "NetworkReady" in types


def test_images_empty_store(daemon):
    res = ctl(daemon.socket, "images", check=0)
    lines = res.stdout.splitlines()
    assert len(lines) == 1 and lines[0].split()[:2] == ["IMAGE", "TAG"]
    assert ctl(daemon.socket, "images", "-q", check=0).stdout == ""
    assert json.loads(ctl(daemon.socket, "images", "-o", "json", check=0).stdout) == {}


def test_imagefsinfo(daemon):
    res = ctl(daemon.socket, "imagefsinfo", check=0)
    rows = [l.split() for l in res.stdout.splitlines()[1:]]
    assert rows and rows[0][0] == "image"
    assert rows[0][1].startswith(daemon.root)


def test_pods_and_ps_empty(daemon):
    for cmd in (["pods"], ["ps"], ["ps", "-a"]):
        res = ctl(daemon.socket, *cmd, check=0)
        assert len(res.stdout.splitlines()) == 1, res.stdout
        assert ctl(daemon.socket, *cmd, "-q", check=0).stdout == ""
    assert res.stdout.split()[0] == "CONTAINER"


def test_raw_unknown_method_is_unimplemented(daemon):
    res = ctl(daemon.socket, "raw", RT + "Bogus", check=1)
    assert res.stderr.startswith("hpcri-ctl: UNIMPLEMENTED: "), res.stderr
    assert res.stdout == ""


def test_raw_known_method(daemon):
    res = ctl(daemon.socket, "raw", RT + "Version", check=0)
    assert res.stdout.startswith("OK (") and "bytes" in res.stdout


def test_concurrent_calls_on_one_connection_daemon(daemon):
    res = ctl(daemon.socket, "raw", "--parallel", "50", RT + "Version", check=0)
    assert "OK (50 concurrent calls)" in res.stdout


def test_wrong_socket_is_a_clear_error(tmp_path):
    sock = str(tmp_path / "nope.sock")
    res = ctl(sock, "version", check=1)
    assert res.stderr.startswith("hpcri-ctl: UNAVAILABLE: cannot connect to %s" % sock), res.stderr
    assert "No such file or directory" in res.stderr


def test_socket_that_refuses(tmp_path):
    import socket as so
    path = str(tmp_path / "dead.sock")
    s = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    s.bind(path)
    s.close()  # a socket file nobody listens on
    res = ctl(path, "pods", check=1)
    assert "UNAVAILABLE" in res.stderr and "Connection refused" in res.stderr


def test_usage_errors(daemon):
    res = ctl(daemon.socket, "frobnicate", check=1)
    assert "INVALID_ARGUMENT" in res.stderr and "frobnicate" in res.stderr
    res = ctl(daemon.socket, "--timeout", "soon", "version", check=1)
    assert "INVALID_ARGUMENT" in res.stderr and "--timeout" in res.stderr
    res = ctl(daemon.socket, "inspect", check=1)
    assert "usage: hpcri-ctl inspect" in res.stderr
    res = ctl(daemon.socket, "-o", "yaml", "pods", check=1)
    assert "unknown output format" in res.stderr


def test_not_found_keeps_its_code(daemon):
    res = ctl(daemon.socket, "inspect", "0123abcd", check=1)
    assert res.stderr.startswith("hpcri-ctl: NOT_FOUND: "), res.stderr
    res = ctl(daemon.socket, "inspecti", "docker.io/library/nothere:1", check=1)
    assert res.stderr.startswith("hpcri-ctl: NOT_FOUND: "), res.stderr


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
@pytest.mark.skipif("asan" in BUILD, reason="valgrind cannot run sanitizer builds")
def test_ctl_valgrind_clean(daemon):
    plain = os.path.join(BUILD, "hpcri-ctl")
    for cmd in (["info"], ["ps", "-a", "-o", "json"], ["raw", RT + "Bogus"]):
        res = subprocess.run(["valgrind", "-q", "--leak-check=full", "--errors-for-leak-kinds=all",
                              "--error-exitcode=99", plain, "--socket", daemon.socket] + cmd,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode in (0, 1), res.stderr
        assert "==" not in res.stderr, res.stderr


# --------------------------------------------------------------------------
# Against a scripted python3-grpcio server
# --------------------------------------------------------------------------

class Fake:
    """grpcio server on a unix socket. `unary[name] = fn(req_bytes, ctx) -> bytes`,
    `stream[name] = fn(req_bytes, ctx) -> iterator of bytes`; every call is
    recorded in `calls` as (method_path, request_bytes, time_remaining)."""

    def __init__(self, path):
        self.socket = path
        self.unary = {}
        self.stream = {}
        self.calls = []
        fake = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                name = details.method.rsplit("/", 1)[1]
                if name in fake.stream:
                    def run_stream(req, ctx, name=name, path=details.method):
                        fake.calls.append((path, req, ctx.time_remaining()))
                        yield from fake.stream[name](req, ctx)
                    return grpc.unary_stream_rpc_method_handler(run_stream)

                def run(req, ctx, name=name, path=details.method):
                    fake.calls.append((path, req, ctx.time_remaining()))
                    if name not in fake.unary:
                        ctx.abort(grpc.StatusCode.UNIMPLEMENTED, "fake: no " + name)
                    return fake.unary[name](req, ctx)
                return grpc.unary_unary_rpc_method_handler(run)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        self.server.add_generic_rpc_handlers([Handler()])
        self.server.add_insecure_port("unix:" + path)
        self.server.start()

    def requests(self, name):
        return [r for (m, r, _) in self.calls if m.endswith("/" + name)]


@pytest.fixture
def fake(tmp_path):
    f = Fake(str(tmp_path / "fake.sock"))
    yield f
    f.server.stop(0)


def test_status_message_is_percent_decoded(fake):
    text = 'pod "x" not found: 100% gone\nline two, caf\u00e9'

    def fail(req, ctx):
        ctx.abort(grpc.StatusCode.NOT_FOUND, text)
    fake.unary["Fail"] = fail
    res = ctl(fake.socket, "raw", "/x.Y/Fail", check=1)
    assert res.stderr == "hpcri-ctl: NOT_FOUND: %s\n" % text


def test_request_and_response_bytes_roundtrip(fake):
    fake.unary["Echo"] = lambda req, ctx: req[::-1]
    res = ctl(fake.socket, "raw", "-d", "hello world", "--print", "/x.Y/Echo", check=0)
    assert res.stdout == "dlrow olleh"
    assert fake.requests("Echo") == [b"hello world"]


def test_empty_response_message(fake):
    fake.unary["Empty"] = lambda req, ctx: b""
    assert ctl(fake.socket, "raw", "/x.Y/Empty", check=0).stdout == "OK (0 bytes)\n"


def test_large_response(fake):
    blob = bytes(range(256)) * (6 * 4096)  # 6 MiB
    fake.unary["Big"] = lambda req, ctx: blob
    res = subprocess.run([CTL, "--socket", fake.socket, "raw", "--print", "/x.Y/Big"],
                         capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout == blob


def test_grpc_timeout_header_and_client_deadline(fake):
    def slow(req, ctx):
        time.sleep(3)
        return b"late"
    fake.unary["Slow"] = slow
    t0 = time.monotonic()
    res = ctl(fake.socket, "--timeout", "0.4", "raw", "/x.Y/Slow", check=1)
    elapsed = time.monotonic() - t0
    assert res.stderr.startswith("hpcri-ctl: DEADLINE_EXCEEDED: "), res.stderr
    assert elapsed < 2.5
    # The server saw a grpc-timeout of about 0.4 s.
    remaining = fake.calls[0][2]
    assert remaining is not None and 0 < remaining <= 0.4


def test_server_streaming(fake):
    fake.stream["Stream"] = lambda req, ctx: (b"msg%d" % i for i in range(int(req)))
    res = ctl(fake.socket, "raw", "--stream", "--print", "-d", "7", "/x.Y/Stream", check=0)
    assert res.stdout.splitlines() == ["msg%d" % i for i in range(7)] + ["OK (7 messages)"]


def test_stream_error_after_messages(fake):
    def stream(req, ctx):
        yield b"one"
        ctx.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "quota %d%%" % 100)
    fake.stream["Stream"] = stream
    res = ctl(fake.socket, "raw", "--stream", "--print", "/x.Y/Stream", check=1)
    assert res.stdout == "one\n"
    assert res.stderr == "hpcri-ctl: RESOURCE_EXHAUSTED: quota 100%\n"


def test_concurrent_calls_are_multiplexed(fake):
    def slow(req, ctx):
        time.sleep(1.0)
        return b"ok"
    fake.unary["Slow"] = slow
    t0 = time.monotonic()
    res = ctl(fake.socket, "raw", "--parallel", "8", "/x.Y/Slow", check=0)
    elapsed = time.monotonic() - t0
    assert "OK (8 concurrent calls)" in res.stdout
    assert len(fake.requests("Slow")) == 8
    assert elapsed < 4.0, "calls were serialised: %.1fs" % elapsed


POD_JSON = {
    "metadata": {"name": "nginx-sandbox", "namespace": "default", "attempt": 1,
                 "uid": "hdishd83djaidwnduwk28bcsb"},
    "hostname": "nginx",
    "log_directory": "/tmp",
    "dns_config": {"servers": ["8.8.8.8"], "searches": ["example.org"]},
    "port_mappings": [{"protocol": "UDP", "container_port": 53, "host_port": 5353}],
    "labels": {"app": "nginx", "tier": "web"},
    "annotations": {"note": "x"},
    "linux": {"cgroup_parent": "/kubepods",
              "security_context": {"namespace_options": {"network": "NODE", "pid": 1}}},
}


def test_runp_sends_the_json_config(fake, tmp_path):
    fake.unary["RunPodSandbox"] = lambda req, ctx: api_pb2.RunPodSandboxResponse(
        pod_sandbox_id="f00dcafe" * 8).SerializeToString()
    cfg = tmp_path / "pod.json"
    cfg.write_text(json.dumps(POD_JSON))
    res = ctl(fake.socket, "runp", "--runtime", "slurm", str(cfg), check=0)
    assert res.stdout.strip() == "f00dcafe" * 8
    (raw,) = fake.requests("RunPodSandbox")
    req = api_pb2.RunPodSandboxRequest.FromString(raw)
    c = req.config
    assert req.runtime_handler == "slurm"
    assert (c.metadata.name, c.metadata.namespace, c.metadata.attempt, c.metadata.uid) == (
        "nginx-sandbox", "default", 1, "hdishd83djaidwnduwk28bcsb")
    assert c.hostname == "nginx" and c.log_directory == "/tmp"
    assert list(c.dns_config.servers) == ["8.8.8.8"]
    assert c.port_mappings[0].protocol == api_pb2.UDP
    assert (c.port_mappings[0].container_port, c.port_mappings[0].host_port) == (53, 5353)
    assert dict(c.labels) == {"app": "nginx", "tier": "web"}
    assert dict(c.annotations) == {"note": "x"}
    assert c.linux.cgroup_parent == "/kubepods"
    ns = c.linux.security_context.namespace_options
    assert ns.network == api_pb2.NODE and ns.pid == api_pb2.CONTAINER


def test_runp_rejects_unknown_and_mistyped_fields(fake, tmp_path):
    cfg = tmp_path / "pod.json"
    cfg.write_text(json.dumps({"metadata": {"name": "x", "atempt": 1}}))
    res = ctl(fake.socket, "runp", str(cfg), check=1)
    assert "INVALID_ARGUMENT" in res.stderr and "metadata.atempt" in res.stderr
    cfg.write_text(json.dumps({"metadata": {"name": "x", "attempt": "one"}}))
    res = ctl(fake.socket, "runp", str(cfg), check=1)
    assert "metadata.attempt" in res.stderr
    cfg.write_text("{not json")
    res = ctl(fake.socket, "runp", str(cfg), check=1)
    assert "INVALID_ARGUMENT" in res.stderr and str(cfg) in res.stderr
    assert fake.requests("RunPodSandbox") == []


def _containers(*ids):
    return api_pb2.ListContainersResponse(containers=[
        api_pb2.Container(id=i, pod_sandbox_id="p" * 64,
                          metadata=api_pb2.ContainerMetadata(name="c-" + i[:4], attempt=2),
                          image=api_pb2.ImageSpec(image="docker.io/library/busybox:latest"),
                          state=api_pb2.CONTAINER_RUNNING, created_at=time.time_ns() - 5 * 10**9)
        for i in ids]).SerializeToString()


def test_create_start_and_prefix_resolution(fake, tmp_path):
    cid = "abcdef" + "0" * 58
    fake.unary["ListPodSandbox"] = lambda req, ctx: api_pb2.ListPodSandboxResponse(
        items=[api_pb2.PodSandbox(id="9" * 64)]).SerializeToString()
    fake.unary["ListContainers"] = lambda req, ctx: _containers(cid, "b" * 64)
    fake.unary["CreateContainer"] = lambda req, ctx: api_pb2.CreateContainerResponse(
        container_id=cid).SerializeToString()
    fake.unary["StartContainer"] = lambda req, ctx: b""
    (tmp_path / "pod.json").write_text(json.dumps(POD_JSON))
    (tmp_path / "ctr.json").write_text(json.dumps({
        "metadata": {"name": "busybox"}, "image": {"image": "busybox"},
        "command": ["top"], "envs": [{"key": "A", "value": "1"}],
        "mounts": [{"container_path": "/data", "host_path": "/tmp", "readonly": True}],
        "log_path": "busybox.log", "linux": {}}))
    res = ctl(fake.socket, "create", "999", str(tmp_path / "ctr.json"), str(tmp_path / "pod.json"),
              check=0)
    assert res.stdout.strip() == cid
    (raw,) = fake.requests("CreateContainer")
    req = api_pb2.CreateContainerRequest.FromString(raw)
    assert req.pod_sandbox_id == "9" * 64  # prefix "999" expanded
    assert list(req.config.command) == ["top"]
    assert (req.config.envs[0].key, req.config.envs[0].value) == ("A", "1")
    assert req.config.mounts[0].readonly and req.config.mounts[0].host_path == "/tmp"
    assert req.sandbox_config.metadata.name == "nginx-sandbox"

    assert ctl(fake.socket, "start", "abc", check=0).stdout.strip() == cid
    (raw,) = fake.requests("StartContainer")
    assert api_pb2.StartContainerRequest.FromString(raw).container_id == cid


def test_ps_table_and_json(fake):
    fake.unary["ListContainers"] = lambda req, ctx: _containers("1234567890abcdef" * 4)
    fake.unary["ListPodSandbox"] = lambda req, ctx: api_pb2.ListPodSandboxResponse(
        items=[api_pb2.PodSandbox(id="p" * 64, metadata=api_pb2.PodSandboxMetadata(
            name="mypod"))]).SerializeToString()
    res = ctl(fake.socket, "ps", check=0)
    rows = res.stdout.splitlines()
    assert len(rows) == 2
    cols = rows[1].split()
    assert cols[0] == "1234567890abc" and "busybox" in cols[1]
    assert "Running" in cols and "mypod" in cols
    # Without -a, only running containers are asked for.
    req = api_pb2.ListContainersRequest.FromString(fake.requests("ListContainers")[0])
    assert req.filter.state.state == api_pb2.CONTAINER_RUNNING
    doc = json.loads(ctl(fake.socket, "ps", "-a", "-o", "json", check=0).stdout)
    c = doc["containers"][0]
    assert c["state"] == "CONTAINER_RUNNING" and c["metadata"]["attempt"] == 2
    assert c["podSandboxId"] == "p" * 64
    req = api_pb2.ListContainersRequest.FromString(fake.requests("ListContainers")[-1])
    assert not req.filter.HasField("state")


def test_ambiguous_prefix(fake):
    fake.unary["ListContainers"] = lambda req, ctx: _containers("ab" + "1" * 62, "ab" + "2" * 62)
    res = ctl(fake.socket, "inspect", "ab", check=1)
    assert "INVALID_ARGUMENT" in res.stderr and "ambiguous" in res.stderr


def test_exec_sync_output_and_exit_code(fake):
    fake.unary["ListContainers"] = lambda req, ctx: _containers("c" * 64)
    fake.unary["ExecSync"] = lambda req, ctx: api_pb2.ExecSyncResponse(
        stdout=b"out\n", stderr=b"err\n", exit_code=3).SerializeToString()
    res = ctl(fake.socket, "exec", "--sync", "ccc", "sh", "-c", "exit 3", check=3)
    assert res.stdout == "out\n" and res.stderr == "err\n"
    req = api_pb2.ExecSyncRequest.FromString(fake.requests("ExecSync")[0])
    assert req.container_id == "c" * 64 and list(req.cmd) == ["sh", "-c", "exit 3"]


def test_logs_reads_cri_log_file(fake, tmp_path):
    log = tmp_path / "c.log"
    log.write_text("2024-01-01T00:00:00.000000001Z stdout F hello\n"
                   "2024-01-01T00:00:00.000000002Z stderr F oops\n"
                   "2024-01-01T00:00:00.000000003Z stdout P part-\n"
                   "2024-01-01T00:00:00.000000004Z stdout F ial\n")
    fake.unary["ListContainers"] = lambda req, ctx: _containers("d" * 64)
    fake.unary["ContainerStatus"] = lambda req, ctx: api_pb2.ContainerStatusResponse(
        status=api_pb2.ContainerStatus(id="d" * 64, log_path=str(log))).SerializeToString()
    res = ctl(fake.socket, "logs", "ddd", check=0)
    assert res.stdout == "hello\npart-ial\n" and res.stderr == "oops\n"
    res = ctl(fake.socket, "logs", "--tail", "1", "ddd", check=0)
    assert res.stdout == "ial\n"


def test_events_until_interrupted(fake):
    stop = threading.Event()

    def events(req, ctx):
        yield api_pb2.ContainerEventResponse(
            container_id="e" * 64, container_event_type=api_pb2.CONTAINER_STARTED_EVENT,
            created_at=time.time_ns()).SerializeToString()
        stop.wait(10)
    fake.stream["GetContainerEvents"] = events
    p = subprocess.Popen([CTL, "--socket", fake.socket, "events"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.split()[:2] == ["CONTAINER_STARTED_EVENT", "e" * 64]
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=5)
        assert p.returncode == 0, err
    finally:
        stop.set()
        if p.poll() is None:
            p.kill()
            p.wait()


def test_server_disappears_mid_call(tmp_path):
    """A peer that accepts, then closes without answering: UNAVAILABLE, not a hang."""
    import socket as so
    path = str(tmp_path / "rude.sock")
    srv = so.socket(so.AF_UNIX, so.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)

    def rude():
        conn, _ = srv.accept()
        conn.recv(100)
        conn.close()
    t = threading.Thread(target=rude)
    t.start()
    try:
        res = ctl(path, "version", check=1, timeout=10)
        assert "UNAVAILABLE" in res.stderr, res.stderr
    finally:
        t.join(5)
        srv.close()


def test_default_socket_path(tmp_path):
    if os.geteuid() == 0:
        expected = "/run/hpcri/hpcri.sock"
        env = {}
    else:
        expected = "/tmp/hpcri-%d/hpcri.sock" % os.getuid()
        env = {"XDG_RUNTIME_DIR": ""}
    if os.path.exists(expected):
        pytest.skip("a daemon may be serving %s" % expected)
    res = ctl(None, "version", env=env, check=1)
    assert "cannot connect to %s" % expected in res.stderr, res.stderr


def test_unix_scheme_prefix_and_help(daemon):
    res = ctl("unix://" + daemon.socket, "version", check=0)
    assert "RuntimeName:  hpcri" in res.stdout
    res = ctl(None, "stop", "--help", check=0)
    assert res.stdout.startswith("hpcri-ctl stop: ") and "-t SECONDS" in res.stdout
    res = ctl(None, "--help", check=0)
    assert all(c in res.stdout for c in ("version", "runp", "exec", "events", "raw"))


def test_logs_follow(fake, tmp_path):
    log = tmp_path / "f.log"
    log.write_text("2024-01-01T00:00:00.000000001Z stdout F first\n")
    fake.unary["ListContainers"] = lambda req, ctx: _containers("f" * 64)
    fake.unary["ContainerStatus"] = lambda req, ctx: api_pb2.ContainerStatusResponse(
        status=api_pb2.ContainerStatus(id="f" * 64, log_path=str(log))).SerializeToString()
    p = subprocess.Popen([CTL, "--socket", fake.socket, "logs", "-f", "fff"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "first\n"
        with open(log, "a") as f:
            f.write("2024-01-01T00:00:01.000000001Z stdout F sec")  # half a line
            f.flush()
            time.sleep(0.5)
            f.write("ond\n")
        assert p.stdout.readline() == "second\n"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=5)
        assert p.returncode == 0 and out == "", err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
