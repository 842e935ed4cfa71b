"""helpers.schedules against torch.optim.lr_scheduler, step by step, and the lr range test."""

import math

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler as torch_schedules

from helpers import optim as ours
from helpers import schedules as S

STEPS = 120


def optimizer(kind="sgd", lrs=(0.1, 0.03)):
    """Two parameter groups with different base rates, so per-group handling is tested; "ours-"
    kinds are helpers.optim's optimizers."""
    groups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    library = ours if kind.startswith("ours-") else torch.optim
    if kind.endswith("adam"):
        return library.Adam(groups, lr=lrs[0])
    return library.SGD(groups, lr=lrs[0], momentum=0.9)


def trajectory(make, kind="sgd", steps=STEPS):
    """Learning rates (and momenta) of every group after construction and after every step."""
    opt = optimizer(kind)
    scheduler = make(opt)
    rows = []
    for _ in range(steps):
        momenta = [g["betas"][0] if "betas" in g else g["momentum"] for g in opt.param_groups]
        rows.append(([g["lr"] for g in opt.param_groups], scheduler.get_last_lr(), momenta))
        opt.step()
        scheduler.step()
    return rows


def assert_same_schedule(ours, theirs, kind="sgd", steps=STEPS):
    """Our schedule on a `kind` optimizer, torch's on torch's optimizer of the same kind."""
    reference_kind = kind.removeprefix("ours-")
    for step, (mine, reference) in enumerate(zip(trajectory(ours, kind, steps),
                                                 trajectory(theirs, reference_kind, steps))):
        for a, b in zip(mine, reference):
            assert a == pytest.approx(b, rel=1e-12, abs=1e-15), f"step {step}: {a} != {b}"


SCHEDULES = {
    "StepLR": (lambda o: S.StepLR(o, step_size=7, gamma=0.5),
               lambda o: torch_schedules.StepLR(o, step_size=7, gamma=0.5)),
    "MultiStepLR": (lambda o: S.MultiStepLR(o, milestones=[50, 10, 30, 30], gamma=0.3),
                    lambda o: torch_schedules.MultiStepLR(o, milestones=[50, 10, 30, 30],
                                                          gamma=0.3)),
    "ExponentialLR": (lambda o: S.ExponentialLR(o, gamma=0.97),
                      lambda o: torch_schedules.ExponentialLR(o, gamma=0.97)),
    "LinearLR": (lambda o: S.LinearLR(o, start_factor=0.1, end_factor=0.9, total_iters=40),
                 lambda o: torch_schedules.LinearLR(o, start_factor=0.1, end_factor=0.9,
                                                    total_iters=40)),
    "LinearLR defaults": (S.LinearLR, torch_schedules.LinearLR),
    "CosineAnnealingLR": (lambda o: S.CosineAnnealingLR(o, T_max=50, eta_min=1e-3),
                          lambda o: torch_schedules.CosineAnnealingLR(o, T_max=50,
                                                                      eta_min=1e-3)),
    "warm-up then cosine": (
        lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.01, total_iters=10),
                                     S.CosineAnnealingLR(o, T_max=110)], milestones=[10]),
        lambda o: torch_schedules.SequentialLR(
            o, [torch_schedules.LinearLR(o, start_factor=0.01, total_iters=10),
                torch_schedules.CosineAnnealingLR(o, T_max=110)], milestones=[10])),
    # torch takes floats where its docs say int; its step() decays at t % step_size == 0
    "StepLR step_size=2.5 (every 5 steps)": (
        lambda o: S.StepLR(o, step_size=2.5, gamma=0.9),
        lambda o: torch_schedules.StepLR(o, step_size=2.5, gamma=0.9)),
    "StepLR step_size=0.5 (every step)": (
        lambda o: S.StepLR(o, step_size=0.5, gamma=0.97),
        lambda o: torch_schedules.StepLR(o, step_size=0.5, gamma=0.97)),
    "StepLR step_size=0.1 (never)": (lambda o: S.StepLR(o, step_size=0.1),
                                     lambda o: torch_schedules.StepLR(o, step_size=0.1)),
    "StepLR step_size=7.0": (lambda o: S.StepLR(o, step_size=7.0, gamma=0.5),
                             lambda o: torch_schedules.StepLR(o, step_size=7.0, gamma=0.5)),
    "MultiStepLR unreachable milestones": (
        lambda o: S.MultiStepLR(o, milestones=[2.5, 10, 10.0, -1, 0, 30.0], gamma=0.5),
        lambda o: torch_schedules.MultiStepLR(o, milestones=[2.5, 10, 10.0, -1, 0, 30.0],
                                              gamma=0.5)),
    "LinearLR total_iters=2.5": (
        lambda o: S.LinearLR(o, start_factor=0.1, total_iters=2.5),
        lambda o: torch_schedules.LinearLR(o, start_factor=0.1, total_iters=2.5)),
    "LinearLR total_iters=40.0": (
        lambda o: S.LinearLR(o, start_factor=0.1, total_iters=40.0),
        lambda o: torch_schedules.LinearLR(o, start_factor=0.1, total_iters=40.0)),
    "CosineAnnealingLR T_max=100.0": (
        lambda o: S.CosineAnnealingLR(o, T_max=100.0, eta_min=1e-3),
        lambda o: torch_schedules.CosineAnnealingLR(o, T_max=100.0, eta_min=1e-3)),
    "CosineAnnealingLR T_max=2.5": (
        lambda o: S.CosineAnnealingLR(o, T_max=2.5, eta_min=1e-3),
        lambda o: torch_schedules.CosineAnnealingLR(o, T_max=2.5, eta_min=1e-3)),
    "three schedules": (
        lambda o: S.SequentialLR(o, [S.LinearLR(o, 0.2, total_iters=5),
                                     S.ExponentialLR(o, 0.9), S.StepLR(o, 4)], [20, 60]),
        lambda o: torch_schedules.SequentialLR(
            o, [torch_schedules.LinearLR(o, 0.2, total_iters=5),
                torch_schedules.ExponentialLR(o, 0.9), torch_schedules.StepLR(o, 4)], [20, 60])),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_equals_torch_at_every_step(name):
    mine, theirs = SCHEDULES[name]
    assert_same_schedule(mine, theirs)


