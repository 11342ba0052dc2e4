"""Chapter 5: RoBERTa-large end to end — teacher, spectral analysis, layer choice, students, model card.

One code path, three sizes. :class:`EndToEndPlan` says *which* models play which part (data, not
code); :class:`EndToEnd` performs the steps, each of which writes its results under ``out`` and,
run again, reuses them:

    1. teacher      fine-tune (``distill.fit``: checkpoints, ``resume=True``; bf16 autocast on a GPU,
                    FFT losses in float32)                              -> out/teacher/model, metrics.json
    2. profile      I_l = mean_k masked-mean_{n,t} |FFT_h(X_l)/H|[k] for every layer l = 0..L
                                                                        -> out/teacher/intensity.json/png
    3. layers       choose teacher layers for every student depth (``plan.selection``, default
                    ``spectral-ends``) next to ``spectral-topk``, ``uniform`` and the blog's RoBERTa-large
                    choice 1-9 + 21-23                                  -> out/teacher/layers.json/png
    4. students     L = (1 - alpha) CE + alpha T^2 KL(p_t^T || p_s^T) + beta L_feat(mapping), with
                    L_feat: ``spectral`` (teacher channels average-pooled H_t -> H_s, parameter-free),
                    ``spectral-projection`` (learned W_p: H_s -> H_t), or ``none`` (logits only)
                                                                        -> out/students/<run>/...
    5. summary      accuracy (in-scope, OOS recall, overall), retained = student / teacher in-scope
                    accuracy, parameters, latency per query              -> out/summary.json, model_card.md

``full``: teacher ``roberta-large`` (24 blocks, 1024 wide) on CLINC150 ``plus``; students
``roberta-base`` (12 x 768), ``distilroberta-base`` (6 x 768) and a 6-block student initialised
from teacher blocks (1024 wide). ``quick``: the same steps with tiny RoBERTa checkpoints written to
``out/sources`` and loaded with ``from_pretrained`` (teacher 8 x 64; students 4 x 48 and 2 x 48
sharing the teacher's tokenizer; 2 teacher blocks) — the depth ratio 24 : 12 : 6 and a width
mismatch (64 -> 48) like the real one (1024 -> 768).

Layer numbering: layer 0 = embedding output; layer l (1..L) = output of transformer block l
(Hugging Face ``hidden_states[l]``).
"""

from __future__ import annotations

import gc
import math
import os
import platform
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import torch

from .data import IntentDataset
from .core.device import resolve_device
from .distill import fit
from .io import atomic_write_json, atomic_write_text, read_json
from .losses import FEATURE_LOSSES, DistillationLossConfig, LayerProjections, check_tokenizers_compatible
from .metrics import headline
from .models import (quiet_transformers, count_parameters, hidden_width, load_classifier, measure_latency,
                     num_blocks, student_from_config, student_from_teacher)
from .pipeline import (analysis_texts, analyze_model, load_preset_data, student_train_config, train_teacher,
                       write_profile)
from .presets import MINILM_HUB_NAME, Preset
from .selection import STRATEGIES, LayerMapping, mapping_from_pairs, select_layers
from .spectral import LAYER_CONVENTION, SpectralProfile

__all__ = [
    "BLOG_LAYERS",
    "ModelSource",
    "StudentRun",
    "EndToEndPlan",
    "PLANS",
    "plan_for_preset",
    "EndToEnd",
    "run_end_to_end",
    "blog_comparison",
    "format_layers",
    "describe_device",
    "model_card_markdown",
    "plot_tradeoff",
]

#: The teacher layers the blog that adapted SpectralKD to text picked for a 12-layer student of a
#: fine-tuned RoBERTa-large (24 blocks), read off its intensity curve: blocks 1-9 and 21-23.
BLOG_LAYERS: tuple[int, ...] = tuple(range(1, 10)) + (21, 22, 23)
BLOG_TEACHER_BLOCKS = 24
SOURCE_KINDS = ("hub", "tiny", "from-teacher", "config")


