"""The optimal search (:mod:`fp4ref.spec.optimal`) over one MXFP4 block, as LLVM vector code.

:func:`search_mx` picks the byte of :func:`..scale_rules.search` for a finite 32-element
block summed in 16 lanes (torch's AVX-512 order, the qwantize profile), candidates E8M0
bytes ``first..254``, elements ``float32(|x| / d)``. It is the same decision made from the
same float32 numbers, computed in fewer and wider steps; each step below says why its
numbers are bit-identical to the scalar ones.

Block errors (:func:`block_sse`, :func:`block_energy`). For an E8M0 byte b in 0..254 both
d = 2^(b - 127) and 1/d are float32 numbers, so ``|x| * (1/d)`` and ``|x| / d`` are the
IEEE float32 roundings of one real number: equal. The E2M1 value is picked from the sorted
thresholds :data:`..scale_rules.THRESHOLDS` (the value above the last one ``y`` exceeds,
the same code as counting them), then ``float32(q d)``, ``|x| -`` that and its square, one
float32 operation each as in :func:`..scale_rules.block_error`. The 32 terms are summed as
:func:`..scale_rules.lane_sum` does for n = 2 x 16 lanes: lane l adds terms l and l + 16
(a vector add), then the 16 lane sums are added in lane order from 0, one float32 addition
after the other (never a tree: the order is part of the result).

Upper bound without sorting (:func:`square_sum_below`). The scalar search sorts the
magnitudes y to find k*, the number of prefixes whose float64 sum of float32 squares,
rounded to float32, is <= E0 (prefix sums only grow, so they are the first k*), and keeps
candidates d <= s_max = float32(y_(k*) / 0.25) = 4 y_(k*) (exact, or Inf beyond float32).
So d is kept iff y_(k*) >= d / 4, iff at most k* magnitudes are below d / 4, iff the
prefix of the c = #{|x| < d / 4} smallest magnitudes has a float32 sum <= E0 (c = 0: the
empty sum). That prefix is the set {|x| < d / 4}; its float64 sum in ascending order equals
its sum in any order when every float64 addition is exact, which
:func:`squares_sum_exactly` checks from the exponents of the squares that can be in a
prefix (those <= E0; a prefix holding a larger one exceeds E0 whatever the rounding, since
rounding is monotone). Blocks that fail it (a tiny element beside large ones: about one
N(0, 1) block in 500) take the scalar search. The same sum over the whole block decides
k* = n (keep the start).

Clip test. The scalar scan skips a candidate whose clip error is not below the best error.
Term by term the clip error is at most the SSE: an element above float32(6 d) codes to 6
(|x| / d >= 6 > the last threshold) and has the same term, any other has clip term 0; and
the ordered float32 sum is monotone in each term. So a candidate that fails the clip test
also fails the strict-improvement test, and the clip error need not be computed.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic

from ..quantize_block import e8m0_reciprocal32
from ..scale_rules import first_at_least, lower_bound, search
from .mx_block import _array_vector, _contiguous, _splat

#: Lanes of torch's float32 sum that :func:`search_mx` reproduces (AVX-512).
LANES = 16

_BLOCK = 2 * LANES  # elements of an MXFP4 block (OCP MX v1.0 section 5)
_I32, _F32, _F64 = ir.IntType(32), ir.FloatType(), ir.DoubleType()
_E2M1 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)  # OCP MX v1.0 section 5.3.3

#: Largest exponent span (biased exponent fields) of the squares in a prefix for which a
#: float64 sum of up to 32 of them is exact: each is a multiple of u = 2^(max(E_min, 1) -
#: 150) and below 2^(E_max - 126), their sum below 2^(E_max - 121) < 2^53 u.
_EXACT_SPAN = 24


def _constant(element: ir.Type, value, lanes: int = _BLOCK) -> ir.Constant:
    return ir.Constant(ir.VectorType(element, lanes), [value] * lanes)


def _magnitudes(context, builder, array_type, array, index) -> ir.Value:
    """|x| of the 32 float32 values at ``bits[index:]`` (sign bits cleared)."""
    words = ir.VectorType(_I32, _BLOCK)
    x = builder.load(_array_vector(context, builder, array_type, array, index, words), align=4)
    return builder.bitcast(builder.and_(x, _constant(_I32, 0x7FFFFFFF)),
                           ir.VectorType(_F32, _BLOCK))


def _lane_sum(builder: ir.IRBuilder, terms: ir.Value) -> ir.Value:
    """torch's float32 sum of 32 terms in 16 lanes: ``terms[l] + terms[l + 16]`` per lane,
    then the lanes in order from 0, one float32 addition at a time."""
    halves = [builder.shuffle_vector(terms, terms, ir.Constant(ir.VectorType(_I32, LANES),
                                                               list(range(k, k + LANES))))
              for k in (0, LANES)]
    lanes = builder.fadd(*halves)
    total = ir.Constant(_F32, 0.0)
    for lane in range(LANES):
        total = builder.fadd(total, builder.extract_element(lanes, ir.Constant(_I32, lane)))
    return total


@intrinsic
def block_sse(typingctx, bits, index, d, r, thresholds):
    """float32 SSE of the block at ``bits[index:index + 32]`` (float32 bits) at divisor
    ``d`` = 2^(b - 127) with ``r`` = 1/d (float32): :func:`..scale_rules.block_error` for
    n = 32, 16 lanes, ``thresholds`` a row of :data:`..scale_rules.THRESHOLDS`."""
    if not (_contiguous(bits, types.uint32) and _contiguous(thresholds, types.float32)):
        return None
    sig = types.float32(bits, types.intp, types.float32, types.float32, thresholds)

    def codegen(context, builder, signature, args):
        bits_arg, index_arg, d_arg, r_arg, thresholds_arg = args
        a = _magnitudes(context, builder, signature.args[0], bits_arg, index_arg)
        y = builder.fmul(a, _splat(builder, r_arg, _BLOCK))
        table = context.make_array(signature.args[4])(context, builder, thresholds_arg).data
        value = _constant(_F32, 0.0)
        for k in range(7):  # thresholds ascend: the value above the last one y exceeds
            threshold = builder.load(builder.gep(table, [ir.Constant(_I32, k)]))
            above = builder.fcmp_ordered(">", y, _splat(builder, threshold, _BLOCK))
            value = builder.select(above, _constant(_F32, _E2M1[k + 1]), value)
        error = builder.fsub(a, builder.fmul(value, _splat(builder, d_arg, _BLOCK)))
        return _lane_sum(builder, builder.fmul(error, error))

    return sig, codegen


@intrinsic
def block_energy(typingctx, bits, index):
    """float32 ``sum(x^2)`` of the block at ``bits[index:index + 32]`` in torch's order."""
    if not _contiguous(bits, types.uint32):
        return None

    def codegen(context, builder, signature, args):
        a = _magnitudes(context, builder, signature.args[0], *args)
        return _lane_sum(builder, builder.fmul(a, a))

    return types.float32(bits, types.intp), codegen


