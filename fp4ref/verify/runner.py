"""Running sweeps: full (every pattern, in chunks) or the CI subset, with a progress bar,
a summary table and the first disagreements."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

import numpy as np

from .._table import format_table
from .steps import Steps, discover
from .sweeps import Sweep

#: Patterns per kernel call of a full CPU sweep (64 MiB of input).
CHUNK = 1 << 24
#: Disagreements kept per sweep.
EXAMPLES = 5


@dataclass
class Result:
    """One row of the summary: a sweep on a backend."""

    sweep: str
    backend: str
    covered: int
    disagreements: int
    seconds: float  #: the kernel's and the judge's time (after a first call that compiles)
    argument: str
    examples: list = field(default_factory=list)  #: (input, kernel's answer, oracle's)
    oracle_seconds: float = 0.0  #: building the oracle's table (shared by the backends)


class Progress:
    """A one-line progress bar on ``stream`` (nothing if ``stream`` is None)."""

    def __init__(self, stream: TextIO | None, label: str, total: int) -> None:
        self.stream, self.label, self.total = stream, label, total
        self.start = time.perf_counter()
        self.shown = -1.0

    def update(self, done: int) -> None:
        if self.stream is None:
            return
        fraction = done / self.total if self.total else 1.0
        now = time.perf_counter()
        if fraction < 1 and now - self.shown < 0.2:
            return
        self.shown = now
        bar = "#" * int(30 * fraction)
        self.stream.write(f"\r{self.label[:48]:<48} [{bar:<30}] {100 * fraction:5.1f}% "
                          f"{now - self.start:6.1f}s")
        if fraction >= 1:
            self.stream.write("\n")
        self.stream.flush()


def subset(steps: Steps, stride: int, radius: int) -> np.ndarray:
    """The CI subset of a sweep's patterns: every ``stride``-th one (from an odd offset, so
    that the strides meet mantissas of every parity) and the ``radius`` patterns either side
    of every decision point and of every segment end."""
    lo, hi = steps.lo, steps.end
    picks = [np.arange(lo + stride // 2 + 1, hi, stride, dtype=np.int64)]
    centres = np.concatenate([steps.decision_points(), np.arange(lo, hi, 1 << 23),
                              [lo, hi - 1]])
    offsets = np.arange(-radius, radius + 1, dtype=np.int64)
    picks.append((centres[:, None] + offsets).ravel())
    bits = np.unique(np.concatenate(picks))
    return bits[(bits >= lo) & (bits < hi)].astype(np.uint32)


def oracle_steps(sweep: Sweep) -> tuple[Steps, float]:
    """The oracle's step table of ``sweep`` and the seconds it took."""
    start = time.perf_counter()
    steps = discover(sweep.oracle, sweep.lo, sweep.hi, block=sweep.block)
    return steps, time.perf_counter() - start


def run_sweep(sweep: Sweep, module, backend: str, *, full: bool, stride: int = 1 << 16,
              radius: int = 4, stream: TextIO | None = None,
              steps: tuple[Steps, float] | None = None, chunk: int = CHUNK) -> Result:
    """Run one sweep on ``module`` (:mod:`.cpu` or :mod:`.cuda`), judged by the oracle's
    step table (:func:`oracle_steps`, built here unless given)."""
    steps, oracle_seconds = steps or oracle_steps(sweep)
    if full:  # compile the kernels (numba, numba-cuda) before the clock starts
        warm = np.arange(sweep.lo, sweep.lo + sweep.block, dtype=np.uint32)
        module.host(sweep.kernel(module, module.device(warm)))
    start = time.perf_counter()
    label = f"{sweep.name} [{backend}]"
    if not full:
        bits = subset(steps, stride, radius)
        got = np.asarray(module.host(sweep.kernel(module, module.device(bits))))
        want = steps.expected(bits)
        wrong = np.flatnonzero(got != want)
        examples = [(int(bits[i]), int(got[i]), int(want[i])) for i in wrong[:EXAMPLES]]
        Progress(stream, label, 1).update(1)
        return Result(sweep.name, backend, bits.size, wrong.size,
                      time.perf_counter() - start, "interval", examples, oracle_seconds)
    if hasattr(module, "run_full"):  # the device judges its own chunks
        count, examples = module.run_full(sweep, steps, Progress(stream, label, sweep.size))
    else:
        count, examples = _run_full_host(sweep, module, steps, chunk,
                                         Progress(stream, label, sweep.size))
    return Result(sweep.name, backend, sweep.size, count, time.perf_counter() - start,
                  "interval", examples, oracle_seconds)


def _run_full_host(sweep: Sweep, module, steps: Steps, chunk: int, progress: Progress):
    chunk -= chunk % sweep.block  # whole quantizer blocks per call
    base = np.arange(chunk, dtype=np.uint32)
    bits = np.empty(chunk, np.uint32)
    count, examples = 0, []
    for lo in range(sweep.lo, sweep.hi, chunk):
        n = min(chunk, sweep.hi - lo)
        np.add(base[:n], np.uint32(lo), out=bits[:n])  # lo + n <= 2^32: no wrap
        got = sweep.kernel(module, bits[:n])
        wrong, found = steps.check_range(lo, got, EXAMPLES - len(examples))
        count += wrong
        examples += found
        progress.update(lo + n - sweep.lo)
    return count, examples


def summary(results: list[Result]) -> str:
    """The summary table, then the first disagreements of each failing sweep."""
    rows = [[r.sweep, r.backend, f"{r.covered:,}", r.disagreements, f"{r.seconds:.2f}",
             f"{r.oracle_seconds:.2f}", r.argument] for r in results]
    text = [format_table(["sweep", "backend", "inputs", "disagreements", "seconds",
                          "oracle s", "judge"], rows)]
    for r in results:
        if r.examples:
            text.append(f"\n{r.sweep} [{r.backend}]: first disagreements")
            text += [f"  input {_show(u)}: kernel {got:#04x}, oracle {want:#04x}"
                     for u, got, want in r.examples]
    return "\n".join(text)


def _show(u: int | str) -> str:
    """A pattern and the value it stands for (float32 inputs, or decoder bytes)."""
    if isinstance(u, str) or not 0 <= u < 1 << 32:
        return str(u)
    return f"{u:#010x} ({float(np.uint32(u).view(np.float32))!r})"


def write(text: str, stream: TextIO | None = sys.stdout) -> None:
    if stream is not None:
        stream.write(text + "\n")
