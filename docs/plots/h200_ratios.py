"""Ratios to an equal-traffic device copy on the H200, before and after this session's work.

Run from the repository root (needs matplotlib, the ``docs`` extra)::

    python docs/plots/h200_ratios.py

The figures are the ones ``fp4ref bench dequantize / quantize --backend cuda`` printed on
an NVIDIA H200 on 2026-12-04 (the tables of ``docs/benchmarks.md``: "before" is main at the
start of that day, "after" its end, "night" the bench of the night's third call, each ratio
against a copy timed in the same run as the operation);
the chart goes to ``docs/_static/h200_ratios.png``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent

#: (case, before, after): ratio to the copy, 1 GiB each, from docs/benchmarks.md's section of
#: 2026-12-04: "before" is main at the start of that day (d5758b1), "after" f047e00, each
#: `fp4ref bench dequantize / quantize --backend cuda --repeat 5` in one call of the device
#: (the kernels into reused outputs; the allocating `fp4ref.dequantize` on numba arrays; the
#: `fp4ref.quantize` rows on a numba array); "night": the same bench in the night's third
#: call (section "2026-12-04 (night)": NVFP4 codes by reciprocal, the operand on the device).
RATIOS = [
    ("MXFP4\n-> f32\nkernel", 0.89, 0.90, 0.90),
    ("MXFP4\n-> bf16\nkernel", 0.83, 0.90, 0.90),
    ("NVFP4\n-> f32\nkernel", 0.87, 0.88, 0.90),
    ("NVFP4\n-> bf16\nkernel", 0.90, 0.88, 0.89),
    ("MXFP4\n-> f32\nallocating", 0.58, 0.85, 0.83),
    ("MXFP4\n-> bf16\nallocating", 0.56, 0.86, 0.85),
    ("NVFP4\n-> f32\nallocating", 0.47, 0.84, 0.84),
    ("NVFP4\n-> bf16\nallocating", 0.86, 0.85, 0.84),
    ("MXFP4\nquantize\nkernel", 0.82, 1.01, 1.01),
    ("MXFP4\nfp4ref.\nquantize", 0.73, 0.85, 0.68),
    ("NVFP4\nquantize\nkernel", 0.68, 0.72, 0.87),
    ("NVFP4\nquantize\n+ amax", 0.29, 0.28, 0.38),
]
#: The goals of issue 19: dequantize 0.90, quantize kernels 0.85, NVFP4 quantize 0.5.
GOALS = [0.90] * 8 + [0.85, None, 0.85, 0.50]


def main() -> None:
    labels = [row[0] for row in RATIOS]
    before, after, night = (np.array([row[k] for row in RATIOS]) for k in (1, 2, 3))
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(9.4, 4.2))  # 1034 px: the docs text column
    ax.bar(x - 0.27, before, 0.27, label="before (main, d5758b1)", color="#9aa5b1")
    ax.bar(x, after, 0.27, label="after (2026-12-04)", color="#2f6db5")
    ax.bar(x + 0.27, night, 0.27, label="night (2026-12-04)", color="#16a085")
    for i, goal in enumerate(GOALS):
        if goal is not None:
            ax.hlines(goal, i - 0.45, i + 0.45, colors="#c0392b", linestyles="dashed")
    ax.hlines([], 0, 0, colors="#c0392b", linestyles="dashed", label="goal (issue 19)")
    ax.set_xticks(x, labels, fontsize=7)
    ax.set_ylabel("ratio to an equal-traffic device copy")
    ax.set_ylim(0, 1.2)
    ax.set_title("NVIDIA H200, 1 GiB per operation, same-run copy roofline (2026-12-04)")
    ax.legend(loc="upper right", fontsize=8, ncol=4)
    fig.tight_layout()
    fig.savefig(DOCS / "_static" / "h200_ratios.png", dpi=110)


if __name__ == "__main__":
    main()