# ---------------------------------------------------------------------------------------------
# The plan: which model plays which part (data, not code)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSource:
    """Where a teacher or student comes from.

    ``kind``:
      * ``"hub"``          ``ref`` is a hub name or a local ``save_pretrained`` directory
                           (``models.load_classifier``; a fresh head for our labels).
      * ``"tiny"``         a tiny randomly initialised checkpoint (``tiny.tiny_checkpoint``) written to
                           ``out/sources`` and loaded through ``from_pretrained``; a student reuses the
                           teacher's tokenizer (``tokenizer_from``).
      * ``"from-teacher"`` ``num_layers`` teacher blocks chosen by ``init_strategy`` copied into a student
                           (``models.student_from_teacher``; DistilBERT-style, teacher width).
      * ``"config"``       a randomly initialised student of the teacher's family, ``num_layers`` x
                           ``hidden_size`` (``models.student_from_config``; same tokenizer).

    ``num_layers`` / ``hidden_size`` are what the source has (hub: what it is expected to have; the
    summary records what was actually loaded).
    """

    name: str
    kind: str
    ref: str | None = None
    num_layers: int | None = None
    hidden_size: int | None = None
    num_heads: int | None = None
    model_type: str = "roberta"
    init_strategy: str = "spectral-ends"

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"ModelSource {self.name!r}: kind={self.kind!r}; choose one of {SOURCE_KINDS}")
        if self.kind == "hub" and not self.ref:
            raise ValueError(f"ModelSource {self.name!r}: kind 'hub' needs ref= a hub name or a directory")
        if self.kind in ("tiny", "from-teacher", "config") and not self.num_layers:
            raise ValueError(f"ModelSource {self.name!r}: kind {self.kind!r} needs num_layers")
        if self.kind in ("tiny", "config") and not self.hidden_size:
            raise ValueError(f"ModelSource {self.name!r}: kind {self.kind!r} needs hidden_size")
        if self.kind == "from-teacher" and (self.init_strategy not in STRATEGIES or self.init_strategy == "none"):
            raise ValueError(f"ModelSource {self.name!r}: init_strategy={self.init_strategy!r} must be a layer "
                             f"selection strategy other than 'none' ({STRATEGIES})")

    def describe(self) -> str:
        size = f"{self.num_layers or '?'} blocks x {self.hidden_size or '?'}"
        if self.kind == "hub":
            return f"`{self.ref}` (pretrained, {size})"
        if self.kind == "tiny":
            return f"tiny random {self.model_type} checkpoint ({size}), saved and loaded with from_pretrained"
        if self.kind == "from-teacher":
            return f"{self.num_layers} teacher blocks chosen by `{self.init_strategy}` (teacher width)"
        return f"random {self.num_layers} blocks x {self.hidden_size} of the teacher's family"


@dataclass(frozen=True)
class StudentRun:
    """One distillation run: which student, which teacher layers (strategy), which feature loss."""

    name: str
    student: str  # a ModelSource.name of plan.students
    strategy: str  # layer selection ("none": logits only)
    feature_loss: str  # one of losses.FEATURE_LOSSES

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"StudentRun {self.name!r}: strategy={self.strategy!r}; choose one of {STRATEGIES}")
        if self.feature_loss not in FEATURE_LOSSES:
            raise ValueError(f"StudentRun {self.name!r}: feature_loss={self.feature_loss!r}; choose one of {FEATURE_LOSSES}")
        if (self.strategy == "none") != (self.feature_loss == "none"):
            raise ValueError(
                f"StudentRun {self.name!r}: strategy={self.strategy!r} with feature_loss={self.feature_loss!r}; "
                "logits-only KD is strategy='none' with feature_loss='none', and every other strategy needs a feature loss"
            )

    @property
    def label(self) -> str:
        loss = {"none": "logits only", "spectral": "spectral (pooled)", "spectral-projection": "spectral (projection)",
                "mse": "hidden MSE (pooled)", "projection": "hidden MSE (projection)"}[self.feature_loss]
        return loss if self.strategy == "none" else f"{loss}, {self.strategy} layers"


@dataclass(frozen=True)
class EndToEndPlan:
    """Teacher, students and runs of one preset's chapter-5 pipeline."""

    preset: str
    teacher: ModelSource
    students: tuple[ModelSource, ...]
    runs: tuple[StudentRun, ...]
    selection: str = "spectral-ends"
    compare_selections: tuple[str, ...] = ("spectral-topk", "uniform")
    blog_layers: tuple[int, ...] = BLOG_LAYERS
    latency_queries: int = 32
    latency_repeats: int = 3
    checkpoint_every: int | None = None  # optimizer steps between mid-epoch checkpoints (long runs)
    keep_checkpoints: bool = False  # checkpoint.pt (model + optimizer) is deleted once a step is finished
    seed: int = 0
    notes: str = ""

    def __post_init__(self) -> None:
        names = [s.name for s in self.students]
        if len(set(names)) != len(names):
            raise ValueError(f"plan {self.preset!r}: duplicate student names {names}")
        runs = [r.name for r in self.runs]
        if len(set(runs)) != len(runs):
            raise ValueError(f"plan {self.preset!r}: duplicate run names {runs}")
        for run in self.runs:
            if run.student not in names:
                raise ValueError(f"plan {self.preset!r}: run {run.name!r} uses student {run.student!r}, "
                                 f"which is not one of {names}")
        if self.teacher.kind in ("from-teacher", "config"):
            raise ValueError(f"plan {self.preset!r}: the teacher must be kind 'hub' or 'tiny'")
        if self.selection not in STRATEGIES or self.selection == "none":
            raise ValueError(f"plan {self.preset!r}: selection={self.selection!r} must be a strategy other than 'none'")

    def student(self, name: str) -> ModelSource:
        for source in self.students:
            if source.name == name:
                return source
        raise KeyError(f"no student {name!r} in plan {self.preset!r}; students: {[s.name for s in self.students]}")

    def run(self, name: str) -> StudentRun:
        for run in self.runs:
            if run.name == name:
                return run
        raise KeyError(f"no run {name!r} in plan {self.preset!r}; runs: {[r.name for r in self.runs]}")

    def with_runs(self, names: Sequence[str]) -> "EndToEndPlan":
        """The same plan restricted to the runs ``names`` (and the students they use)."""
        runs = tuple(self.run(name) for name in names)
        used = {r.student for r in runs}
        return replace(self, runs=runs, students=tuple(s for s in self.students if s.name in used))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe_markdown(self) -> str:
        lines = [f"**Teacher:** {self.teacher.describe()}", "",
                 "| student | source | runs |", "|---|---|---|"]
        for source in self.students:
            runs = ", ".join(f"`{r.name}`" for r in self.runs if r.student == source.name)
            lines.append(f"| {source.name} | {source.describe()} | {runs} |")
        lines += ["", "| run | student | teacher layers | feature loss |", "|---|---|---|---|"]
        for run in self.runs:
            layers = "none (logits only)" if run.strategy == "none" else f"`{run.strategy}`"
            lines.append(f"| {run.name} | {run.student} | {layers} | `{run.feature_loss}` |")
        return "\n".join(lines)


