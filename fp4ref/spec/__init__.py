"""The oracle layer: each format written literally from its spec, with exact arithmetic.

Slow on purpose and independent of the numba kernels, so each checks the other.
One module per spec concept: :mod:`.e2m1`, :mod:`.e8m0`, :mod:`.e4m3`, :mod:`.nibbles`,
:mod:`.mx`, :mod:`.nvfp4`, and :mod:`.rounding` for the rounding both directions need.
"""
