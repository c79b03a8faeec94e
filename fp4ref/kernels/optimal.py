"""The optimal scale search as numba scalar functions, the fast layer's twin of
:mod:`fp4ref.spec.optimal` (qwantize 0.1.1's search): block errors summed in float32 in
torch's lane order, the SSE bounds, and the scans by SSE or by ``r^T H r``.

Written in the numba subset so the CPU kernels (:mod:`.cpu.quantize`) and, compiled again,
the GPU search kernels (:mod:`.cuda.quantize`) call the same functions; :mod:`.cpu.simd`
has vector versions of the 16-lane searches that make the same decisions. float32 steps
are native float32 operations or float64 ones rounded by :func:`.scale_rules.f32`. The
sorting network of the CPU's vector search and the GPU's search (:func:`merge_sort_pairs`)
is here too.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .elements import E2M1_MAGNITUDES, THRESHOLDS, magnitude_code, quotient
from .scale_rules import f32
from .unfused import mul


def merge_sort_pairs(n: int) -> list[tuple[int, int]]:
    """The compare-exchange pairs ``(i, j)``, ``i < j``, of Batcher's odd-even merge sort of
    ``n`` values (a power of two), in order: putting each pair's two values in ascending
    order, one pair after the other, sorts any ``n`` values (Knuth, TAOCP 3, 5.3.4,
    Algorithm M; the tests check every 0/1 input of n = 16)."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


@njit(cache=True, error_model="numpy")
def lane_sum(terms, n, lanes):
    """float32 sum of ``terms[:n]`` (float32 values) in torch's CPU reduction order
    (:func:`fp4ref.spec.optimal.lane_sum`), in native float32 additions; returned as float64."""
    total = np.float32(0.0)
    if lanes <= 1 or n < lanes or n % lanes:
        for i in range(n):
            total = total + np.float32(terms[i])
        return float(total)
    if n == lanes:  # one term per lane (an NVFP4 block on AVX-512)
        for lane in range(lanes):
            total = total + np.float32(terms[lane])
        return float(total)
    if n == 2 * lanes:  # two terms per lane (an MXFP4 block on AVX-512)
        for lane in range(lanes):
            total = total + (np.float32(terms[lane]) + np.float32(terms[lane + lanes]))
        return float(total)
    for lane in range(lanes):
        partial = np.float32(terms[lane])
        for k in range(lane + lanes, n, lanes):
            partial = partial + np.float32(terms[k])
        total = total + partial
    return float(total)


@njit(cache=True, error_model="numpy")
def block_error(x, d, multiply, tie, lanes, terms):
    """qwantize's float32 block SSE at divisor ``d`` (``terms`` is scratch), in native
    float32 operations (each the IEEE float32 operation the oracle rounds to): the element's
    magnitude code by threshold counts, its value as 0.5 (c0 + c1 + c2 + c3) + (c4 + c5) +
    2 c6 (exact), then float32(q d), |x| - that, and its square."""
    n = x.shape[0]
    d32 = np.float32(d)
    t0, t1, t2, t3 = THRESHOLDS[tie, 0], THRESHOLDS[tie, 1], THRESHOLDS[tie, 2], THRESHOLDS[tie, 3]
    t4, t5, t6 = THRESHOLDS[tie, 4], THRESHOLDS[tie, 5], THRESHOLDS[tie, 6]
    half, two = np.float32(0.5), np.float32(2.0)
    for i in range(n):
        a = np.float32(abs(x[i]))
        y = a * d32 if multiply else a / d32
        value = (half * np.float32((y > t0) + (y > t1) + (y > t2) + (y > t3))
                 + np.float32((y > t4) + (y > t5)) + two * np.float32(y > t6))
        error = a - mul(value, d32)
        terms[i] = mul(error, error)
    return lane_sum(terms, n, lanes)


@njit(cache=True, error_model="numpy")
def lower_bound(amax, e0):
    """s_min = max((amax - sqrt(E0)) / 6, 0) in float32 steps (step 3 of the search)."""
    return max(f32(f32(amax - f32(math.sqrt(e0))) / 6.0), 0.0)


