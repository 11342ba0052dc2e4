"""The study: coinciding strategies trained once, resume without retraining, scarce subsets, and
statistics that agree with an independent recomputation (scipy's paired t interval)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path

import pytest
from scipy import stats as scipy_stats

from spectralkd_tutorial.pipelines import steps
from spectralkd_tutorial.engine.training import fit
from spectralkd_tutorial.data import embedded_intents
from spectralkd_tutorial.config.presets import get_preset
from spectralkd_tutorial.analysis.stats import pair_by_seed
from spectralkd_tutorial.pipelines.study import condition_stats, run_study, scarce_training_set, study_conclusion

REPO = Path(__file__).resolve().parents[1]
FAST = {"teacher.train.epochs": 3, "teacher.train.eval_each_epoch": False, "grid.dynamics_samples": 0,
        "runtime.progress": False, "student.train.batch_size": 32}


class CountingFit:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def __call__(self, model, tokenizer, dataset, train, **kwargs):
        if kwargs.get("distillation") is not None:  # students (the teacher's fine-tuning is not counted)
            self.calls.append((kwargs["distillation"].mapping.strategy, kwargs["settings"].seed))
        return fit(model, tokenizer, dataset, train, **kwargs)


@pytest.fixture(scope="module")
def toy_study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    counter = CountingFit()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPECTRALKD_CACHE_DIR", str(root / "cache"))
        mp.setattr(steps, "fit", counter)
        record = run_study(get_preset("quick", **FAST), root / "study", log=lambda *a: None)
    return root, record, counter


def test_every_condition_strategy_and_seed_is_reported(toy_study):
    _, record, _ = toy_study
    assert list(record["conditions"]) == ["Q1", "Q2"]
    for condition in record["conditions"].values():
        cells = Counter((r["strategy"], r["seed"]) for r in condition["runs"])
        assert set(cells) == {(s, seed) for s in condition["stats"]["strategies"] for seed in condition["seeds"]}
        assert set(cells.values()) == {1}


def test_coinciding_strategies_are_trained_once(toy_study):
    _, record, counter = toy_study
    for name, condition in record["conditions"].items():
        trained = {(r["strategy"], r["seed"]) for r in condition["runs"] if not r.get("same_as")}
        distinct = {(tuple(map(tuple, r["mapping"]["pairs"])), r["seed"]) for r in condition["runs"]}
        assert len(trained) == len(distinct), name  # one training per distinct (layers, seed)
        for r in condition["runs"]:
            if r.get("same_as"):
                twin = next(t for t in condition["runs"] if t["strategy"] == r["same_as"] and t["seed"] == r["seed"])
                assert twin["mapping"]["pairs"] == r["mapping"]["pairs"] and twin["test"] == r["test"]
    tuning_runs = sum(len(c["tuning"]) for c in record["conditions"].values())
    trained_total = sum(1 for c in record["conditions"].values() for r in c["runs"] if not r.get("same_as"))
    assert len(counter.calls) == trained_total + tuning_runs


def test_statistics_match_scipy(toy_study):
    _, record, _ = toy_study
    for condition in record["conditions"].values():
        stats = condition["stats"]
        head = stats["headline"]
        for strategy, row in stats["strategies"].items():
            if "vs_none" not in row:
                continue
            a, b = pair_by_seed(condition["runs"], strategy, "none", head)
            ours = row["vs_none"][head]
            assert ours["n"] == len(condition["seeds"])
            if len({x - y for x, y in zip(a, b)}) > 1:  # a zero-variance difference has no t interval
                ref = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
                assert (ours["low"], ours["high"]) == pytest.approx((ref.low, ref.high))
        recomputed = condition_stats(condition["runs"], list(stats["strategies"]))
        assert json.dumps(recomputed, sort_keys=True) == json.dumps(stats, sort_keys=True)
    text = study_conclusion(record["conditions"])
    assert text.count("- **") == 2 and "`spectral-ends`" in text


def test_tuning_happens_on_validation_and_is_recorded(toy_study):
    _, record, _ = toy_study
    q2 = record["conditions"]["Q2"]
    assert [t["settings"] for t in q2["tuning"]] == [{"student.train.epochs": 1}, {"student.train.epochs": 2}]
    best = max(q2["tuning"], key=lambda t: t["validation_headline"])["settings"]["student.train.epochs"]
    assert q2["config"]["student"]["train"]["epochs"] == best


def test_the_study_resumes_without_retraining(toy_study, monkeypatch):
    root, record, _ = toy_study
    counter = CountingFit()
    monkeypatch.setenv("SPECTRALKD_CACHE_DIR", str(root / "cache"))
    monkeypatch.setattr(steps, "fit", counter)
    again = run_study(get_preset("quick", **FAST), root / "study", log=lambda *a: None)
    assert counter.calls == []
    for name, condition in record["conditions"].items():
        assert again["conditions"][name]["stats"] == condition["stats"]
        # the time a condition took is what its runs recorded, not the (short) wall time of the resuming call
        assert again["conditions"][name]["training_seconds"] == pytest.approx(condition["training_seconds"])
        distinct = [r["seconds"] for r in condition["runs"] if not r.get("same_as")]
        assert condition["training_seconds"] == pytest.approx(sum(distinct) + sum(t["seconds"] for t in condition["tuning"]))
        assert again["conditions"][name]["seconds"] == condition["seconds"]  # a finished condition is kept as it is
        assert condition["teacher_seconds"] > 0  # recorded when fine-tuned, reused when resumed
        assert again["conditions"][name]["teacher_seconds"] == pytest.approx(condition["teacher_seconds"])
    assert (root / "study" / "study.md").exists() and (root / "study" / "forest.png").stat().st_size > 1000


def test_scarce_training_set_takes_n_per_label_and_keeps_the_rest():
    full = embedded_intents()
    scarce = scarce_training_set(full, 3, seed=1)
    counts = Counter(scarce.train.labels)
    assert set(counts.values()) == {3} and len(counts) == full.num_labels
    pairs = set(zip(full.train.texts, full.train.labels))
    assert all(pair in pairs for pair in zip(scarce.train.texts, scarce.train.labels))
    assert scarce.test == full.test and scarce.validation == full.validation
    assert scarce_training_set(full, 3, seed=1).train == scarce.train
    assert scarce_training_set(full, 3, seed=2).train != scarce.train


def test_unknown_condition_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown condition"):
        run_study(get_preset("quick"), tmp_path, conditions=["C9"])


def _c1():
    from spectralkd_tutorial.pipelines.study import study_plan

    return next(c for c in study_plan("workshop") if c.name == "C1")


def test_the_committed_workshop_grid_is_read_as_c1_not_retrained(tmp_path, monkeypatch):
    """C1 is the committed workshop grid: its runs are read (nothing trains), paired by seed, and
    strategies that chose the same layers are marked; the statistics follow the runs (scipy)."""
    from spectralkd_tutorial.pipelines import study
    monkeypatch.setattr(study, "run_experiment", lambda *a, **k: pytest.fail("C1 must not train"))
    monkeypatch.setattr(study, "train_teacher", lambda *a, **k: pytest.fail("C1 must not train"))
    base = get_preset("workshop")
    result = study.run_condition(base, _c1(), tmp_path)
    record = study.condition_record(result)
    grid = json.loads((REPO / "assets/workshop/results.json").read_text())
    assert record["source"] == "assets/workshop/results.json" and len(record["runs"]) == len(grid["runs"])
    assert record["teacher_test"] == grid["teacher"]["test"]
    for strategy in ("spectral-topk", "spectral-ends"):
        if record["layers"][strategy] == record["layers"]["last"]:
            assert record["same_as"][strategy] == "last"
    head = record["stats"]["headline"]
    for strategy in ("uniform", "first", "reverse"):
        a = [r["test"][head] for r in sorted(grid["runs"], key=lambda r: r["seed"]) if r["strategy"] == strategy]
        b = [r["test"][head] for r in sorted(grid["runs"], key=lambda r: r["seed"]) if r["strategy"] == "none"]
        diff = record["stats"]["strategies"][strategy]["vs_none"][head]
        low, high = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
        assert diff["mean"] == pytest.approx(sum(a) / 3 - sum(b) / 3) and (diff["low"], diff["high"]) == pytest.approx((low, high))
    assert "committed grid `assets/workshop/results.json`" in study.study_markdown({"C1": record})


def test_a_committed_grid_with_other_settings_is_refused(tmp_path, monkeypatch):
    from spectralkd_tutorial.pipelines import study
    grid = json.loads((REPO / "assets/workshop/results.json").read_text())
    grid["fingerprint"]["epochs"] = 2
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "results.json").write_text(json.dumps(grid))
    monkeypatch.setattr(study, "committed_asset", lambda relative: tmp_path / "assets" / relative)
    condition = dataclasses.replace(_c1(), published="assets/results.json")
    with pytest.raises(ValueError, match="made with other settings than C1.*epochs"):
        study.run_condition(get_preset("workshop"), condition, tmp_path / "out")


def test_each_teacher_has_its_own_directory_and_c6_its_own_teacher(tmp_path):
    from spectralkd_tutorial.models.offline import MPNET_HUB_NAME
    from spectralkd_tutorial.pipelines.study import condition_config, study_plan, teacher_config, teacher_slug

    base = get_preset("workshop")
    plan = {c.name: c for c in study_plan("workshop")}
    slugs = {name: teacher_slug(base, c) for name, c in plan.items()}
    assert slugs["C2"] == slugs["C3"] == slugs["C5"] == "clinc150-full" and slugs["C4"] == "banking77"
    assert slugs["C6"] == "clinc150-small-all-mpnet-base-v2"
    teacher = teacher_config(base, plan["C6"])
    assert teacher.teacher.model == MPNET_HUB_NAME and teacher.data.dataset == "clinc150:small"
    assert teacher.teacher.train.learning_rate == 5e-5 and teacher.teacher.train.epochs == base.teacher.train.epochs
    assert teacher_config(base, plan["C4"]).teacher == base.teacher  # the preset's teacher, on Banking77
    students = condition_config(base, plan["C6"], tmp_path, {})
    assert students.student.model == "layers:4" and students.teacher.model == MPNET_HUB_NAME
    assert students.teacher.finetuned == str(tmp_path / "model")


def test_the_summary_has_one_row_per_condition_with_its_paired_difference(toy_study):
    root, record, _ = toy_study
    summary = (root / "study" / "summary.md").read_text()
    rows = [line for line in summary.splitlines() if line.startswith("| Q")]
    assert [row.split(":")[0] for row in rows] == ["| Q1", "| Q2"]
    for row, (name, condition) in zip(rows, record["conditions"].items()):
        head = condition["stats"]["headline"]
        diff = condition["stats"]["strategies"]["spectral-ends"]["vs_none"][head]
        cells = [c.strip() for c in row.split("|")]
        assert cells[2] == f"{100 * condition['teacher_test'][head]:.2f}"
        assert cells[4].startswith(f"{100 * diff['mean']:+.2f} [{100 * diff['low']:+.2f}, {100 * diff['high']:+.2f}]")
        assert diff["verdict"] in cells[4]


def test_the_readme_shows_the_committed_study_summary():
    """The README's study table is the one `spectralkd study --publish assets/study` wrote."""
    summary = REPO / "assets" / "study" / "summary.md"
    if not summary.exists():
        pytest.skip("assets/study/summary.md is not committed yet")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    rows = [line for line in summary.read_text(encoding="utf-8").splitlines() if line.startswith("| C")]
    assert rows and all(row in readme for row in rows), "copy assets/study/summary.md's table into the README"


