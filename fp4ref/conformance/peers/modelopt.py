"""The ModelOpt adapter (see :mod:`fp4ref.conformance.peers`).

Probing (:mod:`.probing`) runs ``NVFP4QTensor.quantize`` (which computes
``weights_scaling_factor_2 = amax / 2688`` unless one is given) and
``NVFP4QTensor.dequantize`` (``scale``, ``double_scale``), compared with profile
``modelopt``, and ``MXFP4QTensor.quantize`` / ``MXFP4QTensor.dequantize``, compared with
profile ``modelopt-mxfp4`` (the two classes round ties and sign zeros differently), on CPU.
"""

from __future__ import annotations

import warnings

import numpy as np

from .base import Peer, _to_numpy, _torch


class ModelOpt(Peer):
    name, module = "modelopt", "modelopt.torch.quantization.qtensor"
    own = "NVIDIA ModelOpt NVFP4QTensor (decode-direction weight_scale_2), MXFP4QTensor"
    native = {"scale_rule": ("torchao-rceil",), "rounding": ("zero",),
              "nonfinite": ("modelopt",), "profile": ("modelopt", "modelopt-mxfp4")}
    profiles = {"mxfp4": "modelopt-mxfp4", "nvfp4": "modelopt"}
    decode_dtypes = ("float32", "bfloat16", "float16")
    nan_bits = "any"

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

    def quantize_mxfp4(self, x, *, scale_rule, rounding, nonfinite="nan-scale"):
        # the suite's cases sign zeros as OCP does; MXFP4QTensor's own conventions
        # (zero_sign 'not-positive') are profile modelopt-mxfp4's (suite profile_modelopt_mxfp4)
        self.choose(scale_rule=scale_rule, rounding=rounding, nonfinite=nonfinite)
        return self._mx(x)

    def quantize_nvfp4(self, x, tensor_scale, *, tensor_scale_direction):
        # the suite's cases hold OCP conventions (no clamp, zero block scale 0, NaN blocks
        # 0x7F, sign of zero kept); ModelOpt's own are the modelopt profile's (suite
        # profile_modelopt, probing): run only for the OCP column
        if not self.lenient:
            raise NotImplementedError("nvfp4_quantize's cases hold OCP conventions, not "
                                      "ModelOpt's (see profile_modelopt)")
        stored = np.float32(tensor_scale[()])
        decode = stored if tensor_scale_direction == "decode" else np.float32(1) / stored
        return self._nv(x, decode)

    def quantize_profile(
        self, x, tensor_scale, activations=None, *, format, profile, scale_rule=None
    ):
        profile = self.choose(profile=profile)
        if self.lenient:  # the OCP column: the class ModelOpt has for the format
            profile = self.profiles[format]
        self._own_profile(format, profile)  # MXFP4QTensor is modelopt-mxfp4's, not modelopt's
        if scale_rule is not None:
            raise NotImplementedError("ModelOpt has no optimal scale search")
        return self._nv(x, tensor_scale[()]) if format == "nvfp4" else self._mx(x)

    def quantize_probe(self, x, format, tensor_scale):
        torch = self.torch
        if format == "mxfp4":
            if tensor_scale is not None:
                raise NotImplementedError("ModelOpt's MXFP4 has no tensor scale")
            blocks, scales = self._mx(x)
            return blocks, scales, None
        kwargs = {}
        if tensor_scale is not None:
            kwargs["weights_scaling_factor_2"] = torch.tensor(np.float32(tensor_scale))
        q, s, s2 = self.lib.NVFP4QTensor.quantize(torch.from_numpy(x.copy()), 16, **kwargs)
        return (q._quantized_data.numpy(), s.view(torch.uint8).numpy(),
                np.float32(s2.float().item()))

    def dequantize_probe(self, blocks, scales, stored, format, dtype):
        torch = self.torch
        packed = torch.from_numpy(np.ascontiguousarray(blocks, np.uint8))
        rows = packed.shape[0]
        shape = (rows, 2 * packed.shape[1])
        raw = torch.from_numpy(np.ascontiguousarray(scales, np.uint8).reshape(rows, -1))
        out = getattr(torch, dtype)
        if format == "mxfp4":
            q = self.lib.MXFP4QTensor(torch.Size(shape), out, packed)
            result = q.dequantize(out, scale=raw.reshape(-1, 1), block_sizes={-1: 32})
        else:
            q = self.lib.NVFP4QTensor(torch.Size(shape), out, packed)
            double = torch.tensor(np.float32(1.0 if stored is None else stored))
            result = q.dequantize(out, scale=raw.view(torch.float8_e4m3fn), double_scale=double,
                                  block_sizes={-1: 16})
        return _to_numpy(result)
