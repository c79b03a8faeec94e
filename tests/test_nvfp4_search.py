"""The division-free NVFP4 blocks (fp4ref.kernels.cpu.simd.nvfp4_search) against the oracle and
against the scalar numba search they replace, on blocks built to hit every decision edge:
exact E2M1 ties at each divisor, their float32 neighbours, zeros, subnormals, huge values,
blocks that keep the start scale, and many random blocks with small-integer values."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

import fp4ref
from fp4ref.kernels import elements, optimal
from fp4ref.kernels import scale_rules as k
from fp4ref.kernels.cpu.quantize import encode_block
from fp4ref.kernels.cpu.simd.nvfp4_search import (
    TAIL,
    WIDTH,
    WINDOW,
    count_at_most,
    counting_table,
    decision_table,
    decision_threshold,
    open_chunk,
    open_searches,
    range_minimum,
    start_breakpoints,
    tail_minimum,
)
from fp4ref.kernels.scalar import e4m3_decode

from .helpers import around, kernel_options

#: The clamp bounds of a profile without a clamp, and its zero-block arguments, as the
#: translation gives them: (clamp_low, clamp_high, zero_block, zero_block_scale).
_OCP = kernel_options("nvfp4")
NO_CLAMP = (_OCP.clamp_low, _OCP.clamp_high)
NO_ZERO_BLOCK = (_OCP.zero_block, _OCP.zero_block_scale)

# NVFP4 profiles whose blocks take the division-free path (no zero-block scale, division;
# not mlx, whose elements are a division then a multiply and which has no search).
FAST_PROFILES = ("qwantize", "ocp", "flashinfer", "ggml")  # comfy, vllm: their own kernels
MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)
E4M3 = np.array([e4m3_decode(b) for b in range(127)], np.float32)


def divisor_sample():
    """float32 divisors: every E4M3 value, E4M3 values times awkward tensor scales,
    subnormal and huge ones, and zero."""
    rng = np.random.default_rng(5)
    odd = E4M3[1:, None] * np.array([1 / 3, 0.7, 1e-30, 3e30], np.float32)
    return np.concatenate([E4M3, odd.ravel(), rng.uniform(1e-3, 1e3, 200).astype(np.float32),
                           np.float32([1e-45, 1e-40, 3e38, 0.0])]).astype(np.float32)


@pytest.mark.parametrize("tie", [0, 1, 2])
def test_decision_thresholds_are_the_division(tie):
    """float32(a / d) > t exactly when a > T(d), for a at and around each tie a = m d, with
    the thresholds as the kernels get them (decision_table, compiled as they are)."""
    sample = divisor_sample()
    for first in range(0, len(sample), 256):
        divisors = sample[first:first + 256].astype(np.float64)
        table = decision_table(divisors, len(divisors) - 1, tie)
        for b, d in enumerate(divisors.astype(np.float32)):
            for k_ in range(7):
                t = elements.THRESHOLDS[tie, k_]
                threshold = table[k_, b + WINDOW]
                assert threshold == decision_threshold(float(t), float(d))
                middle = (np.float64(t) + np.float64(np.nextafter(t, np.float32(np.inf)))) / 2
                with np.errstate(all="ignore"):
                    points = np.float32([threshold, middle * np.float64(d), t * d,
                                         MIDPOINTS[k_] * d])
                    a = np.abs(np.concatenate([around(points, 3), np.float32([0.0, np.inf])]))
                    expected = np.float32(a) / d > t
                assert np.array_equal(a > threshold, expected), (d, t)


@njit(cache=True)
def candidate_and_block_errors(x, divisors, table, tie, columns, sse, expected):
    """Every block's SSE at each column ``columns[b]..+15`` (a one-column range of
    range_minimum, or of tail_minimum for odd blocks) and block_error at those bytes."""
    magnitudes = np.empty(16, np.float32)
    terms = np.empty(16)
    for b in range(x.shape[0]):
        for i in range(16):
            magnitudes[i] = abs(x[b, i])
        for c in range(columns[b], columns[b] + WINDOW):
            if b % 2:
                error, at = tail_minimum(magnitudes, 0, table, c - c % TAIL, c, c + 1)
            else:
                error, at = range_minimum(magnitudes, 0, table, c - c % 4, c, c + 1)
            sse[b, c] = error if at == c else np.nan
            expected[b, c] = optimal.block_error(x[b], divisors[c - WINDOW], False, tie, 16, terms)


@pytest.mark.parametrize("tie", [0, 1, 2])
def test_candidate_errors_are_block_errors_at_the_decision_points(tie):
    """Elements exactly at (and next to) the candidates' decision thresholds."""
    rng = np.random.default_rng(tie)
    divisors = np.array([k.nvfp4_divisor(b, 1, 0.37)[0] for b in range(256)])
    table = decision_table(divisors, 126, tie)
    count = 4000
    columns = rng.integers(WINDOW, 127 + WINDOW - 15, count)
    byte = columns[:, None] + rng.integers(0, 16, (count, 16))
    x = table[rng.integers(0, 7, (count, 16)), byte]
    shift = rng.integers(-1, 2, (count, 16))
    x = np.where(shift > 0, np.nextafter(x, np.float32(np.inf)),
                 np.where(shift < 0, np.nextafter(x, np.float32(0)), x))
    x = (x * np.where(rng.random((count, 16)) < 0.5, -1, 1)).astype(np.float32)
    sse = np.zeros((count, WIDTH), np.float32)
    expected = np.zeros((count, WIDTH), np.float32)
    candidate_and_block_errors(x, divisors, table, tie, columns, sse, expected)
    assert np.array_equal(sse, expected)
    e0, s_min, s_max, expected = searches_and_bounds(x, columns - WINDOW, divisors, table, tie)
    assert np.array_equal(e0, expected[:, 0])
    assert np.array_equal(s_min, expected[:, 1]) and np.array_equal(s_max, expected[:, 2])


