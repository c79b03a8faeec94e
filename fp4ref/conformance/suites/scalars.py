"""Scalar codec suites: E2M1, E8M0 and E4M3, each direction, every code and edge.

Expected values come from :mod:`fp4ref.spec` (exact arithmetic) and are cross-checked
against ml_dtypes where ml_dtypes implements the same rule (:func:`_agree`), so a
generation that disagrees with an independent implementation stops.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from ...spec import e2m1, e4m3, e8m0, rounding
from ...spec.rounding import exact_to_float32_bits
from ..model import Case, Suite
from . import _inputs

_TIE_PINS = {
    "even": "OCP MX v1.0 section 5.3.3 / OFP8 v1.0: round to nearest, ties to even",
    "away": "ties away from zero (mistral.rs, microxcaling 'nearest', older triton_kernels)",
    "zero": "ties toward zero (qwantize, ggml/gguf-py, ModelOpt MXFP4)",
}


def _decoded(decode, count: int) -> np.ndarray:
    """float32 values of every code 0..count-1 under the oracle ``decode``."""
    return np.array([exact_to_float32_bits(decode(c)) for c in range(count)], np.uint32).view(
        np.float32
    )


def _agree(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    """Stop generation if the oracle and ml_dtypes disagree (NaN matches any NaN)."""
    ours_f, theirs_f = ours.astype(np.float64), theirs.astype(np.float64)
    same = (ours.view(f"u{ours.itemsize}") == theirs.view(f"u{theirs.itemsize}")) | (
        np.isnan(ours_f) & np.isnan(theirs_f)
    )
    if not np.all(same):
        i = int(np.argmin(same))
        raise RuntimeError(
            f"oracle and ml_dtypes disagree on {what} at {i}: {ours[i]} vs {theirs[i]}"
        )


def _decode_case(count: int, decode, view, what: str, pins: str) -> list[Case]:
    codes = np.arange(count, dtype=np.uint8)
    expected = _decoded(decode, count)
    _agree(expected, codes.view(view).astype(np.float32), what)
    return [
        Case(
            "all_codes",
            f"every {what} code decodes to its exact float32 value",
            pins,
            {"codes": codes},
            {"values": expected},
        )
    ]


def _e2m1_decode() -> list[Case]:
    return _decode_case(
        16,
        e2m1.decode,
        ml_dtypes.float4_e2m1fn,
        "E2M1",
        "OCP MX v1.0 section 5.3.3 (code 0x8 is -0)",
    )


def _e8m0_decode() -> list[Case]:
    return _decode_case(
        256,
        e8m0.decode,
        ml_dtypes.float8_e8m0fnu,
        "E8M0",
        "OCP MX v1.0 section 5.4.1 (0x00 is 2^-127, 0xFF is NaN)",
    )


def _e4m3_decode() -> list[Case]:
    return _decode_case(
        256,
        e4m3.decode,
        ml_dtypes.float8_e4m3fn,
        "E4M3",
        "OCP OFP8 v1.0 E4M3 (0x7F/0xFF NaN, subnormals, max 448)",
    )


def _midpoints(magnitudes) -> np.ndarray:
    values = [float(m) for m, _ in magnitudes]
    return _inputs.float32([(a + b) / 2 for a, b in zip(values, values[1:], strict=False)])


def _e2m1_groups() -> dict[str, tuple[str, np.ndarray]]:
    values = _inputs.float32(e2m1.decode(c) for c in range(16))
    ties = _midpoints(e2m1.MAGNITUDES)
    return {
        "codes": ("every E2M1 value encodes to its own code (-0 to 0x8)", values),
        "ties": ("the seven halfway points, both signs", _inputs.both_signs(ties)),
        "boundaries": (
            "one and two ulps either side of every tie and every code value",
            _inputs.both_signs(_inputs.neighbours(np.concatenate([ties, values[:8]]), 2)),
        ),
        "saturation": (
            "magnitudes above 6 saturate to +-6 keeping the sign",
            _inputs.both_signs(_inputs.float32([6.5, 7, 8, 100, 1e30, 3.4e38])),
        ),
        "specials": (
            "NaN (signs, payloads), Inf, signed zeros, float32 subnormals, extremes",
            _inputs.specials(),
        ),
        "random": (
            "random float32 bit patterns and uniform values in [-8, 8]",
            np.concatenate([_inputs.random_bits(256, 1), _inputs.random_uniform(256, 8, 2)]),
        ),
    }


def _e2m1_encode() -> list[Case]:
    cases = []
    for group, (tests, x) in _e2m1_groups().items():
        for rule in rounding.TIE_RULES:
            codes = np.array([e2m1.encode(float(v), rule) for v in x], np.uint8)
            if rule == "even":
                finite = ~np.isnan(x)
                _agree(
                    codes[finite].view(ml_dtypes.float4_e2m1fn).astype(np.float32),
                    x[finite].astype(ml_dtypes.float4_e2m1fn).astype(np.float32),
                    f"E2M1 encode {group}",
                )
            pins = (
                _TIE_PINS[rule]
                + "; saturate to +-6 (section 5.3.3); NaN -> zero with the NaN's sign "
                "(fp4ref's documented choice)"
            )
            cases.append(
                Case(f"{group}_{rule}", tests, pins, {"x": x}, {"codes": codes}, {"rounding": rule})
            )
    return cases


def _e4m3_groups() -> dict[str, tuple[str, np.ndarray]]:
    finite = [b for b in range(256) if b & 0x7F != 0x7F]
    values = _inputs.float32(e4m3.decode(b) for b in finite)
    magnitudes = e4m3.MAGNITUDES  # includes 480 (0x7F read as finite): the overflow midpoint 464
    ties = _midpoints(magnitudes)
    return {
        "codes": ("every finite E4M3 value encodes to its own byte", values),
        "ties": (
            "every halfway point between adjacent magnitudes, 464 included, both signs",
            _inputs.both_signs(ties),
        ),
        "boundaries": (
            "one ulp either side of every halfway point",
            _inputs.both_signs(_inputs.neighbours(ties, 1)),
        ),
        "overflow": (
            "448, 464 and 480 with their neighbours, huge values and Inf, both signs",
            _inputs.both_signs(
                np.concatenate(
                    [
                        _inputs.float32([448, 464, 480, 496, 512, 1e4, 3.4e38, float("inf")]),
                        _inputs.neighbours(_inputs.float32([448, 464, 480]), 2),
                    ]
                )
            ),
        ),
        "subnormals": (
            "E4M3 subnormals and the underflow to zero (2^-10 is a tie), both signs",
            _inputs.both_signs(
                np.concatenate(
                    [
                        _inputs.float32(
                            [
                                2.0**-10,
                                2.0**-9,
                                3 * 2.0**-10,
                                2.0**-11,
                                2.0**-7,
                                7 * 2.0**-9,
                                15 * 2.0**-10,
                                2.0**-6,
                            ]
                        ),
                        _inputs.neighbours(_inputs.float32([2.0**-10, 3 * 2.0**-10]), 1),
                    ]
                )
            ),
        ),
        "specials": (
            "NaN (signs, payloads), Inf, signed zeros, float32 subnormals, extremes",
            _inputs.specials(),
        ),
        "random": (
            "random float32 bit patterns and log-uniform values in [2^-12, 2^10]",
            np.concatenate([_inputs.random_bits(256, 3), _random_log(256, 4)]),
        ),
    }


def _random_log(count: int, seed: int) -> np.ndarray:
    return _inputs.Stream(seed).log_uniform(-12, 10, count).astype(np.float32)


def _e4m3_encode() -> list[Case]:
    cases = []
    for group, (tests, x) in _e4m3_groups().items():
        for rule in rounding.TIE_RULES:
            for saturate in (True, False):
                codes = np.array([e4m3.encode(float(v), rule, saturate) for v in x], np.uint8)
                if rule == "even" and not saturate:  # ml_dtypes: RNE, NaN on overflow
                    keep = ~np.isnan(x)
                    _agree(
                        codes[keep].view(ml_dtypes.float8_e4m3fn).astype(np.float32),
                        x[keep].astype(ml_dtypes.float8_e4m3fn).astype(np.float32),
                        f"E4M3 encode {group}",
                    )
                overflow = "saturate to +-448" if saturate else "NaN on overflow"
                pins = f"{_TIE_PINS[rule]}; {overflow} (OFP8 v1.0 allows both); NaN keeps its sign"
                name = f"{group}_{rule}_{'sat' if saturate else 'nan'}"
                cases.append(
                    Case(
                        name,
                        tests,
                        pins,
                        {"x": x},
                        {"codes": codes},
                        {"rounding": rule, "saturate": saturate},
                    )
                )
    return cases


SUITES = [
    Suite(
        "e2m1_decode",
        "decode_e2m1",
        "(codes: uint8[n]) -> float32[n]",
        "E2M1 decode, all 16 codes",
        _e2m1_decode,
        elementwise=True,
    ),
    Suite(
        "e2m1_encode",
        "encode_e2m1",
        "(x: float32[n], *, rounding: str) -> uint8[n] codes",
        "E2M1 encode: codes, ties, +-1/2 ulp, saturation, NaN/Inf/-0/subnormals, 3 tie rules",
        _e2m1_encode,
        ocp={"rounding": ("even",)},
        elementwise=True,
    ),
    Suite(
        "e8m0_decode",
        "decode_e8m0",
        "(codes: uint8[n]) -> float32[n]",
        "E8M0 decode, all 256 bytes",
        _e8m0_decode,
        elementwise=True,
    ),
    Suite(
        "e4m3_decode",
        "decode_e4m3",
        "(codes: uint8[n]) -> float32[n]",
        "E4M3 decode, all 256 bytes",
        _e4m3_decode,
        elementwise=True,
    ),
    Suite(
        "e4m3_encode",
        "encode_e4m3",
        "(x: float32[n], *, rounding: str, saturate: bool) -> uint8[n] codes",
        "E4M3 encode: codes, ties, +-1 ulp, overflow both ways, subnormals, specials",
        _e4m3_encode,
        ocp={"rounding": ("even",), "saturate": (True, False)},
        elementwise=True,
    ),
]
