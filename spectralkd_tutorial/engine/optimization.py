"""The optimizer step every training loop shares (text teacher, students, the ViT chapter).

AdamW with decoupled weight decay on matrices only and a linear warm-up then linear decay (or
one-cycle for the ViT chapter), gradient clipping, on an ``accelerate.Accelerator`` that supplies
the rest:

* mixed precision: ``no`` (float32), ``bf16`` (autocast, CPU or GPU), ``fp16`` (autocast with
  loss scaling, GPU only), ``auto``; the spectral losses switch autocast off and compute their FFTs
  in float32 whatever this says;
* gradient accumulation: ``accelerator.backward`` divides the loss by the window, DDP skips the
  all-reduce on the window's other batches (``no_sync``) and the wrapped optimizer steps only at a
  window's end. Which batch ends a window is a function of the global batch index (see
  ``training``), so a resumed run steps exactly where an uninterrupted one does;
* DDP: the gradients of all processes are averaged before every step.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import torch
from torch import Tensor, nn

from ..config.sections import TrainConfig


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """lr factor (s+1)/w during the first w steps, then (T - s)/(T - w) down to 0."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def adamw(groups: list[dict], learning_rate: float) -> torch.optim.AdamW:
    """AdamW with the fused kernel where every parameter's device has one (CPU, CUDA, ...), as
    ``transformers.Trainer`` uses (``adamw_torch_fused``): one pass over each tensor instead of a
    dozen, about 5x faster on a CPU (a quarter of a MiniLM step). Same update rule; the fused kernel
    rounds differently in the last bit (about 1e-8), so results differ from the per-tensor loop at
    that level. A checkpoint keeps the kernel it was written with (it is in the param groups)."""
    try:
        return torch.optim.AdamW(groups, lr=learning_rate, fused=True)
    except RuntimeError:  # a device or dtype without a fused kernel: torch's default implementation
        return torch.optim.AdamW(groups, lr=learning_rate)


def _param_groups(params: list[nn.Parameter], train: TrainConfig, decay_matrices_only: bool) -> list[dict]:
    if decay_matrices_only:
        return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": train.weight_decay},
                {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return [{"params": params, "weight_decay": train.weight_decay}]


@dataclass
class Optimization:
    """Optimizer, schedule and accumulation window of one training run, on ``accelerator``.

    ``optimizer`` is accelerate's wrapper (it steps only when gradients are synchronised and
    handles the fp16 loss scale); the scheduler is stepped here after each optimizer step that was
    taken, once per *global* step whatever the number of processes.
    """

    params: list[nn.Parameter]
    optimizer: Any
    scheduler: torch.optim.lr_scheduler.LRScheduler
    accelerator: Any
    max_grad_norm: float | None
    modules: Sequence[nn.Module] = field(default_factory=tuple)
    steps_done: int = 0

    @classmethod
    def create(cls, parameters: Iterable[nn.Parameter], train: TrainConfig, total_steps: int, accelerator: Any = None,
               mixed_precision: str = "no", *, schedule: str = "linear", clip: bool = True,
               decay_matrices_only: bool = True, modules: Sequence[nn.Module] = ()) -> "Optimization":
        """``accelerator``: the run's ``Accelerator`` (a device or ``None``: a one-process one is made).
        ``modules``: the prepared (possibly DDP-wrapped) modules whose gradients accumulate.
        ``schedule``: ``linear`` (warm-up then linear decay; text) or ``one-cycle`` (the ViT chapter)."""
        from ..common.distributed import make_accelerator

        if accelerator is None or isinstance(accelerator, (str, torch.device)):
            accelerator = make_accelerator(accelerator or "auto", mixed_precision,
                                           gradient_accumulation=train.gradient_accumulation)
        params = [p for p in parameters if p.requires_grad]
        optimizer = adamw(_param_groups(params, train, decay_matrices_only), train.learning_rate)
        if schedule == "one-cycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=train.learning_rate, total_steps=total_steps,
                                                            pct_start=train.warmup_ratio)
        elif schedule == "linear":
            scheduler = linear_schedule(optimizer, int(train.warmup_ratio * total_steps), total_steps)
        else:
            raise ValueError(f"schedule={schedule!r}; use 'linear' or 'one-cycle'")
        return cls(params, accelerator.prepare_optimizer(optimizer), scheduler, accelerator,
                   train.max_grad_norm if clip else None, tuple(modules))

    @property
    def learning_rate(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def window(self, last_of_window: bool) -> contextlib.AbstractContextManager:
        """Around a batch's forward and backward: gradients are synchronised (DDP all-reduce) only on
        the last batch of an accumulation window."""
        self.accelerator.sync_gradients = last_of_window
        if last_of_window or not self.modules:
            return contextlib.nullcontext()
        stack = contextlib.ExitStack()
        for module in self.modules:
            stack.enter_context(self.accelerator.no_sync(module))
        return stack

    def backward(self, loss: Tensor, *, last_of_window: bool) -> bool:
        """Accumulate ``loss``'s gradient (divided by the window); step when the window ends.

        Returns whether an optimizer step was taken.
        """
        self.accelerator.sync_gradients = last_of_window
        self.accelerator.backward(loss)
        if not last_of_window:
            return False
        if self.max_grad_norm is not None:
            self.accelerator.clip_grad_norm_(self.params, self.max_grad_norm)
        self.optimizer.step()
        if not self.optimizer.step_was_skipped:  # fp16: a step with inf/NaN gradients is skipped
            self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps_done += 1
        return True

    def state_dict(self) -> dict[str, Any]:
        """Plain state (no process count in it): a run resumes with any number of processes."""
        scaler = self.accelerator.scaler
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None, "steps_done": self.steps_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler") and self.accelerator.scaler is not None:
            self.accelerator.scaler.load_state_dict(state["scaler"])
        self.steps_done = int(state.get("steps_done", 0))
