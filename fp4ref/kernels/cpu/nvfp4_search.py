"""The NVFP4 optimal search (:mod:`fp4ref.spec.optimal`) without divisions, sixteen
candidate scales at a time in LLVM vector code (CPU only).

It picks the byte of :func:`..scale_rules.search` for a 16-element block whose float32 SSE
sums one term per lane (``n == lanes == 16``) at divisors ``y = float32(|x| / d)``
(``multiply`` false), with finite divisors ``d >= 0``. Three facts make it cheap.

Codes by decision thresholds (:func:`decision_threshold`). The E2M1 code of ``y`` is the
number of tie-rule thresholds ``t`` (a row of :data:`..scale_rules.THRESHOLDS`) with
``y > t``. Rounding to float32 is monotone, so ``float32(a / d) > t`` holds exactly when
the real ``a / d`` lies above the point ``m = t + ulp(t) / 2`` halfway to the next float32,
or on it when the tie there goes up (round-to-nearest-even picks ``next(t)`` when ``t``'s
last significand bit is 1). With ``d > 0`` that is ``a > m d`` (or ``a >= m d``), and
``m d`` (a 25-bit times a 24-bit significand) is exact in float64. For float32 ``a``,
``a > B`` holds exactly when ``a > RD(B)`` (``B`` rounded down to float32), and
``a >= B`` when ``a > prev(B)`` if ``B`` is a float32, else when ``a > RD(B)``. So each
divisor has seven float32 thresholds ``T_k(d)`` with ``code = #{k : a > T_k(d)}`` for every
float32 ``a >= 0``, Inf included. ``d = 0`` gives ``a / 0`` = Inf (code 7) for ``a > 0`` and
NaN (code 0) for ``a = 0``: thresholds 0.

Values by table. The dequantized magnitude ``float32(q d)`` of code ``q`` is a table entry
per divisor, and the rest of each term is ``float32(a - float32(q d))`` squared, as in
:func:`..scale_rules.block_error`.

No clip error. Where ``|x| > float32(6 d)``, ``float32(|x| / d) > 5`` and the code is 7, so
the clip term ``max(|x| - float32(6 d), 0)^2`` equals the SSE term; elsewhere it is 0.
Float32 addition is monotone, so a candidate's clip error never exceeds its SSE, and
qwantize's scan (skip unless clip < best, take if SSE < best) takes a candidate exactly
when its SSE is below the best so far.

Each SSE is added in lane order (element 0 first) in its own vector lane, so sixteen
candidates cost sixteen vector steps; the start scale's E0 comes from the same windows.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic

from ..scalar import float32_bits
from ..scale_rules import _E2M1, THRESHOLDS, f32

#: Candidates evaluated together (one vector of float32 SSEs).
WINDOW = 16

#: Columns of a decision table: byte ``b`` is column ``b + WINDOW``, so that windows may
#: start up to a window below byte 0 and end a window above byte 255.
WIDTH = 256 + 2 * WINDOW

#: Rows of a decision table: seven thresholds, then the eight values float32(q d).
_ROWS = 15

#: Bytes below the start scale in its first window (the search's lower bound lies at most
#: a few E4M3 steps below the start on typical data).
_BELOW_START = 4

_F32 = ir.FloatType()


def _splat(builder: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    """``value`` in every lane of a vector."""
    vector = ir.VectorType(value.type, lanes)
    first = builder.insert_element(ir.Constant(vector, None), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(first, ir.Constant(vector, None),
                                  ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))


@njit(cache=True, error_model="numpy")
def decision_threshold(t, d):
    """The float32 ``T`` with ``float32(a / d) > t`` exactly when ``a > T``, for every
    float32 ``a >= 0`` (``t`` a positive normal float32, ``d`` a finite float32 >= 0),
    returned as float64 (see the module docstring)."""
    if d == 0.0:
        return 0.0
    halfway = 0.5 * (t + float(np.nextafter(np.float32(t), np.float32(math.inf))))  # exact
    bound = halfway * d  # exact: 25 by 24 significant bits
    below = float(np.float32(bound))
    if below > bound:  # round down (never from Inf: the bound stays below 2^130)
        below = float(np.nextafter(np.float32(below), np.float32(0.0)))
    if float32_bits(t) & 1 and below == bound:  # the tie rounds up: a >= B is a > prev(B)
        below = float(np.nextafter(np.float32(below), np.float32(0.0)))
    return below


@njit(cache=True, error_model="numpy")
def decision_table(divisors, last, tie):
    """float32 ``[15, WIDTH]``: for byte ``b`` in ``0..last`` (column ``b + WINDOW``),
    the thresholds ``T_k(d)`` (rows 0..6) of ``tie`` and the values ``float32(q d)`` of the
    eight E2M1 magnitudes (rows 7..14), ``d = divisors[b]``; other columns hold Inf
    thresholds and zero values."""
    table = np.zeros((_ROWS, WIDTH), np.float32)
    table[:7, :] = np.inf
    for b in range(last + 1):
        d = divisors[b]
        for k in range(7):
            table[k, b + WINDOW] = decision_threshold(float(THRESHOLDS[tie, k]), d)
        for q in range(8):
            table[7 + q, b + WINDOW] = np.float32(_E2M1[q] * d)  # exact product, one rounding
    return table


@intrinsic
def window_errors(typingctx, magnitudes, table, column, sse):
    """Write the float32 SSE of the block with ``magnitudes`` (16 float32 |x|) at the
    sixteen divisors of ``table`` columns ``column..column + 15`` to ``sse[column:]``.

    Lane ``c`` holds candidate ``column + c``: for element i = 0..15 in turn its value
    ``float32(q d)`` is picked by the thresholds below ``|x_i|`` and
    ``(|x_i| - value)^2`` is added, each step one IEEE float32 operation (no fusion).
    """
    float_array = types.Array(types.float32, 1, "C")
    if not (magnitudes == float_array and table == types.Array(types.float32, 2, "C")
            and sse == float_array):
        return None
    sig = types.void(magnitudes, table, types.intp, sse)

    def codegen(context, builder, signature, args):
        magnitudes_arg, table_arg, column_arg, sse_arg = args
        vector = ir.VectorType(_F32, WINDOW)
        data = context.make_array(signature.args[1])(context, builder, table_arg).data

        def row(k):
            start = builder.add(column_arg, ir.Constant(column_arg.type, k * WIDTH))
            pointer = builder.bitcast(builder.gep(data, [start]), vector.as_pointer())
            return builder.load(pointer, align=4)

        thresholds = [row(k) for k in range(7)]
        values = [row(7 + q) for q in range(8)]
        elements = context.make_array(signature.args[0])(context, builder, magnitudes_arg).data
        total = ir.Constant(vector, [0.0] * WINDOW)
        for i in range(WINDOW):
            element = builder.gep(elements, [ir.Constant(ir.IntType(64), i)])
            a = _splat(builder, builder.load(element), WINDOW)
            value = values[0]
            for k in range(7):  # thresholds ascend: the last one below |x_i| picks the value
                value = builder.select(builder.fcmp_ordered(">", a, thresholds[k]),
                                       values[k + 1], value)
            error = builder.fsub(a, value)
            total = builder.fadd(total, builder.fmul(error, error))
        out = context.make_array(signature.args[3])(context, builder, sse_arg).data
        builder.store(total, builder.bitcast(builder.gep(out, [column_arg]), vector.as_pointer()),
                      align=4)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def sort_magnitudes(typingctx, values, ordered):
    """Write the magnitudes of the 16 float32 ``values`` (no NaN) to ``ordered`` in
    ascending order: a bitonic sorting network (Batcher) on their sign-cleared bits, whose
    integer order is the order of the magnitudes."""
    float_array = types.Array(types.float32, 1, "C")
    if not (values == float_array and ordered == float_array):
        return None

    def codegen(context, builder, signature, args):
        words = ir.VectorType(ir.IntType(32), WINDOW)
        source, target = (builder.bitcast(context.make_array(kind)(context, builder, arg).data,
                                          words.as_pointer())
                          for kind, arg in zip(signature.args, args, strict=True))
        v = builder.and_(builder.load(source, align=4),
                         ir.Constant(words, [0x7FFFFFFF] * WINDOW))
        size = 2
        while size <= WINDOW:  # merge sorted runs of size / 2 into runs of size
            stride = size // 2
            while stride:
                partner = builder.shuffle_vector(v, v, ir.Constant(
                    ir.VectorType(ir.IntType(32), WINDOW), [i ^ stride for i in range(WINDOW)]))
                low = builder.select(builder.icmp_unsigned("<", v, partner), v, partner)
                high = builder.select(builder.icmp_unsigned("<", v, partner), partner, v)
                # lane i keeps the smaller value when it is the first of its pair in an
                # ascending run, or the second in a descending one
                keeps_low = [((i & stride) == 0) == ((i & size) == 0) for i in range(WINDOW)]
                v = builder.select(ir.Constant(ir.VectorType(ir.IntType(1), WINDOW), keeps_low),
                                   low, high)
                stride //= 2
            size *= 2
        builder.store(v, target, align=4)
        return context.get_dummy_value()

    return types.void(values, ordered), codegen


@njit(cache=True, error_model="numpy")
def bounds16(row, energy, e0, ordered):
    """(keeps start, s_min, s_max) of :func:`..scale_rules.search_bounds` for the 16
    values ``row`` whose float32 lane-order sum of squares is ``energy`` (``ordered``:
    float32 scratch of 16).

    All magnitudes are sorted (:func:`sort_magnitudes`), not only those whose square is at
    most E0: the prefix sums stop at the first square above E0 either way (a float32 square
    above E0 keeps every longer prefix above it), and the next magnitude is then the
    smallest of the others. The prefix sums ascend, so k* is the number of them at most E0.
    """
    if energy <= e0:
        return True, 0.0, 0.0
    sort_magnitudes(row, ordered)
    running = 0.0
    k_star = 0
    for k in range(WINDOW):  # float64 running sum, float32 prefixes (torch cumsum)
        running += float(ordered[k] * ordered[k])
        k_star += float(np.float32(running)) <= e0
    if k_star >= WINDOW:
        return True, 0.0, 0.0
    amax = float(ordered[WINDOW - 1])
    s_min = max(f32(f32(amax - f32(math.sqrt(e0))) / 6.0), 0.0)
    return False, s_min, f32(float(ordered[k_star]) / 0.25)


@intrinsic
def first_minimum(typingctx, sse, column, low, high):
    """(bits of the smallest, its first column) of ``sse[c]`` (float32 >= 0, no NaN) over
    the columns c in ``column..column + 31`` with ``low <= c < high``; bits 0x7FFFFFFF
    (above every non-NaN) when there are none. Bits order as the values do."""
    if sse != types.Array(types.float32, 1, "C"):
        return None
    lanes = 2 * WINDOW

    def codegen(context, builder, signature, args):
        sse_arg, column_arg, low_arg, high_arg = args
        words = ir.VectorType(ir.IntType(32), lanes)
        data = context.make_array(signature.args[0])(context, builder, sse_arg).data
        pointer = builder.bitcast(builder.gep(data, [column_arg]), words.as_pointer())
        bits = builder.load(pointer, align=4)
        offsets = ir.Constant(ir.VectorType(ir.IntType(64), lanes), list(range(lanes)))
        columns = builder.add(_splat(builder, column_arg, lanes), offsets)
        inside = builder.and_(builder.icmp_signed(">=", columns, _splat(builder, low_arg, lanes)),
                              builder.icmp_signed("<", columns, _splat(builder, high_arg, lanes)))
        bits = builder.select(inside, bits, ir.Constant(words, [0x7FFFFFFF] * lanes))
        umin = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(32), [words]),
            f"llvm.vector.reduce.umin.v{lanes}i32")
        smallest = builder.call(umin, [bits])
        hits = builder.bitcast(builder.icmp_unsigned("==", bits, _splat(builder, smallest, lanes)),
                               ir.IntType(lanes))
        cttz = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(lanes), [ir.IntType(lanes), ir.IntType(1)]),
            f"llvm.cttz.i{lanes}")
        first = builder.zext(builder.call(cttz, [hits, ir.Constant(ir.IntType(1), 1)]),
                             ir.IntType(64))
        return context.make_tuple(builder, signature.return_type,
                                  [builder.zext(smallest, ir.IntType(64)),
                                   builder.add(column_arg, first)])

    return types.UniTuple(types.int64, 2)(sse, types.intp, types.intp, types.intp), codegen


@njit(cache=True, error_model="numpy")
def count_below(divisors, first, last, value, inclusive):
    """The number of bytes in ``first..last`` whose divisor is below ``value`` (at most
    ``value`` if ``inclusive``): where the ascending divisors cross ``value``, without
    branches."""
    count = 0
    for b in range(first, last + 1):
        count += (divisors[b] <= value) if inclusive else (divisors[b] < value)
    return count


@njit(cache=True, error_model="numpy")
def scan(sse, low, high, best, best_error):
    """qwantize's scan of the columns ``low..high - 1`` of ``sse`` after ``best``:
    (column, error) of the first strict improvement on the running best."""
    for c in range(low, high):
        if sse[c] < best_error:
            best = c
            best_error = float(sse[c])
    return best, best_error


@njit(cache=True, error_model="numpy")
def search_nv(row, start, divisors, table, first, last, magnitudes, ordered, sse):
    """:func:`..scale_rules.search` (the same byte) for a 16-element block with one term a
    lane, divisors ``float32(|x| / d)``, ``table`` from :func:`decision_table` over bytes
    ``0..last`` (``start <= last``); ``magnitudes``, ``ordered`` float32 scratch of 16,
    ``sse`` float32 scratch of ``WIDTH``.

    Two windows from a few bytes below the start give E0 and, on typical data, every
    candidate inside the bounds (others get windows of their own); the candidates' SSEs
    are scanned in column order (sse column = byte + WINDOW).
    """
    energy = np.float32(0.0)
    for i in range(WINDOW):
        magnitudes[i] = abs(row[i])
        energy = energy + magnitudes[i] * magnitudes[i]  # torch's order: one term a lane
    base = min(max(start - _BELOW_START, 0), last + 1 - WINDOW) + WINDOW
    window_errors(magnitudes, table, base, sse)
    window_errors(magnitudes, table, base + WINDOW, sse)
    e0 = float(sse[start + WINDOW])
    keep, s_min, s_max = bounds16(row, energy, e0, ordered)
    if keep:
        return start
    low = first + count_below(divisors, first, last, s_min, False) + WINDOW
    high = first + count_below(divisors, first, last, s_max, True) + WINDOW
    column = base
    while column > low:  # candidates below the windows (rare)
        column -= WINDOW
        window_errors(magnitudes, table, column, sse)
    best, best_error = scan(sse, low, min(base, high), start + WINDOW, e0)
    bits, at = first_minimum(sse, base, low, high)
    if bits < 0x7FFFFFFF and sse[at] < best_error:  # a clip error never exceeds the SSE
        best = at
        best_error = float(sse[at])
    for column in range(base + 2 * WINDOW, high, WINDOW):  # candidates above them (rare)
        window_errors(magnitudes, table, column, sse)
    best = scan(sse, max(low, base + 2 * WINDOW), high, best, best_error)[0]
    return best - WINDOW
