"""Quantization suites: MXFP4 under every scale rule, NVFP4 with both tensor-scale
directions, and one suite per named profile (:func:`fp4ref.profiles`).

The blocks are adversarial: amax at and just below powers of two, at 6 * 2^k and one ulp
either side, subnormal and zero blocks, NaN and Inf inside, the float32 extremes, and
elements on the element ties of the scale the rules pick. Expected bytes come from the
oracle (:func:`fp4ref.spec.mx.quantize_block`, :func:`fp4ref.spec.nvfp4.quantize_block`,
:func:`fp4ref.spec.nibbles.pack`), never from the numba kernels.
"""

from __future__ import annotations

import math

import numpy as np

from ...profiles import Profile, profiles
from ...spec import layouts, mx, nibbles, nvfp4, scale_rules
from ..model import Case, Suite
from . import _inputs

#: E2M1 ties as fractions of the element scale: every one, so each rule meets its own ties.
_TIES = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)


def _block(amax: float, size: int, seed: int, units: tuple[float, ...]) -> np.ndarray:
    """A block whose largest magnitude is the float32 ``amax``: ``amax``, ``-amax / 2``,
    the E2M1 ties of each unit in ``units`` (those not above amax, both signs), a zero, then
    seeded uniform values in ``[-amax, amax]``."""
    values = [amax, -amax / 2, 0.0]
    for unit in units:
        values += [s * t * unit for t in _TIES for s in (1, -1) if t * unit <= amax]
    values = values[:size]
    fill = _inputs.Stream(seed).uniform(-1, 1, size - len(values)) * amax
    block = np.concatenate([np.array(values, np.float64), fill]).astype(np.float32)
    block[np.abs(block) > np.float32(amax)] = np.float32(amax)  # float32 rounding of fill
    return block


def _units(amax: float) -> tuple[float, ...]:
    """Element scales the MX rules pick for ``amax``: the floor rule's and rceil's."""
    if not 0 < amax < math.inf:
        return ()
    mantissa, exponent = math.frexp(amax)  # amax = mantissa * 2^exponent, mantissa in [0.5, 1)
    floor = math.ldexp(1.0, exponent - 1 - 2)
    mantissa, exponent = math.frexp(amax / 6)
    rceil = math.ldexp(1.0, exponent - 1 if mantissa == 0.5 else exponent)
    return floor, rceil


def mx_blocks() -> np.ndarray:
    """The adversarial MXFP4 blocks, float32 [N, 32]."""
    below = np.nextafter
    amaxes = []
    for k in (
        -149,
        -140,
        -130,
        -128,
        -127,
        -126,
        -125,
        -124,
        -20,
        -1,
        0,
        1,
        2,
        3,
        20,
        100,
        125,
        126,
        127,
    ):
        power = np.float32(2.0**k)
        amaxes += [power, below(power, np.float32(0))]
    for k in (-128, -127, -20, 0, 1, 3, 20, 124, 125):
        six = np.float32(6 * 2.0**k)
        amaxes += [six, below(six, np.float32(0)), below(six, np.float32(np.inf))]
    amaxes.append(np.finfo(np.float32).max)
    blocks = [_block(float(a), 32, i, _units(float(a))) for i, a in enumerate(amaxes)]
    specials = np.ones((5, 32), np.float32)
    specials[0] = 0.0
    specials[1] = -0.0
    specials[2, 7] = np.nan
    specials[3, 0] = np.inf
    specials[4, 31] = -np.inf
    randoms = _inputs.Stream(99).log_uniform(-8, 8, 8 * 32).astype(np.float32).reshape(8, 32)
    return np.concatenate([np.stack(blocks), specials, randoms])


#: NVFP4 block-scale targets y = amax_b / (6 * s_t): E4M3 max and its overflow (464 is a
#: tie to 448), normal/subnormal boundary, subnormals, underflow, E4M3 ties.
_NV_TARGETS = (
    448.0,
    464.0,
    470.0,
    480.0,
    1000.0,
    2.0**-6,
    2.0**-7,
    2.0**-9,
    2.0**-10,
    2.0**-11,
    1.0625,
    1.1875,
    1.0,
    3.0,
    0.3,
)


