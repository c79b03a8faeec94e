"""The vector MXFP4 optimal search (:mod:`fp4ref.kernels.cpu.simd.mx_search`) against the oracle
(hypothesis and hand-made adversarial blocks) and against the scalar numba search
(:func:`fp4ref.kernels.optimal.search`) on many random blocks of several families."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numba import njit

import fp4ref
from fp4ref.kernels import elements, optimal, options
from fp4ref.kernels import scale_rules as k
from fp4ref.kernels.cpu import quantize as kernels
from fp4ref.kernels.cpu.simd import mx_search
from fp4ref.profiles import PROFILES
from fp4ref.spec.elements import ZERO_SIGNS
from fp4ref.spec.nibbles import NIBBLE_ORDERS
from fp4ref.spec.rounding import TIE_RULES
from fp4ref.spec.scale_rules import MX_RULES

from .helpers import kernel_options

E2M1 = np.array([0, .5, 1, 1.5, 2, 3, 4, 6], np.float32)
MIDPOINTS = np.array([.25, .75, 1.25, 1.75, 2.5, 3.5, 5], np.float32)
TIES = TIE_RULES
MAX32 = np.finfo(np.float32).max


def search_options(start_rule, first, tie, zero_sign="negative", order="low-first"):
    """The kernel options of the 16-lane search from ``start_rule`` (all names)."""
    return kernel_options(rule="optimal", scale_rule=start_rule, e8m0_min=first, rounding=tie,
                          zero_sign=zero_sign, nibble_order=order, sum_lanes=16)


def fast(x, *conventions):
    """(scales, packed) of the vector kernel."""
    scales = np.empty(x.shape[0], np.uint8)
    packed = np.empty((x.shape[0], 16), np.uint8)
    kernels.quantize_mx_optimal(x, x.view(np.uint32), search_options(*conventions), scales,
                                packed, np.zeros((0, 32, 32)))
    return scales, packed


def scalar(x, *conventions):
    """(scales, packed) of the scalar numba kernel (16 lanes, no Hessian)."""
    scales = np.empty(x.shape[0], np.uint8)
    packed = np.empty((x.shape[0], 16), np.uint8)
    kernels.quantize_mx(x, x.view(np.uint32), search_options(*conventions), scales, packed,
                        np.zeros((0, 32, 32)))
    return scales, packed


def families(rng, count):
    """Random blocks, ``count`` of each family, float32 [n, 32]."""
    shape = (count, 32)
    power = np.ldexp(np.float32(1), rng.integers(-30, 30, (count, 1))).astype(np.float32)
    normal = rng.standard_normal(shape)
    grid = rng.choice(np.concatenate([E2M1, MIDPOINTS]), shape)  # exact values and ties
    ulps = rng.integers(-2, 3, shape)  # ... and their float32 neighbours
    near = np.array(grid * power, np.float32).view(np.int32) + np.where(grid > 0, ulps, 0).astype(
        np.int32)
    sparse = np.where(rng.random(shape) < 0.8, 0, normal)
    outlier = normal.copy()
    outlier[:, 7] *= 1e3
    tiny = normal.copy()  # elements far below the rest: float64 prefix sums may round
    tiny[:, ::5] *= np.ldexp(1, -rng.integers(5, 40, (count, 1)))
    wide = normal * np.ldexp(1.0, rng.integers(-150, 124, (count, 1)))  # subnormal .. huge
    out = {
        "normal": normal, "cauchy": rng.standard_cauchy(shape), "laplace": rng.laplace(size=shape),
        "uniform": rng.uniform(-1, 1, shape), "ints": rng.integers(-12, 13, shape) * power,
        "grid": grid * rng.choice([-1, 1], shape) * power,
        "near": near.view(np.float32) * rng.choice([-1, 1], shape), "sparse": sparse,
        "outlier": outlier, "tiny": tiny, "wide": wide, "noise": normal * 1e-33,
        "huge": rng.uniform(0.5, 1, shape) * MAX32 * rng.choice([-1, 1], shape),
    }
    return {name: np.ascontiguousarray(v, np.float32) for name, v in out.items()}


@pytest.mark.parametrize("tie", TIES)
def test_vector_search_equals_scalar_search(tie):
    """Every start rule, first byte 0 and 1, on 13 families x 1500 random blocks."""
    rng = np.random.default_rng(TIES.index(tie))
    x = np.concatenate(list(families(rng, 1500).values()))
    for i, rule in enumerate(MX_RULES):
        for first, zero_sign, order in ((0, ZERO_SIGNS[i % 3], "low-first"),
                                        (1, "negative", NIBBLE_ORDERS[i % 3])):
            got = fast(x, rule, first, tie, zero_sign, order)
            want = scalar(x, rule, first, tie, zero_sign, order)
            assert np.array_equal(got[0], want[0]), (rule, first)
            assert np.array_equal(got[1], want[1]), (rule, first)


@njit
def _paths(bits, amaxes, starts, divisors, thresholds, out):
    """Which way :func:`mx_search.search_mx` goes for each block (see its body)."""
    for b in range(starts.shape[0]):
        start, index = starts[b], b * 32
        energy, e0, _, _ = mx_search.window_errors(bits, index, start, thresholds)
        exact, below1, below2, below3 = mx_search.window_sums(
            bits, index, np.float32(divisors[start + 1] / 4))
        fits = ((np.float32(below1) <= e0) + (np.float32(below2) <= e0)
                + (np.float32(below3) <= e0))
        low = mx_search.first_byte(optimal.lower_bound(amaxes[b], e0), 1)
        out[b] = (0 if energy <= e0 else 1 if not exact else 2 if low < start
                  else 3 if fits == 3 else 4 + fits)


def test_families_reach_every_path():
    """The random families take each path of :func:`mx_search.search_mx`: kept starts, the
    scalar fallback, the scan below and above the window, the window with 0, 1, 2 fits."""
    x = np.concatenate(list(families(np.random.default_rng(0), 1500).values()))
    top = (x.view(np.uint32) & 0x7FFFFFFF).max(axis=1)
    start = np.array([mx_search.start_byte(int(t), options.RULE_QWANTIZE) for t in top])
    inside = (start >= 1) & (start <= 252)
    assert not inside.all()
    paths = np.empty(inside.sum(), np.int64)
    _paths(x[inside].view(np.uint32), top[inside].view(np.float32).astype(float),
           start[inside], np.ldexp(1.0, np.arange(256) - 127), elements.THRESHOLDS[2], paths)
    assert np.bincount(paths, minlength=7).min() >= 10, np.bincount(paths)


@njit
def _search_both(x, bits, starts, first, tie, divisors, out):
    """out[b] = (vector search, scalar search) of block b from start byte ``starts[b]``."""
    terms, ys = np.empty(32), np.empty(32)
    thresholds = elements.THRESHOLDS[tie]
    for b in range(x.shape[0]):
        amax = float(np.abs(x[b]).max())
        start = starts[b]
        out[b, 0] = mx_search.search_mx(bits, b * 32, x[b], amax, start, first, thresholds, tie,
                                      divisors, terms, ys)
        out[b, 1] = optimal.search(x[b], start, divisors[start], divisors, first, 254, False,
                                   tie, 16, terms, ys)


def near_grid(rng, count, bytes_=(20, 230)):
    """Blocks of E2M1 values and midpoints (half the blocks all 0.25) times d, each moved by a few
    float32 ulps, with start byte d's: SSEs, energies and prefix sums a few ulps apart
    (noise blocks, k* = n, exact ties)."""
    byte = rng.integers(*bytes_, count)
    values = rng.choice(np.concatenate([E2M1, MIDPOINTS]), (count, 32))
    values[: count // 2] = 0.25  # SSE at d within ulps of the energy: noise, k* = n
    x = np.array(values * np.ldexp(1.0, byte - 127)[:, None], np.float32)
    ulps = rng.integers(-3, 4, x.shape).astype(np.int32) * (x != 0)
    signs = rng.choice(np.float32([-1, 1]), x.shape)
    return (x.view(np.int32) + ulps).view(np.float32) * signs, byte


@pytest.mark.parametrize("tie", range(3))
def test_vector_search_equals_scalar_search_from_any_start(tie):
    """The vector and scalar searches from starts around each block's own (and from
    0 and 253..255), so that every window position, the scan below and above it, noise
    blocks and k* = n occur."""
    rng = np.random.default_rng(10 + tie)
    x = np.concatenate(list(families(rng, 400).values()))
    natural = np.array([mx_search.start_byte(int(t), options.RULE_QWANTIZE)
                        for t in (x.view(np.uint32) & 0x7FFFFFFF).max(axis=1)])
    grid, grid_start = near_grid(rng, 20000)
    tiny, tiny_start = near_grid(rng, 5000, (0, 8))  # the smallest starts
    x = np.concatenate([np.repeat(x, 12, axis=0), grid, grid, tiny])
    offsets = np.tile(np.r_[-4:5, -200, 200, 300], natural.size)
    starts = np.concatenate([np.clip(np.repeat(natural, 12) + offsets, 0, 255), grid_start,
                             np.clip(grid_start + rng.integers(-3, 4, grid_start.size), 1, 254),
                             np.clip(tiny_start + rng.integers(-2, 4, tiny_start.size), 1, 254)])
    assert x.dtype == np.float32
    out = np.empty((x.shape[0], 2), np.int64)
    _search_both(x, x.view(np.uint32), starts, tie % 2, tie,
                 np.r_[np.ldexp(1.0, np.arange(255) - 127), np.nan], out)
    assert np.array_equal(out[:, 0], out[:, 1])


def blocks():
    """Adversarial float32 blocks: a mix of wide-range floats, small integers and E2M1
    values, midpoints and their neighbours (exact ties), zeros and subnormals, at one
    random power of two per block."""
    special = st.sampled_from([0.0, -0.0, 1e-45, 2.0**-127, 3.5, 6.0, 0.25, 5.0, 1.75])
    grid = st.sampled_from([float(v) for v in np.concatenate([E2M1, MIDPOINTS])])
    element = (st.floats(-8, 8, width=32) | st.integers(-12, 12).map(float) | grid | special)
    ulps = st.integers(-1, 1)
    return st.tuples(st.lists(st.tuples(element, ulps), min_size=32, max_size=32),
                     st.integers(-140, 120)).map(_block)


def _block(args):
    values, exponent = args
    bits = np.array([v for v, _ in values], np.float32).view(np.int32)
    bits += np.array([u if v != 0 else 0 for v, u in values], np.int32)  # float32 neighbours
    return (bits.view(np.float32) * 2.0**exponent).astype(np.float32).reshape(1, 32)


#: The profiles whose MXFP4 codes the optimal search can make (MLX's argmin has none).
SEARCHABLE = sorted(name for name, p in PROFILES.items() if p.element_rule == "nearest")


@given(x=blocks(), profile=st.sampled_from(SEARCHABLE), tie=st.sampled_from(TIES))
def test_vector_search_equals_oracle(x, profile, tie):
    """numba (the vector search: every profile sums in 16 lanes) = the plain-Python oracle,
    under each profile's start rule, zero sign and nibble order, and every tie rule."""
    a = fp4ref.quantize(x, profile=profile, scale_rule="optimal", rounding=tie, backend="python")
    b = fp4ref.quantize(x, profile=profile, scale_rule="optimal", rounding=tie, backend="numba")
    assert np.array_equal(a.scales, b.scales) and np.array_equal(a.blocks, b.blocks)


