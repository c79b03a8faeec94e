"""UQFF, mistral.rs's quantized file format, both generations, as it concerns MXFP4
(``spec/uqff.md``).

Generation 0.x: each layer is one byte blob (``encode_mxfp4_blob``), and a ``.uqff`` shard
is a safetensors file of 1-D U8 blobs named by the layer's decimal index. Generation 1.x:
a ``.uqff`` shard is a safetensors file of named tensors (``<key>.weight``,
``<key>.weight.format``, ``<key>.weight.scales``, ``<key>.bias``) and three U32 version
scalars. :func:`read` tells them apart and says which (``.generation``).

Every parser here treats its bytes as untrusted: lengths, shapes and codes are checked
before they are used, and anything wrong raises :class:`fp4ref.FormatError` naming what
and where.
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np

from .._checks import host_array, integer
from ..errors import FormatError
from .layer import QuantizedLayer
from .safetensors_file import DTYPES as _ST_DTYPES
from .safetensors_file import SafetensorsReader, SafetensorsWriter, open_regular

#: Quantization type codes of the byte at blob offset 4 (uqff.md).
QUANT_TYPES = ("Gguf", "Unquant", "Hqq", "Fp8", "Afq", "F8Q8", "Mxfp4")
MXFP4 = 6

#: Tensor-record dtype codes fp4ref reads and writes (uqff.md, "Dtype codes").
DTYPE_CODES: dict[int, tuple[str, np.dtype]] = {
    0: ("U8", np.dtype(np.uint8)),
    1: ("U32", np.dtype("<u4")),
    2: ("I32", np.dtype("<i4")),
    3: ("I64", np.dtype("<i8")),
    4: ("F16", np.dtype("<f2")),
    5: ("BF16", np.dtype(ml_dtypes.bfloat16)),
    6: ("F32", np.dtype("<f4")),
    7: ("F64", np.dtype("<f8")),
    8: ("I16", np.dtype("<i2")),
    9: ("F8E4M3", np.dtype(ml_dtypes.float8_e4m3fn)),
}
#: Codes mistral.rs defines but refuses to serialize, so no valid blob holds them.
UNWRITTEN_CODES = {10: "F6E2M3", 11: "F6E3M2", 12: "F4", 13: "F8E8M0"}
#: Bias dtypes of an MXFP4 layer.
BIAS_CODES = (4, 5, 6)

#: Most dimensions fp4ref accepts in a tensor record (MXFP4 layers use 1 to 3).
MAX_NDIM = 8
_U32_MAX = 2**32 - 1

#: The last 0.x version, written by default; readers accept major 0, minor <= 2.
BLOB_VERSION = (0, 2, 0)
#: The 1.x version written by default; readers accept major 1, minor <= 2.
FILE_VERSION = (1, 2, 0)
_VERSION_NAMES = ("uqff.version.major", "uqff.version.minor", "uqff.version.patch")


class Mxfp4Blob(NamedTuple):
    """A decoded 0.x MXFP4 layer blob."""

    blocks: np.ndarray
    scales: np.ndarray
    bias: np.ndarray | None
    version: tuple[int, int, int]


# --- version word -----------------------------------------------------------------------


def version_word(version: tuple[int, int, int]) -> int:
    """``(major << 16) | (minor << 8) | patch`` (uqff.md, "Version word")."""
    major, minor, patch = version
    return (major << 16) | (minor << 8) | patch


def check_blob_version(word: int, where: str) -> tuple[int, int, int]:
    """mistral.rs's compatibility rule for a 0.x version word; returns (major, minor, patch).

    The major is ``word >> 16`` unmasked and must be 0; a minor above 2 is newer than this
    reader; the patch is ignored.
    """
    major, minor, patch = word >> 16, (word >> 8) & 0xFF, word & 0xFF
    if major != 0:
        raise FormatError(
            f"{where}: Major version of ISQ artifact file ({major}) does not match the "
            f"implementation in this build (0)"
        )
    if minor > BLOB_VERSION[1]:
        raise FormatError(
            f"{where}: version 0.{minor}.{patch} is newer than the newest supported 0.x "
            f"version {'.'.join(map(str, BLOB_VERSION))}"
        )
    return major, minor, patch


def _check_version_arg(version: Any, major: int) -> tuple[int, int, int]:
    ok = (isinstance(version, tuple) and len(version) == 3
          and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255
                  for v in version))
    if not ok or version[0] != major or version[1] > (BLOB_VERSION, FILE_VERSION)[major][1]:
        raise ValueError(
            f"version must be a (major, minor, patch) tuple of ints 0..255 that mistral.rs "
            f"generation {major}.x reads (major {major}, minor <= "
            f"{(BLOB_VERSION, FILE_VERSION)[major][1]}); got {version!r}"
        )
    return version


# --- tensor records ---------------------------------------------------------------------


def _code_of(dtype: np.dtype) -> int | None:
    """The UQFF dtype code of ``dtype``, or ``None`` if it has none."""
    for code, (_, candidate) in DTYPE_CODES.items():
        if dtype == candidate or (dtype.itemsize > 1 and dtype.newbyteorder("<") == candidate):
            return code
    return None


def _dtype_code(dtype: np.dtype) -> int:
    code = _code_of(dtype)
    if code is None:
        raise TypeError(f"dtype {dtype} has no UQFF dtype code")
    return code


def encode_tensor(array: Any) -> bytes:
    """One tensor record: length, dtype code, ndims, dims, then the raw little-endian bytes."""
    data = host_array("array", array)
    code = _dtype_code(data.dtype)
    data = data.astype(DTYPE_CODES[code][1], copy=False)
    if data.nbytes > _U32_MAX or data.ndim > _U32_MAX or any(d > _U32_MAX for d in data.shape):
        raise ValueError(f"tensor of shape {data.shape} does not fit UQFF's u32 fields")
    head = struct.pack(f"<III{data.ndim}I", data.nbytes, code, data.ndim, *data.shape)
    return head + data.tobytes()


def decode_tensor(data: bytes | memoryview, offset: int, what: str) -> tuple[np.ndarray, int]:
    """The tensor record at ``offset`` of ``data`` and the offset after it.

    Raises
    ------
    FormatError
        Truncated record, unknown or unwritten dtype code, more than :data:`MAX_NDIM`
        dimensions, or a data length that is not the shape's byte count.
    """
    view = memoryview(data)
    if len(view) - offset < 12:
        raise FormatError(f"{what} record at byte {offset}: truncated header "
                          f"({len(view) - offset} of 12 bytes)")
    length, code, ndim = struct.unpack_from("<III", view, offset)
    if code in UNWRITTEN_CODES:
        raise FormatError(f"{what} record at byte {offset}: dtype code {code} "
                          f"({UNWRITTEN_CODES[code]}) is never serialized by mistral.rs")
    if code not in DTYPE_CODES:
        raise FormatError(f"{what} record at byte {offset}: unknown dtype code {code}")
    if ndim > MAX_NDIM:
        raise FormatError(f"{what} record at byte {offset}: {ndim} dimensions (at most "
                          f"{MAX_NDIM} accepted)")
    start = offset + 12 + 4 * ndim
    if start > len(view):
        raise FormatError(f"{what} record at byte {offset}: dimensions run past the end "
                          f"({len(view)} bytes)")
    shape = struct.unpack_from(f"<{ndim}I", view, offset + 12)
    name, dtype = DTYPE_CODES[code]
    expected = math.prod(shape) * dtype.itemsize
    if length != expected:
        raise FormatError(f"{what} record at byte {offset}: data length {length} is not the "
                          f"{expected} bytes of {name} shape {list(shape)}")
    if start + length > len(view):
        raise FormatError(f"{what} record at byte {offset}: {length} data bytes run past the "
                          f"end ({len(view) - start} left)")
    array = np.frombuffer(view, dtype, math.prod(shape), start).reshape(shape).copy()
    return array, start + length


# --- 0.x MXFP4 blob ---------------------------------------------------------------------


def _layer_problem(blocks: np.ndarray, scales: np.ndarray, bias: np.ndarray | None) -> str:
    """What is wrong with an MXFP4 layer's arrays, or ``""``."""
    if blocks.dtype != np.uint8 or scales.dtype != np.uint8:
        return f"blocks and scales must be U8; got {blocks.dtype} and {scales.dtype}"
    if blocks.ndim not in (2, 3):
        return f"blocks must be [N, K/2] or [E, N, K/2]; got shape {list(blocks.shape)}"
    if scales.shape != (*blocks.shape[:-1], blocks.shape[-1] // 16) or blocks.shape[-1] % 16:
        return (f"scales shape {list(scales.shape)} does not fit blocks shape "
                f"{list(blocks.shape)} (K/2 a multiple of 16, scales [..., K/32])")
    if bias is not None:
        if bias.shape != blocks.shape[:-1]:
            return f"bias shape {list(bias.shape)} is not {list(blocks.shape[:-1])}"
        if _code_of(bias.dtype) not in BIAS_CODES:
            return f"bias must be F32, F16 or BF16; got {bias.dtype}"
    return ""


def _layer_arrays(blocks: Any, scales: Any, bias: Any) -> tuple:
    blocks = host_array("blocks", blocks)
    scales = host_array("scales", scales)
    if scales.dtype == ml_dtypes.float8_e8m0fnu:
        scales = scales.view(np.uint8)
    bias = None if bias is None else host_array("bias", bias)
    problem = _layer_problem(blocks, scales, bias)
    if problem:
        raise ValueError(f"not an MXFP4 layer UQFF can hold: {problem}")
    return blocks, scales, bias


def encode_mxfp4_blob(
    blocks: Any, scales: Any, bias: Any = None, version: tuple[int, int, int] = BLOB_VERSION
) -> bytes:
    """The 0.x blob mistral.rs writes for an MXFP4 layer (``serialize_with_bias``).

    Parameters
    ----------
    blocks : array of uint8, ``[N, K/2]`` or ``[E, N, K/2]``
    scales : array of uint8 (or float8_e8m0fnu), ``[..., K/32]``
    bias : array of float32, float16 or bfloat16, ``[N]`` or ``[E, N]``, optional
    version : (major, minor, patch)
        A 0.x version mistral.rs accepts (minor <= 2).

    Returns
    -------
    bytes
        u32 version word, u8 type 6, u8 has_bias, then the tensor records of blocks,
        scales and (when given) bias.
    """
    version = _check_version_arg(version, 0)
    blocks, scales, bias = _layer_arrays(blocks, scales, bias)
    parts = [struct.pack("<IBB", version_word(version), MXFP4, bias is not None),
             encode_tensor(blocks), encode_tensor(scales)]
    if bias is not None:
        parts.append(encode_tensor(bias))
    return b"".join(parts)


def _blob_length(blocks: np.ndarray, scales: np.ndarray, bias: np.ndarray | None) -> int:
    arrays = [a for a in (blocks, scales, bias) if a is not None]
    return 6 + sum(12 + 4 * a.ndim + a.nbytes for a in arrays)


def decode_mxfp4_blob(data: bytes | memoryview, where: str = "blob") -> Mxfp4Blob:
    """Blocks, scales, bias and version of a 0.x MXFP4 blob.

    Applies mistral.rs's version rule (:func:`check_blob_version`) and checks more than it
    does: the type byte, has_bias in {0, 1}, each record's length against its shape, the
    layer's shapes and dtypes, and that no bytes follow the last record.

    Raises
    ------
    FormatError
        Naming what is wrong and at which byte of ``where``.
    """
    view = memoryview(data)
    if len(view) < 6:
        raise FormatError(f"{where}: {len(view)} bytes is too short for the 6-byte preamble")
    word, kind, has_bias = struct.unpack_from("<IBB", view)
    version = check_blob_version(word, where)
    if kind != MXFP4:
        name = QUANT_TYPES[kind] if kind < len(QUANT_TYPES) else "unknown"
        raise FormatError(f"{where}: ISQ type ({kind}, {name}) doesn't match expected type "
                          f"{MXFP4}")
    if has_bias > 1:
        raise FormatError(f"{where}: has_bias byte at offset 5 is {has_bias}, not 0 or 1")
    blocks, offset = decode_tensor(view, 6, f"{where}: blocks")
    scales, offset = decode_tensor(view, offset, f"{where}: scales")
    bias = None
    if has_bias:
        bias, offset = decode_tensor(view, offset, f"{where}: bias")
    if offset != len(view):
        raise FormatError(f"{where}: {len(view) - offset} bytes after the last record "
                          f"(at byte {offset})")
    problem = _layer_problem(blocks, scales, bias)
    if problem:
        raise FormatError(f"{where}: {problem}")
    return Mxfp4Blob(blocks, scales, bias, version)


# --- files ------------------------------------------------------------------------------


class _Stub(NamedTuple):
    """What :func:`_layer_problem` reads of an array (dtype and shape), for a header entry."""

    dtype: np.dtype
    shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)


