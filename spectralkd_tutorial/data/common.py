"""Names, error types and small helpers shared by every data reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DATA_DIR_ENV = "SPECTRALKD_DATA_DIR"
DATASET_NAMES = ("clinc150", "banking77", "hwu64", "snips", "embedded")
CLINC150_VARIANTS = ("full", "small", "imbalanced", "plus")
HUB_IDS = {"clinc150": "clinc/clinc_oos", "banking77": "PolyAI/banking77"}
OOS = "oos"
SPLITS = ("train", "validation", "test")


class DataNotAvailableError(FileNotFoundError):
    """The requested data set is not on disk and cannot (or may not) be fetched from the hub."""


class DataError(ValueError):
    """Bad user data: the message names the file (or hub id), the line or row, and the fix."""


class DuplicateTextWarning(UserWarning):
    """The same text occurs in more than one split, so some evaluation rows are not held out."""


def _clean_text(value: Any, where: str) -> str:
    """``value`` stripped of surrounding white space; a ``ValueError`` naming ``where`` if empty or not a string."""
    if not isinstance(value, str):
        raise ValueError(f"{where}: text must be a string, got {type(value).__name__} {value!r:.60}")
    text = value.strip()
    if not text:
        raise ValueError(f"{where}: empty text")
    return text


def _missing_message(key: str, root: Path | None, path: Path | None) -> str:
    """What is missing for data set ``key`` (a file, a folder or the data directory) and how to get it."""
    if path is not None:
        what = f"{key}: file {path} not found."
    elif root is None:
        what = f"{key}: no data directory given (data_dir=None and {DATA_DIR_ENV} is not set)."
    elif not root.exists():
        what = f"{key}: data directory {root} does not exist."
    else:
        what = f"{key}: {root} has no {key}/ folder (and is not itself a {key} folder)."
    how = (
        f" Put the upstream {key} files in <dir>/{key}/ (see the data set's upstream repository) and pass "
        f"data_dir=<dir> or set {DATA_DIR_ENV}=<dir>"
    )
    if key in HUB_IDS:
        how += f", or use source='hub' to download {HUB_IDS[key]} from the Hugging Face hub."
    else:
        how += f"; {key} has no canonical Hugging Face hub copy."
    return what + how


def _require_file(path: Path, key: str) -> Path:
    """``path`` if it is a file, else :class:`DataNotAvailableError` saying what is missing."""
    if not path.is_file():
        raise DataNotAvailableError(_missing_message(key, path.parent, path))
    return path
