"""Predictions and metrics of a classifier on a split (in-scope accuracy, OOS recall, ... see metrics)."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from ..data import IntentDataset, IntentSplit
from ..metrics import intent_metrics
from .batching import EncodedSplit, encode_split, eval_batches, model_inputs

SPLITS = ("train", "validation", "test")


@torch.no_grad()
def predict_encoded(model: nn.Module, encoded: EncodedSplit, batch_size: int, pad_token_id: int,
                    device: str | torch.device | None = None) -> Tensor:
    """Argmax predictions, in the order of ``encoded`` (batches are length-sorted internally)."""
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    predictions = torch.empty(len(encoded), dtype=torch.long)
    for indices, batch in eval_batches(encoded, batch_size, pad_token_id):
        predictions[indices] = model(**model_inputs(batch, device)).logits.argmax(-1).cpu()
    model.train(was_training)
    return predictions


def predict(model: nn.Module, tokenizer, texts: Sequence[str], *, batch_size: int = 256, max_length: int = 64,
            device: str | torch.device | None = None) -> Tensor:
    """Argmax predictions for ``texts``."""
    split = IntentSplit(list(texts), [0] * len(texts))
    return predict_encoded(model, encode_split(tokenizer, split, max_length), batch_size, tokenizer.pad_token_id, device)


@torch.no_grad()
def predict_probabilities(model: nn.Module, tokenizer, texts: Sequence[str], *, batch_size: int = 256,
                          max_length: int = 64, device: str | torch.device | None = None) -> Tensor:
    """Softmax class probabilities ``(len(texts), num_labels)`` for ``texts``, in their order."""
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    encoded = encode_split(tokenizer, IntentSplit(list(texts), [0] * len(texts)), max_length)
    probabilities = torch.empty(len(encoded), model.config.num_labels)
    for indices, batch in eval_batches(encoded, batch_size, tokenizer.pad_token_id):
        probabilities[indices] = model(**model_inputs(batch, device)).logits.float().softmax(-1).cpu()
    model.train(was_training)
    return probabilities


def evaluate(model: nn.Module, tokenizer, dataset: IntentDataset, split: str = "test", *, batch_size: int = 256,
             max_length: int = 64, device: str | torch.device | None = None) -> dict[str, float]:
    """Metrics of ``model`` on ``dataset.<split>``."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; choose train, validation or test")
    part: IntentSplit = getattr(dataset, split)
    predictions = predict(model, tokenizer, part.texts, batch_size=batch_size, max_length=max_length, device=device)
    return split_metrics(predictions, part.labels, dataset)


def split_metrics(predictions: Tensor, labels: Sequence[int], dataset: IntentDataset) -> dict[str, float]:
    return intent_metrics(predictions.tolist(), list(labels), oos_label=dataset.oos_label, num_labels=dataset.num_labels)
