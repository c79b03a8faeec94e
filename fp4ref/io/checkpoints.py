"""Quantized safetensors checkpoints in the conventions of the tools that write them.

- ``gpt-oss`` (MXFP4): ``<key>_blocks`` U8 ``[..., N, K/32, 16]``, ``<key>_scales`` U8
  E8M0 ``[..., N, K/32]``, ``<key>_bias`` (optional).
- ``modelopt`` (NVFP4): ``<key>.weight`` U8 ``[..., N, K/2]``, ``<key>.weight_scale``
  F8_E4M3 ``[..., N, K/16]``, ``<key>.weight_scale_2`` F32 (the decode multiplier),
  ``<key>.input_scale``, ``<key>.bias``.
- ``compressed-tensors`` (NVFP4): ``<key>.weight_packed`` U8, ``<key>.weight_scale``
  F8_E4M3, ``<key>.weight_global_scale`` F32 (the *encode* scale: the decode multiplier is
  its reciprocal), ``<key>.input_global_scale``.
- ``comfyui`` (NVFP4): as ``modelopt``, but nibbles high-first and ``weight_scale`` stored
  128x4-swizzled ``[Rpad, Cpad]``; ``<key>.comfy_quant`` (UTF-8 JSON
  ``{"format": "nvfp4"}`` as U8) marks the layer.

All but ComfyUI/BFL store nibbles low-first and scales linear (``spec/layouts.md``).
Detection reads only names, dtypes and shapes. When more than one convention fits a file
(ModelOpt and ComfyUI look alike when ``N`` is a multiple of 128 and ``K/16`` of 4, and no
``comfy_quant`` marker says which), :func:`read` refuses to guess and asks for
``convention=``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

from .. import api, layouts
from ..errors import FormatError
from ..spec.layouts import padded_shape
from .layer import QuantizedLayer
from .safetensors_file import DTYPES, SafetensorsReader, SafetensorsWriter, TensorInfo, dtype_name

CONVENTIONS = ("gpt-oss", "modelopt", "compressed-tensors", "comfyui")
#: File metadata naming the convention a file was written in (fp4ref's writers set it);
#: detection follows it when the file's layers fit it.
CONVENTION_KEY = "fp4ref.convention"

#: For each convention: (format, weight suffix, scale suffix, nibble order, scale layout).
_RULES = {
    "gpt-oss": ("mxfp4", "_blocks", "_scales", "low-first", "linear"),
    "modelopt": ("nvfp4", ".weight", ".weight_scale", "low-first", "linear"),
    "compressed-tensors": ("nvfp4", ".weight_packed", ".weight_scale", "low-first", "linear"),
    "comfyui": ("nvfp4", ".weight", ".weight_scale", "high-first", "128x4"),
}
#: The per-tensor scale of each NVFP4 convention, and the extras kept beside the weight.
_TENSOR_SCALE = {"modelopt": ".weight_scale_2", "compressed-tensors": ".weight_global_scale",
                 "comfyui": ".weight_scale_2"}
_EXTRAS = {"gpt-oss": (), "modelopt": (".input_scale",),
           "compressed-tensors": (".input_global_scale",),
           "comfyui": (".input_scale", ".comfy_quant")}
_BIAS = {"gpt-oss": "_bias", "modelopt": ".bias", "compressed-tensors": ".bias",
         "comfyui": ".bias"}
_SCALE_DTYPE = {"mxfp4": "U8", "nvfp4": "F8_E4M3"}


@dataclass(frozen=True)
class LayerEntry:
    """Where one layer's tensors are in a file."""

    key: str
    convention: str
    names: dict  # role ("weight", "scales", "tensor_scale", "bias", extra suffix) -> name
    shape: tuple[int, ...]  # decoded weight [..., N, K]

    @property
    def format(self) -> str:
        return _RULES[self.convention][0]


