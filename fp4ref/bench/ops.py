"""``fp4ref bench ops``: :func:`fp4ref.ops.linear` and :func:`fp4ref.ops.moe_linear` on a
gpt-oss-20b-sized MXFP4 expert layer (gate_up: K = hidden = 2880, N = 2 * 2880, 32 experts,
top-4) for 1, 8 and 64 tokens, against dequantize + numpy matmul on the same machine.

Weight bandwidth is the packed bytes (blocks + scales) of the weights a call needs (one
expert for linear, the experts the tokens are routed to for moe_linear) over its time; the
ratio to copy compares the time with a parallel copy of those bytes measured in the same
run. A configuration whose first call takes over two seconds is timed once.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from .. import api, ops
from .._table import format_table
from .timing import copy_time, machine

EXPERTS, TOPK, TOKENS = 32, 4, (1, 8, 64)


def _seconds(function: Callable[[], object], repeat: int, budget: float = 2.0) -> float:
    """Best of ``repeat`` timed calls, or the one call when it takes over ``budget``."""
    times = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
        if times[0] > budget:
            break
    return min(times)


def _dequantize_matmul(x, blocks, scales, indices) -> np.ndarray:
    """The baseline: decode each expert in use to float32, then numpy matmul its tokens."""
    out = np.empty((*indices.shape, blocks.shape[1]), np.float32)
    for e in np.unique(indices):
        tokens, slots = np.nonzero(indices == e)
        out[tokens, slots] = x[tokens] @ api.dequantize(blocks[e], scales[e]).T
    return out


def bench_ops(args: argparse.Namespace) -> int:
    """Throughput of linear and moe_linear (both accumulation modes) and the baseline."""
    if getattr(args, "backend", "numba") != "numba":
        print("bench ops measures the numba CPU kernels only (the CUDA ones take host arrays)")
        return 2
    hidden, repeat = args.size or 2880, args.repeat
    n, k = 2 * hidden, hidden
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (EXPERTS, n, k // 2), dtype=np.uint8)
    scales = rng.integers(118, 136, (EXPERTS, n, k // 32), dtype=np.uint8)  # typical weights
    expert_bytes = blocks[0].nbytes + scales[0].nbytes
    for mode in ops.ACCUMULATE:  # compile (or load from cache) before timing
        ops.moe_linear(np.zeros((1, k), np.float32), (blocks[:1, :1], scales[:1, :1]),
                       np.zeros((1, 1), np.int64), accumulate=mode)
    rows = []
    for t in TOKENS:
        x = rng.standard_normal((t, k), np.float32)
        indices = np.stack([rng.permutation(EXPERTS)[:TOPK] for _ in range(t)])
        used = np.unique(indices).size
        calls = {
            "linear": (expert_bytes, {
                "fp4ref exact": lambda x=x: ops.linear(x, (blocks[0], scales[0])),
                "fp4ref float32-blocked": lambda x=x: ops.linear(
                    x, (blocks[0], scales[0]), accumulate="float32-blocked"),
                "dequantize + numpy matmul": lambda x=x: x @ api.dequantize(
                    blocks[0], scales[0]).T,
            }),
            f"moe_linear ({used} experts)": (used * expert_bytes, {
                "fp4ref exact": lambda x=x, i=indices: ops.moe_linear(x, (blocks, scales), i),
                "fp4ref float32-blocked": lambda x=x, i=indices: ops.moe_linear(
                    x, (blocks, scales), i, accumulate="float32-blocked"),
                "dequantize + numpy matmul": lambda x=x, i=indices: _dequantize_matmul(
                    x, blocks, scales, i),
            }),
        }
        for op, (weight_bytes, runs) in calls.items():
            roof = copy_time(2 * weight_bytes, repeat)
            for label, run in runs.items():
                seconds = _seconds(run, repeat)
                rows.append([op, str(t), label, f"{seconds * 1e3:.1f}", f"{t / seconds:.1f}",
                             f"{weight_bytes / seconds / 1e9:.2f}", f"{roof / seconds:.3f}"])
    print(f"gate_up expert layer: K = {k}, N = {n}, {EXPERTS} experts, top-{TOPK}, MXFP4, "
          f"on {machine()}")
    print(format_table(["operation", "tokens", "implementation", "ms", "tokens/s",
                        "weight GB/s", "ratio to copy"], rows))
    return 0
