"""Checkers for the exercises of chapter 11, efficient optimization.

The references are torch's own wherever torch has the thing: the bytes an Adam step moves are
counted on the state that `torch.optim.Adam` creates (``exp_avg``, ``exp_avg_sq``, and
``max_exp_avg_sq`` with AMSGrad); the loss scale is updated by `torch._amp_update_scale_`, the
kernel that `torch.amp.GradScaler.update` calls; clipping is `torch.nn.utils.clip_grad_norm_`
on the unscaled gradients. Where the task is a formula, the reference is the formula: the
training memory of ZeRO (Rajbhandari et al. 2020), 2 + 2 + 12 bytes per parameter in mixed
precision; the data-parallel average weighted by the local batch sizes; the linear
learning-rate scaling rule (Goyal et al. 2017). tests/test_exercises_efficiency.py checks those
formulas against torch: the memory against the tensors a real model and optimizer hold, the
average against autograd's gradient of the global batch, the scale update against a real
`GradScaler`.

Gradient accumulation is checked through a model whose forward passes are watched
(`_SavedActivations`): every tensor autograd saves for the backward pass inside the model is
tagged with the forward pass that saved it, so that the checker knows, besides the gradients,
whether the activations of one micro-batch or of several were held at once. Accumulation exists
to hold one micro-batch at a time; an implementation whose gradients are right but that holds
more (one forward pass on the whole batch, one backward on the summed losses, retain_graph) is
told so.

Lists of tensors given to a learner's function are copied for every call (`_copied_lists`):
unscaling and all-reducing are done in place in practice, and a function that does so must not
spoil the next call. Gradients are described by their dtype, shapes and global norm; where the
learner's and the expected ones look alike in that description, the verdict names instead where
their values differ most (`_told_apart`).

The loss-scaling tasks forbid what they ask the learner to write (`task(forbid=...)`):
GradScaler and its update kernel, and torch's gradient clipping. The answer of the question
(task 2) is sealed. The checkers of functions draw their inputs with `seeded` (and the initial
weights with `input_seed`), so that a hidden test gives other ones; where the cases are chosen
by hand, one more case is drawn.
"""

from __future__ import annotations

import math
import weakref
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.exercises import (
    BadReturn,
    Diagnosis,
    Disguised,
    Sealed,
    Verdict,
    as_number,
    check_answer,
    check_function,
    check_procedure,
    input_seed,
    lists_as_tuples,
    seeded,
    values_differ,
    wrong,
)
from helpers.exercises.grading import task

GRAD_SCALER = ("torch.amp", "torch.cuda.amp", "torch._amp_update_scale_",
               "torch._amp_foreach_non_finite_check_and_unscale_")
"""torch.amp.GradScaler (and its older torch.cuda.amp home) and the kernels it calls."""

CLIP_GRAD = tuple(f"torch.nn.utils.clip_grad.{name}" for name in (
    "clip_grad_norm_", "clip_grad_norm", "get_total_norm", "_get_total_norm",
    "clip_grads_with_norm_", "_clip_grads_with_norm_"))
"""torch's clipping by the global norm, and its two halves (the norm, the scaling) as torch
2.6 and later define them."""


class _Tensors(list):
    """A list of tensors, an input of the checks, shown by its dtype and shapes (not by every
    value) where a verdict names the input."""

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(t.shape)) for t in self)
        return f"a list of {len(self)} {self[0].dtype} tensors of shapes [{shapes}]"


def _copied_lists(function):
    """`function` called with a copy of every list of tensors it is given, so that one changing
    them in place (as GradScaler.unscale_ and an all-reduce do) cannot spoil the next call;
    anything not callable is passed through for the checker to describe."""
    if not callable(function):
        return function

    def on_copies(*args):
        return function(*([a.clone() if isinstance(a, Tensor) else a for a in arg]
                          if isinstance(arg, list) else arg for arg in args))
    return on_copies


# --------------------------------------------------------------------------------------------
# Task 1: the bytes one Adam step reads and writes
# --------------------------------------------------------------------------------------------


def _adam_state(dtype: torch.dtype, amsgrad: bool) -> list[Tensor]:
    """The per-element state `torch.optim.Adam` keeps for a parameter of `dtype` (not the
    scalar `step`), read from a real step on a tiny parameter."""
    param = torch.zeros(2, dtype=dtype, requires_grad=True)
    param.grad = torch.zeros_like(param)
    optimizer = torch.optim.Adam([param], amsgrad=amsgrad)
    optimizer.step()
    return [value for value in optimizer.state[param].values() if value.shape == param.shape]


def _adam_bytes_reference(numel, dtype, amsgrad=False) -> int:
    """numel x (bytes read + bytes written per element): read the parameter, its gradient and
    every state tensor; write the parameter and every state tensor."""
    state = _adam_state(dtype, amsgrad)
    size = torch.empty(0, dtype=dtype).element_size()
    read = 2 * size + sum(s.element_size() for s in state)  # p, g, exp_avg, exp_avg_sq (, max)
    written = size + sum(s.element_size() for s in state)  # p, exp_avg, exp_avg_sq (, max)
    return numel * (read + written)


def _adam_bytes(read: int = 4, written: int = 3, amsgrad_extra: int = 2, bits: bool = False,
                itemsize: int | None = None) -> Callable:
    """The bytes with one part changed: tensors read, tensors written, what AMSGrad's
    max_exp_avg_sq adds, bits for bytes, one element size for every dtype."""
    def adam_step_bytes(numel, dtype, amsgrad=False):
        tensors = read + written + (amsgrad_extra if amsgrad else 0)
        size = dtype.itemsize if itemsize is None else itemsize
        return numel * size * tensors * (8 if bits else 1)
    return adam_step_bytes


def _unfused_adam_bytes() -> Callable:
    """The bytes the unfused Adam step (`torch.optim.Adam(foreach=False)`, one element-wise
    kernel after another) moves in float32 without AMSGrad, 72 per parameter: 18 tensors of 4
    bytes, each read or written by one kernel (lerp_ 3, mul_ 2, addcmul_ 3, sqrt 2, division 2,
    add_ 2, addcdiv_ 4). Other dtypes and AMSGrad are not counted (it raises there)."""
    def adam_step_bytes(numel, dtype, amsgrad=False):
        if dtype != torch.float32 or amsgrad:
            raise ValueError(f"expected float32 without AMSGrad but got {dtype}, "
                             f"amsgrad={amsgrad}")
        return numel * 18 * dtype.itemsize
    return adam_step_bytes


_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)


