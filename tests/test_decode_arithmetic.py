"""The decode conventions peers need (``Profile.decode_arithmetic``, ``e8m0_decode="inf"``):
every (scale byte, code) against numpy's own float32 / float16 / ml_dtypes bfloat16
arithmetic, on every backend.

numpy multiplies float16 (and ml_dtypes bfloat16) arrays by converting to float32,
multiplying and rounding back, as torch and MLX do: that is the reference for
``"output-dtype"``; ``"scale-first"`` is float32 arithmetic in the other order.
"""

import ml_dtypes
import numpy as np
import pytest

import fp4ref
from fp4ref.profiles import get

from .helpers import BACKENDS, bits

E2M1 = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], np.float32)
DTYPES = {"float32": np.float32, "bfloat16": ml_dtypes.bfloat16, "float16": np.float16}


def every_pair(block):
    """Each scale byte once, its block holding every code in order (twice for MXFP4):
    blocks [256, block / 2] (low nibble first), scales [256, 1], codes [256, block]."""
    codes = np.tile(np.arange(16, dtype=np.uint8), (256, block // 16))
    packed = (codes[:, 0::2] | codes[:, 1::2] << 4).astype(np.uint8)
    return packed, np.arange(256, dtype=np.uint8)[:, None], codes


def canonical(values):
    """Bits with every NaN made the canonical one fp4ref writes."""
    out = bits(np.ascontiguousarray(values)).copy()
    nan = {4: 0x7FC00000, 2: 0x7FC0 if values.dtype == ml_dtypes.bfloat16 else 0x7E00}
    out[np.isnan(values.astype(np.float32))] = nan[values.itemsize]
    return out


def mx_reference(scale, code, dtype):
    """``dt(P * dt(X))`` with X = 2^(s - 127) and 0xFF = +Inf, by numpy."""
    with np.errstate(all="ignore"):
        x = np.where(scale == 255, np.float32(np.inf),
                     np.ldexp(np.float32(1), scale.astype(np.int32) - 127).astype(np.float32))
        t = DTYPES[dtype]
        return (E2M1[code].astype(t) * x.astype(t)).astype(t)


def nv_reference(scale, code, tensor, dtype, arithmetic):
    with np.errstate(all="ignore"):
        s_b = scale.view(ml_dtypes.float8_e4m3fn).astype(np.float32)
        if arithmetic == "scale-first":
            return (E2M1[code] * (s_b * np.float32(tensor))).astype(DTYPES[dtype])
        t = DTYPES[dtype]
        total = np.asarray(np.float32(tensor)).astype(t) * s_b.astype(t)
        return E2M1[code].astype(t) * total.astype(t)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_mxfp4_inf_scale_in_the_output_dtype(backend, dtype):
    blocks, scales, code = every_pair(32)
    profile = get("ocp").with_options(e8m0_decode="inf", decode_arithmetic="output-dtype")
    got = fp4ref.dequantize(blocks, scales, profile=profile, dtype=dtype, backend=backend)
    want = mx_reference(np.repeat(scales, 32, 1), code, dtype)
    assert np.array_equal(bits(got), canonical(want))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("arithmetic", ["scale-first", "output-dtype"])
@pytest.mark.parametrize("tensor", [1.0, 1 / 2688, 3.0e-3, 2.0**-140, 7.0e37])
def test_nvfp4_decode_orders(backend, dtype, arithmetic, tensor):
    blocks, scales, code = every_pair(16)
    profile = get("ocp").with_options(decode_arithmetic=arithmetic)
    got = fp4ref.dequantize(blocks, scales, format="nvfp4", profile=profile,
                            tensor_scale=tensor, dtype=dtype, backend=backend)
    want = nv_reference(np.repeat(scales, 16, 1), code, tensor, dtype, arithmetic)
    assert np.array_equal(bits(got), canonical(want.astype(DTYPES[dtype])))


def test_scale_first_differs_from_the_exact_order():
    """One block where the orders give different float32 bits: code 0x3 (1.5) under E4M3
    0x03 (3 * 2^-9) and tensor scale 1/2688 (the exact order 0x365B6DB7, scale first one
    ulp more), checked against numpy's float32 products."""
    scale, t = np.uint8(0x03), np.float32(1 / 2688)
    s_b = np.array([scale]).view(ml_dtypes.float8_e4m3fn).astype(np.float32)[0]
    exact = np.float32(np.float32(1.5) * s_b) * t
    first = np.float32(1.5) * np.float32(s_b * t)
    blocks = np.full((1, 8), 0x33, np.uint8)
    for arithmetic, want in (("exact", exact), ("scale-first", first)):
        profile = get("ocp").with_options(decode_arithmetic=arithmetic)
        got = fp4ref.dequantize(blocks, np.array([[scale]]), format="nvfp4", profile=profile,
                                tensor_scale=t)
        assert got[0, 0].view(np.uint32) == np.float32(want).view(np.uint32)
    assert exact != first


@pytest.mark.parametrize("backend", BACKENDS)
def test_ggml_ue4m3_decode(backend):
    """ggml's UE4M3: the sign bit ignored, 0x7F is 0, 0xFF is 480; code 0x8 is +0 (values
    from ml_dtypes' E4M3 of the byte without its sign)."""
    blocks, scales, code = every_pair(16)
    profile = get("ocp").with_options(e4m3_decode="ggml", nvfp4_recipe="plain",
                                      tensor_scale=False)
    got = fp4ref.dequantize(blocks, scales, format="nvfp4", profile=profile, backend=backend)
    magnitude = (scales[:, 0] & 0x7F).view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    magnitude[0x7F], magnitude[0xFF] = 0.0, 480.0
    want = E2M1[code] * magnitude[:, None]
    want[code == 0x8] = 0.0
    assert np.array_equal(bits(got), bits(want.astype(np.float32)))
