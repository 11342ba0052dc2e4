"""Issue #25 ("clear errors, early"): each bad input ends in one line and exit code 2 that names the
input and the fix, before any expensive work; and the quieter faults of the same list (a garbage
lock, a truncated results.json, a one-seed verdict, settings missing from a fingerprint or a
recorded config) are handled instead of misleading.

Each test imports what it needs itself (only ``cli.main`` at the top), so that every one of them
can be run, and seen to fail, on its own against the code before the fix.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from spectralkd_tutorial.cli.app import main

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--preset", "quick", "--no-progress"]


@pytest.fixture(autouse=True)
def offline_cache(tmp_path_factory, monkeypatch):
    """Offline, with this module's own cache of tiny checkpoints."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SPECTRALKD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "early-errors-cache"))


def forbid(monkeypatch, modules, names, message: str) -> None:
    """Replace each of ``names`` in each of ``modules`` (where it exists) by a call that fails the test."""
    for module in modules:
        for name in names:
            if hasattr(module, name):
                monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail(message))


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as loading data, fine-tuning a teacher or running a grid."""
    import spectralkd_tutorial.pipelines.distill as distill
    import spectralkd_tutorial.pipelines.experiment as experiment
    import spectralkd_tutorial.pipelines.steps as steps

    forbid(monkeypatch, (steps, distill, experiment), ("load_data", "train_teacher", "run_experiment"),
           "expensive work started before the argument was checked")


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if a training step runs."""
    from spectralkd_tutorial.engine import training

    forbid(monkeypatch, (training,), ("train_step",), "training started")


def one_line_error(code: int, err: str, command: str) -> None:
    """Exit code 2 and one line, ``spectralkd COMMAND: error: ...`` (after any ``note:`` lines)."""
    assert code == 2, err
    *notes, last = err.strip("\n").split("\n")
    assert last.startswith(f"spectralkd {command}: error: ") and all(n.startswith("note: ") for n in notes), err


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    """``main(argv)`` in this process: its exit code and what it wrote to stderr."""
    capsys.readouterr()
    return main(list(argv)), capsys.readouterr().err


def write_csv(path: Path, rows, header=("text", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def intents(n: int = 45, labels: int = 3, prefix: str = "utterance") -> list[tuple[str, str]]:
    return [(f"{prefix} number {i} about topic {i % labels}", f"intent{i % labels}") for i in range(n)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A saved tiny classifier with the embedded set's labels (130 positions)."""
    from spectralkd_tutorial.data import load_dataset
    from spectralkd_tutorial.models.tiny import build_tiny_checkpoint

    labels = load_dataset("embedded").label_names
    root = tmp_path_factory.mktemp("early-models")
    return Path(build_tiny_checkpoint(root / "model", "roberta", num_labels=len(labels), label_names=labels,
                                      num_layers=2, hidden_size=32, num_heads=4))
    return path


# ---------------------------------------------------------------------------------------------
# arguments, checked before any work
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["teacher", "--lr", "1e300"],
     "teacher.train.learning_rate=1e+300 overflows the optimizer's float32 update; give at most 1e+30"),
    (["experiment", "--lr", "1e39"], "student.train.learning_rate=1e+39 overflows the optimizer's float32 update"),
    (["teacher", "--text-column", "label", "--label-column", "label"],
     "data.text_column and data.label_column are both 'label'; name the text column and the label column"),
    (["teacher", "--train-file", "train.csv"],
     "--train-file train.csv needs --test-file (--validation-file is optional); to split one file into "
     "train/validation/test, give it as --data train.csv"),
    (["teacher", "--test-file", "test.csv"], "--test-file need --train-file too"),
    (["teacher", "--data", "clinc150", "--train-file", "a.csv", "--test-file", "b.csv"],
     "--train-file/--test-file name your own files, but --data clinc150 is a named set"),
])
def test_bad_arguments_stop_before_any_work(tmp_path, capsys, no_work, argv, message):
    code, err = run_cli(capsys, argv[0], *QUICK, "--out", str(tmp_path / "out"), *argv[1:])
    one_line_error(code, err, argv[0])
    assert message in err
    assert not (tmp_path / "out").exists()


