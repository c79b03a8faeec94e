"""GPU kernels for linear and MoE gather-linear on packed weights, twins of
:mod:`fp4ref.kernels.cpu.ops`.

One thread per output element ``out[p, n]`` (grid-stride): it walks weight row ``n`` of
expert ``experts[p]`` element by element, decoding each code through the block table (copied
into shared memory per thread block), so no dequantized weight is ever stored. The exact
mode calls the njit accumulator of :mod:`..ops_scalar` that the CPU kernel calls, compiled
again as device functions: integer arithmetic, the same bits on both. The blocked mode
multiplies and adds with ``__fmul_rn`` / ``__fadd_rn``, which the compiler never fuses
into an FMA (NVVM contracts ``a * b + c`` by default).

Arguments are trusted: :mod:`fp4ref.ops` checks shapes, dtypes and index ranges first.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float32, int64, uint32
from numba.cuda import config

from ..ops_scalar import ACC_SIZE, ONE_BITS, acc_add_product, acc_clear, acc_round
from ..scalar import element_nibble
from .codec import TABLE_SIZE, _grid

if config.ENABLE_CUDASIM:  # the simulator runs kernels as Python on numpy float32 scalars,
    # whose every multiply and add is one IEEE float32 operation; libdevice is absent there

    def _mul(a, b):
        return float32(a) * float32(b)

    def _add(a, b):
        return float32(a) + float32(b)
else:
    from numba.cuda import libdevice

    _mul, _add = libdevice.fmul_rn, libdevice.fadd_rn


@cuda.jit
def _gather_exact(x, blocks, scales, table, order, block_size, experts, topk, x_per_slot,
                  bias, has_bias, out):
    entries = cuda.shared.array(TABLE_SIZE, uint32)
    for i in range(cuda.threadIdx.x, TABLE_SIZE, cuda.blockDim.x):
        entries[i] = table[i]
    cuda.syncthreads()
    acc = cuda.local.array(ACC_SIZE, int64)
    n_rows = out.shape[1]
    k = x.shape[1]
    for item in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        p, n = item // n_rows, item % n_rows
        e = experts[p]
        r = p if x_per_slot else p // topk
        acc_clear(acc)
        for i in range(k):
            byte, shift = element_nibble(i, order, block_size)
            code = (blocks[e, n, byte] >> shift) & 15
            acc_add_product(acc, x[r, i], entries[int64(scales[e, n, i // block_size]) * 16
                                                  + code])
        if has_bias:
            acc_add_product(acc, bias[e, n], ONE_BITS)
        out[p, n] = acc_round(acc)


@cuda.jit
def _gather_blocked(x, blocks, scales, table, order, block_size, experts, topk, x_per_slot,
                    bias, has_bias, out):
    entries = cuda.shared.array(TABLE_SIZE, float32)
    for i in range(cuda.threadIdx.x, TABLE_SIZE, cuda.blockDim.x):
        entries[i] = table[i]
    cuda.syncthreads()
    n_rows = out.shape[1]
    k = x.shape[1]
    for item in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        p, n = item // n_rows, item % n_rows
        e = experts[p]
        r = p if x_per_slot else p // topk
        y = float32(0.0)
        for start in range(0, k, block_size):
            partial = float32(0.0)
            scale = int64(scales[e, n, start // block_size]) * 16
            for i in range(start, start + block_size):
                byte, shift = element_nibble(i, order, block_size)
                w = entries[scale + ((blocks[e, n, byte] >> shift) & 15)]
                partial = _add(partial, _mul(x[r, i], w))
            y = _add(y, partial)
        if has_bias:
            y = _add(y, bias[e, n])
        out[p, n] = y


def gather_linear(x: np.ndarray, blocks: np.ndarray, scales: np.ndarray, table, order: int,
                  block_size: int, experts: np.ndarray, topk: int, x_per_slot: bool,
                  bias: np.ndarray, has_bias: bool, exact: bool) -> np.ndarray:
    """``out[p, n] = bias[e, n] + x'[p] . w[e, n]`` with ``e = experts[p]`` on the GPU.

    Host arrays in (``x`` float32 ``[rows, K]``, ``blocks`` ``[E, N, K/2]``, ``scales``
    ``[E, N, K/B]``, ``bias`` float32 ``[E, N]`` or a dummy when not ``has_bias``), the
    device block table of float32 bits ``[256, 16]``; returns the host result ``[P, N]``:
    uint32 float32 bits when ``exact``, float32 otherwise. ``x'[p]`` is ``x[p]`` if
    ``x_per_slot`` else ``x[p // topk]``.
    """
    out = cuda.device_array((experts.size, blocks.shape[1]),
                            np.uint32 if exact else np.float32)
    kernel = _gather_exact if exact else _gather_blocked
    flat = table.reshape(TABLE_SIZE)
    args = (x.view(np.uint32), flat, bias.view(np.uint32)) if exact else (
        x, flat.view(np.float32), bias)
    n_blocks, threads = _grid(out.size)
    kernel[n_blocks, threads](
        cuda.to_device(args[0]), cuda.to_device(blocks), cuda.to_device(scales), args[1],
        order, block_size, cuda.to_device(experts), topk, x_per_slot,
        cuda.to_device(args[2]), has_bias, out)
    return out.copy_to_host()
