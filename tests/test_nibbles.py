"""Nibble orders: hand-written byte examples from spec/layouts.md, round trips, backends."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fp4ref

from .helpers import BACKENDS

CODES = np.arange(32, dtype=np.uint8) % 16  # element k holds code k mod 16


@pytest.mark.parametrize("backend", BACKENDS)
def test_low_first(backend):
    packed = fp4ref.pack(CODES[:4], "low-first", backend=backend)
    assert packed.tolist() == [0x10, 0x32]  # element 0 in bits 3..0


@pytest.mark.parametrize("backend", BACKENDS)
def test_high_first(backend):
    packed = fp4ref.pack(CODES[:4], "high-first", backend=backend)
    assert packed.tolist() == [0x01, 0x23]  # element 0 in bits 7..4


@pytest.mark.parametrize("backend", BACKENDS)
def test_split_half_32(backend):
    packed = fp4ref.pack(CODES, "split-half", backend=backend)
    # byte j holds element j (low) and element j + 16 (high); elements j and j + 16 hold
    # the same code j here
    assert packed.tolist() == [0x11 * j for j in range(16)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_split_half_16_for_nvfp4_sub_blocks(backend):
    packed = fp4ref.pack(CODES[:16], "split-half", block_size=16, backend=backend)
    assert packed.tolist() == [(j + 8) << 4 | j for j in range(8)]


@pytest.mark.parametrize("order", fp4ref.NIBBLE_ORDERS)
@given(data=st.data())
def test_round_trip_and_backends_agree(order, data):
    rows = data.draw(st.integers(1, 3))
    blocks = data.draw(st.integers(0, 3))
    codes = data.draw(hnp.arrays(np.uint8, (rows, 32 * blocks), elements=st.integers(0, 15)))
    packed = fp4ref.pack(codes, order, backend="numba")
    assert np.array_equal(packed, fp4ref.pack(codes, order, backend="python"))
    assert np.array_equal(fp4ref.unpack(packed, order), codes)
    assert np.array_equal(fp4ref.unpack(packed, order, backend="python"), codes)


def test_leading_dimensions_are_kept():
    codes = np.arange(2 * 3 * 64, dtype=np.uint8).reshape(2, 3, 64) % 16
    assert fp4ref.pack(codes).shape == (2, 3, 32)
    assert fp4ref.unpack(fp4ref.pack(codes)).shape == (2, 3, 64)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="codes must hold 4-bit codes"):
        fp4ref.pack(np.array([16, 0], np.uint8))
    with pytest.raises(ValueError, match="must be even"):
        fp4ref.pack(np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="multiple of block_size = 32"):
        fp4ref.pack(np.zeros(16, np.uint8), "split-half")
    with pytest.raises(ValueError, match="order must be one of"):
        fp4ref.unpack(np.zeros(2, np.uint8), "middle-out")
    with pytest.raises(TypeError, match="packed must be a uint8 array"):
        fp4ref.unpack(np.zeros(2, np.int16))
