"""``fp4ref bench first-call``: how long the first call of each main operation takes in a
new process, on a fresh install (an empty numba cache: every kernel compiles) and with the
cache that run left (every kernel loads).

Each operation runs in its own fresh ``python`` process with its own empty
``NUMBA_CACHE_DIR``, so no operation profits from another's compiling; the process times
its first call only (after ``import fp4ref`` and building the input), in wall seconds and
in CPU seconds (user + system, all threads): compiling is single-threaded, so on an idle
machine the two agree, and on a loaded one the CPU time stays what the call itself costs.
The limits the issue sets are 15 s fresh and 1 s cached, in wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .._table import format_table

#: Package root on the child's path, so that it imports this copy of fp4ref.
ROOT = Path(__file__).resolve().parents[2]

_SETUP = """
import time
import numpy as np
import fp4ref
rng = np.random.default_rng(0)
x = rng.standard_normal((256, 4096)).astype(np.float32)
blocks = rng.integers(0, 256, (256, 2048), dtype=np.uint8)
scales = rng.integers(100, 140, (256, 128), dtype=np.uint8)
"""

#: (label, the first call timed in the child).
OPERATIONS = [
    ("dequantize MXFP4 -> float32", "fp4ref.dequantize(blocks, scales)"),
    ("dequantize MXFP4 -> bfloat16", "fp4ref.dequantize(blocks, scales, dtype='bfloat16')"),
    ("quantize MXFP4 (ocp)", "fp4ref.quantize(x)"),
    ("quantize NVFP4 (ocp)", "fp4ref.quantize(x, format='nvfp4')"),
    ("quantize NVFP4 (modelopt)", "fp4ref.quantize(x, format='nvfp4', profile='modelopt')"),
    ("encode_e2m1", "fp4ref.encode_e2m1(x)"),
    ("ops.linear (MXFP4 weight)", "fp4ref.ops.linear(x[:4], (blocks[:, :2048], scales[:, :128]))"),
]

LIMITS = (15.0, 1.0)


def _environment(cache: str) -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "NUMBA_CACHE_DIR": cache, "FP4REF_PROGRESS": "0", "PYTHONPATH": path}


def _child(statement: str, cache: str) -> tuple[float, float]:
    """(wall, CPU) seconds the first ``statement`` takes in a new process using numba cache
    ``cache``."""
    code = _SETUP + f"start, cpu = time.perf_counter(), time.process_time()\n{statement}\n" \
        "print(time.perf_counter() - start, time.process_time() - cpu)\n"
    env = _environment(cache)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise RuntimeError(f"{statement}: {done.stderr.strip().splitlines()[-1]}")
    wall, cpu = done.stdout.split()[-2:]
    return float(wall), float(cpu)


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _selftest(cache: str) -> tuple[float, float]:
    """(wall, CPU) seconds of ``fp4ref selftest --backend numba`` in a new process."""
    env = _environment(cache)
    start, cpu = time.perf_counter(), _cpu_of_children()
    subprocess.run([sys.executable, "-m", "fp4ref", "selftest", "--backend", "numba"], env=env,
                   capture_output=True, check=True)
    return time.perf_counter() - start, _cpu_of_children() - cpu


def bench_first_call(args: argparse.Namespace) -> int:
    """Print fresh and cached first-call times of every operation (and of selftest)."""
    rows = []
    jobs = [(label, lambda cache, s=statement: _child(s, cache)) for label, statement in
            OPERATIONS]
    if not getattr(args, "no_selftest", False):
        jobs.append(("fp4ref selftest --backend numba (whole run)", _selftest))
    for label, job in jobs:
        with tempfile.TemporaryDirectory(prefix="fp4ref-numba-cache-") as cache:
            fresh = job(cache)
            cached = job(cache)
        within = fresh[0] <= LIMITS[0] and cached[0] <= LIMITS[1]
        verdict = "-" if job is _selftest else ("yes" if within else "NO")
        rows.append([label, f"{fresh[0]:.2f}", f"{cached[0]:.2f}", f"{fresh[1]:.2f}",
                     f"{cached[1]:.2f}", verdict])
        print(f"  {label}: fresh {fresh[0]:.2f} s, cached {cached[0]:.2f} s", file=sys.stderr)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"first call in a new process; fresh = empty NUMBA_CACHE_DIR; {os.cpu_count()} "
          f"cores, load average {load}; limits {LIMITS[0]:.0f} s fresh, {LIMITS[1]:.0f} s cached")
    print(format_table(["operation", "fresh s", "cached s", "fresh CPU s", "cached CPU s",
                        "within limits"], rows))
    return 0
