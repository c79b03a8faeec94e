"""One block of quantization as numba scalar functions: the per-block steps of
:func:`fp4ref.spec.mx.quantize_block` and :func:`fp4ref.spec.nvfp4.quantize_block` the GPU
kernels of :mod:`.cuda.quantize` call (the block's amax, an implementation's NaN/Inf and
quirk coding, 16-bit input widening), and the E8M0 reciprocal both targets use.

Built from :mod:`.scale_rules` and :mod:`.elements` (the element encoder
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
from .options import (
    MX_BITS_RECIPROCAL,
    NONFINITE_MISTRALRS,
    NONFINITE_QUARK,
    NONFINITE_QWANTIZE,
    NONFINITE_TORCHAO,
    NONFINITE_TORCHAO_RCEIL,
    NONFINITE_VLLM,
    NONFINITE_VLLM_TRITON,
    RULE_EXPONENT,
    RULE_EXPONENT_UP,
    RULE_QUARK,
    TIE_EVEN,
)
from .scalar import e4m3_decode, e4m3_encode
from .scale_rules import f32, mx_scale

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
def torchao_nan_code(bits):
    """torchao's ``f32_to_f4_unpacked`` code of the NaN with float32 ``bits``, quieted
    first (:func:`fp4ref.spec.mx.torchao_nan_code`): its sign, magnitude 3 + bit 21."""
    bits = np.uint32(bits) | np.uint32(0x00400000)
    sign = 8 if bits >> np.uint32(31) else 0
    return sign | (3 + int((bits >> np.uint32(21)) & np.uint32(1)))


@njit(cache=True, error_model="numpy")
def mx_implementation_nonfinite(nonfinite):
    """Whether ``nonfinite`` is one of the MXFP4 NaN/Inf codings :func:`mx_rule_block`
    implements (torchao's, qwantize's, mistral.rs's)."""
    return (nonfinite == NONFINITE_TORCHAO or nonfinite == NONFINITE_TORCHAO_RCEIL
            or nonfinite == NONFINITE_QWANTIZE or nonfinite == NONFINITE_MISTRALRS)


@njit(cache=True, error_model="numpy")
def mx_rule_block(bits, base, n, rule, nonfinite, zero_divisor, zero_block, zero_byte, tie,
                  zero_sign, codes):
    """E8M0 byte of the MXFP4 block of the float32 bits ``bits[base:base + n]`` under scale
    rule ``rule``, its element codes written to ``codes[:n]``, with the conventions only
    this function implements: an implementation's NaN/Inf coding (``nonfinite``, see
    :func:`fp4ref.spec.mx.nonfinite_block`) and the divisor ``zero_divisor`` of a scale-0
    block's elements (0.0: 2^-127). The CPU scalar kernel and the GPU quirk kernel both call
    it. Divisions by powers of two are the products by their reciprocals (exact, as in
    :func:`..elements.element_code`)."""
    top = np.uint32(0)  # largest magnitude of the non-NaN elements
    first_nan = -1
    for i in range(n):
        m = np.uint32(bits[base + i]) & np.uint32(0x7FFFFFFF)
        if m > np.uint32(0x7F800000):
            if first_nan < 0:
                first_nan = i
        elif m > top:
            top = m
    amax = float(np.uint32(top).view(np.float32))
    special = mx_implementation_nonfinite(nonfinite)
    if special and (first_nan >= 0 or top == np.uint32(0x7F800000)):
        if nonfinite == NONFINITE_MISTRALRS:
            if top == np.uint32(0x7F800000):
                scale = 0  # floor(log2(Inf)) as i32 saturates, + 127 wraps, clamped to 0
            elif top == 0 and zero_block:
                scale = zero_byte
            else:
                scale = mx_scale(amax, rule)
            d = e8m0_reciprocal32(scale)
            for i in range(n):
                v = np.uint32(bits[base + i]).view(np.float32)
                codes[i] = 7 if v != v else element_code(v, d, True, tie, zero_sign)
            return scale
        if first_nan >= 0:
            for i in range(n):
                b = np.uint32(bits[base + i])
                v = b.view(np.float32)
                if nonfinite == NONFINITE_QWANTIZE:  # sign(x) * 6; sign(NaN) = sign(0) = 0
                    codes[i] = (0 if v != v or v == np.float32(0.0)
                                else element_code(v, _INF32, True, tie, zero_sign))
                elif nonfinite == NONFINITE_TORCHAO_RCEIL:  # x * amax / 6: 0x7FC00000
                    codes[i] = torchao_nan_code(0x7FC00000)
                elif v != v:  # torchao: x / Inf
                    codes[i] = torchao_nan_code(b)
                elif abs(v) == _INF32:  # Inf / Inf: the x86 default NaN
                    codes[i] = torchao_nan_code(0xFFC00000)
                else:
                    codes[i] = element_code(v, np.float32(0.0), True, tie, zero_sign)
            return 255
        scale = 253 if nonfinite == NONFINITE_TORCHAO else 254  # Inf, no NaN
        d = e8m0_reciprocal32(scale)
        for i in range(n):
            codes[i] = element_code(np.uint32(bits[base + i]).view(np.float32), d, True, tie,
                                    zero_sign)
        return scale
    if first_nan >= 0 or top == np.uint32(0x7F800000):
        for i in range(n):
            codes[i] = 0
        return 255
    scale = mx_scale(amax, rule)
    if top == 0 and zero_block:
        scale = zero_byte
    if scale == 255:  # ggml's wrapped exponents
        for i in range(n):
            codes[i] = 0
        return scale
    d = e8m0_reciprocal32(scale)
    if scale == 0 and zero_divisor > 0.0:
        d = np.float32(1.0) / np.float32(zero_divisor)  # a power of two: exact
    for i in range(n):
        codes[i] = element_code(np.uint32(bits[base + i]).view(np.float32), d, True, tie,
                                zero_sign)
    return scale


@njit(cache=True, error_model="numpy")
def nv_nan_recoded(nonfinite):
    """Whether NVFP4 blocks get :func:`nv_nonfinite_block` under ``nonfinite`` (torchao's
    and qwantize's choices)."""
    return (nonfinite == NONFINITE_TORCHAO or nonfinite == NONFINITE_TORCHAO_RCEIL
            or nonfinite == NONFINITE_QWANTIZE)


@njit(cache=True, error_model="numpy")
def _is_nan_bits(b):
    return (np.uint32(b) & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)


@njit(cache=True, error_model="numpy")
def x86_op(a, b, multiply):
    """float32 bits of ``a / b`` (or ``a * b``) for float32 bits ``a``, ``b`` as an x86 CPU
    computes them: a NaN operand comes back quieted, the first one if both are; an invalid
    operation (0 / 0, Inf / Inf, 0 * Inf) gives the default NaN 0xFFC00000."""
    if _is_nan_bits(a):
        return np.uint32(a) | np.uint32(0x00400000)
    if _is_nan_bits(b):
        return np.uint32(b) | np.uint32(0x00400000)
    x = np.uint32(a).view(np.float32)
    y = np.uint32(b).view(np.float32)
    r = np.float32(x * y) if multiply else np.float32(x / y)
    if r != r:
        return np.uint32(0xFFC00000)
    return np.float32(r).view(np.uint32)


@njit(cache=True, error_model="numpy")
def torchao_nv_block(bits, base, n, tensor, clamp_low, clamp_high, tie, zero_sign, codes):
    """E4M3 byte and codes (``codes[:n]``) of the NVFP4 block ``bits[base:base + n]`` as
    torchao 0.18's ``nvfp4_quantize`` computes them on an x86 CPU, NaNs included
    (:func:`fp4ref.spec.nvfp4.torchao_block`): ``y = (amax / 6) / s_t`` (a block's NaN amax
    is 0x7FC00000), clamped, cast (a NaN to 0x7F or 0xFF by its sign); the reciprocal
    ``(1 / s_t) / f32(byte)`` (the NaN bytes' float32 0x7FF00000, 0xFFF00000); elements
    ``x * r`` (r's NaN first), clamped to 6, coded (a NaN by :func:`torchao_nan_code`)."""
    top = np.uint32(0)
    nan = False
    for i in range(n):
        m = np.uint32(bits[base + i]) & np.uint32(0x7FFFFFFF)
        nan = nan | (m > np.uint32(0x7F800000))
        top = max(top, m)
    amax = np.uint32(0x7FC00000) if nan else top
    t = np.float32(tensor).view(np.uint32)
    y = x86_op(x86_op(amax, np.float32(6.0).view(np.uint32), False), t, False)
    if _is_nan_bits(y):
        scale = 0x7F | (0x80 if y >> np.uint32(31) else 0)
        s32 = np.uint32(0x7FF00000) | (np.uint32(scale & 0x80) << np.uint32(24))
    else:
        v = np.uint32(y).view(np.float32)
        v = min(max(v, np.float32(clamp_low)), np.float32(clamp_high))
        scale = e4m3_encode(v, TIE_EVEN, True)
        s32 = np.float32(e4m3_decode(scale)).view(np.uint32)
    r = x86_op(x86_op(np.float32(1.0).view(np.uint32), t, False), s32, False)
    for i in range(n):
        e = r if _is_nan_bits(r) else x86_op(bits[base + i], r, True)
        if _is_nan_bits(e):
            codes[i] = torchao_nan_code(e)
        else:
            v = np.uint32(e).view(np.float32)
            v = min(max(v, np.float32(-6.0)), np.float32(6.0))
            codes[i] = element_code(v, np.float32(1.0), True, tie, zero_sign)
    return scale


@njit(cache=True, error_model="numpy")
def nv_nonfinite_block(bits, base, n, nonfinite, tensor, clamp_low, clamp_high, tie,
                       zero_sign, codes):
    """The E4M3 byte (codes in ``codes[:n]``) the implementation ``nonfinite`` gives the
    NVFP4 block ``bits[base:base + n]`` where the recipe's IEEE steps do not say (-1
    elsewhere): qwantize 0.1.1 a NaN block (0x7F; ``|x| / NaN`` buckets to 6, times
    ``torch.sign(x)``: +-6 for nonzero elements, 0 for zeros and NaNs); torchao 0.18 a block
    with a NaN or an Inf, and every block when the tensor scale ``tensor`` is 0, not finite
    or has no finite reciprocal (:func:`torchao_nv_block`)."""
    special = False
    for i in range(n):
        special = special | (
            (np.uint32(bits[base + i]) & np.uint32(0x7FFFFFFF)) >= np.uint32(0x7F800000))
    if nonfinite == NONFINITE_QWANTIZE:
        found = False
        for i in range(n):
            v = np.uint32(bits[base + i]).view(np.float32)
            found = found | (v != v)
            codes[i] = (0 if v != v or v == np.float32(0.0)
                        else element_code(v, _INF32, True, tie, zero_sign))
        return 0x7F if found else -1
    t = np.float32(tensor)
    inverse = np.float32(1.0) / t if t != np.float32(0.0) else _INF32
    if special or not (abs(t) < _INF32 and abs(inverse) < _INF32):
        return torchao_nv_block(bits, base, n, tensor, clamp_low, clamp_high, tie, zero_sign,
                                codes)
    return -1


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
