#!/bin/sh
# One-command RPC benchmark: build, start hpcri on a temp socket, run
# bench-rpc (Version and ListContainers, 1 and 4 clients), stop the daemon by
# PID, print the table.  Extra arguments go to bench-rpc (e.g. -n 5000).
#
#   bench/rpc.sh [--no-build] [-n CALLS_PER_CLIENT] [--clients 1,4] [--warmup N]
#
# --no-build uses the binaries already in $HPCRI_BUILD (default build/).
set -eu

BUILD_FIRST=1
if [ "${1:-}" = "--no-build" ]; then
    BUILD_FIRST=0
    shift
fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${HPCRI_BUILD:-build}
cd "$REPO"

JOBS=$(nproc 2>/dev/null || echo 2)
if [ $BUILD_FIRST = 1 ]; then
    make -j"$JOBS" "$BUILD/hpcri" "$BUILD/hpcri-ctl" "$BUILD/libhpcri.a" \
        "$BUILD/obj/ctl/client.o" >/dev/null
fi
# Use the Makefile rule when there is one; otherwise build by hand.
if [ $BUILD_FIRST = 0 ] && [ -x "$BUILD/bench-rpc" ]; then
    :
elif make -n "$BUILD/bench-rpc" >/dev/null 2>&1; then
    make "$BUILD/bench-rpc" >/dev/null
else
    ${CC:-cc} -O2 -g -std=gnu11 -Wall -Wextra -Werror -Wno-missing-field-initializers -pthread \
        -D_GNU_SOURCE -Ulinux -Isrc -I"$BUILD/gen" -o "$BUILD/bench-rpc" bench/rpc.c \
        "$BUILD/obj/ctl/client.o" "$BUILD/libhpcri.a" \
        $(pkg-config --libs libnghttp2 libprotobuf-c sqlite3 jansson inih libcurl libarchive libcrypto) \
        -pthread
fi

TMP=$(mktemp -d /tmp/hpcri-bench.XXXXXX)
SOCK="$TMP/hpcri.sock"
PID=
cleanup() {
    if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
        kill -TERM "$PID" 2>/dev/null || true
        wait "$PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

"$BUILD/hpcri" --listen "$SOCK" --root "$TMP/root" --log-level warn >"$TMP/hpcri.log" 2>&1 &
PID=$!

# Wait (up to 10 s) until the daemon answers Version.
i=0
until "$BUILD/hpcri-ctl" --socket "$SOCK" --timeout 1 version >/dev/null 2>&1; do
    i=$((i + 1))
    if [ $i -ge 100 ] || ! kill -0 "$PID" 2>/dev/null; then
        echo "bench/rpc.sh: hpcri did not come up; its log:" >&2
        cat "$TMP/hpcri.log" >&2
        exit 1
    fi
    sleep 0.1
done

echo "hpcri $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores, $(uname -r)"
rc=0
"$BUILD/bench-rpc" --socket "$SOCK" --pid "$PID" "$@" || rc=$?

kill -TERM "$PID"
if ! wait "$PID"; then
    echo "bench/rpc.sh: hpcri exited non-zero; its log:" >&2
    cat "$TMP/hpcri.log" >&2
    rc=1
fi
PID=
exit $rc
