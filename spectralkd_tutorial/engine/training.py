"""One training loop for the teacher (cross-entropy) and for every student (distillation).

    L = (1 - alpha) * CE(student, y) + alpha * T^2 * KL(teacher_T || student_T) + beta * L_feature

Layered as in TextBrewer: ``fit`` -> ``train_step`` (one batch) -> ``compute_loss`` (both in
``loss_step``). ``fit`` only orchestrates named pieces: ``_setup`` (data, optimizer), ``_restore``
(resume from the run store's checkpoint), the batches, ``_end_of_epoch`` (evaluate, checkpoint) and
``_finish`` (test metrics). What else a run does is a callback the caller passes in (``callbacks``:
the dynamics profile, the tensorboard tracker, ...); the caller writes the model and ``metrics.json``
(``pipelines.steps``).

One code path for 1 CPU, 1 GPU, N GPUs and N machines, on an ``accelerate.Accelerator`` (device
placement, DDP, mixed precision, gradient accumulation; see ``optimization``). Global batch b of an
epoch is ``epoch_order(n, seed, epoch)[b*B:(b+1)*B]`` whatever the number of processes P; process p
trains on its rows ``p::P`` (``batching.shard``) and DDP averages the gradients, so the global
batch, the number of optimizer steps and the schedule do not depend on P. Evaluation is shared and
gathered (``evaluation``); only the main process shows progress and writes files.

A resumed run reaches the same result as an uninterrupted one: the checkpoint (written atomically
by the main process) holds the unwrapped model, optimizer, schedule, RNG streams, running averages,
the callbacks' ``state_dict`` and the *global* batch index, so a run also resumes with another
number of processes. Without a
teacher the loop fine-tunes with cross-entropy alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..config.sections import DistillationLossConfig, RuntimeConfig, TrainConfig
from ..data import IntentDataset
from ..common.errors import UsageError
from ..losses import LayerProjections, check_feature_loss_tokenization
from ..models.loading import check_max_length
from ..analysis.selection import LayerMapping
from .batching import EncodedSplit, encode_split, epoch_order
from .callbacks import Callback, CallbackList, StopAfterBatches  # noqa: F401 - StopAfterBatches re-exported
from ..common.distributed import make_accelerator
from .evaluation import predict_encoded, sharded_predictions, split_metrics
from .loss_step import train_step
from .optimization import Optimization
from .run_store import RunStore
from .teacher_cache import TeacherCache


@dataclass
class Distillation:
    """What is distilled, from where to where: the teacher, the layer pairs, the loss.

    ``teacher_tokenizer``: the teacher's own tokenizer when the student tokenizes differently
    (``None``: both use the student's). The teacher then reads each text in its own tokens; logit KD
    needs nothing more, and the feature loss must be sentence-level (``pooled-spectral``): each
    model's states are mean-pooled over its own real tokens before they are compared.
    """

    teacher: nn.Module
    mapping: LayerMapping | None = None
    loss: DistillationLossConfig = field(default_factory=DistillationLossConfig)
    projections: LayerProjections | None = None
    cache: TeacherCache | None = None
    teacher_tokenizer: Any = None

    @property
    def needs_hidden(self) -> bool:
        return bool(self.mapping and self.mapping.pairs and self.loss.needs_hidden)

    @property
    def cross_tokenizer(self) -> bool:
        return self.teacher_tokenizer is not None


@dataclass(frozen=True)
class FitSettings:
    """What ``fit`` needs besides the train config: the seed (batch order, dropout), the token limit,
    the runtime (device, mixed precision, progress bars) and the progress bar's label."""

    seed: int = 0
    max_length: int = 64
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    description: str = "train"


@dataclass
class TrainResult:
    """What a run produced: final metrics per split, per-epoch history, and how it ran.

    ``resumed_from_step``: the global batch it resumed from (0: not resumed); ``evaluated_per_process``:
    how many examples each process evaluated (``None`` for a split evaluated during the last epoch)."""

    metrics: dict[str, dict[str, float]]
    history: list[dict[str, Any]]
    output_dir: str | None = None
    seconds: float = 0.0
    steps: int = 0
    resumed_from_step: int = 0
    processes: int = 1
    mixed_precision: str = "no"
    evaluated_per_process: dict[str, list[int] | None] = field(default_factory=dict)


@dataclass
class Loop:
    """The state of one ``fit`` call. ``model`` is the user's module; ``trainable`` is what the
    accelerator prepared from it (DDP-wrapped with several processes), used for training passes."""

    model: nn.Module
    trainable: nn.Module
    tokenizer: Any
    dataset: IntentDataset
    train_config: TrainConfig
    seed: int
    max_length: int
    accelerator: Any
    optimization: Optimization
    train: EncodedSplit
    validation: EncodedSplit
    batches_per_epoch: int
    total_batches: int
    distillation: Distillation | None = None
    projections: nn.Module | None = None  # prepared LayerProjections (DDP-wrapped with several processes)
    store: RunStore | None = None
    callbacks: CallbackList = field(default_factory=CallbackList)
    teacher_train: EncodedSplit | None = None  # the training texts in the teacher's tokens (another tokenizer)
    history: list[dict[str, Any]] = field(default_factory=list)
    running: dict[str, float] = field(default_factory=dict)
    batch_values: dict[str, float] = field(default_factory=dict)  # the last batch's loss parts (global means)
    stepped: bool = False  # whether the last batch ended with an optimizer step
    batch_index: int = 0
    resumed_from: int = 0
    _order: tuple[int, list[int]] = (-1, [])  # (epoch, its permutation), computed once per epoch

    def epoch_order(self, epoch: int) -> list[int]:
        """``epoch_order(n, seed, epoch)``, drawn once per epoch rather than once per batch."""
        if self._order[0] != epoch:
            self._order = (epoch, epoch_order(len(self.train), self.seed, epoch))
        return self._order[1]

    @property
    def epoch(self) -> float:
        """Epochs done (fractional mid-epoch), as the history and the dynamics record it."""
        return round(self.batch_index / self.batches_per_epoch, 4)

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def processes(self) -> int:
        return self.accelerator.num_processes

    def save_checkpoint(self) -> None:
        """Every process calls this (the RNG streams are gathered); the main process writes."""
        if self.store is None:
            return
        from accelerate.utils import gather_object

        streams = gather_object([_rng_streams(self.device)])
        if self.accelerator.is_main_process:
            projections = self.distillation.projections if self.distillation else None
            self.store.save_checkpoint({
                "model": self.model.state_dict(), "optimization": self.optimization.state_dict(),
                "projections": projections.state_dict() if projections is not None else None,
                "rng": torch.get_rng_state(), "rng_per_process": streams, "history": self.history,
                **self.callbacks.state_dict(), "next_batch": self.batch_index, "running": dict(self.running),
                "total_batches": self.total_batches, "train_size": len(self.train), "processes": self.processes,
            })
        self.accelerator.wait_for_everyone()


def fit(model: nn.Module, tokenizer, dataset: IntentDataset, train: TrainConfig, settings: FitSettings | None = None,
        *, distillation: Distillation | None = None, store: RunStore | None = None,
        callbacks: Sequence[Callback] = ()) -> TrainResult:
    """Train ``model`` on ``dataset.train`` (distilling when ``distillation`` is given).

    ``settings``: seed, max_length, runtime, progress label (``FitSettings()`` if ``None``).
    ``store``: the run directory that holds the checkpoint (resumed from when there is one); ``None``
    keeps everything in memory. ``callbacks``: the extras, called in order (``callbacks.Callback``).
    Under a launcher every process calls ``fit``.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    settings = settings or FitSettings()
    loop = _setup(model, tokenizer, dataset, train, settings, distillation, store, CallbackList(callbacks))
    try:
        _restore(loop)
        if loop.batch_index == 0:
            _seed_dropout(loop)  # restored from the checkpoint on resume
        loop.callbacks.on_train_begin(loop)
        loop.trainable.train()
        with tqdm(total=loop.total_batches, initial=loop.batch_index, desc=settings.description, leave=False,
                  disable=not (settings.runtime.progress and loop.accelerator.is_main_process),
                  dynamic_ncols=True) as bar:
            while loop.batch_index < loop.total_batches:
                train_step(loop)
                bar.update(1)
                if loop.batch_index % 10 == 0:
                    bar.set_postfix({k: f"{v:.3f}" for k, v in loop.running.items()})
                loop.callbacks.on_step(loop)
                if loop.batch_index % loop.batches_per_epoch == 0 or loop.batch_index == loop.total_batches:
                    _end_of_epoch(loop)
                elif _checkpoint_due(loop):
                    loop.save_checkpoint()
        return _finish(loop, time.perf_counter() - start)
    finally:
        _release(loop)


def _setup(model, tokenizer, dataset, train: TrainConfig, settings: FitSettings, distillation, store,
           callbacks: CallbackList) -> Loop:
    max_length, runtime = settings.max_length, settings.runtime
    if tokenizer.pad_token_id is None:
        raise UsageError("the tokenizer has no pad token; set tokenizer.pad_token before training")
    check_max_length(model, max_length)
    if distillation is not None:
        check_max_length(distillation.teacher, max_length)
    accelerator = make_accelerator(runtime.device, runtime.mixed_precision, gradient_accumulation=train.gradient_accumulation)
    modules = [model]
    if distillation is not None:
        _prepare_distillation(distillation, model, accelerator.device)
        if distillation.projections is not None:
            modules.append(distillation.projections)
    encoded = encode_split(tokenizer, dataset.train, max_length)
    teacher_train = None
    if distillation is not None and distillation.cross_tokenizer:
        if distillation.needs_hidden:
            check_feature_loss_tokenization(distillation.loss.feature_loss)
        teacher_train = encode_split(distillation.teacher_tokenizer, dataset.train, max_length)
    if distillation is not None and distillation.cache is not None:
        needed = distillation.mapping.teacher_layers if distillation.needs_hidden else []
        distillation.cache.check(len(encoded), needed)
    batches_per_epoch = math.ceil(len(encoded) / train.batch_size)
    total_batches = max(1, round(train.epochs * batches_per_epoch))
    total_steps = math.ceil(total_batches / train.gradient_accumulation)
    prepared = accelerator.prepare(*modules)
    prepared = list(prepared) if isinstance(prepared, (tuple, list)) else [prepared]
    parameters = [p for module in modules for p in module.parameters()]
    optimization = Optimization.create(parameters, train, total_steps, accelerator, modules=prepared)
    return Loop(model=model, trainable=prepared[0], tokenizer=tokenizer, dataset=dataset, train_config=train,
                seed=settings.seed, max_length=max_length, accelerator=accelerator, optimization=optimization,
                train=encoded, validation=encode_split(tokenizer, dataset.validation, max_length),
                batches_per_epoch=batches_per_epoch, total_batches=total_batches, distillation=distillation,
                projections=prepared[1] if len(prepared) > 1 else None, store=store, callbacks=callbacks,
                teacher_train=teacher_train)


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


def _rng_streams(device: torch.device) -> dict[str, Tensor]:
    streams = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        streams["cuda"] = torch.cuda.get_rng_state(device)
    return streams


def _seed_dropout(loop: Loop, offset: int = 0) -> None:
    """The dropout stream: ``seed`` on one process (and on process 0); another stream per process."""
    rank = loop.accelerator.process_index
    torch.manual_seed(loop.seed if rank == 0 and not offset else loop.seed + 1_000_003 * rank + offset)


def _restore(loop: Loop) -> None:
    """Continue from the run store's checkpoint, if there is one (written with any number of processes)."""
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
    streams, rank = state.get("rng_per_process") or [], loop.accelerator.process_index
    if len(streams) == loop.processes:  # the same number of processes: each continues its own stream
        torch.set_rng_state(streams[rank]["cpu"])
        if "cuda" in streams[rank] and loop.device.type == "cuda":
            torch.cuda.set_rng_state(streams[rank]["cuda"], loop.device)
    elif rank == 0:
        torch.set_rng_state(state["rng"])
    else:  # a process the interrupted run did not have: a fresh stream, a function of where it resumes
        _seed_dropout(loop, offset=state["next_batch"])
    loop.history = state["history"]
    loop.callbacks.load_state_dict(state)
    loop.batch_index = loop.resumed_from = state["next_batch"]
    loop.running.update(state.get("running", {}))


def _checkpoint_due(loop: Loop) -> bool:
    every = loop.train_config.checkpoint_every
    return bool(every and loop.optimization.steps_done
                and loop.batch_index % (every * loop.train_config.gradient_accumulation) == 0)


def _end_of_epoch(loop: Loop) -> None:
    """Validation metrics and running losses into the history; the callbacks' ``on_epoch_end``; a checkpoint."""
    entry: dict[str, Any] = {"epoch": loop.epoch, **{f"train_{k}": v for k, v in loop.running.items()}}
    if loop.train_config.eval_each_epoch and len(loop.validation):
        predictions = predict_encoded(loop.model, loop.validation, loop.train_config.eval_batch_size, loop.pad_id,
                                      loop.device, loop.accelerator)
        entry["validation"] = split_metrics(predictions, loop.validation.labels, loop.dataset)
    loop.history.append(entry)
    loop.callbacks.on_epoch_end(loop)
    loop.trainable.train()
    loop.save_checkpoint()


def _evaluate_split(loop: Loop, split: str) -> tuple[dict[str, float], list[int]]:
    encoded = encode_split(loop.tokenizer, getattr(loop.dataset, split), loop.max_length)
    predictions, counts = sharded_predictions(loop.model, encoded, loop.train_config.eval_batch_size, loop.pad_id,
                                              loop.device, loop.accelerator)
    return split_metrics(predictions, encoded.labels, loop.dataset), counts


def _finish(loop: Loop, seconds: float) -> TrainResult:
    """Test metrics (validation reused from the last epoch); the caller writes the model and ``metrics.json``."""
    final_epoch = round(loop.total_batches / loop.batches_per_epoch, 4)
    last = loop.history[-1].get("validation") if loop.history and loop.history[-1]["epoch"] == final_epoch else None
    validation, validation_counts = (last, None) if last else _evaluate_split(loop, "validation")
    test, test_counts = _evaluate_split(loop, "test")
    return TrainResult(metrics={"validation": validation, "test": test}, history=loop.history,
                       output_dir=str(loop.store.root) if loop.store is not None else None, seconds=seconds,
                       steps=loop.optimization.steps_done, resumed_from_step=loop.resumed_from,
                       processes=loop.processes, mixed_precision=loop.accelerator.mixed_precision,
                       evaluated_per_process={"test": test_counts, "validation": validation_counts})


def _release(loop: Loop) -> None:
    """Give the user's modules back as they were (no autocast forward); the callbacks' ``on_train_end``."""
    _restore_forward(loop.model)
    if loop.distillation is not None and loop.distillation.projections is not None:
        _restore_forward(loop.distillation.projections)
    loop.callbacks.on_train_end(loop)
    loop.accelerator.free_memory()


def _restore_forward(module: nn.Module) -> None:
    """Undo the autocast wrapper ``prepare`` puts on ``forward`` under mixed precision (accelerate's own
    ``unwrap_model(keep_fp32_wrapper=False)`` would also strip transformers' decorators of ``forward``)."""
    original = module.__dict__.pop("_original_forward", None)
    if original is None:
        return
    if getattr(original, "__func__", None) is type(module).forward:
        module.__dict__.pop("forward", None)
    else:
        module.forward = original
