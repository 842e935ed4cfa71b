"""helpers.calibration against scikit-learn and scipy: curves, ECE, temperature and Platt."""

import inspect
import math
import sys
import types
import warnings

import numpy as np
import pytest
import sklearn.calibration as skc
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning

from helpers import calibration as C
from helpers import verify as V

# --------------------------------------------------------------------------------------------
# The registered checks, and mutants they catch
# --------------------------------------------------------------------------------------------


def test_every_registered_check_passes_on_the_cpu():
    table = V.run_checks(C.CHECKS, devices=["cpu"])
    assert table.ok and all(row.passed for row in table.rows), table.to_text()
    assert len({c.name for c in C.CHECKS}) == len(C.CHECKS)
    assert all(V._REGISTRY.get(c.name) is c for c in C.CHECKS)
    assert all("calibration" in c.name for c in C.CHECKS)  # python -m helpers.verify -k calibration


MUTANTS = {  # name: (the line as it is, the line mutated, a check that must fail)
    "ECE weighting the bins equally, not by their counts": (
        "weight = bins.count.to(gap.dtype) / bins.count.sum()  # n_b / N",
        "weight = torch.ones_like(gap) / len(gap)  # 1 / (number of bins)",
        "expected_calibration_error l1/l2/max strategy='uniform'"),
    "bins closed on the left, torchmetrics' side of the edge": (
        "return torch.searchsorted(inner_edges, y_prob)",
        "return torch.searchsorted(inner_edges, y_prob, right=True)",
        "calibration_curve strategy='uniform', n_bins=10"),
    "edges from torch.linspace, which differs from NumPy's in the last bit": (
        "return [k * step for k in range(n_bins)] + [1.0]",
        "return torch.linspace(0, 1, n_bins + 1, dtype=torch.float64).tolist()",
        "calibration_curve strategy='uniform', n_bins=10"),
    "the inverse temperature 1/T returned for T": (
        "return torch.tensor(math.exp(u), dtype=z.dtype, device=z.device)",
        "return torch.tensor(math.exp(-u), dtype=z.dtype, device=z.device)",
        "fit_temperature binary vs sklearn"),
    "Platt's targets without the prior's +1 and +2": (
        "(n_pos + 1.0) / (n_pos + 2.0)], dtype=dtype,",
        "n_pos / (n_pos + 0.0)], dtype=dtype,",
        "fit_platt smoothed_targets=True"),
}


@pytest.fixture(params=sorted(MUTANTS))
def mutant(request, monkeypatch):
    """helpers.calibration with one line changed, its checks registered nowhere."""
    original, mutated, check = MUTANTS[request.param]
    source = inspect.getsource(C)
    assert source.count(original) == 1, f"the line to mutate is gone: {original}"
    module = types.ModuleType("helpers.calibration_mutant")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(V, "_REGISTRY", {})
    exec(compile(source.replace(original, mutated), "calibration_mutant.py", "exec"),
         module.__dict__)
    return module, check


def test_the_checks_catch_the_mutant(mutant):
    module, check = mutant
    checks = [c for c in module.CHECKS if c.name.startswith(check)]
    table = V.run_checks(checks, devices=["cpu"], dtypes=["float64"])
    assert checks and table.failures, table.to_text()


# --------------------------------------------------------------------------------------------
# calibration_curve against scikit-learn over many random cases
# --------------------------------------------------------------------------------------------


def _random_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, int]:
    """Labels and probabilities of one of many shapes: on the edges, near 0 and 1, all equal."""
    n, n_bins = int(rng.integers(1, 60)), int(rng.integers(1, 25))
    kind = rng.integers(6)
    if kind == 0:
        p = rng.random(n)
    elif kind == 1:  # exactly on scikit-learn's uniform edges, 0 and 1 included
        p = np.linspace(0, 1, n_bins + 1)[rng.integers(0, n_bins + 1, n)]
    elif kind == 2:  # a coarse grid: ties, equal quantile edges, empty bins
        p = rng.integers(0, 11, n) / 10
    elif kind == 3:  # over-confident: crowded at 0 and 1
        p = rng.beta(0.1, 0.1, n)
    elif kind == 4:  # all in one bin
        p = np.full(n, rng.random())
    else:
        p = 1 / (1 + np.exp(-rng.normal(-4, 4, n)))
    p[rng.random(n) < 0.1] = 0.0
    p[rng.random(n) < 0.1] = 1.0
    y = (rng.random(n) < rng.choice([0.0, 0.05, 0.3, 1.0])).astype(np.int64)
    return y, p, n_bins


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_calibration_curve_equals_sklearn_on_random_cases(strategy, dtype):
    rng = np.random.default_rng(2024)
    for _ in range(200):
        y, p, n_bins = _random_case(rng)
        p = p.astype(dtype)
        theirs = skc.calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
        ours = C.calibration_bins(torch.from_numpy(y), torch.from_numpy(p), n_bins=n_bins,
                                  strategy=strategy)
        assert ours.prob_true.dtype == ours.prob_pred.dtype == torch.float64
        for mine, reference in zip(ours[:2], theirs):  # the same bins: equal up to rounding
            np.testing.assert_allclose(mine.numpy(), reference, rtol=1e-12, atol=1e-15)
        assert int(ours.count.sum()) == len(y) and bool((ours.count > 0).all())