def test_cuda_without_cuda_stops_before_any_work(tmp_path, capsys, no_work):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for command in ("teacher", "distill"):
        code, err = run_cli(capsys, command, *QUICK, "--device", "cuda", "--out", str(tmp_path / command))
        one_line_error(code, err, command)
        assert "device='cuda': CUDA is not available here" in err and "use --device cpu or auto" in err


def test_train_file_with_test_file_needs_no_data_flag(tmp_path):
    from spectralkd_tutorial.cli.app import build_parser, resolve_config
    from spectralkd_tutorial.pipelines.steps import load_data

    train = write_csv(tmp_path / "train.csv", intents(45))
    test = write_csv(tmp_path / "test.csv", intents(9, prefix="held-out"))
    args = build_parser().parse_args(["teacher", *QUICK, "--out", str(tmp_path / "o"), "--train-file", str(train),
                                      "--test-file", str(test)])
    dataset = load_data(resolve_config(args))  # the preset's named set is replaced by the user's files
    assert sorted(dataset.label_names) == ["intent0", "intent1", "intent2"]
    assert len(dataset.test) == 9 and len(dataset.train) + len(dataset.validation) == 45


@pytest.mark.parametrize("command", ["teacher", "experiment"])
def test_publish_pointing_at_a_file_stops_before_any_work(tmp_path, capsys, no_work, command):
    target = tmp_path / "notes.txt"
    target.write_text("mine\n")
    code, err = run_cli(capsys, command, *QUICK, "--out", str(tmp_path / "out"), "--publish", str(target))
    one_line_error(code, err, command)
    assert f"--publish {target} is a file, not a directory; name a directory" in err
    assert target.read_text() == "mine\n"
    code, err = run_cli(capsys, command, *QUICK, "--out", str(tmp_path / "out"), "--publish", str(target / "sub"))
    one_line_error(code, err, command)
    assert f"cannot be created: {target} is a file" in err


@pytest.mark.parametrize("command, student, message", [
    ("distill", "layers:99", "student.model='layers:99' copies 99 blocks, but the teacher tiny-roberta has 4; "
                             "give --student layers:K with K <= 4"),
    ("experiment", "layers:9", "student.model='layers:9' copies 9 blocks, but the teacher tiny-roberta has 4"),
    ("distill", "no-such-org/no-such-student", "student.model: model 'no-such-org/no-such-student' is not a local "
                                               "directory and HF_HUB_OFFLINE is set"),
])
def test_the_student_is_checked_before_the_teacher_is_fine_tuned(tmp_path, capsys, monkeypatch, command, student,
                                                                 message):
    import spectralkd_tutorial.pipelines.distill as distill
    import spectralkd_tutorial.pipelines.experiment as experiment
    import spectralkd_tutorial.pipelines.steps as steps

    forbid(monkeypatch, (steps, distill, experiment), ("load_data", "train_teacher"),
           "data loaded or teacher fine-tuned before the student was checked")
    code, err = run_cli(capsys, command, *QUICK, "--student", student, "--out", str(tmp_path / "out"))
    one_line_error(code, err, command)
    assert message in err


def test_distill_into_a_teacher_run_is_refused_before_any_work(tmp_path, capsys, no_work):
    run = tmp_path / "T"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"kind": "teacher", "fingerprint": "0" * 64, "settings": {}}))
    (run / "metrics.json").write_text("{}")
    code, err = run_cli(capsys, "distill", *QUICK, "--out", str(run))
    one_line_error(code, err, "distill")
    assert f"--out {run} holds a teacher run ({run / 'run.json'}), not a distill run; choose another --out" in err
    assert f"give --teacher {run}" in err
    assert sorted(p.name for p in run.iterdir()) == ["metrics.json", "run.json"]


def test_teacher_out_inside_a_model_folder_is_refused_before_any_work(tmp_path, capsys, no_work, tiny_model):
    folder = tmp_path / "mine"
    shutil.copytree(tiny_model, folder)
    before = sorted(p.name for p in folder.iterdir())
    code, err = run_cli(capsys, "teacher", *QUICK, "--out", str(folder))
    one_line_error(code, err, "teacher")
    assert f"--out {folder} is a saved model (config.json and weights)" in err and "outside the model folder" in err
    code, err = run_cli(capsys, "teacher", *QUICK, "--out", str(folder / "runs" / "t"))
    one_line_error(code, err, "teacher")
    assert f"is inside {folder.resolve()}, which is a saved model" in err
    assert sorted(p.name for p in folder.iterdir()) == before


