"""Checkers for the exercises of chapter 04, SGD and momentum.

Optimizer steps carry state from one step to the next, so their checker, `check_steps`, runs the
learner's step over a whole sequence of gradients — feeding back the state it returned — next to
the reference, and compares the parameter and every state entry after every step. Chapter 05's
checkers use it too.

The exercises ask for tensor operations, "not torch.optim or autograd": every task forbids both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers import optim
from helpers.exercises import (
    Diagnosis,
    Disguised,
    Forbidden,
    Sealed,
    Verdict,
    as_number,
    check_answer,
    check_function,
    not_implemented,
    passed,
    seeded,
    swapped,
    tolerance,
    values_differ,
    wrong,
)
from helpers.exercises.gradient_descent import AUTOGRAD, BUILT_IN_OPTIMIZERS
from helpers.exercises.grading import task

_TENSOR_OPERATIONS_ONLY = BUILT_IN_OPTIMIZERS + AUTOGRAD  # "not torch.optim or autograd"

# --------------------------------------------------------------------------------------------
# Checking a stateful step over several steps
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepCase:
    """A run: the start parameter, one gradient per step, the initial state, the options.

    The step is called as ``step(param, grad, state, **options)`` and must return
    ``(param, state)``; `state` is a tensor, None, or a dict of entries (then every key of the
    reference's state must be there).
    """

    param: Tensor
    grads: tuple[Tensor, ...]
    state: object = None
    options: dict = field(default_factory=dict)

    def describe(self) -> str:
        options = "".join(f", {key}={value!r}" for key, value in self.options.items())
        return (f"a {self.param.dtype} parameter of shape {tuple(self.param.shape)}, "
                f"{len(self.grads)} steps{options}")


class _BadReturn(Exception):
    """The learner's step returned something that is not a (param, state) pair."""


def _copy(value):
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {key: _copy(entry) for key, entry in value.items()}
    return value


def _type_name(value) -> str:
    """'None', 'a tensor of shape (3,)', 'a tuple of 3 items', 'an int', ..."""
    if value is None:
        return "None"
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)} items"
    name = type(value).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def _entries(param, state, state_name: str) -> dict[str, object]:
    """What one step produced, by name: `param`, and `state_name` or one entry per dict key."""
    if isinstance(state, dict):
        return {"param": param, **{f"state[{key!r}]": entry for key, entry in state.items()}}
    return {"param": param, state_name: state}


def _run(step: Callable, case: StepCase, state_name: str,
         expected: list[tuple[dict, object]] | None = None
         ) -> tuple[list[tuple[dict, object]], tuple[int, str] | None]:
    """Run `step` through `case`: (entries, state) of each step, and the first difference.

    Without `expected` the whole run comes back (the reference's, or a diagnosis's). With the
    reference's run as `expected`, each output of the learner's step is validated (a pair, a
    tensor parameter, a dict state with the reference's keys where it has a dict) and compared;
    the run stops at the first difference, `(step, what differs)`, so that a wrong state is never
    fed back into the learner's next step.
    """
    param, state, history = _copy(case.param), _copy(case.state), []
    for number, grad in enumerate(case.grads, start=1):
        out = step(_copy(param), grad.clone(), _copy(state), **case.options)
        if expected is not None:
            _validate(out, number, state_name, expected[number - 1][1])
        param, state = _copy(out[0]), _copy(out[1])
        history.append((_entries(param, state, state_name), state))
        if expected is not None:
            problem = _step_difference(history[-1][0], expected[number - 1][0], *_tolerance(
                case.param.dtype))
            if problem is not None:
                return history, (number, problem)
    return history, None


def _validate(out, number: int, state_name: str, expected_state) -> None:
    """Raise `_BadReturn`, saying what came, unless `out` is a (param, state) pair."""
    at = f"at step {number}"
    if out is None:
        raise _BadReturn(f"your function returned None {at}: did you forget `return`?")
    if not isinstance(out, tuple | list) or len(out) != 2:
        raise _BadReturn(f"expected your function to return the pair (param, {state_name}), but "
                         f"it returned {_type_name(out)} {at}")
    param, state = out
    if not isinstance(param, Tensor):
        raise _BadReturn(f"expected the new parameter as a tensor, but your function returned "
                         f"{_type_name(param)} {at}")
    if isinstance(expected_state, dict):
        if not isinstance(state, dict):
            raise _BadReturn(f"expected the state as a dict with keys {list(expected_state)}, but "
                             f"your function returned {_type_name(state)} {at}")
        missing = [key for key in expected_state if key not in state]
        if missing:
            raise _BadReturn(f"the state your function returned {at} has no key {missing[0]!r}: "
                             f"keep every entry, {list(expected_state)}")


