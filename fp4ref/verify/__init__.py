"""``fp4ref verify``: every float32 input through every encoder and scale rule, and every
stored byte through every decoder, on every fast backend, against the spec layer.

::

    import fp4ref.verify
    report = fp4ref.verify.run(full=True)     # every input; a CI subset without full
    print(report.table())
    assert report.ok

The sweeps and why each covers all its inputs: ``docs/verify.md``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TextIO

from .runner import Result, oracle_steps, run_sweep, summary
from .sweeps import FAMILIES, all_sweeps

#: Sweep families: the float32 sweeps of :mod:`.sweeps`, then the decoders.
ALL_FAMILIES = (*FAMILIES, "decode")


@dataclass
class Report:
    """The results of :func:`run`, one per sweep and backend."""

    results: list[Result]
    full: bool

    @property
    def ok(self) -> bool:
        """Whether every sweep found no disagreement."""
        return all(r.disagreements == 0 for r in self.results)

    def table(self) -> str:
        """The summary table and the first disagreements."""
        return summary(self.results)


def choose_backends(requested: list[str] | None = None) -> list[str]:
    """The backends to sweep: ``requested``, or numba and, where a real GPU is present,
    cuda (the simulator runs one Python thread per GPU thread: name it to use it)."""
    from .. import available_backends

    if requested:
        for name in requested:
            if name not in ("numba", "cuda"):
                raise ValueError(f"backend must be 'numba' or 'cuda'; got {name!r}")
            if name not in available_backends():
                raise ValueError(f"backend {name!r} is not available here "
                                 f"({available_backends()})")
        return list(requested)
    found = ["numba"]
    if "cuda" in available_backends():
        from numba.cuda import config

        if not config.ENABLE_CUDASIM:
            found.append("cuda")
    return found


def _module(backend: str):
    if backend == "cuda":
        from . import cuda

        return cuda
    from . import cpu

    return cpu


def run(full: bool = False, *, backends: list[str] | None = None,
        families: tuple[str, ...] = ALL_FAMILIES, match: str | None = None,
        stride: int = 1 << 16, radius: int = 4,
        progress: TextIO | None = sys.stderr) -> Report:
    """Run the sweeps.

    Parameters
    ----------
    full : bool
        Every input of every sweep (minutes on a CPU); otherwise the CI subset: every
        ``stride``-th pattern and the ``radius`` patterns either side of every decision
        point and binade edge. Decoders always take every input.
    backends : list of str, optional
        ``"numba"``, ``"cuda"``; default :func:`choose_backends`.
    families : tuple of str
        Which sweeps (:data:`ALL_FAMILIES`).
    match : str, optional
        Only the sweeps whose name contains it.
    stride, radius : int
        The CI subset.
    progress : file, optional
        Where the progress bar goes (None: nowhere).

    Returns
    -------
    Report
    """
    for family in families:
        if family not in ALL_FAMILIES:
            raise ValueError(f"families must be among {ALL_FAMILIES}; got {family!r}")
    if stride < 1 or radius < 0:
        raise ValueError(f"stride must be >= 1 and radius >= 0; got {stride}, {radius}")
    chosen = choose_backends(backends)
    results: list[Result] = []
    sweeps = [s for s in all_sweeps(tuple(f for f in families if f in FAMILIES))
              if match is None or match in s.name]
    tables = {}
    for backend in chosen:
        module = _module(backend)
        for sweep in sweeps:
            if sweep.name not in tables:
                tables[sweep.name] = oracle_steps(sweep)
            results.append(run_sweep(sweep, module, backend, full=full, stride=stride,
                                     radius=radius, stream=progress, steps=tables[sweep.name]))
        if "decode" in families:
            from .decoders import all_decoders

            results += [r for r in all_decoders(backend) if match is None or match in r.sweep]
    return Report(results, full)


__all__ = ["ALL_FAMILIES", "Report", "Result", "choose_backends", "run"]
