# ruff: noqa  (a measuring script run on the lent GPU; its lambdas run inside their loop step)
"""Sweep of the pipelined GPU kernels (issue 19): the dequantize "pipe" shape against the
"tile" shape, the rule kernels with ``pipeline`` against without, and where the NVFP4
``fp4ref.quantize`` call with its tensor-amax pass spends its time. Every variant is timed
in one process against a device copy of the same bytes and its output compared bit for bit
with the old kernel's (run on the lent GPU; prints one table a section).

    python docs/scripts/h200_pipe.py [dequantize] [quantize] [call]
"""

from __future__ import annotations

import cProfile
import io
import pstats
import sys
import time

import numpy as np
from numba import cuda
from numba.cuda.cudadrv import driver

import fp4ref
from fp4ref import backends
from fp4ref.bench.timing import device_copy_time, device_name, gpu_time
from fp4ref.kernels.cuda import codec, quantize as qk
from fp4ref.kernels.options import QuantizeOptions
from fp4ref.profiles import get as get_profile
from fp4ref.quantize import quantize

REPEAT = 5


class Rows(list):
    """A table that prints each row as it is added (a crash keeps what was measured)."""

    def append(self, item):
        super().append(item)
        label, name, t, r, note = item
        print(f"  {label:16} {name:44} {t * 1e3:8.3f} {r:6.2f} {note}", flush=True)

print(device_name(), flush=True)
engine = backends.get("cuda")
DEFAULT_DQ = dict(codec.DEQUANTIZE_SHAPE)
DEFAULT_RULE = dict(qk.RULE_SHAPE)

DQ_VARIANTS = [
    ("chunk 256x8 (reference)", {"kind": "chunk", "threads": 256, "blocks_per_sm": 8, "store": ""}),
    ("tile 256 x2 res (main)", {"kind": "tile", "unroll": 1, "threads": 256, "blocks_per_sm": -2,
                                "store": ""}),
    ("pipe u1 256 x1 .cs (branch default)", {"kind": "pipe", "unroll": 1, "threads": 256,
                                             "blocks_per_sm": -1, "store": ".cs"}),
    ("pipe u1 256 x1", {"kind": "pipe", "unroll": 1, "threads": 256, "blocks_per_sm": -1,
                        "store": ""}),
    ("pipe u1 512 x1", {"kind": "pipe", "unroll": 1, "threads": 512, "blocks_per_sm": -1,
                        "store": ""}),
    ("pipe u1 512 x1 .cs", {"kind": "pipe", "unroll": 1, "threads": 512, "blocks_per_sm": -1,
                            "store": ".cs"}),
    ("pipe u2 256 x1 .cs ld.nc", {"kind": "pipe", "unroll": 2, "threads": 256, "blocks_per_sm": -1,
                                  "store": ".cs", "loads": ".nc.L1::no_allocate"}),
    ("pipe u1 256 x1 st.L1::no_allocate", {"kind": "pipe", "unroll": 1, "threads": 256,
                                           "blocks_per_sm": -1, "store": ".L1::no_allocate"}),
]


