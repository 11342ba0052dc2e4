"""Issue #15: runs that never lie. Each numbered case of the issue, driven as a user hits it.

1. new settings on an existing --out are refused, and nothing in it changes;
2. a killed run does not resume with other settings;
3. finished runs are never dropped from results.json;
4. a second process stops, naming the holder of the lock; a stale lock is taken over;
5. a profile derived from one teacher is never used for another;
6. duplicate seeds or strategies are refused;
plus housekeeping (orphan temporary files, the umask), a failed write that keeps the old results,
and a fault-injection run: experiment killed with SIGKILL at random points, then resumed.

Only ``cli.main`` is imported at module level, so each test runs (and fails) on its own against
older code.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spectralkd_tutorial.cli.app import main

REPO = Path(__file__).resolve().parents[1]
QUICK = ["--preset", "quick", "--no-progress"]
GRID = ["--strategies", "none", "--epochs", "1"]


@pytest.fixture(scope="module", autouse=True)
def env(offline_private_cache):
    """Offline, a private cache of tiny checkpoints, for this module and its subprocesses."""
    yield


@pytest.fixture(scope="module")
def teachers(tmp_path_factory, env) -> tuple[Path, Path]:
    """Two finished quick teachers (1 epoch; the second with another learning rate)."""
    root = tmp_path_factory.mktemp("teachers")
    for name, extra in (("T1", []), ("T2", ["--lr", "0.01"])):
        assert main(["teacher", *QUICK, "--epochs", "1", "--out", str(root / name), *extra]) == 0
    return root / "T1", root / "T2"


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def cli_process(*argv: str, log: Path) -> subprocess.Popen:
    """``spectralkd ARGV`` in a new process; its stderr goes to ``log`` (a pipe could fill and block it)."""
    with open(log, "a") as handle:
        return subprocess.Popen([sys.executable, "-m", "spectralkd_tutorial.cli", *argv], env=child_env(),
                                stdout=subprocess.DEVNULL, stderr=handle)


def wait_for(path: Path, process: subprocess.Popen, log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"process ended (rc {process.returncode}) before {path} appeared: {log.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or p.name == ".lock"]


def intensities(path: Path) -> list[float]:
    data = json.loads(path.read_text())
    return data["teacher"]["intensities"] if "teacher" in data else data["intensities"]


# ---------------------------------------------------------------------------------------------
# 1. new settings on an existing --out
# ---------------------------------------------------------------------------------------------

def test_1_new_settings_on_an_existing_out_are_refused_and_nothing_changes(teachers, tmp_path, capsys):
    out = tmp_path / "D"
    shutil.copytree(teachers[0], out)  # a finished `teacher --epochs 1 --out D`
    before = snapshot(out)
    code, _, err = run_cli(capsys, "teacher", *QUICK, "--out", str(out), "--epochs", "2", "--lr", "0.05")
    assert code == 2
    assert str(out) in err and "teacher.train.epochs: 1 -> 2" in err
    assert "teacher.train.learning_rate: 0.003 -> 0.05" in err
    assert "another --out" in err and "--overwrite" in err
    assert snapshot(out) == before  # model/, metrics.json, config.toml, run.json: byte for byte

    code, _, _ = run_cli(capsys, "teacher", *QUICK, "--out", str(out), "--epochs", "2", "--lr", "0.05", "--overwrite")
    assert code == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["train"]["learning_rate"] == 0.05 and record["train"]["epochs"] == 2
    assert [round(h["epoch"]) for h in record["history"]] == [1, 2]
    assert "learning_rate = 0.05" in (out / "config.toml").read_text()
    assert (out / "model" / "model.safetensors").read_bytes() != before["model/model.safetensors"]


def test_1_the_same_settings_spelled_differently_are_the_same_run(teachers, tmp_path, capsys):
    """``epochs = 1`` in a TOML file and ``--epochs 1`` (1.0) are one setting: reused, not refused."""
    out = tmp_path / "D"
    shutil.copytree(teachers[0], out)
    before = snapshot(out)
    config = tmp_path / "teacher.toml"
    config.write_text("[teacher.train]\nepochs = 1\n")
    code, _, err = run_cli(capsys, "teacher", *QUICK, "--config", str(config), "--out", str(out))
    assert code == 0, err
    after = snapshot(out)
    assert all(after[name] == before[name] for name in before if name.startswith("model/") or name == "metrics.json")


# ---------------------------------------------------------------------------------------------
# 2. a killed run resumed with other settings
# ---------------------------------------------------------------------------------------------

def test_2_a_killed_run_is_not_resumed_with_other_settings(tmp_path, capsys):
    out = tmp_path / "D"
    argv = ["teacher", *QUICK, "--out", str(out), "--epochs", "3"]
    log = tmp_path / "stderr.txt"
    process = cli_process(*argv, "--lr", "0.003", log=log)
    wait_for(out / "checkpoint.pt", process, log)  # the end of epoch 1
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoint = (out / "checkpoint.pt").read_bytes()
    assert json.loads((out / ".lock").read_text())["pid"] == process.pid  # left by the killed process

    code, _, err = run_cli(capsys, *argv, "--lr", "0.05")
    assert code == 2
    assert "teacher.train.learning_rate: 0.003 -> 0.05" in err and "--overwrite" in err and str(out) in err
    assert (out / "checkpoint.pt").read_bytes() == checkpoint
    assert not (out / "metrics.json").exists() and not (out / "model").exists()

    # the same settings resume
    code, _, err = run_cli(capsys, *argv, "--lr", "0.003")
    assert code == 0, err
    record = json.loads((out / "metrics.json").read_text())
    assert record["train"]["learning_rate"] == 0.003 and len(record["history"]) == 3
    assert not leftovers(out) and not (out / "checkpoint.pt").exists()


def test_2_a_checkpoint_carries_the_settings_it_was_written_with(tmp_path):
    from spectralkd_tutorial.engine.run_store import RunStore
    from spectralkd_tutorial.common.errors import CheckpointError

    with RunStore(tmp_path, kind="teacher", settings={"learning_rate": 0.003}) as store:
        store.save_checkpoint({"next_batch": 7})
    (tmp_path / "run.json").unlink()  # the record is gone; the checkpoint still says whose it is
    with RunStore(tmp_path, kind="teacher", settings={"learning_rate": 0.05}) as store:
        with pytest.raises(CheckpointError, match=r"checkpoint.pt was written by a run with other settings; delete it"):
            store.load_checkpoint()
    with RunStore(tmp_path, kind="teacher", settings={"learning_rate": 0.05}, overwrite=True) as store:
        assert store.load_checkpoint() is None and not store.exists("checkpoint.pt")


# ---------------------------------------------------------------------------------------------
# 3. finished runs are only ever added
# ---------------------------------------------------------------------------------------------

def test_3_finished_runs_are_never_dropped(teachers, tmp_path, capsys):
    out = tmp_path / "E"
    base = ["experiment", *QUICK, "--teacher", str(teachers[0]), "--epochs", "1", "--out", str(out)]
    assert run_cli(capsys, *base, "--seeds", "0", "--strategies", "none", "uniform")[0] == 0
    first = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["strategy"], r["seed"]) for r in first] == [("none", 0), ("uniform", 0)]

    code, stdout, _ = run_cli(capsys, *base, "--seeds", "1", "--strategies", "none")
    assert code == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert runs[:2] == first and [(r["strategy"], r["seed"]) for r in runs[2:]] == [("none", 1)]
    # the table of this call shows the runs it asked for
    table = (out / "results.md").read_text()
    assert "| none |" in table and "| uniform |" not in table and "| none |" in stdout


def test_3_a_failed_write_keeps_the_previous_results(teachers, tmp_path, capsys, disk_full):
    out = tmp_path / "E"
    base = ["experiment", *QUICK, "--teacher", str(teachers[0]), *GRID, "--out", str(out)]
    assert run_cli(capsys, *base, "--seeds", "0")[0] == 0
    before = (out / "results.json").read_bytes()
    disk_full("results.json")
    code, _, err = run_cli(capsys, *base, "--seeds", "1")
    assert code == 2
    assert f"{out / 'results.json'}: No space left on device" in err and "free disk space" in err
    assert (out / "results.json").read_bytes() == before
    assert not leftovers(out)
    disk_full(None)
    assert run_cli(capsys, *base, "--seeds", "1")[0] == 0
    runs = json.loads((out / "results.json").read_text())["runs"]
    assert [(r["strategy"], r["seed"]) for r in runs] == [("none", 0), ("none", 1)]


# ---------------------------------------------------------------------------------------------
# 4. concurrent writers
# ---------------------------------------------------------------------------------------------

HOLDER = """
import sys, time
from spectralkd_tutorial.cli.app import build_parser, resolve_config
from spectralkd_tutorial.engine.run_store import RunStore
from spectralkd_tutorial.pipelines.experiment import grid_settings
from spectralkd_tutorial.pipelines.steps import model_fingerprint, teacher_settings

