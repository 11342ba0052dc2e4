"""What extends the training loop: callbacks, called at four points of ``fit``.

    on_train_begin -> (on_step after every batch; on_epoch_end after each epoch's evaluation)* -> on_train_end

The loop itself only trains, evaluates and checkpoints; the extras (the dynamics profile, the
tensorboard tracker, an interruption for tests, a stop watch) are callbacks the caller passes in,
as in Keras and ``transformers.TrainerCallback``. A callback that keeps state across a resume
returns it from ``state_dict`` (saved in the checkpoint beside the loop's own state) and takes it
back in ``load_state_dict`` (called with the whole checkpoint before ``on_train_begin``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Mapping

if TYPE_CHECKING:
    from .training import Loop


class Callback:
    """Hooks into the loop; override what you need. ``loop`` is the run's state (``training.Loop``)."""

    def on_train_begin(self, loop: "Loop") -> None:
        """Before the first batch (after a resume: before the first batch still to train)."""

    def on_step(self, loop: "Loop") -> None:
        """After each batch: ``loop.batch_index`` batches done, ``loop.batch_values`` its loss parts
        (global-batch means), ``loop.stepped`` whether the optimizer stepped."""

    def on_epoch_end(self, loop: "Loop") -> None:
        """After an epoch's evaluation (``loop.history[-1]``), before its checkpoint."""

    def on_train_end(self, loop: "Loop") -> None:
        """At the end, also after an error or an interruption: release what ``on_train_begin`` opened."""

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs (keys of the checkpoint; keep them distinct from other callbacks')."""
        return {}

    def load_state_dict(self, checkpoint: Mapping[str, Any]) -> None:
        """Take back what ``state_dict`` saved, from the whole checkpoint."""


class CallbackList(Callback):
    """Several callbacks as one, called in order (a profile before the tracker that logs it)."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def _each(self, hook: str, loop: "Loop") -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(loop)

    def on_train_begin(self, loop: "Loop") -> None:
        self._each("on_train_begin", loop)

    def on_step(self, loop: "Loop") -> None:
        self._each("on_step", loop)

    def on_epoch_end(self, loop: "Loop") -> None:
        self._each("on_epoch_end", loop)

    def on_train_end(self, loop: "Loop") -> None:
        self._each("on_train_end", loop)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        for callback in self.callbacks:
            state.update(callback.state_dict())
        return state

    def load_state_dict(self, checkpoint: Mapping[str, Any]) -> None:
        for callback in self.callbacks:
            callback.load_state_dict(checkpoint)


class StopAfterBatches(Callback):
    """An interruption, for tests and demos: checkpoint, then ``KeyboardInterrupt`` after ``n`` batches."""

    def __init__(self, n: int) -> None:
        self.n = n

    def on_step(self, loop: "Loop") -> None:
        if loop.batch_index - loop.resumed_from >= self.n and loop.batch_index < loop.total_batches:
            loop.save_checkpoint()
            raise KeyboardInterrupt(f"stopped after {self.n} batches (simulated interruption)")
