"""The MLX adapter (see :mod:`fp4ref.conformance.peers`): ``mx.quantize`` and
``mx.dequantize`` with ``mode="mxfp4"`` / ``"nvfp4"`` on MLX's CPU device (``mlx[cpu]``).

MLX packs eight codes into each uint32, element 0 in the low bits, which on a little-endian
host is the low-first byte order; its scales are one uint8 per group, linear.
``global_scale`` (NVFP4) is MLX's own argument, the tensor amax, passed as given (profile
``mlx``'s ``tensor_scale_direction="amax"``).

Glue, said here: MLX's nvfp4 mode packs 32 elements at a time (``reshape(-1, 4, 8)``),
so a tensor of rows of 16 with an odd row count gets one zero row appended before
``mx.quantize`` and ``mx.dequantize`` and its outputs dropped after (NVFP4 blocks are
independent and MLX computes no tensor amax: the other blocks do not see it). With a
``global_scale``, ``mx.dequantize`` returns float32 whatever ``dtype=`` asks (its
float32 global scale promotes the product; docs/findings.md 11): the adapter converts
that float32 result to the asked dtype with MLX's own ``astype``, the value a caller
asking for that dtype ends up with.
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
        x = np.ascontiguousarray(x, np.float32)
        rows = x.shape[0]
        if format == "nvfp4" and x.size % 32:  # one zero row: MLX packs 32 at a time
            if (x.shape[1] * (rows + 1)) % 32:
                raise NotImplementedError("MLX's nvfp4 mode packs 32 elements at a time")
            x = np.concatenate([x, np.zeros((1, x.shape[1]), np.float32)])
        w, s = mx.quantize(mx.array(x), group_size=block, bits=4, mode=format,
                           global_scale=self._global(tensor_scale))
        blocks = np.array(w).view(np.uint8).reshape(x.shape[0], -1)[:rows]
        stored = None if tensor_scale is None else np.float32(tensor_scale)
        return blocks, np.array(s)[:rows], stored

    def dequantize_probe(self, blocks, scales, stored, format, dtype):
        mx = self.lib
        block = 32 if format == "mxfp4" else 16
        blocks = np.ascontiguousarray(blocks, np.uint8)
        scales = np.ascontiguousarray(scales, np.uint8)
        rows = blocks.shape[0]
        if blocks.size % 16:  # as in quantize_probe: one zero row, dropped after
            blocks = np.concatenate([blocks, np.zeros((1, blocks.shape[1]), np.uint8)])
            scales = np.concatenate([scales, np.zeros((1, scales.shape[1]), np.uint8)])
        w = mx.array(blocks.view(np.uint32))
        want = getattr(mx, dtype)
        out = mx.dequantize(w, mx.array(scales),
                            group_size=block, bits=4, mode=format,
                            global_scale=self._global(stored), dtype=want)
        if out.dtype != want and stored is not None and out.dtype == mx.float32:
            out = out.astype(want)  # MLX returns float32 with a global scale (see above)
        if out.dtype == mx.bfloat16:
            return np.array(out.view(mx.uint16)).view(_bf16())[:rows]
        return np.array(out)[:rows]


def _bf16():
    import ml_dtypes

    return ml_dtypes.bfloat16
