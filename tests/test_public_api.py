"""The curated public API (``spectralkd_tutorial.__init__``): every name resolves, each is listed once and
names a different object, ``dir()`` and ``__all__`` agree, and ``import spectralkd_tutorial`` stays lazy."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import spectralkd_tutorial
from spectralkd_tutorial.tools.import_graph import LAYERS

INIT = Path(spectralkd_tutorial.__file__)


def _public_table() -> list[str]:
    """The keys of the ``_PUBLIC`` dict literal as written (a repeated key would silently win in Python)."""
    for node in ast.parse(INIT.read_text(encoding="utf-8")).body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "_PUBLIC":
            return [key.value for key in node.value.keys]
    raise AssertionError("spectralkd_tutorial/__init__.py has no _PUBLIC table")


def test_each_public_name_is_listed_once():
    names = _public_table()
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    assert len(spectralkd_tutorial.__all__) == len(set(spectralkd_tutorial.__all__))
    assert set(spectralkd_tutorial.__all__) == set(names) | {"__version__"}


def test_dir_and_all_agree():
    assert dir(spectralkd_tutorial) == sorted(spectralkd_tutorial.__all__)


@pytest.mark.parametrize("name", sorted(set(spectralkd_tutorial.__all__) - {"__version__"}))
def test_every_public_name_resolves_to_its_definition(name):
    value = getattr(spectralkd_tutorial, name)
    module = sys.modules[value.__module__] if hasattr(value, "__module__") else None
    assert module is not None and module.__name__.startswith("spectralkd_tutorial."), (name, value)
    assert getattr(module, name) is value  # defined there under the same name, not an alias


def test_each_public_name_is_a_different_object():
    values = {name: getattr(spectralkd_tutorial, name) for name in spectralkd_tutorial.__all__ if name != "__version__"}
    by_id: dict[int, list[str]] = {}
    for name, value in values.items():
        by_id.setdefault(id(value), []).append(name)
    assert [names for names in by_id.values() if len(names) > 1] == []


def test_no_public_name_hides_a_layer():
    assert set(spectralkd_tutorial.__all__).isdisjoint(LAYERS)
    from spectralkd_tutorial import cli  # a folder is still importable by name

    assert cli.__name__ == "spectralkd_tutorial.cli"


def test_an_unknown_name_says_so():
    with pytest.raises(AttributeError, match="'choose_layers'"):
        spectralkd_tutorial.choose_layers  # noqa: B018 - a wrapper that is no longer public


def test_import_stays_lazy():
    code = ("import sys, spectralkd_tutorial as s; print(sorted(m for m in ('torch', 'transformers', 'numpy', "
            "'matplotlib') if m in sys.modules)); print(s.__version__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["[]", spectralkd_tutorial.__version__]