def test_the_curve_is_the_first_two_fields_of_the_bins():
    y, p = torch.tensor([0, 1, 1, 0, 1]), torch.tensor([0.1, 0.35, 0.9, 0.6, 0.95])
    bins = C.calibration_bins(y, p, n_bins=4)
    prob_true, prob_pred = C.calibration_curve(y, p, n_bins=4)
    assert torch.equal(prob_true, bins.prob_true) and torch.equal(prob_pred, bins.prob_pred)
    assert bins.count.tolist() == [1, 1, 1, 2] and bins.count.dtype == torch.int64


def test_zero_and_one_fall_in_the_first_and_last_bins():
    y, p = torch.tensor([0, 0, 1, 1]), torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    prob_true, prob_pred = C.calibration_curve(y, p, n_bins=5)
    assert prob_true.tolist() == [0.0, 1.0] and prob_pred.tolist() == [0.0, 1.0]
    assert C.calibration_bins(y, p, n_bins=5, strategy="quantile").count.tolist() == [2, 2]


@pytest.mark.parametrize("strategy", ["uniform", "quantile"])
def test_equal_probabilities_make_one_bin(strategy):
    y, p = torch.tensor([0, 1, 0, 0]), torch.full((4,), 0.42, dtype=torch.float64)
    bins = C.calibration_bins(y, p, n_bins=10, strategy=strategy)
    assert bins.count.tolist() == [4]
    assert bins.prob_true.tolist() == [0.25] and bins.prob_pred.tolist() == pytest.approx([0.42])


def test_empty_bins_are_dropped():
    y, p = torch.tensor([0, 1, 0, 1]), torch.tensor([0.05, 0.07, 0.93, 0.99])
    bins = C.calibration_bins(y, p, n_bins=10)
    assert bins.count.tolist() == [2, 2] and bins.prob_true.tolist() == [0.5, 0.5]


def test_a_probability_on_an_edge_counts_in_the_lower_bin():
    # 0.5 is the edge between the two bins: (0.5, 1] does not hold it, [0, 0.5] does
    y, p = torch.tensor([1, 0]), torch.tensor([0.5, 0.2], dtype=torch.float64)
    assert C.calibration_bins(y, p, n_bins=2).count.tolist() == [2]
    assert [a.tolist() for a in skc.calibration_curve(y.numpy(), p.numpy(), n_bins=2)] == [
        [0.5], [0.35]]
    # one bin: |0.5 - 0.35| = 0.15. torchmetrics 1.9.0's binary_calibration_error (bins
    # [e_k, e_k+1)) puts 0.5 in the upper bin and gets 1/2 |1 - 0.5| + 1/2 |0 - 0.2| = 0.35.
    assert C.expected_calibration_error(y, p, n_bins=2).item() == pytest.approx(0.15, rel=1e-12)


def test_pos_label_and_labels_minus_one_one():
    rng = np.random.default_rng(5)
    p = rng.random(40)
    y01 = (rng.random(40) < 0.3).astype(np.int64)
    y_pm = 2 * y01 - 1
    for y, options in ((y01, {"pos_label": 0}), (y_pm, {}), (y01 * 5 + 2, {"pos_label": 7})):
        theirs = skc.calibration_curve(y, p, n_bins=4, **options)
        ours = C.calibration_curve(torch.from_numpy(y), torch.from_numpy(p), n_bins=4, **options)
        for mine, reference in zip(ours, theirs):
            np.testing.assert_allclose(mine.numpy(), reference, rtol=1e-12, atol=0)


