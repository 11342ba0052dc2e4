"""Chapter 5 on the shared steps: teacher -> profile -> layer choice -> students -> model card.

:class:`EndToEnd` knows *where* it works (config, plan, directory, data, device, log) and keeps no
results: each step returns one (:class:`TeacherOutcome`, :class:`SpectralProfile`,
:class:`LayerChoice`, :class:`StudentOutcome`) and the next step takes it. Every directory is a
:class:`RunStore`: ``out`` (kind ``end-to-end``), ``out/teacher`` (``steps.train_teacher``'s store)
and ``out/students/<run>`` (a child of ``out``), so a finished step is reused, an interrupted one
resumes from its checkpoint, and a directory written with other settings is refused.
"""

from __future__ import annotations

import gc
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from torch import nn

from .. import steps
from ...config.sections import RunConfig, TrainConfig
from ...common.device import resolve_device
from ...common.distributed import is_main_process
from ...engine.run_store import RunStore
from ...engine.training import Distillation, FitSettings
from ...data import IntentDataset
from ...common.errors import RunDirectoryError
from ...common.io import atomic_write_text
from ...losses import check_tokenizers_compatible
from ...common.metrics import headline
from ...models.loading import (count_parameters, hidden_width, load_classifier, measure_latency, num_blocks,
    quiet_transformers, student_from_config, student_from_teacher)
from ...analysis.spectral import LAYER_CONVENTION, SpectralProfile
from .outcomes import LayerChoice, StudentOutcome, TeacherOutcome
from .plan import EndToEndPlan, ModelSource, StudentRun, blog_comparison, format_layers, plan_for_preset
from .report import describe_device, format_parameters, format_percent, mapping_figure, model_card_markdown

__all__ = ["EndToEnd", "run_end_to_end", "end_to_end_settings", "echo"]

Log = Callable[[str], None]


def echo(message: str) -> None:
    """The default ``log``: one line on standard output, flushed (long runs show where they are)."""
    print(message, flush=True)


def _silent(message: str) -> None:
    del message


def end_to_end_settings(config: RunConfig, plan: EndToEndPlan, dataset: IntentDataset) -> dict[str, Any]:
    """What every result under ``out`` depends on: ``out``'s fingerprint.

    The plan's teacher replaces ``config.teacher.model``; each run's feature loss replaces
    ``config.loss.feature_loss``; a student run's own definition is its directory's fingerprint.
    """
    loss = asdict(config.loss)
    loss.pop("feature_loss")
    return {
        "data": steps.data_settings(config.data),
        "dataset": {"name": dataset.name, "variant": dataset.variant,
                    "sizes": [len(split) for split in dataset.splits.values()]},
        "teacher": {"source": asdict(plan.teacher), "train": asdict(config.teacher.train)},
        "student_train": asdict(config.student.train), "loss": loss, "analysis": asdict(config.analysis),
        "mixed_precision": config.runtime.mixed_precision, "selection": plan.selection, "seed": plan.seed,
        "latency": {"queries": plan.latency_queries, "repeats": plan.latency_repeats},
    }


