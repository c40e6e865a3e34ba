"""The slurm backend end to end over the CRI socket: one real single-node
Slurm cluster for the module (tests/tools/slurm.sh), a real registry and
pull, the real daemon.  Pods are Slurm jobs, containers are job steps run by
crun inside the allocation (docs/slurm.md)."""
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import grpc
import pytest

from spdy_client import remote_command
from conftest import Cri, api_pb2, REPO

TOOLS = os.path.join(REPO, "tests", "tools")
pytestmark = pytest.mark.skipif(
    os.getuid() != 0 or not os.path.exists("/usr/sbin/slurmctld") or
    not os.path.exists("/usr/sbin/runc"), reason="needs root, slurm-wlm and crun")


def _free_port_pair():
    for _ in range(50):
        p = 17000 + random.randrange(2000) * 2
        ok = True
        for q in (p, p + 1):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", q))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p
    raise RuntimeError("no free port pair")


@pytest.fixture(scope="module")
def cluster():
    # munged runs as user munge: the cluster dir must be reachable (pytest's
    # tmp dirs are 0700)
    d = pathlib.Path(tempfile.mkdtemp(prefix="hpcri-slurm-cri."))
    os.chmod(d, 0o755)
    port = _free_port_pair()
    env = dict(os.environ, HPCRI_SLURM_PORT=str(port), HPCRI_SLURM_OWNER_PID=str(os.getpid()))
    subprocess.run([os.path.join(TOOLS, "slurm.sh"), "start", str(d)], check=True, env=env)
    conf = str(d / "slurm.conf")
    try:
        yield {"dir": str(d), "env": dict(os.environ, SLURM_CONF=conf), "conf": conf}
    finally:
        subprocess.run([os.path.join(TOOLS, "slurm.sh"), "stop", str(d)], env=env)
        if not os.environ.get("HPCRI_KEEP_SLURM"):
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    d = tmp_path_factory.mktemp("registry")
    port = 20000 + random.randrange(5000)
    subprocess.run([os.path.join(TOOLS, "registry.sh"), "start", str(d), str(port)], check=True,
                   env=dict(os.environ, REGISTRY_WATCH_PID=str(os.getpid())))
    try:
        subprocess.run(["/usr/bin/python3", os.path.join(TOOLS, "push_image.py"), "--registry",
                        "127.0.0.1:%d" % port, "--out", str(d / "images.json"), "--only",
                        "busybox"], check=True)
        yield "127.0.0.1:%d" % port
    finally:
        subprocess.run([os.path.join(TOOLS, "registry.sh"), "stop", str(d)])


@pytest.fixture
def env(cluster, registry, daemon_factory, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    conf = tmp_path / "hpcri.conf"
    conf.write_text('[registry "%s"]\ninsecure = true\n\n[runtime]\ntype = oci\n'
                    'runtime_path = runc\n\n[runtime "slurm"]\ntype = slurm\nshared_dir = %s\n'
                    'partition = debug\nruntime_path = runc\npoll_interval_ms = 300\n'
                    'stats_interval_ms = 300\ngpu_devices = %s/dev/fakegpu%%d\n'
                    % (registry, shared, cluster["dir"]))
    d = daemon_factory(config=str(conf), sub="d", env={"SLURM_CONF": cluster["conf"]})
    c = Cri(d.socket)
    image = registry + "/test/busybox:latest"
    c.PullImage(image=api_pb2.ImageSpec(image=image), timeout=120)
    e = {"d": d, "c": c, "image": image, "logs": str(tmp_path / "logs"), "cl": cluster,
         "shared": str(shared)}
    yield e
    c = e["c"]
    for p in c.ListPodSandbox().items:
        c.RemovePodSandbox(pod_sandbox_id=p.id, timeout=60)
    c.close()


def slurm(cl, *args):
    return subprocess.run(list(args), env=cl["env"], capture_output=True, text=True, timeout=30)


def pod_config(env, name, ann=None):
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="test", uid="uid-" + name),
        hostname=name, log_directory=os.path.join(env["logs"], name),
        annotations=ann or {"slurm.hpcri.io/cpus": "1", "slurm.hpcri.io/memory": "64Mi"})


def ctr_config(env, name, command, **kw):
    return api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name),
        image=api_pb2.ImageSpec(image=env["image"]), command=command,
        log_path=name + ".log", **kw)


