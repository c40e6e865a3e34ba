"""Image service end to end: the real daemon over its socket, a real
docker-registry (tests/tools/registry.sh) on 127.0.0.1, images built here.

PullImage (tag, digest, index, gzip/zstd/plain, whiteouts, auth, mirrors,
schema1, concurrency, SIGKILL mid-pull), ImageStatus/ListImages/ImageFsInfo,
RemoveImage + GC, and the ImportImage admin RPC (OCI layout, OCI archive,
docker save, malicious archives).
"""
import base64
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time

import grpc
import pytest

from conftest import REPO, BUILD, Cri, api_pb2

sys.path.insert(0, os.path.join(REPO, "tests", "tools"))
import push_image as pi  # noqa: E402

import hpcri_pb2  # noqa: E402  (build/py)

REGISTRY_SH = os.path.join(REPO, "tests", "tools", "registry.sh")
FAKE_REGISTRY = os.path.join(REPO, "tests", "tools", "fake_registry.py")
L_TAR = "application/vnd.oci.image.layer.v1.tar"
L_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
L_ZST = "application/vnd.oci.image.layer.v1.tar+zstd"

pytestmark = pytest.mark.skipif(not os.path.exists("/usr/bin/docker-registry"),
                                reason="docker-registry not installed")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    def __init__(self, d, creds=None):
        self.dir = str(d)
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        env = dict(os.environ, REGISTRY_WATCH_PID=str(os.getpid()))
        args = [REGISTRY_SH, "start", self.dir, str(self.port)] + ([creds] if creds else [])
        subprocess.run(args, check=True, env=env)
        self.api = pi.Registry(self.host, creds)

    def stop(self):
        subprocess.run([REGISTRY_SH, "stop", self.dir], check=False)


def tar(entries):
    """entries: (name, kind, payload[, mode]) with kind file/dir/link/hardlink."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            name, kind, payload = e[:3]
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            ti.mode = e[3] if len(e) > 3 else (0o755 if kind == "dir" else 0o644)
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            elif kind == "link":
                ti.type = tarfile.SYMTYPE
                ti.linkname = payload
                tf.addfile(ti)
            elif kind == "hardlink":
                ti.type = tarfile.LNKTYPE
                ti.linkname = payload
                tf.addfile(ti)
            else:
                ti.size = len(payload)
                tf.addfile(ti, io.BytesIO(payload))
    return buf.getvalue()


def push(reg, repo, tag, layers, user="0", **kw):
    """layers: [(raw tar, compression, media type)]; returns push_image's dict + config."""
    out = pi.push_image(reg.api, repo, tag, layers, **kw)
    return out


# Layers of the "whiteout" image, applied in order.
WH1 = tar([("a", "dir", None), ("a/x", "file", b"x1"), ("a/y", "file", b"y1"),
           ("o", "dir", None), ("o/old", "file", b"old"), ("f", "file", b"first"),
           ("g", "file", b"gee"), ("h", "hardlink", "g")])
WH2 = tar([("a/.wh.x", "file", b""), ("o", "dir", None), ("o/.wh..wh..opq", "file", b""),
           ("o/new", "file", b"new"), ("f", "file", b"second", 0o600)])
WH3 = tar([("z", "file", b"zed"), ("a/y", "file", b"y3")])


@pytest.fixture(scope="module")
def reg(tmp_path_factory):
    r = Registry(tmp_path_factory.mktemp("registry"))
    bb = pi.busybox_tar()
    r.busybox = push(r, "test/busybox", "1", [(bb, "gzip", L_GZ)])
    r.api.push_manifest("test/busybox", "also", pi.OCI_MANIFEST,
                        json.loads(json.dumps(manifest_doc(r.busybox))))
    r.whiteout = push(r, "test/whiteout", "v1",
                      [(WH1, "none", L_TAR), (WH2, "gzip", L_GZ), (WH3, "zstd", L_ZST)])
    r.index = pi.push_multiarch(r.api, "test/index", pi.OCI_INDEX, pi.OCI_MANIFEST, pi.OCI_CONFIG,
                                L_GZ)
    r.docker = push(r, "test/docker", "v1", [(bb, "gzip", pi.DOCKER_LAYER)],
                    manifest_type=pi.DOCKER_MANIFEST, config_type=pi.DOCKER_CONFIG)
    r.mirror = push(r, "foo/bar", "1", [(bb, "gzip", L_GZ)])
    yield r
    r.stop()


