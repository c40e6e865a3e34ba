"""The daemon over its real socket with python3-grpcio: Version, Status,
ImageFsInfo, images, runtime config, handler validation, lock file, signals,
config reload, and crash consistency of the state store."""
import json
import os
import signal
import sqlite3
import stat
import subprocess
import threading
import time

import grpc
import pytest

from conftest import Cri, api_pb2, BUILD, REPO


def test_version(cri):
    v = cri.Version(version="v1")
    assert v.runtime_name == "hpcri"
    assert v.runtime_api_version == "v1"
    assert v.version == "0.1.0"
    assert v.runtime_version


def test_version_with_crictl_style_authority(daemon):
    # grpc-go (crictl, kubelet) sends :authority = the socket path.
    c = Cri(daemon.socket, authority=daemon.socket)
    try:
        assert c.Version().runtime_name == "hpcri"
    finally:
        c.close()


def test_status_conditions_and_verbose_info(cri, daemon):
    st = cri.Status(verbose=True)
    conds = {c.type: c for c in st.status.conditions}
    assert set(conds) == {"RuntimeReady", "NetworkReady"}
    # runc, conmon and hpcri-pause are installed: the oci backend is ready.
    assert conds["RuntimeReady"].status is True, conds["RuntimeReady"].message
    assert conds["NetworkReady"].status is True
    info = json.loads(st.info["info"])
    assert info["socket"] == daemon.socket
    assert info["root"] == daemon.root
    assert info["handlers"][0]["name"] == "" and info["handlers"][0]["type"] == "oci"
    assert info["pid"] == daemon.pid
    # Not verbose: no info map.
    assert len(cri.Status().info) == 0


def test_runtime_not_ready_names_what_is_missing(tmp_path, daemon_factory):
    conf = tmp_path / "hpcri.conf"
    conf.write_text("[runtime]\ntype = oci\nruntime_path = /nonexistent/runc\n")
    d = daemon_factory(config=str(conf), sub="d")
    c = Cri(d.socket)
    try:
        conds = {x.type: x for x in c.Status().status.conditions}
        assert conds["RuntimeReady"].status is False
        assert conds["RuntimeReady"].reason == "BackendNotReady"
        assert "/nonexistent/runc" in conds["RuntimeReady"].message
    finally:
        c.close()


def test_image_fs_info_counts_real_bytes(cri, daemon):
    first = cri.ImageFsInfo().image_filesystems
    assert len(first) == 1
    mount = first[0].fs_id.mountpoint
    assert mount == os.path.join(daemon.root, "images")
    before_bytes = first[0].used_bytes.value
    before_inodes = first[0].inodes_used.value
    os.makedirs(os.path.join(mount, "probe"), exist_ok=True)
    with open(os.path.join(mount, "probe", "blob"), "wb") as f:
        f.write(os.urandom(256 * 1024))
    after = cri.ImageFsInfo().image_filesystems[0]
    assert after.inodes_used.value == before_inodes + 2
    assert after.used_bytes.value >= before_bytes + 256 * 1024
    assert after.timestamp > 0


def test_images_empty_store(cri):
    assert len(cri.ListImages().images) == 0
    # CRI contract: an unknown image is an empty response, not an error.
    resp = cri.ImageStatus(image=api_pb2.ImageSpec(image="busybox"))
    assert not resp.HasField("image")
    with pytest.raises(grpc.RpcError) as e:
        cri.ImageStatus(image=api_pb2.ImageSpec(image=""))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_pods_and_containers_empty(cri):
    assert len(cri.ListPodSandbox().items) == 0
    assert len(cri.ListContainers().containers) == 0
    with pytest.raises(grpc.RpcError) as e:
        cri.PodSandboxStatus(pod_sandbox_id="abc123")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert "abc123" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        cri.ContainerStatus(container_id="")
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_update_runtime_config_persists_pod_cidr(cri, daemon):
    cfg = api_pb2.RuntimeConfig(network_config=api_pb2.NetworkConfig(pod_cidr="10.244.0.0/24"))
    cri.UpdateRuntimeConfig(runtime_config=cfg)
    info = json.loads(cri.Status(verbose=True).info["info"])
    assert info["podCIDR"] == "10.244.0.0/24"
    bad = api_pb2.RuntimeConfig(network_config=api_pb2.NetworkConfig(pod_cidr="10.244.0.0/99"))
    with pytest.raises(grpc.RpcError) as e:
        cri.UpdateRuntimeConfig(runtime_config=bad)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "10.244.0.0/99" in e.value.details()
    # The bad value did not replace the good one.
    assert json.loads(cri.Status(verbose=True).info["info"])["podCIDR"] == "10.244.0.0/24"


