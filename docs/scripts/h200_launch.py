# ruff: noqa  (a measuring script run on the lent GPU, 2026-12-04; docs/benchmarks.md)
"""Public calls on 1 GiB with launch.FAST off / on (same process), bytes compared; host time a
call on tiny inputs, off / on."""
import time, warnings
import numpy as np, torch
from numba import cuda
import fp4ref
from fp4ref.kernels.cuda import launch as launching
from fp4ref.bench.timing import gpu_time, device_copy_time
warnings.simplefilter("ignore")
rows = 8192
g = torch.Generator(device="cuda").manual_seed(0)
x = torch.randn(rows, 32768, device="cuda", generator=g)
xn = cuda.as_cuda_array(x)
cases = []
for fmt, dtype in (("mxfp4", "float32"), ("mxfp4", "bfloat16"), ("nvfp4", "float32"), ("nvfp4", "bfloat16")):
    block = 32 if fmt == "mxfp4" else 16
    itemsize = 4 if dtype == "float32" else 2
    cols = (1 << 30) // (rows * itemsize)
    b = torch.randint(0, 256, (rows, cols // 2), dtype=torch.uint8, device="cuda", generator=g)
    lo, hi = (118, 136) if fmt == "mxfp4" else (0x30, 0x7E)
    s = torch.randint(lo, hi, (rows, cols // block), dtype=torch.uint8, device="cuda", generator=g)
    traffic = b.numel() + s.numel() + rows * cols * itemsize
    ts = None if fmt == "mxfp4" else np.float32(2.0**-7)
    bn, sn = cuda.as_cuda_array(b), cuda.as_cuda_array(s)
    cases.append((f"dequantize {fmt}->{dtype} allocating, torch", traffic,
                  lambda b=b, s=s, fmt=fmt, ts=ts, dtype=dtype: fp4ref.dequantize(b, s, format=fmt, tensor_scale=ts, dtype=dtype)))
    cases.append((f"dequantize {fmt}->{dtype} allocating, numba", traffic,
                  lambda b=bn, s=sn, fmt=fmt, ts=ts, dtype=dtype: fp4ref.dequantize(b, s, format=fmt, tensor_scale=ts, dtype=dtype)))
for fmt, block in (("mxfp4", 32), ("nvfp4", 16)):
    traffic = x.nbytes + x.numel() // 2 + x.numel() // block
    cases.append((f"quantize {fmt} OCP, torch", traffic, lambda fmt=fmt: fp4ref.quantize(x, format=fmt)))
    cases.append((f"quantize {fmt} OCP, numba", traffic, lambda fmt=fmt: fp4ref.quantize(xn, format=fmt)))
cases.append(("quantize mxfp4 torchao-floor, torch", x.nbytes + x.numel() // 2 + x.numel() // 32, lambda: fp4ref.quantize(x, format="mxfp4", profile="torchao-floor")))
cases.append(("quantize nvfp4 torchao-floor given scale, torch", x.nbytes + x.numel() // 2 + x.numel() // 16, lambda: fp4ref.quantize(x, format="nvfp4", profile="torchao-floor", tensor_scale=0.0021676747)))
roofs = {}
for name, traffic, call in cases:
    if traffic not in roofs:
        roofs[traffic] = device_copy_time(traffic, 5)
    res, outs = [], []
    for fast in (False, True, False, True):
        launching.FAST = fast
        res.append(gpu_time(call, 5))
        if len(outs) < 2:
            r = call()
            arrays = (r,) if not hasattr(r, "blocks") else (r.blocks, r.scales)
            outs.append([t.view(torch.uint8).cpu().numpy() if torch.is_tensor(t) else t.copy_to_host().view(np.uint8) for t in arrays])
    same = all(np.array_equal(a.view(np.uint8), b.view(np.uint8)) for a, b in zip(*outs))
    roof = roofs[traffic]
    print(f"{name:48s} copy {roof*1e3:.3f} ms | numba launch {res[0]*1e3:.3f}, {res[2]*1e3:.3f} ({roof/res[0]:.2f}, {roof/res[2]:.2f}) | short launch {res[1]*1e3:.3f}, {res[3]*1e3:.3f} ({roof/res[1]:.2f}, {roof/res[3]:.2f}) | same bytes {same}")
tiny = torch.randn(4, 64, device="cuda")
q = fp4ref.quantize(tiny, format="mxfp4")
for name, call in (("quantize mxfp4 torch", lambda: fp4ref.quantize(tiny, format="mxfp4")),
                   ("quantize nvfp4 torch", lambda: fp4ref.quantize(tiny, format="nvfp4")),
                   ("dequantize mxfp4 torch", lambda: fp4ref.dequantize(q.blocks, q.scales, format="mxfp4"))):
    for fast in (False, True):
        launching.FAST = fast
        for _ in range(50): call()
        cuda.synchronize(); start = time.perf_counter()
        for _ in range(1000): call()
        cuda.synchronize()
        print(f"host {name}, {'short' if fast else 'numba'} launch: {(time.perf_counter() - start) * 1e3:.1f} us a call")
