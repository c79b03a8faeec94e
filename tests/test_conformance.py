"""The conformance vectors, generator and checker (fp4ref.conformance)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import fp4ref
from fp4ref import api, conformance
from fp4ref.conformance import check, files, generate, impls, manifest
from fp4ref.errors import FormatError

COMMITTED = Path(__file__).resolve().parents[1] / "conformance"  # the repository's


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    directory = tmp_path_factory.mktemp("vectors")
    return directory, generate.generate(directory)


@pytest.fixture(scope="module")
def vectors():
    return conformance.load(COMMITTED)


def test_committed_vectors_equal_a_fresh_generation(fresh):
    directory, out = fresh
    committed = sorted(p.name for p in COMMITTED.iterdir())
    assert committed == sorted(out), "files differ: run `fp4ref conformance generate conformance`"
    for name, data in out.items():
        assert (COMMITTED / name).read_bytes() == data, (
            f"{name} differs from a fresh generation: run `fp4ref conformance generate conformance`"
        )


def test_generation_is_byte_identical(fresh):
    _, out = fresh
    assert generate.build() == out


def test_vectors_are_small_and_listed_with_their_hashes(vectors):
    listed = vectors.manifest["files"]
    assert sum(entry["bytes"] for entry in listed.values()) <= 20 * 2**20
    for name, entry in listed.items():
        assert manifest.sha256((COMMITTED / name).read_bytes()) == entry["sha256"]


def test_every_case_names_what_it_tests_and_its_tensors(vectors):
    for suite in vectors.suites():
        assert suite["cases"], suite["name"]
        tensors = vectors.tensors[suite["name"]]
        for case in suite["cases"]:
            assert case["tests"] and case["pins"] and case["profile"] in fp4ref.profiles()
            for _, name in case["inputs"] + case["expected"]:
                assert name in tensors


def test_a_modified_file_is_refused(tmp_path):
    shutil.copytree(COMMITTED, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "e2m1_decode.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="SHA-256"):
        conformance.load(tmp_path)


def test_the_hex_twin_holds_the_safetensors_data(vectors):
    for suite in vectors.suites():
        if not suite["text"]:
            continue
        lines = [
            line.split()
            for line in (COMMITTED / suite["text"]).read_text().splitlines()
            if not line.startswith("#")
        ]
        rows = iter(lines)
        for case in suite["cases"]:
            columns = vectors.arrays(suite, case, "inputs") + vectors.arrays(
                suite, case, "expected"
            )
            for i in range(columns[0][1].size):
                fields = next(rows)
                assert fields[0] == case["name"]
                cells = dict(f.split("=") for f in fields[1:])
                assert (cells.get("error") == "refused") == bool(case["error"])
                for arg, array in columns:
                    width = array.dtype.itemsize
                    bits = array.reshape(-1).view(f"u{width}")[i]
                    assert int(cells[arg], 16) == bits
        assert next(rows, None) is None


def test_the_safetensors_files_are_readable_by_the_safetensors_library(vectors):
    from safetensors.numpy import load_file

    loaded = load_file(str(COMMITTED / "e4m3_encode.safetensors"))
    ours = vectors.tensors["e4m3_encode"]
    assert loaded.keys() == ours.keys()
    assert all(np.array_equal(loaded[k].view(np.uint8), ours[k].view(np.uint8)) for k in ours)


@pytest.mark.parametrize("backend", ["python", "numba"])
def test_fp4ref_backends_pass_every_suite(vectors, backend):
    results = check.run(vectors, impls.Backend(backend))
    assert [r.suite for r in results if r.failed] == []
    assert all(r.ran == len(r.cases) for r in results)


class TiesAway(impls.Backend):
    """A deliberately wrong implementation: E2M1 ties away from zero whatever is asked."""

    def __init__(self):
        super().__init__("numba")

    def encode_e2m1(self, x, *, rounding):
        return api.encode_e2m1(x, "away")


class LostNegativeZero(impls.Backend):
    """Another wrong one: MXFP4 decode that loses the sign of zero (-0 -> +0)."""

    def __init__(self):
        super().__init__("numba")

    def dequantize_mxfp4(self, blocks, scales, *, nibble_order, dtype):
        out = super().dequantize_mxfp4(blocks, scales, nibble_order=nibble_order, dtype=dtype)
        return out + np.zeros((), out.dtype)


def test_ties_away_fails_the_ocp_suites_and_says_where(vectors, capsys):
    results = check.run(vectors, TiesAway(), ocp_only=True)
    by_suite = {r.suite: r for r in results}
    assert by_suite["e2m1_encode"].failed
    assert not by_suite["e2m1_decode"].failed
    failure = by_suite["e2m1_encode"].first_failure()
    assert failure.case == "ties_even"
    assert "expected 0x00" in failure.detail[0] and "got 0x01" in failure.detail[0]
    assert "x=0x3E800000 (0.25)" in failure.detail[0]
    assert not check.report({"ties-away": results})
    assert "e2m1_encode/ties_even FAIL" in capsys.readouterr().out


def test_losing_the_sign_of_zero_fails(vectors):
    results = check.run(vectors, LostNegativeZero(), suites=["mxfp4_dequantize"])
    assert results[0].failed


def test_the_command_exits_non_zero_for_a_wrong_impl(capsys):
    from fp4ref import cli

    code = cli.main(
        [
            "conformance",
            "check",
            "--impl",
            "tests.test_conformance:TiesAway",
            "--suite",
            "e2m1_encode",
        ]
    )
    assert code == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "ties_even" in out


def test_the_command_runs_a_single_function(capsys):
    from fp4ref import cli

    code = cli.main(
        ["conformance", "check", "--impl", "fp4ref.api:decode_e8m0", "--operation", "decode_e8m0"]
    )
    assert code == 0
    assert "pass 1/1" in capsys.readouterr().out


def test_an_impl_without_any_operation_fails(capsys):
    from fp4ref import cli

    assert cli.main(["conformance", "check", "--impl", "json"]) == 1


def test_unsupported_parameters_skip_rather_than_fail(vectors):
    class EvenOnly(impls.Backend):
        def __init__(self):
            super().__init__("numba")

        def encode_e2m1(self, x, *, rounding):
            if rounding != "even":
                raise NotImplementedError("ties to even only")
            return api.encode_e2m1(x)

    result = check.run(vectors, EvenOnly(), suites=["e2m1_encode"])[0]
    suite = next(s for s in vectors.suites() if s["name"] == "e2m1_encode")
    runnable = [c["name"] for c in suite["cases"] if not c.get("error") and all(
        {"rounding": "even", "zero_sign": "keep", "nan": "sign"}.get(k) == v
        for k, v in c["params"].items())]
    assert len(runnable) == 7  # six groups and the NaN group, each ties to even
    assert not result.failed
    assert sorted(c.case for c in result.cases if c.status == "pass") == sorted(runnable)
    assert result.count("skip") == len(result.cases) - len(runnable)


def test_compare_bits_nan_and_dtypes():
    expected = np.array([np.nan, -0.0, 1.0], np.float32)
    other_nan = np.array([0x7FC00001, 0x80000000, 0x3F800000], np.uint32)
    same, _ = check.compare(expected, other_nan)
    assert same.tolist() == [False, True, True]
    same, _ = check.compare(expected, other_nan, nan="any")
    assert same.all()
    assert check.compare(expected, expected.astype(np.float64))[0] is None
    assert check.compare(expected, expected[:2])[0] is None
    same, _ = check.compare(np.array([1, 2], np.uint8), np.array([1, 3], np.uint8))
    assert same.tolist() == [True, False]
    codes = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for wrong in (codes.astype(np.int64), codes.reshape(-1), codes.T.copy(), codes[None]):
        assert check.compare(codes, wrong)[0] is None  # dtype or shape: refused, not passed
    stored = np.arange(8, dtype=np.uint8)  # swizzled bytes: flat or as the padded tile
    assert check.compare(stored, stored.reshape(2, 4), flat=True)[0].all()


def test_locate_prefers_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(conformance.ENV, str(COMMITTED))
    assert conformance.locate() == COMMITTED
    monkeypatch.setenv(conformance.ENV, str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert conformance.locate() == COMMITTED  # the checkout is next in line
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        conformance.locate(tmp_path)


def test_deterministic_safetensors_round_trip():
    tensors = {"b": np.arange(3, dtype=np.uint8), "a": np.array(1.5, np.float32)}
    data = files.safetensors_bytes(tensors, {"k": "v"})
    header_length = int.from_bytes(data[:8], "little")
    assert header_length % 8 == 0
    header = json.loads(data[8 : 8 + header_length])
    assert header["a"]["data_offsets"] == [0, 4] and header["b"]["data_offsets"] == [4, 7]
    metadata, back = files.read_safetensors(data, "test")
    assert metadata == {"k": "v"} and back["a"].shape == () and back["b"].tolist() == [0, 1, 2]
    with pytest.raises(FormatError):
        files.read_safetensors(data[:20], "test")


def test_the_matrix_skips_missing_peers(vectors, monkeypatch):
    from fp4ref.conformance import peers

    class Missing(peers.Peer):
        name, module = "not-a-peer", "fp4ref_no_such_module"

    monkeypatch.setattr(peers, "PEERS", (Missing,))
    from fp4ref.conformance import matrix

    results = matrix.build(vectors)
    assert results[0].missing and "Not installed" in matrix.markdown(results)


def test_accepting_malformed_bytes_fails_the_refusal_cases(vectors):
    class Lax(impls.Backend):
        def __init__(self):
            super().__init__("numba")

        def decode_uqff_blob(self, blob):
            return np.zeros((4, 32), np.uint8), np.zeros((4, 2), np.uint8)

    result = check.run(vectors, Lax(), suites=["uqff_blob_decode"])[0]
    failed = {c.case for c in result.cases if c.status == "fail"}
    suite = next(s for s in vectors.suites() if s["name"] == "uqff_blob_decode")
    assert {c["name"] for c in suite["cases"] if c["error"]} <= failed
    assert "instead of refusing" in result.cases[-1].detail[0]


def test_the_command_lists_suites_and_signatures(capsys):
    from fp4ref import cli

    assert cli.main(["conformance", "check", "--list"]) == 0
    out = capsys.readouterr().out
    assert "mxfp4_dequantize" in out and "dequantize_mxfp4(blocks: uint8[N, K/2]" in out


def test_the_matrix_updates_only_the_named_peers():
    from fp4ref.conformance import matrix

    def peer(name, status):
        return matrix.PeerResult(name, "1.0", f"{name} conventions",
                                 [matrix.Row("e2m1_encode", "pass 1/1", status, "")])

    page = matrix.markdown([peer("ml_dtypes", "FAIL 1/1"), peer("torch", "pass 1/1"),
                            peer("gfloat", "FAIL 2/2")])
    updated = matrix.update(page, [peer("gfloat", "pass 2/2"), peer("ml_dtypes", "pass 1/1")])
    assert updated.count("## ") == 3 and "| FAIL" not in updated
    assert updated.index("## ml_dtypes") < updated.index("## torch") < updated.index("## gfloat")
    assert matrix.update(updated, [peer("torch", "pass 1/1")]) == updated
    with pytest.raises(ValueError, match="no peer 'nope'"):
        matrix.build(None, ["nope"])


def test_matrix_update_needs_its_options(capsys):
    from fp4ref import cli

    assert cli.main(["conformance", "matrix", "--list-peers"]) == 0
    assert "gfloat" in capsys.readouterr().out.split()
    assert cli.main(["conformance", "matrix", "--update", "--peer", "torch"]) == 2
    assert "needs all three" in capsys.readouterr().err
