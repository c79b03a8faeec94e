# ruff: noqa  (a measuring script run on the lent GPU; its lambdas run inside their loop step)
"""The optimal searches on the GPU (issue 19 item 4): ``fp4ref.quantize(x, format=...,
profile="qwantize", scale_rule="optimal")`` on one 8192 x 32768 float32 device tensor
(torch.randn, seed 0), in one process: the search kernel before this branch (main's
``fp4ref/kernels/cuda/quantize.py``, loaded from the path given as the first argument and
put in place of ``_search``), this branch's, and qwantize's ``mxfp4_optimal_triton`` /
``nvfp4_optimal_triton``, each timed with ``fp4ref.bench.timing.gpu_time``. Every byte of
old and new is compared over the whole tensor, new against the numba CPU backend on the
first rows, and the blocks where qwantize's Triton search differs are counted.

    git show main:fp4ref/kernels/cuda/quantize.py > /tmp/old_quantize.py
    python3 docs/scripts/h200_optimal.py /tmp/old_quantize.py [threads ...]

Extra arguments are thread-block sizes of the search kernel to time beside the default,
``regs=N``: the MXFP4 kernel built again with at most N registers a thread, or
``saturated=N``: built again with ``SEARCH_SHAPE["saturated"] = N`` (both after the table).
"""

import importlib.util
import sys
import time

import numpy as np
import torch
from numba import cuda

import fp4ref
from fp4ref.bench import gpu_peers
from fp4ref.bench.timing import gpu_time
from fp4ref.kernels.cuda import quantize as cq
from fp4ref.kernels.cuda import search

REPEAT = 3
CPU_ROWS = 16


