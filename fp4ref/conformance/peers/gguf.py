"""The Gguf adapter (see :mod:`fp4ref.conformance.peers`)."""

from __future__ import annotations

import warnings

import numpy as np

from ...profiles import profiles
from .base import Peer, _pack, _unpack


class Gguf(Peer):
    name, module = "gguf", "gguf.quants"
    own = "ggml MXFP4: block_mxfp4 records, floor(log2f) scale without clamp, ties toward zero"
    native = {"scale_rule": ("ggml",), "rounding": ("zero",), "profile": ("ggml",)}
    capabilities = {"dtype": ("float32",), "format": ("mxfp4",)}

    def _records(self, blocks, scales, order):
        codes = _unpack(blocks, order)
        qs = _pack(codes, "split-half").astype(np.uint8).reshape(*scales.shape, 16)
        return np.concatenate([scales[..., None], qs], -1).reshape(scales.shape[0], -1)

    def dequantize_mxfp4(self, blocks, scales, *, nibble_order, dtype):
        self.choose(dtype=dtype)
        from gguf import GGMLQuantizationType

        with np.errstate(all="ignore"):
            return self.lib.dequantize(
                self._records(blocks, scales, nibble_order), GGMLQuantizationType.MXFP4
            )

    def dequantize_profile(self, blocks, scales, tensor_scale, *, format, profile):
        from gguf import GGMLQuantizationType

        order = profiles()[profile].nibble_order  # how the case stores its bytes (glue)
        self.choose(format=format, profile=profile)
        with np.errstate(all="ignore"):
            return self.lib.dequantize(
                self._records(blocks, scales, order), GGMLQuantizationType.MXFP4
            )

    def _quantize(self, x, order):
        from gguf import GGMLQuantizationType

        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = self.lib.quantize(np.ascontiguousarray(x), GGMLQuantizationType.MXFP4)
        records = raw.reshape(x.shape[0], -1, 17)
        qs = records[..., 1:].reshape(x.shape[0], -1)
        if order != "split-half":
            qs = _pack(_unpack(qs, "split-half"), order)
        return qs, records[..., 0]

    def quantize_mxfp4(self, x, *, scale_rule, rounding):
        self.choose(scale_rule=scale_rule, rounding=rounding)
        return self._quantize(x, "low-first")

    def quantize_profile(
        self, x, tensor_scale, activations=None, *, format, profile, scale_rule=None
    ):
        self.choose(format=format, profile=profile)
        if scale_rule is not None:
            raise NotImplementedError("gguf has no optimal scale search")
        return self._quantize(x, "split-half")
