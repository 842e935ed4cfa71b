"""helpers.efficiency.memory: gradient accumulation against the big batch, memory accounting against
torch's own tensors and saved-tensor hooks, activation checkpointing, and the ZeRO paper's
numbers. Every comparison is shown to catch a wrong implementation (a mutant)."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import verify as V
from helpers.efficiency import memory as M

F64 = dict(rtol=1e-12, atol=1e-12)


def _problem(dtype=torch.float64, batch=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 6, generator=generator, dtype=dtype)
    y = torch.randn(batch, 3, generator=generator, dtype=dtype)
    torch.manual_seed(seed)
    return M.mlp((6, 10, 3), activation=nn.Tanh, dtype=dtype), x, y


def _big_batch_gradients(model, x, y, loss_fn=F.mse_loss):
    model.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def _accumulated(model, x, y, micro_batches, accumulate=M.accumulate_gradients,
                 loss_fn=F.mse_loss):
    model.zero_grad(set_to_none=True)
    loss = accumulate(model, loss_fn, x, y, micro_batches)
    return loss, [p.grad.clone() for p in model.parameters()]


def _close(a, b, **tolerance):
    try:
        for u, v in zip(a, b, strict=True):
            torch.testing.assert_close(u, v, **tolerance)
    except AssertionError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Registered checks
# --------------------------------------------------------------------------------------------


def test_every_registered_check_passes_on_the_cpu():
    table = V.run_checks(M.MEMORY_CHECKS, devices=["cpu"])
    assert table.ok and len(table) == 2 + 2 + 2 + 3
    assert all(row.passed for row in table.rows)


# --------------------------------------------------------------------------------------------
# Gradient accumulation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("micro_batches", [1, 2, 3, 4, 5, 16, [7, 5, 4], [12, 2, 2], [1] * 16])
def test_accumulated_gradients_equal_the_big_batch_in_float64(micro_batches):
    model, x, y = _problem()
    loss, grads = _big_batch_gradients(model, x, y)
    acc_loss, acc_grads = _accumulated(model, x, y, micro_batches)
    assert _close(acc_grads, grads, **F64)
    torch.testing.assert_close(acc_loss, loss, **F64)


@pytest.mark.parametrize("micro_batches", [3, [7, 5, 4]])
def test_accumulated_gradients_equal_the_big_batch_in_float32(micro_batches):
    model, x, y = _problem(torch.float32)
    assert _close(_accumulated(model, x, y, micro_batches)[1], _big_batch_gradients(model, x, y)[1])


def test_accumulation_with_cross_entropy_and_a_3d_input():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    x = torch.randn(11, 2, 4, dtype=torch.float64)
    y = torch.randint(3, (11, 2))

    def loss_fn(logits, target):  # a mean over every (sample, position) pair: n_i / N still holds
        return F.cross_entropy(logits.flatten(0, 1), target.flatten())

    assert _close(_accumulated(model, x, y, 4, loss_fn=loss_fn)[1],
                  _big_batch_gradients(model, x, y, loss_fn)[1], **F64)


def test_accumulation_adds_to_existing_gradients_like_backward():
    model, x, y = _problem()
    _, grads = _big_batch_gradients(model, x, y)
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    M.accumulate_gradients(model, F.mse_loss, x, y, 3)
    assert _close([p.grad for p in model.parameters()], [g + 1 for g in grads], **F64)


def test_micro_batch_sizes_are_those_of_tensor_split():
    for n, k in [(16, 3), (10, 4), (7, 7), (5, 1)]:
        expected = [len(part) for part in torch.tensor_split(torch.arange(n), k)]
        assert M.micro_batch_sizes(n, k) == expected
    assert M.micro_batch_sizes(16, [7, 5, 4]) == [7, 5, 4]
    assert M.micro_batch_sizes(16, (8, 8)) == [8, 8]


def test_mutant_without_the_weight_gives_k_times_the_gradient():
    model, x, y = _problem()
    _, grads = _big_batch_gradients(model, x, y)
    for k in (2, 4):
        _, wrong = _accumulated(model, x, y, k, M.accumulate_without_scaling)
        assert not _close(wrong, grads)  # caught
        assert _close(wrong, [k * g for g in grads], **F64)  # exactly k times too large
        result = M.gradient_discrepancy(model, F.mse_loss, x, y, k, M.accumulate_without_scaling)
        assert result["norm_ratio"] == pytest.approx(k, rel=1e-12)
        assert result["relative_error"] == pytest.approx(k - 1, rel=1e-12)


def test_mutant_mean_of_means_is_only_right_for_equal_sizes():
    model, x, y = _problem()
    _, grads = _big_batch_gradients(model, x, y)
    _, equal = _accumulated(model, x, y, [4, 4, 4, 4], M.accumulate_mean_of_means)
    assert _close(equal, grads, **F64)
    _, unequal = _accumulated(model, x, y, [12, 2, 2], M.accumulate_mean_of_means)
    assert not _close(unequal, grads)  # caught
    # each sample of micro-batch i weighs 1 / (k n_i): the same as the right weights n_i / N
    # applied to per-sample weights (N / (k n_i)) -- check the claim directly
    weights = torch.cat([torch.full((n,), 16 / (3 * n), dtype=torch.float64)
                         for n in (12, 2, 2)])

    def reweighted(output, target):
        return (weights[:, None] * (output - target) ** 2).mean()

    assert _close(unequal, _big_batch_gradients(model, x, y, reweighted)[1], **F64)
    assert M.gradient_discrepancy(model, F.mse_loss, x, y, [12, 2, 2],
                                  M.accumulate_mean_of_means)["relative_error"] > 0.1


def test_batchnorm_breaks_accumulation_even_with_the_right_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 3))
    model = model.double()
    _, x, y = _problem()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    assert M.gradient_discrepancy(model, F.mse_loss, x, y, 4)["relative_error"] > 0.1
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # on copies
    model.eval()  # running statistics instead of the batch's: the samples are independent again
    assert M.gradient_discrepancy(model, F.mse_loss, x, y, 4)["relative_error"] < 1e-12


def test_the_discrepancy_of_the_right_accumulation_is_rounding():
    model, x, y = _problem()
    result = M.gradient_discrepancy(model, F.mse_loss, x, y, [7, 5, 4])
    assert result["relative_error"] < 1e-14 and result["norm_ratio"] == pytest.approx(1, abs=1e-14)


@pytest.mark.parametrize("bad, error, message", [
    (0, ValueError, "at least 1 micro-batch, but got 0"),
    (-2, ValueError, "at least 1 micro-batch, but got -2"),
    (17, ValueError, "at most 16 micro-batches .* but got 17"),
    (2.0, TypeError, "as an int .* but got float"),
    ("2", TypeError, "but got str"),
    (True, TypeError, "but got bool"),
    ([8, 7], ValueError, "add up to the batch size 16, but got \\[8, 7\\]"),
    ([16, 0], ValueError, "every micro-batch size >= 1, but got 0"),
    ([8.0, 8], TypeError, "every micro-batch size to be an int, but got float"),
    ([], ValueError, "add up to the batch size 16"),
])
def test_bad_micro_batches_are_refused(bad, error, message):
    model, x, y = _problem()
    with pytest.raises(error, match=message):
        M.accumulate_gradients(model, F.mse_loss, x, y, bad)
    assert all(p.grad is None for p in model.parameters())  # refused before any backward


def test_bad_batches_are_refused():
    model, x, y = _problem()
    with pytest.raises(ValueError, match="same batch size, but got 16 and 15"):
        M.accumulate_gradients(model, F.mse_loss, x, y[:15], 2)
    with pytest.raises(TypeError, match="target to be a tensor, but got list"):
        M.accumulate_gradients(model, F.mse_loss, x, [1.0], 2)
    with pytest.raises(TypeError, match="loss_fn to be callable, but got str"):
        M.accumulate_gradients(model, "mse", x, y, 2)
    with pytest.raises(TypeError, match="torch.nn.Module, but got function"):
        M.gradient_discrepancy(lambda t: t, F.mse_loss, x, y, 2)


# --------------------------------------------------------------------------------------------
# Parameters, gradients, optimizer state
# --------------------------------------------------------------------------------------------


def _step(model, optimizer, x):
    model(x).square().mean().backward()
    optimizer.step()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_state_is_two_moments_and_a_float32_step_per_tensor(dtype):
    torch.manual_seed(0)
    model = M.mlp((5, 7, 3), dtype=dtype)
    n = sum(p.numel() for p in model.parameters())
    size = torch.empty((), dtype=dtype).element_size()
    optimizer = torch.optim.Adam(model.parameters())
    assert M.model_state_bytes(model, optimizer) == {"parameters": size * n, "gradients": 0,
                                                     "optimizer_state": 0}
    _step(model, optimizer, torch.randn(4, 5, dtype=dtype))
    assert M.gradient_bytes(model) == size * n
    assert M.optimizer_state_bytes(optimizer) == 2 * size * n + 4 * 4  # 4 tensors, 4-byte steps
    if dtype == torch.float32:
        assert M.model_state_bytes(model, optimizer) == M.adam_training_bytes(n, num_tensors=4)
    model.zero_grad()  # set_to_none=True by default: the gradient memory is gone
    assert M.gradient_bytes(model) == 0


def test_forgetting_the_step_tensors_is_caught():
    torch.manual_seed(0)
    model = M.mlp((5, 7, 3))
    optimizer = torch.optim.Adam(model.parameters())
    _step(model, optimizer, torch.randn(4, 5))
    n = sum(p.numel() for p in model.parameters())
    expected = M.adam_training_bytes(n, num_tensors=4)["optimizer_state"]
    only_moments = M.storage_bytes(v for s in optimizer.state.values()
                                   for k, v in s.items() if k != "step")  # the mutant
    assert M.optimizer_state_bytes(optimizer) == expected != only_moments
    assert expected - only_moments == 16
    steps = [s["step"] for s in optimizer.state.values()]
    assert all(t.dtype == torch.float32 and t.dim() == 0 and t.device.type == "cpu"
               for t in steps)


def test_the_step_follows_the_default_dtype():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = nn.Linear(3, 2)
        optimizer = torch.optim.Adam(model.parameters())
        _step(model, optimizer, torch.randn(4, 3))
    finally:
        torch.set_default_dtype(previous)
    assert M.optimizer_state_bytes(optimizer) == 2 * 8 * 8 + 2 * 8  # steps in float64 too


def test_sgd_state_and_shared_storages():
    torch.manual_seed(0)
    model = M.mlp((5, 7, 3))
    n = sum(p.numel() for p in model.parameters())
    plain = torch.optim.SGD(model.parameters(), lr=0.1)
    _step(model, plain, torch.randn(4, 5))
    assert M.optimizer_state_bytes(plain) == 0
    momentum = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _step(model, momentum, torch.randn(4, 5))
    assert M.optimizer_state_bytes(momentum) == 4 * n
    tied = nn.Linear(4, 4)
    assert M.parameter_bytes(nn.Sequential(tied, nn.ReLU(), tied)) == 4 * 20
    weight = torch.zeros(10)
    assert M.storage_bytes([weight, weight[2:], weight.view(2, 5)]) == 40  # one storage


def test_memory_accounting_refuses_what_it_cannot_count():
    with pytest.raises(TypeError, match="torch.nn.Module .* but got generator"):
        M.parameter_bytes(nn.Linear(2, 2).parameters())
    with pytest.raises(TypeError, match="torch.optim.Optimizer, but got dict"):
        M.optimizer_state_bytes({})
    with pytest.raises(TypeError, match="expected tensors, but got float"):
        M.storage_bytes([1.0])


# --------------------------------------------------------------------------------------------
# Saved for backward: by hand vs measured
# --------------------------------------------------------------------------------------------

CONFIGS = [((3, 4, 2), 5, 0.0), ((5, 7, 6, 3), 1, 0.3), ((8, 16, 16, 16, 4), 32, 0.5),
           ((10, 1, 10), 7, 1.0), ((4, 64, 2), 100, 0.1)]


@pytest.mark.parametrize("widths, batch, p", CONFIGS)
@pytest.mark.parametrize("mode", ["train", "eval", "input requires grad", "3-d input"])
def test_the_hand_count_matches_the_measurement(widths, batch, p, mode):
    torch.manual_seed(0)
    model = M.mlp(widths, p)
    model.train(mode != "eval")
    shape = (3, batch, widths[0]) if mode == "3-d input" else (batch, widths[0])
    x = torch.randn(shape, requires_grad=mode == "input requires grad")
    measured = M.saved_tensor_bytes(model, x)
    assert measured == M.mlp_saved_bytes(model, shape,
                                         input_requires_grad=mode == "input requires grad")
    assert measured.parameter_copies == 0


@pytest.mark.parametrize("activation", [nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.SiLU])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_hand_count_knows_what_each_activation_saves(activation, dtype):
    torch.manual_seed(0)
    model = M.mlp((6, 9, 5, 2), 0.25, activation=activation, dtype=dtype)
    x = torch.randn(8, 6, dtype=dtype)
    assert M.saved_tensor_bytes(model, x) == M.mlp_saved_bytes(model, x.shape)


def test_the_formula_of_a_plain_relu_mlp():
    # input m d0 + one output m d_i per hidden layer; the weights of every layer but the first
    widths, m, b = (6, 9, 5, 2), 8, 4
    counted = M.mlp_saved_bytes(M.mlp(widths), (m, widths[0]))
    assert counted.activations == m * (6 + 9 + 5) * b
    assert counted.parameters == (5 * 9 + 2 * 5) * b
    # dropout adds a mask and a new output per hidden layer
    with_dropout = M.mlp_saved_bytes(M.mlp(widths, 0.5), (m, widths[0]))
    assert with_dropout.activations == m * (6 + 3 * 9 + 3 * 5) * b


def test_counting_a_storage_twice_is_caught():
    torch.manual_seed(0)
    model = M.mlp((6, 9, 5, 2))
    x = torch.randn(8, 6)
    with M._recording_saved_tensors() as saved:
        model(x)
    per_save = sum(t.untyped_storage().nbytes() for t in saved)  # the mutant: once per save
    measured = M.saved_tensor_bytes(model, x)
    assert measured == M.mlp_saved_bytes(model, x.shape)
    assert per_save != measured.total
    assert per_save - measured.total == 8 * (9 + 5) * 4  # each ReLU output saved twice
    assert measured.saves - measured.storages == 2


def test_edge_cases_of_the_count():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5, bias=False), nn.ReLU(inplace=True), nn.Dropout(0.5),
                          nn.Linear(5, 3), nn.ReLU(inplace=True), nn.Linear(3, 2))
    x = torch.randn(6, 4)
    assert M.saved_tensor_bytes(model, x) == M.mlp_saved_bytes(model, x.shape)
    model[0].weight.requires_grad_(False)  # frozen first layer: it saves nothing
    assert M.saved_tensor_bytes(model, x) == M.mlp_saved_bytes(model, x.shape)
    tied = nn.Linear(4, 4)
    model = nn.Sequential(tied, nn.ReLU(), tied)
    assert M.saved_tensor_bytes(model, x) == M.mlp_saved_bytes(model, x.shape)
    with torch.no_grad():
        assert M.saved_tensor_bytes(model, x) == M.SavedBytes(0, 0, 0, 0)


def test_the_hand_count_refuses_other_layers():
    with pytest.raises(TypeError, match="only Linear, ReLU, .* but got BatchNorm1d"):
        M.mlp_saved_bytes(nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3)), (4, 3))
    with pytest.raises(ValueError, match="input with 3 features .* but got 5"):
        M.mlp_saved_bytes(M.mlp((3, 2)), (4, 5))
    with pytest.raises(ValueError, match="at least two widths"):
        M.mlp((3,))


def test_autocast_keeps_float32_states_and_halves_the_saved_activations():
    results = {}
    for dtype in (None, torch.bfloat16):
        torch.manual_seed(0)
        model = M.mlp((16, 64, 64, 4))
        optimizer = torch.optim.Adam(model.parameters())
        x, y = torch.randn(8, 16), torch.randn(8, 4)
        results[dtype] = M.training_step_memory(model, optimizer, x, y, autocast_dtype=dtype)
        assert all(p.dtype == p.grad.dtype == torch.float32 for p in model.parameters())
    plain, mixed = results[None], results[torch.bfloat16]
    n = sum(p.numel() for p in model.parameters())
    for part in ("parameters", "gradients", "optimizer_state"):  # the model states: unchanged
        assert plain[part] == mixed[part] == M.adam_training_bytes(n, "autocast",
                                                                    num_tensors=6)[part]
    # the two saved weights: by reference in float32 (free), as bfloat16 copies under autocast
    assert plain["saved_parameters"] == 4 * (64 * 64 + 4 * 64)
    assert mixed["saved_parameters"] == 0
    assert mixed["saved_parameter_copies"] == 2 * (64 * 64 + 4 * 64)
    # the activations: input, two ReLU outputs at half size; the loss (float32 on the CPU) keeps
    # the output cast back to float32 and the target
    assert plain["saved_activations"] == 4 * 8 * (16 + 64 + 64) + 2 * 4 * 8 * 4
    assert mixed["saved_activations"] == 2 * 8 * (16 + 64 + 64) + 2 * 4 * 8 * 4


# --------------------------------------------------------------------------------------------
# Activation checkpointing
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deep():
    torch.manual_seed(0)
    depth, width, batch = 16, 16, 4
    model = M.deep_mlp(width, depth)
    x = torch.randn(batch, width)
    return model, x, M.checkpoint_cost(model, x, 1), batch * width * 4


@pytest.mark.parametrize("segments", [1, 2, 3, 4, 5, 8, 9, 16])
def test_checkpointing_by_hand_and_measured(deep, segments):
    model, x, plain, unit = deep
    cost = M.checkpoint_cost(model, x, segments)
    assert cost.saved.activations == M.checkpoint_saved_activations(16, segments) * unit
    assert cost.forward_calls == M.checkpoint_forward_calls(16, segments)
    assert all(torch.equal(a, b) for a, b in zip(cost.gradients, plain.gradients))


def test_the_square_root_rule(deep):
    model, x, plain, unit = deep
    assert M.best_segments(16) == 4 == math.isqrt(16)
    assert [M.best_segments(n * n) for n in range(1, 11)] == list(range(1, 11))
    best = M.checkpoint_cost(model, x, 4)
    assert plain.saved.activations == 17 * unit and best.saved.activations == 8 * unit
    assert (plain.forward_calls, best.forward_calls) == (16, 16 + 12)
    # M(s) = s + L/s when s divides L
    assert all(M.checkpoint_saved_activations(16, s) == s + 16 // s for s in (1, 2, 4, 8, 16))


def test_forward_hooks_would_miss_the_last_recomputed_layer(deep):
    model, x, _, _ = deep
    calls = [0]
    handles = [block.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
               for block in model]
    try:
        M.checkpoint_cost(model, x, 4)
    finally:
        for handle in handles:
            handle.remove()
    # early stop aborts each recomputation inside its last layer: 3 segments, 3 hooks missed
    assert calls[0] == M.checkpoint_forward_calls(16, 4) - 3


def test_checkpointed_gradients_equal_the_plain_ones_with_dropout():
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Dropout(0.3))
                            for _ in range(6)])
    x = torch.randn(5, 8)
    torch.manual_seed(1)
    plain = M.checkpoint_cost(model, x, 1).gradients
    torch.manual_seed(1)
    checkpointed = M.checkpoint_cost(model, x, 3).gradients  # the same masks: RNG state kept
    assert all(torch.equal(a, b) for a, b in zip(plain, checkpointed))


def test_bad_segments_are_refused(deep):
    model, x, _, _ = deep
    with pytest.raises(ValueError, match="at most 16 segments for 16 layers, but got 17"):
        M.sequential_forward(model, x, 17)
    with pytest.raises(ValueError, match="segments >= 1, but got 0"):
        M.checkpoint_cost(model, x, 0)
    with pytest.raises(TypeError, match="segments to be an int, but got float"):
        M.checkpoint_saved_activations(16, 2.0)
    with pytest.raises(TypeError, match="nn.Sequential .* but got Linear"):
        M.sequential_forward(nn.Linear(2, 2), torch.ones(1, 2), 1)


# --------------------------------------------------------------------------------------------
# Mixed precision and ZeRO
# --------------------------------------------------------------------------------------------


def test_sixteen_bytes_per_parameter_either_way():
    n = 1000
    for precision in ("float32", "mixed", "autocast"):
        assert sum(M.adam_training_bytes(n, precision).values()) == 16 * n
    assert M.adam_training_bytes(n, "mixed") == {"parameters": 2 * n, "gradients": 2 * n,
                                                 "optimizer_state": 12 * n}
    assert M.adam_training_bytes(n, "float32") == M.adam_training_bytes(n, "autocast")
    with pytest.raises(ValueError, match="precision in .* but got 'float16'"):
        M.adam_training_bytes(n, "float16")


def test_the_zero_papers_figure_1():
    psi, devices = 7_500_000_000, 64
    totals = [sum(M.zero_bytes_per_device(psi, devices, stage).values()) for stage in range(4)]
    assert [M.format_bytes(t) for t in totals] == ["120.0 GB", "31.4 GB", "16.6 GB", "1.9 GB"]
    assert totals == [120e9, 31.40625e9, 16.640625e9, 1.875e9]
    assert M.fsdp_bytes_per_device(psi, devices) == M.zero_bytes_per_device(psi, devices, 3)
    assert M.fsdp_bytes_per_device(psi, devices, "SHARD_GRAD_OP") == \
        M.zero_bytes_per_device(psi, devices, 2)
    assert M.fsdp_bytes_per_device(psi, 8, "NO_SHARD") == M.zero_bytes_per_device(psi, 8, 0)
    # one device: nothing to share
    assert all(M.zero_bytes_per_device(psi, 1, s) == M.zero_bytes_per_device(psi, 1, 0)
               for s in range(4))


def test_zero_refuses_bad_input():
    with pytest.raises(ValueError, match="ZeRO stage in \\[0, 1, 2, 3\\], but got 4"):
        M.zero_bytes_per_device(10, 2, 4)
    with pytest.raises(ValueError, match="num_devices >= 1, but got 0"):
        M.zero_bytes_per_device(10, 0, 1)
    with pytest.raises(ValueError, match="sharding strategy in .* but got 'HYBRID_SHARD'"):
        M.fsdp_bytes_per_device(10, 2, "HYBRID_SHARD")


def test_format_bytes():
    assert M.format_bytes(512) == "512 B"
    assert M.format_bytes(1000) == "1.0 kB"
    assert M.format_bytes(1024, binary=True) == "1.0 KiB"
    assert M.format_bytes(16 * 2**30, binary=True) == "16.0 GiB"
    assert M.format_bytes(16 * 2**30) == "17.2 GB"
    assert M.format_bytes(2.5e15, digits=2) == "2.50 PB"
    with pytest.raises(ValueError, match=">= 0, but got -1"):
        M.format_bytes(-1)
    with pytest.raises(TypeError, match="number of bytes, but got str"):
        M.format_bytes("1 GB")


@pytest.mark.parametrize("mutant", [M.accumulate_without_scaling, M.accumulate_mean_of_means])
def test_the_registered_accumulation_checks_catch_the_mistakes(monkeypatch, mutant):
    monkeypatch.setattr(M, "accumulate_gradients", mutant)
    table = V.run_checks(M.MEMORY_CHECKS[:1], devices=["cpu"])
    assert [row.verdict for row in table.rows] == ["FAIL", "FAIL"]


def test_the_registered_count_check_catches_a_storage_counted_twice(monkeypatch):
    def per_save(saved, keys):  # the mutant: one entry per save instead of per storage
        total = sum(t.untyped_storage().nbytes() for t in saved)
        return M.SavedBytes(0, total, len(saved), len(saved))

    monkeypatch.setattr(M, "_summary", per_save)
    table = V.run_checks(M.MEMORY_CHECKS[3:], devices=["cpu"])
    assert all(row.failed for row in table.rows)


def test_format_bytes_moves_up_a_unit_when_the_rounding_reaches_it():
    assert M.format_bytes(999) == "999 B"
    assert M.format_bytes(999_999) == "1.0 MB"
    assert M.format_bytes(1024**2 - 1, binary=True) == "1.0 MiB"
    assert M.format_bytes(31_406_250_000) == "31.4 GB"


@pytest.mark.parametrize("stage", [[1], 1.0, "1", True])
def test_zero_stage_must_be_an_int(stage):
    with pytest.raises(TypeError, match="ZeRO stage as an int"):
        M.zero_bytes_per_device(10, 2, stage)


@pytest.mark.parametrize("loss_fn", [torch.nn.MSELoss(reduction="sum"),
                                     torch.nn.MSELoss(reduction="none")])
def test_accumulation_refuses_a_loss_that_is_not_a_mean(loss_fn):
    model = torch.nn.Linear(3, 1)
    with pytest.raises(ValueError, match="reduction='mean'"):
        M.accumulate_gradients(model, loss_fn, torch.randn(4, 3), torch.randn(4, 1), 2)


def test_accumulation_refuses_a_loss_of_several_numbers():
    model = torch.nn.Linear(3, 1)
    with pytest.raises(ValueError, match=r"one number.*shape \(2, 1\)"):
        M.accumulate_gradients(model, lambda out, y: (out - y) ** 2, torch.randn(4, 3),
                               torch.randn(4, 1), 2)



def test_zero_shards_the_gradients_from_stage_2_and_the_parameters_at_stage_3():
    psi, devices = 1000, 8  # K = 12: 2 Psi parameters, 2 Psi gradients, 12 Psi state
    assert [M.zero_bytes_per_device(psi, devices, stage) for stage in range(4)] == [
        {"parameters": 2000, "gradients": 2000, "optimizer_state": 12000},
        {"parameters": 2000, "gradients": 2000, "optimizer_state": 1500},
        {"parameters": 2000, "gradients": 250, "optimizer_state": 1500},
        {"parameters": 250, "gradients": 250, "optimizer_state": 1500}]


def test_best_segments_takes_the_smallest_s_on_a_tie():
    # L = 6: M(2) = 2 + 3 = M(3) = 3 + 2 = 5; s = 2 recomputes 3 layers, s = 3 recomputes 4
    assert M.checkpoint_saved_activations(6, 2) == M.checkpoint_saved_activations(6, 3) == 5
    assert M.checkpoint_forward_calls(6, 2) < M.checkpoint_forward_calls(6, 3)
    assert M.best_segments(6) == 2
