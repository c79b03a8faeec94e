"""The public front doors: validate, choose a backend, flatten, call, reshape."""

from __future__ import annotations

from typing import Any, NamedTuple

import ml_dtypes
import numpy as np

from . import _checks, _device, arrays, backends, buffers, layouts
from .kernels.options import decode_arithmetic
from .profiles import E8M0_DECODES
from .profiles import get as get_profile
from .spec import fouroversix, mx, nibbles, nvfp4, rounding
from .spec.e2m1 import NAN_CODES as E2M1_NAN_CODES
from .spec.e2m1 import SCALAR_ZERO_SIGNS
from .spec.e4m3 import NAN_CODES as E4M3_NAN_CODES
from .spec.fouroversix import RULES as FOUROVERSIX_RULES

#: Block formats: (elements per scale, scale format, the ml_dtypes type taken as scale bytes).
FORMATS = {
    "mxfp4": (mx.BLOCK_SIZE, "e8m0", np.dtype(ml_dtypes.float8_e8m0fnu)),
    "nvfp4": (nvfp4.BLOCK_SIZE, "e4m3", np.dtype(ml_dtypes.float8_e4m3fn)),
}


def _block_shapes(blocks: np.ndarray, scales: np.ndarray, block_size: int, fmt: str):
    """Leading shape and K of a (blocks, scales) pair, or a ValueError saying what is off."""
    half = block_size // 2
    if blocks.ndim == 0 or scales.ndim == 0:
        raise ValueError(
            f"blocks and scales must have at least one dimension; got blocks.shape="
            f"{blocks.shape}, scales.shape={scales.shape}"
        )
    if blocks.ndim == scales.ndim + 1:  # gpt-oss: blocks [..., K/32, 16]
        if blocks.shape[:-1] != scales.shape or blocks.shape[-1] != half:
            raise ValueError(
                f"blocks with one more dimension than scales must have shape "
                f"scales.shape + ({half},) = {scales.shape + (half,)} for format {fmt!r}; "
                f"got blocks.shape={blocks.shape}"
            )
        return scales.shape[:-1], scales.shape[-1] * block_size
    if blocks.ndim != scales.ndim:
        raise ValueError(
            f"scales must have the same number of dimensions as blocks (or one fewer, for "
            f"blocks [..., K/{block_size}, {half}]); got blocks.shape={blocks.shape}, "
            f"scales.shape={scales.shape}"
        )
    if blocks.shape[:-1] != scales.shape[:-1]:
        raise ValueError(
            f"scales must have the same leading dimensions as blocks; got blocks.shape="
            f"{blocks.shape}, scales.shape={scales.shape}"
        )
    k = 2 * blocks.shape[-1]
    if k % block_size:
        raise ValueError(
            f"K = 2 * blocks.shape[-1] = {k} must be a multiple of the block size "
            f"{block_size} of format {fmt!r}"
        )
    if scales.shape[-1] != k // block_size:
        raise ValueError(
            f"scales.shape[-1] must be K / {block_size} = {k // block_size} for blocks.shape="
            f"{blocks.shape}; got scales.shape={scales.shape}"
        )
    return blocks.shape[:-1], k


class Packed(NamedTuple):
    """Packed blocks and their decoding options after :func:`dequantize`'s checks."""

    blocks: Any  #: uint8, ``[..., K/2]`` or ``[..., K/B, B/2]``
    scales: Any  #: uint8, ``[..., K/B]``, linear layout
    format: str
    block_size: int
    scale_format: str  #: ``"e8m0"`` or ``"e4m3"``
    tensor_scale: np.float32  #: the decode multiplier (1.0 for MXFP4)
    nibble_order: str
    e8m0_decode: str
    leading: tuple  #: the shape of the decoded array but its last axis
    k: int
    decode_arithmetic: str = "exact"  #: :data:`fp4ref.profiles.DECODE_ARITHMETIC`
    e4m3_decode: str = "ocp"  #: :data:`fp4ref.profiles.E4M3_DECODES`
    #: NVFP4: the encode scale G (the stored value, or float32 1 / the decode multiplier),
    #: what ``decode_arithmetic="compressed-tensors"`` divides the block scale by
    tensor_divisor: np.float32 = np.float32(1.0)
    #: NVFP4 under ``tensor_scale_direction="amax"``: the stored tensor amax A (None when
    #: there is none), what ``decode_arithmetic="fouroversix"`` multiplies by
    tensor_amax: np.float32 | None = None
    #: The D of an amax tensor scale (decode multiplier A / D): 2688 (MLX), or a
    #: four-over-six rule's M * S (:func:`fp4ref.spec.fouroversix.decode_divisor`)
    amax_divisor: np.float32 = np.float32(2688.0)


