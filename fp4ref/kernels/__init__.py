"""The fast layers, each module named after the spec concept it implements.

:mod:`.options` is the one translation from named conventions to the kernels' integers
and options record. The scalar functions written once and compiled for the CPU (by numba)
and for the GPU (by numba-cuda): :mod:`.scalar` (E2M1, E8M0, E4M3 codecs, nibble orders),
:mod:`.elements` (the element encoder), :mod:`.scale_rules` (MXFP4 rules, NVFP4 recipes),
:mod:`.optimal` (the search), :mod:`.quantize_block` (the GPU's per-block steps),
:mod:`.ops_scalar`. :mod:`.cpu` and :mod:`.cuda` hold the array kernels of each target;
:mod:`.cpu.simd` the CPU's LLVM vector code."""
