"""GPU quantization kernels: ``numba.cuda.jit`` twins of :mod:`fp4ref.kernels.cpu.quantize`.

One thread quantizes one block: it reads the block's float32 values with 16-byte loads
(:func:`.wide.load4`), and computes its scale and codes with the njit functions of
:mod:`..quantize_block` and :mod:`..scale_rules`, compiled as device functions; amax and
the element codes in float32 and integer operations only. The element options (nibble
order, tie rule, sign of zero), the path (rules or search) and, on the rule paths, the MXFP4
rule or NVFP4 recipe are compile-time constants (one kernel for each combination, built on
first use), so branches fold, the loops unroll and the block's values stay in registers;
the tensor scale, clamps and the rest are run-time arguments.

Arguments are trusted: :mod:`fp4ref.quantize` checks shapes and dtypes first, and hands
over C-contiguous float32 ``x`` starting at a 16-byte aligned address.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float32, float64, int32, uint32, uint64

from ..quantize_block import (
    block_amax,
    half_value,
    mx_block_scale,
    nv_block_scale,
    packed_byte,
)
from ..scale_rules import mx_scale, nvfp4_divisor
from .codec import _grid, _simulated
from .wide import load4, store4

#: NaN scale bytes: E8M0 0xFF (MX v1.0 5.4.1), E4M3 0x7F.
MX_NAN, NV_NAN = 0xFF, 0x7F

_KERNELS: dict[tuple, object] = {}


def _block_grid(nblocks: int) -> tuple[int, int]:
    """(blocks, threads) for the quantize kernels: on a GPU a thread for every block, so the
    hardware keeps its SMs full to the end (:func:`.codec._grid` caps the grid at 8 thread
    blocks an SM, more than fit at once with these kernels' registers, and the last wave then
    runs part-empty); in the simulator :func:`.codec._grid`."""
    if _simulated():
        return _grid(nblocks)
    threads = 256
    return max(1, (nblocks + threads - 1) // threads), threads


def _mx_kernel(optimal: bool, rule: int, order: int, tie: int, zero_sign: int):
    """The MXFP4 kernel for the optimal search or scale rule ``rule`` (ignored with
    ``optimal``) and one set of element options."""
    key = ("mx", optimal, -1 if optimal else rule, order, tie, zero_sign)
    if key in _KERNELS:
        return _KERNELS[key]
    n = 32

    @cuda.jit
    def kernel(x, divisors, search_rule, start_rule, first, lanes, scales, words):
        table = cuda.shared.array(256, float64)
        if optimal:
            for r in range(cuda.threadIdx.x, 256, cuda.blockDim.x):
                table[r] = divisors[r]
            cuda.syncthreads()
        row = cuda.local.array(n, float32)
        terms = cuda.local.array(n, float64)
        ys = cuda.local.array(n, float64)
        for blk in range(uint64(cuda.grid(1)), uint64(scales.size), uint64(cuda.gridsize(1))):
            base = blk * uint64(n)
            for k in range(n // 4):
                a, b, c, d = load4(x, base + uint64(4 * k))
                row[4 * k], row[4 * k + 1], row[4 * k + 2], row[4 * k + 3] = a, b, c, d
            amax, bad = block_amax(row, True)
            if bad:
                scale = MX_NAN
            elif optimal:
                scale = mx_block_scale(row, float(amax), search_rule, optimal, start_rule, first,
                                       tie, lanes, table, terms, ys)
            else:
                scale = mx_scale(float(amax), rule)  # a constant rule: its branch alone
            scales[blk] = scale
            # |x| / X = |x| * 2^(127 - s): a float32 power of two (2^-127 is subnormal, exact)
            inverse = float32(math.ldexp(1.0, 127 - min(scale, 254)))
            out = cuda.local.array(4, uint32)
            for k in range(4):
                word = uint32(0)
                if scale != MX_NAN:  # ggml's wrapped exponents can land on 0xFF too
                    for j in range(4):
                        byte = packed_byte(row, 4 * k + j, order, inverse, True, tie,
                                           zero_sign)
                        word |= uint32(byte) << uint32(8 * j)
                out[k] = word
            store4(words, blk * uint64(4), out[0], out[1], out[2], out[3])

    _KERNELS[key] = kernel
    return kernel


def _nv_kernel(optimal: bool, recipe: int, order: int, tie: int, zero_sign: int):
    """The NVFP4 kernel for the optimal search or for recipe ``recipe`` (with ``optimal``
    the recipe is a run-time argument) and one set of element options."""
    key = ("nv", optimal, -1 if optimal else recipe, order, tie, zero_sign)
    if key in _KERNELS:
        return _KERNELS[key]
    n = 16

    @cuda.jit
    def kernel(x, divisors, search_recipe, tensor, clamp_low, clamp_high, zero_scale, multiply,
               inf_nan, lanes, scales, words):
        table = cuda.shared.array(256, float64)
        if optimal:  # the search reads the table often; the recipes once a block
            for r in range(cuda.threadIdx.x, 256, cuda.blockDim.x):
                table[r] = divisors[r]
            cuda.syncthreads()
        row = cuda.local.array(n, float32)
        terms = cuda.local.array(n, float64)
        ys = cuda.local.array(n, float64)
        for blk in range(uint64(cuda.grid(1)), uint64(scales.size), uint64(cuda.gridsize(1))):
            base = blk * uint64(n)
            for k in range(n // 4):
                a, b, c, d = load4(x, base + uint64(4 * k))
                row[4 * k], row[4 * k + 1], row[4 * k + 2], row[4 * k + 3] = a, b, c, d
            amax, bad = block_amax(row, inf_nan)
            scale = NV_NAN
            if not bad:
                scale = nv_block_scale(row, float(amax), search_recipe if optimal else recipe,
                                       tensor, clamp_low, clamp_high, zero_scale, optimal,
                                       multiply, tie, lanes, table, terms, ys)
            scales[blk] = scale
            divisor = float32(table[scale] if optimal else divisors[scale])  # exact
            for k in range(2):
                word = uint32(0)
                if divisor == divisor:  # a NaN scale gets zero codes
                    for j in range(4):
                        byte = packed_byte(row, 4 * k + j, order, divisor, multiply, tie,
                                           zero_sign)
                        word |= uint32(byte) << uint32(8 * j)
                words[blk * uint64(2) + uint64(k)] = word

    _KERNELS[key] = kernel
    return kernel


def quantize_mx(x, divisors, rule: int, optimal: bool, start_rule: int, first: int, tie: int,
                zero_sign: int, lanes: int, order: int, scales, packed) -> None:
    """MXFP4 blocks of the flat float32 device array ``x`` into ``scales`` (one byte per
    block) and ``packed`` (16 bytes per block), as :func:`..cpu.quantize.quantize_mx`.

    ``divisors`` is the device table of 2^(b - 127) (NaN at 255), read by the search.
    """
    blocks, threads = _block_grid(scales.size)
    _mx_kernel(optimal, rule, order, tie, zero_sign)[blocks, threads](
        x, divisors, rule, start_rule, first, lanes, scales,
        packed.reshape(-1).view(np.uint32))


def quantize_nv(x, divisors, recipe: int, tensor: float, clamp_low: float, clamp_high: float,
                zero_scale: float, optimal: bool, multiply: bool, inf_nan: bool, tie: int,
                zero_sign: int, lanes: int, order: int, scales, packed) -> None:
    """NVFP4 blocks of the flat float32 device array ``x``, as
    :func:`..cpu.quantize.quantize_nv` (``divisors`` from :func:`nv_divisors`)."""
    blocks, threads = _block_grid(scales.size)
    _nv_kernel(optimal, recipe, order, tie, zero_sign)[blocks, threads](
        x, divisors, recipe, tensor, clamp_low, clamp_high, zero_scale, multiply, inf_nan,
        lanes, scales, packed.reshape(-1).view(np.uint32))


@cuda.jit
def _nv_divisors(recipe, tensor, out):
    for b in range(cuda.grid(1), 256, cuda.gridsize(1)):
        out[b] = nvfp4_divisor(b, recipe, tensor)[0]


def nv_divisors(recipe: int, tensor: float, out) -> None:
    """``out[b]``: the float32 divisor of E4M3 byte ``b`` under ``recipe`` (256 float64)."""
    blocks, threads = _grid(256)
    _nv_divisors[blocks, threads](recipe, tensor, out)


@cuda.jit
def _largest_magnitude(bits, result):
    top = int32(0)  # magnitudes fit in int32
    for i in range(uint64(cuda.grid(1)), uint64(bits.size), uint64(cuda.gridsize(1))):
        top = max(top, int32(bits[i] & uint32(0x7FFFFFFF)))
    tops = cuda.shared.array(256, int32)  # a tree reduction over the thread block
    t = cuda.threadIdx.x
    tops[t] = top
    cuda.syncthreads()
    stride = cuda.blockDim.x // 2
    while stride > 0:
        if t < stride:
            tops[t] = max(tops[t], tops[t + stride])
        cuda.syncthreads()
        stride //= 2
    if t == 0:
        cuda.atomic.max(result, 0, tops[0])


def largest_magnitude(bits) -> int:
    """The largest of ``bits & 0x7FFFFFFF`` over the flat uint32 device array ``bits``
    (float32 bits): the bits of the amax, above 0x7F800000 when there is a NaN."""
    result = cuda.to_device(np.zeros(1, np.int32))
    if bits.size:
        blocks, threads = _grid(bits.size)
        _largest_magnitude[blocks, threads](bits, result)
    return int(result.copy_to_host()[0])


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
