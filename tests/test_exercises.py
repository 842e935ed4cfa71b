"""Exercise checkers: solutions pass, typical mistakes get their hint, nothing crashes."""

import importlib
import math
import re
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exercise_harness import exercise_tests, verdicts_of
from nbclient import NotebookClient

from helpers import exercises as E
from helpers.exercises import cross_entropy as ce
from helpers.exercises import grading, student
from helpers.exercises import learning_rate as lr_exercises
from helpers.exercises import mse_loss as mse

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "exercises" / "solutions").glob("*.ipynb"))
OWN_SOLUTIONS = [ROOT / "exercises" / "solutions" / name
                 for name in ("01_mse_loss.ipynb", "02_cross_entropy.ipynb")]
LN2, LN10 = math.log(2), math.log(10)


def ids(paths):
    return [p.stem for p in paths]


# --------------------------------------------------------------------------------------------
# Typical wrong answers, per task: each must be rejected with its hint
# --------------------------------------------------------------------------------------------

# The typical mistakes below are written as a learner writes them, without the built-ins the tasks
# forbid: an answer that calls F.log_softmax or F.cross_entropy gets the forbidden-call verdict.

def log_softmax(x, dim=-1):
    return x - torch.logsumexp(x, dim, keepdim=True)


def picked(x, y):
    return log_softmax(x, dim=1)[torch.arange(len(y)), y]


def softplus(x):
    return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))


def no_max_back(x):
    m = x.max(-1, keepdim=True).values
    return x - torch.log(torch.exp(x - m).sum(-1, keepdim=True))


def kept(x, y, i):
    return -log_softmax(x[y != i], 1)[torch.arange(int((y != i).sum())), y[y != i]]


def hard_label_loss(x, y, w=None):
    """Cross-entropy with class-index targets, weighted as torch weighs it."""
    w_y = torch.ones(len(y), dtype=x.dtype) if w is None else w[y]
    return -(w_y * picked(x, y)).sum() / w_y.sum()


def soft_targets_loss(x, q, w=None):
    """-sum_c w_c q_c log p_c, averaged over the samples (torch's loss for probability targets)."""
    return -((q if w is None else w * q) * log_softmax(x, 1)).sum(1).mean()


def bce_terms(x, y, p_pos, p_neg):
    return p_pos * y * softplus(-x) + p_neg * (1 - y) * softplus(x)


