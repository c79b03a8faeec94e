"""``scale_rule="optimal-hessian"`` on the GPU bit for bit against the numba CPU backend.

MXFP4 (the E8M0 candidates) and NVFP4 (the 126 positive finite E4M3 candidates), with
per-column-block Hessians given as blocks ``[K/B, B, B]`` or as activations ``[T, K]``,
each start rule / recipe, the element options, on small matrices holding zero blocks,
subnormals, element ties, NaN and Inf (:func:`.test_quantize._special`) and heavy-tailed
rows. On a real GPU a
larger random case runs too: the sums the search compares are where a fused multiply-add
would make the GPU's last bits differ from the CPU's.
"""

import warnings

import numpy as np
import pytest
from numba import cuda
from numba.cuda import config

import fp4ref
from fp4ref import _device
from fp4ref.profiles import get as get_profile

from .test_quantize import _same, _special


@pytest.fixture(autouse=True)
def _quiet_overflow():
    with warnings.catch_warnings():  # the simulator computes float32 overflow in numpy
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _activations(seed: int, k: int, tokens: int = 24) -> np.ndarray:
    """float32 activations [tokens, k] with a different spread in every column."""
    rng = np.random.default_rng(seed)
    spread = rng.uniform(0.1, 3.0, k).astype(np.float32)
    return rng.standard_normal((tokens, k)).astype(np.float32) * spread


def _matrix(nan: bool = True) -> np.ndarray:
    """10 x 64 float32: the special rows, then Student-t rows, whose blocks leave the search
    several candidates (so the Hessian decides: :func:`test_each_block_reads_its_hessian`)."""
    heavy = np.random.default_rng(3).standard_t(3, (4, 64)).astype(np.float32)
    return np.concatenate([_special(nan), heavy])


def _check(x: np.ndarray, hessian, **options) -> None:
    """GPU (device in, device out) against numba, for ``hessian`` as given."""
    options = dict(scale_rule="optimal-hessian", hessian=hessian, **options)
    expected = fp4ref.quantize(x, backend="numba", **options)
    got = fp4ref.quantize(cuda.to_device(x), **options)
    assert _device.is_device(got.blocks) and _device.is_device(got.scales)
    _same(got, expected, repr({k: v for k, v in options.items() if k != "hessian"}))


@pytest.mark.parametrize(("fmt", "profile"), [
    ("mxfp4", "qwantize"), ("mxfp4", "ocp"), ("mxfp4", "ggml"), ("nvfp4", "qwantize"),
    ("nvfp4", "ocp"), ("nvfp4", "compressed-tensors")])
def test_activations_and_blocks(fmt, profile):
    x = _matrix()
    block = 32 if fmt == "mxfp4" else 16
    activations = _activations(1, x.shape[1])
    tensor_scale = None
    if fmt == "nvfp4" and get_profile(profile).tensor_scale:
        tensor_scale = 0.01 if get_profile(profile).tensor_scale_direction == "decode" else 100.0
    _check(x, activations, format=fmt, profile=profile, tensor_scale=tensor_scale)
    _check(x, _blocks(activations, block), format=fmt, profile=profile,
           tensor_scale=tensor_scale)


def _blocks(activations: np.ndarray, block: int) -> np.ndarray:
    """float64 ``[K/B, B, B]``: ``X_j^T X_j`` plus a random symmetric perturbation, so
    the blocks are not the ones ``hessian=activations`` gives."""
    x = activations.astype(np.float64)
    parts = [a.T @ a for a in np.split(x, x.shape[1] // block, axis=1)]
    noise = np.random.default_rng(2).standard_normal((len(parts), block, block))
    return np.stack(parts) + 0.1 * (noise + noise.transpose(0, 2, 1))


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_element_options(fmt):
    x = _matrix()[1:]
    activations = _activations(3, x.shape[1])
    for rounding, zero_sign, order in (("away", "drop", "split-half"),
                                       ("zero", "keep", "high-first")):
        profile = get_profile("qwantize").with_options(zero_sign=zero_sign, nibble_order=order)
        _check(x, activations, format=fmt, profile=profile, rounding=rounding)


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_each_block_reads_its_hessian(fmt):
    """The cases above are sensitive to which Hessian block a block reads: on the CPU,
    reversing the column blocks' Hessians changes some scales."""
    block = 32 if fmt == "mxfp4" else 16
    h = _blocks(_activations(1, 64), block)
    options = dict(format=fmt, profile="qwantize", scale_rule="optimal-hessian",
                   backend="numba")
    a = fp4ref.quantize(_matrix(), hessian=h, **options)
    b = fp4ref.quantize(_matrix(), hessian=h[::-1].copy(), **options)
    assert (a.scales != b.scales).any()


def test_host_input_and_device_hessian():
    x = _special(nan=False)
    activations = _activations(4, x.shape[1])
    options = dict(format="nvfp4", profile="qwantize", scale_rule="optimal-hessian")
    got = fp4ref.quantize(x, backend="cuda", hessian=cuda.to_device(activations), **options)
    assert isinstance(got.blocks, np.ndarray) and isinstance(got.scales, np.ndarray)
    _same(got, fp4ref.quantize(x, backend="numba", hessian=activations, **options), "host x")


def test_errors_before_any_kernel():
    x = cuda.to_device(np.zeros((2, 64), np.float32))
    with pytest.raises(ValueError, match="needs hessian="):
        fp4ref.quantize(x, scale_rule="optimal-hessian")
    with pytest.raises(ValueError, match=r"shape \[K/32, 32, 32\] = \(2, 32, 32\)"):
        fp4ref.quantize(x, scale_rule="optimal-hessian", hessian=np.zeros((1, 32, 32)))
    with pytest.raises(ValueError, match="hessian applies to scale_rule='optimal-hessian'"):
        fp4ref.quantize(x, scale_rule="optimal", hessian=np.zeros((2, 32, 32)))


@pytest.mark.skipif(bool(config.ENABLE_CUDASIM), reason="a larger case for a real GPU")
@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_many_random_blocks(fmt):
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((512, 256)) * 10.0 ** rng.integers(-4, 4, (512, 1))).astype(
        np.float32)
    activations = _activations(12, 256, tokens=64)
    for rule, hessian in (("optimal", None), ("optimal-hessian", activations)):
        options = dict(format=fmt, profile="ocp", scale_rule=rule, hessian=hessian)
        expected = fp4ref.quantize(x, backend="numba", **options)
        _same(fp4ref.quantize(cuda.to_device(x), **options), expected, f"{fmt} {rule}")
