"""The first-call plot of docs/benchmarks.md: the CPU seconds of each operation's first call
in a new process, on a fresh install (empty numba cache) and with a warm cache, against
the limits (CPU time is the load-independent figure: about the wall time of an idle
machine, since compiling is single-threaded).

Run from the repository root (needs matplotlib, the ``docs`` extra) after pasting the
table ``fp4ref bench first-call`` prints into the "First calls" section::

    python docs/plots/first_call.py

Reads that table from docs/benchmarks.md (so the plot cannot disagree with it) and writes
``docs/_static/first_call.png``.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent
DPI, WIDTH = 100, 1040  # docs/plots/figures.py: the text column, shown at 1:1
LIMITS = (15.0, 1.0)


def table() -> list[tuple[str, float, float]]:
    """(operation, fresh CPU s, cached CPU s) rows of the first table of the "First calls"
    section, in order."""
    text = (DOCS / "benchmarks.md").read_text()
    section = text[text.index("## First calls"):]
    rows = []
    for line in section.splitlines()[1:]:
        if rows and not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and re.fullmatch(r"[\d.]+", cells[3]):
            rows.append((cells[0].replace("`", ""), float(cells[3]), float(cells[4])))
    return rows


def main() -> None:
    rows = table()
    labels = [r[0] for r in rows]
    fig, ax = plt.subplots(figsize=(WIDTH / DPI, 0.55 * len(rows) + 1.4),
                           constrained_layout=True)
    y = range(len(rows))
    ax.barh([i - 0.2 for i in y], [r[1] for r in rows], height=0.4, color="tab:orange",
            label="fresh install (empty numba cache)")
    ax.barh([i + 0.2 for i in y], [r[2] for r in rows], height=0.4, color="tab:blue",
            label="cached (a later process)")
    ax.set_xscale("log")
    ax.set_yticks(list(y), labels, fontsize=10)
    ax.set_ylim(len(rows) - 0.5, -1.1)  # top to bottom, room above the first row
    for limit, style in zip(LIMITS, ("--", ":"), strict=True):
        ax.axvline(limit, color="black", linestyle=style, linewidth=1)
        ax.text(limit, -0.75, f" limit {limit:g} s", fontsize=10, va="center")
    ax.set_xlabel("CPU seconds of the first call in a new process (log scale)", fontsize=11)
    ax.tick_params(axis="x", labelsize=10)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, fontsize=10,
              frameon=False)
    fig.savefig(DOCS / "_static" / "first_call.png", dpi=DPI)
    plt.close(fig)
    print(f"wrote {DOCS / '_static' / 'first_call.png'} ({len(rows)} operations)")


if __name__ == "__main__":
    main()
