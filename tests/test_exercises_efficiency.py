"""Exercise checkers of chapter 11: typical mistakes get their hint, nothing crashes, the
solutions pass (also on hidden inputs), an answer that calls what its task forbids loses it, and
the references agree with what they stand for.

The generic tests of tests/test_exercises.py (solutions pass, student notebooks run and say "not
implemented yet", student notebooks up to date) cover this chapter's notebooks too.
"""

import math
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from exercise_harness import exercise_tests, solutions_of

from helpers.exercises import efficiency as ef
from helpers.exercises.grading import grade

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "exercises" / "solutions" / "11_efficient_optimization.ipynb"

# --------------------------------------------------------------------------------------------
# A learner's answers, right and wrong, written as a learner would write them
# --------------------------------------------------------------------------------------------


def step_bytes(read=4, written=3, amsgrad_extra=2, size="itemsize"):
    def adam_step_bytes(numel, dtype, amsgrad=False):
        per_element = {"itemsize": dtype.itemsize, "bits": torch.finfo(dtype).bits,
                       "four": 4}[size]
        count = read + written + (amsgrad_extra if amsgrad else 0)
        return count * per_element * numel
    return adam_step_bytes


def unfused_step_bytes(numel, dtype, amsgrad=False):  # Adam(foreach=False), kernel by kernel
    tensors_per_kernel = {"exp_avg.lerp_(grad)": 3, "exp_avg_sq.mul_": 2,
                          "exp_avg_sq.addcmul_(grad, grad)": 3, "exp_avg_sq.sqrt()": 2,
                          "/ bias_correction2_sqrt": 2, ".add_(eps)": 2,
                          "param.addcdiv_(exp_avg, denom)": 4}
    return numel * dtype.itemsize * sum(tensors_per_kernel.values())


def fraction(bytes_per_param=28, bandwidth=2.0e12, inverse=False):
    def bandwidth_fraction():
        fastest = 350e6 * bytes_per_param / bandwidth
        return 5.6e-3 / fastest if inverse else fastest / 5.6e-3
    return bandwidth_fraction


def accumulate(divide="share", zero="before", backward="each micro-batch", returned="mean",
               retain_graph=False):
    def accumulate_gradients(model, loss_fn, micro_batches):
        n_total = sum(x.shape[0] for x, _ in micro_batches)
        if zero == "before":
            model.zero_grad()
        logged, pending = [], []
        for x, y in micro_batches:
            if zero == "inside":
                model.zero_grad()
            loss = loss_fn(model(x), y)
            if divide == "share":
                loss = loss * x.shape[0] / n_total
            elif divide == "k":
                loss = loss / len(micro_batches)
            elif divide == "N":
                loss = loss / n_total
            if backward == "each micro-batch":
                loss.backward(retain_graph=retain_graph)
            else:
                pending.append(loss)
            logged.append((loss.item(), x.shape[0]))
        if backward == "at the end":
            sum(pending).backward()
        if returned == "last scaled":
            return loss.item()
        means = [value * n_total / n if divide == "share" else value for value, n in logged]
        if returned == "mean":
            return sum(mean * n / n_total for mean, (_, n) in zip(means, logged))
        if returned == "last":
            return means[-1]
        return sum(means) / len(means)  # "mean of means"
    return accumulate_gradients


def one_big_forward(model, loss_fn, micro_batches):  # right gradient, the whole batch's memory
    model.zero_grad()
    x = torch.cat([x for x, _ in micro_batches])
    y = torch.cat([y for _, y in micro_batches])
    loss = loss_fn(model(x), y)
    loss.backward()
    return loss.item()


def sum_reduction(model, loss_fn, micro_batches):  # right for cross-entropy only
    n_total = sum(len(x) for x, _ in micro_batches)
    model.zero_grad(set_to_none=False)
    total = 0.0
    for x, y in micro_batches:
        loss = loss_fn(model(x), y, reduction="sum") / n_total
        loss.backward()
        total += loss.item()
    return torch.tensor(total)


