"""``fp4ref conformance identify``: planted configurations are named, garbage is not.

The implementations here are fp4ref itself under a profile with fields changed: the
expected answer is the planted change (by construction, not computed), and identify must
name it, or an equivalent named configuration with no more changes that agrees on every
probe block. The full one-field sweep is ``slow``; the peers are in
``tests/test_identify_peers.py`` (``-m peers``).
"""

import dataclasses

import numpy as np
import pytest

import fp4ref
from fp4ref.conformance import identify, probes
from fp4ref.conformance.identification import field_values, load
from fp4ref.profiles import FIELDS, get


def planted_quantizer(base, **changes):
    profile = dataclasses.replace(get(base), **changes)

    def quantize(x, *, format, tensor_scale):
        q = fp4ref.quantize(x, format=format, profile=profile, tensor_scale=tensor_scale,
                            backend="numba")
        return q.blocks, q.scales, q.stored_tensor_scale

    return quantize


def planted_decoder(base, **changes):
    profile = dataclasses.replace(get(base), **changes)

    def dequantize(blocks, scales, *, format, tensor_scale, dtype):
        return fp4ref.dequantize(blocks, scales, format=format, profile=profile,
                                 tensor_scale=tensor_scale, dtype=dtype, scale_layout="linear")

    return dequantize


