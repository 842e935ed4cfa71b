"""The training loop, checkpoints, the digits task of chapter 06 and its precomputed runs."""

import importlib.util
import math
import sys
import types

import pytest
import torch
import torch.nn.functional as F

import helpers.training as T
from helpers import optim as helpers_optim
from helpers import schedules
from helpers.data import digits


@pytest.fixture(scope="module")
def data():
    return digits(generator=torch.Generator().manual_seed(0))


def test_digits_split_is_complete_scaled_and_seeded(data):
    X_train, y_train, X_val, y_val = data
    assert len(y_train) + len(y_val) == 1797 and len(y_val) == round(0.25 * 1797)
    assert X_train.shape[1] == 64 and 0 <= X_train.min() and X_train.max() <= 1
    assert set(y_val.tolist()) == set(range(10))
    again = digits(generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(a, b) for a, b in zip(data, again))
    with pytest.raises(ValueError, match="expected 0 < val_fraction < 1"):
        digits(val_fraction=1.0)


def test_batches_cover_every_sample_once():
    batches = list(T.shuffled_batches(10, 4, torch.Generator().manual_seed(0)))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat(batches).tolist()) == list(range(10))
    with pytest.raises(ValueError, match="batch_size >= 1"):
        T.shuffled_batches(10, 0, torch.Generator())


def test_evaluate_counts_correct_argmax_and_restores_the_mode():
    model = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Identity())
    X = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    model.train()
    loss, accuracy = T.evaluate(model, X, y)
    assert model.training and accuracy == pytest.approx(2 / 3)
    assert loss == pytest.approx(F.cross_entropy(X, y).item())  # dropout was off


def set_modes(model, modes):
    for module, training in zip(model.modules(), modes):
        module.training = training


MODES = {"train": [True, True, True], "eval": [False, False, False],
         "mixed": [True, False, True]}  # e.g. a frozen dropout inside a model in training


@pytest.mark.parametrize("evaluation", ["evaluate", "evaluate_batches"])
@pytest.mark.parametrize("before", MODES)
def test_evaluation_gives_every_module_its_mode_back(before, evaluation):
    """Eval mode inside (dropout off: the loss is the plain one), and afterwards the mode each
    module had before: not train mode forced on a model that was in eval mode."""
    model = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Identity())
    X = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0]])
    y = torch.tensor([0, 1, 1])
    set_modes(model, MODES[before])
    if evaluation == "evaluate":
        loss = T.evaluate(model, X, y)[0]
    else:
        loss = T.evaluate_batches(model, [(X[:2], y[:2]), (X[2:], y[2:])])[0]
    assert loss == pytest.approx(F.cross_entropy(X, y).item())
    assert [m.training for m in model.modules()] == MODES[before]
    one_output = torch.nn.Sequential(model, torch.nn.Linear(2, 1))  # an error inside
    with pytest.raises(ValueError, match="expected logits of shape"):
        getattr(T, evaluation)(one_output, *((X, y) if evaluation == "evaluate" else ([(X, y)],)))
    assert [m.training for m in model.modules()] == MODES[before]


def test_evaluate_refuses_a_single_output():
    with pytest.raises(ValueError, match=r"logits of shape \(N, C\) with C >= 2"):
        T.evaluate(torch.nn.Linear(2, 1), torch.randn(4, 2), torch.zeros(4, dtype=torch.long))


