"""The MXFP4 block (OCP MX v1.0 section 5): 32 E2M1 elements sharing one E8M0 scale."""

from __future__ import annotations

import math
import struct
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
    (``"compressed-tensors"`` and ``"by-format"`` too: torchao's ``to_dtype``, MLX); the
    other choices are the exact product above.
    """
    infinite = scale == e8m0.NAN and e8m0_decode in ("bits", "inf")
    if e8m0_decode == "bits" and scale == 0x00:
        return [convert_float32(round_to_binary(Fraction(0), bool(c & 0x8), 8, 23), dtype)
                for c in codes]
    if scale == e8m0.NAN and e8m0_decode in ("ocp",):
        return [CANONICAL_NAN[dtype]] * len(codes)
    x = Fraction(2) ** 128 if scale == e8m0.NAN else Fraction(e8m0.decode(scale))
    if arithmetic in ("output-dtype", "compressed-tensors", "by-format") and not infinite:
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
    nonfinite: str = "nan-scale", element_rule: str = "nearest", element_scale: str = "divide",
    stored_min: int = 0, zero_divisor: float | None = None,
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
    gets ``zero_byte`` under a rule when it is given (Quark 0x01). ``nonfinite="mlx"``
    gives a NaN/Inf block byte 0x80 instead (MLX 0.32.4); ``element_rule="argmin"`` codes
    by :func:`fp4ref.spec.elements.argmin_code`. Under rule ``"mlx"`` the stored byte
    wraps and the elements are divided by 2^e (:func:`fp4ref.spec.scale_rules.mx_divisor`).

    Under ``nonfinite="gfloat"`` (:data:`fp4ref.profiles.NONFINITE`) a NaN is refused
    (``ValueError``) and a block holding Inf gets scale 0xFE, its elements coded as
    ``float32(abs(V_i) / 2^127)`` (gfloat 0.5 ``compute_scale_amax`` clips ``floor(log2(Inf)) - 2``
    to 127).

    ``nonfinite`` ``"ggml"`` / ``"gguf-py"`` (:data:`fp4ref.profiles.NONFINITE`) replace
    that policy: NaN is left out of the max (ggml) or makes the scale 0x00 (gguf-py), and a
    block whose max is Inf gets 0x00. ``element_rule="ggml"`` codes every element by
    :func:`fp4ref.spec.elements.ggml_code` with half the scale, 2^(s - 128), instead of the
    rounded quotient (:data:`fp4ref.profiles.ELEMENT_RULES`). The searches ignore both.

    ``nonfinite="modelopt"`` gives a block holding NaN or Inf scale 0x00 and every code 0x8
    (ModelOpt 0.47 ``MXFP4QTensor``), under the rule and the searches alike.

    Under a rule, ``nonfinite`` ``"quark"`` / ``"vllm"``, ``element_scale``
    ``"bits-reciprocal"`` and ``stored_min`` > 0 (:data:`fp4ref.profiles.NONFINITE`,
    :data:`fp4ref.profiles.MX_ELEMENT_SCALES`, ``Profile.e8m0_stored_min``) are
    :func:`quirk_block`'s.

    ``nonfinite`` ``"torchao"``, ``"torchao-rceil"``, ``"qwantize"`` and ``"mistralrs"`` name
    an implementation's coding of NaN/Inf blocks instead (:data:`fp4ref.profiles.NONFINITE`;
    see :func:`nonfinite_block`; the searches too, as qwantize's do), and,
    under a rule, ``zero_divisor`` is what the elements
    of a block whose scale byte is 0x00 are divided by (torchao: 2^-126, or 1.0 on its RCEIL
    CPU path) instead of 2^-127.
    """
    from .elements import element_code
    from .optimal import search, search_hessian
    from .scale_rules import e8m0_divisor, mx_divisor, mx_scale, quotient

    if nonfinite == "compressed-tensors" and any(  # round_to_power_2(amax) is Inf
            (_float32_bits(v) & 0x7FFFFFFF) + 0x200000 >= 0x7F800000 for v in values):
        return 0x7F, [0] * len(values)  # compressed-tensors: uint8(127 + INT_MIN), x / Inf
    if nonfinite == "modelopt" and any(math.isnan(v) or math.isinf(v) for v in values):
        # ModelOpt MXFP4QTensor.quantize: uint8(ceil(log2(NaN/Inf)) + 127) is 0 on x86, and
        # cast_fp4 codes every quotient x / NaN, x / Inf (NaN or a zero) 0x8
        return 0x00, [0x8] * len(values)

    if nonfinite in _NONFINITE and any(
            math.isnan(v) or math.isinf(v) for v in values):  # the searches' too (qwantize)
        searched = rule in ("optimal", "optimal-hessian")
        return nonfinite_block(values, start if searched else rule, rounding, zero_sign,
                               nonfinite, None if searched else zero_byte)
    if nonfinite == "gfloat" and any(math.isnan(v) for v in values):
        raise ValueError("NaN in a block: refused under nonfinite='gfloat'")
    if nonfinite == "gfloat" and any(math.isinf(v) for v in values):  # gfloat block.py
        divisor = e8m0_divisor(0xFE)
        return 0xFE, [element_code(v, quotient(v, divisor, False), rounding, zero_sign)
                      for v in values]
    if rule not in ("optimal", "optimal-hessian") and (
            nonfinite in ("quark", "vllm", "vllm-triton") or element_scale != "divide"
            or stored_min):
        return quirk_block(values, rule, rounding, zero_sign, zero_byte, nonfinite,
                           element_scale, stored_min)
    if rule in ("optimal", "optimal-hessian"):  # the searches ignore ggml's conventions
        element_rule = "nearest"
        if nonfinite in ("ggml", "gguf-py"):
            nonfinite = "nan-scale"
    ggml = nonfinite in ("ggml", "gguf-py")
    if not ggml and any(math.isnan(v) or math.isinf(v) for v in values):
        return (0x80 if nonfinite == "mlx" else e8m0.NAN), [0] * len(values)
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
    if rule == "mlx":  # the stored byte wraps; the elements see 2^e
        divisor = mx_divisor(amax, scale, rule)
    else:
        divisor = e8m0_divisor(scale) if scale != e8m0.NAN else math.nan
    if scale == 0 and zero_divisor is not None and rule not in ("optimal", "optimal-hessian"):
        divisor = zero_divisor  # torchao: scale_fp32.clamp(min=2^-126), or RCEIL's 1.0
    codes = [element_code(v, quotient(v, divisor, False), rounding, zero_sign, element_rule)
             for v in values]
    if scale == e8m0.NAN and rule != "mlx":  # ggml's wrapped exponents can land on 0xFF
        codes = [0] * len(values)
    return scale, codes


def _float32_bits(v: float) -> int:
    """The float32 bits of ``v`` (a NaN keeps its sign and the top of its payload)."""
    return struct.unpack("<I", struct.pack("<f", v))[0]


def torchao_nan_code(bits: int) -> int:
    """The E2M1 code torchao 0.18's ``f32_to_f4_unpacked`` gives the NaN with float32
    ``bits``, quieted first (as the division or product before it leaves it): its
    magnitude branch adds ``(1 - 127) << 23``, 0x1FFFFF and the odd bit (bit 22) and keeps
    bits 22 up, cast to uint8: 3 + bit 21; then the sign."""
    bits |= 0x00400000
    magnitude = (((bits & 0x7FFFFFFF) - (126 << 23) + 0x1FFFFF + 1) >> 22) & 0xFF
    return (0x8 if bits >> 31 else 0) | (magnitude & 0x7)


def nonfinite_block(
    values: Sequence[float], rule: str, rounding: str, zero_sign: str, nonfinite: str,
    zero_byte: int | None = None,
) -> tuple[int, list[int]]:
    """(scale byte, codes) of a block holding a NaN or an Inf under an implementation's
    coding of them (:data:`fp4ref.profiles.NONFINITE`), written from each one's steps:

    - ``"torchao"`` (``to_mx`` FLOOR/CEIL/EVEN): NaN: 0xFF, elements divided by +Inf (the
      float32 of 0xFF << 23), so finite ones are signed zeros, Inf the x86 default NaN
      0xFFC00000, and NaNs are coded by :func:`torchao_nan_code`; Inf: the exponent field
      255 gives 2^(128 - 2), byte 253, elements divided by 2^126.
    - ``"torchao-rceil"`` (``_to_mx_rceil`` on CPU): NaN: 0xFF and elements times the
      reciprocal, ``amax / 6``: torch's ``amax`` of a block with any NaN is 0x7FC00000
      whatever the NaN, and the product is that NaN, so every code is 3; Inf: 254,
      elements times 2^-127.
    - ``"qwantize"``: NaN: 0xFF, ``|x| / NaN`` buckets to 6, times ``torch.sign(x)`` (0 for
      zeros and NaNs); Inf: ``clamp(floor(log2(Inf) + 125), 1, 254)`` = 254, elements
      divided by 2^127.
    - ``"mistralrs"``: NaNs left out of the max and coded 7; a max of Inf gives byte 0
      (the i32 cast of Inf saturates and + 127 wraps below the clamp), elements divided by
      2^-127; otherwise the rule's byte.
    """
    from .elements import element_code
    from .scale_rules import e8m0_divisor, mx_scale, quotient

    def code(v: float, divisor: float) -> int:
        return element_code(v, quotient(v, divisor, False), rounding, zero_sign)

    nans = [v for v in values if math.isnan(v)]
    if nonfinite == "mistralrs":
        amax = max((abs(v) for v in values if not math.isnan(v)), default=0.0)
        if math.isinf(amax):
            scale = 0
        elif amax == 0 and zero_byte is not None:
            scale = zero_byte
        else:
            scale = mx_scale(amax, rule)
        divisor = e8m0_divisor(scale)
        return scale, [7 if math.isnan(v) else code(v, divisor) for v in values]
    if nans:
        if nonfinite == "qwantize":
            return e8m0.NAN, [0 if math.isnan(v) or v == 0 else code(v, 0.0) for v in values]
        if nonfinite == "torchao":
            return e8m0.NAN, [
                torchao_nan_code(_float32_bits(v)) if math.isnan(v)
                else torchao_nan_code(0xFFC00000) if math.isinf(v)
                else code(v, math.inf) for v in values]
        if nonfinite == "torchao-rceil":  # x * (amax / 6): torch.amax gives 0x7FC00000
            return e8m0.NAN, [torchao_nan_code(0x7FC00000)] * len(values)
        raise ValueError(f"nonfinite must be one of {_NONFINITE}; got {nonfinite!r}")
    if nonfinite == "torchao":
        scale = 253
    elif nonfinite in ("torchao-rceil", "qwantize"):
        scale = 254
    else:
        raise ValueError(f"nonfinite must be one of {_NONFINITE}; got {nonfinite!r}")
    divisor = e8m0_divisor(scale)
    return scale, [code(v, divisor) for v in values]


#: The choices :func:`nonfinite_block` implements.
_NONFINITE = ("torchao", "torchao-rceil", "qwantize", "mistralrs")


def quirk_block(
    values: Sequence[float], rule: str, rounding: str, zero_sign: str, zero_byte: int | None,
    nonfinite: str, element_scale: str, stored_min: int,
) -> tuple[int, list[int]]:
    """(stored E8M0 byte, codes) of one block under a scale rule with AMD Quark's or vLLM's
    conventions (:func:`quantize_block` sends such blocks here).

    ``nonfinite="quark"``: a block holding NaN gets 0x7F and code 7 everywhere, 0xF for a
    NaN element whose sign bit is set (Quark 0.13: the observer's amax is NaN, its scale
    NaN, ``to_e8m0_uint8`` casts NaN to int16 0 on x86, and every x / NaN is the scale's
    positive NaN except NaN elements, which keep theirs; ``Pack_fp4`` reads bits 22-24 of
    NaN / 2^126 as 7). Otherwise (and always under ``"vllm"``) amax is Inf if an element is
    (NaN under ``"vllm"`` if one is: torch.max propagates it) and goes through the rule;
    ``"vllm-triton"`` leaves NaN out of the max (NaN for a block of NaNs) and codes NaN and
    Inf elements 7 with their sign; an amax of Inf or NaN goes through the rules
    ``"quark"``, ``"exponent"`` and ``"exponent-up"`` only: under another rule (a keyword
    override) such a block gets 0xFF and zero codes;
    under ``"quark"`` an infinite quotient codes 6 with its sign (Pack_fp4 reads Inf's
    bits as 6).

    ``element_scale="divide"``: q = ``float32(|x| / 2^(s - 127))``; ``"bits-reciprocal"``: q =
    float32(x * r) with r = float32(1 / X), X the float32 with bits s << 23, and r = 0 for
    s = 0x00 (X = 0) and 0xFF (X = Inf): vLLM ``downcast_to_mxfp_torch``; there a NaN
    element codes 7 with its sign bit and an Inf one (Inf * 0, x86's default NaN) 0xF.

    The stored byte is max(s, ``stored_min``) (Quark's ``to_e8m0_uint8`` clamps log2 at
    -126); the elements use s itself.
    """
    from .elements import element_code
    from .scale_rules import e8m0_divisor, f32, mx_scale

    nan = any(math.isnan(v) for v in values)
    inf = any(math.isinf(v) for v in values)
    if (nan or inf) and nonfinite not in ("quark", "vllm", "vllm-triton"):
        return e8m0.NAN, [0] * len(values)
    if nonfinite == "vllm-triton":  # tl.max skips NaN; NaN and Inf elements code 7
        finite = [abs(v) for v in values if not math.isnan(v)]
        amax = max(finite) if finite else math.nan
        if not math.isfinite(amax) and rule not in ("quark", "exponent", "exponent-up"):
            return e8m0.NAN, [0] * len(values)
        scale = mx_scale(amax, rule) if amax != 0 or zero_byte is None else zero_byte
        if scale == e8m0.NAN:  # a wrapped rule (ggml) lands there
            return max(scale, stored_min), [0] * len(values)
        codes = [0x7 | (0x8 if math.copysign(1.0, v) < 0 else 0)
                 if math.isnan(v) or math.isinf(v)
                 else element_code(v, f32(abs(v) / e8m0_divisor(scale)), rounding, zero_sign)
                 for v in values]
        return max(scale, stored_min), codes
    if nonfinite == "quark" and nan:  # 0x7F, every element NaN (the sign: NaN elements')
        return 0x7F, [0xF if math.isnan(v) and math.copysign(1.0, v) < 0 else 0x7
                      for v in values]
    if (inf or nan and nonfinite == "vllm") and rule not in ("quark", "exponent", "exponent-up"):
        return e8m0.NAN, [0] * len(values)  # only the bit-arithmetic rules take Inf/NaN
    if nan:
        amax = math.nan  # torch.abs then max: a positive NaN
    elif inf:
        amax = math.inf
    else:
        amax = max((abs(v) for v in values), default=0.0)
    scale = mx_scale(amax, rule) if amax != 0 or zero_byte is None else zero_byte
    if scale == e8m0.NAN and element_scale == "divide":  # a wrapped rule (ggml) lands there
        return max(scale, stored_min), [0] * len(values)
    codes = []
    for v in values:
        negative = math.copysign(1.0, v) < 0
        if element_scale == "bits-reciprocal":
            r = 0.0 if scale in (0x00, e8m0.NAN) else math.ldexp(1.0, 127 - scale)  # exact
            if math.isnan(v):  # NaN * r: the element's own NaN
                code = 0x7 | (0x8 if negative else 0)
            elif math.isinf(v) and r == 0:  # Inf * 0: x86's default NaN, negative
                code = 0xF
            else:
                code = element_code(v, f32(abs(v) * r), rounding, zero_sign)
        else:
            q = math.inf if math.isinf(v) else abs(v) / e8m0_divisor(scale)
            if math.isinf(q) and nonfinite == "quark":  # Pack_fp4 of Inf / 2^126: 6
                code = 0x6 | (0x8 if negative else 0)
            else:
                code = element_code(v, f32(q), rounding, zero_sign)
        codes.append(code)
    return max(scale, stored_min), codes
