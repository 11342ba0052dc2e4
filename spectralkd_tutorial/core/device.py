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
        return torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device={name!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from error
