"""Sphinx configuration for relaxed-dists.

Build (from the repository root, after ``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

Intersphinx links to torch, Pyro, JAX and NumPyro need their ``objects.inv`` inventories,
which are fetched over the network. They are switched on only when the environment variable
``RELAXED_DISTS_DOCS_ONLINE=1`` is set; otherwise the mapping is empty, so an offline build
(this project's machines reach no documentation sites) stays warning-free.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import relaxed_dists  # noqa: E402

project = "relaxed-dists"
author = "relaxed-dists developers"
copyright = "relaxed-dists developers"
release = version = relaxed_dists.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store"]

# MyST: Markdown pages; `$...$` maths and ```{directive}``` blocks.
myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# autodoc: members in source order; type hints in the description, not the signature.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = True

# Intersphinx: only online (see the module docstring). Offline the mapping is empty.
ONLINE = os.environ.get("RELAXED_DISTS_DOCS_ONLINE") == "1"
intersphinx_mapping = (
    {
        "python": ("https://docs.python.org/3", None),
        "torch": ("https://pytorch.org/docs/stable", None),
        "pyro": ("https://docs.pyro.ai/en/stable", None),
        "jax": ("https://docs.jax.dev/en/latest", None),
        "numpyro": ("https://num.pyro.ai/en/stable", None),
    }
    if ONLINE
    else {}
)

html_theme = "furo"
html_title = f"relaxed-dists {release}"

# The result files in benchmarks/results/ and examples/results/ are written by the scripts for
# GitHub, some with heading jumps (H1 then H3). docs/results/ includes them verbatim; this hook
# only renders their headings one level deeper than the previous heading at most, so MyST does
# not warn about a non-consecutive increase. The files on disk are not changed.
RESULT_DIRS = ("benchmarks/results/", "examples/results/")


def _consecutive_headings(text: str) -> str:
    lines, previous, fence = [], 1, None
    for line in text.split("\n"):
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            marker = stripped[:3]
            fence = None if fence == marker else (fence or marker)
        elif fence is None and stripped.startswith("#"):
            hashes = len(stripped) - len(stripped.lstrip("#"))
            if 1 <= hashes <= 6 and stripped[hashes : hashes + 1] == " ":
                level = min(hashes, previous + 1)
                line = "#" * level + stripped[hashes:]
                previous = level
        lines.append(line)
    return "\n".join(lines)


def _on_include_read(app, relative_path, parent_docname, content):
    if any(part in Path(relative_path).as_posix() for part in RESULT_DIRS):
        content[0] = _consecutive_headings(content[0])


def setup(app):
    app.connect("include-read", _on_include_read)