def manifest_doc(img):
    return {"schemaVersion": 2, "mediaType": pi.OCI_MANIFEST,
            "config": {"mediaType": pi.OCI_CONFIG, "digest": img["config_digest"],
                       "size": img["config_size"]},
            "layers": [{k: l[k] for k in ("mediaType", "digest", "size")}
                       for l in img["layers"]]}


def config_for(tmp, *sections):
    path = os.path.join(str(tmp), "hpcri.conf")
    with open(path, "w") as f:
        f.write("\n".join(sections) + "\n")
    return path


def insecure(reg):
    return '[registry "%s"]\ninsecure = true\n' % reg.host


@pytest.fixture
def env(reg, daemon_factory, tmp_path):
    """A daemon configured for the module registry, and a client."""
    d = daemon_factory(config=config_for(tmp_path, insecure(reg)))
    c = Cri(d.socket)
    yield d, c
    c.close()


def pull(c, image, timeout=120, **auth):
    req = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image))
    if auth:
        req.auth.CopyFrom(api_pb2.AuthConfig(**auth))
    return c.PullImage(req, timeout=timeout).image_ref


def status(c, image, verbose=False):
    return c.ImageStatus(image=api_pb2.ImageSpec(image=image), verbose=verbose)


def remove(c, image):
    return c.RemoveImage(image=api_pb2.ImageSpec(image=image))


def blob_files(d):
    p = os.path.join(d.root, "images", "blobs", "sha256")
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def chain_dirs(d):
    p = os.path.join(d.root, "images", "layers", "sha256")
    return sorted(os.listdir(p)) if os.path.isdir(p) else []


def chain_id(diff_ids):
    c = diff_ids[0]
    for d in diff_ids[1:]:
        c = "sha256:" + hashlib.sha256((c + " " + d).encode()).hexdigest()
    return c


def rootfs(d, diff_ids):
    return os.path.join(d.root, "images", "layers", "sha256", chain_id(diff_ids)[7:])


# --------------------------------------------------------------------------
# PullImage


def test_pull_by_tag_status_list_and_fsinfo(reg, env):
    d, c = env
    name = reg.host + "/test/busybox:1"
    ref = pull(c, name)
    assert ref == reg.busybox["config_digest"]
    st = status(c, name, verbose=True)
    img = st.image
    assert img.id == ref
    assert list(img.repo_tags) == [name]
    assert list(img.repo_digests) == [reg.host + "/test/busybox@" +
                                      reg.busybox["manifest_digest"]]
    assert img.size == reg.busybox["config_size"] + sum(l["size"] for l in reg.busybox["layers"])
    assert img.uid.value == 0
    cfg = json.loads(st.info["info"])
    assert cfg["config"]["Labels"]["org.hpcri.test"] == "busybox"
    assert cfg["rootfs"]["diff_ids"] == [l["diff_id"] for l in reg.busybox["layers"]]
    # by id, id prefix and short name forms
    assert status(c, ref).image.id == ref
    assert status(c, ref[7:19]).image.id == ref
    listed = c.ListImages().images
    assert [i.id for i in listed] == [ref]
    # the rootfs: busybox binary hard-linked identically to the layer content
    root = rootfs(d, [l["diff_id"] for l in reg.busybox["layers"]])
    with open(os.path.join(root, "bin", "busybox"), "rb") as f, open("/bin/busybox", "rb") as g:
        assert f.read() == g.read()
    assert os.readlink(os.path.join(root, "bin", "sh")) == "busybox"
    fs = c.ImageFsInfo().image_filesystems[0]
    assert fs.used_bytes.value >= os.path.getsize("/bin/busybox")
    assert fs.inodes_used.value >= 5
    assert "info: pull" in d.read_log() or "layer" in d.read_log()
    # pulling again downloads nothing
    blobs = blob_files(d)
    assert pull(c, name) == ref
    assert blob_files(d) == blobs
    assert "already present" in d.read_log()


