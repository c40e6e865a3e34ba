"""Pods and containers end to end over the CRI socket: a real registry, a
real pull, runc under conmon, CRI logs, ExecSync, stop grace periods, events,
recovery after kill -9, and bad requests."""
import json
import os
import random
import signal
import subprocess
import threading
import time

import grpc
import pytest

from conftest import Cri, api_pb2, REPO

TOOLS = os.path.join(REPO, "tests", "tools")


def _need_root():
    if os.getuid() != 0:
        pytest.skip("the root variant of the lifecycle tests")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    d = tmp_path_factory.mktemp("registry")
    port = 20000 + random.randrange(5000)
    subprocess.run([os.path.join(TOOLS, "registry.sh"), "start", str(d), str(port)], check=True,
                   env=dict(os.environ, REGISTRY_WATCH_PID=str(os.getpid())))
    try:
        out = d / "images.json"
        subprocess.run(["/usr/bin/python3", os.path.join(TOOLS, "push_image.py"), "--registry",
                        "127.0.0.1:%d" % port, "--out", str(out), "--only", "busybox"],
                       check=True)
        yield {"host": "127.0.0.1:%d" % port, "images": json.loads(out.read_text())}
    finally:
        subprocess.run([os.path.join(TOOLS, "registry.sh"), "stop", str(d)])


@pytest.fixture
def env(registry, daemon_factory, tmp_path):
    _need_root()
    conf = tmp_path / "hpcri.conf"
    conf.write_text('[registry "%s"]\ninsecure = true\n\n[runtime]\ntype = oci\n'
                    'runtime_path = runc\n' % registry["host"])
    d = daemon_factory(config=str(conf), sub="d")
    c = Cri(d.socket)
    image = registry["host"] + "/test/busybox:latest"
    c.PullImage(image=api_pb2.ImageSpec(image=image), timeout=120)
    yield {"d": d, "c": c, "image": image, "logs": str(tmp_path / "logs")}
    # leave nothing behind: remove every pod (stops and removes containers)
    for p in c.ListPodSandbox().items:
        c.RemovePodSandbox(pod_sandbox_id=p.id, timeout=60)
    c.close()


def pod_config(env, name):
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="test", uid="uid-" + name),
        hostname=name, log_directory=os.path.join(env["logs"], name),
        labels={"app": name})


def ctr_config(env, name, command, **kw):
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name),
        image=api_pb2.ImageSpec(image=env["image"]), command=command,
        log_path=name + ".log", labels={"ctr": name}, **kw)


def run(env, pod_name, name, command, **kw):
    c = env["c"]
    pc = pod_config(env, pod_name)
    pod = c.RunPodSandbox(config=pc, timeout=60).pod_sandbox_id
    cid = c.CreateContainer(pod_sandbox_id=pod, config=ctr_config(env, name, command, **kw),
                            sandbox_config=pc, timeout=60).container_id
    c.StartContainer(container_id=cid, timeout=60)
    return pod, cid


def wait_exited(c, cid, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = c.ContainerStatus(container_id=cid).status
        if st.state == api_pb2.CONTAINER_EXITED:
            return st
        time.sleep(0.1)
    raise AssertionError("container %s did not exit in %ds" % (cid, timeout))


def test_pod_and_container_lifecycle(env):
    c = env["c"]
    pod, cid = run(env, "web", "main", ["sh", "-c", "trap '' TERM; echo hello; echo oops >&2; "
                                               "while :; do sleep 1; done"])
    ps = c.PodSandboxStatus(pod_sandbox_id=pod).status
    assert ps.state == api_pb2.SANDBOX_READY and ps.metadata.name == "web"
    st = c.ContainerStatus(container_id=cid).status
    assert st.state == api_pb2.CONTAINER_RUNNING
    assert st.started_at >= st.created_at > 0
    assert st.image_ref.startswith("sha256:")
    assert [x.id for x in c.ListContainers(filter=api_pb2.ContainerFilter(
        pod_sandbox_id=pod)).containers] == [cid]

    r = c.ExecSync(container_id=cid, cmd=["cat", "/etc/hostname"], timeout=10)
    assert r.exit_code == 0 and r.stdout.strip() == b"web"
    r = c.ExecSync(container_id=cid, cmd=["sh", "-c", "echo e >&2; exit 7"], timeout=10)
    assert r.exit_code == 7 and r.stderr == b"e\n"

    # CRI log format: TIMESTAMP STREAM P|F MESSAGE
    log = os.path.join(env["logs"], "web", "main.log")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "oops" not in open(log).read():
        time.sleep(0.05)
    lines = open(log).read().splitlines()
    parsed = {tuple(l.split(" ", 3)[1:]) for l in lines}
    assert ("stdout", "F", "hello") in parsed and ("stderr", "F", "oops") in parsed

    # The shell ignores SIGTERM: the grace period runs out, then SIGKILL.
    t0 = time.monotonic()
    # (the request field, not the call deadline)
    c.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=2))
    elapsed = time.monotonic() - t0
    assert elapsed >= 1.9
    st = c.ContainerStatus(container_id=cid).status
    assert st.state == api_pb2.CONTAINER_EXITED
    assert st.exit_code == 137 and st.reason == "Error"
    assert st.finished_at > st.started_at

    c.RemoveContainer(container_id=cid)
    assert len(c.ListContainers().containers) == 0
    c.StopPodSandbox(pod_sandbox_id=pod)
    assert c.PodSandboxStatus(pod_sandbox_id=pod).status.state == api_pb2.SANDBOX_NOTREADY
    c.RemovePodSandbox(pod_sandbox_id=pod)
    assert len(c.ListPodSandbox().items) == 0
    # idempotent
    c.StopPodSandbox(pod_sandbox_id=pod)
    c.RemovePodSandbox(pod_sandbox_id=pod)
    c.RemoveContainer(container_id=cid)


