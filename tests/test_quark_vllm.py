"""The AMD Quark and vLLM conventions (profiles ``quark``, ``vllm``, ``vllm-round-down``):
each quirk's minimal input with its bytes derived by hand from the implementation's source
(and seen from the real implementation in ``pytest -m peers``), on every backend; the
plain-Python oracle against the numba kernels on the edge probes, scalar and vector
switch alike (the CUDA kernels run against both in ``tests/cuda``)."""

import math

import numpy as np
import pytest

import fp4ref
from fp4ref.conformance import probes
from fp4ref.kernels.cpu import simd
from fp4ref.profiles import Profile, get

from .helpers import BACKENDS

F32 = np.float32
MAX = float(np.finfo(F32).max)


def _bits(value: int) -> float:
    return float(np.array(value, np.uint32).view(F32))


def _block(values, size=32):
    x = np.zeros((1, size), F32)
    x[0, : len(values)] = values
    return x


def _quantize(values, profile, fmt="mxfp4", backend="numba", **kw):
    q = fp4ref.quantize(_block(values, 32 if fmt == "mxfp4" else 16), format=fmt,
                        profile=profile, backend=backend, **kw)
    return int(q.scales.reshape(-1)[0]), fp4ref.unpack(q.blocks)[0].tolist(), q


