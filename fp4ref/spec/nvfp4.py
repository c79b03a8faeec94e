"""The NVFP4 block: 16 E2M1 elements sharing one E4M3 scale, and a float32 tensor scale.

Decode arithmetic, as fp4ref defines it (NVIDIA's documentation gives value_i =
P_i * s_block * s_tensor without fixing the order of operations): first P_i * s_block,
which is always exact in float32 (at most 5 significant bits, magnitudes 2^-10..2688);
then one IEEE float32 multiply by the tensor scale (the decode multiplier, ModelOpt's
``weight_scale_2``), rounded to nearest even. Output dtypes other than float32 are the
nearest-even conversion of that float32. A NaN block scale (0x7F, 0xFF) or a NaN product
gives NaN.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from fractions import Fraction

from . import e2m1, e4m3
from .rounding import CANONICAL_NAN, binary_value, convert_float32, round_to_binary

BLOCK_SIZE = 16


def dequantize_block(
    codes: Sequence[int], scale: int, tensor_scale_bits: int = 0x3F800000, dtype: str = "float32",
    arithmetic: str = "exact", e4m3_decode: str = "ocp",
) -> list[int]:
    """Bit patterns of ``float32(P_i * s_block) * s_tensor`` for each element code (the
    ``"exact"`` arithmetic; ``"scale-first"`` is ``P_i * float32(s_block * s_tensor)``,
    ``"output-dtype"`` ``dt(P_i * dt(dt(s_tensor) * dt(s_block)))`` with every product
    rounded to float32 and then to the output dtype ``dt``, see
    :data:`fp4ref.profiles.DECODE_ARITHMETIC`). ``e4m3_decode="ggml"`` reads the scale
    byte as ggml's UE4M3 (sign bit ignored, 0x7F is 0, 0xFF 480) and code 0x8 as +0
    (:data:`fp4ref.profiles.E4M3_DECODES`).

    Parameters
    ----------
    codes : sequence of int
        E2M1 codes.
    scale : int
        The E4M3 block-scale byte.
    tensor_scale_bits : int
        The float32 bit pattern of the tensor scale (decode direction); 1.0 by default.
    dtype : {"float32", "bfloat16", "float16"}
        Output dtype.
    """
    if e4m3_decode == "ggml":  # UE4M3: the sign bit ignored, 0x7F is 0, 0xFF is 480
        codes = [0 if c == 0x8 else c for c in codes]
        block_scale = 0.0 if scale == 0x7F else (
            480.0 if scale == 0xFF else e4m3.decode(scale & 0x7F))
        scale &= 0x7F
    else:
        block_scale = e4m3.decode(scale)
    tensor_magnitude, tensor_negative = binary_value(tensor_scale_bits, "float32")
    if block_scale != block_scale or tensor_magnitude is None:
        return [CANONICAL_NAN[dtype]] * len(codes)
    if arithmetic != "exact":
        return _scale_first(codes, block_scale, tensor_scale_bits, dtype, arithmetic)
    scale_negative = bool(scale & 0x80)
    out = []
    for code in codes:
        negative = bool(code & 0x8) != scale_negative
        product = e2m1.magnitude(code) * abs(Fraction(block_scale))
        negative = negative != tensor_negative
        if tensor_magnitude < 0:  # infinite tensor scale: IEEE inf * 0 is NaN
            bits32 = CANONICAL_NAN["float32"] if product == 0 else (
                (int(negative) << 31) | 0x7F800000)
        else:
            bits32 = round_to_binary(product * tensor_magnitude, negative, 8, 23)
        out.append(convert_float32(bits32, dtype))
    return out


def quantize_block(
    values: Sequence[float], recipe: str = "plain", tensor: float = 1.0,
    clamp: tuple[float, float] | None = None, zero_scale: float | None = None,
    optimal: bool = False, rounding: str = "even", zero_sign: str = "keep",
    nan_scale_for_inf: bool = True, lanes: int = 16,
    hessian: Sequence[Sequence[float]] | None = None, nonfinite: str | None = None,
) -> tuple[int, list[int]]:
    """(E4M3 block-scale byte, element codes) of one NVFP4 block of float32 values.

    The block scale follows ``recipe`` (see
    :func:`fp4ref.spec.scale_rules.nvfp4_block_scale`), or with ``optimal`` the search of
    :mod:`fp4ref.spec.optimal` over the 126 positive finite E4M3 values starting from it
    (by ``r^T H r`` when ``hessian``, the block's H, is given);
    each element is ``float32(|x| / d)`` (or ``* d``) with ``d`` from
    :func:`fp4ref.spec.scale_rules.nvfp4_divisor`, rounded to E2M1 with ``rounding``. A
    block with NaN gets 0x7F (NaN) and zero codes; with Inf the same if
    ``nan_scale_for_inf``, else the recipe's float32 arithmetic runs on (Inf saturates to 448).
    ``nonfinite="qwantize"`` gives a NaN block qwantize 0.1.1's codes instead (``|x| / NaN``
    buckets to 6, times ``torch.sign(x)``: +-6 for nonzero elements, 0 for zeros and NaNs),
    ``"torchao"``/``"torchao-rceil"`` gives a block with NaN or Inf, and every block under a
    tensor scale of 0, Inf, NaN or one without a finite reciprocal, torchao 0.18's bytes
    (:func:`torchao_block`).
    """
    from .elements import element_code
    from .optimal import search, search_hessian
    from .scale_rules import nvfp4_block_scale, nvfp4_divisor, quotient

    if nonfinite == "qwantize" and any(math.isnan(v) for v in values):
        return e4m3.NAN, [0 if math.isnan(v) or v == 0 else (7 | (8 if v < 0 else 0))
                          for v in values]
    if nonfinite in ("torchao", "torchao-rceil") and (
            any(math.isnan(v) or math.isinf(v) for v in values)
            or not (math.isfinite(tensor) and tensor != 0
                    and abs(tensor) > 2.0**-128)):  # f32(1 / s_t) finite: above 2^-128
        return torchao_block(values, tensor, clamp, rounding, zero_sign)
    if any(math.isnan(v) for v in values) or (
            nan_scale_for_inf and any(math.isinf(v) for v in values)):
        return e4m3.NAN, [0] * len(values)
    amax = max((abs(v) for v in values), default=0.0)
    scale = nvfp4_block_scale(amax, recipe, tensor, clamp, zero_scale)
    if optimal:
        candidates = [(b, nvfp4_divisor(b, recipe, tensor)[0]) for b in range(1, 0x7F)]
        d0, multiply = nvfp4_divisor(scale, recipe, tensor)
        if hessian is None:
            scale = search(values, scale, d0, candidates, multiply, rounding, lanes)
        else:
            scale = search_hessian(values, scale, d0, candidates, multiply, rounding, lanes,
                                   hessian, "best10")
    d, multiply = nvfp4_divisor(scale, recipe, tensor)
    codes = [element_code(v, quotient(v, d, multiply), rounding, zero_sign) for v in values]
    if e4m3.decode(scale) != e4m3.decode(scale):
        codes = [0] * len(values)
    return scale, codes


def _product(a: tuple, b: tuple, dtype: str) -> tuple:
    """(magnitude, negative) of ``a * b`` rounded to float32 and then to ``dtype`` (IEEE:
    Inf * 0 is NaN, magnitude None; infinity is magnitude -1, as :func:`binary_value`)."""
    (ma, na), (mb, nb) = a, b
    negative = na != nb
    if ma is None or mb is None or (ma < 0 and mb == 0) or (mb < 0 and ma == 0):
        return None, negative
    if ma < 0 or mb < 0:
        return Fraction(-1), negative
    bits = convert_float32(round_to_binary(ma * mb, negative, 8, 23), dtype)
    return binary_value(bits, dtype)


def _scale_first(codes, block_scale, tensor_scale_bits, dtype, arithmetic):
    """The ``"scale-first"`` and ``"output-dtype"`` decodes of :func:`dequantize_block`."""
    within = dtype if arithmetic == "output-dtype" else "float32"
    tensor = binary_value(convert_float32(tensor_scale_bits, within), within)
    block = abs(Fraction(block_scale)), math.copysign(1.0, block_scale) < 0
    total = _product(tensor, block, within)
    out = []
    for code in codes:
        element = (e2m1.magnitude(code), bool(code & 0x8))
        magnitude, negative = _product(element, total, within)
        if magnitude is None:
            out.append(CANONICAL_NAN[dtype])
            continue
        if magnitude < 0:
            bits32 = (int(negative) << 31) | 0x7F800000
        else:
            bits32 = round_to_binary(magnitude, negative, 8, 23)
        out.append(convert_float32(bits32, dtype))
    return out


def _bits32(v: float) -> int:
    return struct.unpack("<I", struct.pack("<f", v))[0]


def _value32(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def _nan32(bits: int) -> bool:
    return (bits & 0x7FFFFFFF) > 0x7F800000


def _x86(a: int, b: int, multiply: bool) -> int:
    """float32 bits of ``a / b`` (``a * b``) as an x86 CPU gives them: a NaN operand comes
    back quieted (the first of two), an invalid operation gives the default NaN 0xFFC00000;
    otherwise the IEEE result."""
    for operand in (a, b):
        if _nan32(operand):
            return operand | 0x00400000
    x, y = _value32(a), _value32(b)
    if multiply:
        if (x == 0 and math.isinf(y)) or (y == 0 and math.isinf(x)):
            return 0xFFC00000
        negative = math.copysign(1, x) * math.copysign(1, y) < 0
        if math.isinf(x) or math.isinf(y):
            return (int(negative) << 31) | 0x7F800000
        return round_to_binary(abs(Fraction(x) * Fraction(y)), negative, 8, 23)
    if (x == 0 and y == 0) or (math.isinf(x) and math.isinf(y)):
        return 0xFFC00000
    negative = math.copysign(1, x) * math.copysign(1, y) < 0
    if y == 0 or math.isinf(x):
        return (int(negative) << 31) | 0x7F800000
    if math.isinf(y):
        return int(negative) << 31
    return round_to_binary(abs(Fraction(x) / Fraction(y)), negative, 8, 23)


def torchao_block(
    values: Sequence[float], tensor: float, clamp: tuple[float, float] | None, rounding: str,
    zero_sign: str,
) -> tuple[int, list[int]]:
    """(E4M3 byte, codes) of an NVFP4 block as torchao 0.18's ``nvfp4_quantize`` computes it
    on an x86 CPU, NaNs included, step by step (``tensor`` the per-tensor scale s_t):
    ``y = (amax / 6) / s_t`` (torch's ``amax`` of a block with a NaN is 0x7FC00000),
    ``clamp(y, 2^-6, 448)`` (a NaN passes), the E4M3 cast (a NaN to 0x7F or, negative,
    0xFF); ``r = (1 / s_t) / f32(byte)`` (the NaN bytes are 0x7FF00000 and 0xFFF00000 in
    float32); each element ``x * r`` (r's NaN when r is one, as torch's broadcast product
    gives it), clamped to +-6 and coded by ``f32_to_f4_unpacked`` (a NaN by
    :func:`fp4ref.spec.mx.torchao_nan_code`). Divisions and products of NaNs follow x86
    (:func:`_x86`): 0 / 0, Inf / Inf and 0 * Inf are 0xFFC00000 (code 0xB)."""
    from .elements import element_code
    from .mx import torchao_nan_code

    if any(math.isnan(v) for v in values):
        amax = 0x7FC00000
    else:
        amax = _bits32(max((abs(v) for v in values), default=0.0))
    t = _bits32(tensor)
    y = _x86(_x86(amax, _bits32(6.0), False), t, False)
    if _nan32(y):
        scale = 0xFF if y >> 31 else 0x7F
        s32 = 0xFFF00000 if y >> 31 else 0x7FF00000
    else:
        v = _value32(y)
        if clamp is not None:
            v = min(max(v, clamp[0]), clamp[1])
        scale = e4m3.encode(v, "even", saturate=True)
        s32 = _bits32(e4m3.decode(scale))
    r = _x86(_x86(_bits32(1.0), t, False), s32, False)
    codes = []
    for x in values:
        e = r if _nan32(r) else _x86(_bits32(x), r, True)
        if _nan32(e):
            codes.append(torchao_nan_code(e))
            continue
        v = min(max(_value32(e), -6.0), 6.0)
        codes.append(element_code(v, abs(v), rounding, zero_sign))
    return scale, codes
