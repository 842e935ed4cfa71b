r"""Classification metrics from counts, with the names and semantics of `sklearn.metrics`.

Tensors in, tensors out, on the device of the input. Everything starts from the confusion matrix
$C_{ij}$, the number (or total sample weight) of samples of true class $c_i$ predicted as class
$c_j$. Seen from one class $k$ against the rest:

    TP_k = C_kk                     FP_k = sum_i C_ik - C_kk     (column k: predicted k)
    FN_k = sum_j C_kj - C_kk        TN_k = sum_ij C_ij - TP_k - FP_k - FN_k

    precision_k = TP_k / (TP_k + FP_k)    the share of the samples predicted k that really are k
    recall_k    = TP_k / (TP_k + FN_k)    the share of the samples of class k that were found
    F_beta,k    = (1 + beta^2) TP_k / ((1 + beta^2) TP_k + beta^2 FN_k + FP_k)

Every ratio goes through one safe division, `_safe_divide`: where a denominator is 0 the score is
`zero_division` ("warn": 0 with scikit-learn's `UndefinedMetricWarning`; 0.0, 1.0, or NaN, which
the averages then leave out). `StreamingConfusionMatrix` adds up $C$ batch by batch, and every
metric function is that accumulator fed a single batch, so the two cannot disagree.

The threshold tools score a binary problem at every threshold of "positive iff score >= t":
`confusion_matrix_at_thresholds`, `precision_recall_curve`, `average_precision_score`, and
`metrics_at_threshold` for a single threshold.

Notes (deliberate differences from scikit-learn):
* labels are integer or bool tensors (lists and NumPy arrays are converted) of shape (N,); strings,
  multilabel indicator matrices and ``average="samples"`` are not supported, and a column (N, 1)
  is an error instead of being squeezed;
* scores are float64 tensors (float32 on MPS, which has no float64): 0-d for an average, one entry
  per label otherwise; supports are int64 (float64 with floating sample weights);
* ``labels`` must be distinct and non-empty; scikit-learn accepts repeats and ``[]``;
* the threshold tools take one score per sample (binary targets, or one class against the rest
  with ``pos_label``), and floating-point scores.
"""

from __future__ import annotations

import functools
import math
import numbers
import sys
import types
import warnings
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import sklearn.metrics as _sk
import torch
from sklearn.exceptions import UndefinedMetricWarning  # the same class: one filter silences both

from helpers.verify import DEFAULT_DTYPES, Check, numpy_reference, register

__all__ = [
    "AVERAGES", "ZERO_DIVISIONS", "StreamingConfusionMatrix", "ThresholdMetrics",
    "UndefinedMetricWarning", "accuracy_score", "average_precision_score", "confusion_matrix",
    "confusion_matrix_at_thresholds", "f1_score", "fbeta_score", "metrics_at_threshold",
    "precision_recall_curve", "precision_recall_fscore_support", "precision_score",
    "recall_score",
]

AVERAGES = ("binary", "micro", "macro", "weighted", None)
"""The values of `average`: one class, pooled counts, plain mean, support-weighted mean, none."""

ZERO_DIVISIONS = ("warn", 0.0, 1.0, math.nan)
"""The values of `zero_division`, the score where a denominator is 0."""

NORMALIZATIONS = (None, "true", "pred", "all")
"""The values of `normalize` in `confusion_matrix`: divide by row, column or grand total."""

ALL_WARNINGS = ("precision", "recall", "f-score")


# --------------------------------------------------------------------------------------------
# Validation: say what was expected and what came
# --------------------------------------------------------------------------------------------


def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray | list | tuple):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"expected numbers in {name}, but got NumPy dtype {array.dtype}")
        return torch.as_tensor(array)
    raise TypeError(f"expected {name} to be a tensor (or a list or NumPy array), but got "
                    f"{type(value).__name__}")


def _labels(value, name: str) -> torch.Tensor:
    """`value` as a 1-D int64 tensor of class labels, or a ValueError / TypeError saying why not."""
    y = _as_tensor(value, name)
    if y.ndim != 1:
        hint = ""
        if y.ndim == 2 and y.shape[1] == 1:
            hint = ("; a column holds one value per sample: flatten it with .squeeze(1) (and "
                    "threshold a score, never take argmax over a single column)")
        elif y.ndim == 2 and y.is_floating_point():
            hint = "; for scores of shape (N, C), predict the labels with .argmax(dim=1)"
        raise ValueError(f"expected {name} of shape (N,) with one class label per sample, but got "
                         f"shape {tuple(y.shape)}{hint}")
    if (y.is_floating_point() or y.is_complex()) and y.numel():
        raise TypeError(f"expected integer class labels in {name}, but got {y.dtype} values; turn "
                        "scores into labels first, e.g. (y_score >= 0.5).long() or "
                        "y_score.argmax(dim=1)")
    return y.long()


def _scores(value, name: str) -> torch.Tensor:
    """`value` as a 1-D floating tensor of finite scores, or an error saying why not."""
    y = _as_tensor(value, name)
    if y.ndim != 1:
        raise ValueError(f"expected {name} of shape (N,) with one score per sample, but got shape "
                         f"{tuple(y.shape)}; score one class at a time: y_true == k against "
                         f"{name}[:, k]")
    if not y.is_floating_point():
        raise TypeError(f"expected floating-point scores in {name} (probabilities or logits), but "
                        f"got {y.dtype}")
    bad = int((~torch.isfinite(y)).sum())
    if bad:
        raise ValueError(f"expected finite scores in {name}, but got {bad} NaN or infinite values")
    return y


