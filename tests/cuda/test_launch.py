"""fp4ref.kernels.cuda.launch: the short launch gives the bytes numba's own launch gives, for
every kind of argument the kernels take (arrays of several dtypes, float64, bool and int
scalars), and falls back to numba's launch for what it does not flatten (a GPU only: the
simulator always takes numba's launch)."""

import numpy as np
import pytest
from numba import cuda
from numba.cuda import config

import fp4ref
from fp4ref.kernels.cuda import launch as launching

pytestmark = pytest.mark.skipif(bool(config.ENABLE_CUDASIM), reason="a GPU's launch only")


@cuda.jit
def _mixed(values, scale, flag, count, out):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = values[i % values.size] * scale + (count if flag else 0)


def test_every_argument_kind_as_numba_passes_it(monkeypatch):
    values = cuda.to_device(np.arange(7, dtype=np.float32))
    results = []
    for fast in (False, True):
        monkeypatch.setattr(launching, "FAST", fast)
        out = cuda.device_array(1000, np.float64)
        launching.launch(_mixed, 4, 64, values, 0.5, True, 3, out)
        results.append(out.copy_to_host())
    expected = np.arange(1000) % 7 * 0.5 + 3
    assert np.array_equal(results[0], expected)
    assert np.array_equal(results[1], expected)


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_public_calls_give_the_same_bytes(monkeypatch, fmt):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((64, 256)).astype(np.float32)
    x[3, 5], x[9, 40] = np.nan, np.inf
    got = []
    for fast in (False, True):
        monkeypatch.setattr(launching, "FAST", fast)
        q = fp4ref.quantize(cuda.to_device(x), format=fmt)
        d = fp4ref.dequantize(q)
        got.append((q.blocks.copy_to_host(), q.scales.copy_to_host(),
                    d.copy_to_host().view(np.uint32)))
    for a, b in zip(*got, strict=True):
        assert np.array_equal(a, b)
