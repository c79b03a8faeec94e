"""UQFF suites: mistral.rs MXFP4 layer blobs (generation 0.x) and ``.uqff`` files of both
generations, valid and malformed.

The expected bytes are written here literally from the tables of ``spec/uqff.md`` with
:mod:`struct`, independently of :mod:`fp4ref.io.uqff`, so the two check each other.
Malformed inputs are cases whose expected outcome is a refusal (``error``).
"""

from __future__ import annotations

import struct

import ml_dtypes
import numpy as np

from ..files import safetensors_bytes
from ..model import Case, Suite
from . import _inputs

#: uqff.md, "Dtype codes".
_CODES = {
    np.dtype(np.uint8): 0,
    np.dtype(np.float16): 4,
    np.dtype(ml_dtypes.bfloat16): 5,
    np.dtype(np.float32): 6,
}
_PINS = "spec/uqff.md (mistralrs-quant 0.8.1 serialize_with_bias / serialize_tensor)"
_REFUSE = "FormatError (a ValueError): the reader must refuse these bytes"


def _record(array: np.ndarray, code: int | None = None, length: int | None = None) -> bytes:
    """uqff.md tensor record: u32 data length, u32 dtype code, u32 ndims, u32 dims, data."""
    data = array.tobytes()
    head = struct.pack(
        "<III",
        len(data) if length is None else length,
        _CODES[array.dtype] if code is None else code,
        array.ndim,
    )
    return head + struct.pack(f"<{array.ndim}I", *array.shape) + data


def _word(major: int, minor: int, patch: int) -> int:
    return (major << 16) | (minor << 8) | patch  # uqff.md, "Version word"


def _blob(blocks, scales, bias=None, version=(0, 2, 0), kind=6, has_bias=None) -> bytes:
    has = (bias is not None) if has_bias is None else has_bias
    parts = [struct.pack("<IBB", _word(*version), kind, has), _record(blocks), _record(scales)]
    if bias is not None:
        parts.append(_record(bias))
    return b"".join(parts)


