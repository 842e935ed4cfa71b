r"""Counts and scores: the confusion matrix, batch by batch, and every metric from it.

Every ratio goes through one safe division, `_safe_divide`; `StreamingConfusionMatrix` adds up
the counts, and each metric function is that accumulator fed a single batch: the confusion
matrix, accuracy, precision, recall, F-beta, balanced accuracy and the Matthews correlation.
"""

from __future__ import annotations

import functools
import math

import torch
from sklearn.exceptions import UndefinedMetricWarning  # the same class: one filter silences both

from helpers.metrics.validation import (
    ALL_WARNINGS,
    NORMALIZATIONS,
    _check_average,
    _check_beta,
    _check_pos_label,
    _check_some_weight,
    _class_labels,
    _same_samples,
    _sample_weight,
    _score_dtype,
    _warn,
    _zero_division_value,
)

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
        y_true, y_pred = _class_labels(y_true, "y_true"), _class_labels(y_pred, "y_pred")
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
        labels = _class_labels(labels, "labels").to(self.device)
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

    def balanced_accuracy_score(self, *, adjusted=False) -> torch.Tensor:
        """As `balanced_accuracy_score` on every batch so far."""
        if not isinstance(adjusted, bool):
            raise TypeError(f"expected adjusted to be True or False, but got {adjusted!r}")
        matrix = self.confusion_matrix()  # its warning for a single label too, as scikit-learn
        # recall_k = C_kk / sum_j C_kj; NaN for a class that has no (weight in) true samples
        recall = _safe_divide(matrix.diagonal(), matrix.sum(1), zero_division=math.nan)
        if bool(recall.isnan().any()):
            _warn("y_pred contains classes not in y_true", UserWarning)
            recall = recall[~recall.isnan()]
        score = recall.mean()  # (1/K) sum_k recall_k over the K classes of y_true
        if adjusted:
            # (score - 1/K) / (1 - 1/K): chance level becomes 0, perfect stays 1; with K = 1 a
            # division by 0, which gives NaN or -inf as in scikit-learn
            chance = 1 / len(recall)
            score = (score - chance) / (1 - chance)
        return score

    def matthews_corrcoef(self) -> torch.Tensor:
        """As `matthews_corrcoef` on every batch so far."""
        matrix = self.confusion_matrix().to(_score_dtype(self.device))
        true, predicted = matrix.sum(1), matrix.sum(0)  # t_k, p_k: true and predicted per class
        correct, total = matrix.diagonal().sum(), predicted.sum()  # c = sum_k C_kk, s = sum_k p_k
        # cov(y, y_hat) = c s - sum_k t_k p_k;  cov(y_hat, y_hat) = s^2 - sum_k p_k^2;
        # cov(y, y) = s^2 - sum_k t_k^2   (each times N^2; the factor cancels)
        cov_true_pred = correct * total - true @ predicted
        cov_pred_pred = total**2 - predicted @ predicted
        cov_true_true = total**2 - true @ true
        # MCC = cov(y, y_hat) / sqrt(cov(y_hat, y_hat) cov(y, y)), 0 where a variance is 0
        return _safe_divide(cov_true_pred, torch.sqrt(cov_pred_pred * cov_true_true),
                            zero_division=0.0)


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


def balanced_accuracy_score(y_true, y_pred, *, sample_weight=None, adjusted=False) -> torch.Tensor:
    r"""Balanced accuracy: the mean recall over the classes of y_true.

    .. math:: \text{BA} = \frac{1}{K} \sum_{k=1}^{K} \frac{C_{kk}}{\sum_j C_{kj}}, \qquad
              \text{adjusted: } \frac{\text{BA} - 1/K}{1 - 1/K}

    over the $K$ classes with true samples: a class only predicted has no recall, and is left out
    with scikit-learn's warning "y_pred contains classes not in y_true". Equal to the accuracy
    with each sample weighted by 1 / (the size of its class), so every class counts the same:
    always predicting the majority class scores 1/K, not its share. `adjusted` rescales so that a
    prediction independent of the truth scores 0 in expectation (its recalls average 1/K) and a
    perfect one 1.
    """
    return _counted(y_true, y_pred, sample_weight).balanced_accuracy_score(adjusted=adjusted)


def matthews_corrcoef(y_true, y_pred, *, sample_weight=None) -> torch.Tensor:
    r"""The Matthews correlation coefficient: the correlation of true and predicted one-hot labels.

    .. math:: \text{MCC} = \frac{c\,s - \sum_k t_k p_k}
              {\sqrt{\bigl(s^2 - \sum_k p_k^2\bigr)\bigl(s^2 - \sum_k t_k^2\bigr)}}

    with $t_k = \sum_j C_{kj}$ the true and $p_k = \sum_i C_{ik}$ the predicted samples of class
    $k$, $c = \sum_k C_{kk}$ the correct ones and $s$ all of them (Gorodkin's K-category form;
    for two classes it is $\frac{TP\,TN - FP\,FN}{\sqrt{(TP+FP)(TP+FN)(TN+FP)(TN+FN)}}$). +1 is a
    perfect prediction, 0 no better than chance, -1 a perfect inversion. Where a variance is 0
    (y_true or y_pred holds one class) it is undefined and, as in scikit-learn, 0.
    """
    return _counted(y_true, y_pred, sample_weight).matthews_corrcoef()
