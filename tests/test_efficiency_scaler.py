"""Loss scaling (chapter 11): our GradScaler against torch.amp.GradScaler bit for bit, the mutants
the comparison catches, errors, and the precision helpers (autocast dtypes, float16 flushing,
clipping before unscale_)."""

import math
import pickle
import warnings
from functools import partial

import pytest
import torch

from helpers import verify as V
from helpers.efficiency import scaler as E
from helpers.optim import softmax_regression_problem
from helpers.verify import EXACT, Check, dtype_name, run_checks

TorchScaler = torch.amp.GradScaler
INF, NAN = math.inf, math.nan


def problem(dtype=torch.float32, seed=0):
    data = softmax_regression_problem(torch.Generator().manual_seed(seed))
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in data.items()}


def assert_bitwise(ours, theirs):
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)


def quadratic_step(scaler, params, optimizer, targets, inject=None):
    """One iteration: scale(loss).backward(), optional overflow, step, update."""
    optimizer.zero_grad()
    loss = sum(((p - t) ** 2).sum() for p, t in zip(params, targets))
    scaler.scale(loss).backward()
    if inject is not None:
        params[0].grad.view(-1)[0] = inject
    result = scaler.step(optimizer)
    scaler.update()
    return result


# --------------------------------------------------------------------------------------------
# Bit for bit against torch.amp.GradScaler, and the mutants that comparison catches
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("check", E.SCALER_CHECKS, ids=[c.name for c in E.SCALER_CHECKS])
def test_every_step_equals_torchs_scaler(check):
    table = run_checks([check], devices=["cpu"])
    assert table.ok and all(row.passed for row in table.rows), table.to_text()
    assert [row.dtype for row in table.rows] == [dtype_name(d) for d in check.dtypes]
    assert all(check.tolerance(d) == EXACT for d in check.dtypes)


def test_the_checks_are_registered_and_cover_growth_backoff_and_skips():
    assert all(V._REGISTRY.get(c.name) is c for c in E.SCALER_CHECKS)
    for options in [*E._SCALER_RUNS.values(), E._AUTOCAST_RUN]:
        run = E.scaler_trajectory(TorchScaler, **problem(), **options)
        scale = run["scale"]
        assert (scale[1:] > scale[:-1]).any() and (scale[1:] < scale[:-1]).any()  # grows, backs off
        assert run["skipped"].any() and not run["skipped"].all()
        # skipped exactly when the scale backed off (torch's rule), never otherwise
        previous = torch.cat([torch.tensor([options["init_scale"]], dtype=torch.float64),
                              scale[:-1]])
        assert torch.equal(run["skipped"], scale < previous)


def test_the_clipping_run_really_clips():
    options = next(dict(o) for name, o in E._SCALER_RUNS.items() if "clip_grad_norm_" in name)
    clipped = E.scaler_trajectory(E.GradScaler, **problem(), **options)
    options["max_norm"] = None
    unclipped = E.scaler_trajectory(E.GradScaler, **problem(), **options)
    assert not torch.equal(clipped["params"][0][0], unclipped["params"][0][0])  # from step 1 on


def test_the_float16_autocast_run_overflows_for_real():
    run = E.scaler_trajectory(TorchScaler, **problem(), **E._AUTOCAST_RUN)
    assert run["skipped"][:3].all()  # 2**24 is far too large: backs off step after step
    assert run["scale"].min() < 2.0**24 / 8 and not run["skipped"][-8:].all()


class NoBackoff(E.GradScaler):
    def _update_scale_(self, found_inf):
        if found_inf:
            self._growth_tracker.fill_(0)  # resets the tracker, keeps the scale
        else:
            super()._update_scale_(False)


class TrackerKeptOnInf(E.GradScaler):
    def _update_scale_(self, found_inf):
        tracker = int(self._growth_tracker.item())
        super()._update_scale_(found_inf)
        if found_inf:
            self._growth_tracker.fill_(tracker)


class UnscaleByS(E.GradScaler):
    def _inverse_scale(self):
        return self._scale.clone()


class StepOnInf(E.GradScaler):
    def _maybe_opt_step(self, optimizer, optimizer_state, *args, **kwargs):
        return optimizer.step(*args, **kwargs)


class GrowthWithoutCap(E.GradScaler):
    def _update_scale_(self, found_inf):
        if found_inf or int(self._growth_tracker.item()) + 1 != self._growth_interval:
            return super()._update_scale_(found_inf)
        self._scale.mul_(self._growth_factor)
        self._growth_tracker.fill_(0)


