"""The frozen teacher's outputs, computed once per grid instead of once per step per run.

Real tokens only are stored, one row per token: ``hidden`` is ``(tokens, layers, H)`` with example
i at rows ``starts[i] : starts[i] + lengths[i]``; ``batch`` re-pads them exactly as ``collate``
pads the inputs (padded positions are zero, and every loss masks them). Logits stay float32.

Its footprint is bounded:

* half precision: ``float16`` (the grid's default, ``runtime.teacher_cache_dtype``; ~3 significant
  digits, range +-65504, checked) or ``bfloat16``; ``float32`` (``build``'s default) keeps the
  exact values. Size = tokens x layers x H x 2 bytes (``cache_bytes``), printed before it is built;
* ``storage="disk"``: written once, sequentially, to ``hidden.bin`` under the run directory
  (``index.pt`` beside it, written last) and memory-mapped: the operating system pages in what a
  batch reads, all processes of a run share one copy, each reading its shard's rows;
* ``build_or_open``: where the cache would exceed the budget, ``None``: the teacher runs online.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ..common.errors import UsageError
from ..common.io import TMP_PREFIX, notify_written
from .batching import EncodedSplit, eval_batches, model_inputs

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
STORAGE = ("auto", "memory", "disk", "off")
HIDDEN_FILE, INDEX_FILE = "hidden.bin", "index.pt"
FP16_MAX = 65504.0


def cache_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise UsageError(f"teacher cache dtype {dtype!r}; choose one of {sorted(DTYPES)}")
    return DTYPES[dtype]


def cache_bytes(tokens: int, layers: int, hidden_size: int, dtype: str | torch.dtype = "float16") -> int:
    """Bytes of the hidden states: tokens x layers x H x (bytes per value)."""
    return tokens * layers * hidden_size * torch.empty((), dtype=cache_dtype(dtype)).element_size()


def format_bytes(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


class TeacherCache:
    """Logits and chosen hidden states of the teacher for every training example."""

    def __init__(self, logits: Tensor, hidden: Tensor, starts: Tensor, lengths: Tensor, layers: Sequence[int],
                 path: Path | None = None) -> None:
        self.logits = logits
        self.hidden = hidden  # (tokens, len(layers), H), in memory or memory-mapped
        self.starts, self.lengths = starts, lengths
        self.layers = tuple(int(layer) for layer in layers)
        self.path = path
        self._index = {layer: j for j, layer in enumerate(self.layers)}

    def __len__(self) -> int:
        return len(self.logits)

    @property
    def dtype(self) -> torch.dtype:
        return self.hidden.dtype

    @property
    def nbytes(self) -> int:
        return self.hidden.numel() * self.hidden.element_size() + self.logits.numel() * 4

    @classmethod
    @torch.no_grad()
    def build(cls, teacher: nn.Module, encoded: EncodedSplit, layers: Sequence[int], pad_token_id: int, *,
              batch_size: int = 128, device: str | torch.device | None = None, progress: bool = True,
              dtype: str | torch.dtype = "float32", directory: str | os.PathLike | None = None,
              source: str = "") -> "TeacherCache":
        """Run the teacher over ``encoded`` once; ``directory``: write to disk there and memory-map it."""
        from tqdm.auto import tqdm

        teacher.eval()
        device = torch.device(device) if device is not None else next(teacher.parameters()).device
        layers, dtype = sorted(set(int(layer) for layer in layers)), cache_dtype(dtype)
        size, n = teacher.config.hidden_size, len(encoded)
        lengths = torch.tensor([len(row) for row in encoded.input_ids], dtype=torch.long)
        starts = torch.zeros(n, dtype=torch.long)
        logits = torch.empty(n, teacher.config.num_labels)
        tokens = int(lengths.sum()) if layers else 0
        writer = _Writer(tokens, len(layers), size, dtype, directory)
        try:
            for indices, batch in tqdm(eval_batches(encoded, batch_size, pad_token_id), desc="teacher cache",
                                       disable=not progress, leave=False):
                out = teacher(**model_inputs(batch, device), output_hidden_states=bool(layers))
                logits[indices] = out.logits.float().cpu()
                if layers:
                    writer.write(_stack_cast([out.hidden_states[layer] for layer in layers], dtype),
                                 [int(lengths[i]) for i in indices])
                    for i in indices:
                        starts[i], writer.cursor = writer.cursor, writer.cursor + int(lengths[i])
        except BaseException:
            writer.abort()
            raise
        hidden = writer.finish(logits, starts, lengths, layers, source)
        return cls(logits, hidden, starts, lengths, layers, writer.directory)

    @classmethod
    def open(cls, directory: str | os.PathLike, source: str | None = None) -> "TeacherCache | None":
        """The cache written to ``directory`` (memory-mapped), or ``None`` when there is none, it is
        incomplete, or it was built from something other than ``source``."""
        folder = Path(directory)
        if not (folder / INDEX_FILE).exists() or not (folder / HIDDEN_FILE).exists():
            return None
        try:
            index = torch.load(folder / INDEX_FILE, map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - an unreadable index is rebuilt
            return None
        if source is not None and index.get("source") != source:
            return None
        dtype, shape = DTYPES[index["dtype"]], index["shape"]
        count = shape[0] * shape[1] * shape[2]
        expected = count * torch.empty((), dtype=dtype).element_size()
        if (folder / HIDDEN_FILE).stat().st_size != expected:
            return None
        hidden = (torch.from_file(str(folder / HIDDEN_FILE), shared=False, size=count, dtype=dtype).view(*shape)
                  if count else torch.empty(shape, dtype=dtype))
        return cls(index["logits"], hidden, index["starts"], index["lengths"], index["layers"], folder)

    def batch(self, indices: Sequence[int], width: int) -> tuple[Tensor, dict[int, Tensor]]:
        """``(logits (B, C), {layer: (B, width, H)})`` for the examples ``indices``, in float32."""
        logits = self.logits[list(indices)]
        if not self.layers:
            return logits, {}
        padded = torch.zeros(len(self.layers), len(indices), width, self.hidden.shape[-1])
        for row, i in enumerate(indices):
            start, length = int(self.starts[i]), int(self.lengths[i])
            padded[:, row, :length] = self.hidden[start : start + length].permute(1, 0, 2)
        return logits, {layer: padded[j] for layer, j in self._index.items()}

    def missing_layers(self, layers: Sequence[int]) -> list[int]:
        return [layer for layer in layers if layer not in self._index]

    def check(self, train_size: int, layers: Sequence[int]) -> None:
        """Raise unless the cache covers ``train_size`` examples and ``layers``."""
        if len(self) != train_size:
            raise ValueError(f"teacher_cache holds {len(self)} examples, the training split {train_size}")
        missing = self.missing_layers(layers)
        if missing:
            raise ValueError(f"teacher_cache lacks teacher layers {missing}; rebuild it with those layers")


def _stack_cast(hidden: Sequence[Tensor], dtype: torch.dtype) -> Tensor:
    """``(B, L, layers, H)`` in ``dtype`` on the CPU, cast layer by layer (no float32 stack of all
    layers at once); float16's range is checked first."""
    batch, width, size = hidden[0].shape
    out = torch.empty(batch, width, len(hidden), size, dtype=dtype)
    for j, states in enumerate(hidden):
        if dtype == torch.float16:
            low, high = torch.aminmax(states)
            if max(-float(low), float(high)) > FP16_MAX:
                raise UsageError(f"a teacher hidden state exceeds float16's range ({max(-float(low), float(high)):.3g} "
                                 f"> {FP16_MAX:g}); use teacher_cache_dtype='bfloat16' (--teacher-cache-dtype bfloat16)")
        out[:, :, j] = states.to(dtype)
    return out