def test_an_empty_text_to_predict_is_refused(tmp_path, capsys, tiny_model):
    code, err = run_cli(capsys, "predict", "--model", str(tiny_model), "wake me up at 7", "  ")
    one_line_error(code, err, "predict")
    assert "text 2 of the arguments is empty" in err and "remove it or give the text" in err


# ---------------------------------------------------------------------------------------------
# data files
# ---------------------------------------------------------------------------------------------

def test_data_too_small_for_a_validation_split_names_the_file_and_the_fix(tmp_path, capsys, no_training):
    from spectralkd_tutorial.config.sections import DataConfig
    from spectralkd_tutorial.data import DataError
    from spectralkd_tutorial.pipelines.steps import load_data

    path = write_csv(tmp_path / "tiny.csv", [("wake me up", "alarm"), ("set an alarm", "alarm"),
                                             ("my balance", "balance"), ("how much money", "balance")])
    with pytest.raises(DataError, match=re.escape(f"data train={path} is too small to carve a validation split (train 2, "
                                                  "validation 0, test 2 rows over 2 labels); give at least 3 rows")):
        load_data(DataConfig(dataset=str(path)))
    code, err = run_cli(capsys, "teacher", *QUICK, "--data", str(path), "--out", str(tmp_path / "out"))
    one_line_error(code, err, "teacher")
    assert "--train-file/--validation-file/--test-file" in err


def test_duplicate_column_names_are_refused(tmp_path):
    from spectralkd_tutorial.data import DataError, load_dataset

    path = write_csv(tmp_path / "dup.csv", [(text, label, "other") for text, label in intents()],
                     header=("text", "label", "text"))
    with pytest.raises(DataError, match=re.escape(f"{path}: line 1 (header): column 'text' appears 2 times")):
        load_dataset(str(path))
    lines = tmp_path / "dup.jsonl"
    lines.write_text("".join(f'{{"text": "{t}", "label": "{y}", "text": "other"}}\n' for t, y in intents()))
    with pytest.raises(DataError, match=re.escape(f"{lines}: line 1: key 'text' appears 2 times in one object")):
        load_dataset(str(lines))
    # another column named twice is harmless
    fine = write_csv(tmp_path / "fine.csv", [(t, y, "a", "b") for t, y in intents()], header=("text", "label", "x", "x"))
    assert load_dataset(str(fine)).num_labels == 3


def test_a_csv_cell_over_the_csv_module_limit_reads_like_jsonl(tmp_path):
    import csv as csv_module

    from spectralkd_tutorial.data import load_dataset

    long = "word " * 30_000  # 150,000 characters: over csv's default 131,072
    rows = [(long if i == 0 else t, y) for i, (t, y) in enumerate(intents())]
    path = write_csv(tmp_path / "long.csv", rows)
    lines = tmp_path / "long.jsonl"
    lines.write_text("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    limit = csv_module.field_size_limit()
    from_csv, from_jsonl = load_dataset(str(path)), load_dataset(str(lines))
    assert csv_module.field_size_limit() == limit  # restored
    for split in ("train", "validation", "test"):
        assert getattr(from_csv, split).texts == getattr(from_jsonl, split).texts
    assert any(len(t) > 131_072 for s in from_csv.splits.values() for t in s.texts)


def test_max_length_beyond_the_positions_stops_before_training(tmp_path, capsys, no_training, tiny_model):
    rows = [("word " * 400 if i == 0 else t, y) for i, (t, y) in enumerate(intents())]
    data = write_csv(tmp_path / "long.csv", rows)
    code, err = run_cli(capsys, "teacher", *QUICK, "--data", str(data), "--max-length", "300",
                        "--out", str(tmp_path / "out"))
    one_line_error(code, err, "teacher")
    assert "max_length=300 is more tokens than model tiny-roberta can read (130 positions); give --max-length " \
           "130 or less" in err
    code, err = run_cli(capsys, "predict", "--model", str(tiny_model), "--max-length", "999", "hello")
    one_line_error(code, err, "predict")
    assert "max_length=999 is more tokens than model" in err and "(130 positions)" in err


# ---------------------------------------------------------------------------------------------
# faults during a run
# ---------------------------------------------------------------------------------------------

def test_a_full_disk_inside_torch_save_names_the_file(tmp_path, capsys, monkeypatch):
    """torch.save's zip writer reports a failed write as a RuntimeError from inline_container.cc."""
    import torch

    save = torch.save

    def full(obj, path, *args, **kwargs):
        if Path(path).name.endswith(".tmp") and "checkpoint.pt." in Path(path).name:  # its temporary file
            return save(obj, "/dev/full", *args, **kwargs)  # the real error of a full disk
        return save(obj, path, *args, **kwargs)

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    monkeypatch.setattr(torch, "save", full)
    out = tmp_path / "D"
    code, err = run_cli(capsys, "teacher", *QUICK, "--epochs", "1", "--out", str(out))
    one_line_error(code, err, "teacher")
    assert f"cannot write or read {out / 'checkpoint.pt'}: write failed: is the disk full?" in err
    assert "free disk space or choose a writable --out" in err
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()


@pytest.mark.parametrize("content", ["", "garbage{", '{"pid": -1}', "[1, 2]"])
def test_an_empty_or_garbage_lock_is_taken_over(tmp_path, capfd, content):
    from spectralkd_tutorial.engine.run_store import RunStore

    lock = tmp_path / ".lock"
    lock.write_text(content)
    old = lock.stat().st_mtime - 60
    os.utime(lock, (old, old))  # left by a process killed a minute ago
    with RunStore(tmp_path, kind="teacher", settings={"a": 1}):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert f"took over {lock}: it was empty or unreadable" in capfd.readouterr().err
    assert not lock.exists()


def test_a_live_lock_still_names_its_holder(tmp_path):
    import socket

    from spectralkd_tutorial.engine.run_store import RunStore
    from spectralkd_tutorial.common.errors import RunDirectoryError

    (tmp_path / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "command": "x"}))
    with pytest.raises(RunDirectoryError, match=f"in use by process {os.getppid()}"):
        RunStore(tmp_path, kind="teacher", settings={}).open()


