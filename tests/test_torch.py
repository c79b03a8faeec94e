"""torch CPU tensors at the front doors: torch in, torch out, the same bits as numpy."""

import ml_dtypes
import numpy as np
import pytest

import fp4ref

torch = pytest.importorskip("torch")


def as_numpy(tensor):
    """A torch tensor's bytes as numpy, read independently of fp4ref.arrays."""
    dtype = tensor.dtype
    if dtype == torch.bfloat16:
        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    if dtype in (torch.float8_e8m0fnu, torch.float8_e4m3fn, torch.float4_e2m1fn_x2):
        return tensor.view(torch.uint8).numpy()
    return tensor.numpy()


def same_bits(tensor, array):
    """Whether a torch result holds exactly numpy's bytes, shape and (byte) dtype."""
    assert isinstance(tensor, torch.Tensor), type(tensor)
    got = as_numpy(tensor)
    return got.shape == array.shape and got.tobytes() == np.ascontiguousarray(array).tobytes()


@pytest.fixture(scope="module")
def weights():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 64)).astype(np.float32)
    x[0, :5] = [0.0, -0.0, np.inf, 1e-30, 6.0]
    return x


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_quantize_torch_in_torch_out(weights, fmt):
    q_np = fp4ref.quantize(weights, format=fmt)
    q_t = fp4ref.quantize(torch.from_numpy(weights.copy()), format=fmt)
    assert same_bits(q_t.blocks, q_np.blocks) and same_bits(q_t.scales, q_np.scales)
    assert q_t.tensor_scale == q_np.tensor_scale


def test_quantize_bfloat16_tensor(weights):
    x = torch.from_numpy(weights.copy()).to(torch.bfloat16)
    q_np = fp4ref.quantize(x.view(torch.int16).numpy().view(ml_dtypes.bfloat16))
    q_t = fp4ref.quantize(x)
    assert same_bits(q_t.blocks, q_np.blocks) and same_bits(q_t.scales, q_np.scales)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_dequantize_round_trip(weights, dtype):
    name = str(dtype).removeprefix("torch.")
    q_t = fp4ref.quantize(torch.from_numpy(weights.copy()))
    expected = fp4ref.dequantize(q_t.blocks.numpy(), q_t.scales.numpy(), dtype=name)
    got = fp4ref.dequantize(q_t, dtype=dtype)
    assert got.dtype == dtype and same_bits(got, expected)


def test_float8_scales_and_float4_blocks():
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, (3, 32), dtype=np.uint8)
    scales = rng.integers(0, 256, (3, 2), dtype=np.uint8)
    expected = fp4ref.dequantize(blocks, scales)
    b4 = torch.from_numpy(blocks.copy()).view(torch.float4_e2m1fn_x2)
    s8 = torch.from_numpy(scales.copy()).view(torch.float8_e8m0fnu)
    assert same_bits(fp4ref.dequantize(b4, s8), expected)
    nv_scales = rng.integers(0, 256, (3, 4), dtype=np.uint8)
    nv = fp4ref.dequantize(blocks, nv_scales, format="nvfp4", tensor_scale=0.5)
    e4m3 = torch.from_numpy(nv_scales.copy()).view(torch.float8_e4m3fn)
    assert same_bits(fp4ref.dequantize(b4, e4m3, format="nvfp4", tensor_scale=0.5), nv)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_torch_out_is_written_and_returned(dtype):
    rng = np.random.default_rng(2)
    blocks = rng.integers(0, 256, (2, 32), dtype=np.uint8)
    scales = rng.integers(0, 256, (2, 2), dtype=np.uint8)
    out = torch.full((2, 64), 3.0, dtype=dtype)
    got = fp4ref.dequantize(torch.from_numpy(blocks), scales, dtype=dtype, out=out)
    assert got is out
    assert same_bits(out, fp4ref.dequantize(blocks, scales, dtype=str(dtype)[6:]))


