"""helpers.optim against torch.optim: 200 steps, parameters and state after every step."""

import inspect
import io
from functools import partial

import pytest
import torch

from helpers import optim
from helpers.optim import (
    CHECKED_OPTIONS,
    OPTIMIZER_CHECKS,
    OPTIMIZERS,
    check_optimizer,
    optimizer_trajectory,
    softmax_regression_problem,
)
from helpers.verify import registered_checks, run_checks

SWITCHES = {"foreach", "fused", "capturable", "differentiable"}
FLOAT64 = dict(rtol=1e-12, atol=1e-12)


def problem(seed=0):
    return softmax_regression_problem(torch.Generator().manual_seed(seed))


def minibatch_loss(data, params, t):
    return optim._minibatch_loss(data["features"], data["labels"], 1.0, params, t)


def trajectory(make_optimizer, steps=200, make_scheduler=None, data=None):
    data = data or problem()
    return optimizer_trajectory(make_optimizer, [data["weight"], data["bias"]],
                                partial(minibatch_loss, data), steps, make_scheduler)


# --------------------------------------------------------------------------------------------
# Equivalence: every option, every device, float64 and float32
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check", OPTIMIZER_CHECKS, ids=[c.name for c in OPTIMIZER_CHECKS])
def test_equal_to_torch_after_every_step(check):
    table = run_checks([check])
    assert table.ok, table.to_text()
    cpu = [row for row in table.rows if row.device == "cpu"]
    assert [row.dtype for row in cpu] == ["float64", "float32"]
    assert all(row.passed for row in cpu)


def test_the_trajectory_holds_every_step_of_params_and_state():
    result = check_optimizer(optim.Adam, **problem(), steps=7, amsgrad=True)
    assert [p.shape for p in result["params"]] == [(7, 3, 5), (7, 3)]
    assert list(result["state"][0]) == ["step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"]
    assert result["state"][0]["step"].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert result["state"][0]["exp_avg"].shape == (7, 3, 5)


def test_every_optimizer_is_registered_with_helpers_verify():
    names = {check.name for check in registered_checks()}
    for name, grid in CHECKED_OPTIONS.items():
        for options in grid:
            assert optim.options_label(name, options) in names


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_same_arguments_and_defaults_as_torch(name):
    ours, theirs = OPTIMIZERS[name]
    expected = [p for p in inspect.signature(theirs).parameters.values()
                if p.name not in SWITCHES]
    got = list(inspect.signature(ours).parameters.values())
    assert [(p.name, p.default, p.kind) for p in got] == [
        (p.name, p.default, p.kind) for p in expected]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_option_is_checked_against_torch(name):
    options = {p for p in inspect.signature(OPTIMIZERS[name][0]).parameters} - {"params", "lr"}
    checked = {key for grid in CHECKED_OPTIONS[name] for key in grid}
    if name == "AdamW":
        options.discard("weight_decay")  # AdamW's default is non-zero: every check decays
    assert options <= checked, f"never checked: {options - checked}"


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_and_groups_look_like_torch(name):
    ours_class, torch_class = OPTIMIZERS[name]
    momentum = {"SGD": dict(momentum=0.9), "RMSprop": dict(momentum=0.9, centered=True)}
    states = []
    for cls in (ours_class, torch_class):
        param = torch.ones(3, requires_grad=True)
        optimizer = cls([param], **momentum.get(name, {}))
        param.grad = torch.full((3,), 0.5)
        optimizer.step()
        states.append(optimizer.state_dict())
    ours, theirs = states
    assert list(ours["state"][0]) == list(theirs["state"][0])
    for key, value in ours["state"][0].items():
        assert value.dtype == theirs["state"][0][key].dtype, key
        assert value.device == theirs["state"][0][key].device, key
        assert value.shape == theirs["state"][0][key].shape, key
    expected = {k: v for k, v in theirs["param_groups"][0].items() if k not in SWITCHES}
    assert ours["param_groups"][0] == expected


def test_gradients_are_left_untouched():
    for name, (cls, _) in OPTIMIZERS.items():
        param = torch.ones(4, requires_grad=True)
        grad = torch.arange(4.0)
        param.grad = grad.clone()
        options = dict(weight_decay=0.5, maximize=True)
        if name == "SGD":
            options.update(momentum=0.9, nesterov=True)
        cls([param], lr=0.1, **options).step()
        assert torch.equal(param.grad, grad), name


# --------------------------------------------------------------------------------------------
# Param groups, closures, tensor learning rates
# --------------------------------------------------------------------------------------------