def _tolerance(dtype: torch.dtype) -> tuple[float, float]:
    """(rtol, atol): tight in float64, no tighter than float32 and half precision reproduce."""
    return tolerance(dtype, 1e-6, 1e-8)


def _difference(name: str, got, expected, rtol: float, atol: float) -> str | None:
    """How `got` differs from `expected` (None when equal); both are one entry of one step."""
    if isinstance(expected, Tensor):
        if not isinstance(got, Tensor):
            return f"expected {name} to be a tensor, but got {_type_name(got)}"
        if got.shape != expected.shape:
            return f"expected {name} of shape {tuple(expected.shape)}, but got {tuple(got.shape)}"
        if got.dtype != expected.dtype:
            return (f"expected {name} of dtype {expected.dtype}, but got {got.dtype}: compute in "
                    "the parameter's dtype")
        if torch.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True):
            return None
        if (torch.isfinite(expected) & ~torch.isfinite(got)).any():
            return f"{name} has inf or nan where the answer is finite (a division by zero?)"
        return f"{name} differs{values_differ(got, expected)}"
    if expected is None:
        return None if got is None else f"expected {name} to be None, but got {_type_name(got)}"
    number = as_number(got)
    if number is None:
        return f"expected {name} to be a number, but got {_type_name(got)}"
    got = number
    if math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
        return None
    return f"{name} is {got!r}, expected {expected!r}"


def _step_difference(got: dict, expected: dict, rtol: float, atol: float) -> str | None:
    """The first entry of one step that differs, described; None when all are equal."""
    for name, value in expected.items():
        problem = _difference(name, got.get(name), value, rtol, atol)
        if problem is not None:
            return problem
    return None


def _equal_runs(mine: list[tuple[dict, object]], theirs: list[tuple[dict, object]],
                dtype: torch.dtype) -> bool:
    """Whether two runs agree entry by entry, over the steps both made."""
    tolerance = _tolerance(dtype)
    return all(_step_difference(a[0], b[0], *tolerance) is None for a, b in zip(mine, theirs))


def _same_mistake(learner: Callable, wrong_step: Callable, got: list[tuple[dict, object]],
                  failing: StepCase, cases: Sequence[StepCase], state_name: str) -> bool:
    """Whether the learner's step is `wrong_step`: equal to it on the failing case up to the
    first difference (`got`), and over every other case where the wrong step runs, as
    `check_function` decides for its diagnoses."""
    def run(step, case):
        try:
            return _run(step, case, state_name)[0]
        except Exception:  # noqa: BLE001 - any failure means "no run here"
            return None

    theirs = run(wrong_step, failing)
    if theirs is None or not _equal_runs(got, theirs, failing.param.dtype):
        return False
    for case in cases:
        if case is failing or (theirs := run(wrong_step, case)) is None:
            continue
        mine = run(learner, case)
        if mine is None or len(mine) != len(theirs) or not _equal_runs(
                mine, theirs, case.param.dtype):
            return False
    return True


@dataclass(frozen=True)
class FirstStepDiagnosis(Diagnosis):
    """A mistake recognised by the first step of a run alone, when the learner's run goes wrong
    there: for a wrong step whose later steps depend on what the checker cannot reproduce (a
    step counter kept outside the state, in a global variable)."""


def _same_first_step(wrong_step: Callable, got: list[tuple[dict, object]], failing: StepCase,
                     state_name: str) -> bool:
    """Whether `wrong_step`'s first step on `failing` equals the learner's (`got`)."""
    first = StepCase(failing.param, failing.grads[:1], failing.state, failing.options)
    try:
        theirs = _run(wrong_step, first, state_name)[0]
    except Exception:  # noqa: BLE001 - any failure means "no run here"
        return False
    return _equal_runs(got[:1], theirs, failing.param.dtype)


