"""Phasors, winding and the hand-written DFT: what a Fourier coefficient measures (chapter 1).

The discrete Fourier transform of ``x_0 .. x_{N-1}`` is

    X_k = sum_{n=0}^{N-1} x_n * exp(-2*pi*i*k*n/N)                    k = 0 .. N-1

Read it as *winding*: the phasor ``exp(-2*pi*i*k*n/N)`` is a unit arrow that turns ``k`` full
times while ``n`` walks once through the signal. Multiplying ``x_n`` by it places sample ``n`` at
angle ``-2*pi*k*n/N``, radius ``x_n``: the signal is wound ``k`` times around the origin. The
centre of mass of the wound points is

    c_k = (1/N) * sum_n x_n * exp(-2*pi*i*k*n/N) = X_k / N

If the signal repeats ``k`` times per window, its peaks always land on the same side of the origin
and ``c_k`` moves away from zero; otherwise the wound points balance out and ``c_k`` is (near) zero.

Everything here is NumPy, complex128, and works on the last axis of batched input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "phasor",
    "wind",
    "winding_centre_of_mass",
    "dft_matrix",
    "naive_dft",
    "naive_idft",
    "magnitude",
    "phase",
    "one_sided_spectrum",
    "parseval_sides",
    "make_signal",
    "band_split",
    "DFTTimings",
    "time_dft_vs_fft",
]


def _as_signal(x, name: str = "x") -> np.ndarray:
    """``x`` as a NumPy array with at least one sample on its last axis."""
    if hasattr(x, "detach"):  # a torch tensor: leave autograd and the device behind
        x = x.detach().cpu().numpy()
    array = np.asarray(x)
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise TypeError(f"{name} must be numeric (a list, NumPy array or tensor of numbers), got dtype {array.dtype}")
    if array.ndim == 0 or array.shape[-1] == 0:
        raise ValueError(
            f"{name} must have at least one sample on its last axis, got shape {array.shape}; "
            "pass a 1-D signal like np.cos(2 * np.pi * 3 * np.arange(32) / 32)."
        )
    return array


# --------------------------------------------------------------------------------------------
# The phasor and the winding picture
# --------------------------------------------------------------------------------------------

def phasor(k, n, N: int) -> np.ndarray:
    """The rotating unit arrow ``w = exp(-2*pi*i*k*n/N)`` (broadcasts over ``k`` and ``n``).

    ``k*n`` is reduced modulo ``N`` first (the phasor has period ``N`` in ``k*n``), which keeps the
    angle small and the result accurate for large ``N``. ``k`` may be fractional (a winding
    frequency between bins).
    """
    if not isinstance(N, (int, np.integer)) or isinstance(N, bool) or N < 1:
        raise ValueError(f"N={N!r} must be a positive integer: the number of samples in the window")
    kn = np.mod(np.multiply(k, n), N)  # exp(-2 pi i kn / N) = exp(-2 pi i (kn mod N) / N)
    return np.exp(-2j * np.pi * kn / N)


def wind(signal, k: float) -> np.ndarray:
    """Wound points ``z_n = x_n * exp(-2*pi*i*k*n/N)``: the signal wrapped ``k`` times round 0."""
    x = _as_signal(signal, "signal")
    N = x.shape[-1]
    return x * phasor(k, np.arange(N), N)


def winding_centre_of_mass(signal, k: float) -> complex | np.ndarray:
    """Centre of mass of the wound points ``c_k = (1/N) sum_n x_n exp(-2*pi*i*k*n/N) = X_k / N``."""
    com = wind(signal, k).mean(axis=-1)
    return complex(com) if np.ndim(com) == 0 else com


# --------------------------------------------------------------------------------------------
# The O(N^2) DFT, written out
# --------------------------------------------------------------------------------------------

def dft_matrix(N: int) -> np.ndarray:
    """``W[k, n] = exp(-2*pi*i*k*n/N)``: row ``k`` is the phasor that winds ``k`` times."""
    n = np.arange(N)
    return phasor(n[:, None], n[None, :], N)


def naive_dft(x) -> np.ndarray:
    """``X_k = sum_n x_n exp(-2*pi*i*k*n/N)``, the O(N^2) way, along the last axis (complex128).

    Each of the ``N`` outputs is an explicit ``N``-term sum over the samples: ``N * N``
    multiply-adds, against ``N log N`` for the FFT. Batched input ``(..., N)`` gives ``(..., N)``.
    Same sign and scaling as ``numpy.fft.fft`` and ``torch.fft.fft`` (no ``1/N`` forward).
    """
    samples = _as_signal(x).astype(np.complex128)
    W = dft_matrix(samples.shape[-1])
    # X[..., k] = sum_n W[k, n] * x[..., n]
    return np.einsum("kn,...n->...k", W, samples)


def naive_idft(X) -> np.ndarray:
    """Inverse: ``x_n = (1/N) sum_k X_k exp(+2*pi*i*k*n/N)`` along the last axis (complex128)."""
    coefficients = _as_signal(X, "X").astype(np.complex128)
    N = coefficients.shape[-1]
    W_conj = np.conj(dft_matrix(N))
    return np.einsum("nk,...k->...n", W_conj, coefficients) / N


def magnitude(X) -> np.ndarray:
    """``|X_k| = sqrt(Re(X_k)^2 + Im(X_k)^2)``: how far the centre of mass sits from 0 (times N)."""
    Z = _as_signal(X, "X")
    return np.sqrt(Z.real**2 + Z.imag**2)


def phase(X, *, tol: float | None = None) -> np.ndarray:
    """``angle(X_k) = atan2(Im(X_k), Re(X_k))`` in radians, in (-pi, pi].

    ``tol``: where ``|X_k| <= tol`` the phase is numerical noise; it is reported as 0 there.
    """
    Z = _as_signal(X, "X")
    angle = np.arctan2(Z.imag, Z.real)
    if tol is not None:
        angle = np.where(magnitude(Z) <= tol, 0.0, angle)
    return angle


def one_sided_spectrum(x) -> np.ndarray:
    """Amplitudes of a *real* signal at ``k = 0 .. N//2``.

    A real signal has ``X_{N-k} = conj(X_k)``: the bins above ``N/2`` mirror those below, so the
    energy of ``a*cos(2*pi*f*n/N + phi)`` is split between ``k = f`` and ``k = N-f``. Folding:

        A_0 = |X_0| / N,     A_k = 2 |X_k| / N  (0 < k < N/2),     A_{N/2} = |X_{N/2}| / N  (N even)

    so a cosine of amplitude ``a`` at integer frequency ``f`` gives ``A_f = a``.
    """
    samples = _as_signal(x)
    if np.iscomplexobj(samples):
        if not np.allclose(samples.imag, 0.0):
            raise ValueError(
                "one_sided_spectrum needs a real signal (its negative frequencies mirror the positive "
                "ones); for complex input use magnitude(naive_dft(x)) / N over all N bins."
            )
        samples = samples.real
    N = samples.shape[-1]
    amplitudes = magnitude(naive_dft(samples))[..., : N // 2 + 1] / N
    doubled = np.ones(N // 2 + 1)
    doubled[1 : (N + 1) // 2] = 2.0  # every bin except DC and (for even N) Nyquist has a mirror
    return amplitudes * doubled


def parseval_sides(x) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Both sides of Parseval's theorem: ``(sum_n |x_n|^2, (1/N) sum_k |X_k|^2)`` (last axis).

    They are equal for every signal: the DFT (scaled by ``1/sqrt(N)``) is a rotation, so it keeps
    the energy. Reordering samples changes ``X`` but not the left side, hence not the right.
    """
    samples = _as_signal(x)
    N = samples.shape[-1]
    time_energy = np.sum(np.abs(samples) ** 2, axis=-1)
    frequency_energy = np.sum(magnitude(naive_dft(samples)) ** 2, axis=-1) / N
    if np.ndim(time_energy) == 0:
        return float(time_energy), float(frequency_energy)
    return time_energy, frequency_energy


