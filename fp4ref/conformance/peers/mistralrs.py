"""The mistral.rs adapter (see :mod:`fp4ref.conformance.peers`): the real program (PyPI
wheel ``mistralrs``) quantizing a tiny Llama in situ to MXFP4 and writing UQFF, read back
with :mod:`fp4ref.io.uqff`.

The model (:func:`write_model`) is made here: a one-layer Llama (hidden 128, intermediate
256, vocabulary 64) as float32 safetensors, a WordLevel tokenizer built with
``tokenizers`` and a one-line chat template; ``Runner(Which.Plain(..., write_uqff=...,
dtype=ModelDType.F32), in_situ_quant="mxfp4", token_source="none", no_paged_attn=True)``
quantizes its nine linear weights (embedding and head included) and writes UQFF 1.2. The
probe's blocks fill those weights in a fixed order (zeros after them), so one run carries
any probe. mistral.rs has no decoder that can be called on its own: only its quantizer
and its UQFF files are compared.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .base import Peer

HIDDEN, INTERMEDIATE, VOCAB = 128, 256, 64
#: The quantized weights, in the order probe blocks fill them, with their shapes.
WEIGHTS = {
    "model.layers.0.self_attn.q_proj": (HIDDEN, HIDDEN),
    "model.layers.0.self_attn.k_proj": (HIDDEN, HIDDEN),
    "model.layers.0.self_attn.v_proj": (HIDDEN, HIDDEN),
    "model.layers.0.self_attn.o_proj": (HIDDEN, HIDDEN),
    "model.layers.0.mlp.gate_proj": (INTERMEDIATE, HIDDEN),
    "model.layers.0.mlp.up_proj": (INTERMEDIATE, HIDDEN),
    "model.layers.0.mlp.down_proj": (HIDDEN, INTERMEDIATE),
    "model.embed_tokens": (VOCAB, HIDDEN),
    "lm_head": (VOCAB, HIDDEN),
}
CAPACITY = sum(r * k for r, k in WEIGHTS.values())


def write_model(folder: Path, values: np.ndarray) -> None:
    """A tiny Llama in ``folder`` whose quantized weights hold ``values`` (float32, at most
    :data:`CAPACITY` of them, then zeros)."""
    from safetensors.numpy import save_file
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": HIDDEN,
        "intermediate_size": INTERMEDIATE, "num_hidden_layers": 1, "num_attention_heads": 4,
        "num_key_value_heads": 4, "vocab_size": VOCAB, "max_position_embeddings": 128,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
        "tie_word_embeddings": False, "torch_dtype": "float32", "bos_token_id": 1,
        "eos_token_id": 2,
    }
    (folder / "config.json").write_text(json.dumps(config))
    flat = np.zeros(CAPACITY, np.float32)
    flat[: values.size] = values.reshape(-1)
    tensors, at = {}, 0
    for name, (rows, k) in WEIGHTS.items():
        tensors[f"{name}.weight"] = flat[at : at + rows * k].reshape(rows, k).copy()
        at += rows * k
    for norm in ("model.layers.0.input_layernorm", "model.layers.0.post_attention_layernorm",
                 "model.norm"):
        tensors[f"{norm}.weight"] = np.ones(HIDDEN, np.float32)
    save_file(tensors, str(folder / "model.safetensors"))
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2} | {f"t{i}": i for i in range(3, VOCAB)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>",
        "chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"}))


@contextlib.contextmanager
def _quiet():
    """mistral.rs logs to the process's stdout and stderr: /dev/null while it runs."""
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)
        os.close(null)


class MistralRs(Peer):
    name, module = "mistralrs", "mistralrs"
    own = "mistral.rs in-situ MXFP4 (Runner, in_situ_quant='mxfp4') written as UQFF 1.2"
    profiles = {"mxfp4": "mistralrs"}
    decode_dtypes = ()

    @property
    def version(self) -> str:
        import importlib.metadata

        return importlib.metadata.version("mistralrs")

    def run(self, folder: Path, **which) -> object:
        """``Runner`` on the model in ``folder`` (``which``: ``write_uqff=`` or
        ``from_uqff=``), on the CPU, float32."""
        m = self.lib
        with _quiet():
            return m.Runner(
                which=m.Which.Plain(model_id=str(folder), arch=m.Architecture.Llama,
                                    dtype=m.ModelDType.F32, **which),
                in_situ_quant="mxfp4" if "write_uqff" in which else None,
                token_source="none", no_paged_attn=True)

    def write_uqff(self, values: np.ndarray, folder: Path) -> Path:
        """Quantize a model holding ``values`` with mistral.rs; the UQFF shard it wrote."""
        write_model(folder, values)
        runner = self.run(folder, write_uqff=str(folder / "model.uqff"))
        del runner
        shards = sorted(folder.glob("model*.uqff"))
        if len(shards) != 1:
            raise RuntimeError(f"mistral.rs wrote {[s.name for s in shards]} in {folder}")
        return shards[0]

    def quantize_probe(self, x, format, tensor_scale):
        from ...io import uqff

        if x.size > CAPACITY:
            raise NotImplementedError(f"the tiny model holds {CAPACITY} values")
        with tempfile.TemporaryDirectory() as tmp:
            shard = uqff.read(self.write_uqff(x, Path(tmp)))
            codes, scales = [], []
            for name in WEIGHTS:
                layer = shard[name]
                codes.append(np.asarray(layer.blocks).reshape(-1, 16))
                scales.append(np.asarray(layer.scales).reshape(-1))
        rows, blocks = x.shape[0], x.size // 32
        codes = np.concatenate(codes)[:blocks].reshape(rows, -1)
        return codes, np.concatenate(scales)[:blocks].reshape(rows, -1), None
