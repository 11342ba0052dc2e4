"""spectralkd-tutorial: learn, and really run, SpectralKD-style knowledge distillation for text.

The public API is the handful of nouns a user needs, each named once::

    from spectralkd_tutorial import distill, get_preset, profile, run_experiment, select_layers

    config = get_preset("quick")                      # RunConfig: every setting, one preset switch
    result = distill(config, "runs/mine")             # teacher -> profile -> layers -> student, one run
    report = run_experiment(config, "runs/grid")      # every strategy x seed, with a results table

    spectra = profile(model, tokenizer, texts)        # I_l for layer 0 (embeddings) .. L (here 6 blocks)
    mapping = select_layers("spectral-ends", 3, 6, spectra.intensities)   # 3 of the teacher's 6 blocks

The names load lazily, so ``import spectralkd_tutorial`` (and ``spectralkd --help``) imports neither
torch nor transformers. Everything else lives in the layer it belongs to (see ARCHITECTURE.md), e.g.
``spectralkd_tutorial.pipelines.steps`` (the steps one by one), ``spectralkd_tutorial.engine.training``
(``fit``), ``spectralkd_tutorial.analysis.spectral`` (``SpectralProfile``, ``profile_model``) and
``spectralkd_tutorial.losses`` (every loss and the feature-loss registry).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

# public name -> the module (below this package) that defines it
_PUBLIC: dict[str, str] = {
    # configuration
    "RunConfig": "config.sections",
    "get_preset": "config.presets",
    "load_config": "config.files",
    # data
    "load_dataset": "data",
    # the method: profile a model, choose the teacher layers
    "profile": "pipelines.steps",
    "select_layers": "analysis.selection",
    # pipelines
    "distill": "pipelines.distill",
    "run_experiment": "pipelines.experiment",
    # the losses
    "distillation_loss": "losses",
    "logit_kd_loss": "losses",
    "spectral_alignment_loss": "losses",
    "hidden_mse_loss": "losses",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'spectralkd_tutorial' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
