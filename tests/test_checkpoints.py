"""Safetensors checkpoints: files built here with the safetensors library (an independent
writer) and byte transforms written out in the test (high-first nibbles, 128x4 tiles),
read back by fp4ref; detection and its refusal to guess; writers and conversions."""

from __future__ import annotations

import json

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

import fp4ref
from fp4ref import FormatError
from fp4ref.io import checkpoints

E4M3 = ml_dtypes.float8_e4m3fn
_NP = {"U8": np.uint8, "F32": np.float32, "F64": np.float64, "BF16": ml_dtypes.bfloat16,
       "F8_E4M3": E4M3}


def load_file(path) -> dict[str, np.ndarray]:
    """A few-line safetensors reader of the test's own (the library's numpy loader has no
    float8), so fp4ref's reader does not check itself."""
    data = open(path, "rb").read()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    header.pop("__metadata__", None)
    body = data[8 + length:]
    return {name: np.frombuffer(body[e["data_offsets"][0]:e["data_offsets"][1]],
                                _NP[e["dtype"]]).reshape(e["shape"])
            for name, e in header.items()}


def _bits(x: np.ndarray) -> np.ndarray:
    return x.view(np.uint32)


def _high_first(blocks: np.ndarray) -> np.ndarray:
    """Swap the nibbles of every byte: low-first bytes to high-first (layouts.md)."""
    return ((blocks & 0x0F) << 4) | (blocks >> 4)


