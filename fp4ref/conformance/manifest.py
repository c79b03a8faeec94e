"""``manifest.json``: the index of the vectors, and reading the vectors back.

Schema (format version 1; every object's keys are sorted on disk)::

    {
      "format": "fp4ref-conformance",
      "format_version": 1,
      "generator": "fp4ref.conformance 2",
      "manifest_sha256": "<hex>",
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

``manifest_sha256`` protects the manifest itself (suites deleted or edited, a truncated
file): it is the SHA-256 of the manifest's own bytes with its 64 hex digits replaced by 64
``0`` characters (:func:`self_hash`). Every other file is protected by its entry in
``files``, and every file listed there must belong to a suite (or be the README).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FormatError
from .files import read_safetensors

FORMAT = "fp4ref-conformance"
FORMAT_VERSION = 1
#: Bumped whenever the generator's output changes on purpose.
GENERATOR = "fp4ref.conformance 2"
MANIFEST = "manifest.json"
#: The manifest's own hash field, and the stand-in for its value when it is hashed.
SELF_HASH = "manifest_sha256"
_UNSET = "0" * 64
_SELF_HASH_FIELD = re.compile(rb'"manifest_sha256": "([0-9a-f]{64})"')


def tensor_name(case: str, role: str, arg: str) -> str:
    """The safetensors name of argument ``arg`` of ``case``; role ``"in"`` or ``"out"``."""
    return f"{case}.{role}.{arg}"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def dumps(manifest: dict) -> bytes:
    """The canonical bytes of a manifest: sorted keys, one-space indent, final newline, and
    ``manifest_sha256`` set to :func:`self_hash` of those bytes."""
    text = (json.dumps({**manifest, SELF_HASH: _UNSET}, sort_keys=True, indent=1) + "\n")
    data = text.encode("utf-8")
    field = f'"{SELF_HASH}": "{_UNSET}"'.encode()
    return data.replace(field, f'"{SELF_HASH}": "{self_hash(data)}"'.encode(), 1)


def self_hash(data: bytes) -> str:
    """The SHA-256 (hex) of manifest bytes ``data`` with the ``manifest_sha256`` value read
    as 64 ``0`` characters.

    Raises
    ------
    FormatError
        If ``data`` holds no ``"manifest_sha256": "<64 hex digits>"``, or more than one.
    """
    found = _SELF_HASH_FIELD.findall(data)
    if len(found) != 1:
        raise FormatError(f'{MANIFEST}: needs exactly one "{SELF_HASH}": "<64 hex digits>" '
                          f"(found {len(found)}); regenerate the vectors")
    return sha256(_SELF_HASH_FIELD.sub(f'"{SELF_HASH}": "{_UNSET}"'.encode(), data))


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
        If the manifest is not valid JSON of this format and version, its own hash does not
        match, a file is missing, or a file's SHA-256 differs from the manifest's.
    """
    directory = Path(directory)
    where = directory / MANIFEST
    if not where.is_file():
        raise FileNotFoundError(2, "no conformance manifest (pass --dir, or run `fp4ref "
                                "conformance generate DIR`)", str(where))
    files = {MANIFEST: where.read_bytes()}
    for name in _index(files[MANIFEST], where).get("files", {}):
        path = directory / name
        if not path.is_file():
            raise FormatError(f"{where}: lists {name}, which is missing")
        files[name] = path.read_bytes()
    return parse(files, directory)


def _index(data: bytes, where: Path) -> dict:
    """The manifest's JSON object, checked against its own hash."""
    try:
        index = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise FormatError(f"{where}: not UTF-8 JSON ({' '.join(str(error).split())})") from None
    if (not isinstance(index, dict) or index.get("format") != FORMAT
            or index.get("format_version") != FORMAT_VERSION):
        raise FormatError(f"{where}: not a {FORMAT} manifest of version {FORMAT_VERSION}")
    if index.get(SELF_HASH) != self_hash(data):
        raise FormatError(f"{where}: {SELF_HASH} does not match the manifest's bytes "
                          f"(edited, truncated or stale; regenerate the vectors)")
    return index


def _check_structure(index: dict, where: Path) -> None:
    """Every key the checker reads is there with the right type, and every listed file
    belongs to a suite."""
    def need(condition: bool, what: str) -> None:
        if not condition:
            raise FormatError(f"{where}: {what}")

    files, suites = index.get("files"), index.get("suites")
    need(isinstance(files, dict) and all(
        isinstance(e, dict) and isinstance(e.get("sha256"), str) for e in files.values()),
        'needs "files": {name: {"bytes", "sha256"}}')
    need(isinstance(suites, list) and suites, 'needs a non-empty "suites" list')
    owned = {"README.md"}
    for suite in suites:
        need(isinstance(suite, dict) and all(isinstance(suite.get(k), str) for k in (
            "name", "operation", "signature", "file")) and isinstance(suite.get("cases"), list)
            and isinstance(suite.get("text"), (str, type(None)))
            and isinstance(suite.get("ocp"), dict)
            and all(isinstance(v, list) for v in suite["ocp"].values()),
            f"suite entry {str(suite)[:60]!r} is malformed")
        need(suite["file"] in files, f"suite {suite['name']!r}: file {suite['file']} not listed")
        owned.update(name for name in (suite["file"], suite.get("text")) if name)
        for case in suite["cases"]:
            pairs = (case.get("inputs"), case.get("expected")) if isinstance(case, dict) else ()
            need(isinstance(case, dict) and isinstance(case.get("name"), str)
                 and isinstance(case.get("params"), dict)
                 and isinstance(case.get("error"), (str, type(None))) and all(
                     isinstance(p, list) and all(isinstance(x, list) and len(x) == 2 and all(
                         isinstance(y, str) for y in x) for x in p) for p in pairs),
                 f"suite {suite['name']!r}: case {str(case)[:60]!r} is malformed")
    stray = sorted(set(files) - owned)
    need(not stray, f"lists {stray} but no suite uses them (suites removed?)")


def parse(files: dict[str, bytes], directory: Path) -> Vectors:
    """Vectors from their files' bytes (name -> bytes), verified as :func:`load` does."""
    where = directory / MANIFEST
    index = _index(files[MANIFEST], where)
    _check_structure(index, where)
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
        for case in suite["cases"]:
            for _, name in case["inputs"] + case["expected"]:
                if name not in tensors[suite["name"]]:
                    raise FormatError(f"{directory / suite['file']}: has no tensor {name!r} "
                                      f"(suite {suite['name']!r}, case {case['name']!r})")
    return Vectors(directory, index, tensors)
