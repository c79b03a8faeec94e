"""fp4ref.quantize: hand-derived blocks, the oracle against numba, the optimal search
against exact arithmetic, dequantize(q), and bad input."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fp4ref
from fp4ref.spec import e2m1, e8m0

from .helpers import BACKENDS

TIES = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0]


def codes_of(q):
    return fp4ref.unpack(q.blocks, q.nibble_order, block_size=32 if q.format == "mxfp4" else 16)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("profile,expected", [
    ("ocp", [0, 2, 2, 4, 4, 6, 6, 7]),       # RNE (MX 5.3.3)
    ("qwantize", [0, 1, 2, 3, 4, 5, 6, 7]),  # toward zero
    ("mistralrs", [1, 2, 3, 4, 5, 6, 7, 7]),  # away from zero
])
def test_tie_block(backend, profile, expected):
    x = np.zeros((1, 32), np.float32)
    x[0, :8] = TIES
    q = fp4ref.quantize(x, profile=profile, backend=backend)
    assert q.scales.tolist() == [[127]]
    assert codes_of(q)[0, :8].tolist() == expected
    q = fp4ref.quantize(-x, profile=profile, backend=backend)
    negative_zero = {"ocp": 8, "qwantize": 8, "mistralrs": 8}[profile]
    assert codes_of(q)[0, :8].tolist() == [c | 8 if c else negative_zero for c in expected]


@pytest.mark.parametrize("backend", BACKENDS)
def test_special_blocks(backend):
    x = np.ones((5, 32), np.float32)
    x[0, 3] = np.nan
    x[1, 4] = np.inf
    x[2] = 0.0
    x[2, 1] = -0.0
    x[3] = 7.0  # (6, 8): the floor rule clips to 6
    x[4, 0] = 2.0**-130  # subnormal amax
    x[4, 1:] = 0.0
    q = fp4ref.quantize(x, backend=backend)
    assert q.scales[:, 0].tolist() == [0xFF, 0xFF, 0x00, 127, 0x00]
    codes = codes_of(q)
    assert codes[0].tolist() == [0] * 32 and codes[1].tolist() == [0] * 32
    assert codes[2, :2].tolist() == [0, 8]  # -0.0 keeps its sign under OCP
    assert codes[3].tolist() == [7] * 32
    assert codes[4, 0] == 0  # 2^-130 / 2^-127 = 1/8 rounds to 0


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("profile,zero_byte", [
    ("ocp", 0x00), ("modelopt", 0x38), ("compressed-tensors", 0x20), ("torchao-floor", 0x08),
    ("qwantize", 0x00)])
def test_nvfp4_zero_block(backend, profile, zero_byte):
    x = np.zeros((1, 32), np.float32)
    x[0, 16:] = 1.0
    q = fp4ref.quantize(x, format="nvfp4", profile=profile, backend=backend)
    assert q.scales[0, 0] == zero_byte


def test_nvfp4_tensor_scale_directions():
    x = np.zeros((1, 16), np.float32)
    x[0, 0] = 2688.0  # tensor amax 6 * 448: decode multiplier 1, encode scale 1
    q = fp4ref.quantize(x, format="nvfp4")
    assert q.tensor_scale == np.float32(1.0) and q.scales[0, 0] == 0x7E
    x[0, 0] = 5376.0
    q = fp4ref.quantize(x, format="nvfp4", profile="compressed-tensors")
    assert q.stored_tensor_scale == np.float32(0.5) and q.tensor_scale == np.float32(2.0)
    assert q.scales[0, 0] == 0x7E  # G * amax / 6 = 448
    q = fp4ref.quantize(x, format="nvfp4", profile="qwantize")
    assert q.tensor_scale is None and q.scales[0, 0] == 0x7E  # 896 saturates to 448


@pytest.mark.parametrize("size", [0, 16, 65536 * 3 + 48])
def test_largest_magnitude_kernel(size):
    """The parallel CPU amax (several work items, a short last one) against numpy."""
    from fp4ref.kernels.cpu.quantize import largest_magnitude

    x = np.random.default_rng(size).standard_normal(size).astype(np.float32) * 1e3
    expected = np.abs(x).max().view(np.uint32) if size else 0
    if size:
        x[size // 3] = -np.float32(3e38)  # the largest magnitude is negative
        expected = np.float32(3e38).view(np.uint32)
    assert largest_magnitude(x.view(np.uint32)) == expected
    if size:
        x[-1] = np.float32(np.nan)
        assert largest_magnitude(x.view(np.uint32)) > 0x7F800000


@pytest.mark.parametrize("profile, stored", [("ocp", 0x7FC00000), ("modelopt", 0x7FC00000),
                                             ("compressed-tensors", 0x3F800000)])
def test_nvfp4_nan_tensor_scale(profile, stored):
    """A NaN anywhere gives a NaN tensor amax: both CPU backends store fp4ref's canonical
    NaN (0x7FC00000) as the tensor scale whatever the input NaN's payload, or 1.0 where
    the profile replaces a non-finite scale (compressed-tensors' generate_gparam)."""
    x = np.ones((4, 16), np.float32)
    x.view(np.uint32)[2, 5] = 0xFFC01234  # a negative NaN with a payload
    for backend in ("python", "numba"):
        q = fp4ref.quantize(x, format="nvfp4", profile=profile, backend=backend)
        assert np.float32(q.stored_tensor_scale).view(np.uint32) == stored, backend


NV_PROFILES = [name for name, p in fp4ref.profiles().items()
               if p.nvfp4_recipe is not None and p.tensor_scale]


@pytest.mark.parametrize("profile", NV_PROFILES)
def test_given_tensor_scales_follow_the_oracle(profile):
    """Every backend gives the oracle's bytes for the probes with a given tensor scale
    (0, Inf, the smallest normal, 2^-140, 2^100). With Inf the ModelOpt recipe's block scale
    is 0 and its divisor 0 * Inf = NaN: every |x| / NaN encodes as a zero code that keeps
    its sign by the profile's rule (issue 17: numba wrote all-zero codes)."""
    from fp4ref.conformance.probes import probes

    given_scales = [p for p in probes("nvfp4") if p.tensor_scale is not None]
    assert len(given_scales) == 5
    for probe in given_scales:
        want = fp4ref.quantize(probe.x, format="nvfp4", profile=profile,
                               tensor_scale=probe.tensor_scale, backend="python")
        for backend in BACKENDS[1:]:
            got = fp4ref.quantize(probe.x, format="nvfp4", profile=profile,
                                  tensor_scale=probe.tensor_scale, backend=backend)
            assert np.array_equal(want.blocks, got.blocks), (probe.label, profile, backend)
            assert np.array_equal(want.scales, got.scales), (probe.label, profile, backend)


def test_infinite_tensor_scale_keeps_the_signs_of_zero_codes():
    """Hand-derived: ocp, tensor scale Inf (decode), block scale e4m3(amax / (6 * Inf)) = 0,
    divisor 0 * Inf = NaN, so every element's quotient is NaN: code 0, and under
    zero_sign="keep" the sign bit of x (0x8 for -1.0 and -0.0)."""
    x = np.zeros((1, 16), np.float32)
    x[0, :4] = [1.0, -1.0, -0.0, 3.0]
    for backend in BACKENDS:
        q = fp4ref.quantize(x, format="nvfp4", tensor_scale=np.inf, backend=backend)
        assert q.scales.tolist() == [[0]]
        assert q.blocks[0].tolist() == [0x80, 0x08] + [0] * 6, backend


def finite_blocks(block):
    value = st.floats(-1e6, 1e6, width=32) | st.sampled_from([0.0, -0.0, 6.0, 3.5, 1e-40])
    return st.lists(value, min_size=block, max_size=block).map(
        lambda v: np.ldexp(np.array(v, np.float32), int(abs(v[0])) % 60 - 30).reshape(1, block))


@settings(max_examples=40)
@given(x=finite_blocks(32), profile=st.sampled_from(sorted(fp4ref.profiles())),
       rule=st.sampled_from([None, "floor", "rceil", "ceil", "even", "nearest", "optimal"]))
def test_mx_python_equals_numba(x, profile, rule):
    if rule == "optimal" and fp4ref.profiles()[profile].element_rule == "argmin":
        rule = None  # MLX's argmin codes have no search (refused)
    a = fp4ref.quantize(x, profile=profile, scale_rule=rule, backend="python")
    b = fp4ref.quantize(x, profile=profile, scale_rule=rule, backend="numba")
    assert np.array_equal(a.scales, b.scales) and np.array_equal(a.blocks, b.blocks)


@settings(max_examples=40)
@given(x=finite_blocks(16), rule=st.sampled_from([None, "optimal"]),
       profile=st.sampled_from(["ocp", "modelopt", "compressed-tensors", "qwantize", "comfy"]))
def test_nv_python_equals_numba(x, rule, profile):
    rule = None if profile == "comfy" else rule  # the comfy recipe has no search
    a = fp4ref.quantize(x, format="nvfp4", profile=profile, scale_rule=rule, backend="python")
    b = fp4ref.quantize(x, format="nvfp4", profile=profile, scale_rule=rule, backend="numba")
    assert np.array_equal(a.scales, b.scales) and np.array_equal(a.blocks, b.blocks)


def many_blocks(seed: int) -> np.ndarray:
    """53 blocks (three whole groups of 16 for the vector kernel, and a tail) of the values
    where encoders go wrong: every tie and its float32 neighbours at the block's scale,
    signed zeros, subnormals, the float32 extremes, and NaN/Inf in some blocks."""
    rng = np.random.default_rng(seed)
    ties = np.array(TIES, np.float32)
    near = np.concatenate([ties, np.nextafter(ties, np.float32(0)),
                           np.nextafter(ties, np.float32(9))])
    x = np.empty((53, 32), np.float32)
    for b in range(53):
        exponent = int(rng.integers(-140, 126))
        row = np.ldexp(rng.choice(near, 32), exponent).astype(np.float32)
        row *= rng.choice(np.array([-1, 1], np.float32), 32)
        specials = np.array([0.0, -0.0, 1e-45, -1e-45], np.float32)
        row[rng.integers(0, 32, 3)] = rng.choice(specials, 3)
        x[b] = row
    x[5, 7], x[20, 0], x[21, 31], x[47, 3] = np.nan, np.inf, -np.inf, -np.nan
    x[30] = np.float32(3.4028235e38) * rng.choice(np.array([-1, 1], np.float32), 32)
    x[31] = 0.0
    x[32] = -0.0
    return x


@pytest.mark.parametrize("profile", sorted(fp4ref.profiles()))
@pytest.mark.parametrize("rule", [None, "floor"])
def test_mx_rule_kernel_on_many_blocks(profile, rule):
    """The numba rule kernel encodes whole groups of blocks at once (the floor rule) and
    single blocks otherwise; both against the oracle, in every profile's nibble order,
    tie rule and zero-sign policy."""
    x = many_blocks(len(profile))
    a = fp4ref.quantize(x, profile=profile, scale_rule=rule, backend="python")
    b = fp4ref.quantize(x, profile=profile, scale_rule=rule, backend="numba")
    assert np.array_equal(a.scales, b.scales) and np.array_equal(a.blocks, b.blocks)


def exact_sse(values, byte, rounding):
    scale = Fraction(e8m0.decode(byte))
    total = Fraction(0)
    for v in values:
        code = e2m1.encode(float(Fraction(v) / scale), rounding)
        total += (Fraction(v) - Fraction(e2m1.decode(code)) * scale) ** 2
    return total


@settings(max_examples=25)
@given(x=finite_blocks(32))
def test_optimal_is_the_exact_minimum_up_to_float32(x):
    """The float32 search's choice is within float32 rounding of the exact argmin over
    every E8M0 scale (exact Fraction errors)."""
    q = fp4ref.quantize(x, profile="qwantize", scale_rule="optimal")
    values = [float(v) for v in x[0]]
    chosen = exact_sse(values, int(q.scales[0, 0]), "zero")
    naive = int(fp4ref.quantize(x, profile="qwantize").scales[0, 0])
    best = min(exact_sse(values, b, "zero") for b in range(max(naive - 3, 1), min(naive + 3, 255)))
    assert chosen <= best * (1 + Fraction(1, 10**5)) + Fraction(1, 10**60)
    assert chosen <= exact_sse(values, naive, "zero") * (1 + Fraction(1, 10**5))


def test_dequantize_accepts_quantized_tensor():
    x = np.linspace(-6, 6, 64, dtype=np.float32).reshape(2, 32)
    q = fp4ref.quantize(x)
    assert np.array_equal(fp4ref.dequantize(q), fp4ref.dequantize(q.blocks, q.scales))
    q = fp4ref.quantize(x, format="nvfp4", profile="comfy")
    expected = fp4ref.dequantize(q.blocks, q.scales, format="nvfp4", tensor_scale=q.tensor_scale,
                                 nibble_order="high-first", scale_layout="128x4",
                                 profile="comfy")  # its decode arithmetic
    assert np.array_equal(fp4ref.dequantize(q), expected)


def test_empty_and_shapes():
    q = fp4ref.quantize(np.zeros((0, 64), np.float32))
    assert q.blocks.shape == (0, 32) and q.scales.shape == (0, 2)
    q = fp4ref.quantize(np.zeros((2, 3, 64), np.float16))
    assert q.blocks.shape == (2, 3, 32) and q.scales.shape == (2, 3, 2)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"x": np.zeros(31, np.float32)}, ValueError, "multiple of the block size 32"),
    ({"x": np.zeros(32, np.int32)}, TypeError, "float array"),
    ({"x": np.float32(1)}, ValueError, "at least one dimension"),
    ({"x": np.zeros(32, np.float32), "profile": "nope"}, ValueError, "profile must be one of"),
    ({"x": np.zeros(32, np.float32), "scale_rule": "nope"}, ValueError, "scale_rule must be"),
    ({"x": np.zeros(32, np.float32), "rounding": "up"}, ValueError, "rounding must be"),
    ({"x": np.zeros(32, np.float32), "format": "nvfp4", "profile": "mistralrs"}, ValueError,
     "no NVFP4 quantizer"),
    ({"x": np.zeros(32, np.float32), "tensor_scale": 1.0}, ValueError, "nvfp4"),
    ({"x": np.zeros(32, np.float32), "backend": "gpu"}, ValueError, "backend must be"),
    ({"x": np.zeros(32, np.float32), "hessian": np.eye(32)}, ValueError,
     "hessian applies to scale_rule='optimal-hessian' only"),
    ({"x": np.zeros(32, np.float32), "scale_rule": "optimal-hessian"}, ValueError,
     "needs hessian="),
    ({"x": np.zeros(64, np.float32), "scale_rule": "optimal-hessian",
      "hessian": np.zeros((1, 32, 32))}, ValueError, r"shape \[K/32, 32, 32\] = \(2, 32, 32\)"),
    ({"x": np.zeros(64, np.float32), "scale_rule": "optimal-hessian",
      "hessian": np.zeros((5, 32), np.float32)}, ValueError, r"shape \[T, 64\]"),
    ({"x": np.zeros(32, np.float32), "scale_rule": "optimal-hessian",
      "hessian": np.full((1, 32, 32), np.nan)}, ValueError, "finite"),
])
def test_bad_input(kwargs, error, match):
    x = kwargs.pop("x")
    with pytest.raises(error, match=match):
        fp4ref.quantize(x, **kwargs)


