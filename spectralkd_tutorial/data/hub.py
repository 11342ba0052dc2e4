"""The Hugging Face hub: CLINC150, Banking77 and any dataset id, with offline checks.

``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` are respected: with either set, nothing here touches
the network; the ``datasets`` cache is read only when that library is itself in offline mode, and
otherwise a :class:`DataNotAvailableError` says how to get the data instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .clinc150 import _clinc150_dataset
from .common import DATA_DIR_ENV, HUB_IDS, OOS, SPLITS, DataError, DataNotAvailableError, _clean_text
from .files import RawSplit, _missing_columns
from .splits import IntentDataset, IntentSplit, _with_carved_validation

_TRUE = {"1", "ON", "YES", "TRUE"}
_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


def _env_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set to a true value."""
    return any(os.environ.get(v, "").strip().upper() in _TRUE for v in _OFFLINE_VARS)


def _datasets_offline_mode() -> bool:
    """Whether the imported ``datasets`` library itself will stay off the network."""
    import datasets

    return bool(getattr(datasets.config, "HF_HUB_OFFLINE", False))


def _load_from_hub_checked(
    key: str, variant: str | None, validation_fraction: float, seed: int, root: Path | None, note: str
) -> IntentDataset:
    """:func:`_load_from_hub`, but in offline mode only from the ``datasets`` cache (else a clear error)."""
    hub_id = HUB_IDS[key]
    if _env_offline():
        msg = (
            f"{key}: offline mode is on (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE) and the data are not available "
            f"locally{'' if root is None else f' under {root}'}. Set {DATA_DIR_ENV} (or pass data_dir=...) to a "
            f"directory holding {key}/ with the upstream files, or unset HF_HUB_OFFLINE to download "
            f"{hub_id} from the Hugging Face hub."
        )
        if not _datasets_offline_mode():
            # datasets was imported before the variable was set and would still go online: refuse.
            raise DataNotAvailableError(msg)
        try:  # datasets is in offline mode: only its local cache is read
            ds = _load_from_hub(key, variant, validation_fraction, seed)
        except Exception as exc:  # noqa: BLE001 - any cache miss is reported the same way
            raise DataNotAvailableError(msg + f" (cache lookup failed: {type(exc).__name__}: {exc})") from exc
    else:
        ds = _load_from_hub(key, variant, validation_fraction, seed)
    if note:
        ds.notes = note + ds.notes
    return ds


def _hub_columns(split: Any, text_col: str, label_cols: Sequence[str]) -> tuple[list[str], list[int], list[str]]:
    """(texts, label indices, label names) of a hub split; names from the ClassLabel, or sorted strings."""
    label_col = next((c for c in label_cols if c in split.column_names), None)
    if text_col not in split.column_names or label_col is None:
        raise ValueError(
            f"hub split has columns {split.column_names}; expected {text_col!r} and one of {list(label_cols)}"
        )
    texts = [_clean_text(t, f"hub row {i}") for i, t in enumerate(split[text_col])]
    raw = list(split[label_col])
    names = getattr(split.features[label_col], "names", None)
    if names is None:  # a plain string column instead of a ClassLabel
        if not all(isinstance(v, str) for v in raw):
            raise ValueError(f"hub column {label_col!r} is neither a ClassLabel nor strings")
        names = sorted(set(raw))
        lookup = {n: i for i, n in enumerate(names)}
        raw = [lookup[v] for v in raw]
    return texts, raw, list(names)


def _load_from_hub(key: str, variant: str | None, validation_fraction: float, seed: int) -> IntentDataset:
    """Load from the Hugging Face hub's parquet data with ``datasets.load_dataset``."""
    if key == "clinc150":
        return _load_clinc150_hub(variant)
    return _load_banking77_hub(validation_fraction, seed)


def _load_clinc150_hub(variant: str | None) -> IntentDataset:
    """CLINC150 from ``clinc/clinc_oos`` (``variant=None`` means ``plus``: the hub has no ``full``)."""
    from datasets import load_dataset

    hub_id = HUB_IDS["clinc150"]
    config = variant or "plus"
    dsd = load_dataset(hub_id, config)
    splits = {}
    label_names: list[str] = []
    for split_name in SPLITS:
        texts, raw, names = _hub_columns(dsd[split_name], "text", ("intent", "label"))
        if not label_names:
            if OOS not in names:
                raise ValueError(f"{hub_id} ({config}): label names have no 'oos' class")
            label_names = sorted(n for n in names if n != OOS) + [OOS]
        remap = {i: label_names.index(n) for i, n in enumerate(names)}
        splits[split_name] = IntentSplit(texts, [remap[y] for y in raw])
    notes = f"CLINC150 '{config}' from the hub ({hub_id}); labels: intents sorted alphabetically, then 'oos'."
    if variant is None:
        notes += " variant=None: 'plus' used, since the hub has no 'full' config (same in-scope data)."
    return _clinc150_dataset(config, label_names, splits, source=f"hf://datasets/{hub_id} (config {config!r})",
                             notes=notes)


