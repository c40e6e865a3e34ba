"""Runs every C unit-test case (tests/unit/test_*.c) as its own pytest item.

Each binary in $HPCRI_BUILD/tests lists its cases with --list and runs one
with --run NAME (see tests/unit/t.h).
"""
import glob
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(REPO, os.environ.get("HPCRI_BUILD", "build"))


def _cases():
    out = []
    for binary in sorted(glob.glob(os.path.join(BUILD, "tests", "test_*"))):
        if not os.access(binary, os.X_OK):
            continue
        res = subprocess.run([binary, "--list"], capture_output=True, text=True, timeout=60)
        name = os.path.basename(binary)
        if res.returncode != 0:
            out.append(pytest.param(binary, "--list", id=name + ":--list"))
            continue
        for case in res.stdout.split():
            out.append(pytest.param(binary, case, id="%s:%s" % (name, case)))
    return out


@pytest.mark.parametrize("binary,case", _cases())
def test_c_unit(binary, case):
    assert case != "--list", "%s --list failed" % binary
    res = subprocess.run([binary, "--run", case], capture_output=True, text=True, timeout=600,
                         cwd=REPO)
    assert res.returncode == 0, "%s %s failed (exit %d):\n%s\n%s" % (
        os.path.basename(binary), case, res.returncode, res.stdout, res.stderr)
