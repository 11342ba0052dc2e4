"""HWU64 (Liu et al., 2019), cross-validation fold 1, from its upstream semicolon-separated CSVs."""

from __future__ import annotations

import re
from pathlib import Path

from .common import DataNotAvailableError, _missing_message
from .readers import _read_csv_split
from .splits import IntentDataset, _with_carved_validation

_HWU_COLUMNS = ("answerid", "scenario", "intent", "answer_annotation", "answer_from_anno", "answer_from_user")
_SLOT_RE = re.compile(r"\[\s*[^\[\]:]+?\s*:\s*([^\[\]]*?)\s*\]")


def _hwu_text(row: dict[str, str], where: str) -> str:
    """The utterance of one HWU64 row: ``answer_from_anno``, else the de-bracketed annotation, else the raw answer."""
    for candidate in (
        row["answer_from_anno"],
        _SLOT_RE.sub(r"\1", row["answer_annotation"]),
        row["answer_from_user"],
    ):
        if candidate.strip():
            return " ".join(candidate.split())
    raise ValueError(f"{where}: empty text (answer_from_anno, answer_annotation and answer_from_user are all empty)")


def _load_hwu64_local(folder: Path, validation_fraction: float, seed: int) -> IntentDataset:
    """HWU64 fold 1 from ``folder`` (or the fold itself); label = CSV file name; validation carved from train."""
    if (folder / "KFold_1").is_dir():
        fold = folder / "KFold_1"
    elif (folder / "trainset").is_dir():
        fold = folder
    else:
        raise DataNotAvailableError(_missing_message("hwu64", folder, folder / "KFold_1" / "trainset"))
    train_dir = fold / "trainset"
    test_dir = fold / "testset" / "csv" if (fold / "testset" / "csv").is_dir() else fold / "testset"
    if not train_dir.is_dir():
        raise DataNotAvailableError(_missing_message("hwu64", fold, train_dir))
    if not test_dir.is_dir():
        raise DataNotAvailableError(_missing_message("hwu64", fold, fold / "testset" / "csv"))
    train_files = sorted(train_dir.glob("*.csv"))
    test_files = sorted(test_dir.glob("*.csv"))
    if not train_files:
        raise DataNotAvailableError(_missing_message("hwu64", fold, train_dir / "<intent>.csv"))
    label_names = [p.stem for p in train_files]
    test_only = sorted({p.stem for p in test_files} - set(label_names))
    if test_only:
        raise ValueError(f"{test_dir}: intents {test_only[:5]} have a test file but no file in {train_dir}")
    index = {n: i for i, n in enumerate(label_names)}

    def example(path: Path, row: dict[str, str], where: str) -> tuple[str, int]:
        label = f"{row['scenario'].strip()}_{row['intent'].strip()}"
        if label != path.stem:
            raise ValueError(f"{where}: scenario_intent {label!r} does not match the file name {path.name!r}")
        return _hwu_text(row, where), index[label]

    return _with_carved_validation(
        "hwu64",
        label_names,
        _read_csv_split(train_files, ";", _HWU_COLUMNS, example),
        _read_csv_split(test_files, ";", _HWU_COLUMNS, example),
        seed,
        fraction=validation_fraction,
        source=str(fold),
        notes=(
            "HWU64 cross-validation fold 1 (KFold_1). Text = answer_from_anno (fallbacks: answer_annotation "
            "without slot brackets, then answer_from_user); label = file name (scenario_intent). "
            f"No upstream validation split: validation = a stratified {validation_fraction:g} of each intent in "
            f"trainset (seed={seed}, grouped by text), train = the rest; test = testset/csv."
        ),
    )
