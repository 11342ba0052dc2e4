"""The plan of the study: its conditions, as data, and the settings each one runs with.

A :class:`Condition` names what differs from the preset (data set, student, teacher, training
utterances per label, candidate settings tuned on validation, seeds, strategies) and why it is
interesting; :data:`STUDY_PLANS` lists the conditions of each preset. Running them is
:mod:`.study`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.sections import RunConfig
from ..models.offline import MPNET_HUB_NAME

STUDY_STRATEGIES = ("none", "uniform", "last", "first", "random", "spectral-topk", "spectral-ends")
# what the comparison does not use, left out of every condition's grid: per-epoch validation (the
# final validation and test metrics are still computed) and the layer dynamics plots
COMPARISON_SETTINGS = {"student.train.eval_each_epoch": False, "grid.dynamics_samples": 0}
FIVE_SEEDS = (0, 1, 2, 3, 4)  # enough for a 1-point paired difference to be detectable (C5, C7)
MPNET_TEACHER = {"teacher.model": MPNET_HUB_NAME, "teacher.train.learning_rate": 5e-5}  # C6 and C7 share it


@dataclass(frozen=True)
class Condition:
    """One setting of the study: what differs from the preset, and why it is interesting."""

    name: str
    title: str
    why: str
    dataset: str | None = None  # None: the preset's data set
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted config keys for the students
    per_label: int | None = None  # students see only this many training utterances per label
    seeds: tuple[int, ...] = (0, 1, 2)
    strategies: tuple[str, ...] = STUDY_STRATEGIES
    candidates: tuple[dict[str, Any], ...] = ()  # settings tried on validation before the comparison
    tuned_like: str | None = None  # reuse the setting another condition chose
    published: str | None = None  # a committed grid of exactly this setting (results.json), read instead of re-run
    teacher: dict[str, Any] = field(default_factory=dict)  # dotted teacher.* keys: another teacher than the preset's
    compare_to: str | None = None  # a condition that differs in one setting only: compared strategy by strategy


def _workshop_plan() -> list[Condition]:
    """Cheapest and most telling first (the committed grid, scarce data, deeper compression, a second
    data set, a narrow student), so that a study stopped early has answered the questions the
    literature leaves open. C1 reads the committed workshop grid (same setting) instead of re-running it."""
    conditions = [
        Condition("C1", "CLINC150 full, 6 -> 3 blocks copied from the teacher (the workshop grid)",
                  "the committed setting: an easy case", strategies=STUDY_STRATEGIES + ("reverse",),
                  published="assets/workshop/results.json"),
        Condition("C2", "deeper compression: 6 -> 2 blocks", "less capacity: does the choice of the two layers matter?",
                  overrides={"student.model": "layers:2"}),
        Condition("C3", "scarce data: students see 10 utterances per intent",
                  "TinyBERT-style results: intermediate alignment matters most when labels are scarce",
                  per_label=10,
                  candidates=({"student.train.epochs": 5}, {"student.train.epochs": 10})),
        Condition("C4", "a second data set: Banking77, 6 -> 3", "does the answer carry over to another data set?",
                  dataset="banking77"),
        Condition("C5", "a narrow random student: 3 x 192, pooled teacher channels (SpectralKD's parameter-free match)",
                  "a student that does not start from the teacher has everything to learn from it",
                  overrides={"student.model": "random:3x192", "student.train.learning_rate": 1e-3},
                  strategies=("none", "uniform", "last", "first", "spectral-ends"), seeds=FIVE_SEEDS,
                  candidates=({"student.train.epochs": 2}, {"student.train.epochs": 4})),
        Condition("C5p", "the same narrow student, learned projection 192 -> 384 instead of pooling",
                  "TinyBERT / TextBrewer's learned projection as the second row of C5",
                  overrides={"student.model": "random:3x192", "student.train.learning_rate": 1e-3,
                             "loss.feature_loss": "spectral-projection"},
                  strategies=("none", "uniform", "last", "first", "spectral-ends"), tuned_like="C5",
                  compare_to="C5"),
        Condition("C6", "a deep teacher: MPNet (12 x 768) fine-tuned on CLINC150 small, 4 blocks copied from it",
                  "its intensity is not monotonic in depth, so the spectral rule picks its own blocks, not last's",
                  dataset="clinc150:small", teacher=MPNET_TEACHER,
                  overrides={"student.model": "layers:4", "student.train.learning_rate": 1e-4},
                  strategies=("none", "uniform", "last", "first", "spectral-topk", "spectral-ends")),
        Condition("C7", "a narrow random student of the deep teacher: MPNet (C6's) -> 4 x 192, pooled teacher channels",
                  "the decisive case: alignment pays for a random student (C5) and the spectral rule picks its own "
                  "blocks (C6), so the choice of layers can show",
                  dataset="clinc150:small", teacher=MPNET_TEACHER,
                  overrides={"student.model": "random:4x192", "student.train.learning_rate": 1e-3},
                  strategies=("none", "uniform", "last", "first", "spectral-topk", "spectral-ends", "random"),
                  seeds=FIVE_SEEDS, candidates=({"student.train.epochs": 2}, {"student.train.epochs": 4})),
    ]
    order = ("C1", "C3", "C2", "C4", "C5", "C5p", "C6", "C7")
    return sorted(conditions, key=lambda c: order.index(c.name))


def _quick_plan() -> list[Condition]:
    """A toy study for CI and chapter 6: small enough to run in a notebook cell."""
    toy = {"student.train.epochs": 1, "grid.dynamics_samples": 0}
    strategies = ("none", "uniform", "spectral-ends")
    return [
        Condition("Q1", "embedded intents, 4 -> 2 blocks", "a toy version of C1 (CI)", strategies=strategies,
                  overrides=toy),
        Condition("Q2", "scarce: 8 utterances per intent", "a toy version of C3 (CI)", per_label=8,
                  strategies=strategies, overrides=toy,
                  candidates=({"student.train.epochs": 1}, {"student.train.epochs": 2})),
    ]


STUDY_PLANS = {"quick": _quick_plan, "workshop": _workshop_plan}


def study_plan(preset: str) -> list[Condition]:
    if preset not in STUDY_PLANS:
        raise ValueError(f"no study plan for preset {preset!r}; choose one of {sorted(STUDY_PLANS)}")
    return STUDY_PLANS[preset]()


def teacher_config(base: RunConfig, condition: Condition) -> RunConfig:
    """The settings the condition's teacher is fine-tuned with: the preset's, on the condition's data."""
    return base.replace(**{"data.dataset": condition.dataset or base.data.dataset, **condition.teacher})


def teacher_slug(base: RunConfig, condition: Condition) -> str:
    """``teachers/<slug>``: one teacher per data set (and per teacher model, when a condition names one)."""
    config = teacher_config(base, condition)
    slug = config.data.dataset
    if condition.teacher:
        slug += "-" + config.teacher.model.rsplit("/", 1)[-1]
    return slug.replace(":", "-").replace("/", "-")


def condition_config(base: RunConfig, condition: Condition, teacher_dir: Path, chosen: dict[str, Any]) -> RunConfig:
    return base.replace(**{"data.dataset": condition.dataset or base.data.dataset, **condition.teacher,
                           "teacher.finetuned": str(teacher_dir / "model"),
                           "grid.strategies": condition.strategies, "grid.seeds": condition.seeds,
                           **condition.overrides, **chosen})


__all__ = ["STUDY_STRATEGIES", "COMPARISON_SETTINGS", "FIVE_SEEDS", "MPNET_TEACHER", "Condition", "STUDY_PLANS",
           "study_plan", "teacher_config", "teacher_slug", "condition_config"]
