"""The notebook stress tool tells a stall (kernel idle when the cell timed out) from a slow cell
(kernel busy) and from an error, and counts them per ipykernel version."""

from __future__ import annotations

import sys

import nbformat
import pytest

pytest.importorskip("nbclient")


def notebook(path, *sources: str):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), path)
    return path


@pytest.mark.parametrize("source, outcome", [
    ("import time; time.sleep(60)", "stall"),  # idle kernel at the timeout: what a stall looks like
    ("while True: pass", "slow"),  # busy kernel at the timeout
    ("1 / 0", "error"),
])
def test_execute_once_tells_stalls_from_slow_cells_and_errors(tmp_path, source, outcome):
    from spectralkd_tutorial.tools.notebook_stress import execute_once

    path = notebook(tmp_path / "nb.ipynb", "x = 1", source, "y = 2")
    result = execute_once(path, "python3", "quick", cell_timeout=6, idle_window=3)
    assert result["outcome"] == outcome and result["cell"] == 1, result
    if outcome == "error":
        assert "ZeroDivisionError" in result["traceback"] and "\x1b[" not in result["traceback"]
    if outcome == "stall":
        assert result["kernel_cpu_in_window_s"] < 0.05 and result["kernel_state"] == "S"
    if outcome == "slow":
        assert result["kernel_cpu_in_window_s"] > 0.1


def test_stress_counts_per_kernel_version(tmp_path, capsys):
    import json

    from spectralkd_tutorial.tools.notebook_stress import main

    ok = notebook(tmp_path / "ok.ipynb", "x = 1")
    out = tmp_path / "stress.json"
    assert main([str(ok), "--runs", "2", "--cell-timeout", "60", "--kernel-python", sys.executable,
                 "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    import ipykernel

    assert [(e["ipykernel"], e["outcome"], e["repeat"]) for e in record["executions"]] == \
        [(ipykernel.__version__, "ok", 0), (ipykernel.__version__, "ok", 1)]
    assert f"| {ipykernel.__version__} | ok.ipynb | 2 | 2 | 0 | 0 | 0 | 0% | " in capsys.readouterr().out


def test_an_idle_wait_that_ends_before_the_timeout_is_measured(tmp_path):
    from spectralkd_tutorial.tools.notebook_stress import execute_once

    path = notebook(tmp_path / "nb.ipynb", "x = 1", "import time; time.sleep(4)", "y = 2")
    result = execute_once(path, "python3", "quick", cell_timeout=60)
    assert result["outcome"] == "ok" and result["idle_gap_cell"] == 1 and 3.5 < result["idle_gap_s"] < 30
