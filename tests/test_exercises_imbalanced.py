"""Exercise checkers of chapter 10: typical mistakes get their hint, nothing crashes, the
solutions pass (also on hidden inputs), an answer that calls what its task forbids loses it, and
the references agree with what they stand for.

The generic tests of tests/test_exercises.py (solutions pass, student notebooks run and say "not
implemented yet", student notebooks up to date) cover this chapter's notebooks too.
"""

import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics as sk
import torch
import torch.nn.functional as F
from exercise_harness import exercise_tests
from sklearn.calibration import calibration_curve
from sklearn.utils.class_weight import compute_class_weight, compute_sample_weight

from helpers import calibration, losses, metrics
from helpers.exercises import imbalanced as im
from helpers.exercises.grading import grade

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "exercises" / "solutions" / "10_imbalanced_data.ipynb"

# --------------------------------------------------------------------------------------------
# A learner's answers, right and wrong, written as a learner would write them
# --------------------------------------------------------------------------------------------


def mcc(root=True, guard=True, sign=1, first="tp + fp"):
    def matthews_from_counts(tp, fp, fn, tn):
        predicted = tp + fp if first == "tp + fp" else tn + fp
        denominator = predicted * (tp + fn) * (tn + fp) * (tn + fn)
        if guard and denominator == 0:
            return 0.0
        return sign * (tp * tn - fp * fn) / (math.sqrt(denominator) if root else denominator)
    return matthews_from_counts


def mcc_with_tensors(tp, fp, fn, tn):  # 0 / 0 gives NaN here, not an error
    tp, fp, fn, tn = (torch.tensor(float(n), dtype=torch.float64) for n in (tp, fp, fn, tn))
    return (tp * tn - fp * fn) / torch.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))


def balanced(classes="y_true", score="recall", adjust="rescale", chance="y_true"):
    def balanced_accuracy(y_true, y_pred, adjusted=False):
        labels = {"y_true": y_true.unique(), "both": torch.cat([y_true, y_pred]).unique(),
                  "range": torch.arange(int(max(y_true.max(), y_pred.max())) + 1)}[classes]
        values = []
        for c in labels:
            if score == "recall":
                among = y_pred[y_true == c] == c
            else:
                among = y_true[y_pred == c] == c
            values.append(among.double().mean() if len(among)
                          else torch.tensor(0.0, dtype=torch.float64))  # no sample: recall 0
        result = torch.stack(values).mean().item()
        if adjusted and adjust != "ignore":
            k = len(y_true.unique()) if chance == "y_true" else len(
                torch.cat([y_true, y_pred]).unique())
            result -= 1 / k
            if adjust == "rescale":
                result /= 1 - 1 / k
        return result
    return balanced_accuracy


def nan_recalls(y_true, y_pred, adjusted=False):  # 0 / 0 for every label 0 .. max not in y_true
    k = int(max(y_true.max(), y_pred.max())) + 1
    hits = torch.bincount(y_true[y_true == y_pred], minlength=k).double()
    score = (hits / torch.bincount(y_true, minlength=k)).mean().item()
    return (score - 1 / k) / (1 - 1 / k) if adjusted else score


def recalls_without_minlength(y_true, y_pred, adjusted=False):
    hits = torch.bincount(y_true[y_true == y_pred])  # length: the largest label with a hit, + 1
    support = torch.bincount(y_true)
    return (hits / support)[support > 0].mean().item()  # (1,) / (K,) broadcasts silently


def auc(tie=0.5, divide_by="pairs", flip=False):
    def roc_auc(y_true, scores):
        positives, negatives = scores[y_true == 1], scores[y_true == 0]
        if flip:
            positives, negatives = negatives, positives
        wins = (positives[:, None] > negatives).double()
        ties = (positives[:, None] == negatives).double()
        total = (wins + tie * ties).sum()
        return total / (len(positives) * len(negatives) if divide_by == "pairs" else len(y_true)**2)
    return roc_auc


