"""Exercise checkers of chapters 06 and 07: typical mistakes get their hint, nothing crashes.

The generic tests of tests/test_exercises.py (solutions pass, student notebooks run and say "not
implemented yet", student notebooks up to date) cover these chapters' notebooks too.
"""

import math
from pathlib import Path

import numpy as np
import pytest
import sklearn.metrics as sk
import torch
from exercise_harness import exercise_tests, solutions_of
from torch.optim import lr_scheduler

from helpers import exercises as E
from helpers import metrics, schedules
from helpers.exercises import learning_rate as lr
from helpers.exercises import metrics as mt

# --------------------------------------------------------------------------------------------
# Typical wrong answers of a learner, per task: each must be rejected with its hint
# --------------------------------------------------------------------------------------------


def cosine(t, base_lr, T_max, eta_min=0.0):  # noqa: N803
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2


def warmup_cosine(warm_up, anneal):
    """A learner's warm-up + cosine, from its two halves."""
    def schedule(t, base_lr, warmup_steps, total_steps, start_factor):
        if t < warmup_steps:
            return warm_up(t, base_lr, warmup_steps, start_factor)
        return anneal(t, base_lr, warmup_steps, total_steps)
    return schedule


def linear_warm_up(t, base_lr, w, s):
    return base_lr * (s + (1 - s) * t / w)


def cosine_after(t, base_lr, w, total):
    return cosine(t - w, base_lr, total - w)


def ema(losses, smoothing, correct=True, correct_in_place=False):
    beta, average, out = 1 - smoothing, 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        if correct_in_place:
            average /= 1 - beta ** (i + 1)
        out.append(average / (1 - beta ** (i + 1)) if correct else average)
    return out


def ema_from_first_loss(losses, smoothing):  # pandas' ewm(alpha=smoothing, adjust=False)
    out = [losses[0]]
    for loss in losses[1:]:
        out.append(out[-1] + smoothing * (loss - out[-1]))
    return out


def integer_counts(C):  # noqa: N803 - no .double(): int64 counts, float32 scores
    tp = C.diagonal()
    return tp, C.sum(0) - tp, C.sum(1) - tp


def counts(C):  # noqa: N803
    C = C.double()
    tp = C.diagonal()
    return tp, C.sum(0) - tp, C.sum(1) - tp


def indexed_confusion(y_true, y_pred, n_classes):
    C = torch.zeros(n_classes, n_classes, dtype=torch.long)
    C[y_true, y_pred] += 1  # repeated pairs are counted once
    return C


def one_hot_confusion(y_true, y_pred, n_classes):
    one_hot = torch.nn.functional.one_hot
    return one_hot(y_true, n_classes).T.float() @ one_hot(y_pred, n_classes).float()


def fbeta_formula(tp, fp, fn, weight_fn, weight_fp, zero=True):
    numerator = (1 + weight_fn) * tp if weight_fp == 1 else (1 + weight_fp) * tp
    denominator = numerator + weight_fn * fn + weight_fp * fp
    return torch.where(denominator > 0, numerator / denominator, 0.0) if zero else (
        numerator / denominator)


def fbeta_via_precision_recall(C, beta=1.0):  # noqa: N803
    tp, fp, fn = counts(C)
    p, r = tp / (tp + fp), tp / (tp + fn)  # 0/0 = NaN for an empty column or row
    return (1 + beta**2) * p * r / (beta**2 * p + r)


def batch_precisions(batches):
    out = []
    for y_true, y_pred in batches:
        tp = ((y_pred == 1) & (y_true == 1)).sum().item()
        predicted = (y_pred == 1).sum().item()
        out.append(tp / predicted if predicted else math.nan)
    return torch.tensor(out, dtype=torch.float64)


def pooled(batches):
    y_true = torch.cat([t for t, _ in batches])
    y_pred = torch.cat([p for _, p in batches])
    return y_true, y_pred