def test_fit_records_every_step_and_steps_the_schedule_after_the_optimizer(data):
    model = T.digits_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = schedules.StepLR(optimizer, step_size=5, gamma=0.5)
    history = T.fit(model, optimizer, data, epochs=2, batch_size=256,
                    generator=torch.Generator().manual_seed(1), scheduler=scheduler)
    steps = 2 * math.ceil(len(data[1]) / 256)
    assert len(history.lrs) == len(history.step_losses) == steps
    assert history.lrs == [0.1 * 0.5 ** (i // 5) for i in range(steps)]
    assert len(history.val_losses) == len(history.val_accuracies) == 2
    assert history.val_losses[-1] < history.val_losses[0] and not history.diverged


def test_fit_stops_at_a_non_finite_loss(data):
    calls = []

    def loss_fn(logits, target):
        calls.append(1)
        loss = F.cross_entropy(logits, target)
        return loss * math.inf if len(calls) == 3 else loss

    model = T.digits_mlp()
    history = T.fit(model, torch.optim.SGD(model.parameters(), lr=0.1), data, epochs=3,
                    batch_size=128, generator=torch.Generator().manual_seed(1), loss_fn=loss_fn)
    assert history.diverged and len(history.step_losses) == 2 and history.val_losses == []


@pytest.mark.parametrize("schedule, warmup, first, last_below", [
    ("constant", 0, 1.0, 1.01),
    ("constant", 10, 0.01, 1.01),
    ("cosine", 0, 1.0, 0.01),
    ("cosine", 10, 0.01, 0.01),
    ("step", 0, 1.0, 0.02),
    ("one-cycle", 0, 1 / 25, 1e-4),
])
def test_make_scheduler_shapes(schedule, warmup, first, last_below):
    lrs = schedules.lr_sequence(lambda o: T.make_scheduler(o, schedule, 100, warmup), 1.0, 100)
    assert lrs[0] == pytest.approx(first)
    assert lrs[-1] < last_below
    if warmup:
        assert lrs[warmup] == pytest.approx(1.0) and max(lrs) == pytest.approx(1.0)


@pytest.mark.parametrize("total, warmup", [(264, 0), (264, 50), (100, 0), (100, 10), (3, 0)])
def test_make_scheduler_step_decays_after_the_first_and_second_third(total, warmup):
    lrs = schedules.lr_sequence(lambda o: T.make_scheduler(o, "step", total, warmup), 1.0, total)
    decays = [k for k in range(warmup + 1, total) if lrs[k] < lrs[k - 1] * 0.5]
    assert len(decays) == 2, f"expected 2 decays by 10, but got {len(decays)} at steps {decays}"
    assert lrs[-1] == pytest.approx(0.01)


def test_make_scheduler_refuses_bad_settings():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    with pytest.raises(ValueError, match="expected a schedule in"):
        T.make_scheduler(optimizer, "linear", 10)
    with pytest.raises(ValueError, match="0 <= warmup_steps < total_steps"):
        T.make_scheduler(optimizer, "cosine", 10, warmup_steps=10)


def test_grid_runs_every_setting_once_and_looks_up_the_nearest(data):
    grid = T.precompute_grid(data, lrs=[0.01, 0.1], schedules_=("constant", "one-cycle"),
                             warmups=(0, 5), epochs=1, batch_size=256)
    assert sorted(grid.runs) == [(0.01, "constant", 0), (0.01, "constant", 5),
                                 (0.01, "one-cycle", 0), (0.1, "constant", 0),
                                 (0.1, "constant", 5), (0.1, "one-cycle", 0)]
    assert grid.nearest_lr(0.05) == 0.1 and grid.nearest_lr(0.02) == 0.01
    assert grid.run(0.08, "constant", 4) is grid.runs[(0.1, "constant", 5)]
    assert grid.run(0.08, "one-cycle", 5) is grid.runs[(0.1, "one-cycle", 0)]
    assert grid.seconds > 0


def test_runs_are_repeatable(data):
    first = T.train_digits(data, 0.1, "cosine", 5, epochs=1, batch_size=256)
    second = T.train_digits(data, 0.1, "cosine", 5, epochs=1, batch_size=256)
    assert first.step_losses == second.step_losses


def test_a_float64_run_starts_where_the_float32_run_starts_and_trains_in_float64(data):
    double = tuple(t.double() if t.is_floating_point() else t for t in data)
    assert all(p.dtype == torch.float64 for p in T.digits_mlp(dtype=torch.float64).parameters())
    for p32, p64 in zip(T.digits_mlp(3).parameters(), T.digits_mlp(3, dtype=torch.float64)
                        .parameters()):
        assert torch.equal(p32.double(), p64)
    first = T.train_digits(data, 0.1, epochs=1, batch_size=256).step_losses[0]
    first64 = T.train_digits(double, 0.1, epochs=1, batch_size=256).step_losses[0]
    assert first64 == pytest.approx(first, rel=1e-6) and first64 != first  # computed in float64


def dropout_mlp(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3),
                               torch.nn.Linear(32, 10))


def torch_sgd(model):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=40)


