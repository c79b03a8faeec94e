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

from .elements import element_code, magnitude_code
from .optimal import search
from .options import (
    MX_BITS_RECIPROCAL,
    NONFINITE_QUARK,
    NONFINITE_VLLM,
    NONFINITE_VLLM_TRITON,
    RULE_EXPONENT,
    RULE_EXPONENT_UP,
    RULE_QUARK,
    TIE_EVEN,
)
from .scalar import e4m3_decode, e4m3_encode
from .scale_rules import f32, mx_scale, nvfp4_block_scale

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


@njit(cache=True, error_model="numpy")
def mx_quirk_scale(row, rule, zero_block, zero_byte, nonfinite):
    """(byte the elements use, mode) of an MXFP4 block
    under AMD Quark's or vLLM's conventions (:func:`fp4ref.spec.mx.quirk_block`): a NaN
    block is 0x7F under ``nonfinite="quark"``; else under ``"quark"``/``"vllm"`` the
    block's amax is NaN (``"vllm"``) or Inf if an element is, and goes through ``rule``;
    under other policies (and for another rule than ``"quark"``, ``"exponent"``,
    ``"exponent-up"``) a NaN/Inf block is 0xFF. Mode: 0 the codes by the elements, 1 a Quark
    NaN block, 2 zero codes."""
    amax = np.float32(0.0)
    nan = False
    inf = False
    for i in range(row.shape[0]):
        a = abs(np.float32(row[i]))
        nan = nan | (a != a)
        inf = inf | (a == _INF32)
        if a == a:
            amax = max(amax, a)
    quirky = (nonfinite == NONFINITE_QUARK or nonfinite == NONFINITE_VLLM
              or nonfinite == NONFINITE_VLLM_TRITON)
    bitwise = rule == RULE_QUARK or rule == RULE_EXPONENT or rule == RULE_EXPONENT_UP
    if (nan or inf) and not quirky:
        return 255, 2
    if nonfinite == NONFINITE_VLLM_TRITON:  # tl.max skips NaN: NaN only for all-NaN
        all_nan = True
        for i in range(row.shape[0]):
            all_nan = all_nan & (row[i] != row[i])
        value = math.nan if all_nan else float(amax)
        if not bitwise and not (value == value and value < math.inf):
            return 255, 2
        if value == 0.0 and zero_block:
            return zero_byte, 0
        return mx_scale(value, rule), 0
    if nan and nonfinite == NONFINITE_QUARK:
        return 0x7F, 1
    if (inf or nan) and not bitwise:  # only the bit-arithmetic rules take Inf / NaN
        return 255, 2
    value = float(amax)
    if nan:
        value = math.nan  # torch.abs then max: a positive NaN
    if value == 0.0 and zero_block:
        return zero_byte, 0
    return mx_scale(value, rule), 0


@njit(cache=True, error_model="numpy")
def mx_quirk_code(x, scale, mode, tie, zero_sign, nonfinite, element_scale):
    """E2M1 code of element ``x`` of a block whose elements use byte ``scale`` and
    ``mode`` (:func:`mx_quirk_scale`; see :func:`fp4ref.spec.mx.quirk_block`)."""
    v = np.float32(x)
    negative = math.copysign(np.float32(1.0), v) < np.float32(0.0)
    if mode == 1:  # Quark: every x / NaN is NaN, NaN elements keep their sign
        return 0xF if (v != v and negative) else 0x7
    if mode == 2 or (scale == 255 and element_scale != MX_BITS_RECIPROCAL):
        return 0
    if element_scale == MX_BITS_RECIPROCAL:  # vLLM quant_scale: 0 for X = 0 or Inf
        if v != v:
            return 0x7 | (8 * negative)
        r = np.float32(0.0)
        if scale != 0 and scale != 255:
            r = e8m0_reciprocal32(scale)
        if abs(v) == _INF32 and r == np.float32(0.0):  # Inf * 0: x86's default NaN
            return 0xF
        return element_code(v, r, True, tie, zero_sign)
    if abs(v) == _INF32 and nonfinite == NONFINITE_QUARK:  # Pack_fp4 of Inf: 6
        return 0x6 | (8 * negative)
    if (v != v or abs(v) == _INF32) and nonfinite == NONFINITE_VLLM_TRITON:
        return 0x7 | (8 * negative)  # the bit conversion saturates exponent 255
    return element_code(v, e8m0_reciprocal32(min(scale, 254)), True, tie, zero_sign)


@njit(cache=True, error_model="numpy")
def _vllm_reciprocal(v):
    """vLLM ``get_reciprocal`` in float32: 1 / (v + (v == 0) * 1e8); 1 / Inf is 0."""
    v = f32(v + (1e8 if v == 0.0 else 0.0))
    if v == math.inf or v == -math.inf:
        return 0.0
    return f32(1.0 / v)


@njit(cache=True, error_model="numpy")
def vllm_nv_block(row, g):
    """(E4M3 byte, output_scale) of an NVFP4 block by vLLM ``ref_nvfp4_quant`` at global
    scale ``g`` (:func:`fp4ref.spec.nvfp4.vllm_block`); output_scale is NaN where every
    element is NaN. The NaN bytes are decided from the operands, not the hardware's NaN:
    0x7F for a NaN element (or positive G), 0xFF for 0 * Inf (x86's default NaN)."""
    nan = False
    amax = 0.0
    for i in range(row.shape[0]):
        a = abs(float(row[i]))
        if a != a:
            nan = True
        elif a > amax:
            amax = a
    a = f32(amax * f32(1.0 / 6.0))
    if g != g:
        byte = 0xFF if math.copysign(1.0, g) < 0.0 else 0x7F
    elif nan:
        byte = 0x7F
    elif (g == 0.0 and a == math.inf) or ((g == math.inf or g == -math.inf) and a == 0.0):
        byte = 0xFF
    else:
        byte = e4m3_encode(min(max(f32(g * a), -448.0), 448.0), TIE_EVEN, True)
    s = e4m3_decode(byte)
    r = _vllm_reciprocal(g)
    if s != s or (s == 0.0 and r == math.inf):  # NaN * r, 0 * Inf
        return byte, math.nan
    return byte, _vllm_reciprocal(f32(s * r))


@njit(cache=True, error_model="numpy")
def vllm_nv_code(x, scale):
    """E2M1 code of element ``x`` at vLLM's output_scale ``scale``: q = float32(x * scale)
    clamped to +-6, ``cast_to_fp4`` (ties to even), the sign bit iff q < 0; a NaN q (NaN
    scale, Inf * 0, 0 * Inf) is written 0xF (vLLM gives the value NaN)."""
    v = float(np.float32(x))
    if scale != scale or ((v == math.inf or v == -math.inf) and scale == 0.0) or (
            v == 0.0 and scale == math.inf):
        return 0xF
    q = f32(v * scale)
    q = min(max(q, -6.0), 6.0)
    return magnitude_code(np.float32(abs(q)), TIE_EVEN) | (8 * (q < 0.0))