def test_bool_labels_and_lists_are_accepted():
    ours = C.calibration_curve([True, False, True], [0.9, 0.2, 0.6], n_bins=2)
    assert [t.tolist() for t in ours] == [[0.0, 1.0], pytest.approx([0.2, 0.75])]


# --------------------------------------------------------------------------------------------
# The expected calibration error
# --------------------------------------------------------------------------------------------


def test_ece_by_hand():
    # bins [0, 0.5] and (0.5, 1]: {0.1, 0.2, 0.3} with 1 positive of 3, {0.8, 0.9} with 2 of 2
    y, p = torch.tensor([0, 1, 0, 1, 1]), torch.tensor([0.1, 0.2, 0.3, 0.8, 0.9],
                                                      dtype=torch.float64)
    gaps, weights = (1 / 3 - 0.2, 1 - 0.85), (3 / 5, 2 / 5)
    ece = C.expected_calibration_error(y, p, n_bins=2)
    assert ece.dtype == torch.float64 and ece.shape == ()
    assert ece.item() == pytest.approx(0.6 * 2 / 15 + 0.4 * 0.15, rel=1e-12)  # = 0.14
    assert ece.item() == pytest.approx(0.14, rel=1e-12)
    assert C.expected_calibration_error(y, p, n_bins=2, norm="max").item() == pytest.approx(
        0.15, rel=1e-12)
    assert C.expected_calibration_error(y, p, n_bins=2, norm="l2").item() == pytest.approx(
        math.sqrt(sum(w * g**2 for w, g in zip(weights, gaps))), rel=1e-12)


@pytest.mark.parametrize("norm", C.NORMS)
@pytest.mark.parametrize("strategy", C.STRATEGIES)
def test_ece_is_zero_when_every_bin_mean_is_right(strategy, norm):
    y = torch.tensor([1, 0, 0, 0, 1, 1, 1, 0, 0, 1])
    p = torch.tensor([0.25] * 4 + [0.75] * 4 + [0.5] * 2, dtype=torch.float64)
    assert C.expected_calibration_error(y, p, n_bins=4, strategy=strategy, norm=norm).item() == 0


def test_ece_is_the_mean_over_samples_of_their_bins_gap():
    rng = np.random.default_rng(7)
    p = rng.beta(0.3, 0.5, 500)
    y = (rng.random(500) < p**2).astype(np.int64)
    edges = np.linspace(0, 1, 11)
    bins = np.searchsorted(edges[1:-1], p)
    expected = sum(abs(np.sum(y[bins == b] - p[bins == b])) for b in range(10)) / len(p)
    ours = C.expected_calibration_error(torch.from_numpy(y), torch.from_numpy(p))  # 10 bins
    assert ours.item() == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------------------------
# Temperature scaling
# --------------------------------------------------------------------------------------------


def _simulated_multiclass(n: int, temperature: float, seed: int):
    """Logits `temperature` times too large for labels drawn from the true softmax; 4 classes,
    class 3 rare."""
    generator = torch.Generator().manual_seed(seed)
    eta = 1.5 * torch.randn(n, 4, generator=generator, dtype=torch.float64)
    eta[:, 3] -= 3.0
    y = torch.multinomial(torch.softmax(eta, dim=1), 1, generator=generator).squeeze(1)
    return temperature * eta, y


def test_temperature_keeps_the_argmax_and_lowers_the_loss_of_an_overconfident_model():
    logits, y = _simulated_multiclass(3000, 3.0, seed=0)
    temperature = C.fit_temperature(logits, y)
    assert temperature.dtype == torch.float64 and temperature.shape == () and temperature > 1
    assert torch.equal((logits / temperature).argmax(1), logits.argmax(1))
    assert F.cross_entropy(logits / temperature, y) < F.cross_entropy(logits, y) - 0.1
    # at the minimum the mean expected logit equals the mean logit of the true class: L'(1/T) = 0
    p = torch.softmax(logits / temperature, dim=1)
    mean_expected, mean_true = (p * logits).sum(1).mean(), logits.gather(1, y[:, None]).mean()
    assert mean_expected.item() == pytest.approx(mean_true.item(), rel=1e-13)


