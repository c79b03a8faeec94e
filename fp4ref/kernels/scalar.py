"""Scalar codec functions in the subset of Python that numba compiles for CPU and GPU.

Each function here is a ``numba.njit`` dispatcher. The CPU kernels in :mod:`.cpu` call
them directly; the GPU kernels in :mod:`.cuda` call the very same dispatchers, which
numba-cuda recompiles from the same Python source as device functions. So the two fast
backends cannot drift apart; the plain-Python oracle in :mod:`fp4ref.spec` is written
independently and checks both.

Conventions arrive as the kernel integers of :mod:`.options`; codes and bit patterns are
Python/numba integers; floats are float32 or float64 and every operation on them is exact
unless a comment says it rounds.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .options import (
    E4M3_NAN_GFLOAT,
    HIGH_FIRST,
    LAYOUT_8X4,
    LAYOUT_128X4,
    NAN_ML_DTYPES,
    NAN_SIGN,
    NAN_TORCHAO,
    OUT_BFLOAT16,
    OUT_FLOAT16,
    SPLIT_HALF,
    TIE_AWAY,
    TIE_EVEN,
    ZERO_DROP,
    ZERO_NEGATIVE,
    ZERO_QUOTIENT,
)

#: Canonical NaNs written by fp4ref (positive, quiet, zero payload).
NAN_F32, NAN_BF16, NAN_F16 = 0x7FC00000, 0x7FC0, 0x7E00

# Halfway points between adjacent E2M1 magnitudes 0, .5, 1, 1.5, 2, 3, 4, 6.
_E2M1_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)


@njit(cache=True)
def round_tie(steps, tie):
    """Round a non-negative count of quanta to an integer with the tie rule ``tie``."""
    whole = math.floor(steps)
    rest = steps - whole
    if rest > 0.5 or (rest == 0.5 and (tie == TIE_AWAY or (tie == TIE_EVEN and whole % 2 == 1))):
        whole += 1
    return int(whole)


@njit(cache=True)
def is_negative(x):
    """The sign bit of ``x`` (NaN and zero included)."""
    return math.copysign(1.0, x) < 0


@njit(cache=True)
def e2m1_decode(code):
    """Value of an E2M1 code 0..15 as float64 (OCP MX v1.0 section 5.3.3)."""
    exponent = (code >> 1) & 3
    mantissa = code & 1
    if exponent == 0:
        magnitude = 0.5 * mantissa
    else:
        magnitude = math.ldexp(1.0 + 0.5 * mantissa, exponent - 1)
    return -magnitude if code & 8 else magnitude


@njit(cache=True)
def e2m1_encode(x, tie):
    """Nearest E2M1 code to ``x`` (float32 or float64) under ``tie``.

    Saturates to +-6 (OCP MX v1.0 section 5.3.3); keeps the sign of zero; NaN gives a
    zero with the NaN's sign bit.
    """
    sign = 8 if is_negative(x) else 0
    if x != x:
        return sign
    a = abs(x)
    code = 0
    for mid in _E2M1_MIDPOINTS:
        if a > mid:
            code += 1
        elif a == mid:  # tie between code and code + 1; the even code has mantissa bit 0
            if tie == TIE_AWAY or (tie == TIE_EVEN and code % 2 == 1):
                code += 1
            break
        else:
            break
    return sign | code


@njit(cache=True)
def e2m1_nan_code(negative, bits, nan):
    """E2M1 code of a NaN with sign bit ``negative`` and float32 bit pattern ``bits`` (read
    by ``"torchao"`` only) under the choice ``nan`` (:data:`fp4ref.spec.e2m1.NAN_CODES`;
    ``"refuse"`` is the caller's, like ``"compressed-tensors"`` it gives 0 here)."""
    sign = 8 if negative else 0
    if nan == NAN_SIGN:
        return sign
    if nan == NAN_ML_DTYPES:  # the opposite sign (ml_dtypes astype(float4_e2m1fn))
        return 8 - sign
    if nan == NAN_TORCHAO:  # torchao _f32_to_floatx_unpacked: the normal branch on the bits
        a = bits & 0x7FFFFFFF
        return (((a - (126 << 23) + 0x1FFFFF + ((a >> 22) & 1)) >> 22) & 0xFF) | sign
    return 0


@njit(cache=True)
def e2m1_encode_with(x, bits, tie, zero_sign, nan):
    """:func:`e2m1_encode` with the sign of a zero code by ``zero_sign``
    (:data:`fp4ref.spec.elements.ZERO_SIGNS`) and NaN coded by ``nan``
    (:func:`e2m1_nan_code`; ``bits`` is the float32 bit pattern of ``x``, read for NaN)."""
    if x != x:
        return e2m1_nan_code(is_negative(x), bits, nan)
    code = e2m1_encode(x, tie)
    # ZERO_QUOTIENT: a scalar's quotient is x itself, so as ZERO_NEGATIVE
    negative_only = zero_sign == ZERO_NEGATIVE or zero_sign == ZERO_QUOTIENT
    if code == 8 and (zero_sign == ZERO_DROP or (negative_only and not x < 0)):
        return 0
    return code


@njit(cache=True)
def e4m3_encode_with(x, tie, saturate, nan):
    """:func:`e4m3_encode` with NaN results written by ``nan``
    (:data:`fp4ref.spec.e4m3.NAN_CODES`: gfloat's 0xFF whatever the sign)."""
    byte = e4m3_encode(x, tie, saturate)
    if nan == E4M3_NAN_GFLOAT and byte & 0x7F == 0x7F:
        return 0xFF
    return byte


@njit(cache=True)
def e8m0_decode(byte):
    """Value of an E8M0 byte as float64: 2^(byte - 127); NaN for 0xFF (MX v1.0 5.4.1)."""
    if byte == 0xFF:
        return math.nan
    return math.ldexp(1.0, byte - 127)


@njit(cache=True)
def e4m3_decode(byte):
    """Value of an E4M3 byte as float64 (OFP8 v1.0); 0x7F and 0xFF are NaN."""
    exponent = (byte >> 3) & 15
    mantissa = byte & 7
    if exponent == 15 and mantissa == 7:
        return math.nan
    if exponent == 0:
        magnitude = math.ldexp(float(mantissa), -9)
    else:
        magnitude = math.ldexp(float(8 + mantissa), exponent - 10)
    return -magnitude if byte & 0x80 else magnitude


@njit(cache=True)
def e4m3_encode(x, tie, saturate):
    """Nearest E4M3 byte to ``x`` (float32 or float64) under ``tie``.

    Rounds with an unbounded exponent, then: a magnitude past 448 (and infinity) becomes
    +-448 if ``saturate`` else NaN (OFP8 v1.0 allows both). NaN gives 0x7F with the NaN's
    sign bit; the sign of zero is kept.
    """
    sign = 0x80 if is_negative(x) else 0
    if x != x:
        return sign | 0x7F
    a = abs(float(x))
    if a >= 512.0:
        return sign | (0x7E if saturate else 0x7F)
    exponent = -6  # below 2^-6 the quantum stays 2^-9 (subnormals)
    if a >= 0.015625:
        exponent = math.frexp(a)[1] - 1
    steps = round_tie(math.ldexp(a, 3 - exponent), tie)  # a / 2^(exponent - 3), exact
    if steps < 8:  # subnormal or zero: exponent field 0
        code = steps
    else:
        if steps == 16:
            steps = 8
            exponent += 1
        code = ((exponent + 7) << 3) | (steps - 8)
    if code > 0x7E:
        return sign | (0x7E if saturate else 0x7F)
    return sign | code


@njit(cache=True)
def float32_bits(x):
    """IEEE bit pattern of the float32 value ``x``; NaN gives the canonical 0x7FC00000."""
    if x != x:
        return NAN_F32
    sign = 0x80000000 if is_negative(x) else 0
    a = abs(float(x))
    if a == 0.0:
        return sign
    if a == math.inf:
        return sign | 0x7F800000
    fraction, exponent = math.frexp(a)  # a = fraction * 2^exponent, fraction in [0.5, 1)
    biased = exponent + 126
    if biased >= 1:
        return sign | (biased << 23) | (int(math.ldexp(fraction, 24)) - 0x800000)
    return sign | int(math.ldexp(a, 149))


@njit(cache=True)
def bfloat16_from_float32_bits(bits):
    """bfloat16 bits nearest (ties to even) to the float32 with ``bits``."""
    if bits & 0x7FFFFFFF > 0x7F800000:
        return NAN_BF16
    return (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16


@njit(cache=True)
def float16_from_float32_bits(bits):
    """float16 bits nearest (ties to even) to the float32 with ``bits``; overflow gives Inf."""
    sign = (bits >> 16) & 0x8000
    magnitude = bits & 0x7FFFFFFF
    if magnitude > 0x7F800000:
        return NAN_F16
    exponent = (magnitude >> 23) - 127
    if exponent > 15:
        return sign | 0x7C00
    if exponent < -25:  # below half the smallest subnormal 2^-24
        return sign
    significand = (magnitude & 0x7FFFFF) | 0x800000  # 24 bits
    if exponent >= -14:
        shift = 13
        half = significand >> shift  # includes the implicit bit
        result = ((exponent + 15) << 10) + (half - 0x400)
    else:
        shift = -exponent - 1  # 14..24
        result = significand >> shift
    rest = significand & ((1 << shift) - 1)
    halfway = 1 << (shift - 1)
    if rest > halfway or (rest == halfway and result & 1):
        result += 1  # a carry into the exponent field is the correct next binade (or Inf)
    return sign | result


@njit(cache=True)
def byte_elements(i, order, block_size):
    """Elements (low nibble, high nibble) of packed byte ``i`` of a row, under ``order``."""
    if order == SPLIT_HALF:  # ggml: byte j of a block holds elements j and j + block / 2
        half = block_size // 2
        first = (i // half) * block_size + i % half
        return first, first + half
    if order == HIGH_FIRST:
        return 2 * i + 1, 2 * i
    return 2 * i, 2 * i + 1


@njit(cache=True)
def element_nibble(e, order, block_size):
    """Byte of a row holding element ``e``, and the shift of its nibble (0 or 4).

    The inverse of :func:`byte_elements`, for kernels that work from the output side.
    """
    if order == SPLIT_HALF:
        half = block_size // 2
        p = e % block_size
        return (e // block_size) * half + p % half, 4 * (p // half)
    if order == HIGH_FIRST:
        return e // 2, 4 - 4 * (e % 2)
    return e // 2, 4 * (e % 2)


@njit(cache=True)
def output_bits(value, out_kind):
    """Bits of the float32 ``value`` in the output encoding ``out_kind``."""
    bits = float32_bits(value)
    if out_kind == OUT_BFLOAT16:
        return bfloat16_from_float32_bits(bits)
    if out_kind == OUT_FLOAT16:
        return float16_from_float32_bits(bits)
    return bits


@njit(cache=True)
def binary_value(bits, exponent_bits, mantissa_bits):
    """Value (float64) of an IEEE binary format's bit pattern; NaN and infinities too."""
    negative = (bits >> (exponent_bits + mantissa_bits)) & 1
    biased = (bits >> mantissa_bits) & ((1 << exponent_bits) - 1)
    mantissa = bits & ((1 << mantissa_bits) - 1)
    bias = (1 << (exponent_bits - 1)) - 1
    if biased == (1 << exponent_bits) - 1:
        value = math.inf if mantissa == 0 else math.nan
    elif biased == 0:
        value = math.ldexp(float(mantissa), 1 - bias - mantissa_bits)
    else:
        value = math.ldexp(float(mantissa | (1 << mantissa_bits)), biased - bias - mantissa_bits)
    return -value if negative else value


@njit(cache=True)
def rounded(x, out_kind):
    """``x`` (float64) rounded to float32 and then to the output encoding ``out_kind``, as
    torch and MLX round a product of half-precision tensors (computed in float32)."""
    bits = output_bits(np.float32(x), out_kind)
    if out_kind == OUT_BFLOAT16:
        return binary_value(bits, 8, 7)
    if out_kind == OUT_FLOAT16:
        return binary_value(bits, 5, 10)
    return binary_value(bits, 8, 23)


@njit(cache=True)
def scale_offset(r, c, cols, layout):
    """Offset of scale ``(r, c)`` in one stored matrix of ``cols`` columns (layouts.md)."""
    col_tiles = (cols + 3) // 4
    if layout == LAYOUT_128X4:
        tile = (r // 128) * col_tiles + c // 4
        return tile * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4
    if layout == LAYOUT_8X4:
        return (r // 8) * col_tiles * 32 + (c // 4) * 32 + (r % 8) * 4 + c % 4
    return r * cols + c
