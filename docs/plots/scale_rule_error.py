"""Quantization error of every MXFP4 scale rule and NVFP4 recipe on two weight distributions.

Run from the repository root (needs matplotlib, the ``docs`` extra)::

    python docs/plots/scale_rule_error.py [--rows 1024]

Quantizes a ``rows x 4096`` float32 matrix of N(0, 1) weights and one of Student-t (df = 3,
heavy-tailed) weights with :func:`fp4ref.quantize`, decodes with :func:`fp4ref.dequantize`,
and writes the mean squared error of each rule to ``docs/_static/scale_rule_error.png`` (a
bar chart, log scale) and ``docs/scale-rule-error.md`` (a table). Seeded, so reruns give
the same numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import fp4ref  # noqa: E402
from fp4ref.spec.scale_rules import MX_RULES  # noqa: E402

DOCS = Path(__file__).resolve().parent.parent
COLUMNS = 4096

#: (label, quantize keyword arguments): every MXFP4 rule under the OCP profile, then the
#: NVFP4 recipe of each profile that has a distinct one, then the searches.
RULES = (
    *((f"mxfp4 {rule}", {"scale_rule": rule}) for rule in MX_RULES),
    ("mxfp4 optimal", {"scale_rule": "optimal"}),
    ("nvfp4 modelopt (= ocp)", {"format": "nvfp4", "profile": "modelopt"}),
    ("nvfp4 compressed-tensors", {"format": "nvfp4", "profile": "compressed-tensors"}),
    ("nvfp4 torchao", {"format": "nvfp4", "profile": "torchao-floor"}),
    ("nvfp4 plain (qwantize)", {"format": "nvfp4", "profile": "qwantize"}),
    ("nvfp4 optimal", {"format": "nvfp4", "scale_rule": "optimal"}),
    ("nvfp4 fouroversix (MSE)", {"format": "nvfp4", "profile": "fouroversix"}),
)


def weights(rows: int) -> dict[str, np.ndarray]:
    """The two weight matrices, float32 ``[rows, 4096]``."""
    rng = np.random.default_rng(0)
    return {
        "Gaussian N(0, 1)": rng.standard_normal((rows, COLUMNS)).astype(np.float32),
        "Student-t, df = 3": rng.standard_t(3, (rows, COLUMNS)).astype(np.float32),
    }


def errors(x: np.ndarray) -> list[float]:
    """Mean squared error (float64) of each rule of :data:`RULES` on ``x``."""
    out = []
    for _, options in RULES:
        decoded = fp4ref.dequantize(fp4ref.quantize(x, **options))
        out.append(float(np.mean((decoded.astype(np.float64) - x) ** 2)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1024)
    rows = parser.parse_args().rows
    table = {name: errors(x) for name, x in weights(rows).items()}
    labels = [label for label, _ in RULES]

    fig, ax = plt.subplots(figsize=(9, 5.5), constrained_layout=True)
    positions = np.arange(len(labels))
    for k, (name, mse) in enumerate(table.items()):
        ax.barh(positions + 0.4 * k - 0.2, mse, height=0.4, label=name)
    ax.set_yticks(positions, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("mean squared error (log scale)")
    ax.set_title(f"FP4 quantization error by scale rule ({rows} x {COLUMNS} float32 weights)",
                 fontsize=10)
    ax.legend(fontsize=8)
    fig.savefig(DOCS / "_static" / "scale_rule_error.png", dpi=110)
    plt.close(fig)

    names = list(table)
    lines = [
        "# Quantization error by scale rule",
        "",
        f"Mean squared error of `fp4ref.quantize` then `fp4ref.dequantize` on {rows} x "
        f"{COLUMNS} float32 weights (seed 0), written by `docs/plots/scale_rule_error.py`. "
        "MXFP4 rules under the `ocp` profile (ties to even); NVFP4 recipes under the named "
        "profile, with its tensor scale. Four-over-six (the `fouroversix` profile, the "
        "package's MSE rule) is decoded as the package decodes it, f32(f32(P * s_b) * "
        "amax) / 1536 (`decode_arithmetic=\"fouroversix\"`; one multiplier amax / 1536 "
        "gives the same MSE to 6 digits).",
        "",
        "![MSE by scale rule](_static/scale_rule_error.png)",
        "",
        "| rule | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for i, label in enumerate(labels):
        lines.append(f"| {label} | " + " | ".join(f"{table[n][i]:.6g}" for n in names) + " |")
    (DOCS / "scale-rule-error.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