MISTAKES = {
    mse.check_mse: [
        (lambda x, y: ((x - y) ** 2).sum(), "the sum, not the mean"),
        (lambda x, y: (x - y).abs().mean(), "mean absolute error"),
        (lambda x, y: (x - y).mean() ** 2, "squared the mean residual"),
        (lambda x, y: ((x - y) ** 2).mean().sqrt(), "root mean squared"),
        (lambda x, y: ((x - y) ** 2).sum() / x.shape[0], "not by the number of rows"),
        (lambda x, y: 0.5 * ((x - y) ** 2).mean(), "half the MSE"),
        (lambda x, y: ((x - y) ** 2).mean() / 3, "yours is exactly 1/3 × the expected value"),
    ],
    mse.check_mse_grad: [
        (lambda x, y: (x - y) / x.numel(), "factor 2"),
        (lambda x, y: 2 * (x - y), "gradient of the sum"),
        (lambda x, y: 2 * (y - x) / x.numel(), "sign is flipped"),
        (lambda x, y: 2 * (x - y) / len(x), "not the number of rows"),
    ],
    mse.check_best_constant: [
        (lambda y: y.median(), "median minimises the mean ABSOLUTE error"),
        (lambda y: (y.max() + y.min()) / 2, "midrange"),
    ],
    mse.check_fixed_shapes: [
        (lambda p, t: ((p - t) ** 2).mean(), "still the broadcast loss"),
        (lambda p, t: ((p.squeeze(1) - t) ** 2).sum(),
         "values differ on input a torch.float32 tensor of shape (6, 1)"),
        (lambda p, t: ((p.squeeze(1) - t) ** 2).sum(), "yours is exactly 6 × the expected value "
         "(6 = the number of elements of the input of shape (6, 1))"),
    ],
    mse.check_gaussian_nll: [
        (lambda x, y, v: ((x - y) ** 2 / (2 * v)).sum() + x.numel() / 2 * math.log(v),
         "constant N/2 log(2 pi) is missing"),
        (lambda x, y, v: ((x - y) ** 2 / v).sum() + x.numel() / 2 * math.log(2 * math.pi * v),
         "divided by 2 var"),
        (lambda x, y, v: (((x - y) ** 2).sum() / (2 * v) + x.numel() / 2 * math.log(
            2 * math.pi * v)) / x.numel(), "mean over the samples"),
        (lambda x, y, v: ((x - y) ** 2).sum() / (2 * v) + len(x) / 2 * math.log(2 * math.pi * v),
         "every ELEMENT has its normaliser"),
    ],
    mse.check_sum_over_mean: [
        (lambda: 1 / 32, "the other way around"),
        (lambda: 64, "cancels"),
    ],
    ce.check_log_softmax: [
        (lambda x: torch.log(torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)), "overflow"),
        (lambda x: F.softmax(x, dim=-1), "returned the probabilities"),
        (lambda x: log_softmax(x, dim=0), "class dimension"),
        (lambda x: x - x.max(-1, keepdim=True).values, "only the first step"),
        (lambda x: log_softmax(x, dim=1), "the LAST dimension"),
        (lambda x: (x - x.max()) - torch.log(torch.exp(x - x.max()).sum(-1, keepdim=True)),
         "each row's own maximum"),
        (no_max_back, "add the maximum back"),
        (lambda x: x - x.max(-1).values, "must have shape (5, 1): pass keepdim=True"),
        (lambda x: x - torch.logsumexp(x, -1), "has shape (5,), but to broadcast"),
        (lambda x: log_softmax(x, -1) / LN2, "log2 of the probabilities (bits)"),
    ],
    ce.check_cross_entropy: [
        (lambda x, y: -picked(x, y).sum(), "the sum, not the mean"),
        (lambda x, y: picked(x, y).mean(), "sign is flipped"),
        (lambda x, y: -log_softmax(x, dim=1)[:, y].mean(), "(N, N) block"),
        (lambda x, y: -F.softmax(x, 1)[torch.arange(len(y)), y].mean(), "-log p, not -p"),
        (lambda x, y: -picked(F.softmax(x, dim=1), y).mean(), "softmax twice"),
        (lambda x, y: -torch.log(F.softmax(x, 1)[torch.arange(len(y)), y]).mean(),
         "inf or nan where the answer is finite"),
        (lambda x, y: -no_max_back(x)[torch.arange(len(y)), y].mean(),
         "add the maximum back in the log-sum-exp"),
        (lambda x, y: -(x - torch.logsumexp(x, 1))[torch.arange(len(y)), y].mean(),
         "of shape (6, 4), x.max(dim=-1) (or .sum(dim=-1), torch.logsumexp) has shape (6,), but "
         "to broadcast against the logits it must have shape (6, 1): pass keepdim=True"),
        (lambda x, y: -picked(x, y).mean() / LN2, "in bits (log2)"),
        (lambda x, y: -torch.log2(F.softmax(x.double(), 1))[torch.arange(len(y)), y].mean().to(
            x.dtype), "1/ln 2 ≈ 1.443"),
        (lambda x, y: -picked(x, y).mean() / LN10, "uses log10"),
        (lambda x, y: np.float32(-picked(x, y).mean().item()),
         "returned a NumPy float32 scalar; expected a torch tensor"),
    ],
    ce.check_cross_entropy_grad: [
        (lambda x, y: F.softmax(x, 1) - F.one_hot(y, x.shape[1]).to(x.dtype),
         "gradient of the sum"),
        (lambda x, y: (F.one_hot(y, x.shape[1]).to(x.dtype) - F.softmax(x, 1)) / len(y),
         "sign is flipped"),
        (lambda x, y: (x - F.one_hot(y, x.shape[1]).to(x.dtype)) / len(y), "not the raw logits"),
    ],
    ce.check_weighted_cross_entropy: [
        (lambda x, y, w: -(w[y] * picked(x, y)).mean(), "total weight of the targets"),
        (lambda x, y, w: -(w[y] * picked(x, y)).sum() / w.sum(),
         "not by the sum of all class weights"),
        (lambda x, y, w: -picked(x, y).mean(), "weights are missing"),
    ],
    ce.check_smoothed_targets: [
        (lambda y, c, e: (1 - e) * F.one_hot(y, c).float()
         + e / (c - 1) * (1 - F.one_hot(y, c).float()), "ALL C classes"),
        (lambda y, c, e: F.one_hot(y, c).float() + e / c, "(1 - epsilon)"),
        (lambda y, c, e: (1 - e) * F.one_hot(y, c).float(), "share for every class is missing"),
        (lambda y, c, e: (1 - e) * F.one_hot(y, c).float()
         + e / c * (1 - F.one_hot(y, c).float()), "gets its epsilon / C share too"),
        (lambda y, c, e: (1 - e) * F.one_hot(y, c).double() + e / c,
         "convert integer values with .to(torch.float32) (or .float()) first"),
    ],
    ce.check_smoothing_floor: [
        (lambda: 0.0, "cannot reach 0"),
        (lambda: -(0.925 * math.log(0.925)), "all four classes"),
        (lambda: -sum(q * math.log2(q) for q in (0.925, 0.025, 0.025, 0.025)), "in bits"),
        (lambda: -sum(q * math.log10(q) for q in (0.925, 0.025, 0.025, 0.025)), "with log10"),
    ],
    ce.check_softplus: [
        (lambda x: torch.log(1 + torch.exp(x)), "overflow: exp(1e4) is inf"),
        (lambda x: torch.log1p(torch.exp(x)), "overflow: exp(1e4) is inf"),
        (lambda x: x + torch.log1p(torch.exp(-x)), "exact on paper"),
        (lambda x: torch.relu(x) + torch.log1p(torch.exp(-x)), "absolute value is missing"),
        (lambda x: torch.relu(x), "that is the ReLU"),
        (lambda x: torch.log1p(torch.exp(-x.abs())), "the max(x, 0) part is missing"),
        (lambda x: softplus(x) / LN2, "yours is exactly 1/ln 2 ≈ 1.443 × the expected value"),
    ],
    ce.check_bce_with_logits: [
        (lambda x, y: -(y * torch.log(torch.sigmoid(x))
                        + (1 - y) * torch.log(1 - torch.sigmoid(x))).mean(), "log(0) = -inf"),
        (lambda x, y: F.binary_cross_entropy(torch.sigmoid(x), y), "clamps each log at -100"),
        (lambda x, y: (softplus(x) + x * y).mean(), "the sign of x y"),
        (lambda x, y: (torch.log1p(torch.exp(-x.abs())) - x * y).mean(), "max(x, 0) term"),
        (lambda x, y: (x.clamp(min=0) - x * y + torch.log1p(torch.exp(-x))).mean(),
         "exp of -|x|, not of -x"),
        (lambda x, y: (softplus(x) - x * y).sum(), "yours is exactly 8 × the expected value "
         "(8 = the number of elements of the input of shape (8,))"),
    ],
    ce.check_bce_pos_weight: [
        (lambda x, y, p: bce_terms(x, y, 1.0, p).mean(), "multiplies the POSITIVE term"),
        (lambda x, y, p: bce_terms(x, y, p, p).mean(), "weighs the whole loss"),
        (lambda x, y, p: bce_terms(x, y, p, 1.0).sum() / (1 + (p - 1) * y).sum(),
         "not by the total weight"),
        (lambda x, y, p: -(p * y * torch.log(torch.sigmoid(x))
                           + (1 - y) * torch.log(1 - torch.sigmoid(x))).mean(), "log(0) = -inf"),
        (lambda x, y, p: bce_terms(x, y, 1 / p, 1.0).mean(), "it does not divide it"),
        (lambda x, y, p: (softplus(x) - x * y).mean(), "values differ"),
    ],
    ce.check_cross_entropy_ignore: [
        (lambda x, y, i: kept(x, y, i).sum() / len(y), "the mean's denominator"),
        (lambda x, y, i: kept(x, y, -100).mean(), "it is not always -100"),
        (lambda x, y, i: kept(x, y, i).sum() / max(int((y != i).sum()), 1), "not 0"),
        (lambda x, y, i: -log_softmax(x, 1)[torch.arange(int((y != i).sum())),
                                            y[y != i]].mean(), "logits[keep] too"),
        (lambda x, y, i: -log_softmax(x, 1)[torch.arange(len(y)), y].mean(),
         "a target equal to ignore_index (-100) is not a class index"),
        (lambda x, y, i: -(x - torch.logsumexp(x, 1))[y != i][
            torch.arange(int((y != i).sum())), y[y != i]].mean(), "must have shape (6, 1)"),
    ],
    ce.check_soft_cross_entropy: [
        (lambda x, q, w: -((q if w is None else w * q) * log_softmax(x, 1)).mean(),
         "divides by C once too often"),
        (lambda x, q, w: -((q if w is None else w * q) * log_softmax(x, 1)).sum()
         / (q if w is None else w * q).sum(), "not by the total weight"),
        (lambda x, q, w: hard_label_loss(x, q.argmax(1), w), "hard labels"),
        (lambda x, q, w: ((1 if w is None else w) * (torch.xlogy(q, q) - q * log_softmax(
            x, 1))).sum(1).mean(), "KL divergence"),
        (lambda x, q, w: F.kl_div(log_softmax(x, 1), q, reduction="batchmean"),
         "values differ"),  # KL without the weights: no single mistake
        (lambda x, q, w: soft_targets_loss(x, q), "class weights are missing"),
        (lambda x, q, w: -soft_targets_loss(x, q, w), "(the sign is flipped)"),
        (lambda x, q, w: -(q * (x - torch.logsumexp(x, 1))).sum(1).mean(),
         "it must have shape (5, 1): pass keepdim=True"),
    ],
}

