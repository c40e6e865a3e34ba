"""The remote backend end to end: a front hpcri whose RuntimeClass handler
"fwd" (type remote) forwards pods to an upstream hpcri (an ordinary oci
daemon), both real daemons on real sockets, a real registry, runc under
conmon on the upstream.  The front never pulls: the remote backend makes the
upstream pull what a container needs."""
import json
import os
import random
import shutil
import subprocess
import threading
import time

import grpc
import pytest

from conftest import Cri, api_pb2, REPO

TOOLS = os.path.join(REPO, "tests", "tools")
FRONT_POD_LABEL = "io.hpcri.front-pod-id"
FRONT_CTR_LABEL = "io.hpcri.front-container-id"


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    if os.getuid() != 0:
        pytest.skip("the upstream runs containers with runc as root")
    d = tmp_path_factory.mktemp("registry")
    port = 20000 + random.randrange(5000)
    subprocess.run([os.path.join(TOOLS, "registry.sh"), "start", str(d), str(port)], check=True,
                   env=dict(os.environ, REGISTRY_WATCH_PID=str(os.getpid())))
    try:
        out = d / "images.json"
        subprocess.run(["/usr/bin/python3", os.path.join(TOOLS, "push_image.py"), "--registry",
                        "127.0.0.1:%d" % port, "--out", str(out), "--only", "busybox"],
                       check=True)
        yield {"host": "127.0.0.1:%d" % port}
    finally:
        subprocess.run([os.path.join(TOOLS, "registry.sh"), "stop", str(d)])


def _front_conf(tmp_path, registry, endpoint, extra=""):
    conf = tmp_path / "front.conf"
    conf.write_text('[registry "%s"]\ninsecure = true\n\n[runtime]\ntype = oci\n\n'
                    '[runtime "fwd"]\ntype = remote\nendpoint = %s\ntimeout_ms = 10000\n%s'
                    % (registry["host"], endpoint, extra))
    return str(conf)


@pytest.fixture
def env(registry, daemon_factory, tmp_path):
    up_conf = tmp_path / "up.conf"
    up_conf.write_text('[registry "%s"]\ninsecure = true\n\n[runtime]\ntype = oci\n'
                       'runtime_path = runc\n' % registry["host"])
    up = daemon_factory(config=str(up_conf), sub="up")
    front = daemon_factory(config=_front_conf(tmp_path, registry, "unix://" + up.socket),
                           sub="front")
    e = {"up": up, "front": front, "u": Cri(up.socket), "f": Cri(front.socket),
         "image": registry["host"] + "/test/busybox:latest", "logs": str(tmp_path / "logs"),
         "endpoint": "unix://" + up.socket}
    yield e
    for c in (e["f"], e["u"]):  # front first: its removals propagate
        for p in c.ListPodSandbox().items:
            c.RemovePodSandbox(pod_sandbox_id=p.id, timeout=60)
    e["f"].close()
    e["u"].close()


def pod_config(env, name):
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="test", uid="uid-" + name),
        hostname=name, log_directory=os.path.join(env["logs"], name), labels={"app": name})


def ctr_config(env, name, command, image=None):
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name),
        image=api_pb2.ImageSpec(image=image or env["image"]), command=command,
        log_path=name + ".log", labels={"ctr": name})


def run(env, pod_name, name, command):
    f = env["f"]
    pc = pod_config(env, pod_name)
    pod = f.RunPodSandbox(config=pc, runtime_handler="fwd", timeout=60).pod_sandbox_id
    cid = f.CreateContainer(pod_sandbox_id=pod, config=ctr_config(env, name, command),
                            sandbox_config=pc, timeout=120).container_id
    f.StartContainer(container_id=cid, timeout=60)
    return pod, cid


def upstream_ctr(env, front_cid):
    """The upstream's container carrying the front's id as label, or None."""
    cs = env["u"].ListContainers(filter=api_pb2.ContainerFilter(
        label_selector={FRONT_CTR_LABEL: front_cid})).containers
    assert len(cs) <= 1
    return cs[0] if cs else None


