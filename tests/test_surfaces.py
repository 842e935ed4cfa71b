"""helpers.surfaces: hand-written derivatives against autograd, and optimizers run on surfaces."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import optim
from helpers.surfaces import (
    DIVERGENCE_GROWTH,
    SURFACES,
    assess,
    contraction_rate,
    grid,
    make_surface,
    noisy_quadratic,
    quadratic,
    rosenbrock,
    rotated_quadratic,
    run_optimizer,
    saddle,
    stable_learning_rate,
    symmetric_eigenvalues_2x2,
)

ALL = {
    "quadratic": quadratic(),
    "rotated quadratic": quadratic(condition_number=50.0, angle=0.7),
    "rotated_quadratic()": rotated_quadratic(),
    "rosenbrock": rosenbrock(),
    "rosenbrock a=2 b=10": rosenbrock(a=2.0, b=10.0),
    "saddle": saddle(),
    "noisy quadratic": noisy_quadratic(),
}
EXACT = dict(rtol=1e-12, atol=1e-12)


def random_points(n=64, seed=0):
    return 4 * torch.rand(n, 2, generator=torch.Generator().manual_seed(seed),
                          dtype=torch.float64) - 2


@pytest.mark.parametrize("name", ALL)
def test_gradient_equals_autograd(name):
    surface = ALL[name]
    points = random_points().requires_grad_(True)
    (autograd,) = torch.autograd.grad(surface(points).sum(), points)
    torch.testing.assert_close(surface.gradient(points.detach()), autograd, **EXACT)


@pytest.mark.parametrize("name", ALL)
def test_hessian_and_its_eigenvalues_equal_autograd_and_eigvalsh(name):
    surface = ALL[name]
    for point in random_points(16):
        autograd = torch.autograd.functional.hessian(surface, point)
        torch.testing.assert_close(surface.hessian(point), autograd, **EXACT)
        torch.testing.assert_close(surface.hessian_eigenvalues(point),
                                   torch.linalg.eigvalsh(autograd), **EXACT)


@pytest.mark.parametrize("name", ALL)
def test_the_minima_are_minima(name):
    surface = ALL[name]
    for minimum in surface.minima:
        point = torch.tensor(minimum, dtype=torch.float64)
        torch.testing.assert_close(surface.gradient(point), torch.zeros(2, dtype=torch.float64))
        assert (surface.hessian_eigenvalues(point) > 0).all()


def test_batched_shapes():
    points = random_points(12).reshape(3, 4, 2)
    for surface in ALL.values():
        assert surface(points).shape == (3, 4)
        assert surface.gradient(points).shape == (3, 4, 2)
        assert surface.hessian(points).shape == (3, 4, 2, 2)
        assert surface.hessian_eigenvalues(points).shape == (3, 4, 2)


@settings(max_examples=60, deadline=None)
@given(st.floats(-1e3, 1e3), st.floats(-1e3, 1e3), st.floats(-1e3, 1e3))
def test_closed_form_eigenvalues_of_any_symmetric_2x2(a, b, c):
    matrix = torch.tensor([[a, b], [b, c]], dtype=torch.float64)
    expected = torch.linalg.eigvalsh(matrix)
    torch.testing.assert_close(symmetric_eigenvalues_2x2(matrix), expected,
                               rtol=1e-12, atol=1e-9 * (1 + expected.abs().max().item()))


def test_condition_number_and_angle():
    surface = quadratic(condition_number=25.0, angle=math.pi / 6)
    eigenvalues = surface.hessian_eigenvalues(torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(eigenvalues, torch.tensor([1.0, 25.0], dtype=torch.float64))
    steep = torch.tensor([-math.sin(math.pi / 6), math.cos(math.pi / 6)], dtype=torch.float64)
    torch.testing.assert_close(surface(steep), torch.tensor(12.5, dtype=torch.float64))


def test_saddle_has_a_negative_eigenvalue_at_the_origin():
    eigenvalues = saddle().hessian_eigenvalues(torch.zeros(2, dtype=torch.float64))
    assert eigenvalues.tolist() == [-1.0, 1.0]


def test_noisy_gradient_is_unbiased_with_the_stated_variance():
    surface = noisy_quadratic(noise=0.5)
    point = torch.tensor([1.0, -1.0], dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    samples = torch.stack([surface.stochastic_gradient(point, generator) for _ in range(4000)])
    exact = surface.gradient(point)
    standard_error = 0.5 / math.sqrt(len(samples))
    assert ((samples.mean(0) - exact).abs() < 4 * standard_error).all()
    torch.testing.assert_close(samples.var(0), torch.full((2,), 0.25, dtype=torch.float64),
                               rtol=0.1, atol=0)
    assert torch.equal(quadratic().stochastic_gradient(point), quadratic().gradient(point))


def test_gradient_descent_on_a_quadratic_follows_the_closed_form():
    surface = quadratic(condition_number=10.0, angle=0.3)
    lr, steps = 0.15, 30
    path = run_optimizer(surface, "SGD", lr=lr, steps=steps)
    step_matrix = torch.eye(2, dtype=torch.float64) - lr * surface.hessian(path.points[0])
    expected = torch.linalg.matrix_power(step_matrix, steps) @ path.points[0]
    torch.testing.assert_close(path.points[-1], expected, **EXACT)
    torch.testing.assert_close(path.losses, surface(path.points))
    assert path.points.shape == (steps + 1, 2) and not path.diverged


def test_run_optimizer_uses_the_optimizers_of_helpers_optim():
    surface = rosenbrock()
    path = run_optimizer(surface, "Adam", lr=0.05, steps=20, betas=(0.8, 0.99))
    position = torch.tensor(surface.start, dtype=torch.float64)
    optimizer = optim.Adam([position], lr=0.05, betas=(0.8, 0.99))
    for _ in range(20):
        position.grad = surface.gradient(position)
        optimizer.step()
    torch.testing.assert_close(path.points[-1], position, rtol=0, atol=0)


@pytest.mark.parametrize("name, options", [
    ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True, weight_decay=0.1)),
    ("Adagrad", dict(lr=0.3, lr_decay=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5)),
    ("Adam", dict(lr=0.05, betas=(0.8, 0.99), amsgrad=True)),
    ("AdamW", dict(lr=0.05, weight_decay=0.5)),
])
def test_every_step_of_a_run_is_torchs_step(name, options):
    # the explorer calls the optimizer's update directly (no hooks): the same path as torch.optim
    surface = noisy_quadratic(noise=0.5)
    path = run_optimizer(surface, name, steps=30, seed=3, **options)
    position = torch.tensor(surface.start, dtype=torch.float64)
    reference = optim.OPTIMIZERS[name][1]([position], **options)
    generator = torch.Generator().manual_seed(3)
    for step in range(1, 31):
        position.grad = surface.stochastic_gradient(position.detach(), generator)
        reference.step()
        torch.testing.assert_close(path.points[step], position.detach(), rtol=0, atol=0)


def test_noise_is_seeded():
    surface = noisy_quadratic()
    first, again = (run_optimizer(surface, "SGD", lr=0.05, steps=20, seed=3) for _ in range(2))
    other = run_optimizer(surface, "SGD", lr=0.05, steps=20, seed=4)
    assert torch.equal(first.points, again.points)
    assert not torch.equal(first.points, other.points)


@pytest.mark.parametrize(("momentum", "nesterov"), [(0.0, False), (0.5, False), (0.9, False),
                                                    (0.5, True), (0.9, True)])
def test_the_stable_learning_rate_is_the_edge_of_divergence(momentum, nesterov):
    surface = quadratic(condition_number=10.0)
    limit = stable_learning_rate(surface, momentum, nesterov)
    options = dict(momentum=momentum, nesterov=nesterov, steps=3000)
    below = run_optimizer(surface, "SGD", lr=0.98 * limit, **options)
    above = run_optimizer(surface, "SGD", lr=1.02 * limit, **options)
    assert not below.diverged and below.losses[-1] < 1e-3 * below.losses[0]
    assert above.diverged and above.losses[above.diverged_at] > below.losses[0]


def test_stable_learning_rate_values():
    assert stable_learning_rate(quadratic(condition_number=10.0)) == pytest.approx(0.2)
    assert stable_learning_rate(quadratic(4.0), momentum=0.5) == pytest.approx(0.75)
    assert stable_learning_rate(rosenbrock()) is None
    assert stable_learning_rate(saddle()) is None


def test_divergence_stops_the_run_and_is_flagged():
    surface = quadratic(10.0)
    path = run_optimizer(surface, "SGD", lr=0.5, steps=500)
    assert path.diverged and path.points.shape == (path.diverged_at + 1, 2)
    assert path.losses.shape == (path.diverged_at + 1,)
    assert path.losses[-1] > 1e3 * path.losses[0] >= path.losses[-2]
    assert not run_optimizer(surface, "SGD", lr=0.19, steps=500).diverged


def test_surfaces_by_name():
    assert set(SURFACES) == {"quadratic", "rotated quadratic", "rosenbrock", "saddle",
                             "noisy quadratic"}
    for factory in SURFACES.values():
        surface = factory()
        assert surface(torch.tensor(surface.start)).isfinite()


@pytest.mark.parametrize(("call", "message"), [
    (lambda: quadratic()(torch.zeros(3)), r"expected points of shape \(..., 2\), but got \(3,\)"),
    (lambda: quadratic(condition_number=0.5), "expected condition_number >= 1, but got 0.5"),
    (lambda: noisy_quadratic(noise=-1.0), "expected noise >= 0, but got -1.0"),
    (lambda: run_optimizer(saddle(), "LBFGS"), "expected an optimizer among"),
    (lambda: run_optimizer(saddle(), steps=-1), "non-negative integer number of steps"),
    (lambda: run_optimizer(saddle(), start=(1.0, 2.0, 3.0)), "expected points of shape"),
    (lambda: run_optimizer(saddle(), start=[[1.0, 2.0]]), r"expected a start point \(x, y\)"),
    (lambda: stable_learning_rate(quadratic(), momentum=1.0), "expected 0 <= momentum < 1"),
])
def test_bad_input_says_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_grid_and_minimum_value():
    surface = saddle()
    X, Y, Z = grid(surface, 7)
    assert X.shape == Y.shape == Z.shape == (7, 7)
    assert (X[0, 0], X[0, -1], Y[0, 0], Y[-1, 0]) == (-2.5, 2.5, -1.8, 1.8)
    torch.testing.assert_close(Z, surface(torch.stack([X, Y], dim=-1)))
    assert surface.minimum_value == -0.25 and rosenbrock().minimum_value == 0.0
    assert Z.min() >= surface.minimum_value
    with pytest.raises(ValueError, match="expected an integer resolution >= 2, but got 1"):
        grid(surface, 1)


def test_the_rotated_quadratic_is_the_quadratic_turned_45_degrees():
    surface = rotated_quadratic(condition_number=20.0)
    hessian = surface.hessian(torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(torch.linalg.eigvalsh(hessian),
                               torch.tensor([1.0, 20.0], dtype=torch.float64), **EXACT)
    # the steep direction is the diagonal (-1, 1) / sqrt(2), so the coordinates are mixed
    diagonal = torch.tensor([-1.0, 1.0], dtype=torch.float64) / math.sqrt(2)
    torch.testing.assert_close(hessian @ diagonal, 20.0 * diagonal, **EXACT)
    assert hessian[0, 1].abs() > 9
    assert surface.name == "quadratic, condition number 20, rotated 45°"
    assert make_surface("rotated quadratic", condition_number=20.0, angle=math.pi / 4,
                        noise=3.0).name == surface.name  # knobs of other surfaces are ignored
    assert make_surface("rosenbrock", condition_number=5.0).name == rosenbrock().name


@pytest.mark.parametrize(("momentum", "nesterov"), [(0.0, False), (0.5, False), (0.9, False),
                                                    (0.5, True), (0.9, True)])
def test_the_contraction_rate_is_below_1_exactly_below_the_stable_limit(momentum, nesterov):
    surface = quadratic(condition_number=10.0, angle=0.4)
    limit = stable_learning_rate(surface, momentum, nesterov)
    assert contraction_rate(surface, 0.99 * limit, momentum, nesterov) < 1
    assert contraction_rate(surface, 1.01 * limit, momentum, nesterov) > 1


@pytest.mark.parametrize(("lr", "momentum", "nesterov"), [(0.05, 0.0, False), (0.19, 0.0, False),
                                                          (0.02, 0.7, False), (0.05, 0.5, True)])
def test_the_contraction_rate_is_the_measured_rate(lr, momentum, nesterov):
    surface = quadratic(condition_number=10.0, angle=0.4)
    path = run_optimizer(surface, "SGD", lr, 400, momentum=momentum, nesterov=nesterov)
    norms = path.points.norm(dim=1)
    measured = (norms[400] / norms[200]).item() ** (1 / 200)
    assert measured == pytest.approx(contraction_rate(surface, lr, momentum, nesterov), rel=0.01)
    # plain gradient descent: max_i |1 - lr * lambda_i| with lambda = 1, 10: max(0.85, 0.5)
    assert contraction_rate(surface, 0.15) == pytest.approx(0.85)
    assert contraction_rate(rosenbrock(), 0.1) is None


def test_a_spike_of_the_loss_is_not_a_divergence():
    """Adam at lr 3 on Rosenbrock: the loss jumps 1000-fold at step 2, then comes back down."""
    surface = rosenbrock()
    path = run_optimizer(surface, "Adam", 3.0, 200)
    assert path.losses.max() > DIVERGENCE_GROWTH * path.losses[0]
    assert not path.diverged and path.points.shape == (201, 2)
    assert path.losses[-1] < 0.1 and path.points[-50:].norm(dim=1).max() < 1.0
    assert assess(surface, path).kind == "hovering"


def test_a_divergence_is_cut_where_it_started_for_good():
    surface = quadratic(10.0)
    path = run_optimizer(surface, "SGD", lr=0.21, steps=50)
    # the loss grows 1.21-fold per step and never comes back: first beyond 1000x at step 40
    gaps = run_optimizer(surface, "SGD", lr=0.21, steps=40).losses
    assert path.diverged_at == 40 and gaps[-1] > 1e3 * gaps[0] > gaps[-2]
    nan_run = run_optimizer(rosenbrock(), "SGD", lr=2.5e-3, steps=300)  # leaves the bounds
    assert nan_run.diverged and nan_run.points[:-1].isfinite().all()


@pytest.mark.parametrize(("optimizer", "lr", "steps", "start", "kind"), [
    ("SGD", 0.5, 50, (-2.0, 0.0), "saddle"),  # y = 0 exactly: it never leaves the ridge
    ("Adam", 0.05, 300, (-2.0, 0.0), "saddle"),
    ("Adam", 0.05, 200, (-2.0, 0.01), "minimum"),
    ("RMSprop", 0.05, 200, (-2.0, 0.01), "hovering"),
])
def test_a_run_that_stalls_at_the_saddle_is_not_at_the_minimum(optimizer, lr, steps, start,
                                                                 kind):
    surface = saddle()
    path = run_optimizer(surface, optimizer, lr, steps, start)
    outcome = assess(surface, path)
    assert outcome.kind == kind, outcome.text
    if kind == "saddle":
        assert path.losses[-1] < path.losses[0]  # the loss itself went down ...
        assert outcome.end_gap == pytest.approx(0.25, abs=0.01)  # ... but f - f* stays 0.25
        assert outcome.eigenvalues[0] < 0 and outcome.good is None
        assert "saddle point" in outcome.text and "not at the minimum" in outcome.text


def test_a_loss_that_grew_is_not_good():
    surface = rosenbrock()
    path = run_optimizer(surface, "RMSprop", 0.56, 200)
    outcome = assess(surface, path)
    assert not path.diverged and path.losses[-1] > path.losses[0]
    assert outcome.kind == "grew" and outcome.good is False
    assert outcome.text == f"f - f* grew: 12.5 -> {path.losses[-1].item():.3g}"
