"""Nibble-order and block-decode suites: pack/unpack in every order, MXFP4 and NVFP4
dequantization for every scale byte and code, every output dtype and tensor scale.

Expected values come from :mod:`fp4ref.spec` (:mod:`~fp4ref.spec.nibbles`,
:mod:`~fp4ref.spec.mx`, :mod:`~fp4ref.spec.nvfp4`) and are cross-checked against
ml_dtypes decodes multiplied in numpy float32 (:func:`_cross_check`).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from ...spec import mx, nibbles, nvfp4
from ..model import Case, Suite
from . import _inputs
from .scalars import _agree

_OUT = {
    "float32": (np.uint32, np.float32),
    "bfloat16": (np.uint16, ml_dtypes.bfloat16),
    "float16": (np.uint16, np.float16),
}
_NIBBLE_PINS = {
    "low-first": "OCP / torch float4_e2m1fn_x2 / gpt-oss: even element in bits 3..0",
    "high-first": "ComfyUI hi_first / BFL FLUX.2 / mold: even element in bits 7..4",
    "split-half": "ggml block_mxfp4 (32) / block_nvfp4 sub-blocks (16): "
    "byte j = element j | element j+B/2",
}


def _pack_cases() -> list[Case]:
    ramp = np.tile(np.arange(16, dtype=np.uint8), (2, 4))
    data = {"ramp": ramp, "random": _inputs.random_bytes((4, 64), 10, 0, 16)}
    cases = []
    for order in nibbles.NIBBLE_ORDERS:
        for block in (32, 16) if order == "split-half" else (32,):
            for label, codes in data.items():
                packed = np.array(
                    [nibbles.pack(row.tolist(), order, block) for row in codes], np.uint8
                )
                suffix = f"_{block}" if order == "split-half" else ""
                cases.append(
                    Case(
                        f"{label}_{order}{suffix}",
                        f"{label} codes [r, 64] packed",
                        _NIBBLE_PINS[order],
                        {"codes": codes},
                        {"packed": packed},
                        {"order": order, "block_size": block},
                    )
                )
    return cases


def _unpack_cases() -> list[Case]:
    every = np.arange(256, dtype=np.uint8).reshape(8, 32)
    cases = []
    for order in nibbles.NIBBLE_ORDERS:
        for block in (32, 16) if order == "split-half" else (32,):
            codes = np.array(
                [nibbles.unpack(row.tolist(), order, block) for row in every], np.uint8
            )
            suffix = f"_{block}" if order == "split-half" else ""
            cases.append(
                Case(
                    f"all_bytes_{order}{suffix}",
                    "every byte value unpacked",
                    _NIBBLE_PINS[order],
                    {"packed": every},
                    {"codes": codes},
                    {"order": order, "block_size": block},
                )
            )
    if not np.array_equal(cases[0].expected["codes"][:, 0::2], every & 0xF):
        raise RuntimeError("low-first unpack oracle disagrees with bit arithmetic")
    return cases


def _dequantize(blocks, scales, order, dtype, block_decode) -> np.ndarray:
    """Expected output of a [N, K/2] blocks array through the oracle ``block_decode``."""
    bits_type, view = _OUT[dtype]
    size = 2 * blocks.shape[1] // scales.shape[1]
    rows = []
    for packed_row, scale_row in zip(blocks, scales, strict=True):
        codes = nibbles.unpack(packed_row.tolist(), order, size)
        rows.append(
            [
                bits
                for j, s in enumerate(scale_row.tolist())
                for bits in block_decode(codes[j * size : (j + 1) * size], s, dtype)
            ]
        )
    return np.array(rows, bits_type).view(view)


def _cross_check(blocks, scales, dtype, scale_view, tensor_scale, expected, what) -> None:
    """ml_dtypes decodes, one float32 multiply (two for NVFP4), then ml_dtypes' cast."""
    codes = np.stack([blocks & 0xF, blocks >> 4], -1).reshape(blocks.shape[0], -1)
    values = codes.view(ml_dtypes.float4_e2m1fn).astype(np.float32)
    factor = np.repeat(
        scales.view(scale_view).astype(np.float32), values.shape[1] // scales.shape[1], 1
    )
    with np.errstate(all="ignore"):
        product = (values * factor * np.float32(tensor_scale)).astype(_OUT[dtype][1])
    _agree(expected, product, what)


