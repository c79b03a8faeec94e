"""Issue 17, files and parsers: nothing half-written, only documented errors, one line from
the command (no traceback), signals cleaned up after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

import fp4ref
from fp4ref import cli
from fp4ref.io import checkpoints, commands, uqff
from fp4ref.io.atomic import outputs
from fp4ref.io.safetensors_file import SafetensorsReader, SafetensorsWriter

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def model(tmp_path):
    """A gpt-oss MXFP4 checkpoint with two plain tensors (which UQFF cannot hold)."""
    rng = np.random.default_rng(0)
    tensors = {
        "b.0.mlp1_blocks": rng.integers(0, 256, (3, 5, 2, 16), dtype=np.uint8),
        "b.0.mlp1_scales": rng.integers(115, 135, (3, 5, 2), dtype=np.uint8),
        "b.0.norm.scale": np.ones(7, np.float32),
    }
    save_file(tensors, tmp_path / "model.safetensors")
    return tmp_path / "model.safetensors"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".fp4ref-*"))


def _one_error_line(err: str, command: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"fp4ref {command}: error: "), err
    assert "Traceback" not in err
    return lines[0]


def test_output_that_is_a_folder_leaves_no_temporary_file(model, tmp_path, capsys):
    folder = tmp_path / "existing_dir"
    folder.mkdir()
    assert cli.main(["dequantize", str(model), "-o", str(folder) + "/", "-q"]) == 2
    line = _one_error_line(capsys.readouterr().err, "dequantize")
    assert str(folder) in line and ".tmp" not in line
    assert _leftovers(tmp_path) == []


def test_replace_failing_removes_the_temporary_file(tmp_path, monkeypatch):
    def refuse(source, target):
        raise PermissionError(13, "Permission denied", source, target)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError, match="out.safetensors") as caught:
        with SafetensorsWriter(tmp_path / "out.safetensors", [("a", "U8", (2,))]) as writer:
            writer.write(np.zeros(2, np.uint8))
    assert ".tmp" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_output_in_a_missing_folder_names_the_path_given(model, tmp_path, capsys):
    target = tmp_path / "missing" / "out.safetensors"
    assert cli.main(["dequantize", str(model), "-o", str(target), "-q"]) == 2
    line = _one_error_line(capsys.readouterr().err, "dequantize")
    assert str(target) in line and ".fp4ref-" not in line


def test_residual_in_a_missing_folder_writes_nothing(model, tmp_path, capsys):
    out = tmp_path / "r.uqff"
    code = cli.main(["convert", str(model), str(out), "--to", "uqff1", "--residual",
                     str(tmp_path / "missing" / "res.st"), "-q"])
    assert code == 2
    _one_error_line(capsys.readouterr().err, "convert")
    assert not out.exists() and _leftovers(tmp_path) == []


def test_existing_residual_is_not_overwritten_silently(model, tmp_path, capsys):
    residual = tmp_path / "residual.safetensors"
    residual.write_bytes(b"mine")
    out = tmp_path / "r.uqff"
    assert cli.main(["convert", str(model), str(out), "--to", "uqff1", "-q"]) == 2
    line = _one_error_line(capsys.readouterr().err, "convert")
    assert "--residual" in line and str(residual) in line
    assert residual.read_bytes() == b"mine" and not out.exists()
    # named explicitly, it is replaced, and both files appear
    assert cli.main(["convert", str(model), str(out), "--to", "uqff1", "--residual",
                     str(residual), "-q"]) == 0
    assert sorted(SafetensorsReader(residual).tensors) == ["b.0.norm.scale"]
    assert len(uqff.read(out)) == 1


def test_outputs_block_replaces_all_or_nothing(tmp_path):
    first, second = tmp_path / "a.st", tmp_path / "b.st"
    with pytest.raises(RuntimeError), outputs():
        with SafetensorsWriter(first, [("x", "U8", (1,))]) as writer:
            writer.write(np.zeros(1, np.uint8))
        assert not first.exists()  # held back until the block ends
        raise RuntimeError("the second output failed")
    assert list(tmp_path.iterdir()) == []
    with outputs():
        for path in (first, second):
            with SafetensorsWriter(path, [("x", "U8", (1,))]) as writer:
                writer.write(np.zeros(1, np.uint8))
    assert first.exists() and second.exists() and _leftovers(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_gives_one_line_not_a_hang(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(fp4ref.FormatError, match="FIFO"):
        SafetensorsReader(fifo)
    done = subprocess.run([sys.executable, "-m", "fp4ref", "inspect", str(fifo)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert "regular files only" in _one_error_line(done.stderr, "inspect")


def test_folder_as_input_is_a_format_error(tmp_path):
    with pytest.raises(fp4ref.FormatError, match="directory"):
        SafetensorsReader(tmp_path)


def test_deep_json_metadata_is_a_format_error(tmp_path, capsys):
    rng = np.random.default_rng(1)
    tensors = {"x.weight": rng.integers(0, 256, (128, 32), dtype=np.uint8),
               "x.weight_scale": rng.integers(0x20, 0x60, (128, 4), dtype=np.uint8).view(
                   ml_dtypes.float8_e4m3fn),
               "x.weight_scale_2": np.array(0.5, np.float32)}
    path = tmp_path / "deep.safetensors"
    save_file(tensors, path, metadata={"_quantization_metadata": "[" * 100000})
    with pytest.raises(fp4ref.FormatError, match="_quantization_metadata"):
        checkpoints.read(path)
    assert cli.main(["inspect", str(path)]) == 2
    _one_error_line(capsys.readouterr().err, "inspect")


def _uqff1(path: Path, part: str, dtype) -> None:
    tensors = {"uqff.version.major": np.array(1, np.uint32),
               "uqff.version.minor": np.array(2, np.uint32),
               "uqff.version.patch": np.array(0, np.uint32),
               "l.weight.format": np.array(6, np.uint8),
               "l.weight": np.zeros((2, 16), np.uint8),
               "l.weight.scales": np.zeros((2, 1), np.uint8),
               "l.bias": np.zeros(2, np.float32)}
    tensors[f"l{part}"] = tensors[f"l{part}"].astype(dtype)
    save_file(tensors, path)


@pytest.mark.parametrize("part, dtype", [
    (".weight", ml_dtypes.float8_e5m2), (".weight.scales", ml_dtypes.float8_e5m2),
    (".bias", ml_dtypes.float8_e5m2), (".bias", np.uint16), (".weight", np.int8)])
def test_uqff_layer_of_a_foreign_dtype_is_a_format_error(tmp_path, part, dtype):
    _uqff1(tmp_path / "m.uqff", part, dtype)
    with pytest.raises(fp4ref.FormatError, match="layer 'l'"):
        uqff.read(tmp_path / "m.uqff")


def test_unexpected_error_is_one_line_and_debug_shows_the_traceback(model, monkeypatch,
                                                                    capsys):
    def broken(*args, **kwargs):
        raise RuntimeError("planted")

    monkeypatch.setattr(commands, "Source", broken)
    assert cli.main(["inspect", str(model)]) == 2
    line = _one_error_line(capsys.readouterr().err, "inspect")
    assert "RuntimeError: planted" in line and "--debug" in line
    assert cli.main(["inspect", str(model), "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("RuntimeError: planted")


# A command whose work waits at call ``WAIT`` of ``TARGET``, while its temporary file exists.
_SLOW = textwrap.dedent("""
    import sys, time
    from fp4ref import cli
    from fp4ref.io import commands
    owner, name, wait = {target!r}
    owner = eval(owner)
    real, calls = getattr(owner, name), []
    def slow(*args, **kwargs):
        calls.append(1)
        if len(calls) == wait:
            print("waiting", flush=True)
            time.sleep(60)
        return real(*args, **kwargs)
    setattr(owner, name, slow)
    sys.exit(cli.main(sys.argv[1:]))
