"""The optimal search (:mod:`fp4ref.spec.optimal`) over one MXFP4 block, as LLVM vector code.

:func:`search_mx` picks the byte of :func:`...optimal.search` for a finite 32-element
block summed in 16 lanes (torch's AVX-512 order, every profile's), candidates E8M0 bytes
``first..254``, elements ``float32(|x| / d)``, no Hessian. It makes the same decisions from
the same float32 numbers in fewer and wider steps; each step below says why its numbers are
bit-identical to the scalar ones, and the tests compare both on adversarial blocks.

Block errors (:func:`window_errors`, :func:`block_sse`). For an E8M0 byte b in 0..254 both
d = 2^(b - 127) and 1/d are float32 numbers, so ``|x| * (1/d)`` and ``|x| / d`` are the
IEEE float32 roundings of one real number: equal. The E2M1 value is picked from the sorted
thresholds :data:`...elements.THRESHOLDS` (the value above the last one ``y`` exceeds,
the same code as counting them), then ``float32(q d)``, ``|x| -`` that and its square, one
float32 operation each as in :func:`...optimal.block_error`. The 32 terms are summed as
:func:`...optimal.lane_sum` does for n = 2 x 16 lanes: lane l adds terms l and l + 16
(a vector add), then the 16 lane sums are added in lane order from 0, one float32 addition
after the other (never a tree: the order is part of the result); four such sums (the
energy and three SSEs) run side by side in the lanes of one 4-wide vector.

Upper bound without sorting (:func:`window_sums`, :func:`fits_below`). The scalar search
sorts the magnitudes y to find k*, the number of prefixes whose float64 sum of float32
squares, rounded to float32, is <= E0 (prefix sums only grow, so they are the first k*),
and keeps candidates d <= s_max = float32(y_(k*) / 0.25) = 4 y_(k*) (exact, or Inf beyond
float32). So d is kept iff y_(k*) >= d / 4, iff at most k* magnitudes are below d / 4,
iff the prefix of the c = #{|x| < d / 4} smallest magnitudes has a float32 sum <= E0
(c = 0: the empty sum). That prefix is the set {|x| < d / 4}; its float64 sum in ascending
order equals its sum in any order when every float64 addition is exact, which
:func:`_exact_span` checks from the exponents of the squares that can be in the prefix (a
prefix holding a square > E0 exceeds E0 whatever the rounding, since rounding is
monotone). Blocks that fail it (a tiny element beside large ones: about one N(0, 1) block
in 300) take the scalar search. k* = n needs every square <= E0, the largest first.

Clip test. The scalar scan skips a candidate whose clip error is not below the best error.
Term by term the clip error is at most the SSE: an element above float32(6 d) codes to 6
(|x| / d >= 6 > the last threshold) and has the same term, any other has clip term 0; and
the ordered float32 sum is monotone in each term. So a candidate that fails the clip test
also fails the strict-improvement test, and the clip error need not be computed. Nor is
the start's SSE computed twice: as a candidate it equals E0, never a strict improvement.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core.extending import intrinsic

from ...elements import E2M1_MAGNITUDES
from ...optimal import lower_bound, search
from ...options import RULE_QWANTIZE
from ...scale_rules import mx_scale
from .ir import F32, F64, I32, array_vector, contiguous, reduce, splat

#: Lanes of torch's float32 sum that :func:`search_mx` reproduces (AVX-512).
LANES = 16

_BLOCK = 2 * LANES  # elements of an MXFP4 block (OCP MX v1.0 section 5)

#: Largest exponent span (biased exponent fields) of the squares in a prefix for which a
#: float64 sum of up to 32 of them is exact: each is a multiple of u = 2^(max(E_min, 1) -
#: 150) and below 2^(E_max - 126), their sum below 2^(E_max - 121) < 2^53 u.
_EXACT_SPAN = 24


def _constant(element: ir.Type, value, lanes: int = _BLOCK) -> ir.Constant:
    return ir.Constant(ir.VectorType(element, lanes), [value] * lanes)


def _magnitudes(context, builder, array_type, array, index) -> ir.Value:
    """|x| of the 32 float32 values at ``bits[index:]`` (sign bits cleared)."""
    words = ir.VectorType(I32, _BLOCK)
    x = builder.load(array_vector(context, builder, array_type, array, index, words), align=4)
    return builder.bitcast(builder.and_(x, _constant(I32, 0x7FFFFFFF)),
                           ir.VectorType(F32, _BLOCK))


def _float(builder: ir.IRBuilder, bits: ir.Value) -> ir.Value:
    return builder.bitcast(bits, F32)


def _power_of_two(builder: ir.IRBuilder, field: ir.Value) -> ir.Value:
    """float32 2^(field - 127) for an i32 ``field`` in 0..254 (field 0: the subnormal
    2^-127)."""
    normal = builder.shl(field, ir.Constant(I32, 23))
    return _float(builder, builder.select(builder.icmp_signed(">", field, ir.Constant(I32, 0)),
                                          normal, ir.Constant(I32, 0x00400000)))


def _scale_pair(builder: ir.IRBuilder, byte: ir.Value) -> tuple[ir.Value, ir.Value]:
    """float32 (d, 1/d) of E8M0 byte ``byte`` (an i32 in 0..254): 2^(byte - 127) and
    2^(127 - byte), both float32 numbers."""
    return (_power_of_two(builder, byte),
            _power_of_two(builder, builder.sub(ir.Constant(I32, 254), byte)))


def _sse_lanes(builder, a, d, r, table) -> ir.Value:
    """The 16 lane sums of the float32 SSE terms at divisor ``d`` (``r`` = 1/d)."""
    y = builder.fmul(a, splat(builder, r, _BLOCK))
    value = _constant(F32, 0.0)
    for k in range(7):  # thresholds ascend: the value above the last one y exceeds
        threshold = builder.load(builder.gep(table, [ir.Constant(I32, k)]))
        above = builder.fcmp_ordered(">", y, splat(builder, threshold, _BLOCK))
        value = builder.select(above, _constant(F32, E2M1_MAGNITUDES[k + 1]), value)
    error = builder.fsub(a, builder.fmul(value, splat(builder, d, _BLOCK)))
    return _halves(builder, builder.fmul(error, error))


def _halves(builder, terms) -> ir.Value:
    """``terms[l] + terms[l + 16]``: what lane l of torch's sum holds after 32 terms."""
    low, high = (builder.shuffle_vector(terms, terms, ir.Constant(
        ir.VectorType(I32, LANES), list(range(k, k + LANES)))) for k in (0, LANES))
    return builder.fadd(low, high)


