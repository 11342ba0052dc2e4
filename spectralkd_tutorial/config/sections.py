"""One nested run config, each value in one place; presets are named instances of it.

    RunConfig
    ├── data: DataConfig            which utterances, how they are tokenised (max_length)
    ├── teacher: TeacherConfig      the model to fine-tune (or a fine-tuned one) + its TrainConfig
    ├── student: StudentConfig      "layers:K" copied from the teacher, or a model name + its TrainConfig
    ├── loss: DistillationLossConfig   L = (1-alpha) CE + alpha T^2 KL + beta L_feature
    ├── analysis: AnalysisConfig    how many utterances the spectral profile sees
    ├── grid: GridConfig            strategies x seeds of an experiment
    ├── runtime: RuntimeConfig      device, mixed precision, progress bars
    └── vision: VisionConfig        the ViT chapter's sizes

Every section validates itself on construction and on every assignment (:class:`Validated`), so a
config can never hold ``epochs=0`` or ``lr=nan``. ``RunConfig.to_dict`` / ``from_dict`` round-trip
through plain data (JSON, TOML), which is also what a run directory's fingerprint is made of.

A field that the command line sets carries its flag in its metadata, as ``HfArgumentParser`` reads
``run_glue``'s dataclasses: ``field(default=..., metadata={"help": ..., "flag": ..., "choices": ...})``.
``help`` makes it a flag (``--`` + ``flag``, else the field name with dashes); ``choices``, ``aliases``
and ``metavar`` are passed on to argparse; the type (and ``nargs`` of a tuple) comes from the
annotation. ``spectralkd_tutorial.cli.flags`` builds the options and the one flag -> key table from it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, Mapping

from ..analysis.selection import STRATEGIES, get_strategy
from ..common.validated import Validated, require_finite
from ..data.common import CLINC150_VARIANTS, DATASET_NAMES
from ..losses import DistillationLossConfig

MIXED_PRECISION = ("no", "bf16", "fp16", "auto")
REPORT_TO = ("none", "tensorboard")
TEACHER_CACHE = ("auto", "memory", "disk", "off")
TEACHER_CACHE_DTYPES = ("float16", "bfloat16", "float32")
# the one description of the default teacher-cache budget (--help, README and core.teacher_cache.cache_budget)
TEACHER_CACHE_BUDGET_DEFAULT = ("the free disk space under --out less 1 GB for the disk cache (the default), or half "
                                "the available RAM for --teacher-cache memory")
DATASET_HELP = (", ".join(f"{name}[:{'|'.join(CLINC150_VARIANTS)}]" if name == "clinc150" else name
                         for name in DATASET_NAMES)
                + ", a CSV/TSV/JSONL/Parquet file (split with --split-seed), or hf:ORG/NAME")
MAX_LEARNING_RATE = 1e30  # Adam's first step is 10x the rate: far above this it exceeds float32 (raw overflow)


@dataclass
class TrainConfig(Validated):
    """Optimisation settings of one role (teacher fine-tuning or student distillation)."""

    epochs: float = field(default=3.0, metadata={"help": "epochs"})  # --epochs: "{role} epochs"
    learning_rate: float = field(default=1e-4, metadata={"help": "learning rate", "flag": "lr"})
    batch_size: int = field(default=32, metadata={"help": "batch size"})
    eval_batch_size: int = 256
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    gradient_accumulation: int = 1
    max_grad_norm: float = 1.0
    label_smoothing: float = 0.0
    checkpoint_every: int | None = None  # optimizer steps between mid-epoch checkpoints (None: epoch ends)
    eval_each_epoch: bool = True

    def validate(self) -> None:
        require_finite("epochs", self.epochs, positive=True)
        require_finite("learning_rate", self.learning_rate, positive=True)
        if self.learning_rate > MAX_LEARNING_RATE:
            raise ValueError(f"learning_rate={self.learning_rate:g} overflows the optimizer's float32 update; "
                             f"give at most {MAX_LEARNING_RATE:g} (fine-tuning uses about 1e-5 to 1e-2)")
        require_finite("weight_decay", self.weight_decay, minimum=0.0)
        require_finite("warmup_ratio", self.warmup_ratio, minimum=0.0, maximum=1.0)
        require_finite("max_grad_norm", self.max_grad_norm, positive=True)
        require_finite("label_smoothing", self.label_smoothing, minimum=0.0, maximum=0.999)
        for name in ("batch_size", "eval_batch_size", "gradient_accumulation"):
            _require_int(name, getattr(self, name), minimum=1)
        if self.checkpoint_every is not None:
            _require_int("checkpoint_every", self.checkpoint_every, minimum=1)


@dataclass
class DataConfig(Validated):
    """Where the utterances come from (a named set, the user's files, or a hub id) and their size."""

    dataset: str = field(default="embedded", metadata={"help": DATASET_HELP, "aliases": ("data",)})
    data_dir: str | None = field(default=None, metadata={
        "help": "upstream files of the named sets (default: $SPECTRALKD_DATA_DIR, else the hub)"})
    train_file: str | None = field(default=None, metadata={
        "help": "the user's training file (with --validation-file/--test-file)"})
    validation_file: str | None = field(default=None, metadata={
        "help": "the user's validation file (with --train-file)"})
    test_file: str | None = field(default=None, metadata={"help": "the user's test file (with --train-file)"})
    text_column: str = field(default="text", metadata={"help": "text column of the user's files (default: text)"})
    label_column: str = field(default="label", metadata={"help": "label column of the user's files (default: label)"})
    oos_label: str | None = field(default=None, metadata={
        "help": "the out-of-scope label: turns on in-scope accuracy / OOS recall"})
    split_seed: int = field(default=0, metadata={"help": "seed of the split of a single file (default 0)"})
    max_length: int = field(default=64, metadata={"help": "tokens per utterance"})
    train_limit: int | None = None  # subsample the training split (None: all)
    eval_limit: int | None = None  # subsample validation and test (None: all)

    def validate(self) -> None:
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ValueError("data.dataset is empty; name a data set (e.g. clinc150:full) or a file")
        _require_int("max_length", self.max_length, minimum=2)
        if self.text_column == self.label_column:
            raise ValueError(f"data.text_column and data.label_column are both {self.text_column!r}; name the "
                             "text column and the label column of your file (two different columns)")
        for name in ("train_limit", "eval_limit"):
            if getattr(self, name) is not None:
                _require_int(name, getattr(self, name), minimum=1)


@dataclass
class TeacherConfig(Validated):
    """``model`` is fine-tuned by ``train_teacher`` unless ``finetuned`` names a ready classifier."""

    model: str = field(default="tiny-roberta", metadata={  # hub name, local directory, or tiny-roberta / tiny-bert
        "help": "a model to fine-tune first as the teacher", "flag": "teacher-base"})
    finetuned: str | None = field(default=None, metadata={  # a fine-tuned sequence classifier used as is
        "help": "a fine-tuned classifier (directory or hub name), used as is", "flag": "teacher"})
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        if not self.model:
            raise ValueError("teacher.model is empty; name a hub model or a directory")


@dataclass
class StudentConfig(Validated):
    """``model``: ``layers:K`` (K teacher blocks chosen by ``init``), ``random:KxH`` (K randomly
    initialised blocks H wide, the teacher's family) or a smaller model's name/directory."""

    model: str = field(default="layers:2", metadata={"flag": "student", "help": "layers:K (K blocks copied from "
                       "the teacher), random:KxH (K fresh blocks H wide) or a smaller pretrained model"})
    init: str = field(default="uniform", metadata={  # the selection strategy whose teacher blocks it copies
        "help": "strategy choosing the blocks a layers:K student copies", "flag": "student-init"})
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=4, learning_rate=2e-3))

    def validate(self) -> None:
        if self.model.startswith("layers:"):
            count = self.model.split(":", 1)[1]
            if not count.isdigit() or int(count) < 1:
                raise ValueError(f"student.model={self.model!r}: write layers:K with K >= 1 (e.g. layers:3)")
        if self.model.startswith("random:"):
            self.random_shape  # raises on a bad spec
        if self.init not in STRATEGIES or get_strategy(self.init).pairs_nothing:
            raise ValueError(f"student.init={self.init!r}: choose a strategy that picks teacher blocks, one of "
                             f"{sorted(s for s in STRATEGIES if not get_strategy(s).pairs_nothing)}")
        if self.train.label_smoothing != 0:  # one value, one place: a student's CE is a term of loss
            raise ValueError(f"student.train.label_smoothing={self.train.label_smoothing!r} is not used: a student "
                             "learns from the distillation loss, whose cross-entropy is smoothed by loss.label_smoothing; "
                             "set that instead")

    @property
    def copied_layers(self) -> int | None:
        """K of ``layers:K``; ``None`` for any other student."""
        return int(self.model.split(":", 1)[1]) if self.model.startswith("layers:") else None

    @property
    def random_shape(self) -> tuple[int, int] | None:
        """(K, H) of ``random:KxH``; ``None`` for any other student."""
        if not self.model.startswith("random:"):
            return None
        blocks, _, width = self.model.split(":", 1)[1].partition("x")
        if not (blocks.isdigit() and width.isdigit() and int(blocks) >= 1 and int(width) >= 1):
            raise ValueError(f"student.model={self.model!r}: write random:KxH, e.g. random:3x192")
        return int(blocks), int(width)

    @property
    def num_layers(self) -> int | None:
        """Blocks of a ``layers:K`` or ``random:KxH`` student (``None``: read them off the model)."""
        shape = self.random_shape
        return self.copied_layers if shape is None else shape[0]