@njit(cache=True)
def chunks_opened(x, energies, divisors, table, tie, lows, picks, sse, out):
    """open_chunk for each block over columns lows[b]..lows[b] + 23, with E0 the scalar
    SSE (block_error) at column lows[b] + 16 + picks[b], or just below it for odd blocks;
    the scalar SSEs of the 24 columns to ``sse``."""
    magnitudes = np.empty(16, np.float32)
    terms = np.empty(16)
    for b in range(x.shape[0]):
        for i in range(16):
            magnitudes[i] = abs(x[b, i])
        for c in range(24):
            sse[b, c] = optimal.block_error(x[b], divisors[lows[b] + c - WINDOW], False, tie, 16,
                                      terms)
        e0 = sse[b, 16 + picks[b]]
        if b % 2:
            e0 = np.nextafter(e0, np.float32(0))
        error, at, first, stop = open_chunk(magnitudes, 0, table, lows[b], lows[b] + 24, e0,
                                            energies[b])
        out[b, 0] = error
        out[b, 1] = at
        out[b, 2] = first
        out[b, 3] = stop
        out[b, 4] = e0


@pytest.mark.parametrize("tie", [0, 1, 2])
@pytest.mark.parametrize("tensor", [1.0, 0.37, None])
def test_open_chunk_rules_out_only_candidates_above_the_best(tie, tensor):
    """Every candidate open_chunk leaves out (eight to sixteen columns above the chunk) has
    a scalar SSE above the best so far, min(E0, the chunk's smallest); E0 is set at or just
    below the SSE of one of them, so a bound above the true SSE would show. The chunk's
    minimum is range_minimum's. Divisors growing by 1.1 a byte (``tensor`` None) never
    double in eight bytes: nothing may be ruled out there."""
    rng = np.random.default_rng(30 + tie)
    x = np.concatenate([edge_blocks(), sample_blocks(6_000, seed=40 + tie),
                        tie_blocks(rng, 2_000)])
    if tensor is None:
        divisors = np.float32(1.1) ** np.arange(256, dtype=np.float32) * np.float32(0.01)
        divisors = divisors.astype(np.float64)
        start = np.searchsorted(divisors[1:127], np.abs(x).max(axis=1) / 6) + 1
    else:
        divisors = np.array([k.nvfp4_divisor(b, 1, tensor)[0] for b in range(256)])
        amax = np.abs(x).max(axis=1).astype(np.float64)
        start = np.array([k.nvfp4_block_scale(a, 1, tensor, *NO_CLAMP, *NO_ZERO_BLOCK)
                          for a in amax])
    table = decision_table(divisors, 126, tie)
    lows = np.clip(start - rng.integers(2, 14, len(x)), 1, 126 - 23) + WINDOW
    picks = rng.integers(0, 8, len(x))
    sse = np.empty((len(x), 24), np.float32)
    out = np.empty((len(x), 5))
    chunks_opened(x, energies_of(x), divisors, table, tie, lows, picks, sse, out)
    first = np.nanargmin(np.where(np.isnan(sse[:, :16]), np.inf, sse[:, :16]), axis=1)
    smallest = sse[np.arange(len(x)), first]
    finite = np.isfinite(smallest)
    assert np.array_equal(out[finite, 0], smallest[finite])
    assert np.array_equal(out[finite, 1], (lows + first)[finite])
    best = np.fmin(out[:, 4], out[:, 0])
    column = lows[:, None] + 16 + np.arange(8)
    left = (column < out[:, 2:3]) | (column >= out[:, 3:4])
    assert left.sum() > len(x) if tensor else not left.any()  # (ruling out happens)
    assert np.all(sse[:, 16:][left] > np.repeat(best[:, None], 8, axis=1)[left])


