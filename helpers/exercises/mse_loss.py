"""Checkers for the exercises of chapter 01, mean squared error.

The notebook asks for basic tensor operations only, not `F.mse_loss` (nor `nn.MSELoss`, which
calls it): every function task forbids it, task 2 forbids autograd as well ("no autograd: use the
formula you derive"), and task 5 the built-ins that compute a Gaussian's log-likelihood.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from helpers.exercises import Diagnosis, Sealed, Verdict, check_answer, check_function, seeded
from helpers.exercises.grading import task

# The names the call watcher sees (helpers.exercises.grading): F.mse_loss is Python code that ends
# in the built-in torch._C._nn.mse_loss, which a learner could also call directly.
MSE_LOSS = ("torch.nn.functional.mse_loss", "torch._C._nn.mse_loss")
# Every way to have PyTorch differentiate: Tensor.backward (Python code in torch._tensor) and
# torch.autograd.grad, the functional API built on them, and torch.func (whose grad, vjp, jacrev
# live in torch._functorch). Not all of torch.autograd: `torch.no_grad()` is harmless.
AUTOGRAD = ("torch._tensor.Tensor.backward", "torch.autograd.backward", "torch.autograd.grad",
            "torch.autograd.functional", "torch.func", "torch._functorch")
GAUSSIAN_NLL = ("torch.nn.functional.gaussian_nll_loss", "torch.distributions")


def _pairs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = seeded(1)
    return [
        (torch.tensor([2.5, 0.0, 2.0]), torch.tensor([3.0, -0.5, 2.0])),
        (torch.randn(7, generator=g), torch.randn(7, generator=g)),
        (torch.randn(4, 3, generator=g, dtype=torch.float64),
         torch.randn(4, 3, generator=g, dtype=torch.float64)),
        (torch.zeros(5), torch.zeros(5)),
    ]


@task(forbid=MSE_LOSS)
def check_mse(mse) -> Verdict:
    """Task 1: `mse(input, target)`, the mean of the squared differences."""
    return check_function("mse", mse, F.mse_loss, _pairs(), [
        Diagnosis(lambda x, y: ((x - y) ** 2).sum(),
                  "your loss is the sum, not the mean: check the reduction (divide by the number "
                  "of elements)"),
        Diagnosis(lambda x, y: ((x - y) ** 2).mean() / 2,
                  "that is half the MSE, 1/2 mean((x - y)^2), a convention some texts use to "
                  "make the gradient x - y; torch's mse_loss has no 1/2"),
        Diagnosis(lambda x, y: (x - y).abs().mean(),
                  "that is the mean absolute error (L1 loss): square the residuals instead of "
                  "taking their absolute value"),
        Diagnosis(lambda x, y: (x - y).mean() ** 2,
                  "you squared the mean residual; square each residual first, then average"),
        Diagnosis(lambda x, y: ((x - y) ** 2).mean().sqrt(),
                  "that is the root mean squared error: drop the square root"),
        Diagnosis(lambda x, y: ((x - y) ** 2).sum() / len(x),
                  "divide by the number of ELEMENTS, input.numel(), not by the number of rows "
                  "len(input): for a (4, 3) input that is 12, not 4"),
    ])


@task(forbid=MSE_LOSS + AUTOGRAD)
def check_mse_grad(mse_grad) -> Verdict:
    """Task 2: `mse_grad(input, target)`, the gradient of the mean loss w.r.t. the input."""
    return check_function("mse_grad", mse_grad,
                          lambda x, y: torch.func.grad(F.mse_loss)(x, y), _pairs()[1:], [
        Diagnosis(lambda x, y: (x - y) / x.numel(),
                  "the factor 2 from differentiating the square is missing"),
        Diagnosis(lambda x, y: 2 * (x - y),
                  "that is the gradient of the sum: with reduction='mean' divide by the number "
                  "of elements N"),
        Diagnosis(lambda x, y: 2 * (y - x) / x.numel(),
                  "the sign is flipped: the gradient points towards a larger loss, 2(x - y)/N"),
        Diagnosis(lambda x, y: 2 * (x - y) / x.numel() ** 2,
                  "you divided by N twice: the mean already divides once"),
        Diagnosis(lambda x, y: 2 * (x - y) / len(x),
                  "N is the number of ELEMENTS, input.numel(), not the number of rows "
                  "len(input): for a (4, 3) input that is 12, not 4"),
    ])


@task(forbid=MSE_LOSS)
def check_best_constant(best_constant) -> Verdict:
    """Task 3: `best_constant(target)`, the constant prediction with the smallest MSE."""
    g = seeded(3)
    skewed = torch.cat([torch.zeros(6), torch.tensor([10.0])])
    cases = [(skewed,), (torch.randn(9, generator=g, dtype=torch.float64).exp(),)]
    return check_function("best_constant", best_constant, lambda y: y.mean(), cases, [
        Diagnosis(lambda y: y.median(),
                  "the median minimises the mean ABSOLUTE error; set the derivative of the MSE "
                  "with respect to the constant to zero"),
        Diagnosis(lambda y: (y.max() + y.min()) / 2,
                  "the midrange minimises the largest error, not the mean squared one"),
    ])


@task(forbid=MSE_LOSS)
def check_fixed_shapes(fixed_loss) -> Verdict:
    """Task 4: `fixed_loss(prediction, target)` for predictions (N, 1) and targets (N,)."""
    g = seeded(4)
    cases = [(torch.randn(6, 1, generator=g), torch.randn(6, generator=g)),
             (torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([1.0, 2.0, 3.0]))]

    def broadcast(p, t):
        return ((p - t) ** 2).mean()

    return check_function("fixed_loss", fixed_loss, lambda p, t: F.mse_loss(p.squeeze(1), t),
                          cases, [
        Diagnosis(broadcast,
                  "this is still the broadcast loss: (N, 1) against (N,) compares every "
                  "prediction with every target in an (N, N) matrix; squeeze the predictions to "
                  "(N,) first"),
    ])


@task(forbid=MSE_LOSS + GAUSSIAN_NLL)
def check_gaussian_nll(gaussian_nll) -> Verdict:
    """Task 5: `gaussian_nll(input, target, var)`, the summed negative log-likelihood of
    Gaussian noise with variance `var`, constant included."""
    g = seeded(5)
    cases = [(torch.randn(8, generator=g, dtype=torch.float64),
              torch.randn(8, generator=g, dtype=torch.float64), 0.25),
             (torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64), 2.0),
             (torch.randn(4, 3, generator=g, dtype=torch.float64),
              torch.randn(4, 3, generator=g, dtype=torch.float64), 0.5)]

    def reference(x, y, var):
        return F.gaussian_nll_loss(x, y, torch.full_like(x, var), full=True, reduction="sum")

    def no_constant(x, y, var):
        return ((x - y) ** 2 / (2 * var)).sum() + x.numel() / 2 * math.log(var)

    return check_function("gaussian_nll", gaussian_nll, reference, cases, [
        Diagnosis(no_constant,
                  "the constant N/2 log(2 pi) is missing: it does not move the minimum, but "
                  "the task asks for the full negative log-likelihood"),
        Diagnosis(lambda x, y, var: ((x - y) ** 2 / (2 * var)).sum()
                  + x.numel() / 2 * math.log(2 * math.pi * var**2),
                  "var is already sigma squared: the normaliser is sqrt(2 pi var), not "
                  "sqrt(2 pi var^2)"),
        Diagnosis(lambda x, y, var: reference(x, y, var) / x.numel(),
                  "that is the mean over the samples; the likelihood of the data set is a "
                  "product, so its log is a sum"),
        Diagnosis(lambda x, y, var: ((x - y) ** 2 / var).sum()
                  + x.numel() / 2 * math.log(2 * math.pi * var),
                  "the squared residuals are divided by 2 var in the Gaussian's exponent"),
        Diagnosis(lambda x, y, var: ((x - y) ** 2 / (2 * var)).sum()
                  + len(x) / 2 * math.log(2 * math.pi * var),
                  "every ELEMENT has its normaliser: the constant is input.numel() / 2 "
                  "log(2 pi var), not len(input) / 2 log(2 pi var)"),
    ])


# The answer of task 6, sealed (helpers.exercises.seal) so that it cannot be read here.
SUM_OVER_MEAN = Sealed("0407fcee4780e1a3e94ec3a003cc6b8f15e151dd280d6b1ac17e5c77ef9017e9")


@task()
def check_sum_over_mean(sum_over_mean) -> Verdict:
    """Task 6 (conceptual): for predictions of shape (32, 1), how many times larger is the
    gradient of reduction='sum' than that of reduction='mean'?"""
    return check_answer("sum_over_mean", sum_over_mean, SUM_OVER_MEAN, [
        (1 / 32, "the other way around: the sum adds 32 gradients, the mean averages them"),
        (64.0, "the factor 2 of the square appears in both gradients, so it cancels"),
        (1.0, "the reductions differ by the division by N = 32"),
    ])
