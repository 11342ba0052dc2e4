"""Chapter 5's figures: the accuracy-vs-speed plot and the layer-choice figure (its model card is
``model_card.end_to_end_card_markdown``).

Both read plain data (``summary.json``, :class:`LayerChoice`), so a finished run can be reported
again without loading a model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...analysis.selection import mapping_from_pairs

if TYPE_CHECKING:
    from .outcomes import LayerChoice

__all__ = ["plot_tradeoff", "mapping_figure"]


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
