"""Safetensors files, parsed and written by fp4ref itself so untrusted headers are checked
before any byte is trusted, and so tensors stream in and out one (or one slice) at a time.

The format: a u64 little-endian header length ``n``, ``n`` bytes of UTF-8 JSON mapping each
tensor name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the
end of the header) plus an optional ``"__metadata__"`` of string pairs, then the data
buffer. Tensors are row-major, little-endian, and tile the buffer without gaps or overlap.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

import ml_dtypes
import numpy as np

from .._checks import integer
from ..errors import FormatError
from . import atomic

#: Safetensors dtype names and the numpy dtypes fp4ref reads them as.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_),
    "U8": np.dtype(np.uint8),
    "I8": np.dtype(np.int8),
    "U16": np.dtype("<u2"),
    "I16": np.dtype("<i2"),
    "U32": np.dtype("<u4"),
    "I32": np.dtype("<i4"),
    "U64": np.dtype("<u8"),
    "I64": np.dtype("<i8"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "F8_E8M0": np.dtype(ml_dtypes.float8_e8m0fnu),
}

#: Largest header accepted (the safetensors library's own limit is 100 MB).
MAX_HEADER_BYTES = 100_000_000
#: Most dimensions a tensor may have.
MAX_NDIM = 16


def open_regular(path: str | os.PathLike) -> IO[bytes]:
    """``path`` opened for binary reading, refused unless it is a regular file.

    The open does not block (a FIFO without a writer would block a plain ``open``), and the
    check is made on the opened file, so nothing can swap the path in between.

    Raises
    ------
    FormatError
        If ``path`` is a FIFO, a directory, a device or a socket.
    OSError
        If it cannot be opened (missing, no permission).
    """
    nonblocking = getattr(os, "O_NONBLOCK", 0)  # POSIX; Windows has no FIFOs to block on
    descriptor = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_BINARY", 0)
                         | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if not stat.S_ISREG(mode):
            kind = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a directory", stat.S_IFCHR:
                    "a character device", stat.S_IFBLK: "a block device",
                    stat.S_IFSOCK: "a socket"}.get(stat.S_IFMT(mode), "not a plain file")
            raise FormatError(f"{os.fspath(path)}: is {kind}; fp4ref reads regular files only")
        if nonblocking:
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def dtype_name(dtype: Any) -> str:
    """The safetensors name of a numpy dtype (``ValueError`` if it has none)."""
    wanted = np.dtype(dtype).newbyteorder("<") if np.dtype(dtype).itemsize > 1 else dtype
    for name, candidate in DTYPES.items():
        if np.dtype(wanted) == candidate:
            return name
    raise ValueError(f"dtype {np.dtype(dtype)} has no safetensors name")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's header entry: absolute byte range ``[start, end)`` in the file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def _entry(name: str, entry: Any, where: str) -> tuple[str, tuple[int, ...], int, int]:
    """Check one header entry; returns (dtype, shape, begin, end) relative to the buffer."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise FormatError(
            f"{where}: tensor {name!r} must be an object with keys dtype, shape, data_offsets"
        )
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise FormatError(f"{where}: tensor {name!r} has unknown dtype {dtype!r}")
    if not isinstance(shape, list) or len(shape) > MAX_NDIM:
        raise FormatError(
            f"{where}: tensor {name!r} shape must be a list of at most {MAX_NDIM} dimensions"
        )
    if not all(type(d) is int and 0 <= d < 2**48 for d in shape):
        raise FormatError(f"{where}: tensor {name!r} has a bad dimension in shape {shape}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(type(o) is int and 0 <= o < 2**63 for o in offsets)
            or offsets[0] > offsets[1]):
        raise FormatError(f"{where}: tensor {name!r} has bad data_offsets {offsets!r}")
    nbytes = math.prod(shape) * DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != nbytes:
        raise FormatError(
            f"{where}: tensor {name!r} of dtype {dtype} and shape {shape} needs {nbytes} bytes; "
            f"data_offsets {offsets} give {offsets[1] - offsets[0]}"
        )
    return dtype, tuple(shape), offsets[0], offsets[1]


