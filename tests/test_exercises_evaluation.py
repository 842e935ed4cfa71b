"""Exercise checkers of chapter 08: typical mistakes get their hint, nothing crashes, the
solutions pass.

The generic tests of tests/test_exercises.py (solutions pass, student notebooks run and say "not
implemented yet", student notebooks up to date) cover this chapter's notebooks too.
"""

import copy
import io
import math
import statistics
from pathlib import Path

import pytest
import scipy.stats
import sklearn.metrics as sk
import torch
from exercise_harness import exercise_tests, solutions_of
from scipy.special import ndtri

from helpers import metrics, stats, training
from helpers.exercises import evaluation as ev
from helpers.exercises import grading

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "exercises" / "solutions" / "08_training_and_evaluation.ipynb"

# --------------------------------------------------------------------------------------------
# A learner's answers, right and wrong, written as a learner would write them
# --------------------------------------------------------------------------------------------


def evaluation_loop(eval_mode=True, no_grad=True, restore="as it came", divide_by="samples"):
    def accuracy_over_loader(model, loader):
        was_training = model.training
        if eval_mode:
            model.eval()
        correct, total, per_batch = 0, 0, []
        with torch.set_grad_enabled(not no_grad):
            for X, y in loader:
                hits = (model(X).argmax(dim=1) == y).sum().item()
                correct, total = correct + hits, total + len(y)
                per_batch.append(hits / len(y))
        if restore == "as it came":
            model.train(was_training)
        elif restore == "train":
            model.train()
        if divide_by == "batches":
            return sum(per_batch) / len(per_batch)
        if divide_by == "full batches":
            return correct / (len(loader) * loader.batch_size)
        return correct / total
    return accuracy_over_loader


def source_loop(model, loader):  # the loop of task 1's statement
    accuracies = []
    for X, y in loader:
        logits = model(X)
        accuracies.append((logits.argmax(dim=1) == y).double().mean().item())
    return sum(accuracies) / len(accuracies)


def batch_confusions(batches, n_classes):
    for y_true, y_pred in batches:
        yield torch.bincount(y_true * n_classes + y_pred,
                             minlength=n_classes**2).reshape(n_classes, n_classes)


def recall_by_counts(batches, n_classes):
    C = sum(batch_confusions(batches, n_classes)).double()
    return C.diagonal() / C.sum(1)


def per_batch_recalls(batches, n_classes):
    return torch.stack([C.diagonal() / C.sum(1).double()
                        for C in batch_confusions(batches, n_classes)])


def support_weighted_recalls(batches, n_classes):
    # each batch's recall of class k weighted by its number of class-k samples: that IS the
    # pooled recall, sum_b TP_b / sum_b n_kb
    supports = torch.stack([C.sum(1).double() for C in batch_confusions(batches, n_classes)])
    return (per_batch_recalls(batches, n_classes).nan_to_num(0.0) * supports).sum(0) / (
        supports.sum(0))


def wilson(k, n, level=0.95, z=None, centre=None, quarter=True):
    z = ndtri((1 + level) / 2) if z is None else z
    middle = (k + z**2 / 2) / (n + z**2) if centre is None else centre
    half = z / (n + z**2) * math.sqrt(k * (n - k) / n + (z**2 / 4 if quarter else 0))
    return middle - half, middle + half


def wald(k, n, level=0.95, clip=False):
    p, z = k / n, ndtri((1 + level) / 2)
    half = z * math.sqrt(p * (1 - p) / n)
    return (max(0.0, p - half), min(1.0, p + half)) if clip else (p - half, p + half)