def run_pod(env, name, ann=None):
    pc = pod_config(env, name, ann)
    pod = env["c"].RunPodSandbox(config=pc, runtime_handler="slurm", timeout=60).pod_sandbox_id
    return pod, pc


def add_ctr(env, pod, pc, name, command, start=True, **kw):
    c = env["c"]
    cid = c.CreateContainer(pod_sandbox_id=pod, config=ctr_config(env, name, command, **kw),
                            sandbox_config=pc, timeout=60).container_id
    if start:
        c.StartContainer(container_id=cid, timeout=60)
    return cid


def job_of(env, pod_name):
    out = slurm(env["cl"], "squeue", "-h", "-o", "%i|%j|%T|%r").stdout
    for line in out.splitlines():
        jid, name, state, reason = line.split("|")
        if name.startswith("hpcri-"):
            yield jid, name, state, reason


def show_job(env, jid):
    out = slurm(env["cl"], "scontrol", "-o", "show", "job", jid).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def read_log(env, pod_name, name):
    try:
        with open(os.path.join(env["logs"], pod_name, name + ".log")) as f:
            return f.read()
    except OSError:
        return ""


def wait_exited(c, cid, timeout=30):
    def ex():
        st = c.ContainerStatus(container_id=cid).status
        return st if st.state == api_pb2.CONTAINER_EXITED else None
    return wait_for(ex, timeout, "container %s to exit" % cid)


def test_pod_container_logs_exec_gpu_stop(env):
    c = env["c"]
    pod, pc = run_pod(env, "main", {"slurm.hpcri.io/cpus": "1", "slurm.hpcri.io/memory": "100Mi",
                                    "slurm.hpcri.io/gpus": "1"})
    jobs = [j for j in job_of(env, "main")]
    assert len(jobs) == 1
    jid = jobs[0][0]
    info = show_job(env, jid)
    assert info["NumCPUs"] == "1" and "gpu:1" in info.get("TresPerNode", "")
    assert info["MinMemoryNode"] == "100M"
    wait_for(lambda: show_job(env, jid)["JobState"] == "RUNNING", 20, "job running")
    # a container whose output is followed while it runs
    cid = add_ctr(env, pod, pc, "main", ["sh", "-c", "trap 'echo got TERM; exit 7' TERM; "
                                         "echo first line; echo to-stderr >&2; "
                                         "while :; do sleep 0.2; done"])
    t0 = time.monotonic()
    # stdout and stderr are separate pipes: wait for both lines
    log = wait_for(lambda: "first line" in read_log(env, "main", "main") and
                   "to-stderr" in read_log(env, "main", "main") and
                   read_log(env, "main", "main"), 15, "first log lines")
    print("start->first log line %.2fs" % (time.monotonic() - t0))
    lines = log.splitlines()
    assert any(l.endswith(" stdout F first line") for l in lines), log
    assert any(l.endswith(" stderr F to-stderr") for l in lines), log
    st = c.ContainerStatus(container_id=cid).status
    assert st.state == api_pb2.CONTAINER_RUNNING
    # the step is a real step of the job
    steps = slurm(env["cl"], "squeue", "-h", "-s", "-j", jid, "-o", "%i|%j").stdout
    assert "|" + cid in steps, steps
    # ExecSync inside the running container; GPU env as Slurm computed it
    r = c.ExecSync(container_id=cid, cmd=["sh", "-c", "echo $CUDA_VISIBLE_DEVICES; "
                                          "cat /etc/os-release 2>/dev/null | head -1; "
                                          "echo $SLURM_JOB_ID; exit 3"], timeout=20)
    out = r.stdout.decode().splitlines()
    assert r.exit_code == 3, r
    assert out[0] == "0", out
    assert out[-1] == jid
    assert r.stderr == b"", r.stderr
    # streaming Exec (kubectl exec): an --overlap step with stdin, then a tty
    r = remote_command(c.Exec(container_id=cid, cmd=["sh", "-c", "wc -c; echo $SLURM_JOB_ID >&2;"
                                                     " exit 5"],
                              stdin=True, stdout=True, stderr=True).url, stdin=b"y" * 5000)
    assert r.stdout.strip() == b"5000", r.stdout
    assert jid.encode() in r.stderr, r.stderr
    assert r.exit_code == 5, r.error
    r = remote_command(c.Exec(container_id=cid, cmd=["sh", "-c", "tty; stty size"], tty=True,
                              stdout=True).url, tty=True, resize=(90, 30))
    assert r.exit_code == 0, r.error
    assert b"/dev/pts/" in r.stdout, r.stdout
    # exactly the allocated GPU's device node (gpu_devices), a real char device
    r = c.ExecSync(container_id=cid, cmd=["sh", "-c", "ls /dev | grep fakegpu; "
                                          "[ -c /dev/fakegpu0 ] && echo char"], timeout=20)
    assert r.stdout.decode().split() == ["fakegpu0", "char"], r
    # a second pod gets the other GPU: the index comes from Slurm, not a default
    pod2, pc2 = run_pod(env, "gpu2", {"slurm.hpcri.io/cpus": "1",
                                      "slurm.hpcri.io/memory": "64Mi",
                                      "slurm.hpcri.io/gpus": "1"})
    g2 = add_ctr(env, pod2, pc2, "lsdev", ["sh", "-c", "echo gpus=$CUDA_VISIBLE_DEVICES; "
                                          "ls /dev | grep fakegpu"])
    st = wait_exited(c, g2)
    log = read_log(env, "gpu2", "lsdev")
    assert st.exit_code == 0, (st, log)
    got = [l.split(" ", 3)[3] for l in log.splitlines() if " stdout " in l]
    assert got == ["gpus=1", "fakegpu1"], log
    c.StopPodSandbox(pod_sandbox_id=pod2, timeout=60)
    # stop with grace: the trap runs, exit 7 comes back
    t0 = time.monotonic()
    c.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=10), timeout=60)
    dt = time.monotonic() - t0
    st = wait_exited(c, cid)
    assert st.exit_code == 7 and st.reason == "Error", st
    assert "got TERM" in read_log(env, "main", "main")
    assert dt < 8, dt
    # a container that exits on its own with a code
    cid2 = add_ctr(env, pod, pc, "quick", ["sh", "-c", "echo bye; exit 4"])
    st = wait_exited(c, cid2)
    assert st.exit_code == 4 and st.reason == "Error" and st.started_at > 0
    cid3 = add_ctr(env, pod, pc, "ok", ["sh", "-c", "exit 0"])
    st = wait_exited(c, cid3)
    assert st.exit_code == 0 and st.reason == "Completed"
    # stop that has to kill (TERM ignored by pid 1)
    cid4 = add_ctr(env, pod, pc, "stubborn", ["sleep", "1000"])
    wait_for(lambda: os.path.exists(os.path.join(env["shared"], "pods", pod, cid4, "monitor")),
             10, "monitor")
    t0 = time.monotonic()
    c.StopContainer(api_pb2.StopContainerRequest(container_id=cid4, timeout=1), timeout=60)
    st = wait_exited(c, cid4)
    assert st.exit_code == 137, st
    print("stop with 1 s grace of a TERM-ignoring container: %.2fs" % (time.monotonic() - t0))
    c.StopPodSandbox(pod_sandbox_id=pod, timeout=60)
    wait_for(lambda: show_job(env, jid).get("JobState") in ("CANCELLED", "COMPLETED"), 20,
             "job ended")


