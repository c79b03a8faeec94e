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
    arithmetic: str = "exact", e4m3_decode: str = "ocp", divisor: float = 1.0,
) -> list[int]:
    """Bit patterns of ``float32(P_i * s_block) * s_tensor`` for each element code (the
    ``"exact"`` arithmetic; ``"scale-first"`` is ``P_i * float32(s_block * s_tensor)``,
    ``"output-dtype"`` ``dt(P_i * dt(dt(s_tensor) * dt(s_block)))`` with every product
    rounded to float32 and then to the output dtype ``dt``, see
    :data:`fp4ref.profiles.DECODE_ARITHMETIC`; under ``"compressed-tensors"``
    ``tensor_scale_bits`` are the bits of the encode scale G the block scale is divided
    by, ``P_i * f32(s_block / G)``; ``"mlx"`` is ``"scale-first"``).
    ``e4m3_decode="ggml"`` reads the scale byte as ggml's UE4M3 (sign bit ignored, 0x7F
    is 0, 0xFF 480) and code 0x8 as +0 (:data:`fp4ref.profiles.E4M3_DECODES`).
    Under ``"fouroversix"`` ``tensor_scale_bits`` are the bits of the stored tensor amax A
    and each value is ``dt(f32(f32(f32(P_i * s_block) * A) / divisor))`` (the
    ``fouroversix`` package's ``dequantize``; ``divisor`` its rule's M * S, 1536).

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
    arithmetic : str
        One of :data:`fp4ref.profiles.DECODE_ARITHMETIC` (as the kernels run it for NVFP4).
    e4m3_decode : {"ocp", "ggml"}
        How the scale byte decodes.
    divisor : float
        ``"fouroversix"`` only: what the float32 ``P_i * s_block * A`` is divided by.
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
    if arithmetic == "modelopt":  # e2m1_values[8] is +0; then P * f32(s_b * s_t)
        codes = [0 if c == 0x8 else c for c in codes]
    if arithmetic == "fouroversix":
        return _fouroversix(codes, block_scale, tensor_scale_bits, dtype, divisor)
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
    element_rule: str = "nearest", e4m3_encode: str = "ocp",
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

    ``nonfinite="ggml"`` (:data:`fp4ref.profiles.NONFINITE`) leaves NaN out of the max and
    runs the recipe on an infinite one; ``element_rule="ggml"`` codes the elements by
    :func:`fp4ref.spec.elements.ggml_code` with half the divisor;
    ``e4m3_encode="ggml"`` casts the block scale with
    :func:`fp4ref.spec.e4m3.encode_ggml`. The searches (``optimal``) ignore the three.

    ``nonfinite`` (the profile's :data:`fp4ref.profiles.NONFINITE` choice), when given,
    overrides ``nan_scale_for_inf``; ``"comfy"`` takes NaN and Inf through the ``"comfy"``
    recipe's arithmetic (:func:`comfy_block`). The ``"comfy"`` recipe has no search.
    ``nonfinite="mlx"``: no NaN scale at all, a NaN is the block's max (recipe ``"mlx"``
    saturates it to 0x7E); ``element_rule="argmin"`` codes by
    :func:`fp4ref.spec.elements.argmin_code`; recipe ``"mlx"`` codes
    :func:`fp4ref.spec.scale_rules.mlx_quotient`.
    ``nonfinite="qwantize"`` gives a NaN block qwantize 0.1.1's codes instead (``|x| / NaN``
    buckets to 6, times ``torch.sign(x)``: +-6 for nonzero elements, 0 for zeros and NaNs),
    ``"torchao"``/``"torchao-rceil"`` gives a block with NaN or Inf, and every block under a
    tensor scale of 0, Inf, NaN or one without a finite reciprocal, torchao 0.18's bytes
    (:func:`torchao_block`).
    """
    from .elements import element_code
    from .optimal import search, search_hessian
    from .scale_rules import mlx_quotient, nvfp4_block_scale, nvfp4_divisor, quotient

    if nonfinite == "qwantize" and any(math.isnan(v) for v in values):
        return e4m3.NAN, [0 if math.isnan(v) or v == 0 else (7 | (8 if v < 0 else 0))
                          for v in values]
    if nonfinite in ("torchao", "torchao-rceil") and (
            any(math.isnan(v) or math.isinf(v) for v in values)
            or not (math.isfinite(tensor) and tensor != 0
                    and abs(tensor) > 2.0**-128)):  # f32(1 / s_t) finite: above 2^-128
        return torchao_block(values, tensor, clamp, rounding, zero_sign)
    if recipe == "vllm":  # its own arithmetic throughout, NaN and Inf included
        return vllm_block(values, tensor)
    if nonfinite is not None:
        nan_scale_for_inf = nonfinite == "nan-scale"
    if nonfinite in ("ieee-x86", "compressed-tensors"):  # an arithmetic NaN scale: 0xFF
        scale, codes = quantize_block(values, recipe, tensor, clamp, zero_scale, optimal,
                                      rounding, zero_sign, False, lanes, hessian, "ieee",
                                      element_rule, e4m3_encode)
        return (0xFF if scale == e4m3.NAN and not any(math.isnan(v) for v in values)
                else scale), codes
    if optimal:  # the searches ignore ggml's conventions (Inf: the recipe's arithmetic)
        element_rule, e4m3_encode = "nearest", "ocp"
        if nonfinite in ("ggml", "gguf-py"):
            nonfinite = None
    ggml = nonfinite == "ggml"
    if nonfinite == "gguf-py":
        raise ValueError("nonfinite='gguf-py' is MXFP4 only (gguf-py has no NVFP4 quantizer)")
    through = nonfinite in ("comfy", "mlx", "modelopt")  # NaN/Inf through the arithmetic
    if not ggml and not through and (any(math.isnan(v) for v in values) or (
            nan_scale_for_inf and any(math.isinf(v) for v in values))):
        return e4m3.NAN, [0] * len(values)
    if recipe == "comfy":
        if optimal:
            raise ValueError("the 'comfy' recipe has no scale search")
        return comfy_block(values, tensor, rounding, zero_sign)
    if nonfinite == "modelopt" and not optimal:
        return modelopt_block(values, tensor, clamp, zero_scale, rounding, zero_sign)
    # ggml's max: `if (amax < fabsf(v)) amax = fabsf(v)` never takes a NaN
    amax = max((abs(v) for v in values if not math.isnan(v)), default=0.0)
    if nonfinite == "mlx" and any(math.isnan(v) for v in values):  # MLX: max(abs(x))
        amax = math.nan  # propagates NaN into the arithmetic
    scale = nvfp4_block_scale(amax, recipe, tensor, clamp, zero_scale, e4m3_encode)
    if optimal:
        candidates = [(b, nvfp4_divisor(b, recipe, tensor)[0]) for b in range(1, 0x7F)]
        d0, multiply = nvfp4_divisor(scale, recipe, tensor)
        if hessian is None:
            scale = search(values, scale, d0, candidates, multiply, rounding, lanes)
        else:
            scale = search_hessian(values, scale, d0, candidates, multiply, rounding, lanes,
                                   hessian, "best10")
    d, multiply = nvfp4_divisor(scale, recipe, tensor)
    if element_rule == "ggml":
        from .elements import ggml_code
        from .scale_rules import f32

        if multiply:
            raise ValueError(f"element_rule='ggml' needs a recipe that divides by its scale; "
                             f"{recipe!r} multiplies by a reciprocal")
        half = f32(d * 0.5)  # ggml_ue4m3_to_fp32: the E4M3 value times 0.5
        codes = [ggml_code(v, half) for v in values]
        if e4m3.decode(scale) != e4m3.decode(scale):
            codes = [0] * len(values)
        return scale, codes
    if recipe == "mlx":
        codes = [element_code(v, mlx_quotient(v, d, tensor), rounding, zero_sign, element_rule)
                 for v in values]
    else:
        codes = [element_code(v, quotient(v, d, multiply), rounding, zero_sign, element_rule)
                 for v in values]
    if e4m3.decode(scale) != e4m3.decode(scale):
        codes = [0] * len(values)
    return scale, codes


