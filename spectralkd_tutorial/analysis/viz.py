"""Figures: layer intensities, signatures, mappings on the intensity curve, ablation and dynamics.

Every function returns a matplotlib ``Figure`` (never calls ``plt.show``); ``save_figure`` writes it
atomically as PNG. Layer axes use the package convention: 0 = embeddings, l = block l.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ..common.io import atomic_savefig
from .selection import LayerMapping
from .spectral import SpectralProfile, half_spectrum_bins

LAYER_AXIS = "layer (0 = embeddings, l = block l)"


def save_figure(figure: Figure, path: str | os.PathLike, **kwargs) -> str:
    return str(atomic_savefig(path, figure, **kwargs))


def plot_intensity(profile: SpectralProfile | Sequence[float], *, title: str | None = None,
                   highlight: Sequence[int] = (), ax=None, color: str = "#4c72b0") -> Figure:
    """Bar chart of I_l over depth (the paper's model-wise analysis)."""
    intensities = profile.intensities if isinstance(profile, SpectralProfile) else list(profile)
    figure = ax.figure if ax is not None else plt.figure(figsize=(7, 3.2))
    ax = ax or figure.add_subplot(111)
    layers = np.arange(len(intensities))
    colors = ["#dd8452" if layer in set(highlight) else color for layer in layers]
    ax.bar(layers, intensities, color=colors)
    ax.set_xlabel(LAYER_AXIS)
    ax.set_ylabel("spectral intensity $I_l$")
    ax.set_xticks(layers)
    if title is None and isinstance(profile, SpectralProfile):
        title = f"{profile.model_name}: intensity per layer ({profile.num_samples} samples, {profile.num_tokens} tokens)"
    if title:
        ax.set_title(title, fontsize=10)
    figure.tight_layout()
    return figure


def plot_signature_heatmap(profile: SpectralProfile, *, bins: int | None = None, log: bool = True,
                           ax=None) -> Figure:
    """Layer x frequency heatmap of S_l[k] over the first C/2 bins (the paper's layer-wise view)."""
    signatures = profile.signatures.numpy()
    k = bins or half_spectrum_bins(signatures.shape[1])
    data = signatures[:, :k]
    figure = ax.figure if ax is not None else plt.figure(figsize=(7, 3.5))
    ax = ax or figure.add_subplot(111)
    image = ax.imshow(np.log10(data + 1e-12) if log else data, aspect="auto", origin="lower",
                      cmap="magma", interpolation="nearest")
    ax.set_xlabel("frequency bin k (channel axis)")
    ax.set_ylabel(LAYER_AXIS)
    figure.colorbar(image, ax=ax, label="log10 S_l[k]" if log else "S_l[k]")
    ax.set_title(f"{profile.model_name}: signature per layer (first {k} bins)", fontsize=10)
    figure.tight_layout()
    return figure


def plot_signatures_small_multiples(profile: SpectralProfile, *, bins: int | None = None, columns: int = 4) -> Figure:
    """One small plot per layer: S_l[k] over the first C/2 bins."""
    signatures = profile.signatures.numpy()
    k = bins or half_spectrum_bins(signatures.shape[1])
    rows = int(np.ceil(len(signatures) / columns))
    figure, axes = plt.subplots(rows, columns, figsize=(2.4 * columns, 1.8 * rows), sharex=True, sharey=True,
                                squeeze=False)
    for layer, ax in enumerate(axes.flat):
        if layer >= len(signatures):
            ax.axis("off")
            continue
        ax.plot(np.arange(k), signatures[layer, :k], lw=1)
        ax.set_title(f"layer {layer}", fontsize=8)
        ax.set_yscale("log")
    figure.supxlabel("frequency bin k")
    figure.supylabel("S_l[k]")
    figure.tight_layout()
    return figure


def plot_mappings(intensities: Sequence[float], mappings: Mapping[str, LayerMapping], *, title: str | None = None) -> Figure:
    """The teacher's intensity curve with each strategy's chosen layers marked, one row per strategy."""
    layers = np.arange(len(intensities))
    names = [name for name, mapping in mappings.items() if mapping.pairs]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 2.6 + 0.32 * len(names)), sharex=True,
                                         gridspec_kw={"height_ratios": [2, max(1, 0.35 * len(names))]})
    top.plot(layers, intensities, "o-", color="#4c72b0")
    top.set_ylabel("$I_l$")
    top.set_title(title or "teacher intensity and the layers each strategy aligns", fontsize=10)
    for row, name in enumerate(names):
        chosen = mappings[name].teacher_layers
        bottom.scatter(chosen, [row] * len(chosen), s=40, marker="s")
    bottom.set_yticks(range(len(names)))
    bottom.set_yticklabels(names, fontsize=8)
    bottom.set_xticks(layers)
    bottom.set_xlabel(LAYER_AXIS)
    bottom.set_ylim(-0.7, len(names) - 0.3)
    bottom.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    return figure


