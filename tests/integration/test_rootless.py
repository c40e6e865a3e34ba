"""hpcri as an unprivileged user (the Charliecloud model): user namespaces,
host network, no cgroups, no root anywhere.

Run as root, the tests create (idempotently) the user `hpcri-test` with
/etc/subuid and /etc/subgid ranges, start the real daemon as that user
(setpriv) with its own HOME and XDG_RUNTIME_DIR and the embedded unprivileged
defaults, and drive it over its socket: a pull from a local registry into the
user's store, pods in a user namespace (runc rootless, newuidmap for the
subordinate ids), containers on the read-only image with tmpfs scratch dirs,
CRI logs, ExecSync, stop grace periods, /proc-based stats, the charliecloud
handler, kill -9 recovery, and nothing left behind.  The daemon is stopped by
PID; processes of the user that belong to this run are killed by PID at the
end should a test fail half-way.
"""
import hashlib
import json
import os
import pwd
import random
import shutil
import signal
import stat
import subprocess
import tempfile
import time

import grpc
import pytest

from spdy_client import remote_command
from conftest import BUILD, REPO, Cri, Daemon, api_pb2, sanitizer_report

TOOLS = os.path.join(REPO, "tests", "tools")
USER = "hpcri-test"
SUBID = "200000:65536"


def _prereqs():
    if os.getuid() != 0:
        return "needs root to create the test user"
    for prog in ("runc", "conmon", "newuidmap", "newgidmap", "setpriv", "useradd"):
        if not shutil.which(prog, path="/usr/sbin:/usr/bin:/sbin:/bin"):
            return "%s is not installed" % prog
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            if int(f.read()) == 0:
                return "user namespaces are disabled"
    except OSError:
        pass
    return None


pytestmark = pytest.mark.skipif(_prereqs() is not None, reason=str(_prereqs()))


def _ensure_subid(path, user):
    """First range of `user` in /etc/subuid|subgid, adding SUBID if none."""
    lines = open(path).read().splitlines() if os.path.exists(path) else []
    for l in lines:
        f = l.split(":")
        if len(f) == 3 and f[0] == user:
            return int(f[1]), int(f[2])
    with open(path, "a") as f:
        f.write("%s:%s\n" % (user, SUBID))
    start, length = SUBID.split(":")
    return int(start), int(length)


@pytest.fixture(scope="module")
def user():
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
        pw = pwd.getpwnam(USER)
    sub_uid = _ensure_subid("/etc/subuid", USER)
    sub_gid = _ensure_subid("/etc/subgid", USER)
    return {"name": USER, "uid": pw.pw_uid, "gid": pw.pw_gid, "subuid": sub_uid,
            "subgid": sub_gid}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    d = tmp_path_factory.mktemp("rl-registry")
    port = 25000 + random.randrange(5000)
    subprocess.run([os.path.join(TOOLS, "registry.sh"), "start", str(d), str(port)], check=True,
                   env=dict(os.environ, REGISTRY_WATCH_PID=str(os.getpid())))
    try:
        subprocess.run(["/usr/bin/python3", os.path.join(TOOLS, "push_image.py"), "--registry",
                        "127.0.0.1:%d" % port, "--out", str(d / "images.json"), "--only",
                        "busybox"], check=True, stdout=subprocess.DEVNULL)
        yield "127.0.0.1:%d" % port
    finally:
        subprocess.run([os.path.join(TOOLS, "registry.sh"), "stop", str(d)])


def _proc_uid(pid):
    with open("/proc/%d/status" % pid) as f:
        for l in f:
            if l.startswith("Uid:"):
                return int(l.split()[1])
    return None


def _proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return s[s.rindex(")") + 2]
    except (OSError, ValueError):
        return None


def _ppid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        return int(s[s.rindex(")") + 2:].split()[1])
    except (OSError, ValueError):
        return 0


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _ours(base):
    """Live (non-zombie) processes of this run: a cmdline naming the run's
    base dir (hpcri, conmon, runc) or a descendant of one (pause, container
    processes, whatever uid they run as)."""
    pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    roots = {p for p in pids if base in _cmdline(p)}
    out = set()
    for p in pids:
        q, depth = p, 0
        while q > 1 and depth < 64:
            if q in roots:
                out.add(p)
                break
            q, depth = _ppid(q), depth + 1
    return {p for p in out if _proc_state(p) not in (None, "Z", "X")}


