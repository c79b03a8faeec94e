"""Four-over-six (:mod:`fp4ref.spec.fouroversix`) as numba scalar functions, compiled for
the CPU kernel :func:`fp4ref.kernels.cpu.quantize.quantize_nv_fouroversix` (and, from the
same source, as device functions). Every float32 step is the float32 operation the oracle
writes with numpy float32 scalars, in the package's order; scratch arrays are the caller's.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .options import TIE_EVEN, code
from .scalar import e4m3_decode, e4m3_encode

F32 = np.float32
MSE, MAE, ABS_MAX, STATIC_6, STATIC_4 = (code("nvfp4_scale_rule", n) for n in (
    "fouroversix", "fouroversix-mae", "fouroversix-abs-max", "fouroversix-static-6",
    "fouroversix-static-4"))


@njit(cache=True, error_model="numpy")
def _rhe(v):
    """torch.round of a float32 >= 0 (ties to even; Inf and NaN as they are)."""
    if not v - v == 0:
        return v
    if v >= F32(8388608.0):  # 2^23 and above a float32 is an integer; math.floor would
        return v  # overflow int64 past 2^63 (a quotient far past 6 under a given amax)
    whole = math.floor(np.float64(v))
    rest = np.float64(v) - whole
    if rest > 0.5 or (rest == 0.5 and whole % 2 == 1):
        whole += 1
    return F32(whole)


@njit(cache=True, error_model="numpy")
def fake_quantize(q):
    """:func:`fp4ref.spec.fouroversix.fake_quantize` (float32 in, float32 out)."""
    a = abs(q)
    two = F32(2.0)
    step1 = _rhe(two * a) / two
    step2 = _rhe(a)
    step3 = two * _rhe(a / two)
    m1 = F32(1.0) if a < two else F32(0.0)
    m2 = F32(1.0) if a < F32(4.0) else F32(0.0)
    n1 = F32(1.0) - m1
    n2 = F32(1.0) - m2
    magnitude = step1 * m1 + step2 * n1 * m2 + step3 * n1 * n2
    if q > 0:
        sign = F32(1.0)
    elif q < 0:
        sign = F32(-1.0)
    elif q == 0:
        sign = F32(0.0)
    else:
        sign = F32(math.nan)
    return sign * magnitude


@njit(cache=True, error_model="numpy")
def code_of(value):
    """:func:`fp4ref.spec.fouroversix.code_of`."""
    if value != value:
        bits = np.int64(0xFFFF)
    else:
        bits = np.int64(np.float32(value).view(np.uint32)) >> 16
    s, e, m = (bits >> 15) & 1, (bits >> 7) & 0xFF, bits & 0x7F
    zero = e == 0 and m == 0
    m = (m >> 6) & 1
    if e == 126 and m == 0:
        m = 1
    e -= 126
    if zero:
        e = 0
        m = 0
    return ((s << 3) | (e << 1) | m) & 0xFF


@njit(cache=True, error_model="numpy")
def _variant(row, y, dec, fq):
    """Scale byte of one variant from its float32 ``y``; its fake-quantized values in
    ``fq``; returns (byte, scale value as float32)."""
    if y != y:  # torch's cast keeps a NaN's sign bit
        byte = np.int64(0x7F) | ((np.int64(np.float32(y).view(np.uint32)) >> 31) << 7)
    else:
        byte = np.int64(e4m3_encode(y, TIE_EVEN, True))
    s = F32(e4m3_decode(byte))
    if s == 0:
        for i in range(row.shape[0]):
            fq[i] = F32(0.0)
        return byte, s
    r = F32(1.0) / (dec * s)
    for i in range(row.shape[0]):
        fq[i] = fake_quantize(F32(row[i]) * r)
    return byte, s


@njit(cache=True, error_model="numpy")
def _error(row, fq, s, amax, rule, lanes):
    n = row.shape[0]
    if rule == ABS_MAX:
        out = F32(0.0)
        for i in range(n):
            a = abs((fq[i] * s * amax) / F32(1536.0) - F32(row[i]))
            if (a != a or a > out) and out == out:
                out = a
        return out
    use_lanes = not (lanes <= 1 or n < lanes or n % lanes)
    width = lanes if use_lanes else 1
    total = F32(0.0)
    for lane in range(width):
        partial = F32(0.0)
        first = True
        for k in range(lane, n, width):
            d = (fq[k] * s * amax) / F32(1536.0) - F32(row[k])
            t = abs(d) if rule == MAE else d * d
            if use_lanes and first:
                partial = t
            else:
                partial = partial + t
            first = False
        total = total + partial
    return total


@njit(cache=True, error_model="numpy")
def quantize_block(row, rule, amax, lanes, fq6, fq4, codes):
    """:func:`fp4ref.spec.fouroversix.quantize_block` of float32 ``row``: the scale byte;
    the codes in ``codes`` (``fq6``, ``fq4``: float32 scratch of the block's length)."""
    amax = F32(amax)
    if rule == STATIC_4:
        m, s_max = F32(4.0), F32(448.0)
    elif rule == STATIC_6:
        m, s_max = F32(6.0), F32(448.0)
    else:
        m, s_max = F32(6.0), F32(256.0)
    if amax == 0:
        y = F32(0.0)
        dec = F32(math.nan)
    else:
        enc = (m * s_max) / amax
        block_amax = F32(0.0)
        for i in range(row.shape[0]):
            a = abs(F32(row[i]))
            if (a != a or a > block_amax) and block_amax == block_amax:
                block_amax = a
        y = (block_amax / m) * enc
        if y != y and block_amax == block_amax:  # Inf * 0 (an Inf tensor amax): x86's
            y = np.uint32(0xFFC00000).view(np.float32)  # default NaN, negative (the GPU's
            # is positive): byte 0xFF as the package on x86 (docs/findings.md 21)
        dec = F32(1.0) / enc
        if amax != amax:  # torch's whole-tensor max of a NaN tensor is 0xFFFFFFFF
            y = np.uint32(0xFFFFFFFF).view(np.float32)
    byte, s = _variant(row, y, dec, fq6)
    chosen = 6
    if rule == MSE or rule == MAE or rule == ABS_MAX:
        byte4, s4 = _variant(row, y * F32(1.5), dec, fq4)
        e4 = _error(row, fq4, s4, amax, rule, lanes)
        e6 = _error(row, fq6, s, amax, rule, lanes)
        if e4 < e6:
            byte = byte4
            chosen = 4
    for i in range(row.shape[0]):
        codes[i] = code_of(fq4[i] if chosen == 4 else fq6[i])
    return byte
