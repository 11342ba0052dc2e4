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

is :func:`spectralkd_tutorial.spectral.spectral_signature` on either layout with the prefix tokens
excluded. This module adds the capture and the grid, a quick offline path (a tiny ViT trained on
scikit-learn's bundled 8x8 digits, real images) and the full path (``google/vit-base-patch16-224``
and DeiT-Tiny from the hub, on real CIFAR-10 test images), plus what ``spectralkd analyze`` needs.

Layer numbering: layer 0 = embedding output; layer l (1..L) = output of block l (``hidden_states[l]``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .core.device import resolve_device
from .spectral import LAYER_CONVENTION, SpectralProfile, channel_spectrum, profile_model

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


# ---------------------------------------------------------------------------------------------
# Architecture: prefix tokens, patch grid, capture
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# Quick path: scikit-learn's digits and a tiny ViT
# ---------------------------------------------------------------------------------------------

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

    from .models import quiet_transformers

    quiet_transformers()
    config = tiny_vit_config(distilled=distilled, **sizes)
    if out_dir is None:
        from .tiny import cache_dir

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


@torch.no_grad()
def evaluate_vit(model: nn.Module, pixels: Tensor, labels: Tensor, *, batch_size: int = 256) -> float:
    """Top-1 accuracy of an image classifier on ``pixels``."""
    if len(pixels) != len(labels) or len(labels) == 0:
        raise ValueError(f"pixels ({len(pixels)}) and labels ({len(labels)}) must be non-empty and equally long")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    try:
        for start in range(0, len(labels), batch_size):
            logits = model(pixel_values=pixels[start : start + batch_size].to(device)).logits
            correct += int((logits.argmax(-1).cpu() == labels[start : start + batch_size]).sum())
    finally:
        model.train(was_training)
    return correct / len(labels)


def train_vit(
    model: nn.Module,
    data: DigitsData,
    epochs: int,
    *,
    lr: float = 1e-3,
    batch_size: int = 32,
    weight_decay: float = 0.0,
    warmup: float = 0.1,
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Cross-entropy training with AdamW and a one-cycle schedule; evaluates on the test split.

    Returns ``{"history": [{"epoch", "loss", "test_accuracy"}, ...], "test_accuracy": final}``.
    Each epoch's order depends on (seed, epoch) only; incomplete last batches are dropped.
    """
    from tqdm.auto import tqdm

    if epochs < 1:
        raise ValueError(f"epochs={epochs} must be >= 1")
    n = len(data.train_labels)
    steps_per_epoch = n // batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch_size={batch_size} is larger than the training set ({n} images)")
    device = resolve_device(device)
    model.to(device)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    total = epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=warmup)
    history = []
    bar = tqdm(total=total, desc="training ViT", disable=not progress, leave=False)
    try:
        for epoch in range(epochs):
            model.train()
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
            running = 0.0
            for step in range(steps_per_epoch):
                index = order[step * batch_size : (step + 1) * batch_size]
                loss = model(pixel_values=data.train_pixels[index].to(device),
                             labels=data.train_labels[index].to(device)).loss
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"loss became {loss.item()} at epoch {epoch + 1}; lower lr={lr}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                running += float(loss.detach())
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{float(loss.detach()):.3f}")
            accuracy = evaluate_vit(model, data.test_pixels, data.test_labels)
            history.append({"epoch": epoch + 1, "loss": running / steps_per_epoch, "test_accuracy": accuracy})
    finally:
        bar.close()
        model.eval()
    return {"history": history, "test_accuracy": history[-1]["test_accuracy"], "epochs": epochs,
            "train_size": n, "test_size": len(data.test_labels)}


# ---------------------------------------------------------------------------------------------
# Reading an intensity curve
# ---------------------------------------------------------------------------------------------

def _rank_correlation(values: Sequence[float]) -> float:
    ranks = np.argsort(np.argsort(np.asarray(values, dtype=float)))
    depth = np.arange(len(values))
    if len(values) < 2 or np.all(ranks == ranks[0]):
        return 0.0
    return float(np.corrcoef(depth, ranks)[0, 1])


def profile_shape(intensities: Sequence[float] | SpectralProfile) -> dict[str, Any]:
    """Which layers are hot, and is the curve a U (the paper's CaiT-S24 finding)?

    * hot layers: ``I_l >= min + 0.5 * (max - min)`` (upper half of the curve's range)
    * ``"U-shape"``: the minimum is an interior layer and both end layers exceed the interior mean
    * ``"rising"`` / ``"falling"``: Spearman rank correlation with depth >= 0.8 / <= -0.8
    * ``"peaked"``: the maximum is interior and both ends are below the interior mean
    * otherwise ``"mixed"``
    """
    values = np.asarray(intensities.intensities if isinstance(intensities, SpectralProfile) else intensities,
                        dtype=float)
    if values.ndim != 1 or len(values) < 3:
        raise ValueError(f"need an intensity per layer for at least 3 layers, got {values.shape}")
    low, high = float(values.min()), float(values.max())
    hot = [int(l) for l in np.flatnonzero(values >= low + 0.5 * (high - low))]
    interior = values[1:-1]
    interior_mean = float(interior.mean())
    rho = _rank_correlation(values)
    coldest, hottest = int(values.argmin()), int(values.argmax())
    last = len(values) - 1
    if 0 < coldest < last and values[0] > interior_mean and values[-1] > interior_mean:
        shape = "U-shape"
    elif rho >= 0.8:
        shape = "rising"
    elif rho <= -0.8:
        shape = "falling"
    elif 0 < hottest < last and values[0] < interior_mean and values[-1] < interior_mean:
        shape = "peaked"
    else:
        shape = "mixed"
    words = {
        "U-shape": "high at both ends and low in the middle (a U, like the paper's CaiT-S24)",
        "rising": "rising with depth (hottest layers at the end, not a U)",
        "falling": "falling with depth (hottest layers at the start, not a U)",
        "peaked": "highest in the middle (the opposite of a U)",
        "mixed": "neither a U nor monotone",
    }[shape]
    return {
        "shape": shape, "hot_layers": hot, "hottest": hottest, "coldest": coldest,
        "rank_correlation_with_depth": rho, "ends_over_interior": float((values[0] + values[-1]) / 2 / interior_mean)
        if interior_mean else float("inf"),
        "description": f"{words}; hot layers {hot} (hottest {hottest}, coldest {coldest})",
    }


# ---------------------------------------------------------------------------------------------
# ``spectralkd analyze --model <vision checkpoint>``
# ---------------------------------------------------------------------------------------------

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

    from .models import quiet_transformers, resolve_model_source

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


def analyze_vision_directory(path: str | os.PathLike, samples: int = 64, progress: bool = True, *,
                             batch_size: int = 32) -> SpectralProfile:
    """Spectral profile of a saved ViT/DeiT over sklearn digits (what ``spectralkd analyze`` runs)."""
    model, processor = load_vision_model(path)
    pixels, note = digits_pixels_for(model, samples, processor)
    return profile_vision_model(model, pixels, batch_size=batch_size, model_name=str(path), progress=progress,
                                images=note, dataset="sklearn-digits" if "digits" in note else "random-normal")


# ---------------------------------------------------------------------------------------------
# Full path: pretrained ViT/DeiT from the hub on real images (needs internet)
# ---------------------------------------------------------------------------------------------

def load_hub_images(dataset: str = HUB_IMAGE_DATASET, split: str = "test", n: int = 32, *,
                    config_name: str | None = None, image_column: str | None = None) -> list:
    """The first ``n`` images (PIL, RGB) of a hub image data set, e.g. CIFAR-10's test split.

    Needs internet (the parquet files are downloaded once and cached by ``datasets``). The paper
    analyses one batch of 32 ImageNet validation images; any real photographs serve the purpose.
    """
    from .models import hub_offline

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
