"""fp4ref.ops on the CUDA backend, bit for bit against the Fraction definitions of
fp4ref.spec.ops, both accumulation modes.

Runs on a GPU or in numba's simulator (see ``conftest.py``); inputs are tiny because the
simulator runs every GPU thread as a Python thread.
"""

import numpy as np
import pytest

import fp4ref
from fp4ref import ops
from fp4ref.spec import ops as spec

from ..helpers import bits

BLOCK = {"mxfp4": 32, "nvfp4": 16}
MODES = ops.ACCUMULATE
# Values with cancellations, ties, subnormal products and special values.
VALUES = np.array([1.0, -1.0, 2.0**-24, -(2.0**-30), 2.0**24, 3.0, -0.0, 0.0, 1e-40, 2.0**-22,
                   0.37, -5.5, np.inf, -np.inf, np.nan, 3e38], np.float32)


def _case(fmt: str, experts: int, seed: int):
    rng = np.random.default_rng(seed)
    k, n = 2 * BLOCK[fmt], 2
    blocks = rng.integers(0, 256, (experts, n, k // 2), dtype=np.uint8)
    scales = rng.integers(0, 256, (experts, n, 2), dtype=np.uint8)
    scales[..., 0] = rng.integers(120, 135, (experts, n))  # one finite block per row
    x = rng.choice(VALUES[:12], (3, k)).astype(np.float32)
    x[2, rng.integers(0, k, 2)] = VALUES[12:14]  # infinities in one row only
    bias = rng.choice(VALUES[:12], (experts, n)).astype(np.float32)
    return blocks, scales, x, bias


def _rows(blocks, scales, fmt, tensor_scale, order):
    t = int(np.float32(tensor_scale).view(np.uint32))
    return spec.weight_rows(blocks.tolist(), scales.tolist(), fmt, t, order)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("fmt,order", [("mxfp4", "low-first"), ("nvfp4", "split-half"),
                                       ("mxfp4", "high-first")])
def test_linear_equals_the_fraction_definition(mode, fmt, order):
    blocks, scales, x, bias = _case(fmt, 1, 0)
    t = 0.37 if fmt == "nvfp4" else None
    kwargs = dict(format=fmt, nibble_order=order, tensor_scale=t)
    got = ops.linear(x, (blocks[0], scales[0]), bias[0], accumulate=mode, backend="cuda",
                     **kwargs)
    w = _rows(blocks[0], scales[0], fmt, 1.0 if t is None else t, order)
    expected = spec.linear(bits(x).tolist(), w, bits(bias[0]).tolist(), mode, BLOCK[fmt])
    assert bits(got).tolist() == expected


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("per_slot", [False, True])
def test_moe_linear_equals_the_fraction_definition(mode, per_slot):
    blocks, scales, x, bias = _case("mxfp4", 3, 1)
    indices = np.array([[2, 0], [2, 2], [1, 2]], np.int32)
    if per_slot:
        x = np.stack([x, x[::-1]], axis=1)  # [T, topk, K]
    got = ops.moe_linear(x, (blocks, scales), indices, bias, accumulate=mode, backend="cuda")
    w = [_rows(blocks[e], scales[e], "mxfp4", 1.0, "low-first") for e in range(3)]
    expected = spec.moe_linear(bits(x).tolist(), w, indices.tolist(), bits(bias).tolist(),
                               mode, 32, per_slot)
    assert bits(got).tolist() == expected


@pytest.mark.parametrize("mode", MODES)
def test_no_fused_multiply_add(mode):
    # Weights t = 1 + 2^-12 (NVFP4 code 1.0, block scale 1.0, tensor scale t); x = (-t, t).
    # fl(-t * t) = -(1 + 2^-11) (a tie, to even), then fl(t * t) - (1 + 2^-11) = 0; an FMA
    # would give t * t - (1 + 2^-11) = 2^-24 (0x33800000). The exact sum is 0 too.
    t = np.float32(1 + 2.0**-12)
    blocks, scales = np.full((1, 8), 0x22, np.uint8), np.array([[0x38]], np.uint8)
    x = np.zeros((1, 16), np.float32)
    x[0, :2] = -t, t
    got = ops.linear(x, (blocks, scales), format="nvfp4", tensor_scale=t, accumulate=mode,
                     backend="cuda")
    assert bits(got)[0, 0] == 0


def test_cuda_equals_numba():
    blocks, scales, x, bias = _case("nvfp4", 2, 2)
    indices = np.array([[1], [0], [1]], np.int64)
    for mode in MODES:
        kwargs = dict(format="nvfp4", tensor_scale=3e-3, accumulate=mode)
        gpu = ops.moe_linear(x, (blocks, scales), indices, bias, backend="cuda", **kwargs)
        cpu = ops.moe_linear(x, (blocks, scales), indices, bias, backend="numba", **kwargs)
        assert np.array_equal(bits(gpu), bits(cpu))
    assert "cuda" in fp4ref.available_backends()
