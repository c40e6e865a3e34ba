"""hpcri slurm backend vs raw sbatch (bench/slurm.sh drives this).

N pods through hpcri's RunPodSandbox (tiny resources) vs N equivalent raw
`sbatch` jobs, on the same throw-away cluster, in the same run:
submission throughput, time RunPodSandbox -> container running (first log
line) for a few pods, and Slurm commands per second issued by hpcri while
the N pods are live (counted by a wrapper bin dir in front of /usr/bin)."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.environ["HPCRI_BUILD"], "py"))
sys.path.insert(0, os.path.join(os.environ["REPO"], "tests", "integration"))
from conftest import Cri, api_pb2  # noqa: E402

N = int(os.environ.get("N", "100"))
sock, image, logs, keeper, counter = sys.argv[1:6]
c = Cri(sock)
env = dict(os.environ)


def count():
    try:
        with open(counter) as f:
            return sum(1 for _ in f)
    except OSError:
        return 0


def pod_cfg(i, logdir=None):
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name="b%d" % i, namespace="bench", uid="u%d" % i),
        log_directory=logdir or "",
        annotations={"slurm.hpcri.io/cpus": "1", "slurm.hpcri.io/memory": "1Mi"})


def drain(timeout=120):
    """Wait until Slurm lists no job (the cluster is ours): every timed phase
    starts on an empty queue, not while slurmctld is still cleaning up the
    jobs the previous phase cancelled. /usr/bin/squeue: not counted."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = subprocess.run(["/usr/bin/squeue", "-h", "-o", "%i"], capture_output=True,
                           text=True, env=env)
        if r.returncode == 0 and not r.stdout.strip():
            return
        time.sleep(0.2)


def raw_phase():
    drain()
    t0 = time.monotonic()
    raw = []
    for i in range(N):
        r = subprocess.run([os.path.join(os.path.dirname(counter), "bin", "sbatch"), "--parsable",
                            "--job-name=raw%d" % i, "--no-requeue", "--cpus-per-task=1",
                            "--mem=1M", "--output=/dev/null", keeper],
                           capture_output=True, text=True, env=env, check=True)
        raw.append(r.stdout.strip())
    t = time.monotonic() - t0
    subprocess.run(["/usr/bin/scancel"] + raw, env=env)
    return t


def hpcri_phase():
    drain()
    t0 = time.monotonic()
    pods = [c.RunPodSandbox(config=pod_cfg(i), runtime_handler="slurm", timeout=60).pod_sandbox_id
            for i in range(N)]
    return time.monotonic() - t0, pods


# two rounds in opposite order (raw, hpcri | hpcri, raw), each phase on an
# empty queue; the pods of the last hpcri phase stay for the rate window
t_raw1 = raw_phase()
t_hp1, pods = hpcri_phase()
for p in pods:
    c.RemovePodSandbox(pod_sandbox_id=p, timeout=60)
t_hp2, pods = hpcri_phase()
t_raw = t_raw1
t_hp = t_hp1 + t_hp2

# Slurm commands issued by hpcri while N pods are live (10 s window)
n0 = count()
t0 = time.monotonic()
time.sleep(10)
rate = (count() - n0) / (time.monotonic() - t0)

for p in pods:
    c.RemovePodSandbox(pod_sandbox_id=p, timeout=60)
t_raw += raw_phase()
drain()

# RunPodSandbox -> container running (first log line), a few pods
lat = []
live = []
for i in range(3):
    ld = os.path.join(logs, "lat%d" % i)
    pc = pod_cfg(1000 + i, ld)
    t0 = time.monotonic()
    p = c.RunPodSandbox(config=pc, runtime_handler="slurm", timeout=60).pod_sandbox_id
    cid = c.CreateContainer(pod_sandbox_id=p, sandbox_config=pc, timeout=60, config=api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="x"), image=api_pb2.ImageSpec(image=image),
        command=["sh", "-c", "echo up; sleep 60"], log_path="x.log")).container_id
    c.StartContainer(container_id=cid, timeout=60)
    path = os.path.join(ld, "x.log")
    while time.monotonic() - t0 < 60:
        if os.path.exists(path) and "up" in open(path).read():
            break
        time.sleep(0.02)
    lat.append(time.monotonic() - t0)
    c.RemovePodSandbox(pod_sandbox_id=p, timeout=60)

# two pods (the node's 2 CPUs) with a running container each
for i in range(2):
    ld = os.path.join(logs, "st%d" % i)
    pc = pod_cfg(2000 + i, ld)
    p = c.RunPodSandbox(config=pc, runtime_handler="slurm", timeout=60).pod_sandbox_id
    cid = c.CreateContainer(pod_sandbox_id=p, sandbox_config=pc, timeout=60, config=api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name="x"), image=api_pb2.ImageSpec(image=image),
        command=["sh", "-c", "echo up; sleep 60"], log_path="x.log")).container_id
    c.StartContainer(container_id=cid, timeout=60)
    live.append(p)

# stats of the 2 running containers: ListContainerStats in a loop for 2 s
# (answered from the step helper's sample files: no Slurm command per call)
time.sleep(4)  # job running, step started, a first sample
n0 = count()
t0 = time.monotonic()
calls = with_cpu = 0
while time.monotonic() - t0 < 2:
    st = c.ListContainerStats().stats
    calls += 1
    with_cpu = sum(1 for x in st if x.HasField("cpu"))
stats_dt = time.monotonic() - t0
stats_cmds = count() - n0
for p in live:
    c.RemovePodSandbox(pod_sandbox_id=p, timeout=60)

print("| metric | raw sbatch | hpcri | ratio |")
print("|---|---|---|---|")
print("| 2 x %d submissions (s; rounds: raw %.2f + %.2f, hpcri %.2f + %.2f) | %.2f | %.2f | %.2f |"
      % (N, t_raw1, t_raw - t_raw1, t_hp1, t_hp2, t_raw, t_hp, t_hp / t_raw))
print("| submissions/s | %.1f | %.1f | overhead %.1f%% |" % (2 * N / t_raw, 2 * N / t_hp,
                                                          100 * (t_hp / t_raw - 1)))
print("| Slurm commands/s by hpcri, %d pods live | | %.2f | |" % (N, rate))
print("| RunPodSandbox -> container's first log line (s) | | %s | |"
      % ", ".join("%.2f" % x for x in lat))
print("| ListContainerStats calls in %.1f s, 2 containers (%d with CPU) | | %d | |"
      % (stats_dt, with_cpu, calls))
print("| Slurm commands meanwhile (poller's squeue only) | | %d | |" % stats_cmds)