def auc_by_ranks(y_true, scores):  # Mann-Whitney U from mid-ranks: sorting is allowed too
    values, inverse, counts = scores.unique(return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    mid_ranks = (ends - (counts.double() - 1) / 2)[inverse]
    n_pos = int(y_true.sum())
    n_neg = len(y_true) - n_pos
    return ((mid_ranks[y_true == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


def focal(factor="1 - p_t", alpha_for="positives", naive_log=False, mean=False, clamp=None):
    def sigmoid_focal_loss(logits, targets, alpha=0.25, gamma=2.0):
        p = torch.sigmoid(logits)
        p_t = torch.where(targets == 1, p, 1 - p)
        if clamp is not None:
            log_p_t = p_t.clamp(clamp, 1 - clamp).log()
        elif naive_log:
            log_p_t = torch.log(p_t)
        else:
            log_p_t = torch.where(targets == 1, F.logsigmoid(logits), F.logsigmoid(-logits))
        modulating = {"1 - p_t": 1 - p_t, "1 - p": 1 - p, "p_t": p_t,
                      "none": torch.ones_like(p)}[factor] ** gamma
        a = {"positives": torch.where(targets == 1, alpha, 1 - alpha),
             "negatives": torch.where(targets == 1, 1 - alpha, alpha),
             "none": torch.ones_like(p)}[alpha_for]
        loss = -a * modulating * log_p_t
        return loss.mean() if mean else loss
    return sigmoid_focal_loss


def threshold(predict=">=", reach=">=", pick="highest"):
    def threshold_for_recall(y_true, scores, target_recall=0.9):
        n_pos = int((y_true == 1).sum())
        best = None
        closest = None
        for t in sorted(set(scores.tolist()), reverse=True):
            flagged = scores >= t if predict == ">=" else scores > t
            recall = int((flagged & (y_true == 1)).sum()) / n_pos
            if closest is None or abs(recall - target_recall) < closest[0]:
                closest = (abs(recall - target_recall), t)
            if recall >= target_recall if reach == ">=" else recall > target_recall:
                if best is None or pick == "lowest":
                    best = t
        return closest[1] if pick == "closest" else best
    return threshold_for_recall


def ece(weights="count", floor=False, inside=True, top_label=False, all_edges=False):
    def expected_calibration_error(y_true, probs, n_bins=10):
        y = y_true.double()
        if top_label:
            y = ((probs > 0.5).double() == y).double()
            probs = torch.maximum(probs, 1 - probs)
        edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)
        if floor:
            bins = torch.clamp((probs * n_bins).long(), max=n_bins - 1)
        elif all_edges:  # p = 0 in bin 0, alone; (0, 1/n_bins] in bin 1, ...
            bins = torch.bucketize(probs, edges)
        else:
            bins = torch.bucketize(probs, edges[1:-1])
        total, signed, gaps = 0.0, 0.0, []
        for b in range(int(bins.max()) + 1 if all_edges else n_bins):
            in_bin = bins == b
            n_b = int(in_bin.sum())
            if n_b == 0 and weights != "count, nan" and weights != "all bins":
                continue
            accuracy = y[in_bin].mean() if n_b else torch.tensor(0.0)
            confidence = probs[in_bin].mean() if n_b else torch.tensor(0.0)
            if weights == "count, nan":
                accuracy, confidence = y[in_bin].sum() / n_b, probs[in_bin].sum() / n_b
            gaps.append(abs(accuracy - confidence))
            signed += n_b / len(probs) * (accuracy - confidence)
            total += n_b / len(probs) * abs(accuracy - confidence)
        if not inside:
            return abs(signed)
        if weights in ("bins", "all bins"):
            return sum(gaps) / len(gaps)
        return total
    return expected_calibration_error


MISTAKES = {
    im.check_matthews_from_counts: [
        (mcc(root=False), "the SQUARE ROOT of the product"),
        (mcc(guard=False), "MCC is 0 / 0: scikit-learn returns 0"),
        (mcc_with_tensors, "MCC is 0 / 0: scikit-learn returns 0"),
        (mcc(sign=-1), "the sign is flipped"),
        (mcc(first="tn + fp"), "TN stands where TP belongs"),
        (lambda tp, fp, fn, tn: (tp * fn - fp * tn) / math.sqrt(max(
            (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn), 1)), "expected"),
    ],
    im.check_balanced_accuracy: [
        (lambda y, p, adjusted=False: (y == p).float().mean(), "that is the accuracy"),
        (balanced(score="precision"), "macro PRECISION"),
        (balanced(classes="both"), "predicted but absent from y_true"),
        (balanced(classes="range"), "the labels 0 .. max"),
        (nan_recalls, "NaN: a label absent from y_true"),
        (balanced(adjust="subtract"), "also divides by 1 - 1/K"),
        (balanced(chance="both"), "K in the chance level"),
        (balanced(adjust="ignore"), "adjusted=True is ignored"),
        (recalls_without_minlength, "but got 10.0 (a balanced accuracy above 1 is impossible: "
         "check that your per-class counts have the same length (bincount's minlength)"),
    ],
    im.check_roc_auc: [
        (auc(tie=1.0), "a tie counts as half a win"),
        (auc(tie=0.0), "ties are missing"),
        (auc(divide_by="N^2"), "not by N^2"),
        (auc(flip=True), "positives and negatives are swapped"),
        (lambda y, s: auc()(y, s) * 100, "expected"),
    ],
    im.check_pos_weight: [
        (lambda t: t.sum(0) / (len(t) - t.sum(0)), "upside down"),
        (lambda t: (t == 0).sum(0).to(t.dtype) / len(t), "the share of negatives"),
        (lambda t: len(t) / t.sum(0), "the inverse frequency"),
        (lambda t: (t == 0).sum(1).to(t.dtype) / t.sum(1), "counted along dim=1"),
        (lambda t: (t == 0).sum().to(t.dtype) / t.sum(), "pooled over all columns"),
        (lambda t: ((len(t) - t.sum(0)) / t.sum(0)).double(), "expected dtype torch.float32"),
        (lambda t: ((len(t) - t.sum(0)) / t.sum(0)).tolist(), "expected a tensor"),
    ],
    im.check_logit_threshold: [
        (lambda w: math.log(1 / w), "the sign is flipped"),
        (lambda w: w, "multiplies the ODDS"),
        (lambda w: 1 / w, "1 / w is a factor on the odds"),
        (lambda w: torch.sigmoid(torch.tensor(math.log(w))).item(), "threshold on the PROBABILITY"),
        (lambda w: 0, "0 is the threshold of the unweighted model"),
        (lambda w: math.log10(w), "expected"),
    ],
    im.check_sample_weights: [
        (lambda y: 1.0 / torch.bincount(y).double(), "one weight per CLASS"),
        (lambda y: 1.0 / torch.unique(y, return_counts=True)[1], "one weight per CLASS"),
        (lambda y: torch.bincount(y)[y].double(), "the count, not its inverse"),
        (lambda y: (torch.bincount(y) / len(y))[y], "the count, not its inverse"),
        (lambda y: 1 - torch.bincount(y)[y] / len(y), "balances two classes only"),
        (lambda y: torch.ones(len(y)), "equal weights"),
        (lambda y: (1.0 / torch.bincount(y).double()[y])[:, None], "WeightedRandomSampler refuses"),
        (lambda y: torch.log(1.0 / torch.bincount(y).double()[y]),
         "your function returned negative weights"),  # log-inverse-frequency: log(1/n) < 0
        (lambda y: -1.0 / torch.bincount(y).double()[y], "it must be >= 0"),
        (lambda y: 1 // torch.bincount(y)[y], "weights that are all 0"),
        (lambda y: torch.zeros(len(y)), "look for an integer division or rounding"),
        (lambda y: torch.full((len(y),), math.nan), "weights with inf or nan (nan for a sample"),
        (lambda y: 1.0 / (torch.bincount(y).double()[y] - 10), "weights with inf or nan (inf"),
    ],
    im.check_sigmoid_focal_loss: [
        (focal(naive_log=True), "inf (or nan) at a logit of +-40"),
        (focal(factor="1 - p"), "(1 - p)^gamma is right for the positives only"),
        (focal(factor="p_t"), "p_t^gamma grows"),
        (focal(alpha_for="negatives"), "alpha is on the wrong class"),
        (focal(alpha_for="none"), "alpha is missing"),
        (focal(factor="none"), "alpha-balanced cross-entropy"),
        (focal(mean=True), "do not average"),
        (focal(clamp=1e-12), "clamping caps the loss of a confident mistake; compute log p_t from "
         "the logit (binary_cross_entropy_with_logits or logsigmoid)"),
        (focal(clamp=1e-7), "clamping caps the loss of a confident mistake"),
        (lambda x, t, alpha=0.25, gamma=2.0: focal()(x.double(), t.double(), alpha, gamma),
         "expected dtype torch.float32"),
    ],
    im.check_threshold_for_recall: [
        (threshold(reach=">"), "'reaches' means recall >= target"),
        (threshold(predict=">"), "predict positive where score >= threshold"),
        (threshold(pick="closest"), "may lie BELOW it"),
        (threshold(pick="lowest"), "the lowest threshold"),
        (lambda y, s, target_recall=0.9: s[y == 1].min().item(), "expected"),
        (lambda y, s, target_recall=0.9: torch.quantile(s[y == 1], 1 - target_recall),
         "your threshold is not one of the scores: return the score itself"),
    ],
    im.check_expected_calibration_error: [
        (ece(weights="bins"), "by its share of the samples"),
        (ece(weights="count, nan"), "NaN: an empty bin"),
        (ece(weights="all bins"), "you divided by n_bins"),
        (ece(floor=True), "belongs to the bin BELOW it"),
        (ece(inside=False), "the absolute value goes inside"),
        (ece(top_label=True), "top-label ECE"),
        (ece(all_edges=True), "p = 0 belongs to the FIRST bin"),
    ],
}


@pytest.fixture(autouse=True)
def _torchvision_imports_as_the_course_imports_it(request):
    """torchvision imported as helpers.losses does it, so that it imports beside a CPU-only
    torch: then the names the focal-loss task forbids resolve, and the answer that calls
    torchvision's focal loss runs; scikit-learn's warning on a class that one of the answers'
    labels lacks is scikit-learn's, not the test's."""
    if request.node.originalname not in ("test_every_forbidden_name_exists", FORBIDDEN_TEST):
        yield
        return
    losses.torchvision_sigmoid_focal_loss(torch.zeros(1), torch.zeros(1))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "y_pred contains classes not in y_true")
        yield


FORBIDDEN_TEST = "test_an_answer_that_calls_what_its_task_forbids_loses_it_told_the_call"


# --------------------------------------------------------------------------------------------
# What the checkers accept: every correct form
# --------------------------------------------------------------------------------------------


def test_every_correct_form_passes():
    assert im.check_matthews_from_counts(lambda *counts: mcc_with_tensors(*counts).nan_to_num(
        0.0)).passed
    assert im.check_roc_auc(auc()).passed  # a 0-d tensor
    assert im.check_roc_auc(auc_by_ranks).passed
    assert im.check_balanced_accuracy(balanced()).passed
    assert im.check_threshold_for_recall(threshold()).passed
    assert im.check_expected_calibration_error(ece()).passed
    assert im.check_sigmoid_focal_loss(focal()).passed
    # any scale of the sampler's weights draws the same: scikit-learn's N / (K n_k) passes
    assert im.check_sample_weights(lambda y: len(y) / (3 * torch.bincount(y)[y])).passed
    assert im.check_sample_weights(lambda y: (1 / torch.bincount(y)[y]).tolist()).passed
    assert im.check_pos_weight(lambda t: (t == 0).sum(0) / (t == 1).sum(0).to(t.dtype)).passed


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # as scikit-learn
def test_the_course_helpers_pass_the_checkers():
    # the chapter's own implementations, checked unwatched: they agree with the references (a
    # learner's answer that calls them loses the task, as the last lines show)
    def mcc_of_labels(tp, fp, fn, tn):
        y_true = torch.tensor([1] * tp + [0] * fp + [1] * fn + [0] * tn)
        y_pred = torch.tensor([1] * tp + [1] * fp + [0] * fn + [0] * tn)
        return metrics.matthews_corrcoef(y_true, y_pred)

    assert im.check_matthews_from_counts.__wrapped__(mcc_of_labels).passed
    assert im.check_balanced_accuracy.__wrapped__(
        lambda y, p, adjusted=False: metrics.balanced_accuracy_score(y, p, adjusted=adjusted)
    ).passed
    assert im.check_roc_auc.__wrapped__(metrics.roc_auc_score).passed
    assert im.check_sigmoid_focal_loss.__wrapped__(losses.sigmoid_focal_loss).passed
    assert im.check_expected_calibration_error.__wrapped__(lambda y, p, n_bins=10: (
        calibration.expected_calibration_error(y, p, n_bins=n_bins))).passed
    verdict = im.check_matthews_from_counts(mcc_of_labels)
    assert not verdict.passed and "calls helpers.metrics" in verdict.message
    assert "the course's own code" in verdict.message


def test_a_python_division_by_zero_elsewhere_is_still_reported_as_an_error():
    def divides_by_tp(tp, fp, fn, tn):
        return mcc()(tp, fp, fn, tn) + 0 / fn  # fn = 0 in a case whose margins are not 0

    assert "raised ZeroDivisionError" in im.check_matthews_from_counts(divides_by_tp).message


# --------------------------------------------------------------------------------------------
# The references stand for what the tasks say
# --------------------------------------------------------------------------------------------


def test_the_focal_reference_is_torchvisions():
    # torchvision as helpers.losses imports it: beside torch's CPU-only build too
    from helpers.losses import torchvision_sigmoid_focal_loss as sigmoid_focal_loss

    for logits, targets, *rest in im.focal_cases():
        alpha, gamma = rest or (0.25, 2.0)
        torch.testing.assert_close(im._focal()(logits, targets, alpha, gamma),
                                   sigmoid_focal_loss(logits, targets, alpha, gamma, "none"))


def test_the_focal_reference_is_the_papers_formula():
    # Lin et al. 2017, eq. 5: FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t), element by element
    for logits, targets, *rest in im.focal_cases():
        alpha, gamma = rest or (0.25, 2.0)
        expected = []
        for x, y in zip(logits.double().flatten().tolist(), targets.flatten().tolist()):
            log_p = -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))
            log_1_minus_p = log_p - x  # log(1 - p) = log p - x
            p_t, log_p_t = (math.exp(log_p), log_p) if y == 1 else (math.exp(log_1_minus_p),
                                                                   log_1_minus_p)
            alpha_t = alpha if y == 1 else 1 - alpha
            expected.append(-alpha_t * (1 - p_t) ** gamma * log_p_t)
        got = im._focal()(logits, targets, alpha, gamma)
        torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64).reshape(
            logits.shape).to(logits.dtype))
        assert torch.isfinite(got).all()


