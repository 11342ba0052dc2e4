"""CLINC150 (Larson et al., 2019) from its upstream ``data_*.json`` files."""

from __future__ import annotations

from pathlib import Path

from .common import OOS, _clean_text, _require_file
from .readers import _read_json
from .splits import IntentDataset, IntentSplit

_CLINC_FILES = {
    "full": "data_full.json",
    "small": "data_small.json",
    "imbalanced": "data_imbalanced.json",
    "plus": "data_oos_plus.json",
}
_CLINC_KEYS = ("train", "val", "test", "oos_train", "oos_val", "oos_test")


def _load_clinc150_local(folder: Path, variant: str) -> IntentDataset:
    """One CLINC150 variant: each split = its in-scope entries, then its out-of-scope list as ``oos``."""
    path = _require_file(folder / _CLINC_FILES[variant], "clinc150")
    obj = _read_json(path)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object with keys {list(_CLINC_KEYS)}, got {type(obj).__name__}")
    missing = [k for k in _CLINC_KEYS if k not in obj]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}; a CLINC150 file has keys {list(_CLINC_KEYS)}")
    pairs: dict[str, list[tuple[str, str]]] = {}
    for k in _CLINC_KEYS:
        entries = obj[k]
        if not isinstance(entries, list):
            raise ValueError(
                f"{path}: key {k!r} must hold a list of [text, intent] pairs, got {type(entries).__name__}"
            )
        out = []
        for i, entry in enumerate(entries):
            where = f"{path}: key {k!r}, entry {i}"
            if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[1], str)):
                raise ValueError(f"{where}: expected a [text, intent] pair of two strings, got {entry!r:.80}")
            text = _clean_text(entry[0], where)
            intent = entry[1].strip()
            if k.startswith("oos_") and intent != OOS:
                raise ValueError(f"{where}: out-of-scope entries must have intent 'oos', got {intent!r}")
            if not k.startswith("oos_") and (intent == OOS or not intent):
                raise ValueError(f"{where}: in-scope entries need a non-empty intent other than 'oos', got {intent!r}")
            out.append((text, intent))
        pairs[k] = out
    intents = sorted({intent for _, intent in pairs["train"]})
    label_names = intents + [OOS]
    index = {n: i for i, n in enumerate(label_names)}
    splits = {}
    for split_name, in_key, oos_key in (
        ("train", "train", "oos_train"),
        ("validation", "val", "oos_val"),
        ("test", "test", "oos_test"),
    ):
        texts, labels = [], []
        for k in (in_key, oos_key):
            for i, (text, intent) in enumerate(pairs[k]):
                if intent not in index:
                    raise ValueError(f"{path}: key {k!r}, entry {i}: intent {intent!r} does not occur in 'train'")
                texts.append(text)
                labels.append(index[intent])
        splits[split_name] = IntentSplit(texts, labels)
    return _clinc150_dataset(
        variant,
        label_names,
        splits,
        source=str(path),
        notes=(
            f"CLINC150 '{variant}' from upstream JSON: each split = in-scope entries followed by its "
            f"out-of-scope list (oos_train/oos_val/oos_test) labelled 'oos'. Labels: {len(intents)} intents "
            "sorted alphabetically, then 'oos'."
        ),
    )


def _clinc150_dataset(
    variant: str, label_names: list[str], splits: dict[str, IntentSplit], *, source: str, notes: str
) -> IntentDataset:
    """CLINC150 from its three ``splits``; ``label_names`` = the intents, then ``"oos"`` (the out-of-scope label)."""
    return IntentDataset(
        name="clinc150",
        variant=variant,
        label_names=label_names,
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        oos_label=len(label_names) - 1,
        source=source,
        notes=notes,
    )
