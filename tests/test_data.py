"""Tests for spectralkd_tutorial.data.

The reference numbers come from each data set's SOURCE.md (counted there with plain ``json`` /
``csv``); the "no text lost" checks re-read the upstream files here, independently of the loader.
Real-data tests use ``$SPECTRALKD_DATA_DIR`` or ``../shared/data`` beside the repository and are
skipped (with the reason) only when neither exists.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from spectralkd_tutorial.data import hub, splits
from spectralkd_tutorial.data import (
    DATA_DIR_ENV,
    DATASET_NAMES,
    DataNotAvailableError,
    IntentDataset,
    IntentSplit,
    embedded_intents,
    load_intent_dataset,
    resolve_data_dir,
)

REPO = Path(__file__).resolve().parents[1]
_DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA_ROOT = Path(os.environ[DATA_DIR_ENV]) if os.environ.get(DATA_DIR_ENV) else _DEFAULT_DATA

# Verified counts from the SOURCE.md files: (train, val, test, oos_train, oos_val, oos_test).
CLINC_COUNTS = {
    "full": (15000, 3000, 4500, 100, 100, 1000),
    "small": (7500, 3000, 4500, 100, 100, 1000),
    "imbalanced": (10525, 3000, 4500, 100, 100, 1000),
    "plus": (15000, 3000, 4500, 250, 100, 1000),
}
CLINC_TRAIN_PER_INTENT = {"full": (100, 100), "small": (50, 50), "imbalanced": (25, 100), "plus": (100, 100)}
CLINC_FILES = {
    "full": "data_full.json",
    "small": "data_small.json",
    "imbalanced": "data_imbalanced.json",
    "plus": "data_oos_plus.json",
}
SNIPS_TRAIN_FULL = {
    "AddToPlaylist": 1942,
    "BookRestaurant": 1973,
    "GetWeather": 2000,
    "PlayMusic": 2000,
    "RateBook": 1956,
    "SearchCreativeWork": 1954,
    "SearchScreeningEvent": 1959,
}
HWU_SCENARIOS = {
    "alarm",
    "audio",
    "calendar",
    "cooking",
    "datetime",
    "email",
    "general",
    "iot",
    "lists",
    "music",
    "news",
    "play",
    "qa",
    "recommendation",
    "social",
    "takeaway",
    "transport",
    "weather",
}


def _need(sub: str) -> Path:
    path = DATA_ROOT / sub
    if not path.is_dir():
        pytest.skip(f"real data not found at {path} (set {DATA_DIR_ENV} or put shared/data beside the repo)")
    return path


_cache: dict = {}


def _load(name: str, **kw) -> IntentDataset:
    key = (name, tuple(sorted(kw.items())))
    if key not in _cache:
        _need(name)
        _cache[key] = load_intent_dataset(name, data_dir=DATA_ROOT, source="local", **kw)
    return _cache[key]


def _pairs(ds: IntentDataset, *splits: str) -> Counter:
    out: Counter = Counter()
    for s in splits:
        split = getattr(ds, s)
        out.update((t, ds.label_names[y]) for t, y in zip(split.texts, split.labels))
    return out


def _check_basic(ds: IntentDataset) -> None:
    for split in (ds.train, ds.validation, ds.test):
        assert len(split.texts) == len(split.labels) == len(split)
        assert all(isinstance(y, int) and 0 <= y < ds.num_labels for y in split.labels)
        assert all(isinstance(t, str) and t and t == t.strip() for t in split.texts)
    assert ds.num_labels == len(ds.label_names) == len(set(ds.label_names))
    if ds.oos_label is not None:
        assert ds.label_names[ds.oos_label] == "oos"


# ----------------------------------------------------------------------------------------------
# CLINC150
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", sorted(CLINC_COUNTS))
def test_clinc150_counts_and_labels(variant):
    ds = _load("clinc150", variant=variant)
    _check_basic(ds)
    tr, va, te, otr, ova, ote = CLINC_COUNTS[variant]
    assert ds.name == "clinc150" and ds.variant == variant
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (tr + otr, va + ova, te + ote)
    assert ds.num_labels == 151 and ds.oos_label == 150 and ds.label_names[-1] == "oos"
    domains = json.loads((DATA_ROOT / "clinc150" / "domains.json").read_text(encoding="utf-8"))
    expected_intents = sorted(i for intents in domains.values() for i in intents)
    assert len(expected_intents) == 150
    assert ds.label_names[:150] == expected_intents
    summary = ds.summary()
    assert summary["num_labels"] == 151
    assert [summary["splits"][s]["oos"] for s in ("train", "validation", "test")] == [otr, ova, ote]
    for split, per in ((ds.train, None), (ds.validation, 20), (ds.test, 30)):
        counts = Counter(y for y in split.labels if y != ds.oos_label)
        assert len(counts) == 150
        if per is None:
            lo, hi = CLINC_TRAIN_PER_INTENT[variant]
            assert min(counts.values()) == lo and max(counts.values()) == hi
        else:
            assert set(counts.values()) == {per}
    assert Path(ds.source).name == CLINC_FILES[variant]


@pytest.mark.parametrize("variant", sorted(CLINC_COUNTS))
def test_clinc150_no_text_lost(variant):
    ds = _load("clinc150", variant=variant)
    raw = json.loads((DATA_ROOT / "clinc150" / CLINC_FILES[variant]).read_text(encoding="utf-8"))
    for split, keys in (
        ("train", ("train", "oos_train")),
        ("validation", ("val", "oos_val")),
        ("test", ("test", "oos_test")),
    ):
        expected = Counter((t.strip(), i) for k in keys for t, i in raw[k])
        assert _pairs(ds, split) == expected, split


def test_clinc150_accepts_dataset_folder_and_env(monkeypatch):
    folder = _need("clinc150")
    direct = load_intent_dataset("clinc150", variant="small", data_dir=folder, source="local")
    monkeypatch.setenv(DATA_DIR_ENV, str(DATA_ROOT))
    via_env = load_intent_dataset("clinc150", variant="small")  # auto -> local because the env var is set
    ref = _load("clinc150", variant="small")
    for ds in (direct, via_env):
        assert ds.train.texts == ref.train.texts and ds.test.labels == ref.test.labels
    assert resolve_data_dir() == DATA_ROOT
    assert load_intent_dataset("clinc150", data_dir=DATA_ROOT).variant == "full"  # local default


# ----------------------------------------------------------------------------------------------
# Banking77, HWU64, SNIPS (carved validation splits)
# ----------------------------------------------------------------------------------------------


def _read_csv(path: Path, delimiter: str) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter=delimiter))
    return rows[1:]


def _check_carved(ds: IntentDataset, reload) -> None:
    train_texts = set(ds.train.texts)
    assert not train_texts & set(ds.validation.texts), "validation must be disjoint from train"
    assert len(set(ds.validation.labels)) == ds.num_labels, "every label should appear in validation"
    again = reload(seed=0)
    assert again.validation.texts == ds.validation.texts and again.train.texts == ds.train.texts
    other = reload(seed=1)
    assert other.validation.texts != ds.validation.texts
    assert _pairs(other, "train", "validation") == _pairs(ds, "train", "validation")


def test_banking77(monkeypatch):
    folder = _need("banking77")
    ds = _load("banking77")
    _check_basic(ds)
    categories = json.loads((folder / "categories.json").read_text(encoding="utf-8"))
    assert ds.label_names == categories and ds.num_labels == 77 and ds.oos_label is None
    assert len(ds.test) == 3080 and len(ds.train) + len(ds.validation) == 10003
    assert set(Counter(ds.test.labels).values()) == {40}
    # stratified 10 %: each intent contributes round(0.1 * n) rows
    full = Counter(ds.train.labels) + Counter(ds.validation.labels)
    val = Counter(ds.validation.labels)
    assert all(val[y] == round(0.1 * n) for y, n in full.items())
    assert min(full.values()) == 35 and max(full.values()) == 187
    # no text lost: compare with an independent csv read
    train_rows = _read_csv(folder / "train.csv", ",")
    test_rows = _read_csv(folder / "test.csv", ",")
    assert len(train_rows) == 10003 and len(test_rows) == 3080
    assert _pairs(ds, "train", "validation") == Counter((t.strip(), c) for t, c in train_rows)
    assert _pairs(ds, "test") == Counter((t.strip(), c) for t, c in test_rows)
    assert "validation" in ds.notes and "train.csv" in ds.notes
    _check_carved(ds, lambda seed: load_intent_dataset("banking77", data_dir=DATA_ROOT, source="local", seed=seed))
    bigger = load_intent_dataset("banking77", data_dir=DATA_ROOT, source="local", validation_fraction=0.2)
    assert 1900 <= len(bigger.validation) <= 2100


def test_hwu64():
    folder = _need("hwu64")
    ds = _load("hwu64")
    _check_basic(ds)
    train_files = sorted((folder / "KFold_1" / "trainset").glob("*.csv"))
    test_files = sorted((folder / "KFold_1" / "testset" / "csv").glob("*.csv"))
    assert len(train_files) == len(test_files) == 64
    assert ds.label_names == [p.stem for p in train_files] and ds.num_labels == 64
    assert {n.split("_", 1)[0] for n in ds.label_names} == HWU_SCENARIOS
    assert len(ds.train) + len(ds.validation) == 9960 and len(ds.test) == 1076
    test_counts = Counter(ds.test.labels)
    assert min(test_counts.values()) == 3 and max(test_counts.values()) == 19
    full = Counter(ds.train.labels) + Counter(ds.validation.labels)
    assert min(full.values()) == 35 and max(full.values()) == 175

    def expected(files):
        out = Counter()
        for p in files:
            for row in _read_csv(p, ";"):
                assert len(row) == 6 and f"{row[1]}_{row[2]}" == p.stem
                out[(" ".join(row[4].split()), p.stem)] += 1
        return out

    assert _pairs(ds, "train", "validation") == expected(train_files)
    assert _pairs(ds, "test") == expected(test_files)
    assert not set(ds.test.texts) & (set(ds.train.texts) | set(ds.validation.texts))
    _check_carved(ds, lambda seed: load_intent_dataset("hwu64", data_dir=DATA_ROOT, source="local", seed=seed))
    # data_dir may also point at the fold folder itself
    fold = load_intent_dataset("hwu64", data_dir=folder / "KFold_1", source="local")
    assert fold.test.texts == ds.test.texts


def _snips_texts(path: Path) -> tuple[str, list[str]]:
    raw = path.read_bytes().decode("utf-8", errors="replace")  # independent, lossy decode
    obj = json.loads(raw)
    ((intent, utterances),) = obj.items()
    return intent, ["".join(seg["text"] for seg in u["data"]).strip() for u in utterances]


def test_snips():
    folder = _need("snips")
    ds = _load("snips")
    _check_basic(ds)
    assert ds.label_names == sorted(SNIPS_TRAIN_FULL) and ds.oos_label is None
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (13084, 700, 700)
    assert set(Counter(ds.validation.labels).values()) == {100}
    assert set(Counter(ds.test.labels).values()) == {100}
    full = Counter(ds.train.labels) + Counter(ds.validation.labels)
    assert {ds.label_names[y]: n for y, n in full.items()} == SNIPS_TRAIN_FULL

    # no text lost (compared with every run of non-ASCII characters collapsed, because of the
    # one mis-encoded emoji, which the independent lossy decode turns into replacement characters)
    def ascii_key(t):
        return re.sub(r"[^\x00-\x7f]+", "?", t)

    for split_names, pattern in ((("train", "validation"), "train_{}_full.json"), (("test",), "validate_{}.json")):
        expected = Counter()
        for intent in SNIPS_TRAIN_FULL:
            name, texts = _snips_texts(folder / intent / pattern.format(intent))
            assert name == intent
            expected.update((ascii_key(t), intent) for t in texts)
        got = Counter((ascii_key(t), lab) for (t, lab), n in _pairs(ds, *split_names).items() for _ in range(n))
        assert got == expected, split_names
    # the PlayMusic emoji is decoded to a real character; every text is valid UTF-8
    assert any("\U0001f355" in t for t in ds.train.texts + ds.validation.texts)
    for t in ds.train.texts + ds.validation.texts + ds.test.texts:
        t.encode("utf-8")
    _check_carved(ds, lambda seed: load_intent_dataset("snips", data_dir=DATA_ROOT, source="local", seed=seed))
    assert "Goo" in ds.notes and "validate_" in ds.notes


# ----------------------------------------------------------------------------------------------
# embedded set
# ----------------------------------------------------------------------------------------------


def test_embedded_set():
    ds = embedded_intents()
    _check_basic(ds)
    assert ds.name == "embedded" and ds.variant is None
    assert ds.label_names == [
        "alarm",
        "balance",
        "goodbye",
        "greeting",
        "music",
        "timer",
        "translate",
        "weather",
        "oos",
    ]
    assert ds.oos_label == 8
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (216, 72, 72)
    for split, per in ((ds.train, 24), (ds.validation, 8), (ds.test, 8)):
        assert Counter(split.labels) == {y: per for y in range(9)}
    every = ds.train.texts + ds.validation.texts + ds.test.texts
    assert len(every) == len(set(every)) < 500, "utterances are distinct, so splits cannot overlap"
    assert load_intent_dataset("embedded").train.texts == ds.train.texts
    # keyword sanity: the templates really express their intent
    for kw, label in (("umbrella", "weather"), ("alarm", "alarm"), ("timer", "timer"), ("translate", "translate")):
        hits = [
            ds.label_names[y]
            for t, y in zip(every, ds.train.labels + ds.validation.labels + ds.test.labels)
            if kw in t.lower()
        ]
        assert hits and set(hits) == {label}, kw


# sha256 of the embedded set as generated by the single-module data.py (commit a7d8fd0), before its
# templates moved to resources/embedded_intents.json: the move must not change a single text or label.
EMBEDDED_SHA256 = "8ba8ad0b8d468eeab37550ccb95d0b9a87bc6e09ddcfc7929184918ff84f4e6c"


def test_embedded_set_unchanged_by_refactor():
    ds = embedded_intents()
    content = {
        "label_names": ds.label_names,
        "splits": {name: {"texts": s.texts, "labels": s.labels} for name, s in ds.splits.items()},
        "oos_label": ds.oos_label,
    }
    assert hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest() == EMBEDDED_SHA256


def test_embedded_templates_are_a_package_resource():
    from importlib import resources

    obj = json.loads(resources.files("spectralkd_tutorial").joinpath("resources", "embedded_intents.json").read_text())
    assert sorted(obj["templates"]) == sorted(embedded_intents().label_names)
    assert obj["per_intent"] == 40


def test_embedded_set_is_deterministic_across_processes():
    ds = embedded_intents()
    code = (
        "import json; from spectralkd_tutorial.data import embedded_intents as e; d = e(); "
        "print(json.dumps([d.train.texts, d.validation.texts, d.test.labels]))"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, timeout=120)
    assert json.loads(out.stdout) == [ds.train.texts, ds.validation.texts, ds.test.labels]


def test_subset_and_summary():
    ds = embedded_intents()
    sub = ds.subset(train=72, test=18, seed=3)
    assert (len(sub.train), len(sub.validation), len(sub.test)) == (72, 72, 18)
    assert sub.label_names == ds.label_names and sub.oos_label == ds.oos_label
    assert Counter(sub.train.labels) == {y: 8 for y in range(9)}  # proportional: 24 -> 8 each
    assert Counter(sub.test.labels) == {y: 2 for y in range(9)}
    assert not _pairs(sub, "train") - _pairs(ds, "train"), "subset rows come from the split"
    assert sub.subset(train=72, seed=3).train.texts == sub.train.texts
    assert ds.subset(train=72, seed=3).train.texts == sub.train.texts
    assert ds.subset(train=72, seed=4).train.texts != sub.train.texts
    assert ds.subset(train=10_000).train.texts == ds.train.texts
    ten = ds.subset(train=10, validation=0)
    assert len(ten.train) == 10 and len(ten.validation) == 0  # largest-remainder rounding hits n exactly
    assert max(Counter(ten.train.labels).values()) == 2
    summary = sub.summary()
    json.dumps(summary)
    assert summary["splits"]["train"] == {
        "examples": 72,
        "in_scope": 64,
        "oos": 8,
        "labels_present": 9,
        "min_per_label": 8,
        "max_per_label": 8,
    }
    assert summary["num_labels"] == 9 and summary["total_examples"] == 72 + 72 + 18
    with pytest.raises(ValueError):
        ds.subset(train=-1)


def test_carve_validation_groups_duplicates_and_hits_quota():
    texts = ["a", "a", "a", "b", "c", "d", "e", "f", "g", "g"] + [f"x{i}" for i in range(10)]
    labels = [0] * 10 + [1] * 10
    split = IntentSplit(texts, labels)
    for seed in range(20):
        train, val = splits._carve_validation(split, ["p", "q"], seed, per_label=3)
        assert Counter(val.labels) == {0: 3, 1: 3}, seed
        assert not set(train.texts) & set(val.texts), seed
        assert Counter(train.texts) + Counter(val.texts) == Counter(texts)
        train, val = splits._carve_validation(split, ["p", "q"], seed, fraction=0.25)
        assert Counter(val.labels) == {0: 2, 1: 2}, seed  # round(0.25 * 10) == 2


def test_carve_validation_never_leaks_a_text_across_labels():
    texts = ["same"] * 4 + [f"y{i}" for i in range(4)]
    labels = [0, 0, 1, 1] + [0, 0, 1, 1]
    for seed in range(10):
        train, val = splits._carve_validation(IntentSplit(texts, labels), ["p", "q"], seed, fraction=0.5)
        assert not set(train.texts) & set(val.texts)
        assert sorted(train.texts + val.texts) == sorted(texts)


def test_containers_validate():
    with pytest.raises(ValueError, match="parallel"):
        IntentSplit(["a", "b"], [0])
    ok = IntentSplit(["a"], [0])
    with pytest.raises(ValueError, match="outside"):
        IntentDataset("x", None, ["a"], IntentSplit(["a"], [1]), ok, ok, None, "", "")


# ----------------------------------------------------------------------------------------------
# errors: names, variants, missing data, offline hub
# ----------------------------------------------------------------------------------------------


@pytest.fixture
def no_data_env(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    return monkeypatch


def test_bad_arguments():
    with pytest.raises(ValueError) as err:
        load_intent_dataset("imagenet")
    for n in DATASET_NAMES:
        assert n in str(err.value)
    with pytest.raises(ValueError, match="full, small, imbalanced, plus"):
        load_intent_dataset("clinc150", variant="tiny")
    with pytest.raises(ValueError, match="no variants"):
        load_intent_dataset("banking77", variant="full")
    with pytest.raises(ValueError, match="source"):
        load_intent_dataset("banking77", source="ftp")
    with pytest.raises(ValueError, match="validation_fraction"):
        load_intent_dataset("banking77", validation_fraction=1.5)


def test_missing_directory_and_file(no_data_env, tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_intent_dataset("clinc150", source="local")
    assert DATA_DIR_ENV in str(err.value) and "source='hub'" in str(err.value)
    missing = tmp_path / "nope"
    with pytest.raises(DataNotAvailableError) as err:
        load_intent_dataset("banking77", data_dir=missing, source="local")
    assert str(missing) in str(err.value) and DATA_DIR_ENV in str(err.value)
    (tmp_path / "clinc150").mkdir()
    (tmp_path / "clinc150" / "data_full.json").write_text("{}", encoding="utf-8")
    with pytest.raises(FileNotFoundError) as err:
        load_intent_dataset("clinc150", variant="small", data_dir=tmp_path, source="local")
    assert "data_small.json" in str(err.value)
    with pytest.raises(ValueError, match="no canonical Hugging Face hub"):
        load_intent_dataset("hwu64", source="hub")
    with pytest.raises(DataNotAvailableError, match="hub"):
        load_intent_dataset("snips", data_dir=tmp_path)  # auto, no snips folder, no hub copy


def test_clinc_full_is_not_on_the_hub(no_data_env, tmp_path):
    no_data_env.setenv("SPECTRALKD_CACHE_DIR", str(tmp_path))  # no downloaded copy (tests/test_data_download.py)
    with pytest.raises(ValueError, match="plus"):
        load_intent_dataset("clinc150", variant="full", source="hub")
    with pytest.raises(DataNotAvailableError, match="plus"):
        load_intent_dataset("clinc150", variant="full")


@pytest.mark.parametrize("name,hub_id", [("clinc150", "clinc/clinc_oos"), ("banking77", "PolyAI/banking77")])
def test_offline_hub_raises_immediately(no_data_env, name, hub_id):
    no_data_env.setenv("HF_HUB_OFFLINE", "1")
    no_data_env.setattr(hub, "_datasets_offline_mode", lambda: False)

    def no_network(*a, **k):
        raise AssertionError("must not try the hub in offline mode")

    no_data_env.setattr(hub, "_load_from_hub", no_network)
    for source in ("auto", "hub"):
        with pytest.raises(DataNotAvailableError) as err:
            load_intent_dataset(name, variant="small" if name == "clinc150" else None, source=source)
        assert DATA_DIR_ENV in str(err.value) and hub_id in str(err.value) and "HF_HUB_OFFLINE" in str(err.value)


def test_offline_hub_real_datasets_library(tmp_path):
    """In a fresh process with HF_HUB_OFFLINE=1 and an empty cache, the real library path fails fast."""
    code = (
        "from spectralkd_tutorial.data import load_intent_dataset, DataNotAvailableError\n"
        "try:\n    load_intent_dataset('clinc150', variant='small')\n"
        "except DataNotAvailableError as e:\n    print('OK', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != DATA_DIR_ENV}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.startswith("OK"), out.stdout + out.stderr
    assert DATA_DIR_ENV in out.stdout and "clinc/clinc_oos" in out.stdout


def test_hub_conversion_with_fake_load_dataset(no_data_env):
    """The hub path's column handling and label remapping, with ``datasets.load_dataset`` faked."""
    datasets = pytest.importorskip("datasets")
    no_data_env.delenv("HF_HUB_OFFLINE", raising=False)
    no_data_env.delenv("HF_DATASETS_OFFLINE", raising=False)
    intent = datasets.ClassLabel(names=["zeta", "oos", "alpha"])
    feats = datasets.Features({"text": datasets.Value("string"), "intent": intent})

    def split(rows):
        return datasets.Dataset.from_dict(
            {"text": [r[0] for r in rows], "intent": [r[1] for r in rows]}, features=feats
        )

    clinc = datasets.DatasetDict(
        train=split([("a", 0), ("b", 1), ("c", 2)]), validation=split([("d", 2)]), test=split([("e", 1), ("f", 0)])
    )
    calls = []

    def fake_load(path, name=None, **kw):
        calls.append((path, name, kw))
        if path == "clinc/clinc_oos":
            return clinc
        if not kw:
            raise RuntimeError("Dataset scripts are no longer supported, but found banking77.py")
        lab = datasets.ClassLabel(names=["x", "y"])
        f2 = datasets.Features({"text": datasets.Value("string"), "label": lab})
        rows = {"text": [f"t{i}" for i in range(20)], "label": [i % 2 for i in range(20)]}
        return datasets.DatasetDict(
            train=datasets.Dataset.from_dict(rows, features=f2),
            test=datasets.Dataset.from_dict({"text": ["u", "v"], "label": [1, 0]}, features=f2),
        )

    no_data_env.setattr(datasets, "load_dataset", fake_load)
    ds = load_intent_dataset("clinc150", variant="plus", source="hub")
    assert ds.label_names == ["alpha", "zeta", "oos"] and ds.oos_label == 2
    assert ds.train.labels == [1, 2, 0] and ds.test.labels == [2, 1] and ds.validation.labels == [0]
    assert calls[-1][:2] == ("clinc/clinc_oos", "plus") and "clinc/clinc_oos" in ds.source
    ds = load_intent_dataset("clinc150", source="hub")  # variant None -> plus
    assert ds.variant == "plus" and "plus" in ds.notes
    bank = load_intent_dataset("banking77", source="hub")
    assert calls[-1][2].get("revision") == "refs/convert/parquet"
    assert bank.label_names == ["x", "y"] and (len(bank.train), len(bank.validation)) == (18, 2)
    assert bank.test.labels == [1, 0]
    # a plain string label column (no ClassLabel) is mapped through its sorted names
    plain = datasets.Dataset.from_dict({"text": ["p", "q", "r"], "category": ["b", "a", "b"]})
    assert hub._hub_columns(plain, "text", ("label", "category")) == (["p", "q", "r"], [1, 0, 1], ["a", "b"])


