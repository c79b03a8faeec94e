"""Profile ``mlx``: each MLX 0.32.4 (CPU) quirk on its minimal input, with the bytes and
values derived by hand below (and seen from MLX itself when the profile was fitted: the
``peers`` tests run MLX on every probe). Every backend is held to the same numbers: the
plain-Python oracle, the numba CPU kernels with and without their vector code (the CUDA
simulator runs them in ``tests/cuda/test_mlx.py``).
"""

import math

import numpy as np
import pytest

import fp4ref
from fp4ref.kernels import elements as kernel_elements
from fp4ref.kernels.cpu import simd
from fp4ref.kernels.options import TIE_ARGMIN
from fp4ref.spec import elements

F32 = np.float32
NEXT_6 = float(np.nextafter(F32(6.0), F32(9.0)))  # 6 + 2^-21

#: (what, first values of an MXFP4 block (rest zeros), scale byte, first codes).
MX_CASES = [
    # 2^-126 / 6 is in (2^-129, 2^-128]: e = -128, byte uint8(-1) = 0xFF; 2^-126 / 2^-128 = 4
    ("wraps to 0xFF", [2.0**-126], 0xFF, [6]),
    ("wraps to 0xFD", [2.0**-128], 0xFD, [6]),  # e = -130, 2^-128 / 2^-130 = 4
    ("zero quotient", [2.0**-149], 0x7F, [0]),  # f32(2^-149 / 6) = 0: e = 0
    ("zero block", [0.0], 0x7F, [0]),
    ("Inf block", [math.inf], 0x80, [0, 0]),
    ("NaN block", [math.nan, 1.0], 0x80, [0, 0]),
    ("-Inf block", [-math.inf, 3.0], 0x80, [0, 0]),
    # amax 6: e = 0; ties toward zero (argmin's first index), zero codes +0
    ("ties and zeros", [6.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, -0.75, -0.0, -0.1], 0x7F,
     [7, 0, 1, 2, 3, 4, 5, 6, 9, 0, 0]),
    # f32(NEXT_6 / 6) = 1 + 2^-23 > 1: rceil gives e = 1 (0x80), NEXT_6 / 2 = 3.0000002 -> 3.0
    ("rceil", [NEXT_6], 0x80, [5]),
]

#: (what, first values of an NVFP4 block, MLX global_scale or None, scale byte, codes).
NV_CASES = [
    # y = f32(1 / 6) = 1.3333 * 2^-3 -> E4M3 1.375 * 2^-3 (0x23); 1 / 0.171875 = 5.8 -> 6
    ("plain", [1.0], None, 0x23, [7, 0]),
    # f32(2^-10 / 6) < 2^-10, half the least E4M3 subnormal: s_b = 0, x / 0 = Inf -> code 0
    ("underflow", [2.0**-10], None, 0x00, [0, 0]),
    # s_b saturates to 448; x / 448 = 7.6e35 > 2^27: every float32 distance rounds equal
    ("far saturation", [float(np.finfo(F32).max)], None, 0x7E, [0, 0]),
    ("NaN", [math.nan, 1.0], None, 0x7E, [0, 0]),  # max is NaN, to_fp8(NaN) = 448
    ("Inf", [math.inf, 3.0], None, 0x7E, [0, 0]),  # Inf / 448 = Inf -> 0; 3 / 448 -> 0
    # G = 1: E = 2688, y = f32(f32(1 / 6) * 2688) = 448 (0x7E), f32(f32(1/448) * 2688) ~ 6
    ("global scale 1", [1.0], 1.0, 0x7E, [7, 0]),
    ("global scale 0", [1.0], 0.0, 0x7E, [0, 0]),  # E = Inf: y = Inf, x / 448 * Inf = Inf
    ("global scale Inf", [1.0], math.inf, 0x00, [0, 0]),  # E = 0: y = 0, (1 / 0) * 0 = NaN
]

BACKENDS = ["python", "numba", "numba-scalar"]


