"""GPU kernels (``numba.cuda.jit``), one module per spec concept, mirroring :mod:`..cpu`.

Importing a module here imports ``numba.cuda`` (the optional ``fp4ref[cuda]`` extra);
:mod:`fp4ref.backends` does so only when the ``"cuda"`` backend is first used. Set
``NUMBA_ENABLE_CUDASIM=1`` before that to run the same kernels in numba's simulator.
"""
