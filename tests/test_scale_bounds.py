"""The NVFP4 block scale looked up from the amax (:func:`fp4ref.kernels.scale_rules.
scale_by_bounds` over :func:`~fp4ref.kernels.scale_rules.nvfp4_scale_bounds`, the GPU rule
kernel's way) against the byte the recipe computes (:func:`~fp4ref.kernels.scale_rules.
nvfp4_block_scale`): every amax in a stride of the float32 range, every amax within 3 of
each bound, for each recipe the lookup serves, with the profiles' clamps and zero-block
scales and extreme tensor operands."""

import math

import numpy as np
import pytest
from numba import njit, prange

from fp4ref.kernels.options import (
    RECIPE_CT,
    RECIPE_MLX,
    RECIPE_MODELOPT,
    RECIPE_PLAIN,
    RECIPE_TORCHAO,
)
from fp4ref.kernels.scale_rules import nvfp4_block_scale, nvfp4_scale_bounds, scale_by_bounds

INF_BITS = 0x7F800000


@njit(parallel=True, cache=True)
def _disagreements(bounds, recipe, tensor, low, high, zero_block, zero_scale, stride):
    """Amaxes (float32 bits) on a stride and around each bound where the two bytes differ."""
    count = 0
    strided = INF_BITS // stride + 1
    for i in prange(strided + bounds.size):
        t = min(i * stride, INF_BITS) if i < strided else min(bounds[i - strided], INF_BITS)
        for k in range(-3, 4):
            u = min(max(t + k, 0), INF_BITS)
            amax = float(np.uint32(u).view(np.float32))
            count += scale_by_bounds(u, bounds) != nvfp4_block_scale(
                amax, recipe, tensor, low, high, zero_block, zero_scale)
    return count


CASES = [  # recipe, tensor operand, clamp low, clamp high, zero block, zero scale
    (RECIPE_MODELOPT, 1.0 / 2688, -math.inf, math.inf, False, 0.0),  # OCP
    (RECIPE_MODELOPT, 0.0021676747, 2.0**-9, 448.0, True, 1.0),  # ModelOpt
    (RECIPE_MODELOPT, 1e-38, -math.inf, math.inf, True, 1.0),
    (RECIPE_MODELOPT, 3e37, -math.inf, math.inf, True, 1.0),
    (RECIPE_TORCHAO, 461.3, 2.0**-6, 448.0, False, 0.0),  # torchao multiplies later
    (RECIPE_TORCHAO, 2.0**-140, 2.0**-6, 448.0, False, 0.0),
    (RECIPE_CT, 461.3, -math.inf, math.inf, True, 1.0),  # compressed-tensors
    (RECIPE_CT, 1e30, -math.inf, math.inf, True, 0.5),
    (RECIPE_PLAIN, 1.0, -math.inf, math.inf, False, 0.0),  # qwantize: no tensor scale
]


@pytest.mark.parametrize("case", CASES)
def test_lookup_equals_the_recipe(case):
    bounds, usable = nvfp4_scale_bounds(*case)
    assert usable, case
    assert _disagreements(bounds, *case, 9973) == 0, case


@pytest.mark.parametrize("tensor", [0.0, -1.0, math.inf, math.nan])
def test_unusable_operands_are_refused(tensor):
    assert not nvfp4_scale_bounds(RECIPE_MODELOPT, tensor, -math.inf, math.inf, False, 0.0)[1]


def test_mlx_is_refused():
    assert not nvfp4_scale_bounds(RECIPE_MLX, 1.0, -math.inf, math.inf, False, 0.0)[1]


def test_hand_derived_bytes():
    """E4M3 bytes of amax / 6 with a unit tensor operand (OCP: 0x38 is 1.0, 0x7E is 448)."""
    bounds, _ = nvfp4_scale_bounds(RECIPE_PLAIN, 1.0, -math.inf, math.inf, False, 0.0)
    bits = lambda v: int(np.float32(v).view(np.uint32))  # noqa: E731
    assert scale_by_bounds(0, bounds) == 0
    assert scale_by_bounds(bits(6.0), bounds) == 0x38
    assert scale_by_bounds(bits(6.0 * 448), bounds) == 0x7E
    assert scale_by_bounds(INF_BITS, bounds) == 0x7E
    assert scale_by_bounds(bits(6.0 * 1.0625), bounds) == 0x38  # the tie 1.0625 -> even 1.0
    assert scale_by_bounds(bits(6.0 * 1.0625) + 1, bounds) == 0x39
