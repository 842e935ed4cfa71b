"""Checkers for the exercises of chapter 03, gradient descent.

The exercises ask for tensor operations and `torch.linalg`, not `torch.optim`: every task forbids
`BUILT_IN_OPTIMIZERS`, and task 6, whose gradient is written by hand, `AUTOGRAD` too. Chapters 04
and 05 forbid them by the same names.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from helpers.exercises import Diagnosis, Sealed, Verdict, check_answer, check_function, seeded
from helpers.exercises.grading import task

BUILT_IN_OPTIMIZERS = ("torch.optim", "torch._fused_sgd_", "torch._fused_adagrad_",
                       "torch._fused_adam_", "torch._fused_adamw_")
"""What "not torch.optim" forbids: its optimizers, their functional forms (torch.optim.*), and the
fused kernels they run (built-ins of torch itself)."""

AUTOGRAD = ("torch._tensor.Tensor.backward", "torch.autograd.backward", "torch.autograd.grad",
            "torch.autograd.functional", "torch.autograd.forward_ad", "torch._functorch.apis.grad",
            "torch._functorch.apis.grad_and_value", "torch._functorch.eager_transforms")
"""What "not autograd" forbids, by the names a call has while it runs: loss.backward(),
torch.autograd.grad / backward / functional.*, forward-mode dual numbers, and torch.func's
transforms (grad, grad_and_value, vjp, jvp, jacrev, jacfwd, hessian, which live in
torch._functorch). torch.no_grad and torch.enable_grad (torch.autograd.grad_mode) stay allowed."""


def _rotated(eigenvalues: list[float], angle: float, dtype=torch.float64) -> Tensor:
    """R diag(eigenvalues) R^T, R a rotation by `angle` in the plane of the first two axes."""
    rotation = torch.eye(len(eigenvalues), dtype=torch.float64)
    c, s = math.cos(angle), math.sin(angle)
    rotation[:2, :2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    matrix = rotation @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ rotation.T
    return matrix.to(dtype)


def _matrices() -> list[Tensor]:
    """Symmetric positive definite: rotated (its diagonal is not its spectrum), diagonal, random.

    The first two are fixed, as the hints of tasks 2 and 4 need them (a diagonal that differs
    from the spectrum; a diagonal matrix whose middle eigenvalue has the smallest factor at
    lr 0.45); the third is drawn, so a hidden test sees another one.
    """
    g = seeded(3)
    factor = torch.randn(4, 4, generator=g, dtype=torch.float64)
    return [_rotated([1.0, 9.0], 0.6), torch.diag(torch.tensor([2.0, 0.5, 3.0])),
            factor @ factor.T + 0.5 * torch.eye(4, dtype=torch.float64)]


def _eigenvalues(matrix: Tensor) -> Tensor:
    return torch.linalg.eigvalsh(matrix.double())


# --------------------------------------------------------------------------------------------
# Task 1: one step on a quadratic
# --------------------------------------------------------------------------------------------


def _quadratic_gradient(A, b, theta):
    # grad f(theta) = A theta - b   for f = 1/2 theta^T A theta - b^T theta, A symmetric
    return A @ theta - b


@task(forbid=BUILT_IN_OPTIMIZERS)
def check_gd_step(gd_step) -> Verdict:
    """Task 1: `gd_step(A, b, theta, lr)`, one gradient-descent step on
    f(theta) = 1/2 theta^T A theta - b^T theta."""
    g = seeded(31)
    cases = []
    for matrix in _matrices():
        n = matrix.shape[0]
        cases.append((matrix, torch.randn(n, generator=g, dtype=matrix.dtype),
                       torch.randn(n, generator=g, dtype=matrix.dtype), 0.1))

    def value(A, b, theta):
        return 0.5 * theta @ A @ theta - b @ theta

    return check_function("gd_step", gd_step,
                          lambda A, b, theta, lr: theta - lr * _quadratic_gradient(A, b, theta),
                          cases, [
        Diagnosis(lambda A, b, theta, lr: theta + lr * _quadratic_gradient(A, b, theta),
                  "you stepped uphill: gradient DEScent moves against the gradient, "
                  "theta - lr * grad"),
        Diagnosis(lambda A, b, theta, lr: theta - lr * A @ theta,
                  "the linear term is missing: the gradient of -b^T theta is -b, so "
                  "grad f = A theta - b"),
        Diagnosis(lambda A, b, theta, lr: theta - lr * (A @ theta + b),
                  "the sign of b: the gradient of -b^T theta is -b, so grad f = A theta - b"),
        Diagnosis(lambda A, b, theta, lr: theta - lr * (0.5 * A @ theta - b),
                  "the gradient of 1/2 theta^T A theta is A theta (A symmetric): the 1/2 "
                  "cancels the 2 of the square"),
        Diagnosis(lambda A, b, theta, lr: theta - lr * value(A, b, theta),
                  "you stepped by the value f(theta), a number; the step uses the gradient, a "
                  "vector"),
    ])


# --------------------------------------------------------------------------------------------
# Task 2: the stable limit; task 4: the rate
# --------------------------------------------------------------------------------------------

_DIAGONAL_IS_NOT_THE_SPECTRUM = ("the diagonal entries are the eigenvalues only of a diagonal "
                                 "matrix: compute the spectrum with torch.linalg.eigvalsh(A)")


@task(forbid=BUILT_IN_OPTIMIZERS)
def check_stable_lr(stable_lr) -> Verdict:
    """Task 2: `stable_lr(A)`, the largest learning rate for which gradient descent converges
    on f = 1/2 theta^T A theta: 2 / lambda_max, as a float."""
    def top(A):
        return _eigenvalues(A)[-1].item()

    def bottom(A):
        return _eigenvalues(A)[0].item()

    rotated, diagonal, random = _matrices()
    # the 3x3 first: on a 2x2, 2 / trace = 2 / (lambda_min + lambda_max) and the hints would mix
    return check_function("stable_lr", stable_lr, lambda A: 2 / top(A),
                          [(diagonal,), (rotated,), (random,)], [
        Diagnosis(lambda A: 2 / bottom(A),
                  "the STEEPEST direction breaks first: the limit is 2 / lambda_max, not "
                  "2 / lambda_min"),
        Diagnosis(lambda A: 1 / top(A),
                  "1 / lambda_max is where the steep direction vanishes in one step; between "
                  "1/lambda_max and 2/lambda_max the iterates oscillate but still converge"),
        Diagnosis(lambda A: 2 / (bottom(A) + top(A)),
                  "2 / (lambda_min + lambda_max) is the BEST learning rate; the limit is "
                  "2 / lambda_max"),
        Diagnosis(lambda A: 2 / A.diagonal().max().item(), _DIAGONAL_IS_NOT_THE_SPECTRUM),
        Diagnosis(lambda A: 2 / A.trace().item(),
                  "the trace is the SUM of the eigenvalues; the limit needs the largest one"),
    ])


# --------------------------------------------------------------------------------------------
# Task 3 (conceptual): which learning rates diverge?
# --------------------------------------------------------------------------------------------

DIVERGENCE_MATRIX = torch.tensor([[5.0, 4.0], [4.0, 5.0]], dtype=torch.float64)
CANDIDATE_LRS = (0.05, 0.1, 0.2, 0.21, 0.25, 0.5, 1.5, 2.5)
"""Task 3 asks which of these learning rates diverge on f = 1/2 theta^T A theta with
A = DIVERGENCE_MATRIX, from theta_0 = (1, 0)."""

# the diverging ones, increasing; no length: how many diverge is part of the answer
_DIVERGING = Sealed("3fb4a911e96dbca70952728d7726f981c675cc734524aa965e1bfb38946d4ee7")


def _above(limit: float) -> list[float]:
    return [lr for lr in CANDIDATE_LRS if lr > limit]


def _sorted_answer(learner: Callable) -> Callable:
    """The learner's collection of numbers in increasing order (a set, tuple or tensor too)."""
    if not callable(learner):
        return learner

    def answer():
        got = learner()
        if isinstance(got, Tensor | np.ndarray) and got.ndim == 1:
            got = got.tolist()
        if isinstance(got, set | frozenset | tuple | list):
            try:
                return sorted(float(x) for x in got)
            except (TypeError, ValueError):
                return got
        return got

    return answer


