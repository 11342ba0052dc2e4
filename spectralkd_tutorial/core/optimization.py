"""The optimizer step every training loop shares (text teacher, students, the ViT chapter).

AdamW with decoupled weight decay on matrices only, a linear warm-up then linear decay, gradient
accumulation, gradient clipping, and mixed precision:

    no    float32
    bf16  autocast to bfloat16 (CPU or GPU); no loss scaling needed
    fp16  autocast to float16 with a GradScaler (GPU only)
    auto  bf16 where the GPU has it, fp16 on older GPUs, float32 on the CPU

The spectral losses switch autocast off and compute their FFTs in float32 whatever this says.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterable

import torch
from torch import Tensor, nn

from ..config import TrainConfig
from ..errors import UsageError


def autocast_dtype(mixed_precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``mixed_precision`` on ``device`` (``None``: float32)."""
    if mixed_precision == "no":
        return None
    if mixed_precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if mixed_precision == "fp16" and device.type != "cuda":
        raise UsageError("mixed_precision='fp16' needs a GPU; use 'bf16' or 'no' on the CPU")
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[mixed_precision]


def linear_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """lr factor (s+1)/w during the first w steps, then (T - s)/(T - w) down to 0."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class Optimization:
    """Optimizer, schedule, loss scaling and accumulation of one training run."""

    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    device: torch.device
    dtype: torch.dtype | None
    accumulation: int
    max_grad_norm: float | None
    steps_done: int = 0

    @classmethod
    def create(cls, parameters: Iterable[nn.Parameter], train: TrainConfig, total_steps: int, device: torch.device,
               mixed_precision: str = "no", *, schedule: str = "linear", clip: bool = True,
               decay_matrices_only: bool = True) -> "Optimization":
        """``schedule``: ``linear`` (warm-up then linear decay; text) or ``one-cycle`` (the ViT chapter)."""
        params = [p for p in parameters if p.requires_grad]
        if decay_matrices_only:
            groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": train.weight_decay},
                      {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        else:
            groups = [{"params": params, "weight_decay": train.weight_decay}]
        optimizer = torch.optim.AdamW(groups, lr=train.learning_rate)
        if schedule == "one-cycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=train.learning_rate, total_steps=total_steps,
                                                            pct_start=train.warmup_ratio)
        elif schedule == "linear":
            scheduler = linear_schedule(optimizer, int(train.warmup_ratio * total_steps), total_steps)
        else:
            raise ValueError(f"schedule={schedule!r}; use 'linear' or 'one-cycle'")
        dtype = autocast_dtype(mixed_precision, device)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
        return cls(params, optimizer, scheduler, scaler, device, dtype, train.gradient_accumulation,
                   train.max_grad_norm if clip else None)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def backward(self, loss: Tensor, *, last_of_window: bool) -> bool:
        """Accumulate ``loss``'s gradient; step when a window of ``accumulation`` batches ends.

        Returns whether an optimizer step was taken.
        """
        self.scaler.scale(loss / self.accumulation).backward()
        if not last_of_window:
            return False
        if self.max_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps_done += 1
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(), "steps_done": self.steps_done}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.steps_done = int(state.get("steps_done", 0))