@intrinsic
def squares_sum_exactly(typingctx, bits, index, e0):
    """Whether float64 sums of the block's float32 squares that are <= ``e0`` are exact
    in any order: their nonzero ones' exponent fields E satisfy E_max - max(E_min, 1) <=
    :data:`_EXACT_SPAN`."""
    if not _contiguous(bits, types.uint32):
        return None

    def codegen(context, builder, signature, args):
        bits_arg, index_arg, e0_arg = args
        a = _magnitudes(context, builder, signature.args[0], bits_arg, index_arg)
        square = builder.fmul(a, a)
        kept = builder.fcmp_ordered("<=", square, _splat(builder, e0_arg, _BLOCK))
        words = ir.VectorType(_I32, _BLOCK)
        exponent = builder.lshr(builder.bitcast(square, words), _constant(_I32, 23))
        nonzero = builder.and_(kept, builder.icmp_unsigned("!=", exponent, _constant(_I32, 0)))
        fn = ir.FunctionType(_I32, [words])
        high = builder.call(cgutils.get_or_insert_function(
            builder.module, fn, "llvm.vector.reduce.umax.v32i32"),
            [builder.select(kept, exponent, _constant(_I32, 0))])
        low = builder.call(cgutils.get_or_insert_function(
            builder.module, fn, "llvm.vector.reduce.umin.v32i32"),
            [builder.select(nonzero, exponent, _constant(_I32, 255))])
        one = ir.Constant(_I32, 1)
        low = builder.select(builder.icmp_unsigned(">", low, one), low, one)
        span = builder.sub(high, low)
        return builder.icmp_signed("<=", span, ir.Constant(_I32, _EXACT_SPAN))

    return types.boolean(bits, types.intp, types.float32), codegen


