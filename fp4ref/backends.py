"""The backends and how one is chosen.

A backend implements the same small set of operations on arrays that :mod:`fp4ref.api`
has already validated and flattened:

* ``decode(which, bytes) -> uint32 bits``: E2M1 (``"e2m1"``), E8M0, E4M3 to float32 bits;
* ``encode_e2m1(x, rounding) -> uint8`` and ``encode_e4m3(x, rounding, saturate) -> uint8``;
* ``pack(codes[b, n], order) -> uint8[b, n/2]`` and ``unpack(packed[b, n/2], order)``;
* ``dequantize(blocks[b, n/2], scales[b], scale_format, tensor_scale, order, dtype, out,
  e8m0_decode="ocp")``: writes output bits (uint32 for float32, uint16 for bfloat16/float16)
  into ``out[b, n]``, E8M0 bytes read by the named convention;
* ``swizzle(scales[e, r, c], layout) -> uint8[e, rpad * cpad]`` and
  ``unswizzle(stored[e, rpad * cpad], rows, cols, layout) -> uint8[e, rows, cols]``;
* ``largest_magnitude(x) -> float``: max |x| of a flat float32 array (NaN if it holds one);
* ``quantize(x, options, hessian) -> (scales[b], packed[b, B/2])``: the blocks of the flat
  float32 ``x`` under one :class:`~fp4ref.kernels.options.QuantizeOptions` (the one record
  :mod:`fp4ref.quantize` builds from a profile and a call); ``hessian`` float64
  ``[J, B, B]`` (J = 0 unless ``"optimal-hessian"``).

Every convention reaches a kernel as the integer :mod:`fp4ref.kernels.options` gives it.

``"python"`` runs the oracle of :mod:`fp4ref.spec` element by element; ``"numba"`` runs the
kernels of :mod:`fp4ref.kernels.cpu`; ``"cuda"`` the kernels of :mod:`fp4ref.kernels.cuda`
(on device arrays, or on host arrays copied to the device and back).
"""

from __future__ import annotations

import numpy as np

from . import _device, buffers
from .kernels.options import QuantizeOptions, code
from .spec import e2m1, e4m3, e8m0, fouroversix, layouts, mx, nibbles, nvfp4, rounding

BACKENDS = ("auto", "python", "numba", "cuda")

#: Outputs at least this large are written with streaming stores where the kernel can: they
#: would not stay in the caches anyway (a last-level cache is a few tens of MiB).
_STREAM_BYTES = 16 << 20


def _bits_dtype(dtype: str) -> type:
    return np.uint32 if dtype == "float32" else np.uint16


def _nan_bits(x: np.ndarray, nan: str) -> np.ndarray:
    """The float32 bit patterns ``nan="torchao"`` reads (float64 NaNs converted to float32
    by numpy, which keeps the sign and the top of the payload), else one 0 standing for
    every element."""
    if nan == "torchao":
        with np.errstate(all="ignore"):
            return np.ascontiguousarray(x, np.float32).reshape(-1).view(np.uint32)
    return np.zeros(1, np.uint32)


