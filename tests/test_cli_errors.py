"""Issue #15: every bad argument and every fault ends in one line and exit code 2, naming the input
and the fix, early (before any expensive work); a real bug keeps its traceback.

Only ``cli.main`` is imported at module level, so each test runs (and fails) on its own against
older code.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spectralkd_tutorial.cli.app import main

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--preset", "quick", "--no-progress"]


@pytest.fixture(autouse=True)
def env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPECTRALKD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cli-errors-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if a command gets as far as loading data or running the grid."""
    import spectralkd_tutorial.pipelines.experiment as experiment
    import spectralkd_tutorial.pipelines.steps as steps

    def expensive(*args, **kwargs):
        raise AssertionError("expensive work started before the argument was checked")

    monkeypatch.setattr(steps, "load_data", expensive)
    monkeypatch.setattr(experiment, "run_experiment", expensive)


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = main(list(argv))
    return code, capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# arguments, checked before any expensive work
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["experiment", "--strategies", "bogus"],
     "config grid.strategies: unknown strategy ['bogus']; choose from ['first', 'last', 'none'"),
    (["experiment", "--strategies", "bogus"], "(given as --strategies bogus)"),
    (["experiment", "--epochs", "0"], "config student.train.epochs=0.0 must be > 0 (given as --epochs 0.0)"),
    (["teacher", "--epochs", "0"], "config teacher.train.epochs=0.0 must be > 0 (given as --epochs 0.0)"),
    (["experiment", "--lr", "-1"], "config student.train.learning_rate=-1.0 must be > 0 (given as --lr -1.0)"),
    (["experiment", "--batch-size", "0"], "student.train.batch_size=0 must be >= 1 (given as --batch-size 0)"),
    (["analyze", "--samples", "0"], "config analysis.samples=0 must be >= 1 (given as --samples 0)"),
    (["analyze", "--samples", "-5"], "config analysis.samples=-5 must be >= 1 (given as --samples -5)"),
    (["experiment", "--seeds", "0", "0"], "config grid.seeds lists [0] more than once; give each once"),
    (["experiment", "--strategies", "none", "none"], "grid.strategies lists ['none'] more than once; give each once"),
])
def test_bad_values_are_refused_before_any_work(tmp_path, capsys, no_work, argv, message):
    code, err = run_cli(capsys, *argv[:1], *QUICK, "--out", str(tmp_path / "out"), *argv[1:])
    assert code == 2 and message in err and err.count("\n") == 1
    assert err.startswith(f"spectralkd {argv[0]}: error: ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--epochs", "--lr"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_by_the_parser(tmp_path, capsys, no_work, flag, value):
    with pytest.raises(SystemExit) as stop:
        main(["experiment", *QUICK, "--out", str(tmp_path), f"{flag}={value}"])
    assert stop.value.code == 2
    assert f"argument {flag}: '{value}' must be a finite number" in capsys.readouterr().err


def test_out_checks_come_before_any_work(tmp_path, capsys, no_work):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    cases = {"": "--out is empty; name an output directory, e.g. --out runs/demo",
             str(a_file): f"--out {a_file} is a file, not a directory; choose another --out",
             str(a_file / "sub"): f"cannot create {a_file / 'sub'} (Not a directory); choose a writable --out"}
    if sys.platform.startswith("linux"):  # /proc refuses new files even to root
        cases["/proc"] = "/proc is not writable"
    for command in ("teacher", "experiment", "analyze"):
        for out, message in cases.items():
            code, err = run_cli(capsys, command, *QUICK, "--out", out)
            assert code == 2 and message in err, (command, out, err)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_out_is_refused_before_any_work(tmp_path, capsys, no_work):
    out = tmp_path / "read-only"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, err = run_cli(capsys, "teacher", *QUICK, "--out", str(out))
    finally:
        out.chmod(0o755)
    assert code == 2 and f"{out} is not writable" in err and "choose a writable --out" in err


def test_an_explicit_data_dir_that_does_not_exist_is_not_replaced_by_the_hub(tmp_path, capsys):
    missing = tmp_path / "no-such-data"
    code, err = run_cli(capsys, "teacher", *QUICK, "--dataset", "clinc150", "--data-dir", str(missing),
                        "--out", str(tmp_path / "out"))
    assert code == 2
    assert f"data_dir {missing} does not exist" in err and "neither SPECTRALKD_DATA_DIR nor the hub is tried" in err


def test_invalid_utf8_names_the_file_and_the_line(tmp_path, capsys):
    data = tmp_path / "intents.csv"
    data.write_bytes(b"text,label\nhello there,greet\n\xff\xfe what,ask\n")
    code, err = run_cli(capsys, "teacher", *QUICK, "--dataset", str(data), "--out", str(tmp_path / "out"))
    assert code == 2 and f"{data}: line 3: invalid UTF-8" in err and "Save the file as UTF-8" in err


@pytest.mark.parametrize("argv, message", [
    (["teacher", "--data-dir", "{tmp}"], "--data-dir is ignored: data set 'embedded' does not read upstream files"),
    (["experiment", "--student", "roberta-base", "--student-init", "last"], "--student-init is ignored"),
])
def test_an_option_the_preset_ignores_is_warned_about(tmp_path, capsys, no_work, argv, message):
    a_file = tmp_path / "a-file"  # an --out that stops the command right after the warning
    a_file.write_text("")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    with pytest.warns(UserWarning, match=message):
        code, _ = run_cli(capsys, *argv[:1], *QUICK, "--out", str(a_file), *argv[1:])
    assert code == 2


def test_bench_with_zero_steps(capsys):
    for flag in ("--steps", "--repeats", "--samples"):
        code, err = run_cli(capsys, "bench", "distill", flag, "0")
        assert code == 2 and "--steps, --repeats and --samples must be >= 1" in err


def test_configs_are_validated_on_every_change():
    from spectralkd_tutorial.config.presets import get_preset

    config = get_preset("quick")
    with pytest.raises(ValueError, match="epochs=0 must be > 0"):
        config.student.train.epochs = 0
    with pytest.raises(ValueError, match=r"seeds lists \[1\] more than once"):
        config.grid.seeds = (1, 1)
    assert config.student.train.epochs == 4 and config.grid.seeds == (0, 1, 2)


# ---------------------------------------------------------------------------------------------
# models given by the user
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, Path]:
    """A valid tiny classifier with the embedded set's labels, and broken copies of it."""
    import shutil

    from spectralkd_tutorial.data import load_dataset
    from spectralkd_tutorial.models.tiny import build_tiny_checkpoint

    root = tmp_path_factory.mktemp("models")
    labels = load_dataset("embedded").num_labels
    good = build_tiny_checkpoint(root / "good", "roberta", num_labels=labels, num_layers=2, hidden_size=32, num_heads=4)
    dirs = {"good": Path(good), "labels": Path(build_tiny_checkpoint(root / "labels", "roberta", num_labels=labels - 2,
                                                                     num_layers=2, hidden_size=32, num_heads=4))}
    for name in ("bad-json", "no-weights", "truncated", "no-model-type"):
        dirs[name] = Path(shutil.copytree(good, root / name))
    (dirs["bad-json"] / "config.json").write_text('{"model_type": "roberta",')
    (dirs["no-weights"] / "model.safetensors").unlink()
    weights = dirs["truncated"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    (dirs["no-model-type"] / "config.json").write_text("{}")
    dirs["missing"] = root / "missing"
    return dirs


BROKEN = {
    "bad-json": "{dir}/config.json is not valid JSON",
    "no-weights": "{dir} has a config.json but no weights (*.safetensors or *.bin); re-save the model",
    "truncated": "could not load the model in {dir}: ",
    "no-model-type": "could not load the model in {dir}: ",
    "missing": "no model in {dir} (expected {dir}/config.json or {dir}/model/config.json)",
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_teacher_directory_is_named_before_any_training(model_dirs, tmp_path, capsys, monkeypatch, name):
    import spectralkd_tutorial.pipelines.steps as steps

    monkeypatch.setattr(steps, "fit", lambda *a, **k: pytest.fail("training started"))
    folder = model_dirs[name]
    out = tmp_path / "out"
    code, err = run_cli(capsys, "experiment", *QUICK, "--teacher", str(folder), "--out", str(out))
    assert code == 2 and BROKEN[name].format(dir=folder) in err
    assert "re-save" in err or "point to a directory written by save_pretrained" in err
    assert not (out / "run.json").exists()
    if name != "missing":  # the same directory as the model to fine-tune
        code, err = run_cli(capsys, "teacher", *QUICK, "--teacher-base", str(folder), "--out", str(tmp_path / "t"))
        assert code == 2 and BROKEN[name].format(dir=folder) in err and "re-save" in err


def test_a_teacher_with_another_label_count_is_refused_before_training(model_dirs, tmp_path, capsys, monkeypatch):
    import spectralkd_tutorial.pipelines.steps as steps

    monkeypatch.setattr(steps, "fit", lambda *a, **k: pytest.fail("training started"))
    folder = model_dirs["labels"]
    code, err = run_cli(capsys, "experiment", *QUICK, "--teacher", str(folder), "--out", str(tmp_path / "out"))
    assert code == 2
    assert f"{folder} has 7 labels but embedded has 9; use a teacher fine-tuned on this data" in err


def test_an_unreachable_hub_fails_fast_with_the_alternatives(tmp_path):
    """HF_HUB_OFFLINE unset and no hub: one quick probe, not from_pretrained's five retries."""
    env = {key: value for key, value in os.environ.items() if key not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT="http://127.0.0.1:9", OMP_NUM_THREADS="1", HF_HOME=str(tmp_path / "hf"),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
               SPECTRALKD_CACHE_DIR=str(tmp_path / "cache"))
    argv = ["analyze", *QUICK, "--model", "no-such-org/no-such-model", "--out", str(tmp_path / "out")]
    code = ("import sys, time; from spectralkd_tutorial.cli.app import main; start = time.perf_counter(); "
            f"rc = main({argv!r}); print(f'seconds {{time.perf_counter() - start:.1f}}'); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    err = result.stderr
    assert result.returncode == 2, err
    assert "model 'no-such-org/no-such-model' is not a local directory and the Hugging Face hub cannot be reached" in err
    assert "set HF_HUB_OFFLINE=1 to fail fast" in err and "pass a directory written by save_pretrained" in err
    assert "Retrying" not in err  # from_pretrained's retry loop (25 s of back-off) never started
    seconds = float(result.stdout.split("seconds ")[1])
    assert seconds < 30, f"took {seconds} s"
    print(f"unreachable hub: error after {seconds} s (analyze, data loading included)")


# ---------------------------------------------------------------------------------------------
# faults during a run
# ---------------------------------------------------------------------------------------------

def test_a_full_disk_names_the_file_and_leaves_no_temporary_file_or_lock(tmp_path, capsys, disk_full):
    out = tmp_path / "D"
    disk_full("checkpoint.pt")
    argv = ["teacher", *QUICK, "--epochs", "1", "--out", str(out)]
    code, err = run_cli(capsys, *argv)
    assert code == 2
    assert f"cannot write or read {out / 'checkpoint.pt'}: No space left on device" in err
    assert "free disk space or choose a writable --out" in err
    assert sorted(p.name for p in out.iterdir()) == ["run.json"]  # no temporary file, no lock


def test_a_truncated_checkpoint_is_named_with_the_way_out(tmp_path, capsys, interrupt_training):
    out = tmp_path / "D"
    argv = ["teacher", *QUICK, "--epochs", "2", "--out", str(out)]
    interrupt_training(9)  # after the checkpoint of epoch 1 (7 batches)
    code, err = run_cli(capsys, *argv)
    assert code == 130 and "interrupted; run the same command again to resume" in err
    interrupt_training(None)
    checkpoint = out / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    code, err = run_cli(capsys, *argv)
    assert code == 2 and f"{checkpoint} cannot be read" in err and "delete it to start this run over" in err


def test_a_non_finite_loss_stops_with_the_fix(tmp_path, capsys):
    code, err = run_cli(capsys, "teacher", *QUICK, "--epochs", "1", "--lr", "1e30", "--out", str(tmp_path / "D"))
    assert code == 2 and "non-finite loss at batch" in err and "lower the learning rate (1e+30)" in err
    # nothing was produced, so other settings in the same --out are not refused (they run, and stop the same way)
    code, err = run_cli(capsys, "teacher", *QUICK, "--epochs", "1", "--lr", "1e29", "--out", str(tmp_path / "D"))
    assert code == 2 and "lower the learning rate (1e+29)" in err


def test_a_real_bug_keeps_its_traceback(monkeypatch):
    import spectralkd_tutorial.cli.bench as bench

    def bug(args):
        raise TypeError("unsupported operand type(s)")

    monkeypatch.setattr(bench, "cmd_bench", bug)
    with pytest.raises(TypeError, match="unsupported operand"):
        main(["bench", "distill"])
