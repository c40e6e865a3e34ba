#!/usr/bin/python3
"""Push a ~200 MB, 5-layer image (incompressible data, gzip layers) to a plain-HTTP
registry: bench/pull/push_big.py HOST:PORT REPO:TAG [MB]"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "tests", "tools"))
import push_image as pi  # noqa: E402


def main():
    host, ref = sys.argv[1], sys.argv[2]
    total = int(sys.argv[3]) if len(sys.argv) > 3 else 200
    repo, tag = ref.rsplit(":", 1)
    reg = pi.Registry(host)
    layers = []
    for i in range(5):
        # Random data: incompressible, so the blobs really weigh `total` MB.
        data = os.urandom((total // 5) << 20)
        raw = pi.tar_bytes([("layer%d" % i, "dir", None), ("layer%d/data" % i, "file", data)])
        layers.append((raw, "gzip", "application/vnd.oci.image.layer.v1.tar+gzip"))
    img = pi.push_image(reg, repo, tag, layers)
    print(sum(l["size"] for l in img["layers"]))


if __name__ == "__main__":
    main()
