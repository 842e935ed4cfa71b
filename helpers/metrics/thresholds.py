r"""Threshold curves: one score per sample, "positive iff score >= t", at every threshold."""

from __future__ import annotations

import numbers
from typing import NamedTuple

import torch

from helpers.metrics.counts import _counted, _safe_divide
from helpers.metrics.validation import (
    _check_pos_label,
    _check_some_weight,
    _labels,
    _same_samples,
    _sample_weight,
    _score_dtype,
    _scores,
    _warn,
)


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
