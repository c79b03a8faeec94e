"""The scalar and element conventions named after peers (issue 15): E2M1 ``zero_sign`` and
``nan`` codings, the E4M3 ``nan="gfloat"`` byte and MXFP4 ``nonfinite="gfloat"``.

Each quirk's minimal input (found by running the peer, see docs/findings.md) has its
expected codes derived by hand here; the plain-Python oracle, the numba kernels and the
CUDA kernels (the simulator where there is no GPU) are then compared on small arrays.
"""

import numpy as np
import pytest

import fp4ref
from fp4ref import api
from fp4ref.profiles import get
from fp4ref.spec import e2m1

from .helpers import BACKENDS


def f32(bits):
    return np.array(bits, np.uint32).view(np.float32)


#: (bits, code) for ``nan="torchao"``, by hand from torchao's normal branch: with a = the
#: bits without the sign, ((a - (126 << 23) + 0x1FFFFF + bit 22 of a) >> 22) & 0xFF;
#: e.g. 0x7FC00000 - 0x3F000000 = 0x40C00000, + 0x1FFFFF + 1 = 0x40E00000, >> 22 = 0x103 -> 3.
TORCHAO = [(0x7FC00000, 0x3), (0xFFC00000, 0xB), (0x7F800001, 0x2), (0xFF800001, 0xA),
           (0x7FA00000, 0x2), (0x7FA00001, 0x3), (0x7FDFFFFF, 0x3), (0x7FE00000, 0x4),
           (0x7FFFFFFF, 0x4), (0xFFFFFFFF, 0xC)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_e2m1_nan_codings_on_their_minimal_inputs(backend):
    nans = f32([0x7FC00000, 0xFFC00000])  # +NaN, -NaN
    expected = {"sign": [0x0, 0x8], "ml_dtypes": [0x8, 0x0], "compressed-tensors": [0x0, 0x0]}
    for nan, codes in expected.items():
        got = api.encode_e2m1(nans, nan=nan, backend=backend)
        assert got.tolist() == codes, nan
    x = f32([b for b, _ in TORCHAO])
    assert api.encode_e2m1(x, nan="torchao", backend=backend).tolist() == [c for _, c in TORCHAO]
    with pytest.raises(ValueError, match="NaN"):
        api.encode_e2m1(f32([0x3F800000, 0x7FC00000]), nan="refuse", backend=backend)
    # no NaN: "refuse" encodes as usual
    assert api.encode_e2m1(f32([0x3F800000]), nan="refuse", backend=backend).tolist() == [2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_signs_on_their_minimal_inputs(backend):
    x = np.array([-0.0, -2.0**-149, -0.25, 0.0, -0.5], np.float32)  # -0.25 ties to 0 (even)
    expected = {"keep": [0x8, 0x8, 0x8, 0x0, 0x9],  # compressed-tensors: -0.0 -> +0
                "negative": [0x0, 0x8, 0x8, 0x0, 0x9], "drop": [0x0, 0x0, 0x0, 0x0, 0x9]}
    for zero_sign, codes in expected.items():
        assert api.encode_e2m1(x, zero_sign=zero_sign, backend=backend).tolist() == codes


@pytest.mark.parametrize("backend", BACKENDS)
def test_e4m3_gfloat_nan_byte(backend):
    x = np.array([np.nan, -np.nan, 480, -480, 464, np.inf, -np.inf, 1.0], np.float32)
    # gfloat: every NaN result is 0xFF; 464 ties to even (448, 0x7E); 1.0 is 0x38
    assert api.encode_e4m3(x, "even", False, nan="gfloat", backend=backend).tolist() == [
        0xFF, 0xFF, 0xFF, 0xFF, 0x7E, 0xFF, 0xFF, 0x38]
    assert api.encode_e4m3(x, "even", True, nan="gfloat", backend=backend).tolist() == [
        0xFF, 0xFF, 0x7E, 0xFE, 0x7E, 0x7E, 0xFE, 0x38]
    assert api.encode_e4m3(x[:1], nan="sign", backend=backend).tolist() == [0x7F]


def test_bad_choices_are_refused():
    with pytest.raises(ValueError, match="nan"):
        api.encode_e2m1(np.zeros(1, np.float32), nan="quiet")
    with pytest.raises(ValueError, match="zero_sign"):
        api.encode_e2m1(np.zeros(1, np.float32), zero_sign="positive")
    with pytest.raises(ValueError, match="nan"):
        api.encode_e4m3(np.zeros(1, np.float32), nan="sign-bit")
    with pytest.raises(ValueError, match="nan"):
        e2m1.encode(1.0, nan="quiet")


def test_every_coding_agrees_across_layers():
    rng = np.random.default_rng(15)
    bits = rng.integers(0, 1 << 32, 512, dtype=np.uint64).astype(np.uint32)
    bits[::7] = 0x7F800000 | (bits[::7] & 0x807FFFFF) | 1  # NaNs of both signs, payloads
    bits[::11] &= 0x80000000  # signed zeros
    x = bits.view(np.float32)
    for zero_sign in ("keep", "negative", "drop"):
        for nan in ("sign", "ml_dtypes", "torchao", "compressed-tensors"):
            want = api.encode_e2m1(x, zero_sign=zero_sign, nan=nan, backend="python")
            for backend in BACKENDS:
                got = api.encode_e2m1(x, zero_sign=zero_sign, nan=nan, backend=backend)
                assert np.array_equal(got, want), (zero_sign, nan, backend)
    for saturate in (True, False):
        want = api.encode_e4m3(x, "even", saturate, nan="gfloat", backend="python")
        for backend in BACKENDS:
            assert np.array_equal(api.encode_e4m3(x, "even", saturate, nan="gfloat",
                                                  backend=backend), want)


GFLOAT = get("ocp").with_options(nonfinite="gfloat")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["floor", "rceil", "optimal"])
def test_gfloat_inf_block(backend, rule):
    x = np.ones((2, 32), np.float32)
    x[0, 0] = np.inf  # gfloat's minimal input: one Inf among ones
    x[1, 31] = -np.inf
    x[1, 5] = 3.0e38  # 3e38 / 2^127 = 1.76 -> 2.0 (code 4)
    q = fp4ref.quantize(x, format="mxfp4", profile=GFLOAT, scale_rule=rule, backend=backend)
    scales, blocks = np.asarray(q.scales), np.asarray(q.blocks)
    assert scales.tolist() == [[0xFE], [0xFE]]  # floor(log2 Inf) - 2 clipped to 127
    assert blocks[0].tolist() == [0x07] + [0] * 15  # Inf -> 6; 1 / 2^127 -> 0
    assert blocks[1].tolist() == [0, 0, 0x40] + [0] * 12 + [0xF0]  # -Inf -> -6 (0xF)
    ocp = fp4ref.quantize(x, format="mxfp4", backend=backend)
    assert np.asarray(ocp.scales).tolist() == [[0xFF], [0xFF]]  # the OCP profile unchanged


@pytest.mark.parametrize("backend", BACKENDS)
def test_gfloat_refuses_nan(backend):
    x = np.ones((1, 32), np.float32)
    x[0, 7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fp4ref.quantize(x, format="mxfp4", profile=GFLOAT, backend=backend)
    with pytest.raises(ValueError, match="MXFP4"):
        fp4ref.quantize(np.ones((1, 16), np.float32), format="nvfp4", profile=GFLOAT,
                        backend=backend)


def test_gfloat_many_blocks_agree_across_layers():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 128)).astype(np.float32)
    x[rng.integers(0, 40, 12), rng.integers(0, 128, 12)] = np.inf
    x[3] *= -np.float32(np.inf)  # a row of infinities
    want = fp4ref.quantize(x, format="mxfp4", profile=GFLOAT, backend="python")
    for backend in BACKENDS:
        got = fp4ref.quantize(x, format="mxfp4", profile=GFLOAT, backend=backend)
        assert np.array_equal(np.asarray(got.scales), np.asarray(want.scales)), backend
        assert np.array_equal(np.asarray(got.blocks), np.asarray(want.blocks)), backend
