"""Checkers for the exercises of chapter 02, cross-entropy.

Every loss is in nats (natural log, as torch's), and every checker feeds extreme logits (±1000,
±1e4) next to ordinary ones: a formula that is right on paper but overflows is caught there.

The notebook asks for basic tensor operations, not `F.log_softmax`, `F.cross_entropy`,
`F.softplus` or `F.binary_cross_entropy_with_logits`: every task that computes a loss forbids
them in every form (`BUILT_IN_LOSSES`), task 3 forbids autograd too ("no autograd"), and the
softplus tasks 7-9 also forbid the built-ins that are a stable softplus under another name
(`STABLE_SOFTPLUS`). Tasks 5 and 6 build a target and answer a question: none of these helps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from helpers.exercises import (
    WRONG,
    Diagnosis,
    Sealed,
    Verdict,
    as_number,
    broadcast_failed,
    check_answer,
    check_function,
    seeded,
    wrong,
)
from helpers.exercises.grading import task
from helpers.exercises.mse_loss import AUTOGRAD

LN2, LN10 = math.log(2), math.log(10)

# What the notebook rules out, by the names the call watcher sees (helpers.exercises.grading):
# F.log_softmax is Python code calling the built-in Tensor.log_softmax; F.cross_entropy ends in
# torch._C._nn.cross_entropy_loss and F.nll_loss in torch._C._nn.nll_loss_nd; F.softplus *is* the
# built-in torch._C._nn.softplus; torch.special.log_softmax is
# torch._C._special.special_log_softmax.
LOG_SOFTMAX = ("torch.nn.functional.log_softmax", "torch.log_softmax", "torch.Tensor.log_softmax",
               "torch._log_softmax", "torch._C._special.special_log_softmax")
CROSS_ENTROPY = ("torch.nn.functional.cross_entropy", "torch._C._nn.cross_entropy_loss",
                 "torch.nn.functional.nll_loss", "torch._C._nn.nll_loss",
                 "torch._C._nn.nll_loss_nd", "torch._C._nn.nll_loss2d")
SOFTPLUS = ("torch._C._nn.softplus",)
BCE_WITH_LOGITS = ("torch.nn.functional.binary_cross_entropy_with_logits",
                   "torch.binary_cross_entropy_with_logits")
BUILT_IN_LOSSES = LOG_SOFTMAX + CROSS_ENTROPY + SOFTPLUS + BCE_WITH_LOGITS
# softplus(x) = -logsigmoid(-x) = logaddexp(x, 0): the stable form, done by torch
STABLE_SOFTPLUS = ("torch._C._nn.log_sigmoid", "torch.logaddexp", "torch.Tensor.logaddexp")


def _logits() -> list[tuple[torch.Tensor]]:
    g = seeded(2)
    return [(torch.randn(5, 4, generator=g),),
            (torch.randn(3, 6, generator=g, dtype=torch.float64),),
            (torch.tensor([[1000.0, 999.0, 0.0], [-1000.0, 0.0, 1000.0]]),),
            (torch.tensor([[1000.0, 999.0], [-1000.0, -999.0]]),),  # rows far apart
            (torch.randn(2, 3, 4, generator=g, dtype=torch.float64),)]  # any number of dims


def _logits_and_classes() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = seeded(20)
    return [(torch.randn(6, 4, generator=g), torch.tensor([0, 3, 1, 1, 2, 0])),
            (5 * torch.randn(3, 5, generator=g, dtype=torch.float64), torch.tensor([4, 0, 2])),
            (torch.tensor([[300.0, 0.0, -300.0]]), torch.tensor([2]))]


def _naive_log_softmax(x):
    return torch.log(torch.exp(x) / torch.exp(x).sum(dim=-1, keepdim=True))


def _without_max_back(x):
    """log-softmax whose log-sum-exp forgot to add the maximum back: log sum exp(x - m)."""
    m = x.max(dim=-1, keepdim=True).values
    return x - torch.log(torch.exp(x - m).sum(dim=-1, keepdim=True))


def _keepdim_missing(logits: torch.Tensor):
    """An `explain` for `check_function`: a reduction over the classes without keepdim=True,
    told with the shape that came and the shape that was needed."""
    def explain(error: Exception, case: tuple) -> str | None:
        if not broadcast_failed(error):
            return None
        shape = tuple(logits(case).shape)
        return (f"a reduction without keepdim=True: over the classes (the last dimension) of "
                f"logits of shape {shape}, x.max(dim=-1) (or .sum(dim=-1), torch.logsumexp) has "
                f"shape {shape[:-1]}, but to broadcast against the logits it must have shape "
                f"{shape[:-1] + (1,)}: pass keepdim=True (your function raised "
                f"{type(error).__name__}: {error})")
    return explain


def _first(case: tuple) -> torch.Tensor:
    return case[0]


def _either(*explains):
    """An `explain` that tries each of `explains` in turn."""
    def explain(error: Exception, case: tuple) -> str | None:
        return next((told for e in explains if (told := e(error, case))), None)
    return explain


@task(forbid=BUILT_IN_LOSSES)
def check_log_softmax(log_softmax) -> Verdict:
    """Task 1: a numerically stable `log_softmax(x)` along the last dimension."""
    # float32 logits near 1000 carry an absolute rounding error of about 1e-4 (1000 * 2^-23)
    return check_function("log_softmax", log_softmax, lambda x: F.log_softmax(x, dim=-1),
                          _logits(), rtol=1e-5, atol=1e-4,
                          explain=_keepdim_missing(_first), diagnoses=[
        Diagnosis(lambda x: F.softmax(x, dim=-1),
                  "you returned the probabilities: take their logarithm (better: x - logsumexp)"),
        Diagnosis(lambda x: F.log_softmax(x, dim=0),
                  "normalise along the class dimension (the last one), not over the batch"),
        Diagnosis(lambda x: F.log_softmax(x, dim=1),
                  "normalise along the LAST dimension, dim=-1: for an input with more than two "
                  "dimensions, dim=1 is not the last one"),
        Diagnosis(lambda x: (x - x.max()) - torch.log(torch.exp(x - x.max()).sum(
                      dim=-1, keepdim=True)),
                  "subtract each row's own maximum, x.max(dim=-1, keepdim=True): with one "
                  "maximum for the whole tensor, a row far below it underflows to log(0) = -inf"),
        Diagnosis(lambda x: x - x.max(dim=-1, keepdim=True).values,
                  "subtracting the maximum is only the first step: also subtract "
                  "log(sum(exp(x - max)))"),
        Diagnosis(_without_max_back,
                  "add the maximum back: logsumexp(x) = m + log(sum(exp(x - m))); yours "
                  "subtracts log(sum(exp(x - m))) alone, so every row is off by its maximum m"),
        Diagnosis(_naive_log_softmax,
                  "overflow: exp of a logit near 1000 is inf; subtract the row maximum before "
                  "exp (the log-sum-exp trick)"),
        Diagnosis(lambda x: F.log_softmax(x, dim=-1) / LN2,
                  "that is log2 of the probabilities (bits): yours is 1/ln 2 ≈ 1.443 × the "
                  "natural log; use torch.log, the natural log"),
    ])


def _bits_and_digits(reference, what: str) -> list[Diagnosis]:
    """`reference` computed with log2 and log10 instead of the natural log."""
    return [Diagnosis(lambda *a: reference(*a) / LN2,
                      f"{what} is in bits (log2): yours is 1/ln 2 ≈ 1.443 × the value in nats; "
                      "use the natural log, torch.log, as torch does"),
            Diagnosis(lambda *a: reference(*a) / LN10,
                      f"{what} uses log10: yours is 1/ln 10 ≈ 0.4343 × the value in nats; use "
                      "the natural log, torch.log, as torch does")]


@task(forbid=BUILT_IN_LOSSES)
def check_cross_entropy(cross_entropy) -> Verdict:
    """Task 2: `cross_entropy(logits, target)`, the mean over the batch, class-index targets."""
    def picked(x, y):
        return F.log_softmax(x, dim=1)[torch.arange(len(y)), y]

    return check_function("cross_entropy", cross_entropy, F.cross_entropy,
                          _logits_and_classes(), explain=_keepdim_missing(_first), diagnoses=[
        Diagnosis(lambda x, y: -picked(x, y).sum(),
                  "your loss is the sum, not the mean: divide by the batch size"),
        Diagnosis(lambda x, y: picked(x, y).mean(),
                  "the sign is flipped: the loss is MINUS the log-probability of the true class"),
        Diagnosis(lambda x, y: -F.softmax(x, dim=1)[torch.arange(len(y)), y].mean(),
                  "take the log of the probability: the loss is -log p, not -p"),
        Diagnosis(lambda x, y: -F.log_softmax(x, dim=1)[:, y].mean(),
                  "log_p[:, target] picks an (N, N) block, every sample against every target; "
                  "use log_p[torch.arange(N), target]"),
        Diagnosis(lambda x, y: -F.log_softmax(F.softmax(x, dim=1), dim=1)[
                      torch.arange(len(y)), y].mean(),
                  "you applied softmax twice: cross-entropy takes the raw logits"),
        Diagnosis(lambda x, y: -_without_max_back(x)[torch.arange(len(y)), y].mean(),
                  "add the maximum back in the log-sum-exp: logsumexp(x) = m + log(sum(exp(x - "
                  "m))); without m, each sample's loss is off by its row maximum"),
        *_bits_and_digits(F.cross_entropy, "your loss"),
    ])


@task(forbid=BUILT_IN_LOSSES + AUTOGRAD)
def check_cross_entropy_grad(cross_entropy_grad) -> Verdict:
    """Task 3: the gradient of the mean cross-entropy with respect to the logits, by hand."""
    def reference(x, y):
        return torch.func.grad(F.cross_entropy)(x, y)

    def p_minus_onehot(x, y):
        return F.softmax(x, dim=1) - F.one_hot(y, x.shape[1]).to(x.dtype)

    return check_function("cross_entropy_grad", cross_entropy_grad, reference,
                          _logits_and_classes()[:2], explain=_keepdim_missing(_first), diagnoses=[
        Diagnosis(p_minus_onehot,
                  "that is the gradient of the sum: with the mean, divide by the batch size N"),
        Diagnosis(lambda x, y: -p_minus_onehot(x, y) / len(y),
                  "the sign is flipped: the gradient is softmax minus one-hot"),
        Diagnosis(lambda x, y: (x - F.one_hot(y, x.shape[1]).to(x.dtype)) / len(y),
                  "use the probabilities softmax(x), not the raw logits"),
    ])


@task(forbid=BUILT_IN_LOSSES)
def check_weighted_cross_entropy(weighted_cross_entropy) -> Verdict:
    """Task 4: class-weighted mean cross-entropy, normalised like torch."""
    g = seeded(24)
    cases = [(x, y, 0.2 + torch.rand(x.shape[1], generator=g, dtype=x.dtype))
             for x, y in _logits_and_classes()[:2]]

    def per_sample(x, y, w):
        return F.cross_entropy(x, y, weight=w, reduction="none")

    return check_function("weighted_cross_entropy", weighted_cross_entropy,
                          lambda x, y, w: F.cross_entropy(x, y, weight=w), cases,
                          explain=_keepdim_missing(_first), diagnoses=[
        Diagnosis(lambda x, y, w: per_sample(x, y, w).mean(),
                  "torch divides the weighted sum by the total weight of the targets, "
                  "sum_n w[y_n], not by the batch size"),
        Diagnosis(lambda x, y, w: per_sample(x, y, w).sum() / w.sum(),
                  "divide by the weights of the samples' true classes, sum_n w[y_n], not by the "
                  "sum of all class weights"),
        Diagnosis(lambda x, y, w: F.cross_entropy(x, y),
                  "the weights are missing: multiply each sample's loss by w[y_n]"),
    ])


@task()
def check_smoothed_targets(smoothed_targets) -> Verdict:
    """Task 5: the label-smoothed target distribution q of shape (N, C)."""
    g = seeded(50)

    def drawn(n: int, n_classes: int) -> tuple[torch.Tensor, int, float]:
        epsilon = round(0.05 + 0.4 * torch.rand((), generator=g).item(), 2)
        return torch.randint(n_classes, (n,), generator=g), n_classes, epsilon

    cases = [drawn(3, 3), drawn(2, 5), (torch.tensor([1]), 2, 0.0)]  # epsilon 0: one-hot

    def reference(y, n_classes, epsilon):
        return (1 - epsilon) * F.one_hot(y, n_classes).float() + epsilon / n_classes

    return check_function("smoothed_targets", smoothed_targets, reference, cases, [
        Diagnosis(lambda y, c, e: (1 - e) * F.one_hot(y, c).float()
                  + e / (c - 1) * (1 - F.one_hot(y, c).float()),
                  "torch spreads epsilon over ALL C classes, the true one included: add "
                  "epsilon / C everywhere"),
        Diagnosis(lambda y, c, e: F.one_hot(y, c).float() + e / c,
                  "the true class keeps only 1 - epsilon: multiply the one-hot part by "
                  "(1 - epsilon), so that every row sums to 1"),
        Diagnosis(lambda y, c, e: (1 - e) * F.one_hot(y, c).float(),
                  "the epsilon / C share for every class is missing"),
        Diagnosis(lambda y, c, e: (1 - e) * F.one_hot(y, c).float()
                  + e / c * (1 - F.one_hot(y, c).float()),
                  "the true class gets its epsilon / C share too: q = (1 - epsilon) one_hot + "
                  "epsilon / C, so the true class has 1 - epsilon + epsilon / C"),
    ])


# The answer of task 6 to four decimals, sealed (helpers.exercises.seal): the task asks for four
# decimals, so the learner's answer is rounded to four before it is compared.
SMOOTHING_FLOOR = Sealed("54ee33346d4bbbb7f9c37643adfe785918657ac5e2f9c771f4ca3512936d297c")
_OTHER_BASES = (
    (LN2, "that is the entropy in bits (log2): the loss is in nats, with the natural log; yours "
          "is 1/ln 2 ≈ 1.443 × the answer"),
    (LN10, "that is the entropy with log10: the loss is in nats, with the natural log; yours is "
           "1/ln 10 ≈ 0.4343 × the answer"),
)


def _to_four_decimals(answer: Callable[[], object], scale: float = 1.0) -> Callable[[], object]:
    """`answer` whose number comes back times `scale`, rounded to four decimals; anything that is
    not one number (or not a function) comes back as it is, for `check_answer` to describe."""
    if not callable(answer):
        return answer

    def rounded():
        got = answer()
        number = as_number(got)
        return got if number is None else round(number * scale, 4)
    return rounded


@task()
def check_smoothing_floor(smoothing_floor) -> Verdict:
    """Task 6 (conceptual): the smallest possible loss with label smoothing 0.1 and C = 4, to
    four decimals."""
    verdict = check_answer("smoothing_floor", _to_four_decimals(smoothing_floor),
                           SMOOTHING_FLOOR, [
        (0.0, "with smoothing the target is no longer one-hot: the loss cannot reach 0; "
              "its minimum is the entropy H(q), reached at p = q"),
        (0.0721, "sum -q_c log q_c over all four classes, not only the true one"),  # 0.925's
    ])
    if verdict.status != WRONG:
        return verdict
    for ln_base, hint in _OTHER_BASES:  # a logarithm in base 2 or 10 divides the answer by ln b
        if check_answer("smoothing_floor", _to_four_decimals(smoothing_floor, ln_base),
                        SMOOTHING_FLOOR).passed:
            return wrong("smoothing_floor", hint)
    return verdict


# --------------------------------------------------------------------------------------------
# Binary cross-entropy with logits, softplus, pos_weight, ignore_index, probability targets
# --------------------------------------------------------------------------------------------

_EXTREME = [1e4, -1e4, 1e4, -1e4, 0.0, 3.0, -30.0, 30.0]


def _softplus(x):
    """softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e^{-|x|}), finite for any x."""
    return x.clamp(min=0) + torch.log1p(torch.exp(-x.abs()))


@task(forbid=BUILT_IN_LOSSES + STABLE_SOFTPLUS)
def check_softplus(softplus) -> Verdict:
    """Task 7: `softplus(x)` = log(1 + e^x), finite and exact for logits of ±1e4."""
    g = seeded(70)
    cases = [(torch.randn(7, generator=g),),
             (5 * torch.randn(4, 3, generator=g, dtype=torch.float64),),
             (torch.tensor(_EXTREME),),
             (torch.tensor(_EXTREME, dtype=torch.float64),)]
    return check_function("softplus", softplus, F.softplus, cases, [
        Diagnosis(lambda x: torch.log(1 + torch.exp(x)),
                  "overflow: exp(1e4) is inf in every dtype, so log(1 + exp(x)) is inf; use "
                  "softplus(x) = max(x, 0) + log1p(exp(-|x|)), whose exp never sees a positive "
                  "number"),
        Diagnosis(lambda x: x + torch.log1p(torch.exp(-x)),
                  "x + log1p(exp(-x)) is exact on paper, but exp(-x) overflows for x = -1e4: "
                  "split off max(x, 0) and take exp of -|x| only"),
        Diagnosis(lambda x: x.clamp(min=0) + torch.log1p(torch.exp(-x)),
                  "the absolute value is missing: max(x, 0) + log1p(exp(-|x|)); with exp(-x) "
                  "a negative x gives softplus(-x), and x = -1e4 overflows"),
        Diagnosis(lambda x: x.clamp(min=0),
                  "that is the ReLU max(x, 0): the smooth part log1p(exp(-|x|)) is missing"),
        Diagnosis(lambda x: torch.log1p(torch.exp(-x.abs())),
                  "the max(x, 0) part is missing: log(1 + e^x) = max(x, 0) + log1p(e^{-|x|})"),
    ])


def _binary_cases(seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(logits, targets): hard 0/1 targets, soft targets in [0, 1], and extreme logits."""
    g = seeded(seed)
    x32 = 3 * torch.randn(8, generator=g)
    x64 = 3 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    extreme = torch.tensor([_EXTREME[:4], _EXTREME[4:]])
    hard = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0]])
    return [(x32, torch.bernoulli(torch.full((8,), 0.5), generator=g)),
            (x64, torch.rand(4, 3, generator=g, dtype=torch.float64)),
            (extreme, hard), (extreme.double(), hard.double())]


