"""Profile ``mlx`` on the GPU (or the simulator): the hand-derived minimal inputs of
``tests/test_mlx_profile.py`` give the same bytes, and MXFP4 blocks across the wrap and
NVFP4 blocks with a global scale equal the numba CPU backend."""

import warnings

import numpy as np
import pytest

import fp4ref

from ..test_mlx_profile import MX_CASES, NV_CASES, _codes, _row


@pytest.fixture(autouse=True)
def _quiet_overflow():
    with warnings.catch_warnings():  # the simulator computes float32 overflow in numpy
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.mark.parametrize("what,values,byte,codes", MX_CASES, ids=[c[0] for c in MX_CASES])
def test_mxfp4_minimal_inputs(what, values, byte, codes):
    q = fp4ref.quantize(_row(values, 32), profile="mlx", backend="cuda")
    assert int(q.scales[0, 0]) == byte
    assert _codes(q, 32)[: len(codes)].tolist() == codes


@pytest.mark.parametrize("what,values,given,byte,codes", NV_CASES,
                         ids=[c[0] for c in NV_CASES])
def test_nvfp4_minimal_inputs(what, values, given, byte, codes):
    q = fp4ref.quantize(_row(values, 16), format="nvfp4", profile="mlx", tensor_scale=given,
                        backend="cuda")
    assert int(q.scales[0, 0]) == byte
    assert _codes(q, 16)[: len(codes)].tolist() == codes


@pytest.mark.parametrize("fmt,given", [("mxfp4", None), ("nvfp4", None), ("nvfp4", 3.7)])
def test_equals_the_cpu(fmt, given):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((8, 64)).astype(np.float32)
    x *= np.exp2(rng.integers(-150, -120, (8, 1))).astype(np.float32)  # wraps, underflows
    x[0, 3], x[1, 40] = np.nan, np.inf
    a = fp4ref.quantize(x, format=fmt, profile="mlx", tensor_scale=given, backend="cuda")
    b = fp4ref.quantize(x, format=fmt, profile="mlx", tensor_scale=given, backend="numba")
    assert np.array_equal(a.scales, b.scales) and np.array_equal(a.blocks, b.blocks)