def _matches(diagnosis: Diagnosis, learner: Callable, got: list[tuple[dict, object]],
             step: int, failing: StepCase, cases: Sequence[StepCase], state_name: str) -> bool:
    """Whether the learner's run, which first differs at `step`, is `diagnosis`'s mistake."""
    if isinstance(diagnosis, FirstStepDiagnosis):
        return step == 1 and _same_first_step(diagnosis.wrong, got, failing, state_name)
    return _same_mistake(learner, diagnosis.wrong, got, failing, cases, state_name)


def _truth_value_hint(error: Exception, state_name: str) -> str:
    """A hint for the error a tensor raises when asked for one truth value (`if not state`,
    `state or grad`), else ''."""
    if "Boolean value of Tensor" not in str(error):
        return ""
    return (f": to tell the first step, test `{state_name} is None`; `if not {state_name}` or "
            f"`{state_name} or grad` asks a tensor of many values for one truth value")


def check_steps(task: str, learner, reference: Callable, cases: Sequence[StepCase],
                diagnoses: Sequence[Diagnosis] = (), state_name: str = "state") -> Verdict:
    """Run the learner's step and the reference through every case, step after step.

    A learner's step returns ``(param, state)``; its state is fed back into the next step. The
    parameter and each state entry are compared after every step, and the learner's run stops at
    the first difference. Then each diagnosis (a wrong step function) is run through the same
    case: if it equals the learner's steps up to there, and the learner's whole run on every other
    case, its hint is the verdict (a `FirstStepDiagnosis` only has to equal a first step that
    differs); otherwise the first difference is named.
    """
    if not callable(learner):
        return wrong(task, f"expected a function, but got {type(learner).__name__}")
    for number, case in enumerate(cases, start=1):
        expected, _ = _run(reference, case, state_name)
        on = f"(case {number}: {case.describe()})"
        try:
            got, difference = _run(learner, case, state_name, expected)
        except NotImplementedError:
            return not_implemented(task)
        except _BadReturn as problem:
            return wrong(task, f"{problem} {on}")
        except Forbidden as error:  # the call it made is the verdict, whatever the case
            return wrong(task, str(error))
        except Exception as error:  # noqa: BLE001 - the learner's bug becomes a verdict
            return wrong(task, f"your function raised {type(error).__name__}: {error} {on}"
                               f"{_truth_value_hint(error, state_name)}")
        if difference is None:
            continue
        step, problem = difference
        for diagnosis in diagnoses:
            if _matches(diagnosis, learner, got, step, case, cases, state_name):
                return wrong(task, diagnosis.hint)
        return wrong(task, f"after step {step}, {problem} {on}")
    return passed(task)


def random_gradients(generator: torch.Generator, steps: int, shape: tuple[int, ...],
               dtype=torch.float64, scales: Sequence[float] | None = None) -> tuple[Tensor, ...]:
    """`steps` random gradients with a non-zero mean; `scales` multiplies the last dimension."""
    scale = torch.ones(shape[-1], dtype=torch.float64) if scales is None else \
        torch.tensor(scales, dtype=torch.float64)
    return tuple((scale * (torch.randn(shape, generator=generator, dtype=torch.float64) + 0.5))
                 .to(dtype) for _ in range(steps))


# --------------------------------------------------------------------------------------------
# Task 1: the minibatch gradient; task 2 (conceptual): its variance
# --------------------------------------------------------------------------------------------


def _mse_gradient(X, y, w):
    # grad of 1/b |X_B w - y_B|^2  =  2/b X_B^T (X_B w - y_B)
    return 2 / len(y) * X.T @ (X @ w - y)


