"""Arrays on a CUDA device: recognising them, checking them from their metadata (nothing is
copied to the host), and handing results back as the kind of array the caller passed.

A device array is anything with ``__cuda_array_interface__`` (CuPy, torch CUDA tensors,
numba device arrays) or a numba device array of the simulator. Inside fp4ref every device
array is a numba device array: :func:`as_numba` wraps the caller's memory without a copy,
and :func:`returns_like_inputs` turns a numba result back into a CuPy array or a torch
tensor when the caller gave one. ``numba.cuda`` is imported only once a device array is
seen.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np


def is_device(value: Any) -> bool:
    """Whether ``value`` is an array in CUDA device memory."""
    if getattr(value, "__cuda_ndarray__", False):  # numba, real or simulated
        return True
    if type(value).__module__.split(".")[0] == "torch":
        return bool(getattr(value, "is_cuda", False))
    try:
        return hasattr(value, "__cuda_array_interface__")
    except TypeError:  # an interface that exists but rejects this dtype
        return True


def quiet_launches() -> None:
    """Silence numba-cuda's low-occupancy warning ("Grid size N will likely result in GPU
    under-utilization"), which every small fp4ref call would print: fp4ref sizes its grids
    to the data, and a small input is not a mistake. Other warnings stay."""
    warnings.filterwarnings(  # numba may open the message with a terminal highlight code
        "ignore", message=r"(\x1b\[[0-9;]*m)?Grid size \d+ will likely result in GPU "
        r"under-utilization")


def _kind(value: Any) -> str:
    return type(value).__module__.split(".")[0]


_SIMULATED: list[type] = []


def _simulated(array):
    """``array``, a simulator array, with a plain tuple for a shape.

    The simulator's arrays give shapes that refuse negative indices (as kernels do); the
    host-side code of fp4ref indexes shapes as numpy does.
    """
    if not _SIMULATED:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

        class SimulatedArray(FakeCUDAArray):
            shape = property(lambda self: self._ary.shape)

            def reshape(self, *args, **kwargs):
                return SimulatedArray(self._ary.reshape(*args, **kwargs))

            def view(self, *args, **kwargs):
                return SimulatedArray(self._ary.view(*args, **kwargs))

        _SIMULATED.append(SimulatedArray)
    return _SIMULATED[0](array._ary)


def as_numba(name: str, value: Any):
    """The numba device array over the memory of the device array ``value`` (no copy)."""
    from numba import cuda

    if getattr(value, "__cuda_ndarray__", False):
        return _simulated(value) if hasattr(value, "_ary") else value
    if _kind(value) == "torch" and str(value.dtype) == "torch.bfloat16":
        import ml_dtypes
        import torch

        return cuda.as_cuda_array(value.view(torch.int16)).view(ml_dtypes.bfloat16)
    try:
        return cuda.as_cuda_array(value)
    except (TypeError, ValueError, NotImplementedError) as error:
        raise TypeError(f"{name}: the CUDA array interface of {type(value).__name__} "
                        f"cannot be read: {error}") from None


def checked(name: str, value: Any, dtypes: tuple[np.dtype, ...]):
    """``value`` as a numba device array, after checking its dtype and C-contiguity."""
    array = as_numba(name, value)
    if array.dtype not in dtypes:
        names = " or ".join(str(d) for d in dtypes)
        raise TypeError(f"{name} must be a device array of dtype {names}; got {array.dtype}")
    if array.size and not array.is_c_contiguous():
        if not _c_contiguous(array):
            raise ValueError(f"{name} must be C-contiguous on the device; got strides "
                             f"{array.strides} for shape {tuple(array.shape)}")
        array = _with_c_strides(array)
    return array


def _c_contiguous(array) -> bool:
    """C-contiguity as numpy sees it: the strides of length-1 axes do not matter."""
    expected = array.dtype.itemsize
    for length, stride in zip(reversed(array.shape), reversed(array.strides), strict=True):
        if length != 1 and stride != expected:
            return False
        expected *= length
    return True


class _Interface:
    """An array's ``__cuda_array_interface__`` with C strides; keeps the array alive."""

    def __init__(self, array) -> None:
        self.array = array
        self.__cuda_array_interface__ = {**array.__cuda_array_interface__, "strides": None}


def _with_c_strides(array):
    """The numba view of ``array`` (contiguous, but with odd strides on length-1 axes) with
    the C strides numba needs for reshaping."""
    from numba import cuda

    return cuda.as_cuda_array(_Interface(array))


def address(array) -> int:
    """Device address of the first byte of the numba device array ``array``."""
    if hasattr(array, "__cuda_array_interface__"):
        return int(array.__cuda_array_interface__["data"][0])
    return int(array.ctypes.data)  # the simulator's arrays wrap numpy arrays


def overlaps(a, b) -> bool:
    """Whether two numba device arrays share any byte."""
    start_a, start_b = address(a), address(b)
    return start_a < start_b + b.nbytes and start_b < start_a + a.nbytes


def empty(shape: tuple, dtype: np.dtype):
    """A new numba device array (large ones from :func:`fp4ref.buffers.device_empty`'s
    cache)."""
    from . import buffers

    array = buffers.device_empty(shape, dtype)
    return _simulated(array) if hasattr(array, "_ary") else array


def output(name: str, out: Any, shape: tuple, dtype: np.dtype, inputs: tuple):
    """A new numba device array for a result, or ``out`` (a device array) after checking it
    from its metadata: shape, dtype, C-contiguity, 16-byte alignment, no overlap."""
    if out is None:
        return empty(shape, dtype)
    if not is_device(out):
        raise TypeError(f"{name} must be a device array when the inputs are; got "
                        f"{type(out).__name__}")
    array = checked(name, out, (dtype,))
    if tuple(array.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}; got {tuple(array.shape)}")
    if address(array) % 16:  # the kernels write 16 bytes at a time
        raise ValueError(f"{name} must start at a 16-byte aligned device address")
    if any(is_device(a) and overlaps(array, a) for a in inputs):
        raise ValueError(f"{name} must not overlap the inputs")
    return array


def _to_kind(result: Any, like: Any) -> Any:
    """``result`` (a numba device array) as the kind of device array ``like`` is."""
    kind = _kind(like)
    if kind == "torch":
        import torch

        if result.dtype.name == "bfloat16":
            return torch.as_tensor(result.view(np.int16), device=like.device).view(torch.bfloat16)
        return torch.as_tensor(result, device=like.device)
    if kind == "cupy" and result.dtype.name != "bfloat16":  # CuPy has no bfloat16
        import cupy

        return cupy.asarray(result)
    return result


def returns_like_inputs(function: Callable) -> Callable:
    """Decorate a public function so that a device result comes back as the kind of the
    first device array among its arguments (``out=`` itself when one was given)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        if not getattr(result, "__cuda_ndarray__", False):
            return result
        if is_device(kwargs.get("out")):
            return kwargs["out"]
        like = next((a for a in (*args, *kwargs.values()) if is_device(a)), result)
        return _to_kind(result, like)

    return wrapper
