"""Four-over-six: NVFP4 adaptive block scaling, as the ``fouroversix`` package 1.0.5 does it.

Each NVFP4 block is quantized twice, with its largest magnitude scaled to 6 and to 4, and
the variant with the lower error is kept (``fouroversix/quantize/pytorch/reference.py``,
``quantize_to_fp4``, ``quantize_to_nvfp4``, ``select_fouroversix``,
``fake_quantize_to_e2m1``, ``quantize_bf16_to_unpacked_fp4``). Every step is one float32
operation in the package's order (torch CPU float32; ``1 / t`` a correctly rounded
reciprocal; E4M3 casts nearest even, saturating to 448 as torch 2.13's):

- the tensor amax ``A`` = max |x| of the whole tensor (stored: the package keeps ``A``);
  the constants ``M`` (element maximum) and ``S`` (scale maximum): 6 and 256 for the
  adaptive rules, 6 and 448 for ``static_6``, 4 and 448 for ``static_4``;
- ``enc = (M * S) / A``; the block's ``y = (amax_b / M) * enc`` (``A = 0``: y = 0); the
  4-variant ``y4 = y * 1.5``; the scale byte ``e4m3(y)``;
- ``dec = 1 / enc``; elements ``q = x * (1 / (dec * s_b))`` (0 where the scale is 0),
  rounded half-even on the grids of 0.5 below 2, 1 below 4 and 2 above, *without* a clamp
  at 6: a quotient in [7, 9), possible only under a subnormal E4M3 block scale, becomes 8,
  whose bfloat16 bits the package's packer turns into code 0x8 (-0), a defect
  (``docs/findings.md``);
- selection: each variant decoded as ``((fq * s_b) * A) / 1536`` in float32 (1536 = 6 *
  256 in both), its error against x the float32 sum of squares (``"fouroversix"``, the
  package's MSE default; summed in torch's CPU order, :func:`.optimal.lane_sum`), of
  absolute values (``-mae``) or their maximum (``-abs-max``); the 4-variant wins only when
  strictly lower.

The decode: ``dt(float32(float32(P * s_b) * A) / (M * S))`` (the package's ``dequantize``:
values times scales in float16, exact, then ``* amax / (M * S)`` in float32).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import e4m3
from .optimal import lane_sum

#: The four-over-six rules (NVFP4 block-scale rules), by name: the package's ScaleRule
#: ``mse`` (its default), ``mae``, ``abs_max``, ``static_6``, ``static_4``.
RULES = ("fouroversix", "fouroversix-mae", "fouroversix-abs-max", "fouroversix-static-6",
         "fouroversix-static-4")

F32 = np.float32
_NEGATIVE_NAN = np.array(0xFFFFFFFF, np.uint32).view(F32)[()]


def constants(rule: str) -> tuple[int, int]:
    """(M, S): the element and block-scale maxima of ``rule`` (``get_maximum_value``)."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}; got {rule!r}")
    if rule == "fouroversix-static-4":
        return 4, 448
    return (6, 448) if rule == "fouroversix-static-6" else (6, 256)


def decode_divisor(rule: str) -> float:
    """M * S, what the package's decode divides ``P * s_b * A`` by."""
    m, s = constants(rule)
    return float(m * s)


def _rhe(value: F32) -> F32:
    """torch.round of a float32: nearest integer, ties to even (Inf and NaN as they are)."""
    if not math.isfinite(float(value)):
        return value
    return F32(np.rint(value))


def fake_quantize(q: F32) -> F32:
    """``fake_quantize_to_e2m1`` of one float32 quotient (nearest rounding): the float32
    value the package keeps, sign included (torch.sign: 0 for +-0, NaN for NaN)."""
    a = abs(q)
    step1 = _rhe(F32(2) * a) / F32(2)
    step2 = _rhe(a)
    step3 = F32(2) * _rhe(a / F32(2))
    m1 = F32(1.0 if a < 2 else 0.0)
    m2 = F32(1.0 if a < 4 else 0.0)
    n1 = F32(1) - m1
    n2 = F32(1) - m2
    magnitude = step1 * m1 + step2 * n1 * m2 + step3 * n1 * n2
    sign = F32(np.sign(q)) if q == q else F32(math.nan)
    return sign * magnitude