def _layers() -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Layers (blocks, scales, bias): 2-D without bias, with float32/float16 bias, and a
    3-D expert stack with a bfloat16 bias."""
    blocks2, scales2 = _inputs.random_bytes((4, 32), 40), _inputs.random_bytes((4, 2), 41, 110, 140)
    blocks3, scales3 = _inputs.random_bytes((2, 3, 16), 42), _inputs.random_bytes((2, 3, 1), 43)
    bias = _inputs.Stream(44).uniform(-4, 4, 10)
    return {
        "plain": (blocks2, scales2, None),
        "bias_f32": (blocks2, scales2, bias[:4].astype(np.float32)),
        "bias_f16": (blocks2, scales2, bias[4:8].astype(np.float16)),
        "experts_bias_bf16": (
            blocks3,
            scales3,
            bias[4:10].reshape(2, 3).astype(ml_dtypes.bfloat16),
        ),
    }


def _bytes(data: bytes) -> np.ndarray:
    return np.frombuffer(data, np.uint8).copy()


def _outputs(layer) -> dict[str, np.ndarray]:
    blocks, scales, bias = layer
    out = {"blocks": blocks, "scales": scales}
    if bias is not None:
        out["bias"] = bias
    return out


def _blob_decode_cases() -> list[Case]:
    cases = []
    for name, layer in _layers().items():
        cases.append(
            Case(
                name,
                f"a 0.2.0 MXFP4 blob ({name})",
                _PINS,
                {"blob": _bytes(_blob(*layer))},
                _outputs(layer),
            )
        )
    blocks, scales, _ = _layers()["plain"]
    for version in ((0, 1, 0), (0, 2, 7)):
        label = "v{}_{}_{}".format(*version)
        cases.append(
            Case(
                label,
                f"version {version} is accepted (minor <= 2, patch ignored)",
                _PINS + ", version compatibility check",
                {"blob": _bytes(_blob(blocks, scales, version=version))},
                _outputs((blocks, scales, None)),
            )
        )
    good = _blob(blocks, scales)
    bad = {
        "major_1": ("major version 1 in a 0.x blob", _blob(blocks, scales, version=(1, 0, 0))),
        "minor_3": ("minor version 3, newer than 0.2", _blob(blocks, scales, version=(0, 3, 0))),
        "type_fp8": ("quantization type 3 (Fp8), not 6", _blob(blocks, scales, kind=3)),
        "has_bias_2": ("has_bias byte 2", _blob(blocks, scales, has_bias=2)),
        "bias_missing": ("has_bias 1 but no bias record", _blob(blocks, scales, has_bias=1)),
        "truncated": ("the last 5 bytes cut off", good[:-5]),
        "preamble_only": ("only the 6-byte preamble", good[:6]),
        "trailing": ("3 bytes after the last record", good + b"\0\0\0"),
        "length_short": (
            "a data length smaller than the shape needs",
            struct.pack("<IBB", _word(0, 2, 0), 6, 0)
            + _record(blocks, length=blocks.nbytes - 1)
            + _record(scales),
        ),
        "huge_dims": (
            "dimensions whose product overflows 64 bits",
            struct.pack("<IBB", _word(0, 2, 0), 6, 0)
            + struct.pack("<IIIII", 16, 0, 2, 2**32 - 1, 2**32 - 1)
            + bytes(16),
        ),
        "scales_shape": (
            "scales [N, K/32 + 1] that do not match the blocks",
            _blob(blocks, np.zeros((4, 3), np.uint8)),
        ),
        "blocks_f32": ("blocks of dtype F32", _blob(blocks.view(np.float32), scales)),
    }
    for name, (tests, data) in bad.items():
        cases.append(Case(name, tests, _PINS, {"blob": _bytes(data)}, {}, error=_REFUSE))
    return cases


def _blob_encode_cases() -> list[Case]:
    cases = []
    for name, layer in _layers().items():
        inputs = {k: v for k, v in _outputs(layer).items()}
        cases.append(
            Case(
                name,
                f"the 0.2.0 blob mistral.rs writes for a layer ({name})",
                _PINS,
                inputs,
                {"blob": _bytes(_blob(*layer))},
            )
        )
    return cases


def _file_0(layers: dict[str, tuple]) -> bytes:
    """A 0.x shard: each blob a 1-D U8 tensor named by its layer index."""
    return safetensors_bytes({key: _bytes(_blob(*layer)) for key, layer in layers.items()}, {})


def _file_1(layers: dict[str, tuple], version=(1, 2, 0)) -> bytes:
    """A 1.x shard: version scalars and <key>.weight / .weight.format / .weight.scales / .bias."""
    names = ("uqff.version.major", "uqff.version.minor", "uqff.version.patch")
    tensors = {name: np.array(v, np.uint32) for name, v in zip(names, version, strict=True)}
    for key, (blocks, scales, bias) in layers.items():
        tensors[f"{key}.weight"] = blocks
        tensors[f"{key}.weight.format"] = np.array(6, np.uint8)
        tensors[f"{key}.weight.scales"] = scales
        if bias is not None:
            tensors[f"{key}.bias"] = bias
    return safetensors_bytes(tensors, {"uqff.producer": "fp4ref conformance"})


def _file_cases() -> list[Case]:
    layers = _layers()
    gen0 = {"0": layers["plain"], "3": layers["bias_f32"], "7": layers["experts_bias_bf16"]}
    gen1 = {
        "model.layers.0.mlp.down_proj": layers["plain"],
        "model.layers.1.mlp.up_proj": layers["bias_f16"],
        "model.layers.2.mlp.experts.gate_proj": layers["experts_bias_bf16"],
    }
    cases = []
    for generation, table, data in ((0, gen0, _file_0(gen0)), (1, gen1, _file_1(gen1))):
        for key, layer in table.items():
            cases.append(
                Case(
                    f"gen{generation}_{key.replace('.', '_')}",
                    f"layer {key!r} of a generation-{generation} .uqff shard",
                    "spec/uqff.md, "
                    + (
                        "generation 0.x container"
                        if generation == 0
                        else "generation 1.x (mistral.rs 1.2.0)"
                    ),
                    {"file": _bytes(data)},
                    _outputs(layer),
                    {"layer": key},
                )
            )
    bad = {
        "gen1_major_2": ("a 1.x file whose major version is 2", _file_1(gen1, (2, 0, 0))),
        "gen1_minor_3": ("a 1.x file whose minor version is 3", _file_1(gen1, (1, 3, 0))),
        "not_uqff": (
            "a safetensors file with neither version scalars nor index-named blobs",
            safetensors_bytes({"weight": np.zeros(4, np.float32)}, {}),
        ),
        "gen0_bad_blob": (
            "a 0.x file whose blob has type 3",
            safetensors_bytes({"0": _bytes(_blob(*layers["plain"][:2], kind=3))}, {}),
        ),
    }
    key = {"gen0_bad_blob": "0"}
    for name, (tests, data) in bad.items():
        cases.append(
            Case(
                name,
                tests,
                "spec/uqff.md, version and container rules",
                {"file": _bytes(data)},
                {},
                {"layer": key.get(name, "model.layers.0.mlp.down_proj")},
                error=_REFUSE,
            )
        )
    return cases


_LAYER = "(blocks: uint8[..., N, K/2], scales: uint8[..., N, K/32][, bias: [..., N]])"
SUITES = [
    Suite(
        "uqff_blob_decode",
        "decode_uqff_blob",
        f"(blob: uint8[n]) -> {_LAYER}; raises ValueError on a malformed blob",
        "UQFF 0.x MXFP4 layer blobs: versions, bias dtypes, experts, malformed bytes",
        _blob_decode_cases,
    ),
    Suite(
        "uqff_blob_encode",
        "encode_uqff_blob",
        f"{_LAYER} -> blob: uint8[n] (version 0.2.0)",
        "UQFF 0.x MXFP4 layer blobs written byte for byte",
        _blob_encode_cases,
    ),
    Suite(
        "uqff_file",
        "read_uqff_layer",
        f"(file: uint8[n] (.uqff bytes), *, layer: str) -> {_LAYER}; raises ValueError on a "
        "malformed or refused file",
        "UQFF shards of both generations, and refused ones",
        _file_cases,
    ),
]
