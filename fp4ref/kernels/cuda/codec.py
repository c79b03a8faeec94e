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
from .launch import launch
from .warp import warp_barrier
from .wide import hinted_load4, hinted_store4, load4, store4

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
                      e4m3_mode, divisor):
    for i in range(cuda.grid(1), TABLE_SIZE, cuda.gridsize(1)):
        s, c = i // 16, i % 16
        value = block_value(s, c, scale_format, tensor_scale, out_kind, e8m0_mode, arithmetic,
                            e4m3_mode, divisor)
        table[s, c] = output_bits(value, out_kind)


def fill_block_table(table, scale_format: int, tensor_scale: np.float32, out_kind: int,
                     e8m0_mode: int = E8M0_OCP, arithmetic: int = DECODE_EXACT,
                     e4m3_mode: int = E4M3_OCP, divisor: float = 1.0) -> None:
    """``table[s, c]``: output bits of element code ``c`` under scale byte ``s``.

    The CPU twin's arithmetic, the same function (:func:`..cpu.codec.block_value`): scale
    bytes read by ``e8m0_mode``, products in the order and precision ``arithmetic`` names
    (``divisor``: the four-over-six decode's M * S).
    """
    blocks, threads = _grid(TABLE_SIZE)
    _fill_block_table[blocks, threads](table, scale_format, np.float32(tensor_scale), out_kind,
                                       e8m0_mode, arithmetic, e4m3_mode, np.float32(divisor))


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


_DEQUANTIZE_KERNELS: dict[tuple, object] = {}

#: How the dequantize kernel is shaped (see :func:`_dequantize_kernel`): "chunk" (a thread
#: loads and stores one chunk a step), "unroll" (``unroll`` chunks a step, every load
#: first), "tile" (a warp stages ``unroll`` tiles of 512 packed bytes and their scales
#: in shared memory, one 16-byte load a lane a tile, then stores the tiles' chunks) or
#: "pipe" ("tile" with the warp's next step loaded into registers while it stores this
#: one; ``loads``: PTX qualifiers of those loads, :func:`.wide.hinted_load4`); the
#: PTX cache qualifiers of its stores (:func:`.wide.hinted_store4`); threads a thread
#: block; thread blocks an SM (below 1: ``-blocks_per_sm`` times as many as fit at once,
#: by the occupancy calculator; 0 as -1); ``registers``: a cap, 0 none. On the H200
#: (2026-12-03, docs/benchmarks.md) "tile" at 256 threads and twice the resident grid
#: ran at 0.83-0.89 of the copy against 0.84-0.85 for "chunk" 256 x 8 in the same run,
#: and at the speed of a kernel making the same loads and stores without the table (0.86-
#: 0.90); "unroll" 4 or 8 ran at 0.77-0.82, and ".cs" stores within the run-to-run spread.
#: A later sweep (2026-12-03 evening, docs/benchmarks.md) chose "pipe" with ".cs" stores
#: in the resident grid: 0.87-0.91 against "tile"'s 0.84-0.88 in the same run.
DEQUANTIZE_SHAPE = {"kind": "pipe", "unroll": 1, "store": ".cs", "threads": 256,
                    "blocks_per_sm": -1, "loads": ""}

#: Packed bytes a warp stages per step in the "tile" shape (one 16-byte load a lane).
TILE_BYTES = 512


