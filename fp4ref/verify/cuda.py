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

from .. import _device, api
from ..kernels import elements, scale_rules
from ..kernels.cuda import elements as _gpu_elements  # noqa: F401 (the GPU's count_below)
from ..kernels.options import code, nvfp4_recipe_options
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
        out[i] = elements.element_code(x[i], one, True, tie, zero_sign)


@cuda.jit
def _mx_scales(x, rule, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = scale_rules.mx_scale(float(x[i]), rule)


@cuda.jit
def _nv_scales(x, recipe, tensor, clamp_low, clamp_high, zero_block, zero_scale, out):
    for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
        out[i] = scale_rules.nvfp4_block_scale(float(x[i]), recipe, tensor, clamp_low,
                                               clamp_high, zero_block, zero_scale)


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


@cuda.jit
def _consecutive_blocks(first, pin, out):
    per = out.shape[1] - 1
    for b in range(cuda.grid(1), out.shape[0], cuda.gridsize(1)):
        for j in range(per):
            out[b, j] = first + b * per + j
        out[b, per] = pin


@cuda.jit
def _consecutive_answers(scales, packed, per, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        b, j = i // per, i % per
        out[i] = (np.uint16(scales[b]) << 8) | ((packed[b, j >> 1] >> (4 * (j & 1))) & 0xF)


def _launch(kernel, n, *args):
    _device.quiet_launches()  # small sweeps launch small grids on purpose
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
    _launch(_element_codes, bits.size, bits.view(np.float32), code("rounding", tie),
            code("zero_sign", zero_sign), out)
    return out


def mx_scale(bits, rule: str):
    """The shared MXFP4 scale rule, as a device function."""
    out = cuda.device_array(bits.size, np.uint8)
    _launch(_mx_scales, bits.size, bits.view(np.float32), code("scale_rule", rule), out)
    return out


def nv_scale(bits, recipe: str, tensor: float, clamp: tuple | None, zero_scale: float | None):
    """The shared NVFP4 block-scale recipe, as a device function."""
    o = nvfp4_recipe_options(recipe, float(tensor), clamp, zero_scale)
    out = cuda.device_array(bits.size, np.uint8)
    _launch(_nv_scales, bits.size, bits.view(np.float32), o.nvfp4_recipe, o.tensor_operand,
            o.clamp_low, o.clamp_high, o.zero_block, o.zero_block_scale, out)
    return out


def quantize_blocks(bits, fmt: str, profile: str):
    """``fp4ref.quantize`` on device arrays over the quantizer blocks of the patterns
    (:func:`.cpu.quantize_blocks`; runs of whole consecutive blocks built on the device)."""
    from ..quantize import quantize
    from .cpu import quantizer_answers, quantizer_blocks
    from .sweeps import QUANTIZE_BLOCKS, quantize_profile

    per, pin = QUANTIZE_BLOCKS[fmt]
    first, last, n = int(bits[0]), int(bits[bits.size - 1]), bits.size
    consecutive = first % per == 0 and n % per == 0 and last - first == n - 1
    if consecutive:
        blocks = cuda.device_array((n // per, per + 1), np.uint32)
        _launch(_consecutive_blocks, n // per, np.uint32(first), np.uint32(pin), blocks)
        where = None
    else:
        host_blocks, where = quantizer_blocks(bits.copy_to_host(), per, pin)
        blocks = cuda.to_device(host_blocks)
    prof = quantize_profile(fmt, profile)
    given = 1.0 if fmt == "nvfp4" and prof.tensor_scale else None
    q = quantize(blocks.view(np.float32), format=fmt, profile=prof, backend="cuda",
                 tensor_scale=given)
    if not consecutive:
        return cuda.to_device(quantizer_answers(q.scales.copy_to_host(),
                                                q.blocks.copy_to_host(), per, where))
    out = cuda.device_array(n, np.uint16)
    _launch(_consecutive_answers, n, q.scales.reshape(q.scales.size), q.blocks, per, out)
    return out


def run_full(sweep, steps: Steps, progress: Progress, chunk: int = CHUNK):
    """(disagreements, first few) of ``sweep`` over all its patterns, made and judged on
    the device."""
    starts, values = cuda.to_device(steps.starts), cuda.to_device(steps.values)
    count = cuda.to_device(np.zeros(1, np.int64))
    found = cuda.to_device(np.zeros((EXAMPLES, 3), np.int64))
    chunk -= chunk % sweep.block  # whole quantizer blocks per call
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
