"""An ipywidgets explorer for a ViT's layer-wise spectra: scrub the layer and the frequency bin.

For the chosen layer l the middle panel shows its signature over the first C/2 bins,

    S_l[k] = mean over images b and patches t of |F_l[b, t, k]|,   F = FFT_c(X) / C   (prefix tokens excluded)

with a marker at the chosen bin k; the right panel maps, for one image, that bin's magnitude
``|F_l[t, k]|`` over the ``h x w`` patch grid (where in the image the layer carries energy at that
channel frequency); the left panel shows the image.

All drawing happens in :meth:`ViTSpectrumExplorer.update`, a plain method: tests call it, or set a
slider's ``.value``, and read the figure's data back without a browser or a kernel.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from ...analysis.spectral import channel_spectrum, half_spectrum_bins, spectral_signature
from ..vision import patch_grid, prefix_token_count, tokens_to_grid, vision_hidden_states
from .base import FigureExplorer, layer_and_bin_sliders

__all__ = ["ViTSpectrumExplorer"]


class ViTSpectrumExplorer(FigureExplorer):
    """Sliders for ``layer``, ``k`` (frequency bin) and ``image``; the three panels redraw on change.

    ``hidden_states``: the L+1 tensors ``(B, P + h*w, C)`` of one batch (Hugging Face
    ``hidden_states``); or build it with :meth:`from_model`. Attributes after each :meth:`update`:
    ``layer``, ``k``, ``image_index``, ``signature`` (the layer's ``S_l[:bins]``), ``magnitude_map``
    (``(h, w)`` array of ``|F_l[t, k]|`` for the chosen image), ``fig``, ``signature_line``,
    ``marker`` (at ``(k, S_l[k])``), ``map_image`` (the ``AxesImage`` of the map). Show it with
    ``display(explorer.widget)``.
    """

    def __init__(
        self,
        hidden_states: Sequence[Tensor],
        *,
        prefix_tokens: int,
        grid: tuple[int, int],
        images: Tensor | None = None,
        layer: int | None = None,
        k: int = 1,
        image_index: int = 0,
        bins: int | None = None,
        title: str | None = None,
        figsize: tuple[float, float] = (10.5, 3.2),
    ) -> None:
        if not hidden_states:
            raise ValueError("hidden_states is empty: pass the model's hidden_states (one tensor per layer)")
        self.grids = [tokens_to_grid(h.detach().float().cpu(), prefix_tokens, grid) for h in hidden_states]
        self.prefix_tokens, self.grid = int(prefix_tokens), (int(grid[0]), int(grid[1]))
        self.num_images, self.channels = int(self.grids[0].shape[0]), int(self.grids[0].shape[1])
        self.bins = half_spectrum_bins(self.channels) if bins is None else int(bins)
        if not 1 <= self.bins <= self.channels:
            raise ValueError(f"bins={bins} must be in [1, {self.channels}]")
        self.images = None if images is None else images.detach().float().cpu()
        # S_l[k] for every layer, prefix tokens excluded (the grids hold patch tokens only)
        self.signatures = np.stack([spectral_signature(g, bins=self.bins).numpy() for g in self.grids])
        self.layer = len(self.grids) - 1 if layer is None else int(layer)
        self.k, self.image_index = int(k), int(image_index)
        self._check()
        self._spectrum_cache: tuple[tuple[int, int], np.ndarray] | None = None

        self.fig = Figure(figsize=figsize, dpi=80, layout="constrained")
        self.ax_image, self.ax_signature, self.ax_map = self.fig.subplots(1, 3, width_ratios=[1, 1.6, 1.25])
        self._draw_image_panel()
        self._draw_signature_panel()
        self._draw_map_panel()
        if title:
            self.fig.suptitle(title, fontsize=10)
        self.magnitude_map = np.zeros(self.grid)
        self.signature = self.signatures[self.layer]
        self._widget = None
        self.update()

    # ---------------------------------------------------------------------------------------
    def _draw_image_panel(self) -> None:
        """Left panel: the image with the patch grid drawn over it (or a note when none was given)."""
        self.image_artist = None
        if self.images is not None:
            self.image_artist = self.ax_image.imshow(self._image_for_display(), cmap="gray_r",
                                                     interpolation="nearest")
            h, w = self.grid
            H, W = self.images.shape[-2:]
            for i in range(1, h):  # the patch grid over the image
                self.ax_image.axhline(i * H / h - 0.5, color="#4c72b0", lw=0.5, alpha=0.6)
            for j in range(1, w):
                self.ax_image.axvline(j * W / w - 0.5, color="#4c72b0", lw=0.5, alpha=0.6)
        else:
            self.ax_image.text(0.5, 0.5, "(no image given)", ha="center", va="center",
                               transform=self.ax_image.transAxes)
        self.ax_image.set_xticks([])
        self.ax_image.set_yticks([])

    def _draw_signature_panel(self) -> None:
        """Middle panel: the layer's signature on a log scale shared by all layers, a marker at bin k."""
        bins_axis = np.arange(self.bins)
        (self.signature_line,) = self.ax_signature.plot(bins_axis, self.signatures[self.layer], lw=1.2, color="#4c72b0")
        (self.marker,) = self.ax_signature.plot([self.k], [self.signatures[self.layer, self.k]], "o",
                                                color="#c44e52", ms=7)
        positive = self.signatures[self.signatures > 0]
        low = float(positive.min()) if positive.size else 1e-6
        self.ax_signature.set_yscale("log")
        self.ax_signature.set_ylim(low / 1.5, float(self.signatures.max()) * 1.5)  # one scale for all layers
        self.ax_signature.set_xlabel("frequency bin k (channel axis)")
        self.ax_signature.set_ylabel("$S_l[k]$")

    def _draw_map_panel(self) -> None:
        """Right panel: the (h, w) map of |F_l[t, k]| with its colour bar."""
        self.map_image = self.ax_map.imshow(np.zeros(self.grid), cmap="magma", interpolation="nearest")
        self.colorbar = self.fig.colorbar(self.map_image, ax=self.ax_map, shrink=0.85)
        self.ax_map.set_xticks(range(0, self.grid[1], max(1, self.grid[1] // 7)))
        self.ax_map.set_yticks(range(0, self.grid[0], max(1, self.grid[0] // 7)))
        self.ax_map.set_xlabel("patch column")
        self.ax_map.set_ylabel("patch row")

    @classmethod
    def from_model(cls, model: torch.nn.Module, pixel_values: Tensor, **kwargs: Any) -> "ViTSpectrumExplorer":
        """Capture ``hidden_states`` of ``pixel_values`` (a ``(B, C, H, W)`` batch) from a ViT/DeiT."""
        hidden_states = vision_hidden_states(model, pixel_values)
        kwargs.setdefault("title", f"{getattr(model.config, '_name_or_path', '') or type(model).__name__}")
        return cls(hidden_states, prefix_tokens=prefix_token_count(model), grid=patch_grid(model),
                   images=pixel_values, **kwargs)

    # ---------------------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """Number of layers shown (L + 1: embeddings and L blocks)."""
        return len(self.grids)

    def _check(self) -> None:
        if not 0 <= self.layer < len(self.grids):
            raise ValueError(f"layer={self.layer} must be in [0, {len(self.grids) - 1}] (0 = embeddings)")
        if not 0 <= self.k < self.bins:
            raise ValueError(f"k={self.k} must be an integer in [0, {self.bins - 1}] (first C/2 bins)")
        if not 0 <= self.image_index < self.num_images:
            raise ValueError(f"image={self.image_index} must be in [0, {self.num_images - 1}]")

    def _image_for_display(self) -> np.ndarray:
        """Greyscale (channel mean) for 1-channel images, RGB rescaled to [0, 1] for 3-channel ones."""
        image = self.images[self.image_index]
        if image.shape[0] == 3:
            rgb = image.permute(1, 2, 0).numpy()
            return (rgb - rgb.min()) / max(float(rgb.max() - rgb.min()), 1e-12)
        return image.mean(dim=0).numpy()

    def _layer_spectrum(self) -> np.ndarray:
        """``|F_l[t, k]|`` for the chosen layer and image, ``(h, w, C)`` (cached per layer/image)."""
        key = (self.layer, self.image_index)
        if self._spectrum_cache is None or self._spectrum_cache[0] != key:
            tokens = self.grids[self.layer][self.image_index].permute(1, 2, 0)  # (h, w, C)
            self._spectrum_cache = (key, channel_spectrum(tokens).numpy())
        return self._spectrum_cache[1]

    def update(self, layer: int | None = None, k: int | None = None, image: int | None = None) -> np.ndarray:
        """Set any of layer / bin / image and redraw; returns the ``(h, w)`` map of ``|F_l[t, k]|``."""
        self._assign({"layer": ("layer", int), "k": ("k", int), "image": ("image_index", int)},
                     dict(layer=layer, k=k, image=image))
        self.signature = self.signatures[self.layer]
        self.signature_line.set_ydata(self.signature)
        self.marker.set_data([self.k], [self.signature[self.k]])
        self.ax_signature.set_title(f"layer {self.layer} signature (mean over {self.num_images} images)", fontsize=9)
        self.magnitude_map = self._layer_spectrum()[..., self.k]
        self.map_image.set_data(self.magnitude_map)
        low, high = float(self.magnitude_map.min()), float(self.magnitude_map.max())
        self.map_image.set_clim(low, high if high > low else low + 1e-12)
        self.ax_map.set_title(f"|F[t, k={self.k}]| over the {self.grid[0]}x{self.grid[1]} patches", fontsize=9)
        if self.image_artist is not None:
            self.image_artist.set_data(self._image_for_display())
            self.image_artist.autoscale()
        self.ax_image.set_title(f"image {self.image_index}", fontsize=9)
        return self.magnitude_map

    # ---------------------------------------------------------------------------------------
    def _controls(self, widgets, style, layout) -> dict[str, Any]:
        return dict(
            **layer_and_bin_sliders(widgets, style, layout, layer=self.layer, layers=(0, self.num_layers - 1),
                                    k=self.k, max_k=self.bins - 1),
            image=widgets.IntSlider(value=self.image_index, min=0, max=self.num_images - 1,
                                    description="image", style=style, layout=layout),
        )