class RootlessEnv:
    """One unprivileged daemon: base dir owned by the user, HOME and
    XDG_RUNTIME_DIR inside it, socket and state at the unprivileged defaults."""

    def __init__(self, user, registry):
        self.user = user
        self.registry = registry
        self.base = tempfile.mkdtemp(prefix="hprl-", dir="/tmp")
        self.home = os.path.join(self.base, "home")
        self.xdg = os.path.join(self.base, "run")
        self.logs = os.path.join(self.base, "logs")
        for d in (self.home, self.xdg, self.logs):
            os.makedirs(d, mode=0o700)
        for d in (self.base, self.home, self.xdg, self.logs):
            os.chown(d, user["uid"], user["gid"])
        os.chmod(self.base, 0o755)
        self.conf = os.path.join(self.home, "hpcri.conf")
        with open(self.conf, "w") as f:
            f.write('[registry "%s"]\ninsecure = true\n\n[runtime]\ntype = oci\n\n'
                    '[runtime "charliecloud"]\ntype = charliecloud\n' % registry)
        os.chown(self.conf, user["uid"], user["gid"])
        self.socket = os.path.join(self.xdg, "hpcri", "hpcri.sock")
        self.store = os.path.join(self.home, ".local", "share", "hpcri")
        self.image = registry + "/test/busybox:latest"
        self.daemons = []
        self.d = None
        self.c = None

    def start(self, wrapper=(), timeout=20.0):
        d = Daemon(self.base)
        d.log = os.path.join(self.base, "hpcri-%d.log" % len(self.daemons))
        d.socket = self.socket
        d.args = ["setpriv", "--reuid=%d" % self.user["uid"], "--regid=%d" % self.user["gid"],
                  "--init-groups"] + list(wrapper) + [
                      os.path.join(BUILD, "hpcri"), "--config", self.conf, "--log-level", "debug"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("XDG_")}
        env.update(HOME=self.home, XDG_RUNTIME_DIR=self.xdg, USER=self.user["name"],
                   LOGNAME=self.user["name"], PATH="/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        d.env = env
        d.start(timeout=timeout)
        self.daemons.append(d)
        self.d = d
        if self.c:
            self.c.close()
        self.c = Cri(self.socket)
        return d

    def kill9(self):
        os.kill(self.d.pid, signal.SIGKILL)
        self.d.proc.wait()
        self.d._logf.close()

    def remove_all(self):
        for p in self.c.ListPodSandbox().items:
            self.c.RemovePodSandbox(pod_sandbox_id=p.id, timeout=60)

    def pod_config(self, name):
        return api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, namespace="rootless", uid="u-" + name),
            hostname=name, log_directory=os.path.join(self.logs, name))

    def ctr_config(self, name, command, **kw):
        return api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=name), image=api_pb2.ImageSpec(image=self.image),
            command=command, log_path=name + ".log", **kw)

    def run(self, pod_name, name, command, handler="", **kw):
        pc = self.pod_config(pod_name)
        pod = self.c.RunPodSandbox(config=pc, runtime_handler=handler, timeout=60).pod_sandbox_id
        cid = self.create(pod, pc, name, command, **kw)
        return pod, cid

    def create(self, pod, pc, name, command, start=True, **kw):
        cid = self.c.CreateContainer(pod_sandbox_id=pod, config=self.ctr_config(name, command, **kw),
                                     sandbox_config=pc, timeout=60).container_id
        if start:
            self.c.StartContainer(container_id=cid, timeout=60)
        return cid

    def pid_of(self, cid):
        p = os.path.join(self.store, "oci", "containers", cid, "pidfile")
        return int(open(p).read())

    def pause_pid(self, pod):
        p = os.path.join(self.store, "oci", "pods", pod, "pause", "pidfile")
        return int(open(p).read())


@pytest.fixture(scope="module")
def rl(user, registry):
    e = RootlessEnv(user, registry)
    try:
        e.start()
        e.c.PullImage(image=api_pb2.ImageSpec(image=e.image), timeout=120)
        yield e
        e.remove_all()
        rc = e.d.stop()
        assert rc == 0, "hpcri exited with %s:\n%s" % (rc, e.d.read_log())
        for d in e.daemons:
            report = sanitizer_report(d.read_log())
            assert report is None, "sanitizer: %s\n%s" % (report, d.read_log())
        # nothing of this run is left running
        deadline = time.monotonic() + 5
        while _ours(e.base) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _ours(e.base)
        assert not left, "processes left: %s" % [(p, _cmdline(p)) for p in left]
    finally:
        if e.c:
            e.c.close()
        for d in e.daemons:
            d.kill()  # by PID, no-op when already stopped
        for p in _ours(e.base):  # only after a failure: by PID
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(e.base, ignore_errors=True)


