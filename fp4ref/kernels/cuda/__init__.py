"""GPU kernels (``numba.cuda.jit``), one module per spec concept, mirroring :mod:`..cpu`.

Importing a module here imports ``numba.cuda`` (the optional ``fp4ref[cuda]`` extra);
:mod:`fp4ref.backends` does so only when the ``"cuda"`` backend is first used. Set
``NUMBA_ENABLE_CUDASIM=1`` before that to run the same kernels in numba's simulator.
"""

try:  # numba-cuda 0.30.4 with numba 0.68: see _catch_both_typing_errors
    from numba.core import errors as _core_errors
    from numba.cuda import lowering as _lowering
except ImportError:  # another numba-cuda layout: nothing to work around
    _lowering = None


def _catch_both_typing_errors() -> None:
    """Let numba-cuda's lowering of a binary operator on constant operands
    (``numba/cuda/lowering.py``, ``lower_binop.try_static_impl``, ``except TypingError``)
    catch numba core's ``TypingError`` as well as its own: after a CPU compile in the same
    process the operator's function type raises the core class, which escaped as
    ``No implementation of function gt found for gt(omitted, omitted)`` and failed GPU
    kernels depending on what the process compiled first (docs/findings.md)."""
    if _lowering is None:
        return
    caught = getattr(_lowering, "TypingError", None)
    if isinstance(caught, type) and caught is not _core_errors.TypingError:
        _lowering.TypingError = (caught, _core_errors.TypingError)


_catch_both_typing_errors()
