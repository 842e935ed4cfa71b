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

For imbalanced classes, two scores from the same counts do not reward predicting the majority:

    balanced accuracy = (1/K) sum_k recall_k           (over the K classes of y_true)
    MCC = (c s - sum_k t_k p_k) / sqrt((s^2 - sum_k p_k^2)(s^2 - sum_k t_k^2))

with t_k, p_k the true and predicted samples of class k, c the correct ones and s all of them.

The threshold tools score a binary problem at every threshold of "positive iff score >= t":
`confusion_matrix_at_thresholds`, `precision_recall_curve`, `average_precision_score`,
`roc_curve` (TPR = TP / P against FPR = FP / N), `roc_auc_score` (the area under it: binary,
partial with `max_fpr`, or multiclass one-vs-rest / one-vs-one), and `metrics_at_threshold` for a
single threshold. The probability scores compare predicted probabilities with what happened:
`brier_score_loss` (mean squared distance to the one-hot truth) and `log_loss` (minus the mean
log-probability of the true class).

The package, one module per concept: `validation` (what the arguments may be, and the errors that
say so), `counts` (the confusion matrix and every score from it), `thresholds` (the threshold
curves), `probabilities` (the scores of predicted probabilities) and `checks` (every function
against scikit-learn). Every public name is importable from `helpers.metrics`.

Notes (deliberate differences from scikit-learn):
* labels are integer or bool tensors (lists and NumPy arrays are converted) of shape (N,); strings,
  multilabel indicator matrices and ``average="samples"`` are not supported (binary
  ``roc_auc_score`` accepts and ignores it, as scikit-learn), and a column (N, 1) is an error
  instead of being squeezed;
* scores are float64 tensors (float32 on MPS, which has no float64): 0-d for an average, one entry
  per label otherwise; supports are int64 (float64 with floating sample weights);
* ``labels`` must be distinct and non-empty; scikit-learn accepts repeats and ``[]``;
* the threshold tools take one score per sample (binary targets, or one class against the rest
  with ``pos_label``), and floating-point scores; ``roc_auc_score`` and the probability scores
  also take (N, C) with C >= 2, never (N, 1), and no multilabel indicator matrix;
* ``balanced_accuracy_score(adjusted=True)`` with a single class in y_true gives NaN or -inf as
  scikit-learn does, without NumPy's RuntimeWarning about the division by zero;
* ``roc_auc_score(multi_class="ovo")`` with fewer than two classes in y_true gives NaN for both
  averages, and ``max_fpr`` where every negative sample has weight 0 raises a ValueError that
  says so (see `thresholds`);
* ``log_loss`` requires y_proba: the keyword ``y_pred=`` (deprecated in scikit-learn 1.9) is not
  accepted; the probability scores compute in float64 whatever y_proba's dtype, with the
  clipping eps and the sum-to-one tolerance of y_proba's dtype as scikit-learn (see
  `probabilities`).
"""

import sys

from sklearn.exceptions import UndefinedMetricWarning  # the same class: one filter silences both

from helpers.metrics.checks import _multiclass as _multiclass
from helpers.metrics.checks import build_checks
from helpers.metrics.counts import (
    StreamingConfusionMatrix,
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    fbeta_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)
from helpers.metrics.counts import _safe_divide as _safe_divide
from helpers.metrics.probabilities import brier_score_loss, log_loss
from helpers.metrics.thresholds import (
    ThresholdMetrics,
    average_precision_score,
    confusion_matrix_at_thresholds,
    metrics_at_threshold,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)
from helpers.metrics.validation import AVERAGES, NORMALIZATIONS, ZERO_DIVISIONS
from helpers.metrics.validation import _labels as _labels
from helpers.verify import Check, register

# `name as name`: private helpers read by name in chapter 07's text and by helpers.stats
__all__ = [
    "AVERAGES", "NORMALIZATIONS", "ZERO_DIVISIONS", "StreamingConfusionMatrix",
    "ThresholdMetrics", "UndefinedMetricWarning", "accuracy_score", "average_precision_score",
    "balanced_accuracy_score", "brier_score_loss", "build_checks", "confusion_matrix",
    "confusion_matrix_at_thresholds", "f1_score", "fbeta_score", "log_loss", "matthews_corrcoef",
    "metrics_at_threshold", "precision_recall_curve", "precision_recall_fscore_support",
    "precision_score", "recall_score", "roc_auc_score", "roc_curve",
]
CHECKS: tuple[Check, ...] = build_checks(sys.modules[__name__])
"""Every check of this package, each against scikit-learn; `python -m helpers.verify` runs them."""

register(*CHECKS)
