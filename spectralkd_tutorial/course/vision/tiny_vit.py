"""A tiny, randomly initialised ViT (or distilled DeiT), saved and loaded like a hub checkpoint.

Default sizes: 8x8 one-channel images, 2x2 patches -> a 4x4 grid of 16 patch tokens, C = 64,
6 blocks; the image processor saved beside it applies the digits normalisation (x - 0.5) / 0.5.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .digits import DIGITS_MEAN, DIGITS_STD
from .grids import _vision_config

__all__ = ["tiny_vit_config", "tiny_vit", "save_vision_checkpoint"]


def tiny_vit_config(
    *,
    distilled: bool = False,
    image_size: int | tuple[int, int] = 8,
    patch_size: int = 2,
    num_channels: int = 1,
    hidden_size: int = 64,
    num_layers: int = 6,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    label_names: Sequence[str] | None = None,
):
    """A small ``ViTConfig`` (or ``DeiTConfig`` when ``distilled``): 8x8 images, 2x2 patches -> 4x4 grid."""
    from transformers import DeiTConfig, ViTConfig

    if hidden_size % num_heads:
        raise ValueError(f"hidden_size={hidden_size} must be divisible by num_heads={num_heads}")
    sides = image_size if isinstance(image_size, (list, tuple)) else (image_size,)
    if any(side % patch_size for side in sides):
        raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}")
    names = list(label_names) if label_names is not None else [str(d) for d in range(10)]
    cls = DeiTConfig if distilled else ViTConfig
    return cls(
        image_size=image_size, patch_size=patch_size, num_channels=num_channels, hidden_size=hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_labels=len(names), id2label=dict(enumerate(names)), label2id={n: i for i, n in enumerate(names)},
    )


def save_vision_checkpoint(model: nn.Module, out_dir: str | os.PathLike, processor=None) -> Path:
    """``save_pretrained`` the model and an image processor (default: the digits normalisation).

    The directory then loads like a hub checkpoint (``AutoModel...``/``AutoImageProcessor``) and
    ``spectralkd analyze --model <out_dir>`` profiles it.
    """
    from transformers import ViTImageProcessor

    config = _vision_config(model)
    out = Path(out_dir)
    model.save_pretrained(out)
    if processor is None:
        height, width = (config.image_size if isinstance(config.image_size, (list, tuple))
                         else (config.image_size, config.image_size))
        channels = int(config.num_channels)
        processor = ViTImageProcessor(size={"height": int(height), "width": int(width)},
                                      image_mean=[DIGITS_MEAN] * channels, image_std=[DIGITS_STD] * channels)
    processor.save_pretrained(out)
    return out


def _save_checkpoint(out: Path, config, seed: int) -> None:
    from transformers import DeiTForImageClassificationWithTeacher, ViTForImageClassification

    torch.manual_seed(seed)
    cls = DeiTForImageClassificationWithTeacher if config.model_type == "deit" else ViTForImageClassification
    save_vision_checkpoint(cls(config), out)


def tiny_vit(out_dir: str | os.PathLike | None = None, *, seed: int = 0, distilled: bool = False, **sizes: Any):
    """A tiny, randomly initialised ViT (or distilled DeiT) classifier, loaded with ``from_pretrained``.

    The checkpoint (config, safetensors weights, image processor) is written with ``save_pretrained``
    to ``out_dir`` (default: a cache directory keyed by the settings) and read back, so the quick
    path runs the same loading code as a hub checkpoint. ``sizes``: see :func:`tiny_vit_config`.
    """
    from transformers import AutoModelForImageClassification, DeiTForImageClassificationWithTeacher

    from ...models.loading import quiet_transformers

    quiet_transformers()
    config = tiny_vit_config(distilled=distilled, **sizes)
    if out_dir is None:
        from ...models.tiny import cache_dir

        key = hashlib.sha1(json.dumps({**config.to_dict(), "seed": seed, "version": 1}, sort_keys=True,
                                      default=str).encode()).hexdigest()[:12]
        out = cache_dir() / f"tiny-{config.model_type}-{config.num_hidden_layers}x{config.hidden_size}-{key}"
    else:
        out = Path(out_dir)
    if not (out / "config.json").exists():
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        _save_checkpoint(tmp, config, seed)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            if out.exists():  # an empty directory the caller made
                out.rmdir()
            os.replace(tmp, out)
        except OSError:  # another process won the race (or out is not empty): keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
            if not (out / "config.json").exists():
                raise FileExistsError(f"{out} exists and is not an empty directory or a tiny ViT checkpoint")
    cls = DeiTForImageClassificationWithTeacher if distilled else AutoModelForImageClassification
    return cls.from_pretrained(out)