def wait_exited(c, cid, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = c.ContainerStatus(container_id=cid).status
        if st.state == api_pb2.CONTAINER_EXITED:
            return st
        time.sleep(0.1)
    raise AssertionError("container %s did not exit in %ds" % (cid, timeout))


def test_forwarded_lifecycle(env):
    f, u = env["f"], env["u"]
    pod, cid = run(env, "web", "main", ["sh", "-c", "trap '' TERM; echo hello; echo oops >&2; "
                                               "while :; do sleep 1; done"])
    # hpcri's own ids for the kubelet, the remote's behind them
    ups = u.ListPodSandbox().items
    assert len(ups) == 1 and ups[0].id != pod
    assert ups[0].labels[FRONT_POD_LABEL] == pod and ups[0].labels["app"] == "web"
    assert ups[0].metadata.name == "web" and ups[0].state == api_pb2.SANDBOX_READY
    ps = f.PodSandboxStatus(pod_sandbox_id=pod).status
    assert ps.state == api_pb2.SANDBOX_READY and ps.runtime_handler == "fwd"

    # the container really runs on the upstream
    uc = upstream_ctr(env, cid)
    assert uc is not None and uc.id != cid and uc.pod_sandbox_id == ups[0].id
    assert uc.state == api_pb2.CONTAINER_RUNNING and uc.labels["ctr"] == "main"
    st = f.ContainerStatus(container_id=cid).status
    assert st.state == api_pb2.CONTAINER_RUNNING and st.started_at > 0

    # the front pulled nothing; the upstream has the image now
    assert len(f.ListImages().images) == 0
    assert any(env["image"] in i.repo_tags for i in u.ListImages().images)

    r = f.ExecSync(container_id=cid, cmd=["cat", "/etc/hostname"], timeout=10)
    assert r.exit_code == 0 and r.stdout.strip() == b"web"
    r = f.ExecSync(container_id=cid, cmd=["sh", "-c", "echo e >&2; exit 7"], timeout=10)
    assert r.exit_code == 7 and r.stderr == b"e\n" and r.stdout == b""

    # the upstream writes the CRI log where the kubelet expects it
    log = os.path.join(env["logs"], "web", "main.log")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (os.path.exists(log) and "oops" in open(log).read()):
        time.sleep(0.05)
    parsed = {tuple(l.split(" ", 3)[1:]) for l in open(log).read().splitlines()}
    assert ("stdout", "F", "hello") in parsed and ("stderr", "F", "oops") in parsed
    f.ReopenContainerLog(container_id=cid)

    stats = f.ContainerStats(container_id=cid).stats
    assert stats.attributes.id == cid

    # stop with a grace period: the shell ignores SIGTERM, the upstream kills it after 2 s
    t0 = time.monotonic()
    f.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=2), timeout=30)
    assert time.monotonic() - t0 >= 1.9
    st = f.ContainerStatus(container_id=cid).status
    assert st.state == api_pb2.CONTAINER_EXITED and st.exit_code == 137
    assert upstream_ctr(env, cid).state == api_pb2.CONTAINER_EXITED

    f.RemoveContainer(container_id=cid)
    assert upstream_ctr(env, cid) is None and len(u.ListContainers().containers) == 0
    f.StopPodSandbox(pod_sandbox_id=pod)
    assert f.PodSandboxStatus(pod_sandbox_id=pod).status.state == api_pb2.SANDBOX_NOTREADY
    assert u.ListPodSandbox().items[0].state == api_pb2.SANDBOX_NOTREADY
    f.RemovePodSandbox(pod_sandbox_id=pod)
    assert len(u.ListPodSandbox().items) == 0 and len(f.ListPodSandbox().items) == 0
    # idempotent, also through the backend
    f.StopPodSandbox(pod_sandbox_id=pod)
    f.RemovePodSandbox(pod_sandbox_id=pod)


def test_front_follows_upstream_exits(env):
    f, u = env["f"], env["u"]
    pod, quick = run(env, "exits", "quick", ["sh", "-c", "sleep 0.5; exit 3"])
    st = wait_exited(f, quick)
    assert st.exit_code == 3 and st.reason == "Error" and st.finished_at > st.started_at

    # stopped behind the front's back, on the upstream directly
    pc = pod_config(env, "exits")
    long_ = f.CreateContainer(pod_sandbox_id=pod, config=ctr_config(env, "long", ["sleep", "600"]),
                              sandbox_config=pc, timeout=60).container_id
    f.StartContainer(container_id=long_)
    assert f.ContainerStatus(container_id=long_).status.state == api_pb2.CONTAINER_RUNNING
    u.StopContainer(api_pb2.StopContainerRequest(container_id=upstream_ctr(env, long_).id,
                                                 timeout=0), timeout=30)
    st = wait_exited(f, long_)
    assert st.exit_code == 137

    # removed on the upstream: the front reports it gone, and removal still works
    gone = f.CreateContainer(pod_sandbox_id=pod, config=ctr_config(env, "gone", ["sleep", "600"]),
                             sandbox_config=pc, timeout=60).container_id
    f.StartContainer(container_id=gone)
    u.RemoveContainer(container_id=upstream_ctr(env, gone).id, timeout=30)
    st = wait_exited(f, gone)
    assert st.reason == "RemoteContainerGone" and env["endpoint"] in st.message
    f.RemoveContainer(container_id=gone)
    f.RemovePodSandbox(pod_sandbox_id=pod, timeout=60)
    assert len(u.ListContainers().containers) == 0 and len(u.ListPodSandbox().items) == 0


