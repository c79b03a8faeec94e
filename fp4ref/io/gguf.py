"""GGUF files (llama.cpp's container) with MXFP4 and NVFP4 tensors.

The container (GGUF v2/v3, little-endian): ``"GGUF"``, a u32 version, u64 tensor and
key-value counts, the key-value pairs (u64-length UTF-8 keys, a u32 value type, the value),
one info record per tensor (name, u32 ``n_dims``, u64 ``ne[n_dims]`` innermost first, u32
ggml type, u64 offset), then the data, each tensor at its offset from the data start, a
multiple of ``general.alignment`` (default 32). fp4ref checks every length and offset of
the header against the file size before trusting it, then maps the data (``numpy.memmap``):
a tensor's bytes are read when, and as far as, they are used.

ggml's FP4 records (``ggml-common.h``), row-major over ``[..., N, K]``:

- MXFP4, type 39: per 32 elements 17 bytes, the E8M0 scale byte then 16 bytes where byte
  ``j`` holds element ``j`` in its low nibble and ``j + 16`` in its high one (split-half);
- NVFP4, type 40: per 64 elements 36 bytes, four UE4M3 scale bytes (one per 16 elements)
  then four groups of 8 bytes, split-half within each 16. ggml's UE4M3 ignores the sign
  bit and reads 0x7F as zero; the tensor scale is a separate F32 tensor ``<key>.scale``
  (one value, or one per expert) that llama.cpp multiplies in afterwards.

Layers come back as :class:`~fp4ref.io.layer.QuantizedLayer` with split-half nibbles and the
scale bytes as stored; :func:`dequantize` decodes them as ggml's ``to_float`` does (the
``ggml`` profile's E8M0 decode, code 0x8 as +0.0). Writing goes through gguf-py's
``GGUFWriter`` (``pip install fp4ref[gguf]``), atomically.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import ml_dtypes
import numpy as np

from .. import api
from ..errors import FormatError
from . import atomic
from .layer import QuantizedLayer
from .safetensors_file import dtype_name, open_regular

MAGIC = b"GGUF"
VERSIONS = (2, 3)
MXFP4, NVFP4 = 39, 40
#: ggml type -> (elements per record, bytes per record) for the FP4 types.
FP4_RECORDS = {MXFP4: (32, 17), NVFP4: (64, 36)}
#: ggml type -> the numpy dtype of its plain (unblocked) tensors.
PLAIN = {0: np.dtype("<f4"), 1: np.dtype("<f2"), 30: np.dtype(ml_dtypes.bfloat16),
         28: np.dtype("<f8"), 24: np.dtype(np.int8), 25: np.dtype("<i2"),
         26: np.dtype("<i4"), 27: np.dtype("<i8")}
#: ggml's GGML_MAX_DIMS, and its GGML_MAX_NAME less the terminating NUL.
MAX_DIMS, MAX_NAME = 4, 63
#: Longest key or string accepted in a header.
MAX_STRING = 1 << 24
#: The metadata key naming the checkpoint convention a file fp4ref wrote came from.
SOURCE_KEY = "fp4ref.source_convention"
#: The metadata key holding, as JSON, the ``__metadata__`` of the safetensors file it came from.
METADATA_KEY = "fp4ref.safetensors_metadata"
#: The metadata key holding, as JSON, ``{name: [safetensors dtype, shape]}`` for tensors GGUF
#: cannot hold as they were (0-d, or a dtype without a ggml type), stored as same-size ints.
TYPES_KEY = "fp4ref.tensor_types"
#: Tensors a checkpoint keeps beside a layer's weight (checkpoints' extras), carried as
#: ``<key><suffix>`` so that a checkpoint comes back whole.
EXTRAS = (".input_scale", ".weight_scale_2", ".weight_global_scale", ".input_global_scale",
          ".comfy_quant")

# GGUF value types: struct code of each scalar (gguf.h enum gguf_type).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q",
            11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def _gguf():
    """gguf-py, or an ImportError that says how to install it."""
    try:
        import gguf
    except ImportError as error:  # pragma: no cover - the extra is part of the test set-up
        raise ImportError("GGUF support needs gguf-py: pip install 'fp4ref[gguf]'") from error
    return gguf


def _record_sizes() -> dict[int, tuple[int, int]]:
    """ggml type -> (block size, bytes per block) for every type gguf-py knows."""
    gguf = _gguf()
    return {int(t): size for t, size in gguf.GGML_QUANT_SIZES.items()}


def ue4m3(raw: np.ndarray) -> np.ndarray:
    """ggml's UE4M3 scale bytes as float32 values (``ggml_ue4m3_to_fp32`` without its
    halving): 4 exponent bits of bias 7, 3 mantissa bits, the sign bit ignored, 0x7F = 0."""
    raw = np.asarray(raw, np.uint8)
    exp, man = ((raw >> 3) & 0xF).astype(np.int32), (raw & 7).astype(np.float32)
    normal = (1 + man / 8) * np.exp2(exp.astype(np.float32) - 7)
    values = np.where(exp == 0, man * np.float32(2.0 ** -9), normal).astype(np.float32)
    return np.where((raw == 0) | (raw == 0x7F), np.float32(0), values)


def type_name(ggml_type: int) -> str:
    """ggml's name of a type number (``"MXFP4"``, ``"F32"``, ...)."""
    try:
        return _gguf().GGMLQuantizationType(ggml_type).name
    except ValueError:
        return f"type {ggml_type}"