def scale_update(reset_on_inf=True, grow_check="torch", inf_first=True, reset_on_growth=True,
                 backoff="multiply", hard_coded=()):
    def update_scale(scale, growth_tracker, found_inf, growth_factor=2.0, backoff_factor=0.5,
                     growth_interval=2000):
        if "growth" in hard_coded:
            growth_factor = 2.0
        if "backoff" in hard_coded:
            backoff_factor = 0.5
        new_scale, tracker = scale, growth_tracker
        if found_inf and inf_first:
            new_scale = scale * backoff_factor if backoff == "multiply" else scale / backoff_factor
            return new_scale, 0 if reset_on_inf else growth_tracker
        if grow_check == "late":  # compared before counting this step
            if tracker == growth_interval:
                return scale * growth_factor, 0
            return scale, tracker + 1
        tracker += 1
        limit = growth_interval - 1 if grow_check == "early" else growth_interval
        if tracker == limit:
            new_scale = scale * growth_factor
            if reset_on_growth:
                tracker = 0
        if found_inf:
            return new_scale * backoff_factor, 0
        return new_scale, tracker
    return update_scale


def clip(order="unscale, clip", per_tensor=False, cap=True, eps=1e-6):
    def unscale_and_clip(scaled_grads, scale, max_norm):
        grads = scaled_grads
        if order.startswith("unscale"):
            grads = [g / scale for g in grads]
        if order.startswith("multiply"):
            grads = [g * scale for g in grads]
        if "clip" in order:
            if per_tensor:
                norms = [g.norm() for g in grads]
                grads = [g * torch.clamp(max_norm / (n + eps), max=1.0) for g, n in zip(grads,
                                                                                        norms)]
            else:
                norm = torch.sqrt(sum((g**2).sum() for g in grads))
                factor = max_norm / (norm + eps)
                grads = [g * (torch.clamp(factor, max=1.0) if cap else factor) for g in grads]
        if order == "clip, unscale":
            grads = [g / scale for g in grads]
        return grads
    return unscale_and_clip


def clip_grad_norm_on_the_gradients(scaled_grads, scale, max_norm):
    grads = [g / scale for g in scaled_grads]
    torch.nn.utils.clip_grad_norm_(grads, max_norm)  # clips grads[i].grad, and there is none
    return grads


def memory(fp32=(4, 4, 8), mixed=(2, 2, 12)):
    def adam_training_memory(num_params, mixed_precision=False):
        weights, gradients, state = mixed if mixed_precision else fp32
        return [weights * num_params, gradients * num_params, state * num_params]
    return adam_training_memory


def all_reduce(kind="weighted"):
    def data_parallel_gradient(local_grads, local_batch_sizes):
        world, total = len(local_grads), sum(local_batch_sizes)
        if kind == "weighted":
            return sum(n * g for n, g in zip(local_batch_sizes, local_grads)) / total
        if kind == "ddp":
            return sum(local_grads) / world
        if kind == "sum":
            return sum(local_grads)
        if kind == "twice":
            return sum(g / world for g in local_grads) / world
        if kind == "weighted sum":
            return sum(n * g for n, g in zip(local_batch_sizes, local_grads))
        if kind == "unweighted over N":
            return sum(local_grads) / total
        return local_grads[0]
    return data_parallel_gradient


def batch_and_lr(ranks=True, accumulation=True, rule="linear"):
    def effective_batch_and_lr(base_lr, base_batch_size, micro_batch_size, accumulation_steps,
                               world_size):
        batch = micro_batch_size
        batch *= accumulation_steps if accumulation else 1
        batch *= world_size if ranks else 1
        ratio = batch / base_batch_size
        lr = {"linear": base_lr * ratio, "sqrt": base_lr * ratio**0.5,
              "inverse": base_lr / ratio, "none": base_lr}[rule]
        return batch, lr
    return effective_batch_and_lr