class _Writer:
    """Where ``build`` puts the hidden states: a tensor in memory, or a file written sequentially
    (a temporary name until complete, then renamed; ``index.pt`` last)."""

    def __init__(self, tokens: int, layers: int, size: int, dtype: torch.dtype,
                 directory: str | os.PathLike | None) -> None:
        self.shape, self.dtype, self.cursor = (tokens, layers, size), dtype, 0
        self.directory = Path(directory) if directory is not None else None
        self._written = 0
        if self.directory is None:
            self.memory = torch.empty(self.shape, dtype=dtype)
            return
        notify_written(self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        for name in (INDEX_FILE, HIDDEN_FILE):  # an older cache: replaced, index first (it marks completeness)
            (self.directory / name).unlink(missing_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{HIDDEN_FILE}.", suffix=".tmp", dir=self.directory)
        self.tmp, self.handle = Path(name), os.fdopen(fd, "wb")

    def write(self, batch: Tensor, lengths: Sequence[int]) -> None:
        """Row ``r``'s first ``lengths[r]`` tokens of ``batch`` (B, L, layers, H), appended in order."""
        if self.directory is None:
            for row, length in enumerate(lengths):
                self.memory[self._written : self._written + length] = batch[row, :length]
                self._written += length
        else:
            rows = torch.cat([batch[row, :length] for row, length in enumerate(lengths)])
            self.handle.write(memoryview(rows.view(torch.uint8).numpy()))
            self._written += rows.shape[0]

    def abort(self) -> None:
        if self.directory is not None:
            self.handle.close()
            self.tmp.unlink(missing_ok=True)

    def finish(self, logits: Tensor, starts: Tensor, lengths: Tensor, layers: list[int], source: str) -> Tensor:
        if self.directory is None:
            return self.memory
        from ..common.io import atomic_torch_save

        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(self.tmp, 0o666 & ~mask)  # mkstemp made it private; the other machines' processes read it
        os.replace(self.tmp, self.directory / HIDDEN_FILE)
        name = next(k for k, v in DTYPES.items() if v == self.dtype)
        atomic_torch_save(self.directory / INDEX_FILE, {"logits": logits, "starts": starts, "lengths": lengths,
                                                        "layers": layers, "dtype": name, "shape": list(self.shape),
                                                        "source": source})
        cache = TeacherCache.open(self.directory)
        assert cache is not None
        return cache.hidden


# ---------------------------------------------------------------------------------------------
# Build, reuse, or run the teacher online: one decision, made by the main process
# ---------------------------------------------------------------------------------------------

def available_memory() -> int:
    """Bytes of host memory available now (``MemAvailable``; all physical memory where unknown)."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cache_budget(storage: str, directory: str | os.PathLike | None, budget_gb: float | None) -> tuple[int, str]:
    """``(bytes, where the number comes from)``: the given budget, else (``config.TEACHER_CACHE_BUDGET_DEFAULT``)
    the free disk space less 1 GB (on disk, where the page cache is shared) or half of the available RAM (in memory)."""
    if budget_gb is not None:
        return int(budget_gb * 1e9), "--teacher-cache-budget"
    if storage == "disk":
        import shutil

        return max(0, shutil.disk_usage(directory).free - 10**9), f"free disk space in {directory}"
    return available_memory() // 2, "half of the available host memory"


def prepare_cache(teacher: nn.Module, encoded: EncodedSplit, layers: Sequence[int], pad_token_id: int, *,
                  storage: str = "auto", dtype: str = "float16", budget_gb: float | None = None,
                  directory: str | os.PathLike | None = None, source: str = "", progress: bool = True,
                  batch_size: int = 128) -> TeacherCache | None:
    """The teacher cache of a grid, on every process of the run; ``None``: run the teacher online.

    The main process decides (reuse a complete cache from ``source`` in ``directory``; build one if
    its size fits the budget; else online, saying so) and builds; the other processes then
    memory-map what it wrote (``disk``) or, in memory without a directory, build their own copy.
    """
    from ..common.distributed import is_distributed, is_main_process, on_main

    if storage not in STORAGE:
        raise UsageError(f"teacher_cache={storage!r}; choose one of {STORAGE}")
    if storage == "off":
        return None
    if storage == "auto" or (storage == "memory" and is_distributed() and directory is not None):
        storage = "disk" if directory is not None else "memory"
    if storage == "disk" and directory is None:
        raise UsageError("teacher_cache='disk' needs a run directory; use 'memory' or give the run an --out")
    folder = Path(directory) / "teacher_cache" if storage == "disk" else None
    source = f"{source}|{dtype}|layers {sorted(set(layers))}|{len(encoded)} utterances"
    holder: dict[str, TeacherCache | None] = {}

    def decide_and_build() -> str:
        if folder is not None:
            holder["cache"] = TeacherCache.open(folder, source)
            if holder["cache"] is not None:
                print(f"teacher cache: reusing {folder} ({format_bytes(holder['cache'].nbytes)})", flush=True)
                return "disk"
        tokens = sum(len(row) for row in encoded.input_ids) if layers else 0
        size = cache_bytes(tokens, len(set(layers)), teacher.config.hidden_size, dtype)
        budget, origin = cache_budget(storage, folder.parent if folder else None, budget_gb)
        where = f"on disk in {folder}" if folder is not None else "in host memory"
        print(f"teacher cache: {len(encoded):,} utterances, {tokens:,} tokens x {len(set(layers))} layers x "
              f"{teacher.config.hidden_size} x {torch.empty((), dtype=cache_dtype(dtype)).element_size()} B "
              f"({dtype}) = {format_bytes(size)}, {where}", flush=True)
        if size > budget:
            print(f"teacher cache: {format_bytes(size)} would exceed the budget of {format_bytes(budget)} ({origin}); "
                  "running the teacher online instead (one teacher forward pass per batch)", flush=True)
            return "online"
        holder["cache"] = TeacherCache.build(teacher, encoded, layers, pad_token_id, batch_size=batch_size,
                                             progress=progress, dtype=dtype, directory=folder, source=source)
        return storage

    decision = on_main(decide_and_build)
    if is_main_process() or decision == "online":
        return holder.get("cache")
    if decision == "disk":
        cache = TeacherCache.open(folder, source)
        if cache is None:
            raise UsageError(f"{folder} written by the main process is not visible here; put --out on a file system "
                             "that every machine of the run shares")
        return cache
    return TeacherCache.build(teacher, encoded, layers, pad_token_id, batch_size=batch_size, progress=False,
                              dtype=dtype, source=source)
