"""One training loop for the teacher (cross-entropy) and for every student (distillation).

    L = (1 - alpha) * CE(student, y) + alpha * T^2 * KL(teacher_T || student_T) + beta * L_feature

Layered as in TextBrewer: ``fit`` -> ``train_step`` (one batch) -> ``compute_loss``. ``fit`` only
orchestrates named pieces: ``_setup`` (data, optimizer), ``_restore`` (resume from the run store's
checkpoint), the batches with their callbacks, ``_end_of_epoch`` (evaluate, dynamics, checkpoint)
and ``_finish`` (test metrics, model, result file).

One code path for 1 CPU, 1 GPU, N GPUs and N machines, on an ``accelerate.Accelerator`` (device
placement, DDP, mixed precision, gradient accumulation; see ``optimization``). Global batch b of an
epoch is ``epoch_order(n, seed, epoch)[b*B:(b+1)*B]`` whatever the number of processes P; process p
trains on its rows ``p::P`` (``batching.shard``) and DDP averages the gradients, so the global
batch, the number of optimizer steps and the schedule do not depend on P. Evaluation is shared and
gathered (``evaluation``); only the main process shows progress and writes files.

A resumed run reaches the same result as an uninterrupted one: the checkpoint (written atomically
by the main process) holds the unwrapped model, optimizer, schedule, RNG streams, running averages
and the *global* batch index, so a run also resumes with another number of processes. Without a
teacher the loop fine-tunes with cross-entropy alone.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..config.sections import DistillationLossConfig, RuntimeConfig, TrainConfig
from ..data import IntentDataset
from ..common.errors import TrainingError, UsageError
from ..common.io import save_pretrained_atomic
from ..losses import LayerProjections, check_feature_loss_tokenization, distillation_loss, sentence_features
from ..models.loading import check_max_length
from ..analysis.selection import LayerMapping
from ..analysis.spectral import profile_model
from . import tracking
from .batching import EncodedSplit, batch_width, collate, encode_split, epoch_order, model_inputs, shard, text_batches
from ..common.distributed import make_accelerator
from .evaluation import predict_encoded, sharded_predictions, split_metrics
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
    dynamics_batches: list[dict] = field(default_factory=list)
    teacher_train: EncodedSplit | None = None  # the training texts in the teacher's tokens (another tokenizer)
    history: list[dict[str, Any]] = field(default_factory=list)
    dynamics: list[dict[str, Any]] = field(default_factory=list)
    running: dict[str, float] = field(default_factory=dict)
    batch_index: int = 0
    resumed_from: int = 0
    _order: tuple[int, list[int]] = (-1, [])  # (epoch, its permutation), computed once per epoch

    def epoch_order(self, epoch: int) -> list[int]:
        """``epoch_order(n, seed, epoch)``, drawn once per epoch rather than once per batch."""
        if self._order[0] != epoch:
            self._order = (epoch, epoch_order(len(self.train), self.seed, epoch))
        return self._order[1]

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
                "dynamics": self.dynamics, "next_batch": self.batch_index, "running": dict(self.running),
                "total_batches": self.total_batches, "train_size": len(self.train), "processes": self.processes,
            })
        self.accelerator.wait_for_everyone()


def fit(model: nn.Module, tokenizer, dataset: IntentDataset, train: TrainConfig, *, seed: int = 0,
        max_length: int = 64, runtime: RuntimeConfig | None = None, distillation: Distillation | None = None,
        store: RunStore | None = None, dynamics_samples: int = 0, callbacks: Sequence[Callback] = (),
        save_model: bool = True, description: str = "train") -> TrainResult:
    """Train ``model`` on ``dataset.train`` (distilling when ``distillation`` is given).

    ``store``: the run directory (checkpoints, ``model/``, ``metrics.json``); ``None`` keeps
    everything in memory. ``dynamics_samples``: profile the model's layers on that many validation
    utterances at the start and after every epoch. Under a launcher every process calls ``fit``.
    """
    from tqdm.auto import tqdm

    start = time.perf_counter()
    runtime = runtime or RuntimeConfig()
    loop = _setup(model, tokenizer, dataset, train, seed, max_length, runtime, distillation, store, dynamics_samples)
    try:
        _restore(loop)
        if loop.batch_index == 0:
            _seed_dropout(loop)  # restored from the checkpoint on resume
            _record_dynamics(loop, 0.0)
        loop.trainable.train()
        with tqdm(total=loop.total_batches, initial=loop.batch_index, desc=description, leave=False,
                  disable=not (runtime.progress and loop.accelerator.is_main_process), dynamic_ncols=True) as bar:
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
        return _finish(loop, save_model, time.perf_counter() - start)
    finally:
        _release(loop)


def _setup(model, tokenizer, dataset, train, seed, max_length, runtime, distillation, store,
           dynamics_samples) -> Loop:
    if tokenizer.pad_token_id is None:
        raise UsageError("the tokenizer has no pad token; set tokenizer.pad_token before training")
    check_max_length(model, max_length)
    if distillation is not None:
        check_max_length(distillation.teacher, max_length)
    accelerator = make_accelerator(runtime.device, runtime.mixed_precision, gradient_accumulation=train.gradient_accumulation,
                                   **tracking.tracker_settings(runtime.report_to, store.root if store else None))
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
    texts = dataset.validation.texts[:dynamics_samples] if dynamics_samples else []
    tracking.start(accelerator, train, {"seed": seed, "max_length": max_length, "processes": accelerator.num_processes,
                                        "mixed_precision": accelerator.mixed_precision})
    return Loop(model=model, trainable=prepared[0], tokenizer=tokenizer, dataset=dataset, train_config=train, seed=seed,
                max_length=max_length, accelerator=accelerator, optimization=optimization, train=encoded,
                validation=encode_split(tokenizer, dataset.validation, max_length),
                batches_per_epoch=batches_per_epoch, total_batches=total_batches, distillation=distillation,
                projections=prepared[1] if len(prepared) > 1 else None, store=store, teacher_train=teacher_train,
                dynamics_batches=text_batches(tokenizer, texts, max_length=max_length) if texts else [])


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
    loop.history, loop.dynamics = state["history"], state["dynamics"]
    loop.batch_index = loop.resumed_from = state["next_batch"]
    loop.running.update(state.get("running", {}))


def train_step(loop: Loop) -> dict[str, Tensor]:
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
    if stepped:
        tracking.log_step(loop.accelerator, loop.batch_index, values, loop.optimization.learning_rate)
    return parts


def _batch_means(loop: Loop, parts: dict[str, Tensor], rows: int, batch_rows: int) -> dict[str, float]:
    """The loss parts averaged over the global batch (each process's mean weighted by its rows)."""
    if loop.processes == 1:  # one transfer for all the parts (the same floats as one float() each)
        return dict(zip(parts, torch.stack([value.detach().float() for value in parts.values()]).tolist()))
    local = torch.stack([value.detach().float() * rows for value in parts.values()]).to(loop.device)
    total = loop.accelerator.reduce(local, reduction="sum").cpu() / batch_rows
    return {key: float(v) for key, v in zip(parts, total)}


def compute_loss(loop: Loop, batch: dict[str, Tensor], indices: Sequence[int],
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
                                      loop.device, loop.accelerator)
        entry["validation"] = split_metrics(predictions, loop.validation.labels, loop.dataset)
    loop.history.append(entry)
    tracking.log_epoch(loop.accelerator, loop.batch_index, entry)
    _record_dynamics(loop, epoch)
    loop.trainable.train()
    loop.save_checkpoint()


def _record_dynamics(loop: Loop, epoch: float) -> None:
    if loop.dynamics_batches:
        profile = profile_model(loop.model, loop.dynamics_batches, progress=False)
        loop.dynamics.append({"epoch": epoch, "intensities": profile.intensities})
        tracking.log_intensities(loop.accelerator, loop.batch_index, profile.intensities)


def _evaluate_split(loop: Loop, split: str) -> tuple[dict[str, float], list[int]]:
    encoded = encode_split(loop.tokenizer, getattr(loop.dataset, split), loop.max_length)
    predictions, counts = sharded_predictions(loop.model, encoded, loop.train_config.eval_batch_size, loop.pad_id,
                                              loop.device, loop.accelerator)
    return split_metrics(predictions, encoded.labels, loop.dataset), counts


def _finish(loop: Loop, save_model: bool, seconds: float) -> TrainResult:
    """Test metrics (validation reused from the last epoch), the model and ``metrics.json``."""
    final_epoch = round(loop.total_batches / loop.batches_per_epoch, 4)
    last = loop.history[-1].get("validation") if loop.history and loop.history[-1]["epoch"] == final_epoch else None
    validation, validation_counts = (last, None) if last else _evaluate_split(loop, "validation")
    test, test_counts = _evaluate_split(loop, "test")
    metrics = {"validation": validation, "test": test}
    result = TrainResult(metrics=metrics, history=loop.history, dynamics=loop.dynamics,
                         output_dir=str(loop.store.root) if loop.store is not None else None, seconds=seconds,
                         steps=loop.optimization.steps_done, resumed_from_step=loop.resumed_from)
    if loop.store is not None and loop.accelerator.is_main_process:
        if save_model:
            save_pretrained_atomic(loop.model, loop.tokenizer, loop.store.path("model"))
        distillation = loop.distillation
        loop.store.write_json("metrics.json", {
            "metrics": metrics, "history": loop.history, "dynamics": loop.dynamics, "seconds": seconds,
            "train": asdict(loop.train_config), "seed": loop.seed, "max_length": loop.max_length,
            "mapping": distillation.mapping.to_dict() if distillation and distillation.mapping else None,
            "loss": asdict(distillation.loss) if distillation else None,
            "optimizer_steps": loop.optimization.steps_done, "processes": loop.processes,
            "resumed_from_batch": loop.resumed_from,
            "mixed_precision": loop.accelerator.mixed_precision, "threads": torch.get_num_threads(),
            "evaluated_per_process": {"test": test_counts, "validation": validation_counts},
        })
    loop.accelerator.wait_for_everyone()
    return result


def _release(loop: Loop) -> None:
    """Give the user's modules back as they were (no autocast forward); close the trackers."""
    _restore_forward(loop.model)
    if loop.distillation is not None and loop.distillation.projections is not None:
        _restore_forward(loop.distillation.projections)
    tracking.finish(loop.accelerator)
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
