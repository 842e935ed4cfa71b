"""Chapter 11, optimizer steps: the traffic model, timing helpers, CompiledAdam against torch."""

import copy
import importlib
import inspect
import math
import pickle
from functools import partial

import pytest
import torch
import torch.nn.functional as F

from helpers.efficiency import steps
from helpers.efficiency.steps import (
    ADAM_PASSES,
    FLOAT32_STEP_TOLERANCE,
    IMPLEMENTATIONS,
    STEP_CHECKED_OPTIONS,
    STEP_CHECKS,
    CompileCounter,
    CompiledAdam,
    adam_bytes_per_parameter,
    adam_step_times,
    compiled_adam_check,
    copy_bandwidth,
    passes_table,
    profile_training_step,
    time_interleaved,
)
from helpers.optim import check_optimizer, softmax_regression_problem
from helpers.verify import Check, registered_checks, run_checks

SWITCHES = {"foreach", "fused", "capturable", "differentiable"}
EXTRA_KEYWORDS = {"backend", "python_floats"}
ADAM_MODULE = importlib.import_module("torch.optim.adam")


def traced(**options):
    """CompiledAdam traced by dynamo and run by aten ops: the compiled path, without inductor's
    C++ compilation (seconds per graph), for the checks that need many graphs."""
    return partial(CompiledAdam, backend="eager", **options)


def same_as_torch(make_ours, options, steps_=200, tolerances=None) -> Check:
    return Check(f"ours vs torch {options}", partial(check_optimizer, make_ours, steps=steps_,
                                                     **options),
                 partial(check_optimizer, torch.optim.Adam, steps=steps_, **options),
                 softmax_regression_problem, dtypes=(torch.float64, torch.float32),
                 tolerances=tolerances or {torch.float32: FLOAT32_STEP_TOLERANCE})


def cpu_rows(table):
    return [row for row in table.rows if row.device == "cpu"]


# --------------------------------------------------------------------------------------------
# The traffic model
# --------------------------------------------------------------------------------------------


def test_bytes_per_parameter_match_hand_counts():
    # one pass: read param, grad, exp_avg, exp_avg_sq; write param, exp_avg, exp_avg_sq
    assert adam_bytes_per_parameter("torch_fused") == 7 * 4 == 28
    assert adam_bytes_per_parameter("ours_compiled", torch.float64) == 7 * 8
    assert adam_bytes_per_parameter("torch_fused", "bfloat16") == 7 * 2
    # lerp_ 3 + mul_ 2 + addcmul_ 3 + sqrt 2 + div 2 + add_ 2 + addcdiv_ 4 = 18 tensors
    for name in ("torch_forloop", "torch_foreach", "ours_eager"):
        assert adam_bytes_per_parameter(name) == 18 * 4 == 72
    # mul_ 2, * 2, add_ 3 (m); mul_ 2, * 2, * 3, add_ 3 (v); * 2, sqrt 2, * 2, + 2, / 3, sub_ 3
    assert adam_bytes_per_parameter("ours_fused_eager") == 31 * 4
    assert set(ADAM_PASSES) == set(IMPLEMENTATIONS)


def test_passes_table_prints_every_pass_and_the_sum():
    table = passes_table("torch_forloop")
    assert "exp_avg.lerp_(grad, 1 - beta1)" in table and "addcdiv_" in table
    assert table.splitlines()[-1] == ("7 passes, 18 tensors x 4 bytes = 72 bytes per parameter "
                                      "(float32)")
    assert passes_table("torch_fused", torch.float64).endswith(
        "1 pass, 7 tensors x 8 bytes = 56 bytes per parameter (float64)")


