"""Predictions and metrics of a classifier on a split (in-scope accuracy, OOS recall, ... see metrics).

With several processes (an ``accelerate.Accelerator`` with P > 1) each process predicts every P-th
example of the length-sorted split and the predictions are gathered with their indices: padded to
the same count with index -1, gathered, the padding dropped, and each example checked to appear
exactly once, so an uneven split neither duplicates nor drops an example.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..data import IntentDataset, IntentSplit
from ..common.metrics import intent_metrics
from .batching import EncodedSplit, collate, encode_split, eval_batches, model_inputs

SPLITS = ("train", "validation", "test")


def _sorted_order(encoded: EncodedSplit) -> list[int]:
    return sorted(range(len(encoded)), key=lambda i: len(encoded.input_ids[i]))


@torch.no_grad()
def _predict_rows(model: nn.Module, encoded: EncodedSplit, rows: Sequence[int], batch_size: int, pad_token_id: int,
                  device: torch.device) -> Tensor:
    out = torch.empty(len(rows), dtype=torch.long)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        out[start : start + len(chunk)] = model(**model_inputs(collate(encoded, chunk, pad_token_id), device)
                                                ).logits.argmax(-1).cpu()
    return out


def sharded_predictions(model: nn.Module, encoded: EncodedSplit, batch_size: int, pad_token_id: int,
                        device: str | torch.device | None = None, accelerator: Any = None) -> tuple[Tensor, list[int]]:
    """``(predictions in the order of encoded, examples predicted by each process)``."""
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    processes = accelerator.num_processes if accelerator is not None else 1
    rank = accelerator.process_index if accelerator is not None else 0
    rows = _sorted_order(encoded)[rank::processes]
    local = _predict_rows(model, encoded, rows, batch_size, pad_token_id, device)
    model.train(was_training)
    indices = torch.tensor(rows, dtype=torch.long)
    if processes > 1:
        indices, local, counts = _gather(accelerator, indices, local, len(encoded))
    else:
        counts = [len(rows)]
    if sorted(indices.tolist()) != list(range(len(encoded))):
        raise RuntimeError(f"evaluation covered {len(indices)} predictions for {len(encoded)} examples "
                           "(an example lost or duplicated across processes)")
    predictions = torch.empty(len(encoded), dtype=torch.long)
    predictions[indices] = local
    return predictions, counts


def _gather(accelerator: Any, indices: Tensor, predictions: Tensor, total: int) -> tuple[Tensor, Tensor, list[int]]:
    """All processes' (index, prediction) pairs: padded to one length with index -1, gathered, trimmed."""
    per_process = -(-total // accelerator.num_processes)
    pairs = torch.full((per_process, 2), -1, dtype=torch.long)
    pairs[: len(indices), 0], pairs[: len(indices), 1] = indices, predictions
    gathered = accelerator.gather(pairs.to(accelerator.device)).cpu().view(accelerator.num_processes, per_process, 2)
    counts = [int((g[:, 0] >= 0).sum()) for g in gathered]
    flat = gathered.view(-1, 2)
    flat = flat[flat[:, 0] >= 0]
    return flat[:, 0], flat[:, 1], counts


def predict_encoded(model: nn.Module, encoded: EncodedSplit, batch_size: int, pad_token_id: int,
                    device: str | torch.device | None = None, accelerator: Any = None) -> Tensor:
    """Argmax predictions, in the order of ``encoded`` (batches are length-sorted internally)."""
    return sharded_predictions(model, encoded, batch_size, pad_token_id, device, accelerator)[0]


def predict(model: nn.Module, tokenizer, texts: Sequence[str], *, batch_size: int = 256, max_length: int = 64,
            device: str | torch.device | None = None, accelerator: Any = None) -> Tensor:
    """Argmax predictions for ``texts``."""
    split = IntentSplit(list(texts), [0] * len(texts))
    return predict_encoded(model, encode_split(tokenizer, split, max_length), batch_size, tokenizer.pad_token_id, device,
                           accelerator)


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
             max_length: int = 64, device: str | torch.device | None = None, accelerator: Any = None) -> dict[str, float]:
    """Metrics of ``model`` on ``dataset.<split>`` (shared among the processes of ``accelerator``)."""
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; choose train, validation or test")
    part: IntentSplit = getattr(dataset, split)
    predictions = predict(model, tokenizer, part.texts, batch_size=batch_size, max_length=max_length, device=device,
                          accelerator=accelerator)
    return split_metrics(predictions, part.labels, dataset)


def split_metrics(predictions: Tensor, labels: Sequence[int], dataset: IntentDataset) -> dict[str, float]:
    return intent_metrics(predictions.tolist(), list(labels), oos_label=dataset.oos_label, num_labels=dataset.num_labels)
