"""Every chapter ends with "What you learned"; chapters 4 and 6 quote the committed results through
the package, and the quoted numbers follow the recorded runs (checked against scipy's paired t
interval, computed here from the runs, and against a changed copy of the runs)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
from scipy import stats as scipy_stats

from spectralkd_tutorial.pipelines import takeaways
from spectralkd_tutorial.pipelines.takeaways import (STUDY_RESULTS, WORKSHOP_RESULTS, committed_results, same_layers_as,
                                           study_takeaways, workshop_takeaways)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture()
def from_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def _paired(runs, a, b, metric):
    """(mean, low, high) of a - b in points, from scipy's paired t test on the runs matched by seed."""
    by_seed = {(r["strategy"], r["seed"]): r["test"][metric] for r in runs}
    seeds = sorted(s for (name, s) in by_seed if name == a and (b, s) in by_seed)
    x, y = np.array([by_seed[a, s] for s in seeds]), np.array([by_seed[b, s] for s in seeds])
    low, high = scipy_stats.ttest_rel(x, y).confidence_interval(0.95)
    return 100 * float(np.mean(x - y)), 100 * low, 100 * high


def _quoted(mean, low, high):
    return f"{mean:+.2f} points [95% CI {low:+.2f}, {high:+.2f}]"


def test_committed_results_reads_assets_and_says_none_when_missing(from_root, tmp_path, monkeypatch):
    grid = committed_results(WORKSHOP_RESULTS)
    assert grid is not None and grid["preset"] == "workshop"
    assert committed_results("workshop/no-such-file.json") is None
    monkeypatch.chdir(tmp_path)  # neither ./assets nor ../assets here: the copy committed with the package
    assert committed_results(WORKSHOP_RESULTS) == grid
    from spectralkd_tutorial.common import published
    monkeypatch.setattr(published, "published_root", lambda: tmp_path / "empty")  # an installation without it
    assert committed_results(WORKSHOP_RESULTS) is None


def test_workshop_takeaways_quote_the_runs(from_root):
    grid = committed_results(WORKSHOP_RESULTS)
    text = workshop_takeaways(grid)
    runs = grid["runs"]
    for strategy in ("spectral-topk", "spectral-ends"):
        assert _quoted(*_paired(runs, strategy, "none", "in_scope_accuracy")) in text
        # "the same as `last`" exactly when the pairs agree with last's for every seed
        pairs = {(r["strategy"], r["seed"]): r["mapping"]["pairs"] for r in runs}
        same = all(pairs[strategy, s] == pairs["last", s] for (name, s) in pairs if name == strategy)
        assert (f"`{strategy}` aligned blocks [4, 5, 6], the same as `last`" in text) == same
    assert f"{100 * grid['teacher']['test']['in_scope_accuracy']:.2f}% in-scope accuracy" in text
    in_scope = grid["dataset"]["splits"]["test"]["in_scope"]
    assert f"one test utterance is {100 / in_scope:.3f} points" in text


def test_workshop_takeaways_follow_changed_runs(from_root):
    grid = copy.deepcopy(committed_results(WORKSHOP_RESULTS))
    for seed, run in enumerate(r for r in grid["runs"] if r["strategy"] == "spectral-topk"):
        run["test"]["in_scope_accuracy"] += 0.01 + 0.001 * seed  # spectral-topk now clearly better
        run["mapping"]["pairs"] = [[1, 1], [2, 3], [3, 6]]
        run["mapping"]["teacher_layers"] = [1, 3, 6]
    text = workshop_takeaways(grid)
    topk = next(line for line in text.splitlines() if line.startswith("- `spectral-topk`"))
    assert "**helps**" in topk and "the same as" not in topk
    assert _quoted(*_paired(grid["runs"], "spectral-topk", "none", "in_scope_accuracy")) in topk


def _holm_helps(runs, strategies, metric):
    """The strategies whose difference to ``none`` is positive with a Holm-adjusted p below 0.05: scipy's
    paired t test per strategy, strategies with identical paired data counted as one test."""
    by_seed = {(r["strategy"], r["seed"]): r["test"][metric] for r in runs}
    tests = {}
    for strategy in strategies:
        seeds = sorted(s for (name, s) in by_seed if name == strategy and ("none", s) in by_seed)
        diffs = tuple(round(by_seed[strategy, s] - by_seed["none", s], 12) for s in seeds)
        if len(diffs) < 2:
            continue
        p = 1.0 if np.std(diffs) == 0 and np.mean(diffs) == 0 else (
            0.0 if np.std(diffs) == 0 else float(scipy_stats.ttest_rel([by_seed[strategy, s] for s in seeds],
                                                                        [by_seed["none", s] for s in seeds]).pvalue))
        tests.setdefault(diffs, (p, []))[1].append(strategy)
    ranked = sorted(tests.items(), key=lambda item: item[1][0])
    helps, running = set(), 0.0
    for rank, (diffs, (p, names)) in enumerate(ranked):
        running = max(running, min(1.0, (len(ranked) - rank) * p))
        if running < 0.05 and np.mean(diffs) > 0:
            helps.update(names)
    return helps


