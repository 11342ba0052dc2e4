"""What the intensity is made of: I_l against the activation size, and how flat the signature is.

Parseval ties the two: with ``F = FFT_h(x) / H``, ``sum_k |F[k]|^2 = (1/H) sum_h x_h^2``, so the
*energy* of a token's channel spectrum is its squared RMS over H. The intensity is a mean of
*magnitudes*, not of energies; for channels that were independent noise of RMS r, each |F[k]|
(k not 0 or H/2) is a Rayleigh variable with E|F[k]|^2 = r^2 / H, so

    I / RMS = sqrt(pi / (4 H))                                   (the white-noise yardstick)

A signature that is flat over the bins (small coefficient of variation, the lowest bins holding
about the mean) with I / RMS at that yardstick says: the layer's intensity is a rescaled RMS, and
ranking layers by I_l (``spectral-topk``) ranks them by activation size (``norm-topk``).

Bins: the non-mirrored half ``1..H/2`` (bin 0 is the mean over channels, the rest mirror these
for real input); "low" = the lowest ``fraction`` of those bins, "high" = the highest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from .selection import select_layers
from .spectral import SpectralProfile

__all__ = ["white_noise_ratio", "flatness", "intensity_vs_rms", "SelectionAgreement", "selection_agreement",
           "makeup_sentences", "low_bin_trend", "channel_order_check", "plot_makeup", "agreement_by_k",
           "agreement_sentence"]


def white_noise_ratio(hidden_size: int) -> float:
    """I / RMS of independent Gaussian channels: sqrt(pi / (4 H)) (the mean of a Rayleigh variable)."""
    return math.sqrt(math.pi / (4 * hidden_size))


def _half(signatures: np.ndarray) -> np.ndarray:
    """Bins 1..H/2 of ``(layers, H)`` full signatures (bin 0 and the mirrored half left out)."""
    width = signatures.shape[1]
    return signatures[:, 1 : width // 2 + 1]


def flatness(profile: SpectralProfile, fraction: float = 1 / 8) -> list[dict[str, float]]:
    """Per layer: ``cv`` = std / mean of S_l[k] over bins 1..H/2; ``low`` / ``high`` = the mean of the
    lowest / highest ``fraction`` of those bins over the mean of all of them (1.0: no tilt)."""
    if not 0 < fraction <= 0.5:
        raise ValueError(f"fraction={fraction} must be in (0, 0.5]")
    if (profile.bins or profile.hidden_size) != profile.hidden_size:
        raise ValueError(f"flatness needs the full signatures (all {profile.hidden_size} bins), "
                         f"the profile kept {profile.bins}")
    rows = _shape(profile.signatures.double().numpy(), fraction)
    return [{"layer": layer.layer, **row} for layer, row in zip(profile.layers, rows)]


def _shape(signatures: np.ndarray, fraction: float) -> list[dict[str, float]]:
    """cv, low and high of each row of ``(layers, H)`` full signatures (see :func:`flatness`)."""
    half = _half(signatures)
    n = max(1, int(half.shape[1] * fraction))
    mean = half.mean(axis=1)
    return [{"cv": float(half[i].std() / mean[i]), "low": float(half[i, :n].mean() / mean[i]),
             "high": float(half[i, -n:].mean() / mean[i])} for i in range(len(half))]


def channel_order_check(model, tokenizer, texts: Sequence[str], layer: int, *, max_length: int = 64,
                        seed: int = 0, fraction: float = 1 / 8) -> dict[str, dict[str, float]]:
    """One layer's signature shape and intensity with its channels as stored and randomly permuted
    (a permutation gives the same network): if the low bins meant "topic", permuting would move it."""
    import torch

    from .spectral import spectral_signature

    encoded = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    device = next(model.parameters()).device
    with torch.no_grad():
        hidden = model(**{k: v.to(device) for k, v in encoded.items()}, output_hidden_states=True).hidden_states[layer]
    hidden = hidden.detach().cpu().double()
    order = torch.randperm(hidden.shape[-1], generator=torch.Generator().manual_seed(seed))
    out = {}
    for name, states in (("as stored", hidden), ("channels permuted", hidden[..., order])):
        signature = spectral_signature(states, encoded["attention_mask"]).numpy()
        out[name] = {"I": float(signature.mean()), **_shape(signature[None, :], fraction)[0]}
    return out


def plot_makeup(rms_rows: Mapping[str, Sequence[Mapping[str, float]] | None],
                flat_rows: Mapping[str, Sequence[Mapping[str, float]]], *, figsize=(11.0, 3.4)):
    """Left: I_l / RMS_l over the white-noise value against normalised depth l / L (1 = white noise).
    Right: the lowest eighth of bins 1..H/2 over their mean (1 = no low-frequency tilt)."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=figsize)
    names = list(dict.fromkeys([*rms_rows, *flat_rows]))
    colour = {name: f"C{i % 10}" for i, name in enumerate(names)}  # one colour per profile in both panels
    for name, rows in rms_rows.items():
        if rows is not None:
            left.plot(np.linspace(0, 1, len(rows)), [r["I/RMS over white noise"] for r in rows], "o-", label=name,
                      color=colour[name])
    for name, rows in flat_rows.items():
        right.plot(np.linspace(0, 1, len(rows)), [r["low"] for r in rows], "o-", label=name, color=colour[name])
    for ax, title in ((left, "I / RMS, in units of sqrt(pi / 4H)"), (right, "low-bin ratio (lowest 1/8 of bins 1..H/2)")):
        ax.axhline(1.0, color="grey", lw=1, ls="--")
        ax.set_xlabel("normalised depth l / L (0 = embeddings)")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
    for ax in (left, right):  # at least 0.8..1.2, so a 2 % wiggle does not look like a shape
        low, high = ax.get_ylim()
        ax.set_ylim(min(0.8, low), max(1.2, high))
    fig.tight_layout()
    return fig