def hand_made():
    rows = {
        "zeros": np.zeros(32),
        "signed zeros": np.where(np.arange(32) % 2, -0.0, 0.0),
        "one value": np.eye(1, 32)[0] * 3.0,
        "subnormals": np.arange(32) * 2.0**-149,
        "noise (keeps start)": np.linspace(-1, 1, 32) * 1e-33,
        "exact at start and above (ties)": np.resize([0, 1, 2, 4, -4, -1], 32),
        "one step of 2 everywhere": np.resize([2, 4, 6, 8, 12], 32),
        "all equal": np.full(32, 0.3),
        "midpoints": np.resize(MIDPOINTS, 32),
        "near float32 max": np.linspace(0.5, 1, 32) * MAX32,
        "just below 2^128 / 6": np.full(32, 2.0**125 * 1.3),
        "tiny beside large (inexact sums)": np.resize([1.0, 1e-20, -2.5, 3e-9, 0.7], 32),
        "below-start candidates": np.resize([8.0, 1.9, 1.8, -1.7, 1.6, 1.5], 32),
        "uniform (start + 3)": np.linspace(-1, 1, 32),
        "amax just below a power of two": np.resize([np.nextafter(np.float32(8), 0), 1.0], 32),
    }
    return {name: np.array(row, np.float32).reshape(1, 32) for name, row in rows.items()}