@njit(cache=True, error_model="numpy")
def search_bounds(x, e0, lanes, terms, ys):
    """(keeps start, s_min, s_max): steps 2 and 3 of the search (noise blocks, SSE bounds).

    k* counts the prefixes of the ascending squares whose float32-rounded float64 sum is
    <= E0. An element with float32(x^2) > E0 ends every prefix it is in (the sum is at
    least that square), and float32(x^2) grows with |x|, so only the elements with
    float32(x^2) <= E0 (a prefix of the sorted order) are sorted, by rank (branch-free;
    ``terms`` holds them sorted); y_(k*) is the next of them, or the smallest of the others.
    """
    n = x.shape[0]
    for i in range(n):
        a = np.float32(x[i])
        terms[i] = mul(a, a)
    if lane_sum(terms, n, lanes) <= e0:
        return True, 0.0, 0.0
    m = 0
    amax = 0.0
    rest = math.inf
    for i in range(n):  # branch-free: every value is written, the kept ones advance m
        a = float(abs(x[i]))
        kept = terms[i] <= e0
        amax = max(amax, a)
        ys[m] = a
        m += kept
        rest = min(rest, math.inf if kept else a)
    # sort ys[:m] into terms[:m] by rank (ties by position): branch-free counts
    for i in range(m):
        rank = 0
        for j in range(m):
            rank += (ys[j] < ys[i]) | ((ys[j] == ys[i]) & (j < i))
        terms[rank] = ys[i]
    running = 0.0
    k_star = 0
    while k_star < m:
        running += f32(terms[k_star] * terms[k_star])
        if not f32(running) <= e0:
            break
        k_star += 1
    if k_star >= n:
        return True, 0.0, 0.0
    following = terms[k_star] if k_star < m else rest
    return False, lower_bound(amax, e0), f32(following / 0.25)


@njit(cache=True, error_model="numpy")
def first_at_least(divisors, first, last, value):
    """The smallest byte in ``first..last`` whose (ascending) divisor is >= ``value``
    (``last + 1`` if none): a bisection."""
    low, high = first, last + 1
    while low < high:
        middle = (low + high) // 2
        if divisors[middle] >= value:
            high = middle
        else:
            low = middle + 1
    return low


@njit(cache=True, error_model="numpy")
def clip_error(x, d, lanes, terms):
    """float32 ``sum(max(|x| - float32(6 d), 0)^2)`` in torch's order (native float32)."""
    n = x.shape[0]
    six_d = np.float32(6.0) * np.float32(d)
    zero = np.float32(0.0)
    for i in range(n):
        h = max(np.float32(abs(x[i])) - six_d, zero)
        terms[i] = mul(h, h)
    return lane_sum(terms, n, lanes)


@njit(cache=True, error_model="numpy")
def hessian_error(x, d, multiply, tie, h, r):
    """``r^T H r`` in float64 with r = sign(x) * float32(|x| - float32(q d))
    (:func:`fp4ref.spec.optimal.hessian_error`; ``r`` is scratch)."""
    n = x.shape[0]
    for i in range(n):
        code = magnitude_code(np.float32(quotient(x[i], d, multiply)), tie)
        residual = f32(abs(x[i]) - f32(E2M1_MAGNITUDES[code] * d))
        r[i] = -residual if x[i] < 0 else residual
    total = 0.0
    for a in range(n):
        inner = 0.0
        for b in range(n):
            inner += mul(h[a, b], r[b])
        total += mul(r[a], inner)
    return total


@njit(cache=True, error_model="numpy")
def search_hessian(x, start, start_divisor, divisors, first, last, multiply, tie, lanes, terms,
                   ys, h, fast_fail_e0, r):
    """The byte minimising ``r^T H r`` (:func:`fp4ref.spec.optimal.search_hessian`);
    ``fast_fail_e0``: skip unless the clip error is below E0 (MXFP4), else below
    10 * best (NVFP4)."""
    e0 = block_error(x, start_divisor, multiply, tie, lanes, terms)
    keep, s_min, s_max = search_bounds(x, e0, lanes, terms, ys)
    if keep:
        return start
    best = start
    best_error = hessian_error(x, start_divisor, multiply, tie, h, r)
    for byte in range(first_at_least(divisors, first, last, s_min), last + 1):
        d = divisors[byte]
        if not d <= s_max:
            break
        limit = e0 if fast_fail_e0 else 10.0 * best_error
        if not clip_error(x, d, lanes, terms) < limit:
            continue
        error = hessian_error(x, d, multiply, tie, h, r)
        if error < best_error:
            best = byte
            best_error = error
    return best


@njit(cache=True, error_model="numpy")
def search(x, start, start_divisor, divisors, first, last, multiply, tie, lanes, terms, ys):
    """The byte the optimal search picks (:mod:`fp4ref.spec.optimal`), over candidate
    bytes ``first..last`` whose float32 divisors ``divisors[byte]`` ascend.

    ``terms`` and ``ys`` are float64 scratch of the block's length.
    """
    e0 = block_error(x, start_divisor, multiply, tie, lanes, terms)
    keep, s_min, s_max = search_bounds(x, e0, lanes, terms, ys)
    if keep:
        return start
    best = start
    best_error = e0
    # candidates inside [s_min, s_max] only: the divisors ascend, so from a bisection on
    for byte in range(first_at_least(divisors, first, last, s_min), last + 1):
        d = divisors[byte]
        if not d <= s_max:
            break
        if not clip_error(x, d, lanes, terms) < best_error:
            continue
        error = block_error(x, d, multiply, tie, lanes, terms)
        if error < best_error:
            best = byte
            best_error = error
    return best
