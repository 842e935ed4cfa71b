"""Checkers for the exercises of chapter 10, imbalanced data.

The references are the ecosystem's own functions wherever they exist: `sklearn.metrics`
(`matthews_corrcoef`, `balanced_accuracy_score`, `roc_auc_score`, `roc_curve`),
`sklearn.utils.class_weight` (the pos_weight and the sampler's weights) and
`sklearn.calibration.calibration_curve` (the bins of the calibration error). The sampler's weights
go through `torch.utils.data.WeightedRandomSampler`, as a learner would pass them. The focal loss
is compared with its published formula (Lin et al. 2017, eq. 5), written out below as
`torchvision.ops.sigmoid_focal_loss` computes it, so that the checker needs nothing beyond torch;
tests/test_exercises_imbalanced.py compares the two.

A wrong implementation that does not apply to a case (a macro precision where a class is never
predicted, whose value then depends on how the learner handled 0 / 0) raises `_NotApplicable`:
`check_function` then compares the learner with it on the other cases only.

Every task but the logit threshold forbids the library function it asks the learner to write
(`task(forbid=...)`): scikit-learn's metrics, class weights and calibration curve, and
torchvision's focal loss.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np
import sklearn.metrics as sk
import torch
import torch.nn.functional as F
from sklearn.calibration import calibration_curve
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight
from torch import Tensor
from torch.utils.data import WeightedRandomSampler

from helpers.exercises import (
    WRONG,
    BadReturn,
    Diagnosis,
    Verdict,
    as_number,
    check_function,
    check_procedure,
    seeded,
    wrong,
)
from helpers.exercises.grading import task

METRICS = ("sklearn.metrics",)
CLASS_WEIGHTS = ("sklearn.utils.class_weight",)


class _NotApplicable(Exception):
    """A wrong implementation whose output on this case is not one definite value."""


def _shuffled_labels(counts: list[int], generator: torch.Generator,
                     labels: list[int] | None = None) -> Tensor:
    """int64 labels with `counts[i]` samples of `labels[i]` (default: i), in random order."""
    labels = list(range(len(counts))) if labels is None else labels
    y = torch.cat([torch.full((n,), label, dtype=torch.long) for label, n in zip(labels, counts)])
    return y[torch.randperm(len(y), generator=generator)]


class _Many:
    """Stands for a tensor or array of several values where one number was asked for: it
    describes itself by its shape, not by printing every value."""

    def __init__(self, value):
        kind = "tensor" if isinstance(value, Tensor) else "NumPy array"
        self.text = (f"a {value.dtype} {kind} of shape {tuple(value.shape)} (return one "
                     f"number: a float, or a tensor of one element)")

    def __repr__(self) -> str:
        return self.text


def _one_number(learner):
    """The learner's function, with a result of several values replaced by its description."""
    if not callable(learner):
        return learner

    def described(*args):
        result = learner(*args)
        if isinstance(result, Tensor | np.ndarray) and math.prod(result.shape) > 1:
            return _Many(result)
        return result
    return described


# --------------------------------------------------------------------------------------------
# Task 1: Matthews correlation coefficient from the four counts
# --------------------------------------------------------------------------------------------


def _margins_product(tp, fp, fn, tn) -> int:
    """(TP + FP)(TP + FN)(TN + FP)(TN + FN): predicted and actual positives and negatives."""
    return (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)


def _mcc_reference(tp, fp, fn, tn) -> float:
    y_true = np.repeat([1, 0, 1, 0], [tp, fp, fn, tn])
    y_pred = np.repeat([1, 1, 0, 0], [tp, fp, fn, tn])
    return float(sk.matthews_corrcoef(y_true, y_pred))


def _mcc(numerator: str = "tp tn - fp fn", root: bool = True, predicted: str = "tp + fp",
         at_zero: float = 0.0) -> Callable:
    """MCC with one part changed; `at_zero` is what it gives when the denominator is 0 (NaN:
    0 / 0 left alone), and it raises there when the product has no root."""
    def mcc(tp, fp, fn, tn):
        top = tp * tn - fp * fn if numerator == "tp tn - fp fn" else fp * fn - tp * tn
        first = tp + fp if predicted == "tp + fp" else tn + fp
        product = first * (tp + fn) * (tn + fp) * (tn + fn)
        if product == 0:
            if not root:
                raise _NotApplicable  # 0 / 0 again: how the learner met it is theirs
            return at_zero
        return top / (math.sqrt(product) if root else product)
    return mcc


def _zero_over_zero_as_nan(learner):
    """The learner's function, with a ZeroDivisionError where the margins' product is 0 turned
    into NaN: plain Python division raises where a tensor gives NaN, and both are the same
    mistake."""
    if not callable(learner):
        return learner

    def guarded(tp, fp, fn, tn):
        try:
            return learner(tp, fp, fn, tn)
        except ZeroDivisionError:
            if _margins_product(tp, fp, fn, tn) == 0:
                return math.nan
            raise
    return guarded


def mcc_cases() -> list[tuple[int, int, int, int]]:
    """(TP, FP, FN, TN): ordinary, imbalanced, perfect, inverted, and three where a margin is 0
    (a model that never predicts positive, one that always does, a set without negatives)."""
    g = seeded(100)
    drawn = tuple(int(n) for n in torch.randint(1, 60, (4,), generator=g))
    return [(6, 2, 3, 9), (40, 5, 10, 945), drawn, (0, 0, 7, 93), (10, 0, 0, 90),
            (12, 88, 0, 0), (0, 10, 90, 0), (25, 0, 5, 0), (900, 80, 120, 98900)]