def test_pull_by_digest_and_docker_schema2(reg, env):
    d, c = env
    ref = pull(c, "%s/test/busybox@%s" % (reg.host, reg.busybox["manifest_digest"]))
    assert ref == reg.busybox["config_digest"]
    img = status(c, ref).image
    assert list(img.repo_tags) == []
    assert list(img.repo_digests) == ["%s/test/busybox@%s" % (reg.host,
                                                               reg.busybox["manifest_digest"])]
    # a wrong digest for an existing repo: NOT_FOUND, nothing recorded
    with pytest.raises(grpc.RpcError) as ei:
        pull(c, "%s/test/busybox@sha256:%s" % (reg.host, "0" * 64))
    assert ei.value.code() == grpc.StatusCode.NOT_FOUND
    ref2 = pull(c, reg.host + "/test/docker:v1")
    assert ref2 == reg.docker["config_digest"]
    # Same config blob as test/busybox: the same image, now with both names.
    assert ref2 == ref
    imgs = c.ListImages().images
    assert len(imgs) == 1
    assert list(imgs[0].repo_tags) == [reg.host + "/test/docker:v1"]
    assert len(imgs[0].repo_digests) == 2


def test_pull_index_picks_amd64(reg, env):
    d, c = env
    ref = pull(c, reg.host + "/test/index")  # :latest is the index
    st = status(c, ref, verbose=True)
    cfg = json.loads(st.info["info"])
    assert cfg["architecture"] == "amd64"
    assert cfg["config"]["Labels"]["org.hpcri.test"] == "amd64"
    assert list(st.image.repo_digests) == ["%s/test/index@%s" % (reg.host, reg.index["digest"])]


def test_whiteouts_gzip_zstd_rootfs(reg, env):
    d, c = env
    ref = pull(c, reg.host + "/test/whiteout:v1")
    assert ref == reg.whiteout["config_digest"]
    diff_ids = [l["diff_id"] for l in reg.whiteout["layers"]]
    top = rootfs(d, diff_ids)
    rd = lambda p: open(os.path.join(top, p), "rb").read()  # noqa: E731
    assert not os.path.exists(os.path.join(top, "a", "x"))          # whiteout
    assert rd("a/y") == b"y3"                                         # replaced in layer 3
    assert not os.path.exists(os.path.join(top, "o", "old"))        # opaque dir
    assert rd("o/new") == b"new"
    assert rd("f") == b"second"
    assert os.stat(os.path.join(top, "f")).st_mode & 0o777 == 0o600
    assert rd("z") == b"zed"
    assert os.stat(os.path.join(top, "h")).st_ino == os.stat(os.path.join(top, "g")).st_ino
    # the lower chain dirs are untouched: hard links were replaced, never written through
    base = rootfs(d, diff_ids[:1])
    mid = rootfs(d, diff_ids[:2])
    assert open(os.path.join(base, "f"), "rb").read() == b"first"
    assert os.stat(os.path.join(base, "f")).st_mode & 0o777 == 0o644
    assert open(os.path.join(base, "a", "x"), "rb").read() == b"x1"
    assert open(os.path.join(base, "o", "old"), "rb").read() == b"old"
    assert open(os.path.join(mid, "a", "y"), "rb").read() == b"y1"
    # unchanged files share the inode (no data copied)
    assert os.stat(os.path.join(base, "g")).st_ino == os.stat(os.path.join(top, "g")).st_ino
    assert os.stat(os.path.join(mid, "o", "new")).st_ino == \
        os.stat(os.path.join(top, "o", "new")).st_ino


def test_mirror_only(reg, daemon_factory, tmp_path):
    conf = config_for(tmp_path, '[registry "gcr.io"]\nmirrors = http://%s\nmirror_only = true\n'
                      % reg.host)
    d = daemon_factory(config=conf)
    c = Cri(d.socket)
    ref = pull(c, "gcr.io/foo/bar:1")
    assert ref == reg.mirror["config_digest"]
    assert list(status(c, "gcr.io/foo/bar:1").image.repo_tags) == ["gcr.io/foo/bar:1"]
    assert "gcr.io/foo/bar" in d.read_log()
    c.close()


