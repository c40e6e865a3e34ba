#!/bin/sh
# Build a minimal container root filesystem from busybox-static.
#   tests/tools/mkrootfs.sh DIR
# DIR gets bin/ (busybox + one symlink per applet), etc/passwd, etc/group
# (users root, nobody and "app" = 1000:1000 with supplementary group "extra"
# 2000), and the empty directories a container expects (proc, sys, dev, tmp,
# etc).  Idempotent: re-running on an existing DIR refreshes it.
set -eu
[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
dir=$1
bb=${BUSYBOX:-/bin/busybox}
[ -x "$bb" ] || { echo "$0: $bb not found (apt-get install busybox-static)" >&2; exit 1; }
mkdir -p "$dir/bin" "$dir/etc" "$dir/proc" "$dir/sys" "$dir/dev" "$dir/tmp" \
         "$dir/run" "$dir/var/tmp" "$dir/home/app" "$dir/root"
chmod 1777 "$dir/tmp" "$dir/var/tmp"
cp "$bb" "$dir/bin/busybox"
for applet in $("$bb" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$dir/bin/$applet"
done
cat > "$dir/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app user:/home/app:/bin/sh
P
cat > "$dir/etc/group" <<'G'
root:x:0:
nogroup:x:65534:
app:x:1000:
extra:x:2000:app
G
chown 1000:1000 "$dir/home/app" 2>/dev/null || true