def test_profiles_listed_with_sources():
    names = set(fp4ref.profiles())
    assert names == {"ocp", "mistralrs", "ggml", "torchao-floor", "torchao-rceil", "modelopt",
                     "compressed-tensors", "comfy", "qwantize", "mlx", "flashinfer", "quark",
                     "vllm", "vllm-round-down", "gguf-py", "vllm-triton", "fouroversix",
                     "modelopt-mxfp4"}
    for profile in fp4ref.profiles().values():
        assert profile.description


@pytest.mark.parametrize("fmt,profile,layout", [
    ("nvfp4", "comfy", None), ("nvfp4", "flashinfer", None), ("mxfp4", "ocp", "128x4"),
    ("mxfp4", "ocp", "8x4"), ("nvfp4", "comfy", "linear")])
def test_scale_layout_round_trip(fmt, profile, layout):
    x = np.random.default_rng(2).standard_normal((2, 130, 64)).astype(np.float32)
    q = fp4ref.quantize(x, format=fmt, profile=profile, scale_layout=layout)
    linear = fp4ref.quantize(x, format=fmt, profile=profile, scale_layout="linear")
    expected = layout or "128x4"
    assert q.scale_layout == expected and linear.scale_layout == "linear"
    block = 32 if fmt == "mxfp4" else 16
    cols = 64 // block
    if expected != "linear":
        assert q.scales.shape == (2, 256 if expected == "128x4" else 136, 4)
        unswizzled = fp4ref.unswizzle(q.scales, rows=130, cols=cols, layout=expected)
        assert np.array_equal(unswizzled, linear.scales)
    assert np.array_equal(fp4ref.dequantize(q).view(np.uint32),
                          fp4ref.dequantize(linear).view(np.uint32))