@task(forbid=_TENSOR_OPERATIONS_ONLY)
def check_minibatch_gradient(minibatch_gradient) -> Verdict:
    """Task 1: `minibatch_gradient(X, y, w, indices)`, the gradient of the mean squared error of
    the linear model X @ w on the rows `indices`."""
    g = seeded(41)
    cases = []
    for n, d, b, dtype in ((20, 3, 5, torch.float64), (50, 2, 1, torch.float64),
                           (12, 4, 6, torch.float32)):
        X = torch.randn(n, d, generator=g, dtype=dtype)
        cases.append((X, X @ torch.randn(d, generator=g, dtype=dtype) + 1.0,
                      torch.randn(d, generator=g, dtype=dtype),
                      torch.randperm(n, generator=g)[:b]))

    def reference(X, y, w, indices):
        return torch.func.grad(lambda w: F.mse_loss(X[indices] @ w, y[indices]))(w)

    return check_function("minibatch_gradient", minibatch_gradient, reference, cases, [
        Diagnosis(lambda X, y, w, i: _mse_gradient(X[i], y[i], w) * len(i) / len(X),
                  "divide by the batch size b, not by N: otherwise the estimate is b/N times "
                  "too small (biased)"),
        Diagnosis(lambda X, y, w, i: _mse_gradient(X, y, w),
                  "that is the full-batch gradient: use only the rows X[indices], y[indices]"),
        Diagnosis(lambda X, y, w, i: _mse_gradient(X[i], y[i], w) * len(i),
                  "the loss is the MEAN over the batch: divide the summed gradient by b"),
        Diagnosis(lambda X, y, w, i: _mse_gradient(X[i], y[i], w) / 2,
                  "the factor 2 from differentiating the square is missing"),
        Diagnosis(lambda X, y, w, i: -_mse_gradient(X[i], y[i], w),
                  "the sign is flipped: the gradient is 2/b X_B^T (X_B w - y_B)"),
    ])


@task(forbid=_TENSOR_OPERATIONS_ONLY)
def check_minibatch_variance(minibatch_variance) -> Verdict:
    """Task 2 (conceptual): E|g_B - g|^2 for N = 100, b = 10 distinct examples, sigma^2 = 4."""
    sigma2, n, b = 4.0, 100, 10
    diagnoses = [
        (sigma2 / b, "that is the variance for b examples drawn WITH replacement; a minibatch "
                     "holds b distinct examples: it needs the finite-population correction"),
        (sigma2 / b * (n - b) / n,
         "the finite-population correction has N - 1 below, not N"),
        (sigma2 / math.sqrt(b), "the VARIANCE falls like 1/b (the standard deviation like "
                                "1/sqrt(b))"),
    ]
    return check_answer("minibatch_variance", minibatch_variance, _MINIBATCH_VARIANCE, [
        *diagnoses,
        (Disguised(lambda got: got * b),
         "the mean of b terms divides the variance by b, not by b^2"),
        (Disguised(lambda got: got / b), "averaging b gradients divides the variance by b"),
    ])


_MINIBATCH_VARIANCE = Sealed("17f291ea6936951e8b0eca6e2c56a80b539627b1f277e6cd1c1cb5281b582145")


# --------------------------------------------------------------------------------------------
# Task 3: the noise floor
# --------------------------------------------------------------------------------------------


@task(forbid=_TENSOR_OPERATIONS_ONLY)
def check_noise_floor(noise_floor) -> Verdict:
    """Task 3: `noise_floor(lr, curvature, noise)`, the limit of E[f] for SGD on
    f = curvature/2 * theta^2 with gradient noise of standard deviation `noise`."""
    # three fixed cases (with noise 1 and 0.5 and 2, the standard-deviation mistake shows), then
    # drawn ones: curvature in [0.5, 10], lr * curvature in [0.1, 1.8], noise in [0.2, 3]
    g = seeded(43)
    drawn = [(float(r[1]) / float(r[0]), float(r[0]), float(r[2])) for r in
             torch.rand(2, 3, generator=g, dtype=torch.float64)
             * torch.tensor([9.5, 1.7, 2.8], dtype=torch.float64)
             + torch.tensor([0.5, 0.1, 0.2], dtype=torch.float64)]
    cases = [(0.1, 1.0, 1.0), (0.15, 10.0, 2.0), (0.01, 3.0, 0.5), *drawn]

    def variance(lr, lam, s):
        # v = lr s^2 / (lambda (2 - lr lambda))
        return lr * s**2 / (lam * (2 - lr * lam))

    return check_function("noise_floor", noise_floor,
                          lambda lr, lam, s: lam / 2 * variance(lr, lam, s), cases, [
        Diagnosis(variance,
                  "that is the stationary variance v of theta; the loss is f = lambda/2 theta^2, "
                  "so E[f] = lambda/2 * v"),
        Diagnosis(lambda lr, lam, s: lr * s**2 / 4,
                  "keep the (2 - lr * lambda): lr s^2 / 4 is only its small-lr approximation"),
        Diagnosis(lambda lr, lam, s: lam / 2 * variance(lr, lam, math.sqrt(s)),
                  "`noise` is a standard deviation s: the noise adds lr^2 s^2 (its variance) per "
                  "step"),
        Diagnosis(lambda lr, lam, s: lr * s**2 / (2 * (2 + lr * lam)),
                  "the contraction keeps (1 - lr lambda)^2 v of the variance: solve "
                  "v = (1 - lr lambda)^2 v + lr^2 s^2"),
        Diagnosis(lambda lr, lam, s: lam / 2 * lr * s**2 / (2 - lr * lam),
                  "a lambda is lost in the variance: v = (1 - lr lambda)^2 v + lr^2 s^2 gives "
                  "v lr lambda (2 - lr lambda) = lr^2 s^2, so v = lr s^2 / (lambda (2 - lr "
                  "lambda)), and E[f] = lambda/2 * v"),
    ])


