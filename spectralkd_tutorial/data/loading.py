"""Loading data: named sets (data directory or hub), the user's files and hub ids, and what is missing."""

from __future__ import annotations

import os
from pathlib import Path

from .assemble import assemble_dataset, warn_duplicates
from .banking77 import _load_banking77_local
from .clinc150 import _CLINC_FILES, _load_clinc150_local
from .common import CLINC150_VARIANTS, DATA_DIR_ENV, DATASET_NAMES, HUB_IDS, DataNotAvailableError, _missing_message
from .embedded import embedded_intents
from .files import read_file
from .download import fetch_clinc150_full, has_clinc150_full
from .hub import _env_offline, _load_from_hub_checked, load_hub_raw
from .hwu64 import _load_hwu64_local
from .snips import _load_snips_local
from .spec import ALIASES as _ALIASES
from .spec import DatasetSpec, parse_dataset_spec
from .splits import IntentDataset


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
    if data_dir is not None and source != "hub" and not root.is_dir():
        raise DataNotAvailableError(_missing_data_dir_message(key, root))
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


def _missing_data_dir_message(key: str, root: Path) -> str:
    """An explicitly given data directory that is not there: say so rather than fall back to the hub."""
    what = "is a file, not a directory" if root.exists() else "does not exist"
    return (
        f"{key}: data_dir {root} {what}. It was given explicitly, so neither {DATA_DIR_ENV} nor the hub is tried "
        f"instead. Fix the path (a directory holding {key}/ or {key}'s own folder), or pass data_dir=None to use "
        f"{DATA_DIR_ENV}" + (" or the Hugging Face hub (source='hub')." if key in HUB_IDS else ".")
    )


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
        if source == "auto" and root is None and (has_clinc150_full() or not _env_offline()):
            # no data directory (Colab): the upstream release's file, downloaded once into the cache
            dataset = _load_clinc150_local(fetch_clinc150_full(), "full")
            dataset.notes = "Upstream data_full.json (clinc/oos-eval), cached by fetch_clinc150_full. " + dataset.notes
            return dataset
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


def load_dataset(
    spec: str | os.PathLike | DatasetSpec | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    train_file: str | os.PathLike | None = None,
    validation_file: str | os.PathLike | None = None,
    test_file: str | os.PathLike | None = None,
    text_column: str = "text",
    label_column: str = "label",
    oos_label: str | int | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
) -> IntentDataset:
    """Load a named set, the user's file(s) or a hub dataset (see :func:`parse_dataset_spec`).

    * Named sets (``clinc150:small``, ``banking77``, ...) go to :func:`load_intent_dataset` with
      ``data_dir``, ``validation_fraction`` and ``split_seed`` (as its ``seed``).
    * One file (``spec``): split into train/validation/test, stratified by label and grouped by
      text, with ``split_seed``: ``test_fraction`` and ``validation_fraction`` of each label.
    * Separate files: ``train_file`` and ``test_file`` (or ``spec`` as the training file with
      ``test_file``); ``validation_file`` may be omitted and is then carved from train.
    * Hub ids (``hf:ORG/NAME[:CONFIG]``): ``datasets.load_dataset``; missing validation/test splits
      are carved from train. ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` make it fail fast.

    ``text_column``/``label_column`` name the columns (labels: strings or integers; a hub
    ClassLabel gives its names and order). ``oos_label`` names the out-of-scope class, which turns
    on the OOS-aware metrics; without it the metrics are accuracy and macro-F1. A text in more than
    one split gives a :class:`DuplicateTextWarning`.
    """
    parsed = _resolve_spec(spec, train_file, validation_file, test_file)
    if parsed.kind == "named":
        return _load_named(parsed, data_dir, oos_label, validation_fraction, split_seed)
    columns = (text_column, label_column)
    for option, value in zip(("text_column", "label_column"), columns):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{option}={value!r} must be a non-empty column name")
    if parsed.kind == "hub":
        raw, order, note = load_hub_raw(parsed.hub_id, parsed.config, *columns)
        name, variant, source = f"hf:{parsed.hub_id}", parsed.config, f"hf://datasets/{parsed.hub_id}"
        source += f" (config {parsed.config!r})" if parsed.config else ""
        origin = f"Hugging Face dataset {parsed.hub_id}{f' ({parsed.config})' if parsed.config else ''}. {note}"
    else:
        files = {"train": train_file or parsed.path, "validation": validation_file, "test": test_file}
        raw = {k: read_file(p, *columns) for k, p in files.items() if p is not None}
        order, variant = None, None
        name = Path(files["train"]).name
        source = "; ".join(f"{k}={Path(p).expanduser()}" for k, p in files.items() if p is not None)
        origin = f"User data ({source}; text column {text_column!r}, label column {label_column!r})."
    dataset = assemble_dataset(
        name, raw, variant=variant, source=source, oos_label=oos_label, label_order=order,
        validation_fraction=validation_fraction, test_fraction=test_fraction, split_seed=split_seed, origin=origin,
    )
    warn_duplicates(dataset)
    return dataset


def _resolve_spec(
    spec: str | os.PathLike | DatasetSpec | None,
    train_file: str | os.PathLike | None,
    validation_file: str | os.PathLike | None,
    test_file: str | os.PathLike | None,
) -> DatasetSpec:
    """The spec, or a file spec for ``train_file``; checks that separate files come with a training file."""
    if spec is None:
        if train_file is None:
            raise ValueError("give a dataset spec (a named set, a file or hf:ORG/NAME) or train_file=...")
        if test_file is None:
            raise ValueError(
                "train_file needs test_file (validation_file is optional); to split one file into "
                "train/validation/test, pass it as the spec instead: load_dataset('data.csv')"
            )
        return parse_dataset_spec(Path(train_file))
    parsed = parse_dataset_spec(spec)
    separate = [n for n, v in (("train_file", train_file), ("validation_file", validation_file),
                               ("test_file", test_file)) if v is not None]
    if separate and parsed.kind != "file":
        raise ValueError(f"{', '.join(separate)} apply to the user's files; spec {str(parsed)!r} is a {parsed.kind} set")
    if train_file is not None:
        raise ValueError("give the training file either as the spec or as train_file=..., not both")
    if validation_file is not None and test_file is None:
        raise ValueError("validation_file needs test_file too (or pass one file as the spec to split it)")
    return parsed


def _load_named(
    parsed: DatasetSpec, data_dir: str | os.PathLike | None, oos_label: str | int | None,
    validation_fraction: float, split_seed: int,
) -> IntentDataset:
    """A named set via :func:`load_intent_dataset`; ``oos_label`` may only restate the set's own."""
    dataset = load_intent_dataset(
        parsed.name, variant=parsed.variant, data_dir=data_dir, validation_fraction=validation_fraction,
        seed=split_seed,
    )
    if oos_label is not None:
        own = dataset.label_names[dataset.oos_label] if dataset.oos_label is not None else None
        if str(oos_label) != own:
            raise ValueError(
                f"oos_label={oos_label!r} does not apply to the named set {parsed.name!r} "
                f"({'its out-of-scope class is ' + repr(own) if own else 'it has no out-of-scope class'}); "
                "oos_label is for the user's files and hub datasets"
            )
    return dataset
