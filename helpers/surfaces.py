r"""Two-dimensional test functions for watching optimizers move, with hand-written derivatives.

Each `Surface` evaluates $f$ at points of shape `(..., 2)` and gives its gradient $\nabla f$,
its Hessian $\nabla^2 f$ and the Hessian's eigenvalues, all derived by hand (the tests compare
them with autograd and with `torch.linalg.eigvalsh`):

* `quadratic(condition_number, angle)` — $f(p) = \tfrac12 p^\top A p$, eigenvalues $1$ and
  $\kappa$: the model of every smooth minimum, where $\gamma < 2/\lambda_{\max}$ is exact;
* `rosenbrock(a, b)` — a curved, narrow valley with the minimum at $(a, a^2)$;
* `saddle()` — $f = \tfrac12 x^2 + \tfrac14 y^4 - \tfrac12 y^2$: a saddle at the origin between
  two minima at $(0, \pm 1)$;
* `noisy_quadratic(condition_number, noise)` — the quadratic, but the gradient that optimizers
  see carries Gaussian noise, as a minibatch gradient does.

`run_optimizer` runs any optimizer of `helpers.optim` on a surface and returns the path, the
losses, and whether (and when) it diverged; `stable_learning_rate` gives the largest learning
rate for which gradient descent (with heavy-ball momentum) converges on a quadratic. These are the
pure computations behind the learning-rate explorer in `helpers.widgets`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from helpers.optim import OPTIMIZERS

__all__ = ["Surface", "quadratic", "rosenbrock", "saddle", "noisy_quadratic", "SURFACES",
           "Trajectory", "run_optimizer", "stable_learning_rate", "symmetric_eigenvalues_2x2",
           "DIVERGENCE_RADIUS", "DIVERGENCE_GROWTH", "grid", "loss_range", "Exploration",
           "explore", "KNOBS", "knob_options"]


def symmetric_eigenvalues_2x2(hessian: Tensor) -> Tensor:
    r"""Eigenvalues of symmetric 2x2 matrices `(..., 2, 2)`, ascending, like `eigvalsh`.

    .. math::
        \lambda_\pm = \frac{a + c}{2} \pm \sqrt{\Bigl(\frac{a - c}{2}\Bigr)^2 + b^2}
        \quad\text{for}\quad \begin{pmatrix} a & b \\ b & c \end{pmatrix}
    """
    a, b, c = hessian[..., 0, 0], hessian[..., 0, 1], hessian[..., 1, 1]
    mean, radius = (a + c) / 2, torch.hypot((a - c) / 2, b)
    return torch.stack([mean - radius, mean + radius], dim=-1)


def _points(points) -> Tensor:
    points = torch.as_tensor(points, dtype=torch.float64) if not isinstance(points, Tensor) \
        else points
    if points.shape[-1:] != (2,):
        raise ValueError(f"expected points of shape (..., 2), but got {tuple(points.shape)}")
    return points


@dataclass(frozen=True)
class Surface:
    """A function of two variables with its derivatives, and where to look at it.

    `value`, `gradient` and `hessian` take points of shape `(..., 2)` and return shapes `(...)`,
    `(..., 2)` and `(..., 2, 2)`. `noise` is the standard deviation of the Gaussian noise added to
    every coordinate of a `stochastic_gradient`; `quadratic` marks surfaces whose Hessian is
    constant, where `stable_learning_rate` is exact.
    """

    name: str
    value: Callable[[Tensor], Tensor]
    gradient: Callable[[Tensor], Tensor]
    hessian: Callable[[Tensor], Tensor]
    start: tuple[float, float]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    minima: tuple[tuple[float, float], ...]
    noise: float = 0.0
    quadratic: bool = False

    def __call__(self, points) -> Tensor:
        return self.value(_points(points))

    @property
    def minimum_value(self) -> float:
        """The smallest value of f: its value at the (best) minimum."""
        return min(self(torch.tensor(m, dtype=torch.float64)).item() for m in self.minima)

    def hessian_eigenvalues(self, points) -> Tensor:
        """Eigenvalues of the Hessian at `points`, ascending: shape `(..., 2)`."""
        return symmetric_eigenvalues_2x2(self.hessian(_points(points)))

    def stochastic_gradient(self, points, generator: torch.Generator | None = None) -> Tensor:
        r"""$\nabla f(p) + \sigma\xi$ with $\xi \sim \mathcal N(0, I)$.

        Unbiased, with variance $\sigma^2$ in each coordinate.
        """
        points = _points(points)
        gradient = self.gradient(points)
        if self.noise == 0:
            return gradient
        noise = torch.randn(gradient.shape, generator=generator, dtype=gradient.dtype)
        return gradient + self.noise * noise.to(gradient.device)


def _rotation(angle: float) -> Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def quadratic(condition_number: float = 10.0, angle: float = 0.0) -> Surface:
    r"""$f(p) = \tfrac12 p^\top A p$, $A = R_\alpha \operatorname{diag}(1, \kappa) R_\alpha^\top$.

    $\nabla f = A p$ and $\nabla^2 f = A$, with eigenvalues $1$ and $\kappa$ (the condition
    number); `angle` $\alpha$ (radians) rotates the valley away from the axes. Minimum at 0.
    """
    if not condition_number >= 1:
        raise ValueError(f"expected condition_number >= 1, but got {condition_number!r}")
    rotation = _rotation(angle)
    matrix = rotation @ torch.diag(torch.tensor([1.0, float(condition_number)],
                                                dtype=torch.float64)) @ rotation.T

    def value(p):
        # f(p) = 1/2 p^T A p
        return 0.5 * torch.einsum("...i,ij,...j->...", p, matrix.to(p), p)

    def gradient(p):
        # grad f(p) = A p
        return p @ matrix.to(p).T

    def hessian(p):
        # hess f(p) = A, everywhere
        return matrix.to(p).expand(*p.shape[:-1], 2, 2)

    return Surface(f"quadratic, condition number {condition_number:g}", value, gradient, hessian,
                   start=(-4.0, 1.5), xlim=(-5.0, 5.0), ylim=(-3.0, 3.0), minima=((0.0, 0.0),),
                   quadratic=True)


def rosenbrock(a: float = 1.0, b: float = 100.0) -> Surface:
    r"""$f(x, y) = (a - x)^2 + b\,(y - x^2)^2$, minimum $0$ at $(a, a^2)$.

    .. math::
        \nabla f = \begin{pmatrix} -2(a - x) - 4bx(y - x^2) \\ 2b(y - x^2) \end{pmatrix},
        \qquad
        \nabla^2 f = \begin{pmatrix} 2 - 4b(y - x^2) + 8bx^2 & -4bx \\ -4bx & 2b \end{pmatrix}
    """
    def value(p):
        x, y = p[..., 0], p[..., 1]
        return (a - x) ** 2 + b * (y - x**2) ** 2

    def gradient(p):
        x, y = p[..., 0], p[..., 1]
        return torch.stack([-2 * (a - x) - 4 * b * x * (y - x**2), 2 * b * (y - x**2)], dim=-1)

    def hessian(p):
        x, y = p[..., 0], p[..., 1]
        dxx = 2 - 4 * b * (y - x**2) + 8 * b * x**2
        dxy = -4 * b * x
        return torch.stack([torch.stack([dxx, dxy], -1),
                            torch.stack([dxy, torch.full_like(x, 2 * b)], -1)], -2)

    return Surface(f"Rosenbrock, a={a:g}, b={b:g}", value, gradient, hessian, start=(-1.5, 2.0),
                   xlim=(-2.0, 2.0), ylim=(-1.0, 3.0), minima=((a, a * a),))


def saddle() -> Surface:
    r"""$f(x, y) = \tfrac12 x^2 + \tfrac14 y^4 - \tfrac12 y^2$: saddle at 0, minima $(0, \pm 1)$.

    $\nabla f = (x,\; y^3 - y)$ and $\nabla^2 f = \operatorname{diag}(1,\; 3y^2 - 1)$: at the
    origin the eigenvalues are $-1$ and $1$, at the minima $1$ and $2$.
    """
    def value(p):
        x, y = p[..., 0], p[..., 1]
        return 0.5 * x**2 + 0.25 * y**4 - 0.5 * y**2

    def gradient(p):
        x, y = p[..., 0], p[..., 1]
        return torch.stack([x, y**3 - y], dim=-1)

    def hessian(p):
        x, y = p[..., 0], p[..., 1]
        zero = torch.zeros_like(x)
        return torch.stack([torch.stack([torch.ones_like(x), zero], -1),
                            torch.stack([zero, 3 * y**2 - 1], -1)], -2)

    return Surface("saddle", value, gradient, hessian, start=(-2.0, 0.01), xlim=(-2.5, 2.5),
                   ylim=(-1.8, 1.8), minima=((0.0, -1.0), (0.0, 1.0)))


def noisy_quadratic(condition_number: float = 10.0, noise: float = 1.0) -> Surface:
    r"""`quadratic(condition_number)`, seen through noisy gradients.

    Its `stochastic_gradient` adds $\mathcal N(0, \sigma^2)$ noise to each coordinate.
    """
    if not noise >= 0:
        raise ValueError(f"expected noise >= 0, but got {noise!r}")
    surface = quadratic(condition_number)
    return replace(surface, name=f"noisy {surface.name}, noise {noise:g}", noise=float(noise))


def grid(surface: Surface, resolution: int = 80) -> tuple[Tensor, Tensor, Tensor]:
    """`(X, Y, Z)`: the surface on a `resolution` x `resolution` grid over its `xlim` x `ylim`."""
    if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 2:
        raise ValueError(f"expected an integer resolution >= 2, but got {resolution!r}")
    xs = torch.linspace(*surface.xlim, resolution, dtype=torch.float64)
    ys = torch.linspace(*surface.ylim, resolution, dtype=torch.float64)
    X, Y = torch.meshgrid(xs, ys, indexing="xy")
    return X, Y, surface(torch.stack([X, Y], dim=-1))


def loss_range(surface: Surface, decades: int = 12) -> tuple[float, float]:
    """Fixed limits for a log-scale plot of f - f*: from well above the surface's highest values
    in view down `decades` powers of ten, so that runs on the same surface share one scale."""
    _, _, values = grid(surface, 40)
    high = 10 * (values.max().item() - surface.minimum_value)
    return high / 10**decades, high


SURFACES: dict[str, Callable[[], Surface]] = {
    "quadratic": quadratic,
    "rosenbrock": rosenbrock,
    "saddle": saddle,
    "noisy quadratic": noisy_quadratic,
}
"""Every surface by name, built with its default arguments when called."""


# --------------------------------------------------------------------------------------------
# Optimizers on surfaces
# --------------------------------------------------------------------------------------------

DIVERGENCE_RADIUS = 1e6
DIVERGENCE_GROWTH = 1e3
"""A run has diverged once a coordinate leaves [-1e6, 1e6], or its loss gap f - f* has grown to
1000 times the gap at the start, or the loss is no longer finite."""


@dataclass(frozen=True)
class Trajectory:
    """Where an optimizer went: `points` `(n + 1, 2)` and `losses` `(n + 1,)`, start included.

    A run that diverges stops there: `diverged_at` is the step at which it left the region
    (None if it never did), and `points` ends at that step.
    """

    points: Tensor
    losses: Tensor
    diverged_at: int | None

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None


def run_optimizer(surface: Surface, optimizer: str = "SGD", lr: float = 0.1,
                  steps: int = 50, start: tuple[float, float] | None = None, *,
                  seed: int = 0, **options) -> Trajectory:
    """Run `helpers.optim.<optimizer>(lr=lr, **options)` for `steps` steps on `surface`.

    The gradient is the surface's hand-written one (with its noise, drawn from a generator seeded
    with `seed`, on a noisy surface). Starts at `start` (default: the surface's own). Stops at
    the first step that diverges (see `DIVERGENCE_GROWTH`).
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"expected an optimizer among {list(OPTIMIZERS)}, but got {optimizer!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"expected a non-negative integer number of steps, but got {steps!r}")
    position = _points(surface.start if start is None else start).detach().clone()
    if position.shape != (2,):
        raise ValueError(f"expected a start point (x, y), but got shape {tuple(position.shape)}")
    step_fn = OPTIMIZERS[optimizer][0]([position], lr=lr, **options)
    generator = torch.Generator().manual_seed(seed)
    largest_gap = DIVERGENCE_GROWTH * (surface(position).item() - surface.minimum_value)
    points, losses, diverged_at = [position.clone()], [surface(position)], None
    for step in range(1, steps + 1):
        position.grad = surface.stochastic_gradient(position, generator)
        step_fn.step()
        points.append(position.clone())
        losses.append(surface(position))
        gap = losses[-1].item() - surface.minimum_value
        if not (position.abs().max() <= DIVERGENCE_RADIUS and gap <= max(largest_gap, 1e-12)):
            diverged_at = step  # also catches NaN, for which every comparison is False
            break
    return Trajectory(torch.stack(points), torch.stack(losses), diverged_at)


def stable_learning_rate(surface: Surface, momentum: float = 0.0,
                         nesterov: bool = False) -> float | None:
    r"""The largest learning rate for which SGD (with torch's momentum) converges on a quadratic.

    Along an eigenvector with eigenvalue $\lambda$, plain gradient descent multiplies the error by
    $1 - \gamma\lambda$ each step, so it converges iff $\gamma < 2/\lambda_{\max}$. With momentum
    $\mu$ (no dampening) the error obeys $e_t = (1 + \mu - \gamma\lambda) e_{t-1} - \mu e_{t-2}$,
    stable iff $\gamma < 2(1 + \mu)/\lambda_{\max}$; Nesterov's look-ahead narrows this to
    $\gamma < 2(1 + \mu)/\bigl((1 + 2\mu)\lambda_{\max}\bigr)$.
    None for a surface that is not quadratic, where no single limit holds.
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"expected 0 <= momentum < 1, but got {momentum!r}")
    if not surface.quadratic:
        return None
    largest = surface.hessian_eigenvalues(torch.zeros(2, dtype=torch.float64))[-1].item()
    return 2 * (1 + momentum) / ((1 + 2 * momentum if nesterov else 1) * largest)


KNOBS: dict[str, tuple[str, ...]] = {
    "SGD": ("momentum", "nesterov"),
    "Adagrad": (),
    "RMSprop": ("alpha", "momentum"),
    "Adam": ("betas",),
    "AdamW": ("betas",),
}
"""The options of each optimizer that the learning-rate explorer offers besides `lr`."""


def knob_options(optimizer: str, *, momentum: float = 0.0, nesterov: bool = False,
                 alpha: float = 0.99, beta1: float = 0.9, beta2: float = 0.999) -> dict:
    """The keyword arguments for `optimizer` from every knob of the explorer: only its own knobs.

    Nesterov needs momentum, so `nesterov` is passed on only while `momentum > 0`.
    """
    if optimizer not in KNOBS:
        raise ValueError(f"expected an optimizer among {list(KNOBS)}, but got {optimizer!r}")
    every = {"momentum": momentum, "nesterov": bool(nesterov and momentum > 0), "alpha": alpha,
             "betas": (float(beta1), float(beta2))}
    return {name: every[name] for name in KNOBS[optimizer]}


@dataclass(frozen=True)
class Exploration:
    """One frame of the learning-rate explorer: the run, and what to say about it."""

    trajectory: Trajectory
    lr: float
    stable_lr: float | None  # the limit of `stable_learning_rate`, where one exists
    limit_formula: str = ""  # how that limit is written: "2/λmax", "2(1+μ)/λmax", ...

    @property
    def stable(self) -> bool | None:
        """Whether lr is below the stable limit (None where no limit is known)."""
        return None if self.stable_lr is None else self.lr < self.stable_lr

    @property
    def verdict(self) -> str:
        """'diverged at step 7', or the loss from first to last step."""
        path = self.trajectory
        if path.diverged:
            return f"diverged at step {path.diverged_at}"
        return f"loss {path.losses[0].item():.3g} -> {path.losses[-1].item():.3g}"

    @property
    def limit_text(self) -> str:
        """'lr 0.15 < 2/λmax = 0.2: stable', or '' where no limit is known."""
        if self.stable_lr is None:
            return ""
        relation, outcome = ("<", "stable") if self.stable else (">=", "unstable")
        return f"lr {self.lr:.3g} {relation} {self.limit_formula} = {self.stable_lr:.3g}: {outcome}"


def explore(surface: Surface, optimizer: str = "SGD", lr: float = 0.1, steps: int = 50,
            start: tuple[float, float] | None = None, **options) -> Exploration:
    """Run `optimizer` on `surface` and attach the stable limit (SGD on a quadratic only).

    `options` may hold only the knobs of `KNOBS[optimizer]`; everything else keeps its default.
    """
    if optimizer not in KNOBS:
        raise ValueError(f"expected an optimizer among {list(KNOBS)}, but got {optimizer!r}")
    unknown = set(options) - set(KNOBS[optimizer])
    if unknown:
        raise ValueError(f"expected options among {KNOBS[optimizer]} for {optimizer}, but got "
                         f"{sorted(unknown)}")
    path = run_optimizer(surface, optimizer, lr, steps, start, **options)
    if optimizer != "SGD" or not surface.quadratic:
        return Exploration(path, float(lr), None)
    momentum, nesterov = options.get("momentum", 0.0), options.get("nesterov", False)
    formula = ("2/λmax" if momentum == 0 else
               "2(1+μ)/((1+2μ)λmax)" if nesterov else "2(1+μ)/λmax")
    return Exploration(path, float(lr), stable_learning_rate(surface, momentum, nesterov), formula)
