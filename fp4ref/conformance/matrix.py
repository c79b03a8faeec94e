"""``fp4ref conformance matrix``: which suites each installed peer passes, under the OCP
profile (the peer as it is, on the OCP cases) and under its own conventions (the cases
whose parameters are the peer's, including the profile suite fp4ref names after it),
with the first disagreement of each failure. See :mod:`fp4ref.conformance.peers`.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from . import check, peers
from .manifest import Vectors
from .peers import probing

#: Distributions whose versions the matrix records.
_DISTRIBUTIONS = {
    "ml_dtypes": "ml_dtypes",
    "torch": "torch",
    "gfloat": "gfloat",
    "torchao": "torchao",
    "gguf": "gguf",
    "qwantize": "qwantize",
    "compressed-tensors": "compressed-tensors",
    "modelopt": "nvidia-modelopt",
    "mlx": "mlx",
    "comfy-kitchen": "comfy-kitchen",
    "quark": "amd-quark",
    "mistralrs": "mistralrs",
}


@dataclass
class Row:
    suite: str
    ocp: str
    own: str
    disagreement: str


@dataclass
class PeerResult:
    name: str
    version: str
    own: str
    rows: list[Row]
    missing: bool = False


def _version(name: str, peer) -> str:
    if name not in _DISTRIBUTIONS:  # built or unpacked by .ci/peers: the adapter knows
        return peer.version
    try:
        return importlib.metadata.version(_DISTRIBUTIONS[name])
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _probes(peer) -> list[Row]:
    """One row per format the peer has a profile for: probing's block comparisons."""
    rows = []
    for fmt, profile in peer.profiles.items():
        result = probing.compare(peer, fmt)
        total = result.random + result.edge
        own = f"FAIL {result.failed}/{total}" if result.failed else f"pass {total}/{total}"
        first = ", ".join(sorted(result.disagreements))
        text = first if len(first) <= 220 else first[:217] + "..."
        rows.append(Row(f"probes {fmt} ({profile})", "-", own, text))
    return rows


def _first(result: check.SuiteResult) -> str:
    failure = result.first_failure()
    if failure is None:
        return ""
    detail = failure.detail[0] if failure.detail else ""
    text = f"{failure.case}: {detail}"
    return text if len(text) <= 220 else text[:217] + "..."


def names() -> list[str]:
    """The peers' names, in the matrix's order."""
    return [cls.name for cls in peers.PEERS]


def build(vectors: Vectors, only: list[str] | None = None, nan: str = "any") -> list[PeerResult]:
    """Run every available peer (or those named in ``only``) on the vectors.

    ``nan="any"`` (the default here) lets any NaN match, so NaN payloads and signs, which
    most peers do not canonicalize, do not hide the first semantic disagreement. A name in
    ``only`` that is no peer's is a ``ValueError``. A suite the adapter lists in
    ``Peer.nondeterministic`` says why in its row when its own column fails.
    """
    unknown = sorted(set(only or ()) - set(names()))
    if unknown:
        raise ValueError(f"--peer: no peer {unknown[0]!r}; the peers are {names()}")
    out = []
    for cls in peers.PEERS:
        if only and cls.name not in only:
            continue
        try:
            peer = cls()
        except ImportError:
            out.append(PeerResult(cls.name, "-", cls.own, [], missing=True))
            continue
        peer.lenient = True
        ocp = check.run(vectors, peer, ocp_only=True, nan=nan)
        peer.lenient = False
        own = check.run(vectors, peer, nan=nan)
        rows = []
        for o, w in zip(ocp, own, strict=True):
            if not o.ran and not w.ran:
                continue
            why = getattr(peer, "nondeterministic", {}).get(o.suite)
            text = _first(o) or _first(w)
            if w.failed and why:
                text = f"not deterministic: {why}; {text}"
            own = w.status
            if own == "skip" and peer.profiles:  # no case in its conventions: see below
                own = "n/a"
            rows.append(Row(o.suite, o.status, own, text))
        rows += _probes(peer)
        out.append(PeerResult(cls.name, _version(cls.name, peer), cls.own, rows))
    return out


