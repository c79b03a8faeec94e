"""Decoding under a profile: E8M0 quirks (mistral.rs, ggml) against hand-written bits,
keyword overrides, the encode-direction tensor scale, and the oracle against numba."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fp4ref

from .helpers import BACKENDS

CODES = np.arange(32, dtype=np.uint8) % 16  # every code twice
NAN = 0x7FC00000
INF, NINF = 0x7F800000, 0xFF800000
# float32 bits of the E2M1 magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6 (scale 1.0, byte 127)
ONE = [0x0, 0x3F000000, 0x3F800000, 0x3FC00000, 0x40000000, 0x40400000, 0x40800000,
       0x40C00000]
# the same times 2^-126 (byte 1)
TINY = [0x0, 0x00400000, 0x00800000, 0x00C00000, 0x01000000, 0x01400000, 0x01800000,
        0x01C00000]


def signed(bits):
    return bits + [b | 0x80000000 for b in bits]


# (profile, scale byte, the 16 float32 outputs of codes 0..15), derived by hand
TABLES = [
    ("mistralrs", 0x00, [0x0] * 8 + [0x80000000] * 8),  # float32_from_bits(0) = 0.0
    ("mistralrs", 0xFF, [NAN] + [INF] * 7 + [NAN] + [NINF] * 7),  # +Inf; 0 * Inf = NaN
    ("mistralrs", 0x7F, signed(ONE)),
    ("mistralrs", 0x01, signed(TINY)),
    ("ocp", 0x00, signed([0x0, 0x00200000, 0x00400000, 0x00600000, 0x00800000, 0x00C00000,
                          0x01000000, 0x01400000])),  # 2^-127
    ("ocp", 0xFF, [NAN] * 16),
    ("ggml", 0xFF, [0x0, 0x7F000000] + [INF] * 6 + [0x0, 0xFF000000] + [NINF] * 6),
    ("ggml", 0x7F, ONE + [0x0] + [b | 0x80000000 for b in ONE[1:]]),  # 0x8 -> +0
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("profile,byte,expected", TABLES)
def test_decode_table(backend, profile, byte, expected):
    blocks = fp4ref.pack(CODES.reshape(1, 32))
    got = fp4ref.dequantize(blocks, np.array([[byte]], np.uint8), profile=profile,
                            nibble_order="low-first", backend=backend)
    assert got.view(np.uint32)[0].tolist() == expected * 2


def test_keywords_override_profile():
    blocks = fp4ref.pack(CODES.reshape(1, 32))
    zero = np.array([[0]], np.uint8)
    ocp = fp4ref.dequantize(blocks, zero).view(np.uint32)
    got = fp4ref.dequantize(blocks, zero, profile="mistralrs", e8m0_decode="ocp")
    assert np.array_equal(got.view(np.uint32), ocp)
    got = fp4ref.dequantize(blocks, zero, e8m0_decode="bits").view(np.uint32)
    assert got[0, :16].tolist() == [0] * 8 + [0x80000000] * 8
    # ggml's default nibble order is split-half: byte j holds elements j and j + 16
    split = fp4ref.dequantize(blocks, np.array([[127]], np.uint8), profile="ggml")
    assert split.view(np.uint32)[0, 16].tolist() == ONE[1] and split[0, 1] == 1.0
    low = fp4ref.dequantize(blocks, np.array([[127]], np.uint8), profile="ggml",
                            nibble_order="low-first")
    assert low[0, 1] == 0.5
    with pytest.raises(ValueError, match="e8m0_decode must be"):
        fp4ref.dequantize(blocks, zero, e8m0_decode="nope")


def test_profile_scale_layout_default():
    rng = np.random.default_rng(1)
    blocks = rng.integers(0, 256, (3, 16), np.uint8)
    scales = rng.integers(0x20, 0x50, (3, 2), np.uint8)
    linear = fp4ref.dequantize(blocks, scales, format="nvfp4", nibble_order="high-first")
    stored = fp4ref.swizzle(scales, "128x4")
    got = fp4ref.dequantize(blocks, stored, format="nvfp4", profile="comfy")
    assert np.array_equal(got.view(np.uint32), linear.view(np.uint32))
    got = fp4ref.dequantize(blocks, scales, format="nvfp4", profile="comfy",
                            scale_layout="linear")
    assert np.array_equal(got.view(np.uint32), linear.view(np.uint32))


def test_encode_tensor_scale_inverted():
    """compressed-tensors stores G = 6 * 448 / amax; the decode multiplier is float32(1/G).
    G = 3: float32(1/3) = 0x3EAAAAAB = 11184811 * 2^-25. Code 2 (1.0) at block scale 1.0
    gives exactly that; code 5 (3.0) gives 33554433 * 2^-25 = 1 + 2^-25, which rounds to 1.0."""
    codes = np.zeros((1, 16), np.uint8)
    codes[0, :2] = [2, 5]
    blocks = fp4ref.pack(codes, block_size=16)
    scale = np.array([[0x38]], np.uint8)
    got = fp4ref.dequantize(blocks, scale, format="nvfp4", profile="compressed-tensors",
                            tensor_scale=3.0).view(np.uint32)
    assert got[0, :2].tolist() == [0x3EAAAAAB, 0x3F800000]
    got = fp4ref.dequantize(blocks, scale, format="nvfp4", profile="modelopt", tensor_scale=3.0)
    assert got[0, :2].tolist() == [3.0, 9.0]  # decode direction: a multiplier


def test_quantized_tensor_decodes_under_its_profile():
    x = np.zeros((1, 32), np.float32)
    x[0, :2] = [1e-39, -2e-39]  # floor(log2(amax / 6)) < -127: mistral.rs's byte 0
    q = fp4ref.quantize(x, profile="mistralrs")
    assert q.scales.tolist() == [[0]]
    assert fp4ref.dequantize(q).view(np.uint32)[0, :2].tolist() == [0x0, 0x80000000]


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32 - 1), decode=st.sampled_from(["ocp", "bits", "ggml", "inf"]),
       dtype=st.sampled_from(["float32", "bfloat16", "float16"]))
def test_python_equals_numba(seed, decode, dtype):
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (4, 16), np.uint8)
    scales = rng.choice(np.array([0, 1, 2, 126, 127, 200, 252, 253, 254, 255], np.uint8), (4, 1))
    a = fp4ref.dequantize(blocks, scales, e8m0_decode=decode, dtype=dtype, backend="python")
    b = fp4ref.dequantize(blocks, scales, e8m0_decode=decode, dtype=dtype, backend="numba")
    assert np.array_equal(a.view(np.uint16 if dtype != "float32" else np.uint32),
                          b.view(np.uint16 if dtype != "float32" else np.uint32))


# (field, bad value, a piece of the message naming what it needed)
BAD_FIELDS = [
    ("rounding", "bogus", "one of ('even', 'away', 'zero')"),
    ("rounding", None, None),  # with_options ignores None: no error
    ("zero_sign", "positive", "one of ('keep', 'negative', 'drop', 'quotient'"),
    ("scale_rule", "round", "'optimal-hessian')"),
    ("nonfinite", "raise", "one of ('nan-scale', 'ieee'"),
    ("e8m0_decode", "ieee", "one of ('ocp', 'bits', 'ggml', 'inf'"),
    ("decode_arithmetic", "float64", "one of ('exact', 'scale-first', 'output-dtype'"),
    ("e4m3_decode", "ue4m3", "one of ('ocp', 'ggml'"),
    ("nvfp4_recipe", "nvidia", "one of ('plain', 'modelopt', 'torchao', 'compressed-tensors'"),
    ("mx_element_scale", "multiply", "one of ('divide', 'bits-reciprocal'"),
    ("e8m0_stored_min", 255, "an int in 0..254"),
    ("tensor_scale_direction", "sideways", "one of ('decode', 'encode', 'amax'"),
    ("element_rule", "first", "one of ('nearest'"),
    ("nibble_order", "big-endian", "'split-half')"),
    ("scale_layout", "32x4", "one of ('linear', '128x4', '8x4')"),
    ("e8m0_min", 255, "an int in 0..254"),
    ("e8m0_min", -1, "an int in 0..254"),
    ("e8m0_min", 1.0, "an int in 0..254"),
    ("e8m0_min", True, "an int in 0..254"),
    ("sum_lanes", 0, "an int in 1..1024"),
    ("tensor_scale", 1, "a bool"),
    ("block_scale_clamp", (5.0, 1.0), "0 <= low <= high"),
    ("block_scale_clamp", (-1.0, 1.0), "0 <= low <= high"),
    ("block_scale_clamp", (1.0, float("inf")), "finite reals"),
    ("block_scale_clamp", (1.0, float("nan")), "finite reals"),
    ("block_scale_clamp", (1.0,), "(low, high)"),
    ("block_scale_clamp", "1,2", "(low, high)"),
    ("zero_block_scale", -0.5, "None or a finite real >= 0"),
    ("zero_block_scale", float("nan"), "None or a finite real >= 0"),
    ("zero_block_scale", "1", "None or a finite real >= 0"),
]


@pytest.mark.parametrize("field,value,needed", BAD_FIELDS)
def test_profile_validates_each_field(field, value, needed):
    ocp = fp4ref.profiles()["ocp"]
    if needed is None:
        assert ocp.with_options(**{field: value}) == ocp
        return
    for build in (lambda: ocp.with_options(**{field: value}),
                  lambda: fp4ref.Profile("p", "d", **{field: value})):
        with pytest.raises(ValueError) as info:
            build()
        message = str(info.value)
        assert message.startswith(f"Profile.{field} must be ")
        # choice lists grow with new implementations: the known choices lead, in order
        assert needed in message and repr(value) in message


def test_profile_rejects_unknown_fields_and_normalises_the_clamp():
    ocp = fp4ref.profiles()["ocp"]
    with pytest.raises(ValueError, match="Profile has no field 'tie'; the fields are"):
        ocp.with_options(tie="even")
    assert ocp.with_options(block_scale_clamp=[1, 448]).block_scale_clamp == (1.0, 448.0)


def test_every_named_profile_is_valid():
    for profile in fp4ref.profiles().values():
        assert profile.with_options() == profile
