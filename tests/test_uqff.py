"""UQFF: blob bytes written out by hand from spec/uqff.md, both file generations, the
safetensors library as an independent reader and writer of the containers, and
malformed input (every failure a FormatError naming what and where)."""

from __future__ import annotations

import struct

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.numpy import load_file, save_file

import fp4ref
from fp4ref import FormatError, QuantizedLayer, uqff

# One layer N = 1, K = 32: blocks bytes 0x00..0x0F, scale 0x7F, no bias, version 0.2.0.
# uqff.md: u32 version, u8 type 6, u8 has_bias; records: u32 length, u32 dtype, u32 ndims,
# u32 dims..., data.
SMALL_BLOB = bytes.fromhex(
    "00020000" "06" "00"
    "10000000" "00000000" "02000000" "01000000" "10000000" + bytes(range(16)).hex() +
    "01000000" "00000000" "02000000" "01000000" "01000000" "7f"
)
SMALL_BLOCKS = np.arange(16, dtype=np.uint8).reshape(1, 16)
SMALL_SCALES = np.array([[0x7F]], np.uint8)


def test_small_blob_bytes():
    assert len(SMALL_BLOB) == 6 + (12 + 8 + 16) + (12 + 8 + 1)
    assert uqff.encode_mxfp4_blob(SMALL_BLOCKS, SMALL_SCALES) == SMALL_BLOB
    blocks, scales, bias, version = uqff.decode_mxfp4_blob(SMALL_BLOB)
    assert np.array_equal(blocks, SMALL_BLOCKS) and np.array_equal(scales, SMALL_SCALES)
    assert bias is None and version == (0, 2, 0)


@pytest.mark.parametrize("dtype, code, raw", [
    (np.float32, 6, "0000803f" "000000c0"),        # 1.0, -2.0
    (np.float16, 4, "003c" "00c0"),
    (ml_dtypes.bfloat16, 5, "803f" "00c0"),
])
def test_bias_record(dtype, code, raw):
    blocks = np.zeros((2, 16), np.uint8)
    scales = np.full((2, 1), 127, np.uint8)
    blob = uqff.encode_mxfp4_blob(blocks, scales, np.array([1.0, -2.0], dtype))
    assert blob[5] == 1
    bias_record = blob[6 + (12 + 8 + 32) + (12 + 8 + 2):]
    width = np.dtype(dtype).itemsize
    assert bias_record == struct.pack("<IIII", 2 * width, code, 1, 2) + bytes.fromhex(raw)
    bias = uqff.decode_mxfp4_blob(blob).bias
    assert bias.dtype == np.dtype(dtype) and bias.tolist() == [1.0, -2.0]


def test_expert_blob_and_version_word():
    blocks = np.arange(2 * 3 * 32, dtype=np.uint8).reshape(2, 3, 32)
    scales = np.arange(12, dtype=np.uint8).reshape(2, 3, 2)
    blob = uqff.encode_mxfp4_blob(blocks, scales, version=(0, 1, 3))
    assert blob[:4] == bytes([3, 1, 0, 0])
    assert blob[6:6 + 24] == struct.pack("<IIIIII", 192, 0, 3, 2, 3, 32)
    decoded = uqff.decode_mxfp4_blob(blob)
    assert decoded.version == (0, 1, 3)
    assert np.array_equal(decoded.blocks, blocks) and np.array_equal(decoded.scales, scales)


def _with_word(word: int) -> bytes:
    return struct.pack("<I", word) + SMALL_BLOB[4:]


@pytest.mark.parametrize("word, ok", [
    (0x00_00_02_00, True), (0x00_00_01_00, True), (0x00_00_02_07, True),  # patch ignored
    (0x00_00_03_00, False), (0x00_01_00_00, False), (0x01_00_02_00, False),  # top byte counts
])
def test_version_rule(word, ok):
    if ok:
        assert uqff.decode_mxfp4_blob(_with_word(word)).version[:2] == (0, (word >> 8) & 255)
    else:
        with pytest.raises(FormatError, match="version"):
            uqff.decode_mxfp4_blob(_with_word(word))


def test_major_message_is_mistralrs():
    with pytest.raises(FormatError, match=r"Major version of ISQ artifact file \(1\) does not "
                                          r"match the implementation in this build \(0\)"):
        uqff.decode_mxfp4_blob(_with_word(0x00_01_00_00))


