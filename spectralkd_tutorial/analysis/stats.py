"""Paired comparisons over seeds: is strategy A better than strategy B, beyond seed noise?

Every student of a seed starts from the same weights and sees the same data order, so the two
runs of a seed form a pair and the seed-to-seed variation common to both cancels. With n seeds
and per-seed differences d_i = a_i - b_i:

    mean   d̄ = (1/n) Σ d_i
    sd     s = sqrt( Σ (d_i - d̄)^2 / (n - 1) )
    95% CI d̄ ± t_{0.975, n-1} · s / √n                         (paired t interval)
    p      2 · P(T_{n-1} > |d̄| / (s / √n))                     (two-sided paired t test)
    MDE    (t_{0.975, n-1} + t_{0.80, n-1}) · s / √n            (planning figure, see below)

**Several comparisons at once.** A condition compares 6-8 strategies with ``none``; at 5% each, the
chance that at least one of m true-zero differences looks real is up to 1 - 0.95^m (26% for m = 6).
Holm's step-down adjustment (:func:`holm`) keeps that family-wise chance at 5%: sort the m p-values,
multiply the i-th smallest by (m - i + 1), and make the sequence non-decreasing. The verdict words
follow the *adjusted* p-value; the intervals stay the unadjusted 95% ones.

Verdict: ``helps`` / ``hurts`` when the (adjusted) p-value is below 0.05, with ``, < 1 point`` when the
mean difference is smaller than :data:`PRACTICAL_THRESHOLD` (what a user would notice), otherwise
``no difference detectable``.

The MDE is the true difference that the design would detect with 80% power *if the seed-to-seed sd
were exactly the observed s*, at the unadjusted 5% level. With 3 seeds s rests on 2 degrees of freedom
and its own 95% range spans about 0.5x to 6x (:func:`sd_ratio_range`), so the MDE is an order of
magnitude, not a guarantee. Neither interval nor MDE includes the sampling of the test set: every
student is scored on the same utterances, so the intervals say how much the result moves with the
seed, not how it would move on another test set of the same size.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from typing import Any, Sequence

CONFIDENCE = 0.95
POWER = 0.80
PRACTICAL_THRESHOLD = 0.01  # one point of accuracy: 45 of CLINC150's 4,500 in-scope test utterances


def t_quantile(p: float, dof: int) -> float:
    """The p-quantile of Student's t with ``dof`` degrees of freedom."""
    from scipy.stats import t

    return float(t.ppf(p, dof))


@dataclass(frozen=True)
class PairedDifference:
    """a - b over paired seeds, with its interval, p-value and the smallest detectable difference;
    ``p_adjusted`` (Holm, over the comparisons made together) decides the verdict when set."""

    mean: float
    low: float
    high: float
    sd: float
    n: int
    mde: float
    p: float = math.nan
    p_adjusted: float | None = None

    @property
    def verdict(self) -> str:
        if self.n < 2 or math.isnan(self.low):
            return "too few seeds"
        p = self.p if self.p_adjusted is None else self.p_adjusted
        if math.isnan(p):  # an interval given without its test: whether it excludes 0 (same as p < 0.05)
            p = 0.0 if self.low > 0 or self.high < 0 else 1.0
        if not p < 1 - CONFIDENCE:
            return "no difference detectable"
        word = "helps" if self.mean > 0 else "hurts"
        return word if abs(self.mean) >= PRACTICAL_THRESHOLD else f"{word}, < {100 * PRACTICAL_THRESHOLD:g} point"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "verdict": self.verdict}


def paired_difference(a: Sequence[float], b: Sequence[float], *, confidence: float = CONFIDENCE,
                      power: float = POWER) -> PairedDifference:
    """The paired t interval and test of mean(a - b); ``a[i]`` and ``b[i]`` come from the same seed."""
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
    return PairedDifference(mean, mean - t_crit * se, mean + t_crit * se, sd, n, mde, _two_sided_p(mean, se, n - 1))


def _two_sided_p(mean: float, se: float, dof: int) -> float:
    """P(|T_dof| >= |mean / se|); a difference without spread is certain (p = 0) unless it is 0 (p = 1)."""
    from scipy.stats import t

    if se == 0:
        return 1.0 if mean == 0 else 0.0
    return float(2 * t.sf(abs(mean) / se, dof))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given (NaN stays NaN and is not counted).

    With the m p-values sorted, p_(1) <= ... <= p_(m): adjusted_(i) = max_{j <= i} min(1, (m - j + 1) p_(j)).
    Rejecting where adjusted < 0.05 keeps the chance of any false "helps"/"hurts" among the m at 5%."""
    order = sorted((i for i, p in enumerate(p_values) if not math.isnan(p)), key=lambda i: p_values[i])
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def adjust_family(differences: dict[Any, PairedDifference]) -> dict[Any, PairedDifference]:
    """The comparisons made together, each with its Holm-adjusted p-value. Comparisons on identical
    paired data (a strategy that chose another's layers) are one test, counted once."""
    import dataclasses

    keys = list(differences)
    distinct: dict[tuple, list[Any]] = {}
    for key in keys:
        d = differences[key]
        distinct.setdefault((round(d.mean, 12), round(d.sd, 12) if not math.isnan(d.sd) else None, d.n, round(d.p, 12)
                             if not math.isnan(d.p) else None), []).append(key)
    groups = list(distinct.values())
    adjusted = holm([differences[group[0]].p for group in groups])
    return {key: dataclasses.replace(differences[key], p_adjusted=None if math.isnan(p) else p)
            for group, p in zip(groups, adjusted) for key in group}


def sd_ratio_range(n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The range of true-sd / observed-sd that a sample of n (normal) values leaves open:
    sqrt((n-1) / chi2_{hi, n-1}) to sqrt((n-1) / chi2_{lo, n-1})."""
    from scipy.stats import chi2

    dof = n - 1
    tail = (1 - confidence) / 2
    return math.sqrt(dof / chi2.ppf(1 - tail, dof)), math.sqrt(dof / chi2.ppf(tail, dof))


def pair_by_seed(runs: Sequence[dict[str, Any]], a: str, b: str, metric: str,
                 other_runs: Sequence[dict[str, Any]] | None = None) -> tuple[list[float], list[float]]:
    """The ``metric`` of strategies ``a`` and ``b`` on the seeds both ran, in seed order; ``b`` is read
    from ``other_runs`` when given (another condition's runs, paired with these by seed)."""
    mine = {r["seed"]: r["test"].get(metric, math.nan) for r in runs if r["strategy"] == a}
    theirs = {r["seed"]: r["test"].get(metric, math.nan) for r in (runs if other_runs is None else other_runs)
              if r["strategy"] == b}
    seeds = sorted(mine.keys() & theirs.keys())
    return [mine[s] for s in seeds], [theirs[s] for s in seeds]
