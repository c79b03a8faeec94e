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


#: The zero-sign rules of a lone value (:data:`fp4ref.spec.elements.ZERO_SIGNS` less
#: ``"quotient"``, a block rule: for a lone value, its own quotient, it is ``"negative"``).
SCALAR_ZERO_SIGNS = ("keep", "negative", "drop")

#: How a scalar encode codes NaN (E2M1 has none; the OCP text leaves it open):
#: ``"sign"`` a zero with the NaN's sign bit (fp4ref's choice); ``"ml_dtypes"`` a zero with
#: the opposite sign (ml_dtypes 0.7 ``astype(float4_e2m1fn)``: +NaN -> 0x8, -NaN -> 0x0);
#: ``"torchao"`` the NaN's float32 bits run through the normal-number branch of torchao's
#: ``_f32_to_floatx_unpacked`` (``f32_to_f4_unpacked``): ``((a - (126 << 23) + 0x1FFFFF +
#: (a >> 22 & 1)) >> 22) & 0xFF`` with ``a`` the bits without the sign, codes 2..4 with
#: the NaN's sign (0x7FC00000 -> 3, 0x7F800001 -> 2, 0x7FFFFFFF -> 4);
#: ``"compressed-tensors"`` +0 whatever the sign (``cast_to_fp4`` returns
#: ``abs(x) * sign(x)``, a positive NaN, which ``pack_fp4_to_uint8`` codes 0);
#: ``"refuse"`` ``ValueError`` (gfloat 0.5 ``encode_float``: "No NaN in format ocp_e2m1").
NAN_CODES = ("sign", "ml_dtypes", "torchao", "compressed-tensors", "refuse")


def nan_code(negative: bool, bits: int, nan: str) -> int:
    """The code of a NaN with sign bit ``negative`` and float32 bit pattern ``bits`` (read
    by ``"torchao"`` only) under the choice ``nan`` (:data:`NAN_CODES`); ``ValueError`` for
    ``"refuse"``."""
    if nan == "sign":
        return 0b1000 if negative else 0
    if nan == "ml_dtypes":
        return 0 if negative else 0b1000
    if nan == "torchao":  # torchao custom_fp_utils._f32_to_floatx_unpacked, normal branch
        a = bits & 0x7FFFFFFF
        return (((a - (126 << 23) + 0x1FFFFF + ((a >> 22) & 1)) >> 22) & 0xFF) | (
            0b1000 if negative else 0)
    if nan == "compressed-tensors":
        return 0
    if nan == "refuse":
        raise ValueError("NaN has no E2M1 code (nan='refuse')")
    raise ValueError(f"nan must be one of {NAN_CODES}; got {nan!r}")


def encode(x: float, rounding: str = "even", zero_sign: str = "keep", nan: str = "sign",
           bits: int | None = None) -> int:
    """The E2M1 code nearest to ``x``.

    Parameters
    ----------
    x : float
        Any float; it is taken exactly.
    rounding : {"even", "away", "zero"}
        Tie rule (see :data:`fp4ref.spec.rounding.TIE_RULES`).
    zero_sign : {"keep", "negative", "drop"}
        Sign of a code whose magnitude rounds to 0
        (:data:`fp4ref.spec.elements.ZERO_SIGNS`): ``"keep"`` the sign bit of ``x``,
        ``"negative"`` 0x8 only for ``x < 0`` (-0.0 gives 0x0), ``"drop"`` always 0x0;
        ``"quotient"`` (0x8 for a quotient < 0) is ``"negative"`` here, x being its own
        quotient.
    nan : str
        How NaN is coded (:data:`NAN_CODES`).
    bits : int, optional
        The float32 bit pattern of ``x`` when ``x`` is NaN (its payload, which
        ``nan="torchao"`` reads; its sign bit is ``x``'s); default: the quiet NaN
        0x7FC00000.

    Returns
    -------
    int
        The code 0..15. Magnitudes above 6 (infinity included) saturate to +-6, keeping the
        sign (OCP MX v1.0 section 5.3.3). The sign of zero follows ``zero_sign`` (kept by
        default). NaN, which the spec leaves open, encodes by ``nan``; by default to a zero
        carrying the NaN's sign bit: fp4ref's choice, because in an MX block the scale, not
        the element, carries the NaN.
    """
    check_tie_rule(rounding)
    if zero_sign not in SCALAR_ZERO_SIGNS:
        raise ValueError(f"zero_sign must be one of {SCALAR_ZERO_SIGNS}; got {zero_sign!r}")
    if nan not in NAN_CODES:
        raise ValueError(f"nan must be one of {NAN_CODES}; got {nan!r}")
    sign = 0b1000 if math.copysign(1.0, x) < 0 else 0
    if math.isnan(x):
        payload = 0x7FC00000 if bits is None else bits & 0x7FFFFFFF
        return nan_code(bool(sign), payload | (0x80000000 if sign else 0), nan)
    if math.isinf(x):
        return sign | 0b0111
    code = nearest_code(abs(Fraction(x)), MAGNITUDES, rounding)
    negative_only = zero_sign in ("negative", "quotient")  # a scalar's quotient is x
    if code == 0 and (zero_sign == "drop" or (negative_only and not x < 0)):
        sign = 0
    return sign | code
