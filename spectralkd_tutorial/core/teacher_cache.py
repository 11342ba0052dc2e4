"""The frozen teacher's outputs, computed once per grid instead of once per step per run.

Real tokens only are stored; ``batch`` re-pads them exactly as ``collate`` pads the inputs (padded
positions are zero, and every loss masks them).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from .batching import EncodedSplit, eval_batches, model_inputs


class TeacherCache:
    """Logits and chosen hidden states of the teacher for every training example."""

    def __init__(self, logits: Tensor, hidden: list[Tensor], layers: Sequence[int]) -> None:
        self.logits = logits
        self.hidden = hidden  # hidden[i]: (len(layers), L_i, H) for example i
        self.layers = tuple(int(layer) for layer in layers)
        self._index = {layer: j for j, layer in enumerate(self.layers)}

    def __len__(self) -> int:
        return len(self.hidden)

    @classmethod
    @torch.no_grad()
    def build(cls, teacher: nn.Module, encoded: EncodedSplit, layers: Sequence[int], pad_token_id: int, *,
              batch_size: int = 128, device: str | torch.device | None = None, progress: bool = True) -> "TeacherCache":
        from tqdm.auto import tqdm

        teacher.eval()
        device = torch.device(device) if device is not None else next(teacher.parameters()).device
        layers = sorted(set(int(layer) for layer in layers))
        logits = torch.empty(len(encoded), teacher.config.num_labels)
        hidden: list[Tensor | None] = [None] * len(encoded)
        for indices, batch in tqdm(eval_batches(encoded, batch_size, pad_token_id), desc="teacher cache",
                                   disable=not progress, leave=False):
            out = teacher(**model_inputs(batch, device), output_hidden_states=bool(layers))
            logits[indices] = out.logits.float().cpu()
            if layers:
                stacked = torch.stack([out.hidden_states[layer] for layer in layers], dim=1).float().cpu()
                lengths = batch["attention_mask"].sum(dim=1).tolist()
                for row, (i, length) in enumerate(zip(indices, lengths)):
                    hidden[i] = stacked[row, :, :length].clone()
        return cls(logits, [h if h is not None else torch.empty(0) for h in hidden], layers)

    def batch(self, indices: Sequence[int], width: int) -> tuple[Tensor, dict[int, Tensor]]:
        """``(logits (B, C), {layer: (B, width, H)})`` for the examples ``indices``."""
        logits = self.logits[list(indices)]
        if not self.layers:
            return logits, {}
        size = self.hidden[indices[0]].shape[-1]
        padded = torch.zeros(len(self.layers), len(indices), width, size)
        for row, i in enumerate(indices):
            h = self.hidden[i]
            padded[:, row, : h.shape[1]] = h
        return logits, {layer: padded[j] for layer, j in self._index.items()}

    def missing_layers(self, layers: Sequence[int]) -> list[int]:
        return [layer for layer in layers if layer not in self._index]

    def check(self, train_size: int, layers: Sequence[int]) -> None:
        """Raise unless the cache covers ``train_size`` examples and ``layers``."""
        if len(self) != train_size:
            raise ValueError(f"teacher_cache holds {len(self)} examples, the training split {train_size}")
        missing = self.missing_layers(layers)
        if missing:
            raise ValueError(f"teacher_cache lacks teacher layers {missing}; rebuild it with those layers")
