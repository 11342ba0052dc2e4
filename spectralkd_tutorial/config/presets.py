"""One switch that sizes every notebook and command: ``quick`` / ``workshop`` / ``full``.

Each preset is a named :class:`~spectralkd_tutorial.config.RunConfig`: the same config a user writes
in a TOML file or sets with command-line flags. Select one with ``SPECTRALKD_PRESET`` or by name.

| preset   | teacher                                   | student                 | data      | where     |
| -------- | ----------------------------------------- | ----------------------- | --------- | --------- |
| quick    | tiny random RoBERTa (saved + reloaded)     | 2-layer tiny student    | embedded  | CI, 2 CPU |
| workshop | pretrained MiniLM-L6-H384 (BERT, 6 layers) | 3 layers, same width    | CLINC150  | laptop    |
| full     | roberta-large (24 layers, 1024)            | 12/6 layers (768 wide)  | CLINC150  | one GPU   |
"""

from __future__ import annotations

import os
from typing import Any

from .sections import (ABLATION_STRATEGIES, AnalysisConfig, DataConfig, DistillationLossConfig, GridConfig, RunConfig,
                       StudentConfig, TeacherConfig, TrainConfig, VisionConfig)

PRESET_ENV = "SPECTRALKD_PRESET"
MINILM_HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"
TINY_NAMES = {"tiny-roberta": "roberta", "tiny-bert": "bert", "tiny-mpnet": "mpnet"}  # built locally, random weights

# ABLATION_STRATEGIES (quick, full) is the grid's default, defined beside GridConfig; the workshop grid adds
# the low-intensity end (`first`) and reversed pairing (Yu et al. 2025)
WORKSHOP_STRATEGIES = ABLATION_STRATEGIES + ("first", "reverse")


def _quick() -> RunConfig:
    return RunConfig(
        name="quick",
        data=DataConfig(dataset="embedded", max_length=32),
        teacher=TeacherConfig(model="tiny-roberta", train=TrainConfig(epochs=12, learning_rate=3e-3)),
        student=StudentConfig(model="layers:2", init="uniform", train=TrainConfig(epochs=4, learning_rate=2e-3)),
        loss=DistillationLossConfig(alpha=0.5, temperature=2.0, beta=1.0),
        analysis=AnalysisConfig(samples=64, batch_size=32),
        grid=GridConfig(strategies=ABLATION_STRATEGIES, seeds=(0, 1, 2), dynamics_samples=64),
        vision=VisionConfig(epochs=8),
    )


def _workshop() -> RunConfig:
    """``quick`` with a real teacher and data: what differs is all that is written."""
    return _quick().replace(**{
        "name": "workshop", "data.dataset": "clinc150:full", "data.max_length": 48,
        "teacher.model": MINILM_HUB_NAME, "teacher.train.epochs": 3, "teacher.train.learning_rate": 2e-4,
        "student.model": "layers:3", "student.train.epochs": 1, "student.train.learning_rate": 2e-4,
        "analysis.samples": 512, "analysis.batch_size": 64,
        "grid.strategies": WORKSHOP_STRATEGIES, "grid.dynamics_samples": 256, "vision.epochs": 20,
    })


def _full() -> RunConfig:
    """``workshop`` on a GPU with roberta-large: what differs is all that is written."""
    return _workshop().replace(**{
        "name": "full", "data.dataset": "clinc150:plus", "data.max_length": 64,
        "teacher.model": "roberta-large", "teacher.train.epochs": 4, "teacher.train.learning_rate": 2e-5,
        "student.model": "roberta-base", "student.train.epochs": 4, "student.train.learning_rate": 5e-5,
        "analysis.samples": 2048, "analysis.batch_size": 128, "grid.strategies": ABLATION_STRATEGIES,
        "runtime.mixed_precision": "auto", "vision.model": "google/vit-base-patch16-224",
    })


PRESET_FACTORIES = {"quick": _quick, "workshop": _workshop, "full": _full}
PRESETS: tuple[str, ...] = tuple(PRESET_FACTORIES)


def get_preset(name: str | None = None, **overrides: Any) -> RunConfig:
    """The preset ``name`` (default ``$SPECTRALKD_PRESET`` or ``quick``), a fresh copy each call.

    ``overrides`` use dotted keys, written with ``__`` in Python: ``get_preset("quick",
    student__train__epochs=1)`` (or pass a dict: ``get_preset("quick", **{"student.train.epochs": 1})``).
    """
    chosen = (name or os.environ.get(PRESET_ENV) or "quick").strip().lower()
    if chosen not in PRESET_FACTORIES:
        raise ValueError(
            f"unknown preset {chosen!r} (from {'argument' if name else PRESET_ENV}); "
            f"choose one of {sorted(PRESET_FACTORIES)}, e.g. export {PRESET_ENV}=quick"
        )
    config = PRESET_FACTORIES[chosen]()
    if overrides:
        config = config.replace(**{key.replace("__", "."): value for key, value in overrides.items()})
    return config


FINE_TUNING_KEYS = ("epochs", "learning_rate")


def fine_tuning_defaults(config: RunConfig, explicit: set[str] = frozenset()) -> tuple[RunConfig, str]:
    """``config`` with fine-tuning settings that suit a pretrained encoder, and a line saying so.

    The ``quick`` preset's training settings are made for its tiny random model (12 epochs at 3e-3 for
    the teacher). A pretrained teacher to fine-tune (``teacher.model`` a hub name or directory) or a
    pretrained student (``student.model`` not ``layers:K``/``random:KxH``) gets the ``workshop``
    preset's epochs and learning rate instead, for each key the user did not set (``explicit``: dotted
    keys set by flags or a config file). Presets made for pretrained models are left as they are."""
    if config.name not in PRESET_FACTORIES or PRESET_FACTORIES[config.name]().teacher.model not in TINY_NAMES:
        return config, ""
    pretrained_teacher = config.teacher.finetuned is None and config.teacher.model not in TINY_NAMES
    pretrained_student = config.student.num_layers is None and config.student.random_shape is None
    roles = (["teacher"] if pretrained_teacher else []) + (["student"] if pretrained_teacher or pretrained_student else [])
    suited = _workshop()
    changes = {f"{role}.train.{key}": getattr(getattr(suited, role).train, key)
               for role in roles for key in FINE_TUNING_KEYS if f"{role}.train.{key}" not in explicit}
    if not changes:
        return config, ""
    which = f"teacher {config.teacher.model}" if pretrained_teacher else f"student {config.student.model}"
    listed = ", ".join(f"{key.replace('.train.', ' ')} {value:g}" for key, value in changes.items())
    note = (f"note: {which} is pretrained: using fine-tuning defaults suited to pretrained encoders ({listed}; the "
            f"workshop preset's) instead of the {config.name} preset's tiny-model settings; set --epochs/--lr to choose "
            "(config.toml records the values used)")
    return config.replace(**changes), note