def _mxfp4_layer(blocks: np.ndarray, scales: np.ndarray, bias: np.ndarray | None):
    return QuantizedLayer(blocks=blocks, scales=scales, bias=bias, format="mxfp4")


def _is_index(name: str) -> bool:
    return name.isascii() and name.isdigit() and (name == "0" or not name.startswith("0"))


class UqffFile(Mapping):
    """A ``.uqff`` shard: a read-only mapping from layer key to :class:`QuantizedLayer`.

    Keys are ints (the layer index) in generation 0 and weight paths (str) in generation 1.
    The header is checked when the file is opened; a layer's bytes are read and checked
    when it is looked up.

    Attributes
    ----------
    generation : int
        0 or 1.
    version : tuple of int
        The file's version (generation 1) or the newest blob version (generation 0, read
        from each blob's first four bytes; ``None`` for a file without layers).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        self._file = SafetensorsReader(self.path)
        tensors = self._file.tensors
        if any(name in tensors for name in _VERSION_NAMES):
            self.generation = 1
            self.version = self._file_version()
            self._layers = self._layers_1()
        else:
            self.generation = 0
            self._layers = self._layers_0()
            self.version = self._blob_versions()

    # generation 0
    def _layers_0(self) -> dict[Any, str]:
        layers = {}
        for name, info in self._file.tensors.items():
            if not _is_index(name) or info.dtype != "U8" or len(info.shape) != 1:
                raise FormatError(
                    f"{self.path}: not a UQFF file: no uqff.version.* scalars (1.x) and tensor "
                    f"{name!r} ({info.dtype} {list(info.shape)}) is not a 1-D U8 blob named by "
                    f"a layer index (0.x)"
                )
            layers[int(name)] = name
        return dict(sorted(layers.items()))

    def _blob_versions(self) -> tuple[int, int, int] | None:
        versions = []
        for name in self._layers.values():
            info = self._file.tensors[name]
            if info.nbytes < 4:
                raise FormatError(f"{self.path}: blob {name!r} has {info.nbytes} bytes")
            with open_regular(self.path) as f:
                f.seek(info.start)
                (word,) = struct.unpack("<I", f.read(4))
            versions.append(check_blob_version(word, f"{self.path}: blob {name!r}"))
        return max(versions) if versions else None

    # generation 1
    def _scalar(self, name: str) -> int:
        info = self._file.tensors.get(name)
        if info is None or info.dtype != "U32" or info.shape != ():
            got = "missing" if info is None else f"{info.dtype} {list(info.shape)}"
            raise FormatError(f"{self.path}: {name} must be a U32 scalar; got {got}")
        return int(self._file.read(name))

    def _file_version(self) -> tuple[int, int, int]:
        major, minor, patch = (self._scalar(name) for name in _VERSION_NAMES)
        if major != FILE_VERSION[0] or minor > FILE_VERSION[1]:
            raise FormatError(
                f"{self.path}: UQFF version {major}.{minor}.{patch} is not readable by this "
                f"reader (major {FILE_VERSION[0]}, minor <= {FILE_VERSION[1]})"
            )
        return major, minor, patch

    def _layers_1(self) -> dict[Any, str]:
        tensors = self._file.tensors
        claimed = set(_VERSION_NAMES)
        layers = {}
        for name in tensors:
            if not name.endswith(".weight.format"):
                continue
            key = name[: -len(".weight.format")]
            kind = self._scalar_u8(name)
            if kind != MXFP4:
                label = QUANT_TYPES[kind] if kind < len(QUANT_TYPES) else "unknown"
                raise FormatError(f"{self.path}: layer {key!r} has quantization type {kind} "
                                  f"({label}); fp4ref reads MXFP4 ({MXFP4}) layers only")
            parts = {p: f"{key}{p}" for p in (".weight", ".weight.scales", ".bias")}
            for part in (".weight", ".weight.scales"):
                if parts[part] not in tensors:
                    raise FormatError(f"{self.path}: layer {key!r} has no {parts[part]!r}")
            self._check_layer_1(key, parts)
            claimed.update([name, *(p for p in parts.values() if p in tensors)])
            layers[key] = key
        for name in tensors:
            if name not in claimed:
                raise FormatError(f"{self.path}: tensor {name!r} belongs to no MXFP4 layer")
        return layers

    def _scalar_u8(self, name: str) -> int:
        info = self._file.tensors[name]
        if info.dtype != "U8" or info.shape != ():
            raise FormatError(f"{self.path}: {name} must be a U8 scalar; got {info.dtype} "
                              f"{list(info.shape)}")
        return int(self._file.read(name))

    def _check_layer_1(self, key: str, parts: dict[str, str]) -> None:
        tensors = self._file.tensors

        def stub(name: str) -> _Stub | None:
            info = tensors.get(name)
            return None if info is None else _Stub(_ST_DTYPES[info.dtype], info.shape)

        problem = _layer_problem(stub(parts[".weight"]), stub(parts[".weight.scales"]),
                                 stub(parts[".bias"]))
        if problem:
            raise FormatError(f"{self.path}: layer {key!r}: {problem}")

    # the mapping
    def __getitem__(self, key: Any) -> QuantizedLayer:
        name = self._layers[key]
        if self.generation == 0:
            blob = decode_mxfp4_blob(self._file.read(name), f"{self.path}: blob {name!r}")
            return _mxfp4_layer(blob.blocks, blob.scales, blob.bias)
        bias = f"{name}.bias"
        return _mxfp4_layer(self._file.read(f"{name}.weight"),
                            self._file.read(f"{name}.weight.scales"),
                            self._file.read(bias) if bias in self._file else None)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._layers)

    def __len__(self) -> int:
        return len(self._layers)

    def __repr__(self) -> str:
        return f"<UqffFile {self.path!r} generation {self.generation}, {len(self)} layers>"


def read(path: str | os.PathLike) -> UqffFile:
    """Open a ``.uqff`` shard of either generation (see :class:`UqffFile`).

    Raises
    ------
    FormatError
        If the file is not a UQFF shard, or a version is one mistral.rs would refuse.
    """
    return UqffFile(path)


def _as_layer(key: Any, layer: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The arrays of an MXFP4 layer UQFF can hold, or a ValueError naming the layer."""
    if getattr(layer, "format", None) != "mxfp4":
        raise ValueError(f"layer {key!r}: UQFF holds MXFP4 layers; got format "
                         f"{getattr(layer, 'format', None)!r}")
    for attribute, wanted in (("nibble_order", "low-first"), ("scale_layout", "linear")):
        if getattr(layer, attribute, wanted) != wanted:
            raise ValueError(f"layer {key!r}: UQFF stores {attribute} {wanted!r}; got "
                             f"{getattr(layer, attribute)!r}")
    try:
        return _layer_arrays(layer.blocks, layer.scales, getattr(layer, "bias", None))
    except ValueError as error:
        raise ValueError(f"layer {key!r}: {error}") from None