def _shuffle(builder, first, second, mask) -> ir.Value:
    return builder.shuffle_vector(first, second, ir.Constant(ir.VectorType(I32, len(mask)),
                                                             mask))


def _ordered_sums(builder, vectors) -> list[ir.Value]:
    """Each of up to four 16-lane float32 vectors' lanes added in lane order from 0, one
    float32 addition at a time, the four side by side: lane l of each is gathered into one
    4-wide vector (a 4 x 4 transpose within each group of four lanes), and 16 additions of
    4-wide vectors make the four sums."""
    zero = _constant(F32, 0.0, LANES)
    a, b, c, d = [*vectors, *[zero] * (4 - len(vectors))]
    groups = range(0, LANES, 4)
    pairs = [_shuffle(builder, first, second, [g + i + k for g in groups for i in offsets
                                               for k in (0, LANES)])
             for first, second in ((a, b), (c, d)) for offsets in ((0, 1), (2, 3))]
    ab_low, ab_high, cd_low, cd_high = pairs  # [a_l, b_l, a_l+1, b_l+1] per group
    columns = [_shuffle(builder, ab, cd, [g + i + k for g in groups for k in (0, LANES)
                                          for i in offsets])
               for ab, cd in ((ab_low, cd_low), (ab_high, cd_high))
               for offsets in ((0, 1), (2, 3))]  # columns[j]: [a_l, b_l, c_l, d_l], l = g + j
    total = _constant(F32, 0.0, 4)
    for lane in range(LANES):
        group, j = lane - lane % 4, lane % 4
        total = builder.fadd(total, _shuffle(builder, columns[j], columns[j],
                                             list(range(group, group + 4))))
    return [builder.extract_element(total, ir.Constant(I32, i)) for i in range(len(vectors))]