# (profile, block values, scale byte, the first codes), each derived from the source:
MINIMAL = [
    # Quark even_round: amax 2^-127 -> floor(log2) - 2 = -129 -> clamp -127: the elements
    # are divided by 2^-127 (1.0 -> code 2, 0.5 -> 1) but to_e8m0_uint8 stores 0x01
    ("quark", [2.0**-127, 2.0**-128], 0x01, [2, 1, 0]),
    # a zero block: 2^-126 fill, log2 - 2 clamps to -127, stored 0x01; zero codes +0
    ("quark", [0.0, -0.0], 0x01, [0, 0, 0]),
    # float32 max: bits + 0x200000 carry into exponent 255 = Inf, log2 clamps to 127 (0xFE);
    # MAX / 2^127 = 1.99999988 -> 2.0 (code 4)
    ("quark", [MAX, -MAX, 1.0], 0xFE, [4, 12, 0]),
    # Inf: the same 0xFE; Inf / 2^127 = Inf, Pack_fp4 reads (Inf >> 22) & 7 = 6
    ("quark", [math.inf, 1.0, -math.inf], 0xFE, [6, 0, 14]),
    # NaN: scale NaN -> int16 0 -> 0x7F; x / NaN is the scale's +NaN (code 7) except the
    # NaN elements, which keep theirs (0xFFC00000 -> 0xF)
    ("quark", [math.nan, -2.0, _bits(0xFFC00000), 0.0], 0x7F, [7, 7, 15, 7, 7]),
    # vLLM ROUND_UP: f32(6 * 2^-127 / 6) = 2^-127, bits 0x00400000 + 0x7FFFFF -> 0x01;
    # 6 * 2^-127 * 2^126 = 3 (code 5); rceil would give 0x00
    ("vllm", [6 * 2.0**-127, -0.0], 0x01, [5, 8, 0]),
    # a NaN block: amax NaN, (0x7FC00000 + 0x7FFFFF) & 0x7F800000 = 0; quant_scale 0:
    # x * 0 keeps the signs, NaN codes 7 with its sign bit, Inf * 0 = x86's -NaN: 0xF
    ("vllm", [math.nan, -2.0, _bits(0xFFC00000), math.inf, 1.0], 0x00, [7, 8, 15, 15, 0]),
    # an Inf block: Inf / 6 = Inf -> 0xFF, quant_scale 1 / Inf = 0
    ("vllm", [math.inf, -2.0, 1.0], 0xFF, [15, 8, 0]),
    # ties away from zero (the +1 >> 1 of the bit conversion): 5 -> 6, 0.25 -> 0.5
    ("vllm", [6.0, 5.0, 0.25, -2.5], 0x7F, [7, 7, 1, 13]),
    # ROUND_DOWN: the exponent field of a subnormal quotient is 0 -> quant_scale 0: +-0
    ("vllm-round-down", [6 * 2.0**-127, -2.0**-128], 0x00, [0, 8, 0]),
    ("vllm-round-down", [math.nan, -2.0], 0xFF, [7, 8, 0]),
    # vLLM's Triton quantizer: tl.max skips NaN (amax 2 -> 0x7E), NaN codes 7 with its sign
    ("vllm-triton", [math.nan, 1.0, -2.0, _bits(0xFFC00000)], 0x7E, [7, 4, 14, 15, 0]),
    # a block of NaNs: max NaN, bits + 0x200000 -> exponent 255 -> log2 Inf -> 127: 0xFE
    ("vllm-triton", [math.nan] * 32, 0xFE, [7] * 32),
    # Inf: 0xFE, Inf * 2^-127 = Inf codes 7; -2 * 2^-127 is -0: 8 (signs kept)
    ("vllm-triton", [math.inf, 1.0, -2.0], 0xFE, [7, 0, 8]),
    # ties to even (5 -> 4.0, 0.75 -> 1.0, -2.5 -> -2.0), -0.0 keeps its sign
    ("vllm-triton", [6.0, 5.0, 0.25, 0.75, -2.5, -0.0], 0x7F, [7, 6, 0, 2, 12, 8]),
    # the clamped EVEN rule's 2^-127 is stored as 0x00 here (Quark: 0x01)
    ("vllm-triton", [2.0**-127, 2.0**-128], 0x00, [2, 1, 0]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,values,scale,codes", MINIMAL)
def test_mxfp4_minimal_inputs(backend, name, values, scale, codes):
    got_scale, got_codes, _ = _quantize(values, name, backend=backend)
    assert (got_scale, got_codes[: len(codes)]) == (scale, codes)
    rest = 7 if name == "quark" and scale == 0x7F else 0  # Quark's NaN block: all 7
    assert got_codes[len(codes):] == [rest] * (32 - len(codes))


def _nv(values, backend, tensor_scale):
    return _quantize(values, "vllm", "nvfp4", backend, tensor_scale=tensor_scale)


@pytest.mark.parametrize("backend", BACKENDS)
def test_vllm_nvfp4_minimal_inputs(backend):
    # G = 1: f32(6 * f32(1/6)) = 1.0 -> E4M3 0x38, output_scale 1; cast_to_fp4's thresholds
    # tie to even (0.25 -> 0, 1.25 -> 1.0, 2.5 -> 2.0); torch.sign: -0.0 -> +0, -1e-30 -> 0x8
    scale, codes, q = _nv([6.0, 0.25, 1.25, 2.5, -0.0, -1e-30], backend, 1.0)
    assert (scale, codes[:7]) == (0x38, [7, 0, 2, 4, 0, 8, 0])
    assert float(q.stored_tensor_scale) == 1.0
    # a block scale that underflows to 0: output_scale 1 / (0 + 1e8) keeps the signs
    scale, codes, _ = _nv([-1e-5, 1e-5], backend, 1.0)
    assert (scale, codes[:3]) == (0x00, [8, 0, 0])
    # Inf with G = 1: y = Inf clamped to 448 (0x7E), Inf * (1/448) clamps to 6
    scale, codes, _ = _nv([math.inf, 1.0], backend, 1.0)
    assert (scale, codes[:3]) == (0x7E, [7, 0, 0])
    # a zero tensor: G = 2688 * (1 / 0) = Inf, G * 0 = x86's -NaN: 0xFF, no values (0xF)
    scale, codes, q = _nv([0.0], backend, None)
    assert (scale, codes) == (0xFF, [0xF] * 16) and q.stored_tensor_scale == np.inf
    # an Inf tensor: G = 0, 0 * Inf = -NaN: 0xFF
    scale, codes, q = _nv([math.inf, 1.0], backend, None)
    assert (scale, codes) == (0xFF, [0xF] * 16) and q.stored_tensor_scale == 0
    # a NaN tensor: torch's max gives the NaN 0xFFFFFFFF, G's NaN wins: 0xFF
    scale, codes, q = _nv([math.nan, 1.0], backend, None)
    assert (scale, codes) == (0xFF, [0xF] * 16)
    assert np.float32(q.stored_tensor_scale).view(np.uint32) == 0xFFFFFFFF


def test_vllm_computes_its_callers_global_scale():
    # 2688 / 1000 as torch computes a scalar / tensor: f32(f32(1 / 1000) * 2688), one ulp
    # above the correctly rounded quotient
    q = fp4ref.quantize(_block([1000.0], 16), format="nvfp4", profile="vllm")
    assert float(q.stored_tensor_scale) == float(F32(F32(1) / F32(1000)) * F32(2688))
    assert float(q.stored_tensor_scale) != float(F32(2688) / F32(1000))


def test_vllm_nvfp4_refuses_a_search():
    with pytest.raises(ValueError, match="'vllm'"):
        fp4ref.quantize(_block([1.0], 16), format="nvfp4", profile="vllm",
                        scale_rule="optimal")


@pytest.mark.parametrize("name,fmt", [("quark", "mxfp4"), ("vllm", "mxfp4"),
                                      ("vllm-round-down", "mxfp4"), ("vllm", "nvfp4"),
                                      ("vllm-triton", "mxfp4")])
def test_oracle_and_numba_agree_on_the_probes(name, fmt):
    for probe in probes.probes(fmt):
        x = probe.x[:24] if probe.label == "adversarial-blocks" else probe.x  # the oracle
        kw = {"tensor_scale": probe.tensor_scale} if fmt == "nvfp4" else {}  # is slow
        a = fp4ref.quantize(x, format=fmt, profile=name, backend="python", **kw)
        for vector in (True, False):  # the vector switch on and off
            before = simd.use_vector_code(vector)
            try:
                b = fp4ref.quantize(x, format=fmt, profile=name, backend="numba", **kw)
            finally:
                simd.use_vector_code(before)
            assert np.array_equal(a.blocks, b.blocks), (probe.label, vector)
            assert np.array_equal(a.scales, b.scales), (probe.label, vector)


def test_new_fields_are_validated():
    with pytest.raises(ValueError, match="mx_element_scale"):
        Profile("x", "", mx_element_scale="multiply")
    with pytest.raises(ValueError, match="e8m0_stored_min"):
        Profile("x", "", e8m0_stored_min=255)
    assert get("quark").e8m0_stored_min == 1
    assert get("vllm").mx_element_scale == "bits-reciprocal"