def adam_bytes_cases() -> list[tuple]:
    """(numel, dtype[, amsgrad]): GPT-2 small's 124 M parameters, half precision, float64,
    AMSGrad, and one drawn."""
    g = seeded(116)
    drawn = (int(torch.randint(1, 10**10, (1,), generator=g)),
             _DTYPES[int(torch.randint(0, len(_DTYPES), (1,), generator=g))],
             bool(torch.randint(0, 2, (1,), generator=g)))
    return [(1000, torch.float32), (124_439_808, torch.float32), (7, torch.float16, True),
            (10**9, torch.bfloat16), (3, torch.float64, True), (5, torch.float32, False), drawn]


_UNFUSED = ("72 bytes per float32 parameter, 18 tensors, is what the unfused step moves "
            "(Adam with foreach=False: lerp_, mul_, addcmul_, sqrt, a division, add_ and "
            "addcdiv_, each kernel reading and writing whole tensors, its intermediates too); the "
            "question asks the minimum a fused step must move: read param, grad, exp_avg and "
            "exp_avg_sq once and write param, exp_avg and exp_avg_sq once, 7 tensors, 28 bytes "
            "per float32 parameter")


@task()
def check_adam_step_bytes(adam_step_bytes) -> Verdict:
    """Task 1: `adam_step_bytes(numel, dtype, amsgrad=False)`, the fewest bytes one Adam step
    over `numel` parameters of `dtype` must move between memory and the processor: read the
    parameter, the gradient and every state tensor, write back the parameter and every state
    tensor; as a number."""
    return check_function("adam_step_bytes", adam_step_bytes, _adam_bytes_reference,
                          adam_bytes_cases(), [
        Diagnosis(_adam_bytes(written=0, amsgrad_extra=1),
                  "you counted what the step READS (or the memory the four tensors occupy): it "
                  "also WRITES the parameter and both moments back, 3 more tensors; a step "
                  "moves 4 + 3 = 7 tensors of the parameter's size"),
        Diagnosis(_adam_bytes(read=3),
                  "the gradient is read too: the step reads param, grad, exp_avg and exp_avg_sq "
                  "(4 tensors) and writes param, exp_avg and exp_avg_sq (3)"),
        Diagnosis(_adam_bytes(written=4),
                  "the gradient is only read, never written by the step: 4 tensors read "
                  "(param, grad, exp_avg, exp_avg_sq), 3 written (param, exp_avg, exp_avg_sq)"),
        Diagnosis(_adam_bytes(bits=True),
                  "that is in bits: count bytes, dtype.itemsize per element (4 for float32), "
                  "not torch.finfo(dtype).bits"),
        Diagnosis(_adam_bytes(itemsize=4),
                  "every dtype got 4 bytes per element: float16 and bfloat16 take 2, float64 "
                  "takes 8; use dtype.itemsize (or torch.finfo(dtype).bits // 8)"),
        Diagnosis(_adam_bytes(amsgrad_extra=0),
                  "with amsgrad=True the step also keeps max_exp_avg_sq, a third state tensor "
                  "of the parameter's size: read and written, 2 more tensors"),
        Diagnosis(_adam_bytes(amsgrad_extra=1),
                  "AMSGrad's max_exp_avg_sq is read AND written back (it is updated in place by "
                  "the maximum): 2 more tensors, not 1"),
        Diagnosis(_unfused_adam_bytes(), _UNFUSED),
    ], rtol=1e-12, atol=0.0)


# --------------------------------------------------------------------------------------------
# Task 2 (a question): how close to the roofline is a measured step?
# --------------------------------------------------------------------------------------------

_ROOFLINE_ANSWER = Sealed("4ba2560c7cbc1e6c09d5f77adef0c4cee9aaf9af5834c3e6447a6a37b2167418")
"""Task 2's answer, sealed: the question (a fused Adam step over 350 M float32 parameters, no
AMSGrad, measured at 5.6 ms on a memory of 2.0 TB/s) is in the task's text."""

_TRANSFORMED_ANSWERS = (
    (Disguised(lambda got: 1 / got),
     "upside down: the fraction is the fastest possible time (bytes / bandwidth) divided by the "
     "measured time, at most 1"),
    (Disguised(lambda got: got / 8), "that counts bits: a float32 element is 4 bytes"),
    (Disguised(lambda got: got / 100),
     "that is a percentage: the question asks for the fraction, a number between 0 and 1 "
     "(divide by 100)"),
    (Disguised(lambda got: got / 2.0e12),
     "that is the bandwidth the step reached, in bytes per second (the bytes it must move "
     "divided by the measured time): the fraction divides it by the bandwidth the memory can "
     "reach, the GPU's 2.0 TB/s"),
)
"""Task 2's wrong answers that are the right one transformed, each undone by the inverse of the
transformation (which gives the sealed answer back), with its hint: written so, they do not give
the answer away."""


@task()
def check_bandwidth_fraction(bandwidth_fraction) -> Verdict:
    """Task 2 (a question): the fraction of the memory bandwidth the measured step reaches:
    (bytes it must move / bandwidth) / measured time. The answer is sealed."""
    return check_answer("bandwidth_fraction", bandwidth_fraction, _ROOFLINE_ANSWER, [
        (0.5, "you counted the four tensors the step reads (the memory they occupy), 16 bytes "
              "per parameter: it also writes back param, exp_avg and exp_avg_sq, 28 bytes per "
              "parameter in all"),
        (0.75, "the gradient is read too: 4 tensors read and 3 written, 7 x 4 bytes per "
               "parameter"),
        (1.0, "a fraction of exactly 1 would mean the step runs at the roofline: the gradient "
              "is only read, not written; 7 tensors move, not 8"),
        (0.7958078640513122,
         "TB/s here is 10^12 bytes per second (vendors quote decimal units), not 2^40"),
        (2.25,
         "a fraction above 1 would mean the step moved its bytes faster than the memory can, "
         "so something is upside down or counted too often: 2.25 comes from 72 bytes per "
         "parameter (18 tensors), what the unfused step moves, each of its kernels reading and "
         "writing whole tensors; the roofline counts the minimum a fused step must move, 7 "
         "tensors, 28 bytes per parameter"),
        *_TRANSFORMED_ANSWERS,
    ], rtol=1e-9, atol=0.0)



# --------------------------------------------------------------------------------------------
# Task 3: gradient accumulation over micro-batches of unequal size
# --------------------------------------------------------------------------------------------


class _Saved:
    """A tensor autograd saved for the backward pass, as the pack hook hands it over."""

    def __init__(self, tensor: Tensor):
        self.tensor = tensor