# --------------------------------------------------------------------------------------------
# Forbidden built-ins: an answer that calls one gets a verdict that names it
# --------------------------------------------------------------------------------------------

def by_backward(loss):
    """The gradient of `loss(x, *rest)` with respect to x, by Tensor.backward."""
    def gradient(x, *rest):
        x = x.clone().requires_grad_()
        loss(x, *rest).backward()
        return x.grad
    return gradient


def by_autograd_grad(loss):
    def gradient(x, *rest):
        x = x.clone().requires_grad_()
        return torch.autograd.grad(loss(x, *rest), x)[0]
    return gradient


def squared_error(x, y):
    return ((x - y) ** 2).mean()


MEAN = 1  # the reduction "mean" as torch's internal functions take it (their default is "none")


FORBIDDEN = [  # (checker, an answer that is right but for what it calls, the call reported)
    (mse.check_mse, F.mse_loss, "torch.nn.functional.mse_loss"),
    (mse.check_mse, lambda x, y: torch.nn.MSELoss()(x, y), "torch.nn.functional.mse_loss"),
    (mse.check_mse, lambda x, y: torch._C._nn.mse_loss(x, y, MEAN), "torch._C._nn.mse_loss"),
    (mse.check_mse_grad, by_backward(squared_error), "torch._tensor.Tensor.backward"),
    (mse.check_mse_grad, by_autograd_grad(squared_error), "torch.autograd.grad"),
    (mse.check_mse_grad, lambda x, y: torch.func.grad(squared_error)(x, y),
     "torch._functorch.apis.grad"),
    (mse.check_mse_grad, lambda x, y: 2 * (x - y) / x.numel() + 0 * F.mse_loss(x, y),
     "torch.nn.functional.mse_loss"),
    (mse.check_best_constant, lambda y: y.mean() + 0 * F.mse_loss(y, y),
     "torch.nn.functional.mse_loss"),
    (mse.check_fixed_shapes, lambda p, t: F.mse_loss(p.squeeze(1), t),
     "torch.nn.functional.mse_loss"),
    (mse.check_gaussian_nll, lambda x, y, v: F.gaussian_nll_loss(
        x, y, torch.full_like(x, v), full=True, reduction="sum"),
     "torch.nn.functional.gaussian_nll_loss"),
    (mse.check_gaussian_nll,
     lambda x, y, v: -torch.distributions.Normal(x, math.sqrt(v)).log_prob(y).sum(),
     "torch.distributions.normal.Normal.__init__"),
    (ce.check_log_softmax, lambda x: F.log_softmax(x, -1), "torch.nn.functional.log_softmax"),
    (ce.check_log_softmax, lambda x: torch.log_softmax(x, -1), "torch.log_softmax"),
    (ce.check_log_softmax, lambda x: x.log_softmax(-1), "torch.Tensor.log_softmax"),
    (ce.check_log_softmax, lambda x: torch.special.log_softmax(x, -1),
     "torch._C._special.special_log_softmax"),
    (ce.check_log_softmax, lambda x: torch.nn.LogSoftmax(-1)(x),
     "torch.nn.functional.log_softmax"),
    (ce.check_cross_entropy, F.cross_entropy, "torch.nn.functional.cross_entropy"),
    (ce.check_cross_entropy, lambda x, y: torch.nn.CrossEntropyLoss()(x, y),
     "torch.nn.functional.cross_entropy"),
    (ce.check_cross_entropy, lambda x, y: F.nll_loss(log_softmax(x, 1), y),
     "torch.nn.functional.nll_loss"),
    (ce.check_cross_entropy, lambda x, y: torch._C._nn.cross_entropy_loss(x, y, None, MEAN),
     "torch._C._nn.cross_entropy_loss"),
    (ce.check_cross_entropy_grad, by_backward(lambda x, y: -picked(x, y).mean()),
     "torch._tensor.Tensor.backward"),
    (ce.check_cross_entropy_grad, lambda x, y: torch.func.grad(hard_label_loss)(x, y),
     "torch._functorch.apis.grad"),
    (ce.check_cross_entropy_grad,
     lambda x, y: (F.log_softmax(x, 1).exp() - F.one_hot(y, x.shape[1]).to(x.dtype)) / len(y),
     "torch.nn.functional.log_softmax"),
    (ce.check_weighted_cross_entropy, lambda x, y, w: F.cross_entropy(x, y, weight=w),
     "torch.nn.functional.cross_entropy"),
    (ce.check_softplus, F.softplus, "torch._C._nn.softplus"),
    (ce.check_softplus, lambda x: torch.nn.Softplus()(x), "torch._C._nn.softplus"),
    (ce.check_softplus, lambda x: -F.logsigmoid(-x), "torch._C._nn.log_sigmoid"),
    (ce.check_softplus, lambda x: torch.logaddexp(x, torch.zeros_like(x)), "torch.logaddexp"),
    (ce.check_softplus, lambda x: x.logaddexp(torch.zeros_like(x)), "torch.Tensor.logaddexp"),
    (ce.check_bce_with_logits, F.binary_cross_entropy_with_logits,
     "torch.nn.functional.binary_cross_entropy_with_logits"),
    (ce.check_bce_with_logits,
     lambda x, y: torch.binary_cross_entropy_with_logits(x, y, None, None, MEAN),
     "torch.binary_cross_entropy_with_logits"),
    (ce.check_bce_with_logits, lambda x, y: torch.nn.BCEWithLogitsLoss()(x, y),
     "torch.nn.functional.binary_cross_entropy_with_logits"),
    (ce.check_bce_with_logits, lambda x, y: (F.softplus(x) - x * y).mean(),
     "torch._C._nn.softplus"),
    (ce.check_bce_with_logits,
     lambda x, y: -(y * F.logsigmoid(x) + (1 - y) * F.logsigmoid(-x)).mean(),
     "torch._C._nn.log_sigmoid"),
    (ce.check_bce_pos_weight,
     lambda x, y, p: F.binary_cross_entropy_with_logits(x, y, pos_weight=p),
     "torch.nn.functional.binary_cross_entropy_with_logits"),
    (ce.check_bce_pos_weight, lambda x, y, p: (p * y * F.softplus(-x)
                                               + (1 - y) * F.softplus(x)).mean(),
     "torch._C._nn.softplus"),
    (ce.check_cross_entropy_ignore, lambda x, y, i: F.cross_entropy(x, y, ignore_index=i),
     "torch.nn.functional.cross_entropy"),
    (ce.check_cross_entropy_ignore,
     lambda x, y, i: F.nll_loss(log_softmax(x, 1), y, ignore_index=i),
     "torch.nn.functional.nll_loss"),
    (ce.check_soft_cross_entropy, lambda x, q, w: F.cross_entropy(x, q, weight=w),
     "torch.nn.functional.cross_entropy"),
    (ce.check_soft_cross_entropy,
     lambda x, q, w: -((q if w is None else w * q) * F.log_softmax(x, 1)).sum(1).mean(),
     "torch.nn.functional.log_softmax"),
]


