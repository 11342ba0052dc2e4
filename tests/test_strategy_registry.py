"""A strategy registered by a user works everywhere a built-in one does: selection, the config, the
CLI's ``--strategies`` and the grid (the registry is the single source of the strategy names)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace

import pytest

from spectralkd_tutorial.analysis.selection import (SPECTRAL_STRATEGIES, STRATEGIES, STRATEGY_REGISTRY, all_mappings,
                                                    register_strategy, select_layers)
from spectralkd_tutorial.cli.app import main

QUICK = ["--preset", "quick", "--no-progress"]


def middle_reference(num_teacher_layers: int, k: int) -> list[int]:
    """The K blocks at the centre of 1..L_T, written out by hand (a naive loop)."""
    start = (num_teacher_layers - k) // 2 + 1
    layers = []
    for i in range(k):
        layers.append(start + i)
    return layers


@pytest.fixture
def middle():
    """The strategy ``middle`` (the K central blocks), registered for one test and removed after it."""

    def choose(candidates, k, total, scores, seed):
        start = (len(candidates) - k) // 2
        return candidates[start:start + k], {}

    register_strategy("middle")(choose)
    yield "middle"
    STRATEGY_REGISTRY.pop("middle", None)


@pytest.fixture(autouse=True)
def offline_cache(tmp_path_factory, monkeypatch):
    """Offline, with this module's own cache of tiny checkpoints."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("SPECTRALKD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "strategy-registry-cache"))


def test_a_registered_strategy_is_selected_and_listed(middle):
    mapping = select_layers(middle, 2, 6)
    assert mapping.teacher_layers == middle_reference(6, 2) == [3, 4]
    assert mapping.student_layers == [1, 2]
    assert middle in STRATEGIES and middle not in SPECTRAL_STRATEGIES
    assert all_mappings(3, 12, None, rms=None)[middle].teacher_layers == middle_reference(12, 3)


def test_a_registered_strategy_is_accepted_by_the_config(middle):
    from spectralkd_tutorial.config.presets import get_preset
    from spectralkd_tutorial.config.sections import RunConfig

    config = get_preset("quick", **{"grid.strategies": ["none", middle]})
    assert config.grid.strategies == ("none", middle)
    assert RunConfig.from_dict(config.to_dict()).grid.strategies == ("none", middle)


def test_an_unregistered_strategy_is_refused_by_the_config():
    from spectralkd_tutorial.config.presets import get_preset

    with pytest.raises(ValueError, match="unknown strategy \\['middle'\\]"):
        get_preset("quick", **{"grid.strategies": ["none", "middle"]})
    for name in ("middle", "none"):  # unregistered, or one that copies no block
        with pytest.raises(ValueError, match=f"student.init='{name}': choose a strategy that picks teacher blocks"):
            get_preset("quick", **{"student.init": name})


def test_a_registered_strategy_can_initialise_the_student(middle):
    from spectralkd_tutorial.config.presets import get_preset

    assert get_preset("quick", **{"student.init": middle}).student.init == middle


def test_a_registered_strategy_runs_in_the_grid_from_the_cli(middle, tmp_path, capsys):
    out = tmp_path / "grid"
    code = main(["experiment", *QUICK, "--strategies", "none", middle, "--seeds", "0", "--epochs", "1",
                 "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    results = json.loads((out / "results.json").read_text())
    runs = {r["strategy"]: r for r in results["runs"]}
    assert set(runs) == {"none", middle}
    student_layers = results["config"]["student"]["model"].split(":")[1]
    expected = middle_reference(results["teacher"]["layers"], int(student_layers))
    assert runs[middle]["mapping"]["teacher_layers"] == expected
    assert runs[middle]["mapping"]["pairs"] == [[i + 1, t] for i, t in enumerate(expected)]
    assert runs["none"]["mapping"]["teacher_layers"] == []
    assert f"| {middle} |" in (Path(out) / "results.md").read_text()


def test_the_grid_default_is_the_presets_list():
    from spectralkd_tutorial.config import presets
    from spectralkd_tutorial.config.sections import GridConfig, RunConfig

    assert GridConfig().strategies is presets.ABLATION_STRATEGIES  # one value, not an equal copy
    assert RunConfig().grid.strategies is presets.ABLATION_STRATEGIES
    assert presets.get_preset("quick").grid.strategies == presets.ABLATION_STRATEGIES
    assert presets.WORKSHOP_STRATEGIES[:len(presets.ABLATION_STRATEGIES)] == presets.ABLATION_STRATEGIES


def test_the_grid_draws_a_seeded_strategy_again_for_every_seed():
    from spectralkd_tutorial.pipelines.experiment import Grid

    def draw(seed: int) -> list[int]:  # the reference: 2 of blocks 1..8, drawn with seed + 100
        return sorted(random.Random(seed + 100).sample(range(1, 9), 2))

    register_strategy("shuffled", seeded=True)(lambda candidates, k, total, scores, seed: (draw(seed), {}))
    try:
        grid = Grid.__new__(Grid)  # only what Grid.mapping reads: no teacher, no training
        grid.k, grid.total, grid.profile = 2, 8, SimpleNamespace(intensities=None, rms=None)
        grid.config = SimpleNamespace(grid=SimpleNamespace(strategies=("none", "shuffled")))
        grid.mappings = all_mappings(2, 8, None, grid.config.grid.strategies, seed=0)
        assert grid.any_seeded
        assert [grid.mapping("shuffled", seed).teacher_layers for seed in range(6)] == [draw(s) for s in range(6)]
        assert len({tuple(draw(s)) for s in range(6)}) > 1  # the seeds do draw different layers
    finally:
        STRATEGY_REGISTRY.pop("shuffled", None)