@task(forbid=METRICS)
def check_matthews_from_counts(matthews_from_counts) -> Verdict:
    """Task 1: `matthews_from_counts(tp, fp, fn, tn)`, the Matthews correlation coefficient of a
    binary confusion matrix from its four counts (Python ints), as a number; 0 where it is
    0 / 0, as `sklearn.metrics.matthews_corrcoef` gives."""
    return check_function("matthews_from_counts",
                          _zero_over_zero_as_nan(_one_number(matthews_from_counts)),
                          _mcc_reference, mcc_cases(), [
        Diagnosis(_mcc(root=False),
                  "the denominator is the SQUARE ROOT of the product of the four margins, "
                  "sqrt((TP + FP)(TP + FN)(TN + FP)(TN + FN)): MCC is a correlation, covariance "
                  "over the product of two standard deviations, and lies in [-1, 1]"),
        Diagnosis(_mcc(at_zero=math.nan),
                  "where a margin is 0 (no predicted positive, or no actual negative, ...) MCC "
                  "is 0 / 0: scikit-learn returns 0 there (a constant prediction carries no "
                  "information about the label); return 0.0 instead of NaN or a "
                  "ZeroDivisionError"),
        Diagnosis(_mcc(numerator="fp fn - tp tn"),
                  "the sign is flipped: the numerator is TP TN - FP FN, the correct pairs minus "
                  "the crossed ones (the determinant of the confusion matrix), positive for a "
                  "model better than chance"),
        Diagnosis(_mcc(predicted="tn + fp"),
                  "TN stands where TP belongs in one factor of the denominator: the four factors "
                  "are the margins of the confusion matrix, predicted positives TP + FP, actual "
                  "positives TP + FN, actual negatives TN + FP, predicted negatives TN + FN"),
    ])


# --------------------------------------------------------------------------------------------
# Task 2: balanced accuracy
# --------------------------------------------------------------------------------------------


def _balanced_reference(y_true, y_pred, adjusted=False) -> float:
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": a case of ours
        warnings.simplefilter("ignore")
        return float(sk.balanced_accuracy_score(y_true.numpy(), y_pred.numpy(),
                                                adjusted=adjusted))


def _balanced(score: str = "recall", over: str = "true", chance_over: str | None = None,
              adjust: str = "rescale") -> Callable:
    """Balanced accuracy with one part changed. `over`: the classes averaged, those of y_true
    ('true'), of y_true or y_pred ('union', the others scoring 0), every label 0 .. max
    ('range', 0 for those absent from y_true) or the classes of y_true or y_pred with 0 / 0 left
    as NaN ('nan', not applicable where a label 0 .. max occurs nowhere);
    `chance_over`: the classes K of the chance level 1 / K (default: those averaged); `adjust`:
    'rescale' (score - 1/K) / (1 - 1/K), 'subtract' score - 1/K, or 'ignore'."""
    def balanced_accuracy(y_true, y_pred, adjusted=False):
        k = int(torch.maximum(y_true.max(), y_pred.max())) + 1
        support = torch.bincount(y_true, minlength=k).double()
        predicted = torch.bincount(y_pred, minlength=k).double()
        hits = torch.bincount(y_true[y_true == y_pred], minlength=k).double()
        present = support > 0
        classes = {"true": present, "union": present | (predicted > 0),
                   "range": torch.ones(k, dtype=torch.bool), "nan": torch.ones(k, dtype=torch.bool)}
        if adjusted and chance_over is None and not torch.equal(classes[over], present):
            raise _NotApplicable  # two mistakes at once: the classes, and then which K
        if over == "nan" and not bool((present | (predicted > 0)).all()):
            raise _NotApplicable  # a label that occurs nowhere: in the mean or not, it is NaN
        if score == "precision":
            if (predicted[present] == 0).any() or (predicted[~present] > 0).any():
                raise _NotApplicable  # a precision of 0 / 0, or of a class not in y_true
            per_class = hits / predicted
        else:
            per_class = hits / support
        chosen = per_class[classes[over]]
        value = chosen.mean() if over == "nan" else chosen.nan_to_num(0.0).mean()
        if adjusted and adjust != "ignore":
            chance = 1 / int(classes[chance_over or over].sum())
            value = value - chance
            if adjust == "rescale":
                value = value / (1 - chance)
        return value.item()
    return balanced_accuracy


def balanced_cases() -> list[tuple]:
    g = seeded(101)
    y4 = _shuffled_labels([40, 25, 10, 5], g)
    p4 = torch.where(torch.rand(80, generator=g) < 0.6, y4, torch.randint(0, 4, (80,), generator=g))
    y3 = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    extra_true = _shuffled_labels([20, 8, 4], g)
    extra_pred = torch.where(torch.rand(32, generator=g) < 0.6, extra_true,
                             torch.randint(0, 4, (32,), generator=g))  # 3 is never true
    extra_pred[0] = 3
    gap_true = _shuffled_labels([12, 6, 3], g, labels=[0, 2, 5])
    gap_pred = torch.where(torch.rand(21, generator=g) < 0.7, gap_true,
                           torch.tensor([0, 2, 5])[torch.randint(0, 3, (21,), generator=g)])
    return [
        (y3, torch.tensor([0, 0, 0, 0, 0, 2, 1, 1, 0, 2, 1, 0]), False),
        (torch.cat([torch.zeros(95, dtype=torch.long), torch.ones(5, dtype=torch.long)]),
         torch.zeros(100, dtype=torch.long), False),  # the accuracy trap: always the majority
        (y4, p4, True),
        (extra_true, extra_pred, False),  # y_pred holds a class that y_true never has
        (extra_true, extra_pred, True),
        (gap_true, gap_pred, False),  # labels 0, 2, 5: 1, 3 and 4 occur nowhere
    ]


