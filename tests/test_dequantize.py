"""fp4ref.dequantize against ml_dtypes arithmetic, and the python oracle against numba."""

import warnings

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fp4ref
from fp4ref import backends

from .helpers import BACKENDS, bits

DTYPES = ("float32", "bfloat16", "float16")
NAN32 = np.uint32(0x7FC00000)
# Each block's 16 bytes hold codes 0..15 twice, low nibble first: 0x10, 0x32, ..., 0xFE.
EVERY_CODE = np.tile(np.array([0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE], np.uint8), 2)


def _codes_low_first(blocks: np.ndarray) -> np.ndarray:
    codes = np.empty(blocks.shape[:-1] + (2 * blocks.shape[-1],), np.uint8)
    codes[..., 0::2], codes[..., 1::2] = blocks & 0xF, blocks >> 4
    return codes


def _expected_mxfp4(blocks, scales) -> np.ndarray:
    """float32 bits from ml_dtypes: the exact float64 product cast once to float32."""
    elements = _codes_low_first(blocks).view(ml_dtypes.float4_e2m1fn).astype(np.float64)
    scale = scales.view(ml_dtypes.float8_e8m0fnu).astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow to inf is the answer
        product = (elements.reshape(*scales.shape, 32) * scale[..., None]).astype(np.float32)
    product = bits(product.reshape(elements.shape)).copy()
    product[np.repeat(scales == 0xFF, 32, axis=-1)] = NAN32
    return product


def _expected_nvfp4(blocks, scales, tensor_scale: np.float32) -> np.ndarray:
    elements = _codes_low_first(blocks).view(ml_dtypes.float4_e2m1fn).astype(np.float32)
    scale = scales.view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        first = elements.reshape(*scales.shape, 16) * scale[..., None]  # exact in float32
        result = (first * tensor_scale).reshape(elements.shape)  # one float32 multiply
    out = bits(result).copy()
    out[np.isnan(result)] = NAN32
    return out


def _to_16(bits32: np.ndarray, dtype: str) -> np.ndarray:
    """ml_dtypes/numpy's nearest-even conversion of float32 bits; NaN made canonical."""
    values = bits32.view(np.float32)
    target = {"bfloat16": ml_dtypes.bfloat16, "float16": np.float16}[dtype]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = bits(values.astype(target)).copy()
    out[np.isnan(values)] = {"bfloat16": 0x7FC0, "float16": 0x7E00}[dtype]
    return out


ALL_SCALES_MX = (np.tile(EVERY_CODE, (256, 1)), np.arange(256, dtype=np.uint8)[:, None])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_mxfp4_every_scale_byte_and_code(backend, dtype):
    blocks, scales = ALL_SCALES_MX
    expected = _expected_mxfp4(blocks, scales)
    if dtype != "float32":
        expected = _to_16(expected, dtype)
    got = fp4ref.dequantize(blocks, scales, dtype=dtype, backend=backend)
    assert got.dtype == np.dtype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)
    assert np.array_equal(bits(got), expected)


@pytest.mark.parametrize("order", fp4ref.NIBBLE_ORDERS)
@pytest.mark.parametrize("dtype", ("float32", "bfloat16"))
@pytest.mark.parametrize("stream", (False, True))
def test_mxfp4_closed_form_and_streaming_stores(monkeypatch, order, dtype, stream):
    """The numba kernel computes E8M0 bytes 2..252 in closed form, with streaming stores
    into large outputs on a cache line: every store path gives the oracle's bits."""
    monkeypatch.setattr(backends, "_STREAM_BYTES", 0 if stream else 1 << 62)
    blocks, scales = ALL_SCALES_MX
    expected = _expected_mxfp4(blocks, scales)
    if dtype != "float32":
        expected = _to_16(expected, dtype)
    repacked = fp4ref.pack(_codes_low_first(blocks), order)
    got = fp4ref.dequantize(repacked, scales, nibble_order=order, dtype=dtype, backend="numba")
    assert got.ctypes.data % 64 == 0  # so the streamed path ran
    assert np.array_equal(bits(got), expected)
    # an output off the cache-line grid takes ordinary stores
    shifted = np.empty(got.size + 1, got.dtype)[1:].reshape(got.shape)
    fp4ref.dequantize(repacked, scales, nibble_order=order, dtype=dtype, out=shifted)
    assert np.array_equal(bits(shifted), expected)


def test_mxfp4_scale_bytes_0x00_and_0xff():
    blocks = np.tile(EVERY_CODE, (2, 1))
    got = bits(fp4ref.dequantize(blocks, np.array([[0x00], [0xFF]], np.uint8)))
    assert got[0, 1] == 0x00200000  # element 1 holds code 0x1: 0.5 x 2^-127 = 2^-128
    assert got[0, 2] == 0x00400000  # code 0x2: 1.0 x 2^-127, a float32 subnormal
    assert got[0, 8] == 0x80000000  # code 0x8: -0.0
    assert np.all(got[1] == 0x7FC00000)


