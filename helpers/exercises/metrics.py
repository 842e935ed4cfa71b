"""Checkers for the exercises of chapter 07, classification metrics.

Every task is to be done with tensor operations: each forbids `sklearn.metrics` and the course's
`helpers.metrics` (its classes too), which would compute the answer. The question of task 6 keeps
its answers sealed (see `helpers.exercises.seal`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import sklearn.metrics as sk
import torch

from helpers.exercises import (
    WRONG,
    Diagnosis,
    Sealed,
    Verdict,
    check_answer,
    check_function,
    seeded,
    wrong,
)
from helpers.exercises.grading import task

WITHOUT_LIBRARY_METRICS = ("sklearn.metrics", "helpers.metrics")
"""What every task of the chapter forbids: "use tensor operations, not sklearn.metrics or
helpers.metrics"."""

def _pairs_of(C: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Labels (y_true, y_pred) whose confusion matrix is C: the pair (i, j) repeated C[i, j]
    times. The references are scikit-learn's functions on those labels."""
    rows, columns = np.indices(tuple(C.shape))
    counts = C.numpy().ravel()
    return np.repeat(rows.ravel(), counts), np.repeat(columns.ravel(), counts)


def _sklearn_on(C: torch.Tensor, fn, **kwargs):
    y_true, y_pred = _pairs_of(C)
    return fn(y_true, y_pred, labels=list(range(len(C))), zero_division=0.0, **kwargs)


def _counts(C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """TP, FP and FN of every class, in float64."""
    C = C.double()
    tp = C.diagonal()
    return tp, C.sum(0) - tp, C.sum(1) - tp


def _fbeta_counts(tp, fp, fn, beta_squared, *, zero_division: float = 0.0):
    denominator = (1 + beta_squared) * tp + beta_squared * fn + fp
    score = (1 + beta_squared) * tp / denominator
    return score if math.isnan(zero_division) else score.nan_to_num(zero_division)


def _fp_fn_swapped(tp, fp, fn):
    return tp, fn, fp


def _fbeta_of_precision_recall(tp, fp, fn, beta_squared):
    """F_beta from P and R (NaN where P or R is 0/0)."""
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return (1 + beta_squared) * precision * recall / (beta_squared * precision + recall)


class _Batches(list):
    """A list of (y_true, y_pred) batches that describes itself in one short line."""

    def __repr__(self) -> str:
        sizes = ", ".join(str(len(y_true)) for y_true, _ in self)
        return f"{len(self)} batches (y_true, y_pred) of sizes {sizes}"


def _matrices() -> dict[str, torch.Tensor]:
    diagonal = 3 * torch.eye(4, dtype=torch.long)  # every class predicted and present
    return {
        "binary": torch.tensor([[5, 1], [2, 2]]),
        "three classes": torch.tensor([[3, 1, 1], [1, 2, 0], [0, 1, 1]]),
        "four classes": torch.randint(0, 6, (4, 4), generator=seeded(7)) + diagonal,
        "imbalanced": torch.tensor([[50, 3, 2], [4, 5, 1], [2, 1, 2]]),
        # class 2 occurs but is never predicted; class 3 neither occurs nor is predicted
        "with empty classes": torch.tensor([[4, 1, 0, 0], [2, 3, 0, 0], [1, 1, 0, 0],
                                            [0, 0, 0, 0]]),
    }


@task(forbid=WITHOUT_LIBRARY_METRICS)
def check_confusion_matrix(confusion_matrix) -> Verdict:
    """Task 1: `confusion_matrix(y_true, y_pred, n_classes)`, rows true, columns predicted."""
    g = seeded(70)
    cases = [(torch.tensor([1, 1, 0, 1, 0, 0, 1, 0, 0, 0]),
              torch.tensor([1, 0, 0, 1, 1, 0, 1, 0, 0, 0]), 2),
             (torch.tensor([0, 0, 0, 0, 0, 1, 1, 1, 2, 2]),
              torch.tensor([0, 0, 0, 1, 2, 1, 1, 0, 2, 1]), 3),
             (torch.randint(0, 4, (40,), generator=g), torch.randint(0, 4, (40,), generator=g), 4),
             (torch.tensor([0, 2, 2, 1]), torch.tensor([0, 1, 2, 1]), 5)]

    def reference(y_true, y_pred, n_classes):
        return torch.from_numpy(sk.confusion_matrix(y_true.numpy(), y_pred.numpy(),
                                                    labels=list(range(n_classes))))

    return check_function("confusion_matrix", _explained_reshape(confusion_matrix), reference,
                          cases, [
        Diagnosis(lambda y, p, k: reference(y, p, k).T,
                  "you built the transpose: rows are the TRUE classes and columns the predicted "
                  "ones, C[i, j] = #{n : y_n = i, y_hat_n = j}, so the cell number is "
                  "y_true * n_classes + y_pred"),
        Diagnosis(lambda y, p, k: (reference(y, p, k) > 0).long(),
                  "every cell is at most 1: C[y_true, y_pred] += 1 does not add up repeated "
                  "index pairs, each cell is incremented once; count with torch.bincount "
                  "(or index_put_ with accumulate=True)"),
        Diagnosis(lambda y, p, k: reference(y, p, k) / len(y),
                  "C holds counts, not shares: don't divide by the number of samples"),
        Diagnosis(lambda y, p, k: reference(y, p, k).float(),
                  "the counts are right but float32: keep them as integers (int64, what "
                  "torch.bincount returns), e.g. with .long()"),
    ])


def _explained_reshape(confusion_matrix):
    """The learner's function, with the error of reshaping too short a histogram explained."""
    if not callable(confusion_matrix):
        return confusion_matrix

    def explained(y_true, y_pred, n_classes):
        try:
            return confusion_matrix(y_true, y_pred, n_classes)
        except RuntimeError as error:
            if "is invalid for input of size" not in str(error):
                raise
            raise RuntimeError(f"{error}: torch.bincount stops at the largest cell number it "
                               f"sees; give it minlength=n_classes**2, so that every cell, "
                               f"the empty ones too, is counted") from error
    return explained


@task(forbid=WITHOUT_LIBRARY_METRICS)
def check_precision_recall(precision_recall) -> Verdict:
    """Task 2: `precision_recall(C)`, the float64 precision and recall of every class."""
    matrices = _matrices()
    cases = [(matrices[name],) for name in ("binary", "three classes", "four classes")]

    def reference(C):  # noqa: N803
        precision, recall, _, _ = _sklearn_on(C, sk.precision_recall_fscore_support,
                                              average=None)
        return torch.from_numpy(precision), torch.from_numpy(recall)

    def predicted_and_actual(C):  # noqa: N803
        tp, fp, fn = _counts(C)
        return tp, tp + fp, tp + fn

    def swapped(C):  # noqa: N803
        tp, predicted, actual = predicted_and_actual(C)
        return tp / actual, tp / predicted

    def recall_twice(C):  # noqa: N803
        tp, predicted, actual = predicted_and_actual(C)
        return tp / actual, tp / actual

    def precision_twice(C):  # noqa: N803
        tp, predicted, actual = predicted_and_actual(C)
        return tp / predicted, tp / predicted

    def specificity(C):  # noqa: N803
        tp, predicted, actual = predicted_and_actual(C)
        negatives = C.sum() - actual
        true_negatives = negatives - (predicted - tp)
        return tp / predicted, true_negatives / negatives

    def over_n(C):  # noqa: N803
        tp, _, _ = predicted_and_actual(C)
        return tp / C.sum(), tp / C.sum()

    return check_function("precision_recall", precision_recall, reference, cases, [
        Diagnosis(swapped,
                  "precision and recall are swapped: precision divides TP by the COLUMN sum "
                  "C.sum(0) (all predicted k), recall by the ROW sum C.sum(1) (all truly k)"),
        Diagnosis(recall_twice,
                  "your precision is TP / (TP + FN), which is recall: precision's denominator "
                  "is TP + FP, the column sum C.sum(0)"),
        Diagnosis(precision_twice,
                  "your recall is TP / (TP + FP), which is precision: recall's denominator is "
                  "TP + FN, the row sum C.sum(1)"),
        Diagnosis(specificity,
                  "that recall is the specificity TN / (TN + FP), asked of the negatives: "
                  "recall is TP / (TP + FN), the share of the actual members of class k found"),
        Diagnosis(over_n,
                  "divide TP by the column sum (precision) and by the row sum (recall), not by "
                  "the number of samples"),
        Diagnosis(lambda C: tuple(score.float() for score in reference(C)),
                  "the values are right but float32 (int64 / int64 gives float32): convert the "
                  "counts with C.double() first"),
    ])


@task(forbid=WITHOUT_LIBRARY_METRICS)
def check_fbeta(fbeta) -> Verdict:
    """Task 3: `fbeta(C, beta)`, the float64 F_beta of every class, 0 where it is 0/0."""
    matrices = _matrices()
    cases = [(matrices["three classes"], 2.0), (matrices["four classes"], 0.5),
             (matrices["with empty classes"], 1.0), (matrices["with empty classes"], 3.0)]

    def reference(C, beta):  # noqa: N803
        return torch.from_numpy(_sklearn_on(C, sk.fbeta_score, beta=beta, average=None))

    return check_function("fbeta", fbeta, reference, cases, [
        Diagnosis(lambda C, beta: _fbeta_counts(*_counts(C), beta),
                  "the weight is beta SQUARED: (1 + beta²) TP / ((1 + beta²) TP + beta² FN + FP)"),
        Diagnosis(lambda C, beta: _fbeta_counts(*_fp_fn_swapped(*_counts(C)), beta**2),
                  "beta > 1 must favour recall, so beta² multiplies FN (the misses), not FP"),
        Diagnosis(lambda C, beta: _fbeta_counts(*_counts(C), 1.0),
                  "you computed F1 whatever beta is: put beta² into the formula"),
        Diagnosis(lambda C, beta: _fbeta_counts(*_counts(C), beta**2, zero_division=math.nan),
                  "a class that is neither true nor predicted gives 0 / 0: return 0 there "
                  "(zero_division=0), e.g. with torch.where or nan_to_num"),
        Diagnosis(lambda C, beta: _fbeta_of_precision_recall(*_counts(C), beta**2),
                  "compute F from the counts, (1 + beta²) TP / ((1 + beta²) TP + beta² FN + FP): "
                  "for a class that is never predicted P is 0 / 0, yet F is defined (0)"),
    ])


@task(forbid=WITHOUT_LIBRARY_METRICS)
def check_macro_f1(macro_f1) -> Verdict:
    """Task 4: `macro_f1(C)`, the mean of the per-class F1 scores, as a number."""
    matrices = _matrices()
    cases = [(matrices[name],) for name in ("three classes", "imbalanced", "four classes")]
    cases.append((matrices["with empty classes"][:3, :3],))  # class 2 is never predicted
    cases.append((matrices["with empty classes"],))  # and class 3 occurs nowhere

    def reference(C):  # noqa: N803
        return float(_sklearn_on(C, sk.f1_score, average="macro"))

    def f1_of_macro_precision_and_recall(C, zero_division=math.nan):  # noqa: N803
        tp, fp, fn = _counts(C)
        precision = (tp / (tp + fp)).nan_to_num(zero_division).mean()
        recall = (tp / (tp + fn)).nan_to_num(zero_division).mean()
        return float(2 * precision * recall / (precision + recall))

    of_macro_scores = ("that is the F1 of the macro precision and the macro recall: macro-F1 is "
                       "the mean of the per-class F1 scores, 2 TP_k / (2 TP_k + FP_k + FN_k)")

    def support_weighted(C):  # noqa: N803
        tp, fp, fn = _counts(C)
        support = tp + fn
        return float((support * _fbeta_counts(tp, fp, fn, 1.0)).sum() / support.sum())

    def present_classes_only(C):  # noqa: N803
        present = (C.sum(0) + C.sum(1)) > 0
        return float(_fbeta_counts(*_counts(C), 1.0)[present].mean())

    return check_function("macro_f1", macro_f1, reference, cases, [
        Diagnosis(lambda C: float(C.diagonal().sum() / C.sum()),
                  "that is micro-F1, from the counts pooled over the classes (for single-label "
                  "data it equals the accuracy): for macro, average the per-class scores"),
        Diagnosis(support_weighted,
                  "that is the support-weighted average: macro gives every class the same "
                  "weight, however rare"),
        Diagnosis(lambda C: float(_fbeta_of_precision_recall(*_counts(C), 1.0).mean()),
                  "NaN: the precision of a class that is never predicted is 0 / 0; compute each "
                  "F1 from the counts, 2 TP / (2 TP + FP + FN), which is 0 there"),
        Diagnosis(f1_of_macro_precision_and_recall, of_macro_scores),
        Diagnosis(lambda C: f1_of_macro_precision_and_recall(C, 0.0), of_macro_scores),
        Diagnosis(lambda C: float(_fbeta_of_precision_recall(*_counts(C), 1.0).nanmean()),
                  "a class that is never predicted still counts, with F1 = 2 TP / (2 TP + FP + "
                  "FN) = 0: compute F1 from the counts instead of leaving it out"),
        Diagnosis(present_classes_only,
                  "a class that occurs nowhere (neither true nor predicted) still counts, with "
                  "F1 = 0 as in task 3: average over all K classes of C (scikit-learn does so "
                  "when given labels=range(K))"),
    ])


@task(forbid=WITHOUT_LIBRARY_METRICS)
def check_precision_over_batches(precision_over_batches) -> Verdict:
    """Task 5: the precision of class 1 over all `(y_true, y_pred)` batches, as a number."""
    g = seeded(75)
    steady = []
    for size in (6, 9, 7, 5):
        y_true = torch.randint(0, 2, (size,), generator=g)
        y_pred = torch.randint(0, 2, (size,), generator=g)
        y_pred[0] = 1  # every batch predicts at least one positive
        steady.append((y_true, y_pred))
    with_empty = [(torch.tensor([1, 0, 1, 1, 0]), torch.tensor([1, 1, 0, 1, 0])),
                  (torch.tensor([0, 0, 1]), torch.tensor([0, 0, 0])),
                  (torch.tensor([1, 0, 0, 0, 1, 1, 0, 0]), torch.tensor([1, 1, 1, 0, 0, 1, 1, 0]))]
    cases = [(_Batches(with_empty),), (_Batches(steady),)]

    def joined(batches):
        return (torch.cat([t for t, _ in batches]).numpy(),
                torch.cat([p for _, p in batches]).numpy())

    def reference(batches):
        return float(sk.precision_score(*joined(batches)))

    def per_batch(batches, zero_division=math.nan):
        return torch.tensor([sk.precision_score(t.numpy(), p.numpy(), zero_division=zero_division)
                             for t, p in batches], dtype=torch.float64)

    def size_weighted(batches):
        sizes = torch.tensor([len(t) for t, _ in batches], dtype=torch.float64)
        return float((sizes * per_batch(batches, 0.0)).sum() / sizes.sum())

    advice = "add up TP and FP over all the batches and divide once"
    return check_function("precision_over_batches", precision_over_batches, reference, cases, [
        Diagnosis(lambda batches: float(per_batch(batches).mean()),
                  "precision is a ratio of sums, not a mean of per-batch precisions (and a "
                  f"batch with no predicted positive has none at all, 0 / 0): {advice}"),
        Diagnosis(lambda batches: float(per_batch(batches).nanmean()),
                  f"leaving out the batches without a predicted positive does not fix the mean "
                  f"of per-batch precisions: {advice}"),
        Diagnosis(lambda batches: float(per_batch(batches, 0.0).mean()),
                  f"a batch without predicted positives has no precision, 0 is not its value: "
                  f"don't average per-batch precisions; {advice}"),
        Diagnosis(size_weighted,
                  "weighting the per-batch precisions by batch size does not fix it: "
                  f"precision divides by the number of PREDICTED positives; {advice}"),
        Diagnosis(lambda batches: float(sk.recall_score(*joined(batches))),
                  "that is recall, TP / (TP + FN): precision divides by the predicted "
                  "positives, TP + FP"),
        Diagnosis(lambda batches: float(per_batch(batches[-1:])[0]),
                  f"that is the precision of the last batch alone: {advice}"),
    ])


_SCREENING_ORDER = "(accuracy_A, recall_A, accuracy_B, recall_B)"

# Task 6's answers and the typical wrong ones of its first part (each the answer with one number
# wrong, or its numbers in another order or unit), sealed with `seal(task, answer)`
_SCREENING_SCORES = Sealed("e3bb72d6d1545a6f819912a705a7b26a24d0b4c63641ac27506de4b52c191c5e", 4)
_SCREENING_MISTAKES = [
    (Sealed("dbd9a2dffa5d201961c7647dd74f8a5b2502c627701702c2ab542a8f317ce271", 4),
     "recall is asked of the positive class, TP / (TP + FN): the share of the positives a "
     "model finds (1.0 is model A's recall of the NEGATIVE class)"),
    (Sealed("71de7fc6b70d0c851316ff689f638bfb82cbcee699c9f6e4ef92d81ae6942189", 4),
     "the recall of B is TP / (TP + FN), the share of the positives it finds: the share of "
     "its flags that are right, TP / (TP + FP), is its precision"),
    (Sealed("386111dc0df1e4f60eb55613dc33cbbfd7f7a2ed81946786a88a0487bef2d6b9", 4),
     "accuracy counts every correct prediction, the negatives included: A is right on all "
     "990 negatives"),
    (Sealed("a1c82b89c442ae77a109f1ccf4dfdcb24fc1290d86603ba5141ddca99fd6809b", 4),
     "B's false alarms are the flagged samples that are negative, not all 30 flagged: "
     "FP = 30 - TP"),
    (Sealed("384f1520a040c0aac3f6ea517ec0a19e21262871e6f3437534d3f664a3101883", 4),
     "count both kinds of error of B: its false alarms AND the positives it misses"),
    (Sealed("9aa500236c009a6017b78b8f6e654acc397f2e4da3ad69ecf0055f4a44e636cc", 4),
     f"the order is {_SCREENING_ORDER}: model A's two numbers first, then B's"),
    (Sealed("e1426fe4c53dbfe0b0a4c5771c48f5683cf46beea15ca29df224655e082e0d5d", 4),
     f"the order is {_SCREENING_ORDER}: accuracy first, then recall, for each model"),
    (Sealed("4a330e31c680d92c772d0ac0d73adb8a49dbc6e9a229313759483886aa5376f4", 4),
     "give the rates as fractions between 0 and 1, not as percentages"),
]
_MODEL_TO_DEPLOY = Sealed("2a76228d21b02d13a3e3f746c78f03cf10b0f23c8fb3f75fc197de4fe8ff5f83")


@task(forbid=WITHOUT_LIBRARY_METRICS)
def check_accuracy_misleads(accuracy_misleads) -> Verdict:
    """Task 6 (conceptual): accuracy and recall of two screening models on 1000 samples with
    10 positives, as (accuracy_A, recall_A, accuracy_B, recall_B)."""
    verdict = check_answer("accuracy_misleads", accuracy_misleads, _SCREENING_SCORES,
                           _SCREENING_MISTAKES)
    miscounted = re.match(rf"expected a tuple of {_SCREENING_SCORES.length} values, but got "
                          r"(\d+):", verdict.message)
    if verdict.status == WRONG and miscounted:
        return wrong("accuracy_misleads",
                     f"read the task: it asks for {_SCREENING_SCORES.length} numbers, "
                     f"{_SCREENING_ORDER} in this order, and you returned {miscounted[1]}")
    return verdict


@dataclass(frozen=True)
class _NotALetter:
    """What the deployment checker compares in place of an answer that is not a string: compared
    with "B" as it is, an array would answer per item. Shown as the answer, on one line."""

    answer: object

    def __repr__(self) -> str:
        return " ".join(repr(self.answer).split())


@task(forbid=WITHOUT_LIBRARY_METRICS)
def check_which_to_deploy(which_to_deploy) -> Verdict:
    """Task 6, second part (conceptual): "A" or "B", the screening model to deploy; "b",
    "model B" and the like count too."""
    def letter():
        got = which_to_deploy()
        if not isinstance(got, str):
            return None if got is None else _NotALetter(got)
        named = got.strip().upper().removeprefix("MODEL").strip()
        return named if named in ("A", "B") else got

    verdict = check_answer("which_to_deploy", letter if callable(which_to_deploy)
                           else which_to_deploy, _MODEL_TO_DEPLOY, [
        ("A", "A has the higher accuracy only because 990 of the 1000 samples are negative: it "
              "never finds a positive, which is what a screening test is for; B finds most of "
              "them at the price of some false alarms, which a second test can sort out, while "
              "a missed positive is never looked at again"),
    ])
    unexpected = "not the expected answer (you returned "
    if verdict.status == WRONG and verdict.message.startswith(unexpected):
        return wrong("which_to_deploy", 'answer with the letter of a model, "A" or "B" (you '
                                        f"returned {verdict.message.removeprefix(unexpected)}")
    return verdict