class _AboveOne:
    """Stands for a balanced accuracy above 1, which no per-class recall can average to: it
    describes itself with the likely cause."""

    def __init__(self, value: float):
        self.text = (f"{value!r} (a balanced accuracy above 1 is impossible: check that your "
                     f"per-class counts have the same length (bincount's minlength); a count "
                     f"of length 1 divided by one of length K broadcasts silently)")

    def __repr__(self) -> str:
        return self.text


def _at_most_one(learner):
    """The learner's function, with a result above 1 replaced by its description."""
    if not callable(learner):
        return learner

    def bounded(*args):
        result = learner(*args)
        value = as_number(result)
        if value is not None and value > 1 + 1e-9:
            return _AboveOne(value)
        return result
    return bounded


@task(forbid=METRICS)
def check_balanced_accuracy(balanced_accuracy) -> Verdict:
    """Task 2: `balanced_accuracy(y_true, y_pred, adjusted=False)`, the mean recall over the
    classes that occur in `y_true`, as a number; with `adjusted=True` rescaled so that chance
    scores 0, as `sklearn.metrics.balanced_accuracy_score` does."""
    only_true = ("average over the classes that occur in y_true only: a class that is only "
                 "predicted, or occurs nowhere, has no recall (0 / 0) and scikit-learn leaves it "
                 "out")
    return check_function("balanced_accuracy", _at_most_one(_one_number(balanced_accuracy)),
                          _balanced_reference, balanced_cases(), [
        Diagnosis(lambda y, p, adjusted=False: (y == p).double().mean().item(),
                  "that is the accuracy, which the majority class dominates (a model that always "
                  "says 'negative' scores 0.95 on 95 % negatives): balanced accuracy is the mean "
                  "of the per-class RECALLS, TP_k / (number of samples of class k)"),
        Diagnosis(_balanced(score="precision"),
                  "that is the macro PRECISION, TP_k / (number predicted as k): balanced accuracy "
                  "averages the recalls, TP_k / (number of samples truly of class k)"),
        Diagnosis(_balanced(over="union"),
                  f"a class that is predicted but absent from y_true counted as recall 0: "
                  f"{only_true}"),
        Diagnosis(_balanced(over="range"),
                  f"the labels 0 .. max that are absent from y_true counted as recall 0: "
                  f"{only_true}"),
        Diagnosis(_balanced(over="nan"),
                  f"NaN: a label absent from y_true has no recall (0 / 0), and one NaN makes the "
                  f"mean NaN; {only_true}"),
        Diagnosis(_balanced(adjust="subtract"),
                  "the adjusted score also divides by 1 - 1/K: (score - 1/K) / (1 - 1/K), so "
                  "that chance scores 0 AND a perfect model still scores 1"),
        Diagnosis(_balanced(chance_over="union"),
                  "K in the chance level 1/K is the number of classes in y_true (those with a "
                  "recall), not of the classes seen in y_true or y_pred"),
        Diagnosis(_balanced(adjust="ignore"),
                  "adjusted=True is ignored: rescale, (score - 1/K) / (1 - 1/K) with K the "
                  "number of classes in y_true, so that chance scores 0"),
    ])


# --------------------------------------------------------------------------------------------
# Task 3: ROC-AUC by the rank formula
# --------------------------------------------------------------------------------------------


def _auc_pairs(ties: float = 0.5, norm: str = "pairs", flipped: bool = False) -> Callable:
    """P(s+ > s-) + ties * P(s+ = s-) over the (positive, negative) pairs, with one part
    changed: the weight of a tie, the normaliser ('pairs' N+ N-, 'squared' N^2), the classes
    swapped."""
    def roc_auc(y_true, scores):
        positives, negatives = scores[y_true == 1], scores[y_true == 0]
        if flipped:
            positives, negatives = negatives, positives
        above = (positives[:, None] > negatives[None, :]).double().sum()
        tied = (positives[:, None] == negatives[None, :]).double().sum()
        pairs = len(positives) * len(negatives) if norm == "pairs" else len(scores) ** 2
        return ((above + ties * tied) / pairs).item()
    return roc_auc


def auc_cases() -> list[tuple[Tensor, Tensor]]:
    g = seeded(102)
    imbalanced = _shuffled_labels([52, 8], g)
    rounded = ((torch.rand(60, generator=g, dtype=torch.float64) + 0.3 * imbalanced) * 10).round()
    continuous = _shuffled_labels([30, 20], g)
    return [
        (torch.tensor([0, 0, 1, 1, 0, 1, 0, 1, 0, 0]),
         torch.tensor([0.1, 0.4, 0.35, 0.8, 0.8, 0.4, 0.2, 0.9, 0.35, 0.05],
                      dtype=torch.float64)),  # ties within and across the classes
        (imbalanced, rounded / 10),  # many ties: scores on a grid of 0.1
        (continuous, torch.randn(50, generator=g) + 0.8 * continuous),  # float32, no ties
        (torch.tensor([1, 0, 0, 1, 0]), torch.full((5,), 0.5, dtype=torch.float64)),  # all tied
        (torch.tensor([0, 1, 0, 1, 1, 0]),
         torch.tensor([0.2, 0.9, 0.1, 0.7, 0.8, 0.3], dtype=torch.float64)),  # separated
    ]


