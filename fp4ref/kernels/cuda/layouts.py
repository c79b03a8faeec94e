"""GPU scale-layout kernels: ``numba.cuda.jit`` twins of :mod:`fp4ref.kernels.cpu.layouts`,
over the same :func:`..scalar.scale_offset`.

Arguments are trusted: :mod:`fp4ref.layouts` checks shapes before any kernel runs.
"""

from __future__ import annotations

from numba import cuda

from ..scalar import scale_offset
from .codec import _grid


@cuda.jit
def _swizzle(scales, layout, out):
    rows, cols = scales.shape[1], scales.shape[2]
    for i in range(cuda.grid(1), scales.size, cuda.gridsize(1)):
        e, rc = i // (rows * cols), i % (rows * cols)
        r, c = rc // cols, rc % cols
        out[e, scale_offset(r, c, cols, layout)] = scales[e, r, c]


def swizzle(scales, layout: int, out) -> None:
    """Scatter ``scales[e, r, c]`` into ``out[e, :]`` (already zeroed) in ``layout`` order."""
    blocks, threads = _grid(scales.size)
    _swizzle[blocks, threads](scales, layout, out)


@cuda.jit
def _unswizzle(stored, layout, out):
    rows, cols = out.shape[1], out.shape[2]
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        e, rc = i // (rows * cols), i % (rows * cols)
        r, c = rc // cols, rc % cols
        out[e, r, c] = stored[e, scale_offset(r, c, cols, layout)]


def unswizzle(stored, layout: int, out) -> None:
    """Gather ``out[e, r, c]`` from ``stored[e, :]`` held in ``layout`` order."""
    blocks, threads = _grid(out.size)
    _unswizzle[blocks, threads](stored, layout, out)
