"""Scale rules as numba scalar functions: the MXFP4 E8M0 rules and the NVFP4 recipes, the
fast layer's twin of :mod:`fp4ref.spec.scale_rules`.

Written independently of the oracle in the numba subset so the CPU kernels (and, compiled
again, CUDA device code) can call them; element coding is :mod:`.elements`, the search
:mod:`.optimal`. Integer codes stand for names, as :mod:`.options` translates them.

float32 steps: one IEEE float32 operation is computed in float64 and rounded by
:func:`f32` (innocuous double rounding, as in the oracle).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .options import (
    RECIPE_COMFY,
    RECIPE_CT,
    RECIPE_MLX,
    RECIPE_MODELOPT,
    RECIPE_PLAIN,
    RECIPE_TORCHAO,
    RULE_CEIL,
    RULE_EVEN,
    RULE_EXPONENT,
    RULE_EXPONENT_UP,
    RULE_FLOOR,
    RULE_GGML,
    RULE_MISTRALRS,
    RULE_MLX,
    RULE_QUARK,
    RULE_QWANTIZE,
    RULE_RCEIL,
    RULE_TORCHAO_RCEIL,
    TIE_EVEN,
)
from .scalar import e4m3_decode, e4m3_encode, float32_bits


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
def mlx_exponent(amax):
    """MLX's MXFP4 exponent e of a finite float32 ``amax`` >= 0: the smallest e with
    2^e >= float32(amax / 6), 0 for a zero quotient (-149..126;
    :func:`fp4ref.spec.scale_rules.mlx_exponent`)."""
    quotient = f32(amax / 6.0)
    if quotient == 0.0:
        return 0
    return _floor_log2(quotient) + (0 if _is_power_of_two(quotient) else 1)


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
    if rule == RULE_EXPONENT:
        return float32_bits_of(f32(amax / 6.0)) >> 23
    if rule == RULE_EXPONENT_UP:  # vLLM ROUND_UP (also NaN -> 0x00 and Inf -> 0xFF)
        return ((float32_bits_of(f32(amax / 6.0)) + 0x7FFFFF) & 0x7F800000) >> 23
    if rule == RULE_QUARK:  # Quark even_round: field 255 (>= 1.75 * 2^127, Inf) -> 0xFE
        field = ((float32_bits_of(amax) + 0x200000) & 0x7F800000) >> 23
        return 254 if field == 255 else _clamp_biased(field - 129, -127, 127)
    if rule == RULE_MLX:  # uint8(e + 127): wraps below 2^-127 (elements: 2^e, not the byte)
        return (mlx_exponent(amax) + 127) % 256
    if rule == RULE_TORCHAO_RCEIL:  # float32 torch.log2, then ceil
        quotient = f32(amax / 6.0)
        if quotient == 0.0:
            return 0
        return _clamp_biased(int(math.ceil(log2f(quotient))), -127, 127)
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
def divide(a, b):
    """float32(a / b) with IEEE results for a zero or NaN divisor."""
    return float(np.float32(a) / np.float32(b))


@njit(cache=True, error_model="numpy")
def nvfp4_block_quotient(amax, recipe, tensor, clamp_low, clamp_high, zero_block, zero_scale):
    """The float32 value an NVFP4 block's scale encodes (before the E4M3 cast), by the
    recipe's float32 steps (:func:`fp4ref.spec.scale_rules.nvfp4_block_scale`).

    The quotient is clamped to ``[clamp_low, clamp_high]`` (``[-Inf, Inf]`` for a profile
    without a clamp: every non-NaN value stays as it is); a zero block gets ``zero_scale``
    if ``zero_block`` (:class:`..options.KernelOptions`); NaN stays NaN.
    """
    if recipe == RECIPE_PLAIN:
        y = f32(amax / 6.0)
    elif recipe == RECIPE_MODELOPT:
        y = divide(amax, f32(6.0 * tensor))
        if y == 0.0 and zero_block:
            y = zero_scale
    elif recipe == RECIPE_TORCHAO or recipe == RECIPE_COMFY:  # comfy: as torchao's, unclamped
        y = divide(f32(amax / 6.0), tensor)
    else:  # compressed-tensors, vLLM, MLX: (amax / 6) * E
        y = f32(tensor * f32(amax / 6.0))
    if y == y:
        y = min(max(y, clamp_low), clamp_high)
    return y


@njit(cache=True, error_model="numpy")
def nvfp4_block_scale(amax, recipe, tensor, clamp_low, clamp_high, zero_block, zero_scale):
    """E4M3 byte of an NVFP4 block (see :func:`fp4ref.spec.scale_rules.nvfp4_block_scale`):
    :func:`nvfp4_block_quotient` cast to E4M3 (ties to even, saturating)."""
    y = nvfp4_block_quotient(amax, recipe, tensor, clamp_low, clamp_high, zero_block,
                             zero_scale)
    if y != y and recipe == RECIPE_MLX:  # MLX's to_fp8 saturates NaN to 0x7E
        return 0x7E
    if y != y:  # a NaN made by the arithmetic (Inf / Inf) has the hardware's sign (x86
        return 0x7F  # negative, CUDA positive); fp4ref writes the positive NaN byte
    byte = e4m3_encode(y, TIE_EVEN, True)
    if recipe == RECIPE_CT and byte == 0 and zero_block:
        byte = e4m3_encode(zero_scale, TIE_EVEN, True)
    return byte


#: The least normal float32 (compressed-tensors' floor under the tensor amax).
TINY32 = float(np.finfo(np.float32).tiny)


@njit(cache=True, error_model="numpy")
def nvfp4_tensor_scale(amax, encode):
    """The stored float32 NVFP4 tensor scale of a tensor amax: ``amax / (6 * 448)`` (decode
    direction: ModelOpt, torchao), or with ``encode`` ``2688 / amax`` as compressed-tensors'
    ``generate_gparam`` computes it (torch's ``amax.reciprocal() * 2688``, the amax at least
    the least normal float32, a non-finite result replaced by 1; a NaN amax stays NaN, as
    Python's ``max`` keeps it, and so gives 1)."""
    if not encode:
        return f32(amax / 2688.0)
    if amax < TINY32:
        amax = TINY32
    stored = f32(f32(1.0 / amax) * 2688.0)
    return stored if math.isfinite(stored) else 1.0


@njit(cache=True, error_model="numpy")
def nvfp4_tensor_operand(stored, ct, encode):
    """The recipe's tensor operand from the stored tensor scale: the scale itself where the
    recipe's direction is the stored one (compressed-tensors' recipe multiplies by the
    encode-direction scale, the others divide by the decode-direction one), else its
    float32 reciprocal (IEEE: 1 / 0 is Inf)."""
    return stored if ct == encode else divide(1.0, stored)


#: Entries of :func:`nvfp4_scale_bounds`'s table: the zero-block prefix's end and byte, the
#: least amax of each byte 1..126, and a sentinel above every amax.
SCALE_BOUNDS = 129


@njit(cache=True, error_model="numpy")
def amax_scale(t, recipe, tensor, clamp_low, clamp_high, zero_block, zero_scale):
    """:func:`nvfp4_block_scale` of the amax with float32 bits ``t``."""
    return nvfp4_block_scale(float(np.uint32(t).view(np.float32)), recipe, tensor, clamp_low,
                             clamp_high, zero_block, zero_scale)


@njit(cache=True, error_model="numpy")
def _in_zero_prefix(t, recipe, tensor, clamp_low, clamp_high, zero_block):
    """Whether amax bits ``t`` get the zero block's scale (``zero_block``): a quotient of
    0 under the ModelOpt recipe, a byte of 0 under compressed-tensors'
    (:func:`nvfp4_block_scale`); both hold on a prefix of the amaxes, the quotient rising
    with the amax."""
    if not zero_block:
        return False
    if recipe == RECIPE_MODELOPT:  # a NaN zero scale marks the substitution (clamps keep it)
        y = nvfp4_block_quotient(float(np.uint32(t).view(np.float32)), recipe, tensor,
                                 clamp_low, clamp_high, True, math.nan)
        return y != y
    if recipe == RECIPE_CT:
        return amax_scale(t, recipe, tensor, clamp_low, clamp_high, False, 0.0) == 0
    return False


@njit(cache=True, error_model="numpy")
def nvfp4_scale_bounds(recipe, tensor, clamp_low, clamp_high, zero_block, zero_scale):
    """(int32 ``[SCALE_BOUNDS]``, usable): the E4M3 byte of an NVFP4 block as a step function
    of its amax's float32 bits ``t``, for :func:`scale_by_bounds`.

    With a finite tensor operand > 0 every recipe's quotient is a chain of correctly
    rounded float32 operations by positive constants, so it rises with the amax, as do the
    clamp and the saturating round-to-nearest E4M3 cast: the byte is a non-decreasing
    function of ``t`` on 0 .. 0x7F800000 (Inf), except on the prefix where a zero block's
    scale replaces it. Entry 0 is that prefix's end Z (:func:`zero_prefix_end`), entry 1 its
    byte, entry 1 + b the least ``t`` >= Z whose byte is >= b (b = 1..126,
    :func:`least_amax_of`), entry 128 a sentinel. Usable when :func:`bounds_apply` and every
    bound checks (:func:`bound_checks`); otherwise the kernels compute each block's byte.
    (The GPU builds the same table a thread an entry: :mod:`.cuda.quantize`.)"""
    table = np.zeros(SCALE_BOUNDS, np.int32)
    if not bounds_apply(recipe, tensor, clamp_low, clamp_high):
        return table, False
    start, usable = bounds_head(table, recipe, tensor, clamp_low, clamp_high, zero_block,
                                zero_scale)
    for b in range(1, 127):
        table[1 + b] = least_amax_of(b, start, recipe, tensor, clamp_low, clamp_high,
                                     zero_block, zero_scale)
        usable &= bound_checks(b, table[1 + b], start, recipe, tensor, clamp_low, clamp_high,
                               zero_block, zero_scale)
    return table, usable


@njit(cache=True, error_model="numpy")
def bounds_head(table, recipe, tensor, clamp_low, clamp_high, zero_block, zero_scale):
    """Write entries 0 and 1 of :func:`nvfp4_scale_bounds`'s ``table`` (the zero block's
    prefix end and byte) and its sentinel; return (the prefix end, whether Inf's byte is at
    most 126, as the bisections need)."""
    start = zero_prefix_end(recipe, tensor, clamp_low, clamp_high, zero_block)
    table[0] = start
    table[1] = amax_scale(0, recipe, tensor, clamp_low, clamp_high, zero_block, zero_scale)
    table[SCALE_BOUNDS - 1] = 0x7FFFFFFF
    return start, amax_scale(0x7F800000, recipe, tensor, clamp_low, clamp_high, zero_block,
                             zero_scale) <= 126


@njit(cache=True, error_model="numpy")
def bounds_apply(recipe, tensor, clamp_low, clamp_high):
    """Whether :func:`nvfp4_scale_bounds` can hold: a finite tensor operand > 0, ordered
    clamps, a recipe other than MLX's."""
    return 0.0 < tensor < math.inf and clamp_low <= clamp_high and recipe != RECIPE_MLX


@njit(cache=True, error_model="numpy")
def zero_prefix_end(recipe, tensor, clamp_low, clamp_high, zero_block):
    """The least amax bits outside the zero block's prefix (:func:`_in_zero_prefix`), by
    bisection over 0 .. 0x7F800001."""
    low, high = 0, 0x7F800000 + 1
    while low < high:
        middle = (low + high) // 2
        if _in_zero_prefix(middle, recipe, tensor, clamp_low, clamp_high, zero_block):
            low = middle + 1
        else:
            high = middle
    return low


@njit(cache=True, error_model="numpy")
def least_amax_of(b, start, recipe, tensor, clamp_low, clamp_high, zero_block, zero_scale):
    """The least amax bits ``t`` >= ``start`` whose byte is >= ``b``, by bisection (above
    0x7F800000 when none is)."""
    low, high = start, 0x7F800000 + 1
    while low < high:
        middle = (low + high) // 2
        if amax_scale(middle, recipe, tensor, clamp_low, clamp_high, zero_block,
                       zero_scale) >= b:
            high = middle
        else:
            low = middle + 1
    return low


@njit(cache=True, error_model="numpy")
def bound_checks(b, low, start, recipe, tensor, clamp_low, clamp_high, zero_block,
                 zero_scale):
    """Whether byte ``b``'s bound ``low`` holds: its byte is >= b and the bits just below
    (past the prefix) have a byte < b."""
    ok = True
    if low <= 0x7F800000:
        ok &= amax_scale(low, recipe, tensor, clamp_low, clamp_high, zero_block,
                          zero_scale) >= b
    if low > start:
        ok &= amax_scale(low - 1, recipe, tensor, clamp_low, clamp_high, zero_block,
                          zero_scale) < b
    return ok


@njit(cache=True, error_model="numpy")
def scale_by_bounds(t, bounds):
    """The E4M3 byte of a block whose amax has float32 bits ``t`` (0 .. 0x7F800000) from
    :func:`nvfp4_scale_bounds`'s table: the zero block's byte in the prefix, else the
    number of bytes 1..126 whose least amax is at most ``t`` (a bisection of 7 steps)."""
    if t < bounds[0]:
        return bounds[1]
    byte = 0
    for step in (64, 32, 16, 8, 4, 2, 1):
        if t >= bounds[1 + byte + step]:
            byte += step
    return byte


@njit(cache=True, error_model="numpy")
def nvfp4_divisor(byte, recipe, tensor):
    """(d, multiply) for the elements of a block with scale ``byte``."""
    scale = e4m3_decode(byte)
    if recipe == RECIPE_PLAIN or recipe == RECIPE_MLX:  # MLX: then * E, per element
        return scale, False
    if recipe == RECIPE_MODELOPT or recipe == RECIPE_COMFY:
        return f32(scale * tensor), False
    if recipe == RECIPE_CT:
        return divide(scale, tensor), False
    return divide(divide(1.0, tensor), scale), True


