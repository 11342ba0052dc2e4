"""One training loop for the teacher (cross-entropy) and for every student (distillation).

    L = (1 - alpha) * CE(student, y) + alpha * T^2 * KL(teacher_T || student_T) + beta * L_feature

Layered as in TextBrewer: ``fit`` -> ``train_step`` (one batch) -> ``compute_loss``. ``fit`` only
orchestrates named pieces: ``_setup`` (data, optimizer), ``_restore`` (resume from the run store's
checkpoint), the batches with their callbacks, ``_end_of_epoch`` (evaluate, dynamics, checkpoint)
and ``_finish`` (test metrics, model, result file).

A resumed run reaches the same result as an uninterrupted one: each epoch's data order is a
function of (seed, epoch), and the checkpoint holds model, optimizer, schedule, RNG and running
averages. Without a teacher the loop fine-tunes with cross-entropy alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..config import DistillationLossConfig, RuntimeConfig, TrainConfig
from ..data import IntentDataset
from ..errors import TrainingError, UsageError
from ..io import save_pretrained_atomic
from ..losses import LayerProjections, distillation_loss
from ..selection import LayerMapping
from ..spectral import profile_model
from .batching import EncodedSplit, collate, encode_split, epoch_order, model_inputs, text_batches
from .device import resolve_device
from .evaluation import evaluate, predict_encoded, split_metrics
from .optimization import Optimization
from .run_store import RunStore
from .teacher_cache import TeacherCache


@dataclass
class Distillation:
    """What is distilled, from where to where: the teacher, the layer pairs, the loss."""

    teacher: nn.Module
    mapping: LayerMapping | None = None
    loss: DistillationLossConfig = field(default_factory=DistillationLossConfig)
    projections: LayerProjections | None = None
    cache: TeacherCache | None = None

    @property
    def needs_hidden(self) -> bool:
        return bool(self.mapping and self.mapping.pairs and self.loss.feature_loss != "none" and self.loss.beta > 0)


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


class Callback:
    """Hooks into the loop; override what you need."""

    def on_batch_end(self, loop: "Loop") -> None:
        """After each batch (``loop.batch_index`` batches done)."""

    def on_epoch_end(self, loop: "Loop") -> None:
        """After an epoch's evaluation and checkpoint."""


class StopAfterBatches(Callback):
    """An interruption, for tests and demos: checkpoint, then ``KeyboardInterrupt`` after ``n`` batches."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_batch_end(self, loop: "Loop") -> None:
        if loop.batch_index - loop.resumed_from >= self.n and loop.batch_index < loop.total_batches:
            loop.save_checkpoint()
            raise KeyboardInterrupt(f"stopped after {self.n} batches (simulated interruption)")


@dataclass
class Loop:
    """The state of one ``fit`` call."""

    model: nn.Module
    tokenizer: Any
    dataset: IntentDataset
    train_config: TrainConfig
    seed: int
    max_length: int
    device: torch.device
    optimization: Optimization
    train: EncodedSplit
    validation: EncodedSplit
    batches_per_epoch: int
    total_batches: int
    distillation: Distillation | None = None
    store: RunStore | None = None
    dynamics_batches: list[dict] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    dynamics: list[dict[str, Any]] = field(default_factory=list)
    running: dict[str, float] = field(default_factory=dict)
    batch_index: int = 0
    resumed_from: int = 0

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    def save_checkpoint(self) -> None:
        if self.store is None:
            return
        projections = self.distillation.projections if self.distillation else None
        self.store.save_checkpoint({
            "model": self.model.state_dict(), "optimization": self.optimization.state_dict(),
            "projections": projections.state_dict() if projections is not None else None,
            "rng": torch.get_rng_state(), "history": self.history, "dynamics": self.dynamics,
            "next_batch": self.batch_index, "running": dict(self.running),
            "total_batches": self.total_batches, "train_size": len(self.train),
        })


def fit(model: nn.Module, tokenizer, dataset: IntentDataset, train: TrainConfig, *, seed: int = 0,
        max_length: int = 64, runtime: RuntimeConfig | None = None, distillation: Distillation | None = None,
        store: RunStore | None = None, dynamics_samples: int = 0, callbacks: Sequence[Callback] = (),
        save_model: bool = True, description: str = "train") -> TrainResult:
    """Train ``model`` on ``dataset.train`` (distilling when ``distillation`` is given).

    ``store``: the run directory (checkpoints, ``model/``, ``metrics.json``); ``None`` keeps
    everything in memory. ``dynamics_samples``: profile the model's layers on that many validation
    utterances at the start and after every epoch.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    runtime = runtime or RuntimeConfig()
    loop = _setup(model, tokenizer, dataset, train, seed, max_length, runtime, distillation, store, dynamics_samples)
    _restore(loop)
    if loop.batch_index == 0:
        torch.manual_seed(seed)  # dropout stream; restored from the checkpoint on resume
        _record_dynamics(loop, 0.0)
    model.train()
    with tqdm(total=loop.total_batches, initial=loop.batch_index, desc=description, disable=not runtime.progress,
              leave=False, dynamic_ncols=True) as bar:
        while loop.batch_index < loop.total_batches:
            train_step(loop)
            bar.update(1)
            if loop.batch_index % 10 == 0:
                bar.set_postfix({k: f"{v:.3f}" for k, v in loop.running.items()})
            for callback in callbacks:
                callback.on_batch_end(loop)
            if loop.batch_index % loop.batches_per_epoch == 0 or loop.batch_index == loop.total_batches:
                _end_of_epoch(loop)
                for callback in callbacks:
                    callback.on_epoch_end(loop)
            elif _checkpoint_due(loop):
                loop.save_checkpoint()
    return _finish(loop, runtime, save_model, time.perf_counter() - start)