@intrinsic
def square_sum_below(typingctx, bits, index, bound):
    """float64 sum (halving tree) of the float32 squares of the block's elements with
    |x| < ``bound``: the ascending-order prefix sum when :func:`squares_sum_exactly`."""
    if not _contiguous(bits, types.uint32):
        return None

    def codegen(context, builder, signature, args):
        bits_arg, index_arg, bound_arg = args
        a = _magnitudes(context, builder, signature.args[0], bits_arg, index_arg)
        below = builder.fcmp_ordered("<", a, _splat(builder, bound_arg, _BLOCK))
        square = builder.fpext(builder.fmul(a, a), ir.VectorType(_F64, _BLOCK))
        total = builder.select(below, square, _constant(_F64, 0.0))
        width = _BLOCK
        while width > 1:
            width //= 2
            halves = [builder.shuffle_vector(total, total, ir.Constant(
                ir.VectorType(_I32, width), list(range(k, k + width)))) for k in (0, width)]
            total = builder.fadd(*halves)
        return builder.extract_element(total, ir.Constant(_I32, 0))

    return types.float64(bits, types.intp, types.float32), codegen


@njit(cache=True, error_model="numpy")
def search_mx(bits, index, row, amax, start, first, thresholds, tie, divisors, terms, ys):
    """The byte of :func:`..scale_rules.search` (16 lanes, divisors ``divisors[b]`` =
    2^(b - 127)) for the finite float32 block ``row`` = ``bits[index:index + 32]`` with
    largest magnitude ``amax`` and start byte ``start``; ``terms``, ``ys`` scratch for
    the scalar search, which takes a start of 255 (NaN divisor) and the blocks whose
    prefix sums :func:`squares_sum_exactly` cannot vouch for."""
    if start == 255:
        return search(row, start, divisors[start], divisors, first, 254, False, tie, LANES,
                      terms, ys)
    e0 = block_sse(bits, index, np.float32(divisors[start]), e8m0_reciprocal32(start),
                   thresholds)
    if block_energy(bits, index) <= e0:  # a noise block (spec step 2)
        return start
    if not squares_sum_exactly(bits, index, e0):
        return search(row, start, divisors[start], divisors, first, 254, False, tie, LANES,
                      terms, ys)
    if np.float32(square_sum_below(bits, index, np.float32(math.inf))) <= e0:  # k* = n
        return start
    best = start
    best_error = e0
    for byte in range(first_at_least(divisors, first, 254, lower_bound(amax, e0)), 255):
        quarter = np.float32(divisors[byte] / 4.0)  # exact: 2^-129 and up
        if not np.float32(square_sum_below(bits, index, quarter)) <= e0:  # d > s_max
            break
        error = block_sse(bits, index, np.float32(divisors[byte]), e8m0_reciprocal32(byte),
                          thresholds)
        if error < best_error:
            best = byte
            best_error = error
    return best
