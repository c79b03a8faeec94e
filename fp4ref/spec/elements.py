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

import numpy as np

from .e2m1 import MAGNITUDES
from .rounding import nearest_code

#: The E2M1 magnitudes of codes 0..7 as floats.
MAGNITUDES_F = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)

#: Sign of a code whose magnitude rounds to 0: ``"keep"`` the input's sign bit (-0.0 and
#: negatives give 0x8: OCP, torchao, gfloat); ``"negative"``: 0x8 only for inputs < 0 (-0.0
#: gives 0x0: qwantize); ``"drop"``: always 0x0 (ggml); ``"quotient"``: 0x8 only when the
#: signed float32 quotient x / d is < 0, so a negative x whose quotient underflows to -0
#: (x / Inf) gives 0x0 too (ModelOpt NVFP4QTensor ``_cast_fp4``'s ``weight < 0``,
#: compressed-tensors ``cast_to_fp4``); ``"not-positive"``: 0x8 unless the signed float32
#: quotient is > 0, so +-0, positives that underflow to +0, negatives and NaN quotients all
#: give 0x8 (ModelOpt 0.47 MXFP4QTensor ``cast_fp4``: ``(2 - torch.sign(q)) // 2``, and
#: ``torch.sign`` is 0 for +-0 and NaN).
ZERO_SIGNS = ("keep", "negative", "drop", "quotient", "not-positive")


def argmin_code(magnitude: float) -> int:
    """MLX's E2M1 magnitude code of a float32 scaled magnitude (``argmin(abs(q - lut))``,
    :data:`fp4ref.profiles.ELEMENT_RULES` ``"argmin"``): the first of the codes 0..7 whose
    float32 distance ``|float32(q - v)|`` is least (a NaN distance is never less). On the
    signed 16-entry table a negative q has the same distances to the negative entries, and
    +0 (code 0) comes before -0, so the magnitude code is this one and a zero code is +0.
    """
    with np.errstate(invalid="ignore", over="ignore"):
        q = np.float32(magnitude)
        best, code = abs(q), 0
        for m in range(1, 8):
            distance = abs(q - np.float32(MAGNITUDES_F[m]))
            if distance < best:
                best, code = distance, m
    return code


def element_code(x: float, magnitude: float, rounding: str, zero_sign: str,
                 rule: str = "nearest") -> int:
    """The E2M1 code of the element ``x`` whose scaled magnitude is ``magnitude``.

    ``magnitude`` is float32(|x| / d) (NaN only for 0 / 0, i.e. x = 0; +Inf saturates to 6).
    ``rule="argmin"`` takes the magnitude code from :func:`argmin_code` instead (the tie
    rule is then not read: argmin's first index rounds ties toward zero).
    """
    if rule == "argmin":
        code = argmin_code(magnitude)
    elif magnitude != magnitude:
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
        if zero_sign == "not-positive" and not magnitude > 0:  # ModelOpt MXFP4QTensor cast_fp4
            negative_bit = True
    return code | (0x8 if negative_bit else 0)


#: ggml's ``kvalues_mxfp4`` (ggml-common.h): the E2M1 magnitudes doubled, by code.
GGML_KVALUES = (0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12)


def ggml_code(x: float, half: float) -> int:
    """ggml's ``best_index_mxfp4(x, e)`` with ``e = half`` (float32: half the block scale,
    ggml's table holding doubled magnitudes): the first code of the least float32 error
    ``fabsf(f32(k * e) - x)`` over :data:`GGML_KVALUES` (the ``"ggml"`` element rule of
    :data:`fp4ref.profiles.ELEMENT_RULES`). A NaN or infinite error is never less than
    another, so NaN and +-Inf elements get code 0 and an overflowing product is skipped.
    """
    from .scale_rules import f32

    best, best_error = 0, abs(f32(f32(GGML_KVALUES[0] * half) - x))
    for code in range(1, 16):
        error = abs(f32(f32(GGML_KVALUES[code] * half) - x))
        if error < best_error:
            best, best_error = code, error
    return best