@pytest.mark.parametrize("mutant", [NoBackoff, TrackerKeptOnInf, UnscaleByS, StepOnInf])
@pytest.mark.parametrize("run", list(E._SCALER_RUNS))
def test_the_comparison_catches_each_mutant(mutant, run):
    options = E._SCALER_RUNS[run]
    check = Check(f"{mutant.__name__} {run}", partial(E.scaler_trajectory, mutant, **options),
                  partial(E.scaler_trajectory, TorchScaler, **options),
                  softmax_regression_problem, dtypes=(torch.float32,),
                  tolerances={torch.float32: EXACT})
    table = run_checks([check], devices=["cpu"])
    assert [row.verdict for row in table.rows] == ["FAIL"]


def test_the_growth_stops_below_float32s_overflow_as_in_torch():
    runs = {}
    for cls in (E.GradScaler, TorchScaler, GrowthWithoutCap):
        scaler = cls("cpu", init_scale=2.0**126, growth_interval=1)
        p = torch.zeros(2, requires_grad=True)
        opt = torch.optim.SGD([p], lr=1e-40)
        runs[cls] = []
        for _ in range(3):
            quadratic_step(scaler, [p], opt, [torch.full((2,), 1e-30)])
            runs[cls].append(scaler.get_scale())
    assert runs[E.GradScaler] == runs[TorchScaler] == [2.0**127, 2.0**127, 2.0**127]
    assert runs[GrowthWithoutCap][-1] == INF  # the mutant overflows


@pytest.mark.parametrize("growth_interval", [1, 2, 5])
def test_growth_and_backoff_match_torch_with_odd_factors(growth_interval):
    scalers = [cls("cpu", init_scale=3.0, growth_factor=1.1, backoff_factor=0.7,
                   growth_interval=growth_interval) for cls in (E.GradScaler, TorchScaler)]
    histories = []
    for scaler in scalers:
        p = torch.ones(3, requires_grad=True)
        opt = torch.optim.SGD([p], lr=0.01)
        history = []
        for t in range(30):
            quadratic_step(scaler, [p], opt, [torch.zeros(3)], NAN if t % 7 == 3 else None)
            history.append((scaler.get_scale(), scaler.state_dict()["_growth_tracker"]))
        histories.append((history, p.detach().clone()))
    assert histories[0][0] == histories[1][0]
    assert_bitwise(histories[0][1], histories[1][1])


def test_two_optimizers_skip_separately_and_back_off_together():
    results = []
    for cls in (E.GradScaler, TorchScaler):
        scaler = cls("cpu", init_scale=8.0, growth_interval=2)
        a, b = torch.ones(2, requires_grad=True), torch.ones(3, requires_grad=True)
        opt_a, opt_b = torch.optim.SGD([a], lr=0.1), torch.optim.Adam([b], lr=0.1)
        scales = []
        for t in range(8):
            opt_a.zero_grad(), opt_b.zero_grad()
            scaler.scale([(a**2).sum(), ((b - 2) ** 2).sum()])[0].backward()
            scaler.scale(((b - 2) ** 2).sum()).backward()
            if t in (2, 5):
                b.grad[0] = INF  # only b overflows: a steps, b is skipped, the scale backs off
            scaler.unscale_(opt_a)
            scaler.step(opt_a), scaler.step(opt_b)
            scaler.update()
            scales.append(scaler.get_scale())
        results.append((scales, a.detach().clone(), b.detach().clone(), opt_b.state_dict()))
    assert results[0][0] == results[1][0] == [8.0, 16.0, 8.0, 8.0, 16.0, 8.0, 8.0, 16.0]
    assert_bitwise(results[0][1:], results[1][1:])


@pytest.mark.parametrize("optimizer", ["Adam", "AdamW", "SGD"])
def test_fused_optimizers_get_grad_scale_and_found_inf_as_from_torch(optimizer):
    options = dict(momentum=0.9) if optimizer == "SGD" else {}
    runs = []
    for cls in (E.GradScaler, TorchScaler):
        scaler = cls("cpu", init_scale=2.0**12, growth_interval=2)
        p = torch.linspace(-1, 1, 6, requires_grad=True)
        opt = getattr(torch.optim, optimizer)([p], lr=0.1, fused=True, **options)
        assert opt._step_supports_amp_scaling
        for t in range(7):
            if t == 4:  # unscale_ first: the kernel then gets grad_scale None
                opt.zero_grad()
                scaler.scale(((p - 0.3) ** 3).sum()).backward()
                scaler.unscale_(opt)
                scaler.step(opt), scaler.update()
            else:
                quadratic_step(scaler, [p], opt, [torch.full((6,), 0.3)], INF if t == 2 else None)
        assert not hasattr(opt, "grad_scale") and not hasattr(opt, "found_inf")
        runs.append((scaler.state_dict(), p.detach().clone(), opt.state_dict()["state"]))
    assert_bitwise(runs[0], runs[1])


