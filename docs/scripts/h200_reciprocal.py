# ruff: noqa  (a measuring script run on the lent GPU)
"""Exhaustive check of the GPU's quotient by reciprocal (issue 19): for every pair of float32
significands a, d in [1, 2) (2^46 pairs), :func:`fp4ref.kernels.elements.reciprocal_quotient`
(``q = a * r``, ``r = float32(1 / d)``, then ``q + fma(-q, d, a) * r``) against the GPU's
IEEE division ``a / d`` (PTX ``div.rn.f32``), bit for bit. Scaling a or d by a power of two
scales every step exactly while the operands, the reciprocal and the quotient stay normal,
so this covers every such pair. Prints the pairs that differ (none expected) and the time.

    python docs/scripts/h200_reciprocal.py [significand bits, default 23]
"""

import sys
import time

import numpy as np
from numba import cuda, int64, uint32

from fp4ref.kernels.elements import reciprocal_quotient
from fp4ref.kernels.cuda import elements  # noqa: F401 (the GPU overload)

BITS = int(sys.argv[1]) if len(sys.argv) > 1 else 23
SHIFT = 23 - BITS  # below 23: a sample of significands, every 2^SHIFT-th


@cuda.jit
def pairs(first_d, count_d, differ, examples):
    i = cuda.grid(1)
    if i >= count_d:
        return
    d_bits = uint32(0x3F800000) + (uint32(first_d + i) << uint32(SHIFT))
    d = np.uint32(d_bits).view(np.float32)
    r = np.float32(1.0) / d
    wrong = int64(0)
    for j in range(1 << BITS):
        a = np.uint32(uint32(0x3F800000) + (uint32(j) << uint32(SHIFT))).view(np.float32)
        y = reciprocal_quotient(a, d, r)
        if np.float32(y).view(np.uint32) != np.float32(a / d).view(np.uint32):
            wrong += 1
            slot = cuda.atomic.add(differ, 1, 1)
            if slot < examples.shape[0]:
                examples[slot, 0] = np.float32(a).view(np.uint32)
                examples[slot, 1] = d_bits
    if wrong:
        cuda.atomic.add(differ, 0, wrong)


total = 1 << BITS
differ = cuda.to_device(np.zeros(2, np.int64))
examples = cuda.to_device(np.zeros((16, 2), np.uint32))
threads = 256
chunk = 1 << 20  # divisors a launch
start = time.perf_counter()
for first in range(0, total, chunk):
    count = min(chunk, total - first)
    pairs[(count + threads - 1) // threads, threads](first, count, differ, examples)
cuda.synchronize()
elapsed = time.perf_counter() - start
wrong = differ.copy_to_host()
NAME = getattr(cuda.get_current_device(), "name", "the simulator")
NAME = NAME.decode() if isinstance(NAME, bytes) else NAME
print(f"{total} x {total} significand pairs ({total * total:.3e}): {wrong[0]} differ "
      f"from a / d, {elapsed:.1f} s on {NAME}")
for a_bits, d_bits in examples.copy_to_host()[: min(16, wrong[1])]:
    print(f"  a = {np.uint32(a_bits).view(np.float32)!r} ({a_bits:#x}), "
          f"d = {np.uint32(d_bits).view(np.float32)!r} ({d_bits:#x})")
