# ruff: noqa  (a measuring script run on the lent GPU; its lambdas run inside their loop step)
"""Launch-shape sweep of the GPU dequantize and quantize kernels, every variant timed in one
process against a device copy of the same bytes and checked bit for bit against the default
shape's output (run on the lent GPU; prints one table a section)."""

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
from fp4ref.kernels.cuda.wide import store4

REPEAT = 5
print(device_name() if not cuda.config.ENABLE_CUDASIM else "sim", flush=True)
engine = backends.get("cuda") if not cuda.config.ENABLE_CUDASIM else None


@cuda.jit
def _write_only(out):
    for chunk in range(cuda.grid(1), out.size // 4, cuda.gridsize(1)):
        store4(out, chunk * 4, 0, 0, 0, 0)


def _diagnostics(per_slot, block_size):
    """(io_only, lookup_only) kernels of the chunk shape: the loads and stores without the
    table, and the table and stores without the loads."""
    from numba import uint32, uint64
    count = 4 * per_slot
    half = block_size // 2

    @cuda.jit
    def io_only(words, scales, out):
        for chunk in range(uint64(cuda.grid(1)), uint64(out.size // 4), uint64(cuda.gridsize(1))):
            first = chunk * uint64(count)
            block = first // uint64(block_size)
            w = words[(block * uint64(half) + (first % uint64(block_size)) // uint64(2)) // uint64(8)]
            s = uint32(scales[block])
            store4(out, chunk * uint64(4), uint32(w), uint32(w >> uint64(32)), s, uint32(0))

    @cuda.jit
    def lookup_only(table, out):
        rows = cuda.shared.array(4096, uint32)
        for r in range(cuda.threadIdx.x, 4096, cuda.blockDim.x):
            rows[r] = table[r]
        cuda.syncthreads()
        for chunk in range(uint64(cuda.grid(1)), uint64(out.size // 4), uint64(cuda.gridsize(1))):
            word = chunk * uint64(0x9E3779B97F4A7C15)
            row = uint32(((chunk * uint64(count)) // uint64(block_size)) * uint64(2654435761) >> uint64(24)) & uint32(255)
            row = row * uint32(16)
            slots = cuda.local.array(4, uint32)
            for k in range(4):
                slot = uint32(0)
                for m in range(per_slot):
                    code = uint32(word >> uint64(4 * (per_slot * k + m))) & uint32(15)
                    slot |= rows[row + code] << uint32(16 * m)
                slots[k] = slot
            store4(out, chunk * uint64(4), slots[0], slots[1], slots[2], slots[3])

    return io_only, lookup_only


def dequantize_sweep(which):
    rows = 8192
    shapes = [
        ("chunk 256x8 (before)", {"kind": "chunk", "threads": 256, "blocks_per_sm": 8}),
        ("tile 256 x2 resident (default)", {}),
        ("tile 256 x2 res .cs", {"kind": "tile", "threads": 256, "blocks_per_sm": -2, "store": ".cs"}),
    ]
    table = []
    for fmt, dtype in which:
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
        roof = device_copy_time(traffic, REPEAT)
        memset = gpu_time(lambda: driver.device_memset(out, 0, out.nbytes), REPEAT)
        slots = out.reshape(-1).view(np.uint32)
        sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
        wo = gpu_time(lambda: _write_only[8 * sms, 256](slots), REPEAT)
        io_only, lookup_only = _diagnostics(1 if itemsize == 4 else 2, block)
        words = d_blocks.reshape(-1).view(np.uint64)
        io_t = gpu_time(lambda: io_only[8 * sms, 256](words, d_scales.reshape(-1), slots), REPEAT)
        bits_table = engine.block_table(sf, ts, dtype).reshape(-1)
        lo = gpu_time(lambda: lookup_only[8 * sms, 256](bits_table, slots), REPEAT)
        label = f"{fmt}->{dtype}"
        table.append([label, "copy", roof, 1.0, ""])
        table.append([label, "memset", memset, roof / memset, ""])
        table.append([label, "write-only store4 256x8", wo, roof / wo, ""])
        table.append([label, "loads+stores, no table 256x8", io_t, roof / io_t, ""])
        table.append([label, "table+stores, no loads 256x8", lo, roof / lo, ""])
        flat_b, flat_s = d_blocks.reshape(-1, block // 2), d_scales.reshape(-1)
        table_bits = engine.block_table(sf, ts, dtype)
        codec.dequantize_blocks(flat_b, flat_s, table_bits, 0, ref.reshape(-1, block),
                                shapes[0][1])
        ref_host = ref.copy_to_host()
        for name, shape in shapes:
            bits = out.reshape(-1, block)
            driver.device_memset(out, 0, out.nbytes)
            try:
                fn = lambda: codec.dequantize_blocks(flat_b, flat_s, table_bits, 0, bits, shape)
                t = gpu_time(fn, REPEAT)
                same = np.array_equal(out.copy_to_host(), ref_host)
            except Exception as error:
                table.append([label, name, float("nan"), 0, f"{type(error).__name__}: {error}"[:60]])
                continue
            table.append([label, name, t, roof / t, "same" if same else "DIFFER"])
        # allocating public call, before/after host profile
        call = lambda: fp4ref.dequantize(d_blocks, d_scales, format=fmt,
                                         tensor_scale=None if fmt == "mxfp4" else ts, dtype=dtype)
        t = gpu_time(call, REPEAT)
        table.append([label, "fp4ref.dequantize allocating", t, roof / t, ""])
        start = time.perf_counter()
        for _ in range(20):
            call()
        host = (time.perf_counter() - start) / 20
        cuda.synchronize()
        table.append([label, "  host time a call (not synced)", host, 0, ""])
        if fmt == "nvfp4" and dtype == "bfloat16":
            pr = cProfile.Profile()
            pr.enable()
            for _ in range(20):
                call()
            cuda.synchronize()
            pr.disable()
            s = io.StringIO()
            pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(14)
            print(label, s.getvalue()[:3500])
        del out, ref, d_blocks, d_scales
    print(f"{'case':16} {'variant':34} {'ms':>8} {'ratio':>6}")
    for label, name, t, r, note in table:
        print(f"{label:16} {name:34} {t * 1e3:8.3f} {r:6.2f} {note}", flush=True)
    print("resident grids:", codec._RESIDENT, "registers:", codec.REGISTERS, flush=True)


def quantize_sweep():
    import torch
    rows, cols = 8192, 32768
    g = torch.Generator(device="cuda").manual_seed(0)
    t = torch.randn(rows, cols, device="cuda", generator=g)
    x = cuda.as_cuda_array(t)
    flat = x.reshape(-1)
    table = []
    ocp = get_profile("ocp")
    for fmt, block in (("mxfp4", 32), ("nvfp4", 16)):
        traffic = x.nbytes + x.size // 2 + x.size // block
        roof = device_copy_time(traffic, REPEAT)
        table.append([fmt, "copy", roof, 1.0, ""])
        count = x.size // block
        out = (cuda.device_array(count, np.uint8), cuda.device_array((count, block // 2), np.uint8))
        options = QuantizeOptions(fmt, "floor" if fmt == "mxfp4" else "modelopt", ocp, 1.0 / 2688)
        qk.RULE_SHAPE.update(threads=128, loads="", by_threshold=False)
        engine.quantize(flat, options, np.zeros((0, block, block)), out=out)
        ref = (out[0].copy_to_host(), out[1].copy_to_host())
        variants = [(128, "", False, 0)] if fmt == "mxfp4" else [
            (128, "", False, 0), (128, "", True, 2), (128, "", True, 4), (256, "", True, 2)]
        for threads, loads, thr, res in variants:
            qk.RULE_SHAPE.update(threads=threads, loads=loads, by_threshold=thr, resident=res)
            driver.device_memset(out[1], 0, out[1].nbytes)
            fn = lambda: engine.quantize(flat, options, np.zeros((0, block, block)), out=out)
            try:
                s = gpu_time(fn, REPEAT)
                same = (np.array_equal(out[0].copy_to_host(), ref[0])
                        and np.array_equal(out[1].copy_to_host(), ref[1]))
            except Exception as error:
                table.append([fmt, f"{threads} {loads or 'plain'} thr={thr} res={res}", float("nan"), 0,
                              f"{type(error).__name__}: {error}"[:70]])
                continue
            table.append([fmt, f"{threads} {loads or 'plain'} thr={thr} res={res}", s, roof / s,
                          "same" if same else "DIFFER"])
        if fmt == "nvfp4":
            s = gpu_time(lambda: engine.largest_magnitude(flat), REPEAT)
            table.append([fmt, "amax pass (backend call)", s, roof / s, ""])
        for thr in ((False, True) if fmt == "nvfp4" else (False,)):
            qk.RULE_SHAPE.update(threads=128, loads="", by_threshold=thr, resident=2)
            s = gpu_time(lambda: quantize(x, format=fmt), REPEAT)
            table.append([fmt, f"fp4ref.quantize(device x) thr={thr}", s, roof / s, ""])
            start = time.perf_counter()
            for _ in range(20):
                quantize(x, format=fmt)
            cuda.synchronize()
            h = (time.perf_counter() - start) / 20
            table.append([fmt, "  wall a call, 20 calls", h, 0, ""])
        if fmt == "nvfp4":
            pr = cProfile.Profile()
            pr.enable()
            for _ in range(20):
                quantize(x, format=fmt)
            cuda.synchronize()
            pr.disable()
            s = io.StringIO()
            pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(25)
            print(s.getvalue()[:5000])
    print(f"{'case':8} {'variant':44} {'ms':>8} {'ratio':>6}")
    for label, name, s, r, note in table:
        print(f"{label:8} {name:44} {s * 1e3:8.3f} {r:6.2f} {note}", flush=True)


if __name__ == "__main__":
    parts = sys.argv[1:] or ["dequantize", "quantize"]
    if "dequantize" in parts:
        dequantize_sweep([("mxfp4", "float32"), ("mxfp4", "bfloat16"), ("nvfp4", "float32"),
                          ("nvfp4", "bfloat16")])
    if "quantize" in parts:
        quantize_sweep()
