"""helpers.metrics against scikit-learn: values, warnings and errors on random data (empty classes
and all-negative predictions included), the streaming accumulator, the error messages, and
mutants that the same comparisons must catch: the scores from counts, the threshold curves and
ROC AUC, and the scores of predicted probabilities."""

import inspect
import math
import sys
import types
import warnings
from typing import NamedTuple

import numpy as np
import pytest
import sklearn.metrics as sk
import torch
from hypothesis import Phase, assume, find, given, settings
from hypothesis import strategies as st

from helpers import metrics as M
from helpers import verify as V
from helpers.data import breast_cancer

PROPERTY = settings(max_examples=60, deadline=None)
Y = torch.tensor([0, 1, 1, 0])
Y3 = torch.tensor([0, 1, 2, 2])
S = torch.tensor([0.2, 0.9, 0.6, 0.1])
P3 = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]],
                  dtype=torch.float64)
SCORES = ("precision_score", "recall_score", "f1_score", "fbeta_score",
          "precision_recall_fscore_support")


# --------------------------------------------------------------------------------------------
# One comparison, used by the property tests and the mutation tests alike
# --------------------------------------------------------------------------------------------


def outcome(fn, *args, **kwargs):
    """(result, error class or None, [(warning category, message)]) of one call."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result, error = fn(*args, **kwargs), None
        except ValueError as raised:  # scikit-learn's InvalidParameterError is one too
            result, error = None, ValueError
            del raised
        except NotImplementedError as raised:  # roc_auc_score(multi_class="ovo", average=None)
            result, error = None, NotImplementedError
            del raised
    return result, error, [(w.category, str(w.message)) for w in caught]


def api_warnings(caught):
    """The warnings that are part of scikit-learn's behaviour: not NumPy's RuntimeWarnings about
    its own 0 / 0 (balanced accuracy adjusted with one class, one-vs-one AUC of no pair)."""
    return [(category, message) for category, message in caught if category is not RuntimeWarning]


def assert_values_equal(ours, theirs, where="result"):
    if theirs is None or ours is None:
        assert ours is None and theirs is None, f"{where}: ours {ours!r}, sklearn {theirs!r}"
        return
    if isinstance(theirs, tuple | list):
        assert isinstance(ours, tuple | list) and len(ours) == len(theirs), where
        for i, (o, t) in enumerate(zip(ours, theirs)):
            assert_values_equal(o, t, f"{where}[{i}]")
        return
    assert isinstance(ours, torch.Tensor), f"{where}: expected a tensor, got {type(ours)}"
    expected = theirs.cpu() if isinstance(theirs, torch.Tensor) else torch.as_tensor(
        np.array(theirs))
    torch.testing.assert_close(ours.cpu(), expected, rtol=1e-12,
                               atol=1e-12, equal_nan=True, check_dtype=False,
                               msg=lambda m: f"{where}: {m}")


def as_numpy(kwargs):
    return {k: np.array(v) if isinstance(v, list) else v for k, v in kwargs.items()}


def as_torch(kwargs):
    return {k: torch.as_tensor(np.array(v)) if isinstance(v, list) else v
            for k, v in kwargs.items()}


def assert_same_as_sklearn(module, name, *data, **kwargs):
    """`module.name` gives what `sklearn.metrics.name` gives: value, error and warnings."""
    ours = outcome(getattr(module, name), *[torch.as_tensor(np.array(d)) for d in data],
                   **as_torch(kwargs))
    theirs = outcome(getattr(sk, name), *[np.array(d) for d in data], **as_numpy(kwargs))
    assert ours[1] == theirs[1], f"{name}: ours raised {ours[1]}, sklearn {theirs[1]}"
    assert ours[2] == api_warnings(theirs[2]), f"{name}: warnings differ:\n{ours[2]}\n{theirs[2]}"
    assert_values_equal(ours[0], theirs[0], name)


def disagrees(module, name, case) -> bool:
    try:
        assert_same_as_sklearn(module, name, *case["data"], **case["kwargs"])
    except AssertionError:
        return True
    return False


# --------------------------------------------------------------------------------------------
# Random cases
# --------------------------------------------------------------------------------------------


@st.composite
def label_cases(draw, function="precision_recall_fscore_support"):
    """Labels with empty classes (in `labels` only, or in y_pred only), all-negative predictions,
    zero and non-zero sample weights, and every option of `function`."""
    n_classes, n = draw(st.integers(1, 4)), draw(st.integers(1, 25))
    shift = draw(st.sampled_from([0, -1, 3]))
    label = st.integers(shift, shift + n_classes - 1)
    y_true = draw(st.lists(label, min_size=n, max_size=n))
    all_negative = st.just([shift] * n)
    y_pred = draw(st.one_of(all_negative, st.lists(label, min_size=n, max_size=n)))
    kwargs = {}
    weight = st.sampled_from([0.0, 0.5, 1.0, 2.0]) | st.floats(0.01, 5.0).map(lambda w: round(w, 3))
    weights = draw(st.none() | st.lists(weight, min_size=n, max_size=n).filter(any))
    if weights is not None:
        kwargs["sample_weight"] = weights
    if function == "accuracy_score":
        kwargs["normalize"] = draw(st.booleans())
        return {"data": (y_true, y_pred), "kwargs": kwargs}
    if function in ("balanced_accuracy_score", "matthews_corrcoef"):
        if function == "balanced_accuracy_score":
            kwargs["adjusted"] = draw(st.booleans())
        return {"data": (y_true, y_pred), "kwargs": kwargs}
    kwargs["labels"] = draw(st.none() | st.lists(st.integers(shift - 1, shift + n_classes + 1),
                                                 min_size=1, max_size=5, unique=True))
    if function == "confusion_matrix":
        kwargs["normalize"] = draw(st.sampled_from(M.NORMALIZATIONS))
        return {"data": (y_true, y_pred), "kwargs": kwargs}
    kwargs["average"] = draw(st.sampled_from(M.AVERAGES))
    kwargs["zero_division"] = draw(st.sampled_from(M.ZERO_DIVISIONS))
    kwargs["pos_label"] = draw(st.sampled_from([1, 0, shift + 1]))
    if function in ("fbeta_score", "precision_recall_fscore_support"):
        kwargs["beta"] = draw(st.sampled_from([0.0, 0.5, 1.0, 2.0, math.inf]))
    return {"data": (y_true, y_pred), "kwargs": kwargs}


@st.composite
def scored_cases(draw, function="precision_recall_curve"):
    """Scores with ties, labels binary or not, every pos_label, weights with zeros."""
    n = draw(st.integers(1, 25))
    classes = draw(st.sampled_from([(0, 1), (-1, 1), (0, 2), (0, 1, 2), (0,), (1,)]))
    y_true = draw(st.lists(st.sampled_from(classes), min_size=n, max_size=n))
    score = st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]) | st.floats(-3, 3).map(lambda s: round(s, 3))
    y_score = draw(st.lists(score, min_size=n, max_size=n))
    kwargs = {}
    weights = draw(st.none() | st.lists(st.sampled_from([0.0, 1.0, 2.5]), min_size=n,
                                        max_size=n).filter(any))
    if weights is not None:
        kwargs["sample_weight"] = weights
    if function == "roc_auc_score":  # binary: the positive class is the greater label
        kwargs["max_fpr"] = draw(st.sampled_from([None, 1.0, 0.5, 0.1]) | st.floats(0.01, 1.0))
        kwargs["average"] = draw(st.sampled_from(["macro", "weighted", "micro", "samples", None]))
        return {"data": (y_true, y_score), "kwargs": kwargs}
    if function == "average_precision_score":
        kwargs["pos_label"] = draw(st.sampled_from([0, 1, 2]))
    else:
        kwargs["pos_label"] = draw(st.sampled_from([None, 0, 1, 2]))
    if function in ("precision_recall_curve", "roc_curve"):
        kwargs["drop_intermediate"] = draw(st.booleans())
    return {"data": (y_true, y_score), "kwargs": kwargs}


def probability_rows(width: int):
    """Rows of `width` probabilities from small counts: they sum to 1, and many are tied."""
    counts = st.lists(st.integers(0, 3), min_size=width, max_size=width).filter(any)
    return counts.map(lambda row: [c / sum(row) for c in row])


@st.composite
def multiclass_score_cases(draw):
    """roc_auc_score on 3 or 4 columns of probabilities: y_true from some of the classes,
    labels right, unordered, repeated or missing a class, and every option."""
    width, n = draw(st.integers(3, 4)), draw(st.integers(1, 25))
    y_true = draw(st.lists(st.integers(0, width - 1), min_size=n, max_size=n))
    y_score = draw(st.lists(probability_rows(width), min_size=n, max_size=n))
    if draw(st.integers(0, 9)) == 0:  # a row that does not sum to 1
        y_score[0] = [1.1 * p for p in y_score[0]]
    kwargs = {"multi_class": draw(st.sampled_from(["ovr", "ovr", "ovo", "raise"])),
              "average": draw(st.sampled_from(["macro", "weighted", "micro", None, "samples"]))}
    kwargs["labels"] = draw(st.sampled_from([None, None, list(range(width)),
                                             [*range(width - 1), width + 2],
                                             [1, 0, *range(2, width)], [0, 0, *range(width - 2)],
                                             list(range(1, width + 1))]))
    weights = draw(st.none() | st.lists(st.sampled_from([0.0, 1.0, 2.5]), min_size=n,
                                        max_size=n).filter(any))
    if weights is not None:
        kwargs["sample_weight"] = weights
    if draw(st.integers(0, 9)) == 0:
        kwargs["max_fpr"] = 0.5
    # scikit-learn divides by zero (ZeroDivisionError) for a weighted one-vs-one without pairs
    assume(not (kwargs["multi_class"] == "ovo" and kwargs["average"] == "weighted"
                and len(set(y_true)) < 2))
    return {"data": (y_true, y_score), "kwargs": kwargs}


@st.composite
def probability_cases(draw, function="log_loss"):
    """Probabilities of one class (N,) or of 2 to 4 (N, C), 0 and 1 among them, sometimes out of
    [0, 1] or not summing to 1; y_true binary, multiclass or a single class; every option. Labels
    go as tuples, which both sides print alike in their warning about unordered labels."""
    n = draw(st.integers(1, 25))
    classes = draw(st.sampled_from([(0, 1), (-1, 1), (0, 2), (0,), (1,), (2,), (0, 1, 2),
                                    (0, 1, 2, 3)]))
    y_true = draw(st.lists(st.sampled_from(classes), min_size=n, max_size=n))
    width = draw(st.sampled_from([None, None, 2, 3, 4]))  # None: the positive class's (N,)
    if width is None:
        p = st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]) | st.floats(0, 1).map(lambda p: round(p, 3))
        y_proba = draw(st.lists(p, min_size=n, max_size=n))
        if draw(st.integers(0, 9)) == 0:
            y_proba[0] = draw(st.sampled_from([-0.1, 1.1]))
    else:
        y_proba = draw(st.lists(probability_rows(width), min_size=n, max_size=n))
        if draw(st.integers(0, 9)) == 0:
            y_proba[0] = [draw(st.sampled_from([0.9, 1.05])) * p for p in y_proba[0]]
    kwargs = {"labels": draw(st.sampled_from([None, None, (0, 1), (0, 1, 2), (0, 1, 2, 3),
                                              (2, 0, 1), (-1, 1), (0, 2), (1, 1, 0), (1,)]))}
    weights = draw(st.none() | st.lists(st.sampled_from([0.0, 0.5, 1.0, 3.0]), min_size=n,
                                        max_size=n).filter(any))
    if weights is not None:
        kwargs["sample_weight"] = weights
    if function == "brier_score_loss":
        kwargs["pos_label"] = draw(st.sampled_from([None, 0, 1, 2]))
        kwargs["scale_by_half"] = draw(st.sampled_from(["auto", True, False]))
    else:
        kwargs["normalize"] = draw(st.booleans())
    return {"data": (y_true, y_proba), "kwargs": kwargs}


# --------------------------------------------------------------------------------------------
# Property tests: every metric equals scikit-learn's, warnings and errors included
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SCORES)
@PROPERTY
@given(data=st.data())
def test_scores_match_sklearn(name, data):
    case = data.draw(label_cases(name))
    assert_same_as_sklearn(M, name, *case["data"], **case["kwargs"])


@pytest.mark.parametrize("name", ["confusion_matrix", "accuracy_score"])
@PROPERTY
@given(data=st.data())
def test_confusion_matrix_and_accuracy_match_sklearn(name, data):
    case = data.draw(label_cases(name))
    assert_same_as_sklearn(M, name, *case["data"], **case["kwargs"])


@pytest.mark.parametrize("name", ["confusion_matrix_at_thresholds", "precision_recall_curve",
                                  "average_precision_score"])
@PROPERTY
@given(data=st.data())
def test_threshold_tools_match_sklearn(name, data):
    case = data.draw(scored_cases(name))
    assert_same_as_sklearn(M, name, *case["data"], **case["kwargs"])


@pytest.mark.parametrize("name", ["balanced_accuracy_score", "matthews_corrcoef"])
@PROPERTY
@given(data=st.data())
def test_balanced_accuracy_and_mcc_match_sklearn(name, data):
    case = data.draw(label_cases(name))
    assert_same_as_sklearn(M, name, *case["data"], **case["kwargs"])


@pytest.mark.parametrize("name", ["roc_curve", "roc_auc_score"])
@PROPERTY
@given(data=st.data())
def test_roc_curve_and_binary_auc_match_sklearn(name, data):
    case = data.draw(scored_cases(name))
    assert_same_as_sklearn(M, name, *case["data"], **case["kwargs"])


@PROPERTY
@given(case=multiclass_score_cases())
def test_multiclass_roc_auc_matches_sklearn(case):
    assert_same_as_sklearn(M, "roc_auc_score", *case["data"], **case["kwargs"])


@pytest.mark.parametrize("name", ["brier_score_loss", "log_loss"])
@PROPERTY
@given(data=st.data())
def test_probability_scores_match_sklearn(name, data):
    case = data.draw(probability_cases(name))
    assert_same_as_sklearn(M, name, *case["data"], **case["kwargs"])


def test_the_undefined_metric_warnings_are_sklearns():
    with pytest.warns(M.UndefinedMetricWarning, match="^Precision is ill-defined and being set to "
                      "0.0 due to no predicted samples. Use `zero_division` parameter"):
        assert M.precision_score(torch.tensor([0, 1]), torch.tensor([0, 0])) == 0
    with pytest.warns(M.UndefinedMetricWarning, match="^Recall is ill-defined and being set to "
                      "0.0 in labels with no true samples"):
        M.recall_score(torch.tensor([0, 0]), torch.tensor([1, 2]), average="macro")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit zero_division is silent
        for zero_division in M.ZERO_DIVISIONS[1:]:
            M.precision_score(torch.tensor([0, 1]), torch.tensor([0, 0]),
                              zero_division=zero_division)


def test_nan_zero_division_leaves_the_label_out_of_the_average():
    y_true, y_pred = torch.tensor([0, 0, 1, 1]), torch.tensor([0, 0, 0, 0])  # nothing predicted 1
    per_label = M.precision_score(y_true, y_pred, average=None, zero_division=math.nan)
    assert per_label[0] == 0.5 and per_label[1].isnan()
    assert M.precision_score(y_true, y_pred, average="macro", zero_division=math.nan) == 0.5
    assert M.precision_score(y_true, y_pred, average="macro", zero_division=0.0) == 0.25
    assert M.precision_score(y_true, y_pred, average="macro", zero_division=1.0) == 0.75
    only_undefined = M.precision_score(y_true, y_pred, labels=[1], average="macro",
                                       zero_division=math.nan)
    assert only_undefined.isnan()


def test_f_score_comes_from_counts_not_from_undefined_precision():
    # precision is undefined (nothing predicted positive), recall is 0: F1 = 2TP/(2TP+FP+FN) = 0
    # even with zero_division=1, as in scikit-learn >= 1.3
    f1 = M.f1_score(torch.tensor([1, 0]), torch.tensor([0, 0]), zero_division=1.0)
    assert f1 == 0.0 == sk.f1_score([1, 0], [0, 0], zero_division=1.0)


def test_outputs_are_tensors_on_the_input_device_with_sklearn_dtypes():
    y_true, y_pred = torch.tensor([0, 1, 2, 2]), torch.tensor([0, 2, 2, 1])
    assert M.confusion_matrix(y_true, y_pred).dtype == torch.int64
    assert M.confusion_matrix(y_true, y_pred, normalize="all").dtype == torch.float64
    precision, recall, f1, support = M.precision_recall_fscore_support(y_true, y_pred)
    assert precision.shape == (3,) and precision.dtype == torch.float64
    assert support.dtype == torch.int64 and support.tolist() == [1, 1, 2]
    assert M.f1_score(y_true, y_pred, average="macro").shape == ()
    weighted = M.precision_recall_fscore_support(y_true, y_pred, sample_weight=torch.ones(4))
    assert weighted[3].dtype == torch.float64
    assert M.confusion_matrix([0, 1], [1, 1], sample_weight=[2, 3]).dtype == torch.int64


# --------------------------------------------------------------------------------------------
# The streaming accumulator
# --------------------------------------------------------------------------------------------


@PROPERTY
@given(case=label_cases(), cuts=st.lists(st.integers(0, 25), max_size=4))
def test_streaming_equals_the_function_on_the_concatenated_batches(case, cuts):
    y_true, y_pred = (torch.as_tensor(np.array(y)) for y in case["data"])
    kwargs = as_torch(case["kwargs"])
    weight = kwargs.pop("sample_weight", None)
    edges = [0, *sorted(min(c, len(y_true)) for c in cuts), len(y_true)]  # empty batches too
    stream = M.StreamingConfusionMatrix()
    for start, stop in zip(edges, edges[1:]):
        stream.update(y_true[start:stop], y_pred[start:stop],
                      None if weight is None else weight[start:stop])
    for name in (*SCORES, "balanced_accuracy_score", "matthews_corrcoef"):
        options = {k: v for k, v in kwargs.items()
                   if k in inspect.signature(getattr(stream, name)).parameters}
        if name == "fbeta_score":
            options.setdefault("beta", 2.0)
        whole = outcome(getattr(M, name), y_true, y_pred, sample_weight=weight, **options)
        streamed = outcome(getattr(stream, name), **options)
        assert streamed[1:] == whole[1:], name
        assert_values_equal(streamed[0], whole[0], name)
    whole = outcome(M.confusion_matrix, y_true, y_pred, sample_weight=weight)
    streamed = outcome(stream.confusion_matrix)
    assert streamed[1:] == whole[1:]
    assert_values_equal(streamed[0], whole[0], "confusion_matrix")


def test_the_mean_of_per_batch_precisions_is_not_the_precision():
    # batch 1: one positive prediction, right; batch 2: nine positive predictions, one right
    y_true = [torch.tensor([1, 0]), torch.tensor([1] + [0] * 8 + [0])]
    y_pred = [torch.tensor([1, 0]), torch.tensor([1] * 9 + [0])]
    per_batch = [M.precision_score(t, p) for t, p in zip(y_true, y_pred)]
    stream = M.StreamingConfusionMatrix()
    for t, p in zip(y_true, y_pred):
        stream.update(t, p)
    whole = sk.precision_score(torch.cat(y_true).numpy(), torch.cat(y_pred).numpy())
    assert stream.precision_score() == whole == pytest.approx(2 / 10)
    assert torch.stack(per_batch).mean() == pytest.approx((1 + 1 / 9) / 2)  # 0.556, not 0.2


def test_the_stream_grows_with_new_classes_and_remembers_them():
    stream = M.StreamingConfusionMatrix().update(torch.tensor([0, 0]), torch.tensor([0, 1]))
    stream.update(torch.tensor([5]), torch.tensor([2]))
    assert stream.classes.tolist() == [0, 1, 2, 5]
    assert stream.matrix.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0]]
    assert stream.true_classes.tolist() == [0, 5]


# --------------------------------------------------------------------------------------------
# Threshold tools
# --------------------------------------------------------------------------------------------


def test_metrics_at_a_curve_threshold_are_the_curve_point():
    generator = torch.Generator().manual_seed(7)
    y_true = (torch.rand(80, generator=generator) < 0.4).long()
    y_score = (torch.rand(80, generator=generator, dtype=torch.float64) + 0.4 * y_true).round(
        decimals=1)
    precision, recall, thresholds = M.precision_recall_curve(y_true, y_score)
    for i, threshold in enumerate(thresholds.tolist()):
        at = M.metrics_at_threshold(y_true, y_score, threshold)
        assert (at.precision, at.recall) == (precision[i], recall[i])
        (tn, fp), (fn, tp) = at.confusion_matrix.tolist()
        assert tp + fn == y_true.sum() and tn + fp + fn + tp == len(y_true)
        assert at.f1_score == pytest.approx(2 * tp / (2 * tp + fp + fn))
    above = M.metrics_at_threshold(y_true, y_score, 2.0, zero_division=1.0)
    assert (above.precision, above.recall) == (precision[-1], recall[-1]) == (1.0, 0.0)


def test_average_precision_is_the_step_integral_of_the_curve():
    y_true, y_score = torch.tensor([0, 0, 1, 1]), torch.tensor([0.1, 0.4, 0.35, 0.8])
    precision, recall, _ = M.precision_recall_curve(y_true, y_score)
    # recall steps 0 -> 0.5 at precision 1, 0.5 -> 1 at precision 2/3
    assert M.average_precision_score(y_true, y_score) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert precision.tolist() == pytest.approx([0.5, 2 / 3, 0.5, 1.0, 1.0])


def test_average_precision_without_positives_is_plus_zero_as_in_sklearn():
    """No positive: every recall is 1, the sum is -0.0; scikit-learn returns max(0.0, -0.0) =
    0.0, and so must we (a clamp keeps the sign)."""
    y_true, y_score = [0, 0, 0], [0.2, 0.7, 0.4]
    assert_same_as_sklearn(M, "average_precision_score", y_true, y_score)
    with pytest.warns(UserWarning, match="No positive class found in y_true"):
        ours = M.average_precision_score(torch.tensor(y_true), torch.tensor(y_score)).item()
    with pytest.warns(UserWarning, match="No positive class found in y_true"):
        theirs = sk.average_precision_score(y_true, y_score)
    assert ours == theirs == 0 and math.copysign(1, ours) == math.copysign(1, theirs) == 1


# --------------------------------------------------------------------------------------------
# Labels as scikit-learn takes them: floats holding whole numbers, pos_label=1.0, labels=range
# --------------------------------------------------------------------------------------------

FLOAT_LABEL_CASES = {
    "accuracy": ("accuracy_score", ([0.0, 1, 1, 0, 1], [0, 1, 0, 0, 1]), {}),
    "F1, both float": ("f1_score", ([0.0, 1, 1, 0, 1], [0.0, 1, 0, 0, 1]), {}),
    "F1 macro, three classes": ("f1_score", ([0.0, 1, 2, 2], [0, 2, 1, 2]), {"average": "macro"}),
    "F1, pos_label=0.0": ("f1_score", ([0, 1, 1, 0, 1], [0, 1, 0, 0, 1]), {"pos_label": 0.0}),
    "precision, pos_label=1.0": (
        "precision_score", ([0, 1, 1, 0, 1], [0, 1, 0, 0, 1]), {"pos_label": 1.0}),
    "precision, pos_label=0.5": (
        "precision_score", ([0, 1, 1, 0, 1], [0, 1, 0, 0, 1]), {"pos_label": 0.5}),
    "confusion matrix, labels=range(3)": (
        "confusion_matrix", ([0, 1, 1, 0, 1], [0, 1, 0, 0, 1]), {"labels": range(3)}),
    "F1 per class, labels=range(2)": (
        "f1_score", ([0.0, 1, 1, 0], [0, 1, 0, 0]), {"labels": range(2), "average": None}),
    "MCC": ("matthews_corrcoef", ([0.0, 1, 1, 0, 1], [0, 1, 0, 0, 1]), {}),
    "balanced accuracy": ("balanced_accuracy_score", ([-1.0, 1, 1, -1], [-1, 1, -1, -1]), {}),
    "labels 0.5: an error on both sides": ("f1_score", ([0.5, 1, 1, 0], [0, 1, 0, 0]), {}),
    "predictions 0.5: an error on both sides": ("accuracy_score", ([0, 1, 1, 0], [0.5, 1, 0, 0]),
                                                {}),
    "ROC curve": ("roc_curve", ([0.0, 1, 1, 0, 1], [0.1, 0.8, 0.4, 0.3, 0.9]), {}),
    "ROC curve, pos_label=1.0": (
        "roc_curve", ([0.0, 2, 2, 0, 2], [0.1, 0.8, 0.4, 0.3, 0.9]), {"pos_label": 2.0}),
    "ROC AUC": ("roc_auc_score", ([0.0, 1, 1, 0, 1], [0.1, 0.8, 0.4, 0.3, 0.9]), {}),
    "ROC AUC one-vs-rest, labels=range(3)": (
        "roc_auc_score", ([0.0, 1, 2, 2], P3.tolist()), {"multi_class": "ovr", "labels": range(3)}),
    "average precision": (
        "average_precision_score", ([0.0, 1, 1, 0, 1], [0.1, 0.8, 0.4, 0.3, 0.9]), {}),
    "average precision, pos_label=0.0": (
        "average_precision_score", ([0.0, 1, 1, 0, 1], [0.1, 0.8, 0.4, 0.3, 0.9]),
        {"pos_label": 0.0}),
    "PR curve, labels 0.5: an error on both sides": (
        "precision_recall_curve", ([0.0, 0.5, 1, 0], [0.1, 0.8, 0.4, 0.3]), {}),
    "log loss": ("log_loss", ([0.0, 1, 1, 0], [0.1, 0.8, 0.4, 0.3]), {}),
    "log loss, labels=range(3)": ("log_loss", ([0.0, 1, 2, 2], P3.tolist()), {"labels": range(3)}),
    "Brier score, pos_label=1.0": (
        "brier_score_loss", ([0.0, 1, 1, 0], [0.1, 0.8, 0.4, 0.3]), {"pos_label": 1.0}),
}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", sorted(FLOAT_LABEL_CASES))
def test_labels_as_sklearn_takes_them(case, dtype):
    """Float labels holding whole numbers (the 0.0 / 1.0 targets of a BCE loss), a float
    pos_label and labels=range(K) are what scikit-learn accepts; 0.5 is an error on both sides."""
    name, (y_true, second), kwargs = FLOAT_LABEL_CASES[case]
    y_true = np.array(y_true, dtype=dtype)
    assert_same_as_sklearn(M, name, y_true, second, **kwargs)


def test_float_labels_count_as_the_integer_labels_they_hold():
    y_true, y_pred = torch.tensor([0, 1, 2, 2, 1]), torch.tensor([0, 2, 2, 2, 1])
    stream = M.StreamingConfusionMatrix().update(y_true.float(), y_pred.double())
    assert stream.classes.dtype == torch.int64
    assert torch.equal(stream.confusion_matrix(), M.confusion_matrix(y_true, y_pred))
    assert torch.equal(M.confusion_matrix(y_true, y_pred, labels=range(3)),
                       M.confusion_matrix(y_true, y_pred, labels=[0, 1, 2]))


# --------------------------------------------------------------------------------------------
# Imbalanced data, ROC and probabilities: edge cases, each equal to scikit-learn's
# --------------------------------------------------------------------------------------------

ROWS = [[0.2, 0.3, 0.5], [0.6, 0.2, 0.2], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]
EDGE_CASES = {
    "balanced accuracy, one class in y_true": (
        "balanced_accuracy_score", ([0, 0, 0], [0, 0, 0]), {}),
    "balanced accuracy adjusted, one class in y_true: 0 / 0": (
        "balanced_accuracy_score", ([0, 0, 0], [0, 0, 0]), {"adjusted": True}),
    "balanced accuracy adjusted, one class in y_true, another predicted: -0.5 / 0": (
        "balanced_accuracy_score", ([0, 0, 0], [0, 1, 0]), {"adjusted": True}),
    "balanced accuracy, every prediction one class": (
        "balanced_accuracy_score", ([0, 1, 1, 2], [1, 1, 1, 1]), {"adjusted": True}),
    "MCC, one class in y_true": ("matthews_corrcoef", ([0, 0, 0], [0, 0, 0]), {}),
    "MCC, every prediction one class": ("matthews_corrcoef", ([0, 1, 1, 2], [1, 1, 1, 1]), {}),
    "MCC, inverted": ("matthews_corrcoef", ([0, 1, 1, 0], [1, 0, 0, 1]), {}),
    "MCC, perfect multiclass": ("matthews_corrcoef", ([0, 1, 2, 2], [0, 1, 2, 2]), {}),
    "MCC, weights of 0": ("matthews_corrcoef", ([0, 1, 2, 2], [0, 2, 1, 2]),
                          {"sample_weight": [1.0, 0.0, 3.0, 0.0]}),
    "ROC curve, no negative sample": ("roc_curve", ([1, 1, 1], [0.1, 0.5, 0.9]), {}),
    "ROC curve, no positive sample, tied scores": ("roc_curve", ([0, 0], [0.3, 0.3]), {}),
    "ROC curve, constant scores": ("roc_curve", ([0, 1, 0, 1], [0.5] * 4), {}),
    "ROC curve, ties kept with drop_intermediate": (
        "roc_curve", ([0, 1, 1, 0, 1, 0], [0.1, 0.4, 0.4, 0.4, 0.8, 0.8]), {}),
    "ROC AUC, constant scores": ("roc_auc_score", ([0, 1, 0, 1], [0.5] * 4), {}),
    "ROC AUC, perfect": ("roc_auc_score", ([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]), {}),
    "ROC AUC, perfect, max_fpr=0.2": (
        "roc_auc_score", ([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]), {"max_fpr": 0.2}),
    "ROC AUC, inverted": ("roc_auc_score", ([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]), {}),
    "ROC AUC, inverted, max_fpr=0.2": (
        "roc_auc_score", ([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]), {"max_fpr": 0.2}),
    "ROC AUC, one class in y_true: NaN, not an error": (
        "roc_auc_score", ([1, 1, 1], [0.1, 0.2, 0.3]), {}),
    "ROC AUC, the negatives all weigh 0": (
        "roc_auc_score", ([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4]), {"sample_weight": [0, 1.0, 0, 1]}),
    "ROC AUC one-vs-rest, a class of labels absent from y_true": (
        "roc_auc_score", ([0, 1, 1, 1], ROWS), {"multi_class": "ovr", "labels": [0, 1, 2]}),
    "ROC AUC one-vs-one": ("roc_auc_score", ([0, 1, 2, 2], ROWS), {"multi_class": "ovo"}),
    "ROC AUC one-vs-one, no pair: NaN": (
        "roc_auc_score", ([1, 1, 1, 1], ROWS), {"multi_class": "ovo", "labels": [0, 1, 2]}),
    "log loss, probabilities 0 and 1, right": ("log_loss", ([0, 1], [0.0, 1.0]), {}),
    "log loss, probabilities 0 and 1, wrong": ("log_loss", ([0, 1], [1.0, 0.0]), {}),
    "log loss, one class in y_true, labels given": (
        "log_loss", ([1, 1], [0.3, 0.9]), {"labels": [0, 1]}),
    "log loss, multiclass with zeros": (
        "log_loss", ([0, 1, 2], [[1.0, 0, 0], [0, 0, 1], [0.5, 0.5, 0]]), {}),
    "log loss, sum with weights": (
        "log_loss", ([0, 1, 1, 0], [0.1, 0.9, 0.8, 0.3]),
        {"normalize": False, "sample_weight": [1, 2.0, 0, 1]}),
    "Brier score, probabilities 0 and 1": ("brier_score_loss", ([0, 1, 1], [0.0, 1.0, 0.0]), {}),
    "Brier score, one class in y_true": ("brier_score_loss", ([2, 2, 2], [0.2, 0.9, 1.0]), {}),
    "Brier score, pos_label absent from y_true": (
        "brier_score_loss", ([0, 1, 1], [0.1, 0.9, 0.7]), {"pos_label": 5}),
    "Brier score, multiclass, range [0, 2]": (
        "brier_score_loss", ([0, 1, 2], [[0, 0, 1.0], [0, 0, 1], [0.5, 0.5, 0]]), {}),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
def test_edge_cases_match_sklearn(case):
    name, data, kwargs = EDGE_CASES[case]
    assert_same_as_sklearn(M, name, *data, **kwargs)


def test_perfect_inverted_and_constant_predictions_score_what_they_should():
    y_true, rising = torch.tensor([0, 0, 1, 1]), torch.tensor([0.1, 0.2, 0.3, 0.4])
    assert M.roc_auc_score(y_true, rising) == 1 and M.roc_auc_score(y_true, -rising) == 0
    assert M.roc_auc_score(y_true, torch.full((4,), 0.5)) == 0.5  # ties count one half
    assert M.roc_auc_score(y_true, rising, max_fpr=0.2) == 1  # McClish: perfect stays 1
    assert M.matthews_corrcoef(y_true, y_true) == 1
    assert M.matthews_corrcoef(y_true, 1 - y_true) == -1
    assert M.matthews_corrcoef(y_true, torch.zeros(4, dtype=torch.long)) == 0  # undefined: 0
    assert M.balanced_accuracy_score(y_true, 1 - y_true, adjusted=True) == -1
    majority = torch.tensor([0] * 95 + [1] * 5), torch.zeros(100, dtype=torch.long)
    assert M.accuracy_score(*majority) == 0.95 and M.balanced_accuracy_score(*majority) == 0.5
    eps = torch.finfo(torch.float64).eps
    wrong = M.log_loss(torch.tensor([0, 1]), torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert wrong == pytest.approx(-math.log(eps))  # 36.04: clipped, not infinite
    eps32 = torch.finfo(torch.float32).eps  # the clipping follows y_proba's dtype
    assert M.log_loss(torch.tensor([0, 1]), torch.tensor([1.0, 0.0])) == pytest.approx(
        -math.log(eps32))
    fpr, tpr, thresholds = M.roc_curve(y_true, torch.full((4,), 0.5))
    assert fpr.tolist() == tpr.tolist() == [0, 1] and thresholds.tolist() == [math.inf, 0.5]


def test_one_vs_one_without_a_pair_is_nan_where_sklearn_divides_by_zero():
    y_true, y_score = torch.tensor([1, 1, 1, 1]), torch.tensor(ROWS, dtype=torch.float64)
    for average in ("macro", "weighted"):
        assert M.roc_auc_score(y_true, y_score, multi_class="ovo", labels=[0, 1, 2],
                               average=average).isnan()
    with pytest.raises(ZeroDivisionError):  # the deliberate difference, stated in the Notes
        sk.roc_auc_score(y_true.numpy(), y_score.numpy(), multi_class="ovo", labels=[0, 1, 2],
                         average="weighted")


@pytest.mark.parametrize("call", [
    lambda w: M.balanced_accuracy_score(Y, Y, sample_weight=w),
    lambda w: M.matthews_corrcoef(Y, Y, sample_weight=w),
    lambda w: M.roc_curve(Y, S, sample_weight=w),
    lambda w: M.roc_auc_score(Y, S, sample_weight=w),
    lambda w: M.roc_auc_score(Y3, P3, multi_class="ovr", sample_weight=w),
    lambda w: M.log_loss(Y, S, sample_weight=w),
    lambda w: M.brier_score_loss(Y, S, sample_weight=w),
])
def test_all_weights_zero_is_an_error(call):
    with pytest.raises(ValueError, match="expected at least one non-zero sample weight"):
        call(torch.zeros(4))


@pytest.mark.parametrize("name", ["balanced_accuracy_score", "matthews_corrcoef", "roc_curve",
                                  "roc_auc_score", "log_loss", "brier_score_loss"])
def test_empty_input_is_an_error_as_in_sklearn(name):
    labels_only = name in ("balanced_accuracy_score", "matthews_corrcoef")
    second = torch.zeros(0, dtype=torch.long if labels_only else torch.float64)
    with pytest.raises(ValueError, match="expected at least one sample"):
        getattr(M, name)(torch.zeros(0, dtype=torch.long), second)
    with pytest.raises(ValueError):
        getattr(sk, name)(np.zeros(0, dtype=int), second.numpy())


def test_a_partial_auc_without_negatives_of_weight_is_an_error():
    with pytest.warns(M.UndefinedMetricWarning, match="No negative samples in y_true"):
        with pytest.raises(ValueError, match="expected negative samples of non-zero weight for "
                           "max_fpr=0.5, but every negative sample has weight 0"):
            M.roc_auc_score(Y, S, max_fpr=0.5, sample_weight=Y.double())


# the warnings of the new functions: the same category and message as scikit-learn's
NEW_WARNINGS = {
    "balanced accuracy, a class only predicted": (
        "balanced_accuracy_score", ([0, 0, 1], [0, 2, 1]), {}, UserWarning,
        "y_pred contains classes not in y_true"),
    "MCC, one label": (
        "matthews_corrcoef", ([0, 0], [0, 0]), {}, UserWarning,
        "A single label was found in 'y_true' and 'y_pred'. For the confusion matrix to have the "
        "correct shape, use the 'labels' parameter to pass all known labels."),
    "ROC curve, no negative sample": (
        "roc_curve", ([1, 1], [0.2, 0.4]), {}, M.UndefinedMetricWarning,
        "No negative samples in y_true, false positive value should be meaningless"),
    "ROC curve, no positive sample": (
        "roc_curve", ([0, 0], [0.2, 0.4]), {}, M.UndefinedMetricWarning,
        "No positive samples in y_true, true positive value should be meaningless"),
    "ROC AUC, one class": (
        "roc_auc_score", ([1, 1], [0.2, 0.4]), {}, M.UndefinedMetricWarning,
        "Only one class is present in y_true. ROC AUC score is not defined in that case."),
    "log loss, rows not summing to 1": (
        "log_loss", ([0, 1, 2, 2], [[p * 1.01 for p in row] for row in ROWS]), {}, UserWarning,
        "The y_prob values do not sum to one. Make sure to pass probabilities."),
    "Brier score, rows not summing to 1": (
        "brier_score_loss", ([0, 1, 2, 2], [[p * 0.9 for p in row] for row in ROWS]), {},
        UserWarning, "The y_prob values do not sum to one. Make sure to pass probabilities."),
    "log loss, labels out of order": (
        "log_loss", ([0, 1, 2, 2], ROWS), {"labels": [2, 0, 1]}, UserWarning,
        "Labels passed were [2, 0, 1]. But this function assumes labels are ordered "
        "lexicographically. Pass the ordered labels=[0, 1, 2] and ensure that the columns of "
        "y_prob correspond to this ordering."),
}


@pytest.mark.parametrize("case", sorted(NEW_WARNINGS))
def test_the_new_warnings_are_sklearns(case):
    name, data, kwargs, category, message = NEW_WARNINGS[case]
    ours = outcome(getattr(M, name), *[torch.as_tensor(np.array(d)) for d in data], **kwargs)
    theirs = outcome(getattr(sk, name), *[np.array(d) for d in data], **kwargs)
    assert ours[2] == api_warnings(theirs[2]) == [(category, message)]
    with pytest.warns(category) as caught:  # and they point at the caller's line
        getattr(M, name)(*[torch.as_tensor(np.array(d)) for d in data], **kwargs)
    assert caught[0].filename == __file__


# --------------------------------------------------------------------------------------------
# Bad input: clear errors
# --------------------------------------------------------------------------------------------



@pytest.mark.parametrize("call, error, message", [
    (lambda: M.f1_score(Y, torch.tensor([0, 1, 1])), ValueError,
     r"expected y_true and y_pred of the same length, but got 4 and 3"),
    (lambda: M.accuracy_score(Y, S), ValueError,
     r"expected class labels in y_pred \(integers, or floats holding whole numbers such as 0.0 "
     r"and 1.0\), but got torch.float32 values such as 0.2 that are not; turn scores into labels "
     r"first, e.g. \(y_score >= 0.5\).long\(\)"),
    (lambda: M.accuracy_score(S, Y), ValueError,
     r"but got torch.float32 values such as 0.2 that are not; y_true holds each sample's true "
     r"class, not a probability: pass the hard labels"),
    (lambda: M.f1_score(Y.double().where(Y == 0, math.nan), Y), ValueError,
     r"expected class labels in y_true .* but got torch.float64 values such as nan that are not"),
    (lambda: M.roc_curve(Y * math.inf, S), ValueError, r"values such as nan that are not"),
    (lambda: M.confusion_matrix(Y, Y, labels=[0, 1.5]), ValueError,
     r"values such as 1.5 that are not; labels names classes, e.g. labels=\[0, 1, 2\] or "
     r"labels=range\(3\)"),
    (lambda: M.accuracy_score(Y.to(torch.complex64), Y), TypeError,
     r"expected integer class labels in y_true, but got torch.complex64 values"),
    (lambda: M.accuracy_score(torch.eye(4), Y), ValueError,
     r"but got shape \(4, 4\); for one-hot targets of shape \(N, C\), take each sample's "
     r"class: .argmax\(dim=1\)"),
    (lambda: M.precision_score(Y, Y[:, None]), ValueError,
     r"expected y_pred of shape \(N,\) with one class label per sample, but got shape \(4, 1\); "
     r"a column holds one value per sample: flatten it with .squeeze\(1\)"),
    (lambda: M.precision_score(Y, torch.rand(4, 3)), ValueError,
     r"but got shape \(4, 3\); for scores of shape \(N, C\), predict the labels with "
     r".argmax\(dim=1\)"),
    (lambda: M.precision_score(Y3, Y3), ValueError,
     r"average='binary' needs binary targets, but y_true and y_pred hold 3 classes \[0, 1, 2\]; "
     r"choose average='micro', 'macro' or 'weighted'"),
    (lambda: M.recall_score(Y, Y, average="mean"), ValueError,
     r"expected average to be one of 'binary', 'micro', 'macro', 'weighted' or None, but got "
     r"'mean'"),
    (lambda: M.recall_score(Y, Y, average="samples"), ValueError, r"multilabel"),
    (lambda: M.recall_score(Y, Y, zero_division="ignore"), ValueError,
     r"expected zero_division to be \"warn\", 0.0, 1.0 or nan, but got 'ignore'"),
    (lambda: M.recall_score(Y, Y, zero_division=0.5), ValueError, r"but got 0.5"),
    (lambda: M.fbeta_score(Y, Y, beta=-1), ValueError, r"expected beta >= 0 \(inf allowed\), "
     r"but got -1"),
    (lambda: M.precision_score(Y, Y, pos_label=2), ValueError,
     r"expected pos_label to be one of the labels \[0, 1\], but got pos_label=2"),
    (lambda: M.precision_score(Y, Y, pos_label=0.5), ValueError,
     r"expected pos_label to be a class label, a whole number such as 1 or 1.0, but got 0.5"),
    (lambda: M.roc_curve(Y, S, pos_label=math.nan), ValueError, r"but got nan"),
    (lambda: M.precision_score(Y, Y, pos_label="1"), TypeError,
     r"expected an integer pos_label \(a class label\), but got '1'"),
    (lambda: M.confusion_matrix(Y, Y, labels=[]), ValueError,
     r"expected at least one label in labels, but got none"),
    (lambda: M.confusion_matrix(Y, Y, labels=[1, 1]), ValueError,
     r"expected distinct labels, but got \[1, 1\]"),
    (lambda: M.confusion_matrix(Y, Y, labels=[5, 6]), ValueError,
     r"expected at least one of labels \[5, 6\] in y_true, but y_true holds only \[0, 1\]"),
    (lambda: M.confusion_matrix(Y, Y, normalize="rows"), ValueError,
     r"expected normalize to be one of \(None, 'true', 'pred', 'all'\), but got 'rows'"),
    (lambda: M.accuracy_score(Y[:0], Y[:0]), ValueError,
     r"expected at least one sample, but none was counted"),
    (lambda: M.accuracy_score(Y, Y, sample_weight=torch.ones(3)), ValueError,
     r"expected sample_weight of shape \(4,\) \(one real weight per sample\), but got "
     r"torch.float32 of shape \(3,\)"),
    (lambda: M.accuracy_score(Y, Y, sample_weight=torch.zeros(4)), ValueError,
     r"expected at least one non-zero sample weight, but every sample counted has weight 0"),
    (lambda: M.average_precision_score(Y, S, sample_weight=[0, 0, 0, 0]), ValueError,
     r"expected at least one non-zero sample weight"),
    (lambda: M.accuracy_score(Y, "0110"), TypeError,
     r"expected y_pred to be a tensor \(or a list or NumPy array\), but got str"),
    (lambda: M.accuracy_score(Y, ["a", "b", "b", "a"]), TypeError,
     r"expected numbers in y_pred, but got NumPy dtype <U1"),
    (lambda: M.accuracy_score(Y, Y.to("meta")), ValueError,
     r"expected y_true and y_pred on the same device, but got cpu and meta"),
    (lambda: M.StreamingConfusionMatrix().update(Y, Y).update(Y.to("meta"), Y.to("meta")),
     ValueError, r"expected every batch on cpu, where the first one was, but got one on meta"),
    (lambda: M.StreamingConfusionMatrix().f1_score(), ValueError,
     r"expected at least one sample, but none was counted"),
    (lambda: M.precision_recall_curve(Y, torch.tensor([0, 1, 1, 0])), TypeError,
     r"expected floating-point scores in y_score \(probabilities or logits\), but got "
     r"torch.int64"),
    (lambda: M.precision_recall_curve(Y, torch.rand(4, 2)), ValueError,
     r"expected y_score of shape \(N,\) with one score per sample, but got shape \(4, 2\); "
     r"score one class at a time"),
    (lambda: M.precision_recall_curve(Y, torch.tensor([0.1, math.nan, 0.2, 0.3])), ValueError,
     r"expected finite scores in y_score, but got 1 NaN or infinite values"),
    (lambda: M.precision_recall_curve(Y3, S), ValueError,
     r"expected binary y_true, but it holds 3 classes \[0, 1, 2\]; pass pos_label"),
    (lambda: M.precision_recall_curve(Y * 2, S), ValueError,
     r"y_true holds the classes \[0, 2\], so pos_label must be given"),
    (lambda: M.average_precision_score(Y3, S), ValueError,
     r"expected binary y_true, but it holds 3 classes \[0, 1, 2\]; score one class at a time"),
    (lambda: M.average_precision_score(Y * 2, S), ValueError,
     r"expected pos_label to be one of the labels \[0, 2\], but got pos_label=1"),
    (lambda: M.metrics_at_threshold(Y, S, "0.5"), TypeError,
     r"expected a real threshold, but got '0.5'"),
    # balanced accuracy and MCC
    (lambda: M.balanced_accuracy_score(Y, Y[:, None]), ValueError,
     r"expected y_pred of shape \(N,\) with one class label per sample, but got shape \(4, 1\)"),
    (lambda: M.matthews_corrcoef(Y / 2, Y), ValueError,
     r"expected class labels in y_true \(integers, or floats holding whole numbers"),
    (lambda: M.balanced_accuracy_score(Y, Y, adjusted="yes"), TypeError,
     r"expected adjusted to be True or False, but got 'yes'"),
    # ROC
    (lambda: M.roc_curve(Y, S[:, None]), ValueError,
     r"expected y_score of shape \(N,\) with one score per sample, but got shape \(4, 1\)"),
    (lambda: M.roc_auc_score(Y, S[:, None]), ValueError,
     r"but got shape \(4, 1\); a single column holds the score of the positive class: flatten "
     r"it with .squeeze\(1\)"),
    (lambda: M.roc_auc_score(Y / 2, S), ValueError, r"expected class labels in y_true"),
    (lambda: M.roc_auc_score(Y, Y), TypeError, r"expected floating-point scores in y_score "
     r"\(probabilities or logits\), but got torch.int64; convert them with .double\(\)"),
    (lambda: M.log_loss(Y, Y), TypeError, r"expected floating-point scores in y_proba "
     r"\(probabilities\), but got torch.int64; convert them with .double\(\)"),
    (lambda: M.roc_auc_score(Y, torch.stack([1 - S, S], 1)), ValueError,
     r"expected y_score of shape \(N,\) for binary y_true, but got shape \(4, 2\); pass the "
     r"scores of the positive class, y_score\[:, 1\]"),
    (lambda: M.roc_auc_score(Y3, S, multi_class="ovr"), ValueError,
     r"expected y_score of shape \(N, C\), one column per class, since y_true holds 3 classes, "
     r"but got shape \(4,\)"),
    (lambda: M.roc_auc_score(Y3, torch.cat([P3, torch.zeros(4, 1)], 1), multi_class="ovr"),
     ValueError, r"expected one column of y_score per class of y_true \[0, 1, 2\], but got 4 "
     r"columns; name the classes of the columns with labels="),
    (lambda: M.roc_auc_score(Y3, 1.1 * P3, multi_class="ovr"), ValueError,
     r"expected probabilities in y_score for multiclass ROC AUC, rows summing to 1, but got row "
     r"sums from 1.1"),
    (lambda: M.roc_auc_score(Y3, P3), ValueError,
     r"expected multi_class='ovr' or 'ovo' for multiclass y_true, but got 'raise'"),
    (lambda: M.roc_auc_score(Y3, P3, multi_class="ovx"), ValueError,
     r"expected multi_class to be 'raise', 'ovr' or 'ovo', but got 'ovx'"),
    (lambda: M.roc_auc_score(Y, S, average="mean"), ValueError,
     r"expected average to be one of 'micro', 'macro', 'samples', 'weighted' or None, but got "
     r"'mean'"),
    (lambda: M.roc_auc_score(Y3, P3, multi_class="ovr", average="samples"), ValueError,
     r"expected average in \('micro', 'macro', 'weighted', None\) for multiclass y_true with "
     r"multi_class='ovr', but got 'samples'"),
    (lambda: M.roc_auc_score(Y3, P3, multi_class="ovo", average="micro"), ValueError,
     r"expected average in \('macro', 'weighted'\)"),
    (lambda: M.roc_auc_score(Y3, P3, multi_class="ovo", average=None), NotImplementedError,
     r"average=None is not implemented for multi_class='ovo'"),
    (lambda: M.roc_auc_score(Y3, P3, multi_class="ovo", sample_weight=torch.ones(4)), ValueError,
     r"expected sample_weight=None for multi_class='ovo'"),
    (lambda: M.roc_auc_score(Y, S, max_fpr=0), ValueError,
     r"expected max_fpr in \(0, 1\] or None, but got 0"),
    (lambda: M.roc_auc_score(Y3, P3, multi_class="ovr", max_fpr=0.5), ValueError,
     r"expected max_fpr=None for multiclass y_true, but got 0.5"),
    (lambda: M.roc_auc_score(Y3, P3, multi_class="ovr", labels=[0, 2, 1]), ValueError,
     r"expected labels in increasing order \(the order of y_score's columns\), but got "
     r"\[0, 2, 1\]"),
    (lambda: M.roc_auc_score(Y3, P3, multi_class="ovr", labels=[0, 1, 1]), ValueError,
     r"expected distinct labels, but got \[0, 1, 1\]"),
    (lambda: M.roc_auc_score(Y3, P3, multi_class="ovr", labels=[0, 1]), ValueError,
     r"expected one label per column of y_score \(3\), but got 2 labels \[0, 1\]"),
    (lambda: M.roc_auc_score(Y3, P3, multi_class="ovr", labels=[0, 1, 3]), ValueError,
     r"expected every class of y_true among labels \[0, 1, 3\], but y_true also holds \[2\]"),
    # probabilities
    (lambda: M.log_loss(Y, S[:, None]), ValueError,
     r"expected y_proba of shape \(N,\) with the score of the positive class, or \(N, C\) with "
     r"one column per class, but got shape \(4, 1\)"),
    (lambda: M.brier_score_loss(Y, S[:, None]), ValueError, r"but got shape \(4, 1\)"),
    (lambda: M.log_loss(Y - 0.5, S), ValueError, r"expected class labels in y_true"),
    (lambda: M.brier_score_loss(Y, Y), TypeError,
     r"expected floating-point scores in y_proba \(probabilities\), but got torch.int64"),
    (lambda: M.log_loss(Y, torch.tensor([0.2, -0.1, 0.5, 0.5])), ValueError,
     r"expected probabilities in \[0, 1\] in y_proba, but got values from -0.1"),
    (lambda: M.brier_score_loss(Y, torch.tensor([0.2, 1.5, 0.5, 0.5])), ValueError,
     r"expected probabilities in \[0, 1\] in y_proba, but got values from 0.2.* to 1.5"),
    (lambda: M.log_loss(Y, torch.tensor([0.2, math.nan, 0.5, 0.5])), ValueError,
     r"expected finite scores in y_proba, but got 1 NaN or infinite values"),
    (lambda: M.log_loss(Y3, torch.cat([P3, torch.zeros(4, 1)], 1)), ValueError,
     r"expected one column of y_proba per class of y_true \[0, 1, 2\], but got 4 columns; name "
     r"every class with labels="),
    (lambda: M.log_loss(Y3, P3, labels=[0, 1, 2, 3]), ValueError,
     r"expected one column of y_proba per class of labels \[0, 1, 2, 3\], but got 3 columns"),
    (lambda: M.log_loss(Y[Y == 1], S[:2]), ValueError,
     r"expected at least two classes in y_true, but it holds only \[1\]; pass every class with "
     r"labels="),
    (lambda: M.log_loss(torch.tensor([1, 1]), S[:2], labels=[1]), ValueError,
     r"expected at least two labels, but got \[1\]"),
    (lambda: M.log_loss(Y, S, labels=[0, 1, 1]), ValueError, r"expected distinct labels"),
    (lambda: M.log_loss(Y3, P3, labels=[0, 1]), ValueError,
     r"expected every class of y_true among labels \[0, 1\], but y_true also holds \[2\]"),
    (lambda: M.log_loss(Y, y_pred=S), TypeError, r"unexpected keyword argument 'y_pred'"),
    (lambda: M.log_loss(Y, S, normalize="yes"), TypeError,
     r"expected normalize to be True or False, but got 'yes'"),
    (lambda: M.brier_score_loss(Y3, S), ValueError,
     r"expected binary y_true for y_proba of shape \(N,\), but it holds 3 classes \[0, 1, 2\]; "
     r"pass y_proba of shape \(N, C\)"),
    (lambda: M.brier_score_loss(Y, S, scale_by_half="yes"), ValueError,
     r"expected scale_by_half to be True, False or 'auto', but got 'yes'"),
    (lambda: M.brier_score_loss(Y, S, pos_label=0.5), ValueError,
     r"expected pos_label to be a class label"),
])
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --------------------------------------------------------------------------------------------
# Mutants: the comparisons above must catch a wrong implementation
# --------------------------------------------------------------------------------------------

class Mutant(NamedTuple):
    """One line of a module of helpers.metrics changed; the checks run on it (those whose name
    contains `checks`), one of them that must fail, and the function whose property comparison
    must find a counterexample in `cases` (None: only a dtype other than float64 shows the
    mutant, and the property comparisons, at 1e-12, run in float64)."""

    module: str
    original: str
    mutated: str
    checks: str
    check: str
    function: str | None = None
    cases: st.SearchStrategy | None = None


MUTANTS = {
    "precision computed as TP / (TP + FN)": Mutant(
        "counts", 'precision = divide(tp, predicted, metric="precision"',
        'precision = divide(tp, true, metric="precision"', "scores",
        "scores multiclass zero_division=0.0", "precision_score", label_cases("precision_score")),
    "macro computed as micro": Mutant(
        "counts", 'if average == "micro":', 'if average in ("micro", "macro"):', "scores",
        "scores multiclass zero_division=0.0", "precision_score", label_cases("precision_score")),
    "balanced accuracy from precision (column sums), not recall": Mutant(
        "counts", "recall = _safe_divide(matrix.diagonal(), matrix.sum(1)",
        "recall = _safe_divide(matrix.diagonal(), matrix.sum(0)", "balanced_accuracy_score",
        "balanced_accuracy_score, matthews_corrcoef binary", "balanced_accuracy_score",
        label_cases("balanced_accuracy_score")),
    "chance 1/K over every class seen, not those of y_true": Mutant(
        "counts", "chance = 1 / len(recall)", "chance = 1 / len(self.classes)",
        "balanced_accuracy_score", "balanced_accuracy_score, matthews_corrcoef multiclass",
        "balanced_accuracy_score", label_cases("balanced_accuracy_score")),
    "MCC with sum_k t_k t_k for sum_k t_k p_k": Mutant(
        "counts", "cov_true_pred = correct * total - true @ predicted",
        "cov_true_pred = correct * total - true @ true", "matthews_corrcoef",
        "balanced_accuracy_score, matthews_corrcoef binary", "matthews_corrcoef",
        label_cases("matthews_corrcoef")),
    "ROC corners found in FP alone": Mutant(
        "thresholds", "corner = (fps.diff(n=2) != 0) | (tps.diff(n=2) != 0)",
        "corner = fps.diff(n=2) != 0", "roc", "roc_curve, roc_auc_score", "roc_curve",
        scored_cases("roc_curve")),
    "partial AUC divided by max_fpr, without McClish's correction": Mutant(
        "thresholds", "return 0.5 * (1 + (area - min_area) / (max_area - min_area))",
        "return area / max_fpr", "roc", "roc_curve, roc_auc_score", "roc_auc_score",
        scored_cases("roc_auc_score")),
    "one-vs-rest weighted computed as macro": Mutant(
        "thresholds", 'if average == "macro":', 'if average in ("macro", "weighted"):', "roc",
        "roc_auc_score multiclass", "roc_auc_score", multiclass_score_cases()),
    "one-vs-one scoring each pair by one AUC, not the mean of both": Mutant(
        "thresholds", "pair_scores.append((both[0] + both[1]) / 2)",
        "pair_scores.append(both[0])", "roc", "roc_auc_score multiclass", "roc_auc_score",
        multiclass_score_cases()),
    "Brier score halved for three classes too": Mutant(
        "probabilities", "scale_by_half = y_proba.shape[1] < 3",
        "scale_by_half = y_proba.shape[1] <= 3", "brier", "brier_score_loss, log_loss 3 classes",
        "brier_score_loss", probability_cases("brier_score_loss")),
    "binary log loss with the two columns swapped": Mutant(
        "probabilities", "y_proba = torch.stack([1 - y_proba, y_proba], 1)",
        "y_proba = torch.stack([y_proba, 1 - y_proba], 1)", "brier",
        "brier_score_loss, log_loss binary 1-10% positive", "log_loss",
        probability_cases("log_loss")),
    "log loss clipped at float64's eps whatever the dtype": Mutant(
        "probabilities", "eps, dtype = torch.finfo(y_proba.dtype).eps,",
        "eps, dtype = torch.finfo(torch.float64).eps,", "brier",
        "brier_score_loss, log_loss binary 1-10% positive"),
}


def mutated(name: str, monkeypatch) -> types.SimpleNamespace:
    """helpers.metrics with one line of one of its modules changed (`MUTANTS[name]`), as a
    namespace with every public name, those of that module taken from the mutated copy, and its
    checks, registered nowhere."""
    spec = MUTANTS[name]
    source = inspect.getsource(getattr(M, spec.module))
    assert source.count(spec.original) == 1, f"the line to mutate is gone: {spec.original}"
    module = types.ModuleType(f"helpers.metrics.{spec.module}_mutant")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(V, "_REGISTRY", {})
    exec(compile(source.replace(spec.original, spec.mutated), f"{spec.module}_mutant.py", "exec"),
         module.__dict__)
    public = {name: getattr(module, name, getattr(M, name)) for name in M.__all__}
    namespace = types.SimpleNamespace(**public, MUTANT=spec)
    namespace.CHECKS = M.build_checks(namespace)
    return namespace


@pytest.fixture(params=sorted(MUTANTS))
def mutant(request, monkeypatch):
    return mutated(request.param, monkeypatch)


@pytest.fixture(params=sorted(name for name, spec in MUTANTS.items() if spec.function))
def searchable_mutant(request, monkeypatch):
    return mutated(request.param, monkeypatch)


def test_the_verification_checks_catch_the_mutant(mutant):
    checks = [check for check in mutant.CHECKS if mutant.MUTANT.checks in check.name]
    table = V.run_checks(checks, devices=["cpu"])
    failed = {row.check for row in table.failures}
    assert failed, "every check passed a wrong implementation"
    assert mutant.MUTANT.check in failed, failed


def test_the_property_comparison_finds_a_counterexample_for_the_mutant(searchable_mutant):
    name, cases = searchable_mutant.MUTANT.function, searchable_mutant.MUTANT.cases
    # the first counterexample found is proof enough: no shrinking, which costs many more calls
    case = find(cases, lambda case: disagrees(searchable_mutant, name, case),
                settings=settings(max_examples=500, database=None, phases=[Phase.generate]))
    assert disagrees(searchable_mutant, name, case)
    assert not disagrees(M, name, case)


def test_every_registered_check_passes_on_the_cpu():
    table = V.run_checks(M.CHECKS, devices=["cpu"])
    assert table.ok and all(row.passed for row in table.rows), table.to_text()
    assert len({c.name for c in M.CHECKS}) == len(M.CHECKS)
    assert all(V._REGISTRY.get(c.name) is c for c in M.CHECKS)


# --------------------------------------------------------------------------------------------
# The data of the chapter
# --------------------------------------------------------------------------------------------


def test_breast_cancer_split_is_stratified_standardised_and_repeatable():
    X_train, X_test, y_train, y_test = breast_cancer(generator=torch.Generator().manual_seed(0))
    assert X_train.shape == (427, 30) and X_test.shape == (142, 30)
    assert (y_train.sum() + y_test.sum(), len(y_train) + len(y_test)) == (212, 569)  # malignant
    assert y_test.sum() == round(0.25 * 212) and y_train.dtype == torch.int64
    torch.testing.assert_close(X_train.mean(0), torch.zeros(30, dtype=torch.float64))
    torch.testing.assert_close(X_train.std(0), torch.ones(30, dtype=torch.float64))
    again = breast_cancer(generator=torch.Generator().manual_seed(0))
    assert torch.equal(again[1], X_test)
    with pytest.raises(ValueError, match="expected 0 < test_fraction < 1, but got 1.5"):
        breast_cancer(test_fraction=1.5)


@pytest.mark.parametrize("call", [
    lambda w: M.log_loss(Y, S, sample_weight=w),
    lambda w: M.brier_score_loss(Y, S, sample_weight=w),
    lambda w: M.brier_score_loss(Y3, P3, sample_weight=w),
])
def test_weights_summing_to_zero_are_an_error_not_nan(call):
    """scikit-learn raises ZeroDivisionError "Weights sum to zero"; ours a ValueError (Notes)."""
    with pytest.raises(ValueError, match=r"expected sample weights with a non-zero sum \(the "
                       r"weighted mean divides by it\), but sample_weight sums to 0"):
        call(torch.tensor([1.0, -1.0, 0.0, 0.0]))
    with pytest.raises(ZeroDivisionError, match="Weights sum to zero"):
        sk.log_loss(Y.numpy(), S.numpy(), sample_weight=[1.0, -1.0, 0.0, 0.0])


def test_weights_summing_to_zero_still_give_the_weighted_sum_as_in_sklearn():
    weight = [1.0, -1.0, 0.0, 0.0]
    ours = M.log_loss(Y, S, sample_weight=torch.tensor(weight), normalize=False)
    theirs = sk.log_loss(Y.numpy(), S.numpy(), sample_weight=weight, normalize=False)
    assert math.isclose(float(ours), theirs, rel_tol=1e-6)  # S is float32: sklearn sums in it


def test_strict_label_validation_still_refuses_floats_and_says_how_to_fix_them():
    """`_labels` without `whole_floats` (the functions outside the sklearn mirrors, which want
    integer labels) refuses floats; the hint depends on what the floats hold and on the role."""
    with pytest.raises(TypeError, match=r"expected integer class labels in targets, but got "
                                        r"torch.float32 values; they hold whole numbers: convert "
                                        r"them with .long\(\)"):
        M._labels(torch.tensor([0.0, 1.0]), "targets")
    with pytest.raises(TypeError, match=r"values; targets holds each sample's true class, not a "
                                        r"probability"):
        M._labels(torch.tensor([0.1, 0.9]), "targets")
    with pytest.raises(TypeError, match=r"values; turn scores into labels first"):
        M._labels(torch.tensor([0.1, 0.9]), "y_pred_a")
    assert M._labels(torch.zeros(0), "y_true").dtype == torch.int64  # nothing to refuse


def test_a_float_label_beyond_int64_is_refused_not_wrapped():
    """1e19 is a whole number, but no int64 holds it: .long() would wrap it into another class
    silently, so it is refused with the value named."""
    y_true = torch.tensor([0.0, 1.0, 1e19], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"expected class labels in y_true .* such as 1e\+19"):
        M.confusion_matrix(y_true, torch.tensor([0, 1, 1]))


def test_the_whole_number_hint_needs_every_value_whole():
    """A mix of whole and fractional floats (0.0 with 0.7) is not labels that .long() fixes:
    the hint is the one for probabilities, not 'convert them with .long()'."""
    with pytest.raises(TypeError, match=r"values; targets holds each sample's true class") as info:
        M._labels(torch.tensor([0.0, 1.0, 0.7]), "targets")
    assert "whole numbers" not in str(info.value)


def test_streamed_labels_are_validated_as_a_whole():
    """labels= of a streamed matrix goes through the same validation as every other labels=:
    a 0-dim tensor is a shape error naming (N,), a float tensor of whole numbers is accepted."""
    stream = M.StreamingConfusionMatrix().update(torch.tensor([0, 1, 2]), torch.tensor([0, 2, 2]))
    with pytest.raises(ValueError, match=r"expected labels of shape \(N,\)"):
        stream.f1_score(labels=torch.tensor(1), average="macro")
    assert stream.f1_score(labels=torch.tensor([0.0, 2.0]), average="macro") == pytest.approx(
        stream.f1_score(labels=[0, 2], average="macro"))