MISTAKES = {
    ef.check_adam_step_bytes: [
        (step_bytes(written=0, amsgrad_extra=1), "counted what the step READS"),
        (step_bytes(read=3), "the gradient is read too"),
        (step_bytes(written=4), "the gradient is only read"),
        (step_bytes(size="bits"), "that is in bits"),
        (step_bytes(size="four"), "every dtype got 4 bytes"),
        (step_bytes(amsgrad_extra=0), "also keeps max_exp_avg_sq"),
        (step_bytes(amsgrad_extra=1), "read AND written back"),
        (unfused_step_bytes, "the minimum a fused step must move"),
        (lambda numel, dtype, amsgrad=False: 72 * numel, "the minimum a fused step must move"),
        (lambda numel, dtype, amsgrad=False: 7 * numel * dtype.itemsize + 1,
         "expected 28000 but got 28001"),
    ],
    ef.check_bandwidth_fraction: [
        (fraction(bytes_per_param=16), "16 bytes per parameter"),
        (fraction(bytes_per_param=24), "the gradient is read too"),
        (fraction(bytes_per_param=32), "exactly 1"),
        (fraction(bandwidth=2 * 1024**4), "not 2^40"),
        (fraction(inverse=True), "upside down"),
        (fraction(bytes_per_param=28 * 8), "that counts bits"),
        (lambda: 100 * fraction()(), "that is a percentage"),
        (lambda: 350e6 * 28 / 5.6e-3, "that is the bandwidth the step reached"),
        (fraction(bytes_per_param=72), "a fraction above 1"),
        (lambda: round(fraction()(), 2), "not the expected answer (you returned 0.88)"),
    ],
    ef.check_accumulate_gradients: [
        (accumulate(divide="none"), "the SUM of the micro-batches' mean-loss gradients"),
        (accumulate(divide="k"), "averages their means"),
        (accumulate(divide="N"), "divides twice"),
        (sum_reduction, "adds up every ELEMENT of the output"),
        (accumulate(zero="inside"), "only the last micro-batch's gradient is left"),
        (accumulate(zero="never"), "the old gradients were not cleared"),
        (accumulate(backward="at the end"), "activations of several micro-batches were held"),
        (one_big_forward, "activations of several micro-batches were held"),
        (accumulate(retain_graph=True), "retain_graph=True keeping a graph alive"),
        (accumulate(returned="last"), "the last micro-batch's: return the mean"),
        (accumulate(returned="mean of means"), "plain mean of the micro-batches' losses"),
        (accumulate(returned="last scaled"), "what the variable held after the loop"),
        (lambda model, loss_fn, batches: model.zero_grad() or 0.0,
         "left no gradient in the parameter '0.weight'"),
    ],
    ef.check_update_scale: [
        (scale_update(reset_on_inf=False), "restarts at 0: growth needs"),
        (scale_update(inf_first=False), "check found_inf first"),
        (scale_update(grow_check="late"), "one step late"),
        (scale_update(grow_check="early"), "one step early"),
        (scale_update(reset_on_growth=False), "after a growth the tracker restarts at 0"),
        (scale_update(backoff="divide"), "MULTIPLIED by backoff_factor"),
        (scale_update(hard_coded=("growth", "backoff")),
         "ignores the growth_factor and backoff_factor it is given"),
        (scale_update(hard_coded=("growth",)), "ignores the growth_factor it is given"),
        (scale_update(hard_coded=("backoff",)), "ignores the backoff_factor it is given"),
        (lambda scale, tracker, found_inf, *args, **kwargs: scale,
         "your function returned 65536.0 at step 1: return the pair"),
    ],
    ef.check_unscale_and_clip: [
        (clip(order="clip, unscale"), "you clipped the SCALED gradients"),
        (clip(order="clip"), "every result has norm max_norm"),
        (clip(cap=False), "must be capped at 1"),
        (clip(per_tensor=True), "each tensor by its own norm"),
        (clip(order="unscale"), "unscaled but not clipped"),
        (clip(order="multiply, clip"), "you MULTIPLIED the gradients by the scale"),
        (clip(eps=1e-7), "agree with the expected ones in dtype, shapes and global norm"),
        (clip(eps=0.0), "with 1e-6 added to the norm"),
        (lambda grads, scale, max_norm: torch.cat([g.flatten() for g in clip()(grads, scale,
                                                                             max_norm)]),
         "but got a tensor of shape (16,) (return a list of tensors"),
    ],
    ef.check_adam_training_memory: [
        (memory(fp32=(4, 4, 0), mixed=(2, 2, 0)), "the optimizer state is missing"),
        (memory(fp32=(4, 4, 4), mixed=(2, 2, 8)), "Adam keeps TWO moments"),
        (memory(mixed=(2, 2, 8)), "the float32 master weights are missing"),
        (memory(mixed=(6, 2, 8)), "belong to the optimizer state"),
        (memory(mixed=(2, 4, 12)), "the gradients are float16"),
        (memory(mixed=(2, 2, 4)), "the optimizer state stays float32"),
        (memory(fp32=(32, 32, 64), mixed=(16, 16, 96)), "that counts bits"),
        (memory(mixed=(4, 4, 8)), "torch.autocast keeps too"),
        (memory(mixed=(2, 2, 16)), "expected (2000, 2000, 12000) but got (2000, 2000, 16000)"),
    ],
    ef.check_data_parallel_gradient: [
        (all_reduce("sum"), "SUM of the ranks' gradients"),
        (all_reduce("ddp"), "DistributedDataParallel's average"),
        (all_reduce("twice"), "divided by world_size twice"),
        (all_reduce("weighted sum"), "divide it by N = sum_r n_r"),
        (all_reduce("unweighted over N"), "weight it by n_r before dividing by N"),
        (all_reduce("own"), "one rank's own gradient"),
        (lambda grads, sizes: torch.stack(grads), "expected shape (5,) but got (4, 5)"),
    ],
    ef.check_effective_batch_and_lr: [
        (batch_and_lr(ranks=False), "counts every rank"),
        (batch_and_lr(accumulation=False), "accumulated micro-batches are part"),
        (batch_and_lr(rule="sqrt"), "square-root rule"),
        (batch_and_lr(rule="inverse"), "upside down"),
        (batch_and_lr(rule="none"), "the learning rate is not scaled"),
    ],
}
# the two halves of clipping come with torch 2.6, named with or without an underscore
VERSIONED = {name: f"not in torch {torch.__version__}" for name in (
    "torch.nn.utils.clip_grad.get_total_norm", "torch.nn.utils.clip_grad._get_total_norm",
    "torch.nn.utils.clip_grad.clip_grads_with_norm_",
    "torch.nn.utils.clip_grad._clip_grads_with_norm_")}


