"""Committed notebooks are clean and follow the chapter conventions; notebook_tools works.

Conventions (CONTRIBUTING.md, DESIGN.md section 6), checked for every notebooks/*.ipynb:
no outputs, execution counts or widget state; cell 1 is markdown with the Colab badge linking to
this very notebook; cell 2 is valid Python that installs the package only under Colab; cell 3
loads the preset; cells that show animations or widgets carry ``# NBVAL_IGNORE_OUTPUT``.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from spectralkd_tutorial.tools.notebook_tools import has_outputs, main, strip_outputs
from spectralkd_tutorial.tools.repository import read_repo

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COLAB = f"https://colab.research.google.com/github/{read_repo(ROOT)}/blob/main/notebooks/"


def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks under {ROOT / 'notebooks'}"


@pytest.fixture(params=NOTEBOOKS, ids=[path.name for path in NOTEBOOKS])
def notebook_path(request) -> Path:
    return request.param


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def test_committed_notebook_has_no_outputs_or_widget_state(notebook_path):
    problems = has_outputs(notebook_path)
    assert not problems, (
        f"{notebook_path.name} was committed with outputs: {problems}; run "
        "`python -m spectralkd_tutorial.tools.notebook_tools strip notebooks/*.ipynb`"
    )


def test_first_cell_has_colab_badge(notebook_path):
    first = nbformat.read(notebook_path, as_version=4).cells[0]
    assert first.cell_type == "markdown"
    assert "colab-badge.svg" in first.source
    assert f"({COLAB}{notebook_path.name})" in first.source, "the badge must open this notebook"


def test_second_cell_is_guarded_install(notebook_path):
    second = nbformat.read(notebook_path, as_version=4).cells[1]
    assert second.cell_type == "code"
    tree = ast.parse(second.source)  # valid Python: no `!pip`, so nbval can run it off Colab
    guards = [
        node for node in tree.body
        if isinstance(node, ast.If) and "google.colab" in ast.unparse(node.test) and "sys.modules" in ast.unparse(node.test)
    ]
    assert len(guards) == 1, "cell 2 must be `if \"google.colab\" in sys.modules: <install>`"
    assert "install" in ast.unparse(guards[0]) and "spectralkd-tutorial" in ast.unparse(guards[0])
    outside = [node for node in tree.body if node is not guards[0]]
    assert all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in outside), (
        "cell 2 may only import outside the Colab guard (nothing installs elsewhere)"
    )
    assert not guards[0].orelse


def test_third_cell_loads_the_preset(notebook_path):
    third = nbformat.read(notebook_path, as_version=4).cells[2]
    assert third.cell_type == "code" and "get_preset(" in third.source


def test_widget_and_animation_cells_ignore_output(notebook_path):
    for cell in _code_cells(nbformat.read(notebook_path, as_version=4)):
        source = cell.source
        shows_media = any(marker in source for marker in ("to_jshtml(", "animation_html(", "display(explorer.widget"))
        shows_media = shows_media or ("display(" in source and ".widget)" in source)
        if shows_media:
            assert source.lstrip().startswith("# NBVAL_IGNORE_OUTPUT"), (
                f"{notebook_path.name}: this cell shows a widget/animation and must start with "
                f"'# NBVAL_IGNORE_OUTPUT':\n{source[:200]}"
            )


# --------------------------------------------------------------------------------------------
# notebook_tools
# --------------------------------------------------------------------------------------------

def _dirty_notebook(path: Path) -> Path:
    cell = new_code_cell("print('hi')", execution_count=3, outputs=[new_output("stream", name="stdout", text="hi\n")])
    cell.metadata["execution"] = {"iopub.status.idle": "2024-01-01T00:00:00"}
    cell.metadata["tags"] = ["keep-me"]
    notebook = new_notebook(cells=[new_markdown_cell("# title"), cell, new_code_cell("x = 1", execution_count=4)])
    notebook.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nbformat.write(notebook, path)
    return path


def test_has_outputs_lists_every_problem(tmp_path):
    problems = has_outputs(_dirty_notebook(tmp_path / "dirty.ipynb"))
    text = "\n".join(problems)
    assert "metadata.widgets" in text
    assert "cell 1: 1 output(s)" in text and "cell 1: execution_count 3" in text
    assert "cell 2: execution_count 4" in text and "cell 1: metadata.execution" in text


def test_strip_outputs_cleans_and_keeps_sources(tmp_path):
    path = _dirty_notebook(tmp_path / "dirty.ipynb")
    assert strip_outputs(path) is True
    assert has_outputs(path) == []
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert [cell.source for cell in notebook.cells] == ["# title", "print('hi')", "x = 1"]
    assert notebook.cells[1].metadata["tags"] == ["keep-me"]  # only run state is removed
    assert "widgets" not in notebook.metadata
    assert strip_outputs(path) is False  # idempotent: nothing left to strip
    assert not list(tmp_path.glob(".*tmp*"))


def test_missing_notebook_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        has_outputs(tmp_path / "nope.ipynb")
    (tmp_path / "bad.ipynb").write_text("not json")
    with pytest.raises(ValueError, match="not a readable"):
        strip_outputs(tmp_path / "bad.ipynb")


def test_cli_check_and_strip(tmp_path, capsys):
    dirty = _dirty_notebook(tmp_path / "dirty.ipynb")
    assert main(["check", str(dirty)]) == 1
    assert "dirty.ipynb" in capsys.readouterr().out
    assert main(["strip", str(dirty)]) == 0
    assert main(["check", str(dirty)]) == 0
    assert main(["check", str(tmp_path / "missing.ipynb")]) == 2


def test_cli_as_module(tmp_path):
    dirty = _dirty_notebook(tmp_path / "dirty.ipynb")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "spectralkd_tutorial.tools.notebook_tools"]
    result = subprocess.run([*command, "check", str(dirty)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 1 and "metadata.widgets" in result.stdout
    result = subprocess.run([*command, "strip", str(dirty)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0 and "stripped" in result.stdout
    result = subprocess.run([*command, "check", str(dirty)], capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
