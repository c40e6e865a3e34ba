#!/bin/sh
# Run a throw-away OCI registry (Debian's docker-registry, distribution 2.8) for tests.
#
#   registry.sh start DIR PORT [USER:PASS]   serve on 127.0.0.1:PORT, storage in DIR/storage,
#                                            htpasswd auth when USER:PASS is given;
#                                            waits until /v2/ answers; PID in DIR/pid
#   registry.sh stop DIR                     kill the registry whose PID is in DIR/pid
#
# With REGISTRY_TLS=1 the registry serves HTTPS with a fresh self-signed
# certificate for 127.0.0.1 (DIR/cert.pem, made with the openssl CLI).
# With REGISTRY_WATCH_PID=N in the environment a watchdog also kills the
# registry once process N is gone (so a crashed test does not leak it).
#
# Needs: docker-registry, apache2-utils (htpasswd), curl.  Exit status non-zero
# with a message on stderr when the registry does not come up within 20 s.
set -eu

usage() {
    echo "usage: $0 start DIR PORT [USER:PASS] | stop DIR" >&2
    exit 2
}

[ $# -ge 2 ] || usage
cmd=$1
dir=$2

case "$cmd" in
start)
    [ $# -ge 3 ] || usage
    port=$3
    creds=${4:-}
    bin=${DOCKER_REGISTRY:-/usr/bin/docker-registry}
    if [ ! -x "$bin" ]; then
        echo "registry.sh: $bin not found (apt-get install docker-registry)" >&2
        exit 1
    fi
    mkdir -p "$dir/storage"
    auth=""
    if [ -n "$creds" ]; then
        user=${creds%%:*}
        pass=${creds#*:}
        htpasswd -Bbn "$user" "$pass" >"$dir/htpasswd"
        auth="auth:
  htpasswd:
    realm: hpcri-test
    path: $dir/htpasswd"
    fi
    tls=""
    scheme=http
    if [ "${REGISTRY_TLS:-0}" = 1 ]; then
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
            -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
            -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
        tls="  tls:
    certificate: $dir/cert.pem
    key: $dir/key.pem"
        scheme=https
    fi
    cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  redirect:
    disable: true
http:
  addr: 127.0.0.1:$port
  secret: hpcri-test-secret
$tls
$auth
EOF
    "$bin" serve "$dir/config.yml" >"$dir/registry.log" 2>&1 &
    echo $! >"$dir/pid"
    if [ -n "${REGISTRY_WATCH_PID:-}" ]; then
        regpid=$!
        (
            while kill -0 "$REGISTRY_WATCH_PID" 2>/dev/null && kill -0 "$regpid" 2>/dev/null; do
                sleep 1
            done
            kill "$regpid" 2>/dev/null
        ) </dev/null >/dev/null 2>&1 &
    fi
    i=0
    while [ $i -lt 200 ]; do
        code=$(curl -sk -o /dev/null -w '%{http_code}' "$scheme://127.0.0.1:$port/v2/" || true)
        case "$code" in
        200 | 401) exit 0 ;;
        esac
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            echo "registry.sh: docker-registry exited; log:" >&2
            cat "$dir/registry.log" >&2
            exit 1
        fi
        sleep 0.1
        i=$((i + 1))
    done
    echo "registry.sh: registry on 127.0.0.1:$port did not answer /v2/ within 20 s; log:" >&2
    tail -20 "$dir/registry.log" >&2
    kill "$(cat "$dir/pid")" 2>/dev/null || true
    exit 1
    ;;
stop)
    if [ -f "$dir/pid" ]; then
        pid=$(cat "$dir/pid")
        kill "$pid" 2>/dev/null || true
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 50 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$dir/pid"
    fi
    ;;
*)
    usage
    ;;
esac
