"""The practitioner's steps, sized by a preset: data -> teacher -> spectral analysis.

Each step writes its results to a directory and, run again, reuses them (a finished teacher is
loaded, not retrained; an interrupted one resumes from its checkpoint).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import torch

from .data import IntentDataset, load_intent_dataset
from .core.device import resolve_device
from .distill import TrainConfig, fit
from .io import atomic_write_json, read_json
from .models import load_classifier
from .presets import Preset
from .spectral import SpectralProfile, profile_model


def load_preset_data(preset: Preset, data_dir: str | os.PathLike | None = None) -> IntentDataset:
    """The preset's data set, subsampled when the preset says so."""
    dataset = load_intent_dataset(preset.dataset, variant=preset.dataset_variant, data_dir=data_dir)
    if preset.train_limit or preset.eval_limit:
        dataset = dataset.subset(train=preset.train_limit, validation=preset.eval_limit, test=preset.eval_limit)
    return dataset


def text_batches(tokenizer, texts: Sequence[str], *, batch_size: int = 64, max_length: int = 64) -> list[dict]:
    """Tokenised batches (padded per batch) for analysis; each a dict of model inputs."""
    if not texts:
        raise ValueError("texts is empty: nothing to analyse")
    return [dict(tokenizer(list(texts[i : i + batch_size]), truncation=True, max_length=max_length,
                           padding=True, return_tensors="pt"))
            for i in range(0, len(texts), batch_size)]


def train_config(preset: Preset, role: str, seed: int = 0, **overrides: Any) -> TrainConfig:
    """The preset's optimisation settings for ``role`` = ``"teacher"`` or ``"student"``."""
    if role not in ("teacher", "student"):
        raise ValueError(f"role={role!r}; use 'teacher' or 'student'")
    values = dict(epochs=getattr(preset, f"{role}_epochs"), learning_rate=getattr(preset, f"{role}_lr"),
                  batch_size=getattr(preset, f"{role}_batch_size"), max_length=preset.max_length, seed=seed,
                  mixed_precision=preset.mixed_precision, gradient_accumulation=preset.gradient_accumulation,
                  device=preset.device, warmup_ratio=0.1)
    values.update(overrides)
    return TrainConfig(**values)


def teacher_train_config(preset: Preset, seed: int = 0, **overrides: Any) -> TrainConfig:
    return train_config(preset, "teacher", seed, **overrides)


def student_train_config(preset: Preset, seed: int = 0, **overrides: Any) -> TrainConfig:
    return train_config(preset, "student", seed, **overrides)


def train_teacher(preset: Preset, out_dir: str | os.PathLike, *, dataset: IntentDataset | None = None,
                  data_dir: str | os.PathLike | None = None, seed: int = 0, resume: bool = True,
                  progress: bool = True, **overrides: Any):
    """Fine-tune the preset's teacher; returns ``(model, tokenizer, metrics_dict)``.

    If ``out_dir/model`` and ``out_dir/metrics.json`` exist the finished teacher is loaded instead.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = Path(out_dir)
    dataset = dataset or load_preset_data(preset, data_dir)
    if (out / "model" / "config.json").exists() and (out / "metrics.json").exists():
        model = AutoModelForSequenceClassification.from_pretrained(out / "model")
        tokenizer = AutoTokenizer.from_pretrained(out / "model")
        return model, tokenizer, read_json(out / "metrics.json")
    model, tokenizer = load_classifier(preset.teacher, dataset.label_names, seed=seed)
    config = teacher_train_config(preset, seed=seed, progress=progress, **overrides)
    fit(model, tokenizer, dataset, config, output_dir=out, resume=resume, description="teacher")
    (out / "checkpoint.pt").unlink(missing_ok=True)  # finished: model/ and metrics.json are what remain
    return model, tokenizer, read_json(out / "metrics.json")


def analysis_texts(dataset: IntentDataset, n: int, split: str = "validation") -> list[str]:
    """The first ``n`` texts of a split, in a fixed shuffled order (seed 0) so all labels appear."""
    texts = list(getattr(dataset, split).texts)
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0)).tolist()
    return [texts[i] for i in order[:n]]


def analyze_model(model, tokenizer, texts: Sequence[str], *, batch_size: int = 64, max_length: int = 64,
                  model_name: str | None = None, progress: bool = True, **metadata: Any) -> SpectralProfile:
    """Spectral profile of every layer of ``model`` over ``texts`` (padding excluded)."""
    device = resolve_device("auto")
    model.to(device)
    batches = text_batches(tokenizer, texts, batch_size=batch_size, max_length=max_length)
    return profile_model(model, batches, model_name=model_name, progress=progress, **metadata)


def write_profile(profile: SpectralProfile, out_dir: str | os.PathLike, *, stem: str = "intensity",
                  highlight: Sequence[int] = ()) -> tuple[Path, Path]:
    """``<stem>.json`` and ``<stem>.png`` in ``out_dir`` (both written atomically)."""
    from .viz import plot_intensity, save_figure
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    json_path = atomic_write_json(out / f"{stem}.json", profile.to_dict())
    figure = plot_intensity(profile, highlight=highlight)
    png_path = Path(save_figure(figure, out / f"{stem}.png"))
    plt.close(figure)
    return json_path, png_path
