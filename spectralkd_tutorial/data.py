"""Intent-classification data: CLINC150, Banking77, HWU64, SNIPS, and a small embedded set.

Every loader returns an :class:`IntentDataset`: three :class:`IntentSplit` objects (``train``,
``validation``, ``test``) holding parallel lists of texts and integer labels, the ordered
``label_names`` those integers index, and ``oos_label`` (the index of ``"oos"`` where the data set
has an out-of-scope class). ``source`` says which file or hub id was read and ``notes`` says how the
splits were made where upstream does not provide them. Texts are stripped of surrounding white
space; nothing else is changed, and no row is dropped (duplicates are kept).

Where the data come from
------------------------
``source="local"`` reads the upstream files, in their upstream formats, from a directory given by
``data_dir`` or the environment variable ``SPECTRALKD_DATA_DIR``. That directory holds one
sub-folder per data set (``clinc150/``, ``banking77/``, ``hwu64/``, ``snips/``); ``data_dir`` may
also point straight at one data set's own folder. ``source="hub"`` uses ``datasets.load_dataset``
on the parquet data the Hugging Face hub serves (recent ``datasets`` releases no longer run
loading scripts). ``source="auto"`` (the default) reads locally when a data directory is
configured and contains the data set, and otherwise goes to the hub; when ``HF_HUB_OFFLINE`` or
``HF_DATASETS_OFFLINE`` is set it never touches the network: it reads the ``datasets`` cache if
that library is itself in offline mode, and otherwise raises :class:`DataNotAvailableError`
(a ``FileNotFoundError``) naming ``SPECTRALKD_DATA_DIR`` and the hub id.

The data sets, their licences and their split conventions
---------------------------------------------------------
**CLINC150** (Larson et al., EMNLP-IJCNLP 2019; ``clinc/oos-eval``; CC BY 3.0). 150 in-scope
intents in 10 domains plus out-of-scope queries. Each ``data_*.json`` holds ``train``/``val``/
``test`` (in scope) and ``oos_train``/``oos_val``/``oos_test``; we merge each out-of-scope list
into the split of the same name with label ``"oos"``. ``label_names`` are the 150 intents sorted
alphabetically, then ``"oos"`` (so ``oos_label == 150``). Variants (files):

=============  ======================  =====  ====  =====  =========  =======  ========
variant        file                    train  val   test   oos_train  oos_val  oos_test
=============  ======================  =====  ====  =====  =========  =======  ========
``full``       data_full.json          15000  3000  4500   100        100      1000
``small``      data_small.json         7500   3000  4500   100        100      1000
``imbalanced`` data_imbalanced.json    10525  3000  4500   100        100      1000
``plus``       data_oos_plus.json      15000  3000  4500   250        100      1000
=============  ======================  =====  ====  =====  =========  =======  ========

The hub (``clinc/clinc_oos``) has the configs ``small``, ``imbalanced`` and ``plus`` but no
``full``; ``plus`` has the same in-scope data as ``full`` with 250 instead of 100 out-of-scope
training queries. Asking the hub for ``full`` raises; ``variant=None`` means ``full`` locally and
``plus`` from the hub (and ``notes`` says so).

**Banking77** (Casanueva et al., 2020; ``PolyAI-LDN/task-specific-datasets``; CC BY 4.0). 77
fine-grained banking intents; ``train.csv`` (10,003 rows) and ``test.csv`` (3,080 rows), header
``text,category``, read with the ``csv`` module. ``label_names`` follow ``categories.json``
(from the hub: the order of the ``label`` ClassLabel). There is no upstream validation split: we
carve a deterministic, stratified one from train (``validation_fraction`` of each intent, chosen
with ``seed``); the test split is untouched.

**HWU64** (Liu et al., IWSDS 2019; ``xliuhw/NLU-Evaluation-Data``; CC BY 4.0). 64 intents in 18
scenarios. Only the authors' cross-validation fold 1 is read (``KFold_1/trainset/*.csv``: 9,960
rows; ``KFold_1/testset/csv/*.csv``: 1,076 rows): semicolon-separated CSVs, one per intent. The
label is the file name without ``.csv`` (``scenario_intent``, checked against each row's
``scenario`` and ``intent``); the text is ``answer_from_anno`` (the normalised utterance without
slot brackets). Should that field be empty, we fall back to ``answer_annotation`` with its
``[slot : value]`` brackets reduced to the value, then to ``answer_from_user`` (this never happens
in fold 1). Validation is carved from train as for Banking77. There is no canonical hub copy, so
HWU64 is local only.

**SNIPS** (Coucke et al., 2018; ``sonos/nlu-benchmark``, 2017-06 custom intent engines; CC0 1.0,
with a request to cite the paper). 7 intents. We follow the split most papers use (Goo et al.,
2018: 13,084 / 700 / 700): train is ``train_<I>_full.json`` minus a held-out validation set of 100
utterances per intent, carved deterministically with ``seed`` (``validation_fraction`` is not used:
100 per intent is the convention), and test is ``validate_<I>.json`` (100 per intent). The
300-utterance ``train_<I>.json`` pools are not used. Utterance text is the concatenation of the
segments' ``text``. ``PlayMusic/train_PlayMusic_full.json`` stores one emoji as a UTF-8-encoded
surrogate pair; we decode with ``surrogatepass`` and re-join the pair, so the text holds the real
emoji. Local only (no canonical hub copy).

**embedded** (:func:`embedded_intents`): 360 short English utterances written by this project
from templates and slot values (8 intents + ``oos``, 40 each), split 24/8/8 per intent. It needs
no files and no network and is the data of the ``quick`` preset.

Carved validation splits are grouped by text (all copies of a duplicated text go to the same
side), so no validation text also occurs in the remaining training split.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = [
    "DATA_DIR_ENV",
    "DATASET_NAMES",
    "CLINC150_VARIANTS",
    "HUB_IDS",
    "DataNotAvailableError",
    "IntentSplit",
    "IntentDataset",
    "load_intent_dataset",
    "embedded_intents",
    "resolve_data_dir",
]

DATA_DIR_ENV = "SPECTRALKD_DATA_DIR"
DATASET_NAMES = ("clinc150", "banking77", "hwu64", "snips", "embedded")
CLINC150_VARIANTS = ("full", "small", "imbalanced", "plus")
HUB_IDS = {"clinc150": "clinc/clinc_oos", "banking77": "PolyAI/banking77"}
OOS = "oos"
SPLITS = ("train", "validation", "test")

_CLINC_FILES = {
    "full": "data_full.json",
    "small": "data_small.json",
    "imbalanced": "data_imbalanced.json",
    "plus": "data_oos_plus.json",
}
_CLINC_KEYS = ("train", "val", "test", "oos_train", "oos_val", "oos_test")
_ALIASES = {"clinc": "clinc150", "clinc_oos": "clinc150", "banking": "banking77", "hwu": "hwu64"}
_TRUE = {"1", "ON", "YES", "TRUE"}
_SNIPS_VALIDATION_PER_INTENT = 100
_HWU_COLUMNS = ("answerid", "scenario", "intent", "answer_annotation", "answer_from_anno", "answer_from_user")


class DataNotAvailableError(FileNotFoundError):
    """The requested data set is not on disk and cannot (or may not) be fetched from the hub."""


# --------------------------------------------------------------------------------------------
# containers
# --------------------------------------------------------------------------------------------


@dataclass
class IntentSplit:
    """One split: ``texts[i]`` has label ``labels[i]`` (an index into ``label_names``)."""

    texts: list[str]
    labels: list[int]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(
                f"IntentSplit: {len(self.texts)} texts but {len(self.labels)} labels; they must be parallel lists"
            )

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, indices: Iterable[int]) -> "IntentSplit":
        """A new split with the rows at ``indices`` (in that order)."""
        idx = list(indices)
        return IntentSplit([self.texts[i] for i in idx], [self.labels[i] for i in idx])

    def label_counts(self) -> Counter:
        """``Counter`` of label index -> number of rows."""
        return Counter(self.labels)


@dataclass
class IntentDataset:
    """An intent-classification data set with train/validation/test splits.

    ``name`` is one of :data:`DATASET_NAMES`; ``variant`` is the CLINC150 variant (else ``None``);
    ``oos_label`` is the index of ``"oos"`` in ``label_names`` (CLINC150 and the embedded set),
    else ``None``.
    """

    name: str
    variant: str | None
    label_names: list[str]
    train: IntentSplit
    validation: IntentSplit
    test: IntentSplit
    oos_label: int | None
    source: str
    notes: str = ""

    def __post_init__(self) -> None:
        n = len(self.label_names)
        if len(set(self.label_names)) != n:
            dup = [k for k, c in Counter(self.label_names).items() if c > 1]
            raise ValueError(f"IntentDataset {self.name!r}: duplicate label names {dup[:5]}")
        if self.oos_label is not None and not (0 <= self.oos_label < n):
            raise ValueError(f"IntentDataset {self.name!r}: oos_label={self.oos_label} is not in 0..{n - 1}")
        for split_name, split in self.splits.items():
            bad = [y for y in split.labels if not (isinstance(y, int) and 0 <= y < n)]
            if bad:
                raise ValueError(f"IntentDataset {self.name!r}: {split_name} has label {bad[0]!r}, outside 0..{n - 1}")

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def splits(self) -> dict[str, IntentSplit]:
        """``{"train": ..., "validation": ..., "test": ...}``."""
        return {"train": self.train, "validation": self.validation, "test": self.test}

    def subset(
        self,
        *,
        train: int | None = None,
        validation: int | None = None,
        test: int | None = None,
        seed: int = 0,
    ) -> "IntentDataset":
        """A deterministic, stratified sub-sample for quick runs (``None`` keeps a split whole).

        Each label gets a share of the requested size proportional to its frequency in the split
        (largest-remainder rounding, so rare labels may get none when the request is smaller than
        the number of labels); rows within a label are chosen with ``random.Random`` seeded by
        ``seed`` and the label. Kept rows stay in their original order. ``label_names`` and
        ``oos_label`` are unchanged.
        """
        wanted = {"train": train, "validation": validation, "test": test}
        new: dict[str, IntentSplit] = {}
        parts = []
        for split_name, split in self.splits.items():
            n = wanted[split_name]
            if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 0):
                raise ValueError(f"subset: {split_name}={n!r} must be a non-negative int or None")
            if n is None or n >= len(split):
                new[split_name] = split.take(range(len(split)))
                continue
            new[split_name] = split.take(_stratified_sample(split.labels, n, seed, self.label_names, split_name))
            parts.append(f"{split_name}={n}")
        notes = self.notes
        if parts:
            notes = (notes + " " if notes else "") + f"Subsampled ({', '.join(parts)}, seed={seed}, stratified)."
        return IntentDataset(
            name=self.name,
            variant=self.variant,
            label_names=list(self.label_names),
            train=new["train"],
            validation=new["validation"],
            test=new["test"],
            oos_label=self.oos_label,
            source=self.source,
            notes=notes,
        )

    def summary(self) -> dict[str, Any]:
        """Counts per split, number of labels, out-of-scope counts (JSON-serialisable)."""
        splits: dict[str, Any] = {}
        for split_name, split in self.splits.items():
            counts = split.label_counts()
            n_oos = counts.get(self.oos_label, 0) if self.oos_label is not None else 0
            in_scope_counts = [c for y, c in counts.items() if y != self.oos_label]
            splits[split_name] = {
                "examples": len(split),
                "in_scope": len(split) - n_oos,
                "oos": n_oos,
                "labels_present": len(counts),
                "min_per_label": min(in_scope_counts) if in_scope_counts else 0,
                "max_per_label": max(in_scope_counts) if in_scope_counts else 0,
            }
        return {
            "name": self.name,
            "variant": self.variant,
            "num_labels": self.num_labels,
            "num_in_scope_labels": self.num_labels - (self.oos_label is not None),
            "oos_label": self.oos_label,
            "splits": splits,
            "total_examples": sum(s["examples"] for s in splits.values()),
            "source": self.source,
            "notes": self.notes,
        }


def _stratified_sample(labels: Sequence[int], n: int, seed: int, label_names: Sequence[str], tag: str) -> list[int]:
    by_label: dict[int, list[int]] = defaultdict(list)
    for i, y in enumerate(labels):
        by_label[y].append(i)
    total = len(labels)
    quotas = {y: n * len(ix) / total for y, ix in by_label.items()}
    take = {y: int(q) for y, q in quotas.items()}
    remainder = n - sum(take.values())
    # largest fractional part first; ties broken by label index (deterministic)
    for y in sorted(quotas, key=lambda y: (-(quotas[y] - take[y]), y))[:remainder]:
        take[y] += 1
    chosen: list[int] = []
    for y, ix in by_label.items():
        rng = random.Random(f"subset:{seed}:{tag}:{label_names[y]}")
        chosen.extend(rng.sample(ix, take[y]))
    return sorted(chosen)


# --------------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------------


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


def load_intent_dataset(
    name: str,
    *,
    variant: str | None = None,
    data_dir: str | os.PathLike | None = None,
    source: str = "auto",
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> IntentDataset:
    """Load an intent data set by name (see the module docstring for formats and splits).

    ``name``: one of :data:`DATASET_NAMES`. ``variant``: CLINC150 only (``full``, ``small``,
    ``imbalanced``, ``plus``; ``None`` = ``full`` locally, ``plus`` from the hub).
    ``data_dir``: directory with ``clinc150/``, ``banking77/``, ... (or one data set's own folder);
    defaults to ``$SPECTRALKD_DATA_DIR``. ``source``: ``"auto"``, ``"local"`` or ``"hub"``.
    ``validation_fraction`` and ``seed``: how the validation split is carved from train where
    upstream has none (Banking77, HWU64; SNIPS uses a fixed 100 per intent with ``seed``).
    """
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

    if key == "embedded":
        return embedded_intents()

    root = resolve_data_dir(data_dir)
    if source == "hub" or (source == "auto" and (root is None or _find_dataset_dir(root, key) is None)):
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


def _missing_message(key: str, root: Path | None, path: Path | None) -> str:
    if path is not None:
        what = f"{key}: file {path} not found."
    elif root is None:
        what = f"{key}: no data directory given (data_dir=None and {DATA_DIR_ENV} is not set)."
    elif not root.exists():
        what = f"{key}: data directory {root} does not exist."
    else:
        what = f"{key}: {root} has no {key}/ folder (and is not itself a {key} folder)."
    how = (
        f" Put the upstream {key} files in <dir>/{key}/ (see the data set's upstream repository) and pass "
        f"data_dir=<dir> or set {DATA_DIR_ENV}=<dir>"
    )
    if key in HUB_IDS:
        how += f", or use source='hub' to download {HUB_IDS[key]} from the Hugging Face hub."
    else:
        how += f"; {key} has no canonical Hugging Face hub copy."
    return what + how


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


def _require_file(path: Path, key: str) -> Path:
    if not path.is_file():
        raise DataNotAvailableError(_missing_message(key, path.parent, path))
    return path


# --------------------------------------------------------------------------------------------
# carving a validation split from train
# --------------------------------------------------------------------------------------------


def _carve_validation(
    split: IntentSplit,
    label_names: Sequence[str],
    seed: int,
    *,
    fraction: float | None = None,
    per_label: int | None = None,
) -> tuple[IntentSplit, IntentSplit]:
    """Split ``split`` into (train, validation), stratified by label and grouped by text.

    For each label, the distinct texts are shuffled with ``random.Random(f"{seed}:{label}")`` and
    taken in that order (all copies of a text together) until the label's quota is met: ``per_label``
    rows, or ``round(fraction * rows)`` (at least 1 and at most rows - 1 when the label has 2+ rows).
    A text that also occurs under another label in train stays in train. Both outputs keep the
    original row order.
    """
    rows_by_label: dict[int, dict[str, list[int]]] = defaultdict(dict)
    for i, (text, y) in enumerate(zip(split.texts, split.labels)):
        rows_by_label[y].setdefault(text, []).append(i)
    val_idx: list[int] = []
    for y in sorted(rows_by_label):
        groups = list(rows_by_label[y].values())
        n_rows = sum(len(g) for g in groups)
        if per_label is not None:
            quota = min(per_label, n_rows - 1) if n_rows > 1 else 0
        else:
            quota = int(round(fraction * n_rows)) if fraction is not None else 0
            quota = min(max(quota, 1), n_rows - 1) if n_rows > 1 else 0
        rng = random.Random(f"{seed}:{label_names[y]}")
        rng.shuffle(groups)
        taken = 0
        for g in groups:
            if taken >= quota:
                break
            if taken + len(g) > quota:
                continue  # a duplicated text that would overshoot: leave it in train
            val_idx.extend(g)
            taken += len(g)
    val_set = set(val_idx)
    # a text filed under two labels could otherwise end up on both sides: keep such rows in train
    train_texts = {t for i, t in enumerate(split.texts) if i not in val_set}
    val_set = {i for i in val_set if split.texts[i] not in train_texts}
    train_idx = [i for i in range(len(split)) if i not in val_set]
    return split.take(train_idx), split.take(sorted(val_set))


# --------------------------------------------------------------------------------------------
# local readers
# --------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # e.g. SNIPS PlayMusic: an emoji stored as a UTF-8-encoded UTF-16 surrogate pair.
        text = raw.decode("utf-8", errors="surrogatepass")
        try:
            text = text.encode("utf-16-le", errors="surrogatepass").decode("utf-16-le")
        except UnicodeDecodeError:  # an unpaired surrogate: replace it
            text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc


def _clean_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: text must be a string, got {type(value).__name__} {value!r:.60}")
    text = value.strip()
    if not text:
        raise ValueError(f"{where}: empty text")
    return text


def _load_clinc150_local(folder: Path, variant: str) -> IntentDataset:
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
    return IntentDataset(
        name="clinc150",
        variant=variant,
        label_names=label_names,
        train=splits["train"],
        validation=splits["validation"],
        test=splits["test"],
        oos_label=len(label_names) - 1,
        source=str(path),
        notes=(
            f"CLINC150 '{variant}' from upstream JSON: each split = in-scope entries followed by its "
            f"out-of-scope list (oos_train/oos_val/oos_test) labelled 'oos'. Labels: {len(intents)} intents "
            "sorted alphabetically, then 'oos'."
        ),
    )


def _read_csv_rows(path: Path, delimiter: str, header: Sequence[str]) -> list[tuple[int, list[str]]]:
    """Rows (with their line numbers) of a CSV whose first row must equal ``header``."""
    out = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        try:
            first = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: empty file; expected a header row {delimiter.join(header)!r}") from None
        except csv.Error as exc:
            raise ValueError(f"{path}: line {reader.line_num}: {exc}") from exc
        if [c.strip() for c in first] != list(header):
            raise ValueError(f"{path}: header is {first!r}; expected {list(header)!r}")
        try:
            for row in reader:
                if not row:
                    continue  # blank line
                if len(row) != len(header):
                    raise ValueError(
                        f"{path}: line {reader.line_num}: {len(row)} fields, expected {len(header)} "
                        f"({delimiter.join(header)!r}); got {row!r:.100}"
                    )
                out.append((reader.line_num, row))
        except csv.Error as exc:
            raise ValueError(f"{path}: line {reader.line_num}: {exc}") from exc
    return out


def _load_banking77_local(folder: Path, validation_fraction: float, seed: int) -> IntentDataset:
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


_SLOT_RE = re.compile(r"\[\s*[^\[\]:]+?\s*:\s*([^\[\]]*?)\s*\]")


def _hwu_text(row: dict[str, str], where: str) -> str:
    for candidate in (
        row["answer_from_anno"],
        _SLOT_RE.sub(r"\1", row["answer_annotation"]),
        row["answer_from_user"],
    ):
        if candidate.strip():
            return " ".join(candidate.split())
    raise ValueError(f"{where}: empty text (answer_from_anno, answer_annotation and answer_from_user are all empty)")


def _load_hwu64_local(folder: Path, validation_fraction: float, seed: int) -> IntentDataset:
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

    def read(files: list[Path]) -> IntentSplit:
        texts, labels = [], []
        for path in files:
            for line, values in _read_csv_rows(path, ";", _HWU_COLUMNS):
                row = dict(zip(_HWU_COLUMNS, values))
                where = f"{path}: line {line}"
                label = f"{row['scenario'].strip()}_{row['intent'].strip()}"
                if label != path.stem:
                    raise ValueError(f"{where}: scenario_intent {label!r} does not match the file name {path.name!r}")
                texts.append(_hwu_text(row, where))
                labels.append(index[label])
        return IntentSplit(texts, labels)

    full_train = read(train_files)
    test = read(test_files)
    train, validation = _carve_validation(full_train, label_names, seed, fraction=validation_fraction)
    return IntentDataset(
        name="hwu64",
        variant=None,
        label_names=label_names,
        train=train,
        validation=validation,
        test=test,
        oos_label=None,
        source=str(fold),
        notes=(
            "HWU64 cross-validation fold 1 (KFold_1). Text = answer_from_anno (fallbacks: answer_annotation "
            "without slot brackets, then answer_from_user); label = file name (scenario_intent). "
            f"No upstream validation split: validation = a stratified {validation_fraction:g} of each intent in "
            f"trainset (seed={seed}, grouped by text), train = the rest; test = testset/csv."
        ),
    )


def _read_snips_file(path: Path, intent: str) -> list[str]:
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
    train, validation = _carve_validation(
        IntentSplit(full_train_t, full_train_y), intents, seed, per_label=_SNIPS_VALIDATION_PER_INTENT
    )
    return IntentDataset(
        name="snips",
        variant=None,
        label_names=intents,
        train=train,
        validation=validation,
        test=IntentSplit(test_t, test_y),
        oos_label=None,
        source=str(folder),
        notes=(
            "SNIPS 2017-06 custom intent engines, split as in Goo et al. (2018): validation = "
            f"{_SNIPS_VALIDATION_PER_INTENT} utterances per intent held out of train_<I>_full.json (seed={seed}, "
            "grouped by text), train = the rest; test = validate_<I>.json. The 300-utterance train_<I>.json pools "
            "are not used; validation_fraction is ignored."
        ),
    )


# --------------------------------------------------------------------------------------------
# Hugging Face hub
# --------------------------------------------------------------------------------------------


def _env_offline() -> bool:
    return any(os.environ.get(v, "").strip().upper() in _TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def _datasets_offline_mode() -> bool:
    """Whether the imported ``datasets`` library itself will stay off the network."""
    import datasets

    return bool(getattr(datasets.config, "HF_HUB_OFFLINE", False))


def _load_from_hub_checked(
    key: str, variant: str | None, validation_fraction: float, seed: int, root: Path | None, note: str
) -> IntentDataset:
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
    from datasets import load_dataset

    hub_id = HUB_IDS[key]
    if key == "clinc150":
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
        return IntentDataset(
            name="clinc150",
            variant=config,
            label_names=label_names,
            train=splits["train"],
            validation=splits["validation"],
            test=splits["test"],
            oos_label=len(label_names) - 1,
            source=f"hf://datasets/{hub_id} (config {config!r})",
            notes=notes,
        )
    # banking77: the main branch held a loading script; fall back to the hub's parquet conversion.
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
    train, validation = _carve_validation(IntentSplit(train_t, train_y), names, seed, fraction=validation_fraction)
    return IntentDataset(
        name="banking77",
        variant=None,
        label_names=names,
        train=train,
        validation=validation,
        test=IntentSplit(test_t, test_y),
        oos_label=None,
        source=f"hf://datasets/{hub_id}" + (f" (revision {revision})" if revision else ""),
        notes=(
            "Banking77 from the hub; no upstream validation split: validation = a stratified "
            f"{validation_fraction:g} of each intent in train (seed={seed}, grouped by text), train = the rest. "
            "Label order = the hub's ClassLabel."
        ),
    )


# --------------------------------------------------------------------------------------------
# the embedded set
# --------------------------------------------------------------------------------------------

_EMBEDDED_PER_INTENT = 40

_SLOTS: dict[str, tuple[str, ...]] = {
    "city": ("London", "Paris", "Tokyo", "Chicago", "Nairobi", "Lima", "Oslo", "Sydney", "Toronto", "Madrid"),
    "day": ("today", "tomorrow", "this weekend", "on Friday", "tonight"),
    "time": ("6 am", "6:30", "7 o'clock", "5:45 am", "8 in the morning", "9:15", "noon", "10 pm"),
    "when": ("tomorrow", "on Monday", "every weekday", "on Saturday"),
    "song": ("Yellow Submarine", "Bohemian Rhapsody", "Hey Jude", "Clair de Lune", "Take Five", "Dancing Queen"),
    "artist": ("the Beatles", "Miles Davis", "Adele", "Beyonce", "Bach", "Nina Simone"),
    "genre": ("jazz", "rock", "classical", "hip hop", "reggae", "lo-fi"),
    "duration": (
        "five minutes",
        "ten minutes",
        "90 seconds",
        "half an hour",
        "twenty minutes",
        "an hour",
        "three minutes",
    ),
    "food": ("pasta", "eggs", "cake", "rice", "tea", "pizza"),
    "hello": ("hi", "hello", "hey", "greetings", "howdy", "hiya"),
    "buddy": ("buddy", "assistant", "friend", "robot"),
    "daypart": ("morning", "afternoon", "evening"),
    "bye": ("bye", "goodbye", "bye bye", "farewell", "cheerio"),
    "later": ("later", "tomorrow", "soon", "next time"),
    "period": ("today", "now", "tonight"),
    "phrase": ("thank you", "good morning", "where is the station", "I love you", "how much does this cost", "cheers"),
    "language": ("French", "Spanish", "German", "Japanese", "Italian", "Swahili"),
    "word": ("cat", "water", "bread", "friend", "library"),
    "account": ("checking", "savings", "joint", "credit card", "business", "student"),
    "purchase": ("a new laptop", "a holiday", "dinner out", "the rent"),
    "dish": ("banana bread", "sourdough", "lasagna", "pancakes"),
    "book": ("Hamlet", "Pride and Prejudice", "Dune", "Don Quixote"),
    "country": ("Peru", "Canada", "Kenya", "Japan", "Norway"),
    "topic": ("cats", "computers", "pirates", "penguins"),
    "skill": ("chess", "the guitar", "knitting", "juggling"),
    "movie": ("Inception", "Casablanca", "Toy Story", "Alien"),
    "landmark": ("the Eiffel Tower", "Mount Everest", "Big Ben", "the Statue of Liberty"),
    "pet": ("dog", "goldfish", "parrot"),
}

_TEMPLATES: dict[str, tuple[str, ...]] = {
    "weather": (
        "what's the weather like in {city} {day}?",
        "will it rain in {city} {day}?",
        "do I need an umbrella {day}?",
        "how hot will it get in {city} {day}?",
        "give me the forecast for {city}",
        "is it going to snow {day}?",
        "how cold is it outside in {city} right now?",
        "what's the temperature in {city} {day}?",
    ),
    "alarm": (
        "set an alarm for {time}",
        "wake me up at {time} {when}",
        "please set my alarm to {time}",
        "I need an alarm at {time} {when}",
        "cancel my {time} alarm",
        "can you wake me at {time}?",
        "turn off the alarm for {time}",
        "change my alarm to {time} {when}",
    ),
    "music": (
        "play {song} by {artist}",
        "put on some {genre}",
        "I want to listen to {artist}",
        "play some {genre} music",
        "can you play {song}?",
        "shuffle my {genre} playlist",
        "start playing songs by {artist}",
        "queue up {song}",
    ),
    "timer": (
        "set a timer for {duration}",
        "start a {duration} timer",
        "count down {duration} please",
        "time {duration} for the {food}",
        "remind me in {duration} that the {food} is done",
        "put a {duration} timer on for the {food}",
        "can you time {duration} for me?",
        "how much time is left on my timer?",
    ),
    "greeting": (
        "{hello}",
        "{hello} there",
        "{hello}, how are you?",
        "good {daypart}",
        "good {daypart}, {buddy}",
        "{hello} {buddy}",
        "how's it going, {buddy}?",
        "nice to see you again",
        "what's up, {buddy}?",
    ),
    "goodbye": (
        "{bye}",
        "{bye} for now",
        "{bye}, see you {later}",
        "see you {later}",
        "I'm done, {bye}",
        "that's all for {period}, thanks",
        "talk to you {later}",
        "catch you {later}, {buddy}",
        "good night",
    ),
    "translate": (
        "how do you say {phrase} in {language}?",
        "translate {phrase} into {language}",
        "what is {phrase} in {language}?",
        "can you translate {phrase} to {language}?",
        "what's the {language} word for {word}?",
        "I need {phrase} translated into {language}",
    ),
    "balance": (
        "what's my {account} balance?",
        "how much money is in my {account} account?",
        "check the balance of my {account} account",
        "tell me my current {account} balance",
        "how much is left in my {account} account?",
        "show me the balance on my {account} account",
        "can I afford {purchase} with what's in my {account} account?",
    ),
    OOS: (
        "how do I bake {dish}?",
        "who wrote {book}?",
        "what is the capital of {country}?",
        "how many calories are in {dish}?",
        "tell me a joke about {topic}",
        "what's the best way to learn {skill}?",
        "recommend a movie like {movie}",
        "how far away is the moon?",
        "how do I fix a flat tire?",
        "what year did {country} host the olympics?",
        "how tall is {landmark}?",
        "what's a good name for a {pet}?",
    ),
}

_FIELD_RE = re.compile(r"{(\w+)}")


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _expand_intent(templates: Sequence[str], n: int) -> list[str]:
    """``n`` distinct utterances: every template's fillings in a fixed pseudo-random order, round-robin."""
    per_template: list[list[str]] = []
    for t in templates:
        fields = _FIELD_RE.findall(t)
        fills = [t.format(**dict(zip(fields, combo))) for combo in product(*(_SLOTS[f] for f in fields))]
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
    intents = sorted(k for k in _TEMPLATES if k != OOS)
    label_names = intents + [OOS]
    parts: dict[str, tuple[list[str], list[int]]] = {s: ([], []) for s in SPLITS}
    for y, intent in enumerate(label_names):
        utterances = _expand_intent(_TEMPLATES[intent], _EMBEDDED_PER_INTENT)
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
            f"{len(intents)} intents + 'oos', {_EMBEDDED_PER_INTENT} template-generated utterances each, "
            "dealt 3:1:1 to train/validation/test by a CRC-32 order of the text (deterministic)."
        ),
    )
