"""Scale-layout suites: swizzle and unswizzle in every layout, shapes that need padding.

Expected bytes come from the offset formulas of :mod:`fp4ref.spec.layouts`; the 128x4
map is also checked at generation against NVIDIA's published example offsets.
"""

from __future__ import annotations

import numpy as np

from ...spec import layouts
from ..model import Case, Suite

#: (rows, cols) of the scale matrices: exact tiles, and ragged shapes needing padding.
SHAPES = ((1, 1), (5, 3), (8, 4), (33, 5), (128, 4), (130, 5), (257, 9))
#: The byte unswizzle cases put in padding, which a reader must ignore.
PADDING_FILL = 0xEE

_PINS = {
    "linear": "row-major [R, C] (checkpoints, mistral.rs)",
    "128x4": "cuBLAS/CUTLASS block-scaled 128x4 (SWIZZLE_32_4_4): rows padded to 128, "
    "columns to 4, zero padding",
    "8x4": "flashinfer / TensorRT-LLM layout_8x4: rows padded to 8, columns to 4, zero padding",
}


def _scales(rows: int, cols: int) -> np.ndarray:
    """Distinct non-zero bytes, so a misplaced scale or padding byte shows."""
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    return ((r * cols + c) % 251 + 1).astype(np.uint8)


def _check_published_offsets() -> None:
    # layouts.md: NVIDIA's example for a 128x128 NVFP4 matrix (C = 8 scale columns)
    if layouts.offset(5, 2, 8, "128x4") != 82 or layouts.offset(5, 5, 8, "128x4") != 593:
        raise RuntimeError("the 128x4 oracle disagrees with NVIDIA's published offsets")


def _swizzle_cases() -> list[Case]:
    _check_published_offsets()
    cases = []
    for layout in layouts.LAYOUTS:
        for rows, cols in SHAPES:
            scales = _scales(rows, cols)
            stored = np.array(layouts.swizzle(scales.tolist(), layout), np.uint8)
            cases.append(
                Case(
                    f"{layout}_{rows}x{cols}",
                    f"[{rows}, {cols}] scales stored in {layout}",
                    _PINS[layout],
                    {"scales": scales},
                    {"stored": stored},
                    {"layout": layout},
                )
            )
    return cases


def _unswizzle_cases() -> list[Case]:
    cases = []
    for layout in layouts.LAYOUTS:
        for rows, cols in SHAPES:
            scales = _scales(rows, cols)
            rpad, cpad = layouts.padded_shape(rows, cols, layout)
            stored = np.full(rpad * cpad, PADDING_FILL, np.uint8)
            for r in range(rows):
                for c in range(cols):
                    stored[layouts.offset(r, c, cols, layout)] = scales[r, c]
            back = np.array(layouts.unswizzle(stored.tolist(), rows, cols, layout), np.uint8)
            cases.append(
                Case(
                    f"{layout}_{rows}x{cols}",
                    f"[{rows}, {cols}] scales read back from {layout}, padding 0xEE ignored",
                    _PINS[layout],
                    {"stored": stored},
                    {"scales": back},
                    {"layout": layout, "rows": rows, "cols": cols},
                )
            )
    return cases


SUITES = [
    Suite(
        "layout_swizzle",
        "swizzle",
        "(scales: uint8[R, C], *, layout: str) -> uint8[Rpad * Cpad] (any shape)",
        "scale layouts linear/128x4/8x4 with padding",
        _swizzle_cases,
    ),
    Suite(
        "layout_unswizzle",
        "unswizzle",
        "(stored: uint8[Rpad * Cpad], *, rows: int, cols: int, layout: str) -> uint8[R, C]",
        "read scales back from every layout, padding ignored",
        _unswizzle_cases,
    ),
]