def bootstrap(draw="paired", alpha_per_side=2, interval="percentile"):
    def bootstrap_accuracy_ci(y_true, y_pred, n_resamples, generator, confidence_level=0.95):
        n = len(y_true)
        if draw == "without replacement":
            rows = [torch.randperm(n, generator=generator) for _ in range(n_resamples)]
            accuracies = torch.stack([(y_true[i] == y_pred[i]).double().mean() for i in rows])
        elif draw == "unpaired":
            i = torch.randint(n, (n_resamples, n), generator=generator)
            j = torch.randint(n, (n_resamples, n), generator=generator)
            accuracies = (y_true[i] == y_pred[j]).double().mean(1)
        else:
            i = torch.randint(n, (n_resamples, n), generator=generator)
            accuracies = (y_true[i] == y_pred[i]).double().mean(1)
        alpha = 1 - confidence_level
        if interval == "normal":
            z = ndtri(1 - alpha / 2)
            mean, std = accuracies.mean().item(), accuracies.std().item()
            return mean - z * std, mean + z * std
        if interval == "sorted":  # the nearest order statistics, no interpolation
            ordered = accuracies.sort().values
            return (ordered[int(alpha / 2 * n_resamples)].item(),
                    ordered[int((1 - alpha / 2) * n_resamples) - 1].item())
        q = torch.tensor([alpha / alpha_per_side, 1 - alpha / alpha_per_side], dtype=torch.float64)
        return torch.quantile(accuracies, q)
    return bootstrap_accuracy_ci


def discordant(y_true, a, b):
    a_right, b_right = a == y_true, b == y_true
    return int((a_right & ~b_right).sum()), int((~a_right & b_right).sum())


def concordant(y_true, a, b):
    a_right, b_right = a == y_true, b == y_true
    return int((a_right & b_right).sum()), int((~a_right & ~b_right).sum())


def binomial_test(cells, trials=None, sides=2, cap=True):
    b, c = cells
    n = b + c if trials is None else trials
    p = sides * sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, p) if cap else p


def chi_square_test(y, a, b):  # with continuity correction, 1 degree of freedom
    b_cell, c_cell = discordant(y, a, b)
    return math.erfc(math.sqrt((abs(b_cell - c_cell) - 1) ** 2 / (b_cell + c_cell) / 2))


def checkpoint(model, optimizer, scheduler, generator, epoch, /, **changes):
    entries = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
               "scheduler": scheduler.state_dict(), "generator": generator.get_state(),
               "torch_rng": torch.get_rng_state(), "epoch": epoch}
    entries.update(changes)
    return {key: value for key, value in entries.items() if value is not None}


def checkpoint_without(key):
    return lambda m, o, s, g, e: checkpoint(m, o, s, g, e, **{key: None})


def restore(skip=(), rebind_generator=False, epoch_shift=0):
    def restore_checkpoint(checkpoint, model, optimizer, scheduler, generator):
        model.load_state_dict(checkpoint["model"])
        if "optimizer" not in skip:
            optimizer.load_state_dict(checkpoint["optimizer"])
        if "scheduler" not in skip:
            scheduler.load_state_dict(checkpoint["scheduler"])
        if rebind_generator:
            generator = torch.Generator()
        if "generator" not in skip:
            generator.set_state(checkpoint["generator"])
        if "torch_rng" not in skip:
            torch.set_rng_state(checkpoint["torch_rng"])
        return checkpoint["epoch"] + epoch_shift
    return restore_checkpoint


def stopping(strict=True, late=0, keep="best", ignore_delta=False, against="best", start=1):
    def best_and_stop_epoch(val_losses, patience, min_delta=0.0):
        delta = 0.0 if ignore_delta else min_delta
        best_loss, best_epoch, previous = math.inf, 0, math.inf
        for epoch, loss in enumerate(val_losses, start=1):
            target = (best_loss if against == "best" else previous) - delta
            if loss < target or (not strict and loss == target):
                best_loss, best_epoch = loss, epoch
            previous = loss
            if epoch - best_epoch >= patience + late:
                return (epoch if keep == "last" else best_epoch) - 1 + start, epoch - 1 + start
        last = len(val_losses)
        return (last if keep == "last" else best_epoch) - 1 + start, last - 1 + start
    return best_and_stop_epoch


