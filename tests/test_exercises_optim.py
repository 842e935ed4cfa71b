"""Exercise checkers of chapters 03-05: typical mistakes get their hint, nothing crashes, the
references the checkers compare with are torch's own behaviour, the built-ins a task forbids are
named, hidden tests draw other inputs, and the answers of question tasks are sealed."""

import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from exercise_harness import exercise_tests, solutions_of

from helpers import exercises as E
from helpers import optim
from helpers.exercises import adaptive as ad
from helpers.exercises import gradient_descent as gd
from helpers.exercises import grading
from helpers.exercises import momentum as mo
from helpers.surfaces import quadratic, stable_learning_rate

S = Path(__file__).resolve().parents[1] / "exercises" / "solutions"
NOTEBOOKS = {gd: S / "03_gradient_descent.ipynb", mo: S / "04_sgd_and_momentum.ipynb",
             ad: S / "05_adaptive_optimizers.ipynb"}


def _hidden_test(check) -> tuple:
    """(checker, answer, hidden seed) of `check`'s task in its chapter's solution notebook."""
    module = {m.__name__: m for m in NOTEBOOKS}[check.__module__]
    return solutions_of(NOTEBOOKS[module])[check.__name__]


def solution(check):
    """The solution notebook's answer to the task of `check`."""
    return _hidden_test(check)[1]


def seed_of(check) -> int:
    """The hidden seed of `check`'s task in its solution notebook."""
    return _hidden_test(check)[2]


CHECKERS = [getattr(m, t.checker) for m in NOTEBOOKS for t in grading.TASKS[m.__name__]]
QUESTIONS = [gd.check_diverging_lrs, mo.check_minibatch_variance, mo.check_momentum_limits,
             ad.check_first_step, ad.check_unused_weight]


def eigenvalues(A):
    return torch.linalg.eigvalsh(A)


def with_ones(X):
    return torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)


# --------------------------------------------------------------------------------------------
# Wrong answers a learner might write, per task
# --------------------------------------------------------------------------------------------


def regression_gd(X, y, lr, steps, factor=2.0, mean=True, bias=True, sign=1.0):
    Xt = with_ones(X) if bias else X
    w = torch.zeros(Xt.shape[1], dtype=X.dtype)
    for _ in range(steps):
        residual = Xt @ w - y
        w -= sign * lr * factor * Xt.T @ residual / (len(y) if mean else 1)
    return w if bias else torch.cat([w, torch.zeros(1, dtype=X.dtype)])


def sgd(param, grad, buf, lr, momentum, dampening=0.0, weight_decay=0.0, nesterov=False,
        zero_init=False, velocity=False, damp_weight=None, carry=True, look_ahead=True,
        nesterov_mu=True, decay="grad", sign=1.0):
    """A learner's SGD step, with one of the mistakes switched on."""
    if decay == "grad":
        grad = grad + weight_decay * param
    scale = lr if velocity else 1.0
    weight = (1 - dampening) if damp_weight is None else damp_weight(momentum, dampening)
    if buf is None:
        buf = (1 - dampening) * grad * scale if zero_init else grad * scale
    elif carry:
        buf = momentum * buf + weight * grad * scale
    else:
        buf = grad.clone()
    if nesterov and look_ahead:
        direction = grad + (momentum if nesterov_mu else 1.0) * buf
    else:
        direction = buf
    if decay == "after":
        direction = direction + weight_decay * param
    if decay == "decoupled":
        param = param - lr * weight_decay * param
    return param - sign * (1.0 if velocity else lr) * direction, buf


def step_then_update(param, grad, buf, lr, momentum, dampening=0.0, weight_decay=0.0,
                     nesterov=False, first="gradient"):
    """A learner's SGD step that moves along the buffer it was given, then updates it."""
    grad = grad + weight_decay * param
    if buf is None and first == "gradient":  # the first step is torch's
        return param - lr * (1 + momentum if nesterov else 1) * grad, grad.clone()
    if buf is None:
        buf = grad.clone() if first == "twice" else torch.zeros_like(grad)
    param = param - lr * (grad + momentum * buf if nesterov else buf)
    buf = momentum * buf + (1 - dampening) * grad
    return param, buf


def adagrad(param, grad, state_sum, lr, eps=1e-10, fresh=False, root=True, inside=False,
            absolute=False):
    state_sum = grad**2 if fresh else state_sum + (grad.abs() if absolute else grad**2)
    if inside:
        denom = torch.sqrt(state_sum + eps)
    else:
        denom = (torch.sqrt(state_sum) if root else state_sum) + eps
    return param - lr * grad / denom, state_sum


def rmsprop(param, grad, square_avg, lr, alpha=0.99, eps=1e-8, inside=False, swapped=False,
            root=True, summed=False, squared=True):
    g2 = grad * grad if squared else grad
    if summed:
        square_avg = square_avg + g2
    elif swapped:
        square_avg = (1 - alpha) * square_avg + alpha * g2
    else:
        square_avg = alpha * square_avg + (1 - alpha) * g2
    if inside:
        denom = torch.sqrt(square_avg + eps)
    else:
        denom = (square_avg.sqrt() if root else square_avg) + eps
    return param - lr * grad / denom, square_avg


T = 0  # the learner's global step counter, reset before every test (see below)


@pytest.fixture(autouse=True)
def _the_learners_step_counter_starts_at_0():
    """`rmsprop_global_t` stands for a learner's fresh kernel: each test that checks it
    (visible and hidden inputs) starts its count at 0."""
    global T
    T = 0


def rmsprop_global_t(param, grad, square_avg, lr, alpha=0.99, eps=1e-8):
    """A learner's RMSprop with Adam's bias correction, counting t in a global variable (that is
    never reset, so only the first call of a check is at t = 1)."""
    global T
    T += 1
    square_avg = alpha * square_avg + (1 - alpha) * grad**2
    return param - lr * grad / (torch.sqrt(square_avg / (1 - alpha**T)) + eps), square_avg


