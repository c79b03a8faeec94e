"""One MXFP4 block as LLVM vector code: decoded in closed form, and encoded by a scale rule.

numba types integer arithmetic as 64-bit, so its auto-vectoriser gives 8 lanes per AVX-512
register and spends most of them widening bytes; these intrinsics work on a whole block's
32 lanes at the data's own width, which LLVM maps onto whatever vector unit the machine has.

Decoding (:func:`store_mx_block`).

For E8M0 bytes 2..252 (OCP MX v1.0 section 5.4.1) every product ``code x 2^(s - 127)`` is
a normal number in float32 and in bfloat16, which share the 8-bit exponent field, so its
bits follow from the E2M1 fields (section 5.3.3) without a table. With ``m`` the
magnitude code (0..7) and ``w`` the output's mantissa width (23 or 7):

    bits = ((m - [m == 1]) << (w - 1)) + [m != 0] * ((s - 1) << w) | sign << (w + 8)

The codes 2..7 are ``(1 + f/2) x 2^(e - 1)`` and land on exponent field ``s - 1 + e`` with
mantissa bit ``f``; code 1 (0.5) is E2M1's subnormal and lands on field ``s - 1`` with an
empty mantissa; code 0 is a signed zero. E8M0 byte 1 would put 0.5 at field 0 (a float32
subnormal) and byte 253 would put 6 at field 255 (Inf), hence the range.

:func:`store_mx_block` may store with LLVM's ``nontemporal`` hint (streaming stores),
which writes large outputs without first reading each cache line from memory;
:func:`store_fence` orders those stores before the kernel returns.

Encoding (:func:`block_max_magnitude`, :func:`store_mx_codes`, and
:func:`store_mx_floor_group` for 16 blocks at once under the floor rule): the largest
magnitude as an unsigned maximum of the sign-cleared float32 bits, then each element's code
from ``y = |x| * 2^(127 - s)`` counted against the seven E2M1 decision thresholds, as
:func:`fp4ref.kernels.cpu.quantize.quantize_mx_rule` describes. The zero-sign policy and the
nibble order are branched on once per call, so the vector code has no per-block tests.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

from ...options import HIGH_FIRST, LOW_FIRST, SPLIT_HALF, ZERO_DROP, ZERO_KEEP, ZERO_NEGATIVE
from .ir import F32, I8, I32, array_vector, contiguous, max_magnitude_codegen, splat

#: Bytes of a cache line: streamed stores need an output aligned to this.
LINE_BYTES = 64

#: Smallest E8M0 byte and largest whose products are all normal and finite.
FIRST_SCALE, LAST_SCALE = 2, 252

_LANES = 32  # elements of an MXFP4 block (OCP MX v1.0 section 5)

# Element order of the 16 low nibbles (0..15) and 16 high nibbles (16..31) of a block.
_ORDER_MASKS = {
    "low-first": [k for i in range(16) for k in (i, 16 + i)],
    "high-first": [k for i in range(16) for k in (16 + i, i)],
    "split-half": list(range(_LANES)),  # ggml: byte j holds elements j and j + 16
}






def _vector(element: ir.IntType, value: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(element, _LANES), [value] * _LANES)


def _codes(builder: ir.IRBuilder, packed: ir.Value, order: ir.Value) -> ir.Value:
    """The block's 32 codes in element order, from its 16 packed bytes."""
    low = builder.and_(packed, ir.Constant(packed.type, [0xF] * 16))
    high = builder.lshr(packed, ir.Constant(packed.type, [4] * 16))
    mask = ir.VectorType(I32, _LANES)
    low_first, high_first, split_half = (
        builder.shuffle_vector(low, high, ir.Constant(mask, _ORDER_MASKS[name]))
        for name in ("low-first", "high-first", "split-half"))
    codes = builder.select(builder.icmp_signed("==", order, ir.Constant(order.type, HIGH_FIRST)),
                           high_first, low_first)
    return builder.select(builder.icmp_signed("==", order, ir.Constant(order.type, SPLIT_HALF)),
                          split_half, codes)


