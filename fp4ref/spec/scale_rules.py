"""Block scale rules, literally: how each implementation turns a block's amax into a scale.

MXFP4 (E8M0 scales). Every rule maps a finite, non-negative float32 ``amax`` to a byte;
a block holding NaN or Inf never reaches a rule (:mod:`fp4ref.spec.mx` gives it 0xFF).
Rules the spec or a peer defines exactly are computed exactly here (integer exponents
and :class:`fractions.Fraction`); where a peer's rule *is* float32 arithmetic (the
``amax / 6`` division, a float32 ``log2``), that arithmetic is written out step by step
with :func:`f32`, each step one IEEE float32 operation.

NVFP4 (E4M3 block scales): the recipes of :func:`nvfp4_block_scale` and
:func:`nvfp4_divisor` are float32 arithmetic in every producer, so they are written in
float32 too.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from . import e4m3

#: MXFP4 scale rules, by name (``"optimal"`` and ``"optimal-hessian"`` start from a base
#: rule and search; see :mod:`fp4ref.spec.optimal`).
MX_RULES = ("floor", "rceil", "ceil", "even", "nearest", "mistralrs", "qwantize", "ggml",
            "exponent", "quark", "exponent-up", "mlx", "torchao-rceil")
SEARCH_RULES = ("optimal", "optimal-hessian")

#: NVFP4 two-level recipes (see :func:`nvfp4_block_scale`).
NV_RECIPES = ("plain", "modelopt", "torchao", "compressed-tensors", "comfy", "vllm", "mlx")

#: emax_elem of E2M1 (OCP MX v1.0 section 6.3).
EMAX_ELEM = 2


def f32(value: float) -> float:
    """``value`` rounded to float32 (nearest even, overflow to infinity), as a Python float.

    One IEEE float32 operation on float32 operands equals the same operation in float64
    followed by this rounding (53 >= 2 * 24 + 2 bits, so double rounding is innocuous), which
    is how the float32 steps below are written.
    """
    with np.errstate(over="ignore"):
        return float(np.float32(value))


def log2f(value: float) -> float:
    """float32 ``log2`` of a float32 ``value``: the float64 ``log2`` rounded to float32.

    torch's and Rust's float32 ``log2`` agree with this on every exponent decision tested
    (all float32 within 3000 ulps of each power of two, torch 2.13 CPU AVX-512).
    """
    if value == 0:
        return -math.inf
    return f32(math.log2(value))


def _floor_log2(value: Fraction) -> int:
    """floor(log2(value)) for value > 0, exactly."""
    exponent = value.numerator.bit_length() - value.denominator.bit_length()
    if Fraction(2) ** exponent > value:
        exponent -= 1
    return exponent


def _ceil_log2(value: Fraction) -> int:
    exponent = _floor_log2(value)
    return exponent if Fraction(2) ** exponent == value else exponent + 1


def _biased(exponent: int, low: int = -127, high: int = 127) -> int:
    return min(max(exponent, low), high) + 127


def float32_bits(value: float) -> int:
    """The float32 bit pattern of a float32 value."""
    return int(np.array(value, np.float32).view(np.uint32))


def mx_scale(amax: float, rule: str) -> int:
    """The E8M0 scale byte ``rule`` gives a block whose largest magnitude is ``amax``.

    Parameters
    ----------
    amax : float
        A finite float32 value >= 0.
    rule : str
        One of :data:`MX_RULES`:

        - ``"floor"``: OCP MX v1.0 section 6.3, X = 2^(floor(log2 amax) - emax_elem), exact;
          the exponent clamps at -127, and amax = 0 gives 0x00 (what the OCP reference
          code does; the text leaves it open).
        - ``"rceil"``: X = the smallest power of two >= float32(amax / 6), exact; NVIDIA's
          ``cvt.rp.satfinite.ue8m0x2.f32``, flashinfer, torchao RCEIL on CUDA.
        - ``"ceil"``: X = 2^(ceil(log2 amax) - 2), exact (torchao CEIL, from the exponent bits).
        - ``"even"``: torchao EVEN / Quark / compressed-tensors: add 0x200000 to the float32
          bits of amax, mask the mantissa off, then the floor rule.
        - ``"nearest"``: X = 2^round(log2(float32(amax / 6))), exact (MLX's source at
          0.32.2; MLX 0.32.4 on CPU runs ``"mlx"``); no ties exist.
        - ``"mistralrs"``: mistral.rs ISQ, ``floor(log2f(amax / 6.0)) + 127`` clamped to
          [0, 254] in f32 arithmetic; amax = 0 gives 127.
        - ``"qwantize"``: qwantize 0.1.1 ``mxfp4_naive``: ``floor(log2f(max(amax, 1e-30))
          - 2 + 127)`` in float32, clamped to [1, 254]; amax = 0 gives 25.
        - ``"ggml"``: gguf-py 0.19 / ggml: ``uint8(floor(log2f(amax)) - 2 + 127)`` with no
          clamp, so exponents below 0 wrap modulo 256; amax = 0 gives 0.
        - ``"exponent"``: the biased exponent field of float32(amax / 6), vLLM's
          ``downcast_to_mxfp_torch`` ROUND_DOWN (``bits & 0x7F800000``): a subnormal or zero
          quotient gives 0x00.
        - ``"quark"``: AMD Quark 0.13 ``even_round``: the ``"even"`` bit trick, then
          ``floor(log2) - 2`` clamped to [-127, 127]: an exponent field of 255 after the add
          (amax >= 1.75 * 2^127, and amax = Inf) is log2(Inf), clamped to 127: 0xFE.
        - ``"exponent-up"``: vLLM ``downcast_to_mxfp_torch`` ROUND_UP (its default),
          ``((bits + 0x7FFFFF) & 0x7F800000) >> 23`` of float32(amax / 6): rceil, except
          that a subnormal quotient gives 0x01 (rceil: 0x00 up to 2^-127).
        - ``"mlx"``: MLX 0.32.4 on CPU (``fp_quantize``): ``uint8(e + 127)`` with e
          :func:`mlx_exponent`, no clamp, so exponents below -127 wrap modulo 256
          (``[2^-126]`` gets 0xFF); the elements are divided by 2^e, not by the stored
          byte's value (:func:`mx_divisor`).
        - ``"torchao-rceil"``: torchao 0.18 ``_to_mx_rceil`` on CPU (its fallback of the
          ``cvt.rp`` instruction): ``clamp(ceil(log2f(float32(amax / 6))), -127, 127) +
          127`` with float32 ``torch.log2``, so a quotient a few ulps above a power of two
          rounds down to it; a zero quotient gives 0x00.

        ``"exponent"``, ``"exponent-up"`` and ``"quark"`` also take amax = Inf or NaN (a
        block under ``nonfinite="vllm"`` or ``"quark"``): their bit arithmetic on it.
    """
    if rule == "quark":  # quark/torch/quantization/utils.py even_round
        field = ((float32_bits(amax) + 0x200000) & 0x7F800000) >> 23
        return 254 if field == 255 else _biased(field - 127 - EMAX_ELEM)
    if rule == "exponent-up":  # vllm mxfp.py downcast_to_mxfp_torch, ROUND_UP
        return ((float32_bits(f32(amax / 6)) + 0x7FFFFF) & 0x7F800000) >> 23
    if rule == "qwantize":
        t = f32(f32(log2f(max(amax, f32(1e-30))) - 2) + 127)
        return min(max(math.floor(t), 1), 254)
    if rule == "ggml":
        return 0 if amax == 0 else (math.floor(log2f(amax)) + 125) % 256
    if rule == "mistralrs":
        if amax == 0:
            return 127
        quotient = f32(amax / 6)
        if quotient == 0:  # log2(0) = -inf, cast to i32::MIN, clamped to 0
            return 0
        return min(max(math.floor(log2f(quotient)) + 127, 0), 254)
    if rule == "exponent":
        return float32_bits(f32(amax / 6)) >> 23
    if rule == "mlx":
        return (mlx_exponent(amax) + 127) % 256
    if rule == "torchao-rceil":  # torch.ceil(torch.log2(descale)), float32
        quotient = f32(amax / 6)
        return 0 if quotient == 0 else _biased(math.ceil(log2f(quotient)))
    if rule == "even":
        bits = (float32_bits(amax) + 0x200000) & 0x7F800000
        return _biased((bits >> 23) - 127 - EMAX_ELEM, high=128)
    if amax == 0:
        return 0
    if rule == "floor":
        return _biased(_floor_log2(Fraction(amax)) - EMAX_ELEM)
    if rule == "ceil":
        return _biased(_ceil_log2(Fraction(amax)) - EMAX_ELEM)
    quotient = Fraction(f32(amax / 6))
    if quotient == 0:
        return 0
    if rule == "rceil":
        return _biased(_ceil_log2(quotient))
    if rule == "nearest":
        exponent = _floor_log2(quotient)
        mantissa = quotient / Fraction(2) ** exponent  # in [1, 2)
        return _biased(exponent + (1 if mantissa * mantissa >= 2 else 0))
    raise ValueError(f"rule must be one of {MX_RULES}; got {rule!r}")


def mlx_exponent(amax: float) -> int:
    """MLX 0.32.4's MXFP4 scale exponent: the smallest e with 2^e >= float32(amax / 6),
    exactly (run: it agrees with MLX on 16404 blocks with amax at and around every power of
    two and 6 * 2^k, subnormal ones included), and 0 when the quotient is 0."""
    quotient = Fraction(f32(amax / 6))
    return 0 if quotient == 0 else _ceil_log2(quotient)


def mx_divisor(amax: float, byte: int, rule: str) -> float:
    """The value an MXFP4 block's elements are divided by: 2^(byte - 127)
    (:func:`e8m0_divisor`), except under ``"mlx"``, whose stored byte wraps: 2^e with e
    :func:`mlx_exponent` (2^-149 at the least, a float32 subnormal)."""
    if rule == "mlx":
        return math.ldexp(1.0, mlx_exponent(amax))
    return e8m0_divisor(byte)


def e8m0_divisor(byte: int) -> float:
    """The float32 value 2^(byte - 127) elements are divided by (0x00 is 2^-127)."""
    return math.ldexp(1.0, byte - 127)


def nvfp4_block_scale(
    amax: float, recipe: str, tensor: float, clamp: tuple[float, float] | None,
    zero_scale: float | None, encode: str = "ocp",
) -> int:
    """The E4M3 block-scale byte of an NVFP4 block whose largest magnitude is ``amax``.

    Every step is one float32 operation, in each producer's order (``tensor`` is the
    float32 tensor scale in the recipe's own direction):

    - ``"plain"`` (qwantize, torchao 1-level): y = amax / 6.
    - ``"modelopt"`` (ModelOpt 0.47): y = amax / (6 * s_t), s_t the decode multiplier; a
      zero y becomes ``zero_scale`` (1.0) before the cast.
    - ``"torchao"`` (torchao 0.18 2-level): y = (amax / 6) / s_t.
    - ``"compressed-tensors"`` (0.20): y = G * (amax / 6), G the encode scale; a zero
      *byte* after the cast becomes ``zero_scale`` (0.125).
    - ``"comfy"`` (comfy-kitchen 0.2.40): y = (amax / 6) / s_t, rounded twice (its NaN
      bytes and zero-divisor blocks: :func:`fp4ref.spec.nvfp4.comfy_block`).
    - ``"vllm"`` (vLLM 0.33.0 ``ref_nvfp4_quant``): its own block function,
      :func:`fp4ref.spec.nvfp4.vllm_block` (this function and :func:`nvfp4_divisor` do not
      take it).
    - ``"mlx"`` (MLX 0.32.4 ``fp_quantize``): y = (amax / 6) * E, E = float32(2688 / G)
      for the given global scale G (1.0 without one); MLX's ``to_fp8`` saturates NaN (the
      max of a block holding NaN, or Inf * 0) to 0x7E like Inf.

    Then ``clamp`` (low, high) if given (torchao [2^-6, 448], ModelOpt [2^-9, 448]) and the
    E4M3 cast: nearest even, saturating to 448 (torch 2.13's cast). NaN gives 0x7F.
    ``encode="ggml"`` casts with ggml's ``ggml_fp32_to_ue4m3`` instead
    (:func:`fp4ref.spec.e4m3.encode_ggml`).
    """
    if recipe == "plain":
        y = f32(amax / 6)
    elif recipe == "modelopt":
        y = _f32_divide(amax, f32(6 * tensor))
        if y == 0 and zero_scale is not None:
            y = zero_scale
    elif recipe == "torchao":
        y = _f32_divide(f32(amax / 6), tensor)
    elif recipe == "compressed-tensors":
        y = f32(tensor * f32(amax / 6))
    elif recipe == "comfy":  # comfy-kitchen 0.2.40 quantize_nvfp4: two roundings
        y = _f32_divide(f32(amax / 6), tensor)
    elif recipe == "mlx":
        with np.errstate(invalid="ignore", over="ignore"):
            y = float(np.float32(amax) / np.float32(6) * np.float32(tensor))
        if y != y:  # MLX's to_fp8 saturates NaN; fp4ref writes the positive byte (x86's
            return 0x7E  # Inf * 0 NaN is negative: MLX there writes 0xFE)
    else:
        raise ValueError(f"recipe must be one of {NV_RECIPES}; got {recipe!r}")
    if clamp is not None and y == y:
        y = min(max(y, clamp[0]), clamp[1])
    if y != y:  # a NaN made by the arithmetic (Inf / Inf) has the hardware's sign (x86
        return 0x7F  # negative, CUDA positive); fp4ref writes the positive NaN byte
    if encode == "ggml":
        byte = e4m3.encode_ggml(y)
    else:
        byte = e4m3.encode(y, "even", saturate=True)
    if recipe == "compressed-tensors" and byte == 0 and zero_scale is not None:
        byte = e4m3.encode(zero_scale)
    return byte


def nvfp4_divisor(byte: int, recipe: str, tensor: float) -> tuple[float, bool]:
    """(d, multiply): elements become float32(abs(x) / d), or float32(abs(x) * d) if ``multiply``.

    ``"plain"``: d = s_b; ``"modelopt"``: d = float32(s_b * s_t) (a true division);
    ``"mlx"``: d = s_b, and the quotient is then multiplied by E (:func:`mlx_quotient`);
    ``"compressed-tensors"``: d = float32(s_b / G); ``"torchao"``: multiply by
    float32(float32(1 / s_t) / s_b), its reciprocal (torchao 0.18 ``nvfp4_quantize``).
    """
    scale = e4m3.decode(byte)
    if recipe in ("plain", "mlx"):
        return scale, False
    if recipe == "modelopt":
        return f32(scale * tensor), False
    if recipe == "compressed-tensors":
        return _f32_divide(scale, tensor), False
    if recipe == "comfy":  # x / f32(s_t * s_b), as ModelOpt
        return f32(scale * tensor), False
    return _f32_divide(_f32_divide(1.0, tensor), scale), True


def _f32_divide(a: float, b: float) -> float:
    """float32(a / b) with IEEE results for b = 0 and NaN."""
    if b == 0 or a != a or b != b:
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.float32(a) / np.float32(b))
    return f32(a / b)


def mlx_quotient(x: float, d: float, tensor: float) -> float:
    """MLX NVFP4: float32(float32(abs(x) / d) * E) (``multiply(divide(wq, s_b), E)``, E the
    tensor operand float32(2688 / G), 1.0 without G)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return float(np.float32(quotient(x, d, False)) * np.float32(tensor))


def quotient(x: float, d: float, multiply: bool) -> float:
    """float32(abs(x) / d) (or float32(abs(x) * d)): the magnitude an element is rounded from."""
    if multiply:
        return f32(abs(x) * d)
    return _f32_divide(abs(x), d)
