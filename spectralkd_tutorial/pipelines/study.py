"""Where does the spectral choice matter? Conditions x strategies x seeds, with paired statistics.

Each condition is one experiment grid (``experiment.run_experiment``) against the fine-tuned
teacher of its data set. Inside a condition every strategy's student of a seed shares its
initialisation and data order with the ``none`` (logits-only) student of that seed, so the
comparison is *paired* (``stats.paired_difference``): per condition and strategy the mean
difference to ``none`` and to the best non-spectral strategy, a 95% interval over seeds, a verdict
(helps / hurts / no difference detectable) and the smallest difference the design could detect.

Conditions are data (:data:`.study_plan.STUDY_PLANS`); a condition may name candidate settings, which are
tried once with the ``none`` strategy and seed 0 on *validation* data before any strategy is
compared (the best candidate is recorded and used). Results accumulate: a study resumes where it
stopped, and a new condition adds to the directory without touching finished ones.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..config.sections import RunConfig
from ..engine.run_store import RunStore
from ..data import IntentDataset
from .experiment import ExperimentReport, run_experiment
from ..common.io import atomic_copy, atomic_write_text
from ..common.metrics import headline
from ..common.published import published as committed_asset
from ..analysis.stats import PairedDifference
from .steps import load_data, train_teacher
# the plan of conditions is its own module; re-exported here, where the tests import it
from .study_plan import (COMPARISON_SETTINGS, STUDY_PLANS, Condition, condition_config, study_plan, teacher_config,
    teacher_slug)
from .study_report import (condition_stats, study_conclusion, study_markdown, study_summary, study_takeaway,
    training_caveats, training_seconds, write_forest)

PUBLISHED_FILES = ("results.json", "study.md", "summary.md", "forest.png")


@dataclass
class ConditionResult:
    condition: Condition
    config: RunConfig
    report: ExperimentReport
    tuning: list[dict[str, Any]]
    seconds: float  # wall time of this call (a resumed condition: only what was left)
    source: str | None = None  # the committed grid the runs were read from (None: trained by this study)
    teacher_seconds: float = 0.0  # the teacher's recorded fine-tuning time (shared by the conditions of a data set)
    teachers: list[dict[str, Any]] = field(default_factory=list)  # per teacher: the seeds distilled from it, test, seconds


def scarce_training_set(dataset: IntentDataset, per_label: int, seed: int = 0) -> IntentDataset:
    """The first ``per_label`` training utterances of each label, in a seeded shuffled order."""
    import random

    order = list(range(len(dataset.train)))
    random.Random(seed).shuffle(order)
    taken: dict[int, int] = {}
    keep = []
    for i in order:
        label = dataset.train.labels[i]
        if taken.get(label, 0) < per_label:
            taken[label] = taken.get(label, 0) + 1
            keep.append(i)
    keep.sort()
    train = type(dataset.train)([dataset.train.texts[i] for i in keep], [dataset.train.labels[i] for i in keep])
    return _with_train(dataset, train)


def _with_train(dataset: IntentDataset, train) -> IntentDataset:
    import dataclasses

    return dataclasses.replace(dataset, train=train)



def run_condition(base: RunConfig, condition: Condition, out: Path, *, overwrite: bool = False,
                  chosen_by: dict[str, dict[str, Any]] | None = None, earlier: dict[str, Any] | None = None,
                  log=print) -> ConditionResult:
    """Teacher (shared by the conditions of a data set), tuning on validation, then the grid.

    ``earlier``: this condition's record from a previous call or the published study. Where it was made
    with the same settings, its runs are kept and only the seeds it lacks are trained (and its tuning
    is reused), so that seeds can be added to a published condition without retraining the others."""
    start = time.perf_counter()
    if _committed_grid(condition) is not None:
        return published_condition(base, condition, out, start)
    config = teacher_config(base, condition)
    dataset = load_data(config)
    teacher = train_teacher(config, out / "teachers" / teacher_slug(base, condition), dataset=dataset,
                            overwrite=overwrite)
    students_data = scarce_training_set(dataset, condition.per_label) if condition.per_label else dataset
    kept = [] if overwrite or earlier is None else kept_runs(base, condition, teacher.directory, earlier, chosen_by)
    reuse = earlier if kept else None
    tuning, chosen = _tune(base, condition, out, teacher.directory, students_data, overwrite, chosen_by or {}, log,
                           earlier=reuse)
    config = condition_config(base, condition, teacher.directory, chosen).replace(**COMPARISON_SETTINGS)
    missing = tuple(seed for seed in condition.seeds if seed not in {r["seed"] for r in kept})
    kept_note = f"; seeds {sorted({r['seed'] for r in kept})} kept" if kept else ""
    log(f"{condition.name}: {condition.title} ({len(students_data.train)} training utterances, "
        f"{chosen or 'no tuning'}{kept_note})")
    report = run_experiment(config.replace(**{"grid.seeds": missing or condition.seeds}),
                            out / "conditions" / condition.name, dataset=students_data, overwrite=overwrite)
    teachers = [{"seeds": sorted({r["seed"] for r in report.runs}), "test": report.teacher_test,
                 "seconds": teacher.seconds}]
    if kept:
        teachers = _merged_teachers(reuse, kept) + (teachers if missing else [])
        report = _merged(report, kept, condition, missing, teachers[0]["test"])
    return ConditionResult(condition, config.replace(**{"grid.seeds": condition.seeds}), report, tuning,
                           time.perf_counter() - start + (reuse or {}).get("seconds", 0.0),
                           teacher_seconds=teachers[0]["seconds"], teachers=teachers)


def _comparable(config_dict: dict[str, Any]) -> dict[str, Any]:
    """A condition's settings without what may differ between calls that add seeds to it."""
    settings = {k: dict(v) if isinstance(v, dict) else v for k, v in config_dict.items() if k != "runtime"}
    settings["teacher"] = {k: v for k, v in settings["teacher"].items() if k != "finetuned"}
    settings["data"] = {k: v for k, v in settings["data"].items() if k != "data_dir"}
    settings["grid"] = {k: v for k, v in settings["grid"].items() if k != "seeds"}
    return settings


