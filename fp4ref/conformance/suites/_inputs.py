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


class Stream:
    """A seeded stream of pseudo-random numbers that is the same on every platform and
    numpy version (SplitMix64; numpy's generators may change their streams).

    Only exact operations turn its integers into floats, so the vectors built from it are
    byte-identical wherever they are generated.
    """

    _MASK = (1 << 64) - 1

    def __init__(self, seed: int) -> None:
        self.state = seed & self._MASK

    def next(self) -> int:
        """The next 64-bit unsigned integer."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & self._MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & self._MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & self._MASK
        return z ^ (z >> 31)

    def integers(self, low: int, high: int, count: int) -> list[int]:
        """``count`` integers in ``[low, high)`` (modulo reduction; the bias is irrelevant)."""
        return [low + self.next() % (high - low) for _ in range(count)]

    def uniform(self, low: float, high: float, count: int) -> np.ndarray:
        """``count`` float64 values in ``[low, high)`` from 53 random bits each."""
        unit = np.array([self.next() >> 11 for _ in range(count)], np.float64) * 2.0**-53
        return low + (high - low) * unit

    def log_uniform(self, low: int, high: int, count: int) -> np.ndarray:
        """``count`` float64 values ``+-m * 2^e``, m uniform in [1, 2), e in [low, high)."""
        mantissa = 1 + self.uniform(0, 1, count)
        exponents = self.integers(low, high, count)
        signs = [1.0 if b % 2 else -1.0 for b in self.integers(0, 2, count)]
        return np.array(
            [s * np.ldexp(m, e) for s, m, e in zip(signs, mantissa, exponents, strict=True)]
        )


def random_bits(count: int, seed: int) -> np.ndarray:
    """``count`` float32 values with uniformly random bit patterns (all binades, NaN, Inf)."""
    stream = Stream(seed)
    return np.array([stream.next() >> 32 for _ in range(count)], np.uint32).view(np.float32)


def random_uniform(count: int, bound: float, seed: int) -> np.ndarray:
    """``count`` float32 values uniform in ``[-bound, bound]``."""
    return Stream(seed).uniform(-bound, bound, count).astype(np.float32)


def random_bytes(shape: tuple[int, ...], seed: int, low: int = 0, high: int = 256) -> np.ndarray:
    """uint8 values uniform in ``[low, high)``."""
    count = int(np.prod(shape))
    return np.array(Stream(seed).integers(low, high, count), np.uint8).reshape(shape)
