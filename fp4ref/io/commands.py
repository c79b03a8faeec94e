"""``fp4ref inspect``, ``fp4ref dequantize`` and ``fp4ref convert``: files in, files out,
one tensor (or one slice of one) in memory at a time, written atomically."""

from __future__ import annotations

import argparse
import fnmatch
import json
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
from . import gguf as gguf_io
from .atomic import outputs
from .safetensors_file import LazyTensor, SafetensorsReader, SafetensorsWriter

#: Bytes of decoded output per slice when dequantizing a layer.
CHUNK_BYTES = 32 << 20
TARGETS = ("uqff0", "uqff1", *checkpoints.CONVENTIONS, "gguf")
#: Hugging Face's fused expert tensors (gpt-oss, Llama 4): in float files they are
#: ``[E, K, N]`` (``x @ W``), while quantized layers are ``[E, N, K]``; ``convert`` quantizes
#: them transposed and ``dequantize`` writes them transposed back, as transformers does.
FUSED = ("*.experts.gate_up_proj", "*.experts.down_proj")
#: Tensors of a float file that ``convert`` quantizes by default (shell patterns).
QUANTIZE = ("*.weight", *FUSED)
#: Tensors left in float by default even when they match :data:`QUANTIZE`: embeddings, the
#: output head and MoE routers (gpt-oss ``mlp.router``, Qwen/Mixtral ``mlp.gate``), as the
#: published MXFP4/NVFP4 checkpoints leave them.
KEEP = ("*embed*", "*lm_head*", "*router*", "*.mlp.gate.weight")
#: The safetensors metadata key naming the convention of a checkpoint fp4ref wrote.
CONVENTION_KEY = checkpoints.CONVENTION_KEY
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
        ``"uqff0"``, ``"uqff1"``, a checkpoint convention, ``"gguf"``, or ``"float"``.
    layers : mapping of key to layer, read when looked up
    others : mapping of name to lazy tensor
        Tensors that are not quantized layers; copied as they are.
    """

    def __init__(self, path: str, convention: str | None = None) -> None:
        self.path = path
        self.checkpoint: checkpoints.Checkpoint | None = None
        self.gguf: gguf_io.GgufFile | None = None
        self.decode = api.dequantize
        self.metadata: dict[str, str] = {}  # a safetensors source's __metadata__
        if gguf_io.is_gguf(path):
            if convention:
                raise ValueError("convention applies to safetensors checkpoints; a GGUF "
                                 "file's layout is ggml's")
            self.gguf = self.layers = gguf_io.read(path)
            self.kind, self.decode = "gguf", gguf_io.dequantize
            self.others = {n: gguf_io.LazyGgufTensor(self.gguf, n) for n in self.gguf.others}
            self.metadata = self.gguf.safetensors_metadata()
            return
        reader = SafetensorsReader(path)
        names = reader.tensors
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
            self.metadata = dict(reader.metadata)
            self.others = {n: LazyTensor(reader, n) for n in names}
            return
        self.kind, self.layers = self.checkpoint.convention, self.checkpoint
        self.metadata = {k: v for k, v in self.checkpoint.file.metadata.items()
                         if k != CONVENTION_KEY}
        self.others = {n: LazyTensor(self.checkpoint.file, n) for n in self.checkpoint.others}

    def describe(self) -> str:
        if self.gguf is not None:
            counts = {}
            for roles in self.gguf.entries.values():
                name = self.gguf.tensors[roles["weight"]].type_name
                counts[name] = counts.get(name, 0) + 1
            types = ", ".join(f"{n} {t}" for t, n in counts.items()) or "no FP4 tensors"
            origin = self.gguf.metadata.get(gguf_io.SOURCE_KEY)
            arch = self.gguf.metadata.get("general.architecture")
            split = len(self.gguf.shards)
            return (f"GGUF v{self.gguf.version} ({types})"
                    + (f" in {split} files" if split > 1 else "")
                    + (f", architecture {arch}" if isinstance(arch, str) else "")
                    + (f", written by fp4ref from {origin}" if origin else ""))
        if self.kind.startswith("uqff"):
            version = ".".join(map(str, self.layers.version or ()))
            return f"UQFF generation {self.kind[-1]}.x (version {version or '-'})"
        if self.kind == "float":
            return "unquantized safetensors"
        return f"{self.layers.format.upper()} checkpoint, convention {self.kind}"

    def format(self, key: Any) -> str:
        """``"mxfp4"`` or ``"nvfp4"``: the format of layer ``key``, read from the header."""
        if self.gguf is not None:
            ggml_type = self.gguf.tensors[self.gguf.entries[key]["weight"]].ggml_type
            return "mxfp4" if ggml_type == gguf_io.MXFP4 else "nvfp4"
        return "mxfp4" if self.checkpoint is None else self.checkpoint.format

    def weight_name(self, key: Any) -> str:
        if self.gguf is not None:
            return self.gguf.entries[key]["weight"]
        if self.checkpoint is not None:
            return self.checkpoint.weight_name(key)
        return f"{key}.weight" if self.kind == "uqff1" else str(key)

    def bias_name(self, key: Any) -> str:
        if self.gguf is not None:
            return self.gguf.entries[key].get("bias", f"{key}.bias")
        if self.checkpoint is not None:
            entry = self.checkpoint.entries[key]
            return entry.names.get("bias", key + checkpoints._BIAS[entry.convention])
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
        if self.gguf is not None:
            for start in range(0, first, step):
                yield self.gguf.layer(key, rows=(start, min(start + step, first)))
            return
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


_LEVELS = " ▁▂▃▄▅▆▇█"


def _histogram(exponents: np.ndarray) -> str:
    """The count of scales per power of two, as one bar per exponent from the least to the
    greatest (adjacent exponents merged beyond 40 bars)."""
    if not exponents.size:
        return "-"
    low, high = int(exponents.min()), int(exponents.max())
    width = -(-(high - low + 1) // 40)  # exponents per bar
    counts = np.bincount((exponents - low) // width)
    top = int(counts.max())
    bars = "".join(_LEVELS[-(-8 * int(c) // top)] for c in counts)  # ceil: any count shows
    return f"2^{low} {bars} 2^{high}"


def _scale_summary(layer: Any) -> tuple[str, str, str]:
    """(min .. median .. max, zero and NaN counts, histogram) of a layer's decoded scales."""
    raw = np.ascontiguousarray(layer.scales).view(np.uint8)
    if getattr(layer, "scale_layout", "linear") != "linear":
        from ..layouts import unswizzle

        rows, cols = layer.shape[-2], layer.shape[-1] // api.FORMATS[layer.format][0]
        raw = unswizzle(raw, rows=rows, cols=cols, layout=layer.scale_layout)
    raw = raw.reshape(-1)
    ggml = isinstance(layer, gguf_io.GgufLayer)
    if layer.format == "mxfp4":
        # E8M0 (OCP MX 5.4.1): 2^(b - 127), 0xFF NaN; ggml's decode reads 0xFF as 2^128
        nan = int(np.count_nonzero(raw == 0xFF))
        smallest = int(np.count_nonzero(raw == 0))
        finite = raw[raw != 0xFF].astype(np.int64) - 127
        counts = (f"0x00 {smallest}, " + (f"0xFF (ggml: 2^128) {nan}" if ggml
                                          else f"NaN (0xFF) {nan}"))
        if not finite.size:
            return f"all {nan} 0xFF", counts, "-"
        return (f"2^{finite.min()} .. 2^{int(np.median(finite))} .. 2^{finite.max()}",
                counts, _histogram(finite))
    values = gguf_io.ue4m3(raw) if ggml else api.decode_e4m3(raw)
    nan = int(np.count_nonzero(np.isnan(values)))
    finite = values[~np.isnan(values)]
    zeros = int(np.count_nonzero(finite == 0))
    counts = f"zero {zeros}, NaN {nan}"
    if not finite.size:
        return f"all {nan} NaN", counts, "-"
    positive = np.abs(finite[finite != 0])
    exponents = np.frexp(positive)[1].astype(np.int64) - 1
    return (f"{finite.min():g} .. {float(np.median(finite)):g} .. {finite.max():g}", counts,
            _histogram(exponents))


