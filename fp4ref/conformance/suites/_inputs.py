"""Input builders shared by the suites: exact float32 points, their neighbours, specials."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

#: float32 specials by name: NaNs with different signs and payloads, infinities, zeros,
#: the subnormal and normal extremes.
SPECIAL_BITS = {
    "+nan": 0x7FC00000,
    "-nan": 0xFFC00000,
    "snan": 0x7F800001,
    "nan-payload": 0x7FFFFFFF,
    "+inf": 0x7F800000,
    "-inf": 0xFF800000,
    "+0": 0x00000000,
    "-0": 0x80000000,
    "min-subnormal": 0x00000001,
    "-min-subnormal": 0x80000001,
    "max-subnormal": 0x007FFFFF,
    "min-normal": 0x00800000,
    "-min-normal": 0x80800000,
    "max-finite": 0x7F7FFFFF,
    "-max-finite": 0xFF7FFFFF,
}


def float32(values: Iterable[float]) -> np.ndarray:
    """Values rounded to float32 (exact for the values the suites use)."""
    return np.array(list(values), np.float64).astype(np.float32)


def from_bits(bits: Iterable[int]) -> np.ndarray:
    """float32 values with the given bit patterns (NaN payloads kept)."""
    return np.array(list(bits), np.uint32).view(np.float32)


def specials() -> np.ndarray:
    """:data:`SPECIAL_BITS` as float32, in its order."""
    return from_bits(SPECIAL_BITS.values())


def neighbours(points: np.ndarray, ulps: int = 1) -> np.ndarray:
    """The float32 values 1..``ulps`` ulps either side of each point (points excluded)."""
    points = np.asarray(points, np.float32)
    out, up, down = [], points.copy(), points.copy()
    for _ in range(ulps):
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(-np.inf))
        out += [up, down]
    return np.concatenate(out)


def both_signs(values: np.ndarray) -> np.ndarray:
    """``values`` followed by their negations."""
    values = np.asarray(values, np.float32)
    return np.concatenate([values, -values])


def random_bits(count: int, seed: int) -> np.ndarray:
    """``count`` float32 values with uniformly random bit patterns (all binades, NaN, Inf)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**32, count, dtype=np.uint64).astype(np.uint32).view(np.float32)


def random_uniform(count: int, bound: float, seed: int) -> np.ndarray:
    """``count`` float32 values uniform in ``[-bound, bound]``."""
    rng = np.random.default_rng(seed)
    return rng.uniform(-bound, bound, count).astype(np.float32)


def random_bytes(shape: tuple[int, ...], seed: int, low: int = 0, high: int = 256) -> np.ndarray:
    """uint8 values uniform in ``[low, high)``."""
    return np.random.default_rng(seed).integers(low, high, shape, dtype=np.uint8)
