"""The CompressedTensors adapter (see :mod:`fp4ref.conformance.peers`).

Probing (:mod:`.probing`) runs the path llm-compressor's NVFP4 and MXFP4 schemes take:
``generate_gparam`` on the tensor's min and max (NVFP4, unless a global scale is given),
``calculate_qparams`` per group, ``quantize_and_pack_fp4`` and the compressors' scale
compression (E4M3 bytes, ``compress_mx_scale``); the decoder is the compressors'
``decompress``: ``unpack_fp4_from_uint8`` and ``dequantize`` (in the dtype asked for: the
compressor itself unpacks to bfloat16).
"""

from __future__ import annotations

import numpy as np

from .base import E2M1, Peer, _codes, _to_numpy, _torch


class CompressedTensors(Peer):
    name, module = "compressed-tensors", "compressed_tensors"
    own = "llm-compressor NVFP4 (encode-direction global scale) and MXFP4 (EVEN rule)"
    native = {"rounding": ("even",), "scale_rule": ("even",), "profile": ("compressed-tensors",),
              "zero_sign": ("negative",), "nan": ("compressed-tensors",)}
    capabilities = {"order": ("low-first",)}
    profiles = {"mxfp4": "compressed-tensors", "nvfp4": "compressed-tensors"}
    decode_dtypes = ("float32", "bfloat16", "float16")
    nan_bits = "any"

    def __init__(self) -> None:
        super().__init__()
        self.torch = _torch()

    def encode_e2m1(self, x, *, rounding, zero_sign=None, nan=None):
        """``cast_to_fp4`` then ``pack_fp4_to_uint8`` (its codes: the only place a NaN,
        which ``cast_to_fp4`` leaves NaN, becomes a code), unpacked by the glue."""
        self.choose(rounding=rounding, zero_sign=zero_sign, nan=nan)
        from compressed_tensors.compressors.nvfp4.helpers import pack_fp4_to_uint8
        from compressed_tensors.quantization.utils.fp4_utils import cast_to_fp4

        padded = np.concatenate([x, np.zeros(x.size % 2, np.float32)]).reshape(1, -1)
        values = cast_to_fp4(self.torch.from_numpy(padded.copy()))
        packed = pack_fp4_to_uint8(values).numpy().reshape(-1)
        return np.stack([packed & 0xF, packed >> 4], -1).reshape(-1)[: x.size].astype(np.int16)

    def pack(self, codes, *, order, block_size):
        self.choose(order=order)
        from compressed_tensors.compressors.nvfp4.helpers import pack_fp4_to_uint8

        return pack_fp4_to_uint8(self.torch.from_numpy(E2M1[codes])).numpy()

    def unpack(self, packed, *, order, block_size):
        self.choose(order=order)
        from compressed_tensors.compressors.nvfp4.helpers import unpack_fp4_from_uint8

        rows, half = packed.shape
        values = unpack_fp4_from_uint8(
            self.torch.from_numpy(packed.copy()), rows, 2 * half, dtype=self.torch.float32
        )
        return _codes(values.numpy())

    def _mx(self, x):
        from compressed_tensors.compressors.mx_utils import compress_mx_scale
        from compressed_tensors.compressors.nvfp4.helpers import quantize_and_pack_fp4
        from compressed_tensors.quantization.quant_scheme import MXFP4
        from compressed_tensors.quantization.utils.helpers import calculate_qparams

        t = self.torch.from_numpy(x.copy())
        g = t.view(t.shape[0], -1, 32)
        s, _ = calculate_qparams(g.amin(-1), g.amax(-1), MXFP4["weights"])
        packed = quantize_and_pack_fp4(t, s, group_size=32)
        return packed.numpy(), compress_mx_scale(s, self.torch.uint8).numpy()

    def _nv(self, x, global_scale):
        from compressed_tensors.compressors.nvfp4.helpers import quantize_and_pack_fp4
        from compressed_tensors.quantization.quant_scheme import NVFP4
        from compressed_tensors.quantization.utils.helpers import calculate_qparams

        t = self.torch.from_numpy(x.copy())
        g = t.view(t.shape[0], -1, 16)
        big = self.torch.tensor([float(global_scale)], dtype=self.torch.float32)
        s, _ = calculate_qparams(g.amin(-1), g.amax(-1), NVFP4["weights"], global_scale=big)
        packed = quantize_and_pack_fp4(t, s, global_scale=big, group_size=16)
        return packed.numpy(), s.to(self.torch.float8_e4m3fn).view(self.torch.uint8).numpy()

    def _suite_conventions(self, suite):
        """The mxfp4_quantize / nvfp4_quantize cases fix fp4ref's OCP element and NaN/Inf
        conventions (sign of zero kept, NaN/Inf blocks NaN-scaled, zero NVFP4 blocks scale
        0), which are not compressed-tensors' ('quotient' zero sign, the 0.125 zero-block
        scale, its NaN/Inf blocks): its own are the compressed-tensors profile's, compared
        in profile_compressed_tensors and by probing. Run only for the OCP column."""
        if not self.lenient:
            raise NotImplementedError(f"{suite}'s cases hold OCP conventions, not "
                                      "compressed-tensors' (see profile_compressed_tensors)")

    def quantize_mxfp4(self, x, *, scale_rule, rounding):
        self.choose(scale_rule=scale_rule, rounding=rounding)
        self._suite_conventions("mxfp4_quantize")
        return self._mx(x)

    def quantize_nvfp4(self, x, tensor_scale, *, tensor_scale_direction):
        self._suite_conventions("nvfp4_quantize")
        stored = np.float32(tensor_scale[()])
        encode = stored if tensor_scale_direction == "encode" else np.float32(1) / stored
        return self._nv(x, encode)

    def quantize_profile(
        self, x, tensor_scale, activations=None, *, format, profile, scale_rule=None
    ):
        self.choose(profile=profile)
        if scale_rule is not None:
            raise NotImplementedError("compressed-tensors has no optimal scale search")
        return self._nv(x, tensor_scale[()]) if format == "nvfp4" else self._mx(x)

    def quantize_probe(self, x, format, tensor_scale):
        if format == "mxfp4":
            if tensor_scale is not None:
                raise NotImplementedError("compressed-tensors' MXFP4 has no global scale")
            blocks, scales = self._mx(x)
            return blocks, scales.reshape(x.shape[0], -1), None
        torch = self.torch
        if tensor_scale is None:
            from compressed_tensors.quantization.utils.helpers import generate_gparam

            t = torch.from_numpy(x.copy())
            tensor_scale = generate_gparam(t.min(), t.max())[0].item()
        blocks, scales = self._nv(x, np.float32(tensor_scale))
        return blocks, scales.reshape(x.shape[0], -1), np.float32(tensor_scale)

    def dequantize_probe(self, blocks, scales, stored, format, dtype):
        from compressed_tensors.compressors.mx_utils import decompress_mx_scale
        from compressed_tensors.compressors.nvfp4.helpers import unpack_fp4_from_uint8
        from compressed_tensors.quantization.lifecycle.forward import dequantize
        from compressed_tensors.quantization.quant_scheme import MXFP4, NVFP4

        torch = self.torch
        out = getattr(torch, dtype)
        packed = torch.from_numpy(np.ascontiguousarray(blocks, np.uint8))
        rows, half = packed.shape
        values = unpack_fp4_from_uint8(packed, rows, 2 * half, dtype=out)
        raw = torch.from_numpy(np.ascontiguousarray(scales, np.uint8).reshape(rows, -1))
        if format == "mxfp4":  # MXFP4PackedCompressor._decompress_scale
            scale, args, global_scale = decompress_mx_scale(raw).to(out), MXFP4["weights"], None
        else:  # NVFP4PackedCompressor._decompress_scale
            scale = raw.view(torch.float8_e4m3fn).to(out)
            args = NVFP4["weights"]
            global_scale = torch.tensor([1.0 if stored is None else float(stored)],
                                        dtype=torch.float32)
        result = dequantize(x_q=values, scale=scale, args=args, global_scale=global_scale,
                            dtype=out)
        return _to_numpy(result)
