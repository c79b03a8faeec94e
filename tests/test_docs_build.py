"""The documentation as a browser shows it: figures drawn for the text column (shown at
1:1), the stylesheet in every page, tables of contents without raw names."""

import importlib.util
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: docs/conf.py's text column in pixels (docs/plots/figures.py draws for it).
COLUMN = 1040


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("figure", sorted((ROOT / "docs" / "_static").glob("*.png")),
                         ids=lambda p: p.name)
def test_figures_fit_the_text_column(figure):
    width, height = png_size(figure)
    assert 600 <= width <= COLUMN, (figure.name, width)


def test_every_figure_is_shown():
    pages = "".join(p.read_text() for p in (ROOT / "docs").rglob("*.md"))
    for figure in (ROOT / "docs" / "_static").glob("*.png"):
        assert f"_static/{figure.name}" in pages, figure.name


def test_sphinx_build_is_clean_and_styled(tmp_path):
    for module in ("sphinx", "myst_parser"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module} (the docs extra)")
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html",
                           str(ROOT / "docs"), str(tmp_path / "html")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    index = (tmp_path / "html" / "index.html").read_text()
    assert "_static/fp4ref.css" in index
    body = index[index.index('class="body"'):]
    targets = re.findall(r'<li class="toctree-l\d"><a class="reference internal" href="([^"]*)"',
                         body)
    assert len(targets) > 20  # pages and their sections ...
    assert not [t for t in targets if "#fp4ref." in t]  # ... not every documented name