@task(forbid=METRICS)
def check_roc_auc(roc_auc) -> Verdict:
    """Task 3: `roc_auc(y_true, scores)`, the area under the ROC curve from the pairs,
    P(s+ > s-) + 1/2 P(s+ = s-), as a number; equal to `sklearn.metrics.roc_auc_score`."""
    def reference(y_true, scores):
        return float(sk.roc_auc_score(y_true.numpy(), scores.numpy()))

    return check_function("roc_auc", _one_number(roc_auc), reference, auc_cases(), [
        Diagnosis(_auc_pairs(ties=1.0),
                  "a tie counts as half a win: P(s+ > s-) + 1/2 P(s+ = s-); counting it as a "
                  "whole one (>=) rewards a model for giving everyone the same score"),
        Diagnosis(_auc_pairs(ties=0.0),
                  "ties are missing: a pair with s+ = s- counts 1/2, P(s+ > s-) + 1/2 "
                  "P(s+ = s-) (the ROC curve crosses a tied block diagonally)"),
        Diagnosis(_auc_pairs(norm="squared"),
                  "divide by the number of (positive, negative) pairs, N+ N-, not by N^2: the "
                  "AUC is a probability over such pairs"),
        Diagnosis(_auc_pairs(flipped=True),
                  "positives and negatives are swapped: that is P(s- > s+), 1 - AUC; the AUC is "
                  "the probability that a positive (label 1) scores above a negative"),
    ])


# --------------------------------------------------------------------------------------------
# Task 4: pos_weight from the labels
# --------------------------------------------------------------------------------------------


def _pos_weight_reference(targets: Tensor) -> Tensor:
    """Per column, the ratio of scikit-learn's 'balanced' class weights, w_1 / w_0 =
    (N / 2 n_1) / (N / 2 n_0) = n_0 / n_1, in the targets' dtype."""
    ratios = []
    for column in targets.T.double().numpy():
        w0, w1 = compute_class_weight("balanced", classes=np.array([0.0, 1.0]), y=column)
        ratios.append(w1 / w0)
    return torch.tensor(ratios, dtype=targets.dtype)


def _multilabel(n: int, rates: list[float], dtype: torch.dtype, seed: int) -> Tensor:
    g = seeded(seed)
    targets = (torch.rand(n, len(rates), generator=g, dtype=torch.float64)
               < torch.tensor(rates, dtype=torch.float64)).to(dtype)
    targets[0] = 1  # every column has a positive
    targets[1] = 0  # and a negative
    return targets


@task(forbid=CLASS_WEIGHTS)
def check_pos_weight(pos_weight_from_labels) -> Verdict:
    """Task 4: `pos_weight_from_labels(targets)`, for float 0/1 targets of shape (N, C), the
    `pos_weight` of `torch.nn.BCEWithLogitsLoss`: n_neg / n_pos of every column, shape (C,), in
    the targets' dtype."""
    cases = [(_multilabel(200, [0.05, 0.2, 0.5], torch.float32, 103),),
             (_multilabel(50, [0.1], torch.float64, 104),),
             (_multilabel(120, [0.02, 0.3, 0.7, 0.1], torch.float32, 105),)]

    def counts(targets):
        n_pos = targets.sum(dim=0)
        return n_pos, len(targets) - n_pos

    return check_function("pos_weight_from_labels", pos_weight_from_labels,
                          _pos_weight_reference, cases, [
        Diagnosis(lambda t: (lambda pos, neg: pos / neg)(*counts(t)),
                  "upside down: pos_weight is n_neg / n_pos, large for a rare positive class, so "
                  "that the positives' term weighs as much as the negatives' in the loss"),
        Diagnosis(lambda t: (lambda pos, neg: neg / len(t))(*counts(t)),
                  "n_neg / N is the share of negatives, at most 1: pos_weight is n_neg / n_pos, "
                  "the number of negatives per positive"),
        Diagnosis(lambda t: (lambda pos, neg: len(t) / pos)(*counts(t)),
                  "N / n_pos is the inverse frequency, 1 + n_neg / n_pos: pos_weight multiplies "
                  "only the positives' term, so the negatives' term keeps weight 1, and n_neg / "
                  "n_pos makes the two totals equal"),
        Diagnosis(lambda t: (t.shape[1] - t.sum(dim=1)) / t.sum(dim=1),
                  "you counted along dim=1, per SAMPLE: count along dim=0, over the samples, to "
                  "get one pos_weight per column (class), shape (C,)"),
        Diagnosis(lambda t: (t.numel() - t.sum()) / t.sum(),
                  "one number pooled over all columns: each column (class) has its own "
                  "imbalance, so return n_neg / n_pos per column, shape (C,)"),
    ])


# --------------------------------------------------------------------------------------------
# Task 5: the threshold on the logit after training with pos_weight
# --------------------------------------------------------------------------------------------


@task()
def check_logit_threshold(logit_threshold) -> Verdict:
    """Task 5: `logit_threshold(pos_weight)`, the threshold on the logit of a model trained
    with `BCEWithLogitsLoss(pos_weight=w)` that gives the unweighted model's decision at
    probability 1/2: log w (the weighted optimum is the unweighted logit plus log w)."""
    drawn = math.exp(8 * torch.rand(1, generator=seeded(112), dtype=torch.float64).item() - 3)
    cases = [(4.0,), (19.0,), (0.25,), (99.0,), (drawn,)]  # drawn: e^-3 to e^5
    return check_function("logit_threshold", _one_number(logit_threshold), math.log, cases, [
        Diagnosis(lambda w: -math.log(w),
                  "the sign is flipped: pos_weight w > 1 pushes the positives' logits UP by "
                  "log w, so the threshold moves up to +log w (log(1/w) is -log w)"),
        Diagnosis(lambda w: w,
                  "w multiplies the ODDS, p / (1 - p) -> w p / (1 - p): on the logit, the log of "
                  "the odds, that is a shift by log w"),
        Diagnosis(lambda w: 1 / w,
                  "1 / w is a factor on the odds, and the wrong way round: the weighted logit "
                  "is the unweighted one plus log w, so the threshold is log w"),
        Diagnosis(lambda w: w / (1 + w),
                  "that is the threshold on the PROBABILITY, sigmoid(log w) = w / (1 + w): the "
                  "task asks for the threshold on the logit, log w"),
        Diagnosis(lambda w: 0.0,
                  "0 is the threshold of the unweighted model: training with pos_weight w "
                  "shifts every optimal logit by log w, and the threshold moves with it"),
    ])