# --------------------------------------------------------------------------------------------
# Tasks 4 and 5: torch's momentum step, then every option
# --------------------------------------------------------------------------------------------


def _sgd_reference(param, grad, momentum_buffer, lr, momentum, dampening=0.0,
                   weight_decay=0.0, nesterov=False):
    """helpers.optim.sgd_step (proved equal to torch.optim.SGD), on copies, as a pair."""
    param = param.clone()
    buffer = optim.sgd_step(param, grad, None if momentum_buffer is None else
                            momentum_buffer.clone(), lr=lr, momentum=momentum,
                            dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)
    return param, buffer


def _sgd_variant(buffer_init=None, buffer_update=None, direction=None, decay="l2",
                 sign=-1.0) -> Callable:
    """A step of torch's form with one part replaced: how the typical mistakes are written.

    `decay`: 'l2' (torch: into the gradient), 'after' (added to the direction) or 'none'.
    """
    def step(param, grad, momentum_buffer, lr, momentum, dampening=0.0, weight_decay=0.0,
             nesterov=False):
        g = grad + weight_decay * param if decay == "l2" else grad
        if momentum_buffer is None:
            b = buffer_init(g, dampening) if buffer_init else g.clone()
        else:
            b = (buffer_update(momentum_buffer, g, momentum, dampening) if buffer_update
                 else momentum * momentum_buffer + (1 - dampening) * g)
        d = direction(g, b, momentum, nesterov) if direction else \
            (g + momentum * b if nesterov else b)
        if decay == "after":
            d = d + weight_decay * param
        return param + sign * lr * d, b
    return step


def momentum_cases() -> list[StepCase]:
    """Task 4's runs: plain momentum, then dampening (which shows where the buffer starts)."""
    g = seeded(44)
    return [
        StepCase(torch.randn(4, generator=g, dtype=torch.float64),
                 random_gradients(g, 4, (4,)), None, dict(lr=0.1, momentum=0.9)),
        StepCase(torch.randn(3, generator=g, dtype=torch.float64),
                 random_gradients(g, 4, (3,)), None, dict(lr=0.05, momentum=0.8, dampening=0.5)),
        StepCase(torch.randn(2, 3, generator=g),
                 random_gradients(g, 3, (2, 3), torch.float32), None,
                 dict(lr=0.01, momentum=0.5, dampening=0.3)),
    ]


def _velocity_step(param, grad, momentum_buffer, lr, momentum, dampening=0.0,
                   weight_decay=0.0, nesterov=False):
    """The textbook velocity form, v_1 = lr g_1: same iterates as torch's, lr inside the buffer."""
    # v_t = mu v_(t-1) + (1 - tau) lr g_t,   theta_t = theta_(t-1) - v_t
    v = lr * grad if momentum_buffer is None else \
        momentum * momentum_buffer + (1 - dampening) * lr * grad
    return param - v, v