globals().update(exercise_tests(MISTAKES, *OWN_SOLUTIONS, forbidden=FORBIDDEN))


def test_the_tasks_that_forbid_nothing():
    assert {check.__name__ for check in MISTAKES if not check.forbid} == {
        "check_sum_over_mean", "check_smoothed_targets", "check_smoothing_floor"}


# --------------------------------------------------------------------------------------------
# Hidden tests: other inputs for every task (the solutions pass them whatever the seed: see
# exercise_harness.exercise_tests), which a memorised answer fails
# --------------------------------------------------------------------------------------------


def as_key(args: tuple) -> tuple:
    return tuple((a.dtype, tuple(a.shape), tuple(a.flatten().tolist()))
                 if isinstance(a, torch.Tensor) else a for a in args)


@pytest.mark.parametrize("check, by_hand", [
    (mse.check_mse, squared_error),
    (ce.check_log_softmax, log_softmax),
    (ce.check_smoothed_targets,
     lambda y, c, e: (1 - e) * F.one_hot(y, c).float() + e / c),
], ids=lambda c: getattr(c, "__name__", ""))
def test_an_answer_that_memorises_the_visible_inputs_fails_the_hidden_test(check, by_hand):
    table = {}

    def recording(*args):  # the right answer, kept for every input the checker shows
        table[as_key(args)] = by_hand(*args)
        return table[as_key(args)]

    def memorised(*args):
        return table.get(as_key(args), torch.zeros(()))

    assert check(recording).passed and check(memorised).passed
    with pytest.raises(AssertionError, match="on the hidden inputs"):
        grading.grade(check, memorised, seed=12345)


