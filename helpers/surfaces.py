r"""Two-dimensional test functions for watching optimizers move, with hand-written derivatives.

Each `Surface` evaluates $f$ at points of shape `(..., 2)` and gives its gradient $\nabla f$,
its Hessian $\nabla^2 f$ and the Hessian's eigenvalues, all derived by hand (the tests compare
them with autograd and with `torch.linalg.eigvalsh`):

* `quadratic(condition_number, angle)` — $f(p) = \tfrac12 p^\top A p$, eigenvalues $1$ and
  $\kappa$: the model of every smooth minimum, where $\gamma < 2/\lambda_{\max}$ is exact;
  `rotated_quadratic` is the same valley turned by 45°, where no per-coordinate scale fits;
* `rosenbrock(a, b)` — a curved, narrow valley with the minimum at $(a, a^2)$;
* `saddle()` — $f = \tfrac12 x^2 + \tfrac14 y^4 - \tfrac12 y^2$: a saddle at the origin between
  two minima at $(0, \pm 1)$;
* `noisy_quadratic(condition_number, noise)` — the quadratic, but the gradient that optimizers
  see carries Gaussian noise, as a minibatch gradient does.

`run_optimizer` runs any optimizer of `helpers.optim` on a surface and returns the path, the
losses, and whether (and when) it diverged; `assess` says how a run ended, judged on
$f - f^*$ (minimum reached, still decreasing, hovering, stalled at a saddle point, grew,
diverged); `stable_learning_rate` gives the largest learning rate for which gradient descent
(with heavy-ball or Nesterov momentum) converges on a quadratic, and `contraction_rate` the
factor by which its error shrinks per step. These are the pure computations behind the
learning-rate explorer in `helpers.widgets`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

import torch
from torch import Tensor

from helpers.optim import OPTIMIZERS

__all__ = ["Surface", "quadratic", "rotated_quadratic", "rosenbrock", "saddle", "noisy_quadratic",
           "SURFACES", "SURFACE_KNOBS", "make_surface", "Trajectory", "run_optimizer",
           "stable_learning_rate", "contraction_rate", "symmetric_eigenvalues_2x2",
           "DIVERGENCE_RADIUS", "DIVERGENCE_GROWTH", "grid", "loss_range", "Outcome", "assess",
           "Exploration", "explore", "KNOBS", "knob_options"]


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

    name = f"quadratic, condition number {condition_number:g}"
    if angle:
        name += f", rotated {math.degrees(angle):g}°"
    return Surface(name, value, gradient, hessian, start=(-4.0, 1.5), xlim=(-5.0, 5.0),
                   ylim=(-3.0, 3.0), minima=((0.0, 0.0),), quadratic=True)


def rotated_quadratic(condition_number: float = 50.0, angle: float = math.pi / 4) -> Surface:
    r"""`quadratic(condition_number, angle)`: the ill-conditioned valley turned by `angle` (45°).

    $A = R_\alpha \operatorname{diag}(1, \kappa) R_\alpha^\top$ has off-diagonal entries
    $(1 - \kappa)\sin\alpha\cos\alpha$: the steep direction mixes both coordinates, so no
    per-coordinate step size (Adagrad, RMSprop, Adam) can undo the conditioning, while
    gradient descent, which is rotation-invariant, behaves exactly as on the axis-aligned valley.
    """
    return quadratic(condition_number, angle)


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


SURFACES: dict[str, Callable[..., Surface]] = {
    "quadratic": quadratic,
    "rotated quadratic": rotated_quadratic,
    "rosenbrock": rosenbrock,
    "saddle": saddle,
    "noisy quadratic": noisy_quadratic,
}
"""Every surface by name, built with its default arguments when called."""

SURFACE_KNOBS: dict[str, tuple[str, ...]] = {
    "quadratic": ("condition_number",),
    "rotated quadratic": ("condition_number", "angle"),
    "rosenbrock": (),
    "saddle": (),
    "noisy quadratic": ("condition_number",),
}
"""The arguments of each surface that the learning-rate explorer offers as controls."""


def make_surface(name: str, **knobs) -> Surface:
    """`SURFACES[name](**knobs)`, passing on only the knobs of `SURFACE_KNOBS[name]` (the others
    are ignored, so that one set of controls can serve every surface)."""
    if name not in SURFACES:
        raise ValueError(f"expected a surface among {list(SURFACES)}, but got {name!r}")
    return SURFACES[name](**{key: knobs[key] for key in SURFACE_KNOBS[name] if key in knobs})


# --------------------------------------------------------------------------------------------
# Optimizers on surfaces
# --------------------------------------------------------------------------------------------

DIVERGENCE_RADIUS = 1e6
DIVERGENCE_GROWTH = 1e3
"""A run has diverged when its iterate leaves [-1e6, 1e6]² or stops being finite, or when its gap
f - f* is beyond 1000 times the gap at the start *for good*: from some step to the end of the run,
and still there after as many steps again (a run that climbs that high and comes back down, as
Adam does at a large learning rate, has not diverged)."""


@dataclass(frozen=True)
class Trajectory:
    """Where an optimizer went: `points` `(n + 1, 2)` and `losses` `(n + 1,)`, start included.

    A run that diverges is cut where it diverged: `diverged_at` is the first step of its final
    stretch beyond `DIVERGENCE_GROWTH` times the starting gap (or the step at which it left the
    bounds, if that came first); None if it never diverged. `points` ends at that step.
    """

    points: Tensor
    losses: Tensor
    diverged_at: int | None

    @property
    def diverged(self) -> bool:
        return self.diverged_at is not None


def _left_bounds(position: Tensor) -> bool:
    """Whether a coordinate is beyond `DIVERGENCE_RADIUS` or not finite (NaN fails every <=)."""
    return not bool(position.abs().max() <= DIVERGENCE_RADIUS)


def _final_stretch_beyond(gaps: Tensor, limit: float) -> int | None:
    """The first index of the final stretch of `gaps` beyond `limit` (NaN counts as beyond), or
    None when the last gap is within it."""
    beyond = ~(gaps <= limit)
    if not beyond[-1]:
        return None
    within = (~beyond).nonzero()
    return int(within[-1]) + 1 if len(within) else 0


def run_optimizer(surface: Surface, optimizer: str = "SGD", lr: float = 0.1,
                  steps: int = 50, start: tuple[float, float] | None = None, *,
                  seed: int = 0, **options) -> Trajectory:
    """Run `helpers.optim.<optimizer>(lr=lr, **options)` for `steps` steps on `surface`.

    The gradient is the surface's hand-written one (with its noise, drawn from a generator seeded
    with `seed`, on a noisy surface). Starts at `start` (default: the surface's own). A run that
    leaves the bounds stops there; one that ends beyond `DIVERGENCE_GROWTH` times its starting gap
    is run on for as many steps again, to tell a spike from a divergence (see
    `DIVERGENCE_GROWTH`). A diverged run is returned up to the step at which it diverged; any
    other run is returned whole, with its `steps` steps and no more.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"expected an optimizer among {list(OPTIMIZERS)}, but got {optimizer!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"expected a non-negative integer number of steps, but got {steps!r}")
    position = _points(surface.start if start is None else start).detach().clone()
    if position.shape != (2,):
        raise ValueError(f"expected a start point (x, y), but got shape {tuple(position.shape)}")
    step_fn = OPTIMIZERS[optimizer][0]([position], lr=lr, **options)
    # the optimizer's own update for its one tensor: what step() does, without the hooks that
    # torch.optim.Optimizer wraps around every step (they cost as much as the update here)
    update, group = partial(step_fn._update, position), step_fn.param_groups[0]
    generator = torch.Generator().manual_seed(seed)
    lowest = surface.minimum_value
    limit = max(DIVERGENCE_GROWTH * (surface(position).item() - lowest), 1e-12)

    @torch.no_grad()
    def advance(count: int) -> tuple[list[Tensor], int | None]:
        """`count` more iterates; stops after one that leaves the bounds (its step returned).
        The bounds are checked every 10 steps (a check costs as much as a step), then the
        first iterate out of them is found among the last 10."""
        iterates = []
        for index in range(1, count + 1):
            update(surface.stochastic_gradient(position, generator), group)
            iterates.append(position.clone())
            if (index % 10 == 0 or index == count) and _left_bounds(position):
                first = next(i for i in range(max(index - 10, 0), index)
                             if _left_bounds(iterates[i]))
                return iterates[:first + 1], first + 1
        return iterates, None

    first = position.clone()
    iterates, left_at = advance(steps)
    points = torch.stack([first, *iterates])
    losses = surface(points)  # one evaluation for the whole path
    diverged_at = _final_stretch_beyond(losses - lowest, limit)
    if diverged_at is not None and left_at is None:
        # beyond the limit at the end: run on as long again; coming back down makes it a spike
        more, left_later = advance(steps)
        if left_later is None and bool((surface(torch.stack(more)) - lowest <= limit).any()):
            diverged_at = None
    if diverged_at is None and left_at is not None:
        diverged_at = left_at
    if diverged_at is not None:
        points, losses = points[:diverged_at + 1], losses[:diverged_at + 1]
    return Trajectory(points, losses, diverged_at)


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


def contraction_rate(surface: Surface, lr: float, momentum: float = 0.0,
                     nesterov: bool = False) -> float | None:
    r"""The factor by which SGD shrinks its error per step on a quadratic, in the long run.

    Along an eigenvector with eigenvalue $\lambda_i$, plain gradient descent multiplies the error
    by $1 - \gamma\lambda_i$, so the rate is $\rho = \max_i |1 - \gamma\lambda_i|$: below 1 iff
    $\gamma < 2/\lambda_{\max}$. With torch's momentum (buffer $b_t = \mu b_{t-1} + g_t$) the
    error and the buffer evolve by a 2x2 matrix per eigenvalue,

    .. math::
        \begin{pmatrix} 1 - \gamma\lambda & -\gamma\mu \\ \lambda & \mu \end{pmatrix}
        \text{ (heavy ball)}, \qquad
        \begin{pmatrix} 1 - \gamma\lambda(1 + \mu) & -\gamma\mu^2 \\ \lambda & \mu \end{pmatrix}
        \text{ (Nesterov)},

    with trace $\tau$ and determinant $\delta$ ($\mu$, resp. $\mu(1 - \gamma\lambda)$), and
    $\rho$ is the largest modulus of the roots of $z^2 - \tau z + \delta$ over the eigenvalues.
    None for a surface that is not quadratic.
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"expected 0 <= momentum < 1, but got {momentum!r}")
    if not surface.quadratic:
        return None
    rates = []
    for curvature in surface.hessian_eigenvalues(torch.zeros(2, dtype=torch.float64)).tolist():
        step = lr * curvature  # gamma * lambda_i
        if momentum == 0:
            rates.append(abs(1 - step))  # |1 - gamma lambda_i|
            continue
        trace = 1 - step * (1 + momentum) + momentum if nesterov else 1 - step + momentum
        determinant = momentum * (1 - step) if nesterov else momentum
        discriminant = trace * trace / 4 - determinant
        if discriminant >= 0:  # two real roots trace/2 -+ sqrt(discriminant)
            rates.append(abs(trace) / 2 + math.sqrt(discriminant))
        else:  # complex conjugates of modulus sqrt(determinant)
            rates.append(math.sqrt(determinant))
    return max(rates)


# --------------------------------------------------------------------------------------------
# How a run ended
# --------------------------------------------------------------------------------------------

MINIMUM_REACHED = 1e-6
"""A run has reached the minimum once f - f* is below this fraction of its starting value."""
STALLED_GRADIENT = 1e-4
"""A run has stalled at a stationary point once |grad f| is below this fraction of its value at
the start (and f - f* is not yet negligible)."""


@dataclass(frozen=True)
class Outcome:
    r"""How a run ended, judged on the gap $f - f^*$ to the lowest value of the surface.

    `kind` is one of "diverged", "saddle" (stalled where the Hessian has a negative eigenvalue),
    "stationary" (stalled at a stationary point that is not the lowest minimum), "grew" (the gap
    is larger than at the start), "minimum" (the gap fell below `MINIMUM_REACHED` times its start),
    "hovering" (over the last quarter of the run the gap went up and down without shrinking
    tenfold), or "decreasing". `text` says it in words, with the numbers it rests on.
    """

    kind: str
    text: str
    start_gap: float
    end_gap: float
    eigenvalues: tuple[float, float]  # of the Hessian at the last point

    @property
    def short(self) -> str:
        """The verdict in a few words, for a figure's title: 'decreasing, f - f* 4.91'."""
        if self.kind == "diverged":
            return self.text
        words = {"minimum": "reached the minimum", "saddle": "stalled at a saddle point",
                 "stationary": "stalled, not at the minimum"}.get(self.kind, self.kind)
        return f"{words}, f - f* {_g(self.end_gap)}"

    @property
    def good(self) -> bool | None:
        """True for "minimum" and "decreasing", False for "diverged" and "grew", None for the
        runs that neither diverge nor get anywhere (hovering, stalled)."""
        return {"minimum": True, "decreasing": True, "diverged": False, "grew": False}.get(
            self.kind)


def _g(x: float) -> str:
    return f"{x:.3g}"


def _near_stationary(surface: Surface, point: Tensor, share: float = 0.05) -> bool:
    """Whether the Newton step to the nearest stationary point, H^-1 grad f, is shorter than
    `share` of the diagonal of the surface's view."""
    hessian, gradient = surface.hessian(point), surface.gradient(point)
    if torch.linalg.det(hessian).abs() < 1e-12:
        return False
    reach = math.hypot(surface.xlim[1] - surface.xlim[0], surface.ylim[1] - surface.ylim[0])
    return torch.linalg.solve(hessian, gradient).norm().item() <= share * reach


def assess(surface: Surface, trajectory: Trajectory) -> Outcome:
    r"""Judge a run of `run_optimizer` by $f - f^*$, the gradient and the Hessian at its end.

    The first that holds, with $\Delta_t = f(\theta_t) - f^*$ and $T$ the last step:

    1. "diverged": `trajectory.diverged` (see `DIVERGENCE_GROWTH`);
    2. "saddle": the Hessian at $\theta_T$ has a negative eigenvalue and the run has stalled
       there: $\lVert\nabla f(\theta_T)\rVert \le$ `STALLED_GRADIENT`
       $\cdot\lVert\nabla f(\theta_0)\rVert$, or $\Delta$ stayed within 10% over the last
       quarter of the steps while a Newton step $\lVert(\nabla^2 f)^{-1}\nabla f\rVert$ from
       $\theta_T$ is under 5% of the view's diagonal (it sits next to the stationary point);
       "stationary": the gradient is that small where the Hessian has no
       negative eigenvalue but $\Delta_T >$ `MINIMUM_REACHED`$\cdot\Delta_0$ (a stationary
       point that is not the lowest);
    3. "grew": $\Delta_T > \Delta_0$;
    4. "minimum": $\Delta_T \le$ `MINIMUM_REACHED`$\cdot\Delta_0$;
    5. "hovering": over the last quarter of the steps the gap rose at least once and shrank by
       less than a factor 10;
    6. "decreasing".
    """
    lowest = surface.minimum_value
    gaps = (trajectory.losses - lowest).tolist()
    start, end = gaps[0], gaps[-1]
    last = trajectory.points[-1]
    eigenvalues = tuple(surface.hessian_eigenvalues(last).tolist())
    fall = f"f - f* {_g(start)} -> {_g(end)}"
    if trajectory.diverged:
        return Outcome("diverged", f"diverged at step {trajectory.diverged_at}", start, end,
                       eigenvalues)
    gradient = surface.gradient(last).norm().item()
    stalled = gradient <= STALLED_GRADIENT * surface.gradient(trajectory.points[0]).norm().item()
    quarter = gaps[-max(len(gaps) // 4, 2):]
    flat = len(gaps) > 2 and max(quarter) <= 1.1 * min(quarter) and _near_stationary(surface, last)
    curvature = f"Hessian eigenvalues {_g(eigenvalues[0])}, {_g(eigenvalues[1])}"
    if eigenvalues[0] < 0 and (stalled or flat) and end > MINIMUM_REACHED * start:
        return Outcome("saddle", f"stalled at a saddle point (gradient {gradient:.1g}, "
                       f"{curvature}), not at the minimum: f - f* stays {_g(end)}", start, end,
                       eigenvalues)
    if stalled and end > MINIMUM_REACHED * start:
        return Outcome("stationary", f"stalled at a stationary point (gradient {gradient:.1g}, "
                       f"{curvature}) that is not the lowest: f - f* stays {_g(end)}", start, end,
                       eigenvalues)
    if end > start:
        return Outcome("grew", f"f - f* grew: {_g(start)} -> {_g(end)}", start, end, eigenvalues)
    if end <= MINIMUM_REACHED * start:
        return Outcome("minimum", f"reached the minimum: {fall}", start, end, eigenvalues)
    rose = any(b > a for a, b in zip(quarter, quarter[1:]))
    if rose and end > 0.1 * quarter[0]:
        return Outcome("hovering", f"hovering: f - f* between {_g(min(quarter))} and "
                       f"{_g(max(quarter))} over the last {len(quarter) - 1} steps (started at "
                       f"{_g(start)})", start, end, eigenvalues)
    return Outcome("decreasing", f"decreasing: {fall}", start, end, eigenvalues)


# --------------------------------------------------------------------------------------------
# The explorer's frame
# --------------------------------------------------------------------------------------------

KNOBS: dict[str, tuple[str, ...]] = {
    "SGD": ("momentum", "nesterov"),
    "Adagrad": (),
    "RMSprop": ("alpha", "momentum"),
    "Adam": ("betas",),
    "AdamW": ("betas", "weight_decay"),
}
"""The options of each optimizer that the learning-rate explorer offers besides `lr`."""


def knob_options(optimizer: str, *, momentum: float = 0.0, nesterov: bool = False,
                 alpha: float = 0.99, beta1: float = 0.9, beta2: float = 0.999,
                 weight_decay: float = 1e-2) -> dict:
    """The keyword arguments for `optimizer` from every knob of the explorer: only its own knobs.

    Nesterov needs momentum, so `nesterov` is passed on only while `momentum > 0`.
    `weight_decay` (AdamW's decoupled decay) defaults to torch's 0.01.
    """
    if optimizer not in KNOBS:
        raise ValueError(f"expected an optimizer among {list(KNOBS)}, but got {optimizer!r}")
    every = {"momentum": momentum, "nesterov": bool(nesterov and momentum > 0), "alpha": alpha,
             "betas": (float(beta1), float(beta2)), "weight_decay": float(weight_decay)}
    return {name: every[name] for name in KNOBS[optimizer]}


@dataclass(frozen=True)
class Exploration:
    """One frame of the learning-rate explorer: the run, and what to say about it."""

    trajectory: Trajectory
    lr: float
    stable_lr: float | None  # the limit of `stable_learning_rate`, where one exists
    limit_formula: str = ""  # how that limit is written: "2/λmax", "2(1+μ)/λmax", ...
    outcome: Outcome | None = None  # `assess` of the run
    rate: float | None = None  # `contraction_rate`, where one exists
    rate_formula: str = ""  # how that rate is written: "max_i |1 - γλ_i|", ...

    @property
    def stable(self) -> bool | None:
        """Whether lr is below the stable limit (None where no limit is known)."""
        return None if self.stable_lr is None else self.lr < self.stable_lr

    @property
    def verdict(self) -> str:
        """How the run ended (`Outcome.text`): 'diverged at step 7', 'reached the minimum: ...',
        'stalled at a saddle point ...', ..."""
        if self.outcome is not None:
            return self.outcome.text
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

    @property
    def rate_text(self) -> str:
        """'per step contraction max_i |1 - γλ_i| = 0.5 < 1', or '' where no rate is known."""
        if self.rate is None:
            return ""
        relation = "< 1: converges" if self.rate < 1 else ">= 1: does not converge"
        return f"per step contraction {self.rate_formula} = {self.rate:.3g} {relation}"


def explore(surface: Surface, optimizer: str = "SGD", lr: float = 0.1, steps: int = 50,
            start: tuple[float, float] | None = None, **options) -> Exploration:
    """Run `optimizer` on `surface`, judge it (`assess`), and attach the stable limit and the
    per-step contraction (SGD on a quadratic only).

    `options` may hold only the knobs of `KNOBS[optimizer]`; everything else keeps its default.
    """
    if optimizer not in KNOBS:
        raise ValueError(f"expected an optimizer among {list(KNOBS)}, but got {optimizer!r}")
    unknown = set(options) - set(KNOBS[optimizer])
    if unknown:
        raise ValueError(f"expected options among {KNOBS[optimizer]} for {optimizer}, but got "
                         f"{sorted(unknown)}")
    path = run_optimizer(surface, optimizer, lr, steps, start, **options)
    outcome = assess(surface, path)
    if optimizer != "SGD" or not surface.quadratic:
        return Exploration(path, float(lr), None, outcome=outcome)
    momentum, nesterov = options.get("momentum", 0.0), options.get("nesterov", False)
    formula = ("2/λmax" if momentum == 0 else
               "2(1+μ)/((1+2μ)λmax)" if nesterov else "2(1+μ)/λmax")
    rate_formula = "max_i |1 - γλ_i|" if momentum == 0 else "ρ (with momentum)"
    return Exploration(path, float(lr), stable_learning_rate(surface, momentum, nesterov),
                       formula, outcome, contraction_rate(surface, lr, momentum, nesterov),
                       rate_formula)
