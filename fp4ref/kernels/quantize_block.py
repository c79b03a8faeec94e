"""One block of quantization as numba scalar functions, for the CPU and the GPU alike.

The per-block steps of :func:`fp4ref.spec.mx.quantize_block` and
:func:`fp4ref.spec.nvfp4.quantize_block` over a block ``row`` of float32 values, built from
the scale rules and the search of :mod:`.scale_rules`. The largest magnitude and the element
codes are float32 and integer operations only (GPUs run float64 at a fraction of the float32
rate, and the rule paths are otherwise memory-bound); each float32 step is the IEEE float32
operation the oracle rounds to. Only what compiles for both targets is used (no allocation,
no ``ndarray`` methods), so the GPU kernels of :mod:`.cuda.quantize` call these very
dispatchers, compiled again as device functions; scratch arrays are the caller's.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .options import ZERO_DROP, ZERO_NEGATIVE
from .scalar import byte_elements
from .scale_rules import THRESHOLDS, mx_scale, nvfp4_block_scale, search

_INF32 = np.float32(math.inf)


@njit(cache=True, error_model="numpy")
def block_amax(row, inf_is_bad):
    """(amax, bad) of a block: the largest magnitude (float32) of its values, and whether it
    holds a NaN (or an Inf, if ``inf_is_bad``), which gives the block the NaN scale
    (MX v1.0 6.3 leaves NaN/Inf open; fp4ref's policy, :mod:`fp4ref.spec.mx`).

    ``max`` of float32 magnitudes is exact; in a bad block amax is unused, so what ``max``
    does with a NaN does not matter. With ``inf_is_bad`` one comparison ``not a < Inf``
    catches both."""
    amax = np.float32(0.0)
    bad = False
    for i in range(row.shape[0]):
        a = abs(np.float32(row[i]))
        bad = bad | (not a < _INF32 if inf_is_bad else a != a)
        amax = max(amax, a)
    return amax, bad


@njit(cache=True, error_model="numpy")
def magnitude_code32(y, tie):
    """E2M1 magnitude code (0..7) of a float32 scaled magnitude ``y`` >= 0 (saturating; NaN
    gives 0): :func:`.scale_rules.magnitude_code` compared in float32, as the number of
    :data:`.scale_rules.THRESHOLDS` below ``y``, found by a binary search over the sorted
    thresholds (three comparisons, so on the GPU three compares and selects instead of
    seven). The thresholds are the exact float32 midpoints (or the float32 just below one
    that the tie sends up), so each float32 comparison decides as the float64 one does."""
    t = THRESHOLDS[tie]
    high = y > t[3]  # code >= 4
    middle = y > (t[5] if high else t[1])  # code >= 6 (or >= 2)
    low = y > ((t[6] if middle else t[4]) if high else (t[2] if middle else t[0]))
    return 4 * high + 2 * middle + low


@njit(cache=True, error_model="numpy")
def e8m0_reciprocal32(scale):
    """float32 2^(127 - s), the reciprocal of E8M0 byte ``scale`` = s in 0..254 (MX v1.0
    5.4.1), built from its bits: biased exponent 254 - s, normal for s <= 253; s = 254 gives
    the subnormal 2^-127, bits 0x00400000 (exact either way)."""
    bits = (254 - scale) << 23 if scale < 254 else 0x00400000
    return np.uint32(bits).view(np.float32)


@njit(cache=True, error_model="numpy")
def element_code32(x, d, multiply, tie, zero_sign):
    """E2M1 code of element ``x`` (a float32 value) at float32 divisor ``d``, in float32
    operations: y = float32(|x| / d), or float32(|x| * d) when ``multiply``, one IEEE
    float32 operation, the very value :func:`.scale_rules.quotient` rounds to; then the
    codes of :func:`.scale_rules.element_code`, branch-free.

    MXFP4 passes d = 2^(127 - s) with ``multiply``: a product by a power of two is exact in
    float32 when it is normal or infinite (the float64 product is then that value, or past
    6 like Inf); when the exact product is below 2^-126 < 0.25, float32 rounds it to at most
    2^-126, and both give code 0 (:func:`magnitude_code32`)."""
    v = np.float32(x)
    a = abs(v)
    y = a * d if multiply else a / d
    code = magnitude_code32(y, tie)
    signed = math.copysign(np.float32(1.0), v) < np.float32(0.0)
    if zero_sign == ZERO_DROP:  # a zero code drops the sign
        signed = signed & (code != 0)
    elif zero_sign == ZERO_NEGATIVE:  # a zero code keeps it only for x < 0 (not -0)
        signed = signed & ((code != 0) | (v < np.float32(0.0)))
    return code | (8 * signed)


@njit(cache=True, error_model="numpy")
def packed_byte(row, i, order, d, multiply, tie, zero_sign):
    """Packed byte ``i`` of a block at float32 divisor ``d`` (:func:`element_code32`; an
    MXFP4 block with scale 2^(s - 127) has d = 2^(127 - s) and ``multiply``), its element
    ``byte_elements(i, order)[0]`` in the low nibble."""
    low, high = byte_elements(i, order, row.shape[0])
    return (element_code32(row[low], d, multiply, tie, zero_sign)
            | (element_code32(row[high], d, multiply, tie, zero_sign) << 4))


@njit(cache=True, error_model="numpy")
def mx_block_scale(row, amax, rule, optimal, start_rule, first, tie, lanes, divisors, terms,
                   ys):
    """E8M0 byte of a finite MXFP4 block with largest magnitude ``amax``: by ``rule``, or
    the optimal search over bytes ``first..254`` from rule ``start_rule``'s byte
    (``divisors[b]`` = 2^(b - 127), NaN at 255; ``terms``, ``ys`` scratch of the block's
    length)."""
    if not optimal:
        return mx_scale(amax, rule)
    start = mx_scale(amax, start_rule)
    return search(row, start, divisors[start], divisors, first, 254, False, tie, lanes, terms,
                  ys)


@njit(cache=True, error_model="numpy")
def nv_block_scale(row, amax, recipe, tensor, clamp_low, clamp_high, zero_block, zero_scale,
                   optimal, multiply, tie, lanes, divisors, terms, ys):
    """E4M3 byte of an NVFP4 block without NaN: the recipe's byte
    (:func:`.scale_rules.nvfp4_block_scale`), or the optimal search over bytes 1..126
    from it (``divisors[b]``: the recipe's float32 divisor of byte ``b``)."""
    scale = nvfp4_block_scale(amax, recipe, tensor, clamp_low, clamp_high, zero_block,
                              zero_scale)
    if optimal:
        scale = search(row, scale, divisors[scale], divisors, 1, 126, multiply, tie, lanes,
                       terms, ys)
    return scale


@njit(cache=True, error_model="numpy")
def half_value(bits, bfloat):
    """The value of 16-bit float ``bits``: bfloat16 if ``bfloat`` else IEEE float16
    (widening is exact; every NaN is the same here, its block's scale is NaN)."""
    exponent_bits, fraction_bits = (8, 7) if bfloat else (5, 10)
    top = (1 << exponent_bits) - 1
    exponent = (bits >> fraction_bits) & top
    fraction = bits & ((1 << fraction_bits) - 1)
    bias = top >> 1
    if exponent == top:
        magnitude = math.inf if fraction == 0 else math.nan
    elif exponent == 0:
        magnitude = math.ldexp(float(fraction), 1 - bias - fraction_bits)
    else:
        magnitude = math.ldexp(float(fraction + (1 << fraction_bits)),
                               exponent - bias - fraction_bits)
    return -magnitude if bits >> 15 else magnitude