def test_scale_layout_needs_rows():
    with pytest.raises(ValueError, match=r"\[..., N, K\] for scale_layout"):
        fp4ref.quantize(np.zeros(32, np.float32), scale_layout="128x4")
    with pytest.raises(ValueError, match="scale_layout must be"):
        fp4ref.quantize(np.zeros((1, 32), np.float32), scale_layout="swizzled")


def hessian_case(seed, block, rows=2, columns=2):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((rows, columns * block)) * 10.0 ** rng.integers(-3, 3, (rows, 1)))
    activations = rng.standard_normal((40, columns * block)) * rng.uniform(0.1, 3, columns * block)
    return x.astype(np.float32), activations.astype(np.float32)


@settings(max_examples=15)
@given(seed=st.integers(0, 2**32 - 1), fmt=st.sampled_from(["mxfp4", "nvfp4"]),
       profile=st.sampled_from(["qwantize", "ocp", "modelopt"]))
def test_hessian_python_equals_numba(seed, fmt, profile):
    x, activations = hessian_case(seed, 32 if fmt == "mxfp4" else 16)
    options = dict(format=fmt, profile=profile, scale_rule="optimal-hessian", hessian=activations)
    a = fp4ref.quantize(x, backend="python", **options)
    b = fp4ref.quantize(x, backend="numba", **options)
    assert np.array_equal(a.scales, b.scales) and np.array_equal(a.blocks, b.blocks)


