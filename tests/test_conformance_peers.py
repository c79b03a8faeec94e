"""The conformance matrix's adapters against the real peers (``pytest -m peers``).

Each test pins one fact of docs/conformance-matrix.md (and /work/peers/REPORT.md): the
suites a peer passes, and where exactly it disagrees with the OCP vectors.
"""

from pathlib import Path

import numpy as np
import pytest

from fp4ref import conformance
from fp4ref.conformance import check, peers

from .helpers import require_peer

pytestmark = pytest.mark.peers


@pytest.fixture(scope="module")
def vectors():
    return conformance.load(Path(__file__).resolve().parents[1] / "conformance")


def run(vectors, peer, suite, lenient=False):
    peer.lenient = lenient
    return check.run(vectors, peer, suites=[suite], nan="any", ocp_only=lenient)[0]


def rows_differing(vectors, peer, suite, case_name):
    """Rows of ``blocks``/``scales`` where the peer's quantization differs from the vector."""
    entry = next(s for s in vectors.suites() if s["name"] == suite)
    case = next(c for c in entry["cases"] if c["name"] == case_name)
    inputs = [a.copy() for _, a in vectors.arrays(entry, case, "inputs")]
    got = getattr(peer, entry["operation"])(*inputs, **case["params"])
    rows = set()
    for (_, want), have in zip(vectors.arrays(entry, case, "expected"), got, strict=True):
        have = np.asarray(have).astype(np.int64).reshape(want.shape[0], -1)
        rows |= set(np.flatnonzero((have != want.astype(np.int64).reshape(have.shape)).any(1)))
    return sorted(int(r) for r in rows)


def test_ml_dtypes_decodes_like_the_spec_and_flips_the_sign_of_nan(vectors):
    require_peer("ml_dtypes")
    peer = peers.MlDtypes()
    for suite in ("e2m1_decode", "e8m0_decode", "e4m3_decode", "mxfp4_dequantize",
                  "nvfp4_dequantize"):
        assert not run(vectors, peer, suite, lenient=True).failed, suite
    ocp = run(vectors, peer, "e2m1_encode", lenient=True)
    tensors = vectors.tensors["e2m1_encode"]
    with_nan = {c.case for c in ocp.cases if c.status != "skip"
                and np.isnan(tensors[f"{c.case}.in.x"]).any()}
    assert {c.case for c in ocp.cases if c.status == "fail"} == with_nan == {
        "specials_even", "nan_sign"}
    assert "x=0x7FC00000" in ocp.first_failure().detail[0]  # NaN -> -0 (0x8)
    own = run(vectors, peer, "e2m1_encode")  # nan="ml_dtypes": the opposite sign
    assert not own.failed and "nan_ml_dtypes" in {c.case for c in own.cases
                                                  if c.status == "pass"}
    assert not run(vectors, peer, "e4m3_encode").failed  # own: RNE, NaN on overflow


def test_element_encoders_match_their_own_conventions(vectors):
    """torchao (NaN bits through its normal branch), compressed-tensors (-0.0 -> +0, NaN
    -> +0) and gfloat (NaN refused, E4M3 NaN 0xFF) on the cases named after them."""
    for module, cls, case in (("torchao", peers.Torchao, "nan_torchao"),
                              ("compressed_tensors", peers.CompressedTensors,
                               "nan_compressed-tensors"),
                              ("gfloat", peers.Gfloat, "nan_refuse")):
        require_peer(module)
        own = run(vectors, cls(), "e2m1_encode")
        assert not own.failed, module
        assert {c.case: c.status for c in own.cases}[case] == "pass", module
    own = run(vectors, peers.CompressedTensors(), "e2m1_encode")
    assert {c.case: c.status for c in own.cases}["codes_even_negative"] == "pass"
    gfloat = run(vectors, peers.Gfloat(), "e4m3_encode")
    assert not gfloat.failed and gfloat.count("pass") == 28


def test_torch_e4m3_cast_saturates(vectors):
    require_peer("torch")
    peer = peers.Torch()
    assert not run(vectors, peer, "e4m3_encode").failed  # own: saturate=True cases
    ocp = run(vectors, peer, "e4m3_encode", lenient=True)
    assert ocp.failed and all("_nan" in c.case for c in ocp.cases if c.status == "fail")


def test_torchao_layouts_and_nibbles_match(vectors):
    require_peer("torchao")
    peer = peers.Torchao()
    for suite in ("nibble_pack", "nibble_unpack", "layout_swizzle", "layout_unswizzle",
                  "mxfp4_dequantize"):
        result = run(vectors, peer, suite)
        assert result.ran and not result.failed, suite


def test_gguf_decodes_code_8_as_positive_zero(vectors):
    require_peer("gguf")
    result = run(vectors, peers.Gguf(), "mxfp4_dequantize", lenient=True)
    assert result.failed
    assert "expected 0x80000000 (-0.0), got 0x00000000" in result.first_failure().detail[0]
    own = run(vectors, peers.Gguf(), "profile_dequantize")  # fp4ref's ggml decode profile
    assert own.ran == 1 and not own.failed


def test_compressed_tensors_nvfp4_matches_its_profile(vectors):
    require_peer("compressed_tensors")
    result = run(vectors, peers.CompressedTensors(), "profile_compressed_tensors")
    assert {c.case: c.status for c in result.cases}["nvfp4"] == "pass"


def test_modelopt_nvfp4_matches_its_profile(vectors):
    require_peer("modelopt")  # its NaN block too, since nonfinite="modelopt"
    assert rows_differing(vectors, peers.ModelOpt(), "profile_modelopt", "nvfp4") == []


def test_qwantize_matches_its_profile(vectors):
    require_peer("qwantize")  # its NaN and Inf blocks too, since nonfinite="qwantize"
    peer = peers.Qwantize()
    cases = ("mxfp4", "mxfp4_optimal", "mxfp4_optimal_hessian", "nvfp4", "nvfp4_optimal",
             "nvfp4_optimal_hessian")
    for case in cases:
        assert rows_differing(vectors, peer, "profile_qwantize", case) == [], case


def test_gfloat_refuses_nan_and_takes_inf_as_a_finite_scale(vectors):
    require_peer("gfloat")
    result = run(vectors, peers.Gfloat(), "mxfp4_quantize", lenient=True)
    assert result.failed and "No NaN" in result.first_failure().detail[0]
    own = run(vectors, peers.Gfloat(), "mxfp4_quantize")  # nonfinite="gfloat"
    assert {c.case: c.status for c in own.cases if c.status != "skip"} == {
        "floor_even_gfloat": "pass", "floor_away_gfloat": "pass", "nan_gfloat": "pass"}
