"""Validation at the door: every public entry converts and checks its arguments here,
before any kernel runs. Errors name the argument, what it got and what it needed."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

from . import _device
from .buffers import affordable

#: Output dtypes by name.
OUTPUT_DTYPES = {
    "float32": np.dtype(np.float32),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float16": np.dtype(np.float16),
}

#: Float input dtypes the encoders take; float16 and bfloat16 widen exactly to float32.
FLOAT_INPUTS = ("float16", "bfloat16", "float32", "float64")


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else ``ValueError`` naming ``name``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}; got {value!r}")
    return value


def integer(name: str, value: Any, minimum: int | None = None) -> int:
    """``value`` as an int (Python or numpy integers; not bools, floats or strings), at
    least ``minimum``; else an error naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {value!r}")
    number = int(value)
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {number}")
    return number


def host_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a C-contiguous, native-byte-order numpy array."""
    if isinstance(value, (list, tuple)) or np.isscalar(value):
        array = np.asarray(value)
    elif hasattr(value, "__array__") or isinstance(value, np.ndarray):
        try:
            array = np.asarray(value)
        except (TypeError, RuntimeError) as error:
            raise TypeError(f"{name} must be convertible to a numpy array; {error}") from None
    else:
        raise TypeError(f"{name} must be an array; got {type(value).__name__}")
    if not array.dtype.isnative or not array.flags.c_contiguous:  # a copy: affordable?
        affordable(name, array.shape, array.dtype, "a contiguous, native-byte-order copy",
                   "; pass a smaller or contiguous array (a broadcast view is copied whole)")
    if not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    return array if array.flags.c_contiguous else np.ascontiguousarray(array)


def byte_array(name: str, value: Any, accepted_views: tuple[np.dtype, ...] = ()) -> np.ndarray:
    """``value`` as a uint8 array; arrays of a dtype in ``accepted_views`` give their bytes.

    A device array stays on the device (as a numba device array).
    """
    if _device.is_device(value):
        array = _device.checked(name, value, (np.dtype(np.uint8), *accepted_views))
        return array.view(np.uint8)
    array = host_array(name, value)
    if array.dtype in accepted_views:
        return array.view(np.uint8)
    if array.dtype != np.uint8:
        extra = "".join(f" or {d.name}" for d in accepted_views)
        raise TypeError(f"{name} must be a uint8 array{extra}; got dtype {array.dtype}")
    return array


def codes_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a uint8 array of 4-bit codes (every entry 0..15)."""
    array = byte_array(name, value)
    if _device.is_device(array):
        from .kernels.cuda.codec import largest

        top = largest(array.reshape(-1))
    else:
        top = int(array.max()) if array.size else 0
    if top > 0xF:
        raise ValueError(f"{name} must hold 4-bit codes 0..15 (one per byte); found {top}")
    return array


def float_array(name: str, value: Any) -> np.ndarray:
    """``value`` as float32 or float64 (float16 and bfloat16 are widened exactly).

    A device array stays on the device (a numba device array; float32 or float64).
    """
    if _device.is_device(value):
        return _device.checked(name, value, (np.dtype(np.float32), np.dtype(np.float64)))
    array = host_array(name, value)
    if array.dtype.name not in FLOAT_INPUTS:
        raise TypeError(f"{name} must be a float array of dtype {FLOAT_INPUTS}; got {array.dtype}")
    if array.dtype.itemsize < 4:
        array = array.astype(np.float32)
    return array


def output_dtype(value: Any) -> str:
    """The name of the output dtype ``value`` stands for."""
    for name, dtype in OUTPUT_DTYPES.items():
        if isinstance(value, str) and value == name:
            return name
        if not isinstance(value, str):
            try:
                if np.dtype(value) == dtype:
                    return name
            except TypeError:
                break
    raise ValueError(f"dtype must be one of {tuple(OUTPUT_DTYPES)}; got {value!r}")


def float32_scalar(name: str, value: Any) -> np.float32:
    """``value`` (a number or a one-element array) as a float32, rounded to nearest even."""
    array = np.asarray(value)
    if array.size != 1 or array.dtype.kind not in "fiu":
        raise ValueError(
            f"{name} must be one real number (a float32 scalar); got {array.dtype} of shape "
            f"{array.shape}"
        )
    return np.float32(array.reshape(()))