def adam(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=None,
         correct=(True, True), eps_mode="outside", t_shift=0, store=True, decay="decoupled",
         default_decay=1e-2, store_corrected=False, swapped=False):
    """A learner's Adam / AdamW step (weight_decay None: plain Adam), one mistake switched on."""
    beta1, beta2 = betas
    state = dict(state)
    t = state["step"] + 1
    if weight_decay is None and decay != "default":
        weight_decay, decay = 0.0, "none"
    if decay == "default":
        weight_decay = 0.0 if weight_decay is None else weight_decay
        decay = "decoupled"
    if decay == "l2":
        grad = grad + weight_decay * param
    elif decay == "decoupled":
        param = param - lr * weight_decay * param
    elif decay == "no lr":
        param = param - weight_decay * param
    elif decay == "twice":  # the gradient's L2 term AND the decoupled shrink
        grad = grad + weight_decay * param
        param = param - lr * weight_decay * param
    elif decay == "before and after":
        param = param * (1 - lr * weight_decay)
    if swapped:
        m = state["exp_avg"] * (1 - beta1) + grad * beta1
        v = state["exp_avg_sq"] * (1 - beta2) + grad**2 * beta2
    else:
        m = state["exp_avg"] * beta1 + grad * (1 - beta1)
        v = state["exp_avg_sq"] * beta2 + grad**2 * (1 - beta2)
    tc = t + t_shift
    m_hat = m / (1 - beta1**tc) if correct[0] else m
    v_hat = v / (1 - beta2**tc) if correct[1] else v
    if eps_mode == "outside":
        update = m_hat / (v_hat.sqrt() + eps)
    elif eps_mode == "inside":
        update = m_hat / (v_hat + eps).sqrt()
    elif eps_mode == "no root":
        update = m_hat / (v_hat + eps)
    else:  # the paper's "efficient" form: eps added to sqrt(v_t)
        update = m_hat * math.sqrt(1 - beta2**tc) / (v.sqrt() + eps)
    param = param - lr * update
    if decay in ("after", "before and after"):
        param = param * (1 - lr * weight_decay)
    if store_corrected:
        m, v = m_hat, v_hat
    state.update(step=t if store else state["step"], exp_avg=m, exp_avg_sq=v)
    return param, state


