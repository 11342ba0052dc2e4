"""Seconds per chapter: execute notebooks one by one in fresh kernels and record how long each took.

    python -m spectralkd_tutorial.tools.notebook_tools time notebooks/*.ipynb --preset quick \\
        --out assets/timings/quick.json
    python -m spectralkd_tutorial.tools.notebook_tools timings-table assets/timings/quick.json

Each notebook runs with nbclient in a new kernel whose environment is this process's plus
``SPECTRALKD_PRESET``, in the notebook's own folder (so ``../assets`` resolves as in Jupyter); the
notebook file is never written. A chapter's ``seconds`` are wall-clock time from kernel start to
the last cell; its ``cpu_seconds`` are the CPU time the kernel used (user + system, its children
included), which another job on the machine changes much less. The JSON (written atomically after
every chapter, so an interrupted run keeps the chapters it finished; a Markdown table beside it)
also holds the machine's facts -- cores, load average before and after each chapter, niceness,
torch version, date -- and a free-text ``conditions`` field, because a time means little without
the load it was taken under. A chapter whose cell raises is recorded as failed with the cell's
index and error, the others still run, and the command exits 1.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import resource
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import nbformat

from ..common.io import atomic_write_json, atomic_write_text

__all__ = ["ChapterTiming", "machine_facts", "time_notebook", "time_notebooks", "timings_table"]


@dataclass
class ChapterTiming:
    """One chapter's run: wall and CPU seconds, the 1-minute load average around it, its error if it failed."""

    notebook: str
    seconds: float
    cpu_seconds: float
    ok: bool
    load_before: float
    load_after: float
    error: str | None = None


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _children_cpu() -> float:
    """CPU seconds used so far by this process's finished (reaped) children: the kernels."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_facts() -> dict[str, Any]:
    """Cores, load average, niceness, thread settings and library versions of this machine, now."""
    import torch

    return {
        "cores": os.cpu_count(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "niceness": os.nice(0),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def _first_error(notebook: nbformat.NotebookNode) -> str | None:
    """``cell N: Name: message`` for the first code cell with an error output."""
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if output.get("output_type") == "error":
                return f"cell {index}: {output.get('ename')}: {output.get('evalue')}"
    return None


def _describe(failure: BaseException) -> str:
    """``Name: first line`` of the error that started ``failure``'s chain (e.g. ``DeadKernelError: Kernel died``)."""
    while failure.__context__ is not None and not failure.__suppress_context__:
        failure = failure.__context__
    lines = str(failure).strip().splitlines()
    return f"{type(failure).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def time_notebook(path: str | os.PathLike, preset: str, *, timeout: int = 1800,
                  kernel_name: str = "python3") -> ChapterTiming:
    """Execute ``path`` in a fresh kernel on ``preset`` (``timeout`` seconds per cell); never raises for a cell."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path)
    notebook = nbformat.read(path, as_version=4)
    env = {**os.environ, "SPECTRALKD_PRESET": preset}
    client = NotebookClient(notebook, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    load_before, cpu_before, error = _load(), _children_cpu(), None
    start = time.perf_counter()
    try:
        client.execute(env=env)
    except CellExecutionError as failure:
        error = _first_error(notebook) or str(failure).strip().splitlines()[-1]
    except Exception as failure:  # a timeout or a dead kernel (nbclient's clean-up may then raise its own error)
        error = _describe(failure)
    seconds = round(time.perf_counter() - start, 1)
    cpu_seconds = round(_children_cpu() - cpu_before, 1)  # the kernel has been shut down and reaped
    return ChapterTiming(path.name, seconds, cpu_seconds, error is None, load_before, _load(), error)


def _minutes(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def timings_table(record: dict[str, Any]) -> str:
    """The Markdown table of a ``time_notebooks`` record: one row per chapter, then how it was measured."""
    rows = ["| chapter | time | seconds | CPU seconds | load before → after |", "| --- | --- | ---: | ---: | --- |"]
    for chapter in record["chapters"]:
        error = str(chapter["error"]).replace("|", "\\|")
        time_text = _minutes(chapter["seconds"]) if chapter["ok"] else f"**failed** ({error})"
        rows.append(f"| {Path(chapter['notebook']).stem} | {time_text} | {chapter['seconds']:.1f} | "
                    f"{chapter['cpu_seconds']:.1f} | {chapter['load_before']:.2f} → {chapter['load_after']:.2f} |")
    machine = record["machine"]
    total, cpu = record["seconds_total"], record["cpu_seconds_total"]
    rows.append(f"| **all** | {_minutes(total)} | {total:.1f} | {cpu:.1f} | |")
    return "\n".join(rows) + (
        f"\n\nPreset `{record['preset']}`, each chapter in a fresh kernel; {machine['cores']} cores, "
        f"torch {machine['torch']}, {machine['date'][:10]}. Conditions: {record['conditions']}\n")


def time_notebooks(paths: Sequence[str | os.PathLike], preset: str, out: str | os.PathLike | None = None, *,
                   conditions: str = "", timeout: int = 1800, kernel_name: str = "python3") -> dict[str, Any]:
    """Time each notebook in turn; write the record to ``out`` (JSON) and its table beside it (``.md``)."""
    before = machine_facts()
    chapters: list[dict[str, Any]] = []
    record: dict[str, Any] = {}
    for path in paths:
        chapter = time_notebook(path, preset, timeout=timeout, kernel_name=kernel_name)
        status = "ok" if chapter.ok else f"FAILED: {chapter.error}"
        print(f"{chapter.notebook}: {chapter.seconds:.1f} s, {chapter.cpu_seconds:.1f} CPU s "
              f"(load {chapter.load_before} -> {chapter.load_after}) {status}", flush=True)
        chapters.append(asdict(chapter))
        record = _record(preset, conditions, chapters, before)
        if out is not None:  # after every chapter: an interrupted run keeps what it measured
            atomic_write_json(out, record)
            atomic_write_text(Path(out).with_suffix(".md"), timings_table(record))
    return record


def _record(preset: str, conditions: str, chapters: list[dict[str, Any]], before: dict[str, Any]) -> dict[str, Any]:
    after = machine_facts()
    load = f"load average (1, 5, 15 min) {before['load_average_1_5_15']} before, {after['load_average_1_5_15']} after"
    return {
        "preset": preset,
        "conditions": f"{conditions.strip()} ({load})" if conditions.strip() else load,
        "chapters": chapters,
        "seconds_total": round(sum(chapter["seconds"] for chapter in chapters), 1),
        "cpu_seconds_total": round(sum(chapter["cpu_seconds"] for chapter in chapters), 1),
        "machine": {**before, "load_average_1_5_15_after": after["load_average_1_5_15"]},
    }
