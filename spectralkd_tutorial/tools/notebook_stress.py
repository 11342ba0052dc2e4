"""Do chapters stall? Execute notebooks many times, every cell under a timeout, and count the stalls
per ipykernel version.

    python -m spectralkd_tutorial.tools.notebook_stress notebooks/01_fourier_intuition.ipynb \\
        notebooks/03_text_spectral_analysis.ipynb --runs 5 --cell-timeout 240 --load 1 \\
        --kernel-python /work/main/.venv/bin/python --kernel-site /tmp/ipykernel6 --out stress.json

Each execution starts a fresh kernel (nbclient, as the book build, nbval and the timing tool do).
A cell that outlives ``--cell-timeout`` is a **stall** when the kernel used (almost) no CPU in the
last ``IDLE_WINDOW_S`` seconds before the timeout -- the symptom reported in issue 25: executor and
kernel both idle, no error -- and **slow** when the kernel was busy (a machine too loaded for the
timeout). Every kernel (``--kernel-python``, optionally with a folder of packages put first on its
``sys.path``, ``--kernel-site``, e.g. ``pip install --no-deps --target DIR "ipykernel<7"``) runs the
same notebooks the same number of times, interleaved, so that machine load hits them alike;
``--load N`` adds N busy-looping processes for the whole run. The JSON record (rewritten after every
execution) holds each execution (and its cell with the longest *idle wait*: wall time minus the
kernel's CPU time, which a stall that resolves itself before the timeout still shows); the printed
table gives, per ipykernel version, executions, stalls, slow cells, errors, the stall rate and the
longest idle wait.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterator, Sequence

import nbformat

from ..common.io import atomic_write_json
from .notebook_timing import machine_facts

IDLE_WINDOW_S = 20.0  # a timed-out kernel that used < IDLE_CPU_S of CPU in this window was idle: a stall
IDLE_CPU_S = 0.05
SAMPLE_S = 1.0


def kernel_version(python: str, site: str | None = None) -> str:
    """The ipykernel version that ``python`` (with ``site`` first on its path) imports."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([python, "-c", "import ipykernel; print(ipykernel.__version__)"], env=env,
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"{python} cannot import ipykernel (site {site}): {result.stderr.strip()[-300:]}")
    return result.stdout.strip()


def write_kernelspec(root: Path, name: str, python: str, site: str | None) -> None:
    """A kernelspec ``name`` under ``root/kernels`` (``root`` goes on ``JUPYTER_PATH``)."""
    folder = root / "kernels" / name
    folder.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")]))
    spec = {"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": name,
            "language": "python", "env": {"PYTHONPATH": path} if path else {}}
    (folder / "kernel.json").write_text(json.dumps(spec, indent=1))


def process_sample(pid: int) -> tuple[float, str, str] | None:
    """``(CPU seconds, state letter, wchan)`` of process ``pid`` from /proc (``None`` once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip() or "-"
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks, fields[0], wchan


class KernelWatch:
    """Samples the running kernel's CPU time and state every ``SAMPLE_S`` seconds (a daemon thread)."""

    def __init__(self, window: float = IDLE_WINDOW_S) -> None:
        self.window = window
        self.pid: int | None = None
        self.samples: list[tuple[float, float, str, str]] = []  # (time, cpu, state, wchan)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "KernelWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            sample = process_sample(self.pid) if self.pid else None
            if sample is not None:
                self.samples = [*self.samples[-int(4 * self.window / SAMPLE_S):], (time.monotonic(), *sample)]

    def idle_verdict(self, until: float) -> dict[str, Any]:
        """CPU the kernel used in the ``window`` seconds before ``until`` (the timeout; after it nbclient
        shuts the kernel down), its state and wchan then, and ``idle``."""
        samples = [s for s in self.samples if s[0] <= until]
        if not samples:
            return {"idle": None}
        now, cpu, state, wchan = samples[-1]
        window = [s for s in samples if s[0] >= now - self.window]
        used = cpu - window[0][1]
        long_enough = now - window[0][0] >= self.window - 2 * SAMPLE_S
        return {"idle": bool(long_enough and used < IDLE_CPU_S), "kernel_cpu_in_window_s": round(used, 3),
                "kernel_state": state, "kernel_wchan": wchan}


