"""The AMD Quark adapter (see :mod:`fp4ref.conformance.peers`): the steps Quark's export of
an ``OCP_MXFP4Spec`` weight takes, and the steps its import of one takes, called one by one.

Export (``StaticScaledRealQuantizer.to_real_quantize_params`` and
``maybe_convert_and_transpose_scale``): ``PerBlockMXObserver`` over the weight and
``calculate_qparams`` (the scale, float), ``kernel.scaled_real_quantize("fp4", ...)`` with
the spec's round method and quant range, ``Pack_fp4.pack``, and ``to_e8m0_uint8`` for the
scale byte. Import (``StaticScaledRealQuantizer.forward``, ``unpack_params``):
``Pack_fp4.unpack``, the scale as ``2 ** (byte - 127)`` in the float dtype, and
``kernel.dequantize("fp4", ...)``.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from .base import Peer, _to_numpy, _torch


class Quark(Peer):
    name, module = "quark", "quark.torch.kernel"
    own = "AMD Quark OCP_MXFP4Spec export (observer, scaled_real_quantize, Pack_fp4, "
    own += "to_e8m0_uint8) and import (Pack_fp4.unpack, kernel.dequantize)"
    profiles = {"mxfp4": "quark"}
    decode_dtypes = ("float32", "bfloat16", "float16")
    nan_bits = "any"

    def __init__(self) -> None:
        logging.getLogger("quark").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            super().__init__()
            from quark.torch.quantization.config.config import OCP_MXFP4Spec
            from quark.torch.quantization.observer.observer import PerBlockMXObserver
            from quark.torch.quantization.utils import calculate_qmin_qmax
            from quark.torch.utils.numerics import to_e8m0_uint8
            from quark.torch.utils.pack import Pack_fp4
        self.torch = _torch()
        self.spec = OCP_MXFP4Spec(ch_axis=-1, is_dynamic=False).to_quantization_spec()
        self.observer, self.to_e8m0 = PerBlockMXObserver, to_e8m0_uint8
        self.packer = Pack_fp4(self.spec.qscheme.value, self.spec.dtype.value)
        self.range = calculate_qmin_qmax(self.spec.dtype)

    @property
    def version(self) -> str:
        import importlib.metadata

        return importlib.metadata.version("amd-quark")

    def quantize_probe(self, x, format, tensor_scale):
        spec = self.spec
        w = self.torch.from_numpy(x.copy())
        observer = self.observer(spec)
        observer(w)
        scale, zero_point = observer.calculate_qparams()
        with np.errstate(all="ignore"):
            q = self.lib.scaled_real_quantize(
                spec.dtype.value, w, scale, zero_point, spec.ch_axis, spec.group_size,
                *self.range, spec.round_method.value, spec.qscheme.value)
        blocks = self.packer.pack(q, False)
        return blocks.numpy(), self.to_e8m0(scale).numpy(), None

    def dequantize_probe(self, blocks, scales, stored, format, dtype):
        torch, spec = self.torch, self.spec
        values = self.packer.unpack(torch.from_numpy(np.ascontiguousarray(blocks)), False)
        byte = torch.from_numpy(np.ascontiguousarray(scales, np.uint8))
        scale = 2 ** (byte.view(torch.uint8).to(torch.int16) - 127).to(getattr(torch, dtype))
        out = self.lib.dequantize(spec.dtype.value, values.to(getattr(torch, dtype)), scale, None,
                                  spec.ch_axis, spec.group_size, spec.qscheme.value)
        return _to_numpy(out)
