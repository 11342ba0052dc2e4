"""The honest ablation: layer-selection strategies x seeds, one table, with error bars.

Every student in the grid starts from the same initialisation (the teacher blocks chosen by
``student.init``, DistilBERT-style) and sees the same data order for a given seed, so only the
alignment differs. Per run the student is trained with

    L = (1 - alpha) CE + alpha T^2 KL(teacher_T || student_T) + beta L_spec(mapping)

where ``mapping`` comes from the strategy (``none``: no feature term, logits-only KD). Where two
strategies choose the same layer pairs, that mapping is trained once per seed and reported under
both names (``same_as``). ``results.json`` keeps every run ever finished in the directory (runs are
only added) and is written after each one; a partly finished grid resumes where it stopped; the
table and plots show the runs the current call asked for.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

from ..config.sections import RunConfig
from ..common.distributed import is_main_process
from ..engine.run_store import RunStore
from ..engine.teacher_cache import TeacherCache
from ..data import IntentDataset
from ..common.io import atomic_write_text
from ..common.metrics import headline
from ..models.loading import count_parameters, num_blocks
from ..analysis.selection import SPECTRAL_STRATEGIES, LayerMapping, all_mappings, get_strategy, select_layers
from ..analysis.spectral import SpectralProfile
from ..analysis.stats import PRACTICAL_THRESHOLD, pair_by_seed, paired_difference
from .steps import (TeacherResult, build_student, build_teacher_cache, check_out_is_not_teacher, check_student,
    data_settings, distil_student, load_data, teacher_profile, train_teacher)

METRICS = ("in_scope_accuracy", "oos_recall", "overall_accuracy", "accuracy", "macro_f1")
PUBLISHED_FILES = ("results.md", "results.json", "ablation.png", "dynamics.png", "mappings.png",
                   "teacher_intensity.png", "teacher_intensity.json")


@dataclass
class ExperimentReport:
    """What a grid call produced: the runs it asked for (``results.json`` keeps every run of the
    directory), the summary rows, the table and the verdict."""

    runs: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    table_markdown: str
    conclusion: str
    teacher_test: dict[str, float]
    directory: Path
    seconds: float


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: Sequence[dict[str, Any]], teacher_metrics: dict[str, float],
              strategies: Sequence[str]) -> list[dict[str, Any]]:
    """Mean and std over seeds per strategy; retained = student / teacher headline accuracy."""
    rows = []
    teacher_headline = headline(teacher_metrics)
    for strategy in strategies:
        chosen = [r for r in runs if r["strategy"] == strategy]
        if not chosen:
            continue
        row: dict[str, Any] = {"strategy": strategy, "seeds": len(chosen),
                               "teacher_layers": sorted({tuple(r["mapping"]["teacher_layers"]) for r in chosen})}
        for metric in METRICS:
            if metric in chosen[0]["test"]:
                row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std([r["test"][metric] for r in chosen])
        retained = [headline(r["test"]) / teacher_headline for r in chosen]
        row["retained_mean"], row["retained_std"] = _mean_std(retained)
        row["seconds_mean"] = statistics.fmean(r["seconds"] for r in chosen)
        rows.append(row)
    return rows


def _pct(mean: float, std: float) -> str:
    return "n/a" if math.isnan(mean) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def conclusion(rows: Sequence[dict[str, Any]], runs: Sequence[dict[str, Any]]) -> str:
    """A plain-language verdict that follows the numbers: the best spectral strategy against the best other
    one, paired by seed (``stats.paired_difference``, the rule chapter 6's study uses; one comparison, so
    nothing to adjust)."""
    key = "in_scope_accuracy_mean" if "in_scope_accuracy_mean" in rows[0] else "accuracy_mean"
    metric = key[: -len("_mean")]
    spectral = [r for r in rows if r["strategy"] in SPECTRAL_STRATEGIES]
    others = [r for r in rows if r["strategy"] not in SPECTRAL_STRATEGIES]
    best = max(rows, key=lambda r: r[key])
    text = f"Best mean {metric.replace('_', ' ')}: `{best['strategy']}` ({100 * best[key]:.2f}%)."
    if not spectral or not others:
        return text
    best_spectral = max(spectral, key=lambda r: r[key])["strategy"]
    best_other = max(others, key=lambda r: r[key])["strategy"]
    diff = paired_difference(*pair_by_seed(runs, best_spectral, best_other, metric))
    interval = (f"paired over {diff.n} seeds, 95% CI [{100 * diff.low:+.2f}, {100 * diff.high:+.2f}]"
                if diff.n > 1 else "one seed: no interval")
    small = f", below the {100 * PRACTICAL_THRESHOLD:g}-point practical threshold" if diff.verdict.endswith("point") else ""
    if diff.n < 2:
        verdict = (f"One seed cannot tell whether spectral selection (`{best_spectral}`) beats the best baseline "
                   f"(`{best_other}`): difference {100 * diff.mean:+.2f} points, but with a single seed the "
                   "seed-to-seed noise is unknown. Run at least 3 seeds (e.g. --seeds 0 1 2) to decide.")
    elif diff.verdict.startswith("helps"):
        verdict = (f"Spectral selection (`{best_spectral}`) beats the best baseline (`{best_other}`) by "
                   f"{100 * diff.mean:.2f} points ({interval}){small}.")
    elif diff.verdict.startswith("hurts"):
        verdict = (f"Spectral selection does NOT beat the baselines: the best baseline (`{best_other}`) is ahead of "
                   f"`{best_spectral}` by {100 * -diff.mean:.2f} points ({interval}){small}.")
    else:
        verdict = (f"Spectral selection (`{best_spectral}`) and the best baseline (`{best_other}`) are within seed "
                   f"noise: paired difference {100 * diff.mean:+.2f} points ({interval}). On this setup the layer "
                   "choice does not matter much.")
    return f"{text} {verdict}"


def markdown_table(rows: Sequence[dict[str, Any]], teacher_metrics: dict[str, float], *,
                   title: str | None = None) -> str:
    oos = "in_scope_accuracy_mean" in rows[0]
    if oos:
        header = "| strategy | teacher layers | in-scope acc. (%) | OOS recall (%) | overall acc. (%) | retained (%) | seeds |"
        teacher_row = (f"| teacher | all | {100 * teacher_metrics['in_scope_accuracy']:.2f} | "
                       f"{100 * teacher_metrics['oos_recall']:.2f} | {100 * teacher_metrics['overall_accuracy']:.2f} | 100 | - |")
    else:
        header = "| strategy | teacher layers | accuracy (%) | macro-F1 (%) | retained (%) | seeds |"
        teacher_row = (f"| teacher | all | {100 * teacher_metrics['accuracy']:.2f} | "
                       f"{100 * teacher_metrics['macro_f1']:.2f} | 100 | - |")
    lines = [title or "", "", header, "|" + "---|" * (header.count("|") - 1), teacher_row] if title else \
        [header, "|" + "---|" * (header.count("|") - 1), teacher_row]
    for r in rows:
        layers = " / ".join(",".join(map(str, t)) for t in r["teacher_layers"]) or "none (logits only)"
        if oos:
            lines.append(f"| {r['strategy']} | {layers} | {_pct(r['in_scope_accuracy_mean'], r['in_scope_accuracy_std'])} | "
                         f"{_pct(r['oos_recall_mean'], r['oos_recall_std'])} | "
                         f"{_pct(r['overall_accuracy_mean'], r['overall_accuracy_std'])} | "
                         f"{_pct(r['retained_mean'], r['retained_std'])} | {r['seeds']} |")
        else:
            lines.append(f"| {r['strategy']} | {layers} | {_pct(r['accuracy_mean'], r['accuracy_std'])} | "
                         f"{_pct(r['macro_f1_mean'], r['macro_f1_std'])} | {_pct(r['retained_mean'], r['retained_std'])} | "
                         f"{r['seeds']} |")
    return "\n".join(lines)


def grid_settings(config: RunConfig, teacher_fingerprint: str) -> dict[str, Any]:
    """What every run of a grid shares; strategies and seeds are what varies (not fingerprinted). The
    teacher cache's precision rounds the teacher's states the students learn from: a dtype other than
    the default float16 is part of the fingerprint (float16 is left out, so older runs keep theirs)."""
    settings = {"data": data_settings(config.data), "teacher": teacher_fingerprint, "student": asdict(config.student),
                "loss": asdict(config.loss), "dynamics_samples": config.grid.dynamics_samples,
                "mixed_precision": config.runtime.mixed_precision}
    if config.runtime.teacher_cache != "off" and config.runtime.teacher_cache_dtype != "float16":
        settings["teacher_cache_dtype"] = config.runtime.teacher_cache_dtype
    return settings


def run_experiment(config: RunConfig, out_dir: str | os.PathLike, *, dataset: IntentDataset | None = None,
                   overwrite: bool = False, keep_checkpoints: bool = False) -> ExperimentReport:
    """Run (or resume) the grid ``config.grid``; writes results.json, results.md and plots into ``out_dir``."""
    start = time.perf_counter()
    out = Path(out_dir)
    check_student(config)
    check_out_is_not_teacher(config, out)
    dataset = dataset or load_data(config)
    teacher = train_teacher(config, out / "teacher", dataset=dataset, overwrite=overwrite)
    with RunStore(out, kind="experiment", settings=grid_settings(config, teacher.fingerprint),
                  overwrite=overwrite) as store:
        profile = teacher_profile(store, teacher, dataset, config)
        grid = Grid(config, store, teacher, dataset, profile, keep_checkpoints)
        grid.run()
        selected = [r for r in grid.runs if r["strategy"] in config.grid.strategies and r["seed"] in config.grid.seeds]
        rows = summarise(selected, teacher.test, config.grid.strategies)
        table, verdict = markdown_table(rows, teacher.test), conclusion(rows, selected)
        store.write_json("results.json", {**grid.common(), "runs": grid.runs, "summary": rows, "table_markdown": table,
                                          "conclusion": verdict, "seconds_total_this_call": time.perf_counter() - start})
        if is_main_process():
            atomic_write_text(store.path("results.md"), f"{grid.header()}\n\n{table}\n\n{verdict}\n")
            write_grid_figures(store, rows, selected, teacher.test, profile, dataset, config, grid.mappings)
    return ExperimentReport(selected, rows, table, verdict, teacher.test, out, time.perf_counter() - start)


def recorded_config(config: RunConfig, out_dir: str | os.PathLike) -> RunConfig:
    """The config to write beside a grid: this call's, with the strategies and seeds of every run that
    ``results.json`` holds (earlier calls' too), so that ``--config OUT/config.toml`` covers them all."""
    from ..common.io import read_json

    try:
        runs = read_json(Path(out_dir) / "results.json").get("runs", [])
        strategies = list(dict.fromkeys([*(r["strategy"] for r in runs), *config.grid.strategies]))
        seeds = sorted({*(int(r["seed"]) for r in runs), *config.grid.seeds})
    except (FileNotFoundError, ValueError, AttributeError, KeyError, TypeError):
        return config
    return config.replace(**{"grid.strategies": strategies, "grid.seeds": seeds})


def previous_runs(store: RunStore) -> list[dict[str, Any]]:
    """The finished runs of earlier calls: ``results.json``'s list or, when that file is truncated or
    corrupt, the runs rebuilt from their own directories (``runs/*/metrics.json``), so none is lost."""
    if not store.exists("results.json"):
        return []
    try:
        return list(store.read_json("results.json").get("runs", []))
    except (ValueError, AttributeError):
        runs = runs_on_disk(store)
        print(f"note: {store.path('results.json')} is truncated or not valid JSON; rebuilt it from the {len(runs)} "
              f"finished run(s) under {store.path('runs')}", file=sys.stderr, flush=True)
        return runs


def runs_on_disk(store: RunStore) -> list[dict[str, Any]]:
    """The grid's finished runs as recorded in their directories (those of this grid's fingerprint)."""
    from ..common.io import read_json

    runs = []
    for folder in sorted(store.path("runs").glob("*-seed*")):
        try:
            settings, metrics = read_json(folder / "run.json")["settings"], read_json(folder / "metrics.json")
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            continue  # unfinished, or not this tool's: trained again
        if settings.get("grid") != store.fingerprint:
            continue
        pairs = [list(p) for p in settings["pairs"]]
        runs.append({"strategy": folder.name.rsplit("-seed", 1)[0], "seed": settings["seed"],
                     "mapping": {"pairs": pairs, "teacher_layers": [t for _, t in pairs]},
                     "test": metrics["metrics"]["test"], "validation": metrics["metrics"]["validation"],
                     "history": metrics["history"], "dynamics": metrics["dynamics"], "seconds": metrics["seconds"]})
    return runs


class Grid:
    """The strategies x seeds of one call, sharing one initial student and one teacher cache."""

    def __init__(self, config: RunConfig, store: RunStore, teacher: TeacherResult, dataset: IntentDataset,
                 profile: SpectralProfile, keep_checkpoints: bool) -> None:
        self.config, self.store, self.teacher, self.dataset, self.profile = config, store, teacher, dataset, profile
        self.keep_checkpoints = keep_checkpoints
        self.total = num_blocks(teacher.model)
        self.initial_student, _, self.init_mapping = build_student(config.student, teacher.model, profile.intensities,
                                                                   rms=profile.rms)
        self.k = config.student.num_layers
        self.mappings = all_mappings(self.k, self.total, profile.intensities, config.grid.strategies, seed=0,
                                     rms=profile.rms)
        self.runs: list[dict[str, Any]] = previous_runs(store)
        self.cache: TeacherCache | None = None
        self.cache_ready = False

    def mapping(self, strategy: str, seed: int) -> LayerMapping:
        rule = get_strategy(strategy)
        if rule.seeded:  # drawn again for every seed, given only the scores it ranks by
            return select_layers(strategy, self.k, self.total, self.profile.intensities if rule.needs_intensities else None,
                                 seed=seed, rms=self.profile.rms if rule.needs_rms else None)
        return self.mappings[strategy]

    @property
    def any_seeded(self) -> bool:
        """Whether a strategy of the grid draws its layers per seed (then any teacher layer may be needed)."""
        return any(get_strategy(s).seeded for s in self.config.grid.strategies)

    def run(self) -> None:
        plan = [(s, seed) for seed in self.config.grid.seeds for s in self.config.grid.strategies]
        for index, (strategy, seed) in enumerate(plan):
            if any(r["strategy"] == strategy and r["seed"] == seed for r in self.runs):
                continue
            mapping = self.mapping(strategy, seed)
            twin = next((r for r in self.runs if r["seed"] == seed and not r.get("same_as")
                         and r["mapping"]["pairs"] == [list(p) for p in mapping.pairs]), None)
            record = ({**copy.deepcopy(twin), "strategy": strategy, "same_as": twin["strategy"]} if twin
                      else self.train(strategy, seed, mapping, f"[{index + 1}/{len(plan)}] {strategy} seed {seed}"))
            self.runs.append(record)
            self.store.write_json("results.json", {**self.common(), "runs": self.runs})
            note = f" (same layers as {twin['strategy']}: not trained again)" if twin else f" ({record['seconds']:.1f} s)"
            print(f"  {strategy:14s} seed {seed}: test {headline(record['test']):.4f}{note}", flush=True)

    def train(self, strategy: str, seed: int, mapping: LayerMapping, description: str) -> dict[str, Any]:
        if not self.cache_ready:  # built once (or reused from the directory); None: the teacher runs online
            needed = sorted({t for m in self.mappings.values() for t in m.teacher_layers}
                            | ({*range(1, self.total + 1)} if self.any_seeded else set()))
            self.cache = build_teacher_cache(self.teacher.model, self.teacher.tokenizer, self.dataset, needed, self.config,
                                             directory=self.store.root,
                                             source=f"{self.teacher.fingerprint}:{self.config.data.max_length}")
            self.cache_ready = True
        student = copy.deepcopy(self.initial_student)
        run_store = self.store.child(f"runs/{strategy}-seed{seed}", kind="student",
                                     settings={"grid": self.store.fingerprint, "seed": seed,
                                               "pairs": [list(p) for p in mapping.pairs]})
        with run_store:
            result = distil_student(self.config, self.teacher.model, self.teacher.tokenizer, self.dataset, student,
                                    mapping, seed=seed, store=run_store, cache=self.cache, description=description)
            if not self.keep_checkpoints:
                run_store.remove_checkpoint()
        return {"strategy": strategy, "seed": seed,
                "mapping": {"pairs": [list(p) for p in mapping.pairs], "teacher_layers": mapping.teacher_layers},
                "test": result.metrics["test"], "validation": result.metrics["validation"],
                "history": result.history, "dynamics": result.dynamics, "seconds": result.seconds}

    def common(self) -> dict[str, Any]:
        return {"fingerprint": self.store.fingerprint, "preset": self.config.name, "config": self.config.to_dict(),
                "dataset": self.dataset.summary(),
                "teacher": {"test": self.teacher.test, "parameters": count_parameters(self.teacher.model),
                            "layers": self.total, "intensities": self.profile.intensities},
                "student_init": self.init_mapping.to_dict() if self.init_mapping else {"random": self.config.student.model},
                "student_parameters": count_parameters(self.initial_student),
                "layer_convention": self.profile.convention}

    def header(self) -> str:
        c, d = self.config, self.dataset
        start = (f"initialised from teacher blocks {self.init_mapping.teacher_layers}" if self.init_mapping
                 else f"randomly initialised ({c.student.model})")
        return (f"Preset `{c.name}`: teacher {c.teacher.finetuned or c.teacher.model} ({self.total} blocks) fine-tuned "
                f"on {d.name}{' ' + d.variant if d.variant else ''}; students of {self.k} blocks {start}; "
                f"alpha={c.loss.alpha}, T={c.loss.temperature}, "
                f"beta={c.loss.beta}, feature loss `{c.loss.feature_loss}`, {c.student.train.epochs} epochs, seeds "
                f"{list(c.grid.seeds)}. Test split: {d.name} test ({len(d.test)} utterances). Mean ± std over seeds.")


def write_grid_figures(store: RunStore, rows: Sequence[dict[str, Any]], runs: Sequence[dict[str, Any]],
                       teacher_test: dict[str, float], profile: SpectralProfile, dataset: IntentDataset,
                       config: RunConfig, mappings: dict[str, LayerMapping]) -> None:
    """ablation.png (mean ± std per strategy), mappings.png, dynamics.png (before/after intensities)."""
    import matplotlib.pyplot as plt

    from ..analysis.viz import plot_ablation, plot_dynamics, plot_mappings, save_figure

    metric = "in_scope_accuracy" if dataset.oos_label is not None else "accuracy"
    figures = {"ablation.png": plot_ablation(rows, metric=metric, teacher_value=teacher_test[metric]),
               "mappings.png": plot_mappings(profile.intensities, mappings)}
    curves = {}
    for strategy in config.grid.strategies:
        run = next((r for r in runs if r["strategy"] == strategy and len(r["dynamics"]) >= 2), None)
        if run:
            curves[strategy] = [run["dynamics"][0]["intensities"], run["dynamics"][-1]["intensities"]]
    if curves:
        figures["dynamics.png"] = plot_dynamics(profile.intensities, curves)
    for name, figure in figures.items():
        save_figure(figure, store.path(name))
        plt.close(figure)