def _patch(data: bytes, offset: int, fmt: str, *values) -> bytes:
    buffer = bytearray(data)
    struct.pack_into(fmt, buffer, offset, *values)
    return bytes(buffer)


@pytest.mark.parametrize("data, message", [
    (SMALL_BLOB[:5], "too short"),
    (_patch(SMALL_BLOB, 4, "<B", 4), r"ISQ type \(4, Afq\) doesn't match expected type 6"),
    (_patch(SMALL_BLOB, 5, "<B", 2), "has_bias byte at offset 5 is 2"),
    (_patch(SMALL_BLOB, 5, "<B", 1), "bias record at byte 63: truncated"),
    (_patch(SMALL_BLOB, 10, "<I", 14), "blocks record at byte 6: unknown dtype code 14"),
    (_patch(SMALL_BLOB, 10, "<I", 12), "dtype code 12 \\(F4\\) is never serialized"),
    (_patch(SMALL_BLOB, 14, "<I", 9), "9 dimensions"),
    (_patch(SMALL_BLOB, 6, "<I", 17), "data length 17 is not the 16 bytes"),
    (_patch(SMALL_BLOB, 18, "<I", 3), "data length 16 is not the 48 bytes"),
    (_patch(SMALL_BLOB, 6, "<III", 2**32 - 1, 0, 2) [:18] + struct.pack("<II", 2**32 - 1, 1)
     + SMALL_BLOB[26:], "4294967295 data bytes run past the end"),
    (SMALL_BLOB[:50], "scales record at byte 42: truncated"),
    (SMALL_BLOB[:-1], "run past the end"),
    (SMALL_BLOB + b"\0", "1 bytes after the last record"),
    (_patch(SMALL_BLOB, 10, "<III", 6, 2, 1)[:22] + b"\4\0\0\0" + SMALL_BLOB[26:],
     "blocks and scales must be U8"),
    (SMALL_BLOB[:42] + struct.pack("<IIII", 1, 0, 1, 1) + b"\x7f", "scales shape"),
])
def test_malformed_blobs(data, message):
    with pytest.raises(FormatError, match=message):
        uqff.decode_mxfp4_blob(data)


def test_bias_dtype_and_shape_checked():
    blob = uqff.encode_mxfp4_blob(SMALL_BLOCKS, SMALL_SCALES, np.ones(1, np.float32))
    bad_dtype = _patch(blob, len(blob) - 4 - 16 + 4, "<I", 2)  # F32 -> I32, same width
    with pytest.raises(FormatError, match="bias must be F32, F16 or BF16"):
        uqff.decode_mxfp4_blob(bad_dtype)


def test_encode_refuses():
    with pytest.raises(ValueError, match="version"):
        uqff.encode_mxfp4_blob(SMALL_BLOCKS, SMALL_SCALES, version=(1, 0, 0))
    with pytest.raises(ValueError, match="version"):
        uqff.encode_mxfp4_blob(SMALL_BLOCKS, SMALL_SCALES, version=(0, 3, 0))
    with pytest.raises(ValueError, match="bias must be F32, F16 or BF16"):
        uqff.encode_mxfp4_blob(SMALL_BLOCKS, SMALL_SCALES, np.ones(1, np.int32))
    with pytest.raises(ValueError, match=r"blocks must be \[N, K/2\]"):
        uqff.encode_mxfp4_blob(SMALL_BLOCKS.reshape(1, 1, 1, 16), SMALL_SCALES.reshape(1, 1, 1))
    with pytest.raises(ValueError, match="scales shape"):
        uqff.encode_mxfp4_blob(SMALL_BLOCKS, np.zeros((1, 2), np.uint8))


layer_arrays = st.tuples(
    st.sampled_from([(), (2,)]), st.integers(1, 4), st.integers(1, 3),
    st.sampled_from([None, np.float32, np.float16, ml_dtypes.bfloat16]),
    st.integers(0, 2**32 - 1),
)