def intensity_vs_rms(profile: SpectralProfile) -> list[dict[str, float]] | None:
    """Per layer: I_l, RMS_l, I_l / RMS_l and that ratio over the white-noise yardstick (None without RMS)."""
    rms = profile.rms
    if rms is None:
        return None
    white = white_noise_ratio(profile.hidden_size)
    return [{"layer": layer.layer, "I": layer.intensity, "RMS": r, "I/RMS": layer.intensity / r,
             "I/RMS over white noise": layer.intensity / r / white} for layer, r in zip(profile.layers, rms)]


def low_bin_trend(profile: SpectralProfile, fraction: float = 1 / 8) -> float:
    """Spearman rank correlation of the low-bin ratio with depth (ties get their mean rank)."""
    from scipy.stats import spearmanr

    low = [row["low"] for row in flatness(profile, fraction)]
    return float(spearmanr(np.arange(len(low)), low).statistic)


@dataclass
class SelectionAgreement:
    """One row per profile: the K blocks ``spectral-topk`` and ``norm-topk`` pick (None: no RMS recorded)."""

    k: int
    rows: list[dict[str, object]]

    def to_markdown(self) -> str:
        lines = [f"| profile | blocks | `spectral-topk` (K = {self.k}) | `norm-topk` | same? |",
                 "| --- | ---: | --- | --- | --- |"]
        for row in self.rows:
            norm = row["norm-topk"]
            same = "RMS not recorded" if norm is None else ("yes" if row["same"] else "**no**")
            lines.append(f"| {row['profile']} | {row['blocks']} | {row['spectral-topk']} | "
                         f"{'—' if norm is None else norm} | {same} |")
        return "\n".join(lines)


def selection_agreement(profiles: Mapping[str, SpectralProfile | None], k: int) -> SelectionAgreement:
    """Does ranking by activation size pick what ranking by intensity picks? (``selection.select_layers``.)"""
    rows = []
    for name, profile in profiles.items():
        if profile is None:
            continue
        blocks = len(profile.layers) - 1
        kk = min(k, blocks)
        spectral = select_layers("spectral-topk", kk, blocks, profile.intensities).teacher_layers
        norm = None if profile.rms is None else select_layers("norm-topk", kk, blocks, rms=profile.rms).teacher_layers
        rows.append({"profile": name, "blocks": blocks, "spectral-topk": spectral, "norm-topk": norm,
                     "same": norm is not None and norm == spectral})
    return SelectionAgreement(k, rows)


