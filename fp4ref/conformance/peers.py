"""Adapters that present real peer libraries as conformance implementations.

Each adapter imports its library lazily (``ImportError`` when it is not installed, and
the matrix skips it) and provides the suites' operations the library can perform, with
the glue written here kept to layout conversion (nibble repacking, float values to codes,
tensor-scale direction); the arithmetic under test is the peer's.

Parameters are of two kinds. *Capabilities* (output dtype, scale layout, how the bytes are
arranged on the way in) are honoured or the case is skipped. *Conventions* (tie rule,
overflow rule, scale rule, profile) are where peers differ from the OCP specs: in the
matrix's OCP column the adapter ignores them and runs the peer as it is (``lenient``), so
an OCP case checks the peer's own behaviour against the spec; in the "own" column it runs
only the cases whose conventions the peer has (others are skipped), so those check that
fp4ref's emulation and the peer agree.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np

from ..profiles import profiles

#: E2M1 values of codes 0..15.
E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], np.float32)
#: Marks an element the peer refused or could not produce (never equal to a valid code).
SENTINEL = -1


def _codes(values) -> np.ndarray:
    """E2M1 codes (int16) of exact E2M1 float values; the sign bit of zero is kept;
    anything else (NaN, non-E2M1) becomes :data:`SENTINEL`."""
    values = np.asarray(values, np.float32)
    magnitude = np.searchsorted(E2M1[:8], np.abs(values)).clip(0, 7)
    exact = E2M1[magnitude] == np.abs(values)
    codes = magnitude.astype(np.int16) | (np.signbit(values).astype(np.int16) << 3)
    return np.where(exact, codes, SENTINEL).astype(np.int16)


def _pack(codes, order: str = "low-first", block: int = 32) -> np.ndarray:
    """Pack int codes [..., K] into bytes (glue; sentinels become 0xFF bytes... as ints)."""
    codes = np.asarray(codes, np.int16)
    if order == "split-half":
        shaped = codes.reshape(*codes.shape[:-1], -1, block)
        low, high = shaped[..., : block // 2], shaped[..., block // 2 :]
        return (low & 0xF | (high & 0xF) << 4).reshape(*codes.shape[:-1], -1)
    even, odd = codes[..., 0::2], codes[..., 1::2]
    first, second = (even, odd) if order == "low-first" else (odd, even)
    return (first & 0xF) | ((second & 0xF) << 4)


def _unpack(packed, order: str = "low-first", block: int = 32) -> np.ndarray:
    packed = np.asarray(packed, np.uint8)
    low, high = packed & 0xF, packed >> 4
    if order == "split-half":
        shaped = lambda a: a.reshape(*packed.shape[:-1], -1, block // 2)  # noqa: E731
        return np.concatenate([shaped(low), shaped(high)], -1).reshape(*packed.shape[:-1], -1)
    first, second = (low, high) if order == "low-first" else (high, low)
    return np.stack([first, second], -1).reshape(*packed.shape[:-1], -1)


def _torch():
    import torch

    return torch


def _to_numpy(tensor) -> np.ndarray:
    torch = _torch()
    if tensor.dtype == torch.bfloat16:
        import ml_dtypes

        return tensor.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return tensor.detach().cpu().numpy()


class Peer:
    """Base adapter: ``native`` conventions and ``capabilities`` per parameter."""

    name = ""
    module = ""
    #: What the "own" column means for this peer, in words.
    own = ""
    native: dict[str, tuple] = {}
    capabilities: dict[str, tuple] = {}

    def __init__(self) -> None:
        self.lib = importlib.import_module(self.module)
        self.lenient = False

    @property
    def version(self) -> str:
        top = importlib.import_module(self.module.split(".")[0])
        return str(getattr(top, "__version__", "?"))

    def choose(self, **params):
        """The values to run with: capabilities must be met; conventions must be native
        unless ``lenient`` (then the peer's first native value is used)."""
        chosen = []
        for key, value in params.items():
            if key in self.capabilities and value not in self.capabilities[key]:
                raise NotImplementedError(f"{self.name} cannot do {key}={value!r}")
            if key in self.native and value not in self.native[key]:
                if not self.lenient:
                    raise NotImplementedError(f"{self.name} does not do {key}={value!r}")
                value = self.native[key][0]
            chosen.append(value)
        return chosen[0] if len(chosen) == 1 else chosen


class MlDtypes(Peer):
    name, module = "ml_dtypes", "ml_dtypes"
    own = "ties to even, E4M3 NaN on overflow; decode = ml_dtypes casts times float32 scales"
    native = {"rounding": ("even",), "saturate": (False,)}
    capabilities = {"nibble_order": ("low-first",)}

    def _decode(self, codes, dtype):
        return np.asarray(codes, np.uint8).view(dtype).astype(np.float32)

    def decode_e2m1(self, codes):
        return self._decode(codes, self.lib.float4_e2m1fn)

    def decode_e8m0(self, codes):
        return self._decode(codes, self.lib.float8_e8m0fnu)

    def decode_e4m3(self, codes):
        return self._decode(codes, self.lib.float8_e4m3fn)

    def encode_e2m1(self, x, *, rounding):
        self.choose(rounding=rounding)
        return x.astype(self.lib.float4_e2m1fn).view(np.uint8)

    def encode_e4m3(self, x, *, rounding, saturate):
        self.choose(rounding=rounding, saturate=saturate)
        return x.astype(self.lib.float8_e4m3fn).view(np.uint8)

    def _dequantize(self, blocks, scales, scale_dtype, tensor, dtype, block):
        self.choose(nibble_order="low-first")
        values = self.decode_e2m1(_unpack(blocks))
        factor = np.repeat(self._decode(scales, scale_dtype), block, axis=-1)
        with np.errstate(all="ignore"):
            out = values * factor * np.float32(tensor)
        return out.astype(
            {"float32": np.float32, "float16": np.float16, "bfloat16": self.lib.bfloat16}[dtype]
        )

    def dequantize_mxfp4(self, blocks, scales, *, nibble_order, dtype):
        self.choose(nibble_order=nibble_order)
        return self._dequantize(blocks, scales, self.lib.float8_e8m0fnu, 1.0, dtype, 32)

    def dequantize_nvfp4(self, blocks, scales, tensor_scale, *, nibble_order, dtype):
        self.choose(nibble_order=nibble_order)
        return self._dequantize(blocks, scales, self.lib.float8_e4m3fn, tensor_scale[()], dtype, 16)


class Torch(Peer):
    name, module = "torch", "torch"
    own = "E4M3 cast: ties to even, saturating to 448"
    native = {"rounding": ("even",), "saturate": (True,)}

    def _decode(self, codes, dtype):
        return self.lib.from_numpy(np.asarray(codes, np.uint8)).view(dtype).float().numpy()

    def decode_e8m0(self, codes):
        return self._decode(codes, self.lib.float8_e8m0fnu)

    def decode_e4m3(self, codes):
        return self._decode(codes, self.lib.float8_e4m3fn)

    def encode_e4m3(self, x, *, rounding, saturate):
        self.choose(rounding=rounding, saturate=saturate)
        tensor = self.lib.from_numpy(x.copy()).to(self.lib.float8_e4m3fn)
        return tensor.view(self.lib.uint8).numpy()


class Gfloat(Peer):
    name, module = "gfloat", "gfloat"
    own = "ties to even or away, both overflow modes, OCP floor scale rule"
    native = {"rounding": ("even", "away"), "scale_rule": ("floor",)}

    def _format(self, which):
        from gfloat import formats

        return getattr(formats, f"format_info_ocp_{which}")

    def _mode(self, rounding):
        return {"even": self.lib.RoundMode.TiesToEven, "away": self.lib.RoundMode.TiesToAway}[
            rounding
        ]

    def _decode(self, codes, which):
        fi = self._format(which)
        return np.array([self.lib.decode_float(fi, int(c)).fval for c in codes], np.float32)

    def decode_e2m1(self, codes):
        return self._decode(codes, "e2m1")

    def decode_e8m0(self, codes):
        return self._decode(codes, "e8m0")

    def decode_e4m3(self, codes):
        return self._decode(codes, "e4m3")

    def _encode(self, x, which, rounding, saturate):
        fi, mode = self._format(which), self._mode(rounding)
        out = np.empty(x.size, np.int16)
        for i, v in enumerate(x.astype(np.float64)):
            try:
                out[i] = self.lib.encode_float(
                    fi, self.lib.round_float(fi, float(v), mode, sat=saturate)
                )
            except (ValueError, OverflowError):
                out[i] = SENTINEL
        return out

    def encode_e2m1(self, x, *, rounding):
        return self._encode(x, "e2m1", self.choose(rounding=rounding), True)

    def encode_e4m3(self, x, *, rounding, saturate):
        return self._encode(x, "e4m3", self.choose(rounding=rounding), saturate)

    def quantize_mxfp4(self, x, *, scale_rule, rounding):
        _, rounding = self.choose(scale_rule=scale_rule, rounding=rounding)
        from gfloat.formats import format_info_mxfp4_e2m1 as mx

        flat = x.reshape(-1, 32).astype(np.float64)
        scales = np.empty(flat.shape[0], np.int16)
        codes = np.zeros(flat.shape, np.int16)
        for b, block in enumerate(flat):
            try:
                scale = self.lib.compute_scale_amax(mx.etype.emax, block)
                encoded = list(
                    self.lib.encode_block(mx, scale, block / scale, self._mode(rounding))
                )
                scales[b], codes[b] = encoded[0], encoded[1:]
            except (ValueError, OverflowError):
                scales[b] = SENTINEL
        rows = x.shape[0]
        return _pack(codes.reshape(rows, -1)), scales.reshape(rows, -1)


class Torchao(Peer):
    name, module = "torchao", "torchao.prototype.mx_formats.mx_tensor"
    own = "to_mx FLOOR/RCEIL/CEIL/EVEN, nvfp4_quantize (profiles torchao-floor, torchao-rceil)"
    native = {
        "rounding": ("even",),
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

    def encode_e2m1(self, x, *, rounding):
        self.choose(rounding=rounding)
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


class Gguf(Peer):
    name, module = "gguf", "gguf.quants"
    own = "ggml MXFP4: block_mxfp4 records, floor(log2f) scale without clamp, ties toward zero"
    native = {"scale_rule": ("ggml",), "rounding": ("zero",), "profile": ("ggml",)}
    capabilities = {"dtype": ("float32",), "format": ("mxfp4",)}

    def _records(self, blocks, scales, order):
        codes = _unpack(blocks, order)
        qs = _pack(codes, "split-half").astype(np.uint8).reshape(*scales.shape, 16)
        return np.concatenate([scales[..., None], qs], -1).reshape(scales.shape[0], -1)

    def dequantize_mxfp4(self, blocks, scales, *, nibble_order, dtype):
        self.choose(dtype=dtype)
        from gguf import GGMLQuantizationType

        with np.errstate(all="ignore"):
            return self.lib.dequantize(
                self._records(blocks, scales, nibble_order), GGMLQuantizationType.MXFP4
            )

    def dequantize_profile(self, blocks, scales, tensor_scale, *, format, profile):
        from gguf import GGMLQuantizationType

        order = profiles()[profile].nibble_order  # how the case stores its bytes (glue)
        self.choose(format=format, profile=profile)
        with np.errstate(all="ignore"):
            return self.lib.dequantize(
                self._records(blocks, scales, order), GGMLQuantizationType.MXFP4
            )

    def _quantize(self, x, order):
        from gguf import GGMLQuantizationType

        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = self.lib.quantize(np.ascontiguousarray(x), GGMLQuantizationType.MXFP4)
        records = raw.reshape(x.shape[0], -1, 17)
        qs = records[..., 1:].reshape(x.shape[0], -1)
        if order != "split-half":
            qs = _pack(_unpack(qs, "split-half"), order)
        return qs, records[..., 0]

    def quantize_mxfp4(self, x, *, scale_rule, rounding):
        self.choose(scale_rule=scale_rule, rounding=rounding)
        return self._quantize(x, "low-first")

    def quantize_profile(
        self, x, tensor_scale, activations=None, *, format, profile, scale_rule=None
    ):
        self.choose(format=format, profile=profile)
        if scale_rule is not None:
            raise NotImplementedError("gguf has no optimal scale search")
        return self._quantize(x, "split-half")


class Qwantize(Peer):
    name, module = "qwantize", "qwantize"
    own = "qwantize 0.1 reference: naive and optimal MXFP4, NVFP4 without tensor scale"
    native = {"scale_rule": ("qwantize",), "rounding": ("zero",), "profile": ("qwantize",)}

    def _run(self, x, format, scale_rule, activations):
        """qwantize's ``<format>_<naive|optimal|optimal_hessian>`` on blocks [rows, K/B, B]."""
        torch = _torch()
        block = 32 if format == "mxfp4" else 16
        rows = x.shape[0]
        kind = {None: "naive", "optimal": "optimal", "optimal-hessian": "optimal_hessian"}
        function = getattr(self.lib, f"{format}_{kind[scale_rule]}")
        w = torch.from_numpy(x.copy()).reshape(rows, -1, block)
        if scale_rule == "optimal-hessian":
            s, q = function(w, X=torch.from_numpy(activations.copy()))
        else:
            s, q = function(w)
        s = s.numpy()
        if format == "mxfp4":
            with np.errstate(all="ignore"):
                exponent = np.log2(s) + 127
            scales = np.where(np.isfinite(exponent), np.round(exponent), SENTINEL)
        else:
            scales = torch.from_numpy(s).to(torch.float8_e4m3fn).view(torch.uint8).numpy()
            scales = np.where(np.isnan(s), SENTINEL, scales)
        return _pack(_codes(q.reshape(rows, -1).numpy())), scales.astype(np.int16)

    def quantize_mxfp4(self, x, *, scale_rule, rounding):
        self.choose(scale_rule=scale_rule, rounding=rounding)
        return self._run(x, "mxfp4", None, None)

    def quantize_nvfp4(self, x, tensor_scale, *, tensor_scale_direction):
        if float(tensor_scale) != 1.0:
            raise NotImplementedError("qwantize's NVFP4 has no tensor scale")
        return self._run(x, "nvfp4", None, None)

    def quantize_profile(
        self, x, tensor_scale, activations=None, *, format, profile, scale_rule=None
    ):
        self.choose(profile=profile)
        return self._run(x, format, scale_rule, activations)


class CompressedTensors(Peer):
    name, module = "compressed-tensors", "compressed_tensors"
    own = "llm-compressor NVFP4 (encode-direction global scale) and MXFP4 (EVEN rule)"
    native = {"rounding": ("even",), "scale_rule": ("even",), "profile": ("compressed-tensors",)}
    capabilities = {"order": ("low-first",)}

    def __init__(self) -> None:
        super().__init__()
        self.torch = _torch()

    def encode_e2m1(self, x, *, rounding):
        self.choose(rounding=rounding)
        from compressed_tensors.quantization.utils.fp4_utils import cast_to_fp4

        return _codes(cast_to_fp4(self.torch.from_numpy(x.copy())).numpy())

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

    def quantize_mxfp4(self, x, *, scale_rule, rounding):
        self.choose(scale_rule=scale_rule, rounding=rounding)
        return self._mx(x)

    def quantize_nvfp4(self, x, tensor_scale, *, tensor_scale_direction):
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


#: Every adapter, in the matrix's order.
PEERS = (MlDtypes, Torch, Gfloat, Torchao, Gguf, Qwantize, CompressedTensors, ModelOpt)


def available() -> dict[str, Peer]:
    """The adapters whose library imports here, by name."""
    out = {}
    for cls in PEERS:
        try:
            out[cls.name] = cls()
        except ImportError:
            continue
    return out
