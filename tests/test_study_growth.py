"""Growing a study: seeds added to a published condition (the published runs kept, only the new seeds
trained), a study interrupted half-way resumes without retraining, and the plan's C5 and C7."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spectralkd_tutorial.pipelines import steps

from spectralkd_tutorial.pipelines import study
from spectralkd_tutorial.engine.training import fit
from spectralkd_tutorial.config.presets import get_preset

FAST = {"teacher.train.epochs": 3, "teacher.train.eval_each_epoch": False, "grid.dynamics_samples": 0,
        "runtime.progress": False, "student.train.batch_size": 32}


class CountingFit:
    """Counts the students trained (strategy, seed); raises once ``stop_after`` of them are done."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.calls: list[tuple[str, int]] = []
        self.stop_after = stop_after

    def __call__(self, model, tokenizer, dataset, train, **kwargs):
        if kwargs.get("distillation") is not None:
            if self.stop_after is not None and len(self.calls) >= self.stop_after:
                raise KeyboardInterrupt("stopped half-way")
            self.calls.append((kwargs["distillation"].mapping.strategy, kwargs["settings"].seed))
        return fit(model, tokenizer, dataset, train, **kwargs)


def _plan(seeds: tuple[int, ...]):
    toy = {"student.train.epochs": 1, "grid.dynamics_samples": 0}
    return lambda: [study.Condition("Q1", "toy", "toy", strategies=("none", "uniform", "spectral-ends"),
                                    overrides=toy, seeds=seeds)]


def _run(tmp_path, monkeypatch, seeds, out, counter, **kwargs):
    monkeypatch.setenv("SPECTRALKD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(steps, "fit", counter)
    monkeypatch.setitem(study.STUDY_PLANS, "quick", _plan(seeds))
    return study.run_study(get_preset("quick", **FAST), out, log=lambda *a: None, **kwargs)


def _distinct(runs, seeds):
    return {(r["strategy"], r["seed"]) for r in runs if r["seed"] in seeds and not r.get("same_as")}


def test_seeds_added_to_a_published_condition_train_only_the_new_seeds(tmp_path, monkeypatch):
    first = CountingFit()
    published = _run(tmp_path, monkeypatch, (0, 1), tmp_path / "published", first)
    old = published["conditions"]["Q1"]
    assert {seed for _, seed in first.calls} == {0, 1}
    # another machine, a fresh directory: the published record is carried and grown by seed 2 only
    second = CountingFit()
    grown = _run(tmp_path, monkeypatch, (0, 1, 2), tmp_path / "fresh", second, keep_from=tmp_path / "published")
    record = grown["conditions"]["Q1"]
    assert set(second.calls) == _distinct(record["runs"], {2}) and second.calls  # seeds 0 and 1 not retrained
    assert record["seeds"] == [0, 1, 2] and {r["seed"] for r in record["runs"]} == {0, 1, 2}
    kept = [r for r in record["runs"] if r["seed"] in (0, 1)]
    assert json.dumps(kept, sort_keys=True) == json.dumps(old["runs"], sort_keys=True)  # identical, not re-run
    assert record["stats"]["strategies"]["uniform"]["vs_none"][record["stats"]["headline"]]["n"] == 3
    assert [t["seeds"] for t in record["teachers"]] == [[0, 1], [2]]  # which teacher distilled which seeds
    assert record["teacher_test"] == old["teacher_test"] == record["teachers"][0]["test"]
    assert record["training_seconds"] == pytest.approx(sum(r["seconds"] for r in record["runs"] if not r.get("same_as")))
    # finished: a further call trains nothing
    third = CountingFit()
    _run(tmp_path, monkeypatch, (0, 1, 2), tmp_path / "fresh", third)
    assert third.calls == []


def test_a_published_condition_with_other_settings_is_not_merged(tmp_path, monkeypatch):
    _run(tmp_path, monkeypatch, (0,), tmp_path / "published", CountingFit())
    published = json.loads((tmp_path / "published" / "results.json").read_text())
    published["conditions"]["Q1"]["config"]["loss"]["beta"] = 7.0  # made with another setting
    (tmp_path / "published" / "results.json").write_text(json.dumps(published))
    counter = CountingFit()
    grown = _run(tmp_path, monkeypatch, (0, 1), tmp_path / "fresh", counter, keep_from=tmp_path / "published")
    assert {seed for _, seed in counter.calls} == {0, 1}  # every seed trained with this call's settings
    assert grown["conditions"]["Q1"]["config"]["loss"]["beta"] != 7.0


def test_a_study_stopped_half_way_resumes_where_it_stopped(tmp_path, monkeypatch):
    stopped = CountingFit(stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, monkeypatch, (0, 1), tmp_path / "study", stopped)
    resumed = CountingFit()
    record = _run(tmp_path, monkeypatch, (0, 1), tmp_path / "study", resumed)["conditions"]["Q1"]
    assert not set(stopped.calls) & set(resumed.calls)  # nothing trained twice
    assert set(stopped.calls) | set(resumed.calls) == _distinct(record["runs"], {0, 1})


def test_the_workshop_plan_has_c5_and_c7_with_five_seeds():
    plan = {c.name: c for c in study.study_plan("workshop")}
    base = get_preset("workshop")
    assert plan["C5"].seeds == plan["C7"].seeds == (0, 1, 2, 3, 4)
    c7 = plan["C7"]
    assert set(c7.strategies) == {"none", "uniform", "last", "first", "spectral-topk", "spectral-ends", "random"}
    assert study.teacher_slug(base, c7) == study.teacher_slug(base, plan["C6"])  # C6's MPNet teacher, shared
    students = study.condition_config(base, c7, Path("teacher"), {})
    assert students.student.random_shape in ((4, 192), (4, 256)) and c7.candidates  # epochs tuned on validation
    assert students.student.train.learning_rate == 1e-3 and students.data.dataset == "clinc150:small"