def test_study_takeaways_count_the_verdicts(from_root):
    study = committed_results(STUDY_RESULTS)
    text = study_takeaways(study)
    helps, cases = [], 0
    for name, condition in study["conditions"].items():
        runs = condition["runs"]
        head = "in_scope_accuracy" if "in_scope_accuracy" in runs[0]["test"] else "accuracy"
        strategies = sorted({r["strategy"] for r in runs} - {"none"})
        adjusted_helps = _holm_helps(runs, strategies, head)
        for strategy in ("spectral-topk", "spectral-ends"):
            if not any(r["strategy"] == strategy for r in runs):
                continue
            cases += 1
            if strategy in adjusted_helps:
                helps.append(f"{name} `{strategy}`")
                mean, low, high = _paired(runs, strategy, "none", head)
                assert f"{mean:+.2f} points [95% CI {low:+.2f}, {high:+.2f}]" in text
    first = text.splitlines()[0]
    assert f"{cases} (condition, strategy) cases" in first
    helped = re.findall(r"\*\*helps(?:, < 1 point)?\*\* in \d+ \(([^)]*)\)", first)
    assert sorted(", ".join(helped).split(", ") if helped else []) == sorted(helps)
    where = [line for line in text.splitlines() if line.startswith("- Where a spectral strategy helps")]
    assert sum(line.count("while the best non-spectral choice") for line in where) == len(helps)


def test_same_layers_as_needs_every_seed():
    def run(strategy, seed, pairs):
        return {"strategy": strategy, "seed": seed, "mapping": {"pairs": pairs}}

    runs = [run("last", 0, [[1, 5], [2, 6]]), run("spectral-topk", 0, [[1, 5], [2, 6]]),
            run("last", 1, [[1, 5], [2, 6]]), run("spectral-topk", 1, [[1, 5], [2, 6]]),
            run("random", 0, [[1, 5], [2, 6]]), run("random", 1, [[1, 2], [2, 6]])]
    assert same_layers_as(runs, "spectral-topk") == ["last"]  # random agreed with seed 0 only
    runs[3]["mapping"]["pairs"] = [[1, 4], [2, 6]]
    assert same_layers_as(runs, "spectral-topk") == []


# --------------------------------------------------------------------------------------------
# The notebooks
# --------------------------------------------------------------------------------------------

@pytest.fixture(params=NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def notebook(request):
    return request.param.name, nbformat.read(request.param, as_version=4)


def test_every_chapter_ends_with_what_you_learned(notebook):
    name, nb = notebook
    cells = [cell for cell in nb.cells if "takeaways" in cell.metadata.get("tags", [])]
    assert cells and cells[0].cell_type == "markdown" and cells[0].source.startswith("## What you learned")
    assert nb.cells[-len(cells):] == cells, f"{name}: 'What you learned' must be the last cell(s)"
    prose = "\n".join(cell.source for cell in cells if cell.cell_type == "markdown")
    assert not re.search(r"\d+\.\d+ ?(%|points)", prose), f"{name}: a result typed by hand in the takeaways"


@pytest.mark.parametrize("chapter, function", [("04_", "workshop_takeaways"), ("06_", "study_takeaways")])
def test_chapters_4_and_6_quote_the_committed_results_through_the_package(chapter, function):
    nb = nbformat.read(next(p for p in NOTEBOOKS if p.name.startswith(chapter)), as_version=4)
    code = [cell.source for cell in nb.cells if "takeaways" in cell.metadata.get("tags", []) and cell.cell_type == "code"]
    assert len(code) == 1 and f"{function}(" in code[0] and "committed_results(" in code[0]
    assert hasattr(takeaways, function)


def test_check_cells_are_collapsed(notebook):
    name, nb = notebook
    checks = [cell for cell in nb.cells if "check" in cell.metadata.get("tags", [])]
    assert checks, f"{name}: no cell tagged 'check'"
    for cell in checks:
        assert cell.cell_type == "code" and "assert" in cell.source
        assert "hide-input" in cell.metadata["tags"] and cell.metadata.get("jupyter", {}).get("source_hidden") is True
