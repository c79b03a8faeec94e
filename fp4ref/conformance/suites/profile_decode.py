"""The decode side of every named profile: MXFP4 and NVFP4 blocks stored the way the
profile stores them (nibble order, scale layout, tensor-scale direction) and read back
with its E8M0 convention (OCP 2^-127/NaN, mistral.rs's float32_from_bits, ggml's +0 and
2^128). Expected values come from :func:`fp4ref.spec.mx.dequantize_block` and
:func:`fp4ref.spec.nvfp4.dequantize_block`.
"""

from __future__ import annotations

import numpy as np

from ...kernels.options import decode_arithmetic
from ...profiles import Profile, profiles
from ...spec import fouroversix, layouts, mx, nibbles, nvfp4
from ..model import Case, Suite

#: The NVFP4 tensor scale used: a decode multiplier amax / 2688 for amax = 1.
_DECODE = float(np.float32(1 / 2688))


def _stored(codes: np.ndarray, scales: np.ndarray, profile: Profile, block: int):
    """Codes [N, K] and scales [N, C] as the profile stores them."""
    packed = np.array(
        [nibbles.pack(row.tolist(), profile.nibble_order, block) for row in codes], np.uint8
    )
    if profile.scale_layout != "linear":
        scales = np.array(layouts.swizzle(scales.tolist(), profile.scale_layout), np.uint8)
    return packed, scales


def _cases(name: str, profile: Profile) -> list[Case]:
    cases = []
    for fmt, block in (("mxfp4", mx.BLOCK_SIZE), ("nvfp4", nvfp4.BLOCK_SIZE)):
        codes = np.tile(np.arange(16, dtype=np.uint8), (256, block // 16))
        scales = np.arange(256, dtype=np.uint8).reshape(256, 1)
        if fmt == "mxfp4":
            stored_scale, decode = 1.0, None
            rows = [
                mx.dequantize_block(row.tolist(), int(s), "float32", profile.e8m0_decode,
                                    profile.decode_arithmetic)
                for row, s in zip(codes, scales[:, 0], strict=True)
            ]
            pins = f"{profile.description} E8M0 decode: {profile.e8m0_decode}"
        else:
            encode = profile.tensor_scale_direction == "encode"
            stored_scale = float(np.float32(1) / np.float32(_DECODE)) if encode else _DECODE
            decode = float(np.float32(1) / np.float32(stored_scale)) if encode else _DECODE
            if profile.tensor_scale_direction == "amax":  # MLX: G, decoded as G / 2688
                stored_scale = float(np.float32(_DECODE) * np.float32(2688.0))
                decode = float(np.float32(stored_scale) / np.float32(2688.0))
            if not profile.tensor_scale:  # no tensor scale (ggml, qwantize): 1.0
                stored_scale = decode = 1.0
            # compressed-tensors divides the block scale by the stored encode scale G
            divisor = stored_scale if profile.decode_arithmetic == "compressed-tensors" else decode
            four = profile.decode_arithmetic == "fouroversix"  # the stored amax A (of full
            if four:  # mantissa, so both roundings of f32(f32(P * s_b) * A) / D show)
                stored_scale = divisor = _DECODE
            bits = int(np.array(divisor, np.float32).view(np.uint32))
            d = fouroversix.decode_divisor(profile.nvfp4_scale_rule or "fouroversix")
            rows = [
                nvfp4.dequantize_block(row.tolist(), int(s), bits, "float32",
                                       decode_arithmetic(profile.decode_arithmetic, fmt),
                                       profile.e4m3_decode, d if four else 1.0)
                for row, s in zip(codes, scales[:, 0], strict=True)
            ]
            if four:
                pins = (f"{profile.description} Tensor scale stored as the amax A "
                        f"(four-over-six: decoded f32(f32(P * s_b) * A) / {d:g}).")
            elif profile.tensor_scale_direction == "amax":
                pins = (f"{profile.description} Tensor scale stored as the amax direction "
                        "(MLX global_scale G stands for a decode multiplier "
                        "float32(G / 2688)).")
            else:
                pins = (
                    f"{profile.description} Tensor scale stored as the "
                    f"{profile.tensor_scale_direction} direction (encode G stands for a "
                    f"decode multiplier float32(1 / G))."
                )
        packed, stored = _stored(codes, scales, profile, block)
        values = np.array(rows, np.uint32).view(np.float32)
        cases.append(
            Case(
                fmt,
                f"every {fmt} scale byte with every code, stored and decoded as {name} does",
                pins,
                {
                    "blocks": packed,
                    "scales": stored,
                    "tensor_scale": np.array(stored_scale, np.float32),
                },
                {"values": values},
                {"format": fmt, "profile": name},
                profile=name,
            )
        )
    return cases


def _build() -> list[Case]:
    cases = []
    for name, profile in profiles().items():
        for case in _cases(name, profile):
            cases.append(
                Case(
                    f"{name}_{case.name}",
                    case.tests,
                    case.pins,
                    case.inputs,
                    case.expected,
                    case.params,
                    case.profile,
                )
            )
    return cases


SUITES = [
    Suite(
        "profile_dequantize",
        "dequantize_profile",
        "(blocks: uint8[N, K/2] in the profile's nibble order, scales: uint8 in its scale "
        "layout, tensor_scale: float32[] in its direction (NVFP4), *, format: str, "
        "profile: str) -> float32[N, K]",
        "decode under every named profile: E8M0 conventions, nibble orders, layouts, "
        "tensor-scale directions",
        _build,
        ocp={"profile": ("ocp",)},
    ),
]