def test_report_only_rebuilds_the_reports_without_running(toy_study, monkeypatch, tmp_path):
    from spectralkd_tutorial.pipelines import study
    root, record, _ = toy_study
    (root / "study" / "summary.md").unlink()
    monkeypatch.setattr(study, "run_condition", lambda *a, **k: pytest.fail("report_only must not run a condition"))
    again = run_study(get_preset("quick", **FAST), root / "study", report_only=True, log=lambda *a: None)
    assert again["conditions"].keys() == record["conditions"].keys()
    assert "| Q1" in (root / "study" / "summary.md").read_text()
    with pytest.raises(ValueError, match="no finished condition yet"):
        run_study(get_preset("quick", **FAST), tmp_path / "empty", report_only=True)


def test_publishing_part_of_a_study_keeps_the_published_conditions(toy_study, monkeypatch, tmp_path):
    """A fresh machine that runs only some conditions adds them to the published study: the
    published conditions its directory lacks are carried over unchanged (never dropped), in plan order."""
    import shutil

    from spectralkd_tutorial.pipelines import study
    root, record, _ = toy_study
    published = tmp_path / "published"
    published.mkdir()
    only_q1 = {"conditions": {"Q1": record["conditions"]["Q1"]}}
    (published / "results.json").write_text(json.dumps(only_q1))
    fresh = tmp_path / "fresh"
    shutil.copytree(root / "study", fresh)
    results = json.loads((fresh / "results.json").read_text())
    del results["conditions"]["Q1"]  # this machine finished Q2 only
    (fresh / "results.json").write_text(json.dumps(results))
    monkeypatch.setattr(study, "run_condition", lambda *a, **k: pytest.fail("nothing is retrained"))
    merged = run_study(get_preset("quick", **FAST), fresh, report_only=True, keep_from=published, log=lambda *a: None)
    assert list(merged["conditions"]) == ["Q1", "Q2"]
    assert merged["conditions"]["Q1"]["stats"] == record["conditions"]["Q1"]["stats"]
    assert merged["conditions"]["Q1"]["carried_from"] == str(published / "results.json")
    assert "carried_from" not in merged["conditions"]["Q2"]
    assert "| Q1" in (fresh / "summary.md").read_text()  # carried, in plan order
    on_disk = json.loads((fresh / "results.json").read_text())
    assert list(on_disk["conditions"]) == ["Q1", "Q2"] and on_disk["preset"] == "quick"
    # a published study of another preset is refused, not mixed in
    (published / "results.json").write_text(json.dumps({"preset": "workshop", "conditions": {}}))
    with pytest.raises(ValueError, match="preset"):
        run_study(get_preset("quick", **FAST), fresh, report_only=True, keep_from=published)
