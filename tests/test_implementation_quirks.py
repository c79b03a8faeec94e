"""The MXFP4 quirks of torchao 0.18, qwantize 0.1.1 and mistral.rs 0.9.5 as profile fields
(``Profile.nonfinite`` choices ``"torchao"``, ``"torchao-rceil"``, ``"qwantize"``,
``"mistralrs"``; ``Profile.e8m0_zero_divisor``; scale rule ``"torchao-rceil"``;
``decode_arithmetic="by-format"``): each implementation's minimal input with its bytes
derived by hand (and seen from the real implementation, ``tests/test_peers_profiles.py``),
on every backend, and the oracle against numba (vector code on and off) and CUDA (the
simulator here) on edge blocks."""

import numpy as np
import pytest

import fp4ref
from fp4ref.conformance import probes
from fp4ref.kernels.cpu import simd
from fp4ref.profiles import get
from fp4ref.spec.scale_rules import mx_scale

from .helpers import BACKENDS

NAN, INF = np.float32("nan"), np.float32("inf")


def _block(*values, bits=()):
    """One 32-element block: ``values``, then the float32 ``bits`` given as (index, bits),
    zeros elsewhere."""
    x = np.zeros((1, 32), np.float32)
    x[0, : len(values)] = values
    for i, b in bits:
        x.view(np.uint32)[0, i] = b
    return x


