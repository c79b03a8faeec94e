"""``fp4ref bench quantize``: OCP MXFP4 against the copy roofline, the optimal searches
against qwantize's reference (torch CPU, 2 threads, a row subset scaled up), and the mean
squared error of every scale rule on the same matrix."""

from __future__ import annotations

import argparse
import time

import numpy as np

from .. import api
from .._table import format_table
from ..quantize import quantize
from ..spec.scale_rules import MX_RULES
from . import quantize_cuda
from .timing import USER_CALL_COLUMNS, best_time, machine, user_calls


def _qwantize(x: np.ndarray, fmt: str, rows: int):
    """(seconds for ``rows`` rows, scale bytes, codes) from qwantize's optimal reference."""
    try:
        import qwantize
        import torch
    except ImportError:
        return None
    torch.set_num_threads(2)
    block = 32 if fmt == "mxfp4" else 16
    sub = torch.from_numpy(x[:rows]).reshape(rows, -1, block)
    start = time.perf_counter()
    s, q = getattr(qwantize, f"{fmt}_optimal")(sub)
    seconds = time.perf_counter() - start
    if fmt == "mxfp4":
        scales = (torch.log2(s) + 127).round().to(torch.uint8).numpy()
    else:
        scales = s.to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    q = q.reshape(rows, -1).numpy()
    table = np.array([0, .5, 1, 1.5, 2, 3, 4, 6], np.float32)
    codes = np.searchsorted(table, np.abs(q)).astype(np.uint8) | (np.signbit(q) << 3).astype(
        np.uint8)
    return seconds, scales, codes


def _ocp_kernel(x: np.ndarray, blocks: np.ndarray, scales: np.ndarray):
    """What :func:`quantize` runs after allocating its outputs, writing into ``blocks`` and
    ``scales`` again (OCP MXFP4, numba)."""
    from ..backends import get as backend
    from ..kernels.options import QuantizeOptions
    from ..profiles import get

    flat = x.reshape(-1, 32)
    options = QuantizeOptions("mxfp4", "floor", get("ocp"))
    return lambda: backend("numba").quantize_blocks(
        flat, options, scales.reshape(-1), blocks.reshape(-1, 16), np.zeros((0, 32, 32)))


def bench_quantize(args: argparse.Namespace) -> int:
    """Quantization of a size x size float32 N(0, 1) matrix."""
    if getattr(args, "backend", "numba") == "cuda":
        return quantize_cuda.bench_quantize_cuda(args)
    size, repeat = args.size or 8192, args.repeat
    x = np.random.default_rng(0).standard_normal((size, size), np.float32)
    print(f"quantize, {size} x {size} float32 N(0,1), on {machine()}")
    q = quantize(x)
    traffic = x.nbytes + q.blocks.nbytes + q.scales.nbytes
    rows = user_calls("fp4ref.quantize OCP MXFP4 (floor)", traffic, repeat,
                      _ocp_kernel(x, q.blocks, q.scales), lambda: quantize(x),
                      into_name="its kernel, outputs reused")
    print(format_table(USER_CALL_COLUMNS, rows))
    rows = []
    subset = max(1, min(size, args.peer_rows))
    for fmt in ("mxfp4", "nvfp4"):
        def run(fmt=fmt):
            return quantize(x, format=fmt, profile="qwantize", scale_rule="optimal")

        ours = run()
        mine = best_time(run, repeat)  # after a warm-up call (JIT, caches)
        peer = _qwantize(x, fmt, subset)
        if peer is None:
            rows.append([f"optimal {fmt}", f"{mine:.2f}", "qwantize not installed", "", ""])
            continue
        peer_seconds, scales, codes = peer
        scaled = peer_seconds * size / subset
        same = (np.array_equal(ours.scales[:subset], scales)
                and np.array_equal(api.unpack(ours.blocks[:subset]), codes))
        rows.append([f"optimal {fmt}", f"{mine:.2f}", f"{scaled:.1f} ({subset} rows x "
                     f"{size / subset:.0f})", f"{scaled / mine:.0f}x", "yes" if same else "NO"])
    print(format_table(["qwantize profile", "fp4ref s", "qwantize s (torch, 2 threads)",
                        "speed-up", "identical bytes"], rows))
    errors = []
    for rule in (*MX_RULES, "optimal"):
        decoded = api.dequantize(quantize(x, scale_rule=rule))
        errors.append([f"mxfp4 {rule}", f"{np.mean((decoded - x) ** 2, dtype=np.float64):.6f}"])
    for profile in ("ocp", "qwantize"):
        for rule in (None, "optimal"):
            decoded = api.dequantize(quantize(x, format="nvfp4", profile=profile, scale_rule=rule))
            errors.append([f"nvfp4 {profile} {rule or 'recipe'}",
                           f"{np.mean((decoded - x) ** 2, dtype=np.float64):.6f}"])
    print(format_table(["scale rule", "MSE"], errors))
    return 0