def test_queued_pod_stays_ready_then_runs(env):
    c = env["c"]
    # fill the node: both CPUs
    big, bpc = run_pod(env, "big", {"slurm.hpcri.io/cpus": "2", "slurm.hpcri.io/memory": "64Mi"})
    bjid = [j for j in job_of(env, "big")][0][0]
    wait_for(lambda: show_job(env, bjid)["JobState"] == "RUNNING", 20, "big job running")
    pod, pc = run_pod(env, "queued")
    jid = [j for j in job_of(env, "queued") if j[0] != bjid][0][0]
    wait_for(lambda: show_job(env, jid).get("Reason") == "Resources", 20, "pending reason")
    for _ in range(5):
        t0 = time.monotonic()
        resp = c.PodSandboxStatus(pod_sandbox_id=pod, verbose=True)
        assert time.monotonic() - t0 < 1.0
        assert resp.status.state == api_pb2.SANDBOX_READY
    # the queue position is visible through CRI, not only through scontrol
    # (after the next batched squeue poll)
    def pending_info():
        return c.PodSandboxStatus(pod_sandbox_id=pod, verbose=True).info["info"]
    wait_for(lambda: "Resources" in pending_info(), 10, "pending reason through CRI")
    info = pending_info()
    assert jid in info and "PENDING" in info, info
    cid = add_ctr(env, pod, pc, "waiter", ["sh", "-c", "echo started; sleep 30"])
    t0 = time.monotonic()
    st = c.ContainerStatus(container_id=cid).status
    assert time.monotonic() - t0 < 1.0
    assert st.state == api_pb2.CONTAINER_RUNNING  # see docs: CREATED would be re-created
    assert "waiting for Slurm allocation" in st.message, st
    with pytest.raises(grpc.RpcError) as ei:
        c.ExecSync(container_id=cid, cmd=["true"], timeout=5)
    assert "waiting for its Slurm allocation" in ei.value.details()
    assert read_log(env, "queued", "waiter") == ""
    # free the node: the step is launched by the backend when the job runs
    c.StopPodSandbox(pod_sandbox_id=big, timeout=60)
    t0 = time.monotonic()
    wait_for(lambda: "started" in read_log(env, "queued", "waiter"), 30, "queued step")
    print("queued container started %.2fs after the blocker was stopped"
          % (time.monotonic() - t0))
    # job cancelled under the running container -> reason Cancelled
    slurm(env["cl"], "scancel", jid)
    st = wait_exited(c, cid, timeout=30)
    assert st.reason == "Cancelled" and st.exit_code != 0, st
    assert jid in st.message