@intrinsic
def window_errors(typingctx, bits, index, start, thresholds):
    """(energy, E(start), E(start + 1), E(start + 2)) of the block at ``bits[index:index +
    32]`` (float32 bits), ``start`` in 1..252: the float32 ``sum(x^2)`` and SSEs at E8M0
    bytes ``start``.. (:func:`...optimal.block_error`, n = 32, 16 lanes,
    ``thresholds`` a row of :data:`...elements.THRESHOLDS`), summed side by side."""
    if not (contiguous(bits, dtypes=(types.uint32,))
            and contiguous(thresholds, dtypes=(types.float32,))):
        return None
    sig = types.UniTuple(types.float32, 4)(bits, types.intp, types.intp, thresholds)

    def codegen(context, builder, signature, args):
        bits_arg, index_arg, start_arg, thresholds_arg = args
        a = _magnitudes(context, builder, signature.args[0], bits_arg, index_arg)
        table = context.make_array(signature.args[3])(context, builder, thresholds_arg).data
        start = builder.trunc(start_arg, I32)
        lanes = [_halves(builder, builder.fmul(a, a))]
        for step in range(3):
            byte = builder.add(start, ir.Constant(I32, step))
            lanes.append(_sse_lanes(builder, a, *_scale_pair(builder, byte), table))
        return context.make_tuple(builder, signature.return_type,
                                  _ordered_sums(builder, lanes))

    return sig, codegen


@intrinsic
def block_sse(typingctx, bits, index, byte, thresholds):
    """float32 SSE of the block at ``bits[index:index + 32]`` at E8M0 byte ``byte`` (0..254)
    (:func:`...optimal.block_error`, n = 32, 16 lanes)."""
    if not (contiguous(bits, dtypes=(types.uint32,))
            and contiguous(thresholds, dtypes=(types.float32,))):
        return None
    sig = types.float32(bits, types.intp, types.intp, thresholds)

    def codegen(context, builder, signature, args):
        bits_arg, index_arg, byte_arg, thresholds_arg = args
        a = _magnitudes(context, builder, signature.args[0], bits_arg, index_arg)
        table = context.make_array(signature.args[3])(context, builder, thresholds_arg).data
        lanes = _sse_lanes(builder, a, *_scale_pair(builder, builder.trunc(byte_arg, I32)),
                           table)
        return _ordered_sums(builder, [lanes])[0]

    return sig, codegen


def _exact_span(builder, square, included) -> ir.Value:
    """Whether the nonzero float32 squares where ``included`` (an i1 vector) have exponent
    fields E with E_max - max(E_min, 1) <= :data:`_EXACT_SPAN` (an i1)."""
    words = ir.VectorType(I32, _BLOCK)
    square_bits = builder.bitcast(square, words)
    exponent = builder.lshr(square_bits, _constant(I32, 23))  # 0 for subnormals: ulp as 1
    nonzero = builder.and_(included, builder.icmp_unsigned("!=", square_bits,
                                                           _constant(I32, 0)))
    high = reduce(builder, "umax", builder.select(nonzero, exponent, _constant(I32, 0)))
    low = reduce(builder, "umin", builder.select(nonzero, exponent, _constant(I32, 255)))
    one = ir.Constant(I32, 1)
    low = builder.select(builder.icmp_unsigned(">", low, one), low, one)
    return builder.icmp_signed("<=", builder.sub(high, low), ir.Constant(I32, _EXACT_SPAN))


@intrinsic
def squares_sum_exactly(typingctx, bits, index, e0):
    """Whether float64 sums of the block's float32 squares that are <= ``e0`` are exact
    in any order (:func:`_exact_span`): then so is every prefix sum that can be <= E0."""
    if not contiguous(bits, dtypes=(types.uint32,)):
        return None

    def codegen(context, builder, signature, args):
        bits_arg, index_arg, e0_arg = args
        a = _magnitudes(context, builder, signature.args[0], bits_arg, index_arg)
        square = builder.fmul(a, a)
        kept = builder.fcmp_ordered("<=", square, splat(builder, e0_arg, _BLOCK))
        return _exact_span(builder, square, kept)

    return types.boolean(bits, types.intp, types.float32), codegen


def _exact_sum(builder, vector) -> ir.Value:
    """Sum of a float64 vector by halving (a tree: any order gives an exact sum)."""
    width = vector.type.count
    while width > 1:
        width //= 2
        low, high = (builder.shuffle_vector(vector, vector, ir.Constant(
            ir.VectorType(I32, width), list(range(k, k + width)))) for k in (0, width))
        vector = builder.fadd(low, high)
    return builder.extract_element(vector, ir.Constant(I32, 0))


