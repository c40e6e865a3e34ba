#!/bin/sh
# One-command pod/container lifecycle benchmark: hpcri vs containerd 1.6 + runc,
# both driven over CRI by bench-lifecycle (bench/lifecycle.c).  Prints tables.
#
#   bench/lifecycle.sh [--no-build] [--no-containerd] [-- BENCH-LIFECYCLE-ARGS...]
#
# Builds hpcri, hpcri-pause and bench-lifecycle, starts a throw-away registry
# (tests/tools/registry.sh) with the busybox test image, then for each runtime:
# starts it on a socket under a temp dir, runs bench-lifecycle (PullImage, 50
# sequential and 50 10-concurrent lifecycles, memory idle and with 50 running
# pods), stops it by PID.  containerd (Debian's package) gets a config from
# bench/lifecycle/containerd.toml.in and a locally built pause image
# (bench/lifecycle/mkpause.py, imported with ctr).  Without containerd (or with
# --no-containerd) the reference column holds the issue's numbers, labelled as
# not measured.  Needs root (runc, cgroups, overlay mounts).
set -eu

BUILD_FIRST=1
CONTAINERD=1
while [ $# -gt 0 ]; do
    case "$1" in
    --no-build) BUILD_FIRST=0 ;;
    --no-containerd) CONTAINERD=0 ;;
    --) shift; break ;;
    *) echo "usage: $0 [--no-build] [--no-containerd] [-- bench-lifecycle args]" >&2; exit 2 ;;
    esac
    shift
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${HPCRI_BUILD:-build}
cd "$REPO"
BUILD=$(cd "$BUILD" 2>/dev/null && pwd || echo "$REPO/$BUILD")

if [ "$(id -u)" != 0 ]; then
    echo "bench/lifecycle.sh: needs root (runc, cgroups, mounts)" >&2
    exit 1
fi

LIBS="libnghttp2 libprotobuf-c sqlite3 jansson inih libcurl libarchive libcrypto"
if [ $BUILD_FIRST = 1 ]; then
    make -j"$(nproc)" "$BUILD/hpcri" "$BUILD/hpcri-image" "$BUILD/hpcri-ctl" "$BUILD/hpcri-pause" \
        "$BUILD/libhpcri.a" >/dev/null
fi
if [ $BUILD_FIRST = 0 ] && [ -x "$BUILD/bench-lifecycle" ]; then
    :
elif make -n "$BUILD/bench-lifecycle" >/dev/null 2>&1; then
    make "$BUILD/bench-lifecycle" >/dev/null
else
    # shellcheck disable=SC2086
    ${CC:-cc} -O2 -g -std=gnu11 -Wall -Wextra -Werror -Wno-missing-field-initializers -pthread \
        -D_GNU_SOURCE -Ulinux -Isrc -I"$BUILD/gen" -o "$BUILD/bench-lifecycle" bench/lifecycle.c \
        "$BUILD/libhpcri.a" $(pkg-config --libs $LIBS) -pthread
fi

TMP=$(mktemp -d /tmp/hpcri-lifecycle.XXXXXX)
PORT=$((20000 + $$ % 5000))
REG="127.0.0.1:$PORT"
IMAGE="$REG/test/busybox:latest"
PAUSE_REF="localhost/hpcri/pause:bench"
HPCRI_PID=
CTD_PID=

# Pids of processes (other than the daemons) whose command line mentions $TMP:
# conmon, containerd-shim-runc-v2, pause and container processes left behind.
leftovers() {
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        [ "$p" = $$ ] && continue
        if { tr '\0' ' ' <"$d/cmdline"; } 2>/dev/null | grep -qF "$TMP"; then
            echo "$p"
        fi
    done
}

