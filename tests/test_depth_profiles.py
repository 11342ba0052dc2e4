"""Teachers of different depths (chapter 3, "A deeper model"): profiles from assets, normalised
depth, the side-by-side figure, and the table of the blocks each strategy picks.

The reference for every choice is :func:`spectralkd_tutorial.analysis.selection.select_layers` itself (and,
for ``spectral-topk``, a brute-force ranking); no table is written out by hand except where the
selection rule is plain arithmetic (``last``, ``uniform``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spectralkd_tutorial.analysis.selection import select_layers
from spectralkd_tutorial.analysis.spectral import LayerSpectra, SpectralProfile
from spectralkd_tutorial.pipelines.steps import choose_layers
from spectralkd_tutorial.course.text_analysis import (
    DEPTH_STRATEGIES,
    StrategyTable,
    find_asset,
    load_profile,
    normalised_depth,
    plot_depth_profiles,
    strategy_table,
)

# all-mpnet-base-v2 on 512 CLINC150 validation utterances (assets/mpnet), rounded: rises to block 4,
# stays high through block 11, collapses at block 12
MPNET = [0.00657, 0.00826, 0.00868, 0.00910, 0.00959, 0.00886, 0.00950, 0.00931, 0.00914, 0.00900, 0.00911,
         0.00868, 0.00392]
RISING = [0.021, 0.0267, 0.0264, 0.0266, 0.0293, 0.0284, 0.032]  # a 6-block teacher whose intensity rises


def _profile(intensities, name="teacher", width=8) -> SpectralProfile:
    layers = [LayerSpectra(layer=l, signature=[v] * width, intensity=v) for l, v in enumerate(intensities)]
    return SpectralProfile(model_name=name, layers=layers, num_samples=4, num_tokens=20, hidden_size=width)


def test_find_asset_looks_from_notebooks_then_the_root(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    (root / "assets" / "mpnet").mkdir(parents=True)
    target = root / "assets" / "mpnet" / "intensity.json"
    target.write_text("{}")
    monkeypatch.chdir(root / "notebooks")
    assert find_asset("mpnet/intensity.json").resolve() == target.resolve()
    monkeypatch.chdir(root)
    assert find_asset("mpnet/intensity.json").resolve() == target.resolve()
    assert find_asset("mpnet/missing.json") is None
    # nothing under the roots: the copy committed with the package (a chapter opened alone)
    from spectralkd_tutorial.common.published import published

    assert find_asset("mpnet/intensity.json", roots=[tmp_path]) == published("mpnet/intensity.json") is not None
    assert find_asset("mpnet/not-committed.json", roots=[tmp_path]) is None


def test_load_profile_round_trips_and_names_a_bad_file(tmp_path):
    profile = _profile(MPNET, "sentence-transformers/all-mpnet-base-v2")
    path = tmp_path / "intensity.json"
    path.write_text(json.dumps(profile.to_dict()))
    loaded = load_profile(path)
    assert loaded.intensities == pytest.approx(MPNET)
    assert loaded.model_name == profile.model_name and loaded.hidden_size == 8
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"intensities": [1.0]}))
    with pytest.raises(ValueError, match="bad.json: not a spectral profile"):
        load_profile(bad)
    with pytest.raises(FileNotFoundError):
        load_profile(tmp_path / "absent.json")


def test_committed_mpnet_profile_is_the_12_block_one():
    path = find_asset("mpnet/intensity_before_finetuning.json", roots=[Path(__file__).parents[1]])
    if path is None:
        pytest.skip("assets/mpnet/intensity_before_finetuning.json is not in this checkout")
    profile = load_profile(path)
    assert profile.hidden_size == 768 and len(profile.intensities) == 13 and profile.num_samples == 512
    np.testing.assert_allclose(profile.intensities, MPNET, atol=6e-6)


def test_normalised_depth_puts_every_last_block_at_one():
    np.testing.assert_allclose(normalised_depth(RISING), np.arange(7) / 6)
    np.testing.assert_allclose(normalised_depth(_profile(MPNET)), np.arange(13) / 12)
    assert normalised_depth(MPNET)[[0, 6, 12]].tolist() == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="layer 0"):
        normalised_depth([1.0])


def test_strategy_table_uses_the_selection_functions():
    table = strategy_table({"MPNet": _profile(MPNET), "rising": RISING, "not measured": None}, 4)
    assert isinstance(table, StrategyTable) and list(table.mappings) == ["MPNet", "rising"]
    assert table.missing == ("not measured",)
    assert table.summary().endswith("Not measured yet, so not in the table: not measured.")
    assert table.strategies == DEPTH_STRATEGIES
    for name, values in (("MPNet", MPNET), ("rising", RISING)):
        for strategy in DEPTH_STRATEGIES:
            assert table.mappings[name][strategy] == select_layers(strategy, 4, len(values) - 1, values)
            assert table.layers(name, strategy) == choose_layers(strategy, 4, len(values) - 1, values).teacher_layers
        ranked = sorted((np.argsort(-np.asarray(values[1:]), kind="stable")[:4] + 1).tolist())
        assert table.layers(name, "spectral-topk") == ranked
    assert table.layers("MPNet", "last") == [9, 10, 11, 12]
    assert table.layers("MPNet", "uniform") == [3, 6, 9, 12]
    assert table.blocks("MPNet") == 12 and table.blocks("rising") == 6
    assert table.total("MPNet", "last") == pytest.approx(sum(MPNET[9:13]))
    rows = table.rows()
    assert rows[0] == {"teacher profile": "MPNet", "blocks": 12, "uniform": "3, 6, 9, 12", "last": "9-12",
                       "first": "1-4", "spectral-topk": "4, 6-8", "spectral-ends": "1-4"}
    markdown = table.to_markdown()
    assert markdown.splitlines()[0].startswith("| teacher profile | blocks | uniform | last |")
    assert len(markdown.splitlines()) == 4


def test_the_sentence_says_where_the_spectral_rule_parts_ways():
    table = strategy_table({"MPNet": MPNET, "rising": RISING}, 3)
    # the rising 6-block teacher: spectral-topk = spectral-ends = last (the workshop teacher's case)
    assert table.layers("rising", "spectral-topk") == table.layers("rising", "last") == [4, 5, 6]
    assert not table.parts_ways("rising")
    assert table.sentence("rising").endswith("the spectral rule coincides with `last`.")
    assert "both pick 4-6 (= `last`)" in table.sentence("rising")
    # MPNet: middle blocks, not the last one
    assert table.parts_ways("MPNet")
    sentence = table.sentence("MPNet")
    assert "`spectral-topk` picks 4, 6, 7" in sentence and "`last` picks 10-12" in sentence
    assert "the spectral rule parts ways" in sentence and "leaves out block 12 (intensity rank 12 of 12)" in sentence
    gain = sum(MPNET[l] for l in (4, 6, 7)) / sum(MPNET[10:13]) - 1
    assert f"{gain:+.1%} total intensity vs `last`" in sentence
    summary = table.summary()
    assert summary.startswith("The spectral rule picks other blocks than `last`/`uniform` on MPNet "
                              "and coincides with them on rising.")
    assert summary.count("\n* ") == 2 and "Not measured" not in summary


def test_a_strategy_table_needs_a_profile_and_the_columns_it_compares():
    with pytest.raises(ValueError, match="no measured profile"):
        strategy_table({"MPNet": None})
    with pytest.raises(ValueError, match="at most|only|student has"):
        strategy_table({"rising": RISING}, 7)
    no_baseline = strategy_table({"rising": RISING}, 2, strategies=("first", "spectral-topk"))
    with pytest.raises(ValueError, match="last or uniform"):
        no_baseline.sentence("rising")


def test_plot_depth_profiles_draws_normalised_depth_and_names_what_is_missing():
    figure = plot_depth_profiles({
        "before fine-tuning": {"MiniLM": RISING, "MPNet": _profile(MPNET)},
        "after fine-tuning": {"MiniLM": RISING, "MPNet": None},
    })
    before, after = figure.axes
    (minilm, mpnet) = before.get_lines()
    np.testing.assert_allclose(minilm.get_xdata(), np.arange(7) / 6)
    np.testing.assert_allclose(mpnet.get_xdata(), np.arange(13) / 12)
    np.testing.assert_allclose(mpnet.get_ydata(), np.asarray(MPNET) / max(MPNET))
    assert max(mpnet.get_ydata()) == 1.0
    assert [t.get_text() for t in before.get_legend().get_texts()] == ["MiniLM (6 blocks)", "MPNet (12 blocks)"]
    assert len(after.get_lines()) == 1 and any("not measured: MPNet" in t.get_text() for t in after.texts)
    assert minilm.get_color() == after.get_lines()[0].get_color()  # one colour per teacher in every panel
    absolute = plot_depth_profiles({"before": {"MPNet": MPNET}}, relative=False)
    np.testing.assert_allclose(absolute.axes[0].get_lines()[0].get_ydata(), MPNET)
    with pytest.raises(ValueError, match="no panels"):
        plot_depth_profiles({})
