"""ggml's conventions as data: ``Profile.element_rule="ggml"``, ``Profile.e4m3_encode=
"ggml"`` and ``Profile.nonfinite`` ``"ggml"`` / ``"gguf-py"``.

Expected values are derived by hand from ggml's C source (``best_index_mxfp4``,
``ggml_fp32_to_ue4m3``, ``quantize_row_mxfp4_ref`` / ``quantize_row_nvfp4_ref``) and are the
minimal inputs of ``docs/findings.md`` 14, which the peers tests confirm against the built
library; the three layers (plain-Python oracle, numba CPU, CUDA) are compared with each
other on random and special blocks.
"""

import math

import numpy as np
import pytest

import fp4ref
from fp4ref.kernels import ggml as kernels
from fp4ref.profiles import Profile, get
from fp4ref.spec import e4m3, elements

from .helpers import BACKENDS

F = np.float32
MAX = float(np.finfo(F).max)
#: y * 512 = 0.5 - 2^-25: ggml's float32 `+ 0.5f` rounds it up to 1.0.
Y_HALF_DOWN = math.ldexp(0.5 - 2.0**-25, -9)

# (x, ggml_fp32_to_ue4m3 byte, the nearest-even E4M3 byte) -- by hand from the C code
E4M3_CASES = [
    (256.0, 0x7E, 0x78),  # exponent field 15: 448, not 256
    (248.0, 0x7E, 0x78),  # 1.1111 x 2^7: the fourth mantissa bit carries into exponent 15
    (240.0, 0x77, 0x77),
    (1.0625, 0x39, 0x38),  # a tie: away from zero (1.125), not to even (1.0)
    (7.5 / 512, 0x07, 0x08),  # (int)(7.5 + 0.5) = 8, capped at 7
    (0.5 / 512, 0x01, 0x00),  # (int)(0.5 + 0.5) = 1; the tie goes away from zero
    (Y_HALF_DOWN, 0x01, 0x00),  # float32 0.49999997 + 0.5 rounds to 1.0
    (0.25 / 512, 0x00, 0x00),
    (2.0**-6, 0x08, 0x08),
    (0.0, 0x00, 0x00),
    (-1.0, 0x00, 0xB8),  # ggml: !(x > 0) -> 0
    (math.nan, 0x00, 0x7F),
    (math.inf, 0x7E, 0x7E),
    (1000.0, 0x7E, 0x7E),
]


@pytest.mark.parametrize("x,ggml,nearest", E4M3_CASES)
def test_e4m3_encode_ggml_by_hand(x, ggml, nearest):
    assert e4m3.encode_ggml(x) == ggml
    assert kernels.e4m3_encode_ggml(x) == ggml
    assert e4m3.encode(x, "even", saturate=True) == nearest


def test_e4m3_encode_ggml_layers_agree():
    """The oracle and the numba function on float32 values around every E4M3 byte
    (and the subnormal rounding points), 1 ulp either side."""
    points = [e4m3.decode(b) for b in range(0x7F)] + [(m + 0.5) / 512 for m in range(8)]
    points += [float(e4m3.magnitude(b)) * (1 + 1 / 16) for b in range(8, 0x7F)]  # ties
    xs = []
    for p in points:
        v = F(p)
        xs += [np.nextafter(v, F(0)), v, np.nextafter(v, F(np.inf))]
    for x in xs:
        assert kernels.e4m3_encode_ggml(float(x)) == e4m3.encode_ggml(float(x)), x


# (x, half, code) -- best_index_mxfp4 by hand
CODE_CASES = [
    (1.5, 0.5, 3),
    (1.25, 0.5, 2),  # a tie between 1.0 (code 2) and 1.5: the first index
    (-1.25, 0.5, 10),
    (-0.0, 0.5, 0),
    (-0.1, 0.5, 0),  # index 0 (+0) ties index 8 (-0): +0
    (MAX, 2.0**125, 5),  # 8 * 2^125 overflows: its error is Inf
    (math.nan, 0.5, 0),
    (-math.inf, 0.5, 0),
    (2.0**40, 224.0, 0),  # every error rounds to 2^40
    (1.0, 0.0, 0),  # a zero scale: every error is 1
]


@pytest.mark.parametrize("x,half,code", CODE_CASES)
def test_ggml_code_by_hand(x, half, code):
    assert elements.ggml_code(x, half) == code
    assert kernels.ggml_code(F(x), F(half)) == code


def _block(size, *values):
    x = np.zeros((1, size), F)
    x[0, : len(values)] = values
    return x