@intrinsic
def store_mx_block(typingctx, out, out_index, blocks, block_index, scale, order, stream):
    """Write the 32 outputs of the block at ``blocks[block_index:block_index + 16]`` under
    E8M0 byte ``scale`` (2..252) to ``out[out_index:out_index + 32]``.

    ``out`` holds float32 (uint32) or bfloat16 (uint16) bits; ``order`` is a nibble-order
    kernel integer; with ``stream`` true the store is non-temporal and
    ``out[out_index:]`` must start on a :data:`LINE_BYTES` boundary.
    """
    if not (contiguous(out, dtypes=(types.uint32, types.uint16))
            and contiguous(blocks, dtypes=(types.uint8,))):
        return None
    sig = types.void(out, types.intp, blocks, types.intp, types.intp, types.intp, types.boolean)
    width = out.dtype.bitwidth
    mantissa = 23 if width == 32 else 7

    def codegen(context, builder, signature, args):
        out_arg, out_index_arg, blocks_arg, block_index_arg, scale_arg, order_arg, stream_arg = args
        element = ir.IntType(width)
        block_bytes = context.make_array(signature.args[2])(context, builder, blocks_arg).data
        source = builder.bitcast(builder.gep(block_bytes, [block_index_arg]),
                                 ir.VectorType(I8, 16).as_pointer())
        codes = builder.zext(_codes(builder, builder.load(source, align=1), order_arg),
                             ir.VectorType(element, _LANES))
        magnitude = builder.and_(codes, _vector(element, 7))
        is_half = builder.zext(builder.icmp_unsigned("==", magnitude, _vector(element, 1)),
                               magnitude.type)
        fields = builder.shl(builder.sub(magnitude, is_half), _vector(element, mantissa - 1))
        exponent = builder.shl(builder.trunc(builder.sub(scale_arg, ir.Constant(scale_arg.type, 1)),
                                             element), ir.Constant(element, mantissa))
        exponents = builder.select(builder.icmp_unsigned("!=", magnitude, _vector(element, 0)),
                                   splat(builder, exponent, _LANES), _vector(element, 0))
        signs = builder.shl(builder.and_(codes, _vector(element, 8)), _vector(element, width - 4))
        bits = builder.or_(builder.add(fields, exponents), signs)
        out_data = context.make_array(signature.args[0])(context, builder, out_arg).data
        target = builder.bitcast(builder.gep(out_data, [out_index_arg]), bits.type.as_pointer())
        streaming = builder.icmp_unsigned("!=", stream_arg, ir.Constant(stream_arg.type, 0))
        with builder.if_else(streaming) as (streamed, cached):
            with streamed:
                store = builder.store(bits, target, align=LINE_BYTES)
                store.set_metadata("nontemporal",
                                   builder.module.add_metadata([ir.Constant(I32, 1)]))
            with cached:
                builder.store(bits, target, align=width // 8)
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def store_fence(typingctx):
    """Order every earlier store, streamed ones included, before any later memory access."""

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen








@intrinsic
def block_max_magnitude(typingctx, bits, index):
    """The largest of ``bits[index:index + 32] & 0x7FFFFFFF`` (float32 bits): the bits of
    the block's largest magnitude, 0x7F800000 or more when it holds an Inf or a NaN."""
    if not contiguous(bits, dtypes=(types.uint32,)):
        return None
    return types.uint32(bits, types.intp), max_magnitude_codegen(_LANES)


def _load_thresholds(context, builder, array_type, array):
    """The seven float32 decision thresholds of a :data:`...elements.THRESHOLDS` row, each
    splat over a block."""
    table = context.make_array(array_type)(context, builder, array).data
    return [splat(builder, builder.load(builder.gep(table, [ir.Constant(I32, k)])), _LANES)
            for k in range(7)]


def _packed_codes(builder, x, multiplier, thresholds, zero_sign, order):
    """The 16 packed bytes (``<16 x i8>``) of the float32 block whose bits are the
    ``<32 x i32>`` ``x``, encoded with the splat float32 ``multiplier`` (2^(127 - s)).

    A code is the number of ``thresholds`` below ``y = |x| * multiplier``, found by
    bisection (its bits 4, 2 and 1 by three comparisons). ``zero_sign`` (``ZERO_KEEP``,
    ``ZERO_NEGATIVE``, ``ZERO_DROP``; a Python int, as is the nibble ``order``) says which
    elements coding to zero keep their sign: all, those below zero (not -0), none.
    """
    floats = ir.VectorType(F32, _LANES)
    nibbles = ir.VectorType(I8, _LANES)
    y = builder.fmul(builder.bitcast(builder.and_(x, _vector(I32, 0x7FFFFFFF)), floats),
                     multiplier)
    t = thresholds  # ascending
    high = builder.fcmp_ordered(">", y, t[3])
    middle = builder.fcmp_ordered(">", y, builder.select(high, t[5], t[1]))
    low = builder.fcmp_ordered(">", y, builder.select(
        middle, builder.select(high, t[6], t[2]), builder.select(high, t[4], t[0])))
    code = builder.or_(builder.or_(
        builder.shl(builder.zext(high, nibbles), _vector(I8, 2)),
        builder.shl(builder.zext(middle, nibbles), _vector(I8, 1))), builder.zext(low, nibbles))
    if zero_sign == ZERO_KEEP:  # the sign bit, whatever the code
        signed = builder.icmp_signed("<", x, _vector(I32, 0))
    elif zero_sign == ZERO_NEGATIVE:  # x < 0 (a finite block: no NaN)
        signed = builder.fcmp_ordered("<", builder.bitcast(x, floats),
                                      ir.Constant(floats, [0.0] * _LANES))
    else:  # ZERO_DROP: a nonzero code only
        signed = builder.and_(builder.icmp_signed("<", x, _vector(I32, 0)),
                              builder.icmp_unsigned("!=", code, _vector(I8, 0)))
    code = builder.or_(code, builder.shl(builder.zext(signed, nibbles), _vector(I8, 3)))
    halves = ir.VectorType(I32, 16)
    firsts, seconds = {  # the elements of the low and of the high nibbles
        LOW_FIRST: (range(0, 32, 2), range(1, 32, 2)),
        HIGH_FIRST: (range(1, 32, 2), range(0, 32, 2)),
        SPLIT_HALF: (range(16), range(16, 32)),  # ggml: j and j + 16
    }[order]
    return builder.or_(
        builder.shuffle_vector(code, code, ir.Constant(halves, list(firsts))),
        builder.shl(builder.shuffle_vector(code, code, ir.Constant(halves, list(seconds))),
                    ir.Constant(ir.VectorType(I8, 16), [4] * 16)))


def _specialised(builder, zero_sign, order, emit):
    """Call ``emit(zero_sign, order)`` with Python ints, once for each of the nine
    combinations, behind a branch on the runtime values (the encoding is then straight
    vector code with no per-block tests)."""
    done = builder.append_basic_block("specialised.done")
    for sign_case in (ZERO_KEEP, ZERO_NEGATIVE, ZERO_DROP):
        for order_case in (LOW_FIRST, HIGH_FIRST, SPLIT_HALF):
            match = builder.and_(
                builder.icmp_signed("==", zero_sign, ir.Constant(zero_sign.type, sign_case)),
                builder.icmp_signed("==", order, ir.Constant(order.type, order_case)))
            with builder.if_then(match):
                emit(sign_case, order_case)
                builder.branch(done)
    builder.branch(done)
    builder.position_at_end(done)


@intrinsic
def store_mx_codes(typingctx, bits, index, multiplier, thresholds, zero_sign, order, packed,
                   packed_index):
    """Encode the float32 block at ``bits[index:index + 32]`` with ``multiplier``
    (2^(127 - s)) and store its 16 packed bytes at ``packed[packed_index:]`` in ``order``
    (:func:`_packed_codes`; ``thresholds`` is a row of :data:`...elements.THRESHOLDS`).
    """
    if not (contiguous(bits, dtypes=(types.uint32,)) and contiguous(packed, dtypes=(types.uint8,))):
        return None
    sig = types.void(bits, types.intp, types.float32, thresholds, types.intp, types.intp,
                     packed, types.intp)

    def codegen(context, builder, signature, args):
        (bits_arg, index_arg, multiplier_arg, thresholds_arg, zero_sign_arg, order_arg,
         packed_arg, packed_index_arg) = args
        words = ir.VectorType(I32, _LANES)
        source = array_vector(context, builder, signature.args[0], bits_arg, index_arg, words)
        x = builder.load(source, align=4)
        multiplier = splat(builder, multiplier_arg, _LANES)
        thresholds = _load_thresholds(context, builder, signature.args[3], thresholds_arg)
        target = array_vector(context, builder, signature.args[6], packed_arg,
                               packed_index_arg, ir.VectorType(I8, 16))

        def emit(zero_sign, order):
            builder.store(_packed_codes(builder, x, multiplier, thresholds, zero_sign, order),
                          target, align=1)

        _specialised(builder, zero_sign_arg, order_arg, emit)
        return context.get_dummy_value()

    return sig, codegen


#: Blocks :func:`store_mx_floor_group` encodes at once.
GROUP = 16

#: How many groups ahead :func:`store_mx_floor_group` asks for its input lines, so that
#: memory streams in while a group computes (a hint: it never faults past the end).
PREFETCH_GROUPS = 8


def _umax(builder, a, b):
    return builder.select(builder.icmp_unsigned(">", a, b), a, b)


def _group_maxima(builder, maxima):
    """One ``<16 x i32>`` whose lane b is the largest lane of ``maxima[b]`` (16 vectors of
    16 lanes): a transposing tree of unsigned maxima. At each level a pair of vectors
    holding runs of ``run`` partial maxima per block becomes one holding runs of
    ``run / 2``: the first half of every run against its second half."""
    run = 16
    while len(maxima) > 1:
        low = [start + j for start in range(0, 32, run) for j in range(run // 2)]
        high = [i + run // 2 for i in low]
        mask = ir.VectorType(I32, 16)
        maxima = [_umax(builder, builder.shuffle_vector(a, b, ir.Constant(mask, low)),
                        builder.shuffle_vector(a, b, ir.Constant(mask, high)))
                  for a, b in zip(maxima[0::2], maxima[1::2], strict=True)]
        run //= 2
    return maxima[0]


@intrinsic
def store_mx_floor_group(typingctx, bits, index, thresholds, zero_sign, order, scales,
                         scale_index, packed, packed_index):
    """Quantize the :data:`GROUP` float32 blocks at ``bits[index:index + 512]`` by the OCP
    floor rule: their scale bytes to ``scales[scale_index:scale_index + 16]``, their packed
    codes to ``packed[packed_index:packed_index + 256]``. Returns the blocks holding an Inf
    or a NaN as bits of an integer (bit b for block b): their scale byte is 0xFF, their
    codes are the caller's to zero.

    Per block, as :func:`fp4ref.kernels.cpu.quantize.quantize_mx_rule` describes: the
    largest sign-cleared float32 bits (a transposing tree, :func:`_group_maxima`, so the 16
    maxima cost a few shuffles each); its exponent field e gives s = max(e - 2, 0) (OCP MX
    v1.0 section 6.3), and bits >= 0x7F800000 an Inf or a NaN; the codes are
    :func:`_packed_codes` with multiplier 2^(127 - s), whose bits are (254 - s) << 23 (a
    normal float32: s <= 253).
    """
    if not (contiguous(bits, dtypes=(types.uint32,)) and contiguous(scales, dtypes=(types.uint8,))
            and contiguous(packed, dtypes=(types.uint8,))):
        return None
    sig = types.uint32(bits, types.intp, thresholds, types.intp, types.intp, scales,
                       types.intp, packed, types.intp)

    def codegen(context, builder, signature, args):
        (bits_arg, index_arg, thresholds_arg, zero_sign_arg, order_arg, scales_arg,
         scale_index_arg, packed_arg, packed_index_arg) = args
        words = ir.VectorType(I32, _LANES)
        half = ir.VectorType(I32, 16)

        def block(b):
            at = builder.add(index_arg, ir.Constant(index_arg.type, b * _LANES))
            return builder.load(
                array_vector(context, builder, signature.args[0], bits_arg, at, words), align=4)

        maxima = []
        for b in range(GROUP):
            magnitude = builder.and_(block(b), _vector(I32, 0x7FFFFFFF))
            maxima.append(_umax(
                builder,
                builder.shuffle_vector(magnitude, magnitude, ir.Constant(half, list(range(16)))),
                builder.shuffle_vector(magnitude, magnitude,
                                       ir.Constant(half, list(range(16, 32))))))
        top = _group_maxima(builder, maxima)
        exponent = builder.lshr(top, ir.Constant(half, [23] * 16))
        two = ir.Constant(half, [2] * 16)
        scale = builder.select(builder.icmp_unsigned(">", exponent, two),
                               builder.sub(exponent, two), ir.Constant(half, [0] * 16))
        bad = builder.icmp_unsigned(">=", top, ir.Constant(half, [0x7F800000] * 16))
        scale_bytes = builder.trunc(builder.select(bad, ir.Constant(half, [255] * 16), scale),
                                    ir.VectorType(I8, 16))
        builder.store(scale_bytes, array_vector(context, builder, signature.args[5],
                                                 scales_arg, scale_index_arg,
                                                 scale_bytes.type), align=1)
        multipliers = builder.bitcast(
            builder.shl(builder.sub(ir.Constant(half, [254] * 16), scale),
                        ir.Constant(half, [23] * 16)), ir.VectorType(F32, 16))
        thresholds = _load_thresholds(context, builder, signature.args[2], thresholds_arg)
        lanes = ir.VectorType(I32, _LANES)

        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), I32,
                                                             I32, I32]), "llvm.prefetch.p0i8")

        def emit(zero_sign, order):
            for b in range(GROUP):  # loaded again: holding 16 blocks would spill registers
                for line in range(2):  # a later group's lines, while this one computes
                    at = builder.add(index_arg, ir.Constant(
                        index_arg.type, PREFETCH_GROUPS * GROUP * _LANES + b * _LANES + 16 * line))
                    data = context.make_array(signature.args[0])(context, builder, bits_arg).data
                    builder.call(prefetch, [builder.bitcast(builder.gep(data, [at]),
                                                            ir.IntType(8).as_pointer()),
                                            I32(0), I32(3), I32(1)])
                multiplier = builder.shuffle_vector(multipliers, multipliers,
                                                    ir.Constant(lanes, [b] * _LANES))
                out = _packed_codes(builder, block(b), multiplier, thresholds, zero_sign, order)
                at = builder.add(packed_index_arg, ir.Constant(packed_index_arg.type, b * 16))
                builder.store(out, array_vector(context, builder, signature.args[7],
                                                 packed_arg, at, out.type), align=1)

        _specialised(builder, zero_sign_arg, order_arg, emit)
        return builder.zext(builder.bitcast(bad, ir.IntType(16)), I32)

    return sig, codegen