@dataclass
class AnalysisConfig(Validated):
    samples: int = field(default=64, metadata={"help": "number of utterances/images"})
    batch_size: int = 32
    split: str = "validation"

    def validate(self) -> None:
        _require_int("analysis.samples", self.samples, minimum=1)
        _require_int("analysis.batch_size", self.batch_size, minimum=1)
        if self.split not in ("train", "validation", "test"):
            raise ValueError(f"analysis.split={self.split!r}; choose train, validation or test")


#: the ablation grid's strategies: the default grid (presets.py uses it; the workshop preset adds two)
ABLATION_STRATEGIES = ("none", "uniform", "last", "random", "spectral-topk", "spectral-ends")


@dataclass
class GridConfig(Validated):
    """What an experiment varies: strategies x seeds (each pair once); a strategy is any name in
    :data:`~spectralkd_tutorial.analysis.selection.STRATEGY_REGISTRY`, built-in or registered later."""

    strategies: tuple[str, ...] = field(default=ABLATION_STRATEGIES, metadata={"help": "layer-selection strategies"})
    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={"help": "seeds: one run per strategy and seed"})
    dynamics_samples: int = 64

    def validate(self) -> None:
        object.__setattr__(self, "strategies", tuple(self.strategies))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        _no_duplicates("strategies", self.strategies)
        _no_duplicates("seeds", self.seeds)
        if not self.strategies or not self.seeds:
            raise ValueError("grid.strategies and grid.seeds need at least one entry each")
        unknown = [s for s in self.strategies if s not in STRATEGIES]
        if unknown:
            raise ValueError(f"strategies: unknown strategy {unknown}; choose from {sorted(STRATEGIES)}")
        for seed in self.seeds:
            _require_int("seed", seed, minimum=0)
        _require_int("grid.dynamics_samples", self.dynamics_samples, minimum=0)


