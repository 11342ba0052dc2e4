"""The training dynamics of the layers: the model's spectral profile before training and after each epoch.

    records = [{"epoch": 0.0, "intensities": I(before)}, {"epoch": 1.0, "intensities": I(after epoch 1)}, ...]

A callback (``fit(..., callbacks=[DynamicsProfile(64)])``): the first ``samples`` validation
utterances, profiled with ``analysis.spectral.profile_model`` (the model in eval mode, no RNG drawn).
The records travel in the checkpoint (key ``dynamics``), so a resumed run keeps its earlier ones.
``analysis.dynamics`` reads them (``profile_gap``); ``metrics.json`` holds them as ``dynamics``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from ..analysis.spectral import profile_model
from .batching import text_batches
from .callbacks import Callback

if TYPE_CHECKING:
    from .training import Loop


class DynamicsProfile(Callback):
    """Profile the model's layers on ``samples`` validation utterances at the start and after every epoch
    (``samples=0``: records nothing)."""

    def __init__(self, samples: int) -> None:
        self.samples = samples
        self.records: list[dict[str, Any]] = []
        self._batches: list[dict] = []

    def on_train_begin(self, loop: "Loop") -> None:
        texts = loop.dataset.validation.texts[: self.samples] if self.samples else []
        self._batches = text_batches(loop.tokenizer, texts, max_length=loop.max_length) if texts else []
        if loop.batch_index == 0:  # a resumed run has its profile before training in the checkpoint
            self._record(loop)

    def on_epoch_end(self, loop: "Loop") -> None:
        self._record(loop)

    def _record(self, loop: "Loop") -> None:
        if self._batches:
            profile = profile_model(loop.model, self._batches, progress=False)
            self.records.append({"epoch": loop.epoch, "intensities": profile.intensities})

    def recorded_at(self, epoch: float) -> list[float] | None:
        """The intensities recorded at ``epoch`` by the latest record (``None``: none then)."""
        return self.records[-1]["intensities"] if self.records and self.records[-1]["epoch"] == epoch else None

    def state_dict(self) -> dict[str, Any]:
        return {"dynamics": self.records}

    def load_state_dict(self, checkpoint: Mapping[str, Any]) -> None:
        self.records = list(checkpoint.get("dynamics", []))
