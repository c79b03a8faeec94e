"""ggml's conventions as numba scalar functions: the fast layer's twin of
:func:`fp4ref.spec.elements.ggml_code`, :func:`fp4ref.spec.e4m3.encode_ggml` and the
``"ggml"`` / ``"gguf-py"`` non-finite policies of :func:`fp4ref.spec.mx.quantize_block`
and :func:`fp4ref.spec.nvfp4.quantize_block`.

:func:`ggml_block` quantizes one block under a profile choosing any of them
(:attr:`fp4ref.kernels.options.QuantizeOptions.ggml`); it compiles for the CPU (the
``"mxfp4-ggml"`` / ``"nvfp4-ggml"`` kernels of :mod:`.cpu.quantize`) and, as a device
function, for the GPU (:mod:`.cuda.quantize`). Scalar code only: ggml's element search
is 16 float32 errors per element, not the thresholds of :mod:`.elements`, so the vector
paths of :mod:`.cpu.simd` are bypassed for these profiles.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .elements import element_code
from .options import (
    ELEMENT_GGML,
    ENCODE_E4M3_GGML,
    NONFINITE_GGML,
    NONFINITE_GGUF_PY,
    NONFINITE_NAN_SCALE,
    RECIPE_CT,
)
from .quantize_block import e8m0_reciprocal32
from .scalar import float32_bits
from .scale_rules import (
    f32,
    mx_scale,
    nvfp4_block_quotient,
    nvfp4_block_scale,
    nvfp4_divisor,
)

#: ggml's ``kvalues_mxfp4`` (ggml-common.h): the E2M1 magnitudes doubled, by code.
KVALUES = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 0.0, -1.0, -2.0, -3.0, -4.0, -6.0, -8.0,
           -12.0)


@njit(cache=True, error_model="numpy")
def ggml_code(x, half):
    """ggml's ``best_index_mxfp4(x, e)`` for the float32 element ``x`` and half scale
    ``half``: the first code of the least float32 ``fabsf(k * e - x)`` (a NaN or Inf error
    is never less, so NaN and Inf elements get code 0 and an overflowing product is
    skipped)."""
    v = np.float32(x)
    e = np.float32(half)
    best = 0
    best_error = abs(np.float32(KVALUES[0]) * e - v)
    for code in range(1, 16):
        error = abs(np.float32(KVALUES[code]) * e - v)
        if error < best_error:
            best = code
            best_error = error
    return best


@njit(cache=True, error_model="numpy")
def e8m0_half(scale):
    """ggml's ``ggml_e8m0_to_fp32_half(s)`` = 2^(s - 128) as float32, from its bits (s in
    0..255; 0 and 1 subnormal)."""
    bits = (0x00200000 << scale) if scale < 2 else (scale - 1) << 23
    return np.uint32(bits).view(np.float32)


@njit(cache=True, error_model="numpy")
def e4m3_encode_ggml(x):
    """ggml's ``ggml_fp32_to_ue4m3`` of the float32 value ``x`` (given as float64)."""
    if not x > 0.0:
        return 0
    if x > 448.0:
        x = 448.0
    bits = float32_bits(x)
    exponent = ((bits >> 23) & 0xFF) - 120  # float32 exponent + 7
    if exponent <= 0:  # (int)(x * 512.0f + 0.5f), each step a float32 operation
        steps = int(np.float32(np.float32(x * 512.0) + np.float32(0.5)))
        steps = min(steps, 7)
        return steps if steps >= 1 else 0
    if exponent >= 15:
        return 0x7E
    mantissa = ((bits >> 20) & 7) + ((bits >> 19) & 1)
    if mantissa > 7:
        mantissa = 0
        exponent += 1
        if exponent >= 15:
            return 0x7E
    return (exponent << 3) | mantissa


@njit(cache=True, error_model="numpy")
def nv_scale_encoded(amax, recipe, tensor, clamp_low, clamp_high, zero_block, zero_scale,
                     encode):
    """:func:`..scale_rules.nvfp4_block_scale` with the E4M3 cast ``encode``
    (:data:`..options.ENCODE_E4M3_GGML`: :func:`e4m3_encode_ggml` of the recipe's
    :func:`..scale_rules.nvfp4_block_quotient`)."""
    if encode != ENCODE_E4M3_GGML:
        return nvfp4_block_scale(amax, recipe, tensor, clamp_low, clamp_high, zero_block,
                                 zero_scale)
    y = nvfp4_block_quotient(amax, recipe, tensor, clamp_low, clamp_high, zero_block,
                             zero_scale)
    if y != y:
        return 0x7F
    byte = e4m3_encode_ggml(y)
    if recipe == RECIPE_CT and byte == 0 and zero_block:
        byte = e4m3_encode_ggml(zero_scale)
    return byte


@njit(cache=True, error_model="numpy")
def ggml_block(row, nv, rule, tensor, clamp_low, clamp_high, zero_block, zero_scale,
               nonfinite, element_rule, encode, tie, zero_sign, codes):
    """Quantize one block ``row`` (float32 values) into ``codes`` (one code per element)
    and return its scale byte, as :func:`fp4ref.spec.mx.quantize_block` (``nv`` False,
    ``rule`` the MXFP4 scale rule, ``zero_block`` / ``zero_scale`` the profile's
    ``mx_zero_block_scale``) or :func:`fp4ref.spec.nvfp4.quantize_block` (``nv``, ``rule``
    the recipe) do with ``nonfinite``, ``element_rule`` and ``encode``."""
    n = row.shape[0]
    amax = np.float32(0.0)
    has_nan = False
    has_inf = False
    for i in range(n):
        a = abs(np.float32(row[i]))
        if a != a:
            has_nan = True
        else:
            has_inf = has_inf or a == np.float32(math.inf)
            if amax < a:  # ggml's max: a NaN never enters
                amax = a
    ggml = nonfinite == NONFINITE_GGML or nonfinite == NONFINITE_GGUF_PY
    bad = not ggml and (has_nan or (has_inf and (not nv or nonfinite == NONFINITE_NAN_SCALE)))
    if bad:
        for i in range(n):
            codes[i] = 0
        return 0x7F if nv else 0xFF
    if nv:
        scale = nv_scale_encoded(float(amax), rule, tensor, clamp_low, clamp_high, zero_block,
                                 zero_scale, encode)
        d, multiply = nvfp4_divisor(scale, rule, tensor)
        nan_byte = scale & 0x7F == 0x7F
        half = np.float32(f32(d * 0.5))
        for i in range(n):
            if nan_byte:
                codes[i] = 0
            elif element_rule == ELEMENT_GGML:
                codes[i] = ggml_code(row[i], half)
            else:
                codes[i] = element_code(row[i], np.float32(d), multiply, tie, zero_sign)
        return scale
    if ggml and (amax == np.float32(math.inf) or (nonfinite == NONFINITE_GGUF_PY and has_nan)):
        scale = 0  # ggml: (uint8_t) of an infinite exponent (x86-64); gguf-py: NaN max
    elif amax == np.float32(0.0) and zero_block:
        scale = int(zero_scale)
    else:
        scale = mx_scale(float(amax), rule)
    half = e8m0_half(scale)
    reciprocal = e8m0_reciprocal32(min(scale, 254))
    for i in range(n):
        if element_rule == ELEMENT_GGML:
            codes[i] = ggml_code(row[i], half)
        elif scale == 255:  # the nearest rule's zero codes under 0xFF (as the oracle)
            codes[i] = 0
        else:
            codes[i] = element_code(row[i], reciprocal, True, tie, zero_sign)
    return scale