def our_adam(model):
    optimizer = helpers_optim.Adam(model.parameters(), lr=0.01, weight_decay=1e-3)
    warmup = schedules.LinearLR(optimizer, start_factor=0.1, total_iters=5)
    cosine = schedules.CosineAnnealingLR(optimizer, T_max=35)
    return optimizer, schedules.SequentialLR(optimizer, [warmup, cosine], milestones=[5])


@pytest.mark.parametrize("make_optimizer", [torch_sgd, our_adam], ids=["torch", "ours"])
def test_a_resumed_run_is_bit_identical_to_an_uninterrupted_one(data, tmp_path, make_optimizer):
    small = tuple(t[:400] for t in data[:2]) + tuple(t[:100] for t in data[2:])

    def start():
        model = dropout_mlp(0)
        return (model, *make_optimizer(model), torch.Generator().manual_seed(1))

    model, optimizer, scheduler, generator = start()
    T.fit(model, optimizer, small, epochs=4, batch_size=50, generator=generator,
          scheduler=scheduler)

    model_a, optimizer_a, scheduler_a, generator_a = start()
    T.fit(model_a, optimizer_a, small, epochs=2, batch_size=50, generator=generator_a,
          scheduler=scheduler_a)
    T.save_checkpoint(tmp_path / "run.pt", model_a, optimizer_a, scheduler_a, generator_a,
                      epoch=2, best={"loss": 0.5, "at": [1, 2]})
    torch.manual_seed(123)  # a new process: other random state, other initial weights
    model_b, optimizer_b, scheduler_b, generator_b = start()
    torch.rand(7)
    extra = T.load_checkpoint(tmp_path / "run.pt", model_b, optimizer_b, scheduler_b,
                              generator_b)
    assert extra == {"epoch": 2, "best": {"loss": 0.5, "at": [1, 2]}}
    T.fit(model_b, optimizer_b, small, epochs=2, batch_size=50, generator=generator_b,
          scheduler=scheduler_b)

    for p, q in zip(model.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(p, q)  # bit for bit
    assert optimizer.param_groups[0]["lr"] == optimizer_b.param_groups[0]["lr"]
    for p in model.parameters():
        state, state_b = optimizer.state[p], optimizer_b.state[dict(zip(
            model.parameters(), model_b.parameters()))[p]]
        assert all(torch.equal(torch.as_tensor(state[k]), torch.as_tensor(state_b[k]))
                   for k in state)


def test_resuming_without_the_random_state_is_not_bit_identical(data, tmp_path):
    """The check above can fail: dropout draws from torch's global random state."""
    small = tuple(t[:400] for t in data[:2]) + tuple(t[:100] for t in data[2:])
    runs = []
    for restore_rng in (True, False):
        model = dropout_mlp(0)
        optimizer, _ = torch_sgd(model)
        generator = torch.Generator().manual_seed(1)
        T.fit(model, optimizer, small, epochs=1, batch_size=50, generator=generator)
        T.save_checkpoint(tmp_path / "run.pt", model, optimizer, generator=generator)
        saved_rng = torch.get_rng_state()
        torch.rand(3)
        T.load_checkpoint(tmp_path / "run.pt", model, optimizer, generator=generator)
        if not restore_rng:
            torch.set_rng_state(saved_rng)
            torch.rand(3)  # what a loader that forgets the random state leaves behind
        T.fit(model, optimizer, small, epochs=1, batch_size=50, generator=generator)
        runs.append([p.detach().clone() for p in model.parameters()])
    assert not all(torch.equal(p, q) for p, q in zip(*runs))


def test_a_checkpoint_of_another_model_is_refused_with_every_difference(tmp_path):
    model = T.digits_mlp()
    T.save_checkpoint(tmp_path / "run.pt", model, torch.optim.SGD(model.parameters(), lr=0.1))
    other = T.digits_mlp(hidden=32)
    with pytest.raises(ValueError, match=r"other shapes \(0.weight: checkpoint \(64, 64\), "
                                         r"model \(32, 64\)"):
        T.load_checkpoint(tmp_path / "run.pt", other, torch.optim.SGD(other.parameters(), lr=0.1))
    deeper = torch.nn.Sequential(*T.digits_mlp(), torch.nn.ReLU(), torch.nn.Linear(10, 10))
    with pytest.raises(ValueError, match=r"missing keys \['4.weight', '4.bias'\]"):
        T.load_checkpoint(tmp_path / "run.pt", deeper,
                          torch.optim.SGD(deeper.parameters(), lr=0.1))


def test_extra_values_must_load_without_running_code(tmp_path):
    model = T.digits_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match=r"expected note\['how'\] to be a tensor, number, "
                                        r"string.*but got function"):
        T.save_checkpoint(tmp_path / "run.pt", model, optimizer, note={"how": lambda: 0})
    T.save_checkpoint(tmp_path / "run.pt", model, optimizer, scheduler=None, epoch=3)
    other = T.digits_mlp(seed=1)
    before = [p.detach().clone() for p in other.parameters()]
    other_optimizer = torch.optim.SGD(other.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="expected a scheduler state"):
        T.load_checkpoint(tmp_path / "run.pt", other, other_optimizer,
                          scheduler=torch.optim.lr_scheduler.StepLR(other_optimizer, 2))
    assert all(torch.equal(p, q) for p, q in zip(other.parameters(), before))  # nothing loaded
    with pytest.raises(ValueError, match="saved without a generator"):
        T.load_checkpoint(tmp_path / "run.pt", model, optimizer, generator=torch.Generator())


