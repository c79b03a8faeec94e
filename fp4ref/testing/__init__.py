"""Fuzz your FP4 backend against fp4ref in a few lines of your own test suite.

Needs hypothesis (``pip install "fp4ref[test]"``). :mod:`fp4ref.testing.strategies` draws
the inputs where implementations disagree (ties, +-1 ulp, signed zeros, subnormals,
NaN/Inf, adversarial block maxima, E8M0 0x00/0xFF, padded swizzled scales); the
``assert_*_matches`` helpers run your function and fp4ref on the same input and compare the
results bit for bit, failing with the first mismatches and their inputs.

Example (a complete test module)::

    import numpy as np
    from hypothesis import given

    from fp4ref.testing import assert_dequantize_matches, assert_encode_matches
    from fp4ref.testing import strategies as fst


    def my_dequantize(blocks, scales):        # your backend, here a numpy look-up table
        lut = np.array([0, .5, 1, 1.5, 2, 3, 4, 6, -0., -.5, -1, -1.5, -2, -3, -4, -6],
                       np.float32)
        codes = np.stack([blocks & 15, blocks >> 4], -1).reshape(blocks.shape[0], -1)
        factor = np.ldexp(np.float32(1), scales.astype(np.int32) - 127).astype(np.float32)
        factor[scales == 255] = np.nan
        return lut[codes] * np.repeat(factor, 32, axis=1)


    @given(fst.mxfp4_tensors())
    def test_my_dequantize(tensor):
        assert_dequantize_matches(my_dequantize, *tensor, nan="any")


    @given(fst.float32_arrays())
    def test_my_encoder(x):
        assert_encode_matches(my_encode_e2m1, x)

with ``my_encode_e2m1`` your encoder (the fuzzing guide gives a numpy one). ``nan="any"``
accepts any NaN where fp4ref writes its canonical 0x7FC00000; the default compares NaN
bits too.

Importing this module warms fp4ref's kernels (:func:`fp4ref.warmup.warm_up`: a fraction
of a second with numba's cache, longer, with a line on stderr, when they compile on a fresh
install), so that hypothesis' default 200 ms deadline measures your function and fp4ref's
steady speed, not numba loading code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .. import api, warmup
from ..conformance.check import compare
from ..conformance.files import hex_cell
from ..quantize import quantize

__all__ = [
    "assert_bits_equal",
    "assert_dequantize_matches",
    "assert_encode_matches",
    "assert_quantize_matches",
]

#: How many mismatching elements an assertion message lists.
SHOWN = 5

warmup.warm_up()  # outside any test's deadline: the first calls load or compile kernels


def assert_bits_equal(expected: np.ndarray, got: Any, *, nan: str = "exact",
                      inputs: dict[str, np.ndarray] | None = None, what: str = "result") -> None:
    """Raise ``AssertionError`` unless ``got`` equals ``expected`` bit for bit.

    Parameters
    ----------
    expected : numpy.ndarray
        fp4ref's result.
    got : array_like
        Yours: the same dtype (or, for floats, unsigned integers holding the bits) and the
        same number of elements.
    nan : {"exact", "any"}
        Compare NaN bit patterns, or let any NaN match any NaN.
    inputs : dict of str to numpy.ndarray, optional
        Shown for each mismatch: the element (same size as the result) or its row.
    what : str
        Names the result in the message.
    """
    got = np.asarray(got)
    same, problem = compare(np.asarray(expected), got, nan)
    if same is None:
        raise AssertionError(f"{what}: {problem}")
    if same.all():
        return
    bad = np.flatnonzero(~same)
    lines = [f"{what}: {bad.size} of {same.size} elements differ from fp4ref"]
    for index in bad[:SHOWN]:
        index = int(index)
        where = tuple(int(i) for i in np.unravel_index(index, expected.shape))
        line = (f"  at {where}: fp4ref 0x{hex_cell(expected, index)} "
                f"({expected.reshape(-1)[index]!r}), got 0x{hex_cell(got, index)}")
        for name, array in (inputs or {}).items():
            if array.size == expected.size:
                line += f"; {name}=0x{hex_cell(array, index)}"
            elif array.ndim and expected.ndim and array.shape[0] == expected.shape[0]:
                line += f"; {name}[{where[0]}]={array[where[0]].tolist()}"
        lines.append(line)
    raise AssertionError("\n".join(lines))


def assert_dequantize_matches(
    impl: Callable[..., Any], blocks: np.ndarray, scales: np.ndarray,
    tensor_scale: Any = None, *, format: str | None = None, nibble_order: str = "low-first",
    scale_layout: str = "linear", dtype: str = "float32", nan: str = "exact",
) -> None:
    """``impl(blocks, scales)`` (``impl(blocks, scales, tensor_scale)`` for NVFP4) must
    return what :func:`fp4ref.dequantize` does, bit for bit.

    ``format`` defaults to ``"nvfp4"`` when ``tensor_scale`` is given, else ``"mxfp4"``;
    the other options are :func:`fp4ref.dequantize`'s.
    """
    fmt = format or ("mxfp4" if tensor_scale is None else "nvfp4")
    expected = api.dequantize(blocks, scales, format=fmt, tensor_scale=tensor_scale,
                              nibble_order=nibble_order, scale_layout=scale_layout, dtype=dtype)
    args = (blocks.copy(), scales.copy()) + (() if tensor_scale is None else (tensor_scale,))
    assert_bits_equal(expected, impl(*args), nan=nan,
                      inputs={"blocks": blocks, "scales": scales},
                      what=f"{fmt} dequantize to {dtype}")


def assert_encode_matches(
    impl: Callable[[np.ndarray], Any], x: np.ndarray, *, format: str = "e2m1",
    rounding: str = "even", saturate: bool = True,
) -> None:
    """``impl(x)`` must return fp4ref's codes for ``x`` (one uint8 per element).

    ``format`` ``"e2m1"`` (:func:`fp4ref.encode_e2m1`) or ``"e4m3"``
    (:func:`fp4ref.encode_e4m3` with ``saturate``); ``rounding`` is the tie rule.
    """
    if format == "e2m1":
        expected = api.encode_e2m1(x, rounding)
    elif format == "e4m3":
        expected = api.encode_e4m3(x, rounding, saturate)
    else:
        raise ValueError(f"format must be 'e2m1' or 'e4m3'; got {format!r}")
    assert_bits_equal(expected, impl(x.copy()), inputs={"x": x},
                      what=f"{format} encode ({rounding})")


def assert_quantize_matches(
    impl: Callable[[np.ndarray], Any], x: np.ndarray, **options: Any
) -> None:
    """``impl(x)`` must return ``(blocks, scales)`` equal to :func:`fp4ref.quantize`'s
    (``options``: ``format``, ``profile``, ``scale_rule``, ``rounding``, ``tensor_scale``)."""
    q = quantize(x, **options)
    got = impl(x.copy())
    if not isinstance(got, (tuple, list)) or len(got) < 2:
        raise AssertionError("quantize: impl must return (blocks, scales)")
    assert_bits_equal(q.scales, got[1], inputs={"x": x}, what="quantize scales")
    assert_bits_equal(q.blocks, got[0], inputs={"x": x}, what="quantize blocks")