def test_codecs_and_layouts():
    x = np.array([0.25, 2.5, 5.0, -0.0, np.nan, 7.0], np.float32)
    assert same_bits(fp4ref.encode_e2m1(torch.from_numpy(x), "away"),
                     fp4ref.encode_e2m1(x, "away"))
    assert same_bits(fp4ref.encode_e4m3(torch.from_numpy(x)), fp4ref.encode_e4m3(x))
    codes = np.arange(16, dtype=np.uint8)
    assert same_bits(fp4ref.decode_e2m1(torch.from_numpy(codes)), fp4ref.decode_e2m1(codes))
    b = np.arange(256, dtype=np.uint8)
    assert same_bits(fp4ref.decode_e8m0(torch.from_numpy(b)), fp4ref.decode_e8m0(b))
    assert same_bits(fp4ref.decode_e8m0(torch.from_numpy(b).view(torch.float8_e8m0fnu)),
                     fp4ref.decode_e8m0(b))
    assert same_bits(fp4ref.decode_e4m3(torch.from_numpy(b)), fp4ref.decode_e4m3(b))
    packed = fp4ref.pack(torch.from_numpy(codes.reshape(2, 8)))
    assert same_bits(packed, fp4ref.pack(codes.reshape(2, 8)))
    assert same_bits(fp4ref.unpack(packed), codes.reshape(2, 8))
    scales = np.arange(3 * 5, dtype=np.uint8).reshape(3, 5)
    stored = fp4ref.swizzle(torch.from_numpy(scales).view(torch.float8_e8m0fnu))
    assert stored.dtype == torch.float8_e8m0fnu
    assert same_bits(stored, fp4ref.swizzle(scales))
    back = fp4ref.unswizzle(stored, rows=3, cols=5)
    assert back.dtype == torch.float8_e8m0fnu and same_bits(back, scales)


def test_ops(weights):
    q_np = fp4ref.quantize(weights)
    q_t = fp4ref.quantize(torch.from_numpy(weights.copy()))
    x = np.random.default_rng(3).standard_normal((5, 64)).astype(np.float32)
    expected = fp4ref.ops.linear(x, q_np)
    assert same_bits(fp4ref.ops.linear(torch.from_numpy(x), q_t), expected)
    assert same_bits(fp4ref.ops.linear(torch.from_numpy(x).to(torch.bfloat16), q_t),
                     fp4ref.ops.linear(x.astype(ml_dtypes.bfloat16), q_np))
    stacked = (q_t.blocks.reshape(2, 3, 32), q_t.scales.reshape(2, 3, 2))
    indices = torch.tensor([[0, 1], [1, 1], [0, 0], [1, 0], [0, 1]])
    got = fp4ref.ops.moe_linear(torch.from_numpy(x), stacked, indices)
    expected = fp4ref.ops.moe_linear(x, (q_np.blocks.reshape(2, 3, 32),
                                         q_np.scales.reshape(2, 3, 2)), indices.numpy())
    assert same_bits(got, expected)


def test_numpy_stays_numpy(weights):
    assert isinstance(fp4ref.quantize(weights).blocks, np.ndarray)
    assert isinstance(fp4ref.dequantize(fp4ref.quantize(weights)), np.ndarray)


def test_unreadable_torch_dtype_names_the_argument():
    with pytest.raises(TypeError, match="x"):
        fp4ref.quantize(torch.zeros(2, 32, dtype=torch.complex64))


def test_a_tensor_on_another_device_is_refused_by_name():
    with pytest.raises(TypeError, match="blocks must be a CPU or CUDA tensor; got one on meta"):
        fp4ref.dequantize(torch.empty(2, 16, dtype=torch.uint8, device="meta"),
                          np.zeros((2, 1), np.uint8))


def test_a_tensor_that_needs_gradients_is_read_detached():
    x = torch.randn(2, 32, requires_grad=True)
    q = fp4ref.quantize(x)
    assert same_bits(q.blocks, fp4ref.quantize(x.detach().numpy()).blocks)