def _all_scales(block_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Every scale byte (one row each) with every code, low-first."""
    codes = np.tile(np.arange(16, dtype=np.uint8), (256, block_size // 16))
    blocks = (codes[:, 0::2] | (codes[:, 1::2] << 4)).astype(np.uint8)
    return blocks, np.arange(256, dtype=np.uint8).reshape(256, 1)


def _mx_decode(codes, scale, dtype):
    return mx.dequantize_block(codes, scale, dtype)


def _mxfp4_cases() -> list[Case]:
    cases = []
    blocks, scales = _all_scales(32)
    for dtype in _OUT:
        expected = _dequantize(blocks, scales, "low-first", dtype, _mx_decode)
        _cross_check(blocks, scales, dtype, ml_dtypes.float8_e8m0fnu, 1.0, expected, "MXFP4")
        cases.append(
            Case(
                f"all_scales_{dtype}",
                f"every E8M0 byte with every code, to {dtype}",
                "OCP MX v1.0 sections 5 and 5.4.1: X * P_i rounded once; 0x00 is 2^-127, "
                "0xFF makes the block NaN",
                {"blocks": blocks, "scales": scales},
                {"values": expected},
                {"nibble_order": "low-first", "dtype": dtype},
            )
        )
    random_blocks = _inputs.random_bytes((4, 64), 11)
    random_scales = _inputs.random_bytes((4, 4), 12, 100, 150)
    random_scales[0, :] = (0, 1, 254, 255)
    for order in nibbles.NIBBLE_ORDERS:
        expected = _dequantize(random_blocks, random_scales, order, "float32", _mx_decode)
        cases.append(
            Case(
                f"random_{order}",
                f"random bytes [4, 64] in {order} order, K = 128",
                _NIBBLE_PINS[order],
                {"blocks": random_blocks, "scales": random_scales},
                {"values": expected},
                {"nibble_order": order, "dtype": "float32"},
            )
        )
    # the other E8M0 decode conventions (fp4ref.profiles.E8M0_DECODES), for peers that
    # decode so (gguf-py: "ggml"): a case's e8m0_decode names the one it expects
    from ...profiles import E8M0_DECODES

    for decode in E8M0_DECODES[1:]:
        def block_decode(codes, scale, dtype, decode=decode):
            return mx.dequantize_block(codes, scale, dtype, decode)

        for dtype in _OUT:
            cases.append(
                Case(
                    f"all_scales_{dtype}_{decode}",
                    f"every E8M0 byte with every code, to {dtype}, E8M0 decode {decode!r}",
                    f"fp4ref.profiles.E8M0_DECODES {decode!r}: X * P_i rounded once, with "
                    f"0x00 / 0xFF (and code 0x8 under 'ggml') as that convention reads them",
                    {"blocks": blocks, "scales": scales},
                    {"values": _dequantize(blocks, scales, "low-first", dtype, block_decode)},
                    {"nibble_order": "low-first", "dtype": dtype, "e8m0_decode": decode},
                )
            )
        cases.append(
            Case(
                f"random_split-half_{decode}",
                f"random bytes [4, 64] in split-half order, K = 128, E8M0 decode {decode!r}",
                _NIBBLE_PINS["split-half"],
                {"blocks": random_blocks, "scales": random_scales},
                {"values": _dequantize(random_blocks, random_scales, "split-half", "float32",
                                       block_decode)},
                {"nibble_order": "split-half", "dtype": "float32", "e8m0_decode": decode},
            )
        )
    return cases


#: Tensor scales (decode multipliers) for NVFP4: name -> float32 bits.
_TENSOR_SCALES = {
    "one": 0x3F800000,
    "modelopt": int(np.float32(1 / 2688).view(np.uint32)),
    "subnormal_products": 0x00800000,
    "overflow": 0x7E800000,
    "negative": 0xC0000000,
    "zero": 0x00000000,
    "inf": 0x7F800000,
    "nan": 0x7FC00000,
}


def _nvfp4_cases() -> list[Case]:
    cases = []
    blocks, scales = _all_scales(16)
    for name, bits in _TENSOR_SCALES.items():
        for dtype in _OUT if name == "one" else ("float32",):
            tensor = np.array(bits, np.uint32).view(np.float32)

            def decode(codes, scale, dtype, bits=bits):
                return nvfp4.dequantize_block(codes, scale, bits, dtype)

            expected = _dequantize(blocks, scales, "low-first", dtype, decode)
            _cross_check(blocks, scales, dtype, ml_dtypes.float8_e4m3fn, tensor, expected, "NVFP4")
            cases.append(
                Case(
                    f"all_scales_{name}_{dtype}",
                    f"every E4M3 byte with every code, tensor scale {name} ({float(tensor)!r}), "
                    f"to {dtype}",
                    "NVFP4: float32(P_i * s_block) * s_tensor, one float32 multiply (fp4ref's "
                    "documented order); NaN scale 0x7F/0xFF -> NaN",
                    {"blocks": blocks, "scales": scales, "tensor_scale": tensor},
                    {"values": expected},
                    {"nibble_order": "low-first", "dtype": dtype},
                )
            )
    random_blocks = _inputs.random_bytes((4, 32), 13)
    random_scales = _inputs.random_bytes((4, 4), 14, 0x20, 0x60)
    tensor = np.float32(1 / 2688)
    for order in nibbles.NIBBLE_ORDERS:
        bits = int(np.array(tensor).view(np.uint32))
        expected = _dequantize(
            random_blocks,
            random_scales,
            order,
            "float32",
            lambda c, s, d, bits=bits: nvfp4.dequantize_block(c, s, bits, d),
        )
        cases.append(
            Case(
                f"random_{order}",
                f"random bytes [4, 32] in {order} order, K = 64",
                _NIBBLE_PINS[order],
                {
                    "blocks": random_blocks,
                    "scales": random_scales,
                    "tensor_scale": np.array(tensor),
                },
                {"values": expected},
                {"nibble_order": order, "dtype": "float32"},
            )
        )
    return cases


_DTYPES = "float32, bfloat16 or float16 [N, K] (or their uint32/uint16 bits)"
SUITES = [
    Suite(
        "nibble_pack",
        "pack",
        "(codes: uint8[r, k], *, order: str, block_size: int) -> uint8[r, k/2]",
        "pack codes in every nibble order",
        _pack_cases,
        ocp={"order": ("low-first",)},
    ),
    Suite(
        "nibble_unpack",
        "unpack",
        "(packed: uint8[r, k/2], *, order: str, block_size: int) -> uint8[r, k]",
        "unpack every byte in every nibble order",
        _unpack_cases,
        ocp={"order": ("low-first",)},
    ),
    Suite(
        "mxfp4_dequantize",
        "dequantize_mxfp4",
        f"(blocks: uint8[N, K/2], scales: uint8[N, K/32], *, nibble_order: str, dtype: str, "
        f"e8m0_decode: str = 'ocp') -> {_DTYPES}",
        "MXFP4 decode: all 256 scale bytes x 16 codes x 3 dtypes, nibble orders",
        _mxfp4_cases,
        ocp={"nibble_order": ("low-first",), "e8m0_decode": ("ocp",)},
    ),
    Suite(
        "nvfp4_dequantize",
        "dequantize_nvfp4",
        f"(blocks: uint8[N, K/2], scales: uint8[N, K/16], tensor_scale: float32[], *, "
        f"nibble_order: str, dtype: str) -> {_DTYPES}",
        "NVFP4 decode: all 256 E4M3 scales x 16 codes, 8 tensor scales, dtypes, orders",
        _nvfp4_cases,
        ocp={"nibble_order": ("low-first",)},
    ),
]