def _sum_below(builder, a, bound) -> ir.Value:
    """float64 sum of the float32 squares of the elements with |x| < ``bound``."""
    below = builder.fcmp_ordered("<", a, splat(builder, bound, _BLOCK))
    square = builder.fpext(builder.fmul(a, a), ir.VectorType(F64, _BLOCK))
    return _exact_sum(builder, builder.select(below, square, _constant(F64, 0.0)))


@intrinsic
def window_sums(typingctx, bits, index, bound):
    """(exact, P(bound), P(2 bound), P(4 bound)): P(v) the float64 sum of the block's
    float32 squares with |x| < v (float32 ``bound``), the prefix sum of E8M0 byte b's test
    for ``bound`` = 2^(b - 129); ``exact`` when the nonzero squares below ``4 bound`` pass
    :func:`_exact_span`, so each P is the ascending-order sum. Independent of E0, so they
    are computed beside its sum."""
    if not contiguous(bits, dtypes=(types.uint32,)):
        return None
    sig = types.Tuple((types.boolean, types.float64, types.float64, types.float64))(
        bits, types.intp, types.float32)

    def codegen(context, builder, signature, args):
        bits_arg, index_arg, bound_arg = args
        a = _magnitudes(context, builder, signature.args[0], bits_arg, index_arg)
        bounds = [builder.fmul(bound_arg, ir.Constant(F32, 2.0**k)) for k in range(3)]  # exact
        below = builder.fcmp_ordered("<", a, splat(builder, bounds[2], _BLOCK))
        exact = _exact_span(builder, builder.fmul(a, a), below)
        return context.make_tuple(builder, signature.return_type,
                                  [exact, *(_sum_below(builder, a, v) for v in bounds)])

    return sig, codegen


@intrinsic
def fits_below(typingctx, bits, index, bound, e0):
    """Whether E8M0 byte b is at most s_max, for ``bound`` = 2^(b - 129) (float32): the
    float32 sum of the squares below ``bound`` is <= ``e0``; ``bound`` = Inf asks whether
    k* = n."""
    if not contiguous(bits, dtypes=(types.uint32,)):
        return None

    def codegen(context, builder, signature, args):
        bits_arg, index_arg, bound_arg, e0_arg = args
        a = _magnitudes(context, builder, signature.args[0], bits_arg, index_arg)
        return builder.fcmp_ordered("<=", builder.fptrunc(_sum_below(builder, a, bound_arg),
                                                          F32), e0_arg)

    return types.boolean(bits, types.intp, types.float32, types.float32), codegen


@njit(cache=True, error_model="numpy", inline="always")
def start_byte(top, rule):
    """:func:`...scale_rules.mx_scale` of the float32 amax with bits ``top``.

    qwantize's floor(log2f(amax) - 2 + 127) is the exponent field E minus 2 when 28 <= E
    (amax > 1e-30) and the mantissa field is below 0x7F0000 (amax / 2^(E - 127) < 2 -
    2^-7): log2 amax then lies in [E - 127, E - 127 + 0.9944], and the three float32
    roundings (each below 2^-16 for values under 256) cannot reach E - 126. The rule is
    monotone in amax, so checking both ends of that mantissa range at every exponent (as
    the tests do) proves it. Other rules and amaxes ask :func:`...scale_rules.mx_scale`."""
    exponent = top >> 23
    if rule == RULE_QWANTIZE and exponent >= 28 and (top & 0x7FFFFF) < 0x7F0000:
        return np.int64(exponent) - 2
    return mx_scale(float(np.uint32(top).view(np.float32)), rule)


@njit(cache=True, error_model="numpy", inline="always")
def first_byte(value, first):
    """The smallest E8M0 byte >= ``first`` whose value 2^(b - 127) is >= ``value`` (a
    float32 >= 0), 255 if none: from ``value``'s exponent field, one up unless a power of
    two; a subnormal value is at most 2^-127 (byte 0) or else below 2^-126 (byte 1)."""
    word = int(np.float32(value).view(np.uint32))
    exponent = word >> 23
    if exponent == 0:
        return max(int(word > 0x00400000), first)
    return max(exponent + ((word & 0x7FFFFF) != 0), first)


@njit(cache=True, error_model="numpy", inline="always")
def _quarter(divisors, byte):
    """float32 d / 4 of E8M0 byte ``byte``: 2^(byte - 129), exact (2^-129 is a float32)."""
    return np.float32(divisors[byte] / 4.0)


