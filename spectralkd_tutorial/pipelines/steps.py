"""The practitioner's steps, as plain functions every entry point shares.

    load_data -> train_teacher -> profile -> choose_layers -> build_student -> distil_student -> evaluate

Each takes the run config (or the part it needs) and returns a small dataclass. The CLI commands,
the experiment grid, the end-to-end run, ``demo`` and the notebooks call these; none re-implements
them. Steps that write to disk do so through a :class:`~spectralkd_tutorial.core.run_store.RunStore`,
so running one again reuses its finished result, resumes an interrupted one, and refuses a
directory that holds a run with other settings.
"""

from __future__ import annotations

import copy
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..config.sections import DataConfig, RunConfig, TrainConfig
from ..engine.batching import encode_split, text_batches
from ..common.device import resolve_device
from ..common.distributed import barrier, is_main_process
from ..common.io import save_pretrained_atomic
from ..engine.evaluation import evaluate
from ..engine.run_store import RunStore, fingerprint
from ..engine.teacher_cache import TeacherCache, prepare_cache
from ..common.errors import UsageError
from ..engine.dynamics_profile import DynamicsProfile
from ..engine.tracking import Tracker
from ..engine.training import Distillation, FitSettings, TrainResult, fit
from ..data import IntentDataset, load_dataset
from ..data.assemble import require_every_split
from ..models.loading import (TINY_NAMES, check_max_length, count_parameters, fetch_model_dir, hidden_width,
    load_classifier, load_model_dir, model_blocks, model_directory, num_blocks, resolve_model_source)
from ..models.students import InitialStudent, build_student
from ..analysis.selection import LayerMapping, select_layers
from .fingerprints import data_settings, model_fingerprint
from ..analysis.spectral import SpectralProfile, profile_model

__all__ = ["TeacherResult", "StudentResult", "InitialStudent", "load_data", "train_teacher", "profile",
           "choose_layers", "teacher_profile", "build_student", "distil_student", "evaluate", "analysis_texts",
           "write_profile", "teacher_settings", "model_fingerprint"]


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------

def load_data(config: RunConfig | DataConfig) -> IntentDataset:
    """The configured data set, subsampled when the config says so."""
    data = config.data if isinstance(config, RunConfig) else config
    dataset = load_dataset(data.dataset, data_dir=data.data_dir, train_file=data.train_file,
                           validation_file=data.validation_file, test_file=data.test_file,
                           text_column=data.text_column, label_column=data.label_column, oos_label=data.oos_label,
                           split_seed=data.split_seed)
    if data.train_limit or data.eval_limit:
        dataset = dataset.subset(train=data.train_limit, validation=data.eval_limit, test=data.eval_limit)
    return require_every_split(dataset)


def analysis_texts(dataset: IntentDataset, n: int, split: str = "validation") -> list[str]:
    """The first ``n`` texts of a split, in a fixed shuffled order (seed 0) so all labels appear."""
    texts = list(getattr(dataset, split).texts)
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(0)).tolist()
    return [texts[i] for i in order[:n]]


# ---------------------------------------------------------------------------------------------
# teacher
# ---------------------------------------------------------------------------------------------

@dataclass
class TeacherResult:
    """A fine-tuned teacher, its metrics, and the fingerprint that names it; ``report``: what a
    pipeline measured about it for its report (chapter 5: name, source, latency, device)."""

    model: nn.Module
    tokenizer: Any
    metrics: dict[str, dict[str, float]]
    fingerprint: str
    directory: Path | None = None
    seconds: float = 0.0
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def test(self) -> dict[str, float]:
        return self.metrics["test"]

    @property
    def blocks(self) -> int:
        return num_blocks(self.model)

    @property
    def width(self) -> int:
        return hidden_width(self.model)

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)


def teacher_settings(config: RunConfig, seed: int = 0) -> dict[str, Any]:
    return {"data": data_settings(config.data), "teacher": asdict(config.teacher), "seed": seed,
            "mixed_precision": config.runtime.mixed_precision}


