"""Every metric against scikit-learn, on random data and edge cases (`python -m helpers.verify -k
metrics`).

Labels are integers, so the checks on labels alone run in float64 (the dtype of our scores);
sample weights, scores and probabilities are cast to each dtype (float64 and float32 for
multiclass ROC AUC, whose rows must sum to 1 within 1e-5, which float16 rounding breaks). The
data cover ties, weights of 0, classes that are empty in y_true or in y_pred, and rare positives.
Both sides run with their warnings silenced: tests/test_metrics.py compares the warnings
themselves. `build_checks(ours)` builds the checks of any module with our functions' names:
`helpers.metrics` itself, or a mutant of it in the tests.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import warnings
from collections.abc import Callable

import sklearn.metrics as _sk
import torch
from sklearn.exceptions import UndefinedMetricWarning

from helpers.metrics.validation import AVERAGES, NORMALIZATIONS, ZERO_DIVISIONS
from helpers.verify import DEFAULT_DTYPES, Check, Tolerance, numpy_reference

_SCORE_FUNCTIONS = ("precision_score", "recall_score", "f1_score", "fbeta_score",
                    "precision_recall_fscore_support", "balanced_accuracy_score",
                    "matthews_corrcoef")


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
def _imbalance_scores(module, y_true, y_pred, **kwargs) -> dict:
    return {"balanced_accuracy_score": module.balanced_accuracy_score(y_true, y_pred, **kwargs),
            "balanced_accuracy_score adjusted=True": module.balanced_accuracy_score(
                y_true, y_pred, adjusted=True, **kwargs),
            "matthews_corrcoef": module.matthews_corrcoef(y_true, y_pred, **kwargs)}


@_quietly
def _roc(module, y_true, y_score, **kwargs) -> dict:
    """Both ROC curves, and the AUC whole and partial (not with pos_label: it takes none)."""
    results = {"roc_curve": module.roc_curve(y_true, y_score, drop_intermediate=False, **kwargs),
               "roc_curve drop_intermediate": module.roc_curve(y_true, y_score, **kwargs)}
    if "pos_label" not in kwargs:
        for max_fpr in (None, 0.05, 0.3, 1.0):
            results[f"roc_auc_score max_fpr={max_fpr}"] = module.roc_auc_score(
                y_true, y_score, max_fpr=max_fpr, **kwargs)
    return results


@_quietly
def _auc(module, y_true, y_score, **kwargs) -> dict:
    return {f"roc_auc_score max_fpr={max_fpr}": module.roc_auc_score(
        y_true, y_score, max_fpr=max_fpr, **kwargs) for max_fpr in (None, 0.3)}


@_quietly
def _multiclass_auc(module, y_true, y_score, **kwargs) -> dict:
    """One-vs-rest with every average; one-vs-one (which takes no sample weights) with both."""
    results = {f"roc_auc_score ovr average={average}": module.roc_auc_score(
        y_true, y_score, multi_class="ovr", average=average, **kwargs)
        for average in ("macro", "weighted", "micro", None)}
    if "sample_weight" not in kwargs:
        for average in ("macro", "weighted"):
            results[f"roc_auc_score ovo average={average}"] = module.roc_auc_score(
                y_true, y_score, multi_class="ovo", average=average, **kwargs)
    return results


@_quietly
def _probability_scores(module, y_true, y_proba, *, pos_label=None, **kwargs) -> dict:
    """The Brier score scaled every way, and the log loss (without pos_label, which it does not
    take) as a mean and as a sum."""
    results = {f"brier_score_loss scale_by_half={scale}": module.brier_score_loss(
        y_true, y_proba, pos_label=pos_label, scale_by_half=scale, **kwargs)
        for scale in ("auto", True, False)}
    if pos_label is None:
        for normalize in (True, False):
            results[f"log_loss normalize={normalize}"] = module.log_loss(
                y_true, y_proba, normalize=normalize, **kwargs)
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


def _rare(generator: torch.Generator, n: int = 400) -> dict:
    """Between 1% and 10% positives (at least two); the classifier finds about 70% of them and
    raises a false alarm on about 5% of the negatives."""
    share = 0.01 + 0.09 * torch.rand((), generator=generator, dtype=torch.float64)
    y_true = (torch.rand(n, generator=generator, dtype=torch.float64) < share).long()
    y_true[:2] = 1
    draw = torch.rand(n, generator=generator, dtype=torch.float64)
    return {"y_true": y_true, "y_pred": torch.where(y_true == 1, draw < 0.7, draw < 0.05).long()}


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


def _rare_scored(generator: torch.Generator, n: int = 400) -> dict:
    """Between 1% and 10% positives (at least two), scores rounded to 2 decimals (ties), some of
    them exactly 0 or 1: confident, and sometimes confidently wrong."""
    y_true = _rare(generator, n)["y_true"]
    logit = 2.0 * (2 * y_true - 1) + 1.5 * torch.randn(n, generator=generator, dtype=torch.float64)
    y_score = torch.sigmoid(logit).round(decimals=2)
    confident = torch.rand(n, generator=generator, dtype=torch.float64) < 0.05
    return {"y_true": y_true, "y_score": torch.where(confident, y_score.round(), y_score)}


def _multiclass_scored(generator: torch.Generator, n: int = 300, absent: int = 0,
                       classes: int = 4) -> dict:
    """Four (or three) classes of about 60, 25, 10 and 5%; probabilities from a few distinct rows
    (confidence 0.3, 0.6 or 0.9 in a guess right 60% of the time), so that many are tied; `absent`
    more columns of zeros, for classes that never occur."""
    prior = torch.tensor([0.6, 0.25, 0.1, 0.05][:classes], dtype=torch.float64)
    y_true = torch.multinomial(prior, n, replacement=True, generator=generator)
    right = torch.rand(n, generator=generator, dtype=torch.float64) < 0.6
    guess = torch.where(right, y_true, torch.randint(0, classes, (n,), generator=generator))
    confidence = torch.tensor([0.3, 0.6, 0.9], dtype=torch.float64)[
        torch.randint(0, 3, (n,), generator=generator)]
    one_hot = torch.nn.functional.one_hot(guess, classes + absent).double()
    y_score = confidence[:, None] * one_hot + (1 - confidence[:, None]) / classes * (
        torch.arange(classes + absent) < classes)
    return {"y_true": y_true, "y_score": y_score}


def _labelled_3_and_7(inputs: Callable) -> Callable:
    """The same data with the classes 0 and 1 called 3 and 7: the positive class is the greater."""
    def relabelled(generator: torch.Generator) -> dict:
        data = inputs(generator)
        return {**data, "y_true": 3 + 4 * data["y_true"]}
    return relabelled


def _as_probabilities(scored: Callable) -> Callable:
    """The same data, with y_score named y_proba."""
    def inputs(generator: torch.Generator) -> dict:
        data = scored(generator)
        return {"y_true": data["y_true"], "y_proba": data["y_score"]}
    return inputs


def _two_columns(generator: torch.Generator) -> dict:
    """Binary probabilities as two columns, [1 - p, p]."""
    data = _rare_scored(generator)
    return {"y_true": data["y_true"], "y_proba": torch.stack([1 - data["y_score"],
                                                              data["y_score"]], 1)}


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
    ] + _imbalance_checks(ours)


def _imbalance_checks(ours) -> list[Check]:
    def against_sklearn(name: str, inputs: Callable, **options) -> Check:
        options.setdefault("ours", ours)
        return _against_sklearn(name, _imbalance_scores, inputs, **options)
    return [
        against_sklearn("balanced_accuracy_score, matthews_corrcoef multiclass", _multiclass),
        against_sklearn("balanced_accuracy_score, matthews_corrcoef binary", _binary),
        against_sklearn("balanced_accuracy_score, matthews_corrcoef 1-10% positive", _rare),
        against_sklearn("balanced_accuracy_score, matthews_corrcoef all-negative predictions",
                        _all_negative_predictions),
        against_sklearn("balanced_accuracy_score, matthews_corrcoef sample_weight",
                        _weighted(_multiclass), dtypes=DEFAULT_DTYPES),
        against_sklearn("balanced_accuracy_score, matthews_corrcoef 1-10% positive sample_weight",
                        _weighted(_rare), dtypes=DEFAULT_DTYPES),
        against_sklearn("balanced_accuracy_score, matthews_corrcoef StreamingConfusionMatrix",
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
                           reference, _weighted(_scored))] + _roc_checks(ours)


def _roc_checks(ours) -> list[Check]:
    against_sklearn = functools.partial(_against_sklearn, ours=ours)
    mixed = (torch.float64, torch.float32)  # float16 rows would not sum to 1 within 1e-5
    return [
        against_sklearn("roc_curve, roc_auc_score", _roc, _scored, dtypes=DEFAULT_DTYPES),
        against_sklearn("roc_curve, roc_auc_score 1-10% positive", _roc, _rare_scored,
                        dtypes=DEFAULT_DTYPES),
        against_sklearn("roc_curve, roc_auc_score sample_weight", _roc, _weighted(_rare_scored),
                        dtypes=DEFAULT_DTYPES),
        against_sklearn("roc_curve pos_label=0", _roc, _scored, dtypes=DEFAULT_DTYPES,
                        pos_label=0),
        against_sklearn("roc_auc_score classes 3 and 7", _auc, _labelled_3_and_7(_rare_scored),
                        dtypes=DEFAULT_DTYPES),
        against_sklearn("roc_auc_score multiclass", _multiclass_auc, _multiclass_scored,
                        dtypes=mixed),
        against_sklearn("roc_auc_score multiclass sample_weight", _multiclass_auc,
                        _weighted(_multiclass_scored), dtypes=mixed),
        against_sklearn("roc_auc_score multiclass labels=[0, 1, 2, 3, 5]", _multiclass_auc,
                        functools.partial(_multiclass_scored, absent=1), dtypes=mixed,
                        labels=[0, 1, 2, 3, 5]),
    ]


_HALF_PROBABILITIES = Tolerance(rtol=2e-3, atol=1e-5)
"""float16 probability scores: scikit-learn computes in float16 (every log, square and sum rounded
to 11 bits; errors up to 7e-4 relative seen), ours in float64."""


def _probability_checks(ours) -> list[Check]:
    def against_sklearn(name: str, inputs: Callable, **options) -> Check:
        check = _against_sklearn(name, _probability_scores, inputs, ours=ours,
                                 dtypes=DEFAULT_DTYPES, **options)
        return dataclasses.replace(check, tolerances={torch.float16: _HALF_PROBABILITIES})
    binary, multiclass = _as_probabilities(_rare_scored), _as_probabilities(_multiclass_scored)
    return [
        against_sklearn("brier_score_loss, log_loss binary 1-10% positive", binary),
        against_sklearn("brier_score_loss, log_loss binary sample_weight", _weighted(binary)),
        against_sklearn("brier_score_loss pos_label=0", binary, pos_label=0),
        against_sklearn("brier_score_loss, log_loss binary classes 3 and 7",
                        _labelled_3_and_7(binary)),
        against_sklearn("brier_score_loss, log_loss binary as two columns", _two_columns),
        against_sklearn("brier_score_loss, log_loss multiclass", multiclass),
        against_sklearn("brier_score_loss, log_loss 3 classes",
                        _as_probabilities(functools.partial(_multiclass_scored, classes=3))),
        against_sklearn("brier_score_loss, log_loss multiclass sample_weight",
                        _weighted(multiclass)),
        against_sklearn("brier_score_loss, log_loss multiclass labels=[0, 1, 2, 3, 5]",
                        _as_probabilities(functools.partial(_multiclass_scored, absent=1)),
                        labels=[0, 1, 2, 3, 5]),
    ]


def build_checks(ours) -> tuple[Check, ...]:
    """Every check of the functions of `ours` (a module with our names) against scikit-learn."""
    return (*_label_checks(ours), *_threshold_checks(ours), *_probability_checks(ours))
