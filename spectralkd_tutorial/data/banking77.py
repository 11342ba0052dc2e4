"""Banking77 (Casanueva et al., 2020) from its upstream ``train.csv``/``test.csv``/``categories.json``."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from .common import _clean_text, _require_file
from .readers import _read_csv_rows, _read_json
from .splits import IntentDataset, IntentSplit, _carve_validation


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

    def read(path: Path) -> IntentSplit:
        texts, labels = [], []
        for line, (text, category) in _read_csv_rows(path, ",", ("text", "category")):
            where = f"{path}: line {line}"
            texts.append(_clean_text(text, where))
            if category not in index:
                raise ValueError(f"{where}: category {category!r} is not in {cat_path.name}")
            labels.append(index[category])
        return IntentSplit(texts, labels)

    full_train = read(train_path)
    test = read(test_path)
    train, validation = _carve_validation(full_train, cats, seed, fraction=validation_fraction)
    return IntentDataset(
        name="banking77",
        variant=None,
        label_names=list(cats),
        train=train,
        validation=validation,
        test=test,
        oos_label=None,
        source=str(folder),
        notes=(
            f"Banking77 has no upstream validation split: validation = a stratified {validation_fraction:g} of "
            f"each intent in train.csv (seed={seed}, grouped by text), train = the rest; test = test.csv. "
            "Label order = categories.json."
        ),
    )


