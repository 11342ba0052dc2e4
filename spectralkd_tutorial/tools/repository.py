"""Where the repository lives: one address (``[project.urls] Repository`` in ``pyproject.toml``) and
everything written from it -- each chapter's *Open in Colab* / *Binder* badges (its first cell), its
Colab install cell (its second cell), the README's badges and the book's repository button.

    python -m spectralkd_tutorial.tools.notebook_tools set-repo OWNER/NAME   # a fork: rewrite them all
    python -m spectralkd_tutorial.tools.notebook_tools check-repo            # exit 1 where one disagrees
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from ..common.io import atomic_write_text

__all__ = ["BRANCH", "badges", "check_repo", "install_cell", "read_repo", "set_repo"]

BRANCH = "main"
_REPO = r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*"
# every place an address is written: (pattern with one group = OWNER/NAME)
_ADDRESSES = [
    rf"colab\.research\.google\.com/github/({_REPO})/blob/",
    rf"mybinder\.org/v2/gh/({_REPO})/",
    rf"git\+https://github\.com/({_REPO})(?=[\"'@#\s)]|$)",
]
_URLS = re.compile(r'(^\s*Repository\s*=\s*")https://github\.com/([^"]+)(")', re.M)
_NOTEBOOK_LINK = re.compile(r"\(https://colab\.research\.google\.com/github/[^)]*/notebooks/([^)/]+\.ipynb)\)")


def read_repo(root: str | Path) -> str:
    """``OWNER/NAME`` from ``[project.urls] Repository`` of ``root/pyproject.toml``."""
    path = Path(root) / "pyproject.toml"
    url = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {}).get("urls", {}).get("Repository", "")
    match = re.fullmatch(rf"https://github\.com/({_REPO})/?", url)
    if not match:
        raise ValueError(f"{path}: [project.urls] Repository = {url!r}; expected https://github.com/OWNER/NAME")
    return match.group(1)


def _check_name(repo: str) -> str:
    if not re.fullmatch(_REPO, repo):
        raise ValueError(f"repository {repo!r}: expected OWNER/NAME as on GitHub, e.g. my-org/spectralkd-tutorial")
    return repo


def badges(repo: str, notebook: str) -> str:
    """The badge line of a chapter's first cell: open ``notebooks/<notebook>`` in Colab, or in Binder."""
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{repo}/blob/{BRANCH}/notebooks/{notebook}) "
            f"[![Binder](https://mybinder.org/badge_logo.svg)]"
            f"(https://mybinder.org/v2/gh/{repo}/{BRANCH}?labpath=notebooks%2F{notebook})")


def install_cell(repo: str) -> str:
    """Every chapter's second cell: on Colab only, install the package once, keeping Colab's stack."""
    return f'''# Colab only: install the tutorial package (elsewhere, install it with `pip install -e .`). Safe to rerun.
# pip keeps Colab's own torch, ipywidgets and Jupyter (they satisfy the package); the cell prints what it installed.
import sys

if "google.colab" in sys.modules:
    import subprocess
    from importlib import metadata

    try:
        print("spectralkd-tutorial", metadata.version("spectralkd-tutorial"), "is installed already")
    except metadata.PackageNotFoundError:
        before = {{(d.metadata["Name"] or "").lower(): d.version for d in metadata.distributions()}}
        subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                        "spectralkd-tutorial @ git+https://github.com/{repo}"], check=True)
        after = {{(d.metadata["Name"] or "").lower(): d.version for d in metadata.distributions()}}
        print("installed:", ", ".join(f"{{name}} {{version}}" + (f" (was {{before[name]}})" if name in before else "")
                                      for name, version in sorted(after.items()) if before.get(name) != version))'''


def _files(root: Path) -> list[Path]:
    """The text files that may carry the address (besides pyproject.toml and the notebooks)."""
    named = [root / "README.md", root / "ARCHITECTURE.md", root / "CONTRIBUTING.md", root / "docs" / "conf.py"]
    return [p for p in named + sorted((root / "docs").glob("*.md")) if p.is_file()]


def _notebooks(root: Path) -> list[Path]:
    return sorted((root / "notebooks").glob("*.ipynb"))


def _rewrite_text(text: str, old: str, new: str) -> str:
    for pattern in _ADDRESSES:
        text = re.sub(pattern, lambda m: m.group(0).replace(m.group(1), new), text)
    return text.replace(f"https://github.com/{old}", f"https://github.com/{new}")


def set_repo(root: str | Path, repo: str) -> list[Path]:
    """Write ``repo`` (``OWNER/NAME``) into pyproject.toml, every badge, install cell and link; the files changed."""
    root, repo = Path(root), _check_name(repo)
    old = read_repo(root)
    changed = []
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    new_text = _URLS.sub(lambda m: f"{m.group(1)}https://github.com/{repo}{m.group(3)}", text)
    new_text = new_text.replace(f"https://github.com/{old}", f"https://github.com/{repo}")
    for path, before, after in [(pyproject, text, new_text)] + [
            (p, p.read_text(encoding="utf-8"), None) for p in _files(root)]:
        after = after if after is not None else _rewrite_text(before, old, repo)
        if after != before:
            atomic_write_text(path, after)
            changed.append(path)
    for path in _notebooks(root):
        raw = path.read_text(encoding="utf-8")
        notebook = json.loads(raw)
        first, second = notebook["cells"][0], notebook["cells"][1]
        lines = "".join(first["source"]).split("\n")
        lines = [badges(repo, path.name) if "colab-badge.svg" in line else line for line in lines]
        first["source"] = _source("\n".join(lines))
        second["source"] = _source(install_cell(repo))
        for cell in notebook["cells"][2:]:  # links in the chapter's text (e.g. to docs/ on GitHub)
            text = "".join(cell["source"])
            if _rewrite_text(text, old, repo) != text:
                cell["source"] = _source(_rewrite_text(text, old, repo))
        text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
        if text != raw:
            atomic_write_text(path, text)
            changed.append(path)
    return changed


def _source(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def check_repo(root: str | Path) -> list[str]:
    """Where an address disagrees with pyproject.toml's: one line each, [] when all agree."""
    root = Path(root)
    repo = read_repo(root)
    problems = []
    for path in _files(root) + _notebooks(root):
        text = path.read_text(encoding="utf-8")
        # and any github.com link to a repository of this name (or the original's) under another owner
        names = "|".join(re.escape(n) for n in {repo.split("/")[1], "spectralkd-tutorial"})
        for pattern in _ADDRESSES + [rf"https://github\.com/([A-Za-z0-9_.-]+/(?:{names}))(?![\w.-])"]:
            problems += [f"{path.relative_to(root)}: {m.group(0)!r} names {m.group(1)}, not {repo}"
                         for m in re.finditer(pattern, text) if m.group(1) != repo]
        for link in _NOTEBOOK_LINK.findall(text):
            if not (root / "notebooks" / link).is_file():
                problems.append(f"{path.relative_to(root)}: a badge opens notebooks/{link}, which does not exist")
    for path in _notebooks(root):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        if badges(repo, path.name) not in "".join(cells[0]["source"]).split("\n"):
            problems.append(f"notebooks/{path.name}: the first cell lacks the badges `{badges(repo, path.name)}`")
        if "".join(cells[1]["source"]) != install_cell(repo):
            problems.append(f"notebooks/{path.name}: the second cell is not the install cell for {repo}")
    return problems
