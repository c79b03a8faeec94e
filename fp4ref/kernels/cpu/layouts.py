"""CPU scale-layout kernels: ``numba.njit(parallel=True)`` loops over
:func:`..scalar.scale_offset`.

Arguments are trusted: :mod:`fp4ref.layouts` checks shapes before any kernel runs.
"""

from __future__ import annotations

from numba import njit, prange

from ..scalar import scale_offset


@njit(parallel=True, cache=True)
def swizzle(scales, layout, out):
    """Scatter ``scales[e, r, c]`` into ``out[e, :]`` (already zeroed) in ``layout`` order."""
    rows, cols = scales.shape[1], scales.shape[2]
    for er in prange(scales.shape[0] * rows):
        e, r = er // rows, er % rows
        for c in range(cols):
            out[e, scale_offset(r, c, cols, layout)] = scales[e, r, c]


@njit(parallel=True, cache=True)
def unswizzle(stored, layout, out):
    """Gather ``out[e, r, c]`` from ``stored[e, :]`` held in ``layout`` order."""
    rows, cols = out.shape[1], out.shape[2]
    for er in prange(out.shape[0] * rows):
        e, r = er // rows, er % rows
        for c in range(cols):
            out[e, r, c] = stored[e, scale_offset(r, c, cols, layout)]
