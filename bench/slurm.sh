#!/bin/bash
# Slurm backend benchmark: N (default 100) pods through hpcri vs N raw sbatch
# jobs on a throw-away single-node cluster (tests/tools/slurm.sh), plus the
# RunPodSandbox -> running latency and the rate of Slurm commands hpcri
# issues while the pods are live (counted through a wrapper bin dir).
# Needs root, slurm-wlm, runc, docker-registry.  Prints a markdown table.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${HPCRI_BUILD:-$REPO/build}
T=$(mktemp -d /tmp/hpcri-bench-slurm.XXXXXX)
chmod 755 "$T"
PORT=${HPCRI_SLURM_PORT:-18817}
RPORT=$((25000 + RANDOM % 5000))
export HPCRI_SLURM_PORT=$PORT HPCRI_SLURM_OWNER_PID=$$
cleanup() {
    [[ -n "${DPID:-}" ]] && kill "$DPID" 2>/dev/null && wait "$DPID" 2>/dev/null
    "$REPO/tests/tools/slurm.sh" stop "$T/cluster" >/dev/null 2>&1 || true
    "$REPO/tests/tools/registry.sh" stop "$T/registry" >/dev/null 2>&1 || true
    [[ -n "${KEEP:-}" ]] || rm -rf "$T"
}
trap cleanup EXIT
"$REPO/tests/tools/slurm.sh" start "$T/cluster" >/dev/null 2>&1
export SLURM_CONF=$T/cluster/slurm.conf
"$REPO/tests/tools/registry.sh" start "$T/registry" "$RPORT" >/dev/null
/usr/bin/python3 "$REPO/tests/tools/push_image.py" --registry "127.0.0.1:$RPORT" \
    --out "$T/images.json" --only busybox >/dev/null
# counting wrappers: one line per Slurm command hpcri runs
mkdir -p "$T/bin" "$T/shared" "$T/logs"
for p in sbatch squeue scancel srun scontrol sacct sstat; do
    printf '#!/bin/sh\necho %s >> %s/count\nexec /usr/bin/%s "$@"\n' "$p" "$T" "$p" >"$T/bin/$p"
    chmod 755 "$T/bin/$p"
done
printf '#!/bin/sh\nexec sleep infinity\n' >"$T/keeper.sh"
chmod 755 "$T/keeper.sh"
cat >"$T/hpcri.conf" <<CONF
[registry "127.0.0.1:$RPORT"]
insecure = true

[runtime "slurm"]
type = slurm
shared_dir = $T/shared
partition = debug
runtime_path = runc
slurm_bin_dir = $T/bin
CONF
"$BUILD/hpcri" --listen "$T/hpcri.sock" --root "$T/root" --config "$T/hpcri.conf" \
    --log-level warn >"$T/hpcri.log" 2>&1 &
DPID=$!
for _ in $(seq 100); do [[ -S "$T/hpcri.sock" ]] && break; sleep 0.1; done
HPCRI_BUILD=$BUILD REPO=$REPO /usr/bin/python3 -c "
import os, sys
sys.path.insert(0, os.path.join('$BUILD', 'py')); sys.path.insert(0, '$REPO/tests/integration')
from conftest import Cri, api_pb2
Cri('$T/hpcri.sock').PullImage(image=api_pb2.ImageSpec(image='127.0.0.1:$RPORT/test/busybox:latest'), timeout=120)
"
HPCRI_BUILD=$BUILD REPO=$REPO /usr/bin/python3 "$REPO/bench/slurm/run.py" "$T/hpcri.sock" \
    "127.0.0.1:$RPORT/test/busybox:latest" "$T/logs" "$T/keeper.sh" "$T/count"