class _SavedActivations:
    """Watches a model while a function trains it: each tensor that autograd saves for backward
    during one of the model's forward passes (with autograd on) is tagged with that pass, and a
    pass's samples count as held while any of its saved tensors is alive. `peak` is the most
    samples held at once. What is saved outside the model (by the loss) is not watched: a loss
    kept for logging holds the model's output, not its activations."""

    def __init__(self, model: torch.nn.Module):
        self.samples: dict[int, int] = {}  # forward pass -> its number of samples
        self.alive: Counter = Counter()  # forward pass -> its saved tensors still alive
        self.current: int | None = None  # the forward pass running now, if any
        self.peak = 0
        model.register_forward_pre_hook(self._enter)
        model.register_forward_hook(self._leave)

    def _enter(self, module, args) -> None:
        if torch.is_grad_enabled():
            self.current = len(self.samples)
            first = args[0] if args else None
            self.samples[self.current] = (int(first.shape[0]) if isinstance(first, Tensor)
                                          and first.dim() > 0 else 1)

    def _leave(self, module, args, output) -> None:
        self.current = None

    def _pack(self, tensor: Tensor) -> _Saved | Tensor:
        if self.current is None:
            return tensor
        saved, forward = _Saved(tensor), self.current
        self.alive[forward] += 1
        weakref.finalize(saved, self._release, forward)
        held = sum(self.samples[f] for f, count in self.alive.items() if count > 0)
        self.peak = max(self.peak, held)
        return saved

    def _release(self, forward: int) -> None:
        self.alive[forward] -= 1

    @staticmethod
    def _unpack(saved: _Saved | Tensor) -> Tensor:
        return saved.tensor if isinstance(saved, _Saved) else saved

    def watching(self):
        return torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)


ONE_AT_A_TIME, SEVERAL_AT_ONCE = "one micro-batch at a time", "several micro-batches at once"


class Accumulated(NamedTuple):
    """What task 3's checker compares first: every parameter's .grad after the learner's
    function, and whether the activations of one micro-batch or of several were held at
    once."""

    gradients: tuple[Tensor, ...]
    activations_held: str

    def __repr__(self) -> str:
        norms = ", ".join(f"{g.norm().item():.6g}" for g in self.gradients)
        return f"gradients of norms ({norms}), activations held {self.activations_held}"


_LOSSES = {"regression": F.mse_loss, "classification": F.cross_entropy}


class _AccumulationCase:
    """A small MLP whose .grad holds a stale gradient (the previous step's), a loss function
    with reduction='mean', and a list of (x, y) micro-batches of the given sizes; `report` says
    what the procedure returns: the 'gradients' (with the samples held at once) or the
    returned 'loss'."""

    def __init__(self, kind: str, sizes: tuple[int, ...], dtype: torch.dtype, seed: int,
                 report: str):
        self.kind, self.sizes, self.dtype, self.seed, self.report = kind, sizes, dtype, seed, report

    def __repr__(self) -> str:
        return (f"a {self.kind} MLP in {self.dtype}, loss_fn=F.{_LOSSES[self.kind].__name__}, "
                f"micro-batches of sizes {list(self.sizes)}")

    def build(self) -> tuple[torch.nn.Module, list[tuple[Tensor, Tensor]]]:
        g = seeded(self.seed)
        features, outputs = (3, 2) if self.kind == "regression" else (4, 3)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(input_seed(self.seed))  # other initial weights in a hidden test
            model = torch.nn.Sequential(torch.nn.Linear(features, 6), torch.nn.Tanh(),
                                        torch.nn.Linear(6, outputs)).to(self.dtype)
        for parameter in model.parameters():  # what the previous step left
            parameter.grad = torch.randn(parameter.shape, generator=g, dtype=self.dtype)
        batches = []
        for n in self.sizes:
            x = torch.randn(n, features, generator=g, dtype=self.dtype)
            if self.kind == "regression":
                y = torch.randn(n, outputs, generator=g, dtype=self.dtype)
            else:
                y = torch.randint(0, outputs, (n,), generator=g)
            batches.append((x, y))
        return model, batches

    def run(self, accumulate_gradients: Callable):
        model, batches = self.build()
        watch = _SavedActivations(model)
        with watch.watching():
            result = accumulate_gradients(model, _LOSSES[self.kind], batches)
        if result is None:
            return None
        if self.report == "loss":
            number = as_number(result)
            return result if number is None else number
        gradients = []
        for name, parameter in model.named_parameters():
            if parameter.grad is None:
                raise BadReturn(f"your function left no gradient in the parameter {name!r} "
                                f"(its .grad is None): call backward() on each micro-batch's "
                                f"loss after clearing the old gradients")
            gradients.append(parameter.grad.detach().clone())
        held = ONE_AT_A_TIME if watch.peak <= max(self.sizes) else SEVERAL_AT_ONCE
        return Accumulated(tuple(gradients), held)


def accumulation_cases(report: str) -> list[_AccumulationCase]:
    """Equal micro-batches, a smaller last one (a DataLoader's remainder), four of different
    sizes, a classifier, and float32."""
    return [_AccumulationCase("regression", (4, 4, 4), torch.float64, 110, report),
            _AccumulationCase("regression", (5, 5, 2), torch.float64, 111, report),
            _AccumulationCase("classification", (3, 1, 4, 2), torch.float64, 112, report),
            _AccumulationCase("classification", (8, 8, 3), torch.float32, 113, report)]


def _accumulate(weight: str = "n / N", clear: str = "before", backward: str = "each",
                report: str = "weighted mean") -> Callable:
    """Accumulation with one part changed: the `weight` of each micro-batch's mean loss
    ('n / N', '1 / k', 'none', '1 / N', or 'summed / N': the loss with reduction='sum' over N
    samples), when the old gradients are cleared ('before',
    'inside' the loop, 'never'), whether backward runs on 'each' micro-batch or 'once' on the
    summed losses, and which loss is returned."""
    def accumulate_gradients(model, loss_fn, micro_batches):
        total, k = sum(len(x) for x, _ in micro_batches), len(micro_batches)
        if clear == "before":
            model.zero_grad()
        kept, losses = [], []
        for x, y in micro_batches:
            if clear == "inside":
                model.zero_grad()
            output = model(x)
            loss = loss_fn(output, y)
            losses.append((loss.item(), len(x)))
            if weight == "summed / N":  # a sum over every element, divided by the samples
                scaled = loss_fn(output, y, reduction="sum") / total
            else:
                scaled = loss * {"n / N": len(x) / total, "1 / k": 1 / k, "none": 1.0,
                                 "1 / N": 1 / total}[weight]
            if backward == "each":
                scaled.backward()
            else:
                kept.append(scaled)
        if backward == "once":
            torch.stack(kept).sum().backward()
        means = [loss for loss, _ in losses]
        return {"weighted mean": sum(loss * n / total for loss, n in losses),
                "last": means[-1], "mean of means": sum(means) / k, "sum": sum(means),
                "last scaled": means[-1] * losses[-1][1] / total}[report]
    return accumulate_gradients


