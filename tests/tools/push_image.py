#!/usr/bin/python3
"""Build test images and push them to a registry through the HTTP API (stdlib only).

    push_image.py --registry 127.0.0.1:5000 --out images.json [--user USER:PASS]
                  [--storage DIR] [--only busybox,...]

Images (all repositories under test/):
  busybox   OCI manifest, one tar+gzip layer: /bin/busybox (busybox-static) plus
            sh/ls/cat/echo/sleep symlinks; config with Env/Cmd/Labels/...
  multi     OCI manifest, three layers: tar, tar+gzip, tar+zstd (zstd CLI)
  docker    Docker schema2 manifest, rootfs.diff.tar.gzip layer
  index     OCI index: linux/amd64 + linux/arm64/v8
  list      Docker manifest list: linux/amd64 + linux/arm64/v8
  corrupt   OCI manifest whose layer blob is then overwritten on disk (needs
            --storage, the registry's storage root) with same-size garbage, and
            whose stored manifest gets one byte changed (still valid JSON)

Blobs are uploaded monolithically (POST then PUT ?digest=), manifests with PUT.
The digests of everything pushed are written as JSON to --out.
"""
import argparse
import base64
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    def __init__(self, host, user=None):
        self.base = "http://" + host
        self.auth = None
        if user:
            self.auth = "Basic " + base64.b64encode(user.encode()).decode()

    def request(self, method, url, data=None, headers=None):
        if not url.startswith("http"):
            url = self.base + url
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        if self.auth:
            req.add_header("Authorization", self.auth)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")
            raise SystemExit(f"push_image.py: {method} {url} -> {e.code}: {body}") from None

    def push_blob(self, repo, data):
        digest = sha256(data)
        _, hdrs, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        loc = hdrs.get("Location")
        if not loc:
            raise SystemExit("push_image.py: upload POST answered without Location")
        loc = urllib.parse.urljoin(self.base + "/", loc)
        sep = "&" if "?" in loc else "?"
        self.request("PUT", f"{loc}{sep}digest={urllib.parse.quote(digest)}", data=data,
                     headers={"Content-Type": "application/octet-stream",
                              "Content-Length": str(len(data))})
        return {"digest": digest, "size": len(data)}

    def push_manifest(self, repo, ref, media_type, doc):
        data = json.dumps(doc, indent=3).encode()
        self.request("PUT", f"/v2/{repo}/manifests/{ref}", data=data,
                     headers={"Content-Type": media_type})
        return {"digest": sha256(data), "size": len(data), "mediaType": media_type}