@pytest.mark.parametrize("kind", ["ours-sgd", "ours-adam"])
@pytest.mark.parametrize("name", SCHEDULES)
def test_schedule_drives_helpers_optim_as_torch_optim(name, kind):
    mine, theirs = SCHEDULES[name]
    assert_same_schedule(mine, theirs, kind=kind)


@pytest.mark.parametrize("kind", ["sgd", "adam", "ours-sgd", "ours-adam"])
@pytest.mark.parametrize("options", [
    {},
    {"anneal_strategy": "linear"},
    {"three_phase": True, "pct_start": 0.25},
    {"cycle_momentum": False, "div_factor": 10.0, "final_div_factor": 100.0},
    {"max_lr": [0.5, 0.2], "base_momentum": [0.8, 0.7], "max_momentum": 0.9},
])
def test_one_cycle_equals_torch_including_momentum(kind, options):
    options = {"max_lr": 0.4, **options}
    assert_same_schedule(lambda o: S.OneCycleLR(o, total_steps=STEPS, **options),
                         lambda o: torch_schedules.OneCycleLR(o, total_steps=STEPS, **options),
                         kind=kind)


def test_one_cycle_from_epochs_and_refuses_to_overrun():
    opt = optimizer()
    scheduler = S.OneCycleLR(opt, max_lr=1.0, epochs=2, steps_per_epoch=5)
    assert scheduler.total_steps == 10
    for _ in range(10):
        scheduler.step()
    with pytest.raises(ValueError, match="Tried to step 11 times"):
        scheduler.step()


def test_a_cosine_with_t_max_off_by_one_is_caught():
    class OffByOne(S.CosineAnnealingLR):
        def _lr(self, base_lr, step):
            return super()._lr(base_lr, step) if step == 0 else self.eta_min + (
                base_lr - self.eta_min) * (1 + math.cos(math.pi * step / (self.T_max + 1))) / 2

    with pytest.raises(AssertionError, match="step 1"):
        assert_same_schedule(lambda o: OffByOne(o, T_max=50),
                             lambda o: torch_schedules.CosineAnnealingLR(o, T_max=50))


def test_a_warm_up_that_ends_one_step_late_is_caught():
    with pytest.raises(AssertionError):
        assert_same_schedule(lambda o: S.LinearLR(o, start_factor=0.1, total_iters=11),
                             lambda o: torch_schedules.LinearLR(o, start_factor=0.1,
                                                                total_iters=10))