# --------------------------------------------------------------------------------------------
# Signals
# --------------------------------------------------------------------------------------------

def make_signal(
    n: int,
    components: Iterable[Sequence[float]] = ((3, 1.0, 0.0),),
    *,
    offset: float = 0.0,
) -> np.ndarray:
    """``x_m = offset + sum_j a_j cos(2*pi*f_j*m/n + phi_j)`` for ``m = 0 .. n-1``.

    ``components``: ``(frequency, amplitude, phase)`` triples; frequency in cycles per window
    (an integer lands exactly on bin ``f``; a fraction leaks into its neighbours).
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer number of samples")
    m = np.arange(n)
    x = np.full(n, float(offset))
    for index, component in enumerate(components):
        if len(component) != 3:
            raise ValueError(
                f"components[{index}]={component!r} must be a (frequency, amplitude, phase) triple, "
                "e.g. (3, 1.0, 0.0)"
            )
        frequency, amplitude, phi = (float(value) for value in component)
        x += amplitude * np.cos(2 * np.pi * frequency * m / n + phi)
    return x


def band_split(x, cutoff: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a real signal into slow and fast variation along its index: ``x = low + high``.

    ``low`` keeps the bins with ``min(k, N-k) <= cutoff`` (frequency ``k`` and its mirror), ``high``
    the rest; both are real. For an activation vector, ``low`` is the smooth trend *across the
    channel index* and ``high`` the channel-to-channel zig-zag.
    """
    samples = _as_signal(x)
    if np.iscomplexobj(samples):
        raise ValueError("band_split needs a real signal (e.g. one token's activation vector)")
    samples = samples.astype(np.float64)
    N = samples.shape[-1]
    if not isinstance(cutoff, (int, np.integer)) or isinstance(cutoff, bool) or not 0 <= cutoff <= N // 2:
        raise ValueError(f"cutoff={cutoff!r} must be an integer bin in [0, {N // 2}] for {N} samples")
    k = np.arange(N)
    keep = np.minimum(k, N - k) <= cutoff
    low = np.fft.ifft(np.fft.fft(samples, axis=-1) * keep, axis=-1).real
    return low, samples - low


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DFTTimings:
    """Best-of-``repeats`` seconds per transform of one length-``N`` signal."""

    sizes: np.ndarray
    naive_seconds: np.ndarray
    fft_seconds: np.ndarray

    @property
    def speedup(self) -> np.ndarray:
        return self.naive_seconds / self.fft_seconds


def _best_time(function, argument, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function(argument)
        best = min(best, time.perf_counter() - start)
    return best


def time_dft_vs_fft(sizes: Iterable[int] = (16, 32, 64, 128, 256, 512), repeats: int = 3, *, seed: int = 0) -> DFTTimings:
    """Time :func:`naive_dft` (O(N^2)) against ``numpy.fft.fft`` (O(N log N)) for each ``N``."""
    sizes = [int(size) for size in sizes]
    if not sizes or min(sizes) < 1:
        raise ValueError(f"sizes={sizes!r} must be a non-empty list of positive signal lengths")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r} must be a positive integer")
    rng = np.random.default_rng(seed)
    naive, fast = [], []
    for size in sizes:
        x = rng.standard_normal(size)
        naive.append(_best_time(naive_dft, x, repeats))
        fast.append(_best_time(np.fft.fft, x, repeats))
    return DFTTimings(np.array(sizes), np.array(naive), np.array(fast))