def plot_ablation(summary: Sequence[Mapping], *, metric: str = "in_scope_accuracy", teacher_value: float | None = None,
                  title: str | None = None) -> Figure:
    """Bar chart with error bars: mean +/- std of ``metric`` per strategy (rows from experiment.summarise)."""
    names = [row["strategy"] for row in summary]
    means = np.array([row[f"{metric}_mean"] for row in summary]) * 100
    stds = np.array([row[f"{metric}_std"] for row in summary]) * 100
    figure, ax = plt.subplots(figsize=(7, 3.3))
    colors = ["#dd8452" if name.startswith("spectral") else "#4c72b0" for name in names]
    ax.bar(names, means, yerr=stds, capsize=4, color=colors)
    if teacher_value is not None:
        ax.axhline(teacher_value * 100, color="k", ls="--", lw=1, label="teacher")
        ax.legend(loc="lower right", fontsize=8)
    low = float(np.min(means - stds))
    high = max(float(np.max(means + stds)), teacher_value * 100 if teacher_value is not None else 0)
    ax.set_ylim(max(0.0, low - 0.15 * (high - low + 1)), high + 0.1 * (high - low + 1))
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%)")
    ax.set_title(title or "students by layer-selection strategy (mean ± std over seeds; y-axis zoomed)", fontsize=10)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    figure.tight_layout()
    return figure


def plot_dynamics(teacher_intensities: Sequence[float], student_curves: Mapping[str, Sequence[Sequence[float]]],
                  *, title: str | None = None) -> Figure:
    """Teacher vs student intensity profiles, before (dashed) and after (solid) distillation.

    ``student_curves[name] = [intensities_before, intensities_after]``; student depth is rescaled
    to the teacher's so that profiles of different depths share one axis.
    """
    figure, ax = plt.subplots(figsize=(7, 3.4))
    depth = len(teacher_intensities) - 1
    ax.plot(np.arange(depth + 1), teacher_intensities, "k-o", lw=2, label="teacher")
    for i, (name, (before, after)) in enumerate(student_curves.items()):
        positions = np.linspace(0, depth, len(after))
        color = f"C{i % 10}"
        ax.plot(positions, before, "--", color=color, alpha=0.6)
        ax.plot(positions, after, "-o", color=color, ms=3, label=name)
    return finish_curves(
        figure, ax, xlabel="relative depth (teacher layer index; students rescaled)", ylabel="$I_l$",
        title=title or "distillation dynamics: student profiles before (dashed) and after (solid)",
    )


