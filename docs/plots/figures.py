"""Draw the documentation's figures: the E2M1 and E4M3 value grids and the 128x4 layout.

Run from the repository root (needs matplotlib, the ``docs`` extra)::

    python docs/plots/figures.py

Writes PNG files to ``docs/_static/``. The values come from fp4ref itself. Each figure is
drawn at most :data:`WIDTH` pixels wide, the width of the pages' text column, so that the
browser shows it at 1:1 and its smallest labels are :data:`LABEL_PT` points (about 12 px).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import fp4ref  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "_static"
#: Pixels per inch of the PNG files, and the widest figure, in pixels (docs/conf.py's text
#: column: a 1340 px page less its 230 px sidebar and margins).
DPI = 100
WIDTH = 1040
#: The smallest text in a figure, in points (at DPI 100: about 12 px).
LABEL_PT = 9


def value_grids() -> None:
    """Every non-negative finite E2M1 and E4M3 value on a log axis."""
    e2m1 = fp4ref.decode_e2m1(np.arange(1, 8, dtype=np.uint8))
    e4m3 = fp4ref.decode_e4m3(np.arange(1, 0x7F, dtype=np.uint8))
    fig, axes = plt.subplots(2, 1, figsize=(WIDTH / DPI, 3.6), constrained_layout=True)
    for ax, values, name, subnormals in ((axes[0], e2m1, "E2M1", 1), (axes[1], e4m3, "E4M3", 7)):
        ax.vlines(values[:subnormals], 0, 1, color="tab:orange", label="subnormal")
        ax.vlines(values[subnormals:], 0, 1, color="tab:blue", label="normal")
        ax.set_xscale("log", base=2)
        ax.set_yticks([])
        ax.set_title(f"{name}: the {len(values)} positive finite values (and 0)", fontsize=11)
        ax.legend(loc="upper left", fontsize=LABEL_PT)
        ax.tick_params(labelsize=LABEL_PT + 1)
    fig.savefig(OUT / "value_grids.png", dpi=DPI)
    plt.close(fig)


def layout_128x4() -> None:
    """One 512-byte tile of the 128x4 layout, drawn in memory order: 32 lines of 16 bytes,
    each byte labelled with the (row, column) of the scale stored there."""
    rows, cols = 128, 4
    row_ids = np.repeat(np.arange(rows, dtype=np.uint8)[:, None], cols, axis=1)
    col_ids = np.repeat(np.arange(cols, dtype=np.uint8)[None, :], rows, axis=0)
    row_at = fp4ref.swizzle(row_ids, layout="128x4").reshape(32, 16)  # byte -> its row
    col_at = fp4ref.swizzle(col_ids, layout="128x4").reshape(32, 16)  # byte -> its column
    fig, ax = plt.subplots(figsize=(WIDTH / DPI, 8.6), constrained_layout=True)
    ax.imshow(row_at // 32, cmap="Pastel1", aspect="auto", interpolation="nearest")
    for line in range(32):
        for byte in range(16):
            ax.text(byte, line, f"{row_at[line, byte]},{col_at[line, byte]}", ha="center",
                    va="center", fontsize=LABEL_PT)
    ax.set_xticks(range(16))
    ax.set_yticks(range(0, 32, 4))
    ax.tick_params(labelsize=LABEL_PT + 1)
    ax.set_xlabel("byte within the 16-byte line", fontsize=11)
    ax.set_ylabel("line (16 bytes each)", fontsize=11)
    ax.set_title("128x4 layout: one 512-byte tile in memory order; each cell is the "
                 "(row, scale column) stored there;\ncolours are the four 32-row groups "
                 "that share every line", fontsize=11)
    fig.savefig(OUT / "layout_128x4.png", dpi=DPI)
    plt.close(fig)


if __name__ == "__main__":
    OUT.mkdir(exist_ok=True)
    value_grids()
    layout_128x4()
    print(f"wrote {OUT / 'value_grids.png'} and {OUT / 'layout_128x4.png'}")
