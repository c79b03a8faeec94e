"""The conventions ModelOpt 0.47 and compressed-tensors 0.20 need (``docs/findings.md``
20-21), each on its minimal input with the result derived by hand, on every backend:
``zero_sign="quotient"``, ``decode_arithmetic="compressed-tensors"`` and ``"modelopt"``."""

import warnings

import numpy as np
import pytest

import fp4ref

from .helpers import BACKENDS

F32 = np.float32


def _host(a):
    return a if isinstance(a, np.ndarray) else a.copy_to_host()


def _quantize(x, backend, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q = fp4ref.quantize(x, scale_layout="linear", backend=backend, **options)
    return _host(q.scales).reshape(-1).tolist(), _host(q.blocks).reshape(-1).tolist()


def _bits(values):
    values = _host(values)
    return values.view(np.uint32 if values.dtype == np.float32 else np.uint16).reshape(-1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_quotient_zero_sign_nvfp4(backend):
    """compressed-tensors, given G = 0: block scale e4m3(0 * amax / 6) = 0 -> the 0.125
    fallback (0x20); -0.5 / (0.125 / 0) = -0.0, so code 0x0; "negative" would give 0x8."""
    x = np.zeros((1, 16), F32)
    x[0, 0] = -0.5
    assert _quantize(x, backend, format="nvfp4", profile="compressed-tensors",
                     tensor_scale=0.0) == ([0x20], [0] * 8)
    negative = fp4ref.profiles()["compressed-tensors"].with_options(zero_sign="negative")
    assert _quantize(x, backend, format="nvfp4", profile=negative,
                     tensor_scale=0.0) == ([0x20], [0x08] + [0] * 7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_quotient_zero_sign_mxfp4(backend):
    """MXFP4, EVEN rule, amax 2^20 -> byte 145 (X = 2^18); -2^-149 / 2^18 underflows to -0:
    code 0x0 ("negative": 0x8); 2^20 / 2^18 = 4 is code 6, element 0 in the low nibble."""
    x = np.zeros((1, 32), F32)
    x[0, 0], x[0, 1] = 2.0**20, -(2.0**-149)
    assert _quantize(x, backend, format="mxfp4", profile="compressed-tensors") == (
        [145], [0x06] + [0] * 15)
    negative = fp4ref.profiles()["compressed-tensors"].with_options(zero_sign="negative")
    assert _quantize(x, backend, format="mxfp4", profile=negative) == (
        [145], [0x86] + [0] * 15)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compressed_tensors_decode_divides_by_g(backend):
    """NVFP4 scale 0x3A (1.25), code 2 (1.0), G = 3: f32(1.25 / 3) = 0x3ED55555; the
    reciprocal order f32(1.25 * f32(1/3)) would be 0x3ED55556."""
    blocks = np.full((1, 8), 0x22, np.uint8)
    out = fp4ref.dequantize(blocks, np.array([[0x3A]], np.uint8), format="nvfp4",
                            profile="compressed-tensors", tensor_scale=3.0,
                            scale_layout="linear", backend=backend)
    assert set(_bits(out).tolist()) == {0x3ED55555}


@pytest.mark.parametrize("backend", BACKENDS)
def test_compressed_tensors_mxfp4_scale_in_the_output_dtype(backend):
    """MXFP4 byte 102 (2^-25), code 7 (6): float16(2^-25) is 0 (a tie to even), so 0x0000;
    the exact product 1.5 * 2^-23 would be float16 0x0003."""
    blocks = np.full((1, 16), 0x77, np.uint8)
    out = fp4ref.dequantize(blocks, np.array([[102]], np.uint8), format="mxfp4",
                            profile="compressed-tensors", dtype="float16", backend=backend)
    assert set(_bits(out).tolist()) == {0}
    ocp = fp4ref.dequantize(blocks, np.array([[102]], np.uint8), format="mxfp4",
                            dtype="float16", backend=backend)
    assert set(_bits(ocp).tolist()) == {0x0003}


@pytest.mark.parametrize("backend", BACKENDS)
def test_modelopt_decodes_code_8_as_positive_zero(backend):
    """ModelOpt's e2m1_values[8] is +0: codes 0x8 and 0x9 under scale 0x38 (1.0) with
    s_t = 1 decode to 0x00000000 and -0.5 (0xBF000000)."""
    blocks = np.full((1, 8), 0x98, np.uint8)
    out = fp4ref.dequantize(blocks, np.array([[0x38]], np.uint8), format="nvfp4",
                            profile="modelopt", tensor_scale=1.0, scale_layout="linear",
                            backend=backend)
    assert _bits(out).tolist()[:2] == [0x00000000, 0xBF000000]


@pytest.mark.parametrize("backend", BACKENDS)
def test_ieee_x86_arithmetic_nan_scale(backend):
    """compressed-tensors, [[Inf, 1.0], [2.0]] (blocks of 16): G = 2688 / Inf = 0; block 1
    scale 0 * Inf = x86's negative NaN, 0xFF (zero codes); block 2: 0 -> the 0.125 fallback
    0x20, 2 / (0.125 / 0) = 0 -> code 0. A NaN input block keeps 0x7F."""
    x = np.zeros((1, 32), F32)
    x[0, 0], x[0, 1], x[0, 16] = np.inf, 1.0, 2.0
    assert _quantize(x, backend, format="nvfp4", profile="compressed-tensors") == (
        [0xFF, 0x20], [0] * 16)
    x[0, 0] = np.nan
    scales, _ = _quantize(x, backend, format="nvfp4", profile="compressed-tensors",
                          tensor_scale=2688.0)
    assert scales[0] == 0x7F


@pytest.mark.parametrize("backend", BACKENDS)
def test_compressed_tensors_mxfp4_overflowing_blocks(backend):
    """compressed-tensors MXFP4: [3.4028235e38, 1.0] -> round_to_power_2 gives Inf, the byte
    is uint8(127 + INT_MIN) = 0x7F and x / Inf = 0 (zero codes); so do NaN and Inf blocks;
    amax 1.5 * 2^127 (bits 0x7F400000, below 0x7F600000) keeps the EVEN rule's byte:
    (0x7F400000 + 0x200000) >> 23 = 254, minus 129, plus 127: 0xFC (X = 2^125), code 7."""
    x = np.zeros((4, 32), F32)
    x[0, 0], x[0, 1] = np.finfo(F32).max, 1.0
    x[1, 0], x[2, 3] = np.nan, -np.inf
    x[3, 0] = F32(1.5 * 2.0**127)
    scales, blocks = _quantize(x, backend, format="mxfp4", profile="compressed-tensors")
    assert scales == [0x7F, 0x7F, 0x7F, 0xFC]
    assert blocks[:48] == [0] * 48 and blocks[48] == 0x07  # 1.5 * 2^127 / 2^125 = 6


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "python"])
def test_compressed_tensors_and_modelopt_probes_agree_with_the_oracle(backend):
    from fp4ref.conformance import probes

    for profile in ("compressed-tensors", "modelopt"):
        for fmt in ("mxfp4", "nvfp4"):
            for probe in probes.probes(fmt):
                options = dict(format=fmt, profile=profile, tensor_scale=probe.tensor_scale)
                assert _quantize(probe.x, backend, **options) == _quantize(
                    probe.x, "python", **options), (profile, fmt, probe.label)


@pytest.mark.parametrize("backend", BACKENDS)
def test_modelopt_nan_and_inf_through_the_arithmetic(backend):
    """ModelOpt NVFP4 (nonfinite="modelopt"), blocks of 16, packed low nibble first:
    [NaN, 1.0]: s_t = NaN -> scale 0x7F, every quotient NaN -> code 7 (0x77);
    zeros: s_t = 0, 0 / (6 * 0) is x86's default NaN -> 0xFF, codes 7;
    given s_t = 0, [1.0]: 1 / 0 = Inf -> 448 (0x7E), 1 / (448 * 0) = Inf and 0 / 0 -> 7."""
    nan = np.zeros((1, 16), F32)
    nan[0, 0], nan[0, 1] = np.nan, 1.0
    assert _quantize(nan, backend, format="nvfp4", profile="modelopt") == ([0x7F], [0x77] * 8)
    zero = np.zeros((1, 16), F32)
    assert _quantize(zero, backend, format="nvfp4", profile="modelopt") == ([0xFF], [0x77] * 8)
    one = np.zeros((1, 16), F32)
    one[0, 0] = 1.0
    assert _quantize(one, backend, format="nvfp4", profile="modelopt", tensor_scale=0.0) == (
        [0x7E], [0x77] * 8)
