"""The ViT's token layout: prefix tokens, the patch grid, and one bin's magnitude over the grid.

A ViT prepends P *prefix tokens* (ViT: [CLS]; distilled DeiT: [CLS] + distillation) to the
``h x w`` patch tokens, in row-major order, so a layer's ``(B, P + h*w, C)`` tokens are the paper's
``(B, C, h, w)`` feature map:

    grid[b, c, i, j] = hidden[b, P + i*w + j, c]

and the magnitude of channel-frequency bin k at every patch of one image is

    |F[i, j, k]| = |(1/C) * sum_c grid[b, c, i, j] * exp(-2*pi*i*k*c/C)|       (an h x w map)
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from ...analysis.spectral import channel_spectrum

__all__ = ["prefix_token_count", "patch_grid", "tokens_to_grid", "bin_magnitude_map"]


def _base_model(model: nn.Module) -> nn.Module:
    return getattr(model, "base_model", model)


def _vision_config(model_or_config: Any):
    config = getattr(model_or_config, "config", model_or_config)
    if not hasattr(config, "patch_size") or not hasattr(config, "image_size"):
        raise TypeError(
            f"{type(model_or_config).__name__} is not a vision transformer (its config has no image_size/"
            "patch_size); pass a Hugging Face ViT or DeiT model such as ViTForImageClassification"
        )
    return config


def prefix_token_count(model: nn.Module) -> int:
    """Number of leading non-patch tokens: ViT 1 ([CLS]); DeiT 2 ([CLS] + distillation token).

    Read from the model's embedding module (``cls_token``, ``distillation_token``, register tokens),
    so a DeiT checkpoint published as ``ViTForImageClassification`` correctly counts 1.
    """
    base = _base_model(model)
    embeddings = getattr(base, "embeddings", None)
    if embeddings is None:
        raise TypeError(
            f"{type(model).__name__} has no .embeddings module; pass a Hugging Face ViT or DeiT model "
            "(ViTModel, ViTForImageClassification, DeiTModel, DeiTForImageClassification(WithTeacher))"
        )
    count = 0
    for name in ("cls_token", "distillation_token"):
        if getattr(embeddings, name, None) is not None:
            count += 1
    registers = getattr(embeddings, "register_tokens", None)
    if registers is not None:
        count += int(registers.shape[1])
    if count == 0 and not hasattr(embeddings, "patch_embeddings"):
        raise TypeError(f"cannot tell how many prefix tokens {type(model).__name__} prepends")
    return count


def patch_grid(model_or_config: Any) -> tuple[int, int]:
    """``(h, w)`` = image size // patch size, per axis (e.g. 224/16 -> (14, 14))."""
    config = _vision_config(model_or_config)

    def pair(value) -> tuple[int, int]:
        if isinstance(value, (list, tuple)):
            return int(value[0]), int(value[1])
        return int(value), int(value)

    (height, width), (ph, pw) = pair(config.image_size), pair(config.patch_size)
    if height % ph or width % pw:
        raise ValueError(f"image size {(height, width)} is not a multiple of the patch size {(ph, pw)}")
    return height // ph, width // pw


def tokens_to_grid(hidden: Tensor, prefix_tokens: int, grid: tuple[int, int]) -> Tensor:
    """``(B, P + h*w, C)`` tokens -> ``(B, C, h, w)`` feature map, dropping the P prefix tokens."""
    if not isinstance(hidden, Tensor) or hidden.dim() != 3:
        raise ValueError(
            f"hidden must be a (B, tokens, C) tensor (one entry of hidden_states), got "
            f"{getattr(hidden, 'shape', type(hidden).__name__)}"
        )
    h, w = int(grid[0]), int(grid[1])
    batch, tokens, channels = hidden.shape
    if not 0 <= prefix_tokens < tokens or tokens - prefix_tokens != h * w:
        raise ValueError(
            f"{tokens} tokens minus prefix_tokens={prefix_tokens} is not the {h}x{w}={h * w} patch grid; "
            "use prefix_tokens=prefix_token_count(model) and grid=patch_grid(model)"
        )
    return hidden[:, prefix_tokens:, :].transpose(1, 2).reshape(batch, channels, h, w)

def bin_magnitude_map(hidden: Tensor, k: int, *, prefix_tokens: int, grid: tuple[int, int], sample: int = 0) -> Tensor:
    """``|F[t, k]|`` for every patch t of image ``sample``, as an ``(h, w)`` map.

    ``hidden``: one layer, ``(B, P + h*w, C)`` tokens or an already gridded ``(B, C, h, w)``.
    """
    grid_map = hidden if hidden.dim() == 4 else tokens_to_grid(hidden, prefix_tokens, grid)
    if not 0 <= sample < grid_map.shape[0]:
        raise ValueError(f"sample={sample} out of range: the batch has {grid_map.shape[0]} images")
    channels = grid_map.shape[1]
    if not 0 <= k < channels:
        raise ValueError(f"k={k} out of range: bins are 0..{channels - 1} for {channels} channels")
    image = grid_map[sample].permute(1, 2, 0)  # (h, w, C): one token per grid cell
    return channel_spectrum(image)[..., k]
