"""The MLX adapter (see :mod:`fp4ref.conformance.peers`): ``mx.quantize`` and
``mx.dequantize`` with ``mode="mxfp4"`` / ``"nvfp4"`` on MLX's CPU device (``mlx[cpu]``).

MLX packs eight codes into each uint32, element 0 in the low bits, which on a little-endian
host is the low-first byte order; its scales are one uint8 per group, linear.
``global_scale`` (NVFP4) is MLX's own argument, passed as given.
"""

from __future__ import annotations

import numpy as np

from .base import Peer


class Mlx(Peer):
    name, module = "mlx", "mlx.core"
    own = "MLX mx.quantize / mx.dequantize, modes mxfp4 and nvfp4, on the CPU device"
    profiles = {"mxfp4": "mlx", "nvfp4": "mlx"}
    decode_dtypes = ("float32", "bfloat16", "float16")
    nan_bits = "any"

    def __init__(self) -> None:
        super().__init__()
        self.lib.set_default_device(self.lib.cpu)

    @property
    def version(self) -> str:
        return str(self.lib.__version__)

    def _global(self, value):
        return None if value is None else self.lib.array(np.float32(value))

    def quantize_probe(self, x, format, tensor_scale):
        mx = self.lib
        block = 32 if format == "mxfp4" else 16
        if format == "mxfp4" and tensor_scale is not None:
            raise NotImplementedError("MLX's mxfp4 mode takes no global scale")
        if format == "nvfp4" and x.size % 32:
            raise NotImplementedError("MLX's nvfp4 mode packs 32 elements at a time")
        w, s = mx.quantize(mx.array(x), group_size=block, bits=4, mode=format,
                           global_scale=self._global(tensor_scale))
        blocks = np.array(w).view(np.uint8).reshape(x.shape[0], -1)
        stored = None if tensor_scale is None else np.float32(tensor_scale)
        return blocks, np.array(s), stored

    def dequantize_probe(self, blocks, scales, stored, format, dtype):
        mx = self.lib
        block = 32 if format == "mxfp4" else 16
        w = mx.array(np.ascontiguousarray(blocks, np.uint8).view(np.uint32))
        out = mx.dequantize(w, mx.array(np.ascontiguousarray(scales, np.uint8)),
                            group_size=block, bits=4, mode=format,
                            global_scale=self._global(stored), dtype=getattr(mx, dtype))
        if out.dtype == mx.bfloat16:
            return np.array(out.view(mx.uint16)).view(_bf16())
        return np.array(out)


def _bf16():
    import ml_dtypes

    return ml_dtypes.bfloat16
