"""Reports across two conditions that differ in one setting (C5p's learned projection vs C5's pooling):
paired by strategy and seed, checked against scipy's t interval computed here independently."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from spectralkd_tutorial.study import study_plan
from spectralkd_tutorial.study_report import (condition_stats, paired_conditions, study_conclusion,
                                              study_markdown)

STRATEGIES = ("none", "uniform", "spectral-ends")


def _record(title: str, accuracies: dict[str, dict[int, float]], compare_to: str | None = None) -> dict:
    runs = [{"strategy": s, "seed": seed, "mapping": {"teacher_layers": [] if s == "none" else [1, 2]},
             "test": {"in_scope_accuracy": acc, "oos_recall": 0.5 + acc / 10, "overall_accuracy": acc - 0.01}}
            for s, by_seed in accuracies.items() for seed, acc in by_seed.items()]
    seeds = sorted({r["seed"] for r in runs})
    return {"title": title, "why": "why", "seeds": seeds, "tuning": [], "source": None,
            "teacher_test": {"in_scope_accuracy": 0.95}, "runs": runs, "compare_to": compare_to,
            "layers": {s: [] if s == "none" else [[1, 2]] for s in accuracies},
            "stats": condition_stats(runs, list(accuracies))}


@pytest.fixture
def records() -> dict[str, dict]:
    pooled = {"none": {0: 0.80, 1: 0.82, 2: 0.81, 3: 0.79},  # seed 3 only here: left out of the pairs
              "uniform": {0: 0.81, 1: 0.83, 2: 0.80, 3: 0.78},
              "spectral-ends": {0: 0.82, 1: 0.81, 2: 0.83, 3: 0.80}}
    projected = {"none": {2: 0.81, 0: 0.80, 1: 0.82},  # the same students: the setting is unused without layers
                 "uniform": {1: 0.85, 0: 0.84, 2: 0.83},
                 "spectral-ends": {2: 0.84, 1: 0.80, 0: 0.84}}
    return {"C5": _record("pooled", pooled), "C5p": _record("projected", projected, compare_to="C5")}


def test_paired_conditions_match_scipy(records):
    table = paired_conditions(records["C5p"], records["C5"])
    assert list(table) == list(STRATEGIES)
    for strategy in ("uniform", "spectral-ends"):
        for metric in ("in_scope_accuracy", "oos_recall", "overall_accuracy"):
            mine = {r["seed"]: r["test"][metric] for r in records["C5p"]["runs"] if r["strategy"] == strategy}
            theirs = {r["seed"]: r["test"][metric] for r in records["C5"]["runs"] if r["strategy"] == strategy}
            d = np.array([mine[s] - theirs[s] for s in (0, 1, 2)], dtype=np.float64)
            low, high = scipy_stats.t.interval(0.95, len(d) - 1, loc=d.mean(), scale=scipy_stats.sem(d))
            got = table[strategy][metric]
            assert got["n"] == 3
            assert math.isclose(got["mean"], d.mean(), abs_tol=1e-12)
            assert math.isclose(got["low"], low, abs_tol=1e-12) and math.isclose(got["high"], high, abs_tol=1e-12)
    assert table["uniform"]["in_scope_accuracy"]["verdict"] == "helps"  # +0.03, +0.02, +0.03


def test_identical_none_students_differ_by_exactly_zero(records):
    none = paired_conditions(records["C5p"], records["C5"])["none"]["in_scope_accuracy"]
    assert none["mean"] == 0 and none["sd"] == 0 and none["verdict"] == "no difference detectable"


def test_the_reports_compare_the_two_conditions(records):
    markdown = study_markdown(records)
    assert "C5p against C5 (pooled), strategy by strategy" in markdown
    uniform = paired_conditions(records["C5p"], records["C5"])["uniform"]["in_scope_accuracy"]
    row = f"| uniform | {100 * uniform['mean']:+.2f} [{100 * uniform['low']:+.2f}, {100 * uniform['high']:+.2f}]"
    assert row in markdown
    assert markdown.count("strategy by strategy") == 1  # C5 itself names no comparison
    conclusion = study_conclusion(records)
    assert "Against C5 strategy by strategy" in conclusion and "`uniform` helps" in conclusion
    del records["C5"]  # published without its partner: no comparison, no error
    assert "strategy by strategy" not in study_markdown(records) + study_conclusion(records)


@pytest.mark.parametrize("preset", ["quick", "workshop"])
def test_conditions_name_only_conditions_of_their_plan(preset):
    plan = study_plan(preset)
    names = [c.name for c in plan]
    for condition in plan:
        for other in (condition.compare_to, condition.tuned_like):
            assert other is None or names.index(other) < names.index(condition.name), condition.name


def test_the_forest_has_one_panel_per_condition_on_its_own_scale(records, tmp_path):
    """Each condition's intervals are drawn on an axis that holds them and 0, however far apart the
    conditions' scales are (a common axis would flatten a tenth of a point next to ten points)."""
    import matplotlib.pyplot as plt

    from spectralkd_tutorial.study_report import write_forest
    from spectralkd_tutorial.viz import plot_forest_panels

    small = {"uniform": {0: 0.8001, 1: 0.8202, 2: 0.8103}, "none": {0: 0.80, 1: 0.82, 2: 0.81}}
    records["C1"] = _record("tiny differences", small)
    write_forest(records, tmp_path / "forest.png")
    assert (tmp_path / "forest.png").stat().st_size > 1000
    panels = {}
    for name, record in records.items():
        head = record["stats"]["headline"]
        panels[name] = [(s, row["vs_none"][head]["mean"], row["vs_none"][head]["low"], row["vs_none"][head]["high"])
                        for s, row in record["stats"]["strategies"].items() if "vs_none" in row]
    figure = plot_forest_panels(panels)
    try:
        assert len(figure.axes) == len(panels)
        for ax, rows in zip(figure.axes, panels.values()):
            low, high = ax.get_xlim()
            assert low <= 0 <= high
            assert all(low <= 100 * r[2] and 100 * r[3] <= high for r in rows)
            assert [t.get_text() for t in ax.get_yticklabels()] == [r[0] for r in reversed(rows)]
        widths = [ax.get_xlim()[1] - ax.get_xlim()[0] for ax in figure.axes]
        assert max(widths) > 20 * min(widths)  # C1's panel is zoomed in, not flattened
    finally:
        plt.close(figure)