def test_unscale_recovers_the_true_gradient_and_the_mutant_is_off_by_s_squared():
    g = torch.tensor([3e-6, -2.5, 1e-30, 0.0])
    grads = {}
    for cls in (E.GradScaler, TorchScaler, UnscaleByS):
        p = torch.zeros(4, requires_grad=True)
        scaler, opt = cls("cpu", init_scale=2.0**16), torch.optim.SGD([p], lr=1.0)
        scaler.scale((p * g).sum()).backward()
        assert torch.equal(p.grad, g * 2.0**16)  # the scaled gradient S g, exact for S = 2^16
        scaler.unscale_(opt)
        grads[cls] = p.grad.clone()
    assert torch.equal(grads[E.GradScaler], g) and torch.equal(grads[TorchScaler], g)
    assert torch.equal(grads[UnscaleByS], g * 2.0**32)


@pytest.mark.parametrize("scale", [2.0**16, 1000.0, 3.0**-5])
def test_unscale_of_mixed_dtypes_dense_and_sparse_equals_torch(scale):
    results = []
    for cls in (E.GradScaler, TorchScaler):
        generator = torch.Generator().manual_seed(0)
        params = [torch.zeros(50, dtype=dtype, requires_grad=True)
                  for dtype in (torch.float32, torch.float64, torch.bfloat16)]
        embedding = torch.nn.Embedding(10, 4, sparse=True)
        scaler = cls("cpu", init_scale=scale)
        opt = torch.optim.SGD([*params, embedding.weight], lr=1.0)
        loss = sum((p * torch.randn(50, generator=generator, dtype=torch.float64)
                    .mul(1e-3).to(p.dtype)).sum() for p in params)
        loss = loss + embedding(torch.tensor([1, 1, 3])).sum()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        found = sum(v.item() for v in scaler._found_inf_per_device(opt).values())
        results.append(([p.grad for p in params], embedding.weight.grad.to_dense(), found))
    assert_bitwise(results[0], results[1])
    assert results[0][2] == 0.0


def test_scale_handles_tensors_nested_containers_and_iterables_like_torch():
    ours, theirs = E.GradScaler("cpu", init_scale=4.0), TorchScaler("cpu", init_scale=4.0)
    half = torch.tensor([1.5, -2.0], dtype=torch.float16)
    nested = [torch.ones(2), (torch.tensor(3.0, dtype=torch.float64), [half])]
    for scaler in (ours, theirs):
        out = scaler.scale(nested)
        assert isinstance(out, list) and isinstance(out[1], tuple) and isinstance(out[1][1], list)
        assert out[1][1][0].dtype == torch.float16  # the 0-dim float32 scale does not promote
    assert_bitwise(ours.scale(nested), theirs.scale(nested))
    lazy = ours.scale(iter([torch.ones(1)]))
    assert type(lazy) is type(theirs.scale(iter([torch.ones(1)]))) is map
    assert_bitwise(list(lazy), [torch.full((1,), 4.0)])
    with pytest.raises(ValueError, match="outputs must be a Tensor or an iterable of Tensors"):
        ours.scale([torch.ones(1), 3.0])
    assert ours._scale.dtype == torch.float32 and ours._growth_tracker.dtype == torch.int32


def test_step_returns_what_the_optimizer_returns_and_none_when_skipped():
    class Returning(torch.optim.SGD):
        def step(self, closure=None):
            super().step(closure)
            return "stepped"

    for cls in (E.GradScaler, TorchScaler):
        p = torch.ones(2, requires_grad=True)
        scaler, opt = cls("cpu"), Returning([p], lr=0.1)
        assert quadratic_step(scaler, [p], opt, [torch.zeros(2)]) == "stepped"
        assert quadratic_step(scaler, [p], opt, [torch.zeros(2)], NAN) is None


