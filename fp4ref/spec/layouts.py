"""Scale layouts: where scale (r, c) of an ``[R, C]`` scale matrix is stored.

Written literally from the offset formulas of ``spec/layouts.md``. ``cdiv(a, b)`` is the
ceiling of ``a / b``; ``r`` is the row (output feature or token), ``c`` the scale column.

``"linear"``: ``[R, C]`` row-major, what checkpoints and mistral.rs store.
``"128x4"``: cuBLAS / CUTLASS block-scaled MMA ("SWIZZLE_32_4_4"); rows padded to 128,
columns to 4, padding zero.
``"8x4"``: flashinfer / TensorRT-LLM ``layout_8x4``; rows padded to 8, columns to 4.
"""

from __future__ import annotations

from collections.abc import Sequence

LAYOUTS = ("linear", "128x4", "8x4")


def cdiv(a: int, b: int) -> int:
    """The ceiling of ``a / b`` for non-negative ``a`` and positive ``b``."""
    return (a + b - 1) // b


def padded_shape(rows: int, cols: int, layout: str) -> tuple[int, int]:
    """``(Rpad, Cpad)``: the stored matrix of ``layout`` for ``rows`` x ``cols`` scales."""
    if layout == "linear":
        return rows, cols
    if layout == "128x4":
        return cdiv(rows, 128) * 128, cdiv(cols, 4) * 4
    if layout == "8x4":
        return cdiv(rows, 8) * 8, cdiv(cols, 4) * 4
    raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}")


def offset(r: int, c: int, cols: int, layout: str) -> int:
    """Byte offset of scale ``(r, c)`` inside one stored matrix of ``cols`` scale columns."""
    if layout == "linear":
        return r * cols + c
    if layout == "128x4":
        # layouts.md, 128x4: t = (r // 128) * cdiv(C, 4) + c // 4
        t = (r // 128) * cdiv(cols, 4) + c // 4
        return t * 512 + (r % 32) * 16 + ((r % 128) // 32) * 4 + c % 4
    if layout == "8x4":
        # layouts.md, 8x4
        return (r // 8) * cdiv(cols, 4) * 32 + (c // 4) * 32 + (r % 8) * 4 + c % 4
    raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}")


def swizzle(scales: Sequence[Sequence[int]], layout: str) -> list[int]:
    """The stored bytes (flat, ``Rpad * Cpad`` of them, padding 0) of one ``[R, C]`` matrix."""
    rows = len(scales)
    cols = len(scales[0]) if rows else 0
    rpad, cpad = padded_shape(rows, cols, layout)
    stored = [0] * (rpad * cpad)
    for r in range(rows):
        for c in range(cols):
            stored[offset(r, c, cols, layout)] = scales[r][c]
    return stored


def unswizzle(stored: Sequence[int], rows: int, cols: int, layout: str) -> list[list[int]]:
    """The ``[rows, cols]`` scales held by the flat stored bytes of one matrix."""
    rpad, cpad = padded_shape(rows, cols, layout)
    if len(stored) != rpad * cpad:
        raise ValueError(f"stored must hold {rpad * cpad} bytes; got {len(stored)}")
    return [[stored[offset(r, c, cols, layout)] for c in range(cols)] for r in range(rows)]