def packed(
    blocks: Any,
    scales: Any = None,
    *,
    format: str = "mxfp4",
    profile: Any = None,
    tensor_scale: Any = None,
    nibble_order: str | None = None,
    scale_layout: str | None = None,
    e8m0_decode: str | None = None,
    backend: str = "auto",
) -> Packed:
    """Check packed blocks and resolve their options exactly as :func:`dequantize` does
    (arguments as there; scales in another layout are unswizzled). For the operators that
    decode weights themselves (:mod:`fp4ref.ops`)."""
    if scales is None:
        if not all(hasattr(blocks, a) for a in ("blocks", "scales", "format")):
            raise TypeError(
                "dequantize needs scales, or a quantized layer (an object with .blocks, "
                f".scales and .format) in place of blocks; got {type(blocks).__name__} alone"
            )
        layer = blocks
        blocks, scales, format = layer.blocks, layer.scales, layer.format
        tensor_scale = getattr(layer, "tensor_scale", None)
        nibble_order = getattr(layer, "nibble_order", None)
        scale_layout = getattr(layer, "scale_layout", None)
        profile = getattr(layer, "profile", None) if profile is None else profile
        direction = "decode"  # a layer holds the decode multiplier
        stored = getattr(layer, "stored_tensor_scale", None)
        layer_rule = getattr(layer, "scale_rule", None)
        # the stored value is an amax under a four-over-six rule or an amax-direction profile
        layer_amax = stored if (layer_rule in FOUROVERSIX_RULES or getattr(getattr(
            layer, "profile", None), "tensor_scale_direction", None) == "amax") else None
        if stored is not None and getattr(getattr(layer, "profile", None),
                                          "tensor_scale_direction", None) != "encode":
            stored = None
    else:
        direction = None
        stored = None
        layer_amax = layer_rule = None
    prof = get_profile("ocp" if profile is None else profile)
    amax, amax_divisor = None, _amax_divisor(prof, layer_rule)
    nibble_order = prof.nibble_order if nibble_order is None else nibble_order
    scale_layout = prof.scale_layout if scale_layout is None else scale_layout
    e8m0 = _checks.choice("e8m0_decode", prof.e8m0_decode if e8m0_decode is None
                          else e8m0_decode, E8M0_DECODES)
    direction = direction or prof.tensor_scale_direction
    fmt = _checks.choice("format", format, tuple(FORMATS))
    block_size, scale_format, scale_view = FORMATS[fmt]
    order = _checks.choice("nibble_order", nibble_order, nibbles.NIBBLE_ORDERS)
    blocks = _checks.byte_array("blocks", blocks)
    scales = _checks.byte_array("scales", scales, (scale_view,))
    layout = _checks.choice("scale_layout", scale_layout, layouts.LAYOUTS)
    if layout != "linear":
        scales = _linear_scales(blocks, scales, block_size, layout, backend)
    divisor = np.float32(1.0)
    if fmt == "mxfp4":
        if tensor_scale is not None:
            raise ValueError("tensor_scale applies to format='nvfp4' only; got one for 'mxfp4'")
        scale = np.float32(1.0)
    else:
        scale = np.float32(1.0) if tensor_scale is None else _checks.float32_scalar(
            "tensor_scale", tensor_scale)
        if tensor_scale is not None and direction == "encode":
            with np.errstate(divide="ignore"):
                divisor, scale = scale, np.float32(1.0) / scale  # vLLM: 1 / G in float32
        elif tensor_scale is not None and direction == "amax":
            amax = scale  # MLX: global_scale / (448 * 6); four-over-six: amax / (M * S)
            scale = np.float32(scale / amax_divisor)
            with np.errstate(divide="ignore", over="ignore"):
                divisor = np.float32(1.0) / scale
        elif stored is not None:  # a layer of an encode-direction profile: its G
            divisor = np.float32(stored)
        else:
            with np.errstate(divide="ignore", over="ignore"):  # a subnormal scale: Inf
                divisor = np.float32(1.0) / scale
        if layer_amax is not None:  # a layer holding its amax A
            amax = np.float32(layer_amax)
    leading, k = _block_shapes(blocks, scales, block_size, fmt)
    return Packed(blocks, scales, fmt, block_size, scale_format, scale, order, e8m0, leading, k,
                  decode_arithmetic(prof.decode_arithmetic, fmt), prof.e4m3_decode, divisor,
                  amax, amax_divisor)


