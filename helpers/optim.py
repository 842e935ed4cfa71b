r"""Optimizers written by hand: SGD (momentum, Nesterov), Adagrad, RMSprop, Adam and AdamW.

Two layers, as in `torch.optim`:

* **functional steps** — `sgd_step`, `adagrad_step`, `rmsprop_step`, `adam_step` — update one
  parameter tensor and its state tensors in place, one formula per line;
* **`torch.optim.Optimizer` subclasses** — `SGD`, `Adagrad`, `RMSprop`, `Adam`, `AdamW` — with
  torch's argument names, defaults, validation messages and state keys (`momentum_buffer`, `sum`,
  `square_avg`, `grad_avg`, `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq`, and `step` stored as a
  0-dim float tensor on the CPU). They inherit param groups, `zero_grad`, `state_dict` /
  `load_state_dict` and hooks from `torch.optim.Optimizer`, so `torch.optim.lr_scheduler` drives
  them unchanged.

Notation, shared by every docstring: $\theta$ parameters, $g_t$ the gradient at step $t$,
$\gamma$ the learning rate (`lr`), $\lambda$ `weight_decay`, $\mu$ `momentum`, $\tau$ `dampening`,
$\epsilon$ `eps`.

Note — what differs from `torch.optim`: the implementation switches `foreach`, `fused`,
`capturable` and `differentiable` are not accepted (there is one implementation, the readable
one), so param groups carry only the options of the algorithm; complex or sparse gradients raise
a `TypeError` instead of being supported; and a NaN hyperparameter is refused by every optimizer
(torch's SGD lets one through). Every other argument, default, error message and state entry is
torch's; our messages add, after torch's own text, what was expected.

A tensor `lr` (every optimizer) or tensor `betas` (Adam, AdamW) is used as torch uses it: as a
0-dim tensor, never turned into a Python float first, so the arithmetic on it — Adagrad's
$\gamma / (1 + (t-1)\eta)$, Adam's $1-\beta_1^t$, $\gamma / (1-\beta_1^t)$ and AdamW's
$1-\gamma\lambda$ — runs in the tensor's dtype. A float32 `torch.tensor(0.01)` therefore gives the
same float32-rounded step sizes as torch's, bit for bit, also for float64 parameters.

`check_optimizer(...)` and the checks registered at the bottom run ours and torch's side by side
for 200 steps on the same model and data and compare the parameters and the whole state after
every step; `python -m helpers.verify -k SGD` runs them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.optim import Optimizer

from helpers.data import linear_classification
from helpers.verify import Check, register

__all__ = ["SGD", "Adagrad", "RMSprop", "Adam", "AdamW", "sgd_step", "adagrad_step",
           "rmsprop_step", "adam_step", "OPTIMIZERS", "optimizer_trajectory", "check_optimizer",
           "softmax_regression_problem", "CHECKED_OPTIONS", "optimizer_check", "OPTIMIZER_CHECKS"]


# --------------------------------------------------------------------------------------------
# Functional single-tensor steps
# --------------------------------------------------------------------------------------------


def _direction(param: Tensor, grad: Tensor, weight_decay: float, maximize: bool) -> Tensor:
    r"""$g_t = \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1}$: the gradient that every step uses.

    `maximize` flips the sign (gradient ascent); weight decay adds the gradient of the L2 penalty
    $\frac{\lambda}{2}\lVert\theta\rVert^2$. Never modifies `grad` (the caller's `param.grad`).
    """
    # g_t = -grad when maximizing, else grad
    g = -grad if maximize else grad
    # g_t = g_t + lambda * theta_{t-1}
    return g.add(param, alpha=weight_decay) if weight_decay != 0 else g


def sgd_step(param: Tensor, grad: Tensor, momentum_buffer: Tensor | None, *,
             lr: float | Tensor, momentum: float = 0.0, dampening: float = 0.0,
             weight_decay: float = 0.0, nesterov: bool = False,
             maximize: bool = False) -> Tensor | None:
    r"""One step of SGD on `param`, in place; returns the momentum buffer (None without momentum).

    .. math::
        g_t &= \nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \\
        b_1 &= g_1, \qquad b_t = \mu b_{t-1} + (1-\tau) g_t \\
        d_t &= g_t + \mu b_t \text{ (Nesterov)} \quad\text{or}\quad d_t = b_t \\
        \theta_t &= \theta_{t-1} - \gamma d_t

    This is torch's form: the buffer starts at the first gradient (so dampening acts from the
    second step on), and `lr` multiplies the buffer instead of being folded into it. Without
    momentum, $d_t = g_t$.
    """
    g = _direction(param, grad, weight_decay, maximize)
    if momentum != 0:
        if momentum_buffer is None:
            # b_1 = g_1
            momentum_buffer = g.detach().clone()
        else:
            # b_t = mu * b_{t-1} + (1 - tau) * g_t
            momentum_buffer.mul_(momentum).add_(g, alpha=1 - dampening)
        # d_t = g_t + mu * b_t (Nesterov's look-ahead)   or   d_t = b_t (heavy ball)
        g = g.add(momentum_buffer, alpha=momentum) if nesterov else momentum_buffer
    # theta_t = theta_{t-1} - lr * d_t
    param.add_(g, alpha=-lr)
    return momentum_buffer


def adagrad_step(param: Tensor, grad: Tensor, state_sum: Tensor, step: Tensor, *,
                 lr: float | Tensor, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 eps: float = 1e-10, maximize: bool = False) -> None:
    r"""One step of Adagrad on `param`; `state_sum` and `step` are updated in place.

    .. math::
        \tilde\gamma_t &= \frac{\gamma}{1 + (t-1)\,\eta} \\
        G_t &= G_{t-1} + g_t^2 \\
        \theta_t &= \theta_{t-1} - \tilde\gamma_t\,\frac{g_t}{\sqrt{G_t} + \epsilon}

    with $\eta$ = `lr_decay` and $G_0$ = `initial_accumulator_value`. Every coordinate gets its
    own step size, which shrinks as that coordinate's squared gradients accumulate.
    """
    # t = t + 1
    step += 1
    g = _direction(param, grad, weight_decay, maximize)
    # lr_t = lr / (1 + (t - 1) * lr_decay)     (in lr's dtype when lr is a tensor)
    clr = lr / (1 + (step.item() - 1) * lr_decay)
    # G_t = G_{t-1} + g_t^2
    state_sum.addcmul_(g, g, value=1)
    # theta_t = theta_{t-1} - lr_t * g_t / (sqrt(G_t) + eps)
    param.addcdiv_(g, state_sum.sqrt().add_(eps), value=-clr)


def rmsprop_step(param: Tensor, grad: Tensor, square_avg: Tensor, step: Tensor,
                 grad_avg: Tensor | None = None, momentum_buffer: Tensor | None = None, *,
                 lr: float | Tensor, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False,
                 maximize: bool = False) -> None:
    r"""One step of RMSprop on `param`; the state tensors are updated in place.

    .. math::
        v_t &= \alpha v_{t-1} + (1-\alpha) g_t^2 \\
        \bar g_t &= \alpha \bar g_{t-1} + (1-\alpha) g_t
            \quad\text{(centered only; then } \tilde v_t = v_t - \bar g_t^2
            \text{, else } \tilde v_t = v_t) \\
        b_t &= \mu b_{t-1} + \frac{g_t}{\sqrt{\tilde v_t} + \epsilon}, \qquad
        \theta_t = \theta_{t-1} - \gamma b_t \\
        \text{without momentum:}\quad
        \theta_t &= \theta_{t-1} - \gamma\,\frac{g_t}{\sqrt{\tilde v_t} + \epsilon}

    Note: $\epsilon$ is added *outside* the square root, as torch does (TensorFlow adds it inside).
    `grad_avg` is needed when `centered`, `momentum_buffer` when `momentum > 0`; both start at 0.
    """
    # t = t + 1
    step += 1
    g = _direction(param, grad, weight_decay, maximize)
    # v_t = alpha * v_{t-1} + (1 - alpha) * g_t^2
    square_avg.mul_(alpha).addcmul_(g, g, value=1 - alpha)
    if centered:
        # gbar_t = alpha * gbar_{t-1} + (1 - alpha) * g_t     (lerp: a + w (b - a))
        grad_avg.lerp_(g, 1 - alpha)
        # denom = sqrt(v_t - gbar_t^2) + eps
        denom = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_().add_(eps)
    else:
        # denom = sqrt(v_t) + eps
        denom = square_avg.sqrt().add_(eps)
    if momentum > 0:
        # b_t = mu * b_{t-1} + g_t / denom
        momentum_buffer.mul_(momentum).addcdiv_(g, denom)
        # theta_t = theta_{t-1} - lr * b_t
        param.add_(momentum_buffer, alpha=-lr)
    else:
        # theta_t = theta_{t-1} - lr * g_t / denom
        param.addcdiv_(g, denom, value=-lr)


def adam_step(param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step: Tensor,
              max_exp_avg_sq: Tensor | None = None, *, lr: float | Tensor,
              beta1: float | Tensor = 0.9, beta2: float | Tensor = 0.999, eps: float = 1e-8,
              weight_decay: float = 0.0, amsgrad: bool = False, maximize: bool = False,
              decoupled_weight_decay: bool = False) -> None:
    r"""One step of Adam (or AdamW) on `param`; the state tensors are updated in place.

    .. math::
        m_t &= \beta_1 m_{t-1} + (1-\beta_1) g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2 \\
        \hat m_t &= \frac{m_t}{1-\beta_1^t}, \qquad
        \hat v_t = \frac{v_t}{1-\beta_2^t}
        \quad(\text{AMSGrad: } v^{\max}_t = \max(v^{\max}_{t-1}, v_t)
        \text{ replaces } v_t \text{ here}) \\
        \theta_t &= \theta_{t-1} - \gamma\,\frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    Weight decay is an L2 term in $g_t$ (Adam), or with `decoupled_weight_decay` (AdamW) a
    separate shrink that never enters $m$ and $v$, applied first:
    $\theta_t = (1 - \gamma\lambda)\theta_{t-1} - \gamma\,\hat m_t / (\sqrt{\hat v_t} + \epsilon)$.
    The division by $1-\beta^t$ removes the bias of averages that start at 0.
    A tensor `lr`, `beta1` or `beta2` (0-dim) stays a tensor: the scalar arithmetic runs in its
    dtype, as in torch (`beta1` is first cast to the parameter's dtype, as `lerp_` needs).
    """
    # t = t + 1
    step += 1
    g = _direction(param, grad, 0.0 if decoupled_weight_decay else weight_decay, maximize)
    if decoupled_weight_decay and weight_decay != 0:
        # theta <- (1 - lr * lambda) * theta   (first; the Adam step below completes theta_t)
        param.mul_(1 - lr * weight_decay)
    # m_t = beta1 * m_{t-1} + (1 - beta1) * g_t     (lerp: a + w (b - a))
    exp_avg.lerp_(g, 1 - _cast_like(beta1, param))
    # v_t = beta2 * v_{t-1} + (1 - beta2) * g_t^2
    exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    t = step.item()
    # 1 - beta1^t and 1 - beta2^t: the bias corrections (in the betas' dtype when tensors)
    bias_correction1 = 1 - beta1**t
    bias_correction2 = 1 - beta2**t
    if amsgrad:
        # vmax_t = max(vmax_{t-1}, v_t)
        torch.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
    second_moment = max_exp_avg_sq if amsgrad else exp_avg_sq
    # sqrt(vhat_t) + eps = sqrt(v_t) / sqrt(1 - beta2^t) + eps
    denom = (second_moment.sqrt() / bias_correction2**0.5).add_(eps)
    # theta_t = theta_{t-1} - lr / (1 - beta1^t) * m_t / (sqrt(vhat_t) + eps)
    step_size = lr / bias_correction1
    param.addcdiv_(exp_avg, denom, value=-step_size)


# --------------------------------------------------------------------------------------------
# Validation: torch's messages, followed by what was expected
# --------------------------------------------------------------------------------------------


def _check_learning_rate(lr) -> None:
    if isinstance(lr, Tensor) and lr.numel() != 1:
        raise ValueError(f"Tensor lr must be 1-element (expected a 1-element tensor, but got "
                         f"shape {tuple(lr.shape)})")
    _check_at_least("learning rate", "lr", lr, 0.0)


def _check_at_least(what: str, name: str, value, low: float) -> None:
    """Raise torch's "Invalid <what>: <value>" unless `low <= value`."""
    if isinstance(value, bool) or not isinstance(value, int | float | Tensor):
        raise TypeError(f"expected {name} to be a float, but got {type(value).__name__} "
                        f"{value!r}")
    if not low <= value:
        raise ValueError(f"Invalid {what}: {value} (expected {name} >= {low})")


def _check_betas(betas) -> None:
    if not isinstance(betas, Sequence) or len(betas) != 2:
        raise TypeError(f"expected betas to be a pair (beta1, beta2), but got {betas!r}")
    for index, beta in enumerate(betas):
        if isinstance(beta, Tensor) and beta.numel() != 1:
            raise ValueError(f"Tensor betas[{index}] must be 1-element (expected a 1-element "
                             f"tensor, but got shape {tuple(beta.shape)})")
        _check_at_least(f"beta parameter at index {index}", f"betas[{index}]", beta, 0.0)
        if not beta < 1.0:
            raise ValueError(f"Invalid beta parameter at index {index}: {beta} "
                             f"(expected 0 <= betas[{index}] < 1)")
    if not all(isinstance(b, float) for b in betas) and not all(
            isinstance(b, Tensor) for b in betas):
        raise ValueError(f"betas must be either both floats or both Tensors (expected floats "
                         f"such as (0.9, 0.999), but got {tuple(type(b).__name__ for b in betas)})")


def _to_scalar(value):
    """torch's `_to_scalar`: a 1-element tensor hyperparameter as a 0-dim tensor; a float stays.

    The tensor is *not* turned into a Python float: the steps compute with it as torch does, so
    `1 - beta1**t`, `lr / (1 - beta1**t)` and `1 - lr * weight_decay` are evaluated in the
    tensor's dtype (a float32 `torch.tensor(0.01)` rounds them to float32, also for float64
    parameters).
    """
    return value.squeeze() if isinstance(value, Tensor) and value.dim() != 0 else value


def _cast_like(value, param: Tensor):
    """A tensor hyperparameter moved to `param`'s device and dtype (torch does this for beta1,
    the weight of `lerp_`, which must match the tensor it updates); a float stays."""
    return value.to(device=param.device, dtype=param.dtype) if isinstance(value, Tensor) else value


def _new_step() -> Tensor:
    """torch's step counter: a 0-dim tensor on the CPU, float64 only when that is the default."""
    dtype = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
    return torch.tensor(0.0, dtype=dtype)


# --------------------------------------------------------------------------------------------
# torch.optim.Optimizer subclasses
# --------------------------------------------------------------------------------------------


class _OneTensorAtATime(Optimizer):
    """The step loop shared by every optimizer here: one functional step per parameter."""

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Perform one optimization step; `closure` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if param.grad.is_sparse or param.is_complex():
                    raise TypeError(f"{type(self).__name__}: expected a dense real gradient, "
                                    f"but got a {'sparse' if param.grad.is_sparse else 'complex'}"
                                    " one; use torch.optim for sparse or complex parameters")
                self._update(param, param.grad, group)
        return loss

    def _update(self, param: Tensor, grad: Tensor, group: dict) -> None:
        raise NotImplementedError


class SGD(_OneTensorAtATime):
    r"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

    Same arguments and defaults as `torch.optim.SGD`; state: `momentum_buffer` (only when
    momentum is non-zero). The update is `sgd_step`:

    .. math::
        b_t = \mu b_{t-1} + (1-\tau) g_t \;(b_1 = g_1), \qquad
        \theta_t = \theta_{t-1} - \gamma\,(g_t + \mu b_t \text{ if Nesterov else } b_t)
    """

    def __init__(self, params, lr: float | Tensor = 1e-3, momentum: float = 0,
                 dampening: float = 0, weight_decay: float = 0, nesterov: bool = False, *,
                 maximize: bool = False):
        _check_learning_rate(lr)
        _check_at_least("momentum value", "momentum", momentum, 0.0)
        # any dampening is allowed, as in torch (negative included), except NaN
        _check_at_least("dampening value", "dampening", dampening, -math.inf)
        _check_at_least("weight_decay value", "weight_decay", weight_decay, 0.0)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"Nesterov momentum requires a momentum and zero dampening "
                             f"(expected momentum > 0 and dampening == 0, but got momentum="
                             f"{momentum}, dampening={dampening})")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, param, grad, group):
        options = dict(lr=_to_scalar(group["lr"]), momentum=group["momentum"],
                       dampening=group["dampening"], weight_decay=group["weight_decay"],
                       nesterov=group["nesterov"], maximize=group["maximize"])
        if group["momentum"] == 0:
            sgd_step(param, grad, None, **options)
            return
        state = self.state[param]
        state["momentum_buffer"] = sgd_step(param, grad, state.get("momentum_buffer"), **options)


class Adagrad(_OneTensorAtATime):
    r"""Adagrad: per-coordinate step sizes $\gamma / (\sqrt{\sum_s g_s^2} + \epsilon)$.

    Same arguments and defaults as `torch.optim.Adagrad`; state: `step`, `sum`, created for every
    parameter in the constructor (as torch does). The update is `adagrad_step`.

    Note: like torch, the accumulator starts at the *constructor's* `initial_accumulator_value`
    for every param group; a per-group value is stored but not used.
    """

    def __init__(self, params, lr: float | Tensor = 1e-2, lr_decay: float = 0,
                 weight_decay: float = 0, initial_accumulator_value: float = 0,
                 eps: float = 1e-10, *, maximize: bool = False):
        _check_learning_rate(lr)
        _check_at_least("lr_decay value", "lr_decay", lr_decay, 0.0)
        _check_at_least("weight_decay value", "weight_decay", weight_decay, 0.0)
        _check_at_least("initial_accumulator_value value", "initial_accumulator_value",
                        initial_accumulator_value, 0.0)
        _check_at_least("epsilon value", "eps", eps, 0.0)
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize)
        super().__init__(params, defaults)
        for group in self.param_groups:
            for param in group["params"]:
                self._initialize(param)

    def _initialize(self, param: Tensor) -> dict:
        state = self.state[param]
        if not state:
            state["step"] = _new_step()
            # G_0 = initial_accumulator_value
            state["sum"] = torch.full_like(param, self.defaults["initial_accumulator_value"],
                                           memory_format=torch.preserve_format)
        return state

    def _update(self, param, grad, group):
        state = self._initialize(param)  # parameters of groups added after construction
        adagrad_step(param, grad, state["sum"], state["step"], lr=_to_scalar(group["lr"]),
                     lr_decay=group["lr_decay"], weight_decay=group["weight_decay"],
                     eps=group["eps"], maximize=group["maximize"])


class RMSprop(_OneTensorAtATime):
    r"""RMSprop: divide by a running root mean square of the gradient, $\sqrt{v_t} + \epsilon$.

    Same arguments and defaults as `torch.optim.RMSprop`; state: `step`, `square_avg`, and
    `momentum_buffer` (when momentum > 0) and `grad_avg` (when centered). The update is
    `rmsprop_step`; $\epsilon$ sits outside the square root, as in torch.
    """

    def __init__(self, params, lr: float | Tensor = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0, momentum: float = 0,
                 centered: bool = False, maximize: bool = False):
        _check_learning_rate(lr)
        _check_at_least("epsilon value", "eps", eps, 0.0)
        _check_at_least("momentum value", "momentum", momentum, 0.0)
        _check_at_least("weight_decay value", "weight_decay", weight_decay, 0.0)
        _check_at_least("alpha value", "alpha", alpha, 0.0)
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults)

    def _update(self, param, grad, group):
        state = self.state[param]
        if not state:
            state["step"] = _new_step()
            # v_0 = 0, b_0 = 0, gbar_0 = 0
            state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if group["momentum"] > 0:
                state["momentum_buffer"] = torch.zeros_like(
                    param, memory_format=torch.preserve_format)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        rmsprop_step(param, grad, state["square_avg"], state["step"], state.get("grad_avg"),
                     state.get("momentum_buffer"), lr=_to_scalar(group["lr"]), alpha=group["alpha"],
                     eps=group["eps"], weight_decay=group["weight_decay"],
                     momentum=group["momentum"], centered=group["centered"],
                     maximize=group["maximize"])


class Adam(_OneTensorAtATime):
    r"""Adam: bias-corrected running averages of the gradient and of its square.

    Same arguments and defaults as `torch.optim.Adam` (including `decoupled_weight_decay`, which
    turns it into AdamW); state: `step`, `exp_avg`, `exp_avg_sq`, and `max_exp_avg_sq` with
    `amsgrad`. The update is `adam_step`:

    .. math::
        \theta_t = \theta_{t-1} - \gamma\,\frac{m_t / (1-\beta_1^t)}
        {\sqrt{v_t / (1-\beta_2^t)} + \epsilon}
    """

    def __init__(self, params, lr: float | Tensor = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        _check_learning_rate(lr)
        _check_at_least("epsilon value", "eps", eps, 0.0)
        _check_betas(betas)
        _check_at_least("weight_decay value", "weight_decay", weight_decay, 0.0)
        defaults = dict(lr=lr, betas=tuple(map(_to_scalar, betas)), eps=eps,
                        weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)

    def _update(self, param, grad, group):
        state = self.state[param]
        if not state:
            state["step"] = _new_step()
            # m_0 = 0, v_0 = 0, vmax_0 = 0
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = torch.zeros_like(
                    param, memory_format=torch.preserve_format)
        beta1, beta2 = (_to_scalar(b) for b in group["betas"])
        adam_step(param, grad, state["exp_avg"], state["exp_avg_sq"], state["step"],
                  state.get("max_exp_avg_sq"), lr=_to_scalar(group["lr"]), beta1=beta1,
                  beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                  amsgrad=group["amsgrad"], maximize=group["maximize"],
                  decoupled_weight_decay=group["decoupled_weight_decay"])


class AdamW(Adam):
    r"""AdamW: Adam with decoupled weight decay, $\theta \leftarrow (1-\gamma\lambda)\theta$.

    Same arguments and defaults as `torch.optim.AdamW` (note `weight_decay=1e-2`); the decay
    never enters the running averages, unlike `Adam(weight_decay=...)`, which adds
    $\lambda\theta$ to the gradient.
    """

    def __init__(self, params, lr: float | Tensor = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True


OPTIMIZERS: dict[str, tuple[type[Optimizer], type[Optimizer]]] = {
    "SGD": (SGD, torch.optim.SGD),
    "Adagrad": (Adagrad, torch.optim.Adagrad),
    "RMSprop": (RMSprop, torch.optim.RMSprop),
    "Adam": (Adam, torch.optim.Adam),
    "AdamW": (AdamW, torch.optim.AdamW),
}
"""Ours and torch's, by name."""


# --------------------------------------------------------------------------------------------
# Side by side with torch.optim: the same model, data and number of steps
# --------------------------------------------------------------------------------------------


def optimizer_trajectory(make_optimizer: Callable[[list[Tensor]], Optimizer],
                         params: Sequence[Tensor], loss_fn: Callable[[list[Tensor], int], Tensor],
                         steps: int = 200, make_scheduler: Callable | None = None) -> dict:
    """Train copies of `params` for `steps` steps; the parameters and state after every step.

    `loss_fn(params, t)` returns the loss of step `t`; `make_optimizer(params)` builds the
    optimizer (and `make_scheduler(optimizer)`, if given, a scheduler stepped after each step).
    Returns `{"params": [...], "state": [...]}`: for each parameter a tensor of shape
    `(steps, *param.shape)`, and for each parameter a dict mapping every state key to the stacked
    values (`step` included), keys in the optimizer's own order.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"expected a positive number of steps, but got {steps!r}")
    params = [p.detach().clone().requires_grad_(True) for p in params]
    optimizer = make_optimizer(params)
    scheduler = make_scheduler(optimizer) if make_scheduler else None
    param_history, state_history = [], []
    for t in range(steps):
        optimizer.zero_grad()
        with torch.enable_grad():  # also when called under no_grad, as verification does
            loss_fn(params, t).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        param_history.append([p.detach().clone() for p in params])
        state_history.append([{k: torch.as_tensor(v).clone() for k, v in optimizer.state[p].items()}
                              for p in params])
    return {"params": [torch.stack(history) for history in zip(*param_history)],
            "state": [{key: torch.stack([step[i][key] for step in state_history])
                       for key in state_history[-1][i]} for i in range(len(params))]}


def softmax_regression_problem(generator: torch.Generator) -> dict[str, Tensor]:
    """A 5-feature, 3-class problem: 64 samples, and a weight matrix and a bias to train."""
    features, labels = linear_classification(64, 5, 3, generator=generator)
    weight = 0.5 * torch.randn(3, 5, generator=generator, dtype=torch.float64)
    bias = 0.1 * torch.randn(3, generator=generator, dtype=torch.float64)
    return {"weight": weight, "bias": bias, "features": features, "labels": labels}


def _minibatch_loss(features: Tensor, labels: Tensor, sign: float, params: list[Tensor],
                    t: int, batch_size: int = 16) -> Tensor:
    """Cross-entropy of a linear classifier on minibatch t (the batches cycle in order)."""
    start = (t * batch_size) % len(features)
    x, y = features[start:start + batch_size], labels[start:start + batch_size]
    weight, bias = params
    return sign * F.cross_entropy(x @ weight.T + bias, y)


def check_optimizer(optimizer_class: type[Optimizer], *, weight, bias, features, labels,
                    steps: int = 200, **options) -> dict:
    """Train a softmax regression with `optimizer_class(**options)`; every step's params and state.

    With `maximize=True` the objective is the negated loss, so both directions train the model.
    """
    sign = -1.0 if options.get("maximize") else 1.0
    return optimizer_trajectory(lambda params: optimizer_class(params, **options),
                                [weight, bias], partial(_minibatch_loss, features, labels, sign),
                                steps)


CHECKED_OPTIONS: dict[str, list[dict]] = {
    "SGD": [dict(lr=0.1), dict(lr=0.1, momentum=0.9), dict(lr=0.1, momentum=0.9, dampening=0.5),
            dict(lr=0.1, momentum=0.9, nesterov=True), dict(lr=0.1, weight_decay=0.1),
            dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True, maximize=True)],
    "Adagrad": [dict(lr=0.1), dict(lr=0.1, lr_decay=0.01), dict(initial_accumulator_value=0.5),
                dict(lr=0.1, weight_decay=0.1, eps=1e-3), dict(lr=0.1, maximize=True)],
    "RMSprop": [dict(), dict(lr=0.01, alpha=0.9), dict(centered=True), dict(momentum=0.9),
                dict(lr=0.001, momentum=0.5, centered=True, weight_decay=0.1, eps=1e-3),
                dict(maximize=True)],
    "Adam": [dict(lr=0.01), dict(lr=0.01, betas=(0.8, 0.9)), dict(lr=0.01, amsgrad=True),
             dict(lr=0.01, weight_decay=0.1), dict(lr=0.01, eps=1e-3),
             dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
             dict(lr=0.01, amsgrad=True, maximize=True)],
    "AdamW": [dict(lr=0.01), dict(lr=0.01, weight_decay=0.1, amsgrad=True),
              dict(lr=0.01, betas=(0.5, 0.9), eps=1e-4, maximize=True)],
}
"""The option sets proved equal to torch's: every option of every optimizer at least once."""


def options_label(name: str, options: dict) -> str:
    """'SGD(lr=0.1, momentum=0.9)': how a check is named."""
    return f"{name}({', '.join(f'{k}={v}' for k, v in options.items())})"


def optimizer_check(name: str, options: dict, steps: int = 200) -> Check:
    """A `Check`: ours and torch's, 200 steps each, every step's params and state compared."""
    ours, theirs = OPTIMIZERS[name]
    return Check(options_label(name, options),
                 partial(check_optimizer, ours, steps=steps, **options),
                 partial(check_optimizer, theirs, steps=steps, **options),
                 softmax_regression_problem, dtypes=(torch.float64, torch.float32))


OPTIMIZER_CHECKS = [optimizer_check(name, options) for name, grid in CHECKED_OPTIONS.items()
                    for options in grid]

register(*OPTIMIZER_CHECKS)
