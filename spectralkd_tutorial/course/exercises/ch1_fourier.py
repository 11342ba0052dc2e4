"""Chapter 1 exercises: where a tone lands, the winding centre of mass, and bin 0 of a token.

    X_k = sum_n x_n exp(-2*pi*i*k*n/N)          c_k = X_k / N  (centre of mass of the wound points)
    F[k] = (1/H) sum_h x_h exp(-2*pi*i*k*h/H)    A[k] = |F[k]|  (a token's channel spectrum)

Every right answer is computed here with :mod:`spectralkd_tutorial.course.fourier` and
:func:`spectralkd_tutorial.analysis.spectral.channel_spectrum`, never typed in.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..fourier import magnitude, naive_dft, winding_centre_of_mass
from ...analysis.spectral import channel_spectrum
from ._feedback import Feedback, WrongAnswer, as_complex, as_int, as_number, checker, close, correct

__all__ = ["check_tone_bin", "check_centre_of_mass", "check_channel_bin0"]


def _tone(frequency_hz: float, sample_rate_hz: float, num_samples: int) -> np.ndarray:
    return np.cos(2 * np.pi * frequency_hz * np.arange(num_samples) / sample_rate_hz)


@checker
def check_tone_bin(answer: Any, *, frequency_hz: float = 12.0, sample_rate_hz: float = 48.0,
                   num_samples: int = 32) -> Feedback:
    """Which bin k in 0..N/2 has the largest |X_k| for ``cos(2*pi*f*t)`` sampled at ``fs``, N samples?"""
    spectrum = magnitude(naive_dft(_tone(frequency_hz, sample_rate_hz, num_samples)))
    k = int(np.argmax(spectrum[: num_samples // 2 + 1]))
    guess = as_int(answer, "one bin number k")
    if guess == k:
        return correct(f"the tone makes {k} cycles in the {num_samples}-sample window (f * N / fs), so the "
                       f"phasor that winds {k} times lines up with it: |X_k| peaks at k = {k}.")
    if not 0 <= guess < num_samples:
        raise WrongAnswer(f"bins are numbered 0 .. N-1 = {num_samples - 1}")
    if guess == num_samples - k:
        raise WrongAnswer("that is the mirror bin N - k: a real tone shows up twice, at k and N - k; "
                          "the question asks for the one in 0 .. N/2")
    if abs(guess - k) == 1:
        raise WrongAnswer("off by one: bins are numbered from 0 (bin 0 is the signal's mean), and bin k "
                          "winds exactly k times round the window")
    if guess == round(frequency_hz):
        raise WrongAnswer("that is the frequency in Hz; a bin counts cycles per window, and the window "
                          "lasts N / fs seconds")
    raise WrongAnswer("that bin's |X_k| is not the largest: count how many cycles of the tone fit in the "
                      "window, or compute magnitude(naive_dft(x)) and find the peak")


def _wave(kind: str, amplitude: float, cycles: int, num_samples: int) -> np.ndarray:
    angle = 2 * np.pi * cycles * np.arange(num_samples) / num_samples
    if kind not in ("cos", "sin"):
        raise ValueError(f"wave={kind!r} must be 'cos' or 'sin'")
    return amplitude * (np.cos(angle) if kind == "cos" else np.sin(angle))


@checker
def check_centre_of_mass(answer: Any, *, amplitude: float = 3.0, cycles: int = 4, num_samples: int = 16,
                         wave: str = "sin") -> Feedback:
    """The centre of mass ``c_k = X_k / N`` of ``amplitude * wave(2*pi*cycles*n/N)`` wound at k = cycles."""
    x = _wave(wave, amplitude, cycles, num_samples)
    target = complex(winding_centre_of_mass(x, cycles))
    target = complex(*(0.0 if abs(part) < 1e-12 else part for part in (target.real, target.imag)))  # no -1e-16
    guess = as_complex(answer, "the centre of mass, a complex number (Python writes i as j, e.g. 0.5-2j)")
    if close(guess, target):
        return correct(f"c_{cycles} = {target:.4g}. A real {wave} of amplitude "
                       f"{amplitude:g} is two counter-rotating arrows of length {amplitude / 2:g}; winding at "
                       f"k = {cycles} stops one of them, and its angle is the wave's phase.")
    if close(guess, target * num_samples) or close(abs(guess), abs(target) * num_samples):
        raise WrongAnswer("that is X_k (or its size), N times too large: the centre of mass is the mean of "
                          "the wound points, X_k / N, not their sum")
    if close(guess, target.conjugate()) or close(guess, -target):
        raise WrongAnswer("mirrored: the phasor exp(-2*pi*i*k*n/N) turns clockwise; check the sign of "
                          "the part that is not zero")
    if close(abs(guess), abs(target)):
        raise WrongAnswer("right distance from the origin, wrong direction: c_k is a complex number whose "
                          f"angle is the phase of the wave (where does a {wave} start?)")
    if close(abs(guess), amplitude):
        raise WrongAnswer("that is the full amplitude: a real wave is two counter-rotating arrows (at +k and "
                          "-k), and winding at +k catches only one of them")
    raise WrongAnswer("not the centre of mass: average the wound points z_n = x_n * exp(-2*pi*i*k*n/N) "
                      "(fourier.wind), or divide X_k by N")


@checker
def check_channel_bin0(answer: Any, *, hidden: Sequence[float] = (3, -1, 4, 1, -5, 9, 2, 7)) -> Feedback:
    """Bin 0 of one token's channel spectrum, ``A[0] = |(1/H) sum_h x_h|`` (the chapter's 1/H)."""
    x = torch.tensor([[list(map(float, hidden))]], dtype=torch.float64)  # (1 sample, 1 token, H)
    target = float(channel_spectrum(x)[0, 0, 0])
    guess = as_number(answer, "the amplitude A[0], a number")
    width = len(hidden)
    if close(guess, target):
        return correct(f"A[0] = {target:g}. Bin 0 winds zero times, every phasor is 1, so F[0] is the token's "
                       "mean over its channels; the amplitude is that mean's size.")
    if guess < 0:
        raise WrongAnswer("an amplitude is a magnitude, never negative")
    if close(guess, target * width):
        raise WrongAnswer("that is the plain DFT X_0; chapter 1's channel spectrum divides by the width H")
    if close(guess, float(np.abs(np.asarray(hidden, dtype=float)).mean())):
        raise WrongAnswer("that is the mean of |x_h|: bin 0 sums the values themselves, signs included, and "
                          "takes the magnitude only at the end")
    raise WrongAnswer("not bin 0's amplitude: with k = 0 every phasor is 1, so F[0] = (1/H) * sum_h x_h; "
                      "then take its magnitude")