@task()
def check_accumulate_gradients(accumulate_gradients) -> Verdict:
    """Task 3: `accumulate_gradients(model, loss_fn, micro_batches)` leaves in every
    parameter's .grad the gradient of the mean loss over all the samples of `micro_batches` (a
    list of (x, y), of unequal sizes), holding the activations of one micro-batch at a time, and
    returns that mean loss as a number."""
    held_all = ("your gradient is right, but the activations of several micro-batches were "
                "held at once (one forward pass on the whole batch, losses summed before a "
                "single backward, or retain_graph=True keeping a graph alive): that is the "
                "memory of a bigger batch, which accumulation is there to avoid; call "
                "backward() on each micro-batch's loss inside the loop, so that its activations "
                "are freed before the next forward pass")
    verdict = check_procedure("accumulate_gradients", accumulate_gradients, _accumulate(),
                              accumulation_cases("gradients"), [
        Diagnosis(_accumulate(weight="none"),
                  "your gradient is the SUM of the micro-batches' mean-loss gradients, about k "
                  "times too large: weight each micro-batch's mean loss by its share of the "
                  "samples, n_i / N, before backward()"),
        Diagnosis(_accumulate(weight="1 / k"),
                  "dividing by the number of micro-batches k averages their means, which is the "
                  "mean over the samples only when all micro-batches have the same size: weight "
                  "each by its share of the samples, loss_i * n_i / N (the last batch of a "
                  "DataLoader is often smaller)"),
        Diagnosis(_accumulate(weight="1 / N"),
                  "loss_fn already averages over its micro-batch: dividing that mean by N "
                  "divides twice; multiply it by n_i / N (or use reduction='sum' and divide by "
                  "N)"),
        Diagnosis(_accumulate(weight="summed / N"),
                  "loss_fn(..., reduction='sum') adds up every ELEMENT of the output: with "
                  "several outputs per sample (mse_loss here has 2) the mean loss averages over "
                  "N x outputs elements, so dividing the sum by the N samples leaves a factor "
                  "of the outputs; weight each micro-batch's mean loss by n_i / N instead"),
        Diagnosis(_accumulate(clear="inside"),
                  "only the last micro-batch's gradient is left: zero_grad() inside the loop "
                  "erases what the earlier micro-batches accumulated; clear the gradients once, "
                  "before the loop"),
        Diagnosis(_accumulate(clear="never"),
                  "the old gradients were not cleared: backward() ADDS to .grad, so the "
                  "previous step's gradient is still in it; call model.zero_grad() once, before "
                  "the loop"),
        Diagnosis(_accumulate(backward="once"), held_all),
    ])
    if not verdict.passed:
        return verdict
    return check_procedure("accumulate_gradients", accumulate_gradients, _accumulate(),
                           accumulation_cases("loss"), [
        Diagnosis(_accumulate(report="last"),
                  "your gradients are right; the loss you returned is the last micro-batch's: "
                  "return the mean over all the samples, sum_i (n_i / N) loss_i"),
        Diagnosis(_accumulate(report="mean of means"),
                  "your gradients are right; the loss you returned is the plain mean of the "
                  "micro-batches' losses, which over-weights a small last micro-batch: weight "
                  "each by n_i / N"),
        Diagnosis(_accumulate(report="sum"),
                  "your gradients are right; the loss you returned is the sum of the "
                  "micro-batches' mean losses: weight each by n_i / N"),
        Diagnosis(_accumulate(report="last scaled"),
                  "your gradients are right; the loss you returned is the last micro-batch's "
                  "scaled loss, what the variable held after the loop: add up the scaled "
                  "losses of all micro-batches (as numbers, with .item())"),
    ], rtol=1e-5, atol=1e-9)


# --------------------------------------------------------------------------------------------
# Task 4: the loss scaler's update
# --------------------------------------------------------------------------------------------


def _torch_update_scale(scale, growth_tracker, found_inf, growth_factor=2.0, backoff_factor=0.5,
                        growth_interval=2000):
    """One update by torch's kernel, the one GradScaler.update calls: (scale, tracker)."""
    scale_tensor = torch.tensor([float(scale)], dtype=torch.float32)
    tracker = torch.tensor([int(growth_tracker)], dtype=torch.int32)
    inf = torch.tensor([1.0 if found_inf else 0.0], dtype=torch.float32)
    torch._amp_update_scale_(scale_tensor, tracker, inf, growth_factor, backoff_factor,
                             growth_interval)
    return scale_tensor.item(), int(tracker.item())


class _Trajectory(tuple):
    """(scale, growth_tracker) after each update, shown as a list of pairs."""

    def __repr__(self) -> str:
        return "[" + ", ".join(f"({s!r}, {t!r})" for s, t in self) + "]"


class _ScaleCase:
    """A run of updates: the start (scale, growth_tracker), one found_inf per step, the
    factors; the (scale, tracker) the function returns is fed into its next call."""

    def __init__(self, scale: float, tracker: int, infs: str, **options):
        self.scale, self.tracker, self.options = scale, tracker, options
        self.infs = [flag == "x" for flag in infs]  # "." a clean step, "x" one with inf or nan

    def __repr__(self) -> str:
        flags = ", ".join("T" if f else "F" for f in self.infs)
        options = "".join(f", {key}={value!r}" for key, value in self.options.items())
        return (f"scale={self.scale!r}, growth_tracker={self.tracker}{options}, then found_inf "
                f"= [{flags}] (T: inf or nan in the gradients)")

    def run(self, update_scale: Callable):
        scale, tracker, trajectory = self.scale, self.tracker, []
        for number, found_inf in enumerate(self.infs, start=1):
            out = update_scale(scale, tracker, found_inf, **self.options)
            if out is None:
                return None
            if isinstance(out, list):
                out = tuple(out)
            values = (as_number(out[0]), as_number(out[1])) if (
                isinstance(out, tuple) and len(out) == 2) else (None, None)
            if None in values:
                raise BadReturn(f"your function returned {out!r} at step {number}: return the "
                                f"pair (new_scale, new_growth_tracker), two numbers")
            scale, tracker = values
            trajectory.append((scale, tracker))
        return _Trajectory(trajectory)


