"""fp4ref.ops: linear and moe_linear against the Fraction definitions of fp4ref.spec.ops,
hand-derived cases, fp4ref.dequantize, and the stated bound between the two modes."""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fp4ref
from fp4ref import ops
from fp4ref.io.layer import QuantizedLayer
from fp4ref.spec import ops as spec
from fp4ref.spec.rounding import binary_value

from .helpers import bits

BLOCK = {"mxfp4": 32, "nvfp4": 16}
MODES = ops.ACCUMULATE
# Each example runs the Fraction definition: half the profile's examples keep this file fast.
FEWER = settings(max_examples=max(10, settings.default.max_examples // 2))


def _rows(blocks, scales, fmt, tensor_scale=None, order="low-first"):
    """The oracle's float32 bits of a weight [N, K] (blocks [N, K/2])."""
    t = 0x3F800000 if tensor_scale is None else int(np.float32(tensor_scale).view(np.uint32))
    return spec.weight_rows(blocks.tolist(), scales.tolist(), fmt, t, order)


def _u32(array) -> list:
    return np.asarray(array, np.float32).view(np.uint32).tolist()


def _weight(data, fmt, experts=None, finite=False):
    """Random packed weight; ``finite`` keeps scales where no decoded value overflows."""
    n = data.draw(st.integers(1, 3), label="N")
    nblocks = data.draw(st.integers(1, 3), label="K/B")
    lead = (n,) if experts is None else (experts, n)
    blocks = data.draw(hnp.arrays(np.uint8, (*lead, nblocks * BLOCK[fmt] // 2)))
    scale_bytes = (st.integers(100, 150) if fmt == "mxfp4" else st.integers(0, 0x7E)) \
        if finite else st.integers(0, 255)
    scales = data.draw(hnp.arrays(np.uint8, (*lead, nblocks), elements=scale_bytes))
    kwargs = dict(format=fmt, nibble_order=data.draw(st.sampled_from(fp4ref.NIBBLE_ORDERS)))
    if fmt == "nvfp4":
        kwargs["tensor_scale"] = data.draw(
            st.floats(2.0**-20, 2.0**10, width=32) if finite else st.floats(width=32))
    return blocks, scales, kwargs


# Signed powers of two over a span wider than a float32 significand make sums that land on
# and near rounding ties.
POWERS = st.builds(lambda s, e: s * 2.0**e, st.sampled_from([1.0, -1.0]), st.integers(-40, 40))
ANY_FLOAT32 = st.one_of(st.floats(width=32), POWERS,
                        st.sampled_from([0.0, -0.0, 1.0, -1.0, 3.0]))
FINITE = st.one_of(st.floats(-(2.0**50), 2.0**50, width=32),
                   st.floats(-2.0**-120, 2.0**-120, width=32))  # products underflow


def _x(data, shape, finite=False):
    return data.draw(hnp.arrays(np.float32, shape, elements=FINITE if finite else ANY_FLOAT32))


def _bias(data, shape, finite=False):
    if not data.draw(st.booleans(), label="has bias"):
        return None
    return _x(data, shape, finite)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", BLOCK)
@FEWER
@given(data=st.data())
def test_linear_equals_the_fraction_definition(mode, fmt, data):
    blocks, scales, kwargs = _weight(data, fmt)
    n, k = blocks.shape[0], 2 * blocks.shape[1]
    x = _x(data, (data.draw(st.integers(1, 3), label="M"), k))
    bias = _bias(data, (n,))
    got = ops.linear(x, (blocks, scales), bias, accumulate=mode, **kwargs)
    w = _rows(blocks, scales, fmt, kwargs.get("tensor_scale"), kwargs["nibble_order"])
    expected = spec.linear(_u32(x), w, None if bias is None else _u32(bias), mode, BLOCK[fmt])
    assert got.dtype == np.float32
    assert bits(got).tolist() == expected


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt", BLOCK)
@FEWER
@given(data=st.data())
def test_moe_linear_equals_the_fraction_definition(mode, fmt, data):
    experts = data.draw(st.integers(1, 4), label="E")
    blocks, scales, kwargs = _weight(data, fmt, experts)
    n, k = blocks.shape[1], 2 * blocks.shape[2]
    tokens, topk = data.draw(st.integers(1, 3), label="T"), data.draw(st.integers(1, 3))
    per_slot = data.draw(st.booleans(), label="x per slot")
    x = _x(data, (tokens, topk, k) if per_slot else (tokens, k))
    indices = data.draw(hnp.arrays(
        data.draw(st.sampled_from([np.int32, np.int64, np.uint8])), (tokens, topk),
        elements=st.integers(0, experts - 1)))
    bias = _bias(data, (experts, n))
    got = ops.moe_linear(x, (blocks, scales), indices, bias, accumulate=mode, **kwargs)
    w = [_rows(blocks[e], scales[e], fmt, kwargs.get("tensor_scale"), kwargs["nibble_order"])
         for e in range(experts)]
    expected = spec.moe_linear(_u32(x), w, indices.tolist(),
                               None if bias is None else _u32(bias), mode, BLOCK[fmt], per_slot)
    assert got.shape == (tokens, topk, n)
    assert bits(got).tolist() == expected


def _exact(values) -> Fraction:
    magnitude, negative = binary_value(int(values), "float32")
    return -magnitude if negative else magnitude


@pytest.mark.parametrize("fmt", BLOCK)
@FEWER
@given(data=st.data())
def test_blocked_is_within_the_stated_bound_of_exact(fmt, data):
    blocks, scales, kwargs = _weight(data, fmt, finite=True)
    n, k = blocks.shape[0], 2 * blocks.shape[1]
    x = _x(data, (2, k), finite=True)
    bias = _bias(data, (n,), finite=True)
    exact = bits(ops.linear(x, (blocks, scales), bias, **kwargs))
    blocked = bits(ops.linear(x, (blocks, scales), bias, accumulate="float32-blocked",
                              **kwargs))
    w = _rows(blocks, scales, fmt, kwargs.get("tensor_scale"), kwargs["nibble_order"])
    u = Fraction(1, 2**24)
    terms = BLOCK[fmt] + k // BLOCK[fmt]
    gamma = terms * u / (1 - terms * u)
    for m in range(2):
        for j in range(n):
            b = Fraction(0) if bias is None else _exact(bits(bias)[j])
            total = abs(b) + sum(abs(_exact(a) * _exact(c))
                                 for a, c in zip(bits(x)[m], w[j], strict=True))
            bound = (gamma + u) * total + (k + 1) * Fraction(1, 2**149)
            assert abs(_exact(blocked[m, j]) - _exact(exact[m, j])) <= bound


# Hand-derived cases: one MXFP4 row of 32 weights, all code 0x2 (1.0) under scale byte s.
def _ones(scale: int = 127) -> tuple:
    return np.full((1, 16), 0x22, np.uint8), np.array([[scale]], np.uint8)


def _x32(*values) -> np.ndarray:
    x = np.zeros((1, 32), np.float32)
    x[0, :len(values)] = values
    return x


@pytest.mark.parametrize(
    "x,scale,exact,blocked",
    [
        # 2^24 + 1 - 2^24: exactly 1; float32 loses the 1 at the first addition.
        (_x32(2.0**24, 1.0, -(2.0**24)), 127, 0x3F800000, 0x00000000),
        # 1 + 2^-24 + 2^-30: above the tie, rounds up; blocked drops both small terms.
        (_x32(1.0, 2.0**-24, 2.0**-30), 127, 0x3F800001, 0x3F800000),
        # 1 + 2^-24 exactly: a tie, to even.
        (_x32(1.0, 2.0**-24), 127, 0x3F800000, 0x3F800000),
        # 1 + 3 * 2^-24 exactly: a tie between 1 + 2^-23 and 1 + 2^-22, to even.
        (_x32(1.0, 2.0**-24, 2.0**-23), 127, 0x3F800002, 0x3F800001),
        # Every product -0: the exact sum is -0 (IEEE 754 6.3), the blocked one starts at +0.
        (np.full((1, 32), -0.0, np.float32), 127, 0x80000000, 0x00000000),
        # inf * 1 is inf; inf * 1 + (-inf) * 1 is NaN.
        (_x32(np.inf), 127, 0x7F800000, 0x7F800000),
        (_x32(np.inf, -np.inf), 127, 0x7FC00000, 0x7FC00000),
        # 3e38 + 3e38 overflows to inf in both.
        (_x32(3e38, 3e38), 127, 0x7F800000, 0x7F800000),
        # A NaN scale byte makes the row NaN even against zeros.
        (np.zeros((1, 32), np.float32), 0xFF, 0x7FC00000, 0x7FC00000),
    ],
)
def test_hand_derived_sums(x, scale, exact, blocked):
    w = _ones(scale)
    assert bits(ops.linear(x, w))[0, 0] == exact
    assert bits(ops.linear(x, w, accumulate="float32-blocked"))[0, 0] == blocked


def test_an_infinite_weight_times_zero_is_nan():
    blocks = np.zeros((1, 16), np.uint8)
    blocks[0, 0] = 0x07  # element 0 is code 7 (6.0): 6 * 2^127 overflows to inf
    w = (blocks, np.array([[254]], np.uint8))
    for mode in MODES:
        assert bits(ops.linear(_x32(), w, accumulate=mode))[0, 0] == 0x7FC00000  # 0 * inf
        ones = np.ones((1, 32), np.float32)  # inf * 1 + 1 * (+0) * 31
        assert bits(ops.linear(ones, w, accumulate=mode))[0, 0] == 0x7F800000


@pytest.mark.parametrize("count,expected", [(1, 0x00000000), (2, 0x00000001), (3, 0x00000002),
                                            (5, 0x00000002), (7, 0x00000004)])
def test_subnormal_sums_round_once(count, expected):
    # Weights 0.5 * 2^-127 = 2^-128 (code 0x1, scale byte 0); x = 2^-22: each product is
    # 2^-150, half the smallest float32 subnormal. count products: count * 2^-150, rounded
    # once to a multiple of 2^-149, ties to even (1 -> 0, 3 -> 2, 5 -> 2, 7 -> 4).
    blocks, scales = np.full((1, 16), 0x11, np.uint8), np.zeros((1, 1), np.uint8)
    x = _x32(*[2.0**-22] * count)
    assert bits(ops.linear(x, (blocks, scales)))[0, 0] == expected
    # Blocked: every product rounds to +0 (a tie, to even) before it is added.
    assert bits(ops.linear(x, (blocks, scales), accumulate="float32-blocked"))[0, 0] == 0


@pytest.mark.parametrize("mode", MODES)
def test_no_fused_multiply_add(mode):
    # Weights t = 1 + 2^-12 (NVFP4 code 1.0, block scale 1.0, tensor scale t); x = (-t, t).
    # fl(-t * t) = -(1 + 2^-11) (a tie, to even), then fl(t * t) - (1 + 2^-11) = 0; an FMA
    # would give t * t - (1 + 2^-11) = 2^-24. The exact sum is 0 too.
    t = np.float32(1 + 2.0**-12)
    blocks, scales = np.full((1, 8), 0x22, np.uint8), np.array([[0x38]], np.uint8)
    x = np.zeros((1, 16), np.float32)
    x[0, :2] = -t, t
    got = ops.linear(x, (blocks, scales), format="nvfp4", tensor_scale=t, accumulate=mode)
    assert bits(got)[0, 0] == 0


def test_bias_is_inside_the_one_rounding():
    # Weights 1.0, x = (1, 2^-24), bias 2^-24: exactly 1 + 2^-23, a float32 (0x3F800001).
    # Blocked: fl(1 + 2^-24) = 1 (a tie, to even), then fl(1 + 2^-24) = 1 again.
    x, bias = _x32(1.0, 2.0**-24), np.array([2.0**-24], np.float32)
    assert bits(ops.linear(x, _ones(), bias))[0, 0] == 0x3F800001
    assert bits(ops.linear(x, _ones(), bias, accumulate="float32-blocked"))[0, 0] == 0x3F800000


@pytest.mark.parametrize("fmt,tensor_scale,e8m0", [
    ("mxfp4", None, "ocp"), ("mxfp4", None, "bits"), ("mxfp4", None, "ggml"),
    ("nvfp4", None, None), ("nvfp4", 0.37, None), ("nvfp4", 1 / 2688, None)])
@pytest.mark.parametrize("order", fp4ref.NIBBLE_ORDERS)
def test_identity_input_gives_the_dequantized_weight(fmt, tensor_scale, e8m0, order):
    # y = I @ W^T = W^T: each output is one weight plus signed zeros, so exactly the value
    # fp4ref.dequantize gives (a -0 weight comes back +0: other terms are +0). Scale bytes
    # avoid values that decode to infinities (0 * inf would make whole rows NaN).
    rng = np.random.default_rng(3)
    k = 2 * BLOCK[fmt]
    blocks = rng.integers(0, 256, (6, k // 2), dtype=np.uint8)
    mx_scales = np.array([0, 1, 2, 110, 127, 140, 252], np.uint8)
    scales = rng.choice(mx_scales, (6, 2)).astype(np.uint8) if fmt == "mxfp4" else \
        rng.integers(0, 0x7F, (6, 2), dtype=np.uint8)
    kwargs = dict(format=fmt, tensor_scale=tensor_scale, nibble_order=order, e8m0_decode=e8m0)
    expected = bits(fp4ref.dequantize(blocks, scales, **kwargs)).T.copy()
    expected[expected == 0x80000000] = 0
    for mode in MODES:
        got = ops.linear(np.eye(k, dtype=np.float32), (blocks, scales), accumulate=mode,
                         **kwargs)
        assert np.array_equal(bits(got), expected)
    python = ops.linear(np.eye(k, dtype=np.float32)[:3], (blocks, scales), backend="python",
                        **kwargs)
    assert np.array_equal(bits(python), expected[:3])


def test_layers_and_layouts_give_the_same_result():
    rng = np.random.default_rng(4)
    blocks = rng.integers(0, 256, (2, 6, 4, 16), dtype=np.uint8)  # gpt-oss [E, N, K/32, 16]
    scales = rng.integers(110, 140, (2, 6, 4), dtype=np.uint8)
    flat = blocks.reshape(2, 6, 64)
    x = rng.standard_normal((3, 128)).astype(np.float32)
    indices = np.array([[1, 0], [1, 1], [0, 1]])
    plain = bits(ops.moe_linear(x, (flat, scales), indices))
    assert np.array_equal(bits(ops.moe_linear(x, (blocks, scales), indices)), plain)
    layer = QuantizedLayer(flat, fp4ref.swizzle(scales, "128x4"), scale_layout="128x4")
    assert np.array_equal(bits(ops.moe_linear(x, layer, indices)), plain)
    split = fp4ref.pack(fp4ref.unpack(flat), "split-half")
    assert np.array_equal(
        bits(ops.moe_linear(x, (split, scales), indices, nibble_order="split-half")), plain)
    bf16 = x.astype("bfloat16")
    assert np.array_equal(bits(ops.moe_linear(bf16, layer, indices)),
                          bits(ops.moe_linear(bf16.astype(np.float32), layer, indices)))


def test_linear_takes_leading_dimensions_and_the_python_backend():
    rng = np.random.default_rng(5)
    blocks = rng.integers(0, 256, (3, 16), dtype=np.uint8)
    scales = rng.integers(120, 130, (3, 1), dtype=np.uint8)
    x = rng.standard_normal((2, 2, 32)).astype(np.float32)
    bias = rng.standard_normal(3).astype(np.float32)
    for mode in MODES:
        got = ops.linear(x, (blocks, scales), bias, accumulate=mode)
        assert got.shape == (2, 2, 3)
        python = ops.linear(x, (blocks, scales), bias, accumulate=mode, backend="python")
        assert np.array_equal(bits(got), bits(python))
    assert ops.linear(np.zeros((0, 32), np.float32), (blocks, scales)).shape == (0, 3)


def test_quantize_results_are_weights():
    rng = np.random.default_rng(6)
    weight = rng.standard_normal((4, 64)).astype(np.float32)
    q = fp4ref.quantize(weight, format="nvfp4")
    x = rng.standard_normal((2, 64)).astype(np.float32)
    expected = ops.linear(x, (q.blocks, q.scales), format="nvfp4",
                          tensor_scale=q.tensor_scale, nibble_order=q.nibble_order)
    assert np.array_equal(bits(ops.linear(x, q)), bits(expected))


W2 = (np.zeros((3, 16), np.uint8), np.zeros((3, 1), np.uint8))  # [N=3, K=32]
W3 = (np.zeros((4, 3, 16), np.uint8), np.zeros((4, 3, 1), np.uint8))  # [E=4, N=3, K=32]
X2 = np.zeros((2, 32), np.float32)


@pytest.mark.parametrize(
    "indices,message",
    [
        (np.array([[0, 4], [1, 2]]), r"in \[0, 4\) for w of 4 experts; found 4"),
        (np.array([[0, -1], [1, 2]]), "found -1"),
        (np.array([[0, 2**40], [1, 2]], np.uint64), "found 1099511627776"),
        (np.array([[0, 1, 2]]), r"shape \[T, topk\] = \[2, topk\]"),
        (np.array([0, 1]), r"got shape \(2,\)"),
        (np.zeros((2, 2, 1), np.int64), r"got shape \(2, 2, 1\)"),
    ],
)
def test_bad_indices_are_refused_before_any_kernel(indices, message):
    with pytest.raises(ValueError, match=message):
        ops.moe_linear(X2, W3, indices)


@pytest.mark.parametrize("indices", [np.zeros((2, 2), np.float32), np.zeros((2, 2), bool),
                                     [[0.0, 1.0], [1.0, 2.0]], "01"])
def test_non_integer_indices_are_refused(indices):
    with pytest.raises(TypeError, match="indices must be an integer array"):
        ops.moe_linear(X2, W3, indices)


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: ops.moe_linear(np.zeros((2, 3, 32), np.float32), W3, np.zeros((2, 2), int)),
         ValueError, r"\[T, topk\] = \[2, 3\]"),
        (lambda: ops.linear(X2.astype(np.float64), W2), TypeError, "cast float64 to float32"),
        (lambda: ops.linear(np.zeros((2, 64), np.float32), W2), ValueError, "K = 32"),
        (lambda: ops.linear(np.float32(1), W2), ValueError, "x must have shape"),
        (lambda: ops.linear(X2, W2, np.zeros(4, np.float32)), ValueError,
         r"bias must have shape \(3,\)"),
        (lambda: ops.moe_linear(X2, W3, np.zeros((2, 1), int), np.zeros(3, np.float32)),
         ValueError, r"bias must have shape \(4, 3\)"),
        (lambda: ops.linear(X2, W3), ValueError, r"shape \[N, K\]; got one of shape \(4, 3, 32\)"),
        (lambda: ops.moe_linear(X2, W2, np.zeros((2, 1), int)), ValueError, r"\[E, N, K\]"),
        (lambda: ops.linear(X2, W2[0]), TypeError, "w must be a quantized weight"),
        (lambda: ops.linear(X2, QuantizedLayer(*W2), format="nvfp4"), TypeError,
         "carries its own"),
        (lambda: ops.linear(X2, W2, accumulate="float64"), ValueError, "accumulate must be one"),
        (lambda: ops.linear(X2, W2, backend="gpu"), ValueError, "backend must be one of"),
        (lambda: ops.linear(X2, W2, format="nvfp4"), ValueError, r"scales.shape\[-1\] must be"),
        (lambda: ops.linear(X2, (W2[0].astype(np.int8), W2[1])), TypeError, "blocks must be"),
        (lambda: ops.linear(X2, W2, tensor_scale=2.0), ValueError, "tensor_scale applies"),
    ],
)
def test_bad_arguments_are_refused(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_bench_ops_runs_on_a_small_layer(capsys):
    from fp4ref import cli

    assert cli.main(["bench", "ops", "--size", "64", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "moe_linear" in out and "dequantize + numpy matmul" in out
