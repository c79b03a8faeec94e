"""Hypothesis strategies for fuzzing an FP4 implementation against fp4ref.

Every strategy leans on the inputs where implementations disagree: E2M1/E4M3 ties and the
floats one ulp either side, signed zeros, subnormals, NaN (several payloads) and Inf,
block maxima at and just below powers of two and at 6 * 2^k, E8M0 bytes 0x00 and 0xFF,
E4M3 NaN scales, and scale matrices whose shapes need padding in a swizzled layout.

Needs hypothesis (``pip install "fp4ref[test]"``).
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..spec import e4m3, layouts

#: Magnitudes of the E2M1 ties and codes, and of E4M3's (scaled below by powers of two).
E2M1_POINTS = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0)
_E4M3_VALUES = sorted({abs(e4m3.decode(b)) for b in range(0x7F)} | {464.0, 480.0})
E4M3_POINTS = tuple(_E4M3_VALUES) + tuple(
    (a + b) / 2 for a, b in zip(_E4M3_VALUES, _E4M3_VALUES[1:], strict=False))
#: float32 bit patterns of NaNs (both signs, quiet and signalling, payloads) and Infs.
NONFINITE_BITS = (0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FFFFFFF, 0x7F800000, 0xFF800000)


def _f32(value: float) -> np.float32:
    with np.errstate(over="ignore", under="ignore"):
        return np.float32(value)


def _nudge(value: np.float32, ulps: int) -> np.float32:
    direction = np.float32(np.inf if ulps > 0 else -np.inf)
    for _ in range(abs(ulps)):
        value = np.nextafter(value, direction)
    return value


@st.composite
def _near(draw, points: tuple[float, ...], exponents: tuple[int, int]) -> np.float32:
    """A point times 2^k, moved by -2..2 ulps, with a random sign."""
    point = draw(st.sampled_from(points))
    k = draw(st.integers(*exponents))
    value = _nudge(_f32(point * 2.0**k), draw(st.integers(-2, 2)))
    return -value if draw(st.booleans()) else value


def _from_bits(bits: int) -> np.float32:
    return np.array(bits, np.uint32).view(np.float32)[()]


def float32_values(points: tuple[float, ...] = E2M1_POINTS,
                   exponents: tuple[int, int] = (0, 0)) -> st.SearchStrategy[np.float32]:
    """One float32: near a tie or code of ``points`` (times 2^k for k in ``exponents``),
    a signed zero, a subnormal, a NaN or Inf, or any float32 bit pattern."""
    return st.one_of(
        _near(points, exponents),
        _near(points, exponents),
        st.sampled_from([np.float32(0.0), np.float32(-0.0)]),
        st.integers(1, 0x007FFFFF).map(_from_bits),
        st.sampled_from(NONFINITE_BITS).map(_from_bits),
        st.integers(0, 2**32 - 1).map(_from_bits),
    )


def float32_arrays(max_size: int = 64, points: tuple[float, ...] = E2M1_POINTS,
                   exponents: tuple[int, int] = (0, 0)) -> st.SearchStrategy[np.ndarray]:
    """1-D float32 arrays of :func:`float32_values` (E2M1 ties by default; pass
    ``points=E4M3_POINTS, exponents=(-9, 0)`` for E4M3 encoders)."""
    return st.lists(float32_values(points, exponents), min_size=1, max_size=max_size).map(
        lambda values: np.array(values, np.float32))


@st.composite
def _amax(draw) -> float:
    """An adversarial block maximum: 2^k, just below it, 6 * 2^k +- 1 ulp, subnormal."""
    k = draw(st.integers(-130, 125))
    kind = draw(st.sampled_from(("power", "below", "six", "six+", "six-", "subnormal")))
    if kind == "subnormal":
        return float(_from_bits(draw(st.integers(1, 0x007FFFFF))))
    base = _f32(2.0**k if kind in ("power", "below") else 6 * 2.0**k)
    if kind == "below":
        base = _nudge(base, -1)
    elif kind in ("six+", "six-"):
        base = _nudge(base, 1 if kind == "six+" else -1)
    return float(base) if np.isfinite(base) and base > 0 else 1.0


@st.composite
def blocks(draw, block_size: int = 32, max_rows: int = 4,
           max_blocks_per_row: int = 2) -> np.ndarray:
    """float32 ``[N, K]`` for quantizers, K a multiple of ``block_size``: each block has an
    adversarial amax (:func:`_amax`), elements on the E2M1 ties of its scale, and now and
    then a zero block or a NaN/Inf inside."""
    rows = draw(st.integers(1, max_rows))
    count = draw(st.integers(1, max_blocks_per_row))
    out = np.empty((rows, count * block_size), np.float32)
    for r in range(rows):
        for c in range(count):
            amax = draw(_amax())
            unit = 2.0 ** (np.floor(np.log2(amax)) - 2)
            ties = st.sampled_from(E2M1_POINTS).map(lambda t, u=unit: _f32(t * u))
            values = draw(st.lists(st.one_of(ties, st.floats(-amax, amax, width=32)),
                                   min_size=block_size - 1, max_size=block_size - 1))
            block = np.array([amax, *values], np.float32)
            block = np.clip(block, -np.float32(amax), np.float32(amax))
            kind = draw(st.sampled_from(("plain",) * 6 + ("zero", "nonfinite")))
            if kind == "zero":
                block[:] = draw(st.sampled_from([0.0, -0.0]))
            elif kind == "nonfinite":
                block[draw(st.integers(0, block_size - 1))] = _from_bits(
                    draw(st.sampled_from(NONFINITE_BITS)))
            perm = draw(st.permutations(range(block_size)))
            out[r, c * block_size:(c + 1) * block_size] = block[list(perm)]
    return out


def scale_bytes(format: str = "mxfp4") -> st.SearchStrategy[int]:
    """One scale byte: any of the 256, with E8M0 0x00/0xFF (MXFP4) or E4M3 NaN, zero and
    subnormals (NVFP4) drawn often."""
    special = (0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF) if format == "mxfp4" else (
        0x00, 0x01, 0x07, 0x08, 0x7E, 0x7F, 0x80, 0xFF)
    return st.one_of(st.sampled_from(special), st.integers(0, 255))


@st.composite
def mxfp4_tensors(draw, max_rows: int = 4, max_blocks_per_row: int = 3):
    """``(blocks uint8[N, K/2], scales uint8[N, K/32])``: any packed bytes, scales rich in
    0x00 and 0xFF."""
    rows, count = draw(st.integers(1, max_rows)), draw(st.integers(1, max_blocks_per_row))
    packed = draw(hnp.arrays(np.uint8, (rows, count * 16)))
    scales = draw(hnp.arrays(np.uint8, (rows, count), elements=scale_bytes("mxfp4")))
    return packed, scales


@st.composite
def nvfp4_tensors(draw, max_rows: int = 4, max_blocks_per_row: int = 3):
    """``(blocks uint8[N, K/2], scales uint8[N, K/16], tensor_scale float32)``."""
    rows, count = draw(st.integers(1, max_rows)), draw(st.integers(1, max_blocks_per_row))
    packed = draw(hnp.arrays(np.uint8, (rows, count * 8)))
    scales = draw(hnp.arrays(np.uint8, (rows, count), elements=scale_bytes("nvfp4")))
    tensor = draw(st.one_of(st.sampled_from([1.0, 1 / 2688, 2.0**-20, 2.0**100]),
                            st.floats(2.0**-20, 2.0**20, width=32)))
    return packed, scales, np.float32(tensor)


@st.composite
def swizzled_scales(draw, layout: str = "128x4", max_rows: int = 260, max_cols: int = 9):
    """``(stored uint8[Rpad * Cpad], rows, cols, scales uint8[rows, cols])``: a scale matrix
    in ``layout`` with non-zero junk in the padding (which readers must ignore)."""
    rows, cols = draw(st.integers(1, max_rows)), draw(st.integers(1, max_cols))
    scales = draw(hnp.arrays(np.uint8, (rows, cols)))
    rpad, cpad = layouts.padded_shape(rows, cols, layout)
    stored = np.full(rpad * cpad, draw(st.integers(1, 255)), np.uint8)
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    offsets = [layouts.offset(int(i), int(j), cols, layout) for i, j in zip(r.ravel(), c.ravel(),
                                                                            strict=True)]
    stored[offsets] = scales.ravel()
    return stored, rows, cols, scales
