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

Encoding (:func:`block_max_magnitude`, :func:`store_mx_codes`): the largest magnitude as an
unsigned maximum of the sign-cleared float32 bits, then each element's code from
``y = |x| * 2^(127 - s)`` counted against the seven E2M1 decision thresholds, as
:func:`fp4ref.kernels.cpu.quantize.quantize_mx_rule` describes.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.core.extending import intrinsic

from ..scalar import HIGH_FIRST, SPLIT_HALF
from ..scale_rules import ZERO_KEEP, ZERO_NEGATIVE

#: Bytes of a cache line: streamed stores need an output aligned to this.
LINE_BYTES = 64

#: Smallest E8M0 byte and largest whose products are all normal and finite.
FIRST_SCALE, LAST_SCALE = 2, 252

_I8, _I32 = ir.IntType(8), ir.IntType(32)
_F32 = ir.FloatType()
_LANES = 32  # elements of an MXFP4 block (OCP MX v1.0 section 5)

# Element order of the 16 low nibbles (0..15) and 16 high nibbles (16..31) of a block.
_ORDER_MASKS = {
    "low-first": [k for i in range(16) for k in (i, 16 + i)],
    "high-first": [k for i in range(16) for k in (16 + i, i)],
    "split-half": list(range(_LANES)),  # ggml: byte j holds elements j and j + 16
}


def _contiguous(array: types.Type, *dtypes: types.Type) -> bool:
    """Whether ``array`` is a C-contiguous numba array of one of ``dtypes`` (the intrinsics
    address it by flat element index)."""
    return isinstance(array, types.Array) and array.layout == "C" and array.dtype in dtypes


def _splat(builder: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    vector = ir.VectorType(value.type, lanes)
    first = builder.insert_element(ir.Constant(vector, None), value, ir.Constant(_I32, 0))
    return builder.shuffle_vector(first, ir.Constant(vector, None),
                                  ir.Constant(ir.VectorType(_I32, lanes), [0] * lanes))


def _vector(element: ir.IntType, value: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(element, _LANES), [value] * _LANES)


def _codes(builder: ir.IRBuilder, packed: ir.Value, order: ir.Value) -> ir.Value:
    """The block's 32 codes in element order, from its 16 packed bytes."""
    low = builder.and_(packed, ir.Constant(packed.type, [0xF] * 16))
    high = builder.lshr(packed, ir.Constant(packed.type, [4] * 16))
    mask = ir.VectorType(_I32, _LANES)
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
    if not (_contiguous(out, types.uint32, types.uint16) and _contiguous(blocks, types.uint8)):
        return None
    sig = types.void(out, types.intp, blocks, types.intp, types.intp, types.intp, types.boolean)
    width = out.dtype.bitwidth
    mantissa = 23 if width == 32 else 7

    def codegen(context, builder, signature, args):
        out_arg, out_index_arg, blocks_arg, block_index_arg, scale_arg, order_arg, stream_arg = args
        element = ir.IntType(width)
        block_bytes = context.make_array(signature.args[2])(context, builder, blocks_arg).data
        source = builder.bitcast(builder.gep(block_bytes, [block_index_arg]),
                                 ir.VectorType(_I8, 16).as_pointer())
        codes = builder.zext(_codes(builder, builder.load(source, align=1), order_arg),
                             ir.VectorType(element, _LANES))
        magnitude = builder.and_(codes, _vector(element, 7))
        is_half = builder.zext(builder.icmp_unsigned("==", magnitude, _vector(element, 1)),
                               magnitude.type)
        fields = builder.shl(builder.sub(magnitude, is_half), _vector(element, mantissa - 1))
        exponent = builder.shl(builder.trunc(builder.sub(scale_arg, ir.Constant(scale_arg.type, 1)),
                                             element), ir.Constant(element, mantissa))
        exponents = builder.select(builder.icmp_unsigned("!=", magnitude, _vector(element, 0)),
                                   _splat(builder, exponent, _LANES), _vector(element, 0))
        signs = builder.shl(builder.and_(codes, _vector(element, 8)), _vector(element, width - 4))
        bits = builder.or_(builder.add(fields, exponents), signs)
        out_data = context.make_array(signature.args[0])(context, builder, out_arg).data
        target = builder.bitcast(builder.gep(out_data, [out_index_arg]), bits.type.as_pointer())
        streaming = builder.icmp_unsigned("!=", stream_arg, ir.Constant(stream_arg.type, 0))
        with builder.if_else(streaming) as (streamed, cached):
            with streamed:
                store = builder.store(bits, target, align=LINE_BYTES)
                store.set_metadata("nontemporal",
                                   builder.module.add_metadata([ir.Constant(_I32, 1)]))
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


def _array_vector(context, builder, array_type, array, index, vector):
    """Pointer to ``vector`` at element ``index`` of a numba array."""
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [index]), vector.as_pointer())