def test_single_tensor_passes_are_the_calls_of_torchs_source():
    source = inspect.getsource(ADAM_MODULE._single_tensor_adam)
    for call in ("exp_avg.lerp_(grad", "exp_avg_sq.mul_(beta2).addcmul_(grad, grad",
                 "(exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)",
                 "param.addcdiv_(exp_avg, denom, value=-step_size)"):
        assert call in source, call
    foreach = inspect.getsource(ADAM_MODULE._multi_tensor_adam)
    for call in ("_foreach_lerp_", "_foreach_mul_(device_exp_avg_sqs, beta2)",
                 "_foreach_addcmul_", "_foreach_sqrt(device_exp_avg_sqs)",
                 "_foreach_div_(exp_avg_sq_sqrt, bias_correction2_sqrt)",
                 "_foreach_add_(exp_avg_sq_sqrt, eps)", "_foreach_addcdiv_("):
        assert call in foreach, call


def test_line_numbers_point_at_the_calls_in_this_torch_version():
    path = inspect.getsourcefile(ADAM_MODULE)
    lines = open(path).read().splitlines()
    version = torch.__version__.split("+")[0]
    for passes in (ADAM_PASSES["torch_forloop"], ADAM_PASSES["torch_foreach"]):
        for memory_pass in passes:
            source, line = memory_pass.source.split(" (")[0].rsplit(":", 1)
            if version not in source:
                pytest.skip(f"line numbers are those of another torch version: {source}")
            name = memory_pass.op.split("(")[0].lstrip(".").split()[-1]
            assert name.strip("/ ") in lines[int(line) - 1] or name == "/", (memory_pass, line)


def test_unknown_implementation_is_named():
    with pytest.raises(ValueError, match="expected an implementation among .* but got 'adam'"):
        adam_bytes_per_parameter("adam")
    with pytest.raises(ValueError, match="floating dtype"):
        adam_bytes_per_parameter("torch_fused", torch.int32)


# --------------------------------------------------------------------------------------------
# Equal to torch.optim.Adam: 200 steps, parameters and state after every step
# --------------------------------------------------------------------------------------------


def test_compiled_equals_torch_in_float64_and_float32():
    table = run_checks([STEP_CHECKS[0]], devices=["cpu"])
    assert [row.dtype for row in cpu_rows(table)] == ["float64", "float32"]
    assert table.ok, table.to_text()


@pytest.mark.parametrize("options", STEP_CHECKED_OPTIONS, ids=str)
def test_every_option_equals_torch_when_traced(options):
    table = run_checks([same_as_torch(traced(), options)], devices=["cpu"])
    assert table.ok and len(cpu_rows(table)) == 2, table.to_text()


def test_eager_update_equals_torch():
    eager = partial(CompiledAdam, backend=None)
    table = run_checks([same_as_torch(eager, STEP_CHECKED_OPTIONS[1])], devices=["cpu"])
    assert table.ok, table.to_text()


def test_checks_are_registered_and_cover_every_option():
    names = {check.name for check in registered_checks()}
    assert {check.name for check in STEP_CHECKS} <= names
    assert any("ExponentialLR" in check.name for check in STEP_CHECKS)
    options = set(inspect.signature(CompiledAdam).parameters) - {"params", "lr", "amsgrad"}
    checked = {key for grid in STEP_CHECKED_OPTIONS for key in grid}
    assert options - EXTRA_KEYWORDS <= checked, options - checked


def test_the_float64_check_keeps_the_course_tolerance():
    check = compiled_adam_check(dict(lr=0.01))
    assert check.tolerance(torch.float64).rtol == 1e-12
    assert check.tolerance(torch.float32) == FLOAT32_STEP_TOLERANCE


# --------------------------------------------------------------------------------------------
# Mutants: each wrong step must fail the comparison, in float64 and in float32
# --------------------------------------------------------------------------------------------