GROUPS = {
    "SGD": ({"lr": 0.1}, [{"momentum": 0.9, "nesterov": True}, {"lr": 0.05, "dampening": 0.3,
                                                               "momentum": 0.5}]),
    "Adagrad": ({"lr": 0.1, "initial_accumulator_value": 0.2},
                [{"lr_decay": 0.05}, {"lr": 0.2, "eps": 1e-3, "weight_decay": 0.1}]),
    "RMSprop": ({"lr": 0.01}, [{"centered": True}, {"momentum": 0.9, "alpha": 0.9}]),
    "Adam": ({"lr": 0.01}, [{"amsgrad": True}, {"betas": (0.5, 0.9), "weight_decay": 0.1}]),
    "AdamW": ({"lr": 0.01}, [{"weight_decay": 0.0}, {"lr": 0.03, "amsgrad": True}]),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_param_groups_with_different_settings(name):
    defaults, (first, second) = GROUPS[name]

    def make(cls, params):
        return cls([{"params": [params[0]], **first}, {"params": [params[1]], **second}],
                   **defaults)

    ours, theirs = (trajectory(partial(make, cls)) for cls in OPTIMIZERS[name])
    torch.testing.assert_close(ours, theirs, **FLOAT64)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_group_added_later(name):
    defaults, (first, second) = GROUPS[name]

    def make(cls, params):
        optimizer = cls([params[0]], **defaults, **first)
        optimizer.add_param_group({"params": [params[1]], **second})
        return optimizer

    ours, theirs = (trajectory(partial(make, cls)) for cls in OPTIMIZERS[name])
    torch.testing.assert_close(ours, theirs, **FLOAT64)


def test_adagrad_uses_the_constructors_initial_accumulator_for_every_group_like_torch():
    sums = []
    for cls in OPTIMIZERS["Adagrad"]:
        a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
        optimizer = cls([{"params": [a]}, {"params": [b], "initial_accumulator_value": 5.0}],
                        initial_accumulator_value=1.0)
        sums.append(optimizer.state[b]["sum"])
    assert torch.equal(sums[0], sums[1]) and sums[0].tolist() == [1.0, 1.0]


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_step_with_a_closure_returns_its_loss(name):
    data = problem()
    results = []
    for cls in OPTIMIZERS[name]:
        params = [data["weight"].clone().requires_grad_(), data["bias"].clone().requires_grad_()]
        optimizer = cls(params, lr=0.01)

        def closure(optimizer=optimizer, params=params):
            optimizer.zero_grad()
            loss = minibatch_loss(data, params, 0)
            loss.backward()
            return loss

        losses = [optimizer.step(closure).item() for _ in range(5)]
        results.append((losses, [p.detach() for p in params]))
    torch.testing.assert_close(results[0], results[1], **FLOAT64)


TENSOR_HYPERPARAMETERS = {
    "SGD": dict(lr=0.05, momentum=0.9, weight_decay=0.1),
    "Adagrad": dict(lr=0.1, lr_decay=0.01, weight_decay=0.1),
    "RMSprop": dict(lr=0.01, momentum=0.9, centered=True),
    "Adam": dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1, amsgrad=True),
    "AdamW": dict(lr=0.01, betas=(0.9, 0.999), weight_decay=0.1),
}


def as_tensors(options, dtype):
    """`lr` and `betas` of `options` as 1-element tensors of `dtype` (a fresh copy per call)."""
    options = dict(options, lr=torch.tensor([options["lr"]], dtype=dtype))
    if "betas" in options:
        options["betas"] = tuple(torch.tensor(b, dtype=dtype) for b in options["betas"])
    return options


