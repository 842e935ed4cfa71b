"""Data for the course: synthetic problems, and real data that ships inside installed packages,
as tensors (and, through `loader`, as a `DataLoader`); and, for chapter 10, drawing samples with
given weights: `WeightedRandomSampler` (torch's, by hand) and `class_balanced_sample_weights`.

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


def gaussian_classes(n_samples: int, *, positive_fraction: float = 0.02,
                     shift: tuple[float, ...] = (2.0, 1.0),
                     generator: torch.Generator | None = None,
                     dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    r"""A binary problem with rare positives whose best possible classifier is known.

    .. math:: y \sim \text{Bernoulli}(\pi), \qquad x \mid y \sim \mathcal N(y\,\mu,\ I)

    with $\pi$ = `positive_fraction` and $\mu$ = `shift`. By Bayes' rule the log-odds are linear,

    .. math:: \log\frac{P(y=1\mid x)}{P(y=0\mid x)} = \mu^\top x - \tfrac12\lVert\mu\rVert^2
              + \log\frac{\pi}{1-\pi},

    so logistic regression is well specified, and $\mu^\top x$ ranks the samples as well as
    anything can, whatever $\pi$ is. Returns (X of shape (n_samples, len(shift)), y int64).
    """
    _check_count("n_samples", n_samples)
    if isinstance(positive_fraction, bool) or not 0 < positive_fraction < 1:
        raise ValueError(f"expected 0 < positive_fraction < 1, but got {positive_fraction!r}")
    mu = torch.as_tensor(shift, dtype=dtype)
    if mu.ndim != 1 or not len(mu):
        raise ValueError(f"expected shift to be a non-empty sequence of numbers (the mean of the "
                         f"positives), but got {shift!r}")
    y = (torch.rand(n_samples, generator=generator, dtype=dtype) < positive_fraction).long()
    X = torch.randn(n_samples, len(mu), generator=generator, dtype=dtype) + y[:, None] * mu
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


# --------------------------------------------------------------------------------------------
# Weighted sampling (chapter 10): drawing indices with given probabilities
# --------------------------------------------------------------------------------------------

_MAX_CATEGORIES = 2 ** 24
"""torch.multinomial's limit on the number of weights (its index arithmetic went through
float32, exact up to 2**24); kept so that ours refuses what torch's sampler refuses."""


def _as_weights(weights) -> Tensor:
    """The weights as a float64 vector: what torch's sampler hands to `torch.multinomial`."""
    weights = torch.as_tensor(weights, dtype=torch.double)
    if weights.dim() != 1:
        raise ValueError(f"weights should be a 1d sequence but given weights have shape "
                         f"{tuple(weights.shape)}")
    return weights


def _check_total(weights: Tensor) -> None:
    if len(weights) == 0 or not weights.sum() > 0:
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")


def _check_for_race(weights: Tensor) -> None:
    """torch.multinomial's checks on the way to its exponential race."""
    if len(weights) > _MAX_CATEGORIES:
        raise RuntimeError("number of categories cannot exceed 2^24")
    if len(weights) and not (weights.max() < torch.inf and weights.min() >= 0):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    _check_total(weights)


def _race(weights: Tensor, num_samples: int, generator: torch.Generator | None) -> Tensor:
    """The exponential race of `draw_without_replacement`, on checked float64 weights."""
    # E_i ~ Exp(1)
    exponentials = torch.empty_like(weights).exponential_(generator=generator)
    # w_i / E_i: the largest is the smallest key E_i / w_i, the first to finish
    speeds = weights / exponentials
    if num_samples == 1:
        return speeds.argmax(dim=-1, keepdim=True)
    # the k first finishers, in their finishing order
    return torch.topk(speeds, num_samples).indices


def draw_with_replacement(weights, num_samples: int,
                          generator: torch.Generator | None = None) -> Tensor:
    r"""`num_samples` indices drawn with replacement, index $i$ with probability
    $w_i / \sum_j w_j$, by inverting the cumulative distribution function.

    .. math::
        F_i = \frac{\sum_{j \le i} w_j}{\sum_j w_j}, \qquad
        U_k \sim \mathcal U[0, 1), \qquad
        I_k = \min\{\, i : F_i \ge U_k \,\}

    $P(I_k = i) = P(F_{i-1} < U_k \le F_i) = F_i - F_{i-1} = w_i / \sum_j w_j$: each index owns a
    slice of $[0, 1)$ as wide as its probability, and a binary search (`searchsorted`, side
    'left') finds the slice a uniform falls in, in $O(\log n)$ per draw. A zero weight owns an
    empty slice and is never drawn.

    $F$ is accumulated in index order, divided by the total and its last entry set to exactly
    1, and one float64 uniform is drawn per sample, in order: the steps of torch's CPU kernel
    for `torch.multinomial(..., replacement=True)` on float64 weights, so that with the same
    generator the indices are the same, bit for bit. The weights are turned to float64 first,
    as `torch.utils.data.WeightedRandomSampler` does (`torch.multinomial` called on float32
    weights itself would accumulate $F$ in float32).
    """
    _check_count("num_samples", num_samples)
    weights = _as_weights(weights)
    if len(weights) > _MAX_CATEGORIES:
        raise RuntimeError("number of categories cannot exceed 2^24")
    bad = ~(weights >= 0) | ~torch.isfinite(weights)
    if bad.any():  # torch checks in order: the first bad entry names the error
        first = weights[bad.nonzero()[0, 0]]
        raise RuntimeError("invalid multinomial distribution (encountering probability entry "
                           + ("< 0)" if not first >= 0 else "= infinity or NaN)"))
    _check_total(weights)
    # U_k ~ U[0, 1), one float64 per draw
    uniforms = torch.rand(num_samples, dtype=torch.double, generator=generator)
    return _inverse_cdf(weights, uniforms)