# --------------------------------------------------------------------------------------------
# Task 6: one weight per sample for WeightedRandomSampler
# --------------------------------------------------------------------------------------------


class _SamplerCase:
    """Labels; the function's weights are given to WeightedRandomSampler, whose weights
    (float64) are compared after scaling to sum 1: the sampler draws with probability
    w_i / sum(w), so only their ratios count."""

    def __init__(self, counts: list[int], labels: list[int] | None, seed: int):
        self.y = _shuffled_labels(counts, seeded(seed), labels)
        self.counts = dict(zip(labels or range(len(counts)), counts))

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} of class {label}" for label, n in self.counts.items())
        return f"{len(self.y)} labels ({counts})"

    def run(self, sample_weights: Callable):
        weights = sample_weights(self.y.clone())
        if weights is None:
            return None
        try:
            sampler = WeightedRandomSampler(weights, num_samples=len(self.y), generator=seeded(0))
        except Exception as error:  # noqa: BLE001 - what torch says about the weights
            raise BadReturn(f"your function returned weights that WeightedRandomSampler "
                            f"refuses: {error}") from None
        drawn = sampler.weights
        if len(drawn) == len(self.y):  # one weight per sample: what the sampler draws from
            finite = torch.isfinite(drawn)
            if not bool(finite.all()):
                i = int(torch.nonzero(~finite)[0])
                raise BadReturn(f"your function returned weights with inf or nan "
                                f"({drawn[i].item()} for a sample of class {int(self.y[i])}), "
                                "which WeightedRandomSampler cannot draw from: look for a "
                                "division by 0")
            negative = drawn < 0
            if bool(negative.any()):
                i = int(torch.nonzero(negative)[0])
                raise BadReturn(f"your function returned negative weights ({drawn[i].item():.4g} "
                                f"for a sample of class {int(self.y[i])}): a weight is the "
                                "relative chance of drawing a sample, so it must be >= 0, and "
                                "WeightedRandomSampler fails once it draws (\"invalid "
                                "multinomial distribution\"); a log of a frequency is negative: "
                                "use 1 / count itself")
            if bool((drawn == 0).all()):
                raise BadReturn("your function returned weights that are all 0: the sampler "
                                "draws sample i with chance w_i / sum(w), 0 / 0 here, and "
                                "fails once it draws; look for an integer division or rounding "
                                "(1 // count is 0 for every class of two samples or more): use "
                                "1.0 / count")
        try:  # torch checks the weights only when it draws: draw once
            next(iter(sampler))
        except Exception as error:  # noqa: BLE001 - what torch says about the weights
            raise BadReturn(f"your function returned weights that WeightedRandomSampler "
                            f"cannot draw from: {error}") from None
        return drawn / drawn.sum()


@task(forbid=CLASS_WEIGHTS)
def check_sample_weights(sample_weights) -> Verdict:
    """Task 6: `sample_weights(y)`, for int64 labels of shape (N,), one weight per sample,
    1 / (the number of samples of its class), shape (N,): WeightedRandomSampler then draws every
    class equally often. Compared through the sampler, after scaling to sum 1."""
    cases = [_SamplerCase([70, 20, 10], None, 106), _SamplerCase([95, 5], None, 107),
             _SamplerCase([30, 12, 6], [0, 1, 3], 108)]  # no sample of class 2

    def reference(y):
        return torch.from_numpy(compute_sample_weight("balanced", y.numpy()))

    def counts_of(y):
        return torch.bincount(y).double()[y]

    def per_class(y):
        counts = torch.bincount(y)
        if (counts == 0).any():
            raise _NotApplicable  # a label that never occurs: 1 / 0 in some learners' vectors
        return 1.0 / counts.double()

    return check_procedure("sample_weights", sample_weights, reference, cases, [
        Diagnosis(per_class,
                  "one weight per CLASS: WeightedRandomSampler wants one weight per SAMPLE, "
                  "len(dataset) of them; given K weights it draws only the indices 0 .. K-1. "
                  "Give each sample its class's weight, (1 / counts)[y]"),
        Diagnosis(counts_of,
                  "that is the count, not its inverse: weights proportional to the class size "
                  "make the majority class even more common; use 1 / count"),
        Diagnosis(lambda y: 1 - counts_of(y) / len(y),
                  "1 - frequency balances two classes only: a class's share of the draws is "
                  "n_k (1 - n_k / N), not the same for every k once there are three; 1 / n_k "
                  "gives every class n_k / n_k = 1"),
        Diagnosis(lambda y: torch.ones(len(y), dtype=torch.float64),
                  "equal weights draw the samples uniformly, the classes as imbalanced as "
                  "they are: weight each sample by 1 / (its class's count)"),
    ])


# --------------------------------------------------------------------------------------------
# Task 7: the sigmoid focal loss
# --------------------------------------------------------------------------------------------


