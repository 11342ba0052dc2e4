"""The ablation grid: every run once, a table that follows the runs, resume, one shared start.

The quick preset's tiny 4-block RoBERTa teacher is fine-tuned on the embedded intents (validation
subsampled: ``run_experiment`` must use the ``dataset`` it is given) and handed to ``run_experiment``
(3 strategies x 2 seeds, 1 epoch). ``experiment.fit`` is wrapped by a spy that
counts the runs it trains and hashes each student's weights when its training starts.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import shutil
import statistics
from pathlib import Path

import pytest
import torch

from spectralkd_tutorial.pipelines import experiment

from spectralkd_tutorial.pipelines import steps
from spectralkd_tutorial.config.sections import RunConfig
from spectralkd_tutorial.engine.evaluation import evaluate
from spectralkd_tutorial.engine.training import fit
from spectralkd_tutorial.data import embedded_intents
from spectralkd_tutorial.analysis.dynamics import coinciding_strategies, gap_curves, history_rows, profile_gap
from spectralkd_tutorial.pipelines.experiment import conclusion, run_experiment, summarise
from spectralkd_tutorial.models.loading import load_model_dir as load_teacher_dir
from spectralkd_tutorial.models.loading import student_from_teacher
from spectralkd_tutorial.config.presets import get_preset
from spectralkd_tutorial.pipelines.steps import train_teacher
from spectralkd_tutorial.analysis.selection import select_layers
from spectralkd_tutorial.analysis.stats import pair_by_seed, paired_difference

STRATEGIES = ("none", "uniform", "spectral-ends")
SEEDS = (0, 1)


def state_hash(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class FitSpy:
    """Stands in for the training loop the grid's steps call: records each run, optionally 'crashes' after N runs."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.calls: list[dict] = []
        self.fail_after = fail_after

    def __call__(self, model, tokenizer, dataset, config, **kwargs):
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise KeyboardInterrupt(f"simulated crash after {self.fail_after} runs")
        distillation = kwargs["distillation"]
        self.calls.append({"strategy": distillation.mapping.strategy, "seed": kwargs["settings"].seed,
                           "start": state_hash(model), "feature_loss": distillation.loss.feature_loss})
        return fit(model, tokenizer, dataset, config, **kwargs)

    @property
    def cells(self) -> list[tuple[str, int]]:
        return [(c["strategy"], c["seed"]) for c in self.calls]


def make_config(teacher_dir: Path, *, alpha: float = 0.5, seeds=SEEDS) -> RunConfig:
    return get_preset("quick", **{"grid.strategies": STRATEGIES, "grid.seeds": seeds, "grid.dynamics_samples": 8,
                                  "student.train.epochs": 1, "student.train.batch_size": 16,
                                  "teacher.finetuned": str(teacher_dir), "loss.alpha": alpha,
                                  "runtime.progress": False})


def run_with_spy(config, out, dataset, spy: FitSpy):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(steps, "fit", spy)
        return run_experiment(config, out, dataset=dataset)


@pytest.fixture(scope="module")
def teacher_setup(tmp_path_factory, one_thread):
    """The quick preset's tiny RoBERTa teacher, fine-tuned for 8 epochs (about 80% in-scope accuracy)."""
    root = tmp_path_factory.mktemp("experiment")
    dataset = embedded_intents().subset(validation=36)
    teacher_dir = root / "teacher"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPECTRALKD_CACHE_DIR", str(root / "cache"))
        config = get_preset("quick", **{"teacher.train.epochs": 8, "teacher.train.eval_each_epoch": False,
                                        "runtime.progress": False})
        train_teacher(config, teacher_dir, dataset=dataset)
    return dataset, teacher_dir, root


@pytest.fixture(scope="module")
def grid(teacher_setup):
    dataset, teacher_dir, root = teacher_setup
    out = root / "grid"
    spy = FitSpy()
    report = run_with_spy(make_config(teacher_dir), out, dataset, spy)
    return dataset, teacher_dir, out, report, spy


def copy_grid(out: Path, tmp_path: Path) -> Path:
    target = tmp_path / "grid"
    shutil.copytree(out, target)
    return target