class PythonBackend:
    """The plain-Python oracle, one element at a time (exact, slow)."""

    name = "python"

    def decode(self, which: str, data: np.ndarray) -> np.ndarray:
        decode = {"e2m1": e2m1.decode, "e8m0": e8m0.decode, "e4m3": e4m3.decode}[which]
        return np.array(
            [rounding.exact_to_float32_bits(decode(int(b))) for b in data.ravel()], np.uint32
        ).reshape(data.shape)

    def encode_e2m1(self, x: np.ndarray, rounding_: str, zero_sign: str = "keep",
                    nan: str = "sign") -> np.ndarray:
        if zero_sign != "keep" or nan != "sign":
            bits = _nan_bits(x, nan)
            return np.array([e2m1.encode(float(v), rounding_, zero_sign, nan,
                                         int(bits[i % bits.size]))
                             for i, v in enumerate(x.ravel())], np.uint8).reshape(x.shape)
        return np.array([e2m1.encode(float(v), rounding_) for v in x.ravel()], np.uint8).reshape(
            x.shape
        )

    def encode_e4m3(self, x: np.ndarray, rounding_: str, saturate: bool,
                    nan: str = "sign") -> np.ndarray:
        out = [e4m3.encode(float(v), rounding_, saturate, nan) for v in x.ravel()]
        return np.array(out, np.uint8).reshape(x.shape)

    def pack(self, codes: np.ndarray, order: str) -> np.ndarray:
        block = codes.shape[1]
        rows = [nibbles.pack(row.tolist(), order, block) for row in codes]
        return np.array(rows, np.uint8).reshape(codes.shape[0], block // 2)

    def unpack(self, packed: np.ndarray, order: str) -> np.ndarray:
        block = 2 * packed.shape[1]
        rows = [nibbles.unpack(row.tolist(), order, block) for row in packed]
        return np.array(rows, np.uint8).reshape(packed.shape[0], block)

    def dequantize(self, blocks, scales, scale_format, tensor_scale, order, dtype, out,
                   e8m0_decode="ocp", arithmetic="exact", e4m3_decode="ocp", divisor=1.0):
        block = 2 * blocks.shape[1]
        tensor_bits = int(np.float32(tensor_scale).view(np.uint32))
        for b in range(blocks.shape[0]):
            codes = nibbles.unpack(blocks[b].tolist(), order, block)
            if scale_format == "e8m0":
                out[b] = mx.dequantize_block(codes, int(scales[b]), dtype, e8m0_decode,
                                             arithmetic)
            else:
                out[b] = nvfp4.dequantize_block(codes, int(scales[b]), tensor_bits, dtype,
                                                arithmetic, e4m3_decode, float(divisor))

    def swizzle(self, scales: np.ndarray, layout: str) -> np.ndarray:
        rpad, cpad = layouts.padded_shape(scales.shape[1], scales.shape[2], layout)
        out = [layouts.swizzle(matrix.tolist(), layout) if matrix.size else [0] * (rpad * cpad)
               for matrix in scales]
        return np.array(out, np.uint8).reshape(scales.shape[0], rpad * cpad)

    def unswizzle(self, stored: np.ndarray, rows: int, cols: int, layout: str) -> np.ndarray:
        out = [layouts.unswizzle(flat.tolist(), rows, cols, layout) for flat in stored]
        return np.array(out, np.uint8).reshape(stored.shape[0], rows, cols)

    def largest_magnitude(self, x: np.ndarray) -> float:
        with np.errstate(invalid="ignore"):
            return float(np.max(np.abs(x))) if x.size else 0.0

    def quantize(self, x: np.ndarray, options: QuantizeOptions, hessian: np.ndarray):
        """The oracle's :func:`fp4ref.spec.mx.quantize_block` or
        :func:`fp4ref.spec.nvfp4.quantize_block` on each block, by name."""
        block, p = options.block_size, options.profile
        rows = x.reshape(-1, block)
        scales = np.empty(rows.shape[0], np.uint8)
        packed = np.empty((rows.shape[0], block // 2), np.uint8)
        columns = hessian.shape[0]
        for b, row in enumerate(rows):
            values = [float(v) for v in row]
            h = hessian[b % columns].tolist() if columns else None
            if options.format == "mxfp4":
                scale, codes = mx.quantize_block(
                    values, options.scale_rule, p.rounding, p.zero_sign, options.start_rule,
                    p.e8m0_min, p.sum_lanes, h, p.mx_zero_block_scale, nonfinite=p.nonfinite,
                    element_rule=p.element_rule, element_scale=p.mx_element_scale,
                    stored_min=p.e8m0_stored_min, zero_divisor=p.e8m0_zero_divisor)
            elif options.scale_rule in fouroversix.RULES:
                scale, codes = fouroversix.quantize_block(
                    values, options.scale_rule, options.tensor_operand, p.sum_lanes)
                scales[b] = scale
                packed[b] = fouroversix.pack(codes, p.nibble_order)
                continue
            else:
                scale, codes = nvfp4.quantize_block(
                    values, p.nvfp4_recipe, options.tensor_operand, p.block_scale_clamp,
                    p.zero_block_scale, options.optimal, p.rounding, p.zero_sign,
                    p.nonfinite == "nan-scale", p.sum_lanes, h, p.nonfinite, p.element_rule,
                    p.e4m3_encode)
            scales[b] = scale
            packed[b] = nibbles.pack(codes, p.nibble_order, block)
        return scales, packed


class NumbaBackend:
    """``numba.njit(parallel=True)`` kernels on host arrays."""

    name = "numba"

    def __init__(self) -> None:
        from .kernels.cpu import codec as cpu

        self.cpu = cpu
        self._tables: dict[tuple, np.ndarray] = {}

    def _scalar_table(self, which: str) -> np.ndarray:
        key = ("scalar", which)
        if key not in self._tables:
            table = np.empty(16 if which == "e2m1" else 256, np.uint32)
            self.cpu.fill_scalar_table(table, code("scalar_format", which))
            self._tables[key] = table
        return self._tables[key]

    def block_table(self, scale_format: str, tensor_scale: np.float32, dtype: str,
                    e8m0_decode: str = "ocp", arithmetic: str = "exact",
                    e4m3_decode: str = "ocp", divisor: float = 1.0) -> np.ndarray:
        """The 256 x 16 table of output bits for every (scale byte, element code), E8M0
        and E4M3 bytes read by the conventions ``e8m0_decode`` and ``e4m3_decode``, products
        computed as ``arithmetic`` says (:data:`fp4ref.profiles.DECODE_ARITHMETIC`;
        ``divisor``: the ``"fouroversix"`` decode's M * S)."""
        key = (scale_format, int(np.float32(tensor_scale).view(np.uint32)), dtype, e8m0_decode,
               arithmetic, e4m3_decode, float(divisor))
        if key not in self._tables:
            table = np.empty((256, 16), _bits_dtype(dtype))
            kind = code("scale_format", scale_format)
            self.cpu.fill_block_table(table, kind, np.float32(tensor_scale),
                                      code("dtype", dtype), code("e8m0_decode", e8m0_decode),
                                      code("decode_arithmetic", arithmetic),
                                      code("e4m3_decode", e4m3_decode), np.float32(divisor))
            self._remember(key, table)
        return self._tables[key]

    def pair_table(self, scale_format: str, tensor_scale: np.float32, dtype: str,
                   e8m0_decode: str, order: str, arithmetic: str = "exact",
                   e4m3_decode: str = "ocp", divisor: float = 1.0) -> np.ndarray:
        """The 256 x 256 table of both outputs of every (scale byte, packed byte), as
        :func:`~fp4ref.kernels.cpu.codec.fill_pair_table` lays them out."""
        key = ("pairs", scale_format, int(np.float32(tensor_scale).view(np.uint32)), dtype,
               e8m0_decode, order == "high-first", arithmetic, e4m3_decode, float(divisor))
        if key not in self._tables:
            table = self.block_table(scale_format, tensor_scale, dtype, e8m0_decode, arithmetic,
                                     e4m3_decode, divisor)
            pairs = np.empty((256, 256), np.uint64 if table.itemsize == 4 else np.uint32)
            self.cpu.fill_pair_table(table, code("nibble_order", order), pairs)
            self._remember(key, pairs)
        return self._tables[key]

    def _remember(self, key: tuple, table: np.ndarray) -> None:
        if len(self._tables) > 32:  # NVFP4 tables depend on the tensor scale: keep a few
            self._tables.clear()
        self._tables[key] = table

    def decode(self, which: str, data: np.ndarray) -> np.ndarray:
        out = np.empty(data.shape, np.uint32)
        self.cpu.lookup(self._scalar_table(which), data.ravel(), out.ravel())
        return out

    def encode_e2m1(self, x: np.ndarray, rounding_: str, zero_sign: str = "keep",
                    nan: str = "sign") -> np.ndarray:
        out = np.empty(x.shape, np.uint8)
        if zero_sign != "keep" or nan != "sign":
            self.cpu.encode_e2m1_with(x.ravel(), _nan_bits(x, nan), code("rounding", rounding_),
                                      code("zero_sign", zero_sign), code("e2m1_nan", nan),
                                      out.ravel())
            return out
        self.cpu.encode_e2m1(x.ravel(), code("rounding", rounding_), out.ravel())
        return out

    def encode_e4m3(self, x: np.ndarray, rounding_: str, saturate: bool,
                    nan: str = "sign") -> np.ndarray:
        out = np.empty(x.shape, np.uint8)
        if nan != "sign":
            self.cpu.encode_e4m3_with(x.ravel(), code("rounding", rounding_), bool(saturate),
                                      code("e4m3_nan", nan), out.ravel())
            return out
        self.cpu.encode_e4m3(x.ravel(), code("rounding", rounding_), bool(saturate), out.ravel())
        return out

    def pack(self, codes: np.ndarray, order: str) -> np.ndarray:
        out = np.empty((codes.shape[0], codes.shape[1] // 2), np.uint8)
        self.cpu.pack(codes, code("nibble_order", order), out)
        return out

    def unpack(self, packed: np.ndarray, order: str) -> np.ndarray:
        out = np.empty((packed.shape[0], 2 * packed.shape[1]), np.uint8)
        self.cpu.unpack(packed, code("nibble_order", order), out)
        return out

    def dequantize(self, blocks, scales, scale_format, tensor_scale, order, dtype, out,
                   e8m0_decode="ocp", arithmetic="exact", e4m3_decode="ocp", divisor=1.0):
        import numba

        from .kernels.cpu.simd import vector_code
        from .kernels.cpu.simd.mx_block import LINE_BYTES

        table = self.pair_table(scale_format, tensor_scale, dtype, e8m0_decode, order,
                                arithmetic, e4m3_decode, divisor)
        pairs = out.view(np.uint64 if out.itemsize == 4 else np.uint32)
        # E8M0 bytes 2..252 decode alike in these conventions and arithmetics (the scale
        # is exact in float32 and bfloat16); ggml's has no -0 (mx_block)
        closed_form = (scale_format == "e8m0" and blocks.shape[1] == 16 and vector_code()
                       and dtype in ("float32", "bfloat16")
                       and e8m0_decode in ("ocp", "bits", "inf"))
        stream = (out.nbytes >= _STREAM_BYTES and vector_code()
                  and out.ctypes.data % LINE_BYTES == 0)
        chunks = min(blocks.shape[0], 16 * numba.get_num_threads())
        self.cpu.dequantize_blocks(blocks, scales, table, code("nibble_order", order), closed_form,
                                   stream, chunks, out, pairs)

    def swizzle(self, scales: np.ndarray, layout: str) -> np.ndarray:
        from .kernels.cpu import layouts as kernels

        rpad, cpad = layouts.padded_shape(scales.shape[1], scales.shape[2], layout)
        out = np.zeros((scales.shape[0], rpad * cpad), np.uint8)
        kernels.swizzle(scales, code("scale_layout", layout), out)
        return out

    def unswizzle(self, stored: np.ndarray, rows: int, cols: int, layout: str) -> np.ndarray:
        from .kernels.cpu import layouts as kernels

        out = np.empty((stored.shape[0], rows, cols), np.uint8)
        kernels.unswizzle(stored, code("scale_layout", layout), out)
        return out

    def largest_magnitude(self, x: np.ndarray) -> float:
        from .kernels.cpu.quantize import largest_magnitude

        return float(np.uint32(largest_magnitude(x.view(np.uint32))).view(np.float32))

    def quantize(self, x: np.ndarray, options: QuantizeOptions, hessian: np.ndarray):
        block = options.block_size
        count = x.size // block
        scales = buffers.empty((count,), np.uint8)
        packed = buffers.empty((count, block // 2), np.uint8)
        self.quantize_blocks(x.reshape(count, block), options, scales, packed, hessian)
        return scales, packed

    def quantize_blocks(self, blocks: np.ndarray, options: QuantizeOptions, scales: np.ndarray,
                        packed: np.ndarray, hessian: np.ndarray) -> str:
        """Quantize the float32 ``blocks`` ``[b, B]`` into ``scales`` ``[b]`` and ``packed``
        ``[b, B/2]`` by the kernel :func:`fp4ref.kernels.cpu.quantize.kernel_for` picks;
        returns its key (``"nvfp4-rule-fast"``, ``"nvfp4-fast"`` where the NVFP4 blocks took
        the division-free path)."""
        from .kernels.cpu import quantize as kernels

        path = kernels.kernel_for(options)
        if blocks.shape[0]:
            fast = kernels.KERNELS[path](blocks, blocks.view(np.uint32), options.kernel, scales,
                                         packed, hessian)
            nonfinite = options.profile.nonfinite
            if options.format == "nvfp4" and nonfinite in ("ieee-x86", "compressed-tensors"):
                kernels.x86_nan_scales(blocks.view(np.uint32), scales)
            if options.format == "mxfp4" and nonfinite == "compressed-tensors":
                kernels.overflow_blocks_7f(blocks.view(np.uint32), scales, packed)
            if options.format == "mxfp4" and nonfinite == "modelopt":
                kernels.modelopt_nonfinite_blocks(blocks.view(np.uint32), scales, packed)
            if path.startswith("nvfp4") and fast:
                return f"{path}-fast"
        return path


class CudaBackend:
    """``numba.cuda.jit`` kernels. Device arrays (numba device arrays, as :mod:`fp4ref.api`
    hands them over) give device arrays; host arrays are copied to the device and their
    results copied back, so the caller gets numpy arrays."""

    name = "cuda"

    def __init__(self) -> None:
        try:
            from numba import cuda
        except ImportError:
            raise RuntimeError(
                "backend 'cuda' needs numba-cuda: pip install 'fp4ref[cuda]'") from None
        if not cuda.is_available():
            raise RuntimeError(
                "backend 'cuda' found no usable CUDA GPU (numba.cuda.is_available() is False); "
                "set NUMBA_ENABLE_CUDASIM=1 before importing numba.cuda to run the kernels in "
                "numba's simulator"
            )
        from .kernels.cuda import codec as gpu

        _device.quiet_launches()
        self.cuda = cuda
        self.gpu = gpu
        self._tables: dict[tuple, object] = {}

    def _in(self, array):
        """``array`` on the device (host arrays are copied there)."""
        return array if _device.is_device(array) else self.cuda.to_device(array)

    def _out(self, result, like):
        """``result`` where ``like`` lives: on the device, or copied to the host."""
        return result if _device.is_device(like) else result.copy_to_host()

    def _scalar_table(self, which: str):
        key = ("scalar", which)
        if key not in self._tables:
            table = _device.empty(16 if which == "e2m1" else 256, np.uint32)
            self.gpu.fill_scalar_table(table, code("scalar_format", which))
            self._tables[key] = table
        return self._tables[key]

    def block_table(self, scale_format: str, tensor_scale: np.float32, dtype: str,
                    e8m0_decode: str = "ocp", arithmetic: str = "exact",
                    e4m3_decode: str = "ocp", divisor: float = 1.0):
        """The 256 x 16 table of output bits for every (scale byte, element code), built on
        the device by the kernel twin of :meth:`NumbaBackend.block_table`."""
        key = (scale_format, int(np.float32(tensor_scale).view(np.uint32)), dtype, e8m0_decode,
               arithmetic, e4m3_decode, float(divisor))
        if key not in self._tables:
            table = _device.empty((256, 16), _bits_dtype(dtype))
            kind = code("scale_format", scale_format)
            self.gpu.fill_block_table(table, kind, np.float32(tensor_scale),
                                      code("dtype", dtype), code("e8m0_decode", e8m0_decode),
                                      code("decode_arithmetic", arithmetic),
                                      code("e4m3_decode", e4m3_decode), divisor)
            if len(self._tables) > 64:
                self._tables.clear()
            self._tables[key] = table
        return self._tables[key]

    def decode(self, which: str, data):
        source = self._in(data)
        out = _device.empty(source.shape, np.uint32)
        self.gpu.lookup(self._scalar_table(which), source.reshape(-1), out.reshape(-1))
        return self._out(out, data)

    def encode_e2m1(self, x, rounding_: str, zero_sign: str = "keep", nan: str = "sign"):
        source = self._in(x)
        out = _device.empty(source.shape, np.uint8)
        if zero_sign != "keep" or nan != "sign":
            host = source.copy_to_host() if nan == "torchao" else source[:0]
            bits = self.cuda.to_device(_nan_bits(host, nan))
            self.gpu.encode_e2m1_with(source.reshape(-1), bits, code("rounding", rounding_),
                                      code("zero_sign", zero_sign), code("e2m1_nan", nan),
                                      out.reshape(-1))
            return self._out(out, x)
        self.gpu.encode_e2m1(source.reshape(-1), code("rounding", rounding_), out.reshape(-1))
        return self._out(out, x)

    def encode_e4m3(self, x, rounding_: str, saturate: bool, nan: str = "sign"):
        source = self._in(x)
        out = _device.empty(source.shape, np.uint8)
        if nan != "sign":
            self.gpu.encode_e4m3_with(source.reshape(-1), code("rounding", rounding_),
                                      bool(saturate), code("e4m3_nan", nan), out.reshape(-1))
            return self._out(out, x)
        self.gpu.encode_e4m3(source.reshape(-1), code("rounding", rounding_), bool(saturate),
                             out.reshape(-1))
        return self._out(out, x)

    def pack(self, codes, order: str):
        source = self._in(codes)
        out = _device.empty((source.shape[0], source.shape[1] // 2), np.uint8)
        self.gpu.pack(source, code("nibble_order", order), out)
        return self._out(out, codes)

    def unpack(self, packed, order: str):
        source = self._in(packed)
        out = _device.empty((source.shape[0], 2 * source.shape[1]), np.uint8)
        self.gpu.unpack(source, code("nibble_order", order), out)
        return self._out(out, packed)

    def dequantize(self, blocks, scales, scale_format, tensor_scale, order, dtype, out,
                   e8m0_decode="ocp", arithmetic="exact", e4m3_decode="ocp", divisor=1.0):
        if _device.is_device(out) and _device.address(out) % 16:
            raise ValueError("out must start at a 16-byte aligned device address for "
                             "backend 'cuda'")
        table = self.block_table(scale_format, tensor_scale, dtype, e8m0_decode, arithmetic,
                                 e4m3_decode, divisor)
        target = out if _device.is_device(out) else _device.empty(out.shape, out.dtype)
        packed = self._in(blocks)
        if _device.address(packed) % 8:  # the kernel loads 64-bit words
            packed = _device.empty(blocks.shape, np.uint8)
            packed.copy_to_device(blocks)
        self.gpu.dequantize_blocks(packed, self._in(scales), table, code("nibble_order", order),
                                   target)
        if target is not out:
            target.copy_to_host(out)

    def quantize(self, x, options: QuantizeOptions, hessian: np.ndarray, out: tuple | None = None):
        """(scales ``[b]``, packed ``[b, B/2]``) device arrays of the flat float32 device
        array ``x`` (16-byte aligned), as the numba kernels of :mod:`.kernels.cpu.quantize`.
        ``hessian``: the host float64 ``[J, B, B]`` Hessian blocks (J = 0 unless
        ``"optimal-hessian"``; block b uses ``hessian[b % J]``); ``out``: those two device
        arrays, to write into."""
        from .kernels.cuda import quantize as kernels

        block = options.block_size
        count = x.size // block
        scales, packed = out or (_device.empty(count, np.uint8),
                                 _device.empty((count, block // 2), np.uint8))
        if count == 0:
            return scales, packed
        k = options.kernel
        matrices = None
        if hessian.shape[0]:
            matrices = self.cuda.to_device(np.ascontiguousarray(hessian, np.float64))
        if options.format == "mxfp4":
            if "e8m0 divisors" not in self._tables:
                divisors = np.ldexp(1.0, np.arange(256) - 127)  # E8M0 values, MX v1.0 5.4.1
                divisors[255] = np.nan
                self._tables["e8m0 divisors"] = self.cuda.to_device(divisors)
            kernels.quantize_mx(x, self._tables["e8m0 divisors"], k, scales, packed, matrices)
            return scales, packed
        if k.fouroversix >= 0:  # the four-over-six rules: their own kernel
            kernels.quantize_fouroversix(x, k, scales, packed)
            return scales, packed
        key = ("nv divisors", k.nvfp4_recipe,
               int(np.float64(k.tensor_operand).view(np.uint64)))  # NaN keys match
        if key not in self._tables:  # a table a recipe and tensor operand, kept
            divisors = _device.empty(256, np.float64)
            kernels.nv_divisors(k.nvfp4_recipe, k.tensor_operand, divisors)
            if len(self._tables) > 64:
                self._tables.clear()
            self._tables[key] = divisors
        divisors = self._tables[key]
        kernels.quantize_nv(x, divisors, k, scales, packed, matrices)
        return scales, packed

    def quantize_by_device_amax(self, x, options: QuantizeOptions, encode: bool):
        """(scales, packed, amax, operand) of the NVFP4 quantization of the flat float32
        device array ``x`` whose tensor scale comes of its amax (``encode``: the profile's
        direction), with the operand found on the device
        (:func:`.kernels.cuda.quantize.quantize_nv_by_device_amax`; ``options``' operand is
        not read), or None where that does not apply. :meth:`quantize_after` is then due."""
        from .kernels.cuda import quantize as kernels

        k = options.kernel
        count = x.size // 16
        if options.format != "nvfp4" or not count or not kernels.device_amax_applies(k):
            return None
        return kernels.quantize_nv_by_device_amax(
            x, k, encode, lambda: (_device.empty(count, np.uint8),
                                   _device.empty((count, 8), np.uint8)))

    def quantize_after(self, x, options: QuantizeOptions, scales, packed) -> None:
        """The passes after the NVFP4 kernel of :meth:`quantize_by_device_amax`, now that
        the operand is known (``options``)."""
        from .kernels.cuda import quantize as kernels

        kernels.nv_after_kernel(x, options.kernel, scales, packed)

    def largest_magnitude(self, x) -> float:
        """max |x| over the flat float32 device array ``x`` (NaN if it holds one; 0 if
        empty), reduced on the device."""
        from .kernels.cuda import quantize as kernels

        top = kernels.largest_magnitude(x.view(np.uint32))
        return float(np.uint32(top).view(np.float32))

    def widen(self, x, dtype: str):
        """The float32 device copy of the flat float16/bfloat16 device array ``x``."""
        from .kernels.cuda import quantize as kernels

        out = _device.empty(x.size, np.float32)
        kernels.widen(x.view(np.uint16), dtype == "bfloat16", out)
        return out

    def swizzle(self, scales, layout: str):
        from .kernels.cuda import layouts as kernels

        source = self._in(scales)
        rpad, cpad = layouts.padded_shape(source.shape[1], source.shape[2], layout)
        out = self.cuda.to_device(np.zeros((source.shape[0], rpad * cpad), np.uint8))
        kernels.swizzle(source, code("scale_layout", layout), out)
        return self._out(out, scales)

    def unswizzle(self, stored, rows: int, cols: int, layout: str):
        from .kernels.cuda import layouts as kernels

        source = self._in(stored)
        out = _device.empty((source.shape[0], rows, cols), np.uint8)
        kernels.unswizzle(source, code("scale_layout", layout), out)
        return self._out(out, stored)


_INSTANCES: dict[str, object] = {}


def get(name: str, *arrays):
    """The backend called ``name`` for the arguments ``arrays``.

    ``"auto"`` is ``"cuda"`` when any of ``arrays`` is a device array (see
    :func:`fp4ref._device.is_device`) and ``"numba"`` otherwise. Device arrays need
    ``"cuda"`` (or ``"auto"``); ``"cuda"`` also takes host arrays and gives host results.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {name!r}")
    on_device = any(_device.is_device(a) for a in arrays)
    if name == "auto":
        name = "cuda" if on_device else "numba"
    elif on_device and name != "cuda":
        raise TypeError(f"backend {name!r} runs on host arrays; got a device array (use "
                        f"backend='cuda' or 'auto', or copy it to the host)")
    if name not in _INSTANCES:
        _INSTANCES[name] = {"python": PythonBackend, "numba": NumbaBackend,
                            "cuda": CudaBackend}[name]()
    return _INSTANCES[name]


def available() -> list[str]:
    """Names of the backends that can run here (``"cuda"`` where ``numba.cuda`` finds a GPU
    or runs its simulator)."""
    try:
        from numba import cuda
    except ImportError:
        return ["python", "numba"]
    return ["python", "numba", "cuda"] if cuda.is_available() else ["python", "numba"]
