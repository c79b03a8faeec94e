"""GPU quantization kernels: ``numba.cuda.jit`` twins of :mod:`fp4ref.kernels.cpu.quantize`.

Two shapes of kernel, both built from the njit functions of :mod:`..quantize_block` and
:mod:`..scale_rules`, compiled as device functions, so the bytes are the CPU's:

* The scale rules and NVFP4 recipes (memory-bound) spread a block over the lanes of a warp,
  four elements a lane (8 lanes an MXFP4 block, 4 an NVFP4 one), and give a warp 32 blocks
  a step. A lane issues its B/4 16-byte loads (:func:`.wide.load4`) before using the first;
  each load instruction of the warp reads 512 consecutive bytes. The block's largest
  magnitude is the integer max of the sign-cleared bits (above 0x7F800000 for a NaN, equal
  to it for an Inf); a reduce-scatter over the block's lanes by butterfly shuffles
  (:func:`.warp.xor_shuffle`) leaves each of the 32 lanes with one block's, so each lane
  computes one scale byte (:func:`..scale_rules.mx_scale`,
  :func:`..scale_rules.nvfp4_block_scale`, or for NVFP4 its table look-up
  :func:`..scale_rules.scale_by_bounds`) and stores it, and hands the block's divisor
  back to the block's lanes (:func:`.warp.index_shuffle`). Each lane then computes the
  codes of its elements (:func:`..elements.element_code`; MXFP4 under ties to even
  :func:`..elements.nearest_even_code`; NVFP4 division recipes under ties to even the same
  of :func:`..elements.reciprocal_quotient`, the quotient from the block's divisor and
  reciprocal, under the other ties by decision thresholds) and
  stores its packed bytes (SPLIT_HALF pairs element j with j + B/2, so there the lanes of
  the block's first half take their partner's codes by a shuffle). These kernels are bound
  by the integer pipe more than by memory (``ncu``, 2026-12-04), hence the float-pipe and
  table forms.
* The optimal searches (compute-bound, and needing the whole block) give a thread a block:
  it reads the block with 16-byte loads, searches (:func:`.search.search_function`, or
  :func:`..optimal.search_hessian` with the Hessian of the block's column block) and
  packs the codes (:func:`..elements.packed_byte`).

The hot kernels are launched by :func:`.launch.launch` (numba's launch without its per-call
dispatch).

The element options (nibble order, tie rule, sign of zero), the MXFP4 rule or NVFP4 recipe
of the rule kernels, and the search kind are compile-time constants (one kernel for each
combination, built on first use), so branches fold and loops unroll; the tensor scale,
clamps and the rest are run-time arguments.

Arguments are trusted: :mod:`fp4ref.quantize` checks shapes and dtypes first, and hands
over C-contiguous float32 ``x`` starting at a 16-byte aligned address.
"""

from __future__ import annotations

import math
import threading

import numpy as np
from numba import cuda, float32, float64, int32, njit, uint32, uint64

from ..comfy import comfy_block
from ..cpu.simd.nvfp4_search import decision_threshold
from ..elements import (
    RECIPROCAL_RANGE,
    THRESHOLDS,
    element_code,
    nearest_even_code,
    packed_byte,
    reciprocal_quotient,
    scaled_element_code,
    signed_code,
    threshold_code,
)
from ..fouroversix import quantize_block as fouroversix_block
from ..ggml import ggml_block
from ..modelopt import modelopt_block
from ..optimal import search_hessian
from ..options import (
    ELEMENT_GGML,
    ENCODE_E4M3_GGML,
    HIGH_FIRST,
    NONFINITE_COMFY,
    NONFINITE_CT,
    NONFINITE_GFLOAT,
    NONFINITE_GGML,
    NONFINITE_GGUF_PY,
    NONFINITE_IEEE_X86,
    NONFINITE_MLX,
    NONFINITE_MODELOPT,
    NONFINITE_NAN_SCALE,
    RECIPE_COMFY,
    RECIPE_CT,
    RECIPE_MLX,
    RECIPE_TORCHAO,
    RECIPE_VLLM,
    RULE_FLOOR,
    RULE_MLX,
    SPLIT_HALF,
    TIE_ARGMIN,
    TIE_EVEN,
    ZERO_NOT_POSITIVE,
    ZERO_QUOTIENT,
)
from ..quantize_block import (
    block_amax,
    e8m0_reciprocal32,
    half_value,
    mx_implementation_nonfinite,
    mx_quirk_code,
    mx_quirk_scale,
    mx_rule_block,
    nv_nan_recoded,
    nv_nonfinite_block,
    pow2_32,
    vllm_nv_block,
    vllm_nv_code,
)
from ..scalar import byte_elements
from ..scale_rules import (
    SCALE_BOUNDS,
    bound_checks,
    bounds_apply,
    bounds_head,
    least_amax_of,
    mlx_exponent,
    mx_scale,
    nvfp4_block_scale,
    nvfp4_divisor,
    nvfp4_scale_bounds,
    nvfp4_tensor_operand,
    nvfp4_tensor_scale,
    scale_by_bounds,
)
from . import elements, search, unfused  # noqa: F401 (the GPU's count_below and mul overloads)
from .codec import _grid, _simulated, resident_grid
from .launch import launch
from .warp import index_shuffle, xor_shuffle
from .wide import hinted_load4, load4, store4

#: NaN scale bytes: E8M0 0xFF (MX v1.0 5.4.1), E4M3 0x7F.
MX_NAN, NV_NAN = 0xFF, 0x7F

#: The byte MLX gives a NaN/Inf MXFP4 block (``nonfinite="mlx"``).
MX_MLX_NONFINITE = 0x80

#: float32 bits of +Inf: a sign-cleared value above it is a NaN (IEEE 754 3.4).
_INF_BITS = 0x7F800000
_INF32 = np.float32(np.inf)

#: The rule kernels hand a block's divisor to its lanes as float32 bits; these bits (a NaN
#: no divisor is sent as: a NaN divisor goes as the canonical 0x7FC00000) say "NaN scale
#: byte: zero codes" instead (a NaN divisor of another byte encodes every element as 0).
_ZERO_CODES = -1

#: Threads of a thread block of the rule kernels: small thread blocks pack the SMs closer
#: (the MXFP4 kernel's 96 registers a thread fit 5 blocks of 128 threads on an SM, 640
#: threads, against 2 of 256). On an H100 (2026-11-22) MXFP4 OCP ran at 1.00 of the copy
#: with 64 or 128, 0.89-0.92 with 192 or 256, 0.79 with 512; NVFP4 OCP at 0.75 with 128 or
#: 256, 0.65 with 64 or 512.
_RULE_THREADS = 128

_KERNELS: dict[tuple, object] = {}

#: Launch shape of the rule kernels (experiments override it): threads a thread block; the
#: PTX qualifiers of their 16-byte loads ("" for a plain load); whether NVFP4 division
#: recipes count codes against decision thresholds (:func:`threshold_table`); and the grid
#: of that kernel, ``resident`` times the thread blocks that fit at once (each copies the
#: 8 KiB table first, then loops over warp steps; 0: a warp a step, no loop). On the H200
#: (2026-12-03, docs/benchmarks.md) the NVFP4 OCP kernel ran at 0.69 of the copy by
#: thresholds (0.72 at 4 x resident) against 0.58 by division, and at 0.40 by thresholds
#: without the resident grid; ".nc.L2::256B" loads and 64 or 256 threads changed nothing
#: beyond the run-to-run spread. ``by_bounds``: NVFP4 block scales looked up from the amax
#: (:func:`scale_bounds`) instead of computed (a division and a float64 E4M3 cast, about a
#: fifth of that kernel's instructions). ``by_rounding``: MXFP4 codes under ties to even by
#: :func:`..elements.nearest_even_code` (float additions) instead of the threshold bisection
#: (comparisons and selects on the integer pipe, which bounds that kernel).
#: ``by_reciprocal``: NVFP4 codes under ties to even the same way, of the quotient by
#: reciprocal (:func:`reciprocal_table`), before ``by_threshold``: on the H200
#: (2026-12-04 night, docs/benchmarks.md) the NVFP4 OCP kernel ran at 0.87-0.90 of the copy
#: against 0.72-0.74 by thresholds and 0.67-0.69 by division, the same bytes, and at
#: 0.89-0.93 with ``resident`` 4 (four samples in two calls; 0.87-0.90 with 2, 0.82-0.85
#: with 1), hence 4.
RULE_SHAPE = {"threads": _RULE_THREADS, "loads": "", "by_threshold": True, "resident": 4,
              "pipeline": False, "mx_resident": 0, "by_bounds": True, "by_rounding": True,
              "by_reciprocal": True}

