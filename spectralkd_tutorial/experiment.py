"""The honest ablation: layer-selection strategies x seeds, one table, with error bars.

Every student in the grid starts from the same initialisation (the teacher blocks chosen by
``student_init``, DistilBERT-style), so only the alignment differs. Per run the student is trained
with

    L = (1 - alpha) CE + alpha T^2 KL(teacher_T || student_T) + beta L_spec(mapping)

where ``mapping`` comes from the strategy (``none``: no feature term, logits-only KD). Results are
written after every run (``results.json``); a partly finished grid resumes where it stopped.
"""

from __future__ import annotations

import copy
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch

from .data import IntentDataset
from .distill import TeacherCache, encode_split, evaluate, fit
from .io import atomic_write_json, atomic_write_text, read_json
from .losses import DistillationLossConfig
from .metrics import headline
from .models import count_parameters, num_blocks, student_from_teacher
from .pipeline import (analysis_texts, analyze_model, load_preset_data, student_train_config, train_teacher,
                       write_profile)
from .presets import Preset, get_preset
from .selection import SPECTRAL_STRATEGIES, all_mappings, select_layers
from .spectral import SpectralProfile

METRICS = ("in_scope_accuracy", "oos_recall", "overall_accuracy", "accuracy", "macro_f1")


@dataclass
class ExperimentConfig:
    """What the grid varies (strategies, seeds) and what it holds fixed (everything else)."""

    preset: str
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    student_layers: int
    student_init: str
    epochs: float
    feature_loss: str = "spectral"
    alpha: float = 0.5
    temperature: float = 2.0
    beta: float = 1.0
    teacher_dir: str | None = None
    dynamics_samples: int = 256
    keep_checkpoints: bool = False
    train_overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_preset(cls, preset: Preset | str, *, strategies: Sequence[str] | None = None,
                    seeds: Sequence[int] | None = None, epochs: float | None = None,
                    teacher_dir: str | None = None, **kwargs: Any) -> "ExperimentConfig":
        preset = get_preset(preset) if isinstance(preset, str) else preset
        return cls(
            preset=preset.name,
            strategies=tuple(strategies or preset.strategies),
            seeds=tuple(seeds if seeds is not None else preset.seeds),
            student_layers=preset.student_layers,
            student_init=preset.student_init,
            epochs=epochs if epochs is not None else preset.student_epochs,
            alpha=preset.alpha,
            temperature=preset.temperature,
            beta=preset.beta,
            teacher_dir=teacher_dir,
            dynamics_samples=min(256, preset.analysis_samples),
            **kwargs,
        )

    def loss_config(self, strategy: str) -> DistillationLossConfig:
        return DistillationLossConfig(alpha=self.alpha, temperature=self.temperature, beta=self.beta,
                                      feature_loss="none" if strategy == "none" else self.feature_loss)

    def fingerprint(self) -> dict[str, Any]:
        """Settings that must match for a finished run to be reused when resuming."""
        data = asdict(self)
        for key in ("strategies", "seeds", "keep_checkpoints", "teacher_dir"):
            data.pop(key)
        return data