def _focal(modulating: str = "1 - p_t", alpha_on: str = "positives", log: str = "stable",
           reduction: str = "none") -> Callable:
    """The sigmoid focal loss, per element, FL = -alpha_t (1 - p_t)^gamma log p_t, as
    torchvision.ops.sigmoid_focal_loss computes it (Lin et al. 2017, eq. 5; p_t = p for a
    positive, 1 - p for a negative; alpha_t likewise alpha or 1 - alpha), with one part changed:
    the modulating factor ('1 - p_t', '1 - p', 'p_t', 'none'), the class alpha weighs
    ('positives', 'negatives', 'none'), the log ('stable' through BCE with logits, 'naive' of
    the probabilities), the reduction."""
    def sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0):
        p = torch.sigmoid(logits)
        if log == "stable":
            ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        else:
            ce = -(targets * torch.log(p) + (1 - targets) * torch.log(1 - p))
        p_t = p * targets + (1 - p) * (1 - targets)
        factor = {"1 - p_t": 1 - p_t, "1 - p": 1 - p, "p_t": p_t,
                  "none": torch.ones_like(p)}[modulating] ** gamma
        alpha_t = {"positives": alpha * targets + (1 - alpha) * (1 - targets),
                   "negatives": (1 - alpha) * targets + alpha * (1 - targets),
                   "none": torch.ones_like(p)}[alpha_on]
        loss = alpha_t * factor * ce
        return loss.mean() if reduction == "mean" else loss
    return sigmoid_focal_loss


def focal_cases() -> list[tuple]:
    g = seeded(109)
    return [
        (torch.tensor([-3.0, -1.0, -0.2, 0.0, 0.4, 1.5, 3.0, 6.0], dtype=torch.float64),
         torch.tensor([0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0], dtype=torch.float64)),
        (3 * torch.randn(5, 3, generator=g, dtype=torch.float64),
         torch.randint(0, 2, (5, 3), generator=g).double(), 0.75, 1.0),
        # confidently wrong at +-40 (and right at -40): a log of a probability overflows
        (torch.tensor([40.0, -40.0, -40.0, 2.0, -2.0, 0.5]),
         torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])),
        (2 * torch.randn(4, 2, generator=g), torch.randint(0, 2, (4, 2), generator=g).float(),
         0.25, 0.5),
    ]


_CLAMPED = ("clamping caps the loss of a confident mistake; compute log p_t from the logit "
            "(binary_cross_entropy_with_logits or logsigmoid): at a logit of +-40 the loss is "
            "about alpha_t * 40, and the log of a probability clamped to eps stops at -log(eps)")


def _caps_confident_mistakes(learner) -> bool:
    """Whether the learner's loss, on the case of saturated logits, is finite and right except
    at the confidently wrong elements, where it is lower: a log of a clamped probability."""
    logits, targets = focal_cases()[2]
    expected = _focal()(logits, targets)
    try:
        got = learner(logits.clone(), targets.clone())
    except Exception:  # noqa: BLE001 - not this mistake
        return False
    if (not isinstance(got, Tensor) or got.shape != expected.shape or got.dtype != expected.dtype
            or not bool(torch.isfinite(got).all())):
        return False
    confident = (torch.sigmoid(logits) - targets).abs() == 1  # sigma(x) rounds to 1 - y
    return bool(confident.any() and (got[confident] < 0.99 * expected[confident]).all()
                and torch.allclose(got[~confident], expected[~confident]))


@task(forbid=("torchvision.ops",))
def check_sigmoid_focal_loss(sigmoid_focal_loss) -> Verdict:
    """Task 7: `sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0)`, the focal loss of
    every element, -alpha_t (1 - p_t)^gamma log p_t, a tensor of the logits' shape and dtype,
    finite for any logit; equal to `torchvision.ops.sigmoid_focal_loss(..., reduction="none")`."""
    verdict = _check_focal(sigmoid_focal_loss)
    if (verdict.status == WRONG and verdict.message.startswith("values differ")
            and _caps_confident_mistakes(sigmoid_focal_loss)):  # no diagnosis: look closer
        return wrong("sigmoid_focal_loss", _CLAMPED)
    return verdict


def _check_focal(sigmoid_focal_loss) -> Verdict:
    return check_function("sigmoid_focal_loss", sigmoid_focal_loss, _focal(), focal_cases(), [
        Diagnosis(_focal(log="naive"),
                  "inf (or nan) at a logit of +-40: sigmoid(40) is exactly 1.0 in floating "
                  "point, and log(1 - 1.0) = -inf. Compute -log p_t from the logit, stably: "
                  "F.logsigmoid(x) is log p, F.logsigmoid(-x) is log(1 - p) (or "
                  "F.binary_cross_entropy_with_logits(..., reduction='none'), which is -log p_t)"),
        Diagnosis(_focal(modulating="1 - p"),
                  "the modulating factor is (1 - p_t)^gamma, with p_t the probability of the "
                  "TRUE class (p for a positive, 1 - p for a negative): (1 - p)^gamma is right "
                  "for the positives only, and for a negative it down-weights the hard ones"),
        Diagnosis(_focal(modulating="p_t"),
                  "p_t^gamma grows as the example gets easier: the factor is (1 - p_t)^gamma, "
                  "which goes to 0 for well-classified examples (that is the point of the "
                  "focal loss)"),
        Diagnosis(_focal(alpha_on="negatives"),
                  "alpha is on the wrong class: alpha_t = alpha for a positive (target 1) and "
                  "1 - alpha for a negative"),
        Diagnosis(_focal(alpha_on="none"),
                  "alpha is missing: multiply by alpha_t, alpha for a positive and 1 - alpha for "
                  "a negative"),
        Diagnosis(_focal(modulating="none"),
                  "that is the alpha-balanced cross-entropy: the modulating factor "
                  "(1 - p_t)^gamma is missing"),
        Diagnosis(_focal(reduction="mean"),
                  "return the loss of every element, a tensor of the logits' shape "
                  "(reduction='none'): do not average"),
    ])


# --------------------------------------------------------------------------------------------
# Task 8: the threshold that reaches a target recall
# --------------------------------------------------------------------------------------------


