"""Golden conformance vectors: the generator, the manifest, the checker and the matrix.

The vectors live in the repository's top-level ``conformance/`` folder (safetensors files,
``manifest.json``, hex text twins, and a README that specifies the format for other
languages); a wheel installs a copy under ``<prefix>/share/fp4ref/conformance``.

- ``fp4ref conformance generate DIR``: write the vectors (byte-identical every time).
- ``fp4ref conformance check [--dir D] [--impl package.module:function]``: run fp4ref's
  backends, or your implementation, against them (signatures in :mod:`.impls`).
- ``fp4ref conformance identify --impl package.module:function``: which profile and
  fields your quantizer or dequantizer follows, and what still differs
  (:func:`identify`, :mod:`.identification`).
- ``fp4ref conformance matrix [--markdown]``: the same for the peer libraries installed
  here (:mod:`.peers`).

A suite is one :class:`~fp4ref.conformance.model.Suite` in :mod:`.suites`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .manifest import MANIFEST, Vectors, load

__all__ = ["Vectors", "identify", "load", "locate"]


def identify(impl, **options):
    """The fp4ref configuration closest to ``impl`` and what still differs: see
    :func:`fp4ref.conformance.identification.identify` (same arguments)."""
    from .identification import identify as run

    return run(impl, **options)

#: Environment variable naming a vectors directory (beats every other place).
ENV = "FP4REF_CONFORMANCE_DIR"
#: The top-level ``conformance/`` folder of a source checkout (editable installs).
CHECKOUT = Path(__file__).resolve().parents[2] / "conformance"


def candidates() -> list[Path]:
    """Where the vectors are looked for, in order."""
    places = []
    if os.environ.get(ENV):
        places.append(Path(os.environ[ENV]))
    places.append(CHECKOUT)
    places.append(Path(sys.prefix) / "share" / "fp4ref" / "conformance")  # an installed wheel
    places.append(Path.cwd() / "conformance")
    return places


def locate(directory: str | os.PathLike | None = None) -> Path:
    """The vectors directory: ``directory`` if given, else the first of :func:`candidates`
    holding a ``manifest.json``.

    Raises
    ------
    FileNotFoundError
        Naming every place looked at.
    """
    if directory is not None:
        path = Path(directory)
        if not (path / MANIFEST).is_file():
            raise FileNotFoundError(f"no {MANIFEST} in {path}")
        return path
    for path in candidates():
        if (path / MANIFEST).is_file():
            return path
    raise FileNotFoundError(
        "conformance vectors not found; looked in "
        + ", ".join(str(p) for p in candidates())
        + f" (set {ENV}, pass --dir, or run `fp4ref conformance generate DIR`)"
    )
