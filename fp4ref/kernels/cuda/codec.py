"""GPU codec kernels: ``numba.cuda.jit`` loops over the scalar functions of :mod:`..scalar`.

Each function here has the name and arguments of its twin in :mod:`fp4ref.kernels.cpu.codec`
and takes numba device arrays; it launches a grid-stride kernel on the default stream. The
scalar functions are the very ``numba.njit`` dispatchers the CPU kernels call, which
numba-cuda compiles a second time as device functions.

Every kernel trusts its arguments: shapes, dtypes and value ranges are checked by
:mod:`fp4ref.api` and :mod:`fp4ref.backends` before any kernel runs.
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float32, uint32, uint64

from ..cpu.codec import (  # noqa: F401 (the CPU's numbering, re-exported)
    E8M0_OCP,
    SCALE_E4M3,
    SCALE_E8M0,
    mx_element_value,
)
from ..scalar import (
    OUT_FLOAT32,
    byte_elements,
    e2m1_decode,
    e2m1_encode,
    e4m3_decode,
    e4m3_encode,
    e8m0_decode,
    element_nibble,
    output_bits,
)

#: Entries of a block table: 256 scale bytes x 16 element codes.
TABLE_SIZE = 256 * 16

#: Output words each thread of the dequantize kernel loads before it stores any.
_UNROLL = 4


def _simulated() -> bool:
    from numba.cuda import config

    return bool(config.ENABLE_CUDASIM)


def _grid(n: int) -> tuple[int, int]:
    """(blocks, threads) for a grid-stride loop over ``n`` items: enough blocks to fill the
    device, and few in the simulator, which runs every thread as a Python thread."""
    if _simulated():
        return max(1, min(2, (n + 31) // 32)), 32
    sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    return max(1, min(8 * sms, (n + 255) // 256)), 256


@cuda.jit
def _fill_block_table(table, scale_format, tensor_scale, out_kind, e8m0_mode):
    for i in range(cuda.grid(1), TABLE_SIZE, cuda.gridsize(1)):
        s, c = i // 16, i % 16
        if scale_format == SCALE_E8M0:
            value = float32(mx_element_value(c, s, e8m0_mode))
        else:
            value = float32(e2m1_decode(c) * e4m3_decode(s)) * tensor_scale
        table[s, c] = output_bits(value, out_kind)


def fill_block_table(table, scale_format: int, tensor_scale: np.float32, out_kind: int,
                     e8m0_mode: int = E8M0_OCP) -> None:
    """``table[s, c]``: output bits of element code ``c`` under scale byte ``s``.

    The same arithmetic as the CPU twin: MXFP4 (E8M0) rounds the exact product once to
    float32, scale bytes decoded by ``e8m0_mode`` (:func:`..cpu.codec.mx_element_value`);
    NVFP4 (E4M3) multiplies the exact float32 product by ``tensor_scale`` in float32.
    """
    blocks, threads = _grid(TABLE_SIZE)
    _fill_block_table[blocks, threads](table, scale_format, np.float32(tensor_scale), out_kind,
                                       e8m0_mode)


@cuda.jit
def _fill_scalar_table(table, which):
    for b in range(cuda.grid(1), table.shape[0], cuda.gridsize(1)):
        if which == 0:
            value = e2m1_decode(b)
        elif which == 1:
            value = e8m0_decode(b)
        else:
            value = e4m3_decode(b)
        table[b] = output_bits(float32(value), OUT_FLOAT32)


def fill_scalar_table(table, which: int) -> None:
    """``table[b]``: float32 bits of byte ``b`` decoded as E2M1 (0), E8M0 (1) or E4M3 (2)."""
    blocks, threads = _grid(table.shape[0])
    _fill_scalar_table[blocks, threads](table, which)


@cuda.jit
def _lookup(table, indices, out):
    for i in range(cuda.grid(1), indices.size, cuda.gridsize(1)):
        out[i] = table[indices[i]]


def lookup(table, indices, out) -> None:
    """``out[i] = table[indices[i]]`` over flat arrays."""
    blocks, threads = _grid(indices.size)
    _lookup[blocks, threads](table, indices, out)


_DEQUANTIZE_KERNELS: dict[tuple[int, int, int], object] = {}


def _dequantize_kernel(order: int, block_size: int, per_word: int):
    """The dequantize kernel for one nibble order, block size and output width, all three
    compile-time constants so that index arithmetic and the inner loops fold away.

    Thread ``t`` writes 64-bit output words ``t, t + stride, ...`` (``per_word`` elements
    each, so a warp stores 256 contiguous bytes); it first loads the packed bytes and scale
    bytes of ``_UNROLL`` words, then looks each code up in the table, which every thread
    block copies once into shared memory.
    """
    key = (order, block_size, per_word)
    if key in _DEQUANTIZE_KERNELS:
        return _DEQUANTIZE_KERNELS[key]
    bits = 64 // per_word
    half = block_size // 2
    first_byte, _ = element_nibble(0, order, block_size)
    last_byte, _ = element_nibble(per_word - 1, order, block_size)
    span = last_byte - first_byte + 1  # packed bytes behind one output word

    @cuda.jit
    def kernel(blocks, scales, table, out):
        rows = cuda.shared.array(TABLE_SIZE, uint32)
        for i in range(cuda.threadIdx.x, TABLE_SIZE, cuda.blockDim.x):
            rows[i] = table[i]
        cuda.syncthreads()
        stride = cuda.gridsize(1)
        packed = cuda.local.array(_UNROLL, uint32)
        scale = cuda.local.array(_UNROLL, uint32)
        for start in range(cuda.grid(1), out.size, _UNROLL * stride):
            for u in range(_UNROLL):
                w = start + u * stride
                if w < out.size:
                    block = (w * per_word) // block_size
                    p = w * per_word - block * block_size
                    byte, _ = element_nibble(p, order, block_size)
                    word = uint32(0)
                    for j in range(span):
                        word |= uint32(blocks[block * half + byte + j]) << (8 * j)
                    packed[u] = word
                    scale[u] = uint32(scales[block]) * 16
            for u in range(_UNROLL):
                w = start + u * stride
                if w < out.size:
                    p = (w * per_word) % block_size
                    base, _ = element_nibble(p, order, block_size)
                    word64 = uint64(0)
                    for k in range(per_word):
                        byte, shift = element_nibble(p + k, order, block_size)
                        code = (packed[u] >> (8 * (byte - base) + shift)) & 15
                        word64 |= uint64(rows[scale[u] + code]) << (bits * k)
                    out[w] = word64

    _DEQUANTIZE_KERNELS[key] = kernel
    return kernel


def dequantize_blocks(blocks, scales, table, order: int, out) -> None:
    """Decode ``blocks[b, :]`` (packed codes) with ``table[scales[b]]`` into ``out[b, :]``.

    ``blocks`` is ``[nblocks, block_size / 2]``, ``out`` is ``[nblocks, block_size]`` of
    uint32 or uint16 output bits starting at an 8-byte aligned address (every row is a
    whole number of 64-bit words: block sizes are multiples of 4).
    """
    block_size = out.shape[1]
    per_word = 8 // out.dtype.itemsize
    words = out.reshape(-1).view(np.uint64)
    kernel = _dequantize_kernel(order, block_size, per_word)
    blocks_, threads = _grid((words.size + _UNROLL - 1) // _UNROLL)
    kernel[blocks_, threads](blocks.reshape(-1), scales, table.reshape(-1), words)


@cuda.jit
def _encode_e2m1(x, tie, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = e2m1_encode(x[i], tie)


def encode_e2m1(x, tie: int, out) -> None:
    """E2M1 codes of the flat float array ``x``."""
    blocks, threads = _grid(x.size)
    _encode_e2m1[blocks, threads](x, tie, out)


@cuda.jit
def _encode_e4m3(x, tie, saturate, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = e4m3_encode(x[i], tie, saturate)


def encode_e4m3(x, tie: int, saturate: bool, out) -> None:
    """E4M3 bytes of the flat float array ``x``."""
    blocks, threads = _grid(x.size)
    _encode_e4m3[blocks, threads](x, tie, saturate, out)


@cuda.jit
def _pack(codes, order, out):
    width = out.shape[1]
    for j in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        b, i = j // width, j % width
        low, high = byte_elements(i, order, codes.shape[1])
        out[b, i] = codes[b, low] | (codes[b, high] << 4)


def pack(codes, order: int, out) -> None:
    """Pack ``codes[b, :]`` (one 4-bit code per byte) into ``out[b, :]``, two per byte."""
    blocks, threads = _grid(out.size)
    _pack[blocks, threads](codes, order, out)


@cuda.jit
def _unpack(packed, order, out):
    width = packed.shape[1]
    for j in range(cuda.grid(1), packed.size, cuda.gridsize(1)):
        b, i = j // width, j % width
        byte = packed[b, i]
        low, high = byte_elements(i, order, out.shape[1])
        out[b, low] = byte & 15
        out[b, high] = byte >> 4


def unpack(packed, order: int, out) -> None:
    """Unpack ``packed[b, :]`` into ``out[b, :]``, one 4-bit code per byte."""
    blocks, threads = _grid(packed.size)
    _unpack[blocks, threads](packed, order, out)


@cuda.jit
def _largest(data, result):
    for i in range(cuda.grid(1), data.size, cuda.gridsize(1)):
        cuda.atomic.max(result, 0, uint32(data[i]))


def largest(data) -> int:
    """The largest byte of the flat uint8 device array ``data`` (0 when it is empty), for
    checking 4-bit codes without copying them to the host."""
    result = cuda.to_device(np.zeros(1, np.uint32))
    if data.size:
        blocks, threads = _grid(data.size)
        _largest[blocks, threads](data, result)
    return int(result.copy_to_host()[0])