def _same_samples(first: torch.Tensor, second: torch.Tensor, names: str) -> None:
    if len(first) != len(second):
        raise ValueError(f"expected {names} of the same length, but got {len(first)} and "
                         f"{len(second)}")
    if first.device != second.device:
        raise ValueError(f"expected {names} on the same device, but got {first.device} and "
                         f"{second.device}")


def _sample_weight(value, like: torch.Tensor) -> torch.Tensor | None:
    """None, or a real 1-D tensor with one weight per sample of `like`."""
    if value is None:
        return None
    weight = _as_tensor(value, "sample_weight")
    if weight.shape != like.shape or weight.dtype == torch.bool or weight.is_complex():
        raise ValueError(f"expected sample_weight of shape {tuple(like.shape)} (one real weight "
                         f"per sample), but got {weight.dtype} of shape {tuple(weight.shape)}")
    _same_samples(like, weight, "the labels and sample_weight")
    return weight


def _check_some_weight(weighted: torch.Tensor) -> None:
    """As scikit-learn: a metric of samples that all weigh 0 is an error."""
    if not bool((weighted != 0).any()):
        raise ValueError("expected at least one non-zero sample weight, but every sample counted "
                         "has weight 0")


def _check_average(average) -> None:
    if average is not None and (not isinstance(average, str) or average not in AVERAGES):
        samples = ("; average='samples' is for multilabel targets, which these functions do not "
                   "take" if average == "samples" else "")
        raise ValueError("expected average to be one of 'binary', 'micro', 'macro', 'weighted' or "
                         f"None, but got {average!r}{samples}")


def _zero_division_value(zero_division) -> float:
    """The score for an undefined ratio: 0.0 for "warn", else `zero_division` (0, 1 or NaN)."""
    if isinstance(zero_division, str) and zero_division == "warn":
        return 0.0
    if isinstance(zero_division, numbers.Real) and (zero_division in (0, 1)
                                                    or math.isnan(zero_division)):
        return float(zero_division)
    raise ValueError("expected zero_division to be \"warn\", 0.0, 1.0 or nan, but got "
                     f"{zero_division!r}")


def _check_beta(beta) -> None:
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not beta >= 0:
        raise ValueError(f"expected beta >= 0 (inf allowed), but got {beta!r}")


def _check_pos_label(pos_label) -> None:
    if not isinstance(pos_label, numbers.Integral):
        raise TypeError(f"expected an integer pos_label (a class label), but got {pos_label!r}")


def _score_dtype(device: torch.device) -> torch.dtype:
    """float64, as scikit-learn; float32 on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _warn(message: str, category: type[Warning]) -> None:
    """Warn with the stack level of the first caller outside this module: the user's line."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


# --------------------------------------------------------------------------------------------
# The one safe division, and the average that leaves out NaN
# --------------------------------------------------------------------------------------------


def _safe_divide(numerator: torch.Tensor, denominator: torch.Tensor, zero_division="warn", *,
                 metric: str = "", modifier: str = "", warn_for=()) -> torch.Tensor:
    r"""numerator / denominator, and `zero_division` wherever the denominator is 0.

    .. math:: r_k = \begin{cases} n_k / d_k & d_k \ne 0 \\ z & d_k = 0 \end{cases}
              \qquad z = 0 \text{ for "warn"}, \text{ else } z \in \{0, 1, \text{NaN}\}

    With "warn", an undefined `metric` that is named in `warn_for` gives scikit-learn's
    `UndefinedMetricWarning` ("Precision is ill-defined ... no predicted samples").
    """
    dtype = _score_dtype(numerator.device)
    undefined = denominator == 0
    ratio = numerator.to(dtype) / torch.where(undefined, 1, denominator).to(dtype)
    result = torch.where(undefined, _zero_division_value(zero_division), ratio)
    if isinstance(zero_division, str) and metric in warn_for and bool(undefined.any()):
        where = "due to" if result.numel() == 1 else "in labels with"
        _warn(f"{metric.capitalize()} is ill-defined and being set to 0.0 {where} no {modifier} "
              "samples. Use `zero_division` parameter to control this behavior.",
              UndefinedMetricWarning)
    return result