def test_auth(tmp_path, daemon_factory):
    r = Registry(tmp_path / "authreg", "alice:s3cret")
    try:
        img = push(r, "private/bb", "1", [(pi.busybox_tar(), "gzip", L_GZ)])
        d = daemon_factory(config=config_for(tmp_path, insecure(r)), sub="d")
        c = Cri(d.socket)
        name = r.host + "/private/bb:1"
        for bad in ({}, {"username": "alice", "password": "wrong"}):
            with pytest.raises(grpc.RpcError) as ei:
                pull(c, name, **bad)
            assert ei.value.code() == grpc.StatusCode.UNAUTHENTICATED, ei.value.details()
            assert r.host in ei.value.details() and "401" in ei.value.details()
        assert len(c.ListImages().images) == 0
        assert pull(c, name, username="alice", password="s3cret") == img["config_digest"]
        remove(c, name)
        b64 = base64.b64encode(b"alice:s3cret").decode()
        assert pull(c, name, auth=b64) == img["config_digest"]
        c.close()
    finally:
        r.stop()


def test_schema1_rejected(tmp_path, daemon):
    fdir = tmp_path / "fake"
    fdir.mkdir()
    proc = subprocess.Popen([sys.executable, FAKE_REGISTRY, str(fdir)])
    try:
        for _ in range(200):
            if (fdir / "port").exists() and (fdir / "port").read_text().strip():
                break
            time.sleep(0.05)
        port = int((fdir / "port").read_text())
        c = Cri(daemon.socket)
        with pytest.raises(grpc.RpcError) as ei:
            pull(c, "127.0.0.1:%d/schema1:latest" % port)
        assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "schema1" in ei.value.details() or "schema 1" in ei.value.details()
        assert len(c.ListImages().images) == 0
        c.close()
    finally:
        proc.kill()
        proc.wait()


def test_concurrent_pulls_share_blobs(reg, env):
    d, c = env
    base1 = tar([("base1", "file", os.urandom(3 << 20))])
    base2 = tar([("base2", "file", os.urandom(2 << 20))])
    imgs = []
    for i in range(4):
        top = tar([("top", "file", b"top%d" % i)])
        imgs.append(push(reg, "test/shared%d" % i, "v1",
                         [(base1, "gzip", L_GZ), (base2, "none", L_TAR), (top, "zstd", L_ZST)]))
    names = [reg.host + "/test/shared%d:v1" % (i % 4) for i in range(8)]
    results, errors = [None] * 8, []

    def run(i):
        try:
            cc = Cri(d.socket)
            results[i] = pull(cc, names[i])
            cc.close()
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == []
    assert results == [imgs[i % 4]["config_digest"] for i in range(8)]
    blobs = {l["digest"][7:] for im in imgs for l in im["layers"]}
    assert len(blobs) == 2 + 4
    assert blob_files(d) == sorted(blobs)
    # one chain per distinct prefix: base1, base1+base2, and 4 tops
    assert len(chain_dirs(d)) == 6
    assert len(c.ListImages().images) == 4
    # the shared base layers were downloaded once
    log = d.read_log()
    assert log.count("%s: downloading" % imgs[0]["layers"][0]["digest"]) == 1


CTL = os.environ.get("HPCRI_CTL", os.path.join(BUILD, "hpcri-ctl"))


def admin_pull(c, image, timeout=120):
    """hpcri.v1.Admin/PullImage: the list of PullProgress messages."""
    fn = c.channel.unary_stream("/hpcri.v1.Admin/PullImage",
                                request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=hpcri_pb2.PullProgress.FromString)
    req = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image))
    return list(fn(req, timeout=timeout))