def _layer(experts, n, kb, bias_dtype, seed) -> QuantizedLayer:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (*experts, n, 16 * kb), dtype=np.uint8)
    scales = rng.integers(0, 256, (*experts, n, kb), dtype=np.uint8)
    bias = None if bias_dtype is None else rng.normal(size=(*experts, n)).astype(bias_dtype)
    return QuantizedLayer(blocks, scales, bias=bias)


def _same(a: QuantizedLayer, b: QuantizedLayer) -> bool:
    same_bias = (a.bias is None and b.bias is None) or (
        a.bias is not None and b.bias is not None and a.bias.dtype == b.bias.dtype
        and a.bias.tobytes() == b.bias.tobytes())
    return (np.array_equal(a.blocks, b.blocks) and np.array_equal(a.scales, b.scales)
            and a.format == b.format and same_bias)


@settings(max_examples=20, deadline=None)
@given(layer_arrays)
def test_blob_round_trip(arrays):
    layer = _layer(*arrays)
    blocks, scales, bias, _ = uqff.decode_mxfp4_blob(
        uqff.encode_mxfp4_blob(layer.blocks, layer.scales, layer.bias))
    assert _same(layer, QuantizedLayer(blocks, scales, bias=bias))


@pytest.mark.parametrize("generation", [0, 1])
def test_file_round_trip_and_dequantize(tmp_path, generation):
    layers = {
        (3 if generation == 0 else "model.layers.0.mlp.down_proj"): _layer((), 3, 2, None, 1),
        (10 if generation == 0 else "model.layers.0.mlp.experts.gate_proj"):
            _layer((2,), 4, 1, ml_dtypes.bfloat16, 2),
    }
    path = tmp_path / "model-0.uqff"
    uqff.write(path, layers, generation=generation)
    back = uqff.read(path)
    assert back.generation == generation and list(back) == list(layers)
    assert back.version == ((0, 2, 0), (1, 2, 0))[generation]
    for key, layer in layers.items():
        assert _same(back[key], layer)
        expected = fp4ref.dequantize(layer.blocks, layer.scales).view(np.uint32)
        assert np.array_equal(fp4ref.dequantize(back[key]).view(np.uint32), expected)


def test_generation_0_container_is_safetensors_of_blobs(tmp_path):
    path = tmp_path / "a.uqff"
    uqff.write(path, {7: QuantizedLayer(SMALL_BLOCKS, SMALL_SCALES)}, generation=0)
    tensors = load_file(path)
    assert list(tensors) == ["7"]
    assert tensors["7"].dtype == np.uint8 and tensors["7"].tobytes() == SMALL_BLOB
    # and a container built by the safetensors library reads back
    save_file({"0": np.frombuffer(SMALL_BLOB, np.uint8), "12": np.frombuffer(SMALL_BLOB,
               np.uint8)}, tmp_path / "b.uqff")
    back = uqff.read(tmp_path / "b.uqff")
    assert back.generation == 0 and sorted(back) == [0, 12]
    assert np.array_equal(back[12].blocks, SMALL_BLOCKS)


def _generation_1(**override) -> dict:
    tensors = {
        "uqff.version.major": np.array(1, np.uint32),
        "uqff.version.minor": np.array(2, np.uint32),
        "uqff.version.patch": np.array(0, np.uint32),
        "m.down.weight.format": np.array(6, np.uint8),
        "m.down.weight": SMALL_BLOCKS,
        "m.down.weight.scales": SMALL_SCALES,
        "m.down.bias": np.ones(1, np.float16),
    }
    tensors.update(override)
    return {k: v for k, v in tensors.items() if v is not None}


def test_generation_1_names(tmp_path):
    path = tmp_path / "a.uqff"
    uqff.write(path, {"m.down": QuantizedLayer(SMALL_BLOCKS, SMALL_SCALES,
                                               bias=np.ones(1, np.float16))})
    written = load_file(path)
    expected = _generation_1()
    assert sorted(written) == sorted(expected)
    for name, array in expected.items():
        assert written[name].dtype == array.dtype and written[name].shape == array.shape
        assert written[name].tobytes() == array.tobytes()
    save_file(expected, tmp_path / "b.uqff", metadata={"uqff.producer": "someone"})
    back = uqff.read(tmp_path / "b.uqff")
    assert back.generation == 1 and back.version == (1, 2, 0)
    assert back["m.down"].bias.dtype == np.float16


