"""Capture a ViT/DeiT's ``hidden_states`` and profile every layer, prefix tokens excluded.

``hidden_states[l]`` (``(B, P + h*w, C)``) is the output of block l (layer 0 = embedding output),
before the final LayerNorm. The profile is the paper's analysis over the patch tokens only:

    S_l[k] = mean_{b,i,j} |(1/C) * sum_c grid[b, c, i, j] * exp(-2*pi*i*k*c/C)|      I_l = mean_k S_l[k]

streamed over batches (memory does not grow with the number of images).
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Iterator, Mapping

import torch
from torch import Tensor, nn

from ...analysis.spectral import LAYER_CONVENTION, SpectralProfile, profile_model
from .grids import patch_grid, prefix_token_count, tokens_to_grid

__all__ = ["vision_hidden_states", "layer_grids", "pixel_batches", "profile_vision_model"]


def _pixels(batch: Any) -> Tensor:
    if isinstance(batch, Mapping):
        batch = batch.get("pixel_values")
    if not isinstance(batch, Tensor) or batch.dim() != 4:
        raise ValueError(
            "pixel values must be a (B, channels, height, width) tensor or a dict with 'pixel_values' "
            f"(e.g. an image processor's output); got {getattr(batch, 'shape', type(batch).__name__)}"
        )
    return batch


@torch.no_grad()
def vision_hidden_states(model: nn.Module, pixel_values: Tensor | Mapping[str, Tensor]) -> tuple[Tensor, ...]:
    """``hidden_states`` of one batch, in eval mode: L+1 tensors ``(B, P + h*w, C)`` on the CPU.

    Entry l is the output of block l (entry 0: embeddings), before the final LayerNorm.
    """
    pixels = _pixels(pixel_values)
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        outputs = model(pixel_values=pixels.to(device), output_hidden_states=True)
    finally:
        model.train(was_training)
    if outputs.hidden_states is None:
        raise ValueError(f"{type(model).__name__} returned no hidden_states")
    return tuple(hidden.detach().float().cpu() for hidden in outputs.hidden_states)


def layer_grids(model: nn.Module, pixel_values: Tensor | Mapping[str, Tensor]) -> list[Tensor]:
    """Every layer as a ``(B, C, h, w)`` feature map (prefix tokens dropped)."""
    prefix, grid = prefix_token_count(model), patch_grid(model)
    return [tokens_to_grid(hidden, prefix, grid) for hidden in vision_hidden_states(model, pixel_values)]

class _PixelBatches:
    """Re-iterable, sized view of pixel tensors as ``{"pixel_values": ...}`` model-input dicts."""

    def __init__(self, source: Any, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        self.source, self.batch_size = source, batch_size

    def __len__(self) -> int:
        if isinstance(self.source, Tensor):
            return math.ceil(self.source.shape[0] / self.batch_size)
        return len(self.source)

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        if isinstance(self.source, Tensor):
            for start in range(0, self.source.shape[0], self.batch_size):
                yield {"pixel_values": self.source[start : start + self.batch_size]}
        else:
            for batch in self.source:
                yield {"pixel_values": _pixels(batch)}


def pixel_batches(pixels: Tensor | Iterable[Tensor | Mapping[str, Tensor]], batch_size: int = 32) -> _PixelBatches:
    """Batches of model inputs from a ``(N, C, H, W)`` tensor or an iterable of batches/dicts."""
    if isinstance(pixels, Tensor):
        _pixels(pixels)
        if pixels.shape[0] == 0:
            raise ValueError("pixels is empty: nothing to analyse")
    elif not hasattr(pixels, "__iter__"):
        raise TypeError(f"pixels must be a tensor or an iterable of batches, got {type(pixels).__name__}")
    return _PixelBatches(pixels, batch_size)


def profile_vision_model(
    model: nn.Module,
    pixel_batches_or_tensor: Tensor | Iterable[Tensor | Mapping[str, Tensor]],
    *,
    batch_size: int = 32,
    bins: int | None = None,
    model_name: str | None = None,
    progress: bool = True,
    **metadata: Any,
) -> SpectralProfile:
    """Signature and intensity of every layer of a ViT/DeiT over images, prefix tokens excluded.

    ``pixel_batches_or_tensor``: a ``(N, C, H, W)`` tensor (split into ``batch_size`` batches) or an
    iterable of pixel batches / processor outputs. Streams (memory does not grow with N).
    """
    prefix, grid = prefix_token_count(model), patch_grid(model)
    batches = pixel_batches(pixel_batches_or_tensor, batch_size)
    info = {"patch_grid": list(grid), "prefix_tokens_excluded": prefix, "layer_convention": LAYER_CONVENTION}
    info.update(metadata)
    return profile_model(model, batches, prefix_tokens=prefix, bins=bins, model_name=model_name,
                         progress=progress, **info)
