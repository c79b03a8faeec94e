"""E8M0 (OCP MX v1.0 section 5.4.1): every byte."""

import ml_dtypes
import numpy as np
import pytest

import fp4ref
from fp4ref.spec import e8m0, tables

from .helpers import BACKENDS, bits


def _spec_value(byte: int) -> float:
    return float("nan") if byte == 0xFF else float.fromhex(f"0x1p{byte - 127}")


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_byte(backend):
    got = bits(fp4ref.decode_e8m0(np.arange(256, dtype=np.uint8), backend=backend))
    expected = np.array([_spec_value(b) for b in range(255)], np.float32)
    assert np.array_equal(got[:255], bits(expected))
    assert got[255] == 0x7FC00000


@pytest.mark.parametrize("backend", BACKENDS)
def test_special_bytes(backend):
    got = bits(fp4ref.decode_e8m0(np.array(list(tables.E8M0_SPECIAL), np.uint8), backend=backend))
    assert got.tolist() == [0x00400000, 0x00800000, 0x3F800000, 0x40000000, 0x7F000000, 0x7FC00000]


def test_oracle_and_ml_dtypes():
    theirs = np.arange(256, dtype=np.uint8).view(ml_dtypes.float8_e8m0fnu).astype(np.float64)
    ours = np.array([e8m0.decode(b) for b in range(256)])
    assert np.array_equal(ours, theirs, equal_nan=True)


def test_takes_an_ml_dtypes_array_as_its_bytes():
    scales = np.array([1.0, 2.0**-127, 0.5], np.float32).astype(ml_dtypes.float8_e8m0fnu)
    assert fp4ref.decode_e8m0(scales).tolist() == [1.0, 2.0**-127, 0.5]
