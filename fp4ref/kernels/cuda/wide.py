"""Wide stores for the GPU kernels: four array elements written by one vector instruction.

``store4(array, i, a, b, c, d)`` writes ``array[i:i + 4] = a, b, c, d`` (cast to the array's
dtype) as one 16-byte (uint32) or 8-byte (uint16) store, and ``load4(array, i)`` reads
``array[i:i + 4]`` as a tuple with one vector load; ``i`` must be a multiple of 4 and the
array must start at an address aligned to four of its elements. Memory-bound kernels need
wide loads and stores to reach copy speed, and numba has no vector types for arrays. In the
simulator ``store4`` is plain Python.
"""

from __future__ import annotations

from numba.cuda import config

if config.ENABLE_CUDASIM:

    def store4(array, i, a, b, c, d):
        """``array[i:i + 4] = a, b, c, d``."""
        array[i], array[i + 1], array[i + 2], array[i + 3] = a, b, c, d

    def load4(array, i):
        """``array[i:i + 4]`` as a tuple."""
        return array[i], array[i + 1], array[i + 2], array[i + 3]

    def hinted_store4(qualifiers):
        """:func:`store4` (the simulator has no cache hints)."""
        return store4

    def hinted_load4(qualifiers):
        """:func:`load4` (the simulator has no cache hints)."""
        return load4

else:
    from llvmlite import ir
    from numba import types
    from numba.cuda import cgutils
    from numba.cuda.extending import intrinsic

    @intrinsic
    def store4(typingctx, array, i, a, b, c, d):
        """``array[i:i + 4] = a, b, c, d`` as one vector store (see the module docstring)."""
        if not (isinstance(array, types.Array) and array.ndim == 1
                and isinstance(array.dtype, types.Integer) and isinstance(i, types.Integer)):
            return None

        def codegen(context, builder, signature, args):
            array_type = signature.args[0]
            element = context.get_value_type(array_type.dtype)
            vector_type = ir.VectorType(element, 4)
            vector = ir.Constant(vector_type, ir.Undefined)
            for k in range(4):
                value = context.cast(builder, args[2 + k], signature.args[2 + k],
                                     array_type.dtype)
                vector = builder.insert_element(vector, value, ir.Constant(ir.IntType(32), k))
            struct = context.make_array(array_type)(context, builder, value=args[0])
            pointer = cgutils.get_item_pointer(context, builder, array_type, struct, [args[1]])
            builder.store(vector, builder.bitcast(pointer, vector_type.as_pointer()),
                          align=array_type.dtype.bitwidth // 2)  # four elements, in bytes

        return types.void(array, i, a, b, c, d), codegen

    @intrinsic
    def load4(typingctx, array, i):
        """``array[i:i + 4]`` as a tuple, by one vector load (see the module docstring)."""
        if not (isinstance(array, types.Array) and array.ndim == 1
                and isinstance(array.dtype, (types.Integer, types.Float))
                and isinstance(i, types.Integer)):
            return None
        result = types.UniTuple(array.dtype, 4)

        def codegen(context, builder, signature, args):
            array_type = signature.args[0]
            vector_type = ir.VectorType(context.get_value_type(array_type.dtype), 4)
            struct = context.make_array(array_type)(context, builder, value=args[0])
            pointer = cgutils.get_item_pointer(context, builder, array_type, struct, [args[1]])
            vector = builder.load(builder.bitcast(pointer, vector_type.as_pointer()),
                                  align=array_type.dtype.bitwidth // 2)
            values = [builder.extract_element(vector, ir.Constant(ir.IntType(32), k))
                      for k in range(4)]
            return context.make_tuple(builder, signature.return_type, values)

        return result(array, i), codegen

    def _element_pointer(context, builder, signature, args):
        array_type = signature.args[0]
        struct = context.make_array(array_type)(context, builder, value=args[0])
        pointer = cgutils.get_item_pointer(context, builder, array_type, struct, [args[1]])
        return builder.ptrtoint(pointer, ir.IntType(64))

    def hinted_store4(qualifiers: str):
        """:func:`store4` for 32-bit integer arrays as one PTX ``st.global{qualifiers}.v4.u32``
        (``qualifiers`` such as ``".cs"``: PTX ISA 9.7.9.10, cache operators)."""
        text = f"st.global{qualifiers}.v4.u32 [$0], {{$1, $2, $3, $4}};"

        @intrinsic
        def store(typingctx, array, i, a, b, c, d):
            if not (isinstance(array, types.Array) and array.ndim == 1
                    and isinstance(array.dtype, types.Integer) and array.dtype.bitwidth == 32
                    and isinstance(i, types.Integer)):
                return None

            def codegen(context, builder, signature, args):
                i32 = ir.IntType(32)
                values = [context.cast(builder, args[2 + k], signature.args[2 + k], types.uint32)
                          for k in range(4)]
                asm = ir.InlineAsm(ir.FunctionType(ir.VoidType(), [ir.IntType(64)] + [i32] * 4),
                                   text, "l,r,r,r,r,~{memory}", side_effect=True)
                builder.call(asm, [_element_pointer(context, builder, signature, args), *values])

            return types.void(array, i, a, b, c, d), codegen

        return store

    def hinted_load4(qualifiers: str):
        """:func:`load4` for 32-bit integer arrays as one PTX ``ld.global{qualifiers}.v4.u32``
        (``qualifiers`` such as ``".nc.L2::256B"``: the read-only path, an L2 prefetch size;
        PTX ISA 9.7.9.8). Only for arrays no kernel writes while it runs."""
        text = f"ld.global{qualifiers}.v4.u32 {{$0, $1, $2, $3}}, [$4];"

        @intrinsic
        def load(typingctx, array, i):
            if not (isinstance(array, types.Array) and array.ndim == 1
                    and isinstance(array.dtype, types.Integer) and array.dtype.bitwidth == 32
                    and isinstance(i, types.Integer)):
                return None
            result = types.UniTuple(types.uint32, 4)

            def codegen(context, builder, signature, args):
                i32 = ir.IntType(32)
                asm = ir.InlineAsm(ir.FunctionType(ir.LiteralStructType([i32] * 4),
                                                   [ir.IntType(64)]),
                                   text, "=r,=r,=r,=r,l", side_effect=False)
                pair = builder.call(asm, [_element_pointer(context, builder, signature, args)])
                values = [builder.extract_value(pair, k) for k in range(4)]
                return context.make_tuple(builder, signature.return_type, values)

            return result(array, i), codegen

        return load
