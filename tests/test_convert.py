"""``fp4ref convert`` and ``inspect``: tensor selection by pattern, fused expert tensors,
the unquantized list, convention metadata, help texts, GGUF round trips, and every
``inspect / dequantize / convert`` example of docs/guide/cli.md run as written."""

from __future__ import annotations

import argparse
import filecmp
import os
import re
import shlex
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file

import fp4ref
from fp4ref import cli
from fp4ref.io import commands
from fp4ref.profiles import profiles
from tests.test_io_commands import load

BF16 = ml_dtypes.bfloat16
CLI_MD = Path(__file__).resolve().parent.parent / "docs" / "guide" / "cli.md"
E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6], np.float32)


def gpt_oss_tensors(rng, experts=2, hidden=64, inner=64):
    """A gpt-oss MXFP4 checkpoint's tensors, in Hugging Face's names."""
    t = {"model.embed_tokens.weight": rng.normal(size=(48, hidden)).astype(BF16),
         "model.norm.weight": np.ones(hidden, BF16)}
    p = "model.layers.0."
    t[p + "mlp.router.weight"] = rng.normal(size=(experts, hidden)).astype(BF16)
    for name, n, k in (("gate_up_proj", 2 * inner, hidden), ("down_proj", hidden, inner)):
        t[p + f"mlp.experts.{name}_blocks"] = rng.integers(0, 256, (experts, n, k // 32, 16),
                                                           dtype=np.uint8)
        t[p + f"mlp.experts.{name}_scales"] = rng.integers(118, 130, (experts, n, k // 32),
                                                           dtype=np.uint8)
        t[p + f"mlp.experts.{name}_bias"] = rng.normal(size=(experts, n)).astype(BF16)
    t[p + "mlp.experts.down_proj_scales"][0, 0, 0] = 0  # one 0x00 scale for inspect
    return t


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_gpt_oss_gguf_round_trip_is_byte_identical(folder):
    save_file(gpt_oss_tensors(np.random.default_rng(0)), "model.safetensors",
              metadata={"format": "pt"})  # written by the safetensors library
    assert cli.main(["convert", "model.safetensors", "model.gguf", "--to", "gguf", "-q"]) == 0
    assert cli.main(["convert", "model.gguf", "back.safetensors", "--to", "gpt-oss", "-q"]) == 0
    assert filecmp.cmp("model.safetensors", "back.safetensors", shallow=False)
    assert cli.main(["convert", "back.safetensors", "again.gguf", "--to", "gguf", "-q"]) == 0
    assert filecmp.cmp("model.gguf", "again.gguf", shallow=False)


def exact_mxfp4(rng, shape):
    """Float values that MXFP4 holds exactly (per 32 along the last axis: E2M1 points
    times one power of two, each block reaching 6 * 2^e)."""
    values = E2M1[rng.integers(0, 8, shape)] * rng.choice([-1, 1], shape)
    values[..., ::32] = 6
    scales = np.repeat(np.exp2(rng.integers(-4, 4, (*shape[:-1], shape[-1] // 32))), 32, -1)
    return (values * scales).astype(np.float32)


def test_fused_experts_quantized_transposed_and_left_listed(folder, capsys):
    """HF's x @ W expert tensors [E, K, N] are quantized along K; with values MXFP4 holds
    exactly, decoding the written [E, N, K] layer gives the input transposed, bit for bit."""
    rng = np.random.default_rng(1)
    gate_up = exact_mxfp4(rng, (2, 128, 64)).transpose(0, 2, 1).astype(BF16)  # [E, K=64, N]
    down = exact_mxfp4(rng, (2, 64, 64)).transpose(0, 2, 1).astype(BF16)
    save_file({"model.layers.0.mlp.experts.gate_up_proj": np.ascontiguousarray(gate_up),
               "model.layers.0.mlp.experts.down_proj": np.ascontiguousarray(down),
               "model.layers.0.self_attn.q_proj.weight": exact_mxfp4(rng, (8, 64)).astype(BF16),
               "model.embed_tokens.weight": rng.normal(size=(8, 64)).astype(BF16),
               "model.layers.0.odd.weight": rng.normal(size=(8, 20)).astype(BF16),
               "model.norm.weight": np.ones(64, BF16)}, "f.safetensors")
    assert cli.main(["convert", "f.safetensors", "q.safetensors", "--to", "gpt-oss"]) == 0
    err = capsys.readouterr().err
    assert "left unquantized: 3 tensors" in err
    assert "matches a --keep pattern (1): model.embed_tokens.weight" in err
    assert "K = 20 is not a multiple of 32 (1): model.layers.0.odd.weight" in err
    assert "not a float tensor of two or more dimensions (1): model.norm.weight" in err
    out = load("q.safetensors")
    key = "model.layers.0.mlp.experts.gate_up_proj"
    assert out[key + "_blocks"].shape == (2, 128, 2, 16)
    decoded = fp4ref.dequantize(out[key + "_blocks"], out[key + "_scales"])
    assert np.array_equal(decoded, np.swapaxes(gate_up, -1, -2).astype(np.float32))
    assert "model.layers.0.self_attn.q_proj_blocks" in out
    # and dequantize writes the fused tensors back in HF's layout
    assert cli.main(["dequantize", "q.safetensors", "-o", "d.safetensors", "-q"]) == 0
    back = load("d.safetensors")
    assert back[key].shape == (2, 64, 128)
    assert np.array_equal(back[key].view(np.uint16), gate_up.view(np.uint16))


def test_quantize_and_keep_patterns(folder, capsys):
    rng = np.random.default_rng(2)
    save_file({"a.weight": rng.normal(size=(4, 64)).astype(np.float32),
               "b.weight": rng.normal(size=(4, 64)).astype(np.float32),
               "lm_head.weight": rng.normal(size=(4, 64)).astype(np.float32)}, "f.safetensors")
    assert cli.main(["convert", "f.safetensors", "o.safetensors", "--to", "gpt-oss",
                     "--quantize", "a.*", "--quantize", "lm_*", "--keep", ""]) == 0
    names = set(load("o.safetensors"))
    assert names == {"a_blocks", "a_scales", "lm_head_blocks", "lm_head_scales", "b.weight"}
    assert "matches no --quantize pattern (1): b.weight" in capsys.readouterr().err


def test_modelopt_output_needs_no_convention(folder, capsys):
    """N = 128 and K/16 = 4 fit ModelOpt and ComfyUI alike: fp4ref's metadata says which."""
    rng = np.random.default_rng(3)
    save_file({"l.weight": rng.normal(size=(128, 64)).astype(np.float32)}, "f.safetensors")
    assert cli.main(["convert", "f.safetensors", "m.safetensors", "--to", "modelopt",
                     "--profile", "modelopt", "-q"]) == 0
    capsys.readouterr()
    assert cli.main(["inspect", "m.safetensors"]) == 0
    assert "NVFP4 checkpoint, convention modelopt" in capsys.readouterr().out
    stripped = {k: v for k, v in load("m.safetensors").items()}
    save_file(stripped, "plain.safetensors")  # the same tensors without the marker
    assert cli.main(["inspect", "plain.safetensors"]) == 2
    assert "more than one convention" in capsys.readouterr().err


def test_inspect_counts_and_histogram(folder, capsys):
    save_file(gpt_oss_tensors(np.random.default_rng(4)), "model.safetensors")
    assert cli.main(["inspect", "model.safetensors"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "experts.down_proj" in line)
    assert "0x00 1, NaN (0xFF) 0" in row
    assert re.search(r"2\^-127 [ ▁▂▃▄▅▆▇█]+ 2\^2", row), row


def test_every_help_entry_explained():
    parser = cli.build_parser()
    commands_seen = 0
    for action in parser._subparsers._group_actions:
        for name, sub in action.choices.items():
            if name not in ("inspect", "dequantize", "convert"):
                continue
            commands_seen += 1
            for entry in sub._actions:
                if not isinstance(entry, argparse._HelpAction):
                    assert entry.help, f"{name} {entry.dest} has no help"
            text = sub.format_help()
            if name == "convert":
                assert all(profile in text for profile in profiles())
    assert commands_seen == 3


def gguf_model(path):
    """A llama.cpp-style GGUF: MXFP4 experts and an NVFP4 weight with its scale."""
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(5)
    records = rng.integers(0, 256, (2, 8, 2, 17), dtype=np.uint8)
    records[..., 0] = rng.integers(118, 130, (2, 8, 2))
    nv = rng.integers(0, 256, (8, 36), dtype=np.uint8)
    nv[:, :4] = rng.integers(0x30, 0x40, (8, 4))
    writer = gguf.GGUFWriter(str(path), "gpt-oss")
    writer.add_tensor("blk.0.ffn_down_exps.weight", records.reshape(2, 8, 34),
                      raw_dtype=gguf.GGMLQuantizationType.MXFP4)
    writer.add_tensor("blk.0.attn_q.weight", nv, raw_dtype=gguf.GGMLQuantizationType.NVFP4)
    writer.add_tensor("blk.0.attn_q.scale", np.array([0.25], np.float32))
    writer.add_tensor("output_norm.weight", np.ones(64, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def test_gguf_inspect_and_dequantize(folder, capsys):
    gguf = pytest.importorskip("gguf")
    gguf_model(folder / "x.gguf")
    assert cli.main(["inspect", "x.gguf"]) == 0
    out = capsys.readouterr().out
    assert "GGUF v3 (1 MXFP4, 1 NVFP4), architecture gpt-oss, 2 quantized layers, 1 other " \
           "tensors\nother tensors: 1 F32" in out
    assert "ggml NVFP4" in out and " x 0.25" in out
    assert cli.main(["dequantize", "x.gguf", "-o", "x.safetensors", "--dtype", "float32",
                     "-q"]) == 0
    got = load("x.safetensors")
    reader = gguf.GGUFReader("x.gguf")
    raw = {t.name: np.asarray(t.data) for t in reader.tensors}
    ref = gguf.quants.dequantize(raw["blk.0.attn_q.weight"], gguf.GGMLQuantizationType.NVFP4)
    assert np.array_equal(got["blk.0.attn_q.weight"].view(np.uint32),
                          (ref * np.float32(0.25)).view(np.uint32))
    ref = gguf.quants.dequantize(raw["blk.0.ffn_down_exps.weight"],
                                 gguf.GGMLQuantizationType.MXFP4)
    assert np.array_equal(got["blk.0.ffn_down_exps.weight"].view(np.uint32),
                          ref.view(np.uint32))
    assert cli.main(["convert", "x.gguf", "o.safetensors", "--to", "modelopt", "-q"]) == 2
    assert "is MXFP4; modelopt holds NVFP4" in capsys.readouterr().err  # no requantizing


def cli_md_examples() -> list[str]:
    """The ``fp4ref`` lines of cli.md's file sections (Files, GGUF), in order."""
    lines, active = [], False
    for line in CLI_MD.read_text().splitlines():
        if line.startswith("## "):
            active = line.startswith(("## Files", "## GGUF"))
        elif active and line.startswith("    fp4ref "):
            lines.append(line.strip())
    return lines


def test_cli_md_examples_run_as_written(folder, capsys):
    examples = cli_md_examples()
    assert len(examples) >= 10
    save_file(gpt_oss_tensors(np.random.default_rng(6)), "model.safetensors",
              metadata={"format": "pt"})
    gguf_model(folder / "model.gguf")
    for line in examples:
        argv = shlex.split(line)
        assert cli.main(argv[1:]) == 0, (line, capsys.readouterr().err)
        for name in argv:
            if name.endswith((".safetensors", ".gguf", ".uqff")) and name not in (
                    "model.safetensors",):
                assert os.path.exists(name), line
    # the GGUF section's round trip came back byte-identical
    assert filecmp.cmp("model.safetensors", "model-again.safetensors", shallow=False)
    # --quantize '*.experts.*_proj': the experts requantized from the bf16 file, their
    # biases and the router left in bf16
    names = set(load("experts-only.safetensors"))
    p = "model.layers.0.mlp."
    assert {p + "experts.gate_up_proj_blocks", p + "experts.down_proj_scales",
            p + "experts.gate_up_proj_bias", p + "router.weight"} <= names
    assert not any(n.startswith(p + "router") and n != p + "router.weight" for n in names)
    assert commands.TARGETS[-1] == "gguf"


@pytest.mark.parametrize("convention", ["modelopt", "compressed-tensors", "comfyui"])
def test_nvfp4_checkpoints_through_gguf_come_back_whole(folder, convention):
    """Each NVFP4 convention -> GGUF -> the same convention: the same file, byte for byte
    (scales, tensor scales, input scales, markers, 0-d and uint8 tensors included)."""
    rng = np.random.default_rng(7)
    save_file({"l.weight": rng.normal(size=(128, 128)).astype(np.float32),
               "m.weight": rng.normal(size=(8, 64)).astype(np.float32),
               "steps": np.array(3, np.int64), "ids": np.arange(5, dtype=np.uint8)},
              "f.safetensors")
    assert cli.main(["convert", "f.safetensors", "a.safetensors", "--to", convention,
                     "--profile", "modelopt" if convention != "compressed-tensors"
                     else convention, "-q"]) == 0
    assert cli.main(["convert", "a.safetensors", "a.gguf", "--to", "gguf", "-q"]) == 0
    assert cli.main(["convert", "a.gguf", "b.safetensors", "--to", convention, "-q"]) == 0
    assert filecmp.cmp("a.safetensors", "b.safetensors", shallow=False)


def test_gguf_uqff_round_trip(folder):
    """ggml MXFP4 records -> UQFF 1.x (low-first) -> GGUF: the same records."""
    gguf_model(folder / "x.gguf")
    assert cli.main(["convert", "x.gguf", "x.uqff", "--to", "uqff1", "--residual",
                     "rest.safetensors", "-q"]) == 2  # the NVFP4 layer has no UQFF form
    from fp4ref.io import gguf as G

    f = G.read("x.gguf")
    G.write("mx.gguf", {"blk.0.ffn_down_exps": f["blk.0.ffn_down_exps"]})
    assert cli.main(["convert", "mx.gguf", "x.uqff", "--to", "uqff1", "-q"]) == 0
    assert cli.main(["convert", "x.uqff", "y.gguf", "--to", "gguf", "-q"]) == 0
    g = G.read("y.gguf")
    (key,) = list(g)
    assert np.array_equal(g.records(g.entries[key]["weight"]),
                          f.records("blk.0.ffn_down_exps.weight"))


def test_float_to_gguf_nvfp4(folder, capsys):
    """--format nvfp4: K must fill ggml's 64-element records; the tensor scale goes to
    <key>.scale. gguf-py reads the records fp4ref quantized as fp4ref's own decode does
    (ggml's rule: code 8 is +0)."""
    rng = np.random.default_rng(8)
    w = rng.normal(size=(8, 128)).astype(np.float32)
    save_file({"a.weight": w, "b.weight": rng.normal(size=(8, 48)).astype(np.float32)},
              "f.safetensors")
    assert cli.main(["convert", "f.safetensors", "n.gguf", "--to", "gguf", "--format", "nvfp4",
                     "--profile", "modelopt"]) == 0
    assert "K = 48 is not a multiple of 64 (1): b.weight" in capsys.readouterr().err
    from fp4ref.io import gguf as G

    gguf = pytest.importorskip("gguf")
    f = G.read("n.gguf")
    assert list(f) == ["a"] and f.entries["a"]["scale"] == "a.scale"
    q = fp4ref.quantize(w, format="nvfp4", profile="modelopt")
    # gguf-py's record decode times the tensor scale is (P * s_b) * s_t: fp4ref's exact
    # arithmetic (the modelopt profile decodes as ModelOpt does, P * f32(s_b * s_t))
    ref = fp4ref.dequantize(q, profile=q.profile.with_options(decode_arithmetic="exact"))
    ref = np.where(fp4ref.unpack(q.blocks) == 8, np.float32(0), ref)  # ggml: code 8 is +0
    raw = {t.name: np.asarray(t.data) for t in gguf.GGUFReader("n.gguf").tensors}
    peer = gguf.quants.dequantize(raw["a.weight"], gguf.GGMLQuantizationType.NVFP4)
    assert np.array_equal((peer * raw["a.scale"][0]).view(np.uint32), ref.view(np.uint32))
    assert cli.main(["convert", "f.safetensors", "m.gguf", "--to", "gguf", "-q"]) == 0
    q = fp4ref.quantize(w)  # MXFP4 by default, OCP
    raw = {t.name: np.asarray(t.data) for t in gguf.GGUFReader("m.gguf").tensors}
    peer = gguf.quants.dequantize(raw["a.weight"], gguf.GGMLQuantizationType.MXFP4)
    assert np.array_equal(peer.view(np.uint32),
                          fp4ref.dequantize(q, e8m0_decode="ggml").view(np.uint32))


def test_convert_shows_progress(folder, capsys):
    save_file(gpt_oss_tensors(np.random.default_rng(9)), "model.safetensors")
    assert cli.main(["convert", "model.safetensors", "m.gguf", "--to", "gguf"]) == 0
    err = capsys.readouterr().err
    assert "convert [" in err and "100%" in err and "convert done:" in err
    assert cli.main(["convert", "model.safetensors", "n.gguf", "--to", "gguf", "-q"]) == 0
    assert capsys.readouterr().err == ""
