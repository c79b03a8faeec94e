"""``fp4ref inspect / dequantize / convert`` on files built here; outputs checked with a
test-local safetensors reader and fp4ref.dequantize on the arrays the files were built from."""

from __future__ import annotations

import json
import subprocess
import sys

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

import fp4ref
from fp4ref import cli
from fp4ref.io import checkpoints, commands, uqff

BF16 = ml_dtypes.bfloat16
_NP = {"U8": np.uint8, "F32": np.float32, "BF16": BF16, "F16": np.float16,
       "F8_E4M3": ml_dtypes.float8_e4m3fn, "U32": np.uint32}


def load(path) -> dict[str, np.ndarray]:
    """The test's own few-line safetensors reader."""
    data = open(path, "rb").read()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    header.pop("__metadata__", None)
    body = data[8 + length:]
    return {n: np.frombuffer(body[e["data_offsets"][0]:e["data_offsets"][1]],
                             _NP[e["dtype"]]).reshape(e["shape"]) for n, e in header.items()}


@pytest.fixture
def gpt_oss(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {
        "b.0.mlp1_blocks": rng.integers(0, 256, (3, 5, 2, 16), dtype=np.uint8),
        "b.0.mlp1_scales": rng.integers(115, 135, (3, 5, 2), dtype=np.uint8),
        "b.0.mlp1_bias": rng.normal(size=(3, 5)).astype(BF16),
        "b.0.attn.qkv.weight": rng.normal(size=(4, 64)).astype(BF16),
        "b.0.norm.scale": np.ones(7, np.float32),
    }
    save_file(tensors, tmp_path / "model.safetensors")
    return tmp_path / "model.safetensors", tensors


def _bits16(x):
    return np.asarray(x).view(np.uint16)


def test_inspect(gpt_oss, capsys):
    path, _ = gpt_oss
    assert cli.main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "MXFP4 checkpoint, convention gpt-oss, 1 quantized layers, 2 other tensors" in out
    assert "b.0.mlp1" in out and "3x5x64" in out and "NaN (0xFF) 0" in out


def test_dequantize_streams_slices(gpt_oss, tmp_path, monkeypatch):
    path, tensors = gpt_oss
    monkeypatch.setattr(commands, "CHUNK_BYTES", 100)  # one expert row at a time
    out = tmp_path / "out.safetensors"
    assert cli.main(["dequantize", str(path), "-o", str(out), "--dtype", "bfloat16"]) == 0
    got = load(out)
    expected = fp4ref.dequantize(tensors["b.0.mlp1_blocks"], tensors["b.0.mlp1_scales"],
                                 dtype="bfloat16").reshape(3, 5, 64)
    assert np.array_equal(_bits16(got["b.0.mlp1"]), _bits16(expected))
    for name in ("b.0.mlp1_bias", "b.0.attn.qkv.weight", "b.0.norm.scale"):
        assert got[name].tobytes() == tensors[name].tobytes()


def test_dequantize_comfyui_and_float16(tmp_path):
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, (130, 24), dtype=np.uint8)
    scales = rng.integers(0x20, 0x60, (130, 3), dtype=np.uint8)
    layer = fp4ref.QuantizedLayer(blocks, scales, format="nvfp4", tensor_scale=0.5)
    checkpoints.write(tmp_path / "c.safetensors", {"d": layer}, "comfyui")
    out = tmp_path / "out.safetensors"
    cli.main(["dequantize", str(tmp_path / "c.safetensors"), "-o", str(out), "--dtype",
              "float16", "-q"])
    expected = fp4ref.dequantize(blocks, scales, format="nvfp4", tensor_scale=0.5,
                                 dtype="float16")
    assert np.array_equal(_bits16(load(out)["d.weight"]), _bits16(expected))


@pytest.mark.parametrize("to", ["uqff0", "uqff1"])
def test_convert_to_uqff_and_back(gpt_oss, tmp_path, to):
    path, tensors = gpt_oss
    target = tmp_path / f"model-0.{to}.uqff"
    assert cli.main(["convert", str(path), str(target), "--to", to, "-q"]) == 0
    back = uqff.read(target)
    assert back.generation == int(to[-1])
    residual = load(tmp_path / "residual.safetensors")
    assert sorted(residual) == ["b.0.attn.qkv.weight", "b.0.norm.scale"]
    again = tmp_path / "again.safetensors"
    cli.main(["convert", str(target), str(again), "--to", "gpt-oss", "-q"])
    got = load(again)
    key = "0" if to == "uqff0" else "b.0.mlp1"
    for suffix in ("_blocks", "_scales", "_bias"):
        assert got[key + suffix].tobytes() == tensors["b.0.mlp1" + suffix].tobytes()
    out = tmp_path / "out.safetensors"
    cli.main(["dequantize", str(target), "-o", str(out), "-q"])
    name = "0" if to == "uqff0" else "b.0.mlp1.weight"
    expected = fp4ref.dequantize(tensors["b.0.mlp1_blocks"], tensors["b.0.mlp1_scales"],
                                 dtype="bfloat16").reshape(3, 5, 64)
    assert np.array_equal(_bits16(load(out)[name]), _bits16(expected))