def drawn_scale_case(seed: int) -> _ScaleCase:
    """A run drawn from `seeded(seed)`: a power-of-two scale, an interval of 1 to 4 steps, a
    tracker below it, the factors of torch's defaults or others, and 12 steps of which about
    one in four finds an inf."""
    g = seeded(seed)

    def pick(choices: tuple):
        return choices[int(torch.randint(0, len(choices), (1,), generator=g))]

    interval = int(torch.randint(1, 5, (1,), generator=g))
    tracker = int(torch.randint(0, interval, (1,), generator=g))
    scale = 2.0 ** int(torch.randint(8, 17, (1,), generator=g))
    infs = "".join("x" if u < 0.25 else "." for u in torch.rand(12, generator=g).tolist())
    return _ScaleCase(scale, tracker, infs, growth_factor=pick((2.0, 1.5, 4.0)),
                      backoff_factor=pick((0.5, 0.25)), growth_interval=interval)


def scale_cases() -> list[_ScaleCase]:
    """Clean steps only; infs amid clean steps; an inf on the step that would grow; the defaults
    near the end of an interval; a growth every step (interval 1) with other factors; a drawn
    run."""
    return [_ScaleCase(65536.0, 0, ".......", growth_interval=3),
            _ScaleCase(1024.0, 0, "..x....xx..", growth_interval=3),
            _ScaleCase(65536.0, 2, "x...", growth_interval=3),
            _ScaleCase(65536.0, 1997, "....."),
            _ScaleCase(256.0, 0, "..x.x..", growth_factor=1.5, backoff_factor=0.25,
                       growth_interval=1),
            _ScaleCase(8.0, 3, ".x..x.....", growth_factor=4.0, growth_interval=5),
            drawn_scale_case(117)]


def _update(reset_on_inf: bool = True, grows_after: int = 0, inf_first: bool = True,
            reset_on_growth: bool = True, backoff: str = "multiply",
            fixed_growth: float | None = None, fixed_backoff: float | None = None) -> Callable:
    """GradScaler's update with one part changed: the tracker kept on an inf, growth
    `grows_after` steps later than torch's (-1: one early), growth checked before the inf,
    the tracker not restarted after a growth, the backoff applied as a division, a growth or
    backoff factor written into the code (`fixed_growth`, `fixed_backoff`) in place of the
    argument."""
    def update_scale(scale, growth_tracker, found_inf, growth_factor=2.0, backoff_factor=0.5,
                     growth_interval=2000):
        growth_factor = growth_factor if fixed_growth is None else fixed_growth
        backoff_factor = backoff_factor if fixed_backoff is None else fixed_backoff

        def backed_off():
            factor = backoff_factor if backoff == "multiply" else 1 / backoff_factor
            return scale * factor, 0 if reset_on_inf else growth_tracker

        if found_inf and inf_first:
            return backed_off()
        successful = growth_tracker + 1
        if successful == growth_interval + grows_after:
            scale, successful = scale * growth_factor, 0 if reset_on_growth else successful
        if found_inf:  # reached only when the growth was checked first
            return backed_off()
        return scale, successful
    return update_scale


@task(forbid=GRAD_SCALER)
def check_update_scale(update_scale) -> Verdict:
    """Task 4: `update_scale(scale, growth_tracker, found_inf, growth_factor=2.0,
    backoff_factor=0.5, growth_interval=2000)` -> (new_scale, new_growth_tracker), the update
    of `torch.amp.GradScaler.update`; checked over runs of steps, its output fed back."""
    interval = ("the scale grows after exactly growth_interval clean steps in a row: add 1 to "
                "the tracker, and when it then equals growth_interval multiply the scale by "
                "growth_factor and restart the tracker at 0")

    def hard_coded(**defaults: float) -> str:
        names = " and ".join(defaults)
        used = " and ".join(f"{value} for {name}" for name, value in defaults.items())
        return (f"your scale ignores the {names} it is given: it multiplies by the default, "
                f"{used}, even where a run passes another value; multiply by the "
                f"argument{'s' if len(defaults) > 1 else ''}, not by a number written in "
                f"the code")
    return check_procedure("update_scale", update_scale, _torch_update_scale, scale_cases(), [
        Diagnosis(_update(reset_on_inf=False),
                  "after an inf the growth tracker restarts at 0: growth needs growth_interval "
                  "CONSECUTIVE clean steps, and the steps before the inf no longer count"),
        Diagnosis(_update(inf_first=False),
                  "on a step with an inf the scale only backs off: check found_inf first and "
                  "return (scale * backoff_factor, 0); a step whose gradients overflowed must "
                  "never make the scale grow"),
        Diagnosis(_update(grows_after=1), f"your scale grows one step late: {interval}"),
        Diagnosis(_update(grows_after=-1), f"your scale grows one step early: {interval}"),
        Diagnosis(_update(reset_on_growth=False),
                  "after a growth the tracker restarts at 0, so that the next growth waits "
                  "another growth_interval clean steps"),
        Diagnosis(_update(backoff="divide"),
                  "on an inf the scale is MULTIPLIED by backoff_factor (0.5: halved), so that "
                  "the next scaled gradients fit in float16; dividing by it doubles the scale"),
        Diagnosis(_update(fixed_growth=2.0, fixed_backoff=0.5),
                  hard_coded(growth_factor=2.0, backoff_factor=0.5)),
        Diagnosis(_update(fixed_growth=2.0), hard_coded(growth_factor=2.0)),
        Diagnosis(_update(fixed_backoff=0.5), hard_coded(backoff_factor=0.5)),
    ], rtol=1e-6, atol=0.0)


# --------------------------------------------------------------------------------------------
# Task 5: unscale, then clip
# --------------------------------------------------------------------------------------------


def _torch_unscale_and_clip(scaled_grads, scale, max_norm):
    """Divide by the scale (GradScaler.unscale_), then torch.nn.utils.clip_grad_norm_."""
    parameters = []
    for grad in scaled_grads:
        parameter = torch.zeros_like(grad, requires_grad=True)
        parameter.grad = grad.detach() / scale
        parameters.append(parameter)
    torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    return tuple(p.grad for p in parameters)


