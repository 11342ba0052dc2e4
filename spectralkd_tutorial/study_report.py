"""The study's statistics and reports: paired differences per condition and strategy
(:func:`condition_stats`), the plain-language reading (:func:`study_conclusion`), the README's one-row-per-
condition summary (:func:`study_summary`), the per-condition tables (:func:`study_markdown`) and the forest plot.

Everything here is computed from the records in a study's ``results.json`` alone, so
``spectralkd study --report-only`` and chapter 6 rebuild the same reports from a committed file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

from .selection import SPECTRAL_STRATEGIES
from .stats import pair_by_seed, paired_difference


def metrics_of(runs: Sequence[dict[str, Any]]) -> list[str]:
    keys = runs[0]["test"]
    if "in_scope_accuracy" in keys and not math.isnan(keys.get("oos_recall", math.nan)):
        return ["in_scope_accuracy", "oos_recall", "overall_accuracy"]
    return ["accuracy", "macro_f1"]


def condition_stats(runs: Sequence[dict[str, Any]], strategies: Sequence[str]) -> dict[str, Any]:
    """Per strategy: paired differences to ``none`` and to the best non-spectral strategy, per metric."""
    metrics = metrics_of(runs)
    head = metrics[0]
    means = {s: _mean([r["test"][head] for r in runs if r["strategy"] == s]) for s in strategies}
    baselines = [s for s in strategies if s not in SPECTRAL_STRATEGIES]
    best_baseline = max(baselines, key=lambda s: means[s]) if baselines else None
    table: dict[str, Any] = {"headline": head, "best_baseline": best_baseline, "strategies": {}}
    for strategy in strategies:
        row: dict[str, Any] = {"mean": {m: _mean([r["test"][m] for r in runs if r["strategy"] == strategy]) for m in metrics}}
        for name, other in (("vs_none", "none"), ("vs_best_baseline", best_baseline)):
            if other is None or other == strategy:
                continue
            row[name] = {m: paired_difference(*pair_by_seed(runs, strategy, other, m)).to_dict() for m in metrics}
        table["strategies"][strategy] = row
    return table


def paired_conditions(record: dict[str, Any], other: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Strategy by strategy, ``record``'s students minus ``other``'s of the same strategy and seed, per metric.

    For two conditions that differ in one setting only (C5p's learned projection vs C5's pooling):
    their students of a seed share initialisation and data order, so the seeds pair as within a
    condition. Their ``none`` students coincide, which checks the pairing (difference exactly 0)."""
    metrics = metrics_of(record["runs"])
    table: dict[str, dict[str, Any]] = {}
    for strategy in record["stats"]["strategies"]:
        if strategy not in other["stats"]["strategies"]:
            continue
        pairs = {m: pair_by_seed(record["runs"], strategy, strategy, m, other["runs"]) for m in metrics}
        if pairs[metrics[0]][0]:
            table[strategy] = {m: paired_difference(*pair).to_dict() for m, pair in pairs.items()}
    return table


def _compared(records: dict[str, dict[str, Any]], record: dict[str, Any]) -> dict[str, Any] | None:
    other = record.get("compare_to")
    return records.get(other) if other else None


