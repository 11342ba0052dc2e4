"""Tokenise once, pad per batch: short utterances need no padding to a fixed length.

Each epoch's order is a function of (seed, epoch) alone, so an interrupted run that resumes sees
exactly the batches an uninterrupted one would. With P processes the *global* batch is the same
and process p takes its rows ``p::P`` of it (``shard``), padded to the global batch's width, so the
number of optimizer steps and the spectral losses (an FFT over the padded token axis) do not
depend on P.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from ..data import IntentSplit


@dataclass
class EncodedSplit:
    input_ids: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)


def encode_split(tokenizer, split: IntentSplit, max_length: int) -> EncodedSplit:
    encoded = tokenizer(list(split.texts), truncation=True, max_length=max_length)
    return EncodedSplit(encoded["input_ids"], list(split.labels))


def collate(encoded: EncodedSplit, indices: Sequence[int], pad_token_id: int, width: int | None = None
            ) -> dict[str, Tensor]:
    """Pad a batch to its own longest sequence (or to ``width``)."""
    rows = [encoded.input_ids[i] for i in indices]
    width = max(len(r) for r in rows) if width is None else width
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for j, row in enumerate(rows):
        input_ids[j, : len(row)] = torch.tensor(row)
        attention_mask[j, : len(row)] = 1
    return {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": torch.tensor([encoded.labels[i] for i in indices], dtype=torch.long),
    }


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The permutation of epoch ``epoch``: a function of (seed, epoch) only, so resume is exact."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=generator).tolist()


def batch_width(encoded: EncodedSplit, indices: Sequence[int]) -> int:
    """The padded width of the batch ``indices``: its longest sequence."""
    return max(len(encoded.input_ids[i]) for i in indices)


def shard(indices: Sequence[int], num_processes: int, process_index: int) -> tuple[list[int], float]:
    """Process ``process_index``'s rows of a global batch, and the weight of its loss.

    Rows ``p::P``. DDP averages the processes' gradients, so a process's mean loss is weighted by
    ``P * n_p / n``: the average is then the mean over the global batch. A process left without a
    row (a last batch smaller than P) takes one row with weight 0, since every process must run
    the forward and backward passes that DDP synchronises.
    """
    if num_processes == 1:
        return list(indices), 1.0
    rows = list(indices[process_index::num_processes])
    if not rows:
        return [indices[0]], 0.0
    return rows, num_processes * len(rows) / len(indices)


def eval_batches(encoded: EncodedSplit, batch_size: int, pad_token_id: int) -> list[tuple[list[int], dict[str, Tensor]]]:
    """Length-sorted batches (fast evaluation); each with the original indices."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded.input_ids[i]))
    return [(order[s : s + batch_size], collate(encoded, order[s : s + batch_size], pad_token_id))
            for s in range(0, len(order), batch_size)]


def text_batches(tokenizer, texts: Sequence[str], *, batch_size: int = 64, max_length: int = 64) -> list[dict]:
    """Tokenised batches of raw texts (padded per batch) for analysis; each a dict of model inputs."""
    if not texts:
        raise ValueError("texts is empty: nothing to analyse")
    return [dict(tokenizer(list(texts[i : i + batch_size]), truncation=True, max_length=max_length,
                           padding=True, return_tensors="pt"))
            for i in range(0, len(texts), batch_size)]


def model_inputs(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """The model's inputs of a batch (labels and bookkeeping left out), on ``device``."""
    return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
