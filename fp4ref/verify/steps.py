"""Step tables: an oracle over float32 bit patterns, written as runs of one answer.

Every encoder and scale rule fp4ref sweeps is, on each *segment* of the float32 bit
patterns (one sign, one binade; each zero, each infinity and each sign's NaNs on their own),
a monotone function of the pattern: the patterns of a segment are ordered like their
magnitudes, and the oracle's answer only moves one way as the magnitude grows. A monotone
function with f(a) == f(b) is constant on [a, b]. :func:`discover` bisects each segment
with the plain-Python oracle until every piece has equal ends, so its table of runs gives
the oracle's answer at *every* pattern from about 2 * 23 oracle calls per decision point;
:meth:`Steps.check_range` then compares a kernel's answers, at every pattern of a range, with
that table. See ``docs/verify.md`` for why each oracle is monotone on its segments.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

#: Patterns of one binade (2^23 mantissas).
BINADE = 1 << 23
_SIGN = 1 << 31
_INF = 0x7F800000


def segments(lo: int, hi: int, block: int = 1) -> list[tuple[int, int]]:
    """The segments of the patterns ``lo .. hi - 1`` (inclusive ends): each binade of each
    sign, +-0, +-Inf and each sign's NaNs on their own, clipped to the range. With
    ``block`` > 1 (patterns grouped ``block`` at a time into quantization blocks), a block
    that straddles two segments is a segment of its own."""
    cuts = set()
    for sign in (0, _SIGN):
        cuts.update(sign | b for b in range(0, _INF + 1, BINADE))
        cuts.update((sign | 1, sign | _INF, sign | (_INF + 1)))  # zero, Inf, NaNs alone
    cuts.add(1 << 32)
    if block > 1:
        cuts.update([c - c % block for c in cuts] + [c - c % block + block for c in cuts])
    edges = sorted(c for c in cuts if lo < c < hi)
    starts = [lo, *edges]
    return [(a, b - 1) for a, b in zip(starts, [*edges, hi], strict=True)]


@dataclass(frozen=True)
class Steps:
    """The oracle's answers over the patterns ``lo .. end - 1`` as runs.

    Attributes
    ----------
    starts : numpy.ndarray of int64
        The first pattern of each run, ascending, ``starts[0] == lo``.
    values : numpy.ndarray of int64
        The oracle's answer on each run (adjacent runs differ).
    end : int
        One past the last pattern.
    calls : int
        Oracle evaluations made to build the table (samples included).
    """

    starts: np.ndarray
    values: np.ndarray
    end: int
    calls: int

    @property
    def lo(self) -> int:
        return int(self.starts[0])

    def expected(self, bits: np.ndarray) -> np.ndarray:
        """The table's answers at arbitrary patterns ``bits`` (each in ``lo .. end - 1``)."""
        index = np.searchsorted(self.starts, bits.astype(np.int64), side="right") - 1
        return self.values[index]

    def runs_in(self, lo: int, hi: int) -> Iterator[tuple[int, int, int]]:
        """(first, one past last, answer) of each run meeting ``lo .. hi - 1``, clipped."""
        first = int(np.searchsorted(self.starts, lo, side="right")) - 1
        last = int(np.searchsorted(self.starts, hi, side="left"))
        bounds = [*self.starts[first + 1:last].tolist(), hi]
        begin = lo
        for k, stop in enumerate(bounds):
            yield begin, stop, int(self.values[first + k])
            begin = stop

    def decision_points(self) -> np.ndarray:
        """Every pattern where the answer changes (the first of each run but the first)."""
        return self.starts[1:]

    def check_range(self, lo: int, got: np.ndarray, limit: int) -> tuple[int, list]:
        """(disagreements, first ``limit`` (pattern, got, expected)) of a kernel's answers
        ``got`` at the patterns ``lo .. lo + len(got) - 1``."""
        count, examples = 0, []
        for a, b, value in self.runs_in(lo, lo + got.size):
            part = got[a - lo:b - lo]
            wrong = np.count_nonzero(part != value)
            if wrong:
                count += wrong
                for i in np.flatnonzero(part != value)[:max(0, limit - len(examples))]:
                    examples.append((a + int(i), int(part[i]), value))
        return count, examples


def discover(oracle: Callable[[int], int], lo: int, hi: int, samples: int = 2,
             seed: int = 0, block: int = 1) -> Steps:
    """The :class:`Steps` of ``oracle`` (a pattern to an int) over ``lo .. hi - 1``.

    Each segment is bisected until every piece has equal answers at both ends; the run
    table is then checked at ``samples`` random patterns inside each run of more than two
    patterns (a failure means the oracle is not monotone there, and raises
    ``AssertionError``: the table must not be trusted). ``block``: see :func:`segments`.
    """
    calls = 0
    cache: dict[int, int] = {}

    def f(u: int) -> int:
        nonlocal calls
        if u not in cache:
            calls += 1
            cache[u] = int(oracle(u))
        return cache[u]

    starts: list[int] = []
    values: list[int] = []

    def emit(u: int, value: int) -> None:
        if not values or values[-1] != value:
            starts.append(u)
            values.append(value)

    for a, b in segments(lo, hi, block):
        stack = [(a, b)]
        while stack:  # leftmost piece first, so runs come out in order
            x, y = stack.pop()
            if f(x) == f(y):
                emit(x, f(x))
            elif y == x + 1:
                emit(x, f(x))
                emit(y, f(y))
            else:
                m = (x + y) // 2
                stack.append((m, y))
                stack.append((x, m))
        cache.clear()
    rng = random.Random(seed)
    ends = [*starts[1:], hi]
    for start, stop, value in zip(starts, ends, values, strict=True):
        for _ in range(samples if stop - start > 2 else 0):
            u = rng.randrange(start + 1, stop - 1)
            calls += 1
            if int(oracle(u)) != value:
                raise AssertionError(f"oracle not monotone: pattern {u:#010x} gives "
                                     f"{oracle(u)}, its run [{start:#x}, {stop:#x}) {value}")
    return Steps(np.array(starts, np.int64), np.array(values, np.int64), hi, calls)
