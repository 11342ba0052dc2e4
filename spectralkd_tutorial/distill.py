"""One training loop for the teacher (cross-entropy) and for every student (distillation).

    L = (1 - alpha) * CE(student, y) + alpha * T^2 * KL(teacher_T || student_T) + beta * L_feature

``L_feature`` is chosen by ``DistillationLossConfig.feature_loss`` and applied to the layer pairs
of a :class:`~spectralkd_tutorial.selection.LayerMapping`. Without a teacher the loop fine-tunes
with cross-entropy alone.

Robustness: checkpoints (model, optimizer, scheduler, RNG state, history) are written atomically at
every epoch end (and every ``checkpoint_every`` optimizer steps); ``resume=True`` continues from
the last one and reaches the same result as an uninterrupted run, because each epoch's data order
is a function of (seed, epoch) alone. A non-finite loss stops the run with a clear error.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from .core.device import resolve_device
from .data import IntentDataset, IntentSplit
from .io import atomic_torch_save, atomic_write_json, read_json
from .losses import DistillationLossConfig, LayerProjections, distillation_loss
from .metrics import intent_metrics
from .selection import LayerMapping
from .spectral import profile_model


@dataclass
class TrainConfig:
    """Optimisation settings shared by teacher fine-tuning and distillation."""

    epochs: float = 3.0
    learning_rate: float = 1e-4
    batch_size: int = 32
    eval_batch_size: int = 256
    weight_decay: float = 0.01
    warmup_ratio: float = 0.06
    max_length: int = 64
    seed: int = 0
    gradient_accumulation: int = 1
    max_grad_norm: float = 1.0
    label_smoothing: float = 0.0
    mixed_precision: bool = False
    device: str = "auto"
    checkpoint_every: int | None = None
    eval_each_epoch: bool = True
    dynamics_samples: int = 0
    progress: bool = True

    def __post_init__(self) -> None:
        if self.epochs <= 0:
            raise ValueError(f"epochs={self.epochs} must be > 0")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate={self.learning_rate} must be > 0")
        if self.batch_size < 1 or self.gradient_accumulation < 1:
            raise ValueError("batch_size and gradient_accumulation must be >= 1")


@dataclass
class TrainResult:
    """What a run produced: final metrics per split, per-epoch history, and where it was saved."""

    metrics: dict[str, dict[str, float]]
    history: list[dict[str, Any]]
    dynamics: list[dict[str, Any]] = field(default_factory=list)
    output_dir: str | None = None
    seconds: float = 0.0
    steps: int = 0
    resumed_from_step: int = 0


# ---------------------------------------------------------------------------------------------
# Data: tokenise once, pad per batch (short utterances need no padding to a fixed length)
# ---------------------------------------------------------------------------------------------

@dataclass
class EncodedSplit:
    input_ids: list[list[int]]
    labels: list[int]

    def __len__(self) -> int:
        return len(self.labels)


def encode_split(tokenizer, split: IntentSplit, max_length: int) -> EncodedSplit:
    encoded = tokenizer(list(split.texts), truncation=True, max_length=max_length)
    return EncodedSplit(encoded["input_ids"], list(split.labels))


def collate(encoded: EncodedSplit, indices: Sequence[int], pad_token_id: int) -> dict[str, Tensor]:
    """Pad a batch to its own longest sequence."""
    rows = [encoded.input_ids[i] for i in indices]
    width = max(len(r) for r in rows)
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


def eval_batches(encoded: EncodedSplit, batch_size: int, pad_token_id: int) -> list[tuple[list[int], dict[str, Tensor]]]:
    """Length-sorted batches (fast evaluation); each with the original indices."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded.input_ids[i]))
    return [(order[s : s + batch_size], collate(encoded, order[s : s + batch_size], pad_token_id))
            for s in range(0, len(order), batch_size)]


def _model_inputs(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}


@torch.no_grad()
def predict(model: nn.Module, tokenizer, texts: Sequence[str], *, batch_size: int = 256, max_length: int = 64,
            device: str | torch.device | None = None) -> Tensor:
    """Argmax predictions for ``texts``."""
    split = IntentSplit(list(texts), [0] * len(texts))
    return _predict_encoded(model, encode_split(tokenizer, split, max_length), batch_size,
                            tokenizer.pad_token_id, device)


