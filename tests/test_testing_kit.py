"""fp4ref.testing: the strategies and assertion helpers other projects fuzz with."""

import numpy as np
import pytest
from hypothesis import given, settings

import fp4ref
from fp4ref.testing import (
    assert_bits_equal,
    assert_dequantize_matches,
    assert_encode_matches,
    assert_quantize_matches,
)
from fp4ref.testing import strategies as fst

FEW = settings(max_examples=40)

# The example of fp4ref.testing's docstring, verbatim.


def my_dequantize(blocks, scales):  # your backend, here a numpy look-up table
    lut = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], np.float32)
    codes = np.stack([blocks & 15, blocks >> 4], -1).reshape(blocks.shape[0], -1)
    factor = np.ldexp(np.float32(1), scales.astype(np.int32) - 127).astype(np.float32)
    factor[scales == 255] = np.nan
    return lut[codes] * np.repeat(factor, 32, axis=1)


@FEW
@given(fst.mxfp4_tensors())
def test_the_docstring_example_passes(tensor):
    with np.errstate(over="ignore", invalid="ignore"):
        assert_dequantize_matches(my_dequantize, *tensor, nan="any")


def test_the_example_is_the_docstring_s():
    assert "def my_dequantize(blocks, scales):" in fp4ref.testing.__doc__
    assert "assert_dequantize_matches(my_dequantize, *tensor, nan=\"any\")" in \
        fp4ref.testing.__doc__


def bits_decoder(blocks, scales):
    """A known deviation: E8M0 decoded as float32_from_bits(e << 23) (0x00 -> 0, 0xFF -> Inf)."""
    lut = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], np.float32)
    codes = np.stack([blocks & 15, blocks >> 4], -1).reshape(blocks.shape[0], -1)
    factor = (scales.astype(np.uint32) << 23).view(np.float32)
    return lut[codes] * np.repeat(factor, 32, axis=1)


def test_a_bits_decoder_is_caught_with_its_inputs():
    blocks = np.full((1, 16), 0x21, np.uint8)
    scales = np.array([[0]], np.uint8)
    with pytest.raises(AssertionError, match=r"scales\[0\]=\[0\]") as error:
        assert_dequantize_matches(bits_decoder, blocks, scales)
    assert "32 of 32 elements differ" in str(error.value)


@FEW
@given(fst.float32_arrays())
def test_fp4ref_matches_itself_on_e2m1(x):
    assert_encode_matches(lambda v: fp4ref.encode_e2m1(v, backend="python"), x)


def test_ties_away_is_caught_by_the_encoder_helper():
    with pytest.raises(AssertionError, match="0x3E800000"):
        assert_encode_matches(lambda v: fp4ref.encode_e2m1(v, "away"), np.float32([0.25]))


@FEW
@given(fst.float32_arrays(points=fst.E4M3_POINTS, exponents=(-9, 0)))
def test_e4m3_helper(x):
    assert_encode_matches(lambda v: fp4ref.encode_e4m3(v, saturate=False), x, format="e4m3",
                          saturate=False)


@settings(max_examples=15)
@given(fst.blocks())
def test_quantize_helper_and_block_strategy(x):
    assert x.shape[1] % 32 == 0
    assert_quantize_matches(lambda v: (lambda q: (q.blocks, q.scales))(
        fp4ref.quantize(v, backend="python")), x)


@FEW
@given(fst.nvfp4_tensors())
def test_nvfp4_strategy_and_helper(tensor):
    blocks, scales, tensor_scale = tensor

    def mine(b, s, t):
        return fp4ref.dequantize(b, s, format="nvfp4", tensor_scale=t, backend="python")

    assert_dequantize_matches(mine, blocks, scales, tensor_scale)


@pytest.mark.parametrize("layout", ["128x4", "8x4"])
def test_swizzled_scales_read_back(layout):
    @FEW
    @given(fst.swizzled_scales(layout, max_rows=140))
    def read_back(case):
        stored, rows, cols, scales = case
        assert_bits_equal(scales, fp4ref.unswizzle(stored, rows=rows, cols=cols, layout=layout))

    read_back()


def test_the_strategies_reach_the_hard_inputs():
    seen = {"tie": False, "nan": False, "subnormal": False, "negzero": False}

    @settings(max_examples=200, database=None)
    @given(fst.float32_values())
    def collect(v):
        bits = int(np.array(v, np.float32).view(np.uint32))
        seen["tie"] |= abs(float(v)) in (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)
        seen["nan"] |= bool(np.isnan(v))
        seen["subnormal"] |= 0 < (bits & 0x7FFFFFFF) < 0x00800000
        seen["negzero"] |= bits == 0x80000000

    collect()
    assert all(seen.values()), seen


def test_shape_and_dtype_problems_are_reported():
    with pytest.raises(AssertionError, match="shape"):
        assert_bits_equal(np.zeros(3, np.float32), np.zeros(2, np.float32))
    with pytest.raises(AssertionError, match="dtype"):
        assert_bits_equal(np.zeros(3, np.float32), np.zeros(3, np.float64))