# --------------------------------------------------------------------------------------------
# Evaluation in batches and early stopping
# --------------------------------------------------------------------------------------------


def test_evaluate_batches_equals_one_pass_whatever_the_batches(data):
    from helpers import metrics
    from helpers.data import loader

    model = dropout_mlp(0)
    model.train()
    X, y = data[2], data[3]
    loss, accuracy = T.evaluate(model, X, y)
    for batch_size in (1, 64, 100, len(y)):
        batch_loss, counts = T.evaluate_batches(model, loader(X, y, batch_size=batch_size))
        assert batch_loss == pytest.approx(loss, rel=1e-6)
        assert counts.accuracy_score().item() == pytest.approx(accuracy, rel=1e-12)
        with torch.no_grad():
            model.eval()
            predicted = model(X).argmax(1)
            model.train()
        assert torch.equal(counts.confusion_matrix(), metrics.confusion_matrix(y, predicted))
    assert model.training  # the mode is given back
    with pytest.raises(ValueError, match="at least one batch"):
        T.evaluate_batches(model, [])
    with pytest.raises(ValueError, match=r"logits of shape \(N, C\) with C >= 2"):
        T.evaluate_batches(torch.nn.Linear(64, 1), [(X, y)])


def test_early_stopping_counts_patience_and_keeps_the_best_weights():
    model = torch.nn.Linear(2, 2)
    stopper = T.EarlyStopping(patience=2, min_delta=0.1)
    decisions = []
    for epoch, loss in enumerate([1.0, 0.8, 0.75, 0.85, 0.5], start=1):
        with torch.no_grad():
            model.weight.fill_(epoch)
        decisions.append(stopper.step(loss, model))
        if decisions[-1]:
            break
    # 0.75 and 0.85 do not beat 0.8 by more than 0.1 -> stop after epoch 4, best epoch 2
    assert decisions == [False, False, False, True] and stopper.bad_epochs == 2
    assert stopper.best_epoch == 2 and stopper.best_loss == 0.8
    stopper.restore(model)
    assert (model.weight == 2).all()
    with pytest.raises(ValueError, match="patience to be an integer >= 1"):
        T.EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="at least one recorded epoch"):
        T.EarlyStopping().restore(model)