@task(forbid=BUILT_IN_OPTIMIZERS)
def check_diverging_lrs(diverging_lrs) -> Verdict:
    """Task 3 (conceptual): the learning rates among CANDIDATE_LRS for which gradient descent
    diverges on the quadratic with A = [[5, 4], [4, 5]]."""
    return check_answer("diverging_lrs", _sorted_answer(diverging_lrs), _DIVERGING, [
        (_above(2 / 5), _DIAGONAL_IS_NOT_THE_SPECTRUM),
        (_above(2 / 1),
         "the steepest direction breaks first: compare with 2 / lambda_max, not 2 / lambda_min"),
        (_above(1 / 9),
         "between 1/lambda_max and 2/lambda_max the iterates jump across the valley but still "
         "converge: the limit is 2 / lambda_max"),
        (_above(2 / 10), "2 / (lambda_min + lambda_max) = 2 / trace(A) is the BEST learning "
                         "rate, not the limit: up to 2 / lambda_max gradient descent still "
                         "converges"),
        ([], "some of them do diverge: find lambda_max of A (not its diagonal) and compare with "
             "2 / lambda_max"),
        (list(CANDIDATE_LRS), "the small ones converge: below 2 / lambda_max every eigendirection "
                              "shrinks"),
    ])


@task(forbid=BUILT_IN_OPTIMIZERS)
def check_convergence_rate(convergence_rate) -> Verdict:
    """Task 4: `convergence_rate(A, lr)`, the factor by which gradient descent shrinks the
    error per step (in the slowest direction): max_i |1 - lr * lambda_i|."""
    def factors(A, lr):
        return 1 - lr * _eigenvalues(A)

    rotated, diagonal, random = _matrices()
    # the first two cases tell the mistakes apart: at lr 0.45 on the diagonal matrix the middle
    # eigenvalue has the smallest factor; at lr 1.5 every factor is negative
    cases = [(diagonal, 0.45), (rotated, 1.5), (rotated, 0.05), (rotated, 0.2),
             (random, 1.1 / _eigenvalues(random)[-1].item()), (rotated, 0.25)]
    return check_function("convergence_rate", convergence_rate,
                          lambda A, lr: factors(A, lr).abs().max().item(), cases, [
        Diagnosis(lambda A, lr: factors(A, lr).max().item(),
                  "take the absolute value: a factor 1 - lr * lambda below 0 flips the sign "
                  "every step (oscillation), and below -1 it grows the error"),
        Diagnosis(lambda A, lr: abs(factors(A, lr)[-1].item()),
                  "every eigendirection has its own factor and the slowest one decides: "
                  "take the max over all eigenvalues, not only lambda_max"),
        Diagnosis(lambda A, lr: abs(factors(A, lr)[0].item()),
                  "every eigendirection has its own factor and the slowest one decides: "
                  "take the max over all eigenvalues, not only lambda_min"),
        Diagnosis(lambda A, lr: factors(A, lr).abs().min().item(),
                  "the error shrinks only as fast as its SLOWEST direction: max, not min"),
        Diagnosis(lambda A, lr: ((lambda k: (k - 1) / (k + 1))(
                      (_eigenvalues(A)[-1] / _eigenvalues(A)[0]).item())),
                  "(kappa - 1)/(kappa + 1) is the best rate, reached only at "
                  "lr = 2/(lambda_min + lambda_max); the rate at this lr is "
                  "max_i |1 - lr * lambda_i|"),
    ])


