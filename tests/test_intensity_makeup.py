"""What the intensity is made of, against float64 NumPy references and known spectra.

White noise must sit at I/RMS = sqrt(pi/4H) with a flat signature; a signal smooth along the channels
must put its energy in the low bins; a layer scaled x2 must double I and RMS and leave I/RMS alone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spectralkd_tutorial.analysis.intensity_makeup import (flatness, intensity_vs_rms, low_bin_trend, makeup_sentences,
                                                  selection_agreement, white_noise_ratio)
from spectralkd_tutorial.analysis.spectral import LayerSpectra, SpectralAccumulator, SpectralProfile


def profile_of(layers: list[np.ndarray]) -> SpectralProfile:
    """A profile of token arrays ``(N, T, H)`` through the streaming accumulator (no padding)."""
    spectra = []
    for index, x in enumerate(layers):
        accumulator = SpectralAccumulator()
        accumulator.update(torch.from_numpy(x))
        spectra.append(LayerSpectra(index, accumulator.signature().tolist(), accumulator.intensity(), accumulator.rms()))
    n, t, h = layers[0].shape
    return SpectralProfile("synthetic", spectra, n, n * t, h)


def numpy_reference(x: np.ndarray) -> tuple[float, float, np.ndarray]:
    """(I, RMS, signature) by an explicit float64 DFT matrix."""
    h = x.shape[-1]
    dft = np.exp(-2j * np.pi * np.outer(np.arange(h), np.arange(h)) / h)
    amplitude = np.abs(x.reshape(-1, h) @ dft) / h
    signature = amplitude.mean(axis=0)
    return float(signature.mean()), float(np.sqrt((x ** 2).mean())), signature


def test_white_noise_sits_at_the_rayleigh_yardstick_and_is_flat():
    rng = np.random.default_rng(0)
    h = 64
    profile = profile_of([rng.normal(size=(40, 50, h)) * s for s in (0.5, 2.0)])
    rows = intensity_vs_rms(profile)
    for row in rows:
        assert row["I/RMS"] == pytest.approx(white_noise_ratio(h), rel=0.02)  # k = 0, H/2 differ: ~2/64 of bins
        assert row["I/RMS over white noise"] == pytest.approx(1.0, rel=0.02)
    assert rows[1]["RMS"] / rows[0]["RMS"] == pytest.approx(4.0, rel=0.02)
    for row in flatness(profile):
        assert row["cv"] < 0.05 and row["low"] == pytest.approx(1.0, abs=0.05)
    assert white_noise_ratio(384) == pytest.approx(math.sqrt(math.pi / 1536))


def test_against_a_float64_dft_and_a_smooth_signal_tilts_to_the_low_bins():
    rng = np.random.default_rng(1)
    h = 32
    channels = np.arange(h)
    smooth = np.cos(2 * np.pi * channels / h)[None, None, :] * rng.normal(size=(10, 7, 1)) + 0.05 * rng.normal(size=(10, 7, h))
    profile = profile_of([smooth])
    i_ref, rms_ref, signature = numpy_reference(smooth)
    row = intensity_vs_rms(profile)[0]
    assert row["I"] == pytest.approx(i_ref, rel=1e-10) and row["RMS"] == pytest.approx(rms_ref, rel=1e-12)
    half = signature[1 : h // 2 + 1]
    expected = {"cv": half.std() / half.mean(), "low": half[:2].mean() / half.mean(), "high": half[-2:].mean() / half.mean()}
    got = flatness(profile)[0]
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-6)  # profile.signatures is a float32 tensor
    assert got["low"] > 3 and got["high"] < 0.5


def test_scaling_a_layer_moves_both_rankings_and_the_agreement_table_says_so():
    rng = np.random.default_rng(2)
    base = [rng.normal(size=(8, 6, 16)) for _ in range(5)]
    base[2] *= 3.0  # block 2 is the largest by far
    profile = profile_of(base)
    table = selection_agreement({"noise": profile, "missing": None}, 1)
    assert table.rows[0]["spectral-topk"] == table.rows[0]["norm-topk"] == [2] and table.rows[0]["same"]
    assert len(table.rows) == 1 and "| noise | 4 | [2] | [2] | yes |" in table.to_markdown()
    no_rms = SpectralProfile.from_dict({k: v for k, v in profile.to_dict().items() if k != "rms"})
    assert intensity_vs_rms(no_rms) is None
    table = selection_agreement({"old file": no_rms}, 2)
    assert table.rows[0]["norm-topk"] is None and "RMS not recorded" in table.to_markdown()
    text = makeup_sentences({"noise": intensity_vs_rms(profile), "old file": None}, {"noise": flatness(profile)},
                            selection_agreement({"noise": profile}, 2))
    assert "no per-layer RMS" in text and "for 1 of 1 profiles" in text


def test_low_bin_trend_is_the_spearman_correlation_with_depth():
    rng = np.random.default_rng(3)
    h = 32
    channels = np.arange(h)
    layers = [rng.normal(size=(6, 5, h)) + w * np.cos(2 * np.pi * channels / h) * rng.normal(size=(6, 5, 1))
              for w in (0.0, 1.0, 2.0, 4.0)]
    assert low_bin_trend(profile_of(layers)) == pytest.approx(1.0)
    assert low_bin_trend(profile_of(layers[::-1])) == pytest.approx(-1.0)


def test_channel_order_check_against_a_float64_dft(tiny_roberta):
    from spectralkd_tutorial.analysis.intensity_makeup import channel_order_check, plot_makeup

    model, tokenizer = tiny_roberta
    model.eval()
    texts = ["set an alarm for seven", "what is the weather like in paris today", "hi"]
    result = channel_order_check(model, tokenizer, texts, 2, seed=5)
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded, output_hidden_states=True).hidden_states[2].double().numpy()
    real = hidden[encoded["attention_mask"].numpy().astype(bool)][None]  # (1, M, H): real tokens only
    order = torch.randperm(hidden.shape[-1], generator=torch.Generator().manual_seed(5)).numpy()
    for name, x in (("as stored", real), ("channels permuted", real[..., order])):
        i_ref, _, signature = numpy_reference(x)
        half = signature[1 : x.shape[-1] // 2 + 1]
        n = max(1, len(half) // 8)
        assert result[name]["I"] == pytest.approx(i_ref, rel=1e-10)
        assert result[name]["low"] == pytest.approx(half[:n].mean() / half.mean(), rel=1e-10)
    assert result["as stored"]["low"] != pytest.approx(result["channels permuted"]["low"], rel=1e-6)
    fig = plot_makeup({"tiny": None}, {"tiny": [{"low": 1.0}, {"low": 1.5}]})
    assert fig.axes[1].get_ylim()[1] >= 1.5


def test_agreement_by_k_finds_the_depths_where_the_rankings_swap():
    from spectralkd_tutorial.analysis.intensity_makeup import agreement_by_k, agreement_sentence

    def stub(intensities, rms):
        layers = [LayerSpectra(i, [v, v], v, r) for i, (v, r) in enumerate(zip(intensities, rms))]
        return SpectralProfile("stub", layers, 1, 1, 2)

    same = stub([0.5, 1.0, 3.0, 2.0, 4.0], [5.0, 1.0, 3.0, 2.0, 4.0])  # layer 0 never a candidate
    swapped = stub([0.5, 1.0, 3.0, 2.9, 4.0], [5.0, 1.0, 2.0, 3.0, 4.0])  # blocks 2 and 3 trade places
    rows = agreement_by_k({"same": same, "swapped": swapped, "none": None})
    assert rows[0]["K differing"] == [] and len(rows) == 2
    assert rows[1]["K differing"] == [2]  # K=1: {4} both; K=2: {2,4} vs {3,4}; K=3: {2,3,4} both
    assert rows[1]["largest intensity gap"] == pytest.approx((7.0 - 6.9) / 7.0)
    text = agreement_sentence(rows)
    assert "for every K = 1..3" in text and "for 2 of K = 1..3; at K = 2" in text and "1.43 %" in text


def test_two_axes_figure_shows_the_channel_fft_of_a_row_and_the_token_rfft_of_a_column():
    from spectralkd_tutorial.analysis.viz import plot_two_axes

    x = np.random.default_rng(4).normal(size=(10, 12))
    fig = plot_two_axes(x, token=3, channel=5)
    heights = [np.array([bar.get_height() for bar in ax.patches]) for ax in (fig.axes[1], fig.axes[3])]
    dft = np.exp(-2j * np.pi * np.outer(np.arange(12), np.arange(12)) / 12)
    np.testing.assert_allclose(heights[0], np.abs(x[3] @ dft)[:7] / 12, rtol=1e-12)  # bins 0..H/2
    n = np.arange(10)
    column = [abs((x[:, 5] * np.exp(-2j * np.pi * k * n / 10)).sum()) / np.sqrt(10) for k in range(6)]
    np.testing.assert_allclose(heights[1], column, rtol=1e-12)
    with pytest.raises(ValueError, match="tokens, channels"):
        plot_two_axes(np.zeros((2, 3, 4)))