@pytest.mark.parametrize(("true_temperature", "seed"), [(0.5, 1), (2.5, 2)])
def test_temperature_recovers_the_one_that_generated_the_data(true_temperature, seed):
    """The MLE of beta = 1/T is within 4 standard errors, 1 / sqrt(N L''(beta)), of the truth."""
    n = 10000
    logits, y = _simulated_multiclass(n, true_temperature, seed=seed)
    beta = 1 / C.fit_temperature(logits, y).item()
    p = torch.softmax(beta * logits, dim=1)
    expected = (p * logits).sum(1, keepdim=True)
    fisher = (p * (logits - expected) ** 2).sum(1).mean().item()  # L''(beta), per sample
    standard_error = 1 / math.sqrt(n * fisher)
    assert abs(beta - 1 / true_temperature) < 4 * standard_error
    assert standard_error < 0.02 / true_temperature  # the bound says something at this size


def test_binary_logits_are_two_class_logits():
    y, z = C._overconfident(torch.Generator().manual_seed(3), n=500)
    binary = C.fit_temperature(z, y)
    for columns in (torch.stack([torch.zeros_like(z), z], 1), torch.stack([-z / 2, z / 2], 1)):
        assert C.fit_temperature(columns, y).item() == pytest.approx(binary.item(), rel=1e-12)
    assert C.fit_temperature(z, y.bool()).item() == binary.item()


def test_temperature_scales_with_the_logits():
    logits, y = _simulated_multiclass(400, 2.0, seed=4)
    temperature = C.fit_temperature(logits, y).item()
    assert C.fit_temperature(7.5 * logits, y).item() == pytest.approx(7.5 * temperature, rel=1e-12)
    assert C.fit_temperature(logits + 3.0, y).item() == pytest.approx(temperature, rel=1e-12)


def test_temperature_equals_sklearns_temperature_scaling():
    """scikit-learn 1.8+ fits beta = 1/T with minimize_scalar (about 1e-8 accurate); for binary
    decision values x it uses the logits (-x, x), so its beta there is 1 / (2T)."""
    scaling = getattr(skc, "_TemperatureScaling", None)
    if scaling is None:
        pytest.skip("this scikit-learn has no temperature scaling")
    logits, y = _simulated_multiclass(500, 2.0, seed=5)
    beta = scaling().fit(logits.numpy(), y.numpy()).beta_
    assert 1 / C.fit_temperature(logits, y).item() == pytest.approx(beta, rel=1e-6)
    y, z = C._overconfident(torch.Generator().manual_seed(6), n=500)
    beta = scaling().fit(z.numpy(), y.numpy()).beta_
    assert 1 / C.fit_temperature(z, y).item() == pytest.approx(2 * beta, rel=1e-6)


def test_temperature_warns_when_out_of_iterations():
    logits, y = _simulated_multiclass(300, 3.0, seed=7)
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=1"):
        C.fit_temperature(logits, y, max_iter=1)


# --------------------------------------------------------------------------------------------
# Platt scaling
# --------------------------------------------------------------------------------------------


def _simulated_scores(n: int, a: float, b: float, seed: int):
    generator = torch.Generator().manual_seed(seed)
    s = 2.0 * torch.randn(n, generator=generator, dtype=torch.float64)
    y = (torch.rand(n, generator=generator, dtype=torch.float64) < torch.sigmoid(a * s + b))
    return s, y.long()


def test_platt_recovers_the_parameters_that_generated_the_data():
    """Within 4 standard errors: the square roots of the diagonal of (N H)^-1 at the fit."""
    n, a, b = 20000, 1.2, -5.0  # about 6 % positives
    s, y = _simulated_scores(n, a, b, seed=0)
    assert 0.03 < y.double().mean() < 0.09
    fit = torch.stack(C.fit_platt(s, y))
    features = torch.stack([s, torch.ones_like(s)], 1)
    p = torch.sigmoid(features @ fit)
    hessian = (features * (p * (1 - p))[:, None]).T @ features  # N times the mean Hessian
    standard_errors = torch.linalg.inv(hessian).diagonal().sqrt()
    assert ((fit - torch.tensor([a, b], dtype=torch.float64)).abs() < 4 * standard_errors).all()
    assert (standard_errors < torch.tensor([0.05, 0.2], dtype=torch.float64)).all()