@pytest.mark.parametrize("override, message", [
    ({"uqff.version.major": np.array(2, np.uint32)}, "version 2.2.0"),
    ({"uqff.version.minor": np.array(3, np.uint32)}, "version 1.3.0"),
    ({"uqff.version.minor": None}, "uqff.version.minor must be a U32 scalar; got missing"),
    ({"uqff.version.patch": np.array([0], np.uint32)},
     "must be a U32 scalar; got U32 \\[1\\]"),
    ({"m.down.weight.format": np.array(4, np.uint8)}, "quantization type 4 \\(Afq\\)"),
    ({"m.down.weight.scales": None}, "has no 'm.down.weight.scales'"),
    ({"m.down.weight.scales": np.zeros((1, 2), np.uint8)}, "scales shape"),
    ({"m.down.bias": np.ones(2, np.float32)}, "bias shape"),
    ({"stray": np.ones(2, np.float32)}, "'stray' belongs to no MXFP4 layer"),
])
def test_generation_1_refusals(tmp_path, override, message):
    save_file(_generation_1(**override), tmp_path / "a.uqff")
    with pytest.raises(FormatError, match=message):
        uqff.read(tmp_path / "a.uqff")


def test_neither_generation(tmp_path):
    tensors = _generation_1()
    for name in ("uqff.version.major", "uqff.version.minor", "uqff.version.patch"):
        del tensors[name]
    save_file(tensors, tmp_path / "a.uqff")
    with pytest.raises(FormatError, match="no uqff.version.\\* scalars"):
        uqff.read(tmp_path / "a.uqff")


def test_write_refuses(tmp_path):
    layer = QuantizedLayer(SMALL_BLOCKS, SMALL_SCALES)
    with pytest.raises(ValueError, match="layer indices"):
        uqff.write(tmp_path / "a.uqff", {"m.down": layer}, generation=0)
    with pytest.raises(ValueError, match="UQFF holds MXFP4"):
        uqff.write(tmp_path / "a.uqff", {"x": QuantizedLayer(SMALL_BLOCKS, SMALL_SCALES,
                                                             format="nvfp4")})
    with pytest.raises(ValueError, match="generation must be 0 or 1"):
        uqff.write(tmp_path / "a.uqff", {"x": layer}, generation=2)
    assert not list(tmp_path.iterdir())  # nothing half-written


def _valid_file(tmp_path, generation: int) -> bytes:
    layers = {0: _layer((), 2, 1, np.float32, 3), 4: _layer((2,), 1, 1, None, 4)}
    if generation == 1:
        layers = {f"l{k}": v for k, v in layers.items()}
    uqff.write(tmp_path / "seed.uqff", layers, generation=generation)
    return (tmp_path / "seed.uqff").read_bytes()


def _read_everything(path) -> None:
    for layer in uqff.read(path).values():
        fp4ref.dequantize(layer)


mutations = st.lists(
    st.tuples(st.integers(0, 300) | st.integers(0, 10**6), st.integers(0, 255)), max_size=4)


@settings(max_examples=150, deadline=None)
@given(mutations, st.integers(0, 10**6), st.booleans())
def test_fuzz_blobs(changes, cut, truncate):
    layer = _layer((2,), 2, 2, np.float16, 5)
    blob = bytearray(uqff.encode_mxfp4_blob(layer.blocks, layer.scales, layer.bias))
    for where, value in changes:
        blob[where % len(blob)] = value
    if truncate:
        del blob[cut % len(blob):]
    try:
        uqff.decode_mxfp4_blob(bytes(blob))
    except FormatError:
        pass


@pytest.mark.parametrize("generation", [0, 1])
def test_fuzz_files(tmp_path_factory, generation):
    seed = _valid_file(tmp_path_factory.mktemp("seed"), generation)
    folder = tmp_path_factory.mktemp("fuzz")

    @settings(max_examples=150, deadline=None)
    @given(mutations, st.integers(0, 10**6), st.booleans())
    def run(changes, cut, truncate):
        data = bytearray(seed)
        for where, value in changes:
            data[where % len(data)] = value
        if truncate:
            del data[cut % len(data):]
        path = folder / "f.uqff"
        path.write_bytes(bytes(data))
        try:
            _read_everything(path)
        except FormatError:
            pass

    run()