def test_the_new_chapter_02_tasks_diagnose_at_least_three_mistakes_each():
    for check in (ce.check_softplus, ce.check_bce_with_logits, ce.check_bce_pos_weight,
                  ce.check_cross_entropy_ignore, ce.check_soft_cross_entropy):
        assert len({hint for _, hint in MISTAKES[check] if hint != "values differ"}) >= 3


@pytest.mark.parametrize("check, reference", [
    (ce.check_softplus, F.softplus),
    (ce.check_bce_with_logits, F.binary_cross_entropy_with_logits),
    (ce.check_bce_pos_weight,
     lambda x, y, p: F.binary_cross_entropy_with_logits(x, y, pos_weight=p)),
    (ce.check_cross_entropy_ignore, lambda x, y, i: F.cross_entropy(x, y, ignore_index=i)),
    (ce.check_soft_cross_entropy, lambda x, q, w: F.cross_entropy(x, q, weight=w)),
], ids=lambda c: getattr(c, "__name__", ""))
def test_the_new_checkers_compare_with_torch_also_at_logits_of_1e4(check, reference):
    """Run unwatched (`__wrapped__`): the answers here call the built-ins the tasks forbid."""
    assert check.__wrapped__(reference).passed

    def wrong_only_at_1e4(x, *rest):  # torch's answer everywhere but at |logit| = 1e4
        return reference(torch.where(x.abs() >= 1e4, x / 2, x), *rest)

    assert check.__wrapped__(wrong_only_at_1e4).status == E.WRONG


def test_a_constant_factor_is_told_with_its_numbers():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)

    def told(answer, reference=F.mse_loss, cases=((x, y),)):
        return E.check_function("task", answer, reference, cases).message

    assert "yours is exactly 1/2 × the expected value" in told(lambda a, b: F.mse_loss(a, b) / 2)
    assert ("yours is exactly 12 × the expected value (12 = the number of elements of the input "
            "of shape (4, 3))") in told(lambda a, b: F.mse_loss(a, b, reduction="sum"))
    assert "yours is exactly 1/12 × the expected value (12 = the number" in told(
        lambda a, b: F.mse_loss(a, b) / 12)
    # per element, a tensor: one k everywhere (1/C for a mean that also divides by C)
    per_row = lambda a, b: ((a - b) ** 2).sum(1)  # noqa: E731
    assert "yours is exactly 1/3 × the expected value (3 = dimension 1 of the input of shape " \
        "(4, 3))" in told(lambda a, b: ((a - b) ** 2).mean(1), per_row)
    assert "yours is exactly -1 × the expected value (the sign is flipped)" in told(
        lambda a, b: -per_row(a, b), per_row)
    assert "yours is exactly 2.7 × the expected value, everywhere" in told(
        lambda a, b: 2.7 * per_row(a, b), per_row)
    assert "exactly" not in told(lambda a, b: per_row(a, b) + 1, per_row)  # not a factor
    assert "exactly" not in told(lambda a, b: 2.7 * F.mse_loss(a, b))  # one number, odd k
    assert "yours is exactly 1/ln 2 ≈ 1.443 × the expected value (a logarithm in base 2" in told(
        lambda a, b: -torch.log2(torch.sigmoid(a)), lambda a, b: -F.logsigmoid(a))
    assert "yours is exactly 1/ln 10 ≈ 0.4343" in told(
        lambda a, b: -torch.log10(torch.sigmoid(a)), lambda a, b: -F.logsigmoid(a))


