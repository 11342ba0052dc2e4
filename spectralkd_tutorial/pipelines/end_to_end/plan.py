"""The chapter-5 plan: which models play which part (data, not code), and the blog's layer choice.

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

from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

from ...config.sections import RunConfig
from ...losses import FEATURE_LOSSES
from ...config.presets import MINILM_HUB_NAME
from ...analysis.selection import STRATEGIES
from ..model_card import format_layers

__all__ = ["BLOG_LAYERS", "ModelSource", "StudentRun", "EndToEndPlan", "PLANS", "plan_for_preset",
           "blog_comparison", "format_layers"]

#: The teacher layers the blog that adapted SpectralKD to text picked for a 12-layer student of a
#: fine-tuned RoBERTa-large (24 blocks), read off its intensity curve: blocks 1-9 and 21-23.
BLOG_LAYERS: tuple[int, ...] = tuple(range(1, 10)) + (21, 22, 23)
BLOG_TEACHER_BLOCKS = 24
SOURCE_KINDS = ("hub", "tiny", "from-teacher", "config")


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
                           ``hidden_size`` (student ``random:KxH``: ``hidden_size // 64`` heads, at least
                           one; same tokenizer).

    Students are built by ``models.students.build_student`` (``EndToEnd.student_config`` says how).

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
        if self.kind == "config" and self.num_heads not in (None, max(1, self.hidden_size // 64)):
            raise ValueError(f"ModelSource {self.name!r}: a 'config' student of width {self.hidden_size} has "
                             f"{max(1, self.hidden_size // 64)} attention heads (hidden_size // 64); leave num_heads "
                             "unset")
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

    def student_depths(self) -> list[int]:
        """The depths of the plan's students (deepest first): the layer choice is made for each."""
        return sorted({int(s.num_layers) for s in self.students if s.num_layers}, reverse=True)

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


def plan_for_preset(preset: RunConfig | str) -> EndToEndPlan:
    """The chapter-5 plan of a preset (``quick``, ``workshop`` or ``full``): a config or its name."""
    name = preset if isinstance(preset, str) else preset.name
    if name not in PLANS:
        raise ValueError(f"no end-to-end plan for preset {name!r}; plans exist for {sorted(PLANS)}")
    return PLANS[name]


# ---------------------------------------------------------------------------------------------
# Layers, and the blog's choice
# ---------------------------------------------------------------------------------------------

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