# ---------------------------------------------------------------------------------------------
# grids: results.json, verdicts, fingerprints, config.toml
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    """A finished quick grid of two strategies, one seed."""
    out = tmp_path_factory.mktemp("grid") / "E"
    code = main(["experiment", *QUICK, "--strategies", "none", "uniform", "--seeds", "0", "--out", str(out)])
    assert code == 0
    return out


def test_a_truncated_results_json_is_rebuilt_from_the_runs_on_disk(grid, tmp_path, capsys, monkeypatch):
    import spectralkd_tutorial.pipelines.experiment as experiment

    out = Path(shutil.copytree(grid, tmp_path / "E"))
    before = json.loads((out / "results.json").read_text())["runs"]
    data = (out / "results.json").read_bytes()
    (out / "results.json").write_bytes(data[: len(data) // 2])
    monkeypatch.setattr(experiment, "distil_student", lambda *a, **k: pytest.fail("a finished run was trained again"))
    code, err = run_cli(capsys, "experiment", *QUICK, "--strategies", "none", "uniform", "--seeds", "0",
                        "--out", str(out))
    assert code == 0, err
    assert "is truncated or not valid JSON; rebuilt it from the 2 finished run(s)" in err
    after = {r["strategy"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    for run in before:
        assert after[run["strategy"]]["test"] == run["test"] and after[run["strategy"]]["mapping"] == run["mapping"]


def test_a_grid_config_records_every_run_it_holds(grid, tmp_path, capsys, monkeypatch):
    import tomllib

    import spectralkd_tutorial.pipelines.experiment as experiment

    out = Path(shutil.copytree(grid, tmp_path / "E"))
    monkeypatch.setattr(experiment, "distil_student", lambda *a, **k: pytest.fail("a finished run was trained again"))
    code, err = run_cli(capsys, "experiment", *QUICK, "--strategies", "none", "--seeds", "0", "--out", str(out))
    assert code == 0, err
    recorded = tomllib.loads((out / "config.toml").read_text())["grid"]
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert recorded["strategies"] == ["none", "uniform"] == [r["strategy"] for r in runs]
    assert recorded["seeds"] == [0]


def test_one_seed_cannot_tell():
    from spectralkd_tutorial.pipelines.experiment import conclusion

    def grid(accuracies: dict[str, list[float]]):
        runs = [{"strategy": name, "seed": seed, "test": {"accuracy": value}}
                for name, values in accuracies.items() for seed, value in enumerate(values)]
        rows = [{"strategy": name, "seeds": len(values), "accuracy_mean": sum(values) / len(values),
                 "accuracy_std": 0.0 if len(values) == 1 else 0.01} for name, values in accuracies.items()]
        return rows, runs

    text = conclusion(*grid({"uniform": [0.80], "spectral-ends": [0.70]}))
    assert "One seed cannot tell whether spectral selection (`spectral-ends`) beats the best baseline (`uniform`)" in text
    assert "does NOT beat" not in text and "does not matter much" not in text and "seed std" not in text
    text = conclusion(*grid({"uniform": [0.80, 0.81, 0.79], "spectral-ends": [0.70, 0.71, 0.69]}))
    assert "does NOT beat the baselines" in text


def test_the_teacher_cache_dtype_is_part_of_a_grid_fingerprint():
    from spectralkd_tutorial.engine.run_store import fingerprint
    from spectralkd_tutorial.pipelines.experiment import grid_settings
    from spectralkd_tutorial.config.presets import get_preset

    def grid_fingerprint(**runtime):
        config = get_preset("quick").replace(**{f"runtime.{k}": v for k, v in runtime.items()})
        return fingerprint(grid_settings(config, "teacher"))

    half = grid_fingerprint(teacher_cache_dtype="float16")
    assert grid_fingerprint(teacher_cache_dtype="float32") not in (half, grid_fingerprint(teacher_cache_dtype="bfloat16"))
    assert half == grid_fingerprint()  # the default keeps the fingerprint of older runs
    assert grid_fingerprint(teacher_cache="off", teacher_cache_dtype="float32") == grid_fingerprint(teacher_cache="off")


# ---------------------------------------------------------------------------------------------
# a run directory accepted as a model; one description of the cache budget; masks
# ---------------------------------------------------------------------------------------------

def test_analyze_accepts_a_run_directory(tmp_path, capsys, tiny_model):
    run = tmp_path / "RUN"
    shutil.copytree(tiny_model, run / "model")
    (run / "metrics.json").write_text("{}")
    code, err = run_cli(capsys, "analyze", *QUICK, "--samples", "8", "--model", str(run), "--out", str(tmp_path / "A"))
    assert code == 0, err
    assert len(json.loads((tmp_path / "A" / "intensity.json").read_text())["layers"]) == 3


def test_the_cache_budget_is_described_one_way(tmp_path):
    import shutil as sh

    from spectralkd_tutorial.cli.app import build_parser
    from spectralkd_tutorial.engine.teacher_cache import available_memory, cache_budget

    experiment = build_parser()._subparsers._group_actions[0].choices["experiment"]
    help_text = next(a.help for a in experiment._actions if a.dest == "teacher_cache_budget")
    default = re.search(r"\(default: (.*)\)$", help_text).group(1)
    readme = re.sub(r"\s+", " ", (REPO / "README.md").read_text().replace("`", ""))
    assert f"default: {default})" in readme
    assert "free disk space" in default and "less 1 GB" in default and "half the available RAM" in default
    # ... and the code does what they say
    budget, _ = cache_budget("disk", tmp_path, None)
    assert abs(budget - (sh.disk_usage(tmp_path).free - 10**9)) < 2**26
    budget, _ = cache_budget("memory", None, None)
    assert abs(budget - available_memory() // 2) < 2**28


@pytest.mark.parametrize("mask, message", [
    ([[1.0, 0.5, 0.0], [1.0, 1.0, 1.0]], "must hold only 0 (padding) and 1 (real token)"),
    ([[0, 0, 0], [0, 0, 0]], "attention_mask is all zeros"),
])
def test_sentence_features_refuses_a_soft_or_empty_mask(mask, message):
    import torch

    from spectralkd_tutorial.losses import sentence_features

    hidden = torch.randn(2, 3, 4, dtype=torch.float64)
    with pytest.raises(ValueError, match=re.escape(message)):
        sentence_features(hidden, torch.tensor(mask))
    # a binary mask: the mean over the real tokens (a naive loop as the reference)
    keep = torch.tensor([[1, 1, 0], [1, 0, 0]])
    pooled = sentence_features(hidden, keep)
    for b in range(2):
        rows = [hidden[b, n] for n in range(3) if keep[b, n]]
        assert torch.allclose(pooled[b, 0], sum(rows) / len(rows))