@pytest.mark.parametrize("hyper_dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("param_dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_tensor_hyperparameters_compute_in_their_dtype_as_torch_does(name, param_dtype,
                                                                     hyper_dtype):
    """A tensor lr / betas stays a tensor: `1 - beta1**t`, `lr / (1 - beta1**t)`, Adagrad's
    `lr / (1 + (t-1) lr_decay)`, AdamW's `1 - lr * weight_decay` round in its dtype. Turning it
    into a Python float first drifts from torch (7e-9 after 200 float64 Adam steps); this is
    bit for bit, params and state, after every step."""
    data = {key: value.to(param_dtype) if value.is_floating_point() else value
            for key, value in problem().items()}
    ours, theirs = (check_optimizer(cls, **data, **as_tensors(TENSOR_HYPERPARAMETERS[name],
                                                              hyper_dtype))
                    for cls in OPTIMIZERS[name])
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_tensor_betas_are_stored_as_torch_stores_them():
    params = [torch.zeros(2, requires_grad=True)]
    options = dict(lr=torch.tensor([0.01]), betas=(torch.tensor([0.9]), torch.tensor([0.99])))
    ours, theirs = (cls(params, **options).param_groups[0] for cls in OPTIMIZERS["Adam"])
    assert [b.shape for b in ours["betas"]] == [b.shape for b in theirs["betas"]] == [(), ()]
    assert ours["lr"].shape == theirs["lr"].shape == (1,)
    with pytest.raises(ValueError, match=r"Tensor betas\[0\] must be 1-element \(expected a "
                                         r"1-element tensor, but got shape \(2,\)\)"):
        optim.Adam(params, betas=(torch.tensor([0.9, 0.8]), torch.tensor(0.99)))


# --------------------------------------------------------------------------------------------
# state_dict round trip and torch's learning-rate schedulers
# --------------------------------------------------------------------------------------------


def resumed(first_class, second_class, options, steps=200, pause=100):
    """`pause` steps with `first_class`; its state_dict, through bytes, into a fresh
    `second_class` on the same parameters; the remaining steps; the whole trajectory."""
    data = problem()
    built = []

    def build(params):
        built.append(first_class(params, **options))
        return built[-1]

    first = trajectory(build, pause, data=data)
    buffer = io.BytesIO()
    torch.save(built[0].state_dict(), buffer)
    buffer.seek(0)

    def rebuild(params):
        optimizer = second_class(params, **options)
        optimizer.load_state_dict(torch.load(buffer))
        return optimizer

    second = optimizer_trajectory(rebuild, [p[-1] for p in first["params"]],
                                  lambda params, t: minibatch_loss(data, params, t + pause),
                                  steps - pause)
    return {"params": [torch.cat(pair) for pair in zip(first["params"], second["params"])],
            "state": [{key: torch.cat([a[key], b[key]]) for key in a}
                      for a, b in zip(first["state"], second["state"])]}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_state_dict_round_trip_continues_identically(name):
    ours = OPTIMIZERS[name][0]
    options = CHECKED_OPTIONS[name][-1]
    uninterrupted = trajectory(lambda p: ours(p, **options))
    torch.testing.assert_close(resumed(ours, ours, options), uninterrupted, rtol=0, atol=0)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_state_dict_saved_by_torch_loads_into_ours(name):
    ours, theirs = OPTIMIZERS[name]
    options = CHECKED_OPTIONS[name][-1]
    reference = trajectory(lambda p: theirs(p, **options))
    torch.testing.assert_close(resumed(theirs, ours, options), reference, **FLOAT64)


SCHEDULERS = {
    "StepLR": ("SGD", dict(lr=0.1, momentum=0.9),
               lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=30, gamma=0.5)),
    "OneCycleLR cycling momentum": (
        "SGD", dict(lr=0.1, momentum=0.9, nesterov=True),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.5, total_steps=200)),
    "OneCycleLR cycling betas": (
        "Adam", dict(lr=0.01),
        lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=0.05, total_steps=200)),
    "CosineAnnealingLR": ("AdamW", dict(lr=0.01),
                          lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50)),
    "ExponentialLR": ("RMSprop", dict(lr=0.01, centered=True),
                      lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.98)),
    "LinearLR": ("Adagrad", dict(lr=0.1),
                 lambda o: torch.optim.lr_scheduler.LinearLR(o, start_factor=0.1,
                                                             total_iters=50)),
}


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_torch_lr_schedulers_drive_ours(scheduler):
    name, options, make_scheduler = SCHEDULERS[scheduler]
    ours, theirs = (trajectory(lambda p, cls=cls: cls(p, **options), 200, make_scheduler)
                    for cls in OPTIMIZERS[name])
    torch.testing.assert_close(ours, theirs, **FLOAT64)
    constant = trajectory(lambda p: OPTIMIZERS[name][0](p, **options))
    assert not torch.allclose(ours["params"][0], constant["params"][0]), "the schedule did nothing"


# --------------------------------------------------------------------------------------------
# Validation: torch's messages, plus what was expected
# --------------------------------------------------------------------------------------------

