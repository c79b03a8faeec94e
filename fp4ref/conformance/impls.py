"""Implementations the checker runs: fp4ref's own backends, and a user's ``--impl``.

An implementation is any object with methods (or a module with functions) named after
the suites' operations; each is called as ``operation(*inputs, **params)``:

=================  ==========================================================================
operation          signature
=================  ==========================================================================
decode_e2m1        ``(codes: uint8[n]) -> float32[n]``
encode_e2m1        ``(x: float32[n], *, rounding) -> uint8[n]``
decode_e8m0        ``(codes: uint8[n]) -> float32[n]``
decode_e4m3        ``(codes: uint8[n]) -> float32[n]``
encode_e4m3        ``(x: float32[n], *, rounding, saturate) -> uint8[n]``
pack               ``(codes: uint8[r, k], *, order, block_size) -> uint8[r, k/2]``
unpack             ``(packed: uint8[r, k/2], *, order, block_size) -> uint8[r, k]``
dequantize_mxfp4   ``(blocks: uint8[N, K/2], scales: uint8[N, K/32], *, nibble_order, dtype)``
dequantize_nvfp4   ``(blocks, scales: uint8[N, K/16], tensor_scale: float32[], *,
                   nibble_order, dtype)``
swizzle            ``(scales: uint8[R, C], *, layout) -> uint8[Rpad * Cpad]``
unswizzle          ``(stored: uint8[Rpad * Cpad], *, rows, cols, layout) -> uint8[R, C]``
quantize_mxfp4     ``(x: float32[N, K], *, scale_rule, rounding) -> (blocks, scales)``
quantize_nvfp4     ``(x, tensor_scale: float32[], *, tensor_scale_direction) -> (blocks, scales)``
quantize_profile   ``(x, tensor_scale: float32[][, activations], *, format, profile
                   [, scale_rule])
                   -> (blocks, scales)``
dequantize_profile ``(blocks, scales, tensor_scale: float32[], *, format, profile)
                   -> float32[N, K]`` (bytes stored as the profile stores them)
decode_uqff_blob   ``(blob: uint8[n]) -> (blocks, scales[, bias])``
encode_uqff_blob   ``(blocks, scales[, bias]) -> uint8[n]``
read_uqff_layer    ``(file: uint8[n], *, layer) -> (blocks, scales[, bias])``
=================  ==========================================================================

Operations given malformed bytes (UQFF cases with an ``error``) must raise ``ValueError``.
Dequantize results are arrays of ``dtype`` (``"float32"``, ``"bfloat16"`` as
``ml_dtypes.bfloat16``, ``"float16"``) or their bits as uint32/uint16. An operation that
cannot honour a parameter raises ``NotImplementedError``: the case is skipped, not failed.
Missing operations skip their suites. The manifest of the vectors lists every suite's
operation and signature (``fp4ref conformance check --list``).
"""

from __future__ import annotations

import importlib
import inspect

import numpy as np

from .. import api, layouts
from ..profiles import profiles
from ..quantize import quantize