MISTAKES = {
    ev.check_accuracy_over_loader: [
        (evaluation_loop(eval_mode=False), "still in training mode"),
        (evaluation_loop(divide_by="batches"), "mean of the per-batch accuracies"),
        (evaluation_loop(divide_by="full batches"), "as if the last batch were full"),
        (evaluation_loop(restore="eval"), "you left it in eval mode"),
        (evaluation_loop(restore="train"), "you gave it back in train mode"),
        (evaluation_loop(no_grad=False), "autograd was on"),
        (source_loop, "expected Evaluation(accuracy="),  # all its bugs at once
    ],
    ev.check_recall_over_batches: [
        (lambda batches, k: per_batch_recalls(batches, k).mean(0), "ratio of sums"),
        (lambda batches, k: per_batch_recalls(batches, k).nanmean(0), "leaving out the batches"),
        (lambda batches, k: (lambda C: C.diagonal() / C.sum(0))(
            sum(batch_confusions(batches, k)).double()), "that is precision"),
        (lambda batches, k: (lambda C: C.diagonal() / C.sum(1))(
            sum(batch_confusions(batches, k))), "float32"),
        (lambda batches, k: recall_by_counts(batches[-1:], k), "the last batch alone"),
        (lambda batches, k: recall_by_counts(batches, k)[1:], "expected shape"),
    ],
    ev.check_wilson_interval: [
        (lambda k, n, c=0.95: wald(k, n, c), "that is the Wald interval, p_hat"),
        (lambda k, n, c=0.95: wald(k, n, c, clip=True), "clipped to [0, 1]"),
        (lambda k, n, c=0.95: wilson(k, n, z=ndtri(c)), "your z is one-sided"),
        (lambda k, n, c=0.95: wilson(k, n, z=1.96), "z is not always 1.96"),
        (lambda k, n, c=0.95: wilson(k, n, c, centre=k / n), "centred on p_hat"),
        (lambda k, n, c=0.95: wilson(k, n, c, quarter=False), "z^2 / 4"),
        (lambda k, n, c=0.95: tuple(round(v, 3) for v in wilson(k, n, c)), "expected ["),
    ],
    ev.check_bootstrap_accuracy_ci: [
        (bootstrap(draw="without replacement"), "zero width"),
        (bootstrap(draw="unpaired"), "different indices"),
        (bootstrap(alpha_per_side=1), "on EACH side"),
        (bootstrap(interval="normal"), "normal bootstrap interval"),
        (bootstrap(interval="sorted"), "expected ["),
    ],
    ev.check_mcnemar_pvalue: [
        (lambda y, a, b: binomial_test(discordant(y, a, b), sides=1), "one-sided"),
        (lambda y, a, b: binomial_test(discordant(y, a, b), cap=False), "cap it"),
        (lambda y, a, b: binomial_test(concordant(y, a, b)), "concordant cells"),
        (lambda y, a, b: binomial_test(discordant(y, a, b), trials=len(y)), "b + c trials"),
        (chi_square_test, "chi-square approximation"),
    ],
    ev.check_make_checkpoint: [
        (checkpoint_without("optimizer"), "Adam's moment estimates"),
        (checkpoint_without("generator"), "shuffles the data in another order"),
        (checkpoint_without("torch_rng"), "dropout masks"),
        (checkpoint_without("scheduler"), "scheduler's position"),
        (checkpoint_without("epoch"), "no 'epoch'"),
        (lambda m, o, s, g, e: checkpoint(m, o, s, g, e, generator=g), "object itself"),
        (lambda m, o, s, g, e: checkpoint(m, o, s, g, e, model=m), "object itself"),
        (lambda m, o, s, g, e: checkpoint(m, o, s, g, e, generator=g.initial_seed()),
         "a seed says where"),
        (lambda m, o, s, g, e: checkpoint(m, o, s, g, e, torch_rng=torch.initial_seed()),
         "a seed says where"),
        (lambda m, o, s, g, e: checkpoint(m, o, s, g, e, epoch=e + 1), "made after epoch"),
        (lambda m, o, s, g, e: [m.state_dict(), o.state_dict()], "expected a dict"),
    ],
    ev.check_restore_checkpoint: [
        (restore(skip=("torch_rng",)), "dropout masks"),
        (restore(skip=("generator",)), "shuffles the data in another order"),
        (restore(rebind_generator=True), "in place"),
        (restore(skip=("scheduler",)), "scheduler's position"),
        (restore(skip=("optimizer",)), "Adam's moment estimates"),
        (restore(epoch_shift=1), "the number of epochs done"),
    ],
    ev.check_best_and_stop_epoch: [
        (stopping(late=1), "one epoch late"),
        (stopping(strict=False), "strictly"),
        (stopping(keep="last"), "not of the epoch where training stops"),
        (stopping(ignore_delta=True), "min_delta is ignored"),
        (stopping(against="previous"), "not with the previous epoch's"),
        (stopping(start=0), "count epochs from 1"),
    ],
    ev.check_reported_accuracy: [
        (lambda: 0.934, "best TEST accuracy"),
        (lambda: 0.936, "validation accuracy of the chosen"),
        (lambda: (0.905 + 0.921 + 0.934) / 3, "not the mean"),
        (lambda: 0.905, "not the expected answer"),
    ],
}