def test_state_dict_has_torchs_keys_and_moves_between_ours_and_torchs():
    ours, theirs = E.GradScaler("cpu", growth_interval=3), TorchScaler("cpu", growth_interval=3)
    assert ours.state_dict() == theirs.state_dict()  # before the first scale()
    p, q = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    for _ in range(4):
        quadratic_step(ours, [p], torch.optim.SGD([p], lr=0.1), [torch.zeros(2)])
        quadratic_step(theirs, [q], torch.optim.SGD([q], lr=0.1), [torch.zeros(2)])
    assert ours.state_dict() == theirs.state_dict()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    restored = E.GradScaler("cpu")
    restored.load_state_dict(theirs.state_dict())
    assert restored.state_dict() == theirs.state_dict()
    restored_torch = TorchScaler("cpu")
    restored_torch.load_state_dict(ours.state_dict())
    assert restored_torch.state_dict() == ours.state_dict()
    clone = pickle.loads(pickle.dumps(ours))
    assert clone.state_dict() == ours.state_dict() and clone._scale is None


def test_update_with_a_new_scale():
    for cls in (E.GradScaler, TorchScaler):
        p = torch.ones(2, requires_grad=True)
        scaler, opt = cls("cpu"), torch.optim.SGD([p], lr=0.1)
        scaler.scale((p**2).sum()).backward()
        scaler.step(opt)
        scaler.update(1024.0)
        assert scaler.get_scale() == 1024.0
        scaler.scale((p**2).sum())
        scaler.update(torch.tensor(3.0))
        assert scaler.get_scale() == 3.0
    with pytest.raises(ValueError, match="new_scale should be a float or a 1-element"):
        scaler = E.GradScaler("cpu")
        scaler.scale(torch.ones(()))
        scaler.update(torch.ones(2))


def test_disabled_is_a_pass_through_as_in_torch():
    for cls in (E.GradScaler, TorchScaler):
        p = torch.ones(2, requires_grad=True)
        scaler, opt = cls("cpu", enabled=False), torch.optim.SGD([p], lr=0.5)
        loss = (p**2).sum()
        assert scaler.scale(loss) is loss and not scaler.is_enabled()
        loss.backward()
        assert scaler.unscale_(opt) is None and torch.equal(p.grad, torch.full((2,), 2.0))
        assert scaler.step(opt, lambda: "closure ran") == "closure ran"  # closures allowed
        scaler.update()
        scaler.load_state_dict({"scale": 8.0})
        assert scaler.get_scale() == 1.0 and scaler.state_dict() == {}
        assert torch.equal(p.detach(), torch.zeros(2))  # lr 0.5 * grad 2 = 1
    assert E.GradScaler("cpu", enabled=False).get_growth_factor() == 2.0  # torch's: AttributeError


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has CUDA")
def test_the_default_cuda_device_warns_and_disables_without_cuda_as_torch_does():
    for cls in (E.GradScaler, TorchScaler):
        with pytest.warns(UserWarning, match="CUDA is not available.  Disabling."):
            scaler = cls()
        assert not scaler.is_enabled()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert E.GradScaler("cpu").is_enabled() and E.GradScaler(torch.device("cpu")).is_enabled()


# --------------------------------------------------------------------------------------------
# Errors: bad arguments and calls out of order
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, error, torch_text", [
    (dict(growth_factor=1.0), ValueError, "The growth factor must be > 1.0."),
    (dict(growth_factor=0.5), ValueError, "The growth factor must be > 1.0."),
    (dict(backoff_factor=1.0), ValueError, "The backoff factor must be < 1.0."),
    (dict(backoff_factor=0.0), ValueError, None),
    (dict(backoff_factor=-0.5), ValueError, None),
    (dict(init_scale=-1.0), ValueError, None),
    (dict(init_scale=0.0), ValueError, None),
    (dict(growth_interval=2.5), TypeError, None),
    (dict(growth_interval=2.0), TypeError, None),
    (dict(growth_interval=0), ValueError, None),
    (dict(growth_factor="2"), TypeError, None),
])
def test_bad_arguments_raise_naming_what_was_expected(kwargs, error, torch_text):
    with pytest.raises(error, match="expected .* but got") as info:
        E.GradScaler("cpu", **kwargs)
    if torch_text:  # torch's own words come first
        with pytest.raises(AssertionError) as torch_info:
            TorchScaler("cpu", **kwargs)
        assert str(torch_info.value) == torch_text and str(info.value).startswith(torch_text)
    with pytest.raises(error):
        E.GradScaler("cpu", enabled=False, **kwargs)  # validated even when disabled


