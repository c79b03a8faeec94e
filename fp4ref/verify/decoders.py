"""Decoder sweeps: every stored byte through every decoder, against the oracle at every
input (the inputs are few enough: 16 E2M1 codes, 256 scale bytes, and every packed byte
under every scale byte).

MXFP4 and NVFP4 blocks are decoded through :func:`fp4ref.dequantize` from blocks built so
that each scale byte meets each of the 256 packed bytes (so every E2M1 nibble at every
scale byte, in both nibble positions), for every nibble order, E8M0 decode convention,
NVFP4 tensor scale and output dtype; the expected bits are the spec's
(:func:`fp4ref.spec.mx.dequantize_block`, :func:`fp4ref.spec.nvfp4.dequantize_block`) for
each (scale byte, code), placed by :func:`fp4ref.spec.nibbles.position`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from .. import api
from ..profiles import E8M0_DECODES, profiles
from ..spec import e2m1, e4m3, e8m0, mx, nibbles, nvfp4, rounding
from .runner import EXAMPLES, Result

DTYPES = ("float32", "bfloat16", "float16")
_BITS = {"float32": np.uint32, "bfloat16": np.uint16, "float16": np.uint16}


def _compare(name: str, backend: str, labels: Callable[[int], str], got: np.ndarray,
             want: np.ndarray, start: float) -> Result:
    wrong = np.flatnonzero(got.ravel() != want.ravel())
    examples = [(labels(int(i)), int(got.ravel()[i]), int(want.ravel()[i]))
                for i in wrong[:EXAMPLES]]
    return Result(name, backend, want.size, wrong.size, time.perf_counter() - start,
                  "every input", examples)


def _merged(name: str, parts: list[Result]) -> Result:
    """One row for several decoder runs (their inputs, disagreements and time summed; the
    first disagreements, each labelled with its run)."""
    examples = [(f"{p.sweep}: {label}", got, want) for p in parts
                for label, got, want in p.examples][:EXAMPLES]
    return Result(name, parts[0].backend, sum(p.covered for p in parts),
                  sum(p.disagreements for p in parts), sum(p.seconds for p in parts),
                  "every input", examples)


def scalar_decoders(backend: str) -> list[Result]:
    """E2M1, E8M0 and E4M3 decode of every code or byte to float32."""
    out = []
    for name, count, decode, oracle in (
            ("e2m1 decode", 16, api.decode_e2m1, e2m1.decode),
            ("e8m0 decode", 256, api.decode_e8m0, e8m0.decode),
            ("e4m3 decode", 256, api.decode_e4m3, e4m3.decode)):
        start = time.perf_counter()
        inputs = np.arange(count, dtype=np.uint8)
        got = np.asarray(decode(inputs, backend=backend)).view(np.uint32)
        want = np.array([rounding.exact_to_float32_bits(oracle(b)) for b in range(count)],
                        np.uint32)
        out.append(_compare(name, backend, lambda i: f"byte {i:#04x}", got, want, start))
    return out


def _pairs(block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(blocks, scales): every scale byte with every packed byte, blocks of ``block_size``
    elements (``block_size / 2`` bytes)."""
    half = block_size // 2
    per_scale = 256 // half  # blocks holding the 256 packed bytes once
    blocks = np.tile(np.arange(256, dtype=np.uint8).reshape(per_scale, half), (256, 1))
    scales = np.repeat(np.arange(256, dtype=np.uint8), per_scale)
    return blocks, scales


def _expected(table: np.ndarray, blocks: np.ndarray, scales: np.ndarray, order: str,
              block_size: int) -> np.ndarray:
    """Expected bits of every element: ``table[scale, code]``, each code read from its byte
    and nibble by the spec's :func:`~fp4ref.spec.nibbles.position`."""
    places = [nibbles.position(k, order, block_size) for k in range(block_size)]
    index = np.array([b for b, _ in places])
    shift = np.array([s for _, s in places], np.uint8)
    codes = (blocks[:, index] >> shift) & 0xF
    return table[scales[:, None], codes]


