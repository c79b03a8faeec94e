"""Ratios to an equal-traffic device copy on the H200, before and after this session's work.

Run from the repository root (needs matplotlib, the ``docs`` extra)::

    python docs/plots/h200_ratios.py

The figures are the ones ``docs/scripts/h200_pipe.py`` and ``docs/scripts/h200_calls.py``
printed on an NVIDIA H200 on the evening of 2026-12-03 (the tables of ``docs/benchmarks.md``:
"before" is main, "after" the branch, from the same calls of the device, each ratio against
a copy timed in the same run as the operation);
the chart goes to ``docs/_static/h200_ratios.png``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent

#: (case, before, after): ratio to the copy, 1 GiB each, from docs/benchmarks.md's evening
#: section: the dequantize kernels and allocating calls are the means of the sweep's two
#: timings of main's "tile" and the branch's "pipe" shape; the quantize kernels are the
#: first sweep's (main's shape both times: the pipelined variants were not adopted); the
#: quantize calls are h200_calls.py's numba-array rows from main and the branch.
RATIOS = [
    ("MXFP4\n-> f32\nkernel", 0.86, 0.86),
    ("MXFP4\n-> bf16\nkernel", 0.86, 0.855),
    ("NVFP4\n-> f32\nkernel", 0.85, 0.895),
    ("NVFP4\n-> bf16\nkernel", 0.87, 0.87),
    ("MXFP4\n-> f32\nallocating", 0.80, 0.70),
    ("MXFP4\n-> bf16\nallocating", 0.59, 0.625),
    ("NVFP4\n-> f32\nallocating", 0.83, 0.845),
    ("NVFP4\n-> bf16\nallocating", 0.825, 0.83),
    ("MXFP4\nquantize\nkernel", 0.82, 0.82),
    ("MXFP4\nfp4ref.\nquantize", 0.65, 0.69),
    ("NVFP4\nquantize\nkernel", 0.68, 0.68),
    ("NVFP4\nquantize\n+ amax", 0.26, 0.24),
]
#: The goals of issue 19: dequantize 0.90, quantize kernels 0.85, NVFP4 quantize 0.5.
GOALS = [0.90] * 8 + [0.85, None, 0.85, 0.50]


def main() -> None:
    labels = [case for case, _, _ in RATIOS]
    before = np.array([b for _, b, _ in RATIOS])
    after = np.array([a for _, _, a in RATIOS])
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(9.4, 4.2))  # 1034 px: the docs text column
    ax.bar(x - 0.2, before, 0.4, label="before (main)", color="#9aa5b1")
    ax.bar(x + 0.2, after, 0.4, label="after (i19-gpu branch)", color="#2f6db5")
    for i, goal in enumerate(GOALS):
        if goal is not None:
            ax.hlines(goal, i - 0.45, i + 0.45, colors="#c0392b", linestyles="dashed")
    ax.hlines([], 0, 0, colors="#c0392b", linestyles="dashed", label="goal (issue 19)")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("ratio to an equal-traffic device copy")
    ax.set_ylim(0, 1.2)
    ax.set_title("NVIDIA H200, 1 GiB per operation, same-run copy roofline (2026-12-03, evening)")
    ax.legend(loc="upper right", fontsize=8, ncol=3)
    fig.tight_layout()
    fig.savefig(DOCS / "_static" / "h200_ratios.png", dpi=110)


if __name__ == "__main__":
    main()
