"""spectralkd-tutorial: learn, and really run, SpectralKD-style knowledge distillation for text.

The names below are the public API; notebooks import them from here. They load lazily, so
``import spectralkd_tutorial`` (and ``spectralkd --help``) stays fast.

    from spectralkd_tutorial import get_preset, load_data, train_teacher, profile, choose_layers
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

_PUBLIC: dict[str, str] = {
    # config and presets
    "RunConfig": "config", "DataConfig": "config", "TeacherConfig": "config", "StudentConfig": "config",
    "TrainConfig": "config", "AnalysisConfig": "config", "GridConfig": "config", "RuntimeConfig": "config",
    "VisionConfig": "config", "DistillationLossConfig": "config", "load_config": "config", "to_toml": "config",
    "get_preset": "presets", "PRESETS": "presets",
    # the steps
    "load_data": "steps", "train_teacher": "steps", "profile": "steps", "profile_with_config": "steps",
    "choose_layers": "steps", "build_student": "steps", "distil_student": "steps", "evaluate": "steps",
    "analysis_texts": "steps", "write_profile": "steps", "TeacherResult": "steps", "StudentResult": "steps",
    # the engine
    "fit": "core.training", "Distillation": "core.training", "TrainResult": "core.training",
    "Callback": "core.training", "StopAfterBatches": "core.training", "RunStore": "core.run_store",
    "TeacherCache": "core.teacher_cache", "predict": "core.evaluation",
    # experiment
    "run_experiment": "experiment", "ExperimentReport": "experiment",
    # building blocks
    "spectral_signature": "spectral", "spectral_intensity": "spectral", "profile_model": "spectral",
    "SpectralProfile": "spectral", "select_layers": "selection", "LayerMapping": "selection",
    "load_classifier": "models", "load_model_dir": "models", "student_from_teacher": "models",
    "num_blocks": "models", "count_parameters": "models",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spectralkd_tutorial' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