@pytest.mark.parametrize("tie", TIES)
@pytest.mark.parametrize("profile", ["qwantize", "ocp", "mistralrs", "ggml", "modelopt"])
def test_hand_made_blocks(profile, tie):
    x = np.concatenate(list(hand_made().values()))
    for sign in (1, -1):
        a = fp4ref.quantize(sign * x, profile=profile, scale_rule="optimal", rounding=tie,
                            backend="python")
        b = fp4ref.quantize(sign * x, profile=profile, scale_rule="optimal", rounding=tie,
                            backend="numba")
        assert np.array_equal(a.scales, b.scales), list(hand_made())
        assert np.array_equal(a.blocks, b.blocks)


def test_ties_keep_the_earlier_scale():
    """SSE 0 at the start and at the next byte: the start stays (strict improvement)."""
    x = np.resize(np.float32([0, 1, 2, 4, -4, -1]), (1, 32))
    q = fp4ref.quantize(x, profile="qwantize", scale_rule="optimal")
    assert q.scales[0, 0] == 127  # floor(log2 4) - 2 + 127; 2^1 is as exact


def test_dispatch_to_vector_search(monkeypatch):
    """16 lanes without a Hessian never reach the scalar kernel."""
    def fail(*args):
        raise AssertionError("scalar search used")

    monkeypatch.setattr(kernels, "quantize_mx", fail)
    fp4ref.quantize(np.ones((1, 32), np.float32), profile="qwantize", scale_rule="optimal")