def load_old(path: str):
    """Main's quantize module, loaded beside this branch's (its relative imports resolve in
    this fp4ref)."""
    spec = importlib.util.spec_from_file_location("fp4ref.kernels.cuda.quantize_main", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(search, fmt, x):
    """fp4ref.quantize with ``cq._search`` = ``search``: (scale bytes, codes) as torch."""
    saved = cq._search
    cq._search = search
    try:
        q = fp4ref.quantize(x, format=fmt, profile="qwantize", scale_rule="optimal")
        torch.cuda.synchronize()
    finally:
        cq._search = saved
    return q


def timed(search, fmt, x):
    saved = cq._search
    cq._search = search
    try:
        return gpu_time(lambda: fp4ref.quantize(x, format=fmt, profile="qwantize",
                                                scale_rule="optimal"), REPEAT)
    finally:
        cq._search = saved


def same(a, b):
    return bool(torch.equal(torch.as_tensor(a.scales), torch.as_tensor(b.scales))
                and torch.equal(torch.as_tensor(a.blocks), torch.as_tensor(b.blocks)))


def main():
    old = load_old(sys.argv[1])
    threads = [int(t) for t in sys.argv[2:] if "=" not in t]
    registers = [int(t[5:]) for t in sys.argv[2:] if t.startswith("regs=")]
    shapes = [int(t[10:]) for t in sys.argv[2:] if t.startswith("saturated=")]
    print(torch.cuda.get_device_name(), flush=True)
    g = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(8192, 32768, device="cuda", generator=g)
    rows = x.shape[0]
    import qwantize

    peers = {"mxfp4": lambda: qwantize.mxfp4_optimal_triton(x.reshape(-1, 32)),
             "nvfp4": lambda: qwantize.nvfp4_optimal_triton(x.reshape(-1, 16))}
    table = []
    for fmt in ("mxfp4", "nvfp4"):
        start = time.perf_counter()
        new_q = run(cq._search, fmt, x)
        print(f"{fmt} new: first call {time.perf_counter() - start:.1f} s", flush=True)
        start = time.perf_counter()
        old_q = run(old._search, fmt, x)
        print(f"{fmt} old: first call {time.perf_counter() - start:.1f} s", flush=True)
        identical = same(new_q, old_q)
        t_new = timed(cq._search, fmt, x)
        t_old = timed(old._search, fmt, x)
        start = time.perf_counter()
        peer = peers[fmt]()
        torch.cuda.synchronize()
        print(f"{fmt} qwantize: first call {time.perf_counter() - start:.1f} s", flush=True)
        scales, codes = gpu_peers.qwantize_bytes(fmt, *peer, rows)
        differ, count = gpu_peers.differing_blocks(
            fmt, scales, codes, torch.as_tensor(new_q.scales).reshape(rows, -1),
            gpu_peers.unpacked(torch.as_tensor(new_q.blocks)))
        del peer, scales, codes
        t_peer = gpu_time(peers[fmt], 1 if fmt == "nvfp4" else REPEAT)
        torch.cuda.empty_cache()
        print(f"{fmt}: old {t_old * 1e3:.2f} ms, new {t_new * 1e3:.3f} ms, qwantize "
              f"{t_peer * 1e3:.2f} ms; old == new on every byte: {identical}", flush=True)
        start = time.perf_counter()
        host = x[:CPU_ROWS].cpu().numpy()
        cpu = fp4ref.quantize(host, format=fmt, profile="qwantize", scale_rule="optimal",
                              backend="numba")
        part = run(cq._search, fmt, x[:CPU_ROWS])
        cpu_same = (np.array_equal(torch.as_tensor(part.scales).cpu().numpy(), cpu.scales)
                    and np.array_equal(torch.as_tensor(part.blocks).cpu().numpy(), cpu.blocks))
        print(f"{fmt} CPU check: {time.perf_counter() - start:.1f} s", flush=True)
        table.append((fmt, t_old, t_new, t_peer, identical, cpu_same, differ, count))
        print(f"{fmt}: old {t_old * 1e3:.2f} ms, new {t_new * 1e3:.3f} ms, qwantize "
              f"{t_peer * 1e3:.2f} ms; qwantize/new {t_peer / t_new:.2f}x, old/new "
              f"{t_old / t_new:.1f}x; old == new on every byte: {identical}; new == numba CPU "
              f"on {CPU_ROWS} rows: {cpu_same}; qwantize Triton differs on {differ} of "
              f"{count} blocks", flush=True)
        grid = cq._block_grid
        for n in threads:
            cq._block_grid = lambda blocks, n=n: (max(1, (blocks + n - 1) // n), n)
            try:
                t = timed(cq._search, fmt, x)
                ok = same(run(cq._search, fmt, x), new_q)
            finally:
                cq._block_grid = grid
            print(f"{fmt} new, {n} threads a thread block: {t * 1e3:.3f} ms, same bytes {ok}",
                  flush=True)
        del new_q, old_q
    print("\n| optimal search, qwantize profile, 8192 x 32768 float32 | old ms | new ms | "
          "qwantize Triton ms | qwantize / new | old / new | bytes old = new | new = numba "
          f"CPU ({CPU_ROWS} rows) | blocks where qwantize's Triton differs |")
    print("|---|---|---|---|---|---|---|---|---|")
    for fmt, t_old, t_new, t_peer, identical, cpu_same, differ, count in table:
        print(f"| {fmt.upper()} | {t_old * 1e3:.2f} | {t_new * 1e3:.3f} | {t_peer * 1e3:.2f} | "
              f"{t_peer / t_new:.2f}x | {t_old / t_new:.1f}x | {'yes' if identical else 'NO'} | "
              f"{'yes' if cpu_same else 'NO'} | {differ} of {count} |")
    want = run(cq._search, "mxfp4", x)
    default = search.SEARCH_SHAPE["saturated"]
    for saturated in shapes:
        search.SEARCH_SHAPE["saturated"] = saturated
        try:
            start = time.perf_counter()
            got = run(cq._search, "mxfp4", x)
            print(f"mxfp4 new, {saturated} thresholds saturated: first call "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
            t = timed(cq._search, "mxfp4", x)
        finally:
            search.SEARCH_SHAPE["saturated"] = default
        print(f"mxfp4 new, {saturated} thresholds saturated: {t * 1e3:.3f} ms, same bytes "
              f"{same(got, want)}", flush=True)
    jit = cuda.jit
    for regs in registers:
        cq._KERNELS.clear()
        cq.cuda.jit = lambda *a, regs=regs, **k: jit(*a, max_registers=regs, **k)
        try:
            start = time.perf_counter()
            got = run(cq._search, "mxfp4", x)
            print(f"mxfp4 new, at most {regs} registers: first call "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
            t = timed(cq._search, "mxfp4", x)
        finally:
            cq.cuda.jit = jit
        print(f"mxfp4 new, at most {regs} registers: {t * 1e3:.3f} ms, same bytes "
              f"{same(got, want)}", flush=True)


if __name__ == "__main__":
    main()