@pytest.fixture
def clean(rl):
    yield rl
    rl.remove_all()


def wait_for(pred, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def _tree_digest(root):
    """{path: (mode, uid, size, sha256)} of everything under root."""
    out = {}
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            p = os.path.join(dp, n)
            st = os.lstat(p)
            h = ""
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
            out[os.path.relpath(p, root)] = (oct(st.st_mode), st.st_uid, st.st_size, h)
    return out


def _image_rootfs(rl):
    out = subprocess.run(["find", os.path.join(rl.store, "images"), "-name", "busybox",
                          "-path", "*/bin/*"], capture_output=True, text=True).stdout.split()
    assert out, "no busybox in the user's store"
    return os.path.dirname(os.path.dirname(out[0]))


# ---------------------------------------------------------------------------


def test_daemon_runs_as_user_with_unprivileged_defaults(rl):
    assert _proc_uid(rl.d.pid) == rl.user["uid"]
    st = os.stat(rl.socket)
    assert stat.S_ISSOCK(st.st_mode) and st.st_uid == rl.user["uid"]
    assert os.path.isdir(rl.store)
    v = rl.c.Version(version="v1")
    assert v.runtime_api_version == "v1"
    # the pulled image is in the user's store, every file owned by the user,
    # no setuid/setgid bits (unpack.h rules)
    imgs = [i for i in rl.c.ListImages().images if rl.image in i.repo_tags]
    assert len(imgs) == 1
    root = _image_rootfs(rl)
    n = 0
    for dp, dns, fns in os.walk(os.path.join(rl.store, "images")):
        for name in dns + fns:
            s = os.lstat(os.path.join(dp, name))
            assert s.st_uid == rl.user["uid"], os.path.join(dp, name)
            assert not s.st_mode & (stat.S_ISUID | stat.S_ISGID), os.path.join(dp, name)
            n += 1
    assert n > 5 and os.path.exists(os.path.join(root, "bin", "sh"))


def test_lifecycle_in_user_namespace(clean):
    rl = clean
    c = rl.c
    uid, gid = rl.user["uid"], rl.user["gid"]
    sub_start, sub_len = rl.user["subuid"]
    before = _tree_digest(_image_rootfs(rl))
    pod, cid = rl.run("web", "main", [
        "sh", "-c", "trap '' TERM; echo hello; echo oops >&2; i=0; "
        "while [ $i -lt 300000 ]; do i=$((i+1)); done; while :; do sleep 1; done"])
    assert c.PodSandboxStatus(pod_sandbox_id=pod).status.state == api_pb2.SANDBOX_READY

    # the pause process: the user's uid on the host, its own user namespace
    # mapping 0 -> the user and 1.. -> the subordinate range, host network
    pause = rl.pause_pid(pod)
    assert _proc_uid(pause) == uid
    assert os.readlink("/proc/%d/ns/user" % pause) != os.readlink("/proc/self/ns/user")
    assert os.readlink("/proc/%d/ns/net" % pause) == os.readlink("/proc/self/ns/net")
    umap = [l.split() for l in open("/proc/%d/uid_map" % pause).read().splitlines()]
    assert ["0", str(uid), "1"] in umap
    assert ["1", str(sub_start), str(min(sub_len, 65536))] in umap

    st = c.ContainerStatus(container_id=cid).status
    assert st.state == api_pb2.CONTAINER_RUNNING and st.started_at >= st.created_at > 0
    init = rl.pid_of(cid)
    assert _proc_uid(init) == uid
    assert os.readlink("/proc/%d/ns/user" % init) == os.readlink("/proc/%d/ns/user" % pause)
    # no cgroup of its own: same as the daemon's
    assert open("/proc/%d/cgroup" % init).read() == open("/proc/%d/cgroup" % rl.d.pid).read()

    # ExecSync: root inside, the user outside
    r = c.ExecSync(container_id=cid, cmd=["sh", "-c", "id -u"], timeout=10)
    assert r.exit_code == 0 and r.stdout == b"0\n"
    # streaming Exec from the unprivileged daemon: pipes, then a terminal
    r = remote_command(c.Exec(container_id=cid, cmd=["sh", "-c", "id -u; cat; exit 2"],
                              stdin=True, stdout=True, stderr=True).url, stdin=b"via stdin\n")
    assert (r.stdout, r.exit_code) == (b"0\nvia stdin\n", 2), (r.stdout, r.error)
    r = remote_command(c.Exec(container_id=cid, cmd=["sh", "-c", "stty size"], tty=True,
                              stdout=True).url, tty=True, resize=(70, 20))
    assert r.stdout.strip() == b"20 70", r.stdout
    r = c.ExecSync(container_id=cid, cmd=["sh", "-c", "mkdir -p /tmp && echo data > /tmp/made-inside && "
                                          "cat /etc/hostname"], timeout=10)
    assert r.exit_code == 0 and r.stdout == b"web\n", r
    f = "/proc/%d/root/tmp/made-inside" % init
    s = os.stat(f)
    assert s.st_uid == uid and s.st_gid == gid and open(f).read() == "data\n"
    # the root is an overlay on the image, mounted by runc inside the user
    # namespace: writes land in the container's upper dir (owned by the user)
    upper = os.path.join(rl.store, "oci", "containers", cid, "upper")
    assert os.stat(os.path.join(upper, "tmp", "made-inside")).st_uid == uid
    r = c.ExecSync(container_id=cid, cmd=["sh", "-c", "grep ' / ' /proc/mounts; "
                                          "echo x > /etc/evil && rm /bin/cat && ls /bin/cat"],
                   timeout=10)
    assert r.stdout.startswith(b"overlay / overlay") and r.exit_code != 0, r
    assert open(os.path.join(upper, "etc", "evil")).read() == "x\n"
    assert stat.S_ISCHR(os.lstat(os.path.join(upper, "bin", "cat")).st_mode)  # whiteout
    r = c.ExecSync(container_id=cid, cmd=["sh", "-c", "echo e >&2; exit 7"], timeout=10)
    assert r.exit_code == 7 and r.stderr == b"e\n"

    # CRI log
    log = os.path.join(rl.logs, "web", "main.log")
    wait_for(lambda: os.path.exists(log) and "oops" in open(log).read(), what="log")
    parsed = {tuple(l.split(" ", 3)[1:]) for l in open(log).read().splitlines()}
    assert ("stdout", "F", "hello") in parsed and ("stderr", "F", "oops") in parsed
    assert os.stat(log).st_uid == uid

    # stats from /proc: real CPU time of the container's processes
    def cpu():
        for s in c.ListContainerStats().stats:
            if s.attributes.id == cid:
                return s
        raise AssertionError("no stats for %s" % cid)

    wait_for(lambda: cpu().cpu.usage_core_nano_seconds.value >= 50_000_000, timeout=30,
             what="CPU usage >= 50 ms")
    # the process keeps burning CPU: read /proc before asking for stats, so
    # the stats must be at least what /proc said a moment earlier
    ticks = sum(int(x) for x in open("/proc/%d/stat" % init).read().rsplit(")", 1)[1].split()[11:15])
    hz = os.sysconf("SC_CLK_TCK")
    s1 = cpu()
    assert s1.cpu.usage_core_nano_seconds.value >= ticks * 1_000_000_000 // hz
    assert s1.cpu.usage_core_nano_seconds.value < 120 * 1_000_000_000
    assert s1.memory.working_set_bytes.value > 100_000
    assert s1.writable_layer.used_bytes.value > 0 and s1.writable_layer.inodes_used.value >= 3
    one = c.ContainerStats(container_id=cid).stats
    assert one.cpu.usage_core_nano_seconds.value >= s1.cpu.usage_core_nano_seconds.value

    # stop: SIGTERM is ignored, so the 2 s grace runs out, then SIGKILL
    t0 = time.monotonic()
    c.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=2))
    assert time.monotonic() - t0 >= 1.9
    st = c.ContainerStatus(container_id=cid).status
    assert st.state == api_pb2.CONTAINER_EXITED and st.exit_code == 137
    assert st.finished_at > st.started_at

    c.RemoveContainer(container_id=cid)
    assert not c.ListContainers().containers
    assert not os.path.exists(os.path.join(rl.store, "oci", "containers", cid))
    c.StopPodSandbox(pod_sandbox_id=pod)
    assert c.PodSandboxStatus(pod_sandbox_id=pod).status.state == api_pb2.SANDBOX_NOTREADY
    c.RemovePodSandbox(pod_sandbox_id=pod)
    assert not c.ListPodSandbox().items
    assert os.listdir(os.path.join(rl.store, "oci", "pods")) == []
    assert os.listdir(os.path.join(rl.store, "oci", "containers")) == []
    # nothing running but the daemon, no mount of ours on the host
    wait_for(lambda: _ours(rl.base) == {rl.d.pid}, what="only the daemon left")
    assert rl.base not in open("/proc/self/mountinfo").read()
    # the shared image is untouched
    assert _tree_digest(_image_rootfs(rl)) == before


