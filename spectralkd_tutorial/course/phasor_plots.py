"""Figures for chapter 1: the winding diagram, its animation, spectra and DFT timings.

Every function returns a ``matplotlib.figure.Figure`` built without ``pyplot``, so nothing is
shown twice under ``%matplotlib inline``: a notebook shows a figure by ending the cell with it.
The winding picture draws the wound points

    z_n = x_n * exp(-2*pi*i*k*n/N)              and their centre of mass    c_k = X_k / N

(see :mod:`spectralkd_tutorial.course.fourier`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text

from .fourier import DFTTimings, band_split, one_sided_spectrum, magnitude, naive_dft, phase, wind

__all__ = [
    "plot_signal",
    "WindingArtists",
    "draw_winding",
    "update_winding",
    "plot_winding",
    "plot_windings",
    "winding_animation",
    "animation_html",
    "winding_animation_html",
    "plot_spectrum",
    "plot_dft_timings",
    "plot_channel_bands",
    "plot_signatures",
]

POINT_COLOR = "tab:blue"
CENTRE_COLOR = "tab:red"


def _figure(figsize: tuple[float, float], dpi: float = 100) -> Figure:
    return Figure(figsize=figsize, dpi=dpi, layout="constrained")


def plot_signal(signal, *, title: str | None = None, figsize: tuple[float, float] = (6.0, 2.6)) -> Figure:
    """The samples ``x_n`` against ``n`` (a stem plot: a DFT sees only these ``N`` numbers)."""
    x = np.asarray(signal, dtype=float)
    fig = _figure(figsize)
    ax = fig.add_subplot()
    ax.axhline(0, color="0.8", lw=0.8)
    ax.vlines(np.arange(len(x)), 0, x, color=POINT_COLOR, lw=1)
    ax.plot(np.arange(len(x)), x, "o", color=POINT_COLOR, ms=3)
    ax.set_xlabel("sample n")
    ax.set_ylabel("$x_n$")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


# --------------------------------------------------------------------------------------------
# The winding diagram
# --------------------------------------------------------------------------------------------

@dataclass
class WindingArtists:
    """The artists of one winding diagram; :func:`update_winding` moves them to a new ``k``."""

    ax: Axes
    path: Line2D  # the wound signal, sample to sample (closed)
    points: Line2D  # the wound samples z_n
    arrow: Line2D  # origin -> centre of mass
    centre: Line2D  # the centre of mass c_k = X_k / N
    label: Text

    @property
    def centre_xy(self) -> tuple[float, float]:
        """(Re c_k, Im c_k) as drawn."""
        x, y = self.centre.get_data()
        return float(np.asarray(x)[0]), float(np.asarray(y)[0])


def _winding_radius(signal) -> float:
    return 1.15 * max(float(np.max(np.abs(signal))), 1e-12)


def draw_winding(ax: Axes, signal, k: float, *, radius: float | None = None) -> WindingArtists:
    """Draw ``signal`` wound ``k`` times round the origin on ``ax``, with its centre of mass."""
    r = radius or _winding_radius(signal)
    ax.axhline(0, color="0.8", lw=0.8, zorder=0)
    ax.axvline(0, color="0.8", lw=0.8, zorder=0)
    (path,) = ax.plot([], [], color=POINT_COLOR, lw=0.8, alpha=0.45)
    (points,) = ax.plot([], [], "o", color=POINT_COLOR, ms=3)
    (arrow,) = ax.plot([], [], color=CENTRE_COLOR, lw=2)
    (centre,) = ax.plot([], [], "o", color=CENTRE_COLOR, ms=9, mec="k", label="centre of mass $X_k/N$")
    label = ax.text(0.02, 0.98, "", transform=ax.transAxes, va="top", fontsize=9)
    ax.set_xlim(-r, r)
    ax.set_ylim(-r, r)
    ax.set_aspect("equal")
    ax.set_xlabel("real part")
    ax.set_ylabel("imaginary part")
    artists = WindingArtists(ax, path, points, arrow, centre, label)
    update_winding(artists, signal, k)
    return artists


def update_winding(artists: WindingArtists, signal, k: float) -> complex:
    """Move ``artists`` to winding frequency ``k``; returns the centre of mass ``c_k``."""
    z = wind(signal, k)
    c = complex(z.mean())  # c_k = (1/N) sum_n z_n = X_k / N
    closed = np.append(z, z[:1])
    artists.path.set_data(closed.real, closed.imag)
    artists.points.set_data(z.real, z.imag)
    artists.arrow.set_data([0.0, c.real], [0.0, c.imag])
    artists.centre.set_data([c.real], [c.imag])
    artists.ax.set_title(f"wound {k:g} times per window")
    re, im = (round(value, 3) + 0.0 for value in (c.real, c.imag))  # + 0.0: no "-0.000"
    artists.label.set_text(f"$X_k/N$ = {re:+.3f} {im:+.3f}i\n|$X_k/N$| = {abs(c):.3f}")
    return c


def plot_winding(signal, k: float, *, figsize: tuple[float, float] = (4.2, 4.2)) -> Figure:
    """One winding diagram of ``signal`` at frequency ``k``."""
    fig = _figure(figsize)
    draw_winding(fig.add_subplot(), signal, k)
    return fig


def plot_windings(signal, ks: Sequence[float], *, size: float = 3.0) -> Figure:
    """Winding diagrams side by side, one per ``k`` (same scale)."""
    ks = list(ks)
    fig = _figure((size * len(ks), size + 0.3))
    r = _winding_radius(signal)
    for index, k in enumerate(ks):
        artists = draw_winding(fig.add_subplot(1, len(ks), index + 1), signal, k, radius=r)
        if index:
            artists.ax.set_ylabel("")
    return fig


def winding_animation(
    signal,
    ks: Sequence[float],
    *,
    interval: int = 700,
    figsize: tuple[float, float] = (8.0, 3.8),
    dpi: float = 72,
) -> FuncAnimation:
    """Animate the winding over ``ks``: left the wound signal, right ``|c_k|`` for the ``k`` seen so far.

    One frame per ``k`` (keep ``ks`` short: every frame is a PNG inside the HTML). Show it in a
    notebook with ``HTML(animation_html(anim))``.
    """
    ks = [float(k) for k in ks]
    if not ks:
        raise ValueError("ks must list at least one winding frequency, e.g. range(10)")
    fig = _figure(figsize, dpi)
    ax_wind = fig.add_subplot(1, 2, 1)
    ax_bar = fig.add_subplot(1, 2, 2)
    artists = draw_winding(ax_wind, signal, ks[0])
    heights = [abs(complex(wind(signal, k).mean())) for k in ks]
    bars = ax_bar.bar(ks, [0.0] * len(ks), width=0.6 * (min(np.diff(ks)) if len(ks) > 1 else 1.0), color="0.6")
    ax_bar.set_xlim(min(ks) - 0.7, max(ks) + 0.7)
    ax_bar.set_ylim(0, 1.15 * max(max(heights), 1e-12))
    ax_bar.set_xlabel("winding frequency k")
    ax_bar.set_ylabel("|centre of mass| = $|X_k|/N$")
    ax_bar.set_title("distance of the centre of mass from 0")

    def draw(frame: int):
        update_winding(artists, signal, ks[frame])
        for index, bar in enumerate(bars):
            bar.set_height(heights[index] if index <= frame else 0.0)
            bar.set_color(CENTRE_COLOR if index == frame else "0.6")
        return [artists.path, artists.points, artists.arrow, artists.centre, artists.label, *bars]

    return FuncAnimation(fig, draw, frames=len(ks), interval=interval, blit=False, repeat=True)


def animation_html(anim: FuncAnimation, *, default_mode: str = "once") -> str:
    """The animation as self-contained HTML + JavaScript (``to_jshtml``: no ffmpeg needed)."""
    return anim.to_jshtml(default_mode=default_mode)


def winding_animation_html(signal, ks: Sequence[float], **kwargs) -> str:
    """:func:`winding_animation` rendered by :func:`animation_html`."""
    return animation_html(winding_animation(signal, ks, **kwargs))


# --------------------------------------------------------------------------------------------
# Spectra and timings
# --------------------------------------------------------------------------------------------

def plot_spectrum(
    signal,
    *,
    one_sided: bool = True,
    show_phase: bool = False,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Bar plot of a signal's spectrum.

    ``one_sided`` (real signals): amplitudes ``A_k`` for ``k = 0 .. N//2`` (a cosine of amplitude a
    shows a bar of height a). Otherwise ``|X_k|/N`` for every ``k = 0 .. N-1``. ``show_phase`` adds
    ``angle(X_k)`` where the bin carries energy.
    """
    x = np.asarray(signal)
    X = naive_dft(x)
    N = x.shape[-1]
    if one_sided:
        heights = one_sided_spectrum(x)
        ylabel = "amplitude $A_k$ (one-sided)"
    else:
        heights = magnitude(X) / N
        ylabel = "$|X_k| / N$"
    bins = np.arange(len(heights))
    fig = _figure(figsize or ((9.0, 3.2) if show_phase else (5.0, 3.2)))
    ax = fig.add_subplot(1, 2 if show_phase else 1, 1)
    ax.bar(bins, heights, width=0.7, color=POINT_COLOR)
    ax.set_xlabel("frequency bin k (cycles per window)")
    ax.set_ylabel(ylabel)
    if show_phase:
        ax_phase = fig.add_subplot(1, 2, 2)
        angles = phase(X[: len(bins)], tol=1e-9 * max(1.0, float(magnitude(X).max())))
        ax_phase.bar(bins, angles, width=0.7, color="tab:orange")
        ax_phase.set_ylim(-np.pi * 1.1, np.pi * 1.1)
        ax_phase.set_yticks([-np.pi, -np.pi / 2, 0, np.pi / 2, np.pi], ["-π", "-π/2", "0", "π/2", "π"])
        ax_phase.set_xlabel("frequency bin k")
        ax_phase.set_ylabel("phase angle($X_k$)")
    return fig