def _pod_config(name="p1"):
    return api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, namespace="default", uid="u-" + name))


def test_run_pod_sandbox_unknown_handler_names_configured_ones(tmp_path, daemon_factory):
    conf = tmp_path / "hpcri.conf"
    conf.write_text("[runtime]\ntype = oci\n\n[runtime \"batch\"]\ntype = slurm\n"
                    "shared_dir = /tmp\n")
    d = daemon_factory(config=str(conf), sub="d")
    c = Cri(d.socket)
    try:
        with pytest.raises(grpc.RpcError) as e:
            c.RunPodSandbox(config=_pod_config(), runtime_handler="gpu")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        msg = e.value.details()
        assert '"gpu"' in msg and '"batch"' in msg and "slurm" in msg
        # A known handler passes validation and reaches its backend: here the
        # slurm backend, whose sbatch finds no cluster and says so.
        with pytest.raises(grpc.RpcError) as e:
            c.RunPodSandbox(config=_pod_config(), runtime_handler="batch")
        assert "unknown runtime handler" not in e.value.details()
        assert e.value.code() in (grpc.StatusCode.FAILED_PRECONDITION,
                                  grpc.StatusCode.UNAVAILABLE), e.value.details()
        assert "sbatch" in e.value.details() or "slurm" in e.value.details()
        assert len(c.ListPodSandbox().items) == 0  # nothing half-created
    finally:
        c.close()


def test_run_pod_sandbox_bad_requests(cri):
    with pytest.raises(grpc.RpcError) as e:
        cri.RunPodSandbox()
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "config" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        cri.RunPodSandbox(config=api_pb2.PodSandboxConfig(hostname="x"))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata" in e.value.details()


def test_unimplemented_and_unknown_methods(cri):
    with pytest.raises(grpc.RpcError) as e:
        cri.CheckpointContainer(container_id="x")
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "CheckpointContainer" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        cri.call("/runtime.v1.RuntimeService/Bogus", api_pb2.VersionRequest(),
                 api_pb2.VersionResponse)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "Bogus" in e.value.details()


def test_every_upstream_method_is_registered(cri):
    """No method of either service falls through to 'unknown method'."""
    for svc in api_pb2.DESCRIPTOR.services_by_name.values():
        for m in svc.methods:
            path = "/%s/%s" % (svc.full_name, m.name)
            req_t = getattr(api_pb2, m.input_type.name)
            resp_t = getattr(api_pb2, m.output_type.name)
            if m.server_streaming:
                fn = cri.channel.unary_stream(path, request_serializer=req_t.SerializeToString,
                                              response_deserializer=resp_t.FromString)
                try:
                    for _ in fn(req_t(), timeout=1):
                        break
                    continue
                except grpc.RpcError as e:
                    err = e
            else:
                fn = cri.channel.unary_unary(path, request_serializer=req_t.SerializeToString,
                                             response_deserializer=resp_t.FromString)
                try:
                    fn(req_t(), timeout=5)
                    continue
                except grpc.RpcError as e:
                    err = e
            assert "unknown method" not in (err.details() or ""), path


def test_socket_mode_and_lock(daemon):
    mode = stat.S_IMODE(os.stat(daemon.socket).st_mode)
    assert mode == (0o660 if os.getuid() == 0 else 0o600)
    with open(daemon.socket + ".lock") as f:
        assert int(f.read().strip()) == daemon.pid


