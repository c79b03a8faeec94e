"""Front doors for scale layouts: ``fp4ref.swizzle`` and ``fp4ref.unswizzle``.

The layouts and their offset formulas are in :mod:`fp4ref.spec.layouts`.
"""

from __future__ import annotations

import operator
from typing import Any

import ml_dtypes
import numpy as np

from . import _checks, arrays, backends
from .spec.layouts import LAYOUTS, padded_shape

#: Scale dtypes taken (and given back) as their bytes.
SCALE_VIEWS = (np.dtype(ml_dtypes.float8_e8m0fnu), np.dtype(ml_dtypes.float8_e4m3fn))


def _scale_bytes(name: str, value: Any) -> tuple[np.ndarray, np.dtype]:
    """``value`` as uint8 bytes, and the dtype to give the result back in."""
    array = _checks.host_array(name, value)
    return _checks.byte_array(name, array, SCALE_VIEWS), array.dtype


def _count(name: str, value: Any) -> int:
    """``value`` as a non-negative int, else an error naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int; got a bool")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int; got {type(value).__name__}") from None
    if number < 0:
        raise ValueError(f"{name} must be >= 0; got {number}")
    return number


@arrays.front_door
def swizzle(scales: Any, layout: str = "128x4", *, backend: str = "auto") -> np.ndarray:
    """Store ``[..., R, C]`` scales in ``layout``'s byte order.

    Parameters
    ----------
    scales : array of uint8 (or float8_e8m0fnu / float8_e4m3fn), shape ``[..., R, C]``
        One scale per row and block column, row-major (the ``"linear"`` layout).
    layout : {"linear", "128x4", "8x4"}
        See :mod:`fp4ref.spec.layouts`.
    backend : {"auto", "python", "numba"}

    Returns
    -------
    numpy.ndarray
        Shape ``[..., Rpad, Cpad]`` and the dtype of ``scales``; each matrix's bytes, read in
        memory order, are in the layout's order, padding zero.
    """
    layout = _checks.choice("layout", layout, LAYOUTS)
    engine = backends.get(backend)
    data, dtype = _scale_bytes("scales", scales)
    if data.ndim < 2:
        raise ValueError(f"scales must have shape [..., R, C]; got shape {data.shape}")
    *batch, rows, cols = data.shape
    rpad, cpad = padded_shape(rows, cols, layout)
    count = int(np.prod(batch, dtype=np.int64))
    stored = engine.swizzle(data.reshape(count, rows, cols), layout)
    return stored.reshape(*batch, rpad, cpad).view(dtype)


@arrays.front_door
def unswizzle(
    stored: Any, *, rows: int, cols: int, layout: str = "128x4", backend: str = "auto"
) -> np.ndarray:
    """The ``[..., rows, cols]`` scales held by ``stored`` in ``layout``'s order.

    Parameters
    ----------
    stored : array of uint8 (or float8_e8m0fnu / float8_e4m3fn)
        Shape ``[..., Rpad, Cpad]`` (what :func:`swizzle` returns) or ``[..., Rpad * Cpad]``
        (torchao ``to_blocked``'s flat form). When both readings fit, the first wins.
    rows, cols : int
        ``R`` and ``C``, the scale matrix before padding.
    layout : {"linear", "128x4", "8x4"}
    backend : {"auto", "python", "numba"}

    Returns
    -------
    numpy.ndarray
        Shape ``[..., rows, cols]`` and the dtype of ``stored``; padding is dropped.
    """
    layout = _checks.choice("layout", layout, LAYOUTS)
    rows, cols = _count("rows", rows), _count("cols", cols)
    engine = backends.get(backend)
    data, dtype = _scale_bytes("stored", stored)
    rpad, cpad = padded_shape(rows, cols, layout)
    if data.ndim >= 2 and data.shape[-2:] == (rpad, cpad):
        batch = data.shape[:-2]
    elif data.ndim >= 1 and data.shape[-1] == rpad * cpad:
        batch = data.shape[:-1]
    else:
        raise ValueError(
            f"stored must have shape [..., {rpad}, {cpad}] or [..., {rpad * cpad}] for "
            f"rows={rows}, cols={cols} in layout {layout!r}; got shape {data.shape}"
        )
    count = int(np.prod(batch, dtype=np.int64))
    scales = engine.unswizzle(data.reshape(count, rpad * cpad), rows, cols, layout)
    return scales.reshape(*batch, rows, cols).view(dtype)
