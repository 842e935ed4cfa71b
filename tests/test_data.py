"""helpers.data: shapes, dtypes, seeded reproducibility, the bundled data sets, and the loader."""

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.datasets import load_breast_cancer, load_digits

from helpers import data


def seeded(seed=0):
    return torch.Generator().manual_seed(seed)


def test_linear_regression_is_the_stated_model():
    X, y, w, b = data.linear_regression(500, 3, noise=0.0, generator=seeded())
    assert X.shape == (500, 3) and y.shape == (500,) and w.shape == (3,) and b.shape == ()
    assert X.dtype == torch.float64 and -1 <= b <= 1
    torch.testing.assert_close(y, X @ w + b, rtol=0, atol=1e-12)  # noise 0: exactly linear
    _, noisy, _, _ = data.linear_regression(500, 3, noise=0.5, generator=seeded())
    assert 0.4 < (noisy - y).std() < 0.6  # the same draw, plus noise of the stated size


def test_linear_classification_is_separable_by_its_map():
    X, y = data.linear_classification(200, 4, 5, generator=seeded(1))
    assert X.shape == (200, 4) and y.dtype == torch.long and set(y.tolist()) <= set(range(5))
    model = torch.nn.Linear(4, 5, bias=False, dtype=torch.float64)
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=200)

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(X), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    assert (model(X).argmax(1) == y).all()


def test_the_same_generator_seed_gives_the_same_data():
    first = data.linear_regression(10, 2, generator=seeded(3))
    again = data.linear_regression(10, 2, generator=seeded(3))
    other = data.linear_regression(10, 2, generator=seeded(4))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])


def test_breast_cancer_is_split_stratified_with_malignant_as_positive():
    X_train, X_test, y_train, y_test = data.breast_cancer(generator=seeded())
    assert len(y_train) + len(y_test) == 569 and X_train.shape[1] == 30
    assert (y_train == 1).sum() + (y_test == 1).sum() == 212  # malignant is the positive class
    assert (y_test == 1).sum() == round(0.25 * 212) and (y_test == 0).sum() == round(0.25 * 357)
    torch.testing.assert_close(X_train.mean(0), torch.zeros(30, dtype=torch.float64),
                               rtol=0, atol=1e-12)  # standardised with training statistics
    assert load_breast_cancer().target_names[0] == "malignant"  # scikit-learn's 0, turned to 1


def test_digits_are_scaled_and_split():
    X_train, y_train, X_val, y_val = data.digits(val_fraction=0.2, generator=seeded())
    assert len(y_train) + len(y_val) == 1797 and X_train.shape[1] == 64
    assert X_train.dtype == torch.float32 and 0 <= X_train.min() and X_train.max() <= 1
    assert len(y_val) == round(0.2 * 1797)
    pixels = torch.cat([X_train, X_val]).sum() * 16
    assert pixels.item() == pytest.approx(load_digits().data.sum())  # all images, once each