class Backend:
    """An fp4ref backend (``"python"``, ``"numba"``, ...) seen as an implementation."""

    def __init__(self, backend: str) -> None:
        self.backend = backend

    def decode_e2m1(self, codes):
        return api.decode_e2m1(codes, backend=self.backend)

    def decode_e8m0(self, codes):
        return api.decode_e8m0(codes, backend=self.backend)

    def decode_e4m3(self, codes):
        return api.decode_e4m3(codes, backend=self.backend)

    def encode_e2m1(self, x, *, rounding):
        return api.encode_e2m1(x, rounding, backend=self.backend)

    def encode_e4m3(self, x, *, rounding, saturate):
        return api.encode_e4m3(x, rounding, saturate, backend=self.backend)

    def pack(self, codes, *, order, block_size):
        return api.pack(codes, order, block_size=block_size, backend=self.backend)

    def unpack(self, packed, *, order, block_size):
        return api.unpack(packed, order, block_size=block_size, backend=self.backend)

    def dequantize_mxfp4(self, blocks, scales, *, nibble_order, dtype):
        return api.dequantize(
            blocks,
            scales,
            format="mxfp4",
            nibble_order=nibble_order,
            dtype=dtype,
            backend=self.backend,
        )

    def dequantize_nvfp4(self, blocks, scales, tensor_scale, *, nibble_order, dtype):
        return api.dequantize(
            blocks,
            scales,
            format="nvfp4",
            tensor_scale=tensor_scale[()],
            nibble_order=nibble_order,
            dtype=dtype,
            backend=self.backend,
        )

    def swizzle(self, scales, *, layout):
        return layouts.swizzle(scales, layout, backend=self.backend)

    def unswizzle(self, stored, *, rows, cols, layout):
        return layouts.unswizzle(stored, rows=rows, cols=cols, layout=layout, backend=self.backend)

    def _quantize(self, x, **options):
        q = quantize(x, backend=self.backend, **options)
        return q.blocks, q.scales

    def quantize_mxfp4(self, x, *, scale_rule, rounding):
        return self._quantize(x, format="mxfp4", scale_rule=scale_rule, rounding=rounding)

    def quantize_nvfp4(self, x, tensor_scale, *, tensor_scale_direction):
        profile = profiles()["ocp"].with_options(tensor_scale_direction=tensor_scale_direction)
        return self._quantize(x, format="nvfp4", profile=profile, tensor_scale=tensor_scale[()])

    def quantize_profile(
        self, x, tensor_scale, activations=None, *, format, profile, scale_rule=None
    ):
        has_tensor_scale = format == "nvfp4" and profiles()[profile].tensor_scale
        return self._quantize(
            x,
            format=format,
            profile=profile,
            scale_rule=scale_rule,
            tensor_scale=tensor_scale[()] if has_tensor_scale else None,
            hessian=activations,
        )

    def dequantize_profile(self, blocks, scales, tensor_scale, *, format, profile):
        nvfp4 = format == "nvfp4"
        return api.dequantize(blocks, scales, format=format, profile=profile,
                              tensor_scale=tensor_scale[()] if nvfp4 else None,
                              backend=self.backend)

    def decode_uqff_blob(self, blob):
        from ..io import uqff

        layer = uqff.decode_mxfp4_blob(blob.tobytes())
        return _layer(layer.blocks, layer.scales, layer.bias)

    def encode_uqff_blob(self, blocks, scales, bias=None):
        from ..io import uqff

        return np.frombuffer(uqff.encode_mxfp4_blob(blocks, scales, bias), np.uint8)

    def read_uqff_layer(self, file, *, layer):
        import tempfile

        from ..io import uqff

        with tempfile.TemporaryDirectory() as directory:
            path = f"{directory}/model.uqff"
            with open(path, "wb") as f:
                f.write(file.tobytes())
            shard = uqff.read(path)
            key = int(layer) if shard.generation == 0 else layer
            if key not in shard:
                raise ValueError(f"no layer {layer!r} in the file")
            found = shard[key]
            return _layer(found.blocks, found.scales, getattr(found, "bias", None))


def _layer(blocks, scales, bias):
    return (blocks, scales) if bias is None else (blocks, scales, bias)


class Single:
    """One function standing for one operation."""

    def __init__(self, operation: str, function) -> None:
        setattr(self, operation, function)


def resolve(target: str, operation: str | None = None):
    """The implementation named by ``target`` (``package.module`` or ``package.module:name``).

    A module or an instance is used as it is; a class is instantiated without arguments; a
    function implements ``operation`` (default: the function's own name).
    """
    module_name, _, attribute = target.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError(f"--impl {target!r}: cannot import {module_name!r} ({error})") from None
    for part in filter(None, attribute.split(".")):
        if not hasattr(obj, part):
            raise ValueError(f"--impl {target!r}: {module_name!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    if inspect.isclass(obj):
        return obj()
    if (
        inspect.isfunction(obj)
        or inspect.isbuiltin(obj)
        or (callable(obj) and not inspect.ismodule(obj) and operation)
    ):
        return Single(operation or obj.__name__, obj)
    return obj


def as_array(value) -> np.ndarray:
    """A result as a numpy array (torch tensors through ``.numpy()``)."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