def _clip(order: str = "unscale first", norm: str = "global", cap: bool = True,
          eps: float = 1e-6) -> Callable:
    """Unscale and clip with one part changed: `order` 'unscale first', 'clip first' (then
    divide), 'never unscaled', 'multiplied' (by the scale, then clipped); the norm 'global' or
    'per tensor'; the factor capped at 1 or not; eps in max_norm / (norm + eps); 'no clip' at
    all."""
    def clipped(grads, max_norm):
        if norm == "per tensor":
            return [g * factor_for([g], max_norm) for g in grads]
        return [g * factor_for(grads, max_norm) for g in grads]

    def factor_for(grads, max_norm):
        total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g)
                                                      for g in grads]))
        factor = max_norm / (total + eps)
        return factor.clamp(max=1.0) if cap else factor

    def unscale_and_clip(scaled_grads, scale, max_norm):
        if order == "no clip":
            return [g / scale for g in scaled_grads]
        if order == "clip first":
            return [g / scale for g in clipped(scaled_grads, max_norm)]
        if order == "never unscaled":
            return clipped(scaled_grads, max_norm)
        if order == "multiplied":
            return clipped([g * scale for g in scaled_grads], max_norm)
        return clipped([g / scale for g in scaled_grads], max_norm)
    return unscale_and_clip


def clip_cases() -> list[tuple]:
    """(scaled_grads, scale, max_norm): norms after unscaling above max_norm and below it, in
    float64 and float32."""
    g = seeded(114)

    def grads(shapes, norm, scale, dtype=torch.float64):
        raw = [torch.randn(shape, generator=g, dtype=dtype) for shape in shapes]
        total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in raw]))
        return _Tensors(t * (norm / total) * scale for t in raw)  # unscaled, of norm `norm`

    return [(grads([(3, 4), (4,)], 5.0, 65536.0), 65536.0, 1.0),
            (grads([(2, 3), (3,), (5,)], 0.4, 1024.0), 1024.0, 1.0),
            (grads([(4,), (6,)], 2.5, 32768.0), 32768.0, 3.0),
            (grads([(8, 5), (5,)], 12.0, 65536.0, torch.float32), 65536.0, 1.0),
            (grads([(3, 3)], 0.05, 2.0**20, torch.float32), 2.0**20, 0.5)]


class _Gradients(tuple):
    """A tuple of gradients, shown by their shapes and global norm."""

    def __repr__(self) -> str:
        shapes = ", ".join(str(tuple(g.shape)) for g in self)
        norm = torch.linalg.vector_norm(torch.stack([g.detach().double().norm() for g in self]))
        dtypes = ", ".join(sorted({str(g.dtype) for g in self}))
        return f"{dtypes} gradients of shapes [{shapes}] with a global norm of {norm.item():.6g}"


class _NotAList:
    """Stands for a result that is not a list of tensors: it describes itself with the fix."""

    def __init__(self, value):
        kind = (f"a tensor of shape {tuple(value.shape)}" if isinstance(value, Tensor)
                else f"a {type(value).__name__}")
        self.text = f"{kind} (return a list of tensors, one per gradient, as they came)"

    def __repr__(self) -> str:
        return self.text


def _as_gradients(function):
    """`function` with a list or tuple of tensors returned as `_Gradients`, and anything else
    but None replaced by its description."""
    if not callable(function):
        return function

    def described(*args):
        result = function(*args)
        if isinstance(result, list | tuple) and all(isinstance(g, Tensor) for g in result) \
                and len(result) > 0:
            return _Gradients(result)
        return result if result is None else _NotAList(result)
    return described


def _largest_difference(got: _Gradients, expected: _Gradients) -> str:
    """Which gradient differs most from the expected one, where, and by how much."""
    def difference(i: int) -> float:
        gap = got[i].detach().double() - expected[i].detach().double()
        return gap.abs().nan_to_num(nan=math.inf).max().item()

    worst = max(range(len(expected)), key=difference)
    return f"most in gradient {worst}{values_differ(got[worst], expected[worst])}"


def _told_apart(verdict: Verdict, learner: Callable, reference: Callable,
                cases: list[tuple]) -> Verdict:
    """`verdict`, unless it reads "expected X but got X": the learner's gradients and the
    expected ones alike in dtype, shapes and global norm to the digits shown; then it names
    where their values differ most instead."""
    if verdict.passed or not callable(learner):
        return verdict
    for case in cases:
        expected = reference(*case)
        try:
            got = learner(*case)
        except Exception:  # noqa: BLE001 - the verdict already names the learner's error
            continue
        inputs = ", ".join(repr(a) for a in case)
        if isinstance(got, _Gradients) and len(got) == len(expected) and \
                verdict.message == f"expected {expected!r} but got {got!r} on input {inputs}" \
                and repr(got) == repr(expected):
            return wrong(verdict.task, f"your gradients agree with the expected ones in dtype, "
                                       f"shapes and global norm to 6 digits, but their values "
                                       f"differ on input {inputs}: "
                                       f"{_largest_difference(got, expected)}")
    return verdict


@task(forbid=(*GRAD_SCALER, *CLIP_GRAD))
def check_unscale_and_clip(unscale_and_clip) -> Verdict:
    """Task 5: `unscale_and_clip(scaled_grads, scale, max_norm)`, the gradients (a list, one
    per parameter) divided by the loss scale and then clipped to a global norm of at most
    `max_norm`, as `scaler.unscale_(optimizer)` then `torch.nn.utils.clip_grad_norm_` leave
    them."""
    learner = _as_gradients(_copied_lists(unscale_and_clip))
    reference = _as_gradients(_torch_unscale_and_clip)
    verdict = check_function("unscale_and_clip", learner, reference, clip_cases(), [
        Diagnosis(_clip(order="clip first"),
                  "you clipped the SCALED gradients, whose norm is the scale times too large, "
                  "so they were clipped far too much (then divided by the scale): unscale "
                  "first, divide by the scale (scaler.unscale_(optimizer)), then clip"),
        Diagnosis(_clip(order="never unscaled"),
                  "every result has norm max_norm, even where the unscaled gradient was already "
                  "shorter: the gradients were clipped while still scaled and never divided by "
                  "it; divide by the scale first, then clip"),
        Diagnosis(_clip(order="multiplied"),
                  "you MULTIPLIED the gradients by the scale: unscaling DIVIDES by it (backward "
                  "of the scaled loss left scale x g in .grad); multiplied, they were scale^2 "
                  "times too large, and clipping brought every norm down to max_norm, even "
                  "where the unscaled gradient was already shorter; divide by the scale, "
                  "then clip"),
        Diagnosis(_clip(cap=False),
                  "the clip factor max_norm / (norm + 1e-6) must be capped at 1: a gradient "
                  "already shorter than max_norm is left alone, not stretched to max_norm"),
        Diagnosis(_clip(norm="per tensor"),
                  "you clipped each tensor by its own norm: clip_grad_norm_ takes ONE norm "
                  "over all the gradients together, sqrt(sum of squares of every element), and "
                  "scales them all by the same factor"),
        Diagnosis(_clip(order="no clip"),
                  "the gradients are unscaled but not clipped: where their global norm exceeds "
                  "max_norm, multiply them all by max_norm / (norm + 1e-6)"),
        Diagnosis(_clip(eps=0.0),
                  "close: torch's factor is max_norm / (total_norm + 1e-6), with 1e-6 added to "
                  "the norm (it guards against a norm of 0)"),
    ], rtol=1e-9, atol=1e-12)
    return _told_apart(verdict, learner, reference, clip_cases())