teacher_argv, experiment_argv, teacher_dir = sys.argv[1].split("|"), sys.argv[2].split("|"), sys.argv[3]
args = build_parser().parse_args(teacher_argv)
RunStore(args.out, kind="teacher", settings=teacher_settings(resolve_config(args))).open()
args = build_parser().parse_args(experiment_argv)
settings = grid_settings(resolve_config(args), model_fingerprint(teacher_dir))
RunStore(args.out, kind="experiment", settings=settings).open()
print("locked", flush=True)
time.sleep(600)
"""


def test_4_a_second_process_stops_naming_the_holder_and_a_stale_lock_is_taken_over(teachers, tmp_path, capsys):
    teacher_argv = ["teacher", *QUICK, "--epochs", "1", "--out", str(tmp_path / "D")]
    experiment_argv = ["experiment", *QUICK, "--teacher", str(teachers[0]), *GRID, "--seeds", "0",
                       "--out", str(tmp_path / "S")]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, "|".join(teacher_argv), "|".join(experiment_argv),
                               str(teachers[0])], env=child_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        for argv, out in ((teacher_argv, tmp_path / "D"), (experiment_argv, tmp_path / "S")):
            code, _, err = run_cli(capsys, *argv)
            assert code == 2
            assert f"{out} is in use by process {holder.pid} on {socket.gethostname()}" in err
            assert "wait for it to finish or use another --out" in err
            assert not (out / "metrics.json").exists() and not (out / "results.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    for argv, out in ((teacher_argv, tmp_path / "D"), (experiment_argv, tmp_path / "S")):
        assert (out / ".lock").exists()  # left by the killed holder
        code, _, err = run_cli(capsys, *argv)
        assert code == 0, err
        assert not leftovers(out)
    assert [r["seed"] for r in json.loads((tmp_path / "S" / "results.json").read_text())["runs"]] == [0]


# ---------------------------------------------------------------------------------------------
# 5. a profile derived from one teacher, never used for another
# ---------------------------------------------------------------------------------------------

def test_5_a_teacher_profile_is_never_reused_for_another_teacher(teachers, tmp_path, capsys):
    t1, t2 = teachers
    assert intensities(t1 / "intensity.json") != pytest.approx(intensities(t2 / "intensity.json"), abs=1e-7)
    out = tmp_path / "E"
    base = ["experiment", *QUICK, *GRID, "--seeds", "0", "--out", str(out)]
    assert run_cli(capsys, *base, "--teacher", str(t1))[0] == 0
    assert intensities(out / "results.json") == pytest.approx(intensities(t1 / "intensity.json"), abs=1e-6)
    profile_t1 = (out / "teacher_intensity.json").read_bytes()

    code, _, err = run_cli(capsys, *base, "--teacher", str(t2))
    assert code == 2 and "teacher: " in err and "--overwrite" in err
    assert (out / "teacher_intensity.json").read_bytes() == profile_t1

    # a profile left by a run with teacher 1 (no record of the run beside it) is recomputed for teacher 2
    other = tmp_path / "F"
    other.mkdir()
    (other / "teacher_intensity.json").write_bytes(profile_t1)
    code, _, err = run_cli(capsys, *base[:-1], str(other), "--teacher", str(t2))
    assert code == 0, err
    for directory in (other / "teacher_intensity.json", other / "results.json"):
        assert intensities(directory) == pytest.approx(intensities(t2 / "intensity.json"), abs=1e-6)

    assert run_cli(capsys, *base, "--teacher", str(t2), "--overwrite")[0] == 0
    assert intensities(out / "results.json") == pytest.approx(intensities(t2 / "intensity.json"), abs=1e-6)


# ---------------------------------------------------------------------------------------------
# 6. duplicates in the grid
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags, message", [
    (["--seeds", "0", "0", "--strategies", "none"],
     "config grid.seeds lists [0] more than once; give each once (given as --seeds 0 0)"),
    (["--seeds", "0", "1", "0", "--strategies", "none"], "grid.seeds lists [0] more than once"),
    (["--strategies", "none", "none", "--seeds", "0"],
     "config grid.strategies lists ['none'] more than once; give each once (given as --strategies none none)"),
])
def test_6_duplicate_seeds_or_strategies_are_refused(teachers, tmp_path, capsys, flags, message):
    out = tmp_path / "E"
    code, _, err = run_cli(capsys, "experiment", *QUICK, "--teacher", str(teachers[0]), "--epochs", "1",
                           "--out", str(out), *flags)
    assert code == 2 and message in err
    assert not out.exists()  # refused before any work


# ---------------------------------------------------------------------------------------------
# housekeeping: orphan temporary files, permissions
# ---------------------------------------------------------------------------------------------

def test_orphan_temporary_files_are_removed_on_the_next_run(teachers, tmp_path, capsys):
    out = tmp_path / "D"
    shutil.copytree(teachers[0], out)
    orphans = [out / ".spectralkd-metrics.json.k2j3.tmp", out / ".spectralkd-checkpoint.pt.x81.tmp",
               out / ".spectralkd-model.tmp" / "config.json"]
    for path in orphans:
        path.parent.mkdir(exist_ok=True)
        path.write_text("half")
    assert run_cli(capsys, "teacher", *QUICK, "--epochs", "1", "--out", str(out))[0] == 0
    assert not any(p.exists() for p in orphans) and not (out / ".spectralkd-model.tmp").exists()
    assert (out / "model" / "model.safetensors").exists() and not leftovers(out)


def test_orphans_of_a_nested_run_in_use_are_left_to_it(tmp_path):
    from spectralkd_tutorial.engine.run_store import RunStore

    (tmp_path / "teacher").mkdir()
    (tmp_path / "teacher" / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    busy, orphan = tmp_path / "teacher" / ".spectralkd-checkpoint.pt.a1.tmp", tmp_path / ".spectralkd-results.json.b2.tmp"
    busy.write_text("being written")
    orphan.write_text("left by a kill")
    with RunStore(tmp_path, kind="experiment", settings={}):
        pass
    assert busy.exists() and not orphan.exists()


def test_result_files_and_checkpoints_follow_the_umask(teachers, tmp_path, capsys, interrupt_training):

    out, grid = tmp_path / "D", tmp_path / "E"
    previous = os.umask(0o022)
    try:
        interrupt_training(9)  # after the checkpoint of epoch 1 (7 batches)
        argv = ["teacher", *QUICK, "--epochs", "2", "--out", str(out)]
        assert run_cli(capsys, *argv)[0] == 130
        assert {p.name: p.stat().st_mode & 0o777 for p in out.iterdir()} == {"run.json": 0o644, "checkpoint.pt": 0o644}
        interrupt_training(None)
        assert run_cli(capsys, *argv)[0] == 0
        assert run_cli(capsys, "experiment", *QUICK, "--teacher", str(teachers[0]), *GRID, "--seeds", "0",
                       "--keep-checkpoints", "--out", str(grid))[0] == 0
    finally:
        os.umask(previous)
    files = [p for root in (out, grid) for p in root.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"model.safetensors", "config.json", "metrics.json", "config.toml", "intensity.png", "results.json",
            "results.md", "ablation.png", "checkpoint.pt", "teacher_intensity.json"} <= names
    modes = {str(p.relative_to(tmp_path)): oct(p.stat().st_mode & 0o777) for p in files}
    assert {name: mode for name, mode in modes.items() if mode != "0o644"} == {}


# ---------------------------------------------------------------------------------------------
# fault injection: SIGKILL at random points, then resume
# ---------------------------------------------------------------------------------------------

def comparable(results: Path) -> dict[tuple[str, int], dict]:
    runs = json.loads(results.read_text())["runs"]
    keys = ("strategy", "seed", "mapping", "same_as", "test", "validation", "history", "dynamics")
    return {(r["strategy"], r["seed"]): {k: r.get(k) for k in keys} for r in runs}


@pytest.mark.slow
def test_experiment_killed_at_random_points_resumes_to_the_same_results(teachers, tmp_path):
    argv = ["experiment", *QUICK, "--teacher", str(teachers[0]), "--strategies", "none", "uniform", "spectral-ends",
            "--seeds", "0", "1", "--epochs", "1"]
    log = tmp_path / "stderr.txt"
    start = time.perf_counter()
    reference = cli_process(*argv, "--out", str(tmp_path / "reference"), log=log)
    assert reference.wait() == 0, log.read_text()
    duration = time.perf_counter() - start

    out = tmp_path / "killed"
    rng = random.Random(15)
    kills = []
    for _ in range(3):
        process = cli_process(*argv, "--out", str(out), log=log)
        delay = rng.uniform(0.25, 0.95) * duration
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
        done = len(comparable(out / "results.json")) if (out / "results.json").exists() else 0
        kills.append((round(delay, 1), process.returncode, done))
    final = cli_process(*argv, "--out", str(out), log=log)
    assert final.wait() == 0, log.read_text()
    print(f"uninterrupted {duration:.1f} s; kills (after s, rc, runs done): {kills}")

    assert any(rc == -signal.SIGKILL for _, rc, _ in kills)
    assert comparable(out / "results.json") == comparable(tmp_path / "reference" / "results.json")
    assert len(comparable(out / "results.json")) == 6
    assert not leftovers(out)
