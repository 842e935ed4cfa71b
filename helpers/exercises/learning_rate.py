"""Checkers for the exercises of chapter 06, the learning rate.

Tasks 1 to 4 ask for a schedule written from its closed form: they forbid torch's schedulers
(`torch.optim.lr_scheduler`) and the course's own (`helpers.schedules`). Every schedule is checked
on fixed cases (each one a known pitfall: t = 0, a multiple of step_size, t = T_max) and on a
random one drawn with `seeded`, which a hidden test replaces by another.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch.optim import lr_scheduler

from helpers import schedules
from helpers.exercises import (
    Diagnosis,
    Sealed,
    Verdict,
    check_answer,
    check_function,
    seeded,
)
from helpers.exercises.grading import task

WITHOUT_SCHEDULERS = ("torch.optim.lr_scheduler", "helpers.schedules")
"""What tasks 1 to 4 forbid: "write each schedule from its closed form; don't build a torch
scheduler" (nor use the course's)."""


def _torch_lr_at(make_scheduler: Callable, base_lr: float, step: int) -> float:
    """The learning rate torch's scheduler sets after `step` calls of `scheduler.step()`."""
    return schedules.lr_sequence(make_scheduler, base_lr, step + 1)[step]


def _as_list(learner: Callable) -> Callable:
    """The learner's function, with a tensor or array result turned into a list of floats."""
    if not callable(learner):
        return learner

    def listed(*args):
        result = learner(*args)
        return result.tolist() if hasattr(result, "tolist") else result

    return listed


def _explained_zero_division(smooth_losses: Callable) -> Callable:
    """The learner's function, with a ZeroDivisionError explained by the likeliest cause."""
    if not callable(smooth_losses):
        return smooth_losses

    def explained(losses, smoothing):
        try:
            return smooth_losses(losses, smoothing)
        except ZeroDivisionError as error:
            raise ZeroDivisionError(f"{error}: if that is the bias correction, the divisor of "
                                    "loss i (counting from 0) is 1 - beta ** (i + 1), never "
                                    "0") from error
    return explained


def _cosine(t, base_lr, T_max, eta_min):  # noqa: N803
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * t / T_max)) / 2