# --------------------------------------------------------------------------------------------
# Task 6: the memory of training under Adam
# --------------------------------------------------------------------------------------------


def _memory(weights: int = 4, gradients: int = 4, state: int = 8, mixed: tuple = (2, 2, 12),
            unit: int = 1) -> Callable:
    """Bytes per parameter (weights, gradients, optimizer state) in float32 and in mixed
    precision, times `unit` (8: bits)."""
    def adam_training_memory(num_params, mixed_precision=False):
        per_param = mixed if mixed_precision else (weights, gradients, state)
        return tuple(num_params * b * unit for b in per_param)
    return adam_training_memory


def _memory_reference(num_params, mixed_precision=False) -> tuple[int, int, int]:
    """ZeRO's count (Rajbhandari et al. 2020, section 3.1): in float32, weights, gradients and
    Adam's two moments of 4 bytes each; in mixed precision, float16 weights and gradients
    (2 + 2) and an optimizer state of K = 12 bytes: float32 master weights and both moments."""
    half, single = torch.float16.itemsize, torch.float32.itemsize
    if mixed_precision:
        return num_params * half, num_params * half, num_params * 3 * single
    return num_params * single, num_params * single, num_params * 2 * single


def memory_cases() -> list[tuple]:
    """(num_params[, mixed_precision]): small, GPT-2 small, 7 B and 1.5 B, and one drawn."""
    g = seeded(118)
    drawn = (int(torch.randint(1, 10**11, (1,), generator=g)),
             bool(torch.randint(0, 2, (1,), generator=g)))
    return [(1000,), (1000, True), (124_439_808, False), (7_000_000_000, True),
            (1_500_000_000, False), drawn]


@task()
def check_adam_training_memory(adam_training_memory) -> Verdict:
    """Task 6: `adam_training_memory(num_params, mixed_precision=False)` -> (weights, gradients,
    optimizer_state), the bytes each takes when Adam trains `num_params` parameters: all
    float32; or, in mixed precision, float16 weights and gradients with float32 master weights
    and moments in the optimizer state."""
    return check_function("adam_training_memory", lists_as_tuples(adam_training_memory),
                          _memory_reference, memory_cases(), [
        Diagnosis(_memory(state=0, mixed=(2, 2, 0)),
                  "the optimizer state is missing: Adam keeps two moments per parameter "
                  "(exp_avg and exp_avg_sq), as large as the weights together, and in mixed "
                  "precision also the float32 master weights"),
        Diagnosis(_memory(state=4, mixed=(2, 2, 8)),
                  "Adam keeps TWO moments per parameter, exp_avg (m) and exp_avg_sq (v): 8 "
                  "bytes of state per parameter in float32"),
        Diagnosis(_memory(mixed=(2, 2, 8)),
                  "the float32 master weights are missing: in mixed precision the optimizer "
                  "updates a float32 copy of the weights (small updates vanish in float16) and "
                  "keeps it in its state, beside both moments: 4 + 4 + 4 = 12 bytes"),
        Diagnosis(_memory(mixed=(6, 2, 8)),
                  "the float32 master weights belong to the optimizer state (ZeRO's K = 12: "
                  "master weights, m and v), not to the weights, which are the float16 copy "
                  "the forward pass uses"),
        Diagnosis(_memory(mixed=(2, 4, 12)),
                  "in mixed precision the gradients are float16, 2 bytes each: backward runs "
                  "on the float16 weights; only the optimizer works in float32"),
        Diagnosis(_memory(mixed=(2, 2, 4)),
                  "in mixed precision the optimizer state stays float32: master weights, m and "
                  "v take 4 bytes each (12 per parameter), not 2"),
        Diagnosis(_memory(mixed=(4, 4, 8)),
                  "that is the memory of float32 training, which torch.autocast keeps too (it "
                  "casts inside the forward pass only): in the mixed precision of this task the "
                  "weights and gradients are float16 copies, 2 bytes each, and the optimizer "
                  "state holds the float32 master weights beside m and v"),
        Diagnosis(_memory(unit=8),
                  "that counts bits: a float32 value takes 4 bytes, a float16 value 2"),
    ], rtol=1e-12, atol=0.0)


# --------------------------------------------------------------------------------------------
# Task 7: the data-parallel gradient
# --------------------------------------------------------------------------------------------


def _parallel_reference(local_grads, local_batch_sizes):
    """sum_r (n_r / N) g_r: the gradient of the mean loss over the global batch, when g_r is
    rank r's gradient of its own mean loss over its n_r samples."""
    total = sum(local_batch_sizes)
    return sum(g * (n / total) for g, n in zip(local_grads, local_batch_sizes))