def garbage(x, *, format, tensor_scale):
    rng = np.random.default_rng(x.size)
    block = 32 if format == "mxfp4" else 16
    return (rng.integers(0, 256, (x.shape[0], x.shape[1] // 2), dtype=np.uint8),
            rng.integers(0, 256, (x.shape[0], x.shape[1] // block), dtype=np.uint8),
            np.float32(1.0) if format == "nvfp4" else None)


def _outputs(profile, fmt, x, given):
    try:
        q = fp4ref.quantize(x, format=fmt, profile=profile, tensor_scale=given,
                            scale_layout="linear", backend="numba")
    except (ValueError, TypeError) as error:
        return type(error).__name__
    stored = q.stored_tensor_scale
    return (np.asarray(q.blocks).tobytes(), np.asarray(q.scales).tobytes(),
            None if stored is None else np.float32(stored).tobytes())


def same_everywhere(fmt, a, b):
    """Whether profiles ``a`` and ``b`` quantize alike on inputs identify never saw: N(0, 1)
    matrices of other seeds and shapes, and float32 of random bits (every binade, NaN,
    Inf), alone and scaled into the E2M1 range, with and without a given tensor scale."""
    rng = np.random.default_rng(20)
    bits = rng.integers(0, 2**32, (32, 256), dtype=np.uint64).astype(np.uint32)
    inputs = [(probes.gaussian((8, 512), seed), None) for seed in (10, 11)]
    inputs += [(bits.view(np.float32), None), (probes.gaussian((4, 64), 12) * 1e-3, None)]
    for x, _ in list(inputs):
        inputs.append((x, 0.01) if fmt == "nvfp4" else (x[:1], None))
    with np.errstate(all="ignore"):
        return all(_outputs(a, fmt, x, g) == _outputs(b, fmt, x, g) for x, g in inputs)


def assert_named(result, base, changes, fmt="mxfp4"):
    """No disagreement left; the planted change named, or an answer with no more changes
    that quantizes like it on inputs identify never saw (two choices that coincide)."""
    assert result.close and not result.disagreements, result.report()
    assert len(result.changes) <= len(changes), result.report()
    if (result.profile, result.changes) != (base, changes):
        planted = dataclasses.replace(get(base), **changes)
        if result.configuration.scale_layout != planted.scale_layout:  # compared linear
            planted = dataclasses.replace(planted, scale_layout=result.configuration.scale_layout)
        assert same_everywhere(fmt, planted, result.configuration), result.report()


SINGLE = [
    ("mxfp4", "quantize", "ocp", {"zero_sign": "drop"}),
    ("mxfp4", "quantize", "ocp", {"scale_rule": "ceil"}),
    ("mxfp4", "quantize", "ggml", {"rounding": "even"}),  # invisible under element_rule ggml
    ("nvfp4", "quantize", "modelopt", {"rounding": "away"}),
    ("mxfp4", "dequantize", "ocp", {"e8m0_decode": "inf"}),  # = profile modelopt's decode
]


@pytest.mark.parametrize(("fmt", "operation", "base", "changes"), SINGLE,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-{next(iter(c[3]))}" for c in SINGLE])
def test_one_field_changed_is_named(fmt, operation, base, changes):
    make = planted_quantizer if operation == "quantize" else planted_decoder
    result = identify(make(base, **changes), operation=operation, format=fmt, seeds=1)
    if operation == "quantize":
        assert_named(result, base, changes, fmt)
    else:
        assert result.close and not result.disagreements, result.report()
        assert len(result.changes) <= len(changes), result.report()


def test_exact_profile_has_no_changes():
    result = identify(planted_quantizer("qwantize"), format="mxfp4", seeds=1)
    assert (result.profile, result.changes, result.disagreements) == ("qwantize", {}, [])
    assert "profile 'qwantize'" in result.report() and "no disagreements" in result.report()


def test_two_fields_planted():
    changes = {"rounding": "away", "zero_sign": "drop"}
    result = identify(planted_quantizer("ocp", **changes), format="mxfp4", seeds=1)
    assert_named(result, "ocp", changes)
    assert result.changes and set(result.changes) <= {"rounding", "zero_sign"} | set(FIELDS)


def test_garbage_is_no_close_configuration():
    result = identify(garbage, format="mxfp4", seeds=1)
    assert not result.close
    assert result.answer.startswith("no close configuration")
    assert len(result.disagreements) == result.classes


def test_remaining_disagreement_is_shown_with_a_minimal_input():
    # a quirk no field expresses: every block's scale byte one higher than ocp's
    inner = planted_quantizer("ocp")

    def quirky(x, *, format, tensor_scale):
        blocks, scales, stored = inner(x, format=format, tensor_scale=tensor_scale)
        scales = scales.copy()
        big = np.abs(x).reshape(scales.shape + (-1,)).max(-1) >= 2.0 ** 100
        scales[big] ^= 1
        return blocks, scales, stored

    result = identify(quirky, format="mxfp4", seeds=1)
    assert result.close and result.profile == "ocp" and not result.changes, result.report()
    labels = {d.label for d in result.disagreements}
    assert labels and labels <= {"block-max-powers-and-6x2^k", "float32-max", "e8m0-near-0xfe",
                                 "infinities", "adversarial-blocks",
                                 "quotient-underflow"}, result.report()
    shown = result.disagreements[0]
    assert "one block" in shown.input and "scale" in shown.implementation, shown.text()


def test_scale_layout_is_read_from_the_bytes():
    """A quantizer that stores its scales 128x4-swizzled: the layout comes from the byte
    counts, not from a search, and the configuration names it."""
    result = identify(planted_quantizer("ocp", scale_layout="128x4"), format="mxfp4", seeds=1)
    assert result.close and not result.disagreements, result.report()
    assert result.configuration.scale_layout == "128x4" and len(result.changes) <= 1


def test_fewer_changes_win():
    # ocp with comfy's recipe, NaN/Inf arithmetic and nibble order, scales linear: profile
    # comfy (128x4 as named) with its layout changed is one change, not ocp's three
    impl = planted_quantizer("ocp", nvfp4_recipe="comfy", nonfinite="comfy",
                             nibble_order="high-first")
    result = identify(impl, format="nvfp4", seeds=1)
    assert (result.profile, result.changes) == ("comfy", {"scale_layout": "linear"}), (
        result.report())
    assert not result.disagreements


def test_a_refusal_is_compared():
    # gfloat's convention: NaN input raises (ValueError); fp4ref's nonfinite="gfloat" too
    result = identify(planted_quantizer("ocp", nonfinite="gfloat"), format="mxfp4", seeds=1)
    assert (result.profile, result.changes) == ("ocp", {"nonfinite": "gfloat"}), (
        result.report())
    assert not result.disagreements and not result.skipped


def test_deterministic():
    impl = planted_quantizer("ocp", rounding="zero")
    first, second = (identify(impl, format="mxfp4", seeds=1) for _ in range(2))
    assert first.answer == second.answer == "profile 'ocp', with rounding = 'zero'"
    assert first.evaluated == second.evaluated


def test_input_dtype_rounds_the_probes():
    seen = []
    inner = planted_quantizer("ocp")

    def half_only(x, *, format, tensor_scale):
        seen.append(x.copy())
        return inner(x, format=format, tensor_scale=tensor_scale)

    result = identify(half_only, format="mxfp4", seeds=1, input_dtype="float16")
    assert (result.profile, result.changes, result.disagreements) == ("ocp", {}, [])
    for x in seen:
        with np.errstate(over="ignore"):
            again = x.astype(np.float16).astype(np.float32)
        assert np.array_equal(again, x, equal_nan=True)
    with pytest.raises(ValueError, match="input_dtype"):
        identify(half_only, input_dtype="int8")


def test_scale_bytes_of_no_layout_are_refused():
    inner = planted_quantizer("ocp")

    def odd(x, *, format, tensor_scale):
        blocks, scales, stored = inner(x, format=format, tensor_scale=tensor_scale)
        return blocks, np.concatenate([scales.reshape(-1), [0]]).astype(np.uint8), stored

    with pytest.raises(ValueError, match="scale bytes.*no layout"):
        identify(odd, format="mxfp4", seeds=1)


def test_field_values_come_from_the_profiles():
    assert field_values("rounding") == ("even", "away", "zero")
    assert None in field_values("zero_block_scale") and 0.125 in field_values("zero_block_scale")
    assert 1 in field_values("e8m0_min")


def test_load_and_errors():
    assert load("numpy:abs") is np.abs
    with pytest.raises(ValueError, match="MODULE:FUNCTION"):
        load("numpy")
    with pytest.raises(ValueError, match="operation"):
        identify(garbage, operation="encode")


def test_cli(capsys):
    from fp4ref.cli import main

    status = main(["conformance", "identify", "--impl", "tests.test_identify:planted_ocp_drop",
                   "--format", "mxfp4", "--seeds", "1"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "mxfp4 quantize: profile 'ocp', with zero_sign = 'drop'" in out


planted_ocp_drop = planted_quantizer("ocp", zero_sign="drop")


def _single_changes():
    for fmt in ("mxfp4", "nvfp4"):
        for base in ("ocp", "modelopt", "qwantize"):
            profile = get(base)
            for name in FIELDS:
                for value in field_values(name):
                    if value != getattr(profile, name) and name != "scale_layout":
                        yield fmt, base, {name: value}


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "base", "changes"), list(_single_changes()))
def test_every_single_change_is_named(fmt, base, changes):
    try:
        impl = planted_quantizer(base, **changes)
        impl(np.ones((1, 32), np.float32), format=fmt, tensor_scale=None)
    except (ValueError, TypeError):
        pytest.skip("not a configuration fp4ref quantizes")
    result = identify(impl, format=fmt, seeds=1)
    assert_named(result, base, changes, fmt)
