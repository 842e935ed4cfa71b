"""helpers.regularization against torch: dropout's masks, modes and expectation; the penalties,
their gradients and SGD's weight_decay; soft-thresholding and the proximal L1 step."""

import pytest
import torch
import torch.nn.functional as F

from helpers import regularization as R
from helpers import verify as V


def test_every_registered_check_passes_on_the_cpu():
    table = V.run_checks(R.CHECKS, devices=["cpu"])
    assert table.ok and all(row.passed for row in table.rows if row.device == "cpu")
    assert sum(row.passed for row in table.rows) == 2 * 3 * len(R.CHECKS)  # value + grad, 3 dtypes


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_the_same_seed_gives_torchs_mask(p):
    x = torch.randn(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(7)
    ours = R.dropout(x, p)
    torch.manual_seed(7)
    assert torch.equal(ours, F.dropout(x, p))
    torch.manual_seed(8)
    assert not torch.equal(R.dropout(x, p), ours)  # another seed, another mask


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_the_expectation_is_preserved_and_the_kept_share_is_1_minus_p(p):
    torch.manual_seed(0)
    x = torch.full((200_000,), 3.0, dtype=torch.float64)
    y = R.dropout(x, p)
    kept = (y != 0).double().mean().item()
    assert abs(kept - (1 - p)) < 4 * (p * (1 - p) / len(x)) ** 0.5  # 4 standard errors
    assert torch.allclose(y[y != 0], torch.tensor(3.0 / (1 - p), dtype=torch.float64))
    assert abs(y.mean().item() - 3.0) < 4 * 3.0 * (p / (1 - p) / len(x)) ** 0.5


def test_without_the_scaling_the_expectation_shrinks():
    torch.manual_seed(0)
    x = torch.ones(100_000, dtype=torch.float64)
    unscaled = x * torch.empty_like(x).bernoulli_(0.5)  # the mistake: no 1 / (1 - p)
    assert abs(unscaled.mean().item() - 0.5) < 0.01 and abs(R.dropout(x, 0.5).mean() - 1) < 0.01


def test_modes_edges_and_inplace():
    x = torch.randn(50, dtype=torch.float64)
    assert R.dropout(x, 0.5, training=False) is x  # eval: the identity, as torch returns it
    torch.manual_seed(0)
    assert torch.equal(R.dropout(x, 0.0), x)
    with_nan = torch.tensor([1.0, float("nan"), float("inf")])
    assert torch.equal(R.dropout(with_nan, 1.0).isnan(), F.dropout(with_nan, 1.0).isnan())
    y = x.clone()
    torch.manual_seed(1)
    out = R.dropout(y, 0.3, inplace=True)
    torch.manual_seed(1)
    assert out is y and torch.equal(y, F.dropout(x, 0.3))
    module = R.Dropout(0.3)
    assert repr(module) == repr(torch.nn.Dropout(0.3)) == "Dropout(p=0.3, inplace=False)"
    module.eval()
    assert module(x) is x
    module.train()
    torch.manual_seed(2)
    assert torch.equal(module(x), (torch.manual_seed(2), torch.nn.Dropout(0.3)(x))[1])


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_a_bad_probability_is_refused_like_torch(bad):
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1, but "
                                         "got"):
        R.dropout(torch.ones(3), bad)
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        R.Dropout(bad)
    with pytest.raises(TypeError, match="p to be a number, but got str"):
        R.dropout(torch.ones(3), "0.5")


def test_probabilities_torch_accepts_are_accepted_and_p_0_draws_nothing():
    import numpy as np

    x = torch.randn(20, dtype=torch.float64)
    for p in (torch.tensor(0.5), np.float32(0.5), 0.5):
        torch.manual_seed(0)
        ours = R.dropout(x, p)
        torch.manual_seed(0)
        assert torch.equal(ours, F.dropout(x, 0.5))
    torch.manual_seed(1)
    assert R.dropout(x, 0.0) is x
    after_ours = torch.rand(3)
    torch.manual_seed(1)
    F.dropout(x, 0.0)
    assert torch.equal(after_ours, torch.rand(3))  # the same random stream afterwards