def test_setters_validate():
    scaler = E.GradScaler("cpu")
    with pytest.raises(ValueError, match="growth factor"):
        scaler.set_growth_factor(0.9)
    with pytest.raises(ValueError, match="backoff factor"):
        scaler.set_backoff_factor(1.5)
    with pytest.raises(TypeError, match="growth_interval"):
        scaler.set_growth_interval(10.0)
    scaler.set_growth_factor(1.5), scaler.set_backoff_factor(0.25), scaler.set_growth_interval(7)
    assert (scaler.get_growth_factor(), scaler.get_backoff_factor(),
            scaler.get_growth_interval()) == (1.5, 0.25, 7)


def scaled_backward(scaler, dtype=torch.float32):
    p = torch.ones(2, dtype=dtype, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    scaler.scale((p**2).sum()).backward()
    return opt


@pytest.mark.parametrize("cls", [E.GradScaler, TorchScaler])
def test_calls_out_of_order_raise_torchs_messages(cls):
    scaler = cls("cpu")
    opt = scaled_backward(scaler)
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match=r"unscale_\(\) has already been called on this "
                                           r"optimizer since the last update\(\)"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match=r"unscale_\(\) is being called after step\(\)"):
        scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match=r"step\(\) has already been called"):
        scaler.step(opt)
    scaler.update()
    with pytest.raises(RuntimeError, match="Closure use is not currently supported"):
        scaler.step(opt, closure=lambda: 0)
    with pytest.raises(ValueError, match="Attempting to unscale FP16 gradients."):
        scaler.unscale_(scaled_backward(scaler, torch.float16))


def test_our_call_order_errors_are_runtime_errors_where_torch_asserts():
    scaler = E.GradScaler("cpu")
    opt = torch.optim.SGD([torch.ones(2, requires_grad=True)], lr=0.1)
    for call in (lambda: scaler.step(opt), scaler.update, lambda: scaler.unscale_(opt)):
        with pytest.raises(RuntimeError, match=r"did not use scaler.scale\(loss or outputs\)"):
            call()
    scaler.scale(torch.ones(()))
    with pytest.raises(RuntimeError, match="No inf checks were recorded prior to update"):
        scaler.update()
    with pytest.raises(RuntimeError, match="No inf checks were recorded for this optimizer"):
        scaler.step(opt)  # no parameter has a gradient


# --------------------------------------------------------------------------------------------
# Precision helpers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cpu_autocast_casts_matmuls_down_losses_up_and_lets_the_rest_follow(dtype):
    rows = E.autocast_op_dtypes("cpu", dtype)
    for op in ("linear", "matmul", "conv1d"):
        assert rows[op] == (dtype, dtype)
    for op in ("cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits"):
        assert rows[op] == (torch.float32, torch.float32)
    # on the CPU softmax / log_softmax / layer_norm are not on the float32 list: they follow
    for op in ("relu", "gelu", "exp", "sum", "softmax", "log_softmax", "layer_norm"):
        assert rows[op] == (torch.float32, dtype)


def small_classifier():
    from helpers.data import linear_classification

    X, y = linear_classification(256, 16, 4, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 4))
    return model, X.float(), y


def test_autocast_module_dtypes_of_a_small_model():
    model, X, y = small_classifier()
    rows = E.autocast_module_dtypes(model, X, y, torch.nn.CrossEntropyLoss())
    bf16, f32 = torch.bfloat16, torch.float32
    assert [(r["type"], r["input"], r["output"]) for r in rows] == [
        ("Linear", f32, bf16), ("ReLU", bf16, bf16), ("Linear", bf16, bf16),
        ("CrossEntropyLoss", bf16, f32)]
    assert all(p.dtype == f32 for p in model.parameters())
    assert not model[0]._forward_hooks  # the hooks are gone


def test_autocast_error_against_float64():
    model, X, y = small_classifier()
    before = [p.detach().clone() for p in model.parameters()]
    errors = {dtype: E.autocast_error(model, X, y, dtype=dtype)
              for dtype in (torch.float32, torch.float16, torch.bfloat16)}
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert errors[torch.float32]["grad"] < 1e-6 and errors[torch.float32]["loss"] < 1e-6
    assert 1e-4 < errors[torch.bfloat16]["grad"] < 3e-2  # 8 significant bits: ~2**-9 per value
    assert errors[torch.float16]["grad"] < errors[torch.bfloat16]["grad"] / 3  # 3 more bits
    assert errors[torch.bfloat16]["loss"] < 1e-3


