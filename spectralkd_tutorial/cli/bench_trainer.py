"""``spectralkd bench trainer``: our training loop (``core.training.fit``) against ``transformers.Trainer``.

The same work for both: the same initial weights (one ``load_classifier`` call, copied), the same
training split tokenized inside the timed region, the same batches in the same order
(``epoch_order(n, seed, epoch)`` is handed to the Trainer as its sampler), dynamic padding to each
batch's longest utterance, batch B, AdamW (lr, weight decay 0.01 on matrices, the fused kernel both),
a linear schedule with 10% warm-up, clipping at 1.0. The timed region ends with the last optimizer
step: evaluation, checkpoints and saving are left out (``fit`` evaluates after its timer stops; the
Trainer is run with evaluation, saving and logging off). Wall and CPU time are both reported: on a
busy machine the process's CPU time is the steadier measure of the work. A few untimed steps come
first, so that neither pays the process's warm-up; then the runs alternate A/B, B/A, ... so that a
drift of the machine's speed touches both. The medians and their ratio are printed, with each run's
test accuracy (the same ``sharded_predictions`` for both).
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
from typing import Any

import torch

from ..config.sections import DataConfig, RuntimeConfig, TrainConfig
from ..engine.batching import epoch_order
from ..engine.callbacks import Callback
from ..engine.training import FitSettings, fit

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_DATASET = "clinc150:small"


class _EpochOrderSampler(torch.utils.data.Sampler):
    """The order ``fit`` uses: ``epoch_order(n, seed, epoch)``, one epoch per iteration."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        order = epoch_order(self.n, self.seed, self.epoch)
        self.epoch += 1
        return iter(order)

    def __len__(self) -> int:
        return self.n


def _clocks() -> tuple[float, float]:
    """(wall, CPU) seconds: the CPU time of this process is what the work cost, whatever else runs."""
    return time.perf_counter(), time.process_time()


def _elapsed(start: tuple[float, float], stop: tuple[float, float] | None = None) -> tuple[float, float]:
    stop = stop or _clocks()
    return stop[0] - start[0], stop[1] - start[1]


class _StopWatch(Callback):
    """``fit``'s timer: stopped by the callback after the last batch (before the final evaluation)."""

    def __init__(self) -> None:
        self.start = _clocks()
        self.stop: tuple[float, float] | None = None

    def on_step(self, loop) -> None:
        if loop.batch_index == loop.total_batches:
            self.stop = _clocks()


def run_fit(base, tokenizer, data, train: TrainConfig, seed: int, max_length: int
            ) -> tuple[tuple[float, float], dict, Any]:
    """``((wall, CPU) seconds of training, test metrics, trained model)`` of ``fit`` on a copy of ``base``."""
    model = copy.deepcopy(base)
    data = data.subset(validation=64)  # fit also evaluates the validation split, which is not reported here
    watch = _StopWatch()
    result = fit(model, tokenizer, data, train, FitSettings(seed, max_length, RuntimeConfig(progress=False), "fit"),
                 callbacks=[watch])
    return _elapsed(watch.start, watch.stop), result.metrics["test"], model


def run_trainer(base, tokenizer, data, train: TrainConfig, seed: int, max_length: int, total_batches: int
                ) -> tuple[tuple[float, float], dict, Any]:
    """The same for ``transformers.Trainer``, fed ``fit``'s batches in ``fit``'s order."""
    from transformers import DataCollatorWithPadding, PrinterCallback, Trainer, TrainingArguments

    from ..engine.batching import encode_split
    from ..engine.evaluation import sharded_predictions, split_metrics

    class OrderedTrainer(Trainer):
        def _get_train_sampler(self, train_dataset=None):
            return _EpochOrderSampler(len(self.train_dataset), seed)

    model = copy.deepcopy(base)
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=train.batch_size, learning_rate=train.learning_rate,
            weight_decay=train.weight_decay, warmup_steps=int(train.warmup_ratio * total_batches),
            lr_scheduler_type="linear", max_grad_norm=train.max_grad_norm, max_steps=total_batches, seed=seed,
            eval_strategy="no", save_strategy="no", logging_strategy="no", report_to="none", disable_tqdm=True,
            dataloader_num_workers=0, use_cpu=not torch.cuda.is_available())
        start = _clocks()
        encoded = encode_split(tokenizer, data.train, max_length)  # fit tokenizes inside its timer too
        rows = [{"input_ids": ids, "attention_mask": [1] * len(ids), "label": label}
                for ids, label in zip(encoded.input_ids, encoded.labels)]
        trainer = OrderedTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer,
                                 data_collator=DataCollatorWithPadding(tokenizer))
        trainer.remove_callback(PrinterCallback)  # its end-of-training dict would interleave with the table
        trainer.train()
        seconds = _elapsed(start)
    test = encode_split(tokenizer, data.test, max_length)
    predictions, _ = sharded_predictions(model, test, train.eval_batch_size, tokenizer.pad_token_id)
    return seconds, split_metrics(predictions, test.labels, data), model


