"""Sphinx configuration: numpy-style docstrings through napoleon, pages in MyST Markdown."""

import os
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
nitpicky = False
