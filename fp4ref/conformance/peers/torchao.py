"""The Torchao adapter (see :mod:`fp4ref.conformance.peers`)."""

from __future__ import annotations

import warnings

from .base import Peer, _to_numpy, _torch


class Torchao(Peer):
    name, module = "torchao", "torchao.prototype.mx_formats.mx_tensor"
    own = "to_mx FLOOR/RCEIL/CEIL/EVEN, nvfp4_quantize (profiles torchao-floor, torchao-rceil)"
    native = {
        "rounding": ("even",),
        "zero_sign": ("keep",),
        "nan": ("torchao",),
        "scale_rule": ("floor", "rceil", "ceil", "even"),
        "profile": ("torchao-floor", "torchao-rceil"),
    }
    capabilities = {
        "order": ("low-first",),
        "nibble_order": ("low-first",),
        "layout": ("128x4",),
        "dtype": ("float32", "bfloat16"),
        "tensor_scale_direction": ("decode",),
    }

    def __init__(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            super().__init__()
        self.torch = _torch()
        from torchao.prototype.mx_formats import kernels, nvfp4_tensor, utils
        from torchao.prototype.mx_formats.config import ScaleCalculationMode

        self.kernels, self.nv, self.utils, self.modes = (
            kernels,
            nvfp4_tensor,
            utils,
            ScaleCalculationMode,
        )

    def decode_e2m1(self, codes):
        return self.kernels.f4_unpacked_to_f32(self.torch.from_numpy(codes.copy())).numpy()

    def encode_e2m1(self, x, *, rounding, zero_sign=None, nan=None):
        self.choose(rounding=rounding, zero_sign=zero_sign, nan=nan)
        return self.kernels.f32_to_f4_unpacked(self.torch.from_numpy(x.copy())).numpy()

    def pack(self, codes, *, order, block_size):
        self.choose(order=order)
        return self.kernels.pack_uint4(self.torch.from_numpy(codes.copy())).numpy()

    def unpack(self, packed, *, order, block_size):
        self.choose(order=order)
        return self.kernels.unpack_uint4(self.torch.from_numpy(packed.copy())).numpy()

    def swizzle(self, scales, *, layout):
        self.choose(layout=layout)
        return self.utils.to_blocked(self.torch.from_numpy(scales.copy())).numpy()

    def unswizzle(self, stored, *, rows, cols, layout):
        self.choose(layout=layout)
        return self.utils.from_blocked(self.torch.from_numpy(stored.copy()), rows, cols).numpy()

    def dequantize_mxfp4(self, blocks, scales, *, nibble_order, dtype):
        self.choose(nibble_order=nibble_order, dtype=dtype)
        torch = self.torch
        out = self.lib.to_dtype(
            torch.from_numpy(blocks.copy()),
            torch.from_numpy(scales.copy()).view(torch.float8_e8m0fnu),
            torch.float4_e2m1fn_x2,
            32,
            getattr(torch, dtype),
        )
        return _to_numpy(out)

    def dequantize_profile(self, blocks, scales, tensor_scale, *, format, profile):
        self.choose(profile=profile)
        if format != "mxfp4":
            raise NotImplementedError("torchao NVFP4 decode is not adapted")
        return self.dequantize_mxfp4(blocks, scales, nibble_order="low-first", dtype="float32")

    def _mx(self, x, rule):
        scale, data = self.lib.to_mx(
            self.torch.from_numpy(x.copy()), self.torch.float4_e2m1fn_x2, 32, self.modes(rule)
        )
        return data.numpy(), scale.view(self.torch.uint8).numpy()

    def _nv(self, x, tensor_scale):
        scale, data = self.nv.nvfp4_quantize(
            self.torch.from_numpy(x.copy()), 16, self.torch.tensor(float(tensor_scale))
        )
        return data.numpy(), scale.view(self.torch.uint8).numpy()

    def quantize_mxfp4(self, x, *, scale_rule, rounding):
        rule, _ = self.choose(scale_rule=scale_rule, rounding=rounding)
        return self._mx(x, rule)

    def quantize_nvfp4(self, x, tensor_scale, *, tensor_scale_direction):
        self.choose(tensor_scale_direction=tensor_scale_direction)
        return self._nv(x, tensor_scale[()])

    def quantize_profile(
        self, x, tensor_scale, activations=None, *, format, profile, scale_rule=None
    ):
        profile = self.choose(profile=profile)
        if scale_rule is not None:
            raise NotImplementedError("torchao has no optimal scale search")
        if format == "nvfp4":
            return self._nv(x, tensor_scale[()])
        return self._mx(x, profile.split("-")[1])