def _quantize(x, backend, **kwargs):
    if backend != "numba-scalar":
        return fp4ref.quantize(x, profile="mlx", backend=backend, **kwargs)
    previous = simd.use_vector_code(False)
    try:
        return fp4ref.quantize(x, profile="mlx", backend="numba", **kwargs)
    finally:
        simd.use_vector_code(previous)


def _codes(q, block):
    packed = np.asarray(q.blocks)[0, : block // 2]
    return np.stack([packed & 15, packed >> 4], -1).reshape(-1)


def _row(values, block):
    x = np.zeros((2, block), F32)  # two rows: MLX packs 32 elements at a time
    x[0, : len(values)] = values
    return x


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("what,values,byte,codes", MX_CASES, ids=[c[0] for c in MX_CASES])
def test_mxfp4_minimal_inputs(what, values, byte, codes, backend):
    q = _quantize(_row(values, 32), backend)
    assert int(q.scales[0, 0]) == byte
    assert _codes(q, 32)[: len(codes)].tolist() == codes
    assert not _codes(q, 32)[len(codes):].any()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("what,values,given,byte,codes", NV_CASES,
                         ids=[c[0] for c in NV_CASES])
def test_nvfp4_minimal_inputs(what, values, given, byte, codes, backend):
    q = _quantize(_row(values, 16), backend, format="nvfp4", tensor_scale=given)
    assert int(q.scales[0, 0]) == byte
    assert _codes(q, 16)[: len(codes)].tolist() == codes
    if given is None:  # MLX computes no global scale
        assert q.stored_tensor_scale is None and q.tensor_scale is None
    else:
        assert np.float32(q.stored_tensor_scale).tobytes() == np.float32(given).tobytes()


def test_global_scale_is_the_tensor_amax():
    """G as given, decode multiplier float32(G / 2688): G = 1 gives 0x39C30C31; [1.0]
    round-trips (6 * f32(448 * f32(1 / 2688)) = 1)."""
    q = fp4ref.quantize(_row([1.0], 16), format="nvfp4", profile="mlx", tensor_scale=1.0)
    assert np.float32(q.tensor_scale).view(np.uint32) == 0x39C30C31
    assert fp4ref.dequantize(q)[0, 0] == 1.0


def test_no_search_under_the_mlx_recipe():
    with pytest.raises(ValueError, match="divides by s_b and then multiplies by E"):
        fp4ref.quantize(_row([1.0], 16), format="nvfp4", profile="mlx", scale_rule="optimal")


@pytest.mark.parametrize("backend", ["python", "numba"])
def test_decode(backend):
    """MXFP4: 0xFF is +Inf (0 * Inf NaN), 0x00 2^-127; float16 output rounds the scale to
    float16 first (2^-27 -> 0). NVFP4 with G = 1: 6 * f32(1.0 * f32(1 / 2688)) =
    0x3B124925 in float32, whatever the dtype MLX then holds (bfloat16 0x3B12)."""
    blocks = np.zeros((2, 16), np.uint8)
    blocks[:, 0] = 0x21  # codes 1 (0.5), 2 (1.0)
    out = fp4ref.dequantize(blocks, np.array([[0xFF], [0x00]], np.uint8), profile="mlx",
                            backend=backend)
    assert out[0, 0] == out[0, 1] == math.inf and math.isnan(out[0, 2])
    assert out[1, :3].view(np.uint32).tolist() == [0x00200000, 0x00400000, 0]
    blocks[:, 0] = 0x07
    half = fp4ref.dequantize(blocks, np.array([[100], [0x7F]], np.uint8), profile="mlx",
                             dtype="float16", backend=backend)
    assert half[:, 0].tolist() == [0.0, 6.0]
    nv = np.zeros((2, 8), np.uint8)
    nv[0, 0] = 0x07
    scales = np.array([[0x38], [0x38]], np.uint8)
    for dtype, bits in (("float32", 0x3B124925), ("bfloat16", 0x3B12)):
        out = fp4ref.dequantize(nv, scales, format="nvfp4", profile="mlx", tensor_scale=1.0,
                                dtype=dtype, backend=backend)
        width = np.uint32 if dtype == "float32" else np.uint16
        assert int(out.view(width)[0, 0]) == bits


ARGMIN_CASES = [(0.25, 0), (0.75, 1), (1.25, 2), (1.75, 3), (2.5, 4), (3.5, 5), (5.0, 6),
                (6.5, 7), (2.0**24, 7), (math.inf, 0), (math.nan, 0), (2.0**27, 7),
                (2.0**27 + 16, 0), (2.0**30, 0)]


@pytest.mark.parametrize("q,code", ARGMIN_CASES)
def test_argmin_code(q, code):
    """MLX's argmin over float32 distances: ties toward zero; above 2^27 (ulp 16) every
    distance |q - v| rounds to q, so the first entry (0) wins (at 2^27 itself q - 6 rounds
    down to 2^27 - 8); Inf and NaN give 0 (run against MLX on 4000
    quotients in 2^21..2^31: 7 below 2^25, 4 or 7 up to 2^26, 6 or 7 up to 2^27, 0 above)."""
    assert elements.argmin_code(q) == code
    assert kernel_elements.magnitude_code(np.float32(q), TIE_ARGMIN) == code


def test_argmin_kernel_equals_the_oracle():
    rng = np.random.default_rng(3)
    qs = np.concatenate([np.exp2(rng.uniform(-30, 31, 3000)),
                         [2.0**25 + 8, 2.0**25 + 24, 2.0**26 + 40, 2.0**26 + 48]]).astype(F32)
    for q in qs:
        assert kernel_elements.magnitude_code(q, TIE_ARGMIN) == elements.argmin_code(float(q))


#: The new choices combined with other profiles' conventions (each choice is its own field).
COMBOS = [
    ("mxfp4", "ocp", {"scale_rule": "mlx"}),
    ("mxfp4", "ocp", {"scale_rule": "mlx", "rounding": "even", "zero_sign": "keep",
                      "nibble_order": "split-half"}),
    ("mxfp4", "ggml", {"nonfinite": "mlx", "element_rule": "argmin"}),
    ("mxfp4", "mlx", {"element_rule": "nearest", "rounding": "away"}),
    ("nvfp4", "modelopt", {"element_rule": "argmin", "nonfinite": "mlx"}),
    ("nvfp4", "torchao-floor", {"element_rule": "argmin"}),
    ("nvfp4", "ocp", {"nvfp4_recipe": "mlx", "tensor_scale_direction": "amax"}),
    ("nvfp4", "mlx", {"element_rule": "nearest", "zero_sign": "keep"}),
    ("nvfp4", "compressed-tensors", {"nonfinite": "mlx"}),
]


def combo_inputs(fmt):
    from fp4ref.conformance import probes

    return [*probes.probes(fmt), probes.Probe("gaussian", fmt, probes.gaussian((4, 64), 1))]


@pytest.mark.parametrize("fmt,base,options", COMBOS, ids=[f"{c[0]}-{c[1]}-{i}"
                                                          for i, c in enumerate(COMBOS)])
def test_new_choices_in_other_profiles(fmt, base, options):
    """Oracle, numba (vector and scalar) agree on every probe under each combination."""
    profile = fp4ref.profiles()[base].with_options(**options)
    for probe in combo_inputs(fmt):
        given = probe.tensor_scale if profile.tensor_scale else None
        outs = []
        for backend in BACKENDS:
            previous = simd.use_vector_code(backend != "numba-scalar")
            try:
                q = fp4ref.quantize(probe.x, format=fmt, profile=profile, tensor_scale=given,
                                    backend="python" if backend == "python" else "numba",
                                    scale_layout="linear")
            finally:
                simd.use_vector_code(previous)
            outs.append((np.asarray(q.scales), np.asarray(q.blocks)))
        for scales, blocks in outs[1:]:
            assert np.array_equal(scales, outs[0][0]), probe.label
            assert np.array_equal(blocks, outs[0][1]), probe.label


def test_no_search_with_argmin_codes():
    with pytest.raises(ValueError, match="MLX's argmin"):
        fp4ref.quantize(_row([1.0], 32), profile="mlx", scale_rule="optimal")
