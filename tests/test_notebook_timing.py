"""``notebook_tools time``: seconds per chapter in fresh kernels, the preset in the kernel, failures named."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from spectralkd_tutorial.tools.notebook_timing import timings_table
from spectralkd_tutorial.tools.notebook_tools import has_outputs, main

pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def _notebook(path: Path, *sources: str) -> Path:
    nbformat.write(new_notebook(cells=[new_markdown_cell("# a chapter"), *map(new_code_cell, sources)]), path)
    return path


def test_time_records_seconds_preset_and_a_failing_chapter(tmp_path, capsys):
    sleeps = _notebook(tmp_path / "01_sleeps.ipynb",
                       "import os, time",
                       "assert os.environ['SPECTRALKD_PRESET'] == 'workshop', os.environ.get('SPECTRALKD_PRESET')",
                       "time.sleep(1.0)",
                       "start = time.process_time()\nwhile time.process_time() - start < 0.5:\n    pass")
    fails = _notebook(tmp_path / "02_fails.ipynb", "x = 1", "raise ValueError('chapter two is broken')", "y = 2")
    out = tmp_path / "timings" / "workshop.json"

    status = main(["time", str(sleeps), str(fails), "--preset", "workshop", "--out", str(out),
                   "--conditions", "a test"])

    assert status == 1  # one chapter failed
    assert "02_fails.ipynb failed at cell 2: ValueError: chapter two is broken" in capsys.readouterr().err
    record = json.loads(out.read_text())
    first, second = record["chapters"]
    assert first["notebook"] == "01_sleeps.ipynb" and first["ok"] and first["error"] is None
    assert 1.5 <= first["seconds"] < 120  # it slept 1 s and computed 0.5 s in a kernel that saw the preset
    assert 0.5 <= first["cpu_seconds"] <= first["seconds"]  # the kernel's CPU time: the loop, not the sleep
    assert not second["ok"] and second["error"] == "cell 2: ValueError: chapter two is broken"
    assert record["preset"] == "workshop" and record["conditions"].startswith("a test (load average")
    assert record["seconds_total"] == pytest.approx(first["seconds"] + second["seconds"], abs=0.11)
    assert record["cpu_seconds_total"] == pytest.approx(first["cpu_seconds"] + second["cpu_seconds"], abs=0.11)
    machine = record["machine"]
    assert machine["cores"] >= 1 and len(machine["load_average_1_5_15_after"]) == 3 and machine["torch"]
    assert not list(out.parent.glob(".*tmp"))  # written atomically
    table = out.with_suffix(".md").read_text()
    assert "| 01_sleeps |" in table and "**failed** (cell 2: ValueError: chapter two is broken)" in table
    assert table == timings_table(record)
    assert has_outputs(sleeps) == [] and has_outputs(fails) == []  # the notebooks themselves are not written

    assert main(["timings-table", str(out)]) == 0
    assert capsys.readouterr().out == table


def test_a_kernel_that_dies_is_a_failed_chapter_and_the_next_one_still_runs(tmp_path):
    dies = _notebook(tmp_path / "01_dies.ipynb", "import os\nos._exit(1)", "x = 1")
    fine = _notebook(tmp_path / "02_fine.ipynb", "x = 1")

    assert main(["time", str(dies), str(fine), "--out", str(tmp_path / "quick.json")]) == 1
    first, second = json.loads((tmp_path / "quick.json").read_text())["chapters"]
    assert not first["ok"] and first["error"].startswith("DeadKernelError"), first["error"]
    assert second["ok"]


def test_time_missing_notebook_is_an_error(tmp_path, capsys):
    assert main(["time", str(tmp_path / "nope.ipynb")]) == 2
    assert "no such notebook" in capsys.readouterr().err


def test_committed_quick_timings_are_what_the_guide_shows():
    root = Path(__file__).resolve().parents[1]
    record = json.loads((root / "assets" / "timings" / "quick.json").read_text())
    chapters = sorted(path.name for path in (root / "notebooks").glob("*.ipynb"))
    assert [chapter["notebook"] for chapter in record["chapters"]] == chapters
    assert all(chapter["ok"] for chapter in record["chapters"]) and record["conditions"]
    assert (root / "assets" / "timings" / "quick.md").read_text() == timings_table(record)  # regenerated together
    guide = (root / "docs" / "workshop.md").read_text()
    assert "```{include} ../assets/timings/quick.md" in guide
    assert "\nworkshop\n" in (root / "docs" / "index.md").read_text()  # in the book's table of contents