def test_hessian_blocks_given_or_from_activations():
    x, activations = hessian_case(3, 16)
    blocks = np.stack([a.T.astype(np.float64) @ a.astype(np.float64)
                       for a in np.split(activations, 2, axis=1)])
    from_x = fp4ref.quantize(x, format="nvfp4", scale_rule="optimal-hessian", hessian=activations)
    given_h = fp4ref.quantize(x, format="nvfp4", scale_rule="optimal-hessian", hessian=blocks)
    assert np.array_equal(from_x.scales, given_h.scales)


def test_hessian_identity_is_the_sse_search():
    """With H = I the Hessian error is the SSE (in float64 instead of float32): on these
    blocks no two candidates' errors are within float32 rounding, so the picks agree."""
    x = hessian_case(7, 32, rows=64, columns=4)[0]
    identity = np.broadcast_to(np.eye(32), (4, 32, 32))
    a = fp4ref.quantize(x, profile="qwantize", scale_rule="optimal-hessian", hessian=identity)
    b = fp4ref.quantize(x, profile="qwantize", scale_rule="optimal")
    assert np.array_equal(a.scales, b.scales)


def exact_hessian_error(values, divisor, h):
    """r^T H r exactly, r = x - q * d with q the toward-zero E2M1 rounding of x / d."""
    scale = Fraction(divisor)
    r = []
    for v in values:
        code = e2m1.encode(float(Fraction(v) / scale), "zero")
        r.append(Fraction(v) - Fraction(e2m1.decode(code)) * scale)
    return sum(r[a] * sum(Fraction(h[a][b]) * r[b] for b in range(len(r)))
               for a in range(len(r)))


