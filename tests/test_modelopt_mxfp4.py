"""Profile ``modelopt-mxfp4`` (ModelOpt 0.47 ``MXFP4QTensor``) on minimal inputs whose
bytes are derived by hand from its ``quantize`` (scale ``ceil(max(log2(f32(amax / 6)),
-127)) + 127`` in float32, elements ``x / 2^(s - 127)`` coded by ``cast_fp4``: the count of
``E2M1_bounds`` strictly below ``|q|``, sign bit ``(2 - torch.sign(q)) // 2``), on every
backend (python oracle, numba CPU, CUDA, simulated in the normal suite)."""

import warnings

import numpy as np
import pytest

import fp4ref

from .helpers import BACKENDS

F32 = np.float32


def _host(a):
    return a if isinstance(a, np.ndarray) else a.copy_to_host()


def _quantize(x, backend):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        q = fp4ref.quantize(x, format="mxfp4", profile="modelopt-mxfp4", backend=backend)
    return _host(q.scales).reshape(-1).tolist(), _host(q.blocks).reshape(x.shape[0], -1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_zero_signs_ties_and_the_log2_rule(backend):
    """Row 0, amax 6: 6 / 6 = 1, log2 0 -> 0x7F, q = x. +0 and -0: sign(q) = 0 -> sign bit
    1 -> 0x8 (byte 0x88); 1e-3 > 0 -> 0x0, -1e-3 -> 0x8 (0x80); 0.25 is no bound's
    strict superior -> 0 (ties toward zero), -0.25 -> 0x8 (0x80); 0.75 -> 1, 6 -> 7 (0x71);
    the zero padding 0x88.
    Row 1, amax 6 * 2^100 -> 0x7F + 100 = 0xE3; 6 -> 7 and 1e-45 / 2^100 underflows to +0
    -> 0x8 (0x87), a positive input with the sign bit.
    Row 2, amax = 6144 + 2^-11: f32(amax / 6) = 1024 * (1 + 2^-23), whose float32 log2 is
    10 + 1.7e-7 rounded to 10.0 -> 0x7F + 10 = 0x89 (the exact ceiling would be 11); q =
    6.0000005 > 5 -> 7 (0x87).
    Row 3, float32 max: log2(5.67e37) = 125.4 -> 126 -> 0xFD; 3.4028235e38 / 2^126 =
    3.9999998 > 3.5 -> 6, -1 / 2^126 (nonzero, negative) -> 0x8 (0x86)."""
    x = np.zeros((4, 32), F32)
    x[0, :8] = [0.0, -0.0, 1e-3, -1e-3, 0.25, -0.25, 0.75, 6.0]
    x[1, 0], x[1, 1] = F32(6 * 2.0**100), F32(1e-45)
    x[2, 0] = F32(6144 + 2.0**-11)
    x[3, 0], x[3, 1] = np.finfo(F32).max, -1.0
    scales, blocks = _quantize(x, backend)
    assert scales == [0x7F, 0xE3, 0x89, 0xFD]
    assert blocks[0].tolist() == [0x88, 0x80, 0x80, 0x71] + [0x88] * 12
    assert blocks[1].tolist() == [0x87] + [0x88] * 15
    assert blocks[2].tolist() == [0x87] + [0x88] * 15
    assert blocks[3].tolist() == [0x86] + [0x88] * 15


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_inf_and_zero_blocks(backend):
    """A NaN or Inf block: torch.max gives NaN / Inf, ceil(log2) + 127 is NaN / Inf, whose
    uint8 cast is 0 on x86 -> 0x00; every x / NaN, x / Inf is NaN or a zero, coded 0x8
    (bytes 0x88). A zero block: log2(0) = -Inf, max with -127 -> 0x00, codes 0x8."""
    x = np.zeros((3, 32), F32)
    x[0, 0], x[0, 1] = np.nan, 2.0
    x[1, 5], x[1, 6] = -np.inf, 1.0
    scales, blocks = _quantize(x, backend)
    assert scales == [0x00, 0x00, 0x00]
    assert blocks.tolist() == [[0x88] * 16] * 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode(backend):
    """MXFP4QTensor.dequantize: sign * value * exp2(s - 127) in float32: code 0x8 at 0x00
    is -1 * 0 * 2^-127 = -0.0 (bits 0x80000000); 0xFF is exp2(128) = +Inf, 0.5 * Inf."""
    blocks = np.array([[0x88] * 16, [0x71] * 16], np.uint8)
    scales = np.array([[0x00], [0xFF]], np.uint8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = _host(fp4ref.dequantize(blocks, scales, format="mxfp4", profile="modelopt-mxfp4",
                                      backend=backend))
    assert out[0].view(np.uint32).tolist() == [0x80000000] * 32
    assert out[1].view(np.uint32).tolist() == [0x7F800000] * 32


def test_no_nvfp4():
    """NVFP4QTensor is profile ``modelopt``; this one has no NVFP4 quantizer."""
    with pytest.raises(ValueError, match="no NVFP4 quantizer"):
        fp4ref.quantize(np.zeros((1, 16), F32), format="nvfp4", profile="modelopt-mxfp4")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "python"])
def test_probes_agree_with_the_oracle(backend):
    """Every MXFP4 probe of :mod:`fp4ref.conformance.probes` (edge classes): the numba and
    CUDA kernels give the python oracle's bytes."""
    from fp4ref.conformance import probes

    for probe in probes.probes("mxfp4"):
        (ours, codes), (oracle, expected) = _quantize(probe.x, backend), _quantize(probe.x,
                                                                                  "python")
        assert ours == oracle and np.array_equal(codes, expected), probe.label
