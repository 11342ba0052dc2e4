"""Logging through accelerate's trackers (``--report-to tensorboard``), beside the JSON histories.

Per optimizer step: the loss and its parts (``train/loss``, ``train/ce``, ``train/kd``,
``train/feature``, averaged over the global batch) and the learning rate; per epoch: the
validation metrics (``validation/...``) and the student's layer intensities (``intensity/layer_l``,
from the dynamics profile). The x-axis is the global batch index. Only the main process writes;
the event files go to ``<run directory>/tensorboard/``.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping, Sequence

REPORT_TO = ("none", "tensorboard")
RUN_NAME = "tensorboard"


def tracker_settings(report_to: str | None, root: str | os.PathLike | None) -> dict[str, Any]:
    """The ``Accelerator`` arguments for ``report_to`` (``none``/``None``: no tracker)."""
    if report_to in (None, "none"):
        return {}
    if report_to not in REPORT_TO:
        raise ValueError(f"report_to={report_to!r}; choose one of {REPORT_TO}")
    try:
        import tensorboard  # noqa: F401
    except ImportError as error:
        raise ImportError("--report-to tensorboard needs the tensorboard package: "
                          "pip install 'spectralkd-tutorial[tensorboard]'") from error
    if root is not None:
        from ..common.io import notify_written

        notify_written(Path(root) / RUN_NAME)  # the event files are this tool's (--overwrite may discard them)
    return {"log_with": report_to, "logging_dir": Path(root) if root is not None else Path("runs")}


def start(accelerator: Any, train: Any, extra: Mapping[str, Any]) -> None:
    """Open the trackers (with the run's hyper-parameters) if the Accelerator has any."""
    if not accelerator.log_with:
        return
    values = {**asdict(train), **extra}
    hparams = {k: v for k, v in values.items() if isinstance(v, (int, float, str, bool))}
    accelerator.init_trackers(RUN_NAME, config=hparams)


def log_step(accelerator: Any, step: int, parts: Mapping[str, float], learning_rate: float) -> None:
    if accelerator.log_with:
        accelerator.log({**{f"train/{k}": v for k, v in parts.items()}, "train/learning_rate": learning_rate}, step=step)


def log_epoch(accelerator: Any, step: int, entry: Mapping[str, Any]) -> None:
    if accelerator.log_with and "validation" in entry:
        accelerator.log({f"validation/{k}": v for k, v in entry["validation"].items()
                         if isinstance(v, (int, float))}, step=step)


def log_intensities(accelerator: Any, step: int, intensities: Sequence[float]) -> None:
    if accelerator.log_with:
        accelerator.log({f"intensity/layer_{layer}": value for layer, value in enumerate(intensities)}, step=step)


def finish(accelerator: Any) -> None:
    """Close the trackers (not ``end_training``: that would also end the process group, which the
    next run of a grid still needs)."""
    for tracker in getattr(accelerator, "trackers", []):
        tracker.finish()