def test_subordinate_ids_and_image_protection(clean):
    rl = clean
    c = rl.c
    sub_start = rl.user["subuid"][0]
    before = _tree_digest(_image_rootfs(rl))
    pc = rl.pod_config("ids")
    pod, cid = rl.run("ids", "nobody", ["sleep", "1000"],
                      linux=api_pb2.LinuxContainerConfig(
                          security_context=api_pb2.LinuxContainerSecurityContext(
                              run_as_user=api_pb2.Int64Value(value=1000))))
    # container uid 1000 = subordinate id start + 999 on the host (newuidmap)
    assert _proc_uid(rl.pid_of(cid)) == sub_start + 999
    r = c.ExecSync(container_id=cid, cmd=["sh", "-c", "id -u"], timeout=10)
    assert r.stdout == b"1000\n"
    # the pod's /dev/shm is a directory of the pod on the host: a 0700
    # directory of the subordinate id there
    r = c.ExecSync(container_id=cid, cmd=["sh", "-c", "mkdir /dev/shm/d && touch /dev/shm/d/f && "
                                          "chmod 700 /dev/shm/d && stat -c %u /dev/shm/d/f"],
                   timeout=10)
    assert r.exit_code == 0 and r.stdout == b"1000\n", r
    shm = os.path.join(rl.store, "oci", "pods", pod, "shm", "d")
    assert os.lstat(shm).st_uid == sub_start + 999

    # even a privileged container (remounting its root, writing everywhere)
    # cannot change the shared image: the image is only an overlay lower dir;
    # it also leaves files of a subordinate id in a 0700 directory of its
    # writable layer, which the daemon's user cannot remove directly
    cid2 = rl.create(pod, pc, "writer", ["sh", "-c", "mount -o remount,bind,rw /; "
                                         "echo y >> /etc/passwd; rm -rf /bin/ls; chmod 777 /bin; "
                                         "touch /bin/new; mkdir -p /home/app/d; touch /home/app/d/f; "
                                         "chown -R 1000:1000 /home/app; chmod 700 /home/app "
                                         "/home/app/d; exit 3"],
                     linux=api_pb2.LinuxContainerConfig(
                         security_context=api_pb2.LinuxContainerSecurityContext(privileged=True)))
    st = wait_for(lambda: (lambda s: s if s.state == api_pb2.CONTAINER_EXITED else None)(
        c.ContainerStatus(container_id=cid2).status), what="writer exit")
    assert st.exit_code == 3
    assert _tree_digest(_image_rootfs(rl)) == before
    upper = os.path.join(rl.store, "oci", "containers", cid2, "upper")
    assert os.lstat(os.path.join(upper, "home", "app")).st_uid == sub_start + 999
    cid3 = rl.create(pod, pc, "reader", ["sh", "-c", "ls /bin/new; ls /bin/ls && exit 4"])
    st = wait_for(lambda: (lambda s: s if s.state == api_pb2.CONTAINER_EXITED else None)(
        c.ContainerStatus(container_id=cid3).status), what="reader exit")
    assert st.exit_code == 4
    for x in (cid, cid2, cid3):
        c.RemoveContainer(container_id=x)
    assert os.listdir(os.path.join(rl.store, "oci", "containers")) == []
    c.RemovePodSandbox(pod_sandbox_id=pod)
    assert os.listdir(os.path.join(rl.store, "oci", "pods")) == []


