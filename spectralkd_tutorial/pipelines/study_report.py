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

from ..analysis.selection import SPECTRAL_STRATEGIES
from ..analysis.stats import (PRACTICAL_THRESHOLD, PairedDifference, adjust_family, pair_by_seed, paired_difference,
    sd_ratio_range)


def metrics_of(runs: Sequence[dict[str, Any]]) -> list[str]:
    keys = runs[0]["test"]
    if "in_scope_accuracy" in keys and not math.isnan(keys.get("oos_recall", math.nan)):
        return ["in_scope_accuracy", "oos_recall", "overall_accuracy"]
    return ["accuracy", "macro_f1"]


SIMPLE_STRATEGIES = ("last", "first", "uniform")  # the choices a practitioner makes without any analysis


def condition_stats(runs: Sequence[dict[str, Any]], strategies: Sequence[str]) -> dict[str, Any]:
    """Per strategy: paired differences to ``none`` and to the best non-spectral strategy, per metric;
    per spectral strategy also to the best simple choice (``last``/``first``/``uniform``, by mean).

    Holm-adjusted per metric within two families: every strategy vs ``none`` (does aligning layers help?)
    and the comparisons with the best baseline / best simple choice (does the choice of layers matter?)."""
    metrics = metrics_of(runs)
    head = metrics[0]
    means = {s: _mean([r["test"][head] for r in runs if r["strategy"] == s]) for s in strategies}
    baselines = [s for s in strategies if s not in SPECTRAL_STRATEGIES]
    best_baseline = max(baselines, key=lambda s: means[s]) if baselines else None
    simple = [s for s in strategies if s in SIMPLE_STRATEGIES]
    best_simple = max(simple, key=lambda s: means[s]) if simple else None
    table: dict[str, Any] = {"headline": head, "best_baseline": best_baseline, "best_simple": best_simple,
                             "strategies": {}}
    families: dict[tuple[str, str], dict[tuple[str, str], PairedDifference]] = {}
    for strategy in strategies:
        comparisons = [("vs_none", "none")] + ([("vs_best_baseline", best_baseline)] if strategy != "none" else [])
        if strategy in SPECTRAL_STRATEGIES:
            comparisons.append(("vs_best_simple", best_simple))
        for name, other in comparisons:
            if other is None or other == strategy:
                continue
            for m in metrics:
                family = families.setdefault(("alignment" if name == "vs_none" else "choice", m), {})
                family[(strategy, name)] = paired_difference(*pair_by_seed(runs, strategy, other, m))
    adjusted = {(key, m): d for (_, m), family in families.items() for key, d in adjust_family(family).items()}
    for strategy in strategies:
        row: dict[str, Any] = {"mean": {m: _mean([r["test"][m] for r in runs if r["strategy"] == strategy]) for m in metrics}}
        for name in ("vs_none", "vs_best_baseline", "vs_best_simple"):
            if ((strategy, name), head) in adjusted:
                row[name] = {m: adjusted[((strategy, name), m)].to_dict() for m in metrics}
        table["strategies"][strategy] = row
    return table