@pytest.mark.parametrize("seed", range(4))
def test_hessian_choice_is_the_exact_minimum_of_the_candidates(seed):
    """The numba pick's exact r^T H r is the smallest (up to float32 residual rounding) among
    the start scale and every candidate the search may evaluate: inside the SSE bounds and
    passing the clip test (qwantize's MXFP4 rules, from the plain-Python oracle)."""
    from fp4ref.spec import optimal, scale_rules

    x, activations = hessian_case(seed, 32, rows=4)
    h = np.stack([a.T.astype(np.float64) @ a.astype(np.float64)
                  for a in np.split(activations, 2, axis=1)])
    q = fp4ref.quantize(x, profile="qwantize", scale_rule="optimal-hessian", hessian=h)
    for b, values in enumerate(x.reshape(-1, 32).tolist()):
        hb = h[b % 2].tolist()
        start = scale_rules.mx_scale(max(abs(v) for v in values), "qwantize")
        e0 = optimal.block_error(values, 2.0 ** (start - 127), False, "zero", 16)
        bounds = optimal._bounds(values, e0, 16)
        candidates = [start]
        if bounds is not None:
            candidates += [c for c in range(1, 255)
                           if bounds[0] <= 2.0 ** (c - 127) <= bounds[1]
                           and optimal._clip_error(values, 2.0 ** (c - 127), 16) < e0]
        errors = {c: exact_hessian_error(values, 2.0 ** (c - 127), hb) for c in candidates}
        chosen = int(q.scales.reshape(-1)[b])
        assert chosen in errors
        assert errors[chosen] <= min(errors.values()) * (1 + Fraction(1, 10**5))