@njit(cache=True)
def searches_opened(x, starts, table, e0s, energies, s_mins, s_maxs, magnitudes):
    for row in range(0, x.shape[0], 16):
        open_searches(x, row, starts, table, magnitudes, e0s, energies, s_mins, s_maxs, row)


def energies_of(x):
    """Each block's float32 sum of its float32 squares, added in element order from 0
    (Inf where it overflows)."""
    with np.errstate(over="ignore"):
        squares = np.square(x.astype(np.float32))
        total = np.zeros(len(x), np.float32)
        for i in range(x.shape[1]):
            total = (total + squares[:, i]).astype(np.float32)
    return total


@njit(cache=True)
def bounds_expected(x, starts, divisors, tie, expected):
    """E0, s_min, s_max of the scalar steps; Inf, -Inf for a block keeping its start."""
    terms = np.empty(16)
    ys = np.empty(16)
    for b in range(x.shape[0]):
        e0 = optimal.block_error(x[b], divisors[starts[b]], False, tie, 16, terms)
        keep, s_min, s_max = optimal.search_bounds(x[b], e0, 16, terms, ys)
        expected[b, 0] = e0
        expected[b, 1] = np.inf if keep else s_min
        expected[b, 2] = -np.inf if keep else s_max


def searches_and_bounds(x, starts, divisors, table, tie):
    """open_searches (16 blocks a call, x padded with zero blocks) and the scalar steps."""
    count = -(-len(x) // 16) * 16
    padded = np.zeros((count, 16), np.float32)
    padded[:len(x)] = x
    starts = np.resize(starts, count).astype(np.int64)
    e0s, energies, s_mins, s_maxs = (np.empty(count, np.float32) for _ in range(4))
    magnitudes = np.empty(16 * count, np.float32)
    searches_opened(padded, starts, table, e0s, energies, s_mins, s_maxs, magnitudes)
    assert np.array_equal(magnitudes.reshape(count, 16), np.abs(padded))
    assert np.array_equal(energies.view(np.uint32), energies_of(padded).view(np.uint32))
    expected = np.empty((count, 3), np.float32)
    bounds_expected(padded, starts, divisors, tie, expected)
    return e0s[:len(x)], s_mins[:len(x)], s_maxs[:len(x)], expected[:len(x)]


@pytest.mark.parametrize("tie", [0, 1, 2])
def test_open_searches_equal_the_scalar_bounds(tie):
    """E0, s_min and s_max of 16 blocks a call (transposed, sorted by a network) against
    block_error and search_bounds, at the recipe's start byte and at bytes around it."""
    rng = np.random.default_rng(10 + tie)
    x = np.concatenate([edge_blocks(), sample_blocks(12_000, seed=tie)])
    divisors = np.array([k.nvfp4_divisor(b, 0, 1.0)[0] for b in range(256)])
    table = decision_table(divisors, 126, tie)
    amax = np.abs(x).max(axis=1)
    starts = np.array([k.nvfp4_block_scale(float(a), 0, 1.0, *NO_CLAMP, *NO_ZERO_BLOCK)
                       for a in amax])
    starts = np.clip(starts + rng.integers(-3, 4, len(x)) * (rng.random(len(x)) < 0.3), 1, 126)
    e0, s_min, s_max, expected = searches_and_bounds(x, starts, divisors, table, tie)
    assert np.array_equal(e0, expected[:, 0])
    assert np.array_equal(s_min, expected[:, 1]) and np.array_equal(s_max, expected[:, 2])


@pytest.mark.parametrize("recipe, tensor", [(0, 1.0), (1, 0.37), (3, 2.9), (1, 1e-20)])
def test_start_breakpoints_give_the_block_scale(recipe, tensor):
    points = start_breakpoints(recipe, tensor, *NO_CLAMP)
    finite = points[1:][np.isfinite(points[1:])]
    amax = np.concatenate([finite, np.nextafter(finite, np.float32(0)),
                           np.nextafter(finite, np.float32(np.inf)),
                           np.float32([0.0, 1e-45, 3e38, np.inf])])
    for a in amax:
        assert (points[1:] <= a).sum() == k.nvfp4_block_scale(float(a), recipe, tensor, *NO_CLAMP,
                                                               *NO_ZERO_BLOCK)


@njit(cache=True)
def counts_at_most(table, queries, out):
    for i in range(queries.size):
        out[i] = count_at_most(table, queries[i])


@pytest.mark.parametrize("recipe, tensor", [(0, 1.0), (1, 0.37), (3, 2.9), (1, 1e-20)])
def test_counting_tables_count_like_searchsorted(recipe, tensor):
    """count_at_most against numpy's searchsorted (side="right") over the float32 bits, for
    the start breakpoints and divisors the kernel counts, and for values with long runs of
    equal entries, zeros, Inf and NaN; queried at every value, its neighbours and the
    bucket edges."""
    rng = np.random.default_rng(recipe)
    divisors = np.float32([k.nvfp4_divisor(b, recipe, tensor)[0] for b in range(1, 127)])
    runs = np.sort(np.float32(np.r_[np.zeros(40), np.full(30, 2.0), rng.uniform(0, 9, 50)]))
    for values in (start_breakpoints(recipe, tensor, *NO_CLAMP)[1:], divisors, runs,
                   np.float32([0.0, 1e-45, 3e38, np.inf, np.nan, np.nan])):
        table = counting_table(values)
        bits = values.view(np.uint32)
        finite = bits[bits <= 0x7F800000].astype(np.int64)
        edges = np.arange(0, 0x7F8 + 1, 7, dtype=np.int64) << 20
        queries = np.unique(np.clip(np.r_[finite, finite - 1, finite + 1, edges, edges - 1,
                                          0, 0x7F800000], 0, 0x7F800000)).astype(np.uint32)
        out = np.empty(queries.size, np.int64)
        counts_at_most(table, queries, out)
        assert np.array_equal(out, np.searchsorted(bits, queries, side="right"))


def tie_blocks(rng, count):
    """Blocks whose values are exact E2M1 ties (m d for a midpoint m and an E4M3 d) and
    their float32 neighbours, mixed with zeros, so that candidate errors tie too."""
    d = E4M3[rng.integers(1, 127, (count, 16))].astype(np.float64)
    ties = np.float32(np.float64(MIDPOINTS)[rng.integers(0, 7, (count, 16))] * d)
    shift = rng.integers(-1, 2, (count, 16))
    ties = np.where(shift > 0, np.nextafter(ties, np.float32(np.inf)),
                    np.where(shift < 0, np.nextafter(ties, np.float32(0)), ties))
    ties[rng.random((count, 16)) < 0.15] = 0.0
    return (ties * np.where(rng.random((count, 16)) < 0.5, -1, 1)).astype(np.float32)


def sample_blocks(count, seed=0):
    """Blocks from several distributions: normal, heavy-tailed, small integers times powers
    of two (exact ties), exact E2M1 ties, subnormal and huge scales, constant blocks."""
    rng = np.random.default_rng(seed)
    part = count // 6
    normal = rng.standard_normal((part, 16)).astype(np.float32)
    heavy = rng.standard_t(2, (part, 16)).astype(np.float32)
    integers = np.ldexp(rng.integers(-12, 13, (part, 16)),
                        rng.integers(-8, 6, (part, 1))).astype(np.float32)
    scaled = (rng.standard_normal((part, 16))
              * np.float32(10.0) ** rng.integers(-44, 38, (part, 1))).astype(np.float32)
    constant = np.repeat(rng.choice(np.float32([0.0, -0.0, 1.0, 6.0, 1e-40, 448.0]),
                                    (part, 1)), 16, axis=1)
    blocks = [normal, heavy, integers, scaled, constant, tie_blocks(rng, count - 5 * part)]
    return np.concatenate(blocks).astype(np.float32)


@njit(cache=True)
def scalar_reference(x, options, scales, packed):
    """The scalar numba steps (division per element, clip test, one candidate at a time)."""
    recipe, tensor, tie = options.nvfp4_recipe, options.tensor_operand, options.rounding
    divisors = np.empty(256)
    for b in range(256):
        divisors[b] = k.nvfp4_divisor(b, recipe, tensor)[0]
    terms = np.empty(16)
    ys = np.empty(16)
    for blk in range(x.shape[0]):
        amax = 0.0
        for i in range(16):
            amax = max(amax, abs(float(x[blk, i])))
        start = k.nvfp4_block_scale(amax, recipe, tensor, options.clamp_low,
                                    options.clamp_high, options.zero_block,
                                    options.zero_block_scale)
        scale = optimal.search(x[blk], start, divisors[start], divisors, 1, 126, False, tie, 16,
                         terms, ys)
        scales[blk] = scale
        encode_block(x[blk], divisors[scale], False, tie, options.zero_sign,
                     options.nibble_order, packed[blk])


@pytest.mark.parametrize("optimal", [False, True])
@pytest.mark.parametrize("profile", fp4ref.profiles())
def test_fast_path_is_taken(profile, optimal):
    """The profiles the tests here call fast reach the division-free kernel path, from the
    argument mapping quantize itself uses; the others do not."""
    from fp4ref import backends
    from fp4ref.kernels.options import QuantizeOptions
    from fp4ref.quantize import _tensor_scales

    prof = fp4ref.profiles()[profile]
    searchless = prof.nvfp4_recipe in ("torchao", "comfy", "vllm", "mlx") or (
        prof.nvfp4_scale_rule is not None)  # quantize refuses a search of these
    if prof.nvfp4_recipe is None or (optimal and searchless):
        pytest.skip(f"{profile} has no NVFP4 {'search' if optimal else 'quantizer'}")
    x = sample_blocks(64, seed=1)
    numba = backends.get("numba")
    operand = _tensor_scales(prof, None, lambda: numba.largest_magnitude(x.reshape(-1)))[0]
    rule = "optimal" if optimal else (prof.nvfp4_scale_rule or prof.nvfp4_recipe)
    options = QuantizeOptions("nvfp4", rule, prof, operand)
    scales, packed = np.empty(64, np.uint8), np.empty((64, 8), np.uint8)
    path = numba.quantize_blocks(x, options, scales, packed, np.zeros((0, 16, 16)))
    kernel = "nvfp4" if optimal else "nvfp4-rule"  # recipes compile no search code
    if options.ggml:  # ggml's conventions (no search): their own scalar kernel
        assert path == "nvfp4-ggml"
        return
    if not optimal and prof.nvfp4_recipe == "comfy":  # comfy-kitchen's NaN arithmetic
        assert path == "nvfp4-comfy"
        return
    if not optimal and prof.nonfinite == "modelopt":  # ModelOpt's NaN/Inf arithmetic
        assert path == "nvfp4-modelopt"
        return
    if not optimal and prof.nvfp4_recipe == "vllm":  # vLLM's ref_nvfp4_quant kernel
        assert path == "nvfp4-vllm"
        return
    if prof.nvfp4_scale_rule is not None:  # four-over-six: its own kernel
        assert path == "nvfp4-fouroversix"
        return
    assert path in (kernel, f"{kernel}-fast")
    assert (path == f"{kernel}-fast") == (profile in FAST_PROFILES)


@pytest.mark.parametrize("profile", FAST_PROFILES)
def test_fast_search_equals_the_scalar_search(profile):
    x = sample_blocks(40_000, seed=FAST_PROFILES.index(profile))
    q = fp4ref.quantize(x, format="nvfp4", profile=profile, scale_rule="optimal",
                        scale_layout="linear")
    prof = fp4ref.profiles()[profile]
    tensor = 1.0 if q.tensor_scale is None else float(q.tensor_scale)
    if prof.tensor_scale_direction == "encode" and q.tensor_scale is not None:
        tensor = float(q.stored_tensor_scale)
    scales = np.empty(len(x), np.uint8)
    packed = np.empty((len(x), 8), np.uint8)
    options = kernel_options("nvfp4", profile, "optimal", tensor, scale_layout="linear")
    scalar_reference(x, options, scales, packed)
    assert np.array_equal(np.asarray(q.scales).ravel(), scales)
    assert np.array_equal(np.asarray(q.blocks).reshape(len(x), 8), packed)


def edge_blocks():
    """Hand-made blocks: ties at every midpoint for several divisors, zeros, subnormals,
    huge values, a block keeping its start scale, equal candidate errors."""
    blocks = []
    for d in (E4M3[40], E4M3[56], E4M3[57], E4M3[100], E4M3[126], E4M3[3]):
        ties = np.float32(np.float64(MIDPOINTS) * np.float64(d))
        row = np.concatenate([ties, np.nextafter(ties, np.float32(0)), [6 * d, 0.0]])
        blocks += [row, -row[::-1]]
    blocks += [np.zeros(16), np.full(16, -0.0), np.full(16, 1e-45), np.full(16, 3e38),
               np.r_[np.full(15, 1e-40), 1.0], np.r_[np.zeros(15), 6.0], np.full(16, 2.0),
               np.r_[np.full(8, 1.0), np.full(8, 3.0)], np.r_[1e30, np.full(15, 1.0)]]
    return np.array(blocks, np.float32)


@pytest.mark.parametrize("profile", FAST_PROFILES)
def test_edge_blocks_equal_the_oracle(profile):
    x = np.concatenate([edge_blocks(), sample_blocks(240, seed=9)])
    a = fp4ref.quantize(x, format="nvfp4", profile=profile, scale_rule="optimal",
                        backend="python")
    b = fp4ref.quantize(x, format="nvfp4", profile=profile, scale_rule="optimal")
    assert np.array_equal(a.scales, b.scales) and np.array_equal(a.blocks, b.blocks)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.floats(-1e4, 1e4, width=32) | st.sampled_from(
           [0.0, -0.0, 0.25, 0.75, 2.5, 5.0, 6.0, 1e-45, 1e-40]), min_size=32, max_size=32),
       exponent=st.integers(-40, 30), profile=st.sampled_from(FAST_PROFILES),
       rule=st.sampled_from([None, "optimal"]))
