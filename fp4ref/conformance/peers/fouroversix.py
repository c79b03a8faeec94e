"""The four-over-six adapter (see :mod:`fp4ref.conformance.peers`): the ``fouroversix``
package 1.0.5's pytorch backend (``quantize_to_fp4`` with ``QuantizationConfig(backend=
QuantizeBackend.pytorch)``, and its ``dequantize``), on the CPU.

The package pads the input to multiples of 128 rows and 64 columns and stores the scales
128x4-swizzled; the glue crops the padding and unswizzles with the package's own
``from_blocked``. Its stored tensor scale is the tensor amax. A given tensor scale (an
amax) goes to the reference ``quantize_to_fp4``'s ``x_amax``, the argument the frontend
does not expose. The decoder builds the package's ``QuantizedTensor`` from the bytes and the
stored amax (none when none is stored: its ``dequantize`` then skips the tensor-scale
step) and runs its ``dequantize`` with the pytorch backend in the dtype asked for.
"""

from __future__ import annotations

import numpy as np

from .base import Peer, _to_numpy, _torch

#: fp4ref's rule name -> the package's ScaleRule.
RULES = {"fouroversix": "mse", "fouroversix-mae": "mae", "fouroversix-abs-max": "abs_max",
         "fouroversix-static-6": "static_6", "fouroversix-static-4": "static_4"}


class Fouroversix(Peer):
    name, module = "fouroversix", "fouroversix"
    own = ("fouroversix 1.0.5 pytorch backend: NVFP4 four-over-six quantize_to_fp4 and "
           "dequantize (profile fouroversix)")
    native = {"profile": ("fouroversix",)}
    profiles = {"nvfp4": "fouroversix"}
    decode_dtypes = ("float32", "bfloat16", "float16")
    #: its decoded NaNs are torch's conversions' (an E4M3 NaN scale becomes 0x7FF00000 with
    #: its sign in float32, 0x7F80 in float16; AVX float32 -> bfloat16 writes 0xFFFF; 0 * Inf
    #: is x86's 0xFFC00000); fp4ref writes the canonical NaN
    nan_bits = "any"

    def __init__(self, rule: str = "fouroversix") -> None:
        super().__init__()
        self.torch = _torch()
        from fouroversix.quantize import QuantizationConfig, dequantize, quantize_to_fp4
        from fouroversix.quantize.dequantize_utils import from_blocked
        from fouroversix.quantize.pytorch import reference
        from fouroversix.utils import QuantizeBackend, ScaleRule

        self.rule = ScaleRule(RULES[rule])
        self.config = QuantizationConfig(backend=QuantizeBackend.pytorch, scale_rule=self.rule)
        self.frontend, self.decode, self.reference = quantize_to_fp4, dequantize, reference
        self.from_blocked = from_blocked
        self.backend = QuantizeBackend.pytorch

    def quantize_probe(self, x, format, tensor_scale):
        if format != "nvfp4":
            raise NotImplementedError("four-over-six is NVFP4 only here")
        torch = self.torch
        rows, k = x.shape
        t = torch.from_numpy(np.ascontiguousarray(x, np.float32).copy())
        if tensor_scale is None:
            q = self.frontend(t, self.config)
            values, blocked, amax = q.values, q.scale_factors, q.amax
            padded = q.padded_shape
        else:  # the reference function, as the backend calls it, with x_amax given
            pad = (0, (-k) % 64, 0, (-rows) % 128)
            t = torch.nn.functional.pad(t, pad)
            values, blocked, amax = self.reference.quantize_to_fp4(
                t, torch.tensor([float(tensor_scale)], dtype=torch.float32),
                scale_rule=self.rule, pack_values=True, use_blackwell_scale_layout=True)
            padded = tuple(t.shape)
        scales = self.from_blocked(blocked, (padded[0], padded[1] // 16))
        scales = scales.view(torch.uint8).numpy()[:rows, : k // 16]
        blocks = values.numpy()[:rows, : k // 2]
        return blocks.copy(), scales.copy(), np.float32(amax.reshape(-1)[0].item())

    def dequantize_probe(self, blocks, scales, stored, format, dtype):
        if format != "nvfp4":
            raise NotImplementedError("four-over-six is NVFP4 only here")
        torch = self.torch
        from fouroversix.quantize import QuantizedTensor

        rows = blocks.shape[0]
        k = blocks.shape[1] * 2
        # no stored amax: the package's QuantizedTensor without one (dequantize skips the
        # tensor-scale step)
        amax = None if stored is None else torch.tensor([float(stored)], dtype=torch.float32)
        sf = torch.from_numpy(np.ascontiguousarray(scales, np.uint8).reshape(rows, -1).copy())
        q = QuantizedTensor(torch.from_numpy(np.ascontiguousarray(blocks, np.uint8).copy()),
                            sf.view(torch.float8_e4m3fn), amax, "nvfp4", (rows, k), self.rule)
        out = self.decode(q, getattr(torch, dtype), backend=self.backend)
        return _to_numpy(out.contiguous())
