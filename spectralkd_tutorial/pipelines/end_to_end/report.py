"""Reporting for chapter 5: the model card, the accuracy-vs-speed plot, the layer-choice figure.

All of it reads plain data (``summary.json``, :class:`LayerChoice`), so a finished run can be
reported again without loading a model.
"""

from __future__ import annotations

import math
import platform
from typing import TYPE_CHECKING, Any

import torch

from ...common.device import resolve_device
from ...analysis.selection import mapping_from_pairs
from .plan import format_layers

if TYPE_CHECKING:
    from .outcomes import LayerChoice

__all__ = ["describe_device", "model_card_markdown", "plot_tradeoff", "mapping_figure", "format_parameters",
           "format_percent"]


def describe_device(device: torch.device | str | None = None) -> str:
    """A human-readable name of the device latency was measured on."""
    device = resolve_device("auto") if device is None else torch.device(device)
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine() or "CPU"
    threads = torch.get_num_threads()
    return f"CPU {cpu} ({threads} thread{'' if threads == 1 else 's'})"


def format_parameters(n: int) -> str:
    """``125_000_000`` -> ``"125.0M"``; ``41_000`` -> ``"41.0k"``."""
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def format_percent(value: float | None) -> str:
    """``0.9734`` -> ``"97.34"`` (percent, two decimals); ``None`` or NaN -> ``"n/a"``."""
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def model_card_markdown(summary: dict[str, Any]) -> str:
    """The model card: teacher vs students (accuracy, retained, parameters, latency, device) and layers."""
    teacher = summary["teacher"]
    test = teacher["metrics"]["test"]
    oos = "in_scope_accuracy" in test
    plan = summary["plan"]
    if oos:
        header = ("| model | init / layers aligned | width | in-scope acc. (%) | OOS recall (%) | overall acc. (%) "
                  "| retained (%) | parameters | latency (ms/query) | speed-up | device |")
    else:
        header = ("| model | init / layers aligned | width | accuracy (%) | macro-F1 (%) | retained (%) "
                  "| parameters | latency (ms/query) | speed-up | device |")

    def scores(metrics: dict[str, float]) -> str:
        if oos:
            return (f"{format_percent(metrics['in_scope_accuracy'])} | {format_percent(metrics['oos_recall'])} | "
                    f"{format_percent(metrics['overall_accuracy'])}")
        return f"{format_percent(metrics['accuracy'])} | {format_percent(metrics['macro_f1'])}"

    lines = [
        f"# Model card: students distilled from {teacher['name']} (preset `{summary['preset']}`)", "",
        f"Teacher `{teacher['name']}` ({teacher['blocks']} blocks x {teacher['width']}, "
        f"{format_parameters(teacher['parameters'])} parameters), fine-tuned on "
        f"{summary['test_split'].rsplit(' test', 1)[0]}. Metrics on the {summary['test_split']}, one seed. "
        "Retained = student / teacher headline accuracy (in-scope accuracy where there is an out-of-scope class, "
        "else accuracy). Latency: median "
        "milliseconds per query at batch size 1. Spectral loss: L = (1-a) CE + a T^2 KL + b L_spec; "
        "'pooled' = teacher channels average-pooled to the student width (parameter-free), "
        "'projection' = a learned linear map from student to teacher width (training only, not in the parameters).",
        "", header, "|" + "---|" * (header.count("|") - 1),
        f"| **teacher** {teacher['name']} | fine-tuned | {teacher['width']} | {scores(test)} | 100 | "
        f"{format_parameters(teacher['parameters'])} | {teacher['latency_ms']:.2f} | 1.0x | {teacher['device']} |",
    ]
    for row in summary["students"]:
        if row["init_layers"]:
            init = f"teacher blocks {format_layers(row['init_layers'])}; "
        else:
            init = f"{row['student']}; "
        aligned = "logits only" if not row["teacher_layers"] else f"{row['strategy']} {format_layers(row['teacher_layers'])}"
        lines.append(
            f"| {row['name']} ({row['label']}) | {init}{aligned} | {row['width']} | {scores(row['metrics']['test'])} | "
            f"{format_percent(row['retained'])} | {format_parameters(row['parameters'])} | {row['latency_ms']:.2f} | "
            f"{row['speedup']:.1f}x | {row['device']} |")
    if summary.get("missing_runs"):
        lines += ["", f"Not run yet: {', '.join(summary['missing_runs'])}."]
    choice = summary["layer_choice"]
    lines += ["", "## Which teacher layers?", "",
              f"Layer 0 = embedding output, layer l = output of block l (hidden_states[l]); teacher has "
              f"{choice['teacher_blocks']} blocks. Chosen by `{choice['selection']}` from the teacher's spectral "
              "intensities, next to other strategies and the blog's RoBERTa-large choice (1-9 + 21-23 for a "
              "12-layer student).", ""]
    strategies = list(next(iter(choice["by_depth"].values()))["layers"]) if choice["by_depth"] else []
    header = "| student layers | " + " | ".join(strategies) + " | blog (1-9, 21-23) |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for depth, entry in choice["by_depth"].items():
        blog = entry["blog"]
        blog_text = (f"{blog['overlap_count']} of {len(blog['blog'])} shared" if blog["comparable"]
                     else "not comparable (other depth)")
        lines.append(f"| {depth} | " + " | ".join(format_layers(entry["layers"][s]) for s in strategies)
                     + f" | {blog_text} |")
    if plan.get("notes"):
        lines += ["", f"Notes: {plan['notes']}"]
    return "\n".join(lines)


def plot_tradeoff(summary: dict[str, Any], *, metric: str | None = None):
    """Accuracy vs latency per query: the teacher and every student (marker area ~ parameters)."""
    import matplotlib.pyplot as plt

    teacher = summary["teacher"]
    metric = metric or ("in_scope_accuracy" if "in_scope_accuracy" in teacher["metrics"]["test"] else "accuracy")
    rows = [("teacher", teacher)] + [(row["name"], row) for row in summary["students"]]
    largest = max(row["parameters"] for _, row in rows)
    figure, ax = plt.subplots(figsize=(7.5, 4))
    for i, (name, row) in enumerate(rows):
        x, y = row["latency_ms"], 100 * row["metrics"]["test"][metric]
        ax.scatter([x], [y], s=40 + 400 * row["parameters"] / largest, alpha=0.6,
                   color="k" if name == "teacher" else f"C{i % 10}")
        ax.annotate(name, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"latency (ms/query, batch 1) on {summary['device']}")
    ax.set_ylabel(f"test {metric.replace('_', ' ')} (%)")
    ax.set_title("accuracy vs speed (marker area ~ parameters)", fontsize=10)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure


def mapping_figure(choice: LayerChoice, depth: int | None = None):
    """The intensity curve with every strategy's layers marked (and the blog's, when comparable)."""
    from ...analysis.viz import plot_mappings

    depth = depth or max(int(d) for d in choice.by_depth)
    entry = choice.by_depth[str(depth)]
    total = choice.teacher_blocks
    mappings = {s: mapping_from_pairs(list(enumerate(layers, 1)), depth, total, s)
                for s, layers in entry["layers"].items()}
    if entry["blog"]["comparable"]:
        mappings["blog (1-9, 21-23)"] = mapping_from_pairs(list(enumerate(entry["blog"]["blog"], 1)), depth, total,
                                                          "blog")
    return plot_mappings(choice.intensities, mappings,
                         title=f"teacher intensity and the layers a {depth}-layer student aligns "
                               f"(layer 0 = embeddings, l = block l)")
