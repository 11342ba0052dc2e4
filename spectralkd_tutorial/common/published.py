"""The committed results (``assets/``) wherever the package runs: a checkout, or a wheel installed alone.

``assets/`` at the repository root is where the commands publish (``--publish assets/workshop``,
``assets/study``, ...). The package reaches the same files as ``spectralkd_tutorial/resources/assets``:
in a checkout that is a link to ``../../assets``; in a built wheel it holds copies made from that link
at build time (package data, ``pyproject.toml``). One source of truth, read through
``importlib.resources``, so a chapter opened alone (Colab, a downloaded notebook) shows exactly what
it shows in a checkout.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Sequence

__all__ = ["find_asset", "published", "published_root"]


def published_root() -> Path:
    """The folder of committed results inside the package (in a checkout: the repository's ``assets/``)."""
    root = resources.files("spectralkd_tutorial") / "resources" / "assets"
    return Path(str(root))  # an installed wheel and a checkout are folders on disk, never a zip


def published(relative: str | os.PathLike) -> Path | None:
    """``assets/<relative>`` as committed with the package (checkout or wheel), else ``None``."""
    path = published_root() / relative
    return path if path.exists() else None


def find_asset(relative: str | os.PathLike, *, roots: Sequence[str | os.PathLike] = ("..", ".")) -> Path | None:
    """``assets/<relative>``: first as seen from ``notebooks/`` (``../assets``) or the working folder
    (``./assets``: what a command has just published there), then the copy committed with the package.
    ``None`` when neither has it."""
    for root in roots:
        path = Path(root) / "assets" / relative
        if path.exists():
            return path
    return published(relative)
