r"""Learning-rate schedules written from their closed forms, and the learning-rate range test.

Every scheduler mirrors its `torch.optim.lr_scheduler` namesake: the same arguments and defaults,
`step()`, `get_last_lr()`, `last_epoch`, `base_lrs`, `state_dict()` / `load_state_dict()`, and it
drives any optimizer with `param_groups` (`torch.optim` or `helpers.optim`). With $\eta_0$ the
base learning rate of a parameter group and $t$ the number of `step()` calls so far:

    StepLR             eta_0 * gamma ** (t // step_size)            (an int step_size)
    MultiStepLR        eta_0 * gamma ** (number of milestones <= t)
    ExponentialLR      eta_0 * gamma ** t
    LinearLR           eta_0 * (s + (e - s) * min(t, T) / T)              (warm-up)
    CosineAnnealingLR  eta_min + (eta_0 - eta_min) * (1 + cos(pi t / T_max)) / 2
    OneCycleLR         warm up to max_lr, anneal to max_lr / (div_factor * final_div_factor)
    SequentialLR       the i-th schedule, restarted at the (i-1)-th milestone

Note: torch computes most of these recursively (each step multiplies the current learning rate);
here every step evaluates the closed form, so the value at step t does not depend on the path
there. The two agree to the last few bits (see chapter 06's verification table). A consequence:
a learning rate changed by hand between steps is overwritten at the next `step()`, where torch
would keep scaling it. Unlike torch, there is no warning when `scheduler.step()` is called before
`optimizer.step()`. `ChainedScheduler` (products of schedules) and `ReduceLROnPlateau` are not
provided.
"""

from __future__ import annotations

import copy
import math
import numbers
from bisect import bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from helpers.verify import Check, register


class LRScheduler:
    """Base class: sets every group's learning rate to `lr_at(step)` at each `step()`."""

    def __init__(self, optimizer, last_epoch: int = -1):
        if not hasattr(optimizer, "param_groups"):
            raise TypeError(f"expected an optimizer with param_groups (torch.optim or "
                            f"helpers.optim), but got {type(optimizer).__name__}")
        self.optimizer = optimizer
        for index, group in enumerate(optimizer.param_groups):
            if last_epoch == -1:
                group.setdefault("initial_lr", group["lr"])
            elif "initial_lr" not in group:
                raise KeyError(f"param 'initial_lr' is not specified in param_groups[{index}] "
                               "when resuming a scheduler with last_epoch >= 0: load the "
                               "optimizer's state first")
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self.step()

    def lr_at(self, step: int) -> list[float]:
        """The learning rate of every parameter group after `step` calls of `step()`."""
        return [self._lr(base_lr, step) for base_lr in self.base_lrs]

    def _lr(self, base_lr: float, step: int) -> float:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one step; call it after `optimizer.step()`."""
        self.last_epoch += 1
        self._set(self.lr_at(self.last_epoch))

    def _set(self, lrs: Sequence[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the last `step()`."""
        return self._last_lr

    def state_dict(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "optimizer"}

    def load_state_dict(self, state_dict: dict) -> None:
        self.__dict__.update(state_dict)


def _positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"Expected positive integer {name}, but got {value!r}")