def _standard_runs(big: str, small: str | None, from_teacher: str, selection: str = "spectral-ends") -> tuple[StudentRun, ...]:
    """The comparison every plan makes: logits only vs spectral (pooled / projected) vs uniform layers."""
    runs = [
        StudentRun(f"{big}-logits", big, "none", "none"),
        StudentRun(f"{big}-spectral", big, selection, "spectral"),
        StudentRun(f"{big}-spectral-proj", big, selection, "spectral-projection"),
        StudentRun(f"{big}-uniform-spectral", big, "uniform", "spectral"),
    ]
    if small is not None:
        runs += [
            StudentRun(f"{small}-logits", small, "none", "none"),
            StudentRun(f"{small}-spectral", small, selection, "spectral"),
            StudentRun(f"{small}-spectral-proj", small, selection, "spectral-projection"),
        ]
    runs += [
        StudentRun(f"{from_teacher}-logits", from_teacher, "none", "none"),
        StudentRun(f"{from_teacher}-spectral", from_teacher, selection, "spectral"),
    ]
    return tuple(runs)


PLANS: dict[str, EndToEndPlan] = {
    "full": EndToEndPlan(
        preset="full",
        teacher=ModelSource("roberta-large", "hub", "roberta-large", num_layers=24, hidden_size=1024),
        students=(
            ModelSource("roberta-base", "hub", "roberta-base", num_layers=12, hidden_size=768),
            ModelSource("distilroberta-base", "hub", "distilroberta-base", num_layers=6, hidden_size=768),
            ModelSource("from-teacher-6", "from-teacher", num_layers=6),
        ),
        runs=_standard_runs("roberta-base", "distilroberta-base", "from-teacher-6"),
        checkpoint_every=500,
        notes="roberta-large, roberta-base and distilroberta-base share one byte-level BPE tokenizer.",
    ),
    "quick": EndToEndPlan(
        preset="quick",
        teacher=ModelSource("tiny-roberta-8x64", "tiny", num_layers=8, hidden_size=64, num_heads=4),
        students=(
            ModelSource("tiny-4x48", "tiny", num_layers=4, hidden_size=48, num_heads=4),
            ModelSource("tiny-2x48", "tiny", num_layers=2, hidden_size=48, num_heads=4),
            ModelSource("from-teacher-2", "from-teacher", num_layers=2),
        ),
        runs=_standard_runs("tiny-4x48", "tiny-2x48", "from-teacher-2"),
        latency_queries=16,
        latency_repeats=5,
        notes=("Stand-ins, randomly initialised: teacher 8 x 64 for roberta-large (24 x 1024), tiny-4x48 for "
               "roberta-base (12 x 768), tiny-2x48 for distilroberta-base (6 x 768). The numbers only show "
               "that every step runs."),
    ),
    "workshop": EndToEndPlan(
        preset="workshop",
        teacher=ModelSource("all-MiniLM-L6-v2", "hub", MINILM_HUB_NAME, num_layers=6, hidden_size=384,
                            model_type="bert"),
        students=(
            ModelSource("config-3x192", "config", num_layers=3, hidden_size=192, num_heads=3, model_type="bert"),
            ModelSource("from-teacher-3", "from-teacher", num_layers=3, model_type="bert"),
        ),
        runs=_standard_runs("config-3x192", None, "from-teacher-3"),
        latency_queries=32,
        notes="MiniLM-L6-H384 teacher; a narrower random 3 x 192 student (width 384 -> 192) and 3 teacher blocks.",
    ),
}


def plan_for_preset(preset: Preset | str) -> EndToEndPlan:
    """The chapter-5 plan of a preset (``quick``, ``workshop`` or ``full``)."""
    name = preset if isinstance(preset, str) else preset.name
    if name not in PLANS:
        raise ValueError(f"no end-to-end plan for preset {name!r}; plans exist for {sorted(PLANS)}")
    return PLANS[name]


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------

def format_layers(layers: Sequence[int]) -> str:
    """``[1, 2, 3, 5, 21, 22]`` -> ``"1-3, 5, 21-22"``."""
    values = sorted(int(v) for v in layers)
    if not values:
        return "none"
    parts, start, prev = [], values[0], values[0]
    for v in values[1:] + [None]:  # type: ignore[operator]
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(parts)


