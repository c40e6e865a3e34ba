#!/usr/bin/python3
"""Write a small OCI image archive (busybox-static) for the demo:

    scripts/demo-image.py OUT.tar

No network needed: the image is built from /bin/busybox (Debian busybox-static)
with the same layer builder the tests use.  `hpcri-ctl import OUT.tar --name demo`
then makes it available to pods."""
import hashlib
import io
import json
import os
import sys
import tarfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "tools"))
import push_image  # noqa: E402  (tar_bytes, busybox_tar, config_doc)


def main(out):
    layer = push_image.busybox_tar()
    layer_gz = push_image.compress("gzip", layer)
    diff_id = push_image.sha256(layer)
    config = json.dumps(push_image.config_doc([diff_id], label="hpcri-demo")).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": push_image.OCI_MANIFEST,
        "config": {"mediaType": push_image.OCI_CONFIG, "digest": push_image.sha256(config),
                   "size": len(config)},
        "layers": [{"mediaType": push_image.LAYER_GZIP, "digest": push_image.sha256(layer_gz),
                    "size": len(layer_gz)}],
    }).encode()
    index = json.dumps({
        "schemaVersion": 2, "mediaType": push_image.OCI_INDEX,
        "manifests": [{"mediaType": push_image.OCI_MANIFEST,
                       "digest": push_image.sha256(manifest), "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
    }).encode()
    files = [("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'), ("index.json", index)]
    for blob in (config, manifest, layer_gz):
        files.append(("blobs/sha256/" + hashlib.sha256(blob).hexdigest(), blob))
    with tarfile.open(out, "w") as tf:
        for name, data in files:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: demo-image.py OUT.tar")
    sys.exit(main(sys.argv[1]))