#: x86's default NaN, what an invalid float32 operation (0 / 0, Inf / Inf, Inf * 0) gives
#: on the CPU comfy-kitchen's eager backend runs on (SSE/AVX: the sign bit set).
X86_DEFAULT_NAN = 0xFFC00000


def _bits32(value: float) -> int:
    """The float32 bits of a float32 ``value`` given as a Python float (NaN payload and sign
    kept, as float32 -> float64 -> float32 keeps them)."""
    import numpy as np

    return int(np.array(value, np.float64).astype(np.float32).view(np.uint32))


def _is_nan32(bits: int) -> bool:
    return bits & 0x7FFFFFFF > 0x7F800000


def comfy_nan_code(bits: int) -> int:
    """The E2M1 code comfy-kitchen's ``_f32_to_floatx_unpacked`` gives the NaN float32
    ``bits``: its normal-path integer arithmetic (add ``((1 - 127) << 23) + 0x1FFFFF`` and
    the mantissa's odd bit, shift right 22, keep 8 bits) on the sign-cleared bits, 3 for a
    quiet NaN whose payload bit 21 is clear, 4 when it is set; the sign bit kept."""
    magnitude = bits & 0x7FFFFFFF
    odd = (magnitude >> 22) & 1
    code = ((magnitude - 0x3F000000 + 0x1FFFFF + odd) >> 22) & 0xFF
    return code | (0x8 if bits >> 31 else 0)


