"""E2M1 elements inside a block: from a scaled magnitude to a 4-bit code.

OCP MX v1.0 section 6.3 quantizes each element as ``V_i / X`` rounded to E2M1 (nearest,
saturating to 6). fp4ref computes that quotient as one float32 operation (see
:func:`fp4ref.spec.scale_rules.quotient`), which is exact for power-of-two MX scales and is
what every NVFP4 producer does. Two conventions are named here: the tie rule
(:data:`fp4ref.spec.rounding.TIE_RULES`) and what sign a zero code carries.
"""

from __future__ import annotations

import math
from fractions import Fraction

from .e2m1 import MAGNITUDES
from .rounding import nearest_code

#: Sign of a code whose magnitude rounds to 0: ``"keep"`` the input's sign bit (-0.0 and
#: negatives give 0x8: OCP, torchao, gfloat); ``"negative"``: 0x8 only for inputs < 0 (-0.0
#: gives 0x0: qwantize); ``"drop"``: always 0x0 (ggml); ``"quotient"``: 0x8 only when the
#: signed float32 quotient x / d is < 0, so a negative x whose quotient underflows to -0
#: (x / Inf) gives 0x0 too (ModelOpt NVFP4QTensor ``_cast_fp4``'s ``weight < 0``,
#: compressed-tensors ``cast_to_fp4``).
ZERO_SIGNS = ("keep", "negative", "drop", "quotient")


def element_code(x: float, magnitude: float, rounding: str, zero_sign: str) -> int:
    """The E2M1 code of the element ``x`` whose scaled magnitude is ``magnitude``.

    ``magnitude`` is float32(|x| / d) (NaN only for 0 / 0, i.e. x = 0; +Inf saturates to 6).
    """
    if magnitude != magnitude:
        code = 0
    elif math.isinf(magnitude):
        code = 7
    else:
        code = nearest_code(Fraction(magnitude), MAGNITUDES, rounding)
    negative_bit = math.copysign(1.0, x) < 0
    if code == 0:
        if zero_sign == "drop" or (zero_sign == "negative" and not x < 0):
            negative_bit = False
        if zero_sign == "quotient" and not (x < 0 and magnitude > 0):
            negative_bit = False
    return code | (0x8 if negative_bit else 0)
