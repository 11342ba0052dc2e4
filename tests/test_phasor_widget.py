"""Headless tests of the phasor explorer widget and the chapter-1 figures.

The references are independent: numpy.fft for X_k, the cosine formula for the signal."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.animation import FuncAnimation
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from spectralkd_tutorial.course.fourier import DFTTimings
from spectralkd_tutorial.course.phasor_plots import (
    CENTRE_COLOR,
    animation_html,
    plot_channel_bands,
    plot_dft_timings,
    plot_signal,
    plot_signatures,
    plot_spectrum,
    plot_winding,
    plot_windings,
    winding_animation,
    winding_animation_html,
)
from spectralkd_tutorial.course.widgets import PhasorExplorer



def _expected_signal(n, freq, phase, mix, second):
    t = np.arange(n)
    return np.cos(2 * np.pi * freq * t / n + phase) + mix * np.cos(2 * np.pi * second * t / n)


def _marker(explorer: PhasorExplorer) -> complex:
    x, y = explorer.winding.centre.get_data()
    return complex(float(np.asarray(x)[0]), float(np.asarray(y)[0]))


# --------------------------------------------------------------------------------------------
# PhasorExplorer
# --------------------------------------------------------------------------------------------

def test_explorer_initial_state_matches_fft():
    explorer = PhasorExplorer(n=32, k=3, freq=3, phase=0.0, mix=0.5, second_freq=7)
    np.testing.assert_allclose(explorer.signal, _expected_signal(32, 3, 0.0, 0.5, 7), atol=1e-12)
    expected = np.fft.fft(explorer.signal)[3] / 32
    assert np.isclose(explorer.centre, expected)
    assert np.isclose(_marker(explorer), expected)
    assert np.isclose(_marker(explorer), 0.5)


def test_sliders_drive_the_update_headlessly():
    explorer = PhasorExplorer(n=32)
    sliders = explorer.sliders
    assert set(sliders) == {"k", "freq", "phase", "mix"}
    sliders["freq"].value = 5.0
    sliders["phase"].value = np.pi / 3
    sliders["mix"].value = 1.0
    sliders["k"].value = 5
    signal = _expected_signal(32, 5.0, np.pi / 3, 1.0, 7)
    np.testing.assert_allclose(explorer.signal, signal, atol=1e-12)
    X = np.fft.fft(signal) / 32
    assert np.isclose(_marker(explorer), X[5])
    assert np.isclose(np.angle(_marker(explorer)), np.pi / 3)  # the tone's phase is X_k's angle
    # the arrow runs from the origin to the centre of mass
    ax, ay = explorer.winding.arrow.get_data()
    assert np.allclose(ax, [0, X[5].real]) and np.allclose(ay, [0, X[5].imag])
    # wound points are x_n exp(-2 pi i k n / N)
    px, py = explorer.winding.points.get_data()
    wound = signal * np.exp(-2j * np.pi * 5 * np.arange(32) / 32)
    np.testing.assert_allclose(np.asarray(px) + 1j * np.asarray(py), wound, atol=1e-12)
    # the bar panel shows |X_j| / N for every j, the current k in red
    heights = [bar.get_height() for bar in explorer.bars]
    np.testing.assert_allclose(heights, np.abs(X)[: explorer.max_k + 1], atol=1e-12)
    red = [j for j, bar in enumerate(explorer.bars) if bar.get_facecolor() == to_rgba(CENTRE_COLOR)]
    assert red == [5]
    sliders["k"].value = 7
    assert np.isclose(_marker(explorer), X[7])
    assert np.isclose(abs(_marker(explorer)), 0.5)


def test_off_frequency_centre_is_zero_and_leakage_is_not():
    explorer = PhasorExplorer(n=64)
    assert abs(explorer.update(k=4, freq=3, mix=0.0)) < 1e-12
    assert abs(explorer.update(k=4, freq=3.5)) > 0.05  # a fractional tone leaks into bin 4


def test_update_rejects_bad_values_and_keeps_state():
    explorer = PhasorExplorer(n=16, k=2)
    before = (explorer.k, explorer.centre)
    with pytest.raises(ValueError, match="k=99"):
        explorer.update(k=99)
    with pytest.raises(ValueError, match="mix"):
        explorer.update(mix=-1)
    assert (explorer.k, explorer.centre) == before
    with pytest.raises(ValueError, match="n="):
        PhasorExplorer(n=2)


def test_widget_is_an_interactive_with_the_figure():
    import ipywidgets

    explorer = PhasorExplorer(n=16)
    widget = explorer.widget
    assert isinstance(widget, ipywidgets.interactive)
    assert widget is explorer.widget  # built once
    assert explorer.sliders["k"].max == explorer.max_k == 8
    assert isinstance(explorer.fig, Figure)


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

SIGNAL = _expected_signal(32, 3, 0.0, 0.5, 7)


def test_plot_winding_marks_centre_of_mass():
    fig = plot_winding(SIGNAL, 3)
    ax = fig.axes[0]
    centre = [line for line in ax.lines if line.get_label().startswith("centre of mass")][0]
    x, y = centre.get_data()
    assert np.isclose(complex(x[0], y[0]), np.fft.fft(SIGNAL)[3] / 32)
    assert len(plot_windings(SIGNAL, [1, 2, 3]).axes) == 3


def test_winding_animation_frames_and_jshtml():
    ks = [0, 3, 7]
    anim = winding_animation(SIGNAL, ks)
    assert isinstance(anim, FuncAnimation)
    html = animation_html(anim)
    assert len(re.findall(r"data:image/png;base64", html)) == len(ks)  # one PNG per k, no ffmpeg
    # after rendering, the bar panel holds |X_k|/N for the ks shown
    bars = anim._fig.axes[1].patches
    np.testing.assert_allclose([b.get_height() for b in bars], np.abs(np.fft.fft(SIGNAL)[ks]) / 32, atol=1e-12)
    assert "<script" in winding_animation_html(SIGNAL, [3])
    with pytest.raises(ValueError, match="ks"):
        winding_animation(SIGNAL, [])


def test_plot_spectrum_bars():
    fig = plot_spectrum(SIGNAL, show_phase=True)
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    expected = 2 * np.abs(np.fft.fft(SIGNAL))[:17] / 32
    expected[0] /= 2
    expected[16] /= 2
    np.testing.assert_allclose(heights, expected, atol=1e-12)
    assert len(fig.axes) == 2
    two_sided = plot_spectrum(SIGNAL, one_sided=False)
    np.testing.assert_allclose(
        [bar.get_height() for bar in two_sided.axes[0].patches], np.abs(np.fft.fft(SIGNAL)) / 32, atol=1e-12
    )


def test_plot_dft_timings_guides_have_the_right_slopes():
    sizes = np.array([16, 64, 256])
    timings = DFTTimings(sizes, 1e-9 * sizes**2.0, 1e-8 * sizes * np.log2(sizes))
    fig = plot_dft_timings(timings)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    lines = {line.get_label(): line for line in ax.lines}
    x, y = lines["∝ N²"].get_data()
    slope = np.diff(np.log(y)) / np.diff(np.log(x))
    np.testing.assert_allclose(slope, 2.0)
    np.testing.assert_allclose(lines["∝ N log N"].get_data()[1], timings.fft_seconds)


def test_channel_bands_and_signatures_plots():
    import torch

    vector = torch.randn(32)
    fig = plot_channel_bands(vector, cutoff=3)
    lines = fig.axes[0].lines
    total, low, high = (np.asarray(line.get_data()[1]) for line in lines[:3])
    np.testing.assert_allclose(low + high, total, atol=1e-6)
    np.testing.assert_allclose(total, vector.numpy(), atol=1e-6)
    fig = plot_signatures({"a": torch.arange(10.0), "b": np.ones(10)}, bins=4)
    assert [len(line.get_data()[1]) for line in fig.axes[0].lines] == [4, 4]
    assert isinstance(plot_signal(SIGNAL), Figure)
