"""An exact dot-product accumulator in the subset of Python that numba compiles for CPU and
GPU, shared by :mod:`.cpu.ops` and :mod:`.cuda.ops` as :mod:`.scalar` is by the codec.

The product of two float32 values is ``m * 2^e`` with an integer ``m < 2^48`` and
``-298 <= e <= 208``. The accumulator adds every such product exactly into a fixed-point
number of ``LIMBS`` 32-bit digits (bit 0 is ``2^BASE``), each digit held in an int64 so that
carries can wait until the end: every digit receives less than ``2^33`` per product, so up
to ``MAX_TERMS`` products fit before an int64 could overflow. :func:`acc_round` then rounds
the exact sum once to float32. NaN and infinities are kept as flags in ``acc[FLAGS]``.

Everything is integer arithmetic on float32 bit patterns, so the CPU and GPU results are the
same bits by construction.
"""

from __future__ import annotations

from numba import int64, njit

#: Digits of the fixed-point sum, and the exponent of its lowest bit.
LIMBS, BASE = 20, -320

#: Index of the flags word; an accumulator is an int64 array of ``ACC_SIZE`` entries.
FLAGS = LIMBS
ACC_SIZE = LIMBS + 1

#: The most products one accumulator takes (each digit gets < 2^33 per product).
MAX_TERMS = 1 << 29

#: Flag bits: a NaN term; a +inf term; a -inf term; a term other than -0; any term.
SEEN_NAN, SEEN_POS_INF, SEEN_NEG_INF, SEEN_NOT_NEG_ZERO, SEEN_TERM = 1, 2, 4, 8, 16

#: float32 bit patterns.
NAN_BITS, INF_BITS, SIGN_BIT, ONE_BITS = 0x7FC00000, 0x7F800000, 0x80000000, 0x3F800000

_DIGIT = 0xFFFFFFFF


@njit(cache=True)
def acc_clear(acc):
    """Set the accumulator to an empty sum."""
    for i in range(ACC_SIZE):
        acc[i] = 0


@njit(cache=True)
def _add_scaled(acc, negative, m, e):
    """Add ``(-1)^negative * m * 2^e`` (``0 < m < 2^48``, ``e >= BASE``) exactly."""
    shift = e - BASE
    i = shift >> 5
    off = shift & 31
    low = (m & _DIGIT) << off  # < 2^63
    high = (m >> 32) << off  # < 2^47
    d0 = low & _DIGIT
    d1 = (low >> 32) + (high & _DIGIT)
    d2 = high >> 32
    if negative:
        acc[i] -= d0
        acc[i + 1] -= d1
        acc[i + 2] -= d2
    else:
        acc[i] += d0
        acc[i + 1] += d1
        acc[i + 2] += d2


@njit(cache=True)
def acc_add_product(acc, x_bits, w_bits):
    """Add the exact product of the float32 values with bits ``x_bits`` and ``w_bits``."""
    x = int64(x_bits)
    w = int64(w_bits)
    negative = ((x ^ w) >> 31) & 1
    x_field, w_field = (x >> 23) & 0xFF, (w >> 23) & 0xFF
    x_fraction, w_fraction = x & 0x7FFFFF, w & 0x7FFFFF
    x_zero = x_field == 0 and x_fraction == 0
    w_zero = w_field == 0 and w_fraction == 0
    acc[FLAGS] |= SEEN_TERM
    if (x_field == 0xFF and x_fraction != 0) or (w_field == 0xFF and w_fraction != 0):
        acc[FLAGS] |= SEEN_NAN
    elif x_field == 0xFF or w_field == 0xFF:  # inf * 0 is invalid (IEEE 754 section 7.2)
        if x_zero or w_zero:
            acc[FLAGS] |= SEEN_NAN
        else:
            acc[FLAGS] |= SEEN_NEG_INF if negative else SEEN_POS_INF
    elif x_zero or w_zero:
        if not negative:
            acc[FLAGS] |= SEEN_NOT_NEG_ZERO
    else:
        acc[FLAGS] |= SEEN_NOT_NEG_ZERO
        x_exponent = x_field - 150 if x_field else -149
        w_exponent = w_field - 150 if w_field else -149
        if x_field:
            x_fraction |= 0x800000
        if w_field:
            w_fraction |= 0x800000
        _add_scaled(acc, negative, x_fraction * w_fraction, x_exponent + w_exponent)


