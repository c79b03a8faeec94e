"""The GPU rule kernels' E2M1 code by float rounding
(:func:`fp4ref.kernels.elements.nearest_even_code`) against the threshold count every other
encoder uses (:func:`~fp4ref.kernels.elements.magnitude_code`), on every float32 from +0 to
+Inf, and hand-derived ties (OCP MX v1.0 section 5.3.3: ties to the even code)."""

import numpy as np
import pytest
from numba import njit, prange

from fp4ref.kernels.elements import magnitude_code, nearest_even_code
from fp4ref.kernels.options import TIE_EVEN


@njit(parallel=True, cache=True)
def _disagreements():
    """(how many float32 bit patterns 0 .. 0x7F800000 the two codes differ on, the last)."""
    count = 0
    last = np.int64(-1)
    for high in prange(1 << 15):
        for low in range(1 << 16):
            bits = np.uint32((high << 16) | low)
            if bits > np.uint32(0x7F800000):  # NaN: the kernels never code one this way
                continue
            y = bits.view(np.float32)
            if nearest_even_code(y) != magnitude_code(y, TIE_EVEN):
                count += 1
                last = max(last, np.int64(bits))
    return count, last


def test_every_non_negative_float32():
    count, last = _disagreements()
    assert count == 0, f"{count} float32 values differ, the largest {last:#010x}"


@pytest.mark.parametrize(("y", "code"), [
    (0.0, 0), (1e-45, 0), (0.25, 0), (np.nextafter(np.float32(0.25), np.float32(1)), 1),
    (0.5, 1), (0.75, 2), (1.0, 2), (1.25, 2), (1.5, 3), (1.75, 4), (2.0, 4), (2.5, 4),
    (3.0, 5), (3.5, 6), (4.0, 6), (5.0, 6), (np.nextafter(np.float32(5), np.float32(6)), 7),
    (6.0, 7), (7.0, 7), (2.0**21, 7), (3e38, 7), (np.inf, 7),
])
def test_hand_derived(y, code):
    assert nearest_even_code(np.float32(y)) == code
