"""Data for the course: synthetic problems, and real data that ships inside installed packages,
as tensors (and, through `loader`, as a `DataLoader`).

Nothing here downloads. Every function takes a `generator` (a seeded `torch.Generator`) so that a
notebook or a test draws the same data on every run, and returns float64 tensors unless told.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _check_count(name: str, value, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"expected {name} to be an integer >= {minimum}, but got {value!r}")


def linear_regression(n_samples: int = 100, n_features: int = 1, *, noise: float = 0.1,
                      generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""Features and targets of a noisy linear model $y = X w + b + \sigma\varepsilon$.

    $X$ and $\varepsilon$ are standard normal, $w$ standard normal and $b$ uniform in $[-1, 1]$.
    Returns `(X, y, w, b)`: shapes `(n_samples, n_features)`, `(n_samples,)`, `(n_features,)`
    and `()`.
    """
    _check_count("n_samples", n_samples)
    _check_count("n_features", n_features)
    if not noise >= 0:
        raise ValueError(f"expected noise >= 0, but got {noise!r}")
    kwargs = dict(generator=generator, dtype=dtype)
    X = torch.randn(n_samples, n_features, **kwargs)
    w = torch.randn(n_features, **kwargs)
    b = 2 * torch.rand((), **kwargs) - 1
    y = X @ w + b + noise * torch.randn(n_samples, **kwargs)
    return X, y, w, b


