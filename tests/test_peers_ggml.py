"""ggml's C code and gguf-py beside the ``ggml`` / ``gguf-py`` profiles on random float32
bit patterns, values at every exponent, NVFP4 block maxima near the E4M3 grid and its
ties, with NaN, Inf, -0.0 and float32 max sprinkled in (``pytest -m peers``): every block's
scale byte and codes must agree."""

import os

import numpy as np
import pytest

import fp4ref
from fp4ref.conformance.peers import ggml, gguf

from .helpers import require_peer

pytestmark = pytest.mark.peers

F = np.float32


def fuzz(rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, (rows, 64), dtype=np.uint64).astype(np.uint32).view(F)
    exponents = rng.integers(-149, 128, (rows, 1)).astype(np.float64)
    with np.errstate(over="ignore"):
        spread = (rng.standard_normal((rows, 64)) * np.exp2(exponents)).astype(F)
    grid = np.array([m * 2.0**k for k in range(-10, 9) for m in (1, 1.0625, 1.125, 1.9375)])
    amax = (6 * grid[rng.integers(0, grid.size, rows)]
            * (1 + rng.integers(-3, 4, rows) * 2.0**-23)).astype(F)
    near = (rng.uniform(-1, 1, (rows, 64)) * amax[:, None]).astype(F)
    near[:, 0] = amax
    x = np.concatenate([bits, spread, near])
    special = rng.random(x.shape) < 0.01
    x[special] = rng.choice(np.array([np.nan, -np.nan, np.inf, -np.inf, 3.4028235e38, -0.0], F),
                            special.sum())
    return x


def _codes(blocks, size):
    return fp4ref.unpack(np.asarray(blocks, np.uint8), "split-half",
                         block_size=size).reshape(-1, size)


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_ggml_c_on_fuzz(fmt):
    try:
        peer = ggml.Ggml()
    except ImportError as error:
        if os.environ.get("FP4REF_REQUIRE_PEERS") == "1":  # CI's peers step
            raise
        pytest.skip(str(error))
    size = 32 if fmt == "mxfp4" else 16
    x = fuzz(700, 1)
    blocks, scales, _ = peer.quantize_probe(x, fmt, None)
    q = fp4ref.quantize(x, format=fmt, profile="ggml", scale_layout="linear")
    same = (_codes(q.blocks, size) == _codes(blocks, size)).all(1)
    same &= q.scales.reshape(-1) == np.asarray(scales).reshape(-1)
    assert same.size == x.size // size and same.all(), np.flatnonzero(~same)[:5]


def test_gguf_py_on_fuzz():
    require_peer("gguf")
    x = fuzz(300, 2)
    blocks, scales, _ = gguf.Gguf().quantize_probe(x, "mxfp4", None)
    q = fp4ref.quantize(x, profile="gguf-py", scale_layout="linear")
    same = (_codes(q.blocks, 32) == _codes(blocks, 32)).all(1)
    same &= q.scales.reshape(-1) == np.asarray(scales).reshape(-1)
    assert same.all(), np.flatnonzero(~same)[:5]
    # the C code's profile differs from gguf-py exactly on the blocks holding NaN
    c = fp4ref.quantize(x, profile="ggml", scale_layout="linear")
    differ = (c.scales.reshape(-1) != np.asarray(scales).reshape(-1)) | (
        _codes(c.blocks, 32) != _codes(blocks, 32)).any(1)
    nan_blocks = np.isnan(x.reshape(-1, 32)).any(1)
    assert not (differ & ~nan_blocks).any() and differ.any()
