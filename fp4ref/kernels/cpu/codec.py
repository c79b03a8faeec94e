"""CPU codec kernels: ``numba.njit(parallel=True)`` loops over the scalar functions of
:mod:`..scalar`.

Every kernel trusts its arguments: shapes, dtypes and value ranges are checked by
:mod:`fp4ref.api` before any kernel runs (numba does not check bounds).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..options import (
    DECODE_CT,
    DECODE_EXACT,
    DECODE_FOUROVERSIX,
    DECODE_MODELOPT,
    DECODE_OUTPUT_DTYPE,
    DECODE_SCALE_FIRST,
    E4M3_GGML,
    E4M3_OCP,
    E8M0_BITS,
    E8M0_GGML,
    E8M0_INF,
    E8M0_OCP,
    HIGH_FIRST,
    OUT_FLOAT32,
    SCALE_E8M0,
    SPLIT_HALF,
)
from ..scalar import (
    byte_elements,
    e2m1_decode,
    e2m1_encode,
    e2m1_encode_with,
    e4m3_decode,
    e4m3_encode,
    e4m3_encode_with,
    e8m0_decode,
    output_bits,
    rounded,
)
from ..scale_rules import divide
from .simd.mx_block import FIRST_SCALE, LAST_SCALE, store_fence, store_mx_block


@njit(cache=True)
def mx_element_parts(code, byte, e8m0_mode):
    """(element, scale) values (float64) of E2M1 ``code`` under E8M0 ``byte`` in a decode
    convention.

    ``E8M0_OCP``: 2^(byte - 127), 0xFF NaN (MX v1.0 5.4.1). ``E8M0_BITS``:
    float32_from_bits(byte << 23), so 0x00 is 0.0 and 0xFF is +Inf (mistral.rs's LUT).
    ``E8M0_GGML``: 0xFF is 2^128 (ggml's half scale 2^127 times doubled integers) and code
    0x8 is +0.0 (its doubled-integer table has no -0). ``E8M0_INF``: 0xFF is +Inf (MLX,
    Quark).
    """
    element = e2m1_decode(code)
    scale = e8m0_decode(byte)
    if e8m0_mode == E8M0_BITS and byte == 0:
        scale = 0.0
    elif (e8m0_mode == E8M0_BITS or e8m0_mode == E8M0_INF) and byte == 0xFF:
        scale = math.inf
    elif e8m0_mode == E8M0_GGML:
        if byte == 0xFF:
            scale = math.ldexp(1.0, 128)
        if code == 0x8:
            element = 0.0
    return element, scale


@njit(cache=True)
def nv_element_parts(code, byte, e4m3_mode):
    """(element, block scale) values (float64) of E2M1 ``code`` under E4M3 ``byte``:
    ``E4M3_OCP`` OFP8 v1.0; ``E4M3_GGML`` ggml's UE4M3 (sign bit ignored, 0x7F is 0, 0xFF
    is 480) and code 0x8 +0."""
    if e4m3_mode == E4M3_GGML:
        element = 0.0 if code == 0x8 else e2m1_decode(code)
        if byte == 0x7F:
            return element, 0.0
        return element, e4m3_decode(byte & 0x7F) if byte != 0xFF else 480.0
    return e2m1_decode(code), e4m3_decode(byte)


@njit(cache=True)
def block_value(s, c, scale_format, tensor_scale, out_kind, e8m0_mode, arithmetic,
                e4m3_mode=E4M3_OCP, divisor=1.0):
    """The float32 value element code ``c`` decodes to under scale byte ``s``.

    MXFP4 (E8M0): the exact product rounded once to float32, the scale byte read by
    ``e8m0_mode`` (:func:`mx_element_parts`); under ``DECODE_OUTPUT_DTYPE`` the scale is
    rounded to the output encoding first. NVFP4 (E4M3): ``DECODE_EXACT`` the exact float32
    product ``P * s_block`` times ``tensor_scale`` in float32; ``DECODE_SCALE_FIRST``
    ``P * float32(s_block * tensor_scale)``; ``DECODE_CT`` ``P * float32(s_block /
    tensor_scale)`` (``tensor_scale`` is then compressed-tensors' encode scale G; MXFP4 as
    ``DECODE_OUTPUT_DTYPE``); ``DECODE_MODELOPT`` as ``DECODE_SCALE_FIRST`` with code 0x8
    read as +0; ``DECODE_OUTPUT_DTYPE`` both scales and each
    product rounded to the output encoding (:data:`fp4ref.profiles.DECODE_ARITHMETIC`);
    E4M3 bytes read by ``e4m3_mode`` (:func:`nv_element_parts`). ``DECODE_FOUROVERSIX``
    ``f32(f32(f32(P * s_block) * tensor_scale) / divisor)`` (``tensor_scale`` the stored
    amax A, ``divisor`` the four-over-six rule's M * S).
    """
    if scale_format == SCALE_E8M0:
        element, scale = mx_element_parts(c, s, e8m0_mode)
        if arithmetic == DECODE_OUTPUT_DTYPE or arithmetic == DECODE_CT:
            scale = rounded(scale, out_kind)
        return np.float32(element * scale)
    element, block = nv_element_parts(c, s, e4m3_mode)
    if arithmetic == DECODE_CT:  # compressed-tensors: P * f32(s_b / G), G = tensor_scale
        return np.float32(element * np.float32(divide(block, tensor_scale)))
    if arithmetic == DECODE_FOUROVERSIX:  # fouroversix dequantize: f32(P * s_b) * A / D
        product = np.float32(np.float32(element * block) * np.float32(tensor_scale))
        return np.float32(divide(product, divisor))
    if arithmetic == DECODE_MODELOPT:  # ModelOpt: code 0x8 is +0, then P * f32(s_b * s_t)
        element = 0.0 if c == 0x8 else element
        return np.float32(element * np.float32(block * tensor_scale))
    if arithmetic == DECODE_SCALE_FIRST:
        return np.float32(element * np.float32(block * tensor_scale))
    if arithmetic == DECODE_OUTPUT_DTYPE:
        total = rounded(rounded(tensor_scale, out_kind) * rounded(block, out_kind), out_kind)
        return np.float32(rounded(element * total, out_kind))
    return np.float32(element * block) * tensor_scale


@njit(cache=True)
def fill_block_table(table, scale_format, tensor_scale, out_kind, e8m0_mode=E8M0_OCP,
                     arithmetic=DECODE_EXACT, e4m3_mode=E4M3_OCP, divisor=1.0):
    """``table[s, c]``: output bits of element code ``c`` under scale byte ``s``
    (:func:`block_value`)."""
    for s in range(256):
        for c in range(16):
            value = block_value(s, c, scale_format, tensor_scale, out_kind, e8m0_mode,
                                arithmetic, e4m3_mode, divisor)
            table[s, c] = output_bits(value, out_kind)


@njit(cache=True)
def fill_scalar_table(table, which):
    """``table[b]``: float32 bits of byte ``b`` decoded as E2M1 (0), E8M0 (1) or E4M3 (2)."""
    for b in range(table.shape[0]):
        if which == 0:
            value = e2m1_decode(b)
        elif which == 1:
            value = e8m0_decode(b)
        else:
            value = e4m3_decode(b)
        table[b] = output_bits(np.float32(value), OUT_FLOAT32)


@njit(parallel=True, cache=True)
def lookup(table, indices, out):
    """``out[i] = table[indices[i]]`` over flat arrays."""
    for i in prange(indices.size):
        out[i] = table[indices[i]]


@njit(cache=True)
def fill_pair_table(table, order, pairs):
    """``pairs[s, byte]``: the two outputs of a packed ``byte`` under scale byte ``s``.

    The output that comes first in memory sits in the low half of the (twice as wide)
    entry: the low nibble for ``LOW_FIRST`` and ``SPLIT_HALF`` (whose two elements are 16
    apart), the high nibble for ``HIGH_FIRST``.
    """
    width = 8 * table.itemsize
    first, second = (4, 0) if order == HIGH_FIRST else (0, 4)
    for s in range(256):
        for byte in range(256):
            low = pairs.dtype.type(table[s, (byte >> first) & 0xF])
            high = pairs.dtype.type(table[s, (byte >> second) & 0xF])
            pairs[s, byte] = low | (high << width)


@njit(parallel=True, cache=True)
def dequantize_blocks(blocks, scales, pair_table, order, closed_form, stream, chunks, out,
                      pairs):
    """Decode ``blocks[b, :]`` (packed codes) under ``scales[b]`` into ``out[b, :]``.

    ``blocks`` is ``[nblocks, block_size / 2]``; ``out`` is ``[nblocks, block_size]`` and
    ``pairs`` the same memory viewed with elements twice as wide, so the adjacent-nibble
    orders store a byte's two outputs with one look-up in ``pair_table``
    (:func:`fill_pair_table`) and one store. With ``closed_form`` (an MXFP4 decode to
    float32 or bfloat16 whose E8M0 bytes 2..252 follow :mod:`.simd.mx_block`) those blocks
    are computed instead, and with ``stream`` (``out`` on a cache-line boundary) written
    with streaming stores. The blocks are split into ``chunks`` runs, one thread each, that
    end with :func:`~.simd.mx_block.store_fence`.
    """
    half = blocks.shape[1]
    width = 8 * out.itemsize
    mask = (1 << width) - 1
    for chunk in prange(chunks):
        for b in range(chunk * blocks.shape[0] // chunks, (chunk + 1) * blocks.shape[0] // chunks):
            s = scales[b]
            if closed_form and FIRST_SCALE <= s <= LAST_SCALE:
                store_mx_block(out, b * 2 * half, blocks, b * half, s, order, stream)
                continue
            row = pair_table[s]
            if order == SPLIT_HALF:  # byte i holds elements i and i + 16 (ggml block_mxfp4)
                for i in range(half):
                    pair = row[blocks[b, i]]
                    out[b, i] = pair & mask
                    out[b, i + half] = pair >> width
            else:
                for i in range(half):
                    pairs[b, i] = row[blocks[b, i]]
        if stream:
            store_fence()


@njit(parallel=True, cache=True)
def encode_e2m1(x, tie, out):
    """E2M1 codes of the flat float array ``x``."""
    for i in prange(x.size):
        out[i] = e2m1_encode(x[i], tie)


@njit(parallel=True, cache=True)
def encode_e4m3(x, tie, saturate, out):
    """E4M3 bytes of the flat float array ``x``."""
    for i in prange(x.size):
        out[i] = e4m3_encode(x[i], tie, saturate)


@njit(parallel=True, cache=True)
def encode_e2m1_with(x, bits, tie, zero_sign, nan, out):
    """E2M1 codes of the flat float array ``x`` with a ``zero_sign`` and a ``nan`` choice;
    ``bits`` is the float32 bit pattern of each element (read for NaN), or one 0 for all."""
    for i in prange(x.size):
        out[i] = e2m1_encode_with(x[i], bits[i % bits.size], tie, zero_sign, nan)


@njit(parallel=True, cache=True)
def encode_e4m3_with(x, tie, saturate, nan, out):
    """E4M3 bytes of the flat float array ``x`` with the NaN byte by ``nan``."""
    for i in prange(x.size):
        out[i] = e4m3_encode_with(x[i], tie, saturate, nan)


@njit(parallel=True, cache=True)
def pack(codes, order, out):
    """Pack ``codes[b, :]`` (one 4-bit code per byte) into ``out[b, :]``, two per byte."""
    block_size = codes.shape[1]
    for b in prange(codes.shape[0]):
        for i in range(out.shape[1]):
            low, high = byte_elements(i, order, block_size)
            out[b, i] = codes[b, low] | (codes[b, high] << 4)


@njit(parallel=True, cache=True)
def unpack(packed, order, out):
    """Unpack ``packed[b, :]`` into ``out[b, :]``, one 4-bit code per byte."""
    block_size = out.shape[1]
    for b in prange(packed.shape[0]):
        for i in range(packed.shape[1]):
            byte = packed[b, i]
            low, high = byte_elements(i, order, block_size)
            out[b, low] = byte & 0xF
            out[b, high] = byte >> 4
