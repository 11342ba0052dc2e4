"""Keep notebooks clean in git: no outputs, no execution counts, no widget state.

    python -m spectralkd_tutorial.tools.notebook_tools strip notebooks/*.ipynb   # clean in place
    python -m spectralkd_tutorial.tools.notebook_tools check notebooks/*.ipynb   # exit 1 if any is dirty
    python -m spectralkd_tutorial.tools.notebook_tools time notebooks/*.ipynb --preset quick --out assets/timings/quick.json
    python -m spectralkd_tutorial.tools.notebook_tools timings-table assets/timings/quick.json
    python -m spectralkd_tutorial.tools.notebook_tools set-repo OWNER/NAME   # a fork: every badge and install cell
    python -m spectralkd_tutorial.tools.notebook_tools check-repo            # exit 1 where one disagrees

``time`` and ``timings-table`` measure seconds per chapter (``notebook_timing``); ``set-repo`` and
``check-repo`` keep the repository's address in one place (``repository``).

Stripped: every code cell's ``outputs`` and ``execution_count``; cell metadata that records a run
(``execution`` timings, ``collapsed``/``scrolled`` view state); the notebook's ``metadata.widgets``
(the saved state of ipywidgets, which can be megabytes and changes on every run).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

import nbformat

__all__ = ["has_outputs", "strip_outputs", "main"]

RUN_CELL_METADATA = ("execution", "collapsed", "scrolled")


def _read(path: str | os.PathLike) -> nbformat.NotebookNode:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"notebook {str(path)!r} does not exist; pass the path of an .ipynb file")
    try:
        return nbformat.read(path, as_version=nbformat.NO_CONVERT)
    except Exception as error:  # nbformat raises several kinds of parse errors
        raise ValueError(f"{str(path)!r} is not a readable Jupyter notebook: {error}") from error


def has_outputs(path: str | os.PathLike) -> list[str]:
    """What would be stripped from the notebook at ``path``: one line per problem, [] if clean."""
    notebook = _read(path)
    problems: list[str] = []
    if "widgets" in notebook.get("metadata", {}):
        problems.append("metadata.widgets (saved widget state)")
    for index, cell in enumerate(notebook.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            problems.append(f"cell {index}: {len(cell['outputs'])} output(s)")
        if cell.get("execution_count") is not None:
            problems.append(f"cell {index}: execution_count {cell['execution_count']}")
        for key in RUN_CELL_METADATA:
            if key in cell.get("metadata", {}):
                problems.append(f"cell {index}: metadata.{key}")
    return problems


def strip_outputs(path: str | os.PathLike) -> bool:
    """Remove outputs, execution counts and widget state from ``path`` in place; True if it changed."""
    if not has_outputs(path):
        return False
    notebook = _read(path)
    notebook.get("metadata", {}).pop("widgets", None)
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        cell["outputs"] = []
        cell["execution_count"] = None
        for key in RUN_CELL_METADATA:
            cell.get("metadata", {}).pop(key, None)
    tmp = Path(path).with_name(f".{Path(path).name}.tmp{os.getpid()}")
    nbformat.write(notebook, tmp)
    os.replace(tmp, path)  # atomic: never leaves a half-written notebook
    return True


def _clean(command: str, notebooks: Sequence[str]) -> int:
    status = 0
    for path in notebooks:
        try:
            if command == "strip":
                if strip_outputs(path):
                    print(f"stripped {path}")
            else:
                problems = has_outputs(path)
                if problems:
                    status = 1
                    print(f"{path}: " + "; ".join(problems))
        except (FileNotFoundError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            status = 2
    if command == "check" and status == 1:
        print(
            "notebooks above have outputs or widget state; run "
            "`python -m spectralkd_tutorial.tools.notebook_tools strip notebooks/*.ipynb`",
            file=sys.stderr,
        )
    return status


def _repo(args: argparse.Namespace) -> int:
    from .repository import check_repo, set_repo

    try:
        if args.command == "set-repo":
            for path in set_repo(args.root, args.repo):
                print(f"rewrote {path}")
        problems = check_repo(args.root)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spectralkd_tutorial.tools.notebook_tools",
        description="Strip or check notebook outputs and widget state; time the chapters; set the repository's address.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("strip", "remove outputs and widget state in place"),
                       ("check", "exit 1 if a notebook has outputs or widget state")):
        commands.add_parser(name, help=text).add_argument("notebooks", nargs="+", help="paths of .ipynb files")
    timer = commands.add_parser("time", help="execute each notebook in a fresh kernel and record its seconds")
    timer.add_argument("notebooks", nargs="+", help="paths of .ipynb files, timed in this order")
    timer.add_argument("--preset", default="quick", help="SPECTRALKD_PRESET of the kernels (default: quick)")
    timer.add_argument("--out", help="JSON file to write (atomically), with its Markdown table beside it (.md)")
    timer.add_argument("--conditions", default="",
                       help="how it was measured, e.g. 'idle machine' or 'while another job ran'")
    timer.add_argument("--timeout", type=int, default=1800, help="seconds a cell may take (default: 1800)")
    table = commands.add_parser("timings-table", help="print the Markdown table of a `time` JSON file")
    table.add_argument("record", help="a JSON file written by `time --out`")
    setter = commands.add_parser("set-repo", help="write OWNER/NAME into pyproject.toml, every badge and install cell")
    setter.add_argument("repo", help="the GitHub repository, OWNER/NAME (a fork's)")
    setter.add_argument("--root", default=".", help="the checkout (default: the working folder)")
    checker = commands.add_parser("check-repo", help="exit 1 if a badge, install cell or link names another repository")
    checker.add_argument("--root", default=".", help="the checkout (default: the working folder)")
    args = parser.parse_args(argv)
    if args.command in ("strip", "check"):
        return _clean(args.command, args.notebooks)
    if args.command in ("set-repo", "check-repo"):
        return _repo(args)
    from .notebook_timing import time_notebooks, timings_table

    if args.command == "timings-table":
        print(timings_table(json.loads(Path(args.record).read_text(encoding="utf-8"))), end="")
        return 0
    missing = [path for path in args.notebooks if not Path(path).is_file()]
    if missing:
        print(f"error: no such notebook: {', '.join(missing)}", file=sys.stderr)
        return 2
    record = time_notebooks(args.notebooks, args.preset, args.out, conditions=args.conditions, timeout=args.timeout)
    failed = [chapter for chapter in record["chapters"] if not chapter["ok"]]
    for chapter in failed:
        print(f"error: {chapter['notebook']} failed at {chapter['error']}", file=sys.stderr)
    return 1 if failed else 0

if __name__ == "__main__":
    sys.exit(main())