def _stale_buffer_step(first: str) -> Callable:
    """A step along the buffer it was given, the new buffer made only after the step.

    `first` says what the first step (no buffer yet) does: 'gradient' steps along g_1 and keeps
    b_1 = g_1 (torch's values until step 2), 'zero' starts from b_0 = 0 (no move at step 1),
    'twice' sets b = g_1, steps along it, then updates it once more.
    """
    def step(param, grad, momentum_buffer, lr, momentum, dampening=0.0, weight_decay=0.0,
             nesterov=False):
        g = grad + weight_decay * param
        if momentum_buffer is None:
            old = torch.zeros_like(g) if first == "zero" else g.clone()
        else:
            old = momentum_buffer
        new = g.clone() if momentum_buffer is None and first == "gradient" else \
            momentum * old + (1 - dampening) * g
        direction = g + momentum * old if nesterov else old
        return param - lr * direction, new
    return step


_STALE_BUFFER = ("you stepped along the OLD buffer and updated it after the step: first update "
                 "it, b_t = momentum * b_(t-1) + (1 - dampening) g_t (b_1 = g_1), then step "
                 "along the new one, param - lr * b_t")

_MOMENTUM_MISTAKES = [
    *(Diagnosis(_stale_buffer_step(first), _STALE_BUFFER)
      for first in ("gradient", "zero", "twice")),
    Diagnosis(_sgd_variant(buffer_update=lambda b, g, mu, tau: mu * b + g),
              "dampening is ignored: the new gradient enters the buffer as (1 - dampening) * "
              "g_t, b_t = momentum * b_(t-1) + (1 - dampening) g_t (from the second step on)"),
    Diagnosis(_sgd_variant(buffer_init=lambda g, tau: (1 - tau) * g),
              "torch starts the buffer at the first gradient itself, b_1 = g_1, so dampening "
              "acts only from the second step on; starting from zero gives (1 - dampening) g_1"),
    Diagnosis(_velocity_step,
              "your buffer holds steps (lr folded in, the textbook velocity v = mu v + lr g); "
              "torch's buffer holds gradients, b_t = mu b_(t-1) + (1 - dampening) g_t, and the "
              "update is param - lr * b_t"),
    Diagnosis(_sgd_variant(buffer_update=lambda b, g, mu, tau: mu * b + tau * g),
              "the new gradient enters the buffer with weight (1 - dampening), not dampening"),
    Diagnosis(_sgd_variant(buffer_update=lambda b, g, mu, tau: mu * b + (1 - mu) * g),
              "that is an exponential moving average, (1 - momentum) g; torch scales the new "
              "gradient by (1 - dampening)"),
    Diagnosis(_sgd_variant(buffer_update=lambda b, g, mu, tau: g.clone()),
              "the buffer is never carried over: b_t = momentum * b_(t-1) + (1 - dampening) g_t "
              "uses the buffer you are given"),
    Diagnosis(_sgd_variant(sign=1.0),
              "you stepped uphill: the update is param - lr * b_t"),
]


@task(forbid=_TENSOR_OPERATIONS_ONLY)
def check_momentum_step(momentum_step) -> Verdict:
    """Task 4: `momentum_step(param, grad, momentum_buffer, lr, momentum, dampening=0.0)` in
    torch's form; returns (param, momentum_buffer), the buffer None before the first step."""
    return check_steps("momentum_step", momentum_step, _sgd_reference, momentum_cases(),
                       _MOMENTUM_MISTAKES, state_name="momentum_buffer")


def sgd_cases() -> list[StepCase]:
    """Task 5's runs: Nesterov, weight decay with dampening, and both, in float32."""
    g = seeded(45)
    return [
        StepCase(torch.randn(4, generator=g, dtype=torch.float64), random_gradients(g, 4, (4,)),
                 None, dict(lr=0.1, momentum=0.9, nesterov=True)),
        StepCase(torch.randn(3, generator=g, dtype=torch.float64), random_gradients(g, 4, (3,)),
                 None, dict(lr=0.05, momentum=0.8, dampening=0.2, weight_decay=0.1)),
        StepCase(torch.randn(2, 3, generator=g),
                 random_gradients(g, 3, (2, 3), torch.float32), None,
                 dict(lr=0.05, momentum=0.7, weight_decay=0.3, nesterov=True)),
    ]


def _nesterov_without_decay(param, grad, momentum_buffer, lr, momentum, dampening=0.0,
                            weight_decay=0.0, nesterov=False):
    """torch's step, except that Nesterov's look-ahead adds the bare gradient."""
    new_param, buffer = _sgd_reference(param, grad, momentum_buffer, lr, momentum, dampening,
                                       weight_decay, nesterov)
    if nesterov:  # torch: param - lr (g + mu b) with g = grad + wd param; here grad alone
        new_param = new_param + lr * weight_decay * param
    return new_param, buffer


