"""The project's own small intent set, generated from templates in ``resources/embedded_intents.json``."""

from __future__ import annotations

import json
import re
import zlib
from functools import lru_cache
from importlib import resources
from itertools import product
from typing import Any, Sequence

from .common import OOS, SPLITS
from .splits import IntentDataset, IntentSplit

_RESOURCE = "embedded_intents.json"
_FIELD_RE = re.compile(r"{(\w+)}")


@lru_cache(maxsize=1)
def _templates() -> dict[str, Any]:
    """The resource file: ``per_intent``, ``slots`` (name -> values) and ``templates`` (intent -> templates)."""
    text = resources.files("spectralkd_tutorial").joinpath("resources", _RESOURCE).read_text(encoding="utf-8")
    obj = json.loads(text)
    missing = [k for k in ("per_intent", "slots", "templates") if k not in obj]
    if missing:
        raise ValueError(f"spectralkd_tutorial/resources/{_RESOURCE}: missing key(s) {missing}")
    return obj


def _crc(text: str) -> int:
    """CRC-32 of the UTF-8 text: a stable, process-independent sort key."""
    return zlib.crc32(text.encode("utf-8"))


def _expand_intent(templates: Sequence[str], slots: dict[str, Sequence[str]], n: int) -> list[str]:
    """``n`` distinct utterances: every template's fillings in a fixed pseudo-random order, round-robin."""
    per_template: list[list[str]] = []
    for t in templates:
        fields = _FIELD_RE.findall(t)
        fills = [t.format(**dict(zip(fields, combo))) for combo in product(*(slots[f] for f in fields))]
        per_template.append(sorted(dict.fromkeys(fills), key=lambda s: (_crc(s), s)))
    out: list[str] = []
    seen: set[str] = set()
    depth = max(len(p) for p in per_template)
    for j in range(depth):
        for fills in per_template:
            if j < len(fills) and fills[j] not in seen:
                seen.add(fills[j])
                out.append(fills[j])
                if len(out) == n:
                    return out
    raise AssertionError(f"templates yield only {len(out)} distinct utterances, need {n}")


def embedded_intents() -> IntentDataset:
    """The project's own small English intent set (no files, no network, fully deterministic).

    8 in-scope intents (alarm, balance, goodbye, greeting, music, timer, translate, weather) and
    ``oos``, 40 utterances each (360 in all), produced from hand-written templates and slot values.
    Within each intent the utterances are ordered by a CRC-32 of their text and dealt 3:1:1 to
    train/validation/test, giving 24/8/8 per intent (216/72/72). Labels: the intents sorted, then
    ``"oos"`` (``oos_label == 8``).
    """
    spec = _templates()
    per_intent = int(spec["per_intent"])
    templates: dict[str, list[str]] = spec["templates"]
    intents = sorted(k for k in templates if k != OOS)
    label_names = intents + [OOS]
    parts: dict[str, tuple[list[str], list[int]]] = {s: ([], []) for s in SPLITS}
    for y, intent in enumerate(label_names):
        utterances = _expand_intent(templates[intent], spec["slots"], per_intent)
        for pos, text in enumerate(sorted(utterances, key=lambda s: (_crc("split:" + s), s))):
            split = ("train", "train", "train", "validation", "test")[pos % 5]
            parts[split][0].append(text)
            parts[split][1].append(y)
    return IntentDataset(
        name="embedded",
        variant=None,
        label_names=label_names,
        train=IntentSplit(*parts["train"]),
        validation=IntentSplit(*parts["validation"]),
        test=IntentSplit(*parts["test"]),
        oos_label=len(label_names) - 1,
        source="spectralkd_tutorial.data.embedded_intents (templates in the package)",
        notes=(
            f"{len(intents)} intents + 'oos', {per_intent} template-generated utterances each, "
            "dealt 3:1:1 to train/validation/test by a CRC-32 order of the text (deterministic)."
        ),
    )
