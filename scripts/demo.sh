#!/bin/bash
# hpcri demo: start the daemon on its embedded defaults, import a small local
# image (no network needed), run a demo pod with one container, show its logs
# and an exec, then keep serving until Ctrl-C (the demo pod is removed then).
# HPCRI_DEMO_EXIT=1 stops everything at the end instead of waiting.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${HPCRI_BUILD:-build}
CTL="$BUILD/hpcri-ctl"
TMP=$(mktemp -d /tmp/hpcri-demo.XXXXXX)

"$BUILD/hpcri" &
PID=$!
POD=""
cleanup() {
    [ -n "$POD" ] && "$CTL" rmp "$POD" >/dev/null 2>&1
    kill -TERM $PID 2>/dev/null
    wait $PID 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$(id -u)" = 0 ]; then SOCK=/run/hpcri/hpcri.sock
elif [ -n "${XDG_RUNTIME_DIR:-}" ]; then SOCK=$XDG_RUNTIME_DIR/hpcri/hpcri.sock
else SOCK=/tmp/hpcri-$(id -u)/hpcri.sock; fi
export HPCRI_SOCKET=$SOCK

for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { echo "hpcri did not start"; exit 1; }

run() { echo "+ hpcri-ctl $*"; "$CTL" "$@"; }
run version
run info | head -20

# A pod needs an image: build a busybox OCI archive locally and import it.
/usr/bin/python3 scripts/demo-image.py "$TMP/demo-image.tar"
run import --name hpcri-demo:latest "$TMP/demo-image.tar"
run images

sed "s/@UID@/demo-$$/; s|@LOGDIR@|$TMP/logs|" scripts/demo-pod.json > "$TMP/pod.json"
echo "+ hpcri-ctl runp pod.json"
POD=$("$CTL" runp "$TMP/pod.json") || exit 1
echo "$POD"
echo "+ hpcri-ctl create $POD container.json pod.json"
CTR=$("$CTL" create "$POD" scripts/demo-container.json "$TMP/pod.json") || exit 1
echo "$CTR"
run start "$CTR"
run pods
run ps
sleep 2.5
run logs "$CTR"
run exec --sync "$CTR" sh -c 'echo "inside the container: $(cat /etc/hostname)"'

if [ "${HPCRI_DEMO_EXIT:-0}" = 1 ]; then exit 0; fi
echo
echo "hpcri (pid $PID) is serving CRI v1 on $SOCK with the demo pod running."
echo "Try: HPCRI_SOCKET=$SOCK $CTL logs -f $CTR    Ctrl-C stops the demo."
wait $PID