def _threshold_reference(y_true, scores, target_recall=0.9) -> float:
    """The highest threshold of sklearn's ROC curve (every distinct score, predicted positive
    when score >= threshold) whose true positive rate, the recall, reaches the target."""
    _, tpr, thresholds = sk.roc_curve(y_true.numpy(), scores.numpy(), drop_intermediate=False)
    return float(thresholds[np.argmax(tpr >= target_recall)])


def _threshold(predict: str = ">=", reach: str = ">=", pick: str = "highest") -> Callable:
    """The threshold among the scores, with one part changed: the prediction (score >= t or
    > t), reaching the target (recall >= target or >), and which threshold is picked (the
    highest that reaches, the lowest that reaches, the one whose recall is closest)."""
    def threshold_for_recall(y_true, scores, target_recall=0.9):
        candidates = scores.unique().flip(0)  # from the highest
        positives = scores[y_true == 1]
        if predict == ">=":
            caught = positives[None, :] >= candidates[:, None]
        else:
            caught = positives[None, :] > candidates[:, None]
        recall = caught.double().sum(dim=1) / len(positives)
        reached = recall >= target_recall if reach == ">=" else recall > target_recall
        if pick == "closest":
            return candidates[torch.argmin((recall - target_recall).abs())].item()
        if not reached.any():
            raise _NotApplicable
        index = torch.nonzero(reached)
        return candidates[index[0] if pick == "highest" else index[-1]].item()
    return threshold_for_recall


def threshold_cases() -> list[tuple]:
    g = seeded(110)

    def scores_for(y, dtype=torch.float64, decimals=None):
        s = torch.rand(len(y), generator=g, dtype=torch.float64) + 0.6 * y
        s = s / 1.6
        return (s if decimals is None else (s * 10**decimals).round() / 10**decimals).to(dtype)

    ten = _shuffled_labels([30, 10], g)  # recall 9/10 = 0.9 exactly
    seven = _shuffled_labels([43, 7], g)  # recalls 6/7 and 7/7 around 0.9
    twelve = _shuffled_labels([48, 12], g)
    low = _shuffled_labels([25, 5], g)
    low_scores = scores_for(low)
    low_scores[low == 0] = low_scores[low == 0] - 0.2  # negatives below every positive too
    seven_scores = scores_for(seven, decimals=2)
    seven_scores[seven == 1] = torch.tensor([0.93, 0.76, 0.72, 0.67, 0.61, 0.55, 0.5],
                                            dtype=torch.float64)  # each positive its own score
    return [(ten, scores_for(ten)),
            (seven, seven_scores, 0.9),
            (twelve, scores_for(twelve, torch.float32), 0.75),
            (low, low_scores, 1.0)]


class _NotAScore:
    """Stands for a threshold that is none of the scores: it describes itself with the fix."""

    def __init__(self, value: float):
        self.text = (f"{value!r} (your threshold is not one of the scores: return the score "
                     f"itself, the lowest one that must be flagged, not a value between scores "
                     f"such as an interpolated quantile)")

    def __repr__(self) -> str:
        return self.text


def _one_of_the_scores(learner):
    """The learner's function, with a number that is none of the scores replaced by its
    description."""
    if not callable(learner):
        return learner

    def among(y_true, scores, *rest):
        result = learner(y_true, scores.clone(), *rest)
        value = as_number(result)
        if value is not None and not math.isnan(value) and not bool((scores == value).any()):
            return _NotAScore(value)
        return result
    return among


@task(forbid=METRICS)
def check_threshold_for_recall(threshold_for_recall) -> Verdict:
    """Task 8: `threshold_for_recall(y_true, scores, target_recall=0.9)`, the highest threshold t
    (one of the scores) whose recall, with positives predicted where score >= t, reaches the
    target, as a number."""
    return check_function("threshold_for_recall",
                          _one_of_the_scores(_one_number(threshold_for_recall)),
                          _threshold_reference, threshold_cases(), [
        Diagnosis(_threshold(reach=">"),
                  "'reaches' means recall >= target: a recall of exactly 0.9 (9 of 10 "
                  "positives) meets a target of 0.9, and a strict > gives away a higher "
                  "threshold, with fewer false alarms"),
        Diagnosis(_threshold(predict=">"),
                  "predict positive where score >= threshold (scikit-learn's convention, that "
                  "of roc_curve and precision_recall_curve): with score > t, the sample whose "
                  "score is t is not caught, and you end one score too low"),
        Diagnosis(_threshold(pick="closest"),
                  "the recall closest to the target may lie BELOW it: keep only the thresholds "
                  "whose recall is >= the target, and of those the highest"),
        Diagnosis(_threshold(pick="lowest"),
                  "that is the lowest threshold whose recall reaches the target (the lowest "
                  "score flags everything, recall 1): take the HIGHEST one, which reaches the "
                  "target with the fewest false alarms"),
    ], rtol=0.0, atol=0.0)


# --------------------------------------------------------------------------------------------
# Task 9: the expected calibration error
# --------------------------------------------------------------------------------------------


def _ece_reference(y_true, y_prob, n_bins=10) -> float:
    """sum over non-empty bins of (n_b / N) |fraction of positives - mean probability|, with
    sklearn's calibration_curve for the two means and its binning (searchsorted on the inner
    edges: bin b holds (b / M, (b + 1) / M], the first also 0) for the counts n_b."""
    y, p = y_true.numpy(), y_prob.numpy()
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    bin_ids = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], p)
    counts = np.bincount(bin_ids, minlength=n_bins)
    counts = counts[counts > 0]
    return float(np.sum(counts / len(p) * np.abs(prob_true - prob_pred)))


