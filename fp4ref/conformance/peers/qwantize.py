"""The Qwantize adapter (see :mod:`fp4ref.conformance.peers`)."""

from __future__ import annotations

import numpy as np

from .base import SENTINEL, Peer, _codes, _pack, _torch


class Qwantize(Peer):
    name, module = "qwantize", "qwantize"
    own = "qwantize 0.1 reference: naive and optimal MXFP4, NVFP4 without tensor scale"
    native = {"scale_rule": ("qwantize",), "rounding": ("zero",), "profile": ("qwantize",)}
    profiles = {"mxfp4": "qwantize", "nvfp4": "qwantize"}
    decode_dtypes = ()  # qwantize decodes its own float scales and values, not bytes

    def _run(self, x, format, scale_rule, activations):
        """qwantize's ``<format>_<naive|optimal|optimal_hessian>`` on blocks [rows, K/B, B]."""
        torch = _torch()
        block = 32 if format == "mxfp4" else 16
        rows = x.shape[0]
        kind = {None: "naive", "optimal": "optimal", "optimal-hessian": "optimal_hessian"}
        function = getattr(self.lib, f"{format}_{kind[scale_rule]}")
        w = torch.from_numpy(x.copy()).reshape(rows, -1, block)
        if scale_rule == "optimal-hessian":
            s, q = function(w, X=torch.from_numpy(activations.copy()))
        else:
            s, q = function(w)
        s = s.numpy()
        if format == "mxfp4":
            with np.errstate(all="ignore"):
                exponent = np.log2(s) + 127
            # a NaN scale (a NaN in the block) is written as E8M0's NaN byte 0xFF
            scales = np.where(np.isnan(s), 0xFF, np.where(np.isfinite(exponent),
                                                          np.round(exponent), SENTINEL))
        else:  # torch's E4M3 cast (a NaN scale: 0x7F, or 0xFF with its sign bit)
            scales = torch.from_numpy(s).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
        return _pack(_codes(q.reshape(rows, -1).numpy())), scales.astype(np.int16)

    def quantize_mxfp4(self, x, *, scale_rule, rounding):
        self.choose(scale_rule=scale_rule, rounding=rounding)
        return self._run(x, "mxfp4", None, None)

    def quantize_nvfp4(self, x, tensor_scale, *, tensor_scale_direction):
        self.choose(rounding="even")  # the suite's ties; qwantize's go toward zero
        if float(tensor_scale) != 1.0:
            raise NotImplementedError("qwantize's NVFP4 has no tensor scale")
        return self._run(x, "nvfp4", None, None)

    def quantize_probe(self, x, format, tensor_scale):
        """``mxfp4_naive`` / ``nvfp4_naive`` on blocks of the rows (NVFP4 takes no tensor
        scale)."""
        if tensor_scale is not None:
            raise NotImplementedError("qwantize's NVFP4 has no tensor scale")
        blocks, scales = self._run(x, format, None, None)
        return blocks.astype(np.uint8), scales, None

    def quantize_profile(
        self, x, tensor_scale, activations=None, *, format, profile, scale_rule=None
    ):
        self.choose(profile=profile)
        return self._run(x, format, scale_rule, activations)