""")


@pytest.mark.parametrize("number", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("command", ["dequantize", "convert"])
def test_signal_leaves_nothing_and_one_line(model, tmp_path, number, command):
    out = tmp_path / "out" / "o.safetensors"
    out.parent.mkdir()
    if command == "dequantize":
        args, target = ["dequantize", str(model), "-o", str(out)], ("commands.api", "dequantize", 1)
    else:  # the layers are looked up twice: for the header, then (file open) for the data
        source = tmp_path / "float.safetensors"
        save_file({"l.weight": np.ones((4, 64), np.float32)}, source)
        args = ["convert", str(source), str(out), "--to", "gpt-oss"]
        target = ("commands._Quantized", "__getitem__", 2)
    # a SIGINT the test process ignores (inherited) would be ignored by the child too: the
    # child starts with the default disposition, so Python installs its KeyboardInterrupt
    child = subprocess.Popen([sys.executable, "-c", _SLOW.format(target=target), *args, "-q"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert child.stdout.readline().strip() == "waiting"
        assert _leftovers(out.parent), "the temporary file should exist meanwhile"
        child.send_signal(number)
        _, err = child.communicate(timeout=300)
    finally:
        child.kill()
    assert child.returncode == 128 + number, err
    what = "terminated (SIGTERM)" if number == signal.SIGTERM else "interrupted (SIGINT)"
    assert err.strip() == f"fp4ref {command}: {what}"
    assert list(out.parent.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_an_output_that_is_not_a_regular_file_is_left_alone(model, tmp_path, capsys):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    assert cli.main(["dequantize", str(model), "-o", str(fifo), "-q"]) == 2
    assert "not a regular file" in _one_error_line(capsys.readouterr().err, "dequantize")
    assert not os.path.isfile(fifo) and _leftovers(tmp_path) == []
    with pytest.raises(FileExistsError, match="not a regular file"):
        SafetensorsWriter(os.devnull, [("x", "U8", (1,))])


def test_an_empty_output_path_is_refused(model, capsys):
    assert cli.main(["convert", str(model), "", "--to", "gpt-oss", "-q"]) == 2
    assert "output path is empty" in _one_error_line(capsys.readouterr().err, "convert")


def test_unknown_or_unavailable_backends_are_one_line(capsys, monkeypatch):
    from fp4ref import backends

    monkeypatch.setattr(backends, "available", lambda: ["python", "numba"])
    assert cli.main(["selftest", "--backend", "nonsense"]) == 2
    assert "not one of" in _one_error_line(capsys.readouterr().err, "selftest")
    assert cli.main(["selftest", "--backend", "cuda"]) == 2
    assert "not available here" in _one_error_line(capsys.readouterr().err, "selftest")
    assert cli.main(["conformance", "check", "--backend", "cuda"]) == 2
    assert "cannot run here" in _one_error_line(capsys.readouterr().err, "conformance check")
    assert cli.main(["conformance", "check", "--impl", ""]) == 2
    assert "--impl must name a module" in _one_error_line(capsys.readouterr().err,
                                                          "conformance check")


def test_generate_writes_all_vectors_or_none(tmp_path, monkeypatch):
    from fp4ref.conformance import generate
    from fp4ref.io import atomic

    target = tmp_path / "vectors"
    target.mkdir()
    (target / "manifest.json").write_bytes(b"previous")
    real, calls = atomic.write_bytes, []

    def failing(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(atomic, "write_bytes", failing)
    with pytest.raises(OSError, match="No space"):
        generate.generate(target, generate.SUITES[:2])
    assert [p.name for p in target.iterdir()] == ["manifest.json"]
    assert (target / "manifest.json").read_bytes() == b"previous"
    monkeypatch.setattr(atomic, "write_bytes", real)
    out = generate.generate(target, generate.SUITES[:2])
    assert sorted(p.name for p in target.iterdir()) == sorted(out)


def test_atomic_write_bytes(tmp_path):
    from fp4ref.io import atomic

    atomic.write_bytes(tmp_path / "a.txt", b"one")
    atomic.write_bytes(tmp_path / "a.txt", b"two")
    assert (tmp_path / "a.txt").read_bytes() == b"two" and _leftovers(tmp_path) == []
    with pytest.raises(FileNotFoundError, match="missing"):
        atomic.write_bytes(tmp_path / "missing" / "a.txt", b"x")


@pytest.mark.parametrize("value, says", [("0", "fp4ref: error: cannot start: "),
                                         ("abc", "fp4ref: warning: RuntimeWarning: ")])
def test_a_bad_numba_environment_is_one_line(model, tmp_path, value, says):
    env = {**os.environ, "NUMBA_NUM_THREADS": value, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "fp4ref", "inspect", str(model)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(says)
    assert done.returncode == (2 if value == "0" else 0)



def test_a_closed_stdout_is_quiet():
    child = subprocess.Popen([sys.executable, "-m", "fp4ref", "conformance", "check", "--list"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # the reader is gone before anything is written (| head -0)
    err = child.stderr.read().decode()
    assert child.wait(timeout=300) == 1 and err == "", err
