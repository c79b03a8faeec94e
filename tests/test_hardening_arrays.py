"""Issue 17, arrays: sizes checked before any copy (a huge broadcast view gives a clear
error, not a MemoryError), and every integer argument a clear error naming it."""

from __future__ import annotations

import numpy as np
import pytest

import fp4ref
from fp4ref import _checks, buffers

HUGE = (2**24, 2**24)  # 256 TiB of uint8 as a broadcast view of one byte


@pytest.mark.parametrize("call, name", [
    (lambda: fp4ref.dequantize(np.broadcast_to(np.uint8(1), HUGE),
                               np.zeros((2, 1), np.uint8)), "blocks"),
    (lambda: fp4ref.dequantize(np.broadcast_to(np.uint8(1), HUGE),
                               np.broadcast_to(np.uint8(127), (2**24, 2**20))), "blocks"),
    (lambda: fp4ref.decode_e2m1(np.broadcast_to(np.uint8(1), HUGE)), "codes"),
    (lambda: fp4ref.decode_e8m0(np.broadcast_to(np.uint8(1), HUGE)), "b"),
    (lambda: fp4ref.encode_e2m1(np.broadcast_to(np.float32(1), HUGE)), "x"),
    (lambda: fp4ref.quantize(np.broadcast_to(np.float32(1), HUGE)), "x"),
    (lambda: fp4ref.quantize(np.broadcast_to(np.float32(1), HUGE), format="nvfp4"), "x"),
    (lambda: fp4ref.pack(np.broadcast_to(np.uint8(1), HUGE)), "codes"),
])
def test_a_huge_broadcast_view_is_refused_before_any_copy(call, name):
    with pytest.raises(ValueError, match=rf"^{name}: a contiguous.*GiB, more than this "
                                         r"machine's .*broadcast view"):
        call()


def test_a_result_larger_than_memory_is_refused_naming_out(monkeypatch):
    monkeypatch.setattr(buffers, "memory_bytes", lambda: 4096)
    blocks, scales = np.zeros((64, 16), np.uint8), np.full((64, 1), 127, np.uint8)
    with pytest.raises(ValueError, match=r"^out: the result \(float32, shape \(64, 32\)\)"):
        fp4ref.dequantize(blocks, scales, backend="numba")
    monkeypatch.setattr(buffers, "memory_bytes", lambda: 1 << 30)
    assert fp4ref.dequantize(blocks, scales).shape == (64, 32)


@pytest.mark.parametrize("function", [fp4ref.pack, fp4ref.unpack])
@pytest.mark.parametrize("order", ["split-half", "low-first"])
@pytest.mark.parametrize("value", [32.0, None, "32", True, np.float32(32), [32]])
def test_block_size_of_the_wrong_type_names_it(function, order, value):
    with pytest.raises(TypeError, match=r"^block_size must be an int; got "):
        function(np.zeros((2, 32), np.uint8), order, block_size=value)


@pytest.mark.parametrize("value", [0, -2, 3])
def test_block_size_out_of_range_names_it(value):
    with pytest.raises(ValueError, match="block_size"):
        fp4ref.pack(np.zeros((2, 32), np.uint8), "split-half", block_size=value)


def test_numpy_integers_are_integers():
    codes = np.arange(32, dtype=np.uint8).reshape(1, 32) % 16
    assert np.array_equal(fp4ref.pack(codes, "split-half", block_size=np.int64(32)),
                          fp4ref.pack(codes, "split-half", block_size=32))


@pytest.mark.parametrize("argument", ["rows", "cols"])
@pytest.mark.parametrize("value", [2.0, None, "2", True])
def test_unswizzle_counts_name_themselves(argument, value):
    counts = {"rows": 2, "cols": 1, argument: value}
    with pytest.raises(TypeError, match=rf"^{argument} must be an int"):
        fp4ref.unswizzle(np.zeros(512, np.uint8), layout="128x4", **counts)


def test_integer_helper():
    assert _checks.integer("n", np.uint8(3), minimum=0) == 3
    with pytest.raises(ValueError, match="n must be an int >= 1; got 0"):
        _checks.integer("n", 0, minimum=1)


def test_io_integer_arguments_name_themselves(tmp_path):
    from fp4ref.io import uqff
    from fp4ref.io.safetensors_file import SafetensorsReader, SafetensorsWriter

    q = fp4ref.quantize(np.ones((4, 64), np.float32))
    layer = fp4ref.QuantizedLayer(q.blocks, q.scales, format="mxfp4")
    for value in (1.0, True, "1", None):
        with pytest.raises(TypeError, match="^generation must be an int"):
            uqff.write(tmp_path / "a.uqff", {"a": layer}, generation=value)
    uqff.write(tmp_path / "a.uqff", {"a": layer})
    reader = SafetensorsReader(tmp_path / "a.uqff")
    for rows, name in (((0.0, 1), "rows\\[0\\]"), ((0, "1"), "rows\\[1\\]"), ((0, None), "rows")):
        with pytest.raises(TypeError, match=f"^{name}"):
            reader.read("a.weight", rows=rows)
    assert reader.read("a.weight", rows=(1, 3)).tobytes() == q.blocks[1:3].tobytes()
    for shape in ((2.0,), ("2",)):
        with pytest.raises(TypeError, match="^shape of tensor 'x' must be an int"):
            SafetensorsWriter(tmp_path / "b.st", [("x", "U8", shape)])
    with pytest.raises(ValueError, match=">= 0"):
        SafetensorsWriter(tmp_path / "b.st", [("x", "U8", (-1,))])
    assert list(tmp_path.glob(".fp4ref-*")) == []


def test_uqff_version_parts_must_be_ints():
    from fp4ref.io import uqff

    blocks, scales = np.zeros((1, 16), np.uint8), np.zeros((1, 1), np.uint8)
    for version in ((0, True, 0), (0, 2.0, 0), (False, 2, 0), [0, 2, 0]):
        with pytest.raises(ValueError, match="version must be a"):
            uqff.encode_mxfp4_blob(blocks, scales, version=version)