# --------------------------------------------------------------------------------------------
# What the checkers accept: every correct form
# --------------------------------------------------------------------------------------------


def test_every_correct_form_passes():
    assert ef.check_adam_step_bytes(step_bytes()).passed
    assert ef.check_adam_step_bytes(lambda numel, dtype, amsgrad=False: torch.tensor(
        (9 if amsgrad else 7) * numel * (torch.finfo(dtype).bits // 8))).passed
    assert ef.check_bandwidth_fraction(fraction()).passed
    assert ef.check_accumulate_gradients(accumulate()).passed
    assert ef.check_accumulate_gradients(by_autograd_grad).passed
    # losses kept with their graphs for logging hold the model's outputs, not its activations
    assert ef.check_accumulate_gradients(keeping_the_losses).passed
    # a logging forward under torch.no_grad() holds no activation
    assert ef.check_accumulate_gradients(with_a_logging_pass).passed
    assert ef.check_update_scale(scale_update()).passed
    assert ef.check_update_scale(lambda *a, **k: list(scale_update()(*a, **k))).passed
    assert ef.check_unscale_and_clip(clip()).passed
    assert ef.check_unscale_and_clip(in_place_unscale_and_clip).passed
    assert ef.check_unscale_and_clip(lambda g, s, m: tuple(clip()(g, s, m))).passed
    assert ef.check_adam_training_memory(memory()).passed
    assert ef.check_data_parallel_gradient(all_reduce()).passed
    assert ef.check_data_parallel_gradient(in_place_all_reduce).passed
    assert ef.check_effective_batch_and_lr(batch_and_lr()).passed


def by_autograd_grad(model, loss_fn, micro_batches):  # the sum kept aside, .grad set at the end
    parameters = list(model.parameters())
    n_total = sum(len(x) for x, _ in micro_batches)
    sums, total = [torch.zeros_like(p) for p in parameters], torch.zeros(())
    for x, y in micro_batches:
        loss = loss_fn(model(x), y)
        for s, g in zip(sums, torch.autograd.grad(loss, parameters)):
            s += g * len(x) / n_total
        total = total + loss.detach() * len(x) / n_total
    for p, s in zip(parameters, sums):
        p.grad = s
    return total


def keeping_the_losses(model, loss_fn, micro_batches):
    n_total = sum(len(x) for x, _ in micro_batches)
    model.zero_grad()
    kept = []
    for x, y in micro_batches:
        loss = loss_fn(model(x), y)
        (loss * len(x) / n_total).backward()
        kept.append(loss * len(x) / n_total)  # a graph still attached, as a logger might keep
    return torch.stack(kept).sum()


def with_a_logging_pass(model, loss_fn, micro_batches):
    result = accumulate()(model, loss_fn, micro_batches)
    with torch.no_grad():
        x = torch.cat([x for x, _ in micro_batches])
        y = torch.cat([y for _, y in micro_batches])
        return loss_fn(model(x), y).item() + 0 * result


def in_place_unscale_and_clip(scaled_grads, scale, max_norm):  # as scaler.unscale_ does it
    for g in scaled_grads:
        g.div_(scale)
    norm = torch.linalg.vector_norm(torch.cat([g.flatten() for g in scaled_grads]))
    for g in scaled_grads:
        g.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))
    return scaled_grads


def in_place_all_reduce(local_grads, local_batch_sizes):  # each rank scales its own, then sums
    total = sum(local_batch_sizes)
    for g, n in zip(local_grads, local_batch_sizes):
        g.mul_(n / total)
    return torch.stack(local_grads).sum(0)


def test_gradients_alike_in_their_description_are_told_apart_by_their_values():
    # eps = 1e-7: a difference of 2e-7 in the gradients, none in their global norm to 6 digits
    message = ef.check_unscale_and_clip(clip(eps=1e-7)).message
    yours, expected = re.search(r"yours (\S+), expected (\S+)", message).groups()
    assert float(yours) != float(expected), message
    assert "on input a list of 2 torch.float64 tensors" in message
    # gradients whose descriptions differ keep them: the global norms tell them apart
    message = ef.check_unscale_and_clip(clip(eps=1e-5)).message
    assert "with a global norm of 1 but got" in message and "norm of 0.999998" in message


def test_a_step_that_returns_no_pair_is_told_what_came():
    verdict = ef.check_update_scale(lambda scale, tracker, found_inf, **options: (scale,))
    assert "return the pair (new_scale, new_growth_tracker)" in verdict.message


# --------------------------------------------------------------------------------------------
# The references stand for what the tasks say
# --------------------------------------------------------------------------------------------


def test_the_bytes_reference_counts_torchs_adam_state():
    for numel, dtype, *rest in ef.adam_bytes_cases():
        amsgrad = bool(rest and rest[0])
        tensors = 9 if amsgrad else 7  # read p, g, m, v (, max); write p, m, v (, max)
        assert ef._adam_bytes_reference(numel, dtype, amsgrad) == tensors * numel * dtype.itemsize
    # counted on a real parameter of 10 elements: every state tensor is read and written
    param = torch.zeros(10, dtype=torch.float16, requires_grad=True)
    param.grad = torch.ones_like(param)
    optimizer = torch.optim.Adam([param], amsgrad=True)
    optimizer.step()
    state = [t for key, t in optimizer.state[param].items() if key != "step"]
    moved = 2 * param.nbytes + param.grad.nbytes + 2 * sum(t.nbytes for t in state)
    assert ef._adam_bytes_reference(10, torch.float16, amsgrad=True) == moved == 180


def test_the_roofline_answer_is_the_bytes_of_task_1_at_full_bandwidth_over_the_time():
    answer = solutions_of(SOLUTION)["check_bandwidth_fraction"][1]()
    fastest = ef._adam_bytes_reference(350_000_000, torch.float32) / 2.0e12
    assert math.isclose(answer, fastest / 5.6e-3)  # 9.8 GB at 2 TB/s: 4.9 ms of 5.6 ms
    assert ef.check_bandwidth_fraction(lambda: answer).passed


def test_the_scale_reference_is_what_gradscaler_does():
    # a real GradScaler on the CPU, stepping a parameter whose gradient overflows or not
    infs = [False, False, True, False, False, False, False, True, True, False, False, False]
    param = torch.zeros(3, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0, growth_interval=3)
    scale, tracker = 1024.0, 0
    for found_inf in infs:
        loss = (param * (math.inf if found_inf else 1.0)).sum()
        optimizer.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scale, tracker = ef._torch_update_scale(scale, tracker, found_inf, growth_interval=3)
        assert scaler.get_scale() == scale
        assert int(scaler._growth_tracker.item()) == tracker


def test_the_clip_reference_is_unscale_then_clip_grad_norm():
    # the GradScaler workflow: scale the loss, backward, unscale_, clip_grad_norm_
    for scaled, scale, max_norm in ef.clip_cases()[:3]:
        parameters = [torch.zeros_like(g, requires_grad=True) for g in scaled]
        loss = sum((p * g).sum() for p, g in zip(parameters, scaled)) / scale
        optimizer = torch.optim.SGD(parameters, lr=0.1)
        scaler = torch.amp.GradScaler("cpu", init_scale=scale)
        scaler.scale(loss).backward()  # the gradients are `scaled`, as the case holds them
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(parameters, max_norm)
        for p, expected in zip(parameters, ef._torch_unscale_and_clip(scaled, scale, max_norm)):
            torch.testing.assert_close(p.grad, expected, rtol=1e-12, atol=1e-15)


def test_the_memory_reference_counts_real_tensors():
    model = torch.nn.Sequential(torch.nn.Linear(10, 20), torch.nn.ReLU(), torch.nn.Linear(20, 3))
    n = sum(p.numel() for p in model.parameters())

    def adam_state_bytes(optimizer):
        return sum(t.nbytes for state in optimizer.state.values()
                   for key, t in state.items() if key != "step")

    # float32: weights, gradients, Adam's two moments
    model(torch.randn(4, 10)).sum().backward()
    optimizer = torch.optim.Adam(model.parameters())
    optimizer.step()
    weights = sum(p.nbytes for p in model.parameters())
    grads = sum(p.grad.nbytes for p in model.parameters())
    assert ef._memory_reference(n) == (weights, grads, adam_state_bytes(optimizer))
    # mixed precision: float16 model and gradients; float32 master weights that Adam updates
    half = model.half()
    master = [p.detach().float().requires_grad_() for p in half.parameters()]
    half(torch.randn(4, 10, dtype=torch.float16)).sum().backward()
    for m, p in zip(master, half.parameters()):
        m.grad = p.grad.float()
    optimizer = torch.optim.Adam(master)
    optimizer.step()
    expected = (sum(p.nbytes for p in half.parameters()),
                sum(p.grad.nbytes for p in half.parameters()),
                sum(m.nbytes for m in master) + adam_state_bytes(optimizer))
    assert ef._memory_reference(n, mixed_precision=True) == expected
    assert sum(expected) == 16 * n  # ZeRO: 2 + 2 + 12 bytes per parameter, as in float32


def test_the_parallel_reference_is_the_global_batch_gradient():
    for i, ((local_grads, sizes), (_, dtype)) in enumerate(zip(ef.parallel_cases(),
                                                               ef.PARALLEL_RUNS)):
        w, X, y = ef.global_batch(tuple(sizes), dtype, 115 + i)
        w.requires_grad_()
        F.mse_loss(X @ w, y).backward()
        torch.testing.assert_close(ef._parallel_reference(local_grads, sizes), w.grad)
    # DDP's plain average is the same where every rank has as many samples, and not otherwise
    equal, unequal = ef.parallel_cases()[:2]
    torch.testing.assert_close(torch.stack(equal[0]).mean(0), ef._parallel_reference(*equal))
    assert not torch.allclose(torch.stack(unequal[0]).mean(0), ef._parallel_reference(*unequal))


def test_the_accumulation_reference_is_the_full_batch_gradient():
    for case in ef.accumulation_cases("gradients"):
        model, batches = case.build()
        model.zero_grad()
        x = torch.cat([x for x, _ in batches])
        y = torch.cat([y for _, y in batches])
        loss = ef._LOSSES[case.kind](model(x), y)
        loss.backward()
        full = tuple(p.grad for p in model.parameters())
        accumulated = case.run(ef._accumulate())
        for got, expected in zip(accumulated.gradients, full):
            torch.testing.assert_close(got, expected)
        # one micro-batch at a time; all of them where backward waits for the summed loss
        assert accumulated.activations_held == ef.ONE_AT_A_TIME
        assert case.run(ef._accumulate(backward="once")).activations_held == ef.SEVERAL_AT_ONCE
        loss_case = ef._AccumulationCase(case.kind, case.sizes, case.dtype, case.seed, "loss")
        assert math.isclose(loss_case.run(ef._accumulate()), loss.item(), rel_tol=1e-6)


def test_the_cases_show_what_they_are_for():
    sizes = [case.sizes for case in ef.accumulation_cases("gradients")]
    assert any(len(set(s)) > 1 for s in sizes)  # unequal micro-batches: 1/k is wrong there
    assert any(len(set(s)) == 1 for s in sizes)
    assert any(len(set(s)) > 1 for _, s in ef.parallel_cases())  # DDP's mean is wrong there
    norms = [torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) / scale
             for grads, scale, _ in ef.clip_cases()]
    limits = [max_norm for _, _, max_norm in ef.clip_cases()]
    assert any(n > m for n, m in zip(norms, limits)) and any(n < m for n, m in zip(norms, limits))
    starts = {(case.tracker, case.infs[0]) for case in ef.scale_cases()
              if case.options.get("growth_interval") == 3}
    assert (2, True) in starts  # an inf on the step that would grow


