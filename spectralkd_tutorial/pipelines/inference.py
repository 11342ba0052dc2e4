"""Using a saved classifier: predictions with probabilities, and metrics on a labelled data set.

A model saved by ``spectralkd distill`` (or ``spectralkd teacher``) is a ``save_pretrained``
directory: ``models.load_model_dir`` reads it, ``transformers.pipeline("text-classification",
model=DIR)`` reads it too. Its labels are the names in ``config.id2label``; the tokens per query it
was trained with are the saved tokenizer's ``model_max_length`` (set by ``distill``).

    model, tokenizer = load_model_dir("runs/mine/student/model")
    classify(model, tokenizer, ["wake me up at 7"])        # [("set_alarm", 0.93)]
    evaluate_saved(model, tokenizer, dataset, "test")       # metrics, labels matched by name
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..engine.evaluation import SPLITS, predict, predict_probabilities, split_metrics
from ..data import IntentDataset

MAX_SAVED_LENGTH = 4096  # a tokenizer's model_max_length above this means "not set" (transformers' huge default)


def label_names(model: nn.Module) -> list[str]:
    """The model's class names in index order (``config.id2label``; ``LABEL_i`` where none were saved)."""
    id2label = getattr(model.config, "id2label", None) or {}
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(model.config.num_labels)]


def has_label_names(model: nn.Module) -> bool:
    """Whether the model carries real class names (not transformers' ``LABEL_i`` placeholders)."""
    return any(name != f"LABEL_{i}" for i, name in enumerate(label_names(model)))


def label_order(model: nn.Module, dataset: IntentDataset, name: str) -> list[int] | None:
    """Where each of the model's classes is in ``dataset.label_names``; ``None`` when the orders match
    or the model has no names (then index i is taken to be the data's label i).

    A model whose names are not the data's labels raises a ``ValueError`` naming the difference.
    """
    if model.config.num_labels != dataset.num_labels:
        raise ValueError(f"{name} has {model.config.num_labels} labels but {dataset.name} has {dataset.num_labels}; "
                         "evaluate it on the data it was trained for")
    names = label_names(model)
    if not has_label_names(model) or names == list(dataset.label_names):
        return None
    missing = sorted(set(dataset.label_names) - set(names))
    if missing:
        unknown = sorted(set(names) - set(dataset.label_names))
        raise ValueError(f"{name} labels {unknown[:5]} are not in {dataset.name}, which has {missing[:5]} instead; "
                         "use the data the model was trained on (same label names)")
    return [list(dataset.label_names).index(label) for label in names]


def saved_max_length(model: nn.Module, tokenizer, default: int = 128) -> int:
    """Tokens per query the model was trained with: the tokenizer's ``model_max_length`` when it was
    set (``distill`` sets it), else ``default``; never more than the model's position embeddings."""
    length = getattr(tokenizer, "model_max_length", None)
    if not isinstance(length, int) or length > MAX_SAVED_LENGTH:
        length = default
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 2:
        length = min(length, positions - 2)
    return max(2, length)


def classify(model: nn.Module, tokenizer, texts: Sequence[str], *, max_length: int | None = None,
             batch_size: int = 64, device: str | torch.device | None = None) -> list[tuple[str, float]]:
    """``(label, probability)`` of the most probable class for each text."""
    if not texts:
        return []
    length = max_length or saved_max_length(model, tokenizer)
    probabilities = predict_probabilities(model, tokenizer, texts, batch_size=batch_size, max_length=length,
                                          device=device)
    names = label_names(model)
    best, index = probabilities.max(-1)
    return [(names[int(i)], float(p)) for p, i in zip(best, index)]


def evaluate_saved(model: nn.Module, tokenizer, dataset: IntentDataset, split: str = "test", *,
                   max_length: int | None = None, batch_size: int = 256, name: str = "the model",
                   device: str | torch.device | None = None) -> dict[str, float]:
    """Metrics of a saved classifier on ``dataset.<split>``, its classes matched to the data's by name."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; choose one of {SPLITS}")
    order = label_order(model, dataset, name)
    part = getattr(dataset, split)
    length = max_length or saved_max_length(model, tokenizer)
    predictions = predict(model, tokenizer, part.texts, batch_size=batch_size, max_length=length, device=device)
    if order is not None:
        predictions = torch.tensor(order)[predictions]
    return split_metrics(predictions, part.labels, dataset)


__all__ = ["classify", "evaluate_saved", "has_label_names", "label_names", "label_order", "saved_max_length"]