def _nanaverage(scores: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    r"""The (weighted) mean of the scores that are not NaN, as scikit-learn's `_nanaverage`.

    .. math:: \bar s = \frac{\sum_{k: s_k \ne \text{NaN}} w_k s_k}{\sum_{k: s_k \ne \text{NaN}} w_k}

    with $w_k = 1$ without weights; if those weights sum to 0, the plain mean; NaN if no score is
    left.
    """
    kept = ~scores.isnan()
    ones = kept.to(scores.dtype)
    weights = ones if weights is None else torch.where(kept, weights.to(scores.dtype), 0.0)
    weights = torch.where(weights.sum() == 0, ones, weights)
    return (torch.where(kept, scores, 0.0) * weights).sum() / weights.sum()


# --------------------------------------------------------------------------------------------
# The confusion matrix, batch by batch, and every metric from it
# --------------------------------------------------------------------------------------------


def _bincount(index: torch.Tensor, weight: torch.Tensor | None, size: int) -> torch.Tensor:
    """How often each of 0 .. size-1 occurs in `index` (int64), or its total weight."""
    if weight is None:
        return torch.bincount(index, minlength=size)
    counts = torch.bincount(index, weights=weight.to(_score_dtype(index.device)), minlength=size)
    return counts if weight.is_floating_point() else counts.round().long()


class StreamingConfusionMatrix:
    r"""The confusion matrix of an evaluation loop, added up batch by batch; every metric from it.

    .. math:: C_{ij} \mathrel{+}= \sum_{n \in \text{batch}} w_n\,[y_n = c_i]\,[\hat y_n = c_j]

    over the sorted classes $c_0 < c_1 < \dots$ seen so far in y_true or y_pred ($w_n = 1$ without
    sample weights); the matrix grows when a batch brings a new class. The counts are sufficient
    statistics: each metric method takes the keyword arguments of the function of the same name
    (less the data) and returns exactly what that function returns on all batches concatenated.
    Averaging per-batch scores instead is wrong: precision is a ratio of sums, not a mean of
    ratios. A batch may be empty, or weigh 0; a metric of samples that all weigh 0 is an error, as
    in scikit-learn.

    >>> stream = StreamingConfusionMatrix()
    >>> for y_true, y_pred in batches:
    ...     stream.update(y_true, y_pred)
    >>> stream.precision_score(average="macro")
    """

    def __init__(self):
        self.classes: torch.Tensor | None = None  # (K,) sorted labels seen in y_true or y_pred
        self.true_classes: torch.Tensor | None = None  # sorted labels seen in y_true
        self.matrix: torch.Tensor | None = None  # (K, K): row = true class, column = predicted

    @property
    def device(self) -> torch.device | None:
        return None if self.matrix is None else self.matrix.device

    def update(self, y_true, y_pred, sample_weight=None) -> StreamingConfusionMatrix:
        """Add a batch of true and predicted labels (and optional sample weights); returns self."""
        y_true, y_pred = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
        _same_samples(y_true, y_pred, "y_true and y_pred")
        sample_weight = _sample_weight(sample_weight, y_true)
        if self.matrix is None:
            empty = torch.empty(0, dtype=torch.long, device=y_true.device)
            self.classes, self.true_classes = empty, empty
            self.matrix = torch.zeros(0, 0, dtype=torch.long, device=y_true.device)
        elif y_true.device != self.device:
            raise ValueError(f"expected every batch on {self.device}, where the first one was, "
                             f"but got one on {y_true.device}")
        self._grow(torch.cat([y_true, y_pred]))
        self.true_classes = torch.unique(torch.cat([self.true_classes, y_true]))
        k = len(self.classes)
        # C[i, j] += total weight of the samples with y_true = c_i and y_pred = c_j
        row, column = (torch.searchsorted(self.classes, y) for y in (y_true, y_pred))
        cell = row * k + column
        self.matrix = self.matrix + _bincount(cell, sample_weight, k * k).reshape(k, k)
        return self

    def _grow(self, labels: torch.Tensor) -> None:
        """Make room for the classes among `labels` that the matrix has no row for yet."""
        classes = torch.unique(torch.cat([self.classes, labels]))
        if len(classes) > len(self.classes):
            old = torch.searchsorted(classes, self.classes)
            matrix = self.matrix.new_zeros(len(classes), len(classes))
            matrix[old[:, None], old] = self.matrix
            self.classes, self.matrix = classes, matrix

    def _counted(self) -> None:
        if self.matrix is None or not len(self.classes):
            raise ValueError("expected at least one sample, but none was counted (y_true and "
                             "y_pred are empty)")
        _check_some_weight(self.matrix)

    def _labels_argument(self, labels) -> torch.Tensor:
        labels = _labels(labels, "labels").to(self.device)
        if not len(labels):
            raise ValueError("expected at least one label in labels, but got none")
        if len(torch.unique(labels)) < len(labels):
            raise ValueError(f"expected distinct labels, but got {labels.tolist()}")
        return labels

    def _find(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Row of each label in the matrix, and whether the label was seen at all."""
        row = torch.searchsorted(self.classes, labels).clamp(max=len(self.classes) - 1)
        return row, self.classes[row] == labels

    def _scored_labels(self, labels, pos_label, average) -> torch.Tensor:
        """[pos_label] for average="binary", else `labels`, or every class seen."""
        if average != "binary":
            if pos_label not in (None, 1):
                _warn(f"Note that pos_label (set to {pos_label!r}) is ignored when average != "
                      f"'binary' (got {average!r}). You may use labels=[pos_label] to specify a "
                      "single positive class.", UserWarning)
            return self.classes if labels is None else self._labels_argument(labels)
        if len(self.classes) > 2:
            raise ValueError(
                f"average='binary' needs binary targets, but y_true and y_pred hold "
                f"{len(self.classes)} classes {self.classes.tolist()}; choose average='micro', "
                "'macro' or 'weighted' to average over the classes, or average=None for one score "
                "per class")
        _check_pos_label(pos_label)
        if len(self.classes) == 2 and not bool((self.classes == pos_label).any()):
            raise ValueError(f"expected pos_label to be one of the labels {self.classes.tolist()}, "
                             f"but got pos_label={pos_label!r}")
        return torch.tensor([int(pos_label)], device=self.device)

    def confusion_matrix(self, *, labels=None, normalize=None) -> torch.Tensor:
        """As `confusion_matrix` on every batch so far."""
        self._counted()
        if normalize not in NORMALIZATIONS:
            raise ValueError(f"expected normalize to be one of {NORMALIZATIONS}, but got "
                             f"{normalize!r}")
        matrix = self.matrix
        if labels is not None:
            labels = self._labels_argument(labels)
            if not bool(torch.isin(labels, self.true_classes).any()):
                raise ValueError(f"expected at least one of labels {labels.tolist()} in y_true, "
                                 f"but y_true holds only {self.true_classes.tolist()}")
            row, seen = self._find(labels)
            matrix = torch.where(seen[:, None] & seen, matrix[row][:, row], 0)
        if normalize is not None:
            if normalize == "true":  # C_ij / sum_j C_ij: each row sums to 1
                total = matrix.sum(1, keepdim=True)
            elif normalize == "pred":  # C_ij / sum_i C_ij: each column sums to 1
                total = matrix.sum(0, keepdim=True)
            else:  # C_ij / sum_ij C_ij
                total = matrix.sum()
            matrix = _safe_divide(matrix, total, zero_division=0.0)
        if matrix.shape == (1, 1):
            _warn("A single label was found in 'y_true' and 'y_pred'. For the confusion matrix to "
                  "have the correct shape, use the 'labels' parameter to pass all known labels.",
                  UserWarning)
        return matrix

    def accuracy_score(self, *, normalize=True) -> torch.Tensor:
        """As `accuracy_score` on every batch so far."""
        self._counted()
        correct = self.matrix.diagonal().sum().to(_score_dtype(self.device))
        return correct / self.matrix.sum() if normalize else correct

    def precision_recall_fscore_support(self, *, beta=1.0, labels=None, pos_label=1, average=None,
                                        warn_for=ALL_WARNINGS, zero_division="warn"):
        """As `precision_recall_fscore_support` on every batch so far."""
        _check_average(average)
        _check_beta(beta)
        _zero_division_value(zero_division)
        self._counted()
        row, seen = self._find(self._scored_labels(labels, pos_label, average))
        # per label (0 for a label never seen): TP_k = C_kk, TP_k + FP_k = sum_i C_ik,
        # TP_k + FN_k = sum_j C_kj
        tp, predicted, true = (torch.where(seen, counts[row], 0) for counts in (
            self.matrix.diagonal(), self.matrix.sum(0), self.matrix.sum(1)))
        if average == "micro":  # pool the counts of every label, then divide once
            tp, predicted, true = tp.sum(0, True), predicted.sum(0, True), true.sum(0, True)
        divide = functools.partial(_safe_divide, zero_division=zero_division, warn_for=warn_for)
        precision = divide(tp, predicted, metric="precision", modifier="predicted")
        recall = divide(tp, true, metric="recall", modifier="true")
        if math.isinf(beta):
            f_score = recall
        elif beta == 0:
            f_score = precision
        else:
            # F_beta = (1 + beta^2) TP / (beta^2 (TP + FN) + (TP + FP))
            dtype = precision.dtype
            f_score = divide((1 + beta**2) * tp.to(dtype), beta**2 * true.to(dtype)
                             + predicted.to(dtype), metric="f-score", modifier="true nor predicted")
        if average is None:
            return precision, recall, f_score, true
        weights = true if average == "weighted" else None
        return (_nanaverage(precision, weights), _nanaverage(recall, weights),
                _nanaverage(f_score, weights), None)

    def precision_score(self, *, labels=None, pos_label=1, average="binary",
                        zero_division="warn") -> torch.Tensor:
        """As `precision_score` on every batch so far."""
        return self.precision_recall_fscore_support(
            labels=labels, pos_label=pos_label, average=average, warn_for=("precision",),
            zero_division=zero_division)[0]

    def recall_score(self, *, labels=None, pos_label=1, average="binary",
                     zero_division="warn") -> torch.Tensor:
        """As `recall_score` on every batch so far."""
        return self.precision_recall_fscore_support(
            labels=labels, pos_label=pos_label, average=average, warn_for=("recall",),
            zero_division=zero_division)[1]

    def fbeta_score(self, *, beta, labels=None, pos_label=1, average="binary",
                    zero_division="warn") -> torch.Tensor:
        """As `fbeta_score` on every batch so far."""
        return self.precision_recall_fscore_support(
            beta=beta, labels=labels, pos_label=pos_label, average=average,
            warn_for=("f-score",), zero_division=zero_division)[2]

    def f1_score(self, *, labels=None, pos_label=1, average="binary",
                 zero_division="warn") -> torch.Tensor:
        """As `f1_score` on every batch so far."""
        return self.fbeta_score(beta=1.0, labels=labels, pos_label=pos_label, average=average,
                                zero_division=zero_division)


def _counted(y_true, y_pred, sample_weight=None) -> StreamingConfusionMatrix:
    return StreamingConfusionMatrix().update(y_true, y_pred, sample_weight)


def confusion_matrix(y_true, y_pred, *, labels=None, sample_weight=None,
                     normalize=None) -> torch.Tensor:
    r"""$C_{ij}$ = number of samples of true class $c_i$ predicted as class $c_j$ (rows: truth).

    .. math:: C_{ij} = \sum_n w_n\,[y_n = c_i]\,[\hat y_n = c_j]

    built with one `bincount` of the cell index $i K + j$. The classes are the sorted labels found
    in y_true or y_pred, or `labels` (in that order; samples of other classes drop out, and at
    least one label must occur in y_true). `normalize` divides by the row sums ("true": each row
    is then the recall profile of a class), the column sums ("pred") or the total ("all"); an
    empty row or column gives 0. int64 counts, float64 when normalized or weighted.
    """
    return _counted(y_true, y_pred, sample_weight).confusion_matrix(labels=labels,
                                                                    normalize=normalize)


def accuracy_score(y_true, y_pred, *, normalize=True, sample_weight=None) -> torch.Tensor:
    r"""The share of correct predictions, $\sum_k C_{kk} / \sum_{ij} C_{ij}$ (with
    ``normalize=False`` the number correct, $\sum_k C_{kk}$), as a 0-d float64 tensor."""
    return _counted(y_true, y_pred, sample_weight).accuracy_score(normalize=normalize)


def precision_recall_fscore_support(y_true, y_pred, *, beta=1.0, labels=None, pos_label=1,
                                    average=None, warn_for=ALL_WARNINGS, sample_weight=None,
                                    zero_division="warn"):
    r"""Precision, recall, F-beta and support of each label, or their average.

    .. math::
        P_k = \frac{TP_k}{TP_k + FP_k}, \quad R_k = \frac{TP_k}{TP_k + FN_k}, \quad
        F_{\beta,k} = \frac{(1 + \beta^2)\,TP_k}{(1 + \beta^2)\,TP_k + \beta^2 FN_k + FP_k},
        \quad \text{support}_k = TP_k + FN_k

    $F_\beta$ is the weighted harmonic mean $\bigl(\frac{1}{1+\beta^2}\frac{1}{P} +
    \frac{\beta^2}{1+\beta^2}\frac{1}{R}\bigr)^{-1}$, computed from the counts so that it is
    defined whenever $TP + FN + FP > 0$; $\beta = 0$ gives $P$, $\beta = \infty$ gives $R$.

    `average`: "binary" scores the class `pos_label` alone (binary targets only); "micro" pools
    $TP, FP, FN$ over the labels and divides once; "macro" is the plain mean over the labels,
    "weighted" the mean weighted by support; None returns one score per label. The labels are
    `labels`, or every class found in y_true or y_pred. `zero_division` is the score of an
    undefined ratio ("warn": 0 and an `UndefinedMetricWarning` for the metrics in `warn_for`;
    NaN leaves the label out of the average). Returns (precision, recall, f_score, support),
    support None when averaged.
    """
    return _counted(y_true, y_pred, sample_weight).precision_recall_fscore_support(
        beta=beta, labels=labels, pos_label=pos_label, average=average, warn_for=warn_for,
        zero_division=zero_division)


def precision_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary",
                    sample_weight=None, zero_division="warn") -> torch.Tensor:
    r"""Precision $TP / (TP + FP)$: the share of the predicted positives that are positive.

    Arguments and averaging as in `precision_recall_fscore_support`.
    """
    return _counted(y_true, y_pred, sample_weight).precision_score(
        labels=labels, pos_label=pos_label, average=average, zero_division=zero_division)


def recall_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary",
                 sample_weight=None, zero_division="warn") -> torch.Tensor:
    r"""Recall $TP / (TP + FN)$: the share of the actual positives that were found.

    Arguments and averaging as in `precision_recall_fscore_support`.
    """
    return _counted(y_true, y_pred, sample_weight).recall_score(
        labels=labels, pos_label=pos_label, average=average, zero_division=zero_division)


def fbeta_score(y_true, y_pred, *, beta, labels=None, pos_label=1, average="binary",
                sample_weight=None, zero_division="warn") -> torch.Tensor:
    r"""$F_\beta = (1 + \beta^2)\,TP / ((1 + \beta^2)\,TP + \beta^2 FN + FP)$: the harmonic mean
    of precision and recall with recall weighted $\beta^2$ times as much.

    Arguments and averaging as in `precision_recall_fscore_support`.
    """
    return _counted(y_true, y_pred, sample_weight).fbeta_score(
        beta=beta, labels=labels, pos_label=pos_label, average=average,
        zero_division=zero_division)


def f1_score(y_true, y_pred, *, labels=None, pos_label=1, average="binary", sample_weight=None,
             zero_division="warn") -> torch.Tensor:
    r"""$F_1 = 2\,TP / (2\,TP + FP + FN)$, the harmonic mean of precision and recall.

    Arguments and averaging as in `precision_recall_fscore_support`.
    """
    return _counted(y_true, y_pred, sample_weight).f1_score(
        labels=labels, pos_label=pos_label, average=average, zero_division=zero_division)


# --------------------------------------------------------------------------------------------
# Thresholds: one score per sample, "positive iff score >= t"
# --------------------------------------------------------------------------------------------


def _binary_problem(y_true, y_score, pos_label, sample_weight):
    """(positive: bool, score, weight or None), samples of weight 0 dropped, as scikit-learn."""
    y_true, y_score = _labels(y_true, "y_true"), _scores(y_score, "y_score")
    _same_samples(y_true, y_score, "y_true and y_score")
    if not len(y_true):
        raise ValueError("expected at least one sample, but y_true and y_score are empty")
    weight = _sample_weight(sample_weight, y_true)
    if weight is not None:
        _check_some_weight(weight)
    if pos_label is None:
        classes = torch.unique(y_true).tolist()
        if len(classes) > 2:
            raise ValueError(f"expected binary y_true, but it holds {len(classes)} classes "
                             f"{classes}; pass pos_label to score one class against the rest")
        if not (set(classes) <= {0, 1} or set(classes) <= {-1, 1}):
            raise ValueError(f"y_true holds the classes {classes}, so pos_label must be given: "
                             "expected labels in {0, 1} or {-1, 1}, or an explicit pos_label")
        pos_label = 1
    _check_pos_label(pos_label)
    positive = y_true == pos_label
    if weight is not None:
        kept = weight != 0
        positive, y_score, weight = positive[kept], y_score[kept], weight[kept]
    return positive, y_score, weight


def confusion_matrix_at_thresholds(y_true, y_score, *, pos_label=None, sample_weight=None):
    r"""TN, FP, FN, TP of "positive iff score >= t" for each distinct score t, in decreasing order.

    Sort the samples by decreasing score: those predicted positive at threshold $t$ are a prefix
    of that order, so

    .. math::
        TP(t) = \sum_{n:\, s_n \ge t} w_n [y_n = \text{pos}], \quad
        FP(t) = \sum_{n:\, s_n \ge t} w_n [y_n \ne \text{pos}], \quad
        FN = P - TP, \quad TN = N - FP

    are cumulative sums read at the last sample of each run of tied scores. Returns
    (tns, fps, fns, tps, thresholds): float64 counts, and the thresholds in the dtype of y_score.
    `pos_label` None means 1 for labels in {0, 1} or {-1, 1}.
    """
    positive, score, weight = _binary_problem(y_true, y_score, pos_label, sample_weight)
    dtype = _score_dtype(score.device)
    order = torch.argsort(score, descending=True, stable=True)
    score, positive = score[order], positive[order].to(dtype)
    weight = torch.ones_like(positive) if weight is None else weight[order].to(dtype)
    last_of_ties = torch.cat([torch.nonzero(score.diff()).flatten(),
                              torch.tensor([len(score) - 1], device=score.device)])
    tps = torch.cumsum(positive * weight, 0)[last_of_ties]
    fps = torch.cumsum((1 - positive) * weight, 0)[last_of_ties]
    return fps[-1] - fps, fps, tps[-1] - tps, tps, score[last_of_ties]


def precision_recall_curve(y_true, y_score, *, pos_label=None, sample_weight=None,
                           drop_intermediate=False):
    r"""Precision and recall of "positive iff score >= t" at every distinct score t.

    .. math:: P(t) = \frac{TP(t)}{TP(t) + FP(t)}, \qquad R(t) = \frac{TP(t)}{TP(t) + FN(t)}

    Returns (precision, recall, thresholds) with the thresholds increasing, so recall decreases;
    one more point (recall 0, precision 1) closes the curve at the y axis. Without a positive in
    y_true the recall is 1 everywhere (with a warning). `drop_intermediate` keeps only the first
    and last threshold of each run of equal TP (the points in between lie on a vertical segment).
    """
    _, fps, _, tps, thresholds = confusion_matrix_at_thresholds(
        y_true, y_score, pos_label=pos_label, sample_weight=sample_weight)
    if drop_intermediate and len(fps) > 2:
        end = torch.ones(1, dtype=torch.bool, device=tps.device)
        kept = torch.cat([end, (tps[:-1].diff() != 0) | (tps[1:].diff() != 0), end])
        fps, tps, thresholds = fps[kept], tps[kept], thresholds[kept]
    precision = _safe_divide(tps, tps + fps, zero_division=0.0)
    if tps[-1] == 0:
        _warn("No positive class found in y_true, recall is set to one for all thresholds.",
              UserWarning)
    recall = _safe_divide(tps, tps[-1].expand_as(tps), zero_division=1.0)  # TP / (TP + FN)
    return (torch.cat([precision.flip(0), torch.ones_like(precision[:1])]),
            torch.cat([recall.flip(0), torch.zeros_like(recall[:1])]), thresholds.flip(0))


def average_precision_score(y_true, y_score, *, pos_label=1, sample_weight=None) -> torch.Tensor:
    r"""Average precision: the precisions along the PR curve, weighted by the recall they add.

    .. math:: \text{AP} = \sum_n (R_n - R_{n-1})\, P_n

    over the thresholds from the highest down: the area under the step function through the
    curve's points, no interpolation. Binary targets; `pos_label` is the positive class.
    """
    classes = torch.unique(_labels(y_true, "y_true")).tolist()
    if len(classes) > 2:
        raise ValueError(f"expected binary y_true, but it holds {len(classes)} classes {classes}; "
                         "score one class at a time: average_precision_score(y_true == k, "
                         "y_score[:, k])")
    if len(classes) == 2 and pos_label not in classes:
        raise ValueError(f"expected pos_label to be one of the labels {classes}, but got "
                         f"pos_label={pos_label!r}")
    precision, recall, _ = precision_recall_curve(y_true, y_score, pos_label=pos_label,
                                                  sample_weight=sample_weight)
    # the curve runs from high recall to low: R_n - R_{n-1} = -diff(recall)
    return (-(recall.diff() * precision[:-1]).sum()).clamp(min=0.0)


class ThresholdMetrics(NamedTuple):
    """The binary metrics at one decision threshold."""

    threshold: float
    confusion_matrix: torch.Tensor  # [[TN, FP], [FN, TP]]
    precision: torch.Tensor
    recall: torch.Tensor
    f1_score: torch.Tensor


def metrics_at_threshold(y_true, y_score, threshold, *, pos_label=1,
                         zero_division="warn") -> ThresholdMetrics:
    r"""Predict positive iff score >= `threshold`, and score that prediction.

    Returns the confusion matrix [[TN, FP], [FN, TP]] and precision, recall and F1 of the class
    `pos_label` (against the rest). At a threshold of `precision_recall_curve`, (precision, recall)
    is that curve's point; above the highest score nothing is predicted positive and precision is
    `zero_division`.
    """
    if isinstance(threshold, bool) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"expected a real threshold, but got {threshold!r}")
    positive, score, _ = _binary_problem(y_true, y_score, pos_label, None)
    stream = _counted(positive.long(), (score >= threshold).long())
    precision, recall, f1, _ = stream.precision_recall_fscore_support(
        average="binary", zero_division=zero_division)
    return ThresholdMetrics(float(threshold), stream.confusion_matrix(labels=[0, 1]), precision,
                            recall, f1)


# --------------------------------------------------------------------------------------------
# Checks against scikit-learn (`python -m helpers.verify -k metrics`)
# --------------------------------------------------------------------------------------------
#
# Labels are integers, so the checks on labels alone run in float64 (the dtype of our scores);
# sample weights and scores are cast to each dtype. Both sides run with their warnings silenced:
# tests/test_metrics.py compares the warnings themselves.

_THIS = sys.modules[__name__]
_SCORE_FUNCTIONS = ("precision_score", "recall_score", "f1_score", "fbeta_score",
                    "precision_recall_fscore_support")


def _quietly(fn: Callable) -> Callable:
    @functools.wraps(fn)
    def quiet(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)
            warnings.simplefilter("ignore", UserWarning)
            return fn(*args, **kwargs)
    return quiet


@_quietly
def _all_scores(module, y_true, y_pred, *, averages=AVERAGES[1:], **kwargs) -> dict:
    """Every score function of `module` (ours or sklearn.metrics) for each average, by name."""
    scores = {}
    for average in averages:
        for beta in (0.5, 2.0):
            scores[f"{average} fbeta_score(beta={beta})"] = module.fbeta_score(
                y_true, y_pred, beta=beta, average=average, **kwargs)
        for name in ("precision_score", "recall_score", "f1_score"):
            scores[f"{average} {name}"] = getattr(module, name)(y_true, y_pred, average=average,
                                                                **kwargs)
        prfs = module.precision_recall_fscore_support(y_true, y_pred, average=average, **kwargs)
        scores[f"{average} precision_recall_fscore_support"] = [x for x in prfs if x is not None]
    return scores


@_quietly
def _confusion_and_accuracy(module, y_true, y_pred, **kwargs) -> dict:
    results = {f"confusion_matrix normalize={n}": module.confusion_matrix(
        y_true, y_pred, normalize=n, **kwargs) for n in NORMALIZATIONS}
    if "labels" not in kwargs:
        for normalize in (True, False):
            results[f"accuracy_score normalize={normalize}"] = module.accuracy_score(
                y_true, y_pred, normalize=normalize, **kwargs)
    return results


@_quietly
def _curves(module, y_true, y_score, **kwargs) -> dict:
    return {"precision_recall_curve": module.precision_recall_curve(y_true, y_score, **kwargs),
            "precision_recall_curve drop_intermediate": module.precision_recall_curve(
                y_true, y_score, drop_intermediate=True, **kwargs),
            "average_precision_score": module.average_precision_score(
                y_true, y_score, **kwargs)}


def _streamed(name: str, batches: int = 7) -> Callable:
    """The function `name`, computed by a StreamingConfusionMatrix fed `batches` batches."""
    def metric(y_true, y_pred, sample_weight=None, **kwargs):
        stream = StreamingConfusionMatrix()
        weights = [None] * batches if sample_weight is None else sample_weight.tensor_split(batches)
        for batch in zip(y_true.tensor_split(batches), y_pred.tensor_split(batches), weights):
            stream.update(*batch)
        return getattr(stream, name)(**kwargs)
    return metric


_IN_BATCHES = types.SimpleNamespace(**{name: _streamed(name) for name in _SCORE_FUNCTIONS})


def _multiclass(generator: torch.Generator, n: int = 150) -> dict:
    """Five classes, two of them half empty: 3 is predicted but never true, 4 true but never
    predicted; about 60% of the predictions are right."""
    y_true = torch.randint(0, 5, (n,), generator=generator)
    y_true[y_true == 3] = 0
    guess = torch.randint(0, 4, (n,), generator=generator)
    right = torch.rand(n, generator=generator, dtype=torch.float64) < 0.6
    y_pred = torch.where(right & (y_true != 4), y_true, guess)
    return {"y_true": y_true, "y_pred": y_pred}


def _binary(generator: torch.Generator, n: int = 150) -> dict:
    """About 20% positives; predictions right about 80% of the time."""
    y_true = (torch.rand(n, generator=generator, dtype=torch.float64) < 0.2).long()
    flip = (torch.rand(n, generator=generator, dtype=torch.float64) < 0.2).long()
    return {"y_true": y_true, "y_pred": y_true ^ flip}


def _all_negative_predictions(generator: torch.Generator) -> dict:
    return {"y_true": _binary(generator)["y_true"], "y_pred": torch.zeros(150, dtype=torch.long)}


def _weighted(labels: Callable) -> Callable:
    def inputs(generator: torch.Generator) -> dict:
        data = labels(generator)
        weight = 3 * torch.rand(len(data["y_true"]), generator=generator, dtype=torch.float64)
        weight[::10] = 0.0
        return {**data, "sample_weight": weight}
    return inputs


def _scored(generator: torch.Generator, n: int = 200) -> dict:
    """Binary labels (30% positive) and scores rounded to 2 decimals, so that many are tied."""
    y_true = (torch.rand(n, generator=generator, dtype=torch.float64) < 0.3).long()
    logit = 1.5 * (2 * y_true - 1) + torch.randn(n, generator=generator, dtype=torch.float64)
    return {"y_true": y_true, "y_score": torch.sigmoid(logit).round(decimals=2)}


def _threshold_reference(y_true, y_score, threshold):
    """scikit-learn's confusion matrix and binary scores of the prediction y_score >= threshold."""
    positive, predicted = (y_true == 1).astype(int), (y_score >= threshold).astype(int)
    precision, recall, f1, _ = _sk.precision_recall_fscore_support(positive, predicted,
                                                                   average="binary")
    return _sk.confusion_matrix(positive, predicted, labels=[0, 1]), precision, recall, f1


def _sklearn(compute: Callable, **options) -> Callable:
    """`compute` with sklearn.metrics as the module: the reference of a check."""
    return numpy_reference(functools.partial(compute, _sk, **options))


def _against_sklearn(name: str, compute: Callable, inputs: Callable, *, ours=_THIS,
                     dtypes=(torch.float64,), **options) -> Check:
    """The check that `compute` gives the same with our module (or `ours`) as with sklearn."""
    return Check(name, functools.partial(compute, ours, **options), _sklearn(compute, **options),
                 inputs, dtypes)


def _label_checks() -> list[Check]:
    checks = [
        _against_sklearn("confusion_matrix, accuracy_score", _confusion_and_accuracy, _multiclass),
        _against_sklearn("confusion_matrix labels=[4, 0, 6, 2]", _confusion_and_accuracy,
                         _multiclass, labels=[4, 0, 6, 2]),
        _against_sklearn("confusion_matrix, accuracy_score sample_weight",
                         _confusion_and_accuracy, _weighted(_multiclass), dtypes=DEFAULT_DTYPES),
    ]
    for zero_division in ZERO_DIVISIONS:
        checks += [
            _against_sklearn(f"scores binary zero_division={zero_division}", _all_scores, _binary,
                             averages=AVERAGES, zero_division=zero_division),
            _against_sklearn(f"scores multiclass zero_division={zero_division}", _all_scores,
                             _multiclass, zero_division=zero_division),
            _against_sklearn(f"scores all-negative predictions zero_division={zero_division}",
                             _all_scores, _all_negative_predictions, averages=AVERAGES,
                             zero_division=zero_division),
        ]
    return checks + [
        _against_sklearn("scores labels=[4, 0, 6, 2]", _all_scores, _multiclass,
                         labels=[4, 0, 6, 2]),
        _against_sklearn("scores pos_label=0", _all_scores, _binary, averages=("binary",),
                         pos_label=0),
        _against_sklearn("scores binary sample_weight", _all_scores, _weighted(_binary),
                         dtypes=DEFAULT_DTYPES, averages=AVERAGES),
        _against_sklearn("scores multiclass sample_weight", _all_scores,
                         _weighted(_multiclass), dtypes=DEFAULT_DTYPES),
        _against_sklearn("StreamingConfusionMatrix, 7 batches", _all_scores, _multiclass,
                         ours=_IN_BATCHES),
        _against_sklearn("StreamingConfusionMatrix, 7 batches, sample_weight", _all_scores,
                         _weighted(_multiclass), ours=_IN_BATCHES, dtypes=DEFAULT_DTYPES),
    ]


def _threshold_checks() -> list[Check]:
    checks = [
        _against_sklearn("precision_recall_curve, average_precision_score", _curves, _scored,
                         dtypes=DEFAULT_DTYPES),
        _against_sklearn("precision_recall_curve, average_precision_score sample_weight",
                         _curves, _weighted(_scored), dtypes=DEFAULT_DTYPES),
        _against_sklearn("precision_recall_curve, average_precision_score pos_label=0", _curves,
                         _scored, dtypes=DEFAULT_DTYPES, pos_label=0),
        Check("metrics_at_threshold t=0.5",
              lambda y_true, y_score: metrics_at_threshold(y_true, y_score, 0.5)[1:],
              _sklearn(lambda _, y_true, y_score: _threshold_reference(y_true, y_score, 0.5)),
              _scored),
    ]
    reference = _sklearn(lambda sk, *args, **kwargs: sk.confusion_matrix_at_thresholds(
        *args, **kwargs))
    return checks + [Check("confusion_matrix_at_thresholds", confusion_matrix_at_thresholds,
                           reference, _weighted(_scored))]


CHECKS: tuple[Check, ...] = (*_label_checks(), *_threshold_checks())
"""Every check of this module, each against scikit-learn; `python -m helpers.verify` runs them."""

register(*CHECKS)
