"""E2M1 (OCP MX v1.0 section 5.3.3): every code, every tie, ml_dtypes on 10^6 values."""

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fp4ref
from fp4ref.spec import e2m1, tables

from .helpers import BACKENDS, around, bits, float32_all_magnitudes

# The grid points and the midpoints between them, written out from the spec's value list.
GRID = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]
MIDPOINTS = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0]


def test_oracle_decodes_every_code_to_the_spec_table():
    for code, value in enumerate(tables.E2M1_VALUES):
        got = e2m1.decode(code)
        assert got == value and math.copysign(1, got) == math.copysign(1, value)


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_every_code(backend):
    got = fp4ref.decode_e2m1(np.arange(16, dtype=np.uint8), backend=backend)
    assert np.array_equal(bits(got), bits(np.array(tables.E2M1_VALUES, np.float32)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("column,rule", list(enumerate(("even", "away", "zero"))))
def test_each_tie_rule_on_the_seven_ties(backend, column, rule):
    ties = np.array(list(tables.E2M1_TIES), np.float32)
    expected = np.array([codes[column] for codes in tables.E2M1_TIES.values()], np.uint8)
    assert np.array_equal(fp4ref.encode_e2m1(ties, rule, backend=backend), expected)
    assert np.array_equal(fp4ref.encode_e2m1(-ties, rule, backend=backend), expected | 8)


@pytest.mark.parametrize("backend", BACKENDS)
def test_encode_table_cases(backend):
    inputs = np.array([x for x, _ in tables.E2M1_ENCODE_CASES], np.float64)
    expected = [c for _, c in tables.E2M1_ENCODE_CASES]
    assert fp4ref.encode_e2m1(inputs, backend=backend).tolist() == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_encodes_to_a_zero_with_its_sign(backend):
    nans = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFBFFFFF], np.uint32).view(np.float32)
    assert fp4ref.encode_e2m1(nans, backend=backend).tolist() == [0x0, 0x8, 0x0, 0x8]


def _ml_dtypes_e2m1(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", over="ignore"):  # infinities saturate, as they should
        return x.astype(ml_dtypes.float4_e2m1fn).view(np.uint8)


def test_numba_matches_ml_dtypes_on_a_million_values_and_every_boundary():
    values = np.concatenate([
        float32_all_magnitudes(1_000_000),
        around(GRID + MIDPOINTS + [6.0, 7.0, 1e30, 2.0**-126, 2.0**-149], ulps=2),
        np.array([np.inf, -np.inf], np.float32),
    ])
    values = values[~np.isnan(values)]  # ml_dtypes turns NaN into a zero of flipped sign
    assert np.array_equal(fp4ref.encode_e2m1(values, backend="numba"), _ml_dtypes_e2m1(values))


def test_python_oracle_matches_ml_dtypes_on_boundaries_and_a_sample():
    values = np.concatenate([around(GRID + MIDPOINTS, ulps=1), float32_all_magnitudes(3000, 1)])
    values = values[~np.isnan(values)]
    assert np.array_equal(fp4ref.encode_e2m1(values, backend="python"), _ml_dtypes_e2m1(values))


@pytest.mark.parametrize("rule", ("even", "away", "zero"))
def test_python_and_numba_agree_on_every_input_kind(rule):
    values = np.concatenate([float32_all_magnitudes(4000, 2), around(MIDPOINTS, 2)])
    expected = fp4ref.encode_e2m1(values, rule, backend="python")
    assert np.array_equal(fp4ref.encode_e2m1(values, rule, backend="numba"), expected)
    with np.errstate(invalid="ignore"):  # NaN inputs stay NaN
        wide = values.astype(np.float64) * (1 + 2.0**-40)  # float64 inputs are taken exactly
    assert np.array_equal(
        fp4ref.encode_e2m1(wide, rule, backend="numba"),
        fp4ref.encode_e2m1(wide, rule, backend="python"),
    )


def test_float64_input_is_not_rounded_to_float32_first():
    just_above_tie = np.array([0.25 + 2.0**-40, 2.5 + 2.0**-40], np.float64)
    assert fp4ref.encode_e2m1(just_above_tie).tolist() == [0x1, 0x5]


def test_float16_and_bfloat16_inputs_widen_exactly():
    for dtype in (np.float16, ml_dtypes.bfloat16):
        ties = np.array(MIDPOINTS, dtype)
        assert fp4ref.encode_e2m1(ties).tolist() == [0, 2, 2, 4, 4, 6, 6]


@given(st.integers(0, 15), st.sampled_from(("even", "away", "zero")))
def test_encode_of_a_decoded_code_is_the_code(code, rule):
    value = fp4ref.decode_e2m1(np.array([code], np.uint8))
    assert fp4ref.encode_e2m1(value, rule).tolist() == [code]


@given(st.floats(allow_nan=False, width=32), st.sampled_from(("even", "away", "zero")))
def test_sign_symmetry(x, rule):
    pair = np.array([x, -x], np.float32)
    positive, negative = fp4ref.encode_e2m1(pair, rule).tolist()
    assert negative == positive ^ 0x8


@given(
    st.floats(allow_nan=False, width=32), st.floats(allow_nan=False, width=32),
    st.sampled_from(("even", "away", "zero")),
)
def test_monotonic(x, y, rule):
    low, high = sorted((x, y))
    codes = fp4ref.encode_e2m1(np.array([low, high], np.float32), rule)
    values = fp4ref.decode_e2m1(codes)
    assert values[0] <= values[1]