def train_teacher(config: RunConfig, out_dir: str | os.PathLike | None = None, *,
                  dataset: IntentDataset | None = None, seed: int = 0, overwrite: bool = False) -> TeacherResult:
    """Fine-tune ``config.teacher.model`` (or load ``config.teacher.finetuned`` as is) and test it.

    With ``out_dir`` the run is stored there: a finished teacher is loaded, not retrained; an
    interrupted one resumes; a directory holding a teacher with other settings is refused.
    """
    dataset = dataset or load_data(config)
    if config.teacher.finetuned:
        return load_finetuned_teacher(config, dataset)
    if out_dir is None:
        model, tokenizer = load_classifier(config.teacher.model, dataset.label_names, seed=seed)
        result = _fit_teacher(config, model, tokenizer, dataset, seed, None)
        return TeacherResult(model, tokenizer, result.metrics, fingerprint(teacher_settings(config, seed)),
                             seconds=result.seconds)
    with RunStore(out_dir, kind="teacher", settings=teacher_settings(config, seed), overwrite=overwrite) as store:
        if store.exists("metrics.json") and store.exists("model/config.json"):
            model, tokenizer = load_model_dir(store.path("model"))
            record = store.read_json("metrics.json")
            return TeacherResult(model, tokenizer, record["metrics"], store.fingerprint, store.root, record["seconds"])
        model, tokenizer = load_classifier(config.teacher.model, dataset.label_names, seed=seed)
        result = _fit_teacher(config, model, tokenizer, dataset, seed, store)
        store.remove_checkpoint()  # finished: model/ and metrics.json are what remain
        return TeacherResult(model, tokenizer, result.metrics, store.fingerprint, store.root, result.seconds)


def _fit_teacher(config: RunConfig, model, tokenizer, dataset, seed: int, store: RunStore | None) -> TrainResult:
    settings = FitSettings(seed, config.data.max_length, config.runtime, "teacher")
    return train_model(model, tokenizer, dataset, config.teacher.train, settings, store=store)[0]


def train_model(model: nn.Module, tokenizer, dataset: IntentDataset, train: TrainConfig, settings: FitSettings, *,
                distillation: Distillation | None = None, store: RunStore | None = None, dynamics_samples: int = 0,
                save_model: bool = True) -> tuple[TrainResult, list[dict[str, Any]]]:
    """``fit`` with the extras every step adds, and the dynamics records: the layers profiled on
    ``dynamics_samples`` validation utterances, the tracker ``runtime.report_to`` names, and with a
    ``store`` the run's files (``model/`` when ``save_model``, then ``metrics.json``)."""
    dynamics = DynamicsProfile(dynamics_samples)
    tracker = Tracker.create(settings.runtime.report_to, store.root if store is not None else None, dynamics)
    result = fit(model, tokenizer, dataset, train, settings=settings, distillation=distillation, store=store,
                 callbacks=[dynamics] + ([tracker] if tracker is not None else []))
    if store is not None:
        if is_main_process():
            if save_model:
                save_pretrained_atomic(model, tokenizer, store.path("model"))
            store.write_json("metrics.json", training_record(result, train, settings, distillation, dynamics.records))
        barrier()
    return result, dynamics.records


def training_record(result: TrainResult, train: TrainConfig, settings: FitSettings,
                    distillation: Distillation | None, dynamics: list[dict[str, Any]]) -> dict[str, Any]:
    """What ``metrics.json`` holds: the metrics, the history, the dynamics, and how the run ran."""
    return {
        "metrics": result.metrics, "history": result.history, "dynamics": dynamics, "seconds": result.seconds,
        "train": asdict(train), "seed": settings.seed, "max_length": settings.max_length,
        "mapping": distillation.mapping.to_dict() if distillation and distillation.mapping else None,
        "loss": asdict(distillation.loss) if distillation else None,
        "optimizer_steps": result.steps, "processes": result.processes, "resumed_from_batch": result.resumed_from_step,
        "mixed_precision": result.mixed_precision, "threads": torch.get_num_threads(),
        "evaluated_per_process": result.evaluated_per_process,
    }


def load_finetuned_teacher(config: RunConfig, dataset: IntentDataset) -> TeacherResult:
    """A fine-tuned classifier used as is; its labels must be the data's (:func:`check_teacher_labels`)."""
    start = time.perf_counter()
    folder = fetch_model_dir(config.teacher.finetuned)
    model, tokenizer = load_model_dir(folder)
    check_teacher_labels(model, dataset, str(config.teacher.finetuned))
    check_max_length(model, config.data.max_length, str(config.teacher.finetuned))
    model.to(resolve_device(config.runtime.device))
    kwargs = dict(max_length=config.data.max_length)
    metrics = {"validation": evaluate(model, tokenizer, dataset, "validation", **kwargs),
               "test": evaluate(model, tokenizer, dataset, "test", **kwargs)}
    return TeacherResult(model, tokenizer, metrics, model_fingerprint(folder), folder, time.perf_counter() - start)


