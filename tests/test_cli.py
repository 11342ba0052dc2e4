"""The command line: `spectralkd analyze --preset quick` on the embedded default, and clear errors."""

from __future__ import annotations

import json

import pytest

from spectralkd_tutorial.cli.app import main


def test_analyze_quick_writes_json_and_png(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPECTRALKD_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    assert main(["analyze", "--preset", "quick", "--out", str(out), "--no-progress"]) == 0
    data = json.loads((out / "intensity.json").read_text())
    assert (out / "intensity.png").stat().st_size > 1000
    assert data["layers"] == list(range(len(data["intensities"])))
    assert len(data["intensities"]) == 5  # tiny-roberta: embeddings + 4 blocks
    assert all(len(s) == data["hidden_size"] for s in data["signatures"])
    assert data["num_samples"] == 64 and data["num_tokens"] > data["num_samples"]
    assert "layer 0 = embedding output" in data["convention"]
    assert all(abs(sum(s) / len(s) - i) < 1e-9 for s, i in zip(data["signatures"], data["intensities"]))
    assert "intensity.png" in capsys.readouterr().out


def test_unknown_preset_and_missing_model_are_clear(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit):
        main(["analyze", "--preset", "huge", "--out", str(tmp_path)])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = main(["analyze", "--preset", "quick", "--model", "no-such-org/no-such-model", "--out", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "no-such-org/no-such-model" in err and "HF_HUB_OFFLINE" in err


def test_bench_teacher_times_another_model_and_its_student(capsys):
    """`bench teacher --model M --student-layers K` prints the figures used to size a study condition."""
    assert main(["bench", "teacher", "--preset", "quick", "--model", "tiny-bert", "--steps", "1",
                 "--student-layers", "2"]) == 0
    out = capsys.readouterr().out
    assert "tiny-bert on embedded" in out and "student of blocks [2, 4] on embedded" in out
    assert out.count("ms/step") == 2