# ----------------------------------------------------------------------------------------------
# malformed files
# ----------------------------------------------------------------------------------------------


def _clinc_obj():
    return {
        "train": [["set an alarm", "alarm"], ["what time is it", "time"]],
        "val": [["alarm please", "alarm"]],
        "test": [["the time now", "time"]],
        "oos_train": [["bake bread", "oos"]],
        "oos_val": [["sing", "oos"]],
        "oos_test": [["dance", "oos"]],
    }


def _write_clinc(tmp_path, obj) -> Path:
    folder = tmp_path / "clinc150"
    folder.mkdir(exist_ok=True)
    path = folder / "data_full.json"
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj, encoding="utf-8")
    return path


def test_minimal_clinc_file_parses(tmp_path):
    _write_clinc(tmp_path, _clinc_obj())
    ds = load_intent_dataset("clinc150", data_dir=tmp_path, source="local")
    assert ds.label_names == ["alarm", "time", "oos"]
    assert ds.train.labels == [0, 1, 2] and ds.validation.texts == ["alarm please", "sing"]


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda o: o.pop("oos_test"), r"missing key\(s\) \['oos_test'\]"),
        (lambda o: o["train"].__setitem__(1, ["x", "y", "z"]), r"key 'train', entry 1"),
        (lambda o: o["test"].__setitem__(0, ["   ", "time"]), r"key 'test', entry 0: empty text"),
        (lambda o: o["oos_val"].__setitem__(0, ["sing", "alarm"]), r"key 'oos_val', entry 0: .*'oos'"),
        (lambda o: o["val"].__setitem__(0, ["hmm", "weather"]), r"key 'val', entry 0: intent 'weather'"),
        (lambda o: o["train"].__setitem__(0, ["bake bread", "oos"]), r"key 'train', entry 0: in-scope"),
    ],
)
def test_malformed_clinc(tmp_path, mutate, match):
    obj = _clinc_obj()
    mutate(obj)
    path = _write_clinc(tmp_path, obj)
    with pytest.raises(ValueError, match=match) as err:
        load_intent_dataset("clinc150", data_dir=tmp_path, source="local")
    assert str(path) in str(err.value)