MISTAKES = {
    lr.check_step_lr: [
        (lambda t, base, s, g: base * g ** (t / s), "integer division"),
        (lambda t, base, s, g: base * g**t, "that is ExponentialLR"),
        (lambda t, base, s, g: base * g ** (t // s + 1), "one decay too many"),
        (lambda t, base, s, g: base * g ** ((t + 1) // s), "off by one"),
        (lambda t, base, s, g: base * g * (t // s), "decays compound"),
        (lambda t, base, s, g: base * g ** math.ceil(t / s), "you round t / step_size up"),
    ],
    lr.check_cosine_lr: [
        (lambda t, base, T, m: m + (base - m) * math.cos(math.pi * t / T), "cos alone"),
        (lambda t, base, T, m: m + (base - m) * (1 - math.cos(math.pi * t / T)) / 2,
         "your rate rises"),
        (lambda t, base, T, m: m + (base - m) * (1 + math.cos(t / T)) / 2, "without pi"),
        (lambda t, base, T, m: cosine(t, base, T - 1, m), "not T_max - 1"),
        (lambda t, base, T, m: cosine(t, base, T + 1, m), "not T_max + 1"),
        (lambda t, base, T, m: base * (1 + math.cos(math.pi * t / T)) / 2, "eta_min is missing"),
        (lambda t, base, T, m: m + base * (1 + math.cos(math.pi * t / T)) / 2,
         "the amplitude is base_lr - eta_min"),
        (lambda t, base, T, m: max(cosine(t, base, T, m), 0.01), "expected 0.0 but got 0.01"),
        (lambda t, base, T, m: m + (base - m) * (1 + math.cos(math.pi * t / T)),
         "halve the factor"),
        (lambda t, base, T, m: m + (base - m) * (1 + math.cos(2 * math.pi * t / T)) / 2,
         "not 2 pi t / T_max"),
        (lambda t, base, T, m: cosine(t + 1, base, T, m), "not t + 1"),
        (lambda t, base, T, m: cosine(t - 1, base, T, m), "not t - 1"),
    ],
    lr.check_range_test_lrs: [
        (lambda s, e, n: [s * (e / s) ** (i / n) for i in range(n)], "one factor short"),
        (lambda s, e, n: [s * (e / s) ** ((i + 1) / n) for i in range(n)],
         "must be start_lr itself"),
        (lambda s, e, n: [s * (e / s) ** (i / n) for i in range(n + 1)], "not num_iter + 1"),
        (lambda s, e, n: torch.linspace(s, e, n, dtype=torch.float64), "linear spacing"),
        (lambda s, e, n: torch.linspace(s, e, n), "linear spacing"),  # a float32 tensor
        (lambda s, e, n: torch.logspace(s, e, n), "takes EXPONENTS"),
        (lambda s, e, n: torch.logspace(math.log(s), math.log(e), n), "base=math.e"),
    ],
    lr.check_warmup_cosine_lr: [
        (warmup_cosine(lambda t, base, w, s: base * (s + t / w), cosine_after), "overshoots"),
        (warmup_cosine(lambda t, base, w, s: base * t / w, cosine_after), "starts at 0"),
        (warmup_cosine(lambda t, base, w, s: base * (s + (1 - s) * t / (w - 1)), cosine_after),
         "off by one in the warm-up"),
        (warmup_cosine(linear_warm_up, lambda t, base, w, total: cosine(t, base, total - w)),
         "feed it t - warmup_steps, not t"),
        (warmup_cosine(linear_warm_up, lambda t, base, w, total: cosine(t, base, total)),
         "restarts at the milestone and lasts"),
        (warmup_cosine(linear_warm_up, lambda t, base, w, total: cosine(t - w, base, total)),
         "never reaches 0"),
        (warmup_cosine(linear_warm_up,
                       lambda t, base, w, total: cosine(t - w, base, total - w - 1)),
         "off by one in T_max"),
    ],
    lr.check_smooth_losses: [
        (lambda losses, smoothing: ema(losses, smoothing, correct=False), "no bias correction"),
        (lambda losses, smoothing: ema(losses, 1 - smoothing), "weight of the OLD average"),
        (lambda losses, smoothing: ema(losses, smoothing, correct=False, correct_in_place=True),
         "keep the uncorrected average"),
        (lambda losses, smoothing: ema_from_first_loss(losses, smoothing), "adjust=False"),
        (lambda losses, smoothing: torch.tensor(losses).cumsum(0)
         / torch.arange(1, len(losses) + 1), "running mean"),
        (lambda losses, smoothing: [m * (1 - (1 - smoothing) ** (i + 1))
                                    / (1 - (1 - smoothing) ** i)
                                    for i, m in enumerate(ema(losses, smoothing))],
         "is 1 - beta ** (i + 1), never 0"),  # 1 - beta ** 0 in plain Python: an error
        (lambda losses, smoothing: (lambda m, i: m * (1 - (1 - smoothing) ** (i + 1))
                                    / (1 - (1 - smoothing) ** i))(
            torch.tensor(ema(losses, smoothing), dtype=torch.float64),
            torch.arange(len(losses))).tolist(), "1 - beta ** i is 0 at the first loss"),
    ],
    lr.check_scheduler_first_rates: [
        (lambda: [0.2, 0.25, 0.3, 0.35, 0.4], "the right order"),
        (lambda: [0.2, 0.2, 0.25, 0.3, 0.35], "AHEAD, not behind"),
        (lambda: [0.625, 0.75, 0.875, 1.0, 1.0], "those are the factors"),
        (lambda: [0.5, 0.625, 0.75, 0.875, 1.0], "those are the factors"),
        (lambda: [0.1, 0.2, 0.3, 0.4, 0.4], "not the expected answer"),  # the chapter's settings
        (lambda: [0.25, 0.3, 0.35], "expected a tuple of 5 values"),
    ],
    mt.check_confusion_matrix: [
        (lambda y, p, k: torch.bincount(p * k + y, minlength=k * k).reshape(k, k),
         "you built the transpose"),
        (indexed_confusion, "does not add up repeated index pairs"),
        (lambda y, p, k: torch.bincount(y * k + p, minlength=k * k).reshape(k, k) / len(y),
         "counts, not shares"),
        (one_hot_confusion, "keep them as integers"),
        (lambda y, p, k: torch.bincount(y * k + p).reshape(k, k), "give it minlength"),
        (lambda y, p, k: torch.bincount(y * k + p, minlength=k).reshape(k, k), "minlength="),
        (lambda y, p, k: torch.zeros(k, k).reshape(k + 1, k), "raised RuntimeError"),
    ],
    mt.check_precision_recall: [
        (lambda C: (C.diagonal() / C.sum(1).double(), C.diagonal() / C.sum(0).double()),
         "swapped"),
        (lambda C: (C.diagonal() / C.sum(1).double(),) * 2, "which is recall"),
        (lambda C: (C.diagonal() / C.sum(0).double(),) * 2, "which is precision"),
        (lambda C: (counts(C)[0] / C.sum(0), (C.sum() - C.sum(1) - counts(C)[1])
                    / (C.sum() - C.sum(1))), "specificity"),
        (lambda C: (counts(C)[0] / C.sum(), counts(C)[0] / C.sum()), "not by the number"),
        (lambda C: (C.diagonal() / C.sum(0), C.diagonal() / C.sum(1)), "C.double()"),
    ],
    mt.check_fbeta: [
        (lambda C, b: fbeta_formula(*counts(C), b, 1), "beta SQUARED"),
        (lambda C, b: fbeta_formula(*counts(C), 1, b**2), "beta² multiplies FN"),
        (lambda C, b: fbeta_formula(*counts(C), 1, 1), "F1 whatever beta is"),
        (lambda C, b: fbeta_formula(*counts(C), b**2, 1, zero=False), "return 0 there"),
        (lambda C, b: fbeta_formula(*integer_counts(C), b**2, 1), "convert integer values"),
        (fbeta_via_precision_recall, "compute F from the counts"),
    ],
    mt.check_macro_f1: [
        (lambda C: (C.diagonal().sum() / C.sum()).item(), "that is micro-F1"),
        (lambda C: (lambda p, r: 2 * p * r / (p + r))(
            (C.diagonal() / C.sum(0)).mean(), (C.diagonal() / C.sum(1)).mean()),
         "F1 of the macro precision"),
        (lambda C: ((C.sum(1) * fbeta_formula(*counts(C), 1, 1)).sum() / C.sum()).item(),
         "support-weighted"),
        (lambda C: (lambda p, r: 2 * p * r / (p + r))(  # 0/0 counted as 0, as in scikit-learn
            (counts(C)[0] / C.sum(0)).nan_to_num(0.0).mean(),
            (counts(C)[0] / C.sum(1)).nan_to_num(0.0).mean()).item(), "F1 of the macro precision"),
        (lambda C: fbeta_via_precision_recall(C).mean(), "NaN"),
        (lambda C: fbeta_via_precision_recall(C).nanmean(), "still counts"),
        (lambda C: fbeta_formula(*counts(C), 1, 1)[C.sum(0) + C.sum(1) > 0].mean(),
         "occurs nowhere"),
    ],
    mt.check_precision_over_batches: [
        (lambda batches: batch_precisions(batches).mean(), "not a mean of per-batch"),
        (lambda batches: batch_precisions(batches).nanmean().item(), "leaving out the batches"),
        (lambda batches: batch_precisions(batches).nan_to_num(0.0).mean(), "0 is not its value"),
        (lambda batches: (torch.tensor([len(t) for t, _ in batches])
                          * batch_precisions(batches).nan_to_num(0.0)).sum()
         / sum(len(t) for t, _ in batches), "weighting the per-batch precisions"),
        (lambda batches: (lambda y, p: ((y == 1) & (p == 1)).sum() / (y == 1).sum())(
            *pooled(batches)).item(), "that is recall"),
        (lambda batches: batch_precisions(batches[-1:])[0], "the last batch alone"),
    ],
    mt.check_accuracy_misleads: [
        (lambda: (0.99, 1.0, 0.978, 0.9), "recall of the NEGATIVE class"),
        (lambda: (0.99, 0.0, 0.978, 0.3), "is its precision"),
        (lambda: (0.01, 0.0, 0.978, 0.9), "right on all 990 negatives"),
        (lambda: (0.99, 0.0, 0.979, 0.9), "both kinds of error"),
        (lambda: (0.99, 0.0, 0.969, 0.9), "not all 30 flagged"),
        (lambda: (0.99, 0.0, 0.978), "asks for 4 numbers"),
        (lambda: (0.99, 0.0, 0.978, 0.9, 0.3), "and you returned 5"),  # with B's precision
        (lambda: torch.tensor([0.99, 0.0, 0.978, 0.9, 0.3, 21.0]), "and you returned 6"),
        (lambda: (0.99, 0.978, 0.0, 0.9), "model A's two numbers first"),
        (lambda: [0.0, 0.99, 0.9, 0.978], "accuracy first, then recall"),
        (lambda: (99.0, 0.0, 97.8, 90.0), "not as percentages"),
        (lambda: (0.5, 0.5, 0.5, 0.5), "not the expected answer"),
        (lambda: 0.978, "expected a tuple of 4 values"),
    ],
    mt.check_which_to_deploy: [
        (lambda: "A", "only because 990 of the 1000 samples are negative"),
        (lambda: " model a", "it never finds a positive, which is what a screening test is for"),
        (lambda: "both", "answer with the letter of a model"),
        (lambda: 1, "you returned 1"),
    ],
}
S = Path(__file__).resolve().parents[1] / "exercises" / "solutions"


# --------------------------------------------------------------------------------------------
# What the checkers accept: every correct form, and nothing else
# --------------------------------------------------------------------------------------------


def test_list_tasks_accept_a_tensor_or_a_list():
    def geometric(s, e, n):
        return s * (e / s) ** (torch.arange(n, dtype=torch.float64) / (n - 1))

    assert lr.check_range_test_lrs(geometric).passed
    assert lr.check_range_test_lrs(lambda s, e, n: geometric(s, e, n).tolist()).passed
    assert lr.check_range_test_lrs(lambda s, e, n: geometric(s, e, n).float()).passed
    assert lr.check_smooth_losses(lambda losses, smoothing: torch.tensor(
        ema(losses, smoothing), dtype=torch.float64)).passed


def test_scalar_tasks_accept_a_float_or_a_0d_tensor():
    def macro(C):  # noqa: N803
        tp, fp, fn = counts(C)
        return fbeta_formula(tp, fp, fn, 1, 1).mean()

    assert mt.check_macro_f1(macro).passed and mt.check_macro_f1(lambda C: macro(C).item()).passed
    assert mt.check_macro_f1(lambda C: macro(C).float()).passed


def test_the_deployment_answer_may_name_the_model_in_any_case():
    for answer in ("B", "b", "Model B", " model b "):
        assert mt.check_which_to_deploy(lambda answer=answer: answer).passed, answer


@pytest.mark.parametrize("answer", [
    {"accuracy_A": 0.99}, "0.99", torch.tensor(0.99), torch.zeros(2, 2), np.zeros((2, 2)),
    np.array(["B"]), (None,) * 4, ("a", "b", "c", "d"), math.nan,
], ids=["dict", "str", "0-d tensor", "2-D tensor", "2-D array", "array of str", "Nones",
        "letters", "nan"])
def test_odd_screening_answers_are_described_in_one_line_not_crashed_on(answer):
    for check in (mt.check_accuracy_misleads, mt.check_which_to_deploy):
        verdict = check(lambda answer=answer: answer)
        assert verdict.status == E.WRONG and "\n" not in str(verdict), str(verdict)


def test_the_screening_answers_pass_however_they_are_computed():
    assert mt.check_accuracy_misleads(SOLUTIONS["check_accuracy_misleads"][1]).passed
    # from the counts: B has TP 9, FP 21, FN 1, TN 969; A has TN 990, FN 10
    assert mt.check_accuracy_misleads(lambda: (990 / 1000, 0 / 10, (9 + 969) / 1000,
                                               9 / (9 + 1))).passed
    assert mt.check_accuracy_misleads(lambda: torch.tensor([0.99, 0.0, 0.978, 0.9],
                                                           dtype=torch.float64)).passed
    assert mt.check_accuracy_misleads(lambda: [0.99, 0.0, 0.978, 0.9]).passed


def test_a_confusion_matrix_built_with_index_put_accumulate_passes():
    def accumulated(y_true, y_pred, n_classes):
        C = torch.zeros(n_classes, n_classes, dtype=torch.long)
        return C.index_put_((y_true, y_pred), torch.ones_like(y_true), accumulate=True)

    assert mt.check_confusion_matrix(accumulated).passed


def test_a_schedule_that_clamps_past_the_end_is_still_checked_inside_the_range():
    # the task asks for 0 <= t <= T_max only, so clamping beyond it is not a mistake
    assert lr.check_cosine_lr(lambda t, base, T, m: cosine(min(t, T), base, T, m)).passed


def test_the_batches_describe_themselves_in_one_line():
    message = mt.check_precision_over_batches(lambda batches: 0.123).message
    assert "3 batches (y_true, y_pred) of sizes 5, 3, 8" in message and "tensor" not in message


# --------------------------------------------------------------------------------------------
# Graded: what the tasks forbid, and hidden inputs
# --------------------------------------------------------------------------------------------


SOLUTIONS = {**solutions_of(S / "06_learning_rate.ipynb"),
             **solutions_of(S / "07_classification_metrics.ipynb")}


def torch_scheduler_rate(make_scheduler, base_lr, t):
    """A learner's rate from torch's own scheduler: what tasks 1 to 4 forbid."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    scheduler = make_scheduler(optimizer)
    for _ in range(t):
        optimizer.step()
        scheduler.step()
    return optimizer.param_groups[0]["lr"]


def torch_warmup_cosine(t, base_lr, warmup, total, start_factor):
    return torch_scheduler_rate(lambda o: lr_scheduler.SequentialLR(o, [
        lr_scheduler.LinearLR(o, start_factor, total_iters=warmup),
        lr_scheduler.CosineAnnealingLR(o, total - warmup)], milestones=[warmup]), base_lr, t)


def torch_range_test(start, end, n):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=start)
    scheduler = lr_scheduler.ExponentialLR(optimizer, (end / start) ** (1 / (n - 1)))
    rates = []
    for _ in range(n):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def labels_of(C):  # noqa: N803
    """(y_true, y_pred) whose confusion matrix is C, as a learner might rebuild them."""
    pairs = [(i, j) for i in range(len(C)) for j in range(len(C)) for _ in range(int(C[i, j]))]
    return [i for i, _ in pairs], [j for _, j in pairs]


def f1_by_sklearn(C):  # noqa: N803
    y_true, y_pred = labels_of(C)
    return sk.f1_score(y_true, y_pred, labels=list(range(len(C))), average="macro",
                       zero_division=0.0)


def fbeta_by_sklearn(C, beta):  # noqa: N803
    y_true, y_pred = labels_of(C)
    return torch.from_numpy(sk.fbeta_score(y_true, y_pred, beta=beta, average=None,
                                           labels=list(range(len(C))), zero_division=0.0))


FORBIDDEN_ANSWERS = [  # (checker, an answer that is right but for what it calls, the call reported)
    (lr.check_step_lr, lambda t, base, s, g: torch_scheduler_rate(
        lambda o: lr_scheduler.StepLR(o, s, g), base, t),
     "torch.optim.lr_scheduler.StepLR.__init__"),
    (lr.check_step_lr, lambda t, base, s, g: torch_scheduler_rate(
        lambda o: schedules.StepLR(o, s, g), base, t), "helpers.schedules.StepLR.__init__"),
    (lr.check_cosine_lr, lambda t, base, T, m: torch_scheduler_rate(
        lambda o: lr_scheduler.CosineAnnealingLR(o, T, m), base, t),
     "torch.optim.lr_scheduler.CosineAnnealingLR.__init__"),
    (lr.check_range_test_lrs, torch_range_test, "torch.optim.lr_scheduler.ExponentialLR.__init__"),
    (lr.check_warmup_cosine_lr, torch_warmup_cosine, "torch.optim.lr_scheduler.LinearLR.__init__"),
    (mt.check_confusion_matrix, lambda y, p, k: torch.from_numpy(sk.confusion_matrix(
        y, p, labels=list(range(k)))), "sklearn.metrics._classification.confusion_matrix"),
    (mt.check_confusion_matrix,
     lambda y, p, k: metrics.confusion_matrix(y, p, labels=list(range(k))),
     "helpers.metrics.counts.confusion_matrix"),
    (mt.check_precision_recall, lambda C: tuple(
        torch.from_numpy(v) for v in sk.precision_recall_fscore_support(
            *labels_of(C), labels=list(range(len(C))))[:2]),
     "sklearn.metrics._classification.precision_recall_fscore_support"),
    (mt.check_fbeta, fbeta_by_sklearn, "sklearn.metrics._classification.fbeta_score"),
    (mt.check_macro_f1, f1_by_sklearn, "sklearn.metrics._classification.f1_score"),
    (mt.check_precision_over_batches, lambda batches: sk.precision_score(
        *(torch.cat(labels) for labels in zip(*batches))),
     "sklearn.metrics._classification.precision_score"),
    (mt.check_accuracy_misleads, lambda: tuple(
        score(np.arange(1000) < 10, predicted) for predicted in (np.zeros(1000, dtype=bool),
                                                                 (np.arange(1000) > 0)
                                                                 & (np.arange(1000) < 31))
        for score in (sk.accuracy_score, sk.recall_score)),
     "sklearn.metrics._classification.accuracy_score"),
    (mt.check_which_to_deploy, lambda: "B" if sk.recall_score([1, 1], [0, 1]) > 0 else "A",
     "sklearn.metrics._classification.recall_score"),
]


globals().update(exercise_tests(
    MISTAKES, S / "06_learning_rate.ipynb", S / "07_classification_metrics.ipynb",
    memorised=["check_step_lr", "check_warmup_cosine_lr", "check_confusion_matrix",
               "check_precision_over_batches"],
    forbidden=FORBIDDEN_ANSWERS, every_forbidden_name_tried=True))


def test_the_question_answers_are_sealed():
    # the checkers compare with digests: neither the answers nor the rule that gives them
    source = "\n".join(Path(module.__file__).read_text() for module in (lr, mt))
    for revealing in ("_rates_used", "scheduler_first=True", "0.625, 0.75", "0.978",
                      "accuracy_score", 'learner, "B"', "recall_b"):
        assert revealing not in source, revealing
