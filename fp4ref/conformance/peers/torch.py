"""The Torch adapter (see :mod:`fp4ref.conformance.peers`)."""

from __future__ import annotations

import numpy as np

from .base import Peer


class Torch(Peer):
    name, module = "torch", "torch"
    own = "E4M3 cast: ties to even, saturating to 448, NaN with the input's sign"
    native = {"rounding": ("even",), "saturate": (True,), "nan_byte": ("sign",)}

    def _decode(self, codes, dtype):
        return self.lib.from_numpy(np.asarray(codes, np.uint8)).view(dtype).float().numpy()

    def decode_e8m0(self, codes):
        return self._decode(codes, self.lib.float8_e8m0fnu)

    def decode_e4m3(self, codes):
        return self._decode(codes, self.lib.float8_e4m3fn)

    def encode_e4m3(self, x, *, rounding, saturate, nan_byte=None):
        self.choose(rounding=rounding, saturate=saturate, nan_byte=nan_byte)
        tensor = self.lib.from_numpy(x.copy()).to(self.lib.float8_e4m3fn)
        return tensor.view(self.lib.uint8).numpy()
