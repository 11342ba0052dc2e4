"""Where tensors live: one resolver for every entry point."""

from __future__ import annotations

import os

import torch


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` or ``None``: CUDA when available, else the CPU; otherwise ``torch.device(name)``."""
    if name is None or name == "auto":
        if torch.cuda.is_available() and "LOCAL_RANK" in os.environ:  # under a launcher: this process's GPU
            return torch.device("cuda", int(os.environ["LOCAL_RANK"]) % torch.cuda.device_count())
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device={name!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from error
    check_available(device)
    return device


def check_available(device: str | torch.device) -> None:
    """``ValueError`` naming the fix when ``device`` is a GPU this machine does not have (``auto`` is always fine)."""
    if device in (None, "auto"):
        return
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device={str(device)!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from error
    if device.type != "cuda":
        return
    if not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r}: CUDA is not available here (torch {torch.__version__}, no GPU "
                         "visible); use --device cpu or auto, or install a CUDA build of torch")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device={str(device)!r}: this machine has {torch.cuda.device_count()} GPU(s) "
                         f"(cuda:0..cuda:{torch.cuda.device_count() - 1}); pick one of them or use auto")
