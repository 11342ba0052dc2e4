"""Checkpoints on disk or on the hub: ``spectralkd analyze --model <vision checkpoint>`` and the full path.

The full path profiles pretrained ViT/DeiT models on real images (CIFAR-10's test split, through
each checkpoint's own image processor); the paper analyses one batch of 32 ImageNet images.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch

from ...common.device import resolve_device
from ...analysis.spectral import SpectralProfile
from .capture import profile_vision_model
from .digits import digits_pixels_for

__all__ = [
    "VISION_MODEL_TYPES",
    "PRETRAINED_VISION_MODELS",
    "HUB_IMAGE_DATASET",
    "is_vision_checkpoint",
    "load_vision_model",
    "analyze_vision_directory",
    "load_hub_images",
    "analyze_pretrained_vision",
]

VISION_MODEL_TYPES = ("vit", "deit")
#: The full path's models. DeiT-Tiny (non-distilled) is published as a ``ViTForImageClassification``
#: (one prefix token); the distilled DeiT-Tiny is a ``DeiTForImageClassificationWithTeacher`` (two).
PRETRAINED_VISION_MODELS = (
    "google/vit-base-patch16-224",
    "facebook/deit-tiny-patch16-224",
    "facebook/deit-tiny-distilled-patch16-224",
)
#: Real images for the full path: CIFAR-10's test split (parquet on the hub, image column ``img``).
HUB_IMAGE_DATASET = "uoft-cs/cifar10"

def is_vision_checkpoint(name_or_path: str | os.PathLike) -> bool:
    """True for a local ``save_pretrained`` directory whose config.json says ``model_type`` vit/deit."""
    path = Path(str(name_or_path)).expanduser()
    config = path / "config.json"
    if not path.is_dir() or not config.is_file():
        return False
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return False
    return model_type in VISION_MODEL_TYPES


def load_vision_model(name_or_path: str | os.PathLike):
    """``(model, image_processor or None)`` for a ViT/DeiT directory or hub name, in eval mode.

    The class named in ``config.architectures`` is used (a ``...ForImageClassificationWithTeacher``
    stays one); the image processor is loaded when the checkpoint has one.
    """
    import transformers
    from transformers import AutoConfig, AutoImageProcessor, AutoModel

    from ...models.loading import quiet_transformers, resolve_model_source

    quiet_transformers()
    source = resolve_model_source(name_or_path)
    try:
        config = AutoConfig.from_pretrained(source)
    except OSError as error:
        raise FileNotFoundError(f"could not load the config of {str(name_or_path)!r}: {error}") from error
    if config.model_type not in VISION_MODEL_TYPES:
        raise ValueError(f"{str(name_or_path)!r} is a {config.model_type!r} model; expected one of {VISION_MODEL_TYPES}")
    architectures = list(getattr(config, "architectures", None) or [])
    cls = getattr(transformers, architectures[0], None) if architectures else None
    model = (cls or AutoModel).from_pretrained(source)
    processor = None
    local = Path(source)
    if not local.is_dir() or (local / "preprocessor_config.json").exists():
        try:
            processor = AutoImageProcessor.from_pretrained(source)
        except (OSError, ValueError):
            processor = None
    model.config._name_or_path = str(name_or_path)
    return model.eval(), processor

def analyze_vision_directory(path: str | os.PathLike, samples: int = 64, progress: bool = True, *,
                             batch_size: int = 32) -> SpectralProfile:
    """Spectral profile of a saved ViT/DeiT over sklearn digits (what ``spectralkd analyze`` runs)."""
    model, processor = load_vision_model(path)
    pixels, note = digits_pixels_for(model, samples, processor)
    return profile_vision_model(model, pixels, batch_size=batch_size, model_name=str(path), progress=progress,
                                images=note, dataset="sklearn-digits" if "digits" in note else "random-normal")

def load_hub_images(dataset: str = HUB_IMAGE_DATASET, split: str = "test", n: int = 32, *,
                    config_name: str | None = None, image_column: str | None = None) -> list:
    """The first ``n`` images (PIL, RGB) of a hub image data set, e.g. CIFAR-10's test split.

    Needs internet (the parquet files are downloaded once and cached by ``datasets``). The paper
    analyses one batch of 32 ImageNet validation images; any real photographs serve the purpose.
    """
    from ...models.loading import hub_offline

    if hub_offline() or os.environ.get("HF_DATASETS_OFFLINE", "").lower() in {"1", "true", "yes"}:
        raise FileNotFoundError(
            f"data set {dataset!r} must be downloaded from the Hugging Face hub, but HF_HUB_OFFLINE/"
            "HF_DATASETS_OFFLINE is set; unset it on a machine with internet, or use digits_data() offline"
        )
    from datasets import load_dataset

    data = load_dataset(dataset, config_name, split=f"{split}[:{int(n)}]")
    column = image_column or next((c for c in ("img", "image", "pixel_values") if c in data.column_names), None)
    if column is None:
        raise ValueError(f"{dataset!r} has no image column among {data.column_names}; pass image_column=")
    return [image.convert("RGB") for image in data[column]]


def analyze_pretrained_vision(name_or_path: str, images: Sequence, *, batch_size: int = 32,
                              progress: bool = True, device: str | torch.device | None = None,
                              **metadata: Any) -> SpectralProfile:
    """Profile a pretrained ViT/DeiT (hub name or directory) on PIL ``images`` via its image processor."""
    model, processor = load_vision_model(name_or_path)
    if processor is None:
        raise FileNotFoundError(f"{name_or_path!r} has no image processor (preprocessor_config.json)")
    if not images:
        raise ValueError("images is empty: pass e.g. load_hub_images(n=32)")
    model.to(resolve_device(device))
    batches = [processor(images=list(images[i : i + batch_size]), return_tensors="pt")
               for i in range(0, len(images), batch_size)]
    return profile_vision_model(model, batches, model_name=str(name_or_path), progress=progress,
                                images=f"{len(images)} images", **metadata)
