"""The fast layers. :mod:`.scalar` holds the scalar codec functions, written once and
compiled for the CPU (by numba) and for the GPU (by numba-cuda); :mod:`.cpu` and
:mod:`.cuda` hold the array kernels of each target, one module per spec concept."""
