"""Teachers of different depths (chapter 3, "A deeper model").

``load_profile`` reads a committed ``intensity.json`` (``find_asset`` finds it in ``assets/`` or,
opened alone, in the copy committed with the package), ``plot_depth_profiles`` draws several teachers on
*normalised depth* ``l / L`` (so a 6-block and a 12-block model share one axis), and
``strategy_table`` asks the selection strategies (:func:`spectralkd_tutorial.analysis.selection.select_layers`)
which blocks each profile gives a K-block student; ``StrategyTable.summary`` says, from those
mappings, where the spectral rule and ``last``/``uniform`` part ways.

Layer numbering: layer 0 is the embedding output, layer l (1..L) the output of block l.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..common.published import find_asset  # noqa: F401 (re-exported: the chapters import it from here)
from .selection import SPECTRAL_STRATEGIES, LayerMapping, select_layers
from .spectral import SpectralProfile

__all__ = ["DEPTH_STRATEGIES", "markdown_table", "StrategyTable", "find_asset", "load_profile", "normalised_depth",
           "plot_depth_profiles", "strategy_table"]



def _intensities_and_signatures(profile: SpectralProfile | Sequence[float], what: str):
    if isinstance(profile, SpectralProfile):
        return [float(v) for v in profile.intensities], profile.signatures.double().numpy(), profile.model_name
    if isinstance(profile, (str, bytes)) or not isinstance(profile, Sequence):
        raise TypeError(f"{what} must be a SpectralProfile or a sequence of per-layer intensities, "
                        f"got {type(profile).__name__}")
    values = [float(v) for v in profile]
    if not values:
        raise ValueError(f"{what} has no layers")
    return values, None, what


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None, *, digits: int = 4) -> str:
    """A GitHub-markdown table of ``rows`` (floats rounded to ``digits``)."""
    rows = list(rows)
    if not rows:
        raise ValueError("markdown_table: no rows")
    columns = list(columns) if columns is not None else list(rows[0])

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "nan" if math.isnan(value) else f"{value:.{digits}f}"
        if isinstance(value, (list, tuple)):
            return ", ".join(str(v) for v in value)
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


# the strategies whose choice depends on depth or intensity alone (random / reverse / none are left out)
DEPTH_STRATEGIES = ("uniform", "last", "first", "spectral-topk", "spectral-ends")
_BASELINES = ("last", "uniform")


def load_profile(path: str | os.PathLike) -> SpectralProfile:
    """The profile in an ``intensity.json`` written by ``spectralkd analyze`` / ``teacher`` / ``write_profile``."""
    from ..common.io import read_json

    path = Path(path)
    try:
        return SpectralProfile.from_dict(read_json(path))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def _intensities(profile: SpectralProfile | Sequence[float], what: str) -> list[float]:
    values, _, _ = _intensities_and_signatures(profile, what)
    if len(values) < 2:
        raise ValueError(f"{what} has {len(values)} layer(s): a profile holds layer 0 (embeddings) and blocks 1..L")
    return values


def normalised_depth(profile: SpectralProfile | Sequence[float]) -> np.ndarray:
    """``l / L`` for layers ``l = 0..L``: 0 = embedding output, 1 = the last block, whatever the depth."""
    values = _intensities(profile, "profile")
    return np.arange(len(values)) / (len(values) - 1)


def plot_depth_profiles(panels: Mapping[str, Mapping[str, SpectralProfile | Sequence[float] | None]], *,
                        relative: bool = True, figsize: tuple[float, float] | None = None) -> Figure:
    """Side-by-side panels (e.g. "before fine-tuning", "after fine-tuning"), one curve per teacher.

    ``panels[title][teacher]`` is a profile (or its intensities), or ``None`` where it is not
    measured (named in the panel instead of drawn). x: normalised depth ``l / L``. y: ``I_l``, or
    with ``relative`` ``I_l / max_l I_l``, so teachers of different widths (whose intensities differ
    in scale) compare by the *shape* of their curves.
    """
    if not panels:
        raise ValueError("plot_depth_profiles: no panels")
    teachers = list(dict.fromkeys(name for curves in panels.values() for name in curves))
    figure = Figure(figsize=figsize or (4.6 * len(panels), 3.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(1, len(panels), sharey=relative))
    for ax, (title, curves) in zip(axes, panels.items()):
        missing = []
        for name, profile in curves.items():
            color = f"C{teachers.index(name) % 10}"
            if profile is None:
                missing.append(name)
                continue
            values = _intensities(profile, name)
            y = np.asarray(values) / max(values) if relative else np.asarray(values)
            blocks = len(values) - 1
            ax.plot(normalised_depth(values), y, "o-", ms=4, color=color, label=f"{name} ({blocks} blocks)")
        if missing:
            ax.text(0.02, 0.02, "not measured: " + ", ".join(missing), transform=ax.transAxes, fontsize=8,
                    color="#8c8c8c", va="bottom")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("normalised depth l / L (0 = embeddings, 1 = last block)")
        ax.set_xlim(-0.03, 1.03)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8, loc="best")
    axes[0].set_ylabel("$I_l / \\max_l I_l$" if relative else "spectral intensity $I_l$")
    return figure


def _ranges(layers: Sequence[int]) -> str:
    """``[1, 2, 3, 6, 8, 9]`` -> ``"1-3, 6, 8, 9"`` (runs of three or more blocks as a range)."""
    runs: list[list[int]] = []
    for layer in layers:
        if runs and layer == runs[-1][-1] + 1:
            runs[-1].append(layer)
        else:
            runs.append([layer])
    return ", ".join(f"{run[0]}-{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)) for run in runs)


@dataclass
class StrategyTable:
    """The teacher blocks each strategy picks for a ``num_student_layers`` student, per profile.

    ``mappings[profile][strategy]`` is the :class:`~spectralkd_tutorial.analysis.selection.LayerMapping`;
    ``intensities[profile]`` the profile's ``I_0..I_L`` (layer 0 = embeddings, never a candidate).
    """

    num_student_layers: int
    strategies: tuple[str, ...]
    intensities: dict[str, list[float]]
    mappings: dict[str, dict[str, LayerMapping]]
    missing: tuple[str, ...] = ()  # profiles given as None (not measured): no row, named in the summary

    def blocks(self, name: str) -> int:
        return len(self.intensities[name]) - 1

    def layers(self, name: str, strategy: str) -> list[int]:
        return self.mappings[name][strategy].teacher_layers

    def total(self, name: str, strategy: str) -> float:
        """Sum of ``I_l`` over the blocks ``strategy`` picks from profile ``name``."""
        return sum(self.intensities[name][t] for t in self.layers(name, strategy))

    def rows(self) -> list[dict[str, Any]]:
        return [{"teacher profile": name, "blocks": self.blocks(name),
                 **{strategy: _ranges(self.layers(name, strategy)) for strategy in self.strategies}}
                for name in self.mappings]

    def to_markdown(self) -> str:
        return markdown_table(self.rows())

    def same_as(self, name: str, strategy: str) -> list[str]:
        """The other strategies of the table that pick exactly the blocks ``strategy`` picks."""
        return [other for other in self.strategies
                if other != strategy and self.layers(name, other) == self.layers(name, strategy)]

    def _check_columns(self) -> tuple[list[str], list[str]]:
        spectral = [s for s in SPECTRAL_STRATEGIES if s in self.strategies]
        baselines = [s for s in _BASELINES if s in self.strategies]
        if not spectral or not baselines:
            raise ValueError(f"the table needs a spectral strategy and last or uniform, has {list(self.strategies)}")
        return spectral, baselines

    def parts_ways(self, name: str) -> bool:
        """Does a spectral strategy pick blocks that neither ``last`` nor ``uniform`` picks on this profile?"""
        spectral, baselines = self._check_columns()
        return any(not set(self.same_as(name, s)) & set(baselines) for s in spectral)

    def sentence(self, name: str) -> str:
        """One sentence, computed from the mappings: where the spectral rule and last/uniform part ways."""
        spectral, baselines = self._check_columns()
        L, K = self.blocks(name), self.num_student_layers
        groups: dict[tuple[int, ...], list[str]] = {}
        for s in spectral:  # spectral strategies that pick the same blocks are named together
            groups.setdefault(tuple(self.layers(name, s)), []).append(s)
        picks = []
        for layers, members in groups.items():
            others = [o for o in self.same_as(name, members[0]) if o not in spectral]
            verb = "both pick" if len(members) > 1 else "picks"
            picks.append(" and ".join(f"`{m}`" for m in members) + f" {verb} {_ranges(layers)}"
                         + (" (= " + ", ".join(f"`{o}`" for o in others) + ")" if others else ""))
        base = "where " + " and ".join(f"`{b}` picks {_ranges(self.layers(name, b))}" for b in baselines)
        head = f"**{name}** ({L} blocks, {K}-block student): {'; '.join(picks)}, {base}"
        if not self.parts_ways(name):
            matched = [b for b in baselines if any(self.layers(name, s) == self.layers(name, b) for s in spectral)]
            return f"{head} — the spectral rule coincides with " + " and ".join(f"`{b}`" for b in matched) + "."
        values = self.intensities[name]
        rank = 1 + sorted(range(1, L + 1), key=lambda l: (-values[l], l)).index(L)
        details = []
        for layers, members in groups.items():
            if set(self.same_as(name, members[0])) & set(baselines):
                continue
            chosen = set(layers)
            text = " and ".join(f"`{m}`" for m in members) + " share" + ("" if len(members) > 1 else "s") + " "
            text += " and ".join(f"{len(chosen & set(self.layers(name, b)))} of {K} blocks with `{b}`" for b in baselines)
            if L not in chosen:
                text += f", leave{'' if len(members) > 1 else 's'} out block {L} (intensity rank {rank} of {L})"
            if "last" in self.strategies:
                text += f", {self.total(name, members[0]) / self.total(name, 'last') - 1:+.1%} total intensity vs `last`"
            details.append(text)
        return f"{head} — the spectral rule parts ways: {'; '.join(details)}."

    def summary(self) -> str:
        """A markdown paragraph: which profiles the spectral rule parts ways on, then one sentence each."""
        apart = [name for name in self.mappings if self.parts_ways(name)]
        together = [name for name in self.mappings if name not in apart]
        lead = []
        if apart:
            lead.append("The spectral rule picks other blocks than `last`/`uniform` on " + ", ".join(apart))
        if together:
            lead.append(("and coincides with them on " if apart else "The spectral rule coincides with `last`/`uniform` on ")
                        + ", ".join(together))
        text = " ".join(lead) + ".\n\n" + "\n".join(f"* {self.sentence(name)}" for name in self.mappings)
        if self.missing:
            text += "\n\nNot measured yet, so not in the table: " + ", ".join(self.missing) + "."
        return text


def strategy_table(profiles: Mapping[str, SpectralProfile | Sequence[float] | None], num_student_layers: int = 4,
                   strategies: Sequence[str] = DEPTH_STRATEGIES, *, seed: int = 0) -> StrategyTable:
    """Which teacher blocks each strategy picks from each profile (``None`` profiles are skipped).

    Every choice comes from :func:`~spectralkd_tutorial.analysis.selection.select_layers`, exactly as
    ``steps.choose_layers`` makes it for a run.
    """
    intensities: dict[str, list[float]] = {}
    mappings: dict[str, dict[str, LayerMapping]] = {}
    for name, profile in profiles.items():
        if profile is None:
            continue
        values = _intensities(profile, name)
        intensities[name] = values
        mappings[name] = {s: select_layers(s, num_student_layers, len(values) - 1, values, seed=seed) for s in strategies}
    if not mappings:
        raise ValueError("strategy_table: no measured profile given")
    missing = tuple(name for name, profile in profiles.items() if profile is None)
    return StrategyTable(num_student_layers, tuple(strategies), intensities, mappings, missing)
