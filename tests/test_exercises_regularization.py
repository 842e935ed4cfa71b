"""Exercise checkers of chapter 09: typical mistakes get their hint, nothing crashes, the
solutions pass (also on hidden inputs), and an answer that calls what its task forbids loses it.

The generic tests of tests/test_exercises.py (solutions pass, student notebooks run and say "not
implemented yet", student notebooks up to date) cover this chapter's notebooks too.
"""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from exercise_harness import exercise_tests

from helpers import optim, regularization
from helpers.exercises import regularization as rg
from helpers.exercises.grading import grade

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "exercises" / "solutions" / "09_overfitting_and_regularization.ipynb"

# --------------------------------------------------------------------------------------------
# A learner's answers, right and wrong, written as a learner would write them
# --------------------------------------------------------------------------------------------


def sgd_step(penalty_factor=1.0, decay="in the gradient"):
    def sgd_weight_decay_step(param, grad, momentum_buffer, lr, momentum, weight_decay):
        g = grad.clone()
        if decay == "in the gradient":
            g += penalty_factor * weight_decay * param
        buffer = g if momentum_buffer is None else momentum * momentum_buffer + g
        new = param - lr * buffer
        if decay == "shrink the current weights":
            new -= lr * weight_decay * param
        elif decay == "shrink the new weights":
            new *= 1 - lr * weight_decay
        return new, buffer
    return sgd_weight_decay_step


def adamw_step(decay="decoupled", eps_inside=False, default=1e-2):
    def adamw_first_step(param, grad, lr, weight_decay=default, eps=1e-8):
        g = grad + weight_decay * param if decay == "coupled" else grad
        m = 0.1 * g / (1 - 0.9)  # (1 - beta1) g, bias-corrected
        v = 0.001 * g**2 / (1 - 0.999)
        denominator = (v + eps).sqrt() if eps_inside else v.sqrt() + eps
        factor = {"decoupled": 1 - lr * weight_decay, "no lr": 1 - weight_decay,
                  "lr squared": 1 - lr**2 * weight_decay}.get(decay, 1.0)
        new = factor * param - lr * m / denominator
        if decay == "after":
            new = new * (1 - lr * weight_decay)
        return new
    return adamw_first_step


def soft(x, t):
    return torch.sign(x) * torch.relu(torch.abs(x) - t)


def hard(x, t):
    return torch.where(x.abs() <= t, torch.zeros_like(x), x)


def dropout(keep="1 - p", scale=True, in_eval=False, mask_by="bernoulli"):
    def inverted_dropout(x, p, training=True):
        if not training and not in_eval:
            return x
        q = 1 - p if keep == "1 - p" else p
        if mask_by == "rand":
            mask = (torch.rand(x.shape, dtype=x.dtype) < q).to(x.dtype)
        else:
            mask = torch.empty_like(x).bernoulli_(q)
        return x * mask / q if scale else x * mask
    return inverted_dropout


NORMS = (torch.nn.BatchNorm1d, torch.nn.LayerNorm, torch.nn.GroupNorm)


def groups(decay_biases=False, decay_norms=False, zero_key=True):
    def weight_decay_groups(model, weight_decay):
        norm_parameters = {id(p) for m in model.modules() if isinstance(m, NORMS)
                           for p in m.parameters()}
        decay, no_decay = [], []
        for name, p in model.named_parameters():
            is_bias = name.endswith("bias")
            exempt = (is_bias and not decay_biases) or (id(p) in norm_parameters
                                                        and not decay_norms)
            (no_decay if exempt else decay).append(p)
        second = {"params": no_decay, "weight_decay": 0.0} if zero_key else {"params": no_decay}
        return [{"params": decay, "weight_decay": weight_decay}, second]
    return weight_decay_groups