def test_a_constant_factor_is_told_for_numbers_and_answers_too():
    assert "yours is exactly 2 × the expected value" in E.check_function(
        "task", lambda n: 2.0 * n / 7, lambda n: n / 7, [(3,)]).message
    assert "yours is exactly 1/2 × the expected value" in E.check_answer(
        "task", lambda: 16.0, 32.0).message
    assert "exactly" not in E.check_answer("task", lambda: 17.3, 32.0).message
    for one_number in (torch.tensor([16.0]), np.array([16.0]), np.float32(16.0)):
        assert "yours is exactly 1/2 × the expected value" in E.check_answer(
            "task", lambda a=one_number: a, 32.0).message
    # the helpers other chapters build their messages with carry it as well
    expected = torch.tensor([1.0, 2.0, 4.0])
    assert E.values_differ(expected * 2, expected).endswith(
        "; yours is exactly 2 × the expected value")


@pytest.mark.parametrize("got, expected", [
    (torch.zeros(3), torch.zeros(3)), (torch.ones(3), torch.zeros(3)),
    (torch.tensor([1.0, math.nan]), torch.tensor([1.0, 2.0])),
    (torch.tensor([math.inf, 2.0]), torch.tensor([1.0, 2.0])),
    (torch.ones(2), torch.ones(3)), (torch.ones(2, 3), torch.ones(3, 2)),
    ("1.0", 1.0), (None, 1.0), ([2.0, 4.0], 1.0), (torch.tensor([1 + 1j]), torch.tensor([1.0])),
    (torch.tensor([True]), torch.tensor([1.0])), (np.float32("nan"), 1.0), (2.0, math.inf),
    (torch.zeros(3), torch.ones(3)),
])
def test_the_factor_hint_never_raises_and_stays_silent_where_it_has_nothing_to_say(got,
                                                                                   expected):
    assert E.factor_hint(got, expected, (got, expected)) == ""


def test_shapes_that_do_not_broadcast_are_explained_for_every_task():
    verdict = E.check_function("task", lambda x: x - x.sum(1), lambda x: x, [(torch.ones(2, 3),)])
    assert "your function raised RuntimeError" in verdict.message
    assert "unless you pass keepdim=True" in verdict.message

    def broken_explanation(error, case):
        raise KeyError("the explanation itself failed")

    verdict = E.check_function("task", lambda x: x - x.sum(1), lambda x: x, [(torch.ones(2, 3),)],
                               explain=broken_explanation)
    assert "unless you pass keepdim=True" in verdict.message


def test_every_task_of_chapter_02_says_the_log_is_natural():
    notebook = nbformat.read(OWN_SOLUTIONS[1], as_version=4)
    assert "natural logarithm" in notebook.cells[0].source


def test_shape_dtype_and_type_problems_are_named():
    assert "expected shape (4, 3) but got (12,)" in mse.check_mse_grad(
        lambda x, y: (2 * (x - y) / x.numel()).flatten()).message
    assert "expected dtype torch.float32 but got torch.float64" in mse.check_mse(
        lambda x, y: ((x - y) ** 2).double().mean()).message
    assert "expected a tensor but your function returned float" in mse.check_mse(
        lambda x, y: ((x - y) ** 2).mean().item()).message
    assert "returned a NumPy float32 scalar; expected a torch tensor" in mse.check_mse(
        lambda x, y: np.float32(((x - y) ** 2).mean().item())).message
    assert "returned a NumPy float32 array of shape (7,); expected a torch tensor" in (
        mse.check_mse_grad(lambda x, y: (2 * (x - y) / x.numel()).numpy()).message)


def test_a_learner_mutating_its_input_cannot_spoil_the_reference():
    def in_place(x, y):
        x -= y
        return (x**2).mean()

    assert mse.check_mse(in_place).passed


def test_a_number_may_come_as_python_numpy_or_tensor_value():
    def check(answer):
        return E.check_answer("task", lambda: answer, 0.1)

    float32_rounded = np.nextafter(np.float32(0.1), np.float32(1))  # float32 arithmetic's result
    assert all(check(a).passed for a in (0.1, float32_rounded, np.array([0.1]), torch.tensor(0.1)))
    assert not any(check(a).passed for a in (True, "0.1", torch.tensor([0.1, 0.1]), 0.2))


def test_a_list_answer_may_come_as_a_tensor_or_an_array():
    for answer in ([0.1, 0.2], torch.tensor([0.1, 0.2]), np.array([0.1, 0.2])):
        assert E.check_answer("task", lambda a=answer: a, [0.1, 0.2]).passed
    assert not E.check_answer("task", lambda: torch.tensor([0.1, 0.3]), [0.1, 0.2]).passed


