"""Rounding an exact value to a code, literally.

Two operations every format in fp4ref needs, written with exact rational arithmetic
(:class:`fractions.Fraction`) so that they read like the definitions:

* :func:`nearest_code` -- round a non-negative exact value to the nearest entry of a
  format's table of magnitudes, with a named tie rule (used by E2M1 and E4M3 encode).
* :func:`round_to_binary` -- round an exact value to an IEEE 754 binary format (float32,
  bfloat16, float16) with round-to-nearest-even, as IEEE 754-2019 section 4.3.1 defines it
  (used for the output dtypes of dequantization).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from fractions import Fraction

#: Tie rules, by name. A tie is an input exactly halfway between two adjacent codes.
#: ``"even"``: the code whose mantissa's last bit is 0 (OCP MX v1.0 section 5.3.3: RNE);
#: ``"away"``: the code of larger magnitude; ``"zero"``: the code of smaller magnitude.
TIE_RULES = ("even", "away", "zero")


def check_tie_rule(rounding: str) -> str:
    """Return ``rounding`` if it names a tie rule, else raise ``ValueError``."""
    if rounding not in TIE_RULES:
        raise ValueError(f"rounding must be one of {TIE_RULES}; got {rounding!r}")
    return rounding


def nearest_code(magnitude: Fraction, table: Sequence[tuple[Fraction, int]], rounding: str) -> int:
    """The code whose magnitude is nearest to ``magnitude``.

    Parameters
    ----------
    magnitude : Fraction
        A non-negative exact value.
    table : sequence of (Fraction, int)
        Every (magnitude, code) pair of the format, sorted by magnitude, strictly increasing.
        For a tie between two entries the mantissa's last bit is the code's bit 0.
    rounding : {"even", "away", "zero"}
        The tie rule.

    Returns
    -------
    int
        The code. Magnitudes beyond the last entry round to the last entry.
    """
    magnitudes = [m for m, _ in table]
    above = bisect.bisect_left(magnitudes, magnitude)
    if above == 0:
        return table[0][1]
    if above == len(table):
        return table[-1][1]
    (lo_value, lo_code), (hi_value, hi_code) = table[above - 1], table[above]
    below_distance, above_distance = magnitude - lo_value, hi_value - magnitude
    if below_distance < above_distance:
        return lo_code
    if above_distance < below_distance:
        return hi_code
    if rounding == "away":
        return hi_code
    if rounding == "zero":
        return lo_code
    return lo_code if lo_code & 1 == 0 else hi_code


def round_to_binary(value: Fraction, negative: bool, exponent_bits: int, mantissa_bits: int) -> int:
    """Bit pattern of the IEEE 754 binary format nearest to ``(-1)^negative * value``.

    Round to nearest, ties to even; a result beyond the largest finite value becomes
    infinity (IEEE 754-2019 section 7.4). The sign of zero is kept.

    Parameters
    ----------
    value : Fraction
        The exact non-negative magnitude.
    negative : bool
        The sign.
    exponent_bits, mantissa_bits : int
        The format: (8, 23) float32, (8, 7) bfloat16, (5, 10) float16.

    Returns
    -------
    int
        The bit pattern, sign bit at ``exponent_bits + mantissa_bits``.
    """
    bias = (1 << (exponent_bits - 1)) - 1
    sign = int(negative) << (exponent_bits + mantissa_bits)
    infinity = ((1 << exponent_bits) - 1) << mantissa_bits
    if value == 0:
        return sign
    # floor(log2(value)) exactly, from the sizes of numerator and denominator.
    exponent = value.numerator.bit_length() - value.denominator.bit_length()
    if Fraction(2) ** exponent > value:
        exponent -= 1
    exponent = max(exponent, 1 - bias)  # below the normal range the quantum stays fixed
    quantum = Fraction(2) ** (exponent - mantissa_bits)
    steps = value / quantum
    whole = math.floor(steps)
    remainder = steps - whole
    if remainder > Fraction(1, 2) or (remainder == Fraction(1, 2) and whole % 2 == 1):
        whole += 1
    if whole >> (mantissa_bits + 1):  # the mantissa carried into the next binade
        whole >>= 1
        exponent += 1
    if whole < (1 << mantissa_bits):  # subnormal (or zero): biased exponent field 0
        return sign | whole
    biased = exponent + bias
    if biased >= (1 << exponent_bits) - 1:
        return sign | infinity
    return sign | (biased << mantissa_bits) | (whole - (1 << mantissa_bits))


#: (exponent_bits, mantissa_bits) of the output dtypes fp4ref produces.
BINARY_FORMATS = {"float32": (8, 23), "bfloat16": (8, 7), "float16": (5, 10)}

#: The NaN fp4ref writes, per output dtype: positive, quiet, payload 0 (fp4ref's choice).
CANONICAL_NAN = {"float32": 0x7FC00000, "bfloat16": 0x7FC0, "float16": 0x7E00}


def binary_value(bits: int, dtype: str) -> tuple[Fraction | None, bool]:
    """(magnitude, negative) of a bit pattern of ``dtype``; magnitude ``None`` for NaN,
    ``Fraction(-1)`` standing for infinity."""
    exponent_bits, mantissa_bits = BINARY_FORMATS[dtype]
    negative = bool(bits >> (exponent_bits + mantissa_bits))
    biased = (bits >> mantissa_bits) & ((1 << exponent_bits) - 1)
    mantissa = bits & ((1 << mantissa_bits) - 1)
    bias = (1 << (exponent_bits - 1)) - 1
    if biased == (1 << exponent_bits) - 1:
        return (Fraction(-1) if mantissa == 0 else None), negative
    if biased == 0:
        return Fraction(mantissa) * Fraction(2) ** (1 - bias - mantissa_bits), negative
    significand = (1 << mantissa_bits) | mantissa
    return Fraction(significand) * Fraction(2) ** (biased - bias - mantissa_bits), negative


def convert_float32(bits32: int, dtype: str) -> int:
    """Round a float32 bit pattern to ``dtype`` (nearest even; NaN becomes canonical)."""
    if dtype == "float32":
        return CANONICAL_NAN[dtype] if binary_value(bits32, dtype)[0] is None else bits32
    magnitude, negative = binary_value(bits32, "float32")
    exponent_bits, mantissa_bits = BINARY_FORMATS[dtype]
    if magnitude is None:
        return CANONICAL_NAN[dtype]
    if magnitude < 0:  # infinity
        infinity = ((1 << exponent_bits) - 1) << mantissa_bits
        return (int(negative) << (exponent_bits + mantissa_bits)) | infinity
    return round_to_binary(magnitude, negative, exponent_bits, mantissa_bits)


def exact_to_float32_bits(value: float) -> int:
    """float32 bits of a Python float (nearest even; NaN becomes the canonical NaN)."""
    if math.isnan(value):
        return CANONICAL_NAN["float32"]
    negative = math.copysign(1.0, value) < 0
    if math.isinf(value):
        return (int(negative) << 31) | 0x7F800000
    return round_to_binary(abs(Fraction(value)), negative, 8, 23)
