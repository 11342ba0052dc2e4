"""Each chapter opened alone, from the built wheel: the one nbval run of the notebooks.

What a learner gets from the *Open in Colab* badge or a downloaded notebook: the package installed
from a wheel (not this checkout), one notebook in an otherwise empty folder, no ``../shared``, no
``SPECTRALKD_DATA_DIR``, ``HF_HUB_OFFLINE=1``. The wheel is built from this checkout
(``pip wheel --no-deps``: the committed results in ``assets/`` become package data), installed
non-editable into fresh virtual environments, and each notebook is copied alone into an empty folder
and run there under nbval (``python -m pytest --nbval-lax --nbval-current-env``, the kernel in that
environment). On ``quick`` the data are the embedded set; chapters 4 and 6 must show the committed
workshop grid and study, read from the package.

Two environments, so that no chapter runs twice: chapters 1-3 (the widget explorers) and the widget
unit tests run with ipywidgets 7.7.1, what Colab ships; chapters 4-6 with the ipywidgets the
project resolves (8.x), which chapters 1-3 also meet in the book build (``test_book.py``) and the
browser test (``test_browser_widgets.py``). To stay within CI's time, an environment gets only the
wheel (``--no-deps``) and, for the first, ipywidgets 7.7.1 (from PyPI): the other dependencies are
the test environment's, reached through a ``.pth`` line that puts its site-packages *after* the
environment's own (installing them afresh took 6 minutes per environment on the CI machine).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = {path.name: path for path in sorted((REPO / "notebooks").glob("*.ipynb"))}
WIDGET_CHAPTERS = [name for name in NOTEBOOKS if name[:2] in ("01", "02", "03")]
OTHER_CHAPTERS = [name for name in NOTEBOOKS if name not in WIDGET_CHAPTERS]
COLAB_IPYWIDGETS = ["ipywidgets==7.7.1", "ipython_genutils==0.2.0"]  # 7.x imports ipython_genutils
# the widget unit tests: all of test_phasor_widget.py, the explorers' tests of the other two (one pytest run)
WIDGET_TESTS = (["test_phasor_widget.py", "test_text_analysis.py", "test_vision.py"], "test_phasor_widget or explorer")
SETUP_TIMEOUT_S = 600
NOTEBOOK_TIMEOUT_S = 1200

# Records each executed cell's outputs (nbval keeps them on the test item) into outputs.json.
_OUTPUT_PLUGIN = '''
import json, os
import pytest

OUTPUTS = []

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield
    OUTPUTS.extend(getattr(item, "test_outputs", None) or [])

def pytest_sessionfinish(session):
    with open(os.path.join(os.path.dirname(__file__), "outputs.json"), "w") as f:
        json.dump(OUTPUTS, f)
'''

pytestmark = pytest.mark.slow


def _run(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, (f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
                                    f"{result.stdout[-6000:]}\n{result.stderr[-4000:]}")
    return result


def _shared(tmp_path_factory, worker_id: str) -> Path:
    """A folder all test workers of this session see (xdist: the session's base temp folder)."""
    if worker_id == "master":
        return tmp_path_factory.getbasetemp()
    return tmp_path_factory.getbasetemp().parent


def _once(folder: Path, name: str, make) -> Path:
    """``folder/name``, made by ``make(path)`` by whichever worker gets there first."""
    from filelock import FileLock

    with FileLock(str(folder / f"{name}.lock")):
        path = folder / name
        if not (path / ".done").exists():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True)
            make(path)
            (path / ".done").touch()
    return path


@pytest.fixture(scope="session")
def wheel(tmp_path_factory, worker_id) -> Path:
    def build(out: Path) -> None:
        # from a copy of what the wheel is made of: setuptools' build/ never lands in the checkout, and a
        # stale build/lib never lands in the wheel (the link resources/assets -> ../../assets is kept)
        source = out / "source"
        source.mkdir()
        for name in ("pyproject.toml", "README.md", "spectralkd_tutorial", "assets"):
            copy = shutil.copytree if (REPO / name).is_dir() else shutil.copy
            copy(REPO / name, source / name, **({"symlinks": True, "ignore": shutil.ignore_patterns("__pycache__")}
                                                if copy is shutil.copytree else {}))
        # with this environment's setuptools when it has one (seconds); else pip's isolated build (PyPI)
        isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
        _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", "-w", str(out), str(source)],
             SETUP_TIMEOUT_S)

    wheels = list(_once(_shared(tmp_path_factory, worker_id), "wheel", build).glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def _environment(tmp_path_factory, worker_id, wheel: Path, name: str, extra: list[str]) -> Path:
    """A fresh virtual environment with the wheel (and ``extra``) of its own; its python."""
    def make(path: Path) -> None:
        _run([sys.executable, "-m", "venv", "--without-pip", str(path)], SETUP_TIMEOUT_S)
        python = path / "bin" / "python"
        purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], 60)
        Path(purelib.stdout.strip(), "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
        # --ignore-installed: pip sees the test environment through the .pth line; it must install here, never
        # uninstall there
        pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--ignore-installed",
               "-q"]
        _run(pip + [str(wheel)] + extra, SETUP_TIMEOUT_S)

    return _once(_shared(tmp_path_factory, worker_id), name, make) / "bin" / "python"


