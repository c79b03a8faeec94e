"""The CUDA backend bit for bit against the numba CPU backend and the plain-Python oracle:
what the front-door tests (run over every backend, ``tests/helpers.BACKENDS``) do not
reach: device arrays in and out, the block tables, odd addresses, torch and cupy arrays.

Runs on a GPU or in numba's simulator (see ``conftest.py``); inputs are small because the
simulator runs every GPU thread as a Python thread.
"""

import warnings

import numpy as np
import pytest
from numba import cuda
from numba.cuda import config

import fp4ref
from fp4ref.kernels import options
from fp4ref.kernels.cpu import codec as cpu
from fp4ref.kernels.cuda import codec as gpu

from ..helpers import around, bits, float32_all_magnitudes

SIMULATED = bool(config.ENABLE_CUDASIM)
DTYPES = ("float32", "bfloat16", "float16")
ORDERS = fp4ref.NIBBLE_ORDERS
RULES = fp4ref.rounding_rules()
FORMATS = {"mxfp4": 32, "nvfp4": 16}


@pytest.fixture(autouse=True)
def _quiet_overflow():
    with warnings.catch_warnings():  # the simulator computes 6 * 2^127 -> inf in numpy
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def host(array) -> np.ndarray:
    return array.copy_to_host()


def test_cuda_is_available():
    assert "cuda" in fp4ref.available_backends()


@pytest.mark.parametrize("scale_format", [options.SCALE_E8M0, options.SCALE_E4M3])
@pytest.mark.parametrize("out_kind", [0, 1, 2])
def test_block_table_equals_the_cpu_table(scale_format, out_kind):
    dtype = np.uint32 if out_kind == 0 else np.uint16
    scales = [1.0, 0.37, 2.0**-130, 3.0e38] if scale_format == options.SCALE_E4M3 else [1.0]
    for tensor_scale in map(np.float32, scales):
        expected = np.empty((256, 16), dtype)
        cpu.fill_block_table(expected, scale_format, tensor_scale, out_kind)
        got = cuda.device_array((256, 16), dtype)
        gpu.fill_block_table(got, scale_format, tensor_scale, out_kind)
        assert np.array_equal(host(got), expected), float(tensor_scale)