def _positive_number(name: str, value) -> None:
    """A finite real > 0: an int, or a float, which torch takes too (its docs say int)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not (math.isfinite(value) and value > 0)):
        raise ValueError(f"Expected positive {name} (an int, or a float such as 2.5), but got "
                         f"{value!r}")


def _reached(milestone, step: int) -> bool:
    """Whether some step 0..`step` equals `milestone` (2.5 and negative milestones never do)."""
    return 0 <= milestone <= step and float(milestone).is_integer()


class StepLR(LRScheduler):
    r"""Decay by `gamma` every `step_size` steps: $\eta_t = \eta_0\,\gamma^{\lfloor t/s\rfloor}$.

    Note: as torch, `step_size` may be a float, and the decay happens at each step $t \ge 1$ with
    `t % step_size == 0` — at the multiples of $p$, the numerator of `step_size` as an exact
    binary fraction: $\eta_t = \eta_0\,\gamma^{\lfloor t/p\rfloor}$. So 2.5 = 5/2 decays every 5
    steps, 0.5 = 1/2 every step, and 0.1 (not a binary fraction: its numerator is about 3.6e15)
    never. Zero and negative step sizes are refused (torch divides by zero, or decays every
    $|s|$ steps).
    """

    def __init__(self, optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1):
        _positive_number("step_size", step_size)
        self.step_size, self.gamma = step_size, gamma
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr, step):
        # p = numerator of step_size: t % step_size == 0 exactly when p divides t
        period = Fraction(self.step_size).numerator
        return base_lr * self.gamma ** (step // period)


class MultiStepLR(LRScheduler):
    r"""Decay by `gamma` at each milestone: $\eta_t = \eta_0\,\gamma^{\#\{m_i \le t\}}$.

    A milestone listed twice decays twice, as in torch; and as in torch, a milestone that no step
    equals (a negative one, or 2.5) never decays.
    """

    def __init__(self, optimizer, milestones: Iterable[int], gamma: float = 0.1,
                 last_epoch: int = -1):
        self.milestones = sorted(milestones)
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr, step):
        # the number of milestones m_i (with repeats) that a step 0..t has equalled
        return base_lr * self.gamma ** sum(_reached(m, step) for m in self.milestones)


class ExponentialLR(LRScheduler):
    r"""Decay by `gamma` every step: $\eta_t = \eta_0\,\gamma^{t}$."""

    def __init__(self, optimizer, gamma: float, last_epoch: int = -1):
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr, step):
        return base_lr * self.gamma**step


class LinearLR(LRScheduler):
    r"""Linear warm-up (or decay) of the factor from `start_factor` to `end_factor` over
    `total_iters` steps, then constant:

    .. math:: \eta_t = \eta_0\Bigl(s + (e - s)\,\frac{\min(t, \lfloor T\rfloor)}{T}\Bigr)

    Note: as torch, `total_iters` may be a float; the factor then stops changing after step
    $\lfloor T\rfloor$, short of `end_factor` (torch's step changes it only while $t \le T$).
    `total_iters=0` is refused (torch keeps `start_factor` for ever).
    """

    def __init__(self, optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5, last_epoch: int = -1):
        if not 0 < start_factor <= 1:
            raise ValueError(f"Starting multiplicative factor expected to be greater than 0 "
                             f"and less or equal to 1, but got {start_factor}")
        if not 0 <= end_factor <= 1:
            raise ValueError(f"Ending multiplicative factor expected to be between 0 and 1, "
                             f"but got {end_factor}")
        _positive_number("total_iters", total_iters)
        self.start_factor, self.end_factor, self.total_iters = start_factor, end_factor, total_iters
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr, step):
        progress = min(math.floor(self.total_iters), step) / self.total_iters
        return base_lr * (self.start_factor + (self.end_factor - self.start_factor) * progress)


class CosineAnnealingLR(LRScheduler):
    r"""Half a cosine from the base rate down to `eta_min` over `T_max` steps:

    .. math:: \eta_t = \eta_{\min} + (\eta_0 - \eta_{\min})\,\frac{1 + \cos(\pi t / T_{\max})}{2}

    Past `T_max` the cosine continues (back up to $\eta_0$ at $2T_{\max}$), as in torch. `T_max`
    may be a float (100.0, or 2.5), as in torch; zero and negative values are refused (torch
    divides by zero, or runs the cosine with a negative period).
    """

    def __init__(self, optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1):  # noqa: N803
        _positive_number("T_max", T_max)
        self.T_max, self.eta_min = T_max, eta_min
        super().__init__(optimizer, last_epoch)

    def _lr(self, base_lr, step):
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * step
                                                                        / self.T_max)) / 2


def _anneal(start: float, end: float, fraction: float, strategy: str) -> float:
    """From `start` (fraction 0) to `end` (fraction 1), along a half cosine or a line."""
    if strategy == "cos":
        return end + (start - end) * (1 + math.cos(math.pi * fraction)) / 2
    return start + (end - start) * fraction


class OneCycleLR(LRScheduler):
    r"""The 1cycle policy: warm up from `max_lr / div_factor` to `max_lr` over the first
    `pct_start` of the steps, then anneal to `max_lr / (div_factor * final_div_factor)`
    (`three_phase=True`: back to the initial rate first, then down). With `cycle_momentum` the
    momentum (or Adam's $\beta_1$) moves the opposite way, between `max_momentum` and
    `base_momentum`. Phase $k$ ends at step $p_k$ (e.g. $p_1 = $ `pct_start` $\cdot$ total $- 1$)
    and within it

    .. math:: \eta_t = \operatorname{anneal}\Bigl(\eta_{\text{start}}, \eta_{\text{end}},
        \frac{t - p_{k-1}}{p_k - p_{k-1}}\Bigr)
    """

    def __init__(self, optimizer, max_lr, total_steps: int | None = None,
                 epochs: int | None = None, steps_per_epoch: int | None = None,
                 pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum=0.85, max_momentum=0.95,
                 div_factor: float = 25.0, final_div_factor: float = 1e4,
                 three_phase: bool = False, last_epoch: int = -1):
        if total_steps is not None:
            _positive_int("total_steps", total_steps)
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            _positive_int("epochs", epochs)
            _positive_int("steps_per_epoch", steps_per_epoch)
            self.total_steps = epochs * steps_per_epoch
        else:
            raise ValueError("You must define either total_steps OR (epochs AND steps_per_epoch)")
        if not isinstance(pct_start, float) or not 0 <= pct_start <= 1:
            raise ValueError(f"Expected float between 0 and 1 pct_start, but got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be one of 'cos' or 'linear', instead got "
                             f"{anneal_strategy}")
        self.anneal_strategy, self.cycle_momentum = anneal_strategy, cycle_momentum
        warm_end = float(pct_start * self.total_steps) - 1
        if three_phase:  # (end step, lr from, lr to, momentum from, momentum to)
            self.phases = [(warm_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                           (float(2 * pct_start * self.total_steps) - 2, "max_lr", "initial_lr",
                            "base_momentum", "max_momentum"),
                           (self.total_steps - 1, "initial_lr", "min_lr", "max_momentum",
                            "max_momentum")]
        else:
            self.phases = [(warm_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                           (self.total_steps - 1, "max_lr", "min_lr", "base_momentum",
                            "max_momentum")]
        groups = optimizer.param_groups
        for group, peak in zip(groups, _per_group("max_lr", max_lr, groups)):
            if last_epoch == -1:
                group["initial_lr"] = peak / div_factor
                group["max_lr"] = peak
                group["min_lr"] = group["initial_lr"] / final_div_factor
        if cycle_momentum:
            defaults = getattr(optimizer, "defaults", {})
            if "momentum" not in defaults and "betas" not in defaults:
                raise ValueError("optimizer must support momentum or beta1 with "
                                 "`cycle_momentum` option enabled")
            self.use_beta1 = "betas" in defaults
            for group, high, low in zip(groups, _per_group("max_momentum", max_momentum, groups),
                                        _per_group("base_momentum", base_momentum, groups)):
                if last_epoch == -1:
                    self._set_momentum(group, high)
                    group["max_momentum"], group["base_momentum"] = high, low
        super().__init__(optimizer, last_epoch)

    def _set_momentum(self, group: dict, momentum: float) -> None:
        if self.use_beta1:
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum

    def _phase(self, step: int) -> tuple[tuple, float]:
        """The phase holding `step`, and how far into it the step is (0 to 1)."""
        start = 0.0
        for index, phase in enumerate(self.phases):
            if step <= phase[0] or index == len(self.phases) - 1:
                return phase, (step - start) / (phase[0] - start)
            start = phase[0]
        raise AssertionError("unreachable")

    def lr_at(self, step: int) -> list[float]:
        if step > self.total_steps:
            raise ValueError(f"Tried to step {step} times. The specified number of total steps "
                             f"is {self.total_steps}")
        (_, lr_from, lr_to, _, _), fraction = self._phase(step)
        return [_anneal(g[lr_from], g[lr_to], fraction, self.anneal_strategy)
                for g in self.optimizer.param_groups]

    def momentum_at(self, step: int) -> list[float]:
        """The momentum (or beta1) of every parameter group at `step`."""
        (_, _, _, m_from, m_to), fraction = self._phase(step)
        return [_anneal(g[m_from], g[m_to], fraction, self.anneal_strategy)
                for g in self.optimizer.param_groups]

    def step(self) -> None:
        super().step()
        if self.cycle_momentum:
            for group, momentum in zip(self.optimizer.param_groups,
                                       self.momentum_at(self.last_epoch)):
                self._set_momentum(group, momentum)


def _per_group(name: str, value, groups: list) -> list:
    """One value per parameter group, from a single value or a list (as torch's _format_param)."""
    if isinstance(value, list | tuple):
        if len(value) != len(groups):
            raise ValueError(f"expected {len(groups)} values for {name}, but got {len(value)}")
        return list(value)
    return [value] * len(groups)


class SequentialLR(LRScheduler):
    """Run `schedulers[0]` until `milestones[0]`, then `schedulers[1]` restarted from its step 0,
    and so on: the standard linear warm-up followed by cosine annealing."""

    def __init__(self, optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int],
                 last_epoch: int = -1):
        if len(schedulers) < 1:
            raise ValueError("SequentialLR expects at least one scheduler, but got none")
        if any(s.optimizer is not optimizer for s in schedulers):
            raise ValueError("SequentialLR expects all schedulers to belong to the same optimizer")
        if len(milestones) != len(schedulers) - 1:
            raise ValueError(f"SequentialLR expects one milestone fewer than schedulers, but got "
                             f"{len(schedulers)} schedulers and {len(milestones)} milestones")
        self.schedulers, self.milestones = list(schedulers), list(milestones)
        for group in optimizer.param_groups:  # undo what the schedulers' construction set
            group["lr"] = group["initial_lr"]
        super().__init__(optimizer, last_epoch)

    def lr_at(self, step: int) -> list[float]:
        index = bisect_right(self.milestones, step)
        start = self.milestones[index - 1] if index else 0
        return self.schedulers[index].lr_at(step - start)

    def state_dict(self) -> dict:
        state = {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "schedulers")}
        state["schedulers"] = [s.state_dict() for s in self.schedulers]
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state = dict(state_dict)
        for scheduler, saved in zip(self.schedulers, state.pop("schedulers")):
            scheduler.load_state_dict(saved)
        self.__dict__.update(state)


def lr_sequence(make_scheduler: Callable, lr: float, steps: int) -> list[float]:
    """The learning rate at steps 0..steps-1 of the schedule `make_scheduler(optimizer)`, applied
    to a throwaway SGD optimizer with base rate `lr` (momentum 0.9, for OneCycleLR's cycling)."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr, momentum=0.9)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(steps):
        lrs.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    return lrs


# --------------------------------------------------------------------------------------------
# The learning-rate range test
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RangeTestResult:
    """Losses recorded while the learning rate grew geometrically from `lrs[0]` to `lrs[-1]`."""

    lrs: list[float]
    losses: list[float]  # raw loss of each step
    smoothed: list[float]  # bias-corrected exponential moving average of the losses
    steepest_lr: float  # where the smoothed loss falls fastest per decade of learning rate
    divergence_lr: float | None  # the first rate whose smoothed loss exceeded the threshold


def geometric_lrs(start_lr: float, end_lr: float, num_iter: int) -> list[float]:
    r"""$\eta_i = \eta_{\text{start}}\,(\eta_{\text{end}} / \eta_{\text{start}})^{i / (n - 1)}$."""
    if not 0 < start_lr < end_lr:
        raise ValueError(f"expected 0 < start_lr < end_lr, but got {start_lr} and {end_lr}")
    _positive_int("num_iter", num_iter)
    if num_iter == 1:
        return [start_lr]
    return [start_lr * (end_lr / start_lr) ** (i / (num_iter - 1)) for i in range(num_iter)]


def smooth_losses(losses: Sequence[float], smoothing: float = 0.05) -> list[float]:
    r"""Exponential moving average with bias correction, $\beta = 1 - $ `smoothing`:
    $m_i = \beta m_{i-1} + (1 - \beta)\ell_i$, reported as $m_i / (1 - \beta^{i+1})$."""
    beta, average, smoothed = 1 - smoothing, 0.0, []
    for i, loss in enumerate(losses):
        average = beta * average + (1 - beta) * loss
        smoothed.append(average / (1 - beta ** (i + 1)))
    return smoothed


def steepest_descent_lr(lrs: Sequence[float], smoothed: Sequence[float]) -> float:
    """The learning rate where the smoothed loss decreases fastest against log10(lr)."""
    if len(lrs) < 3:
        raise ValueError(f"expected at least 3 recorded steps, but got {len(lrs)}")
    slopes = np.gradient(np.asarray(smoothed), np.log10(np.asarray(lrs)))
    return float(lrs[int(np.argmin(slopes))])


def lr_range_test(model: torch.nn.Module, optimizer, loss_fn: Callable, batches: Iterable,
                  start_lr: float = 1e-7, end_lr: float = 10.0, num_iter: int = 100,
                  smoothing: float = 0.05, diverge_threshold: float = 4.0,
                  skip_start: int = 10) -> RangeTestResult:
    """Train for up to `num_iter` steps with a learning rate growing geometrically from
    `start_lr` to `end_lr`, recording the loss of each batch; stop once the smoothed loss
    exceeds `diverge_threshold` times its best value. The steepest-descent rate ignores the
    first `skip_start` steps, where the average is still dominated by a few batches' noise.
    `batches` yields `(inputs, targets)` and
    is cycled if shorter than `num_iter`. The model's parameters and buffers, the training / eval
    mode of each of its modules and the optimizer's state (learning rates included) are restored
    afterwards, whatever happens.
    """
    if diverge_threshold <= 1:
        raise ValueError(f"expected diverge_threshold > 1, but got {diverge_threshold}")
    lrs = geometric_lrs(start_lr, end_lr, num_iter)
    saved_model = copy.deepcopy(model.state_dict())
    saved_optimizer = copy.deepcopy(optimizer.state_dict())
    saved_modes = [(module, module.training) for module in model.modules()]
    losses, divergence, best = [], None, math.inf
    try:
        stream = _cycle(batches)
        model.train()
        for lr in lrs:
            inputs, targets = next(stream)
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            current = smooth_losses(losses, smoothing)[-1]
            best = min(best, current)
            if not math.isfinite(current) or current > diverge_threshold * best:
                divergence = lr
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        for module, training in saved_modes:
            module.training = training
    smoothed = smooth_losses(losses, smoothing)
    recorded = lrs[:len(losses)]
    until = len(losses) - 1 if divergence is not None else len(losses)  # skip the blow-up
    start = min(skip_start, max(until - 3, 0))
    steepest = steepest_descent_lr(recorded[start:until], smoothed[start:until])
    return RangeTestResult(recorded, losses, smoothed, steepest, divergence)


def _cycle(batches: Iterable):
    cached = []
    for batch in batches:
        cached.append(batch)
        yield batch
    if not cached:
        raise ValueError("expected at least one batch, but got an empty iterable")
    while True:
        yield from cached


# --------------------------------------------------------------------------------------------
# Checks run by `python -m helpers.verify` (chapter 06 shows them as a table)
# --------------------------------------------------------------------------------------------


def _schedule_check(name: str, ours: Callable, theirs: Callable, lr: float = 0.1,
                    steps: int = 200) -> Check:
    """The learning rate at every step of a whole schedule, ours against torch's."""
    return Check(name, lambda: lr_sequence(ours, lr, steps), lambda: lr_sequence(theirs, lr, steps),
                 lambda generator: (), dtypes=(torch.float64,), devices=("cpu",))


def schedule_checks() -> list[Check]:
    """Every scheduler against its `torch.optim.lr_scheduler` namesake, over 200 steps."""
    t = torch.optim.lr_scheduler
    return [
        _schedule_check("StepLR step_size=30 gamma=0.5", lambda o: StepLR(o, 30, 0.5),
                        lambda o: t.StepLR(o, 30, 0.5)),
        _schedule_check("MultiStepLR milestones=[40, 90, 90]", lambda o: MultiStepLR(
            o, [40, 90, 90]), lambda o: t.MultiStepLR(o, [40, 90, 90])),
        _schedule_check("ExponentialLR gamma=0.98", lambda o: ExponentialLR(o, 0.98),
                        lambda o: t.ExponentialLR(o, 0.98)),
        _schedule_check("LinearLR start_factor=0.01 total_iters=50", lambda o: LinearLR(
            o, 0.01, total_iters=50), lambda o: t.LinearLR(o, 0.01, total_iters=50)),
        _schedule_check("CosineAnnealingLR T_max=150 eta_min=1e-4", lambda o: CosineAnnealingLR(
            o, 150, 1e-4), lambda o: t.CosineAnnealingLR(o, 150, 1e-4)),
        _schedule_check("OneCycleLR max_lr=1 total_steps=200", lambda o: OneCycleLR(
            o, 1.0, total_steps=200), lambda o: t.OneCycleLR(o, 1.0, total_steps=200)),
        _schedule_check("OneCycleLR three_phase linear", lambda o: OneCycleLR(
            o, 1.0, total_steps=200, three_phase=True, anneal_strategy="linear"),
            lambda o: t.OneCycleLR(o, 1.0, total_steps=200, three_phase=True,
                                   anneal_strategy="linear")),
        _schedule_check("SequentialLR warm-up 20 + cosine 180", lambda o: SequentialLR(
            o, [LinearLR(o, 0.01, total_iters=20), CosineAnnealingLR(o, 180)], [20]),
            lambda o: t.SequentialLR(o, [t.LinearLR(o, 0.01, total_iters=20),
                                         t.CosineAnnealingLR(o, 180)], [20])),
    ]


register(*schedule_checks())
