"""The MlDtypes adapter (see :mod:`fp4ref.conformance.peers`)."""

from __future__ import annotations

import numpy as np

from .base import Peer, _unpack


class MlDtypes(Peer):
    name, module = "ml_dtypes", "ml_dtypes"
    own = ("ties to even, zero signs kept, E2M1 NaN -> a zero of the opposite sign, E4M3 NaN "
           "on overflow with the input's sign; decode = ml_dtypes casts times float32 scales")
    native = {"rounding": ("even",), "saturate": (False,), "zero_sign": ("keep",),
              "nan": ("ml_dtypes",), "nan_byte": ("sign",)}
    capabilities = {"nibble_order": ("low-first",)}

    def _decode(self, codes, dtype):
        return np.asarray(codes, np.uint8).view(dtype).astype(np.float32)

    def decode_e2m1(self, codes):
        return self._decode(codes, self.lib.float4_e2m1fn)

    def decode_e8m0(self, codes):
        return self._decode(codes, self.lib.float8_e8m0fnu)

    def decode_e4m3(self, codes):
        return self._decode(codes, self.lib.float8_e4m3fn)

    def encode_e2m1(self, x, *, rounding, zero_sign=None, nan=None):
        self.choose(rounding=rounding, zero_sign=zero_sign, nan=nan)
        return x.astype(self.lib.float4_e2m1fn).view(np.uint8)

    def encode_e4m3(self, x, *, rounding, saturate, nan_byte=None):
        self.choose(rounding=rounding, saturate=saturate, nan_byte=nan_byte)
        return x.astype(self.lib.float8_e4m3fn).view(np.uint8)

    def _dequantize(self, blocks, scales, scale_dtype, tensor, dtype, block):
        self.choose(nibble_order="low-first")
        values = self.decode_e2m1(_unpack(blocks))
        factor = np.repeat(self._decode(scales, scale_dtype), block, axis=-1)
        with np.errstate(all="ignore"):
            out = values * factor * np.float32(tensor)
        return out.astype(
            {"float32": np.float32, "float16": np.float16, "bfloat16": self.lib.bfloat16}[dtype]
        )

    def dequantize_mxfp4(self, blocks, scales, *, nibble_order, dtype):
        self.choose(nibble_order=nibble_order)
        return self._dequantize(blocks, scales, self.lib.float8_e8m0fnu, 1.0, dtype, 32)

    def dequantize_nvfp4(self, blocks, scales, tensor_scale, *, nibble_order, dtype):
        self.choose(nibble_order=nibble_order)
        return self._dequantize(blocks, scales, self.lib.float8_e4m3fn, tensor_scale[()], dtype, 16)
