"""Validation at the door: bad input gets an error naming the argument, before any kernel."""

import ml_dtypes
import numpy as np
import pytest

import fp4ref

BLOCKS = np.zeros((2, 16), np.uint8)
SCALES = np.zeros((2, 1), np.uint8)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (dict(blocks=BLOCKS.astype(np.int8)), TypeError, "blocks must be a uint8 array"),
        (dict(blocks=BLOCKS.astype(np.float32)), TypeError, "got dtype float32"),
        (dict(scales=SCALES.astype(np.int32)), TypeError, "scales must be a uint8 array"),
        (dict(scales=SCALES.view(ml_dtypes.float8_e4m3fn)), TypeError, "float8_e8m0fnu"),
        (dict(scales=np.zeros((3, 1), np.uint8)), ValueError, "same leading dimensions"),
        (dict(scales=np.zeros((2, 2), np.uint8)), ValueError, r"scales.shape\[-1\] must be K / 32"),
        (dict(blocks=np.zeros((2, 15), np.uint8)), ValueError, r"K = 2 \* blocks.shape\[-1\] = 30"),
        (dict(scales=np.zeros((2, 1, 1), np.uint8)), ValueError, "same number of dimensions"),
        (dict(blocks=np.zeros((2, 1, 8), np.uint8)), ValueError, r"scales.shape \+ \(16,\)"),
        (dict(blocks=np.zeros((), np.uint8)), ValueError, "at least one dimension"),
        (dict(format="mxfp6"), ValueError, "format must be one of"),
        (dict(nibble_order="big-endian"), ValueError, "nibble_order must be one of"),
        (dict(dtype="float64"), ValueError, "dtype must be one of"),
        (dict(dtype=np.int8), ValueError, "dtype must be one of"),
        (dict(backend="gpu"), ValueError, "backend must be one of"),
        (dict(tensor_scale=2.0), ValueError, "tensor_scale applies to format='nvfp4' only"),
        (dict(blocks=[[1, 2]]), TypeError, "blocks must be a uint8 array"),
        (dict(blocks="abc"), TypeError, "blocks must be a uint8 array"),
        (dict(out=np.empty((2, 32), np.float16)), ValueError, "out must have shape"),
        (dict(out=np.empty((2, 31), np.float32)), ValueError, "out must have shape"),
        (dict(out=np.empty((2, 64), np.float32)[:, ::2]), ValueError, "C-contiguous"),
        (dict(out=[0.0]), TypeError, "out must be a numpy array"),
    ],
)
def test_dequantize_refuses(kwargs, error, message):
    args = dict(blocks=BLOCKS, scales=SCALES)
    args.update(kwargs)
    with pytest.raises(error, match=message):
        fp4ref.dequantize(args.pop("blocks"), args.pop("scales"), **args)


def test_nvfp4_tensor_scale_must_be_one_number():
    with pytest.raises(ValueError, match="tensor_scale must be one real number"):
        fp4ref.dequantize(BLOCKS, np.zeros((2, 2), np.uint8), format="nvfp4",
                          tensor_scale=np.ones(2))
    with pytest.raises(ValueError, match="tensor_scale must be one real number"):
        fp4ref.dequantize(BLOCKS, np.zeros((2, 2), np.uint8), format="nvfp4", tensor_scale="x")


def test_out_may_not_alias_an_input():
    buffer = np.zeros(64 * 4, np.uint8)
    blocks = buffer[-32:].reshape(2, 16)
    out = buffer.view(np.float32).reshape(2, 32)
    with pytest.raises(ValueError, match="must not overlap"):
        fp4ref.dequantize(blocks, SCALES, out=out)


def test_non_native_byte_order_floats_are_encoded_correctly():
    big = np.array([0.25, 0.75, 5.0, 448.0], ">f4")
    assert fp4ref.encode_e2m1(big).tolist() == [0, 2, 6, 7]
    assert fp4ref.encode_e4m3(big).tolist() == [0x28, 0x34, 0x4A, 0x7E]


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: fp4ref.encode_e2m1(np.zeros(2, np.int32)), TypeError, "x must be a float array"),
        (lambda: fp4ref.encode_e2m1(np.zeros(2), "nearest"), ValueError, "rounding must be one"),
        (lambda: fp4ref.encode_e4m3(np.zeros(2), saturate="yes"), TypeError, "saturate must be"),
        (lambda: fp4ref.encode_e4m3(np.zeros(2, complex)), TypeError, "x must be a float array"),
        (lambda: fp4ref.decode_e2m1(np.array([0, 16], np.uint8)), ValueError, "found 16"),
        (lambda: fp4ref.decode_e2m1(np.array([0, 1])), TypeError, "codes must be a uint8"),
        (lambda: fp4ref.decode_e8m0(np.zeros(2, np.int8)), TypeError, "b must be a uint8"),
        (lambda: fp4ref.decode_e4m3(object()), TypeError, "b must be an array"),
        (lambda: fp4ref.pack(np.zeros((), np.uint8)), ValueError, "at least one dimension"),
    ],
)
def test_codec_functions_refuse(call, error, message):
    with pytest.raises(error, match=message):
        call()