def test_start_byte_qwantize():
    """The closed form of :func:`mx_search.start_byte` at both ends of its mantissa range
    for every exponent (the rule is monotone in amax, so this covers all between) and
    around its edges."""
    for exponent in range(255):
        for mantissa in (0, 1, 0x7EFFFF, 0x7F0000, 0x7FFFFF):
            top = exponent << 23 | mantissa
            amax = float(np.uint32(top).view(np.float32))
            for rule in (options.RULE_QWANTIZE, options.RULE_FLOOR):
                assert mx_search.start_byte(top, rule) == k.mx_scale(amax, rule)


def test_first_byte():
    divisors = np.ldexp(1.0, np.arange(256) - 127)
    values = [0.0, 2.0**-149, 2.0**-128, 2.0**-127, 2.0**-126, 0.3, 1.0, 2.0**127, MAX32]
    values += [float(np.nextafter(np.float32(v), np.float32(s)))
               for v in values[1:-1] for s in (0, np.inf)]
    for value in values:
        for first in (0, 1, 2, 130):
            assert mx_search.first_byte(value, first) == optimal.first_at_least(
                divisors, first, 254, value), (value, first)


@njit
def _exactness(x, e0, bound):
    bits = x.view(np.uint32)
    return (mx_search.squares_sum_exactly(bits, 0, np.float32(e0)),
            mx_search.window_sums(bits, 0, np.float32(bound))[0])


@pytest.mark.parametrize("elements,exact", [
    ((1.0, 2.0**-12), True),  # squares 1 and 2^-24: exponent fields 127 and 103
    ((1.0, 0.75 * 2.0**-12), False),  # 1.125 * 2^-25: field 102, one too far
    ((1.0, 0.0, -0.0), True),  # zeros do not count
    ((1.0, 2.0**-80), True),  # a square below 2^-149 is 0
    ((1.0, 2.0**-70), False),  # 2^-140 is not: a subnormal, counted as field 1
    ((2.0**-51, 2.0**-70), True),  # 2^-102 (field 25) and a subnormal
    ((2.0**-50, 2.0**-70), False),
])
def test_exact_span(elements, exact):
    x = np.zeros(32, np.float32)
    x[3 : 3 + len(elements)] = elements
    assert _exactness(x, 1.0, 0.5) == (exact, exact)
    assert _exactness(x, x[4] ** 2, 0.5)[0]  # only the squares <= E0 matter
    assert _exactness(x, 1.0, x[4] / 4)[1]  # only those below 4 bound


@settings(max_examples=200)
@given(st.integers(-70, 0), st.integers(8, 16),
       st.lists(st.tuples(st.integers(0, 16), st.integers(0, 2**23 - 1)), min_size=32,
                max_size=32))
def test_exact_span_is_sufficient(base, spread, parts):
    """Whenever the check passes, the float64 sum of the squares in ascending order
    (the scalar search's prefix sums) is exact, so any other order gives it too.

    The exponents lie within ``spread`` (8..16) below a common base: the squares then span
    up to 33 binades, so many blocks pass the check and those just past it are drawn too
    (``assume`` discards the blocks that fail it)."""
    x = np.array([np.ldexp(1 + m / 2.0**23, base - e % (spread + 1)) for e, m in parts],
                 np.float32)
    squares = np.sort((x * x).astype(np.float64))
    assume(_exactness(x, np.inf, np.inf)[0])
    running = 0.0
    for i, square in enumerate(squares):
        running += square
        assert running == math.fsum(squares[: i + 1])
