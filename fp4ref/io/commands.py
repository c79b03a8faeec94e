"""``fp4ref inspect``, ``fp4ref dequantize`` and ``fp4ref convert``: files in, files out,
one tensor (or one slice of one) in memory at a time, written atomically."""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

from .. import api
from .._table import format_table
from ..errors import FormatError
from . import checkpoints, uqff
from .atomic import outputs
from .safetensors_file import LazyTensor, SafetensorsReader, SafetensorsWriter

#: Bytes of decoded output per slice when dequantizing a layer.
CHUNK_BYTES = 32 << 20
TARGETS = ("uqff0", "uqff1", *checkpoints.CONVENTIONS)
_FLOATS = ("F16", "BF16", "F32", "F64")


class Progress:
    """A one-line progress bar on stderr (silent when ``quiet``)."""

    def __init__(self, total: int, label: str, quiet: bool = False) -> None:
        self.total, self.label, self.quiet = max(total, 1), label, quiet
        self.done, self._shown, self._start = 0, 0.0, time.perf_counter()

    def advance(self, amount: int) -> None:
        self.done += amount
        now = time.perf_counter()
        if not self.quiet and (now - self._shown > 0.2 or self.done >= self.total):
            self._shown = now
            share = min(self.done / self.total, 1.0)
            bar = "#" * int(30 * share)
            sys.stderr.write(f"\r{self.label} [{bar:<30}] {100 * share:3.0f}% "
                             f"{self.done / 1e6:.0f}/{self.total / 1e6:.0f} MB")
            sys.stderr.flush()

    def finish(self) -> None:
        if not self.quiet:
            seconds = time.perf_counter() - self._start
            sys.stderr.write(f"\r{self.label} done: {self.done / 1e6:.0f} MB in "
                             f"{seconds:.1f} s{' ' * 30}\n")


