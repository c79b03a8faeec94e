"""Issue 17 and issue 18 item 2, the conformance checker: no false pass, no hang, no crash of
the checker, one line for every error (exit 2), skips counted and shown."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fp4ref import cli, conformance
from fp4ref.conformance import manifest
from fp4ref.errors import FormatError

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "conformance"

# A correct E8M0 decoder, and hostile variants of it; each is a module in its own folder.
GOOD = "import numpy as np\nimport fp4ref\n\ndef decode_e8m0(codes):\n" \
       "    return fp4ref.decode_e8m0(codes)\n"
HOSTILE = {
    "exit_in_case": GOOD.replace("return", "import sys; sys.exit(0); return"),
    "os_exit_in_case": GOOD.replace("return", "import os; os._exit(0); return"),
    "segfault": GOOD.replace("return", "import ctypes; ctypes.string_at(0); return"),
    "sleeps": GOOD.replace("return", "import time; time.sleep(600); return"),
    "flat": GOOD.replace("(codes)\n", "(codes).reshape(-1, 1)\n"),
    "int64": GOOD.replace("(codes)\n", "(codes).view(np.uint32).astype(np.int64)\n"),
    "ragged": GOOD.replace("return fp4ref.decode_e8m0(codes)", "return [[1.0], [1.0, 2.0]]"),
    "bad_array": GOOD.replace("return fp4ref.decode_e8m0(codes)", textwrap.dedent("""\
        class Bad:
                def __array__(self, *args, **kwargs):
                    raise RuntimeError("no array here")
            return Bad()""")),
    "huge": GOOD.replace("return fp4ref.decode_e8m0(codes)",
                         "return np.broadcast_to(np.float32(0), (2**20, 2**20))"),
    "not_implemented": GOOD.replace("return fp4ref.decode_e8m0(codes)",
                                    "raise NotImplementedError('later')"),
}


def _check(tmp_path: Path, source: str, *args: str, timeout: int = 600):
    """``fp4ref conformance check`` run in ``tmp_path`` holding ``impl.py`` (a fresh process,
    as a user runs it: the module is found in the current folder, no PYTHONPATH)."""
    (tmp_path / "impl.py").write_text(source)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}  # fp4ref itself, not the impl
    return subprocess.run([sys.executable, "-m", "fp4ref", "conformance", "check", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
                          env=env)


def test_a_module_in_the_current_folder_is_found_and_passes(tmp_path):
    done = _check(tmp_path, GOOD, "--impl", "impl", "--suite", "e8m0_decode")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pass 1/1" in done.stdout and "cases: 1 passed, 0 failed, 0 skipped" in done.stdout


@pytest.mark.parametrize("name, status, says", [
    ("exit_in_case", 1, "sys.exit(0)"),
    ("os_exit_in_case", 1, "process died (exit status 0)"),
    ("segfault", 1, "process died (killed by SIGSEGV)"),
    ("sleeps", 1, "no result within 10 s"),
    ("flat", 1, "got shape (256, 1), expected (256,)"),
    ("int64", 1, "got dtype int64, expected float32"),
    ("ragged", 1, "result 0 is not an array"),
    ("bad_array", 1, "RuntimeError: no array here"),
    ("not_implemented", 1, "every case was skipped"),
    ("huge", 1, "far more than any case's result"),
])
def test_a_hostile_implementation_fails_its_case_not_the_checker(tmp_path, name, status, says):
    done = _check(tmp_path, HOSTILE[name], "--impl", "impl", "--suite", "e8m0_decode",
                  "--timeout", "10")
    assert done.returncode == status, done.stdout + done.stderr
    assert says in done.stdout and "Traceback" not in done.stdout + done.stderr
    assert "all suites pass" not in done.stdout


def test_the_next_case_runs_in_a_fresh_process_after_a_crash(tmp_path):
    source = GOOD + textwrap.dedent("""
        def decode_e4m3(codes):
            import os
            os._exit(3)
    """)
    done = _check(tmp_path, source, "--impl", "impl", "--suite", "e4m3_decode",
                  "--suite", "e8m0_decode")
    assert done.returncode == 1
    assert "exit status 3" in done.stdout and "cases: 1 passed, 1 failed, 0 skipped" in done.stdout


@pytest.mark.parametrize("source, says", [
    ("import sys\nsys.exit(0)\n", "called sys.exit(0) while importing"),
    ("import os\nos._exit(0)\n", "its process ended while importing (exit status 0)"),
    ("def broken(:\n", "SyntaxError"),
    ("raise RuntimeError('at import')\n", "RuntimeError: at import"),
    ("import time\ntime.sleep(600)\n", "no answer within 5 s"),
])
def test_an_import_that_fails_is_one_line_exit_2(tmp_path, source, says):
    limit = "5" if "sleep" in source else "120"  # the others must not meet the limit
    done = _check(tmp_path, source, "--impl", "impl", "--import-timeout", limit)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and says in done.stderr
    assert done.stderr.startswith("fp4ref conformance check: error: --impl impl")


def test_a_missing_module_is_one_line(tmp_path):
    done = _check(tmp_path, GOOD, "--impl", "no_such_module_here")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "cannot import 'no_such_module_here'" in done.stderr


def test_operation_takes_suite_names_and_refuses_unknown_ones(tmp_path):
    source = ("import fp4ref\n\ndef f(blocks, scales):\n"
              "    return fp4ref.dequantize(blocks, scales)\n")
    done = _check(tmp_path, source, "--impl", "impl:f", "--operation", "mxfp4_dequantize")
    assert done.returncode == 0, done.stdout + done.stderr
    # the plain f(blocks, scales) runs the float32 low-first cases and skips the others
    assert "mxfp4_dequantize" in done.stdout and "skipped" in done.stdout
    assert "takes no 'dtype' argument; the case needs dtype='bfloat16'" in done.stdout
    assert "layout_swizzle" not in done.stdout  # a suite name selects that suite
    done = _check(tmp_path, source, "--impl", "impl:f", "--operation", "nonsense")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--operation must be an operation" in done.stderr


def test_an_implementation_with_no_operation_fails_and_says_why(tmp_path):
    done = _check(tmp_path, "def helper():\n    pass\n", "--impl", "impl")
    assert done.returncode == 1
    assert "provides none of the selected suites' operations" in done.stdout


def test_fit_params_reads_the_signature():
    from fp4ref.conformance.impls import fit_params

    def plain(blocks, scales):
        pass

    def full(blocks, scales, *, nibble_order, dtype):
        pass

    def anything(*args, **kwargs):
        pass

    case = {"nibble_order": "low-first", "dtype": "float32"}
    assert fit_params(plain, case) == ({}, "")
    assert fit_params(full, case) == (case, "")
    assert fit_params(anything, case) == (case, "")
    assert fit_params(plain, {"dtype": "float16"})[1].startswith("takes no 'dtype'")
    assert fit_params(plain, {"layer": "0"})[1].startswith("takes no 'layer'")


# --- the vectors themselves --------------------------------------------------------------


@pytest.fixture
def copy(tmp_path):
    shutil.copytree(COMMITTED, tmp_path / "v")
    return tmp_path / "v"


def _edit_manifest(folder: Path, change) -> None:
    index = json.loads((folder / "manifest.json").read_text())
    change(index)
    (folder / "manifest.json").write_text(json.dumps(index, sort_keys=True, indent=1) + "\n")


def test_the_manifest_hash_is_the_documented_one():
    data = (COMMITTED / "manifest.json").read_bytes()
    index = json.loads(data)
    zeroed = data.replace(index["manifest_sha256"].encode(), b"0" * 64)
    assert manifest.sha256(zeroed) == index["manifest_sha256"]
    assert "manifest_sha256" in (COMMITTED / "README.md").read_text()


def test_deleting_a_suite_from_the_manifest_is_detected(copy):
    _edit_manifest(copy, lambda index: index["suites"].pop())
    with pytest.raises(FormatError, match="manifest_sha256 does not match"):
        conformance.load(copy)

    def recompute(index):  # even with the hash recomputed, the orphaned files give it away
        del index["suites"][-1]
    _edit_manifest(copy, recompute)
    data = manifest.dumps(json.loads((copy / "manifest.json").read_text()))
    (copy / "manifest.json").write_bytes(data)
    with pytest.raises(FormatError, match="no suite uses them"):
        conformance.load(copy)


@pytest.mark.parametrize("damage, says", [
    (lambda d: (d / "manifest.json").write_text("{not json"), "not UTF-8 JSON"),
    (lambda d: (d / "manifest.json").write_text("[" * 100000), "not UTF-8 JSON"),
    (lambda d: (d / "manifest.json").write_bytes(
        (d / "manifest.json").read_bytes()[:1000]), "not UTF-8 JSON"),
    (lambda d: (d / "manifest.json").unlink(), "no manifest.json"),
    (lambda d: (d / "e8m0_decode.safetensors").unlink(), "which is missing"),
    (lambda d: (d / "e8m0_decode.safetensors").write_bytes(b"\0" * 9), "SHA-256 differs"),
])
def test_damaged_vectors_are_one_line_exit_2(copy, capsys, damage, says):
    damage(copy)
    assert cli.main(["conformance", "check", "--dir", str(copy), "--backend", "numba"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err and "Traceback" not in err


def test_a_missing_dir_is_one_line(tmp_path, capsys):
    assert cli.main(["conformance", "check", "--dir", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no manifest.json" in err


def test_an_unknown_suite_is_one_line(capsys):
    assert cli.main(["conformance", "check", "--suite", "nonsense"]) == 2
    assert "no suite 'nonsense'" in capsys.readouterr().err


def test_more_hostile_results_are_case_errors(tmp_path):
    source = GOOD.replace("def decode_e8m0", "def decode_e4m3(codes):\n    return None\n\n\n"
                          "def decode_e2m1(codes):\n    raise KeyboardInterrupt\n\n\n"
                          "def decode_e8m0")
    done = _check(tmp_path, source, "--impl", "impl", "--suite", "e4m3_decode", "--suite",
                  "e2m1_decode", "--suite", "e8m0_decode")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "not a numeric array (dtype object)" in done.stdout
    assert "KeyboardInterrupt" in done.stdout
    assert "cases: 1 passed, 2 failed, 0 skipped" in done.stdout


def test_an_implementation_may_use_multiprocessing_and_torch(tmp_path):
    pytest.importorskip("torch")
    source = textwrap.dedent("""
        import multiprocessing
        import torch
        import fp4ref

        def _square(v):
            return v * v

        def decode_e8m0(codes):
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                assert pool.map(_square, [3]) == [9]
            return torch.from_numpy(fp4ref.decode_e8m0(codes))

        def dequantize_mxfp4(blocks, scales, *, nibble_order, dtype):
            # torch in, torch out (bfloat16 too); torch's own float32 -> bfloat16 cast would
            # give NaN 0xFFFF, which the checker rightly fails
            return fp4ref.dequantize(torch.from_numpy(blocks), torch.from_numpy(scales),
                                     nibble_order=nibble_order, dtype=dtype)
    """)
    done = _check(tmp_path, source, "--impl", "impl", "--suite", "e8m0_decode", "--suite",
                  "mxfp4_dequantize")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cases: 7 passed, 0 failed," in done.stdout  # skipped: other E8M0 decodes


def test_sigterm_during_a_check_stops_the_child_too(tmp_path):
    import os
    import signal
    import time

    source = GOOD.replace("return", "import os, sys, time; open('child.pid', 'w').write("
                          "str(os.getpid())); print('waiting', flush=True); time.sleep(600); "
                          "return")
    (tmp_path / "impl.py").write_text(source)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    parent = subprocess.Popen([sys.executable, "-m", "fp4ref", "conformance", "check", "--impl",
                               "impl", "--suite", "e8m0_decode"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while parent.stdout.readline().strip() != "waiting":
            pass
        child = int((tmp_path / "child.pid").read_text())
        parent.send_signal(signal.SIGTERM)
        _, err = parent.communicate(timeout=300)
    finally:
        parent.kill()
    assert parent.returncode == 143 and err.strip() == \
        "fp4ref conformance check: terminated (SIGTERM)"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the implementation's process outlived the checker")


def test_an_operation_outside_the_selected_suites_counts_as_none(tmp_path):
    done = _check(tmp_path, GOOD, "--impl", "impl", "--suite", "e2m1_decode")
    assert done.returncode == 1 and "provides none of the selected suites' operations" in \
        done.stdout
