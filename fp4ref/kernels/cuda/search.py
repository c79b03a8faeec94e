"""The optimal block-scale search by SSE as GPU device functions, for a thread a block.

:func:`search_function` builds the decision procedure of :func:`..optimal.search`
(:mod:`fp4ref.spec.optimal`, steps 1 to 4) for one block length ``n``, one float32
summation order ``lanes``, one tie rule and one kind of quotient, all compile-time
constants: every loop unrolls, every array index is a constant, and the block, its error
terms and its sorted magnitudes stay in registers. (The njit functions of :mod:`..optimal`,
compiled as device functions, take ``lanes`` at run time and index float64 scratch arrays
by run-time indices, which puts them in local memory, and sort by O(n^2) ranks.) It decides
from the same float32 and float64 numbers as :func:`..optimal.search`, each computed by the
same IEEE operations; where it computes fewer of them, the function doing so says why the
decision is the same. Products that are later added are :func:`..unfused.mul`, which NVVM
never contracts into an FMA.

Where the time goes (H200, docs/benchmarks.md): an element's E2M1 magnitude at each
candidate scale. MXFP4 counts its lowest thresholds by saturating FMAs (:func:`above`), on
the FMA pipe, beside the integer pipe's comparisons; NVFP4 compares ``|x|`` itself with
each candidate's decision thresholds (no division). The clipping test, which skips nothing
that the SSE would take, is left out for divisors >= 0 (:func:`search_function`).
"""

from __future__ import annotations

import numpy as np
from numba import cuda, float32, float64
from numba.cuda import config

from ..elements import E2M1_MAGNITUDES, THRESHOLDS
from ..optimal import first_at_least, lower_bound, merge_sort_pairs
from ..quantize_block import e8m0_reciprocal32
from ..unfused import mul
from . import unfused  # noqa: F401 (the GPU's mul overload)

#: How the MXFP4 SSE counts an element's E2M1 code (the NVFP4 searches compare): its lowest
#: ``"saturated"`` thresholds (0 to 7) by saturating FMAs (:func:`above`, on the FMA pipe),
#: the others by comparisons and selects (the integer pipe, which bounds the comparing
#: search as it did the rule kernels). Part of the search kernel's key; experiments set it.
SEARCH_SHAPE = {"saturated": 4}

#: 2^26: scale of :func:`above` (at least 1 / ulp of the smallest threshold).
_ABOVE_SCALE = np.float32(2.0**26)

if config.ENABLE_CUDASIM:

    def above(y, scaled):
        """1.0 if ``y > t`` else 0.0 (float32), for ``scaled = -t * 2^26``: in float64,
        whose ``y * 2^26`` is exact and whose sum keeps the exact sum's sign."""
        return np.float32(np.float64(y) * np.float64(_ABOVE_SCALE) + np.float64(scaled) > 0)

else:
    from llvmlite import ir
    from numba import types
    from numba.cuda.extending import intrinsic

    @intrinsic
    def _saturated_fma(typingctx, a, b, c):
        """PTX ``fma.rn.sat.f32``: ``a * b + c`` rounded once, clamped to [0, 1]."""
        if not (a == b == c == types.float32):
            return None

        def codegen(context, builder, signature, args):
            single = ir.FloatType()
            asm = ir.InlineAsm(ir.FunctionType(single, [single] * 3),
                               "fma.rn.sat.f32 $0, $1, $2, $3;", "=f,f,f,f")
            return builder.call(asm, args)

        return types.float32(a, b, c), codegen

    @cuda.jit(device=True, inline="always")
    def above(y, scaled):
        """1.0 if ``y > t`` else 0.0 (float32) for a float32 ``y >= 0`` or +Inf and
        ``scaled = -t * 2^26``, ``t`` a float32 in [2^-3, 2^3) (every E2M1 threshold), in one
        saturating FMA: ``fma.rn.sat(y, 2^26, scaled)``. The product and sum are rounded
        once, from the exact ``2^26 (y - t)``: if ``y > t``, then ``y >= t + ulp(t)`` and
        ``ulp(t) >= 2^-26``, so it is at least 1 (Inf when ``y * 2^26`` overflows) and
        saturates to 1; otherwise it is <= 0, and rounds and saturates to 0."""
        return _saturated_fma(y, _ABOVE_SCALE, scaled)


