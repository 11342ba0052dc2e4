"""One address for the repository (``[project.urls] Repository``): every badge, install cell and
link agrees with it, ``set-repo`` rewrites them all for a fork; the Colab install cell installs once
and prints what it installed; the committed results are found through the package's copy."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import shutil
import sys
import types
from pathlib import Path

import pytest

from spectralkd_tutorial.tools.notebook_tools import main
from spectralkd_tutorial.common.published import find_asset, published, published_root
from spectralkd_tutorial.tools.repository import check_repo, install_cell, read_repo, set_repo

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# every github address written in the project's text: (what it is, the OWNER/NAME it names)
ADDRESS = re.compile(r"(colab\.research\.google\.com/github/|mybinder\.org/v2/gh/|git\+https://github\.com/|"
                     r"\"repository_url\": \"https://github\.com/)([\w.-]+/[\w.-]+?)(?=/|\"|\)|$|\s)")


def _addresses(text: str) -> set[str]:
    return {m.group(2) for m in ADDRESS.finditer(text)}


def test_every_badge_install_cell_and_link_agrees_with_pyproject():
    repo = read_repo(REPO)
    tomllib_url = __import__("tomllib").loads((REPO / "pyproject.toml").read_text())["project"]["urls"]["Repository"]
    assert tomllib_url == f"https://github.com/{repo}"
    assert check_repo(REPO) == []
    for path in NOTEBOOKS:  # independently of check_repo: parse the two cells
        cells = json.loads(path.read_text())["cells"]
        first, second = "".join(cells[0]["source"]), "".join(cells[1]["source"])
        assert f"colab.research.google.com/github/{repo}/blob/main/notebooks/{path.name})" in first
        assert f"mybinder.org/v2/gh/{repo}/main?labpath=notebooks%2F{path.name})" in first
        assert _addresses(first + second) == {repo}, path.name
    for path in [REPO / "README.md", REPO / "docs" / "conf.py", *(REPO / "docs").glob("*.md"), *NOTEBOOKS]:
        assert _addresses(path.read_text()) <= {repo}, path
        assert {m for m in re.findall(r"github\.com/([\w.-]+/spectralkd-tutorial)", path.read_text())} <= {repo}, path
    readme = (REPO / "README.md").read_text()
    assert all(f"colab.research.google.com/github/{repo}/blob/main/notebooks/{p.name})" in readme for p in NOTEBOOKS)
    assert "set-repo OWNER/NAME" in readme


@pytest.fixture
def checkout(tmp_path) -> Path:
    root = tmp_path / "fork"
    for name in ("pyproject.toml", "README.md", "notebooks", "docs/conf.py", "docs/workshop.md", "docs/references.md"):
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy)(REPO / name, target)
    return root


def test_set_repo_rewrites_everything_for_a_fork(checkout, capsys):
    old = read_repo(checkout)
    guide = checkout / "docs" / "workshop.md"
    guide.write_text(guide.read_text() + "\nUpstream: https://github.com/clinc/oos-eval\n")
    assert main(["set-repo", "my-org/skd.fork", "--root", str(checkout)]) == 0
    assert "rewrote" in capsys.readouterr().out
    assert read_repo(checkout) == "my-org/skd.fork" and check_repo(checkout) == []
    texts = [p.read_text() for p in [checkout / "pyproject.toml", checkout / "README.md", checkout / "docs" / "conf.py",
                                     checkout / "docs" / "workshop.md", *sorted((checkout / "notebooks").glob("*"))]]
    assert not any(f"github.com/{old}" in t or f"gh/{old}/" in t for t in texts)
    assert "https://github.com/clinc/oos-eval" in guide.read_text()  # links to other repositories stay
    for path in sorted((checkout / "notebooks").glob("*.ipynb")):  # after the first two cells: the address only
        before, after = json.loads((REPO / "notebooks" / path.name).read_text()), json.loads(path.read_text())
        moved = json.dumps(before["cells"][2:]).replace(f"github.com/{old}/", "github.com/my-org/skd.fork/")
        assert moved == json.dumps(after["cells"][2:]) and before["metadata"] == after["metadata"]
        assert _addresses("".join(after["cells"][0]["source"] + after["cells"][1]["source"])) == {"my-org/skd.fork"}
    assert main(["set-repo", "my-org/skd.fork", "--root", str(checkout)]) == 0  # idempotent: nothing rewritten
    assert "rewrote" not in capsys.readouterr().out


def test_check_repo_finds_a_stale_badge_and_set_repo_refuses_a_bad_name(checkout, capsys):
    readme = checkout / "README.md"
    readme.write_text(readme.read_text().replace(f"gh/{read_repo(checkout)}/", "gh/someone/else/", 1))
    notebook = sorted((checkout / "notebooks").glob("*.ipynb"))[2]
    cells = json.loads(notebook.read_text())
    cells["cells"][1]["source"] = ["print('hi')"]
    cells["cells"][3]["source"] += ["\n[guide](https://github.com/old-owner/spectralkd-tutorial/blob/main/docs/x.md)"]
    notebook.write_text(json.dumps(cells))
    problems = check_repo(checkout)
    assert any(notebook.name in p and "old-owner/spectralkd-tutorial" in p for p in problems)
    assert any("README.md" in p and "someone/else" in p for p in problems)
    assert any(notebook.name in p and "install cell" in p for p in problems)
    assert main(["check-repo", "--root", str(checkout)]) == 1
    assert main(["set-repo", "not a repo", "--root", str(checkout)]) == 2
    assert "OWNER/NAME" in capsys.readouterr().err


def _run_install_cell(monkeypatch, installed: bool) -> tuple[list, str]:
    """Execute the install cell as on Colab: pip mocked, the package present or not."""
    import subprocess

    calls = []
    state = {"installed": installed}
    dists = [types.SimpleNamespace(metadata={"Name": "torch"}, version="2.8.0"),
             types.SimpleNamespace(metadata={"Name": "ipywidgets"}, version="7.7.1")]

    def version(name):
        if name == "spectralkd-tutorial" and state["installed"]:
            return "0.1.0"
        raise importlib.metadata.PackageNotFoundError(name)

    def distributions():
        extra = [types.SimpleNamespace(metadata={"Name": "spectralkd-tutorial"}, version="0.1.0"),
                 types.SimpleNamespace(metadata={"Name": "datasets"}, version="3.0.0")] if state["installed"] else []
        return dists + extra

    def run(command, check):
        calls.append(command)
        state["installed"] = True

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(importlib.metadata, "distributions", distributions)
    monkeypatch.setattr(subprocess, "run", run)
    return calls, state


def test_the_install_cell_installs_once_and_says_what(monkeypatch, capsys):
    cell = install_cell(read_repo(REPO))
    ast.parse(cell)
    calls, _ = _run_install_cell(monkeypatch, installed=False)
    exec(cell, {})
    assert len(calls) == 1 and calls[0][-1] == f"spectralkd-tutorial @ git+https://github.com/{read_repo(REPO)}"
    assert "--upgrade" not in calls[0] and "-U" not in calls[0]  # pip keeps Colab's torch / ipywidgets
    said = capsys.readouterr().out
    assert said.strip() == "installed: datasets 3.0.0, spectralkd-tutorial 0.1.0"  # not torch, not ipywidgets
    exec(cell, {})  # the second run installs nothing
    assert len(calls) == 1 and "is installed already" in capsys.readouterr().out


def test_off_colab_the_install_cell_does_nothing(monkeypatch, capsys):
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    import subprocess

    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("installed off Colab"))
    exec(install_cell(read_repo(REPO)), {})
    assert capsys.readouterr().out == ""


def test_committed_results_are_found_alone_through_the_package(tmp_path, monkeypatch):
    """In a checkout the package's copy of assets/ is the repository's assets/ (one source);
    from an empty folder (a chapter opened alone) find_asset falls back to it."""
    assert published_root().resolve() == (REPO / "assets").resolve()
    monkeypatch.chdir(tmp_path)
    for relative in ("workshop/results.md", "study/results.json", "mpnet/intensity.json",
                     "workshop/teacher/intensity.json"):
        found = find_asset(relative)
        assert found is not None and found.read_bytes() == (REPO / "assets" / relative).read_bytes()
    assert find_asset("workshop/nope.json") is None and published("nope") is None
    (tmp_path / "assets" / "workshop").mkdir(parents=True)  # something published in the working folder wins
    (tmp_path / "assets" / "workshop" / "results.md").write_text("mine")
    assert find_asset("workshop/results.md").read_text() == "mine"