def test_pos_weight_shifts_the_optimal_logit_by_log_w():
    # the minimiser of weighted BCE over a constant logit: sigmoid(z) = w p / (w p + 1 - p), so
    # z = logit(p) + log w, what task 5 asks
    targets = torch.tensor([1.0] * 3 + [0.0] * 7, dtype=torch.float64)
    for w in (4.0, 0.25):
        z = torch.zeros((), dtype=torch.float64, requires_grad=True)
        for _ in range(20):  # Newton's method, with autograd's first and second derivatives
            loss = F.binary_cross_entropy_with_logits(
                z.expand(10), targets, pos_weight=torch.tensor(w, dtype=torch.float64))
            (gradient,) = torch.autograd.grad(loss, z, create_graph=True)
            (curvature,) = torch.autograd.grad(gradient, z)
            z = (z - gradient / curvature).detach().requires_grad_()
        assert math.isclose(z.item(), math.log(0.3 / 0.7) + math.log(w), abs_tol=1e-12)


def test_the_sample_weights_balance_what_weighted_random_sampler_draws():
    y = torch.tensor([0] * 70 + [1] * 20 + [2] * 10)
    weights = 1.0 / torch.bincount(y).double()[y]
    sampler = torch.utils.data.WeightedRandomSampler(weights, num_samples=30_000,
                                                     generator=torch.Generator().manual_seed(0))
    shares = torch.bincount(y[torch.tensor(list(sampler))], minlength=3) / 30_000
    assert torch.allclose(shares, torch.full((3,), 1 / 3, dtype=shares.dtype), atol=0.015)


