"""E2M1, the FP4 element of MXFP4 and NVFP4 (OCP MX v1.0 section 5.3.3).

Four bits ``s ee m``: sign, a 2-bit exponent with bias 1, a 1-bit mantissa. No infinity,
no NaN. The magnitudes are 0, 0.5, 1, 1.5, 2, 3, 4 and 6.
"""

from __future__ import annotations

import math
from fractions import Fraction

from .rounding import check_tie_rule, nearest_code

EXPONENT_BIAS = 1
#: The largest magnitude; encoding saturates here (OCP MX v1.0 section 5.3.3).
MAX_NORMAL = 6.0
#: emax_elem, the exponent of the largest power of two (OCP MX v1.0 section 6.3).
EMAX = 2


def magnitude(code: int) -> Fraction:
    """Exact magnitude of the low three bits of ``code``."""
    exponent, mantissa = (code >> 1) & 0b11, code & 0b1
    if exponent == 0:  # subnormal: 0.m x 2^(1 - bias)
        return Fraction(mantissa, 2)
    return (1 + Fraction(mantissa, 2)) * Fraction(2) ** (exponent - EXPONENT_BIAS)


def decode(code: int) -> float:
    """Value of the E2M1 ``code`` (0..15); code 0x8 is -0.0.

    Every E2M1 value is exactly representable as a Python float.
    """
    if not 0 <= code <= 0xF:
        raise ValueError(f"code must be in 0..15; got {code}")
    value = float(magnitude(code))
    return -value if code & 0b1000 else value


#: (magnitude, code) for the eight non-negative codes, in increasing order.
MAGNITUDES = tuple((magnitude(code), code) for code in range(8))


def encode(x: float, rounding: str = "even") -> int:
    """The E2M1 code nearest to ``x``.

    Parameters
    ----------
    x : float
        Any float; it is taken exactly.
    rounding : {"even", "away", "zero"}
        Tie rule (see :data:`fp4ref.spec.rounding.TIE_RULES`).

    Returns
    -------
    int
        The code 0..15. Magnitudes above 6 (infinity included) saturate to +-6, keeping the
        sign (OCP MX v1.0 section 5.3.3). The sign of zero is kept. NaN, which the spec
        leaves open, encodes to a zero carrying the NaN's sign bit: fp4ref's choice, because
        in an MX block the scale, not the element, carries the NaN.
    """
    check_tie_rule(rounding)
    sign = 0b1000 if math.copysign(1.0, x) < 0 else 0
    if math.isnan(x):
        return sign
    if math.isinf(x):
        return sign | 0b0111
    return sign | nearest_code(abs(Fraction(x)), MAGNITUDES, rounding)
