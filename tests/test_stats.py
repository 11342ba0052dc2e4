"""Paired statistics against independent computations (scipy.stats and a hand-worked example)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from spectralkd_tutorial.analysis.stats import adjust_family, holm, pair_by_seed, paired_difference, sd_ratio_range


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


def test_p_value_equals_scipy_ttest_rel():
    rng = np.random.default_rng(7)
    for n in (3, 5, 8):
        a = rng.normal(0.9, 0.02, n)
        b = a - rng.normal(0.004, 0.01, n)
        assert paired_difference(a.tolist(), b.tolist()).p == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue, rel=1e-9)


def test_holm_hand_worked_example():
    # p = [0.01, 0.04, 0.03, 0.005] (m = 4): sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06,
    # 0.04 -> running max 0.02, 0.03, 0.06, 0.06; back in the order given:
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # 2 x 0.5 capped at 1; never below an earlier one
    adjusted = holm([0.02, math.nan, 0.01])
    assert math.isnan(adjusted[1]) and adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.02)


@pytest.mark.parametrize("seed", range(20))
def test_holm_rejects_what_the_step_down_procedure_rejects(seed):
    """Holm's procedure as written in 1979: compare p_(i) with alpha / (m - i + 1) in increasing order and
    stop at the first that fails. Rejected (adjusted p < alpha) must be exactly those hypotheses."""
    rng = np.random.default_rng(seed)
    p = (rng.uniform(0, 0.06, int(rng.integers(1, 9))) ** rng.uniform(0.5, 2)).tolist()
    alpha = 0.05
    rejected = set()
    for rank, i in enumerate(sorted(range(len(p)), key=lambda i: p[i])):
        if p[i] >= alpha / (len(p) - rank):
            break
        rejected.add(i)
    assert {i for i, q in enumerate(holm(p)) if q < alpha} == rejected


def test_verdicts_follow_the_adjusted_p_value_and_the_practical_threshold():
    strong = paired_difference([0.9, 0.91, 0.92, 0.93], [0.8, 0.805, 0.81, 0.82])  # +10 points, tiny spread
    small = paired_difference([0.9001, 0.9102, 0.9203, 0.9304], [0.9, 0.91, 0.92, 0.93])  # +0.025 points
    assert strong.verdict == "helps" and small.p < 0.05 and small.verdict == "helps, < 1 point"
    borderline = paired_difference([0.9, 0.93, 0.905, 0.935], [0.88, 0.9, 0.9, 0.91])
    assert borderline.p < 0.05 < 4 * borderline.p
    family = adjust_family({"a": borderline, "b": paired_difference([0.9, 0.8, 0.85], [0.88, 0.82, 0.85]),
                            "c": paired_difference([0.9, 0.8, 0.85], [0.91, 0.8, 0.86]),
                            "d": paired_difference([0.9, 0.8, 0.85], [0.89, 0.81, 0.855])})
    assert family["a"].p_adjusted == pytest.approx(holm([d.p for d in family.values()])[0])
    assert family["a"].verdict == "no difference detectable"  # significant alone, not among four


def test_identical_comparisons_count_once_in_the_family():
    same = paired_difference([0.9, 0.93, 0.905, 0.935], [0.88, 0.9, 0.9, 0.91])
    other = paired_difference([0.9, 0.8, 0.85], [0.88, 0.82, 0.85])
    family = adjust_family({"last": same, "spectral-ends (= last)": same, "first": other})
    assert family["last"].p_adjusted == pytest.approx(min(1.0, 2 * same.p))  # m = 2, not 3
    assert family["spectral-ends (= last)"].p_adjusted == family["last"].p_adjusted


def test_sd_ratio_range_equals_the_chi_square_interval():
    low, high = sd_ratio_range(3)
    assert low == pytest.approx(math.sqrt(2 / scipy_stats.chi2.ppf(0.975, 2)))
    assert high == pytest.approx(math.sqrt(2 / scipy_stats.chi2.ppf(0.025, 2)))
    assert 0.5 < low < 0.55 and 6.2 < high < 6.4  # 3 seeds: the true sd may be 0.5x to 6.3x the observed