def test_exit_codes_and_reasons(env):
    c = env["c"]
    _, bad = run(env, "exits", "bad", ["sh", "-c", "exit 3"])
    st = wait_exited(c, bad)
    assert st.exit_code == 3 and st.reason == "Error"
    pc = pod_config(env, "exits")
    pod = c.ListPodSandbox().items[0].id
    good = c.CreateContainer(pod_sandbox_id=pod, config=ctr_config(env, "good", ["sh", "-c", "exit 0"]),
                             sandbox_config=pc).container_id
    c.StartContainer(container_id=good)
    st = wait_exited(c, good)
    assert st.exit_code == 0 and st.reason == "Completed"
    exited = c.ListContainers(filter=api_pb2.ContainerFilter(
        state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_EXITED))).containers
    assert {x.id for x in exited} == {bad, good}


def test_env_args_workdir(env):
    c = env["c"]
    _, cid = run(env, "envs", "main", ["sh", "-c"], args=["echo $FOO $0 && pwd && sleep 1000"],
                 envs=[api_pb2.KeyValue(key="FOO", value="bar")], working_dir="/tmp")
    r = c.ExecSync(container_id=cid, cmd=["sh", "-c", "echo $FOO; pwd"], timeout=10)
    assert r.stdout.split() == [b"bar", b"/"] or r.stdout.split()[0] == b"bar"
    log = os.path.join(env["logs"], "envs", "main.log")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "/tmp" not in open(log).read():
        time.sleep(0.05)
    assert "/tmp" in open(log).read()


def test_container_events(env):
    c = env["c"]
    events = []
    stream = c.channel.unary_stream(
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
    pod, cid = run(env, "events", "main", ["sh", "-c", "exit 0"])
    wait_exited(c, cid)
    c.RemoveContainer(container_id=cid)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(events) < 4:
        time.sleep(0.05)
    call.cancel()
    t.join()
    types = [e[1] for e in events if e[0] == cid]
    assert types == [api_pb2.CONTAINER_CREATED_EVENT, api_pb2.CONTAINER_STARTED_EVENT,
                     api_pb2.CONTAINER_STOPPED_EVENT, api_pb2.CONTAINER_DELETED_EVENT]


def test_recovery_after_kill9(env):
    c, d = env["c"], env["d"]
    pod, long_cid = run(env, "recover", "long", ["sleep", "1000"])
    pc = pod_config(env, "recover")
    short = c.CreateContainer(pod_sandbox_id=pod,
                              config=ctr_config(env, "short", ["sh", "-c", "sleep 1; exit 4"]),
                              sandbox_config=pc).container_id
    c.StartContainer(container_id=short)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    time.sleep(2)  # `short` exits while hpcri is down
    d.proc = None
    d.start()
    c2 = Cri(d.socket)
    env["c"] = c2
    st = c2.ContainerStatus(container_id=short).status
    assert st.state == api_pb2.CONTAINER_EXITED and st.exit_code == 4
    st = c2.ContainerStatus(container_id=long_cid).status
    assert st.state == api_pb2.CONTAINER_RUNNING
    r = c2.ExecSync(container_id=long_cid, cmd=["echo", "alive"], timeout=10)
    assert r.stdout == b"alive\n"
    assert c2.PodSandboxStatus(pod_sandbox_id=pod).status.state == api_pb2.SANDBOX_READY


def test_bad_requests(env):
    c = env["c"]
    pc = pod_config(env, "bad")
    pod = c.RunPodSandbox(config=pc).pod_sandbox_id
    with pytest.raises(grpc.RpcError) as e:
        c.RunPodSandbox(config=pc)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and pod in e.value.details()
    cfg = ctr_config(env, "x", ["sh", "-c", "exit 0"])
    cfg.image.image = "127.0.0.1:1/not/pulled:latest"
    with pytest.raises(grpc.RpcError) as e:
        c.CreateContainer(pod_sandbox_id=pod, config=cfg, sandbox_config=pc)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "pull" in e.value.details()
    cid = c.CreateContainer(pod_sandbox_id=pod, config=ctr_config(env, "x", ["sleep", "100"]),
                            sandbox_config=pc).container_id
    with pytest.raises(grpc.RpcError) as e:
        c.CreateContainer(pod_sandbox_id=pod, config=ctr_config(env, "x", ["sh", "-c", "exit 0"]),
                          sandbox_config=pc)
    assert e.value.code() == grpc.StatusCode.ALREADY_EXISTS and cid in e.value.details()
    c.StartContainer(container_id=cid)
    with pytest.raises(grpc.RpcError) as e:
        c.StartContainer(container_id=cid)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as e:
        c.ExecSync(container_id=cid, cmd=[])
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    c.RemovePodSandbox(pod_sandbox_id=pod, timeout=60)
    with pytest.raises(grpc.RpcError) as e:
        c.CreateContainer(pod_sandbox_id=pod, config=ctr_config(env, "y", ["sh", "-c", "exit 0"]),
                          sandbox_config=pc)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        c.ContainerStatus(container_id=cid)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