def test_the_checkers_leave_torch_random_state_as_they_found_it():
    before = torch.get_rng_state()
    ef.check_accumulate_gradients(accumulate())
    ef.check_unscale_and_clip(clip())
    assert torch.equal(torch.get_rng_state(), before)


# --------------------------------------------------------------------------------------------
# Grading: what a task forbids, hidden inputs
# --------------------------------------------------------------------------------------------


def by_torchs_kernel(scale, growth_tracker, found_inf, growth_factor=2.0, backoff_factor=0.5,
                     growth_interval=2000):
    scale_tensor = torch.tensor([float(scale)])
    tracker = torch.tensor([growth_tracker], dtype=torch.int32)
    torch._amp_update_scale_(scale_tensor, tracker, torch.tensor([float(found_inf)]),
                             growth_factor, backoff_factor, growth_interval)
    return scale_tensor.item(), int(tracker.item())


def by_a_grad_scaler(scale, growth_tracker, found_inf, growth_factor=2.0, backoff_factor=0.5,
                     growth_interval=2000):
    scaler = torch.amp.GradScaler("cpu", init_scale=scale, growth_factor=growth_factor,
                                  backoff_factor=backoff_factor, growth_interval=growth_interval)
    param = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=0.0)
    scaler.scale((param * (math.inf if found_inf else 1.0)).sum()).backward()
    scaler._growth_tracker.fill_(growth_tracker)
    scaler.step(optimizer)
    scaler.update()
    return scaler.get_scale(), int(scaler._growth_tracker.item())


