"""Sphinx configuration of the book: every chapter notebook executed on the ``quick`` preset.

Build it from the repository root (needs ``pip install -e ".[docs]"``)::

    sphinx-build -b html docs build/book

``docs/chapters`` is a link to ``../notebooks``: the chapters run from the notebooks' own folder
(so ``../assets`` resolves as it does in Jupyter) and are never copied. MyST-NB executes every
notebook on every build (``nb_execution_mode = "force"``) in a kernel that inherits the
environment set below: the ``quick`` preset (``SPECTRALKD_BOOK_PRESET`` picks another), offline
Hugging Face hub, and ``SPECTRALKD_DATA_DIR`` as given (or ``../shared/data`` when it exists).
A cell that raises fails the build.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# --- the kernel's environment (inherited by the notebooks' kernels) -----------------------------
os.environ["SPECTRALKD_PRESET"] = os.environ.get("SPECTRALKD_BOOK_PRESET", "quick")
for name, value in {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
                    "MPLBACKEND": "Agg"}.items():
    os.environ.setdefault(name, value)
if "SPECTRALKD_DATA_DIR" not in os.environ and (ROOT.parent / "shared" / "data").is_dir():
    os.environ["SPECTRALKD_DATA_DIR"] = str(ROOT.parent / "shared" / "data")
# the kernel imports the package from this checkout, installed or not
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])

# --- project ----------------------------------------------------------------------------------------
project = "SpectralKD for text — a hands-on tutorial"
author = "spectralkd-tutorial contributors"
copyright = "the spectralkd-tutorial contributors, Apache-2.0"

extensions = ["myst_nb"]
root_doc = "index"
exclude_patterns = ["_build", "**/.ipynb_checkpoints", "Thumbs.db", ".DS_Store"]

# --- MyST: $...$ / $$...$$ math (rendered by MathJax), ::: fences ------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# --- MyST-NB: execute every chapter on every build ---------------------------------------------------
nb_execution_mode = "force"
nb_execution_timeout = int(os.environ.get("SPECTRALKD_BOOK_CELL_TIMEOUT", "900"))  # seconds per cell
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_show_tb = True
nb_execution_in_temp = False  # run in the notebooks' folder (docs/chapters -> ../notebooks)
nb_merge_streams = True

# --- HTML -------------------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = "SpectralKD for text"
html_theme_options = {
    "repository_url": "https://github.com/spectralkd/spectralkd-tutorial",
    "repository_branch": "main",
    "path_to_docs": "docs",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com"},
    "show_toc_level": 2,
}
html_last_updated_fmt = ""
