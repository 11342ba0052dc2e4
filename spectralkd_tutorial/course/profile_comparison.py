"""Two spectral profiles of one architecture side by side (chapter 3), e.g. a teacher before and after
fine-tuning. Per layer ``l``:

    change[l]           = I_after[l] - I_before[l]
    relative_change[l]  = change[l] / I_before[l]
    signature_cosine[l] = <S_before[l], S_after[l]> / (|S_before[l]| |S_after[l]|)     (1 = same shape)

Layer numbering: layer 0 is the embedding output, layer l (1..L) the output of block l.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
from matplotlib.figure import Figure

from ..analysis.depth_profiles import _intensities_and_signatures, markdown_table
from ..analysis.spectral import LAYER_CONVENTION, SpectralProfile

__all__ = ["ProfileComparison", "compare_profiles", "plot_profile_comparison"]


@dataclass
class ProfileComparison:
    """Per-layer intensities of two profiles and how they differ.

    ``change[l] = after[l] - before[l]``; ``relative_change[l] = change[l] / before[l]``;
    ``signature_cosine[l]`` = cosine similarity of the two signatures S_l (1 = same shape).
    """

    layers: list[int]
    before: list[float]
    after: list[float]
    change: list[float]
    relative_change: list[float]
    signature_cosine: list[float] | None = None
    before_name: str = "before"
    after_name: str = "after"
    convention: str = LAYER_CONVENTION
    metadata: dict[str, Any] = field(default_factory=dict)

    def rows(self, digits: int | None = None) -> list[dict[str, Any]]:
        def r(x: float) -> float:
            return round(x, digits) if digits is not None else x

        out = []
        for i, layer in enumerate(self.layers):
            row = {"layer": layer, "I_before": r(self.before[i]), "I_after": r(self.after[i]),
                   "change": r(self.change[i]), "relative_change": r(self.relative_change[i])}
            if self.signature_cosine is not None:
                row["signature_cosine"] = r(self.signature_cosine[i])
            out.append(row)
        return out

    def largest_change(self) -> int:
        """The layer whose intensity moved most (in absolute value)."""
        return self.layers[int(np.argmax(np.abs(self.change)))]

    def to_markdown(self, digits: int = 4) -> str:
        return markdown_table(self.rows(), digits=digits)

    def to_dict(self) -> dict[str, Any]:
        return {"before_name": self.before_name, "after_name": self.after_name, "convention": self.convention,
                "rows": self.rows(), "metadata": self.metadata}


def compare_profiles(before: SpectralProfile | Sequence[float], after: SpectralProfile | Sequence[float]) -> ProfileComparison:
    """Per-layer change from ``before`` to ``after`` (e.g. a teacher before and after fine-tuning)."""
    b, b_sig, b_name = _intensities_and_signatures(before, "before")
    a, a_sig, a_name = _intensities_and_signatures(after, "after")
    if len(a) != len(b):
        raise ValueError(
            f"before has {len(b)} layers but after has {len(a)}: compare two profiles of the same architecture "
            "(layer 0 = embeddings .. layer L)"
        )
    cosine = None
    if b_sig is not None and a_sig is not None:
        if b_sig.shape != a_sig.shape:
            raise ValueError(f"signatures differ in shape {b_sig.shape} vs {a_sig.shape}: same width and bins needed")
        norms = np.linalg.norm(b_sig, axis=1) * np.linalg.norm(a_sig, axis=1)
        cosine = [float(v) for v in (b_sig * a_sig).sum(axis=1) / np.where(norms == 0, 1.0, norms)]
    change = [y - x for x, y in zip(b, a)]
    relative = [d / x if x != 0 else math.nan for d, x in zip(change, b)]
    return ProfileComparison(layers=list(range(len(b))), before=b, after=a, change=change,
                             relative_change=relative, signature_cosine=cosine,
                             before_name=b_name, after_name=a_name)


def plot_profile_comparison(comparison: ProfileComparison, *, figsize: tuple[float, float] = (9.0, 3.2)) -> Figure:
    """Left: I_l before and after. Right: the change per layer (bars) and the signature cosine."""
    figure = Figure(figsize=figsize, layout="constrained")
    left, right = figure.subplots(1, 2)
    x = np.asarray(comparison.layers)
    left.plot(x, comparison.before, "o--", color="#8c8c8c", label=comparison.before_name)
    left.plot(x, comparison.after, "o-", color="#4c72b0", label=comparison.after_name)
    left.set_ylabel("spectral intensity $I_l$")
    left.legend(fontsize=7, loc="best")
    left.set_title("intensity per layer", fontsize=10)
    colors = ["#55a868" if d >= 0 else "#c44e52" for d in comparison.change]
    right.bar(x, comparison.change, color=colors)
    right.axhline(0, color="k", lw=0.6)
    right.set_ylabel("$I_l^{after} - I_l^{before}$")
    right.set_title("change per layer", fontsize=10)
    if comparison.signature_cosine is not None:
        twin = right.twinx()
        twin.plot(x, comparison.signature_cosine, "k.:", lw=1, label="cosine(S before, S after)")
        twin.set_ylabel("signature cosine")
        twin.set_ylim(min(0.0, min(comparison.signature_cosine)), 1.05)
        twin.legend(loc="best", fontsize=7)
    for ax in (left, right):
        ax.set_xticks(x)
        ax.set_xlabel("layer (0 = embeddings, l = block l)")
    return figure