def test_upstream_errors_keep_their_codes(env):
    f, u = env["f"], env["u"]
    pc = pod_config(env, "errs")
    pod = f.RunPodSandbox(config=pc, runtime_handler="fwd", timeout=60).pod_sandbox_id
    missing = env["image"].replace("busybox", "nosuchimage")

    # what the upstream itself says ...
    with pytest.raises(grpc.RpcError) as direct:
        u.PullImage(image=api_pb2.ImageSpec(image=missing), timeout=60)
    # ... comes back through the front, code unchanged, prefixed with the endpoint
    with pytest.raises(grpc.RpcError) as fwd:
        f.CreateContainer(pod_sandbox_id=pod, config=ctr_config(env, "x", ["true"], image=missing),
                          sandbox_config=pc, timeout=60)
    assert fwd.value.code() == direct.value.code() != grpc.StatusCode.OK
    assert env["endpoint"] in fwd.value.details()
    assert direct.value.details() in fwd.value.details()
    assert len(f.ListContainers().containers) == 0 and len(u.ListContainers().containers) == 0

    # an exec of a command the image lacks: the upstream's answer, unchanged
    cid = f.CreateContainer(pod_sandbox_id=pod, config=ctr_config(env, "t", ["sleep", "600"]),
                            sandbox_config=pc, timeout=60).container_id
    f.StartContainer(container_id=cid)
    r = f.ExecSync(container_id=cid, cmd=["nosuchcommand"], timeout=10)
    d = u.ExecSync(container_id=upstream_ctr(env, cid).id, cmd=["nosuchcommand"], timeout=10)
    assert r.exit_code == d.exit_code != 0


def test_unreachable_endpoint(registry, daemon_factory, tmp_path):
    missing = str(tmp_path / "nobody-here.sock")
    front = daemon_factory(config=_front_conf(tmp_path, registry, "unix://" + missing),
                           sub="front")
    f = Cri(front.socket)
    pc = api_pb2.PodSandboxConfig(metadata=api_pb2.PodSandboxMetadata(
        name="p", namespace="test", uid="u1"))
    with pytest.raises(grpc.RpcError) as e:
        f.RunPodSandbox(config=pc, runtime_handler="fwd", timeout=30)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    assert ("unix://" + missing) in e.value.details()
    assert len(f.ListPodSandbox().items) == 0
    # the default handler of the same daemon is unaffected
    f.Version(version="v1")
    f.close()


