"""The numba CPU side of the sweeps: the backend's encoders through :mod:`fp4ref.api`, and
loops over the scalar kernel functions the CPU and GPU kernels share (the element encoder
and the scale rules of :mod:`fp4ref.kernels`), which have no front door of their own.

Every function takes float32 bit patterns (a contiguous uint32 array) and returns the
kernel's answers, one uint8 each.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import api
from ..kernels import quantize_block, scale_rules


def encode_e2m1(bits: np.ndarray, tie: str) -> np.ndarray:
    """``fp4ref.encode_e2m1`` on the numba backend."""
    return api.encode_e2m1(bits.view(np.float32), tie, backend="numba")


def encode_e4m3(bits: np.ndarray, tie: str, saturate: bool) -> np.ndarray:
    """``fp4ref.encode_e4m3`` on the numba backend."""
    return api.encode_e4m3(bits.view(np.float32), tie, saturate, backend="numba")


@njit(parallel=True, cache=True)
def _element_codes(x, tie, zero_sign, out):
    one = np.float32(1.0)
    for i in prange(x.size):
        out[i] = quantize_block.element_code32(x[i], one, True, tie, zero_sign)


@njit(parallel=True, cache=True)
def _mx_scales(x, rule, out):
    for i in prange(x.size):
        out[i] = scale_rules.mx_scale(float(x[i]), rule)


@njit(parallel=True, cache=True)
def _nv_scales(x, recipe, tensor, clamp_low, clamp_high, zero_scale, out):
    for i in prange(x.size):
        out[i] = scale_rules.nvfp4_block_scale(float(x[i]), recipe, tensor, clamp_low,
                                               clamp_high, zero_scale)


def element_code(bits: np.ndarray, tie: str, zero_sign: str) -> np.ndarray:
    """The quantizers' shared E2M1 element encoder at divisor 1 (y = |x|)."""
    out = np.empty(bits.size, np.uint8)
    _element_codes(bits.view(np.float32), api.rounding_rules().index(tie),
                   scale_rules.ZERO_SIGNS.index(zero_sign), out)
    return out


def mx_scale(bits: np.ndarray, rule: str) -> np.ndarray:
    """The shared MXFP4 scale rule ``rule`` at block maxima ``bits``."""
    out = np.empty(bits.size, np.uint8)
    _mx_scales(bits.view(np.float32), scale_rules.MX_RULES.index(rule), out)
    return out


def nv_scale(bits: np.ndarray, recipe: str, tensor: float, clamp: tuple | None,
             zero_scale: float | None) -> np.ndarray:
    """The shared NVFP4 block-scale recipe at block maxima ``bits`` (``tensor``: the
    recipe's float32 operand)."""
    low, high = clamp or (1.0, 0.0)  # low > high: no clamp (the kernels' convention)
    out = np.empty(bits.size, np.uint8)
    _nv_scales(bits.view(np.float32), scale_rules.NV_RECIPES.index(recipe), float(tensor),
               float(low), float(high), -1.0 if zero_scale is None else float(zero_scale), out)
    return out


def device(bits: np.ndarray) -> np.ndarray:
    """Patterns where this backend's kernels read them (the host)."""
    return np.ascontiguousarray(bits, np.uint32)


def host(answers: np.ndarray) -> np.ndarray:
    """Answers as a host array."""
    return answers