def test_float16_cast_fractions_with_and_without_a_loss_scale():
    grads = 10 ** torch.empty(20_000, dtype=torch.float64).uniform_(
        -10, -1, generator=torch.Generator().manual_seed(0))
    plain = E.float16_cast_fractions(grads)
    scaled = E.float16_cast_fractions(grads, 2.0**16)
    too_big = E.float16_cast_fractions(grads, 2.0**24)
    for fractions in (plain, scaled, too_big):
        assert math.isclose(sum(fractions.values()), 1.0)
    # log-uniform over 9 decades: below 2**-25 (~3.0e-8) is log10(3e-8 / 1e-10) / 9 ~ 27 %
    assert abs(plain["zero"] - math.log10(2.0**-25 / 1e-10) / 9) < 0.02
    assert abs(plain["subnormal"] - math.log10(2.0**-14 / 2.0**-25) / 9) < 0.02
    assert scaled["zero"] == 0 and scaled["overflow"] == 0 and scaled["subnormal"] < 0.12
    assert abs(too_big["overflow"] - math.log10(0.1 / (65520 / 2.0**24)) / 9) < 0.02
    exact = torch.tensor([2.0**-26, 2.0**-20, 1.0, 7e4, 0.0])  # zero, subnormal, normal, inf
    assert E.float16_cast_fractions(exact) == dict(zero=0.25, subnormal=0.25, normal=0.25,
                                                   overflow=0.25)
    with pytest.raises(ValueError, match="expected a finite scale > 0"):
        E.float16_cast_fractions(exact, -1.0)
    with pytest.raises(TypeError, match="expected a floating-point tensor"):
        E.float16_cast_fractions(torch.ones(3, dtype=torch.int64))


@pytest.mark.parametrize("scaler_class", [E.GradScaler, TorchScaler])
def test_clipping_before_unscale_clips_to_max_norm_over_s(scaler_class):
    g = torch.randn(100, generator=torch.Generator().manual_seed(1))
    small, large = [g / g.norm() * 0.5], [g[:60] / g.norm() * 4, g[60:] / g.norm() * 4]
    S = 2.0**16
    below = E.clip_order_effect(small, max_norm=1.0, scale=S, scaler_class=scaler_class)
    assert math.isclose(below["right_update_norm"], 0.5, rel_tol=1e-6)  # nothing to clip
    assert math.isclose(below["wrong_update_norm"], 1.0 / S, rel_tol=1e-5)  # clipped to 1/S
    assert math.isclose(below["too_small"], S / 2, rel_tol=1e-5)
    above = E.clip_order_effect(large, max_norm=1.0, scale=S, scaler_class=scaler_class)
    assert math.isclose(above["right_update_norm"], 1.0, rel_tol=1e-5)
    assert math.isclose(above["too_small"], S, rel_tol=1e-5)
    assert above["effective_max_norm"] == 1.0 / S


def test_clip_order_effect_is_the_same_with_torchs_scaler():
    g = [torch.linspace(-3, 3, 20)]
    assert (E.clip_order_effect(g, max_norm=0.1, scale=1000.0)
            == E.clip_order_effect(g, max_norm=0.1, scale=1000.0, scaler_class=TorchScaler))


def test_the_trajectory_rejects_a_bad_step_count():
    with pytest.raises(ValueError, match="expected a positive number of steps"):
        E.scaler_trajectory(E.GradScaler, **problem(), steps=0)
    with pytest.raises(ValueError, match="expected the name of a torch.optim optimizer"):
        E.scaler_trajectory(E.GradScaler, **problem(), optimizer="Adamm")


def test_the_public_names_exist():
    assert all(hasattr(E, name) for name in E.__all__)


def test_clip_order_effect_refuses_a_zero_gradient():
    with pytest.raises(ValueError, match="non-zero gradient"):
        E.clip_order_effect([torch.zeros(4)], max_norm=1.0)



def test_float16_cast_fractions_put_the_smallest_normal_in_one_class():
    # 2**-14 is float16's smallest normal (normal, not subnormal); 2**-15 is subnormal;
    # 65504 is the largest finite float16 (normal, not overflow)
    fractions = E.float16_cast_fractions(torch.tensor([2.0**-14, 2.0**-15, 65504.0, 2.0**-24]))
    assert fractions == dict(zero=0.0, subnormal=0.5, normal=0.5, overflow=0.0)