def nv_blocks(decode: float) -> np.ndarray:
    """Adversarial NVFP4 blocks [N, 16] for the decode multiplier ``decode``."""
    blocks = []
    for i, y in enumerate(_NV_TARGETS):
        amax = float(np.float32(y * 6 * decode))
        unit = float(np.float32(amax / 6))
        blocks.append(_block(amax, 16, 200 + i, (unit,) if unit > 0 else ()))
    specials = np.full((4, 16), np.float32(decode * 6), np.float32)
    specials[0] = 0.0
    specials[1, 3] = np.nan
    specials[2, 0] = np.inf
    specials[3, 15] = -np.inf
    randoms = (_inputs.Stream(98).uniform(-100, 100, 6 * 16) * decode).astype(np.float32)
    randoms = randoms.reshape(6, 16)
    return np.concatenate([np.stack(blocks), specials, randoms])


def _mx_expected(
    x: np.ndarray,
    rule: str,
    rounding: str,
    zero_sign: str = "keep",
    start: str = "floor",
    min_byte: int = 0,
    lanes: int = 16,
    order: str = "low-first",
    hessian: list | None = None,
    zero_byte: int | None = None,
    nonfinite: str = "nan-scale",
    element_rule: str = "nearest",
    quirks: dict | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    scales, packed = [], []
    for row in x.reshape(-1, mx.BLOCK_SIZE):
        scale, codes = mx.quantize_block(
            [float(v) for v in row], rule, rounding, zero_sign, start, min_byte, lanes, hessian,
            zero_byte, nonfinite, element_rule, **(quirks or {}),
        )
        scales.append(scale)
        packed.append(nibbles.pack(codes, order, mx.BLOCK_SIZE))
    rows = x.shape[0]
    return (
        np.array(packed, np.uint8).reshape(rows, -1),
        np.array(scales, np.uint8).reshape(rows, -1),
    )


def _nv_operand(profile: Profile, stored: float) -> float:
    """The tensor-scale operand of the recipe: the stored value, or its float32 inverse
    when the recipe and the stored direction differ (fp4ref.quantize's rule)."""
    if not profile.tensor_scale:
        return 1.0
    if profile.tensor_scale_direction == "amax":  # MLX: E = float32(2688 / G)
        return float(np.float32(2688.0) / np.float32(stored))
    encode = profile.tensor_scale_direction == "encode"
    if (profile.nvfp4_recipe in ("compressed-tensors", "vllm")) == encode:
        return stored  # vLLM's ref_nvfp4_quant takes G, the encode scale, too
    return float(np.float32(1.0) / np.float32(stored))


def _nv_expected(
    x: np.ndarray,
    profile: Profile,
    stored: float,
    optimal: bool = False,
    hessian: list | None = None,
):
    operand = _nv_operand(profile, stored)
    scales, packed = [], []
    for row in x.reshape(-1, nvfp4.BLOCK_SIZE):
        scale, codes = nvfp4.quantize_block(
            [float(v) for v in row],
            profile.nvfp4_recipe,
            operand,
            profile.block_scale_clamp,
            profile.zero_block_scale,
            optimal,
            profile.rounding,
            profile.zero_sign,
            profile.nonfinite == "nan-scale",
            profile.sum_lanes,
            hessian,
            profile.nonfinite,
            profile.element_rule,
            profile.e4m3_encode,
        )
        scales.append(scale)
        packed.append(nibbles.pack(codes, profile.nibble_order, nvfp4.BLOCK_SIZE))
    rows = x.shape[0]
    return (
        np.array(packed, np.uint8).reshape(rows, -1),
        np.array(scales, np.uint8).reshape(rows, -1),
    )


_RULE_PINS = {
    "floor": "OCP MX v1.0 section 6.3: X = 2^(floor(log2 amax) - 2), exponent clamped at -127",
    "rceil": "NVIDIA cvt.rp ue8m0 / flashinfer / torchao RCEIL: 2^ceil(log2(f32(amax / 6)))",
    "ceil": "torchao CEIL: 2^(ceil(log2 amax) - 2)",
    "even": "torchao EVEN / AMD Quark / compressed-tensors: amax bits + 0x200000, then floor",
    "nearest": "2^round(log2(f32(amax / 6))) (MLX's source; MLX 0.32.4 on CPU runs mlx)",
    "mistralrs": "mistral.rs ISQ: floor(log2f(amax / 6)) + 127 in [0, 254], zero block 127",
    "qwantize": "qwantize 0.1.1 naive: floor(log2f(max(amax, 1e-30)) - 2 + 127) in [1, 254]",
    "ggml": "ggml / gguf-py: uint8(floor(log2f(amax)) - 2 + 127), wrapping below 2^-125",
    "exponent": "vLLM downcast_to_mxfp_torch ROUND_DOWN: the exponent field of f32(amax / 6)",
    "quark": "AMD Quark even_round: amax bits + 0x200000, floor(log2) - 2 clamped to "
             "[-127, 127] (exponent field 255 -> 0xFE)",
    "exponent-up": "vLLM downcast_to_mxfp_torch ROUND_UP: ((bits(f32(amax / 6)) + 0x7FFFFF) "
                   "& 0x7F800000) >> 23",
    "mlx": "MLX 0.32.4 CPU: X = 2^e, e = ceil(log2(f32(amax / 6))) exactly (0 for a zero "
    "quotient), stored uint8(e + 127), wrapping below 2^-127 (X is not the stored byte's)",
}


def _cross_check_floor(x: np.ndarray, blocks: np.ndarray, scales: np.ndarray) -> None:
    """The OCP floor rule again, from numpy's frexp and ml_dtypes' E2M1 cast; stops the
    generation on any disagreement with the oracle (finite blocks only)."""
    import ml_dtypes

    for row, packed, scale in zip(x, blocks, scales[:, 0], strict=True):
        if not np.all(np.isfinite(row)):
            continue
        amax = np.max(np.abs(row))
        exponent = int(np.frexp(amax)[1]) - 1 - 2 if amax > 0 else -127
        byte = max(exponent, -127) + 127
        with np.errstate(under="ignore"):
            quotient = row / np.float32(np.ldexp(1.0, byte - 127))
        codes = quotient.astype(ml_dtypes.float4_e2m1fn).view(np.uint8)
        if byte != scale or not np.array_equal(codes[0::2] | (codes[1::2] << 4), packed):
            raise RuntimeError(f"oracle and ml_dtypes disagree on the floor rule for {row}")


def _mx_cases() -> list[Case]:
    x = mx_blocks()
    cases = []
    runs = [(rule, "even") for rule in scale_rules.MX_RULES] + [
        ("floor", "away"),
        ("floor", "zero"),
    ]
    for rule, rounding in runs:
        blocks, scales = _mx_expected(x, rule, rounding)
        if (rule, rounding) == ("floor", "even"):
            _cross_check_floor(x, blocks, scales)
        cases.append(
            Case(
                f"{rule}_{rounding}",
                f"adversarial blocks (amax at/below 2^k, at 6*2^k +-1 ulp, subnormal, zero, "
                f"NaN/Inf, extremes) under scale rule {rule}, ties {rounding}",
                _RULE_PINS[rule] + "; elements f32(|V| / X) to E2M1, saturating; NaN/Inf block "
                "-> 0xFF and zero codes (fp4ref's documented policy); -0 keeps its sign",
                {"x": x},
                {"blocks": blocks, "scales": scales},
                {"scale_rule": rule, "rounding": rounding, "nonfinite": "nan-scale"},
            )
        )
    # nonfinite="gfloat" (gfloat 0.5 compute_scale_amax + encode_block, run): the rows
    # without NaN (Inf blocks -> 0xFE, V / 2^127), and the NaN rows, which it refuses
    finite_or_inf = x[~np.isnan(x).any(1)]
    for rule, rounding in runs:
        if rule != "floor":
            continue
        blocks, scales = _mx_expected(finite_or_inf, rule, rounding, nonfinite="gfloat")
        cases.append(Case(
            f"{rule}_{rounding}_gfloat",
            f"the adversarial blocks without NaN under scale rule {rule}, ties {rounding}, "
            "Inf blocks as gfloat codes them",
            _RULE_PINS[rule] + "; an Inf block gets 0xFE (floor(log2 Inf) - 2 clipped to "
            "127) and its elements f32(|V| / 2^127): Inf -> +-6 (gfloat 0.5 block.py, run)",
            {"x": finite_or_inf}, {"blocks": blocks, "scales": scales},
            {"scale_rule": rule, "rounding": rounding, "nonfinite": "gfloat"}))
    cases.append(Case(
        "nan_gfloat", "the adversarial blocks holding NaN, under nonfinite='gfloat'",
        "refused: gfloat 0.5 raises ValueError ('No NaN in format ocp_e2m1', run)",
        {"x": x[np.isnan(x).any(1)]}, {},
        {"scale_rule": "floor", "rounding": "even", "nonfinite": "gfloat"},
        error="a NaN in x must be refused (ValueError)"))
    return cases


#: NVFP4 tensor-scale cases: (name, stored value, direction, decode multiplier of the blocks).
_NV_TENSOR = (
    ("decode_one", 1.0, "decode", 1.0),
    ("decode_2688", float(np.float32(1 / 2688)), "decode", float(np.float32(1 / 2688))),
    ("decode_tiny", 2.0**-20, "decode", 2.0**-20),
    ("encode_2688", 2688.0, "encode", float(np.float32(1 / 2688))),
    ("encode_one", 1.0, "encode", 1.0),
)


def _nv_cases() -> list[Case]:
    ocp = profiles()["ocp"]
    cases = []
    for name, stored, direction, decode in _NV_TENSOR:
        x = nv_blocks(decode)
        profile = ocp.with_options(tensor_scale_direction=direction)
        blocks, scales = _nv_expected(x, profile, stored)
        cases.append(
            Case(
                name,
                f"blocks whose E4M3 scale overflows (464 tie, 470, 1000), is subnormal or "
                f"underflows, E4M3 ties, zero/NaN/Inf blocks; tensor scale {stored!r} given as "
                f"the {direction} direction",
                "NVIDIA NVFP4 (OCP profile): s_b = e4m3(f32(amax_b / f32(6 * s_t))) RNE "
                "saturating, elements f32(|x| / f32(s_b * s_t)) RNE; zero block -> scale 0; "
                "NaN/Inf block -> 0x7F; an encode-direction G stands for s_t = f32(1 / G)",
                {"x": x, "tensor_scale": np.array(stored, np.float32)},
                {"blocks": blocks, "scales": scales},
                {"tensor_scale_direction": direction},
            )
        )
    return cases


def _stored(scales: np.ndarray, profile: Profile) -> np.ndarray:
    """``scales`` [N, C] in the profile's scale layout (flat bytes when swizzled)."""
    if profile.scale_layout == "linear":
        return scales
    return np.array(layouts.swizzle(scales.tolist(), profile.scale_layout), np.uint8)


def activations(block: int) -> tuple[np.ndarray, list[list[float]]]:
    """Activations X [8, block] of small integers, and H = X^T X: exact in any summation
    order, so every implementation sees the same Hessian."""
    x = np.array(_inputs.Stream(7).integers(-3, 4, 8 * block), np.float32).reshape(8, block)
    rows = x.astype(int).tolist()
    hessian = [[float(sum(r[i] * r[j] for r in rows)) for j in range(block)] for i in range(block)]
    return x, hessian


def _qwantize_search_cases(name: str, profile: Profile) -> list[Case]:
    """qwantize's optimal and Hessian-weighted searches, MXFP4 and NVFP4."""
    cases = []
    start = profile.scale_rule
    for fmt, block in (("mxfp4", 32), ("nvfp4", 16)):
        x = mx_blocks() if fmt == "mxfp4" else nv_blocks(1.0)
        acts, hessian = activations(block)
        for rule in ("optimal", "optimal-hessian"):
            weights = hessian if rule == "optimal-hessian" else None
            if fmt == "mxfp4":
                if rule == "optimal":
                    continue  # the mxfp4_optimal case of the profile suite
                blocks, scales = _mx_expected(
                    x,
                    rule,
                    profile.rounding,
                    profile.zero_sign,
                    start,
                    profile.e8m0_min,
                    profile.sum_lanes,
                    profile.nibble_order,
                    weights,
                )
            else:
                blocks, scales = _nv_expected(x, profile, 1.0, True, weights)
            inputs = {"x": x, "tensor_scale": np.array(1.0, np.float32)}
            if weights is not None:
                inputs["activations"] = acts
            cases.append(
                Case(
                    f"{fmt}_{rule.replace('-', '_')}",
                    f"{fmt} blocks under profile {name} with the {rule} scale search"
                    + (" (H = X^T X of small-integer activations X [8, B])" if weights else ""),
                    profile.description,
                    inputs,
                    {"blocks": blocks, "scales": scales},
                    {"format": fmt, "profile": name, "scale_rule": rule},
                    profile=name,
                )
            )
    return cases


def _profile_suite(name: str, profile: Profile) -> Suite:
    def build() -> list[Case]:
        cases = []
        x = mx_blocks()
        runs = [(profile.scale_rule, {})]
        if name == "qwantize":
            runs.append(("optimal", {"scale_rule": "optimal"}))
        for rule, extra in runs:
            start = profile.scale_rule if profile.scale_rule in scale_rules.MX_RULES else "floor"
            blocks, scales = _mx_expected(
                x,
                rule,
                profile.rounding,
                profile.zero_sign,
                start,
                profile.e8m0_min,
                profile.sum_lanes,
                profile.nibble_order,
                zero_byte=profile.mx_zero_block_scale,
                nonfinite=profile.nonfinite,
                element_rule=profile.element_rule,
                quirks={"element_scale": profile.mx_element_scale,
                        "stored_min": profile.e8m0_stored_min},
            )
            label = "mxfp4" + ("_optimal" if extra else "")
            cases.append(
                Case(
                    label,
                    f"adversarial MXFP4 blocks under profile {name}"
                    + (" with the optimal scale search" if extra else ""),
                    profile.description,
                    {"x": x, "tensor_scale": np.array(1.0, np.float32)},
                    {"blocks": blocks, "scales": _stored(scales, profile)},
                    {"format": "mxfp4", "profile": name, **extra},
                    profile=name,
                )
            )
        if profile.nvfp4_recipe is not None:
            decode = float(np.float32(1 / 2688)) if profile.tensor_scale else 1.0
            encode = profile.tensor_scale_direction == "encode"
            stored = (2688.0 if encode else decode) if profile.tensor_scale else 1.0
            if profile.tensor_scale_direction == "amax":  # MLX: G = 1 decodes as 1 / 2688
                stored = 1.0
            x = nv_blocks(decode)
            blocks, scales = _nv_expected(x, profile, stored)
            cases.append(
                Case(
                    "nvfp4",
                    f"adversarial NVFP4 blocks under profile {name}, tensor scale "
                    f"{stored!r} as stored by it",
                    profile.description,
                    {"x": x, "tensor_scale": np.array(stored, np.float32)},
                    {"blocks": blocks, "scales": _stored(scales, profile)},
                    {"format": "nvfp4", "profile": name},
                    profile=name,
                )
            )
        if name == "qwantize":
            cases += _qwantize_search_cases(name, profile)
        return cases

    return Suite(
        f"profile_{name.replace('-', '_')}",
        "quantize_profile",
        "(x: float32[N, K], tensor_scale: float32[][, activations: float32[T, K]], *, "
        "format: str, profile: str[, scale_rule: str]) -> (blocks: uint8[N, K/2] in the "
        "profile's nibble order, "
        "scales: uint8 in the profile's scale layout, compared flat)",
        f"quantize under the {name} profile",
        build,
        ocp={"profile": ("ocp",)},
    )


_QUANT = "-> (blocks: uint8[N, K/2] low-first, scales: uint8[N, K/B])"
SUITES = [
    Suite(
        "mxfp4_quantize",
        "quantize_mxfp4",
        f"(x: float32[N, K], *, scale_rule: str, rounding: str, nonfinite: str) {_QUANT}",
        "MXFP4 quantize: adversarial blocks under every scale rule, 3 tie rules, NaN/Inf "
        "blocks as fp4ref and as gfloat code them",
        _mx_cases,
        ocp={"scale_rule": ("floor",), "rounding": ("even",), "nonfinite": ("nan-scale",)},
    ),
    Suite(
        "nvfp4_quantize",
        "quantize_nvfp4",
        f"(x: float32[N, K], tensor_scale: float32[], *, tensor_scale_direction: str) {_QUANT}",
        "NVFP4 quantize: E4M3 overflow/subnormal scales, zero/NaN/Inf blocks, both "
        "tensor-scale directions",
        _nv_cases,
    ),
    *(_profile_suite(name, profile) for name, profile in profiles().items()),
]
