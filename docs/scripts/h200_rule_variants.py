# ruff: noqa  (a measuring script run on the lent GPU, 2026-12-04; docs/benchmarks.md)
"""Rule-kernel variants (old / new) on 1 GiB, bytes compared; host time a call on tiny inputs."""
import time, warnings
import numpy as np, torch
from numba import cuda
import fp4ref
from fp4ref import backends
from fp4ref.kernels.cuda import quantize as qk
from fp4ref.kernels.options import QuantizeOptions
from fp4ref.profiles import get as get_profile
from fp4ref.bench.timing import gpu_time, device_copy_time
warnings.simplefilter("ignore")
engine = backends.get("cuda")
rows, cols = 8192, 32768
g = torch.Generator(device="cuda").manual_seed(0)
t = torch.randn(rows, cols, device="cuda", generator=g)
x = cuda.as_cuda_array(t).reshape(-1)
DEFAULT = dict(qk.RULE_SHAPE)
for fmt, block, variants in (("mxfp4", 32, [("by_rounding", False), ("by_rounding", True)]),
                             ("nvfp4", 16, [("by_bounds", False), ("by_bounds", True)])):
    traffic = x.nbytes + x.size // 2 + x.size // block
    roof = device_copy_time(traffic, 5)
    count = x.size // block
    ref = None
    for rep in range(2):
        for name, value in variants:
            qk.RULE_SHAPE.clear(); qk.RULE_SHAPE.update({**DEFAULT, name: value})
            out = (cuda.device_array(count, np.uint8), cuda.device_array((count, block // 2), np.uint8))
            options = QuantizeOptions(fmt, "floor" if fmt == "mxfp4" else "modelopt", get_profile("ocp"), 1.0 / 2688)
            call = lambda: engine.quantize(x, options, np.zeros((0, block, block)), out=out)
            s = gpu_time(call, 5)
            got = (out[0].copy_to_host(), out[1].copy_to_host())
            if ref is None:
                ref = got
            same = np.array_equal(ref[0], got[0]) and np.array_equal(ref[1], got[1])
            print(f"{fmt} kernel {name}={value}: {s*1e3:.3f} ms, copy {roof*1e3:.3f}, ratio {roof/s:.2f}, same bytes as the first: {same}")
    qk.RULE_SHAPE.clear(); qk.RULE_SHAPE.update(DEFAULT)
    for kind, arg in (("numba", cuda.as_cuda_array(t)), ("torch", t)):
        s = gpu_time(lambda: fp4ref.quantize(arg, format=fmt), 5)
        print(f"{fmt} fp4ref.quantize({kind} x): {s*1e3:.3f} ms, ratio {roof/s:.2f}")
for prof in ("torchao-floor", "qwantize"):
    s = gpu_time(lambda: fp4ref.quantize(t, format="mxfp4", profile=prof), 5)
    print(f"mxfp4 fp4ref.quantize(torch x, profile={prof}): {s*1e3:.3f} ms")
# host time a call: tiny inputs, GPU work negligible
tiny = torch.randn(4, 64, device="cuda"); tn = cuda.as_cuda_array(tiny)
qb = fp4ref.quantize(tiny, format="mxfp4"); qn = fp4ref.quantize(tiny, format="nvfp4")
@cuda.jit
def nothing(a, b, c, d):
    pass
a4 = [cuda.device_array(64, np.uint32) for _ in range(4)]
calls = {"empty numba kernel, 4 array args": lambda: nothing[1, 32](*a4),
         "dequantize mxfp4 torch": lambda: fp4ref.dequantize(qb.blocks, qb.scales, format="mxfp4"),
         "dequantize nvfp4 torch": lambda: fp4ref.dequantize(qn.blocks, qn.scales, format="nvfp4", tensor_scale=qn.tensor_scale),
         "quantize mxfp4 numba": lambda: fp4ref.quantize(tn, format="mxfp4"),
         "quantize mxfp4 torch": lambda: fp4ref.quantize(tiny, format="mxfp4"),
         "quantize nvfp4 torch (amax pass, sync)": lambda: fp4ref.quantize(tiny, format="nvfp4"),
         "torch.empty 1 GiB": lambda: torch.empty(1 << 28, device="cuda")}
for name, call in calls.items():
    for _ in range(50):
        call()
    cuda.synchronize(); start = time.perf_counter()
    for _ in range(1000):
        call()
    cuda.synchronize()
    print(f"host {name}: {(time.perf_counter() - start) * 1e3:.1f} us a call")