def test_the_cases_show_what_they_are_for():
    thresholds = im.threshold_cases()
    y, scores = thresholds[0]
    assert int(y.sum()) == 10  # recall 0.9 is met exactly: > and >= differ
    y, scores, target = thresholds[1]
    assert 6 / 7 < target < 1 and target - 6 / 7 < 1 - target  # the closest recall is below
    assert im._threshold(pick="closest")(y, scores, target) > im._threshold_reference(
        y, scores, target)  # and it is reached at a threshold of its own
    y, probs, n_bins = im.ece_cases()[1]
    assert len(torch.bucketize(probs, torch.linspace(0, 1, n_bins + 1,
                                                     dtype=torch.float64)[1:-1]).unique()) < n_bins
    logits, targets = im.focal_cases()[2]
    assert (torch.sigmoid(logits[targets == 0]) == 1).any()  # log(1 - p) is -inf there
    assert any(im._margins_product(*counts) == 0 for counts in im.mcc_cases())


def test_the_checkers_leave_torch_random_state_as_they_found_it():
    before = torch.get_rng_state()
    im.check_sample_weights(lambda y: 1.0 / torch.bincount(y)[y])
    im.check_sigmoid_focal_loss(focal())
    assert torch.equal(torch.get_rng_state(), before)


# --------------------------------------------------------------------------------------------
# Grading: what a task forbids, hidden inputs
# --------------------------------------------------------------------------------------------


