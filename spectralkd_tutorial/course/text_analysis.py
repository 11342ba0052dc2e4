"""Per-token and per-sentence views of a text model's channel spectra (chapter 3).

The profiler (:mod:`spectralkd_tutorial.analysis.spectral`) reduces a layer to one curve, the *corpus
signature*: the masked mean of |F| over every real token of every sentence. This module keeps the
pieces that mean hides. For one layer ``l`` and one sentence with real tokens ``t = 1..T``
(padding excluded, special tokens such as ``<s>``/``[CLS]`` kept, exactly as the profiler does):

    F[t, k]   = (1/H) * sum_h X_l[t, h] * exp(-2*pi*i*k*h/H)          (spectral.channel_spectrum)
    A[t, k]   = |F[t, k]|                                              per-token spectrum
    s[k]      = (1/T) * sum_t A[t, k]                                  sentence signature
    S_l[k]    = sum_{n,t} m[n,t] A[n,t,k] / sum_{n,t} m[n,t]           corpus signature (token-weighted)

so ``S_l`` is the token-count-weighted mean of the sentence signatures: a long sentence counts
more than a short one. ``token_energy_at_bin`` ranks the tokens by ``A[t, k]`` -- which tokens
carry the energy at bin ``k``. ``compare_profiles`` (in :mod:`.profile_comparison`, re-exported here)
puts two profiles of the same architecture side by side (e.g. a teacher before and after fine-tuning):
per layer the change in intensity ``I_after - I_before`` and the cosine similarity of the two signatures.

Teachers of different depths (chapter 3, "A deeper model") are in :mod:`..analysis.depth_profiles`, re-exported here.

Layer numbering: layer 0 is the embedding output, layer l (1..L) the output of block l
(Hugging Face ``hidden_states[l]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor

from ..analysis.spectral import LAYER_CONVENTION, channel_spectrum, check_bins, half_spectrum_bins
# teachers of different depths live in their own module; re-exported here, where chapter 3 imports them
from ..analysis.depth_profiles import (DEPTH_STRATEGIES, StrategyTable, find_asset, load_profile, markdown_table,
    normalised_depth, plot_depth_profiles, strategy_table)
# two profiles side by side: their own module, re-exported here, where chapter 3 imports them
from .profile_comparison import ProfileComparison, compare_profiles, plot_profile_comparison

__all__ = [
    "SentenceSpectra",
    "TokenEnergy",
    "ProfileComparison",
    "token_spectra",
    "token_spectra_by_layer",
    "token_energy_at_bin",
    "sentence_signature",
    "corpus_signature",
    "mean_of_sentence_signatures",
    "compare_profiles",
    "display_token",
    "draw_token_energy",
    "plot_token_energy",
    "plot_sentence_signatures",
    "plot_profile_comparison",
    "markdown_table",
    "DEPTH_STRATEGIES",
    "StrategyTable",
    "find_asset",
    "load_profile",
    "normalised_depth",
    "plot_depth_profiles",
    "strategy_table",
]


# --------------------------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------------------------

@dataclass
class SentenceSpectra:
    """|F[t, k]| of every real token of one sentence at one layer.

    ``tokens[i]`` (the tokenizer's token string) has spectrum ``amplitudes[i]`` (length H);
    ``special[i]`` marks tokens such as ``<s>``, ``</s>``, ``[CLS]``, ``[SEP]``. Padding never
    appears: only positions whose attention mask is 1 are kept.
    """

    text: str
    layer: int
    tokens: list[str]
    token_ids: list[int]
    special: list[bool]
    amplitudes: Tensor  # (T_real, H)

    @property
    def num_tokens(self) -> int:
        return int(self.amplitudes.shape[0])

    @property
    def hidden_size(self) -> int:
        return int(self.amplitudes.shape[1])

    @property
    def labels(self) -> list[str]:
        """Readable token strings (byte-level ``Ġ`` / WordPiece ``##`` markers made visible)."""
        return [display_token(token) for token in self.tokens]

    def at_bin(self, k: int) -> Tensor:
        """``A[t, k]`` for every token ``t`` (in sentence order)."""
        return self.amplitudes[:, _check_bin(k, self.hidden_size)]

    def signature(self, bins: int | None = None) -> Tensor:
        """The sentence signature ``s[k] = mean_t A[t, k]`` (see :func:`sentence_signature`)."""
        return sentence_signature(self, bins=bins)


class TokenEnergy(NamedTuple):
    """One token's amplitude ``A[t, k]`` at a bin; ``sentence``/``position`` locate it."""

    token: str
    value: float
    sentence: int
    position: int
    special: bool


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

def _check_bin(k: int, width: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= int(k) < width:
        raise ValueError(f"frequency bin k={k!r} must be an integer in [0, {width - 1}] (hidden width {width})")
    return int(k)


def _check_texts(texts: Sequence[str] | str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings; wrap a single sentence as [text]")
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty: pass at least one sentence")
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()]
    if bad:
        raise ValueError(f"texts[{bad[0]}] is not a non-empty string ({texts[bad[0]]!r}); drop empty inputs")
    return texts


def _as_list(spectra: SentenceSpectra | Sequence[SentenceSpectra]) -> list[SentenceSpectra]:
    items = [spectra] if isinstance(spectra, SentenceSpectra) else list(spectra)
    if not items:
        raise ValueError("no sentence spectra given: compute them with token_spectra(...)")
    if not all(isinstance(item, SentenceSpectra) for item in items):
        raise TypeError("expected SentenceSpectra objects (from token_spectra)")
    widths = {item.hidden_size for item in items}
    if len(widths) != 1:
        raise ValueError(f"sentence spectra of different widths {sorted(widths)} cannot be combined")
    return items


def display_token(token: str) -> str:
    """A readable label: byte-level BPE's ``Ġ`` (space) becomes ``▁``, newline ``Ċ`` becomes ``⏎``."""
    return token.replace("Ġ", "▁").replace("Ċ", "⏎")


# --------------------------------------------------------------------------------------------
# Per-token spectra
# --------------------------------------------------------------------------------------------

@torch.no_grad()
def token_spectra_by_layer(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    layers: Sequence[int] | None = None,
    *,
    max_length: int = 64,
    batch_size: int = 32,
) -> dict[int, list[SentenceSpectra]]:
    """``{layer: [SentenceSpectra per text]}`` for ``layers`` (default: all, 0..L), one forward pass.

    Texts are tokenised like the profiler does (truncation to ``max_length``, padding per batch);
    the model runs in eval mode; padded positions are dropped with the attention mask.
    """
    texts = _check_texts(texts)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    out: dict[int, list[SentenceSpectra]] | None = None
    try:
        for start in range(0, len(texts), batch_size):
            chunk = texts[start : start + batch_size]
            encoded = tokenizer(chunk, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
            inputs = {k: v.to(device) for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            hidden_states = model(**inputs, output_hidden_states=True).hidden_states
            if hidden_states is None:
                raise ValueError(f"{type(model).__name__} returned no hidden_states")
            total = len(hidden_states)
            wanted = list(range(total)) if layers is None else [int(layer) for layer in layers]
            bad = [layer for layer in wanted if not 0 <= layer < total]
            if bad or not wanted:
                raise ValueError(
                    f"layers {bad or wanted} out of range: this model has layers 0..{total - 1} ({LAYER_CONVENTION})"
                )
            if out is None:
                out = {layer: [] for layer in wanted}
            mask = encoded["attention_mask"].bool()
            ids = encoded["input_ids"]
            for layer in wanted:
                amplitude = channel_spectrum(hidden_states[layer]).cpu()  # (N, T, H) = |FFT_h(X)/H|
                for row, text in enumerate(chunk):
                    keep = mask[row]
                    token_ids = ids[row][keep].tolist()
                    out[layer].append(SentenceSpectra(
                        text=text,
                        layer=layer,
                        tokens=tokenizer.convert_ids_to_tokens(token_ids),
                        token_ids=token_ids,
                        special=[i in special_ids for i in token_ids],
                        amplitudes=amplitude[row][keep],
                    ))
    finally:
        model.train(was_training)
    assert out is not None
    return out


def token_spectra(
    model: torch.nn.Module,
    tokenizer,
    texts: Sequence[str],
    layer: int,
    max_length: int = 64,
    *,
    batch_size: int = 32,
) -> list[SentenceSpectra]:
    """For each text, its real tokens and ``|F[t, k]|`` per token at ``layer`` (padding excluded)."""
    if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
        raise TypeError(f"layer must be an integer ({LAYER_CONVENTION}), got {layer!r}")
    return token_spectra_by_layer(model, tokenizer, texts, [int(layer)], max_length=max_length,
                                  batch_size=batch_size)[int(layer)]


def token_energy_at_bin(
    spectra: SentenceSpectra | Sequence[SentenceSpectra],
    k: int,
    *,
    top: int | None = None,
    skip_special: bool = False,
) -> list[TokenEnergy]:
    """Tokens ranked by ``A[t, k]`` (largest first), over one sentence or a list of them."""
    items = _as_list(spectra)
    k = _check_bin(k, items[0].hidden_size)
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise ValueError(f"top={top!r} must be a positive integer or None (all tokens)")
    entries = [
        TokenEnergy(display_token(item.tokens[t]), float(item.amplitudes[t, k]), n, t, bool(item.special[t]))
        for n, item in enumerate(items)
        for t in range(item.num_tokens)
        if not (skip_special and item.special[t])
    ]
    entries.sort(key=lambda e: (-e.value, e.sentence, e.position))
    return entries[:top] if top is not None else entries


def sentence_signature(spectra: SentenceSpectra, bins: int | None = None) -> Tensor:
    """``s[k] = (1/T) sum_t A[t, k]`` over the sentence's T real tokens (first ``bins`` bins)."""
    if not isinstance(spectra, SentenceSpectra):
        raise TypeError("sentence_signature takes one SentenceSpectra (from token_spectra)")
    k = check_bins(bins, spectra.hidden_size)
    return spectra.amplitudes[:, :k].mean(dim=0)


def corpus_signature(spectra: Sequence[SentenceSpectra], bins: int | None = None) -> Tensor:
    """``S[k]``: the mean of ``A[t, k]`` over every real token of every sentence (token-weighted).

    Equal to :func:`spectral.spectral_signature` of the padded batch with its attention mask, and to
    the profiler's signature for the same texts (the tests and chapter 3 check both).
    """
    items = _as_list(spectra)
    k = check_bins(bins, items[0].hidden_size)
    return torch.cat([item.amplitudes[:, :k] for item in items], dim=0).mean(dim=0)


def mean_of_sentence_signatures(spectra: Sequence[SentenceSpectra], bins: int | None = None) -> Tensor:
    """``(1/N) sum_n s_n[k]``: every sentence weighted equally (not what the profiler computes)."""
    items = _as_list(spectra)
    return torch.stack([sentence_signature(item, bins) for item in items]).mean(dim=0)


# --------------------------------------------------------------------------------------------
# Figures (built without pyplot: end a notebook cell with the figure to show it)
# --------------------------------------------------------------------------------------------

SPECIAL_COLOR = "#8c8c8c"
TOKEN_COLOR = "#dd8452"


def draw_token_energy(ax: Axes, spectra: SentenceSpectra, k: int, *, top: int | None = None):
    """Bars of the sentence's tokens ranked by ``A[t, k]``; returns ``(bar_container, ranked)``."""
    ranked = token_energy_at_bin(spectra, k, top=top)
    positions = np.arange(len(ranked))
    bars = ax.bar(positions, [e.value for e in ranked],
                  color=[SPECIAL_COLOR if e.special else TOKEN_COLOR for e in ranked])
    ax.set_xticks(positions)
    ax.set_xticklabels([e.token for e in ranked], rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(f"$|F[t, k]|$ at k = {k}")
    ax.set_title(f"tokens ranked at bin {k} (grey: special tokens)", fontsize=9)
    return bars, ranked


def plot_token_energy(spectra: SentenceSpectra, k: int, *, top: int | None = None,
                      figsize: tuple[float, float] = (6.5, 3.0)) -> Figure:
    """Bar chart: which tokens of one sentence carry the most energy at bin ``k``."""
    figure = Figure(figsize=figsize, layout="constrained")
    ax = figure.add_subplot(111)
    draw_token_energy(ax, spectra, k, top=top)
    ax.set_title(f"layer {spectra.layer}: {spectra.text[:60]!r}\n" + ax.get_title(), fontsize=9)
    return figure


def plot_sentence_signatures(spectra: Sequence[SentenceSpectra], corpus: Tensor | Sequence[float] | None = None, *,
                             bins: int | None = None, figsize: tuple[float, float] = (7.0, 3.2)) -> Figure:
    """Each sentence's signature (thin) against the corpus signature (thick), first C/2 bins."""
    items = _as_list(spectra)
    k = bins or half_spectrum_bins(items[0].hidden_size)
    figure = Figure(figsize=figsize, layout="constrained")
    ax = figure.add_subplot(111)
    x = np.arange(k)
    for n, item in enumerate(items):
        ax.plot(x, sentence_signature(item).numpy()[:k], lw=0.8, alpha=0.6, color=f"C{n % 10}")
    reference = corpus_signature(items) if corpus is None else torch.as_tensor(corpus)
    ax.plot(x, np.asarray(reference)[:k], lw=2.5, color="k", label="corpus signature $S_l[k]$ (all tokens)")
    ax.set_yscale("log")
    ax.set_xlabel("frequency bin k (channel axis)")
    ax.set_ylabel("$|F|$, mean over tokens")
    ax.set_title(f"layer {items[0].layer}: {len(items)} sentence signatures (thin) vs the corpus (thick)", fontsize=9)
    ax.legend(fontsize=8)
    return figure
