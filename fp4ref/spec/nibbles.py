"""Nibble orders: where element k of a row lives in the packed bytes.

``"low-first"``: byte k // 2; even k in bits 3..0, odd k in bits 7..4 (OCP, torch
``float4_e2m1fn_x2``, gpt-oss, ModelOpt, mistral.rs, ...).
``"high-first"``: byte k // 2; even k in bits 7..4 (ComfyUI ``hi_first``, BFL NVFP4, mold).
``"split-half"``: within each block of ``block_size`` elements, byte j holds element j in
bits 3..0 and element j + block_size / 2 in bits 7..4 (ggml ``block_mxfp4`` with 32,
``block_nvfp4`` sub-blocks with 16).
"""

from __future__ import annotations

from collections.abc import Sequence

NIBBLE_ORDERS = ("low-first", "high-first", "split-half")


def check_order(order: str) -> str:
    """Return ``order`` if it names a nibble order, else raise ``ValueError``."""
    if order not in NIBBLE_ORDERS:
        raise ValueError(f"order must be one of {NIBBLE_ORDERS}; got {order!r}")
    return order


def position(k: int, order: str, block_size: int = 32) -> tuple[int, int]:
    """(byte index, shift) of element ``k``: the element is ``(byte >> shift) & 0xF``."""
    check_order(order)
    if order == "low-first":
        return k // 2, 4 * (k % 2)
    if order == "high-first":
        return k // 2, 4 * (1 - k % 2)
    half = block_size // 2
    block, j = divmod(k, block_size)
    return block * half + j % half, 4 * (j // half)


def pack(codes: Sequence[int], order: str = "low-first", block_size: int = 32) -> list[int]:
    """Pack a row of 4-bit codes (even length) into bytes."""
    packed = [0] * (len(codes) // 2)
    for k, code in enumerate(codes):
        byte, shift = position(k, order, block_size)
        packed[byte] |= code << shift
    return packed


def unpack(packed: Sequence[int], order: str = "low-first", block_size: int = 32) -> list[int]:
    """Unpack a row of bytes into 4-bit codes, two per byte."""
    codes = []
    for k in range(2 * len(packed)):
        byte, shift = position(k, order, block_size)
        codes.append((packed[byte] >> shift) & 0xF)
    return codes
