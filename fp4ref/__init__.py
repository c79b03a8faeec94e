"""fp4ref: the reference codec for MXFP4 and NVFP4.

The public API::

    fp4ref.dequantize(blocks, scales, format="mxfp4", ...)
    fp4ref.encode_e2m1 / decode_e2m1, encode_e4m3 / decode_e4m3, decode_e8m0
    fp4ref.pack / fp4ref.unpack
    fp4ref.swizzle / fp4ref.unswizzle (scale layouts "linear", "128x4", "8x4")
    fp4ref.ops.linear / fp4ref.ops.moe_linear (operators on quantized weights)

Three layers compute the same bits: the plain-Python oracle (:mod:`fp4ref.spec`), numba
CPU kernels and numba CUDA kernels (:mod:`fp4ref.kernels`).
"""

from . import ops
from .api import (
    FORMATS,
    decode_e2m1,
    decode_e4m3,
    decode_e8m0,
    dequantize,
    encode_e2m1,
    encode_e4m3,
    pack,
    rounding_rules,
    unpack,
)
from .backends import available as available_backends
from .errors import FormatError
from .io import uqff
from .io.layer import QuantizedLayer
from .layouts import swizzle, unswizzle
from .profiles import Profile, profiles
from .quantize import QuantizedTensor, quantize
from .spec.nibbles import NIBBLE_ORDERS

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "FormatError",
    "QuantizedLayer",
    "NIBBLE_ORDERS",
    "Profile",
    "QuantizedTensor",
    "available_backends",
    "decode_e2m1",
    "decode_e4m3",
    "decode_e8m0",
    "dequantize",
    "encode_e2m1",
    "encode_e4m3",
    "pack",
    "profiles",
    "quantize",
    "rounding_rules",
    "swizzle",
    "unpack",
    "ops",
    "unswizzle",
    "uqff",
]