# (checker, hint) of mistakes that random inputs may not reveal: the bootstrap accuracies are
# multiples of 1 / n, so two neighbouring order statistics are often equal, and then the nearest
# one is what linear interpolation gives
RIGHT_ON_SOME_INPUTS = {(ev.check_bootstrap_accuracy_ci, "expected [")}


# --------------------------------------------------------------------------------------------
# What the checkers accept: every correct form
# --------------------------------------------------------------------------------------------


def test_the_reference_checkpoint_resumes_bit_for_bit():
    # the checkers' references are the uninterrupted runs, not merely our own save and restore
    assert ev.uninterrupted_equals_resumed()


def test_every_correct_form_of_the_evaluation_loop_passes():
    @torch.inference_mode()
    def under_inference_mode(model, loader):
        was_training = model.training
        model.eval()
        pairs = [(model(X).argmax(1), y) for X, y in loader]
        model.train(was_training)
        predicted, y = torch.cat([p for p, _ in pairs]), torch.cat([y for _, y in pairs])
        return (predicted == y).double().mean()  # a 0-d tensor

    assert ev.check_accuracy_over_loader(under_inference_mode).passed
    assert ev.check_accuracy_over_loader(evaluation_loop()).passed


def test_per_batch_recalls_weighted_by_class_support_are_the_pooled_recall():
    assert ev.check_recall_over_batches(support_weighted_recalls).passed
    assert ev.check_recall_over_batches(recall_by_counts).passed


@pytest.mark.parametrize("quantile", [
    lambda q: float(ndtri(q)),
    lambda q: torch.special.ndtri(torch.tensor(q, dtype=torch.float64)).item(),
    lambda q: statistics.NormalDist().inv_cdf(q),
], ids=["scipy", "torch", "statistics"])
def test_the_wilson_interval_passes_with_any_normal_quantile(quantile):
    def wilson_interval(k, n, confidence_level=0.95):
        return wilson(k, n, z=quantile((1 + confidence_level) / 2))

    assert ev.check_wilson_interval(wilson_interval).passed
    assert ev.check_wilson_interval(lambda k, n, c=0.95: torch.tensor(
        wilson_interval(k, n, c), dtype=torch.float64)).passed


def test_the_references_equal_scipy():
    for k, n, level in [(45, 50, 0.95), (0, 20, 0.95), (3, 40, 0.8)]:
        ours = stats.proportion_ci(k, n, level)
        theirs = scipy.stats.binomtest(k, n).proportion_ci(level, method="wilson")
        assert math.isclose(ours.low, theirs.low, abs_tol=1e-15)
        assert math.isclose(ours.high, theirs.high, rel_tol=1e-12)
    for table in ([[40, 12], [4, 9]], [[30, 3], [3, 5]], [[50, 0], [7, 3]]):
        y, a, b = ev._paired_predictions(table, seed=1)
        b_cell, c_cell = discordant(y, a, b)
        assert math.isclose(stats.mcnemar(stats.paired_table(y, a, b)).pvalue,
                            scipy.stats.binomtest(b_cell, b_cell + c_cell).pvalue, rel_tol=1e-12)
        assert math.isclose(chi_square_test(y, a, b), scipy.stats.chi2.sf(
            (abs(b_cell - c_cell) - 1) ** 2 / (b_cell + c_cell), 1), rel_tol=1e-12)