def comfy_block(values: Sequence[float], tensor: float, rounding: str = "even",
                zero_sign: str = "keep") -> tuple[int, list[int]]:
    """(scale byte, codes) of one block by comfy-kitchen 0.2.40's eager ``quantize_nvfp4``
    (``backends/eager/quantization.py``), in x86 float32 arithmetic, NaN and Inf included.

    ``y = f32(f32(amax / 6) / s_t)`` (``s_t`` = ``tensor``, the decode multiplier),
    ``min(y, 448)``, E4M3 nearest even; a NaN ``y`` is 0x7F when it comes from a NaN
    element or tensor scale (propagated, positive: ``amax`` is of ``|x|``), else 0xFF (0 / 0
    or Inf / Inf: :data:`X86_DEFAULT_NAN`). The elements: ``q = f32(x / t)`` with
    ``t = f32(s_t * s_b)``; when ``t == 0`` every code is +0 (comfy's zero-scale mask); else
    ``q`` clamped to +-6 and rounded to E2M1 by ``rounding``/``zero_sign``, and a NaN ``q``
    (x86: the NaN operand, quieted, the first one if both are; else the default NaN) coded
    by :func:`comfy_nan_code`. E4M3 NaN bytes widen to float32 as torch does, 0x7F to
    0x7FF00000 and 0xFF to 0xFFF00000.
    """
    from .elements import element_code
    from .scale_rules import _f32_divide, f32

    xs = [_bits32(v) for v in values]
    t_bits = _bits32(tensor)
    nan_in = any(_is_nan32(b) for b in xs)
    amax = max((abs(v) for v in values if v == v), default=0.0)
    if nan_in or _is_nan32(t_bits):
        scale = 0x7F if nan_in or not t_bits >> 31 else 0xFF  # the propagated NaN's sign
    else:
        y = _f32_divide(f32(amax / 6), tensor)
        if y != y:
            scale = 0xFF  # X86_DEFAULT_NAN
        else:
            scale = e4m3.encode(min(y, 448.0), "even", saturate=True)
    if _is_nan32(t_bits):
        total_bits = t_bits | 0x00400000
    elif scale & 0x7F == 0x7F:
        total_bits = 0x7FF00000 | ((scale & 0x80) << 24)
    elif math.isinf(tensor) and e4m3.decode(scale) == 0:
        total_bits = X86_DEFAULT_NAN
    else:
        total_bits = _bits32(f32(tensor * e4m3.decode(scale)))
    if total_bits & 0x7FFFFFFF == 0:  # comfy: where(total == 0, 0, x / 1)
        return scale, [0] * len(values)
    total = math.nan if _is_nan32(total_bits) else _float32(total_bits)
    codes = []
    for v, bits in zip(values, xs, strict=True):
        if _is_nan32(bits):
            codes.append(comfy_nan_code(bits | 0x00400000))
        elif _is_nan32(total_bits):
            codes.append(comfy_nan_code(total_bits))
        elif math.isinf(v) and math.isinf(total):
            codes.append(comfy_nan_code(X86_DEFAULT_NAN))
        else:
            q = _f32_divide(abs(v), abs(total))
            signed = -v if total_bits >> 31 else v  # the sign of x / t
            codes.append(element_code(signed, min(q, 6.0), rounding, zero_sign))
    return scale, codes


