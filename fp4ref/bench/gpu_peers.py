"""The GPU codecs a user would pick instead of fp4ref, for ``bench ... --backend cuda``:
torchao's ``to_mx``, ``nvfp4_quantize`` and MX ``to_dtype`` (eager and under
``torch.compile``) and qwantize's Triton kernels, each called through its own public entry
point on the same device data, outputs allocated by the call, and each output turned into
bytes to compare with fp4ref's under the profile that describes that peer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

E2M1_MAGNITUDES = [0, .5, 1, 1.5, 2, 3, 4, 6]


def missing(module: str) -> str | None:
    """Why ``module`` cannot be compared here, or None when it imports."""
    try:
        __import__(module)
    except Exception as error:  # an installed peer may fail on import (CUDA, Triton)
        return f"{type(error).__name__}: {error}".splitlines()[0][:60]
    return None


def torchao_quantizers(x, tensor_scale: float) -> dict[str, Callable[[], Any]]:
    """torchao's MXFP4 ``to_mx`` (FLOOR) and ``nvfp4_quantize`` (given ``tensor_scale``)
    of the device float32 tensor ``x``, eager and compiled: name -> call returning
    ``(scale bytes, packed bytes)`` as uint8 tensors."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.prototype.mx_formats.config import ScaleCalculationMode
        from torchao.prototype.mx_formats.mx_tensor import to_mx
        from torchao.prototype.mx_formats.nvfp4_tensor import nvfp4_quantize

    def mx(x):
        scale, data = to_mx(x, torch.float4_e2m1fn_x2, 32, ScaleCalculationMode.FLOOR)
        return scale.view(torch.uint8), data.view(torch.uint8)

    given = torch.tensor(tensor_scale, dtype=torch.float32, device=x.device)

    def nv(x):
        scale, data = nvfp4_quantize(x, 16, given)
        return scale.view(torch.uint8), data.view(torch.uint8)

    compiled_mx, compiled_nv = torch.compile(mx), torch.compile(nv)
    return {"mxfp4 eager": lambda: mx(x), "mxfp4 compiled": lambda: compiled_mx(x),
            "nvfp4 eager": lambda: nv(x), "nvfp4 compiled": lambda: compiled_nv(x)}


def torchao_mx_dequantizers(blocks, scales, dtype: str) -> dict[str, Callable[[], Any]]:
    """torchao's MXFP4 decode (``mx_tensor.to_dtype``) of the packed low-first uint8 device
    tensor ``blocks`` ``[rows, K/2]`` with E8M0 ``scales`` ``[rows, K/32]`` to ``dtype``,
    eager and compiled: name -> call returning the ``[rows, K]`` tensor."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.prototype.mx_formats.mx_tensor import to_dtype

    target, e8m0 = getattr(torch, dtype), scales.view(torch.float8_e8m0fnu)

    def decode(blocks):
        return to_dtype(blocks, e8m0, torch.float4_e2m1fn_x2, 32, target).reshape(
            blocks.shape[0], -1)

    compiled = torch.compile(decode)
    return {"eager": lambda: decode(blocks), "compiled": lambda: compiled(blocks)}


def qwantize_quantizers(x) -> dict[str, Callable[[], Any]]:
    """qwantize's Triton kernels on the device float32 tensor ``x`` ``[rows, K]``: name ->
    call returning its ``(float scales, float quantized values)``."""
    import qwantize

    mx, nv = x.reshape(-1, 32), x.reshape(-1, 16)
    return {"mxfp4 naive": lambda: qwantize.mxfp4_naive_triton(mx),
            "mxfp4 optimal": lambda: qwantize.mxfp4_optimal_triton(mx),
            "nvfp4 optimal": lambda: qwantize.nvfp4_optimal_triton(nv)}


def qwantize_bytes(fmt: str, scales, values, rows: int):
    """(scale bytes ``[rows, K/B]``, codes ``[rows, K]``) of qwantize's float outputs: an
    E8M0 byte log2(s) + 127 (MXFP4) or the E4M3 byte of s (NVFP4), and each value's E2M1
    code (magnitude index, sign in bit 3)."""
    import torch

    if fmt == "mxfp4":
        scale_bytes = (torch.log2(scales) + 127).round().to(torch.uint8)
    else:
        scale_bytes = scales.to(torch.float8_e4m3fn).view(torch.uint8)
    table = torch.tensor(E2M1_MAGNITUDES, dtype=torch.float32, device=values.device)
    codes = torch.searchsorted(table, values.abs().contiguous()).to(torch.uint8)
    codes |= torch.signbit(values).to(torch.uint8) << 3
    return scale_bytes.reshape(rows, -1), codes.reshape(rows, -1)


def unpacked(blocks):
    """Codes ``[rows, K]`` of packed low-first bytes ``[rows, K/2]`` (a torch uint8 tensor)."""
    import torch

    return torch.stack((blocks & 15, blocks >> 4), dim=-1).reshape(blocks.shape[0], -1)


def differing_blocks(fmt: str, scales_a, codes_a, scales_b, codes_b) -> tuple[int, int]:
    """(blocks whose scale byte or any code differs between a and b, blocks)."""
    block = 32 if fmt == "mxfp4" else 16
    rows = codes_a.shape[0]
    codes = (codes_a.reshape(rows, -1, block) != codes_b.reshape(rows, -1, block)).any(-1)
    differ = codes | (scales_a.reshape(rows, -1) != scales_b.reshape(rows, -1))
    return int(differ.sum()), differ.numel()