def execute_once(path: Path, kernel_name: str, preset: str, cell_timeout: int, *,
                 idle_window: float = IDLE_WINDOW_S) -> dict[str, Any]:
    """One execution of ``path`` in a fresh kernel: ``outcome`` ok | stall | slow | error, and where.
    (A cell that waits -- sleeps, reads a socket -- looks idle too: the chapters' cells compute.)"""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=cell_timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent.resolve())}})
    current: dict[str, Any] = {"cell": None, "start": time.monotonic(), "cpu": 0.0}
    gap = {"idle_gap_s": 0.0, "idle_gap_cell": None}  # the cell whose wall time most exceeded the kernel's CPU time
    start = time.perf_counter()
    with KernelWatch(idle_window) as watch:
        def on_cell_execute(cell: Any, cell_index: int) -> None:
            process = getattr(getattr(client.km, "provisioner", None), "process", None)
            watch.pid = getattr(process, "pid", None)
            sample = process_sample(watch.pid) if watch.pid else None
            current.update(cell=cell_index, start=time.monotonic(), cpu=sample[0] if sample else 0.0)

        def on_cell_executed(cell: Any, cell_index: int, execute_reply: Any) -> None:
            sample = process_sample(watch.pid) if watch.pid else None
            idle = time.monotonic() - current["start"] - ((sample[0] - current["cpu"]) if sample else 0.0)
            if idle > gap["idle_gap_s"]:
                gap.update(idle_gap_s=round(idle, 1), idle_gap_cell=cell_index)

        client.on_cell_execute = on_cell_execute
        client.on_cell_executed = on_cell_executed
        record: dict[str, Any] = {"notebook": path.name}
        try:
            client.execute(env={**os.environ, "SPECTRALKD_PRESET": preset})
            record["outcome"] = "ok"
        except CellTimeoutError:
            verdict = watch.idle_verdict(until=current["start"] + cell_timeout)
            record.update(verdict, outcome="stall" if verdict["idle"] else "slow", cell=current["cell"])
        except CellExecutionError as failure:
            record.update(outcome="error", cell=current["cell"], error=str(failure).strip().splitlines()[-1][:300],
                          traceback=_traceback(notebook, current["cell"]))
        except Exception as failure:  # a dead kernel, a failed start
            record.update(outcome="error", cell=current["cell"], error=f"{type(failure).__name__}: {failure}"[:300])
    record.update(gap, seconds=round(time.perf_counter() - start, 1))
    return record


def _traceback(notebook: nbformat.NotebookNode, index: int | None) -> str | None:
    """The last lines of the traceback that cell ``index`` printed (colour codes removed)."""
    import re

    outputs = notebook.cells[index].get("outputs", []) if index is not None else []
    for output in outputs:
        if output.get("output_type") == "error":
            text = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(output.get("traceback", [])))
            return text[-3000:]
    return None