def _device(function):
    """``function`` as a device function inlined into its caller (numba IR inlining, so
    the caller's local arrays are its own and stay in registers)."""
    return cuda.jit(device=True, inline="always")(function)


def sort_function(n: int):
    """A device function ``sort(v)`` sorting the float32 local array ``v[:n]`` ascending in
    place (``n`` a power of two), by the network of :func:`merge_sort_pairs` written out with
    literal indices: generated source, since a loop over the pairs would index ``v`` at run
    time. ``min`` and ``max`` of two finite or infinite float32 values are exact, so the
    result holds the same values as any ascending sort (equal values are equal)."""
    lines = ["def sort(v):"]
    for i, j in merge_sort_pairs(n):
        lines.append(f"    v[{i}], v[{j}] = min(v[{i}], v[{j}]), max(v[{i}], v[{j}])")
    scope: dict = {}
    exec(compile("\n".join(lines), f"<sort network {n}>", "exec"), scope)  # noqa: S102
    scope["sort"].__doc__ = "Sort the float32 array ``v`` ascending in place."
    return _device(scope["sort"])


def lane_sum_function(n: int, lanes: int):
    """A device function ``lane_sum(terms)``: the float32 sum of the float32 array
    ``terms[:n]`` in torch's CPU order (:func:`fp4ref.spec.optimal.lane_sum`), the same
    float32 additions in the same order as :func:`..optimal.lane_sum`."""
    plain = lanes <= 1 or n < lanes or n % lanes != 0

    def lane_sum(terms):
        """float32 sum of ``terms`` in torch's order."""
        total = float32(0.0)
        if plain:
            for i in range(n):
                total = total + terms[i]
        else:
            for lane in range(lanes):
                partial = terms[lane]
                for k in range(lane + lanes, n, lanes):
                    partial = partial + terms[k]
                total = total + partial
        return total

    return _device(lane_sum)