def modelopt_block(values: Sequence[float], tensor: float, clamp, zero_scale,
                   rounding: str = "even", zero_sign: str = "quotient") -> tuple[int, list[int]]:
    """(scale byte, codes) of one block by ModelOpt 0.47's ``NVFP4QTensor.quantize`` under
    ``nonfinite="modelopt"``: the ``"modelopt"`` recipe in x86 float32 arithmetic, NaN and
    Inf included. ``y = amax / f32(6 * s_t)``, 0 -> ``zero_scale``, ``clamp``, E4M3; a NaN
    ``y`` is 0x7F when a NaN element or tensor scale made it (positive: ``amax`` is of ``|x|``;
    a tensor NaN keeps its sign), else 0xFF (0 / 0, Inf / Inf). Each element
    ``q = x / f32(s_b * s_t)``: a NaN ``q`` is code 7, the rest rounded by ``rounding`` with
    the sign by ``zero_sign``."""
    from .elements import element_code
    from .scale_rules import _f32_divide, f32

    t_bits = _bits32(tensor)
    nan_in = any(v != v for v in values)
    amax = max((abs(v) for v in values if v == v), default=0.0)
    if nan_in or _is_nan32(t_bits):
        scale = 0x7F if nan_in or not t_bits >> 31 else 0xFF
    else:
        y = _f32_divide(amax, f32(6 * tensor))
        if y != y:
            scale = 0xFF  # X86_DEFAULT_NAN
        else:
            if y == 0 and zero_scale is not None:
                y = zero_scale
            if clamp is not None:
                y = min(max(y, clamp[0]), clamp[1])
            scale = e4m3.encode(y, "even", saturate=True)
    block = e4m3.decode(scale)
    d = math.nan if block != block or tensor != tensor else f32(block * tensor)
    codes = []
    for v in values:
        if v != v or d != d or (v == 0 and d == 0) or (math.isinf(v) and math.isinf(d)):
            codes.append(7)  # a NaN quotient: searchsorted past the bounds, sign bit 0
            continue
        q = _f32_divide(abs(v), abs(d))
        codes.append(element_code(-v if d < 0 else v, q, rounding, zero_sign))
    return scale, codes


def _float32(bits: int) -> float:
    import numpy as np

    return float(np.array(bits, np.uint32).view(np.float32))


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


def _quotient(a: tuple, b: tuple) -> tuple:
    """(magnitude, negative) of ``a / b`` rounded to float32 (IEEE: 0 / 0 and Inf / Inf
    are NaN, magnitude None; x / 0 is infinite, magnitude -1; x / Inf is 0)."""
    (ma, na), (mb, nb) = a, b
    negative = na != nb
    if ma is None or mb is None or (ma == 0 and mb == 0) or (ma < 0 and mb < 0):
        return None, negative
    if ma < 0 or mb == 0:
        return Fraction(-1), negative
    if mb < 0:
        return Fraction(0), negative
    return binary_value(round_to_binary(ma / mb, negative, 8, 23), "float32")


def _scale_first(codes, block_scale, tensor_scale_bits, dtype, arithmetic):
    """The ``"scale-first"`` and ``"output-dtype"`` decodes of :func:`dequantize_block`."""
    within = dtype if arithmetic == "output-dtype" else "float32"
    tensor = binary_value(convert_float32(tensor_scale_bits, within), within)
    block = abs(Fraction(block_scale)), math.copysign(1.0, block_scale) < 0
    if arithmetic == "compressed-tensors":  # f32(s_b / G)
        total = _quotient(block, tensor)
    else:
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