def _naive_bce(x, y, pos_weight=1.0):
    """-(p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))), mean: log(0) for extreme logits."""
    s = torch.sigmoid(x)
    return -(pos_weight * y * torch.log(s) + (1 - y) * torch.log(1 - s)).mean()


@task(forbid=BUILT_IN_LOSSES + STABLE_SOFTPLUS)
def check_bce_with_logits(bce_with_logits) -> Verdict:
    """Task 8: `bce_with_logits(logits, target)`, the mean of
    max(x, 0) - x y + log1p(exp(-|x|)), as `F.binary_cross_entropy_with_logits`."""
    def stable(x, y, sign=-1.0, keep_max=True, absolute=True):
        smooth = torch.log1p(torch.exp(-(x.abs() if absolute else x)))
        return (keep_max * x.clamp(min=0) + sign * x * y + smooth).mean()

    return check_function("bce_with_logits", bce_with_logits,
                          F.binary_cross_entropy_with_logits, _binary_cases(80), [
        Diagnosis(_naive_bce,
                  "log(sigmoid(x)) is log(0) = -inf for a logit of -1e4 (and 0 × -inf = nan): "
                  "use the stable form max(x, 0) - x y + log1p(exp(-|x|))"),
        Diagnosis(lambda x, y: F.binary_cross_entropy(torch.sigmoid(x), y),
                  "binary_cross_entropy on sigmoid(x) clamps each log at -100, so a logit of "
                  "±1e4 on the wrong side costs 100 instead of 1e4: work from the logits, "
                  "max(x, 0) - x y + log1p(exp(-|x|))"),
        Diagnosis(lambda x, y: stable(x, y, sign=1.0),
                  "the sign of x y: the loss is max(x, 0) - x y + log1p(exp(-|x|))"),
        Diagnosis(lambda x, y: stable(x, y, keep_max=False),
                  "the max(x, 0) term is missing: max(x, 0) - x y + log1p(exp(-|x|))"),
        Diagnosis(lambda x, y: stable(x, y, absolute=False),
                  "take exp of -|x|, not of -x: exp(-x) overflows for x = -1e4 (and log1p(exp(-x)) "
                  "is not the right term for x < 0)"),
    ])


