"""helpers.data: shapes, dtypes, seeded reproducibility, the bundled data sets, and the loader."""

import pytest
import torch
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