def linear_classification(n_samples: int = 64, n_features: int = 5, n_classes: int = 3, *,
                          generator: torch.Generator | None = None,
                          dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    r"""Standard normal features and labels $y = \arg\max_k (X W)_k$ of a random linear map $W$.

    The classes are linearly separable. Returns `(X, y)`: shapes `(n_samples, n_features)` and
    `(n_samples,)` (int64 labels in `0 .. n_classes - 1`).
    """
    _check_count("n_samples", n_samples)
    _check_count("n_features", n_features)
    _check_count("n_classes", n_classes, 2)
    X = torch.randn(n_samples, n_features, generator=generator, dtype=dtype)
    W = torch.randn(n_features, n_classes, generator=generator, dtype=dtype)
    return X, (X @ W).argmax(dim=1)


def breast_cancer(*, test_fraction: float = 0.25, generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""scikit-learn's bundled Wisconsin breast cancer data, split and standardised, as tensors.

    569 tumours, 30 features of the cell nuclei. The labels are turned around from scikit-learn's
    so that the class a screening test must find is the positive one: **1 = malignant** (212),
    0 = benign (357). The split is stratified: a `test_fraction` of each class, drawn with
    `generator`, goes to the test set. Features are standardised with the mean and standard
    deviation of the training set only, $x \mapsto (x - \mu_\text{train}) / \sigma_\text{train}$.
    Returns `(X_train, X_test, y_train, y_test)`, int64 labels.
    """
    from sklearn.datasets import load_breast_cancer  # ships with scikit-learn: no download

    if not 0 < test_fraction < 1:
        raise ValueError(f"expected 0 < test_fraction < 1, but got {test_fraction!r}")
    data = load_breast_cancer()
    X = torch.as_tensor(data.data, dtype=dtype)
    y = 1 - torch.as_tensor(data.target, dtype=torch.long)  # scikit-learn has 0 = malignant
    test = torch.zeros(len(y), dtype=torch.bool)
    for label in (0, 1):
        members = torch.nonzero(y == label).flatten()
        chosen = members[torch.randperm(len(members), generator=generator)]
        test[chosen[:round(test_fraction * len(members))]] = True
    mean, std = X[~test].mean(0), X[~test].std(0)
    X = (X - mean) / std
    return X[~test], X[test], y[~test], y[test]


def moons(n_samples: int = 1024, *, noise: float = 0.2, generator: torch.Generator | None = None,
          dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    r"""Two interleaving half circles in the plane (scikit-learn's `make_moons`, drawn by torch).

    Each sample's class is a fair coin; its angle $t$ is uniform in $[0, \pi]$; class 0 lies on
    $(\cos t, \sin t)$, class 1 on $(1 - \cos t, \tfrac12 - \sin t)$, and both get Gaussian noise of
    standard deviation `noise`. A fresh draw is fresh data from the same distribution, as often as
    needed. Returns `(X, y)`: shapes `(n_samples, 2)` and `(n_samples,)`, int64 labels.
    """
    _check_count("n_samples", n_samples)
    if not noise >= 0:
        raise ValueError(f"expected noise >= 0, but got {noise!r}")
    kwargs = dict(generator=generator, dtype=dtype)
    y = (torch.rand(n_samples, **kwargs) < 0.5).long()
    t = torch.pi * torch.rand(n_samples, **kwargs)
    upper = torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    lower = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=1)
    X = torch.where(y[:, None] == 0, upper, lower) + noise * torch.randn(n_samples, 2, **kwargs)
    return X, y


def split(*tensors: Tensor, fractions: tuple[float, ...],
          generator: torch.Generator | None = None) -> list[tuple[Tensor, ...]]:
    """Cut tensors that share their first dimension into random parts of the given fractions.

    `split(X, y, fractions=(0.6, 0.2, 0.2), generator=g)` gives `[(X_train, y_train), (X_val,
    y_val), (X_test, y_test)]`: one permutation drawn with `generator`, part sizes rounded down
    and the remainder given to the first part, so every sample lands in exactly one part.
    """
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"expected one or more tensors, but got "
                        f"{[type(t).__name__ for t in tensors]}")
    if any(t.ndim == 0 for t in tensors):
        raise ValueError("expected tensors with a first dimension of samples, but got a 0-d tensor")
    lengths = [len(t) for t in tensors]
    if len(set(lengths)) != 1:
        raise ValueError(f"expected tensors with the same number of samples, but got {lengths}")
    if (not isinstance(fractions, tuple | list) or len(fractions) < 2
            or not all(isinstance(f, int | float) and 0 < f < 1 for f in fractions)
            or abs(sum(fractions) - 1) > 1e-9):
        raise ValueError(f"expected two or more fractions in (0, 1) that sum to 1, but got "
                         f"{fractions!r}")
    n = lengths[0]
    sizes = [int(f * n + 1e-9) for f in fractions]  # 0.29 * 100 is 28.999...: still 29
    sizes[0] += n - sum(sizes)
    if min(sizes) < 1:
        raise ValueError(f"expected every part to get a sample, but {n} samples split by "
                         f"{fractions} gives parts of {sizes}")
    order = torch.randperm(n, generator=generator)
    return [tuple(t[part] for t in tensors) for part in order.split(sizes)]


def load_digits(*, dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    """scikit-learn's bundled handwritten digits as `(X, y)`: 1797 images of 8 x 8 pixels,
    flattened to 64 features scaled to [0, 1] (intensities 0..16 divided by 16), labels 0..9."""
    from sklearn.datasets import load_digits as _load  # ships with scikit-learn: no download

    data = _load()
    return (torch.as_tensor(data.data, dtype=dtype) / 16,
            torch.as_tensor(data.target, dtype=torch.long))


def digits(*, val_fraction: float = 0.25, generator: torch.Generator | None = None,
           dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    r"""scikit-learn's bundled handwritten digits, split into training and validation tensors.

    1797 images of 8 x 8 pixels with intensities 0..16, flattened to 64 features and scaled to
    $[0, 1]$ by dividing by 16; labels 0..9. A random `val_fraction` of the images (drawn with
    `generator`) is held out. Returns `(X_train, y_train, X_val, y_val)`, int64 labels, in the
    order `helpers.training.fit` takes them.
    """
    if not 0 < val_fraction < 1:
        raise ValueError(f"expected 0 < val_fraction < 1, but got {val_fraction!r}")
    X, y = load_digits(dtype=dtype)
    order = torch.randperm(len(y), generator=generator)
    n_val = round(val_fraction * len(y))
    val, train = order[:n_val], order[n_val:]
    return X[train], y[train], X[val], y[val]


def loader(*tensors: Tensor, batch_size: int, shuffle: bool = False,
           generator: torch.Generator | None = None) -> torch.utils.data.DataLoader:
    """A `DataLoader` over tensors that share their first dimension, e.g. `loader(X, y,
    batch_size=64, shuffle=True, generator=g)`: batches of `(X_batch, y_batch)`.

    With a seeded `generator`, the shuffled order of every epoch is the same on every run. (The
    course's data fit in memory, so `helpers.training` cuts index permutations itself, which is
    faster; this is the same thing in the form torch code usually takes.)
    """
    _check_count("batch_size", batch_size)
    if not tensors or not all(isinstance(t, Tensor) for t in tensors):
        raise TypeError(f"expected one or more tensors, but got "
                        f"{[type(t).__name__ for t in tensors]}")
    lengths = [len(t) for t in tensors]
    if len(set(lengths)) != 1:
        raise ValueError(f"expected tensors with the same number of samples, but got {lengths}")
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*tensors),
                                       batch_size=batch_size, shuffle=shuffle, generator=generator)
