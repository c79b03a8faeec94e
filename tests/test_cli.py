"""The fp4ref command: selftest (the README's main job) and bench."""

import subprocess
import sys

import fp4ref.selftest
from fp4ref import cli


def test_selftest_passes_and_prints_a_table(capsys):
    assert cli.main(["selftest"]) == 0
    out = capsys.readouterr().out
    assert "E4M3 decode, 256 bytes" in out and "numba" in out and "python" in out
    assert "0 failed" in out


def test_selftest_fails_when_a_backend_is_wrong(monkeypatch, capsys):
    def wrong(backend):  # a check that disagrees with the table
        return False

    monkeypatch.setattr(fp4ref.selftest, "CHECKS", [("deliberately wrong", wrong)])
    assert cli.main(["selftest", "--backend", "numba"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_bench_dequantize_runs_on_a_small_matrix(capsys):
    assert cli.main(["bench", "dequantize", "--size", "256", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "ratio to copy" in out and "fp4ref.dequantize -> bfloat16, allocating" in out
    assert "x the out= call" in out and "cache off" in out


def test_bench_quantize_runs_on_a_small_matrix(capsys):
    assert cli.main(["bench", "quantize", "--size", "256", "--repeat", "1",
                     "--peer-rows", "4"]) == 0
    out = capsys.readouterr().out
    assert "ratio to copy" in out and "optimal nvfp4" in out and "mxfp4 optimal" in out
    assert "fp4ref.quantize OCP MXFP4 (floor), allocating" in out


def test_paired_times_alternate():
    from fp4ref.bench.timing import paired_times

    calls = []
    first, second = paired_times(lambda: calls.append("a"), lambda: calls.append("b"), 3)
    assert calls == ["a", "b"] * 4 and first >= 0 and second >= 0


def test_the_module_runs_as_a_command():
    result = subprocess.run([sys.executable, "-m", "fp4ref", "--version"], capture_output=True,
                            text=True, check=True)
    assert result.stdout.startswith("fp4ref ")
