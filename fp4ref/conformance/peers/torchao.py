"""The Torchao adapter (see :mod:`fp4ref.conformance.peers`)."""

from __future__ import annotations

import warnings

import numpy as np

from .base import Peer, _to_numpy, _torch


class Torchao(Peer):
    name, module = "torchao", "torchao.prototype.mx_formats.mx_tensor"
    own = "to_mx FLOOR/RCEIL/CEIL/EVEN, nvfp4_quantize (profiles torchao-floor, torchao-rceil)"
    native = {
        "rounding": ("even",),
        "zero_sign": ("keep",),
        "nan": ("torchao",),
        "scale_rule": ("floor", "torchao-rceil", "ceil", "even"),
        "profile": ("torchao-floor", "torchao-rceil"),
        # how torchao codes NaN/Inf blocks and divides scale-0x00 blocks (the profiles'
        # nonfinite and e8m0_zero_divisor): the rule suites' fp4ref policy (NaN scale, zero
        # codes; 2^-127) is not torchao's, so only the OCP column runs them
        "nonfinite": ("torchao", "torchao-rceil"),
        # nvfp4_quantize's recipe: (amax / 6) / s_t, elements x * ((1 / s_t) / s_b)
        "nvfp4_recipe": ("torchao",),
    }
    capabilities = {
        "order": ("low-first",),
        "nibble_order": ("low-first",),
        "layout": ("128x4",),
        "dtype": ("float32", "bfloat16"),
        "tensor_scale_direction": ("decode",),
    }

    profiles = {"mxfp4": "torchao-floor", "nvfp4": "torchao-floor"}
    decode_dtypes = ("float32", "bfloat16", "float16")
    #: torch's CPU kernels hand back NaNs whose bits the vector instructions decide (a NaN
    #: scale byte decodes through ``x * NaN`` to 0xFFFF in bfloat16, 0xFFFFFFFF after an
    #: E4M3 NaN scale), not torchao's code: decoded NaNs compare as NaN.
    nan_bits = "any"
    #: The MXFP4 scaling mode :meth:`quantize_probe` runs (``ScaleCalculationMode``).
    mode = "floor"

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

    def quantize_mxfp4(self, x, *, scale_rule, rounding, nonfinite="nan-scale"):
        rule, _, _ = self.choose(scale_rule=scale_rule, rounding=rounding, nonfinite=nonfinite)
        return self._mx(x, "rceil" if rule == "torchao-rceil" else rule)

    def quantize_nvfp4(self, x, tensor_scale, *, tensor_scale_direction):
        self.choose(tensor_scale_direction=tensor_scale_direction, nvfp4_recipe="modelopt")
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

    def quantize_probe(self, x, format, tensor_scale):
        """MXFP4: ``to_mx(x, float4_e2m1fn_x2, 32, ScaleCalculationMode(mode))``. NVFP4:
        ``nvfp4_quantize(x, 16, per_tensor_scale)`` with the tensor scale given, else the
        one torchao's NVFP4 configs pass (``use_dynamic_per_tensor_scale=True``, the
        default): ``per_tensor_amax_to_scale(amax(|x|))``."""
        torch = self.torch
        if format == "mxfp4":
            if tensor_scale is not None:
                raise NotImplementedError("MXFP4 has no tensor scale")
            blocks, scales = self._mx(x, self.mode)
            return blocks, scales, None
        if tensor_scale is None:
            amax = torch.max(torch.abs(torch.from_numpy(x.copy())))
            tensor_scale = float(self.nv.per_tensor_amax_to_scale(amax))
        blocks, scales = self._nv(x, tensor_scale)
        return blocks, scales, np.float32(tensor_scale)

    def dequantize_probe(self, blocks, scales, stored, format, dtype):
        """MXFP4: ``to_dtype`` (mx_tensor). NVFP4: ``NVFP4Tensor(...).dequantize(dtype)``
        with ``per_tensor_scale`` the stored tensor scale."""
        torch = self.torch
        b = torch.from_numpy(np.ascontiguousarray(blocks, np.uint8))
        s = torch.from_numpy(np.ascontiguousarray(scales, np.uint8))
        if format == "mxfp4":
            out = self.lib.to_dtype(b, s.view(torch.float8_e8m0fnu), torch.float4_e2m1fn_x2,
                                    32, getattr(torch, dtype))
            return _to_numpy(out)
        t = None if stored is None else torch.tensor(np.float32(stored))
        tensor = self.nv.NVFP4Tensor(
            b, s.view(torch.float8_e4m3fn), 16, getattr(torch, dtype), per_tensor_scale=t)
        return _to_numpy(tensor.dequantize(getattr(torch, dtype)))


class TorchaoRceil(Torchao):
    """torchao's ``to_mx`` with ``ScaleCalculationMode.RCEIL`` (its CPU fallback), beside
    profile ``torchao-rceil``; only for the probing comparison (the matrix runs both
    profiles through :class:`Torchao`)."""

    name = "torchao-rceil"
    profiles = {"mxfp4": "torchao-rceil"}
    mode = "rceil"
