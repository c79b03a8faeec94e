"""The GPU overload of :func:`..elements.count_below`: a bisection over the seven sorted
thresholds, three comparisons and selects instead of seven comparisons and adds (the rule
kernels spend few instructions per element). The same count as the CPU's, so the same
codes. In the simulator the njit functions run on the CPU, which counts; nothing is
registered there."""

from __future__ import annotations

from numba.cuda import config

from ..elements import count_below

if not config.ENABLE_CUDASIM:
    from numba.cuda.extending import overload

    @overload(count_below, target="cuda")
    def _count_below_cuda(y, t):
        def bisect(y, t):
            high = y > t[3]  # count >= 4
            middle = y > (t[5] if high else t[1])  # count >= 6 (or >= 2)
            low = y > ((t[6] if middle else t[4]) if high else (t[2] if middle else t[0]))
            return 4 * high + 2 * middle + low

        return bisect
