"""helpers.metrics against scikit-learn: values, warnings and errors on random data (empty classes
and all-negative predictions included), the streaming accumulator, the error messages, and
mutants that the same comparisons must catch."""

import inspect
import math
import sys
import types
import warnings

import numpy as np
import pytest
import sklearn.metrics as sk
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st

from helpers import metrics as M
from helpers import verify as V
from helpers.data import breast_cancer

PROPERTY = settings(max_examples=60, deadline=None)
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
    return result, error, [(w.category, str(w.message)) for w in caught]


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
    assert ours[2] == theirs[2], f"{name}: warnings differ:\n{ours[2]}\n{theirs[2]}"
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
    if function == "average_precision_score":
        kwargs["pos_label"] = draw(st.sampled_from([0, 1, 2]))
    else:
        kwargs["pos_label"] = draw(st.sampled_from([None, 0, 1, 2]))
    if function == "precision_recall_curve":
        kwargs["drop_intermediate"] = draw(st.booleans())
    return {"data": (y_true, y_score), "kwargs": kwargs}


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
    for name in SCORES:
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


# --------------------------------------------------------------------------------------------
# Bad input: clear errors
# --------------------------------------------------------------------------------------------

Y = torch.tensor([0, 1, 1, 0])
Y3 = torch.tensor([0, 1, 2, 2])
S = torch.tensor([0.2, 0.9, 0.6, 0.1])


@pytest.mark.parametrize("call, error, message", [
    (lambda: M.f1_score(Y, torch.tensor([0, 1, 1])), ValueError,
     r"expected y_true and y_pred of the same length, but got 4 and 3"),
    (lambda: M.accuracy_score(Y, S), TypeError,
     r"expected integer class labels in y_pred, but got torch.float32 values; turn scores into "
     r"labels first, e.g. \(y_score >= 0.5\).long\(\)"),
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
    (lambda: M.precision_score(Y, Y, pos_label=0.5), TypeError, r"expected an integer pos_label"),
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
])
def test_bad_input_raises_a_clear_error(call, error, message):
    with pytest.raises(error, match=message):
        call()


# --------------------------------------------------------------------------------------------
# Mutants: the comparisons above must catch a wrong implementation
# --------------------------------------------------------------------------------------------

MUTANTS = {
    "precision computed as TP / (TP + FN)": (
        'precision = divide(tp, predicted, metric="precision"',
        'precision = divide(tp, true, metric="precision"'),
    "macro computed as micro": ('if average == "micro":', 'if average in ("micro", "macro"):'),
}


@pytest.fixture(params=sorted(MUTANTS))
def mutant(request, monkeypatch):
    """helpers.metrics with one line of its counts module changed; its checks registered nowhere."""
    original, mutated = MUTANTS[request.param]
    source = inspect.getsource(M.counts)
    assert source.count(original) == 1, f"the line to mutate is gone: {original}"
    counts = types.ModuleType("helpers.metrics.counts_mutant")
    monkeypatch.setitem(sys.modules, counts.__name__, counts)
    monkeypatch.setattr(V, "_REGISTRY", {})
    exec(compile(source.replace(original, mutated), "counts_mutant.py", "exec"), counts.__dict__)
    # every public name of helpers.metrics, those of the counts module taken from the mutant
    public = {name: getattr(counts, name, getattr(M, name)) for name in M.__all__}
    module = types.SimpleNamespace(**public)
    module.CHECKS = M.build_checks(module)
    return module


def test_the_verification_checks_catch_the_mutant(mutant):
    table = V.run_checks(mutant.CHECKS, devices=["cpu"])
    failed = {row.check for row in table.failures}
    assert failed, "every check passed a wrong implementation"
    assert "scores multiclass zero_division=0.0" in failed


def test_the_property_comparison_finds_a_counterexample_for_the_mutant(mutant):
    case = find(label_cases("precision_score"),
                lambda case: disagrees(mutant, "precision_score", case),
                settings=settings(max_examples=500, database=None))
    assert disagrees(mutant, "precision_score", case)
    assert not disagrees(M, "precision_score", case)


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
