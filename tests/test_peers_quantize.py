"""Bit-exact agreement of fp4ref.quantize with real peers (``pytest -m peers``; each test
skips when its peer is not importable). Data: random normal rows at several magnitudes."""

import numpy as np
import pytest

import fp4ref

pytestmark = pytest.mark.peers
torch = pytest.importorskip("torch")


def data(rows=64, cols=256, seed=0):
    rng = np.random.default_rng(seed)
    scale = rng.choice([1e-3, 0.02, 1.0, 300.0], (rows, 1))
    return (rng.standard_normal((rows, cols)) * scale).astype(np.float32)


def codes_from_values(q):
    """qwantize's signed codebook floats -> E2M1 codes (sign bit kept, -0.0 -> 0x8)."""
    table = np.array([0, .5, 1, 1.5, 2, 3, 4, 6], np.float32)
    magnitude = np.searchsorted(table, np.abs(q)).astype(np.uint8)
    assert np.array_equal(table[magnitude], np.abs(q))
    return magnitude | (np.signbit(q).astype(np.uint8) << 3)


@pytest.mark.parametrize("fmt,optimal", [("mxfp4", False), ("mxfp4", True), ("nvfp4", False),
                                         ("nvfp4", True)])
def test_qwantize(fmt, optimal):
    qw = pytest.importorskip("qwantize")
    x = data()
    block = 32 if fmt == "mxfp4" else 16
    function = getattr(qw, f"{fmt}_{'optimal' if optimal else 'naive'}")
    s, q = function(torch.from_numpy(x).reshape(x.shape[0], -1, block))
    if fmt == "mxfp4":
        expected_scales = (torch.log2(s) + 127).round().to(torch.uint8).numpy()
    else:
        expected_scales = s.to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    ours = fp4ref.quantize(x, format=fmt, profile="qwantize",
                           scale_rule="optimal" if optimal else None)
    assert np.array_equal(ours.scales, expected_scales)
    expected_codes = codes_from_values(q.reshape(x.shape).numpy())
    assert np.array_equal(fp4ref.unpack(ours.blocks), expected_codes)


def test_gguf_mxfp4():
    quants = pytest.importorskip("gguf.quants")
    gguf = pytest.importorskip("gguf")
    x = data()
    raw = quants.quantize(x, gguf.GGMLQuantizationType.MXFP4).reshape(x.shape[0], -1, 17)
    ours = fp4ref.quantize(x, profile="ggml")
    assert np.array_equal(ours.scales, raw[:, :, 0])
    assert np.array_equal(ours.blocks.reshape(x.shape[0], -1, 16), raw[:, :, 1:])


@pytest.mark.parametrize("mode", ["floor", "rceil"])
def test_torchao_to_mx(mode):
    mx_tensor = pytest.importorskip("torchao.prototype.mx_formats.mx_tensor")
    config = pytest.importorskip("torchao.prototype.mx_formats.config")
    x = data()
    s, d = mx_tensor.to_mx(torch.from_numpy(x), torch.float4_e2m1fn_x2, 32,
                           config.ScaleCalculationMode(mode))
    ours = fp4ref.quantize(x, profile=f"torchao-{mode}")
    assert np.array_equal(ours.scales, s.view(torch.uint8).numpy())
    assert np.array_equal(ours.blocks, d.numpy())


@pytest.mark.parametrize("two_level", [False, True])
def test_torchao_nvfp4(two_level):
    nv = pytest.importorskip("torchao.prototype.mx_formats.nvfp4_tensor")
    x = data()
    t = torch.from_numpy(x)
    pts = nv.per_tensor_amax_to_scale(t.abs().max()) if two_level else None
    s, d = nv.nvfp4_quantize(t, 16, pts)
    if two_level:
        ours = fp4ref.quantize(x, format="nvfp4", profile="torchao-floor")
        assert ours.tensor_scale == np.float32(pts.item())
    else:
        ours = fp4ref.quantize(x, format="nvfp4", profile="torchao-floor", tensor_scale=1.0)
    assert np.array_equal(ours.scales, s.view(torch.uint8).numpy())
    assert np.array_equal(ours.blocks, d.numpy())


def test_compressed_tensors_nvfp4():
    pytest.importorskip("compressed_tensors")
    from compressed_tensors.compressors.nvfp4.helpers import quantize_and_pack_fp4
    from compressed_tensors.quantization.quant_scheme import NVFP4
    from compressed_tensors.quantization.utils.helpers import calculate_qparams, generate_gparam

    x = data()
    t = torch.from_numpy(x)
    g = t.view(x.shape[0], -1, 16)
    G = generate_gparam(t.min(), t.max())
    s, _ = calculate_qparams(g.amin(-1), g.amax(-1), NVFP4["weights"], global_scale=G)
    packed = quantize_and_pack_fp4(t, s, global_scale=G, group_size=16)
    ours = fp4ref.quantize(x, format="nvfp4", profile="compressed-tensors")
    assert ours.stored_tensor_scale == np.float32(G.item())
    assert np.array_equal(ours.scales, s.to(torch.float8_e4m3fn).view(torch.uint8).numpy())
    assert np.array_equal(ours.blocks, packed.numpy())


def test_modelopt_nvfp4():
    qtensor = pytest.importorskip("modelopt.torch.quantization.qtensor")
    x = data()
    q, s, s2 = qtensor.NVFP4QTensor.quantize(torch.from_numpy(x).clone(), 16)
    ours = fp4ref.quantize(x, format="nvfp4", profile="modelopt")
    assert ours.tensor_scale == np.float32(s2.item())
    assert np.array_equal(ours.scales, s.view(torch.uint8).numpy())
    assert np.array_equal(ours.blocks, q._quantized_data.numpy())


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_qwantize_hessian(fmt):
    """qwantize's *_optimal_hessian with activations X: the same scales and codes (fp4ref
    computes r^T H r in float64, qwantize in float32; no decision here is that close)."""
    qw = pytest.importorskip("qwantize")
    x = data()
    block = 32 if fmt == "mxfp4" else 16
    rng = np.random.default_rng(1)
    activations = (rng.standard_normal((100, x.shape[1]))
                   * rng.uniform(0.1, 3, x.shape[1])).astype(np.float32)
    function = getattr(qw, f"{fmt}_optimal_hessian")
    s, q = function(torch.from_numpy(x).reshape(x.shape[0], -1, block),
                    X=torch.from_numpy(activations))
    if fmt == "mxfp4":
        expected_scales = (torch.log2(s) + 127).round().to(torch.uint8).numpy()
    else:
        expected_scales = s.to(torch.float8_e4m3fn).view(torch.uint8).numpy()
    ours = fp4ref.quantize(x, format=fmt, profile="qwantize", scale_rule="optimal-hessian",
                           hessian=activations)
    assert np.array_equal(ours.scales, expected_scales)
    assert np.array_equal(fp4ref.unpack(ours.blocks), codes_from_values(q.reshape(x.shape).numpy()))
