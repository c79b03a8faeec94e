"""The optimal block-scale search, as qwantize 0.1.1 publishes it (``mxfp4_optimal``,
``nvfp4_optimal``), evaluated in IEEE float32 exactly as its reference code does.

fp4ref's definition. For one block ``x`` and candidate divisors ``d`` in ascending order:

1. ``s0`` is the base rule's scale and ``E0 = SSE(s0)``.
2. A block whose energy ``sum(x^2) <= E0`` keeps ``s0`` (a "noise block"), as does one
   where every element is affordable: ``k* = #{cumsum(sorted |x|^2) <= E0} = n``.
3. Bounds: ``s_min = max((amax - sqrt(E0)) / 6, 0)``, ``s_max = y_(k*) / 0.25`` (y sorted
   ascending, 0-based).
4. Candidates inside ``[s_min, s_max]`` are scanned in ascending order; one is skipped when
   its clipping error ``sum(max(|x| - 6 d, 0)^2)`` is not below the best error so far;
   the best is replaced only on a strict improvement (equal error keeps the earlier one).

Why float32 and not exact arithmetic: "identical output bytes" with qwantize needs the same
decisions on near-ties, and qwantize decides with float32 sums. So every error here is
float32: per element ``e = float32(|x| - float32(q * d))``, ``float32(e * e)``, summed by
:func:`lane_sum` in torch's CPU reduction order; the cumulative sums of step 2 accumulate
in float64 and round each prefix to float32 (torch's ``cumsum``). The tests check against
exact arithmetic that the chosen scale's exact error is within float32 rounding of the
exact minimum.

The Hessian-weighted search (qwantize's ``mxfp4_optimal_hessian`` /
``nvfp4_optimal_hessian``) keeps steps 1 to 3 (bounds from the float32 SSE) and picks the
candidate minimising ``r^T H r`` instead, ``H`` the block's column Hessian ``X_j^T X_j``:
see :func:`search_hessian`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .elements import element_code
from .scale_rules import f32, quotient


def lane_sum(terms: Sequence[float], lanes: int) -> float:
    """float32 sum of ``terms`` in torch's CPU order for a contiguous row.

    With ``lanes`` = the SIMD width in floats (16 for AVX-512, 8 for AVX2) and
    ``len(terms)`` a multiple of it: lane ``l`` accumulates ``terms[l], terms[l + lanes],
    ...`` in order, then the lane sums are added in lane order, starting from 0
    (ATen ``SumKernel.cpp``, ``vectorized_inner_sum``). ``lanes`` = 1 is a plain
    left-to-right sum.
    """
    n = len(terms)
    if lanes <= 1 or n < lanes or n % lanes:
        total = 0.0
        for term in terms:
            total = f32(total + term)
        return total
    total = 0.0
    for lane in range(lanes):
        partial = terms[lane]
        for k in range(lane + lanes, n, lanes):
            partial = f32(partial + terms[k])
        total = f32(total + partial)
    return total


def block_error(x: Sequence[float], d: float, multiply: bool, rounding: str, lanes: int) -> float:
    """qwantize's ``compute_block_sse`` for one block at divisor ``d``, in float32."""
    terms = []
    for value in x:
        magnitude = element_code(value, quotient(value, d, multiply), rounding, "keep") & 7
        dequantized = f32(_E2M1[magnitude] * d)
        error = f32(abs(value) - dequantized) if value == value else math.nan
        terms.append(f32(error * error))
    return lane_sum(terms, lanes)


_E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def residuals(x: Sequence[float], d: float, multiply: bool, rounding: str) -> list[float]:
    """qwantize's ``x - dequantized`` at divisor ``d``, in float32: ``sign(x) *
    float32(|x| - float32(q * d))`` (float32 rounding is symmetric in the sign)."""
    out = []
    for value in x:
        magnitude = element_code(value, quotient(value, d, multiply), rounding, "keep") & 7
        residual = f32(abs(value) - f32(_E2M1[magnitude] * d))
        out.append(-residual if value < 0 else residual)
    return out