def _warm_up(base, tokenizer, data, train: TrainConfig, max_length: int, steps: int = 3) -> None:
    """A few untimed steps on a copy, so that the first timed run does not pay the process's one-time
    costs (kernel selection, allocator growth) for both."""
    from ..engine.batching import collate, encode_split
    from ..engine.optimization import adamw

    model = copy.deepcopy(base).train()
    optimizer = adamw([{"params": list(model.parameters())}], train.learning_rate)
    encoded = encode_split(tokenizer, data.train, max_length)
    for step in range(steps):
        batch = collate(encoded, range(step * train.batch_size, (step + 1) * train.batch_size), tokenizer.pad_token_id)
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def bench_trainer(model_name: str = DEFAULT_MODEL, dataset: str = DEFAULT_DATASET, *, data_dir: str | None = None,
                  epochs: float = 1.0, max_steps: int | None = None, threads: int | None = None, repeats: int = 2,
                  seed: int = 0, max_length: int = 48, batch_size: int = 32, learning_rate: float = 2e-4) -> dict[str, Any]:
    """Print and return the median seconds of ``fit`` and of ``Trainer`` on the same work, their ratio
    (ours / Trainer's; <= 1.00 is the target) and each run's test accuracy.

    ``epochs``: a float (0.1 = a tenth of an epoch); ``max_steps`` overrides it. ``repeats``: runs
    of each, alternated A/B, B/A, A/B, ... ``threads``: torch's intra-op threads (default: all the
    cores this process may use; a benchmark belongs on a quiet machine)."""
    import math

    from ..engine.batching import encode_split
    from ..models.loading import load_classifier
    from ..pipelines.steps import load_data

    if threads is not None:
        torch.set_num_threads(threads)
    data = load_data(DataConfig(dataset=dataset, data_dir=data_dir, max_length=max_length))
    base, tokenizer = load_classifier(model_name, data.label_names, seed=seed)
    batches_per_epoch = math.ceil(len(encode_split(tokenizer, data.train, max_length)) / batch_size)
    if max_steps is not None:
        epochs = max_steps / batches_per_epoch
    total_batches = max(1, round(epochs * batches_per_epoch))
    train = TrainConfig(epochs=epochs, learning_rate=learning_rate, batch_size=batch_size, weight_decay=0.01,
                        warmup_ratio=0.1, max_grad_norm=1.0, eval_each_epoch=False)
    print(f"{model_name} on {data.name} ({len(data.train)} train, {len(data.test)} test), max_length {max_length}, "
          f"batch {batch_size}, lr {learning_rate:g}, {total_batches} steps ({total_batches / batches_per_epoch:.3g} "
          f"epochs), threads {torch.get_num_threads()}, seed {seed}; load average before: {_load_average()}", flush=True)
    _warm_up(base, tokenizer, data, train, max_length)
    runs: dict[str, list[tuple[tuple[float, float], dict]]] = {"fit": [], "Trainer": []}
    for i in range(repeats):
        for name in (("fit", "Trainer") if i % 2 == 0 else ("Trainer", "fit")):
            if name == "fit":
                seconds, test, _ = run_fit(base, tokenizer, data, train, seed, max_length)
            else:
                seconds, test, _ = run_trainer(base, tokenizer, data, train, seed, max_length, total_batches)
            runs[name].append((seconds, test))
            print(f"  {name:8s} {seconds[0]:8.1f} s wall {seconds[1]:8.1f} s CPU   test accuracy "
                  f"{100 * test['accuracy']:.2f}%   in-scope {100 * test['in_scope_accuracy']:.2f}%", flush=True)
    wall = {name: statistics.median(s[0] for s, _ in values) for name, values in runs.items()}
    cpu = {name: statistics.median(s[1] for s, _ in values) for name, values in runs.items()}
    accuracy = {name: statistics.median(t["in_scope_accuracy"] for _, t in values) for name, values in runs.items()}
    ratio, cpu_ratio = wall["fit"] / wall["Trainer"], cpu["fit"] / cpu["Trainer"]
    print(f"median fit {wall['fit']:.1f} s, Trainer {wall['Trainer']:.1f} s: ratio {ratio:.3f}x (target <= 1.00x); "
          f"CPU time {cpu['fit']:.1f} s vs {cpu['Trainer']:.1f} s: ratio {cpu_ratio:.3f}x")
    print(f"in-scope test accuracy {100 * accuracy['fit']:.2f}% vs {100 * accuracy['Trainer']:.2f}% (difference "
          f"{100 * (accuracy['fit'] - accuracy['Trainer']):+.2f} points); load average after: {_load_average()}")
    return {"ratio": ratio, "cpu_ratio": cpu_ratio, "seconds": wall, "cpu_seconds": cpu, "in_scope_accuracy": accuracy,
            "steps": total_batches, "threads": torch.get_num_threads(),
            "runs": {name: [{"seconds": s[0], "cpu_seconds": s[1], "test": t} for s, t in values]
                     for name, values in runs.items()}}