def _inspect(args: argparse.Namespace) -> int:
    source = Source(args.file, args.convention)
    print(f"{args.file}: {source.describe()}, {len(source.layers)} quantized layers, "
          f"{len(source.others)} other tensors")
    rows = []
    for key in source.layers:
        # GGUF: the scales alone (ggml's records interleave them with the codes)
        layer = source.layers[key] if source.gguf is None else source.gguf.layer(key,
                                                                                codes=False)
        ts = layer.tensor_scale
        if ts is None:
            extra = ""
        elif np.ndim(ts):
            extra = f" x {np.min(ts):g}..{np.max(ts):g} ({np.size(ts)} experts)"
        else:
            extra = f" x {float(ts):g}"
        kind = source.kind
        if source.gguf is not None:
            kind = f"ggml {source.gguf.tensors[source.weight_name(key)].type_name}"
        summary, counts, histogram = _scale_summary(layer)
        rows.append([key, layer.format, "x".join(map(str, layer.shape)), kind,
                     summary + extra, counts, histogram])
    if source.gguf is not None and source.others:
        kinds: dict[str, int] = {}
        for name in source.others:
            kind = source.gguf.tensors[name].type_name
            kinds[kind] = kinds.get(kind, 0) + 1
        print("other tensors: " + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())))
    if rows:
        print(format_table(["layer", "format", "shape", "profile",
                            "scales: min .. median .. max", "zero / NaN scales",
                            "scale histogram"], rows))
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
    fused = {key for key, (shape, _) in shapes.items() if _fused(source.weight_name(key), shape)}
    for key, (shape, bias) in shapes.items():
        stored = (*shape[:-2], shape[-1], shape[-2]) if key in fused else shape
        specs.append((source.weight_name(key), api._checks.OUTPUT_DTYPES[dtype], stored))
        total += math.prod(shape) * width
        if bias is not None:
            specs.append((source.bias_name(key), bias[0], bias[1]))
    for name, lazy in source.others.items():
        specs.append((name, lazy.dtype, lazy.shape))
    progress = Progress(total, "dequantize", quiet)
    with _core_left_for_writes():
        _decode_into(source, shapes, dtype, width, SafetensorsWriter(out, specs), progress,
                     fused)
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
                 writer: SafetensorsWriter, progress: Progress, fused: set = frozenset()
                 ) -> None:
    """Decode ``source``'s layers slice by slice into ``writer`` (the ``fused`` ones
    transposed to ``[E, K, N]``); copy its other tensors."""
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
                source.decode(part, dtype=dtype, out=decoded.reshape(part.shape))
                if key in fused:  # whole experts per slice: [e, N, K] -> [e, K, N]
                    decoded = _transposed(decoded.reshape(part.shape))
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