def test_malformed_clinc_not_json(tmp_path):
    path = _write_clinc(tmp_path, "{not json")
    with pytest.raises(ValueError, match="not valid JSON") as err:
        load_intent_dataset("clinc150", data_dir=tmp_path, source="local")
    assert str(path) in str(err.value)


def _write_banking(tmp_path, train_rows: str) -> Path:
    folder = tmp_path / "banking77"
    folder.mkdir()
    (folder / "categories.json").write_text(json.dumps(["card_arrival", "change_pin"]), encoding="utf-8")
    (folder / "test.csv").write_text(
        "text,category\nwhere is my card,card_arrival\nnew pin,change_pin\n", encoding="utf-8"
    )
    (folder / "train.csv").write_text(train_rows, encoding="utf-8")
    return folder / "train.csv"


def test_minimal_banking_file_parses(tmp_path):
    _write_banking(
        tmp_path, 'text,category\n"card, still not here",card_arrival\n\nmy card?,card_arrival\npin,change_pin\n'
    )
    ds = load_intent_dataset("banking77", data_dir=tmp_path / "banking77", source="local")
    assert sorted(ds.train.texts + ds.validation.texts) == ["card, still not here", "my card?", "pin"]
    assert ds.label_names == ["card_arrival", "change_pin"]


