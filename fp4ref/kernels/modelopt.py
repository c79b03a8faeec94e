"""ModelOpt 0.47's NVFP4 block under ``nonfinite="modelopt"`` as numba scalar functions: the
fast layer's twin of :func:`fp4ref.spec.nvfp4.modelopt_block`, for the CPU kernel
:func:`.cpu.quantize.quantize_nv_modelopt` and the GPU kernel of :mod:`.cuda.quantize`.
NaN is decided from bits and flags, never from the hardware's NaN arithmetic."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .comfy import nan_and_largest_magnitude
from .elements import element_code
from .options import TIE_EVEN
from .scalar import byte_elements, e4m3_decode, e4m3_encode
from .scale_rules import divide, f32


@njit(cache=True, error_model="numpy")
def modelopt_block(row_bits, start, n, tensor, tensor_bits, clamp_low, clamp_high, zero_block,
                   zero_scale, tie, zero_sign, order, out, out_start):
    """Quantize ``row_bits[start:start + n]`` (float32 bits) as ``NVFP4QTensor.quantize``
    does on x86: write the packed bytes to ``out[out_start:]``, return the scale byte."""
    tensor_bits = np.int64(tensor_bits)
    nan_in, top = nan_and_largest_magnitude(row_bits, start, n)
    tensor_nan = (tensor_bits & 0x7FFFFFFF) > 0x7F800000
    if nan_in or tensor_nan:
        scale = 0x7F if nan_in or (tensor_bits >> 31) == 0 else 0xFF
    else:
        amax = float(np.uint32(top).view(np.float32))
        y = divide(amax, f32(6.0 * tensor))
        if y != y:
            scale = 0xFF  # 0 / 0, Inf / Inf: x86's default NaN
        else:
            if y == 0.0 and zero_block:
                y = zero_scale
            y = min(max(y, clamp_low), clamp_high)
            scale = e4m3_encode(y, TIE_EVEN, True)
    block = e4m3_decode(scale)
    d_nan = block != block or tensor_nan or (math.isinf(tensor) and block == 0.0)
    d = 0.0 if d_nan else f32(block * tensor)
    d32 = np.float32(abs(d))
    negative_d = d < 0.0
    for j in range(n // 2):
        low, high = byte_elements(j, order, n)
        byte = 0
        for k in range(2):
            bits = np.int64(row_bits[start + (low if k == 0 else high)])
            magnitude = bits & 0x7FFFFFFF
            code = 7  # a NaN quotient: searchsorted past the bounds, sign bit 0
            if not (d_nan or magnitude > 0x7F800000 or (magnitude == 0 and d == 0.0)
                    or (magnitude == 0x7F800000 and math.isinf(d))):
                if negative_d:
                    bits ^= 0x80000000
                x = np.uint32(bits).view(np.float32)
                code = element_code(x, d32, False, tie, zero_sign)
            byte |= code << (4 * k)
        out[out_start + j] = byte
    return scale
