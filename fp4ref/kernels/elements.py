"""E2M1 elements inside a block as numba scalar functions: the one element encoder of the
CPU and GPU kernels, the fast layer's twin of :mod:`fp4ref.spec.elements`.

An element's code is the E2M1 magnitude nearest to its scaled magnitude ``y`` (a float32
quotient, :func:`quotient`) under the tie rule, saturating at 6 (OCP MX v1.0 section 6.3),
with the sign of a zero code by the zero-sign rule. :func:`element_code` and
:func:`packed_byte` compile for the CPU (the scalar paths of :mod:`.cpu.quantize`) and, as
device functions, for the GPU (:mod:`.cuda.quantize`); the vector code of :mod:`.cpu.simd`
counts the same :data:`THRESHOLDS`.
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.core.extending import overload

from .options import (
    TIE_ARGMIN,
    TIE_AWAY,
    TIE_EVEN,
    TIE_ZERO,
    ZERO_DROP,
    ZERO_NEGATIVE,
    ZERO_NOT_POSITIVE,
    ZERO_QUOTIENT,
)
from .scalar import byte_elements
from .scale_rules import divide, f32

# Halfway points between adjacent E2M1 magnitudes.
_MIDPOINTS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)


#: The E2M1 magnitudes of codes 0..7 (OCP MX v1.0 section 5.3.3).
E2M1_MAGNITUDES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


@njit(cache=True, error_model="numpy")
def quotient(x, d, multiply):
    """float32(|x| / d), or float32(|x| * d)."""
    if multiply:
        return f32(abs(x) * d)
    return divide(abs(x), d)


def _thresholds() -> np.ndarray:
    """``[tie, k]``: float32 t with E2M1 magnitude code = #{k : y > t[k]} for float32 y >= 0
    (a midpoint a tie sends up becomes the float32 just below it: y >= m is y > prev(m))."""
    up = {TIE_EVEN: (False, True, False, True, False, True, False),  # to the even code
          TIE_AWAY: (True,) * 7, TIE_ZERO: (False,) * 7,
          TIE_ARGMIN: (False,) * 7}  # argmin's first index: toward zero (finite q < 2^24)
    table = np.empty((len(up), 7), np.float32)
    for tie, ups in up.items():
        for k, midpoint in enumerate(_MIDPOINTS):
            m = np.float32(midpoint)
            table[tie, k] = np.nextafter(m, np.float32(0)) if ups[k] else m
    return table


#: :func:`_thresholds`, a compile-time constant of the kernels.
THRESHOLDS = _thresholds()


def count_below(y, t):
    """How many of the seven ascending thresholds ``t`` lie below ``y`` (False for NaN).

    One count, two shapes of code: on the CPU seven comparisons added up, branch-free
    (LLVM keeps them in registers; a bisection there compiles to branches, about three times
    slower in the scalar NVFP4 path), on the GPU a bisection of three comparisons and
    selects (:mod:`.cuda.elements` registers it), which the GPU predicates."""
    return sum(y > t[k] for k in range(7))


@overload(count_below, inline="always")
def _count_below_cpu(y, t):
    return lambda y, t: ((y > t[0]) + (y > t[1]) + (y > t[2]) + (y > t[3]) + (y > t[4])
                         + (y > t[5]) + (y > t[6]))


@njit(cache=True, error_model="numpy")
def argmin_code(y):
    """MLX's E2M1 magnitude code of the float32 ``y`` >= 0 (or NaN): the first of codes
    0..7 whose float32 distance ``|y - v|`` is least (``argmin(abs(q - lut))``, MLX 0.32.4
    ``fp_quantize``; the oracle's :func:`fp4ref.spec.elements.argmin_code`). NaN and Inf
    give 0, as does a y so large that the float32 distances round equal."""
    q = np.float32(y)
    best = abs(q)
    code = 0
    for m in range(1, 8):
        distance = abs(q - np.float32(E2M1_MAGNITUDES[m]))
        if distance < best:
            best = distance
            code = m
    return code


@njit(cache=True, error_model="numpy")
def magnitude_code(y, tie):
    """E2M1 magnitude code (0..7) of a float32 scaled magnitude ``y`` >= 0 (saturating; NaN
    gives 0): the number of :data:`THRESHOLDS` of the tie rule below ``y`` (the nearest
    magnitude, :func:`fp4ref.spec.elements.element_code`), by :func:`count_below`. The
    thresholds are the exact float32 midpoints (or the float32 just below one that the tie
    sends up), so each float32 comparison decides as the float64 one does. Under
    :data:`..options.TIE_ARGMIN`: :func:`argmin_code`."""
    if tie == TIE_ARGMIN:
        return argmin_code(y)
    return count_below(y, THRESHOLDS[tie])


@njit(cache=True, error_model="numpy")
def element_code(x, d, multiply, tie, zero_sign):
    """E2M1 code of element ``x`` (a float32 value) at float32 divisor ``d``, in float32
    operations: y = float32(|x| / d), or float32(|x| * d) when ``multiply``, one IEEE
    float32 operation, the very value :func:`quotient` rounds to; then the code of
    :func:`magnitude_code` and the sign by ``zero_sign``
    (:data:`fp4ref.spec.elements.ZERO_SIGNS`), branch-free.

    MXFP4 passes d = 2^(127 - s) with ``multiply``: a product by a power of two is exact in
    float32 when it is normal or infinite (the float64 product is then that value, or past
    6 like Inf); when the exact product is below 2^-126 < 0.25, float32 rounds it to at most
    2^-126, and both give code 0 (:func:`magnitude_code`)."""
    v = np.float32(x)
    a = abs(v)
    y = a * d if multiply else a / d
    return signed_code(v, y, magnitude_code(y, tie), zero_sign)


@njit(cache=True, error_model="numpy")
def signed_code(v, y, code, zero_sign):
    """The E2M1 code of element ``v`` (float32) with magnitude code ``code`` of its scaled
    magnitude ``y``: the sign bit (8, ``v``'s own bit moved there) by ``zero_sign``
    (:data:`fp4ref.spec.elements.ZERO_SIGNS`), branch-free."""
    sign = np.int32((np.float32(v).view(np.uint32) >> np.uint32(28)) & np.uint32(8))
    if zero_sign == ZERO_DROP:  # a zero code drops the sign
        sign = sign * (code != 0)
    elif zero_sign == ZERO_NEGATIVE:  # a zero code keeps it only for x < 0 (not -0)
        sign = sign * ((code != 0) | (v < np.float32(0.0)))
    elif zero_sign == ZERO_QUOTIENT:  # only for a quotient < 0 (not -0, not underflowed)
        sign = sign * ((code != 0) | (y > np.float32(0.0)))
    elif zero_sign == ZERO_NOT_POSITIVE:  # unless the quotient is > 0 (ModelOpt cast_fp4)
        sign = sign if y > np.float32(0.0) else np.int32(8)
    return code | sign


#: 1.5 * 2^23: float32 sums in [2^23, 2^24) are integers, so adding it rounds to one.
_MAGIC = np.float32(12582912.0)


@njit(cache=True, error_model="numpy")
def nearest_even_code(y):
    """E2M1 magnitude code of a float32 ``y`` >= 0, not NaN, under ties to even: the
    :func:`magnitude_code` of :data:`..options.TIE_EVEN`, in float additions the GPU issues
    on its FMA pipes rather than comparisons and selects on its integer pipe.

    The magnitudes are 0.5 apart on [0, 2], 1 apart on [2, 4] and 2 apart on [4, 6], so
    code = round(2y) below 2, round(y) + 2 from 2 to 4, round(y / 2) + 4 from 4 up, at most 7
    (6 saturates, OCP MX v1.0 section 6.3), each rounding to the nearest integer with ties to
    even (which keeps the parity of the code: the offsets are even). Each of the three lines
    lies below the others on its own interval (2y <= y + 2 iff y <= 2, y + 2 <= y/2 + 4 iff
    y <= 4, 2y <= y/2 + 4 iff y <= 8/3), and rounding is monotone, so the code is the
    least of the three and 7. A float32 sum with 1.5 * 2^23 rounds once to an integer
    (exact products 2y, y/2 below 2^21; above that every line is past 7), so the least of
    the sums minus 1.5 * 2^23 is the code, read from the low bits (Inf gives 7)."""
    v = np.float32(y)
    by_half = np.float32(2.0) * v + _MAGIC
    by_one = v + (_MAGIC + np.float32(2.0))
    by_two = np.float32(0.5) * v + (_MAGIC + np.float32(4.0))
    # positive floats order as their bits: the least as integers (one three-way minimum)
    least = min(min(np.float32(by_half).view(np.uint32), np.float32(by_one).view(np.uint32)),
                min(np.float32(by_two).view(np.uint32), np.uint32(0x4B400007)))
    return np.int32(least - np.uint32(0x4B400000))


#: The divisors :func:`reciprocal_quotient` takes: in [2^-100, 2^100], so that 1 / d is a
#: normal float32 and every quotient that can reach an E2M1 threshold comes of normal
#: operands (an ``|x|`` below 2^-126 gives a quotient below 2^-26).
RECIPROCAL_RANGE = (2.0**-100, 2.0**100)


def reciprocal_quotient(a, d, r):
    """float32(a / d), for a float32 ``a >= 0`` (or +Inf) and a divisor ``d`` in
    :data:`RECIPROCAL_RANGE`, given ``r = float32(1 / d)``; fed to
    :func:`nearest_even_code` only.

    Two shapes of code: on the CPU (and in the simulator) the IEEE division itself; on the
    GPU (:mod:`.cuda.elements` registers it) the product ``q = a * r`` corrected once,
    ``q + fma(-q, d, a) * r`` (Markstein's step: two FMAs on the FMA pipe instead of a
    division's dozen instructions and its slow-path branch). That step gives the correctly
    rounded quotient for every pair of float32 significands (checked exhaustively on the
    H200, all 2^46 pairs: ``docs/scripts/h200_reciprocal.py``), hence for every ``a`` and
    ``d`` whose operands and quotient are normal; where ``a / d`` is below 2^-26 it may
    differ in its last bits, far below the least threshold 0.25; where ``a`` is Inf or the
    product overflows the GPU gives NaN, which :func:`nearest_even_code` codes 7, as Inf."""
    return np.float32(a) / np.float32(d)


@overload(reciprocal_quotient, inline="always")
def _reciprocal_quotient_cpu(a, d, r):
    return lambda a, d, r: np.float32(a) / np.float32(d)


@njit(cache=True, error_model="numpy")
def threshold_code(x, t, zero_sign):
    """:func:`element_code` of element ``x`` (a float32 value) by decision thresholds: the
    magnitude code is the number of the seven float32 ``t`` (a tuple, ascending) below
    ``|x|``, which equals :func:`magnitude_code` of ``float32(|x| / d)`` when ``t`` are the
    thresholds of ``d`` (:func:`.cpu.simd.nvfp4_search.decision_threshold`, for a finite
    divisor ``d >= 0``); the sign as there, for ``zero_sign`` keep, drop or negative (the
    others need the quotient)."""
    v = np.float32(x)
    return signed_code(v, abs(v), count_below(abs(v), t), zero_sign)


@njit(cache=True, error_model="numpy")
def scaled_element_code(x, d, post, tie, zero_sign):
    """E2M1 code of element ``x`` when its scaled magnitude is float32(float32(|x| / d) *
    post), two float32 operations (MLX's NVFP4 ``multiply(divide(wq, s_b), E)``, recipe
    ``"mlx"``; :func:`fp4ref.spec.scale_rules.mlx_quotient`), with the sign as
    :func:`element_code`."""
    v = np.float32(x)
    y = (abs(v) / np.float32(d)) * np.float32(post)
    return signed_code(v, y, magnitude_code(y, tie), zero_sign)


@njit(cache=True, error_model="numpy")
def packed_byte(row, i, order, d, multiply, tie, zero_sign):
    """Packed byte ``i`` of a block at float32 divisor ``d`` (:func:`element_code`; an
    MXFP4 block with scale 2^(s - 127) has d = 2^(127 - s) and ``multiply``), its element
    ``byte_elements(i, order)[0]`` in the low nibble."""
    low, high = byte_elements(i, order, row.shape[0])
    return (element_code(row[low], d, multiply, tie, zero_sign)
            | (element_code(row[high], d, multiply, tie, zero_sign) << 4))