def _predict_encoded(model: nn.Module, encoded: EncodedSplit, batch_size: int, pad_token_id: int,
                     device: str | torch.device | None = None) -> Tensor:
    was_training = model.training
    model.eval()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    predictions = torch.empty(len(encoded), dtype=torch.long)
    for indices, batch in eval_batches(encoded, batch_size, pad_token_id):
        logits = model(**_model_inputs(batch, device)).logits
        predictions[indices] = logits.argmax(-1).cpu()
    model.train(was_training)
    return predictions


def evaluate(model: nn.Module, tokenizer, dataset: IntentDataset, split: str = "test", *, batch_size: int = 256,
             max_length: int = 64, device: str | torch.device | None = None) -> dict[str, float]:
    """Metrics of ``model`` on ``dataset.<split>`` (in-scope accuracy, OOS recall, ... see metrics)."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"split={split!r}; choose train, validation or test")
    part: IntentSplit = getattr(dataset, split)
    encoded = encode_split(tokenizer, part, max_length)
    predictions = _predict_encoded(model, encoded, batch_size, tokenizer.pad_token_id, device)
    return intent_metrics(predictions.tolist(), part.labels, oos_label=dataset.oos_label,
                          num_labels=dataset.num_labels)


class TeacherCache:
    """The frozen teacher's logits and chosen hidden states for every training example.

    The teacher never changes during distillation, so its forward pass over the training set is
    computed once (per grid) instead of once per step per run. Real tokens only are stored;
    ``batch`` re-pads them exactly as ``collate`` pads the inputs (padded positions are zero, and
    every loss masks them).
    """

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
        batches = eval_batches(encoded, batch_size, pad_token_id)
        for indices, batch in tqdm(batches, desc="teacher cache", disable=not progress, leave=False):
            out = teacher(**_model_inputs(batch, device), output_hidden_states=bool(layers))
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


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------

def _linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int):
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _dynamics_batches(tokenizer, texts: Sequence[str], max_length: int, batch_size: int = 64):
    return [dict(tokenizer(list(texts[i : i + batch_size]), truncation=True, max_length=max_length,
                           padding=True, return_tensors="pt"))
            for i in range(0, len(texts), batch_size)]


def _needs_hidden(mapping: LayerMapping | None, loss_config: DistillationLossConfig | None) -> bool:
    return bool(mapping and mapping.pairs and loss_config and loss_config.feature_loss != "none" and loss_config.beta > 0)


def fit(
    model: nn.Module,
    tokenizer,
    dataset: IntentDataset,
    config: TrainConfig,
    *,
    teacher: nn.Module | None = None,
    mapping: LayerMapping | None = None,
    loss_config: DistillationLossConfig | None = None,
    projections: LayerProjections | None = None,
    output_dir: str | os.PathLike | None = None,
    resume: bool = True,
    save_model: bool = True,
    stop_after_steps: int | None = None,
    description: str = "train",
    teacher_cache: TeacherCache | None = None,
) -> TrainResult:
    """Train ``model`` on ``dataset.train`` (distilling from ``teacher`` when given).

    ``stop_after_steps`` simulates an interruption (used by the resume test and demos).
    ``teacher_cache``: precomputed teacher outputs for ``dataset.train`` (see :class:`TeacherCache`).
    """
    from tqdm.auto import tqdm

    start_time = time.perf_counter()
    device = resolve_device(config.device)
    distilling = teacher is not None
    if distilling and loss_config is None:
        loss_config = DistillationLossConfig()
    if loss_config is not None and loss_config.feature_loss in ("projection", "spectral-projection") and _needs_hidden(mapping, loss_config):
        if projections is None:
            projections = LayerProjections(len(mapping.pairs), model.config.hidden_size, teacher.config.hidden_size)
    need_hidden = distilling and _needs_hidden(mapping, loss_config)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        raise ValueError("the tokenizer has no pad token; set tokenizer.pad_token before training")

    model.to(device)
    if teacher is not None:
        teacher.to(device).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    if projections is not None:
        projections.to(device)
        params += list(projections.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate,
    )

    train = encode_split(tokenizer, dataset.train, config.max_length)
    if teacher_cache is not None:
        if not distilling:
            raise ValueError("teacher_cache was given but no teacher: pass the teacher too")
        if len(teacher_cache) != len(train):
            raise ValueError(f"teacher_cache holds {len(teacher_cache)} examples, the training split {len(train)}")
        missing = teacher_cache.missing_layers(mapping.teacher_layers if need_hidden else [])
        if missing:
            raise ValueError(f"teacher_cache lacks teacher layers {missing}; rebuild it with those layers")
    validation = encode_split(tokenizer, dataset.validation, config.max_length)
    batches_per_epoch = math.ceil(len(train) / config.batch_size)
    total_batches = max(1, round(config.epochs * batches_per_epoch))
    total_steps = math.ceil(total_batches / config.gradient_accumulation)
    scheduler = _linear_schedule(optimizer, int(config.warmup_ratio * total_steps), total_steps)

    dynamics_texts = dataset.validation.texts[: config.dynamics_samples] if config.dynamics_samples else []
    dynamics_batches = _dynamics_batches(tokenizer, dynamics_texts, config.max_length) if dynamics_texts else []

    out = Path(output_dir) if output_dir is not None else None
    checkpoint_path = out / "checkpoint.pt" if out is not None else None
    history: list[dict[str, Any]] = []
    dynamics: list[dict[str, Any]] = []
    running: dict[str, float] = {}
    next_batch = 0
    if checkpoint_path is not None and resume and checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if state.get("total_batches") != total_batches or state.get("train_size") != len(train):
            raise ValueError(
                f"{checkpoint_path} was written by a run with other settings (batches {state.get('total_batches')} vs "
                f"{total_batches}); delete it or use another output directory"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if projections is not None and state.get("projections") is not None:
            projections.load_state_dict(state["projections"])
        torch.set_rng_state(state["rng"])
        history, dynamics, next_batch = state["history"], state["dynamics"], state["next_batch"]
        running.update(state.get("running", {}))
    resumed_from = next_batch

    def record_dynamics(epoch: float) -> None:
        if dynamics_batches:
            profile = profile_model(model, dynamics_batches, progress=False)
            dynamics.append({"epoch": epoch, "intensities": profile.intensities})

    def save_checkpoint(batch_index: int) -> None:
        if checkpoint_path is None:
            return
        atomic_torch_save(checkpoint_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "projections": projections.state_dict() if projections is not None else None,
            "rng": torch.get_rng_state(), "history": history, "dynamics": dynamics, "next_batch": batch_index,
            "running": dict(running),
            "total_batches": total_batches, "train_size": len(train), "config": asdict(config),
        })

    if next_batch == 0:
        torch.manual_seed(config.seed)  # dropout stream; restored from the checkpoint on resume
        record_dynamics(0.0)
    model.train()
    use_amp = config.mixed_precision and device.type == "cuda"
    # bf16 where the GPU has it (A100, H100, L4); else fp16 with loss scaling (T4, V100)
    autocast_dtype = torch.bfloat16 if use_amp and torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp and autocast_dtype == torch.float16)
    bar = tqdm(total=total_batches, initial=next_batch, desc=description, disable=not config.progress,
               leave=False, dynamic_ncols=True)
    batch_index = next_batch
    steps_done = 0
    while batch_index < total_batches:
        epoch, within = divmod(batch_index, batches_per_epoch)
        order = epoch_order(len(train), config.seed, epoch)
        indices = order[within * config.batch_size : (within + 1) * config.batch_size]
        batch = collate(train, indices, pad_id)
        inputs = _model_inputs(batch, device)
        labels = batch["labels"].to(device)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=use_amp):
            student_out = model(**inputs, output_hidden_states=need_hidden)
            if distilling:
                pairs = mapping.pairs if need_hidden else ()
                if teacher_cache is not None:
                    teacher_logits, cached = teacher_cache.batch(indices, inputs["input_ids"].shape[1])
                    teacher_logits = teacher_logits.to(device)
                    teacher_hidden = [cached[t].to(device) for _, t in pairs]
                else:
                    with torch.no_grad():
                        teacher_out = teacher(**inputs, output_hidden_states=need_hidden)
                    teacher_logits = teacher_out.logits
                    teacher_hidden = [teacher_out.hidden_states[t] for _, t in pairs]
                parts = distillation_loss(
                    student_out.logits.float(), teacher_logits.float(), labels,
                    [student_out.hidden_states[s] for s, _ in pairs], teacher_hidden,
                    inputs["attention_mask"], loss_config, projections=projections,
                )
            else:
                ce = nn.functional.cross_entropy(student_out.logits.float(), labels,
                                                 label_smoothing=config.label_smoothing)
                if not torch.isfinite(ce):
                    raise FloatingPointError(
                        f"non-finite loss at batch {batch_index} ({ce.item()}); lower the learning rate "
                        f"({config.learning_rate}) or check the inputs"
                    )
                parts = {"loss": ce, "ce": ce}
        scaler.scale(parts["loss"] / config.gradient_accumulation).backward()
        for key, value in parts.items():
            scalar = float(value.detach())
            running[key] = 0.9 * running.get(key, scalar) + 0.1 * scalar
        batch_index += 1
        bar.update(1)
        if batch_index % config.gradient_accumulation == 0 or batch_index == total_batches:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            steps_done += 1
            if batch_index % 10 == 0:
                bar.set_postfix({k: f"{v:.3f}" for k, v in running.items()})
        epoch_end = batch_index % batches_per_epoch == 0 or batch_index == total_batches
        if epoch_end:
            epoch_done = batch_index / batches_per_epoch
            entry: dict[str, Any] = {"epoch": round(epoch_done, 4), **{f"train_{k}": v for k, v in running.items()}}
            if config.eval_each_epoch and len(validation):
                predictions = _predict_encoded(model, validation, config.eval_batch_size, pad_id, device)
                entry["validation"] = intent_metrics(predictions.tolist(), validation.labels,
                                                     oos_label=dataset.oos_label, num_labels=dataset.num_labels)
                model.train()
            history.append(entry)
            record_dynamics(round(epoch_done, 4))
            model.train()
            save_checkpoint(batch_index)
        elif config.checkpoint_every and steps_done and batch_index % (config.checkpoint_every * config.gradient_accumulation) == 0:
            save_checkpoint(batch_index)
        if stop_after_steps is not None and batch_index - resumed_from >= stop_after_steps and batch_index < total_batches:
            save_checkpoint(batch_index)
            bar.close()
            raise KeyboardInterrupt(f"stopped after {stop_after_steps} batches (simulated interruption)")
    bar.close()

    last_epoch_validation = history[-1].get("validation") if history and history[-1]["epoch"] == round(
        total_batches / batches_per_epoch, 4) else None
    metrics = {
        # the last epoch's validation metrics are those of the final model: no need to evaluate twice
        "validation": last_epoch_validation or evaluate(model, tokenizer, dataset, "validation",
                                                        batch_size=config.eval_batch_size,
                                                        max_length=config.max_length, device=device),
        "test": evaluate(model, tokenizer, dataset, "test", batch_size=config.eval_batch_size,
                         max_length=config.max_length, device=device),
    }
    result = TrainResult(metrics=metrics, history=history, dynamics=dynamics,
                         output_dir=str(out) if out is not None else None,
                         seconds=time.perf_counter() - start_time, steps=total_steps, resumed_from_step=resumed_from)
    if out is not None:
        if save_model:
            save_pretrained_atomic(model, tokenizer, out / "model")
        atomic_write_json(out / "metrics.json", {
            "metrics": metrics, "history": history, "dynamics": dynamics, "seconds": result.seconds,
            "config": asdict(config), "mapping": mapping.to_dict() if mapping else None,
            "loss": asdict(loss_config) if loss_config else None,
        })
    return result


def save_pretrained_atomic(model: nn.Module, tokenizer, directory: str | os.PathLike) -> Path:
    """``save_pretrained`` into a temporary sibling, then swap it in."""
    target = Path(directory)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    old = target.with_name(target.name + ".old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def load_result(output_dir: str | os.PathLike) -> dict[str, Any]:
    return read_json(Path(output_dir) / "metrics.json")
