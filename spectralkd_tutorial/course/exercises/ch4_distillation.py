"""Chapter 4 exercises: the Parseval weight of the spectral loss, a pure-DC error, and how many
students a grid really trains.

Per (student, teacher) pair, with D the error along L tokens and K = L//2 + 1 kept rfft columns:

    L_pair = (L / 4K) * MSE_plain + (DC and Nyquist terms)          (chapter 4, section 1.3)

Two strategies that pair the same layers with the same seed train the same student (section 3.1).

The right answers are *measured*: the ratio of :func:`spectralkd_tutorial.losses.spectral_alignment_loss`
to :func:`spectralkd_tutorial.losses.hidden_mse_loss` on an error of the asked kind; the distinct
layer pairings of :func:`spectralkd_tutorial.analysis.selection.select_layers`, grouped as
:func:`spectralkd_tutorial.analysis.dynamics.coinciding_strategies` groups a grid's runs.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ...analysis.dynamics import coinciding_strategies
from ...losses import hidden_mse_loss, spectral_alignment_loss
from ...config.presets import WORKSHOP_STRATEGIES
from ...analysis.selection import select_layers
from ._feedback import Feedback, WrongAnswer, as_int, as_number, checker, close, correct

__all__ = ["check_parseval_weight", "check_dc_error_weight", "check_distinct_students"]

_DIGITS = "close, but give at least three significant digits (a fraction such as '3/7' is fine too)"


def _ratio(error: torch.Tensor) -> float:
    """spectral loss / plain hidden MSE for a (1, L, H) error against a zero teacher."""
    zeros = torch.zeros_like(error)
    return float(spectral_alignment_loss([error], [zeros]) / hidden_mse_loss([error], [zeros]))


def _middle_frequency_error(seq_len: int) -> torch.Tensor:
    """cos(2*pi*n/L) on every channel: no DC (mean 0) and no Nyquist (alternating) component."""
    n = torch.arange(seq_len, dtype=torch.float32)
    return torch.cos(2 * torch.pi * n / seq_len)[None, :, None].expand(1, seq_len, 4).contiguous()


@checker
def check_parseval_weight(answer: Any, *, seq_len: int = 20) -> Feedback:
    """``L_spec / MSE_plain`` for an error with no DC and no Nyquist part, over ``seq_len`` tokens."""
    if seq_len < 3:
        raise ValueError(f"seq_len={seq_len} must be >= 3 (an error without DC and Nyquist parts needs it)")
    target = _ratio(_middle_frequency_error(seq_len))
    guess = as_number(answer, "the weight, a number")
    large_l_limit = ("that is the large-L limit (K = L/2): rfft keeps K = L//2 + 1 columns: the zero-frequency "
                     "column too (and, for even L, the Nyquist column)")
    return _judge_ratio(
        guess, target,
        praise=f"L / 4K with K = L//2 + 1 = {seq_len // 2 + 1} kept columns: {target:.4f}. The MSE of the stacked "
               "spectrum is about half the hidden-state MSE.",
        mistakes=[
            (0.5, large_l_limit),
            (seq_len / (4 * (seq_len // 2)), large_l_limit),  # K = L//2 (odd L)
            (2 * target, "too large: that is the weight of an error that is all DC (or all Nyquist); this error "
                         "has neither, so the kept columns hold only half of its energy"),
            (1.0, "Parseval keeps the energy, but rfft keeps only one of each mirrored pair of columns, and the "
                  "MSE averages over 2K numbers (real and imaginary parts)"),
        ],
        otherwise="not the weight: for an error without DC and Nyquist parts, divide L_pair (section 1.3) by "
                  "MSE_plain = sum D^2 / (B L H)",
    )


@checker
def check_dc_error_weight(answer: Any, *, seq_len: int = 15) -> Feedback:
    """``L_spec / MSE_plain`` when the error is the same on every token (pure DC), over ``seq_len`` tokens."""
    target = _ratio(torch.ones(1, seq_len, 4))
    guess = as_number(answer, "the ratio, a number")
    return _judge_ratio(
        guess, target,
        praise=f"L / 2K = {target:.4f} with K = {seq_len // 2 + 1}: a constant error lives in the single DC "
               "column, which has no mirrored partner, so it is counted twice compared with a random error.",
        mistakes=[
            (target / 2, "that is the weight of an error with no DC part; a constant error is pure DC, and the DC "
                         "column has no mirrored partner that rfft drops"),
            (1.0, "the kept columns hold all of a constant error's energy, but the MSE averages over 2K numbers "
                  "with K = L//2 + 1 (rounded down, then plus one), not L/2"),
            (0.5, "that is roughly the weight of a random error; a constant error is pure DC, which the spectral "
                  "loss weighs more"),
        ],
        otherwise="not the ratio: a constant error D has |F_0|^2 = (sum_n D_n)^2 / L and every other column 0; "
                  "divide by 2K for the spectral MSE and compare with sum D^2 / L",
    )


def _judge_ratio(
    guess: float, target: float, praise: str, mistakes: list[tuple[float, str]], otherwise: str
) -> Feedback:
    """How both measured ratios above are graded: correct within 0.2 %; else the hint of the first known
    mistake ``guess`` is close to, a request for more digits within 2 %, or ``otherwise``."""
    if close(guess, target, rel=2e-3):
        return correct(praise)
    for wrong_value, hint in mistakes:  # known mistakes, the first match wins
        if close(guess, wrong_value):
            raise WrongAnswer(hint)
    if close(guess, target, rel=0.02):
        raise WrongAnswer(_DIGITS)
    raise WrongAnswer(otherwise)


def _grid_runs(intensities: Sequence[float], num_student_layers: int, seed: int) -> list[dict[str, Any]]:
    """One (strategy, seed) run per strategy of the workshop grid (the eight the exercise lists), as
    ``run_experiment`` records its mapping."""
    blocks = len(intensities) - 1
    return [{"strategy": name, "seed": seed,
             "mapping": {"pairs": [list(pair) for pair in
                                   select_layers(name, num_student_layers, blocks, list(intensities), seed=seed).pairs]}}
            for name in WORKSHOP_STRATEGIES]


@checker
def check_distinct_students(answer: Any, *, intensities: Sequence[float], num_student_layers: int = 3,
                            seed: int = 0) -> Feedback:
    """How many different students one seed of the full grid (every strategy) trains."""
    runs = _grid_runs(intensities, num_student_layers, seed)
    groups = coinciding_strategies(runs)
    truth = len(runs) - sum(len(group["strategies"]) - 1 for group in groups)
    guess = as_int(answer, "a number of students")
    together = "; ".join(" = ".join(group["strategies"]) for group in groups) or "none"
    if guess == truth:
        return correct(f"{truth} of {len(runs)}: {together} pair the same layers, so with the same seed (same "
                       "start, same data order) they are one student, and their rows in a table are the same "
                       "numbers, not independent evidence.")
    if guess == len(runs):
        raise WrongAnswer("some strategies pick exactly the same teacher blocks here: same pairs + same seed = "
                          "the same student. Write down each strategy's blocks")
    if guess > len(runs) or guess < 1:
        raise WrongAnswer(f"the grid has {len(runs)} strategies, one run each per seed")
    reverse_merged = truth - 1
    if guess == reverse_merged:
        raise WrongAnswer("one too few: `reverse` takes uniform's blocks but pairs them in the opposite order "
                          "(student layer 1 <- the deepest), and `none` (logits only) is a student too")
    if guess < truth:
        raise WrongAnswer("too few: only strategies with the same (student layer, teacher layer) pairs coincide; "
                          "`random` draws its blocks with the seed")
    raise WrongAnswer("too many: on a curve like this, which strategies end up with the same blocks as `last`?")