def by_clip_grad_norm(scaled_grads, scale, max_norm):
    parameters = [torch.zeros_like(g, requires_grad=True) for g in scaled_grads]
    for p, g in zip(parameters, scaled_grads):
        p.grad = g / scale
    torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    return [p.grad for p in parameters]


def by_total_norm(scaled_grads, scale, max_norm):
    grads = [g / scale for g in scaled_grads]
    factor = torch.clamp(max_norm / (torch.nn.utils.get_total_norm(grads) + 1e-6), max=1.0)
    return [g * factor for g in grads]


FORBIDDEN = [  # (checker, an answer that is right but for what it calls, the call reported)
    (ef.check_update_scale, by_torchs_kernel, "torch._amp_update_scale_"),
    (ef.check_update_scale, by_a_grad_scaler, "torch.amp.grad_scaler.GradScaler.__init__"),
    (ef.check_unscale_and_clip, by_clip_grad_norm, "torch.nn.utils.clip_grad.clip_grad_norm_"),
    (ef.check_unscale_and_clip, by_total_norm, "torch.nn.utils.clip_grad._get_total_norm"),
]


globals().update(exercise_tests(MISTAKES, SOLUTION, may_be_missing=VERSIONED,
                                 forbidden=FORBIDDEN))


def test_clip_grad_norm_on_the_bare_gradients_is_forbidden_before_it_clips_nothing():
    verdict = ef.check_unscale_and_clip(clip_grad_norm_on_the_gradients)
    assert verdict.message.startswith(
        "your function calls torch.nn.utils.clip_grad.clip_grad_norm_")


def test_an_answer_that_learns_the_visible_inputs_by_heart_fails_the_hidden_test():
    table = {(numel, dtype, bool(rest and rest[0])): ef._adam_bytes_reference(numel, dtype, *rest)
             for numel, dtype, *rest in ef.adam_bytes_cases()}

    def by_heart(numel, dtype, amsgrad=False):
        return table.get((numel, dtype, amsgrad), 0)

    assert ef.check_adam_step_bytes(by_heart).passed  # the visible inputs: all known
    with pytest.raises(AssertionError, match="on the hidden inputs"):
        grade(ef.check_adam_step_bytes, by_heart, seed=71518)


def test_a_transformed_roofline_answer_gets_its_hint_without_the_answer_in_the_source():
    source = Path(ef.__file__).read_text()
    assert "0.875" not in source and "87.5" not in source and "1.75e12" not in source
    assert ef.check_bandwidth_fraction(lambda: 8 / 7).message.startswith("upside down")


