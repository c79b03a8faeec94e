"""The GPU optimal search by SSE (:mod:`fp4ref.kernels.cuda.search`) bit for bit against the
numba CPU backend and the plain-Python oracle.

Blocks: N(0, 1) and the random families of :mod:`tests.test_quantize_search` (grids of E2M1
values and midpoints with their float32 neighbours, outliers, tiny elements beside large
ones, subnormal to huge scales), its hand-made blocks, the conformance probes (zeros, a
single nonzero, ties, denormals, float32 max, NaN and Inf blocks), and blocks whose SSE
bounds are tight (a candidate divisor equal to s_min or s_max). A few hundred blocks in
all: the simulator runs every thread in Python.
"""

import math
import warnings

import numpy as np
import pytest
from numba import cuda, float32

import fp4ref
from fp4ref.conformance import probes
from fp4ref.kernels import optimal
from fp4ref.kernels.cuda import search
from fp4ref.kernels.cuda.quantize import _threshold_rows
from fp4ref.kernels.cuda.search import sse_functions
from fp4ref.kernels.elements import THRESHOLDS
from fp4ref.kernels.optimal import merge_sort_pairs
from fp4ref.kernels.options import RECIPE_PLAIN, RULE_QWANTIZE
from fp4ref.kernels.scalar import e4m3_decode
from fp4ref.kernels.scale_rules import mx_scale, nvfp4_block_scale
from fp4ref.profiles import get as get_profile

from ..test_quantize_search import families, hand_made


@pytest.fixture(autouse=True)
def _quiet_overflow():
    with warnings.catch_warnings():  # the simulator computes float32 overflow in numpy
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _same(x, oracle=True, **options):
    """GPU (device in, device out) = numba CPU (= the oracle, if ``oracle``)."""
    want = fp4ref.quantize(x, backend="numba", scale_rule="optimal", **options)
    got = fp4ref.quantize(cuda.to_device(x), scale_rule="optimal", **options)
    scales, blocks = got.scales.copy_to_host(), got.blocks.copy_to_host()
    bad = np.flatnonzero((scales != want.scales).reshape(-1))
    assert bad.size == 0, (options, bad[:10], scales.reshape(-1)[bad[:10]],
                           want.scales.reshape(-1)[bad[:10]])
    assert np.array_equal(blocks, want.blocks), options
    if oracle:
        truth = fp4ref.quantize(x, backend="python", scale_rule="optimal", **options)
        assert np.array_equal(want.scales, truth.scales), options
        assert np.array_equal(want.blocks, truth.blocks), options


def _bounds(x: np.ndarray, divisors: np.ndarray) -> tuple[bool, float, float]:
    """The reference's (keeps start, s_min, s_max) of block ``x`` from the qwantize start
    (:func:`fp4ref.kernels.optimal.search_bounds`)."""
    terms, ys = np.empty(x.size), np.empty(x.size)
    start = _start(x.size, float(np.abs(x).max()))
    e0 = optimal.block_error(x, divisors[start], False, 2, 16, terms)
    return optimal.search_bounds(x, e0, 16, terms, ys)


def _tight(block: int, divisors: np.ndarray, first: int, last: int, count: int) -> np.ndarray:
    """``2 count`` blocks of ``block`` values whose SSE bounds meet a candidate: some divisor
    in ``first..last`` equals s_min (``count`` blocks) or s_max (the others), found among
    seeded random blocks of small integers (so the float32 sums are often exact) with
    largest magnitude 8."""
    rng = np.random.default_rng(block)
    candidates = divisors[first:last + 1]
    found = {"s_min": [], "s_max": []}
    while min(len(v) for v in found.values()) < count:
        x = rng.choice(np.float32([0, 1, 2, 3, 4, 5, 7]), block)
        x[rng.integers(block)] = 8
        x = (x * rng.choice([-1, 1], block)).astype(np.float32)
        keep, s_min, s_max = _bounds(x, divisors)
        for name, bound in (("s_min", s_min), ("s_max", s_max)):
            if not keep and np.any(candidates == bound) and len(found[name]) < count:
                found[name].append(x)
    return np.array(found["s_min"] + found["s_max"])


def _start(block: int, amax: float) -> int:
    """The qwantize profile's start byte of a block with largest magnitude ``amax``."""
    if block == 32:
        return mx_scale(amax, RULE_QWANTIZE)
    return nvfp4_block_scale(amax, RECIPE_PLAIN, 1.0, -math.inf, math.inf, False, 0.0)