@njit(cache=True, error_model="numpy")
def _scan(bits, index, row, amax, start, low, e0, e1, e2, first, thresholds, tie, divisors,
          terms, ys):
    """Steps 2 (k* = n) and 4 of the search for any block, with E0 and the SSEs ``e1``,
    ``e2`` of bytes ``start + 1``, ``start + 2`` at hand, candidates from byte ``low``:
    each byte tested against s_max (:func:`fits_below`) as the scan reaches it."""
    if not squares_sum_exactly(bits, index, e0):
        return search(row, start, divisors[start], divisors, first, 254, False, tie, LANES,
                      terms, ys)
    if np.float32(amax * amax) <= e0 and fits_below(bits, index, np.float32(math.inf), e0):
        return start  # k* = n: every square fits (so the largest does)
    best = start
    best_error = e0
    for byte in range(low, 255):
        if not fits_below(bits, index, _quarter(divisors, byte), e0):  # d > s_max
            break
        if byte == start:  # its SSE is E0: never a strict improvement
            continue
        if byte == start + 1:
            error = e1
        elif byte == start + 2:
            error = e2
        else:
            error = block_sse(bits, index, byte, thresholds)
        if error < best_error:
            best = byte
            best_error = error
    return best


@njit(cache=True, error_model="numpy", inline="always")
def measure(bits, index, start, thresholds, divisors):
    """The numbers :func:`choose` decides from, for the block at ``bits[index:index + 32]``
    and start byte ``start``: (energy, E(start), E(start + 1), E(start + 2), exact,
    P(d_(start + 1) / 4), P(d_(start + 2) / 4), P(d_(start + 3) / 4)) of
    :func:`window_errors` and :func:`window_sums`. Starts outside 1..252 (which
    :func:`choose` leaves to the scalar search) are measured at the nearest of those."""
    start = min(max(start, 1), 252)
    return (*window_errors(bits, index, start, thresholds),
            *window_sums(bits, index, _quarter(divisors, start + 1)))


@njit(cache=True, error_model="numpy", inline="always")
def choose(bits, index, row, amax, start, first, thresholds, tie, divisors, terms, ys,
           measured):
    """The byte of :func:`...optimal.search` (16 lanes, divisors ``divisors[b]`` =
    2^(b - 127)) for the finite float32 block ``row`` = ``bits[index:index + 32]`` with
    largest magnitude ``amax``, start byte ``start`` and :func:`measure`'s numbers;
    ``terms``, ``ys`` scratch for the scalar search, which takes starts outside 1..252
    and the blocks whose prefix sums cannot be vouched for (:func:`window_sums`,
    :func:`squares_sum_exactly`).

    Most blocks' candidates in [s_min, s_max] are the start and the next one or two
    bytes. So the SSEs of ``start .. start + 2`` are summed side by side, the window's
    prefix sums beside them, and when no candidate lies outside ``start .. start + 2``
    (nor k* = n) the choice is made without branches; other blocks go to :func:`_scan`.
    """
    if not 1 <= start <= 252:
        return search(row, start, divisors[start], divisors, first, 254, False, tie, LANES,
                      terms, ys)
    energy, e0, e1, e2, exact, below1, below2, below3 = measured
    if energy <= e0:  # a noise block (spec step 2)
        return start
    if not exact:
        return search(row, start, divisors[start], divisors, first, 254, False, tie, LANES,
                      terms, ys)
    # how many of bytes start + 1 .. start + 3 are at most s_max (a prefix of them)
    fits = ((np.float32(below1) <= e0) + (np.float32(below2) <= e0)
            + (np.float32(below3) <= e0))
    low = first_byte(lower_bound(amax, e0), first)
    if low < start or fits == 3 or np.float32(amax * amax) <= e0:
        return _scan(bits, index, row, amax, start, low, e0, e1, e2, first, thresholds, tie,
                     divisors, terms, ys)
    # candidates: start + 1, start + 2 where in range; start itself is E0 (never taken)
    take = (low <= start + 1) & (fits >= 1) & (e1 < e0)
    best = start + 1 if take else start
    best_error = e1 if take else e0
    take = (low <= start + 2) & (fits >= 2) & (e2 < best_error)
    return start + 2 if take else best


@njit(cache=True, error_model="numpy")
def search_mx(bits, index, row, amax, start, first, thresholds, tie, divisors, terms, ys):
    """:func:`choose` from :func:`measure`: the search for one block."""
    return choose(bits, index, row, amax, start, first, thresholds, tie, divisors, terms, ys,
                  measure(bits, index, start, thresholds, divisors))
