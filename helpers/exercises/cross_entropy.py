"""Checkers for the exercises of chapter 02, cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from helpers.exercises import Diagnosis, Verdict, check_answer, check_function, seeded


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


def check_log_softmax(log_softmax) -> Verdict:
    """Task 1: a numerically stable `log_softmax(x)` along the last dimension."""
    # float32 logits near 1000 carry an absolute rounding error of about 1e-4 (1000 * 2^-23)
    return check_function("log_softmax", log_softmax, lambda x: F.log_softmax(x, dim=-1),
                          _logits(), rtol=1e-5, atol=1e-4, diagnoses=[
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
        Diagnosis(_naive_log_softmax,
                  "overflow: exp of a logit near 1000 is inf; subtract the row maximum before "
                  "exp (the log-sum-exp trick)"),
    ])


def check_cross_entropy(cross_entropy) -> Verdict:
    """Task 2: `cross_entropy(logits, target)`, the mean over the batch, class-index targets."""
    def picked(x, y):
        return F.log_softmax(x, dim=1)[torch.arange(len(y)), y]

    return check_function("cross_entropy", cross_entropy, F.cross_entropy,
                          _logits_and_classes(), [
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
    ])


def check_cross_entropy_grad(cross_entropy_grad) -> Verdict:
    """Task 3: the gradient of the mean cross-entropy with respect to the logits, by hand."""
    def reference(x, y):
        return torch.func.grad(F.cross_entropy)(x, y)

    def p_minus_onehot(x, y):
        return F.softmax(x, dim=1) - F.one_hot(y, x.shape[1]).to(x.dtype)

    return check_function("cross_entropy_grad", cross_entropy_grad, reference,
                          _logits_and_classes()[:2], [
        Diagnosis(p_minus_onehot,
                  "that is the gradient of the sum: with the mean, divide by the batch size N"),
        Diagnosis(lambda x, y: -p_minus_onehot(x, y) / len(y),
                  "the sign is flipped: the gradient is softmax minus one-hot"),
        Diagnosis(lambda x, y: (x - F.one_hot(y, x.shape[1]).to(x.dtype)) / len(y),
                  "use the probabilities softmax(x), not the raw logits"),
    ])


def check_weighted_cross_entropy(weighted_cross_entropy) -> Verdict:
    """Task 4: class-weighted mean cross-entropy, normalised like torch."""
    g = seeded(24)
    cases = [(x, y, 0.2 + torch.rand(x.shape[1], generator=g, dtype=x.dtype))
             for x, y in _logits_and_classes()[:2]]

    def per_sample(x, y, w):
        return F.cross_entropy(x, y, weight=w, reduction="none")

    return check_function("weighted_cross_entropy", weighted_cross_entropy,
                          lambda x, y, w: F.cross_entropy(x, y, weight=w), cases, [
        Diagnosis(lambda x, y, w: per_sample(x, y, w).mean(),
                  "torch divides the weighted sum by the total weight of the targets, "
                  "sum_n w[y_n], not by the batch size"),
        Diagnosis(lambda x, y, w: per_sample(x, y, w).sum() / w.sum(),
                  "divide by the weights of the samples' true classes, sum_n w[y_n], not by the "
                  "sum of all class weights"),
        Diagnosis(lambda x, y, w: F.cross_entropy(x, y),
                  "the weights are missing: multiply each sample's loss by w[y_n]"),
    ])


def check_smoothed_targets(smoothed_targets) -> Verdict:
    """Task 5: the label-smoothed target distribution q of shape (N, C)."""
    cases = [(torch.tensor([0, 2, 1]), 3, 0.1), (torch.tensor([4, 0]), 5, 0.3),
             (torch.tensor([1]), 2, 0.0)]

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


def check_smoothing_floor(smoothing_floor) -> Verdict:
    """Task 6 (conceptual): the smallest possible loss with label smoothing 0.1 and C = 4."""
    q = torch.tensor([0.925, 0.025, 0.025, 0.025], dtype=torch.float64)
    entropy = -(q * q.log()).sum().item()
    return check_answer("smoothing_floor", smoothing_floor, entropy, [
        (0.0, "with smoothing the target is no longer one-hot: the loss cannot reach 0; "
              "its minimum is the entropy H(q), reached at p = q"),
        (-(0.925 * torch.tensor(0.925).log()).item(),
         "sum -q_c log q_c over all four classes, not only the true one"),
    ], rtol=1e-4)