@pytest.mark.parametrize(
    "body,match",
    [
        ("text,category\nok,card_arrival\ntoo,many,fields\n", r"line 3: 3 fields, expected 2"),
        ("text,category\nok,card_arrival\n  ,change_pin\n", r"line 3: empty text"),
        ("text,category\nok,card_lost\n", r"line 2: category 'card_lost'"),
        ("sentence,label\nok,card_arrival\n", r"header"),
    ],
)
def test_malformed_banking(tmp_path, body, match):
    path = _write_banking(tmp_path, body)
    with pytest.raises(ValueError, match=match) as err:
        load_intent_dataset("banking77", data_dir=tmp_path, source="local")
    assert str(path) in str(err.value)


_HWU_HEADER = "answerid;scenario;intent;answer_annotation;answer_from_anno;answer_from_user\n"


def _write_hwu(tmp_path, train_body: str) -> Path:
    fold = tmp_path / "hwu64" / "KFold_1"
    (fold / "trainset").mkdir(parents=True)
    (fold / "testset" / "csv").mkdir(parents=True)
    (fold / "testset" / "csv" / "alarm_set.csv").write_text(
        _HWU_HEADER + '1;alarm;set;"wake me at [time : six]";"wake me at six";"Wake me at six"\n', encoding="utf-8"
    )
    path = fold / "trainset" / "alarm_set.csv"
    path.write_text(_HWU_HEADER + train_body, encoding="utf-8")
    return path


