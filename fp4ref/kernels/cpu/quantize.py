"""CPU quantization kernels: ``numba.njit(parallel=True)``, ``prange`` over chunks of blocks.

They trust their arguments (checked by :mod:`fp4ref.quantize`). ``x`` is float32
``[nblocks, block_size]``; the kernels write one scale byte per block and the packed codes
``[nblocks, block_size / 2]`` in nibble order ``order``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..scalar import byte_elements
from ..scale_rules import element_code, mx_scale, nvfp4_block_scale, nvfp4_divisor, quotient, search

#: Blocks per parallel work item (scratch arrays are allocated once per item).
_CHUNK = 1024


@njit(parallel=True, cache=True, error_model="numpy")
def quantize_mx(x, rule, optimal, start_rule, first, tie, zero_sign, lanes, order, scales, packed):
    """MXFP4: scale by ``rule`` (or the optimal search over bytes ``first..254`` from
    ``start_rule``), elements by ``tie``; NaN/Inf blocks get 0xFF and zero codes."""
    divisors = np.empty(256)
    for b in range(255):
        divisors[b] = math.ldexp(1.0, b - 127)
    divisors[255] = math.nan
    nblocks, n = x.shape
    for chunk in prange((nblocks + _CHUNK - 1) // _CHUNK):
        row64 = np.empty(n)
        terms = np.empty(n)
        ys = np.empty(n)
        for blk in range(chunk * _CHUNK, min(nblocks, (chunk + 1) * _CHUNK)):
            amax = 0.0
            for i in range(n):
                a = abs(np.float64(x[blk, i]))
                amax = max(amax, a) if a < math.inf else math.inf
            if not amax < math.inf:
                scales[blk] = 255
                packed[blk, :] = 0
                continue
            if optimal:
                for i in range(n):
                    row64[i] = x[blk, i]
                start = mx_scale(amax, start_rule)
                scale = search(row64, start, divisors[start], divisors, first, 254, False, tie,
                               lanes, terms, ys)
            else:
                scale = mx_scale(amax, rule)
            scales[blk] = scale
            if scale == 255:
                packed[blk, :] = 0
                continue
            inverse = math.ldexp(1.0, 127 - scale)  # |x| / X, exact as a float64 multiply
            for i in range(n // 2):
                low, high = byte_elements(i, order, n)
                a = np.float64(x[blk, low])
                b = np.float64(x[blk, high])
                packed[blk, i] = (element_code(a, abs(a) * inverse, tie, zero_sign)
                                  | (element_code(b, abs(b) * inverse, tie, zero_sign) << 4))


@njit(parallel=True, cache=True, error_model="numpy")
def quantize_nv(x, recipe, tensor, clamp_low, clamp_high, zero_scale, optimal, inf_nan, tie,
                zero_sign, lanes, order, scales, packed):
    """NVFP4: block scale by ``recipe`` (or the optimal search over E4M3 bytes 1..126),
    elements ``float32(|x| / d)`` by ``tie``; NaN blocks (and Inf blocks if ``inf_nan``)
    get 0x7F and zero codes."""
    divisors = np.empty(256)
    multiply = nvfp4_divisor(0x38, recipe, tensor)[1]
    for b in range(256):
        divisors[b] = nvfp4_divisor(b, recipe, tensor)[0]
    nblocks, n = x.shape
    for chunk in prange((nblocks + _CHUNK - 1) // _CHUNK):
        row = np.empty(n)
        terms = np.empty(n)
        ys = np.empty(n)
        for blk in range(chunk * _CHUNK, min(nblocks, (chunk + 1) * _CHUNK)):
            amax = 0.0
            bad = False
            for i in range(n):
                row[i] = x[blk, i]
                a = abs(row[i])
                if a != a or (inf_nan and a == math.inf):
                    bad = True
                elif a > amax:
                    amax = a
            if bad:
                scales[blk] = 0x7F
                packed[blk, :] = 0
                continue
            scale = nvfp4_block_scale(amax, recipe, tensor, clamp_low, clamp_high, zero_scale)
            if optimal:
                scale = search(row, scale, divisors[scale], divisors, 1, 126, multiply, tie, lanes,
                               terms, ys)
            scales[blk] = scale
            d = divisors[scale]
            if d != d:
                packed[blk, :] = 0
                continue
            for i in range(n // 2):
                low, high = byte_elements(i, order, n)
                packed[blk, i] = (
                    element_code(row[low], quotient(row[low], d, multiply), tie, zero_sign)
                    | (element_code(row[high], quotient(row[high], d, multiply), tie,
                                    zero_sign) << 4))
