"""``manifest.json``: the index of the vectors, and reading the vectors back.

Schema (format version 1; every object's keys are sorted on disk)::

    {
      "format": "fp4ref-conformance",
      "format_version": 1,
      "generator": "fp4ref.conformance 1",
      "files": {"<file>": {"bytes": <int>, "sha256": "<hex>"}, ...},
      "suites": [
        {"name", "operation", "signature", "description",
         "file": "<suite>.safetensors", "text": "<suite>.txt" or null,
         "ocp": {"<param>": [allowed values]},
         "cases": [
           {"name", "tests", "pins", "profile", "params": {...}, "error": null or str,
            "inputs": [["<argument>", "<tensor name>"], ...],
            "expected": [["<result>", "<tensor name>"], ...]}]}]
    }
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError
from .files import read_safetensors

FORMAT = "fp4ref-conformance"
FORMAT_VERSION = 1
#: Bumped whenever the generator's output changes on purpose.
GENERATOR = "fp4ref.conformance 1"
MANIFEST = "manifest.json"


def tensor_name(case: str, role: str, arg: str) -> str:
    """The safetensors name of argument ``arg`` of ``case``; role ``"in"`` or ``"out"``."""
    return f"{case}.{role}.{arg}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dumps(manifest: dict) -> bytes:
    """The canonical bytes of a manifest: sorted keys, one-space indent, final newline."""
    return (json.dumps(manifest, sort_keys=True, indent=1) + "\n").encode("utf-8")


@dataclass(frozen=True)
class Vectors:
    """Vectors read from a directory: the manifest and each suite's tensors."""

    directory: Path
    manifest: dict
    tensors: dict[str, dict[str, np.ndarray]]

    def suites(self) -> list[dict]:
        return self.manifest["suites"]

    def arrays(self, suite: dict, case: dict, role: str) -> list[tuple[str, np.ndarray]]:
        """(name, array) of a case's ``"inputs"`` or ``"expected"``, in order."""
        tensors = self.tensors[suite["name"]]
        return [(arg, tensors[name]) for arg, name in case[role]]


def load(directory: str | Path) -> Vectors:
    """Read and verify the vectors in ``directory``.

    Raises
    ------
    FileNotFoundError
        If there is no manifest.
    FormatError
        If the manifest has another format or version, a file is missing, or a file's
        SHA-256 differs from the manifest's.
    """
    directory = Path(directory)
    index = json.loads((directory / MANIFEST).read_text("utf-8"))
    files = {}
    for name in index.get("files", {}):
        if not (directory / name).is_file():
            raise FormatError(f"{directory / MANIFEST}: lists {name}, which is missing")
        files[name] = (directory / name).read_bytes()
    files[MANIFEST] = (directory / MANIFEST).read_bytes()
    return parse(files, directory)


def parse(files: dict[str, bytes], directory: Path) -> Vectors:
    """Vectors from their files' bytes (name -> bytes), verified as :func:`load` does."""
    where = directory / MANIFEST
    index = json.loads(files[MANIFEST].decode("utf-8"))
    if index.get("format") != FORMAT or index.get("format_version") != FORMAT_VERSION:
        raise FormatError(f"{where}: not a {FORMAT} manifest of version {FORMAT_VERSION}")
    for name, entry in index["files"].items():
        if name not in files:
            raise FormatError(f"{where}: lists {name}, which is missing")
        if sha256(files[name]) != entry["sha256"]:
            raise FormatError(
                f"{directory / name}: SHA-256 differs from the manifest (modified or stale)"
            )
    tensors = {}
    for suite in index["suites"]:
        _, tensors[suite["name"]] = read_safetensors(
            files[suite["file"]], str(directory / suite["file"])
        )
    return Vectors(directory, index, tensors)
