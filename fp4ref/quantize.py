"""``fp4ref.quantize``: floats to MXFP4 / NVFP4 blocks under a named profile."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _checks, _device, arrays, backends
from .kernels.options import QuantizeOptions
from .profiles import Profile
from .profiles import get as get_profile
from .spec import fouroversix, mx, nvfp4, scale_rules
from .spec import rounding as ties
from .spec.layouts import LAYOUTS, padded_shape

_QUANTIZE_BACKENDS = ("auto", "python", "numba", "cuda")
_FLOAT_INPUTS = ("float16", "bfloat16", "float32")


@dataclass(frozen=True)
class QuantizedTensor:
    """The result of :func:`quantize`; :func:`fp4ref.dequantize` takes it directly.

    Attributes
    ----------
    blocks : numpy.ndarray of uint8, shape ``[..., K/2]``
        Packed E2M1 codes in ``nibble_order``.
    scales : numpy.ndarray of uint8
        E8M0 (MXFP4) or E4M3 (NVFP4) scale bytes in ``scale_layout``: ``[..., N, K/B]`` when
        ``"linear"``, else what :func:`fp4ref.swizzle` gives for that (``[..., Rpad, Cpad]``).
    format : {"mxfp4", "nvfp4"}
    tensor_scale : numpy.float32 or None
        NVFP4: the float32 decode multiplier (amax / (6 * 448) for a computed one).
    stored_tensor_scale : numpy.float32 or None
        NVFP4: the tensor scale in the profile's stored direction (compressed-tensors'
        encode scale G = 6 * 448 / amax; the decode multiplier otherwise).
    scale_rule, rounding, nibble_order, scale_layout : str
        The resolved options.
    profile : Profile
        The profile with the keyword overrides applied.
    """

    blocks: np.ndarray
    scales: np.ndarray
    format: str
    tensor_scale: np.float32 | None
    stored_tensor_scale: np.float32 | None
    scale_rule: str
    rounding: str
    nibble_order: str
    scale_layout: str
    profile: Profile


def _input(x: Any, block_size: int) -> np.ndarray:
    array = _checks.host_array("x", x)
    if array.dtype.name not in _FLOAT_INPUTS:
        raise TypeError(f"x must be a float array of dtype {_FLOAT_INPUTS}; got {array.dtype}")
    if array.ndim == 0:
        raise ValueError("x must have at least one dimension [..., K]; got a scalar")
    if array.shape[-1] % block_size:
        raise ValueError(
            f"x.shape[-1] = {array.shape[-1]} must be a multiple of the block size {block_size}"
        )
    # float16/bfloat16 widen exactly; float32 input is used in place
    return np.ascontiguousarray(array.astype(np.float32, copy=False))


def _tensor_scales(profile: Profile, tensor_scale: Any, amax: Any):
    """(recipe operand, decode multiplier, stored value) for an NVFP4 quantization
    (``amax()`` gives the tensor's max |x|, NaN if it holds one: the backend's
    ``largest_magnitude``)."""
    recipe = profile.nvfp4_recipe
    if not profile.tensor_scale:
        if tensor_scale is not None:
            raise ValueError(f"profile {profile.name!r} has no NVFP4 tensor scale; got "
                             f"tensor_scale={tensor_scale!r}")
        return 1.0, None, None
    if profile.tensor_scale_direction == "amax":  # MLX global_scale: the tensor amax G as
        if tensor_scale is None:  # given, none computed without it
            return 1.0, None, None
        stored = _checks.float32_scalar("tensor_scale", tensor_scale)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # MLX: 2688 / G
            operand = np.float32(2688.0) / stored
            decode = np.float32(stored / np.float32(2688.0))
        return float(operand), decode, np.float32(stored)
    encode = profile.tensor_scale_direction == "encode"
    if tensor_scale is not None:
        stored = float(_checks.float32_scalar("tensor_scale", tensor_scale))
    else:
        amax = amax()
        amax = math.nan if amax != amax else amax  # NaN tensors: fp4ref's canonical NaN
        if amax != amax and profile.nonfinite in ("torchao", "torchao-rceil"):
            # torchao's callers: torch.max(|x|) on x86 gives the NaN 0xFFFFFFFF (its
            # vectorised maximum ORs in the NaN mask), then amax / 2688 keeps it
            amax = float(np.uint32(0xFFFFFFFF).view(np.float32))
        if recipe == "vllm":  # vLLM's callers: 2688 / amax in torch, reciprocal * 2688,
            # IEEE throughout (a zero tensor gives Inf, an Inf one 0, NaN NaN)
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                stored = float(np.float32(np.float32(1.0) / np.float32(amax))
                               * np.float32(2688.0))
            if amax != amax:  # torch's max reduction on x86 gives the NaN 0xFFFFFFFF
                stored = float(np.uint32(0xFFFFFFFF).view(np.float32))
        elif encode:  # compressed-tensors generate_gparam: 2688 / amax, non-finite -> 1;
            # torch evaluates scalar / tensor as tensor.reciprocal() * scalar
            amax = max(amax, float(np.finfo(np.float32).tiny))
            stored = scale_rules.f32(scale_rules.f32(1.0 / amax) * 2688.0)
            stored = stored if np.isfinite(stored) else 1.0
        else:  # ModelOpt / torchao: amax / (6 * 448)
            stored = scale_rules.f32(amax / 2688.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        inverse = float(np.float32(1.0) / np.float32(stored))
    decode = inverse if encode else stored
    operand = stored if (recipe == "compressed-tensors") == encode else inverse
    if recipe == "vllm":  # ref_nvfp4_quant takes the global scale G (encode direction)
        operand = stored if encode else inverse
    return operand, np.float32(decode), np.float32(stored)


def _operand_on_device(engine: Any, flat: Any, rule: str, profile: Profile):
    """(scales, packed, (operand, decode, stored)) of an NVFP4 quantization whose tensor
    scale comes of the amax, with the operand found by the GPU (no wait between the amax and
    the kernel: the CUDA backend's ``quantize_by_device_amax``), or None where that does not
    apply (then the host computes the operand). The host's operand from the device's amax
    (:func:`_tensor_scales`) must equal the device's, bit for bit."""
    if not (profile.tensor_scale and profile.tensor_scale_direction != "amax"
            and profile.nvfp4_recipe != "vllm" and hasattr(engine, "quantize_by_device_amax")):
        return None
    found = engine.quantize_by_device_amax(flat, QuantizeOptions("nvfp4", rule, profile,
                                                                 math.nan),
                                           profile.tensor_scale_direction == "encode")
    if found is None:
        return None
    scales, packed, amax, device_operand = found
    scalars = _tensor_scales(profile, None, amax=lambda: amax)
    if np.float64(scalars[0]).view(np.uint64) != np.float64(device_operand).view(np.uint64):
        raise RuntimeError(f"the GPU's NVFP4 tensor operand {device_operand!r} differs from "
                           f"the host's {scalars[0]!r} (amax {amax!r}): a bug")
    engine.quantize_after(flat, QuantizeOptions("nvfp4", rule, profile, scalars[0]), scales,
                          packed)
    return scales, packed, scalars


def _fouroversix_tensor(rule: str, tensor_scale: Any, engine: Any, flat: Any):
    """(operand, decode multiplier, stored) of a four-over-six quantization: the tensor
    amax, given (``tensor_scale``) or max |x| (NaN if x holds one), is both the operand and
    what is stored (the package's ``amax``); the decode multiplier float32(amax / (M * S))
    (the package divides after multiplying, :func:`fp4ref.spec.fouroversix.dequantize_value`)."""
    if tensor_scale is not None:
        amax = float(_checks.float32_scalar("tensor_scale", tensor_scale))
    else:
        amax = float(engine.largest_magnitude(flat))
        if amax != amax:  # x.abs().max() on x86 gives the NaN 0xFFFFFFFF (one torch thread,
            # or a padded tensor of at most 32768 elements: torch's GRAIN_SIZE; split over
            # threads the combined NaN is 0x7FC00000)
            amax = float(np.uint32(0xFFFFFFFF).view(np.float32))
    with np.errstate(all="ignore"):
        decode = np.float32(amax) / np.float32(fouroversix.decode_divisor(rule))
    return amax, np.float32(decode), np.float32(amax)


@arrays.front_door
def quantize(
    x: Any,
    *,
    format: str = "mxfp4",
    profile: str | Profile = "ocp",
    scale_rule: str | None = None,
    rounding: str | None = None,
    tensor_scale: Any = None,
    hessian: Any = None,
    scale_layout: str | None = None,
    backend: str = "auto",
) -> QuantizedTensor:
    """Quantize floats ``[..., K]`` to MXFP4 or NVFP4 blocks.

    Parameters
    ----------
    x : array_like of float32, float16 or bfloat16, shape ``[..., K]``
        K a multiple of the block size (32 MXFP4, 16 NVFP4). Taken exactly.
    format : {"mxfp4", "nvfp4"}
    profile : str or Profile
        The conventions (:func:`fp4ref.profiles`); ``"ocp"`` by default.
    scale_rule : str, optional
        Overrides the profile. MXFP4: one of :data:`fp4ref.spec.scale_rules.MX_RULES`,
        ``"optimal"`` or ``"optimal-hessian"``; NVFP4: ``"optimal"`` or
        ``"optimal-hessian"`` (search the 126 positive finite E4M3 values), or None for the
        profile's recipe.
    rounding : {"even", "away", "zero"}, optional
        Element tie rule; overrides the profile.
    tensor_scale : float, optional
        NVFP4: the tensor scale in the profile's stored direction (decode multiplier, or
        compressed-tensors' encode scale, or MLX's ``global_scale``, the tensor amax);
        computed from the tensor amax if omitted (none for ``"amax"``, as MLX). On the GPU
        the amax, the operand and its tables are then computed on the device, and the
        host reads them back while the quantize kernel runs.
    hessian : array_like, optional
        For ``scale_rule="optimal-hessian"`` (and only then): either the per-column-block
        Hessians, float ``[K/B, B, B]`` (``H_j`` for columns ``j*B .. j*B + B - 1``), or
        activations ``X``, float ``[T, K]``, from which ``H_j = X_j^T X_j`` is computed
        (:func:`hessian_blocks`). Block ``j`` of every row uses ``H_j``. The search
        (:func:`fp4ref.spec.optimal.search_hessian`) minimises ``r^T H_j r`` over the same
        candidates and SSE bounds as ``"optimal"`` (qwantize 0.1.1 ``*_optimal_hessian``).
        A host or device array: either is checked, and ``X_j^T X_j`` computed, on the host
        in float64 (the GPU search reads the blocks from a device copy).
    scale_layout : {"linear", "128x4", "8x4"}, optional
        How ``.scales`` is stored (:mod:`fp4ref.spec.layouts`); overrides the profile's
        (``"128x4"`` for ``comfy`` and ``flashinfer``, else ``"linear"``). A swizzled
        layout needs ``x`` of shape ``[..., N, K]`` and stores each ``[N, K/B]`` scale
        matrix as :func:`fp4ref.swizzle` does.
    backend : {"auto", "python", "numba", "cuda"}
        ``"python"`` runs the oracle of :mod:`fp4ref.spec` (slow); all give the same bytes.
        ``"auto"`` runs cuda when ``x`` is a device array (``__cuda_array_interface__``),
        whose ``.blocks`` and ``.scales`` come back as that kind of device array; cuda on a
        host ``x`` gives numpy arrays.

    Returns
    -------
    QuantizedTensor

    Notes
    -----
    NaN anywhere in a block gives it the NaN scale (0xFF, or 0x7F for NVFP4) and zero codes;
    so does Inf under the profile's ``nonfinite="nan-scale"`` (the OCP default). Under
    ``nonfinite="gfloat"`` (MXFP4) NaN is refused with ``ValueError`` and an Inf block gets
    scale 0xFE with its elements coded as V / 2^127 (Inf -> +-6). An all-zero
    block gets the rule's zero-amax scale (0x00 under OCP). Empty inputs give empty outputs.
    """
    fmt = _checks.choice("format", format, ("mxfp4", "nvfp4"))
    prof = get_profile(profile)
    if rounding is not None:
        _checks.choice("rounding", rounding, ties.TIE_RULES)
    if scale_layout is not None:
        _checks.choice("scale_layout", scale_layout, LAYOUTS)
    prof = prof.with_options(rounding=rounding, scale_layout=scale_layout)
    _checks.choice("backend", backend, _QUANTIZE_BACKENDS)
    engine = backends.get(backend, x)
    if fmt == "mxfp4":
        rule = prof.scale_rule if scale_rule is None else _checks.choice(
            "scale_rule", scale_rule, (*scale_rules.MX_RULES, *scale_rules.SEARCH_RULES))
        block = mx.BLOCK_SIZE
        if tensor_scale is not None:
            raise ValueError("tensor_scale applies to format='nvfp4' only; got one for 'mxfp4'")
    else:
        if scale_rule is not None:
            _checks.choice("scale_rule", scale_rule,
                           (*scale_rules.SEARCH_RULES, *fouroversix.RULES))
        rule = scale_rule or prof.nvfp4_scale_rule or prof.nvfp4_recipe
        block = nvfp4.BLOCK_SIZE
        if prof.nvfp4_recipe is None:
            raise ValueError(f"profile {prof.name!r} has no NVFP4 quantizer")
        if scale_rule is not None and prof.nvfp4_recipe == "vllm":
            raise ValueError(f"scale_rule={scale_rule!r} cannot search profile {prof.name!r}'s "
                             "NVFP4 recipe 'vllm' (its own block arithmetic)")
        if scale_rule is not None and prof.nvfp4_recipe == "mlx":
            raise ValueError(f"scale_rule={scale_rule!r} needs a one-operation recipe; "
                             f"profile {prof.name!r} divides by s_b and then multiplies by E "
                             "(MLX), which the searches do not model")
        if scale_rule is not None and prof.nvfp4_recipe == "torchao":
            raise ValueError(f"scale_rule={scale_rule!r} needs a division recipe; profile "
                             f"{prof.name!r} multiplies by reciprocals")
    if rule in scale_rules.SEARCH_RULES and prof.element_rule == "argmin":
        raise ValueError(f"scale_rule={rule!r} searches with round-to-nearest codes; profile "
                         f"{prof.name!r} codes elements by MLX's argmin (element_rule="
                         "'argmin'), which has no search")
    if fmt == "nvfp4" and prof.nonfinite == "gguf-py":
        raise ValueError("nonfinite='gguf-py' is MXFP4 only (gguf-py has no NVFP4 quantizer)")
    if fmt == "nvfp4" and prof.element_rule == "ggml" and prof.nvfp4_recipe == "torchao":
        raise ValueError("element_rule='ggml' needs a recipe that divides by its scale; "
                         "'torchao' multiplies by a reciprocal")
    if fmt == "nvfp4" and scale_rule is not None and prof.nvfp4_recipe == "comfy":
        raise ValueError(f"scale_rule={scale_rule!r}: the 'comfy' recipe of profile "
                         f"{prof.name!r} has no scale search")
    if engine.name == "cuda":
        flat, shape = _device_input(engine, x, block)
    else:
        data = _input(x, block)
        flat, shape = data.reshape(-1), data.shape
    blocks_h = _hessian(hessian, rule, shape[-1], block)
    if prof.scale_layout != "linear" and len(shape) < 2:
        raise ValueError(f"x must have shape [..., N, K] for scale_layout "
                         f"{prof.scale_layout!r}; got shape {shape}")
    if prof.nonfinite == "gfloat":  # gfloat raises on NaN (encode_float: no NaN in E2M1)
        if fmt == "nvfp4":
            raise ValueError("nonfinite='gfloat' is an MXFP4 convention (gfloat has no NVFP4 "
                             "quantizer)")
        if math.isnan(engine.largest_magnitude(flat)):
            raise ValueError("x holds NaN, refused under nonfinite='gfloat' (gfloat raises "
                             "'No NaN in format ocp_e2m1')")
    operand, decode, stored = 1.0, None, None
    done = None
    if fmt == "nvfp4" and rule in fouroversix.RULES:  # the operand is the tensor amax
        operand, decode, stored = _fouroversix_tensor(rule, tensor_scale, engine, flat)
    elif fmt == "nvfp4" and tensor_scale is None and not blocks_h.shape[0]:
        done = _operand_on_device(engine, flat, rule, prof)
    if fmt == "nvfp4" and rule not in fouroversix.RULES and done is None:
        operand, decode, stored = _tensor_scales(
            prof, tensor_scale, amax=lambda: engine.largest_magnitude(flat))
    if done is not None:
        scales, packed, (operand, decode, stored) = done
    else:
        scales, packed = engine.quantize(flat, QuantizeOptions(fmt, rule, prof, operand),
                                         blocks_h)
    leading = shape[:-1]
    scales = scales.reshape(*leading, shape[-1] // block)
    if prof.scale_layout != "linear":
        *batch, rows, cols = scales.shape
        count = int(np.prod(batch, dtype=np.int64))
        stored_scales = engine.swizzle(scales.reshape(count, rows, cols), prof.scale_layout)
        scales = stored_scales.reshape(*batch, *padded_shape(rows, cols, prof.scale_layout))
    packed = packed.reshape(*leading, shape[-1] // 2)
    if engine.name == "cuda":
        if _device.is_device(x):
            packed, scales = _device._to_kind(packed, x), _device._to_kind(scales, x)
        else:
            packed, scales = packed.copy_to_host(), scales.copy_to_host()
    return QuantizedTensor(
        blocks=packed, scales=scales, format=fmt, tensor_scale=decode,
        stored_tensor_scale=stored, scale_rule=rule, rounding=prof.rounding,
        nibble_order=prof.nibble_order, scale_layout=prof.scale_layout, profile=prof)


def _device_input(engine: Any, x: Any, block_size: int) -> tuple[Any, tuple]:
    """(flat float32 device array, 16-byte aligned, and the shape) of ``x``: a device array
    checked from its metadata and widened on the device, or a host array copied there."""
    if not _device.is_device(x):
        data = _input(x, block_size)
        return engine.cuda.to_device(data.reshape(-1)), data.shape
    dtypes = tuple(np.dtype(d) for d in ("float32", "float16")) + (_checks.OUTPUT_DTYPES[
        "bfloat16"],)
    array = _device.checked("x", x, dtypes)
    shape = tuple(array.shape)
    if not shape:
        raise ValueError("x must have at least one dimension [..., K]; got a scalar")
    if shape[-1] % block_size:
        raise ValueError(
            f"x.shape[-1] = {shape[-1]} must be a multiple of the block size {block_size}")
    flat = array.reshape(-1)
    if array.dtype != np.float32:
        return engine.widen(flat, array.dtype.name), shape
    if _device.address(flat) % 16:  # the kernels read 16 bytes at a time
        aligned = _device.empty(flat.size, np.float32)
        aligned.copy_to_device(flat)
        return aligned, shape
    return flat, shape


def hessian_blocks(activations: Any, block_size: int) -> np.ndarray:
    """Per-column-block Hessians ``H_j = X_j^T X_j`` of activations ``X`` ``[T, K]``.

    Returns float64 ``[K / block_size, block_size, block_size]``; ``X_j`` is columns
    ``j * block_size .. (j + 1) * block_size - 1``. Each product of two float32 (or
    float16/bfloat16) activations is exact in float64; the sums over T are float64 (numpy's
    matmul order), so H is within float64 rounding of the exact X_j^T X_j.
    """
    array = _checks.host_array("activations", activations)
    if array.ndim != 2 or array.shape[1] % block_size or array.dtype.kind != "f":
        raise ValueError(f"activations must be a float array [T, K] with K a multiple of "
                         f"{block_size}; got dtype {array.dtype} and shape {array.shape}")
    x = array.astype(np.float64).reshape(array.shape[0], -1, block_size).transpose(1, 0, 2)
    return np.ascontiguousarray(np.matmul(x.transpose(0, 2, 1), x))


def _hessian(hessian: Any, rule: str, k: int, block: int) -> np.ndarray:
    """float64 ``[K/B, B, B]`` Hessian blocks for ``"optimal-hessian"``, else ``[0, B, B]``."""
    if rule != "optimal-hessian":
        if hessian is not None:
            raise ValueError(f"hessian applies to scale_rule='optimal-hessian' only; got one "
                             f"with scale_rule={rule!r}")
        return np.zeros((0, block, block))
    if hessian is None:
        raise ValueError("scale_rule='optimal-hessian' needs hessian= (Hessian blocks "
                         f"[K/{block}, {block}, {block}] or activations [T, K])")
    if _device.is_device(hessian):  # checked (and X_j^T X_j formed) on the host
        hessian = _device.as_numba("hessian", hessian).copy_to_host()
    array = _checks.host_array("hessian", hessian)
    if array.ndim == 2:
        if array.shape[1] != k:
            raise ValueError(f"hessian as activations must have shape [T, {k}] for x.shape[-1]"
                             f" = {k}; got shape {array.shape}")
        return hessian_blocks(array, block)
    if array.shape != (k // block, block, block) or array.dtype.kind not in "fiu":
        raise ValueError(f"hessian must have shape [K/{block}, {block}, {block}] = "
                         f"{(k // block, block, block)} (or be activations [T, {k}]); got "
                         f"shape {array.shape} and dtype {array.dtype}")
    blocks_h = np.ascontiguousarray(array, dtype=np.float64)
    if not np.isfinite(blocks_h).all():
        raise ValueError("hessian must be finite")
    return blocks_h
