"""Banking77 (Casanueva et al., 2020) from its upstream ``train.csv``/``test.csv``/``categories.json``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .common import _clean_text, _require_file
from .readers import _read_csv_split, _read_json
from .splits import IntentDataset, _with_carved_validation


def _load_banking77_local(folder: Path, validation_fraction: float, seed: int) -> IntentDataset:
    """Banking77 from ``folder``; validation carved from ``train.csv`` (stratified, grouped by text)."""
    cat_path = _require_file(folder / "categories.json", "banking77")
    train_path = _require_file(folder / "train.csv", "banking77")
    test_path = _require_file(folder / "test.csv", "banking77")
    cats = _read_json(cat_path)
    if not (isinstance(cats, list) and cats and all(isinstance(c, str) and c.strip() for c in cats)):
        raise ValueError(f"{cat_path}: expected a JSON list of non-empty intent names")
    if len(set(cats)) != len(cats):
        dup = [c for c, n in Counter(cats).items() if n > 1]
        raise ValueError(f"{cat_path}: duplicate intent names {dup[:5]}")
    index = {c: i for i, c in enumerate(cats)}

    def example(path: Path, row: dict[str, str], where: str) -> tuple[str, int]:
        text = _clean_text(row["text"], where)
        if row["category"] not in index:
            raise ValueError(f"{where}: category {row['category']!r} is not in {cat_path.name}")
        return text, index[row["category"]]

    return _with_carved_validation(
        "banking77",
        cats,
        _read_csv_split([train_path], ",", ("text", "category"), example),
        _read_csv_split([test_path], ",", ("text", "category"), example),
        seed,
        fraction=validation_fraction,
        source=str(folder),
        notes=(
            f"Banking77 has no upstream validation split: validation = a stratified {validation_fraction:g} of "
            f"each intent in train.csv (seed={seed}, grouped by text), train = the rest; test = test.csv. "
            "Label order = categories.json."
        ),
    )
