"""The "What you learned" numbers of chapters 4 and 6, read from the committed results.

``committed_results`` is the one place the chapters' summaries read a committed result file from
(``assets/workshop/results.json``: the workshop grid; ``assets/study/results.json``: the study).
``workshop_takeaways`` and ``study_takeaways`` turn such a file into a few markdown bullets; every
number in them is recomputed from the recorded runs (:func:`spectralkd_tutorial.pipelines.study_report.condition_stats`:
paired differences over seeds), so the text follows the file, whatever it says.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from ..analysis.depth_profiles import find_asset
from ..analysis.dynamics import coinciding_strategies
from ..common.io import read_json
from ..analysis.selection import SPECTRAL_STRATEGIES
from .study_report import condition_stats

__all__ = ["STUDY_RESULTS", "WORKSHOP_RESULTS", "committed_results", "same_layers_as", "study_takeaways",
           "workshop_takeaways"]

WORKSHOP_RESULTS = "workshop/results.json"
STUDY_RESULTS = "study/results.json"
_HEADLINES = {"in_scope_accuracy": "in-scope accuracy", "accuracy": "accuracy"}


def committed_results(relative: str | os.PathLike) -> dict[str, Any] | None:
    """The committed ``assets/<relative>`` JSON file, or ``None`` when this installation lacks it."""
    path = find_asset(relative)
    return None if path is None else read_json(path)


def same_layers_as(runs: Sequence[Mapping[str, Any]], strategy: str) -> list[str]:
    """The non-spectral strategies that aligned exactly ``strategy``'s layer pairs with every seed."""
    seeds = {int(r["seed"]) for r in runs if r["strategy"] == strategy}
    twins: set[str] | None = None
    for seed in seeds:
        group = next((g["strategies"] for g in coinciding_strategies([r for r in runs if int(r["seed"]) == seed])
                      if strategy in g["strategies"]), [])
        found = {s for s in group if s not in SPECTRAL_STRATEGIES and s != strategy}
        twins = found if twins is None else twins & found
    return sorted(twins or ())


def _points(diff: Mapping[str, Any]) -> str:
    return f"{100 * diff['mean']:+.2f} points [95% CI {100 * diff['low']:+.2f}, {100 * diff['high']:+.2f}]"


def _strategies(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(dict.fromkeys(r["strategy"] for r in runs))


def workshop_takeaways(results: Mapping[str, Any]) -> str:
    """Bullets for chapter 4: the teacher, logits-only KD, and each spectral strategy against it (paired)."""
    runs = results["runs"]
    stats = condition_stats(runs, _strategies(runs))
    head = stats["headline"]
    metric = _HEADLINES.get(head, head.replace("_", " "))
    test = results["dataset"]["splits"]["test"]
    counted = test["in_scope"] if head == "in_scope_accuracy" else test["examples"]
    seeds = sorted({int(r["seed"]) for r in runs})
    rows = stats["strategies"]
    means = {s: 100 * row["mean"][head] for s, row in rows.items()}
    lines = [f"- Teacher ({results['teacher']['layers']} blocks): {100 * results['teacher']['test'][head]:.2f}% "
             f"{metric} on {counted:,} test utterances; logits-only students: {means['none']:.2f}% "
             f"(mean of seeds {', '.join(map(str, seeds))})."]
    for strategy in SPECTRAL_STRATEGIES:
        if strategy not in rows or "vs_none" not in rows[strategy]:
            continue
        layers = next(r["mapping"]["teacher_layers"] for r in runs if r["strategy"] == strategy)
        twins = same_layers_as(runs, strategy)
        same = f", the same as `{'`, `'.join(twins)}` with every seed" if twins else ""
        diff = rows[strategy]["vs_none"][head]
        lines.append(f"- `{strategy}` aligned blocks {layers}{same}: {_points(diff)} against logits-only, paired "
                     f"over {diff['n']} seeds: **{diff['verdict']}**.")
    spread = max(means.values()) - min(means.values())
    lines.append(f"- All {len(means)} strategies' means lie within {spread:.2f} points of each other; one test "
                 f"utterance is {100 / counted:.3f} points, so that is about {spread * counted / 100:.0f} utterances.")
    return "\n".join(lines)


def study_takeaways(study: Mapping[str, Any]) -> str:
    """Bullets for chapter 6: where a spectral strategy differs from logits-only KD, whether a non-spectral
    choice does as well there, and how often the spectral rule returned a classic strategy's layers."""
    verdicts: dict[str, list[str]] = {}
    where_it_helps, coinciding, cases = [], [], 0
    for name, condition in study["conditions"].items():
        runs = condition["runs"]
        stats = condition_stats(runs, _strategies(runs))
        head, rows = stats["headline"], stats["strategies"]
        for strategy in SPECTRAL_STRATEGIES:
            if "vs_none" not in rows.get(strategy, {}):
                continue
            cases += 1
            diff = rows[strategy]["vs_none"][head]
            verdicts.setdefault(diff["verdict"], []).append(f"{name} `{strategy}`")
            twins = same_layers_as(runs, strategy)
            if twins:
                coinciding.append(f"{name} `{strategy}` = `{twins[0]}`")
            if diff["verdict"].startswith("helps"):
                others = [s for s in rows if s not in SPECTRAL_STRATEGIES and s != "none"]
                best = max(others, key=lambda s: rows[s]["mean"][head])
                versus = rows[strategy].get("vs_best_baseline", {}).get(head)
                if best in twins:
                    against = ": the very same students"
                elif versus and stats["best_baseline"] == best:
                    against = f"; `{strategy}` against `{best}`: {versus['verdict']}"
                else:
                    against = ""
                where_it_helps.append(f"{name}: `{strategy}` {_points(diff)}, while the best non-spectral "
                                      f"choice, `{best}`, gives {_points(rows[best]['vs_none'][head])}{against}")
    order = ("helps", "helps, < 1 point", "no difference detectable", "hurts, < 1 point", "hurts", "too few seeds")
    lines = [f"- Spectral strategy against logits-only KD, {cases} (condition, strategy) cases: "
             + "; ".join(f"**{verdict}** in {len(verdicts[verdict])} ({', '.join(verdicts[verdict])})"
                         for verdict in order if verdict in verdicts) + "."]
    if where_it_helps:
        lines.append("- Where a spectral strategy helps: " + "; ".join(where_it_helps) + ".")
    lines.append(f"- In {len(coinciding)} of the {cases} cases the spectral rule aligned the same layers as a classic "
                 "strategy with every seed, so its students *are* that strategy's"
                 + (f": {', '.join(coinciding)}." if coinciding else "."))
    return "\n".join(lines)
