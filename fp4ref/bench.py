"""``fp4ref bench``: throughput measured against a memory-copy roofline in the same run.

Every figure is the best of ``--repeat`` runs after one warm-up. The roofline is a
``numba`` parallel copy moving the same number of bytes (read + written) as the
operation; a ratio of 1.0 means the operation runs at memory-copy speed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

import numpy as np
from numba import njit, prange

from . import api
from ._checks import OUTPUT_DTYPES, empty_on_lines
from ._table import format_table


@njit(parallel=True, cache=True)
def _parallel_copy(source, target):
    for i in prange(source.size):
        target[i] = source[i]


def best_time(function: Callable[[], object], repeat: int) -> float:
    """Smallest wall time of ``repeat`` calls of ``function``, after one warm-up call."""
    function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def paired_times(function: Callable[[], object], other: Callable[[], object],
                 repeat: int) -> tuple[float, float]:
    """Smallest wall times of ``function`` and of ``other`` over ``repeat`` calls each,
    alternating, after one warm-up call each: on a shared machine both see the same load."""
    function()
    other()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeat):
        for f, record in ((function, times[0]), (other, times[1])):
            start = time.perf_counter()
            f()
            record.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def copy_function(traffic_bytes: int, fresh: bool = False) -> Callable[[], object]:
    """A parallel copy reading and writing ``traffic_bytes`` in total: into one reused
    target, or with ``fresh`` into a newly allocated one each call (the roofline of an
    operation that allocates its output, page faults included)."""
    words = max(traffic_bytes // 16, 1)  # half read, half written, 8-byte words
    source = np.ones(words, np.float64)
    target = np.empty_like(source)
    if fresh:
        return lambda: _parallel_copy(source, np.empty_like(source))
    return lambda: _parallel_copy(source, target)


def copy_time(traffic_bytes: int, repeat: int) -> float:
    """Best time of :func:`copy_function` (into a reused target) over ``repeat`` calls."""
    return best_time(copy_function(traffic_bytes), repeat)


def machine() -> str:
    """One line naming the machine a figure was measured on."""
    from numba import get_num_threads

    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"numba {get_num_threads()} threads, numpy {np.__version__}")


def _random_mxfp4(rows: int, cols: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (rows, cols // 2), dtype=np.uint8)
    scales = rng.integers(118, 136, (rows, cols // 32), dtype=np.uint8)  # typical weights
    return blocks, scales


def _numpy_lut_dequantize(blocks: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """A plain numpy look-up-table MXFP4 decoder, as people write it (comparison only)."""
    lut = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6], np.float32)
    values = np.empty(blocks.shape[:-1] + (2 * blocks.shape[-1],), np.float32)
    values[..., 0::2] = lut[blocks & 0xF]
    values[..., 1::2] = lut[blocks >> 4]
    factor = np.ldexp(np.float32(1), scales.astype(np.int32) - 127).astype(np.float32)
    return (values.reshape(*scales.shape, 32) * factor[..., None]).reshape(values.shape)


def _gguf_dequantize(blocks: np.ndarray, scales: np.ndarray) -> Callable[[], object] | None:
    """gguf-py's MXFP4 decoder on the same data in ggml's block_mxfp4 records, if installed."""
    try:
        from gguf import GGMLQuantizationType, quants
    except ImportError:
        return None
    rows = blocks.shape[0]
    codes = api.unpack(blocks)
    records = np.concatenate(
        [scales.reshape(rows, -1, 1), api.pack(codes, "split-half").reshape(rows, -1, 16)],
        axis=2,
    ).reshape(rows, -1)
    return lambda: quants.dequantize(records, GGMLQuantizationType.MXFP4)


def bench_dequantize(args: argparse.Namespace) -> int:
    """MXFP4 dequantization of a size x size matrix against the copy roofline."""
    if getattr(args, "backend", "numba") == "cuda":
        from ._bench_cuda import bench_dequantize_cuda

        return bench_dequantize_cuda(args)
    size, repeat = args.size or 8192, args.repeat
    blocks, scales = _random_mxfp4(size, size)
    rows = []
    for dtype in ("float32", "bfloat16"):
        out = empty_on_lines((size, size), OUTPUT_DTYPES[dtype])  # as dequantize allocates
        seconds = best_time(
            lambda dtype=dtype, out=out: api.dequantize(blocks, scales, dtype=dtype, out=out),
            repeat)
        traffic = blocks.nbytes + scales.nbytes + out.nbytes
        roof = copy_time(traffic, repeat)
        rows.append([f"fp4ref numba -> {dtype}", f"{seconds * 1e3:.1f}",
                     f"{traffic / seconds / 1e9:.1f}", f"{roof / seconds:.2f}"])
        if dtype == "float32":
            peers = [("numpy look-up table -> float32",
                      lambda: _numpy_lut_dequantize(blocks, scales)),
                     ("gguf-py -> float32", _gguf_dequantize(blocks, scales))]
            for label, run in peers:
                if run is None:
                    rows.append([label, "not installed", "", ""])
                    continue
                t = best_time(run, max(1, repeat // 2))
                rows.append([label, f"{t * 1e3:.1f}", f"{traffic / t / 1e9:.1f}",
                             f"{roof / t:.2f}"])
    print(f"MXFP4 dequantize, {size} x {size}, on {machine()}")
    print(format_table(["implementation", "ms", "GB/s moved", "ratio to copy"], rows))
    return 0


def bench_io(args: argparse.Namespace) -> int:
    """Dequantizing a gpt-oss-style file through the CLI path (see :mod:`fp4ref.io.bench`)."""
    from .io.bench import bench_io as run

    return run(args)


#: The benchmarks by name; other modules add theirs.
BENCHES: dict[str, Callable[[argparse.Namespace], int]] = {
    "dequantize": bench_dequantize, "io": bench_io}


def _bench_quantize(args: argparse.Namespace) -> int:
    if getattr(args, "backend", "numba") == "cuda":
        from ._bench_cuda_quantize import bench_quantize_cuda

        return bench_quantize_cuda(args)
    from ._bench_quantize import bench_quantize

    return bench_quantize(args)


BENCHES["quantize"] = _bench_quantize


def _bench_ops(args: argparse.Namespace) -> int:
    from ._bench_ops import bench_ops

    return bench_ops(args)


BENCHES["ops"] = _bench_ops


def _bench_first_call(args: argparse.Namespace) -> int:
    from ._bench_first_call import bench_first_call

    return bench_first_call(args)


BENCHES["first-call"] = _bench_first_call


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``fp4ref bench``."""
    p = sub.add_parser("bench", help="measure throughput against a memory-copy roofline")
    p.add_argument("which", choices=sorted(BENCHES), help="what to measure")
    p.add_argument("--size", type=int, default=None,
                   help="dequantize: matrix side (default 8192); io: file MiB (default 1024); "
                        "ops: hidden size (default 2880)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs; the best counts")
    p.add_argument("--peer-rows", type=int, default=256,
                   help="rows timed on slow peers, scaled up (bench quantize)")
    p.add_argument("--backend", choices=("numba", "cuda"), default="numba",
                   help="numba (CPU, default) or cuda (GPU: --size rows, 1 GiB of output or input)")
    p.add_argument("--no-selftest", action="store_true",
                   help="first-call: leave out the whole-selftest row")
    p.set_defaults(run=lambda args: BENCHES[args.which](args))