def load_teacher_dir(path: str | os.PathLike):
    """``(model, tokenizer)`` from a teacher directory (``DIR`` or ``DIR/model``)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    root = Path(path)
    model_dir = root / "model" if (root / "model" / "config.json").exists() else root
    if not (model_dir / "config.json").exists():
        raise FileNotFoundError(
            f"no fine-tuned teacher in {root} (expected {root}/model/config.json); run `spectralkd teacher --out {root}`"
        )
    return AutoModelForSequenceClassification.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir)


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


def conclusion(rows: Sequence[dict[str, Any]]) -> str:
    """A plain-language verdict that follows the numbers (spectral vs the best other strategy)."""
    key = "in_scope_accuracy_mean" if "in_scope_accuracy_mean" in rows[0] else "accuracy_mean"
    std_key = key.replace("_mean", "_std")
    spectral = [r for r in rows if r["strategy"] in SPECTRAL_STRATEGIES]
    others = [r for r in rows if r["strategy"] not in SPECTRAL_STRATEGIES]
    best = max(rows, key=lambda r: r[key])
    text = f"Best mean {key[:-5].replace('_', ' ')}: `{best['strategy']}` ({100 * best[key]:.2f}%)."
    if not spectral or not others:
        return text
    best_spectral = max(spectral, key=lambda r: r[key])
    best_other = max(others, key=lambda r: r[key])
    gap = best_spectral[key] - best_other[key]
    noise = max(best_spectral[std_key], best_other[std_key])
    if gap > noise and gap > 0:
        verdict = (f"Spectral selection (`{best_spectral['strategy']}`) beats the best baseline "
                   f"(`{best_other['strategy']}`) by {100 * gap:.2f} points, more than the seed std ({100 * noise:.2f}).")
    elif gap < -noise:
        verdict = (f"Spectral selection does NOT beat the baselines: the best baseline (`{best_other['strategy']}`) "
                   f"is ahead of `{best_spectral['strategy']}` by {100 * -gap:.2f} points (seed std {100 * noise:.2f}).")
    else:
        verdict = (f"Spectral selection (`{best_spectral['strategy']}`) and the best baseline "
                   f"(`{best_other['strategy']}`) are within seed noise: difference {100 * gap:+.2f} points, "
                   f"seed std up to {100 * noise:.2f}. On this setup the layer choice does not matter much.")
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


def run_experiment(config: ExperimentConfig, out_dir: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
                   dataset: IntentDataset | None = None, progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the grid; writes results.json, results.md, and plots into ``out_dir``."""
    import matplotlib.pyplot as plt

    from .viz import plot_ablation, plot_dynamics, plot_mappings, save_figure

    start = time.perf_counter()
    preset = get_preset(config.preset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dataset = dataset or load_preset_data(preset, data_dir)

    # 1. the teacher (fine-tuned once; reused)
    if config.teacher_dir:
        teacher, tokenizer = load_teacher_dir(config.teacher_dir)
    else:
        teacher, tokenizer, _ = train_teacher(preset, out / "teacher", dataset=dataset, progress=progress)
    teacher.eval()
    teacher_test = evaluate(teacher, tokenizer, dataset, "test", max_length=preset.max_length)

    # 2. its spectral profile
    profile_path = out / "teacher_intensity.json"
    if profile_path.exists():
        profile = SpectralProfile.from_dict(read_json(profile_path))
    else:
        texts = analysis_texts(dataset, preset.analysis_samples)
        profile = analyze_model(teacher, tokenizer, texts, batch_size=preset.analysis_batch_size,
                                max_length=preset.max_length, model_name="teacher (fine-tuned)", progress=progress)
        write_profile(profile, out, stem="teacher_intensity")

    # 3. the mappings, and one shared initial student
    total = num_blocks(teacher)
    init_mapping = select_layers(config.student_init, config.student_layers, total, profile.intensities)
    initial_student = student_from_teacher(teacher, init_mapping.teacher_layers)
    initial_state = copy.deepcopy(initial_student.state_dict())
    mappings = all_mappings(config.student_layers, total, profile.intensities, config.strategies, seed=0)
    figure = plot_mappings(profile.intensities, mappings)
    save_figure(figure, out / "mappings.png")
    plt.close(figure)

    # 4. the grid (resumable); the frozen teacher's outputs are computed once for all runs
    needed = sorted({t for m in mappings.values() for t in m.teacher_layers} |
                    ({*range(1, total + 1)} if "random" in config.strategies else set()))
    cache: TeacherCache | None = None
    results_path = out / "results.json"
    previous = read_json(results_path) if results_path.exists() else {}
    if previous and previous.get("fingerprint") != config.fingerprint():
        raise ValueError(
            f"{results_path} was written with other settings; use another --out or delete it. "
            f"old: {previous.get('fingerprint')} new: {config.fingerprint()}"
        )
    if previous and previous.get("teacher", {}).get("test") not in (None, teacher_test):
        raise ValueError(
            f"{results_path} holds runs distilled from another teacher (its test metrics differ); "
            "use another --out or delete the file"
        )
    runs: list[dict[str, Any]] = [r for r in previous.get("runs", [])
                                  if r["strategy"] in config.strategies and r["seed"] in config.seeds]
    done = {(r["strategy"], r["seed"]) for r in runs}
    grid = [(s, seed) for seed in config.seeds for s in config.strategies]
    common = {
        "fingerprint": config.fingerprint(), "preset": preset.name, "dataset": dataset.summary(),
        "teacher": {"test": teacher_test, "parameters": count_parameters(teacher), "layers": total,
                    "intensities": profile.intensities},
        "student_init": init_mapping.to_dict(), "student_parameters": count_parameters(initial_student),
        "layer_convention": profile.convention,
    }
    for index, (strategy, seed) in enumerate(grid):
        if (strategy, seed) in done:
            continue
        mapping = (select_layers("random", config.student_layers, total, seed=seed) if strategy == "random"
                   else mappings[strategy])
        if cache is None:
            encoded_train = encode_split(tokenizer, dataset.train, preset.max_length)
            cache = TeacherCache.build(teacher, encoded_train, needed, tokenizer.pad_token_id, progress=progress)
        student = copy.deepcopy(initial_student)
        student.load_state_dict(initial_state)
        torch.manual_seed(seed)
        run_dir = out / "runs" / f"{strategy}-seed{seed}"
        train_config = student_train_config(preset, seed=seed, epochs=config.epochs, progress=progress,
                                            dynamics_samples=config.dynamics_samples, **config.train_overrides)
        result = fit(student, tokenizer, dataset, train_config, teacher=teacher, mapping=mapping,
                     loss_config=config.loss_config(strategy), output_dir=run_dir, save_model=False,
                     description=f"[{index + 1}/{len(grid)}] {strategy} seed {seed}", teacher_cache=cache)
        runs.append({
            "strategy": strategy, "seed": seed, "mapping": {"pairs": [list(p) for p in mapping.pairs],
                                                            "teacher_layers": mapping.teacher_layers},
            "test": result.metrics["test"], "validation": result.metrics["validation"],
            "history": result.history, "dynamics": result.dynamics, "seconds": result.seconds,
        })
        if not config.keep_checkpoints:
            (run_dir / "checkpoint.pt").unlink(missing_ok=True)
        atomic_write_json(results_path, {**common, "runs": runs})
        print(f"  {strategy:14s} seed {seed}: test {headline(result.metrics['test']):.4f} "
              f"({result.seconds:.1f} s)", flush=True)

    # 5. table, conclusion, plots
    rows = summarise(runs, teacher_test, config.strategies)
    table = markdown_table(rows, teacher_test)
    verdict = conclusion(rows)
    report = {**common, "runs": runs, "summary": rows, "table_markdown": table, "conclusion": verdict,
              "seconds_total_this_call": time.perf_counter() - start}
    atomic_write_json(results_path, report)
    header = (f"Preset `{preset.name}`: teacher {preset.teacher} ({total} blocks) fine-tuned on {dataset.name}"
              f"{' ' + dataset.variant if dataset.variant else ''}; students of {config.student_layers} blocks initialised "
              f"from teacher blocks {init_mapping.teacher_layers}; alpha={config.alpha}, T={config.temperature}, "
              f"beta={config.beta}, feature loss `{config.feature_loss}`, {config.epochs} epochs, seeds {list(config.seeds)}. "
              f"Test split: {dataset.name} test ({len(dataset.test)} utterances). Mean ± std over seeds.")
    atomic_write_text(out / "results.md", f"{header}\n\n{table}\n\n{verdict}\n")
    metric = "in_scope_accuracy" if dataset.oos_label is not None else "accuracy"
    figure = plot_ablation(rows, metric=metric, teacher_value=teacher_test[metric])
    save_figure(figure, out / "ablation.png")
    plt.close(figure)
    curves = {}
    for strategy in config.strategies:
        run = next((r for r in runs if r["strategy"] == strategy and r["dynamics"]), None)
        if run and len(run["dynamics"]) >= 2:
            curves[strategy] = [run["dynamics"][0]["intensities"], run["dynamics"][-1]["intensities"]]
    if curves:
        figure = plot_dynamics(profile.intensities, curves)
        save_figure(figure, out / "dynamics.png")
        plt.close(figure)
    return report