def test_state_dict_round_trip_continues_identically():
    opt = optimizer()
    scheduler = S.CosineAnnealingLR(opt, T_max=30)
    for _ in range(12):
        scheduler.step()
    saved = scheduler.state_dict()
    assert "optimizer" not in saved
    resumed_opt = optimizer()
    for group, original in zip(resumed_opt.param_groups, opt.param_groups):
        group["initial_lr"] = original["initial_lr"]
    resumed = S.CosineAnnealingLR(resumed_opt, T_max=30, last_epoch=0)
    resumed.load_state_dict(saved)
    for _ in range(10):
        scheduler.step()
        resumed.step()
        assert resumed.get_last_lr() == scheduler.get_last_lr()


def test_sequential_state_dict_keeps_its_schedulers():
    opt = optimizer()
    warm = S.SequentialLR(opt, [S.LinearLR(opt), S.ExponentialLR(opt, 0.5)], [5])
    state = warm.state_dict()
    assert len(state["schedulers"]) == 2 and "optimizer" not in state["schedulers"][0]
    warm.load_state_dict(state)


def test_a_float_step_size_decays_where_torch_decays():
    """torch's StepLR.step() decays when t % step_size == 0: for 2.5 at t = 5, 10, ..., not at
    floor(t / 2.5) as its closed form (and a naive port) would."""
    for step_size, decays in ((2.5, [5, 10, 15]), (1.5, [3, 6, 9, 12, 15])):
        lrs = S.lr_sequence(lambda o, s=step_size: S.StepLR(o, s, 0.5), 1.0, 16)
        assert lrs == S.lr_sequence(lambda o, s=step_size: torch_schedules.StepLR(o, s, 0.5),
                                    1.0, 16)
        assert [t for t in range(1, 16) if lrs[t] < lrs[t - 1]] == decays
        closed_form = [0.5 ** (t // step_size) for t in range(16)]
        assert lrs != closed_form


def test_lr_sequence_matches_a_manual_loop():
    lrs = S.lr_sequence(lambda o: S.StepLR(o, step_size=2, gamma=0.5), 1.0, 6)
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


@pytest.mark.parametrize("make, message", [
    (lambda o: S.LinearLR(o, start_factor=0.0), "Starting multiplicative factor"),
    (lambda o: S.LinearLR(o, end_factor=1.5), "Ending multiplicative factor"),
    (lambda o: S.StepLR(o, step_size=0),
     r"Expected positive step_size \(an int, or a float such as 2.5\), but got 0"),
    (lambda o: S.StepLR(o, step_size=-3), "Expected positive step_size .* but got -3"),
    (lambda o: S.StepLR(o, step_size="3"), "Expected positive step_size .* but got '3'"),
    (lambda o: S.CosineAnnealingLR(o, T_max=0), "Expected positive T_max .* but got 0"),
    (lambda o: S.CosineAnnealingLR(o, T_max=math.inf), "Expected positive T_max .* but got inf"),
    (lambda o: S.CosineAnnealingLR(o, T_max=True), "Expected positive T_max .* but got True"),
    (lambda o: S.LinearLR(o, total_iters=0), "Expected positive total_iters .* but got 0"),
    (lambda o: S.OneCycleLR(o, max_lr=1.0), "either total_steps OR"),
    (lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1), "pct_start"),
    (lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="exp"),
     "anneal_strategy must be one of"),
    (lambda o: S.OneCycleLR(o, max_lr=[1.0], total_steps=10), "expected 2 values for max_lr"),
    (lambda o: S.SequentialLR(o, [S.StepLR(o, 3)], milestones=[3]), "one milestone fewer"),
])
def test_bad_arguments_are_explained(make, message):
    with pytest.raises(ValueError, match=message):
        make(optimizer())


def test_one_cycle_needs_momentum_to_cycle():
    plain = torch.optim.Adagrad([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="momentum or beta1"):
        S.OneCycleLR(plain, max_lr=1.0, total_steps=5)


def test_not_an_optimizer_is_named():
    with pytest.raises(TypeError, match="expected an optimizer with param_groups .* got list"):
        S.StepLR([], step_size=3)


# --------------------------------------------------------------------------------------------
# The learning-rate range test
# --------------------------------------------------------------------------------------------


def regression_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.1 * torch.randn(256, 1, generator=g)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 256, 32)]
    torch.manual_seed(0)
    return torch.nn.Linear(4, 1), batches


def test_geometric_learning_rates():
    lrs = S.geometric_lrs(1e-4, 1.0, 5)
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1.0])
    with pytest.raises(ValueError, match="expected 0 < start_lr < end_lr"):
        S.geometric_lrs(1.0, 1e-3, 10)


