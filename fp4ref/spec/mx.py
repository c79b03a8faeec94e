"""The MXFP4 block (OCP MX v1.0 section 5): 32 E2M1 elements sharing one E8M0 scale."""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

from . import e2m1, e8m0
from .rounding import CANONICAL_NAN, binary_value, convert_float32, round_to_binary

BLOCK_SIZE = 32


def dequantize_block(
    codes: Sequence[int], scale: int, dtype: str = "float32", e8m0_decode: str = "ocp",
    arithmetic: str = "exact",
) -> list[int]:
    """Bit patterns of ``X * P_i`` for each element code, in ``dtype``.

    Section 5: value_i = X * P_i, computed exactly, then rounded once to float32 (nearest
    even; past the float32 range it becomes an infinity: only scale 0xFE with P_i of
    magnitude 2 or more does that). Other output dtypes are the nearest-even conversion of
    that float32. A NaN scale (0xFF) makes every element NaN (section 5.4.1).

    ``e8m0_decode`` names how the scale byte is read (:data:`fp4ref.profiles.E8M0_DECODES`):
    ``"ocp"`` as above; ``"bits"`` float32_from_bits(scale << 23), so 0x00 is 0.0 (products
    +-0) and 0xFF is +Inf (products +-Inf, and NaN for a zero code: 0 * Inf), as mistral.rs's
    decode table; ``"ggml"`` 0xFF is 2^128 (ggml's half scale 2^127 times doubled
    integers: magnitudes >= 1 overflow to Inf) and code 0x8 is +0.0; ``"inf"`` 0x00 is
    2^-127 and 0xFF +Inf (MLX, AMD Quark).

    ``arithmetic`` (:data:`fp4ref.profiles.DECODE_ARITHMETIC`): ``"output-dtype"`` rounds
    the scale to ``dtype`` first (a float16 2^-127 is 0, 2^16 and up Inf) and the product
    to float32 and then to ``dtype``, as torch and MLX multiply half-precision tensors
    (``"compressed-tensors"`` too); the other choices are the exact product above.
    """
    infinite = scale == e8m0.NAN and e8m0_decode in ("bits", "inf")
    if e8m0_decode == "bits" and scale == 0x00:
        return [convert_float32(round_to_binary(Fraction(0), bool(c & 0x8), 8, 23), dtype)
                for c in codes]
    if scale == e8m0.NAN and e8m0_decode in ("ocp",):
        return [CANONICAL_NAN[dtype]] * len(codes)
    x = Fraction(2) ** 128 if scale == e8m0.NAN else Fraction(e8m0.decode(scale))
    if arithmetic in ("output-dtype", "compressed-tensors") and not infinite:
        x, _ = binary_value(convert_float32(round_to_binary(x, False, 8, 23), dtype), dtype)
        infinite = x < 0  # the scale overflowed the output dtype
    out = []
    for code in codes:
        negative = bool(code & 0x8) and not (e8m0_decode == "ggml" and code == 0x8)
        if infinite:  # IEEE: Inf * 0 is NaN, Inf * P the signed infinity
            bits32 = CANONICAL_NAN["float32"] if code & 0x7 == 0 else (
                (int(negative) << 31) | 0x7F800000)
        else:
            bits32 = round_to_binary(e2m1.magnitude(code) * x, negative, 8, 23)
        out.append(convert_float32(bits32, dtype))
    return out


