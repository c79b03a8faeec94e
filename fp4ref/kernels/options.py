"""The one translation from named conventions to the fast layer's integers and options.

Every kernel integer is the position of a name in the spec's (or the profile's) tuple of
choices, derived here and nowhere else: :data:`CHOICES` maps each convention to its tuple,
:func:`code` turns a name into its integer, and the module constants (``TIE_EVEN``,
``RULE_FLOOR``, ...) are those integers, compile-time constants of the numba kernels.

A quantization is described by one record: :class:`QuantizeOptions` (a profile with the
call's overrides applied, the resolved scale rule and the NVFP4 tensor operand), which
every backend takes; :attr:`QuantizeOptions.kernel` is its :class:`KernelOptions`, the
same conventions as integers and floats, one field per convention under the profile's
field name, the argument every CPU quantization kernel takes (the CUDA launchers read the
same fields).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from ..profiles import (
    DECODE_ARITHMETIC,
    E4M3_DECODES,
    E4M3_ENCODES,
    E8M0_DECODES,
    ELEMENT_RULES,
    MX_ELEMENT_SCALES,
    NONFINITE,
    Profile,
)
from ..spec import e2m1 as _e2m1
from ..spec import e4m3 as _e4m3
from ..spec.elements import ZERO_SIGNS
from ..spec.fouroversix import RULES as FOUROVERSIX_RULES
from ..spec.layouts import LAYOUTS
from ..spec.nibbles import NIBBLE_ORDERS
from ..spec.rounding import BINARY_FORMATS, TIE_RULES
from ..spec.scale_rules import MX_RULES, NV_RECIPES, SEARCH_RULES

#: Output encodings of the decoders (float32 first, as the spec's binary formats).
OUTPUT_DTYPES = tuple(BINARY_FORMATS)

#: The scale formats of the block tables (MXFP4, NVFP4).
SCALE_FORMATS = ("e8m0", "e4m3")

#: The scalar formats of the decode tables.
SCALAR_FORMATS = ("e2m1", "e8m0", "e4m3")

#: Each convention's choices, by the name the profile (or the API) gives it; a choice's
#: kernel integer is its position.
CHOICES: dict[str, tuple[str, ...]] = {
    "rounding": TIE_RULES,
    "zero_sign": ZERO_SIGNS,
    "nibble_order": NIBBLE_ORDERS,
    "scale_rule": MX_RULES,
    "nvfp4_recipe": NV_RECIPES,
    "nonfinite": NONFINITE,
    "e8m0_decode": E8M0_DECODES,
    "decode_arithmetic": DECODE_ARITHMETIC,
    "e4m3_decode": E4M3_DECODES,
    "element_rule": ELEMENT_RULES,
    "e4m3_encode": E4M3_ENCODES,
    "scale_layout": LAYOUTS,
    "nvfp4_scale_rule": FOUROVERSIX_RULES,
    "dtype": OUTPUT_DTYPES,
    "scale_format": SCALE_FORMATS,
    "scalar_format": SCALAR_FORMATS,
    "e2m1_nan": _e2m1.NAN_CODES,
    "e4m3_nan": _e4m3.NAN_CODES,
    "mx_element_scale": MX_ELEMENT_SCALES,
}


def code(convention: str, name: str) -> int:
    """The kernel integer of choice ``name`` of ``convention`` (a key of :data:`CHOICES`)."""
    return CHOICES[convention].index(name)


TIE_EVEN, TIE_AWAY, TIE_ZERO = (code("rounding", n) for n in ("even", "away", "zero"))
ZERO_KEEP, ZERO_NEGATIVE, ZERO_DROP = (code("zero_sign", n) for n in ("keep", "negative", "drop"))
ZERO_QUOTIENT = code("zero_sign", "quotient")
ZERO_NOT_POSITIVE = code("zero_sign", "not-positive")
LOW_FIRST, HIGH_FIRST, SPLIT_HALF = (
    code("nibble_order", n) for n in ("low-first", "high-first", "split-half"))
(RULE_FLOOR, RULE_RCEIL, RULE_CEIL, RULE_EVEN, RULE_NEAREST, RULE_MISTRALRS, RULE_QWANTIZE,
 RULE_GGML, RULE_EXPONENT) = (code("scale_rule", n) for n in (
     "floor", "rceil", "ceil", "even", "nearest", "mistralrs", "qwantize", "ggml", "exponent"))
RULE_MLX = code("scale_rule", "mlx")
RECIPE_MLX = code("nvfp4_recipe", "mlx")
NONFINITE_MLX = code("nonfinite", "mlx")
ELEMENT_ARGMIN = code("element_rule", "argmin")
#: The kernels' tie integer under ``element_rule="argmin"`` (which reads no tie rule): one
#: past the tie rules, so :attr:`KernelOptions.rounding` carries the element rule too and
#: every element encoder (:func:`.elements.magnitude_code`) sees it; its row of
#: :data:`.elements.THRESHOLDS` is the ``"zero"`` row (the same codes for finite q < 2^24).
TIE_ARGMIN = len(TIE_RULES)
RULE_TORCHAO_RCEIL = code("scale_rule", "torchao-rceil")
RECIPE_PLAIN, RECIPE_MODELOPT, RECIPE_TORCHAO, RECIPE_CT = (
    code("nvfp4_recipe", n) for n in ("plain", "modelopt", "torchao", "compressed-tensors"))
NONFINITE_NAN_SCALE, NONFINITE_IEEE = (code("nonfinite", n) for n in ("nan-scale", "ieee"))
NONFINITE_GFLOAT = code("nonfinite", "gfloat")
RECIPE_COMFY = code("nvfp4_recipe", "comfy")
DECODE_CT, DECODE_MODELOPT = (code("decode_arithmetic", n)
                              for n in ("compressed-tensors", "modelopt"))
NONFINITE_COMFY = code("nonfinite", "comfy")
NONFINITE_TORCHAO, NONFINITE_TORCHAO_RCEIL, NONFINITE_QWANTIZE, NONFINITE_MISTRALRS = (
    code("nonfinite", n) for n in ("torchao", "torchao-rceil", "qwantize", "mistralrs"))
NONFINITE_IEEE_X86 = code("nonfinite", "ieee-x86")
NONFINITE_CT = code("nonfinite", "compressed-tensors")
NONFINITE_MODELOPT = code("nonfinite", "modelopt")
E8M0_OCP, E8M0_BITS, E8M0_GGML, E8M0_INF = (
    code("e8m0_decode", n) for n in ("ocp", "bits", "ggml", "inf"))
E4M3_OCP, E4M3_GGML = (code("e4m3_decode", n) for n in ("ocp", "ggml"))
NONFINITE_GGML, NONFINITE_GGUF_PY = (code("nonfinite", n) for n in ("ggml", "gguf-py"))
ELEMENT_NEAREST, ELEMENT_GGML = (code("element_rule", n) for n in ("nearest", "ggml"))
ENCODE_E4M3_OCP, ENCODE_E4M3_GGML = (code("e4m3_encode", n) for n in ("ocp", "ggml"))
DECODE_EXACT, DECODE_SCALE_FIRST, DECODE_OUTPUT_DTYPE = (
    code("decode_arithmetic", n) for n in ("exact", "scale-first", "output-dtype"))
DECODE_FOUROVERSIX = code("decode_arithmetic", "fouroversix")

#: The decode arithmetic a profile's choice means for each format (a choice named after an
#: implementation that decodes the two formats differently); others mean themselves.
_DECODE_BY_FORMAT = {"by-format": {"mxfp4": "output-dtype", "nvfp4": "scale-first"}}
_DECODE_BY_FORMAT["fouroversix"] = {"mxfp4": "exact"}  # its MXFP4 is not adapted


def decode_arithmetic(name: str, format: str) -> str:
    """The :data:`fp4ref.profiles.DECODE_ARITHMETIC` choice the kernels run for a profile's
    ``decode_arithmetic`` ``name`` on ``format`` (``"by-format"``: ``"output-dtype"`` for
    MXFP4, ``"scale-first"`` for NVFP4)."""
    return _DECODE_BY_FORMAT.get(name, {}).get(format, name)


LAYOUT_LINEAR, LAYOUT_128X4, LAYOUT_8X4 = (
    code("scale_layout", n) for n in ("linear", "128x4", "8x4"))
OUT_FLOAT32, OUT_BFLOAT16, OUT_FLOAT16 = (
    code("dtype", n) for n in ("float32", "bfloat16", "float16"))
SCALE_E8M0, SCALE_E4M3 = (code("scale_format", n) for n in ("e8m0", "e4m3"))
NAN_SIGN, NAN_ML_DTYPES, NAN_TORCHAO, NAN_COMPRESSED_TENSORS, NAN_REFUSE = (
    code("e2m1_nan", n) for n in ("sign", "ml_dtypes", "torchao", "compressed-tensors", "refuse"))
E4M3_NAN_SIGN, E4M3_NAN_GFLOAT = (code("e4m3_nan", n) for n in ("sign", "gfloat"))
RULE_QUARK, RULE_EXPONENT_UP = (code("scale_rule", n) for n in ("quark", "exponent-up"))
RECIPE_VLLM = code("nvfp4_recipe", "vllm")
NONFINITE_QUARK, NONFINITE_VLLM, NONFINITE_VLLM_TRITON = (
    code("nonfinite", n) for n in ("quark", "vllm", "vllm-triton"))
MX_DIVIDE, MX_BITS_RECIPROCAL = (
    code("mx_element_scale", n) for n in ("divide", "bits-reciprocal"))


class KernelOptions(NamedTuple):
    """A quantization's conventions as the kernels read them (fields in this order).

    Attributes
    ----------
    scale_rule : int
        MXFP4 rule (:data:`RULE_FLOOR`, ...): the rule kernels' rule, the search's start.
    optimal : bool
        Search the scale (``"optimal"``, ``"optimal-hessian"``).
    e8m0_min : int
        Smallest E8M0 byte the MXFP4 search may pick.
    rounding, zero_sign, nibble_order : int
        Element tie rule (:data:`TIE_ARGMIN` under ``element_rule="argmin"``), sign of a
        zero code, nibble order.
    sum_lanes : int
        float32 summation lanes of the search's errors.
    nvfp4_recipe : int
        NVFP4 recipe (:data:`RECIPE_PLAIN` for a profile without one: MXFP4 only).
    tensor_operand : float
        NVFP4: the recipe's tensor operand (:func:`fp4ref.quantize` computes it).
    nonfinite : int
        :data:`NONFINITE_NAN_SCALE`, :data:`NONFINITE_IEEE`, :data:`NONFINITE_MLX`, or an
        implementation's MXFP4 NaN/Inf coding (:data:`NONFINITE_TORCHAO`, ...; NVFP4 reads
        them as ``"ieee"``, :data:`NONFINITE_QWANTIZE` with its NaN-block codes).
    clamp_low, clamp_high : float
        NVFP4 block-scale clamp; a profile without one clamps to [-Inf, Inf], which leaves
        every non-NaN value as it is.
    zero_block : bool
        Whether a zero NVFP4 block gets ``zero_block_scale``.
    zero_block_scale : float
        That scale (0.0 when ``zero_block`` is False: not read).
    mx_zero_block : bool
        Whether a zero MXFP4 block gets ``mx_zero_block_scale`` under a scale rule.
    mx_zero_block_scale : int
        That E8M0 byte (0 when ``mx_zero_block`` is False: not read).
    e8m0_zero_divisor : float
        MXFP4: the divisor of a scale-0x00 block's elements, 0.0 for the byte's own 2^-127
        (``Profile.e8m0_zero_divisor`` None).
    fouroversix : int
        NVFP4: the four-over-six rule (:data:`FOUROVERSIX_RULES` position), -1 for none;
        ``tensor_operand`` is then the tensor amax.
    vector_code : bool
        Not a convention: whether the CPU kernels may take their LLVM vector paths (the
        switch of :mod:`.cpu.simd`, read when the record is built).
    mx_element_scale : int
        :data:`MX_DIVIDE` or :data:`MX_BITS_RECIPROCAL` (``Profile.mx_element_scale``).
    e8m0_stored_min : int
        MXFP4: the smallest scale byte stored (``Profile.e8m0_stored_min``).
    mx_quirks : bool
        Not a convention: whether an MXFP4 rule quantization needs the quirk kernels
        (:func:`.quantize_block.mx_quirk_block`): nonfinite ``"quark"``/``"vllm"``,
        ``mx_element_scale`` or ``e8m0_stored_min`` off their defaults.
    element_rule : int
        :data:`ELEMENT_NEAREST` or :data:`ELEMENT_GGML` (ggml's argmin of float32 errors).
    e4m3_encode : int
        NVFP4 block-scale encode: :data:`ENCODE_E4M3_OCP` or :data:`ENCODE_E4M3_GGML`.
    """

    scale_rule: int
    optimal: bool
    e8m0_min: int
    rounding: int
    zero_sign: int
    nibble_order: int
    sum_lanes: int
    nvfp4_recipe: int
    tensor_operand: float
    nonfinite: int
    clamp_low: float
    clamp_high: float
    zero_block: bool
    zero_block_scale: float
    mx_zero_block: bool
    mx_zero_block_scale: int
    e8m0_zero_divisor: float
    vector_code: bool
    mx_element_scale: int
    e8m0_stored_min: int
    mx_quirks: bool
    element_rule: int = 0
    e4m3_encode: int = 0
    fouroversix: int = -1


@dataclass(frozen=True)
class QuantizeOptions:
    """Everything a backend needs to quantize, resolved from a profile and a call.

    Attributes
    ----------
    format : {"mxfp4", "nvfp4"}
    scale_rule : str
        The resolved rule: MXFP4 one of :data:`fp4ref.spec.scale_rules.MX_RULES` or
        ``"optimal"``/``"optimal-hessian"``; NVFP4 the recipe or a search rule.
    profile : Profile
        The profile with the call's overrides applied (already validated).
    tensor_operand : float
        NVFP4: the recipe's tensor operand; 1.0 for MXFP4.
    """

    format: str
    scale_rule: str
    profile: Profile
    tensor_operand: float = 1.0

    @property
    def block_size(self) -> int:
        return 32 if self.format == "mxfp4" else 16

    @property
    def optimal(self) -> bool:
        """Whether the scale is searched (:mod:`fp4ref.spec.optimal`)."""
        return self.scale_rule in SEARCH_RULES

    @property
    def start_rule(self) -> str:
        """MXFP4: the rule the search starts from (the profile's, or floor if it names a
        search), or the rule itself."""
        if self.format == "mxfp4" and not self.optimal:
            return self.scale_rule
        rule = self.profile.scale_rule
        if rule == "mlx":  # a search starts from MLX's rule unwrapped: rceil
            return "rceil"
        return rule if rule in MX_RULES else "floor"

    @property
    def mx_rule_block(self) -> bool:
        """MXFP4 under a rule with a convention only the scalar block function
        :func:`..quantize_block.mx_rule_block` implements (torchao's, qwantize's or
        mistral.rs's NaN/Inf coding, a scale-0x00 divisor): the vector code and the warp
        kernels step aside."""
        p = self.profile
        return (self.format == "mxfp4" and not self.optimal
                and (p.nonfinite in ("torchao", "torchao-rceil", "qwantize", "mistralrs")
                     or p.e8m0_zero_divisor is not None))

    @cached_property
    def kernel(self) -> KernelOptions:
        """These options as the kernels read them."""
        from .cpu.simd import vector_code

        p = self.profile
        low, high = p.block_scale_clamp or (-math.inf, math.inf)
        return KernelOptions(
            scale_rule=code("scale_rule", self.start_rule),
            optimal=self.optimal,
            e8m0_min=int(p.e8m0_min),
            rounding=(TIE_ARGMIN if p.element_rule == "argmin" else code("rounding", p.rounding)),
            zero_sign=code("zero_sign", p.zero_sign),
            nibble_order=code("nibble_order", p.nibble_order),
            sum_lanes=int(p.sum_lanes),
            nvfp4_recipe=code("nvfp4_recipe", p.nvfp4_recipe or "plain"),
            tensor_operand=float(self.tensor_operand),
            nonfinite=code("nonfinite", p.nonfinite),
            clamp_low=float(low),
            clamp_high=float(high),
            zero_block=p.zero_block_scale is not None,
            zero_block_scale=float(p.zero_block_scale or 0.0),
            mx_zero_block=p.mx_zero_block_scale is not None,
            mx_zero_block_scale=int(p.mx_zero_block_scale or 0),
            e8m0_zero_divisor=float(p.e8m0_zero_divisor or 0.0),
            vector_code=vector_code(),
            element_rule=code("element_rule", p.element_rule),
            e4m3_encode=code("e4m3_encode", p.e4m3_encode),
            fouroversix=(code("nvfp4_scale_rule", self.scale_rule)
                         if self.scale_rule in FOUROVERSIX_RULES else -1),
            mx_element_scale=code("mx_element_scale", p.mx_element_scale),
            e8m0_stored_min=int(p.e8m0_stored_min),
            mx_quirks=(p.nonfinite in ("quark", "vllm", "vllm-triton")
                       or p.mx_element_scale != "divide"
                       or p.e8m0_stored_min != 0),
        )

    @property
    def ggml(self) -> bool:
        """Whether a ggml convention (element rule, non-finite policy or E4M3 encode) is
        chosen, and no search: those run in the ggml kernels
        (:func:`fp4ref.kernels.ggml.ggml_block`; the searches ignore the three, as the
        oracle's do)."""
        p = self.profile
        return not self.optimal and (
            p.element_rule == "ggml" or p.nonfinite in ("ggml", "gguf-py")
            or (self.format == "nvfp4" and p.e4m3_encode == "ggml"))


def nvfp4_recipe_options(recipe: str, tensor_operand: float,
                         block_scale_clamp: tuple[float, float] | None = None,
                         zero_block_scale: float | None = None) -> KernelOptions:
    """The :class:`KernelOptions` of NVFP4 recipe ``recipe`` with the given tensor operand,
    clamp and zero-block scale (the other conventions OCP's), for driving the scalar
    block-scale functions directly."""
    profile = Profile("recipe", "an NVFP4 recipe's options", nvfp4_recipe=recipe,
                      block_scale_clamp=block_scale_clamp, zero_block_scale=zero_block_scale)
    return QuantizeOptions("nvfp4", recipe, profile, tensor_operand).kernel
