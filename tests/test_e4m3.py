"""E4M3 (OFP8 v1.0, "E4M3FN"): every byte, the edges, ml_dtypes on 10^6 values."""

import math

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import fp4ref
from fp4ref.spec import e4m3, tables

from .helpers import BACKENDS, around, bits, float32_all_magnitudes

FINITE = [b for b in range(256) if b & 0x7F != 0x7F]


def test_oracle_decodes_every_byte_to_the_spec_table():
    for byte, value in enumerate(tables.E4M3_VALUES):
        got = e4m3.decode(byte)
        if math.isnan(value):
            assert math.isnan(got)
        else:
            assert got == value and math.copysign(1, got) == math.copysign(1, value)


def test_spec_table_matches_ml_dtypes():
    ours = np.array(tables.E4M3_VALUES, np.float32)
    theirs = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e4m3fn).astype(np.float32)
    assert np.array_equal(ours, theirs, equal_nan=True)
    assert np.array_equal(np.signbit(ours[~np.isnan(ours)]), np.signbit(theirs[~np.isnan(theirs)]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_decode_every_byte(backend):
    got = fp4ref.decode_e4m3(np.arange(256, dtype=np.uint8), backend=backend)
    expected = np.array(tables.E4M3_VALUES, np.float32)
    expected[np.isnan(expected)] = np.uint32(0x7FC00000).view(np.float32)
    assert np.array_equal(bits(got), bits(expected))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", tables.E4M3_ENCODE_CASES, ids=str)
def test_encode_edges(backend, case):
    x, rule, saturate, byte = case
    got = fp4ref.encode_e4m3(np.array([x], np.float64), rule, saturate, backend=backend)
    assert int(got[0]) == byte


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_finite_value_encodes_to_itself(backend):
    values = np.array([tables.E4M3_VALUES[b] for b in FINITE], np.float32)
    for rule in ("even", "away", "zero"):
        assert fp4ref.encode_e4m3(values, rule, backend=backend).tolist() == FINITE


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_keeps_its_sign(backend):
    nans = np.array([0x7FC00000, 0xFFC00000], np.uint32).view(np.float32)
    for saturate in (True, False):
        assert fp4ref.encode_e4m3(nans, saturate=saturate, backend=backend).tolist() == [0x7F, 0xFF]


def _boundaries() -> np.ndarray:
    finite = np.array([tables.E4M3_VALUES[b] for b in FINITE if b < 0x80], np.float64)
    midpoints = (finite[:-1] + finite[1:]) / 2
    return around(np.concatenate([finite, midpoints, [464.0, 480.0, 512.0, 2.0**-10]]), ulps=2)


def test_numba_matches_ml_dtypes_on_a_million_values_and_every_boundary():
    values = np.concatenate([float32_all_magnitudes(1_000_000, 3), _boundaries()])
    values = values[~np.isnan(values)]
    theirs = values.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)  # RNE, overflow -> NaN
    assert np.array_equal(fp4ref.encode_e4m3(values, saturate=False, backend="numba"), theirs)
    saturated = np.where(theirs & 0x7F == 0x7F, (theirs & 0x80) | 0x7E, theirs)
    assert np.array_equal(fp4ref.encode_e4m3(values, saturate=True, backend="numba"), saturated)


def test_python_oracle_matches_ml_dtypes_on_every_boundary():
    values = _boundaries()
    theirs = values.astype(ml_dtypes.float8_e4m3fn).view(np.uint8)
    assert np.array_equal(fp4ref.encode_e4m3(values, saturate=False, backend="python"), theirs)


@pytest.mark.parametrize("rule", ("even", "away", "zero"))
@pytest.mark.parametrize("saturate", (True, False))
def test_python_and_numba_agree(rule, saturate):
    values = np.concatenate([float32_all_magnitudes(3000, 4), _boundaries()[::3]])
    expected = fp4ref.encode_e4m3(values, rule, saturate, backend="python")
    assert np.array_equal(fp4ref.encode_e4m3(values, rule, saturate, backend="numba"), expected)


@given(st.sampled_from(FINITE), st.sampled_from(("even", "away", "zero")))
def test_encode_of_a_decoded_byte_is_the_byte(byte, rule):
    value = fp4ref.decode_e4m3(np.array([byte], np.uint8))
    assert fp4ref.encode_e4m3(value, rule).tolist() == [byte]


@given(st.floats(allow_nan=False, width=32), st.sampled_from(("even", "away", "zero")),
       st.booleans())
def test_sign_symmetry(x, rule, saturate):
    positive, negative = fp4ref.encode_e4m3(np.array([x, -x], np.float32), rule, saturate).tolist()
    assert negative == positive ^ 0x80


@given(st.floats(allow_nan=False, width=32), st.floats(allow_nan=False, width=32),
       st.sampled_from(("even", "away", "zero")))
def test_monotonic_when_saturating(x, y, rule):
    low, high = sorted((x, y))
    values = fp4ref.decode_e4m3(fp4ref.encode_e4m3(np.array([low, high], np.float32), rule))
    assert values[0] <= values[1]