def plain(results: list[PeerResult]) -> str:
    """The matrix as text tables, one per peer."""
    from .._table import format_table

    parts = []
    for peer in results:
        parts.append(f"== {peer.name} {peer.version}: {peer.own}")
        if peer.missing:
            parts.append("not installed here (skipped)\n")
            continue
        parts.append(
            format_table(
                ["suite", "OCP", "own", "first disagreement"],
                [[r.suite, r.ocp, r.own, r.disagreement] for r in peer.rows],
            )
        )
        parts.append("")
    return "\n".join(parts) + "\n"


def markdown(results: list[PeerResult]) -> str:
    """The matrix as the markdown page ``docs/conformance-matrix.md``."""
    lines = [
        "# Conformance matrix",
        "",
        "Generated by `fp4ref conformance matrix --markdown -o docs/conformance-matrix.md`, run",
        "in an environment with the peer libraries installed. Each peer library is driven",
        "through an adapter (`fp4ref/conformance/peers/`) against the golden vectors in",
        "`conformance/`.",
        "",
        "- **OCP**: the OCP cases of the suite (parameters inside the OCP choices), with the",
        "  peer run as it is: does the peer follow the OCP specs?",
        "- **own**: the cases whose parameters are the peer's own conventions (its tie rule,",
        "  scale rule, fp4ref profile...): does fp4ref's emulation of the peer agree with it?",
        "- NaN bit patterns are not compared here (any NaN matches any NaN); the checker",
        "  compares them by default (`fp4ref conformance check --nan exact`).",
        "- The own column differs from the OCP column only where a suite has a parameter for",
        "  the peer's convention (tie rule, scale rule, overflow rule, E2M1 `zero_sign` and",
        "  `nan` coding, E4M3 `nan_byte`, MXFP4 `nonfinite`, profile); elsewhere it repeats",
        "  the OCP expectation on every case the peer can run. A case the peer's convention",
        "  refuses (gfloat's NaN) passes when the peer raises `ValueError`.",
        "- `pass n/m` counts cases; `FAIL k/m` says k of the m cases run disagree; `skip` means",
        "  no case applies. The first disagreement shows the case, the element, fp4ref's",
        "  expected bits, the peer's bits (`0x-001`/`FFFF` marks an element the peer refused)",
        "  and the inputs.",
        "- `n/a` in the own column: the suite has no case written in the peer's conventions",
        "  (its cases vary one OCP parameter, while the peer departs from OCP on others); the",
        "  peer's whole conventions are checked by its `profile_<name>` suite and `probes`",
        "  rows, which run the fp4ref profile named after it.",
        "- `probes <format> (<profile>)` rows: the peer and the fp4ref profile named after it",
        "  on every probe of `fp4ref.conformance.probes` (edge classes), on seeded N(0, 1)",
        "  matrices and on every stored (scale byte, packed byte) pair",
        "  (`fp4ref.conformance.peers.probing`); the counts are block comparisons (codes and",
        "  scale per block, decoded bits per block and output dtype), and the disagreement",
        "  column lists the edge classes that differ (`<probe>/<what>`).",
        "",
    ]
    for peer in results:
        lines.append(f"## {peer.name} {peer.version}")
        lines.append("")
        lines.append(f"Adapter covers: {peer.own}.")
        lines.append("")
        if peer.missing:
            lines += ["Not installed where the matrix was generated.", ""]
            continue
        lines += ["| suite | OCP | own | first disagreement |", "|---|---|---|---|"]
        for r in peer.rows:
            text = r.disagreement.replace("|", "\\|")
            lines.append(f"| `{r.suite}` | {r.ocp} | {r.own} | {f'`{text}`' if text else ''} |")
        lines.append("")
    return "\n".join(lines)


def _sections(text: str) -> tuple[str, dict[str, str]]:
    """(the text before the first peer, each peer's ``## <name> <version>`` section)."""
    head, *parts = text.split("\n## ")
    return head, {part.split(None, 1)[0]: "## " + part.rstrip("\n") + "\n" for part in parts}


def update(existing: str, results: list[PeerResult]) -> str:
    """The markdown page ``existing`` with the sections of the peers in ``results``
    replaced (or added) and every other peer's section kept as it was: how a matrix run
    for some peers (``--peer``) updates ``docs/conformance-matrix.md``. The header is
    today's; the peers come in the matrix's order (unknown sections last)."""
    _, old = _sections(existing)
    head, new = _sections(markdown(results))
    merged = {**old, **new}
    order = [n for n in names() if n in merged] + [n for n in merged if n not in names()]
    return head.rstrip("\n") + "\n\n" + "\n".join(merged[n] for n in order)