def table_cells(markdown: str) -> dict[str, list[str]]:
    """``{first column: [cells...]}`` for the rows of the results table (header excluded)."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| ") and not line.startswith("| strategy"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


def pct(values) -> str:
    return f"{100 * statistics.fmean(values):.2f} ± {100 * statistics.stdev(values):.2f}"


# --------------------------------------------------------------------------------------------
# the grid
# --------------------------------------------------------------------------------------------

def test_every_strategy_and_seed_is_trained_once(grid):
    dataset, _, out, report, spy = grid
    saved = json.loads((out / "results.json").read_text())
    cells = sorted((r["strategy"], r["seed"]) for r in saved["runs"])
    assert cells == sorted((s, seed) for s in STRATEGIES for seed in SEEDS)
    assert sorted(spy.cells) == cells
    assert {c["strategy"]: c["feature_loss"] for c in spy.calls} == {
        "none": "none", "uniform": "spectral", "spectral-ends": "spectral"}
    assert saved["dataset"] == json.loads(json.dumps(dataset.summary()))  # the dataset given, not the preset's
    assert saved["dataset"]["splits"]["validation"]["examples"] == 36
    for name in ("results.md", "ablation.png", "mappings.png", "dynamics.png", "teacher_intensity.json"):
        assert (out / name).exists(), name
    assert not list(out.glob("runs/*/checkpoint.pt")), "checkpoints are removed unless keep_checkpoints"


def test_results_table_matches_a_recomputation_from_the_runs(grid):
    dataset, teacher_dir, out, report, _ = grid
    saved = json.loads((out / "results.json").read_text())
    runs = saved["runs"]
    rows = table_cells((out / "results.md").read_text())
    assert list(rows) == ["teacher", *STRATEGIES]

    teacher, tokenizer = load_teacher_dir(teacher_dir)
    teacher_test = evaluate(teacher, tokenizer, dataset, "test", max_length=32)  # independent of the grid
    assert rows["teacher"][1:4] == [f"{100 * teacher_test[k]:.2f}"
                                    for k in ("in_scope_accuracy", "oos_recall", "overall_accuracy")]
    intensities = saved["teacher"]["intensities"]
    for strategy in STRATEGIES:
        chosen = [r for r in runs if r["strategy"] == strategy]
        layers, in_scope, oos, overall, retained, seeds = rows[strategy]
        expected_layers = select_layers(strategy, 2, 4, intensities).teacher_layers
        assert layers == (",".join(map(str, expected_layers)) or "none (logits only)")
        assert in_scope == pct([r["test"]["in_scope_accuracy"] for r in chosen])
        assert oos == pct([r["test"]["oos_recall"] for r in chosen])
        assert overall == pct([r["test"]["overall_accuracy"] for r in chosen])
        assert retained == pct([r["test"]["in_scope_accuracy"] / teacher_test["in_scope_accuracy"] for r in chosen])
        assert seeds == str(len(SEEDS))
    verdict = conclusion(summarise(runs, teacher_test, STRATEGIES), runs)
    assert verdict == report.conclusion and verdict in (out / "results.md").read_text()


def test_every_student_starts_from_the_same_weights(grid):
    _, teacher_dir, out, report, spy = grid
    starts = {c["start"] for c in spy.calls}
    assert len(starts) == 1, "students of the grid started from different weights"
    teacher, _ = load_teacher_dir(teacher_dir)
    init = select_layers("uniform", 2, 4)  # the quick preset's student_init
    saved = json.loads((out / "results.json").read_text())
    assert saved["student_init"]["pairs"] == [list(p) for p in init.pairs]
    assert starts == {state_hash(student_from_teacher(teacher, init.teacher_layers))}
    profiles = {tuple(r["dynamics"][0]["intensities"]) for r in report.runs}  # measured before training
    assert len(profiles) == 1


# --------------------------------------------------------------------------------------------
# resume
# --------------------------------------------------------------------------------------------

def test_resume_trains_only_the_missing_run(grid, tmp_path):
    dataset, teacher_dir, out, report, _ = grid
    target = copy_grid(out, tmp_path)
    saved = json.loads((target / "results.json").read_text())
    saved["runs"] = [r for r in saved["runs"] if (r["strategy"], r["seed"]) != ("uniform", 1)]
    (target / "results.json").write_text(json.dumps(saved))
    (target / "results.md").unlink()
    spy = FitSpy()
    again = run_with_spy(make_config(teacher_dir), target, dataset, spy)
    assert spy.cells == [("uniform", 1)]
    assert (target / "results.md").read_text() == (out / "results.md").read_text()
    assert again.table_markdown == report.table_markdown
    retrained = next(r for r in again.runs if (r["strategy"], r["seed"]) == ("uniform", 1))
    original = next(r for r in report.runs if (r["strategy"], r["seed"]) == ("uniform", 1))
    assert retrained["test"] == original["test"]


def test_interrupted_grid_resumes_where_it_stopped(grid, tmp_path):
    dataset, teacher_dir, out, report, _ = grid
    crashing = FitSpy(fail_after=4)
    with pytest.raises(KeyboardInterrupt, match="simulated crash"):
        run_with_spy(make_config(teacher_dir), tmp_path / "grid", dataset, crashing)
    partial = json.loads((tmp_path / "grid" / "results.json").read_text())
    assert len(partial["runs"]) == 4
    spy = FitSpy()
    again = run_with_spy(make_config(teacher_dir), tmp_path / "grid", dataset, spy)
    grid_order = [(s, seed) for seed in SEEDS for s in STRATEGIES]
    assert crashing.cells == grid_order[:4] and spy.cells == grid_order[4:]
    assert again.table_markdown == report.table_markdown
    assert again.conclusion == report.conclusion


def test_other_settings_in_the_same_directory_are_refused(grid, tmp_path):
    dataset, teacher_dir, out, _, _ = grid
    target = copy_grid(out, tmp_path)
    before = (target / "results.json").read_text()
    spy = FitSpy()
    with pytest.raises(ValueError, match="other settings"):
        run_with_spy(make_config(teacher_dir, alpha=0.9), target, dataset, spy)
    assert spy.calls == [] and (target / "results.json").read_text() == before


def test_a_subset_of_the_seeds_reuses_finished_runs(grid, tmp_path):
    dataset, teacher_dir, out, report, _ = grid
    target = copy_grid(out, tmp_path)
    spy = FitSpy()
    subset = run_with_spy(make_config(teacher_dir, seeds=(1,)), target, dataset, spy)
    assert spy.calls == []
    assert sorted((r["strategy"], r["seed"]) for r in subset.runs) == sorted((s, 1) for s in STRATEGIES)
    assert all(cells[-1] == "1" for name, cells in table_cells(subset.table_markdown).items() if name != "teacher")
    kept = json.loads((target / "results.json").read_text())["runs"]  # runs are only ever added
    assert sorted((r["strategy"], r["seed"]) for r in kept) == sorted((s, seed) for s in STRATEGIES for seed in SEEDS)


def test_another_grid_in_the_same_directory_keeps_every_finished_run(grid, tmp_path):
    """Regression (#15, case 3): `--seeds 1 --strategies none` after a full grid dropped the other runs."""
    dataset, teacher_dir, out, report, _ = grid
    target = copy_grid(out, tmp_path)
    config = make_config(teacher_dir)
    config.grid.strategies, config.grid.seeds = ("none",), (5,)
    spy = FitSpy()
    narrow = run_with_spy(config, target, dataset, spy)
    assert spy.cells == [("none", 5)]
    assert [(r["strategy"], r["seed"]) for r in narrow.runs] == [("none", 5)]
    kept = json.loads((target / "results.json").read_text())["runs"]
    assert len(kept) == len(STRATEGIES) * len(SEEDS) + 1
    assert list(table_cells(narrow.table_markdown)) == ["teacher", "none"]


# --------------------------------------------------------------------------------------------
# summarise and conclusion on synthetic runs
# --------------------------------------------------------------------------------------------

TEACHER = {"in_scope_accuracy": 0.9, "oos_recall": 0.6, "overall_accuracy": 0.85, "accuracy": 0.85, "macro_f1": 0.8}


def synthetic_runs(values: dict[str, list[float]], *, oos: bool = True) -> list[dict]:
    runs = []
    for strategy, accuracies in values.items():
        layers = [] if strategy == "none" else [2, 4]
        for seed, acc in enumerate(accuracies):
            test = {"accuracy": acc, "macro_f1": acc - 0.05}
            if oos:
                test.update(in_scope_accuracy=acc, oos_recall=0.5 + 0.1 * seed, overall_accuracy=acc - 0.01)
            runs.append({"strategy": strategy, "seed": seed, "test": test, "seconds": 2.0 + seed,
                         "mapping": {"pairs": [[i + 1, t] for i, t in enumerate(layers)], "teacher_layers": layers}})
    return runs


def test_summarise_agrees_with_statistics():
    values = {"none": [0.80, 0.83, 0.81], "uniform": [0.84, 0.82, 0.86], "spectral-ends": [0.85, 0.85, 0.79]}
    runs = synthetic_runs(values)
    runs[0]["test"]["oos_recall"] = float("nan")  # a split without out-of-scope queries: ignored, not propagated
    rows = summarise(runs, TEACHER, ["spectral-ends", "none", "uniform", "absent"])
    assert [r["strategy"] for r in rows] == ["spectral-ends", "none", "uniform"]  # order kept, absent skipped
    by_name = {r["strategy"]: r for r in rows}
    for strategy, accs in values.items():
        row = by_name[strategy]
        assert row["seeds"] == 3
        assert row["in_scope_accuracy_mean"] == pytest.approx(statistics.fmean(accs))
        assert row["in_scope_accuracy_std"] == pytest.approx(statistics.stdev(accs))
        assert row["retained_mean"] == pytest.approx(statistics.fmean(a / 0.9 for a in accs))
        assert row["retained_std"] == pytest.approx(statistics.stdev(a / 0.9 for a in accs))
        assert row["seconds_mean"] == pytest.approx(3.0)
    assert by_name["none"]["oos_recall_mean"] == pytest.approx(statistics.fmean([0.6, 0.7]))
    assert by_name["uniform"]["teacher_layers"] == [(2, 4)]
    assert by_name["none"]["teacher_layers"] == [()]
    one_seed = summarise(synthetic_runs({"none": [0.8]}), TEACHER, ["none"])[0]
    assert one_seed["in_scope_accuracy_std"] == 0.0


@pytest.mark.parametrize("spectral, expected", [
    ([0.90, 0.91, 0.92], "beats the best baseline (`uniform`) by 10.00 points"),
    ([0.70, 0.71, 0.72], "does NOT beat the baselines: the best baseline (`uniform`) is ahead of `spectral-ends` by 10.00"),
    ([0.80, 0.82, 0.84], "are within seed noise: paired difference +1.00 points"),
    # a mean gap bigger than either strategy's seed std, yet not consistent seed by seed: paired, no verdict
    ([0.85, 0.82, 0.85], "are within seed noise: paired difference +3.00 points"),
    # a gap smaller than the seed std, but the same on every seed: paired, it is real
    ([0.805, 0.8151, 0.8252], "beats the best baseline (`uniform`) by 0.51 points"),
])
def test_conclusion_follows_the_numbers(spectral, expected):
    runs = synthetic_runs({"none": [0.79, 0.80, 0.81], "uniform": [0.80, 0.81, 0.82], "spectral-ends": spectral})
    rows = summarise(runs, TEACHER, ["none", "uniform", "spectral-ends"])
    text = conclusion(rows, runs)
    diff = paired_difference(*pair_by_seed(runs, "spectral-ends", "uniform", "in_scope_accuracy"))
    assert f"95% CI [{100 * diff.low:+.2f}, {100 * diff.high:+.2f}]" in text
    assert expected in text
    assert sum(phrase in text for phrase in ("beats the best", "does NOT beat", "within seed noise")) == 1
    best = max(rows, key=lambda r: r["in_scope_accuracy_mean"])
    assert text.startswith(f"Best mean in scope accuracy: `{best['strategy']}`")


def test_conclusion_without_out_of_scope_uses_accuracy():
    runs = synthetic_runs({"uniform": [0.8, 0.8], "spectral-topk": [0.9, 0.9]}, oos=False)
    rows = summarise(runs, TEACHER, ["uniform", "spectral-topk"])
    assert "in_scope_accuracy_mean" not in rows[0]
    text = conclusion(rows, runs)
    assert text.startswith("Best mean accuracy: `spectral-topk` (90.00%)") and "beats the best baseline" in text
    table = experiment.markdown_table(rows, TEACHER)
    assert "| spectral-topk | 2,4 | 90.00 ± 0.00 | 85.00 ± 0.00 |" in table


# --------------------------------------------------------------------------------------------
# dynamics helpers (the notebook's reading of a grid)
# --------------------------------------------------------------------------------------------

def test_profile_gap_and_gap_curves():
    teacher = [1.0, 2.0, 4.0, 8.0, 10.0]
    # student layers 0, 1, 2 correspond to teacher layers 0, 2, 4 (initialised from blocks 2 and 4)
    assert profile_gap(teacher, [1.0, 4.0, 10.0], [2, 4]) == 0.0
    assert profile_gap(teacher, [1.5, 3.0, 10.0], [2, 4]) == pytest.approx((0.5 + 0.25 + 0.0) / 3)
    with pytest.raises(ValueError, match="initialisation teacher layers"):
        profile_gap(teacher, [1.0, 4.0, 10.0], [4])
    runs = [{"strategy": "a", "seed": s, "dynamics": [{"epoch": 0.0, "intensities": [1.0, 4.0, 10.0]},
                                                      {"epoch": 1.0, "intensities": [1.0, 4.0, 10.0 + s]}]}
            for s in (1, 3)] + [{"strategy": "b", "seed": 0, "dynamics": []}]
    curves = gap_curves(runs, teacher, [2, 4])
    assert list(curves) == ["a"]
    assert curves["a"]["epochs"] == [0.0, 1.0]
    assert curves["a"]["mean"] == pytest.approx([0.0, statistics.fmean([0.1 / 3, 0.3 / 3])])
    assert curves["a"]["std"] == pytest.approx([0.0, statistics.stdev([0.1 / 3, 0.3 / 3])])


def test_coinciding_strategies_and_history_rows(grid):
    _, _, _, report, _ = grid
    runs = copy.deepcopy(report.runs)
    for group in coinciding_strategies(runs):  # the same layers, start and seed train the same student
        results = [r["test"] for r in runs if r["seed"] == group["seed"] and r["strategy"] in group["strategies"]]
        assert all(result == results[0] for result in results)
    fake = [{"strategy": "x", "seed": 0, "mapping": {"pairs": [[1, 2]]}},
            {"strategy": "y", "seed": 0, "mapping": {"pairs": [[1, 2]]}},
            {"strategy": "y", "seed": 1, "mapping": {"pairs": [[1, 2]]}}]
    assert coinciding_strategies(fake) == [{"seed": 0, "pairs": [[1, 2]], "strategies": ["x", "y"]}]
    run = next(r for r in runs if r["strategy"] == "spectral-ends")
    rows = history_rows(run["history"], name="s")
    assert [r["epoch"] for r in rows] == [1.0] and rows[0]["student"] == "s"
    assert rows[0]["feature"] > 0 and not math.isnan(rows[0]["val_headline"])
    assert rows[0]["loss"] == pytest.approx(run["history"][0]["train_loss"])


def test_coinciding_strategies_are_trained_once_and_reported_under_both_names(teacher_setup, tmp_path):
    """A 4-block student of the 4-block teacher: uniform, last and first all align blocks 1..4."""
    dataset, teacher_dir, _ = teacher_setup
    config = make_config(teacher_dir)
    config.grid.strategies, config.grid.seeds = ("uniform", "last", "first"), (0, 1)
    config.student.model = "layers:4"
    spy = FitSpy()
    report = run_with_spy(config, tmp_path / "grid", dataset, spy)
    assert sorted(spy.cells) == [("uniform", 0), ("uniform", 1)]
    by_key = {(r["strategy"], r["seed"]): r for r in report.runs}
    for seed in (0, 1):
        for twin in ("last", "first"):
            assert by_key[(twin, seed)]["same_as"] == "uniform"
            assert by_key[(twin, seed)]["test"] == by_key[("uniform", seed)]["test"]
    assert len(report.runs) == 6


def test_norm_topk_runs_end_to_end_from_the_cli_flag_to_the_grid(teacher_setup, tmp_path):
    """``--strategies norm-topk`` resolves into the config; the grid trains it with the blocks of largest RMS
    (brute force over the saved profile's rms), and the profile's RMS is the hidden states' own (float64)."""
    from spectralkd_tutorial.cli import app as cli
    from spectralkd_tutorial.analysis.spectral import SpectralProfile
    from spectralkd_tutorial.pipelines.steps import analysis_texts

    args = cli.build_parser().parse_args(["experiment", "--preset", "quick", "--out", str(tmp_path / "x"),
                                         "--strategies", "norm-topk", "spectral-topk"])
    assert cli.resolve_config(args).grid.strategies == ("norm-topk", "spectral-topk")
    dataset, teacher_dir, _ = teacher_setup
    config = make_config(teacher_dir, seeds=(0,))
    config.grid.strategies = ("norm-topk", "spectral-topk")
    out = tmp_path / "grid"
    report = run_with_spy(config, out, dataset, FitSpy())
    profile = SpectralProfile.from_dict(json.loads((out / "teacher_intensity.json").read_text()))
    k, total = config.student.num_layers, len(profile.layers) - 1
    by_rms = sorted(sorted(range(1, total + 1), key=lambda layer: -profile.rms[layer])[:k])
    run = next(r for r in report.runs if r["strategy"] == "norm-topk")
    assert run["mapping"]["teacher_layers"] == by_rms
    teacher = steps.train_teacher(config, teacher_dir, dataset=dataset)  # loads the finished teacher
    texts = analysis_texts(dataset, config.analysis.samples, split=config.analysis.split)
    encoded = teacher.tokenizer(texts, padding=True, truncation=True, max_length=config.data.max_length,
                                return_tensors="pt")
    teacher.model.eval()
    with torch.no_grad():
        hidden = teacher.model(**encoded, output_hidden_states=True).hidden_states
    real = encoded["attention_mask"].bool()
    reference = [float(h.double()[real].pow(2).mean().sqrt()) for h in hidden]
    assert profile.rms == pytest.approx(reference, rel=1e-4)
