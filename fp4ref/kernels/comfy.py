"""comfy-kitchen's NVFP4 block as numba scalar functions: the fast layer's twin of
:func:`fp4ref.spec.nvfp4.comfy_block` (the ``"comfy"`` recipe), for the CPU kernel
:func:`.cpu.quantize.quantize_nv_comfy` and, compiled again as device functions, the GPU
kernel of :mod:`.cuda.quantize`.

comfy-kitchen 0.2.40's eager ``quantize_nvfp4`` runs x86 float32 arithmetic through NaN and
Inf; here every NaN is followed by its bits (integers), never by the hardware's NaN
arithmetic, so the CPU and GPU kernels give the bytes of the x86 run alike. Finite steps
are single IEEE float32 operations (:func:`.scale_rules.f32`, :func:`.scale_rules.divide`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .elements import element_code
from .options import TIE_EVEN
from .scalar import byte_elements, e4m3_decode, e4m3_encode, float32_bits
from .scale_rules import divide, f32

#: x86's default NaN (0 / 0, Inf / Inf, Inf * 0 on SSE/AVX): the sign bit set.
X86_DEFAULT_NAN = 0xFFC00000


@njit(cache=True, error_model="numpy")
def is_nan_bits(bits):
    """Whether the float32 ``bits`` are a NaN."""
    return (bits & 0x7FFFFFFF) > 0x7F800000


@njit(cache=True, error_model="numpy")
def nan_and_largest_magnitude(row_bits, start, n):
    """(whether ``row_bits[start:start + n]`` (float32 bits) holds a NaN, the largest
    magnitude bits of its other elements, as int64): a block max that x86 float32
    arithmetic leaves NaN-free, the NaN flagged apart (comfy-kitchen, ModelOpt)."""
    nan_in = False
    top = np.int64(0)
    for i in range(n):
        magnitude = np.int64(row_bits[start + i]) & 0x7FFFFFFF
        if magnitude > 0x7F800000:
            nan_in = True
        elif magnitude > top:
            top = magnitude
    return nan_in, top


@njit(cache=True, error_model="numpy")
def comfy_nan_code(bits):
    """E2M1 code of the NaN float32 ``bits`` by ``_f32_to_floatx_unpacked``'s normal path:
    3, or 4 when payload bit 21 is set (quiet NaNs), with the NaN's sign."""
    magnitude = bits & 0x7FFFFFFF
    odd = (magnitude >> 22) & 1
    code = ((magnitude - 0x3F000000 + 0x1FFFFF + odd) >> 22) & 0xFF
    return code | (8 if bits >> 31 else 0)


@njit(cache=True, error_model="numpy")
def comfy_scale(row_bits, start, n, tensor, tensor_bits):
    """(scale byte, divisor bits) of the block ``row_bits[start:start + n]`` (float32 bits)
    with decode multiplier ``tensor`` (float32 bits ``tensor_bits``): the byte of
    ``min(f32(f32(amax / 6) / s_t), 448)``, 0x7F for a propagated NaN (a NaN element or a
    positive NaN tensor scale), 0xFF for x86's default NaN; the divisor ``f32(s_t * s_b)``
    as float32 bits, NaN bits as x86 propagates them."""
    tensor_bits = np.int64(tensor_bits)
    nan_in, top = nan_and_largest_magnitude(row_bits, start, n)
    tensor_nan = is_nan_bits(tensor_bits)
    if nan_in or tensor_nan:
        scale = 0x7F if nan_in or (tensor_bits >> 31) == 0 else 0xFF
    else:
        amax = float(np.uint32(top).view(np.float32))
        y = divide(f32(amax / 6.0), tensor)
        if y != y:
            scale = 0xFF  # 0 / 0, Inf / Inf: X86_DEFAULT_NAN
        else:
            scale = e4m3_encode(min(y, 448.0), TIE_EVEN, True)
    block = e4m3_decode(scale)
    total_bits = np.int64(0)
    if tensor_nan:
        total_bits = tensor_bits | 0x00400000
    elif (scale & 0x7F) == 0x7F:  # torch widens E4M3 NaN to 0x7FF00000 / 0xFFF00000
        total_bits = 0x7FF00000 | ((scale & 0x80) << 24)
    elif math.isinf(tensor) and block == 0.0:
        total_bits = np.int64(X86_DEFAULT_NAN)
    else:
        total_bits = np.int64(float32_bits(f32(tensor * block)))
    return scale, total_bits


@njit(cache=True, error_model="numpy")
def comfy_code(x_bits, total_bits, tie, zero_sign):
    """E2M1 code of the element with float32 bits ``x_bits`` at divisor bits
    ``total_bits`` (not zero: the caller gives the zero-divisor block +0 codes): ``x / t``
    clamped to +-6 and rounded, a NaN quotient by :func:`comfy_nan_code`."""
    x_bits, total_bits = np.int64(x_bits), np.int64(total_bits)
    if is_nan_bits(x_bits):
        return comfy_nan_code(x_bits | 0x00400000)
    if is_nan_bits(total_bits):
        return comfy_nan_code(total_bits)
    x_magnitude = x_bits & 0x7FFFFFFF
    t_magnitude = total_bits & 0x7FFFFFFF
    if x_magnitude == 0x7F800000 and t_magnitude == 0x7F800000:
        return comfy_nan_code(X86_DEFAULT_NAN)
    x = np.uint32(x_bits ^ (total_bits & 0x80000000)).view(np.float32)  # sign of x / t
    t = np.uint32(t_magnitude).view(np.float32)
    return element_code(x, t, False, tie, zero_sign)


@njit(cache=True, error_model="numpy")
def comfy_block(row_bits, start, n, tensor, tensor_bits, bad_mode, tie, zero_sign, order, out,
                out_start):
    """Quantize the block ``row_bits[start:start + n]`` (float32 bits) by the ``"comfy"``
    recipe: write its ``n / 2`` packed bytes in nibble ``order`` to ``out[out_start:]`` and
    return its scale byte. ``bad_mode`` 0 (``nonfinite="comfy"``) runs NaN and Inf through
    the arithmetic; 1 gives a block with NaN, 2 one with NaN or Inf, 0x7F and zero codes
    (``"ieee"``, ``"nan-scale"``)."""
    if bad_mode:
        bad_from = 0x7F800001 if bad_mode == 1 else 0x7F800000
        for i in range(n):
            if (np.int64(row_bits[start + i]) & 0x7FFFFFFF) >= bad_from:
                for j in range(n // 2):
                    out[out_start + j] = 0
                return 0x7F
    scale, total_bits = comfy_scale(row_bits, start, n, tensor, tensor_bits)
    zero = (total_bits & 0x7FFFFFFF) == 0  # comfy: where(total == 0, 0, x / 1)
    for j in range(n // 2):
        low, high = byte_elements(j, order, n)
        byte = 0
        if not zero:
            byte = (comfy_code(row_bits[start + low], total_bits, tie, zero_sign)
                    | (comfy_code(row_bits[start + high], total_bits, tie, zero_sign) << 4))
        out[out_start + j] = byte
    return scale