def finish_curves(figure: Figure, ax, *, xlabel: str, ylabel: str, title: str) -> Figure:
    """The finish of a plot with one curve per strategy or student: axis labels, title, a two-column
    legend, tight layout."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    return figure


def plot_forest(rows: Sequence[tuple[str, float, float, float]], *, xlabel: str = "difference") -> Figure:
    """A forest plot: one row per (label, mean, low, high), in points (x 100), with a line at 0.

    Spectral strategies are drawn in orange; an interval that misses 0 is drawn solid, one that
    crosses 0 hollow.
    """
    return plot_forest_panels({"": rows}, xlabel=xlabel)


def plot_forest_panels(panels: Mapping[str, Sequence[tuple[str, float, float, float]]], *,
                       xlabel: str = "difference") -> Figure:
    """One forest panel per group (e.g. per condition of a study), each with its own x-axis, so that a
    condition whose differences are tenths of a point stays readable beside one where they are tens."""
    panels = {name: list(rows) for name, rows in panels.items() if rows}
    sizes = [max(1, len(rows)) for rows in panels.values()] or [1]
    figure, axes = plt.subplots(len(sizes), 1, figsize=(7.0, 0.8 + 0.28 * sum(sizes) + 0.45 * len(sizes)),
                                gridspec_kw={"height_ratios": sizes}, squeeze=False)
    for ax, (name, rows) in zip(axes[:, 0], panels.items()):
        _draw_forest(ax, rows)
        if name:
            ax.set_title(name, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel(xlabel)
    figure.suptitle("paired differences to logits-only KD, 95% intervals over seeds", fontsize=10)
    figure.tight_layout()
    return figure


def _draw_forest(ax, rows: Sequence[tuple[str, float, float, float]]) -> None:
    for y, (label, mean, low, high) in enumerate(reversed(rows)):
        color = "tab:orange" if "spectral" in label else "tab:blue"
        significant = not (np.isnan(low) or low <= 0 <= high)
        if not np.isnan(low):
            ax.plot([100 * low, 100 * high], [y, y], color=color, lw=1.6)
        ax.plot([100 * mean], [y], "o", color=color, mfc=color if significant else "white")
    ax.axvline(0.0, color="0.3", lw=0.8, ls="--")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r[0] for r in reversed(rows)], fontsize=8)
    ax.set_ylim(-0.6, len(rows) - 0.4)


def plot_two_axes(hidden: np.ndarray, *, token: int = 0, channel: int = 0, figsize=(11.0, 5.2)) -> Figure:
    """The two FFT axes of SpectralKD on one ``(tokens, channels)`` hidden state.

    Top: choosing layers — token ``token``'s row, FFT over the **channels** (``|F[k]|``, k = cycles
    across the H channels, divided by H as the profiler does). Bottom: aligning — channel
    ``channel``'s column, ``rfft`` over the **tokens** (``norm="ortho"``, as the loss does).
    """
    x = np.asarray(hidden, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"hidden must be (tokens, channels), got shape {x.shape}")
    tokens, width = x.shape
    row = np.abs(np.fft.fft(x[token])) / width
    column = np.abs(np.fft.rfft(x[:, channel], norm="ortho"))
    fig, axes = plt.subplots(2, 2, figsize=figsize, gridspec_kw={"width_ratios": [1.3, 1]})
    for ax, (kind, index) in zip(axes[:, 0], (("row", token), ("column", channel))):
        ax.imshow(x, aspect="auto", cmap="RdBu_r", interpolation="nearest")
        box = ((-0.5, index - 0.5), width, 1) if kind == "row" else ((index - 0.5, -0.5), 1, tokens)
        ax.add_patch(plt.Rectangle(*box, fill=False, edgecolor="black", linewidth=2))
        ax.set_xlabel("channel h")
        ax.set_ylabel("token position n")
    axes[0, 0].set_title(f"choosing layers: token {token}'s row, FFT over the channels", fontsize=10)
    axes[1, 0].set_title(f"aligning: channel {channel}'s column, rfft over the tokens", fontsize=10)
    axes[0, 1].bar(np.arange(width // 2 + 1), row[: width // 2 + 1], color="C0")
    axes[0, 1].set_xlabel("k: cycles across the H channels (the profile's bins)")
    axes[0, 1].set_ylabel("|F[k]| / H")
    axes[1, 1].bar(np.arange(len(column)), column, color="C1")
    axes[1, 1].set_xlabel("k: cycles across the N token positions (the loss's columns)")
    axes[1, 1].set_ylabel("|F[k]| (ortho)")
    fig.tight_layout()
    return fig
