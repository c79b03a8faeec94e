"""Host arrays of other libraries at the front doors: torch CPU tensors in, torch out.

Every public function of fp4ref works on numpy arrays. :func:`front_door` lets it take
torch CPU tensors too: each one is read as a numpy array over the same memory (no copy;
``bfloat16``, ``float8_e8m0fnu``, ``float8_e4m3fn`` and ``float8_e5m2`` as their ml_dtypes
twins, ``float4_e2m1fn_x2`` as its packed bytes), a torch ``dtype=`` is read by name, and
the result comes back as torch tensors when the data argument was one (a torch ``out=``
is written in place and returned). Device arrays (CUDA tensors, CuPy) are left to
:mod:`fp4ref._device`, which already hands results back in their kind. ``torch`` is
imported only once a torch tensor is seen.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import Any

import ml_dtypes
import numpy as np

from . import _device, _progress

#: torch dtypes that numpy lacks: (the torch dtype of the same width read by numpy, the
#: numpy dtype the bytes stand for, or None to keep the carrier's bytes).
_TORCH_VIEWS = {
    "bfloat16": ("int16", np.dtype(ml_dtypes.bfloat16)),
    "float8_e8m0fnu": ("uint8", np.dtype(ml_dtypes.float8_e8m0fnu)),
    "float8_e4m3fn": ("uint8", np.dtype(ml_dtypes.float8_e4m3fn)),
    "float8_e5m2": ("uint8", np.dtype(ml_dtypes.float8_e5m2)),
    "float4_e2m1fn_x2": ("uint8", None),  # two E2M1 codes per byte, first in the low nibble
}

#: Arguments that never decide the kind of the result.
_NOT_DATA = ("out", "tensor_scale", "dtype")


def is_torch(value: Any) -> bool:
    """Whether ``value`` is a torch tensor (on any device)."""
    if type(value).__module__.split(".")[0] != "torch":
        return False
    import torch

    return isinstance(value, torch.Tensor)


def _host_torch(value: Any) -> bool:
    return is_torch(value) and not _device.is_device(value)


def to_numpy(x: Any, name: str) -> tuple[Any, Callable[[Any], Any]]:
    """``x`` as a numpy array if it is a torch CPU tensor, and the function that gives a
    numpy result back in ``x``'s kind (the identity for anything else, left unchanged).

    Raises
    ------
    TypeError
        A torch tensor on a device other than the CPU and CUDA, or of a dtype numpy cannot
        hold; the message names ``name``.
    """
    if not _host_torch(x):
        return x, _same
    import torch

    tensor = x.detach().resolve_conj().resolve_neg()
    if tensor.device.type != "cpu":
        raise TypeError(f"{name} must be a CPU or CUDA tensor; got one on {tensor.device}")
    key = str(tensor.dtype).removeprefix("torch.")
    if key in _TORCH_VIEWS:
        carrier, meaning = _TORCH_VIEWS[key]
        array = tensor.view(getattr(torch, carrier)).numpy()
        return (array if meaning is None else array.view(meaning)), to_torch
    try:
        return tensor.numpy(), to_torch
    except (TypeError, RuntimeError) as error:
        raise TypeError(f"{name}: a torch tensor of dtype {tensor.dtype} cannot be read as a "
                        f"numpy array ({error})") from None


def _same(value: Any) -> Any:
    return value


def to_torch(result: Any) -> Any:
    """A numpy result (or a :class:`fp4ref.QuantizedTensor`, or a tuple of them) as torch
    CPU tensors over the same memory; anything else unchanged."""
    import torch

    if isinstance(result, np.ndarray):
        array = np.ascontiguousarray(result)
        for key, (carrier, meaning) in _TORCH_VIEWS.items():
            if meaning is not None and array.dtype == meaning:
                bits = torch.from_numpy(array.view(np.dtype(carrier)))
                return bits.view(getattr(torch, key))
        return torch.from_numpy(array)
    if isinstance(result, tuple):
        return type(result)(map(to_torch, result))
    if dataclasses.is_dataclass(result) and hasattr(result, "blocks"):
        return dataclasses.replace(result, blocks=to_torch(result.blocks),
                                   scales=to_torch(result.scales))
    return result


def torch_dtype_name(value: Any) -> Any:
    """A torch dtype as its name (``torch.bfloat16`` -> ``"bfloat16"``); else ``value``."""
    if type(value).__module__.split(".")[0] == "torch" and type(value).__name__ == "dtype":
        return str(value).removeprefix("torch.")
    return value


class _HostLayer:
    """A quantized layer whose torch ``blocks`` and ``scales`` are read as numpy; every
    other attribute is the layer's own."""

    def __init__(self, layer: Any, name: str) -> None:
        self._layer = layer
        self.blocks = to_numpy(layer.blocks, f"{name}.blocks")[0]
        self.scales = to_numpy(layer.scales, f"{name}.scales")[0]

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._layer, attribute)


def _is_layer(value: Any) -> bool:
    return all(hasattr(value, a) for a in ("blocks", "scales", "format"))


def _holds_torch(value: Any) -> bool:
    """Whether ``value`` is, or directly holds (a layer, a tuple), a torch CPU tensor."""
    if _is_layer(value):
        return _host_torch(value.blocks) or _host_torch(value.scales)
    if isinstance(value, tuple):
        return any(map(_host_torch, value))
    return _host_torch(value)


def _argument(value: Any, name: str) -> Any:
    """One argument with every torch CPU tensor it holds read as numpy."""
    if name == "dtype":
        return torch_dtype_name(value)
    if not _holds_torch(value):
        return value
    if _is_layer(value):
        return _HostLayer(value, name)
    if isinstance(value, tuple):
        return tuple(to_numpy(v, f"{name}[{i}]")[0] for i, v in enumerate(value))
    return to_numpy(value, name)[0]


def front_door(function: Callable) -> Callable:
    """Decorate a public function so that it takes torch CPU tensors and gives torch back.

    The result is converted with :func:`to_torch` when the first data argument holding an
    array (not ``out``, ``tensor_scale`` or ``dtype``) holds a torch tensor; a torch
    ``out`` is written through its numpy view and returned itself. Each call also starts
    the compile notices of :mod:`fp4ref._progress`.
    """
    names = list(inspect.signature(function).parameters)

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        _progress.install()
        named = [(names[i] if i < len(names) else f"argument {i}", a)
                 for i, a in enumerate(args)]
        named += list(kwargs.items())
        data = [a for n, a in named if n not in _NOT_DATA and a is not None
                and not isinstance(a, (str, bool, int, float))]
        out = kwargs.get("out")
        args = tuple(_argument(a, n) for n, a in named[:len(args)])
        kwargs = {n: _argument(a, n) for n, a in kwargs.items()}
        result = function(*args, **kwargs)
        if _host_torch(out):
            return out
        if data and _holds_torch(data[0]):
            return to_torch(result)
        return result

    return wrapper