def test_upstream_restart_reconnects(env):
    f, up = env["f"], env["up"]
    pod, cid = run(env, "restart", "main", ["sleep", "600"])
    assert f.ExecSync(container_id=cid, cmd=["echo", "a"], timeout=10).stdout == b"a\n"
    # the front's pooled connection dies with the upstream process
    assert up.stop() == 0
    with pytest.raises(grpc.RpcError) as e:
        f.ExecSync(container_id=cid, cmd=["echo", "b"], timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE and env["endpoint"] in e.value.details()
    up.start()  # same root: the container kept running under conmon
    assert f.ExecSync(container_id=cid, cmd=["echo", "c"], timeout=10).stdout == b"c\n"
    assert f.ContainerStatus(container_id=cid).status.state == api_pb2.CONTAINER_RUNNING


def test_concurrent_calls(env):
    """Worker threads of the front use the remote concurrently: a slow call
    (an exec that sleeps) does not hold up the others."""
    f = env["f"]
    pod, cid = run(env, "conc", "main", ["sleep", "600"])
    errors = []
    done = {}

    def slow():
        try:
            r = f.ExecSync(container_id=cid, cmd=["sleep", "3"], timeout=20)
            assert r.exit_code == 0
            done["slow"] = time.monotonic()
        except Exception as ex:  # noqa: BLE001
            errors.append(ex)

    def fast(i):
        try:
            for _ in range(3):
                r = f.ExecSync(container_id=cid, cmd=["echo", str(i)], timeout=10)
                assert r.stdout == ("%d\n" % i).encode()
                f.ContainerStatus(container_id=cid)
            done[i] = time.monotonic()
        except Exception as ex:  # noqa: BLE001
            errors.append(ex)

    ts = [threading.Thread(target=slow)] + [threading.Thread(target=fast, args=(i,))
                                            for i in range(3)]
    ts[0].start()
    time.sleep(0.3)
    t0 = time.monotonic()
    for t in ts[1:]:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    fast_end = max(done[i] for i in range(3))
    print("fast calls: %.2fs; slow call ended %.2fs after they started"
          % (fast_end - t0, done["slow"] - t0))
    assert fast_end < done["slow"], "the fast calls waited for the slow one"


@pytest.mark.valgrind
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind not installed")
def test_front_under_valgrind(registry, daemon_factory, tmp_path):
    """The front (the daemon running the remote backend) under valgrind:
    a forwarded lifecycle, an upstream error and an unreachable endpoint,
    then no error and no leak."""
    up_conf = tmp_path / "up.conf"
    up_conf.write_text('[registry "%s"]\ninsecure = true\n' % registry["host"])
    up = daemon_factory(config=str(up_conf), sub="up")
    conf = _front_conf(tmp_path, registry, "unix://" + up.socket,
                       '\n[runtime "down"]\ntype = remote\nendpoint = unix://%s/none.sock\n'
                       % tmp_path)
    vlog = str(tmp_path / "valgrind.log")
    front = daemon_factory(config=conf, sub="front", start=False, wrapper=[
        "valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
        "--error-exitcode=99", "--log-file=" + vlog])
    front.start(timeout=120)
    e = {"f": Cri(front.socket), "u": Cri(up.socket), "logs": str(tmp_path / "logs"),
         "image": registry["host"] + "/test/busybox:latest"}
    f = e["f"]
    pod, cid = run(e, "vg", "main", ["sleep", "600"])
    assert f.ExecSync(container_id=cid, cmd=["echo", "x"], timeout=30).stdout == b"x\n"
    assert f.ContainerStats(container_id=cid, timeout=30).stats.attributes.id == cid
    assert f.ListContainers(timeout=30).containers[0].state == api_pb2.CONTAINER_RUNNING
    with pytest.raises(grpc.RpcError):
        f.CreateContainer(pod_sandbox_id=pod, config=ctr_config(e, "bad", ["true"],
                          image=e["image"].replace("busybox", "nosuch")),
                          sandbox_config=pod_config(e, "vg"), timeout=60)
    with pytest.raises(grpc.RpcError) as err:
        f.RunPodSandbox(config=pod_config(e, "down"), runtime_handler="down", timeout=30)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    f.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=60)
    f.RemovePodSandbox(pod_sandbox_id=pod, timeout=60)
    assert len(e["u"].ListPodSandbox().items) == 0
    f.close()
    e["u"].close()
    rc = front.stop(timeout=120)
    report = open(vlog).read()
    assert rc == 0, report[-4000:]
    assert "ERROR SUMMARY: 0 errors" in report, report[-4000:]
    assert "definitely lost: 0 bytes" in report or "no leaks are possible" in report, \
        report[-4000:]


def test_exit_events_without_polling(env):
    """An exit on the upstream reaches the front's GetContainerEvents through
    the backend's watcher, without anyone asking the front for a status."""
    f, u = env["f"], env["u"]
    pod, cid = run(env, "ev", "main", ["sleep", "600"])
    events = []
    stream = f.channel.unary_stream(
        "/runtime.v1.RuntimeService/GetContainerEvents",
        request_serializer=api_pb2.GetEventsRequest.SerializeToString,
        response_deserializer=api_pb2.ContainerEventResponse.FromString)
    call = stream(api_pb2.GetEventsRequest(), timeout=60)

    def reader():
        try:
            for ev in call:
                events.append((ev.container_id, ev.container_event_type))
        except grpc.RpcError:
            pass

    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.3)
    u.StopContainer(api_pb2.StopContainerRequest(container_id=upstream_ctr(env, cid).id,
                                                 timeout=0), timeout=30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (cid, api_pb2.CONTAINER_STOPPED_EVENT) not in events:
        time.sleep(0.05)
    call.cancel()
    t.join()
    assert (cid, api_pb2.CONTAINER_STOPPED_EVENT) in events
    st = f.ContainerStatus(container_id=cid).status
    assert st.state == api_pb2.CONTAINER_EXITED and st.exit_code == 137