class Source:
    """A file of quantized layers (UQFF or a checkpoint) or of floats, opened for streaming.

    Attributes
    ----------
    kind : str
        ``"uqff0"``, ``"uqff1"``, a checkpoint convention, or ``"float"``.
    layers : mapping of key to layer, read when looked up
    others : mapping of name to lazy tensor
        Tensors that are not quantized layers; copied as they are.
    """

    def __init__(self, path: str, convention: str | None = None) -> None:
        self.path = path
        reader = SafetensorsReader(path)
        names = reader.tensors
        self.checkpoint: checkpoints.Checkpoint | None = None
        blobs = bool(names) and all(n.isdigit() for n in names)  # 0.x: blobs named by index
        if any(n.startswith("uqff.version.") for n in names) or path.endswith(".uqff") or blobs:
            self.layers: Mapping[Any, Any] = uqff.read(path)
            self.kind = f"uqff{self.layers.generation}"
            self.others: dict[str, Any] = {}
            return
        try:
            self.checkpoint = checkpoints.read(path, convention)
        except FormatError as error:
            if convention or "no quantized layer" not in str(error):
                raise
            self.kind, self.layers = "float", {}
            self.others = {n: LazyTensor(reader, n) for n in names}
            return
        self.kind, self.layers = self.checkpoint.convention, self.checkpoint
        self.others = {n: LazyTensor(self.checkpoint.file, n) for n in self.checkpoint.others}

    def describe(self) -> str:
        if self.kind.startswith("uqff"):
            version = ".".join(map(str, self.layers.version or ()))
            return f"UQFF generation {self.kind[-1]}.x (version {version or '-'})"
        if self.kind == "float":
            return "unquantized safetensors"
        return f"{self.layers.format.upper()} checkpoint, convention {self.kind}"

    def weight_name(self, key: Any) -> str:
        if self.checkpoint is not None:
            return self.checkpoint.weight_name(key)
        return f"{key}.weight" if self.kind == "uqff1" else str(key)

    def bias_name(self, key: Any) -> str:
        if self.checkpoint is not None:
            return self.checkpoint.entries[key].names["bias"]
        return f"{key}.bias" if self.kind == "uqff1" else f"{key}.bias"

    def shape(self, key: Any) -> tuple[tuple[int, ...], Any]:
        """Decoded weight shape and bias (dtype, shape) or None, reading as little as can be."""
        if self.checkpoint is not None:
            entry = self.checkpoint.entries[key]
            bias = entry.names.get("bias")
            info = self.checkpoint.file.tensors[bias] if bias else None
            return entry.shape, (info and (LazyTensor(self.checkpoint.file, bias).dtype,
                                           info.shape))
        layer = self.layers[key]
        bias = None if layer.bias is None else (layer.bias.dtype, layer.bias.shape)
        return layer.shape, bias

    def slices(self, key: Any, row_bytes_out: int) -> Iterator[Any]:
        """The layer ``key`` in slices of its first axis, each about :data:`CHUNK_BYTES`."""
        shape, _ = self.shape(key)
        first = shape[0]
        step = max(1, CHUNK_BYTES // max(row_bytes_out * math.prod(shape[1:-1]) or 1, 1))
        if self.checkpoint is None:
            layer = self.layers[key]
            for start in range(0, first, step):
                yield _rows(layer, start, min(start + step, first))
            return
        for start in range(0, first, step):
            yield self.checkpoint.layer(key, rows=(start, min(start + step, first)))


def _rows(layer: Any, start: int, stop: int) -> Any:
    from .layer import QuantizedLayer

    return QuantizedLayer(layer.blocks[start:stop], layer.scales[start:stop], layer.format,
                          tensor_scale=getattr(layer, "tensor_scale", None),
                          nibble_order=getattr(layer, "nibble_order", "low-first"))


# --- inspect ----------------------------------------------------------------------------


def _scale_summary(layer: Any) -> str:
    """min / median / max of the decoded scales and the count of special bytes."""
    raw = np.ascontiguousarray(layer.scales).view(np.uint8)
    if getattr(layer, "scale_layout", "linear") != "linear":
        from ..layouts import unswizzle

        rows, cols = layer.shape[-2], layer.shape[-1] // api.FORMATS[layer.format][0]
        raw = unswizzle(raw, rows=rows, cols=cols, layout=layer.scale_layout)
    raw = raw.reshape(-1)
    if layer.format == "mxfp4":
        nan = int(np.count_nonzero(raw == 0xFF))
        finite = raw[raw != 0xFF].astype(np.int64) - 127
        if not finite.size:
            return f"all {nan} NaN"
        return (f"2^{finite.min()} .. 2^{int(np.median(finite))} .. 2^{finite.max()}; "
                f"NaN (0xFF) {nan}")
    values = api.decode_e4m3(raw)
    nan = int(np.count_nonzero(np.isnan(values)))
    finite = values[~np.isnan(values)]
    zeros = int(np.count_nonzero(finite == 0))
    if not finite.size:
        return f"all {nan} NaN"
    return (f"{finite.min():g} .. {float(np.median(finite)):g} .. {finite.max():g}; "
            f"zero {zeros}, NaN {nan}")


def _inspect(args: argparse.Namespace) -> int:
    source = Source(args.file, args.convention)
    print(f"{args.file}: {source.describe()}, {len(source.layers)} quantized layers, "
          f"{len(source.others)} other tensors")
    rows = []
    for key in source.layers:
        layer = source.layers[key]
        extra = f" x {float(layer.tensor_scale):g}" if layer.tensor_scale is not None else ""
        rows.append([key, layer.format, "x".join(map(str, layer.shape)), source.kind,
                     _scale_summary(layer) + extra])
    if rows:
        print(format_table(["layer", "format", "shape", "profile",
                            "scales: min .. median .. max"], rows))
    return 0


# --- dequantize -------------------------------------------------------------------------


def dequantize_file(path: str, out: str, dtype: str = "bfloat16", convention: str | None = None,
                    quiet: bool = True) -> None:
    """Decode every quantized layer of ``path`` into a safetensors file ``out``; other
    tensors are copied. Streams slice by slice; ``out`` appears only when complete."""
    dtype = api._checks.output_dtype(dtype)
    width = api._checks.OUTPUT_DTYPES[dtype].itemsize
    source = Source(path, convention)
    if source.kind == "float":
        raise FormatError(f"{path}: no quantized layer to dequantize")
    specs, total = [], 0
    shapes = {key: source.shape(key) for key in source.layers}
    for key, (shape, bias) in shapes.items():
        specs.append((source.weight_name(key), api._checks.OUTPUT_DTYPES[dtype], shape))
        total += math.prod(shape) * width
        if bias is not None:
            specs.append((source.bias_name(key), bias[0], bias[1]))
    for name, lazy in source.others.items():
        specs.append((name, lazy.dtype, lazy.shape))
    progress = Progress(total, "dequantize", quiet)
    with _core_left_for_writes():
        _decode_into(source, shapes, dtype, width, SafetensorsWriter(out, specs), progress)
    progress.finish()


@contextmanager
def _core_left_for_writes() -> Iterator[None]:
    """numba runs one thread fewer (at least one) meanwhile: file writes keep a core busy,
    and a parallel kernel waits for its slowest thread."""
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(max(1, threads - 1))
    try:
        yield
    finally:
        numba.set_num_threads(threads)


def _decode_into(source: Source, shapes: dict, dtype: str, width: int,
                 writer: SafetensorsWriter, progress: Progress) -> None:
    """Decode ``source``'s layers slice by slice into ``writer``; copy its other tensors."""
    # Two reused output buffers: one is decoded into while a writer thread writes the other
    # (file writes release the GIL), and reuse spares the page faults of fresh memory.
    buffers = [np.empty(0, np.uint8), np.empty(0, np.uint8)]
    pending: list[Future | None] = [None, None]
    writes: list[Future] = []
    with writer, ThreadPoolExecutor(1) as pool:
        turn = 0
        for key, (shape, bias) in shapes.items():
            for part in source.slices(key, shape[-1] * width):
                if pending[turn] is not None:
                    pending[turn].result()
                nbytes = math.prod(part.shape) * width
                if buffers[turn].size < nbytes:
                    buffers[turn] = np.empty(nbytes, np.uint8)
                decoded = buffers[turn][:nbytes].view(api._checks.OUTPUT_DTYPES[dtype])
                api.dequantize(part, dtype=dtype, out=decoded.reshape(part.shape))
                pending[turn] = pool.submit(writer.write, decoded)
                writes.append(pending[turn])
                progress.advance(nbytes)
                turn ^= 1
            if bias is not None:
                writes.append(pool.submit(writer.write, np.asarray(
                    source.layers[key].bias) if source.checkpoint is None
                    else source.checkpoint.file.read(source.bias_name(key))))
        for name in source.others:
            writes.append(pool.submit(writer.write, np.asarray(source.others[name])))
        for done in writes:
            done.result()


def _dequantize(args: argparse.Namespace) -> int:
    dequantize_file(args.file, args.output, args.dtype, args.convention, args.quiet)
    return 0


# --- convert ----------------------------------------------------------------------------


class _Quantized(Mapping):
    """Float weights of a source quantized on lookup with :func:`fp4ref.quantize`."""

    def __init__(self, source: Source, fmt: str, profile: str) -> None:
        block = api.FORMATS[fmt][0]
        self.source, self.fmt, self.profile = source, fmt, profile
        self.names = {}
        for name, lazy in source.others.items():
            info = lazy.reader.tensors[name]
            if (name.endswith(".weight") and len(info.shape) >= 2 and info.dtype in _FLOATS
                    and info.shape[-1] % block == 0):
                self.names[name[: -len(".weight")]] = name

    def __getitem__(self, key: str) -> Any:
        from ..quantize import quantize

        values = np.asarray(self.source.others[self.names[key]])
        if values.dtype == np.float64:
            values = values.astype(np.float32)  # quantize takes float16/bfloat16/float32
        return quantize(values, format=self.fmt, profile=self.profile)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class _Indexed(Mapping):
    """Layers under the indices 0, 1, ... (UQFF 0.x keys) in the source's order."""

    def __init__(self, layers: Mapping) -> None:
        self.layers, self.keys_ = layers, list(layers)

    def __getitem__(self, index: int) -> Any:
        return self.layers[self.keys_[index]]

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.keys_)))

    def __len__(self) -> int:
        return len(self.keys_)


