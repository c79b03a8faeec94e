"""The CUDA side of the sweeps: the same kernels as :mod:`.cpu` on the GPU (the encoders
through :mod:`fp4ref.api` on device arrays, the shared element encoder and scale rules as
device functions), with the patterns made and the answers judged on the device, so that a
full sweep never copies its 2^32 inputs or answers across the bus.

The judge on the device is the host judge's comparison written for the GPU: each answer
against the oracle's run containing its pattern (a binary search over the run starts of
:class:`.steps.Steps`); the number of disagreements and the first few are copied back.
"""

from __future__ import annotations

import sys

import numpy as np
from numba import cuda

from .. import api
from ..kernels import quantize_block, scale_rules
from .runner import EXAMPLES, Progress
from .steps import Steps

#: Patterns per chunk of a full GPU sweep (1 GiB of input); small in the simulator.
CHUNK = 1 << 28


def _simulated() -> bool:
    from numba.cuda import config

    return bool(config.ENABLE_CUDASIM)


def _grid(n: int) -> tuple[int, int]:
    if _simulated():
        return 1, 8
    sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
    return max(1, min(16 * sms, (n + 255) // 256)), 256


@cuda.jit
def _iota(lo, bits):
    for i in range(cuda.grid(1), bits.size, cuda.gridsize(1)):
        bits[i] = lo + i


@cuda.jit
def _element_codes(x, tie, zero_sign, out):
    one = np.float32(1.0)
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = quantize_block.element_code32(x[i], one, True, tie, zero_sign)


@cuda.jit
def _mx_scales(x, rule, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = scale_rules.mx_scale(float(x[i]), rule)


@cuda.jit
def _nv_scales(x, recipe, tensor, clamp_low, clamp_high, zero_scale, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = scale_rules.nvfp4_block_scale(float(x[i]), recipe, tensor, clamp_low,
                                               clamp_high, zero_scale)


@cuda.jit
def _judge(got, lo, starts, values, count, found):
    """Count the answers ``got[i]`` (pattern ``lo + i``) that differ from their run's value;
    ``found[k] = (pattern, answer, expected)`` for the first ``found.shape[0]`` of them."""
    for i in range(cuda.grid(1), got.size, cuda.gridsize(1)):
        u = lo + i
        a, b = 0, starts.size - 1  # the last run starting at or before u
        while a < b:
            m = (a + b + 1) // 2
            if starts[m] <= u:
                a = m
            else:
                b = m - 1
        if got[i] != values[a]:
            k = cuda.atomic.add(count, 0, 1)
            if k < found.shape[0]:
                found[k, 0] = u
                found[k, 1] = got[i]
                found[k, 2] = values[a]


def _launch(kernel, n, *args):
    blocks, threads = _grid(n)
    kernel[blocks, threads](*args)


def device(bits: np.ndarray):
    """Patterns copied to the device."""
    return cuda.to_device(np.ascontiguousarray(bits, np.uint32))


def host(answers) -> np.ndarray:
    """Device answers copied to the host."""
    return answers.copy_to_host()


def encode_e2m1(bits, tie: str):
    """``fp4ref.encode_e2m1`` on the cuda backend, device array in, device array out."""
    return api.encode_e2m1(bits.view(np.float32), tie, backend="cuda")


def encode_e4m3(bits, tie: str, saturate: bool):
    """``fp4ref.encode_e4m3`` on the cuda backend."""
    return api.encode_e4m3(bits.view(np.float32), tie, saturate, backend="cuda")


def element_code(bits, tie: str, zero_sign: str):
    """The shared element encoder at divisor 1, as a device function."""
    out = cuda.device_array(bits.size, np.uint8)
    _launch(_element_codes, bits.size, bits.view(np.float32), api.rounding_rules().index(tie),
            scale_rules.ZERO_SIGNS.index(zero_sign), out)
    return out


def mx_scale(bits, rule: str):
    """The shared MXFP4 scale rule, as a device function."""
    out = cuda.device_array(bits.size, np.uint8)
    _launch(_mx_scales, bits.size, bits.view(np.float32), scale_rules.MX_RULES.index(rule), out)
    return out


def nv_scale(bits, recipe: str, tensor: float, clamp: tuple | None, zero_scale: float | None):
    """The shared NVFP4 block-scale recipe, as a device function."""
    low, high = clamp or (1.0, 0.0)  # low > high: no clamp
    out = cuda.device_array(bits.size, np.uint8)
    _launch(_nv_scales, bits.size, bits.view(np.float32), scale_rules.NV_RECIPES.index(recipe),
            float(tensor), float(low), float(high),
            -1.0 if zero_scale is None else float(zero_scale), out)
    return out


def run_full(sweep, steps: Steps, progress: Progress, chunk: int = CHUNK):
    """(disagreements, first few) of ``sweep`` over all its patterns, made and judged on
    the device."""
    starts, values = cuda.to_device(steps.starts), cuda.to_device(steps.values)
    count = cuda.to_device(np.zeros(1, np.int64))
    found = cuda.to_device(np.zeros((EXAMPLES, 3), np.int64))
    bits = cuda.device_array(min(chunk, sweep.size), np.uint32)
    for lo in range(sweep.lo, sweep.hi, chunk):
        n = min(chunk, sweep.hi - lo)
        part = bits[:n]
        _launch(_iota, n, np.uint32(lo), part)
        got = sweep.kernel(sys.modules[__name__], part)
        _launch(_judge, n, got, np.int64(lo), starts, values, count, found)
        progress.update(lo + n - sweep.lo)
    cuda.synchronize()
    total = int(count.copy_to_host()[0])
    examples = sorted(tuple(int(v) for v in row) for row in found.copy_to_host()[:total])
    return total, examples