def _every_order(table: np.ndarray, blocks: np.ndarray, scales: np.ndarray, dtype: str,
                 backend: str, start: float, **options) -> list[Result]:
    """``fp4ref.dequantize(blocks, scales, **options)`` in every nibble order, compared with
    ``table[scale, code]`` (``start``: when the first order's timing began)."""
    block_size = 2 * blocks.shape[1]
    out = []
    for order in nibbles.NIBBLE_ORDERS:
        got = api.dequantize(blocks, scales, nibble_order=order, dtype=dtype, backend=backend,
                             **options)
        want = _expected(table, blocks, scales, order, block_size)
        out.append(_compare(
            f"{order}, {dtype}", backend, lambda i: _element(i, scales, block_size, blocks),
            np.asarray(got).view(_BITS[dtype]), want, start))
        start = time.perf_counter()
    return out


def mx_decoders(backend: str) -> list[Result]:
    """MXFP4 dequantize of every (E8M0 byte, packed byte) by each convention, nibble order
    and output dtype."""
    blocks, scales = _pairs(mx.BLOCK_SIZE)
    rows = []
    for convention in E8M0_DECODES:
        out = []
        for dtype in DTYPES:
            start = time.perf_counter()  # the first order's time includes the oracle's
            table = np.array([mx.dequantize_block(range(16), s, dtype, convention)
                              for s in range(256)], _BITS[dtype])
            out += _every_order(table, blocks, scales, dtype, backend, start, format="mxfp4",
                                e8m0_decode=convention)
        rows.append(_merged(f"mxfp4 decode, e8m0 {convention} (3 orders x 3 dtypes)", out))
    return rows


def tensor_multipliers() -> list[float]:
    """NVFP4 decode multipliers to decode at: 1, a tensor of amax 1's, and the smallest and
    largest any NVFP4 profile produces (over both ends of every binade of tensor amax)."""
    from ..quantize import _tensor_scales
    from .sweeps import _amax_grid, value

    found = set()
    with np.errstate(over="ignore", divide="ignore"):
        for prof in profiles().values():
            if prof.nvfp4_recipe is not None and prof.tensor_scale:
                for u in _amax_grid():
                    decode = _tensor_scales(prof, None, amax=lambda u=u: value(u))[1]
                    if decode is not None and math.isfinite(decode):  # None: MLX's amax
                        found.add(float(decode))  # direction computes none (a given G
                        # decodes as G / 2688, the decode direction's multipliers)
    return sorted({1.0, float(np.float32(1.0) / np.float32(2688.0)), min(found), max(found)})


def nv_decoders(backend: str) -> list[Result]:
    """NVFP4 dequantize of every (E4M3 byte, packed byte) at each tensor multiplier, nibble
    order and output dtype."""
    blocks, scales = _pairs(nvfp4.BLOCK_SIZE)
    rows = []
    for tensor in tensor_multipliers():
        out = []
        tensor_bits = int(np.float32(tensor).view(np.uint32))
        for dtype in DTYPES:
            start = time.perf_counter()  # the first order's time includes the oracle's
            table = np.array([nvfp4.dequantize_block(range(16), s, tensor_bits, dtype)
                              for s in range(256)], _BITS[dtype])
            out += _every_order(table, blocks, scales, dtype, backend, start, format="nvfp4",
                                tensor_scale=tensor)
        rows.append(_merged(f"nvfp4 decode, tensor {tensor:.8g} (3 orders x 3 dtypes)", out))
    return rows


def _element(i: int, scales: np.ndarray, block_size: int, blocks: np.ndarray) -> str:
    b, k = divmod(i, block_size)
    return f"scale {int(scales[b]):#04x}, block bytes {bytes(blocks[b]).hex()}, element {k}"


def all_decoders(backend: str) -> list[Result]:
    """Every decoder sweep on ``backend``."""
    return scalar_decoders(backend) + mx_decoders(backend) + nv_decoders(backend)
