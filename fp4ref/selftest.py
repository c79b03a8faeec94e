"""``fp4ref selftest``: every available backend against the spec's value tables and the
golden conformance vectors (:mod:`fp4ref.conformance`).

It first warms every numba path the README shows (:func:`fp4ref.warmup.warm_up`), and says
on stderr what it is doing whenever a stage takes more than a second."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from . import _progress, api, backends, warmup
from .spec import tables


def _float32_bits(values) -> np.ndarray:
    """float32 bits of exact table values; NaN as the canonical 0x7FC00000."""
    bits = np.array(values, np.float64).astype(np.float32).view(np.uint32)
    return np.where(np.isnan(np.array(values, np.float64)), np.uint32(0x7FC00000), bits)


def _check_e2m1_decode(backend: str) -> bool:
    got = api.decode_e2m1(np.arange(16, dtype=np.uint8), backend=backend).view(np.uint32)
    return np.array_equal(got, _float32_bits(tables.E2M1_VALUES))


def _check_e8m0_decode(backend: str) -> bool:
    got = api.decode_e8m0(np.arange(256, dtype=np.uint8), backend=backend).view(np.uint32)
    expected = [math.ldexp(1.0, e - 127) for e in range(255)] + [tables.NAN]
    specials = all(
        got[b] == _float32_bits([v])[0] for b, v in tables.E8M0_SPECIAL.items()
    )
    return specials and np.array_equal(got, _float32_bits(expected))


def _check_e4m3_decode(backend: str) -> bool:
    got = api.decode_e4m3(np.arange(256, dtype=np.uint8), backend=backend).view(np.uint32)
    return np.array_equal(got, _float32_bits(tables.E4M3_VALUES))


def _check_e2m1_encode(backend: str) -> bool:
    ok = True
    for column, rule in enumerate(api.rounding_rules()):
        ties = np.array(list(tables.E2M1_TIES), np.float32)
        expected = [codes[column] for codes in tables.E2M1_TIES.values()]
        ok &= api.encode_e2m1(ties, rule, backend=backend).tolist() == expected
        ok &= api.encode_e2m1(-ties, rule, backend=backend).tolist() == [c | 8 for c in expected]
    inputs = np.array([x for x, _ in tables.E2M1_ENCODE_CASES], np.float64)
    ok &= api.encode_e2m1(inputs, backend=backend).tolist() == [
        c for _, c in tables.E2M1_ENCODE_CASES]
    values = np.array(tables.E2M1_VALUES, np.float32)
    return bool(ok and api.encode_e2m1(values, backend=backend).tolist() == list(range(16)))


def _check_e4m3_encode(backend: str) -> bool:
    ok = True
    for x, rule, saturate, byte in tables.E4M3_ENCODE_CASES:
        got = api.encode_e4m3(np.array([x], np.float64), rule, saturate, backend=backend)
        ok &= int(got[0]) == byte
    finite = [b for b in range(256) if b & 0x7F != 0x7F]
    values = np.array([tables.E4M3_VALUES[b] for b in finite], np.float32)
    return bool(ok and api.encode_e4m3(values, backend=backend).tolist() == finite)


def _check_mxfp4_dequantize(backend: str) -> bool:
    ok = True
    for scale, codes, expected in tables.MXFP4_DEQUANTIZE_CASES:
        row = np.zeros(32, np.uint8)
        row[: len(codes)] = codes
        blocks = api.pack(row[None, :], backend=backend)
        got = api.dequantize(blocks, np.array([[scale]], np.uint8), backend=backend)
        ok &= np.array_equal(got.view(np.uint32)[0, : len(codes)], _float32_bits(expected))
    return bool(ok)


#: (name, check) pairs, in the order the table prints them.
CHECKS: list[tuple[str, Callable[[str], bool]]] = [
    ("E2M1 decode, 16 codes", _check_e2m1_decode),
    ("E8M0 decode, 256 bytes", _check_e8m0_decode),
    ("E4M3 decode, 256 bytes", _check_e4m3_decode),
    ("E2M1 encode, ties x 3 rules", _check_e2m1_encode),
    ("E4M3 encode, edges", _check_e4m3_encode),
    ("MXFP4 dequantize, table blocks", _check_mxfp4_dequantize),
]


def conformance_rows(
    names: list[str], notes: list[str] | None = None
) -> list[tuple[str, list[str]]]:
    """One row per conformance suite: ``"pass"`` or ``"FAIL"`` for each backend.

    Uses the vectors :func:`fp4ref.conformance.locate` finds; without any, vectors freshly
    generated in memory (and a note saying so).
    """
    from pathlib import Path

    from . import conformance
    from .conformance import check, generate, impls, manifest

    try:
        vectors = conformance.load(conformance.locate())
        note = f"conformance vectors: {vectors.directory}"
    except FileNotFoundError as error:
        vectors = manifest.parse(generate.build(), Path("<generated>"))
        note = f"{error}; checked against freshly generated vectors instead"
    if notes is not None:
        notes.append(note)
    results = {}
    for name in names:
        with _progress.stage(f"fp4ref selftest: conformance vectors on {name}"):
            results[name] = check.run(vectors, impls.Backend(name))
    rows = []
    for i, suite in enumerate(vectors.suites()):
        label = f"conformance {suite['name']} ({len(suite['cases'])} cases)"
        rows.append((label, ["FAIL" if results[name][i].failed else "pass" for name in names]))
    return rows


def run(
    backend_names: list[str] | None = None, notes: list[str] | None = None
) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Run every check and conformance suite on every backend; returns (backends, rows of
    (check, results)). ``notes`` collects lines to print under the table."""
    names = backend_names or backends.available()
    if "numba" in names:  # every path the README shows, so that later calls are quick
        with _progress.stage("fp4ref selftest: loading the numba kernels"):
            warmup.warm_up()
    rows = []
    for label, check in CHECKS:
        results = []
        for name in names:
            try:
                results.append("pass" if check(name) else "FAIL")
            except Exception as error:  # a crash is a failure of that backend, reported
                results.append(f"ERROR {type(error).__name__}")
        rows.append((label, results))
    return names, rows + conformance_rows(names, notes)