def test_minimal_hwu_file_parses_with_fallback(tmp_path):
    _write_hwu(
        tmp_path,
        '2;alarm;set;"alarm for [time : seven am]";"";"Alarm for 7am!"\n3;alarm;set;"set alarm";"set alarm";"x"\n',
    )
    ds = load_intent_dataset("hwu64", data_dir=tmp_path, source="local")
    assert sorted(ds.train.texts + ds.validation.texts) == ["alarm for seven am", "set alarm"]
    assert ds.test.texts == ["wake me at six"]


@pytest.mark.parametrize(
    "body,match",
    [
        ('2;alarm;set;"x";"x"\n', r"line 2: 5 fields, expected 6"),
        ('2;alarm;query;"x";"x";"x"\n', r"line 2: scenario_intent 'alarm_query' does not match"),
        ('2;alarm;set;"";"";""\n', r"line 2: empty text"),
    ],
)
def test_malformed_hwu(tmp_path, body, match):
    path = _write_hwu(tmp_path, body)
    with pytest.raises(ValueError, match=match) as err:
        load_intent_dataset("hwu64", data_dir=tmp_path, source="local")
    assert str(path) in str(err.value)


def _write_snips(tmp_path, train_obj) -> Path:
    folder = tmp_path / "snips" / "GetWeather"
    folder.mkdir(parents=True)
    ok = {"GetWeather": [{"data": [{"text": "rain in "}, {"text": "Oslo", "entity": "city"}, {"text": "?"}]}]}
    (folder / "validate_GetWeather.json").write_text(json.dumps(ok), encoding="utf-8")
    path = folder / "train_GetWeather_full.json"
    path.write_text(json.dumps(train_obj), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "obj,match",
    [
        (
            {"GetWeather": [{"data": [{"text": "sun"}]}, {"segments": []}]},
            r"utterance 1: expected an object with a 'data' list",
        ),
        ({"GetWeather": [{"data": [{"entity": "city"}]}]}, r"utterance 0, segment 0"),
        ({"PlayMusic": []}, r"single key 'GetWeather'"),
        ({"GetWeather": [{"data": [{"text": "  "}]}]}, r"utterance 0: empty text"),
    ],
)
def test_malformed_snips(tmp_path, obj, match):
    path = _write_snips(tmp_path, obj)
    with pytest.raises(ValueError, match=match) as err:
        load_intent_dataset("snips", data_dir=tmp_path, source="local")
    assert str(path) in str(err.value)