@task(forbid=BUILT_IN_LOSSES + STABLE_SOFTPLUS)
def check_bce_pos_weight(bce_pos_weight) -> Verdict:
    """Task 9: `bce_pos_weight(logits, target, pos_weight)`, as
    `F.binary_cross_entropy_with_logits(..., pos_weight=pos_weight)`: the mean of
    -(p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))), one p per class (the last dimension)."""
    g = seeded(90)
    x = 3 * torch.randn(6, 3, generator=g)
    x64 = 3 * torch.randn(5, 2, generator=g, dtype=torch.float64)
    extreme = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 2.0]])
    cases = [(x, torch.bernoulli(torch.full((6, 3), 0.4), generator=g),
              torch.tensor([1.0, 3.0, 0.5])),
             (x64, torch.rand(5, 2, generator=g, dtype=torch.float64),
              torch.tensor([2.0, 10.0], dtype=torch.float64)),
             (extreme, torch.tensor([[0.0, 1.0, 1.0], [0.0, 1.0, 0.0]]),
              torch.tensor([3.0, 2.0, 5.0]))]

    def reference(x, y, p):
        return F.binary_cross_entropy_with_logits(x, y, pos_weight=p)

    def terms(x, y, p_positive, p_negative):
        # -log sigmoid(x) = softplus(-x),  -log(1 - sigmoid(x)) = softplus(x)
        return (p_positive * y * _softplus(-x) + p_negative * (1 - y) * _softplus(x))

    return check_function("bce_pos_weight", bce_pos_weight, reference, cases, [
        Diagnosis(lambda x, y, p: terms(x, y, 1.0, p).mean(),
                  "pos_weight multiplies the POSITIVE term, y log sigmoid(x), not the negative "
                  "one: it makes missed positives cost more"),
        Diagnosis(lambda x, y, p: F.binary_cross_entropy_with_logits(x, y, weight=p),
                  "that weighs the whole loss of each class (weight=); pos_weight multiplies "
                  "only the positive term y log sigmoid(x)"),
        Diagnosis(lambda x, y, p: terms(x, y, p, 1.0).sum() / (1 + (p - 1) * y).sum(),
                  "the mean divides by the number of elements, not by the total weight: "
                  "pos_weight is not normalised away like cross_entropy's class weights"),
        Diagnosis(lambda x, y, p: _naive_bce(x, y, p),
                  "log(sigmoid(x)) is log(0) = -inf for a logit of -1e4 (and 0 × -inf = nan): "
                  "use -log sigmoid(x) = softplus(-x) and -log(1 - sigmoid(x)) = softplus(x)"),
        Diagnosis(lambda x, y, p: terms(x, y, 1 / p, 1.0).mean(),
                  "pos_weight multiplies the positive term, it does not divide it: "
                  "pos_weight = 3 makes a positive count three times"),
    ])