def global_batch(sizes: tuple[int, ...], dtype: torch.dtype, seed: int
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """(w, X, y): the weights of a linear model and a global batch of sum(sizes) samples,
    rank r's the r-th slice of `sizes[r]` rows."""
    g = seeded(seed)
    features = 5
    w = torch.randn(features, generator=g, dtype=dtype)
    X = torch.randn(sum(sizes), features, generator=g, dtype=dtype)
    noise = torch.randn(sum(sizes), generator=g, dtype=dtype)
    return w, X, X @ torch.randn(features, generator=g, dtype=dtype) + noise


def _local_gradients(sizes: tuple[int, ...], dtype: torch.dtype, seed: int) -> list[Tensor]:
    """Each rank's gradient, by autograd, of the mean squared error of the linear model over
    its own slice of the global batch."""
    w, X, y = global_batch(sizes, dtype, seed)
    grads = []
    for x_r, y_r in zip(X.split(list(sizes)), y.split(list(sizes))):
        w_r = w.clone().requires_grad_()
        F.mse_loss(x_r @ w_r, y_r).backward()
        grads.append(w_r.grad)
    return grads


PARALLEL_RUNS = [((8, 8, 8, 8), torch.float64), ((16, 16, 16, 5), torch.float64),
                 ((3, 7), torch.float64), ((10,), torch.float64), ((6, 6, 2), torch.float32)]
"""Task 7's runs, (local batch sizes, dtype): four equal ranks, a last rank with the
remainder, two ranks, one rank, float32; the seed of run i is 115 + i."""


def parallel_cases() -> list[tuple]:
    """(local_grads, local_batch_sizes) of each of `PARALLEL_RUNS`."""
    return [(_Tensors(_local_gradients(sizes, dtype, 115 + i)), list(sizes))
            for i, (sizes, dtype) in enumerate(PARALLEL_RUNS)]


def _parallel(kind: str) -> Callable:
    """The all-reduce's result gone wrong: 'sum', 'mean' (DDP's), 'mean twice', 'weighted sum'
    (not divided by N), 'weighted over R', 'sum over N' (no weights), 'own' (rank 0's)."""
    def data_parallel_gradient(local_grads, local_batch_sizes):
        stacked, total, world = torch.stack(local_grads), sum(local_batch_sizes), len(local_grads)
        weighted = (torch.tensor(local_batch_sizes, dtype=stacked.dtype)[:, None] * stacked).sum(0)
        return {"sum": stacked.sum(0), "mean": stacked.mean(0),
                "mean twice": stacked.mean(0) / world, "weighted sum": weighted,
                "sum over N": stacked.sum(0) / total, "weighted over R": weighted / world,
                "own": stacked[0]}[kind]
    return data_parallel_gradient


@task()
def check_data_parallel_gradient(data_parallel_gradient) -> Verdict:
    """Task 7: `data_parallel_gradient(local_grads, local_batch_sizes)`, the gradient every rank
    holds after the all-reduce, equal to the gradient of the mean loss over the global batch;
    `local_grads[r]` is rank r's gradient of its mean loss over `local_batch_sizes[r]`
    samples."""
    return check_function("data_parallel_gradient", _copied_lists(data_parallel_gradient),
                          _copied_lists(_parallel_reference), parallel_cases(), [
        Diagnosis(_parallel("sum"),
                  "that is the all-reduce's SUM of the ranks' gradients, world_size times too "
                  "large: the global mean weights each rank by its share of the samples, "
                  "sum_r (n_r / N) g_r (with equal shares: divide the sum by world_size)"),
        Diagnosis(_parallel("mean"),
                  "that is DistributedDataParallel's average, (1/R) sum_r g_r: it equals the "
                  "global mean only when every rank has the same number of samples; weight "
                  "each rank's gradient by its share, n_r / N"),
        Diagnosis(_parallel("mean twice"),
                  "you divided by world_size twice (as when each rank's loss is divided by "
                  "world_size and DDP then averages too): the result is world_size times too "
                  "small"),
        Diagnosis(_parallel("weighted sum"),
                  "each g_r is already a MEAN over its n_r samples: sum_r n_r g_r is the "
                  "gradient of the summed loss; divide it by N = sum_r n_r for the mean"),
        Diagnosis(_parallel("weighted over R"),
                  "after weighting by n_r, divide by the number of samples N = sum_r n_r, not "
                  "by the number of ranks"),
        Diagnosis(_parallel("sum over N"),
                  "each g_r is a mean over n_r samples: weight it by n_r before dividing by N, "
                  "sum_r n_r g_r / N"),
        Diagnosis(_parallel("own"),
                  "that is one rank's own gradient: without the all-reduce the ranks step with "
                  "different gradients and their models drift apart; combine the gradients of "
                  "all the ranks"),
    ], rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Task 8: the effective batch size and the linear scaling rule
# --------------------------------------------------------------------------------------------


def _batch_and_lr(count: str = "all", rule: str = "linear") -> Callable:
    """(effective batch, learning rate) with one part changed: which factors the batch counts,
    and the scaling rule ('linear', 'sqrt', 'inverse', 'none')."""
    def effective_batch_and_lr(base_lr, base_batch_size, micro_batch_size, accumulation_steps,
                               world_size):
        batch = micro_batch_size * {"all": accumulation_steps * world_size,
                                    "no world": accumulation_steps,
                                    "no accumulation": world_size}[count]
        ratio = batch / base_batch_size
        factor = {"linear": ratio, "sqrt": math.sqrt(ratio), "inverse": 1 / ratio,
                  "none": 1.0}[rule]
        return batch, base_lr * factor
    return effective_batch_and_lr


def batch_cases() -> list[tuple]:
    """(base_lr, base_batch_size, micro_batch_size, accumulation_steps, world_size): Goyal et
    al.'s 0.1 per 256 on 8 GPUs, accumulation on one device, a batch below the base one, and one
    drawn."""
    g = seeded(119)

    def power_of_two(low: int, high: int) -> int:
        return 2 ** int(torch.randint(low, high + 1, (1,), generator=g))

    drawn = (10 ** (-4 + 3 * torch.rand(1, generator=g, dtype=torch.float64).item()),
             power_of_two(4, 10), power_of_two(2, 8), int(torch.randint(1, 9, (1,), generator=g)),
             int(torch.randint(1, 17, (1,), generator=g)))
    return [(0.1, 256, 32, 1, 8), (3e-4, 64, 16, 8, 1), (0.1, 256, 64, 2, 4),
            (1e-3, 512, 32, 2, 2), (0.05, 128, 128, 1, 1), drawn]


@task()
def check_effective_batch_and_lr(effective_batch_and_lr) -> Verdict:
    """Task 8: `effective_batch_and_lr(base_lr, base_batch_size, micro_batch_size,
    accumulation_steps, world_size)` -> (effective batch size, learning rate by the linear
    scaling rule)."""
    return check_function("effective_batch_and_lr", lists_as_tuples(effective_batch_and_lr),
                          _batch_and_lr(), batch_cases(), [
        Diagnosis(_batch_and_lr(count="no world"),
                  "the batch of one optimizer step counts every rank: each of the world_size "
                  "processes accumulates its own micro-batches, and the all-reduce averages "
                  "them all, micro_batch_size x accumulation_steps x world_size"),
        Diagnosis(_batch_and_lr(count="no accumulation"),
                  "the accumulated micro-batches are part of one step's batch too: "
                  "micro_batch_size x accumulation_steps x world_size samples per step"),
        Diagnosis(_batch_and_lr(rule="sqrt"),
                  "that is the square-root rule (sometimes used with Adam): the linear rule "
                  "multiplies the learning rate by the batch ratio itself, "
                  "base_lr x batch / base_batch_size"),
        Diagnosis(_batch_and_lr(rule="inverse"),
                  "the ratio is upside down: a larger batch averages away more noise and takes "
                  "a LARGER learning rate, base_lr x batch / base_batch_size"),
        Diagnosis(_batch_and_lr(rule="none"),
                  "the learning rate is not scaled: by the linear rule, k times the batch takes "
                  "k times the learning rate, base_lr x batch / base_batch_size"),
    ], rtol=1e-12, atol=0.0)
