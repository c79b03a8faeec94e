"""CPU kernels (``numba.njit(parallel=True)``), one module per spec concept."""
