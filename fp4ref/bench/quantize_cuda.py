"""``fp4ref bench quantize --backend cuda``: MXFP4 and NVFP4 quantization on the GPU.

A ``--size`` x (1 GiB / 4 / size) float32 N(0, 1) matrix on the device (1 GiB of input).
Each figure is the best of ``--repeat`` CUDA-event timings of ten back-to-back calls after
a warm-up (:func:`.timing.gpu_time`); the roofline is a device-to-device copy
moving the same bytes (read + written) in the same run. The kernel rows write into
preallocated outputs, as the copy does; the ``fp4ref.quantize`` rows allocate theirs. The
optimal searches are compared with the numba CPU backend on ``--peer-rows`` rows of the
same matrix (scaled up), whose output bytes must equal the GPU's; qwantize's Triton
kernels are timed where importable.
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
    """A float32 N(0, 1) device matrix (made on the device by torch where installed)."""
    from numba import cuda

    try:
        import torch

        generator = torch.Generator(device="cuda").manual_seed(0)
        return cuda.as_cuda_array(torch.randn(rows, cols, device="cuda", generator=generator))
    except ImportError:
        rng = np.random.default_rng(0)
        return cuda.to_device(rng.standard_normal((rows, cols), np.float32))


def _host(array) -> np.ndarray:
    return array.copy_to_host() if hasattr(array, "copy_to_host") else np.asarray(array)


def _qwantize_triton() -> str:
    """What became of qwantize's Triton kernels here."""
    try:
        import qwantize  # noqa: F401
        import triton  # noqa: F401
    except ImportError as error:
        return f"not installed on this machine ({error.name} missing): not compared"
    return "importable, but fp4ref does not time it yet"


def bench_quantize_cuda(args: argparse.Namespace) -> int:
    """OCP MXFP4 / NVFP4 quantization of 1 GiB float32 against the copy roofline, and the
    optimal searches against the numba CPU backend."""
    from numba import cuda

    engine = backends.get("cuda")
    rows = args.size or 8192
    cols = INPUT_BYTES // 4 // rows
    cols -= cols % 32
    x = _matrix(rows, cols)
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
        cases.append(("fp4ref.quantize(device x)" + (" incl. tensor amax pass"
                                                     if fmt == "nvfp4" else ""),
                      lambda fmt=fmt: quantize(x, format=fmt)))
        for name, function in cases:
            seconds = gpu_time(function, repeat)
            table.append([label, name, f"{seconds * 1e3:.3f}", f"{roof / seconds:.2f}"])
    print(f"quantize on {device_name()}; 1 GiB of float32 input")
    print(format_table(["case", "implementation", "ms", "ratio to copy"], table))
    _compare_optimal(x, rows, cols, args)
    return 0


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
        quantize(host[:1], backend="numba", **options)  # compile first
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
    print(f"qwantize Triton kernels: {_qwantize_triton()}")