def _dequantize_kernel(order: int, block_size: int, per_slot: int, kind: str = "chunk",
                       unroll: int = 1, store: str = "", threads: int = 256,
                       registers: int = 0, loads: str = ""):
    """The dequantize kernel for one nibble order, block size and output width
    (``per_slot`` elements per 32-bit slot: 1 for float32, 2 for 16-bit), all constants.

    The output is cut in 16-byte chunks, each written with one wide store
    (:func:`.wide.store4`), consecutive lanes of a warp writing consecutive chunks (512
    contiguous bytes a store instruction). Every chunk's elements lie in one aligned 64-bit
    word of packed codes (for every order); their values come from the block table, which
    every thread block first copies into shared memory. ``kind`` (see
    :data:`DEQUANTIZE_SHAPE`) says where the words come from: straight from global memory
    per chunk ("chunk", "unroll"), or from a warp's tile of 512 packed bytes staged in shared
    memory ("tile"; the tile's scale bytes too), which a lane loads with one 16-byte load
    per step. Indices are unsigned (no negative-index wraparound code).
    """
    key = (order, block_size, per_slot, kind, unroll, store,
           threads if kind in ("tile", "pipe") else 0, registers, loads)
    jit = cuda.jit(max_registers=registers) if registers else cuda.jit
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
    put = hinted_store4(store) if store else store4
    fetch = hinted_load4(loads) if loads else load4  # the "pipe" shape's 16-byte loads
    tile_elements = 2 * TILE_BYTES  # elements of a tile
    tile_chunks = tile_elements // count
    tile_blocks = tile_elements // block_size
    per_lane = tile_chunks // 32  # chunks a lane stores per tile
    scale_loads = (tile_blocks + 31) // 32  # scale bytes a lane stages per tile
    warps_per_block = max(threads // 32, 1)
    tile_words, scale_slots = TILE_BYTES // 8, 32 * scale_loads
    staged_words, staged_slots = unroll * tile_words, unroll * scale_slots
    held_words, held_slots = 4 * unroll, unroll * scale_loads  # "pipe": a lane's next step

    @cuda.jit(device=True, inline=True)
    def decode(word, offset, row, rows, out, at):
        slots = cuda.local.array(4, uint32)
        for k in range(4):
            slot = uint32(0)
            for m in range(per_slot):
                bit = offset + uint32(deltas[per_slot * k + m])
                code = uint32(word >> uint64(bit)) & fifteen
                slot |= rows[row + code] << uint32(16 * m)
            slots[k] = slot
        put(out, at, slots[0], slots[1], slots[2], slots[3])

    @cuda.jit(device=True, inline=True)
    def one_chunk(chunk, words, scales, rows, out):
        first = chunk * uint64(count)
        block = first // size
        row = uint32(scales[block]) * sixteen
        byte, shift = element_nibble(int64(first - block * size), order, block_size)
        word = words[(block * half + uint64(byte)) // eight]
        offset = uint32(8 * (byte & 7) + shift - first_shift)  # 0 or more
        decode(word, offset, row, rows, out, chunk * uint64(4))

    @cuda.jit(device=True, inline=True)
    def one_chunk_of_quads(chunk, quads, scales, rows, out):
        first = chunk * uint64(count)
        block = first // size
        row = uint32(scales[block]) * sixteen
        byte, shift = element_nibble(int64(first - block * size), order, block_size)
        at = (block * half + uint64(byte)) // eight * uint64(2)
        word = uint64(quads[at]) | (uint64(quads[at + uint64(1)]) << uint64(32))
        offset = uint32(8 * (byte & 7) + shift - first_shift)  # 0 or more
        decode(word, offset, row, rows, out, chunk * uint64(4))

    @cuda.jit(device=True, inline=True)
    def load_table(table):
        rows = cuda.shared.array(TABLE_SIZE, uint32)
        for r in range(cuda.threadIdx.x, TABLE_SIZE, cuda.blockDim.x):
            rows[r] = table[r]
        cuda.syncthreads()
        return rows

    if kind == "chunk":
        @jit
        def kernel(codes, scales, table, out):
            rows = load_table(table)
            for chunk in range(uint64(cuda.grid(1)), uint64(out.size // 4),
                               uint64(cuda.gridsize(1))):
                one_chunk(chunk, codes, scales, rows, out)

    elif kind == "unroll":
        @jit
        def kernel(codes, scales, table, out):
            rows = load_table(table)
            chunks = uint64(out.size // 4)
            stride = uint64(cuda.gridsize(1))
            chunk = uint64(cuda.grid(1))
            loaded = cuda.local.array(unroll, uint64)
            bases = cuda.local.array(unroll, uint32)
            while chunk + uint64(unroll - 1) * stride < chunks:
                for u in range(unroll):  # every load first
                    first = (chunk + uint64(u) * stride) * uint64(count)
                    block = first // size
                    byte, shift = element_nibble(int64(first - block * size), order,
                                                 block_size)
                    loaded[u] = codes[(block * half + uint64(byte)) // eight]
                    bases[u] = ((uint32(scales[block]) * sixteen) << uint32(8)
                                | uint32(8 * (byte & 7) + shift - first_shift))
                for u in range(unroll):
                    decode(loaded[u], bases[u] & uint32(255), bases[u] >> uint32(8), rows, out,
                           (chunk + uint64(u) * stride) * uint64(4))
                chunk += stride * uint64(unroll)
            while chunk < chunks:
                one_chunk(chunk, codes, scales, rows, out)
                chunk += stride

    elif kind == "pipe":  # "tile", with the next step's loads in flight during the stores
        @jit
        def kernel(codes, scales, table, out):
            rows = load_table(table)
            lane = uint32(cuda.threadIdx.x % 32)
            warp = uint32(cuda.threadIdx.x // 32)
            staged = cuda.shared.array((warps_per_block, staged_words), uint64)
            staged_scales = cuda.shared.array((warps_per_block, staged_slots), uint32)
            held = cuda.local.array(held_words, uint32)  # the next step's 16 bytes a tile
            held_scales = cuda.local.array(held_slots, uint32)
            chunks = uint64(out.size // 4)
            steps = chunks // uint64(unroll * tile_chunks)
            warps = uint64(cuda.gridsize(1) // 32)
            step = uint64(cuda.grid(1) // 32)
            if step < steps:  # the first step's loads
                for u in range(unroll):
                    a, b, c, d = fetch(codes, ((step * uint64(unroll) + uint64(u))
                                               * uint64(32) + uint64(lane)) * uint64(4))
                    held[4 * u], held[4 * u + 1], held[4 * u + 2], held[4 * u + 3] = a, b, c, d
                for j in range(unroll * scale_loads):
                    t = uint32(32 * j) + lane
                    if t < uint32(unroll * tile_blocks):
                        held_scales[j] = uint32(scales[step * uint64(unroll * tile_blocks)
                                                       + uint64(t)])
            while step < steps:
                warp_barrier()  # the previous step's stores have read the staged words
                for u in range(unroll):
                    staged[warp, u * tile_words + 2 * lane] = uint64(held[4 * u]) | (
                        uint64(held[4 * u + 1]) << uint64(32))
                    staged[warp, u * tile_words + 2 * lane + 1] = uint64(held[4 * u + 2]) | (
                        uint64(held[4 * u + 3]) << uint64(32))
                for j in range(unroll * scale_loads):
                    t = uint32(32 * j) + lane
                    if t < uint32(unroll * tile_blocks):
                        staged_scales[warp, t] = held_scales[j] * sixteen
                warp_barrier()
                following = step + warps
                if following < steps:  # in flight while this step decodes and stores
                    for u in range(unroll):
                        a, b, c, d = fetch(codes, ((following * uint64(unroll) + uint64(u))
                                                   * uint64(32) + uint64(lane)) * uint64(4))
                        held[4 * u], held[4 * u + 1] = a, b
                        held[4 * u + 2], held[4 * u + 3] = c, d
                    for j in range(unroll * scale_loads):
                        t = uint32(32 * j) + lane
                        if t < uint32(unroll * tile_blocks):
                            held_scales[j] = uint32(scales[following * uint64(
                                unroll * tile_blocks) + uint64(t)])
                first_tile = step * uint64(unroll)
                for k in range(unroll * per_lane):
                    c_in = uint32(32 * k) + lane  # chunk in the step's tiles
                    first = c_in * uint32(count)
                    block = first // uint32(block_size)
                    byte, shift = element_nibble(int64(first - block * uint32(block_size)),
                                                 order, block_size)
                    at = block * uint32(block_size // 2) + uint32(byte)
                    offset = uint32(8 * (byte & 7) + shift - first_shift)
                    decode(staged[warp, at // uint32(8)], offset, staged_scales[warp, block],
                           rows, out,
                           (first_tile * uint64(tile_chunks) + uint64(c_in)) * uint64(4))
                step = following
            for chunk in range(steps * uint64(unroll * tile_chunks) + uint64(cuda.grid(1)),
                               chunks, uint64(cuda.gridsize(1))):
                one_chunk_of_quads(chunk, codes, scales, rows, out)

    else:  # "tile": a warp stages `unroll` consecutive tiles a step
        @jit
        def kernel(codes, scales, table, out):
            rows = load_table(table)
            lane = uint32(cuda.threadIdx.x % 32)
            warp = uint32(cuda.threadIdx.x // 32)
            staged = cuda.shared.array((warps_per_block, staged_words), uint64)
            staged_scales = cuda.shared.array((warps_per_block, staged_slots), uint32)
            chunks = uint64(out.size // 4)
            steps = chunks // uint64(unroll * tile_chunks)
            warps = uint64(cuda.gridsize(1) // 32)
            for step in range(uint64(cuda.grid(1) // 32), steps, warps):
                first_tile = step * uint64(unroll)
                for u in range(unroll):  # every load first: 16 bytes a lane a tile
                    a, b, c, d = load4(codes, ((first_tile + uint64(u)) * uint64(32)
                                               + uint64(lane)) * uint64(4))
                    staged[warp, u * tile_words + 2 * lane] = uint64(a) | (uint64(b)
                                                                        << uint64(32))
                    staged[warp, u * tile_words + 2 * lane + 1] = uint64(c) | (uint64(d)
                                                                            << uint64(32))
                for j in range(unroll * scale_loads):
                    t = uint32(32 * j) + lane
                    if t < uint32(unroll * tile_blocks):
                        staged_scales[warp, t] = uint32(
                            scales[first_tile * uint64(tile_blocks) + uint64(t)]) * sixteen
                warp_barrier()
                for k in range(unroll * per_lane):
                    c_in = uint32(32 * k) + lane  # chunk in the step's tiles
                    first = c_in * uint32(count)
                    block = first // uint32(block_size)
                    byte, shift = element_nibble(int64(first - block * uint32(block_size)),
                                                 order, block_size)
                    at = block * uint32(block_size // 2) + uint32(byte)
                    offset = uint32(8 * (byte & 7) + shift - first_shift)
                    decode(staged[warp, at // uint32(8)], offset, staged_scales[warp, block],
                           rows, out,
                           (first_tile * uint64(tile_chunks) + uint64(c_in)) * uint64(4))
                warp_barrier()
            for chunk in range(steps * uint64(unroll * tile_chunks) + uint64(cuda.grid(1)),
                               chunks, uint64(cuda.gridsize(1))):
                one_chunk_of_quads(chunk, codes, scales, rows, out)

    _DEQUANTIZE_KERNELS[key] = kernel
    return kernel


_RESIDENT: dict[tuple, int] = {}
REGISTERS: dict[tuple, int] = {}  # of each kernel resident_grid sized, for the record


def resident_grid(kernel, args, threads: int, key) -> int:
    """Thread blocks of ``threads`` that fit on the device at once for ``kernel`` compiled
    for ``args`` (the CUDA occupancy calculator, through numba's
    ``max_cooperative_grid_blocks``), cached under ``key``."""
    if key not in _RESIDENT:
        compiled = kernel._compile_for_args(*args)
        _RESIDENT[key] = max(1, compiled.max_cooperative_grid_blocks(threads))
        REGISTERS[key] = compiled.regs_per_thread
    return _RESIDENT[key]


def dequantize_blocks(blocks, scales, table, order: int, out, shape=None) -> None:
    """Decode ``blocks[b, :]`` (packed codes) with ``table[scales[b]]`` into ``out[b, :]``.

    ``blocks`` is ``[nblocks, block_size / 2]`` and starts at an 8-byte aligned address;
    ``out`` is ``[nblocks, block_size]`` of uint32 or uint16 output bits and starts at a
    16-byte aligned address (both hold for every device allocation). ``shape`` overrides
    :data:`DEQUANTIZE_SHAPE`. Each view made here costs the call host time (a numba device
    array each), so there are few: a call is often shorter than its host work.
    """
    shape = DEQUANTIZE_SHAPE if shape is None else {**DEQUANTIZE_SHAPE, **shape}
    kind = shape["kind"]
    flat = blocks.reshape(-1)
    if kind in ("tile", "pipe") and address_of(flat) % 16:  # 16-byte loads a lane
        kind = "chunk"
    per_slot = 4 // out.dtype.itemsize
    simulated = _simulated()
    threads = 32 if simulated else shape["threads"]
    registers = 0 if simulated else shape.get("registers", 0)
    store = "" if simulated else shape["store"]
    loads = "" if simulated else shape.get("loads", "")
    kernel = _dequantize_kernel(order, out.shape[1], per_slot, kind, shape["unroll"], store,
                                threads, registers, loads)
    codes = flat.view(np.uint32 if kind in ("tile", "pipe") else np.uint64)
    slots = out.reshape(-1)
    if slots.dtype != np.uint32:
        slots = slots.view(np.uint32)
    args = (codes, scales, flat_table(table), slots)
    chunks = slots.size // 4
    if simulated:
        grid, threads = _grid(chunks)
    else:
        per_sm = shape["blocks_per_sm"]
        if per_sm > 0:
            full = per_sm * cuda.get_current_device().MULTIPROCESSOR_COUNT
        else:  # as many as fit at once (times -per_sm); one count a kernel, whichever GPU
            full = max(1, -per_sm) * resident_grid(
                kernel, args, threads, (order, out.shape[1], per_slot, kind, shape["unroll"],
                                        store, threads, registers, loads))
        grid = max(1, min(full, (chunks + threads - 1) // threads))
    launch(kernel, grid, threads, *args)


_FLAT_TABLES: dict[int, tuple] = {}


def flat_table(table):
    """``table.reshape(-1)``, kept for the tables the backend keeps (a view is host time)."""
    entry = _FLAT_TABLES.get(id(table))
    if entry is None or entry[0] is not table:
        if len(_FLAT_TABLES) > 128:
            _FLAT_TABLES.clear()
        entry = _FLAT_TABLES[id(table)] = (table, table.reshape(-1))
    return entry[1]


def address_of(array) -> int:
    """Device address of the first byte of ``array`` (the simulator's arrays wrap numpy)."""
    if hasattr(array, "__cuda_array_interface__"):
        return int(array.__cuda_array_interface__["data"][0])
    return int(array._ary.ctypes.data) if hasattr(array, "_ary") else int(array.ctypes.data)


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