def quantize_block(
    values: Sequence[float], rule: str = "floor", rounding: str = "even",
    zero_sign: str = "keep", start: str = "floor", min_byte: int = 0, lanes: int = 16,
    hessian: Sequence[Sequence[float]] | None = None, zero_byte: int | None = None,
    nonfinite: str = "nan-scale", element_rule: str = "nearest",
) -> tuple[int, list[int]]:
    """(E8M0 scale byte, element codes) of one block of float32 values.

    Section 6.3: X from the block's amax by ``rule`` (see
    :func:`fp4ref.spec.scale_rules.mx_scale`; ``"optimal"`` searches the bytes
    ``min_byte..254`` starting from rule ``start``'s scale, see :mod:`fp4ref.spec.optimal`;
    ``"optimal-hessian"`` the same by ``r^T H r`` with ``hessian`` the block's H),
    then each element is
    ``float32(|V_i| / X)`` rounded to E2M1 with the tie rule ``rounding``, saturating to 6.
    A block holding NaN or Inf gets scale 0xFF (NaN) and all-zero codes: fp4ref's policy,
    as the OCP reference code does for NaN (the spec text leaves it open). A block of zeros
    gets ``zero_byte`` under a rule when it is given (MLX 0x7F, Quark 0x01).

    Under ``nonfinite="gfloat"`` (:data:`fp4ref.profiles.NONFINITE`) a NaN is refused
    (``ValueError``) and a block holding Inf gets scale 0xFE, its elements coded as
    float32(|V_i| / 2^127) (gfloat 0.5 ``compute_scale_amax`` clips ``floor(log2(Inf)) - 2``
    to 127).

    ``nonfinite`` ``"ggml"`` / ``"gguf-py"`` (:data:`fp4ref.profiles.NONFINITE`) replace
    that policy: NaN is left out of the max (ggml) or makes the scale 0x00 (gguf-py), and a
    block whose max is Inf gets 0x00. ``element_rule="ggml"`` codes every element by
    :func:`fp4ref.spec.elements.ggml_code` with half the scale, 2^(s - 128), instead of the
    rounded quotient (:data:`fp4ref.profiles.ELEMENT_RULES`).
    """
    from .elements import element_code
    from .optimal import search, search_hessian
    from .scale_rules import e8m0_divisor, mx_scale, quotient

    if nonfinite == "compressed-tensors" and any(  # round_to_power_2(amax) is Inf
            (_bits32(v) & 0x7FFFFFFF) + 0x200000 >= 0x7F800000 for v in values):
        return 0x7F, [0] * len(values)  # compressed-tensors: uint8(127 + INT_MIN), x / Inf

    if nonfinite == "gfloat" and any(math.isnan(v) for v in values):
        raise ValueError("NaN in a block: refused under nonfinite='gfloat'")
    if nonfinite == "gfloat" and any(math.isinf(v) for v in values):  # gfloat block.py
        divisor = e8m0_divisor(0xFE)
        return 0xFE, [element_code(v, quotient(v, divisor, False), rounding, zero_sign)
                      for v in values]
    ggml = nonfinite in ("ggml", "gguf-py")
    if not ggml and any(math.isnan(v) or math.isinf(v) for v in values):
        return e8m0.NAN, [0] * len(values)
    # ggml's max: `if (amax < fabsf(v)) amax = fabsf(v)` never takes a NaN
    amax = max((abs(v) for v in values if not math.isnan(v)), default=0.0)
    if ggml and (math.isinf(amax) or (nonfinite == "gguf-py"
                                      and any(math.isnan(v) for v in values))):
        # ggml: (uint8_t) of an infinite float exponent, 0 on x86-64; gguf-py: a NaN max
        # fails `d > 0`, so np.where gives 0
        scale = 0
    elif rule in ("optimal", "optimal-hessian"):
        first = mx_scale(amax, start)
        candidates = [(b, e8m0_divisor(b)) for b in range(min_byte, 255)]
        if rule == "optimal":
            scale = search(values, first, e8m0_divisor(first), candidates, False, rounding,
                           lanes)
        else:
            scale = search_hessian(values, first, e8m0_divisor(first), candidates, False,
                                   rounding, lanes, hessian, "e0")
    else:
        scale = mx_scale(amax, rule) if amax != 0 or zero_byte is None else zero_byte
    if element_rule == "ggml":  # ggml_e8m0_to_fp32_half(s) = 2^(s - 128), exact
        from .elements import ggml_code

        half = math.ldexp(1.0, scale - 128)
        return scale, [ggml_code(v, half) for v in values]
    divisor = e8m0_divisor(scale) if scale != e8m0.NAN else math.nan
    codes = [element_code(v, quotient(v, divisor, False), rounding, zero_sign) for v in values]
    if scale == e8m0.NAN:  # ggml's wrapped exponents can land on 0xFF
        codes = [0] * len(values)
    return scale, codes


def _bits32(value: float) -> int:
    """The float32 bits of a float32 ``value`` given as a Python float (NaN: 0x7FC00000 or
    above, enough for a magnitude comparison)."""
    import numpy as np

    return int(np.array(value, np.float64).astype(np.float32).view(np.uint32))