def _env(python: Path) -> dict[str, str]:
    """A learner's environment: offline, no data directory, nothing from this checkout on the path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "SPECTRALKD_DATA_DIR", "VIRTUAL_ENV", "SPECTRALKD_PRESET")}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", MPLBACKEND="Agg",
               OMP_NUM_THREADS="1", PATH=f"{python.parent}{os.pathsep}{env.get('PATH', '')}")
    return env


def _installed(python: Path, cwd: Path) -> dict[str, str]:
    """The ipywidgets version ``python`` imports; fails unless the package it imports is the wheel's."""
    probe = ("import json, ipywidgets, spectralkd_tutorial as s; "
             "print(json.dumps({'package': s.__file__, 'ipywidgets': ipywidgets.__version__}))")
    where = json.loads(_run([str(python), "-c", probe], 120, cwd=cwd, env=_env(python)).stdout)
    assert Path(where["package"]).is_relative_to(python.parent.parent), f"not the wheel's package: {where}"
    return where


def _alone(python: Path, notebook: str, tmp_path: Path) -> str:
    """Run ``notebook`` alone in an empty folder under nbval; the text of all its outputs."""
    (tmp_path / "conftest.py").write_text(_OUTPUT_PLUGIN)
    folder = tmp_path / "alone"
    folder.mkdir()
    shutil.copy(NOTEBOOKS[notebook], folder / notebook)
    _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
          "--nbval-lax", "--nbval-current-env", str(folder / notebook)], NOTEBOOK_TIMEOUT_S,
         cwd=folder, env=_env(python))
    outputs = json.loads((tmp_path / "outputs.json").read_text())
    return "\n".join(json.dumps(output) for output in outputs)


def _committed_none_accuracy() -> str:
    """The workshop grid's in-scope accuracy of ``none`` (mean over seeds, in %), from results.json."""
    grid = json.loads((REPO / "assets" / "workshop" / "results.json").read_text())
    values = [r["test"]["in_scope_accuracy"] for r in grid["runs"] if r["strategy"] == "none"]
    return f"{100 * sum(values) / len(values):.2f}"


def _committed_c5_line() -> str:
    lines = (REPO / "assets" / "study" / "study.md").read_text().splitlines()
    return next(line for line in lines if line.startswith("- **C5** "))


class TestWithColabsIpywidgets:
    """ipywidgets 7.7.1: the widget unit tests, and chapters 1-3 alone from the wheel."""

    @pytest.fixture(scope="class")
    def python(self, tmp_path_factory, worker_id, wheel) -> Path:
        python = _environment(tmp_path_factory, worker_id, wheel, "venv-ipywidgets-7.7.1", COLAB_IPYWIDGETS)
        assert _installed(python, tmp_path_factory.getbasetemp())["ipywidgets"] == "7.7.1"
        return python

    def test_widget_unit_tests(self, python, tmp_path):
        files, keyword = WIDGET_TESTS
        result = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", keyword,
                       *(str(REPO / "tests" / name) for name in files)],
                      NOTEBOOK_TIMEOUT_S, cwd=tmp_path, env=_env(python))  # exit 5 (none collected) fails too
        assert " passed" in result.stdout and "skipped" not in result.stdout, result.stdout[-2000:]

    @pytest.mark.parametrize("notebook", WIDGET_CHAPTERS)
    def test_chapter_alone(self, python, notebook, tmp_path):
        _alone(python, notebook, tmp_path)


class TestWithResolvedIpywidgets:
    """The ipywidgets the project resolves: chapters 4-6 alone from the wheel, with the committed results."""

    @pytest.fixture(scope="class")
    def python(self, tmp_path_factory, worker_id, wheel) -> Path:
        python = _environment(tmp_path_factory, worker_id, wheel, "venv", [])
        _installed(python, tmp_path_factory.getbasetemp())
        return python

    @pytest.mark.parametrize("notebook", OTHER_CHAPTERS)
    def test_chapter_alone(self, python, notebook, tmp_path):
        text = _alone(python, notebook, tmp_path)
        if notebook.startswith("04"):
            assert f"| none | none (logits only) | {_committed_none_accuracy()} " in text, \
                "chapter 4 opened alone does not show the committed workshop grid"
        if notebook.startswith("06"):
            assert json.dumps(_committed_c5_line())[1:-1] in text, "chapter 6 opened alone does not show the study"


def test_every_chapter_runs_alone_once():
    assert sorted(WIDGET_CHAPTERS + OTHER_CHAPTERS) == sorted(NOTEBOOKS) and len(NOTEBOOKS) == 6
    assert not set(WIDGET_CHAPTERS) & set(OTHER_CHAPTERS)


def test_the_wheel_carries_the_committed_results(wheel):
    """assets/ (JSON, Markdown, PNG) is package data of the wheel, byte for byte: copied from the one source."""
    import zipfile

    prefix = "spectralkd_tutorial/resources/assets/"
    with zipfile.ZipFile(wheel) as archive:
        carried = {name[len(prefix):]: archive.read(name) for name in archive.namelist() if name.startswith(prefix)}
    committed = {path.relative_to(REPO / "assets").as_posix(): path.read_bytes()
                 for path in (REPO / "assets").rglob("*") if path.suffix in (".json", ".md", ".png")}
    assert committed and carried.keys() == committed.keys()
    assert all(carried[name] == committed[name] for name in committed)