# (profile, format, leading values, scale byte, their codes) -- by hand
QUANTIZE_CASES = [
    # log2f(float32 max) rounds to 128: byte 253, half scale 2^125; 8 * 2^125 overflows
    ("ggml", "mxfp4", (MAX, float(np.nextafter(F(7 * 2.0**125), F(np.inf))), -MAX), 0xFD,
     (5, 5, 13)),
    ("ggml", "mxfp4", (math.nan, 1.0), 0x7D, (0, 6)),  # NaN left out of the max, coded 0
    ("ggml", "mxfp4", (math.inf, 2.0**-125, -(2.0**-126), 1.0), 0x00, (0, 6, 12, 0)),
    ("gguf-py", "mxfp4", (math.nan, 2.0**-125, 1.0), 0x00, (0, 6, 0)),  # NaN max: byte 0
    ("gguf-py", "mxfp4", (math.inf, 2.0**-125), 0x00, (0, 6)),
    ("ggml", "nvfp4", (1536.0,), 0x7E, (5,)),  # y = 256 -> 448; 1536 / 224 = 6.86 -> 6
    ("ggml", "nvfp4", (6.375,), 0x39, (7,)),  # y = 1.0625 -> 1.125 (away)
    ("ggml", "nvfp4", (0.087890625,), 0x07, (7,)),  # y = 7.5/512 -> 7/512
    ("ggml", "nvfp4", (float(F(6 * Y_HALF_DOWN)),), 0x01, (5,)),
    ("ggml", "nvfp4", (math.nan, 6.0), 0x38, (0, 7)),
    ("ggml", "nvfp4", (math.inf, 6.0), 0x7E, (0, 0)),
    ("ggml", "nvfp4", (2.0**-20,), 0x00, (0,)),  # scale 0: every code 0
    ("ggml", "nvfp4", (2.0**40,), 0x7E, (0,)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name,fmt,values,scale,codes", QUANTIZE_CASES)
def test_minimal_inputs_by_hand(backend, name, fmt, values, scale, codes):
    size = 32 if fmt == "mxfp4" else 16
    q = fp4ref.quantize(_block(size, *values), format=fmt, profile=name, backend=backend)
    assert int(np.asarray(q.scales).reshape(-1)[0]) == scale
    got = fp4ref.unpack(np.asarray(q.blocks), "split-half", block_size=size).reshape(-1)
    assert got[: len(codes)].tolist() == list(codes)
    assert not got[len(codes):].any()


def _mixed(size, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((12, size)) * np.exp2(rng.integers(-140, 120, (12, 1)))).astype(F)
    x[0, 3], x[1, 0], x[2, 5], x[3, 1], x[4, 0] = np.nan, np.inf, -np.inf, -np.nan, MAX
    x[5] = 0.0
    x[6] = np.linspace(-6, 6, size, dtype=F)  # ties
    return x.reshape(3, -1)


LAYER_PROFILES = [
    ("mxfp4", get("ggml")),
    ("nvfp4", get("ggml")),
    ("mxfp4", get("gguf-py")),
    ("mxfp4", get("ocp").with_options(element_rule="ggml")),
    ("mxfp4", get("ocp").with_options(nonfinite="ggml", scale_rule="rceil")),
    ("nvfp4", get("ocp").with_options(e4m3_encode="ggml")),
    ("nvfp4", get("modelopt").with_options(nonfinite="ggml", element_rule="ggml")),
    ("nvfp4", get("compressed-tensors").with_options(e4m3_encode="ggml", nonfinite="ggml")),
]


@pytest.mark.parametrize("fmt,profile", LAYER_PROFILES,
                         ids=[f"{f}-{i}" for i, (f, _) in enumerate(LAYER_PROFILES)])
def test_layers_agree(fmt, profile):
    size = 32 if fmt == "mxfp4" else 16
    x = _mixed(size, 5)
    want = fp4ref.quantize(x, format=fmt, profile=profile, backend="python",
                           scale_layout="linear")
    for backend in BACKENDS:
        q = fp4ref.quantize(x, format=fmt, profile=profile, backend=backend,
                            scale_layout="linear")
        assert np.array_equal(np.asarray(q.scales), want.scales), backend
        assert np.array_equal(np.asarray(q.blocks), want.blocks), backend


def test_bad_choices_are_refused():
    for field in ("element_rule", "e4m3_encode", "nonfinite"):
        with pytest.raises(ValueError, match=f"Profile.{field} must be one of"):
            Profile("bad", "bad", **{field: "nope"})
    x = np.ones((1, 32), F)
    with pytest.raises(ValueError, match="no NVFP4 quantizer"):
        fp4ref.quantize(x, format="nvfp4", profile="gguf-py")
    with pytest.raises(ValueError, match="MXFP4 only"):
        fp4ref.quantize(x, format="nvfp4", profile=get("ocp").with_options(nonfinite="gguf-py"))
    with pytest.raises(ValueError, match="divides by its scale"):
        fp4ref.quantize(x, format="nvfp4",
                        profile=get("torchao-floor").with_options(element_rule="ggml"))


@pytest.mark.parametrize("fmt", ["mxfp4", "nvfp4"])
def test_searches_ignore_the_ggml_conventions(fmt):
    """A search under the ggml profile is the search of the same profile with the
    default element rule, non-finite policy and E4M3 encode (as for mx_zero_block_scale)."""
    size = 32 if fmt == "mxfp4" else 16
    x = _mixed(size, 8)
    plain = get("ggml").with_options(element_rule="nearest", e4m3_encode="ocp",
                                     nonfinite="nan-scale" if fmt == "mxfp4" else "ieee")
    for backend in BACKENDS[:2]:
        a = fp4ref.quantize(x, format=fmt, profile="ggml", scale_rule="optimal",
                            backend=backend)
        b = fp4ref.quantize(x, format=fmt, profile=plain, scale_rule="optimal",
                            backend=backend)
        assert np.array_equal(a.scales, b.scales) and np.array_equal(a.blocks, b.blocks)