def convert_file(path: str, out: str, to: str, convention: str | None = None,
                 profile: str = "ocp", residual: str | None = None) -> list[str]:
    """Rewrite ``path`` as ``to`` (a UQFF generation or a checkpoint convention).

    A float checkpoint is quantized first (its ``*.weight`` tensors whose last dimension
    fits the block size) with ``profile``. UQFF has no place for other tensors: they go to
    ``residual`` (default ``residual.safetensors`` beside ``out``), as mistral.rs does; an
    existing file there is replaced only when ``residual`` names it. Every output appears
    only when all are complete. Returns the paths written.
    """
    if to not in TARGETS:
        raise ValueError(f"to must be one of {TARGETS}; got {to!r}")
    source = Source(path, convention)
    fmt = "mxfp4" if to in ("uqff0", "uqff1", "gpt-oss") else "nvfp4"
    layers: Mapping = source.layers
    others = dict(source.others)
    if source.kind == "float":
        layers = _Quantized(source, fmt, profile)
        for name in layers.names.values():
            del others[name]
    written = [out]
    if to.startswith("uqff") and others:
        if residual is None:
            residual = os.path.join(os.path.dirname(os.path.abspath(out)),
                                    "residual.safetensors")
            if os.path.lexists(residual):
                raise FileExistsError(
                    17, f"the {len(others)} tensors UQFF cannot hold would replace an existing "
                    "file; name their file with --residual (residual=)", residual)
        written.append(residual)
    with outputs():
        if to.startswith("uqff"):
            generation = int(to[-1])
            keyed = _Indexed(layers) if generation == 0 else _StrKeys(layers)
            uqff.write(out, keyed, generation=generation)
            if others:
                checkpoints_others(written[1], others)
        else:
            checkpoints.write(out, _StrKeys(layers), to, others=others)
    return written