@task(forbid=BUILT_IN_LOSSES)
def check_cross_entropy_ignore(cross_entropy_ignore) -> Verdict:
    """Task 10: `cross_entropy_ignore(logits, target, ignore_index)`, as
    `F.cross_entropy(..., ignore_index=ignore_index)`: the mean over the samples kept."""
    g = seeded(100)
    extreme = torch.tensor([[1e4, -1e4, 0.0], [0.0, 1e4, -1e4], [-1e4, 0.0, 1e4]])
    cases = [(torch.randn(6, 4, generator=g), torch.tensor([0, -100, 3, 1, -100, 2]), -100),
             (5 * torch.randn(5, 3, generator=g, dtype=torch.float64),
              torch.tensor([0, 2, 0, 1, 2]), 0),  # a class may be the one ignored
             (extreme, torch.tensor([2, -100, 0]), -100),
             (torch.randn(2, 3, generator=g), torch.tensor([-100, -100]), -100)]  # 0/0 = nan

    def reference(x, y, ignore_index):
        return F.cross_entropy(x, y, ignore_index=ignore_index)

    def kept_losses(x, y, ignore_index):
        keep = y != ignore_index
        return -F.log_softmax(x[keep], dim=1)[torch.arange(int(keep.sum())), y[keep]]

    def explain(error: Exception, case: tuple) -> str | None:
        x, y, ignore_index = case
        if isinstance(error, IndexError) and (y == ignore_index).any():
            return (f"a target equal to ignore_index ({ignore_index}) is not a class index: "
                    "leave those samples out before picking log p[n, target[n]] (your function "
                    f"raised IndexError: {error})")
        return None

    return check_function("cross_entropy_ignore", cross_entropy_ignore, reference, cases, [
        Diagnosis(lambda x, y, i: kept_losses(x, y, i).sum() / len(y),
                  "the ignored samples still count in the mean's denominator: divide by the "
                  "number of samples KEPT, (target != ignore_index).sum(), not by N"),
        Diagnosis(lambda x, y, i: F.cross_entropy(x, y),
                  "samples whose target equals ignore_index still count: leave out every sample "
                  "with target == ignore_index (use the argument: it is not always -100)"),
        Diagnosis(lambda x, y, i: kept_losses(x, y, i).sum() / max(int((y != i).sum()), 1),
                  "when every target is ignored, torch's mean is 0/0 = nan, not 0: do not guard "
                  "the division"),
        Diagnosis(lambda x, y, i: -F.log_softmax(x, dim=1)[torch.arange(int((y != i).sum())),
                                                          y[y != i]].mean(),
                  "you kept the right targets but not the matching logits: select the rows "
                  "logits[keep] too, where keep = target != ignore_index"),
    ], explain=_either(explain, _keepdim_missing(_first)))


