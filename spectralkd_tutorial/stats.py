"""Paired comparisons over seeds: is strategy A better than strategy B, beyond seed noise?

Every student of a seed starts from the same weights and sees the same data order, so the two
runs of a seed form a pair and the seed-to-seed variation common to both cancels. With n seeds
and per-seed differences d_i = a_i - b_i:

    mean   d̄ = (1/n) Σ d_i
    sd     s = sqrt( Σ (d_i - d̄)^2 / (n - 1) )
    95% CI d̄ ± t_{0.975, n-1} · s / √n                         (paired t interval)
    MDE    (t_{0.975, n-1} + t_{0.80, n-1}) · s / √n            (the smallest true difference this
                                                               design detects with 80% power)

Verdict: ``helps`` when the whole interval lies above 0, ``hurts`` when below, otherwise
``no difference detectable`` (with the MDE saying how small a difference could have been seen).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Sequence

CONFIDENCE = 0.95
POWER = 0.80


def t_quantile(p: float, dof: int) -> float:
    """The p-quantile of Student's t with ``dof`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(p, dof))


@dataclass(frozen=True)
class PairedDifference:
    """a - b over paired seeds, with its interval and the smallest detectable difference."""

    mean: float
    low: float
    high: float
    sd: float
    n: int
    mde: float

    @property
    def verdict(self) -> str:
        if self.n < 2 or math.isnan(self.low):
            return "too few seeds"
        if self.low > 0:
            return "helps"
        if self.high < 0:
            return "hurts"
        return "no difference detectable"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def paired_difference(a: Sequence[float], b: Sequence[float], *, confidence: float = CONFIDENCE,
                      power: float = POWER) -> PairedDifference:
    """The paired t interval of mean(a - b); ``a[i]`` and ``b[i]`` come from the same seed."""
    if len(a) != len(b):
        raise ValueError(f"paired samples differ in length ({len(a)} vs {len(b)}); pair them by seed")
    if not a:
        raise ValueError("no pairs: give at least one seed")
    diffs = [float(x) - float(y) for x, y in zip(a, b)]
    n = len(diffs)
    mean = statistics.fmean(diffs)
    if n < 2:
        return PairedDifference(mean, math.nan, math.nan, math.nan, n, math.nan)
    sd = statistics.stdev(diffs)
    se = sd / math.sqrt(n)
    t_crit = t_quantile(1 - (1 - confidence) / 2, n - 1)
    mde = (t_crit + t_quantile(power, n - 1)) * se
    return PairedDifference(mean, mean - t_crit * se, mean + t_crit * se, sd, n, mde)


def pair_by_seed(runs: Sequence[dict[str, Any]], a: str, b: str, metric: str,
                 other_runs: Sequence[dict[str, Any]] | None = None) -> tuple[list[float], list[float]]:
    """The ``metric`` of strategies ``a`` and ``b`` on the seeds both ran, in seed order; ``b`` is read
    from ``other_runs`` when given (another condition's runs, paired with these by seed)."""
    mine = {r["seed"]: r["test"].get(metric, math.nan) for r in runs if r["strategy"] == a}
    theirs = {r["seed"]: r["test"].get(metric, math.nan) for r in (runs if other_runs is None else other_runs)
              if r["strategy"] == b}
    seeds = sorted(mine.keys() & theirs.keys())
    return [mine[s] for s in seeds], [theirs[s] for s in seeds]