# --------------------------------------------------------------------------------------------
# Tasks 5 and 6: linear regression, closed form and gradient descent
# --------------------------------------------------------------------------------------------


def _regressions() -> list[tuple[Tensor, Tensor]]:
    """(X, y) with features that have a non-zero mean, so that the bias matters."""
    g = seeded(35)
    data = []
    for n, d, dtype in ((40, 3, torch.float64), (25, 2, torch.float64), (30, 2, torch.float32)):
        X = torch.randn(n, d, generator=g, dtype=torch.float64) + 1.0
        y = X @ torch.randn(d, generator=g, dtype=torch.float64) + 2.0 \
            + 0.3 * torch.randn(n, generator=g, dtype=torch.float64)
        data.append((X.to(dtype), y.to(dtype)))
    return data


def _with_ones(X: Tensor) -> Tensor:
    # X~ = [X, 1]: the bias as a last weight
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)


def _least_squares(X: Tensor, y: Tensor) -> Tensor:
    """argmin_w |X w - y|^2, computed in float64, returned in X's dtype."""
    return torch.linalg.lstsq(X.double(), y.double()[:, None]).solution.squeeze(1).to(X.dtype)


@task(forbid=BUILT_IN_OPTIMIZERS)
def check_normal_equations(normal_equations) -> Verdict:
    """Task 5: `normal_equations(X, y)`, the least-squares weights and bias as one vector
    (w_1, ..., w_d, b)."""
    def without_bias(X, y):
        return torch.cat([_least_squares(X, y), torch.zeros(1, dtype=X.dtype)])

    def bias_from_mean(X, y):
        return torch.cat([_least_squares(X, y), y.mean()[None]])

    return check_function("normal_equations", normal_equations,
                          lambda X, y: _least_squares(_with_ones(X), y), _regressions(), [
        Diagnosis(without_bias,
                  "the bias is missing: append a column of ones to X, X~ = [X, 1], and solve "
                  "X~^T X~ w = X~^T y"),
        Diagnosis(bias_from_mean,
                  "fitting w without a bias and then setting b = mean(y) is not the joint "
                  "least-squares solution: solve for w and b together, with X~ = [X, 1]"),
        Diagnosis(lambda X, y: _least_squares(_with_ones(X), y).roll(1),
                  "put the bias LAST: return (w_1, ..., w_d, b)"),
    ], rtol=1e-4, atol=1e-5)


