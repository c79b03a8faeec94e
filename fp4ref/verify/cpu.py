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
from ..kernels import elements, scale_rules
from ..kernels.options import code, nvfp4_recipe_options
from ..quantize import quantize


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
        out[i] = elements.element_code(x[i], one, True, tie, zero_sign)


@njit(parallel=True, cache=True)
def _mx_scales(x, rule, out):
    for i in prange(x.size):
        out[i] = scale_rules.mx_scale(float(x[i]), rule)


@njit(parallel=True, cache=True)
def _nv_scales(x, recipe, tensor, clamp_low, clamp_high, zero_block, zero_scale, out):
    for i in prange(x.size):
        out[i] = scale_rules.nvfp4_block_scale(float(x[i]), recipe, tensor, clamp_low,
                                               clamp_high, zero_block, zero_scale)


def element_code(bits: np.ndarray, tie: str, zero_sign: str) -> np.ndarray:
    """The quantizers' shared E2M1 element encoder at divisor 1 (y = |x|)."""
    out = np.empty(bits.size, np.uint8)
    _element_codes(bits.view(np.float32), code("rounding", tie),
                   code("zero_sign", zero_sign), out)
    return out


def mx_scale(bits: np.ndarray, rule: str) -> np.ndarray:
    """The shared MXFP4 scale rule ``rule`` at block maxima ``bits``."""
    out = np.empty(bits.size, np.uint8)
    _mx_scales(bits.view(np.float32), code("scale_rule", rule), out)
    return out


def nv_scale(bits: np.ndarray, recipe: str, tensor: float, clamp: tuple | None,
             zero_scale: float | None) -> np.ndarray:
    """The shared NVFP4 block-scale recipe at block maxima ``bits`` (``tensor``: the
    recipe's float32 operand)."""
    o = nvfp4_recipe_options(recipe, float(tensor), clamp, zero_scale)
    out = np.empty(bits.size, np.uint8)
    _nv_scales(bits.view(np.float32), o.nvfp4_recipe, o.tensor_operand, o.clamp_low,
               o.clamp_high, o.zero_block, o.zero_block_scale, out)
    return out


@njit(parallel=True, cache=True)
def _consecutive_blocks(first, pin, out):
    per = out.shape[1] - 1
    for b in prange(out.shape[0]):
        for j in range(per):
            out[b, j] = first + b * per + j
        out[b, per] = pin


@njit(parallel=True, cache=True)
def _consecutive_answers(scales, packed, per, out):
    for b in prange(packed.shape[0]):
        scale = np.uint16(scales[b]) << 8
        for j in range(per):
            out[b * per + j] = scale | ((packed[b, j >> 1] >> (4 * (j & 1))) & 0xF)


def quantizer_blocks(bits: np.ndarray, per: int, pin: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(blocks ``[nb, per + 1]`` uint32, where each of ``bits`` sits in their flat view) for
    the quantizer sweeps: every block holding one of the ascending patterns ``bits`` in
    full (block b: patterns per * b .. per * b + per - 1, +0.0 past 2^32 - 1), then
    ``pin``. ``None`` for a whole number of consecutive blocks, which are ``bits`` itself."""
    first, n = int(bits[0]), bits.size
    if first % per == 0 and n % per == 0 and int(bits[-1]) - first == n - 1:
        blocks = np.empty((n // per, per + 1), np.uint32)
        _consecutive_blocks(first, pin, blocks)
        return blocks, None
    else:
        ids = np.unique(bits.astype(np.int64) // per)
        members = ids[:, None] * per + np.arange(per)
        blocks = np.empty((ids.size, per + 1), np.uint32)
        blocks[:, :per] = np.where(members < 1 << 32, members, 0)
        where = (np.searchsorted(ids, bits.astype(np.int64) // per) * (per + 1)
                 + bits.astype(np.int64) % per)
    blocks[:, per] = pin
    return blocks, where


def quantizer_answers(scales: np.ndarray, packed: np.ndarray, per: int,
                      where: np.ndarray | None) -> np.ndarray:
    """``scale << 8 | code`` of each swept pattern, from low-first packed codes (unpacked
    here by the nibble order's definition, not by the kernels)."""
    if where is None:
        out = np.empty(packed.shape[0] * per, np.uint16)
        _consecutive_answers(scales.reshape(-1), packed, per, out)
        return out
    codes = np.empty((packed.shape[0], 2 * packed.shape[1]), np.uint16)
    codes[:, 0::2] = packed & 0xF
    codes[:, 1::2] = packed >> 4
    answers = (scales.reshape(-1, 1).astype(np.uint16) << 8) | codes
    return answers[:, :per].ravel() if where is None else answers.ravel()[where]


def quantize_blocks(bits: np.ndarray, fmt: str, profile: str) -> np.ndarray:
    """``fp4ref.quantize`` under ``profile`` (:func:`.sweeps.quantize_profile`; NVFP4 at a
    given tensor scale of 1) on numba, over the quantizer blocks of the patterns
    (:data:`.sweeps.QUANTIZE_BLOCKS`)."""
    from .sweeps import QUANTIZE_BLOCKS, quantize_profile

    per, pin = QUANTIZE_BLOCKS[fmt]
    blocks, where = quantizer_blocks(bits, per, pin)
    prof = quantize_profile(fmt, profile)
    given = 1.0 if fmt == "nvfp4" and prof.tensor_scale else None
    q = quantize(blocks.view(np.float32), format=fmt, profile=prof, backend="numba",
                 tensor_scale=given)
    return quantizer_answers(q.scales, q.blocks, per, where)


def device(bits: np.ndarray) -> np.ndarray:
    """Patterns where this backend's kernels read them (the host)."""
    return np.ascontiguousarray(bits, np.uint32)


def host(answers: np.ndarray) -> np.ndarray:
    """Answers as a host array."""
    return answers
