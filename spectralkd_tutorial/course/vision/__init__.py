"""SpectralKD's analysis on Vision Transformers (Hugging Face ViT and DeiT), offline or pretrained.

A ViT turns an image into a grid of ``h x w`` patches, embeds each patch as a C-wide token and
prepends *prefix tokens*: ViT has one ([CLS]); distilled DeiT has two ([CLS] + distillation).
``hidden_states[l]`` of shape ``(B, P + h*w, C)`` is the output of block l (layer 0 = embedding
output), taken *before* the final LayerNorm that produces ``last_hidden_state``. Dropping the P
prefix tokens, the patch tokens are in row-major order, so

    grid[b, c, i, j] = hidden[b, P + i*w + j, c]                      (B, C, h, w)

is the same data as the paper's feature map, and the paper's analysis (1-D FFT along channels,
divided by C, magnitude, mean over batch and spatial positions, then mean over bins)

    F[b, i, j, k] = (1/C) * sum_c grid[b, c, i, j] * exp(-2*pi*i*k*c/C)
    S_l[k]        = mean_{b,i,j} |F[b, i, j, k]|          I_l = mean_k S_l[k]

is :func:`spectralkd_tutorial.analysis.spectral.spectral_signature` on either layout with the prefix tokens
excluded. This subpackage adds the capture and the grid, a quick offline path (a tiny ViT trained on
scikit-learn's bundled 8x8 digits, real images) and the full path (``google/vit-base-patch16-224``
and DeiT-Tiny from the hub, on real CIFAR-10 test images), plus what ``spectralkd analyze`` needs.

Layer numbering: layer 0 = embedding output; layer l (1..L) = output of block l (``hidden_states[l]``).

Modules, one concern each: :mod:`.grids` (prefix tokens, patch grid), :mod:`.capture` (hidden states,
profiles), :mod:`.digits` (sklearn digits), :mod:`.tiny_vit` (the tiny checkpoint), :mod:`.training`,
:mod:`.shape` (reading an intensity curve), :mod:`.pretrained` (checkpoints, the hub, ``analyze``).
"""

from __future__ import annotations

from .capture import layer_grids, pixel_batches, profile_vision_model, vision_hidden_states
from .digits import DIGITS_MEAN, DIGITS_STD, DigitsData, digits_data, digits_pixels_for
from .grids import bin_magnitude_map, patch_grid, prefix_token_count, tokens_to_grid
from .pretrained import (HUB_IMAGE_DATASET, PRETRAINED_VISION_MODELS, VISION_MODEL_TYPES, analyze_pretrained_vision,
    analyze_vision_directory, is_vision_checkpoint, load_hub_images, load_vision_model)
from .shape import profile_shape
from .tiny_vit import save_vision_checkpoint, tiny_vit, tiny_vit_config
from .training import evaluate_vit, train_vit

__all__ = [
    "VISION_MODEL_TYPES",
    "PRETRAINED_VISION_MODELS",
    "HUB_IMAGE_DATASET",
    "prefix_token_count",
    "patch_grid",
    "tokens_to_grid",
    "vision_hidden_states",
    "layer_grids",
    "bin_magnitude_map",
    "pixel_batches",
    "profile_vision_model",
    "DigitsData",
    "digits_data",
    "tiny_vit_config",
    "tiny_vit",
    "save_vision_checkpoint",
    "train_vit",
    "evaluate_vit",
    "profile_shape",
    "is_vision_checkpoint",
    "load_vision_model",
    "digits_pixels_for",
    "analyze_vision_directory",
    "load_hub_images",
    "analyze_pretrained_vision",
]
