"""The comfy-kitchen adapter (see :mod:`fp4ref.conformance.peers`): ComfyUI's NVFP4
kernels, the eager backend (pinned: the one that runs on CPU; comfy-kitchen picks CUDA or
Triton first where they load).

Without a given tensor scale the adapter quantizes through the layout class ComfyUI's
loaders use (``TensorCoreNVFP4Layout.quantize``, which computes ``amax / (448 * 6)``, pads
to 16 x 16 and is cropped back here); with one it calls ``quantize_nvfp4`` with that
``per_tensor_scale``. Scales come back 128x4-blocked and are unblocked with comfy-kitchen's
own ``from_blocked`` (and blocked again with its ``to_blocked`` for the decoder).
"""

from __future__ import annotations

import numpy as np

from .base import Peer, _to_numpy, _torch


class Comfy(Peer):
    name, module = "comfy-kitchen", "comfy_kitchen"
    own = "comfy-kitchen quantize_nvfp4 / dequantize_nvfp4 (eager) and TensorCoreNVFP4Layout"
    profiles = {"nvfp4": "comfy"}
    decode_dtypes = ("float32", "bfloat16", "float16")
    nan_bits = "any"

    def __init__(self) -> None:
        super().__init__()
        self.torch = _torch()
        from comfy_kitchen import float_utils
        from comfy_kitchen.registry import registry
        from comfy_kitchen.tensor.nvfp4 import TensorCoreNVFP4Layout

        self.utils, self.registry, self.layout = float_utils, registry, TensorCoreNVFP4Layout

    def quantize_probe(self, x, format, tensor_scale):
        torch = self.torch
        rows, k = x.shape
        t = torch.from_numpy(x.copy())
        with self.registry.use_backend("eager"):
            if tensor_scale is None:
                q, params = self.layout.quantize(t)
                scale, blocked = params.scale, params.block_scale
            else:
                scale = torch.tensor(np.float32(tensor_scale))
                q, blocked = self.lib.quantize_nvfp4(t, scale)
        scales = self.utils.from_blocked(blocked, rows, k // 16)
        blocks = q[:rows, : k // 2].numpy()
        return blocks, scales.view(torch.uint8).numpy(), np.float32(scale.item())

    def dequantize_probe(self, blocks, scales, stored, format, dtype):
        torch = self.torch
        rows = blocks.shape[0]
        s = torch.from_numpy(np.ascontiguousarray(scales, np.uint8)).view(torch.float8_e4m3fn)
        blocked = self.utils.to_blocked(s.reshape(rows, -1), flatten=False)
        scale = torch.tensor(np.float32(1.0 if stored is None else stored))
        with self.registry.use_backend("eager"):
            out = self.lib.dequantize_nvfp4(torch.from_numpy(np.ascontiguousarray(blocks)),
                                            scale, blocked, getattr(torch, dtype))
        return _to_numpy(out)
