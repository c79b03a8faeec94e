"""Scale rules, element rounding and the optimal search as numba scalar functions.

The same rules as :mod:`fp4ref.spec.scale_rules`, :mod:`fp4ref.spec.elements` and
:mod:`fp4ref.spec.optimal`, written independently in the numba subset so the CPU kernels
(and, compiled again, CUDA device code) can call them. Integer codes stand for names, as
:mod:`.options` translates them.

float32 steps: one IEEE float32 operation is computed in float64 and rounded by
:func:`f32` (innocuous double rounding, as in the oracle).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .options import (
    RECIPE_CT,
    RECIPE_MODELOPT,
    RECIPE_PLAIN,
    RECIPE_TORCHAO,
    RULE_CEIL,
    RULE_EVEN,
    RULE_FLOOR,
    RULE_GGML,
    RULE_MISTRALRS,
    RULE_QWANTIZE,
    RULE_RCEIL,
    TIE_AWAY,
    TIE_EVEN,
    ZERO_DROP,
    ZERO_NEGATIVE,
)
from .scalar import e4m3_decode, e4m3_encode, float32_bits, is_negative
from .unfused import mul

_E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


@njit(cache=True, error_model="numpy")
def f32(value):
    """``value`` rounded to float32 (nearest even), returned as float64."""
    return float(np.float32(value))


@njit(cache=True, error_model="numpy")
def log2f(value):
    """float32 log2 of a float32 value (float64 log2 rounded to float32)."""
    if value == 0.0:
        return -math.inf
    return f32(math.log2(value))


@njit(cache=True, error_model="numpy")
def _clamp_biased(exponent, low, high):
    return min(max(exponent, low), high) + 127


@njit(cache=True, error_model="numpy")
def _floor_log2(value):
    return math.frexp(value)[1] - 1


@njit(cache=True, error_model="numpy")
def _is_power_of_two(value):
    return math.frexp(value)[0] == 0.5


@njit(cache=True, error_model="numpy")
def float32_bits_of(value):
    """Bits of a finite non-negative float32 value given as float64 (no array: it compiles
    for the GPU too)."""
    return float32_bits(value)


@njit(cache=True, error_model="numpy")
def mx_scale(amax, rule):
    """E8M0 byte of ``rule`` for a finite float32 ``amax`` >= 0 (see the oracle's
    :func:`fp4ref.spec.scale_rules.mx_scale` for each rule's source)."""
    if rule == RULE_QWANTIZE:
        t = f32(f32(log2f(max(amax, f32(1e-30))) - 2.0) + 127.0)
        return min(max(int(math.floor(t)), 1), 254)
    if rule == RULE_GGML:
        if amax == 0.0:
            return 0
        return (int(math.floor(log2f(amax))) + 125) % 256
    if rule == RULE_MISTRALRS:
        if amax == 0.0:
            return 127
        quotient = f32(amax / 6.0)
        if quotient == 0.0:
            return 0
        return min(max(int(math.floor(log2f(quotient))) + 127, 0), 254)
    if rule == RULE_EVEN:
        bits = (float32_bits_of(amax) + 0x200000) & 0x7F800000
        return _clamp_biased((bits >> 23) - 129, -127, 128)
    if amax == 0.0:
        return 0
    if rule == RULE_FLOOR:
        return _clamp_biased(_floor_log2(amax) - 2, -127, 127)
    if rule == RULE_CEIL:
        exponent = _floor_log2(amax) + (0 if _is_power_of_two(amax) else 1)
        return _clamp_biased(exponent - 2, -127, 127)
    quotient = f32(amax / 6.0)
    if quotient == 0.0:
        return 0
    exponent = _floor_log2(quotient)
    if rule == RULE_RCEIL:
        return _clamp_biased(exponent + (0 if _is_power_of_two(quotient) else 1), -127, 127)
    mantissa = math.ldexp(quotient, -exponent)  # RULE_NEAREST; exact, in [1, 2)
    return _clamp_biased(exponent + (1 if mantissa * mantissa >= 2.0 else 0), -127, 127)


@njit(cache=True, error_model="numpy")
def magnitude_code(y, tie):
    """E2M1 magnitude code (0..7) of a scaled magnitude ``y`` >= 0, saturating; NaN -> 0.

    Branch-free: one comparison per midpoint; the tie rule picks ``>`` or ``>=``.
    """
    if tie == TIE_EVEN:  # the even code has mantissa bit 0: codes 0, 2, 4, 6 win ties
        return ((y > 0.25) + (y >= 0.75) + (y > 1.25) + (y >= 1.75) + (y > 2.5)
                + (y >= 3.5) + (y > 5.0))
    if tie == TIE_AWAY:
        return ((y >= 0.25) + (y >= 0.75) + (y >= 1.25) + (y >= 1.75) + (y >= 2.5)
                + (y >= 3.5) + (y >= 5.0))
    return ((y > 0.25) + (y > 0.75) + (y > 1.25) + (y > 1.75) + (y > 2.5) + (y > 3.5)
            + (y > 5.0))


@njit(cache=True, error_model="numpy")
def element_code(x, y, tie, zero_sign):
    """E2M1 code of element ``x`` whose scaled magnitude is ``y`` (sign of zero by
    ``zero_sign``)."""
    code = magnitude_code(y, tie)
    negative = is_negative(x)
    if code == 0 and (zero_sign == ZERO_DROP or (zero_sign == ZERO_NEGATIVE and not x < 0)):
        negative = False
    return code | (8 if negative else 0)


@njit(cache=True, error_model="numpy")
def divide(a, b):
    """float32(a / b) with IEEE results for a zero or NaN divisor."""
    return float(np.float32(a) / np.float32(b))


@njit(cache=True, error_model="numpy")
def nvfp4_block_scale(amax, recipe, tensor, clamp_low, clamp_high, zero_block, zero_scale):
    """E4M3 byte of an NVFP4 block (see :func:`fp4ref.spec.scale_rules.nvfp4_block_scale`).

    The quotient is clamped to ``[clamp_low, clamp_high]`` (``[-Inf, Inf]`` for a profile
    without a clamp: every non-NaN value stays as it is); a zero block gets ``zero_scale``
    if ``zero_block`` (:class:`..options.KernelOptions`).
    """
    if recipe == RECIPE_PLAIN:
        y = f32(amax / 6.0)
    elif recipe == RECIPE_MODELOPT:
        y = divide(amax, f32(6.0 * tensor))
        if y == 0.0 and zero_block:
            y = zero_scale
    elif recipe == RECIPE_TORCHAO:
        y = divide(f32(amax / 6.0), tensor)
    else:
        y = f32(tensor * f32(amax / 6.0))
    if y == y:
        y = min(max(y, clamp_low), clamp_high)
    if y != y:  # a NaN made by the arithmetic (Inf / Inf) has the hardware's sign (x86
        return 0x7F  # negative, CUDA positive); fp4ref writes the positive NaN byte
    byte = e4m3_encode(y, TIE_EVEN, True)
    if recipe == RECIPE_CT and byte == 0 and zero_block:
        byte = e4m3_encode(zero_scale, TIE_EVEN, True)
    return byte


@njit(cache=True, error_model="numpy")
def nvfp4_divisor(byte, recipe, tensor):
    """(d, multiply) for the elements of a block with scale ``byte``."""
    scale = e4m3_decode(byte)
    if recipe == RECIPE_PLAIN:
        return scale, False
    if recipe == RECIPE_MODELOPT:
        return f32(scale * tensor), False
    if recipe == RECIPE_CT:
        return divide(scale, tensor), False
    return divide(divide(1.0, tensor), scale), True


@njit(cache=True, error_model="numpy")
def quotient(x, d, multiply):
    """float32(|x| / d), or float32(|x| * d)."""
    if multiply:
        return f32(abs(x) * d)
    return divide(abs(x), d)


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


def _thresholds() -> np.ndarray:
    """``[tie, k]``: float32 t with E2M1 magnitude code = #{k : y > t[k]} for float32 y >= 0
    (a midpoint a tie sends up becomes the float32 just below it: y >= m is y > prev(m))."""
    up = ((False, True, False, True, False, True, False), (True,) * 7, (False,) * 7)
    table = np.empty((3, 7), np.float32)
    for tie in range(3):
        for k in range(7):
            m = np.float32((0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)[k])
            table[tie, k] = np.nextafter(m, np.float32(0)) if up[tie][k] else m
    return table


#: :func:`_thresholds`, a compile-time constant of the kernels.
THRESHOLDS = _thresholds()


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
        code = magnitude_code(quotient(x[i], d, multiply), tie)
        residual = f32(abs(x[i]) - f32(_E2M1[code] * d))
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

