"""The CPU kernels' LLVM vector code: numba intrinsics that work on a whole block (or on
many candidates) at the data's own width, and one switch that turns them all off.

Every routine here makes the same decisions from the same float32 numbers as the scalar
numba code it stands in for (each module says why); the switch lets the tests run both
and compare bytes (``tests/test_simd.py``).

Map: which block takes which path
---------------------------------

Each line: the call and its blocks -> the vector path; with the switch off, or where no
vector path exists, the scalar path after "|".

* dequantize MXFP4 to float32/bfloat16, E8M0 ``"ocp"``/``"bits"``, bytes 2..252 ->
  :func:`.mx_block.store_mx_block` (closed form; streaming stores into cache-line-aligned
  outputs of 16 MiB or more) | byte-pair tables (``cpu.codec.dequantize_blocks``).
* dequantize, every other block -> none | byte-pair tables.
* MXFP4 floor rule, 16 blocks at a time -> :func:`.mx_block.store_mx_floor_group`
  | ``quantize_mx``.
* MXFP4 other rules, and the floor rule's last blocks -> :func:`.mx_block.block_max_magnitude`
  and :func:`.mx_block.store_mx_codes` | ``quantize_mx``.
* MXFP4 ``"optimal"`` in 16 lanes -> :mod:`.mx_search` (``measure``, ``choose``; a block
  failing its exact-prefix check takes the scalar search) | ``quantize_mx``.
* MXFP4 in other lane counts, ``"optimal-hessian"`` -> none | ``quantize_mx``.
* NVFP4 recipe with a division recipe, finite divisors and a start byte monotone in amax
  -> :func:`.nvfp4_search.start_bytes` and :func:`.nvfp4_search.store_blocks` (64 blocks
  a group) | ``quantize_nv_rule``'s block loop.
* NVFP4 ``"optimal"`` (16 lanes) on the same recipes -> :func:`.nvfp4_search.quantize_blocks`
  (64 blocks a group) | ``quantize_nv``'s block loop.
* NVFP4, every other block -> none | ``quantize_nv_rule``'s or ``quantize_nv``'s block loop.

(``quantize_mx``, ``quantize_nv``, ``quantize_nv_rule``: :mod:`fp4ref.kernels.cpu.quantize`;
the choice is :func:`fp4ref.kernels.cpu.quantize.kernel_for` and, for NVFP4, the kernels'
``fast`` test, :func:`fp4ref.kernels.cpu.quantize._nv_tables`.) The IR helpers the three
modules share are in :mod:`.ir`.

Ledger: what each step bought
-----------------------------

From the commits that added each step (this project's 2-core x86_64 machine; single
thread where it says so), before -> after, bytes unchanged each time:

* dequantize, byte-pair tables + MXFP4 closed form + streaming stores (7a9ebef): float32
  0.58-0.76 -> 1.02 of a parallel copy, bfloat16 0.44 -> 1.38 (2 threads, same run).
* MXFP4 rules, block max and codes as 32-lane vector code (121cd92): OCP 8192^2 kernel
  32 -> 20 ms, 0.28 -> 0.44 of the copy.
* floor rule 16 blocks a call, three-comparison bisection, zero sign and order branched
  once a call (8086e55): 13.0 -> 5.2 ns/block single-thread, cache-resident.
* prefetch 8 groups ahead (07fde7b): 8192^2 kernel 12-15 -> 8-10 ms, 2 threads.
* MXFP4 optimal search as vector code (10e3752, 1cb3a6a): no figure in the commits; the
  switch measures it (below).
* NVFP4 optimal, division-free (single thread, qwantize profile, 524k N(0, 1) blocks):
  E0 first, in-bound candidates 16 a chunk (c9c0dfd) 202 -> ~174 ns/block; bounds for 64
  blocks first (af43511) ~174 -> ~163; E0 and bounds 16 blocks a call (4e76189)
  ~163 -> ~111; remainders by tail_minimum (4abd638) ~111 -> ~107; the first chunk bounds
  the next eight (2f908bb): blocks needing more candidates 63% -> 13%.

What the vector code buys today, by the switch, in one run (2026-12-03, this 2-core
machine shared with other jobs, 2 threads, best of 21; N(0, 1) blocks, 2^17 MXFP4 or
2^18 NVFP4, the searches on 2^15 / 2^16; ``fp4ref.quantize`` / ``fp4ref.dequantize``
including their allocation), ns/block vector vs scalar:

=============================  ======  ======
MXFP4 floor rule (ocp)           5.7    703
MXFP4 optimal (qwantize)        48.3   2321
NVFP4 recipe (ocp)              80.1    587
NVFP4 optimal (qwantize)       345.5   4029
MXFP4 dequantize to float32      3.1    4.8
=============================  ======  ======

The switch
----------

``FP4REF_VECTOR=0`` in the environment (read when this module is first imported) or
:func:`use_vector_code` (``False``) routes every call to the scalar numba path: the
options record carries it to the kernels (:attr:`...options.KernelOptions.vector_code`),
and the dequantize kernel is told to use its tables.
"""

from __future__ import annotations

import os

_state = {"vector": os.environ.get("FP4REF_VECTOR", "1") != "0"}


def vector_code() -> bool:
    """Whether the CPU kernels may take their LLVM vector paths."""
    return _state["vector"]


def use_vector_code(on: bool) -> bool:
    """Let the CPU kernels take their vector paths (``on``) or only the scalar numba code;
    returns the previous setting."""
    if not isinstance(on, bool):
        raise TypeError(f"on must be a bool; got {on!r}")
    previous = _state["vector"]
    _state["vector"] = on
    return previous
