"""Test inputs shared by the codec tests (data only: no expected values are computed here)."""

import numpy as np

import fp4ref

#: Every backend that runs here: python, numba, and cuda on a GPU or in numba's simulator
#: (``conftest.py`` chooses the mode), so the front-door tests run over all three.
BACKENDS = tuple(fp4ref.available_backends())


def float32_all_magnitudes(count: int, seed: int = 0) -> np.ndarray:
    """``count`` float32 values with uniformly random bit patterns (every binade, sign,
    subnormals, infinities and NaNs)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**32, count, dtype=np.uint64).astype(np.uint32).view(np.float32)


def around(points, ulps: int = 1) -> np.ndarray:
    """Each float32 point and its neighbours up to ``ulps`` ulps away, both signs."""
    points = np.asarray(points, np.float32)
    out = [points]
    up, down = points.copy(), points.copy()
    for _ in range(ulps):
        up = np.nextafter(up, np.float32(np.inf))
        down = np.nextafter(down, np.float32(-np.inf))
        out += [up, down]
    values = np.concatenate(out)
    return np.concatenate([values, -values])


def bits(array: np.ndarray) -> np.ndarray:
    """The raw bits of a float array, as unsigned integers of the same width."""
    return array.view({4: np.uint32, 2: np.uint16, 1: np.uint8}[array.dtype.itemsize])


def require_peer(module: str):
    """Import a peer implementation for a comparison test.

    Skips the test when the peer is not installed, unless ``FP4REF_REQUIRE_PEERS=1`` (set by
    CI's peers step), where a missing peer is an error: a skipped comparison proves nothing.
    """
    import importlib
    import os

    import pytest

    if os.environ.get("FP4REF_REQUIRE_PEERS") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module)


def kernel_options(format: str = "mxfp4", profile: str = "ocp", rule: str | None = None,
                   tensor_operand: float = 1.0, **fields):
    """The :class:`~fp4ref.kernels.options.KernelOptions` of a quantization under the named
    ``profile`` with ``fields`` (profile fields, by name) replaced and scale rule ``rule``
    (the profile's rule or recipe if omitted), built by the translation itself."""
    from fp4ref.kernels.options import QuantizeOptions

    prof = fp4ref.profiles()[profile].with_options(**fields)
    if rule is None:
        rule = prof.scale_rule if format == "mxfp4" else prof.nvfp4_recipe
    return QuantizeOptions(format, rule, prof, tensor_operand).kernel
