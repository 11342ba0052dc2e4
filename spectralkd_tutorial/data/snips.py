"""SNIPS (Coucke et al., 2018; 2017-06 custom intent engines) from its upstream JSON files."""

from __future__ import annotations

from pathlib import Path

from .common import DataNotAvailableError, _clean_text, _missing_message, _require_file
from .readers import _read_json
from .splits import IntentDataset, IntentSplit, _with_carved_validation

_SNIPS_VALIDATION_PER_INTENT = 100


def _read_snips_file(path: Path, intent: str) -> list[str]:
    """The utterances of one SNIPS file (segments' ``text`` joined), checked against ``intent``."""
    obj = _read_json(path)
    if not isinstance(obj, dict) or list(obj) != [intent]:
        keys = list(obj) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path}: expected a JSON object with the single key {intent!r}, got {keys}")
    utterances = obj[intent]
    if not isinstance(utterances, list):
        raise ValueError(f"{path}: key {intent!r} must hold a list of utterances")
    texts = []
    for i, utt in enumerate(utterances):
        where = f"{path}: key {intent!r}, utterance {i}"
        if not isinstance(utt, dict) or not isinstance(utt.get("data"), list):
            raise ValueError(f"{where}: expected an object with a 'data' list of segments")
        parts = []
        for j, seg in enumerate(utt["data"]):
            if not isinstance(seg, dict) or not isinstance(seg.get("text"), str):
                raise ValueError(f"{where}, segment {j}: expected an object with a string 'text' key")
            parts.append(seg["text"])
        texts.append(_clean_text("".join(parts), where))
    return texts


def _load_snips_local(folder: Path, seed: int) -> IntentDataset:
    """SNIPS with the Goo et al. (2018) split: 100 per intent held out of ``train_<I>_full.json``."""
    intents = sorted(
        p.parent.name for p in folder.glob("*/train_*_full.json") if p.name == f"train_{p.parent.name}_full.json"
    )
    if not intents:
        raise DataNotAvailableError(_missing_message("snips", folder, folder / "<Intent>" / "train_<Intent>_full.json"))
    full_train_t, full_train_y, test_t, test_y = [], [], [], []
    for y, intent in enumerate(intents):
        tr = _read_snips_file(_require_file(folder / intent / f"train_{intent}_full.json", "snips"), intent)
        te = _read_snips_file(_require_file(folder / intent / f"validate_{intent}.json", "snips"), intent)
        full_train_t += tr
        full_train_y += [y] * len(tr)
        test_t += te
        test_y += [y] * len(te)
    return _with_carved_validation(
        "snips",
        intents,
        IntentSplit(full_train_t, full_train_y),
        IntentSplit(test_t, test_y),
        seed,
        per_label=_SNIPS_VALIDATION_PER_INTENT,
        source=str(folder),
        notes=(
            "SNIPS 2017-06 custom intent engines, split as in Goo et al. (2018): validation = "
            f"{_SNIPS_VALIDATION_PER_INTENT} utterances per intent held out of train_<I>_full.json (seed={seed}, "
            "grouped by text), train = the rest; test = validate_<I>.json. The 300-utterance train_<I>.json pools "
            "are not used; validation_fraction is ignored."
        ),
    )