def test_fit_with_early_stopping_stops_and_restores_the_best_epoch(data):
    small = tuple(t[:300] for t in data[:2]) + tuple(t[:100] for t in data[2:])
    model = dropout_mlp(0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0, momentum=0.9)
    stopper = T.EarlyStopping(patience=3)
    history = T.fit(model, optimizer, small, epochs=60, batch_size=30,
                    generator=torch.Generator().manual_seed(1), early_stopping=stopper)
    best = min(range(len(history.val_losses)), key=history.val_losses.__getitem__)
    assert len(history.val_losses) == best + 1 + 3 < 60  # stopped 3 epochs after the best
    assert history.best_epoch == best + 1
    assert T.evaluate(model, small[2], small[3])[0] == pytest.approx(history.val_losses[best],
                                                                     rel=1e-6)


def test_a_resume_with_early_stopping_in_the_checkpoint_is_bit_identical(data, tmp_path):
    small = tuple(t[:300] for t in data[:2]) + tuple(t[:100] for t in data[2:])

    def start():
        model = dropout_mlp(0)
        return (model, torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9),
                torch.Generator().manual_seed(1), T.EarlyStopping(patience=3))

    model, optimizer, generator, stopper = start()
    whole = T.fit(model, optimizer, small, epochs=30, batch_size=30, generator=generator,
                  early_stopping=stopper)
    assert whole.stopped and len(whole.val_losses) > 3

    model_a, optimizer_a, generator_a, stopper_a = start()
    first = T.fit(model_a, optimizer_a, small, epochs=3, batch_size=30, generator=generator_a,
                  early_stopping=stopper_a)
    assert not first.stopped  # the epochs ran out: the last epoch's weights, ready to go on
    T.save_checkpoint(tmp_path / "run.pt", model_a, optimizer_a, generator=generator_a,
                      stopper=stopper_a.state_dict())
    model_b, optimizer_b, generator_b, stopper_b = start()
    stopper_b.load_state_dict(T.load_checkpoint(tmp_path / "run.pt", model_b, optimizer_b,
                                                generator=generator_b)["stopper"])
    rest = T.fit(model_b, optimizer_b, small, epochs=27, batch_size=30, generator=generator_b,
                 early_stopping=stopper_b)
    assert first.val_losses + rest.val_losses == whole.val_losses
    assert rest.stopped and rest.best_epoch == whole.best_epoch
    for p, q in zip(model.parameters(), model_b.parameters(), strict=True):
        assert torch.equal(p, q)