@intrinsic
def block_max_magnitude(typingctx, bits, index):
    """The largest of ``bits[index:index + 32] & 0x7FFFFFFF`` (float32 bits): the bits of
    the block's largest magnitude, 0x7F800000 or more when it holds an Inf or a NaN."""
    if not _contiguous(bits, types.uint32):
        return None

    def codegen(context, builder, signature, args):
        vector = ir.VectorType(_I32, _LANES)
        source = _array_vector(context, builder, signature.args[0], args[0], args[1], vector)
        magnitudes = builder.and_(builder.load(source, align=4), _vector(_I32, 0x7FFFFFFF))
        reduce = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(_I32, [vector]), "llvm.vector.reduce.umax.v32i32")
        return builder.call(reduce, [magnitudes])

    return types.uint32(bits, types.intp), codegen


@intrinsic
def store_mx_codes(typingctx, bits, index, multiplier, thresholds, zero_sign, order, packed,
                   packed_index):
    """Encode the float32 block at ``bits[index:index + 32]`` with ``multiplier``
    (2^(127 - s)) and store its 16 packed bytes at ``packed[packed_index:]`` in ``order``.

    ``thresholds`` holds the seven float32 decision thresholds of the tie rule; a code is
    the number below ``y``. ``zero_sign`` (``ZERO_KEEP``, ``ZERO_NEGATIVE``, ``ZERO_DROP``)
    says which elements coding to zero keep their sign: all, the nonzero ones, none.
    """
    if not (_contiguous(bits, types.uint32) and _contiguous(packed, types.uint8)):
        return None
    sig = types.void(bits, types.intp, types.float32, thresholds, types.intp, types.intp,
                     packed, types.intp)

    def codegen(context, builder, signature, args):
        (bits_arg, index_arg, multiplier_arg, thresholds_arg, zero_sign_arg, order_arg,
         packed_arg, packed_index_arg) = args
        words = ir.VectorType(_I32, _LANES)
        floats = ir.VectorType(_F32, _LANES)
        nibbles = ir.VectorType(_I8, _LANES)
        source = _array_vector(context, builder, signature.args[0], bits_arg, index_arg, words)
        x = builder.load(source, align=4)
        magnitude = builder.and_(x, _vector(_I32, 0x7FFFFFFF))
        y = builder.fmul(builder.bitcast(magnitude, floats),
                         _splat(builder, multiplier_arg, _LANES))
        table = context.make_array(signature.args[3])(context, builder, thresholds_arg).data
        code = ir.Constant(nibbles, [0] * _LANES)
        for k in range(7):
            threshold = builder.load(builder.gep(table, [ir.Constant(_I32, k)]))
            above = builder.fcmp_ordered(">", y, _splat(builder, threshold, _LANES))
            code = builder.add(code, builder.zext(above, nibbles))
        negative = builder.icmp_unsigned("!=", builder.lshr(x, _vector(_I32, 31)),
                                         _vector(_I32, 0))
        keep = builder.icmp_signed("==", zero_sign_arg,
                                   ir.Constant(zero_sign_arg.type, ZERO_KEEP))
        nonzero_kept = builder.and_(
            _splat(builder, builder.icmp_signed("==", zero_sign_arg,
                                                ir.Constant(zero_sign_arg.type, ZERO_NEGATIVE)),
                   _LANES),
            builder.icmp_unsigned("!=", magnitude, _vector(_I32, 0)))
        signed = builder.and_(negative, builder.or_(
            builder.or_(builder.icmp_unsigned("!=", code, _vector(_I8, 0)),
                        _splat(builder, keep, _LANES)), nonzero_kept))
        code = builder.or_(code, builder.shl(builder.zext(signed, nibbles), _vector(_I8, 3)))
        halves = ir.VectorType(_I32, 16)
        evens = builder.shuffle_vector(code, code, ir.Constant(halves, list(range(0, 32, 2))))
        odds = builder.shuffle_vector(code, code, ir.Constant(halves, list(range(1, 32, 2))))
        heads = builder.shuffle_vector(code, code, ir.Constant(halves, list(range(16))))
        tails = builder.shuffle_vector(code, code, ir.Constant(halves, list(range(16, 32))))
        four = ir.Constant(evens.type, [4] * 16)
        low_first = builder.or_(evens, builder.shl(odds, four))
        high_first = builder.or_(odds, builder.shl(evens, four))
        split_half = builder.or_(heads, builder.shl(tails, four))  # ggml: j and j + 16
        out = builder.select(
            builder.icmp_signed("==", order_arg, ir.Constant(order_arg.type, HIGH_FIRST)),
            high_first, low_first)
        out = builder.select(
            builder.icmp_signed("==", order_arg, ir.Constant(order_arg.type, SPLIT_HALF)),
            split_half, out)
        target = _array_vector(context, builder, signature.args[6], packed_arg,
                               packed_index_arg, out.type)
        builder.store(out, target, align=1)
        return context.get_dummy_value()

    return sig, codegen