def test_rejected_submission(env):
    c = env["c"]
    with pytest.raises(grpc.RpcError) as ei:
        run_pod(env, "huge", {"slurm.hpcri.io/memory": "100Ti"})
    assert "Slurm rejected the pod's job" in ei.value.details()
    assert "Memory specification can not be satisfied" in ei.value.details() or \
        "Requested node configuration is not available" in ei.value.details()


def test_recovery_after_kill9(env):
    c, d = env["c"], env["d"]
    pod, pc = run_pod(env, "rec")
    jid = [j for j in job_of(env, "rec")][0][0]
    wait_for(lambda: show_job(env, jid)["JobState"] == "RUNNING", 20, "job running")
    long_cid = add_ctr(env, pod, pc, "long", ["sh", "-c", "i=0; while :; do echo tick $i; "
                                              "i=$((i+1)); sleep 0.3; done"])
    short = add_ctr(env, pod, pc, "short", ["sh", "-c", "sleep 1; exit 5"])
    wait_for(lambda: "tick 1" in read_log(env, "rec", "long"), 10, "ticks")
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    n_before = read_log(env, "rec", "long").count("tick")
    time.sleep(2)  # `short` exits while hpcri is down; `long` keeps logging
    assert read_log(env, "rec", "long").count("tick") > n_before
    d.proc = None
    d.start()
    c2 = Cri(d.socket)
    env["c"] = c2
    st = wait_exited(c2, short, timeout=10)
    assert st.exit_code == 5 and st.reason == "Error"
    st = c2.ContainerStatus(container_id=long_cid).status
    assert st.state == api_pb2.CONTAINER_RUNNING
    r = c2.ExecSync(container_id=long_cid, cmd=["echo", "alive"], timeout=20)
    assert r.stdout == b"alive\n" and r.exit_code == 0
    c2.StopContainer(api_pb2.StopContainerRequest(container_id=long_cid, timeout=2), timeout=60)
    assert wait_exited(c2, long_cid).state == api_pb2.CONTAINER_EXITED


def _stats(c, cid):
    for s in c.ListContainerStats().stats:
        if s.attributes.id == cid:
            return s
    raise AssertionError("no stats for %s" % cid)