def _ece(weights: str = "count", edges: str = "right", gap: str = "per bin",
         kind: str = "positive class") -> Callable:
    """The ECE with one part changed: `weights` 'count' (n_b / N), 'count, NaN' (the same with
    0 / 0 left in empty bins), 'equal' over the non-empty bins, 'equal, all' over all n_bins (an
    empty bin's gap 0); `edges` 'right' (lo, hi], 'left' [lo, hi) (floor(p M)) or 'full'
    (lo, hi] bucketized on all the edges, so that p = 0 has a bin of its own; `gap` 'per
    bin' or 'pooled' (the absolute value outside the sum); `kind` 'positive class' or 'top
    label' (confidence max(p, 1 - p) against the accuracy of p >= 1/2)."""
    def expected_calibration_error(y_true, probs, n_bins=10):
        y = y_true.double()
        if kind == "top label":
            if (probs == 0.5).any():
                raise _NotApplicable  # the prediction at 1/2 depends on > or >=
            predicted = (probs > 0.5).double()
            probs, y = torch.maximum(probs, 1 - probs), (predicted == y).double()
        all_edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
        if edges == "right":
            bins = torch.bucketize(probs, all_edges[1:-1])
        elif edges == "full":
            bins = torch.bucketize(probs, all_edges)  # p = 0 alone in bin 0, the rest one up
        else:
            bins = (probs * n_bins).floor().long().clamp(max=n_bins - 1)
        slots = n_bins + 1 if edges == "full" else n_bins
        count = torch.bincount(bins, minlength=slots).double()
        mean_y = torch.bincount(bins, weights=y, minlength=slots) / count
        mean_p = torch.bincount(bins, weights=probs.double(), minlength=slots) / count
        full = count > 0
        if gap == "pooled":
            return (count[full] / len(probs) * (mean_y - mean_p)[full]).sum().abs().item()
        gaps = (mean_y - mean_p).abs()
        if weights == "equal":
            return gaps[full].mean().item()
        if weights == "equal, all":
            return (gaps.nan_to_num(0.0).sum() / n_bins).item()
        if weights == "count, NaN":
            return (count / len(probs) * gaps).sum().item()
        return (count[full] / len(probs) * gaps[full]).sum().item()
    return expected_calibration_error


def ece_cases() -> list[tuple]:
    g = seeded(111)
    spread = torch.rand(300, generator=g, dtype=torch.float64)
    spread_y = (torch.rand(300, generator=g, dtype=torch.float64) < spread**1.5).long()
    gapped = torch.cat([0.25 * torch.rand(150, generator=g, dtype=torch.float64),
                        0.8 + 0.2 * torch.rand(20, generator=g, dtype=torch.float64)])
    gapped_y = (torch.rand(170, generator=g, dtype=torch.float64) < gapped).long()
    on_edges = torch.tensor([0.0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75, 1.0, 0.1, 0.4, 0.6, 0.9, 0.3,
                             0.8], dtype=torch.float64)  # exact binary fractions: on the edges
    # p = 0 is a positive, its bin-mates (0, 1/4] over-predicted: a bin of its own for p = 0
    # (bucketize on all the edges) changes the ECE
    on_edges_y = torch.tensor([1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1])
    few = torch.rand(100, generator=g, dtype=torch.float64) ** 2
    few_y = (torch.rand(100, generator=g, dtype=torch.float64) < few).long()
    return [(spread_y, spread), (gapped_y, gapped, 10), (on_edges_y, on_edges, 4),
            (few_y, few, 15)]


@task(forbid=("sklearn.calibration",))
def check_expected_calibration_error(expected_calibration_error) -> Verdict:
    """Task 9: `expected_calibration_error(y_true, y_prob, n_bins=10)`, for 0/1 labels and
    float64 probabilities of the positive class, the ECE over `n_bins` equal-width bins
    (lo, hi] (the first also holds 0): the sum over the non-empty bins of (n_b / N) |fraction of
    positives - mean probability|, as a number."""
    return check_function("expected_calibration_error", _one_number(expected_calibration_error),
                          _ece_reference, ece_cases(), [
        Diagnosis(_ece(weights="equal"),
                  "every bin weighs by its share of the samples, n_b / N: averaging the bins "
                  "equally lets a bin of 2 samples count as much as one of 200"),
        Diagnosis(_ece(weights="count, NaN"),
                  "NaN: an empty bin has no mean (0 / 0); it holds no sample, so it adds "
                  "nothing: skip it, or sum |sum of y - sum of p| per bin and divide by N once"),
        Diagnosis(_ece(weights="equal, all"),
                  "you divided by n_bins, so every bin weighs the same, even the empty ones: "
                  "weigh each non-empty bin by n_b / N, and an empty bin adds nothing"),
        Diagnosis(_ece(edges="left"),
                  "a probability on a bin edge belongs to the bin BELOW it: bins are (lo, hi], "
                  "as in scikit-learn's calibration_curve (torch.bucketize(y_prob, "
                  "inner_edges), right=False); floor(p * n_bins) puts it in the bin above"),
        Diagnosis(_ece(edges="full"),
                  "p = 0 belongs to the FIRST bin, [0, 1/n_bins]: bucketize on the INNER edges, "
                  "torch.linspace(0, 1, n_bins + 1)[1:-1]; on all the edges p = 0 gets a bin of "
                  "its own (index 0) and every other bin moves up by one"),
        Diagnosis(_ece(gap="pooled"),
                  "the absolute value goes inside, one per bin: sum_b (n_b / N) |gap_b|; outside "
                  "the sum it is |mean(y) - mean(p)|, and over- and under-confident bins cancel"),
        Diagnosis(_ece(kind="top label"),
                  "that is the top-label ECE (confidence max(p, 1 - p) against the accuracy of "
                  "the prediction): here bin the probability of the POSITIVE class and compare "
                  "it with the fraction of positives in the bin"),
    ])