def dequantize_sweep():
    rows = 8192
    table = Rows()
    best_shapes = {}
    for fmt, dtype in (("mxfp4", "float32"), ("mxfp4", "bfloat16"), ("nvfp4", "float32"),
                       ("nvfp4", "bfloat16")):
        block, sf = (32, "e8m0") if fmt == "mxfp4" else (16, "e4m3")
        ts = np.float32(1.0 if fmt == "mxfp4" else 2.0**-7)
        itemsize = 4 if dtype == "float32" else 2
        cols = (1 << 30) // (rows * itemsize)
        rng = np.random.default_rng(0)
        blocks = rng.integers(0, 256, (rows, cols // 2), dtype=np.uint8)
        low, high = (118, 136) if fmt == "mxfp4" else (0x30, 0x7E)
        scales = rng.integers(low, high, (rows, cols // block), dtype=np.uint8)
        d_blocks, d_scales = cuda.to_device(blocks), cuda.to_device(scales)
        raw = np.uint32 if itemsize == 4 else np.uint16
        out = cuda.device_array((rows, cols), raw)
        ref = cuda.device_array((rows, cols), raw)
        traffic = blocks.nbytes + scales.nbytes + out.nbytes
        label = f"{fmt}->{dtype}"
        roof = device_copy_time(traffic, REPEAT)
        memset = gpu_time(lambda: driver.device_memset(out, 0, out.nbytes), REPEAT)
        table.append([label, "copy", roof, 1.0, ""])
        table.append([label, "memset of the output", memset, roof / memset, ""])
        flat_b, flat_s = d_blocks.reshape(-1, block // 2), d_scales.reshape(-1)
        bits_table = engine.block_table(sf, ts, dtype)
        codec.dequantize_blocks(flat_b, flat_s, bits_table, 0, ref.reshape(-1, block),
                                DQ_VARIANTS[0][1])
        ref_host = ref.copy_to_host()
        best = (0.0, None, None)
        for name, shape in DQ_VARIANTS + [(f"{n} (again)", sh) for n, sh in DQ_VARIANTS[1:]]:
            bits = out.reshape(-1, block)
            driver.device_memset(out, 0, out.nbytes)
            try:
                fn = lambda: codec.dequantize_blocks(flat_b, flat_s, bits_table, 0, bits, shape)
                t = gpu_time(fn, REPEAT)
                same = np.array_equal(out.copy_to_host(), ref_host)
            except Exception as error:
                table.append([label, name, float("nan"), 0, f"{type(error).__name__}: {error}"[:70]])
                continue
            table.append([label, name, t, roof / t, "same" if same else "DIFFER"])
            if same and name.startswith("pipe") and roof / t > best[0]:
                best = (roof / t, name, shape)
        # the allocating public call under main's shape and the best pipe shape
        call = lambda: fp4ref.dequantize(d_blocks, d_scales, format=fmt,
                                         tensor_scale=None if fmt == "mxfp4" else ts, dtype=dtype)
        for tag, shape in (("main's tile", DQ_VARIANTS[1][1]), ("branch default", DEFAULT_DQ),
                           ("main's tile (again)", DQ_VARIANTS[1][1]),
                           ("branch default (again)", DEFAULT_DQ)):
            if shape is None:
                continue
            codec.DEQUANTIZE_SHAPE.clear()
            codec.DEQUANTIZE_SHAPE.update({**DEFAULT_DQ, **shape})
            t = gpu_time(call, REPEAT)
            try:
                got = call()
                same = np.array_equal(np.asarray(got.copy_to_host()).view(raw), ref_host)
            except Exception as error:
                same = f"{type(error).__name__}: {error}"[:60]
            table.append([label, f"fp4ref.dequantize allocating, {tag}", t, roof / t,
                          same if isinstance(same, str) else "same" if same else "DIFFER"])
        codec.DEQUANTIZE_SHAPE.clear()
        codec.DEQUANTIZE_SHAPE.update(DEFAULT_DQ)
        best_shapes[label] = best[1]
        del out, ref, d_blocks, d_scales
    print(f"{'case':16} {'variant':44} {'ms':>8} {'ratio':>6}")
    for label, name, t, r, note in table:
        print(f"{label:16} {name:44} {t * 1e3:8.3f} {r:6.2f} {note}", flush=True)
    print("best pipe shapes:", best_shapes)
    print("resident grids:", codec._RESIDENT, "registers:", codec.REGISTERS, flush=True)


def quantize_sweep():
    import torch
    rows, cols = 8192, 32768
    g = torch.Generator(device="cuda").manual_seed(0)
    t = torch.randn(rows, cols, device="cuda", generator=g)
    x = cuda.as_cuda_array(t)
    flat = x.reshape(-1)
    table = Rows()
    ocp = get_profile("ocp")
    for fmt, block in (("mxfp4", 32), ("nvfp4", 16)):
        traffic = x.nbytes + x.size // 2 + x.size // block
        roof = device_copy_time(traffic, REPEAT)
        table.append([fmt, "copy", roof, 1.0, ""])
        count = x.size // block
        out = (cuda.device_array(count, np.uint8), cuda.device_array((count, block // 2), np.uint8))
        options = QuantizeOptions(fmt, "floor" if fmt == "mxfp4" else "modelopt", ocp, 1.0 / 2688)
        qk.RULE_SHAPE.clear()
        qk.RULE_SHAPE.update(DEFAULT_RULE)
        engine.quantize(flat, options, np.zeros((0, block, block)), out=out)
        ref = (out[0].copy_to_host(), out[1].copy_to_host())
        if fmt == "mxfp4":
            variants = [("main (warp a step, full grid)", {}),
                        ("pipeline 128 x1", dict(pipeline=True, mx_resident=1)),
                        ("pipeline 128 x2", dict(pipeline=True, mx_resident=2)),
                        ("pipeline 128 x4", dict(pipeline=True, mx_resident=4)),
                        ("pipeline 256 x1", dict(pipeline=True, mx_resident=1, threads=256)),
                        ("pipeline 256 x2", dict(pipeline=True, mx_resident=2, threads=256)),
                        ("pipeline 64 x2", dict(pipeline=True, mx_resident=2, threads=64))]
        else:
            variants = [("main (thresholds, 128 x2)", {}),
                        ("pipeline 128 x1", dict(pipeline=True, resident=1)),
                        ("pipeline 128 x2", dict(pipeline=True, resident=2)),
                        ("pipeline 128 x4", dict(pipeline=True, resident=4)),
                        ("pipeline 256 x1", dict(pipeline=True, resident=1, threads=256)),
                        ("pipeline 256 x2", dict(pipeline=True, resident=2, threads=256)),
                        ("pipeline 64 x2", dict(pipeline=True, resident=2, threads=64))]
        for name, change in variants:
            qk.RULE_SHAPE.clear()
            qk.RULE_SHAPE.update({**DEFAULT_RULE, **change})
            driver.device_memset(out[1], 0, out[1].nbytes)
            fn = lambda: engine.quantize(flat, options, np.zeros((0, block, block)), out=out)
            try:
                s = gpu_time(fn, REPEAT)
                same = (np.array_equal(out[0].copy_to_host(), ref[0])
                        and np.array_equal(out[1].copy_to_host(), ref[1]))
            except Exception as error:
                table.append([fmt, name, float("nan"), 0, f"{type(error).__name__}: {error}"[:70]])
                continue
            table.append([fmt, name, s, roof / s, "same" if same else "DIFFER"])
        qk.RULE_SHAPE.clear()
        qk.RULE_SHAPE.update(DEFAULT_RULE)
        if fmt == "nvfp4":
            s = gpu_time(lambda: engine.largest_magnitude(flat), REPEAT)
            table.append([fmt, "amax pass (backend call)", s, roof / s, ""])
            for q in (".nc.L1::no_allocate", ".L2::256B"):
                qk.AMAX_LOADS_QUALIFIERS = q
                s = gpu_time(lambda: engine.largest_magnitude(flat), REPEAT)
                table.append([fmt, f"amax pass, loads {q}", s, roof / s, ""])
            qk.AMAX_LOADS_QUALIFIERS = ""
            s = gpu_time(lambda: quantize(x, format=fmt), REPEAT)
            table.append([fmt, "fp4ref.quantize(device x), main's shape", s, roof / s, ""])
            # time line of one call: host seconds to each point (synchronized after)
            cuda.synchronize()
            marks = []
            start = time.perf_counter()
            top = engine.largest_magnitude(flat)
            marks.append(("amax back on host", time.perf_counter() - start))
            quantize(x, format=fmt)
            marks.append(("call returned", time.perf_counter() - start))
            cuda.synchronize()
            marks.append(("synchronized", time.perf_counter() - start))
            print("nvfp4 call time line (amax, then a whole call):", marks)
            pr = cProfile.Profile()
            pr.enable()
            for _ in range(20):
                quantize(x, format=fmt)
            cuda.synchronize()
            pr.disable()
            s_ = io.StringIO()
            pstats.Stats(pr, stream=s_).sort_stats("tottime").print_stats(30)
            print(s_.getvalue()[:7000])
        else:
            s = gpu_time(lambda: quantize(x, format=fmt), REPEAT)
            table.append([fmt, "fp4ref.quantize(device x), main's shape", s, roof / s, ""])
    print(f"{'case':8} {'variant':44} {'ms':>8} {'ratio':>6}")
    for label, name, s, r, note in table:
        print(f"{label:8} {name:44} {s * 1e3:8.3f} {r:6.2f} {note}", flush=True)
    print("resident grids:", codec._RESIDENT, "registers:", codec.REGISTERS, flush=True)


if __name__ == "__main__":
    parts = sys.argv[1:] or ["dequantize", "quantize"]
    if "dequantize" in parts:
        dequantize_sweep()
    if "quantize" in parts:
        quantize_sweep()
