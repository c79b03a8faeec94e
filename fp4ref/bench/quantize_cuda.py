"""``fp4ref bench quantize --backend cuda``: MXFP4 and NVFP4 quantization on the GPU.

A ``--size`` x (1 GiB / 4 / size) float32 N(0, 1) matrix on the device (1 GiB of input).
Each figure is the best of ``--repeat`` CUDA-event timings of ten back-to-back calls after
a warm-up (:func:`.timing.gpu_time`); the roofline is a device-to-device copy
moving the same bytes (read + written) in the same run. The kernel rows write into
preallocated outputs, as the copy does; the ``fp4ref.quantize`` rows allocate theirs. The
optimal searches are compared with the numba CPU backend on ``--peer-rows`` rows of the
same matrix (scaled up), whose output bytes must equal the GPU's. Where torch is installed,
the public calls are timed beside torchao's quantizers (eager and ``torch.compile``d) and
qwantize's Triton kernels where those import (:mod:`.gpu_peers`), with whether each gives
fp4ref's bytes under the profile describing it.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from .. import backends
from .._table import format_table
from ..kernels.options import QuantizeOptions
from ..profiles import get as get_profile
from ..quantize import quantize
from .timing import device_copy_time, device_name, gpu_time

INPUT_BYTES = 1 << 30


def _matrix(rows: int, cols: int):
    """(torch tensor or None, numba device array) of one float32 N(0, 1) device matrix,
    made on the device by torch where installed."""
    from numba import cuda

    try:
        import torch
    except ImportError:
        rng = np.random.default_rng(0)
        return None, cuda.to_device(rng.standard_normal((rows, cols), np.float32))
    generator = torch.Generator(device="cuda").manual_seed(0)
    tensor = torch.randn(rows, cols, device="cuda", generator=generator)
    return tensor, cuda.as_cuda_array(tensor)


def _host(array) -> np.ndarray:
    return array.copy_to_host() if hasattr(array, "copy_to_host") else np.asarray(array)


def bench_quantize_cuda(args: argparse.Namespace) -> int:
    """OCP MXFP4 / NVFP4 quantization of 1 GiB float32 against the copy roofline, the
    public calls beside the GPU peers, and the optimal searches against the numba CPU
    backend."""
    from numba import cuda

    engine = backends.get("cuda")
    rows = args.size or 8192
    cols = INPUT_BYTES // 4 // rows
    cols -= cols % 32
    tensor, x = _matrix(rows, cols)
    flat = x.reshape(-1)
    repeat = args.repeat
    table = []
    for fmt, block in (("mxfp4", 32), ("nvfp4", 16)):
        traffic = x.nbytes + x.size // 2 + x.size // block
        roof = device_copy_time(traffic, repeat)
        ocp = get_profile("ocp")
        label = f"{fmt} OCP, {rows} x {cols} float32"
        table.append([label, "device copy (roofline)", f"{roof * 1e3:.3f}", "1.00"])
        count = x.size // block
        out = (cuda.device_array(count, np.uint8), cuda.device_array((count, block // 2),
                                                                      np.uint8))
        options = QuantizeOptions(fmt, "floor" if fmt == "mxfp4" else "modelopt", ocp,
                                  1.0 / 2688)
        cases = [("kernel", lambda options=options, out=out, block=block: engine.quantize(
            flat, options, np.zeros((0, block, block)), out=out))]
        if fmt == "nvfp4":
            cases.append(("tensor amax pass alone", lambda: engine.largest_magnitude(flat)))
        cases.append(("fp4ref.quantize(device x)" + (" incl. tensor amax pass"
                                                     if fmt == "nvfp4" else ""),
                      lambda fmt=fmt: quantize(x, format=fmt)))
        if tensor is not None:
            cases.append(("fp4ref.quantize(torch x)" + (" incl. tensor amax pass"
                                                        if fmt == "nvfp4" else ""),
                          lambda fmt=fmt: quantize(tensor, format=fmt)))
        for name, function in cases:
            seconds = gpu_time(function, repeat)
            table.append([label, name, f"{seconds * 1e3:.3f}", f"{roof / seconds:.2f}"])
    print(f"quantize on {device_name()}; 1 GiB of float32 input")
    print(format_table(["case", "implementation", "ms", "ratio to copy"], table))
    if tensor is None:
        print("\npeers: torch is not installed: not compared")
    else:
        _compare_peers(tensor, args.repeat)
    _compare_optimal(x, rows, cols, args)
    return 0


def _compare_peers(t, repeat: int) -> None:
    """fp4ref's public calls beside torchao's and qwantize's on the same device matrix (the
    torch tensor ``t``), every output allocated by the call, with whether the bytes are
    fp4ref's."""
    import torch

    from . import gpu_peers

    rows = t.shape[0]
    amax = t.abs().max()
    tensor_scale = float(amax.to(torch.float32) / (448.0 * 6.0))  # torchao's, in float32
    mx_traffic = t.nbytes + t.numel() // 2 + t.numel() // 32
    nv_traffic = t.nbytes + t.numel() // 2 + t.numel() // 16
    roofs = {"mxfp4": device_copy_time(mx_traffic, repeat),
             "nvfp4": device_copy_time(nv_traffic, repeat)}
    ours = {
        "mxfp4 OCP": ({"format": "mxfp4"}, "same bytes: n/a"),
        "mxfp4 torchao-floor": ({"format": "mxfp4", "profile": "torchao-floor"}, None),
        "mxfp4 qwantize": ({"format": "mxfp4", "profile": "qwantize"}, None),
        # qwantize's Triton kernel takes the exponent bits (ue8m0_snap_asm), not the
        # reference's float32 floor(log2f(amax) - 2 + 127), which rounds up to the next
        # byte within a few ulps below a power of two (docs/findings.md 26)
        "mxfp4 qwantize, scale_rule='floor'": (
            {"format": "mxfp4", "profile": "qwantize", "scale_rule": "floor"}, None),
        "nvfp4 OCP, tensor amax pass": ({"format": "nvfp4"}, "same bytes: n/a"),
        "nvfp4 torchao-floor, tensor scale given": (
            {"format": "nvfp4", "profile": "torchao-floor", "tensor_scale": tensor_scale},
            None),
        "mxfp4 optimal (qwantize)": (
            {"format": "mxfp4", "profile": "qwantize", "scale_rule": "optimal"}, None),
        "nvfp4 optimal (qwantize)": (
            {"format": "nvfp4", "profile": "qwantize", "scale_rule": "optimal"}, None),
    }
    table, results = [], {}
    for name, (options, note) in ours.items():
        fmt = options["format"]
        seconds = gpu_time(lambda options=options: quantize(t, **options), repeat)
        q = quantize(t, **options)
        results[name] = (q.scales.reshape(rows, -1), gpu_peers.unpacked(q.blocks))
        table.append([name, "fp4ref.quantize", f"{seconds * 1e3:.3f}",
                      f"{roofs[fmt] / seconds:.2f}", note or ""])
    peers = []
    why = gpu_peers.missing("torchao.prototype.mx_formats.nvfp4_tensor")
    if why:
        table.append(["mxfp4/nvfp4", "torchao", "not importable", "", why])
    else:
        for name, call in gpu_peers.torchao_quantizers(t, tensor_scale).items():
            fmt, mode = name.split()
            ref = "mxfp4 torchao-floor" if fmt == "mxfp4" else (
                "nvfp4 torchao-floor, tensor scale given")
            peers.append((ref, f"torchao {'to_mx' if fmt == 'mxfp4' else 'nvfp4_quantize'} "
                               f"{mode}", call, lambda r: (r[0], gpu_peers.unpacked(r[1]))))
    why = gpu_peers.missing("qwantize") or gpu_peers.missing("triton")
    if why:
        table.append(["mxfp4/nvfp4", "qwantize Triton", "not importable", "", why])
    else:
        for name, call in gpu_peers.qwantize_quantizers(t).items():
            fmt, kind = name.split()
            ref = (f"{fmt} optimal (qwantize)" if kind == "optimal"
                   else "mxfp4 qwantize, scale_rule='floor'")
            peers.append((ref, f"qwantize {fmt}_{kind}_triton", call,
                          lambda r, fmt=fmt: gpu_peers.qwantize_bytes(fmt, *r, rows)))
    for ref, label, call, to_bytes in peers:
        fmt = ref.split()[0]
        try:
            seconds = gpu_time(call, max(1, repeat // 2))
            scales, codes = to_bytes(call())
        except Exception as error:  # a peer that fails here is reported, not fatal
            table.append([ref, label, "failed", "", f"{type(error).__name__}: {error}"[:80]])
            continue
        differ, count = gpu_peers.differing_blocks(fmt, scales, codes, *results[ref])
        same = "yes" if differ == 0 else f"NO: {differ} of {count} blocks differ"
        table.append([ref, label, f"{seconds * 1e3:.3f}", f"{roofs[fmt] / seconds:.2f}",
                      f"same bytes as fp4ref: {same}"])
        torch.cuda.empty_cache()
    print(f"\npublic calls on the same {rows} x {t.shape[1]} float32 device matrix, outputs "
          f"allocated by each call (torchao is given fp4ref-equal tensor scale "
          f"{tensor_scale:.6g} = amax / 2688)")
    print(format_table(["case", "implementation", "ms", "ratio to copy", "bytes"], table))


def _compare_optimal(x, rows: int, cols: int, args: argparse.Namespace) -> None:
    """The optimal searches (profile qwantize) on the GPU against the numba CPU backend on a
    row subset, and the OCP recipes' bytes against the CPU on the same subset."""
    subset = max(1, min(rows, args.peer_rows))
    host = _host(x[:subset])
    table = []
    for fmt, profile, rule in (("mxfp4", "ocp", None), ("nvfp4", "ocp", None),
                               ("mxfp4", "qwantize", "optimal"), ("nvfp4", "qwantize", "optimal")):
        options = {"format": fmt, "profile": profile, "scale_rule": rule}
        gpu = gpu_time(lambda options=options: quantize(x, **options), max(1, args.repeat // 2))
        quantize(host, backend="numba", **options)  # compile and allocate first
        start = time.perf_counter()
        cpu_q = quantize(host, backend="numba", **options)
        cpu = (time.perf_counter() - start) * rows / subset
        gpu_q = quantize(x[:subset], **options)
        if fmt == "nvfp4" and profile == "ocp":  # the subset's own amax: pass the full one
            full = quantize(x, **options)
            cpu_q = quantize(host, backend="numba", tensor_scale=full.tensor_scale, **options)
            gpu_q = quantize(x[:subset], tensor_scale=full.tensor_scale, **options)
        same = (np.array_equal(_host(gpu_q.blocks), cpu_q.blocks)
                and np.array_equal(_host(gpu_q.scales), cpu_q.scales))
        table.append([f"{fmt} {rule or 'recipe'} ({profile})", f"{gpu * 1e3:.2f}",
                      f"{x.nbytes / gpu / 1e9:.1f}", f"{cpu * 1e3:.0f}", f"{cpu / gpu:.0f}x",
                      "yes" if same else "NO"])
    threads = os.environ.get("NUMBA_NUM_THREADS") or str(os.cpu_count())
    print(f"\nGPU vs the numba CPU backend ({threads} CPU threads; CPU timed on {subset} rows "
          f"and scaled to {rows}; bytes compared on those rows)")
    print(format_table(["quantization", "GPU ms", "GPU GB/s in", "CPU ms", "speed-up",
                        "same bytes"], table))
