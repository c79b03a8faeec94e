"""``fp4ref bench dequantize --backend cuda``: MXFP4 and NVFP4 dequantization on the GPU.

Each figure is the best of ``--repeat`` timings (CUDA events) of ten back-to-back calls,
after a warm-up; the matrix has ``--size`` rows and enough columns for 1 GiB of output. The
roofline is a device-to-device copy (``cuMemcpyDtoD``) moving the same number of bytes
(read + written) in the same run, beside a memset of the output (writes only); the
comparisons are the same dequantization written with torch tensor ops and, for MXFP4,
torchao's ``to_dtype`` eager and compiled, where installed, each with whether its bits are
fp4ref's.
"""

from __future__ import annotations

import argparse

import numpy as np

from .. import api, backends
from .._checks import OUTPUT_DTYPES
from .._table import format_table
from . import gpu_peers
from .timing import device_copy_time, device_name, gpu_time

OUTPUT_BYTES = 1 << 30
E2M1 = [0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6]


def _torch_dequantize(torch, fmt: str, dtype: str, tensor_scale: float):
    """The dequantization as it is commonly written with torch tensor ops."""
    lut = torch.tensor(E2M1, dtype=torch.float32, device="cuda")
    block = 32 if fmt == "mxfp4" else 16
    out_dtype = getattr(torch, dtype)

    def run(blocks, scales):
        values = torch.stack((lut[(blocks & 15).long()], lut[(blocks >> 4).long()]), dim=-1)
        values = values.reshape(blocks.shape[0], -1, block)
        if fmt == "mxfp4":
            factor = torch.exp2(scales.float() - 127)
            result = values * factor[..., None]
        else:
            factor = scales.view(torch.float8_e4m3fn).float()
            result = (values * factor[..., None]) * tensor_scale
        return result.reshape(blocks.shape[0], -1).to(out_dtype)

    return run


def _case(engine, torch, fmt: str, dtype: str, rows: int, repeat: int) -> list[list[str]]:
    """Table rows for one format and output dtype: the copy, a memset of the output, the
    backend's kernel into a reused output, the public call allocating it, torch ops."""
    from numba import cuda
    from numba.cuda.cudadrv import driver

    block, scale_format = (32, "e8m0") if fmt == "mxfp4" else (16, "e4m3")
    tensor_scale = np.float32(1.0 if fmt == "mxfp4" else 2.0**-7)
    itemsize = OUTPUT_DTYPES[dtype].itemsize
    cols = OUTPUT_BYTES // (rows * itemsize)
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (rows, cols // 2), dtype=np.uint8)
    low, high = (118, 136) if fmt == "mxfp4" else (0x30, 0x7E)  # typical, finite scales
    scales = rng.integers(low, high, (rows, cols // block), dtype=np.uint8)
    d_blocks, d_scales = cuda.to_device(blocks), cuda.to_device(scales)
    raw = np.uint32 if itemsize == 4 else np.uint16
    out = cuda.device_array((rows, cols), raw)
    traffic = blocks.nbytes + scales.nbytes + out.nbytes
    roof = device_copy_time(traffic, repeat)
    memset = gpu_time(lambda: driver.device_memset(out, 0, out.nbytes), repeat)  # before out
    flat_blocks, flat_scales = d_blocks.reshape(-1, block // 2), d_scales.reshape(-1)
    bits = out.reshape(-1, block)
    seconds = gpu_time(lambda: engine.dequantize(
        flat_blocks, flat_scales, scale_format, tensor_scale, "low-first", dtype, bits), repeat)
    allocating = gpu_time(lambda: api.dequantize(
        d_blocks, d_scales, format=fmt, tensor_scale=None if fmt == "mxfp4" else tensor_scale,
        dtype=dtype), repeat)
    label = f"{fmt} -> {dtype}, {rows} x {cols}"
    table = [[label, "device copy (roofline)", f"{roof * 1e3:.3f}",
              f"{traffic / roof / 1e9:.0f}", "1.00"],
             [label, "memset of the output alone (writes only)", f"{memset * 1e3:.3f}",
              f"{out.nbytes / memset / 1e9:.0f}", f"{roof / memset:.2f}"],
             [label, "fp4ref cuda, out= reused", f"{seconds * 1e3:.3f}",
              f"{traffic / seconds / 1e9:.0f}", f"{roof / seconds:.2f}"],
             [label, "fp4ref.dequantize, output allocated", f"{allocating * 1e3:.3f}",
              f"{traffic / allocating / 1e9:.0f}", f"{roof / allocating:.2f}"]]
    if torch is None:
        return [*table, [label, "torch ops", "not installed", "", ""]]
    t_blocks, t_scales = torch.as_tensor(d_blocks), torch.as_tensor(d_scales)
    run = _torch_dequantize(torch, fmt, dtype, float(tensor_scale))
    t = gpu_time(lambda: run(t_blocks, t_scales), max(1, repeat // 2))
    as_int = torch.int32 if itemsize == 4 else torch.int16
    same = torch.equal(run(t_blocks, t_scales).view(as_int), torch.as_tensor(out).view(as_int))
    table.append([label, f"torch ops (bit-identical: {'yes' if same else 'NO'})",
                  f"{t * 1e3:.3f}", f"{traffic / t / 1e9:.0f}", f"{roof / t:.2f}"])
    if fmt == "mxfp4":
        table += _torchao_rows(torch, label, t_blocks, t_scales, dtype, out, traffic, roof,
                               repeat)
    return table


def _torchao_rows(torch, label, blocks, scales, dtype, out, traffic, roof, repeat):
    """torchao's MX decode (eager, compiled) on the same device data, bits against fp4ref's
    ``out``."""
    why = gpu_peers.missing("torchao.prototype.mx_formats.mx_tensor")
    if why:
        return [[label, "torchao to_dtype", "not importable", "", why]]
    rows = []
    as_int = torch.int32 if out.dtype.itemsize == 4 else torch.int16
    ours = torch.as_tensor(out).view(as_int)
    for mode, run in gpu_peers.torchao_mx_dequantizers(blocks, scales, dtype).items():
        try:
            t = gpu_time(run, max(1, repeat // 2))
            same = torch.equal(run().view(as_int), ours)
        except Exception as error:  # a peer that fails here is reported, not fatal
            rows.append([label, f"torchao to_dtype {mode}", "failed", "",
                         f"{type(error).__name__}: {error}"[:80]])
            continue
        rows.append([label, f"torchao to_dtype {mode} (bit-identical: "
                            f"{'yes' if same else 'NO'})", f"{t * 1e3:.3f}",
                     f"{traffic / t / 1e9:.0f}", f"{roof / t:.2f}"])
    return rows


def bench_dequantize_cuda(args: argparse.Namespace) -> int:
    """MXFP4 and NVFP4 dequantization with 1 GiB of output, against the copy roofline."""

    try:
        import torch
    except ImportError:
        torch = None
    engine = backends.get("cuda")
    table = []
    for fmt in ("mxfp4", "nvfp4"):
        for dtype in ("float32", "bfloat16"):
            table += _case(engine, torch, fmt, dtype, args.size or 8192, args.repeat)
            if torch is not None:
                torch.cuda.empty_cache()
    print(f"dequantize on {device_name()}; 1 GiB of output each")
    print(format_table(["case", "implementation", "ms", "GB/s moved", "ratio to copy"],
                       table))
    return 0