stop_pid() { # PID: SIGTERM, wait up to 10 s, then SIGKILL
    kill -TERM "$1" 2>/dev/null || return 0
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

cleanup() {
    set +e
    [ -n "$HPCRI_PID" ] && stop_pid "$HPCRI_PID"
    [ -n "$CTD_PID" ] && stop_pid "$CTD_PID"
    tests/tools/registry.sh stop "$TMP/registry" >/dev/null 2>&1
    for p in $(leftovers); do
        cmd=$({ tr '\0' ' ' <"/proc/$p/cmdline"; } 2>/dev/null | cut -c1-100)
        [ -n "$cmd" ] && kill -KILL "$p" 2>/dev/null &&
            echo "bench/lifecycle.sh: killed leftover pid $p: $cmd" >&2
    done
    # unmount whatever a runtime left mounted under $TMP, deepest first
    awk -v t="$TMP" 'index($2, t) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r m; do umount -l "$m" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "host: $(nproc) cores, Linux $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg); hpcri $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "runc: $(runc --version | head -1); conmon: $(conmon --version 2>/dev/null | head -1)"

REGISTRY_WATCH_PID=$$ tests/tools/registry.sh start "$TMP/registry" "$PORT"
/usr/bin/python3 tests/tools/push_image.py --registry "$REG" --out "$TMP/images.json" \
    --only busybox >/dev/null

RUNS=""

# --- hpcri ------------------------------------------------------------------
H="$TMP/hpcri"
mkdir -p "$H" "$TMP/logs-hpcri"
printf '[hpcri]\nworkers = %s\n[registry "%s"]\ninsecure = true\n' "${HPCRI_WORKERS:-4}" "$REG" >"$H/hpcri.conf"
"$BUILD/hpcri" --config "$H/hpcri.conf" --listen "$H/hpcri.sock" --root "$H/root" \
    --log-level warn >"$H/hpcri.log" 2>&1 &
HPCRI_PID=$!
i=0
until "$BUILD/hpcri-ctl" --socket "$H/hpcri.sock" --timeout 1 version >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -ge 100 ] || ! kill -0 "$HPCRI_PID" 2>/dev/null; then
        echo "bench/lifecycle.sh: hpcri did not come up; its log:" >&2
        cat "$H/hpcri.log" >&2
        exit 1
    fi
    sleep 0.1
done
echo
echo "=== hpcri (pid $HPCRI_PID) ==="
rc=0
"$BUILD/bench-lifecycle" --name hpcri --socket "$H/hpcri.sock" --image "$IMAGE" \
    --pid "$HPCRI_PID" --helpers "$H/" --logdir "$TMP/logs-hpcri" --out "$TMP/hpcri.out" \
    "$@" || rc=1
stop_pid "$HPCRI_PID"
HPCRI_PID=
RUNS="$TMP/hpcri.out"

# --- containerd -------------------------------------------------------------
if [ $CONTAINERD = 1 ] && command -v containerd >/dev/null && command -v ctr >/dev/null; then
    C="$TMP/containerd"
    mkdir -p "$C/cni/bin" "$C/cni/conf" "$TMP/logs-containerd"
    sed -e "s|@DIR@|$C|g" -e "s|@PAUSE@|$PAUSE_REF|g" -e "s|@REGISTRY@|$REG|g" \
        -e "s|@RUNC@|$(command -v runc)|g" bench/lifecycle/containerd.toml.in >"$C/config.toml"
    containerd --config "$C/config.toml" >"$C/containerd.log" 2>&1 &
    CTD_PID=$!
    i=0
    until ctr -a "$C/containerd.sock" version >/dev/null 2>&1; do
        i=$((i + 1))
        if [ $i -ge 150 ] || ! kill -0 "$CTD_PID" 2>/dev/null; then
            echo "bench/lifecycle.sh: containerd did not come up; its log:" >&2
            tail -30 "$C/containerd.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    /usr/bin/python3 bench/lifecycle/mkpause.py --pause "$BUILD/hpcri-pause" --ref "$PAUSE_REF" \
        --out "$C/pause.tar"
    ctr -a "$C/containerd.sock" -n k8s.io images import "$C/pause.tar" >/dev/null
    echo
    echo "=== containerd $(containerd --version | awk '{print $3}') (pid $CTD_PID) ==="
    "$BUILD/bench-lifecycle" --name containerd --socket "$C/containerd.sock" --image "$IMAGE" \
        --pid "$CTD_PID" --helpers "$C/containerd.sock" --logdir "$TMP/logs-containerd" \
        --out "$TMP/containerd.out" "$@" || rc=1
    stop_pid "$CTD_PID"
    CTD_PID=
    RUNS="$RUNS $TMP/containerd.out"
else
    echo
    echo "containerd not run (--no-containerd or not installed): reference column = the issue's numbers"
    RUNS="$RUNS --reference"
fi

echo
echo "=== Summary (p50 ratio = hpcri / containerd; goal: lifecycle <= 0.33, every call <= 1.0, hpcri idle VmRSS < 8192 kB) ==="
# shellcheck disable=SC2086
"$BUILD/bench-lifecycle" --report $RUNS
exit $rc