def test_charliecloud_handler(clean):
    rl = clean
    c = rl.c
    pod, cid = rl.run("cc", "main", ["sh", "-c", "echo from-charliecloud; sleep 1000"],
                      handler="charliecloud")
    assert c.PodSandboxStatus(pod_sandbox_id=pod).status.state == api_pb2.SANDBOX_READY
    assert [p.runtime_handler for p in c.ListPodSandbox().items] == ["charliecloud"]
    init = rl.pid_of(cid)
    assert _proc_uid(init) == rl.user["uid"]
    assert os.readlink("/proc/%d/ns/net" % init) == os.readlink("/proc/self/ns/net")
    assert os.readlink("/proc/%d/ns/user" % init) != os.readlink("/proc/self/ns/user")
    r = c.ExecSync(container_id=cid, cmd=["sh", "-c", "id -u"], timeout=10)
    assert r.exit_code == 0 and r.stdout == b"0\n"
    log = os.path.join(rl.logs, "cc", "main.log")
    wait_for(lambda: os.path.exists(log) and "from-charliecloud" in open(log).read(), what="log")
    c.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1))
    assert c.ContainerStatus(container_id=cid).status.state == api_pb2.CONTAINER_EXITED
    c.RemovePodSandbox(pod_sandbox_id=pod)
    assert not c.ListContainers().containers