def check_out_is_not_teacher(config: RunConfig, out_dir: str | os.PathLike) -> None:
    """``--out`` must not be the teacher's folder (nor the folder whose ``model/`` it is): the run would
    write its student over the teacher it reads."""
    if not config.teacher.finetuned:
        return
    teacher, out = Path(config.teacher.finetuned).expanduser(), Path(out_dir).expanduser().resolve()
    if not teacher.exists():
        return
    folders = {teacher.resolve()}
    try:
        folders.add(model_directory(teacher).resolve())
    except (FileNotFoundError, ValueError):
        pass
    if out in folders or out / "model" in folders:
        raise UsageError(f"--out {out_dir} is your teacher's folder ({config.teacher.finetuned}): the run would write "
                         "over the teacher it reads. Choose another --out")


def check_teacher_labels(model: nn.Module, dataset: IntentDataset, name: str) -> None:
    """A teacher must have the data's label count and, when it carries label names, list the data's
    labels in the data's order: the one check every entry point that takes a teacher makes."""
    from .inference import has_label_names, label_names

    if model.config.num_labels != dataset.num_labels:
        raise ValueError(f"{name} has {model.config.num_labels} labels but {dataset.name} has {dataset.num_labels}; "
                         "use a teacher fine-tuned on this data (or --teacher-base to fine-tune one)")
    names = label_names(model)
    if has_label_names(model) and names != list(dataset.label_names):
        differ = next(i for i, (a, b) in enumerate(zip(names, dataset.label_names)) if a != b)
        raise ValueError(f"teacher {name} labels differ from {dataset.name}'s: class {differ} is {names[differ]!r} "
                         f"in the teacher but {dataset.label_names[differ]!r} in the data; use the data (and "
                         "--oos-label/--label-column) the teacher was fine-tuned with")


# ---------------------------------------------------------------------------------------------
# analysis and selection
# ---------------------------------------------------------------------------------------------

def profile(model: nn.Module, tokenizer, texts: Sequence[str], *, batch_size: int = 64, max_length: int = 64,
            model_name: str | None = None, progress: bool = True, **metadata: Any) -> SpectralProfile:
    """Spectral profile of every layer of ``model`` over ``texts`` (padding excluded)."""
    check_max_length(model, max_length, model_name)
    model.to(resolve_device("auto"))
    batches = text_batches(tokenizer, texts, batch_size=batch_size, max_length=max_length)
    return profile_model(model, batches, model_name=model_name, progress=progress, **metadata)


def profile_with_config(model: nn.Module, tokenizer, dataset: IntentDataset, config: RunConfig, *,
                        model_name: str | None = None) -> SpectralProfile:
    """``profile`` over the config's analysis utterances."""
    texts = analysis_texts(dataset, config.analysis.samples, split=config.analysis.split)
    return profile(model, tokenizer, texts, batch_size=config.analysis.batch_size, max_length=config.data.max_length,
                   model_name=model_name, progress=config.runtime.progress, dataset=dataset.name,
                   split=config.analysis.split, preset=config.name)


def write_profile(profile: SpectralProfile, out_dir: str | os.PathLike, *, stem: str = "intensity",
                  highlight: Sequence[int] = ()) -> tuple[Path, Path]:
    """``<stem>.json`` and ``<stem>.png`` in ``out_dir`` (both written atomically, by the main process)."""
    import matplotlib.pyplot as plt

    from ..common.io import atomic_write_json
    from ..analysis.viz import plot_intensity, save_figure

    out = Path(out_dir)
    if not is_main_process():
        return out / f"{stem}.json", out / f"{stem}.png"
    json_path = atomic_write_json(out / f"{stem}.json", profile.to_dict())
    figure = plot_intensity(profile, highlight=highlight)
    png_path = Path(save_figure(figure, out / f"{stem}.png"))
    plt.close(figure)
    return json_path, png_path


def teacher_profile(store: RunStore, teacher: TeacherResult, dataset: IntentDataset, config: RunConfig, *,
                    stem: str = "teacher_intensity", model_name: str = "teacher (fine-tuned)") -> SpectralProfile:
    """The teacher's profile (``<stem>.json/png`` in ``store``), reused only if derived from this very
    teacher and analysis settings."""
    source = f"{teacher.fingerprint}:{asdict(config.analysis)}:{config.data.max_length}"
    cached = store.read_derived(f"{stem}.json", source)
    if cached is not None and cached.get("rms") is not None:  # profiles saved before RMS was recorded: redo
        return SpectralProfile.from_dict(cached)
    profile = profile_with_config(teacher.model, teacher.tokenizer, dataset, config, model_name=model_name)
    write_profile(profile, store.root, stem=stem)
    store.write_derived(f"{stem}.json", profile.to_dict(), source)
    return profile


