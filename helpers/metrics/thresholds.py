r"""Threshold curves: one score per sample, "positive iff score >= t", at every threshold.

Sorting the samples by decreasing score gives TP(t) and FP(t) at every threshold at once
(`confusion_matrix_at_thresholds`); every curve is a pair of ratios of those counts: precision
and recall (`precision_recall_curve`, `average_precision_score`), the true and false positive
rates (`roc_curve`, and the area under it, `roc_auc_score`, binary or one class against the rest,
or each pair of classes against each other).

Notes (deliberate differences from scikit-learn):
* ``roc_auc_score`` takes binary or multiclass labels, not multilabel indicator matrices; a y_score
  of shape (N, 1) is an error, not squeezed;
* ``multi_class="ovo"`` with fewer than two classes in y_true gives NaN for both averages
  (scikit-learn: NaN with NumPy's RuntimeWarnings for "macro", ZeroDivisionError for "weighted");
* ``max_fpr`` when every negative sample has weight 0 raises a ValueError that says so
  (scikit-learn raises one about the number of points of the curve).
"""

from __future__ import annotations

import itertools
import math
import numbers
from typing import NamedTuple

import torch
from sklearn.exceptions import UndefinedMetricWarning  # the same class: one filter silences both

from helpers.metrics.counts import _counted, _safe_divide
from helpers.metrics.validation import (
    _check_pos_label,
    _check_some_weight,
    _class_labels,
    _same_samples,
    _sample_weight,
    _score_dtype,
    _score_matrix,
    _scores,
    _warn,
)


def _binary_problem(y_true, y_score, pos_label, sample_weight):
    """(positive: bool, score, weight or None), samples of weight 0 dropped, as scikit-learn."""
    y_true, y_score = _class_labels(y_true, "y_true"), _scores(y_score, "y_score")
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
    classes = torch.unique(_class_labels(y_true, "y_true")).tolist()
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
    ap = -(recall.diff() * precision[:-1]).sum()
    # max(0, AP) as scikit-learn: rounding can leave -0.0 (no positives: every R_n = 1), and a
    # clamp would keep its sign; 0.0 replaces everything that is not > 0
    return torch.where(ap > 0, ap, torch.zeros_like(ap))


def roc_curve(y_true, y_score, *, pos_label=None, sample_weight=None, drop_intermediate=True):
    r"""The receiver operating characteristic: true against false positive rate at every threshold.

    .. math:: \text{TPR}(t) = \frac{TP(t)}{TP + FN}, \qquad \text{FPR}(t) = \frac{FP(t)}{FP + TN}

    the share of the positives and of the negatives scored >= t. Returns (fpr, tpr, thresholds),
    the thresholds decreasing from +inf (nothing predicted positive: the point (0, 0)) through
    every distinct score (the lowest predicts everything positive: (1, 1)). Without a negative
    (positive) sample, FPR (TPR) is undefined: NaN, with scikit-learn's `UndefinedMetricWarning`.
    `drop_intermediate` drops the points collinear with their neighbours, where the second
    differences of both FP and TP are 0: the curve and its area stay the same.
    """
    _, fps, _, tps, thresholds = confusion_matrix_at_thresholds(
        y_true, y_score, pos_label=pos_label, sample_weight=sample_weight)
    if drop_intermediate and len(fps) > 2:
        end = torch.ones(1, dtype=torch.bool, device=tps.device)
        corner = (fps.diff(n=2) != 0) | (tps.diff(n=2) != 0)  # a change of slope at the point
        kept = torch.cat([end, corner, end])
        fps, tps, thresholds = fps[kept], tps[kept], thresholds[kept]
    zero = torch.zeros(1, dtype=fps.dtype, device=fps.device)
    fps, tps = torch.cat([zero, fps]), torch.cat([zero, tps])  # threshold +inf: (0, 0)
    thresholds = torch.cat([zero + math.inf, thresholds.to(fps.dtype)])
    rates = []
    for counts, samples, rate in ((fps, "negative", "false"), (tps, "positive", "true")):
        total = counts[-1].where(counts[-1] > 0, 0)  # no samples (or weights summing to <= 0)
        if total == 0:
            _warn(f"No {samples} samples in y_true, {rate} positive value should be meaningless",
                  UndefinedMetricWarning)
        # FPR = FP / (FP + TN), TPR = TP / (TP + FN): the last threshold counts every sample
        rates.append(_safe_divide(counts, total.expand_as(counts), zero_division=math.nan))
    return rates[0], rates[1], thresholds