def plot_dft_timings(timings: DFTTimings, *, figsize: tuple[float, float] = (5.5, 3.8)) -> Figure:
    """Log-log seconds per transform vs ``N``, with ``N^2`` and ``N log N`` guides.

    Each guide is scaled to pass through the largest-``N`` measurement of its method, so the slopes
    can be compared by eye: on log-log axes ``N^2`` is a line of slope 2, ``N log N`` about 1.
    """
    N = np.asarray(timings.sizes, dtype=float)
    fig = _figure(figsize)
    ax = fig.add_subplot()
    ax.loglog(N, timings.naive_seconds, "o-", color=CENTRE_COLOR, label="naive DFT (O(N²))")
    ax.loglog(N, timings.fft_seconds, "s-", color=POINT_COLOR, label="numpy.fft.fft (O(N log N))")
    square = N**2 * timings.naive_seconds[-1] / N[-1] ** 2
    nlogn = N * np.log2(N) * timings.fft_seconds[-1] / (N[-1] * np.log2(N[-1]))
    ax.loglog(N, square, "--", color="0.4", lw=1, label="∝ N²")
    ax.loglog(N, nlogn, ":", color="0.4", lw=1.3, label="∝ N log N")
    ax.set_xlabel("signal length N")
    ax.set_ylabel("seconds per transform (best of repeats)")
    ax.legend(fontsize=8)
    return fig