def _inverse_cdf(weights: Tensor, uniforms: Tensor) -> Tensor:
    """The index whose slice of [0, 1) each uniform falls in (checked float64 weights)."""
    # F_i = (w_0 + ... + w_i) / sum_j w_j, summed left to right
    cdf = torch.cumsum(weights, dim=0)
    cdf = cdf / cdf[-1]
    # F_{n-1} = 1 exactly: a uniform below 1 always finds a slice
    cdf[-1] = 1.0
    # I_k = min{i : F_i >= U_k}
    return torch.searchsorted(cdf, uniforms)


def draw_without_replacement(weights, num_samples: int,
                             generator: torch.Generator | None = None) -> Tensor:
    r"""`num_samples` distinct indices, drawn one after another with probabilities proportional
    to the weights of those not yet drawn, by an exponential race (the Gumbel-top-$k$ trick).

    .. math::
        E_i \sim \operatorname{Exp}(1), \qquad \text{key}_i = \frac{E_i}{w_i}
        \sim \operatorname{Exp}(w_i), \qquad
        I_1, \dots, I_k = \text{the indices of the } k \text{ smallest keys}

    Think of index $i$ as a runner whose finishing time is exponential with rate $w_i$. The
    first to finish is $i$ with probability $w_i / \sum_j w_j$ (the minimum of independent
    exponentials), and since exponentials forget how long they have run, the race among those
    left is again one with rates $w_j$: the second finisher is drawn in proportion to the
    remaining weights, and so on. Taking logs gives the same with Gumbel noise,
    $\arg\max_i (\log w_i + G_i)$, $G_i = -\log E_i$. A zero weight never finishes
    ($\text{key} = \infty$). One sort of $n$ keys replaces $k$ renormalised draws.

    As in torch's CPU kernel, the $E_i$ come from `exponential_`, in index order (on torch 2.13
    that is $E_i = -\log(1 - U_i)$ with one float64 uniform each, the inverse CDF of
    $\operatorname{Exp}(1)$; written out as `-torch.log1p(-torch.rand(...))` it would differ in
    the last bit for about one draw in twelve, torch's vectorised `log1p` against the kernel's
    scalar one), and the winners are taken as the $k$ *largest* $w_i / E_i$ (`topk`; `argmax`
    for a single draw), the same keys turned over, so that rounding orders them as torch's do:
    with the same generator the indices are the same, bit for bit.

    Note: torch draws zero-weight indices once the non-zero ones are used up; we raise a
    `ValueError` instead.
    """
    _check_count("num_samples", num_samples)
    weights = _as_weights(weights)
    if num_samples > len(weights):
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    _check_for_race(weights)
    available = int(torch.count_nonzero(weights))
    if num_samples > available:
        raise ValueError(
            f"expected num_samples <= the number of non-zero weights ({available}) to draw "
            f"without replacement, but got num_samples={num_samples}; torch would go on with "
            "indices of weight 0, which were meant never to be drawn")
    return _race(weights, num_samples, generator)


