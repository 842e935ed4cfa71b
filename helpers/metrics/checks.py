"""Every metric against scikit-learn, on random data and edge cases (`python -m helpers.verify -k
metrics`).

Labels are integers, so the checks on labels alone run in float64 (the dtype of our scores);
sample weights and scores are cast to each dtype. Both sides run with their warnings silenced:
tests/test_metrics.py compares the warnings themselves. `build_checks(ours)` builds the checks of
any module with our functions' names: `helpers.metrics` itself, or a mutant of it in the tests.
"""

from __future__ import annotations

import functools
import types
import warnings
from collections.abc import Callable

import sklearn.metrics as _sk
import torch
from sklearn.exceptions import UndefinedMetricWarning

from helpers.metrics.validation import AVERAGES, NORMALIZATIONS, ZERO_DIVISIONS
from helpers.verify import DEFAULT_DTYPES, Check, numpy_reference

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


def _streamed(ours, name: str, batches: int = 7) -> Callable:
    """The function `name`, computed by `ours.StreamingConfusionMatrix` fed `batches` batches."""
    def metric(y_true, y_pred, sample_weight=None, **kwargs):
        stream = ours.StreamingConfusionMatrix()
        weights = [None] * batches if sample_weight is None else sample_weight.tensor_split(batches)
        for batch in zip(y_true.tensor_split(batches), y_pred.tensor_split(batches), weights):
            stream.update(*batch)
        return getattr(stream, name)(**kwargs)
    return metric


def _in_batches(ours) -> types.SimpleNamespace:
    """The score functions of `ours`, each computed from 7 batches."""
    return types.SimpleNamespace(**{name: _streamed(ours, name) for name in _SCORE_FUNCTIONS})


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


def _against_sklearn(name: str, compute: Callable, inputs: Callable, *, ours,
                     dtypes=(torch.float64,), **options) -> Check:
    """The check that `compute` gives the same with `ours` as with sklearn.metrics."""
    return Check(name, functools.partial(compute, ours, **options), _sklearn(compute, **options),
                 inputs, dtypes)


def _label_checks(ours) -> list[Check]:
    against_sklearn = functools.partial(_against_sklearn, ours=ours)
    checks = [
        against_sklearn("confusion_matrix, accuracy_score", _confusion_and_accuracy, _multiclass),
        against_sklearn("confusion_matrix labels=[4, 0, 6, 2]", _confusion_and_accuracy,
                         _multiclass, labels=[4, 0, 6, 2]),
        against_sklearn("confusion_matrix, accuracy_score sample_weight",
                         _confusion_and_accuracy, _weighted(_multiclass), dtypes=DEFAULT_DTYPES),
    ]
    for zero_division in ZERO_DIVISIONS:
        checks += [
            against_sklearn(f"scores binary zero_division={zero_division}", _all_scores, _binary,
                             averages=AVERAGES, zero_division=zero_division),
            against_sklearn(f"scores multiclass zero_division={zero_division}", _all_scores,
                             _multiclass, zero_division=zero_division),
            against_sklearn(f"scores all-negative predictions zero_division={zero_division}",
                             _all_scores, _all_negative_predictions, averages=AVERAGES,
                             zero_division=zero_division),
        ]
    return checks + [
        against_sklearn("scores labels=[4, 0, 6, 2]", _all_scores, _multiclass,
                         labels=[4, 0, 6, 2]),
        against_sklearn("scores pos_label=0", _all_scores, _binary, averages=("binary",),
                         pos_label=0),
        against_sklearn("scores binary sample_weight", _all_scores, _weighted(_binary),
                         dtypes=DEFAULT_DTYPES, averages=AVERAGES),
        against_sklearn("scores multiclass sample_weight", _all_scores,
                         _weighted(_multiclass), dtypes=DEFAULT_DTYPES),
        against_sklearn("StreamingConfusionMatrix, 7 batches", _all_scores, _multiclass,
                         ours=_in_batches(ours)),
        against_sklearn("StreamingConfusionMatrix, 7 batches, sample_weight", _all_scores,
                         _weighted(_multiclass), ours=_in_batches(ours), dtypes=DEFAULT_DTYPES),
    ]


def _threshold_checks(ours) -> list[Check]:
    against_sklearn = functools.partial(_against_sklearn, ours=ours)
    checks = [
        against_sklearn("precision_recall_curve, average_precision_score", _curves, _scored,
                         dtypes=DEFAULT_DTYPES),
        against_sklearn("precision_recall_curve, average_precision_score sample_weight",
                         _curves, _weighted(_scored), dtypes=DEFAULT_DTYPES),
        against_sklearn("precision_recall_curve, average_precision_score pos_label=0", _curves,
                         _scored, dtypes=DEFAULT_DTYPES, pos_label=0),
        Check("metrics_at_threshold t=0.5",
              lambda y_true, y_score: ours.metrics_at_threshold(y_true, y_score, 0.5)[1:],
              _sklearn(lambda _, y_true, y_score: _threshold_reference(y_true, y_score, 0.5)),
              _scored),
    ]
    reference = _sklearn(lambda sk, *args, **kwargs: sk.confusion_matrix_at_thresholds(
        *args, **kwargs))
    return checks + [Check("confusion_matrix_at_thresholds", ours.confusion_matrix_at_thresholds,
                           reference, _weighted(_scored))]


def build_checks(ours) -> tuple[Check, ...]:
    """Every check of the functions of `ours` (a module with our names) against scikit-learn."""
    return (*_label_checks(ours), *_threshold_checks(ours))