def test_random_blocks_equal_the_oracle(values, exponent, profile, rule):
    x = np.ldexp(np.array(values, np.float32), exponent).astype(np.float32).reshape(2, 16)
    a = fp4ref.quantize(x, format="nvfp4", profile=profile, scale_rule=rule, backend="python")
    b = fp4ref.quantize(x, format="nvfp4", profile=profile, scale_rule=rule)
    assert np.array_equal(a.scales, b.scales) and np.array_equal(a.blocks, b.blocks)


@pytest.mark.parametrize("profile", FAST_PROFILES)
@pytest.mark.parametrize("rule", [None, "optimal"])
def test_zero_and_infinite_tensors_equal_the_oracle(profile, rule):
    """A zero tensor scale makes the start quotient 0 / 0 (NaN scale): not a monotone start."""
    for x in (np.zeros((2, 16), np.float32), np.full((2, 16), np.inf, np.float32)):
        a = fp4ref.quantize(x, format="nvfp4", profile=profile, scale_rule=rule,
                            backend="python")
        b = fp4ref.quantize(x, format="nvfp4", profile=profile, scale_rule=rule)
        assert np.array_equal(a.scales, b.scales) and np.array_equal(a.blocks, b.blocks)


@pytest.mark.parametrize("profile", FAST_PROFILES)
def test_nan_and_inf_blocks_among_searched_ones(profile):
    """NaN and Inf blocks inside groups of 16 searched blocks, and a last group of fewer
    than 16 (copied to the scratch tail), against the oracle (profiles whose tensor scale
    comes from the data get a NaN one and leave the division-free path)."""
    x = sample_blocks(307, seed=20 + FAST_PROFILES.index(profile))
    x[[3, 17, 300], [0, 15, 7]] = np.nan, np.inf, -np.inf
    x[18] = np.inf
    a = fp4ref.quantize(x, format="nvfp4", profile=profile, scale_rule="optimal",
                        backend="python")
    b = fp4ref.quantize(x, format="nvfp4", profile=profile, scale_rule="optimal")
    assert np.array_equal(a.scales, b.scales) and np.array_equal(a.blocks, b.blocks)
