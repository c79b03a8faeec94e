"""``fp4ref conformance generate DIR``: write the vectors, byte-identically every time.

Determinism: the suites use fixed seeds and oracle arithmetic only; safetensors files are
written by :func:`~fp4ref.conformance.files.safetensors_bytes` (sorted names, fixed
metadata), JSON with sorted keys, and nothing records a time, a path or a host.
"""

from __future__ import annotations

from pathlib import Path

from ..io import atomic
from . import files, manifest, readme
from .model import Suite
from .suites import SUITES


def _suite_files(suite: Suite) -> tuple[dict, dict[str, bytes]]:
    """The manifest entry of ``suite`` and its files (name -> bytes)."""
    cases, tensors, names = [], {}, set()
    for case in suite.build():
        if case.name in names:
            raise RuntimeError(f"suite {suite.name}: duplicate case name {case.name!r}")
        names.add(case.name)
        entry = {
            "name": case.name,
            "tests": case.tests,
            "pins": case.pins,
            "profile": case.profile,
            "error": case.error,
            "params": dict(case.params),
            "inputs": [],
            "expected": [],
        }
        for role, key, arrays in (
            ("in", "inputs", case.inputs),
            ("out", "expected", case.expected),
        ):
            for arg, array in arrays.items():
                name = manifest.tensor_name(case.name, role, arg)
                tensors[name] = array
                entry[key].append([arg, name])
        cases.append(entry)
    entry = {
        "name": suite.name,
        "operation": suite.operation,
        "signature": suite.signature,
        "description": suite.description,
        "file": f"{suite.name}.safetensors",
        "text": f"{suite.name}.txt" if suite.elementwise else None,
        "ocp": {k: list(v) for k, v in suite.ocp.items()},
        "cases": cases,
    }
    metadata = {
        "format": manifest.FORMAT,
        "format_version": str(manifest.FORMAT_VERSION),
        "suite": suite.name,
    }
    out = {entry["file"]: files.safetensors_bytes(tensors, metadata)}
    if suite.elementwise:
        out[entry["text"]] = files.text_twin(entry, tensors).encode("ascii")
    return entry, out


def build(suites: list[Suite] | None = None) -> dict[str, bytes]:
    """Every file of the vectors (name -> bytes), ``manifest.json`` and ``README.md`` included."""
    entries, out = [], {}
    for suite in SUITES if suites is None else suites:
        entry, suite_files = _suite_files(suite)
        entries.append(entry)
        out.update(suite_files)
    out["README.md"] = readme.text(entries).encode("utf-8")
    index = {
        "format": manifest.FORMAT,
        "format_version": manifest.FORMAT_VERSION,
        "generator": manifest.GENERATOR,
        "files": {
            name: {"bytes": len(data), "sha256": manifest.sha256(data)}
            for name, data in sorted(out.items())
        },
        "suites": entries,
    }
    out[manifest.MANIFEST] = manifest.dumps(index)
    return out


def generate(directory: str | Path, suites: list[Suite] | None = None) -> dict[str, bytes]:
    """Write the vectors into ``directory`` (created if needed); returns what was written.

    The files are replaced together, once all are built and written
    (:func:`fp4ref.io.atomic.outputs`): a failure or a signal leaves the folder as it was.
    """
    directory = Path(directory)
    out = build(suites)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic.outputs():
        for name, data in out.items():
            atomic.write_bytes(directory / name, data)
    return out