def _setup(model, tokenizer, dataset, train, seed, max_length, runtime, distillation, store,
           dynamics_samples) -> Loop:
    if tokenizer.pad_token_id is None:
        raise UsageError("the tokenizer has no pad token; set tokenizer.pad_token before training")
    device = resolve_device(runtime.device)
    model.to(device)
    parameters = list(model.parameters())
    if distillation is not None:
        _prepare_distillation(distillation, model, device)
        if distillation.projections is not None:
            parameters += list(distillation.projections.parameters())
    encoded = encode_split(tokenizer, dataset.train, max_length)
    if distillation is not None and distillation.cache is not None:
        needed = distillation.mapping.teacher_layers if distillation.needs_hidden else []
        distillation.cache.check(len(encoded), needed)
    batches_per_epoch = math.ceil(len(encoded) / train.batch_size)
    total_batches = max(1, round(train.epochs * batches_per_epoch))
    total_steps = math.ceil(total_batches / train.gradient_accumulation)
    optimization = Optimization.create(parameters, train, total_steps, device, runtime.mixed_precision)
    texts = dataset.validation.texts[:dynamics_samples] if dynamics_samples else []
    return Loop(model=model, tokenizer=tokenizer, dataset=dataset, train_config=train, seed=seed,
                max_length=max_length, device=device, optimization=optimization, train=encoded,
                validation=encode_split(tokenizer, dataset.validation, max_length),
                batches_per_epoch=batches_per_epoch, total_batches=total_batches, distillation=distillation,
                store=store, dynamics_batches=text_batches(tokenizer, texts, max_length=max_length) if texts else [])


def _prepare_distillation(distillation: Distillation, student: nn.Module, device: torch.device) -> None:
    """Freeze the teacher on ``device``; create the learned projections the loss needs."""
    distillation.teacher.to(device).eval()
    for p in distillation.teacher.parameters():
        p.requires_grad_(False)
    if distillation.projections is None and distillation.needs_hidden and distillation.loss.needs_projections:
        distillation.projections = LayerProjections(len(distillation.mapping.pairs), student.config.hidden_size,
                                                    distillation.teacher.config.hidden_size)
    if distillation.projections is not None:
        distillation.projections.to(device)


def _restore(loop: Loop) -> None:
    """Continue from the run store's checkpoint, if there is one."""
    state = loop.store.load_checkpoint() if loop.store is not None else None
    if state is None:
        return
    if state.get("total_batches") != loop.total_batches or state.get("train_size") != len(loop.train):
        raise UsageError(f"{loop.store.path('checkpoint.pt')} was written by a run with other settings "
                         f"(batches {state.get('total_batches')} vs {loop.total_batches}); delete it or use --overwrite")
    loop.model.load_state_dict(state["model"])
    loop.optimization.load_state_dict(state["optimization"])
    projections = loop.distillation.projections if loop.distillation else None
    if projections is not None and state.get("projections") is not None:
        projections.load_state_dict(state["projections"])
    torch.set_rng_state(state["rng"])
    loop.history, loop.dynamics = state["history"], state["dynamics"]
    loop.batch_index = loop.resumed_from = state["next_batch"]
    loop.running.update(state.get("running", {}))


def train_step(loop: Loop) -> dict[str, Tensor]:
    """One batch: its indices from the epoch order, the loss, backward, and (window end) a step."""
    epoch, within = divmod(loop.batch_index, loop.batches_per_epoch)
    size = loop.train_config.batch_size
    indices = epoch_order(len(loop.train), loop.seed, epoch)[within * size : (within + 1) * size]
    batch = collate(loop.train, indices, loop.pad_id)
    with loop.optimization.autocast():
        parts = compute_loss(loop, batch, indices)
    if not torch.isfinite(parts["loss"]):
        raise TrainingError(f"non-finite loss at batch {loop.batch_index} ({float(parts['loss'].detach())}); lower the "
                            f"learning rate ({loop.train_config.learning_rate}) or check the inputs")
    loop.batch_index += 1
    last = loop.batch_index % loop.train_config.gradient_accumulation == 0 or loop.batch_index == loop.total_batches
    loop.optimization.backward(parts["loss"], last_of_window=last)
    for key, value in parts.items():
        scalar = float(value.detach())
        loop.running[key] = 0.9 * loop.running.get(key, scalar) + 0.1 * scalar
    return parts


