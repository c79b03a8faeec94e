"""``Profile.mx_zero_block_scale``: the E8M0 byte a block of zeros gets under a scale rule
(MLX 0x7F, AMD Quark 0x01), on every backend and on the scalar CPU path too."""

import numpy as np
import pytest

import fp4ref
from fp4ref.kernels.cpu import simd
from fp4ref.profiles import get

from .helpers import BACKENDS


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("rule", ["floor", "rceil", "even", "mistralrs"])
@pytest.mark.parametrize("vector", [True, False])
def test_zero_blocks_get_the_profile_byte(backend, rule, vector):
    x = np.zeros((40, 32), np.float32)  # more than a group of 16 blocks (the floor path)
    x[1, 3] = -0.0
    x[2, 0], x[2, 1] = 6.0, -1.0  # a block that is not zero: its rule's byte, 127
    profile = get("ocp").with_options(scale_rule=rule, mx_zero_block_scale=0x7F)
    before = simd.use_vector_code(vector)
    try:
        q = fp4ref.quantize(x, profile=profile, backend=backend)
    finally:
        simd.use_vector_code(before)
    want = np.full(40, 0x7F, np.uint8)
    assert q.scales.reshape(-1).tolist() == want.tolist()
    codes = fp4ref.unpack(q.blocks)
    assert codes[1, 3] == 0x8 and codes[2, :2].tolist() == [7, 10]  # -0 keeps its sign
    assert not codes[[0, *range(3, 40)]].any()


def test_searches_ignore_it():
    x = np.zeros((1, 32), np.float32)
    profile = get("ocp").with_options(mx_zero_block_scale=0x01)
    assert fp4ref.quantize(x, profile=profile).scales.tolist() == [[0x01]]
    assert fp4ref.quantize(x, profile=profile, scale_rule="optimal").scales.tolist() == [[0]]


def test_validated():
    with pytest.raises(ValueError, match="mx_zero_block_scale must be None or an int in 0..254"):
        get("ocp").with_options(mx_zero_block_scale=255)