def paired_conditions(record: dict[str, Any], other: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Strategy by strategy, ``record``'s students minus ``other``'s of the same strategy and seed, per metric.

    For two conditions that differ in one setting only (C5p's learned projection vs C5's pooling):
    their students of a seed share initialisation and data order, so the seeds pair as within a
    condition. Their ``none`` students coincide, which checks the pairing (difference exactly 0). The
    strategies are one family: verdicts follow Holm-adjusted p-values."""
    metrics = metrics_of(record["runs"])
    table: dict[str, dict[str, Any]] = {}
    for strategy in record["stats"]["strategies"]:
        if strategy not in other["stats"]["strategies"]:
            continue
        pairs = {m: pair_by_seed(record["runs"], strategy, strategy, m, other["runs"]) for m in metrics}
        if pairs[metrics[0]][0]:
            table[strategy] = {m: paired_difference(*pair) for m, pair in pairs.items()}
    # Holm per metric over the strategies that use the setting (``none``'s exact 0 checks the pairing, no test)
    adjusted = {m: adjust_family({s: row[m] for s, row in table.items() if s != "none"}) for m in metrics}
    return {s: {m: adjusted[m].get(s, table[s][m]).to_dict() for m in metrics} for s in table}


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
            vs_simple = (row.get("vs_best_simple") or {}).get(head)
            if not vs_none:
                continue
            text = f"`{strategy}` {vs_none['verdict']} vs logits-only ({_fmt(vs_none)} points)"
            if vs_simple:
                text += f", {vs_simple['verdict']} vs the best simple choice `{stats['best_simple']}` ({_fmt(vs_simple)})"
            parts.append(text)
        others = [s for s, row in stats["strategies"].items() if s not in SPECTRAL_STRATEGIES and s != "none"
                  and ((row.get("vs_none") or {}).get(head) or {}).get("verdict", "").startswith(("helps", "hurts"))]
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


def study_takeaway(records: dict[str, dict[str, Any]]) -> str:
    """What the study concludes, in two sentences computed from the Holm-adjusted verdicts: where aligning
    layers pays at least the practical threshold, and whether the spectral choice beats the best simple one."""
    threshold = f"{100 * PRACTICAL_THRESHOLD:g} point"
    pays, small, beats, behind, own = [], [], [], [], []
    for name, record in records.items():
        stats = record["stats"]
        head = stats["headline"]
        verdicts = {s: ((row.get("vs_none") or {}).get(head) or {}).get("verdict") for s, row in stats["strategies"].items()}
        if "helps" in verdicts.values():
            pays.append(name)
        elif any((v or "").startswith("helps") for v in verdicts.values()):
            small.append(name)
        for strategy in ("spectral-topk", "spectral-ends"):
            diff = ((stats["strategies"].get(strategy) or {}).get("vs_best_simple") or {}).get(head)
            if diff is None:
                continue
            if diff["verdict"].startswith("helps"):
                beats.append(f"{name} (`{strategy}`)")
            elif diff["verdict"].startswith("hurts"):
                behind.append(f"{name} (`{strategy}`)")
            if not _same_as_note(record, strategy):
                own.append(name)
    first = (f"Aligning intermediate layers raised the headline accuracy detectably (Holm-adjusted) and by at least "
             f"{threshold} in {len(pays)} of {len(records)} conditions{' (' + ', '.join(pays) + ')' if pays else ''}"
             f"{'; detectably but by less in ' + ', '.join(small) if small else ''}; elsewhere no layer alignment "
             "differed detectably from logits-only KD.")
    where = sorted(set(own))
    second = (f"The spectral choice beat the best simple choice (`last`, `first` or `uniform`) in "
              f"{', '.join(beats) if beats else 'no condition'}"
              f"{', and fell behind it in ' + ', '.join(behind) if behind else ''}; "
              f"it picked layers of its own (no simple strategy took the same) in "
              f"{', '.join(where) if where else 'no condition'}.")
    return f"{first} {second}"


UNDERTRAINED_GAP = 0.10  # logits-only students this far below their teacher are flagged as far from trained


def training_caveats(records: dict[str, dict[str, Any]]) -> str:
    """Where a condition's students may be under-trained, from its own numbers: the epochs tuned on
    validation were the longest tried and still gaining, or the logits-only students sit far below the teacher."""
    lines = []
    for name, record in records.items():
        head = record["stats"]["headline"]
        notes = []
        trials = sorted(record.get("tuning") or [], key=lambda t: t["settings"].get("student.train.epochs", 0))
        if len(trials) > 1 and max(trials, key=lambda t: t["validation_headline"]) is trials[-1]:
            gain = trials[-1]["validation_headline"] - trials[-2]["validation_headline"]
            if gain > PRACTICAL_THRESHOLD:
                tried = ", ".join(f"{t['settings'].get('student.train.epochs')} epochs {100 * t['validation_headline']:.1f}%"
                                  for t in trials)
                notes.append(f"the longest training tried won on validation and was still gaining ({tried})")
        gap = record["teacher_test"][head] - record["stats"]["strategies"]["none"]["mean"][head]
        if gap > UNDERTRAINED_GAP:
            notes.append(f"its logits-only students are {100 * gap:.1f} points below the teacher")
        if notes:
            lines.append(f"- **{name}**: {'; '.join(notes)}. Its differences are those of students far from fully "
                         "trained; with longer training they may shrink (or grow).")
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
            "| best non-spectral vs none | spectral vs best simple choice | student seconds |",
            "|---|---|---|---|---|---|---|---|"]
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
        seconds = f"{training_seconds(record['runs'], record['tuning']):.0f}"
        if record.get("source"):
            seconds += f" (read from `{record['source']}`)"
        rows.append(f"| {name}: {record['title']} | {_teacher_cell(record)} | "
                    f"{100 * strategies['none']['mean'][head]:.2f} | {cells[0]} | {cells[1]} | {best_cell} | "
                    f"{spectral_vs_simple(record)} | {seconds} |")
    return (f"Headline metric per condition ({', '.join(sorted({r['stats']['headline'].replace('_', ' ') for r in records.values()}))}, %); "
            "differences in points, same seed, mean [95% CI] over seeds (unadjusted intervals; the verdict words follow "
            f"Holm-adjusted p-values within each condition; `, < {100 * PRACTICAL_THRESHOLD:g} point`: detectable but below "
            "the practical threshold); spectral vs best simple choice: `spectral-topk` (and `spectral-ends` where it "
            "chose other layers) minus the best of `last`/`first`/`uniform`; student seconds: the recorded training "
            "time of every distinct student and tuning run (teachers excluded).\n\n" + "\n".join(rows))


def spectral_vs_simple(record: dict[str, Any]) -> str:
    """The question the seed asks, for one condition: the spectral choice minus the best simple choice
    (``last``/``first``/``uniform``, best by mean), paired, with the Holm-adjusted verdict."""
    stats = record["stats"]
    head, strategies = stats["headline"], stats["strategies"]
    parts, seen = [], []
    for strategy in ("spectral-topk", "spectral-ends"):
        diff = ((strategies.get(strategy) or {}).get("vs_best_simple") or {}).get(head)
        if diff is None or record["layers"].get(strategy) in seen:
            continue
        seen.append(record["layers"].get(strategy))
        parts.append(f"`{strategy}`{_same_as_note(record, strategy, '`')} - `{stats['best_simple']}` {_fmt(diff)}: "
                     f"{diff['verdict']}")
    return "; ".join(parts) or "-"


def _teacher_cell(record: dict[str, Any], unit: str = "") -> str:
    """The teacher's headline test accuracy; one per teacher where seeds were distilled from different ones
    (a teacher fine-tuned again with the same settings differs in the last digits)."""
    head = record["stats"]["headline"]
    teachers = record.get("teachers") or []
    if len(teachers) > 1:
        return " / ".join(f"{100 * t['test'][head]:.2f}{unit} (seeds {','.join(map(str, t['seeds']))})" for t in teachers)
    return f"{100 * record['teacher_test'][head]:.2f}{unit}"


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
    teachers = record.get("teachers") or []
    if len(teachers) > 1 and all(t.get("seconds") for t in teachers):
        times = " / ".join(f"{t['seconds']:.0f} s" for t in teachers)
        return f" (fine-tuned in {times})"
    seconds = record.get("teacher_seconds")
    return f" (fine-tuned in {seconds:.0f} s)" if seconds else ""


def _source_note(record: dict[str, Any]) -> str:
    if not record.get("source"):
        return ""
    return (f" Runs read from the committed grid `{record['source']}` (same setting, its own teacher; there every "
            "strategy was trained, and those choosing the same layers gave identical students).")


def study_markdown(records: dict[str, dict[str, Any]]) -> str:
    """One table per condition: paired differences (points) with 95% intervals, p-values before and after
    Holm's adjustment, and the verdicts (which follow the adjusted p-values)."""
    low3, high3 = sd_ratio_range(3)
    parts = ["Paired differences in percentage points (student - comparison, same seed), mean [95% CI] over seeds, "
             "unadjusted; p: two-sided paired t test, then Holm-adjusted within the condition (one family for the "
             "comparisons with `none`, one for those with the best baseline and the best simple choice). The verdict "
             "words follow the adjusted p-value (< 0.05); `, < "
             f"{100 * PRACTICAL_THRESHOLD:g} point` marks a detectable difference below the practical threshold "
             f"({100 * PRACTICAL_THRESHOLD:g} point of the headline accuracy). MDE: the true difference the design would "
             "detect with 80% power (unadjusted) if the seed-to-seed sd were exactly the observed one; with 3 seeds "
             f"the true sd may be {low3:.1f}x to {high3:.1f}x the observed (95%), so read the MDE as an order of "
             "magnitude. The intervals cover the seeds only, not the sampling of the test set: every student is scored "
             "on the same test utterances. Strategies that chose the same layers as another were trained once and "
             "are reported under both names."]
    for name, record in records.items():
        stats = record["stats"]
        head = stats["headline"].replace("_", " ")
        why = record["why"] if record["why"].endswith((".", "?", "!")) else record["why"] + "."
        parts.append(f"\n### {name}: {record['title']}\n\n{why} Teacher test {head}: "
                     f"{_teacher_cell(record, '%')}{_teacher_time(record)}. "
                     f"Seeds {record['seeds']}"
                     f"{'; tuning: ' + str(record['tuning']) if record['tuning'] else ''}."
                     f"{_source_note(record)}\n")
        parts.append(f"| strategy | teacher layers | {head} (%) | vs none | p (Holm) | verdict | MDE | vs best baseline "
                     f"(`{stats['best_baseline']}`) | verdict | vs best simple (`{stats.get('best_simple')}`) | verdict |\n"
                     "|---|---|---|---|---|---|---|---|---|---|---|")
        for strategy, row in stats["strategies"].items():
            diffs = {k: (row.get(k) or {}).get(stats["headline"]) for k in ("vs_none", "vs_best_baseline", "vs_best_simple")}
            vs_none = diffs["vs_none"]
            layers = " / ".join(",".join(map(str, t)) for t in record["layers"][strategy]) or "logits only"
            same = _same_as_note(record, strategy)
            mde = f"{100 * vs_none['mde']:.2f}" if vs_none and not math.isnan(vs_none["mde"]) else "-"
            parts.append(f"| {strategy}{same} | {layers} | {100 * row['mean'][stats['headline']]:.2f} | {_fmt(vs_none)} | "
                         f"{_p(vs_none)} | {_verdict(vs_none)} | {mde} | {_fmt(diffs['vs_best_baseline'])} | "
                         f"{_verdict(diffs['vs_best_baseline'])} | {_fmt(diffs['vs_best_simple'])} | "
                         f"{_verdict(diffs['vs_best_simple'])} |")
        other = _compared(records, record)
        if other is not None:
            parts.append(_versus_table(name, record, other))
    return "\n".join(parts) + "\n"


def _p(diff: dict[str, Any] | None) -> str:
    if not diff or math.isnan(diff.get("p", math.nan)):
        return "-"
    adjusted = diff.get("p_adjusted")
    return f"{diff['p']:.3f} ({adjusted:.3f})" if adjusted is not None else f"{diff['p']:.3f}"


def _verdict(diff: dict[str, Any] | None) -> str:
    return diff["verdict"] if diff else "-"


def _versus_table(name: str, record: dict[str, Any], other: dict[str, Any]) -> str:
    metrics = metrics_of(record["runs"])
    compare_to = record["compare_to"]
    rows = [f"\n{name} against {compare_to} ({other['title']}), strategy by strategy: {name} - {compare_to}, same seed "
            f"(the `none` students do not use the setting that differs, so their difference is 0 when the pairing "
            f"holds).\n", "| strategy | " + " | ".join(f"{m.replace('_', ' ')} (points)" for m in metrics)
            + f" | p (Holm) | verdict ({metrics[0].replace('_', ' ')}) |", "|---" * (len(metrics) + 3) + "|"]
    for strategy, diff in paired_conditions(record, other).items():
        rows.append(f"| {strategy} | " + " | ".join(_fmt(diff[m]) for m in metrics)
                    + f" | {_p(diff[metrics[0]])} | {diff[metrics[0]]['verdict']} |")
    return "\n".join(rows)


def write_forest(records: dict[str, dict[str, Any]], path: Path) -> None:
    """The paired differences to logits-only KD, one panel per condition (each on its own scale)."""
    import matplotlib.pyplot as plt

    from ..analysis.viz import plot_forest_panels, save_figure

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


__all__ = ["SIMPLE_STRATEGIES", "condition_stats", "metrics_of", "paired_conditions", "spectral_vs_simple",
           "study_conclusion", "study_markdown", "study_summary", "study_takeaway", "training_caveats", "training_seconds",
           "write_forest"]
