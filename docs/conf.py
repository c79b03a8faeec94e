"""Sphinx configuration: numpy-style docstrings through napoleon, pages in MyST Markdown."""

import os
import re
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "fp4ref"
author = "the fp4ref developers"
copyright = "2026, the fp4ref developers"
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "plots/*.py"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
autosummary_generate = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3
html_theme = "alabaster"
html_static_path = ["_static"]
html_css_files = ["fp4ref.css"]
# a 1400 px screen: 1340 px page, 230 px sidebar, about 1050 px of text (the figures' width)
html_theme_options = {"page_width": "1340px", "sidebar_width": "230px",
                      "body_max_width": "none"}
toc_object_entries = False  # tables of contents list pages and sections, not every name
nitpicky = False


def _write_profiles_table(app):
    """docs/_generated/profiles.md: the profiles table, from the code itself."""
    import fp4ref
    from fp4ref.profiles import Profile

    shown = ["rounding", "scale_rule", "nvfp4_recipe", "e8m0_decode", "nonfinite",
             "tensor_scale_direction", "nibble_order", "scale_layout"]
    # headers may break after an underscore (a zero-width space), not inside a word
    headers = [field.replace("_", "_\u200b") for field in shown]
    rows = ["| profile | " + " | ".join(headers) + " | source |",
            "|" + "---|" * (len(shown) + 2)]
    for name, profile in fp4ref.profiles().items():
        assert isinstance(profile, Profile)
        cells = [str(getattr(profile, field)) for field in shown]
        source = re.sub(r"([*_\\`|])", r"\\\1", profile.description)  # literal, not markup
        rows.append(f"| `{name}` | " + " | ".join(cells) + f" | {source} |")
    out = os.path.join(app.srcdir, "_generated")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "profiles.md"), "w") as handle:
        handle.write("\n".join(rows) + "\n")


def setup(app):
    app.connect("builder-inited", _write_profiles_table)