def test_the_l2_gradient_is_weight_decay_in_sgd_step_by_step():
    torch.manual_seed(0)
    X, y = torch.randn(64, 5, dtype=torch.float64), torch.randn(64, 1, dtype=torch.float64)
    models = [torch.nn.Linear(5, 1).double() for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    penalised = torch.optim.SGD(models[0].parameters(), lr=0.1, momentum=0.9)
    decayed = torch.optim.SGD(models[1].parameters(), lr=0.1, momentum=0.9, weight_decay=0.05)
    for _ in range(20):
        for model, optimizer, penalty in ((models[0], penalised, 0.05), (models[1], decayed, 0)):
            optimizer.zero_grad()
            loss = F.mse_loss(model(X), y) + R.l2_penalty(model.parameters(), penalty)
            loss.backward()
            optimizer.step()
    for p, q in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(p, q, rtol=1e-13, atol=1e-15)
    theta = torch.randn(4, dtype=torch.float64, requires_grad=True)
    R.l2_penalty([theta], 0.3).backward()
    assert torch.allclose(theta.grad, 0.3 * theta.detach(), rtol=1e-15)


def test_the_l1_penalty_and_its_subgradient():
    theta = torch.tensor([-2.0, 0.0, 0.5], dtype=torch.float64, requires_grad=True)
    penalty = R.l1_penalty(theta, 0.1)
    assert penalty.item() == pytest.approx(0.25)
    penalty.backward()
    assert theta.grad.tolist() == [-0.1, 0.0, 0.1]
    with pytest.raises(ValueError, match="expected l1 >= 0"):
        R.l1_penalty(theta, -1)
    with pytest.raises(TypeError, match="expected tensors"):
        R.l2_penalty([1.0, 2.0], 0.1)


def test_soft_threshold_is_the_minimiser_of_the_proximal_problem():
    x = torch.linspace(-2, 2, 41, dtype=torch.float64)
    z = torch.linspace(-3, 3, 60001, dtype=torch.float64)  # brute force over a fine grid
    objective = 0.5 * (z[None, :] - x[:, None]) ** 2 + 0.7 * z.abs()[None, :]
    brute = z[objective.argmin(1)]
    torch.testing.assert_close(R.soft_threshold(x, 0.7), brute, rtol=0, atol=1e-4)
    assert (R.soft_threshold(x, 0.7)[x.abs() <= 0.7] == 0).all()


def test_the_proximal_step_gives_exact_zeros_and_the_subgradient_step_does_not():
    torch.manual_seed(0)
    X = torch.randn(100, 20, dtype=torch.float64)
    w_true = torch.zeros(20, dtype=torch.float64)
    w_true[:3] = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64)
    y = X @ w_true + 0.1 * torch.randn(100, dtype=torch.float64)
    runs = {}
    for proximal in (True, False):
        w = torch.zeros(20, dtype=torch.float64, requires_grad=True)
        for _ in range(500):
            loss = F.mse_loss(X @ w, y) / 2 + (0 if proximal else R.l1_penalty(w, 0.1))
            (grad,) = torch.autograd.grad(loss, w)
            with torch.no_grad():
                w -= 0.05 * grad
            if proximal:
                R.proximal_l1_step([w], lr=0.05, l1=0.1)
        runs[proximal] = w.detach()
    assert (runs[True] == 0).sum() >= 15 and (runs[False] == 0).sum() == 0
    assert (runs[False].abs() < 0.01).sum() >= 15  # small, never exactly zero


def test_weight_decay_groups_leave_biases_and_norms_alone():
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8),
                                torch.nn.ReLU(), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))
    decay, no_decay = R.weight_decay_groups(model, 0.01)
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    assert [tuple(p.shape) for p in decay["params"]] == [(8, 4), (2, 8)]
    assert len(no_decay["params"]) == 6  # two biases, two norm scales, two norm shifts
    with pytest.raises(TypeError, match="the model, not model.parameters"):
        R.weight_decay_groups(model.parameters(), 0.01)
    recurrent = torch.nn.Sequential(torch.nn.LSTM(4, 8), torch.nn.PReLU())
    recurrent_decay, recurrent_exempt = R.weight_decay_groups(recurrent, 0.01)
    assert all(p.dim() == 2 for p in recurrent_decay["params"])
    assert len(recurrent_exempt["params"]) == 3  # two LSTM biases and the PReLU slope
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_weight_decay_groups_handle_rmsnorm_attention_biases_and_tied_weights():
    embedding = torch.nn.Embedding(10, 8)
    head = torch.nn.Linear(8, 10, bias=False)
    head.weight = embedding.weight  # tied
    model = torch.nn.ModuleDict({"embedding": embedding, "norm": torch.nn.RMSNorm(8),
                                 "attention": torch.nn.MultiheadAttention(8, 2), "head": head})
    decay, no_decay = R.weight_decay_groups(model, 0.1)
    every = decay["params"] + no_decay["params"]
    assert len({id(p) for p in every}) == len(every) == len(list(model.parameters()))
    assert model["norm"].weight in [p for p in no_decay["params"]]
    assert any(p is model["attention"].in_proj_bias for p in no_decay["params"])


def test_penalties_of_no_parameters_are_zero_tensors_and_strengths_must_be_numbers():
    assert torch.equal(R.l2_penalty([], 0.1), torch.zeros(()))
    assert torch.equal(R.l1_penalty([], 0.1), torch.zeros(()))
    half = [torch.ones(3, dtype=torch.float16), torch.ones(2, dtype=torch.float16)]
    assert R.l2_penalty(half, 0.5).dtype == torch.float16 and R.l2_penalty(half, 0.5) == 1.25
    with pytest.raises(TypeError, match="expected threshold to be a number, but got Tensor"):
        R.soft_threshold(torch.ones(2), torch.tensor(0.5))