def eps_inside_sqrt_(params, grads, exp_avgs, exp_avg_sqs, scalars, **_):
    for i, (param, grad, m, v) in enumerate(zip(params, grads, exp_avgs, exp_avg_sqs)):
        step_size, inv_bc2_sqrt, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, *_ = (
            steps._scalars_of(scalars, i, param))
        m.mul_(beta1).add_(one_minus_beta1 * grad)
        v.mul_(beta2).add_(one_minus_beta2 * grad * grad)
        param.sub_(step_size * m / (v * inv_bc2_sqrt**2 + eps).sqrt())  # wrong: eps inside


class NoFirstBiasCorrection(CompiledAdam):
    def _scalars(self, group, steps_, device):
        scalars = super()._scalars(group, steps_, device)
        scalars[:, 0] = float(group["lr"])  # wrong: lr instead of lr / (1 - beta1^t)
        return scalars


class NoSecondBiasCorrection(CompiledAdam):
    def _scalars(self, group, steps_, device):
        scalars = super()._scalars(group, steps_, device)
        scalars[:, 1] = 1.0  # wrong: sqrt(v_t) instead of sqrt(v_t / (1 - beta2^t))
        return scalars


@pytest.mark.parametrize("mutant", ["eps inside sqrt", "no 1 - beta1^t", "no 1 - beta2^t"])
def test_mutants_are_caught_in_both_dtypes(mutant, monkeypatch):
    make = {"no 1 - beta1^t": partial(NoFirstBiasCorrection, backend="eager"),
            "no 1 - beta2^t": partial(NoSecondBiasCorrection, backend="eager")}.get(mutant)
    if make is None:
        monkeypatch.setattr(steps, "adam_update_", eps_inside_sqrt_)
        make = traced()
    table = run_checks([same_as_torch(make, dict(lr=0.01))], devices=["cpu"])
    assert [row.verdict for row in cpu_rows(table)] == ["FAIL", "FAIL"], table.to_text()


# --------------------------------------------------------------------------------------------
# Compilations: a schedule recompiles the naive step once, ours never
# --------------------------------------------------------------------------------------------


def tiny_problem(seed=0):
    generator = torch.Generator().manual_seed(seed)
    params = [torch.randn(3, 5, generator=generator).requires_grad_(True),
              torch.randn(3, generator=generator).requires_grad_(True)]
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator)
    return params


def compilations_per_step(optimizer, steps_=5):
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    counts = []
    for _ in range(steps_):
        optimizer.step()
        scheduler.step()
        counts.append(optimizer.compilations)
    return counts


def test_python_floats_recompile_once_tensors_never():
    naive = CompiledAdam(tiny_problem(), lr=0.01, backend="eager", python_floats=True)
    ours = CompiledAdam(tiny_problem(), lr=0.01, backend="eager")
    # the first change of lr and of the bias corrections compiles again, with them as inputs
    assert compilations_per_step(naive) == [1, 2, 2, 2, 2]
    assert compilations_per_step(ours) == [1, 1, 1, 1, 1]


def test_each_optimizer_has_its_own_compilations():
    # more optimizers than torch's recompile_limit (8), all compiling the same update
    for _ in range(9):
        optimizer = CompiledAdam(tiny_problem(), backend="eager")
        optimizer.step()
        optimizer.step()
        assert optimizer.compilations == 1


def test_compile_counter_counts_graphs_and_delegates():
    counter = CompileCounter("eager")
    double = torch.compile(lambda x: 2 * x, backend=counter)
    assert torch.equal(double(torch.ones(3)), torch.full((3,), 2.0))
    double(torch.ones(3))
    assert counter.count == 1
    with pytest.raises(TypeError, match="expected a backend name"):
        CompileCounter(3)


def test_eager_backend_compiles_nothing():
    optimizer = CompiledAdam(tiny_problem(), backend=None)
    optimizer.step()
    assert optimizer.compilations == 0


# --------------------------------------------------------------------------------------------
# Mirrors torch.optim.Adam: signature, state, groups, errors
# --------------------------------------------------------------------------------------------