def adamw(**mistake):
    def step(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        return adam(param, grad, state, lr, betas, eps, weight_decay, **mistake)
    return step


def torch_unused_weight(optimizer_class):
    w = torch.ones(1, dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_class([w], lr=0.01, weight_decay=0.1)
    for _ in range(10):
        w.grad = torch.zeros_like(w)
        optimizer.step()
    return w.item()


# wrong answers of the question tasks made from the solution notebooks' answers
ADAM_L2_UNUSED_WEIGHT = torch_unused_weight(torch.optim.Adam)  # outside a learner: no forbid
LIMITS = solution(mo.check_momentum_limits)()
VARIANCE = solution(mo.check_minibatch_variance)()
FIRST_STEP = solution(ad.check_first_step)()


def kwargs(fn, **fixed):
    return lambda *args, **options: fn(*args, **options, **fixed)


MISTAKES = {
    gd.check_gd_step: [
        (lambda A, b, t, lr: t + lr * (A @ t - b), "you stepped uphill"),
        (lambda A, b, t, lr: t - lr * A @ t, "linear term is missing"),
        (lambda A, b, t, lr: t - lr * (A @ t + b), "the sign of b"),
        (lambda A, b, t, lr: t - lr * (0.5 * A @ t - b), "the 1/2 cancels"),
        (lambda A, b, t, lr: t - lr * (0.5 * t @ A @ t - b @ t), "value f(theta)"),
        (lambda A, b, t, lr: (t - lr * (A @ t - b))[None], "expected shape (2,) but got (1, 2)"),
    ],
    gd.check_stable_lr: [
        (lambda A: 2 / eigenvalues(A)[0].item(), "not 2 / lambda_min"),
        (lambda A: 1 / eigenvalues(A)[-1].item(), "oscillate but still converge"),
        (lambda A: 2 / (eigenvalues(A)[0] + eigenvalues(A)[-1]), "BEST learning rate"),
        (lambda A: 2 / A.diagonal().max(), "eigenvalues only of a diagonal matrix"),
        (lambda A: 2 / A.trace(), "SUM of the eigenvalues"),
        (lambda A: 2 / eigenvalues(A), "expected 0.6666666666666666 but got tensor"),
        (lambda A: 2 / torch.linalg.eigvals(A)[0], "use torch.linalg.eigvalsh"),
    ],
    gd.check_diverging_lrs: [
        (lambda: [0.5, 1.5, 2.5], "eigenvalues only of a diagonal matrix"),
        (lambda: {2.5}, "not 2 / lambda_min"),
        (lambda: (0.2, 0.21, 0.25, 0.5, 1.5, 2.5), "still converge"),
        (lambda: torch.tensor([0.21, 0.25, 0.5, 1.5, 2.5]), "up to 2 / lambda_max"),
        (lambda: [], "some of them do diverge"),
        (lambda: [0.25, 0.5], "not the expected answer"),
        (lambda: np.array([2.5, 1.5, 0.5, 0.25, 0.21]), "up to 2 / lambda_max"),  # any order
    ],
    gd.check_convergence_rate: [
        (lambda A, lr: (1 - lr * eigenvalues(A)).max().item(), "take the absolute value"),
        (lambda A, lr: abs(1 - lr * eigenvalues(A)[-1].item()), "not only lambda_max"),
        (lambda A, lr: abs(1 - lr * eigenvalues(A)[0].item()), "not only lambda_min"),
        (lambda A, lr: (1 - lr * eigenvalues(A)).abs().min().item(), "max, not min"),
        (lambda A, lr: (eigenvalues(A)[-1] / eigenvalues(A)[0] - 1)
         / (eigenvalues(A)[-1] / eigenvalues(A)[0] + 1), "best rate"),
    ],
    gd.check_normal_equations: [
        (lambda X, y: torch.cat([torch.linalg.solve(X.T @ X, X.T @ y),
                                 torch.zeros(1, dtype=X.dtype)]), "the bias is missing"),
        (lambda X, y: torch.cat([torch.linalg.solve(X.T @ X, X.T @ y), y.mean()[None]]),
         "not the joint least-squares solution"),
        (lambda X, y: torch.linalg.lstsq(torch.cat([torch.ones(len(X), 1, dtype=X.dtype), X], 1),
                                         y[:, None]).solution.squeeze(1), "put the bias LAST"),
        (lambda X, y: torch.linalg.pinv(X) @ y, "expected shape (4,) but got (3,)"),
    ],
    gd.check_linear_regression_gd: [
        (lambda X, y, lr, steps: torch.linalg.lstsq(with_ones(X), y[:, None]).solution[:, 0],
         "that is the closed form"),
        (kwargs(regression_gd, factor=1.0), "factor 2 of the gradient is missing"),
        (kwargs(regression_gd, mean=False), "gradient of the SUM of squares"),
        (kwargs(regression_gd, bias=False), "the bias is never trained"),
        (kwargs(regression_gd, sign=-1.0), "the sign is flipped"),
        (lambda X, y, lr, steps: regression_gd(X, y, lr, steps + 1), "one step too many"),
    ],
    mo.check_minibatch_gradient: [
        (lambda X, y, w, i: 2 / len(X) * X[i].T @ (X[i] @ w - y[i]), "not by N"),
        (lambda X, y, w, i: 2 / len(X) * X.T @ (X @ w - y), "full-batch gradient"),
        (lambda X, y, w, i: 2 * X[i].T @ (X[i] @ w - y[i]), "MEAN over the batch"),
        (lambda X, y, w, i: X[i].T @ (X[i] @ w - y[i]) / len(i), "factor 2"),
        (lambda X, y, w, i: 2 / len(i) * X[i].T @ (y[i] - X[i] @ w), "sign is flipped"),
    ],
    mo.check_minibatch_variance: [
        (lambda: 0.4, "WITH replacement"),
        (lambda: 0.36, "N - 1 below"),
        (lambda: VARIANCE / 10, "not by b^2"),
        (lambda: torch.tensor(VARIANCE * 10), "divides the variance by b"),
        (lambda: 4 / 10**0.5, "VARIANCE falls like 1/b"),
    ],
    mo.check_noise_floor: [
        (lambda lr, lam, s: lr * s**2 / (lam * (2 - lr * lam)), "stationary variance"),
        (lambda lr, lam, s: lr * s**2 / 4, "small-lr approximation"),
        (lambda lr, lam, s: lr * s / (2 * (2 - lr * lam)), "standard deviation"),
        (lambda lr, lam, s: lr * s**2 / (2 * (2 + lr * lam)), "(1 - lr lambda)^2 v"),
        (lambda lr, lam, s: lam * lr * s**2 / (2 * (2 - lr * lam)), "a lambda is lost"),
    ],
    mo.check_momentum_step: [
        (kwargs(sgd, zero_init=True), "starts the buffer at the first gradient"),
        (kwargs(sgd, velocity=True), "textbook velocity"),
        (kwargs(sgd, damp_weight=lambda mu, tau: tau), "weight (1 - dampening), not dampening"),
        (kwargs(sgd, damp_weight=lambda mu, tau: 1 - mu), "exponential moving average"),
        (kwargs(sgd, carry=False), "never carried over"),
        (kwargs(sgd, sign=-1.0), "you stepped uphill"),
        (kwargs(step_then_update), "stepped along the OLD buffer"),
        (kwargs(step_then_update, first="zero"), "stepped along the OLD buffer"),
        (kwargs(step_then_update, first="twice"), "stepped along the OLD buffer"),
        (kwargs(sgd, damp_weight=lambda mu, tau: 1.0), "dampening is ignored"),
        (lambda p, g, b, lr, momentum, dampening=0.0: (
            p - lr * (g if b is None else b), g if b is None else momentum * b + 2 * g),
         "after step 2, param differs"),
        (lambda p, g, b, lr, momentum, dampening=0.0: (
            lambda buf: (p - lr * buf, buf))(momentum * b + (1 - dampening) * g if b else g),
         "test `momentum_buffer is None`"),
    ],
    mo.check_sgd_step: [
        (kwargs(sgd, look_ahead=False), "along the look-ahead"),
        (kwargs(sgd, nesterov_mu=False), "the factor momentum is missing"),
        (kwargs(sgd, decay="after"), "BEFORE it enters the buffer"),
        (kwargs(sgd, decay="decoupled"), "BEFORE it enters the buffer"),
        (kwargs(sgd, decay="none"), "weight_decay is ignored"),
        (kwargs(sgd, zero_init=True), "starts the buffer at the first gradient"),
        (kwargs(step_then_update), "stepped along the OLD buffer"),
        (kwargs(step_then_update, first="zero"), "stepped along the OLD buffer"),
        (kwargs(sgd, damp_weight=lambda mu, tau: 1.0), "dampening is ignored"),
        (lambda p, g, b, lr, momentum, dampening=0.0, weight_decay=0.0, nesterov=False: (
            lambda new_p, buf: (new_p + (lr * weight_decay * p if nesterov else 0.0), buf))(
            *sgd(p, g, b, lr, momentum, dampening, weight_decay, nesterov)),
         "look-ahead uses the same decayed gradient"),
    ],
    mo.check_momentum_limits: [
        (lambda: (0.2, 0.2), "momentum moves the limit"),
        (lambda: LIMITS[::-1], "the other way round"),
        (lambda: [LIMITS[0], LIMITS[0]], "Nesterov's limit is narrower"),
        (lambda: (2.0, 2.0), "effective step size"),
        (lambda: torch.tensor(LIMITS) * 10, "divide by lambda_max"),
        (lambda: (LIMITS[0], LIMITS[1] * 1.01), "not the expected answer"),
    ],
    ad.check_adagrad_step: [
        (kwargs(adagrad, fresh=True), "Adagrad ACCUMULATES"),
        (kwargs(adagrad, root=False), "square ROOT of the sum"),
        (kwargs(adagrad, inside=True), "eps inside the square root"),
        (kwargs(adagrad, absolute=True), "not |g_t|"),
        (lambda p, g, s, lr, eps=1e-10: (p - lr * g / (s + g * g).sqrt(), s + g * g),
         "after step 1, param differs at index [0]"),
    ],
    ad.check_rmsprop_step: [
        (kwargs(rmsprop, inside=True), "eps inside the square root"),
        (kwargs(rmsprop, swapped=True), "alpha multiplies the OLD average"),
        (kwargs(rmsprop, root=False), "ROOT mean square"),
        (kwargs(rmsprop, summed=True), "Adagrad's sum"),
        (kwargs(rmsprop, squared=False), "SQUARED gradient"),
        (lambda p, g, v, lr, alpha=0.99, eps=1e-8: rmsprop(
            p, g, v / (1 - alpha), lr, alpha, eps)[:1] + rmsprop(p, g, v, lr, alpha, eps)[1:],
         "after step 2, param differs"),
        (lambda p, g, v, lr, alpha=0.99, eps=1e-8: (
            p - lr * g / (((alpha * v + (1 - alpha) * g * g) / (1 - alpha)).sqrt() + eps),
            alpha * v + (1 - alpha) * g * g), "RMSprop has no bias correction"),
        (rmsprop_global_t, "RMSprop has no bias correction"),
        (lambda p, g, v, lr, alpha=0.99, eps=1e-8: rmsprop(p, g, v, lr, alpha, eps)[0],
         "return the pair (param, square_avg), but it returned a tensor of shape (4,)"),
    ],
    ad.check_first_step: [
        (lambda: (1.0, 0.1), "the denominator is biased too"),
        (lambda: (1.0, 100.0), "under a square root"),
        (lambda: FIRST_STEP[::-1], "the other way round"),
        (lambda: [FIRST_STEP[0], 1 / FIRST_STEP[1]], "upside down"),
        (lambda: 1.0, "expected a tuple of 2 values"),
        (lambda: (1.0, 3.16), "not the expected answer"),
    ],
    ad.check_adam_step: [
        (kwargs(adam, correct=(False, False)), "no bias correction"),
        (kwargs(adam, correct=(True, False)), "corrected m but not v"),
        (kwargs(adam, correct=(False, True)), "corrected v but not m"),
        (kwargs(adam, eps_mode="inside"), "eps inside the square root"),
        (kwargs(adam, eps_mode="before"), "AFTER the bias correction"),
        (kwargs(adam, t_shift=-1), "increment the step first"),
        (kwargs(adam, store=False), "store the new step count"),
        (kwargs(adam, t_shift=1), "one step ahead"),
        (kwargs(adam, store_corrected=True), "keep the UNcorrected m_t and v_t"),
        (kwargs(adam, eps_mode="no root"), "divide by the square ROOT of v^_t"),
        (kwargs(adam, swapped=True), "beta multiplies the OLD average"),
        (lambda p, g, s, lr, betas=(0.9, 0.999), eps=1e-8: (adam(p, g, s, lr, betas, eps)[0],
                                                            {"step": s["step"] + 1}),
         "has no key 'exp_avg'"),
        (lambda p, g, s, lr, betas=(0.9, 0.999), eps=1e-8: (
            adam(p, g, s, lr, betas, eps)[0], list(adam(p, g, s, lr, betas, eps)[1].values())),
         "expected the state as a dict"),
    ],
    ad.check_adamw_step: [
        (adamw(decay="l2"), "that is Adam(weight_decay=...)"),
        (adamw(decay="no lr"), "scaled by the learning rate"),
        (adamw(decay="after"), "shrinks the OLD parameter"),
        (adamw(decay="twice"), "REPLACES the L2 term"),
        (adamw(decay="before and after"), "not the new one after it as well"),
        (lambda p, g, s, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0: adam(
            p, g, s, lr, betas, eps, weight_decay, decay="default"), "default weight_decay"),
        (lambda p, g, s, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2: adam(
            p, g, s, lr, betas, eps), "the weight decay is missing"),
    ],
    ad.check_unused_weight: [
        (lambda: 1.0, "even when the loss gives it no gradient"),
        (lambda: 0.99, "the decay compounds"),
        (lambda: 0.9**10, "with the learning rate"),
        (lambda: ADAM_L2_UNUSED_WEIGHT, "that is Adam(weight_decay=0.1)"),
    ],
}


# --------------------------------------------------------------------------------------------
# The step checker: what a learner's step may get wrong besides the formula
# --------------------------------------------------------------------------------------------


def right_adam(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8):
    return adam(param, grad, state, lr, betas, eps)


def test_a_step_that_updates_its_inputs_in_place_passes():
    def in_place(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8):
        beta1, beta2 = betas
        state["step"] += 1
        t = state["step"]
        state["exp_avg"].mul_(beta1).add_(grad, alpha=1 - beta1)
        state["exp_avg_sq"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = (state["exp_avg_sq"] / (1 - beta2**t)).sqrt_().add_(eps)
        param.addcdiv_(state["exp_avg"], denom, value=-lr / (1 - beta1**t))
        return param, state

    assert ad.check_adam_step(in_place).passed
    assert ad.check_adam_step(right_adam).passed


def test_a_step_mistake_that_agrees_on_one_case_only_does_not_get_its_hint():
    def forgets_to_accumulate(param, grad, state_sum, lr, eps=1e-10):
        return param - lr * grad / (grad.abs() + eps), grad * grad

    def first_case_only(param, grad, state_sum, lr, eps=1e-10):
        if param.shape == (4,):  # the first case: exactly the mistake above
            return forgets_to_accumulate(param, grad, state_sum, lr, eps)
        G = state_sum + grad * grad  # noqa: N806
        return param - 2 * lr * grad / (G.sqrt() + eps), G  # elsewhere another mistake

    assert "ACCUMULATES" in ad.check_adagrad_step(forgets_to_accumulate).message
    verdict = ad.check_adagrad_step(first_case_only)
    assert verdict.status == E.WRONG and "ACCUMULATES" not in verdict.message, verdict.message


def test_a_state_with_extra_entries_or_a_tensor_step_passes():
    def tensor_step(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8):
        param, state = right_adam(param, grad, state, lr, betas, eps)
        return param, {**state, "step": torch.tensor(float(state["step"])), "note": "mine"}

    def numpy_step(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8):
        param, state = right_adam(param, grad, state, lr, betas, eps)
        return param, {**state, "step": np.int64(state["step"])}

    assert ad.check_adam_step(tensor_step).passed
    assert ad.check_adam_step(numpy_step).passed


@pytest.mark.parametrize("returned, complaint", [
    (lambda p, s: (p.tolist(), s), "expected the new parameter as a tensor, but your function "
                                   "returned a list"),
    (lambda p, s: (p, s, 0), "but it returned a tuple of 3 items"),
    (lambda p, s: (p.double(), s), "expected param of dtype torch.float32, but got "
                                   "torch.float64"),
    (lambda p, s: (p, {**s, "step": "one"}), "expected state['step'] to be a number, but got "
                                             "a str"),
    (lambda p, s: (p.flatten(), s), "expected param of shape (2, 3), but got (6,)"),
])
def test_step_protocol_problems_are_named(returned, complaint):
    def learner(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8):
        return returned(*right_adam(param, grad, state, lr, betas, eps))

    verdict = ad.check_adam_step(learner)
    assert verdict.status == E.WRONG and complaint in verdict.message, verdict.message


@pytest.mark.parametrize("returned, complaint", [
    (lambda p, s: (p[:1], s), "after step 1, expected param of shape (4,), but got (1,)"),
    (lambda p, s: (p, None), "to be a tensor, but got None"),
    (lambda p, s: (p.float(), s), "expected param of dtype torch.float64, but got torch.float32"),
    (lambda p, s: (p, s.tolist()), "to be a tensor, but got a list of 4 items"),
    (lambda p, s: (p, s[None]), "of shape (4,), but got (1, 4)"),
], ids=["param shape", "None state", "param dtype", "list state", "state shape"])
@pytest.mark.parametrize("check, step", [
    (mo.check_momentum_step, lambda p, g, b, lr, momentum, dampening=0.0: sgd(
        p, g, b, lr, momentum, dampening)),
    (ad.check_rmsprop_step, rmsprop),  # with a first-step diagnosis, judged on step 1 alone
], ids=["momentum", "rmsprop"])
def test_a_wrong_first_step_of_another_type_or_shape_is_named(check, step, returned, complaint):
    verdict = check(lambda *args, **options: returned(*step(*args, **options)))
    assert verdict.status == E.WRONG and complaint in verdict.message, verdict.message


def test_a_difference_names_the_step_the_entry_and_the_case():
    def late(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8):
        param, state = right_adam(param, grad, state, lr, betas, eps)
        if state["step"] == 3:
            state["exp_avg"] = state["exp_avg"] + 1
        return param, state

    message = ad.check_adam_step(late).message
    assert message.startswith("after step 3, state['exp_avg'] differs at index")
    assert "(case 1: a torch.float64 parameter of shape (4,), 5 steps, lr=0.01)" in message


# --------------------------------------------------------------------------------------------
# The references and expected answers are the real behaviour
# --------------------------------------------------------------------------------------------


def torch_run(optimizer_class, case, state_keys, **options):
    """Params and the named state entries after each step of a torch optimizer on `case`."""
    param = case.param.clone().requires_grad_(True)
    optimizer = optimizer_class([param], **options)
    history = []
    for grad in case.grads:
        param.grad = grad.clone()
        optimizer.step()
        state = optimizer.state[param]
        history.append([param.detach().clone()] + [state[key].clone() for key in state_keys])
    return history


def checker_run(reference, case, state_keys):
    param, state, history = case.param, case.state, []
    for grad in case.grads:
        param, state = reference(param, grad, state, **case.options)
        entries = [state[k] for k in state_keys] if isinstance(state, dict) else [state]
        history.append([param] + entries)
    return history


@pytest.mark.parametrize("cases, reference, optimizer_class, keys, options", [
    (mo.momentum_cases, mo._sgd_reference, torch.optim.SGD, ["momentum_buffer"], {}),
    (mo.sgd_cases, mo._sgd_reference, torch.optim.SGD, ["momentum_buffer"], {}),
    (ad.adagrad_cases, ad._adagrad_reference, torch.optim.Adagrad, ["sum"], {}),
    (ad.rmsprop_cases, ad._rmsprop_reference, torch.optim.RMSprop, ["square_avg"], {}),
    (ad.adam_cases, ad._adam_reference, torch.optim.Adam, ["exp_avg", "exp_avg_sq"], {}),
    (ad.adamw_cases, ad._adamw_reference, torch.optim.AdamW, ["exp_avg", "exp_avg_sq"], {}),
], ids=["momentum", "sgd", "adagrad", "rmsprop", "adam", "adamw"])
def test_step_references_equal_torch_optim(cases, reference, optimizer_class, keys, options):
    compared = 0
    for case in cases():
        state = case.state
        if isinstance(state, dict) and state["step"] != 0:
            continue  # a mid-run state: torch's optimizers start fresh
        extra = {}
        if optimizer_class is torch.optim.Adagrad:
            extra["initial_accumulator_value"] = state.flatten()[0].item()
        ours = checker_run(reference, case, keys if isinstance(state, dict) else [])
        theirs = torch_run(optimizer_class, case, keys, **case.options, **extra)
        for mine, torch_entries in zip(ours, theirs):
            for a, b in zip(mine, torch_entries):
                torch.testing.assert_close(a, b)
        compared += 1
    assert compared >= 2


def test_regression_gd_reference_equals_torch_optim_sgd_on_nn_linear():
    for X, y in gd._regressions():
        model = torch.nn.Linear(X.shape[1], 1, dtype=X.dtype)
        torch.nn.init.zeros_(model.weight)
        torch.nn.init.zeros_(model.bias)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
        for _ in range(7):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(X).squeeze(1), y).backward()
            optimizer.step()
        fitted = torch.cat([model.weight.detach().squeeze(0), model.bias.detach()])
        mine = gd._gradient_descent(X, y, 0.05, 7, gd._mse_gradient)
        torch.testing.assert_close(mine, fitted, rtol=1e-5, atol=1e-6)


def test_the_diverging_learning_rates_really_diverge():
    def diverges(lr):
        theta = torch.tensor([1.0, 0.0], dtype=torch.float64)
        for _ in range(100):
            theta = theta - lr * gd.DIVERGENCE_MATRIX @ theta
        return theta.norm().item() > 1e6

    measured = [lr for lr in gd.CANDIDATE_LRS if diverges(lr)]
    assert gd.check_diverging_lrs(lambda: measured).passed
    assert measured[0] > 2 / 9 > max(lr for lr in gd.CANDIDATE_LRS if lr not in measured)


def test_the_stable_lr_and_the_rate_are_what_gradient_descent_does():
    for A in gd._matrices():
        limit = 2 / eigenvalues(A)[-1].item()
        theta0 = torch.ones(len(A), dtype=A.dtype)
        for factor, diverged in ((0.97, False), (1.03, True)):
            path = [theta0]
            for _ in range(400):
                path.append(path[-1] - factor * limit * A @ path[-1])
            assert (path[-1].norm() > 1e3) == diverged
            rate = (path[400].norm() / path[300].norm()).item() ** (1 / 100)
            expected = (1 - factor * limit * eigenvalues(A)).abs().max().item()
            assert abs(rate - expected) < 1e-3
    bowl = quadratic(condition_number=9.0, angle=0.6)
    assert abs(stable_learning_rate(bowl) - 2 / 9) < 1e-12


def test_the_momentum_limits_are_helpers_surfaces_limits():
    bowl = quadratic(condition_number=10.0)
    limits = (stable_learning_rate(bowl, 0.9), stable_learning_rate(bowl, 0.9, nesterov=True))
    assert mo.check_momentum_limits(lambda: limits).passed


def test_the_unused_weight_answer_is_what_adamw_does():
    measured = torch_unused_weight(torch.optim.AdamW)
    assert ad.check_unused_weight(lambda: measured).passed


def test_the_first_step_answer_is_what_adam_does():
    """Corrected: the step torch takes; uncorrected: m_1 / sqrt(v_1) of torch's own state."""
    param = torch.tensor([2.0, -3.0], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([param], lr=0.01, eps=1e-12)
    param.grad = torch.tensor([0.5, 7.0], dtype=torch.float64)
    optimizer.step()
    ratio = ((param.detach() - torch.tensor([2.0, -3.0], dtype=torch.float64)).abs() / 0.01)
    state = optimizer.state[param]
    uncorrected = (state["exp_avg"].abs() / state["exp_avg_sq"].sqrt())[1].item()
    assert ad.check_first_step(lambda: (ratio[1].item(), uncorrected)).passed
    torch.testing.assert_close(ratio, torch.ones(2, dtype=torch.float64))


def test_the_noise_floor_formula_matches_a_simulation():
    generator = torch.Generator().manual_seed(0)
    lr, lam, s = 0.15, 10.0, 2.0
    theta = torch.zeros(20000, dtype=torch.float64)
    for _ in range(200):
        theta = theta - lr * (lam * theta + s * torch.randn(20000, generator=generator,
                                                              dtype=torch.float64))
    measured = (lam / 2 * theta**2).mean().item()
    predicted = lr * s**2 / (2 * (2 - lr * lam))
    assert abs(measured - predicted) < 0.03 * predicted
    assert mo.check_noise_floor(lambda lr_, lam_, s_: lr_ * s_**2 / (2 * (2 - lr_ * lam_))).passed


def test_a_first_step_diagnosis_is_told_only_when_the_first_step_differs():
    """A FirstStepDiagnosis compares first steps alone, so it may only name a run that goes
    wrong AT step 1: a learner right at step 1 and wrong at step 2 has a first step equal to
    any mistake's that starts right, and must get the plain difference, not the hint."""
    def reference(param, grad, state, lr):
        return param - lr * grad, (state or 0) + 1

    def wrong_from_step_2(param, grad, state, lr):  # equals the reference at step 1
        return param - (lr if state is None else 2 * lr) * grad, (state or 0) + 1

    def learner(param, grad, state, lr):  # right at step 1, another mistake at step 2
        return param - (lr if state is None else 3 * lr) * grad, (state or 0) + 1

    case = mo.StepCase(torch.ones(3, dtype=torch.float64),
                    tuple(torch.full((3,), 0.5, dtype=torch.float64) for _ in range(3)),
                    options={"lr": 0.1})
    verdict = mo.check_steps("sgd", learner, reference, [case],
                          [mo.FirstStepDiagnosis(wrong_from_step_2, "THE HINT")])
    assert "THE HINT" not in str(verdict) and "after step 2" in str(verdict)


# --------------------------------------------------------------------------------------------
# Forbidden built-ins: "not torch.optim" (chapters 03-05), "or autograd" (chapter 04, and
# chapter 03's gradient written by hand)
# --------------------------------------------------------------------------------------------

AUTOGRAD_TASKS = {gd.check_linear_regression_gd, *(getattr(mo, t.checker)
                                                     for t in grading.TASKS[mo.__name__])}


@pytest.mark.parametrize("check", CHECKERS, ids=lambda c: c.__name__)
def test_every_task_forbids_what_its_notebook_forbids(check):
    assert set(gd.BUILT_IN_OPTIMIZERS) <= set(check.forbid)
    assert (set(gd.AUTOGRAD) <= set(check.forbid)) == (check in AUTOGRAD_TASKS)
    assert check(solution(check)).passed


def touching(solution_, forbidden):
    """The solution, which also calls `forbidden()` (a forbidden built-in) on the way."""
    def answer(*args, **kwargs):
        forbidden()
        return solution_(*args, **kwargs)
    return answer


def make_torch_sgd():
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def autograd_grad():
    w = torch.ones(2, requires_grad=True)
    torch.autograd.grad((w * w).sum(), w)


def sgd_by_torch(param, grad, momentum_buffer, lr, momentum, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
    """torch.optim.SGD's step on a copy: the answer that chapter 04 forbids."""
    param = param.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([param], lr=lr, momentum=momentum, dampening=dampening,
                                weight_decay=weight_decay, nesterov=nesterov)
    if momentum_buffer is not None:
        optimizer.state[param]["momentum_buffer"] = momentum_buffer.clone()
    param.grad = grad.clone()
    optimizer.step()
    return param.detach(), optimizer.state[param]["momentum_buffer"]


def sgd_by_torch_functional(param, grad, momentum_buffer, lr, momentum, dampening=0.0,
                            weight_decay=0.0, nesterov=False):
    param, buffers = param.clone(), [None if momentum_buffer is None else momentum_buffer.clone()]
    torch.optim._functional.sgd([param], [grad], buffers, weight_decay=weight_decay,
                                momentum=momentum, lr=lr, dampening=dampening, nesterov=nesterov,
                                maximize=False)
    return param, buffers[0]


def sgd_by_fused_kernel(param, grad, momentum_buffer, lr, momentum, dampening=0.0,
                        weight_decay=0.0, nesterov=False):
    param = param.clone()
    buffer = torch.zeros_like(param) if momentum_buffer is None else momentum_buffer.clone()
    torch._fused_sgd_([param], [grad], [buffer], weight_decay=weight_decay, momentum=momentum,
                      lr=lr, dampening=dampening, nesterov=nesterov, maximize=False,
                      is_first_step=momentum_buffer is None)
    return param, buffer


def torch_optimizer_step(optimizer_class, state_of, state_from, **fixed):
    """A chapter 05 step that runs `optimizer_class` (the answer chapter 05 forbids)."""
    def step(param, grad, state, lr, **options):
        param = param.clone().requires_grad_(True)
        optimizer = optimizer_class([param], lr=lr, **options, **fixed)
        optimizer.state[param].update(state_of(state))
        param.grad = grad.clone()
        optimizer.step()
        return param.detach(), state_from(optimizer.state[param])
    return step


def adam_state(state):
    return {"step": torch.tensor(float(state["step"])), "exp_avg": state["exp_avg"].clone(),
            "exp_avg_sq": state["exp_avg_sq"].clone()}


def adam_state_back(state):
    return {"step": int(state["step"].item()), "exp_avg": state["exp_avg"],
            "exp_avg_sq": state["exp_avg_sq"]}


def gd_step_by_torch(A, b, theta, lr):
    theta = theta.clone().requires_grad_(True)
    optimizer = torch.optim.SGD([theta], lr=lr)
    theta.grad = A @ theta.detach() - b
    optimizer.step()
    return theta.detach()


def regression_by_backward(X, y, lr, steps):
    Xt = with_ones(X)
    w = torch.zeros(Xt.shape[1], dtype=X.dtype, requires_grad=True)
    for _ in range(steps):
        ((Xt @ w - y) ** 2).mean().backward()
        with torch.no_grad():
            w -= lr * w.grad
        w.grad = None
    return w.detach()


def minibatch_by(transform):
    def gradient(X, y, w, indices):
        return transform(lambda w: ((X[indices] @ w - y[indices]) ** 2).mean(), w)
    return gradient


def by_backward(loss, w):
    w = w.clone().requires_grad_(True)
    loss(w).backward()
    return w.grad


def unused_weight_by_torch():
    return torch_unused_weight(torch.optim.AdamW)


FORBIDDEN = [  # (checker, an answer that is right but for what it calls, the call reported)
    *((check, touching(solution(check), make_torch_sgd), "torch.optim.sgd.SGD.__init__")
      for check in CHECKERS),
    *((check, touching(solution(check), autograd_grad), "torch.autograd.grad")
      for check in sorted(AUTOGRAD_TASKS, key=CHECKERS.index)),
    (gd.check_gd_step, gd_step_by_torch, "torch.optim.sgd.SGD.__init__"),
    (gd.check_linear_regression_gd, regression_by_backward, "torch._tensor.Tensor.backward"),
    (mo.check_minibatch_gradient, minibatch_by(by_backward), "torch._tensor.Tensor.backward"),
    (mo.check_minibatch_gradient, minibatch_by(lambda loss, w: (lambda w: torch.autograd.grad(
        loss(w), w)[0])(w.clone().requires_grad_(True))), "torch.autograd.grad"),
    (mo.check_minibatch_gradient, minibatch_by(lambda loss, w: torch.func.grad(loss)(w)),
     "torch._functorch.apis.grad"),
    (mo.check_minibatch_gradient, minibatch_by(lambda loss, w: torch.func.jacrev(loss)(w)),
     "torch._functorch.eager_transforms.jacrev"),
    (mo.check_minibatch_gradient, minibatch_by(
        lambda loss, w: torch.autograd.functional.jacobian(loss, w)),
     "torch.autograd.functional.jacobian"),
    (mo.check_momentum_step, sgd_by_torch, "torch.optim.sgd.SGD.__init__"),
    (mo.check_sgd_step, sgd_by_torch, "torch.optim.sgd.SGD.__init__"),
    (mo.check_sgd_step, sgd_by_torch_functional, "torch.optim.sgd.sgd"),
    (mo.check_sgd_step, sgd_by_fused_kernel, "torch._fused_sgd_"),
    (ad.check_adagrad_step, torch_optimizer_step(
        torch.optim.Adagrad, lambda s: {"sum": s.clone(), "step": torch.tensor(0.0)},
        lambda s: s["sum"]), "torch.optim.adagrad.Adagrad.__init__"),
    (ad.check_rmsprop_step, torch_optimizer_step(
        torch.optim.RMSprop, lambda s: {"square_avg": s.clone(), "step": torch.tensor(0.0)},
        lambda s: s["square_avg"]), "torch.optim.rmsprop.RMSprop.__init__"),
    (ad.check_adam_step, torch_optimizer_step(torch.optim.Adam, adam_state, adam_state_back),
     "torch.optim.adam.Adam.__init__"),
    (ad.check_adamw_step, torch_optimizer_step(torch.optim.AdamW, adam_state, adam_state_back),
     "torch.optim.adamw.AdamW.__init__"),
    (ad.check_unused_weight, unused_weight_by_torch, "torch.optim.adamw.AdamW.__init__"),
]


globals().update(exercise_tests(MISTAKES, *NOTEBOOKS.values(), forbidden=FORBIDDEN))


def gd_step_by_autograd(A, b, theta, lr):
    theta = theta.clone().requires_grad_(True)
    (0.5 * theta @ A @ theta - b @ theta).backward()
    return (theta - lr * theta.grad).detach()


def test_what_a_task_does_not_forbid_stays_allowed():
    """Chapter 03's task 1 says nothing against autograd, and torch.no_grad (which lives in
    torch.autograd.grad_mode) is no gradient computation."""
    assert gd.check_gd_step(gd_step_by_autograd).passed

    def sgd_step_without_grad(*args, **kwargs):
        with torch.no_grad(), torch.enable_grad(), torch.no_grad():
            return solution(mo.check_sgd_step)(*args, **kwargs)

    assert mo.check_sgd_step(sgd_step_without_grad).passed


@pytest.mark.parametrize("answer, named", [
    (mo._sgd_reference, "helpers.exercises.momentum._sgd_reference"),
    (lambda param, grad, buffer, lr, momentum, dampening=0.0, weight_decay=0.0, nesterov=False:
     (lambda p: (p, optim.sgd_step(p, grad, buffer, lr=lr, momentum=momentum,
                                   dampening=dampening, weight_decay=weight_decay,
                                   nesterov=nesterov)))(param.clone()),
     "helpers.optim.sgd_step"),
], ids=["the checker's reference", "helpers.optim"])
def test_an_answer_that_calls_the_course_code_is_told_so(answer, named):
    verdict = mo.check_sgd_step(answer)
    assert verdict.status == E.WRONG, verdict
    assert verdict.message == (f"your function calls {named}, the course's own code: this task "
                               "asks you to write it yourself"), verdict.message


# --------------------------------------------------------------------------------------------
# Hidden tests: other inputs, which the solutions pass and a memorised answer does not
# --------------------------------------------------------------------------------------------


def _key(value):
    """A hashable picture of a call's argument: a tensor by its dtype, shape and values."""
    if isinstance(value, torch.Tensor):
        return (str(value.dtype), tuple(value.shape), tuple(value.flatten().tolist()))
    if isinstance(value, dict):
        return tuple(sorted((k, _key(v)) for k, v in value.items()))
    if isinstance(value, tuple | list):
        return tuple(_key(v) for v in value)
    return repr(value)


def memorised(check):
    """An answer that knows only the visible inputs: the solution's outputs on them, looked up
    (None on any other input)."""
    table, answer = {}, solution(check)

    def recording(*args, **kwargs):
        table[_key((args, kwargs))] = result = answer(*args, **kwargs)
        return result

    assert check(recording).passed
    return lambda *args, **kwargs: table.get(_key((args, kwargs)))


@pytest.mark.parametrize("check", [c for c in CHECKERS if c not in QUESTIONS],
                         ids=lambda c: c.__name__)
def test_a_memorised_answer_passes_the_visible_inputs_only(check):
    answer = memorised(check)
    assert check(answer).passed
    with pytest.raises(AssertionError, match="on the hidden inputs: "):
        grading.grade(check, answer, seed=seed_of(check))


def test_the_drawn_noise_floor_cases_keep_lr_times_curvature_in_the_stable_range():
    seen = []

    def recording(lr, curvature, noise):
        seen.append((lr, curvature, noise))
        return solution(mo.check_noise_floor)(lr, curvature, noise)

    for seed in range(1, 21):
        grading.grade(mo.check_noise_floor, recording, seed=seed)
    drawn = {case for case in seen if case not in {(0.1, 1.0, 1.0), (0.15, 10.0, 2.0),
                                                   (0.01, 3.0, 0.5)}}
    assert len(drawn) == 2 * 21
    assert all(0.1 <= lr * lam <= 1.8 and 0.5 <= lam <= 10 and 0.2 <= s <= 3
               for lr, lam, s in drawn)


# --------------------------------------------------------------------------------------------
# Sealed answers: the question tasks' checkers do not give the answer away
# --------------------------------------------------------------------------------------------


def expected_of(check):
    """What `check` compares the answer with: the `expected` it hands to check_answer."""
    seen = []
    module = inspect.getmodule(check.__wrapped__)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "check_answer", lambda task, learner, expected, *a, **k: (
            seen.append(expected), E.passed(task))[1])
        check(lambda: None)
    return seen[0]


@pytest.mark.parametrize("check", QUESTIONS, ids=lambda c: c.__name__)
def test_a_question_task_compares_with_a_sealed_answer(check):
    assert isinstance(expected_of(check), E.Sealed)
    assert check(solution(check)).passed


@pytest.mark.parametrize("check", QUESTIONS, ids=lambda c: c.__name__)
def test_the_answer_is_not_written_in_its_checkers_module(check):
    answer = solution(check)()
    numbers = answer if isinstance(answer, tuple | list) else [answer]
    source = inspect.getsource(inspect.getmodule(check.__wrapped__))
    # each number as it would be written, where it has 4 or more significant digits
    written = [f"{x:.6g}" for x in numbers if len(re.sub(r"\D", "", f"{x:.6g}").lstrip("0")) >= 4]
    assert written or check is gd.check_diverging_lrs
    assert not [x for x in written if x in source]
    if check is gd.check_diverging_lrs:
        assert "2 / 9" not in source and "2/9" not in source