def _transposed(values: np.ndarray, tile: int = 64) -> np.ndarray:
    """``values`` [e, N, K] as a new C-contiguous [e, K, N], copied in tiles of ``tile``
    rows (a plain strided copy walks memory ``N`` elements apart and is several times
    slower)."""
    words = values.view(f"u{values.dtype.itemsize}")  # bfloat16 copies faster as uint16
    out = np.empty((*words.shape[:-2], words.shape[-1], words.shape[-2]), words.dtype)
    for start in range(0, words.shape[-2], tile):
        out[..., start:start + tile] = np.swapaxes(words[..., start:start + tile, :], -1, -2)
    return out.view(values.dtype)


def _dequantize(args: argparse.Namespace) -> int:
    dequantize_file(args.file, args.output, args.dtype, args.convention, args.quiet)
    return 0


# --- convert ----------------------------------------------------------------------------


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def _fused(name: str, shape: tuple[int, ...]) -> bool:
    """Whether a float tensor of this name and shape is a fused ``[E, K, N]`` expert tensor."""
    return len(shape) == 3 and _matches(name, FUSED)


class _Quantized(Mapping):
    """Float tensors of a source quantized on lookup with :func:`fp4ref.quantize`.

    A tensor is quantized when its name matches one of ``quantize`` and none of ``keep``,
    it is a float of two or more dimensions, and its K fits the block size. A fused expert
    tensor (:data:`FUSED`, ``[E, K, N]``) is quantized as ``[E, N, K]``; ``<key>.weight`` is
    the layer ``key``, any other name its own key.

    Attributes
    ----------
    names : dict of str to str
        Layer key -> the source tensor's name.
    left : list of (str, str)
        The float tensors left as they are, with the reason.
    """

    def __init__(self, source: Source, fmt: str, profile: str,
                 quantize: tuple[str, ...] = QUANTIZE, keep: tuple[str, ...] = KEEP,
                 block: int | None = None) -> None:
        block = block or api.FORMATS[fmt][0]
        self.source, self.fmt, self.profile = source, fmt, profile
        self.names: dict[str, str] = {}
        self.left: list[tuple[str, str]] = []
        for name, lazy in source.others.items():
            shape, dtype = tuple(lazy.shape), np.dtype(lazy.dtype)
            fused = _fused(name, shape)
            if not _matches(name, quantize):
                self.left.append((name, "matches no --quantize pattern"))
            elif _matches(name, keep):
                self.left.append((name, "matches a --keep pattern"))
            elif dtype.name not in ("float16", "bfloat16", "float32", "float64") or len(
                    shape) < 2:
                self.left.append((name, "not a float tensor of two or more dimensions"))
            elif shape[-2 if fused else -1] % block:
                self.left.append((name, f"K = {shape[-2 if fused else -1]} is not a multiple "
                                        f"of {block}"))
            else:
                self.names[name[: -len(".weight")] if name.endswith(".weight") else name] = name

    def __getitem__(self, key: str) -> Any:
        from ..quantize import quantize

        name = self.names[key]
        values = np.asarray(self.source.others[name])
        if _fused(name, values.shape):
            values = np.ascontiguousarray(np.swapaxes(values, -1, -2))  # x @ W: K first
        if values.dtype == np.float64:
            values = values.astype(np.float32)  # quantize takes float16/bfloat16/float32
        return quantize(values, format=self.fmt, profile=self.profile)

    def weight_name(self, key: str) -> str:
        return self.names[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class _Repacked(Mapping):
    """GGUF layers as the other targets take them: low-first nibbles, E4M3 scale bytes.

    ggml's UE4M3 reads bytes 0x7F..0xFF otherwise than E4M3 does, and a checkpoint holds
    one tensor scale per layer: such layers are refused, naming the tensor.
    """

    def __init__(self, layers: Mapping, to: str) -> None:
        self.layers, self.to = layers, to

    def __getitem__(self, key: str) -> Any:
        from .layer import QuantizedLayer

        layer = self.layers[key]
        size = api.FORMATS[layer.format][0]
        scales = np.asarray(layer.scales)
        if layer.format == "nvfp4" and np.any(scales >= 0x7F):
            raise ValueError(f"layer {key!r}: scale bytes 0x7F..0xFF mean other values to "
                             f"ggml's UE4M3 than to E4M3; {self.to} cannot hold them")
        if np.ndim(layer.tensor_scale):
            raise ValueError(f"layer {key!r}: one tensor scale per expert; {self.to} holds "
                             f"one per layer")
        blocks = np.ascontiguousarray(layer.blocks)
        flat = blocks.reshape(-1, blocks.shape[-1])
        low = np.empty_like(flat)
        step = max(1, (32 << 20) // (2 * flat.shape[-1]))  # unpacked codes stay ~32 MB
        for start in range(0, flat.shape[0], step):
            rows = slice(start, start + step)
            low[rows] = api.pack(api.unpack(flat[rows], layer.nibble_order, block_size=size))
        return QuantizedLayer(low.reshape(blocks.shape), np.ascontiguousarray(scales),
                              layer.format,
                              bias=layer.bias, tensor_scale=layer.tensor_scale,
                              extras=dict(layer.extras))

    def __iter__(self) -> Iterator[str]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)


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
                 profile: str = "ocp", residual: str | None = None, *,
                 format: str | None = None, quantize: tuple[str, ...] = QUANTIZE,
                 keep: tuple[str, ...] = KEEP,
                 left: list[tuple[str, str]] | None = None, quiet: bool = True) -> list[str]:
    """Rewrite ``path`` as ``to`` (a UQFF generation, a checkpoint convention or GGUF).

    Quantized layers are moved, not recomputed: their codes and scales are repacked into the
    target's layout. A float file is quantized first with ``profile``: the tensors that
    ``quantize`` selects and ``keep`` does not (see :data:`QUANTIZE`, :data:`KEEP`), into
    ``format`` (GGUF only, default MXFP4; the other targets hold one format). UQFF has no
    place for other tensors: they go to ``residual`` (default ``residual.safetensors``
    beside ``out``), as mistral.rs does; an existing file there is replaced only when
    ``residual`` names it. Every output appears only when all are complete. ``left``, when
    given, receives each tensor written unquantized with the reason. A progress bar goes to
    stderr unless ``quiet``. Returns the paths written.
    """
    if to not in TARGETS:
        raise ValueError(f"to must be one of {TARGETS}; got {to!r}")
    if format is not None and (to != "gguf" or format not in api.FORMATS):
        raise ValueError(f"format applies to --to gguf and is one of {tuple(api.FORMATS)}; "
                         f"got {format!r} for {to!r}")
    source = Source(path, convention)
    fmt = format or ("nvfp4" if to in checkpoints.CONVENTIONS and to != "gpt-oss"
                     else "mxfp4")
    layers: Mapping = source.layers
    others = dict(source.others)
    held = None if to == "gguf" else fmt
    for key in layers if held else ():
        if source.format(key) != held:
            raise ValueError(f"layer {key!r} is {source.format(key).upper()}; {to} holds "
                             f"{held.upper()}: convert moves codes and scales, it does not "
                             f"requantize (dequantize first, then convert the float file)")
    names = {str(key): (source.weight_name(key), source.bias_name(key)) for key in layers} \
        if to == "gguf" else {}
    if source.kind == "float":
        # ggml's records hold 32 (MXFP4) or 64 (NVFP4) elements
        layers = _Quantized(source, fmt, profile, quantize, keep,
                            block=gguf_io.FP4_RECORDS[gguf_io.NVFP4][0] if (
                                to == "gguf" and fmt == "nvfp4") else None)
        for name in layers.names.values():
            del others[name]
        names = {key: (name, f"{key}.bias") for key, name in layers.names.items()}
        if left is not None:
            left.extend(layers.left)
    elif left is not None:
        left.extend((name, "not a quantized layer of the source") for name in others)
    if source.gguf is not None and to != "gguf":
        layers = _Repacked(layers, to)
    progress = Progress(1, "convert", quiet)
    layers = _Counted(layers, progress, {
        key: _input_bytes(source, layers, key) for key in layers})
    others = {name: _CountedTensor(value, progress) for name, value in others.items()}
    # every writer looks each layer up twice (header, then data; half its size each) and
    # reads others once: the bar counts the input's bytes
    progress.total = max(1, sum(layers.sizes.values()) + sum(
        math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in others.values()))
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
        elif to == "gguf":
            carried = {gguf_io.SOURCE_KEY: source.kind}
            if source.metadata:
                carried[gguf_io.METADATA_KEY] = json.dumps(source.metadata)
            gguf_io.write(out, _StrKeys(layers), others, metadata=carried, names=names)
        else:
            # the source's own metadata goes on; a ModelOpt layout also fits ComfyUI's when
            # N % 128 == 0 and K/16 % 4 == 0, so fp4ref names the convention it wrote
            marked = {CONVENTION_KEY: to} if to == "modelopt" else {}
            checkpoints.write(out, _StrKeys(layers), to, others=others,
                              metadata={**source.metadata, **marked} or None)
    progress.finish()
    return written