def _fouroversix(codes, block_scale, tensor_scale_bits, dtype, divisor):
    """The ``"fouroversix"`` decode of :func:`dequantize_block`: ``f32(P * s_b)`` (exact;
    the package multiplies in float16), times the amax A in float32, divided by ``divisor``
    in float32 (``fouroversix/quantize/backend.py``, ``dequantize``), then ``dtype``."""
    amax = binary_value(tensor_scale_bits, "float32")
    block = abs(Fraction(block_scale)), math.copysign(1.0, block_scale) < 0
    d = (abs(Fraction(divisor)), divisor < 0)
    out = []
    for code in codes:
        element = (e2m1.magnitude(code), bool(code & 0x8))
        magnitude, negative = _quotient(_product(_product(element, block, "float32"), amax,
                                                 "float32"), d)
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


def vllm_block(values: Sequence[float], tensor: float) -> tuple[int, list[int]]:
    """(E4M3 byte, codes) of one block by vLLM 0.33.0 ``ref_nvfp4_quant`` (the ``"vllm"``
    recipe), with ``tensor`` the global scale G it is passed (encode direction), every step
    the float32 operation torch runs on x86:

    - ``vec_max`` = ``max |x|`` (NaN if an element is; Inf if one is);
    - y = G * float32(vec_max * float32(1/6)) (``FLOAT4_E2M1_MAX_RECIPROCAL``, a Python float
      torch casts to float32), clamped to [-448, 448], cast to E4M3 (nearest even); a NaN y
      is 0x7F when propagated from a NaN element (or G), 0xFF when made by G * y = 0 * Inf or
      Inf * 0 (x86's default NaN is negative);
    - ``get_reciprocal``: r = 1 / (v + (v == 0) * 1e8); output_scale = r(s * r(G)) (a block
      scale 0 gives 1 / 1e8, so its elements keep their sign; G = 0 gives r(G) = 1e-8);
    - q = float32(x * output_scale), clamped to [-6, 6]; ``cast_to_fp4`` rounds ``|q|`` to the
      nearest E2M1 value by its thresholds (ties to even) and multiplies by torch.sign(q):
      the sign bit is set iff q < 0 (-0.0 and products that underflow to zero give +0).

    vLLM returns the E2M1 values as float32: a NaN q (every element of a block whose scale
    is NaN, an Inf element times output_scale 0) has no code; fp4ref writes 0xF, as the
    peers adapter packs it.
    """
    from .elements import element_code
    from .scale_rules import f32

    def reciprocal(v):  # vllm get_reciprocal: 1 / (v + (v == 0) * 1e8), in float32
        v = f32(v + (1e8 if v == 0 else 0.0))
        return 0.0 if math.isinf(v) else f32(1 / v)

    g = float(tensor)
    if any(math.isnan(v) for v in values):
        amax = math.nan
    else:
        amax = max((abs(v) for v in values), default=0.0)
    a = f32(amax * f32(1 / 6))
    if g != g:  # G * a: x86 returns the first NaN operand, G's (with its sign)
        byte = 0xFF if math.copysign(1.0, g) < 0 else 0x7F
    elif a != a:  # a NaN element: torch.abs made it positive
        byte = 0x7F
    elif (g == 0 and math.isinf(a)) or (math.isinf(g) and a == 0):  # 0 * Inf: default NaN
        byte = 0xFF
    else:
        y = min(max(f32(g * a), -448.0), 448.0)
        byte = e4m3.encode(y, "even", saturate=True)
    s = e4m3.decode(byte)
    t = f32(s * reciprocal(g))  # NaN for a NaN scale, and for 0 * Inf
    if t != t:
        return byte, [0xF] * len(values)
    scale = reciprocal(t)
    codes = []
    for v in values:
        q = f32(v * scale)  # NaN for Inf * 0 and 0 * Inf
        if q != q:
            codes.append(0xF)
            continue
        q = min(max(q, -6.0), 6.0)
        codes.append(element_code(q, abs(q), "even", "drop") | (0x8 if q < 0 else 0))
    return byte, codes
