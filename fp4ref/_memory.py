"""Allocations checked against this machine's memory first: a request no machine here
could satisfy gets a ``ValueError`` naming the argument, not a ``MemoryError`` from inside
numpy (a ``broadcast_to`` view of 256 TiB, say, about to be copied)."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np


def memory_bytes() -> int:
    """This machine's physical memory in bytes (0 if the system does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


def affordable(name: str, shape: tuple[int, ...], dtype: Any, what: str,
               hint: str = "") -> None:
    """``ValueError`` naming ``name`` if ``what`` (an array of ``shape`` and ``dtype`` about
    to be allocated) needs more bytes than this machine has, instead of a ``MemoryError``
    from deep inside numpy."""
    nbytes = math.prod(int(d) for d in shape) * np.dtype(dtype).itemsize
    memory = memory_bytes()
    if memory and nbytes > memory:
        raise ValueError(
            f"{name}: {what} ({np.dtype(dtype)}, shape {tuple(shape)}) needs "
            f"{nbytes / 2**30:.4g} GiB, more than this machine's {memory / 2**30:.4g} GiB{hint}"
        )
