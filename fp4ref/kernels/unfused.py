"""A product that is rounded on its own, on the CPU and the GPU alike.

NVVM, which compiles numba's CUDA kernels, contracts ``a * b + c`` into one fused
multiply-add by default (numba-cuda has no switch to stop it), rounding once where the CPU
rounds the product and then the sum: float32 SSE sums and float64 ``r^T H r`` would then
differ from the CPU's in their last bits, and the optimal searches compare them. The njit
functions shared by both targets write such products as ``mul(a, b)``: on the CPU a plain
multiply, on the GPU ``mul.rn`` (:mod:`.cuda.unfused` registers that overload), which the
compiler never fuses. IEEE 754 rounds each of the two operations either way.
"""

from __future__ import annotations

from numba.core.extending import overload


def mul(a, b):
    """``a * b``, rounded to the operands' precision before any later addition."""
    return a * b


@overload(mul)
def _mul_cpu(a, b):
    return lambda a, b: a * b
