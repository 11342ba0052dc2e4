"""Chapter 6 exercises: a paired difference, a verdict from an interval, and how many seeds it takes.

    d_i = a_i - b_i,   s_d = sqrt( sum (d_i - mean d)^2 / (n - 1) )
    95% CI  mean d +- t_{0.975, n-1} s_d / sqrt(n)
    MDE(n) = (t_{0.975, n-1} + t_{0.80, n-1}) s_d / sqrt(n)

The right answers come from :mod:`spectralkd_tutorial.analysis.stats`.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from ...analysis.stats import PairedDifference, paired_difference, t_quantile
from ._feedback import Feedback, WrongAnswer, as_int, as_number, checker, close, correct

__all__ = ["check_paired_sd", "check_verdict", "check_seeds_for_half_mde"]

VERDICTS = ("helps", "hurts", "no difference detectable")


@checker
def check_paired_sd(answer: Any, *, a: Sequence[float], b: Sequence[float]) -> Feedback:
    """The standard deviation of the per-seed differences a_i - b_i (in the units of a and b)."""
    truth = paired_difference(a, b).sd
    guess = as_number(answer, "a standard deviation (a number)")
    if close(guess, truth):
        return correct(f"{truth:.4g}: the seeds move both strategies together, so the differences vary far "
                       "less than either strategy does on its own.")
    diffs = [x - y for x, y in zip(a, b)]
    if guess < 0:
        raise WrongAnswer("a standard deviation is never negative")
    if close(guess, statistics.pstdev(diffs)):
        raise WrongAnswer("divide by n - 1, not n: the mean was estimated from the same differences")
    if any(close(guess, value) for value in (statistics.stdev(a), statistics.stdev(b))):
        raise WrongAnswer("that is the spread of one strategy over the seeds; the question asks for the "
                          "spread of the per-seed differences a_i - b_i")
    if close(guess, abs(statistics.fmean(diffs))):
        raise WrongAnswer("that is the size of the mean difference, not the spread of the differences")
    raise WrongAnswer("take the differences seed by seed, then their sample standard deviation")


@checker
def check_verdict(answer: Any, *, low: float, high: float) -> Feedback:
    """The verdict for a 95% interval [low, high] of a paired difference (helps / hurts / no difference detectable)."""
    diff = PairedDifference(mean=(low + high) / 2, low=low, high=high, sd=math.nan, n=3, mde=math.nan)
    truth = diff.verdict
    if not isinstance(answer, str) or answer.strip().lower() not in VERDICTS:
        raise WrongAnswer(f"answer with one of {list(VERDICTS)}")
    guess = answer.strip().lower()
    if guess == truth:
        return correct("the verdict reads the whole interval: it helps only when even its lower end is "
                       "above 0, hurts only when even its upper end is below 0.")
    if guess != "no difference detectable" and low < 0 < high:
        raise WrongAnswer("the interval contains 0: a difference of 0 is compatible with these seeds, whatever "
                          "the sign of the mean")
    raise WrongAnswer("look at where the interval lies relative to 0: entirely above, entirely below, or across")


def mde_factor(n: int) -> float:
    """MDE(n) / s_d = (t_{0.975, n-1} + t_{0.80, n-1}) / sqrt(n)."""
    return (t_quantile(0.975, n - 1) + t_quantile(0.80, n - 1)) / math.sqrt(n)


@checker
def check_seeds_for_half_mde(answer: Any, *, seeds: int = 3) -> Feedback:
    """The fewest seeds whose MDE is at most half the MDE of ``seeds`` seeds (same spread of differences)."""
    target = mde_factor(seeds) / 2
    truth = next(n for n in range(seeds + 1, 10_000) if mde_factor(n) <= target)
    guess = as_int(answer, "a number of seeds")
    if guess == truth:
        return correct(f"{truth} seeds: the t quantiles shrink as the seeds grow, so halving the MDE takes far "
                       "fewer than four times the seeds when you start from very few.")
    if guess == 4 * seeds:
        raise WrongAnswer("four times the seeds halves s/sqrt(n), but with few seeds the t quantiles shrink "
                          "too: the MDE halves sooner")
    if guess <= seeds:
        raise WrongAnswer(f"with {guess} seeds the MDE is not smaller than with {seeds}")
    if guess < truth:
        raise WrongAnswer(f"with {guess} seeds the MDE is still more than half of that with {seeds}: compute "
                          "(t_0.975 + t_0.80) / sqrt(n) for each n")
    raise WrongAnswer("fewer seeds already halve the MDE: look for the smallest n")
