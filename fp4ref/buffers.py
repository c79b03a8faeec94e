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
handed out again, on the device it was allocated on, once its arrays are gone, for work
queued after theirs on the same stream (fp4ref's kernels all run on the default stream);
work of the caller's own on another stream that still reads an array must be finished
before the array is dropped. The simulator allocates anew each time.
"""

from __future__ import annotations

import math
import os
import weakref
from typing import Any

import numpy as np

#: Outputs at least this large come from the cache.
CACHED_BYTES = 4 << 20
#: Their memory starts on, and is rounded up to, this boundary (a huge page).
HUGE_PAGE = 2 << 20
LINE_BYTES = 64  # a cache line: the CPU kernels stream whole lines
_PAGE = 4096

# (device, buffer) of the buffers nothing refers to any more, the oldest first: numpy
# uint8 arrays (device None) and numba uint8 device arrays (device: its id)
_idle: list[tuple[int | None, Any]] = []
_device_idle: list[tuple[int | None, Any]] = []


def memory_bytes() -> int:
    """This machine's physical memory in bytes (0 if the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


def affordable(name: str, shape: tuple[int, ...], dtype: Any, what: str,
               hint: str = "") -> None:
    """``ValueError`` naming ``name`` if ``what`` (an array of ``shape`` and ``dtype`` about
    to be allocated) needs more bytes than this machine has, instead of a ``MemoryError``
    from deep inside numpy."""
    nbytes = math.prod(int(d) for d in shape) * np.dtype(dtype).itemsize
    memory = memory_bytes()
    if memory and nbytes > memory:
        raise ValueError(
            f"{name}: {what} ({np.dtype(dtype)}, shape {tuple(shape)}) needs "
            f"{nbytes / 2**30:.4g} GiB, more than this machine's {memory / 2**30:.4g} GiB{hint}"
        )


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
    return min((memory_bytes() or 16 << 30) // 8, 2 << 30)


def cached_bytes(device: bool = False) -> int:
    """Bytes waiting in the host cache now (``device``: in the device cache)."""
    return sum(raw.nbytes for _, raw in list(_device_idle if device else _idle))


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
        weakref.finalize(self, _give_back, _idle, (None, raw)).atexit = False


class _DeviceLease:
    """Owner of one cached device buffer while numba device arrays use it (numba reads the
    memory through ``__cuda_array_interface__`` and keeps this object as the arrays'
    owner)."""

    __slots__ = ("__cuda_array_interface__", "__weakref__")

    def __init__(self, raw, nbytes: int, device: int) -> None:
        self.__cuda_array_interface__ = {
            "data": (int(raw.__cuda_array_interface__["data"][0]), False), "shape": (nbytes,),
            "typestr": "|u1", "version": 3, "strides": None, "stream": None}
        weakref.finalize(self, _give_back, _device_idle, (device, raw)).atexit = False


def _give_back(idle: list, entry: tuple) -> None:
    idle.append(entry)
    limit = cache_limit()
    while sum(raw.nbytes for _, raw in list(idle)) > limit:
        try:
            idle.pop(0)
        except IndexError:  # another thread emptied it
            break


def _take(idle: list, capacity: int, device: int | None = None):
    """The smallest idle buffer of ``device`` holding ``capacity`` bytes and at most twice
    that, or None."""
    fits = [entry for entry in list(idle)
            if entry[0] == device and capacity <= entry[1].nbytes <= 2 * capacity]
    for entry in sorted(fits, key=lambda e: e[1].nbytes):
        try:
            idle.remove(entry)
        except ValueError:  # another thread took it
            continue
        return entry[1]
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
    line; from the cache when it is :data:`CACHED_BYTES` or larger (a ``ValueError``
    naming ``out`` if it needs more memory than this machine has)."""
    dtype = np.dtype(dtype)
    affordable("out", shape, dtype, "the result")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes < CACHED_BYTES:
        raw = np.empty(nbytes + LINE_BYTES, np.uint8)
        start = -raw.ctypes.data % LINE_BYTES
        return raw[start:start + nbytes].view(dtype).reshape(shape)
    capacity = -(-nbytes // HUGE_PAGE) * HUGE_PAGE
    if cache_limit() == 0:
        return _fresh(capacity)[:nbytes].view(dtype).reshape(shape)
    raw = _take(_idle, capacity)
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
    device = cuda.get_current_device().id
    raw = _take(_device_idle, capacity, device)
    if raw is None:
        raw = cuda.device_array(capacity, np.uint8)
    lease = _DeviceLease(raw, nbytes, device)
    return cuda.as_cuda_array(lease).view(dtype).reshape(shape)