def hessian_error(r: Sequence[float], h: Sequence[Sequence[float]]) -> float:
    """``r^T H r`` in float64, in a fixed order: ``sum_a r_a * (sum_b H[a][b] * r_b)``,
    b then a ascending, each product and sum one float64 operation."""
    total = 0.0
    for a, row in enumerate(h):
        inner = 0.0
        for b, entry in enumerate(row):
            inner += entry * r[b]
        total += r[a] * inner
    return total


def _bounds(x: Sequence[float], e0: float, lanes: int) -> tuple[float, float] | None:
    """Steps 2 and 3: None for a block that keeps its start scale, else (s_min, s_max)."""
    energy = lane_sum([f32(v * v) for v in x], lanes)
    if energy <= e0:
        return None
    magnitudes = sorted(abs(v) for v in x)
    running, k_star = 0.0, 0
    for y in magnitudes:
        running += f32(y * y)  # float64 accumulator, float32 prefix (torch cumsum)
        k_star += f32(running) <= e0
    if k_star >= len(x):
        return None
    amax = magnitudes[-1]
    s_min = max(f32(f32(amax - f32(math.sqrt(e0))) / 6), 0.0)
    return s_min, f32(magnitudes[k_star] / 0.25)


def _clip_error(x: Sequence[float], d: float, lanes: int) -> float:
    six_d = f32(6 * d)
    return lane_sum([f32(max(f32(abs(v) - six_d), 0.0) ** 2) for v in x], lanes)


def search_hessian(
    x: Sequence[float], start: int, start_divisor: float,
    candidates: Sequence[tuple[int, float]], multiply: bool, rounding: str, lanes: int,
    h: Sequence[Sequence[float]], fast_fail: str,
) -> int:
    """The scale byte minimising ``r^T H r`` (qwantize's ``*_optimal_hessian``).

    Steps 1 to 3 of :func:`search` (start scale, noise blocks, SSE bounds) are unchanged.
    The start's Hessian error ``E_H0`` (:func:`hessian_error` of :func:`residuals`) is the
    first best; candidates inside the bounds are scanned ascending, skipped unless their
    clipping error is below ``E0`` (``fast_fail="e0"``, qwantize's MXFP4) or below
    ``10 * best`` (``"best10"``, its NVFP4; float64 product), and taken on a strict
    improvement of the Hessian error.

    fp4ref evaluates ``r^T H r`` in float64 in a fixed order (qwantize: float32 through
    torch's BLAS, whose summation order is not specified), so a choice can differ from
    qwantize's only where two candidates' Hessian errors agree to float32 rounding.
    """
    e0 = block_error(x, start_divisor, multiply, rounding, lanes)
    bounds = _bounds(x, e0, lanes)
    if bounds is None:
        return start
    s_min, s_max = bounds
    best, best_error = start, hessian_error(residuals(x, start_divisor, multiply, rounding), h)
    for byte, d in candidates:
        if not (s_min <= d <= s_max):
            continue
        limit = e0 if fast_fail == "e0" else 10.0 * best_error
        if not _clip_error(x, d, lanes) < limit:
            continue
        error = hessian_error(residuals(x, d, multiply, rounding), h)
        if error < best_error:
            best, best_error = byte, error
    return best


def search(
    x: Sequence[float], start: int, start_divisor: float,
    candidates: Sequence[tuple[int, float]], multiply: bool, rounding: str, lanes: int,
) -> int:
    """The scale byte the optimal search picks for the finite float32 block ``x``.

    Parameters
    ----------
    x : sequence of float
        The block's float32 values.
    start, start_divisor : int, float
        The base rule's scale byte ``s0`` and its float32 divisor.
    candidates : sequence of (byte, divisor)
        Every candidate scale with its float32 divisor, divisors ascending.
    multiply, rounding, lanes
        Element arithmetic (see :func:`fp4ref.spec.scale_rules.quotient`), tie rule, and
        the float32 summation order (:func:`lane_sum`).
    """
    e0 = block_error(x, start_divisor, multiply, rounding, lanes)
    bounds = _bounds(x, e0, lanes)
    if bounds is None:
        return start
    s_min, s_max = bounds
    best, best_error = start, e0
    for byte, d in candidates:
        if not (s_min <= d <= s_max):
            continue
        if not _clip_error(x, d, lanes) < best_error:
            continue
        error = block_error(x, d, multiply, rounding, lanes)
        if error < best_error:
            best, best_error = byte, error
    return best