def by_dimension(model, weight_decay):  # nanoGPT's rule: matrices decay, vectors do not
    parameters = list(model.parameters())
    return [{"params": [p for p in parameters if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0}]


def reading(by="val", sign=1, first=1, at_best=True, last_of_ties=False):
    def best_epoch_and_gap(train_losses, val_losses):
        losses = val_losses if by == "val" else train_losses
        if last_of_ties:
            i = len(losses) - 1 - losses[::-1].index(min(losses))
        else:
            i = losses.index(min(losses))
        j = i if at_best else -1
        return i + first, sign * (val_losses[j] - train_losses[j])
    return best_epoch_and_gap


def until_it_rises(train_losses, val_losses):
    i = 0
    while i + 1 < len(val_losses) and val_losses[i + 1] <= val_losses[i]:
        i += 1
    return i + 1, val_losses[i] - train_losses[i]


MISTAKES = {
    rg.check_sgd_weight_decay_step: [
        (sgd_step(penalty_factor=0.5), "not lambda/2 * theta"),
        (sgd_step(penalty_factor=2.0), "gradient of lambda ||theta||^2"),
        (sgd_step(decay="shrink the new weights"), "the updated ones"),
        (sgd_step(decay="shrink the current weights"), "bypasses the momentum buffer"),
        (sgd_step(penalty_factor=-1.0), "not subtracted"),
        (sgd_step(decay="none"), "weight_decay is ignored"),
        (lambda param, grad, momentum_buffer, lr, momentum, weight_decay: (  # no momentum
            param - lr * (grad + weight_decay * param), grad + weight_decay * param),
         "after step 2, param differs"),
    ],
    rg.check_adamw_first_step: [
        (adamw_step(decay="coupled"), "normalised away"),
        (adamw_step(decay="lr squared"), "not lr^2"),
        (adamw_step(decay="no lr"), "not (1 - weight_decay)"),
        (adamw_step(decay="after"), "not the updated ones"),
        (adamw_step(decay="none"), "the weight decay is missing"),
        (adamw_step(default=0.0), "default weight_decay is 1e-2"),
        (adamw_step(eps_inside=True), "eps goes outside the square root"),
        (lambda p, g, lr, wd=1e-2, eps=1e-8: p * (1 - lr * wd) - lr * g.sign(), "values differ"),
    ],
    rg.check_soft_threshold: [
        (hard, "hard thresholding"),
        (lambda x, t: torch.relu(x.abs() - t), "the sign is lost"),
        (lambda x, t: torch.relu(x - t), "only the positive side"),
        (lambda x, t: torch.clamp(x, -t, t), "you clipped x"),
        (lambda x, t: x - t * torch.sign(x), "overshoots zero"),
        (lambda x, t: soft(x, t).double(), "expected dtype torch.float32"),
    ],
    rg.check_proximal_l1_step: [
        (lambda p, g, lr, l1: soft(p - lr * g, l1), "the threshold is lr * l1"),
        (lambda p, g, lr, l1: p - lr * g - lr * l1 * torch.sign(p), "subgradient step"),
        (lambda p, g, lr, l1: soft(p, lr * l1) - lr * g, "gradient step first"),
        (lambda p, g, lr, l1: hard(p - lr * g, lr * l1), "hard thresholding"),
        (lambda p, g, lr, l1: soft(p, lr * l1), "the gradient step on the loss is missing"),
        (lambda p, g, lr, l1: soft(p + lr * g, lr * l1), "values differ"),
    ],
    rg.check_inverted_dropout: [
        (dropout(scale=False), "not scaled"),
        (dropout(keep="p"), "the probability to DROP"),
        (dropout(in_eval=True), "in eval mode (training=False) dropout is the identity"),
        (lambda x, p, training=True: (x * torch.empty_like(x).bernoulli_(1 - p)
                                      if training else x * (1 - p)), "original dropout"),
        (lambda x, p, training=True: (x * torch.empty_like(x).bernoulli_(1 - p) * (1 - p)
                                      if training else x), "not by 1 - p"),
        (dropout(mask_by="rand"), "the mask is drawn differently"),
        (lambda x, p, training=True: x * (torch.rand_like(x) > p) / (1 - p) if training else x,
         "the mask is drawn differently"),
    ],
    rg.check_weight_decay_groups: [
        (groups(decay_biases=True), "the biases decay"),
        (groups(decay_norms=True), "normalization layers' scales decay"),
        (groups(zero_key=False), "the optimizer's default"),
        (lambda model, wd: [{"params": model.parameters(), "weight_decay": wd}],
         "everything decays"),
        (lambda model, wd: [{"params": model.parameters(), "weight_decay": 0.0}],
         "nothing decays"),
        (lambda model, wd: [{"params": list(model.parameters()), "weight_decay": wd},
                            {"params": [p for p in model.parameters() if p.dim() < 2],
                             "weight_decay": 0.0}],
         "torch.optim.AdamW refuses"),
        (lambda model, wd: [{"params": [p for p in model.parameters() if p.dim() >= 2],
                             "weight_decay": wd}], "is never trained"),
        (lambda model, wd: {"decay": list(model.parameters())}, "return a list"),
    ],
    rg.check_best_epoch_and_gap: [
        (reading(by="train"), "lowest TRAINING loss"),
        (until_it_rises, "first rise of the validation loss"),
        (reading(sign=-1), "the wrong sign"),
        (reading(first=0), "count epochs from 1"),
        (reading(at_best=False), "the gap after the last epoch"),
        (reading(last_of_ties=True), "the first is the best"),
    ],
    rg.check_chosen_weight_decay: [
        (lambda: 0.0, "lowest TRAINING loss"),
        (lambda: 0.1, "smallest generalization gap"),
        (lambda: 1e-2, "lowest TEST loss"),
        (lambda: 1e-4, "not the expected answer"),
    ],
}


# --------------------------------------------------------------------------------------------
# What the checkers accept: every correct form
# --------------------------------------------------------------------------------------------


def test_the_course_helpers_pass_the_checkers_that_compare_with_torch():
    # the checkers' references are torch's own optimizers and dropout: helpers agrees with them
    # (checked unwatched: a learner calling the course's own code loses the task, see below)
    def helpers_sgd(param, grad, momentum_buffer, lr, momentum, weight_decay):
        param = param.clone()
        buffer = optim.sgd_step(param, grad, momentum_buffer, lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
        return param, buffer

    def helpers_adamw(param, grad, lr, weight_decay=1e-2, eps=1e-8):
        param = param.clone()
        optim.adam_step(param, grad, torch.zeros_like(param), torch.zeros_like(param),
                        torch.tensor(0.0), lr=lr, eps=eps, weight_decay=weight_decay,
                        decoupled_weight_decay=True)
        return param

    assert rg.check_sgd_weight_decay_step.__wrapped__(helpers_sgd).passed
    assert rg.check_adamw_first_step.__wrapped__(helpers_adamw).passed
    assert rg.check_inverted_dropout.__wrapped__(regularization.dropout).passed
    assert rg.check_weight_decay_groups.__wrapped__(regularization.weight_decay_groups).passed
    assert rg.check_soft_threshold.__wrapped__(regularization.soft_threshold).passed
    # watched, the same answers call the course's own code
    verdict = rg.check_sgd_weight_decay_step(helpers_sgd)
    assert not verdict.passed and "calls helpers.optim.sgd_step, the course's own code" in (
        verdict.message)


def test_every_correct_form_passes():
    assert rg.check_weight_decay_groups(by_dimension).passed
    assert rg.check_weight_decay_groups(groups()).passed
    assert rg.check_soft_threshold(lambda x, t: x - x.clamp(-t, t)).passed

    def with_tensors(train_losses, val_losses):  # 0-d tensors, computed in float64
        train, val = (torch.tensor(v, dtype=torch.float64) for v in (train_losses, val_losses))
        best = torch.argmin(val)  # the first minimum
        return best + 1, val[best] - train[best]

    assert rg.check_best_epoch_and_gap(with_tensors).passed
    assert rg.check_best_epoch_and_gap(reading()).passed

    def in_place(param, grad, lr, l1):
        param.sub_(lr * grad)  # changes its argument: the checker gives every call a copy
        return soft(param, lr * l1)

    assert rg.check_proximal_l1_step(in_place).passed


def test_the_checkers_leave_torch_random_state_as_they_found_it():
    before = torch.get_rng_state()
    rg.check_inverted_dropout(dropout())
    rg.check_inverted_dropout(dropout(mask_by="rand"))
    rg.check_weight_decay_groups(groups())
    assert torch.equal(torch.get_rng_state(), before)


def test_the_curves_show_what_their_cases_are_for():
    (t1, v1), (t2, v2), (t3, v3) = rg.CURVES
    assert min(range(len(t1)), key=t1.__getitem__) != min(range(len(v1)), key=v1.__getitem__)
    assert v2.count(min(v2)) == 2  # a tie at the best
    assert v3.index(min(v3)) > next(i for i in range(len(v3) - 1) if v3[i + 1] > v3[i])


def test_a_wrong_group_is_named_not_reported_as_an_error():
    message = rg.check_weight_decay_groups(lambda model, wd: [
        {"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": wd}]).message
    assert message.startswith("your function returned groups without 0.bias, 1.weight, 1.bias, "
                              "3.bias: a parameter in no group is never trained")
    assert "raised" not in message


# --------------------------------------------------------------------------------------------
# Grading: what a task forbids, hidden inputs
# --------------------------------------------------------------------------------------------


def torch_sgd(param, grad, momentum_buffer, lr, momentum, weight_decay):
    p = param.clone().requires_grad_()
    optimizer = torch.optim.SGD([p], lr=lr, momentum=momentum, weight_decay=weight_decay)
    if momentum_buffer is not None:
        optimizer.state[p]["momentum_buffer"] = momentum_buffer.clone()
    p.grad = grad.clone()
    optimizer.step()
    return p.detach(), optimizer.state[p]["momentum_buffer"]


def torch_adamw(param, grad, lr, weight_decay=1e-2, eps=1e-8):
    p = param.clone().requires_grad_()
    p.grad = grad.clone()
    torch.optim.AdamW([p], lr=lr, weight_decay=weight_decay, eps=eps).step()
    return p.detach()


FORBIDDEN = [  # (checker, an answer that is right but for what it calls, the call reported)
    (rg.check_sgd_weight_decay_step, torch_sgd, "torch.optim.sgd.SGD.__init__"),
    (rg.check_adamw_first_step, torch_adamw, "torch.optim.adamw.AdamW.__init__"),
    (rg.check_soft_threshold, lambda x, t: F.softshrink(x, t), "torch.nn.functional.softshrink"),
    (rg.check_soft_threshold, lambda x, t: torch.nn.Softshrink(t)(x),
     "torch.nn.modules.activation.Softshrink.__init__"),
    (rg.check_proximal_l1_step, lambda p, g, lr, l1: F.softshrink(p - lr * g, lr * l1),
     "torch.nn.functional.softshrink"),
    (rg.check_inverted_dropout, F.dropout, "torch.nn.functional.dropout"),
    (rg.check_inverted_dropout,
     lambda x, p, training=True: torch.nn.Dropout(p).train(training)(x),
     "torch.nn.modules.dropout._DropoutNd.__init__"),
    (rg.check_inverted_dropout, lambda x, p, training=True: torch.dropout(x, p, training),
     "torch.dropout"),
]


globals().update(exercise_tests(MISTAKES, SOLUTION, forbidden=FORBIDDEN))


def test_an_answer_that_learns_the_visible_inputs_by_heart_fails_the_hidden_test():
    table = {(x.numpy().tobytes(), t): regularization.soft_threshold(x, t)
             for x, t in rg.threshold_cases()}

    def by_heart(x, threshold):
        return table.get((x.numpy().tobytes(), threshold), x)

    assert rg.check_soft_threshold(by_heart).passed  # the visible inputs: all known
    with pytest.raises(AssertionError, match="on the hidden inputs"):
        grade(rg.check_soft_threshold, by_heart, seed=87084)
