# ruff: noqa  (a measuring script run on the lent GPU, 2026-12-04; docs/benchmarks.md)
import time, cProfile, pstats, io, warnings
import numpy as np, torch
from numba import cuda
import fp4ref
from fp4ref import buffers, _device
warnings.simplefilter("ignore")
tiny = torch.randn(4, 64, device="cuda"); tn = cuda.as_cuda_array(tiny)
big = cuda.device_array(1 << 20, np.uint8)
q = fp4ref.quantize(tiny, format="mxfp4")
def per_call(f, n=2000):
    for _ in range(50): f()
    cuda.synchronize(); s = time.perf_counter()
    for _ in range(n): f()
    cuda.synchronize(); return (time.perf_counter() - s) / n * 1e6
ops = {
 "cuda.as_cuda_array(torch)": lambda: cuda.as_cuda_array(tiny),
 "numba .reshape(-1)": lambda: tn.reshape(-1),
 "numba .view(uint32)": lambda: tn.view(np.uint32),
 "numba [:128] slice": lambda: big[:128],
 "buffers.device_empty small": lambda: buffers.device_empty((4, 32), np.uint8),
 "buffers.device_empty 1 MiB+": lambda: buffers.device_empty((1 << 21,), np.uint8),
 "cuda.device_array small": lambda: cuda.device_array(128, np.uint8),
 "_device.checked(torch)": lambda: _device.checked("x", tiny, (np.dtype("float32"),)),
 "cuda.get_current_device()": lambda: cuda.get_current_device(),
 "torch.as_tensor(numba)": lambda: torch.as_tensor(tn, device=tiny.device),
 "tiny.__cuda_array_interface__": lambda: tiny.__cuda_array_interface__,
 "fp4ref.quantize mxfp4 torch": lambda: fp4ref.quantize(tiny, format="mxfp4"),
 "fp4ref.dequantize mxfp4 torch": lambda: fp4ref.dequantize(q.blocks, q.scales, format="mxfp4"),
}
for name, f in ops.items():
    print(f"{name:34s} {per_call(f):8.1f} us")
for label, f in (("quantize", lambda: fp4ref.quantize(tiny, format="mxfp4")), ("dequantize", lambda: fp4ref.dequantize(q.blocks, q.scales, format="mxfp4"))):
    pr = cProfile.Profile(); pr.enable()
    for _ in range(500): f()
    pr.disable()
    s = io.StringIO(); st = pstats.Stats(pr, stream=s); st.sort_stats("tottime").print_stats(30)
    st.sort_stats("cumulative").print_stats(45)
    print("=====", label); print(s.getvalue())