MX_DIVISORS = np.ldexp(1.0, np.arange(256) - 127)
NV_DIVISORS = np.array([e4m3_decode(b) for b in range(256)])


def _mx_blocks() -> np.ndarray:
    """Random, hand-made, probe and tight MXFP4 blocks, float32 [n, 32]."""
    rng = np.random.default_rng(19)
    parts = [rng.standard_normal((64, 32)), *families(rng, 6).values(), *hand_made().values()]
    parts += [p.x.reshape(-1, 32) for p in probes.mxfp4()]
    parts.append(_tight(32, MX_DIVISORS, 1, 254, 6))
    return np.ascontiguousarray(np.concatenate(parts), np.float32)


def _nv_blocks() -> np.ndarray:
    """The same for NVFP4, float32 [n, 32] (two blocks of 16 a row)."""
    rng = np.random.default_rng(20)
    parts = [rng.standard_normal((32, 32)), *families(rng, 3).values(), *hand_made().values()]
    edge = np.concatenate([p.x.reshape(-1, 16) for p in probes.nvfp4()]
                          + [_tight(16, NV_DIVISORS, 1, 126, 6)])
    edge = np.concatenate([edge, np.zeros((len(edge) % 2, 16))])  # whole rows of two
    return np.ascontiguousarray(np.concatenate([*parts, edge.reshape(-1, 32)]), np.float32)


@pytest.mark.parametrize("n", [16, 32])
def test_merge_sort_network_sorts(n):
    """Every 0/1 input of n = 16 (so every input: Knuth's 0-1 principle), and random
    float32 values with ties for n = 32."""
    pairs = merge_sort_pairs(n)
    assert len(pairs) == {16: 63, 32: 191}[n]  # Batcher's network sizes
    if n == 16:
        v = ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(np.float32)
    else:
        v = np.random.default_rng(0).integers(-4, 5, (20000, n)).astype(np.float32)
    want = np.sort(v, axis=1)
    for i, j in pairs:
        v[:, i], v[:, j] = np.minimum(v[:, i], v[:, j]), np.maximum(v[:, i], v[:, j])
    assert np.array_equal(v, want)


def test_tight_blocks_meet_their_bounds():
    """Half the tight blocks have a candidate at s_min, half at s_max."""
    for block, divisors, first, last in ((32, MX_DIVISORS, 1, 254), (16, NV_DIVISORS, 1, 126)):
        x = _tight(block, divisors, first, last, 3)
        for i, row in enumerate(x):
            keep, s_min, s_max = _bounds(row, divisors)
            assert not keep and (s_min if i < 3 else s_max) in divisors[first:last + 1]


@pytest.mark.parametrize("profile", ["qwantize", "ocp"])
def test_mxfp4_search(profile):
    _same(_mx_blocks(), profile=profile)


@pytest.mark.parametrize("profile", ["qwantize", "ocp", "compressed-tensors"])
def test_nvfp4_search(profile):
    x = _nv_blocks()
    ts = None if profile == "qwantize" else 0.05
    _same(x, oracle=profile == "qwantize", format="nvfp4", profile=profile, tensor_scale=ts)


@pytest.mark.parametrize("lanes", [1, 8, 32])
@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_other_summation_orders(fmt, lanes):
    """torch's order for AVX2 (8 lanes), a plain sum, and 32 lanes (a plain sum for NVFP4's
    16 elements, one term a lane for MXFP4's 32)."""
    profile = get_profile("qwantize").with_options(sum_lanes=lanes)
    x = (_mx_blocks() if fmt == "mxfp4" else _nv_blocks())[::3]
    _same(np.ascontiguousarray(x), format=fmt, profile=profile)


