"""Loading a named data set: where the data directory is, local files or the hub, and what is missing."""

from __future__ import annotations

import os
from pathlib import Path

from .banking77 import _load_banking77_local
from .clinc150 import _CLINC_FILES, _load_clinc150_local
from .common import (
    CLINC150_VARIANTS,
    DATA_DIR_ENV,
    DATASET_NAMES,
    HUB_IDS,
    DataNotAvailableError,
    _missing_message,
)
from .embedded import embedded_intents
from .hub import _load_from_hub_checked
from .hwu64 import _load_hwu64_local
from .snips import _load_snips_local
from .splits import IntentDataset

_ALIASES = {"clinc": "clinc150", "clinc_oos": "clinc150", "banking": "banking77", "hwu": "hwu64"}


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The data directory: ``data_dir`` if given, else ``$SPECTRALKD_DATA_DIR`` if set, else ``None``.

    The path is expanded (``~``) but not checked for existence; the loaders do that and say what
    is missing.
    """
    if data_dir is None:
        env = os.environ.get(DATA_DIR_ENV, "").strip()
        if not env:
            return None
        data_dir = env
    return Path(data_dir).expanduser()


def _dataset_key(name: str, variant: str | None, source: str, validation_fraction: float) -> str:
    """The canonical data set name, after checking every argument of :func:`load_intent_dataset`."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, one of {DATASET_NAMES}; got {type(name).__name__}")
    key = _ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    if source not in ("auto", "local", "hub"):
        raise ValueError(f"source={source!r}; use 'auto', 'local' or 'hub'")
    if key == "clinc150":
        if variant is not None and variant not in CLINC150_VARIANTS:
            raise ValueError(f"unknown clinc150 variant {variant!r}; valid variants: {', '.join(CLINC150_VARIANTS)}")
    elif variant is not None:
        raise ValueError(f"dataset {key!r} has no variants (got variant={variant!r}); pass variant=None")
    if not (isinstance(validation_fraction, (int, float)) and 0.0 < validation_fraction < 1.0):
        raise ValueError(f"validation_fraction={validation_fraction!r} must be a number strictly between 0 and 1")
    return key


def load_intent_dataset(
    name: str,
    *,
    variant: str | None = None,
    data_dir: str | os.PathLike | None = None,
    source: str = "auto",
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> IntentDataset:
    """Load an intent data set by name (see :mod:`spectralkd_tutorial.data` for formats and splits).

    ``name``: one of :data:`DATASET_NAMES`. ``variant``: CLINC150 only (``full``, ``small``,
    ``imbalanced``, ``plus``; ``None`` = ``full`` locally, ``plus`` from the hub).
    ``data_dir``: directory with ``clinc150/``, ``banking77/``, ... (or one data set's own folder);
    defaults to ``$SPECTRALKD_DATA_DIR``. ``source``: ``"auto"``, ``"local"`` or ``"hub"``.
    ``validation_fraction`` and ``seed``: how the validation split is carved from train where
    upstream has none (Banking77, HWU64; SNIPS uses a fixed 100 per intent with ``seed``).
    """
    key = _dataset_key(name, variant, source, validation_fraction)
    if key == "embedded":
        return embedded_intents()
    root = resolve_data_dir(data_dir)
    if source == "hub" or (source == "auto" and (root is None or _find_dataset_dir(root, key) is None)):
        return _load_named_from_hub(key, variant, source, root, validation_fraction, seed)
    if root is None:
        raise DataNotAvailableError(_missing_message(key, None, None))
    folder = _find_dataset_dir(root, key)
    if folder is None:
        raise DataNotAvailableError(_missing_message(key, root, None))
    if key == "clinc150":
        return _load_clinc150_local(folder, variant or "full")
    if key == "banking77":
        return _load_banking77_local(folder, validation_fraction, seed)
    if key == "hwu64":
        return _load_hwu64_local(folder, validation_fraction, seed)
    return _load_snips_local(folder, seed)


def _load_named_from_hub(
    key: str, variant: str | None, source: str, root: Path | None, validation_fraction: float, seed: int
) -> IntentDataset:
    """The hub branch of :func:`load_intent_dataset`: refuse what the hub does not have, then load."""
    if key not in HUB_IDS:
        if source == "hub":
            raise ValueError(
                f"{key} has no canonical Hugging Face hub copy; load it with source='local' from a directory "
                f"holding the upstream files (pass data_dir=... or set {DATA_DIR_ENV})"
            )
        raise DataNotAvailableError(_missing_message(key, root, None))
    if key == "clinc150" and variant == "full":
        msg = (
            "clinc150 variant 'full' is not on the Hugging Face hub (clinc/clinc_oos has the configs "
            "small, imbalanced and plus). Use variant='plus' (same in-scope data, 250 instead of 100 "
            "out-of-scope training queries), or read data_full.json locally: pass data_dir=... or set "
            f"{DATA_DIR_ENV}"
        )
        if source == "hub":
            raise ValueError(msg)
        raise DataNotAvailableError(_missing_message(key, root, None) + " " + msg)
    note = ""
    if source == "auto" and root is not None:
        note = f"No {key} data under {root}; loaded from the hub instead. "
    return _load_from_hub_checked(key, variant, validation_fraction, seed, root, note)


def _find_dataset_dir(root: Path, key: str) -> Path | None:
    """``root/key`` if it is a directory, else ``root`` if it looks like the data set's own folder."""
    sub = root / key
    if sub.is_dir():
        return sub
    if not root.is_dir():
        return None
    markers = {
        "clinc150": lambda d: any((d / f).is_file() for f in _CLINC_FILES.values()),
        "banking77": lambda d: (d / "categories.json").is_file() or (d / "train.csv").is_file(),
        "hwu64": lambda d: (d / "KFold_1").is_dir() or (d / "trainset").is_dir(),
        "snips": lambda d: any(d.glob("*/train_*_full.json")),
    }
    return root if markers[key](root) else None