def test_stats_from_the_step(env):
    """CPU and memory sampled inside the step by hpcri-step (docs/slurm.md
    "Stats"): a CPU burner's usage grows at a plausible rate, a container
    holding ~20 MB shows a working set that much above an idle one."""
    c = env["c"]
    pod, pc = run_pod(env, "stats", {"slurm.hpcri.io/cpus": "2",
                                     "slurm.hpcri.io/memory": "300Mi"})
    burn = add_ctr(env, pod, pc, "burn", ["sh", "-c", "while :; do :; done"])
    idle = add_ctr(env, pod, pc, "idle", ["sleep", "1000"])
    # ~20 MB held in a shell variable (busybox sh; not the last command,
    # which sh would exec, dropping the variable)
    mem = add_ctr(env, pod, pc, "mem", ["sh", "-c", "x=$(head -c 20000000 /dev/zero | tr '\\0' a);"
                                        " echo held; sleep 1000; echo ${#x}"])
    wait_for(lambda: "held" in read_log(env, "stats", "mem"), 30, "memory held")
    def have(cid):
        s = _stats(c, cid)
        return s if s.HasField("cpu") and s.HasField("memory") else None
    a = wait_for(lambda: have(burn), 15, "first stats sample")
    t0 = time.monotonic()
    wait_for(lambda: _stats(c, burn).cpu.timestamp >= a.cpu.timestamp + 2e9, 15, "later sample")
    b = _stats(c, burn)
    dt = (b.cpu.timestamp - a.cpu.timestamp) / 1e9
    used = (b.cpu.usage_core_nano_seconds.value - a.cpu.usage_core_nano_seconds.value) / 1e9
    print("burner: %.2f s CPU in %.2f s; waited %.2f s" % (used, dt, time.monotonic() - t0))
    # one busy loop: at most one core (plus sampling skew); the machine is
    # shared, so only a low floor
    assert 0.2 * dt < used < 1.3 * dt, (used, dt)
    assert a.cpu.usage_core_nano_seconds.value > 0
    time.sleep(0.8)  # a sample taken after "held"
    m = wait_for(lambda: have(mem), 10, "stats of mem")
    i = wait_for(lambda: have(idle), 10, "stats of idle")
    ws_m, ws_i = m.memory.working_set_bytes.value, i.memory.working_set_bytes.value
    print("working set: mem %.1f MB, idle %.1f MB, rss mem %.1f MB" % (
        ws_m / 1e6, ws_i / 1e6, m.memory.rss_bytes.value / 1e6))
    assert 0 < ws_i < 10e6, ws_i
    assert 18e6 < ws_m - ws_i < 120e6, (ws_m, ws_i)
    assert m.memory.rss_bytes.value >= 18e6
    # the pod: its running containers and their sums
    ps = c.PodSandboxStats(pod_sandbox_id=pod).stats
    assert ps.attributes.id == pod and ps.attributes.metadata.name == "stats"
    assert sorted(x.attributes.id for x in ps.linux.containers) == sorted([burn, idle, mem])
    assert ps.linux.cpu.usage_core_nano_seconds.value == sum(
        x.cpu.usage_core_nano_seconds.value for x in ps.linux.containers)
    assert ps.linux.cpu.usage_core_nano_seconds.value >= b.cpu.usage_core_nano_seconds.value
    assert ps.linux.memory.working_set_bytes.value >= 18e6
    assert pod in [x.attributes.id for x in c.ListPodSandboxStats().stats]
    # the scratch tmpfs is the writable layer
    r = c.ExecSync(container_id=idle, cmd=["sh", "-c", "head -c 3000000 /dev/zero > /tmp/f"],
                   timeout=20)
    assert r.exit_code == 0
    wait_for(lambda: _stats(c, idle).writable_layer.used_bytes.value >= 3e6, 10,
             "writable layer usage")
    one = c.ContainerStats(container_id=idle).stats
    assert one.writable_layer.used_bytes.value < 10e6
    assert one.writable_layer.inodes_used.value >= 1


def test_time_limit_gives_slurm_time_limit(env):
    """A job that hits its time limit: the container exits with the reason
    naming it, not OOMKilled, and Slurm's signal in the exit code.  Slurm
    limits are whole minutes; the running job's EndTime is moved to a few
    seconds from now (scontrol update EndTime, which lowers the time limit
    the same way), and slurmctld's periodic limit check (30 s) ends it."""
    c = env["c"]
    pod, pc = run_pod(env, "tl", {"slurm.hpcri.io/cpus": "1", "slurm.hpcri.io/memory": "64Mi",
                                  "slurm.hpcri.io/time-limit": "1"})
    jid = [j for j in job_of(env, "tl")][0][0]
    wait_for(lambda: show_job(env, jid)["JobState"] == "RUNNING", 20, "job running")
    cid = add_ctr(env, pod, pc, "w", ["sh", "-c", "echo up; sleep 1000"])
    wait_for(lambda: "up" in read_log(env, "tl", "w"), 15, "container up")
    t0 = time.monotonic()
    r = slurm(env["cl"], "scontrol", "update", "JobId=" + jid, "EndTime=now+2")
    assert r.returncode == 0, r.stderr
    st = wait_exited(c, cid, timeout=75)
    print("time limit -> container exited in %.1f s" % (time.monotonic() - t0))
    assert st.reason == "SlurmTimeLimit", st
    assert st.exit_code in (143, 137), st  # SIGTERM from Slurm (KILL after KillWait)
    assert "TIMEOUT" in st.message and jid in st.message, st
    # the job really ended by its time limit (it may still be COMPLETING
    # when the container is reported: squeue's reason says TimeLimit then)
    wait_for(lambda: show_job(env, jid)["JobState"] == "TIMEOUT", 30, "job TIMEOUT")
    assert show_job(env, jid)["Reason"] == "TimeLimit"
    # the pod's verbose info shows the final state once the job has completed
    wait_for(lambda: '"state":"TIMEOUT"' in
             c.PodSandboxStatus(pod_sandbox_id=pod, verbose=True).info["info"], 30,
             "TIMEOUT in the pod's info")


