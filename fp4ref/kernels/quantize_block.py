"""One block of quantization as numba scalar functions, for the CPU and the GPU alike.

The per-block steps of :func:`fp4ref.spec.mx.quantize_block` and
:func:`fp4ref.spec.nvfp4.quantize_block` over a block ``row`` of float64 values (each one a
float32 value), built from the scale rules and the search of :mod:`.scale_rules`. Only
what compiles for both targets is used (no allocation, no ``ndarray`` methods), so the GPU
kernels of :mod:`.cuda.quantize` call these very dispatchers, compiled again as device
functions; scratch arrays are the caller's.
"""

from __future__ import annotations

import math

from numba import njit

from .scalar import byte_elements
from .scale_rules import element_code, mx_scale, nvfp4_block_scale, quotient, search


@njit(cache=True, error_model="numpy")
def block_amax(row, inf_is_bad):
    """(amax, bad) of a block: the largest magnitude of its usable values, and whether it
    holds a NaN (or an Inf, if ``inf_is_bad``), which gives the block the NaN scale
    (MX v1.0 6.3 leaves NaN/Inf open; fp4ref's policy, :mod:`fp4ref.spec.mx`)."""
    amax = 0.0
    bad = False
    for i in range(row.shape[0]):
        a = abs(row[i])
        if a != a or (inf_is_bad and a == math.inf):
            bad = True
        elif a > amax:
            amax = a
    return amax, bad


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
def nv_block_scale(row, amax, recipe, tensor, clamp_low, clamp_high, zero_scale, optimal,
                   multiply, tie, lanes, divisors, terms, ys):
    """E4M3 byte of an NVFP4 block without NaN: the recipe's byte
    (:func:`.scale_rules.nvfp4_block_scale`), or the optimal search over bytes 1..126
    from it (``divisors[b]``: the recipe's float32 divisor of byte ``b``)."""
    scale = nvfp4_block_scale(amax, recipe, tensor, clamp_low, clamp_high, zero_scale)
    if optimal:
        scale = search(row, scale, divisors[scale], divisors, 1, 126, multiply, tie, lanes,
                       terms, ys)
    return scale


@njit(cache=True, error_model="numpy")
def mx_packed_byte(row, i, order, inverse, tie, zero_sign):
    """Packed byte ``i`` of an MXFP4 block whose scale is 1 / ``inverse``: each element
    ``|x| * inverse`` (exact in float64, a power of two) rounded to E2M1 (MX v1.0 6.3)."""
    low, high = byte_elements(i, order, row.shape[0])
    a = row[low]
    b = row[high]
    return (element_code(a, abs(a) * inverse, tie, zero_sign)
            | (element_code(b, abs(b) * inverse, tie, zero_sign) << 4))


@njit(cache=True, error_model="numpy")
def nv_packed_byte(row, i, order, d, multiply, tie, zero_sign):
    """Packed byte ``i`` of an NVFP4 block with divisor ``d``: each element
    float32(|x| / d) (or ``* d`` when ``multiply``) rounded to E2M1."""
    low, high = byte_elements(i, order, row.shape[0])
    a = row[low]
    b = row[high]
    return (element_code(a, quotient(a, d, multiply), tie, zero_sign)
            | (element_code(b, quotient(b, d, multiply), tie, zero_sign) << 4))


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
