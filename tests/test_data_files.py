"""The user's own data: spec strings, CSV/TSV/JSONL/Parquet files, hub ids, and clear errors.

Round trips are checked against an independent read of the same file (``csv``, ``json``,
``pyarrow``); every bad-data test checks that the message names the file and the line or row.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import pytest

from spectralkd_tutorial.data import (
    DATA_DIR_ENV,
    DataError,
    DataNotAvailableError,
    DatasetSpec,
    DuplicateTextWarning,
    IntentDataset,
    embedded_intents,
    load_dataset,
    parse_dataset_spec,
)
from spectralkd_tutorial.data import hub
from spectralkd_tutorial.common.metrics import intent_metrics

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

REPO = Path(__file__).resolve().parents[1]
FORMATS = ("csv", "tsv", "jsonl", "parquet")
TRICKY = ["comma, inside", 'a "quoted" word', "tab\there", "line\nbreak", "  padded  ", "café 🍕", "plain"]


# ----------------------------------------------------------------------------------------------
# writing and independently re-reading files
# ----------------------------------------------------------------------------------------------


def _rows(labels=("alarm", "music", "oos"), per=12, tag="") -> list[tuple[str, str]]:
    return [(f"{TRICKY[i % len(TRICKY)]} {tag}{lab} {i}", lab) for lab in labels for i in range(per)]


def _write(path: Path, rows, columns=("text", "label")) -> Path:
    fmt = path.suffix.lstrip(".")
    records = [dict(zip(columns, r)) for r in rows]
    if fmt in ("csv", "tsv"):
        with path.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(columns), delimiter="\t" if fmt == "tsv" else ",")
            writer.writeheader()
            writer.writerows(records)
    elif fmt in ("jsonl", "json"):
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    else:
        pq.write_table(pa.table({c: [r[i] for r in rows] for i, c in enumerate(columns)}), path)
    return path


def _independent(path: Path, text_column="text", label_column="label") -> list[tuple[str, str]]:
    fmt = path.suffix.lstrip(".")
    if fmt in ("csv", "tsv"):
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t" if fmt == "tsv" else ","))
    elif fmt in ("jsonl", "json"):
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    else:
        rows = pq.read_table(path).to_pylist()
    return [(r[text_column].strip(), str(r[label_column])) for r in rows]


def _named(ds: IntentDataset, split: str) -> list[tuple[str, str]]:
    part = getattr(ds, split)
    return [(t, ds.label_names[y]) for t, y in zip(part.texts, part.labels)]


def _all(ds: IntentDataset) -> Counter:
    return Counter(_named(ds, "train") + _named(ds, "validation") + _named(ds, "test"))


# ----------------------------------------------------------------------------------------------
# formats round-trip
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_separate_files_round_trip_exactly(tmp_path, fmt):
    paths = {s: _write(tmp_path / f"{s}.{fmt}", _rows(tag=s)) for s in ("train", "validation", "test")}
    ds = load_dataset(train_file=paths["train"], validation_file=paths["validation"], test_file=paths["test"])
    for split, path in paths.items():
        assert _named(ds, split) == _independent(path), split  # same rows, same order
    assert "line\nbreak" in " ".join(ds.train.texts) and any("🍕" in t for t in ds.test.texts)
    assert ds.label_names == ["alarm", "music", "oos"] and ds.oos_label is None
    assert ds.name == f"train.{fmt}" and str(paths["test"]) in ds.source


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_file_round_trips_every_row(tmp_path, fmt):
    path = _write(tmp_path / f"intents.{fmt}", _rows(per=20))
    ds = load_dataset(str(path))
    assert _all(ds) == Counter(_independent(path))
    assert (len(ds.train), len(ds.validation), len(ds.test)) == (48, 6, 6)


def test_json_extension_is_json_lines_and_integer_labels_sort_numerically(tmp_path):
    rows = [(f"utterance {i}", i % 12) for i in range(48)]
    path = _write(tmp_path / "ints.json", rows)
    ds = load_dataset(path, validation_fraction=0.25, test_fraction=0.25)
    assert ds.label_names == [str(i) for i in range(12)]  # "2" before "10"
    assert _all(ds) == Counter((t, str(y)) for t, y in rows)
    pq_path = tmp_path / "ints.parquet"
    pq.write_table(pa.table({"text": [r[0] for r in rows], "label": [r[1] for r in rows]}), pq_path)
    assert _all(load_dataset(pq_path, validation_fraction=0.25, test_fraction=0.25)) == _all(ds)


# ----------------------------------------------------------------------------------------------
# one-file splits: sizes, stratification, seed
# ----------------------------------------------------------------------------------------------


def test_one_file_split_is_stratified_and_sized(tmp_path):
    sizes = {"a": 10, "b": 30, "c": 60}
    rows = [(f"{lab} {i}", lab) for lab, n in sizes.items() for i in range(n)]
    ds = load_dataset(_write(tmp_path / "d.csv", rows))
    idx = {n: i for i, n in enumerate(ds.label_names)}
    assert Counter(ds.test.labels) == {idx["a"]: 1, idx["b"]: 3, idx["c"]: 6}  # round(0.1 n) per label
    assert Counter(ds.validation.labels) == {idx["a"]: 1, idx["b"]: 3, idx["c"]: 6}
    assert Counter(ds.train.labels) == {idx["a"]: 8, idx["b"]: 24, idx["c"]: 48}
    assert not set(ds.train.texts) & (set(ds.validation.texts) | set(ds.test.texts))
    assert not set(ds.validation.texts) & set(ds.test.texts)
    assert "train 80, validation 10, test 10" in ds.notes and "split_seed=0" in ds.notes
    assert ds.summary()["splits"]["test"]["examples"] == 10
    other = load_dataset(tmp_path / "d.csv", validation_fraction=0.2, test_fraction=0.3)
    assert (len(other.train), len(other.validation), len(other.test)) == (50, 20, 30)


def test_one_file_split_seed_is_deterministic(tmp_path):
    path = _write(tmp_path / "d.tsv", _rows(per=30))
    a, b, c = load_dataset(path), load_dataset(path, split_seed=0), load_dataset(path, split_seed=7)
    assert (a.train.texts, a.validation.texts, a.test.texts) == (b.train.texts, b.validation.texts, b.test.texts)
    assert a.test.texts != c.test.texts and a.validation.texts != c.validation.texts
    assert _all(a) == _all(c)
    code = (
        "import json; from spectralkd_tutorial.data import load_dataset as L; d = L(%r, split_seed=7); "
        "print(json.dumps([d.train.texts, d.test.texts]))" % str(path)
    )
    env = dict(os.environ, PYTHONHASHSEED="4242", PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert json.loads(out.stdout) == [c.train.texts, c.test.texts], out.stderr


def test_fraction_arguments_are_checked(tmp_path):
    path = _write(tmp_path / "d.csv", _rows())
    for kw in ({"test_fraction": 0}, {"validation_fraction": 1.0}, {"validation_fraction": 0.5, "test_fraction": 0.5}):
        with pytest.raises(ValueError, match="fraction"):
            load_dataset(path, **kw)


# ----------------------------------------------------------------------------------------------
# separate files, columns, out-of-scope label
# ----------------------------------------------------------------------------------------------


def test_train_and_test_files_carve_validation_from_train(tmp_path):
    train = _write(tmp_path / "train.jsonl", _rows(per=20))
    test = _write(tmp_path / "test.jsonl", _rows(per=4, tag="t"))
    ds = load_dataset(train_file=train, test_file=test, split_seed=3)
    assert _named(ds, "test") == _independent(test)
    assert Counter(_named(ds, "train") + _named(ds, "validation")) == Counter(_independent(train))
    assert set(Counter(ds.validation.labels).values()) == {2}  # 10 % of 20 per label
    assert "validation 0.1" in ds.notes and "test 0.1" not in ds.notes
    same = load_dataset(train, test_file=test, split_seed=3)  # the spec as the training file
    assert same.validation.texts == ds.validation.texts and same.test.texts == ds.test.texts


def test_separate_file_arguments_are_checked(tmp_path):
    train = _write(tmp_path / "train.csv", _rows())
    with pytest.raises(ValueError, match="test_file"):
        load_dataset(train_file=train)
    with pytest.raises(ValueError, match="not both"):
        load_dataset(train, train_file=train, test_file=train)
    with pytest.raises(ValueError, match="test_file"):
        load_dataset(train, validation_file=train)
    with pytest.raises(ValueError, match="named"):
        load_dataset("embedded", test_file=train)


def test_custom_column_names(tmp_path):
    rows = [(t, lab, "x") for t, lab in _rows()]
    path = _write(tmp_path / "d.csv", rows, columns=("utterance", "intent", "extra"))
    ds = load_dataset(path, text_column="utterance", label_column="intent")
    assert _all(ds) == Counter(_independent(path, "utterance", "intent"))
    with pytest.raises(DataError) as err:
        load_dataset(path)  # the default columns are not there
    msg = str(err.value)
    for part in (str(path), "'text'", "'label'", "'utterance'", "'intent'", "'extra'", "--text-column", "--label-column"):
        assert part in msg, part


@pytest.mark.parametrize("fmt", ("jsonl", "parquet"))
def test_missing_column_other_formats(tmp_path, fmt):
    path = _write(tmp_path / f"d.{fmt}", _rows(), columns=("text", "intent"))
    with pytest.raises(DataError) as err:
        load_dataset(path)
    assert str(path) in str(err.value) and "'intent'" in str(err.value) and "--label-column" in str(err.value)
    if fmt == "jsonl":
        assert "line 1" in str(err.value)
    assert load_dataset(path, label_column="intent").num_labels == 3


def test_oos_label_turns_on_oos_metrics(tmp_path):
    path = _write(tmp_path / "d.csv", _rows(labels=("zeta", "oos", "alpha"), per=20))
    plain = load_dataset(path)
    assert plain.oos_label is None and plain.label_names == ["alpha", "oos", "zeta"]
    oos = load_dataset(path, oos_label="oos")
    assert oos.label_names == ["alpha", "zeta", "oos"] and oos.oos_label == 2
    assert oos.summary()["splits"]["test"]["oos"] == 2 and "'oos'" in oos.notes
    m_plain = intent_metrics(plain.test.labels, plain.test.labels, oos_label=plain.oos_label)
    m_oos = intent_metrics(oos.test.labels, oos.test.labels, oos_label=oos.oos_label)
    assert set(m_plain) == {"accuracy", "macro_f1", "n"}
    assert {"in_scope_accuracy", "oos_recall", "overall_accuracy"} <= set(m_oos)
    ints = _write(tmp_path / "i.jsonl", [(f"t {i}", i % 3) for i in range(30)])
    assert load_dataset(ints, oos_label=0).label_names == ["1", "2", "0"]
    with pytest.raises(DataError, match="oos_label='out_of_scope'") as err:
        load_dataset(path, oos_label="out_of_scope")
    assert str(path) in str(err.value) and "'alpha'" in str(err.value)


# ----------------------------------------------------------------------------------------------
# bad data: every message names the file and the line (or row)
# ----------------------------------------------------------------------------------------------

_GOOD = "text,label\nhello there,greet\nbye now,leave\nhi,greet\nsee you,leave\n"


def _csv(tmp_path, body: str, name="d.csv") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "body,match",
    [
        ("text,label\nhello,greet\n   ,leave\nbye,leave\n", r"line 3: empty text in column 'text'"),
        ('text,label\nhello,greet\n"multi\nline",leave\n"",greet\n', r"line 5: empty text"),
        ("text,label\nhello,greet\nbye,\nhi,leave\n", r"line 3: empty label in column 'label'"),
        ("text,label\nhello,greet\nbye,leave,extra\n", r"line 3: 3 fields, expected 2"),
        ("text,label\nhello,greet\nhi,greet\nhey,greet\n", r"only one class \('greet', 3 rows\)"),
        ("", r"empty file"),
        ("text,label\n\n", r"no examples"),
    ],
)
def test_bad_csv(tmp_path, body, match):
    path = _csv(tmp_path, body)
    with pytest.raises(DataError, match=match) as err:
        load_dataset(path)
    assert str(path) in str(err.value)


def test_bad_jsonl(tmp_path):
    cases = [
        ('{"text": "a", "label": "x"}\n\n{"text": "", "label": "y"}\n', r"line 3: empty text"),
        ('{"text": "a", "label": "x"}\n{"text": null, "label": "y"}\n', r"line 2: .*got null"),
        ('{"text": "a", "label": "x"}\n{"text": "b", "label": 1.5}\n', r"line 2: .*string or integer label"),
        ('{"text": "a", "label": "x"}\n{"text": "b" "label": "y"}\n', r"line 2: invalid JSON"),
        ('[{"text": "a", "label": "x"}]\n', r"line 1: expected a JSON object.*one JSON array"),
        ('[\n  {"text": "a", "label": "x"}\n]\n', r"line 1: invalid JSON.*one JSON array"),
        ('{"text": "a", "label": "x"}\n["b", "y"]\n', r"line 2: expected a JSON object"),
    ]
    for body, match in cases:
        path = tmp_path / "d.jsonl"
        path.write_text(body, encoding="utf-8")
        with pytest.raises(DataError, match=match) as err:
            load_dataset(path)
        assert str(path) in str(err.value), body


def test_bad_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", None, "c"], "label": ["x", "y", "x"]}), path)
    with pytest.raises(DataError, match=r"row 2: .*got null") as err:
        load_dataset(path)
    assert str(path) in str(err.value)
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable Parquet file") as err:
        load_dataset(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("name", ["d.csv", "d.jsonl", "d.tsv"])
def test_invalid_utf8_names_file_and_line(tmp_path, name):
    sep = "\t" if name.endswith(".tsv") else ","
    if name.endswith(".jsonl"):
        body = b'{"text": "ok", "label": "a"}\n{"text": "fine", "label": "b"}\n{"text": "caf\xe9", "label": "a"}\n'
    else:
        body = f"text{sep}label\nok{sep}a\ncaf".encode() + b"\xe9" + f"{sep}b\n".encode()
    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises(DataError, match=r"line 3: invalid UTF-8.*e9") as err:
        load_dataset(path)
    assert str(path) in str(err.value) and "UTF-8" in str(err.value)


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + _GOOD.encode())
    assert load_dataset(path, validation_fraction=0.25, test_fraction=0.25).num_labels == 2


def test_label_unseen_in_training(tmp_path):
    train = _csv(tmp_path, _GOOD, "train.csv")
    test = _csv(tmp_path, "text,label\nhowdy,greet\nwhat is the time,time\n", "test.csv")
    with pytest.raises(DataError, match=r"line 3: test label 'time' never occurs in the training data") as err:
        load_dataset(train_file=train, test_file=test)
    assert str(test) in str(err.value) and str(train) in str(err.value)
    val = _csv(tmp_path, 'text,label\nhowdy,greet\n"a\nb",weather\n', "val.csv")
    with pytest.raises(DataError, match=r"line 3: validation label 'weather'") as err:
        load_dataset(train_file=train, validation_file=val, test_file=train)
    assert str(val) in str(err.value)


def test_unknown_extension_and_missing_file(tmp_path):
    txt = tmp_path / "intents.txt"
    txt.write_text(_GOOD, encoding="utf-8")
    for call in (lambda: load_dataset(str(txt)), lambda: load_dataset(train_file=txt, test_file=txt)):
        with pytest.raises(DataError, match=r"unknown file extension '\.txt'") as err:
            call()
        assert str(txt) in str(err.value) and ".parquet" in str(err.value)
    with pytest.raises(DataError, match=r"unknown file extension '\.xlsx'"):
        load_dataset("my_data.xlsx")
    missing = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(missing)
    assert str(missing) in str(err.value) and "not found" in str(err.value)


def test_duplicate_texts_across_splits_warn_with_count(tmp_path):
    train = _write(tmp_path / "train.csv", _rows(per=6))
    val = _write(tmp_path / "val.csv", _rows(per=2, tag="v") + _rows(per=6)[-1:])
    test = _write(tmp_path / "test.csv", _rows(per=6)[:2] + [("brand new", "alarm"), ("also new", "music")])
    with pytest.warns(DuplicateTextWarning, match=r"3 distinct text\(s\) occur in more than one split") as rec:
        ds = load_dataset(train, validation_file=val, test_file=test)
    assert "train/validation: 1, train/test: 2" in str(rec[0].message)
    assert len(ds.test) == 4  # a warning, not an error: nothing is dropped
    one = _write(tmp_path / "dups.csv", _rows(per=10) + _rows(per=10))  # every text twice, in one file
    with warnings.catch_warnings():
        warnings.simplefilter("error", DuplicateTextWarning)
        ds = load_dataset(one)  # carving groups copies of a text: no warning
    assert len(ds.train) + len(ds.validation) + len(ds.test) == 60


# ----------------------------------------------------------------------------------------------
# spec strings and named sets
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("clinc150", DatasetSpec("named", name="clinc150")),
        ("CLINC150:Small", DatasetSpec("named", name="clinc150", variant="small")),
        ("clinc150:plus", DatasetSpec("named", name="clinc150", variant="plus")),
        ("banking77", DatasetSpec("named", name="banking77")),
        ("hwu64", DatasetSpec("named", name="hwu64")),
        ("snips", DatasetSpec("named", name="snips")),
        ("embedded", DatasetSpec("named", name="embedded")),
        ("data/intents.csv", DatasetSpec("file", path=Path("data/intents.csv"), file_format="csv")),
        ("x.TSV", DatasetSpec("file", path=Path("x.TSV"), file_format="tsv")),
        ("x.jsonl", DatasetSpec("file", path=Path("x.jsonl"), file_format="jsonl")),
        ("x.json", DatasetSpec("file", path=Path("x.json"), file_format="jsonl")),
        ("x.parquet", DatasetSpec("file", path=Path("x.parquet"), file_format="parquet")),
        ("hf:PolyAI/banking77", DatasetSpec("hub", hub_id="PolyAI/banking77")),
        ("hf:clinc/clinc_oos:small", DatasetSpec("hub", hub_id="clinc/clinc_oos", config="small")),
        ("someorg/my-data.v2", DatasetSpec("hub", hub_id="someorg/my-data.v2")),
        ("someorg/my_data:cfg", DatasetSpec("hub", hub_id="someorg/my_data", config="cfg")),
    ],
)
def test_parse_dataset_spec(spec, expected):
    assert parse_dataset_spec(spec) == expected
    assert parse_dataset_spec(str(expected)) == expected  # str() gives back a spec


def test_parse_dataset_spec_errors(tmp_path, monkeypatch):
    for spec, match in (
        ("imagenet", "unknown dataset spec"),
        ("", "unknown dataset spec"),
        ("clinc150:tiny", "full, small, imbalanced, plus"),
        ("banking77:full", "no variants"),
        ("hf:", "bad Hugging Face dataset id"),
        ("hf:org/name:bad config", "bad Hugging Face dataset id"),
        ("notes.txt", r"unknown file extension '\.txt'"),
        ("./somefile", "no file extension"),
    ):
        with pytest.raises(ValueError, match=match):
            parse_dataset_spec(spec)
    (tmp_path / "org").mkdir()
    (tmp_path / "org" / "name").write_text("x", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="no file extension"):  # an existing local path is not a hub id
        parse_dataset_spec("org/name")
    with pytest.raises(DataError, match="is a directory"):
        parse_dataset_spec("org")
    assert parse_dataset_spec(Path("a.csv")).kind == "file"


def test_named_sets_through_load_dataset(data_dir):
    assert load_dataset("embedded").train.texts == embedded_intents().train.texts
    assert load_dataset("embedded", oos_label="oos").oos_label == 8
    with pytest.raises(ValueError, match="oos_label"):
        load_dataset("embedded", oos_label="other")
    small = load_dataset("clinc150:small", data_dir=data_dir)
    assert small.variant == "small" and len(small.train) == 7600
    a = load_dataset("banking77", data_dir=data_dir, split_seed=1)
    b = load_dataset("banking77", data_dir=data_dir)
    assert a.validation.texts != b.validation.texts and a.test.texts == b.test.texts
    with pytest.raises(ValueError, match="oos_label"):
        load_dataset("banking77", data_dir=data_dir, oos_label="oos")


# ----------------------------------------------------------------------------------------------
# hub ids
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_hub_id_offline_fails_fast_with_alternatives(monkeypatch, variable):
    datasets = pytest.importorskip("datasets")
    for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    monkeypatch.setenv(variable, "1")
    monkeypatch.setattr(hub, "_datasets_offline_mode", lambda: False)

    def no_network(*a, **k):
        raise AssertionError("must not contact the hub in offline mode")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    for spec in ("hf:someorg/intents:cfg", "someorg/intents:cfg"):
        with pytest.raises(DataNotAvailableError) as err:
            load_dataset(spec)
        msg = str(err.value)
        assert "hf:someorg/intents:cfg" in msg and variable in msg, msg
        assert "train.parquet" in msg and "test_file=" in msg and DATA_DIR_ENV in msg


def test_hub_id_offline_real_datasets_library(tmp_path):
    """A fresh process, HF_HUB_OFFLINE=1 and an empty cache: the real library path fails fast and clearly."""
    code = (
        "from spectralkd_tutorial.data import load_dataset, DataNotAvailableError\n"
        "try:\n    load_dataset('hf:someorg/no-such-intents')\n"
        "except DataNotAvailableError as e:\n    print('OK', e)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"), PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.startswith("OK"), out.stdout + out.stderr
    assert "HF_HUB_OFFLINE" in out.stdout and "hf:someorg/no-such-intents" in out.stdout


@pytest.fixture
def fake_hub(monkeypatch):
    """``datasets.load_dataset`` replaced by a table of in-memory DatasetDicts; online mode."""
    datasets = pytest.importorskip("datasets")
    for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(v, raising=False)
    table: dict = {}
    calls: list = []

    def fake_load(path, name=None, **kw):
        calls.append((path, name))
        return table[(path, name)]

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    return datasets, table, calls


def test_hub_id_classlabel_and_carving(fake_hub):
    datasets, table, calls = fake_hub
    feats = datasets.Features(
        {"sentence": datasets.Value("string"), "intent": datasets.ClassLabel(names=["zeta", "oos", "alpha"])}
    )
    rows = {"sentence": [f"s{i}" for i in range(30)], "intent": [i % 3 for i in range(30)]}
    test = {"sentence": ["u", "v", "w"], "intent": [2, 1, 0]}
    table[("org/data", "cfg")] = datasets.DatasetDict(
        train=datasets.Dataset.from_dict(rows, features=feats),
        test=datasets.Dataset.from_dict(test, features=feats),
        extra=datasets.Dataset.from_dict(test, features=feats),
    )
    ds = load_dataset("hf:org/data:cfg", text_column="sentence", label_column="intent", oos_label="oos")
    assert calls[-1] == ("org/data", "cfg")
    assert ds.label_names == ["zeta", "oos", "alpha"] and ds.oos_label == 1  # ClassLabel order kept
    assert [ds.label_names[y] for y in ds.test.labels] == ["alpha", "oos", "zeta"] and ds.test.texts == ["u", "v", "w"]
    assert (len(ds.train), len(ds.validation)) == (27, 3)  # validation carved: 1 per label
    assert ds.name == "hf:org/data" and ds.variant == "cfg" and "not used: extra" in ds.notes
    with pytest.raises(DataError) as err:
        load_dataset("hf:org/data:cfg")
    assert "hf:org/data [train]" in str(err.value) and "'sentence'" in str(err.value)
    assert "--text-column" in str(err.value)


def test_hub_id_plain_labels_dev_split_and_unlabelled_rows(fake_hub):
    datasets, table, _ = fake_hub
    ints = {"text": [f"t{i}" for i in range(20)], "label": [i % 2 for i in range(20)]}
    table[("org/ints", None)] = datasets.DatasetDict(
        train=datasets.Dataset.from_dict(ints),
        dev=datasets.Dataset.from_dict({"text": ["d"], "label": [1]}),
        test=datasets.Dataset.from_dict({"text": ["e", "f"], "label": [0, 1]}),
    )
    ds = load_dataset("org/ints")
    assert ds.label_names == ["0", "1"] and ds.validation.texts == ["d"] and len(ds.train) == 20
    strs = {"text": ["a", "b", "c", "d"], "label": ["y", "x", "y", "x"]}
    table[("org/strs", None)] = datasets.DatasetDict(train=datasets.Dataset.from_dict(strs))
    ds = load_dataset("hf:org/strs", validation_fraction=0.25, test_fraction=0.25)
    assert ds.label_names == ["x", "y"] and _all(ds) == Counter(zip(strs["text"], strs["label"]))
    feats = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["a", "b"])})
    table[("org/unlabelled", None)] = datasets.DatasetDict(
        train=datasets.Dataset.from_dict({"text": ["p", "q", "r"], "label": [0, 1, 0]}, features=feats),
        test=datasets.Dataset.from_dict({"text": ["s", "t"], "label": [0, -1]}, features=feats),
    )
    with pytest.raises(DataError, match=r"hf:org/unlabelled \[test\]: row 2: label -1"):
        load_dataset("hf:org/unlabelled")
    table[("org/notrain", None)] = datasets.DatasetDict(test=datasets.Dataset.from_dict(strs))
    with pytest.raises(DataError, match="no 'train' split"):
        load_dataset("hf:org/notrain")
