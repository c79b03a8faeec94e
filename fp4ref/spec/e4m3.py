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