INVALID = [
    ("SGD", dict(lr=-0.1)), ("SGD", dict(lr=torch.tensor([0.1, 0.2]))),
    ("SGD", dict(momentum=-0.5)), ("SGD", dict(weight_decay=-1e-4)),
    ("SGD", dict(nesterov=True)), ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1)),
    ("Adagrad", dict(lr=-1.0)), ("Adagrad", dict(lr_decay=-0.1)),
    ("Adagrad", dict(weight_decay=-0.1)), ("Adagrad", dict(initial_accumulator_value=-1.0)),
    ("Adagrad", dict(eps=-1e-10)),
    ("RMSprop", dict(lr=-1.0)), ("RMSprop", dict(eps=-1.0)), ("RMSprop", dict(momentum=-0.9)),
    ("RMSprop", dict(weight_decay=-0.1)), ("RMSprop", dict(alpha=-0.99)),
    ("Adam", dict(lr=-1e-3)), ("Adam", dict(eps=-1e-8)), ("Adam", dict(betas=(1.0, 0.999))),
    ("Adam", dict(betas=(-0.1, 0.999))), ("Adam", dict(betas=(0.9, 1.5))),
    ("Adam", dict(betas=(0, 0.999))), ("Adam", dict(weight_decay=-0.1)),
    ("AdamW", dict(lr=-1e-3)), ("AdamW", dict(betas=(0.9, -0.5))),
    ("AdamW", dict(weight_decay=-0.01)),
]


@pytest.mark.parametrize(("name", "options"), INVALID,
                         ids=[f"{n}-{next(iter(o))}" for n, o in INVALID])
def test_invalid_arguments_raise_torchs_message_and_say_what_was_expected(name, options):
    ours, theirs = OPTIMIZERS[name]
    params = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError) as torch_error:
        theirs(params, **options)
    with pytest.raises(ValueError) as our_error:
        ours(params, **options)
    message = str(our_error.value)
    assert message.startswith(str(torch_error.value))
    assert "(expected" in message


@pytest.mark.parametrize(("name", "options", "expected"), [
    ("SGD", dict(lr="0.1"), "expected lr to be a float, but got str '0.1'"),
    ("RMSprop", dict(alpha=None), "expected alpha to be a float, but got NoneType None"),
    ("Adam", dict(betas=0.9), "expected betas to be a pair (beta1, beta2), but got 0.9"),
    ("AdamW", dict(betas=(0.9, 0.99, 0.999)), "expected betas to be a pair"),
    ("Adagrad", dict(eps=True), "expected eps to be a float, but got bool True"),
])
def test_arguments_of_the_wrong_type_raise_type_errors(name, options, expected):
    with pytest.raises(TypeError) as error:
        OPTIMIZERS[name][0]([torch.zeros(2, requires_grad=True)], **options)
    assert expected in str(error.value)


def test_nan_hyperparameters_are_refused_even_where_torch_lets_them_through():
    params = [torch.zeros(2, requires_grad=True)]
    torch.optim.SGD(params, lr=float("nan"))  # torch checks `lr < 0`, which NaN passes
    with pytest.raises(ValueError, match="Invalid learning rate: nan"):
        optim.SGD(params, lr=float("nan"))
    with pytest.raises(ValueError, match="Invalid momentum value: nan"):
        optim.SGD(params, momentum=float("nan"))
    with pytest.raises(ValueError, match="Invalid dampening value: nan"):
        optim.SGD(params, momentum=0.9, dampening=float("nan"))
    optim.SGD(params, momentum=0.9, dampening=-0.5)  # negative dampening is allowed, as in torch


def test_sparse_and_complex_gradients_are_refused_clearly():
    param = torch.zeros(3, requires_grad=True)
    param.grad = torch.zeros(3).to_sparse()
    with pytest.raises(TypeError, match="SGD: expected a dense real gradient, but got a sparse"):
        optim.SGD([param], lr=0.1).step()
    param = torch.zeros(3, dtype=torch.complex64, requires_grad=True)
    param.grad = torch.ones(3, dtype=torch.complex64)
    with pytest.raises(TypeError, match="Adam: expected a dense real gradient, but got a complex"):
        optim.Adam([param]).step()


# --------------------------------------------------------------------------------------------
# Mutations: a subtly wrong optimizer must fail its check
# --------------------------------------------------------------------------------------------