def test_same_arguments_and_defaults_as_torch():
    expected = [p for p in inspect.signature(torch.optim.Adam).parameters.values()
                if p.name not in SWITCHES]
    got = [p for p in inspect.signature(CompiledAdam).parameters.values()
           if p.name not in EXTRA_KEYWORDS]
    assert [(p.name, p.default, p.kind) for p in got] == [
        (p.name, p.default, p.kind) for p in expected]


def test_state_and_groups_look_like_torch():
    dicts = []
    for cls in (partial(CompiledAdam, backend=None), torch.optim.Adam):
        params = tiny_problem()
        optimizer = cls(params, lr=0.01)
        optimizer.step()
        dicts.append(optimizer.state_dict())
    ours, theirs = dicts
    for key, value in theirs["state"][0].items():
        assert ours["state"][0][key].dtype == value.dtype, key
        assert ours["state"][0][key].shape == value.shape, key
    assert list(ours["state"][0]) == list(theirs["state"][0])
    assert ours["param_groups"][0] == {k: v for k, v in theirs["param_groups"][0].items()
                                       if k not in SWITCHES}


def test_a_tensor_learning_rate_gives_the_same_steps():
    results = []
    for lr in (0.01, torch.tensor(0.01)):
        params = tiny_problem()
        optimizer = CompiledAdam(params, lr=lr, backend=None)
        optimizer.step()
        optimizer.step()
        results.append(torch.cat([p.detach().flatten() for p in params]))
    assert torch.equal(*results)


def test_gradients_are_left_untouched():
    params = tiny_problem()
    grads = [p.grad.clone() for p in params]
    CompiledAdam(params, weight_decay=0.5, maximize=True, backend=None).step()
    assert all(torch.equal(p.grad, g) for p, g in zip(params, grads))


def test_a_copy_and_a_pickle_keep_working():
    optimizer = CompiledAdam(tiny_problem(), lr=0.01, backend=None)
    optimizer.step()
    for clone in (copy.deepcopy(optimizer), pickle.loads(pickle.dumps(optimizer))):
        for param in clone.param_groups[0]["params"]:
            param.grad = torch.ones_like(param)
        clone.step()
        assert clone.backend is None and clone.state_dict()["state"][0]["step"].item() == 2


def test_bad_arguments_are_named():
    params = tiny_problem()
    with pytest.raises(ValueError, match="does not implement AMSGrad .* but got True"):
        CompiledAdam(params, amsgrad=True)
    with pytest.raises(ValueError, match="Invalid learning rate"):
        CompiledAdam(params, lr=-1.0)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        CompiledAdam(params, betas=(0.9, 1.0))
    with pytest.raises(TypeError, match="expected backend .* but got int"):
        CompiledAdam(params, backend=3)
    with pytest.raises(TypeError, match="unexpected keyword argument 'fused'"):
        CompiledAdam(params, fused=True)
    sparse = torch.zeros(4, requires_grad=True)
    sparse.grad = torch.zeros(4).to_sparse()
    with pytest.raises(TypeError, match="expected a dense real gradient"):
        CompiledAdam([sparse], backend=None).step()
    optimizer = CompiledAdam(tiny_problem(), backend=None)
    optimizer.param_groups[0]["amsgrad"] = True
    with pytest.raises(ValueError, match="AMSGrad"):
        optimizer.step()


# --------------------------------------------------------------------------------------------
# Timing and profiling: the functions work; no claim about this machine's speed
# --------------------------------------------------------------------------------------------


def test_step_times_are_positive_and_finite_for_every_implementation():
    times = adam_step_times(numel=4096, tensors=2, repeats=1, warmup=1)
    assert list(times) == list(IMPLEMENTATIONS)
    assert all(math.isfinite(t) and t > 0 for t in times.values()), times


