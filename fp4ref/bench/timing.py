"""Timing helpers of ``fp4ref bench``: best-of-N wall times, alternating pairs, the
memory-copy rooflines (host and device) and the name of the machine a figure was taken on.

Every figure is the best of ``--repeat`` runs after one warm-up. The host roofline is a
``numba`` parallel copy moving the same number of bytes (read + written) as the operation,
into a reused target or into freshly allocated memory; the device roofline is a
device-to-device copy. A ratio of 1.0 means the operation runs at memory-copy speed.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import numpy as np
from numba import njit, prange

CALLS = 10  # GPU: calls between two events, so host-side launch costs overlap GPU work


@njit(parallel=True, cache=True)
def _parallel_copy(source, target):
    for i in prange(source.size):
        target[i] = source[i]


def best_time(function: Callable[[], object], repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls of ``function``, after one warm-up call."""
    function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def paired_times(function: Callable[[], object], other: Callable[[], object],
                 repeat: int) -> tuple[float, float]:
    """Smallest wall times of ``function`` and of ``other`` over ``repeat`` calls each,
    alternating, after one warm-up call each: on a shared machine both see the same load."""
    function()
    other()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for f, record in ((function, times[0]), (other, times[1])):
            start = time.perf_counter()
            f()
            record.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def copy_function(traffic_bytes: int, fresh: bool = False) -> Callable[[], object]:
    """A parallel copy reading and writing ``traffic_bytes`` in total: into one reused
    target, or with ``fresh`` into a newly allocated one each call (the roofline of an
    operation that allocates its output, page faults included)."""
    words = max(traffic_bytes // 16, 1)  # half read, half written, 8-byte words
    source = np.ones(words, np.float64)
    target = np.empty_like(source)
    if fresh:
        return lambda: _parallel_copy(source, np.empty_like(source))
    return lambda: _parallel_copy(source, target)


def copy_time(traffic_bytes: int, repeat: int) -> float:
    """Best time of :func:`copy_function` (into a reused target) over ``repeat`` calls."""
    return best_time(copy_function(traffic_bytes), repeat)


#: The columns of :func:`user_calls`' rows.
USER_CALL_COLUMNS = ["call", "ms", "copy target", "copy ms", "ratio to copy", "x the out= call"]


def user_calls(label: str, traffic_bytes: int, repeat: int, into: Callable[[], object],
               allocating: Callable[[], object], into_name: str = "out= reused"
               ) -> list[list[str]]:
    """Table rows for a call that can write into a given ``out=`` or allocate its output,
    each timed alternately with the copy a user would compare it with: ``into`` (outputs
    reused) against a copy into a reused target, ``allocating`` (its previous result
    dropped, as in a loop) against a copy into fresh memory, and ``allocating`` once more
    with :mod:`fp4ref.buffers`' cache off (a first call: every output page is new)."""
    def uncached():
        saved = os.environ.get("FP4REF_BUFFER_CACHE")
        os.environ["FP4REF_BUFFER_CACHE"] = "0"
        try:
            return allocating()
        finally:
            if saved is None:
                del os.environ["FP4REF_BUFFER_CACHE"]
            else:
                os.environ["FP4REF_BUFFER_CACHE"] = saved

    rows, base = [], None
    for name, function, fresh in ((f"{label}, {into_name}", into, False),
                                  (f"{label}, allocating", allocating, True),
                                  (f"{label}, allocating, cache off", uncached, True)):
        seconds, roof = paired_times(function, copy_function(traffic_bytes, fresh), repeat)
        base = base or seconds
        rows.append([name, f"{seconds * 1e3:.1f}", "fresh" if fresh else "reused",
                     f"{roof * 1e3:.1f}", f"{roof / seconds:.2f}", f"{seconds / base:.2f}"])
    return rows


def machine() -> str:
    """One line naming the machine a figure was measured on."""
    from numba import get_num_threads

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"numba {get_num_threads()} threads, numpy {np.__version__}")


def gpu_time(function: Callable[[], object], repeat: int) -> float:
    """Seconds per call of ``function`` on the GPU: the best of ``repeat`` CUDA-event
    timings of ``CALLS`` back-to-back calls, after a warm-up call."""
    from numba import cuda

    function()
    cuda.synchronize()
    best = float("inf")
    for _ in range(repeat):
        start, end = cuda.event(), cuda.event()
        start.record()
        for _ in range(CALLS):
            function()
        end.record()
        end.synchronize()
        best = min(best, start.elapsed_time(end) / 1e3 / CALLS)
    return best


def device_copy_time(traffic_bytes: int, repeat: int) -> float:
    """Seconds of a device-to-device copy moving ``traffic_bytes`` (read + written)."""
    from numba import cuda

    source = cuda.device_array(traffic_bytes // 2, np.uint8)
    target = cuda.device_array(traffic_bytes // 2, np.uint8)
    return gpu_time(lambda: target.copy_to_device(source), repeat)


def device_name() -> str:
    """The current CUDA device's name and multiprocessor count."""
    from numba import cuda

    device = cuda.get_current_device()
    name = device.name.decode() if isinstance(device.name, bytes) else device.name
    return f"{name}, {device.MULTIPROCESSOR_COUNT} SMs"