def _input_bytes(source: Source, layers: Mapping, key: Any) -> int:
    """About how many bytes of the input layer ``key`` is (for the progress bar)."""
    if isinstance(layers, _Quantized):
        lazy = source.others[layers.names[key]]
        return math.prod(lazy.shape) * np.dtype(lazy.dtype).itemsize
    return math.prod(source.shape(key)[0]) // 2


class _Counted(Mapping):
    """``layers`` whose lookups advance a progress bar by half each layer's size."""

    def __init__(self, layers: Mapping, progress: Progress, sizes: dict) -> None:
        self.layers, self.progress, self.sizes = layers, progress, sizes

    def __getitem__(self, key: Any) -> Any:
        layer = self.layers[key]
        self.progress.advance(self.sizes[key] // 2)
        return layer

    def __iter__(self) -> Iterator[Any]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)


class _CountedTensor:
    """A lazy tensor whose reading advances a progress bar by its size."""

    def __init__(self, value: Any, progress: Progress) -> None:
        if not (hasattr(value, "dtype") and hasattr(value, "shape")):
            value = np.asarray(value)
        self.value, self.progress = value, progress
        self.dtype, self.shape = value.dtype, tuple(value.shape)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = np.asarray(self.value)
        self.progress.advance(array.nbytes)
        return array if dtype is None else array.astype(dtype)


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
    left: list[tuple[str, str]] = []
    written = convert_file(args.input, args.output, args.to, args.convention, args.profile,
                           args.residual, format=args.format,
                           quantize=tuple(args.quantize or QUANTIZE),
                           keep=tuple(KEEP if args.keep is None else args.keep), left=left,
                           quiet=args.quiet)
    if not args.quiet:
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
        _report_left(left)
    return 0