#: Entries of a threshold table: 8 float32 a scale byte (7 decision thresholds, a pad).
THRESHOLD_TABLE = 256 * 8

#: Entries of a reciprocal table: a scale byte's divisor and its float32 reciprocal.
RECIPROCAL_TABLE = 256 * 2

_THRESHOLDS: dict[tuple, object] = {}

if _simulated():

    def _njit_view(array):
        """The numpy array under a simulator kernel's array (the CPU-compiled njit
        functions the simulator calls take numpy arrays only)."""
        return array._ary

else:

    @cuda.jit(device=True, inline=True)
    def _njit_view(array):
        """``array`` itself (on a GPU njit device functions take device arrays)."""
        return array


def _block_grid(nblocks: int) -> tuple[int, int]:
    """(blocks, threads) for the search kernels: on a GPU a thread for every block, so the
    hardware keeps its SMs full to the end; in the simulator :func:`.codec._grid`."""
    if _simulated():
        return _grid(nblocks)
    threads = 256
    return max(1, (nblocks + threads - 1) // threads), threads


def _warp_grid(steps: int, threads: int = _RULE_THREADS) -> tuple[int, int]:
    """(blocks, threads) for the rule kernels: a warp for each of ``steps`` spans, in thread
    blocks of ``threads``; in the simulator one warp a thread block
    (:func:`.warp.xor_shuffle`), two thread blocks."""
    if _simulated():
        return max(1, min(2, steps)), 32
    return max(1, (32 * steps + threads - 1) // threads), threads


@njit(cache=True, error_model="numpy")
def _threshold_rows(recipe, tensor, tie):
    """(float32 ``[256 * 8]``, usable): row ``b`` holds the seven decision thresholds of
    scale byte ``b``'s divisor ``d`` (:func:`..cpu.simd.nvfp4_search.decision_threshold`),
    so that ``#{k : |x| > T_k}`` is the E2M1 magnitude code of ``float32(|x| / d)``, and
    1.0 in its last entry where that holds: a finite ``d >= 0`` (other bytes keep the
    division, 0.0 there); usable when the recipe divides."""
    table = np.zeros(THRESHOLD_TABLE, np.float32)
    usable = True
    for b in range(256):
        d, multiply = nvfp4_divisor(b, recipe, tensor)
        usable &= not multiply
        if 0.0 <= d < math.inf:
            for k in range(7):
                table[8 * b + k] = decision_threshold(float(THRESHOLDS[tie, k]), d)
            table[8 * b + 7] = 1.0
    return table, usable


def threshold_table(recipe: int, tensor: float, tie: int):
    """The device threshold table of :func:`_threshold_rows` for this recipe, tensor operand
    and tie rule, or None where it is not usable (cached: a few kilobytes each)."""
    key = (recipe, int(np.float64(tensor).view(np.uint64)), tie)  # NaN keys match
    return _device_table(key, lambda: _threshold_rows(recipe, float(tensor), tie))


@njit(cache=True, error_model="numpy")
def reciprocal_row(byte, recipe, tensor):
    """(d, r): the float32 divisor of scale byte ``byte`` and ``float32(1 / d)``, where ``d``
    lies in :data:`..elements.RECIPROCAL_RANGE` (:func:`..elements.reciprocal_quotient`'s
    operands); (0, 0) elsewhere (those blocks divide)."""
    d = nvfp4_divisor(byte, recipe, tensor)[0]
    if RECIPROCAL_RANGE[0] <= d <= RECIPROCAL_RANGE[1]:
        return np.float32(d), np.float32(1.0) / np.float32(d)
    return np.float32(0.0), np.float32(0.0)


@njit(cache=True, error_model="numpy")
def _reciprocal_rows(recipe, tensor):
    """(float32 ``[256 * 2]``, usable): :func:`reciprocal_row` of every scale byte; usable
    when the recipe divides."""
    table = np.zeros(RECIPROCAL_TABLE, np.float32)
    for b in range(256):
        table[2 * b], table[2 * b + 1] = reciprocal_row(b, recipe, tensor)
    return table, not nvfp4_divisor(0, recipe, tensor)[1]


def reciprocal_table(recipe: int, tensor: float):
    """The device table of :func:`_reciprocal_rows` for this recipe and tensor operand, or
    None where the recipe multiplies (cached: 2 KiB each)."""
    key = ("reciprocals", recipe, int(np.float64(tensor).view(np.uint64)))  # NaN keys match
    return _device_table(key, lambda: _reciprocal_rows(recipe, float(tensor)))


def _device_table(key, build):
    """The device copy of the host table ``build()`` gives with whether it is usable (None
    where not), kept under ``key`` (at most 64 kept: the tensor operand varies by call)."""
    if key not in _THRESHOLDS:
        table, usable = build()
        if len(_THRESHOLDS) > 64:
            _THRESHOLDS.clear()
        _THRESHOLDS[key] = cuda.to_device(table) if usable else None
    return _THRESHOLDS[key]


def _rule_kernel(nv: bool, rule: int, order: int, tie: int, zero_sign: int,
                 by_threshold: bool = False, threads: int = 128, loads: str = "",
                 mlx_nonfinite: bool = False, pipeline: bool = False, by_bounds: bool = False,
                 by_rounding: bool = False, by_reciprocal: bool = False):
    """The kernel for MXFP4 rule ``rule`` (or, with ``nv``, NVFP4 recipe ``rule``) and one
    set of element options; see the module docstring. With ``by_threshold`` (NVFP4, a
    division recipe whose every scale byte but the NaN ones has a finite divisor >= 0) an
    element's code is counted against its block's seven decision thresholds
    (:func:`threshold_table`) instead of computed from ``|x| / d``: the same codes, no
    division. ``threads``: of a thread block (the size of its threshold table copy);
    ``loads``: PTX qualifiers of the 16-byte loads (:func:`.wide.hinted_load4`).
    ``mlx_nonfinite``: ``nonfinite="mlx"`` (MXFP4 NaN/Inf blocks 0x80, NVFP4 no NaN
    scale). ``pipeline``: a warp issues its next step's loads before it works on this
    step's values (for a grid that loops over steps). ``by_bounds`` (NVFP4): each block's
    scale byte from its amax by :func:`..scale_rules.scale_by_bounds` over the table of
    :func:`scale_bounds`, copied to shared memory. ``by_rounding`` (MXFP4, ties to even):
    codes by :func:`..elements.nearest_even_code`. ``by_reciprocal`` (NVFP4, a division
    recipe, ties to even, zero sign keep, drop or negative; instead of ``by_threshold``):
    codes by :func:`..elements.nearest_even_code` of
    :func:`..elements.reciprocal_quotient`, from the block's divisor and reciprocal
    (:func:`reciprocal_table`, passed as ``thresholds``, copied to shared memory)."""
    key = ("rule", nv, rule, order, tie, zero_sign, by_threshold, threads, loads,
           mlx_nonfinite, pipeline, by_bounds, by_rounding, by_reciprocal)
    if key in _KERNELS:
        return _KERNELS[key]
    n = 16 if nv else 32
    group = n // 4  # lanes of a block, and loads of a lane in a step
    per_load = 32 // group  # blocks a load instruction of the warp covers
    span = 32 * n  # floats of a step: 32 blocks, a block's scale for each lane
    multiply = nv and rule == RECIPE_TORCHAO  # torchao multiplies by the reciprocal
    fetch = hinted_load4(loads) if loads else load4
    mx_mlx = not nv and rule == RULE_MLX  # MLX: elements / 2^e, the byte wraps
    nv_mlx = nv and rule == RECIPE_MLX  # MLX: float32(|x| / s_b) * E
    mx_multiply = (multiply or not nv) and not mx_mlx
    # MXFP4 ties to even: no NaN reaches the codes (a NaN block's codes are zero)
    by_rounding = by_rounding and not nv and mx_multiply and tie == TIE_EVEN

    @cuda.jit
    def kernel(bits, divisors, tensor, clamp_low, clamp_high, zero_block, zero_scale, inf_nan,
               zero_reciprocal, scales, out, thresholds, bounds):
        if by_threshold:  # a row of 8 a scale byte: 7 thresholds, a pad
            table = cuda.shared.array(THRESHOLD_TABLE, float32)
            for r in range(cuda.threadIdx.x, THRESHOLD_TABLE, threads):
                table[r] = thresholds[r]
        if by_reciprocal:  # a row of 2 a scale byte: d, 1 / d (0, 0: divide)
            pairs = cuda.shared.array(RECIPROCAL_TABLE, float32)
            for r in range(cuda.threadIdx.x, RECIPROCAL_TABLE, threads):
                pairs[r] = thresholds[r]
        if by_bounds:
            steps_of = cuda.shared.array(SCALE_BOUNDS, int32)
            for r in range(cuda.threadIdx.x, SCALE_BOUNDS, threads):
                steps_of[r] = bounds[r]
        if by_threshold or by_bounds or by_reciprocal:
            cuda.syncthreads()
        lane = uint32(cuda.threadIdx.x % 32)
        part = lane % uint32(group)  # elements 4 part .. 4 part + 3 of a block
        first_lane = lane - part  # of the block's lanes
        size = uint64(bits.size)
        nblocks = uint64(scales.size)
        steps = (size + uint64(span - 1)) // uint64(span)
        # the bits of a bad block's amax: NaN, or Inf too (MXFP4, nan-scale NVFP4)
        bad_from = int32(_INF_BITS + (0 if inf_nan or not nv else 1))
        values = cuda.local.array(n, uint32)
        ahead = cuda.local.array(n, uint32)  # with pipeline: the next step's values
        tops = cuda.local.array(group, int32)
        step = uint64(cuda.grid(1)) // uint64(32)
        warps = uint64(cuda.gridsize(1)) // uint64(32)
        if pipeline and step < steps:  # the first step's loads
            first = step * uint64(span) + uint64(4 * lane)
            for j in range(group):
                at = first + uint64(128 * j)
                a = b = c = d = uint32(0)
                if at < size:
                    a, b, c, d = fetch(bits, at)
                ahead[4 * j], ahead[4 * j + 1], ahead[4 * j + 2] = a, b, c
                ahead[4 * j + 3] = d
        while step < steps:
            first = step * uint64(span) + uint64(4 * lane)
            if pipeline:  # this step's values arrived; the next step's loads go out
                for i in range(n):
                    values[i] = ahead[i]
                following = first + warps * uint64(span)
                if step + warps < steps:
                    for j in range(group):
                        at = following + uint64(128 * j)
                        a = b = c = d = uint32(0)
                        if at < size:
                            a, b, c, d = fetch(bits, at)
                        ahead[4 * j], ahead[4 * j + 1], ahead[4 * j + 2] = a, b, c
                        ahead[4 * j + 3] = d
            else:
                for j in range(group):  # every load in flight before the first use
                    at = first + uint64(128 * j)
                    a = b = c = d = uint32(0)
                    if at < size:
                        a, b, c, d = fetch(bits, at)
                    values[4 * j], values[4 * j + 1], values[4 * j + 2] = a, b, c
                    values[4 * j + 3] = d
            for j in range(group):  # magnitudes fit in int32
                top = int32(0)
                for k in range(4):
                    top = max(top, int32(values[4 * j + k] & uint32(0x7FFFFFFF)))
                tops[j] = top
            # reduce-scatter over the block's lanes: lane `part` ends with the largest
            # magnitude of its block in load j = part (halving: at mask m a lane keeps the
            # loads whose bit m matches its own and takes its partner's maxima of them)
            m = group // 2
            while m > 0:
                upper = (part & uint32(m)) != 0
                for r in range(m):
                    low, high = tops[r], tops[r + m]
                    tops[r] = max(high if upper else low, xor_shuffle(low if upper else high, m))
                m //= 2
            top = tops[0]
            amax = float(np.uint32(top).view(np.float32))  # exact
            if nv:
                scale = NV_NAN
                if by_bounds and top < bad_from:
                    scale = scale_by_bounds(top, steps_of)
                elif top < bad_from or mlx_nonfinite:  # MLX: a NaN is the block's max
                    scale = nvfp4_block_scale(amax, rule, tensor, clamp_low, clamp_high,
                                              zero_block, zero_scale)
                d = float32(divisors[scale])  # exact
                zero_codes = scale & 0x7F == NV_NAN  # as the oracle: the NaN bytes only
            else:
                if top >= bad_from:
                    scale = MX_NAN
                    if not inf_nan and top == _INF_BITS:  # nonfinite="gfloat": Inf -> 0xFE
                        scale = 254
                elif rule == RULE_FLOOR:  # OCP 6.3, off the exponent field (as on the CPU)
                    scale = max((top >> 23) - 2, 0)
                else:
                    scale = mx_scale(amax, rule)
                if zero_block and top == 0:  # a rule's zero block, as the profile says
                    scale = int32(zero_scale)
                d = e8m0_reciprocal32(min(scale, 254))  # |x| / X = |x| * 2^(127 - s)
                if scale == 0 and zero_reciprocal > 0:  # e8m0_zero_divisor: 1 / it, exact
                    d = float32(zero_reciprocal)
                zero_codes = scale == MX_NAN  # ggml's wrapped exponents can land there too
                if mx_mlx and top < bad_from:  # MLX: the byte wraps, |x| / 2^e
                    exponent = mlx_exponent(amax)
                    scale = (exponent + 127) % 256
                    d = pow2_32(exponent)
                    zero_codes = False
                if mlx_nonfinite and top >= bad_from:
                    scale = MX_MLX_NONFINITE
                    zero_codes = True
            block = step * uint64(32) + uint64(part * per_load + lane // uint32(group))
            if block < nblocks:  # this lane's block: load `part`, group lane // group
                scales[block] = scale
            if by_threshold or by_reciprocal:  # the scale byte goes to the block's lanes
                shared_d = int32(scale)
            else:
                shared_d = int32(np.float32(d).view(np.uint32)) if d == d else (
                    int32(0x7FC00000))
            if zero_codes:
                shared_d = int32(_ZERO_CODES)
            for j in range(group):
                at = first + uint64(128 * j)
                sent = index_shuffle(shared_d, first_lane + j)
                codes = uint32(0)  # element 4 part + k in nibble k
                row = uint32(sent) * uint32(8)
                if by_threshold and sent != _ZERO_CODES and table[row + 7] != float32(0):
                    t = (table[row], table[row + 1], table[row + 2], table[row + 3],
                         table[row + 4], table[row + 5], table[row + 6])
                    for k in range(4):
                        v = np.uint32(values[4 * j + k]).view(np.float32)
                        codes |= uint32(threshold_code(v, t, zero_sign)) << uint32(4 * k)
                elif (by_reciprocal and sent != _ZERO_CODES
                      and pairs[2 * sent + 1] != float32(0)):
                    d, r = pairs[2 * sent], pairs[2 * sent + 1]
                    for k in range(4):  # FMA-pipe quotient and code
                        v = np.uint32(values[4 * j + k]).view(np.float32)
                        y = reciprocal_quotient(abs(v), d, r)
                        code = signed_code(v, y, nearest_even_code(y), zero_sign)
                        codes |= uint32(code) << uint32(4 * k)
                elif sent != _ZERO_CODES:  # a byte without thresholds divides
                    if by_threshold or by_reciprocal:
                        d = float32(divisors[sent])  # exact
                    else:
                        d = np.uint32(sent).view(np.float32)
                    for k in range(4):
                        v = np.uint32(values[4 * j + k]).view(np.float32)
                        if nv_mlx:
                            code = scaled_element_code(v, d, tensor, tie, zero_sign)
                        elif by_rounding:  # FMA-pipe code (the kernel is integer-pipe bound)
                            y = abs(v) * np.float32(d)
                            code = signed_code(v, y, nearest_even_code(y), zero_sign)
                        else:
                            code = element_code(v, d, mx_multiply, tie, zero_sign)
                        codes |= uint32(code) << uint32(4 * k)
                if order == SPLIT_HALF:  # byte i: elements i, i + n/2 (a lane n/8 along)
                    other = uint32(xor_shuffle(int32(codes), group // 2))
                    if part < group // 2 and at < size:
                        word = uint32(0)
                        for k in range(4):
                            word |= (((codes >> uint32(4 * k)) & uint32(15))
                                     | (((other >> uint32(4 * k)) & uint32(15)) << uint32(4))
                                     ) << uint32(8 * k)
                        out[(at // uint64(n)) * uint64(n // 8) + uint64(part)] = word
                elif at < size:  # bytes 2 part, 2 part + 1 of the block: one 16-bit store
                    if order == HIGH_FIRST:  # swap the nibbles of each byte
                        codes = (((codes & uint32(0x0F0F)) << uint32(4))
                                 | ((codes >> uint32(4)) & uint32(0x0F0F)))
                    out[at // uint64(4)] = codes
            step += warps

    _KERNELS[key] = kernel
    return kernel


def _search_kernel(nv: bool, hessian: bool, order: int, tie: int, zero_sign: int,
                   mlx_nonfinite: bool, lanes: int, multiply: bool):
    """The optimal-search kernel for MXFP4 (or NVFP4, ``nv``), by SSE
    (:func:`.search.search_function`) or, with ``hessian``, by ``r^T H r``
    (:func:`..optimal.search_hessian`), for one set of element options (``mlx_nonfinite``:
    MXFP4 NaN/Inf blocks get 0x80, ``nonfinite="mlx"``), summation order ``lanes`` and,
    for the Hessian search, NVFP4 quotient (``multiply``: by the table's multiplier)."""
    key = ("search", nv, hessian, order, tie, zero_sign, mlx_nonfinite, lanes, multiply,
           search.SEARCH_SHAPE["saturated"])
    if key in _KERNELS:
        return _KERNELS[key]
    n = 16 if nv else 32
    if multiply and not hessian:
        raise ValueError("the SSE search divides (fp4ref.quantize refuses recipes that multiply)")
    sse_search = search.search_function(n, lanes, tie, not nv)

    size = THRESHOLD_TABLE if nv and not hessian else 1  # MXFP4 and Hessians: unread

    @cuda.jit
    def kernel(x, divisors, thresholds, rule, tensor, clamp_low, clamp_high, zero_block,
               zero_scale, inf_nan, first, hessians, scales, words):
        table = cuda.shared.array(256, float64)  # the search reads the divisors often
        limits = cuda.shared.array(size, float32)  # and NVFP4 their decision thresholds
        for r in range(cuda.threadIdx.x, 256, cuda.blockDim.x):
            table[r] = divisors[r]
        for r in range(cuda.threadIdx.x, size, cuda.blockDim.x):
            limits[r] = thresholds[r]
        cuda.syncthreads()
        row = cuda.local.array(n, float32)
        if hessian:  # scratch of the njit search
            terms = cuda.local.array(n, float64)
            ys = cuda.local.array(n, float64)
            residuals = cuda.local.array(n, float64)
        else:  # scratch of search.search_function's, in registers
            terms = cuda.local.array(n, float32)
            ys = cuda.local.array(n, float32)
        columns = uint64(hessians.shape[0])
        for blk in range(uint64(cuda.grid(1)), uint64(scales.size), uint64(cuda.gridsize(1))):
            base = blk * uint64(n)
            for k in range(n // 4):
                a, b, c, d = load4(x, base + uint64(4 * k))
                row[4 * k], row[4 * k + 1], row[4 * k + 2], row[4 * k + 3] = a, b, c, d
            amax, bad = block_amax(row, inf_nan)
            scale = NV_NAN if nv else MX_NAN
            if bad:
                pass
            elif not nv and not inf_nan and amax == _INF32:  # nonfinite="gfloat": Inf -> 0xFE
                scale = 254
            elif hessian:  # as the CPU's quantize_mx / quantize_nv
                h = _njit_view(hessians[blk % columns])
                if nv:
                    start = nvfp4_block_scale(float(amax), rule, tensor, clamp_low,
                                              clamp_high, zero_block, zero_scale)
                    scale = search_hessian(row, start, table[start], table, 1, 126, multiply,
                                           tie, lanes, terms, ys, h, False, residuals)
                else:
                    start = mx_scale(float(amax), rule)
                    scale = search_hessian(row, start, table[start], table, first, 254, False,
                                           tie, lanes, terms, ys, h, True, residuals)
            elif nv:  # as nv_block_scale with optimal, the search by search.search_function
                start = nvfp4_block_scale(float(amax), rule, tensor, clamp_low, clamp_high,
                                          zero_block, zero_scale)
                scale = sse_search(row, start, table, limits, 1, 126, terms, ys)
            else:  # as mx_block_scale with optimal
                scale = sse_search(row, mx_scale(float(amax), rule), table, limits, first, 254,
                                   terms, ys)
            if bad and mlx_nonfinite and not nv:
                scale = MX_MLX_NONFINITE
            scales[blk] = scale
            if nv:
                d = float32(table[scale])  # exact
                zero = scale & 0x7F == NV_NAN  # the NaN bytes get zero codes
            else:
                d = e8m0_reciprocal32(min(scale, 254))  # |x| / X = |x| * 2^(127 - s)
                zero = scale == MX_NAN or bad
            out = cuda.local.array(4, uint32)
            for k in range(n // 8):
                word = uint32(0)
                if not zero:
                    for j in range(4):
                        byte = packed_byte(row, 4 * k + j, order, d, multiply or not nv, tie,
                                           zero_sign)
                        word |= uint32(byte) << uint32(8 * j)
                out[k] = word
            if nv:
                words[blk * uint64(2)] = out[0]
                words[blk * uint64(2) + uint64(1)] = out[1]
            else:
                store4(words, blk * uint64(4), out[0], out[1], out[2], out[3])

    _KERNELS[key] = kernel
    return kernel


@cuda.jit
def _mx_rule_block_kernel(bits, rule, nonfinite, zero_divisor, zero_block, zero_byte, order, tie,
                     zero_sign, only_nan, scales, packed):
    """MXFP4 under a rule with the conventions of :func:`..quantize_block.mx_rule_block`
    (an implementation's NaN/Inf coding, a scale-0 divisor): a thread a block, the very
    function the CPU's ``quantize_mx_quirks`` calls; with ``only_nan``, after a search, the
    blocks it gave 0xFF (its NaN/Inf blocks) only."""
    codes = cuda.local.array(32, int32)
    words = _njit_view(bits)
    for blk in range(cuda.grid(1), scales.size, cuda.gridsize(1)):
        if only_nan and scales[blk] != MX_NAN:
            continue
        scales[blk] = mx_rule_block(words, blk * 32, 32, rule, nonfinite, zero_divisor,
                                    zero_block, zero_byte, tie, zero_sign, codes)
        for i in range(16):
            low, high = byte_elements(i, order, 32)
            packed[blk * 16 + i] = codes[low] | (codes[high] << 4)


@cuda.jit
def _nv_nan_kernel(bits, nonfinite, tensor, clamp_low, clamp_high, order, tie, zero_sign,
                   scales, packed):
    """NVFP4 blocks recoded as the profile's implementation codes their NaN/Inf
    (:func:`..quantize_block.nv_nonfinite_block`), after the quantize kernel: the CPU's
    ``_nv_nan_blocks``, a thread a block."""
    codes = cuda.local.array(16, int32)
    words = _njit_view(bits)
    for blk in range(cuda.grid(1), scales.size, cuda.gridsize(1)):
        scale = nv_nonfinite_block(words, blk * 16, 16, nonfinite, tensor, clamp_low,
                                   clamp_high, tie, zero_sign, codes)
        if scale >= 0:
            scales[blk] = scale
            for i in range(8):
                low, high = byte_elements(i, order, 16)
                packed[blk * 8 + i] = codes[low] | (codes[high] << 4)


def _rule_out(packed, order: int):
    """``packed`` viewed as the words the rule kernels store: uint32 for SPLIT_HALF (4 bytes
    a lane of the block's first half), else uint16 (2 bytes a lane)."""
    return packed.reshape(-1).view(np.uint32 if order == SPLIT_HALF else np.uint16)


def _search(nv: bool, x, divisors, options, multiply: bool, scales, packed, hessian) -> None:
    """Launch the search kernel with the fields of ``options``
    (:class:`..options.KernelOptions`); ``hessian`` is a float64 ``[J, n, n]`` device array,
    or None to search by SSE."""
    n = 16 if nv else 32
    o = options
    kernel = _search_kernel(nv, hessian is not None, o.nibble_order, o.rounding, o.zero_sign,
                            o.nonfinite == NONFINITE_MLX, o.sum_lanes, multiply)
    thresholds = None
    if nv and hessian is None:  # the SSE search counts codes against decision thresholds
        thresholds = threshold_table(o.nvfp4_recipe, o.tensor_operand, o.rounding)
    if thresholds is None:  # not read: a float32 [1] array types the argument
        thresholds = _no_thresholds()
    if hessian is None:  # not read: a float64 [1, n, n] array types the argument
        hessian = cuda.device_array((1, n, n), np.float64)
    blocks, threads = _block_grid(scales.size)
    kernel[blocks, threads](
        x, divisors, thresholds, o.nvfp4_recipe if nv else o.scale_rule, o.tensor_operand,
        o.clamp_low,
        o.clamp_high, o.zero_block, o.zero_block_scale,
        o.nonfinite != NONFINITE_GFLOAT if not nv else o.nonfinite == NONFINITE_NAN_SCALE,
        1 if nv else o.e8m0_min, hessian, scales, packed.reshape(-1).view(np.uint32))


def _ggml_kernel(nv: bool, rule: int, order: int, tie: int, zero_sign: int, nonfinite: int,
                 element_rule: int, encode: int):
    """The kernel of the ggml conventions (:func:`..ggml.ggml_block`), a thread a block,
    for MXFP4 rule (or, with ``nv``, NVFP4 recipe) ``rule`` and one set of options, all
    compile-time constants; bytes written one by one."""
    key = ("ggml", nv, rule, order, tie, zero_sign, nonfinite, element_rule, encode)
    if key in _KERNELS:
        return _KERNELS[key]
    n = 16 if nv else 32

    @cuda.jit
    def kernel(x, tensor, clamp_low, clamp_high, zero_block, zero_scale, scales, out):
        row = cuda.local.array(n, float32)
        codes = cuda.local.array(n, int32)
        for blk in range(uint64(cuda.grid(1)), uint64(scales.size), uint64(cuda.gridsize(1))):
            base = blk * uint64(n)
            for k in range(n):
                row[k] = x[base + uint64(k)]
            scales[blk] = ggml_block(row, nv, rule, tensor, clamp_low, clamp_high, zero_block,
                                     zero_scale, nonfinite, element_rule, encode, tie,
                                     zero_sign, codes)
            for i in range(n // 2):
                first, second = byte_elements(i, order, n)
                out[blk * uint64(n // 2) + uint64(i)] = codes[first] | (codes[second] << 4)

    _KERNELS[key] = kernel
    return kernel


def _quirk_kernel(rule: int, order: int, tie: int, zero_sign: int, nonfinite: int,
                  element_scale: int):
    """The MXFP4 rule kernel under Quark's / vLLM's conventions: a thread a block, as
    :func:`..cpu.quantize.quantize_mx_quirks` (the same device functions)."""
    key = ("quirks", rule, order, tie, zero_sign, nonfinite, element_scale)
    if key in _KERNELS:
        return _KERNELS[key]
    n = 32

    @cuda.jit
    def kernel(x, zero_block, zero_byte, stored_min, scales, packed):
        row = cuda.local.array(n, float32)
        for blk in range(uint64(cuda.grid(1)), uint64(scales.size), uint64(cuda.gridsize(1))):
            base = blk * uint64(n)
            for k in range(n // 4):
                a, b, c, d = load4(x, base + uint64(4 * k))
                row[4 * k], row[4 * k + 1], row[4 * k + 2], row[4 * k + 3] = a, b, c, d
            scale, mode = mx_quirk_scale(row, rule, zero_block, zero_byte, nonfinite)
            for i in range(n // 2):
                low, high = byte_elements(i, order, n)
                packed[blk * uint64(n // 2) + uint64(i)] = (
                    mx_quirk_code(row[low], scale, mode, tie, zero_sign, nonfinite,
                                  element_scale)
                    | (mx_quirk_code(row[high], scale, mode, tie, zero_sign, nonfinite,
                                     element_scale) << 4))
            scales[blk] = max(scale, stored_min)

    _KERNELS[key] = kernel
    return kernel


def _ggml(nv: bool, x, options) -> bool:
    """Whether ``options`` choose a ggml convention (then :func:`_ggml_kernel` runs)."""
    o = options
    return not o.optimal and (
        o.element_rule == ELEMENT_GGML or o.nonfinite == NONFINITE_GGML
        or o.nonfinite == NONFINITE_GGUF_PY or (nv and o.e4m3_encode == ENCODE_E4M3_GGML))


def _launch_ggml(nv: bool, x, options, scales, packed) -> None:
    o = options
    kernel = _ggml_kernel(nv, o.nvfp4_recipe if nv else o.scale_rule, o.nibble_order,
                          o.rounding, o.zero_sign, o.nonfinite, o.element_rule, o.e4m3_encode)
    blocks, threads = _block_grid(scales.size)
    if nv:
        kernel[blocks, threads](x, o.tensor_operand, o.clamp_low, o.clamp_high, o.zero_block,
                                o.zero_block_scale, scales, packed.reshape(-1))
    else:
        kernel[blocks, threads](x, 1.0, 0.0, 0.0, o.mx_zero_block,
                                float(o.mx_zero_block_scale), scales, packed.reshape(-1))


def _vllm_kernel(order: int):
    """The NVFP4 kernel of recipe ``"vllm"`` (vLLM ``ref_nvfp4_quant``): a thread a block,
    as :func:`..cpu.quantize.quantize_nv_vllm` (the same device functions)."""
    key = ("vllm", order)
    if key in _KERNELS:
        return _KERNELS[key]
    n = 16

    @cuda.jit
    def kernel(x, g, scales, packed):
        row = cuda.local.array(n, float32)
        for blk in range(uint64(cuda.grid(1)), uint64(scales.size), uint64(cuda.gridsize(1))):
            base = blk * uint64(n)
            for k in range(n // 4):
                a, b, c, d = load4(x, base + uint64(4 * k))
                row[4 * k], row[4 * k + 1], row[4 * k + 2], row[4 * k + 3] = a, b, c, d
            scale, output_scale = vllm_nv_block(row, g)
            for i in range(n // 2):
                low, high = byte_elements(i, order, n)
                packed[blk * uint64(n // 2) + uint64(i)] = (
                    vllm_nv_code(row[low], output_scale)
                    | (vllm_nv_code(row[high], output_scale) << 4))
            scales[blk] = scale

    _KERNELS[key] = kernel
    return kernel


def _fouroversix_kernel(rule: int, order: int):
    """The four-over-six kernel (:func:`..fouroversix.quantize_block`), a thread a block,
    for rule ``rule`` and nibble order ``order`` (compile-time constants); bytes written one
    by one."""
    key = ("fouroversix", rule, order)
    if key in _KERNELS:
        return _KERNELS[key]
    n = 16

    @cuda.jit
    def kernel(x, amax, lanes, scales, out):
        row = cuda.local.array(n, float32)
        fq6 = cuda.local.array(n, float32)
        fq4 = cuda.local.array(n, float32)
        codes = cuda.local.array(n, int32)
        for blk in range(uint64(cuda.grid(1)), uint64(scales.size), uint64(cuda.gridsize(1))):
            base = blk * uint64(n)
            for k in range(n):
                row[k] = x[base + uint64(k)]
            scales[blk] = fouroversix_block(row, rule, amax, lanes, fq6, fq4, codes)
            for i in range(n // 2):
                first, second = byte_elements(i, order, n)
                out[blk * uint64(n // 2) + uint64(i)] = codes[first] | (codes[second] << 4)

    _KERNELS[key] = kernel
    return kernel


def quantize_fouroversix(x, options, scales, packed) -> None:
    """NVFP4 blocks of the flat float32 device array ``x`` by the four-over-six rule of
    ``options`` (``options.fouroversix``, the tensor amax in ``options.tensor_operand``),
    as :func:`..cpu.quantize.quantize_nv_fouroversix`."""
    o = options
    kernel = _fouroversix_kernel(o.fouroversix, o.nibble_order)
    blocks, threads = _block_grid(scales.size)
    kernel[blocks, threads](x, o.tensor_operand, o.sum_lanes, scales, packed.reshape(-1))


def quantize_mx(x, divisors, options, scales, packed, hessian=None) -> None:
    """MXFP4 (see :func:`_quantize_mx`), then under ``nonfinite="compressed-tensors"`` its
    overflowing blocks 0x7F with zero codes (:func:`..cpu.quantize.overflow_blocks_7f`)."""
    _quantize_mx(x, divisors, options, scales, packed, hessian)
    if options.nonfinite == NONFINITE_CT:
        blocks, threads = _block_grid(scales.size)
        _overflow_blocks_7f[blocks, threads](x.view(np.uint32), scales, packed.reshape(-1))
    if options.nonfinite == NONFINITE_MODELOPT:  # NaN/Inf blocks: 0x00, codes 0x8
        blocks, threads = _block_grid(scales.size)
        _modelopt_nonfinite_blocks[blocks, threads](x.view(np.uint32), scales,
                                                    packed.reshape(-1))


@cuda.jit
def _overflow_blocks_7f(bits, scales, packed):
    for blk in range(cuda.grid(1), scales.size, cuda.gridsize(1)):
        top = uint32(0)
        for i in range(32):
            top = max(top, bits[blk * 32 + i] & uint32(0x7FFFFFFF))
        if top + uint32(0x200000) >= uint32(_INF_BITS):
            scales[blk] = 0x7F
            for j in range(16):
                packed[blk * 16 + j] = 0


@cuda.jit
def _modelopt_nonfinite_blocks(bits, scales, packed):
    """As :func:`..cpu.quantize.modelopt_nonfinite_blocks`: a NaN/Inf block -> 0x00, 0x8s."""
    for blk in range(cuda.grid(1), scales.size, cuda.gridsize(1)):
        top = uint32(0)
        for i in range(32):
            top = max(top, bits[blk * 32 + i] & uint32(0x7FFFFFFF))
        if top >= uint32(_INF_BITS):
            scales[blk] = 0x00
            for j in range(16):
                packed[blk * 16 + j] = 0x88


def _quantize_mx(x, divisors, options, scales, packed, hessian=None) -> None:
    """MXFP4 blocks of the flat float32 device array ``x`` into ``scales`` (one byte per
    block) and ``packed`` (16 bytes per block), as :func:`..cpu.quantize.quantize_mx` and
    :func:`..cpu.quantize.quantize_mx_rule` (``options``: the call's
    :class:`..options.KernelOptions`).

    ``divisors`` is the device table of 2^(b - 127) (NaN at 255), read by the search;
    ``hessian`` (float64 ``[J, 32, 32]`` on the device, with ``optimal``) makes the search
    minimise ``r^T H r`` with ``H = hessian[b % J]`` for block b.
    """
    o = options
    if _ggml(False, x, o):  # ggml's conventions: their own kernel (no search)
        _launch_ggml(False, x, o, scales, packed)
        return
    mine = mx_implementation_nonfinite(o.nonfinite)  # torchao's, qwantize's, mistral.rs's
    if o.optimal:
        _search(False, x, divisors, o, False, scales, packed, hessian)
        if mine:  # the search's NaN/Inf blocks (0xFF) as the implementation codes them
            blocks, threads = _grid(scales.size)
            _mx_rule_block_kernel[blocks, threads](
                x.view(np.uint32), o.scale_rule, o.nonfinite, 0.0, False, 0, o.nibble_order,
                o.rounding, o.zero_sign, True, scales, packed.reshape(-1))
        return
    if (mine or o.e8m0_zero_divisor > 0) and o.mx_quirks:
        blocks, threads = _grid(scales.size)
        _mx_rule_block_kernel[blocks, threads](
            x.view(np.uint32), o.scale_rule, o.nonfinite, o.e8m0_zero_divisor,
            o.mx_zero_block, o.mx_zero_block_scale, o.nibble_order, o.rounding, o.zero_sign,
            False, scales, packed.reshape(-1))
        return
    if o.mx_quirks:
        blocks, threads = _block_grid(scales.size)
        _quirk_kernel(o.scale_rule, o.nibble_order, o.rounding, o.zero_sign, o.nonfinite,
                      o.mx_element_scale)[blocks, threads](
            x, o.mx_zero_block, o.mx_zero_block_scale, o.e8m0_stored_min, scales,
            packed.reshape(-1))
        return
    shape = RULE_SHAPE
    blocks, threads = _warp_grid((scales.size + 31) // 32, shape["threads"])
    pipeline = shape.get("pipeline", False)
    loads = "" if _simulated() else shape["loads"]
    kernel = _rule_kernel(False, o.scale_rule, o.nibble_order, o.rounding, o.zero_sign, False,
                          threads, loads, o.nonfinite == NONFINITE_MLX, pipeline, False,
                          shape.get("by_rounding", False))
    zero_reciprocal = 1.0 / o.e8m0_zero_divisor if o.e8m0_zero_divisor > 0 else 0.0
    args = (x.view(np.uint32), divisors, 1.0, o.clamp_low, o.clamp_high, o.mx_zero_block,
            float(o.mx_zero_block_scale), o.nonfinite != NONFINITE_GFLOAT, zero_reciprocal,
            scales, _rule_out(packed, o.nibble_order), _no_thresholds(), _no_bounds())
    if pipeline and not _simulated() and shape.get("mx_resident", 0):
        # a warp loops over steps, its next step's loads in flight: as many as fit at once
        blocks = min(blocks, shape["mx_resident"] * resident_grid(
            kernel, args, threads, ("mx rule", o.scale_rule, o.nibble_order, o.rounding,
                                    o.zero_sign, threads, loads, pipeline,
                                    shape.get("by_rounding", False))))
    launch(kernel, blocks, threads, *args)
    if mine:  # the NaN/Inf blocks (0xFF) as the implementation codes them, the rest as is
        blocks, threads = _grid(scales.size)
        launch(_mx_rule_block_kernel, blocks, threads,
               x.view(np.uint32), o.scale_rule, o.nonfinite, o.e8m0_zero_divisor,
               o.mx_zero_block, o.mx_zero_block_scale, o.nibble_order, o.rounding,
               o.zero_sign, True, scales, packed.reshape(-1))


def quantize_nv(x, divisors, options, scales, packed, hessian=None) -> None:
    """NVFP4 blocks of the flat float32 device array ``x``, as
    :func:`..cpu.quantize.quantize_nv` (``divisors`` from :func:`nv_divisors`; ``hessian``
    float64 ``[J, 16, 16]`` on the device, with ``optimal``, as in :func:`quantize_mx`)."""
    o = options
    if o.nvfp4_recipe == RECIPE_VLLM:
        blocks, threads = _block_grid(scales.size)
        _vllm_kernel(o.nibble_order)[blocks, threads](x, o.tensor_operand, scales,
                                                      packed.reshape(-1))
        return
    multiply = o.nvfp4_recipe == RECIPE_TORCHAO  # torchao multiplies by the reciprocal
    if _ggml(True, x, o):  # ggml's conventions: their own kernel (no search)
        _launch_ggml(True, x, o, scales, packed)
        return
    if o.nvfp4_recipe == RECIPE_COMFY and not o.optimal:
        quantize_nv_comfy(x, o, scales, packed)
        return
    if o.nonfinite == NONFINITE_MODELOPT and not o.optimal:
        tensor_bits = int(np.float32(o.tensor_operand).view(np.uint32))
        blocks, threads = _block_grid(scales.size)
        _modelopt_kernel[blocks, threads](x.view(np.uint32), o.tensor_operand, tensor_bits,
                                          o.clamp_low, o.clamp_high, o.zero_block,
                                          o.zero_block_scale, o.rounding, o.zero_sign,
                                          o.nibble_order, scales, packed.reshape(-1))
        return
    if o.optimal:
        _search(True, x, divisors, o, multiply, scales, packed, hessian)
    else:
        form = _nv_code_form(o)
        tables = (None if form is None else
                  reciprocal_table(o.nvfp4_recipe, o.tensor_operand) if form == "reciprocal"
                  else threshold_table(o.nvfp4_recipe, o.tensor_operand, o.rounding))
        bounds = None
        if RULE_SHAPE.get("by_bounds") and o.nonfinite != NONFINITE_MLX:
            bounds = scale_bounds(o.nvfp4_recipe, o.tensor_operand, o.clamp_low, o.clamp_high,
                                  o.zero_block, o.zero_block_scale)
        _nv_rule(x.view(np.uint32), divisors, o, o.tensor_operand,
                 form if tables is not None else None, tables, bounds, scales, packed)
    nv_after_kernel(x, o, scales, packed)


def _nv_code_form(options) -> str | None:
    """How the NVFP4 rule kernel codes elements under ``options`` (:data:`RULE_SHAPE`):
    ``"reciprocal"`` (:func:`reciprocal_table`), ``"threshold"`` (:func:`threshold_table`)
    or None (the division)."""
    o = options
    divides = (o.nvfp4_recipe != RECIPE_TORCHAO  # torchao multiplies by the reciprocal
               and o.nvfp4_recipe != RECIPE_MLX  # MLX: a division, then a multiply
               and o.zero_sign != ZERO_QUOTIENT  # the quotient's sign needs the division
               and o.zero_sign != ZERO_NOT_POSITIVE)  # so does this one's
    if RULE_SHAPE.get("by_reciprocal") and divides and o.rounding == TIE_EVEN:
        return "reciprocal"
    if RULE_SHAPE["by_threshold"] and divides and o.rounding != TIE_ARGMIN:
        return "threshold"
    return None


def _nv_rule(bits, divisors, options, tensor, form, table, bounds, scales, packed) -> None:
    """Launch the NVFP4 rule kernel on the float32 bits ``bits`` (uint32, flat): element
    codes by ``form`` (:func:`_nv_code_form`; its
    device ``table``), block scales from the device ``bounds`` (None: computed, from the
    run-time ``tensor`` operand)."""
    o, shape = options, RULE_SHAPE
    blocks, threads = _warp_grid((scales.size + 31) // 32, shape["threads"])
    loads = "" if _simulated() else shape["loads"]
    pipeline = shape.get("pipeline", False)
    kernel = _rule_kernel(True, o.nvfp4_recipe, o.nibble_order, o.rounding, o.zero_sign,
                          form == "threshold", threads, loads, o.nonfinite == NONFINITE_MLX,
                          pipeline, bounds is not None, False, form == "reciprocal")
    args = (bits, divisors, tensor, o.clamp_low, o.clamp_high, o.zero_block,
            o.zero_block_scale, o.nonfinite == NONFINITE_NAN_SCALE, 0.0, scales,
            _rule_out(packed, o.nibble_order), _no_thresholds() if table is None else table,
            _no_bounds() if bounds is None else bounds)
    if (table is not None or bounds is not None or pipeline) and not _simulated() and (
            shape["resident"]):
        # each thread block copies the tables first: as many as fit at once, looping
        blocks = min(blocks, shape["resident"] * resident_grid(
            kernel, args, threads, ("nv rule", o.nvfp4_recipe, o.nibble_order, o.rounding,
                                    o.zero_sign, threads, loads, form, pipeline,
                                    bounds is not None)))
    launch(kernel, blocks, threads, *args)


def nv_after_kernel(x, options, scales, packed) -> None:
    """The passes some nonfinite conventions make after the NVFP4 kernel: x86's NaN scale
    byte 0xFF, and the NaN/Inf blocks torchao, torchao-rceil and qwantize recode."""
    o = options
    if o.nvfp4_recipe == RECIPE_VLLM or o.fouroversix >= 0:
        return
    if o.nonfinite == NONFINITE_IEEE_X86 or o.nonfinite == NONFINITE_CT:  # NaN scale 0xFF
        blocks, threads = _block_grid(scales.size)
        _x86_nan_scales[blocks, threads](x.view(np.uint32), scales)
    if nv_nan_recoded(o.nonfinite):  # torchao, torchao-rceil, qwantize: after the kernel
        blocks, threads = _grid(scales.size)
        _nv_nan_kernel[blocks, threads](x.view(np.uint32), o.nonfinite, o.tensor_operand,
                                        o.clamp_low, o.clamp_high, o.nibble_order,
                                        o.rounding, o.zero_sign, scales, packed.reshape(-1))


def device_amax_applies(options) -> bool:
    """Whether :func:`quantize_nv_by_device_amax` can quantize under ``options`` (the rule
    kernel with its scale-bound table, codes by reciprocal or by division)."""
    o = options
    return (not o.optimal and o.fouroversix < 0 and o.nvfp4_recipe not in (
        RECIPE_VLLM, RECIPE_COMFY, RECIPE_MLX) and not _ggml(True, None, o)
        and o.nonfinite not in (NONFINITE_MODELOPT, NONFINITE_MLX)
        and bool(RULE_SHAPE.get("by_bounds")) and _nv_code_form(o) != "threshold")


#: The device operand record: the amax bits, the tensor operand, whether the tables hold.
_RECORD = 3


@cuda.jit
def _operand_tables(partial, encode, ct, recipe, clamp_low, clamp_high, zero_block,
                    zero_scale, by_reciprocal, record, divisors, pairs, bounds):
    """One thread block of 256 threads: the tensor amax (the largest of ``partial``), its
    stored scale and operand (:func:`..scale_rules.nvfp4_tensor_scale`,
    :func:`..scale_rules.nvfp4_tensor_operand`), and from it the tables the host builds for
    a given operand, a thread an entry: ``divisors`` (:func:`..scale_rules.nvfp4_divisor`),
    with ``by_reciprocal`` ``pairs`` (:func:`reciprocal_row`), and ``bounds``
    (:func:`..scale_rules.nvfp4_scale_bounds`, whose usability goes to ``record[2]``)."""
    t = cuda.threadIdx.x
    tops = cuda.shared.array(256, int32)
    found = cuda.shared.array(2, int32)  # the prefix's end, whether every bound holds
    top = int32(0)
    for i in range(t, partial.size, 256):
        top = max(top, partial[i])
    tops[t] = top
    cuda.syncthreads()
    half = 128
    while half > 0:
        if t < half:
            tops[t] = max(tops[t], tops[t + half])
        cuda.syncthreads()
        half //= 2
    amax = float(np.uint32(tops[0]).view(np.float32))  # exact; NaN above 0x7F800000
    operand = nvfp4_tensor_operand(nvfp4_tensor_scale(amax, encode), ct, encode)
    divisors[t] = nvfp4_divisor(t, recipe, operand)[0]
    if by_reciprocal:
        pairs[2 * t], pairs[2 * t + 1] = reciprocal_row(t, recipe, operand)
    applies = amax == amax and bounds_apply(recipe, operand, clamp_low, clamp_high)
    if t == 0:
        found[1] = 1 if applies else 0
        # where the tables cannot hold, a table giving every block byte 0: the rule kernel,
        # already queued, then reads only valid entries (its bytes are not used)
        bounds[0], bounds[1] = 0x7FFFFFFF, 0
        if applies:
            start, inf_holds = bounds_head(_njit_view(bounds), recipe, operand, clamp_low,
                                           clamp_high, zero_block, zero_scale)
            found[0] = start
            if not inf_holds:
                found[1] = 0
    cuda.syncthreads()
    if applies and 1 <= t <= 126:
        low = least_amax_of(t, found[0], recipe, operand, clamp_low, clamp_high, zero_block,
                            zero_scale)
        bounds[1 + t] = low
        if not bound_checks(t, low, found[0], recipe, operand, clamp_low, clamp_high,
                            zero_block, zero_scale):
            found[1] = 0
    cuda.syncthreads()
    if t == 0:
        record[0] = float(tops[0])
        record[1] = operand
        record[2] = float(found[1])


def _copy_when(side, device, host) -> None:
    """Copy ``device`` into the pinned ``host`` as soon as the event of ``side`` (a
    :func:`_side` pair; the event recorded on the default stream) completes, not after the
    work queued behind it: on the kept non-blocking stream (a stream created blocking waits
    for everything queued on the default stream), then wait for that copy. The kernel
    queued after the event runs on while the host goes on. In the simulator (``side``
    None) a plain copy."""
    if side is None:
        device.copy_to_host(host)
        return
    stream, event = side
    event.wait(stream)
    device.copy_to_host(host, stream=stream)
    stream.synchronize()


def _side(device: int):
    """(non-blocking stream, event) kept for this thread and ``device`` (for the process)."""
    kept = _kept_buffers()
    key = ("side stream", device)
    if key not in kept:
        from numba.cuda.cudadrv.driver import binding, driver

        flags = binding.CUstream_flags.CU_STREAM_NON_BLOCKING.value
        kept[key] = (cuda.external_stream(int(driver.cuStreamCreate(flags))),
                     cuda.event(timing=False))
    return kept[key]


def quantize_nv_by_device_amax(x, options, encode: bool, allocate):
    """NVFP4 blocks of the flat float32 device array ``x`` whose tensor scale comes of the
    tensor amax, with no wait for the host between the passes: the amax kernel, then
    :func:`_operand_tables` (the operand and its tables on the device), then the rule
    kernel, and the operand's copy back as soon as the tables kernel has written it
    (:func:`_copy_when`: the host goes on while the rule kernel runs).
    ``options.tensor_operand`` is not read; ``encode``: the
    profile's tensor-scale direction; ``allocate()`` gives the (scales, packed) device
    arrays, called while the amax kernel runs. Returns (scales, packed, amax, operand), or
    None where the tables do not hold (a NaN, zero or infinite amax...: quantize with the
    host's operand instead). The passes of :func:`nv_after_kernel` are the caller's, once it
    has the operand."""
    o = options
    kept = _kept_buffers()
    device = 0 if _simulated() else cuda.get_current_device().id
    key = ("operand tables", device)
    if key not in kept:
        kept[key] = (cuda.device_array(256, np.float64),
                     cuda.device_array(RECIPROCAL_TABLE, np.float32),
                     cuda.device_array(SCALE_BOUNDS, np.int32),
                     cuda.device_array(_RECORD, np.float64),
                     cuda.pinned_array(_RECORD, np.float64))
    divisors, pairs, bounds, record, host = kept[key]
    form = _nv_code_form(o)
    bits = x.view(np.uint32)
    partial = _magnitude_partials(bits)
    launch(_operand_tables, 1, 256, partial, encode, o.nvfp4_recipe == RECIPE_CT,
           o.nvfp4_recipe, o.clamp_low, o.clamp_high, o.zero_block, o.zero_block_scale,
           form == "reciprocal", record, divisors, pairs, bounds)
    side = None if _simulated() else _side(device)
    if side is not None:
        side[1].record()  # on the default stream, after the tables kernel
    scales, packed = allocate()  # host work while the amax kernel runs
    _nv_rule(bits, divisors, o, math.nan, form, pairs if form == "reciprocal" else None,
             bounds, scales, packed)
    _copy_when(side, record, host)
    if host[2] != 1.0:
        return None
    return scales, packed, float(np.uint32(int(host[0])).view(np.float32)), float(host[1])


@cuda.jit
def _x86_nan_scales(bits, scales):
    for blk in range(cuda.grid(1), scales.size, cuda.gridsize(1)):
        if scales[blk] == NV_NAN:
            nan = False
            for i in range(16):
                nan |= (bits[blk * 16 + i] & uint32(0x7FFFFFFF)) > uint32(_INF_BITS)
            if not nan:
                scales[blk] = 0xFF


@cuda.jit
def _modelopt_kernel(bits, tensor, tensor_bits, clamp_low, clamp_high, zero_block, zero_scale,
                     tie, zero_sign, order, scales, packed):
    words, out = _njit_view(bits), _njit_view(packed)
    for blk in range(cuda.grid(1), scales.size, cuda.gridsize(1)):
        scales[blk] = modelopt_block(words, blk * 16, 16, tensor, tensor_bits, clamp_low,
                                     clamp_high, zero_block, zero_scale, tie, zero_sign, order,
                                     out, blk * 8)


def scale_bounds(recipe: int, tensor: float, clamp_low: float, clamp_high: float,
                 zero_block: bool, zero_scale: float):
    """The device table of :func:`..scale_rules.nvfp4_scale_bounds` for these fields, or
    None where it is not usable (cached: 516 bytes each)."""
    key = ("bounds", recipe, *(int(np.float64(v).view(np.uint64)) for v in (
        tensor, clamp_low, clamp_high, zero_scale)), zero_block)
    return _device_table(key, lambda: nvfp4_scale_bounds(
        recipe, float(tensor), float(clamp_low), float(clamp_high), bool(zero_block),
        float(zero_scale)))


def _unread(dtype) -> object:
    """A one-element device array of ``dtype`` that types a table argument of a kernel
    that does not read it."""
    key = ("unread", np.dtype(dtype).str)
    if key not in _THRESHOLDS:
        _THRESHOLDS[key] = cuda.device_array(1, dtype)
    return _THRESHOLDS[key]


def _no_bounds():
    """:func:`_unread` for the bounds argument (int32)."""
    return _unread(np.int32)


def _no_thresholds():
    """:func:`_unread` for the threshold argument (float32)."""
    return _unread(np.float32)


@cuda.jit
def _comfy_kernel(bits, tensor, tensor_bits, bad_mode, tie, zero_sign, order, scales, packed):
    words, out = _njit_view(bits), _njit_view(packed)
    for blk in range(cuda.grid(1), scales.size, cuda.gridsize(1)):
        scales[blk] = comfy_block(words, blk * 16, 16, tensor, tensor_bits, bad_mode, tie,
                                  zero_sign, order, out, blk * 8)


def quantize_nv_comfy(x, options, scales, packed) -> None:
    """NVFP4 by the ``"comfy"`` recipe, as :func:`..cpu.quantize.quantize_nv_comfy`: a thread
    a block, :func:`..comfy.comfy_block` (every NaN followed by its bits, so the GPU gives
    the x86 run's bytes; the tensor scale's bits are taken on the host)."""
    o = options
    tensor_bits = int(np.float32(o.tensor_operand).view(np.uint32))
    bad_mode = (0 if o.nonfinite == NONFINITE_COMFY
                else 2 if o.nonfinite == NONFINITE_NAN_SCALE else 1)
    blocks, threads = _block_grid(scales.size)
    _comfy_kernel[blocks, threads](x.view(np.uint32), o.tensor_operand, tensor_bits, bad_mode,
                                   o.rounding, o.zero_sign, o.nibble_order, scales,
                                   packed.reshape(-1))


@cuda.jit
def _nv_divisors(recipe, tensor, out):
    for b in range(cuda.grid(1), 256, cuda.gridsize(1)):
        out[b] = nvfp4_divisor(b, recipe, tensor)[0]


def nv_divisors(recipe: int, tensor: float, out) -> None:
    """``out[b]``: the float32 divisor of E4M3 byte ``b`` under ``recipe`` (256 float64)."""
    blocks, threads = _grid(256)
    _nv_divisors[blocks, threads](recipe, tensor, out)


#: The tensor-amax kernel: loads in flight a thread (16 bytes each), threads a thread
#: block, thread blocks an SM. On the H200 (2026-12-03) 8 x 512 x 8 read 1 GiB in 0.29 ms
#: (3.7 TB/s); one load a thread, 256 x 8, with a zeroed atomic result, took 0.35 ms, and
#: the call around it, copying a zero in and the result out, 0.66-0.76 ms.
AMAX_LOADS, AMAX_THREADS, AMAX_BLOCKS_PER_SM = 8, 512, 8


#: PTX qualifiers of the tensor-amax kernel's 16-byte loads ("" for a plain load).
AMAX_LOADS_QUALIFIERS = ""

_AMAX_KERNELS: dict[str, object] = {}


def _largest_magnitude_kernel(loads: str):
    """The tensor-amax kernel with loads of PTX qualifiers ``loads``."""
    if loads in _AMAX_KERNELS:
        return _AMAX_KERNELS[loads]
    fetch = hinted_load4(loads) if loads else load4

    @cuda.jit
    def _largest_magnitude(bits, partial):
        top = int32(0)  # magnitudes fit in int32
        quads = uint64(bits.size // 4)
        sign = uint32(0x7FFFFFFF)
        stride = uint64(cuda.gridsize(1))
        at = uint64(cuda.grid(1))
        while at + uint64(AMAX_LOADS - 1) * stride < quads:  # every load in flight first
            for u in range(AMAX_LOADS):
                a, b, c, d = fetch(bits, (at + uint64(u) * stride) * uint64(4))  # 16 bytes
                top = max(top, int32(a & sign), int32(b & sign), int32(c & sign),
                          int32(d & sign))
            at += stride * uint64(AMAX_LOADS)
        while at < quads:
            a, b, c, d = fetch(bits, at * uint64(4))
            top = max(top, int32(a & sign), int32(b & sign), int32(c & sign), int32(d & sign))
            at += stride
        for i in range(quads * uint64(4) + uint64(cuda.grid(1)), uint64(bits.size), stride):
            top = max(top, int32(bits[i] & sign))
        tops = cuda.shared.array(AMAX_THREADS, int32)  # a tree reduction over the thread block
        t = cuda.threadIdx.x
        tops[t] = top
        cuda.syncthreads()
        half = cuda.blockDim.x // 2
        while half > 0:
            if t < half:
                tops[t] = max(tops[t], tops[t + half])
            cuda.syncthreads()
            half //= 2
        if t == 0:
            partial[cuda.blockIdx.x] = tops[0]

    _AMAX_KERNELS[loads] = _largest_magnitude
    return _largest_magnitude


def largest_magnitude(bits) -> int:
    """The largest of ``bits & 0x7FFFFFFF`` over the flat uint32 device array ``bits``
    (float32 bits, starting at a 16-byte aligned address): the bits of the amax, above
    0x7F800000 when there is a NaN. Each thread block writes its maximum; the host takes
    the largest of those (one copy back, nothing to zero first)."""
    if not bits.size:
        return 0
    partial, host = _magnitude_partials(bits, with_host=True)
    partial.copy_to_host(host)
    return int(host.max())


def _magnitude_partials(bits, with_host: bool = False):
    """The device int32 array of the per-thread-block maxima of ``bits & 0x7FFFFFFF``
    (:func:`largest_magnitude`'s kernel, launched), and with ``with_host`` its pinned
    host twin. Both are kept buffers (a fresh allocation and a pageable copy each call cost
    more host time than a short reduction takes), one pair a thread, device and grid, for
    work on the default stream."""
    if _simulated():
        blocks, threads = _grid(bits.size)
        partial = cuda.device_array(blocks, np.int32)
        _largest_magnitude_kernel("")[blocks, threads](bits, partial)
        return (partial, np.empty(blocks, np.int32)) if with_host else partial
    device = cuda.get_current_device()
    threads = AMAX_THREADS
    blocks = max(1, min(AMAX_BLOCKS_PER_SM * device.MULTIPROCESSOR_COUNT,
                        (bits.size // 4 + threads - 1) // threads))
    kept = _kept_buffers().setdefault("partials", {})
    key = (device.id, blocks)
    if key not in kept:
        if len(kept) > 16:
            kept.clear()
        kept[key] = (cuda.device_array(blocks, np.int32), cuda.pinned_array(blocks, np.int32))
    partial, host = kept[key]
    launch(_largest_magnitude_kernel(AMAX_LOADS_QUALIFIERS), blocks, threads, bits, partial)
    return (partial, host) if with_host else partial


def _kept_buffers() -> dict:
    """This thread's kept device and pinned buffers (work on the default stream)."""
    kept = getattr(_AMAX_BUFFERS, "kept", None)
    if kept is None:
        kept = _AMAX_BUFFERS.kept = {}
    return kept


_AMAX_BUFFERS = threading.local()


@cuda.jit
def _widen(halves, bfloat, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = half_value(halves[i], bfloat)


def widen(halves, bfloat: bool, out) -> None:
    """``out`` (float32) = the values of the 16-bit float bits ``halves`` (uint16),
    bfloat16 if ``bfloat`` else float16, exactly."""
    if out.size:
        blocks, threads = _grid(out.size)
        _widen[blocks, threads](halves, bfloat, out)
