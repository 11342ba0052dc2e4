"""One batch of the training loop: the loss and its parts, backward, and (at a window's end) a step.

    L = (1 - alpha) * CE(student, y) + alpha * T^2 * KL(teacher_T || student_T) + beta * L_feature

``train_step`` (one global batch: this process's rows, the loss, backward) -> ``compute_loss``
(cross-entropy alone without a teacher, else ``losses.distillation_loss``) -> ``_teacher_outputs``
(the frozen teacher, or its cache). Process p trains on rows ``p::P`` of the global batch
(``batching.shard``) with weight ``P * n_p / n``, so that DDP's average of the gradients is the
gradient of the global batch's mean loss.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import torch
from torch import Tensor, nn

from ..common.errors import TrainingError
from ..losses import distillation_loss, sentence_features
from .batching import batch_width, collate, model_inputs, shard

if TYPE_CHECKING:
    from .training import Distillation, Loop


def train_step(loop: "Loop") -> dict[str, Tensor]:
    """One global batch: this process's rows of it, the loss, backward, and (window end) a step."""
    epoch, within = divmod(loop.batch_index, loop.batches_per_epoch)
    size = loop.train_config.batch_size
    batch_indices = loop.epoch_order(epoch)[within * size : (within + 1) * size]
    indices, weight = shard(batch_indices, loop.processes, loop.accelerator.process_index)
    batch = collate(loop.train, indices, loop.pad_id, width=batch_width(loop.train, batch_indices))
    teacher_batch = None
    if loop.teacher_train is not None:  # the same texts in the teacher's own tokens
        teacher_batch = collate(loop.teacher_train, indices, loop.distillation.teacher_tokenizer.pad_token_id,
                                width=batch_width(loop.teacher_train, batch_indices))
    last = ((loop.batch_index + 1) % loop.train_config.gradient_accumulation == 0
            or loop.batch_index + 1 == loop.total_batches)
    with loop.optimization.window(last):
        with loop.accelerator.autocast():
            parts = compute_loss(loop, batch, indices, teacher_batch)
        values = _batch_means(loop, parts, len(indices) if weight else 0, len(batch_indices))  # the one host sync
        if not math.isfinite(values["loss"]):  # the global batch's loss: every process stops together
            raise TrainingError(f"non-finite loss at batch {loop.batch_index} ({values['loss']}); lower "
                                f"the learning rate ({loop.train_config.learning_rate}) or check the inputs")
        loop.batch_index += 1
        stepped = loop.optimization.backward(parts["loss"] if weight == 1.0 else parts["loss"] * weight,
                                             last_of_window=last)
    for key, scalar in values.items():
        loop.running[key] = 0.9 * loop.running.get(key, scalar) + 0.1 * scalar
    loop.batch_values, loop.stepped = values, stepped
    return parts


def _batch_means(loop: "Loop", parts: dict[str, Tensor], rows: int, batch_rows: int) -> dict[str, float]:
    """The loss parts averaged over the global batch (each process's mean weighted by its rows)."""
    if loop.processes == 1:  # one transfer for all the parts (the same floats as one float() each)
        return dict(zip(parts, torch.stack([value.detach().float() for value in parts.values()]).tolist()))
    local = torch.stack([value.detach().float() * rows for value in parts.values()]).to(loop.device)
    total = loop.accelerator.reduce(local, reduction="sum").cpu() / batch_rows
    return {key: float(v) for key, v in zip(parts, total)}


def compute_loss(loop: "Loop", batch: dict[str, Tensor], indices: Sequence[int],
                 teacher_batch: dict[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Cross-entropy alone (no teacher), or the distillation loss with its parts.

    ``teacher_batch``: the same texts in the teacher's tokens when the tokenizers differ; each
    model's hidden states are then mean-pooled over its own real tokens (``sentence_features``)."""
    inputs = model_inputs(batch, loop.device)
    labels = batch["labels"].to(loop.device)
    distillation = loop.distillation
    need_hidden = distillation is not None and distillation.needs_hidden
    out = loop.trainable(**inputs, output_hidden_states=need_hidden)
    if distillation is None:
        ce = nn.functional.cross_entropy(out.logits.float(), labels, label_smoothing=loop.train_config.label_smoothing)
        return {"loss": ce, "ce": ce}
    pairs = distillation.mapping.pairs if need_hidden else ()
    teacher_inputs = inputs if teacher_batch is None else model_inputs(teacher_batch, loop.device)
    teacher_logits, teacher_hidden = _teacher_outputs(distillation, teacher_inputs, indices, pairs, need_hidden)
    student_hidden, mask = [out.hidden_states[s] for s, _ in pairs], inputs["attention_mask"]
    if teacher_batch is not None:
        student_hidden = [sentence_features(h, mask) for h in student_hidden]
        teacher_hidden = [sentence_features(h, teacher_inputs["attention_mask"]) for h in teacher_hidden]
        mask = None
    return distillation_loss(out.logits.float(), teacher_logits.float(), labels, student_hidden, teacher_hidden,
                             mask, distillation.loss, projections=loop.projections)


def _teacher_outputs(distillation: "Distillation", inputs: dict[str, Tensor], indices: Sequence[int],
                     pairs: Sequence[tuple[int, int]], need_hidden: bool) -> tuple[Tensor, list[Tensor]]:
    device = inputs["input_ids"].device
    if distillation.cache is not None:
        logits, cached = distillation.cache.batch(indices, inputs["input_ids"].shape[1])
        return logits.to(device), [cached[t].to(device) for _, t in pairs]
    with torch.no_grad():
        out = distillation.teacher(**inputs, output_hidden_states=need_hidden)
    return out.logits, [out.hidden_states[t] for _, t in pairs]