def _report_left(left: list[tuple[str, str]], shown: int = 8) -> None:
    """The tensors written unquantized, grouped by reason, on stderr."""
    if not left:
        return
    print(f"left unquantized: {len(left)} tensors", file=sys.stderr)
    reasons: dict[str, list[str]] = {}
    for name, reason in left:
        reasons.setdefault(reason, []).append(name)
    for reason, group in reasons.items():
        more = f" (+{len(group) - shown} more)" if len(group) > shown else ""
        print(f"  {reason} ({len(group)}): {', '.join(group[:shown])}{more}", file=sys.stderr)


def _reporting(run):
    """``run`` with bad files and arguments reported on stderr (exit status 2), not raised."""
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return run(args)
        except (FormatError, ValueError, OSError) as error:
            print(f"fp4ref {args.command}: error: {error}", file=sys.stderr)
            return 2
    return wrapped


class _NamesFormatter(argparse.HelpFormatter):
    """argparse's help layout without line breaks at hyphens, so that a hyphenated profile
    name (``torchao-rceil``, ``gguf-py``) stays whole in ``--help``."""

    def _split_lines(self, text, width):
        import textwrap

        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``fp4ref inspect``, ``fp4ref dequantize`` and ``fp4ref convert``."""
    from ..profiles import profiles

    reads = "safetensors checkpoint, UQFF or GGUF file"

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--convention", choices=checkpoints.CONVENTIONS,
                       help="read a safetensors checkpoint under this convention (needed only "
                            "when its layers fit more than one and no marker says which)")
        p.add_argument("-q", "--quiet", action="store_true",
                       help="no progress bar or summary on stderr")

    p = sub.add_parser("inspect", help="list the quantized tensors of a file",
                       description="List each quantized tensor of a file: format, shape, "
                       "convention, scale range, zero and NaN scale counts, scale histogram.")
    p.add_argument("file", help=f"the {reads} to list")
    common(p)
    p.set_defaults(run=_reporting(_inspect))
    p = sub.add_parser("dequantize", help="decode a quantized file into a safetensors file",
                       description="Decode every quantized layer into a safetensors file "
                       "(other tensors copied), streaming; GGUF layers decode as ggml does.")
    p.add_argument("file", help=f"the {reads} to decode")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="the safetensors file to write (replaced only when complete)")
    p.add_argument("--dtype", default="bfloat16", choices=tuple(api._checks.OUTPUT_DTYPES),
                   help="dtype of the decoded weights (default: %(default)s)")
    common(p)
    p.set_defaults(run=_reporting(_dequantize))
    p = sub.add_parser("convert", formatter_class=_NamesFormatter,
                       help="rewrite a file as UQFF, another checkpoint layout "
                       "or GGUF", description="Rewrite a file in another layout. Quantized "
                       "layers are moved bit for bit (codes and scales repacked, never "
                       "recomputed); a float file is quantized first. Tensors left "
                       "unquantized are listed at the end.")
    p.add_argument("input", help=f"the {reads}, or an unquantized safetensors file, to read")
    p.add_argument("output", help="the file to write (replaced only when complete)")
    p.add_argument("--to", required=True, choices=TARGETS,
                   help="the layout to write: UQFF generation 0 or 1 (MXFP4), a safetensors "
                        "convention (gpt-oss MXFP4; modelopt, compressed-tensors, comfyui "
                        "NVFP4), or gguf (ggml MXFP4 / NVFP4 tensors)")
    p.add_argument("--profile", default="ocp", choices=tuple(profiles()), metavar="PROFILE",
                   help="quantization profile for float inputs, one of: "
                        + ", ".join(profiles()) + " (default: %(default)s)")
    p.add_argument("--format", choices=tuple(api.FORMATS),
                   help="--to gguf with a float input: quantize to this format (default "
                        "mxfp4)")
    p.add_argument("--quantize", action="append", metavar="PATTERN",
                   help="float inputs: quantize the tensors whose names match this shell "
                        "pattern (repeatable; replaces the default "
                        + " ".join(QUANTIZE) + "; the fused expert tensors "
                        + " ".join(FUSED) + " are [E, K, N], quantized transposed)")
    p.add_argument("--keep", action="append", metavar="PATTERN",
                   help="float inputs: leave tensors matching this pattern unquantized "
                        "(repeatable; replaces the default " + " ".join(KEEP)
                        + "; --keep '' keeps none)")
    p.add_argument("--residual", metavar="FILE",
                   help="UQFF targets: the safetensors file for the tensors UQFF cannot hold "
                        "(default residual.safetensors beside the output, refused if it "
                        "exists; a file named here is replaced)")
    common(p)
    p.set_defaults(run=_reporting(_convert))