def test_recovery_after_kill9(clean):
    rl = clean
    c = rl.c
    pc = rl.pod_config("rec")
    pod, running = rl.run("rec", "running", ["sleep", "1000"])
    victim = rl.create(pod, pc, "victim", ["sleep", "1000"])
    done = rl.create(pod, pc, "done", ["sh", "-c", "exit 5"])
    created = rl.create(pod, pc, "created", ["sleep", "1000"], start=False)
    wait_for(lambda: c.ContainerStatus(container_id=done).status.state == api_pb2.CONTAINER_EXITED,
             what="exit")
    old = rl.d.pid
    rl.kill9()
    # a container that dies while the daemon is down (conmon records it)
    os.kill(rl.pid_of(victim), signal.SIGKILL)
    exits = os.path.join(rl.xdg, "hpcri", "oci", "exits", victim)
    wait_for(lambda: os.path.exists(exits), what="conmon's exit file")
    rl.start()
    c = rl.c
    assert rl.d.pid != old and _proc_uid(rl.d.pid) == rl.user["uid"]
    states = {x.id: x.state for x in c.ListContainers().containers}
    assert states == {running: api_pb2.CONTAINER_RUNNING, victim: api_pb2.CONTAINER_EXITED,
                      done: api_pb2.CONTAINER_EXITED, created: api_pb2.CONTAINER_CREATED}, states
    assert c.ContainerStatus(container_id=victim).status.exit_code == 137
    st = c.ContainerStatus(container_id=done).status
    assert st.exit_code == 5 and st.reason == "Error"
    assert c.PodSandboxStatus(pod_sandbox_id=pod).status.state == api_pb2.SANDBOX_READY
    r = c.ExecSync(container_id=running, cmd=["sh", "-c", "id -u"], timeout=10)
    assert r.stdout == b"0\n"
    c.StartContainer(container_id=created, timeout=60)
    assert c.ContainerStatus(container_id=created).status.state == api_pb2.CONTAINER_RUNNING
    c.StopContainer(api_pb2.StopContainerRequest(container_id=running, timeout=1))
    st = c.ContainerStatus(container_id=running).status
    assert st.state == api_pb2.CONTAINER_EXITED and st.exit_code == 137
    c.RemovePodSandbox(pod_sandbox_id=pod, timeout=60)
    assert not c.ListContainers().containers and not c.ListPodSandbox().items
    wait_for(lambda: _ours(rl.base) == {rl.d.pid}, what="only the daemon left")


@pytest.mark.valgrind
@pytest.mark.slow
def test_rootless_under_valgrind(rl):
    """A second unprivileged daemon (own dirs) under valgrind: pull, pod,
    container, exec, stats, stop, remove; no error, no definite leak."""
    v = RootlessEnv(rl.user, rl.registry)
    vlog = os.path.join(v.base, "valgrind.log")
    try:
        v.start(wrapper=["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
                         "--error-exitcode=99", "--log-file=" + vlog], timeout=120)
        v.c.PullImage(image=api_pb2.ImageSpec(image=v.image), timeout=120)
        pod, cid = v.run("vg", "main", ["sleep", "1000"])
        assert v.c.ExecSync(container_id=cid, cmd=["sh", "-c", "id -u"], timeout=30).stdout == b"0\n"
        assert any(s.attributes.id == cid for s in v.c.ListContainerStats(timeout=30).stats)
        v.c.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1), timeout=60)
        v.c.RemovePodSandbox(pod_sandbox_id=pod, timeout=60)
        v.c.close()
        v.c = None
        rc = v.d.stop(signal.SIGTERM, timeout=120)
        report = open(vlog).read()
        assert rc == 0, report[-4000:]
        assert "ERROR SUMMARY: 0 errors" in report, report[-4000:]
        assert "definitely lost: 0 bytes" in report or "no leaks are possible" in report, \
            report[-4000:]
    finally:
        for d in v.daemons:
            d.kill()
        for p in _ours(v.base):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(v.base, ignore_errors=True)
