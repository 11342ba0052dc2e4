"""The folder tree is the architecture: each layer imports only the layers below it, no import cycles,
small functions and modules (``tools/import_graph.py`` computes the graph with ``ast``)."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

import spectralkd_tutorial
from spectralkd_tutorial.tools.import_graph import LAYERS, build_graph, describe, import_cycles, upward_imports

PACKAGE = Path(spectralkd_tutorial.__file__).parent
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 400


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root / "pkg"


def test_the_package_keeps_its_layers(capsys):
    graph = build_graph(PACKAGE)
    print(describe(graph))
    assert graph.unresolved == []
    assert upward_imports(graph) == []
    assert import_cycles(graph) == []
    assert set(LAYERS) <= {graph.layer(m) for m in graph.modules}  # every layer exists (names kept in step)


def test_the_checks_find_a_cycle_and_an_upward_import(tmp_path):
    package = _write(tmp_path, {
        "__init__.py": "",
        "common/__init__.py": "",
        "common/io.py": "def f():\n    from ..engine import loop  # function-level imports count\n",
        "engine/__init__.py": "",
        "engine/loop.py": "from . import store\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                          "    from ..cli import app\n",
        "engine/store.py": "from .loop import x\nfrom ..common.io import f\n",
        "cli/__init__.py": "",
        "cli/app.py": "from ..engine.loop import y\nfrom ..core import gone  # moved away\n",
    })
    graph = build_graph(package)
    assert graph.edges["engine.loop"] == {"engine.store"}  # the TYPE_CHECKING import is not counted
    assert graph.unresolved == ["cli.app -> core (no such module)"]
    assert upward_imports(graph, ("common", "engine", "cli")) == [
        "common.io -> engine.loop (common imports engine, a layer above it)"]
    assert import_cycles(graph) == [["common.io", "engine.loop", "engine.store"]]  # io -> loop -> store -> io
    assert upward_imports(graph, ("common", "cli")) == [
        "cli.app -> engine.loop (a module outside the layers common, cli)",
        "common.io -> engine.loop (a module outside the layers common, cli)",
        "engine.loop -> engine.store (a module outside the layers common, cli)",
        "engine.store -> common.io (a module outside the layers common, cli)",
        "engine.store -> engine.loop (a module outside the layers common, cli)",
    ]


def test_the_top_level_holds_folders():
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert modules[0] == "__init__.py" and len(modules) <= 3, modules
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == set(LAYERS)


def _long_functions(path: Path, root: Path = PACKAGE) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            length = node.end_lineno - start + 1
            if length > MAX_FUNCTION_LINES:
                found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_functions_and_modules_stay_small():
    modules = sorted(PACKAGE.rglob("*.py"))
    long_modules = [f"{p.relative_to(PACKAGE)} ({n} lines)" for p in modules
                    if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES]
    long_functions = [f for p in modules for f in _long_functions(p)]
    assert long_modules == [] and long_functions == []


@pytest.mark.parametrize("length, expected", [(MAX_FUNCTION_LINES, 0), (MAX_FUNCTION_LINES + 1, 1)])
def test_the_size_check_counts_lines(tmp_path, length, expected):
    body = "\n".join(f"    x{i} = {i}" for i in range(length - 1))
    path = tmp_path / "m.py"
    path.write_text(f"def f():\n{body}\n")
    assert len(_long_functions(path, tmp_path)) == expected