def choose_layers(strategy: str, num_student_layers: int, num_teacher_layers: int,
                  intensities: Sequence[float] | None = None, *, seed: int = 0,
                  rms: Sequence[float] | None = None) -> LayerMapping:
    """The teacher layers ``strategy`` aligns with a student of ``num_student_layers`` blocks
    (``rms``: the profile's per-layer RMS, which ``norm-topk`` ranks by)."""
    return select_layers(strategy, num_student_layers, num_teacher_layers, intensities, seed=seed, rms=rms)


# ---------------------------------------------------------------------------------------------
# students
# ---------------------------------------------------------------------------------------------

@dataclass
class StudentResult:
    """One distilled student: its mapping, metrics, history, the model itself, the learned
    projections its loss trained (training only; ``None`` when the loss has none), and ``report``:
    what a pipeline measured about it for its report (chapter 5: the summary row)."""

    mapping: LayerMapping | None
    seed: int
    metrics: dict[str, dict[str, float]]
    history: list[dict[str, Any]] = field(default_factory=list)
    dynamics: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    model: nn.Module | None = None
    projections: nn.Module | None = None
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def test(self) -> dict[str, float]:
        return self.metrics["test"]


def check_student(config: RunConfig) -> None:
    """What can be checked about the student before the teacher is fine-tuned (minutes to hours):
    ``layers:K`` needs K <= the teacher's blocks; a pretrained student must be reachable."""
    student = config.student
    if student.copied_layers is not None:
        teacher = config.teacher.finetuned or config.teacher.model
        try:
            blocks = model_blocks(teacher)
        except (OSError, ValueError):
            return  # loading the teacher names that problem itself
        if blocks is not None and student.copied_layers > blocks:
            raise UsageError(f"student.model={student.model!r} copies {student.copied_layers} blocks, but the "
                             f"teacher {teacher} has {blocks}; give --student layers:K with K <= {blocks}")
    elif student.random_shape is None and student.model not in TINY_NAMES:
        try:
            resolve_model_source(student.model)
        except FileNotFoundError as error:
            raise UsageError(f"student.model: {error}") from None


def distil_student(config: RunConfig, teacher: nn.Module, tokenizer, dataset: IntentDataset, student: nn.Module,
                   mapping: LayerMapping, *, seed: int = 0, store: RunStore | None = None,
                   cache: TeacherCache | None = None, description: str = "student",
                   save_model: bool = False, teacher_tokenizer=None) -> StudentResult:
    """Distil ``teacher`` into ``student`` with ``mapping`` (``none``: logits only) and the config's loss.

    ``tokenizer`` is the student's; ``teacher_tokenizer`` the teacher's when it differs (the teacher
    then reads its own tokens, and the feature loss must be sentence-level: ``pooled-spectral``)."""
    loss = copy.deepcopy(config.loss)
    if not mapping.pairs:
        loss.feature_loss = "none"
    torch.manual_seed(seed)
    distillation = Distillation(teacher, mapping, loss, cache=cache, teacher_tokenizer=teacher_tokenizer)
    result, dynamics = train_model(student, tokenizer, dataset, config.student.train,
                                   FitSettings(seed, config.data.max_length, config.runtime, description),
                                   distillation=distillation, store=store,
                                   dynamics_samples=config.grid.dynamics_samples, save_model=save_model)
    return StudentResult(mapping, seed, result.metrics, result.history, dynamics, result.seconds, student,
                         distillation.projections)


def build_teacher_cache(teacher: nn.Module, tokenizer, dataset: IntentDataset, layers: Sequence[int],
                        config: RunConfig, *, directory: str | os.PathLike | None = None,
                        source: str = "") -> TeacherCache | None:
    """The frozen teacher's outputs over the training split, for every run of a grid, stored as
    ``config.runtime`` says (``teacher_cache``, ``teacher_cache_dtype``, ``teacher_cache_budget``);
    ``directory``: the run directory a disk cache goes under (reused when built from ``source``).
    ``None`` when the cache would exceed its budget (or is off): the teacher then runs online."""
    runtime = config.runtime
    encoded = encode_split(tokenizer, dataset.train, config.data.max_length)
    return prepare_cache(teacher, encoded, layers, tokenizer.pad_token_id, storage=runtime.teacher_cache,
                         dtype=runtime.teacher_cache_dtype, budget_gb=runtime.teacher_cache_budget, directory=directory,
                         source=source, progress=runtime.progress)
