#!/bin/bash
# hpcri demo: start the daemon on its embedded defaults, talk to it with
# hpcri-ctl, try a demo pod, then keep serving until Ctrl-C.
# HPCRI_DEMO_EXIT=1 stops the daemon at the end instead of waiting.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${HPCRI_BUILD:-build}
CTL="$BUILD/hpcri-ctl"

"$BUILD/hpcri" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null; wait $PID 2>/dev/null' EXIT INT TERM

if [ "$(id -u)" = 0 ]; then SOCK=/run/hpcri/hpcri.sock
elif [ -n "${XDG_RUNTIME_DIR:-}" ]; then SOCK=$XDG_RUNTIME_DIR/hpcri/hpcri.sock
else SOCK=/tmp/hpcri-$(id -u)/hpcri.sock; fi
export HPCRI_SOCKET=$SOCK

for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { echo "hpcri did not start"; exit 1; }

echo "+ hpcri-ctl version"; "$CTL" version
echo "+ hpcri-ctl info";    "$CTL" info
echo "+ hpcri-ctl images";  "$CTL" images
echo "+ hpcri-ctl runp scripts/demo-pod.json"
"$CTL" runp scripts/demo-pod.json || echo "(demo pod not started: see the message above)"
echo "+ hpcri-ctl pods";    "$CTL" pods

if [ "${HPCRI_DEMO_EXIT:-0}" = 1 ]; then exit 0; fi
echo "hpcri (pid $PID) is serving CRI v1 on $SOCK; point crictl or kubelet at unix://$SOCK. Ctrl-C stops it."
wait $PID
