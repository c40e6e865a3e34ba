#!/bin/sh
# Pull benchmark: a ~200 MB, 5-layer image (gzip, incompressible data) from a
# local docker-registry on 127.0.0.1, pulled by hpcri cold (empty store) and
# warm (blobs and rootfs present), next to the reference `skopeo copy` +
# `umoci unpack --rootless` and the disk's raw sequential write speed.
#
#   bench/pull.sh [SIZE_MB]        (default 200; needs docker-registry, skopeo, umoci)
#
# Cold pull = download + verify + unpack into the chain dirs + sync + record,
# i.e. the image is ready for a container; skopeo+umoci does the same work.
# The issue's second goal: a cold pull within 1.5x the time `dd conv=fsync`
# needs to write the unpacked bytes (printed at the end as "cold pull / dd
# time").
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
build=${HPCRI_BUILD:-$repo/build}
mb=${1:-200}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/hpcri-bench-pull.XXXXXX")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
host=127.0.0.1:$port
image=$host/bench/big:v1
hpcri_pid=

cleanup() {
    [ -n "$hpcri_pid" ] && kill "$hpcri_pid" 2>/dev/null && wait "$hpcri_pid" 2>/dev/null
    "$repo/tests/tools/registry.sh" stop "$work/registry" || true
    chmod -R u+rwx "$work" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

[ -x "$build/hpcri" ] || { echo "build hpcri first (make)" >&2; exit 1; }
"$repo/tests/tools/registry.sh" start "$work/registry" "$port"
echo "pushing a ${mb} MB 5-layer image to $host ..." >&2
bytes=$(/usr/bin/python3 "$here/pull/push_big.py" "$host" bench/big:v1 "$mb")

printf '[registry "%s"]\ninsecure = true\n[image]\nmax_concurrent_downloads = 3\n' "$host" >"$work/hpcri.conf"
"$build/hpcri" --listen "$work/hpcri.sock" --root "$work/root" --config "$work/hpcri.conf" \
    --log-level info >"$work/hpcri.log" 2>&1 &
hpcri_pid=$!
i=0
while [ ! -S "$work/hpcri.sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done

sync
cold=$(/usr/bin/python3 "$here/pull/client.py" "$build" "$work/hpcri.sock" pull "$image")
warm=$(/usr/bin/python3 "$here/pull/client.py" "$build" "$work/hpcri.sock" pull "$image")
# RemoveImage garbage-collects blobs and rootfs: the next pull is cold again.
/usr/bin/python3 "$here/pull/client.py" "$build" "$work/hpcri.sock" remove "$image" >/dev/null
sync
cold2=$(/usr/bin/python3 "$here/pull/client.py" "$build" "$work/hpcri.sock" pull "$image")
# Unpacked bytes: regular file data in the chain dirs, each inode once (upper
# chains hard-link the files of the lower ones).
unpacked=$(find "$work/root/images/layers" -type f -printf '%i %s\n' | sort -u |
    awk '{ s += $2 } END { printf "%d", s }')

ref_copy=- ref_unpack=- ref_total=-
if command -v skopeo >/dev/null && command -v umoci >/dev/null; then
    sync
    t0=$(date +%s.%N)
    skopeo copy -q --src-tls-verify=false "docker://$image" "oci:$work/oci:v1" >/dev/null
    t1=$(date +%s.%N)
    umoci unpack --rootless --image "$work/oci:v1" "$work/bundle" >/dev/null
    t2=$(date +%s.%N)
    ref_copy=$(printf "%.3f" "$(echo "$t1 - $t0" | bc)")
    ref_unpack=$(printf "%.3f" "$(echo "$t2 - $t1" | bc)")
    ref_total=$(printf "%.3f" "$(echo "$t2 - $t0" | bc)")
fi

dd_out=$(dd if=/dev/zero of="$work/dd.bin" bs=1M count=1024 conv=fsync 2>&1 | tail -1)
rm -f "$work/dd.bin"
dd_speed=$(echo "$dd_out" | sed 's/.*, //')
# "1073741824 bytes (1.1 GB, 1.0 GiB) copied, 4.1 s, 261 MB/s" -> bytes/s
dd_bps=$(echo "$dd_out" | awk '{ for (i = 1; i <= NF; i++) if ($i == "s,") t = $(i - 1); printf "%d", $1 / t }')
# What the disk alone needs to write the unpacked bytes, and how far a pull is
# from it (the goal: ratio <= 1.5).
dd_time=$(echo "scale=3; $unpacked / $dd_bps" | bc)
ratio() { printf "%.2f" "$(echo "scale=3; $1 / $dd_time" | bc)"; }

mbs() { [ "$1" = - ] && echo - || echo "scale=1; $bytes / 1000000 / $1" | bc; }
printf '\nimage: %s, %s bytes in 5 gzip layers (incompressible)\n\n' "$image" "$bytes"
printf '%-44s %10s %10s\n' "what" "seconds" "MB/s"
printf '%-44s %10s %10s\n' "hpcri PullImage, cold (empty store)" "$cold" "$(mbs "$cold")"
printf '%-44s %10s %10s\n' "hpcri PullImage, cold again (after remove)" "$cold2" "$(mbs "$cold2")"
printf '%-44s %10s %10s\n' "hpcri PullImage, warm (all present)" "$warm" "-"
printf '%-44s %10s %10s\n' "skopeo copy (reference)" "$ref_copy" "$(mbs "$ref_copy")"
printf '%-44s %10s %10s\n' "umoci unpack --rootless (reference)" "$ref_unpack" "$(mbs "$ref_unpack")"
printf '%-44s %10s %10s\n' "skopeo copy + umoci unpack (reference)" "$ref_total" "$(mbs "$ref_total")"
printf '%-44s %21s\n' "dd 1 GiB conv=fsync (raw disk write)" "$dd_speed"
printf '\nunpacked bytes (regular files in the rootfs): %s\n' "$unpacked"
printf 'dd time for the unpacked bytes: %s s\n' "$dd_time"
printf 'cold pull / dd time: %s (cold), %s (cold again); goal <= 1.5\n' "$(ratio "$cold")" "$(ratio "$cold2")"
