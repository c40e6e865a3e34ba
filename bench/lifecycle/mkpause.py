#!/usr/bin/python3
"""Build a docker-archive pause image for containerd's sandbox_image (no network).

    mkpause.py --pause build/hpcri-pause --ref localhost/hpcri/pause:bench --out pause.tar

The image has one uncompressed layer holding PAUSE as /pause (mode 0755) and a
config with Entrypoint ["/pause"]; the archive (manifest.json with RepoTags,
config JSON, layer tar) is what `ctr -n k8s.io images import` reads.
"""
import argparse
import hashlib
import io
import json
import tarfile


def add(tar, name, data, mode=0o644):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pause", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    with open(a.pause, "rb") as f:
        pause = f.read()
    lbuf = io.BytesIO()
    with tarfile.open(fileobj=lbuf, mode="w", format=tarfile.PAX_FORMAT) as lt:
        add(lt, "pause", pause, 0o755)
    layer = lbuf.getvalue()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": ["/pause"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "bench/lifecycle/mkpause.py"}],
    }, sort_keys=True).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    layer_name = diff_id[len("sha256:"):] + "/layer.tar"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [a.ref],
                            "Layers": [layer_name]}]).encode()
    with tarfile.open(a.out, mode="w", format=tarfile.PAX_FORMAT) as t:
        add(t, config_name, config)
        add(t, layer_name, layer)
        add(t, "manifest.json", manifest)


if __name__ == "__main__":
    main()
