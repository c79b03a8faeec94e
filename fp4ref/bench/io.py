"""``fp4ref bench io``: dequantizing a gpt-oss-style safetensors file to bfloat16 through
the command-line path, against reading and writing the same bytes in the same run.

Each side runs in a fresh child process (imports and JIT warm-up happen before its clock
starts), so its peak resident memory (``getrusage``) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

from .._table import format_table
from ..io.safetensors_file import SafetensorsWriter
from .timing import machine

#: gpt-oss-120b's expert matrices: N = K = 2880, so K/32 = 90 blocks of 16 bytes per row.
_N, _BLOCKS = 2880, 90
_CHUNK = 32 << 20


def generate(path: str, size_bytes: int, seed: int = 0) -> int:
    """Write a gpt-oss-style file of about ``size_bytes``: stacked expert ``*_blocks``
    ``[E, 2880, 90, 16]`` and ``*_scales`` ``[E, 2880, 90]``, at most 32 experts a tensor.
    Streams one expert at a time; returns the number of tensors' experts written."""
    per_expert = _N * _BLOCKS * 17
    experts = max(1, size_bytes // per_expert)
    counts = [min(32, experts - i) for i in range(0, experts, 32)]
    specs = []
    for layer, count in enumerate(counts):
        name = f"model.layers.{layer}.mlp.experts.gate_up_proj"
        specs += [(f"{name}_blocks", "U8", (count, _N, _BLOCKS, 16)),
                  (f"{name}_scales", "U8", (count, _N, _BLOCKS))]
    rng = np.random.default_rng(seed)
    with SafetensorsWriter(path, specs) as writer:
        for count in counts:
            for _ in range(count):
                writer.write(rng.integers(0, 256, (_N, _BLOCKS, 16), dtype=np.uint8))
            for _ in range(count):
                writer.write(rng.integers(118, 136, (_N, _BLOCKS), dtype=np.uint8))
    return experts


def _rss_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _child(which: str, source: str, target: str, out_bytes: int) -> None:
    """Run one side once (after warm-up) and print seconds and memory as JSON."""
    import time

    from ..io import commands

    if which == "dequantize":
        tiny = os.path.join(os.path.dirname(target), "warm.safetensors")
        generate(tiny, 1)
        commands.dequantize_file(tiny, target, "bfloat16")
        os.remove(target)
        os.remove(tiny)
    before = _rss_kib()
    start = time.perf_counter()
    if which == "dequantize":
        commands.dequantize_file(source, target, "bfloat16")
    else:  # read every byte of the input, write out_bytes bytes
        buffer = bytearray(_CHUNK)
        written = 0
        with open(source, "rb") as f, open(target, "wb") as g:
            while f.readinto(buffer):
                pass
            while written < out_bytes:
                n = min(_CHUNK, out_bytes - written)
                g.write(memoryview(buffer)[:n])
                written += n
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_before_kib": before, "peak_kib": _rss_kib()}))


def _run_child(which: str, source: str, target: str, out_bytes: int) -> dict:
    code = ("import sys; from fp4ref.bench.io import _child; "
            "_child(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))")
    done = subprocess.run([sys.executable, "-c", code, which, source, target, str(out_bytes)],
                          capture_output=True, text=True, check=True)
    if os.path.exists(target):
        os.remove(target)
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_io(args: argparse.Namespace) -> int:
    """Generate ``--size`` MiB (default 1024) and time both sides, best of ``--repeat``."""
    size = (args.size or 1024) << 20
    repeat = max(1, min(args.repeat, 3))
    with tempfile.TemporaryDirectory(prefix="fp4ref-bench-io-") as folder:
        source = os.path.join(folder, "gpt-oss.safetensors")
        experts = generate(source, size)
        in_bytes = os.path.getsize(source)
        out_bytes = experts * _N * _BLOCKS * 32 * 2  # bfloat16 elements
        target = os.path.join(folder, "out.safetensors")
        runs: dict[str, list[dict]] = {"read+write": [], "dequantize": []}
        for _ in range(repeat):  # interleaved, so drifts in the page cache hit both sides
            for which, results in runs.items():
                results.append(_run_child(which, source, target, out_bytes))
    best = {which: min(r, key=lambda x: x["seconds"]) for which, r in runs.items()}
    moved = in_bytes + out_bytes
    roof = best["read+write"]["seconds"]
    rows = []
    for which, label in (("read+write", "read input + write output-sized bytes"),
                         ("dequantize", "fp4ref dequantize -> bfloat16 (CLI path)")):
        b = best[which]
        peak = b["peak_kib"] / 1024
        rows.append([label, f"{b['seconds']:.2f}", f"{moved / b['seconds'] / 1e9:.2f}",
                     f"{roof / b['seconds']:.2f}", f"{peak:.0f}",
                     f"{(b['peak_kib'] - b['rss_before_kib']) / 1024:.0f}"])
    print(f"I/O: gpt-oss-style file of {in_bytes / 2**20:.0f} MiB ({experts} experts of "
          f"{_N} x {_BLOCKS * 32}) -> {out_bytes / 2**20:.0f} MiB bfloat16, on {machine()}")
    print(format_table(["operation", "s", "GB/s (in+out)", "ratio to read+write",
                        "peak RSS MiB", "growth MiB"], rows))
    print(f"peak RSS of dequantize / input file size: "
          f"{best['dequantize']['peak_kib'] * 1024 / in_bytes:.3f}")
    return 0