TENSOR_SCALES = [1.0, 1 / 2688, 2.0**-20, 3e38, -1.5, 0.0, np.inf, np.nan, 1e-45]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tensor_scale", TENSOR_SCALES)
def test_nvfp4_every_scale_byte_and_code(backend, tensor_scale):
    blocks = np.tile(EVERY_CODE[:8], (256, 1))
    scales = np.arange(256, dtype=np.uint8)[:, None]
    t = np.float32(tensor_scale)
    got = fp4ref.dequantize(blocks, scales, format="nvfp4", tensor_scale=t, backend=backend)
    assert np.array_equal(bits(got), _expected_nvfp4(blocks, scales, t))


@pytest.mark.parametrize("dtype", ("bfloat16", "float16"))
def test_nvfp4_16_bit_outputs_round_the_float32_result(dtype):
    blocks = np.tile(EVERY_CODE[:8], (256, 1))
    scales = np.arange(256, dtype=np.uint8)[:, None]
    for t in (np.float32(0.1), np.float32(2.0**-14), np.float32(7e-5)):
        got = fp4ref.dequantize(blocks, scales, format="nvfp4", tensor_scale=t, dtype=dtype)
        assert np.array_equal(bits(got), _to_16(_expected_nvfp4(blocks, scales, t), dtype))


def test_gpt_oss_layout_equals_the_flat_layout():
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (2, 3, 4, 16), dtype=np.uint8)
    scales = rng.integers(100, 140, (2, 3, 4), dtype=np.uint8)
    got = fp4ref.dequantize(blocks, scales)
    assert got.shape == (2, 3, 128)
    flat = fp4ref.dequantize(blocks.reshape(2, 3, 64), scales)
    assert np.array_equal(bits(got), bits(flat))
    assert np.array_equal(bits(got), _expected_mxfp4(blocks.reshape(2, 3, 64), scales))


def test_ml_dtypes_scale_arrays_are_taken_as_bytes():
    blocks = np.tile(EVERY_CODE, (1, 1))
    e8 = np.array([[0.25]], np.float32).astype(ml_dtypes.float8_e8m0fnu)
    assert np.array_equal(fp4ref.dequantize(blocks, e8),
                          fp4ref.dequantize(blocks, np.array([[125]], np.uint8)))
    e4 = np.array([[0.75, 3.0]], np.float32).astype(ml_dtypes.float8_e4m3fn)
    assert np.array_equal(fp4ref.dequantize(blocks, e4, format="nvfp4"),
                          fp4ref.dequantize(blocks, e4.view(np.uint8), format="nvfp4"))


def test_empty_inputs_give_empty_outputs():
    out = fp4ref.dequantize(np.zeros((0, 16), np.uint8), np.zeros((0, 1), np.uint8))
    assert out.shape == (0, 32) and out.dtype == np.float32
    out = fp4ref.dequantize(np.zeros((3, 0), np.uint8), np.zeros((3, 0), np.uint8))
    assert out.shape == (3, 0)


def test_out_argument_is_written_and_returned():
    blocks, scales = ALL_SCALES_MX
    out = np.empty((256, 32), ml_dtypes.bfloat16)
    result = fp4ref.dequantize(blocks, scales, dtype="bfloat16", out=out)
    assert result is out
    assert np.array_equal(bits(out), _to_16(_expected_mxfp4(blocks, scales), "bfloat16"))


def test_non_contiguous_inputs_work():
    blocks, scales = ALL_SCALES_MX
    wide = np.repeat(blocks, 2, axis=0)[::2]
    assert not wide.flags.c_contiguous
    assert np.array_equal(bits(fp4ref.dequantize(wide, scales)), _expected_mxfp4(blocks, scales))


@pytest.mark.parametrize("order", fp4ref.NIBBLE_ORDERS)
@pytest.mark.parametrize("fmt,block", (("mxfp4", 32), ("nvfp4", 16)))
@given(data=st.data())
def test_python_and_numba_agree_bit_for_bit(order, fmt, block, data):
    rows = data.draw(st.integers(1, 3))
    nblocks = data.draw(st.integers(1, 3))
    blocks = data.draw(hnp.arrays(np.uint8, (rows, nblocks * block // 2)))
    scales = data.draw(hnp.arrays(np.uint8, (rows, nblocks)))
    dtype = data.draw(st.sampled_from(DTYPES))
    kwargs = dict(format=fmt, nibble_order=order, dtype=dtype)
    if fmt == "nvfp4":
        kwargs["tensor_scale"] = data.draw(st.floats(width=32))
    python = fp4ref.dequantize(blocks, scales, backend="python", **kwargs)
    numba = fp4ref.dequantize(blocks, scales, backend="numba", **kwargs)
    assert np.array_equal(bits(python), bits(numba))


@pytest.mark.parametrize("order", fp4ref.NIBBLE_ORDERS)
def test_orders_decode_what_pack_put_there(order):
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, (4, 64), dtype=np.uint8)
    scales = rng.integers(0, 256, (4, 4), dtype=np.uint8)
    repacked = fp4ref.pack(_codes_low_first(blocks), order)
    got = fp4ref.dequantize(repacked, scales, nibble_order=order)
    assert np.array_equal(bits(got), _expected_mxfp4(blocks, scales))