def test_time_interleaved_rotates_and_summarizes():
    calls = []
    times = time_interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                             repeats=2, warmup=1, statistic="min")
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert set(times) == {"a", "b"} and all(t >= 0 for t in times.values())
    with pytest.raises(ValueError, match="expected statistic"):
        time_interleaved({"a": int}, statistic="mean")
    with pytest.raises(ValueError, match="expected repeats >= 1"):
        time_interleaved({"a": int}, repeats=0)
    with pytest.raises(TypeError, match="mapping of names to callables"):
        time_interleaved({"a": 1})


def test_copy_bandwidth_is_a_positive_rate():
    for in_place in (False, True):
        rate = copy_bandwidth(2**16, in_place=in_place, repeats=2)
        assert math.isfinite(rate) and rate > 0
    with pytest.raises(ValueError, match="positive number of elements"):
        copy_bandwidth(0)


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="expected 1 <= tensors <= numel"):
        adam_step_times(numel=3, tensors=4)
    with pytest.raises(ValueError, match="expected warmup >= 1"):
        adam_step_times(numel=8, tensors=2, warmup=0)
    with pytest.raises(ValueError, match="expected an implementation among"):
        adam_step_times(numel=8, tensors=2, implementations=["sgd"])
    with pytest.raises(ValueError, match="expected 1 <= tensors <= numel"):
        steps.compile_seconds(numel=1, tensors=2)


def test_profile_splits_a_step_into_three_parts(capfd):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    optimizer = torch.optim.Adam(model.parameters())
    inputs, targets = torch.randn(32, 8), torch.randint(0, 3, (32,))
    split = profile_training_step(model, F.cross_entropy, optimizer, inputs, targets, steps=2)
    assert list(split) == ["forward", "backward", "optimizer"]
    assert all(part["ms"] > 0 and 0 < part["fraction"] < 1 for part in split.values())
    assert math.isclose(sum(part["fraction"] for part in split.values()), 1.0)
    assert "profiler_start" not in capfd.readouterr().err
    with pytest.raises(ValueError, match="expected steps >= 1"):
        profile_training_step(model, F.cross_entropy, optimizer, inputs, targets, steps=0)



def test_time_interleaved_times_only_the_rounds_after_the_warmup():
    import time

    pauses = iter([0.2, 0.2, 0.0])  # two slow warm-up calls (allocation, compilation), then fast
    times = time_interleaved({"a": lambda: time.sleep(next(pauses))}, repeats=1, warmup=2)
    assert times["a"] < 0.1  # the median of the one timed call, not of the warm-up ones


def test_copy_bandwidth_counts_the_read_and_the_write(monkeypatch):
    monkeypatch.setattr(steps, "time_interleaved", lambda candidates, **_: {"copy": 0.5})
    # 2 N s / t: 1000 elements of 4 (8) bytes, read once and written once, in 0.5 s
    assert copy_bandwidth(1000, torch.float32) == 2 * 1000 * 4 / 0.5
    assert copy_bandwidth(1000, torch.float64, in_place=True) == 2 * 1000 * 8 / 0.5


def test_negative_eps_and_weight_decay_are_refused_as_by_torch():
    for cls in (partial(CompiledAdam, backend=None), torch.optim.Adam):
        with pytest.raises(ValueError, match="Invalid epsilon value"):
            cls(tiny_problem(), eps=-1e-8)
        with pytest.raises(ValueError, match="Invalid weight_decay value"):
            cls(tiny_problem(), weight_decay=-0.1)


def test_profile_reports_milliseconds_per_step():
    import time

    class SlowLinear(torch.nn.Linear):
        def forward(self, x):
            time.sleep(0.02)  # 20 ms of forward pass per step
            return super().forward(x)

    model = SlowLinear(8, 3)
    split = profile_training_step(model, F.cross_entropy, torch.optim.SGD(model.parameters()),
                                  torch.randn(4, 8), torch.randint(0, 3, (4,)), steps=4)
    assert 15 < split["forward"]["ms"] < 60, split  # per step; the total of 4 steps is >= 80
