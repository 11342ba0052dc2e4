"""One switch that sizes every notebook and command: ``quick`` / ``workshop`` / ``full``.

Select with the environment variable ``SPECTRALKD_PRESET`` or pass a name to :func:`get_preset`.

| preset   | teacher                                   | student                 | data      | where     |
| -------- | ----------------------------------------- | ----------------------- | --------- | --------- |
| quick    | tiny random RoBERTa (saved + reloaded)     | 2-layer tiny student    | embedded  | CI, 2 CPU |
| workshop | pretrained MiniLM-L6-H384 (BERT, 6 layers) | 3 layers, same width    | CLINC150  | laptop    |
| full     | roberta-large (24 layers, 1024)            | 12/6 layers (768 wide)  | CLINC150  | one GPU   |
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from typing import Any

PRESET_ENV = "SPECTRALKD_PRESET"
MINILM_HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Preset:
    """Sizes of one run of the story. Every field is used by a notebook or command."""

    name: str
    # teacher
    teacher: str  # hub name, local directory, or "tiny-roberta" / "tiny-bert" (built locally)
    teacher_epochs: float
    teacher_lr: float
    teacher_batch_size: int
    # data
    dataset: str
    dataset_variant: str | None
    max_length: int
    train_limit: int | None  # subsample the training split (None: all)
    eval_limit: int | None  # subsample validation/test (None: all)
    # analysis
    analysis_samples: int
    analysis_batch_size: int
    # students
    student_layers: int
    student_init: str  # selection strategy whose teacher layers initialise every student
    student: str | None  # hub name of a pretrained student (full preset), else None
    student_epochs: float
    student_lr: float
    student_batch_size: int
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    alpha: float
    temperature: float
    beta: float
    # vision chapter
    vit_epochs: int
    vit_model: str | None  # pretrained hub model analysed on the full path
    # misc
    device: str = "auto"
    mixed_precision: bool = False
    gradient_accumulation: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def with_overrides(self, **overrides: Any) -> "Preset":
        unknown = set(overrides) - set(asdict(self))
        if unknown:
            raise ValueError(f"unknown preset field(s) {sorted(unknown)}; valid: {sorted(asdict(self))}")
        return replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["strategies"] = list(self.strategies)
        data["seeds"] = list(self.seeds)
        return data


ABLATION_STRATEGIES = ("none", "uniform", "last", "random", "spectral-topk", "spectral-ends")
# the workshop grid adds the low-intensity end (`first`) and reversed pairing (Yu et al. 2025)
WORKSHOP_STRATEGIES = ABLATION_STRATEGIES + ("first", "reverse")

PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        teacher="tiny-roberta",
        teacher_epochs=12,
        teacher_lr=3e-3,
        teacher_batch_size=32,
        dataset="embedded",
        dataset_variant=None,
        max_length=32,
        train_limit=None,
        eval_limit=None,
        analysis_samples=64,
        analysis_batch_size=32,
        student_layers=2,
        student_init="uniform",
        student=None,
        student_epochs=4,
        student_lr=2e-3,
        student_batch_size=32,
        strategies=ABLATION_STRATEGIES,
        seeds=(0, 1, 2),
        alpha=0.5,
        temperature=2.0,
        beta=1.0,
        vit_epochs=8,
        vit_model=None,
    ),
    "workshop": Preset(
        name="workshop",
        teacher=MINILM_HUB_NAME,
        teacher_epochs=3,
        teacher_lr=2e-4,
        teacher_batch_size=32,
        dataset="clinc150",
        dataset_variant="full",
        max_length=48,
        train_limit=None,
        eval_limit=None,
        analysis_samples=512,
        analysis_batch_size=64,
        student_layers=3,
        student_init="uniform",
        student=None,
        student_epochs=1,
        student_lr=2e-4,
        student_batch_size=32,
        strategies=WORKSHOP_STRATEGIES,
        seeds=(0, 1, 2),
        alpha=0.5,
        temperature=2.0,
        beta=1.0,
        vit_epochs=20,
        vit_model=None,
    ),
    "full": Preset(
        name="full",
        teacher="roberta-large",
        teacher_epochs=4,
        teacher_lr=2e-5,
        teacher_batch_size=32,
        dataset="clinc150",
        dataset_variant="plus",
        max_length=64,
        train_limit=None,
        eval_limit=None,
        analysis_samples=2048,
        analysis_batch_size=128,
        student_layers=12,
        student_init="uniform",
        student="roberta-base",
        student_epochs=4,
        student_lr=5e-5,
        student_batch_size=32,
        strategies=ABLATION_STRATEGIES,
        seeds=(0, 1, 2),
        alpha=0.5,
        temperature=2.0,
        beta=1.0,
        vit_epochs=20,
        vit_model="google/vit-base-patch16-224",
        mixed_precision=True,
    ),
}


def get_preset(name: str | None = None, **overrides: Any) -> Preset:
    """Return the preset ``name`` (default: ``$SPECTRALKD_PRESET`` or ``"quick"``), with overrides."""
    chosen = name or os.environ.get(PRESET_ENV) or "quick"
    chosen = chosen.strip().lower()
    if chosen not in PRESETS:
        raise ValueError(
            f"unknown preset {chosen!r} (from {'argument' if name else PRESET_ENV}); "
            f"choose one of {sorted(PRESETS)}, e.g. export {PRESET_ENV}=quick"
        )
    preset = PRESETS[chosen]
    return preset.with_overrides(**overrides) if overrides else preset
