"""CPU quantization kernels: ``numba.njit(parallel=True)``, ``prange`` over chunks of blocks.

They trust their arguments (checked by :mod:`fp4ref.quantize`). Every one takes
``(x, bits, options, scales, packed, hessian)``: ``x`` float32 ``[nblocks, block_size]``
and ``bits`` the same memory as uint32, ``options`` the call's
:class:`..options.KernelOptions`, ``hessian`` float64 ``[J, block_size, block_size]``
(J = 0 unless the search is by ``r^T H r``); they write one scale byte per block into
``scales`` and the packed codes ``[nblocks, block_size / 2]`` into ``packed`` in the
options' nibble order. :func:`kernel_for` is the one table choosing among them.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..comfy import comfy_block
from ..elements import THRESHOLDS, packed_byte, scaled_element_code
from ..fouroversix import quantize_block as fouroversix_block
from ..ggml import ggml_block
from ..modelopt import modelopt_block
from ..optimal import block_error, first_at_least, search, search_bounds, search_hessian
from ..options import (
    NONFINITE_COMFY,
    NONFINITE_GFLOAT,
    NONFINITE_MLX,
    NONFINITE_NAN_SCALE,
    RECIPE_MLX,
    RECIPE_VLLM,
    RULE_FLOOR,
    RULE_MLX,
    ZERO_NOT_POSITIVE,
    ZERO_QUOTIENT,
)
from ..quantize_block import (
    e8m0_reciprocal32,
    mx_implementation_nonfinite,
    mx_quirk_code,
    mx_quirk_scale,
    mx_rule_block,
    nv_nan_recoded,
    nv_nonfinite_block,
    vllm_nv_block,
    vllm_nv_code,
)
from ..scalar import byte_elements
from ..scale_rules import mlx_exponent, mx_scale, nvfp4_block_scale, nvfp4_divisor
from .simd.mx_block import GROUP, block_max_magnitude, store_mx_codes, store_mx_floor_group
from .simd.mx_search import LANES, choose, measure, start_byte
from .simd.nvfp4_search import GROUP as NV_GROUP
from .simd.nvfp4_search import (
    counting_table,
    decision_table,
    monotone_start,
    quantize_blocks,
    start_breakpoints,
    start_bytes,
    store_blocks,
)

#: Blocks per parallel work item (scratch arrays are allocated once per item).
_CHUNK = 1024

#: Blocks per parallel work item of :func:`quantize_mx_rule` (large: little scheduling).
_RULE_CHUNK = 8192

@njit(cache=True, error_model="numpy")
def _e8m0_divisors():
    """float64 ``[256]``: the value 2^(b - 127) of every E8M0 byte b, NaN at 0xFF (OCP MX
    v1.0 section 5.4.1), the divisors of the MXFP4 searches."""
    divisors = np.empty(256)
    for b in range(255):
        divisors[b] = math.ldexp(1.0, b - 127)
    divisors[255] = math.nan
    return divisors


@njit(cache=True, error_model="numpy", inline="always")
def _store_mx(bits, blk, n, scale, tie_thresholds, zero_sign, order, scales, packed):
    """Write block ``blk``'s scale byte and its codes (zero codes under 0xFF, where ggml's
    wrapped exponents can land)."""
    scales[blk] = scale
    if scale == 255:
        packed[blk, :] = 0
    else:
        store_mx_codes(bits, blk * n, e8m0_reciprocal32(scale), tie_thresholds, zero_sign,
                       order, packed, blk * (n // 2))


@njit(cache=True, error_model="numpy", inline="always")
def _store_nonfinite_mx(bits, blk, n, options, codes, scales, packed):
    """A NaN/Inf block of a search: 0xFF and zero codes, or the profile's implementation's
    coding of it (:func:`..quantize_block.mx_rule_block`, qwantize's searches)."""
    if not mx_implementation_nonfinite(options.nonfinite):
        scales[blk] = 0x80 if options.nonfinite == NONFINITE_MLX else 255  # MLX: 0x80
        packed[blk, :] = 0
        return
    scales[blk] = mx_rule_block(bits.reshape(-1), blk * n, n, options.scale_rule,
                                options.nonfinite, 0.0, False, 0, options.rounding,
                                options.zero_sign, codes)
    for i in range(n // 2):
        low, high = byte_elements(i, options.nibble_order, n)
        packed[blk, i] = codes[low] | (codes[high] << 4)


@njit(parallel=True, cache=True, error_model="numpy")
def quantize_mx_rule(x, bits, options, scales, packed, hessian):
    """MXFP4 by the scale rule ``options.scale_rule``, in float32 and integer arithmetic only.

    ``bits`` is ``x`` viewed as uint32. Per block: the largest magnitude as an integer max
    of the sign-cleared bits (a NaN/Inf anywhere makes it >= 0x7F800000: scale 0xFF, zero
    codes); the scale byte s (the floor rule, OCP 6.3, straight from the exponent field:
    max(e - 2, 0)); then y = |x| * 2^(127 - s), one float32 multiply by a power of two,
    which equals float32(|x| / X) (exact unless y is subnormal, and then y < 0.25 either
    way); the code is the number of thresholds of the tie rule (a row of
    :data:`..elements.THRESHOLDS`) below y. Both steps run as vector code on the whole
    block (:mod:`.simd.mx_block`); under the floor rule on 16 blocks at a time.
    """
    rule, zero_sign, order = options.scale_rule, options.zero_sign, options.nibble_order
    tie_thresholds = THRESHOLDS[options.rounding]
    nan_byte = 0x80 if options.nonfinite == NONFINITE_MLX else 255  # MLX: 0x80
    gfloat = options.nonfinite == NONFINITE_GFLOAT  # Inf blocks 0xFE, V / 2^127 (no NaN)
    nblocks, n = x.shape
    for chunk in prange((nblocks + _RULE_CHUNK - 1) // _RULE_CHUNK):
        first, last = chunk * _RULE_CHUNK, min(nblocks, (chunk + 1) * _RULE_CHUNK)
        if (rule == RULE_FLOOR and not options.mx_zero_block
                and options.nonfinite != NONFINITE_MLX):  # whole groups of blocks at
            # once, the rest one by one below
            while last - first >= GROUP:
                bad = store_mx_floor_group(bits, first * n, tie_thresholds, zero_sign, order,
                                           scales, first, packed, first * (n // 2))
                while bad:  # NaN/Inf blocks: zero codes
                    b = 0
                    while not bad >> b & 1:
                        b += 1
                    packed[first + b, :] = 0
                    if gfloat and block_max_magnitude(bits, (first + b) * n) == 0x7F800000:
                        _store_mx(bits, first + b, n, 254, tie_thresholds, zero_sign, order,
                                  scales, packed)  # gfloat: an Inf block gets 0xFE
                    bad ^= np.uint32(1) << np.uint32(b)
                first += GROUP
        for blk in range(first, last):
            top = block_max_magnitude(bits, blk * n)
            if gfloat and top == 0x7F800000:  # nonfinite="gfloat": an Inf block gets 0xFE
                _store_mx(bits, blk, n, 254, tie_thresholds, zero_sign, order, scales, packed)
                continue
            if top >= 0x7F800000:  # NaN or Inf in the block
                scales[blk] = nan_byte
                packed[blk, :] = 0
                continue
            if rule == RULE_MLX:
                amax = np.float32(0.0)
                for i in range(n):
                    amax = max(amax, abs(x[blk, i]))
                exponent = mlx_exponent(float(amax))
                if exponent >= -127:  # the byte is e + 127 (<= 253): the vector codes
                    _store_mx(bits, blk, n, exponent + 127, tie_thresholds, zero_sign, order,
                              scales, packed)
                else:  # wrapped: divide by the subnormal 2^e
                    _store_mx_mlx(x[blk], blk, options, scales, packed)
                continue
            if rule == RULE_FLOOR:
                exponent = np.int64(top >> np.uint32(23))
                scale = exponent - 2 if exponent > 2 else 0
            else:
                amax = np.float32(0.0)
                for i in range(n):
                    amax = max(amax, abs(x[blk, i]))
                scale = mx_scale(float(amax), rule)
            if top == 0 and options.mx_zero_block:
                scale = options.mx_zero_block_scale
            _store_mx(bits, blk, n, scale, tie_thresholds, zero_sign, order, scales, packed)


@njit(cache=True, error_model="numpy")
def _store_mx_mlx(row, blk, options, scales, packed):
    """MXFP4 block ``blk`` under rule ``"mlx"``: the byte uint8(e + 127), which wraps below
    2^-127, and the codes of float32(|x| / 2^e), one division by a float32 power of two
    (subnormal down to 2^-149: exact), not by the stored byte's value."""
    amax = np.float32(0.0)
    for i in range(row.shape[0]):
        amax = max(amax, abs(row[i]))
    exponent = mlx_exponent(float(amax))
    scales[blk] = (exponent + 127) % 256
    encode_block(row, math.ldexp(1.0, exponent), False, options.rounding, options.zero_sign,
                 options.nibble_order, packed[blk])


@njit(cache=True, error_model="numpy", inline="always")
def _measure_mx(bits, index, start_rule, tie_thresholds, divisors):
    """(amax bits, start byte, :func:`.simd.mx_search.measure`) of the block at ``bits[index:]``."""
    top = block_max_magnitude(bits, index)
    start = start_byte(top, start_rule)
    return top, start, measure(bits, index, start, tie_thresholds, divisors)


@njit(parallel=True, cache=True, error_model="numpy")
def quantize_mx_optimal(x, bits, options, scales, packed, hessian):
    """MXFP4 by the optimal search over bytes ``e8m0_min..254`` from the start rule's byte,
    errors summed in 16 lanes: :func:`quantize_mx` without a Hessian and with
    ``sum_lanes`` = 16, the search in vector code (:mod:`.simd.mx_search`) and the codes stored
    as in :func:`quantize_mx_rule` (``bits``: ``x`` viewed as uint32).

    Each block's numbers are measured one block ahead of its choice, so that the CPU
    overlaps one block's long float32 sums with the next one's decisions."""
    start_rule, first, tie = options.scale_rule, options.e8m0_min, options.rounding
    zero_sign, order = options.zero_sign, options.nibble_order
    tie_thresholds = THRESHOLDS[tie]
    divisors = _e8m0_divisors()
    nblocks, n = x.shape
    for chunk in prange((nblocks + _CHUNK - 1) // _CHUNK):
        terms = np.empty(n)
        ys = np.empty(n)
        codes = np.empty(n, np.int64)
        low, high = chunk * _CHUNK, min(nblocks, (chunk + 1) * _CHUNK)
        ahead = _measure_mx(bits, low * n, start_rule, tie_thresholds, divisors)
        for blk in range(low, high):
            top, start, measured = ahead
            if blk + 1 < high:
                ahead = _measure_mx(bits, (blk + 1) * n, start_rule, tie_thresholds, divisors)
            if top == 0x7F800000 and options.nonfinite == NONFINITE_GFLOAT:  # Inf: 0xFE
                _store_mx(bits, blk, n, 254, tie_thresholds, zero_sign, order, scales, packed)
                continue
            if top >= 0x7F800000:  # NaN or Inf in the block
                _store_nonfinite_mx(bits, blk, n, options, codes, scales, packed)
                continue
            scale = choose(bits, blk * n, x[blk], float(np.uint32(top).view(np.float32)), start,
                           first, tie_thresholds, tie, divisors, terms, ys, measured)
            _store_mx(bits, blk, n, scale, tie_thresholds, zero_sign, order, scales, packed)


@njit(cache=True, error_model="numpy", inline="always")
def _terms(a, d, multiply, t0, t1, t2, t3, t4, t5, t6):
    """float32 (squared error, squared clip) of magnitude ``a`` at divisor ``d``."""
    y = a * d if multiply else a / d
    value = (np.float32(0.5) * np.float32((y > t0) + (y > t1) + (y > t2) + (y > t3))
             + np.float32((y > t4) + (y > t5)) + np.float32(2.0) * np.float32(y > t6))
    error = a - value * d
    h = max(a - np.float32(6.0) * d, np.float32(0.0))
    return error * error, h * h


@njit(cache=True, error_model="numpy")
def candidate_errors(x, divisors32, low, high, multiply, tie, lanes, sse, clip):
    """Float32 SSE and clip error of the block ``x`` at every candidate byte ``low..high-1``
    (``sse[c]``, ``clip[c]`` for byte ``low + c``): the values of
    :func:`..optimal.block_error` and :func:`..optimal.clip_error`, for all
    candidates at once. The inner loop runs across candidates (vectorised), the outer one
    over the lanes in torch's order, so each sum adds its terms in that order. Needs
    ``n == lanes`` or ``n == 2 * lanes``.
    """
    t0, t1, t2, t3 = THRESHOLDS[tie, 0], THRESHOLDS[tie, 1], THRESHOLDS[tie, 2], THRESHOLDS[tie, 3]
    t4, t5, t6 = THRESHOLDS[tie, 4], THRESHOLDS[tie, 5], THRESHOLDS[tie, 6]
    count = high - low
    for c in range(count):
        sse[c] = 0.0
        clip[c] = 0.0
    two_per_lane = x.shape[0] == 2 * lanes
    for lane in range(lanes):
        first = np.float32(abs(x[lane]))
        second = np.float32(abs(x[lane + lanes])) if two_per_lane else np.float32(0.0)
        for c in range(count):
            d = divisors32[low + c]
            error, h = _terms(first, d, multiply, t0, t1, t2, t3, t4, t5, t6)
            if two_per_lane:
                error2, h2 = _terms(second, d, multiply, t0, t1, t2, t3, t4, t5, t6)
                error = error + error2
                h = h + h2
            sse[c] = sse[c] + error
            clip[c] = clip[c] + h


@njit(cache=True, error_model="numpy")
def search_all(x, start, divisors, divisors32, first, last, multiply, tie, lanes, terms, ys,
               sse, clip):
    """:func:`..optimal.search` (the same byte) with every in-range candidate's errors
    from :func:`candidate_errors`; then qwantize's scan over them (clip test against the
    best so far, strict improvement), ascending."""
    e0 = block_error(x, divisors[start], multiply, tie, lanes, terms)
    keep, s_min, s_max = search_bounds(x, e0, lanes, terms, ys)
    if keep:
        return start
    low = first_at_least(divisors, first, last, s_min)
    high = low
    while high <= last and divisors[high] <= s_max:
        high += 1
    candidate_errors(x, divisors32, low, high, multiply, tie, lanes, sse, clip)
    best = start
    best_error = e0
    for c in range(high - low):
        if clip[c] < best_error and sse[c] < best_error:
            best = low + c
            best_error = float(sse[c])
    return best


@njit(cache=True, error_model="numpy")
def encode_block(row, d, multiply, tie, zero_sign, order, out):
    """Pack the codes of the float32 block ``row`` at divisor ``d`` into ``out``: each
    element by :func:`..elements.element_code` (float32(|x| / d), or float32(|x| * d), one
    float32 operation; NaN gives code 0, Inf 7; the sign by ``zero_sign``), the encoder
    the GPU kernels share."""
    d32 = np.float32(d)
    for i in range(row.shape[0] // 2):
        out[i] = packed_byte(row, i, order, d32, multiply, tie, zero_sign)


@njit(parallel=True, cache=True, error_model="numpy")
def quantize_mx(x, bits, options, scales, packed, hessian):
    """MXFP4 in scalar code: by the optimal search over bytes ``e8m0_min..254`` from the
    start rule's byte (any ``sum_lanes``; the Hessian search), or without
    ``options.optimal`` by the rule itself (the scalar path of :func:`quantize_mx_rule`,
    :mod:`.simd`'s switch); NaN/Inf blocks get 0xFF and zero codes. With the vector code
    on, the rules run in :func:`quantize_mx_rule` and the plain 16-lane search in
    :func:`quantize_mx_optimal`.

    ``hessian`` is float64 ``[J, n, n]``: with J > 0 the search minimises ``r^T H r`` with
    ``H = hessian[b % J]`` for block b (rows of J column blocks)."""
    start_rule, first, tie = options.scale_rule, options.e8m0_min, options.rounding
    zero_sign, lanes, order = options.zero_sign, options.sum_lanes, options.nibble_order
    divisors = _e8m0_divisors()
    nblocks, n = x.shape
    columns = hessian.shape[0]
    for chunk in prange((nblocks + _CHUNK - 1) // _CHUNK):
        terms = np.empty(n)
        ys = np.empty(n)
        r = np.empty(n)
        codes = np.empty(n, np.int64)
        for blk in range(chunk * _CHUNK, min(nblocks, (chunk + 1) * _CHUNK)):
            row = x[blk]
            amax = np.float32(0.0)
            for i in range(n):
                amax = max(amax, abs(row[i]))  # NaN and Inf are caught below
            finite = True
            for i in range(n):
                finite &= abs(row[i]) < np.float32(math.inf)
            if not finite and amax == math.inf and options.nonfinite == NONFINITE_GFLOAT:
                scales[blk] = 254  # gfloat: an Inf block (NaN was refused) gets 0xFE
                encode_block(row, divisors[254], False, tie, zero_sign, order, packed[blk])
                continue
            if not finite:
                _store_nonfinite_mx(bits, blk, n, options, codes, scales, packed)
                continue
            if start_rule == RULE_MLX and not options.optimal:
                _store_mx_mlx(row, blk, options, scales, packed)
                continue
            start = mx_scale(float(amax), start_rule)
            if not options.optimal:
                scale = start
                if amax == 0 and options.mx_zero_block:
                    scale = options.mx_zero_block_scale
            elif columns:
                scale = search_hessian(row, start, divisors[start], divisors, first, 254, False,
                                       tie, lanes, terms, ys, hessian[blk % columns], True, r)
            else:  # few powers of two lie inside the bounds: no batching needed
                scale = search(row, start, divisors[start], divisors, first, 254, False, tie,
                               lanes, terms, ys)
            scales[blk] = scale
            if scale == 255:
                packed[blk, :] = 0
                continue
            encode_block(row, divisors[scale], False, tie, zero_sign, order, packed[blk])


@njit(parallel=True, cache=True, error_model="numpy")
def quantize_mx_rule_block(x, bits, options, scales, packed, hessian):
    """MXFP4 by the scale rule with the conventions of
    :func:`..quantize_block.mx_rule_block` (an implementation's NaN/Inf coding, a scale-0
    divisor), one block at a time in scalar code, as the GPU's quirk kernel does."""
    nblocks, n = x.shape
    o = options
    for chunk in prange((nblocks + _CHUNK - 1) // _CHUNK):
        codes = np.empty(n, np.int64)
        for blk in range(chunk * _CHUNK, min(nblocks, (chunk + 1) * _CHUNK)):
            scales[blk] = mx_rule_block(bits.reshape(-1), blk * n, n, o.scale_rule, o.nonfinite,
                                        o.e8m0_zero_divisor, o.mx_zero_block,
                                        o.mx_zero_block_scale, o.rounding, o.zero_sign, codes)
            for i in range(n // 2):
                low, high = byte_elements(i, o.nibble_order, n)
                packed[blk, i] = codes[low] | (codes[high] << 4)


#: Elements per parallel work item of :func:`largest_magnitude`.
_REDUCE_CHUNK = 1 << 16


@njit(cache=True, error_model="numpy")
def _largest_bits(part):
    """The largest of ``part & 0x7FFFFFFF`` (uint32; 0 if empty), in a loop LLVM
    vectorizes (a separate function: inside ``prange`` it does not)."""
    top = np.uint32(0)
    for i in range(part.size):
        magnitude = part[i] & np.uint32(0x7FFFFFFF)
        top = magnitude if magnitude > top else top
    return top


@njit(parallel=True, cache=True, error_model="numpy")
def largest_magnitude(bits):
    """The largest of ``bits & 0x7FFFFFFF`` over the flat uint32 array ``bits`` (float32
    bits; 0 if empty): the bits of the largest magnitude, above 0x7F800000 when there is a
    NaN (integer order is the magnitudes' order)."""
    chunks = (bits.size + _REDUCE_CHUNK - 1) // _REDUCE_CHUNK
    tops = np.zeros(max(chunks, 1), np.uint32)
    for chunk in prange(chunks):
        tops[chunk] = _largest_bits(bits[chunk * _REDUCE_CHUNK:(chunk + 1) * _REDUCE_CHUNK])
    return tops.max()


@njit(parallel=True, cache=True, error_model="numpy")
def quantize_nv(x, bits, options, scales, packed, hessian):
    """NVFP4: block scale by the recipe (or, if ``options.optimal``, the search over E4M3
    bytes 1..126; by ``r^T H r`` with ``hessian[b % J]`` when ``hessian`` ``[J, n, n]`` has
    J > 0), elements ``float32(|x| / d)``; NaN blocks (and Inf blocks under
    ``nonfinite="nan-scale"``) get 0x7F and zero codes. Returns whether the blocks took the
    division-free path (:mod:`.simd.nvfp4_search`)."""
    recipe, tensor = options.nvfp4_recipe, options.tensor_operand
    zero_block, zero_scale = options.zero_block, options.zero_block_scale
    optimal, inf_nan = options.optimal, options.nonfinite == NONFINITE_NAN_SCALE
    nan_runs = options.nonfinite == NONFINITE_MLX
    tie, zero_sign = options.rounding, options.zero_sign
    lanes, order = options.sum_lanes, options.nibble_order
    clamp_low, clamp_high = options.clamp_low, options.clamp_high
    nblocks, n = x.shape
    columns = hessian.shape[0]
    batched = n == lanes or n == 2 * lanes
    divisors, multiply, fast, table, breakpoint_counts = _nv_tables(options, n, columns)
    divisors32 = divisors.astype(np.float32)
    # search bounds counted in a bucket table (.simd.nvfp4_search.count_at_most)
    divisor_counts = counting_table(divisors32[1:127] if fast else divisors32[:0])
    for chunk in prange((nblocks + _CHUNK - 1) // _CHUNK):
        terms = np.empty(n)
        ys = np.empty(n)
        r = np.empty(n)
        sse = np.empty(256, np.float32)
        clip = np.empty(256, np.float32)
        if fast:
            starts = np.empty(NV_GROUP, np.int64)
            e0s = np.empty(NV_GROUP, np.float32)
            energies = np.empty(NV_GROUP, np.float32)
            s_mins = np.empty(NV_GROUP, np.float32)
            s_maxs = np.empty(NV_GROUP, np.float32)
            lows = np.empty(NV_GROUP, np.int64)
            highs = np.empty(NV_GROUP, np.int64)
            magnitudes = np.empty(n * NV_GROUP, np.float32)
            tail = np.empty((n, n), np.float32)
            stop = min(nblocks, (chunk + 1) * _CHUNK)
            for group in range(chunk * _CHUNK, stop, NV_GROUP):
                quantize_blocks(x, bits, group, min(group + NV_GROUP, stop), breakpoint_counts,
                                divisor_counts, table, optimal, inf_nan, zero_sign, order, starts,
                                e0s, energies, s_mins, s_maxs, lows, highs, magnitudes, tail,
                                scales, packed)
            continue
        for blk in range(chunk * _CHUNK, min(nblocks, (chunk + 1) * _CHUNK)):
            row = x[blk]
            amax, bad = _nv_amax(row, inf_nan)
            if bad and nan_runs:  # MLX: the NaN is the block's max
                amax, bad = math.nan, False
            if bad:
                scales[blk] = 0x7F
                packed[blk, :] = 0
                continue
            scale = nvfp4_block_scale(amax, recipe, tensor, clamp_low, clamp_high, zero_block,
                                      zero_scale)
            if optimal and columns:
                scale = search_hessian(row, scale, divisors[scale], divisors, 1, 126, multiply,
                                       tie, lanes, terms, ys, hessian[blk % columns], False, r)
            elif optimal and batched:
                scale = search_all(row, scale, divisors, divisors32, 1, 126, multiply, tie, lanes,
                                   terms, ys, sse, clip)
            elif optimal:
                scale = search(row, scale, divisors[scale], divisors, 1, 126, multiply, tie, lanes,
                               terms, ys)
            _store_nv(row, blk, scale, divisors, multiply, tie, zero_sign, order, scales, packed)
    if nv_nan_recoded(options.nonfinite):  # torchao, torchao-rceil, qwantize
        _nv_nan_blocks(bits, options, scales, packed)
    return fast


@njit(parallel=True, cache=True, error_model="numpy")
def _nv_nan_blocks(bits, options, scales, packed):
    """NVFP4 blocks with NaN/Inf (torchao: all, with a tensor scale of 0, Inf or NaN)
    recoded as the profile's implementation codes them
    (:func:`..quantize_block.nv_nonfinite_block`), after the kernel."""
    nblocks, n = bits.shape
    o = options
    for chunk in prange((nblocks + _CHUNK - 1) // _CHUNK):
        codes = np.empty(n, np.int64)
        for blk in range(chunk * _CHUNK, min(nblocks, (chunk + 1) * _CHUNK)):
            scale = nv_nonfinite_block(bits.reshape(-1), blk * n, n, o.nonfinite,
                                       o.tensor_operand, o.clamp_low, o.clamp_high, o.rounding,
                                       o.zero_sign, codes)
            if scale >= 0:
                scales[blk] = scale
                for i in range(n // 2):
                    low, high = byte_elements(i, options.nibble_order, n)
                    packed[blk, i] = codes[low] | (codes[high] << 4)


@njit(parallel=True, cache=True, error_model="numpy")
def quantize_nv_rule(x, bits, options, scales, packed, hessian):
    """NVFP4 by the recipe alone (``options.optimal`` false): :func:`quantize_nv` without
    its search code, so that a call by a recipe compiles only this. The block scale by
    :func:`..scale_rules.nvfp4_block_scale`, the elements ``float32(|x| / d)``, NaN blocks
    (and Inf blocks under ``nonfinite="nan-scale"``) 0x7F and zero codes; where
    :func:`_nv_tables` allows, the start bytes and codes of :mod:`.simd.nvfp4_search`
    without divisions. Returns whether the blocks took that path."""
    recipe, tensor = options.nvfp4_recipe, options.tensor_operand
    zero_block, zero_scale = options.zero_block, options.zero_block_scale
    inf_nan = options.nonfinite == NONFINITE_NAN_SCALE
    nan_runs = options.nonfinite == NONFINITE_MLX
    tie, zero_sign, order = options.rounding, options.zero_sign, options.nibble_order
    clamp_low, clamp_high = options.clamp_low, options.clamp_high
    nblocks, n = x.shape
    divisors, multiply, fast, table, breakpoint_counts = _nv_tables(options, n,
                                                                    hessian.shape[0])
    for chunk in prange((nblocks + _CHUNK - 1) // _CHUNK):
        stop = min(nblocks, (chunk + 1) * _CHUNK)
        if fast:
            starts = np.empty(NV_GROUP, np.int64)
            for group in range(chunk * _CHUNK, stop, NV_GROUP):
                end = min(group + NV_GROUP, stop)
                start_bytes(bits, group, end, breakpoint_counts, inf_nan, starts)
                store_blocks(x, group, end, table, zero_sign, order, starts, scales, packed)
            continue
        for blk in range(chunk * _CHUNK, stop):
            row = x[blk]
            amax, bad = _nv_amax(row, inf_nan)
            if bad and nan_runs:  # MLX: the NaN is the block's max
                amax, bad = math.nan, False
            if bad:
                scales[blk] = 0x7F
                packed[blk, :] = 0
                continue
            scale = nvfp4_block_scale(amax, recipe, tensor, clamp_low, clamp_high, zero_block,
                                      zero_scale)
            if recipe == RECIPE_MLX:
                _store_nv_mlx(row, blk, scale, divisors, tensor, tie, zero_sign, order, scales,
                              packed)
                continue
            _store_nv(row, blk, scale, divisors, multiply, tie, zero_sign, order, scales, packed)
    if nv_nan_recoded(options.nonfinite):  # torchao, torchao-rceil, qwantize
        _nv_nan_blocks(bits, options, scales, packed)
    return fast


@njit(cache=True, error_model="numpy")
def _nv_tables(options, n, columns):
    """What both NVFP4 kernels precompute for a call on ``[*, n]`` blocks (``columns``
    Hessian matrices): the divisor of every E4M3 byte (float64 ``[256]``), whether the
    recipe multiplies by it, whether the blocks take the division-free path of
    :mod:`.simd.nvfp4_search`, its :func:`.simd.nvfp4_search.decision_table` and the
    :func:`.simd.nvfp4_search.counting_table` of the recipe's start breakpoints (both
    empty off that path)."""
    recipe, tensor = options.nvfp4_recipe, options.tensor_operand
    clamp_low, clamp_high = options.clamp_low, options.clamp_high
    divisors = np.empty(256)
    multiply = nvfp4_divisor(0x38, recipe, tensor)[1]
    for b in range(256):
        divisors[b] = nvfp4_divisor(b, recipe, tensor)[0]
    # division-free blocks (unless switched off): finite divisors, a start byte monotone
    # in amax, and for the search one term a lane
    fast = (options.vector_code and n == 16 and not multiply and not columns
            and recipe != RECIPE_MLX and options.nonfinite != NONFINITE_MLX
            and options.zero_sign != ZERO_QUOTIENT  # not in the vector code
            and options.zero_sign != ZERO_NOT_POSITIVE  # nor this one
            and (options.sum_lanes == 16 or not options.optimal)
            and monotone_start(recipe, tensor, clamp_low, clamp_high, options.zero_block))
    for b in range(127):
        fast &= 0.0 <= divisors[b] < math.inf
    table = decision_table(divisors, 126 if fast else -1, options.rounding)
    # start bytes counted in a bucket table (.simd.nvfp4_search.count_at_most)
    if fast:
        breakpoint_counts = counting_table(
            start_breakpoints(recipe, tensor, clamp_low, clamp_high)[1:])
    else:
        breakpoint_counts = counting_table(divisors.astype(np.float32)[:0])
    return divisors, multiply, fast, table, breakpoint_counts


@njit(cache=True, error_model="numpy", inline="always")
def _nv_amax(row, inf_nan):
    """(the largest ``|x|`` of the NVFP4 block ``row`` as float64, whether the block is a
    NaN block: a NaN in it, or an Inf with ``inf_nan``)."""
    amax = 0.0
    bad = False
    for i in range(row.shape[0]):
        a = abs(np.float64(row[i]))
        if a != a or (inf_nan and a == math.inf):
            bad = True
        elif a > amax:
            amax = a
    return amax, bad


@njit(cache=True, error_model="numpy", inline="always")
def _store_nv(row, blk, scale, divisors, multiply, tie, zero_sign, order, scales, packed):
    """Write NVFP4 block ``blk``'s scale byte and the codes of ``row`` at its divisor."""
    scales[blk] = scale
    if scale & 0x7F == 0x7F:  # the NaN byte: zero codes (a NaN divisor of another
        packed[blk, :] = 0  # byte, as 0 x Inf, encodes every |x| / d = NaN as 0)
        return
    encode_block(row, divisors[scale], multiply, tie, zero_sign, order, packed[blk])


@njit(cache=True, error_model="numpy")
def _store_nv_mlx(row, blk, scale, divisors, tensor, tie, zero_sign, order, scales, packed):
    """Write NVFP4 block ``blk`` under recipe ``"mlx"``: its byte, and each element coded
    from float32(float32(|x| / s_b) * E) (:func:`..elements.scaled_element_code`)."""
    scales[blk] = scale
    d = divisors[scale]
    n = row.shape[0]
    for i in range(n // 2):
        low, high = byte_elements(i, order, n)
        packed[blk, i] = (scaled_element_code(row[low], d, tensor, tie, zero_sign)
                          | (scaled_element_code(row[high], d, tensor, tie, zero_sign) << 4))
@njit(parallel=True, cache=True, error_model="numpy")
def quantize_nv_comfy(x, bits, options, scales, packed, hessian):
    """NVFP4 by the ``"comfy"`` recipe (no search): each block by :func:`..comfy.comfy_block`,
    comfy-kitchen's x86 float32 arithmetic with every NaN followed by its bits."""
    tensor = options.tensor_operand
    tensor_bits = np.float32(tensor).view(np.uint32)  # x86 keeps a NaN's payload and sign
    bad_mode = (0 if options.nonfinite == NONFINITE_COMFY
                else 2 if options.nonfinite == NONFINITE_NAN_SCALE else 1)
    tie, zero_sign, order = options.rounding, options.zero_sign, options.nibble_order
    nblocks, n = x.shape
    flat = packed.reshape(-1)
    words = bits.reshape(-1)
    for chunk in prange((nblocks + _CHUNK - 1) // _CHUNK):
        for blk in range(chunk * _CHUNK, min(nblocks, (chunk + 1) * _CHUNK)):
            scales[blk] = comfy_block(words, blk * n, n, tensor, tensor_bits, bad_mode, tie,
                                      zero_sign, order, flat, blk * (n // 2))
    return False


@njit(parallel=True, cache=True, error_model="numpy")
def _quantize_ggml(x, options, scales, packed, nv):
    """The blocks of ``x`` by :func:`..ggml.ggml_block`, packed in the options' order."""
    o = options
    rule = o.nvfp4_recipe if nv else o.scale_rule
    low = o.clamp_low if nv else 0.0
    high = o.clamp_high if nv else 0.0
    zero_block = o.zero_block if nv else o.mx_zero_block
    zero_scale = o.zero_block_scale if nv else float(o.mx_zero_block_scale)
    nblocks, n = x.shape
    for chunk in prange((nblocks + _CHUNK - 1) // _CHUNK):
        codes = np.empty(n, np.int64)
        for blk in range(chunk * _CHUNK, min(nblocks, (chunk + 1) * _CHUNK)):
            scales[blk] = ggml_block(x[blk], nv, rule, o.tensor_operand, low, high, zero_block,
                                     zero_scale, o.nonfinite, o.element_rule, o.e4m3_encode,
                                     o.rounding, o.zero_sign, codes)
            for i in range(n // 2):
                first, second = byte_elements(i, o.nibble_order, n)
                packed[blk, i] = codes[first] | (codes[second] << 4)


@njit(cache=True, error_model="numpy")
def quantize_mx_ggml(x, bits, options, scales, packed, hessian):
    """MXFP4 under a ggml convention (element rule, non-finite policy): scalar code,
    :func:`..ggml.ggml_block` per block (no search: :func:`fp4ref.quantize` refuses one)."""
    _quantize_ggml(x, options, scales, packed, False)


@njit(cache=True, error_model="numpy")
def quantize_nv_ggml(x, bits, options, scales, packed, hessian):
    """NVFP4 under a ggml convention (element rule, non-finite policy, E4M3 encode), as
    :func:`quantize_mx_ggml`; returns False (no division-free path)."""
    _quantize_ggml(x, options, scales, packed, True)
    return False


@njit(parallel=True, cache=True, error_model="numpy")
def quantize_nv_modelopt(x, bits, options, scales, packed, hessian):
    """NVFP4 under ``nonfinite="modelopt"`` (no search): each block by
    :func:`..modelopt.modelopt_block`."""
    o = options
    tensor = o.tensor_operand
    tensor_bits = np.float32(tensor).view(np.uint32)
    nblocks, n = x.shape
    flat, words = packed.reshape(-1), bits.reshape(-1)
    for chunk in prange((nblocks + _CHUNK - 1) // _CHUNK):
        for blk in range(chunk * _CHUNK, min(nblocks, (chunk + 1) * _CHUNK)):
            scales[blk] = modelopt_block(words, blk * n, n, tensor, tensor_bits, o.clamp_low,
                                         o.clamp_high, o.zero_block, o.zero_block_scale,
                                         o.rounding, o.zero_sign, o.nibble_order, flat,
                                         blk * (n // 2))
    return False


@njit(parallel=True, cache=True, error_model="numpy")
def x86_nan_scales(bits, scales):
    """``nonfinite="ieee-x86"`` after an NVFP4 kernel: the NaN byte 0x7F of a block without
    a NaN (a NaN the recipe's arithmetic made) becomes 0xFF, x86's default-NaN sign (its
    codes are already zero). ``bits``: the blocks ``[b, 16]`` as uint32."""
    nblocks, n = bits.shape
    for blk in prange(nblocks):
        if scales[blk] == 0x7F:
            nan = False
            for i in range(n):
                nan |= (bits[blk, i] & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
            if not nan:
                scales[blk] = 0xFF


@njit(parallel=True, cache=True, error_model="numpy")
def overflow_blocks_7f(bits, scales, packed):
    """``nonfinite="compressed-tensors"`` after an MXFP4 kernel: a block whose amax bits
    plus 0x200000 (``round_to_power_2``) reach 0x7F800000 (NaN, Inf, amax >= 1.75 * 2^127)
    gets scale 0x7F and zero codes. ``bits``: the blocks ``[b, 32]`` as uint32."""
    nblocks, n = bits.shape
    for blk in prange(nblocks):
        top = np.uint32(0)
        for i in range(n):
            top = max(top, bits[blk, i] & np.uint32(0x7FFFFFFF))
        if top + np.uint32(0x200000) >= np.uint32(0x7F800000):
            scales[blk] = 0x7F
            packed[blk, :] = 0


@njit(parallel=True, cache=True, error_model="numpy")
def modelopt_nonfinite_blocks(bits, scales, packed):
    """``nonfinite="modelopt"`` after an MXFP4 kernel: a block holding NaN or Inf gets scale
    0x00 and every code 0x8 (ModelOpt 0.47 ``MXFP4QTensor.quantize``: the uint8 cast of
    ``ceil(log2(NaN or Inf)) + 127`` is 0 on x86, and ``cast_fp4`` codes the quotients
    x / NaN and x / Inf, NaN or zeros, 0x8). ``bits``: the blocks ``[b, 32]`` as uint32."""
    nblocks, n = bits.shape
    for blk in prange(nblocks):
        top = np.uint32(0)
        for i in range(n):
            top = max(top, bits[blk, i] & np.uint32(0x7FFFFFFF))
        if top >= np.uint32(0x7F800000):
            scales[blk] = 0x00
            packed[blk, :] = 0x88


@njit(parallel=True, cache=True, error_model="numpy")
def quantize_mx_quirks(x, bits, options, scales, packed, hessian):
    """MXFP4 by a scale rule under AMD Quark's or vLLM's conventions
    (``options.mx_quirks``): per block :func:`..quantize_block.mx_quirk_scale` and
    :func:`..quantize_block.mx_quirk_code`, scalar code (the vector paths of :mod:`.simd`
    know none of them); the stored byte is at least ``options.e8m0_stored_min``."""
    rule, tie, zero_sign = options.scale_rule, options.rounding, options.zero_sign
    nonfinite, element_scale = options.nonfinite, options.mx_element_scale
    zero_block, zero_byte = options.mx_zero_block, options.mx_zero_block_scale
    order, stored_min = options.nibble_order, options.e8m0_stored_min
    nblocks, n = x.shape
    for blk in prange(nblocks):
        row = x[blk]
        scale, mode = mx_quirk_scale(row, rule, zero_block, zero_byte, nonfinite)
        for i in range(n // 2):
            low, high = byte_elements(i, order, n)
            packed[blk, i] = (
                mx_quirk_code(row[low], scale, mode, tie, zero_sign, nonfinite,
                              element_scale)
                | (mx_quirk_code(row[high], scale, mode, tie, zero_sign, nonfinite,
                                 element_scale) << 4))
        scales[blk] = max(scale, stored_min)


@njit(parallel=True, cache=True, error_model="numpy")
def quantize_nv_vllm(x, bits, options, scales, packed, hessian):
    """NVFP4 by vLLM 0.33.0 ``ref_nvfp4_quant`` (recipe ``"vllm"``, the global scale G in
    ``options.tensor_operand``): per block :func:`..quantize_block.vllm_nv_block` and
    :func:`..quantize_block.vllm_nv_code`, scalar code."""
    g, order = options.tensor_operand, options.nibble_order
    nblocks, n = x.shape
    for blk in prange(nblocks):
        row = x[blk]
        scale, output_scale = vllm_nv_block(row, g)
        for i in range(n // 2):
            low, high = byte_elements(i, order, n)
            packed[blk, i] = (vllm_nv_code(row[low], output_scale)
                              | (vllm_nv_code(row[high], output_scale) << 4))
        scales[blk] = scale


#: The CPU kernel of each kind of quantization (:func:`kernel_for` picks one).
@njit(parallel=True, cache=True, error_model="numpy")
def quantize_nv_fouroversix(x, bits, options, scales, packed, hessian):
    """NVFP4 by a four-over-six rule (``options.fouroversix``; the tensor amax in
    ``options.tensor_operand``): :func:`..fouroversix.quantize_block` on each block, the
    codes packed in ``options.nibble_order``. Scalar code."""
    rule, amax, lanes = options.fouroversix, options.tensor_operand, options.sum_lanes
    order = options.nibble_order
    nblocks, n = x.shape
    for blk in prange(nblocks):
        fq6 = np.empty(n, np.float32)
        fq4 = np.empty(n, np.float32)
        codes = np.empty(n, np.int64)
        scales[blk] = fouroversix_block(x[blk], rule, amax, lanes, fq6, fq4, codes)
        for j in range(n // 2):
            low, high = byte_elements(j, order, n)
            packed[blk, j] = codes[low] | (codes[high] << 4)
    return False


KERNELS = {
    "mxfp4-rule": quantize_mx_rule,  # a scale rule: vector code, float32 only
    "mxfp4-rule-block": quantize_mx_rule_block,  # a rule with torchao's, qwantize's or
    # mistral.rs's NaN/Inf coding or a scale-0 divisor (QuantizeOptions.mx_rule_block)
    "mxfp4-search16": quantize_mx_optimal,  # the SSE search in 16 lanes: vector code
    "mxfp4-search": quantize_mx,  # other lane counts, the Hessian search, and every
    # MXFP4 call with the vector code switched off: scalar code
    "nvfp4-rule": quantize_nv_rule,  # a recipe, no search (division-free blocks inside)
    "nvfp4": quantize_nv,  # the searches (division-free blocks inside)
    "nvfp4-comfy": quantize_nv_comfy,  # comfy-kitchen's recipe, NaN bits followed
    "nvfp4-modelopt": quantize_nv_modelopt,  # ModelOpt's NaN/Inf arithmetic
    "mxfp4-ggml": quantize_mx_ggml,  # ggml's element rule / non-finite policy: scalar code
    "nvfp4-ggml": quantize_nv_ggml,  # the same, and ggml's E4M3 encode
    "nvfp4-fouroversix": quantize_nv_fouroversix,  # the four-over-six rules: scalar code
    "mxfp4-quirks": quantize_mx_quirks,  # a rule with Quark's / vLLM's conventions
    "nvfp4-vllm": quantize_nv_vllm,  # vLLM's ref_nvfp4_quant
}


def kernel_for(options) -> str:
    """The key of :data:`KERNELS` that quantizes under ``options``
    (:class:`..options.QuantizeOptions`)."""
    if options.format == "nvfp4" and options.kernel.fouroversix >= 0:
        return "nvfp4-fouroversix"
    if options.ggml:  # ggml's conventions: their own scalar kernels (no vector code)
        return f"{options.format}-ggml"
    if options.format == "nvfp4":
        if options.profile.nvfp4_recipe == "comfy" and not options.optimal:
            return "nvfp4-comfy"
        if options.profile.nonfinite == "modelopt" and not options.optimal:
            return "nvfp4-modelopt"
        if options.kernel.nvfp4_recipe == RECIPE_VLLM:
            return "nvfp4-vllm"
        return "nvfp4" if options.optimal else "nvfp4-rule"
    if options.mx_rule_block:
        return "mxfp4-rule-block"
    if options.kernel.mx_quirks and not options.optimal:
        return "mxfp4-quirks"
    if not options.kernel.vector_code:  # the switch of .simd: scalar code only
        return "mxfp4-search"
    if options.profile.zero_sign == "quotient":  # not in the vector code: scalar code
        return "mxfp4-search"
    if options.profile.zero_sign == "not-positive":  # nor this one (ModelOpt MXFP4QTensor)
        return "mxfp4-search"
    if not options.optimal:
        return "mxfp4-rule"
    if options.scale_rule == "optimal" and options.profile.sum_lanes == LANES:
        return "mxfp4-search16"
    return "mxfp4-search"
