"""E4M3, OFP8's "E4M3FN": the NVFP4 block scale (OCP OFP8 v1.0 section 5).

Eight bits ``s eeee mmm``: exponent bias 7, subnormals at exponent 0, no infinity, and the
only NaN is S.1111.111 (0x7F, 0xFF). Largest finite magnitude 448 (0x7E), smallest
subnormal 2^-9 (0x01).
"""

from __future__ import annotations

import math
from fractions import Fraction

from .rounding import check_tie_rule, nearest_code

EXPONENT_BIAS = 7
MAX_NORMAL = 448.0
#: The NaN pattern without its sign bit (OFP8 v1.0: S.1111.111).
NAN = 0x7F
#: The largest finite pattern without its sign bit.
MAX_CODE = 0x7E


def magnitude(code: int) -> Fraction:
    """Exact magnitude the low seven bits of ``code`` stand for, read as if 0x7F were finite.

    0x7F would be 480 under the normal-number formula; :func:`encode` uses that value as the
    overflow threshold (OFP8 v1.0 rounds with an unbounded exponent, then checks overflow).
    """
    exponent, mantissa = (code >> 3) & 0b1111, code & 0b111
    if exponent == 0:  # subnormal: 0.mmm x 2^(1 - bias)
        return Fraction(mantissa, 8) * Fraction(2) ** (1 - EXPONENT_BIAS)
    return (1 + Fraction(mantissa, 8)) * Fraction(2) ** (exponent - EXPONENT_BIAS)


def decode(byte: int) -> float:
    """Value of the E4M3 ``byte``; 0x7F and 0xFF are NaN, 0x80 is -0.0."""
    if not 0 <= byte <= 0xFF:
        raise ValueError(f"byte must be in 0..255; got {byte}")
    if byte & 0x7F == NAN:
        return math.nan
    value = float(magnitude(byte))
    return -value if byte & 0x80 else value


#: (magnitude, code) for 0x00..0x7F; 0x7F stands for 480, the first value past overflow.
MAGNITUDES = tuple((magnitude(code), code) for code in range(0x80))


#: How an encode writes NaN (an input NaN, or an overflow under ``saturate=False``):
#: ``"sign"`` 0x7F or 0xFF by the sign of the input (fp4ref, torch, ml_dtypes); ``"gfloat"``
#: always 0xFF (gfloat 0.5 ``encode_float(format_info_ocp_e4m3, nan)``, whatever the sign).
NAN_CODES = ("sign", "gfloat")


def encode(x: float, rounding: str = "even", saturate: bool = True, nan: str = "sign") -> int:
    """The E4M3 code nearest to ``x``.

    Parameters
    ----------
    x : float
        Any float; it is taken exactly.
    rounding : {"even", "away", "zero"}
        Tie rule. Under ``"even"`` 464 (halfway between 448 and 480) rounds to 448.
    saturate : bool
        What happens when the rounded magnitude exceeds 448 (OFP8 v1.0 allows both):
        ``True`` clamps to +-448, ``False`` gives NaN. Infinity follows the same rule.
    nan : {"sign", "gfloat"}
        The NaN byte (:data:`NAN_CODES`).

    Returns
    -------
    int
        The byte. NaN encodes to 0x7F with the NaN's sign bit (``nan="sign"``) or to 0xFF
        (``nan="gfloat"``); the sign of zero is kept.
    """
    check_tie_rule(rounding)
    if nan not in NAN_CODES:
        raise ValueError(f"nan must be one of {NAN_CODES}; got {nan!r}")
    sign = 0x80 if math.copysign(1.0, x) < 0 else 0
    nan_byte = 0xFF if nan == "gfloat" else sign | NAN
    if math.isnan(x):
        return nan_byte
    code = NAN if math.isinf(x) else nearest_code(abs(Fraction(x)), MAGNITUDES, rounding)
    if code == NAN:  # overflow: the nearest magnitude is past 448
        return sign | MAX_CODE if saturate else nan_byte
    return sign | code


def encode_ggml(x: float) -> int:
    """ggml's ``ggml_fp32_to_ue4m3`` (ggml-impl.h) of the float32 value ``x``: the NVFP4
    block-scale byte of the ggml profile (:data:`fp4ref.profiles.E4M3_ENCODES`).

    Not a nearest rounding: NaN, zero and negatives give 0x00; x > 448 becomes 448; below
    2^-6 the byte is ``(int)(f32(f32(x * 512) + 0.5))`` (a float32 add, then truncation),
    capped at 7 (so [15/1024, 2^-6) gives 0x07, not 0x08); otherwise the top three mantissa
    bits of x plus its fourth (ties away from zero), and any exponent field of 15 (x >= 248
    once rounded) gives 0x7E (448): 0x78..0x7D are never produced.
    """
    import numpy as np

    if not x > 0:
        return 0
    x = min(float(np.float32(x)), MAX_NORMAL)
    bits = int(np.array(x, np.float32).view(np.uint32))
    exponent = ((bits >> 23) & 0xFF) - 127 + EXPONENT_BIAS
    if exponent <= 0:  # (int)(x * 512.0f + 0.5f), each step one float32 operation
        steps = int(float(np.float32(float(np.float32(x * 512.0)) + 0.5)))
        steps = min(steps, 7)
        return steps if steps >= 1 else 0
    if exponent >= 15:
        return MAX_CODE
    mantissa = ((bits >> 20) & 0x7) + ((bits >> 19) & 1)
    if mantissa > 7:
        mantissa = 0
        exponent += 1
        if exponent >= 15:
            return MAX_CODE
    return (exponent << 3) | mantissa