def _fit(convention: str, key: str, tensors: Mapping[str, TensorInfo]) -> LayerEntry | None:
    """The layer ``key`` read under ``convention``, or ``None`` if its tensors do not fit."""
    fmt, weight_suffix, scale_suffix, _, layout = _RULES[convention]
    weight, scales = tensors.get(key + weight_suffix), tensors.get(key + scale_suffix)
    if weight is None or scales is None or weight.dtype != "U8":
        return None
    if scales.dtype != _SCALE_DTYPE[fmt]:
        return None
    block = api.FORMATS[fmt][0]
    if convention == "gpt-oss":
        if len(weight.shape) < 3 or weight.shape[-1] != 16 or scales.shape != weight.shape[:-1]:
            return None
        rows, k = weight.shape[:-2], weight.shape[-2] * 32
    else:
        if len(weight.shape) < 2 or (2 * weight.shape[-1]) % block:
            return None
        rows, k = weight.shape[:-1], 2 * weight.shape[-1]
        linear = (*rows, k // block)
        if layout == "linear" and scales.shape != linear:
            return None
        if layout == "128x4" and scales.shape != (*rows[:-1], *padded_shape(
                rows[-1], k // block, layout)):
            return None
    names = {"weight": key + weight_suffix, "scales": key + scale_suffix}
    if convention in _TENSOR_SCALE:
        tensor_scale = tensors.get(key + _TENSOR_SCALE[convention])
        if tensor_scale is None or tensor_scale.dtype != "F32" or tensor_scale.shape not in (
                (), (1,)):
            return None
        names["tensor_scale"] = key + _TENSOR_SCALE[convention]
    bias = tensors.get(key + _BIAS[convention])
    if bias is not None:
        if bias.shape != rows or bias.dtype not in ("F32", "F16", "BF16"):
            return None
        names["bias"] = bias.name
    for suffix in _EXTRAS[convention]:
        if key + suffix in tensors:
            names[suffix] = key + suffix
    return LayerEntry(key, convention, names, (*rows, k))


def _keys(tensors: Mapping[str, TensorInfo]) -> set[str]:
    """Every layer key some convention's weight suffix suggests."""
    keys = set()
    for name in tensors:
        for _, weight_suffix, *_ in _RULES.values():
            if name.endswith(weight_suffix):
                keys.add(name[: -len(weight_suffix)])
    return keys


def _marked_comfy(key: str, reader: SafetensorsReader) -> bool:
    """Whether ComfyUI's marker (``<key>.comfy_quant`` or file metadata) names ``key``."""
    if key + ".comfy_quant" in reader.tensors:
        return True
    text = reader.metadata.get("_quantization_metadata")
    if text:
        try:
            layers = json.loads(text).get("layers", {})
        except (ValueError, AttributeError, RecursionError):
            raise FormatError(f"{reader.path}: _quantization_metadata is not a JSON object") \
                from None
        return isinstance(layers, dict) and key in layers
    return False


class Checkpoint(Mapping):
    """A quantized safetensors checkpoint: a read-only mapping from layer key to
    :class:`QuantizedLayer`, read when looked up.

    Attributes
    ----------
    convention : str
        One of :data:`CONVENTIONS`.
    entries : dict of str to LayerEntry
        Where each layer's tensors are.
    others : list of str
        Tensors that belong to no quantized layer (norms, embeddings, ...).
    """

    def __init__(self, path: str | os.PathLike, convention: str | None = None) -> None:
        self.path = os.fspath(path)
        self.file = SafetensorsReader(self.path)
        tensors = self.file.tensors
        if convention is not None and convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}; got {convention!r}")
        fits: dict[str, dict[str, LayerEntry]] = {}
        for key in sorted(_keys(tensors)):
            found = {c: e for c in CONVENTIONS if (e := _fit(c, key, tensors)) is not None}
            if "comfyui" in found and _marked_comfy(key, self.file):
                found = {"comfyui": found["comfyui"]}
            if found:
                fits[key] = found
        marked = self.file.metadata.get(CONVENTION_KEY)
        if convention is None and marked in CONVENTIONS and fits and all(
                marked in found for found in fits.values()):
            convention = marked
        self.convention = convention or self._decide(fits)
        self.entries = {key: found[self.convention] for key, found in fits.items()
                        if self.convention in found}
        if not self.entries:
            raise FormatError(f"{self.path}: no layer fits convention {self.convention!r}")
        self._linear: tuple[str, np.ndarray] | None = None
        claimed = {n for e in self.entries.values() for n in e.names.values()}
        self.others = [name for name in tensors if name not in claimed]

    def _decide(self, fits: dict[str, dict[str, LayerEntry]]) -> str:
        if not fits:
            raise FormatError(f"{self.path}: no quantized layer of any convention "
                              f"{CONVENTIONS} found")
        common = set(CONVENTIONS)
        for found in fits.values():
            common &= set(found)
        if not common:
            seen = sorted({c for found in fits.values() for c in found})
            raise FormatError(f"{self.path}: layers follow different conventions {seen}; "
                              f"pass convention= to read one of them")
        if len(common) > 1:
            raise FormatError(
                f"{self.path}: the layers fit more than one convention "
                f"{sorted(common, key=CONVENTIONS.index)} (no comfy_quant marker); refusing "
                f"to guess: pass convention= (--convention on the command line)")
        return common.pop()

    @property
    def format(self) -> str:
        return _RULES[self.convention][0]

    def weight_name(self, key: str) -> str:
        """The name a dequantized checkpoint gives this layer's weight."""
        return key if self.convention == "gpt-oss" else f"{key}.weight"

    def _tensor_scale(self, entry: LayerEntry) -> np.float32 | None:
        if "tensor_scale" not in entry.names:
            return None
        stored = np.float32(self.file.read(entry.names["tensor_scale"]).reshape(()))
        if entry.convention == "compressed-tensors":
            return np.float32(1) / stored  # stored inverted: the encode scale
        return stored

    def layer(self, key: str, rows: tuple[int, int] | None = None) -> QuantizedLayer:
        """Layer ``key``, or only ``rows = (first, stop)`` of its first axis (scales then
        come back linear)."""
        entry = self.entries[key]
        fmt, _, _, order, layout = _RULES[entry.convention]
        blocks = self.file.read(entry.names["weight"], rows)
        if entry.convention == "gpt-oss":
            blocks = blocks.reshape(*blocks.shape[:-2], blocks.shape[-2] * 16)
        if layout == "linear" or rows is None:
            scales = self.file.read(entry.names["scales"], rows)
        else:
            if self._linear is None or self._linear[0] != key:  # one layer's, for its chunks
                self._linear = key, layouts.unswizzle(
                    self.file.read(entry.names["scales"]), rows=entry.shape[-2],
                    cols=entry.shape[-1] // api.FORMATS[fmt][0], layout=layout)
            scales = self._linear[1][rows[0]:rows[1]]
            layout = "linear"
        bias = entry.names.get("bias")
        extras = {s: self.file.read(n) for s, n in entry.names.items() if s.startswith(".")}
        if "tensor_scale" in entry.names:
            extras[_TENSOR_SCALE[entry.convention]] = self.file.read(entry.names["tensor_scale"])
        return QuantizedLayer(
            blocks=blocks, scales=scales.view(np.uint8), format=fmt,
            bias=None if bias is None else self.file.read(bias, rows),
            tensor_scale=self._tensor_scale(entry), nibble_order=order, scale_layout=layout,
            extras=extras)

    def __getitem__(self, key: str) -> QuantizedLayer:
        return self.layer(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)


def read(path: str | os.PathLike, convention: str | None = None) -> Checkpoint:
    """Open a quantized safetensors checkpoint (see :class:`Checkpoint`).

    Raises
    ------
    FormatError
        A malformed file, no quantized layer, or more than one convention fitting when
        ``convention`` is not given.
    """
    return Checkpoint(path, convention)


def _conform(layer: Any, convention: str) -> QuantizedLayer:
    """``layer`` with the nibble order and scale layout ``convention`` stores."""
    fmt, _, _, order, layout = _RULES[convention]
    if layer.format != fmt:
        raise ValueError(f"convention {convention!r} holds {fmt} layers; got {layer.format}")
    blocks = np.ascontiguousarray(layer.blocks)
    scales = np.ascontiguousarray(layer.scales).view(np.uint8)
    have_order = getattr(layer, "nibble_order", "low-first")
    have_layout = getattr(layer, "scale_layout", "linear")
    if have_order != order:
        size = api.FORMATS[fmt][0]  # split-half pairs elements within one block
        blocks = api.pack(api.unpack(blocks, have_order, block_size=size), order,
                          block_size=size)
    k = 2 * blocks.shape[-1]
    cols = k // api.FORMATS[fmt][0]
    if have_layout != layout:
        if have_layout != "linear":
            scales = layouts.unswizzle(scales, rows=blocks.shape[-2], cols=cols,
                                       layout=have_layout)
        if layout != "linear":
            scales = layouts.swizzle(scales, layout)
    return QuantizedLayer(blocks=blocks, scales=scales, format=fmt,
                          bias=getattr(layer, "bias", None),
                          tensor_scale=getattr(layer, "tensor_scale", None),
                          nibble_order=order, scale_layout=layout,
                          extras=dict(getattr(layer, "extras", {}) or {}))


def _tensors(key: str, layer: QuantizedLayer, convention: str) -> dict[str, np.ndarray]:
    """The tensors ``convention`` stores for one conformed layer."""
    fmt, weight_suffix, scale_suffix, _, _ = _RULES[convention]
    blocks, scales = layer.blocks, layer.scales
    if convention == "gpt-oss":
        blocks = blocks.reshape(*blocks.shape[:-1], blocks.shape[-1] // 16, 16)
    out = {key + weight_suffix: blocks,
           key + scale_suffix: scales.view(ml_dtypes.float8_e4m3fn if fmt == "nvfp4" else
                                           np.uint8)}
    if convention in _TENSOR_SCALE:
        suffix = _TENSOR_SCALE[convention]
        decode = np.float32(1) if layer.tensor_scale is None else np.float32(layer.tensor_scale)
        stored = layer.extras.get(suffix)
        if convention == "compressed-tensors":
            # keep the file's own encode scale when it is the one this multiplier came from
            if stored is None or np.float32(1) / np.float32(np.asarray(stored).reshape(())) \
                    != decode:
                stored = np.array([np.float32(1) / decode], np.float32)
        elif stored is None or np.float32(np.asarray(stored).reshape(())) != decode:
            stored = np.array(decode, np.float32)
        out[key + suffix] = np.asarray(stored, np.float32)
    if layer.bias is not None:
        out[key + _BIAS[convention]] = np.asarray(layer.bias)
    for suffix in _EXTRAS[convention]:
        if suffix in layer.extras:
            out[key + suffix] = np.asarray(layer.extras[suffix])
    if convention == "comfyui" and key + ".comfy_quant" not in out:
        out[key + ".comfy_quant"] = np.frombuffer(json.dumps({"format": "nvfp4"}).encode(),
                                                  np.uint8)
    return out


#: The safetensors library's data order: by dtype in this order, then by name; writing in it
#: makes a checkpoint the library wrote come back byte-identical from a round trip.
LIBRARY_ORDER = ("U64", "I64", "F64", "F32", "U32", "I32", "BF16", "F16", "U16", "I16",
                 "F8_E8M0", "F8_E4M3", "F8_E5M2", "I8", "U8", "BOOL")


def write(
    path: str | os.PathLike,
    layers: Mapping[str, Any],
    convention: str,
    others: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write ``layers`` (key -> quantized layer) and ``others`` (name -> array) as a
    checkpoint of ``convention``, atomically, in the order the safetensors library writes
    (:data:`LIBRARY_ORDER`).

    Layers are brought to the convention's nibble order and scale layout first. A lazy
    mapping is read twice (once for the header).
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}; got {convention!r}")
    others = others or {}
    specs = []  # (name, dtype, shape, layer key or None)
    for key in layers:
        if not isinstance(key, str) or not key:
            raise ValueError(f"layer keys must be non-empty str; got {key!r}")
        for name, array in _tensors(key, _conform(layers[key], convention), convention).items():
            specs.append((name, array.dtype, array.shape, key))
    for name in others:
        value = others[name]  # arrays, or lazy tensors that say their dtype and shape
        if not (hasattr(value, "dtype") and hasattr(value, "shape")):
            value = np.asarray(value)
        specs.append((name, value.dtype, value.shape, None))
    rank = {name: index for index, name in enumerate(LIBRARY_ORDER)}
    specs.sort(key=lambda spec: (rank.get(dtype_name(spec[1]), len(rank)), spec[0]))
    cached: tuple[str | None, dict[str, np.ndarray]] = (None, {})
    with SafetensorsWriter(path, [spec[:3] for spec in specs], metadata) as writer:
        for name, _, _, key in specs:
            if key is None:
                writer.write(np.asarray(others[name]))
                continue
            if cached[0] != key:  # a layer's tensors mostly sit together in this order
                cached = key, _tensors(key, _conform(layers[key], convention), convention)
            writer.write(cached[1][name])


__all__ = ["CONVENTIONS", "Checkpoint", "DTYPES", "LayerEntry", "read", "write"]
