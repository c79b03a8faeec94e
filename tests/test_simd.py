"""The switch of :mod:`fp4ref.kernels.cpu.simd`: with the LLVM vector code off every call
takes the scalar numba path, and both paths give the same bytes."""

import numpy as np
import pytest

import fp4ref
from fp4ref import backends
from fp4ref.kernels.cpu import quantize as kernels
from fp4ref.kernels.cpu import simd
from fp4ref.kernels.options import QuantizeOptions
from fp4ref.spec.scale_rules import MX_RULES


def blocks(count: int, block: int, seed: int) -> np.ndarray:
    """float32 ``[count // block, block]``-shaped rows of mixed families: N(0, 1) at random
    binades (subnormal to huge), exact E2M1 values and midpoints, signed zeros, NaN, Inf."""
    rng = np.random.default_rng(seed)
    rows = count // 4
    normal = rng.standard_normal((rows, 4 * block)) * np.ldexp(
        1.0, rng.integers(-140, 120, (rows, 1)))
    grid = rng.choice(np.float32([0, .25, .5, .75, 1, 1.25, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6]),
                      (rows, 4 * block)) * rng.choice([-1.0, 1.0], (rows, 4 * block))
    x = np.concatenate([normal, grid]).astype(np.float32)
    x[0, :block] = -0.0
    x[1, 3] = np.nan
    x[2, 7] = -np.inf
    x[3, :block] = 0.0
    return x


@pytest.fixture
def scalar_only():
    previous = simd.use_vector_code(False)
    yield
    simd.use_vector_code(previous)


def both(call):
    """``call()`` with the vector code on, then off."""
    vector = call()
    previous = simd.use_vector_code(False)
    try:
        scalar = call()
    finally:
        simd.use_vector_code(previous)
    return vector, scalar


@pytest.mark.parametrize("profile", ["ocp", "mistralrs", "ggml", "qwantize", "modelopt"])
@pytest.mark.parametrize("rule", [None, *MX_RULES, "optimal"])
def test_mxfp4_same_bytes(profile, rule):
    x = blocks(2048, 32, seed=len(profile))
    vector, scalar = both(lambda: fp4ref.quantize(x, profile=profile, scale_rule=rule))
    assert np.array_equal(vector.scales, scalar.scales)
    assert np.array_equal(vector.blocks, scalar.blocks)


@pytest.mark.parametrize("profile,rule", [
    (p, r) for p in ("ocp", "qwantize", "comfy", "flashinfer", "mlx") for r in (None, "optimal")
    if not (p == "mlx" and r)])  # MLX's recipe has no search (refused)
def test_nvfp4_same_bytes(profile, rule):
    if profile == "comfy" and rule:
        pytest.skip("the comfy recipe has no scale search (fp4ref.quantize refuses one)")
    x = blocks(2048, 16, seed=7)
    vector, scalar = both(lambda: fp4ref.quantize(x, format="nvfp4", profile=profile,
                                                  scale_rule=rule))
    assert np.array_equal(vector.scales, scalar.scales)
    assert np.array_equal(vector.blocks, scalar.blocks)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("order", fp4ref.NIBBLE_ORDERS)
@pytest.mark.parametrize("stream", [False, True])
def test_dequantize_same_bits(monkeypatch, dtype, order, stream):
    monkeypatch.setattr(backends, "_STREAM_BYTES", 0 if stream else 1 << 62)
    # block b, byte i holds (b + 17 i) mod 256: every packed byte in every column
    packed = (np.add.outer(np.arange(256), 17 * np.arange(16)) % 256).astype(np.uint8)
    scales = np.arange(256, dtype=np.uint8)[:, None]
    vector, scalar = both(lambda: fp4ref.dequantize(packed, scales, nibble_order=order,
                                                    dtype=dtype))
    width = np.uint32 if dtype == "float32" else np.uint16
    assert np.array_equal(vector.view(width), scalar.view(width))


def test_switch_routes_every_call_to_the_scalar_path(scalar_only, monkeypatch):
    def fail(*args):
        raise AssertionError("vector kernel used")

    for key in ("mxfp4-rule", "mxfp4-search16"):
        monkeypatch.setitem(kernels.KERNELS, key, fail)
    x = np.ones((4, 32), np.float32)
    fp4ref.quantize(x)
    fp4ref.quantize(x, profile="qwantize", scale_rule="optimal")
    options = QuantizeOptions("nvfp4", "modelopt", fp4ref.profiles()["ocp"], 1.0)
    path = backends.get("numba").quantize_blocks(
        x.reshape(-1, 16), options, np.empty(8, np.uint8), np.empty((8, 8), np.uint8),
        np.zeros((0, 16, 16)))
    assert path == "nvfp4-rule"  # not "nvfp4-rule-fast"


def test_switch_arguments():
    with pytest.raises(TypeError, match="on must be a bool"):
        simd.use_vector_code(0)
    assert simd.use_vector_code(False) is True
    assert simd.vector_code() is False
    assert simd.use_vector_code(True) is False


def test_environment_switch():
    import os
    import subprocess
    import sys

    code = ("from fp4ref.kernels.cpu import simd; import fp4ref, numpy as np\n"
            "from fp4ref.kernels.options import QuantizeOptions\n"
            "o = QuantizeOptions('mxfp4', 'floor', fp4ref.profiles()['ocp'])\n"
            "print(simd.vector_code(), o.kernel.vector_code)")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "FP4REF_VECTOR": "0"}, timeout=120)
    assert run.stdout.split() == ["False", "False"], run.stderr