def test_platt_restores_the_probabilities_that_class_weights_inflated():
    """Weighting the positives of a 5 % class by 19 shifts the best logit by log 19; Platt's
    intercept takes it back."""
    generator = torch.Generator().manual_seed(8)
    eta = -4.0 + 1.5 * torch.randn(4000, generator=generator, dtype=torch.float64)
    y = (torch.rand(4000, generator=generator, dtype=torch.float64) < torch.sigmoid(eta)).long()
    logit = eta + math.log(19)  # the class-weighted model's logits
    before = torch.sigmoid(logit)
    a, b = C.fit_platt(logit, y)
    after = torch.sigmoid(a * logit + b)
    assert before.mean() > 3 * y.double().mean()
    # at the maximum, d/db of the log-likelihood is sum(y - p) = 0: the rates agree exactly
    assert after.mean().item() == pytest.approx(y.double().mean().item(), rel=1e-12)
    assert C.expected_calibration_error(y, after) < C.expected_calibration_error(y, before) / 3
    assert a.item() == pytest.approx(1.0, abs=0.2)  # the truth: a = 1, b = -log 19
    assert b.item() == pytest.approx(-math.log(19), abs=0.5)


def test_platt_follows_an_affine_change_of_the_scores():
    s, y = _simulated_scores(1000, 1.0, -3.0, seed=2)
    a, b = C.fit_platt(s, y)
    a2, b2 = C.fit_platt(4 * s - 1, y)  # a s + b = (a / 4)(4 s - 1) + (b + a / 4)
    assert a2.item() == pytest.approx(a.item() / 4, rel=1e-12)
    assert b2.item() == pytest.approx(b.item() + a.item() / 4, rel=1e-12)


def test_smoothed_targets_match_sklearns_sigmoid_calibration():
    """scikit-learn's private `_sigmoid_calibration` fits Platt's targets by L-BFGS (gradient
    tolerance 1e-6) and returns (A, B) of 1 / (1 + exp(A s + B)): (A, B) = (-a, -b)."""
    sigmoid_calibration = getattr(skc, "_sigmoid_calibration", None)
    if sigmoid_calibration is None:
        pytest.skip("this scikit-learn has no _sigmoid_calibration")
    y, logit = C._overconfident(torch.Generator().manual_seed(9), n=1000)
    a, b = C.fit_platt(logit, y, smoothed_targets=True)
    big_a, big_b = sigmoid_calibration(logit.numpy(), y.numpy())
    assert (-big_a, -big_b) == pytest.approx((a.item(), b.item()), rel=1e-4)
    plain = C.fit_platt(logit, y)
    assert plain[0].item() != pytest.approx(a.item(), rel=1e-3)  # the prior does move the fit


def test_platt_warns_when_out_of_iterations():
    s, y = _simulated_scores(300, 1.0, -3.0, seed=3)
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=1"):
        C.fit_platt(s, y, max_iter=1)


def test_smoothed_targets_fit_separated_classes():
    s, y = torch.tensor([-2.0, -1.0, 1.0, 3.0], dtype=torch.float64), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="pass smoothed_targets=True"):
        C.fit_platt(s, y)
    a, b = C.fit_platt(s, y, smoothed_targets=True)  # targets 1/4 and 3/4: finite
    assert 0 < a.item() < 10 and math.isfinite(b.item())


# --------------------------------------------------------------------------------------------
# Errors that teach
# --------------------------------------------------------------------------------------------

