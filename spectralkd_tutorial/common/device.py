"""Where tensors live: one resolver for every entry point."""

from __future__ import annotations

import os
import platform

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


def describe_device(device: torch.device | str | None = None) -> str:
    """A human-readable name of the device latency was measured on."""
    device = resolve_device("auto") if device is None else torch.device(device)
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)}"
    cpu = platform.processor() or platform.machine() or "CPU"
    threads = torch.get_num_threads()
    return f"CPU {cpu} ({threads} thread{'' if threads == 1 else 's'})"


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


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask: a container's or ``taskset``'s share)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_threads(cores: int | None = None, processes: int = 1) -> int:
    """Intra-op threads per process for CPU training: every core but one, shared among the processes.

    The core left free keeps the notebook's kernel, the browser and the rest of the desktop responsive
    in a workshop; it also matters for speed: a training thread that another program descheduled
    holds the others up at every synchronisation, so on a 2-core laptop one thread beats two as soon
    as anything else runs. ``max(1, (cores - 1) // processes)``."""
    cores = available_cores() if cores is None else cores
    return max(1, (cores - 1) // max(1, processes))


def set_threads(threads: int | None = None, processes: int = 1) -> int:
    """Set torch's intra-op threads: ``threads``, else ``$OMP_NUM_THREADS`` when set, else
    ``default_threads``. Returns the number in use (the run record states it)."""
    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()  # torch read it at start-up
    torch.set_num_threads(threads if threads is not None else default_threads(processes=processes))
    return torch.get_num_threads()
