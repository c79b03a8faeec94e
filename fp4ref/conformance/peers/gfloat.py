"""The Gfloat adapter (see :mod:`fp4ref.conformance.peers`)."""

from __future__ import annotations

import numpy as np

from .base import SENTINEL, Peer, _pack


class Gfloat(Peer):
    name, module = "gfloat", "gfloat"
    own = ("ties to even or away, both overflow modes, OCP floor scale rule; E2M1 refuses NaN "
           "(ValueError), E4M3 NaN is 0xFF whatever the sign; MXFP4 Inf blocks 0xFE, NaN "
           "refused")
    native = {"rounding": ("even", "away"), "scale_rule": ("floor",), "zero_sign": ("keep",),
              "nan": ("refuse",), "nan_byte": ("gfloat",), "nonfinite": ("gfloat",)}

    def _format(self, which):
        from gfloat import formats

        return getattr(formats, f"format_info_ocp_{which}")

    def _mode(self, rounding):
        return {"even": self.lib.RoundMode.TiesToEven, "away": self.lib.RoundMode.TiesToAway}[
            rounding
        ]

    def _decode(self, codes, which):
        fi = self._format(which)
        return np.array([self.lib.decode_float(fi, int(c)).fval for c in codes], np.float32)

    def decode_e2m1(self, codes):
        return self._decode(codes, "e2m1")

    def decode_e8m0(self, codes):
        return self._decode(codes, "e8m0")

    def decode_e4m3(self, codes):
        return self._decode(codes, "e4m3")

    def _encode(self, x, which, rounding, saturate, refuse=False):
        """gfloat's round_float + encode_float per element; with ``refuse`` its
        ``ValueError`` (NaN into E2M1) propagates: the call refuses the input."""
        fi, mode = self._format(which), self._mode(rounding)
        out = np.empty(x.size, np.int16)
        for i, v in enumerate(x.astype(np.float64)):
            try:
                out[i] = self.lib.encode_float(
                    fi, self.lib.round_float(fi, float(v), mode, sat=saturate)
                )
            except (ValueError, OverflowError):
                if refuse:
                    raise
                out[i] = SENTINEL
        return out

    def encode_e2m1(self, x, *, rounding, zero_sign=None, nan=None):
        rounding, _, _ = self.choose(rounding=rounding, zero_sign=zero_sign, nan=nan)
        return self._encode(x, "e2m1", rounding, True, refuse=True)

    def encode_e4m3(self, x, *, rounding, saturate, nan_byte=None):
        rounding, _ = self.choose(rounding=rounding, nan_byte=nan_byte)
        return self._encode(x, "e4m3", rounding, saturate)

    def quantize_mxfp4(self, x, *, scale_rule, rounding, nonfinite=None):
        """gfloat's compute_scale_amax + encode_block per block; a block it refuses (a NaN:
        encode_float raises ValueError) makes the call refuse the input."""
        _, rounding, _ = self.choose(scale_rule=scale_rule, rounding=rounding,
                                     nonfinite=nonfinite)
        from gfloat.formats import format_info_mxfp4_e2m1 as mx

        flat = x.reshape(-1, 32).astype(np.float64)
        scales = np.empty(flat.shape[0], np.int16)
        codes = np.zeros(flat.shape, np.int16)
        for b, block in enumerate(flat):
            try:
                scale = self.lib.compute_scale_amax(mx.etype.emax, block)
                encoded = list(
                    self.lib.encode_block(mx, scale, block / scale, self._mode(rounding))
                )
                scales[b], codes[b] = encoded[0], encoded[1:]
            except OverflowError:
                scales[b] = SENTINEL
        rows = x.shape[0]
        return _pack(codes.reshape(rows, -1)), scales.reshape(rows, -1)
