"""The LLVM IR helpers the vector intrinsics of :mod:`.mx_block`, :mod:`.mx_search` and
:mod:`.nvfp4_search` share (typing checks, splats, pointers into numba arrays,
reductions)."""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils

I8, I32 = ir.IntType(8), ir.IntType(32)
F32, F64 = ir.FloatType(), ir.DoubleType()


def contiguous(*arrays: types.Type, dtypes: tuple[types.Type, ...] = ()) -> bool:
    """Whether every one of ``arrays`` is a C-contiguous numba array (of one of ``dtypes``,
    if given): the intrinsics address them by flat element index."""
    return all(isinstance(a, types.Array) and a.layout == "C"
               and (not dtypes or a.dtype in dtypes) for a in arrays)


def splat(builder: ir.IRBuilder, value: ir.Value, lanes: int) -> ir.Value:
    """``value`` in every one of ``lanes`` lanes."""
    vector = ir.VectorType(value.type, lanes)
    first = builder.insert_element(ir.Constant(vector, None), value, ir.Constant(I32, 0))
    return builder.shuffle_vector(first, ir.Constant(vector, None),
                                  ir.Constant(ir.VectorType(I32, lanes), [0] * lanes))


def array_vector(context, builder, array_type, array, index, vector):
    """Pointer to ``vector`` at element ``index`` of a numba array."""
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [index]), vector.as_pointer())


def reduce(builder: ir.IRBuilder, name: str, vector: ir.Value) -> ir.Value:
    """``llvm.vector.reduce.<name>`` of an integer vector."""
    function = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vector.type.element, [vector.type]),
        f"llvm.vector.reduce.{name}.v{vector.type.count}i{vector.type.element.width}")
    return builder.call(function, [vector])


def max_magnitude_codegen(lanes: int):
    """The codegen of an intrinsic ``(bits, index) -> uint32``: the largest of
    ``bits[index:index + lanes] & 0x7FFFFFFF`` (float32 bits), one vector reduction."""
    def codegen(context, builder, signature, args):
        vector = ir.VectorType(I32, lanes)
        source = array_vector(context, builder, signature.args[0], args[0], args[1], vector)
        magnitudes = builder.and_(builder.load(source, align=4),
                                  ir.Constant(vector, [0x7FFFFFFF] * lanes))
        return reduce(builder, "umax", magnitudes)

    return codegen