def sklearn_mcc(tp, fp, fn, tn):
    y_true, y_pred = np.repeat([1, 0, 1, 0], [tp, fp, fn, tn]), np.repeat([1, 1, 0, 0],
                                                                          [tp, fp, fn, tn])
    return float(sk.matthews_corrcoef(y_true, y_pred))


def sklearn_threshold(y_true, scores, target_recall=0.9):
    _, tpr, thresholds = sk.roc_curve(y_true.numpy(), scores.numpy(), drop_intermediate=False)
    return float(thresholds[np.argmax(tpr >= target_recall)])


def sklearn_pos_weight(targets):
    weights = [compute_class_weight("balanced", classes=np.array([0.0, 1.0]), y=column)
               for column in targets.T.double().numpy()]
    return torch.tensor([w1 / w0 for w0, w1 in weights], dtype=targets.dtype)


def sklearn_ece(y_true, y_prob, n_bins=10):
    prob_true, prob_pred = calibration_curve(y_true.numpy(), y_prob.numpy(), n_bins=n_bins)
    counts = np.bincount(np.searchsorted(np.linspace(0, 1, n_bins + 1)[1:-1], y_prob.numpy()),
                         minlength=n_bins)
    return float(np.sum(counts[counts > 0] / len(y_prob) * np.abs(prob_true - prob_pred)))


