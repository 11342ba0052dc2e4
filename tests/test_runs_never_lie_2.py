"""Issue #25: runs that never lie, round two. Each numbered case of the issue, driven as a user hits it.

1. every entry point that takes a teacher compares label *names* (experiment included);
2. a model directory without its tokenizer (or with another model's) is refused;
3. ``evaluate --out`` / ``analyze --out`` take the lock and refuse another command's run directory;
4. results follow a data file's contents, not its path; a config file's relative paths are its folder's;
5. the orphan clean-up removes only the tool's own temporary files;
6. ``--overwrite`` discards only what the tool wrote and refuses a folder holding the user's files;
7. under a launcher (2 processes) only the main process writes the shipped model;
8. ``--out`` the teacher's own folder is refused outright;
plus: a pretrained model gets fine-tuning defaults, not the quick preset's tiny-model settings.

Only ``cli.main`` is imported at module level, so each test runs (and fails) on its own against
older code.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from spectralkd_tutorial.cli.app import main

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--preset", "quick", "--no-progress"]
GRID = ["--strategies", "none", "--seeds", "0", "--epochs", "1"]


@pytest.fixture(scope="module", autouse=True)
def env(offline_private_cache):
    """Offline, a private cache of tiny checkpoints, for this module and its subprocesses."""
    yield


def write_csv(path: Path, swap: tuple[str, str] | None = None) -> Path:
    """The embedded set's training utterances as the user's CSV (``swap``: two intents' labels exchanged)."""
    from spectralkd_tutorial.data import embedded_intents

    data = embedded_intents()
    names = {swap[0]: swap[1], swap[1]: swap[0]} if swap else {}
    rows = [(text, names.get(data.label_names[label], data.label_names[label]))
            for text, label in zip(data.train.texts, data.train.labels)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, env) -> tuple[Path, Path]:
    """The user's CSV (with an ``oos`` intent) and a quick teacher fine-tuned on it with ``--oos-label oos``."""
    root = tmp_path_factory.mktemp("user")
    data = write_csv(root / "my.csv")
    assert main(["teacher", *QUICK, "--epochs", "1", "--data", str(data), "--oos-label", "oos",
                 "--out", str(root / "T")]) == 0
    return data, root / "T"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------
# 1. label names, compared in one place
# ---------------------------------------------------------------------------------------------

def test_1_experiment_refuses_a_teacher_whose_labels_are_in_another_order(teacher, tmp_path, capsys):
    data, t = teacher
    from spectralkd_tutorial.data import load_dataset

    with_oos, without = load_dataset(str(data), oos_label="oos"), load_dataset(str(data))
    assert with_oos.label_names != without.label_names and sorted(with_oos.label_names) == sorted(without.label_names)
    differ = next(i for i, (a, b) in enumerate(zip(with_oos.label_names, without.label_names)) if a != b)
    expected = (f"class {differ} is {with_oos.label_names[differ]!r} in the teacher but "
                f"{without.label_names[differ]!r} in the data")
    for command in (["experiment", *GRID], ["distill", "--epochs", "1"]):
        out = tmp_path / command[0]
        code, _, err = run_cli(capsys, *command, *QUICK, "--teacher", str(t), "--data", str(data), "--out", str(out))
        assert code == 2, err
        assert expected in err and "--oos-label" in err
        assert not (out / "results.json").exists() and not (out / "metrics.json").exists()


# ---------------------------------------------------------------------------------------------
# 2. a model directory without its tokenizer
# ---------------------------------------------------------------------------------------------

def test_2_a_model_directory_without_its_tokenizer_is_refused(teacher, tmp_path, capsys):
    data, t = teacher
    broken = tmp_path / "TB"
    shutil.copytree(t, broken)
    for file in (broken / "model").glob("tokenizer*"):
        file.unlink()
    code, out, err = run_cli(capsys, "predict", "--model", str(broken), "wake me up at 7")
    assert code == 2 and out == ""
    assert f"{broken / 'model'} holds a model but no tokenizer" in err and "save_pretrained" in err
    code, _, err = run_cli(capsys, "experiment", *QUICK, *GRID, "--teacher", str(broken), "--data", str(data),
                           "--oos-label", "oos", "--out", str(tmp_path / "E"))
    assert code == 2 and "holds a model but no tokenizer" in err
    assert not (tmp_path / "E" / "results.json").exists()


def test_2_a_tokenizer_that_does_not_fit_the_model_is_refused(teacher, tmp_path, capsys):
    from spectralkd_tutorial.data import embedded_intents
    from spectralkd_tutorial.models.tiny import train_tokenizer

    _, t = teacher
    other = tmp_path / "TO"
    shutil.copytree(t / "model", other)
    vocabulary = json.loads((other / "config.json").read_text())["vocab_size"]
    for size in (2000, 60):  # another model's tokenizer: ids beyond the embedding table, or a fraction of it
        for file in other.glob("tokenizer*"):
            file.unlink()
        wrong = train_tokenizer(embedded_intents().train.texts, "roberta" if size > 100 else "bert", vocab_size=size)
        wrong.save_pretrained(other)
        assert len(wrong) > vocabulary or len(wrong) < vocabulary // 2
        code, out, err = run_cli(capsys, "predict", "--model", str(other), "wake me up at 7")
        assert code == 2 and out == ""
        assert f"its tokenizer has {len(wrong)} tokens but the model's vocabulary has {vocabulary}" in err


# ---------------------------------------------------------------------------------------------
# 3. evaluate/analyze --out: the lock, and another command's run directory
# ---------------------------------------------------------------------------------------------

def test_3_evaluate_and_analyze_refuse_another_commands_run_directory(teacher, tmp_path, capsys):
    data, t = teacher
    run = tmp_path / "T"
    shutil.copytree(t, run)
    before = snapshot(run)
    for command in (["evaluate", "--model", str(run), "--dataset", str(data), "--oos-label", "oos"],
                    ["analyze", *QUICK, "--model", str(run), "--dataset", str(data), "--oos-label", "oos"]):
        code, _, err = run_cli(capsys, *command, "--out", str(run))
        assert code == 2, err
        assert f"{run} holds a teacher run" in err and "another --out" in err
        assert snapshot(run) == before
    code, _, err = run_cli(capsys, "teacher", *QUICK, "--epochs", "1", "--data", str(data), "--oos-label", "oos",
                           "--out", str(run))
    assert code == 0, err  # the teacher run is intact: reused as it was
    assert snapshot(run) == before


def test_3_evaluate_takes_the_lock_and_its_directory_is_its_own(teacher, tmp_path, capsys):
    data, t = teacher
    out = tmp_path / "eval"
    out.mkdir()
    (out / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": "other"}))
    argv = ["evaluate", "--model", str(t), "--dataset", str(data), "--oos-label", "oos", "--out", str(out)]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and f"{out} is in use by process {os.getpid()}" in err
    assert not (out / "metrics.json").exists()
    (out / ".lock").unlink()
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert json.loads((out / "run.json").read_text())["kind"] == "evaluation"
    assert (out / "metrics.json").exists() and not (out / ".lock").exists()
    code, _, err = run_cli(capsys, "teacher", *QUICK, "--epochs", "1", "--out", str(out))
    assert code == 2 and f"{out} holds an evaluation run" in err


# ---------------------------------------------------------------------------------------------
# 4. contents, not paths
# ---------------------------------------------------------------------------------------------

def test_4_a_data_file_edited_in_place_is_other_data(teacher, tmp_path, capsys, monkeypatch):
    data, t = teacher
    monkeypatch.chdir(tmp_path)
    mine = Path(shutil.copy(data, tmp_path / "my.csv"))
    argv = ["distill", *QUICK, "--teacher", str(t), "--data", "my.csv", "--oos-label", "oos", "--epochs", "1",
            "--out", "D"]
    code, _, err = run_cli(capsys, *argv)
    assert code == 0, err
    before = snapshot(tmp_path / "D")

    write_csv(mine, swap=("alarm", "timer"))  # same path, same rows, two intents' labels swapped
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert 'data.dataset: "sha256:' in err and "--overwrite" in err
    assert snapshot(tmp_path / "D") == before

    # the original file back; the same run again from another folder through its config.toml: reused as is
    shutil.copy(data, mine)
    monkeypatch.chdir(tmp_path / "D")
    code, _, err = run_cli(capsys, "distill", "--config", "config.toml", "--out", ".", "--no-progress")
    assert code == 0, err
    assert snapshot(tmp_path / "D") == before


def test_4_a_config_files_relative_paths_are_relative_to_its_folder(teacher, tmp_path, capsys, monkeypatch):
    data, t = teacher
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(data, folder / "intents.csv")
    (folder / "run.toml").write_text('[data]\ndataset = "intents.csv"\noos_label = "oos"\n')
    monkeypatch.chdir(tmp_path)  # no intents.csv here
    code, out, err = run_cli(capsys, "evaluate", "--model", str(t), "--config", "project/run.toml")
    assert code == 0, err
    assert "in_scope_accuracy" in out


# ---------------------------------------------------------------------------------------------
# 5 and 6. the user's files in --out
# ---------------------------------------------------------------------------------------------

def users_files(root: Path) -> list[Path]:
    for folder in ("notes.tmp", "backup.old", "deep/nested", "src"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    files = [root / ".s.tmp", root / "deep" / "nested" / ".d.tmp", root / "notes.tmp" / "a.txt",
             root / "backup.old" / "b.txt", root / "src" / "main.py", root / "NOTES.md"]
    for file in files:
        file.write_text("the user's")
    return files


def test_5_the_orphan_clean_up_leaves_the_users_files_alone(tmp_path, capsys, monkeypatch):
    out = tmp_path / "U"
    files = users_files(out)
    ours = out / ".spectralkd-metrics.json.k2j3.tmp"  # what a killed atomic write of this tool leaves
    ours.write_text("half")
    code, _, err = run_cli(capsys, "teacher", *QUICK, "--epochs", "1", "--out", str(out))
    assert code == 0, err
    assert all(file.read_text() == "the user's" for file in files)
    assert not ours.exists() and (out / "model" / "model.safetensors").exists()
    # `--out .` in a project folder
    project = tmp_path / "P"
    files = users_files(project)
    monkeypatch.chdir(project)
    code, _, err = run_cli(capsys, "teacher", *QUICK, "--epochs", "1", "--out", ".")
    assert code == 0, err
    assert all(file.read_text() == "the user's" for file in files)


def test_6_overwrite_discards_only_what_the_tool_wrote(tmp_path, capsys):
    out = tmp_path / "U"
    files = users_files(out)
    argv = ["teacher", *QUICK, "--epochs", "1", "--out", str(out)]
    assert run_cli(capsys, *argv)[0] == 0
    before = snapshot(out)
    code, _, err = run_cli(capsys, *argv[:-4], "--epochs", "2", "--out", str(out), "--overwrite")
    assert code == 2
    assert f"{out} holds files spectralkd did not write: .s.tmp, NOTES.md, backup.old, deep, notes.tmp and 1 more" in err
    assert snapshot(out) == before  # nothing deleted, nothing written
    listed = json.loads((out / "run.json").read_text())["files"]
    assert {"model", "metrics.json", "config.toml", "intensity.json"} <= set(listed)
    assert not {"NOTES.md", "src", "deep", ".s.tmp"} & set(listed)

    clean = tmp_path / "C"
    assert run_cli(capsys, "teacher", *QUICK, "--epochs", "1", "--out", str(clean))[0] == 0
    (clean / "NOTES.md").write_text("added after the run")
    code, _, err = run_cli(capsys, "teacher", *QUICK, "--epochs", "2", "--out", str(clean), "--overwrite")
    assert code == 2 and "NOTES.md" in err
    (clean / "NOTES.md").unlink()
    code, _, err = run_cli(capsys, "teacher", *QUICK, "--epochs", "2", "--out", str(clean), "--overwrite")
    assert code == 0, err
    assert json.loads((clean / "metrics.json").read_text())["train"]["epochs"] == 2
    assert all(file.read_text() == "the user's" for file in files)


# ---------------------------------------------------------------------------------------------
# 7. one writer of the shipped model
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_7_only_the_main_process_writes_the_shipped_model(teacher, tmp_path):
    data, t = teacher
    writers = tmp_path / "writers"
    writers.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg", "SPECTRALKD_TEST_WRITERS": str(writers)}
    out = tmp_path / "TX"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(Path(__file__).with_name("distill_writers.py")), "distill", *QUICK, "--teacher", str(t),
                           "--data", str(data), "--oos-label", "oos", "--epochs", "1", "--out", str(out)],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert sorted(p.name for p in writers.iterdir()) == ["rank-0"]
    assert (out / "model" / "config.json").exists() and (out / "model" / "model.safetensors").exists()
    from spectralkd_tutorial.models.loading import load_model_dir

    model, _ = load_model_dir(out / "model")
    record = json.loads((out / "metrics.json").read_text())
    assert record["student"]["weights_bytes"] == (out / "model" / "model.safetensors").stat().st_size > 0
    assert model.config.num_labels == record["dataset"]["num_labels"]


# ---------------------------------------------------------------------------------------------
# 8. --out is the teacher
# ---------------------------------------------------------------------------------------------

def test_8_out_the_teachers_own_folder_is_refused_outright(teacher, tmp_path, capsys):
    data, t = teacher
    run = tmp_path / "T"
    shutil.copytree(t, run)
    before = snapshot(run)
    for command in (["distill", "--epochs", "1"], ["experiment", *GRID]):
        for teacher_dir, out in ((run, run), (run / "model", run), (run / "model", run / "model")):
            for extra in ([], ["--overwrite"]):
                code, _, err = run_cli(capsys, *command, *QUICK, "--teacher", str(teacher_dir), "--data", str(data),
                                       "--oos-label", "oos", "--out", str(out), *extra)
                assert code == 2
                assert f"--out {out} is your teacher's folder" in err and "Choose another --out" in err
                assert snapshot(run) == before


# ---------------------------------------------------------------------------------------------
# a toy default applied to a real model
# ---------------------------------------------------------------------------------------------

def test_a_pretrained_model_gets_fine_tuning_defaults_unless_the_user_sets_them(tmp_path, capsys, monkeypatch):
    from spectralkd_tutorial.cli.app import build_parser, resolve_config
    from spectralkd_tutorial.config.presets import MINILM_HUB_NAME, get_preset

    monkeypatch.setenv("SPECTRALKD_PRESET", "quick")
    quick, suited = get_preset("quick"), get_preset("workshop")
    assert quick.teacher.train.learning_rate > 10 * suited.teacher.train.learning_rate  # the toy setting

    def resolved(*argv: str):
        capsys.readouterr()
        config = resolve_config(build_parser().parse_args(list(argv)))
        return config, capsys.readouterr().err

    config, err = resolved("distill", "--teacher-base", MINILM_HUB_NAME, "--out", str(tmp_path / "D"))
    for role in ("teacher", "student"):
        train, expected = getattr(config, role).train, getattr(suited, role).train
        assert (train.epochs, train.learning_rate) == (expected.epochs, expected.learning_rate)
    assert "is pretrained: using fine-tuning defaults" in err and f"teacher learning_rate {suited.teacher.train.learning_rate:g}" in err

    config, _ = resolved("distill", "--teacher-base", MINILM_HUB_NAME, "--epochs", "7", "--lr", "0.01",
                         "--out", str(tmp_path / "D"))
    assert (config.student.train.epochs, config.student.train.learning_rate) == (7, 0.01)  # the user's own
    assert config.teacher.train.learning_rate == suited.teacher.train.learning_rate

    toml = tmp_path / "mine.toml"
    toml.write_text("[teacher.train]\nlearning_rate = 0.001\n")
    config, _ = resolved("teacher", "--teacher-base", MINILM_HUB_NAME, "--config", str(toml), "--out", str(tmp_path / "T"))
    assert config.teacher.train.learning_rate == 0.001 and config.teacher.train.epochs == suited.teacher.train.epochs

    # a pretrained student (a hub name or a directory, not layers:K) gets them too; the tiny quick models keep theirs
    config, _ = resolved("distill", "--student", "some-org/small-model", "--out", str(tmp_path / "D"))
    assert config.student.train.learning_rate == suited.student.train.learning_rate
    assert config.teacher.train == quick.teacher.train
    config, err = resolved("distill", "--out", str(tmp_path / "D"))
    assert config.teacher.train == quick.teacher.train and config.student.train == quick.student.train
    assert "fine-tuning defaults" not in err
