"""The sweeps over float32 inputs: what each covers, its oracle, and the kernel it runs.

A :class:`Sweep` is a function of a float32 bit pattern over a range of patterns: the
element encoders over all 2^32, the scale rules over every non-negative block maximum. Its
oracle is the plain-Python spec layer (:mod:`fp4ref.spec`) evaluated at one pattern; its
kernel runs a whole array of patterns on a backend. :mod:`.steps` turns the oracle into a
table of runs, and the kernel's answer at every pattern is compared with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..profiles import profiles
from ..spec import e2m1, e4m3, elements, mx, nvfp4, rounding, scale_rules

#: Patterns of every float32: the element encoders' domain.
ALL = 1 << 32
#: One past the largest finite non-negative float32 (0x7F7FFFFF): the MXFP4 rules' domain.
FINITE = 0x7F800000
#: One past +Inf: the NVFP4 recipes' domain (an "ieee" profile sends Inf blocks through).
WITH_INF = 0x7F800001


def value(u: int) -> float:
    """The float32 with bit pattern ``u``, as a Python float (exact)."""
    return float(np.uint32(u).view(np.float32))


@dataclass(frozen=True)
class Sweep:
    """One exhaustive sweep.

    Attributes
    ----------
    name : str
        Its row in the summary table.
    family : str
        ``"e2m1"``, ``"element"``, ``"e4m3"``, ``"mx-scale"`` or ``"nv-scale"``.
    lo, hi : int
        The patterns ``lo .. hi - 1`` it covers.
    oracle : callable
        Pattern to answer, from :mod:`fp4ref.spec`.
    kernel : callable
        ``kernel(module, bits)``: the answers of the backend module (:mod:`.cpu` or
        :mod:`.cuda`) for an ascending uint32 array of patterns (host or device).
    block : int
        For the quantizer sweeps: pattern u sits in block u // ``block`` with the other
        patterns of that block (:data:`QUANTIZE_BLOCKS`).
    """

    name: str
    family: str
    lo: int
    hi: int
    oracle: Callable[[int], int] = field(repr=False)
    kernel: Callable = field(repr=False)
    block: int = 1  #: patterns per quantization block (1: a pattern stands alone)

    @property
    def size(self) -> int:
        return self.hi - self.lo


def _e2m1(tie: str) -> Sweep:
    return Sweep(f"e2m1 encode, ties {tie}", "e2m1", 0, ALL,
                 lambda u: e2m1.encode(value(u), tie),
                 lambda m, bits: m.encode_e2m1(bits, tie))


def _element(tie: str, zero: str) -> Sweep:
    def oracle(u: int) -> int:
        x = value(u)  # the quantizers' y = float32(|x| / d) at d = 1 (spec.scale_rules)
        return elements.element_code(x, scale_rules.quotient(x, 1.0, False), tie, zero)

    return Sweep(f"element code, ties {tie}, zero {zero}", "element", 0, ALL, oracle,
                 lambda m, bits: m.element_code(bits, tie, zero))


def _e4m3(tie: str, saturate: bool) -> Sweep:
    mode = "saturate" if saturate else "overflow to NaN"
    return Sweep(f"e4m3 encode, ties {tie}, {mode}", "e4m3", 0, ALL,
                 lambda u: e4m3.encode(value(u), tie, saturate),
                 lambda m, bits: m.encode_e4m3(bits, tie, saturate))


def _mx(rule: str) -> Sweep:
    return Sweep(f"mxfp4 scale {rule}", "mx-scale", 0, FINITE,
                 lambda u: scale_rules.mx_scale(value(u), rule),
                 lambda m, bits: m.mx_scale(bits, rule))


@dataclass(frozen=True)
class Recipe:
    """An NVFP4 block-scale recipe with the clamp and zero scale of the profiles using it."""

    recipe: str
    clamp: tuple[float, float] | None
    zero_scale: float | None
    profiles: tuple[str, ...]


def recipes() -> list[Recipe]:
    """Every distinct (recipe, clamp, zero scale) of the NVFP4 profiles, first seen first."""
    seen: dict[tuple, list[str]] = {}
    for name, prof in profiles().items():
        if prof.nvfp4_recipe not in (None, "vllm"):  # "vllm" is a block function of its
            # own (no block-scale function to sweep): tests/test_quark_vllm.py, the peers
            key = (prof.nvfp4_recipe, prof.block_scale_clamp, prof.zero_block_scale)
            seen.setdefault(key, []).append(name)
    return [Recipe(*key, tuple(names)) for key, names in seen.items()]


def tensor_operands(recipe: Recipe) -> list[tuple[str, float]]:
    """(label, the recipe's float32 tensor operand) to sweep ``recipe`` at: a stored tensor
    scale of 1, the one a tensor of amax 1 gets, and the smallest and largest that the
    recipe's first profile produces for any tensor (every float32 amax whose stored scale
    is finite; the extremes of a monotone function of amax, at the ends of its range or
    next to where it stops being finite)."""
    from ..quantize import _tensor_scales

    prof = profiles()[recipe.profiles[0]]
    if not prof.tensor_scale:
        return [("1", 1.0)]

    def stored(amax: float) -> float:
        if prof.tensor_scale_direction == "amax":  # MLX: the stored scale is the amax
            return amax
        return float(_tensor_scales(prof, None, amax=lambda: amax)[2])

    def operand(scale: float) -> float:
        with np.errstate(over="ignore", divide="ignore"):
            return float(_tensor_scales(prof, scale, amax=None)[0])

    with np.errstate(over="ignore", divide="ignore"):
        finite = [s for s in map(stored, map(value, _amax_grid())) if math.isfinite(s)]
    picks = [("1", 1.0), ("amax 1", stored(1.0)), ("smallest", min(finite)),
             ("largest", max(finite))]
    out, seen = [], set()
    for label, scale in picks:
        if scale not in seen:
            seen.add(scale)
            out.append((f"{label} = {scale:.8g}", operand(scale)))
    if prof.tensor_scale_direction == "amax":  # MLX without a global_scale: E = 1
        out.insert(0, ("none", 1.0))
    return out


def _amax_grid() -> list[int]:
    """Both ends of every binade of the positive finite float32 patterns."""
    grid = {1, FINITE - 1}
    for start in range(1 << 23, FINITE, 1 << 23):
        grid.update((start - 1, start))
    return sorted(grid)


def _nv(recipe: Recipe, label: str, tensor: float) -> Sweep:
    def oracle(u: int) -> int:
        return scale_rules.nvfp4_block_scale(value(u), recipe.recipe, tensor, recipe.clamp,
                                             recipe.zero_scale)

    name = f"nvfp4 scale {recipe.recipe} as {recipe.profiles[0]}, tensor {label}"
    return Sweep(name, "nv-scale", 0, WITH_INF, oracle,
                 lambda m, bits: m.nv_scale(bits, recipe.recipe, tensor, recipe.clamp,
                                            recipe.zero_scale))


#: The quantizer sweeps, per format: (patterns per block, pin). Block b holds the patterns
#: per * b .. per * b + per - 1 (+0.0 past 2^32 - 1) and the pin last. A pattern below the
#: pin in magnitude is then encoded at the pin's scale (MXFP4: amax 7.9999995, which the
#: OCP floor rule gives scale 2^0; NVFP4: amax 6, block scale 1.0 at tensor scale 1, so
#: divisor 1 in every recipe); a larger one at the scale of its own block's amax; a NaN or
#: Inf puts its block under the NaN scale (where the profile says so).
QUANTIZE_BLOCKS = {"mxfp4": (31, 0x40FFFFFF), "nvfp4": (15, 0x40C00000)}


def _heaviest(u: int, per: int, pin: int, skip_nan: bool = False) -> int:
    """The pattern of largest magnitude in ``u``'s quantizer block, pin included (NaN >
    Inf > finite, as magnitude bits order them): beside ``u`` it gives the block's amax
    and its NaN/Inf status, so the block's scale and ``u``'s code. With ``skip_nan`` (a
    policy whose block max leaves NaN out: ``nonfinite`` ``"ggml"``, ``"gguf-py"``,
    ``"vllm-triton"``) NaN patterns are passed over."""
    first = u - u % per
    candidates = [v for v in range(first, min(first + per, ALL))
                  if not skip_nan or v & 0x7FFFFFFF <= 0x7F800000]
    top = max(candidates, key=lambda v: v & 0x7FFFFFFF, default=pin)
    return top if top & 0x7FFFFFFF > pin else pin


def quantize_profile(fmt: str, name: str):
    """Profile ``name`` as the quantizer sweeps run it: low-first nibbles and linear scales
    (the sweep unpacks the codes itself), the tensor scale given as 1."""
    return profiles()[name].with_options(nibble_order="low-first", scale_layout="linear")


def quantize_profiles(fmt: str) -> list[str]:
    """The profiles whose ``fmt`` quantizers differ (first of each kind): MXFP4 by scale
    rule, tie rule and zero sign; NVFP4 also by recipe, clamp, tensor scale and Inf policy."""
    seen, names = set(), []
    for name, p in profiles().items():
        if fmt == "mxfp4":
            key = (p.scale_rule, p.rounding, p.zero_sign, p.element_rule, p.nonfinite,
                   p.mx_element_scale, p.e8m0_stored_min, p.e8m0_zero_divisor)
        elif p.nvfp4_recipe in (None, "vllm") or p.nvfp4_scale_rule is not None:
            continue  # "vllm": see recipes(); four-over-six: tests/test_fouroversix.py
        elif p.element_rule == "argmin":  # MLX's codes of saturated blocks alternate with
            continue  # the float32 rounding of huge quotients (2^25..2^27): no runs to sweep
        elif p.nonfinite == "comfy":  # comfy codes a NaN quotient by its payload's bit 21
            continue  # (3 or 4): not monotone over the NaN patterns, no runs to sweep
        else:
            key = (p.nvfp4_recipe, p.block_scale_clamp, p.tensor_scale, p.rounding,
                   p.zero_sign, p.nonfinite, p.element_rule, p.e4m3_encode)
        if key not in seen:
            seen.add(key)
            names.append(name)
    return names



def _quantize(fmt: str, name: str) -> Sweep:
    per, pin = QUANTIZE_BLOCKS[fmt]
    p = profiles()[name]

    def oracle(u: int) -> int:
        skip_nan = p.nonfinite in ("ggml", "gguf-py", "vllm-triton")  # NaN out of the max
        block = [value(u), value(_heaviest(u, per, pin, skip_nan))]  # same amax and NaN/Inf
        if p.nonfinite in ("ggml", "gguf-py") and _heaviest(u, per, pin) & 0x7FFFFFFF > 0x7F800000:
            block.append(math.nan)  # and a NaN if the block holds one (gguf-py reads it)
        if fmt == "mxfp4":
            scale, codes = mx.quantize_block(
                block, p.scale_rule, p.rounding, p.zero_sign, zero_byte=p.mx_zero_block_scale,
                nonfinite=p.nonfinite, element_rule=p.element_rule,
                element_scale=p.mx_element_scale, stored_min=p.e8m0_stored_min,
                zero_divisor=p.e8m0_zero_divisor)
        else:  # a tensor scale of 1 is its own reciprocal: the operand of every recipe
            scale, codes = nvfp4.quantize_block(
                block, p.nvfp4_recipe, 1.0, p.block_scale_clamp, p.zero_block_scale,
                rounding=p.rounding, zero_sign=p.zero_sign,
                nan_scale_for_inf=p.nonfinite == "nan-scale", nonfinite=p.nonfinite,
                element_rule=p.element_rule, e4m3_encode=p.e4m3_encode)
        return scale << 8 | codes[0]

    what = p.scale_rule if fmt == "mxfp4" else p.nvfp4_recipe
    return Sweep(f"{fmt} quantize as {name} ({what}, ties {p.rounding}, zero {p.zero_sign})",
                 "quantize", 0, ALL, oracle,
                 lambda m, bits: m.quantize_blocks(bits, fmt, name), per)


FAMILIES = ("e2m1", "element", "e4m3", "mx-scale", "nv-scale", "quantize")


def all_sweeps(families: tuple[str, ...] = FAMILIES) -> list[Sweep]:
    """The sweeps of ``families``, in table order."""
    ties = rounding.TIE_RULES
    out: list[Sweep] = []
    if "e2m1" in families:
        out += [_e2m1(t) for t in ties]
    if "element" in families:
        out += [_element(t, z) for t in ties for z in elements.ZERO_SIGNS]
    if "e4m3" in families:
        out += [_e4m3(t, s) for s in (True, False) for t in ties]
    if "mx-scale" in families:
        out += [_mx(r) for r in scale_rules.MX_RULES]
    if "nv-scale" in families:
        out += [_nv(r, label, t) for r in recipes() for label, t in tensor_operands(r)]
    if "quantize" in families:
        out += [_quantize(f, name) for f in QUANTIZE_BLOCKS for name in quantize_profiles(f)]
    return out