class WeightedRandomSampler(torch.utils.data.Sampler[int]):
    r"""Draws indices `0 .. len(weights) - 1`, index $i$ with probability $w_i / \sum_j w_j$, as
    `torch.utils.data.WeightedRandomSampler` (same arguments, checks and error messages).

    Give it to a `DataLoader` as `sampler=`: each epoch then draws `num_samples` indices, with
    replacement by the inverse CDF (`draw_with_replacement`), without by the exponential race
    (`draw_without_replacement`). The weights are one per **sample**, not one per class: for
    classes balanced in expectation build them with `class_balanced_sample_weights`.

    On the CPU, with the same seeded `generator`, it yields exactly the indices torch's sampler
    yields, in both modes and for float64 and float32 weights alike: torch's sampler turns
    every weight to float64 first, and `torch.multinomial` consumes the generator as we do -
    one float64 uniform per draw with replacement, one exponential per weight for a race
    (without replacement, and for a single draw with replacement, which torch races too).

    Notes: without replacement and `num_samples` greater than the number of non-zero weights,
    torch yields indices of weight 0; we raise a `ValueError`. Errors are raised when iterating,
    as torch's are; for no weights at all and a single draw with replacement torch's comes
    from deep inside (`aminmax()`), ours says that the weights do not sum to more than 0.
    """

    weights: Tensor
    num_samples: int
    replacement: bool

    def __init__(self, weights, num_samples: int, replacement: bool = True,
                 generator: torch.Generator | None = None) -> None:
        if not isinstance(num_samples, int) or isinstance(num_samples, bool) or num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples}")
        if not isinstance(replacement, bool):
            raise ValueError(f"replacement should be a boolean value, but got "
                             f"replacement={replacement}")
        self.weights = _as_weights(weights)
        self.num_samples = num_samples
        self.replacement = replacement
        self.generator = generator

    def __iter__(self):
        if not self.replacement:
            indices = draw_without_replacement(self.weights, self.num_samples, self.generator)
        elif self.num_samples == 1:  # one draw is the same either way; torch races for it
            _check_for_race(self.weights)
            indices = _race(self.weights, 1, self.generator)
        else:
            indices = draw_with_replacement(self.weights, self.num_samples, self.generator)
        yield from indices.tolist()

    def __len__(self) -> int:
        return self.num_samples


def class_balanced_sample_weights(targets: Tensor, class_weights: Tensor | None = None) -> Tensor:
    r"""One weight per sample for `WeightedRandomSampler`: the weight of the sample's class.

    .. math::
        w_i = c_{y_i}, \qquad c_k = \frac{1}{n_k} \text{ by default}, \qquad
        P(\text{a draw is of class } k) = \frac{n_k c_k}{\sum_j n_j c_j} = \frac{1}{C}

    where $n_k$ is the number of samples of class $k$: with the default every class is drawn
    equally often in expectation, however rare. `class_weights` (one non-negative weight per
    class, $c$) sets other proportions, $P(k) \propto n_k c_k$. `targets` are the class labels
    `0 .. C - 1` of the samples (C = the largest label + 1, or the number of class weights), and
    every class must occur. Returns float64 weights of shape `(len(targets),)`, or the dtype of
    `class_weights`.

    The common bug this answers: `WeightedRandomSampler(class_weights, ...)` with one weight per
    *class* raises nothing, and draws indices `0 .. C - 1` only - the first C samples, over and
    over.
    """
    if not isinstance(targets, Tensor):
        raise TypeError(f"expected targets to be a torch.Tensor, but got "
                        f"{type(targets).__name__}")
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise TypeError(f"expected targets of integer class labels (e.g. torch.long), but got "
                        f"{targets.dtype}")
    if targets.dim() != 1:
        raise ValueError(f"expected targets of shape (N,), one class label per sample, but got "
                         f"{tuple(targets.shape)}; for one-hot targets of shape (N, C) pass "
                         "targets.argmax(dim=1)")
    if len(targets) == 0:
        raise ValueError("expected at least one target, but got none")
    if targets.min() < 0:
        raise ValueError(f"expected class labels >= 0, but got {targets.min().item()}")
    labels = targets.long()
    if class_weights is None:
        n_classes = int(labels.max()) + 1
    else:
        if not isinstance(class_weights, Tensor) or not class_weights.is_floating_point():
            raise TypeError(f"expected class_weights to be a floating torch.Tensor, but got "
                            f"{getattr(class_weights, 'dtype', type(class_weights).__name__)}")
        if class_weights.dim() != 1:
            raise ValueError(f"expected class_weights of shape (C,), one weight per class, but "
                             f"got {tuple(class_weights.shape)}")
        if not (torch.isfinite(class_weights).all() and (class_weights >= 0).all()):
            raise ValueError(f"expected finite class_weights >= 0, but got {class_weights}")
        n_classes = len(class_weights)
        if labels.max() >= n_classes:
            raise ValueError(f"expected class labels below the number of class weights "
                             f"({n_classes}), but got {labels.max().item()}")
    # n_k, the number of samples of each class
    counts = torch.bincount(labels, minlength=n_classes)
    if (counts == 0).any():
        missing = (counts == 0).nonzero().flatten().tolist()
        raise ValueError(f"expected every class 0 .. {n_classes - 1} among the targets, but "
                         f"class {missing[0]} has no sample (missing: {missing}); a class that "
                         "is never there cannot be balanced")
    # c_k = 1 / n_k unless given
    per_class = (1.0 / counts.double()) if class_weights is None else class_weights
    # w_i = c_{y_i}
    return per_class[labels]
