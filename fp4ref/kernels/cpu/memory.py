"""First touch of new host memory, spread over the numba threads (:mod:`fp4ref.buffers`)."""

from __future__ import annotations

from numba import njit, prange


@njit(parallel=True, cache=True)
def touch_pages(raw, page):
    """Write a zero to the first byte of every ``page`` bytes of the uint8 array ``raw``, so
    that the operating system maps (and zeroes) its pages on all threads at once."""
    for i in prange((raw.size + page - 1) // page):
        raw[i * page] = 0