def _tiles_128x4(scales: np.ndarray) -> np.ndarray:
    """[R, C] -> [Rpad, Cpad] in cuBLAS 128x4 order, by tiles (not the offset formula)."""
    rows, cols = scales.shape
    rt, ct = -(-rows // 128), -(-cols // 4)
    padded = np.zeros((rt * 128, ct * 4), np.uint8)
    padded[:rows, :cols] = scales
    tiles = padded.reshape(rt, 4, 32, ct, 4).transpose(0, 3, 2, 1, 4)
    return tiles.reshape(rt * 128, ct * 4)


def _nvfp4(n: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (n, k // 2), dtype=np.uint8)
    scales = rng.integers(0x20, 0x60, (n, k // 16), dtype=np.uint8)
    return blocks, scales


def test_gpt_oss(tmp_path):
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, (2, 3, 4, 16), dtype=np.uint8)
    scales = rng.integers(110, 140, (2, 3, 4), dtype=np.uint8)
    bias = rng.normal(size=(2, 3)).astype(ml_dtypes.bfloat16)
    save_file({"block.0.mlp.mlp1_weight.blocks": np.zeros(1, np.uint8),
               "block.0.mlp.mlp1_blocks": blocks, "block.0.mlp.mlp1_scales": scales,
               "block.0.mlp.mlp1_bias": bias,
               "block.0.norm.scale": np.ones(8, np.float32)}, tmp_path / "a.safetensors")
    ckpt = checkpoints.read(tmp_path / "a.safetensors")
    assert ckpt.convention == "gpt-oss" and list(ckpt) == ["block.0.mlp.mlp1"]
    assert sorted(ckpt.others) == ["block.0.mlp.mlp1_weight.blocks", "block.0.norm.scale"]
    layer = ckpt["block.0.mlp.mlp1"]
    assert layer.format == "mxfp4" and layer.blocks.shape == (2, 3, 64)
    assert layer.shape == (2, 3, 128)
    assert layer.bias.tobytes() == bias.tobytes()
    expected = fp4ref.dequantize(blocks, scales)  # gpt-oss's own [E, N, K/32, 16] form
    assert np.array_equal(_bits(fp4ref.dequantize(layer)), _bits(expected.reshape(2, 3, 128)))
    part = ckpt.layer("block.0.mlp.mlp1", rows=(1, 2))
    assert np.array_equal(part.blocks, layer.blocks[1:2]) and np.array_equal(part.bias,
                                                                             layer.bias[1:2])


def test_modelopt(tmp_path):
    blocks, scales = _nvfp4(100, 64, 2)
    save_file({"l.weight": blocks, "l.weight_scale": scales.view(E4M3),
               "l.weight_scale_2": np.array(0.375, np.float32),
               "l.input_scale": np.array(2.0, np.float32)}, tmp_path / "a.safetensors")
    ckpt = checkpoints.read(tmp_path / "a.safetensors")
    assert ckpt.convention == "modelopt" and ckpt.others == []
    layer = ckpt["l"]
    assert layer.tensor_scale == np.float32(0.375) and float(layer.extras[".input_scale"]) == 2
    expected = fp4ref.dequantize(blocks, scales, format="nvfp4", tensor_scale=0.375)
    assert np.array_equal(_bits(fp4ref.dequantize(layer)), _bits(expected))


def test_compressed_tensors_scale_is_inverted(tmp_path):
    blocks, scales = _nvfp4(4, 32, 3)
    save_file({"l.weight_packed": blocks, "l.weight_scale": scales.view(E4M3),
               "l.weight_global_scale": np.array([4.0], np.float32),
               "l.input_global_scale": np.array([8.0], np.float32)}, tmp_path / "a.safetensors")
    layer = checkpoints.read(tmp_path / "a.safetensors")["l"]
    assert layer.tensor_scale == np.float32(0.25)
    expected = fp4ref.dequantize(blocks, scales, format="nvfp4", tensor_scale=0.25)
    assert np.array_equal(_bits(fp4ref.dequantize(layer)), _bits(expected))
    checkpoints.write(tmp_path / "b.safetensors", {"l": layer}, "compressed-tensors")
    again = load_file(tmp_path / "b.safetensors")
    assert again["l.weight_global_scale"].tolist() == [4.0]
    assert again["l.input_global_scale"].tolist() == [8.0]


def _comfy_file(path, n, k, marker: bool, seed=4):
    blocks, scales = _nvfp4(n, k, seed)
    tensors = {"d.weight": _high_first(blocks), "d.weight_scale": _tiles_128x4(scales).view(E4M3),
               "d.weight_scale_2": np.array(0.5, np.float32)}
    if marker:
        tensors["d.comfy_quant"] = np.frombuffer(b'{"format": "nvfp4"}', np.uint8)
    save_file(tensors, path)
    return blocks, scales


@pytest.mark.parametrize("n, k, marker", [(256, 64, True), (100, 48, False)])
def test_comfyui(tmp_path, n, k, marker):
    blocks, scales = _comfy_file(tmp_path / "a.safetensors", n, k, marker)
    ckpt = checkpoints.read(tmp_path / "a.safetensors")
    assert ckpt.convention == "comfyui" and ckpt.others == []
    layer = ckpt["d"]
    assert layer.nibble_order == "high-first" and layer.scale_layout == "128x4"
    expected = fp4ref.dequantize(blocks, scales, format="nvfp4", tensor_scale=0.5)
    assert np.array_equal(_bits(fp4ref.dequantize(layer)), _bits(expected))
    part = ckpt.layer("d", rows=(3, 7))  # scales come back linear
    assert part.scale_layout == "linear" and np.array_equal(part.scales, scales[3:7])


def test_refuses_to_guess(tmp_path):
    _comfy_file(tmp_path / "a.safetensors", 256, 64, marker=False)
    with pytest.raises(FormatError, match=r"\['modelopt', 'comfyui'\].*refusing to guess"):
        checkpoints.read(tmp_path / "a.safetensors")
    assert checkpoints.read(tmp_path / "a.safetensors", convention="comfyui").convention == \
        "comfyui"
    assert checkpoints.read(tmp_path / "a.safetensors", "modelopt")["d"].nibble_order == \
        "low-first"


def test_metadata_marker(tmp_path):
    blocks, scales = _nvfp4(128, 64, 5)
    save_file({"d.weight": _high_first(blocks),
               "d.weight_scale": _tiles_128x4(scales).view(E4M3),
               "d.weight_scale_2": np.array(1.0, np.float32)}, tmp_path / "a.safetensors",
              metadata={"_quantization_metadata": json.dumps({"layers": {"d": {
                  "format": "nvfp4"}}})})
    assert checkpoints.read(tmp_path / "a.safetensors").convention == "comfyui"


def test_nothing_or_mixed(tmp_path):
    save_file({"w": np.ones((2, 2), np.float32)}, tmp_path / "a.safetensors")
    with pytest.raises(FormatError, match="no quantized layer"):
        checkpoints.read(tmp_path / "a.safetensors")
    blocks, scales = _nvfp4(4, 32, 6)
    save_file({"a.weight": blocks, "a.weight_scale": scales.view(E4M3),
               "a.weight_scale_2": np.array(1.0, np.float32),
               "b.weight_packed": blocks, "b.weight_scale": scales.view(E4M3),
               "b.weight_global_scale": np.array([1.0], np.float32)}, tmp_path / "b.safetensors")
    with pytest.raises(FormatError, match="different conventions"):
        checkpoints.read(tmp_path / "b.safetensors")
    ckpt = checkpoints.read(tmp_path / "b.safetensors", convention="modelopt")
    assert list(ckpt) == ["a"] and sorted(ckpt.others)[0] == "b.weight_global_scale"
    with pytest.raises(ValueError, match="convention must be one of"):
        checkpoints.read(tmp_path / "b.safetensors", convention="gguf")


@pytest.mark.parametrize("convention", checkpoints.CONVENTIONS)
def test_write_read_round_trip(tmp_path, convention):
    if convention == "gpt-oss":
        rng = np.random.default_rng(7)
        layer = fp4ref.QuantizedLayer(rng.integers(0, 256, (2, 5, 32), dtype=np.uint8),
                                      rng.integers(100, 150, (2, 5, 2), dtype=np.uint8),
                                      bias=np.ones((2, 5), np.float32))
    else:
        blocks, scales = _nvfp4(130, 80, 8)
        layer = fp4ref.QuantizedLayer(blocks, scales, format="nvfp4", tensor_scale=0.75)
    path = tmp_path / "a.safetensors"
    checkpoints.write(path, {"m.x": layer}, convention, others={"n": np.arange(3.0)})
    back = checkpoints.read(path)
    assert back.convention == convention and back.others == ["n"]
    assert np.array_equal(load_file(path)["n"], np.arange(3.0))
    assert np.array_equal(_bits(fp4ref.dequantize(back["m.x"])), _bits(fp4ref.dequantize(layer)))


def test_written_comfyui_bytes(tmp_path):
    blocks, scales = _nvfp4(130, 80, 9)
    layer = fp4ref.QuantizedLayer(blocks, scales, format="nvfp4", tensor_scale=0.75)
    checkpoints.write(tmp_path / "a.safetensors", {"d": layer}, "comfyui")
    tensors = load_file(tmp_path / "a.safetensors")
    assert np.array_equal(tensors["d.weight"], _high_first(blocks))
    assert np.array_equal(tensors["d.weight_scale"].view(np.uint8), _tiles_128x4(scales))
    assert json.loads(tensors["d.comfy_quant"].tobytes()) == {"format": "nvfp4"}


def test_write_refuses(tmp_path):
    layer = fp4ref.QuantizedLayer(np.zeros((2, 16), np.uint8), np.zeros((2, 1), np.uint8))
    with pytest.raises(ValueError, match="holds nvfp4 layers; got mxfp4"):
        checkpoints.write(tmp_path / "a.safetensors", {"x": layer}, "modelopt")
    assert not list(tmp_path.iterdir())


def test_fuzz_checkpoint_files(tmp_path_factory):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    folder = tmp_path_factory.mktemp("fuzz")
    _comfy_file(folder / "seed.safetensors", 130, 32, marker=True)
    seed = (folder / "seed.safetensors").read_bytes()
    changes = st.lists(st.tuples(st.integers(0, 400) | st.integers(0, 10**6),
                                 st.integers(0, 255)), max_size=4)

    @settings(max_examples=150, deadline=None)
    @given(changes, st.integers(0, 10**6), st.booleans())
    def run(edits, cut, truncate):
        data = bytearray(seed)
        for where, value in edits:
            data[where % len(data)] = value
        if truncate:
            del data[cut % len(data):]
        path = folder / "f.safetensors"
        path.write_bytes(bytes(data))
        try:
            for layer in checkpoints.read(path).values():
                fp4ref.dequantize(layer)
        except FormatError:
            pass

    run()