def _every_code_every_scale(block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """256 blocks, one per scale byte, each holding codes 0..15 (twice for MXFP4)."""
    codes = np.tile(np.arange(16, dtype=np.uint8), (256, block_size // 16))
    return fp4ref.pack(codes), np.arange(256, dtype=np.uint8)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("dtype", DTYPES)
def test_dequantize_every_scale_byte_against_the_oracle(fmt, dtype):
    blocks, scales = _every_code_every_scale(FORMATS[fmt])
    tensor_scale = np.float32(0.75) if fmt == "nvfp4" else None
    expected = fp4ref.dequantize(blocks, scales[:, None], format=fmt, dtype=dtype,
                                 tensor_scale=tensor_scale, backend="python")
    got = fp4ref.dequantize(cuda.to_device(blocks), cuda.to_device(scales[:, None]),
                            format=fmt, dtype=dtype, tensor_scale=tensor_scale)
    assert np.array_equal(bits(host(got)), bits(expected))


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("order", ORDERS)
def test_dequantize_every_order_against_numba(fmt, dtype, order):
    rng = np.random.default_rng(ORDERS.index(order))
    block = FORMATS[fmt]
    rows, k = 5, 4 * block
    blocks = rng.integers(0, 256, (rows, k // 2), dtype=np.uint8)
    scales = rng.integers(0, 256, (rows, k // block), dtype=np.uint8)
    options = dict(format=fmt, dtype=dtype, nibble_order=order)
    if fmt == "nvfp4":
        options["tensor_scale"] = np.float32(1.5e-3)
    expected = fp4ref.dequantize(blocks, scales, backend="numba", **options)
    got = fp4ref.dequantize(cuda.to_device(blocks), cuda.to_device(scales), **options)
    assert np.array_equal(bits(host(got)), bits(expected))
    from_host = fp4ref.dequantize(blocks, scales, backend="cuda", **options)
    assert isinstance(from_host, np.ndarray)
    assert np.array_equal(bits(from_host), bits(expected))


def test_dequantize_gpt_oss_shape_and_out():
    rng = np.random.default_rng(7)
    blocks = rng.integers(0, 256, (2, 3, 2, 16), dtype=np.uint8)
    scales = rng.integers(100, 150, (2, 3, 2), dtype=np.uint8)
    expected = fp4ref.dequantize(blocks, scales, backend="numba")
    out = cuda.device_array((2, 3, 64), np.float32)
    got = fp4ref.dequantize(cuda.to_device(blocks), cuda.to_device(scales), out=out)
    assert got is out
    assert np.array_equal(bits(host(out)), bits(expected))


def test_dequantize_blocks_at_an_odd_address():
    rng = np.random.default_rng(8)
    blocks = rng.integers(0, 256, (3, 32), dtype=np.uint8)
    scales = rng.integers(100, 150, (3, 2), dtype=np.uint8)
    memory = cuda.to_device(np.concatenate([[0], blocks.ravel()]).astype(np.uint8))
    got = fp4ref.dequantize(memory[1:].reshape(3, 32), cuda.to_device(scales))
    assert np.array_equal(bits(host(got)), bits(fp4ref.dequantize(blocks, scales)))


def _encoder_inputs() -> np.ndarray:
    points = [0.0, 0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0, 7.0, 448.0, 464.0, 480.0,
              2.0**-9, 2.0**-10, 3 * 2.0**-11, np.inf, np.nan]
    return np.concatenate([around(points), float32_all_magnitudes(300, seed=3)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", RULES)
def test_encoders_against_numba_and_the_oracle(dtype, rule):
    x = _encoder_inputs().astype(dtype)
    device_x = cuda.to_device(x)
    for backend in ("numba", "python"):
        expected = fp4ref.encode_e2m1(x, rule, backend=backend)
        assert np.array_equal(host(fp4ref.encode_e2m1(device_x, rule)), expected), backend
        for saturate in (True, False):
            expected = fp4ref.encode_e4m3(x, rule, saturate, backend=backend)
            got = fp4ref.encode_e4m3(device_x, rule, saturate)
            assert np.array_equal(host(got), expected), (backend, saturate)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("block_size", [16, 32])
def test_pack_and_unpack_against_numba(order, block_size):
    codes = np.random.default_rng(block_size).integers(0, 16, (3, 4 * block_size), np.uint8)
    packed = fp4ref.pack(codes, order, block_size=block_size, backend="numba")
    got = fp4ref.pack(cuda.to_device(codes), order, block_size=block_size)
    assert np.array_equal(host(got), packed)
    back = fp4ref.unpack(cuda.to_device(packed), order, block_size=block_size)
    assert np.array_equal(host(back), codes)
    assert np.array_equal(fp4ref.pack(codes, order, block_size=block_size, backend="cuda"),
                          packed)


def test_device_arrays_are_checked_without_copies():
    codes = cuda.to_device(np.full((2, 32), 3, np.uint8))
    with pytest.raises(ValueError, match="4-bit codes"):
        fp4ref.pack(cuda.to_device(np.full((2, 32), 16, np.uint8)))
    with pytest.raises(TypeError, match="dtype uint8"):
        fp4ref.pack(cuda.to_device(np.zeros((2, 32), np.int32)))
    with pytest.raises(ValueError, match="C-contiguous"):
        fp4ref.unpack(cuda.to_device(np.zeros((4, 32), np.uint8))[:, ::2])
    with pytest.raises(TypeError, match="runs on host arrays"):
        fp4ref.pack(codes, backend="numba")
    with pytest.raises(TypeError, match="float32 or float64"):
        fp4ref.encode_e2m1(cuda.to_device(np.zeros(4, np.int16)))
    blocks = cuda.to_device(np.zeros((2, 16), np.uint8))
    scales = cuda.to_device(np.zeros((2, 1), np.uint8))
    with pytest.raises(ValueError, match="shape"):
        fp4ref.dequantize(blocks, scales, out=cuda.device_array((2, 31), np.float32))
    memory = cuda.to_device(np.zeros(32 + 2 * 32 * 4, np.uint8))
    with pytest.raises(ValueError, match="overlap"):
        fp4ref.dequantize(memory[:32].reshape(2, 16), scales,
                          out=memory[:256].view(np.float32).reshape(2, 32))
    with pytest.raises(ValueError, match="aligned"):
        fp4ref.dequantize(blocks, scales, out=memory[4:260].view(np.float32).reshape(2, 32))


@pytest.mark.skipif(SIMULATED, reason="torch tensors need a real GPU")
def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    blocks = rng.integers(0, 256, (4, 64), dtype=np.uint8)
    scales = rng.integers(110, 140, (4, 4), dtype=np.uint8)
    tb, ts = torch.from_numpy(blocks).cuda(), torch.from_numpy(scales).cuda()
    for dtype, torch_dtype in [("float32", torch.float32), ("bfloat16", torch.bfloat16)]:
        expected = fp4ref.dequantize(blocks, scales, dtype=dtype, backend="numba")
        got = fp4ref.dequantize(tb, ts, dtype=dtype)
        assert isinstance(got, torch.Tensor) and got.is_cuda and got.dtype == torch_dtype
        raw = got.view(torch.int32 if dtype == "float32" else torch.int16).cpu().numpy()
        assert np.array_equal(raw.view(bits(expected).dtype), bits(expected))
        out = torch.empty((4, 128), dtype=torch_dtype, device="cuda")
        assert fp4ref.dequantize(tb, ts, dtype=dtype, out=out) is out
    codes = fp4ref.unpack(tb)
    assert isinstance(codes, torch.Tensor) and torch.equal(fp4ref.pack(codes), tb)


@pytest.mark.skipif(SIMULATED, reason="CuPy arrays need a real GPU")
def test_cupy_in_cupy_out():
    cupy = pytest.importorskip("cupy")
    blocks = np.arange(64, dtype=np.uint8).reshape(2, 32)
    scales = np.full((2, 2), 127, np.uint8)
    got = fp4ref.dequantize(cupy.asarray(blocks), cupy.asarray(scales))
    assert isinstance(got, cupy.ndarray)
    assert np.array_equal(bits(got.get()), bits(fp4ref.dequantize(blocks, scales)))


@pytest.mark.parametrize("shape", [{"kind": "chunk"}, {"kind": "unroll", "unroll": 4},
                                   {"kind": "tile"}, {"kind": "tile", "unroll": 2},
                                   {"kind": "pipe"}, {"kind": "pipe", "unroll": 2}])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_dequantize_kernel_shapes_against_the_cpu(monkeypatch, shape, fmt):
    """Each shape of the dequantize kernel (:data:`..codec.DEQUANTIZE_SHAPE`), every nibble
    order, float32 and bfloat16, over full tiles (512 packed bytes a warp) and a part-full
    one, against the numba CPU backend."""
    block = FORMATS[fmt]
    rng = np.random.default_rng(11)
    blocks = rng.integers(0, 256, (3, 150 * block // 2), dtype=np.uint8)  # 450 blocks
    scales = rng.integers(0, 256, (3, 150), dtype=np.uint8)
    for key, value in shape.items():
        monkeypatch.setitem(gpu.DEQUANTIZE_SHAPE, key, value)
    for order in ORDERS:
        for dtype in ("float32", "bfloat16"):
            options = {"format": fmt, "nibble_order": order, "dtype": dtype}
            expected = fp4ref.dequantize(blocks, scales, backend="numba", **options)
            got = host(fp4ref.dequantize(cuda.to_device(blocks), cuda.to_device(scales),
                                         **options))
            assert np.array_equal(bits(got), bits(expected)), (order, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fouroversix_decode_every_scale_byte_against_the_oracle(dtype):
    # decode_arithmetic "fouroversix": f32(f32(P * s_b) * A) / 1536, A the stored amax
    blocks, scales = _every_code_every_scale(16)
    for amax in (np.uint32(0x44C00001).view(np.float32), np.float32(2.0**-140),
                 np.float32(3.0e38)):
        expected = fp4ref.dequantize(blocks, scales[:, None], format="nvfp4",
                                     profile="fouroversix", tensor_scale=amax, dtype=dtype,
                                     backend="python")
        got = fp4ref.dequantize(cuda.to_device(blocks), cuda.to_device(scales[:, None]),
                                format="nvfp4", profile="fouroversix", tensor_scale=amax,
                                dtype=dtype)
        assert np.array_equal(bits(host(got)), bits(expected)), float(amax)


def test_lowering_catches_both_typing_errors():
    """numba-cuda's static-operand lowering catches numba core's TypingError too, the one a
    CPU compile earlier in the process makes an operator's type raise (docs/findings.md,
    25): without it GPU kernels failed by the order of compiles."""
    from numba.core.errors import TypingError as CoreTypingError

    lowering = pytest.importorskip("numba.cuda.lowering")
    import fp4ref.kernels.cuda  # noqa: F401 (applies the workaround)

    with pytest.raises(ValueError):  # a TypingError is caught, anything else is not
        try:
            raise CoreTypingError("gt(omitted, omitted)")
        except lowering.TypingError:
            raise ValueError("caught") from None
