"""Checkers for the exercises of chapter 05, adaptive optimizers.

The step tasks are checked over several steps by `helpers.exercises.momentum.check_steps`, against
`helpers.optim`'s functional steps (proved equal to `torch.optim`'s in chapter 05).

The exercises ask for tensor operations, "not torch.optim": every task forbids it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from helpers import optim
from helpers.exercises import Diagnosis, Disguised, Sealed, Verdict, check_answer, seeded, swapped
from helpers.exercises.gradient_descent import BUILT_IN_OPTIMIZERS
from helpers.exercises.grading import task
from helpers.exercises.momentum import (
    FirstStepDiagnosis,
    StepCase,
    check_steps,
    random_gradients,
)

_TINY_TO_LARGE = (1e-6, 1e-2, 1.0, 10.0)
"""Gradient scales per coordinate: the tiny one shows where eps goes."""

_ASCENT = "you stepped uphill: subtract the step, param - lr * ..."


# --------------------------------------------------------------------------------------------
# Task 1: Adagrad
# --------------------------------------------------------------------------------------------


def _adagrad_reference(param, grad, state_sum, lr, eps=1e-10):
    """helpers.optim.adagrad_step (equal to torch.optim.Adagrad's), on copies, as a pair."""
    param, state_sum = param.clone(), state_sum.clone()
    optim.adagrad_step(param, grad, state_sum, torch.tensor(0.0), lr=lr, eps=eps)
    return param, state_sum


def _adagrad_variant(accumulate=None, denominator=None, sign=-1.0):
    def step(param, grad, state_sum, lr, eps=1e-10):
        G = accumulate(state_sum, grad) if accumulate else state_sum + grad * grad
        denom = denominator(G, eps) if denominator else G.sqrt() + eps
        return param + sign * lr * grad / denom, G
    return step


def adagrad_cases() -> list[StepCase]:
    """Task 1's runs: gradients from 1e-6 to 10, a non-zero start of the sum, float32."""
    g = seeded(51)
    return [
        StepCase(torch.randn(4, generator=g, dtype=torch.float64),
                 random_gradients(g, 4, (4,), scales=_TINY_TO_LARGE),
                 torch.zeros(4, dtype=torch.float64), dict(lr=0.1)),
        StepCase(torch.randn(3, generator=g, dtype=torch.float64), random_gradients(g, 4, (3,)),
                 torch.full((3,), 0.1, dtype=torch.float64), dict(lr=0.5, eps=1e-3)),
        StepCase(torch.randn(2, 3, generator=g), random_gradients(g, 3, (2, 3), torch.float32),
                 torch.zeros(2, 3), dict(lr=0.01)),
    ]


@task(forbid=BUILT_IN_OPTIMIZERS)
def check_adagrad_step(adagrad_step) -> Verdict:
    """Task 1: `adagrad_step(param, grad, state_sum, lr, eps=1e-10)` -> (param, state_sum)."""
    return check_steps("adagrad_step", adagrad_step, _adagrad_reference, adagrad_cases(), [
        Diagnosis(_adagrad_variant(accumulate=lambda G, g: g * g),
                  "Adagrad ACCUMULATES: G_t = G_(t-1) + g_t^2, the sum of all squared gradients "
                  "so far (with only g_t^2 every step is lr * sign(g))"),
        Diagnosis(_adagrad_variant(denominator=lambda G, eps: G + eps),
                  "divide by the square ROOT of the sum, sqrt(G_t) + eps"),
        Diagnosis(_adagrad_variant(denominator=lambda G, eps: (G + eps).sqrt()),
                  "eps inside the square root: torch adds it outside, sqrt(G_t) + eps"),
        Diagnosis(_adagrad_variant(accumulate=lambda G, g: G + g.abs()),
                  "accumulate the SQUARES g_t^2, not |g_t|"),
        Diagnosis(_adagrad_variant(sign=1.0), _ASCENT),
    ], state_name="state_sum")


# --------------------------------------------------------------------------------------------
# Task 2: RMSprop
# --------------------------------------------------------------------------------------------


def _rmsprop_reference(param, grad, square_avg, lr, alpha=0.99, eps=1e-8):
    """helpers.optim.rmsprop_step (equal to torch.optim.RMSprop's), on copies, as a pair."""
    param, square_avg = param.clone(), square_avg.clone()
    optim.rmsprop_step(param, grad, square_avg, torch.tensor(0.0), lr=lr, alpha=alpha, eps=eps)
    return param, square_avg


def _rmsprop_variant(average=None, denominator=None, sign=-1.0):
    def step(param, grad, square_avg, lr, alpha=0.99, eps=1e-8):
        v = average(square_avg, grad, alpha) if average else \
            alpha * square_avg + (1 - alpha) * grad * grad
        denom = denominator(v, eps, alpha) if denominator else v.sqrt() + eps
        return param + sign * lr * grad / denom, v
    return step


def _rmsprop_bias_corrected():
    """RMSprop with Adam's correction v_t / (1 - alpha^t), t counted from a state of zeros (as a
    learner's global counter would, reset before each run)."""
    t = 0

    def step(param, grad, square_avg, lr, alpha=0.99, eps=1e-8):
        nonlocal t
        t = 1 if not square_avg.any() else t + 1
        v = alpha * square_avg + (1 - alpha) * grad * grad
        return param - lr * grad / ((v / (1 - alpha**t)).sqrt() + eps), v
    return step


_RMSPROP_CORRECTED = ("RMSprop has no bias correction: torch divides by sqrt(v_t) + eps with v_t "
                      "as it is; dividing v_t by 1 - alpha^t (Adam's correction) makes the "
                      "first step lr * sign(g), 10 times smaller than torch's for alpha = 0.99")


def rmsprop_cases() -> list[StepCase]:
    """Task 2's runs: gradients from 1e-6 to 10, another alpha and eps, float32."""
    g = seeded(52)
    return [
        StepCase(torch.randn(4, generator=g, dtype=torch.float64),
                 random_gradients(g, 4, (4,), scales=_TINY_TO_LARGE),
                 torch.zeros(4, dtype=torch.float64), dict(lr=0.01)),
        StepCase(torch.randn(3, generator=g, dtype=torch.float64), random_gradients(g, 5, (3,)),
                 torch.zeros(3, dtype=torch.float64), dict(lr=0.05, alpha=0.9, eps=1e-6)),
        StepCase(torch.randn(2, 3, generator=g), random_gradients(g, 3, (2, 3), torch.float32),
                 torch.zeros(2, 3), dict(lr=0.001, alpha=0.8)),
    ]


@task(forbid=BUILT_IN_OPTIMIZERS)
def check_rmsprop_step(rmsprop_step) -> Verdict:
    """Task 2: `rmsprop_step(param, grad, square_avg, lr, alpha=0.99, eps=1e-8)` ->
    (param, square_avg)."""
    return check_steps("rmsprop_step", rmsprop_step, _rmsprop_reference, rmsprop_cases(), [
        Diagnosis(_rmsprop_variant(denominator=lambda v, eps, alpha: (v + eps).sqrt()),
                  "eps inside the square root (TensorFlow's convention): torch adds it "
                  "outside, sqrt(v_t) + eps, which matters for small gradients"),
        Diagnosis(_rmsprop_variant(average=lambda v, g, a: (1 - a) * v + a * g * g),
                  "alpha multiplies the OLD average: v_t = alpha v_(t-1) + (1 - alpha) g_t^2"),
        Diagnosis(_rmsprop_variant(denominator=lambda v, eps, alpha: v + eps),
                  "divide by the ROOT mean square, sqrt(v_t) + eps, not by v_t"),
        Diagnosis(_rmsprop_variant(average=lambda v, g, a: v + g * g),
                  "that is Adagrad's sum; RMSprop forgets old gradients with a moving average, "
                  "v_t = alpha v_(t-1) + (1 - alpha) g_t^2"),
        Diagnosis(_rmsprop_variant(average=lambda v, g, a: a * v + (1 - a) * g),
                  "average the SQUARED gradient g_t^2"),
        Diagnosis(_rmsprop_variant(sign=1.0), _ASCENT),
        Diagnosis(_rmsprop_variant(denominator=lambda v, eps, alpha: (v / (1 - alpha)).sqrt()
                                   + eps), _RMSPROP_CORRECTED),  # t = 1 at every step
        FirstStepDiagnosis(_rmsprop_bias_corrected(), _RMSPROP_CORRECTED),
    ], state_name="square_avg")


# --------------------------------------------------------------------------------------------
# Task 3 (conceptual): Adam's first step with and without the bias correction
# --------------------------------------------------------------------------------------------


@task(forbid=BUILT_IN_OPTIMIZERS)
def check_first_step(first_step) -> Verdict:
    """Task 3 (conceptual): |first step| / lr of Adam with betas (0.9, 0.999) and negligible
    eps: (with the bias correction, without it)."""
    beta1, beta2 = 0.9, 0.999
    diagnoses = [
        ((1.0, 1 - beta1), "the denominator is biased too: v_1 = (1 - beta2) g_1^2 is as far "
                           "from g_1^2 as m_1 = (1 - beta1) g_1 is from g_1"),
        ((1.0, (1 - beta1) / (1 - beta2)), "v_1 = (1 - beta2) g_1^2 sits under a square root: "
                                           "its factor becomes sqrt(1 - beta2)"),
    ]
    return check_answer("first_step", first_step, _FIRST_STEP, [
        *diagnoses,
        (Disguised(swapped), "the other way round: corrected, the first step is exactly lr "
                             "(m^_1 = g_1, v^_1 = g_1^2)"),
        (Disguised(lambda got: (got[0], 1 / got[1])),
         "upside down: the step is m_1 divided by sqrt(v_1), not sqrt(v_1) divided by m_1"),
    ])


_FIRST_STEP = Sealed("aa49a87d460c9fbf6d236e8a139df87a446bd705f7419776ae5de895fbf301f4", 2)


# --------------------------------------------------------------------------------------------
# Tasks 4 and 5: Adam and AdamW, state dict in, (param, state) out
# --------------------------------------------------------------------------------------------


def _adam_reference(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
                    decoupled=False):
    """helpers.optim.adam_step (equal to torch.optim.Adam / AdamW), on copies, as a pair."""
    param, m, v = param.clone(), state["exp_avg"].clone(), state["exp_avg_sq"].clone()
    step = torch.tensor(float(state["step"]), dtype=torch.float64)
    optim.adam_step(param, grad, m, v, step, lr=lr, beta1=betas[0], beta2=betas[1], eps=eps,
                    weight_decay=weight_decay, decoupled_weight_decay=decoupled)
    return param, {"step": int(step.item()), "exp_avg": m, "exp_avg_sq": v}


def _adamw_reference(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
    return _adam_reference(param, grad, state, lr, betas, eps, weight_decay, decoupled=True)


def _adam_variant(correct_m=True, correct_v=True, eps_where="outside", step_used=1,
                  store_step=True, store_corrected=False, swap_betas=False, decay="decoupled",
                  sign=-1.0, default_decay=1e-2):
    """Adam / AdamW with one part changed: how the typical mistakes are written.

    `step_used` is added to the stored step to get the t of the bias corrections; `eps_where`
    is 'outside', 'inside', 'before' (the correction) or 'no root'; `decay` is 'decoupled'
    (AdamW), 'l2' (Adam's weight_decay), 'no lr', 'after', 'none', or twice: 'l2 and decoupled',
    'before and after'.
    """
    def step(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=default_decay):
        beta1, beta2 = betas
        t = state["step"] + 1
        g = grad + weight_decay * param if decay in ("l2", "l2 and decoupled") else grad
        if decay in ("decoupled", "l2 and decoupled", "before and after"):
            param = param * (1 - lr * weight_decay)
        if decay == "no lr":
            param = param * (1 - weight_decay)
        new_weight1, new_weight2 = (beta1, beta2) if swap_betas else (1 - beta1, 1 - beta2)
        m = (1 - new_weight1) * state["exp_avg"] + new_weight1 * g
        v = (1 - new_weight2) * state["exp_avg_sq"] + new_weight2 * g * g
        tc = state["step"] + step_used
        m_hat = m / (1 - beta1**tc) if correct_m else m
        v_hat = v / (1 - beta2**tc) if correct_v else v
        if eps_where == "outside":
            denom = v_hat.sqrt() + eps
        elif eps_where == "inside":
            denom = (v_hat + eps).sqrt()
        elif eps_where == "no root":
            denom = v_hat + eps
        else:  # eps added to sqrt(v_t) before the correction
            denom = (v.sqrt() + eps) / math.sqrt(1 - beta2**tc)
        new = param + sign * lr * m_hat / denom
        if decay in ("after", "before and after"):
            new = new * (1 - lr * weight_decay)
        m, v = (m_hat, v_hat) if store_corrected else (m, v)
        return new, {"step": t if store_step else state["step"], "exp_avg": m, "exp_avg_sq": v}
    return step


def _fresh(param: Tensor) -> dict:
    return {"step": 0, "exp_avg": torch.zeros_like(param), "exp_avg_sq": torch.zeros_like(param)}


def _mid_run(g: torch.Generator, n: int, step: int) -> tuple[Tensor, dict]:
    """A parameter and a state as after `step` steps: averages that are no longer zero."""
    m = 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    v = m * m + 0.01 * torch.rand(n, generator=g, dtype=torch.float64)
    return torch.randn(n, generator=g, dtype=torch.float64), {"step": step, "exp_avg": m,
                                                              "exp_avg_sq": v}


def adam_cases() -> list[StepCase]:
    """Task 4's runs: gradients from 1e-6 to 10, other betas in float32, and a run mid-way."""
    g = seeded(54)
    param = torch.randn(4, generator=g, dtype=torch.float64)
    param32 = torch.randn(2, 3, generator=g)
    middle, state = _mid_run(g, 3, 10)
    return [
        StepCase(param, random_gradients(g, 5, (4,), scales=_TINY_TO_LARGE), _fresh(param),
                 dict(lr=0.01)),
        StepCase(param32, random_gradients(g, 4, (2, 3), torch.float32), _fresh(param32),
                 dict(lr=0.1, betas=(0.8, 0.9), eps=1e-6)),
        StepCase(middle, random_gradients(g, 3, (3,)), state, dict(lr=0.001)),
    ]


@task(forbid=BUILT_IN_OPTIMIZERS)
def check_adam_step(adam_step) -> Verdict:
    """Task 4: `adam_step(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8)` ->
    (param, state), state = {"step": int, "exp_avg": tensor, "exp_avg_sq": tensor}."""
    def adam(**changes):
        return _adam_variant(decay="none", **changes)

    return check_steps("adam_step", adam_step, _adam_reference, adam_cases(), [
        Diagnosis(adam(correct_m=False, correct_v=False),
                  "no bias correction: m and v start at 0 and are biased towards it; divide "
                  "them by 1 - beta1^t and 1 - beta2^t (uncorrected, the first steps are "
                  "several times too large)"),
        Diagnosis(adam(correct_v=False),
                  "you corrected m but not v: v^_t = v_t / (1 - beta2^t) too (without it the "
                  "first steps are about 30 times too large)"),
        Diagnosis(adam(correct_m=False),
                  "you corrected v but not m: m^_t = m_t / (1 - beta1^t) too (without it the "
                  "first steps are too small)"),
        Diagnosis(adam(eps_where="inside"),
                  "eps inside the square root: torch adds it outside, sqrt(v^_t) + eps"),
        Diagnosis(adam(eps_where="before"),
                  "eps is added AFTER the bias correction, to sqrt(v^_t) = sqrt(v_t) / "
                  "sqrt(1 - beta2^t); you added it to sqrt(v_t)"),
        Diagnosis(adam(step_used=0),
                  "increment the step first: t counts from 1, so the first correction is "
                  "1 - beta^1 (with t = 0 you divide by zero)"),
        Diagnosis(adam(store_step=False),
                  "store the new step count in state['step']: otherwise every step is "
                  "corrected as if it were the first"),
        Diagnosis(adam(step_used=2),
                  "one step ahead: the correction of step t uses beta^t, where t counts this "
                  "step (state['step'] + 1)"),
        Diagnosis(adam(store_corrected=True),
                  "keep the UNcorrected m_t and v_t in the state: the corrections only scale "
                  "this step's m^_t and v^_t; stored, they would be corrected again at the next "
                  "step"),
        Diagnosis(adam(eps_where="no root"),
                  "divide by the square ROOT of v^_t: sqrt(v^_t) + eps"),
        Diagnosis(adam(swap_betas=True),
                  "beta multiplies the OLD average: m_t = beta1 m_(t-1) + (1 - beta1) g_t and "
                  "v_t = beta2 v_(t-1) + (1 - beta2) g_t^2"),
        Diagnosis(_adam_variant(decay="none", sign=1.0), _ASCENT),
    ])


def adamw_cases() -> list[StepCase]:
    """Task 5's runs: two decays, and a run mid-way with the default weight_decay."""
    g = seeded(55)
    param = torch.randn(4, generator=g, dtype=torch.float64)
    param32 = torch.randn(2, 3, generator=g)
    middle, state = _mid_run(g, 3, 5)
    return [
        StepCase(param, random_gradients(g, 4, (4,)), _fresh(param),
                 dict(lr=0.1, weight_decay=0.1)),
        StepCase(param32, random_gradients(g, 3, (2, 3), torch.float32), _fresh(param32),
                 dict(lr=0.05, betas=(0.8, 0.95), weight_decay=0.5)),
        StepCase(middle, random_gradients(g, 3, (3,)), state, dict(lr=0.5)),
    ]


@task(forbid=BUILT_IN_OPTIMIZERS)
def check_adamw_step(adamw_step) -> Verdict:
    """Task 5: `adamw_step(param, grad, state, lr, betas=(0.9, 0.999), eps=1e-8,
    weight_decay=1e-2)` -> (param, state), with AdamW's decoupled weight decay."""
    return check_steps("adamw_step", adamw_step, _adamw_reference, adamw_cases(), [
        Diagnosis(_adam_variant(decay="l2"),
                  "that is Adam(weight_decay=...): an L2 term in the gradient, which then goes "
                  "through m and v and is divided by sqrt(v^); AdamW shrinks the parameter "
                  "directly, param * (1 - lr * weight_decay), and leaves the gradient alone"),
        Diagnosis(_adam_variant(decay="l2 and decoupled"),
                  "you decayed twice: AdamW's shrink param * (1 - lr * weight_decay) REPLACES "
                  "the L2 term; don't also add weight_decay * param to the gradient"),
        Diagnosis(_adam_variant(decay="before and after"),
                  "you decayed twice: shrink once, the OLD parameter before the Adam step, "
                  "param * (1 - lr * weight_decay); not the new one after it as well"),
        Diagnosis(_adam_variant(decay="no lr"),
                  "the decay is scaled by the learning rate: param * (1 - lr * weight_decay)"),
        Diagnosis(_adam_variant(decay="after"),
                  "torch shrinks the OLD parameter, before the Adam step: "
                  "param = param * (1 - lr * weight_decay), then param - lr * m^ / (...)"),
        Diagnosis(_adam_variant(default_decay=0.0),
                  "AdamW's default weight_decay is 1e-2 (Adam's is 0)"),
        Diagnosis(_adam_variant(decay="none"),
                  "the weight decay is missing: shrink param by (1 - lr * weight_decay) before "
                  "the Adam step"),
    ])


# --------------------------------------------------------------------------------------------
# Task 6 (conceptual): a weight that gets no gradient
# --------------------------------------------------------------------------------------------


def _unused_weight(optimizer_class, steps: int = 10, lr: float = 0.01,
                   weight_decay: float = 0.1) -> float:
    w = torch.ones(1, dtype=torch.float64, requires_grad=True)
    optimizer = optimizer_class([w], lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        w.grad = torch.zeros_like(w)
        optimizer.step()
    return w.item()


@task(forbid=BUILT_IN_OPTIMIZERS)
def check_unused_weight(unused_weight) -> Verdict:
    """Task 6 (conceptual): a weight w = 1 whose loss gradient is always 0, after 10 steps of
    AdamW(lr=0.01, weight_decay=0.1)."""
    return check_answer("unused_weight", unused_weight, _UNUSED_WEIGHT, [
        (1.0, "AdamW decays a weight even when the loss gives it no gradient: the shrink "
              "(1 - lr * weight_decay) does not go through m and v"),
        (1 - 10 * 0.01 * 0.1, "the decay compounds: the factor (1 - lr * weight_decay) "
                              "multiplies the weight at every step"),
        ((1 - 0.1) ** 10, "the factor is (1 - lr * weight_decay), with the learning rate"),
        (_unused_weight(optim.Adam),
         "that is Adam(weight_decay=0.1): the L2 gradient 0.1 w, normalised by sqrt(v^), moves "
         "the weight by about lr per step; AdamW multiplies it by (1 - lr * weight_decay)"),
    ])


_UNUSED_WEIGHT = Sealed("7ddd9865c6ad0a47016a14b54993dca6ec67019c9486258b7d33ce05b15b0f5d")
