"""``fp4ref bench dequantize``: MXFP4 dequantization of a size x size matrix on the CPU,
against the memory-copy roofline and the numpy and gguf-py decoders people use instead
(``--backend cuda``: :mod:`fp4ref.bench.dequantize_cuda`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

import numpy as np

from .. import api
from .._table import format_table
from . import dequantize_cuda
from .timing import USER_CALL_COLUMNS, best_time, copy_time, machine, user_calls


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
        return dequantize_cuda.bench_dequantize_cuda(args)
    size, repeat = args.size or 8192, args.repeat
    blocks, scales = _random_mxfp4(size, size)
    rows = []
    for dtype in ("float32", "bfloat16"):
        out = api.dequantize(blocks, scales, dtype=dtype)
        traffic = blocks.nbytes + scales.nbytes + out.nbytes
        rows += user_calls(
            f"fp4ref.dequantize -> {dtype}", traffic, repeat,
            lambda dtype=dtype, out=out: api.dequantize(blocks, scales, dtype=dtype, out=out),
            lambda dtype=dtype: api.dequantize(blocks, scales, dtype=dtype))
        if dtype == "float32":
            roof = copy_time(traffic, repeat)
            peers = [("numpy look-up table -> float32",
                      lambda: _numpy_lut_dequantize(blocks, scales)),
                     ("gguf-py -> float32", _gguf_dequantize(blocks, scales))]
            for label, run in peers:
                if run is None:
                    rows.append([label, "not installed", "", "", "", ""])
                    continue
                t = best_time(run, max(1, repeat // 2))
                rows.append([label, f"{t * 1e3:.1f}", "reused", f"{roof * 1e3:.1f}",
                             f"{roof / t:.2f}", ""])
    print(f"MXFP4 dequantize, {size} x {size}, on {machine()}")
    print(format_table(USER_CALL_COLUMNS, rows))
    return 0