def sse_functions(n: int, lanes: int, tie: int, power_of_two: bool):
    """Device functions ``(block_error, bounds)``, steps of :func:`search_function` (same
    arguments), exposed for the tests.

    ``block_error(row, byte, d, terms, limits)``: :func:`..optimal.block_error` at the
    float32 divisor ``d`` of byte ``byte``. Per element the E2M1 magnitude (the value above
    the last of the ascending thresholds the quotient exceeds, the threshold count's
    value), ``|x| - float32(q d)`` and its float32 square, summed by
    :func:`lane_sum_function`. The magnitude's code is counted three ways, each giving the
    number of the tie rule's :data:`..elements.THRESHOLDS` below ``float32(|x| / d)``, as
    :func:`..optimal.block_error` counts it:

    * ``power_of_two``: ``|x| * 2^(127 - b)`` against the tie rule's thresholds (MXFP4: see
      :func:`search_function`), some by :func:`above` (:data:`SEARCH_SHAPE`);
    * where row ``byte`` of the float32 table ``limits`` says so (its entry 7 nonzero: a
      finite ``d >= 0``), ``|x|`` itself against the row's decision thresholds
      (:func:`..cpu.simd.nvfp4_search.decision_threshold`: ``float32(|x| / d) > t`` exactly
      when ``|x| > T``; the table of :func:`.quantize.threshold_table`), no division;
    * otherwise ``float32(|x| / d)`` against the tie rule's thresholds.

    ``bounds(row, e0, terms, ys)``: (keeps start, s_min, s_max),
    :func:`..optimal.search_bounds` (spec steps 2 and 3). The magnitudes are sorted
    (:func:`sort_function`) and the float64 prefix sums of their float32 squares taken in
    ascending order, each rounded to float32 and compared with E0, as the spec does. Adding
    a float32 square >= 0 never lowers a float64 sum and rounding is monotone, so the
    prefixes that fit are the first k*: k* counts them, and y_(k*) is the smallest
    magnitude whose prefix does not fit (the magnitudes ascend), the one
    :func:`..optimal.search_bounds` reads. s_max = float32(4 y_(k*)), exact or Inf, is the
    float32 of the float64 ``y / 0.25``.
    """
    t0, t1, t2, t3, t4, t5, t6 = (np.float32(t) for t in THRESHOLDS[tie])
    m1, m2, m3, m4, m5, m6, m7 = (np.float32(m) for m in E2M1_MAGNITUDES[1:])
    zero, one, four = np.float32(0.0), np.float32(1.0), np.float32(4.0)
    infinity = np.float32(np.inf)
    lane_sum = lane_sum_function(n, lanes)
    sort = sort_function(n)

    saturated = SEARCH_SHAPE["saturated"]
    c0, c1, c2, c3, c4, c5, c6 = (np.float32(-t * 2.0**26) for t in THRESHOLDS[tie])  # exact
    u1, u2, u3, u4, u5, u6, u7 = (np.float32(E2M1_MAGNITUDES[k + 1] - E2M1_MAGNITUDES[k])
                                  for k in range(7))

    @_device
    def power_error(row, d, r, terms):
        """The float32 SSE with codes counted from ``|x| * r`` against the tie rule's
        thresholds, the lowest ``saturated`` of them as :func:`above`'s 0 or 1 times the
        step in magnitude at that threshold (sums of multiples of 0.5 up to 6, exact in any
        order), the others as selections of the magnitude above them: the thresholds
        ascend, so those exceeded are the lowest ones, and either way the value is the
        magnitude of the threshold count."""
        for i in range(n):
            a = abs(row[i])
            y = a * r
            value = zero
            value = value + u1 * above(y, c0) if saturated > 0 else (m1 if y > t0 else value)
            value = value + u2 * above(y, c1) if saturated > 1 else (m2 if y > t1 else value)
            value = value + u3 * above(y, c2) if saturated > 2 else (m3 if y > t2 else value)
            value = value + u4 * above(y, c3) if saturated > 3 else (m4 if y > t3 else value)
            value = value + u5 * above(y, c4) if saturated > 4 else (m5 if y > t4 else value)
            value = value + u6 * above(y, c5) if saturated > 5 else (m6 if y > t5 else value)
            value = value + u7 * above(y, c6) if saturated > 6 else (m7 if y > t6 else value)
            error = a - mul(value, d)
            terms[i] = mul(error, error)
        return lane_sum(terms)

    @_device
    def counted_magnitude(y, s0, s1, s2, s3, s4, s5, s6):
        """The E2M1 magnitude of the count of the ascending ``s0..s6`` below ``y``."""
        value = zero
        value = m1 if y > s0 else value
        value = m2 if y > s1 else value
        value = m3 if y > s2 else value
        value = m4 if y > s3 else value
        value = m5 if y > s4 else value
        value = m6 if y > s5 else value
        return m7 if y > s6 else value

    @_device
    def scaled_error(row, d, r, s0, s1, s2, s3, s4, s5, s6, terms):
        """The float32 SSE with codes counted from ``|x| * r`` against ``s0..s6``."""
        for i in range(n):
            a = abs(row[i])
            error = a - mul(counted_magnitude(a * r, s0, s1, s2, s3, s4, s5, s6), d)
            terms[i] = mul(error, error)
        return lane_sum(terms)

    @_device
    def divided_error(row, d, terms):
        """The float32 SSE with codes counted from ``float32(|x| / d)``."""
        for i in range(n):
            a = abs(row[i])
            error = a - mul(counted_magnitude(a / d, t0, t1, t2, t3, t4, t5, t6), d)
            terms[i] = mul(error, error)
        return lane_sum(terms)

    @_device
    def block_error(row, byte, d, terms, limits):
        """:func:`..optimal.block_error` at divisor ``d`` of byte ``byte`` (see above)."""
        if power_of_two:
            return power_error(row, d, e8m0_reciprocal32(byte), terms)
        k = 8 * byte
        if limits[k + 7] != zero:
            return scaled_error(row, d, one, limits[k], limits[k + 1], limits[k + 2],
                                limits[k + 3], limits[k + 4], limits[k + 5], limits[k + 6],
                                terms)
        return divided_error(row, d, terms)

    @_device
    def bounds(row, e0, terms, ys):
        """(keeps start, s_min, s_max) of the block (see above)."""
        amax = zero
        for i in range(n):
            a = abs(row[i])
            terms[i] = mul(a, a)
            ys[i] = a
            amax = max(amax, a)
        if lane_sum(terms) <= e0:
            return True, 0.0, 0.0
        sort(ys)
        running = 0.0
        k_star = 0
        following = infinity
        for i in range(n):
            running += float64(mul(ys[i], ys[i]))
            fits = float32(running) <= e0
            k_star += fits
            following = following if fits else min(following, ys[i])
        if k_star >= n:
            return True, 0.0, 0.0
        return False, lower_bound(float64(amax), float64(e0)), float64(following * four)

    return block_error, bounds


