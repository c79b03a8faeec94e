"""Exchanges between the lanes of a warp, for kernels that spread a block over several lanes.

``xor_shuffle(value, mask)`` returns the ``value`` (an int32) of lane ``lane ^ mask``, and
``index_shuffle(value, source)`` that of lane ``source`` (0..31); every lane of the warp
must call them together. On the GPU it is one ``shfl.sync.bfly``; numba's
simulator has no warp shuffles, so there it goes through shared memory between two
barriers, which needs every thread of the thread block to call it together (launch one warp
per thread block in the simulator).
"""

from __future__ import annotations

import numpy as np
from numba import cuda
from numba.cuda import config

if config.ENABLE_CUDASIM:

    @cuda.jit(device=True)
    def xor_shuffle(value, mask):
        """``value`` of lane ``lane ^ mask``, through shared memory."""
        slots = cuda.shared.array(1024, np.int32)
        t = cuda.threadIdx.x
        cuda.syncthreads()  # the previous exchange has been read
        slots[t] = value
        cuda.syncthreads()
        return slots[t ^ mask]

    @cuda.jit(device=True)
    def index_shuffle(value, source):
        """``value`` of lane ``source`` of this warp, through shared memory."""
        slots = cuda.shared.array(1024, np.int32)
        t = cuda.threadIdx.x
        cuda.syncthreads()
        slots[t] = value
        cuda.syncthreads()
        return slots[t - t % 32 + source]

    @cuda.jit(device=True)
    def warp_barrier():
        """Wait for the warp (the simulator's thread block is one warp: a block barrier)."""
        cuda.syncthreads()

else:

    @cuda.jit(device=True, inline=True)
    def xor_shuffle(value, mask):
        """``value`` of lane ``lane ^ mask``: one butterfly shuffle over the full warp."""
        return cuda.shfl_xor_sync(0xFFFFFFFF, value, mask)

    @cuda.jit(device=True, inline=True)
    def index_shuffle(value, source):
        """``value`` of lane ``source``: one indexed shuffle over the full warp."""
        return cuda.shfl_sync(0xFFFFFFFF, value, source)

    @cuda.jit(device=True, inline=True)
    def warp_barrier():
        """Wait for every lane of the warp (its shared-memory writes are then visible to
        the warp): ``bar.warp.sync``."""
        cuda.syncwarp()