@njit(cache=True)
def split_f32(bits):
    """(signed significand, exponent, special) of float32 ``bits``: the value is
    ``m * 2^e`` with ``|m| < 2^24`` and ``e >= -149`` when ``special`` (NaN or infinity) is
    false. Zeros give ``m = 0`` (their sign is lost: see :func:`acc_add_split`)."""
    b = int64(bits)
    field = (b >> 23) & 0xFF
    m = b & 0x7FFFFF
    if field:
        m |= 0x800000
    if b >> 31:
        m = -m
    return m, (field - 150 if field else int64(-149)), field == 0xFF


@njit(cache=True)
def acc_add_split(acc, m, e):
    """Add ``m * 2^e`` (``|m| < 2^48``, ``e >= BASE``) exactly, without a branch on its sign.

    The fast path for finite products, from :func:`split_f32` parts (``m`` the product of
    two significands, ``e`` the sum of two exponents). It sets no flags: zeros add nothing
    and their signs are not tracked, so a caller seeing an exact zero must find its sign
    with :func:`acc_add_product`.
    """
    shift = e - BASE
    i = shift >> 5
    off = shift & 31
    low = (m & _DIGIT) << off  # < 2^63
    high = (m >> 32) << off  # arithmetic shift: m = (m & _DIGIT) + (m >> 32) * 2^32
    acc[i] += low & _DIGIT
    acc[i + 1] += (low >> 32) + (high & _DIGIT)
    acc[i + 2] += high >> 32


@njit(cache=True)
def _normalize(acc):
    """Propagate carries: digits 0..LIMBS-2 into [0, 2^32), the top digit keeps the sign."""
    for i in range(LIMBS - 1):
        carry = acc[i] >> 32
        acc[i] -= carry << 32
        acc[i + 1] += carry


@njit(cache=True)
def _field(acc, low, n):
    """Bits ``low .. low + n - 1`` (exponents) of a normalized non-negative sum; n <= 32."""
    pos = low - BASE
    i = pos >> 5
    off = pos & 31
    v = acc[i] >> off
    if off + n > 32 and i + 1 < LIMBS:
        v |= acc[i + 1] << (32 - off)
    return v & ((int64(1) << n) - 1)


@njit(cache=True)
def _any_below(acc, low):
    """Whether any bit of exponent below ``low`` is set in a normalized sum."""
    pos = low - BASE
    i = pos >> 5
    if acc[i] & ((int64(1) << (pos & 31)) - 1):
        return True
    for j in range(i):
        if acc[j] != 0:
            return True
    return False


@njit(cache=True)
def acc_round(acc):
    """float32 bits of the exact sum rounded once to nearest even (IEEE 754 section 4.3.1).

    NaN terms, ``0 * inf`` or infinities of both signs give the canonical NaN; infinities of
    one sign give that infinity; an exact zero is ``+0`` unless every term was ``-0``
    (section 6.3); a sum past the float32 range rounds to an infinity. Leaves ``acc``
    normalized (or negated): clear it before reuse.
    """
    flags = acc[FLAGS]
    if flags & SEEN_NAN or (flags & SEEN_POS_INF and flags & SEEN_NEG_INF):
        return int64(NAN_BITS)
    if flags & SEEN_POS_INF:
        return int64(INF_BITS)
    if flags & SEEN_NEG_INF:
        return int64(SIGN_BIT | INF_BITS)
    _normalize(acc)
    sign = int64(0)
    if acc[LIMBS - 1] < 0:
        sign = int64(SIGN_BIT)
        for i in range(LIMBS):
            acc[i] = -acc[i]
        _normalize(acc)
    top = LIMBS - 1
    while top >= 0 and acc[top] == 0:
        top -= 1
    if top < 0:
        all_negative_zero = flags & SEEN_TERM and not flags & SEEN_NOT_NEG_ZERO
        return int64(SIGN_BIT) if all_negative_zero else int64(0)
    length = 0
    v = acc[top]
    while v:
        v >>= 1
        length += 1
    highest = 32 * top + BASE + length - 1  # exponent of the leading bit
    q = max(highest - 23, -149)  # exponent of the last kept bit (float32 quantum)
    kept = _field(acc, q, 24)
    if _field(acc, q - 1, 1) and (kept & 1 or _any_below(acc, q - 1)):
        kept += 1
    bits = ((q + 149) << 23) + kept  # a carry out of 24 bits steps the exponent field
    if bits >= INF_BITS:
        bits = int64(INF_BITS)
    return sign | bits