def test_fit_in_two_calls_with_early_stopping_is_one_run(data):
    small = tuple(t[:300] for t in data[:2]) + tuple(t[:100] for t in data[2:])
    runs = []
    for parts in ((12,), (5, 7)):
        model = dropout_mlp(0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        generator, stopper = torch.Generator().manual_seed(1), T.EarlyStopping(patience=20)
        losses = []
        for epochs in parts:
            losses += T.fit(model, optimizer, small, epochs=epochs, batch_size=30,
                            generator=generator, early_stopping=stopper).val_losses
        runs.append((losses, [p.clone() for p in model.parameters()], stopper.best_epoch))
    assert runs[0][0] == runs[1][0] and runs[0][2] == runs[1][2]
    assert all(torch.equal(p, q) for p, q in zip(runs[0][1], runs[1][1]))


def test_evaluate_batches_gives_the_mode_back_and_builds_no_graph(data):
    model = dropout_mlp(0)
    X, y = data[2][:50], data[3][:50]
    requires_grad = []
    model.register_forward_hook(lambda module, inputs, output:
                                requires_grad.append(output.requires_grad))
    for training_mode in (False, True):
        model.train(training_mode)
        T.evaluate_batches(model, [(X, y)])
        assert all(m.training == training_mode for m in model.modules())
    assert requires_grad == [False, False]


def test_evaluate_batches_skips_empty_batches_and_names_a_label_column(data):
    model = dropout_mlp(0)
    X, y = data[2][:50], data[3][:50]
    loss, counts = T.evaluate_batches(model, [(X[:0], y[:0]), (X, y), (X[:0], y[:0])])
    assert loss == pytest.approx(T.evaluate(model, X, y)[0], rel=1e-12)
    assert counts.confusion_matrix().sum() == 50
    with pytest.raises(ValueError, match=r"labels of shape \(N,\), but got \(50, 1\)"):
        T.evaluate_batches(model, [(X, y[:, None])])


def test_early_stopping_ties_are_not_improvements_and_min_delta_must_be_a_number():
    model = torch.nn.Linear(2, 2)
    stopper = T.EarlyStopping(patience=2)
    assert [stopper.step(1.0, model) for _ in range(3)] == [False, False, True]
    assert stopper.best_epoch == 1
    for bad in ("a", -0.1, math.nan, True):
        with pytest.raises(ValueError, match="min_delta >= 0"):
            T.EarlyStopping(min_delta=bad)


def test_early_stopping_watches_the_validation_loss_not_the_training_loss(data):
    X, y = data[0][:300], data[1][:300]
    # validation labels shifted by one: the better the model learns, the worse validation gets
    model = T.digits_mlp(0, hidden=16)
    history = T.fit(model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
                    (X, y, X[:100], (y[:100] + 1) % 10), epochs=20, batch_size=30,
                    generator=torch.Generator().manual_seed(1),
                    early_stopping=T.EarlyStopping(patience=3))
    assert history.stopped and history.best_epoch == 1 and len(history.val_losses) == 4
    assert history.train_losses[-1] < history.train_losses[0]


def test_fit_reports_the_best_epoch_when_the_epochs_run_out(data):
    small = tuple(t[:300] for t in data[:2]) + tuple(t[:100] for t in data[2:])
    model = dropout_mlp(0)
    stopper = T.EarlyStopping(patience=20)
    history = T.fit(model, torch.optim.SGD(model.parameters(), lr=0.05), small, epochs=3,
                    batch_size=30, generator=torch.Generator().manual_seed(1),
                    early_stopping=stopper)
    assert not history.stopped and history.best_epoch == stopper.best_epoch >= 1


class Opaque:
    """An object that only full unpickling (which runs code) could rebuild."""


def test_a_checkpoint_is_loaded_with_weights_only(tmp_path):
    import pickle

    model = T.digits_mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    T.save_checkpoint(tmp_path / "run.pt", model, optimizer)
    checkpoint = torch.load(tmp_path / "run.pt", weights_only=True)
    checkpoint["extra"] = {"x": Opaque()}
    torch.save(checkpoint, tmp_path / "bad.pt")
    with pytest.raises(pickle.UnpicklingError):
        T.load_checkpoint(tmp_path / "bad.pt", model, optimizer)
    torch.save({"weights": model.state_dict()}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match=r"a checkpoint written by save_checkpoint .*but got "
                                         r"\['weights'\]"):
        T.load_checkpoint(tmp_path / "other.pt", model, optimizer)


def test_refusals_leave_the_objects_untouched(tmp_path):
    model = T.digits_mlp(0)
    T.save_checkpoint(tmp_path / "run.pt", model, torch.optim.Adam(model.parameters()),
                      scheduler=None)
    fresh = T.digits_mlp(1)
    before = [p.clone() for p in fresh.parameters()]
    refusals = [
        (lambda: T.load_checkpoint(tmp_path / "run.pt", fresh,
                                   torch.optim.Adam(fresh.parameters()),
                                   generator=torch.Generator()), "saved without a generator"),
        (lambda: T.load_checkpoint(tmp_path / "run.pt", fresh,
                                   torch.optim.SGD(fresh.parameters(), lr=0.1)),
         "a SGD optimizer, but it holds the state of a Adam"),
        (lambda: T.load_checkpoint(tmp_path / "run.pt", fresh, torch.optim.Adam(
            [{"params": list(fresh.parameters())[:2]}, {"params": list(fresh.parameters())[2:]}])),
         r"parameter groups of sizes \[4\], as in the checkpoint, but got \[2, 2\]"),
        (lambda: T.load_checkpoint(tmp_path / "run.pt", fresh.double(),
                                   torch.optim.Adam(fresh.parameters())),
         "other dtypes"),
    ]
    for load, message in refusals:
        with pytest.raises(ValueError, match=message):
            load()
        fresh.float()
        assert all(torch.equal(p, q) for p, q in zip(before, fresh.parameters()))


def test_extra_numpy_scalars_are_refused_with_a_hint(tmp_path):
    import numpy as np

    model = T.digits_mlp()
    with pytest.raises(TypeError, match=r"got float64 \(convert it with .item\(\)\)"):
        T.save_checkpoint(tmp_path / "run.pt", model, torch.optim.SGD(model.parameters(), lr=1),
                          best=np.float64(0.5))


def test_fit_can_evaluate_the_training_set_in_eval_mode(data):
    small = tuple(t[:200] for t in data[:2]) + tuple(t[:100] for t in data[2:])
    runs = []
    for evaluate_train in (False, True):
        model = dropout_mlp(0)
        history = T.fit(model, torch.optim.SGD(model.parameters(), lr=0.1), small, epochs=3,
                        batch_size=50, generator=torch.Generator().manual_seed(1),
                        evaluate_train=evaluate_train)
        runs.append(history)
    assert runs[0].train_eval_losses == [] and len(runs[1].train_eval_losses) == 3
    assert runs[1].val_losses == runs[0].val_losses  # evaluating draws nothing: the same run
    assert runs[1].train_eval_losses[-1] == pytest.approx(T.evaluate(model, *small[:2])[0])


def test_cached_computes_once_then_reads_back_and_recomputes_on_another_argument(tmp_path):
    """The cache that keeps the apps' training runs: one computation per argument, the same result
    read back, a file per function (the older one replaced)."""
    calls = []

    def squares(n):
        calls.append(n)
        return {"squares": torch.arange(n) ** 2}

    first = T.cached(squares, 4, cache_dir=tmp_path)
    again = T.cached(squares, 4, cache_dir=tmp_path)
    assert calls == [4] and torch.equal(first["squares"], again["squares"])
    assert T.cached(squares, torch.tensor(5), cache_dir=tmp_path)["squares"].tolist() == [
        0, 1, 4, 9, 16]
    assert [int(n) for n in calls] == [4, 5] and len(list(tmp_path.glob("*squares-*.pkl"))) == 1
    assert T.fingerprint(squares, torch.ones(3)) != T.fingerprint(squares, torch.ones(3).double())
    assert T.fingerprint(squares, torch.ones(3)) == T.fingerprint(squares, torch.ones(3))


def _scaled(n, *, scale=1):
    return n * scale


def test_the_fingerprint_depends_on_keyword_arguments_too(tmp_path):
    assert T.fingerprint(_scaled, 3, scale=2) != T.fingerprint(_scaled, 3, scale=5)
    assert T.cached(_scaled, 3, scale=2, cache_dir=tmp_path) == 6
    assert T.cached(_scaled, 3, scale=5, cache_dir=tmp_path) == 15


def _defined(folder, source: str):
    """The function `twice` of a module named `cell`, loaded from `source` written in `folder`:
    the same name each time, as a notebook cell run again after an edit."""
    path = folder / "cell.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("cell", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.twice


def test_the_fingerprint_depends_on_the_function_s_source(tmp_path):
    """The same function name with another body computes afresh."""
    (tmp_path / "old").mkdir()
    (tmp_path / "new").mkdir()
    old = _defined(tmp_path / "old", "def twice(x):\n    return 2 * x\n")
    new = _defined(tmp_path / "new", "def twice(x):\n    return x + x + 1\n")
    assert (old.__module__, old.__qualname__) == (new.__module__, new.__qualname__)
    assert T.fingerprint(old, 1) != T.fingerprint(new, 1)


def test_the_fingerprint_depends_on_the_source_of_the_helpers_modules_imported(tmp_path,
                                                                               monkeypatch):
    module_file = tmp_path / "probe.py"
    module_file.write_text("VALUE = 1\n")
    probe = types.ModuleType("helpers._fingerprint_probe")
    probe.__file__ = str(module_file)
    monkeypatch.setitem(sys.modules, probe.__name__, probe)
    before = T.fingerprint(_scaled, 1)
    module_file.write_text("VALUE = 2\n")
    assert T.fingerprint(_scaled, 1) != before
