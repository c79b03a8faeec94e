# ruff: noqa  (a measuring script run on the lent GPU; its lambdas run inside their loop step)
"""NVFP4 on the H200 (issue 19, 2026-12-04 night): the rule kernel's three ways to an
element's code (reciprocal, thresholds, division) and launch shapes, each against a device
copy of the same bytes in the same process with its bytes compared to the first variant's;
then ``fp4ref.quantize`` with its tensor-amax pass, the operand found on the device against
the host's operand (the call before this change), bytes compared; then the parts of that
call: the amax kernel, the tables kernel.

    python docs/scripts/h200_nvfp4.py
"""

import math
import time
import warnings

import numpy as np
import torch
from numba import cuda

import fp4ref
from fp4ref import backends
from fp4ref.bench.timing import device_copy_time, gpu_time
from fp4ref.kernels.cuda import quantize as qk
from fp4ref.kernels.options import QuantizeOptions
from fp4ref.profiles import get as get_profile

warnings.simplefilter("ignore")
REPEAT = 5
engine = backends.get("cuda")
g = torch.Generator(device="cuda").manual_seed(0)
t = torch.randn(8192, 32768, device="cuda", generator=g)
x = cuda.as_cuda_array(t).reshape(-1)
count = x.size // 16
traffic = x.nbytes + x.size // 2 + count
roof = device_copy_time(traffic, REPEAT)
NAME = cuda.get_current_device().name
NAME = NAME.decode() if isinstance(NAME, bytes) else NAME
print(f"{NAME}: copy of {traffic / 2**30:.3f} GiB "
      f"{roof * 1e3:.3f} ms", flush=True)
amax = float(t.abs().max())
operand = float(np.float32(amax / 2688.0))
DEFAULT = dict(qk.RULE_SHAPE)
FORMS = {"reciprocal": dict(by_reciprocal=True), "threshold": dict(by_reciprocal=False),
         "division": dict(by_reciprocal=False, by_threshold=False)}
VARIANTS = [(f"{form}", shape) for form, shape in FORMS.items()] + [
    ("reciprocal threads 256", dict(threads=256)), ("reciprocal threads 64", dict(threads=64)),
    ("reciprocal resident 4", dict(resident=4)), ("reciprocal resident 1", dict(resident=1)),
    ("reciprocal pipeline", dict(pipeline=True)), ("reciprocal .nc loads", dict(loads=".nc"))]
options = QuantizeOptions("nvfp4", "modelopt", get_profile("ocp"), operand)
reference = None
for round_ in range(2):
    for name, shape in VARIANTS:
        qk.RULE_SHAPE.clear(); qk.RULE_SHAPE.update({**DEFAULT, **shape})
        out = (cuda.device_array(count, np.uint8), cuda.device_array((count, 8), np.uint8))
        call = lambda: engine.quantize(x, options, np.zeros((0, 16, 16)), out=out)
        s = gpu_time(call, REPEAT)
        got = (out[0].copy_to_host(), out[1].copy_to_host())
        reference = reference or got
        same = np.array_equal(reference[0], got[0]) and np.array_equal(reference[1], got[1])
        print(f"round {round_} kernel {name:26}: {s * 1e3:.3f} ms, ratio {roof / s:.2f}, "
              f"same bytes: {same}", flush=True)
qk.RULE_SHAPE.clear(); qk.RULE_SHAPE.update(DEFAULT)

host_path = lambda *args: None  # the call before: the amax back to the host, then the kernel
results = {}
for round_ in range(2):
    for kind, arr in (("numba", cuda.as_cuda_array(t)), ("torch", t)):
        for path in ("device operand", "host operand"):
            if path == "host operand":
                engine.quantize_by_device_amax = host_path
            call = lambda: fp4ref.quantize(arr, format="nvfp4")
            s = gpu_time(call, REPEAT)
            start = time.perf_counter()
            for _ in range(10):
                q = call()
            host = (time.perf_counter() - start) / 10
            if path == "host operand":
                del engine.quantize_by_device_amax
            blocks = q.blocks.cpu().numpy() if kind == "torch" else q.blocks.copy_to_host()
            scales = q.scales.cpu().numpy() if kind == "torch" else q.scales.copy_to_host()
            key = (kind, path)
            results.setdefault(kind, (blocks, scales, q.tensor_scale))
            b0, s0, ts0 = results[kind]
            same = (np.array_equal(b0, blocks) and np.array_equal(s0, scales)
                    and np.float32(ts0).view(np.uint32) == np.float32(q.tensor_scale).view(np.uint32))
            print(f"round {round_} fp4ref.quantize({kind} x, format='nvfp4'), {path}: "
                  f"{s * 1e3:.3f} ms, ratio {roof / s:.2f}, wall {host * 1e3:.3f} ms a call, "
                  f"same bytes and tensor scale: {same}", flush=True)
fp4 = np.float32(operand)
same_as_given = fp4ref.quantize(t, format="nvfp4", tensor_scale=fp4)
print("device-operand call equals the call given the host's tensor scale:",
      np.array_equal(same_as_given.blocks.cpu().numpy(), results["torch"][0]))

bits = x.view(np.uint32)
s = gpu_time(lambda: qk._magnitude_partials(bits), REPEAT)
print(f"amax kernel: {s * 1e3:.3f} ms ({x.nbytes / s / 1e12:.2f} TB/s)")
partial = qk._magnitude_partials(bits)
kept = qk._kept_buffers()[("operand tables", cuda.get_current_device().id)]
divisors, pairs, bounds, record, _ = kept
o = options.kernel
s = gpu_time(lambda: qk.launch(qk._operand_tables, 1, 256, partial, False, False, o.nvfp4_recipe,
                               o.clamp_low, o.clamp_high, o.zero_block, o.zero_block_scale,
                               True, record, divisors, pairs, bounds), REPEAT)
print(f"operand tables kernel: {s * 1e6:.1f} us")
