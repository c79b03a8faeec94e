"""E8M0, the MX scale (OCP MX v1.0 section 5.4.1).

Eight bits of unsigned biased exponent: value 2^(e - 127) for e in 0..254; 0xFF is NaN.
No zero, no sign, no infinity. Byte 0x00 is 2^-127, not zero.
"""

from __future__ import annotations

import math

EXPONENT_BIAS = 127
#: The only NaN encoding (OCP MX v1.0 section 5.4.1).
NAN = 0xFF


def decode(byte: int) -> float:
    """Value of the E8M0 ``byte``: 2^(byte - 127), NaN for 0xFF.

    Every value is exactly representable as a Python float (2^-127 included).
    """
    if not 0 <= byte <= 0xFF:
        raise ValueError(f"byte must be in 0..255; got {byte}")
    if byte == NAN:
        return math.nan
    return math.ldexp(1.0, byte - EXPONENT_BIAS)
