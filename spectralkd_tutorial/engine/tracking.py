"""Logging through accelerate's tensorboard tracker (``--report-to tensorboard``), beside the JSON histories.

A callback (``Tracker.create(report_to, root, dynamics=profile)``, ``None`` for ``none``). Per
optimizer step: the loss and its parts (``train/loss``, ``train/ce``, ``train/kd``, ``train/feature``,
averaged over the global batch) and the learning rate; per epoch: the validation metrics
(``validation/...``) and, given the run's ``DynamicsProfile``, the student's layer intensities
(``intensity/layer_l``). The x-axis is the global batch index. Only the main process writes; the
event files go to ``<run directory>/tensorboard/``.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .callbacks import Callback

if TYPE_CHECKING:
    from .dynamics_profile import DynamicsProfile
    from .training import Loop

REPORT_TO = ("none", "tensorboard")
RUN_NAME = "tensorboard"


def logging_directory(report_to: str | None, root: str | os.PathLike | None) -> Path | None:
    """Where ``report_to``'s event files go (``none``/``None``: no tracker), checked: a known tracker
    whose package is installed."""
    if report_to in (None, "none"):
        return None
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
    return Path(root) if root is not None else Path("runs")


class Tracker(Callback):
    """accelerate's ``TensorBoardTracker`` under ``logging_dir/tensorboard``, fed by the loop's hooks."""

    def __init__(self, logging_dir: Path, dynamics: "DynamicsProfile | None" = None) -> None:
        self.logging_dir, self.dynamics = logging_dir, dynamics
        self._tracker: Any = None

    @classmethod
    def create(cls, report_to: str | None, root: str | os.PathLike | None,
               dynamics: "DynamicsProfile | None" = None) -> "Tracker | None":
        """The tracker ``report_to`` asks for in the run directory ``root`` (``None`` for ``none``)."""
        directory = logging_directory(report_to, root)
        return None if directory is None else cls(directory, dynamics)

    def on_train_begin(self, loop: "Loop") -> None:
        """Open the tracker (with the run's hyper-parameters) on the main process."""
        if not loop.accelerator.is_main_process:
            return
        from accelerate.tracking import TensorBoardTracker

        self._tracker = TensorBoardTracker(RUN_NAME, self.logging_dir)
        self._tracker.start()
        values = {**asdict(loop.train_config), "seed": loop.seed, "max_length": loop.max_length,
                  "processes": loop.processes, "mixed_precision": loop.accelerator.mixed_precision}
        self._tracker.store_init_configuration({k: v for k, v in values.items()
                                                if isinstance(v, (int, float, str, bool))})
        if loop.batch_index == 0:
            self._log_intensities(loop)

    def on_step(self, loop: "Loop") -> None:
        if self._tracker is not None and loop.stepped:
            self._tracker.log({**{f"train/{k}": v for k, v in loop.batch_values.items()},
                               "train/learning_rate": loop.optimization.learning_rate}, step=loop.batch_index)

    def on_epoch_end(self, loop: "Loop") -> None:
        entry = loop.history[-1]
        if self._tracker is not None and "validation" in entry:
            self._tracker.log({f"validation/{k}": v for k, v in entry["validation"].items()
                               if isinstance(v, (int, float))}, step=loop.batch_index)
        self._log_intensities(loop)

    def _log_intensities(self, loop: "Loop") -> None:
        intensities = self.dynamics.recorded_at(loop.epoch) if self.dynamics is not None else None
        if self._tracker is not None and intensities is not None:
            self._tracker.log({f"intensity/layer_{layer}": value for layer, value in enumerate(intensities)},
                              step=loop.batch_index)

    def on_train_end(self, loop: "Loop") -> None:
        """Close the tracker (not ``accelerator.end_training``: that would also end the process group,
        which the next run of a grid still needs)."""
        if self._tracker is not None:
            self._tracker.finish()
            self._tracker = None
