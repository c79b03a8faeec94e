"""fp4ref's GGUF MXFP4 tensors against llama.cpp's own ``convert_hf_to_gguf.py`` on a tiny
gpt-oss-shaped Hugging Face model made here.

``.ci/peers/llama-cpp-convert.sh`` unpacks the converter from the
``llama-cpp-python==0.3.36`` sdist (or set ``FP4REF_LLAMA_CPP`` to a llama.cpp folder); it
runs in a subprocess with its own gguf-py. Its one change: the tiny tokenizer's
pre-tokenizer hash is none llama.cpp knows, so ``get_vocab_base_pre`` is told ``"gpt-4o"``
(what it answers for gpt-oss).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fp4ref import cli
from fp4ref.io import gguf as G


def _llama() -> str | None:
    """FP4REF_LLAMA_CPP, else where .ci/peers/llama-cpp-convert.sh unpacks it, if there."""
    from fp4ref.conformance.peers.base import peers_dir

    found = os.environ.get("FP4REF_LLAMA_CPP") or str(
        peers_dir() / "llama-cpp-python-0.3.36" / "llama.cpp")
    if os.path.exists(os.path.join(found, "convert_hf_to_gguf.py")):
        return found
    if os.environ.get("FP4REF_REQUIRE_PEERS") == "1":
        raise RuntimeError(f"llama.cpp's converter is not at {found} (run "
                           f".ci/peers/llama-cpp-convert.sh)")
    return None


LLAMA = _llama()
pytestmark = [pytest.mark.peers, pytest.mark.skipif(
    LLAMA is None, reason="llama.cpp's converter is not unpacked (FP4REF_LLAMA_CPP, or "
                          ".ci/peers/llama-cpp-convert.sh)")]

RUN = """
import runpy, sys
llama, model, out = sys.argv[1:4]
sys.path[:0] = [llama + "/gguf-py", llama]
import conversion.base as base
base.TextModel.get_vocab_base_pre = lambda self, tokenizer: "gpt-4o"
sys.argv = ["convert_hf_to_gguf.py", model, "--outfile", out, "--outtype", "bf16"]
runpy.run_path(llama + "/convert_hf_to_gguf.py", run_name="__main__")
"""


def build(folder, E=4, H=64, inner=64, L=2, heads=4, kv=2, hd=16):
    """config.json, a byte-level BPE tokenizer, and model.safetensors with MXFP4 experts
    (random codes, scales 110..134 plus one 0x00 and one 0xFF) in gpt-oss's names."""
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    rng = np.random.default_rng(0)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(["a tiny gpt-oss model for fp4ref " * 20], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "eos_token": "<|endoftext|>"}))
    V = tok.get_vocab_size()
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss", "hidden_size": H,
        "intermediate_size": inner, "num_hidden_layers": L, "num_attention_heads": heads,
        "num_key_value_heads": kv, "head_dim": hd, "num_local_experts": E,
        "num_experts_per_tok": 2, "experts_per_token": 2, "vocab_size": V,
        "rms_norm_eps": 1e-5, "sliding_window": 128, "rope_theta": 150000.0,
        "max_position_embeddings": 4096, "rope_scaling": {
            "rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
            "truncate": False, "original_max_position_embeddings": 4096},
        "layer_types": ["sliding_attention", "full_attention"][:L],
        "quantization_config": {"quant_method": "mxfp4"}, "tie_word_embeddings": False,
        "attention_bias": True, "swiglu_limit": 7.0, "initial_context_length": 4096,
        "eos_token_id": 0, "pad_token_id": 0, "torch_dtype": "bfloat16"}))

    def bf(*shape):
        return torch.from_numpy(rng.standard_normal(shape).astype(np.float32)).bfloat16()

    def u8(low, high, *shape):
        return torch.from_numpy(rng.integers(low, high, shape, dtype=np.uint8))

    t = {"model.embed_tokens.weight": bf(V, H), "lm_head.weight": bf(V, H),
         "model.norm.weight": bf(H)}
    for layer in range(L):
        p = f"model.layers.{layer}."
        t[p + "input_layernorm.weight"] = bf(H)
        t[p + "post_attention_layernorm.weight"] = bf(H)
        for name, rows in (("q", heads * hd), ("k", kv * hd), ("v", kv * hd)):
            t[p + f"self_attn.{name}_proj.weight"] = bf(rows, H)
            t[p + f"self_attn.{name}_proj.bias"] = bf(rows)
        t[p + "self_attn.o_proj.weight"] = bf(H, heads * hd)
        t[p + "self_attn.o_proj.bias"] = bf(H)
        t[p + "self_attn.sinks"] = bf(heads)
        t[p + "mlp.router.weight"] = bf(E, H)
        t[p + "mlp.router.bias"] = bf(E)
        t[p + "mlp.experts.gate_up_proj_blocks"] = u8(0, 256, E, 2 * inner, H // 32, 16)
        t[p + "mlp.experts.gate_up_proj_scales"] = u8(110, 135, E, 2 * inner, H // 32)
        t[p + "mlp.experts.gate_up_proj_bias"] = bf(E, 2 * inner)
        t[p + "mlp.experts.down_proj_blocks"] = u8(0, 256, E, H, inner // 32, 16)
        t[p + "mlp.experts.down_proj_scales"] = u8(110, 135, E, H, inner // 32)
        t[p + "mlp.experts.down_proj_bias"] = bf(E, H)
    t["model.layers.0.mlp.experts.down_proj_scales"][0, 0, :2] = torch.tensor([255, 0])
    save_file(t, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return L


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf")
    layers = build(folder)
    out = folder / "llama.gguf"
    subprocess.run([sys.executable, "-c", RUN, LLAMA, str(folder), str(out)], check=True,
                   capture_output=True, timeout=600)
    return folder, out, layers


def test_expert_bytes_equal_llama_cpp(converted, tmp_path):
    """llama.cpp splits gate_up into even rows (gate) and odd rows (up); the records of
    each are those fp4ref writes for the fused tensor."""
    folder, llama_gguf, layers = converted
    ours = tmp_path / "fp4ref.gguf"
    assert cli.main(["convert", str(folder / "model.safetensors"), str(ours), "--to", "gguf",
                     "-q"]) == 0
    theirs, mine = G.read(llama_gguf), G.read(ours)
    for n in range(layers):
        fused = mine.records(f"model.layers.{n}.mlp.experts.gate_up_proj")
        assert theirs.tensors[f"blk.{n}.ffn_gate_exps.weight"].ggml_type == G.MXFP4
        assert np.array_equal(theirs.records(f"blk.{n}.ffn_gate_exps.weight"), fused[:, ::2])
        assert np.array_equal(theirs.records(f"blk.{n}.ffn_up_exps.weight"), fused[:, 1::2])
        assert np.array_equal(theirs.records(f"blk.{n}.ffn_down_exps.weight"),
                              mine.records(f"model.layers.{n}.mlp.experts.down_proj"))


def test_llama_cpp_file_reads_back(converted, tmp_path):
    """The converter's GGUF: decoded as gguf-py decodes it, and repacked to gpt-oss
    safetensors and back to GGUF with the same record bytes."""
    gguf = pytest.importorskip("gguf")
    from gguf.quants import dequantize

    _, llama_gguf, _ = converted
    theirs = G.read(llama_gguf)
    for key in theirs:
        with np.errstate(over="ignore"):
            ref = dequantize(np.asarray(theirs.records(theirs.entries[key]["weight"])),
                             gguf.GGMLQuantizationType.MXFP4)
            got = G.dequantize(theirs[key])
        assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))
    st, again = tmp_path / "gpt-oss.safetensors", tmp_path / "again.gguf"
    assert cli.main(["convert", str(llama_gguf), str(st), "--to", "gpt-oss", "-q"]) == 0
    assert cli.main(["convert", str(st), str(again), "--to", "gguf", "-q"]) == 0
    back = G.read(again)
    assert list(back) == list(theirs)  # keys kept (gpt-oss names have no ".weight")
    for key in theirs:
        assert np.array_equal(back.records(back.entries[key]["weight"]),
                              theirs.records(theirs.entries[key]["weight"]))


def test_fp4ref_dequantize_equals_ggml_c(converted, tmp_path):
    """``fp4ref dequantize`` of the converter's file against ggml's own C to_float (built by
    .ci/peers/ggml.sh), bit for bit; the fused layout rule does not apply to ggml names."""
    from fp4ref.conformance.peers import ggml
    from tests.test_io_commands import load

    try:
        c = ggml.Ggml()
    except ImportError as error:
        if os.environ.get("FP4REF_REQUIRE_PEERS") == "1":
            raise
        pytest.skip(str(error))
    _, llama_gguf, _ = converted
    out = tmp_path / "f32.safetensors"
    assert cli.main(["dequantize", str(llama_gguf), "-o", str(out), "--dtype", "float32",
                     "-q"]) == 0
    decoded, theirs = load(out), G.read(llama_gguf)
    for key in theirs:
        info = theirs.tensors[theirs.entries[key]["weight"]]
        ref = c.to_float(np.asarray(theirs.records(info.name)), info.ggml_type,
                         int(np.prod(info.shape))).reshape(info.shape)
        assert np.array_equal(decoded[info.name].view(np.uint32), ref.view(np.uint32)), key
