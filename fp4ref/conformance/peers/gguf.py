"""The Gguf adapter (see :mod:`fp4ref.conformance.peers`): gguf-py 0.19's numpy
``gguf.quants.quantize`` / ``dequantize`` of ``GGMLQuantizationType.MXFP4`` (17-byte
``block_mxfp4`` records, split-half nibbles), compared with the ``gguf-py`` profile (the C
code's MXFP4 except on NaN blocks: ``docs/findings.md`` 14)."""

from __future__ import annotations

import warnings

import numpy as np

from ...profiles import profiles
from .base import Peer, _pack, _unpack


class Gguf(Peer):
    name, module = "gguf", "gguf.quants"
    own = ("gguf-py MXFP4 (gguf.quants quantize / dequantize): block_mxfp4 records, "
           "floor(log2f) scale without clamp, float32 argmin elements; profile gguf-py")
    native = {"scale_rule": ("ggml",), "rounding": ("zero",), "profile": ("gguf-py",),
              "e8m0_decode": ("ggml",)}
    capabilities = {"dtype": ("float32",), "format": ("mxfp4",)}
    profiles = {"mxfp4": "gguf-py"}

    def _records(self, blocks, scales, order):
        codes = _unpack(blocks, order)
        qs = _pack(codes, "split-half").astype(np.uint8).reshape(*scales.shape, 16)
        return np.concatenate([scales[..., None], qs], -1).reshape(scales.shape[0], -1)

    def dequantize_mxfp4(self, blocks, scales, *, nibble_order, dtype, e8m0_decode="ocp"):
        self.choose(dtype=dtype, e8m0_decode=e8m0_decode)
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

    def quantize_probe(self, x, format, tensor_scale):
        self.choose(format=format)
        if tensor_scale is not None:
            raise NotImplementedError("gguf-py's quantizer takes no tensor scale")
        return (*self._quantize(np.ascontiguousarray(x, np.float32), "split-half"), None)

    def dequantize_probe(self, blocks, scales, stored, format, dtype):
        from gguf import GGMLQuantizationType

        self.choose(format=format, dtype=dtype)
        with np.errstate(all="ignore"):
            out = self.lib.dequantize(self._records(np.asarray(blocks, np.uint8),
                                                    np.asarray(scales, np.uint8), "split-half"),
                                      GGMLQuantizationType.MXFP4)
        return np.asarray(out, np.float32).reshape(blocks.shape[0], -1)
