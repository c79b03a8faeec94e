"""Reference operators on quantized weights: a linear layer and the MoE gather-linear.

``linear(x, w, bias)`` is ``y = x @ dequantize(w)^T + bias``; ``moe_linear(x, w, indices,
bias)`` applies expert ``indices[t, s]`` of a stacked weight to token ``t`` for each of its
``topk`` slots (mistral.rs's ``gather_forward``). The weight is never decoded whole: the
kernels decode one row at a time. Its values are exactly those of :func:`fp4ref.dequantize`
to float32 (the same validation and the same block table).

Numerics
--------
Let ``u = 2^-24``, ``B`` the format's block size (32 for MXFP4, 16 for NVFP4), and write a
result element as ``S = b + sum_k x_k w_k`` over ``k = 0 .. K-1``, with ``x_k`` the input
(float32; float16 and bfloat16 are widened exactly), ``w_k`` the dequantized float32 weight
and ``b`` the float32 bias (0 and no term when there is none).

``accumulate="exact"`` (the default) is correctly rounded: ``S`` is computed exactly and
rounded once to float32, nearest even. The bias is inside that one rounding. Each product
of two float32 values is exact (48-bit significand, exponent -298..208; for NVFP4 with a
tensor scale ``w_k`` is a general float32 and this still holds), and the kernels add the
products into an exact fixed-point accumulator (:mod:`fp4ref.kernels.ops_scalar`), so no
bound is involved: the result is the float32 nearest to ``S``. Special values follow IEEE
754: a NaN factor, ``0 * inf``, or infinite terms of both signs give NaN; otherwise an
infinite term gives that infinity; a finite ``S`` past the float32 range rounds to an
infinity; an exact zero is ``+0`` unless every term is ``-0`` (section 6.3).

``accumulate="float32-blocked"`` is plain float32 arithmetic in this order: for each block
``j`` of ``B`` elements ``s_j = +0; s_j = fl(s_j + fl(x_k * w_k))`` for ``k`` in the block
in order; ``y = +0; y = fl(y + s_j)`` for ``j`` in order; then ``y = fl(y + b)``. Each
``fl`` is one IEEE float32 operation (no fused multiply-add, no reassociation). This is the
order of mistral.rs's CPU ``MXFP4Layer::forward`` (``forward_dequantize``) for float32
inputs.

The bound between them: with ``n = B + K/B`` (the most roundings any term passes
through), ``gamma_n = n u / (1 - n u)`` and ``T = |b| + sum_k |x_k w_k|``, whenever no
intermediate value overflows and no input is NaN or infinite::

    |blocked - exact| <= (gamma_n + u) * T + (K + 1) * 2^-149

(``gamma_n T`` from the roundings of the blocked sum, ``u T`` from the one rounding of the
exact result, the last term from products that underflow into float32 subnormals, each off
by at most 2^-150.) For a gpt-oss layer (K = 2880, MXFP4) ``n = 122`` and the relative
part is about ``7.3e-6``. Every NaN written is the canonical 0x7FC00000.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _checks, api, arrays, backends
from .spec import nibbles
from .spec import ops as spec

#: The accumulation modes (see the module docstring).
ACCUMULATE = spec.ACCUMULATE

#: Input dtypes that widen exactly to float32.
_FLOAT32_INPUTS = ("float16", "bfloat16", "float32")

#: The options a quantized layer carries itself (a keyword for one would be ignored).
_LAYER_OWNS = ("format", "tensor_scale", "nibble_order", "scale_layout")


def _weight(w: Any, stacked: bool, options: dict, backend: str) -> api.Packed:
    """Check ``w`` (a quantized layer or a ``(blocks, scales)`` pair) with
    :func:`fp4ref.api.packed`, as :func:`fp4ref.dequantize` would, and reshape it to blocks
    ``[E, N, K/2]`` and scales ``[E, N, K/B]`` (``E = 1`` unless ``stacked``)."""
    given = {name: value for name, value in options.items() if value is not None}
    if all(hasattr(w, a) for a in ("blocks", "scales", "format")):
        owned = sorted(set(given) & set(_LAYER_OWNS))
        if owned:
            raise TypeError(
                f"w is a quantized layer and carries its own {', '.join(_LAYER_OWNS)}; got "
                f"also {', '.join(owned)}= (those keywords go with a (blocks, scales) pair)"
            )
        weight = api.packed(w, backend=backend, **given)
    elif isinstance(w, tuple) and len(w) == 2:
        weight = api.packed(*w, backend=backend, **given)
    else:
        raise TypeError(
            "w must be a quantized weight (an object with .blocks, .scales and .format, such "
            f"as fp4ref.quantize's result) or a (blocks, scales) tuple; got {type(w).__name__}"
        )
    if len(weight.leading) != (2 if stacked else 1):
        shape = "[E, N, K]" if stacked else "[N, K]"
        raise ValueError(
            f"w must be a weight of shape {shape}; got one of shape "
            f"{(*weight.leading, weight.k)} (blocks {weight.blocks.shape}, scales "
            f"{weight.scales.shape})"
        )
    e, n = weight.leading if stacked else (1, *weight.leading)
    k, block = weight.k, weight.block_size
    return weight._replace(blocks=weight.blocks.reshape(e, n, k // 2),
                           scales=weight.scales.reshape(e, n, k // block), leading=(e, n))


def _floats(name: str, value: Any) -> np.ndarray:
    """``value`` as a C-contiguous float32 array (float16/bfloat16 widened exactly)."""
    array = _checks.host_array(name, value)
    if array.dtype.name not in _FLOAT32_INPUTS:
        raise TypeError(
            f"{name} must be a float array of dtype {_FLOAT32_INPUTS} (cast float64 to float32 "
            f"first: the result is defined on float32 inputs); got dtype {array.dtype}"
        )
    return np.ascontiguousarray(array.astype(np.float32, copy=False))


def _bias(bias: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if bias is None:
        return None
    array = _floats("bias", bias)
    if array.shape != shape:
        raise ValueError(f"bias must have shape {shape}; got {array.shape}")
    return array


def _indices(indices: Any, tokens: int, topk: int | None, experts: int) -> np.ndarray:
    """``indices`` as int64 ``[T, topk]`` after checking dtype, shape and every value."""
    array = _checks.host_array("indices", indices)
    if array.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array; got dtype {array.dtype}")
    if array.ndim != 2 or array.shape[0] != tokens or (topk is not None and
                                                       array.shape[1] != topk):
        wanted = f"[{tokens}, {'topk' if topk is None else topk}]"
        raise ValueError(
            f"indices must have shape [T, topk] = {wanted} for x of {tokens} tokens; got shape "
            f"{array.shape}"
        )
    if array.size:
        low, high = array.min(), array.max()
        if low < 0 or high >= experts:
            bad = low if low < 0 else high
            raise ValueError(
                f"indices must be expert numbers in [0, {experts}) for w of {experts} experts; "
                f"found {int(bad)}"
            )
    return array.astype(np.int64)


@arrays.front_door
def linear(
    x: Any,
    w: Any,
    bias: Any = None,
    *,
    accumulate: str = "exact",
    backend: str = "auto",
    format: str | None = None,
    profile: Any = None,
    tensor_scale: Any = None,
    nibble_order: str | None = None,
    scale_layout: str | None = None,
    e8m0_decode: str | None = None,
) -> np.ndarray:
    """``y = x @ dequantize(w)^T + bias`` without decoding the whole weight.

    Parameters
    ----------
    x : array_like of float32, float16 or bfloat16, shape ``[..., K]``
    w : quantized weight ``[N, K]``
        An object with ``.blocks``, ``.scales`` and ``.format`` (:func:`fp4ref.quantize`'s
        result, :class:`fp4ref.io.layer.QuantizedLayer`: decoded as
        ``fp4ref.dequantize(w)`` decodes it; its ``bias``, if any, is not applied: pass it
        as ``bias``), or a ``(blocks, scales)`` tuple decoded as
        ``fp4ref.dequantize(blocks, scales, **options)`` with the keywords below. Blocks
        may be ``[N, K/2]`` or ``[N, K/B, B/2]``.
    bias : array_like of float32, float16 or bfloat16, shape ``[N]``, optional
    accumulate : {"exact", "float32-blocked"}
        The numerics (see :mod:`fp4ref.ops`).
    backend : {"auto", "python", "numba", "cuda"}
        ``"python"`` runs the plain-Python definition (:mod:`fp4ref.spec.ops`; slow);
        ``"cuda"`` copies host arrays to the GPU and back.
    format, profile, tensor_scale, nibble_order, scale_layout, e8m0_decode
        The decoding options of :func:`fp4ref.dequantize`. A quantized layer carries its own
        ``format``, ``tensor_scale``, ``nibble_order`` and ``scale_layout``: giving one of
        those with a layer is a ``TypeError``.

    Returns
    -------
    numpy.ndarray of float32, shape ``[..., N]``
    """
    mode = _checks.choice("accumulate", accumulate, ACCUMULATE)
    engine = backends.get(backend)
    options = dict(format=format, profile=profile, tensor_scale=tensor_scale,
                   nibble_order=nibble_order, scale_layout=scale_layout, e8m0_decode=e8m0_decode)
    weight = _weight(w, False, options, engine.name)
    array = _floats("x", x)
    if array.ndim == 0 or array.shape[-1] != weight.k:
        raise ValueError(
            f"x must have shape [..., K] with K = {weight.k} (the weight's K); got shape "
            f"{array.shape}"
        )
    n = weight.blocks.shape[1]
    b = _bias(bias, (n,))
    rows = array.reshape(-1, weight.k)
    m = rows.shape[0]
    out = _gather(engine, mode, rows, weight, np.zeros(m, np.int64), 1, True,
                  None if b is None else b.reshape(1, n))
    return out.reshape(*array.shape[:-1], n)


@arrays.front_door
def moe_linear(
    x: Any,
    w: Any,
    indices: Any,
    bias: Any = None,
    *,
    accumulate: str = "exact",
    backend: str = "auto",
    format: str | None = None,
    profile: Any = None,
    tensor_scale: Any = None,
    nibble_order: str | None = None,
    scale_layout: str | None = None,
    e8m0_decode: str | None = None,
) -> np.ndarray:
    """``y[t, s] = x[t] @ dequantize(w[indices[t, s]])^T + bias[indices[t, s]]``.

    The semantics of mistral.rs's ``gather_forward``: each token ``t`` goes through the
    ``topk`` experts its router chose; the expert weights are decoded row by row, only for
    the experts some token uses.

    Parameters
    ----------
    x : array_like of float32, float16 or bfloat16
        ``[T, K]`` (one input per token, shared by its slots) or ``[T, topk, K]`` (one input
        per slot).
    w : quantized weight ``[E, N, K]``
        As for :func:`linear`, with a leading expert axis: blocks ``[E, N, K/2]`` or
        gpt-oss's ``[E, N, K/32, 16]``, scales ``[E, N, K/B]``.
    indices : array_like of int, shape ``[T, topk]``
        Expert numbers, each in ``[0, E)``; any other value, a non-integer dtype or another
        shape is an error raised before any kernel runs.
    bias : array_like, shape ``[E, N]``, optional
    accumulate, backend, format, profile, tensor_scale, nibble_order, scale_layout, e8m0_decode
        As for :func:`linear`.

    Returns
    -------
    numpy.ndarray of float32, shape ``[T, topk, N]``
    """
    mode = _checks.choice("accumulate", accumulate, ACCUMULATE)
    engine = backends.get(backend)
    options = dict(format=format, profile=profile, tensor_scale=tensor_scale,
                   nibble_order=nibble_order, scale_layout=scale_layout, e8m0_decode=e8m0_decode)
    weight = _weight(w, True, options, engine.name)
    array = _floats("x", x)
    if array.ndim not in (2, 3) or array.shape[-1] != weight.k:
        raise ValueError(
            f"x must have shape [T, K] or [T, topk, K] with K = {weight.k} (the weight's K); "
            f"got shape {array.shape}"
        )
    e, n = weight.blocks.shape[:2]
    per_slot = array.ndim == 3
    chosen = _indices(indices, array.shape[0], array.shape[1] if per_slot else None, e)
    t, topk = chosen.shape
    b = _bias(bias, (e, n))
    out = _gather(engine, mode, array.reshape(-1, weight.k), weight, chosen.reshape(-1),
                  topk, per_slot, b)
    return out.reshape(t, topk, n)


def _gather(engine, mode: str, x: np.ndarray, weight: api.Packed, experts: np.ndarray,
            topk: int, per_slot: bool, bias: np.ndarray | None) -> np.ndarray:
    """``out[p, n] = bias[e, n] + x'[p] . w[e, n]`` with ``e = experts[p]``, for validated
    arguments; ``x'[p]`` is ``x[p]`` if ``per_slot`` else ``x[p // topk]``."""
    pairs, n = experts.size, weight.blocks.shape[1]
    if pairs == 0 or n == 0:
        return np.zeros((pairs, n), np.float32)
    if engine.name == "python":
        return _python(mode, x, weight, experts, topk, per_slot, bias)
    exact = mode == "exact"
    table = engine.block_table(weight.scale_format, weight.tensor_scale, "float32",
                               weight.e8m0_decode)
    has_bias = bias is not None
    if bias is None:
        bias = np.zeros((1, 1), np.float32)
    order = nibbles.NIBBLE_ORDERS.index(weight.nibble_order)
    if engine.name == "cuda":
        from .kernels.cuda import ops as gpu

        out = gpu.gather_linear(x, weight.blocks, weight.scales, table, order,
                                weight.block_size, experts, topk, per_slot, bias, has_bias,
                                exact)
    else:
        from .kernels.cpu import ops as cpu

        sorted_pairs = np.argsort(experts, kind="stable")
        used, counts = np.unique(experts, return_counts=True)
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        if exact:
            out = np.empty((pairs, n), np.uint32)
            x_bits = x.view(np.uint32)
            xm, xe = np.empty(x.shape, np.int64), np.empty(x.shape, np.int64)
            x_special = np.empty(x.shape[0], np.bool_)
            cpu.split_rows(x_bits, xm, xe, x_special)
            cpu.gather_linear_exact(x_bits, xm, xe, x_special, weight.blocks, weight.scales,
                                    table, order, weight.block_size, used, starts,
                                    sorted_pairs, topk, per_slot, bias.view(np.uint32),
                                    has_bias, out)
        else:
            out = np.empty((pairs, n), np.float32)
            cpu.gather_linear_blocked(x, weight.blocks, weight.scales, table.view(np.float32),
                                      order, weight.block_size, used, starts, sorted_pairs,
                                      topk, per_slot, bias, has_bias, out)
    result = out.view(np.float32)
    result.view(np.uint32)[np.isnan(result)] = spec.NAN
    return result


def _python(mode: str, x: np.ndarray, weight: api.Packed, experts: np.ndarray, topk: int,
            per_slot: bool, bias: np.ndarray | None) -> np.ndarray:
    """The plain-Python definition of :func:`fp4ref.spec.ops.moe_linear` on validated
    arrays (only the experts in use are decoded)."""
    tensor_bits = int(weight.tensor_scale.view(np.uint32))
    rows = {e: spec.weight_rows(weight.blocks[e].tolist(), weight.scales[e].tolist(),
                                weight.format, tensor_bits, weight.nibble_order,
                                weight.e8m0_decode)
            for e in set(experts.tolist())}
    x_bits = x.view(np.uint32)
    if per_slot:
        x_bits = x_bits.reshape(-1, topk, x.shape[1])
    out = spec.moe_linear(x_bits.tolist(), rows, experts.reshape(-1, topk).tolist(),
                          None if bias is None else bias.view(np.uint32).tolist(), mode,
                          weight.block_size, per_slot)
    return np.array(out, np.uint32).reshape(experts.size, -1).view(np.float32)