def test_a_mistake_that_agrees_on_one_input_only_does_not_get_its_hint():
    cases = [(1.0,), (3.0,)]
    square, double = (lambda x: x**2), (lambda x: 2 * x)
    mistake = [E.Diagnosis(double, "you doubled")]
    learner = lambda x: 2.0 if x == 1 else x + 4  # noqa: E731 - equals `double` at x = 1 only
    assert E.check_function("task", double, square, cases, mistake).message == "you doubled"
    verdict = E.check_function("task", learner, square, cases, mistake)
    assert verdict.status == E.WRONG and "doubled" not in verdict.message


def test_a_rounding_size_difference_is_shown_with_the_digits_that_differ():
    expected = torch.tensor([1.0, 1.097190001], dtype=torch.float64)
    message = E.values_differ(expected + torch.tensor([0.0, 1e-9], dtype=torch.float64), expected)
    assert message.startswith(" at index [1]: yours 1.09719") and "float32-sized" in message
    assert message.count("1.0971900") == 2  # digits enough to see where the two differ
    assert "float32-sized" not in E.values_differ(expected * 2, expected)


def test_every_correct_form_of_the_stable_log_softmax_passes():
    def by_hand(x):
        m = x.max(-1, keepdim=True).values
        return x - (m + torch.log(torch.exp(x - m).sum(-1, keepdim=True)))

    assert ce.check_log_softmax(by_hand).passed
    assert ce.check_log_softmax(lambda x: x - torch.logsumexp(x, -1, keepdim=True)).passed


def test_a_complex_answer_is_explained_not_crashed_on():
    eigvals = torch.linalg.eigvals
    for verdict in (E.check_answer("task", lambda: eigvals(torch.eye(2))[0], 1.0),
                    E.check_function("task", lambda A: 2 / eigvals(A)[0], lambda A: 2.0,
                                     [(torch.eye(2),)])):
        assert verdict.status == E.WRONG and "eigvalsh" in verdict.message
    assert E.as_number(torch.tensor(1 + 0j)) is None


def test_a_rounded_answer_is_told_it_is_close():
    verdict = E.check_answer("task", lambda: (1.0, 3.16), (1.0, 10**0.5))
    assert verdict.status == E.WRONG and "close, but not exact" in verdict.message
    assert "close" not in E.check_answer("task", lambda: (1.0, 3.0), (1.0, 10**0.5)).message


def test_verdicts_render_as_one_line():
    verdict = E.wrong("task", "what is wrong")
    assert str(verdict) == "✗ task: what is wrong"
    assert "#cf222e" in verdict._repr_html_() and "what is wrong" in verdict._repr_html_()
    assert str(E.passed("task")) == "✓ task: passed"


# --------------------------------------------------------------------------------------------
# Solutions, student notebooks, and the generator
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SOLUTIONS, ids=ids(SOLUTIONS))
def test_solutions_pass_every_checker(path):
    verdicts = verdicts_of(nbformat.read(path, as_version=4))
    assert len(verdicts) >= 3
    assert all(v.passed for v in verdicts), [str(v) for v in verdicts if not v.passed]


SCORE = re.compile(r"Score: (\d+)/(\d+) points \((\d+) of (\d+) tasks passed\)")
CHECKER_MODULE = re.compile(r"from (helpers\.exercises\.\w+) import")


def points_of_chapter(notebook) -> int:
    """The points of every task whose checkers the notebook imports."""
    modules = {m for cell in notebook.cells if cell.cell_type == "code"
               for m in CHECKER_MODULE.findall(cell.source)} - {"helpers.exercises.grading"}
    return sum(t.points for m in sorted(modules)
               for t in grading.TASKS[importlib.import_module(m).__name__])


@pytest.mark.parametrize("path", SOLUTIONS, ids=ids(SOLUTIONS))
def test_student_notebook_runs_and_reports_not_implemented_for_every_task(path):
    notebook = nbformat.read(student.student_path(path), as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent.parent)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o.data["text/plain"] for o in outputs if "text/plain" in o.get("data", {})]
    verdicts = [text for text in shown if not SCORE.match(text)]
    solution = verdicts_of(nbformat.read(path, as_version=4))
    assert len(verdicts) == len(solution)
    assert all("not implemented yet" in text for text in verdicts), verdicts
    # the last output is the score: nothing won, every task listed as not implemented
    summary = shown[-1]
    assert [text for text in shown if SCORE.match(text)] == [summary], shown
    header, *rows = summary.splitlines()
    points, total, passed, tasks = map(int, SCORE.match(header).groups())
    assert (points, passed, tasks) == (0, 0, len(solution))
    assert total == points_of_chapter(notebook)
    assert sorted(row.split()[0] for row in rows) == sorted(v.task for v in solution)
    assert all(row.split()[1].startswith("0/") and row.endswith("… not implemented yet")
               for row in rows), rows


def test_committed_student_notebooks_are_up_to_date():
    assert student.main(["--check"]) == 0, "run: python -m helpers.exercises.student"
    solutions = {p.name for p in SOLUTIONS}
    students = {p.name for p in (ROOT / "exercises").glob("*.ipynb")}
    assert students == solutions


