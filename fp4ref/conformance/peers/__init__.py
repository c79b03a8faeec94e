"""Adapters that present real peer libraries as conformance implementations.

Each adapter imports its library lazily (``ImportError`` when it is not installed, and
the matrix skips it) and provides the suites' operations the library can perform, with
the glue written here kept to layout conversion (nibble repacking, float values to codes,
tensor-scale direction); the arithmetic under test is the peer's.

Parameters are of two kinds. *Capabilities* (output dtype, scale layout, how the bytes are
arranged on the way in) are honoured or the case is skipped. *Conventions* (tie rule,
overflow rule, scale rule, profile) are where peers differ from the OCP specs: in the
matrix's OCP column the adapter ignores them and runs the peer as it is (``lenient``), so
an OCP case checks the peer's own behaviour against the spec; in the "own" column it runs
only the cases whose conventions the peer has (others are skipped), so those check that
fp4ref's emulation and the peer agree.

One module per implementation; :data:`PEERS` lists them in the matrix's order.
"""

from __future__ import annotations

from .base import E2M1, SENTINEL, Peer
from .comfy import Comfy
from .compressed_tensors import CompressedTensors
from .gfloat import Gfloat
from .ggml import Ggml
from .gguf import Gguf
from .mistralrs import MistralRs
from .ml_dtypes import MlDtypes
from .mlx import Mlx
from .modelopt import ModelOpt
from .quark import Quark
from .qwantize import Qwantize
from .torch import Torch
from .torchao import Torchao
from .vllm import Vllm, VllmRoundDown, VllmTriton

#: Every adapter, in the matrix's order.
PEERS = (MlDtypes, Torch, Gfloat, Torchao, Gguf, Qwantize, CompressedTensors, ModelOpt, Mlx,
         Comfy, Quark, Vllm, VllmRoundDown, VllmTriton, Ggml, MistralRs)


def available() -> dict[str, Peer]:
    """The adapters whose library imports here, by name."""
    out = {}
    for cls in PEERS:
        try:
            out[cls.name] = cls()
        except ImportError:
            continue
    return out


__all__ = [
    "Comfy",
    "CompressedTensors",
    "E2M1",
    "Gfloat",
    "Ggml",
    "Gguf",
    "MistralRs",
    "MlDtypes",
    "Mlx",
    "ModelOpt",
    "PEERS",
    "Peer",
    "Quark",
    "Qwantize",
    "SENTINEL",
    "Torch",
    "Torchao",
    "Vllm",
    "VllmRoundDown",
    "VllmTriton",
    "available",
]