class _StrKeys(Mapping):
    """Layers under ``str(key)`` (UQFF 1.x keys are weight paths)."""

    def __init__(self, layers: Mapping) -> None:
        self.layers = layers
        self.map = {str(k): k for k in layers}

    def __getitem__(self, key: str) -> Any:
        return self.layers[self.map[key]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.map)

    def __len__(self) -> int:
        return len(self.map)


def checkpoints_others(path: str, others: Mapping[str, Any]) -> None:
    """Write plain tensors (lazy or not) to ``path`` atomically."""
    specs = [(name, value.dtype, value.shape) for name, value in others.items()]
    with SafetensorsWriter(path, specs) as writer:
        for name in others:
            writer.write(np.asarray(others[name]))


def _convert(args: argparse.Namespace) -> int:
    for path in convert_file(args.input, args.output, args.to, args.convention, args.profile,
                             args.residual):
        if not args.quiet:
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _reporting(run):
    """``run`` with bad files and arguments reported on stderr (exit status 2), not raised."""
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (FormatError, ValueError, OSError) as error:
            print(f"fp4ref {args.command}: error: {error}", file=sys.stderr)
            return 2
    return wrapped


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``fp4ref inspect``, ``fp4ref dequantize`` and ``fp4ref convert``."""
    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--convention", choices=checkpoints.CONVENTIONS,
                       help="read a checkpoint under this convention (when detection is torn)")
        p.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    p = sub.add_parser("inspect", help="list the quantized tensors of a file")
    p.add_argument("file")
    common(p)
    p.set_defaults(run=_reporting(_inspect))
    p = sub.add_parser("dequantize", help="decode a quantized file into a safetensors file")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--dtype", default="bfloat16", choices=tuple(api._checks.OUTPUT_DTYPES))
    common(p)
    p.set_defaults(run=_reporting(_dequantize))
    p = sub.add_parser("convert", help="rewrite a file as UQFF or another checkpoint layout")
    p.add_argument("input")
    p.add_argument("output")
    p.add_argument("--to", required=True, choices=TARGETS)
    p.add_argument("--profile", default="ocp", help="quantization profile for float inputs")
    p.add_argument("--residual", help="where UQFF targets put unquantized tensors")
    common(p)
    p.set_defaults(run=_reporting(_convert))
