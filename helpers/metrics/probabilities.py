r"""Scores of predicted probabilities: how far the probabilities are from what happened.

With $y_{nk} = [y_n = c_k]$ the one-hot truth and $p_{nk}$ the probability predicted for class
$c_k$ (the columns of y_proba follow the sorted classes, of `labels` or of y_true):

    Brier score  = (1/N) sum_n sum_k (y_nk - p_nk)^2          (halved for two classes)
    log loss     = -(1/N) sum_n sum_k y_nk log p_nk = -(1/N) sum_n log p_{n, y_n}

both weighted means with sample weights. Both are proper scoring rules: they are smallest in
expectation when the predicted probabilities are the true ones, so, unlike accuracy, they reward
calibration. A y_proba of shape (N,) is the probability of the positive class, $p_{n1}$, and
$p_{n0} = 1 - p_{n1}$.

Notes (deliberate differences from scikit-learn):
* y_proba must be floating point (scikit-learn converts 0/1 integers and bools), of shape (N,) or
  (N, C) with C >= 2: a column (N, 1) is an error, not squeezed;
* ``log_loss`` requires y_proba: the keyword ``y_pred=``, deprecated in scikit-learn 1.9 (renamed
  ``y_proba``), is not accepted;
* ``labels`` must be distinct;
* the arithmetic runs in float64 whatever the dtype of y_proba (scikit-learn: in that dtype); the
  clipping eps of ``log_loss`` and the tolerance of the sum-to-one check are those of y_proba's
  dtype, as in scikit-learn;
* sample weights that sum to 0 (e.g. [1, -1, 0]) raise a ValueError for the weighted mean
  (scikit-learn: a ZeroDivisionError "Weights sum to zero"); ``log_loss(normalize=False)``, a
  weighted sum, still accepts them, as in scikit-learn.
"""

from __future__ import annotations

import math

import torch

from helpers.metrics.validation import (
    _check_pos_label,
    _check_some_weight,
    _class_labels,
    _same_samples,
    _sample_weight,
    _score_dtype,
    _score_matrix,
    _warn,
)


def _samples(y_true, y_proba: torch.Tensor, sample_weight):
    """(y_true, weight or None) checked against y_proba: same samples, at least one, some weight."""
    if y_proba.numel() and not 0 <= float(y_proba.min()) <= float(y_proba.max()) <= 1:
        raise ValueError(f"expected probabilities in [0, 1] in y_proba, but got values from "
                         f"{float(y_proba.min())} to {float(y_proba.max())}")
    y_true = _class_labels(y_true, "y_true")
    _same_samples(y_true, y_proba, "y_true and y_proba")
    if not len(y_true):
        raise ValueError("expected at least one sample, but y_true and y_proba are empty")
    weight = _sample_weight(sample_weight, y_true)
    if weight is not None:
        _check_some_weight(weight)
    return y_true, weight


def _binary(y_true, y_proba, sample_weight, pos_label):
    """(one-hot truth (N, 2), probabilities (N, 2), weight) from the positive class's y_proba."""
    y_true, weight = _samples(y_true, y_proba, sample_weight)
    classes = torch.unique(y_true).tolist()
    if len(classes) > 2:
        raise ValueError(f"expected binary y_true for y_proba of shape (N,), but it holds "
                         f"{len(classes)} classes {classes}; pass y_proba of shape (N, C), one "
                         "column per class")
    if pos_label is None:  # 1 for labels in {0, 1} or {-1, 1}, else the greater label
        pos_label = 1 if set(classes) <= {0, 1} or set(classes) <= {-1, 1} else classes[-1]
    _check_pos_label(pos_label)
    positive = y_true == pos_label
    return (torch.stack([~positive, positive], 1), torch.stack([1 - y_proba, y_proba], 1),
            weight)


def _multiclass(y_true, y_proba, sample_weight, labels):
    """(one-hot truth (N, C), probabilities (N, C), weight), the columns the sorted classes."""
    y_true, weight = _samples(y_true, y_proba, sample_weight)
    if labels is None:
        classes = torch.unique(y_true)
        if len(classes) < 2:
            raise ValueError(f"expected at least two classes in y_true, but it holds only "
                             f"{classes.tolist()}; pass every class with labels=, e.g. "
                             "labels=[0, 1]")
    else:
        given = _class_labels(labels, "labels").to(y_true.device)
        classes = torch.unique(given)
        if len(classes) != len(given):
            raise ValueError(f"expected distinct labels, but got {given.tolist()}")
        if not torch.equal(classes, given):  # the labels shown as scikit-learn shows them
            shown = labels.tolist() if isinstance(labels, torch.Tensor) else labels
            _warn(f"Labels passed were {shown}. But this function assumes labels are "
                  f"ordered lexicographically. Pass the ordered labels={classes.tolist()} and "
                  "ensure that the columns of y_prob correspond to this ordering.", UserWarning)
        unknown = torch.unique(y_true[~torch.isin(y_true, classes)])
        if len(unknown):
            raise ValueError(f"expected every class of y_true among labels {given.tolist()}, but "
                             f"y_true also holds {unknown.tolist()}")
        if len(classes) < 2:
            raise ValueError(f"expected at least two labels, but got {given.tolist()}")
    if y_proba.ndim == 1:  # the probability of the greater class: p_n0 = 1 - p_n1
        y_proba = torch.stack([1 - y_proba, y_proba], 1)
    sums, eps = y_proba.sum(1), torch.finfo(y_proba.dtype).eps
    if bool(((sums - 1).abs() > 1e-8 + math.sqrt(eps)).any()):  # |sum - 1| <= sqrt(eps) + 1e-8
        _warn("The y_prob values do not sum to one. Make sure to pass probabilities.",
              UserWarning)
    if len(classes) != y_proba.shape[1]:
        where = "y_true" if labels is None else "labels"
        raise ValueError(f"expected one column of y_proba per class of {where} "
                         f"{classes.tolist()}, but got {y_proba.shape[1]} columns"
                         + ("; name every class with labels=" if labels is None else ""))
    return y_true[:, None] == classes, y_proba, weight


