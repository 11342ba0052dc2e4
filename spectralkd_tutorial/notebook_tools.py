"""Keep notebooks clean in git: no outputs, no execution counts, no widget state.

    python -m spectralkd_tutorial.notebook_tools strip notebooks/*.ipynb   # clean in place
    python -m spectralkd_tutorial.notebook_tools check notebooks/*.ipynb   # exit 1 if any is dirty

Stripped: every code cell's ``outputs`` and ``execution_count``; cell metadata that records a run
(``execution`` timings, ``collapsed``/``scrolled`` view state); the notebook's ``metadata.widgets``
(the saved state of ipywidgets, which can be megabytes and changes on every run).
"""

from __future__ import annotations

import argparse
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spectralkd_tutorial.notebook_tools",
        description="Strip or check notebook outputs and widget state.",
    )
    parser.add_argument("command", choices=("strip", "check"))
    parser.add_argument("notebooks", nargs="+", help="paths of .ipynb files")
    args = parser.parse_args(argv)
    status = 0
    for path in args.notebooks:
        try:
            if args.command == "strip":
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
    if args.command == "check" and status == 1:
        print(
            "notebooks above have outputs or widget state; run "
            "`python -m spectralkd_tutorial.notebook_tools strip notebooks/*.ipynb`",
            file=sys.stderr,
        )
    return status


if __name__ == "__main__":
    sys.exit(main())