class EndToEnd:
    """The chapter-5 steps on one output directory; each step returns its result.

        e2e = EndToEnd(get_preset("quick"), "runs/ch5")
        teacher = e2e.train_teacher()
        choice = e2e.choose_layers(teacher, e2e.profile(teacher))
        students = [e2e.train_student(run, teacher, choice) for run in e2e.plan.runs]
        summary = e2e.summarise(teacher, choice, students)

    Opening ``out`` refuses a directory that holds a run with other settings (``overwrite=True``
    discards it instead). ``log`` receives one line per step (``None``: silent).
    """

    def __init__(self, config: RunConfig, out_dir: str | os.PathLike, *, plan: EndToEndPlan | None = None,
                 dataset: IntentDataset | None = None, log: Log | None = echo, overwrite: bool = False) -> None:
        quiet_transformers()  # no weight-loading / shard-writing bars from transformers itself
        self.config = config
        self.plan = plan or plan_for_preset(config)
        self.out = Path(out_dir)
        self.dataset = dataset or steps.load_data(config)
        self.device = resolve_device(config.runtime.device)
        self.log: Log = log or _silent
        settings = end_to_end_settings(config, self.plan, self.dataset)
        self.store = RunStore(self.out, kind="end-to-end", settings=settings, overwrite=overwrite)
        self._sessions = 0
        with self.session():
            pass  # check the directory now, not after the teacher has trained

    # -- the directory ---------------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[RunStore]:
        """Hold ``out``'s lock (fingerprint checked) while the steps inside run; sessions nest."""
        if self._sessions == 0:
            self.store.open()
        self._sessions += 1
        try:
            yield self.store
        finally:
            self._sessions -= 1
            if self._sessions == 0:
                self.store.close()

    @contextmanager
    def _teacher_store(self) -> Iterator[RunStore]:
        """``out/teacher``, the store ``steps.train_teacher`` wrote, for the files derived from the teacher."""
        settings = steps.teacher_settings(self.teacher_config(), self.plan.seed)
        with self.session(), self.store.child("teacher", kind="teacher", settings=settings) as store:
            yield store

    @contextmanager
    def _student_store(self, run: StudentRun) -> Iterator[RunStore]:
        """``out/students/<run>``; a directory holding another run of that name is refused."""
        settings = {"end_to_end": self.store.fingerprint, "run": asdict(run),
                    "student": asdict(self.plan.student(run.student))}
        with self.session():
            store = self.store.child(f"students/{run.name}", kind="student", settings=settings)
            written_before = store.exists("run.json")
            try:
                store.open()
            except RunDirectoryError as error:
                if not written_before:
                    raise
                raise RunDirectoryError(f"{store.root} was written by another run definition of {run.name!r}; "
                                        f"rename the run, or delete the directory to retrain it ({error})") from error
            yield store

    def teacher_config(self) -> RunConfig:
        """The config the teacher is trained with: the plan's teacher (``config.teacher.model`` is not used)."""
        changes: dict[str, Any] = {"teacher.model": self.teacher_source(), "teacher.finetuned": None}
        if self.plan.checkpoint_every:
            changes["teacher.train.checkpoint_every"] = self.plan.checkpoint_every
        return self.config.replace(**changes)

    def student_train_config(self) -> TrainConfig:
        train = self.config.student.train
        return replace(train, checkpoint_every=self.plan.checkpoint_every) if self.plan.checkpoint_every else train

    def teacher_source(self) -> str:
        """What the teacher is loaded from: a hub name or a directory (a tiny one is built first)."""
        source = self.plan.teacher
        return self._tiny_source(source, None) if source.kind == "tiny" else str(source.ref)

    def _tiny_source(self, source: ModelSource, tokenizer_from: str | None) -> str:
        from ...models.tiny import tiny_checkpoint

        return str(tiny_checkpoint(source.model_type, label_names=self.dataset.label_names,
                                   num_layers=int(source.num_layers), hidden_size=int(source.hidden_size),
                                   num_heads=int(source.num_heads or 4), seed=self.plan.seed,
                                   tokenizer_from=tokenizer_from, root=self.out / "sources"))

    @property
    def data_name(self) -> str:
        return f"{self.dataset.name}{' ' + self.dataset.variant if self.dataset.variant else ''}"

    def _latency(self, model: nn.Module, tokenizer) -> float:
        model.to(self.device)
        texts = list(self.dataset.test.texts[: self.plan.latency_queries])
        return measure_latency(model, tokenizer, texts, repeats=self.plan.latency_repeats,
                               max_length=self.config.data.max_length, device=self.device)

    # -- 1. teacher ------------------------------------------------------------------------------

    def train_teacher(self) -> TeacherOutcome:
        """Fine-tune the plan's teacher (or reuse it): ``out/teacher/{model, metrics.json, result.json}``."""
        start = time.perf_counter()
        with self.session():
            self.log(f"[teacher] {self.plan.teacher.describe()} on {self.data_name} ({len(self.dataset.train)} train)")
            trained = steps.train_teacher(self.teacher_config(), self.out / "teacher", dataset=self.dataset,
                                          seed=self.plan.seed, overwrite=self.store.overwrite)
            trained.model.to(self.device).eval()
            with self._teacher_store() as store:
                source = f"{trained.fingerprint}:latency {self.plan.latency_queries}x{self.plan.latency_repeats}"
                record = store.read_derived("result.json", source)
                if record is None:
                    record = {"name": self.plan.teacher.name, "source": self.plan.teacher.describe(),
                              "blocks": num_blocks(trained.model), "width": hidden_width(trained.model),
                              "parameters": count_parameters(trained.model), "metrics": trained.metrics,
                              "latency_ms": self._latency(trained.model, trained.tokenizer),
                              "device": describe_device(self.device), "seconds": trained.seconds}
                    store.write_derived("result.json", record, source)
        teacher = TeacherOutcome(trained.model, trained.tokenizer, trained.fingerprint, directory=trained.directory,
                                 **record)
        self.log(f"[teacher] {teacher.blocks} blocks x {teacher.width}, {format_parameters(teacher.parameters)} "
                 f"parameters; test in-scope/overall {format_percent(teacher.test.get('in_scope_accuracy'))}/"
                 f"{format_percent(teacher.test['accuracy'])}% ({time.perf_counter() - start:.0f} s)")
        return teacher

    # -- 2. spectral profile ---------------------------------------------------------------------

    def profile(self, teacher: TeacherOutcome) -> SpectralProfile:
        """Per-layer spectral intensities of the fine-tuned teacher: ``out/teacher/intensity.json/png``."""
        with self._teacher_store() as store:
            source = f"{teacher.fingerprint}:{asdict(self.config.analysis)}:{self.config.data.max_length}"
            cached = store.read_derived("intensity.json", source)
            if cached is not None:
                profile = SpectralProfile.from_dict(cached)
            else:
                profile = steps.profile_with_config(teacher.model, teacher.tokenizer, self.dataset, self.config,
                                                    model_name=f"{teacher.name} (fine-tuned)")
                steps.write_profile(profile, store.root, stem="intensity")
                store.write_derived("intensity.json", profile.to_dict(), source)
        teacher.model.to(self.device)
        self.log(f"[profile] I_l over {len(profile.intensities)} layers (0 = embeddings): "
                 + " ".join(f"{v:.3g}" for v in profile.intensities))
        return profile

    # -- 3. layer choice -------------------------------------------------------------------------

    def choose_layers(self, teacher: TeacherOutcome, profile: SpectralProfile) -> LayerChoice:
        """The teacher layers every student depth aligns (``plan.selection`` beside the compared
        strategies and the blog's choice): ``out/teacher/layers.json/png``."""
        import matplotlib.pyplot as plt

        from ...analysis.viz import save_figure

        total = num_blocks(teacher.model)
        strategies = dict.fromkeys((self.plan.selection, *self.plan.compare_selections))
        by_depth: dict[str, dict[str, Any]] = {}
        for depth in self.plan.student_depths():
            layers = {s: steps.choose_layers(s, depth, total, profile.intensities, seed=self.plan.seed,
                                                    rms=profile.rms).teacher_layers
                      for s in strategies}
            by_depth[str(depth)] = {"layers": layers,
                                    "blog": blog_comparison(layers[self.plan.selection], total, self.plan.blog_layers)}
        choice = LayerChoice(self.plan.selection, total, by_depth, list(profile.intensities), LAYER_CONVENTION,
                             seed=self.plan.seed)
        with self._teacher_store() as store:
            store.write_json("layers.json", choice.to_dict())
            if by_depth:
                figure = mapping_figure(choice)
                save_figure(figure, store.path("layers.png"))
                plt.close(figure)
        for depth, entry in by_depth.items():
            self.log(f"[layers] {depth}-layer student: "
                     + "; ".join(f"{s} {format_layers(v)}" for s, v in entry["layers"].items()))
        return choice

    # -- 4. students -----------------------------------------------------------------------------

    def build_student(self, source: ModelSource | str, teacher: TeacherOutcome,
                      choice: LayerChoice) -> tuple[nn.Module, Any]:
        """``(model, tokenizer)`` of a student, checked to tokenise exactly like the teacher."""
        source = self.plan.student(source) if isinstance(source, str) else source
        torch.manual_seed(self.plan.seed)
        tokenizer = teacher.tokenizer
        if source.kind == "from-teacher":
            layers = choice.mapping(source.init_strategy, int(source.num_layers)).teacher_layers
            model = student_from_teacher(teacher.model, layers)
        elif source.kind == "config":
            model = student_from_config(teacher.model, num_layers=int(source.num_layers),
                                        hidden_size=source.hidden_size, num_heads=source.num_heads, seed=self.plan.seed)
        else:
            ref = (self._tiny_source(source, tokenizer_from=self.teacher_source())
                   if source.kind == "tiny" else str(source.ref))
            model, tokenizer = load_classifier(ref, self.dataset.label_names, seed=self.plan.seed)
        check_tokenizers_compatible(teacher.tokenizer, tokenizer, self.dataset.train.texts[:64])
        if model.config.num_labels != teacher.model.config.num_labels:
            raise ValueError(f"student {source.name!r} has {model.config.num_labels} labels, the teacher "
                             f"{teacher.model.config.num_labels}")
        return model, tokenizer

    def train_student(self, run: StudentRun | str, teacher: TeacherOutcome, choice: LayerChoice) -> StudentOutcome:
        """Distil one student (or reuse a finished one): ``out/students/<run>/{model, metrics.json, result.json}``."""
        run = self.plan.run(run) if isinstance(run, str) else run
        start = time.perf_counter()
        with self._student_store(run) as store:
            if store.exists("result.json"):
                outcome = StudentOutcome.from_record(store.read_json("result.json"))
                self.log(f"[student] {run.name}: finished earlier (test {format_percent(outcome.headline)}%)")
                return outcome
            outcome = self._distil(run, teacher, choice, store)
            store.write_json("result.json", outcome.to_record())
            if not self.plan.keep_checkpoints:
                store.remove_checkpoint()
        self.log(f"[student] {run.name}: test {format_percent(outcome.headline)}% (retained "
                 f"{format_percent(outcome.retained)}%), {outcome.latency_ms:.2f} ms/query "
                 f"({time.perf_counter() - start:.0f} s)")
        return outcome

    def _distil(self, run: StudentRun, teacher: TeacherOutcome, choice: LayerChoice, store: RunStore) -> StudentOutcome:
        """``L = (1-alpha) CE + alpha T^2 KL + beta L_feat(mapping)`` with ``core.training.fit``."""
        source = self.plan.student(run.student)
        model, tokenizer = self.build_student(source, teacher, choice)
        blocks, width = num_blocks(model), hidden_width(model)
        mapping = None if run.strategy == "none" else choice.mapping(run.strategy, blocks)
        distillation = Distillation(teacher.model, mapping, replace(self.config.loss, feature_loss=run.feature_loss))
        self.log(f"[student] {run.name}: {blocks} blocks x {width}, {run.label}"
                 + (f" ({mapping.describe()})" if mapping is not None else ""))
        settings = FitSettings(self.plan.seed, self.config.data.max_length, self.config.runtime, run.name)
        trained, _ = steps.train_model(model, tokenizer, self.dataset, self.student_train_config(), settings,
                                       distillation=distillation, store=store)
        projections = distillation.projections
        outcome = StudentOutcome(
            run=run, source=source, blocks=blocks, width=width, teacher_width=teacher.width, mapping=mapping,
            init_layers=(choice.mapping(source.init_strategy, blocks).teacher_layers
                         if source.kind == "from-teacher" else None),
            parameters=count_parameters(model),
            projection_parameters=count_parameters(projections) if projections is not None else 0,
            metrics=trained.metrics, retained=headline(trained.metrics["test"]) / headline(teacher.test),
            latency_ms=self._latency(model, tokenizer), device=describe_device(self.device), seconds=trained.seconds,
            history=trained.history)
        del model, distillation, projections
        _free_memory()
        return outcome

    def finished_student(self, run: StudentRun | str) -> StudentOutcome | None:
        """The result of a finished run (``None`` if not finished); refuses another run of that name."""
        run = self.plan.run(run) if isinstance(run, str) else run
        if not (self.out / "students" / run.name / "result.json").exists():
            return None
        with self._student_store(run) as store:
            return StudentOutcome.from_record(store.read_json("result.json"))

    def load_student(self, run: StudentRun | str):
        """``(model, tokenizer)`` of a finished student, from ``out/students/<run>/model``."""
        from ...models.loading import load_model_dir

        name = run if isinstance(run, str) else run.name
        return load_model_dir(self.out / "students" / name / "model")

    # -- 5. summary ------------------------------------------------------------------------------

    def summarise(self, teacher: TeacherOutcome, choice: LayerChoice,
                  students: Sequence[StudentOutcome] = ()) -> dict[str, Any]:
        """``summary.json`` and ``model_card.md``: ``students`` and the plan's other runs finished
        earlier (trains nothing; unfinished runs are listed as missing)."""
        given = {outcome.name: outcome for outcome in students}
        rows, missing = [], []
        with self.session() as store:
            for run in self.plan.runs:
                outcome = given.get(run.name) or self.finished_student(run)
                if outcome is None:
                    missing.append(run.name)
                else:
                    rows.append({**outcome.to_dict(), "speedup": outcome.speedup(teacher.latency_ms)})
            summary = {
                "preset": self.config.name, "plan": self.plan.to_dict(), "dataset": self.dataset.summary(),
                "test_split": f"{self.data_name} test ({len(self.dataset.test)} utterances)",
                "device": describe_device(self.device), "layer_convention": LAYER_CONVENTION,
                "teacher": teacher.to_dict(), "layer_choice": choice.to_dict(), "students": rows,
                "missing_runs": missing,
            }
            summary["model_card_markdown"] = model_card_markdown(summary)
            store.write_json("summary.json", summary)  # both by the main process only
            if is_main_process():
                atomic_write_text(store.path("model_card.md"), summary["model_card_markdown"] + "\n")
        self.log(f"[summary] wrote {self.out / 'summary.json'} and {self.out / 'model_card.md'}")
        return summary


def run_end_to_end(config: RunConfig, out_dir: str | os.PathLike, *, plan: EndToEndPlan | None = None,
                   dataset: IntentDataset | None = None, log: Log | None = echo,
                   overwrite: bool = False) -> dict[str, Any]:
    """Teacher -> profile -> layer choice -> every student -> ``summary.json`` + ``model_card.md``.

    Resumable: a finished teacher, profile or student is reused; an interrupted one resumes from its
    checkpoint. Returns the summary (``summary["model_card_markdown"]`` is the model card).
    """
    e2e = EndToEnd(config, out_dir, plan=plan, dataset=dataset, log=log, overwrite=overwrite)
    with e2e.session():
        teacher = e2e.train_teacher()
        choice = e2e.choose_layers(teacher, e2e.profile(teacher))
        students = [e2e.train_student(run, teacher, choice) for run in e2e.plan.runs]
        return e2e.summarise(teacher, choice, students)


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
