"""A checker in C, written from conformance/README.md alone, passes the decode suites."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_c_checker_passes_the_decode_suites(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler (cc)")
    binary = tmp_path / "check_decode"
    subprocess.run([cc, "-std=c99", "-O1", "-Wall", "-Werror", "-o", str(binary),
                    str(ROOT / "tests" / "c" / "check_decode.c"), "-lm"], check=True)
    done = subprocess.run([str(binary), str(ROOT / "conformance")], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [
        "e2m1_decode", "e8m0_decode", "e4m3_decode", "mxfp4_dequantize", "nvfp4_dequantize"]
    for line in lines:
        passed, total = line.split()[1].split("/")
        assert passed == total and int(total) > 0, line
