"""Output buffers: large outputs reuse memory the process has already touched (host) or
allocated (device).

A fresh numpy array of hundreds of MiB costs more than the decode that fills it: the
operating system maps each page on its first write and zeroes it first (about 16 GB/s on
two cores, while the MXFP4 decode writes about 40 GB/s). :func:`empty` therefore hands out
outputs of :data:`CACHED_BYTES` or more from a small cache of buffers whose arrays the
caller has dropped; only when none fits does it allocate, on 2 MiB boundaries (transparent
huge pages: one fault per 2 MiB) with every page touched by all threads before the kernel
writes (a kernel's streaming stores into unmapped pages run at half speed).

Each cached output's memory belongs to a :class:`_Lease`, the ``base`` of the array
returned and of every view of it; when the last of them goes, a finalizer puts the
memory back. At most :func:`cache_limit` bytes wait in the cache (the oldest leave first);
:func:`release` empties it, and ``FP4REF_BUFFER_CACHE=0`` turns the cache off (outputs
are then plain new arrays, still aligned and touched in parallel).

Device outputs (:func:`device_empty`) are cached alike, in a cache of their own: a fresh
``cuMemAlloc`` of hundreds of MiB takes longer than the kernel that fills it, and numba
frees device memory in batches that wait for the whole device. A cached device buffer is
handed out again once its arrays are gone, for work queued after theirs on the same stream
(fp4ref's kernels all run on the default stream); work of the caller's own on another
stream that still reads an array must be finished before the array is dropped. The
simulator allocates anew each time.
"""

from __future__ import annotations

import os
import weakref
from typing import Any

import numpy as np

from . import _memory

#: Outputs at least this large come from the cache.
CACHED_BYTES = 4 << 20
#: Their memory starts on, and is rounded up to, this boundary (a huge page).
HUGE_PAGE = 2 << 20
LINE_BYTES = 64  # a cache line: the CPU kernels stream whole lines
_PAGE = 4096

_idle: list[np.ndarray] = []  # buffers nothing refers to any more, the oldest first
_device_idle: list = []  # numba device arrays (uint8) likewise


def cache_limit() -> int:
    """Bytes the cache may hold: ``FP4REF_BUFFER_CACHE`` (bytes; 0 turns it off), by default
    an eighth of physical memory, at most 2 GiB."""
    setting = os.environ.get("FP4REF_BUFFER_CACHE")
    if setting is not None:
        try:
            return max(int(setting), 0)
        except ValueError:
            raise ValueError(f"FP4REF_BUFFER_CACHE must be a number of bytes; got "
                             f"{setting!r}") from None
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        physical = 16 << 30
    return min(physical // 8, 2 << 30)


def cached_bytes(device: bool = False) -> int:
    """Bytes waiting in the host cache now (``device``: in the device cache)."""
    return sum(raw.nbytes for raw in list(_device_idle if device else _idle))


def release() -> None:
    """Give every cached buffer, host and device, back to its allocator."""
    _idle.clear()
    _device_idle.clear()


class _Lease:
    """Owner of one cached buffer while arrays use it (numpy reads the memory through
    ``__array_interface__``; the arrays' ``base`` is this object)."""

    __slots__ = ("__array_interface__", "__weakref__")

    def __init__(self, raw: np.ndarray, nbytes: int) -> None:
        self.__array_interface__ = {"data": (raw.ctypes.data, False), "shape": (nbytes,),
                                    "typestr": "|u1", "version": 3}
        weakref.finalize(self, _give_back, raw).atexit = False


class _DeviceLease:
    """Owner of one cached device buffer while numba device arrays use it (numba reads the
    memory through ``__cuda_array_interface__`` and keeps this object as the arrays'
    owner)."""

    __slots__ = ("__cuda_array_interface__", "__weakref__")

    def __init__(self, raw, nbytes: int) -> None:
        self.__cuda_array_interface__ = {
            "data": (int(raw.__cuda_array_interface__["data"][0]), False), "shape": (nbytes,),
            "typestr": "|u1", "version": 3, "strides": None, "stream": None}
        weakref.finalize(self, _give_back, raw, _device_idle).atexit = False


def _give_back(raw, idle: list | None = None) -> None:
    idle = _idle if idle is None else idle
    idle.append(raw)
    limit = cache_limit()
    while sum(r.nbytes for r in list(idle)) > limit:
        try:
            idle.pop(0)
        except IndexError:  # another thread emptied it
            break


def _take(capacity: int, idle: list | None = None):
    """The smallest idle buffer holding ``capacity`` bytes and at most twice that."""
    idle = _idle if idle is None else idle
    fits = [raw for raw in list(idle) if capacity <= raw.nbytes <= 2 * capacity]
    for raw in sorted(fits, key=lambda r: r.nbytes):
        try:
            idle.remove(raw)
        except ValueError:  # another thread took it
            continue
        return raw
    return None


def _fresh(capacity: int) -> np.ndarray:
    """``capacity`` new bytes on a huge-page boundary, every page already mapped."""
    from .kernels.cpu.memory import touch_pages

    raw = np.empty(capacity + HUGE_PAGE, np.uint8)  # numpy asks for huge pages (madvise)
    start = -raw.ctypes.data % HUGE_PAGE
    raw = raw[start:start + capacity]
    touch_pages(raw, _PAGE)
    return raw


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A new C-contiguous array, like ``numpy.empty(shape, dtype)``, starting on a cache
    line; from the cache when it is :data:`CACHED_BYTES` or larger."""
    dtype = np.dtype(dtype)
    _memory.affordable("out", shape, dtype, "the result")  # a clear error, not MemoryError
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < CACHED_BYTES:
        raw = np.empty(nbytes + LINE_BYTES, np.uint8)
        start = -raw.ctypes.data % LINE_BYTES
        return raw[start:start + nbytes].view(dtype).reshape(shape)
    capacity = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    if cache_limit() == 0:
        return _fresh(capacity)[:nbytes].view(dtype).reshape(shape)
    raw = _take(capacity)
    if raw is None:
        raw = _fresh(capacity)
    return np.asarray(_Lease(raw, nbytes)).view(dtype).reshape(shape)


def device_empty(shape: tuple[int, ...], dtype: Any):
    """A new numba device array of ``shape`` and ``dtype``; from the device cache when it is
    :data:`CACHED_BYTES` or larger (on a GPU; the simulator allocates anew)."""
    from numba import cuda

    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < CACHED_BYTES or cuda.config.ENABLE_CUDASIM or cache_limit() == 0:
        return cuda.device_array(shape, dtype)
    capacity = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    raw = _take(capacity, _device_idle)
    if raw is None:
        raw = cuda.device_array(capacity, np.uint8)
    return cuda.as_cuda_array(_DeviceLease(raw, nbytes)).view(dtype).reshape(shape)
