"""The NVFP4 optimal search (:mod:`fp4ref.spec.optimal`) without divisions, sixteen
candidate scales at a time in LLVM vector code (CPU only).

It picks the byte of :func:`...optimal.search` for a 16-element block whose float32 SSE
sums one term per lane (``n == lanes == 16``) at divisors ``y = float32(|x| / d)``
(``multiply`` false), with finite divisors ``d >= 0``. Three facts make it cheap.

Codes by decision thresholds (:func:`decision_threshold`). The E2M1 code of ``y`` is the
number of tie-rule thresholds ``t`` (a row of :data:`...elements.THRESHOLDS`) with
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
:func:`...optimal.block_error`.

No clip error. Where ``|x| > float32(6 d)``, ``float32(|x| / d) > 5`` and the code is 7, so
the clip term ``max(|x| - float32(6 d), 0)^2`` equals the SSE term; elsewhere it is 0.
Float32 addition is monotone, so a candidate's clip error never exceeds its SSE, and
qwantize's scan (skip unless clip < best, take if SSE < best) takes a candidate exactly
when its SSE is below the best so far.

Each SSE is added in lane order (element 0 first) in its own vector lane, so a chunk of
candidates costs sixteen vector steps. E0 and the bounds come first, one block a lane
(:func:`open_searches`), and only the candidates inside the bounds are evaluated: the
first sixteen, which bound most of the rest from below (:func:`open_chunk`), then those
left (:func:`close_search`); the start byte comes from per-call breakpoints of the recipe
(:func:`start_breakpoints`), and it and the bounds' bytes are counted in bucket tables
(:func:`count_at_most`).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic

from ...elements import E2M1_MAGNITUDES, THRESHOLDS
from ...optimal import merge_sort_pairs
from ...options import HIGH_FIRST, RECIPE_PLAIN, SPLIT_HALF, ZERO_KEEP, ZERO_NEGATIVE
from ...scalar import float32_bits
from ...scale_rules import nvfp4_block_scale
from .ir import array_vector, contiguous, max_magnitude_codegen, reduce, splat

#: Candidates evaluated together (one vector of float32 SSEs).
WINDOW = 16

#: Columns of a decision table: byte ``b`` is column ``b + WINDOW``, so that a chunk of
#: candidates (:data:`CHUNK` <= WINDOW) may end a window above byte 255.
WIDTH = 256 + 2 * WINDOW

#: Rows of a decision table: seven thresholds, then the eight values float32(q d)
#: (:data:`_DECISION_ROWS`), then the flags of :func:`doubles`.
_DECISION_ROWS = 15
_DOUBLES_ROW = 15
_ROWS = 16

#: Candidates evaluated together inside the search bounds (about 18 on normal data):
#: CHUNK in a vector when more than TAIL_LIMIT remain, else TAIL a call.
CHUNK = 16
TAIL = 4
TAIL_LIMIT = 8

_F32 = ir.FloatType()


@njit(cache=True, error_model="numpy")
def decision_threshold(t, d):
    """The float32 ``T`` with ``float32(a / d) > t`` exactly when ``a > T``, for every
    float32 ``a >= 0`` (``t`` a positive normal float32, ``d`` a finite float32 >= 0),
    returned as float64 (see the module docstring)."""
    if d == 0.0:
        return 0.0
    # t + ulp(t) / 2 (exact; t in [2^(e-1), 2^e) has ulp 2^(e-24)), from the exponent:
    # LLVM narrows t + next(t), both widened from float32, to a float32 sum
    halfway = t + math.ldexp(1.0, math.frexp(t)[1] - 25)
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
            # exact product, one rounding
            table[7 + q, b + WINDOW] = np.float32(E2M1_MAGNITUDES[q] * d)
    for b in range(8, last + 1):
        table[_DOUBLES_ROW, b + WINDOW] = doubles(table, b + WINDOW)
    return table


@njit(cache=True, error_model="numpy")
def doubles(table, column):
    """Whether the candidate of ``column`` is the one eight columns below scaled by 2
    exactly (thresholds and values; E4M3 bytes eight apart differ by a factor 2 in the
    normal range), with that one's divisor at least 2^-100, float32(6 d) finite, and
    ``T_6`` below at most ``T_5`` here: what :func:`open_chunk` needs to bound this
    candidate's SSE from below by the one below's."""
    below = column - 8
    for row in range(_DECISION_ROWS):
        if not table[row, column] == 2 * table[row, below]:
            return False
    return (table[7 + 2, below] >= 2.0 ** -100 and table[7 + 7, column] < math.inf
            and table[6, below] <= table[5, column])




def _candidate_errors(context, builder, signature, magnitudes, offset, table, column, lanes,
                      partial=False):
    """The float32 SSEs of the block whose 16 float32 |x| are at ``magnitudes[offset:]``
    (``signature.args[0]``) at the divisors of ``table`` (``signature.args[2]``) columns
    ``column..column + lanes - 1``, one candidate a lane; with ``partial``, also the same
    sums over the elements below code 7 only (the others' terms taken as 0).

    For element i = 0..15 in turn its value ``float32(q d)`` is picked by the thresholds
    below ``|x_i|`` and ``(|x_i| - value)^2`` is added, each step one IEEE float32
    operation (no fusion): the lane sums in torch's order for ``n == lanes == 16``.
    """
    vector = ir.VectorType(_F32, lanes)

    def row(k):
        index = builder.add(column, ir.Constant(column.type, k * WIDTH))
        return builder.load(
            array_vector(context, builder, signature.args[2], table, index, vector), align=4)

    thresholds = [row(k) for k in range(7)]
    values = [row(7 + q) for q in range(8)]
    total = below = ir.Constant(vector, [0.0] * lanes)
    for i in range(WINDOW):
        index = builder.add(offset, ir.Constant(offset.type, i))
        a = splat(builder, builder.load(array_vector(context, builder, signature.args[0],
                                                  magnitudes, index, _F32)), lanes)
        value = values[0]
        for k in range(7):  # thresholds ascend: the last one below |x_i| picks the value
            above = builder.fcmp_ordered(">", a, thresholds[k])
            value = builder.select(above, values[k + 1], value)
        error = builder.fsub(a, value)
        term = builder.fmul(error, error)
        total = builder.fadd(total, term)
        if partial:  # `above` is |x_i| > T_6: code 7
            below = builder.fadd(below, builder.select(above, ir.Constant(vector, [0.0] * lanes),
                                                       term))
    return (total, below) if partial else total


def _gather(builder, table_base, indices):
    """float32 ``table[indices]`` (a vector of flat indices) by ``llvm.masked.gather``."""
    lanes = indices.type.count
    pointers = builder.inttoptr(
        builder.add(splat(builder, builder.ptrtoint(table_base, ir.IntType(64)), lanes),
                    builder.mul(indices, ir.Constant(indices.type, [4] * lanes))),
        ir.VectorType(ir.PointerType(_F32), lanes))
    vector = ir.VectorType(_F32, lanes)
    function = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vector, [pointers.type, ir.IntType(32),
                                                 ir.VectorType(ir.IntType(1), lanes), vector]),
        f"llvm.masked.gather.v{lanes}f32.v{lanes}p0")
    return builder.call(function, [pointers, ir.Constant(ir.IntType(32), 4),
                                   ir.Constant(ir.VectorType(ir.IntType(1), lanes), [1] * lanes),
                                   ir.Constant(vector, None)])


@intrinsic
def open_searches(typingctx, x, row, starts, table, magnitudes, e0s, energies, s_mins, s_maxs,
                  slot):
    """Steps 1 to 3 of the search for the 16 blocks ``x[row:row + 16]`` (float32
    ``[*, 16]``, no NaN where used) with start bytes ``starts[slot:slot + 16]``, one block
    a lane: E0 and the energy, then the bounds, to ``e0s``, ``energies``, ``s_mins``,
    ``s_maxs`` at ``slot`` (a block that keeps its start gets ``s_min = Inf``, ``s_max =
    -Inf``: no candidate); the blocks' |x| to ``magnitudes[16 slot:]`` for
    :func:`range_minimum` (and the energy for :func:`open_chunk`).

    The rows are transposed so that vector ``i`` holds element ``i`` of every block; each
    lane then takes the float32 and float64 steps of :func:`...optimal.block_error`
    and :func:`...optimal.search_bounds` for ``n == lanes == 16`` in their order:

    * energy and E0: the float32 terms added in element order from +0 (torch's order);
      E0's terms as :func:`_candidate_errors` forms them, on the start column's thresholds
      and values (gathered);
    * the magnitudes sorted by a sorting network on their bits (integer order is the
      magnitudes' order, and any network yields the same sorted values); the
      float32-rounded float64 running sums of their float32 squares (torch's cumsum);
    * ``k*`` is the number of those prefixes at most E0 (they ascend, so all of them may be
      compared: the first above E0 ends the count), ``y_(k*)`` the first sorted magnitude
      whose prefix is not at most E0; ``s_min = max(f32(f32(amax - f32(sqrt(E0))) / 6),
      0)`` and ``s_max = f32(y_(k*) / 0.25)``, each step in float64 and rounded as there
      (a NaN ``s_min`` becomes 0: no divisor lies below either).
    """
    if not (contiguous(x, starts, table, magnitudes, e0s, energies, s_mins, s_maxs)
            and x.dtype == table.dtype == magnitudes.dtype == e0s.dtype == energies.dtype
            == s_mins.dtype == s_maxs.dtype == types.float32 and starts.dtype == types.int64
            and x.ndim == 2 and table.ndim == 2):
        return None
    sig = types.void(x, types.intp, starts, table, magnitudes, e0s, energies, s_mins, s_maxs,
                     types.intp)

    def codegen(context, builder, signature, args):
        (x_arg, row_arg, starts_arg, table_arg, magnitudes_arg, e0s_arg, energies_arg,
         s_mins_arg, s_maxs_arg, slot_arg) = args
        n = WINDOW
        floats = ir.VectorType(_F32, n)
        words = ir.VectorType(ir.IntType(32), n)
        doubles = ir.VectorType(ir.DoubleType(), n)
        longs = ir.VectorType(ir.IntType(64), n)

        def at(k):
            return ir.Constant(ir.IntType(64), k)

        # rows of |x| (bits), stored for the candidates, then transposed
        rows = []
        for r in range(n):
            index = builder.mul(builder.add(row_arg, at(r)), at(n))
            bits = builder.load(array_vector(context, builder, signature.args[0], x_arg, index,
                                         words), align=4)
            bits = builder.and_(bits, ir.Constant(words, [0x7FFFFFFF] * n))
            builder.store(bits, array_vector(context, builder, signature.args[4], magnitudes_arg,
                                         builder.mul(builder.add(slot_arg, at(r)), at(n)),
                                         words), align=4)
            rows.append(bits)
        stride = n // 2
        while stride:  # butterfly transpose: swap blocks of `stride` across row pairs
            out = list(rows)
            for r in range(n):
                if r & stride:
                    continue
                a, b = rows[r], rows[r + stride]
                low = [c if not c & stride else c - stride + n for c in range(n)]
                high = [c + stride if not c & stride else c + n for c in range(n)]
                out[r] = builder.shuffle_vector(a, b, ir.Constant(words, low))
                out[r + stride] = builder.shuffle_vector(a, b, ir.Constant(words, high))
            rows = out
            stride //= 2
        columns = rows  # columns[i]: element i of every block
        values = [builder.bitcast(c, floats) for c in columns]

        zero = ir.Constant(floats, [0.0] * n)
        energy = zero
        for v in values:
            energy = builder.fadd(energy, builder.fmul(v, v))

        starts = builder.load(array_vector(context, builder, signature.args[2], starts_arg,
                                       slot_arg, longs), align=8)
        starts = builder.select(builder.icmp_signed("<", starts, ir.Constant(longs, [0] * n)),
                                ir.Constant(longs, [0] * n), starts)
        starts = builder.select(builder.icmp_signed(">", starts, ir.Constant(longs, [255] * n)),
                                ir.Constant(longs, [255] * n), starts)
        column = builder.add(starts, ir.Constant(longs, [WINDOW] * n))
        base = builder.bitcast(context.make_array(signature.args[3])(
            context, builder, table_arg).data, ir.PointerType(_F32))
        entry = [_gather(builder, base, builder.add(column, ir.Constant(longs, [k * WIDTH] * n)))
                 for k in range(_DECISION_ROWS)]
        e0 = zero
        for a in values:
            value = entry[7]
            for k in range(7):
                value = builder.select(builder.fcmp_ordered(">", a, entry[k]), entry[8 + k],
                                       value)
            error = builder.fsub(a, value)
            e0 = builder.fadd(e0, builder.fmul(error, error))

        ordered = list(columns)
        for i, j in merge_sort_pairs(n):
            smaller = builder.icmp_unsigned("<", ordered[i], ordered[j])
            ordered[i], ordered[j] = (builder.select(smaller, ordered[i], ordered[j]),
                                      builder.select(smaller, ordered[j], ordered[i]))
        ordered = [builder.bitcast(v, floats) for v in ordered]
        running = ir.Constant(doubles, [0.0] * n)
        within = []
        for v in ordered:
            running = builder.fadd(running, builder.fpext(builder.fmul(v, v), doubles))
            within.append(builder.fcmp_ordered("<=", builder.fptrunc(running, floats), e0))
        following = ordered[n - 1]
        for k in reversed(range(n)):
            following = builder.select(within[k], following, ordered[k])
        keep = builder.or_(builder.fcmp_ordered("<=", energy, e0), within[n - 1])

        e0_wide = builder.fpext(e0, doubles)
        sqrt = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(doubles, [doubles]), f"llvm.sqrt.v{n}f64")
        root = builder.fpext(builder.fptrunc(builder.call(sqrt, [e0_wide]), floats), doubles)
        gap = builder.fptrunc(builder.fsub(builder.fpext(ordered[n - 1], doubles), root), floats)
        s_min = builder.fptrunc(builder.fdiv(builder.fpext(gap, doubles),
                                             ir.Constant(doubles, [6.0] * n)), floats)
        s_min = builder.select(builder.fcmp_ordered(">", s_min, zero), s_min, zero)
        s_max = builder.fptrunc(builder.fdiv(builder.fpext(following, doubles),
                                             ir.Constant(doubles, [0.25] * n)), floats)
        s_min = builder.select(keep, ir.Constant(floats, [math.inf] * n), s_min)
        s_max = builder.select(keep, ir.Constant(floats, [-math.inf] * n), s_max)
        for array, arg, value in ((5, e0s_arg, e0), (6, energies_arg, energy),
                                  (7, s_mins_arg, s_min), (8, s_maxs_arg, s_max)):
            builder.store(value, array_vector(context, builder, signature.args[array], arg,
                                          slot_arg, floats), align=4)
        return context.get_dummy_value()

    return sig, codegen


def _minimum_signature(magnitudes, table):
    """The signature of :func:`range_minimum` and :func:`tail_minimum` for float32
    ``magnitudes`` and a float32 decision table, else None."""
    if not (contiguous(magnitudes, table) and magnitudes.dtype == table.dtype
            == types.float32 and table.ndim == 2):
        return None
    return types.Tuple([types.float32, types.int64])(magnitudes, types.intp, table,
                                                     types.intp, types.intp, types.intp)


#: The slack of :func:`open_chunk`'s lower bound: relative, and relative to E + 16 d^2.
_BOUND_SCALE = 1.0 - 2.0 ** -16
_BOUND_SLACK = 2.0 ** -14


@intrinsic
def open_chunk(typingctx, magnitudes, offset, table, column, high, e0, energy):
    """(smallest SSE, its first column) over the columns ``column..column + CHUNK - 1``
    below ``high`` as :func:`range_minimum` gives them, then ``first, stop``: the columns
    above the chunk and below ``high`` that may still beat the best so far, ``B =
    min(e0, smallest)``, lie in ``first..stop - 1``. Of the eight columns above the chunk,
    those :func:`doubles` flags are ruled out when a lower bound of their SSE from the
    chunk's column eight below exceeds ``B``; the columns beyond them all remain.

    The bound. Let ``c'`` double ``c`` (``d' = 2 d``) and ``L`` be the float32 sum over
    the elements below code 7 at ``c`` of their terms there. Such an element has
    ``|x| <= T_6(c) <= T_5(c')``, so its code at ``c'`` is at most 5 and its value there,
    ``float32(2 e d)`` for an E2M1 value ``e <= 3``, is a value of ``c`` (``2 e`` is one).
    The code at ``c`` is the nearest to ``float32(|x| / d)``, so its value is at most
    ``eps = 2^-23 |x| + 2^-20 d`` further from ``|x|`` than any other value of ``c``
    (the quotient's rounding, twice, and the values' own). With float32 squaring and
    summing (relative errors below 2^-20 over 16 terms) the SSE at ``c'`` is then at least
    ``L (1 - 2^-16) - 2^-14 (E + 16 d^2)``, E the sum of the |x|^2 (``energy``, from
    :func:`open_searches` in float32; a generous allowance for the cross terms
    ``2 eps |x - v|``). A candidate whose bound
    exceeds ``B`` (a finite ``L``) cannot be taken.
    """
    sig = _minimum_signature(magnitudes, table)
    if sig is None or not (isinstance(e0, types.Float) and energy == types.float32):
        return None
    sig = types.Tuple([types.float32, types.int64, types.int64, types.int64])(
        magnitudes, types.intp, table, types.intp, types.intp, e0, energy)

    def codegen(context, builder, signature, args):
        magnitudes_arg, offset_arg, table_arg, column_arg, high_arg, e0_arg, energy = args
        total, below = _candidate_errors(context, builder, signature, magnitudes_arg,
                                         offset_arg, table_arg, column_arg, CHUNK, partial=True)
        smallest, at = _first_minimum_values(builder, total, column_arg, column_arg, high_arg)
        e0 = e0_arg if e0_arg.type == _F32 else builder.fptrunc(e0_arg, _F32)
        best = builder.select(builder.fcmp_ordered("<", smallest, e0), smallest, e0)
        half = CHUNK // 2
        floats = ir.VectorType(_F32, half)
        upper = builder.shuffle_vector(below, below, ir.Constant(
            ir.VectorType(ir.IntType(32), half), list(range(half, CHUNK))))

        def row(r, shift):
            index = builder.add(column_arg, ir.Constant(column_arg.type, r * WIDTH + shift))
            return builder.load(array_vector(context, builder, signature.args[2], table_arg,
                                              index, floats), align=4)

        d = row(7 + 2, half)  # float32(1 * d) below the candidates c'
        slack = builder.fmul(ir.Constant(floats, [_BOUND_SLACK] * half), builder.fadd(
            splat(builder, energy, half),
            builder.fmul(ir.Constant(floats, [16.0] * half), builder.fmul(d, d))))
        bound = builder.fsub(builder.fmul(upper, ir.Constant(floats, [_BOUND_SCALE] * half)),
                             slack)
        ruled_out = builder.and_(
            builder.and_(builder.fcmp_ordered(">", bound, splat(builder, best, half)),
                         builder.fcmp_ordered("<", upper, ir.Constant(floats, [math.inf] * half))),
            builder.fcmp_ordered("==", row(_DOUBLES_ROW, CHUNK), ir.Constant(floats, [1.0] * half)))
        longs = ir.VectorType(ir.IntType(64), half)
        columns = builder.add(splat(builder, builder.add(column_arg, ir.Constant(
            column_arg.type, CHUNK)), half), ir.Constant(longs, list(range(half))))
        kept = builder.and_(builder.not_(ruled_out),
                            builder.icmp_signed("<", columns, splat(builder, high_arg, half)))
        bits = builder.zext(builder.bitcast(kept, ir.IntType(half)), ir.IntType(64))
        after = builder.add(column_arg, ir.Constant(column_arg.type, CHUNK))
        beyond = builder.add(after, ir.Constant(column_arg.type, half))
        cttz = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(64), [ir.IntType(64), ir.IntType(1)]),
            "llvm.cttz.i64")
        ctlz = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.IntType(64), [ir.IntType(64), ir.IntType(1)]),
            "llvm.ctlz.i64")
        # with a bit above the 8 kept flags: the first kept, else `beyond`
        first = builder.add(after, builder.call(cttz, [builder.or_(
            bits, ir.Constant(ir.IntType(64), 1 << half)), ir.Constant(ir.IntType(1), 0)]))
        last = builder.sub(beyond, builder.call(ctlz, [builder.shl(
            bits, ir.Constant(ir.IntType(64), 64 - half)), ir.Constant(ir.IntType(1), 0)]))
        stop = builder.select(builder.icmp_signed(">", high_arg, beyond), high_arg, last)
        return context.make_tuple(builder, signature.return_type,
                                  [smallest, at, first, stop])

    return sig, codegen


@intrinsic
def range_minimum(typingctx, magnitudes, offset, table, column, low, high):
    """(smallest float32 SSE, its first column) over the columns c in
    ``column..column + CHUNK - 1`` with ``low <= c < high``, for the block whose |x| are
    at ``magnitudes[offset:]`` (:func:`_candidate_errors`); NaN if there are none.

    Non-NaN float32 values >= +0 order as their bits do (unsigned), and NaN bits (columns
    outside the range get 0x7FFFFFFF) lie above all of them, so the unsigned minimum is the
    smallest non-NaN SSE, as a scan that takes strict improvements finds it.
    """
    sig = _minimum_signature(magnitudes, table)
    if sig is None:
        return None

    def codegen(context, builder, signature, args):
        magnitudes_arg, offset_arg, table_arg, column_arg, low_arg, high_arg = args
        total = _candidate_errors(context, builder, signature, magnitudes_arg, offset_arg,
                                  table_arg, column_arg, CHUNK)
        return _first_minimum(context, builder, signature, total, column_arg, low_arg, high_arg)

    return sig, codegen


def _first_minimum(context, builder, signature, total, column, low, high):
    """(smallest, first column) of the SSE vector ``total`` (lane c: column ``column + c``)
    over the lanes with ``low <= column + c < high``, as :func:`range_minimum` returns it."""
    return context.make_tuple(builder, signature.return_type,
                              list(_first_minimum_values(builder, total, column, low, high)))


def _first_minimum_values(builder, total, column, low, high):
    """The float32 and int64 values of :func:`_first_minimum`."""
    lanes = total.type.count
    words = ir.VectorType(ir.IntType(32), lanes)
    columns = builder.add(splat(builder, column, lanes), ir.Constant(
        ir.VectorType(ir.IntType(64), lanes), list(range(lanes))))
    inside = builder.and_(builder.icmp_signed(">=", columns, splat(builder, low, lanes)),
                          builder.icmp_signed("<", columns, splat(builder, high, lanes)))
    bits = builder.select(inside, builder.bitcast(total, words),
                          ir.Constant(words, [0x7FFFFFFF] * lanes))
    smallest = reduce(builder, "umin", bits)
    hits = builder.bitcast(builder.icmp_unsigned("==", bits, splat(builder, smallest, lanes)),
                           ir.IntType(lanes))
    cttz = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.IntType(lanes), [ir.IntType(lanes), ir.IntType(1)]),
        f"llvm.cttz.i{lanes}")
    first = builder.zext(builder.call(cttz, [hits, ir.Constant(ir.IntType(1), 1)]),
                         ir.IntType(64))
    return builder.bitcast(smallest, _F32), builder.add(column, first)


@intrinsic
def tail_minimum(typingctx, magnitudes, offset, table, column, low, high):
    """:func:`range_minimum` over the :data:`TAIL` columns ``column..column + TAIL - 1``
    only, at fewer operations than a chunk: one candidate at a time with one element a
    lane, each term formed as in :func:`_candidate_errors`, the candidates' term vectors
    then transposed so that the terms are added in element order, one candidate a lane."""
    sig = _minimum_signature(magnitudes, table)
    if sig is None:
        return None

    def codegen(context, builder, signature, args):
        magnitudes_arg, offset_arg, table_arg, column_arg, low_arg, high_arg = args
        floats = ir.VectorType(_F32, WINDOW)
        a = builder.load(array_vector(context, builder, signature.args[0], magnitudes_arg,
                                  offset_arg, floats), align=4)
        terms = []
        for c in range(TAIL):
            def entry(k, c=c):
                index = builder.add(column_arg, ir.Constant(column_arg.type, k * WIDTH + c))
                return splat(builder, builder.load(array_vector(
                    context, builder, signature.args[2], table_arg, index, _F32)), WINDOW)

            value = entry(7)
            for k in range(7):
                value = builder.select(builder.fcmp_ordered(">", a, entry(k)), entry(8 + k),
                                       value)
            error = builder.fsub(a, value)
            terms.append(builder.fmul(error, error))
        while len(terms) > 1:  # concatenate: lane c * 16 + i holds candidate c's term i
            terms = [builder.shuffle_vector(terms[i], terms[i + 1], ir.Constant(
                ir.VectorType(ir.IntType(32), 2 * terms[i].type.count),
                list(range(2 * terms[i].type.count)))) for i in range(0, len(terms), 2)]
        everything = terms[0]
        total = ir.Constant(ir.VectorType(_F32, TAIL), [0.0] * TAIL)
        for i in range(WINDOW):
            total = builder.fadd(total, builder.shuffle_vector(
                everything, everything, ir.Constant(ir.VectorType(ir.IntType(32), TAIL),
                                                    [c * WINDOW + i for c in range(TAIL)])))
        return _first_minimum(context, builder, signature, total, column_arg, low_arg, high_arg)

    return sig, codegen


#: A float32 >= 0 falls in bucket ``bits >> BUCKET_SHIFT``: eight buckets a binade, the
#: last (Inf's) number ``_BUCKETS - 1``.
BUCKET_SHIFT = 20
_BUCKETS = (0x7F800000 >> BUCKET_SHIFT) + 1

#: Where a counting table's sorted bits begin (after the largest bucket and the bucket
#: starts).
_SORTED = _BUCKETS + 2


@njit(cache=True, error_model="numpy")
def counting_table(values):
    """uint32: what :func:`count_at_most` needs to count the ``values`` (float32 >= 0 or
    NaN, ascending by their bits) at most a float32 in ``0..Inf``: the most values in one
    bucket, the number of values below each bucket's first float32 (and one after the last
    bucket), then the values' bits, followed by that many 0xFFFFFFFF."""
    bits = values.view(np.uint32)
    n = bits.size
    table = np.zeros(_SORTED + n + n, np.uint32)
    j = 0
    for bucket in range(_BUCKETS + 1):
        while j < n and (bits[j] >> BUCKET_SHIFT) < bucket:
            j += 1
        table[1 + bucket] = j
    most = 0
    for bucket in range(_BUCKETS):
        most = max(most, table[2 + bucket] - table[1 + bucket])
    table[0] = most
    table[_SORTED:_SORTED + n] = bits
    table[_SORTED + n:] = 0xFFFFFFFF
    return table


@njit(cache=True, error_model="numpy", inline="always")
def count_at_most(table, bits):
    """The number of values of the :func:`counting_table` ``table`` at most the float32
    whose bits are ``bits`` (``0..0x7F800000``): those below its bucket, then at most
    ``table[0]`` comparisons in it (non-negative float32 values order as their bits; a
    NaN value and the padding exceed every ``bits``)."""
    first = table[1 + (bits >> BUCKET_SHIFT)]
    count = first
    for j in range(table[0]):
        count += table[_SORTED + first + j] <= bits
    return count


@njit(cache=True, error_model="numpy", inline="always")
def close_search(start, e0, low, high, table, magnitudes, block):
    """Step 4 after :func:`open_chunk`: the best byte ``start`` (SSE ``e0``) so far, then
    the candidates of the table columns ``low..high - 1`` (byte + WINDOW) it left, in
    ascending order, a chunk or :data:`TAIL` at a time, for the block whose magnitudes
    are in scratch slot ``block``.

    qwantize's scan from (start, E0) takes a candidate when its SSE is below the best so
    far (clip <= SSE: no clip test), so it ends on the first candidate of the smallest SSE
    if that is below E0, else on the start: each chunk's first minimum
    (:func:`range_minimum`) replaces the best only when strictly below it, and NaN SSEs
    never do; a candidate ruled out has an SSE above the best before it.
    """
    best, best_error = start + WINDOW, e0
    column = low
    while column < high:
        if high - column > TAIL_LIMIT:
            error, at = range_minimum(magnitudes, block * WINDOW, table, column, low, high)
            column += CHUNK
        else:
            error, at = tail_minimum(magnitudes, block * WINDOW, table, column, low, high)
            column += TAIL
        if error < best_error:
            best, best_error = at, float(error)
    return best - WINDOW


@njit(cache=True, error_model="numpy")
def monotone_start(recipe, tensor, clamp_low, clamp_high, zero_block):
    """Whether :func:`start_breakpoints` gives the start bytes of the recipe: no zero-block
    scale (which lifts the smallest amax), and no NaN quotient, which only 0 / 0, Inf / Inf,
    0 x Inf at amax = 0 or Inf can make."""
    if recipe != RECIPE_PLAIN and zero_block:
        return False
    return max(nvfp4_block_scale(0.0, recipe, tensor, clamp_low, clamp_high, False, 0.0),
               nvfp4_block_scale(math.inf, recipe, tensor, clamp_low, clamp_high, False, 0.0)
               ) <= 126


@njit(cache=True, error_model="numpy")
def start_breakpoints(recipe, tensor, clamp_low, clamp_high):
    """float32 ``[127]``: entry ``b`` (1..126) is the smallest float32 ``amax >= 0`` whose
    :func:`...scale_rules.nvfp4_block_scale` is at least ``b`` (NaN if none), so that the
    start byte of ``amax`` is the number of entries at most ``amax``.

    Where :func:`monotone_start` holds that byte does not decrease as ``amax`` grows (its
    quotient, ``amax`` divided or multiplied by positive constants, its clamp and its E4M3
    rounding are all monotone), so a bisection over the ordered float32 bit patterns of
    ``0..Inf`` finds each entry.
    """
    points = np.full(127, np.nan, np.float32)
    bits = np.empty(1, np.uint32)
    value = bits.view(np.float32)
    for b in range(1, 127):
        low, high = 0, 0x7F800001  # the entry's bits lie in low..high - 1, or it is NaN
        while low < high:
            middle = (low + high) // 2
            bits[0] = middle
            if nvfp4_block_scale(float(value[0]), recipe, tensor, clamp_low, clamp_high,
                                 False, 0.0) >= b:
                high = middle
            else:
                low = middle + 1
        if low <= 0x7F800000:
            bits[0] = low
            points[b] = value[0]
    return points


@intrinsic
def block_max_magnitude(typingctx, bits, index):
    """The largest of ``bits[index:index + 16] & 0x7FFFFFFF`` (float32 bits): the bits of
    the block's largest magnitude, 0x7F800000 or more when it holds an Inf or a NaN."""
    if not contiguous(bits) or bits.dtype != types.uint32:
        return None
    return types.uint32(bits, types.intp), max_magnitude_codegen(WINDOW)


@intrinsic
def store_codes(typingctx, x, offset, table, column, zero_sign, order, packed, packed_offset):
    """Encode the 16 float32 values at ``x[offset:]`` (no NaN) at the divisor of ``table``
    column ``column`` and store their 8 packed bytes to ``packed[packed_offset:]`` in
    nibble ``order``.

    Each code is the number of the column's thresholds below ``|x|``
    (:func:`decision_threshold`), the codes of :func:`..quantize.encode_block`; the sign
    bit is kept for nonzero codes, and for zero codes with ``zero_sign`` ``ZERO_KEEP``, or
    ``ZERO_NEGATIVE`` and ``x < 0`` (a nonzero magnitude).
    """
    if not (contiguous(x, table, packed) and x.dtype == table.dtype == types.float32
            and packed.dtype == types.uint8):
        return None
    sig = types.void(x, types.intp, table, types.intp, types.intp, types.intp, packed,
                     types.intp)

    def codegen(context, builder, signature, args):
        (x_arg, offset_arg, table_arg, column_arg, zero_sign_arg, order_arg, packed_arg,
         packed_offset_arg) = args
        words = ir.VectorType(ir.IntType(32), WINDOW)
        nibbles = ir.VectorType(ir.IntType(8), WINDOW)
        bits = builder.load(array_vector(context, builder, signature.args[0], x_arg, offset_arg,
                                     words), align=4)
        magnitude = builder.and_(bits, ir.Constant(words, [0x7FFFFFFF] * WINDOW))
        a = builder.bitcast(magnitude, ir.VectorType(_F32, WINDOW))
        code = ir.Constant(nibbles, [0] * WINDOW)
        for k in range(7):
            index = builder.add(column_arg, ir.Constant(column_arg.type, k * WIDTH))
            threshold = builder.load(array_vector(context, builder, signature.args[2], table_arg,
                                              index, _F32))
            above = builder.fcmp_ordered(">", a, splat(builder, threshold, WINDOW))
            code = builder.add(code, builder.zext(above, nibbles))
        negative = builder.icmp_signed("<", bits, ir.Constant(words, [0] * WINDOW))
        keep_all = builder.icmp_signed("==", zero_sign_arg,
                                       ir.Constant(zero_sign_arg.type, ZERO_KEEP))
        keep_nonzero = builder.icmp_signed("==", zero_sign_arg,
                                           ir.Constant(zero_sign_arg.type, ZERO_NEGATIVE))
        kept = builder.or_(
            builder.icmp_unsigned("!=", code, ir.Constant(nibbles, [0] * WINDOW)),
            builder.or_(splat(builder, keep_all, WINDOW), builder.and_(
                splat(builder, keep_nonzero, WINDOW),
                builder.icmp_unsigned("!=", magnitude, ir.Constant(words, [0] * WINDOW)))))
        signs = builder.zext(builder.and_(negative, kept), nibbles)
        code = builder.or_(code, builder.shl(signs, ir.Constant(nibbles, [3] * WINDOW)))
        half = WINDOW // 2
        pairs = ir.VectorType(ir.IntType(32), half)

        def pack(low, high):  # byte i = element low[i] | element high[i] << 4
            first = builder.shuffle_vector(code, code, ir.Constant(pairs, low))
            second = builder.shuffle_vector(code, code, ir.Constant(pairs, high))
            return builder.or_(first, builder.shl(second, ir.Constant(first.type, [4] * half)))

        evens, odds = list(range(0, WINDOW, 2)), list(range(1, WINDOW, 2))
        out = builder.select(
            builder.icmp_signed("==", order_arg, ir.Constant(order_arg.type, HIGH_FIRST)),
            pack(odds, evens), pack(evens, odds))
        out = builder.select(  # byte j holds elements j and j + 8 (scalar.byte_elements)
            builder.icmp_signed("==", order_arg, ir.Constant(order_arg.type, SPLIT_HALF)),
            pack(list(range(half)), list(range(half, WINDOW))), out)
        builder.store(out, array_vector(context, builder, signature.args[6], packed_arg,
                                    packed_offset_arg, out.type), align=1)
        return context.get_dummy_value()

    return sig, codegen


#: Blocks whose searches are opened before any is closed (see :func:`quantize_blocks`).
GROUP = 64


@njit(cache=True, error_model="numpy")
def quantize_blocks(x, bits, first_block, stop_block, breakpoint_counts, divisor_counts, table,
                    search, inf_nan, zero_sign, order, starts, e0s, energies, s_mins, s_maxs,
                    lows, highs, magnitudes, tail, scales, packed):
    """Blocks ``first_block..stop_block - 1`` (at most :data:`GROUP`) of ``x`` (float32
    ``[nblocks, 16]``; ``bits``: the same as uint32): the steps of
    :func:`..quantize.quantize_nv` for a recipe whose start byte is the number of its
    :func:`start_breakpoints` at most the block's amax (no zero-block scale), with
    divisors ``float32(|x| / d)`` finite in ``table``, and, if ``search``, the optimal byte
    (one term a lane). ``breakpoint_counts`` and ``divisor_counts`` are the
    :func:`counting_table` of breakpoints 1..126 and of the divisors of bytes 1..126.

    Each step is taken for all blocks before the next (start bytes; E0 and the bounds,
    16 blocks a call of :func:`open_searches`, the last 16 copied to ``tail`` when fewer;
    candidate ranges; the first chunks; the candidates left), so its inputs are ready
    when read back, no branch waits on a chunk's SSEs, and the
    processor overlaps one block's chain of dependent operations with the others'.
    Scratch: ``starts``, ``e0s``, ``energies``, ``s_mins``, ``s_maxs``, ``lows``, ``highs`` of
    ``GROUP``, ``magnitudes`` of ``16 GROUP``, ``tail`` float32 ``[16, 16]``.
    """
    count = stop_block - first_block
    start_bytes(bits, first_block, stop_block, breakpoint_counts, inf_nan, starts)
    if search:
        for j in range(0, count, WINDOW):
            if j + WINDOW <= count:
                open_searches(x, first_block + j, starts, table, magnitudes, e0s, energies, s_mins,
                              s_maxs, j)
            else:
                tail[:] = 0.0
                tail[:count - j] = x[first_block + j:stop_block]
                open_searches(tail, 0, starts, table, magnitudes, e0s, energies, s_mins, s_maxs,
                              j)
        low_bits = s_mins.view(np.uint32)
        high_bits = s_maxs.view(np.uint32)
        for j in range(count):
            # bytes 1..126 with d < s_min (s_min >= 0) and with d <= s_max (-Inf: none)
            low = low_bits[j]
            lows[j] = 1 + (low != 0) * count_at_most(divisor_counts, low - (low != 0)) + WINDOW
            high = high_bits[j]
            highs[j] = 1 + (high <= 0x7F800000) * count_at_most(
                divisor_counts, min(high, np.uint32(0x7F800000))) + WINDOW
        # step 4: the first chunk of candidates, without branches on its SSEs (mispredicted,
        # they would discard the work under way on the next blocks) ...
        for j in range(count):
            error, at, first, stop = open_chunk(magnitudes, j * WINDOW, table, lows[j],
                                                highs[j], e0s[j], energies[j])
            taken = error < e0s[j]
            starts[j] = at - WINDOW if taken else starts[j]
            e0s[j] = error if taken else e0s[j]
            lows[j], highs[j] = first, stop
        # ... then the candidates it left
        for j in range(count):
            if lows[j] < highs[j] and starts[j] >= 0:
                starts[j] = close_search(starts[j], e0s[j], lows[j], highs[j], table,
                                         magnitudes, j)
    store_blocks(x, first_block, stop_block, table, zero_sign, order, starts, scales, packed)


@njit(cache=True, error_model="numpy")
def start_bytes(bits, first_block, stop_block, breakpoint_counts, inf_nan, starts):
    """The start byte of each block ``first_block..stop_block - 1`` (``bits``: float32
    ``[nblocks, 16]`` as uint32) to ``starts[0:]``: the number of the recipe's
    :func:`start_breakpoints` at most its amax (``breakpoint_counts``, their
    :func:`counting_table`), or -1 for a NaN block (and an Inf block with ``inf_nan``)."""
    for j in range(stop_block - first_block):
        top = block_max_magnitude(bits, (first_block + j) * WINDOW)  # integer order =
        # magnitudes'
        if top > np.uint32(0x7F800000) or (inf_nan and top == np.uint32(0x7F800000)):
            starts[j] = -1  # NaN (or Inf) block
        else:
            starts[j] = count_at_most(breakpoint_counts, top)


@njit(cache=True, error_model="numpy")
def store_blocks(x, first_block, stop_block, table, zero_sign, order, starts, scales, packed):
    """Block ``first_block + j``'s scale byte ``starts[j]`` and its codes by
    :func:`store_codes` at that column of ``table``; -1 stores the NaN byte 0x7F and zero
    codes."""
    for j in range(stop_block - first_block):
        blk = first_block + j
        scale = starts[j]
        if scale < 0:
            scales[blk] = 0x7F
            for i in range(WINDOW // 2):
                packed[blk, i] = 0
            continue
        store_codes(x, blk * WINDOW, table, scale + WINDOW, zero_sign, order, packed,
                    blk * (WINDOW // 2))
        scales[blk] = scale
