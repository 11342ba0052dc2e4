"""Paired statistics against independent computations (scipy.stats and a hand-worked example)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from spectralkd_tutorial.stats import pair_by_seed, paired_difference


def test_hand_worked_example():
    # d = [1, 2, 3]: mean 2, sd 1, se 1/sqrt(3); t_{0.975, 2} = 4.302652729911275 (tables)
    result = paired_difference([2.0, 4.0, 6.0], [1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)
    assert result.mean == pytest.approx(2.0)
    assert result.sd == pytest.approx(1.0)
    assert (result.low, result.high) == pytest.approx((2.0 - half, 2.0 + half))
    # MDE with 80% power: (t_{0.975,2} + t_{0.80,2}) * se, t_{0.80,2} = 1.0606601717798212
    assert result.mde == pytest.approx((4.302652729911275 + 1.0606601717798212) / math.sqrt(3))
    assert result.verdict == "no difference detectable"  # low = -0.48 < 0


@pytest.mark.parametrize("seed", range(5))
def test_interval_equals_scipy_ttest_rel(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 9))
    a = rng.normal(0.9, 0.02, n)
    b = a - rng.normal(0.005 * seed, 0.01, n)
    ours = paired_difference(a.tolist(), b.tolist())
    reference = scipy_stats.ttest_rel(a, b).confidence_interval(0.95)
    assert (ours.low, ours.high) == pytest.approx((reference.low, reference.high), rel=1e-9, abs=1e-12)
    assert ours.mean == pytest.approx(float(np.mean(a - b)))


def test_verdicts_follow_the_interval():
    assert paired_difference([0.9, 0.91, 0.92, 0.93], [0.8, 0.805, 0.81, 0.82]).verdict == "helps"
    assert paired_difference([0.8, 0.805, 0.81, 0.82], [0.9, 0.91, 0.92, 0.93]).verdict == "hurts"
    assert paired_difference([0.8], [0.7]).verdict == "too few seeds"


def test_pairs_are_matched_by_seed_not_by_order():
    runs = [{"strategy": "a", "seed": 2, "test": {"m": 0.3}}, {"strategy": "b", "seed": 0, "test": {"m": 0.0}},
            {"strategy": "a", "seed": 0, "test": {"m": 0.1}}, {"strategy": "b", "seed": 2, "test": {"m": 0.2}},
            {"strategy": "a", "seed": 5, "test": {"m": 0.9}}]  # seed 5 has no partner: dropped
    assert pair_by_seed(runs, "a", "b", "m") == ([0.1, 0.3], [0.0, 0.2])


def test_bad_pairs_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="at least one seed"):
        paired_difference([], [])
