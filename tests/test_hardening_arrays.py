"""Issue 17, arrays: sizes checked before any copy (a huge broadcast view gives a clear
error, not a MemoryError), and every integer argument a clear error naming it."""

from __future__ import annotations

import numpy as np
import pytest

import fp4ref
from fp4ref import _checks

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
    monkeypatch.setattr(_checks, "memory_bytes", lambda: 4096)
    blocks, scales = np.zeros((64, 16), np.uint8), np.full((64, 1), 127, np.uint8)
    with pytest.raises(ValueError, match=r"^out: the result \(float32, shape \(64, 32\)\)"):
        fp4ref.dequantize(blocks, scales, backend="numba")
    monkeypatch.setattr(_checks, "memory_bytes", lambda: 1 << 30)
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