def test_a_float32_bootstrap_passes_at_the_stated_tolerance():
    def in_float32(y_true, y_pred, n_resamples, generator, confidence_level=0.95):
        low, high = bootstrap()(y_true, y_pred, n_resamples, generator, confidence_level)
        return low.item(), high.item()

    assert ev.check_bootstrap_accuracy_ci(in_float32).passed
    assert ev.check_bootstrap_accuracy_ci(bootstrap()).passed  # a tensor of two values


def test_a_checkpoint_of_copies_and_a_restore_in_another_order_pass():
    def deep_copies(model, optimizer, scheduler, generator, epoch):
        return copy.deepcopy(checkpoint(model, optimizer, scheduler, generator, epoch))

    def random_state_first(checkpoint, model, optimizer, scheduler, generator):
        torch.set_rng_state(checkpoint["torch_rng"])
        generator.set_state(checkpoint["generator"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        model.load_state_dict(checkpoint["model"])
        return int(checkpoint["epoch"])

    assert ev.check_make_checkpoint(deep_copies).passed
    assert ev.check_restore_checkpoint(random_state_first).passed


def test_the_checkers_leave_torch_random_state_as_they_found_it():
    before = torch.get_rng_state()
    ev.check_accuracy_over_loader(evaluation_loop())
    ev.check_make_checkpoint(checkpoint)
    ev.check_restore_checkpoint(restore())
    ev.check_best_and_stop_epoch(stopping())
    assert torch.equal(torch.get_rng_state(), before)


def test_a_wrong_return_value_is_named_as_such_not_as_an_error():
    message = ev.check_restore_checkpoint(restore(epoch_shift=1)).message
    assert message.startswith("your function returned 3, but the checkpoint was made after "
                              "epoch 2") and "raised" not in message


def test_several_forgotten_states_are_all_named():
    message = ev.check_restore_checkpoint(restore(skip=("scheduler", "generator"))).message
    assert message.startswith("the resumed run differs") and "scheduler" in message
    assert "generator's state" in message and "optimizer" not in message
    message = ev.check_make_checkpoint(lambda m, o, s, g, e: checkpoint(
        m, o, s, g, e, optimizer=None, torch_rng=None)).message
    assert "Adam's moment estimates" in message and "global random state" in message
    assert "generator's state" not in message


# --------------------------------------------------------------------------------------------
# Graded: what the tasks forbid, and hidden inputs
# --------------------------------------------------------------------------------------------


SOLUTIONS = solutions_of(SOLUTION)


def accuracy_by_sklearn(model, loader):
    was_training = model.training
    model.eval()
    with torch.no_grad():
        pairs = [(y, model(X).argmax(1)) for X, y in loader]
    model.train(was_training)
    return sk.accuracy_score(torch.cat([y for y, _ in pairs]), torch.cat([p for _, p in pairs]))


def checkpoint_by_save_checkpoint(model, optimizer, scheduler, generator, epoch):
    buffer = io.BytesIO()
    training.save_checkpoint(buffer, model, optimizer, scheduler, generator)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    return {key: saved[key] for key in ("model", "optimizer", "scheduler", "generator",
                                        "torch_rng")} | {"epoch": epoch}


def restore_by_load_checkpoint(checkpoint, model, optimizer, scheduler, generator):
    buffer = io.BytesIO()
    torch.save({**{key: checkpoint[key] for key in ("model", "optimizer", "scheduler",
                                                    "generator", "torch_rng")},
                "optimizer_class": type(optimizer).__name__,
                "scheduler_class": type(scheduler).__name__, "cuda_rng": None, "extra": {}},
               buffer)
    buffer.seek(0)
    training.load_checkpoint(buffer, model, optimizer, scheduler, generator)
    return checkpoint["epoch"]


def stopping_by_early_stopping(val_losses, patience, min_delta=0.0):
    stopper = training.EarlyStopping(patience, min_delta)
    for epoch, loss in enumerate(val_losses, start=1):
        if stopper.step(loss, torch.nn.Identity()):
            return stopper.best_epoch, epoch
    return stopper.best_epoch, len(val_losses)


FORBIDDEN_ANSWERS = [  # (checker, an answer that is right but for what it calls, the call reported)
    (ev.check_accuracy_over_loader, accuracy_by_sklearn,
     "sklearn.metrics._classification.accuracy_score"),
    (ev.check_recall_over_batches, lambda batches, k: torch.from_numpy(sk.recall_score(
        *(torch.cat(labels) for labels in zip(*batches)), labels=list(range(k)), average=None)),
     "sklearn.metrics._classification.recall_score"),
    (ev.check_recall_over_batches, lambda batches, k: metrics.recall_score(
        *(torch.cat(labels) for labels in zip(*batches)), labels=list(range(k)), average=None,
        zero_division=0.0).double(), "helpers.metrics.counts.recall_score"),
    (ev.check_wilson_interval, lambda k, n, c=0.95: tuple(
        scipy.stats.binomtest(k, n).proportion_ci(c, method="wilson")),
     "scipy.stats._binomtest.binomtest"),
    (ev.check_wilson_interval, lambda k, n, c=0.95: tuple(stats.proportion_ci(k, n, c)),
     "helpers.stats.proportion_ci"),
    (ev.check_bootstrap_accuracy_ci, lambda y, p, n_resamples, g, c=0.95: tuple(
        stats.bootstrap_ci(lambda t, q: (t == q).double().mean(), y, p, confidence_level=c,
                           n_resamples=n_resamples, generator=g)), "helpers.stats.bootstrap_ci"),
    (ev.check_mcnemar_pvalue, lambda y, a, b: scipy.stats.binomtest(
        discordant(y, a, b)[0], sum(discordant(y, a, b))).pvalue,
     "scipy.stats._binomtest.binomtest"),
    (ev.check_make_checkpoint, checkpoint_by_save_checkpoint, "helpers.training.save_checkpoint"),
    (ev.check_restore_checkpoint, restore_by_load_checkpoint, "helpers.training.load_checkpoint"),
    (ev.check_best_and_stop_epoch, stopping_by_early_stopping,
     "helpers.training.EarlyStopping.__init__"),
]


globals().update(exercise_tests(
    MISTAKES, SOLUTION, right_on_some_inputs=RIGHT_ON_SOME_INPUTS,
    # the checkpoint tasks train models: fewer hidden seeds
    seeds_of=lambda name: range(1, 4) if "checkpoint" in name else range(1, 11),
    memorised=["check_recall_over_batches", "check_wilson_interval", "check_mcnemar_pvalue",
               "check_best_and_stop_epoch"],
    forbidden=FORBIDDEN_ANSWERS, every_forbidden_name_tried=True))


def test_the_objects_a_checker_hands_over_are_the_learners_to_use():
    # the model (a class of the checkers' module), its modules and the DataLoader: every method
    # a right answer calls on them is allowed, forward passes included
    def every_method(model, loader):
        was_training = model.training
        model.eval()
        with torch.no_grad():
            hits = [(model.out(model.dropout(torch.relu(model.hidden(X)))).argmax(1) == y)
                    for X, y in iter(loader)]
        model.train(was_training)
        assert len(list(model.parameters())) == 4 and model.state_dict()
        return torch.cat(hits).double().mean().item()

    assert ev.check_accuracy_over_loader(every_method).passed
    assert ev.check_accuracy_over_loader(SOLUTIONS["check_accuracy_over_loader"][1]).passed


def test_the_hidden_test_initialises_other_models():
    # task 1's and tasks 6 and 7's models start from input_seed: under a hidden seed, other
    # initial weights, not only other data
    def first_weights(model, *_):
        return model.hidden.weight.sum().item()

    def initial_weights():
        evaluated = ev._EvaluationCase(30, 8, "train", 80).run(first_weights).accuracy
        with torch.random.fork_rng(devices=[]):
            trained = first_weights(ev._resume_cases(ev._Make)[0].objects(86)[0])
        return evaluated, trained

    visible = initial_weights()
    with grading.hidden_inputs(5):
        hidden = initial_weights()
    assert visible == initial_weights()
    assert all(a != b for a, b in zip(visible, hidden, strict=True))


def test_the_reported_accuracy_is_sealed():
    source = Path(ev.__file__).read_text()
    assert "max(PROTOCOL_RUNS" not in source and "[chosen]" not in source
    assert ev.check_reported_accuracy(SOLUTIONS["check_reported_accuracy"][1]).passed