def test_smoothing_is_bias_corrected():
    assert S.smooth_losses([2.0, 2.0, 2.0], smoothing=0.1) == pytest.approx([2.0, 2.0, 2.0])


def test_range_test_finds_descent_and_divergence_and_restores_everything():
    model, batches = regression_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.123, momentum=0.9)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = S.lr_range_test(model, opt, torch.nn.functional.mse_loss, batches,
                             start_lr=1e-4, end_lr=10.0, num_iter=60)
    assert result.divergence_lr is not None and result.divergence_lr > 0.1
    assert len(result.losses) < 60 and result.lrs[-1] == result.divergence_lr
    assert 1e-3 < result.steepest_lr < result.divergence_lr
    assert min(result.smoothed) < result.smoothed[0] / 2
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])
    assert opt.param_groups[0]["lr"] == 0.123 and not opt.state


def test_range_test_restores_even_when_training_fails():
    model, batches = regression_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    before = model.weight.detach().clone()

    def failing_loss(prediction, target):
        if failing_loss.calls == 3:
            raise RuntimeError("boom")
        failing_loss.calls += 1
        return torch.nn.functional.mse_loss(prediction, target)

    failing_loss.calls = 0
    with pytest.raises(RuntimeError, match="boom"):
        S.lr_range_test(model, opt, failing_loss, batches, start_lr=1e-2, end_lr=1.0)
    assert torch.equal(model.weight, before) and opt.param_groups[0]["lr"] == 0.5


def test_range_test_cycles_short_data_and_refuses_empty_data():
    model, batches = regression_problem()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    result = S.lr_range_test(model, opt, torch.nn.functional.mse_loss, batches[:2],
                             start_lr=1e-5, end_lr=1e-3, num_iter=20)
    assert len(result.losses) == 20 and result.divergence_lr is None
    with pytest.raises(ValueError, match="at least one batch"):
        S.lr_range_test(model, opt, torch.nn.functional.mse_loss, [], num_iter=5)


def test_range_test_restores_the_mode_of_every_module():
    model, batches = regression_problem()
    model = torch.nn.Sequential(torch.nn.Dropout(0.0), model)
    model.eval()
    model[0].train()  # a mixed model: one module in training mode, the rest in eval mode
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    S.lr_range_test(model, opt, torch.nn.functional.mse_loss, batches, start_lr=1e-5,
                    end_lr=1e-3, num_iter=5)
    assert [m.training for m in model.modules()] == [False, True, False]


def two_drops(lr: float) -> float:
    """A synthetic loss curve against the learning rate: a gentle drop around 1e-3 (0.6 per
    decade at its steepest) and a steep one around 1e-1 (5 per decade). Per decade of lr the
    steepest point is 1e-1; per unit of lr (d loss / d lr = slope per decade / (lr ln 10)) the
    gentle drop wins by about 12 times, near 1e-3."""
    x = math.log10(lr)
    return 3.0 - 0.3 * math.tanh((x + 3) / 0.5) - math.tanh((x + 1) / 0.2)


def test_the_steepest_rate_is_per_decade_of_learning_rate():
    lrs = S.geometric_lrs(1e-5, 10.0, 61)  # 10 points per decade: 1e-3 and 1e-1 on the grid
    losses = [two_drops(lr) for lr in lrs]
    assert S.steepest_descent_lr(lrs, losses) == pytest.approx(1e-1)
    per_unit = np.gradient(np.asarray(losses), np.asarray(lrs))  # the wrong slope
    assert 1e-4 < lrs[int(np.argmin(per_unit))] < 2e-3  # picks the gentle drop


def test_the_range_test_reports_the_steepest_rate_per_decade():
    """The same curve through lr_range_test: the loss of each step is the curve at the rate the
    optimizer holds (smoothing=1 records it unsmoothed)."""
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)

    def loss_fn(prediction, target):
        return 0.0 * prediction.sum() + two_drops(opt.param_groups[0]["lr"])

    batch = (torch.zeros(1, 1), torch.zeros(1, 1))
    result = S.lr_range_test(model, opt, loss_fn, [batch], start_lr=1e-5, end_lr=10.0,
                             num_iter=61, smoothing=1.0, skip_start=0, diverge_threshold=100.0)
    assert result.smoothed == pytest.approx([two_drops(lr) for lr in result.lrs])
    assert result.divergence_lr is None and result.steepest_lr == pytest.approx(1e-1)
    assert opt.param_groups[0]["lr"] == 0.5
