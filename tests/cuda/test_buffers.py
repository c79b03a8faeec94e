"""fp4ref.buffers on the device: large device outputs come back from the cache once their
arrays are gone, never while in use, and give the bytes fresh memory gives (a GPU only:
the simulator allocates anew each time)."""

import gc

import numpy as np
import pytest
from numba import cuda
from numba.cuda import config

import fp4ref
from fp4ref import buffers

from ..helpers import bits

pytestmark = pytest.mark.skipif(bool(config.ENABLE_CUDASIM), reason="a GPU's memory only")
BIG = buffers.CACHED_BYTES // 4 + 1024  # float32 elements just over the threshold


def address(array) -> int:
    return int(array.__cuda_array_interface__["data"][0])


@pytest.fixture(autouse=True)
def _empty_cache(monkeypatch):
    monkeypatch.delenv("FP4REF_BUFFER_CACHE", raising=False)
    buffers.release()
    yield
    buffers.release()


def test_a_dropped_device_output_is_handed_out_again_and_views_keep_it():
    a = buffers.device_empty((BIG,), np.float32)
    start = address(a)
    view = a[8:16]
    del a
    gc.collect()
    assert buffers.cached_bytes(device=True) == 0  # the view still uses it
    b = buffers.device_empty((BIG,), np.float32)
    assert address(b) != start
    del view
    gc.collect()
    c = buffers.device_empty((2, BIG // 2), np.uint32)
    assert address(c) == start and c.shape == (2, BIG // 2) and c.dtype == np.uint32
    del b, c


def test_device_dequantize_into_reused_memory_gives_the_bytes_of_fresh_memory():
    rng = np.random.default_rng(3)
    rows, k = 64, BIG // 64 * 2
    blocks = rng.integers(0, 256, (rows, k // 2), dtype=np.uint8)
    scales = rng.integers(100, 150, (rows, k // 32), dtype=np.uint8)
    expected = fp4ref.dequantize(blocks, scales)
    d_blocks, d_scales = cuda.to_device(blocks), cuda.to_device(scales)
    stale = fp4ref.dequantize(cuda.to_device(np.zeros_like(blocks)),
                              cuda.to_device(np.full_like(scales, 0xFF)))  # all NaN
    start = address(stale)
    del stale
    gc.collect()
    got = fp4ref.dequantize(d_blocks, d_scales)
    assert address(got) == start
    assert np.array_equal(bits(got.copy_to_host()), bits(expected))