def _amax_divisor(prof: Any, rule: str | None) -> np.float32:
    """D of an amax-direction tensor scale: the M * S of a four-over-six rule (``rule``, a
    layer's, else the profile's ``nvfp4_scale_rule``: the package's ``dequantize`` divides
    by ``get_maximum_value`` of both), else 2688 = 6 * 448 (MLX ``mx.dequantize``)."""
    rule = rule if rule in FOUROVERSIX_RULES else prof.nvfp4_scale_rule
    if rule in FOUROVERSIX_RULES:
        return np.float32(fouroversix.decode_divisor(rule))
    return np.float32(2688.0)


@arrays.front_door
@_device.returns_like_inputs
def dequantize(
    blocks: Any,
    scales: Any = None,
    *,
    format: str = "mxfp4",
    profile: Any = None,
    tensor_scale: Any = None,
    nibble_order: str | None = None,
    scale_layout: str | None = None,
    e8m0_decode: str | None = None,
    dtype: Any = "float32",
    backend: str = "auto",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode packed FP4 blocks to floats.

    Parameters
    ----------
    blocks : array of uint8, shape ``[..., K/2]`` or ``[..., K/B, B/2]``; or a layer
        Two E2M1 codes per byte, in ``nibble_order``. The second form is gpt-oss's
        ``[E, N, K/32, 16]``. A quantized layer (any object with ``.blocks``, ``.scales``
        and ``.format``, such as :class:`fp4ref.io.layer.QuantizedLayer`) stands for its
        arrays; its ``format``, and its ``tensor_scale``, ``nibble_order`` and
        ``scale_layout`` where it has them, replace those arguments. ``scales`` is then
        left out.
    scales : array of uint8, shape ``[..., K/B]``
        One scale byte per block of ``B`` elements: E8M0 for MXFP4 (B = 32), E4M3 for
        NVFP4 (B = 16). An ml_dtypes ``float8_e8m0fnu`` (MXFP4) or ``float8_e4m3fn``
        (NVFP4) array is taken as its bytes.
    format : {"mxfp4", "nvfp4"}
        The block format.
    profile : str or fp4ref.profiles.Profile, optional
        Whose conventions to decode by (:func:`fp4ref.profiles`; ``"ocp"`` when omitted, or
        the profile a :class:`fp4ref.QuantizedTensor` was made under). It supplies the
        defaults of ``nibble_order``, ``scale_layout`` and ``e8m0_decode`` and the direction
        of ``tensor_scale``; those keywords, given explicitly, override it.
    tensor_scale : float, optional
        NVFP4 only: the tensor scale in the profile's direction, rounded to float32; default
        a decode multiplier of 1.0. Usually the float32 decode multiplier (ModelOpt's
        ``weight_scale_2``, ``amax / (6 * 448)``). Under a profile whose
        ``tensor_scale_direction`` is ``"encode"`` (``compressed-tensors``, ``flashinfer``)
        it is the stored encode scale G (``weight_global_scale``, ``6 * 448 / amax``), and
        the decode multiplier is float32(1 / G), one correctly rounded float32 division, as
        vLLM's compressed-tensors NVFP4 path computes ``1 / weight_global_scale`` (G = 0
        gives +Inf). Under ``"amax"`` (``mlx``) it is MLX's ``global_scale``, the tensor amax
        G, and the decode multiplier is float32(G / 2688); under ``"amax"`` with a
        four-over-six ``nvfp4_scale_rule`` (``fouroversix``) it is the package's stored
        ``amax`` A, decoded ``f32(f32(P * s_b) * A) / D`` (D = 1536 for its adaptive
        rules; :data:`fp4ref.profiles.DECODE_ARITHMETIC` ``"fouroversix"``). A quantized layer's
        ``tensor_scale`` is always the decode multiplier.
    nibble_order : {"low-first", "high-first", "split-half"}, optional
        Where each element sits in its byte (see :mod:`fp4ref.spec.nibbles`).
    scale_layout : {"linear", "128x4", "8x4"}, optional
        How ``scales`` is stored (see :mod:`fp4ref.spec.layouts`). Other than ``"linear"``,
        ``blocks`` must be ``[..., N, K/2]`` and ``scales`` what :func:`fp4ref.swizzle`
        gives for ``[..., N, K/B]`` (``[..., Rpad, Cpad]`` or ``[..., Rpad * Cpad]``).
    e8m0_decode : {"ocp", "bits", "ggml", "inf"}, optional
        MXFP4: how scale bytes decode (:data:`fp4ref.profiles.E8M0_DECODES`): OCP (0x00 =
        2^-127, 0xFF = NaN), mistral.rs's float32_from_bits(s << 23) (0x00 = 0.0, 0xFF =
        +Inf), ggml's (0xFF = 2^128, code 0x8 = +0.0), or MLX's and Quark's (0xFF = +Inf).
    dtype : {"float32", "bfloat16", "float16"}
        Output dtype.
    backend : {"auto", "python", "numba", "cuda"}
        ``"auto"`` runs numba on host arrays and cuda on device arrays (anything with
        ``__cuda_array_interface__``), returning the kind of device array it was given.
    out : numpy.ndarray, optional
        A C-contiguous array of shape ``[..., K]`` and dtype ``dtype`` to write into.

    Returns
    -------
    numpy.ndarray
        Shape ``[..., K]``.

    Notes
    -----
    MXFP4 (OCP MX v1.0 section 5): each value is ``X * P_i`` rounded once to float32; E8M0
    byte 0x00 is 2^-127 and 0xFF makes its whole block NaN. NVFP4: ``P_i * s_block`` (exact
    in float32) times ``tensor_scale`` in one float32 multiply. bfloat16 and float16 are the
    nearest-even conversion of that float32 result. A profile whose ``decode_arithmetic``
    is not ``"exact"`` multiplies in its implementation's order and precision instead
    (:data:`fp4ref.profiles.DECODE_ARITHMETIC`). Every NaN written is the canonical
    positive quiet NaN (0x7FC00000 in float32, 0x7FC0 in bfloat16, 0x7E00 in float16).
    """
    w = packed(blocks, scales, format=format, profile=profile, tensor_scale=tensor_scale,
               nibble_order=nibble_order, scale_layout=scale_layout, e8m0_decode=e8m0_decode,
               backend=backend)
    blocks, scales, leading, k = w.blocks, w.scales, w.leading, w.k
    out_dtype = _checks.output_dtype(dtype)
    engine = backends.get(backend, blocks, scales, out)
    result = _output("out", out, (*leading, k), out_dtype, (blocks, scales))
    bits = result.view(np.uint32 if out_dtype == "float32" else np.uint16)
    # compressed-tensors divides the block scale by its encode scale G
    multiplier = w.tensor_divisor if (w.decode_arithmetic == "compressed-tensors"
                                      and w.format == "nvfp4") else w.tensor_scale
    arithmetic, divisor = w.decode_arithmetic, np.float32(1.0)
    if arithmetic == "fouroversix":  # the package: f32(P * s_b) * A / D; no amax: P * s_b
        if w.tensor_amax is None:
            arithmetic = "exact"
        else:
            multiplier, divisor = w.tensor_amax, w.amax_divisor
    engine.dequantize(
        blocks.reshape(-1, w.block_size // 2), scales.reshape(-1), w.scale_format,
        multiplier, w.nibble_order, out_dtype, bits.reshape(-1, w.block_size), w.e8m0_decode,
        arithmetic, w.e4m3_decode, divisor,
    )
    return result


def _linear_scales(
    blocks: np.ndarray, scales: np.ndarray, block_size: int, layout: str, backend: str
) -> np.ndarray:
    """Scales stored in ``layout`` as ``[..., N, K/B]`` for ``blocks`` ``[..., N, K/2]``."""
    if blocks.ndim < 2:
        raise ValueError(
            f"blocks must have shape [..., N, K/2] when scale_layout is {layout!r}; got shape "
            f"{blocks.shape}"
        )
    k = 2 * blocks.shape[-1]
    if k % block_size:
        raise ValueError(
            f"K = 2 * blocks.shape[-1] = {k} must be a multiple of the block size {block_size}"
        )
    return layouts.unswizzle(
        scales, rows=blocks.shape[-2], cols=k // block_size, layout=layout, backend=backend
    )


def _output(name: str, out: Any, shape: tuple, dtype: str, inputs: tuple) -> np.ndarray:
    """A new output array, or ``out`` after checking it can take the result."""
    wanted = _checks.OUTPUT_DTYPES[dtype]
    if _device.is_device(out) or (out is None and any(map(_device.is_device, inputs))):
        return _device.output(name, out, shape, wanted, inputs)
    if out is None:
        return buffers.empty(shape, wanted)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array; got {type(out).__name__}")
    if out.shape != shape or out.dtype != wanted:
        raise ValueError(
            f"{name} must have shape {shape} and dtype {wanted}; got shape {out.shape} and "
            f"dtype {out.dtype}"
        )
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError(f"{name} must be C-contiguous and writeable")
    if any(np.may_share_memory(out, array) for array in inputs):
        raise ValueError(f"{name} must not overlap the inputs")
    return out


@arrays.front_door
@_device.returns_like_inputs
def decode_e2m1(codes: Any, *, backend: str = "auto") -> np.ndarray:
    """Values of E2M1 codes (one code 0..15 per uint8) as float32; 0x8 is -0.0."""
    engine = backends.get(backend, codes)
    return engine.decode("e2m1", _checks.codes_array("codes", codes)).view(np.float32)


@arrays.front_door
@_device.returns_like_inputs
def decode_e8m0(b: Any, *, backend: str = "auto") -> np.ndarray:
    """Values of E8M0 bytes as float32: 2^(b - 127); 0x00 is 2^-127, 0xFF is NaN.

    Takes uint8 or an ml_dtypes ``float8_e8m0fnu`` array.
    """
    engine = backends.get(backend, b)
    data = _checks.byte_array("b", b, (FORMATS["mxfp4"][2],))
    return engine.decode("e8m0", data).view(np.float32)


@arrays.front_door
@_device.returns_like_inputs
def decode_e4m3(b: Any, *, backend: str = "auto") -> np.ndarray:
    """Values of E4M3 bytes as float32; 0x7F and 0xFF are NaN.

    Takes uint8 or an ml_dtypes ``float8_e4m3fn`` array.
    """
    engine = backends.get(backend, b)
    data = _checks.byte_array("b", b, (FORMATS["nvfp4"][2],))
    return engine.decode("e4m3", data).view(np.float32)


@arrays.front_door
@_device.returns_like_inputs
def encode_e2m1(x: Any, rounding: str = "even", *, zero_sign: str = "keep", nan: str = "sign",
                backend: str = "auto") -> np.ndarray:
    """Nearest E2M1 codes (uint8, one per element) to ``x``.

    Parameters
    ----------
    x : array_like of float16, bfloat16, float32 or float64
        Taken exactly (no intermediate rounding).
    rounding : {"even", "away", "zero"}
        Tie rule: nearest even (the OCP default), away from zero, or toward zero.
    zero_sign : {"keep", "negative", "drop"}
        Sign of a code whose magnitude rounds to 0: the input's sign bit (default), 0x8
        only for inputs < 0 (-0.0 gives 0x0: compressed-tensors ``cast_to_fp4``), or never.
    nan : {"sign", "ml_dtypes", "torchao", "compressed-tensors", "refuse"}
        How NaN is coded (:data:`fp4ref.spec.e2m1.NAN_CODES`): a zero with the NaN's sign
        (default), with the opposite sign (ml_dtypes), torchao's bit arithmetic on the
        NaN's float32 bits (codes 2..4 with its sign), +0 (compressed-tensors), or a
        ``ValueError`` when ``x`` holds a NaN (gfloat).
    backend : {"auto", "python", "numba"}

    Returns
    -------
    numpy.ndarray of uint8
        Same shape as ``x``. Magnitudes above 6 and infinities saturate to +-6; the sign of
        zero follows ``zero_sign``; NaN follows ``nan`` (by default a zero with the NaN's
        sign bit, 0x0 or 0x8).
    """
    tie = _checks.choice("rounding", rounding, rounding_rules())
    zero = _checks.choice("zero_sign", zero_sign, SCALAR_ZERO_SIGNS)
    nan = _checks.choice("nan", nan, E2M1_NAN_CODES)
    engine = backends.get(backend, x)
    array = _checks.float_array("x", x)
    if nan == "refuse" and _any_nan(array):
        raise ValueError("x holds NaN, which has no E2M1 code (nan='refuse')")
    if zero == "keep" and nan == "sign":
        return engine.encode_e2m1(array, tie)
    return engine.encode_e2m1(array, tie, zero, nan)


def _any_nan(array) -> bool:
    """Whether the float array (host or device) holds a NaN."""
    host = array.copy_to_host() if _device.is_device(array) else array
    return bool(np.isnan(host).any())


@arrays.front_door
@_device.returns_like_inputs
def encode_e4m3(
    x: Any, rounding: str = "even", saturate: bool = True, *, nan: str = "sign",
    backend: str = "auto",
) -> np.ndarray:
    """Nearest E4M3 bytes to ``x``.

    Parameters
    ----------
    x : array_like of float16, bfloat16, float32 or float64
        Taken exactly.
    rounding : {"even", "away", "zero"}
        Tie rule.
    saturate : bool
        Overflow rule (OFP8 v1.0 allows both): ``True`` clamps magnitudes that round past
        448 (and infinities) to +-448; ``False`` gives NaN (0x7F / 0xFF).
    nan : {"sign", "gfloat"}
        The NaN byte (:data:`fp4ref.spec.e4m3.NAN_CODES`): 0x7F or 0xFF by the sign of the
        input (default), or always 0xFF (gfloat).
    backend : {"auto", "python", "numba"}

    Returns
    -------
    numpy.ndarray of uint8
        Same shape as ``x``. NaN (and overflow without ``saturate``) encodes to 0x7F or 0xFF
        by its sign bit, or to 0xFF under ``nan="gfloat"``.
    """
    tie = _checks.choice("rounding", rounding, rounding_rules())
    if not isinstance(saturate, (bool, np.bool_)):
        raise TypeError(f"saturate must be a bool; got {type(saturate).__name__}")
    nan = _checks.choice("nan", nan, E4M3_NAN_CODES)
    engine = backends.get(backend, x)
    if nan == "sign":
        return engine.encode_e4m3(_checks.float_array("x", x), tie, bool(saturate))
    return engine.encode_e4m3(_checks.float_array("x", x), tie, bool(saturate), nan)


def _rows(k: int, order: str, block_size: int, what: str) -> int:
    """Row length the pack kernels work on, after checking ``k`` fits ``order``."""
    block_size = _checks.integer("block_size", block_size)
    if order == "split-half":
        if block_size < 2 or block_size % 2:
            raise ValueError(f"block_size must be a positive even number; got {block_size}")
        if k % block_size:
            raise ValueError(
                f"{what} = {k} must be a multiple of block_size = {block_size} for order "
                f"'split-half'"
            )
        return block_size
    if k % 2:
        raise ValueError(f"{what} = {k} must be even: two codes per byte")
    return k


@arrays.front_door
@_device.returns_like_inputs
def pack(
    codes: Any, order: str = "low-first", *, block_size: int = 32, backend: str = "auto"
) -> np.ndarray:
    """Pack 4-bit codes ``[..., K]`` (one per uint8) into bytes ``[..., K/2]``.

    Parameters
    ----------
    codes : array_like of uint8
        Values 0..15.
    order : {"low-first", "high-first", "split-half"}
        Nibble order (see :mod:`fp4ref.spec.nibbles`).
    block_size : int
        The block ``"split-half"`` works within (32 for ggml MXFP4, 16 for NVFP4).
    backend : {"auto", "python", "numba"}
    """
    order = _checks.choice("order", order, nibbles.NIBBLE_ORDERS)
    engine = backends.get(backend, codes)
    data = _checks.codes_array("codes", codes)
    if data.ndim == 0:
        raise ValueError("codes must have at least one dimension; got a scalar")
    row = _rows(data.shape[-1], order, block_size, "codes.shape[-1]")
    if data.size == 0:
        return np.empty((*data.shape[:-1], data.shape[-1] // 2), np.uint8)
    return engine.pack(data.reshape(-1, row), order).reshape(*data.shape[:-1], -1)


@arrays.front_door
@_device.returns_like_inputs
def unpack(
    packed: Any, order: str = "low-first", *, block_size: int = 32, backend: str = "auto"
) -> np.ndarray:
    """Unpack bytes ``[..., K/2]`` into 4-bit codes ``[..., K]``, one per uint8.

    Parameters are those of :func:`pack`.
    """
    order = _checks.choice("order", order, nibbles.NIBBLE_ORDERS)
    engine = backends.get(backend, packed)
    data = _checks.byte_array("packed", packed)
    if data.ndim == 0:
        raise ValueError("packed must have at least one dimension; got a scalar")
    row = _rows(2 * data.shape[-1], order, block_size, "2 * packed.shape[-1]")
    if data.size == 0:
        return np.empty((*data.shape[:-1], 2 * data.shape[-1]), np.uint8)
    return engine.unpack(data.reshape(-1, row // 2), order).reshape(*data.shape[:-1], -1)


def rounding_rules() -> tuple[str, ...]:
    """The names of the tie rules: ``("even", "away", "zero")``."""
    return rounding.TIE_RULES
