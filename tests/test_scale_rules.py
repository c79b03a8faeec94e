"""Scale rules at their edge cases: hand-derived bytes (spec arithmetic, or bytes measured
by running the peers), checked on the oracle and the numba scalar twin."""

import numpy as np
import pytest

from fp4ref.kernels import scale_rules as kernel
from fp4ref.kernels.options import code
from fp4ref.spec import scale_rules

from .helpers import around, kernel_options

BELOW_8 = float(np.nextafter(np.float32(8), np.float32(0)))  # 7.9999995
MAX32 = float(np.finfo(np.float32).max)

# (rule, amax, byte): derived by hand from each rule's definition.
CASES = [
    # floor (OCP 6.3): floor(log2 amax) - 2, clamp -127, zero -> 0
    ("floor", 0.0, 0), ("floor", 1.0, 125), ("floor", 6.0, 127), ("floor", BELOW_8, 127),
    ("floor", 8.0, 128), ("floor", 2.0**-125, 0), ("floor", 2.0**-124, 1),
    ("floor", 2.0**-149, 0), ("floor", MAX32, 252),
    # rceil: ceil(log2(f32(amax / 6)))
    ("rceil", 0.0, 0), ("rceil", 1.0, 125), ("rceil", 6.0, 127), ("rceil", 6.5, 128),
    ("rceil", BELOW_8, 128), ("rceil", 12.0, 128), ("rceil", 3.49, 127), ("rceil", MAX32, 253),
    ("rceil", 2.0**-149, 0),
    # ceil: ceil(log2 amax) - 2
    ("ceil", 0.0, 0), ("ceil", 1.0, 125), ("ceil", 4.0, 127), ("ceil", 6.0, 128),
    ("ceil", 3.49, 127),
    # even: bits + 0x200000, mantissa masked, floor
    ("even", 0.0, 0), ("even", 6.0, 127), ("even", 6.5, 127), ("even", 7.0, 128),
    ("even", 3.49, 126), ("even", 3.5, 127), ("even", MAX32, 253),
    # nearest: round(log2(amax / 6)); 9 / 6 = 1.5 >= sqrt 2, 8.4 / 6 = 1.4 < sqrt 2
    ("nearest", 0.0, 0), ("nearest", 6.0, 127), ("nearest", 9.0, 128), ("nearest", 8.4, 127),
    ("nearest", 3.0, 126),
    # mistralrs: floor(log2f(amax / 6)) + 127 in [0, 254], zero -> 127
    ("mistralrs", 0.0, 127), ("mistralrs", 6.0, 127), ("mistralrs", BELOW_8, 127),
    ("mistralrs", 5.9, 126), ("mistralrs", 1.0, 124), ("mistralrs", 2.0**-149, 0),
    ("mistralrs", 1e-38, 0), ("mistralrs", MAX32, 252),
    # qwantize: floor(log2f(max(amax, 1e-30)) - 2 + 127) in [1, 254]
    ("qwantize", 0.0, 25), ("qwantize", 2.0**-124, 25), ("qwantize", 1.0, 125),
    ("qwantize", 6.0, 127), ("qwantize", BELOW_8, 128), ("qwantize", 1e-20, 58),
    # ggml: floor(log2f amax) - 2 + 127 mod 256
    ("ggml", 0.0, 0), ("ggml", BELOW_8, 128), ("ggml", 2.0**-125, 0), ("ggml", 2.0**-126, 255),
    ("ggml", 2.0**-127, 254), ("ggml", 2.0**-128, 253), ("ggml", 2.0**-149, 232),
    # exponent (vLLM ROUND_DOWN): the exponent field of f32(amax / 6); subnormal -> 0
    ("exponent", 0.0, 0), ("exponent", 6.0, 127), ("exponent", 11.99, 127),
    ("exponent", 12.0, 128), ("exponent", 5.99, 126), ("exponent", BELOW_8, 127),
    ("exponent", 6 * 2.0**-126, 1), ("exponent", 6 * 2.0**-127, 0), ("exponent", MAX32, 252),
]


@pytest.mark.parametrize("rule,amax,byte", CASES)
def test_mx_scale_oracle(rule, amax, byte):
    assert scale_rules.mx_scale(float(np.float32(amax)), rule) == byte


@pytest.mark.parametrize("rule,amax,byte", CASES)
def test_mx_scale_kernel(rule, amax, byte):
    assert kernel.mx_scale(float(np.float32(amax)), code("scale_rule", rule)) == byte


@pytest.mark.parametrize("rule", scale_rules.MX_RULES)
def test_rules_agree_near_powers_of_two(rule):
    """Oracle and kernel on every float32 within 4 ulps of 2^k and 6 * 2^k."""
    points = np.array([2.0**k for k in range(-149, 128)] + [6 * 2.0**k for k in range(-149, 125)],
                      np.float32)
    for amax in np.abs(around(points, 4)):
        a = float(amax)
        assert scale_rules.mx_scale(a, rule) == kernel.mx_scale(a, code("scale_rule", rule))


# NVFP4 recipes: (recipe, amax, tensor, clamp, zero_scale, byte)
NV_CASES = [
    ("plain", 6.0, 1.0, None, None, 0x38),            # amax / 6 = 1.0
    ("plain", 6 * 1.0625, 1.0, None, None, 0x38),     # tie 1.0 / 1.125 -> even 1.0
    ("plain", 6 * 1.1875, 1.0, None, None, 0x3A),     # tie -> 1.25
    ("plain", 6 * 460.0, 1.0, None, None, 0x7E),      # saturates to 448
    ("plain", 0.0, 1.0, None, None, 0x00),
    ("modelopt", 0.0, 1.0, (2.0**-9, 448.0), 1.0, 0x38),   # zero block -> 1.0
    ("modelopt", 6e-4, 1.0, (2.0**-9, 448.0), 1.0, 0x01),  # 1e-4 clamps up to 2^-9
    ("torchao", 0.0, 1.0, (2.0**-6, 448.0), None, 0x08),   # clamp to 2^-6
    ("compressed-tensors", 0.0, 1.0, None, 0.125, 0x20),   # zero byte -> 0.125
    ("compressed-tensors", 6.0, 2.0, None, 0.125, 0x40),   # G * amax / 6 = 2
    ("modelopt", 12.0, 2.0, None, None, 0x38),             # 12 / (6 * 2) = 1
]


@pytest.mark.parametrize("recipe,amax,tensor,clamp,zero,byte", NV_CASES)
def test_nvfp4_block_scale(recipe, amax, tensor, clamp, zero, byte):
    assert scale_rules.nvfp4_block_scale(amax, recipe, tensor, clamp, zero) == byte
    o = kernel_options("nvfp4", nvfp4_recipe=recipe, block_scale_clamp=clamp,
                       zero_block_scale=zero)
    got = kernel.nvfp4_block_scale(amax, o.nvfp4_recipe, tensor, o.clamp_low, o.clamp_high,
                                   o.zero_block, o.zero_block_scale)
    assert got == byte
