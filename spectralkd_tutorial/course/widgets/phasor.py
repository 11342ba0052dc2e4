"""An ipywidgets explorer for the winding picture: move ``k`` and reshape the signal, live.

The signal is a two-tone mix

    x_n = cos(2*pi*freq*n/N + phase) + mix * cos(2*pi*second_freq*n/N)

and the explorer draws it wound ``k`` times round the origin, ``z_n = x_n exp(-2*pi*i*k*n/N)``,
with the centre of mass ``c_k = X_k/N`` (left), and ``|X_j|/N`` for every ``j`` with the current
``k`` highlighted (right).

All drawing happens in :meth:`PhasorExplorer.update`, a plain method: tests call it, or set a
slider's ``.value``, and read the figure's data back without a browser or a kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from ..fourier import make_signal, wind
from ..phasor_plots import CENTRE_COLOR, WindingArtists, draw_winding, update_winding

__all__ = ["PhasorExplorer"]
from .base import FigureExplorer


class PhasorExplorer(FigureExplorer):
    """Sliders for ``k``, ``freq``, ``phase`` and ``mix``; the winding redraws on every change.

    Attributes after each :meth:`update`: ``signal`` (the samples), ``centre`` (complex
    ``c_k = X_k/N``), ``fig``, ``winding`` (:class:`~spectralkd_tutorial.course.phasor_plots.WindingArtists`,
    e.g. ``winding.centre.get_data()``), ``bars`` (the ``|X_j|/N`` bars). Show it with
    ``display(explorer.widget)``.
    """

    def __init__(
        self,
        n: int = 64,
        *,
        k: int = 3,
        freq: float = 3.0, phase: float = 0.0,  # x_n = cos(2*pi*freq*n/N + phase)
        mix: float = 0.5, second_freq: float = 7.0,  #     + mix * cos(2*pi*second_freq*n/N)
        max_k: int | None = None,
        figsize: tuple[float, float] = (8.5, 3.8),
    ) -> None:
        if not isinstance(n, int) or n < 4:
            raise ValueError(f"n={n!r} must be an integer >= 4 (number of samples in the window)")
        self.n = n
        self.second_freq = float(second_freq)
        self.max_k = n // 2 if max_k is None else int(max_k)
        if not 1 <= self.max_k <= n - 1:
            raise ValueError(f"max_k={max_k!r} must be in [1, {n - 1}] for n={n}")
        self.k, self.freq, self.phase, self.mix = int(k), float(freq), float(phase), float(mix)
        self._check()
        self.signal = self._make_signal()
        self.fig = Figure(figsize=figsize, dpi=80, layout="constrained")
        ax_wind = self.fig.add_subplot(1, 2, 1)
        self.ax_spectrum = self.fig.add_subplot(1, 2, 2)
        radius = 1.15 * (1.0 + 1.5)  # fixed scale for every slider setting (|x| <= 1 + max mix)
        self.winding: WindingArtists = draw_winding(ax_wind, self.signal, self.k, radius=radius)
        bins = np.arange(self.max_k + 1)
        self.bars = self.ax_spectrum.bar(bins, np.zeros(len(bins)), width=0.7, color="0.6")
        self.ax_spectrum.set_ylim(0, 1.1)
        self.ax_spectrum.set_xlabel("winding frequency k")
        self.ax_spectrum.set_ylabel("$|X_k|/N$")
        self.ax_spectrum.set_title("|centre of mass| for every k (red: current)")
        self.centre: complex = 0j
        self._widget = None
        self.update()

    # ---------------------------------------------------------------------------------------
    def _check(self) -> None:
        if not 0 <= self.k <= self.max_k:
            raise ValueError(f"k={self.k} must be an integer in [0, {self.max_k}]")
        if not 0 <= self.mix <= 1.5:
            raise ValueError(f"mix={self.mix} must be in [0, 1.5] (amplitude of the second tone)")

    def _make_signal(self) -> np.ndarray:
        return make_signal(self.n, [(self.freq, 1.0, self.phase), (self.second_freq, self.mix, 0.0)])

    def update(
        self,
        k: int | None = None,
        freq: float | None = None,
        phase: float | None = None,
        mix: float | None = None,
    ) -> complex:
        """Set any of the parameters, recompute the signal and redraw; returns ``c_k = X_k/N``."""
        self._assign({"k": ("k", int), "freq": ("freq", float), "phase": ("phase", float), "mix": ("mix", float)},
                     dict(k=k, freq=freq, phase=phase, mix=mix))
        self.signal = self._make_signal()
        self.centre = update_winding(self.winding, self.signal, self.k)
        for j, bar in enumerate(self.bars):
            bar.set_height(abs(complex(wind(self.signal, j).mean())))  # |c_j| = |X_j| / N
            bar.set_color(CENTRE_COLOR if j == self.k else "0.6")
        return self.centre

    # ---------------------------------------------------------------------------------------
    def _controls(self, widgets, style, layout) -> dict[str, Any]:
        return dict(
            k=widgets.IntSlider(value=self.k, min=0, max=self.max_k, description="winding k", style=style, layout=layout),
            freq=widgets.FloatSlider(value=self.freq, min=0.0, max=float(self.max_k), step=0.25,
                                     description="tone frequency", style=style, layout=layout),
            phase=widgets.FloatSlider(value=self.phase, min=-np.pi, max=np.pi, step=np.pi / 12,
                                      description="tone phase (rad)", style=style, layout=layout, readout_format=".2f"),
            mix=widgets.FloatSlider(value=self.mix, min=0.0, max=1.5, step=0.05,
                                    description=f"amplitude of tone at {self.second_freq:g}", style=style, layout=layout),
        )