def _mean(values: Sequence[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def study_conclusion(records: dict[str, dict[str, Any]]) -> str:
    """A plain-language reading of the verdicts, condition by condition, that follows the numbers."""
    lines = []
    for name, record in records.items():
        stats = record["stats"]
        head = stats["headline"]
        spectral = {s: row for s, row in stats["strategies"].items() if s in SPECTRAL_STRATEGIES}
        parts = []
        for strategy, row in spectral.items():
            vs_none = (row.get("vs_none") or {}).get(head)
            vs_best = (row.get("vs_best_baseline") or {}).get(head)
            if not vs_none:
                continue
            text = f"`{strategy}` {vs_none['verdict']} vs logits-only ({_fmt(vs_none)} points)"
            if vs_best and stats["best_baseline"] not in (None, "none"):
                text += f", {vs_best['verdict']} vs `{stats['best_baseline']}` ({_fmt(vs_best)})"
            parts.append(text)
        others = [s for s, row in stats["strategies"].items() if s not in SPECTRAL_STRATEGIES and s != "none"
                  and ((row.get("vs_none") or {}).get(head) or {}).get("verdict") in ("helps", "hurts")]
        note = (f" Non-spectral choices that differ from logits-only: "
                f"{', '.join(f'`{s}` ' + stats['strategies'][s]['vs_none'][head]['verdict'] for s in others)}."
                if others else " No non-spectral choice differs detectably from logits-only either.")
        lines.append(f"- **{name}** ({record['title']}): " + "; ".join(parts) + "." + note)
        other = _compared(records, record)
        if other is not None:
            versus = paired_conditions(record, other)
            said = [f"`{s}` {d[head]['verdict']} ({_fmt(d[head])})" for s, d in versus.items() if s != "none"]
            lines.append(f"  Against {record['compare_to']} strategy by strategy (same seeds): " + "; ".join(said) + ".")
    return "\n".join(lines)


def _same_as_note(record: dict[str, Any], strategy: str, quote: str = "") -> str:
    """`` (= last)`` when every seed of ``strategy`` chose another strategy's layers, ``(= random, seed 0)``
    when only some did; empty otherwise."""
    runs = [r for r in record["runs"] if r["strategy"] == strategy]
    twins = {r.get("same_as") for r in runs}
    if twins == {None} or not runs:
        return ""
    if len(twins) == 1:
        return f" (= {quote}{twins.pop()}{quote})"
    seeds = ", ".join(f"{quote}{r['same_as']}{quote} for seed {r['seed']}" for r in runs if r.get("same_as"))
    return f" (= {seeds})"


def study_summary(records: dict[str, dict[str, Any]]) -> str:
    """One row per condition: the teacher, logits-only KD, and ``spectral-ends`` / ``spectral-topk``
    against it (paired, points, 95% CI) with the verdict and the MDE; the README's table."""
    rows = ["| condition | teacher | logits only | `spectral-ends` vs none | `spectral-topk` vs none "
            "| best non-spectral vs none | student seconds |", "|---|---|---|---|---|---|---|"]
    for name, record in records.items():
        stats, head = record["stats"], record["stats"]["headline"]
        strategies = stats["strategies"]
        cells = []
        for strategy in ("spectral-ends", "spectral-topk"):
            diff = ((strategies.get(strategy) or {}).get("vs_none") or {}).get(head)
            same = _same_as_note(record, strategy, "`")
            cells.append(f"{_fmt(diff)}{same}: {diff['verdict']}, MDE {100 * diff['mde']:.2f}" if diff else "-")
        others = [s for s in strategies if s not in SPECTRAL_STRATEGIES and s != "none"]
        best = max(others, key=lambda s: strategies[s]["mean"][head]) if others else None
        best_cell = (f"`{best}` {_fmt(strategies[best]['vs_none'][head])}: {strategies[best]['vs_none'][head]['verdict']}"
                     if best else "-")
        seconds = f"{record.get('training_seconds', training_seconds(record['runs'], record['tuning'])):.0f}"
        if record.get("source"):
            seconds += f" (read from `{record['source']}`)"
        rows.append(f"| {name}: {record['title']} | {100 * record['teacher_test'][head]:.2f} | "
                    f"{100 * strategies['none']['mean'][head]:.2f} | {cells[0]} | {cells[1]} | {best_cell} | {seconds} |")
    return (f"Headline metric per condition ({', '.join(sorted({r['stats']['headline'].replace('_', ' ') for r in records.values()}))}, %); "
            "differences in points, same seed, mean [95% CI] over seeds; student seconds: the recorded training "
            "time of every distinct student and tuning run (teachers excluded).\n\n" + "\n".join(rows))


def training_seconds(runs: Sequence[dict[str, Any]], tuning: Sequence[dict[str, Any]] = ()) -> float:
    """The students' recorded training time: each distinct run once (a strategy reported ``same_as``
    another was not trained) plus the tuning runs. Unlike the wall time of a call, it does not shrink
    when a condition is resumed, and it leaves out the (shared) teacher."""
    return (sum(r.get("seconds", 0.0) for r in runs if not r.get("same_as"))
            + sum(t.get("seconds", 0.0) for t in tuning))


def _fmt(diff: dict[str, Any] | None) -> str:
    if not diff:
        return "-"
    if diff["n"] < 2:
        return f"{100 * diff['mean']:+.2f}"
    return f"{100 * diff['mean']:+.2f} [{100 * diff['low']:+.2f}, {100 * diff['high']:+.2f}]"


def _teacher_time(record: dict[str, Any]) -> str:
    seconds = record.get("teacher_seconds")
    return f" (fine-tuned in {seconds:.0f} s)" if seconds else ""


def _source_note(record: dict[str, Any]) -> str:
    if not record.get("source"):
        return ""
    return (f" Runs read from the committed grid `{record['source']}` (same setting, its own teacher; there every "
            "strategy was trained, and those choosing the same layers gave identical students).")


def study_markdown(records: dict[str, dict[str, Any]]) -> str:
    """One table per condition: paired differences (points) with 95% intervals, and the verdicts."""
    parts = ["Paired differences in percentage points (student - comparison, same seed), mean [95% CI] "
             "over seeds; MDE = smallest difference the design detects with 80% power. Strategies that "
             "chose the same layers as another were trained once and are reported under both names."]
    for name, record in records.items():
        stats = record["stats"]
        head = stats["headline"].replace("_", " ")
        why = record["why"] if record["why"].endswith((".", "?", "!")) else record["why"] + "."
        parts.append(f"\n### {name}: {record['title']}\n\n{why} Teacher test {head}: "
                     f"{100 * record['teacher_test'][stats['headline']]:.2f}%{_teacher_time(record)}. "
                     f"Seeds {record['seeds']}"
                     f"{'; tuning: ' + str(record['tuning']) if record['tuning'] else ''}."
                     f"{_source_note(record)}\n")
        parts.append(f"| strategy | teacher layers | {head} (%) | vs none | verdict | MDE | vs best baseline "
                     f"(`{stats['best_baseline']}`) |\n|---|---|---|---|---|---|---|")
        for strategy, row in stats["strategies"].items():
            vs_none = (row.get("vs_none") or {}).get(stats["headline"])
            vs_best = (row.get("vs_best_baseline") or {}).get(stats["headline"])
            layers = " / ".join(",".join(map(str, t)) for t in record["layers"][strategy]) or "logits only"
            same = _same_as_note(record, strategy)
            mde = f"{100 * vs_none['mde']:.2f}" if vs_none and not math.isnan(vs_none["mde"]) else "-"
            parts.append(f"| {strategy}{same} | {layers} | {100 * row['mean'][stats['headline']]:.2f} | {_fmt(vs_none)} | "
                         f"{vs_none['verdict'] if vs_none else '-'} | {mde} | {_fmt(vs_best)} |")
        other = _compared(records, record)
        if other is not None:
            parts.append(_versus_table(name, record, other))
    return "\n".join(parts) + "\n"


def _versus_table(name: str, record: dict[str, Any], other: dict[str, Any]) -> str:
    metrics = metrics_of(record["runs"])
    compare_to = record["compare_to"]
    rows = [f"\n{name} against {compare_to} ({other['title']}), strategy by strategy: {name} - {compare_to}, same seed "
            f"(the `none` students do not use the setting that differs, so their difference is 0 when the pairing "
            f"holds).\n", "| strategy | " + " | ".join(f"{m.replace('_', ' ')} (points)" for m in metrics)
            + f" | verdict ({metrics[0].replace('_', ' ')}) |", "|---" * (len(metrics) + 2) + "|"]
    for strategy, diff in paired_conditions(record, other).items():
        rows.append(f"| {strategy} | " + " | ".join(_fmt(diff[m]) for m in metrics) + f" | {diff[metrics[0]]['verdict']} |")
    return "\n".join(rows)


def write_forest(records: dict[str, dict[str, Any]], path: Path) -> None:
    """The paired differences to logits-only KD, one panel per condition (each on its own scale)."""
    import matplotlib.pyplot as plt

    from .viz import plot_forest_panels, save_figure

    panels = {}
    for name, record in records.items():
        head = record["stats"]["headline"]
        rows = []
        for strategy, row in record["stats"]["strategies"].items():
            diff = (row.get("vs_none") or {}).get(head)
            if diff:
                rows.append((strategy + _same_as_note(record, strategy), diff["mean"], diff["low"], diff["high"]))
        panels[f"{name}: {record['title']}"] = rows
    figure = plot_forest_panels(panels, xlabel="difference to logits-only KD (points of the headline accuracy)")
    save_figure(figure, path)
    plt.close(figure)


__all__ = ["condition_stats", "metrics_of", "paired_conditions", "study_conclusion", "study_markdown", "study_summary",
           "training_seconds", "write_forest"]
