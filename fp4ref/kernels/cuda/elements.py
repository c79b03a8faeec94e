"""The GPU overloads of :func:`..elements.count_below` (a bisection over the seven sorted
thresholds, three comparisons and selects instead of seven comparisons and adds: the rule
kernels spend few instructions per element; the same count as the CPU's, so the same codes)
and :func:`..elements.reciprocal_quotient` (a product and Markstein's correction, two FMAs,
instead of a division). In the simulator the njit functions run on the CPU, which counts
and divides; nothing is registered there."""

from __future__ import annotations

from numba.cuda import config

from ..elements import count_below, reciprocal_quotient
from ..unfused import mul

if not config.ENABLE_CUDASIM:
    from numba import cuda
    from numba.cuda.extending import overload

    from . import unfused  # noqa: F401 (the GPU's mul)

    @overload(count_below, target="cuda")
    def _count_below_cuda(y, t):
        def bisect(y, t):
            high = y > t[3]  # count >= 4
            middle = y > (t[5] if high else t[1])  # count >= 6 (or >= 2)
            low = y > ((t[6] if middle else t[4]) if high else (t[2] if middle else t[0]))
            return 4 * high + 2 * middle + low

        return bisect

    @overload(reciprocal_quotient, target="cuda")
    def _reciprocal_quotient_cuda(a, d, r):
        def markstein(a, d, r):
            q = mul(a, r)  # rounded on its own: the residual below is then exact
            return cuda.fma(cuda.fma(-q, d, a), r, q)

        return markstein
