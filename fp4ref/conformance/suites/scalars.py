"""Scalar codec suites: E2M1, E8M0 and E4M3, each direction, every code and edge.

Expected values come from :mod:`fp4ref.spec` (exact arithmetic) and are cross-checked
against ml_dtypes where ml_dtypes implements the same rule (:func:`_agree`), so a
generation that disagrees with an independent implementation stops.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

from ...spec import e2m1, e4m3, e8m0, rounding
from ...spec.e2m1 import NAN_CODES as E2M1_NAN_CODES
from ...spec.e2m1 import SCALAR_ZERO_SIGNS
from ...spec.e4m3 import NAN_CODES as E4M3_NAN_CODES
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


#: NaN bit patterns of the ``nan`` group: both signs, quiet and signalling, and the
#: payloads where torchao's bit arithmetic (``nan="torchao"``) moves between codes 2, 3, 4.
_NAN_BITS = (0x7FC00000, 0x7F800001, 0x7F9FFFFF, 0x7FA00000, 0x7FA00001, 0x7FBFFFFF,
             0x7FC00001, 0x7FDFFFFF, 0x7FE00000, 0x7FFFFFFF)

_E2M1_NAN_PINS = {
    "sign": "a zero with the NaN's sign bit (fp4ref's documented choice)",
    "ml_dtypes": "a zero with the opposite sign (ml_dtypes 0.7 astype(float4_e2m1fn), run)",
    "torchao": "the NaN's float32 bits through the normal-number branch of torchao 0.18 "
               "f32_to_f4_unpacked (_f32_to_floatx_unpacked): codes 2..4 with the sign (run)",
    "compressed-tensors": "+0 whatever the sign (compressed-tensors 0.20 cast_to_fp4 gives "
                          "|x| * sign(x), a positive NaN, coded 0 by pack_fp4_to_uint8; run)",
    "refuse": "refused with ValueError (gfloat 0.5 encode_float: 'No NaN in format "
              "ocp_e2m1'; run)",
}
_ZERO_PINS = {
    "keep": "the sign of a zero code is the input's sign bit (-0.0 -> 0x8)",
    "negative": "a zero code is 0x8 only for inputs < 0, -0.0 -> 0x0 (compressed-tensors "
                "cast_to_fp4: x * torch.sign(x))",
    "drop": "a zero code is always 0x0 (ggml)",
}


def _e2m1_codes(x: np.ndarray, rule: str, zero_sign: str = "keep",
                nan: str = "sign") -> np.ndarray:
    bits = x.view(np.uint32)
    return np.array([e2m1.encode(float(v), rule, zero_sign, nan, int(b))
                     for v, b in zip(x, bits, strict=True)], np.uint8)


def _e2m1_encode() -> list[Case]:
    """The OCP cases (each group under each tie rule; ``zero_sign="keep"`` and
    ``nan="sign"`` named where the inputs make them matter, their results unchanged), the
    other ``zero_sign`` choices on the non-NaN inputs of each group where one matters (a
    variant may equal the "keep" case: it runs for the peers of that choice), and the NaN
    group under every ``nan`` choice."""
    cases = []
    for group, (tests, x) in _e2m1_groups().items():
        for rule in rounding.TIE_RULES:
            codes = _e2m1_codes(x, rule)
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
            params: dict[str, object] = {"rounding": rule}
            plain = x[~np.isnan(x)]
            if any(not np.array_equal(_e2m1_codes(plain, rule, zs), _e2m1_codes(plain, rule))
                   for zs in SCALAR_ZERO_SIGNS):
                params["zero_sign"] = "keep"
            if np.isnan(x).any():
                params["nan"] = "sign"
            cases.append(Case(f"{group}_{rule}", tests, pins, {"x": x}, {"codes": codes}, params))
            for zs in SCALAR_ZERO_SIGNS[1:] if "zero_sign" in params else ():
                codes = _e2m1_codes(plain, rule, zs)
                cases.append(Case(
                    f"{group}_{rule}_{zs}", f"{tests} (NaN left out), zero codes by {zs!r}",
                    f"{_TIE_PINS[rule]}; {_ZERO_PINS[zs]}", {"x": plain}, {"codes": codes},
                    {"rounding": rule, "zero_sign": zs}))
    nans = _inputs.both_signs(_inputs.from_bits(_NAN_BITS))
    for choice in E2M1_NAN_CODES:
        tests = "NaN of both signs, quiet and signalling, several payloads"
        params = {"rounding": "even", "nan": choice}
        if choice == "refuse":
            cases.append(Case(f"nan_{choice}", tests, _E2M1_NAN_PINS[choice], {"x": nans}, {},
                              params, error="x holds NaN: must be refused (ValueError)"))
            continue
        cases.append(Case(f"nan_{choice}", tests, _E2M1_NAN_PINS[choice], {"x": nans},
                          {"codes": _e2m1_codes(nans, "even", nan=choice)}, params))
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
    """Each group under each tie rule and overflow rule (``nan_byte="sign"`` named where a
    NaN comes out), and the ``nan_byte="gfloat"`` variant of every case where it differs
    (``nan_byte`` is :func:`fp4ref.encode_e4m3`'s ``nan``)."""
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
                params: dict[str, object] = {"rounding": rule, "saturate": saturate}
                variants = {}
                for choice in E4M3_NAN_CODES[1:]:
                    other = np.array([e4m3.encode(float(v), rule, saturate, choice) for v in x],
                                     np.uint8)
                    if not np.array_equal(other, codes):
                        variants[choice] = other
                if variants:
                    params["nan_byte"] = "sign"
                cases.append(Case(name, tests, pins, {"x": x}, {"codes": codes}, params))
                for choice, other in variants.items():
                    cases.append(Case(
                        f"{name}_{choice}", f"{tests}; every NaN byte 0xFF",
                        f"{_TIE_PINS[rule]}; {overflow}; NaN (input or overflow) -> 0xFF "
                        "whatever the sign (gfloat 0.5 encode_float, run)",
                        {"x": x}, {"codes": other}, {**params, "nan_byte": choice}))
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
        "(x: float32[n], *, rounding: str, zero_sign: str, nan: str) -> uint8[n] codes",
        "E2M1 encode: codes, ties, +-1/2 ulp, saturation, NaN/Inf/-0/subnormals, 3 tie rules, "
        "3 zero signs, 5 NaN codings",
        _e2m1_encode,
        ocp={"rounding": ("even",), "zero_sign": ("keep",), "nan": ("sign",)},
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
        "(x: float32[n], *, rounding: str, saturate: bool, nan_byte: str) -> uint8[n] codes",
        "E4M3 encode: codes, ties, +-1 ulp, overflow both ways, subnormals, specials, 2 NaN "
        "bytes",
        _e4m3_encode,
        ocp={"rounding": ("even",), "saturate": (True, False), "nan_byte": ("sign",)},
        elementwise=True,
    ),
]
