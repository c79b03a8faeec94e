"""Scale layouts: spec offsets by hand, an independent reshape derivation, the plain-Python
oracle against numba, inverses, padding, errors, and dequantize(scale_layout=...)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fp4ref
from fp4ref.spec import layouts as spec

from .helpers import BACKENDS

PADDED = ("128x4", "8x4")


def _reshape_128x4(scales: np.ndarray) -> np.ndarray:
    """128x4 by tiles, derived from the cuBLAS picture rather than the offset formula: a tile
    is 128 rows x 4 columns; inside it, row r = 32 * a + b goes to [b, a, column]."""
    rows, cols = scales.shape
    rt, ct = -(-rows // 128), -(-cols // 4)
    padded = np.zeros((rt * 128, ct * 4), np.uint8)
    padded[:rows, :cols] = scales
    tiles = padded.reshape(rt, 4, 32, ct, 4)  # [row tile, a, b, col tile, column]
    return tiles.transpose(0, 3, 2, 1, 4).reshape(-1)  # [row tile, col tile, b, a, column]


def _reshape_8x4(scales: np.ndarray) -> np.ndarray:
    """8x4 by tiles: 8 rows x 4 columns, tiles row-major, each tile row-major."""
    rows, cols = scales.shape
    rt, ct = -(-rows // 8), -(-cols // 4)
    padded = np.zeros((rt * 8, ct * 4), np.uint8)
    padded[:rows, :cols] = scales
    return padded.reshape(rt, 8, ct, 4).transpose(0, 2, 1, 3).reshape(-1)


RESHAPED = {"128x4": _reshape_128x4, "8x4": _reshape_8x4, "linear": lambda s: s.reshape(-1)}


def test_nvidia_check_values():
    # layouts.md: R = C = 128 elements of NVFP4 -> 128 rows, 8 scale columns
    assert spec.offset(5, 2, 8, "128x4") == 82
    assert spec.offset(5, 5, 8, "128x4") == 593


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rc, where", [((5, 2), 82), ((5, 5), 593)])
def test_check_values_through_swizzle(backend, rc, where):
    scales = np.zeros((128, 8), np.uint8)
    scales[rc] = 0xAB
    stored = fp4ref.swizzle(scales, "128x4", backend=backend).reshape(-1)
    assert np.flatnonzero(stored).tolist() == [where]


def test_8x4_hand_values():
    # (r // 8) * cdiv(C, 4) * 32 + (c // 4) * 32 + (r % 8) * 4 + c % 4, C = 6 -> 2 col tiles
    assert spec.offset(0, 0, 6, "8x4") == 0
    assert spec.offset(1, 0, 6, "8x4") == 4
    assert spec.offset(0, 4, 6, "8x4") == 32
    assert spec.offset(9, 5, 6, "8x4") == 64 + 32 + 4 + 1


def test_padded_shapes():
    assert spec.padded_shape(5, 3, "128x4") == (128, 4)
    assert spec.padded_shape(129, 8, "128x4") == (256, 8)
    assert spec.padded_shape(9, 5, "8x4") == (16, 8)
    assert spec.padded_shape(9, 5, "linear") == (9, 5)


shapes = st.tuples(st.integers(0, 2), st.integers(0, 300), st.integers(0, 13))


@settings(max_examples=25, deadline=None)
@given(shape=shapes, layout=st.sampled_from(spec.LAYOUTS), seed=st.integers(0, 2**32 - 1))
def test_backends_agree_with_tile_derivation(shape, layout, seed):
    batch, rows, cols = shape
    rng = np.random.default_rng(seed)
    scales = rng.integers(1, 256, (batch, rows, cols), dtype=np.uint8)
    expected = [RESHAPED[layout](m) for m in scales]
    for backend in BACKENDS:
        stored = fp4ref.swizzle(scales, layout, backend=backend)
        rpad, cpad = spec.padded_shape(rows, cols, layout)
        assert stored.shape == (batch, rpad, cpad)
        for e in range(batch):
            assert np.array_equal(stored[e].reshape(-1), expected[e])


@settings(max_examples=25, deadline=None)
@given(shape=shapes, layout=st.sampled_from(spec.LAYOUTS), seed=st.integers(0, 2**32 - 1))
def test_unswizzle_inverts_swizzle(shape, layout, seed):
    batch, rows, cols = shape
    scales = np.random.default_rng(seed).integers(0, 256, (batch, rows, cols), dtype=np.uint8)
    for backend in BACKENDS:
        stored = fp4ref.swizzle(scales, layout, backend=backend)
        back = fp4ref.unswizzle(stored, rows=rows, cols=cols, layout=layout, backend=backend)
        assert np.array_equal(back, scales)
        flat = stored.reshape(batch, stored.shape[1] * stored.shape[2])
        if flat.shape != stored.shape[1:]:  # else the [Rpad, Cpad] reading wins, as documented
            assert np.array_equal(
                fp4ref.unswizzle(flat, rows=rows, cols=cols, layout=layout, backend=backend),
                scales,
            )
        # and the other way round: swizzle(unswizzle(stored)) restores zero-padded bytes
        assert np.array_equal(fp4ref.swizzle(back, layout, backend=backend), stored)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("layout", PADDED)
def test_padding_is_zero(backend, layout):
    scales = np.full((3, 130, 5), 0xFF, np.uint8)
    stored = fp4ref.swizzle(scales, layout, backend=backend)
    assert int(np.count_nonzero(stored)) == scales.size
    assert set(np.unique(stored).tolist()) == {0, 0xFF}


@pytest.mark.parametrize("backend", BACKENDS)
def test_float8_dtypes_kept(backend):
    scales = np.arange(40, dtype=np.uint8).reshape(10, 4).view(ml_dtypes.float8_e4m3fn)
    stored = fp4ref.swizzle(scales, "8x4", backend=backend)
    assert stored.dtype == scales.dtype
    back = fp4ref.unswizzle(stored, rows=10, cols=4, layout="8x4", backend=backend)
    assert back.dtype == scales.dtype
    assert np.array_equal(back.view(np.uint8), scales.view(np.uint8))


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="layout"):
        fp4ref.swizzle(np.zeros((4, 4), np.uint8), "16x4")
    with pytest.raises(ValueError, match=r"scales must have shape \[\.\.\., R, C\]"):
        fp4ref.swizzle(np.zeros(4, np.uint8))
    with pytest.raises(TypeError, match="scales must be a uint8"):
        fp4ref.swizzle(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"stored must have shape \[\.\.\., 128, 4\]"):
        fp4ref.unswizzle(np.zeros((128, 8), np.uint8), rows=5, cols=3)
    with pytest.raises(ValueError, match="rows must be >= 0"):
        fp4ref.unswizzle(np.zeros((128, 4), np.uint8), rows=-1, cols=3)
    with pytest.raises(TypeError, match="cols must be an int"):
        fp4ref.unswizzle(np.zeros((128, 4), np.uint8), rows=5, cols=3.0)


@pytest.mark.parametrize("fmt, block", [("mxfp4", 32), ("nvfp4", 16)])
@pytest.mark.parametrize("layout", PADDED)
def test_dequantize_with_stored_layout(fmt, block, layout):
    rng = np.random.default_rng(7)
    rows, k = 133, 5 * block
    blocks = rng.integers(0, 256, (2, rows, k // 2), dtype=np.uint8)
    scales = rng.integers(100, 140, (2, rows, k // block), dtype=np.uint8)
    expected = fp4ref.dequantize(blocks, scales, format=fmt).view(np.uint32)
    stored = fp4ref.swizzle(scales, layout)
    for form in (stored, stored.reshape(2, -1)):
        got = fp4ref.dequantize(blocks, form, format=fmt, scale_layout=layout)
        assert np.array_equal(got.view(np.uint32), expected)


def test_dequantize_layout_errors():
    blocks = np.zeros((4, 16), np.uint8)
    with pytest.raises(ValueError, match="scale_layout"):
        fp4ref.dequantize(blocks, np.zeros((4, 1), np.uint8), scale_layout="4x4")
    with pytest.raises(ValueError, match=r"stored must have shape \[\.\.\., 128, 4\]"):
        fp4ref.dequantize(blocks, np.zeros((4, 1), np.uint8), scale_layout="128x4")


@pytest.mark.peers
@pytest.mark.parametrize("rows, cols", [(128, 4), (5, 3), (130, 9), (300, 17), (1, 1)])
def test_torchao_to_blocked(rows, cols):
    torch = pytest.importorskip("torch")
    utils = pytest.importorskip("torchao.prototype.mx_formats.utils")
    scales = np.random.default_rng(rows * cols).integers(1, 256, (rows, cols), dtype=np.uint8)
    theirs = utils.to_blocked(torch.from_numpy(scales)).numpy().reshape(-1)
    for backend in BACKENDS:
        ours = fp4ref.swizzle(scales, "128x4", backend=backend).reshape(-1)
        assert np.array_equal(ours, theirs)
