"""An ipywidgets explorer for a text model's spectra: layer and frequency-bin sliders, a sentence menu.

Left: the selected layer's corpus signature ``S_l[k]`` over the first C/2 bins (solid), the chosen
sentence's own signature ``s[k] = mean_t |F[t, k]|`` (dashed), and a marker at the current bin ``k``.
Right: the chosen sentence's real tokens ranked by ``|F[t, k]|`` at that bin (special tokens grey).

Layer numbering: 0 = embedding output, l = output of block l (``hidden_states[l]``).

All drawing happens in :meth:`TextSpectrumExplorer.update`, a plain method: tests call it, or set
a control's ``.value``, and read the figure's data back without a browser or a kernel.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure

from ...analysis.spectral import SpectralProfile, half_spectrum_bins
from ..text_analysis import (SentenceSpectra, TokenEnergy, corpus_signature, draw_token_energy, sentence_signature,
    token_spectra_by_layer)

__all__ = ["TextSpectrumExplorer"]
from .base import FigureExplorer, layer_and_bin_sliders


class TextSpectrumExplorer(FigureExplorer):
    """Sliders for ``layer`` and ``k``, a dropdown for the sentence; redraws on every change.

    ``spectra_by_layer``: ``{layer: [SentenceSpectra, one per sentence]}`` (from
    :func:`~spectralkd_tutorial.course.text_analysis.token_spectra_by_layer`), the same sentences at
    every layer. ``corpus``: the corpus signatures to draw, a :class:`SpectralProfile` (e.g. the
    teacher's profile over many texts) or a ``(layers, H)`` array; ``None`` uses the masked mean
    over the given sentences' tokens.

    Attributes after each :meth:`update`: ``layer``, ``k``, ``sentence`` (index), ``ranked``
    (:class:`TokenEnergy` list shown as bars), ``bars`` (the bar container), ``corpus_line``,
    ``sentence_line`` and ``marker`` (``Line2D``; the marker sits at ``(k, S_layer[k])``), ``fig``.
    Show it with ``display(explorer.widget)``.
    """

    def __init__(
        self,
        spectra_by_layer: Mapping[int, Sequence[SentenceSpectra]],
        corpus: SpectralProfile | Any | None = None,
        *,
        layer: int | None = None,
        k: int = 1,
        sentence: int = 0,
        top: int | None = 16,
        figsize: tuple[float, float] = (10.0, 3.8),
    ) -> None:
        if not spectra_by_layer:
            raise ValueError("spectra_by_layer is empty: build it with token_spectra_by_layer(model, tokenizer, texts)")
        self.layers = sorted(int(layer) for layer in spectra_by_layer)
        self.spectra = {int(layer): list(items) for layer, items in spectra_by_layer.items()}
        first = self.spectra[self.layers[0]]
        if not first:
            raise ValueError("no sentences: pass at least one text")
        self.texts = [item.text for item in first]
        for layer, items in self.spectra.items():
            if [item.text for item in items] != self.texts:
                raise ValueError(f"layer {layer} holds other sentences than layer {self.layers[0]}; "
                                 "use one token_spectra_by_layer call for all layers")
        self.hidden_size = first[0].hidden_size
        self.max_k = half_spectrum_bins(self.hidden_size)  # bins 0..C/2 (the rest mirror them)
        self.corpus = self._corpus_signatures(corpus)
        self.top = top
        self.layer = self.layers[-1] if layer is None else int(layer)
        self.k, self.sentence = int(k), int(sentence)
        self._check()

        self.fig = Figure(figsize=figsize, dpi=80, layout="constrained")
        self.ax_signature = self.fig.add_subplot(1, 2, 1)
        self.ax_tokens = self.fig.add_subplot(1, 2, 2)
        x = np.arange(self.max_k + 1)
        (self.corpus_line,) = self.ax_signature.plot(x, np.ones(len(x)), "-", lw=2, color="#4c72b0",
                                                      label="corpus signature $S_l[k]$")
        (self.sentence_line,) = self.ax_signature.plot(x, np.ones(len(x)), "--", lw=1.2, color="#dd8452",
                                                        label="this sentence $s[k]$")
        (self.marker,) = self.ax_signature.plot([0], [1], "o", ms=9, color="#c44e52", label="bin k")
        self.vline = self.ax_signature.axvline(0, color="#c44e52", lw=0.8, alpha=0.5)
        self.ax_signature.set_yscale("log")
        self.ax_signature.set_xlabel("frequency bin k (channel axis)")
        self.ax_signature.set_ylabel("mean $|F[t, k]|$ over tokens")
        self.ax_signature.legend(fontsize=7, loc="lower right")
        self.bars = None
        self.ranked: list[TokenEnergy] = []
        self._widget = None
        self.update()

    @classmethod
    def from_model(cls, model, tokenizer, texts: Sequence[str], *, corpus: SpectralProfile | Any | None = None,
                   max_length: int = 64, **kwargs: Any) -> "TextSpectrumExplorer":
        """Run ``texts`` through ``model`` once (every layer) and build the explorer."""
        return cls(token_spectra_by_layer(model, tokenizer, texts, max_length=max_length), corpus, **kwargs)

    # ---------------------------------------------------------------------------------------
    def _corpus_signatures(self, corpus) -> dict[int, np.ndarray]:
        if corpus is None:
            return {layer: corpus_signature(self.spectra[layer]).double().numpy() for layer in self.layers}
        table = corpus.signatures if isinstance(corpus, SpectralProfile) else torch.as_tensor(np.asarray(corpus))
        table = np.asarray(table, dtype=np.float64)
        if table.ndim != 2:
            raise ValueError(f"corpus signatures must be a (layers, bins) array, got shape {table.shape}")
        if table.shape[1] < self.max_k + 1:
            raise ValueError(f"corpus signatures have {table.shape[1]} bins; the explorer needs at least "
                             f"{self.max_k + 1} (profile with bins=None)")
        missing = [layer for layer in self.layers if layer >= table.shape[0]]
        if missing:
            raise ValueError(f"corpus has {table.shape[0]} layers; layers {missing} are missing (another model?)")
        return {layer: table[layer] for layer in self.layers}

    def _check(self) -> None:
        if self.layer not in self.spectra:
            raise ValueError(f"layer={self.layer} is not available; choose one of {self.layers} "
                             "(0 = embeddings, l = block l)")
        if not 0 <= self.k <= self.max_k:
            raise ValueError(f"k={self.k} must be an integer in [0, {self.max_k}] (the first C/2 bins)")
        if not 0 <= self.sentence < len(self.texts):
            raise ValueError(f"sentence={self.sentence} must be in [0, {len(self.texts) - 1}]")

    def update(self, layer: int | None = None, k: int | None = None, sentence: int | None = None) -> list[TokenEnergy]:
        """Set any of layer / bin / sentence and redraw; returns the ranked tokens shown as bars."""
        self._assign({"layer": ("layer", int), "k": ("k", int), "sentence": ("sentence", int)},
                     dict(layer=layer, k=k, sentence=sentence))
        chosen = self.spectra[self.layer][self.sentence]
        n_bins = self.max_k + 1
        corpus = self.corpus[self.layer][:n_bins]
        own = sentence_signature(chosen).double().numpy()[:n_bins]
        self.corpus_line.set_ydata(corpus)
        self.sentence_line.set_ydata(own)
        self.marker.set_data([self.k], [corpus[self.k]])
        self.vline.set_xdata([self.k, self.k])
        # y-range from bins >= 1: bin 0 (the channel mean) is ~0 after a LayerNorm without bias and
        # would squash the log axis; it is included only while the marker sits on it
        shown = np.concatenate([corpus[1:], own[1:]] + ([corpus[:1]] if self.k == 0 else []))
        shown = shown[shown > 0]
        if shown.size:
            self.ax_signature.set_ylim(shown.min() / 1.5, shown.max() * 1.5)
        self.ax_signature.set_title(f"layer {self.layer}: signature, bin k = {self.k}", fontsize=9)

        self.ax_tokens.clear()
        self.bars, self.ranked = draw_token_energy(self.ax_tokens, chosen, self.k, top=self.top)
        self.ax_tokens.set_title(f"{chosen.text[:48]!r}: tokens by $|F[t, {self.k}]|$", fontsize=9)
        return self.ranked

    # ---------------------------------------------------------------------------------------
    control_width = "460px"

    def _controls(self, widgets, style, layout) -> dict[str, Any]:
        return dict(
            **layer_and_bin_sliders(widgets, style, layout, layer=self.layer,
                                    layers=(self.layers[0], self.layers[-1]), k=self.k, max_k=self.max_k),
            sentence=widgets.Dropdown(options=[(text[:60], i) for i, text in enumerate(self.texts)],
                                      value=self.sentence, description="sentence", style=style, layout=layout),
        )