@contextlib.contextmanager
def busy_load(processes: int) -> Iterator[None]:
    """``processes`` busy-looping Python processes for the duration (extra machine load)."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def summary_table(record: dict[str, Any]) -> str:
    """Per ipykernel version and notebook: executions, ok, stalls, slow, errors, stall rate."""
    counts: dict[tuple[str, str], Counter] = {}
    for run in record["executions"]:
        counts.setdefault((run["ipykernel"], run["notebook"]), Counter())[run["outcome"]] += 1
    gaps: dict[tuple[str, str], float] = {}
    for run in record["executions"]:
        key = (run["ipykernel"], run["notebook"])
        gaps[key] = max(gaps.get(key, 0.0), run.get("idle_gap_s") or 0.0)
    rows = ["| ipykernel | notebook | executions | ok | stalls | slow | errors | stall rate | longest idle wait in a cell (s) |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for (version, notebook), count in sorted(counts.items()):
        total = sum(count.values())
        rows.append(f"| {version} | {notebook} | {total} | {count['ok']} | {count['stall']} | {count['slow']} | "
                    f"{count['error']} | {count['stall'] / total:.0%} | {gaps[(version, notebook)]:.1f} |")
    return "\n".join(rows)


def stress(paths: Sequence[str | os.PathLike], kernels: Sequence[tuple[str, str | None]], *, runs: int,
           preset: str = "quick", cell_timeout: int = 240, load: int = 0,
           out: str | os.PathLike | None = None) -> dict[str, Any]:
    """Execute every notebook ``runs`` times under every kernel ``(python, site)``, interleaved."""
    record: dict[str, Any] = {"preset": preset, "cell_timeout_s": cell_timeout, "extra_load_processes": load,
                              "idle_rule": f"< {IDLE_CPU_S} CPU s in the last {IDLE_WINDOW_S:g} s before the timeout",
                              "machine": machine_facts(), "kernels": [], "executions": []}
    with tempfile.TemporaryDirectory(prefix="notebook-stress-") as root, busy_load(load):
        names = []
        for index, (python, site) in enumerate(kernels):
            version = kernel_version(python, site)
            name = f"stress-{index}-ipykernel-{version}"
            write_kernelspec(Path(root), name, python, site)
            record["kernels"].append({"name": name, "python": python, "site": site, "ipykernel": version})
            names.append((name, version))
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [root, os.environ.get("JUPYTER_PATH")]))
        for repeat in range(runs):
            for path in map(Path, paths):
                for name, version in names:
                    result = {"repeat": repeat, "ipykernel": version, "load_before": round(os.getloadavg()[0], 2),
                              **execute_once(path, name, preset, cell_timeout)}
                    record["executions"].append(result)
                    where = f" at cell {result.get('cell')}" if result["outcome"] != "ok" else ""
                    print(f"[{repeat + 1}/{runs}] ipykernel {version} {path.name}: {result['outcome']}{where} "
                          f"({result['seconds']} s, load {result['load_before']})", flush=True)
                    if out is not None:
                        atomic_write_json(out, record)
    record["machine_after"] = machine_facts()
    if out is not None:
        atomic_write_json(out, record)
    return record


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spectralkd_tutorial.tools.notebook_stress", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", help="notebooks to execute")
    parser.add_argument("--runs", type=int, default=5, help="executions of each notebook per kernel")
    parser.add_argument("--cell-timeout", type=int, default=240, help="seconds a cell may take")
    parser.add_argument("--preset", default="quick", help="SPECTRALKD_PRESET of the kernels")
    parser.add_argument("--kernel-python", action="append", default=None,
                        help="a kernel's interpreter (repeat for several; default: this one)")
    parser.add_argument("--kernel-site", action="append", default=None,
                        help="a folder put first on that kernel's sys.path ('-': none), in --kernel-python's order")
    parser.add_argument("--load", type=int, default=0, help="extra busy-looping processes during the run")
    parser.add_argument("--out", default=None, help="JSON record of every execution")
    args = parser.parse_args(argv)
    pythons = args.kernel_python or [sys.executable]
    sites = [None if s in (None, "-") else s for s in (args.kernel_site or [])]
    sites += [None] * (len(pythons) - len(sites))
    if args.runs < 1 or args.cell_timeout < 1 or args.load < 0 or len(sites) != len(pythons):
        parser.error("--runs and --cell-timeout must be >= 1, --load >= 0, and at most one --kernel-site per kernel")
    record = stress(args.notebooks, list(zip(pythons, sites)), runs=args.runs, preset=args.preset,
                    cell_timeout=args.cell_timeout, load=args.load, out=args.out)
    print(summary_table(record))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