def _gradient_descent(X, y, lr, steps, gradient, design=_with_ones):
    """`steps` steps from zero with `gradient(X~, w~, y)`; (w, b) as one vector."""
    Xt = design(X)
    w = torch.zeros(Xt.shape[1], dtype=X.dtype)
    for _ in range(steps):
        # w~ <- w~ - lr * grad L(w~)
        w = w - lr * gradient(Xt, w, y)
    return torch.cat([w, torch.zeros(X.shape[1] + 1 - len(w), dtype=X.dtype)])


def _mse_gradient(Xt, w, y):
    # grad L = 2/N X~^T (X~ w~ - y)   for L = 1/N |X~ w~ - y|^2
    return 2 / len(y) * Xt.T @ (Xt @ w - y)


@task(forbid=BUILT_IN_OPTIMIZERS + AUTOGRAD)
def check_linear_regression_gd(linear_regression_gd) -> Verdict:
    """Task 6: `linear_regression_gd(X, y, lr, steps)`, full-batch gradient descent on the mean
    squared error from w = 0, b = 0; the vector (w_1, ..., w_d, b) after `steps` steps."""
    (X1, y1), (X2, y2), (X3, y3) = _regressions()
    cases = [(X1, y1, 0.05, 5), (X2, y2, 0.1, 30), (X3, y3, 0.02, 3)]

    def reference(X, y, lr, steps):
        return _gradient_descent(X, y, lr, steps, _mse_gradient)

    def off_by(delta):
        return lambda X, y, lr, steps: reference(X, y, lr, steps + delta)

    return check_function("linear_regression_gd", linear_regression_gd, reference, cases, [
        Diagnosis(lambda X, y, lr, steps: _least_squares(_with_ones(X), y),
                  "that is the closed form (the point GD converges to); the task asks where GD "
                  "is after exactly `steps` steps"),
        Diagnosis(lambda X, y, lr, steps: _gradient_descent(
                      X, y, lr, steps, lambda Xt, w, y: _mse_gradient(Xt, w, y) / 2),
                  "the factor 2 of the gradient is missing: grad L = 2/N X~^T (X~ w - y)"),
        Diagnosis(lambda X, y, lr, steps: _gradient_descent(
                      X, y, lr, steps, lambda Xt, w, y: _mse_gradient(Xt, w, y) * len(y)),
                  "that is the gradient of the SUM of squares: the loss is the mean, divide "
                  "by N"),
        Diagnosis(lambda X, y, lr, steps: _gradient_descent(
                      X, y, lr, steps, lambda Xt, w, y: -_mse_gradient(Xt, w, y)),
                  "the sign is flipped: step against the gradient, and the gradient is "
                  "2/N X~^T (X~ w - y)"),
        Diagnosis(lambda X, y, lr, steps: _gradient_descent(
                      X, y, lr, steps, _mse_gradient, design=lambda X: X),
                  "the bias is never trained: append a column of ones to X (its gradient is "
                  "2/N sum(X w + b - y))"),
        Diagnosis(off_by(1), "one step too many: count your updates"),
        Diagnosis(off_by(-1), "one step too few: count your updates"),
    ])