def test_minimal_snips_file_parses(tmp_path):
    _write_snips(
        tmp_path, {"GetWeather": [{"data": [{"text": "sun in "}, {"text": "Lima"}]}, {"data": [{"text": "fog"}]}]}
    )
    ds = load_intent_dataset("snips", data_dir=tmp_path / "snips", source="local")
    assert ds.test.texts == ["rain in Oslo?"] and sorted(ds.train.texts + ds.validation.texts) == ["fog", "sun in Lima"]


def test_explicit_missing_data_dir_raises_instead_of_using_the_hub(no_data_env, tmp_path):
    """A data_dir given explicitly that is not a directory is an error, never a silent hub download."""
    datasets = pytest.importorskip("datasets")
    no_data_env.delenv("HF_HUB_OFFLINE", raising=False)
    no_data_env.delenv("HF_DATASETS_OFFLINE", raising=False)
    calls = []

    def fake_hub(*a, **k):
        calls.append(a)
        raise AssertionError("an explicit data_dir must not fall back to the hub")

    no_data_env.setattr(datasets, "load_dataset", fake_hub)
    missing = tmp_path / "typo"
    a_file = tmp_path / "file.txt"
    a_file.write_text("x", encoding="utf-8")
    for name in ("clinc150", "banking77", "snips"):
        for root, what in ((missing, "does not exist"), (a_file, "not a directory")):
            for source in ("auto", "local"):
                with pytest.raises(DataNotAvailableError) as err:
                    load_intent_dataset(name, data_dir=root, source=source)
                msg = str(err.value)
                assert str(root) in msg and what in msg and DATA_DIR_ENV in msg, msg
    assert not calls