def _mean(loss: torch.Tensor, weight: torch.Tensor | None, normalize: bool = True):
    """sum_n w_n loss_n / sum_n w_n (w_n = 1 without weights), or the weighted sum."""
    weight = torch.ones_like(loss) if weight is None else weight.to(loss.dtype)
    total, weights = (weight * loss).sum(), weight.sum()
    if normalize and float(weights) == 0:  # scikit-learn: ZeroDivisionError "Weights sum to zero"
        raise ValueError("expected sample weights with a non-zero sum (the weighted mean divides "
                         "by it), but sample_weight sums to 0")
    return total / weights if normalize else total


def brier_score_loss(y_true, y_proba, *, sample_weight=None, pos_label=None, labels=None,
                     scale_by_half="auto") -> torch.Tensor:
    r"""The Brier score: the mean squared distance between the one-hot truth and the probabilities.

    .. math:: \text{BS} = \frac{\sum_n w_n \sum_k (y_{nk} - p_{nk})^2}{\sum_n w_n}
              \quad \Bigl(\times \tfrac12 \text{ if scaled by half}\Bigr)

    For y_proba (N,), the probability of the class `pos_label` (default: 1 for labels in {0, 1}
    or {-1, 1}, else the greater label; `labels` is ignored), it is $\frac{1}{N}\sum_n
    (y_n - p_n)^2$ once halved. For y_proba (N, C), the columns are the sorted classes of
    `labels`, or of y_true (`pos_label` is ignored). `scale_by_half`: "auto" halves for two
    columns (range [0, 1]) and not for more (range [0, 2]); True or False forces it.
    """
    if not isinstance(scale_by_half, bool) and not (isinstance(scale_by_half, str)
                                                    and scale_by_half == "auto"):
        raise ValueError(f"expected scale_by_half to be True, False or 'auto', but got "
                         f"{scale_by_half!r}")
    y_proba = _score_matrix(y_proba, "y_proba")
    if y_proba.ndim == 1:
        one_hot, y_proba, weight = _binary(y_true, y_proba, sample_weight, pos_label)
    else:
        one_hot, y_proba, weight = _multiclass(y_true, y_proba, sample_weight, labels)
    dtype = _score_dtype(y_proba.device)
    # sum_k (y_nk - p_nk)^2 for each sample n
    squared = ((one_hot.to(dtype) - y_proba.to(dtype)) ** 2).sum(1)
    score = _mean(squared, weight)
    if scale_by_half == "auto":
        scale_by_half = y_proba.shape[1] < 3
    return score / 2 if scale_by_half else score


def log_loss(y_true, y_proba, *, normalize=True, sample_weight=None, labels=None) -> torch.Tensor:
    r"""The log loss (cross-entropy): minus the mean log-probability given to the true class.

    .. math:: L = -\frac{\sum_n w_n \sum_k y_{nk} \log \tilde p_{nk}}{\sum_n w_n}, \qquad
              \tilde p_{nk} = \min(\max(p_{nk}, \epsilon), 1 - \epsilon)

    with $\epsilon$ the machine epsilon of y_proba's dtype (2.2e-16 for float64, 1.2e-7 for
    float32): a confident mistake ($p = 0$ for the true class) costs $-\log \epsilon$ (36.0 in
    float64), not infinity. `normalize=False` gives the weighted sum instead of the mean. y_proba
    (N,) is the probability of the greater of the two classes; (N, C) has one column per sorted
    class of `labels`, or of y_true (which then needs at least two classes). Rows that do not sum
    to 1 get scikit-learn's warning; values outside [0, 1] are an error.
    """
    if not isinstance(normalize, bool):
        raise TypeError(f"expected normalize to be True or False, but got {normalize!r}")
    y_proba = _score_matrix(y_proba, "y_proba")
    one_hot, y_proba, weight = _multiclass(y_true, y_proba, sample_weight, labels)
    eps, dtype = torch.finfo(y_proba.dtype).eps, _score_dtype(y_proba.device)
    clipped = y_proba.to(dtype).clamp(eps, 1 - eps)  # p~ = min(max(p, eps), 1 - eps)
    # -sum_k y_nk log p~_nk = -log p~_{n, y_n} for each sample n
    per_sample = -(one_hot.to(dtype) * clipped.log()).sum(1)
    return _mean(per_sample, weight, normalize)