@dataclass(frozen=True)
class GgufTensor:
    """One tensor info record: ``shape`` in numpy order (``ne`` reversed), absolute
    ``start`` and ``nbytes`` in the file."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]
    start: int
    nbytes: int
    shard: int = 0  # which file of a split GGUF holds it

    @property
    def type_name(self) -> str:
        return type_name(self.ggml_type)


class _Cursor:
    """Bounds-checked little-endian reads from a byte buffer."""

    def __init__(self, data: memoryview, where: str) -> None:
        self.data, self.at, self.where = data, 0, where

    def need(self, count: int, what: str) -> None:
        if count < 0 or self.at + count > len(self.data):
            raise FormatError(f"{self.where}: truncated: {what} needs {count} bytes at offset "
                              f"{self.at}, the file has {len(self.data) - self.at} left")

    def unpack(self, code: str, what: str) -> Any:
        size = struct.calcsize("<" + code)
        self.need(size, what)
        value = struct.unpack_from("<" + code, self.data, self.at)[0]
        self.at += size
        return value

    def string(self, what: str) -> str:
        length = self.unpack("Q", what + " length")
        if length > MAX_STRING:
            raise FormatError(f"{self.where}: {what} claims {length} bytes (at most "
                              f"{MAX_STRING} accepted)")
        self.need(length, what)
        raw = bytes(self.data[self.at:self.at + length])
        self.at += length
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(f"{self.where}: {what} is not UTF-8") from None

    def value(self, kind: int, what: str, nested: bool = False) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind], what)
        if kind == _STRING:
            return self.string(what)
        if kind != _ARRAY or nested:
            raise FormatError(f"{self.where}: {what} has unknown value type {kind}"
                              + (" (arrays of arrays are not GGUF)" if nested else ""))
        item = self.unpack("I", what + " item type")
        count = self.unpack("Q", what + " count")
        least = struct.calcsize("<" + _SCALARS[item]) if item in _SCALARS else 8
        if item not in _SCALARS and item != _STRING:
            raise FormatError(f"{self.where}: {what} has arrays of unknown type {item}")
        self.need(count * least, f"{what} ({count} items)")
        if item in _SCALARS and item != 7:
            values = np.frombuffer(self.data, "<" + _SCALARS[item], count, self.at).copy()
            self.at += count * least
            return values
        return [self.value(item, what, nested=True) for _ in range(count)]


def parse_header(data: memoryview, where: str) -> tuple[int, dict[str, Any],
                                                        dict[str, GgufTensor], int]:
    """Check and parse a GGUF header.

    Returns
    -------
    version, metadata, tensors, data_start
        ``metadata`` maps each key to its value (numbers, strings, numpy arrays or lists
        of strings); ``tensors`` maps each name to its :class:`GgufTensor`.

    Raises
    ------
    FormatError
        Anything a well-formed file cannot hold: bad magic or version, a length running past
        the end, duplicate keys or names, unknown types, shapes whose rows do not fill whole
        records, misaligned, overlapping or out-of-file tensor data.
    """
    cursor = _Cursor(data, where)
    cursor.need(4, "the magic")
    if bytes(data[:4]) != MAGIC:
        raise FormatError(f"{where}: not a GGUF file (magic {bytes(data[:4])!r}, expected "
                          f"{MAGIC!r})")
    cursor.at = 4
    version = cursor.unpack("I", "the version")
    if version not in VERSIONS:
        swapped = struct.unpack(">I", struct.pack("<I", version))[0]
        hint = " (a big-endian file: not supported)" if swapped in VERSIONS else ""
        raise FormatError(f"{where}: GGUF version {version} not supported (only "
                          f"{VERSIONS}){hint}")
    n_tensors = cursor.unpack("Q", "the tensor count")
    n_kv = cursor.unpack("Q", "the key-value count")
    # every pair takes at least 13 bytes and every tensor info 32: refuse counts the file
    # cannot hold before looping over them
    cursor.need(13 * n_kv + 32 * n_tensors, f"{n_kv} key-value pairs and {n_tensors} tensors")
    metadata: dict[str, Any] = {}
    for _ in range(n_kv):
        key = cursor.string("a metadata key")
        kind = cursor.unpack("I", f"the type of {key!r}")
        if key in metadata:
            raise FormatError(f"{where}: metadata key {key!r} given twice")
        metadata[key] = cursor.value(kind, f"metadata {key!r}")
    alignment = metadata.get("general.alignment", 32)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise FormatError(f"{where}: general.alignment must be a power of two; got "
                          f"{alignment!r}")
    sizes = _record_sizes()
    infos = []
    for _ in range(n_tensors):
        name = cursor.string("a tensor name")
        n_dims = cursor.unpack("I", f"tensor {name!r} n_dims")
        if not 1 <= n_dims <= MAX_DIMS:
            raise FormatError(f"{where}: tensor {name!r} has {n_dims} dimensions (1 to "
                              f"{MAX_DIMS})")
        ne = [cursor.unpack("Q", f"tensor {name!r} dimensions") for _ in range(n_dims)]
        ggml_type = cursor.unpack("I", f"tensor {name!r} type")
        offset = cursor.unpack("Q", f"tensor {name!r} offset")
        if ggml_type not in sizes:
            raise FormatError(f"{where}: tensor {name!r} has unknown ggml type {ggml_type}")
        block, record = sizes[ggml_type]
        if any(d == 0 for d in ne) or ne[0] % block:
            raise FormatError(f"{where}: tensor {name!r} of type {type_name(ggml_type)} has "
                              f"shape {ne} (ne[0] must be a positive multiple of {block})")
        if offset % alignment:
            raise FormatError(f"{where}: tensor {name!r} data offset {offset} is not a "
                              f"multiple of the alignment {alignment}")
        nbytes = math.prod(ne) // block * record
        infos.append((name, ggml_type, tuple(reversed(ne)), offset, nbytes))
    data_start = cursor.at + (-cursor.at % alignment)
    tensors: dict[str, GgufTensor] = {}
    end = data_start
    for name, ggml_type, shape, offset, nbytes in sorted(infos, key=lambda i: i[3]):
        if name in tensors:
            raise FormatError(f"{where}: tensor name {name!r} given twice")
        start = data_start + offset
        if start < end:
            raise FormatError(f"{where}: tensor {name!r} overlaps the one before it")
        if start + nbytes > len(data):
            raise FormatError(f"{where}: truncated: tensor {name!r} needs bytes "
                              f"[{start}, {start + nbytes}), the file has {len(data)}")
        tensors[name] = GgufTensor(name, ggml_type, shape, start, nbytes)
        end = start + nbytes
    return version, metadata, {i[0]: tensors[i[0]] for i in infos}, data_start


class GgufLayer(QuantizedLayer):
    """A layer read from a GGUF file: NVFP4 scale bytes are ggml's UE4M3 (sign bit ignored,
    0x7F = 0), not E4M3; :func:`dequantize` decodes them so."""


#: The names of a split GGUF's files: <name>-00001-of-00003.gguf, ...
_SPLIT = re.compile(r"^(.*)-(\d{5})-of-(\d{5})\.gguf$")


def _open(path: str) -> tuple[np.memmap, int, dict[str, Any], dict[str, GgufTensor], int]:
    """One GGUF file mapped and its header parsed (:func:`parse_header`)."""
    with open_regular(path) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size < 24:
            raise FormatError(f"{path}: truncated: {size} bytes, a GGUF header has 24 or more")
        data = np.memmap(handle, mode="r")
    return (data, *parse_header(memoryview(data), path))


def _key(name: str) -> str:
    return name[: -len(".weight")] if name.endswith(".weight") else name


class GgufFile(Mapping):
    """A GGUF file: a read-only mapping from layer key to :class:`QuantizedLayer` over its
    MXFP4 and NVFP4 tensors, read when looked up.

    A tensor named ``<key>.weight`` (or ``<key>``) is layer ``key``; ``<key>.bias`` or
    ``<key>_bias`` is its bias, and for NVFP4 ``<key>.scale`` its tensor scale (a decode
    multiplier: one value, or one per expert of a ``[E, N, K]`` tensor) and
    ``<key>.input_scale`` an extra kept as ``".input_scale"``.

    A split GGUF (llama.cpp's ``gguf-split``: ``<name>-00001-of-00003.gguf`` ..., with
    ``split.no`` / ``split.count``) opens whole from any of its files; the metadata is the
    first file's.

    Attributes
    ----------
    version : int
    metadata : dict of str to value
    tensors : dict of str to GgufTensor
        Every tensor, in the file's order.
    entries : dict of str to dict
        For each layer key, the names of its tensors by role (``"weight"``, ``"bias"``,
        ``"scale"``, ``".input_scale"``).
    others : list of str
        Tensors that belong to no FP4 layer.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        data, self.version, self.metadata, self.tensors, self.data_start = _open(self.path)
        self.shards = [data]
        count = self.metadata.get("split.count", 1)
        if count != 1:
            self._join(count)
        self.entries: dict[str, dict[str, str]] = {}
        for name, info in self.tensors.items():
            if info.ggml_type in FP4_RECORDS:
                self.entries[_key(name)] = self._roles(name, info)
        claimed = {n for roles in self.entries.values() for n in roles.values()}
        self.others = [name for name in self.tensors if name not in claimed]

    def _join(self, count: Any) -> None:
        """Open every file of a split GGUF and take in their tensors."""
        named = _SPLIT.match(self.path)
        if not isinstance(count, int) or not 1 < count <= 9999 or named is None or int(
                named.group(3)) != count:
            raise FormatError(f"{self.path}: split.count {count!r} does not match a file "
                              f"named <name>-NNNNN-of-NNNNN.gguf")
        paths = [f"{named.group(1)}-{i + 1:05d}-of-{count:05d}.gguf" for i in range(count)]
        self.shards, tensors, metadata = [], {}, None
        for number, path in enumerate(paths):
            data, _, found, shard_tensors, _ = _open(path)
            if found.get("split.no") != number or found.get("split.count") != count:
                raise FormatError(f"{path}: split.no {found.get('split.no')!r} / split.count "
                                  f"{found.get('split.count')!r}, expected {number} / {count}")
            metadata = found if number == 0 else metadata
            for name, info in shard_tensors.items():
                if name in tensors:
                    raise FormatError(f"{path}: tensor name {name!r} also in another file")
                tensors[name] = GgufTensor(info.name, info.ggml_type, info.shape, info.start,
                                           info.nbytes, number)
            self.shards.append(data)
        self.metadata, self.tensors, self.path = metadata, tensors, paths[0]

    def _roles(self, name: str, info: GgufTensor) -> dict[str, str]:
        key, roles = _key(name), {"weight": name}
        for suffix in (".bias", "_bias"):
            bias = self.tensors.get(key + suffix)
            if bias is not None and bias.ggml_type in PLAIN and bias.shape == info.shape[:-1]:
                roles["bias"] = bias.name
                break
        scale = self.tensors.get(key + ".scale")
        if info.ggml_type == NVFP4 and scale is not None:
            if scale.ggml_type != 0 or math.prod(scale.shape) not in (
                    1, info.shape[0] if len(info.shape) == 3 else 1):
                raise FormatError(f"{self.path}: {scale.name} must be F32 with one value (or "
                                  f"one per expert); got {scale.type_name} {list(scale.shape)}")
            roles["scale"] = scale.name
        for suffix in EXTRAS:
            if key + suffix in self.tensors and self.tensors[key + suffix].ggml_type in PLAIN:
                roles[suffix] = key + suffix
        return roles

    def _types(self) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
        """The original dtype and shape of tensors stored under another (TYPES_KEY)."""
        if not hasattr(self, "_types_cache"):
            from .safetensors_file import DTYPES

            text, types = self.metadata.get(TYPES_KEY), {}
            try:
                found = json.loads(text) if isinstance(text, str) else {}
            except (ValueError, RecursionError):
                found = None
            if not isinstance(found, dict):
                raise FormatError(f"{self.path}: {TYPES_KEY} must be a JSON object")
            for name, entry in found.items():
                info = self.tensors.get(name)
                ok = (isinstance(entry, list) and len(entry) == 2 and entry[0] in DTYPES
                      and isinstance(entry[1], list) and all(
                          isinstance(d, int) and d >= 0 for d in entry[1]))
                if not ok or info is None or info.ggml_type not in PLAIN or (
                        DTYPES[entry[0]].itemsize != PLAIN[info.ggml_type].itemsize) or (
                        math.prod(entry[1]) != math.prod(info.shape)):
                    raise FormatError(f"{self.path}: {TYPES_KEY} entry {name!r} does not fit "
                                      f"the tensor")
                types[name] = (DTYPES[entry[0]], tuple(entry[1]))
            self._types_cache = types
        return self._types_cache

    def safetensors_metadata(self) -> dict[str, str]:
        """The safetensors ``__metadata__`` a file fp4ref wrote carried over, else ``{}``."""
        text = self.metadata.get(METADATA_KEY)
        if text is None:
            return {}
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise FormatError(f"{self.path}: {METADATA_KEY} must be a JSON object of strings")
        return value

    def records(self, name: str, rows: tuple[int, int] | None = None) -> np.ndarray:
        """The raw bytes of tensor ``name`` as ``[..., bytes per row]`` uint8 (a view of the
        mapped file), or only ``rows = (first, stop)`` of its first axis."""
        info = self.tensors[name]
        view = self.shards[info.shard][info.start:info.start + info.nbytes]
        view = view.reshape(*info.shape[:-1], -1)
        return view if rows is None else view[rows[0]:rows[1]]

    def read(self, name: str, rows: tuple[int, int] | None = None) -> np.ndarray:
        """Tensor ``name`` as a numpy array: plain types in their dtype, other ggml types
        decoded to float32 by gguf-py (``gguf.quants.dequantize``)."""
        info = self.tensors[name]
        raw = self.records(name, rows)
        if info.ggml_type in PLAIN:
            if name in self._types():
                dtype, shape = self._types()[name]
                return raw.view(dtype).reshape(shape)
            return raw.view(PLAIN[info.ggml_type])
        if info.ggml_type in FP4_RECORDS:
            return dequantize(self.layer(_key(name), rows))
        try:
            return _gguf().quants.dequantize(np.asarray(raw), info.ggml_type)
        except NotImplementedError:
            raise FormatError(f"{self.path}: tensor {name!r} is {info.type_name}, which "
                              f"gguf-py cannot decode") from None

    def layer(self, key: str, rows: tuple[int, int] | None = None, codes: bool = True
              ) -> GgufLayer:
        """Layer ``key``, or only ``rows = (first, stop)`` of its first axis.

        The codes interleave with the scales in ggml's records, so ``blocks`` is a copy;
        with ``codes=False`` it is a zero-filled read-only stand-in of the right shape that
        costs no memory (for looking at the scales alone).
        """
        roles = self.entries[key]
        info = self.tensors[roles["weight"]]
        records = self.records(roles["weight"], rows)
        lead = records.shape[:-1]
        fmt = "mxfp4" if info.ggml_type == MXFP4 else "nvfp4"
        per = 1 if fmt == "mxfp4" else 4  # scale bytes per record
        split = records.reshape(*lead, -1, FP4_RECORDS[info.ggml_type][1])
        scales = split[..., :per].reshape(*lead, -1)
        if codes:
            blocks = split[..., per:].reshape(*lead, -1)
        else:
            blocks = np.broadcast_to(np.uint8(0), (*lead, split.shape[-2] * (
                split.shape[-1] - per)))
        tensor_scale = None
        if "scale" in roles:
            values = self.read(roles["scale"]).reshape(-1)
            if values.size == 1:
                tensor_scale = np.float32(values[0])
            else:  # one per expert, along the first axis
                tensor_scale = values if rows is None else values[rows[0]:rows[1]]
        extras = {role: np.asarray(self.read(name)) for role, name in roles.items()
                  if role.startswith(".")}
        bias = roles.get("bias")
        return GgufLayer(blocks=blocks, scales=scales, format=fmt,
                         bias=None if bias is None else self.read(bias, rows),
                         tensor_scale=tensor_scale, nibble_order="split-half", extras=extras)

    def __getitem__(self, key: str) -> GgufLayer:
        return self.layer(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __repr__(self) -> str:
        return (f"GgufFile({self.path!r}, version {self.version}, {len(self.entries)} FP4 "
                f"layers, {len(self.others)} other tensors)")


class LazyGgufTensor:
    """A tensor of a GGUF file that says its ``dtype`` and ``shape`` and is read when made
    an array (plain types as stored, others decoded to float32 by gguf-py)."""

    def __init__(self, file: GgufFile, name: str) -> None:
        info = file.tensors[name]
        self.file, self.name, self.shape = file, name, info.shape
        self.dtype = PLAIN.get(info.ggml_type, np.dtype("<f4"))
        if name in file._types():
            self.dtype, self.shape = file._types()[name]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = np.asarray(self.file.read(self.name))
        return array if dtype is None else array.astype(dtype)


def read(path: str | os.PathLike) -> GgufFile:
    """Open a GGUF file (see :class:`GgufFile`).

    Raises
    ------
    FormatError
        A malformed or truncated file.
    """
    return GgufFile(path)


def is_gguf(path: str | os.PathLike) -> bool:
    """Whether ``path`` starts with the GGUF magic."""
    with open_regular(path) as handle:
        return handle.read(4) == MAGIC


# --- decoding as ggml does ------------------------------------------------------------


def dequantize(layer: Any, dtype: str = "float32", out: np.ndarray | None = None
               ) -> np.ndarray:
    """Decode a GGUF layer as ggml's ``dequantize_row_mxfp4`` / ``_nvfp4`` (then times the
    tensor scale, as llama.cpp's graph multiplies it in).

    MXFP4 decodes under the ``ggml`` profile's E8M0 rule (0xFF = 2^128, code 0x8 = +0.0).
    NVFP4 scale bytes are read as ggml's UE4M3 (the sign bit ignored, 0x7F = 0), code 0x8 as
    +0.0; a per-expert tensor scale applies to each ``[N, K]`` of ``[E, N, K]``.
    """
    if out is None:
        out = np.empty(layer.shape, api._checks.OUTPUT_DTYPES[api._checks.output_dtype(dtype)])
    if layer.format == "mxfp4":
        return api.dequantize(layer.blocks, layer.scales, format="mxfp4",
                              nibble_order=layer.nibble_order, e8m0_decode="ggml",
                              dtype=dtype, out=out)
    scales = np.asarray(layer.scales)
    # ggml_ue4m3_to_fp32 (ggml-impl.h): 4 exponent bits, bias 7, no sign, 0x7F -> 0
    wide = scales == 0xFF  # 480, beyond E4M3: decoded against 448 and fixed below
    canonical = np.where(scales == 0x7F, 0, np.where(wide, 0x7E, scales & 0x7F)).astype(np.uint8)
    ts = layer.tensor_scale
    per_expert = ts is not None and np.ndim(ts) == 1
    for index in range(layer.blocks.shape[0]) if per_expert else (None,):
        part = slice(None) if index is None else index
        t = np.float32(1 if ts is None else (ts[index] if per_expert else ts))
        api.dequantize(layer.blocks[part], canonical[part], format="nvfp4", tensor_scale=t,
                       nibble_order=layer.nibble_order, dtype=dtype, out=out[part])
        codes = api.unpack(np.ascontiguousarray(layer.blocks[part]), layer.nibble_order,
                           block_size=16)
        if wide[part].any():
            big = np.repeat(wide[part], 16, axis=-1)
            values = api.decode_e2m1(codes[big]) * np.float32(480) * t
            out[part][big] = values.astype(out.dtype)
        zero = codes == 8
        if zero.any():  # kvalues_mxfp4[8] is +0, then times the tensor scale
            out[part][zero] = (np.float32(0) * t).astype(out.dtype)
    return out


# --- writing --------------------------------------------------------------------------


def _records(layer: Any, name: str) -> np.ndarray:
    """ggml records ``[..., N, bytes per row]`` of a layer (any nibble order and layout)."""
    fmt = layer.format
    block, record = {"mxfp4": (32, 17), "nvfp4": (64, 36)}[fmt]
    sub = api.FORMATS[fmt][0]
    blocks = np.ascontiguousarray(layer.blocks)
    scales = np.ascontiguousarray(layer.scales).view(np.uint8)
    k = 2 * blocks.shape[-1]
    if getattr(layer, "scale_layout", "linear") != "linear":
        from ..layouts import unswizzle

        scales = unswizzle(scales, rows=blocks.shape[-2], cols=k // sub,
                           layout=layer.scale_layout)
    if k % block:
        raise ValueError(f"layer {name!r}: GGUF {fmt.upper()} rows hold whole {block}-element "
                         f"records; K = {k}")
    if fmt == "nvfp4" and not isinstance(layer, GgufLayer) and np.any(scales >= 0x7F):
        raise ValueError(f"layer {name!r}: scale bytes 0x7F..0xFF (NaN or negative E4M3) "
                         f"mean something else to ggml's unsigned UE4M3; refusing to write")
    order = getattr(layer, "nibble_order", "low-first")
    per = block // sub  # scale bytes per record
    flat_blocks, flat_scales = blocks.reshape(-1, k // 2), scales.reshape(-1, k // sub)
    out = np.empty((flat_blocks.shape[0], k // block, record), np.uint8)
    step = max(1, (32 << 20) // k)  # rows per slice: the unpacked codes stay ~32 MB
    for start in range(0, flat_blocks.shape[0], step):
        rows = slice(start, start + step)
        codes = api.unpack(flat_blocks[rows], order, block_size=sub)
        out[rows, :, :per] = flat_scales[rows].reshape(-1, k // block, per)
        out[rows, :, per:] = api.pack(codes, "split-half", block_size=sub).reshape(
            -1, k // block, block // 2)
    return out.reshape(*blocks.shape[:-1], k // block * record)


def write(
    path: str | os.PathLike,
    layers: Mapping[str, Any],
    others: Mapping[str, Any] | None = None,
    metadata: Mapping[str, Any] | None = None,
    names: Mapping[str, tuple[str, str]] | None = None,
    arch: str = "fp4ref",
) -> None:
    """Write ``layers`` (key -> quantized layer) as GGUF MXFP4/NVFP4 tensors and ``others``
    (name -> array) as plain tensors, atomically, through gguf-py's ``GGUFWriter``.

    Parameters
    ----------
    layers : mapping of str to layer
        Each becomes the tensor ``names[key][0]`` (default ``<key>.weight``) with its bias
        under ``names[key][1]`` (default ``<key>.bias``); an NVFP4 tensor scale other than
        1.0 becomes ``<key>.scale`` and each extra of :data:`EXTRAS` ``<key><suffix>``.
    others : mapping of str to array, optional
        Written as they are where ggml has the type (float64/32/16, bfloat16, int8..int64);
        other dtypes (uint8, float8, ...) and 0-d arrays as same-size ints, their dtype and
        shape noted under :data:`TYPES_KEY` so that :meth:`GgufFile.read` restores them.
    metadata : mapping of str to str or int, optional
        Extra key-value pairs.
    arch : str
        ``general.architecture``.
    """
    gguf = _gguf()
    others, names = others or {}, names or {}
    plan: list[tuple[str, Any, int | None, np.dtype, tuple]] = []  # maker, raw type, spec
    for key in layers:
        if not isinstance(key, str) or not key:
            raise ValueError(f"layer keys must be non-empty str; got {key!r}")
        weight_name, bias_name = names.get(key, (f"{key}.weight", f"{key}.bias"))
        layer = layers[key]
        fmt = getattr(layer, "format", None)
        if fmt not in ("mxfp4", "nvfp4"):
            raise ValueError(f"layer {key!r}: format must be mxfp4 or nvfp4; got {fmt!r}")
        raw = MXFP4 if fmt == "mxfp4" else NVFP4
        block, record = FP4_RECORDS[raw]
        blocks_shape = np.shape(layer.blocks)  # [..., K/2] (QuantizedTensor has no .shape)
        shape = (*blocks_shape[:-1], 2 * blocks_shape[-1])
        plan.append((weight_name, lambda k=key, n=weight_name: _records(layers[k], n), raw,
                     np.dtype(np.uint8), (*shape[:-1], shape[-1] // block * record)))
        parts = []
        if getattr(layer, "bias", None) is not None:
            parts.append((bias_name, np.asarray(layer.bias)))
        base = weight_name[: -len(".weight")] if weight_name.endswith(".weight") else weight_name
        ts = getattr(layer, "tensor_scale", None)
        if fmt == "nvfp4" and ts is not None and np.any(np.asarray(ts, np.float32) != 1):
            parts.append((base + ".scale", np.asarray(ts, np.float32).reshape(-1)))
        for suffix, extra in (getattr(layer, "extras", None) or {}).items():
            if suffix in EXTRAS:
                parts.append((base + suffix, np.asarray(extra)))
        for name, array in parts:
            plan.append((name, lambda a=array: a, None, array.dtype, array.shape))
    for name in others:
        value = others[name]  # arrays, or lazy tensors that say their dtype and shape
        if not (hasattr(value, "dtype") and hasattr(value, "shape")):
            value = np.asarray(value)
        plan.append((name, lambda n=name: np.asarray(others[n]), None, np.dtype(value.dtype),
                     tuple(value.shape)))
    seen: set[str] = set()
    types: dict[str, list] = {}
    for name, _, raw, dtype, shape in plan:
        if len(name.encode()) > MAX_NAME:
            raise ValueError(f"tensor name {name!r} is longer than ggml's {MAX_NAME} bytes")
        if name in seen:
            raise ValueError(f"tensor name {name!r} given twice")
        seen.add(name)
        if raw is None and (_plain_dtype(dtype, name) != dtype or not shape):
            types[name] = [dtype_name(dtype), list(shape)]
    file, temp = atomic.temporary(os.fspath(path))  # checks the target, names it in errors
    file.close()
    try:
        writer = gguf.GGUFWriter(temp, arch)
        if types:
            writer.add_string(TYPES_KEY, json.dumps(types))
        for key, value in (metadata or {}).items():
            if isinstance(value, int):
                writer.add_uint32(key, value)
            else:
                writer.add_string(key, str(value))
        for name, _, raw, dtype, shape in plan:
            if raw is None:
                dtype, shape = _plain_dtype(dtype, name), shape or (1,)
            writer.add_tensor_info(name, shape, dtype, math.prod(shape) * dtype.itemsize,
                                   raw_dtype=raw if raw is not None else _raw_type(dtype))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for name, make, raw, _, _ in plan:  # one tensor in memory at a time
            array = make()
            if raw is None:
                array = np.ascontiguousarray(array).reshape(-1 if array.ndim == 0 else
                                                            array.shape)
                array = array.view(_plain_dtype(array.dtype, name))
                if array.dtype == ml_dtypes.bfloat16:
                    array = array.view(np.uint8)
            writer.write_tensor_data(array)
        writer.close()
    except BaseException:
        atomic.remove(temp)
        raise
    atomic.commit(temp, os.fspath(path))  # inside an outputs() block: at its end


def _plain_dtype(dtype: np.dtype, name: str) -> np.dtype:
    """The ggml plain type a tensor of ``dtype`` is stored as: itself, or same-size ints
    (its own dtype then noted under TYPES_KEY)."""
    if any(dtype == d for d in PLAIN.values()):
        return np.dtype(dtype)
    ints = {1: np.int8, 2: np.int16, 4: np.int32, 8: np.int64}.get(dtype.itemsize)
    if ints is None or dtype.kind not in "uifbV":
        raise ValueError(f"tensor {name!r}: dtype {dtype} has no GGUF form")
    return np.dtype(ints)


def _raw_type(dtype: np.dtype) -> int | None:
    """bfloat16 goes as bytes with an explicit type (GGUFWriter has no numpy bfloat16)."""
    return 30 if dtype == ml_dtypes.bfloat16 else None


__all__ = ["FP4_RECORDS", "GgufFile", "GgufLayer", "GgufTensor", "LazyGgufTensor", "MXFP4",
           "NVFP4", "dequantize", "is_gguf", "parse_header", "read", "ue4m3", "write"]