def _steps(n, power_of_two, x, starts, table, limits, tie):
    """The GPU steps on each finite block ``x[b]``: its SSE at bytes ``starts[b] - 1 ..
    starts[b] + 3`` and its bounds (keeps start, s_min, s_max) from the reference's E0."""
    block_error, bounds = sse_functions(n, 16, tie, power_of_two)

    @cuda.jit
    def kernel(x, starts, table, limits, e0s, errors, keeps, lows, highs):
        b = cuda.grid(1)
        if b < x.shape[0]:
            row = cuda.local.array(n, float32)
            terms = cuda.local.array(n, float32)
            ys = cuda.local.array(n, float32)
            for i in range(n):
                row[i] = x[b, i]
            for k in range(5):
                byte = starts[b] - 1 + k
                errors[b, k] = block_error(row, byte, float32(table[byte]), terms, limits)
            keeps[b], lows[b], highs[b] = bounds(row, float32(e0s[b]), terms, ys)

    terms, ys = np.empty(n), np.empty(n)
    e0s = np.array([optimal.block_error(row, table[s], False, tie, 16, terms)
                    for row, s in zip(x, starts, strict=True)])
    errors = np.zeros((len(x), 5), np.float32)
    keeps, lows, highs = np.zeros(len(x), np.bool_), np.zeros(len(x)), np.zeros(len(x))
    kernel[1, len(x)](x, starts, table, limits, e0s, errors, keeps, lows, highs)
    want = np.array([[optimal.block_error(row, table[s - 1 + k], False, tie, 16, terms)
                      for k in range(5)] for row, s in zip(x, starts, strict=True)], np.float32)
    assert np.array_equal(errors.view(np.uint32), want.view(np.uint32))
    for b, row in enumerate(x):
        keep, low, high = optimal.search_bounds(row, e0s[b], 16, terms, ys)
        assert keeps[b] == keep, b
        if not keep:
            assert (lows[b], highs[b]) == (low, high), b


@pytest.mark.parametrize("saturated", [0, 4, 7])
@pytest.mark.parametrize("tie", [0, 1, 2, 3])
def test_mxfp4_steps(tie, saturated, monkeypatch):
    """block_error (|x| * 2^(127 - b), some thresholds by saturating FMAs) and bounds
    against the njit reference steps."""
    monkeypatch.setitem(search.SEARCH_SHAPE, "saturated", saturated)
    x = _mx_blocks()
    x = np.ascontiguousarray(x[np.isfinite(x).all(axis=1) & (np.abs(x).max(axis=1) > 0)][::2])
    starts = np.clip([_start(32, float(np.abs(row).max())) for row in x], 2, 251).astype(np.int64)
    _steps(32, True, x, starts, MX_DIVISORS, np.zeros(1, np.float32), tie)


@pytest.mark.parametrize("by_threshold", [True, False])
@pytest.mark.parametrize("tie", [0, 1, 2, 3])
def test_nvfp4_steps(tie, by_threshold):
    """block_error by decision thresholds (or by division: the table's rows marked
    unusable) and bounds against the njit reference steps."""
    x = _nv_blocks().reshape(-1, 16)
    x = x[np.isfinite(x).all(axis=1) & (np.abs(x).max(axis=1) > 0)][::4]
    starts = np.clip([_start(16, float(np.abs(row).max())) for row in x], 2, 122)
    limits, usable = _threshold_rows(RECIPE_PLAIN, 1.0, tie)
    # blocks of byte b's decision thresholds and the float32 above each, seen from b + 1
    edges = []
    for b in (2, 9, 40, 63, 64, 100, 121):
        t = limits[8 * b:8 * b + 7]
        edges.append(np.concatenate([t, np.nextafter(t, np.float32(np.inf)), [0, 0]]))
    x = np.ascontiguousarray(np.concatenate([x, np.array(edges, np.float32)]))
    starts = np.concatenate([starts, [3, 10, 41, 64, 65, 101, 122]]).astype(np.int64)
    assert usable and limits.reshape(256, 8)[1:127, 7].all()
    if not by_threshold:
        limits[7::8] = 0.0
    _steps(16, False, x, starts, NV_DIVISORS, limits, tie)


def test_above_is_a_comparison():
    """:func:`fp4ref.kernels.cuda.search.above` (one saturating FMA on a GPU) is ``y > t``
    for every tie rule's thresholds t and y at, beside and far from them, 0, the extremes
    and Inf."""
    t = np.unique(THRESHOLDS).astype(np.float32)
    near = np.concatenate([t, np.nextafter(t, np.float32(0)), np.nextafter(t, np.float32(9))])
    y = np.concatenate([near, np.float32([0, 2.0**-149, 1e-30, 0.5, 6, 7.9, 2.0**100,
                                          3e38, np.finfo(np.float32).max, np.inf])])
    ys, ts = (np.ascontiguousarray(v.astype(np.float32)) for v in np.meshgrid(y, t))
    scaled = (ts * np.float32(2.0**26)).astype(np.float32) * np.float32(-1)

    @cuda.jit
    def kernel(ys, scaled, out):
        i = cuda.grid(1)
        if i < ys.size:
            out[i] = search.above(ys[i], scaled[i])

    out = np.zeros(ys.size, np.float32)
    kernel[(ys.size + 127) // 128, 128](ys.reshape(-1), scaled.reshape(-1), out)
    assert np.array_equal(out, (ys > ts).reshape(-1).astype(np.float32))
