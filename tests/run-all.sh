#!/bin/bash
# The whole hpcri test suite: builds the normal and the ASan+UBSan variants,
# runs every test (C unit cases + integration tests over the real socket)
# against each, and ends with one line "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
JOBS=$(nproc 2>/dev/null || echo 2)

make -j"$JOBS" all || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
make -j"$JOBS" SAN=1 all || { echo "ASan build failed"; echo "0 passed, 1 failed"; exit 1; }

total_pass=0
total_fail=0
status=0
run_suite() {
    local build=$1
    shift
    local xml
    xml=$(mktemp /tmp/hpcri-junit.XXXXXX.xml)
    echo "=== test suite against $build/ ==="
    # A private base temp dir: concurrent pytest sessions sharing
    # /tmp/pytest-of-$USER prune each other's directories (sockets included).
    local basetemp
    basetemp=$(mktemp -d /tmp/hpcri-tests.XXXXXX)
    chmod 755 "$basetemp"
    HPCRI_BUILD=$build "$PY" -m pytest -p no:cacheprovider -q -rfE --junitxml="$xml" \
        --basetemp="$basetemp/t" "$@" tests/
    local rc=$?
    if [ $rc -ne 0 ]; then status=1; fi
    read -r p f < <("$PY" - "$xml" <<'PYEOF'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except Exception:
    print(0, 1); sys.exit()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
sk = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - sk, f)
PYEOF
)
    rm -f "$xml"
    rm -rf --one-file-system "$basetemp" 2>/dev/null
    if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
}

run_suite build
# Under the sanitizers: same tests, minus the valgrind ones (the two do not mix).
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    run_suite build-asan -m "not valgrind"

echo "${total_pass} passed, ${total_fail} failed"
exit $status