def kept_runs(base: RunConfig, condition: Condition, teacher_dir: Path, earlier: dict[str, Any],
              chosen_by: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The runs of ``earlier`` (a record of this condition) that this call keeps: those of its seeds that ran
    every strategy, when ``earlier`` was made with this condition's settings (else none: all seeds run)."""
    chosen = (chosen_by or {}).get(condition.tuned_like, {}) if condition.tuned_like else _tuned_setting(earlier)
    now = condition_config(base, condition, teacher_dir, chosen).replace(**COMPARISON_SETTINGS)
    if earlier.get("source") or _comparable(earlier["config"]) != _comparable(now.to_dict()):
        return []
    done = [seed for seed in condition.seeds
            if {r["strategy"] for r in earlier["runs"] if r["seed"] == seed} >= set(condition.strategies)]
    return [r for r in earlier["runs"] if r["seed"] in done and r["strategy"] in condition.strategies]


def _complete(base: RunConfig, condition: Condition, out: Path, earlier: dict[str, Any],
              chosen_by: dict[str, dict[str, Any]]) -> bool:
    """Whether ``earlier`` already holds every seed and strategy of ``condition``, with its settings."""
    teacher_dir = out / "teachers" / teacher_slug(base, condition)
    return {r["seed"] for r in kept_runs(base, condition, teacher_dir, earlier, chosen_by)} >= set(condition.seeds)


def _tuned_setting(record: dict[str, Any]) -> dict[str, Any]:
    return dict(max(record["tuning"], key=lambda t: t["validation_headline"])["settings"]) if record["tuning"] else {}


def _merged(report: ExperimentReport, kept: list[dict[str, Any]], condition: Condition,
            missing: tuple[int, ...], teacher_test: dict[str, float]) -> ExperimentReport:
    """``report``'s runs of the seeds that were missing added to the kept ones, in seed order; the headline
    teacher is the kept runs' (the record's ``teachers`` lists each teacher with its seeds)."""
    import dataclasses

    new = [r for r in report.runs if r["seed"] in missing] if missing else []
    order = {s: i for i, s in enumerate(condition.strategies)}
    runs = sorted(kept + new, key=lambda r: (r["seed"], order[r["strategy"]]))
    return dataclasses.replace(report, runs=runs, seconds=sum(r.get("seconds", 0.0) for r in runs),
                               teacher_test=teacher_test)


def _merged_teachers(earlier: dict[str, Any], kept: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The teachers the kept runs were distilled from (an earlier call's, as recorded)."""
    if earlier.get("teachers"):
        return earlier["teachers"]
    return [{"seeds": sorted({r["seed"] for r in kept}), "test": earlier["teacher_test"],
             "seconds": earlier.get("teacher_seconds", 0.0)}]


def _committed_grid(condition: Condition) -> Path | None:
    """The committed ``results.json`` named by ``condition.published`` (``assets/...``), read from the
    package's copy of ``assets/`` (a checkout or an installed wheel); ``None`` when there is none."""
    return committed_asset(Path(condition.published).relative_to("assets")) if condition.published else None


def published_condition(base: RunConfig, condition: Condition, out: Path, start: float) -> ConditionResult:
    """A condition whose grid is committed (``condition.published``: ``assets/...`` as in the repository;
    without it the condition runs): its runs are read, checked against the condition's settings, and
    not trained again."""
    from ..common.io import read_json

    path = _committed_grid(condition)
    grid = read_json(path)
    config = condition_config(base, condition, out / "teachers" / "published", {})
    expected = {"student_layers": config.student.num_layers, "epochs": config.student.train.epochs,
                "feature_loss": config.loss.feature_loss, "alpha": config.loss.alpha,
                "temperature": config.loss.temperature, "beta": config.loss.beta}
    differ = {k: (grid["fingerprint"].get(k), v) for k, v in expected.items() if grid["fingerprint"].get(k) != v}
    if differ or grid.get("preset") != base.name:
        raise ValueError(f"{path} was made with other settings than {condition.name} ({differ}); rerun it with "
                         f"`spectralkd experiment --preset {base.name} --publish {path.parent}`")
    runs = [_with_same_as(r, grid["runs"]) for r in grid["runs"]
            if r["strategy"] in condition.strategies and r["seed"] in condition.seeds]
    report = ExperimentReport(runs=runs, summary=grid.get("summary", []), table_markdown=grid.get("table_markdown", ""),
                              conclusion=grid.get("conclusion", ""), teacher_test=grid["teacher"]["test"],
                              directory=path.parent, seconds=sum(r.get("seconds", 0.0) for r in runs))
    config = config.replace(**{"teacher.finetuned": None})
    return ConditionResult(condition, config, report, [], time.perf_counter() - start, source=condition.published)


def _with_same_as(run: dict[str, Any], runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``run`` marked ``same_as`` the first strategy of its seed that chose the same teacher layers."""
    for other in runs:
        if other is run:
            return run
        if other["seed"] == run["seed"] and other["mapping"]["teacher_layers"] == run["mapping"]["teacher_layers"]:
            return {**run, "same_as": other["strategy"]}
    return run


def _carry_conditions(previous: dict[str, Any], published: Path, preset: str, log) -> None:
    """Add to ``previous`` the conditions of ``published`` (a results.json) that it lacks."""
    if not published.exists():
        return
    from ..common.io import read_json

    other = read_json(published)
    presets = {other.get("preset")} | {(r.get("config") or {}).get("name") for r in other.get("conditions", {}).values()}
    presets.discard(None)
    if presets and presets != {preset}:
        raise ValueError(f"{published} holds a study of preset {sorted(presets)}, not {preset!r}; publish this "
                         f"study elsewhere (--publish DIR) or run it with --preset {sorted(presets)[0]}")
    for name, record in other.get("conditions", {}).items():
        if name not in previous["conditions"]:
            previous["conditions"][name] = {**record, "carried_from": record.get("carried_from") or str(published)}
            log(f"{name}: kept from {published} (not in this run's directory)")


def _tune(base, condition, out, teacher_dir, dataset, overwrite, chosen_by, log, *,
          earlier: dict[str, Any] | None = None) -> tuple[list[dict], dict]:
    """Each candidate once (``none``, seed 0), scored on validation; the best is used (an ``earlier``
    record's tuning is reused as it stands)."""
    if earlier is not None and earlier["tuning"]:
        chosen_by[condition.name] = _tuned_setting(earlier)
        return list(earlier["tuning"]), _tuned_setting(earlier)
    if condition.tuned_like:
        if condition.tuned_like not in chosen_by:
            raise ValueError(f"{condition.name} reuses the setting tuned for {condition.tuned_like}: run "
                             f"{condition.tuned_like} first (--conditions {condition.tuned_like} {condition.name})")
        return [], dict(chosen_by[condition.tuned_like])
    if not condition.candidates:
        return [], {}
    trials = []
    for index, candidate in enumerate(condition.candidates):
        probe = condition_config(base, condition, teacher_dir, candidate).replace(
            **{"grid.strategies": ["none"], "grid.seeds": [0]})
        report = run_experiment(probe, out / "tuning" / condition.name / str(index), dataset=dataset, overwrite=overwrite)
        score = headline(report.runs[0]["validation"])
        trials.append({"settings": candidate, "validation_headline": score, "seconds": report.runs[0]["seconds"]})
        log(f"  tuning {condition.name} {candidate}: validation {score:.4f}")
    best = max(trials, key=lambda t: t["validation_headline"])
    chosen_by[condition.name] = best["settings"]
    return trials, dict(best["settings"])


def run_study(base: RunConfig, out_dir: str | os.PathLike, *, conditions: Sequence[str] | None = None,
              overwrite: bool = False, report_only: bool = False, keep_from: str | os.PathLike | None = None,
              log=print) -> dict[str, Any]:
    """Run (or resume) the preset's study; writes results.json, study.md, summary.md, forest.png and
    per-condition figures. ``report_only``: rebuild the reports from the finished conditions in
    results.json without running any (e.g. to publish a study stopped part-way). ``keep_from``: a
    directory with an earlier ``results.json`` of this preset's study (the published one): its conditions
    that ``out_dir`` does not hold are carried over unchanged, so that running some conditions on
    another machine and publishing them adds to the published study instead of replacing it."""
    out = Path(out_dir)
    full_plan = plan = study_plan(base.name)
    if conditions:
        unknown = sorted(set(conditions) - {c.name for c in plan})
        if unknown:
            raise ValueError(f"unknown condition(s) {unknown}; the {base.name} study has {[c.name for c in plan]}")
        plan = [c for c in plan if c.name in conditions]
    results = []
    with RunStore(out, kind="study", settings={"preset": base.name}, overwrite=overwrite) as store:
        previous = store.read_json("results.json") if store.exists("results.json") else {"conditions": {}}
        if keep_from is not None:
            _carry_conditions(previous, Path(keep_from) / "results.json", base.name, log)
            if previous["conditions"] and not report_only:  # a call stopped half-way resumes with what it kept
                store.write_json("results.json", previous)
        chosen_by = {name: _tuned_setting(r) for name, r in previous["conditions"].items() if r["tuning"]}
        if report_only and not previous["conditions"]:
            raise ValueError(f"{out / 'results.json'} holds no finished condition yet: run the study first")
        for condition in ([] if report_only else plan):
            earlier = previous["conditions"].get(condition.name)
            if not overwrite and earlier is not None and not condition.published and _complete(base, condition, out, earlier, chosen_by):
                log(f"{condition.name}: finished (seeds {earlier['seeds']}), kept")
                continue
            result = run_condition(base, condition, out, overwrite=overwrite, chosen_by=chosen_by,
                                   earlier=previous["conditions"].get(condition.name), log=log)
            results.append(result)
            previous["conditions"][condition.name] = condition_record(result)
            store.write_json("results.json", previous)
            figures = result.report.directory if condition.published else out / "conditions" / condition.name
            atomic_copy(figures / "mappings.png", out / f"mappings_{condition.name}.png")
        names = [c.name for c in full_plan]
        previous["conditions"] = dict(sorted(previous["conditions"].items(),
                                             key=lambda item: names.index(item[0]) if item[0] in names else len(names)))
        previous["preset"] = base.name
        for condition in full_plan:  # records written before a condition named its comparison
            if condition.compare_to and condition.name in previous["conditions"]:
                previous["conditions"][condition.name].setdefault("compare_to", condition.compare_to)
        for record in previous["conditions"].values():  # the statistics follow the runs and the current rules
            record["stats"] = condition_stats(record["runs"], list(record["stats"]["strategies"]))
            record["training_seconds"] = training_seconds(record["runs"], record["tuning"])
        store.write_json("results.json", previous)
        records = previous["conditions"]
        pending = pending_conditions(base, full_plan, records)
        reading = f"{study_takeaway(records)}\n\n{study_conclusion(records)}{_caveats(records)}{pending}"
        atomic_write_text(store.path("study.md"), f"{study_markdown(records)}\n**Reading.**\n\n{reading}\n")
        atomic_write_text(store.path("summary.md"), f"{study_summary(records)}{pending}\n")
        write_forest(records, store.path("forest.png"))
    return previous


def pending_conditions(base: RunConfig, plan: Sequence[Condition], records: dict[str, dict[str, Any]]) -> str:
    """A paragraph for each planned condition that is not (fully) run: the seeds it lacks, or its size."""
    from .study_sizing import size_condition, sizing_sentence

    lines = []
    for condition in plan:
        record = records.get(condition.name)
        if record is not None:
            lacking = sorted(set(condition.seeds) - {r["seed"] for r in record["runs"]})
            if lacking:
                lines.append(f"{condition.name}: seeds {lacking} of the plan not run yet (the table shows seeds "
                             f"{sorted({r['seed'] for r in record['runs']})}).")
            continue
        if condition.published:
            continue
        config = condition_config(base, condition, Path("teacher"), {}).replace(**COMPARISON_SETTINGS)
        try:
            size = size_condition(condition, config.to_dict(), records, _train_size)
        except (ValueError, OSError) as error:  # nothing comparable recorded, or the data is not at hand
            lines.append(f"{condition.name} is defined, not yet run ({error}).")
            continue
        lines.append(sizing_sentence(size))
    return "".join(f"\n\n{line}" for line in lines)


def _caveats(records: dict[str, dict[str, Any]]) -> str:
    text = training_caveats(records)
    return f"\n\n**Caveats.**\n\n{text}" if text else ""


def _train_size(config: dict[str, Any]) -> int:
    """Training utterances of a condition's data set (per-label subsets are not sized here)."""
    return len(load_data(RunConfig.from_dict(config)).train)


def condition_record(result: ConditionResult) -> dict[str, Any]:
    report = result.report
    strategies = list(result.condition.strategies)
    layers = {s: sorted({tuple(r["mapping"]["teacher_layers"]) for r in report.runs if r["strategy"] == s})
              for s in strategies}
    coinciding = {r["strategy"]: r["same_as"] for r in report.runs if r.get("same_as")}
    return {"title": result.condition.title, "why": result.condition.why, "dataset": result.config.data.dataset,
            "per_label": result.condition.per_label, "seeds": list(result.condition.seeds),
            "config": result.config.to_dict(), "tuning": result.tuning, "teacher_test": report.teacher_test,
            "layers": {s: [list(t) for t in v] for s, v in layers.items()}, "same_as": coinciding,
            "stats": condition_stats(report.runs, strategies), "runs": report.runs, "source": result.source,
            "compare_to": result.condition.compare_to,
            "seconds": result.seconds, "grid_seconds": report.seconds, "teacher_seconds": result.teacher_seconds,
            "teachers": result.teachers,
            "training_seconds": training_seconds(report.runs, result.tuning)}


__all__ = ["Condition", "STUDY_PLANS", "study_plan", "run_study", "run_condition", "condition_stats",
           "study_markdown", "study_conclusion", "scarce_training_set", "PairedDifference"]