def blog_comparison(chosen: Sequence[int], teacher_blocks: int, blog_layers: Sequence[int] = BLOG_LAYERS) -> dict[str, Any]:
    """Our chosen teacher layers next to the blog's 1-9 + 21-23 (a 12-layer student of 24-block RoBERTa-large).

    The comparison is only meaningful for the same teacher depth (24 blocks) and student depth (12).
    """
    chosen = sorted(int(v) for v in chosen)
    blog = sorted(int(v) for v in blog_layers)
    comparable = teacher_blocks == BLOG_TEACHER_BLOCKS and len(chosen) == len(blog)
    out: dict[str, Any] = {"ours": chosen, "blog": blog, "comparable": comparable,
                           "teacher_blocks": teacher_blocks, "student_layers": len(chosen)}
    if comparable:
        overlap = sorted(set(chosen) & set(blog))
        out.update(overlap=overlap, overlap_count=len(overlap), only_ours=sorted(set(chosen) - set(blog)),
                   only_blog=sorted(set(blog) - set(chosen)),
                   text=f"ours {format_layers(chosen)} vs blog {format_layers(blog)}: {len(overlap)} of {len(blog)} shared")
    else:
        out["text"] = (f"not comparable: the blog chose {len(blog)} of {BLOG_TEACHER_BLOCKS} RoBERTa-large blocks "
                       f"({format_layers(blog)}); this teacher has {teacher_blocks} blocks and the student "
                       f"{len(chosen)} layers (ours: {format_layers(chosen)})")
    return out


def describe_device(device: torch.device | str | None = None) -> str:
    """A human-readable name of the device latency was measured on."""
    device = resolve_device("auto") if device is None else torch.device(device)
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine() or "CPU"
    threads = torch.get_num_threads()
    return f"CPU {cpu} ({threads} thread{'' if threads == 1 else 's'})"


