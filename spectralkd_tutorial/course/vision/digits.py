"""The quick path's real images: scikit-learn's bundled 8x8 handwritten digits (no download).

Pixels 0..16 are scaled to [0, 1] and normalised like ``ViTImageProcessor``:

    x = (p / 16 - 0.5) / 0.5          in [-1, 1]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .grids import _vision_config

__all__ = ["DIGITS_MEAN", "DIGITS_STD", "DigitsData", "digits_data", "digits_pixels_for"]

DIGITS_MEAN, DIGITS_STD = 0.5, 0.5  # like ViTImageProcessor: x in [0, 1] -> (x - 0.5) / 0.5


@dataclass
class DigitsData:
    """scikit-learn's 8x8 handwritten digits (1,797 real scans), split and normalised to [-1, 1].

    ``*_pixels``: ``(N, channels, image_size, image_size)`` float32; ``*_labels``: ``(N,)`` int64.
    """

    train_pixels: Tensor
    train_labels: Tensor
    test_pixels: Tensor
    test_labels: Tensor
    label_names: list[str]
    image_size: int
    channels: int
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def __repr__(self) -> str:
        return (f"DigitsData(train={len(self.train_labels)}, test={len(self.test_labels)}, "
                f"images={self.channels}x{self.image_size}x{self.image_size}, labels={self.num_labels})")


def _resize(pixels: Tensor, image_size: int | tuple[int, int], channels: int) -> Tensor:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if tuple(pixels.shape[-2:]) != size:
        pixels = torch.nn.functional.interpolate(pixels, size=size, mode="bilinear", align_corners=False)
    if channels != pixels.shape[1]:
        pixels = pixels.expand(-1, channels, -1, -1).contiguous()
    return pixels


def digits_data(test_size: float = 0.25, seed: int = 0, *, image_size: int = 8, channels: int = 1) -> DigitsData:
    """Stratified train/test split of ``sklearn.datasets.load_digits`` (bundled: no download).

    Pixels 0..16 are scaled to [0, 1], optionally resized (bilinear) to ``image_size`` and repeated
    to ``channels``, then normalised with mean 0.5 and std 0.5.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise ValueError(f"test_size={test_size} must be a fraction in (0, 1)")
    if channels < 1 or image_size < 1:
        raise ValueError(f"channels={channels} and image_size={image_size} must be >= 1")
    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
    images = _resize(images, image_size, channels)
    images = (images - DIGITS_MEAN) / DIGITS_STD
    labels = torch.tensor(digits.target, dtype=torch.long)
    indices = np.arange(len(labels))
    train_idx, test_idx = train_test_split(indices, test_size=test_size, random_state=seed, stratify=digits.target)
    train_idx, test_idx = torch.tensor(np.sort(train_idx)), torch.tensor(np.sort(test_idx))
    return DigitsData(
        train_pixels=images[train_idx], train_labels=labels[train_idx],
        test_pixels=images[test_idx], test_labels=labels[test_idx],
        label_names=[str(d) for d in range(10)], image_size=image_size, channels=channels,
        metadata={"source": "sklearn.datasets.load_digits (UCI optical digits, 8x8)", "test_size": test_size,
                  "seed": seed, "normalisation": "(x/16 - 0.5) / 0.5"},
    )

def digits_pixels_for(model: nn.Module, n: int, processor=None) -> tuple[Tensor, str]:
    """``n`` digits images shaped for ``model`` (size, channels) and a note saying how.

    Order: the held-out test split of :func:`digits_data` (seed 0), then the training split. With an
    image processor the images go through it (as uint8 greyscale/RGB, like any real image); without
    one they are resized bilinearly and normalised with mean 0.5, std 0.5. Models whose channel
    count is neither 1 nor 3 get standard-normal pixels instead, and the note says so.
    """
    config = _vision_config(model)
    size = config.image_size if isinstance(config.image_size, (list, tuple)) else (config.image_size,) * 2
    channels = int(config.num_channels)
    if n < 1:
        raise ValueError(f"samples={n} must be >= 1")
    if channels not in (1, 3):
        generator = torch.Generator().manual_seed(0)
        pixels = torch.randn(n, channels, int(size[0]), int(size[1]), generator=generator)
        return pixels, (f"random standard-normal pixels (seed 0): the model takes {channels}-channel images, "
                        "which greyscale digits cannot fill; intensities describe the network, not real images")
    data = digits_data(seed=0)
    raw = torch.cat([data.test_pixels, data.train_pixels])[:n] * DIGITS_STD + DIGITS_MEAN  # back to [0, 1]
    n = len(raw)
    if processor is not None:
        from PIL import Image

        mode = "RGB" if channels == 3 else "L"
        images = [Image.fromarray(np.round(img[0].numpy() * 255).astype(np.uint8), mode="L").convert(mode)
                  for img in raw]
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        how = f"through the checkpoint's image processor ({type(processor).__name__})"
    else:
        pixels = (_resize(raw, (int(size[0]), int(size[1])), channels) - DIGITS_MEAN) / DIGITS_STD
        how = "resized bilinearly, normalised (x - 0.5) / 0.5"
    note = (f"{n} sklearn digits images (held-out test split first, seed 0), 8x8 greyscale -> "
            f"{channels}x{size[0]}x{size[1]}, {how}")
    return pixels, note