def search_function(n: int, lanes: int, tie: int, power_of_two: bool):
    """A device function ``search(row, start, table, limits, first, last, terms, ys)``: the
    byte :func:`..optimal.search` picks for the finite float32 block ``row[:n]`` (a local
    array) from start byte ``start`` over candidate bytes ``first..last`` of the ascending
    float64 divisor table ``table`` (:func:`fp4ref.spec.optimal.search`), element quotients
    ``float32(|x| / d)`` (the searches' recipes divide: ``fp4ref.quantize`` refuses the
    others); ``limits`` is the float32 decision-threshold table of the divisors (NVFP4;
    unread with ``power_of_two``), ``terms`` and ``ys`` float32 local arrays of ``n``.

    ``power_of_two``: MXFP4, ``d = table[b] = 2^(b - 127)`` with b in 0..254. There ``1/d =
    2^(127 - b)`` is a float32 number too (:func:`..quantize_block.e8m0_reciprocal32`), so
    ``|x| * (1/d)`` and ``|x| / d`` are the float32 roundings of one real number, equal, and
    the multiply is the cheaper.
    """
    block_error, bounds = sse_functions(n, lanes, tie, power_of_two)
    zero = np.float32(0.0)
    lane_sum = lane_sum_function(n, lanes)

    @_device
    def clip_error(row, d, terms):
        """:func:`..optimal.clip_error`: float32 ``sum(max(|x| - float32(6 d), 0)^2)``."""
        six_d = np.float32(6.0) * d
        for i in range(n):
            h = max(abs(row[i]) - six_d, zero)
            terms[i] = mul(h, h)
        return lane_sum(terms)

    @_device
    def search(row, start, table, limits, first, last, terms, ys):
        """The scale byte of :func:`..optimal.search` for the block ``row``.

        Candidates are scanned as there: from the first byte whose divisor is >= s_min
        (:func:`..optimal.first_at_least`), stopping at the first divisor above s_max, each
        taken on a strict improvement of the float32 SSE. Two evaluations are left out:

        * the start byte's own SSE: it is E0's computation again, never below the best
          error (E0 or less);
        * the clipping test, for a divisor ``d >= 0`` (every divisor of fp4ref's tables).
          Term by term the clip error is at most the SSE at the same ``d``: an element with
          ``|x| > float32(6 d)`` has ``|x| / d > 6 (1 - 2^-24)`` (``float32(6 d)`` is exact
          or within a relative 2^-24 of ``6 d``; ``d = 0``: the quotient is Inf), so its
          quotient rounds above every threshold (at most 5), its magnitude is 6 and its SSE
          term is ``float32(|x| - float32(6 d))`` squared, the clip term's very operations;
          any other element's clip term is 0. An ordered float32 sum of terms >= 0 is
          monotone in each term, so a candidate whose clip error is not below the best
          error has an SSE not below it either: skipping the test changes nothing. (A
          ``d = Inf`` has SSE NaN, never taken, and clip error 0; a NaN ``d`` ends the
          scan first.)
        """
        e0 = block_error(row, start, float32(table[start]), terms, limits)
        keep, s_min, s_max = bounds(row, e0, terms, ys)
        if keep:
            return start
        best = start
        best_error = e0
        for byte in range(first_at_least(table, first, last, s_min), last + 1):
            d = table[byte]
            if not d <= s_max:
                break
            if byte == start:
                continue
            if d < 0.0 and not clip_error(row, float32(d), terms) < best_error:
                continue
            error = block_error(row, byte, float32(d), terms, limits)
            if error < best_error:
                best = byte
                best_error = error
        return best

    return search
