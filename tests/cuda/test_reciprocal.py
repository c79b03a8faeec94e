"""The GPU's quotient by reciprocal (:func:`fp4ref.kernels.elements.reciprocal_quotient`,
Markstein's step on the GPU) against numpy's IEEE float32 division, bit for bit, and its
E2M1 code (:func:`fp4ref.kernels.elements.nearest_even_code`) against the thresholds of
:data:`fp4ref.kernels.elements.THRESHOLDS` counted on the CPU.

The pairs: random significands over the divisor range, every NVFP4 divisor of two tensor
operands against elements within 8 ulps of each of its E2M1 decision points (where a quotient
off by one ulp changes the code), Inf and huge elements. In the simulator the function is the
division itself; on a GPU this is the test of the two FMAs (all 2^46 significand pairs:
``docs/scripts/h200_reciprocal.py``).
"""

import numpy as np
from numba import cuda

from fp4ref.kernels.cuda import elements  # noqa: F401 (the GPU overload)
from fp4ref.kernels.elements import (
    RECIPROCAL_RANGE,
    THRESHOLDS,
    nearest_even_code,
    reciprocal_quotient,
)
from fp4ref.kernels.options import TIE_EVEN
from fp4ref.kernels.scalar import e4m3_decode

_MIDPOINTS = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0])


@cuda.jit
def _quotients(a, d, r, y, codes):
    for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
        q = reciprocal_quotient(a[i], d[i], r[i])
        y[i] = q
        codes[i] = nearest_even_code(q)


def _pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    low, high = (int(v) for v in np.log2(RECIPROCAL_RANGE))
    d = (rng.uniform(1, 2, 4000) * 2.0 ** rng.integers(low, high, 4000)).astype(np.float32)
    a = (d * rng.uniform(0, 7, 4000)).astype(np.float32)
    ds, as_ = [d], [a]
    for tensor in (np.float32(0.013), np.float32(1.0 / 2688)):
        divisors = np.array([np.float32(e4m3_decode(b)) * tensor for b in range(1, 127)],
                            np.float32)
        points = (divisors[:, None] * _MIDPOINTS[None, :]).astype(np.float32).reshape(-1)
        steps = np.arange(-8, 9, dtype=np.int32)
        near = (points.view(np.int32)[:, None] + steps[None, :]).view(np.float32)
        ds.append(np.repeat(divisors, _MIDPOINTS.size * steps.size))
        as_.append(near.reshape(-1))
    a = np.concatenate(as_ + [np.array([np.inf, 3e38, 3.4028235e38, 0.0], np.float32)])
    d = np.concatenate(ds + [np.array([0.5, 2.0**-100, 2.0**-90, 1.0], np.float32)])
    return a.astype(np.float32), d.astype(np.float32)


def test_reciprocal_quotient_is_the_division():
    a, d = _pairs()
    r = (np.float32(1.0) / d).astype(np.float32)
    y = cuda.device_array(a.size, np.float32)
    codes = cuda.device_array(a.size, np.int32)
    with np.errstate(over="ignore"):  # the simulator divides in numpy
        _quotients[64, 128](cuda.to_device(a), cuda.to_device(d), cuda.to_device(r), y, codes)
        expected = (a / d).astype(np.float32)
    got = y.copy_to_host()
    finite = np.isfinite(expected)
    assert np.array_equal(got[finite].view(np.uint32), expected[finite].view(np.uint32))
    assert np.all(np.isnan(got[~finite]) | np.isinf(got[~finite]))  # coded 7 below
    counted = (expected[:, None] > THRESHOLDS[TIE_EVEN][None, :]).sum(axis=1)
    assert np.array_equal(codes.copy_to_host(), counted)
    assert counted.min() == 0 and counted.max() == 7
