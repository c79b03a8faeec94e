"""The ModelOpt adapter (see :mod:`fp4ref.conformance.peers`)."""

from __future__ import annotations

import warnings

import numpy as np

from .base import Peer, _torch


class ModelOpt(Peer):
    name, module = "modelopt", "modelopt.torch.quantization.qtensor"
    own = "NVIDIA ModelOpt NVFP4QTensor (decode-direction weight_scale_2), MXFP4QTensor"
    native = {"scale_rule": ("rceil",), "rounding": ("zero",), "profile": ("modelopt",)}

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            super().__init__()
        self.torch = _torch()

    def _nv(self, x, decode):
        torch = self.torch
        q, s, _ = self.lib.NVFP4QTensor.quantize(
            torch.from_numpy(x.copy()),
            16,
            weights_scaling_factor_2=torch.tensor(float(decode), dtype=torch.float32),
        )
        return q._quantized_data.numpy(), s.view(torch.uint8).numpy()

    def _mx(self, x):
        q, e = self.lib.MXFP4QTensor.quantize(self.torch.from_numpy(x.copy()), 32)
        return q._quantized_data.numpy(), e.numpy().reshape(x.shape[0], -1)

    def quantize_mxfp4(self, x, *, scale_rule, rounding):
        self.choose(scale_rule=scale_rule, rounding=rounding)
        return self._mx(x)

    def quantize_nvfp4(self, x, tensor_scale, *, tensor_scale_direction):
        stored = np.float32(tensor_scale[()])
        decode = stored if tensor_scale_direction == "decode" else np.float32(1) / stored
        return self._nv(x, decode)

    def quantize_profile(
        self, x, tensor_scale, activations=None, *, format, profile, scale_rule=None
    ):
        self.choose(profile=profile)
        if scale_rule is not None:
            raise NotImplementedError("ModelOpt has no optimal scale search")
        return self._nv(x, tensor_scale[()]) if format == "nvfp4" else self._mx(x)
