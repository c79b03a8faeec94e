"""Conventions as data: one frozen record per implementation fp4ref can emulate.

Every axis on which real MXFP4/NVFP4 implementations disagree (``docs/wild.md``) is a
field of :class:`Profile`. :func:`fp4ref.quantize` and :func:`fp4ref.dequantize` read
them; keyword arguments on a call override the profile. ``"ocp"`` is the default and
follows the OCP MX v1.0 text (and NVIDIA's NVFP4 documentation for NVFP4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from numbers import Real
from typing import Any

from .spec.elements import ZERO_SIGNS
from .spec.fouroversix import RULES as FOUROVERSIX_RULES
from .spec.layouts import LAYOUTS
from .spec.nibbles import NIBBLE_ORDERS
from .spec.rounding import TIE_RULES
from .spec.scale_rules import MX_RULES, NV_RECIPES, SEARCH_RULES

#: E8M0 decode conventions: ``"ocp"`` 0x00 = 2^-127 and 0xFF = NaN (MX v1.0 5.4.1);
#: ``"bits"`` float32_from_bits(e << 23), so 0x00 = 0.0 and 0xFF = +Inf (mistral.rs);
#: ``"ggml"`` 0xFF = 2^128 (ggml's half scale 2^127 times doubled integers; finite codes
#: overflow to Inf) and code 0x8 decodes to +0.0; ``"inf"`` 0x00 = 2^-127 and 0xFF = +Inf
#: (MLX's bfloat16 bits ``s << 7``, AMD Quark's ``2 ** (s - 127)``).
E8M0_DECODES = ("ocp", "bits", "ggml", "inf")

#: Decode arithmetic: ``"exact"`` the element times its scale(s) rounded once to float32
#: (NVFP4: ``f32(P * s_b) * s_t``), then to the output dtype; ``"scale-first"`` NVFP4
#: ``P * f32(s_b * s_t)`` in float32 (vLLM ``dequantize_to_dtype``); ``"output-dtype"``
#: the scales converted to the output dtype and each product rounded to float32 and then
#: to it, as torch and MLX multiply bfloat16/float16 tensors (comfy-kitchen
#: ``dequantize_nvfp4``, Quark, MLX): ``dt(P * dt(dt(s_t) * dt(s_b)))``, MXFP4
#: ``dt(P * dt(X))``; for float32 output the same as ``"scale-first"``;
#: ``"compressed-tensors"`` (its ``_dequantize``): NVFP4 ``dt(P * f32(s_b / G))`` with G
#: the stored encode tensor scale (``weight_global_scale``), MXFP4 as ``"output-dtype"``;
#: ``"modelopt"`` (``NVFP4QTensor.dequantize``): NVFP4 ``dt(P * f32(s_b * s_t))`` with
#: code 0x8 read as +0 (its ``e2m1_values`` table), MXFP4 as ``"exact"``; ``"by-format"``:
#: MXFP4 as ``"output-dtype"``, NVFP4 as ``"scale-first"``, the torch-style decodes of two
#: implementations: torchao 0.18 (``to_dtype``: ``data.to(dt) * get_fp_scale(s).to(dt)``;
#: ``NVFP4Tensor.dequantize``: ``(P * f32(s_t * s_b)).to(dt)``) and MLX 0.32.4
#: ``mx.dequantize`` (``lut * (from_fp8(s_b) * (global_scale / 2688))``, promoted to
#: float32 by the float32 global scale; without one the product is exact in every dtype).
#: ``"fouroversix"`` (the ``fouroversix`` 1.0.5 package's ``dequantize``, run on every
#: stored byte pair): NVFP4 ``dt(f32(f32(f32(P * s_b) * A) / D))``, A the stored tensor amax
#: (``tensor_scale_direction="amax"``), D = M * S of the four-over-six rule (1536 for its
#: adaptive rules, 2688 for static-6, 1792 for static-4): ``P * s_b`` in float16 (exact),
#: then ``.to(float32) * amax / D`` in float32, then the output dtype; without an amax
#: ``dt(P * s_b)``. MXFP4 as ``"exact"`` (the package's MXFP4 is not adapted).
DECODE_ARITHMETIC = ("exact", "scale-first", "output-dtype", "compressed-tensors",
                     "modelopt", "by-format")
DECODE_ARITHMETIC += ("fouroversix",)

#: NVFP4 block-scale decode: ``"ocp"`` E4M3 as OFP8 v1.0 (0x7F/0xFF NaN); ``"ggml"``
#: ggml's UE4M3 (``ggml_ue4m3_to_fp32``): the sign bit is ignored, 0x7F is 0 and 0xFF is
#: 480, and element code 0x8 is +0 (its doubled-integer table has no -0).
E4M3_DECODES = ("ocp", "ggml")

#: Non-finite input policies: ``"nan-scale"``: a block holding NaN or Inf gets the NaN
#: scale (0xFF / 0x7F) and zero codes; ``"ieee"``: NaN does, Inf runs through the recipe's
#: float32 arithmetic (NVFP4 only: Inf saturates the block scale to 448, its code to 6).
#: ``"ggml"``: ggml's C quantizers (``quantize_row_mxfp4_ref``, ``quantize_row_nvfp4_ref``):
#: NaN never enters the block max (``if (amax < fabsf(v))``); a block whose max is Inf
#: gets MXFP4 scale byte 0x00 (``(uint8_t)(floorf(log2f(Inf)) - 2 + 127)``, undefined in C:
#: x86-64 ``cvttss2si`` gives 0x80000000, low byte 0) and NVFP4 the recipe's float32
#: arithmetic on Inf (plain: Inf / 6, encoded 0x7E). ``"gguf-py"``: gguf-py 0.19's numpy
#: ``MXFP4.quantize_blocks``: ``max`` propagates NaN and ``d > 0`` is False, so a block
#: holding NaN gets 0x00; Inf as ``"ggml"``. Under both, NaN and Inf elements are coded by
#: the element rule (:data:`ELEMENT_RULES`; ``"ggml"``: code 0).
#: ``"gfloat"`` (MXFP4 only, gfloat 0.5 ``compute_scale_amax`` + ``encode_block``): a NaN
#: anywhere is refused (``ValueError``; gfloat raises "No NaN in format ocp_e2m1"), a block
#: holding Inf gets scale 0xFE (``floor(log2(Inf)) - 2`` clipped to 127) and its elements
#: are coded as ``V / 2^127`` (Inf -> +-6, the rest by the tie rule, e.g. 1.0 -> 0).
#: ``"comfy"`` (NVFP4, with the ``"comfy"`` recipe only): nothing special-cased, NaN and Inf
#: run through comfy-kitchen's eager float32 arithmetic on x86 (a NaN element or tensor
#: scale gives scale byte 0x7F, a NaN made by 0/0 or Inf/Inf the negative default NaN,
#: byte 0xFF; each NaN quotient is coded by its bits, 3 or 4 (payload bit 21) with its
#: sign: :func:`fp4ref.spec.nvfp4.comfy_block`).
#: ``"quark"`` (MXFP4, AMD Quark 0.13 PerBlockMXObserver + scaled_real_quantize + Pack_fp4):
#: a block holding NaN gets scale 0x7F (``to_e8m0_uint8``: NaN -> int16 is 0 on x86) and
#: code 7 everywhere (every x / NaN is NaN; Pack_fp4 reads bits 22-24 of NaN / 2^126 as 7),
#: the sign bit set only on NaN elements whose own sign is set; an Inf block goes through
#: the scale rule as amax = Inf (``"quark"``: 0xFE) and Inf / X = Inf codes 6 with its sign
#: (Pack_fp4 reads Inf's bits as 6). ``"vllm"`` (MXFP4, vLLM 0.33.0
#: ``downcast_to_mxfp_torch``): the block amax is NaN if an element is (torch.max), else Inf
#: if one is, and runs through the rule's float32 bit arithmetic (``"exponent-up"``: NaN
#: -> 0x00, Inf -> 0xFF; ``"exponent"``: both 0xFF); with ``mx_element_scale="bits-reciprocal"``
#: the elements are x * 0: finite ones +-0 codes (sign kept), NaN 0x7 with its sign bit
#: (the bit conversion saturates its exponent), Inf 0xF (Inf * 0 is x86's default NaN,
#: negative). ``"vllm-triton"`` (MXFP4, vLLM 0.33.0 ``mxfp4_utils._compute_quant_and_scale``):
#: NaN never enters the block max (``tl.max`` skips it; a block of NaNs has max NaN, whose
#: bits go through the rule: ``"quark"`` gives 0xFE), an Inf max goes through the rule;
#: NaN and Inf elements code 7 with their sign (the bit conversion saturates exponent 255).
#: MXFP4 blocks with a NaN or an Inf, as implementations code them (under the rule and the
#: searches alike, as qwantize's searches do; NaN codes are those of the quiet NaN, as the
#: float32 operations leave a signalling one):
#: ``"torchao"`` (torchao 0.18 ``to_mx`` FLOOR/CEIL/EVEN, CPU): a NaN block gets 0xFF and
#: its elements are divided by the float32 with bits 0xFF << 23 (+Inf): finite ones become
#: signed zeros, an Inf the x86 default NaN (0xFFC00000); an Inf block (no NaN) gets 253
#: (the exponent field 255 gives 2^126) and its elements are divided by 2^126, Inf coding
#: as 6. A NaN element's code is torchao's ``f32_to_f4_unpacked`` bit trick on it: its sign,
#: magnitude 3 + bit 21 of its bits (0x7FC00000 -> 3).
#: ``"torchao-rceil"`` (``to_mx`` RCEIL, CPU fallback ``_to_mx_rceil``): a NaN block gets
#: 0xFF and its elements are multiplied by ``amax / 6``, which torch's ``amax`` makes
#: 0x7FC00000 whatever the block's NaNs: every code is 3 (1.5); an Inf block gets 254 and
#: its elements times 2^-127 (Inf codes as 6).
#: ``"qwantize"`` (qwantize 0.1.1 ``mxfp4_naive``/``nvfp4_naive``): a NaN block gets the
#: NaN scale (0xFF / 0x7F) and, since ``|x| / NaN`` falls in the last bucket, code 6 with
#: its sign for every nonzero element, 0 for zeros and for NaNs (``torch.sign(NaN)`` is
#: 0), NVFP4 as MXFP4; an Inf block (no NaN): MXFP4 254 (log2 of Inf clamped), elements
#: divided by 2^127; NVFP4 as ``"ieee"``.
#: NVFP4 under ``"torchao"`` / ``"torchao-rceil"``: a block with NaN or Inf, and every
#: block under a tensor scale of 0, Inf, NaN or one without a finite float32 reciprocal,
#: gets torchao 0.18 ``nvfp4_quantize``'s bytes under x86's NaN rules
#: (:func:`fp4ref.spec.nvfp4.torchao_block`; an all-zero tensor: 0xFF, codes 0xC); other
#: blocks run the recipe as ``"ieee"`` does.
#: ``"mistralrs"`` (mistral.rs 0.9.5 in-situ MXFP4): NaN elements are left out of the
#: block max and coded 7 (+6) whatever their sign; a block max of Inf gives byte 0
#: (``floor(log2(Inf)) as i32 + 127`` wraps, clamped to 0) and elements divided by 2^-127.
#: ``"mlx"`` (MLX 0.32.4 on CPU, ``fp_quantize``): MXFP4 a block holding NaN or Inf gets
#: byte 0x80 and zero codes (its exponent is not finite; MLX's int32 cast and ``2^e``
#: give 0x80 and quotients +-Inf/NaN that argmin codes 0); NVFP4 nothing is special: NaN
#: propagates into the block max and Inf runs through the recipe's float32 arithmetic
#: (recipe ``"mlx"``: the E4M3 cast saturates NaN and Inf to 0x7E; NaN and Inf elements get
#: code 0 under ``element_rule="argmin"``).
#: ``"ieee-x86"`` (NVFP4): as ``"ieee"``, but a NaN block scale the recipe's float32
#: arithmetic makes (0 * Inf, Inf / Inf, 0 / 0: a block without NaN) carries x86's
#: default-NaN sign, byte 0xFF (compressed-tensors on CPU: an Inf makes G = 0, and the Inf
#: block's scale 0 * Inf); a NaN input block keeps 0x7F. MXFP4 as ``"ieee"``.
#: ``"compressed-tensors"`` (compressed-tensors 0.20 on CPU): NVFP4 as ``"ieee-x86"``;
#: MXFP4: a block whose amax ``round_to_power_2`` sends to Inf (its bits + 0x200000 reach
#: the exponent field 255: NaN, Inf, amax >= 1.75 * 2^127) gets scale byte 0x7F (the
#: low byte of ``127 + int32(floor(log2(Inf)))`` = 127 + INT_MIN) and zero codes
#: (``x / Inf``).
#: ``"modelopt"`` (NVFP4, with the ``"modelopt"`` recipe; ModelOpt 0.47 NVFP4QTensor on
#: x86): nothing special-cased: a block scale made NaN by a NaN element or tensor scale is
#: 0x7F, by 0 / 0 or Inf / Inf 0xFF (x86's default NaN); every element whose quotient
#: ``x / f32(s_b * s_t)`` is NaN gets code 7 (``searchsorted`` puts NaN past the bounds,
#: ``NaN < 0`` is False). MXFP4 (ModelOpt 0.47 MXFP4QTensor.quantize on x86): a block
#: holding NaN or Inf gets scale 0x00 (torch.max propagates NaN, ``ceil(log2(NaN or Inf))
#: + 127`` cast to uint8 is 0) and every code 0x8 (x / NaN and x / Inf are NaN or zeros,
#: and ``cast_fp4``'s ``(2 - torch.sign(q)) // 2`` sets the sign bit for them), under the
#: rule and the searches alike.
NONFINITE = ("nan-scale", "ieee", "gfloat", "ggml", "gguf-py", "comfy", "quark", "vllm",
             "vllm-triton", "torchao", "torchao-rceil", "qwantize", "mistralrs", "mlx",
             "ieee-x86", "compressed-tensors", "modelopt")

#: How an element's code is chosen: ``"nearest"`` the float32 quotient |x| / d rounded to
#: the nearest E2M1 magnitude by ``rounding`` (saturating at 6), its sign by ``zero_sign``;
#: ``"ggml"`` ggml's ``best_index_mxfp4(x, e)``: with e = f32(d / 2) (ggml's half scale, its
#: table holds doubled magnitudes k = 0, 1, 2, 3, 4, 6, 8, 12, then their negatives), the
#: first index of the least float32 error ``fabsf(f32(k * e) - x)``. That is ties toward
#: zero and zero codes +0 wherever the errors are exact, but NaN and +-Inf elements get
#: code 0 (every error NaN or Inf), a product k * e that overflows is never chosen (MXFP4
#: scale 0xFD and |x| > 3.5 * 2^126: code 5, not 6), an element whose errors all round to
#: the same float32 (|x| far past 12 e, or e = 0) gets code 0, and ``rounding`` and
#: ``zero_sign`` are not read. Not for recipes that multiply by a reciprocal (torchao).
#: ``"argmin"`` MLX 0.32.4's ``argmin(abs(q - lut))`` over its 16-entry table: the first
#: code whose float32 distance ``|f32(q - v)|`` from the scaled magnitude q is least. For
#: finite q below 2^24 that is ``"nearest"`` with ties toward zero and every zero code +0;
#: a NaN or infinite q gets code 0 (all distances NaN/Inf), and so does a huge q whose
#: float32 distances round equal (above 2^27; MLX run on 4000 quotients in 2^21..2^31: 7
#: below 2^25, 4 or 7 in [2^25, 2^26), 6 or 7 in [2^26, 2^27), 0 above); ``zero_sign``
#: still applies (``"drop"`` is MLX's), ``rounding`` is not read.
ELEMENT_RULES = ("nearest", "ggml", "argmin")

#: NVFP4 block-scale encode: ``"ocp"`` the nearest E4M3 (ties to even), saturating to
#: 448 (torch's ``.to(float8_e4m3fn)`` after the clamp); ``"ggml"`` ggml's
#: ``ggml_fp32_to_ue4m3``: NaN, zero and negatives give 0x00; past 448 clamps to 448;
#: below 2^-6 the mantissa ``(int)(f32(x * 512 + 0.5))`` (float32 add, then truncation)
#: capped at 7; otherwise the float32 mantissa's top 3 bits plus its fourth (ties away from
#: zero), and every result whose exponent field reaches 15 (x >= 248 after rounding) is
#: 0x7E (448).
E4M3_ENCODES = ("ocp", "ggml")

#: Directions of the NVFP4 tensor scale as stored: ``"decode"`` amax / (6 * 448), a
#: multiplier (ModelOpt ``weight_scale_2``, torchao); ``"encode"`` 6 * 448 / amax
#: (compressed-tensors ``weight_global_scale``, flashinfer ``global_scale``); ``"amax"``
#: the tensor amax G itself (MLX ``global_scale``): the recipe's operand is float32(2688 /
#: G), the decode multiplier float32(G / 2688), and none is computed when none is given;
#: under a four-over-six ``nvfp4_scale_rule`` (the ``fouroversix`` package's stored
#: ``amax``) the decode multiplier is float32(A / D), D its rule's M * S (1536 for the
#: adaptive rules), and the rule always computes A (:mod:`fp4ref.spec.fouroversix`).
TENSOR_SCALE_DIRECTIONS = ("decode", "encode", "amax")

#: How MXFP4 elements are scaled: ``"divide"`` float32(|x| / X), X = 2^(byte - 127) (0x00
#: is 2^-127); ``"bits-reciprocal"`` float32(x * q), q = float32(1 / X) with X = float32
#: from bits (byte << 23) and q = 0 where X is 0 (byte 0x00) or Inf (0xFF): such blocks get
#: +-0 codes (vLLM 0.33.0 ``downcast_to_mxfp_torch``, ``quant_scale``).
MX_ELEMENT_SCALES = ("divide", "bits-reciprocal")

#: Scale layouts (:data:`fp4ref.spec.layouts.LAYOUTS`).
SCALE_LAYOUTS = LAYOUTS

#: The choices of each named-convention field (None marks "may be None").
CHOICES: dict[str, tuple] = {
    "rounding": TIE_RULES,
    "zero_sign": ZERO_SIGNS,
    "scale_rule": (*MX_RULES, *SEARCH_RULES),
    "nonfinite": NONFINITE,
    "e8m0_decode": E8M0_DECODES,
    "decode_arithmetic": DECODE_ARITHMETIC,
    "e4m3_decode": E4M3_DECODES,
    "element_rule": ELEMENT_RULES,
    "e4m3_encode": E4M3_ENCODES,
    "nvfp4_recipe": (*NV_RECIPES, None),
    "nvfp4_scale_rule": (None, *FOUROVERSIX_RULES),
    "tensor_scale_direction": TENSOR_SCALE_DIRECTIONS,
    "nibble_order": NIBBLE_ORDERS,
    "scale_layout": LAYOUTS,
    "mx_element_scale": MX_ELEMENT_SCALES,
}

#: Inclusive ranges of the integer fields: the E8M0 bytes of finite scales (MX v1.0
#: 5.4.1: 0xFF is NaN) and the lane count of a float32 reduction.
INTEGER_RANGES: dict[str, tuple[int, int]] = {"e8m0_min": (0, 254), "sum_lanes": (1, 1024),
                                              "e8m0_stored_min": (0, 254)}


def _bad(field: str, value: Any, needed: str) -> ValueError:
    return ValueError(f"Profile.{field} must be {needed}; got {value!r}")


def _real(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _check(profile: Profile) -> None:
    """Raise ``ValueError`` naming the first field of ``profile`` outside its choices or
    range (and normalise ``block_scale_clamp`` to a tuple of two floats)."""
    for field in ("name", "description"):
        if not isinstance(getattr(profile, field), str):
            raise _bad(field, getattr(profile, field), "a str")
    for field, choices in CHOICES.items():
        value = getattr(profile, field)
        if not (value is None or isinstance(value, str)) or value not in choices:
            raise _bad(field, value, f"one of {choices}")
    for field, (low, high) in INTEGER_RANGES.items():
        value = getattr(profile, field)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise _bad(field, value, f"an int in {low}..{high}")
    if not isinstance(profile.tensor_scale, bool):
        raise _bad("tensor_scale", profile.tensor_scale, "a bool")
    clamp = profile.block_scale_clamp
    if clamp is not None:
        pair = tuple(clamp) if isinstance(clamp, (tuple, list)) else ()
        if not (len(pair) == 2 and all(_real(v) and math.isfinite(v) for v in pair)
                and 0 <= pair[0] <= pair[1]):
            raise _bad("block_scale_clamp", clamp,
                       "None or (low, high), finite reals with 0 <= low <= high")
        object.__setattr__(profile, "block_scale_clamp", (float(pair[0]), float(pair[1])))
    if profile.nonfinite == "modelopt" and profile.nvfp4_recipe not in ("modelopt", None):
        raise _bad("nonfinite", profile.nonfinite,
                   f"'modelopt' only with nvfp4_recipe='modelopt' (got {profile.nvfp4_recipe!r})")
    if profile.nonfinite == "comfy" and profile.nvfp4_recipe not in ("comfy", None):
        raise _bad("nonfinite", profile.nonfinite,
                   f"'comfy' only with nvfp4_recipe='comfy' (got {profile.nvfp4_recipe!r})")
    zero = profile.zero_block_scale
    if zero is not None and not (_real(zero) and math.isfinite(zero) and zero >= 0):
        raise _bad("zero_block_scale", zero, "None or a finite real >= 0")
    divisor = profile.e8m0_zero_divisor
    if divisor is not None and not (_real(divisor) and math.isfinite(divisor) and divisor > 0):
        raise _bad("e8m0_zero_divisor", divisor, "None or a finite real > 0")
    byte = profile.mx_zero_block_scale
    if byte is not None and not (isinstance(byte, int) and not isinstance(byte, bool)
                                 and 0 <= byte <= 254):
        raise _bad("mx_zero_block_scale", byte, "None or an int in 0..254")


@dataclass(frozen=True)
class Profile:
    """Every convention an MXFP4/NVFP4 producer or consumer chooses.

    Attributes
    ----------
    name, description : str
        The profile's name and where its behaviour comes from (project and version).
    rounding : {"even", "away", "zero"}
        E2M1 element tie rule.
    zero_sign : {"keep", "negative", "drop", "quotient", "not-positive"}
        Sign of an element code whose magnitude rounds to 0 (:mod:`fp4ref.spec.elements`).
    scale_rule : str
        MXFP4 scale rule (:data:`fp4ref.spec.scale_rules.MX_RULES`); ``"optimal"`` starts
        from it.
    e8m0_min : int
        Smallest E8M0 byte the optimal search may pick (qwantize: 1).
    nonfinite : str
        NaN/Inf policy, one of :data:`NONFINITE`.
    element_rule : {"nearest", "ggml", "argmin"}
        How an element's code is chosen (see :data:`ELEMENT_RULES`).
    e4m3_encode : {"ocp", "ggml"}
        How the NVFP4 block scale is encoded to E4M3 (see :data:`E4M3_ENCODES`).
    e8m0_decode : {"ocp", "bits", "ggml", "inf"}
        How scale bytes 0x00/0xFF decode (see :data:`E8M0_DECODES`).
    e4m3_decode : {"ocp", "ggml"}
        How NVFP4 scale bytes decode (see :data:`E4M3_DECODES`).
    decode_arithmetic : str
        The order and precision of the decode's multiplications, one of
        :data:`DECODE_ARITHMETIC`.
    nvfp4_recipe : str or None
        NVFP4 block-scale recipe (:data:`fp4ref.spec.scale_rules.NV_RECIPES`); None if the
        project has no NVFP4 quantizer.
    tensor_scale : bool
        NVFP4: whether there is a tensor scale (computed from the tensor amax unless given).
    tensor_scale_direction : {"decode", "encode", "amax"}
        How the NVFP4 tensor scale is stored and passed in (see
        :data:`TENSOR_SCALE_DIRECTIONS`).
    block_scale_clamp : (float, float) or None
        NVFP4 clamp of the block scale before the E4M3 cast.
    mx_zero_block_scale : int or None
        MXFP4: the E8M0 byte a block of zeros gets under a scale rule (None: what the rule
        gives, 0x00 for most; MLX's 0x7F is its rule's, AMD Quark's 0x01 its
        ``e8m0_stored_min``). The searches ignore it.
    zero_block_scale : float or None
        NVFP4 scale given to a zero block (None: whatever the recipe computes, 0).
    e8m0_zero_divisor : float or None
        MXFP4 under a scale rule: what the elements of a block whose scale byte is 0x00 are
        divided by (None: 2^-127, the byte's value); torchao FLOOR/CEIL/EVEN 2^-126
        (``scale_fp32.clamp(min=F32_MIN_NORMAL)``), torchao RCEIL on CPU 1.0 (its
        reciprocal ``torch.where(exponent == 0, 1.0, ...)``).
    nibble_order : {"low-first", "high-first", "split-half"}
        Where element 2j and 2j+1 sit in their byte.
    scale_layout : {"linear", "128x4", "8x4"}
        How scales are stored (:mod:`fp4ref.spec.layouts`): :func:`fp4ref.quantize` emits
        them so and :func:`fp4ref.dequantize` reads them so unless told otherwise.
    sum_lanes : int
        float32 summation order of the optimal search's errors (torch CPU: 16 on AVX-512).
    nvfp4_scale_rule : str or None
        NVFP4 block rule that replaces the recipe: one of the four-over-six rules of
        :mod:`fp4ref.spec.fouroversix` (the ``fouroversix`` package's), whose stored tensor
        scale is the tensor amax; None: the recipe.
    mx_element_scale : {"divide", "bits-reciprocal"}
        How MXFP4 elements are scaled by their byte (see :data:`MX_ELEMENT_SCALES`).
    e8m0_stored_min : int
        MXFP4 under a scale rule: the smallest E8M0 byte written; a rule's smaller byte
        still scales the elements (AMD Quark: 1, ``to_e8m0_uint8`` clamps log2 at -126
        while the elements were divided by 2^-127).
    """

    name: str
    description: str
    rounding: str = "even"
    zero_sign: str = "keep"
    scale_rule: str = "floor"
    e8m0_min: int = 0
    nonfinite: str = "nan-scale"
    e8m0_decode: str = "ocp"
    decode_arithmetic: str = "exact"
    e4m3_decode: str = "ocp"
    nvfp4_recipe: str | None = "modelopt"
    tensor_scale: bool = True
    tensor_scale_direction: str = "decode"
    block_scale_clamp: tuple[float, float] | None = None
    zero_block_scale: float | None = None
    mx_zero_block_scale: int | None = None
    e8m0_zero_divisor: float | None = None
    nibble_order: str = "low-first"
    scale_layout: str = "linear"
    sum_lanes: int = 16
    element_rule: str = "nearest"
    e4m3_encode: str = "ocp"
    nvfp4_scale_rule: str | None = None
    mx_element_scale: str = "divide"
    e8m0_stored_min: int = 0

    def __post_init__(self) -> None:
        _check(self)

    def with_options(self, **options) -> Profile:
        """A copy with the given fields replaced (``None`` values are ignored), validated
        like a new profile."""
        unknown = sorted(set(options) - set(FIELDS))
        if unknown:
            raise ValueError(f"Profile has no field {unknown[0]!r}; the fields are {FIELDS}")
        return replace(self, **{k: v for k, v in options.items() if v is not None})


_PROFILES = (
    Profile("ocp", "OCP MX v1.0 (sections 5, 6.3): floor scale rule, ties to even, NaN/Inf "
            "block -> scale 0xFF; NVFP4 per NVIDIA's documentation: tensor scale "
            "amax/(6*448) as decode multiplier, block scale e4m3(amax_b/(6*s_t)), elements "
            "x/(s_b*s_t) by float32 division, zero block -> scale 0."),
    Profile("mistralrs", "mistral.rs 0.9.5 in-situ MXFP4 (run: the PyPI wheel's Runner with "
            "in_situ_quant='mxfp4' writing UQFF 1.2, read back by fp4ref): "
            "floor(log2f(amax/6))+127 clamped to [0, 254], zero block 127, ties away from "
            "zero, a zero code signed only when the float32 quotient is below zero (-0.0 -> +0, "
            "and a negative element whose quotient underflows to -0 -> +0: zero_sign="
            "'quotient', found by identify's quotient-underflow probe, run); NaN left out of "
            "the block max and coded 7 whatever its sign, a "
            "block max of Inf wraps to scale 0 (nonfinite='mistralrs', docs/findings.md 15); "
            "decode LUT from bits (read from source, no callable decoder): E8M0 0x00 -> 0.0, "
            "0xFF -> +Inf.",
            rounding="away", zero_sign="quotient", scale_rule="mistralrs", e8m0_decode="bits",
            nvfp4_recipe=None, nonfinite="mistralrs"),
    Profile("ggml", "ggml C (llama-cpp-python 0.3.36 sdist, built by .ci/peers/ggml.sh and "
            "run through ctypes on x86-64: ggml_quantize_chunk, i.e. quantize_row_mxfp4_ref / "
            "quantize_row_nvfp4_ref, and the type traits' to_float, types 39 and 40): MXFP4 "
            "scale uint8(floor(log2f(amax)) - 2 + 127) without clamp (wraps below 2^-125), "
            "elements by best_index_mxfp4 (argmin of float32 errors: ties toward zero, zero "
            "codes +0, float32-max elements code 5 because 8 * 2^125 overflows), NaN skipped "
            "in the max and coded 0, an Inf block scale 0x00 (x86 cast of an infinite "
            "exponent) with Inf coded 0, split-half nibbles (17-byte block_mxfp4 records), "
            "0xFF decodes as 2^128 and 0x8 as +0; NVFP4 (type 40, 36-byte records of 64) "
            "ggml_fp32_to_ue4m3(amax_b / 6) without tensor scale (ties away, >= 248 -> 0x7E, "
            "subnormals by (int)(x * 512 + 0.5) capped at 7), a scale-0 block codes 0, decoded "
            "as UE4M3 (docs/findings.md 14).",
            rounding="zero", zero_sign="drop", scale_rule="ggml", e8m0_decode="ggml",
            nibble_order="split-half", nvfp4_recipe="plain", tensor_scale=False,
            e4m3_decode="ggml", nonfinite="ggml", element_rule="ggml", e4m3_encode="ggml"),
    Profile("gguf-py", "gguf-py 0.19 (run: gguf.quants.quantize / dequantize, "
            "GGMLQuantizationType.MXFP4; numpy): the ggml C code's MXFP4 (profile ggml) except "
            "that numpy's max propagates NaN, so a block holding NaN gets scale 0x00 and its "
            "finite elements are coded against 2^-127 (docs/findings.md 14); no NVFP4 "
            "quantizer (its NVFP4 decode is the C code's).",
            rounding="zero", zero_sign="drop", scale_rule="ggml", e8m0_decode="ggml",
            nibble_order="split-half", nvfp4_recipe=None, tensor_scale=False,
            e4m3_decode="ggml", nonfinite="gguf-py", element_rule="ggml", e4m3_encode="ggml"),
    Profile("torchao-floor", "torchao 0.18 on CPU (run: to_mx FLOOR and to_dtype; "
            "nvfp4_quantize with per_tensor_amax_to_scale or the given scale, "
            "NVFP4Tensor.dequantize): MXFP4 exponent bits of amax minus 2, RNE, -0 keeps its "
            "sign; a scale-0x00 block's elements divided by 2^-126 (e8m0_zero_divisor); NaN "
            "block 0xFF with x / Inf codes, Inf block 253 (nonfinite='torchao'); decode "
            "data.to(dt) * scale.to(dt). NVFP4 block scale e4m3(clamp((amax/6)/s_t, 2^-6, "
            "448)), elements x*((1/s_t)/s_b), decode (P * f32(s_t * s_b)).to(dt) "
            "(decode_arithmetic='torchao'); NaN/Inf blocks and tensor scales 0, Inf, NaN as x86 "
            "computes them (docs/findings.md 20). Not emulated: the NaN per-tensor scale "
            "torch.max makes of a tensor holding a NaN.",
            nonfinite="torchao", nvfp4_recipe="torchao", block_scale_clamp=(2.0 ** -6, 448.0),
            e8m0_zero_divisor=2.0 ** -126, decode_arithmetic="by-format"),
    Profile("torchao-rceil", "torchao 0.18 to_mx RCEIL on CPU (run: its fallback "
            "_to_mx_rceil): clamp(ceil(float32 log2(f32(amax/6))), -127, 127) + 127 (scale "
            "rule 'torchao-rceil': one byte below cvt.rp where the log2 rounds onto an "
            "integer), elements times 2^(127 - s) but 1.0 at byte 0 (e8m0_zero_divisor); NaN "
            "block 0xFF with every code 3, Inf block 254 (nonfinite='torchao-rceil'); decode "
            "and NVFP4 as torchao-floor.",
            scale_rule="torchao-rceil", nonfinite="torchao-rceil", nvfp4_recipe="torchao",
            block_scale_clamp=(2.0 ** -6, 448.0), e8m0_zero_divisor=1.0,
            decode_arithmetic="by-format"),
    Profile("modelopt", "NVIDIA ModelOpt 0.47 NVFP4QTensor (run on CPU): s_t = amax/(6*448) "
            "(weight_scale_2, decode), block scale amax_b/(6*s_t) with 0 -> 1.0, clamped to "
            "[2^-9, 448], e4m3 RNE; elements x/(s_b*s_t), RNE, -0.0 -> +0. MXFP4 scale rule "
            "rceil. Decode (NVFP4QTensor.dequantize): P * f32(s_b * s_t), code 0x8 read as +0 "
            "(decode_arithmetic='modelopt'); a negative element whose quotient underflows to "
            "-0 gets 0x0 (zero_sign='quotient'); NaN and Inf through its x86 arithmetic "
            "(nonfinite='modelopt': [NaN, 1.0] -> 0x7F, codes 7; an all-zero tensor -> 0xFF "
            "(0/0), codes 7). ModelOpt's MXFP4 (MXFP4QTensor) rounds and signs zeros "
            "unlike its NVFP4: it is profile modelopt-mxfp4; this profile's MXFP4 is rceil, "
            "ties to even, with MXFP4QTensor's NaN/Inf blocks (0x00, codes 0x8).",
            zero_sign="quotient", scale_rule="rceil", nonfinite="modelopt",
            block_scale_clamp=(2.0 ** -9, 448.0), zero_block_scale=1.0,
            e8m0_decode="inf", decode_arithmetic="modelopt"),
    Profile("modelopt-mxfp4", "NVIDIA ModelOpt 0.47 MXFP4QTensor (run on x86 CPU with torch "
            "2.13: MXFP4QTensor.quantize(x, 32) and .dequantize to float32/bfloat16/float16): "
            "scale ceil(max(float32 torch.log2(f32(amax/6)), -127)) + 127 (the "
            "'torchao-rceil' rule: a quotient a few ulps above 2^k gives k), elements "
            "x / 2^(s-127) coded by cast_fp4: ties toward zero (the count of bounds "
            "strictly below |q|), the sign bit (2 - sign(q)) // 2, so +0, -0, positives "
            "that underflow to 0 and NaN quotients are 0x8 ([0, 6] -> codes 0x8, 0x7; "
            "[1e-3, 6] -> 0x0: zero_sign='not-positive', docs/findings.md); a NaN or Inf "
            "block gets scale 0x00 and codes 0x8 ([NaN, 1] -> 0x00, 0x8 0x8: the uint8 "
            "cast of ceil(log2(NaN)) + 127 on x86, nonfinite='modelopt'); low nibble "
            "first. Decode: sign * value * exp2(s - 127) in float32 (0xFF -> +Inf, code "
            "0x8 -> -0), then the dtype. No NVFP4 (NVFP4QTensor is profile modelopt).",
            rounding="zero", zero_sign="not-positive", scale_rule="torchao-rceil",
            nonfinite="modelopt", nvfp4_recipe=None, e8m0_decode="inf",
            decode_arithmetic="exact"),
    Profile("compressed-tensors", "compressed-tensors 0.20 (llm-compressor) (run): NVFP4 "
            "weight_global_scale G = 6*448/amax (encode), block scale e4m3(G*(amax_b/6)), a "
            "zero byte -> 0.125, elements x/(s_b/G), RNE, -0.0 -> +0, a quotient that "
            "underflows to -0 -> +0 (zero_sign='quotient'); MXFP4 uses the EVEN rule. Decode "
            "(the compressors' decompress: unpack_fp4_from_uint8, dequantize): NVFP4 "
            "P * f32(s_b / G), MXFP4 the scale 2^(e-127) in the output dtype, 0xFF = Inf "
            "(decode_arithmetic='compressed-tensors', e8m0_decode='inf'). Not emulated "
            "(docs/findings.md 23; nonfinite='compressed-tensors'): MXFP4 NaN, Inf and "
            "float32-max blocks get 0x7F with zero codes ([3.4e38, 1.0] -> 0x7F, codes 0); "
            "an Inf makes G = 2688 / Inf = 0 and the Inf block's NVFP4 scale 0 * Inf is "
            "x86's negative NaN, 0xFF.",
            zero_sign="quotient", scale_rule="even", nonfinite="compressed-tensors",
            nvfp4_recipe="compressed-tensors", tensor_scale_direction="encode",
            zero_block_scale=0.125, e8m0_decode="inf", decode_arithmetic="compressed-tensors"),
    Profile("comfy", "comfy-kitchen 0.2.40, ComfyUI's kernels, eager backend (run on x86 "
            "CPU: TensorCoreNVFP4Layout.quantize, quantize_nvfp4 with a given per_tensor_scale, "
            "dequantize_nvfp4 to float32/bfloat16/float16): tensor scale amax/2688 (decode), "
            "block scale e4m3(min(f32(f32(amax_b / 6) / s_t), 448)) (two roundings: [0.359375] "
            "with s_t = f32(1/3) gives 0x23, one division 0x24), elements x / f32(s_t * s_b) "
            "ties to even, signs kept; a block whose f32(s_t * s_b) is 0 gets +0 codes "
            "([2^-10] beside [1000] -> scale 0, codes 0); NaN and Inf through x86 float32 "
            "arithmetic (nonfinite='comfy': an all-zero tensor gives scale 0xFF and codes 0xC, "
            "NaN everywhere, a defect; a NaN element 0x7F and codes 3; a given tensor scale "
            "Inf codes 0xB); high nibble first, scales stored 128x4-swizzled; decode "
            "q * (s_t * s_b) in the output dtype. Not emulated: the layout class computes the "
            "tensor scale in the weight's dtype (bfloat16 weights: a bfloat16 amax / 2688).",
            nvfp4_recipe="comfy", nonfinite="comfy", nibble_order="high-first",
            scale_layout="128x4", decode_arithmetic="output-dtype"),
    Profile("qwantize", "qwantize 0.1.1 reference (run: mxfp4_naive, nvfp4_naive; the "
            "optimal searches as its suites): MXFP4 scale floor(log2f(max(amax, 1e-30))-2+127) "
            "in [1, 254], optimal search over bytes 1..254; NVFP4 without tensor scale, block "
            "scale e4m3(amax/6); elements |x|/s ties toward zero; -0.0 -> +0; float32 errors "
            "summed in torch's AVX-512 order; MXFP4 NaN block 0xFF with codes +-6 for nonzero "
            "elements and 0 for zeros and NaNs, Inf block 254; NVFP4 NaN blocks 0x7F with the "
            "same codes (nonfinite='qwantize', docs/findings.md 4).",
            rounding="zero", zero_sign="negative", scale_rule="qwantize", e8m0_min=1,
            nonfinite="qwantize", nvfp4_recipe="plain", tensor_scale=False),
    Profile("quark", "AMD Quark 0.13 OCP_MXFP4Spec export (run on CPU: PerBlockMXObserver, "
            "calculate_qparams -> even_round, scaled_real_quantize('fp4'), Pack_fp4.pack, "
            "to_e8m0_uint8): the EVEN scale rule with the exponent clamped to [-127, 127] "
            "(amax >= 1.75*2^127 -> 0xFE, 'quark'), ties to even, zero codes +0; a rule byte "
            "0x00 (amax < 1.75*2^-125, zero blocks) divides the elements by 2^-127 but is "
            "stored as 0x01 (e8m0_stored_min=1); NaN block 0x7F with codes 7 (NaN elements "
            "keep their sign), Inf through the rule (0xFE) coded 6 (nonfinite='quark'); import "
            "(Pack_fp4.unpack, kernel.dequantize): 0xFF is 2 ** 128 = +Inf, the scale in the "
            "output dtype. The stored 0x01 and the codes 6 of Inf disagree with Quark's own "
            "fake-quantized values (docs/findings.md). No NVFP4 quantizer adapted.",
            zero_sign="drop", scale_rule="quark", nvfp4_recipe=None, e8m0_decode="inf",
            decode_arithmetic="output-dtype", nonfinite="quark", e8m0_stored_min=1),
    Profile("vllm", "vLLM 0.33.0 torch reference paths (run from its wheel): MXFP4 "
            "downcast_to_mxfp_torch ROUND_UP (the default: ((bits(f32(amax/6)) + 0x7FFFFF) & "
            "0x7F800000) >> 23, 'exponent-up': rceil except a subnormal quotient -> 0x01; "
            "elements x * f32(1/X) with 0 for X = 0 or Inf, ties away by its bit conversion, "
            "signs kept; NaN in a block -> scale 0x00, NaN codes 7|sign, Inf -> 0xFF and "
            "codes 0xF (nonfinite='vllm')), upcast_from_mxfp_torch (scale bytes as float32 "
            "bits); NVFP4 ref_nvfp4_quant (recipe 'vllm': e4m3(clamp(G * (amax * f32(1/6)), "
            "448)), elements x * r(s * r(G)) with r(v) = 1/(v + (v == 0) * 1e8), clamped to 6, "
            "cast_to_fp4 ties to even, sign iff the product is < 0, NaN values written 0xF) "
            "with the global scale its callers pass, G = 2688 / amax as torch computes it "
            "(reciprocal * 2688, no clamps: a zero tensor gives G = Inf and NaN scales 0xFF), "
            "and dequantize_to_dtype (P * f32(s * (1/G))). The NaN byte of a NaN block under "
            "a NaN G depends on its position in torch's loop (docs/findings.md).",
            rounding="away", scale_rule="exponent-up", e8m0_decode="bits", nonfinite="vllm",
            nvfp4_recipe="vllm", tensor_scale_direction="encode",
            decode_arithmetic="scale-first", mx_element_scale="bits-reciprocal"),
    Profile("vllm-round-down", "vLLM 0.33.0 downcast_to_mxfp_torch ROUND_DOWN (run from its "
            "wheel): the exponent field of float32(amax / 6) (the 'exponent' rule: a "
            "subnormal quotient -> 0x00, whose elements are x * 0: +-0 codes), ties away, "
            "NaN/Inf blocks 0xFF (nonfinite='vllm'); decode as vllm.",
            rounding="away", scale_rule="exponent", e8m0_decode="bits", nvfp4_recipe=None,
            decode_arithmetic="scale-first", nonfinite="vllm",
            mx_element_scale="bits-reciprocal"),
    Profile("vllm-triton", "vLLM 0.33.0 Triton MXFP4 quantizer (mxfp4_utils.downcast_to_mxfp, "
            "kernel _downcast_to_mxfp, what mxfp4_quantize runs without XPU or aiter; run in "
            "Triton 3.9's CPU interpreter on float16 input): the EVEN rule clamped to "
            "[-127, 127] (as Quark's even_round: 'quark'), elements x * f32(1/X), ties to "
            "even with a sticky bit, signs kept; NaN skipped in the block max, NaN and Inf "
            "elements code 7 with their sign, an Inf max -> 0xFE (nonfinite='vllm-triton'). "
            "Decode as vllm (upcast_from_mxfp_torch; the Triton upcast kernel not run). The "
            "interpreter's bfloat16 -> float32 emulation flushes subnormals (and not the GPU), "
            "so bfloat16 input was not compared.",
            scale_rule="quark", nonfinite="vllm-triton", e8m0_decode="bits", nvfp4_recipe=None,
            decode_arithmetic="scale-first"),
    Profile("mlx", "MLX 0.32.4 on CPU (run: mx.quantize / mx.dequantize, modes mxfp4 and "
            "nvfp4, mlx[cpu] wheel, x86-64): MXFP4 scale 2^e, e the exact ceil of "
            "log2(f32(amax / 6)) (0 for a zero quotient: a zero block gets 0x7F), stored as "
            "uint8(e + 127), which wraps below 2^-127 ([2^-126] -> 0xFF, [2^-128] -> 0xFD) while "
            "the elements are divided by 2^e; a NaN/Inf block gets 0x80 and zero codes. "
            "Elements: argmin of the float32 distance to the 16-entry table (ties toward zero, "
            "zero codes +0, NaN/Inf/huge quotients code 0). NVFP4: global_scale is the tensor "
            "amax G as given (none computed when none is given): block scale "
            "e4m3(f32(amax_b / 6) * f32(2688 / G)) (1 without G; NaN saturates to 0x7E), "
            "elements f32(f32(x / s_b) * f32(2688 / G)), so a block whose scale underflows "
            "to 0 or saturates far (float32 max) codes 0. Decode: E8M0 0x00 is 2^-127, 0xFF "
            "+Inf, the scale in the output dtype (float16: 0 below 2^-24); NVFP4 "
            "e2m1 * f32(e4m3 * f32(G / 2688)), in float32 whatever dtype= asks when G is "
            "given (docs/findings.md 10-11). Not emulated: on x86 the NaN of 0 * Inf (a zero "
            "block with G = 0) is negative and MLX writes 0xFE, fp4ref 0x7E. MLX's Metal "
            "kernels may differ: this is the CPU device.",
            scale_rule="mlx", rounding="zero", zero_sign="drop", nonfinite="mlx",
            nvfp4_recipe="mlx", tensor_scale_direction="amax", e8m0_decode="inf",
            decode_arithmetic="by-format", element_rule="argmin"),
    Profile("flashinfer", "UNVERIFIED: flashinfer / TensorRT-LLM fp4_quantize in "
            "exact-division mode, read from source, never run (flashinfer-python's "
            "fp4_quantize is a CUDA kernel; no CPU path to run here): MXFP4 rceil; NVFP4 "
            "global_scale = 6*448/amax (encode), block scale e4m3(G*amax_b/6), elements "
            "x/(s_b/G), zero block 0; 128x4 swizzled scales.",
            scale_rule="rceil", nonfinite="ieee", nvfp4_recipe="compressed-tensors",
            tensor_scale_direction="encode", scale_layout="128x4"),
)

_PROFILES += (
    Profile("fouroversix", "fouroversix 1.0.5 (pip, SKIP_CUDA_BUILD=1), its pytorch backend run "
            "on CPU (quantize_to_fp4 with QuantizationConfig(backend=pytorch), default "
            "ScaleRule.mse; dequantize): NVFP4 four-over-six, each block quantized with its "
            "max scaled to 6 and to 4 (block scale e4m3((amax_b/6)*(1536/A)), times 1.5 for "
            "4), elements x*(1/((1/enc)*s_b)) rounded half-even without a clamp, the variant "
            "of lower float32 squared error kept (ties: 6); the stored tensor scale is the "
            "amax A (tensor_scale_direction 'amax'; a NaN tensor's A is x86 torch.max's "
            "0xFFFFFFFF, the package's on one thread or up to 32768 padded elements; more "
            "threads give 0x7FC00000 and scale bytes 0x7F there); low nibble first, scales "
            "128x4 in the package (linear here). Decode (decode_arithmetic 'fouroversix'): "
            "dt(f32(f32(P*s_b)*A)/1536), without an amax dt(P*s_b); its NaNs are torch's "
            "(E4M3 NaN -> 0x7FF00000 with its sign, bfloat16 0xFFFF), fp4ref's the canonical "
            "NaN. Quirk (docs/findings.md): a quotient in [7, 9) under a subnormal block "
            "scale becomes 8, packed as code 0x8; a quotient past 15 (a given amax far below "
            "the data's) spills into the byte. No MXFP4 (the package's MXFP4 is not "
            "adapted).",
            zero_sign="negative", nonfinite="ieee", nvfp4_recipe="plain",
            decode_arithmetic="fouroversix", tensor_scale_direction="amax",
            nvfp4_scale_rule="fouroversix"),
)

PROFILES: dict[str, Profile] = {p.name: p for p in _PROFILES}

#: The names of a profile's fields that keyword options may override.
FIELDS = tuple(f.name for f in fields(Profile) if f.name not in ("name", "description"))


def get(profile: str | Profile) -> Profile:
    """The profile called ``profile`` (a :class:`Profile` is returned as is)."""
    if isinstance(profile, Profile):
        return profile
    if not isinstance(profile, str) or profile not in PROFILES:
        raise ValueError(f"profile must be one of {tuple(PROFILES)}; got {profile!r}")
    return PROFILES[profile]


def profiles() -> dict[str, Profile]:
    """Every named profile, by name."""
    return dict(PROFILES)


#: The profiles whose implementation was not run beside them (their conventions are read
#: from source), with the reason; every other profile's description names the
#: implementation, version and functions it was compared with by running them.
NOT_RUN: dict[str, str] = {
    "flashinfer": "flashinfer-python's fp4_quantize runs only as a CUDA kernel (JIT-built "
                  "for the GPU); no CPU reference to run; conventions read from source",
}


def verified(profile: str | Profile) -> bool:
    """Whether ``profile`` was checked by running its implementation (False for the
    profiles of :data:`NOT_RUN`, and for an unnamed :class:`Profile`)."""
    name = profile.name if isinstance(profile, Profile) else get(profile).name
    return name in PROFILES and name not in NOT_RUN
