# ruff: noqa  (a measuring script run on the lent GPU; its lambdas run inside their loop step)
"""The public calls a user writes, on 1 GiB device arrays, against a device copy of the same
bytes in the same process: fp4ref.dequantize (output allocated) for the four cases and
fp4ref.quantize (OCP MXFP4, and NVFP4 with its tensor-amax pass) on a torch tensor and on
the numba array. Runs against whichever fp4ref is on the path (before / after)."""

import sys
import time

import numpy as np
import torch
from numba import cuda

import fp4ref
from fp4ref.bench.timing import device_copy_time, gpu_time

REPEAT = 5
tag = sys.argv[1] if len(sys.argv) > 1 else ""
rows = 8192
cases = (("mxfp4", "float32"), ("mxfp4", "bfloat16"), ("nvfp4", "float32"),
         ("nvfp4", "bfloat16"))
for fmt, dtype in cases if "quantize-only" not in sys.argv else ():
    block = 32 if fmt == "mxfp4" else 16
    itemsize = 4 if dtype == "float32" else 2
    cols = (1 << 30) // (rows * itemsize)
    rng = np.random.default_rng(0)
    blocks = cuda.to_device(rng.integers(0, 256, (rows, cols // 2), dtype=np.uint8))
    low, high = (118, 136) if fmt == "mxfp4" else (0x30, 0x7E)
    scales = cuda.to_device(rng.integers(low, high, (rows, cols // block), dtype=np.uint8))
    traffic = blocks.nbytes + scales.nbytes + rows * cols * itemsize
    roof = device_copy_time(traffic, REPEAT)
    ts = None if fmt == "mxfp4" else np.float32(2.0**-7)
    call = lambda: fp4ref.dequantize(blocks, scales, format=fmt, tensor_scale=ts, dtype=dtype)
    t = gpu_time(call, REPEAT)
    start = time.perf_counter()
    for _ in range(20):
        call()
    host = (time.perf_counter() - start) / 20
    cuda.synchronize()
    print(f"{tag} dequantize {fmt}->{dtype} allocating: {t * 1e3:.3f} ms, copy {roof * 1e3:.3f} "
          f"ms, ratio {roof / t:.2f}; host {host * 1e3:.3f} ms a call", flush=True)
    del blocks, scales
g = torch.Generator(device="cuda").manual_seed(0)
x = torch.randn(8192, 32768, device="cuda", generator=g)
nx = cuda.as_cuda_array(x)
for fmt, block in (("mxfp4", 32), ("nvfp4", 16)):
    traffic = x.nbytes + x.numel() // 2 + x.numel() // block
    roof = device_copy_time(traffic, REPEAT)
    for kind, arr in (("numba", nx), ("torch", x)):
        t = gpu_time(lambda: fp4ref.quantize(arr, format=fmt), REPEAT)
        print(f"{tag} quantize {fmt} OCP ({kind} x){' incl. tensor amax' if fmt == 'nvfp4' else ''}:"
              f" {t * 1e3:.3f} ms, copy {roof * 1e3:.3f} ms, ratio {roof / t:.2f}", flush=True)
