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
from numba import cuda, float32, int64, uint32, uint64

from ..cpu.codec import block_value
from ..options import DECODE_EXACT, E4M3_OCP, E8M0_OCP, OUT_FLOAT32
from ..scalar import (
    byte_elements,
    e2m1_decode,
    e2m1_encode,
    e2m1_encode_with,
    e4m3_decode,
    e4m3_encode,
    e4m3_encode_with,
    e8m0_decode,
    element_nibble,
    output_bits,
)
from .wide import store4

#: Entries of a block table: 256 scale bytes x 16 element codes.
TABLE_SIZE = 256 * 16

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
def _fill_block_table(table, scale_format, tensor_scale, out_kind, e8m0_mode, arithmetic,
                      e4m3_mode):
    for i in range(cuda.grid(1), TABLE_SIZE, cuda.gridsize(1)):
        s, c = i // 16, i % 16
        value = block_value(s, c, scale_format, tensor_scale, out_kind, e8m0_mode, arithmetic,
                            e4m3_mode)
        table[s, c] = output_bits(value, out_kind)


def fill_block_table(table, scale_format: int, tensor_scale: np.float32, out_kind: int,
                     e8m0_mode: int = E8M0_OCP, arithmetic: int = DECODE_EXACT,
                     e4m3_mode: int = E4M3_OCP) -> None:
    """``table[s, c]``: output bits of element code ``c`` under scale byte ``s``.

    The CPU twin's arithmetic, the same function (:func:`..cpu.codec.block_value`): scale
    bytes read by ``e8m0_mode``, products in the order and precision ``arithmetic`` names.
    """
    blocks, threads = _grid(TABLE_SIZE)
    _fill_block_table[blocks, threads](table, scale_format, np.float32(tensor_scale), out_kind,
                                       e8m0_mode, arithmetic, e4m3_mode)


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


def _dequantize_kernel(order: int, block_size: int, per_slot: int):
    """The dequantize kernel for one nibble order, block size and output width
    (``per_slot`` elements per 32-bit slot: 1 for float32, 2 for 16-bit), all constants.

    Thread ``t`` writes 16-byte chunks ``t, t + stride, ...`` of the output with one wide
    store each (:func:`.wide.store4`), so a warp's store covers 512 contiguous bytes. The
    chunk's elements come from one aligned 64-bit word of packed codes (for every order),
    their values from the block table, which every thread block first copies into shared
    memory. Indices are unsigned (no negative-index wraparound code).
    """
    key = (order, block_size, per_slot)
    if key in _DEQUANTIZE_KERNELS:
        return _DEQUANTIZE_KERNELS[key]
    count = 4 * per_slot  # elements per chunk
    # Every chunk lies in one run of consecutive bytes (for every order), so the bit offset
    # of its j-th code from its first code's byte is the same for all chunks: chunk 0's.
    first_byte, first_shift = element_nibble(0, order, block_size)
    deltas = tuple(8 * (byte - first_byte) + shift for byte, shift in
                   (element_nibble(j, order, block_size) for j in range(count)))
    half, size, eight = uint64(block_size // 2), uint64(block_size), uint64(8)
    sixteen, fifteen = uint32(16), uint32(15)

    @cuda.jit
    def kernel(words, scales, table, out):
        rows = cuda.shared.array(TABLE_SIZE, uint32)
        for r in range(cuda.threadIdx.x, TABLE_SIZE, cuda.blockDim.x):
            rows[r] = table[r]
        cuda.syncthreads()
        for chunk in range(uint64(cuda.grid(1)), uint64(out.size // 4),
                           uint64(cuda.gridsize(1))):
            first = chunk * uint64(count)
            block = first // size
            row = uint32(scales[block]) * sixteen
            byte, shift = element_nibble(int64(first - block * size), order, block_size)
            word = words[(block * half + uint64(byte)) // eight]
            offset = uint32(8 * (byte & 7) + shift - first_shift)  # 0 or more
            slots = cuda.local.array(4, uint32)
            for k in range(4):
                slot = uint32(0)
                for m in range(per_slot):
                    at = offset + uint32(deltas[per_slot * k + m])
                    code = uint32(word >> uint64(at)) & fifteen
                    slot |= rows[row + code] << uint32(16 * m)
                slots[k] = slot
            store4(out, chunk * uint64(4), slots[0], slots[1], slots[2], slots[3])

    _DEQUANTIZE_KERNELS[key] = kernel
    return kernel


def dequantize_blocks(blocks, scales, table, order: int, out) -> None:
    """Decode ``blocks[b, :]`` (packed codes) with ``table[scales[b]]`` into ``out[b, :]``.

    ``blocks`` is ``[nblocks, block_size / 2]`` and starts at an 8-byte aligned address;
    ``out`` is ``[nblocks, block_size]`` of uint32 or uint16 output bits and starts at a
    16-byte aligned address (both hold for every device allocation).
    """
    kernel = _dequantize_kernel(order, out.shape[1], 4 // out.dtype.itemsize)
    words = blocks.reshape(-1).view(np.uint64)
    slots = out.reshape(-1).view(np.uint32)
    grid, threads = _grid(slots.size // 4)
    kernel[grid, threads](words, scales, table.reshape(-1), slots)


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
def _encode_e2m1_with(x, bits, tie, zero_sign, nan, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = e2m1_encode_with(x[i], bits[i % bits.size], tie, zero_sign, nan)


def encode_e2m1_with(x, bits, tie: int, zero_sign: int, nan: int, out) -> None:
    """E2M1 codes of the flat float array ``x`` with a ``zero_sign`` and a ``nan`` choice
    (``bits``: each element's float32 bit pattern, or one 0 for all)."""
    blocks, threads = _grid(x.size)
    _encode_e2m1_with[blocks, threads](x, bits, tie, zero_sign, nan, out)


@cuda.jit
def _encode_e4m3_with(x, tie, saturate, nan, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = e4m3_encode_with(x[i], tie, saturate, nan)


def encode_e4m3_with(x, tie: int, saturate: bool, nan: int, out) -> None:
    """E4M3 bytes of the flat float array ``x`` with the NaN byte by ``nan``."""
    blocks, threads = _grid(x.size)
    _encode_e4m3_with[blocks, threads](x, tie, saturate, nan, out)


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
