"""CPU kernels for linear and MoE gather-linear on packed weights.

One kernel per accumulation mode serves both operations: a linear layer is a gather over
one expert that every token uses. The work is grouped by expert on the host: ``pairs``
lists the output rows ``p`` (token-slot pairs) sorted by expert, ``starts[u]:starts[u+1]``
the ones using ``experts[u]``. ``prange`` runs over (used expert, weight row) items; each
decodes its weight row once into a buffer of ``K`` values (never the whole weight) and
takes the dot product with every input row routed to it.

Arguments are trusted: :mod:`fp4ref.ops` checks shapes, dtypes and index ranges first.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..ops_scalar import (
    ACC_SIZE,
    ONE_BITS,
    acc_add_product,
    acc_add_split,
    acc_clear,
    acc_round,
    split_f32,
)
from ..scalar import byte_elements


@njit(cache=True)
def decode_row(blocks, scales, table, e, n, order, block_size, row):
    """``row[k]``: the table entry of element ``k`` of weight row ``n`` of expert ``e``."""
    half = block_size // 2
    for j in range(scales.shape[2]):
        entries = table[scales[e, n, j]]
        for i in range(j * half, (j + 1) * half):
            byte = blocks[e, n, i]
            low, high = byte_elements(i, order, block_size)
            row[low] = entries[byte & 0xF]
            row[high] = entries[byte >> 4]


@njit(parallel=True, cache=True)
def split_rows(x, m, e, special):
    """:func:`..ops_scalar.split_f32` of every float32 bit pattern of ``x`` ``[rows, K]``;
    ``special[r]``: row ``r`` holds a NaN or an infinity."""
    for r in prange(x.shape[0]):
        special[r] = False
        for i in range(x.shape[1]):
            m[r, i], e[r, i], s = split_f32(x[r, i])
            if s:
                special[r] = True


@njit(parallel=True, cache=True)
def gather_linear_exact(x, xm, xe, x_special, blocks, scales, table, order, block_size,
                        experts, starts, pairs, topk, x_per_slot, bias, has_bias, out):
    """``out[p, n]``: float32 bits of the correctly rounded ``bias + x' . w[e, n]``.

    ``x`` holds float32 bits ``[rows, K]`` and ``xm, xe, x_special`` their
    :func:`split_rows`; ``table`` is the uint32 block table; ``x'`` is ``x[p]`` if
    ``x_per_slot`` else ``x[p // topk]``. Finite terms take the branch-free
    :func:`..ops_scalar.acc_add_split`; a NaN or infinity, or an exact zero (whose sign
    depends on the signs of zero terms), takes :func:`..ops_scalar.acc_add_product`.
    """
    n_rows = blocks.shape[1]
    k = x.shape[1]
    for item in prange(experts.size * n_rows):
        u, n = item // n_rows, item % n_rows
        e = experts[u]
        row = np.empty(k, np.uint32)
        wm = np.empty(k, np.int64)
        we = np.empty(k, np.int64)
        acc = np.empty(ACC_SIZE, np.int64)
        decode_row(blocks, scales, table, e, n, order, block_size, row)
        special = False
        for i in range(k):
            wm[i], we[i], s = split_f32(row[i])
            special |= s
        bm, be, s = split_f32(bias[e, n] if has_bias else 0)
        special |= s
        for s in range(starts[u], starts[u + 1]):
            p = pairs[s]
            r = p if x_per_slot else p // topk
            bits = -1
            if not (special or x_special[r]):
                acc_clear(acc)
                for i in range(k):
                    acc_add_split(acc, xm[r, i] * wm[i], xe[r, i] + we[i])
                acc_add_split(acc, bm, be)
                bits = acc_round(acc)
                if bits & 0x7FFFFFFF == 0:
                    bits = -1
            if bits < 0:
                acc_clear(acc)
                for i in range(k):
                    acc_add_product(acc, x[r, i], row[i])
                if has_bias:
                    acc_add_product(acc, bias[e, n], ONE_BITS)
                bits = acc_round(acc)
            out[p, n] = bits


#: Input rows the blocked kernel carries through a weight row at once (independent sums,
#: so their float32 additions overlap; each row's own order is unchanged).
TILE = 4


@njit(parallel=True, cache=True)
def gather_linear_blocked(x, blocks, scales, table, order, block_size, experts, starts, pairs,
                          topk, x_per_slot, bias, has_bias, out):
    """``out[p, n]``: ``bias + x' . w[e, n]`` in float32, block by block.

    Per block of ``block_size``: ``s = 0; s += x_k * w_k`` in ``k`` order; ``y += s`` over
    the blocks in order; then ``y += bias``. Every operation is one float32 multiply or add
    (numba does not reassociate or contract without ``fastmath``). ``x``, ``table`` and
    ``bias`` are float32.
    """
    n_rows = blocks.shape[1]
    k = x.shape[1]
    for item in prange(experts.size * n_rows):
        u, n = item // n_rows, item % n_rows
        e = experts[u]
        row = np.empty(k, np.float32)
        rows = np.empty(TILE, np.int64)
        y = np.empty(TILE, np.float32)
        partial = np.empty(TILE, np.float32)
        decode_row(blocks, scales, table, e, n, order, block_size, row)
        for first in range(starts[u], starts[u + 1], TILE):
            count = min(TILE, starts[u + 1] - first)
            for g in range(TILE):  # a short last tile repeats its first row, then drops it
                p = pairs[first + min(g, count - 1)]
                rows[g] = p if x_per_slot else p // topk
                y[g] = 0.0
            for start in range(0, k, block_size):
                for g in range(TILE):
                    partial[g] = 0.0
                for i in range(start, start + block_size):
                    w = row[i]
                    for g in range(TILE):
                        partial[g] += x[rows[g], i] * w
                for g in range(TILE):
                    y[g] += partial[g]
            for g in range(count):
                p = pairs[first + g]
                out[p, n] = y[g] + bias[e, n] if has_bias else y[g]
