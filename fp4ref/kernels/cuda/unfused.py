"""The GPU overload of :func:`..unfused.mul`: ``__fmul_rn`` / ``__dmul_rn``, a multiply with
its own rounding that NVVM never contracts into an FMA. In the simulator the njit functions
run on the CPU, where ``mul`` is a plain multiply, so nothing is registered there."""

from __future__ import annotations

from numba import types
from numba.cuda import config

from ..unfused import mul

if not config.ENABLE_CUDASIM:
    from numba.cuda import libdevice
    from numba.cuda.extending import overload

    @overload(mul, target="cuda")
    def _mul_cuda(a, b):
        if a == b == types.float32:
            return lambda a, b: libdevice.fmul_rn(a, b)
        if a == b == types.float64:
            return lambda a, b: libdevice.dmul_rn(a, b)
        return None  # operands of one float type only: a widened product would differ