from test_rootless import RootlessEnv, _ours, _prereqs as _rootless_prereqs, user  # noqa: E402,F401


@pytest.mark.skipif(_rootless_prereqs() is not None, reason=str(_rootless_prereqs()))
def test_unprivileged_daemon(cluster, registry, user, monkeypatch):
    """hpcri as the unprivileged user hpcri-test with the slurm handler: the
    pod's job belongs to that user (scontrol UserId), the container runs
    rootless in a user namespace on the compute node, its log, exit code and
    (/proc-based) stats come back."""
    e = RootlessEnv(user, registry)
    shared = os.path.join(e.base, "shared")
    os.mkdir(shared)
    os.chown(shared, user["uid"], user["gid"])
    with open(e.conf, "w") as f:
        f.write('[registry "%s"]\ninsecure = true\n\n[runtime]\ntype = oci\n\n'
                '[runtime "slurm"]\ntype = slurm\nshared_dir = %s\npartition = debug\n'
                'runtime_path = runc\npoll_interval_ms = 300\nstats_interval_ms = 300\n'
                % (registry, shared))
    monkeypatch.setenv("SLURM_CONF", cluster["conf"])
    try:
        e.start()
        c = e.c
        c.PullImage(image=api_pb2.ImageSpec(image=e.image), timeout=120)
        pc = e.pod_config("rl")
        pc.annotations["slurm.hpcri.io/memory"] = "64Mi"
        pod = c.RunPodSandbox(config=pc, runtime_handler="slurm", timeout=60).pod_sandbox_id
        out = slurm(cluster, "squeue", "-h", "-o", "%i|%j").stdout
        jid = [l.split("|")[0] for l in out.splitlines() if l.endswith("|hpcri-" + pod)][0]
        info = show_job({"cl": cluster}, jid)
        assert info["UserId"].startswith("%s(%d)" % (user["name"], user["uid"])), info
        wait_for(lambda: show_job({"cl": cluster}, jid)["JobState"] == "RUNNING", 20, "running")
        cid = e.create(pod, pc, "hello", ["sh", "-c", "echo hello; cat /proc/self/uid_map; "
                                          "exit 6"])
        st = wait_exited(c, cid)
        log = open(os.path.join(e.logs, "rl", "hello.log")).read()
        assert st.exit_code == 6 and st.reason == "Error", (st, log)
        lines = [l.split(" ", 3)[3] for l in log.splitlines() if " stdout " in l]
        assert lines[0] == "hello", log
        # a user namespace whose root is the unprivileged user on the host
        first = lines[1].split()
        assert first[0] == "0" and first[1] == str(user["uid"]), log
        # stats without cgroups: the helper's /proc fallback
        busy = e.create(pod, pc, "busy", ["sh", "-c", "while :; do :; done"])
        def stats():
            for s in c.ListContainerStats().stats:
                if s.attributes.id == busy and s.HasField("cpu") and \
                        s.cpu.usage_core_nano_seconds.value > 0:
                    return s
            return None
        s = wait_for(stats, 15, "stats of the busy container")
        # the busy shell alone (~1-2 MB), not the runtime process (runc: >5 MB)
        print("unprivileged busy container: working set %.1f MB" %
              (s.memory.working_set_bytes.value / 1e6))
        assert 0 < s.memory.working_set_bytes.value < 5e6, s.memory
        c.StopContainer(api_pb2.StopContainerRequest(container_id=busy, timeout=2), timeout=60)
        assert wait_exited(c, busy).exit_code in (137, 143)
        e.remove_all()
        rc = e.d.stop()
        assert rc == 0, "hpcri exited with %s:\n%s" % (rc, e.d.read_log())
    finally:
        if e.c:
            e.c.close()
        for d in e.daemons:
            d.kill()
        for p in _ours(e.base):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(e.base, ignore_errors=True)