def agreement_by_k(profiles: Mapping[str, SpectralProfile | None]) -> list[dict[str, object]]:
    """For every profile with RMS and every K = 1..L-1: the K where ``norm-topk`` and ``spectral-topk``
    pick different blocks, and the largest relative intensity gap between what each picks there."""
    rows = []
    for name, profile in profiles.items():
        if profile is None or profile.rms is None:
            continue
        blocks = len(profile.layers) - 1
        differ, gaps = [], []
        for k in range(1, blocks):
            spectral = select_layers("spectral-topk", k, blocks, profile.intensities).teacher_layers
            norm = select_layers("norm-topk", k, blocks, rms=profile.rms).teacher_layers
            if norm != spectral:
                differ.append(k)
                total = sum(profile.intensities[t] for t in spectral)
                gaps.append((total - sum(profile.intensities[t] for t in norm)) / total)
        rows.append({"profile": name, "blocks": blocks, "K differing": differ,
                     "largest intensity gap": max(gaps, default=0.0)})
    return rows


def makeup_sentences(rms_rows: Mapping[str, Sequence[Mapping[str, float]] | None],
                     flat_rows: Mapping[str, Sequence[Mapping[str, float]]],
                     agreement: SelectionAgreement) -> str:
    """The reading, computed: how close I / RMS stays to white noise, how flat the signatures are,
    whether the low bins hold more than the mean, and whether ``norm-topk`` = ``spectral-topk``."""
    out = []
    for name, rows in rms_rows.items():
        if rows is None:
            out.append(f"*{name}*: the saved profile has no per-layer RMS, so I / RMS is not computable from it "
                       "(profile the model again: the profiler now records `rms`).")
            continue
        ratio = np.array([r["I/RMS over white noise"] for r in rows])
        r = float(np.corrcoef([x["I"] for x in rows], [x["RMS"] for x in rows])[0, 1])
        out.append(f"*{name}*: I_l / RMS_l is {ratio.min():.3f}-{ratio.max():.3f} x the white-noise value "
                   f"sqrt(pi/4H) across its {len(rows)} layers, and r(I, RMS) = {r:.3f}.")
    for name, rows in flat_rows.items():
        cv = [r["cv"] for r in rows]
        low = [r["low"] for r in rows]
        out.append(f"*{name}*: the signature's coefficient of variation over bins 1..H/2 is "
                   f"{100 * min(cv):.1f}-{100 * max(cv):.1f} %; the lowest eighth of those bins holds "
                   f"{min(low):.3f}-{max(low):.3f} x their mean.")
    compared = [row for row in agreement.rows if row["norm-topk"] is not None]
    same = [row["profile"] for row in compared if row["same"]]
    differ = [row["profile"] for row in compared if not row["same"]]
    if compared:
        out.append(f"`norm-topk` (rank by RMS) picks the same K = {agreement.k} blocks as `spectral-topk` for "
                   f"{len(same)} of {len(compared)} profiles with RMS"
                   + (f"; it differs for {', '.join(differ)}." if differ else "."))
    return "\n\n".join(out)


def agreement_sentence(rows: Sequence[Mapping[str, object]]) -> str:
    """One line per profile: at how many student depths K the two rankings agree, and by how little
    total intensity they differ where they do not."""
    out = []
    for row in rows:
        n = row["blocks"] - 1
        differ = row["K differing"]
        if not differ:
            out.append(f"*{row['profile']}*: `norm-topk` = `spectral-topk` for every K = 1..{n}.")
        else:
            out.append(f"*{row['profile']}*: `norm-topk` = `spectral-topk` for {n - len(differ)} of K = 1..{n}; "
                       f"at K = {', '.join(map(str, differ))} they swap blocks whose total intensity differs by at "
                       f"most {100 * row['largest intensity gap']:.2f} %.")
    return "\n\n".join(out)
