"""Kernel launches with little host time: ``launch(kernel, grid, threads, *args)`` does what
``kernel[grid, threads](*args)`` does for fp4ref's kernels (device arrays and scalars in, the
default stream), without numba's per-call dispatch.

On the H200 (2026-12-04) numba's launch of a rule kernel cost about a third of the host time
of an ``fp4ref.quantize`` call, and that host time (0.4-0.5 ms) was longer than the 1 GiB
kernel: the GPU waited on Python. Here the compiled kernel for each argument signature is
found once (numba compiles it on the first call, as usual), and each later call only flattens
its arguments the way numba's ``_Kernel._prepare_args`` does (an array as meminfo, parent,
size, itemsize, data pointer, shape, strides in bytes; scalars as ctypes values) and hands them
to ``cuda.core``'s ``launch``. In the simulator, on a machine with several GPUs, or for an
argument it does not flatten, it is the ordinary call.
"""

from __future__ import annotations

import ctypes
from typing import Any

from numba.cuda import config

#: Whether :func:`launch` takes the short way on a GPU (experiments compare both).
FAST = True

_COMPILED: dict[tuple, tuple] = {}
_ONE_GPU: list[bool] = []  # the compiled kernels kept here belong to the one device
_CONFIGS: dict[tuple, Any] = {}
_STREAM: list = []


def _signature(args: tuple) -> tuple:
    """What selects a compiled kernel: each array's dtype and dimensions, each scalar's type."""
    return tuple((a.dtype.str, a.ndim, a.is_c_contiguous()) if hasattr(a, "gpu_data")
                 else type(a) for a in args)


def _marshal(kind) -> Any:
    """How one argument of numba type ``kind`` becomes launch arguments (as numba's
    ``_prepare_args`` makes them), or None for a kind not handled here."""
    from numba.cuda import types

    if isinstance(kind, types.Array):
        itemsize = kind.dtype.bitwidth // 8

        def array(a):
            return (0, 0, a.size, itemsize, a.device_ctypes_pointer.value or 0, *a.shape,
                    *a.strides)

        return array
    if kind == types.float64:
        return lambda v: (ctypes.c_double(v),)
    if kind == types.float32:
        return lambda v: (ctypes.c_float(v),)
    if kind == types.boolean:
        return lambda v: (bool(v),)
    if isinstance(kind, types.Integer):
        ctype = getattr(ctypes, f"c_{kind}")
        return lambda v: (ctype(v),)
    return None


def _compiled(kernel, args: tuple):
    """(cuda.core kernel, marshal functions) of ``kernel`` for ``args``, or None when an
    argument is of a kind :func:`_marshal` does not handle (then numba launches)."""
    key = (id(kernel), _signature(args))
    entry = _COMPILED.get(key)
    if entry is None:
        compiled = kernel._compile_for_args(*args)
        marshals = tuple(_marshal(kind) for kind in compiled.argument_types)
        usable = all(m is not None for m in marshals) and not compiled.debug
        entry = (kernel, compiled._codelibrary.get_cufunc().kernel, marshals) if usable else (
            kernel, None, None)
        _COMPILED[key] = entry
    return entry[1], entry[2]


def _one_gpu() -> bool:
    """Whether this machine has one GPU: with several, a kept kernel could belong to
    another device's context than the current one, so numba launches."""
    if not _ONE_GPU:
        from numba import cuda

        _ONE_GPU.append(len(cuda.gpus) == 1)
    return _ONE_GPU[0]


def _config(grid: int, threads: int):
    key = (grid, threads)
    if key not in _CONFIGS:
        from cuda.core import LaunchConfig
        from numba.cuda._compat import CUDA_CORE_GE_1_0

        cooperative = {"is_cooperative" if CUDA_CORE_GE_1_0 else "cooperative_launch": False}
        _CONFIGS[key] = LaunchConfig(grid=grid, block=threads, shmem_size=0, **cooperative)
    return _CONFIGS[key]


def launch(kernel, grid: int, threads: int, *args) -> None:
    """``kernel[grid, threads](*args)`` on the default stream, with less host time on a GPU."""
    if not FAST or config.ENABLE_CUDASIM or not _one_gpu():
        kernel[grid, threads](*args)
        return
    function, marshals = _compiled(kernel, args)
    if function is None:
        kernel[grid, threads](*args)
        return
    if not _STREAM:
        from numba.cuda.cudadrv import driver

        _STREAM.append(driver._to_core_stream(0))
    from cuda.core import launch as core_launch

    flat = []
    for marshal, value in zip(marshals, args, strict=True):
        flat.extend(marshal(value))
    core_launch(_STREAM[0], _config(grid, threads), function, *flat)
