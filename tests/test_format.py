"""Every C file follows the checked-in .clang-format."""
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_clang_format_clean():
    files = subprocess.run(["git", "ls-files", "src/*.c", "src/*.h", "tests/*.c", "tests/*.h",
                            "bench/*.c"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    assert files
    res = subprocess.run(["clang-format", "--dry-run", "-Werror"] + files, cwd=REPO,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
