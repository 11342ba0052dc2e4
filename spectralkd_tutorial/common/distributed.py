"""One process or many: who this process is, and the ``accelerate.Accelerator`` of a training run.

The same code runs as one process (``spectralkd ...``, a notebook) and as P processes started by a
launcher (``accelerate launch``, ``torchrun``; one per GPU, on one or several machines). A launcher
sets ``WORLD_SIZE`` and ``RANK``; without them this is the only process and every helper below is a
plain no-op. Process 0 (the *main* process) alone writes files, shows progress bars and prints.

``make_accelerator`` builds the Accelerator of one ``fit`` call: device placement, DDP, mixed
precision and gradient accumulation come from the library. The run config is the one source of the
precision (it is part of a run directory's fingerprint); a launcher's ``--mixed_precision`` that
disagrees is reported and overridden.
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, TypeVar

import torch

from .errors import UsageError

T = TypeVar("T")


def world_size() -> int:
    """How many processes the launcher started (1 without a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return world_size() > 1


def process_index() -> int:
    return int(os.environ.get("RANK", "0")) if is_distributed() else 0


def is_main_process() -> bool:
    """Process 0 of a distributed run, or the only process: the one that writes files."""
    return process_index() == 0


def local_processes() -> int:
    """Processes on this machine (they share its CPU cores)."""
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1")) if is_distributed() else 1


def partial_state():
    """accelerate's ``PartialState``: joins the process group the launcher set up (gloo on CPUs,
    NCCL on GPUs). Only called in a distributed run. The timeout is an hour: the other processes
    wait while the main one alone builds the teacher cache or profiles the teacher."""
    from datetime import timedelta

    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available(), timeout=timedelta(hours=1))


def barrier() -> None:
    """Wait until every process gets here (no-op on one process)."""
    if is_distributed():
        partial_state().wait_for_everyone()


def broadcast_object(value: Any) -> Any:
    """The main process's ``value`` on every process (pickled; no-op on one process)."""
    if not is_distributed():
        return value
    from accelerate.utils import broadcast_object_list

    partial_state()
    holder = [value if is_main_process() else None]
    broadcast_object_list(holder, from_process=0)
    return holder[0]


def on_main(work: Callable[[], T]) -> T:
    """``work()`` on the main process only; its result (picklable), or the error it raised, on every
    process, so that the others never wait forever for a main process that failed."""
    if not is_distributed():
        return work()
    error: BaseException | None = None
    result: Any = None
    if is_main_process():
        try:
            result = work()
        except BaseException as caught:  # noqa: BLE001 - re-raised below, on every process
            error = caught
    shared_error, shared_result = broadcast_object((_picklable(error), result if error is None else None))
    if shared_error is not None:
        raise (error if error is not None else shared_error)
    return result if is_main_process() else shared_result


def _picklable(error: BaseException | None) -> BaseException | None:
    import pickle

    if error is None:
        return None
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # noqa: BLE001 - an exception that does not pickle travels as its message
        return RuntimeError(f"the main process failed: {type(error).__name__}: {error}")


# ---------------------------------------------------------------------------------------------
# The Accelerator of a training run
# ---------------------------------------------------------------------------------------------

def resolve_mixed_precision(mixed_precision: str, device_type: str) -> str:
    """``no`` / ``bf16`` / ``fp16`` for accelerate; ``auto`` is bf16 where the GPU has it, fp16 on
    older GPUs and float32 on the CPU. fp16 (with loss scaling) needs a GPU."""
    if mixed_precision == "auto":
        if device_type != "cuda":
            return "no"
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if mixed_precision == "fp16" and device_type != "cuda":
        raise UsageError("mixed_precision='fp16' needs a GPU; use 'bf16' or 'no' on the CPU")
    if mixed_precision not in ("no", "bf16", "fp16"):
        raise UsageError(f"mixed_precision={mixed_precision!r}; choose no, bf16, fp16 or auto")
    return mixed_precision


def _device_type(device: str | torch.device | None) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device).type


def make_accelerator(device: str | torch.device | None = "auto", mixed_precision: str = "no", *,
                     gradient_accumulation: int = 1, log_with: str | None = None,
                     logging_dir: str | os.PathLike | None = None):
    """The ``Accelerator`` of one training run.

    On one process ``device`` picks the device (``auto``, ``cpu``, ``cuda``, ``cuda:N``) and any
    state a previous run left (another precision, another device) is reset. Under a launcher the
    device is the launcher's (one GPU per process, or the CPU with gloo).
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, GradientState

    if is_distributed():
        partial_state()
        cpu = not torch.cuda.is_available()
        if device not in (None, "auto") and _device_type(device) != ("cpu" if cpu else "cuda"):
            warnings.warn(f"device={device!r} is ignored in a distributed run: the launcher placed this process "
                          f"on {'the CPU' if cpu else 'its GPU'}")
    else:
        AcceleratorState._reset_state(reset_partial_state=True)  # one process: a fresh state per run
        GradientState._reset_state()
        cpu = _device_type(device) == "cpu"
        if not cpu and device not in (None, "auto", "cuda") and torch.device(device).index is not None:
            torch.cuda.set_device(torch.device(device))
    precision = resolve_mixed_precision(mixed_precision, "cpu" if cpu else "cuda")
    launcher = os.environ.get("ACCELERATE_MIXED_PRECISION")
    if launcher not in (None, "", precision) and is_main_process():
        print(f"note: the launcher asked for mixed precision {launcher!r}; this run uses {precision!r} from "
              "runtime.mixed_precision (--mixed-precision), which is part of the run's fingerprint", flush=True)
    return Accelerator(cpu=cpu, mixed_precision=precision, gradient_accumulation_steps=gradient_accumulation,
                       log_with=log_with, project_dir=logging_dir)