def compute_loss(loop: Loop, batch: dict[str, Tensor], indices: Sequence[int]) -> dict[str, Tensor]:
    """Cross-entropy alone (no teacher), or the distillation loss with its parts."""
    inputs = model_inputs(batch, loop.device)
    labels = batch["labels"].to(loop.device)
    distillation = loop.distillation
    need_hidden = distillation is not None and distillation.needs_hidden
    out = loop.model(**inputs, output_hidden_states=need_hidden)
    if distillation is None:
        ce = nn.functional.cross_entropy(out.logits.float(), labels, label_smoothing=loop.train_config.label_smoothing)
        return {"loss": ce, "ce": ce}
    pairs = distillation.mapping.pairs if need_hidden else ()
    teacher_logits, teacher_hidden = _teacher_outputs(distillation, inputs, indices, pairs, need_hidden)
    return distillation_loss(out.logits.float(), teacher_logits.float(), labels,
                             [out.hidden_states[s] for s, _ in pairs], teacher_hidden, inputs["attention_mask"],
                             distillation.loss, projections=distillation.projections)


def _teacher_outputs(distillation: Distillation, inputs: dict[str, Tensor], indices: Sequence[int],
                     pairs: Sequence[tuple[int, int]], need_hidden: bool) -> tuple[Tensor, list[Tensor]]:
    device = inputs["input_ids"].device
    if distillation.cache is not None:
        logits, cached = distillation.cache.batch(indices, inputs["input_ids"].shape[1])
        return logits.to(device), [cached[t].to(device) for _, t in pairs]
    with torch.no_grad():
        out = distillation.teacher(**inputs, output_hidden_states=need_hidden)
    return out.logits, [out.hidden_states[t] for _, t in pairs]


def _checkpoint_due(loop: Loop) -> bool:
    every = loop.train_config.checkpoint_every
    return bool(every and loop.optimization.steps_done
                and loop.batch_index % (every * loop.train_config.gradient_accumulation) == 0)


def _end_of_epoch(loop: Loop) -> None:
    """Validation metrics and running losses into the history; dynamics; a checkpoint."""
    epoch = round(loop.batch_index / loop.batches_per_epoch, 4)
    entry: dict[str, Any] = {"epoch": epoch, **{f"train_{k}": v for k, v in loop.running.items()}}
    if loop.train_config.eval_each_epoch and len(loop.validation):
        predictions = predict_encoded(loop.model, loop.validation, loop.train_config.eval_batch_size, loop.pad_id,
                                      loop.device)
        entry["validation"] = split_metrics(predictions, loop.validation.labels, loop.dataset)
    loop.history.append(entry)
    _record_dynamics(loop, epoch)
    loop.model.train()
    loop.save_checkpoint()


def _record_dynamics(loop: Loop, epoch: float) -> None:
    if loop.dynamics_batches:
        profile = profile_model(loop.model, loop.dynamics_batches, progress=False)
        loop.dynamics.append({"epoch": epoch, "intensities": profile.intensities})


def _finish(loop: Loop, runtime: RuntimeConfig, save_model: bool, seconds: float) -> TrainResult:
    """Test metrics (validation reused from the last epoch), the model and ``metrics.json``."""
    final_epoch = round(loop.total_batches / loop.batches_per_epoch, 4)
    last = loop.history[-1].get("validation") if loop.history and loop.history[-1]["epoch"] == final_epoch else None
    kwargs = dict(batch_size=loop.train_config.eval_batch_size, max_length=loop.max_length, device=loop.device)
    metrics = {"validation": last or evaluate(loop.model, loop.tokenizer, loop.dataset, "validation", **kwargs),
               "test": evaluate(loop.model, loop.tokenizer, loop.dataset, "test", **kwargs)}
    result = TrainResult(metrics=metrics, history=loop.history, dynamics=loop.dynamics,
                         output_dir=str(loop.store.root) if loop.store is not None else None, seconds=seconds,
                         steps=math.ceil(loop.total_batches / loop.train_config.gradient_accumulation),
                         resumed_from_step=loop.resumed_from)
    if loop.store is not None:
        if save_model:
            save_pretrained_atomic(loop.model, loop.tokenizer, loop.store.path("model"))
        distillation = loop.distillation
        loop.store.write_json("metrics.json", {
            "metrics": metrics, "history": loop.history, "dynamics": loop.dynamics, "seconds": seconds,
            "train": asdict(loop.train_config), "seed": loop.seed, "max_length": loop.max_length,
            "mapping": distillation.mapping.to_dict() if distillation and distillation.mapping else None,
            "loss": asdict(distillation.loss) if distillation else None,
        })
    return result