def test_convert_nvfp4_conventions(tmp_path, capsys):
    rng = np.random.default_rng(2)
    blocks = rng.integers(0, 256, (128, 32), dtype=np.uint8)
    scales = rng.integers(0x20, 0x60, (128, 4), dtype=np.uint8)
    layer = fp4ref.QuantizedLayer(blocks, scales, format="nvfp4", tensor_scale=0.25,
                                  extras={".input_scale": np.array(3.0, np.float32)})
    checkpoints.write(tmp_path / "m.safetensors", {"x": layer}, "modelopt")
    original = load(tmp_path / "m.safetensors")
    assert cli.main(["inspect", str(tmp_path / "m.safetensors")]) == 2  # both fit 128 x 4
    assert "refusing to guess" in capsys.readouterr().err
    cli.main(["convert", str(tmp_path / "m.safetensors"), str(tmp_path / "c.safetensors"),
              "--to", "comfyui", "--convention", "modelopt", "-q"])
    cli.main(["convert", str(tmp_path / "c.safetensors"), str(tmp_path / "ct.safetensors"),
              "--to", "compressed-tensors", "-q"])
    assert load(tmp_path / "ct.safetensors")["x.weight_global_scale"].tolist() == [4.0]
    cli.main(["convert", str(tmp_path / "ct.safetensors"), str(tmp_path / "m2.safetensors"),
              "--to", "modelopt", "-q"])
    final = load(tmp_path / "m2.safetensors")
    for name in ("x.weight", "x.weight_scale", "x.weight_scale_2"):
        assert final[name].tobytes() == original[name].tobytes()


def test_convert_float_checkpoint_quantizes(tmp_path):
    rng = np.random.default_rng(3)
    weight = rng.normal(size=(6, 64)).astype(np.float32)
    save_file({"l.weight": weight, "l.norm": np.ones(3, np.float32)}, tmp_path / "f.safetensors")
    cli.main(["convert", str(tmp_path / "f.safetensors"), str(tmp_path / "q.safetensors"),
              "--to", "gpt-oss", "-q"])
    got = load(tmp_path / "q.safetensors")
    expected = fp4ref.quantize(weight, format="mxfp4")
    assert np.array_equal(got["l_blocks"].reshape(6, 32), expected.blocks)
    assert np.array_equal(got["l_scales"], expected.scales)
    assert np.array_equal(got["l.norm"], np.ones(3, np.float32))


def test_failure_leaves_nothing(gpt_oss, tmp_path, monkeypatch):
    path, _ = gpt_oss
    out = tmp_path / "out.safetensors"
    out.write_bytes(b"previous")
    calls = []

    def broken(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    real = fp4ref.api.dequantize
    monkeypatch.setattr(commands.api, "dequantize", broken)
    monkeypatch.setattr(commands, "CHUNK_BYTES", 100)
    with pytest.raises(RuntimeError, match="disk on fire"):
        commands.dequantize_file(str(path), str(out))
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors", "out.safetensors"]


def test_bad_input_is_reported(tmp_path, capsys):
    (tmp_path / "bad.safetensors").write_bytes(b"\xff" * 20)
    assert cli.main(["inspect", str(tmp_path / "bad.safetensors")]) == 2
    assert "fp4ref inspect: error:" in capsys.readouterr().err
    with pytest.raises(fp4ref.FormatError, match="header length"):
        commands.Source(str(tmp_path / "bad.safetensors"))
    out = tmp_path / "out.safetensors"
    assert cli.main(["dequantize", str(tmp_path / "bad.safetensors"), "-o", str(out)]) == 2
    assert not out.exists()


def test_entry_point(gpt_oss):
    path, _ = gpt_oss
    done = subprocess.run([sys.executable, "-m", "fp4ref", "inspect", str(path)],
                          capture_output=True, text=True, check=True)
    assert "convention gpt-oss" in done.stdout


def test_bench_io_generator(tmp_path):
    from fp4ref.bench import io as bench

    experts = bench.generate(str(tmp_path / "g.safetensors"), 5 << 20)
    ckpt = checkpoints.read(tmp_path / "g.safetensors")
    assert ckpt.convention == "gpt-oss" and experts == 1
    assert [ckpt.entries[k].shape for k in ckpt] == [(1, 2880, 2880)]