@dataclass
class RuntimeConfig(Validated):
    """Where and how a run executes; none of it changes what a run computes beyond rounding (only
    ``mixed_precision`` and a grid's ``teacher_cache_dtype`` are part of a run directory's fingerprint)."""

    device: str = field(default="auto", metadata={  # one process (a launcher places each process itself)
        "help": "auto (default), cpu, cuda, cuda:N"})
    mixed_precision: str = field(default="no", metadata={"choices": MIXED_PRECISION, "help": "GPU mixed precision: "
                                 "bf16, fp16, auto (bf16 where supported, else fp16) or no"})
    progress: bool = True
    report_to: str = field(default="none", metadata={  # accelerate's trackers, in <run>/tensorboard
        "choices": REPORT_TO, "help": "also log losses, learning rate, metrics and layer intensities to "
                                      "OUT/.../tensorboard"})
    teacher_cache: str = field(default="auto", metadata={"choices": TEACHER_CACHE, "help": "where the grid keeps the "
                               "teacher's outputs (auto: on disk under --out; off: run it online)"})
    teacher_cache_dtype: str = field(default="float16", metadata={"choices": TEACHER_CACHE_DTYPES, "help": "precision "
                                     "the teacher cache stores hidden states in (default: float16)"})
    teacher_cache_budget: float | None = field(default=None, metadata={  # None: TEACHER_CACHE_BUDGET_DEFAULT
        "metavar": "GB", "help": "largest teacher cache; above it the teacher runs online (default: "
                                 f"{TEACHER_CACHE_BUDGET_DEFAULT})"})

    def validate(self) -> None:
        if self.mixed_precision not in MIXED_PRECISION:
            raise ValueError(f"mixed_precision={self.mixed_precision!r}; choose one of {MIXED_PRECISION}")
        for name, allowed in (("report_to", REPORT_TO), ("teacher_cache", TEACHER_CACHE),
                              ("teacher_cache_dtype", TEACHER_CACHE_DTYPES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}={getattr(self, name)!r}; choose one of {allowed}")
        if self.teacher_cache_budget is not None:
            require_finite("teacher_cache_budget", self.teacher_cache_budget, minimum=0.0)


@dataclass
class VisionConfig(Validated):
    epochs: int = 8
    model: str | None = None  # pretrained hub model analysed on the full path

    def validate(self) -> None:
        _require_int("vision.epochs", self.epochs, minimum=1)


@dataclass
class RunConfig(Validated):
    """Everything one run of a command depends on. Presets are named instances (see ``presets``)."""

    name: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    loss: DistillationLossConfig = field(default_factory=DistillationLossConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        return _build(cls, data, "")

    def replace(self, **dotted: Any) -> "RunConfig":
        """A copy with ``section.field`` values changed: ``config.replace(**{"student.train.epochs": 1})``."""
        data = self.to_dict()
        for key, value in dotted.items():
            set_dotted(data, key, value)
        return RunConfig.from_dict(data)


def set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``key = "a.b"``; an unknown key raises naming the valid ones."""
    *parents, last = key.split(".")
    node = data
    for part in parents:
        if not isinstance(node.get(part), dict):
            raise ValueError(f"unknown config key {key!r}: {part!r} is not a section; sections: {sorted(node)}")
        node = node[part]
    if last not in node:
        raise ValueError(f"unknown config key {key!r}; valid keys here: {sorted(node)}")
    node[last] = list(value) if isinstance(value, tuple) else value


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ValueError(f"config section {where or 'top level'} must be a table, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown config key(s) {[f'{where}{k}' for k in unknown]}; valid: {sorted(known)}")
    values: dict[str, Any] = {}
    defaults = cls()
    for name, value in data.items():
        current = getattr(defaults, name)
        if is_dataclass(current):
            values[name] = _build(type(current), value, f"{where}{name}.")
        elif isinstance(current, tuple):
            values[name] = tuple(value)
        else:
            values[name] = value
    try:
        return cls(**values)
    except ValueError as error:
        raise ValueError(f"config {_qualified(str(error), where, known)}") from error


def _qualified(message: str, where: str, known: Mapping[str, Any]) -> str:
    """``message`` of a section's ``validate`` with the section's dotted path in front, once."""
    if not where or message.startswith(where):
        return message
    head = message.split("=", 1)[0].split(" ", 1)[0].rstrip(":")
    return f"{where}{message}" if head in known else f"{where.rstrip('.')}: {message}"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _require_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            raise ValueError(f"{name}={value!r} must be a whole number (write {int(value)})")
        raise ValueError(f"{name}={value!r} must be a whole number >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}={value} must be >= {minimum}")


def _no_duplicates(name: str, values: tuple) -> None:
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        raise ValueError(f"{name} lists {sorted(set(seen), key=str)} more than once; give each once")


__all__ = [
    "AnalysisConfig", "DataConfig", "DistillationLossConfig", "GridConfig", "RunConfig", "RuntimeConfig",
    "StudentConfig", "TeacherConfig", "TrainConfig", "VisionConfig", "set_dotted",
]