@task(forbid=BUILT_IN_LOSSES)
def check_soft_cross_entropy(soft_cross_entropy) -> Verdict:
    """Task 11: `soft_cross_entropy(logits, probs, weight)` with probability targets, as
    `F.cross_entropy(logits, probs, weight=weight)`: the mean over the N samples of
    -sum_c w_c q_c log p_c (weight None: every w_c = 1)."""
    g = seeded(110)
    extreme = torch.tensor([[1e4, -1e4, 0.0], [0.0, 0.0, 1e4]])
    x64 = 4 * torch.randn(4, 3, generator=g, dtype=torch.float64)
    cases = [(torch.randn(5, 4, generator=g),
              F.softmax(2 * torch.randn(5, 4, generator=g), dim=1), None),
             (x64, torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0], [0.2, 0.2, 0.6],
                                 [0.1, 0.8, 0.1]], dtype=torch.float64), None),
             (extreme, torch.tensor([[0.5, 0.0, 0.5], [0.2, 0.3, 0.5]]), None),
             (x64, F.softmax(torch.randn(4, 3, generator=g, dtype=torch.float64), dim=1),
              0.2 + torch.rand(3, generator=g, dtype=torch.float64))]

    def reference(x, q, w):
        return F.cross_entropy(x, q, weight=w)

    def weighted(x, q, w):
        """-w_c q_c log p_c, per element."""
        return -(q if w is None else w * q) * F.log_softmax(x, dim=1)

    def kl(x, q, w):
        entropy_terms = torch.xlogy(q, q) if w is None else w * torch.xlogy(q, q)
        return (weighted(x, q, w) + entropy_terms).sum(dim=1).mean()

    return check_function("soft_cross_entropy", soft_cross_entropy, reference, cases,
                          explain=_keepdim_missing(_first), diagnoses=[
        Diagnosis(lambda x, q, w: weighted(x, q, w).mean(),
                  "sum over the classes, then average over the samples: .mean() over all N × C "
                  "elements divides by C once too often"),
        Diagnosis(lambda x, q, w: weighted(x, q, w).sum() / (q if w is None else w * q).sum(),
                  "with probability targets torch divides by the number of samples N, not by "
                  "the total weight sum_n sum_c w_c q_nc as it does for class-index targets"),
        Diagnosis(lambda x, q, w: F.cross_entropy(x, q.argmax(dim=1), weight=w),
                  "you turned the probabilities into hard labels (argmax): every class's share "
                  "q_c counts, -sum_c q_c log p_c"),
        Diagnosis(kl,
                  "that is the KL divergence, which subtracts the targets' entropy: the "
                  "cross-entropy is -sum_c q_c log p_c alone"),
        Diagnosis(lambda x, q, w: F.cross_entropy(x, q),
                  "the class weights are missing: multiply each term by w_c"),
    ])
