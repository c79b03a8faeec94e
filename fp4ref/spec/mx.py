"""The MXFP4 block (OCP MX v1.0 section 5): 32 E2M1 elements sharing one E8M0 scale."""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from . import e2m1, e8m0
from .rounding import CANONICAL_NAN, convert_float32, round_to_binary

BLOCK_SIZE = 32


def dequantize_block(codes: Sequence[int], scale: int, dtype: str = "float32") -> list[int]:
    """Bit patterns of ``X * P_i`` for each element code, in ``dtype``.

    Section 5: value_i = X * P_i, computed exactly, then rounded once to float32 (nearest
    even; past the float32 range it becomes an infinity: only scale 0xFE with |P| >= 2
    does that). Other output dtypes are the nearest-even conversion of that float32. A NaN
    scale (0xFF) makes every element NaN (section 5.4.1).
    """
    if scale == e8m0.NAN:
        return [CANONICAL_NAN[dtype]] * len(codes)
    x = Fraction(e8m0.decode(scale))
    out = []
    for code in codes:
        bits32 = round_to_binary(e2m1.magnitude(code) * x, bool(code & 0x8), 8, 23)
        out.append(convert_float32(bits32, dtype))
    return out