def _params(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def _pct(value: float | None) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.2f}"


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _load_dir(path: Path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    return AutoModelForSequenceClassification.from_pretrained(path), AutoTokenizer.from_pretrained(path)


# ---------------------------------------------------------------------------------------------
# The steps
# ---------------------------------------------------------------------------------------------

class EndToEnd:
    """The chapter-5 pipeline, one method per step; each step is reused when already finished.

    Methods call the steps they depend on, so ``train_student`` alone also trains the teacher.
    """

    def __init__(self, preset: Preset, out_dir: str | os.PathLike, *, plan: EndToEndPlan | None = None,
                 data_dir: str | os.PathLike | None = None, dataset: IntentDataset | None = None,
                 progress: bool = True, verbose: bool = True) -> None:
        self.preset = preset
        self.plan = plan or plan_for_preset(preset)
        self.out = Path(out_dir)
        self.progress = progress
        self.verbose = verbose
        self.device = resolve_device(preset.device)
        quiet_transformers()  # no weight-loading / shard-writing bars from transformers itself
        self.dataset = dataset or load_preset_data(preset, data_dir)
        self.teacher = None
        self.tokenizer = None
        self.teacher_result: dict[str, Any] | None = None
        self.profile: SpectralProfile | None = None
        self.layer_choice: dict[str, Any] | None = None
        self.results: dict[str, dict[str, Any]] = {}
        self._check_run_directory()

    # -- bookkeeping ----------------------------------------------------------------------------

    def log(self, message: str) -> None:
        if self.verbose:
            print(message, flush=True)

    def _fingerprint(self) -> dict[str, Any]:
        return {"preset": self.preset.to_dict(), "teacher": asdict(self.plan.teacher),
                "selection": self.plan.selection, "seed": self.plan.seed,
                "dataset": {"name": self.dataset.name, "variant": self.dataset.variant,
                            "sizes": [len(s) for s in self.dataset.splits.values()]}}

    def _check_run_directory(self) -> None:
        path = self.out / "run.json"
        fingerprint = self._fingerprint()
        if path.exists():
            previous = read_json(path).get("fingerprint")
            if previous != fingerprint:
                raise ValueError(
                    f"{self.out} holds a run with other settings (preset, teacher or data); use another "
                    f"output directory or delete {self.out}. old: {previous} new: {fingerprint}"
                )
        else:
            atomic_write_json(path, {"fingerprint": fingerprint, "plan": self.plan.to_dict(),
                                     "layer_convention": LAYER_CONVENTION})

    @property
    def test_texts(self) -> list[str]:
        return list(self.dataset.test.texts[: self.plan.latency_queries])

    def _latency(self, model, tokenizer) -> float:
        model.to(self.device)
        return measure_latency(model, tokenizer, self.test_texts, repeats=self.plan.latency_repeats,
                               max_length=self.preset.max_length, device=self.device)

    # -- 1. teacher -----------------------------------------------------------------------------

    def _tiny_source(self, source: ModelSource, tokenizer_from: str | None) -> str:
        from .tiny import tiny_checkpoint

        return str(tiny_checkpoint(source.model_type, label_names=self.dataset.label_names,
                                   num_layers=int(source.num_layers), hidden_size=int(source.hidden_size),
                                   num_heads=int(source.num_heads or 4), seed=self.plan.seed,
                                   tokenizer_from=tokenizer_from, root=self.out / "sources"))

    def teacher_source(self) -> str:
        """What the teacher is loaded from: a hub name or a directory (a tiny one is built first)."""
        source = self.plan.teacher
        return self._tiny_source(source, None) if source.kind == "tiny" else str(source.ref)

    def train_teacher(self) -> dict[str, Any]:
        """Fine-tune (or load) the teacher; ``out/teacher/{model,metrics.json,result.json}``."""
        if self.teacher_result is not None:
            return self.teacher_result
        directory = self.out / "teacher"
        result_path = directory / "result.json"
        start = time.perf_counter()
        preset = self.preset.with_overrides(teacher=self.teacher_source())
        overrides = {"checkpoint_every": self.plan.checkpoint_every} if self.plan.checkpoint_every else {}
        self.log(f"[teacher] {self.plan.teacher.describe()} on {self.dataset.name}"
                 f"{' ' + self.dataset.variant if self.dataset.variant else ''} ({len(self.dataset.train)} train)")
        teacher, tokenizer, metrics = train_teacher(preset, directory, dataset=self.dataset, seed=self.plan.seed,
                                                    progress=self.progress, **overrides)
        teacher.to(self.device).eval()
        self.teacher, self.tokenizer = teacher, tokenizer
        if result_path.exists():
            self.teacher_result = read_json(result_path)
        else:
            self.teacher_result = {
                "name": self.plan.teacher.name, "source": self.plan.teacher.describe(),
                "blocks": num_blocks(teacher), "width": hidden_width(teacher),
                "parameters": count_parameters(teacher), "metrics": metrics["metrics"],
                "latency_ms": self._latency(teacher, tokenizer), "device": describe_device(self.device),
                "seconds": metrics.get("seconds", time.perf_counter() - start),
            }
            atomic_write_json(result_path, self.teacher_result)
            if not self.plan.keep_checkpoints:
                (directory / "checkpoint.pt").unlink(missing_ok=True)
        test = self.teacher_result["metrics"]["test"]
        self.log(f"[teacher] {self.teacher_result['blocks']} blocks x {self.teacher_result['width']}, "
                 f"{_params(self.teacher_result['parameters'])} parameters; test in-scope/overall "
                 f"{_pct(test.get('in_scope_accuracy'))}/{_pct(test['accuracy'])}% "
                 f"({time.perf_counter() - start:.0f} s)")
        return self.teacher_result

    # -- 2. spectral profile --------------------------------------------------------------------

    def profile_teacher(self) -> SpectralProfile:
        """Per-layer spectral intensities of the fine-tuned teacher; ``out/teacher/intensity.json/png``."""
        if self.profile is not None:
            return self.profile
        self.train_teacher()
        path = self.out / "teacher" / "intensity.json"
        if path.exists():
            self.profile = SpectralProfile.from_dict(read_json(path))
        else:
            texts = analysis_texts(self.dataset, self.preset.analysis_samples)
            self.profile = analyze_model(self.teacher, self.tokenizer, texts, batch_size=self.preset.analysis_batch_size,
                                         max_length=self.preset.max_length, progress=self.progress,
                                         model_name=f"{self.plan.teacher.name} (fine-tuned)",
                                         dataset=self.dataset.name, split="validation", preset=self.preset.name)
            write_profile(self.profile, self.out / "teacher", stem="intensity")
        self.log(f"[profile] I_l over {len(self.profile.intensities)} layers (0 = embeddings): "
                 + " ".join(f"{v:.3g}" for v in self.profile.intensities))
        return self.profile

    # -- 3. layer choice ------------------------------------------------------------------------

    def _student_depths(self) -> list[int]:
        depths = set()
        for source in self.plan.students:
            if source.num_layers:
                depths.add(int(source.num_layers))
        return sorted(depths, reverse=True)

    def mapping(self, strategy: str, num_student_layers: int) -> LayerMapping:
        """The teacher layers ``strategy`` chooses for a ``num_student_layers`` student."""
        profile = self.profile_teacher()
        return select_layers(strategy, num_student_layers, num_blocks(self.teacher), profile.intensities,
                             seed=self.plan.seed)

    def choose_layers(self) -> dict[str, Any]:
        """Chosen teacher layers per student depth, beside other strategies and the blog's choice."""
        if self.layer_choice is not None:
            return self.layer_choice
        import matplotlib.pyplot as plt

        from .viz import save_figure

        profile = self.profile_teacher()
        total = num_blocks(self.teacher)
        depths: dict[str, Any] = {}
        for depth in self._student_depths():
            entry = {s: self.mapping(s, depth).teacher_layers for s in (self.plan.selection, *self.plan.compare_selections)}
            depths[str(depth)] = {"layers": entry,
                                  "blog": blog_comparison(entry[self.plan.selection], total, self.plan.blog_layers)}
        self.layer_choice = {"selection": self.plan.selection, "teacher_blocks": total, "by_depth": depths,
                             "convention": LAYER_CONVENTION, "intensities": profile.intensities}
        atomic_write_json(self.out / "teacher" / "layers.json", self.layer_choice)
        figure = self.mapping_figure()
        save_figure(figure, self.out / "teacher" / "layers.png")
        plt.close(figure)
        for depth, entry in depths.items():
            self.log(f"[layers] {depth}-layer student: " + "; ".join(
                f"{s} {format_layers(v)}" for s, v in entry["layers"].items()))
        return self.layer_choice

    def mapping_figure(self, depth: int | None = None):
        """The intensity curve with every strategy's layers marked (and the blog's, when comparable)."""
        from .viz import plot_mappings

        choice = self.choose_layers() if self.layer_choice is None else self.layer_choice
        depth = depth or self._student_depths()[0]
        entry = choice["by_depth"][str(depth)]
        total = choice["teacher_blocks"]
        mappings = {s: mapping_from_pairs(list(enumerate(layers, 1)), depth, total, s)
                    for s, layers in entry["layers"].items()}
        if entry["blog"]["comparable"]:
            mappings["blog (1-9, 21-23)"] = mapping_from_pairs(list(enumerate(entry["blog"]["blog"], 1)), depth, total,
                                                              "blog")
        return plot_mappings(choice["intensities"], mappings,
                             title=f"teacher intensity and the layers a {depth}-layer student aligns "
                                   f"(layer 0 = embeddings, l = block l)")

    # -- 4. students ----------------------------------------------------------------------------

    def build_student(self, source: ModelSource | str):
        """``(model, tokenizer)`` of a student, checked to tokenise exactly like the teacher."""
        source = self.plan.student(source) if isinstance(source, str) else source
        self.train_teacher()
        torch.manual_seed(self.plan.seed)
        if source.kind == "from-teacher":
            mapping = self.mapping(source.init_strategy, int(source.num_layers))
            model, tokenizer = student_from_teacher(self.teacher, mapping.teacher_layers), self.tokenizer
        elif source.kind == "config":
            model = student_from_config(self.teacher, num_layers=int(source.num_layers), hidden_size=source.hidden_size,
                                        num_heads=source.num_heads, seed=self.plan.seed)
            tokenizer = self.tokenizer
        else:
            ref = (self._tiny_source(source, tokenizer_from=self.teacher_source())
                   if source.kind == "tiny" else str(source.ref))
            model, tokenizer = load_classifier(ref, self.dataset.label_names, seed=self.plan.seed)
        check_tokenizers_compatible(self.tokenizer, tokenizer, self.dataset.train.texts[:64])
        if model.config.num_labels != self.teacher.config.num_labels:
            raise ValueError(f"student {source.name!r} has {model.config.num_labels} labels, the teacher "
                             f"{self.teacher.config.num_labels}")
        return model, tokenizer

    def _run_spec(self, run: StudentRun) -> dict[str, Any]:
        return {"run": asdict(run), "student": asdict(self.plan.student(run.student)),
                "preset": self.preset.to_dict()}

    def finished_result(self, run: StudentRun | str) -> dict[str, Any] | None:
        """The saved result of a finished run (``None`` if not finished); refuses a changed run definition."""
        run = self.plan.run(run) if isinstance(run, str) else run
        path = self.out / "students" / run.name / "result.json"
        if not path.exists():
            return None
        result = read_json(path)
        spec = self._run_spec(run)
        if result.get("spec") != spec:
            raise ValueError(f"{path.parent} was written by another run definition; delete it to retrain. "
                             f"old: {result.get('spec')} new: {spec}")
        self.results[run.name] = result
        return result

    def train_student(self, run: StudentRun | str) -> dict[str, Any]:
        """Distil one student (or reuse a finished one); ``out/students/<run>/{model,metrics.json,result.json}``."""
        run = self.plan.run(run) if isinstance(run, str) else run
        directory = self.out / "students" / run.name
        result_path = directory / "result.json"
        spec = self._run_spec(run)
        result = self.finished_result(run)
        if result is not None:
            self.log(f"[student] {run.name}: finished earlier (test {_pct(headline(result['metrics']['test']))}%)")
            return result
        teacher_result = self.train_teacher()
        start = time.perf_counter()
        model, tokenizer = self.build_student(run.student)
        student_blocks, student_width = num_blocks(model), hidden_width(model)
        teacher_width = teacher_result["width"]
        mapping = None if run.strategy == "none" else self.mapping(run.strategy, student_blocks)
        loss = DistillationLossConfig(alpha=self.preset.alpha, temperature=self.preset.temperature,
                                      beta=self.preset.beta, feature_loss=run.feature_loss)
        projections = (LayerProjections(len(mapping.pairs), student_width, teacher_width)
                       if loss.needs_projections and mapping is not None else None)
        overrides = {"checkpoint_every": self.plan.checkpoint_every} if self.plan.checkpoint_every else {}
        config = student_train_config(self.preset, seed=self.plan.seed, progress=self.progress, **overrides)
        self.log(f"[student] {run.name}: {student_blocks} blocks x {student_width}, {run.label}"
                 + (f" ({mapping.describe()})" if mapping is not None else ""))
        trained = fit(model, tokenizer, self.dataset, config, teacher=self.teacher, mapping=mapping, loss_config=loss,
                      projections=projections, output_dir=directory, resume=True, description=run.name)
        if run.feature_loss == "none":
            handling = "logits only (no hidden states compared)"
        elif loss.needs_projections:
            handling = (f"learned projection {student_width}->{teacher_width} "
                        f"({_params(count_parameters(projections))} training-only parameters)")
        elif student_width < teacher_width:
            handling = f"teacher channels average-pooled {teacher_width}->{student_width} (parameter-free)"
        else:
            handling = "same width (no pooling needed)"
        result = {
            "spec": spec, "name": run.name, "label": run.label, "student": run.student,
            "source": self.plan.student(run.student).describe(), "strategy": run.strategy,
            "feature_loss": run.feature_loss, "blocks": student_blocks, "width": student_width,
            "teacher_width": teacher_width, "width_mismatch": student_width != teacher_width,
            "width_handling": handling, "mapping": mapping.to_dict() if mapping is not None else None,
            "teacher_layers": mapping.teacher_layers if mapping is not None else [],
            "init_layers": (self.mapping(self.plan.student(run.student).init_strategy, student_blocks).teacher_layers
                            if self.plan.student(run.student).kind == "from-teacher" else None),
            "parameters": count_parameters(model),
            "projection_parameters": count_parameters(projections) if projections is not None else 0,
            "metrics": trained.metrics,
            "retained": headline(trained.metrics["test"]) / headline(teacher_result["metrics"]["test"]),
            "latency_ms": self._latency(model, tokenizer), "device": describe_device(self.device),
            "seconds": trained.seconds, "history": trained.history,
        }
        atomic_write_json(result_path, result)
        if not self.plan.keep_checkpoints:
            (directory / "checkpoint.pt").unlink(missing_ok=True)
        self.results[run.name] = result
        self.log(f"[student] {run.name}: test {_pct(headline(trained.metrics['test']))}% "
                 f"(retained {_pct(result['retained'])}%), {result['latency_ms']:.2f} ms/query "
                 f"({time.perf_counter() - start:.0f} s)")
        del model, projections
        _free_memory()
        return result

    def train_students(self) -> list[dict[str, Any]]:
        return [self.train_student(run) for run in self.plan.runs]

    def load_student(self, run: StudentRun | str):
        """``(model, tokenizer)`` of a finished student, from ``out/students/<run>/model``."""
        name = run if isinstance(run, str) else run.name
        path = self.out / "students" / name / "model"
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"student {name!r} is not trained yet ({path} missing); run train_student({name!r})")
        return _load_dir(path)

    # -- 5. summary -----------------------------------------------------------------------------

    def summarise(self) -> dict[str, Any]:
        """``summary.json`` and ``model_card.md`` (the students finished so far; trains nothing new)."""
        teacher = self.train_teacher()
        choice = self.choose_layers()
        for run in self.plan.runs:
            if run.name not in self.results:
                self.finished_result(run)  # finished in an earlier session
        students = [self.results[r.name] for r in self.plan.runs if r.name in self.results]
        for row in students:
            row.setdefault("speedup", teacher["latency_ms"] / row["latency_ms"] if row["latency_ms"] else float("nan"))
        summary = {
            "preset": self.preset.name, "plan": self.plan.to_dict(), "dataset": self.dataset.summary(),
            "test_split": f"{self.dataset.name}{' ' + self.dataset.variant if self.dataset.variant else ''} test "
                          f"({len(self.dataset.test)} utterances)",
            "device": describe_device(self.device), "layer_convention": LAYER_CONVENTION,
            "teacher": teacher, "layer_choice": choice,
            "students": [{k: v for k, v in row.items() if k not in ("history", "spec")} for row in students],
            "missing_runs": [r.name for r in self.plan.runs if r.name not in self.results],
        }
        summary["model_card_markdown"] = model_card_markdown(summary)
        atomic_write_json(self.out / "summary.json", summary)
        atomic_write_text(self.out / "model_card.md", summary["model_card_markdown"] + "\n")
        self.log(f"[summary] wrote {self.out / 'summary.json'} and {self.out / 'model_card.md'}")
        return summary

    def run_all(self) -> dict[str, Any]:
        self.train_teacher()
        self.profile_teacher()
        self.choose_layers()
        self.train_students()
        return self.summarise()


