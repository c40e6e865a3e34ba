#!/bin/bash
# Installs every Debian 12 package hpcri needs to build, run and test.
# Usage: sudo scripts/deps.sh   (idempotent; needs network access to Debian's apt repositories)
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Packaged services (docker-registry, munge, slurm) must not start on install:
# the tests start what they need themselves.  Only written when absent, so a
# site's own policy is left alone.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
fi

PACKAGES=(
    # build
    build-essential pkg-config git
    libnghttp2-dev protobuf-c-compiler libprotobuf-c-dev protobuf-compiler
    libsqlite3-dev libjansson-dev libinih-dev libcurl4-openssl-dev libarchive-dev
    libssl-dev libzstd-dev nettle-dev zlib1g-dev
    # tests and tooling
    python3 python3-grpcio python3-protobuf python3-pytest python3-h2
    sqlite3 valgrind clang-format procps clang libclang-rt-14-dev
    # image tests: a real registry and test image material
    docker-registry apache2-utils busybox-static zstd curl openssl
    # local runtime: OCI runtimes, the per-container monitor, subordinate ids
    runc crun conmon uidmap
    # benchmarks: the runtimes and tools a user would pick instead
    containerd skopeo umoci
    # Slurm backend tests: a single-node cluster brought up by tests/tools/slurm.sh
    slurm-wlm slurm-client munge
)

apt-get update
apt-get install -y --no-install-recommends "${PACKAGES[@]}"