def code_of(value: F32) -> int:
    """The E2M1 code ``quantize_bf16_to_unpacked_fp4`` gives the float32 ``value`` (its
    bfloat16 bits; a NaN's are 0xFFFF): exact for the E2M1 values, 0x8 for +-8."""
    if value != value:  # torch's AVX-512 float32 -> bfloat16 writes every NaN as 0xFFFF
        bits = 0xFFFF
    else:
        bits = int(np.array(value, F32).view(np.uint32)) >> 16  # the values are exact in bf16
    s, e, m = (bits >> 15) & 1, (bits >> 7) & 0xFF, bits & 0x7F
    zero = e == 0 and m == 0
    m = (m >> 6) & 1
    if e == 126 and m == 0:
        m = 1
    e -= 126
    if zero:
        e, m = 0, 0
    return ((s << 3) | (e << 1) | m) & 0xFF  # int16 arithmetic, then .to(torch.uint8)


def _variant(values, scale_hp: F32, dec: F32):
    """(scale byte, fake-quantized values) of one variant from its float32 ``y``."""
    if scale_hp != scale_hp:  # torch's cast keeps a NaN's sign bit
        byte = 0x7F | (int(np.array(scale_hp, F32).view(np.uint32)) >> 31 << 7)
    else:
        byte = e4m3.encode(float(scale_hp), "even", saturate=True)
    s = F32(e4m3.decode(byte))
    if s == 0:
        return byte, s, [F32(0.0)] * len(values)
    r = F32(1) / (dec * s)
    return byte, s, [fake_quantize(F32(v) * r) for v in values]


def _error(values, fq, s: F32, amax: F32, rule: str, lanes: int) -> F32:
    diffs = [(f * s * amax) / F32(1536) - F32(v) for v, f in zip(values, fq, strict=True)]
    if rule == "fouroversix-abs-max":
        out = F32(0.0)
        for d in diffs:  # torch max propagates NaN
            a = abs(d)
            out = a if (a != a or a > out) and out == out else out
        return out
    if rule == "fouroversix-mae":
        return F32(lane_sum([abs(d) for d in diffs], lanes))
    return F32(lane_sum([d * d for d in diffs], lanes))


def quantize_block(values: Sequence[float], rule: str, amax: float,
                   lanes: int = 16) -> tuple[int, list[int]]:
    """(E4M3 scale byte, E2M1 codes) of one NVFP4 block under four-over-six ``rule``, the
    tensor's amax being ``amax`` (float32)."""
    m, s_max = constants(rule)
    amax = F32(amax)
    with np.errstate(all="ignore"):
        if amax == 0:
            y = F32(0.0)
            enc = dec = F32(math.nan)
        else:
            enc = F32(m * s_max) / amax
            block_amax = F32(0.0)
            for v in values:  # torch max propagates NaN
                a = abs(F32(v))
                block_amax = a if (a != a or a > block_amax) and block_amax == block_amax \
                    else block_amax
            y = (block_amax / F32(m)) * enc
            dec = F32(1) / enc
            if amax != amax:  # torch's whole-tensor max of a NaN tensor is 0xFFFFFFFF,
                y = _NEGATIVE_NAN  # and that NaN reaches every block's scale: byte 0xFF
        byte, s, fq = _variant(values, y, dec)
        if rule in ("fouroversix", "fouroversix-mae", "fouroversix-abs-max"):
            byte4, s4, fq4 = _variant(values, y * F32(1.5), dec)
            e4 = _error(values, fq4, s4, amax, rule, lanes)
            e6 = _error(values, fq, s, amax, rule, lanes)
            if e4 < e6:
                byte, fq = byte4, fq4
    return byte, [code_of(f) for f in fq]


def dequantize_value(code: int, scale: int, amax: float, rule: str) -> float:
    """The float32 the package's decode gives element ``code`` under scale byte ``scale``."""
    from . import e2m1

    with np.errstate(all="ignore"):
        p = F32(e2m1.decode(code)) * F32(e4m3.decode(scale))
        return float((p * F32(amax)) / F32(decode_divisor(rule)))


def pack(codes: Sequence[int], order: str) -> list[int]:
    """The package's packing of a block's codes, ``(high << 4) | low`` in uint8: a code
    above 15 (a quotient far past 6, under a given tensor amax below the real one) spills
    into the byte as torch's uint8 arithmetic does (``pack_unpacked_fp4``: low-first)."""
    from . import nibbles

    out = nibbles.pack([c & 0xF for c in codes], order, len(codes))
    if order == "low-first":
        out = [b | (codes[2 * j] & 0xF0) for j, b in enumerate(out)]
    return list(out)
