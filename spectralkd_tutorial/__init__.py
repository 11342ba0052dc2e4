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
    "RunConfig": "config.sections", "DataConfig": "config.sections", "TeacherConfig": "config.sections", "StudentConfig": "config.sections",
    "TrainConfig": "config.sections", "AnalysisConfig": "config.sections", "GridConfig": "config.sections", "RuntimeConfig": "config.sections",
    "VisionConfig": "config.sections", "DistillationLossConfig": "config.sections", "load_config": "config.files", "to_toml": "config.files",
    "get_preset": "config.presets", "PRESETS": "config.presets",
    # the steps
    "load_data": "pipelines.steps", "train_teacher": "pipelines.steps", "profile": "pipelines.steps", "profile_with_config": "pipelines.steps",
    "choose_layers": "pipelines.steps", "build_student": "pipelines.steps", "distil_student": "pipelines.steps", "evaluate": "pipelines.steps",
    "analysis_texts": "pipelines.steps", "write_profile": "pipelines.steps", "TeacherResult": "pipelines.steps", "StudentResult": "pipelines.steps",
    # the engine
    "fit": "engine.training", "Distillation": "engine.training", "TrainResult": "engine.training",
    "Callback": "engine.training", "StopAfterBatches": "engine.training", "RunStore": "engine.run_store",
    "TeacherCache": "engine.teacher_cache", "predict": "engine.evaluation",
    # experiment
    "run_experiment": "pipelines.experiment", "ExperimentReport": "pipelines.experiment",
    # building blocks
    "spectral_signature": "analysis.spectral", "spectral_intensity": "analysis.spectral", "profile_model": "analysis.spectral",
    "SpectralProfile": "analysis.spectral", "select_layers": "analysis.selection", "LayerMapping": "analysis.selection",
    "load_classifier": "models.loading", "load_model_dir": "models.loading", "student_from_teacher": "models.loading",
    "num_blocks": "models.loading", "count_parameters": "models.loading",
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
