"""One block of quantization as numba scalar functions: the per-block steps of
:func:`fp4ref.spec.mx.quantize_block` and :func:`fp4ref.spec.nvfp4.quantize_block` the GPU
kernels of :mod:`.cuda.quantize` call (the block's amax, its scale by the rule or the
search, 16-bit input widening), and the E8M0 reciprocal both targets use.

Built from :mod:`.scale_rules`, :mod:`.optimal` and :mod:`.elements` (the element encoder
itself, shared with the CPU). The largest magnitude is float32 and integer operations only
(GPUs run float64 at a fraction of the float32 rate); each float32 step is the IEEE float32
operation the oracle rounds to. Only what compiles for both targets is used (no allocation,
no ``ndarray`` methods), so these very dispatchers compile again as device functions;
scratch arrays are the caller's. The CPU kernels (:mod:`.cpu.quantize`) find the amax and
scale inline, in their own loops or in the vector code of :mod:`.cpu.simd`.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .optimal import search
from .scale_rules import mx_scale, nvfp4_block_scale

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
def e8m0_reciprocal32(scale):
    """float32 2^(127 - s), the reciprocal of E8M0 byte ``scale`` = s in 0..254 (MX v1.0
    5.4.1), built from its bits: biased exponent 254 - s, normal for s <= 253; s = 254 gives
    the subnormal 2^-127, bits 0x00400000 (exact either way)."""
    bits = (254 - scale) << 23 if scale < 254 else 0x00400000
    return np.uint32(bits).view(np.float32)


@njit(cache=True, error_model="numpy")
def pow2_32(exponent):
    """float32 2^e for e in -149..127, from its bits (subnormal below -126; exact): MLX's
    MXFP4 element divisor (rule ``"mlx"``), past the range of the E8M0 reciprocals."""
    if exponent >= -126:
        bits = (exponent + 127) << 23
    else:
        bits = 1 << (exponent + 149)
    return np.uint32(bits).view(np.float32)


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