def test_strip_solutions_keeps_indentation_and_the_rest():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n\nf"
    assert student.strip_solutions(source) == (
        "def f(x):\n    # your code here\n    raise NotImplementedError\n\n\nf")


def test_a_hidden_test_block_is_removed_and_the_solution_placeholder_stays():
    source = ("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"
              "check_f(f)\n### BEGIN HIDDEN TESTS\nfrom helpers.exercises.grading import grade\n\n"
              "grade(check_f, f, seed=12345)\n### END HIDDEN TESTS\nscore_summary()")
    assert student.strip_solutions(source) == (
        "def f(x):\n    # your code here\n    raise NotImplementedError\ncheck_f(f)\n"
        "score_summary()")


@pytest.mark.parametrize("path", SOLUTIONS, ids=ids(SOLUTIONS))
def test_student_notebooks_hold_no_hidden_test_and_no_seed(path):
    solution = nbformat.read(path, as_version=4)
    assert any(student.BEGIN_HIDDEN in c.source for c in solution.cells)
    text = nbformat.writes(student.student_notebook(solution))
    assert "HIDDEN TESTS" not in text and "grade(" not in text and "seed=" not in text


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1", "### BEGIN SOLUTION is never closed by ### END SOLUTION"),
    ("x = 1\n### END SOLUTION", "line 2: ### END SOLUTION without ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
     "line 2: ### BEGIN SOLUTION inside a block opened by ### BEGIN SOLUTION"),
    ("### BEGIN HIDDEN TESTS\ngrade(check, f, seed=1)",
     "### BEGIN HIDDEN TESTS is never closed by ### END HIDDEN TESTS"),
    ("grade(check, f, seed=1)\n### END HIDDEN TESTS",
     "line 2: ### END HIDDEN TESTS without ### BEGIN HIDDEN TESTS"),
    ("### BEGIN HIDDEN TESTS\n### BEGIN SOLUTION\n### END SOLUTION\n### END HIDDEN TESTS",
     "line 2: ### BEGIN SOLUTION inside a block opened by ### BEGIN HIDDEN TESTS"),
    ("### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n### END SOLUTION",
     "line 2: ### BEGIN HIDDEN TESTS inside a block opened by ### BEGIN SOLUTION"),
    ("### BEGIN SOLUTION\nx = 1\n### END HIDDEN TESTS",
     "line 3: ### END HIDDEN TESTS without ### BEGIN HIDDEN TESTS"),
    ("### BEGIN HIDDEN TESTS\nx = 1\n### END SOLUTION",
     "line 3: ### END SOLUTION without ### BEGIN SOLUTION"),
])
def test_unbalanced_markers_are_refused(source, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        student.strip_solutions(source)


def test_student_links_are_rebased():
    assert student.rebase_links("[c](../../notebooks/01_mse_loss.ipynb)") == (
        "[c](../notebooks/01_mse_loss.ipynb)")
    assert student.rebase_links("[w](https://example.org/x.ipynb)") == (
        "[w](https://example.org/x.ipynb)")


@pytest.mark.parametrize("check", [ce.check_log_softmax, ce.check_cross_entropy,
                                   ce.check_cross_entropy_ignore, ce.check_soft_cross_entropy])
def test_only_a_broadcast_error_is_told_as_a_missing_keepdim(check):
    """The keepdim explanation answers torch's 'must match the size' error alone; any other
    error the learner raises is reported as it came."""
    def learner(*args):
        raise TypeError("unsupported operand")

    verdict = str(check(learner))
    assert "keepdim" not in verdict and "your function raised TypeError: unsupported operand" \
        in verdict


def test_a_factor_beyond_the_small_integers_is_told_when_it_is_a_size_of_the_input():
    """The sizes of the inputs are candidates too: 20 elements (more than the small integers
    up to 16) make a sum 20 × the mean, and 1/20 for the other way round."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)

    def told(answer):
        return E.check_function("task", answer, F.mse_loss, [(x, y)]).message

    assert ("yours is exactly 20 × the expected value (20 = the number of elements of the input "
            "of shape (5, 4))") in told(lambda a, b: F.mse_loss(a, b, reduction="sum"))
    assert "yours is exactly 1/20 × the expected value (20 = the number" in told(
        lambda a, b: F.mse_loss(a, b) / 20)


def test_a_factor_of_2_is_not_blamed_on_a_dimension_of_size_2():
    """Sizes above 2 only name a factor: 2 is the forgotten 1/2 of a derivative far more often
    than a dimension that happens to be 2 long."""
    x = torch.randn(2, 3, generator=torch.Generator().manual_seed(0))
    message = E.check_function("task", lambda a: 2 * a.exp(), torch.exp, [(x,)]).message
    assert message.endswith("; yours is exactly 2 × the expected value")


def test_only_a_zero_division_is_explained_as_the_bias_correction():
    """Another arithmetic error (an overflow) is reported as it came, not as a divisor of 0."""
    def smooth_losses(losses, smoothing):
        raise OverflowError("math range error")

    message = lr_exercises.check_smooth_losses(smooth_losses).message
    assert "OverflowError: math range error" in message and "bias correction" not in message