@pytest.mark.parametrize("make, message", [
    (lambda: data.linear_regression(0), "n_samples to be an integer >= 1"),
    (lambda: data.linear_regression(10, noise=-1.0), "noise >= 0"),
    (lambda: data.linear_classification(10, 2, 1), "n_classes to be an integer >= 2"),
    (lambda: data.breast_cancer(test_fraction=1.0), "0 < test_fraction < 1"),
    (lambda: data.digits(val_fraction=0.0), "0 < val_fraction < 1"),
    (lambda: data.loader(torch.zeros(3), torch.zeros(4), batch_size=2), "same number of samples"),
    (lambda: data.loader(torch.zeros(3), batch_size=0), "batch_size to be an integer >= 1"),
])
def test_bad_arguments_are_explained(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_loader_refuses_what_is_not_a_tensor():
    with pytest.raises(TypeError, match=r"expected one or more tensors, but got \['list'\]"):
        data.loader([1, 2, 3], batch_size=2)


def test_loader_yields_every_sample_once_per_epoch_in_a_seeded_order():
    X, y = torch.arange(10.0)[:, None], torch.arange(10)
    batches = list(data.loader(X, y, batch_size=4, shuffle=True, generator=seeded(5)))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    order = torch.cat([b[1] for b in batches])
    assert sorted(order.tolist()) == list(range(10)) and order.tolist() != list(range(10))
    assert torch.equal(torch.cat([b[0] for b in batches])[:, 0].long(), order)  # pairs kept
    again = torch.cat([b[1] for b in data.loader(X, y, batch_size=4, shuffle=True,
                                                  generator=seeded(5))])
    assert torch.equal(order, again)
    in_order = torch.cat([b[1] for b in data.loader(X, y, batch_size=3)])
    assert in_order.tolist() == list(range(10))


def test_moons_are_two_noisy_half_circles():
    X, y = data.moons(2000, noise=0.0, generator=seeded(3))
    assert X.shape == (2000, 2) and X.dtype == torch.float64 and y.dtype == torch.long
    assert 0.45 < y.double().mean() < 0.55  # a fair coin per sample
    upper, lower = X[y == 0], X[y == 1]
    torch.testing.assert_close(upper.norm(dim=1), torch.ones(len(upper), dtype=torch.float64))
    assert (upper[:, 1] >= 0).all()
    centre = torch.tensor([1.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close((lower - centre).norm(dim=1),
                               torch.ones(len(lower), dtype=torch.float64))
    assert (lower[:, 1] <= 0.5).all()
    noisy, same_y = data.moons(2000, noise=0.2, generator=seeded(3))
    assert torch.equal(same_y, y) and 0.15 < (noisy - X).std() < 0.25
    with pytest.raises(ValueError, match="expected noise >= 0"):
        data.moons(10, noise=-1)


def test_split_puts_every_sample_in_exactly_one_part():
    X = torch.arange(1280.0)[:, None]
    y = torch.arange(1280)
    parts = data.split(X, y, fractions=(0.6, 0.2, 0.2), generator=seeded())
    assert [len(p[1]) for p in parts] == [768, 256, 256]
    assert sorted(torch.cat([p[1] for p in parts]).tolist()) == list(range(1280))
    assert all(torch.equal(p[0][:, 0].long(), p[1]) for p in parts)  # rows stay together
    odd = data.split(y, fractions=(0.5, 0.25, 0.25), generator=seeded())
    assert [len(p[0]) for p in odd] == [640, 320, 320]
    assert [len(p[0]) for p in data.split(y[:7], fractions=(0.5, 0.5))] == [4, 3]
    again = data.split(X, y, fractions=(0.6, 0.2, 0.2), generator=seeded())
    assert all(torch.equal(a[1], b[1]) for a, b in zip(parts, again))


@pytest.mark.parametrize(("args", "fractions", "message"), [
    ((torch.zeros(4), torch.zeros(5)), (0.5, 0.5), r"same number of samples, but got \[4, 5\]"),
    ((torch.zeros(4),), (0.5, 0.6), "fractions in \\(0, 1\\) that sum to 1"),
    ((torch.zeros(4),), (1.0,), "two or more fractions"),
    ((torch.zeros(3),), (0.8, 0.1, 0.1), r"every part to get a sample, but 3 samples"),
])
def test_split_rejects_bad_input(args, fractions, message):
    with pytest.raises(ValueError, match=message):
        data.split(*args, fractions=fractions)


def test_load_digits_is_the_bundled_set_scaled():
    X, y = data.load_digits(dtype=torch.float64)
    reference = load_digits()
    assert X.shape == (1797, 64) and X.dtype == torch.float64
    assert torch.equal(X * 16, torch.as_tensor(reference.data))
    assert torch.equal(y, torch.as_tensor(reference.target))


def test_moons_follow_the_documented_construction():
    X, y = data.moons(50, noise=0.0, generator=seeded(0))
    g = seeded(0)
    labels = (torch.rand(50, generator=g, dtype=torch.float64) < 0.5).long()
    t = torch.pi * torch.rand(50, generator=g, dtype=torch.float64)
    expected = torch.where(labels[:, None] == 0, torch.stack([t.cos(), t.sin()], 1),
                           torch.stack([1 - t.cos(), 0.5 - t.sin()], 1))
    assert torch.equal(y, labels) and torch.equal(X, expected)
    noise = data.moons(4000, noise=0.2, generator=seeded(3))[0] - data.moons(
        4000, noise=0.0, generator=seeded(3))[0]
    assert abs(torch.corrcoef(noise.T)[0, 1]) < 0.1  # independent noise per coordinate
    assert ((0.18 < noise.std(0)) & (noise.std(0) < 0.22)).all()


def test_split_shuffles_and_rounds_fractions_as_written():
    parts = data.split(torch.arange(1280), fractions=(0.6, 0.2, 0.2), generator=seeded(0))
    assert parts[0][0].tolist() != list(range(768))
    other = data.split(torch.arange(1280), fractions=(0.6, 0.2, 0.2), generator=seeded(1))
    assert not torch.equal(parts[2][0], other[2][0])
    assert [len(p[0]) for p in data.split(torch.arange(100), fractions=(0.71, 0.29))] == [71, 29]
    for bad in ("ab", (0.5, "0.5")):
        with pytest.raises(ValueError, match="two or more fractions"):
            data.split(torch.arange(4), fractions=bad)
    with pytest.raises(ValueError, match="0-d tensor"):
        data.split(torch.tensor(3.0), fractions=(0.5, 0.5))


# --------------------------------------------------------------------------------------------
# Weighted sampling: the same indices as torch's sampler, the right distribution, the errors
# --------------------------------------------------------------------------------------------

TorchSampler = torch.utils.data.WeightedRandomSampler
SIGNIFICANCE = 1e-3
"""Level of the chi-square tests. Their draws come from fixed seeds, so each test is
deterministic: it passes or fails the same way on every run; the level says how unlikely a pass
of the right distribution would have been to fail with some other seed."""
WEIGHTS = torch.tensor([0.1, 0.9, 0.4, 0.7, 3.0, 0.6, 0.0, 2.0, 0.05, 1.25], dtype=torch.float64)


def random_weights(seed):
    """Weights of a random size and dtype, cubed (uneven), with every third one zero for some."""
    g = seeded(seed)
    size = int(torch.randint(1, 2000, (1,), generator=g))
    dtype = (torch.float64, torch.float32)[seed % 2]
    weights = torch.rand(size, generator=g, dtype=dtype) ** 3
    if seed % 3 == 0:
        weights[::3] = 0
    return weights, g


def draws_equal_torchs(seed, replacement):
    weights, g = random_weights(seed)
    most = 3000 if replacement else int(torch.count_nonzero(weights))
    num_samples = 1 if seed % 7 == 0 else int(torch.randint(1, most + 1, (1,), generator=g))
    ours = data.WeightedRandomSampler(weights, num_samples, replacement, generator=seeded(seed))
    theirs = TorchSampler(weights, num_samples, replacement, generator=seeded(seed))
    return all(list(ours) == list(theirs) for _epoch in range(2))  # the generator runs on


@pytest.mark.parametrize("replacement", [True, False])
def test_the_same_generator_draws_exactly_torchs_indices(replacement):
    """Over 300 seeds: sizes 1 to 2000, float64 and float32 weights, zero weights, one draw or
    many, two epochs each; and the generator is left in the same state."""
    assert all(draws_equal_torchs(seed, replacement) for seed in range(300))
    ours, theirs, n = seeded(7), seeded(7), 50 if replacement else 5
    list(data.WeightedRandomSampler(WEIGHTS, n, replacement, generator=ours))
    list(TorchSampler(WEIGHTS, n, replacement, generator=theirs))
    assert torch.equal(ours.get_state(), theirs.get_state())


def test_without_a_generator_both_draw_from_the_global_one():
    for replacement in (True, False):
        torch.manual_seed(3)
        ours = list(data.WeightedRandomSampler(WEIGHTS, 9, replacement))
        torch.manual_seed(3)
        assert ours == list(TorchSampler(WEIGHTS, 9, replacement))


def test_a_dataloader_gets_the_same_batches():
    X = torch.arange(10.0)[:, None]
    dataset = torch.utils.data.TensorDataset(X)

    def batches(sampler):
        loader = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=sampler)
        return [b[0].flatten().tolist() for b in loader]

    assert batches(data.WeightedRandomSampler(WEIGHTS, 30, generator=seeded(1))) == batches(
        TorchSampler(WEIGHTS, 30, generator=seeded(1)))
    assert len(data.WeightedRandomSampler(WEIGHTS, 30)) == 30


def counts(indices, n=None):
    return np.bincount(np.asarray(indices), minlength=len(WEIGHTS) if n is None else n)


def assert_fits(observed, probabilities):
    """Chi-square goodness of fit at SIGNIFICANCE; cells of probability 0 must stay empty."""
    probabilities = np.asarray(probabilities, dtype=float)
    assert observed[probabilities == 0].sum() == 0, "drew an index of weight 0"
    kept = probabilities > 0
    expected = probabilities[kept] / probabilities[kept].sum() * observed.sum()
    assert stats.chisquare(observed[kept], expected).pvalue > SIGNIFICANCE


def assert_same_distribution(a, b):
    """Chi-square test of homogeneity (2 x cells) at SIGNIFICANCE."""
    table = np.stack([a, b])
    table = table[:, table.sum(0) > 0]
    assert stats.chi2_contingency(table).pvalue > SIGNIFICANCE


def with_replacement_counts(sampler_class, seed, n_draws=100_000):
    return counts(list(sampler_class(WEIGHTS, n_draws, generator=seeded(seed))))


def test_with_replacement_the_frequencies_are_the_weights_as_torchs_are():
    """100 000 draws: ours fit w / sum(w), and match torch's drawn with another seed."""
    ours = with_replacement_counts(data.WeightedRandomSampler, 11)
    theirs = with_replacement_counts(TorchSampler, 12)
    assert_fits(ours, WEIGHTS)
    assert_fits(theirs, WEIGHTS)  # the test itself accepts torch
    assert_same_distribution(ours, theirs)


RACE_WEIGHTS = torch.tensor([1.0, 2.0, 3.0, 4.0, 0.5, 0.0], dtype=torch.float64)


def first_two(sampler_class, seed, repeats=10_000):
    """How often each ordered pair (first, second) comes first in draws of 3 without
    replacement; every epoch of one sampler is a new draw."""
    sampler = sampler_class(RACE_WEIGHTS, 3, replacement=False, generator=seeded(seed))
    n = len(RACE_WEIGHTS)
    cells = []
    for _ in range(repeats):
        first, second, _third = sampler
        cells.append(first * n + second)
    return counts(cells, n * n)


def pair_probabilities():
    """P(first i, then j) = w_i / W * w_j / (W - w_i): drawn in proportion to what is left."""
    w, total = RACE_WEIGHTS.tolist(), RACE_WEIGHTS.sum().item()
    return [w[i] / total * w[j] / (total - w[i]) if i != j else 0.0
            for i in range(len(w)) for j in range(len(w))]


def test_without_replacement_each_draw_is_in_proportion_to_the_weights_left():
    ours = first_two(data.WeightedRandomSampler, 21)
    theirs = first_two(TorchSampler, 22)
    assert_fits(ours, pair_probabilities())
    assert_fits(theirs, pair_probabilities())
    assert_same_distribution(ours, theirs)


def test_without_replacement_nothing_repeats_and_zero_weights_are_never_drawn():
    for seed in range(200):
        weights, g = random_weights(seed)
        available = int(torch.count_nonzero(weights))
        k = int(torch.randint(1, available + 1, (1,), generator=g))
        drawn = list(data.WeightedRandomSampler(weights, k, False, generator=seeded(seed)))
        assert len(set(drawn)) == k and (weights[drawn] > 0).all()
    everything = list(data.WeightedRandomSampler(RACE_WEIGHTS[:5], 5, False))
    assert sorted(everything) == [0, 1, 2, 3, 4]


def test_the_inverse_cdf_takes_the_slice_a_uniform_falls_in_boundaries_included():
    """F = (0.25, 0.5, 1): index i owns (F_{i-1}, F_i]; u = F_i exactly belongs to i."""
    weights = torch.tensor([1.0, 1.0, 2.0], dtype=torch.float64)
    uniforms = torch.tensor([0.0, 0.1, 0.25, 0.2500001, 0.5, 0.75, 1 - 2**-53],
                            dtype=torch.float64)
    assert data._inverse_cdf(weights, uniforms).tolist() == [0, 0, 0, 1, 1, 2, 2]


def outcome(make):
    try:
        return "ok", list(make())
    except Exception as error:  # noqa: BLE001 - the error itself is the result compared
        return type(error).__name__, str(error)


@pytest.mark.parametrize("weights, num_samples, replacement", [
    ([1.0, 2.0], 0, True), ([1.0, 2.0], -2, True), ([1.0, 2.0], True, True),
    ([1.0, 2.0], 2.0, True), ([1.0, 2.0], 2, 1), ([1.0, 2.0], 2, None),
    ([[1.0, 2.0]], 2, True), (1.0, 2, True), ("ab", 2, True),
    ([1.0, -1.0, 2.0], 2, True), ([1.0, -1.0, 2.0], 2, False), ([1.0, -1.0, 2.0], 1, True),
    ([1.0, math.inf], 2, True), ([1.0, math.inf], 2, False), ([1.0, math.nan], 2, True),
    ([math.inf, -1.0], 2, True), ([1.0, math.nan], 2, False),
    ([0.0, 0.0], 2, True), ([0.0, 0.0], 2, False), ([0.0, 0.0], 1, True),
    ([1.0, 1.0], 3, False), ([], 2, True), ([], 2, False),
    ([1, 2, 3], 4, True), ([True, False], 2, True),
])
def test_arguments_are_checked_with_torchs_errors(weights, num_samples, replacement):
    """The same exception type and message as torch's sampler, raised at the same step
    (the constructor, or the first draw)."""
    def make(sampler_class):
        return lambda: sampler_class(weights, num_samples, replacement, generator=seeded(0))

    ours = outcome(lambda: make(data.WeightedRandomSampler)())
    theirs = outcome(lambda: make(TorchSampler)())
    assert ours[0] == theirs[0] and (ours[0] == "ok" or ours == theirs)
    if ours[0] == "ok":
        assert outcome(make(data.WeightedRandomSampler)()) == outcome(make(TorchSampler)())


def test_too_many_without_replacement_for_the_non_zero_weights_is_refused_unlike_torch():
    weights = [1.0, 0.0, 1.0]
    theirs = list(TorchSampler(weights, 3, replacement=False, generator=seeded(0)))
    assert weights[theirs[-1]] == 0  # torch hands out an index of weight 0
    with pytest.raises(ValueError, match=r"num_samples <= the number of non-zero weights \(2\) "
                                         r"to draw without replacement, but got num_samples=3"):
        list(data.WeightedRandomSampler(weights, 3, replacement=False))


def test_more_categories_than_torch_allows_are_refused_like_torch():
    sampler = data.WeightedRandomSampler(torch.ones(2**24 + 1), 2)
    with pytest.raises(RuntimeError, match=r"number of categories cannot exceed 2\^24"):
        list(sampler)


# --------------------------------------------------------------------------------------------
# class_balanced_sample_weights
# --------------------------------------------------------------------------------------------

IMBALANCED = torch.cat([torch.full((900,), 0), torch.full((90,), 1), torch.full((10,), 2)])


def class_frequencies(weights, targets):
    """The probability that a draw is of each class: the class's share of the total weight."""
    return torch.zeros(3, dtype=torch.float64).index_add_(0, targets, weights) / weights.sum()


def test_balanced_weights_draw_every_class_equally_often_in_expectation():
    weights = data.class_balanced_sample_weights(IMBALANCED)
    assert weights.shape == (1000,) and weights.dtype == torch.float64
    torch.testing.assert_close(weights[[0, 900, 990]],
                               torch.tensor([1 / 900, 1 / 90, 1 / 10], dtype=torch.float64))
    torch.testing.assert_close(class_frequencies(weights, IMBALANCED),
                               torch.full((3,), 1 / 3, dtype=torch.float64), rtol=0, atol=1e-12)
    drawn = list(data.WeightedRandomSampler(weights, 100_000, generator=seeded(4)))
    assert_fits(counts(IMBALANCED[drawn].numpy(), 3), [1, 1, 1])


def test_class_weights_set_the_proportions():
    class_weights = torch.tensor([1.0, 2.0, 7.0], dtype=torch.float32)
    weights = data.class_balanced_sample_weights(IMBALANCED, class_weights)
    assert weights.dtype == torch.float32
    shares = torch.tensor([900 * 1.0, 90 * 2.0, 10 * 7.0], dtype=torch.float64)
    torch.testing.assert_close(class_frequencies(weights.double(), IMBALANCED),
                               shares / shares.sum())


def test_one_weight_per_class_given_to_the_sampler_is_the_bug_it_answers():
    """Per-class weights draw only the indices 0, 1, 2: three samples of class 0."""
    per_class = 1.0 / torch.bincount(IMBALANCED).double()
    drawn = list(data.WeightedRandomSampler(per_class, 1000, generator=seeded(0)))
    assert set(drawn) == {0, 1, 2} and (IMBALANCED[drawn] == 0).all()
    with pytest.raises(AssertionError):
        assert_fits(counts(IMBALANCED[drawn].numpy(), 3), [1, 1, 1])


@pytest.mark.parametrize("call, error, message", [
    (lambda: data.class_balanced_sample_weights([0, 1]), TypeError,
     "expected targets to be a torch.Tensor, but got list"),
    (lambda: data.class_balanced_sample_weights(torch.tensor([0.0, 1.0])), TypeError,
     r"expected targets of integer class labels \(e.g. torch.long\), but got torch.float32"),
    (lambda: data.class_balanced_sample_weights(torch.tensor([True, False])), TypeError,
     "but got torch.bool"),
    (lambda: data.class_balanced_sample_weights(torch.eye(3, dtype=torch.long)), ValueError,
     r"expected targets of shape \(N,\), one class label per sample, but got \(3, 3\); for "
     r"one-hot targets of shape \(N, C\) pass targets.argmax\(dim=1\)"),
    (lambda: data.class_balanced_sample_weights(torch.tensor([], dtype=torch.long)), ValueError,
     "expected at least one target"),
    (lambda: data.class_balanced_sample_weights(torch.tensor([0, -1])), ValueError,
     "expected class labels >= 0, but got -1"),
    (lambda: data.class_balanced_sample_weights(torch.tensor([0, 2, 2])), ValueError,
     r"expected every class 0 .. 2 among the targets, but class 1 has no sample "
     r"\(missing: \[1\]\)"),
    (lambda: data.class_balanced_sample_weights(torch.tensor([0, 1]), torch.ones(3)),
     ValueError, "but class 2 has no sample"),
    (lambda: data.class_balanced_sample_weights(torch.tensor([0, 3]), torch.ones(3)),
     ValueError, r"expected class labels below the number of class weights \(3\), but got 3"),
    (lambda: data.class_balanced_sample_weights(torch.tensor([0, 1]), torch.ones(2, 1)),
     ValueError, r"expected class_weights of shape \(C,\), one weight per class"),
    (lambda: data.class_balanced_sample_weights(torch.tensor([0, 1]), torch.tensor([1, 2])),
     TypeError, "expected class_weights to be a floating torch.Tensor, but got torch.int64"),
    (lambda: data.class_balanced_sample_weights(torch.tensor([0, 1]),
                                                torch.tensor([1.0, -2.0])),
     ValueError, "expected finite class_weights >= 0"),
])
def test_bad_targets_and_class_weights_are_explained(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --------------------------------------------------------------------------------------------
# Mutations the tests must catch
# --------------------------------------------------------------------------------------------


INVERSE_CDF = data._inverse_cdf


def cdf_not_normalised(weights, uniforms):
    """Running sums compared with uniforms in [0, 1) without dividing by the total."""
    return torch.searchsorted(torch.cumsum(weights, 0), uniforms)


def searchsorted_right(weights, uniforms):
    """side='right': u = F_i exactly goes to i + 1 (a boundary sampling almost never hits)."""
    cdf = torch.cumsum(weights, 0) / weights.sum()
    cdf[-1] = 1.0
    return torch.searchsorted(cdf, uniforms, right=True)


def race_with_product(weights, num_samples, generator):
    """Keys w_i E_i: heavy weights still win more often, but not in proportion."""
    keys = weights * torch.empty_like(weights).exponential_(generator=generator)
    return torch.topk(keys, num_samples).indices


def race_with_uniforms(weights, num_samples, generator):
    """w_i / U_i with uniforms instead of exponentials."""
    keys = weights / torch.rand(weights.shape, dtype=weights.dtype, generator=generator)
    return torch.topk(keys, num_samples).indices


def float32_uniforms(weights, uniforms):
    """Right in distribution, but rounds the uniforms: other indices than torch's."""
    return INVERSE_CDF(weights, uniforms.float().double())


def fails(check) -> bool:
    try:
        check()
    except AssertionError:
        return True
    return False


def exact_test(replacement):
    assert all(draws_equal_torchs(seed, replacement) for seed in range(40))


def test_sampling_mutants_are_caught(monkeypatch):
    boundaries = test_the_inverse_cdf_takes_the_slice_a_uniform_falls_in_boundaries_included
    assert not fails(lambda: exact_test(True)) and not fails(lambda: exact_test(False))
    assert not fails(test_with_replacement_the_frequencies_are_the_weights_as_torchs_are)
    assert not fails(boundaries)
    for mutant in (cdf_not_normalised, searchsorted_right, float32_uniforms):
        with monkeypatch.context() as patch:
            patch.setattr(data, "_inverse_cdf", mutant)
            caught = {"exact": fails(lambda: exact_test(True)), "boundaries": fails(boundaries),
                      "chi-square": fails(
                          test_with_replacement_the_frequencies_are_the_weights_as_torchs_are)}
        expected = {cdf_not_normalised: {"exact": True, "boundaries": True, "chi-square": True},
                    # u = F_i exactly has probability about 2**-53 a draw: only the boundary
                    # test sees the difference
                    searchsorted_right: {"exact": False, "boundaries": True,
                                         "chi-square": False},
                    # right in distribution: only the exact comparison with torch sees it
                    float32_uniforms: {"exact": True, "boundaries": False, "chi-square": False}}
        assert caught == expected[mutant], mutant.__name__
    for mutant in (race_with_product, race_with_uniforms):
        with monkeypatch.context() as patch:
            patch.setattr(data, "_race", mutant)
            assert fails(lambda: exact_test(False)), mutant.__name__
            assert fails(test_without_replacement_each_draw_is_in_proportion_to_the_weights_left)


def test_gaussian_classes_has_the_prevalence_and_the_bayes_log_odds_it_states():
    X, y = data.gaussian_classes(200_000, positive_fraction=0.1, generator=seeded(0))
    assert X.shape == (200_000, 2) and X.dtype == torch.float64 and y.dtype == torch.int64
    assert abs(y.double().mean().item() - 0.1) < 0.003
    mu = torch.tensor([2.0, 1.0], dtype=torch.float64)
    torch.testing.assert_close(X[y == 1].mean(0), mu, atol=0.02, rtol=0)
    torch.testing.assert_close(X[y == 0].mean(0), torch.zeros(2, dtype=torch.float64), atol=0.01,
                               rtol=0)
    # the stated log-odds are the best possible: a logistic fit on the data recovers them
    log_odds = X @ mu - mu @ mu / 2 + math.log(0.1 / 0.9)
    in_bin = (log_odds > -0.2) & (log_odds < 0.2)  # P(y = 1 | x) close to 1/2 there
    assert abs(y[in_bin].double().mean().item() - 0.5) < 0.03
    again = data.gaussian_classes(200_000, positive_fraction=0.1,
                             generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[0], X) and torch.equal(again[1], y)


@pytest.mark.parametrize("arguments, message", [
    (dict(n_samples=0), "expected n_samples to be an integer >= 1, but got 0"),
    (dict(n_samples=10, positive_fraction=1.0), "expected 0 < positive_fraction < 1, but got 1.0"),
    (dict(n_samples=10, shift=()), "expected shift to be a non-empty sequence"),
])
def test_gaussian_classes_refuses_bad_arguments(arguments, message):
    with pytest.raises(ValueError, match=message):
        data.gaussian_classes(**arguments)