Y, P = torch.tensor([0, 1, 1, 0]), torch.tensor([0.1, 0.8, 0.7, 0.3])
LOGITS, TARGETS = _simulated_multiclass(50, 2.0, seed=0)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: C.calibration_curve(Y, P + 0.25), ValueError,
     r"expected probabilities in \[0, 1\] in y_prob, but got values from 0.35 to 1.05"),
    (lambda: C.calibration_curve(Y, P - 0.2), ValueError, r"but got values from -0.1 to 0.6"),
    (lambda: C.calibration_curve(Y, P, n_bins=0), ValueError,
     "expected n_bins to be an integer >= 1, but got 0"),
    (lambda: C.calibration_curve(Y, P, n_bins=2.5), ValueError, "but got 2.5"),
    (lambda: C.calibration_curve(Y, P, n_bins=True), ValueError, "but got True"),
    (lambda: C.calibration_curve(Y, P, strategy="kmeans"), ValueError,
     "expected strategy to be 'uniform' or 'quantile', but got 'kmeans'"),
    (lambda: C.calibration_curve(Y, P[:3]), ValueError,
     "expected y_true and y_prob of the same length, but got 4 and 3"),
    (lambda: C.calibration_curve(Y.double() / 2, P), ValueError,
     "expected class labels in y_true .integers, or floats holding whole numbers"),
    (lambda: C.calibration_curve(Y, Y), TypeError, "expected floating-point scores in y_prob"),
    (lambda: C.calibration_curve(Y, P[:, None]), ValueError, r"y_prob of shape \(N,\)"),
    (lambda: C.calibration_curve(torch.tensor([0, 1, 2, 1]), P), ValueError,
     r"expected binary y_true, but it holds 3 classes \[0, 1, 2\]"),
    (lambda: C.calibration_curve(Y + 2, P), ValueError,
     r"y_true holds the classes \[2, 3\], so pos_label must be given"),
    (lambda: C.calibration_curve(Y[:0], P[:0]), ValueError, "expected at least one sample"),
    (lambda: C.calibration_curve(Y, P.where(Y == 0, math.nan)), ValueError,
     "expected finite scores in y_prob"),
    (lambda: C.expected_calibration_error(Y, P, norm="l3"), ValueError,
     "expected norm to be 'l1', 'l2' or 'max', but got 'l3'"),
    (lambda: C.expected_calibration_error(Y, P, n_bins=-1), ValueError, "n_bins"),
    (lambda: C.fit_platt(P, torch.zeros(4, dtype=torch.long)), ValueError,
     "expected both classes 0 and 1 in targets, but got only the class 0"),
    (lambda: C.fit_platt(P, Y.double() + 0.5), ValueError, "floats holding whole numbers"),
    (lambda: C.fit_platt(P, Y * 2), ValueError, r"expected targets in \{0, 1\}"),
    (lambda: C.fit_platt(P[:3], Y), ValueError,
     "expected scores and targets of the same length, but got 3 and 4"),
    (lambda: C.fit_platt(torch.ones(4), Y), ValueError, "expected scores that vary"),
    (lambda: C.fit_platt(P, Y), ValueError, "the scores separate them"),
    (lambda: C.fit_temperature(LOGITS, TARGETS.double()), TypeError,
     "expected integer class labels in targets"),
    (lambda: C.fit_temperature(LOGITS, TARGETS + 1), ValueError, r"expected targets in 0\.\.3"),
    (lambda: C.fit_temperature(P, Y * 2), ValueError, "expected targets 0 or 1 for binary logits"),
    (lambda: C.fit_temperature(LOGITS[:, :1], TARGETS * 0), ValueError,
     r"expected logits of shape \(N,\) .* or \(N, C\) with C >= 2 .* but got shape \(50, 1\)"),
    (lambda: C.fit_temperature(LOGITS[:10], TARGETS), ValueError,
     "expected logits and targets of the same length, but got 10 and 50"),
    (lambda: C.fit_temperature(LOGITS, LOGITS.argmax(1)), ValueError,
     "rank the true class first for every sample"),
    (lambda: C.fit_temperature(LOGITS, LOGITS.argmin(1)), ValueError,
     "score the true class above the mean logit"),
    (lambda: C.fit_temperature(LOGITS.long(), TARGETS), TypeError,
     "expected floating-point logits"),
    (lambda: C.fit_temperature(LOGITS, TARGETS, max_iter=0), ValueError,
     "expected max_iter to be an integer >= 1, but got 0"),
])
def test_bad_input_is_an_error_that_says_what_was_expected(call, error, message):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and nothing is only a warning
        with pytest.raises(error, match=message):
            call()


def test_whole_number_float_labels_are_taken_as_scikit_learn_takes_them():
    # BCE training keeps 0.0 / 1.0 float targets; scikit-learn's calibration_curve accepts them
    y = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    p = torch.tensor([0.1, 0.8, 0.6, 0.3, 0.9, 0.45, 0.55, 0.2], dtype=torch.float64)
    prob_true, prob_pred = C.calibration_curve(y, p, n_bins=3)
    expected_true, expected_pred = skc.calibration_curve(y.numpy(), p.numpy(),
                                                         n_bins=3)
    np.testing.assert_allclose(prob_true.numpy(), expected_true, rtol=1e-12)
    np.testing.assert_allclose(prob_pred.numpy(), expected_pred, rtol=1e-12)
    a, b = C.fit_platt(p, y)
    torch.testing.assert_close((a, b), C.fit_platt(p, y.long()))
    with pytest.raises(ValueError, match="whole numbers"):
        C.calibration_curve(torch.tensor([0.0, 0.5]), torch.tensor([0.1, 0.2]))