# --------------------------------------------------------------------------------------------
# From signals to activations: the channel index as "time"
# --------------------------------------------------------------------------------------------

def plot_channel_bands(vector, cutoff: int, *, figsize: tuple[float, float] = (10.0, 3.4)) -> Figure:
    """One activation vector as a signal over the channel index, split into slow and fast parts.

    Left: ``x_h`` against ``h``, its low band (``min(k, H-k) <= cutoff``) and high band. Right: the
    one-sided amplitude spectrum over channel frequency ``k``, the cutoff marked.
    """
    x = np.asarray(vector.detach().cpu() if hasattr(vector, "detach") else vector, dtype=float)
    low, high = band_split(x, cutoff)
    h = np.arange(x.shape[-1])
    fig = _figure(figsize)
    ax = fig.add_subplot(1, 2, 1)
    ax.plot(h, x, color="0.6", lw=1, label="activation $x_h$")
    ax.plot(h, low, color=POINT_COLOR, lw=2, label=f"low channel frequencies (k ≤ {cutoff})")
    ax.plot(h, high, color="tab:orange", lw=0.8, alpha=0.8, label="high channel frequencies")
    ax.set_xlabel("channel index h")
    ax.set_ylabel("value")
    ax.legend(fontsize=7, loc="upper right")
    ax_spec = fig.add_subplot(1, 2, 2)
    amplitudes = one_sided_spectrum(x)
    ax_spec.bar(np.arange(len(amplitudes)), amplitudes, width=0.8, color=POINT_COLOR)
    ax_spec.axvline(cutoff + 0.5, color="k", ls="--", lw=1)
    ax_spec.set_xlabel("channel frequency k (cycles across the hidden vector)")
    ax_spec.set_ylabel("amplitude $A_k$")
    return fig


def plot_signatures(
    signatures: Mapping[str, object],
    *,
    bins: int | None = None,
    title: str | None = None,
    figsize: tuple[float, float] = (6.0, 3.4),
) -> Figure:
    """Spectral signatures ``S[k]`` (one curve per label) over the first ``bins`` channel bins."""
    fig = _figure(figsize)
    ax = fig.add_subplot()
    for label, signature in signatures.items():
        values = np.asarray(signature.detach().cpu() if hasattr(signature, "detach") else signature, dtype=float)
        values = values[:bins] if bins else values
        ax.plot(np.arange(len(values)), values, marker=".", lw=1.2, label=label)
    ax.set_xlabel("channel frequency bin k")
    ax.set_ylabel("signature $S[k]$ = mean $|F|$")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    return fig