def test_second_instance_refuses_to_start(daemon):
    res = subprocess.run([os.path.join(BUILD, "hpcri"), "--listen", daemon.socket, "--root",
                          daemon.root + "2"], capture_output=True, text=True, timeout=30)
    assert res.returncode != 0
    assert "already serving" in res.stderr and str(daemon.pid) in res.stderr
    # The first instance still serves.
    c = Cri(daemon.socket)
    try:
        assert c.Version().runtime_name == "hpcri"
    finally:
        c.close()


def test_sigterm_graceful_shutdown_unlinks_socket(daemon_factory):
    d = daemon_factory()
    assert os.path.exists(d.socket)
    rc = d.stop(signal.SIGTERM)
    assert rc == 0
    assert not os.path.exists(d.socket)
    assert "shutting down" in d.read_log()


def test_sighup_reloads_config_and_reports_changes(tmp_path, daemon_factory):
    conf = tmp_path / "hpcri.conf"
    conf.write_text("[hpcri]\nlog_level = info\n")
    d = daemon_factory(config=str(conf), sub="d", extra_args=())
    # --log-level debug on the command line wins; drop it for this daemon.
    conf.write_text("[hpcri]\nlog_level = warn\nworkers = 7\n\n[runtime \"batch\"]\ntype = slurm\n"
                    "shared_dir = /tmp\n")
    os.kill(d.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "reloaded" not in d.read_log():
        time.sleep(0.05)
    log = d.read_log()
    assert "reloaded" in log
    assert 'handler "batch" added' in log
    assert "workers" in log and "restart" in log
    c = Cri(d.socket)
    try:
        info = json.loads(c.Status(verbose=True).info["info"])
        assert [h["name"] for h in info["handlers"]] == ["", "batch"]
    finally:
        c.close()
    # A broken file is refused and the old config kept.
    conf.write_text("[hpcri]\nlog_level = loud\n")
    os.kill(d.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and "not reloaded" not in d.read_log():
        time.sleep(0.05)
    assert "not reloaded" in d.read_log()
    c = Cri(d.socket)
    try:
        info = json.loads(c.Status(verbose=True).info["info"])
        assert [h["name"] for h in info["handlers"]] == ["", "batch"]
    finally:
        c.close()


def test_check_config(tmp_path):
    good = os.path.join(REPO, "examples", "hpcri.conf")
    res = subprocess.run([os.path.join(BUILD, "hpcri"), "--check-config", good],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "valid" in res.stdout and "slurm" in res.stdout
    bad = tmp_path / "bad.conf"
    bad.write_text("[runtime]\ntype = oci\nbogus_key = 1\n")
    res = subprocess.run([os.path.join(BUILD, "hpcri"), "--check-config", str(bad)],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 1
    assert "bogus_key" in res.stderr and ":3" in res.stderr


def test_kill9_leaves_consistent_store(daemon_factory):
    """SIGKILL while the daemon commits state changes: after a restart the
    database passes integrity_check and holds the last acknowledged value."""
    d = daemon_factory(sub="k")
    acked = []
    stop = threading.Event()

    def writer():
        c = Cri(d.socket)
        i = 0
        while not stop.is_set():
            cidr = "10.%d.%d.0/24" % (i // 256 % 256, i % 256)
            try:
                c.UpdateRuntimeConfig(runtime_config=api_pb2.RuntimeConfig(
                    network_config=api_pb2.NetworkConfig(pod_cidr=cidr)), timeout=2)
                acked.append(cidr)
            except grpc.RpcError:
                break
            i += 1
        c.close()

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.7)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    stop.set()
    t.join()
    assert len(acked) > 10
    db = sqlite3.connect(os.path.join(d.root, "hpcri.db"))
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    # Restart on the same root: the last acknowledged CIDR (or one written just
    # after it, whose reply was lost with the process) is there.
    d.proc = None
    d.start()
    c = Cri(d.socket)
    try:
        cidr = json.loads(c.Status(verbose=True).info["info"])["podCIDR"]
    finally:
        c.close()
    i_last = acked.index(acked[-1])
    allowed = set(acked[i_last:]) | {"10.%d.%d.0/24" % ((i_last + 1) // 256 % 256,
                                                        (i_last + 1) % 256)}
    assert cidr in allowed