def test_admin_pull_progress_stream_and_ctl(reg, env):
    d, c = env
    layers = [(tar([("l%d" % i, "file", os.urandom(6 << 20))]), "gzip", L_GZ) for i in range(4)]
    img = push(reg, "test/progress", "v1", layers)
    total = sum(l["size"] for l in img["layers"])
    name = reg.host + "/test/progress:v1"

    msgs = admin_pull(c, name)
    P = hpcri_pb2.PullProgress
    assert len(msgs) >= 6, msgs
    assert msgs[0].phase == P.RESOLVING
    phases = [m.phase for m in msgs]
    assert phases == sorted(phases), phases  # resolving, downloading, unpacking, done
    done = [m.bytes_done for m in msgs]
    assert done == sorted(done) and done[-1] == total, done
    assert all(m.bytes_total == total for m in msgs[1:])
    assert all(m.layer_count == 4 for m in msgs[1:])
    assert [m.layers_done for m in msgs] == sorted(m.layers_done for m in msgs)
    assert {m.layer_digest for m in msgs if m.layer_digest} <= {l["digest"] for l in img["layers"]}
    last = msgs[-1]
    assert last.phase == P.DONE and last.layers_done == 4
    assert last.image_id == img["config_digest"]
    assert all(m.image_id == "" for m in msgs[:-1])
    # the CRI PullImage of the same image (now warm) gives the same id
    assert pull(c, name) == last.image_id
    assert status(c, name).image.id == last.image_id
    warm = admin_pull(c, name)
    assert warm[-1].phase == P.DONE and warm[-1].image_id == last.image_id
    assert warm[-1].bytes_done == total

    # hpcri-ctl pull: plain lines (not a tty) ending with the id; --quiet: the id only
    remove(c, name)
    argv = [CTL, "--socket", d.socket, "pull", name]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "\r" not in res.stdout
    lines = res.stdout.splitlines()
    assert lines[-1] == "Image is up to date for " + img["config_digest"], res.stdout
    assert any("layers" in l and "MB" in l for l in lines[:-1]), res.stdout
    res = subprocess.run(argv[:-1] + ["--quiet", name], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0 and res.stdout == img["config_digest"] + "\n", res
    # a failing pull ends the stream with the error status
    res = subprocess.run(argv[:-1] + ["-q", reg.host + "/test/progress:nope"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0 and "NOT_FOUND" in res.stderr, res
    with pytest.raises(grpc.RpcError) as e:
        admin_pull(c, reg.host + "/test/progress:nope")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_kill_mid_pull_then_pull_completes(reg, daemon_factory, tmp_path):
    big = tar([("big", "file", os.urandom(200 << 20))])
    small = tar([("small", "file", b"s")])
    img = push(reg, "test/big", "v1", [(small, "gzip", L_GZ), (big, "none", L_TAR)])
    del big
    conf = config_for(tmp_path, insecure(reg))
    d = daemon_factory(config=conf, sub="a")
    c = Cri(d.socket)
    name = reg.host + "/test/big:v1"
    fut = c.channel.unary_unary(
        "/runtime.v1.ImageService/PullImage",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=api_pb2.PullImageResponse.FromString).future(
        api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=name)), timeout=120)
    marker = "%s: downloading" % img["layers"][1]["digest"]
    deadline = time.monotonic() + 60
    while marker not in d.read_log() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert marker in d.read_log()
    time.sleep(0.05)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait()
    with pytest.raises(grpc.RpcError):
        fut.result()
    c.close()
    assert img["layers"][1]["digest"][7:] not in blob_files(d)
    # blobs and chain dirs are published unsynced while a pull runs: the marker says so
    marker_file = os.path.join(d.root, "images", "unsynced")
    assert os.path.exists(marker_file)
    # restart on the same root: what the interrupted pull left is collected
    d2 = daemon_factory(config=conf, sub="a", start=False)
    d2.start()
    c2 = Cri(d2.socket)
    assert "interrupted pull or import" in d2.read_log()
    assert not os.path.exists(marker_file)
    assert blob_files(d2) == [] and chain_dirs(d2) == []
    assert len(c2.ListImages().images) == 0
    assert status(c2, name).image.id == ""
    assert pull(c2, name) == img["config_digest"]
    assert len(c2.ListImages().images) == 1
    root = rootfs(d2, [l["diff_id"] for l in img["layers"]])
    assert os.path.getsize(os.path.join(root, "big")) == 200 << 20
    tmp = os.path.join(d2.root, "images", "tmp")
    assert not os.path.isdir(tmp) or os.listdir(tmp) == []
    assert not os.path.exists(marker_file)  # synced and removed by the last op
    c2.close()


# --------------------------------------------------------------------------
# RemoveImage


def test_remove_tag_vs_id_and_gc(reg, env):
    d, c = env
    t1, t2 = reg.host + "/test/busybox:1", reg.host + "/test/busybox:also"
    ref = pull(c, t1)
    assert pull(c, t2) == ref
    assert sorted(status(c, ref).image.repo_tags) == sorted([t1, t2])
    wref = pull(c, reg.host + "/test/whiteout:v1")
    assert len(blob_files(d)) == 4
    remove(c, t1)  # one of two tags: the image stays
    assert list(status(c, ref).image.repo_tags) == [t2]
    assert len(blob_files(d)) == 4
    remove(c, ref)  # by id: gone, its blob and chain collected
    assert status(c, ref).image.id == ""
    assert status(c, t2).image.id == ""
    assert blob_files(d) == sorted(l["digest"][7:] for l in reg.whiteout["layers"])
    assert len(chain_dirs(d)) == 3
    remove(c, ref)  # idempotent
    remove(c, "never/pulled:anything")
    # by digest reference
    remove(c, "%s/test/whiteout@%s" % (reg.host, reg.whiteout["manifest_digest"]))
    assert status(c, wref).image.id == ""
    assert blob_files(d) == [] and chain_dirs(d) == []
    assert len(c.ListImages().images) == 0


def test_remove_image_in_use(reg, env):
    d, c = env
    name = reg.host + "/test/busybox:1"
    ref = pull(c, name)
    # Two containers using the image, written into the daemon's state store
    # (SQLite arbitrates between processes).
    import sqlite3
    db = sqlite3.connect(os.path.join(d.root, "hpcri.db"), timeout=5)
    with db:
        db.execute("INSERT INTO pods (id, name, namespace, uid, attempt, state, created_at) "
                   "VALUES (?, 'p', 'default', 'u', 0, 0, 1)", ("a" * 64,))
        for i in range(2):
            db.execute("INSERT INTO containers (id, pod_id, name, attempt, state, created_at, "
                       "image, image_ref) VALUES (?, ?, ?, 0, 0, 1, ?, ?)",
                       (str(i) * 64, "a" * 64, "c%d" % i, name, ref))
    with pytest.raises(grpc.RpcError) as ei:
        remove(c, ref)
    assert ei.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "2 containers" in ei.value.details()
    assert status(c, ref).image.id == ref
    assert len(blob_files(d)) == 1
    with db:
        db.execute("DELETE FROM containers")
    db.close()
    remove(c, name)
    assert status(c, ref).image.id == ""
    assert blob_files(d) == []


# --------------------------------------------------------------------------
# ImportImage


def admin_import(c, path, name=""):
    fn = c.channel.unary_unary("/hpcri.v1.Admin/ImportImage",
                               request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=hpcri_pb2.ImportImageResponse.FromString)
    return fn(hpcri_pb2.ImportImageRequest(path=str(path), name=name), timeout=60)


def image_parts(label, files):
    layer = tar(files)
    gz = pi.compress("gzip", layer)
    cfg = json.dumps(pi.config_doc([sha(layer)], label=label)).encode()
    return layer, gz, cfg


def write_oci_layout(root, label, files, ref_name=None):
    layer, gz, cfg = image_parts(label, files)
    blobs = os.path.join(root, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    man = json.dumps({"schemaVersion": 2, "mediaType": pi.OCI_MANIFEST,
                      "config": {"mediaType": pi.OCI_CONFIG, "digest": sha(cfg),
                                 "size": len(cfg)},
                      "layers": [{"mediaType": L_GZ, "digest": sha(gz),
                                  "size": len(gz)}]}).encode()
    for b in (gz, cfg, man):
        with open(os.path.join(blobs, sha(b)[7:]), "wb") as f:
            f.write(b)
    entry = {"mediaType": pi.OCI_MANIFEST, "digest": sha(man), "size": len(man)}
    if ref_name:
        entry["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    with open(os.path.join(root, "index.json"), "w") as f:
        json.dump({"schemaVersion": 2, "manifests": [entry]}, f)
    with open(os.path.join(root, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return sha(cfg), sha(layer)


def test_import_oci_layout_and_archive(env, tmp_path):
    d, c = env
    lay = tmp_path / "layout"
    cid, diff = write_oci_layout(str(lay), "oci", [("hello", "file", b"from layout")])
    r = admin_import(c, lay, "local/oci:1")
    assert r.image_id == cid
    assert list(r.repo_tags) == ["docker.io/local/oci:1"]
    st = status(c, "local/oci:1", verbose=True)
    assert st.image.id == cid
    assert json.loads(st.info["info"])["config"]["Labels"]["org.hpcri.test"] == "oci"
    with open(os.path.join(rootfs(d, [diff]), "hello"), "rb") as f:
        assert f.read() == b"from layout"
    # an OCI archive (tar of a layout) named by its own annotation
    lay2 = tmp_path / "layout2"
    cid2, diff2 = write_oci_layout(str(lay2), "ociarch", [("x", "file", b"archive")],
                                   ref_name="example.org/arch/img:2")
    arch = tmp_path / "oci.tar"
    with tarfile.open(arch, "w") as tf:
        tf.add(str(lay2), arcname=".")
    r = admin_import(c, arch)
    assert r.image_id == cid2
    assert list(r.repo_tags) == ["example.org/arch/img:2"]
    assert status(c, "example.org/arch/img:2").image.id == cid2
    # a corrupted blob in a layout is refused and nothing is recorded
    lay3 = tmp_path / "layout3"
    cid3, _ = write_oci_layout(str(lay3), "bad", [("y", "file", b"y")])
    blobs = os.path.join(str(lay3), "blobs", "sha256")
    for n in os.listdir(blobs):
        p = os.path.join(blobs, n)
        data = open(p, "rb").read()
        if data[:2] == b"\x1f\x8b":  # the gzip layer
            with open(p, "wb") as f:
                f.write(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(grpc.RpcError) as ei:
        admin_import(c, lay3, "local/bad:1")
    assert ei.value.code() == grpc.StatusCode.DATA_LOSS, ei.value.details()
    assert status(c, cid3).image.id == ""


def test_import_docker_save(env, tmp_path):
    d, c = env
    layer, _, cfg = image_parts("docker", [("etc", "dir", None),
                                           ("etc/motd", "file", b"docker save")])
    cid = sha(cfg)
    path = tmp_path / "save.tar"
    with tarfile.open(path, "w") as tf:
        def add(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        add(cid[7:] + ".json", cfg)
        add("abc123/layer.tar", layer)
        add("manifest.json", json.dumps([{"Config": cid[7:] + ".json",
                                          "RepoTags": ["saved/img:v3"],
                                          "Layers": ["abc123/layer.tar"]}]).encode())
    r = admin_import(c, path)
    assert r.image_id == cid
    assert list(r.repo_tags) == ["docker.io/saved/img:v3"]
    with open(os.path.join(rootfs(d, [sha(layer)]), "etc", "motd"), "rb") as f:
        assert f.read() == b"docker save"
    assert status(c, "saved/img:v3").image.id == cid


def test_import_malicious_archives(env, tmp_path):
    d, c = env
    victim = tmp_path / "victim"
    victim.mkdir()
    before = set(os.listdir(str(tmp_path)))
    # 1. entry names climbing out of the archive
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        ti = tarfile.TarInfo("../../victim/pwned")
        ti.size = 4
        tf.addfile(ti, io.BytesIO(b"evil"))
        ti = tarfile.TarInfo("manifest.json")
        data = b'[{"Config": "c.json", "Layers": ["../../etc/passwd"]}]'
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    with pytest.raises(grpc.RpcError) as ei:
        admin_import(c, evil, "evil:1")
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ".." in ei.value.details()
    # 2. a well-formed archive whose layer escapes with ../ and a symlink
    layer = tar([("../../../victim/pwned2", "file", b"evil")])
    cfg = json.dumps(pi.config_doc([sha(layer)])).encode()
    evil2 = tmp_path / "evil2.tar"
    with tarfile.open(evil2, "w") as tf:
        for name, data in (("c.json", cfg), ("l/layer.tar", layer),
                           ("manifest.json", json.dumps([{"Config": "c.json",
                                                          "Layers": ["l/layer.tar"]}]).encode())):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("link")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "/etc/passwd"
        tf.addfile(ti)
    with pytest.raises(grpc.RpcError) as ei:
        admin_import(c, evil2, "evil:2")
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT, ei.value.details()
    assert os.listdir(str(victim)) == []
    assert set(os.listdir(str(tmp_path))) - {"evil.tar", "evil2.tar"} == before
    assert not os.path.exists("/victim") and not os.path.exists(os.path.join(d.root, "victim"))
    assert len(c.ListImages().images) == 0
    # 3. not an image at all
    junk = tmp_path / "junk.tar"
    with tarfile.open(junk, "w") as tf:
        ti = tarfile.TarInfo("readme")
        ti.size = 2
        tf.addfile(ti, io.BytesIO(b"hi"))
    with pytest.raises(grpc.RpcError) as ei:
        admin_import(c, junk)
    assert ei.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # scratch dirs are gone
    assert [n for n in os.listdir(os.path.join(d.root, "images")) if n.startswith("import")] == []
