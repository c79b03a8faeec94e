"""Linear and MoE gather-linear on quantized weights, literally, with exact arithmetic.

The definitions :mod:`fp4ref.ops` documents, written with :class:`fractions.Fraction` so
that they read like the text (and are slow). Every value is a float32 bit pattern (an int).

* :func:`dot_exact`: ``b + sum_k x_k w_k`` computed exactly and rounded once to float32
  (nearest even), with IEEE 754 special values: a NaN factor, ``0 * inf`` or infinities of
  both signs give NaN; otherwise an infinite term gives that infinity. An exact zero is
  ``+0`` unless every term is ``-0`` (IEEE 754-2019 section 6.3).
* :func:`dot_blocked`: plain float32 arithmetic in a fixed order: per block of ``B``
  elements ``s = +0; s = fl(s + fl(x_k * w_k))`` in ``k`` order; ``y = +0; y = fl(y + s)``
  over the blocks in order; then ``y = fl(y + b)``. Each ``fl`` is one IEEE float32
  operation rounded to nearest even (section 4.3.1).

The weights are the float32 values :mod:`fp4ref.spec.mx` and :mod:`fp4ref.spec.nvfp4`
decode (:func:`weight_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

from . import mx, nibbles, nvfp4
from .rounding import CANONICAL_NAN, binary_value, round_to_binary

#: The accumulation modes, by name.
ACCUMULATE = ("exact", "float32-blocked")

NAN = CANONICAL_NAN["float32"]
INF = 0x7F800000
ONE = 0x3F800000


def _value(bits: int) -> tuple[Fraction | None, bool]:
    """(magnitude, negative) of float32 ``bits``; ``None`` for NaN, ``-1`` for infinity."""
    return binary_value(bits, "float32")


def f32_mul(a: int, b: int) -> int:
    """IEEE 754 float32 product of the float32 ``a`` and ``b`` (nearest even)."""
    (ma, na), (mb, nb) = _value(a), _value(b)
    negative = na != nb
    if ma is None or mb is None:
        return NAN
    if ma < 0 or mb < 0:  # infinity times zero is invalid (section 7.2)
        return NAN if 0 in (ma, mb) else (int(negative) << 31) | INF
    return round_to_binary(ma * mb, negative, 8, 23)


def f32_add(a: int, b: int) -> int:
    """IEEE 754 float32 sum of the float32 ``a`` and ``b`` (nearest even)."""
    (ma, na), (mb, nb) = _value(a), _value(b)
    if ma is None or mb is None:
        return NAN
    if ma < 0 or mb < 0:
        if ma < 0 and mb < 0 and na != nb:  # inf - inf is invalid (section 7.2)
            return NAN
        return (int(na if ma < 0 else nb) << 31) | INF
    total = (-ma if na else ma) + (-mb if nb else mb)
    if total == 0:  # section 6.3: +0 unless both operands are -0
        return (int(na and nb) << 31)
    return round_to_binary(abs(total), total < 0, 8, 23)


def dot_exact(x: Sequence[int], w: Sequence[int], bias: int | None = None) -> int:
    """float32 bits of ``bias + sum_k x[k] * w[k]`` computed exactly, rounded once."""
    terms = [(a, b) for a, b in zip(x, w, strict=True)]
    if bias is not None:
        terms.append((bias, ONE))
    total = Fraction(0)
    infinities = set()
    all_negative_zero = bool(terms)
    for a, b in terms:
        (ma, na), (mb, nb) = _value(a), _value(b)
        negative = na != nb
        if ma is None or mb is None:
            return NAN
        if ma < 0 or mb < 0:
            if 0 in (ma, mb):
                return NAN
            infinities.add(negative)
            all_negative_zero = False
            continue
        product = ma * mb
        if product != 0 or not negative:
            all_negative_zero = False
        total += -product if negative else product
    if len(infinities) == 2:
        return NAN
    if infinities:
        return (int(infinities.pop()) << 31) | INF
    if total == 0:
        return int(all_negative_zero) << 31
    return round_to_binary(abs(total), total < 0, 8, 23)


def dot_blocked(
    x: Sequence[int], w: Sequence[int], bias: int | None = None, block_size: int = 32
) -> int:
    """float32 bits of ``bias + sum_k x[k] * w[k]`` in float32, block by block."""
    y = 0
    for start in range(0, len(x), block_size):
        s = 0
        for k in range(start, start + block_size):
            s = f32_add(s, f32_mul(x[k], w[k]))
        y = f32_add(y, s)
    return y if bias is None else f32_add(y, bias)


def weight_rows(
    blocks: Sequence[Sequence[int]], scales: Sequence[Sequence[int]], format: str,
    tensor_scale_bits: int = ONE, order: str = "low-first", e8m0_decode: str = "ocp",
) -> list[list[int]]:
    """float32 bits of each decoded row of a weight ``[N, K]`` from its packed rows.

    ``blocks[n]`` is the row's ``K/2`` bytes in nibble ``order``; ``scales[n]`` its ``K/B``
    scale bytes, E8M0 ones read by ``e8m0_decode`` (see :func:`.mx.dequantize_block`).
    """
    block_size = mx.BLOCK_SIZE if format == "mxfp4" else nvfp4.BLOCK_SIZE
    rows = []
    for packed, row_scales in zip(blocks, scales, strict=True):
        codes = nibbles.unpack(list(packed), order, block_size)
        row: list[int] = []
        for j, scale in enumerate(row_scales):
            block = codes[j * block_size:(j + 1) * block_size]
            if format == "mxfp4":
                row += mx.dequantize_block(block, int(scale), "float32", e8m0_decode)
            else:
                row += nvfp4.dequantize_block(block, int(scale), tensor_scale_bits)
        rows.append(row)
    return rows


def _dot(accumulate: str, block_size: int):
    if accumulate == "exact":
        return dot_exact
    return lambda x, w, b: dot_blocked(x, w, b, block_size)


def linear(
    x: Sequence[Sequence[int]], w: Sequence[Sequence[int]], bias: Sequence[int] | None,
    accumulate: str = "exact", block_size: int = 32,
) -> list[list[int]]:
    """``y[m][n] = bias[n] + sum_k x[m][k] * w[n][k]`` in float32 bits."""
    dot = _dot(accumulate, block_size)
    return [[dot(row, w[n], None if bias is None else bias[n]) for n in range(len(w))]
            for row in x]


def moe_linear(
    x: Sequence, w: Sequence[Sequence[Sequence[int]]], indices: Sequence[Sequence[int]],
    bias: Sequence[Sequence[int]] | None, accumulate: str = "exact", block_size: int = 32,
    x_per_slot: bool = False,
) -> list[list[list[int]]]:
    """``y[t][s][n] = bias[e][n] + sum_k x'[k] * w[e][n][k]`` with ``e = indices[t][s]``.

    ``x'`` is ``x[t]`` (one row per token, shared by its slots) or ``x[t][s]`` when
    ``x_per_slot``: mistral.rs's ``gather_forward``.
    """
    dot = _dot(accumulate, block_size)
    out = []
    for t, experts in enumerate(indices):
        slots = []
        for s, e in enumerate(experts):
            row = x[t][s] if x_per_slot else x[t]
            slots.append([dot(row, w[e][n], None if bias is None else bias[e][n])
                          for n in range(len(w[e]))])
        out.append(slots)
    return out