def _trapezoid(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The area under the polygon through the points (x, y)."""
    return (x.diff() * (y[1:] + y[:-1]) / 2).sum()  # sum_n (x_n - x_{n-1}) (y_n + y_{n-1}) / 2


def _binary_roc_auc(positive, y_score, sample_weight, max_fpr) -> torch.Tensor:
    """The (standardized partial) area under the ROC curve of one class against the rest."""
    if len(torch.unique(positive)) != 2:
        _warn("Only one class is present in y_true. ROC AUC score is not defined in that case.",
              UndefinedMetricWarning)
        return torch.tensor(math.nan, dtype=_score_dtype(y_score.device), device=y_score.device)
    fpr, tpr, _ = roc_curve(positive.long(), y_score, sample_weight=sample_weight)
    if max_fpr is None or max_fpr == 1:
        return _trapezoid(fpr, tpr)
    if fpr.isnan().any():
        raise ValueError(f"expected negative samples of non-zero weight for max_fpr={max_fpr}, "
                         "but every negative sample has weight 0: the partial area is undefined")
    # close the curve at FPR = max_fpr, interpolating between the points on either side
    stop = int(torch.searchsorted(fpr, fpr.new_tensor([max_fpr]), right=True))
    slope = (tpr[stop] - tpr[stop - 1]) / (fpr[stop] - fpr[stop - 1])
    tpr_at = tpr[stop - 1] + slope * (max_fpr - fpr[stop - 1])
    area = _trapezoid(torch.cat([fpr[:stop], fpr.new_tensor([max_fpr])]),
                      torch.cat([tpr[:stop], tpr_at[None]]))
    # McClish: map the area of the diagonal, max_fpr^2 / 2, to 0.5 and the most, max_fpr, to 1
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    return 0.5 * (1 + (area - min_area) / (max_area - min_area))


def _check_roc_auc_options(average, max_fpr, multi_class) -> None:
    if average not in ("micro", "macro", "samples", "weighted", None):
        raise ValueError("expected average to be one of 'micro', 'macro', 'samples', 'weighted' or "
                         f"None, but got {average!r}")
    if max_fpr is not None and (isinstance(max_fpr, bool) or not isinstance(max_fpr, numbers.Real)
                                or not 0 < max_fpr <= 1):
        raise ValueError(f"expected max_fpr in (0, 1] or None, but got {max_fpr!r}")
    if multi_class not in ("raise", "ovr", "ovo"):
        raise ValueError(f"expected multi_class to be 'raise', 'ovr' or 'ovo', but got "
                         f"{multi_class!r}")


def roc_auc_score(y_true, y_score, *, average="macro", sample_weight=None, max_fpr=None,
                  multi_class="raise", labels=None) -> torch.Tensor:
    r"""The area under the ROC curve: the probability that a random positive outscores a random
    negative (ties count one half).

    .. math:: \text{AUC} = \sum_n (\text{FPR}_n - \text{FPR}_{n-1})\,
              \frac{\text{TPR}_n + \text{TPR}_{n-1}}{2}

    the trapezoids under `roc_curve`. Binary y_true: y_score (N,) scores the greater label; one
    class alone gives NaN with an `UndefinedMetricWarning`. `max_fpr` gives the area over
    FPR in [0, max_fpr] standardized by McClish's correction, $\frac12 \bigl(1 + \frac{A -
    \text{max\_fpr}^2/2}{\text{max\_fpr} - \text{max\_fpr}^2/2}\bigr)$, so that chance still
    scores 0.5 and a perfect ranking 1.

    Multiclass y_true: y_score (N, C) holds probabilities (rows summing to 1), one column per
    class of `labels` (increasing), or of y_true. `multi_class` must be chosen: "ovr" scores
    each class against the rest, averaged by `average` ("macro": plain mean; "weighted": by
    support; "micro": one curve over every (sample, class) pair; None: one score per class);
    "ovo" (Hand & Till) averages the two AUCs of each pair of classes, restricted to the samples
    of that pair, over the pairs ("macro"; "weighted": by the pair's share of samples).
    """
    _check_roc_auc_options(average, max_fpr, multi_class)
    y_true, y_score = _class_labels(y_true, "y_true"), _score_matrix(y_score, "y_score")
    _same_samples(y_true, y_score, "y_true and y_score")
    if not len(y_true):
        raise ValueError("expected at least one sample, but y_true and y_score are empty")
    weight = _sample_weight(sample_weight, y_true)
    classes = torch.unique(y_true)
    if len(classes) > 2 or (y_score.ndim == 2 and y_score.shape[1] > 2):
        if max_fpr is not None and max_fpr != 1:
            raise ValueError(f"expected max_fpr=None for multiclass y_true, but got {max_fpr!r}: "
                             "the partial area is defined for binary problems only")
        if multi_class == "raise":
            raise ValueError("expected multi_class='ovr' or 'ovo' for multiclass y_true, but got "
                             "'raise': choose one class against the rest, or each pair of classes")
        return _multiclass_roc_auc(y_true, y_score, labels, multi_class, average, weight)
    if y_score.ndim == 2:
        raise ValueError(f"expected y_score of shape (N,) for binary y_true, but got shape "
                         f"{tuple(y_score.shape)}; pass the scores of the positive class, "
                         "y_score[:, 1]")
    return _binary_roc_auc(y_true == classes[-1], y_score, weight, max_fpr)


def _multiclass_labels(y_true, y_score, labels) -> torch.Tensor:
    """The class of each column of y_score: `labels`, checked, or the classes of y_true."""
    width = y_score.shape[1]
    if labels is None:
        classes = torch.unique(y_true)
        if len(classes) != width:
            raise ValueError(f"expected one column of y_score per class of y_true "
                             f"{classes.tolist()}, but got {width} columns; name the classes of "
                             "the columns with labels=")
        return classes
    classes = _class_labels(labels, "labels").to(y_true.device)
    if len(torch.unique(classes)) != len(classes):
        raise ValueError(f"expected distinct labels, but got {classes.tolist()}")
    if bool((classes.diff() < 0).any()):
        raise ValueError(f"expected labels in increasing order (the order of y_score's columns), "
                         f"but got {classes.tolist()}")
    if len(classes) != width:
        raise ValueError(f"expected one label per column of y_score ({width}), but got "
                         f"{len(classes)} labels {classes.tolist()}")
    unknown = torch.unique(y_true[~torch.isin(y_true, classes)])
    if len(unknown):
        raise ValueError(f"expected every class of y_true among labels {classes.tolist()}, but "
                         f"y_true also holds {unknown.tolist()}")
    return classes


def _multiclass_roc_auc(y_true, y_score, labels, multi_class, average, weight) -> torch.Tensor:
    if y_score.ndim != 2:
        raise ValueError(f"expected y_score of shape (N, C), one column per class, since y_true "
                         f"holds {len(torch.unique(y_true))} classes, but got shape "
                         f"{tuple(y_score.shape)}")
    sums = y_score.sum(1)
    if bool(((1 - sums).abs() > 1e-8 + 1e-5 * sums.abs()).any()):  # NumPy's allclose(1, sums)
        raise ValueError("expected probabilities in y_score for multiclass ROC AUC, rows summing "
                         f"to 1, but got row sums from {float(sums.min())} to {float(sums.max())}; "
                         "apply softmax to logits")
    averages = ("micro", "macro", "weighted", None) if multi_class == "ovr" else (
        "macro", "weighted")
    if average not in averages:
        if multi_class == "ovo" and average is None:
            raise NotImplementedError("average=None is not implemented for multi_class='ovo'.")
        raise ValueError(f"expected average in {averages} for multiclass y_true with multi_class="
                         f"{multi_class!r}, but got {average!r}")
    classes = _multiclass_labels(y_true, y_score, labels)
    if multi_class == "ovo":
        if weight is not None:
            raise ValueError("expected sample_weight=None for multi_class='ovo', as in "
                             "scikit-learn, but got sample weights")
        return _one_vs_one(y_true, y_score, classes, average)
    one_hot = y_true[:, None] == classes  # (N, C): y_nk = [y_n = c_k]
    if average == "micro":  # one curve over all N C (sample, class) pairs
        repeated = None if weight is None else weight.repeat_interleave(len(classes))
        return _binary_roc_auc(one_hot.flatten(), y_score.flatten(), repeated, None)
    scores = torch.stack([_binary_roc_auc(one_hot[:, k], y_score[:, k], weight, None)
                          for k in range(len(classes))])  # class k against the rest
    if average is None:
        return scores
    if average == "macro":
        return scores.mean()
    # weighted by support_k = sum_n w_n y_nk; a class without support adds 0, even if its AUC is NaN
    support = (one_hot * (1 if weight is None else weight[:, None])).sum(0).to(scores.dtype)
    if support.sum().abs() <= 1e-8:  # as scikit-learn: no support at all scores 0
        return torch.zeros((), dtype=scores.dtype, device=scores.device)
    return _safe_divide((torch.where(support == 0, 0, scores) * support).sum(), support.sum(),
                        zero_division=math.nan)


def _one_vs_one(y_true, y_score, classes, average) -> torch.Tensor:
    r"""Hand & Till: $\frac{1}{|\text{pairs}|} \sum_{(a, b)} \frac{\text{AUC}(a | b) +
    \text{AUC}(b | a)}{2}$, each AUC on the samples of classes a and b, scored by a's (b's)
    column."""
    column = {c: k for k, c in enumerate(classes.tolist())}
    dtype, device = _score_dtype(y_score.device), y_score.device
    pair_scores, shares = [], []
    for a, b in itertools.combinations(torch.unique(y_true).tolist(), 2):
        in_pair = (y_true == a) | (y_true == b)
        pair = y_true[in_pair]
        both = [_binary_roc_auc(pair == c, y_score[in_pair, column[c]], None, None) for c in (a, b)]
        pair_scores.append((both[0] + both[1]) / 2)
        shares.append(in_pair.to(dtype).mean())  # the pair's share of the samples
    scores = torch.stack(pair_scores) if pair_scores else torch.zeros(0, dtype=dtype, device=device)
    weights = torch.ones_like(scores) if average == "macro" or not shares else torch.stack(shares)
    # the (weighted) mean over the pairs; NaN without a pair (fewer than 2 classes in y_true)
    return _safe_divide((scores * weights).sum(), weights.sum(), zero_division=math.nan)


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
