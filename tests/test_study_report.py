"""Reports across two conditions that differ in one setting (C5p's learned projection vs C5's pooling):
paired by strategy and seed, checked against scipy's t interval computed here independently."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from spectralkd_tutorial.pipelines.study import study_plan
from spectralkd_tutorial.pipelines.study_report import (condition_stats, paired_conditions, spectral_vs_simple,
                                              study_conclusion, study_markdown, study_takeaway)

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

    from spectralkd_tutorial.pipelines.study_report import write_forest
    from spectralkd_tutorial.analysis.viz import plot_forest_panels

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


def _holm_by_hand(p: list[float]) -> list[float]:
    """Holm (1979) written out independently: multiply the k-th smallest by (m - k), running max, cap 1."""
    order = np.argsort(p)
    out = np.empty(len(p))
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(p) - k) * p[i]))
        out[i] = running
    return out.tolist()


def _grid(rng, strategies, seeds=5, gains=None):
    gains = gains or {}
    runs = []
    for seed in range(seeds):
        base = 0.85 + rng.normal(0, 0.01)
        for s in strategies:
            acc = base + gains.get(s, 0.0) + rng.normal(0, 0.003)
            runs.append({"strategy": s, "seed": seed, "mapping": {"teacher_layers": [] if s == "none" else [1, 2]},
                         "test": {"in_scope_accuracy": acc, "oos_recall": 0.5, "overall_accuracy": acc}})
    return runs


@pytest.mark.parametrize("seed", range(4))
def test_verdicts_vs_none_follow_holm_over_the_condition(seed):
    """Every strategy vs none: p from scipy's paired t test, adjusted by Holm over the condition, verdict from it."""
    rng = np.random.default_rng(seed)
    strategies = ("none", "uniform", "last", "first", "random", "spectral-topk")
    runs = _grid(rng, strategies, gains={"last": 0.004, "first": 0.012, "spectral-topk": 0.002})
    stats = condition_stats(runs, strategies)
    others = [s for s in strategies if s != "none"]
    pairs = [([r["test"]["in_scope_accuracy"] for r in runs if r["strategy"] == s],
              [r["test"]["in_scope_accuracy"] for r in runs if r["strategy"] == "none"]) for s in others]
    p = [scipy_stats.ttest_rel(a, b).pvalue for a, b in pairs]
    expected = _holm_by_hand(p)
    for s, a_b, raw, adj in zip(others, pairs, p, expected):
        got = stats["strategies"][s]["vs_none"]["in_scope_accuracy"]
        assert got["p"] == pytest.approx(raw, rel=1e-9) and got["p_adjusted"] == pytest.approx(adj, rel=1e-9)
        mean = float(np.mean(np.subtract(*a_b)))
        word = "no difference detectable" if adj >= 0.05 else ("helps" if mean > 0 else "hurts")
        if adj < 0.05 and abs(mean) < 0.01:
            word += ", < 1 point"
        assert got["verdict"] == word


def test_spectral_vs_best_simple_choice_row():
    rng = np.random.default_rng(3)
    strategies = ("none", "uniform", "last", "first", "spectral-topk", "spectral-ends")
    runs = _grid(rng, strategies, gains={"first": 0.02, "last": 0.01, "uniform": 0.005, "spectral-topk": 0.03,
                                         "spectral-ends": 0.01})
    for r in runs:  # spectral-ends took last's layers
        if r["strategy"] == "spectral-ends":
            twin = next(t for t in runs if t["strategy"] == "last" and t["seed"] == r["seed"])
            r.update(test=twin["test"], same_as="last")
    record = {"stats": condition_stats(runs, strategies), "runs": runs,
              "layers": {s: [] if s == "none" else [[1, 2]] for s in strategies}}
    record["layers"]["spectral-topk"] = [[2, 3]]
    record["layers"]["spectral-ends"] = record["layers"]["last"] = [[3, 4]]
    assert record["stats"]["best_simple"] == "first"
    a = [r["test"]["in_scope_accuracy"] for r in runs if r["strategy"] == "spectral-topk"]
    b = [r["test"]["in_scope_accuracy"] for r in runs if r["strategy"] == "first"]
    ci = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    row = spectral_vs_simple(record)
    diff = record["stats"]["strategies"]["spectral-topk"]["vs_best_simple"]["in_scope_accuracy"]
    assert f"`spectral-topk` - `first` {100 * np.mean(np.subtract(a, b)):+.2f} [{100 * ci.low:+.2f}, {100 * ci.high:+.2f}]" in row
    assert row.count(diff["verdict"]) >= 1 and "`spectral-ends` (= `last`) - `first`" in row
    # one family for the "which layers" comparisons: topk and ends vs first, and every strategy vs the best baseline
    assert diff["p_adjusted"] >= diff["p"]


def test_the_takeaway_is_computed_from_the_verdicts(records):
    text = study_takeaway(records)
    helped = [n for n, r in records.items() if any(
        (row.get("vs_none") or {}).get("in_scope_accuracy", {}).get("verdict") == "helps" for row in r["stats"]["strategies"].values())]
    assert f"in {len(helped)} of 2 conditions" in text


def test_c7_is_sized_from_recorded_seconds():
    import json as _json

    from spectralkd_tutorial.config.presets import get_preset
    from spectralkd_tutorial.pipelines.study import COMPARISON_SETTINGS, condition_config
    from spectralkd_tutorial.pipelines.study_sizing import size_condition

    records = _json.loads((Path(__file__).resolve().parents[1] / "assets/study/results.json").read_text())["conditions"]
    c7 = next(c for c in study_plan("workshop") if c.name == "C7")
    config = condition_config(get_preset("workshop"), c7, Path("teacher"), {}).replace(**COMPARISON_SETTINGS).to_dict()
    sizes = {"clinc150:full": 15100, "clinc150:small": 7600}
    size = size_condition(c7, config, records, lambda c: sizes[c["data"]["dataset"]])
    c5 = [r["seconds"] for r in records["C5"]["runs"] if not r.get("same_as")]
    per_run = sum(c5) / len(c5) * (4 / 3) * (7600 * 4) / (15100 * 4)
    assert size["per_run_seconds"] == pytest.approx(per_run)
    # C6 (same teacher, 4-block students) chose 5 distinct layer sets for none/uniform/last/first/topk/ends
    # (ends = first), and random is counted as its own: 6 per seed, 5 seeds
    assert size["runs_per_seed"] == 6 and size["runs"] == 30
    assert size["teacher_seconds"] == pytest.approx(records["C6"]["teacher_seconds"])
    assert size["total_seconds"] == pytest.approx(30 * per_run + size["tuning_seconds"] + size["cache_seconds"]
                                                  + size["teacher_seconds"])