def parse_header(head: bytes, file_size: int, where: str) -> tuple[dict, dict[str, TensorInfo]]:
    """Metadata and tensor entries of a file whose first bytes are ``head``.

    ``head`` must hold at least the 8-byte length and the header it announces; the length
    is checked against ``file_size`` before it is used.
    """
    if len(head) < 8:
        raise FormatError(f"{where}: {len(head)} bytes is too short for the 8-byte header length")
    (length,) = struct.unpack_from("<Q", head)
    if length > MAX_HEADER_BYTES or 8 + length > file_size:
        raise FormatError(
            f"{where}: header length {length} is past the end of the file ({file_size} bytes) "
            f"or above {MAX_HEADER_BYTES}"
        )
    if len(head) < 8 + length:
        raise FormatError(f"{where}: header truncated at {len(head)} of {8 + length} bytes")
    try:
        header = json.loads(head[8:8 + length].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise FormatError(f"{where}: header is not UTF-8 JSON ({error})") from None
    if not isinstance(header, dict):
        raise FormatError(f"{where}: header must be a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise FormatError(f"{where}: __metadata__ must map strings to strings")
    data_start, data_size = 8 + length, file_size - 8 - length
    entries = [(name, *_entry(name, entry, where)) for name, entry in header.items()]
    position = 0
    for name, _, _, begin, end in sorted(entries, key=lambda e: (e[3], e[4])):
        if begin != position:
            what = "overlaps the previous tensor" if begin < position else "leaves a gap"
            raise FormatError(f"{where}: tensor {name!r} at data offset {begin} {what}")
        position = end
    if position != data_size:
        raise FormatError(
            f"{where}: tensors cover {position} bytes of a {data_size}-byte data buffer"
        )
    tensors = {
        name: TensorInfo(name, dtype, shape, data_start + begin, data_start + end)
        for name, dtype, shape, begin, end in entries
    }
    return metadata, tensors


def read_bytes(data: bytes, where: str) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """(metadata, tensors) of a whole safetensors file held in memory, checked as a file is.

    Raises
    ------
    FormatError
        Naming ``where`` and what was wrong.
    """
    metadata, infos = parse_header(data, len(data), where)
    tensors = {
        name: np.frombuffer(data, DTYPES[info.dtype], math.prod(info.shape), info.start)
        .reshape(info.shape).copy()
        for name, info in infos.items()
    }
    return metadata, tensors


class SafetensorsReader:
    """A safetensors file whose header has been checked; tensors are read on demand.

    Parameters
    ----------
    path : str or os.PathLike

    Raises
    ------
    FormatError
        If the header is malformed, inconsistent or points past the end of the file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        with open_regular(self.path) as f:
            size = os.fstat(f.fileno()).st_size
            prefix = f.read(8)
            if len(prefix) == 8:
                (length,) = struct.unpack("<Q", prefix)
                if length <= MAX_HEADER_BYTES and 8 + length <= size:
                    prefix += f.read(length)
        self.metadata, self.tensors = parse_header(prefix, size, self.path)

    def __contains__(self, name: object) -> bool:
        return name in self.tensors

    def read(self, name: str, rows: tuple[int, int] | None = None) -> np.ndarray:
        """The tensor ``name``, or only ``rows = (first, stop)`` of its first axis."""
        info = self.tensors[name]
        dtype = DTYPES[info.dtype]
        shape = info.shape
        start, nbytes = info.start, info.nbytes
        if rows is not None:
            if not isinstance(rows, (tuple, list)) or len(rows) != 2:
                raise TypeError(f"rows must be a (first, stop) tuple of ints; got {rows!r}")
            first, stop = integer("rows[0]", rows[0]), integer("rows[1]", rows[1])
            if not shape or not 0 <= first <= stop <= shape[0]:
                raise ValueError(f"rows {rows} out of range for {name!r} of shape {shape}")
            row_bytes = math.prod(shape[1:]) * dtype.itemsize
            start, nbytes = start + first * row_bytes, (stop - first) * row_bytes
            shape = (stop - first, *shape[1:])
        out = np.empty(shape, dtype)
        with open_regular(self.path) as f:
            f.seek(start)
            view = memoryview(out.reshape(-1).view(np.uint8))
            got = f.readinto(view) if nbytes else 0
        if got != nbytes:
            raise FormatError(f"{self.path}: tensor {name!r} truncated ({got} of {nbytes} bytes)")
        return out


class LazyTensor:
    """A tensor of a :class:`SafetensorsReader` read only when turned into an array."""

    def __init__(self, reader: SafetensorsReader, name: str) -> None:
        self.reader, self.name = reader, name
        info = reader.tensors[name]
        self.shape, self.dtype = info.shape, DTYPES[info.dtype]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = self.reader.read(self.name)
        return array if dtype is None else array.astype(dtype)


class SafetensorsWriter:
    """Write a safetensors file tensor by tensor, atomically.

    The names, dtypes and shapes are declared up front (the header comes first); the data
    then arrives in that order through :meth:`write`, whole or in slices. The file appears
    under ``path`` only when :meth:`close` finds every byte written (or, inside an
    :func:`~fp4ref.io.atomic.outputs` block, when the block ends well); an error, or
    leaving a ``with`` block by an exception (a signal included), removes the temporary
    file and leaves ``path`` as it was (:mod:`fp4ref.io.atomic`).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        specs: Iterable[tuple[str, Any, tuple[int, ...]]],
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        header: dict[str, Any] = {}
        if metadata:
            header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
        self._plan: list[tuple[str, np.dtype, int]] = []
        offset = 0
        for name, dtype, shape in specs:
            if name in header or name == "__metadata__":
                raise ValueError(f"tensor name {name!r} given twice or reserved")
            kind = dtype if isinstance(dtype, str) else dtype_name(dtype)
            if kind not in DTYPES:
                raise ValueError(f"dtype {kind!r} is not a safetensors dtype")
            shape = [integer(f"shape of tensor {name!r}", d, minimum=0) for d in shape]
            nbytes = math.prod(shape) * DTYPES[kind].itemsize
            header[name] = {"dtype": kind, "shape": shape,
                            "data_offsets": [offset, offset + nbytes]}
            self._plan.append((name, DTYPES[kind], nbytes))
            offset += nbytes
        text = json.dumps(header, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 8)  # pad the header to 8 bytes, as the library does
        self._file, self._temp = atomic.temporary(self.path)
        self._index, self._done = 0, 0
        self._write_bytes(struct.pack("<Q", len(text)) + text)

    def _write_bytes(self, data: Any) -> None:
        try:
            self._file.write(data)
        except BaseException:
            self.abort()
            raise

    def write(self, array: Any) -> None:
        """Append ``array`` (the next tensor, or its next slice) in declared order."""
        try:
            while self._index < len(self._plan) and self._done == self._plan[self._index][2]:
                self._index, self._done = self._index + 1, 0
            if self._index == len(self._plan):
                raise ValueError("more data written than the declared tensors hold")
            name, dtype, nbytes = self._plan[self._index]
            data = np.ascontiguousarray(array)
            if data.dtype != dtype:
                raise ValueError(f"tensor {name!r} needs dtype {dtype}; got {data.dtype}")
            if self._done + data.nbytes > nbytes:
                raise ValueError(f"tensor {name!r} holds {nbytes} bytes; got more")
            self._file.write(memoryview(data.reshape(-1).view(np.uint8)))
            self._done += data.nbytes
        except BaseException:
            self.abort()
            raise

    def close(self) -> None:
        """Check every declared byte arrived, then move the file into place (at the end of
        the enclosing :func:`~fp4ref.io.atomic.outputs` block, if there is one)."""
        try:
            missing = sum(n for _, _, n in self._plan[self._index:]) - self._done
            if missing:
                raise ValueError(f"{missing} declared bytes were never written to {self.path}")
            self._file.close()
        except BaseException:
            self.abort()
            raise
        atomic.commit(self._temp, self.path)

    def abort(self) -> None:
        """Drop the temporary file; ``path`` is left as it was."""
        if not self._file.closed:
            with contextlib.suppress(OSError):
                self._file.close()
        atomic.remove(self._temp)

    def __enter__(self) -> SafetensorsWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()