def _load_banking77_hub(validation_fraction: float, seed: int) -> IntentDataset:
    """Banking77 from ``PolyAI/banking77`` (its parquet conversion when the main branch holds a script)."""
    from datasets import load_dataset

    hub_id = HUB_IDS["banking77"]
    revision = None
    try:
        dsd = load_dataset(hub_id)
    except RuntimeError as exc:
        if "script" not in str(exc).lower():
            raise
        revision = "refs/convert/parquet"
        dsd = load_dataset(hub_id, revision=revision, data_dir="default")
    train_t, train_y, names = _hub_columns(dsd["train"], "text", ("label", "category"))
    test_t, test_raw, test_names = _hub_columns(dsd["test"], "text", ("label", "category"))
    unknown = sorted(set(test_names) - set(names))
    if unknown:
        raise ValueError(f"{hub_id}: test labels {unknown[:5]} do not occur in train")
    test_y = [names.index(test_names[y]) for y in test_raw]
    return _with_carved_validation(
        "banking77",
        names,
        IntentSplit(train_t, train_y),
        IntentSplit(test_t, test_y),
        seed,
        fraction=validation_fraction,
        source=f"hf://datasets/{hub_id}" + (f" (revision {revision})" if revision else ""),
        notes=(
            "Banking77 from the hub; no upstream validation split: validation = a stratified "
            f"{validation_fraction:g} of each intent in train (seed={seed}, grouped by text), train = the rest. "
            "Label order = the hub's ClassLabel."
        ),
    )


# --------------------------------------------------------------------------------------------
# any hub dataset id (the user's own data)
# --------------------------------------------------------------------------------------------

_VALIDATION_NAMES = ("validation", "valid", "val", "dev")


def _offline_message(hub_id: str, config: str | None) -> str:
    """Why a hub id cannot be loaded offline, naming the variable and the alternatives."""
    spec = f"hf:{hub_id}" + (f":{config}" if config else "")
    variables = [v for v in _OFFLINE_VARS if os.environ.get(v, "").strip().upper() in _TRUE]
    return (
        f"{spec}: {' and '.join(variables)} {'is' if len(variables) == 1 else 'are'} set, so the Hugging Face hub is "
        f"not contacted. Either unset {' and '.join(variables)} on a machine with internet access; or, on a "
        f"connected machine, save the splits to files (datasets.load_dataset({hub_id!r})['train']"
        ".to_parquet('train.parquet'), likewise test) and pass them: load_dataset('train.parquet', "
        f"test_file='test.parquet'); or use a named set read from {DATA_DIR_ENV}."
    )


def _fetch_hub(hub_id: str, config: str | None) -> Any:
    """``datasets.load_dataset(hub_id, config)``, never touching the network in offline mode."""
    from datasets import load_dataset

    if not _env_offline():
        return load_dataset(hub_id, config)
    if not _datasets_offline_mode():
        raise DataNotAvailableError(_offline_message(hub_id, config))
    try:
        return load_dataset(hub_id, config)
    except Exception as exc:  # noqa: BLE001 - any cache miss is reported the same way
        raise DataNotAvailableError(
            _offline_message(hub_id, config) + f" (not in the datasets cache either: {type(exc).__name__}: {exc})"
        ) from exc


def _raw_hub_split(split: Any, where: str, text_column: str, label_column: str) -> tuple[RawSplit, list[str] | None]:
    """One hub split as a :class:`RawSplit` (ClassLabel indices become their names) and its ClassLabel names."""
    columns = list(split.column_names)
    if text_column not in columns or label_column not in columns:
        raise _missing_columns(where, (text_column, label_column), columns)
    names = getattr(split.features[label_column], "names", None)
    out = RawSplit(where, unit="row")
    for i, (text, label) in enumerate(zip(split[text_column], split[label_column]), start=1):
        if names is not None and not isinstance(label, bool) and isinstance(label, int):
            if not 0 <= label < len(names):
                raise DataError(
                    f"{where}: row {i}: label {label} is outside the ClassLabel's {len(names)} classes (-1 marks an "
                    "unlabelled row, as in many hub test splits); use a labelled split or pass test_file=..."
                )
            label = names[label]
        out.add(text, label, i, (text_column, label_column))
    return out, (list(names) if names is not None else None)


def load_hub_raw(
    hub_id: str, config: str | None, text_column: str, label_column: str
) -> tuple[dict[str, RawSplit], list[str] | None, str]:
    """The ``train``/validation/``test`` splits of a hub dataset, its ClassLabel names, and a note on the splits."""
    dsd = _fetch_hub(hub_id, config)
    available = list(dsd.keys())
    if "train" not in available:
        raise DataError(f"hf:{hub_id}: no 'train' split (splits: {', '.join(available)}); a training split is needed")
    chosen = {"train": "train"}
    val = next((s for s in _VALIDATION_NAMES if s in available), None)
    if val is not None:
        chosen["validation"] = val
    if "test" in available:
        chosen["test"] = "test"
    raw: dict[str, RawSplit] = {}
    label_order = None
    for ours, theirs in chosen.items():
        raw[ours], names = _raw_hub_split(dsd[theirs], f"hf:{hub_id} [{theirs}]", text_column, label_column)
        label_order = label_order or names
    unused = [s for s in available if s not in chosen.values()]
    note = f"Hub splits used: {', '.join(f'{k}={v}' for k, v in chosen.items())}"
    note += f" (not used: {', '.join(unused)})." if unused else "."
    return raw, label_order, note