@task(forbid=_TENSOR_OPERATIONS_ONLY)
def check_sgd_step(sgd_step) -> Verdict:
    """Task 5: `sgd_step(param, grad, momentum_buffer, lr, momentum, dampening=0.0,
    weight_decay=0.0, nesterov=False)`, torch.optim.SGD's step with momentum > 0."""
    return check_steps("sgd_step", sgd_step, _sgd_reference, sgd_cases(), [
        Diagnosis(_sgd_variant(direction=lambda g, b, mu, nesterov: b),
                  "with nesterov=True the step is along the look-ahead g_t + momentum * b_t, "
                  "not along b_t"),
        Diagnosis(_sgd_variant(direction=lambda g, b, mu, nesterov: g + b if nesterov else b),
                  "Nesterov's direction is g_t + momentum * b_t: the factor momentum is missing"),
        Diagnosis(_sgd_variant(decay="after"),
                  "weight decay belongs in the gradient, g_t = grad + weight_decay * param, "
                  "BEFORE it enters the buffer; added to the step (or as a separate shrink of "
                  "param, AdamW-style, which is the same here) it bypasses the momentum"),
        Diagnosis(_sgd_variant(decay="none"),
                  "weight_decay is ignored: add weight_decay * param to the gradient"),
        Diagnosis(_nesterov_without_decay,
                  "Nesterov's look-ahead uses the same decayed gradient as the buffer: "
                  "g_t = grad + weight_decay * param, direction g_t + momentum * b_t (you used "
                  "the bare grad there)"),
        *_MOMENTUM_MISTAKES,
    ], state_name="momentum_buffer")


# --------------------------------------------------------------------------------------------
# Task 6 (conceptual): the learning-rate limit with momentum
# --------------------------------------------------------------------------------------------


@task(forbid=_TENSOR_OPERATIONS_ONLY)
def check_momentum_limits(momentum_limits) -> Verdict:
    """Task 6 (conceptual): the stable learning-rate limits (heavy ball, Nesterov) with
    momentum 0.9 on f = 1/2 (x^2 + 10 y^2)."""
    mu, top = 0.9, 10.0
    diagnoses = [
        ((2 / top, 2 / top), "momentum moves the limit: heavy ball's error obeys "
                             "e_t = (1 + mu - lr lambda) e_(t-1) - mu e_(t-2)"),
        ((2 / ((1 - mu) * top), 2 / ((1 - mu) * top)),
         "lr/(1 - mu) is the effective step size, not the limit: find when a root of "
         "z^2 - (1 + mu - lr lambda) z + mu leaves the unit circle"),
    ]
    return check_answer("momentum_limits", momentum_limits, _MOMENTUM_LIMITS, [
        *diagnoses,
        (Disguised(swapped), "the other way round: Nesterov's look-ahead NARROWS the limit, "
                             "heavy ball widens it"),
        (Disguised(_both_heavy_ball, _HEAVY_BALL_LIMIT),
         "Nesterov's limit is narrower: its error obeys e_t = (1 + mu)(1 - lr lambda) e_(t-1) "
         "- mu (1 - lr lambda) e_(t-2); find where a root leaves the unit circle"),
        (Disguised(lambda got: tuple(x / top for x in got)),
         "divide by lambda_max = 10, the largest eigenvalue of the Hessian diag(1, 10)"),
    ])


_MOMENTUM_LIMITS = Sealed("ca0f7f936e76c424a7492cf059ab370fe9d07cf19eb35a055e2c5a46c62b54d9", 2)
_HEAVY_BALL_LIMIT = Sealed("c633866244de219628f3a0710fbda29c338b08db2fb5e3bb6bef1ffaa65ee04d")


def _both_heavy_ball(pair):
    """The one limit of a pair of two equal ones (heavy ball's, given for Nesterov's too)."""
    heavy_ball, nesterov = pair
    if not math.isclose(heavy_ball, nesterov, rel_tol=1e-9):
        raise ValueError("two different limits")
    return heavy_ball