def tar_bytes(entries):
    """entries: list of (name, kind, payload) with kind 'file', 'dir' or 'link'."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                tf.addfile(ti)
            elif kind == "link":
                ti.type = tarfile.SYMTYPE
                ti.linkname = payload
                ti.mode = 0o777
                tf.addfile(ti)
            else:
                ti.size = len(payload)
                ti.mode = 0o755
                tf.addfile(ti, io.BytesIO(payload))
    return buf.getvalue()


def compress(kind, data):
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    if kind == "zstd":
        return subprocess.run(["zstd", "-q", "-c", "-3"], input=data, check=True,
                              stdout=subprocess.PIPE).stdout
    return data


def busybox_tar():
    with open("/bin/busybox", "rb") as f:
        bb = f.read()
    entries = [("bin", "dir", None), ("bin/busybox", "file", bb)]
    for tool in ("sh", "ls", "cat", "echo", "sleep"):
        entries.append((f"bin/{tool}", "link", "busybox"))
    return tar_bytes(entries)


def config_doc(diff_ids, arch="amd64", variant=None, label="busybox"):
    cfg = {
        "architecture": arch,
        "os": "linux",
        "config": {
            "User": "0",
            "Env": ["PATH=/bin", "HPCRI_TEST=1"],
            "Cmd": ["sh"],
            "WorkingDir": "/",
            "StopSignal": "SIGTERM",
            "Labels": {"org.hpcri.test": label},
            "ExposedPorts": {"8080/tcp": {}},
            "Volumes": {"/data": {}},
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    if variant:
        cfg["variant"] = variant
    return cfg


def push_image(reg, repo, ref, layers, manifest_type=OCI_MANIFEST, config_type=OCI_CONFIG,
               arch="amd64", variant=None, label="busybox"):
    """layers: list of (uncompressed tar bytes, compression, media type)."""
    descs, diff_ids = [], []
    for raw, comp, mt in layers:
        blob = compress(comp, raw)
        d = reg.push_blob(repo, blob)
        descs.append({"mediaType": mt, "digest": d["digest"], "size": d["size"]})
        diff_ids.append(sha256(raw))
    cfg = json.dumps(config_doc(diff_ids, arch, variant, label)).encode()
    c = reg.push_blob(repo, cfg)
    doc = {"schemaVersion": 2, "mediaType": manifest_type,
           "config": {"mediaType": config_type, "digest": c["digest"], "size": c["size"]},
           "layers": descs}
    m = reg.push_manifest(repo, ref, manifest_type, doc)
    return {"repo": repo, "tag": ref, "manifest_digest": m["digest"],
            "manifest_size": m["size"], "config_digest": c["digest"], "config_size": c["size"],
            "layers": [dict(d, diff_id=i) for d, i in zip(descs, diff_ids)]}


def push_multiarch(reg, repo, index_type, manifest_type, config_type, layer_type):
    bb = busybox_tar()
    out = {"repo": repo, "tag": "latest"}
    entries = []
    for arch, variant in (("amd64", None), ("arm64", "v8")):
        img = push_image(reg, repo, f"{arch}-only", [(bb, "gzip", layer_type)], manifest_type,
                         config_type, arch, variant, label=f"{arch}")
        plat = {"os": "linux", "architecture": arch}
        if variant:
            plat["variant"] = variant
        entries.append({"mediaType": manifest_type, "digest": img["manifest_digest"],
                        "size": img["manifest_size"], "platform": plat})
        out[arch] = img["manifest_digest"]
    m = reg.push_manifest(repo, "latest", index_type,
                          {"schemaVersion": 2, "mediaType": index_type, "manifests": entries})
    out["digest"] = m["digest"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--registry", required=True, help="host:port (plain HTTP)")
    ap.add_argument("--user", help="USER:PASS for basic auth")
    ap.add_argument("--out", required=True, help="JSON file describing what was pushed")
    ap.add_argument("--storage", help="registry storage root (for the corrupt image)")
    ap.add_argument("--only", help="comma-separated subset of images")
    args = ap.parse_args()
    reg = Registry(args.registry, args.user)
    only = set(args.only.split(",")) if args.only else None
    want = lambda n: only is None or n in only  # noqa: E731
    out = {}
    bb = busybox_tar()
    if want("busybox"):
        out["busybox"] = push_image(reg, "test/busybox", "latest", [(bb, "gzip", LAYER_GZIP)])
    if want("multi"):
        l1 = tar_bytes([("etc", "dir", None), ("etc/one", "file", b"layer one\n")])
        l3 = tar_bytes([("etc", "dir", None), ("etc/three", "file", b"layer three\n" * 1000)])
        out["multi"] = push_image(reg, "test/multi", "latest",
                                  [(l1, "none", LAYER_TAR), (bb, "gzip", LAYER_GZIP),
                                   (l3, "zstd", LAYER_ZSTD)])
    if want("docker"):
        out["docker"] = push_image(reg, "test/docker", "latest", [(bb, "gzip", DOCKER_LAYER)],
                                   DOCKER_MANIFEST, DOCKER_CONFIG)
    if want("index"):
        out["index"] = push_multiarch(reg, "test/index", OCI_INDEX, OCI_MANIFEST, OCI_CONFIG,
                                      LAYER_GZIP)
    if want("list"):
        out["list"] = push_multiarch(reg, "test/list", DOCKER_LIST, DOCKER_MANIFEST,
                                     DOCKER_CONFIG, DOCKER_LAYER)
    if want("corrupt"):
        if not args.storage:
            raise SystemExit("push_image.py: the corrupt image needs --storage")
        raw = tar_bytes([("corrupt", "file", os.urandom(4096))])
        img = push_image(reg, "test/corrupt", "latest", [(raw, "gzip", LAYER_GZIP)])
        layer = img["layers"][0]
        hexd = layer["digest"].split(":", 1)[1]
        path = os.path.join(args.storage, "docker/registry/v2/blobs/sha256", hexd[:2], hexd,
                            "data")
        with open(path, "rb") as f:
            data = f.read()
        bad = bytes(b ^ 0x5A for b in data)  # same size, different content
        with open(path, "wb") as f:
            f.write(bad)
        img["bad_digest"] = sha256(bad)
        # The manifest too: same JSON, one indent space turned into a tab on disk.
        hexd = img["manifest_digest"].split(":", 1)[1]
        path = os.path.join(args.storage, "docker/registry/v2/blobs/sha256", hexd[:2], hexd,
                            "data")
        with open(path, "rb") as f:
            data = f.read()
        bad = data.replace(b"\n   ", b"\n\t  ", 1)
        assert len(bad) == len(data) and bad != data
        with open(path, "wb") as f:
            f.write(bad)
        img["bad_manifest_digest"] = sha256(bad)
        out["corrupt"] = img
    with open(args.out + ".tmp", "w") as f:
        json.dump(out, f, indent=2)
    os.replace(args.out + ".tmp", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