def torchvision_focal(logits, targets, alpha=0.25, gamma=2.0):
    from torchvision.ops import sigmoid_focal_loss

    return sigmoid_focal_loss(logits, targets, alpha, gamma, reduction="none")


FORBIDDEN = [  # (checker, an answer that is right but for what it calls, the call reported)
    (im.check_matthews_from_counts, sklearn_mcc,
     "sklearn.metrics._classification.matthews_corrcoef"),
    (im.check_balanced_accuracy, lambda y, p, adjusted=False: float(
        sk.balanced_accuracy_score(y.numpy(), p.numpy(), adjusted=adjusted)),
     "sklearn.metrics._classification.balanced_accuracy_score"),
    (im.check_roc_auc, lambda y, s: float(sk.roc_auc_score(y.numpy(), s.numpy())),
     "sklearn.metrics._ranking.roc_auc_score"),
    (im.check_pos_weight, sklearn_pos_weight,
     "sklearn.utils.class_weight.compute_class_weight"),
    (im.check_sample_weights, lambda y: torch.from_numpy(compute_sample_weight(
        "balanced", y.numpy())), "sklearn.utils.class_weight.compute_sample_weight"),
    (im.check_sigmoid_focal_loss, torchvision_focal,
     "torchvision.ops.focal_loss.sigmoid_focal_loss"),
    (im.check_threshold_for_recall, sklearn_threshold, "sklearn.metrics._ranking.roc_curve"),
    (im.check_expected_calibration_error, sklearn_ece,
     "sklearn.calibration.calibration_curve"),
]


globals().update(exercise_tests(MISTAKES, SOLUTION, forbidden=FORBIDDEN))


def test_an_answer_that_learns_the_visible_inputs_by_heart_fails_the_hidden_test():
    table = {targets.numpy().tobytes(): (targets.shape[0] - targets.sum(0)) / targets.sum(0)
             for targets in (case[0] for case in visible_pos_weight_cases())}

    def by_heart(targets):
        return table.get(targets.numpy().tobytes(), torch.ones(targets.shape[1],
                                                              dtype=targets.dtype))

    assert im.check_pos_weight(by_heart).passed  # the visible inputs: all known
    with pytest.raises(AssertionError, match="on the hidden inputs"):
        grade(im.check_pos_weight, by_heart, seed=53770)


def visible_pos_weight_cases() -> list[tuple]:
    """The inputs the pos_weight checker gives, read by running it on a recording answer."""
    seen = []

    def recording(targets):  # a right answer, so that the checker goes through every case
        seen.append((targets.clone(),))
        return (targets.shape[0] - targets.sum(0)) / targets.sum(0)

    im.check_pos_weight(recording)
    return seen