#: (profile, block, scale byte, first codes): each by hand from the implementation's steps.
CASES = [
    # torchao FLOOR: 2^-125 -> byte 0 (floor(-125) - 2, clamped), elements / 2^-126: 2.0, code 4
    ("torchao-floor", _block(2.0**-125), 0x00, [4, 0]),
    # torchao RCEIL on CPU: byte 0's reciprocal is 1.0: 2^-125 * 1 rounds to 0
    ("torchao-rceil", _block(2.0**-125), 0x00, [0, 0]),
    # amax = 6 * 2^20 + 0.5: f32(amax / 6) = 2^20 (1 + 2^-23), float32 log2 of it is 20.0,
    # ceil 20: byte 147 (the exact rceil: 148); 6291456.5 / 2^20 saturates to 6
    ("torchao-rceil", _block(np.nextafter(np.float32(6 * 2**20), INF)), 147, [7, 0]),
    # torchao FLOOR NaN block: 0xFF, x / Inf: 1.0 -> +0, -2.0 -> -0 (0x8), Inf / Inf is the
    # x86 default NaN 0xFFC00000 -> 0xB, the NaN 0x7FC00000 -> 3
    ("torchao-floor", _block(NAN, 1.0, -2.0, INF), 0xFF, [3, 0, 8, 0xB, 0]),
    # ... and a NaN with payload bit 21 set (0xFFE00000): sign, 3 + 1
    ("torchao-floor", _block(1.0, bits=[(0, 0xFFE00000)]), 0xFF, [0xC, 0]),
    # torchao FLOOR Inf block: the exponent field 255 gives 2^126, byte 253; Inf / 2^126 = Inf
    # saturates to 6 (7), -2 / 2^126 -> -0
    ("torchao-floor", _block(INF, -2.0), 253, [7, 8, 0]),
    # torchao RCEIL NaN block: every element times amax / 6 = 0x7FC00000: code 3
    ("torchao-rceil", _block(NAN, 1.0, -2.0, 0.0), 0xFF, [3, 3, 3, 3, 3]),
    # torchao RCEIL Inf block: 254, elements times 2^-127
    ("torchao-rceil", _block(INF, -2.0), 254, [7, 8, 0]),
    # qwantize NaN block: |x| / NaN buckets to 6, times torch.sign(x): NaN and zeros 0
    ("qwantize", _block(NAN, 1.0, -2.0, 0.0, -0.0), 0xFF, [0, 7, 0xF, 0, 0]),
    # qwantize Inf block: log2(Inf) clamped to 254; -2 / 2^127 -> 0x8 (x < 0)
    ("qwantize", _block(INF, -2.0), 254, [7, 8, 0]),
    # mistral.rs: the NaN is left out of the max (2: floor(log2(2 / 6)) + 127 = 125) and
    # coded 7 whatever its sign; 1 / 2^-2 = 4 (6), -2 -> -8 saturates (0xF)
    ("mistralrs", _block(NAN, 1.0, -2.0), 125, [7, 6, 0xF, 0]),
    # a negative NaN the same: amax 1, floor(log2(1 / 6)) + 127 = 124; 1 / 2^-3 saturates
    ("mistralrs", _block(1.0, bits=[(1, 0xFFC00000)]), 124, [7, 7, 0]),
    # mistral.rs Inf block: byte 0, elements / 2^-127: 1.0 and Inf saturate, 0 stays 0
    ("mistralrs", _block(INF, 1.0, 0.0), 0, [7, 7, 0]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,x,scale,codes", CASES)
def test_minimal_inputs(backend, name, x, scale, codes):
    q = fp4ref.quantize(x, profile=name, backend=backend)
    assert int(q.scales.reshape(-1)[0]) == scale
    assert fp4ref.unpack(q.blocks)[0, : len(codes)].tolist() == codes


def _edge_blocks() -> np.ndarray:
    rows = [p.x for p in probes.mxfp4()]
    rng = np.random.default_rng(5)
    mixed = rng.standard_normal((24, 32)).astype(np.float32)
    bits = mixed.view(np.uint32)
    for r in range(24):  # NaNs of several payloads and signs, infinities, subnormals
        cols = rng.choice(32, 3, replace=False)
        bits[r, cols] = rng.choice(
            [0x7FC00000, 0xFFC00000, 0x7FE00001, 0x7F800001, 0x7F800000, 0xFF800000, 0x00000001],
            3)
    with np.errstate(invalid="ignore"):  # Inf * tiny stays Inf, NaN stays NaN
        mixed[::5] *= np.float32(2.0**-128)
    return np.concatenate(rows + [mixed])


@pytest.mark.parametrize("backend", BACKENDS)
def test_qwantize_nvfp4_nan_block(backend):
    """nvfp4_naive: the NaN scale casts to 0x7F; |x| / NaN buckets to 6, times sign(x)."""
    x = np.zeros((2, 16), np.float32)
    x[0, :4] = [NAN, 1.0, -0.5, -0.0]
    x[1, :2] = [3.0, 1.0]  # finite: e4m3(3 / 6) = 0.5 (0x30), codes 7 (3 / 0.5 = 6), 4 (2)
    q = fp4ref.quantize(x, format="nvfp4", profile="qwantize", backend=backend)
    assert q.scales.reshape(-1).tolist() == [0x7F, 0x30]
    codes = fp4ref.unpack(q.blocks, block_size=16)
    assert codes[0, :5].tolist() == [0, 7, 0xF, 0, 0]
    assert codes[1, :3].tolist() == [7, 4, 0]


def _nv(*values):
    x = np.zeros((1, 16), np.float32)
    x[0, : len(values)] = values
    return x


#: torchao nvfp4_quantize (x86 NaN rules): (block, given s_t or None, byte, first codes).
NV_CASES = [
    # all zeros: s_t = 0 / 2688 = 0; (0 / 6) / 0 is the default NaN 0xFFC00000: byte 0xFF,
    # f32(0xFF) = 0xFFF00000, r = (1 / 0) / NaN is it, every x * r too: code 0xC
    (_nv(), None, 0xFF, [0xC, 0xC]),
    # s_t = 0 given: (1 / 6) / 0 = Inf -> 448 (0x7E); r = Inf / 448 = Inf; 1 * Inf, -0.5 *
    # Inf saturate (7, 0xF); 0 * Inf is 0xFFC00000: 0xB
    (_nv(1.0, -0.5), 0.0, 0x7E, [7, 0xF, 0xB]),
    # s_t = 1: a NaN block's NaN amax 0x7FC00000 gives 0x7F, f32(0x7F) = 0x7FF00000 = r:
    # code 4 everywhere
    (_nv(NAN, 1.0, 0.0), 1.0, 0x7F, [4, 4, 4]),
    # s_t = 1, Inf: Inf -> 448, Inf * (1 / 448) saturates, 1 / 448 rounds to 0
    (_nv(INF, 1.0), 1.0, 0x7E, [7, 0, 0]),
    # s_t = Inf: (3 / 6) / Inf = 0 -> clamped to 2^-6 (0x08); r = (1 / Inf) / 2^-6 = 0
    (_nv(3.0, -1.0), float("inf"), 0x08, [0, 8, 0]),
    # s_t = Inf, an Inf block: Inf / Inf is 0xFFC00000 (0xFF); r = 0 / 0xFFF00000 is it
    (_nv(INF, 1.0), float("inf"), 0xFF, [0xC, 0xC, 0xC]),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("x,given,scale,codes", NV_CASES)
def test_torchao_nvfp4_nonfinite(backend, x, given, scale, codes):
    q = fp4ref.quantize(x, format="nvfp4", profile="torchao-floor", tensor_scale=given,
                        backend=backend)
    assert int(q.scales.reshape(-1)[0]) == scale
    assert fp4ref.unpack(q.blocks, block_size=16)[0, : len(codes)].tolist() == codes


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("profile", ["torchao-floor", "torchao-rceil"])
def test_torchao_nvfp4_nan_tensor(backend, profile):
    """A NaN in the tensor, no tensor scale given: torchao's callers take torch.max(|x|),
    which on x86 is the NaN 0xFFFFFFFF (run: docs/findings.md 20); s_t = that NaN / 2688
    keeps it, so the block holding the NaN gets 0x7F (its own NaN amax), the other 0xFF
    (amax / 6 / NaN is that NaN), and every x * r is 0xFFFFFFFF: code 0xC (seen from
    torchao 0.18 on ``ones(32)`` with x[3] = NaN)."""
    x = np.ones((1, 32), np.float32)
    x[0, 3] = NAN
    q = fp4ref.quantize(x, format="nvfp4", profile=profile, backend=backend)
    assert int(np.float32(q.stored_tensor_scale).view(np.uint32)) == 0xFFFFFFFF
    assert q.scales.reshape(-1).tolist() == [0x7F, 0xFF]
    assert fp4ref.unpack(q.blocks, block_size=16).reshape(-1).tolist() == [0xC] * 32


@pytest.mark.parametrize("name,fmt,rule", [
    ("torchao-floor", "mxfp4", None), ("torchao-rceil", "mxfp4", None),
    ("qwantize", "mxfp4", None), ("mistralrs", "mxfp4", None),
    ("qwantize", "mxfp4", "optimal"), ("qwantize", "nvfp4", None),
    ("qwantize", "nvfp4", "optimal"), ("torchao-floor", "nvfp4", None)])
def test_oracle_numba_and_cuda_agree(name, fmt, rule):
    x = _edge_blocks()
    if rule:  # the searches are slow in the oracle: fewer blocks
        x = x[-4:]
    options = {"profile": name, "format": fmt, "scale_rule": rule}
    want = fp4ref.quantize(x, backend="python", **options)
    results = []
    for vector in (True, False):
        before = simd.use_vector_code(vector)
        try:
            results.append(fp4ref.quantize(x, backend="numba", **options))
        finally:
            simd.use_vector_code(before)
    if "cuda" in BACKENDS:
        results.append(fp4ref.quantize(x, backend="cuda", **options))
    for got in results:
        assert np.array_equal(got.scales, want.scales)
        assert np.array_equal(got.blocks, want.blocks)


def test_torchao_rceil_rule_only_where_float32_log2_rounds():
    """The rule is exact rceil but where float32 log2 of the quotient rounds onto an
    integer: a quotient 1 ulp above 2^k, log2 k + 1.7e-7, for |k| >= 4 (half an ulp of k is
    above 1.7e-7: 1 byte lower), not k = 2 (half an ulp of 2 is 1.2e-7); never on N(0, 1)
    block maxima."""
    amax = np.abs(probes.gaussian((64, 32), 2)).max(1)
    for a in amax:
        assert mx_scale(float(a), "torchao-rceil") == mx_scale(float(a), "rceil")
    for k in (2, 4, 20, -20, 100):
        q = np.nextafter(np.float32(2.0**k), np.float32(np.inf))
        a = float(q * np.float32(6))  # f32(a / 6) is q again
        assert float(np.float32(a) / np.float32(6)) == float(q)
        assert mx_scale(a, "rceil") == 127 + k + 1
        assert mx_scale(a, "torchao-rceil") == 127 + k + (k == 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_torchao_decode_arithmetic(backend):
    """MXFP4 as "output-dtype": scale 0x64 (2^-27) is 0 in float16, so 6 * 2^-27 decodes
    to +0 (the exact product rounds to 2^-24, 0x0001). NVFP4 as "scale-first": P * f32(s_b
    * s_t), numpy's float32 arithmetic as the oracle."""
    blocks = np.full((1, 16), 0x07, np.uint8)  # codes 7, 0, 7, 0, ...
    out = fp4ref.dequantize(blocks, np.array([[0x64]], np.uint8), profile="torchao-floor",
                            dtype="float16", backend=backend)
    assert out.view(np.uint16)[0, :2].tolist() == [0, 0]
    exact = fp4ref.dequantize(blocks, np.array([[0x64]], np.uint8), dtype="float16",
                              backend=backend)
    assert exact.view(np.uint16)[0, 0] == 0x0001
    t = np.float32(1 / 3)
    nv = np.full((1, 8), 0x77, np.uint8)  # code 7 (6.0) everywhere
    for byte, s_b in ((0x3D, 1.625), (0x4E, 7.0), (0x31, 0.5625)):
        got = fp4ref.dequantize(nv, np.array([[byte]], np.uint8), format="nvfp4",
                                profile="torchao-floor", tensor_scale=t, backend=backend)
        want = np.float32(6.0) * (np.float32(s_b) * t)
        assert got[0, 0].view(np.uint32) == want.view(np.uint32)


def test_validated():
    with pytest.raises(ValueError, match="e8m0_zero_divisor must be None or a finite real > 0"):
        get("ocp").with_options(e8m0_zero_divisor=0.0)
    with pytest.raises(ValueError, match="nonfinite must be one of"):
        get("ocp").with_options(nonfinite="torch")