def run_end_to_end(preset: Preset, out_dir: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
                   progress: bool = True, plan: EndToEndPlan | None = None, dataset: IntentDataset | None = None,
                   verbose: bool = True) -> dict[str, Any]:
    """Teacher -> profile -> layer choice -> every student -> ``summary.json`` + ``model_card.md``.

    Resumable: a finished teacher, profile or student is reused; an interrupted one resumes from its
    checkpoint. Returns the summary (``summary["model_card_markdown"]`` is the model card).
    """
    runner = EndToEnd(preset, out_dir, plan=plan, data_dir=data_dir, dataset=dataset, progress=progress,
                      verbose=verbose)
    return runner.run_all()


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------

def model_card_markdown(summary: dict[str, Any]) -> str:
    """The model card: teacher vs students (accuracy, retained, parameters, latency, device) and layers."""
    teacher = summary["teacher"]
    test = teacher["metrics"]["test"]
    oos = "in_scope_accuracy" in test
    plan = summary["plan"]
    if oos:
        header = ("| model | init / layers aligned | width | in-scope acc. (%) | OOS recall (%) | overall acc. (%) "
                  "| retained (%) | parameters | latency (ms/query) | speed-up | device |")
    else:
        header = ("| model | init / layers aligned | width | accuracy (%) | macro-F1 (%) | retained (%) "
                  "| parameters | latency (ms/query) | speed-up | device |")

    def scores(metrics: dict[str, float]) -> str:
        if oos:
            return (f"{_pct(metrics['in_scope_accuracy'])} | {_pct(metrics['oos_recall'])} | "
                    f"{_pct(metrics['overall_accuracy'])}")
        return f"{_pct(metrics['accuracy'])} | {_pct(metrics['macro_f1'])}"

    lines = [
        f"# Model card: students distilled from {teacher['name']} (preset `{summary['preset']}`)", "",
        f"Teacher `{teacher['name']}` ({teacher['blocks']} blocks x {teacher['width']}, "
        f"{_params(teacher['parameters'])} parameters), fine-tuned on "
        f"{summary['test_split'].rsplit(' test', 1)[0]}. Metrics on the {summary['test_split']}, one seed. "
        "Retained = student / teacher headline accuracy (in-scope accuracy where there is an out-of-scope class, "
        "else accuracy). Latency: median "
        "milliseconds per query at batch size 1. Spectral loss: L = (1-a) CE + a T^2 KL + b L_spec; "
        "'pooled' = teacher channels average-pooled to the student width (parameter-free), "
        "'projection' = a learned linear map from student to teacher width (training only, not in the parameters).",
        "", header, "|" + "---|" * (header.count("|") - 1),
        f"| **teacher** {teacher['name']} | fine-tuned | {teacher['width']} | {scores(test)} | 100 | "
        f"{_params(teacher['parameters'])} | {teacher['latency_ms']:.2f} | 1.0x | {teacher['device']} |",
    ]
    for row in summary["students"]:
        if row["init_layers"]:
            init = f"teacher blocks {format_layers(row['init_layers'])}; "
        else:
            init = f"{row['student']}; "
        aligned = "logits only" if not row["teacher_layers"] else f"{row['strategy']} {format_layers(row['teacher_layers'])}"
        lines.append(
            f"| {row['name']} ({row['label']}) | {init}{aligned} | {row['width']} | {scores(row['metrics']['test'])} | "
            f"{_pct(row['retained'])} | {_params(row['parameters'])} | {row['latency_ms']:.2f} | "
            f"{row['speedup']:.1f}x | {row['device']} |")
    if summary.get("missing_runs"):
        lines += ["", f"Not run yet: {', '.join(summary['missing_runs'])}."]
    choice = summary["layer_choice"]
    lines += ["", "## Which teacher layers?", "",
              f"Layer 0 = embedding output, layer l = output of block l (hidden_states[l]); teacher has "
              f"{choice['teacher_blocks']} blocks. Chosen by `{choice['selection']}` from the teacher's spectral "
              "intensities, next to other strategies and the blog's RoBERTa-large choice (1-9 + 21-23 for a "
              "12-layer student).", ""]
    strategies = list(next(iter(choice["by_depth"].values()))["layers"]) if choice["by_depth"] else []
    header = "| student layers | " + " | ".join(strategies) + " | blog (1-9, 21-23) |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for depth, entry in choice["by_depth"].items():
        blog = entry["blog"]
        blog_text = (f"{blog['overlap_count']} of {len(blog['blog'])} shared" if blog["comparable"]
                     else "not comparable (other depth)")
        lines.append(f"| {depth} | " + " | ".join(format_layers(entry["layers"][s]) for s in strategies)
                     + f" | {blog_text} |")
    if plan.get("notes"):
        lines += ["", f"Notes: {plan['notes']}"]
    return "\n".join(lines)


def plot_tradeoff(summary: dict[str, Any], *, metric: str | None = None):
    """Accuracy vs latency per query: the teacher and every student (marker area ~ parameters)."""
    import matplotlib.pyplot as plt

    teacher = summary["teacher"]
    metric = metric or ("in_scope_accuracy" if "in_scope_accuracy" in teacher["metrics"]["test"] else "accuracy")
    rows = [("teacher", teacher)] + [(row["name"], row) for row in summary["students"]]
    largest = max(row["parameters"] for _, row in rows)
    figure, ax = plt.subplots(figsize=(7.5, 4))
    for i, (name, row) in enumerate(rows):
        x, y = row["latency_ms"], 100 * row["metrics"]["test"][metric]
        ax.scatter([x], [y], s=40 + 400 * row["parameters"] / largest, alpha=0.6,
                   color="k" if name == "teacher" else f"C{i % 10}")
        ax.annotate(name, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel(f"latency (ms/query, batch 1) on {summary['device']}")
    ax.set_ylabel(f"test {metric.replace('_', ' ')} (%)")
    ax.set_title("accuracy vs speed (marker area ~ parameters)", fontsize=10)
    ax.grid(alpha=0.3)
    figure.tight_layout()
    return figure
