"""helpers.stats against scipy: Wilson intervals, the percentile bootstrap and McNemar's test."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from helpers import stats as S
from helpers.metrics import accuracy_score

COUNTS = [(0, 1), (1, 1), (0, 10), (10, 10), (1, 10), (5, 10), (247, 256), (96, 100),
          (3, 1000), (999, 1000), (123, 457)]


@pytest.mark.parametrize("method", ["wilson", "wilsoncc"])
@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.99])
@pytest.mark.parametrize(("k", "n"), COUNTS)
def test_proportion_ci_equals_scipy(k, n, level, method):
    ours = S.proportion_ci(k, n, confidence_level=level, method=method)
    theirs = scipy.stats.binomtest(k, n).proportion_ci(confidence_level=level, method=method)
    assert ours.low == pytest.approx(theirs.low, rel=1e-12, abs=1e-15)
    assert ours.high == pytest.approx(theirs.high, rel=1e-12, abs=1e-15)


def test_wilson_bounds_are_the_roots_of_the_defining_quadratic():
    k, n, z = 247, 256, scipy.stats.norm.ppf(0.975)
    low, high = S.proportion_ci(k, n)
    for p in (low, high):  # |p_hat - p| = z sqrt(p (1 - p) / n) at both ends
        assert abs(k / n - p) == pytest.approx(z * math.sqrt(p * (1 - p) / n), rel=1e-12)


def test_wald_is_the_normal_approximation_and_is_not_clipped():
    half = scipy.stats.norm.ppf(0.975) * math.sqrt(0.96 * 0.04 / 100)
    low, high = S.proportion_ci(96, 100, method="wald")
    assert (low, high) == pytest.approx((0.96 - half, 0.96 + half), rel=1e-12)
    assert S.proportion_ci(10, 10, method="wald") == (1.0, 1.0)  # zero width: the failure
    assert S.proportion_ci(99, 100, method="wald").high > 1


@pytest.mark.parametrize(("call", "message"), [
    (lambda: S.proportion_ci(11, 10), "expected k <= n, but got k = 11 and n = 10"),
    (lambda: S.proportion_ci(1, 0), "expected n to be an integer >= 1, but got 0"),
    (lambda: S.proportion_ci(0.5, 10), "expected k to be an integer >= 0, but got 0.5"),
    (lambda: S.proportion_ci(1, 10, confidence_level=95), "expected 0 < confidence_level < 1"),
    (lambda: S.proportion_ci(1, 10, method="exact"), "expected method in"),
])
def test_proportion_ci_rejects_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_proportion_ci_takes_integer_tensors():
    assert S.proportion_ci(torch.tensor(5), torch.tensor(10)) == S.proportion_ci(5, 10)


def test_bootstrap_resamples_pairs_with_replacement():
    y_true = torch.arange(50) % 2
    y_pred = y_true.clone()
    y_pred[:10] = 1 - y_pred[:10]  # 40 of 50 right
    values = S.bootstrap_distribution(accuracy_score, y_true, y_pred, n_resamples=2000,
                                      generator=torch.Generator().manual_seed(0))
    assert values.shape == (2000,) and values.dtype == torch.float64
    assert len(values.unique()) > 10  # with replacement: the resamples differ
    assert values.mean().item() == pytest.approx(0.8, abs=0.005)
    # paired: the standard deviation of a resampled proportion is sqrt(p (1 - p) / n)
    assert values.std().item() == pytest.approx(math.sqrt(0.8 * 0.2 / 50), rel=0.05)
    again = S.bootstrap_distribution(accuracy_score, y_true, y_pred, n_resamples=2000,
                                     generator=torch.Generator().manual_seed(0))
    assert torch.equal(values, again)


def test_bootstrap_ci_is_the_percentiles_of_the_distribution():
    y_true = torch.randint(3, (80,), generator=torch.Generator().manual_seed(1))
    y_pred = torch.where(torch.rand(80, generator=torch.Generator().manual_seed(2)) < 0.7,
                         y_true, (y_true + 1) % 3)
    draws = S.bootstrap_distribution(accuracy_score, y_true, y_pred, n_resamples=999,
                                     generator=torch.Generator().manual_seed(3))
    low, high = S.bootstrap_ci(accuracy_score, y_true, y_pred, confidence_level=0.9,
                               n_resamples=999, generator=torch.Generator().manual_seed(3))
    assert (low, high) == pytest.approx(tuple(np.percentile(draws.numpy(), [5, 95])), rel=1e-12)


def test_bootstrap_ci_agrees_with_scipy_within_monte_carlo_error():
    y_true = torch.randint(2, (200,), generator=torch.Generator().manual_seed(4))
    y_pred = torch.where(torch.rand(200, generator=torch.Generator().manual_seed(5)) < 0.85,
                         y_true, 1 - y_true)
    ours = S.bootstrap_ci(accuracy_score, y_true, y_pred, n_resamples=9999,
                          generator=torch.Generator().manual_seed(6))
    theirs = scipy.stats.bootstrap(
        (y_true.numpy(), y_pred.numpy()), lambda t, p, axis=-1: (t == p).mean(axis=axis),
        paired=True, vectorized=True, method="percentile", n_resamples=9999,
        rng=np.random.default_rng(0)).confidence_interval
    assert ours.low == pytest.approx(theirs.low, abs=0.011)
    assert ours.high == pytest.approx(theirs.high, abs=0.011)


def test_bootstrap_rejects_bad_input():
    with pytest.raises(ValueError, match=r"same number \(>= 1\) of samples, but got \[3, 4\]"):
        S.bootstrap_ci(accuracy_score, torch.zeros(3, dtype=torch.long),
                       torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="expected one or more tensors"):
        S.bootstrap_ci(accuracy_score, [0, 1])
    with pytest.raises(ValueError, match="n_resamples to be an integer >= 1"):
        S.bootstrap_ci(accuracy_score, torch.zeros(3), torch.zeros(3), n_resamples=0)


def test_paired_table_counts_agreement_and_disagreement():
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    a = torch.tensor([0, 1, 0, 1, 1, 0])  # right, right, wrong, wrong, right, right
    b = torch.tensor([0, 0, 0, 0, 1, 1])  # right, wrong, wrong, right, right, wrong
    assert S.paired_table(y, a, b).tolist() == [[2, 2], [1, 1]]
    with pytest.raises(TypeError, match="expected integer class labels in y_pred_a"):
        S.paired_table(y, a.double(), b)
    with pytest.raises(ValueError, match=r"y_true of shape \(N,\) .* but got shape \(6, 1\)"):
        S.paired_table(y[:, None], a, b)
    with pytest.raises(ValueError, match="the same number of samples, but got 6, 6 and 5"):
        S.paired_table(y, a, b[:5])


@pytest.mark.parametrize(("b", "c"), [(0, 0), (0, 1), (3, 3), (1, 9), (12, 4), (40, 61),
                                      (0, 25), (250, 300)])
def test_mcnemar_equals_the_binomial_and_chi_square_tests(b, c):
    table = torch.tensor([[100, b], [c, 7]])
    exact = S.mcnemar(table)
    assert exact.statistic == min(b, c)
    expected = scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
    assert exact.pvalue == pytest.approx(expected, rel=1e-10, abs=1e-300)
    if b + c:
        for correction in (True, False):
            chi2 = (abs(b - c) - correction) ** 2 / (b + c)
            result = S.mcnemar(table, exact=False, correction=correction)
            assert result.statistic == pytest.approx(chi2, rel=1e-12)
            assert result.pvalue == pytest.approx(scipy.stats.chi2.sf(chi2, 1), rel=1e-10)


def test_mcnemar_ignores_the_concordant_cells_and_rejects_bad_tables():
    assert S.mcnemar([[5, 8], [2, 1]]) == S.mcnemar([[500, 8], [2, 900]])
    for bad in ([[1, 2, 3]], [[1.0, 2.0], [3.0, 4.0]], [[1, -2], [3, 4]]):
        with pytest.raises(ValueError, match="expected a 2 x 2 table of counts"):
            S.mcnemar(bad)


def test_wilson_bounds_are_exactly_0_and_1_at_the_ends():
    for n in range(1, 60):
        for level in (0.5, 0.9, 0.95, 0.99):
            for method in ("wilson", "wilsoncc"):
                assert S.proportion_ci(0, n, level, method).low == 0.0
                assert S.proportion_ci(n, n, level, method).high == 1.0


def test_counts_may_be_numpy_integers_but_not_floats_or_bools():
    assert S.proportion_ci(np.int64(3), np.int64(10)) == S.proportion_ci(3, 10)
    for bad in (3.0, True, np.float64(3)):
        with pytest.raises(ValueError, match="expected k to be an integer >= 0"):
            S.proportion_ci(bad, 10)


def test_bootstrap_draws_every_sample():
    values = S.bootstrap_distribution(lambda x: x.double().mean(), torch.arange(3),
                                      n_resamples=4000, generator=torch.Generator().manual_seed(0))
    assert abs(values.mean().item() - 1.0) < 0.03 and values.max() == 2.0 and values.min() == 0


def test_bootstrap_ci_interpolates_between_order_statistics():
    x = torch.randn(30, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    draws = S.bootstrap_distribution(lambda v: v.mean(), x, n_resamples=999,
                                     generator=torch.Generator().manual_seed(3))
    interval = S.bootstrap_ci(lambda v: v.mean(), x, confidence_level=0.9, n_resamples=999,
                              generator=torch.Generator().manual_seed(3))
    assert interval == pytest.approx(tuple(np.percentile(draws.numpy(), [5, 95])), rel=1e-12)


def test_bootstrap_refuses_a_statistic_with_several_values():
    with pytest.raises(ValueError, match=r"statistic to return one number, but it returned "
                                         r"shape \(3,\)"):
        S.bootstrap_ci(lambda v: v, torch.arange(3.0), n_resamples=5)


def test_mcnemar_without_disagreements_and_its_error_message():
    for correction in (True, False):
        assert S.mcnemar([[5, 0], [0, 7]], exact=False, correction=correction) == (0.0, 1.0)
    assert S.mcnemar([[5, 0], [0, 7]]) == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"torch.float32 of shape \(2, 2\)$"):
        S.mcnemar([[1.0, 2.0], [3.0, 4.0]])
    with pytest.raises(ValueError, match="with a negative count"):
        S.mcnemar([[1, -2], [3, 4]])
