"""Warming the numba kernels: one tiny call of every path the README and the fuzzing kit
use, so that later calls neither compile nor load code.

numba compiles a kernel on its first use and caches it on disk: a fresh install compiles
(seconds per kernel), every later process loads the cached code (tens of milliseconds per
kernel). Either way the first call of each path in a process is slower than the rest;
:func:`warm_up` moves that cost to a moment of the caller's choosing (``fp4ref selftest``
and :mod:`fp4ref.testing` call it).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from . import api, buffers
from .quantize import quantize


def _paths() -> list[tuple[str, Callable[[], object]]]:
    """(label, call) for every warmed path, on tiny inputs."""
    x = np.linspace(-8, 8, 2 * 64, dtype=np.float32).reshape(2, 64)
    blocks = np.arange(64, dtype=np.uint8).reshape(2, 32)
    mx_scales = np.array([[0, 127], [254, 255]], np.uint8)
    nv_scales = np.array([[0, 56, 126, 127], [1, 8, 64, 255]], np.uint8)
    paths = [(f"MXFP4 dequantize to {d}", lambda d=d: api.dequantize(blocks, mx_scales, dtype=d))
             for d in ("float32", "bfloat16", "float16")]
    paths += [(f"NVFP4 dequantize to {d}", lambda d=d: api.dequantize(
        blocks, nv_scales, format="nvfp4", tensor_scale=0.5, dtype=d))
        for d in ("float32", "bfloat16")]
    paths += [
        ("MXFP4 quantize", lambda: quantize(x)),
        ("NVFP4 quantize", lambda: quantize(x, format="nvfp4")),
        ("NVFP4 quantize (modelopt)", lambda: quantize(x, format="nvfp4",
                                                                profile="modelopt")),
        ("E2M1 encode", lambda: [api.encode_e2m1(v, r) for v in (x, x.astype(np.float64))
                                 for r in api.rounding_rules()]),
        ("E4M3 encode", lambda: [api.encode_e4m3(v, r, s) for v in (x, x.astype(np.float64))
                                 for r in api.rounding_rules() for s in (True, False)]),
        ("decoders", lambda: (api.decode_e2m1(blocks & 15), api.decode_e8m0(blocks),
                              api.decode_e4m3(blocks))),
        ("nibble packing", lambda: api.unpack(api.pack(blocks & 15))),
        ("large outputs (first touch)", lambda: buffers.empty((buffers.CACHED_BYTES,),
                                                              np.uint8)),
    ]
    return paths


def warm_up() -> dict[str, float]:
    """Run every path once on the numba backend; returns the seconds each took."""
    seconds = {}
    for label, call in _paths():
        start = time.perf_counter()
        call()
        seconds[label] = time.perf_counter() - start
    return seconds