def write(
    path: str | os.PathLike,
    layers: Mapping[Any, Any],
    generation: int = 1,
    version: tuple[int, int, int] | None = None,
) -> None:
    """Write MXFP4 ``layers`` as a ``.uqff`` shard of ``generation``, atomically.

    Parameters
    ----------
    path : str or os.PathLike
    layers : mapping of key to quantized layer
        Values with ``.blocks``, ``.scales``, ``.format == "mxfp4"`` and optionally
        ``.bias`` (e.g. what :func:`read` returns). Generation 0 keys are layer indices
        (non-negative ints, or their decimal strings); generation 1 keys are weight paths.
        A lazy mapping is read twice: once for the header, once for the data.
    generation : {0, 1}
    version : (major, minor, patch), optional
        Default :data:`BLOB_VERSION` (0.x) or :data:`FILE_VERSION` (1.x).
    """
    if integer("generation", generation) not in (0, 1):
        raise ValueError(f"generation must be 0 or 1; got {generation!r}")
    generation = int(generation)
    version = _check_version_arg(
        version or (BLOB_VERSION, FILE_VERSION)[generation], generation)
    names = {key: _name(key, generation) for key in layers}
    specs = []
    for key in layers:
        blocks, scales, bias = _as_layer(key, layers[key])
        if generation == 0:
            specs.append((names[key], "U8", (_blob_length(blocks, scales, bias),)))
        else:
            specs += [(f"{key}.weight.format", "U8", ()), (f"{key}.weight", "U8", blocks.shape),
                      (f"{key}.weight.scales", "U8", scales.shape)]
            if bias is not None:
                specs.append((f"{key}.bias", bias.dtype, bias.shape))
    if generation == 1:
        specs = [(name, "U32", ()) for name in _VERSION_NAMES] + specs
    metadata = {"uqff.producer": "fp4ref"} if generation == 1 else None
    with SafetensorsWriter(path, specs, metadata) as writer:
        if generation == 1:
            for part in version:
                writer.write(np.array(part, "<u4"))
        for key in layers:
            blocks, scales, bias = _as_layer(key, layers[key])
            if generation == 0:
                blob = encode_mxfp4_blob(blocks, scales, bias, version)
                writer.write(np.frombuffer(blob, np.uint8))
                continue
            writer.write(np.array(MXFP4, np.uint8))
            writer.write(blocks)
            writer.write(scales)
            if bias is not None:
                writer.write(bias)


def _name(key: Any, generation: int) -> str:
    if generation == 0:
        text = str(key)
        if isinstance(key, bool) or not _is_index(text):
            raise ValueError(f"generation 0 layer keys must be layer indices (ints >= 0); "
                             f"got {key!r}")
        return text
    if not isinstance(key, str) or not key:
        raise ValueError(f"generation 1 layer keys must be weight paths (str); got {key!r}")
    return key