MUTATIONS = {
    "Adam bias correction of m dropped": (
        "adam_step", [("bias_correction1 = 1 - beta1**t", "bias_correction1 = 1")],
        "Adam", dict(lr=0.01)),
    "Adam bias correction of v dropped": (
        "adam_step", [("bias_correction2 = 1 - beta2**t", "bias_correction2 = 1")],
        "Adam", dict(lr=0.01)),
    "Adam eps inside the square root": (
        "adam_step", [("(second_moment.sqrt() / bias_correction2**0.5).add_(eps)",
                       "(second_moment / bias_correction2).add(eps).sqrt()")],
        "Adam", dict(lr=0.01)),
    "RMSprop eps inside the square root": (
        "rmsprop_step", [("denom = square_avg.sqrt().add_(eps)",
                          "denom = square_avg.add(eps).sqrt()")],
        "RMSprop", dict()),
    "Nesterov look-ahead forgotten": (
        "sgd_step", [("g.add(momentum_buffer, alpha=momentum) if nesterov",
                      "momentum_buffer if nesterov")],
        "SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    "Nesterov look-ahead with the whole buffer": (
        "sgd_step", [("g.add(momentum_buffer, alpha=momentum) if nesterov",
                      "g.add(momentum_buffer) if nesterov")],
        "SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    "dampening on the first step": (
        "sgd_step", [("momentum_buffer = g.detach().clone()",
                      "momentum_buffer = (1 - dampening) * g.detach()")],
        "SGD", dict(lr=0.1, momentum=0.9, dampening=0.5)),
    "AdamW decay coupled into the gradient": (
        "adam_step", [("0.0 if decoupled_weight_decay else weight_decay", "weight_decay"),
                      ("if decoupled_weight_decay and weight_decay != 0:", "if False:")],
        "AdamW", dict(lr=0.01)),
    "AMSGrad maximum not used": (
        "adam_step", [("max_exp_avg_sq if amsgrad else exp_avg_sq", "exp_avg_sq")],
        "Adam", dict(lr=0.01, amsgrad=True)),
    "centered RMSprop without the mean": (
        "rmsprop_step", [("addcmul(grad_avg, grad_avg, value=-1)",
                          "addcmul(grad_avg, grad_avg, value=0)")],
        "RMSprop", dict(centered=True)),
    "Adagrad lr_decay off by one step": (
        "adagrad_step", [("(step.item() - 1) * lr_decay", "step.item() * lr_decay")],
        "Adagrad", dict(lr=0.1, lr_decay=0.01)),
    "maximize ignored": (
        "_direction", [("-grad if maximize else grad", "grad")],
        "SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True, maximize=True)),
    "weight decay with the wrong sign": (
        "_direction", [("alpha=weight_decay", "alpha=-weight_decay")],
        "SGD", dict(lr=0.1, weight_decay=0.1)),
}


def mutate(monkeypatch, function_name, replacements):
    """Replace `optim.<function_name>` by a copy of its source with `replacements` applied."""
    source = inspect.getsource(getattr(optim, function_name))
    for old, new in replacements:
        assert source.count(old) == 1, f"mutation target {old!r} not found once"
        source = source.replace(old, new)
    namespace = dict(vars(optim))
    exec(compile(source, f"<mutated {function_name}>", "exec"), namespace)  # noqa: S102
    monkeypatch.setattr(optim, function_name, namespace[function_name])


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_a_mutated_optimizer_is_caught(monkeypatch, mutation):
    function_name, replacements, name, options = MUTATIONS[mutation]
    check = optim.optimizer_check(name, options)
    assert check.name in {c.name for c in OPTIMIZER_CHECKS}, "mutate a checked configuration"
    assert run_checks([check], devices=["cpu"], dtypes=["float64"]).ok
    mutate(monkeypatch, function_name, replacements)
    table = run_checks([check], devices=["cpu"], dtypes=["float64"])
    assert [row.verdict for row in table.rows] == ["FAIL"], table.to_text()


def test_the_synthetic_data_behind_the_checks():
    from helpers.data import linear_classification, linear_regression

    X, y = linear_classification(50, 4, 3, generator=torch.Generator().manual_seed(0))
    assert X.shape == (50, 4) and y.shape == (50,) and y.dtype == torch.int64
    assert set(y.tolist()) <= {0, 1, 2}
    X, y, w, b = linear_regression(30, 2, noise=0.0, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(y, X @ w + b)
    for call, message in [(lambda: linear_classification(0), "n_samples to be an integer >= 1"),
                          (lambda: linear_classification(n_classes=1), "n_classes to be an "
                                                                       "integer >= 2, but got 1"),
                          (lambda: linear_regression(noise=-1.0), "expected noise >= 0")]:
        with pytest.raises(ValueError, match=message):
            call()
