"""An :class:`IntentDataset` from the user's raw splits: label checks, carving, out-of-scope label."""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Sequence

from .common import DataError, DuplicateTextWarning
from .files import RawSplit
from .splits import IntentDataset, IntentSplit, _carve_validation


def _label_order(train: RawSplit, label_order: Sequence[str] | None, oos: str | None) -> list[str]:
    """``label_order`` if given, else the training labels sorted (numerically when all are integers), oos last."""
    if label_order is not None:
        return list(label_order)
    present = set(train.labels)
    numeric = all(n.lstrip("-").isdigit() for n in present)
    names = sorted(present, key=(lambda n: (int(n), n)) if numeric else None)
    if oos is not None:
        names = [n for n in names if n != oos] + [oos]
    return names


def _check_labels(raw: dict[str, RawSplit], oos: str | None, label_order: Sequence[str] | None) -> None:
    """One class only, labels outside training, an unknown out-of-scope label: :class:`DataError`."""
    train = raw["train"]
    seen = Counter(train.labels)
    if len(seen) < 2:
        ((only, n),) = seen.items()
        raise DataError(
            f"{train.source}: only one class ({only!r}, {n} rows) in the training data; an intent classifier "
            "needs at least two labels. Check that the label column is the right one (--label-column)."
        )
    for name in ("validation", "test"):
        split = raw.get(name)
        for i, label in enumerate(split.labels if split is not None else ()):
            if label not in seen:
                known = ", ".join(map(repr, sorted(seen)[:10])) + (", ..." if len(seen) > 10 else "")
                raise DataError(
                    f"{split.where(i)}: {name} label {label!r} never occurs in the training data "
                    f"({train.source}); every {name} label must have training examples (training labels: {known})"
                )
    if oos is not None and oos not in seen:
        raise DataError(
            f"{train.source}: oos_label={oos!r} is not a label of the training data (labels: "
            f"{', '.join(map(repr, sorted(seen)[:10]))}{', ...' if len(seen) > 10 else ''}); pass the name of the "
            "out-of-scope class exactly, or no oos_label"
        )
    if label_order is not None and not set(seen) <= set(label_order):
        raise DataError(f"{train.source}: labels {sorted(set(seen) - set(label_order))[:5]} are not in the label list")


def _indexed(split: RawSplit, index: dict[str, int]) -> IntentSplit:
    """The raw split with label names replaced by their indices."""
    return IntentSplit(list(split.texts), [index[n] for n in split.labels])


def _check_fractions(validation_fraction: float, test_fraction: float, carve_val: bool, carve_test: bool) -> None:
    """Each fraction that is used lies in (0, 1), and together they leave training rows."""
    for name, value, used in (("validation_fraction", validation_fraction, carve_val),
                              ("test_fraction", test_fraction, carve_test)):
        if used and not (isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 < value < 1.0):
            raise ValueError(f"{name}={value!r} must be a number strictly between 0 and 1")
    if carve_val and carve_test and validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"validation_fraction + test_fraction = {validation_fraction + test_fraction:g} leaves no training data; "
            "their sum must be below 1"
        )


def assemble_dataset(
    name: str,
    raw: dict[str, RawSplit],
    *,
    variant: str | None = None,
    source: str,
    oos_label: str | int | None = None,
    label_order: Sequence[str] | None = None,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.1,
    split_seed: int = 0,
    origin: str = "",
) -> IntentDataset:
    """Check the raw splits, carve the missing ones from train (stratified, grouped by text), and index labels.

    ``raw`` has ``"train"`` and optionally ``"validation"`` and ``"test"``. A missing test split is
    ``test_fraction`` of train; a missing validation split is ``validation_fraction`` (of all the
    rows, when test is carved too). ``origin`` starts the notes (what was read).
    """
    carve_val, carve_test = "validation" not in raw, "test" not in raw
    _check_fractions(validation_fraction, test_fraction, carve_val, carve_test)
    oos = None if oos_label is None else label_name_of(oos_label)
    _check_labels(raw, oos, label_order)
    label_names = _label_order(raw["train"], label_order, oos)
    index = {n: i for i, n in enumerate(label_names)}
    train = _indexed(raw["train"], index)
    n_rows = len(train)
    parts = []
    if carve_test:
        train, test = _carve_validation(train, label_names, split_seed, fraction=test_fraction)
        parts.append(f"test {test_fraction:g}")
    else:
        test = _indexed(raw["test"], index)
    if carve_val:
        share = validation_fraction / (1.0 - test_fraction) if carve_test else validation_fraction
        train, validation = _carve_validation(train, label_names, split_seed, fraction=share)
        parts.append(f"validation {validation_fraction:g}")
    else:
        validation = _indexed(raw["validation"], index)
    notes = origin
    if parts:
        notes += (
            f" Carved from the {n_rows} training rows, stratified by label: {' and '.join(parts)} of each label "
            f"(split_seed={split_seed}; grouped by text; at least one row of a label with two or more)."
        )
    notes += f" Sizes: train {len(train)}, validation {len(validation)}, test {len(test)}; {len(label_names)} labels"
    notes += f", out-of-scope label {oos!r} (OOS-aware metrics)." if oos is not None else " (no out-of-scope label)."
    return IntentDataset(
        name=name,
        variant=variant,
        label_names=label_names,
        train=train,
        validation=validation,
        test=test,
        oos_label=index[oos] if oos is not None else None,
        source=source,
        notes=notes.strip(),
    )


def require_every_split(dataset: IntentDataset) -> IntentDataset:
    """``dataset`` if train, validation and test all hold examples; else a :class:`DataError` naming the
    source and the fix (an empty split would only fail deep inside training or evaluation)."""
    empty = [name for name, split in dataset.splits.items() if len(split) == 0]
    if empty:
        sizes = ", ".join(f"{name} {len(split)}" for name, split in dataset.splits.items())
        raise DataError(
            f"data {dataset.source} is too small to carve a {' and '.join(empty)} split ({sizes} rows over "
            f"{dataset.num_labels} labels); give at least 3 rows of some label (better 10+ per label), or pass the "
            "splits yourself with --train-file/--validation-file/--test-file"
        )
    return dataset


def label_name_of(value: str | int) -> str:
    """An ``oos_label`` argument as a label name (integers as decimals)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise ValueError(f"oos_label={value!r} must be the name (or integer value) of the out-of-scope class")
    return str(value).strip()


def warn_duplicates(dataset: IntentDataset, stacklevel: int = 3) -> int:
    """Warn (:class:`DuplicateTextWarning`) when a text occurs in more than one split; return the count."""
    texts = {name: set(split.texts) for name, split in dataset.splits.items()}
    pairs = {
        f"{a}/{b}": len(texts[a] & texts[b])
        for a, b in (("train", "validation"), ("train", "test"), ("validation", "test"))
    }
    shared = (texts["train"] & texts["validation"]) | (texts["train"] & texts["test"])
    shared |= texts["validation"] & texts["test"]
    if shared:
        detail = ", ".join(f"{k}: {v}" for k, v in pairs.items() if v)
        warnings.warn(
            f"{dataset.name}: {len(shared)} distinct text(s) occur in more than one split ({detail}), e.g. "
            f"{sorted(shared)[0]!r}; scores on them are not held out. Remove them from validation/test if that "
            "matters.",
            DuplicateTextWarning,
            stacklevel=stacklevel,
        )
    return len(shared)