def _whole(generator: torch.Generator, low: int, high: int) -> int:
    """A random whole number from low to high, both included."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def _rate(generator: torch.Generator, low: float, high: float, digits: int = 3) -> float:
    """A random rate from low to high, uniform on a log axis, rounded to `digits` significant
    digits (so that it reads well in a verdict)."""
    exponent = math.log10(low) + (math.log10(high) - math.log10(low)) * float(
        torch.rand((), generator=generator, dtype=torch.float64))
    return float(f"{10**exponent:.{digits}g}")


def _fraction(generator: torch.Generator, low: float, high: float) -> float:
    """A random number from low to high, rounded to 2 decimals."""
    return round(low + (high - low) * float(torch.rand((), generator=generator,
                                                       dtype=torch.float64)), 2)


def _random_step_lr_case(seed: int) -> tuple[int, float, int, float]:
    """A random (t, base_lr, step_size, gamma): t up to 40, several decays."""
    g = seeded(seed)
    step_size = _whole(g, 2, 8)
    return _whole(g, 0, 40), _rate(g, 1e-3, 1.0), step_size, _fraction(g, 0.1, 0.95)


@task(forbid=WITHOUT_SCHEDULERS)
def check_step_lr(step_lr) -> Verdict:
    """Task 1: `step_lr(t, base_lr, step_size, gamma)`, StepLR's rate after t steps."""
    cases = [(7, 0.1, 3, 0.5), (3, 0.1, 3, 0.5), (2, 0.1, 3, 0.5), (0, 0.1, 3, 0.5),
             (25, 1.0, 10, 0.1), (9, 0.05, 1, 0.9), _random_step_lr_case(61),
             _random_step_lr_case(62)]

    def reference(t, base_lr, step_size, gamma):
        return _torch_lr_at(lambda o: lr_scheduler.StepLR(o, step_size, gamma), base_lr, t)

    return check_function("step_lr", step_lr, reference, cases, [
        Diagnosis(lambda t, lr, s, g: lr * g ** (t / s),
                  "that is a smooth exponential decay: StepLR decays in stairs, so the exponent "
                  "is the integer division t // step_size"),
        Diagnosis(lambda t, lr, s, g: lr * g**t,
                  "that is ExponentialLR, which decays at every step: StepLR multiplies by "
                  "gamma only once every step_size steps"),
        # listed before the next one: where (t + 1) // s differs from t // s, it is t // s + 1
        Diagnosis(lambda t, lr, s, g: lr * g ** ((t + 1) // s),
                  "off by one: the first decay happens at t = step_size, not one step earlier"),
        Diagnosis(lambda t, lr, s, g: lr * g ** (t // s + 1),
                  "one decay too many: at t = 0 the rate is base_lr itself, gamma ** (t // "
                  "step_size) starts at gamma ** 0 = 1"),
        Diagnosis(lambda t, lr, s, g: lr * g ** math.ceil(t / s),
                  "you round t / step_size up: the rate stays base_lr until t = step_size, so "
                  "the exponent is the floor division t // step_size"),
        Diagnosis(lambda t, lr, s, g: lr * g * (t // s),
                  "decays compound: raise gamma to the power t // step_size instead of "
                  "multiplying by it"),
    ])


def _random_cosine_case(seed: int) -> tuple[int, float, int, float]:
    """A random (t, base_lr, T_max, eta_min), with 0 < t < T_max and eta_min below base_lr."""
    g = seeded(seed)
    T_max = _whole(g, 5, 120)  # noqa: N806 - torch's name
    base_lr = _rate(g, 1e-3, 1.0)
    return _whole(g, 1, T_max - 1), base_lr, T_max, float(f"{base_lr * _fraction(g, 0, 0.3):.3g}")


@task(forbid=WITHOUT_SCHEDULERS)
def check_cosine_lr(cosine_lr) -> Verdict:
    """Task 2: `cosine_lr(t, base_lr, T_max, eta_min)`, CosineAnnealingLR's rate at step t
    (0 <= t <= T_max)."""
    cases = [(25, 0.1, 100, 0.0), (60, 0.1, 100, 0.0), (100, 0.1, 100, 0.0), (0, 0.1, 100, 0.0),
             (30, 1.0, 80, 1e-3), (7, 0.5, 10, 0.05), (10, 0.5, 10, 0.05),
             _random_cosine_case(63), _random_cosine_case(64)]

    def reference(t, base_lr, T_max, eta_min):  # noqa: N803
        return _torch_lr_at(lambda o: lr_scheduler.CosineAnnealingLR(o, T_max, eta_min), base_lr, t)

    return check_function("cosine_lr", cosine_lr, reference, cases, [
        Diagnosis(lambda t, lr, T, m: m + (lr - m) * math.cos(math.pi * t / T),
                  "the factor is (1 + cos(pi t / T_max)) / 2, which falls from 1 to 0; cos alone "
                  "falls from 1 to -1"),
        Diagnosis(lambda t, lr, T, m: m + (lr - m) * (1 - math.cos(math.pi * t / T)) / 2,
                  "your rate rises from eta_min to base_lr: the factor is (1 + cos(pi t / "
                  "T_max)) / 2, which starts at 1"),
        Diagnosis(lambda t, lr, T, m: m + (lr - m) * (1 + math.cos(t / T)) / 2,
                  "the angle is pi t / T_max radians: without pi the cosine covers less than a "
                  "third of its half turn"),
        Diagnosis(lambda t, lr, T, m: _cosine(t, lr, T - 1, m),
                  "off by one in the period: divide by T_max, not T_max - 1; the rate reaches "
                  "eta_min exactly at t = T_max"),
        Diagnosis(lambda t, lr, T, m: _cosine(t, lr, T + 1, m),
                  "off by one in the period: divide by T_max, not T_max + 1; the rate reaches "
                  "eta_min exactly at t = T_max"),
        Diagnosis(lambda t, lr, T, m: lr * (1 + math.cos(math.pi * t / T)) / 2,
                  "eta_min is missing: the cosine runs from base_lr down to eta_min, "
                  "eta_min + (base_lr - eta_min) (1 + cos) / 2"),
        Diagnosis(lambda t, lr, T, m: m + lr * (1 + math.cos(math.pi * t / T)) / 2,
                  "the amplitude is base_lr - eta_min: yours starts at base_lr + eta_min"),
        Diagnosis(lambda t, lr, T, m: m + (lr - m) * (1 + math.cos(math.pi * t / T)),
                  "halve the factor: (1 + cos(pi t / T_max)) / 2 runs from 1 to 0, yours from 2 "
                  "to 0, so your rate starts at 2 base_lr - eta_min"),
        Diagnosis(lambda t, lr, T, m: _cosine(2 * t, lr, T, m),
                  "the angle is pi t / T_max, not 2 pi t / T_max: the rate makes HALF a cosine "
                  "turn, from base_lr at t = 0 down to eta_min at t = T_max; with 2 pi it is "
                  "back at base_lr there"),
        Diagnosis(lambda t, lr, T, m: _cosine(t + 1, lr, T, m),
                  "off by one in t: use cos(pi t / T_max), not t + 1; at t = 0, before any "
                  "scheduler.step(), the rate is base_lr itself"),
        Diagnosis(lambda t, lr, T, m: _cosine(t - 1, lr, T, m),
                  "off by one in t: use cos(pi t / T_max), not t - 1; the rate reaches eta_min "
                  "exactly at t = T_max"),
    ])


def _random_range_test_case(seed: int) -> tuple[float, float, int]:
    """A random (start_lr, end_lr, num_iter): from a tiny rate to a large one."""
    g = seeded(seed)
    return _rate(g, 1e-7, 1e-3), _rate(g, 0.1, 10.0), _whole(g, 3, 12)


@task(forbid=WITHOUT_SCHEDULERS)
def check_range_test_lrs(range_test_lrs) -> Verdict:
    """Task 3: `range_test_lrs(start_lr, end_lr, num_iter)`, the geometric sequence of rates."""
    cases = [(1e-4, 10.0, 6), (1e-3, 1.0, 4), (1e-7, 10.0, 9), (0.5, 2.0, 2),
             _random_range_test_case(65)]

    def reference(start, end, n):
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=start)
        factor = (end / start) ** (1 / (n - 1))  # torch: multiply by the same factor each step
        scheduler = lr_scheduler.ExponentialLR(optimizer, factor)
        lrs = []
        for _ in range(n):
            lrs.append(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
        return lrs

    def geometric(start, end, exponents):
        return [start * (end / start) ** e for e in exponents]

    return check_function("range_test_lrs", _as_list(range_test_lrs), reference, cases, [
        Diagnosis(lambda s, e, n: geometric(s, e, [i / n for i in range(n)]),
                  "your last rate stops one factor short of end_lr: the exponent is "
                  "i / (num_iter - 1), so that it runs from 0 to 1"),
        Diagnosis(lambda s, e, n: geometric(s, e, [(i + 1) / n for i in range(n)]),
                  "the first rate must be start_lr itself (exponent 0): use i / (num_iter - 1), "
                  "which runs from 0 to 1"),
        Diagnosis(lambda s, e, n: geometric(s, e, [i / n for i in range(n + 1)]),
                  "num_iter rates, not num_iter + 1: i runs from 0 to num_iter - 1"),
        Diagnosis(lambda s, e, n: torch.linspace(s, e, n, dtype=torch.float64).tolist(),
                  "that is linear spacing: the range test multiplies the rate by the same "
                  "factor at every step, so the rates are evenly spaced on a LOG axis"),
        Diagnosis(lambda s, e, n: torch.logspace(s, e, n, dtype=torch.float64).tolist(),
                  "torch.logspace(a, b, n) takes EXPONENTS, 10**a to 10**b: pass "
                  "math.log10(start_lr) and math.log10(end_lr)"),
        Diagnosis(lambda s, e, n: torch.logspace(math.log(s), math.log(e), n,
                                                 dtype=torch.float64).tolist(),
                  "torch.logspace raises 10 to the exponents: pass math.log10 of the rates (or "
                  "keep math.log and give base=math.e)"),
    ], rtol=1e-5)


def _random_warmup_cases(seed: int) -> list[tuple[int, float, int, int, float]]:
    """Two cases of one random schedule: a step of the warm-up and a step of the cosine."""
    g = seeded(seed)
    warmup = _whole(g, 2, 10)
    total = warmup + _whole(g, 5, 60)
    base_lr, start_factor = _rate(g, 1e-3, 1.0), _fraction(g, 0.05, 0.9)
    return [(_whole(g, 1, warmup - 1), base_lr, warmup, total, start_factor),
            (_whole(g, warmup + 1, total - 1), base_lr, warmup, total, start_factor)]


@task(forbid=WITHOUT_SCHEDULERS)
def check_warmup_cosine_lr(warmup_cosine_lr) -> Verdict:
    """Task 4: `warmup_cosine_lr(t, base_lr, warmup_steps, total_steps, start_factor)`: linear
    warm-up, then cosine annealing to 0 at `total_steps` (torch's SequentialLR of the two)."""
    cases = [(4, 0.5, 10, 60, 0.1), (0, 0.5, 10, 60, 0.1), (10, 0.5, 10, 60, 0.1),
             (25, 0.5, 10, 60, 0.1), (60, 0.5, 10, 60, 0.1), (2, 1.0, 5, 25, 0.25),
             (18, 1.0, 5, 25, 0.25), *_random_warmup_cases(66)]

    def reference(t, base_lr, warmup, total, start_factor):
        def make(o):
            return lr_scheduler.SequentialLR(o, [
                lr_scheduler.LinearLR(o, start_factor, total_iters=warmup),
                lr_scheduler.CosineAnnealingLR(o, total - warmup)], milestones=[warmup])

        return _torch_lr_at(make, base_lr, t)

    def schedule(warm_up: Callable, anneal: Callable) -> Callable:
        def lr(t, base_lr, w, total, s):
            return warm_up(t, base_lr, w, s) if t < w else anneal(t, base_lr, w, total)
        return lr

    def linear(t, lr, w, s):
        return lr * (s + (1 - s) * t / w)

    def restarted(t, lr, w, total):
        return _cosine(t - w, lr, total - w, 0.0)

    return check_function("warmup_cosine_lr", warmup_cosine_lr, reference, cases, [
        Diagnosis(schedule(lambda t, lr, w, s: lr * t / w, restarted),
                  "your warm-up starts at 0: it starts at start_factor * base_lr, with the "
                  "factor start_factor + (1 - start_factor) t / warmup_steps"),
        Diagnosis(schedule(lambda t, lr, w, s: lr * (s + t / w), restarted),
                  "your warm-up overshoots: the factor rises from start_factor to 1, so its slope "
                  "is (1 - start_factor) / warmup_steps: start_factor + (1 - start_factor) t / "
                  "warmup_steps"),
        Diagnosis(schedule(lambda t, lr, w, s: lr * (s + (1 - s) * t / (w - 1)), restarted),
                  "off by one in the warm-up: divide by warmup_steps, not warmup_steps - 1; the "
                  "factor reaches 1 at t = warmup_steps, where the cosine takes over"),
        Diagnosis(schedule(linear, lambda t, lr, w, total: _cosine(t, lr, total - w, 0.0)),
                  "the cosine restarts at the milestone: feed it t - warmup_steps, not t"),
        Diagnosis(schedule(linear, lambda t, lr, w, total: _cosine(t, lr, total, 0.0)),
                  "the cosine restarts at the milestone and lasts the remaining total_steps - "
                  "warmup_steps steps: use t - warmup_steps over T_max = total_steps - "
                  "warmup_steps"),
        Diagnosis(schedule(linear, lambda t, lr, w, total: _cosine(t - w, lr, total, 0.0)),
                  "T_max of the cosine is total_steps - warmup_steps, the steps left after the "
                  "warm-up: with total_steps the rate never reaches 0"),
        Diagnosis(schedule(linear, lambda t, lr, w, total: _cosine(t - w, lr, total - w - 1,
                                                                    0.0)),
                  "off by one in T_max: the cosine lasts total_steps - warmup_steps steps and "
                  "reaches 0 exactly at t = total_steps"),
    ])


@task()
def check_smooth_losses(smooth_losses) -> Verdict:
    """Task 5: `smooth_losses(losses, smoothing)`, the bias-corrected moving average of the
    range test, with beta = 1 - smoothing."""
    g = seeded(6)
    cases = [((2.3, 2.0, 2.1, 1.6, 1.7, 1.2), 0.05),
             (tuple(round(v, 3) for v in (2 + torch.rand(7, generator=g)).tolist()), 0.3),
             ((3.0,), 0.05)]

    def uncorrected(losses, smoothing):
        return [m * (1 - (1 - smoothing) ** (i + 1))
                for i, m in enumerate(schedules.smooth_losses(losses, smoothing))]

    def corrected_in_place(losses, smoothing):
        beta, average, smoothed = 1 - smoothing, 0.0, []
        for i, loss in enumerate(losses):
            average = (beta * average + (1 - beta) * loss) / (1 - beta ** (i + 1))
            smoothed.append(average)
        return smoothed

    def started_at_first_loss(losses, smoothing):
        average, smoothed = losses[0], []
        for loss in losses:
            average = (1 - smoothing) * average + smoothing * loss
            smoothed.append(average)
        return smoothed

    def corrected_one_early(losses, smoothing):
        beta = 1 - smoothing
        return [m * (1 - beta ** (i + 1)) / (1 - beta**i) if i else math.inf
                for i, m in enumerate(schedules.smooth_losses(losses, smoothing))]

    def running_mean(losses, smoothing):
        return [sum(losses[:i + 1]) / (i + 1) for i in range(len(losses))]

    return check_function("smooth_losses", _as_list(_explained_zero_division(smooth_losses)),
                          schedules.smooth_losses, cases, [
        Diagnosis(uncorrected,
                  "no bias correction: the average starts at 0, so your first values are far "
                  "too small; report m_i / (1 - beta ** (i + 1))"),
        Diagnosis(lambda losses, smoothing: schedules.smooth_losses(losses, 1 - smoothing),
                  "beta = 1 - smoothing is the weight of the OLD average: "
                  "m_i = beta m_(i-1) + (1 - beta) loss_i"),
        Diagnosis(corrected_in_place,
                  "correct only the value you report: keep the uncorrected average m_i for the "
                  "next step's recursion"),
        Diagnosis(started_at_first_loss,
                  "your average starts at the first loss (pandas' ewm(adjust=False)): the "
                  "range test's starts at m_(-1) = 0 and divides by 1 - beta ** (i + 1) instead, "
                  "so that early losses are not overweighted"),
        Diagnosis(corrected_one_early,
                  "off by one in the correction: with i counting from 0, divide by "
                  "1 - beta ** (i + 1); 1 - beta ** i is 0 at the first loss"),
        Diagnosis(running_mean,
                  "that is the running mean of all losses so far: the exponential average "
                  "forgets old losses by the factor beta at every step"),
    ])


# Task 6's answer and its typical wrong answers (each the answer in another form), sealed with
# `seal("scheduler_first_rates", rates)`: the rates the five updates use
_SCHEDULER_FIRST = Sealed("7db8b716cac849b9d1902c7590a3cac9e232a6833e7e14617fa747e41ebb52fe", 5)
_ORDER_MISTAKES = [
    (Sealed("be7a8f7e251025eb1912457caaa0e499130c08e221193907a9c24f05668f860f", 5),
     "that is the sequence of the right order: here scheduler.step() runs before the first "
     "update, so the schedule is one step ahead and its first value, start_factor * lr, is "
     "never used"),
    (Sealed("060b7ff00f815822436e8845a2e0ff34177e2b2e468969fd8348fdeabafb288d", 5),
     "the other way round: calling the scheduler first puts the schedule one step AHEAD, not "
     "behind"),
    (Sealed("9d0e29939b044ea703793a207236be7f885f6b6e37176239dbc1020d003d3a1f", 5),
     "those are the factors: multiply them by lr = 0.4"),
    (Sealed("8d55c6346e8c077ddb9f00ddc007ff9b05605783ba93bb2b882c55bbeb46b87a", 5),
     "those are the factors of the right order: multiply by lr = 0.4, and remember that here "
     "the scheduler steps before the first update"),
]


@task()
def check_scheduler_first_rates(scheduler_first_rates) -> Verdict:
    """Task 6 (conceptual): the rates of the first five updates when `scheduler.step()` is
    called before `optimizer.step()`, for LinearLR(start_factor=0.5, total_iters=4), lr 0.4."""
    return check_answer("scheduler_first_rates", scheduler_first_rates, _SCHEDULER_FIRST,
                        _ORDER_MISTAKES)
