r"""Where an optimizer step's time goes, and how to make an Adam step fast.

An Adam step does a handful of multiplications per parameter, so it is not limited by
arithmetic but by memory: the time of a step is at least the bytes it moves divided by the
memory bandwidth (the roofline of a memory-bound kernel),

.. math::
    t_{\text{step}} \;\ge\; \frac{\text{bytes moved}}{\text{bandwidth}}, \qquad
    \text{bytes moved} = N \cdot s \cdot \sum_{\text{passes}} (\text{tensors read} +
    \text{tensors written}),

for $N$ parameters of $s$ bytes each (4 in float32). A kernel that does the whole update in one
pass must read $\theta, g, m, v$ and write $\theta, m, v$: **7 tensors, 28 bytes per parameter in
float32** — the minimum. torch's single-tensor Adam (`foreach=False`) makes seven separate calls,
each one a pass over memory, some through temporaries: 18 tensors, 72 bytes per parameter, 2.6
times the minimum. `ADAM_PASSES` lists the passes of every implementation, and
`adam_bytes_per_parameter` sums them.

Two ways to reach the minimum: torch's `fused=True` kernel, and our `CompiledAdam`, whose update
is one expression per tensor,

.. math::
    m_t = \beta_1 m_{t-1} + (1-\beta_1)\,g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2)\,g_t^2, \qquad
    \theta_t = \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,
    \frac{m_t}{\sqrt{v_t}\,(1-\beta_2^t)^{-1/2} + \epsilon},

compiled by `torch.compile` into one loop per tensor. The learning rate, the bias corrections and
the other scalars enter the compiled function as *tensors*, so a learning-rate schedule changes
data, not code, and never triggers a recompilation; `CompileCounter` counts compilations to show
it.

To measure: `copy_bandwidth` (the bandwidth a plain copy reaches), `time_interleaved` (robust
timing of several candidates, interleaved so that a busy machine slows all of them alike),
`adam_step_times` (every implementation on the same parameters), `compile_seconds` (the one-off
cost of compiling, cold or from the cache) and `profile_training_step` (how a training step splits
into forward, backward and optimizer).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import torch
from torch import Tensor
from torch.optim import Optimizer

from helpers.devices import supports_dtype
from helpers.optim import (
    Adam,
    _check_at_least,
    _check_betas,
    _check_learning_rate,
    _minibatch_loss,
    _new_step,
    check_optimizer,
    optimizer_trajectory,
    options_label,
    softmax_regression_problem,
)
from helpers.verify import Check, Tolerance, as_dtype, dtype_name, register

__all__ = ["MemoryPass", "ADAM_PASSES", "IMPLEMENTATIONS", "adam_passes",
           "adam_bytes_per_parameter", "passes_table", "time_interleaved", "copy_bandwidth",
           "adam_step_times", "CompileCounter", "adam_update_", "CompiledAdam",
           "compile_seconds", "TRAINING_STEP_PARTS", "profile_training_step",
           "FLOAT32_STEP_TOLERANCE", "STEP_CHECKED_OPTIONS", "compiled_adam_check", "STEP_CHECKS"]


# --------------------------------------------------------------------------------------------
# Memory traffic of an Adam step (no weight decay, no AMSGrad, minimizing)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MemoryPass:
    """One pass over memory: a kernel that streams every tensor it reads and writes once.

    A tensor read twice by the same kernel (`addcmul_(grad, grad)`) is counted once: both reads
    hit the same cache line in the same loop iteration.
    """

    op: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    source: str = ""

    @property
    def tensors(self) -> int:
        """Tensors moved: read + written."""
        return len(self.reads) + len(self.writes)


_TORCH_ADAM = "torch 2.13.0 torch/optim/adam.py"  # the line numbers below are this version's

_ONE_PASS = (
    MemoryPass("m, v and theta updated in registers, in one loop",
               ("param", "grad", "exp_avg", "exp_avg_sq"), ("param", "exp_avg", "exp_avg_sq"),
               "torch._fused_adam_ (fused=True); the loop torch.compile writes for adam_update_"),
)

_SINGLE_TENSOR = (
    MemoryPass("exp_avg.lerp_(grad, 1 - beta1)", ("exp_avg", "grad"), ("exp_avg",),
               f"{_TORCH_ADAM}:456 (_single_tensor_adam)"),
    MemoryPass("exp_avg_sq.mul_(beta2)", ("exp_avg_sq",), ("exp_avg_sq",),
               f"{_TORCH_ADAM}:475"),
    MemoryPass(".addcmul_(grad, grad, value=1 - beta2)", ("exp_avg_sq", "grad"),
               ("exp_avg_sq",), f"{_TORCH_ADAM}:475"),
    MemoryPass("exp_avg_sq.sqrt()", ("exp_avg_sq",), ("sqrt_v",), f"{_TORCH_ADAM}:544"),
    MemoryPass("/ bias_correction2_sqrt", ("sqrt_v",), ("denom",), f"{_TORCH_ADAM}:544"),
    MemoryPass(".add_(eps)", ("denom",), ("denom",), f"{_TORCH_ADAM}:544"),
    MemoryPass("param.addcdiv_(exp_avg, denom, value=-step_size)",
               ("param", "exp_avg", "denom"), ("param",), f"{_TORCH_ADAM}:546"),
)

_FOREACH = (
    MemoryPass("_foreach_lerp_(exp_avgs, grads, 1 - beta1)", ("exp_avg", "grad"), ("exp_avg",),
               f"{_TORCH_ADAM}:704 (_multi_tensor_adam)"),
    MemoryPass("_foreach_mul_(exp_avg_sqs, beta2)", ("exp_avg_sq",), ("exp_avg_sq",),
               f"{_TORCH_ADAM}:708"),
    MemoryPass("_foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)",
               ("exp_avg_sq", "grad"), ("exp_avg_sq",), f"{_TORCH_ADAM}:721"),
    MemoryPass("_foreach_sqrt(exp_avg_sqs)", ("exp_avg_sq",), ("denom",), f"{_TORCH_ADAM}:790"),
    MemoryPass("_foreach_div_(denom, bias_correction2_sqrt)", ("denom",), ("denom",),
               f"{_TORCH_ADAM}:792"),
    MemoryPass("_foreach_add_(denom, eps)", ("denom",), ("denom",), f"{_TORCH_ADAM}:793"),
    MemoryPass("_foreach_addcdiv_(params, exp_avgs, denom, step_size)",
               ("param", "exp_avg", "denom"), ("param",), f"{_TORCH_ADAM}:794"),
)

_UPDATE_SOURCE = "adam_update_ run eagerly"
_FUSED_EXPRESSION_EAGER = (
    MemoryPass("exp_avg.mul_(beta1)", ("exp_avg",), ("exp_avg",), _UPDATE_SOURCE),
    MemoryPass("t1 = (1 - beta1) * grad", ("grad",), ("t1",), _UPDATE_SOURCE),
    MemoryPass("exp_avg.add_(t1)", ("exp_avg", "t1"), ("exp_avg",), _UPDATE_SOURCE),
    MemoryPass("exp_avg_sq.mul_(beta2)", ("exp_avg_sq",), ("exp_avg_sq",), _UPDATE_SOURCE),
    MemoryPass("t2 = (1 - beta2) * grad", ("grad",), ("t2",), _UPDATE_SOURCE),
    MemoryPass("t3 = t2 * grad", ("t2", "grad"), ("t3",), _UPDATE_SOURCE),
    MemoryPass("exp_avg_sq.add_(t3)", ("exp_avg_sq", "t3"), ("exp_avg_sq",), _UPDATE_SOURCE),
    MemoryPass("t4 = step_size * exp_avg", ("exp_avg",), ("t4",), _UPDATE_SOURCE),
    MemoryPass("t5 = exp_avg_sq.sqrt()", ("exp_avg_sq",), ("t5",), _UPDATE_SOURCE),
    MemoryPass("t6 = t5 * inv_bias_correction2_sqrt", ("t5",), ("t6",), _UPDATE_SOURCE),
    MemoryPass("t7 = t6 + eps", ("t6",), ("t7",), _UPDATE_SOURCE),
    MemoryPass("t8 = t4 / t7", ("t4", "t7"), ("t8",), _UPDATE_SOURCE),
    MemoryPass("param.sub_(t8)", ("param", "t8"), ("param",), _UPDATE_SOURCE),
)

IMPLEMENTATIONS: dict[str, str] = {
    "torch_forloop": "torch Adam, foreach=False",
    "torch_foreach": "torch Adam, foreach=True",
    "torch_fused": "torch Adam, fused=True",
    "ours_eager": "helpers.optim.Adam",
    "ours_fused_eager": "one expression per tensor, eager",
    "ours_compiled": "one expression per tensor, compiled",
}
"""The Adam steps compared in this section: key -> what it is."""

ADAM_PASSES: dict[str, tuple[MemoryPass, ...]] = {
    "torch_forloop": _SINGLE_TENSOR,
    "torch_foreach": _FOREACH,
    "torch_fused": _ONE_PASS,
    "ours_eager": _SINGLE_TENSOR,  # helpers.optim.adam_step makes the same seven calls
    "ours_fused_eager": _FUSED_EXPRESSION_EAGER,
    "ours_compiled": _ONE_PASS,
}
"""The passes over memory of one Adam step (default options), per implementation.

On the CPU, torch's `_foreach_*` ops run the single-tensor kernels one tensor after another,
so `torch_foreach` moves what `torch_forloop` moves; on a GPU they launch fewer kernels, not
fewer bytes."""


def adam_passes(implementation: str) -> tuple[MemoryPass, ...]:
    """The passes of `implementation` (a key of `IMPLEMENTATIONS`)."""
    if implementation not in ADAM_PASSES:
        raise ValueError(f"expected an implementation among {sorted(ADAM_PASSES)}, but got "
                         f"{implementation!r}")
    return ADAM_PASSES[implementation]


def adam_bytes_per_parameter(implementation: str = "torch_fused",
                             dtype: torch.dtype | str = torch.float32) -> int:
    r"""Bytes one Adam step moves per parameter: $s \sum_{\text{passes}} (\text{reads} +
    \text{writes})$, with $s$ the size of one element of `dtype`.

    7 tensors (28 bytes in float32) for a one-pass kernel; 18 (72 bytes) for torch's
    single-tensor and foreach steps.
    """
    itemsize = torch.empty((), dtype=as_dtype(dtype)).element_size()
    return itemsize * sum(p.tensors for p in adam_passes(implementation))


def passes_table(implementation: str, dtype: torch.dtype | str = torch.float32) -> str:
    """The passes of `implementation` as an aligned text table, with their sum in bytes."""
    passes = adam_passes(implementation)
    itemsize = adam_bytes_per_parameter("torch_fused", dtype) // 7
    rows = [("op", "reads", "writes", "tensors")] + [
        (p.op, ", ".join(p.reads), ", ".join(p.writes), str(p.tensors)) for p in passes]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    total = sum(p.tensors for p in passes)
    count = f"{len(passes)} pass{'es' if len(passes) > 1 else ''}"
    lines.append(f"{count}, {total} tensors x {itemsize} bytes = "
                 f"{total * itemsize} bytes per parameter ({dtype_name(as_dtype(dtype))})")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------


def _synchronize() -> None:
    """Wait for queued GPU work, so that a timer measures it."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


_STATISTICS = {"median": statistics.median, "min": min}


def time_interleaved(candidates: Mapping[str, Callable[[], object]], *, repeats: int = 5,
                     warmup: int = 1, statistic: str = "median") -> dict[str, float]:
    r"""Seconds per call of every candidate: the median (or minimum) of `repeats` timed calls.

    The candidates take turns, one call each per round, in an order that rotates from round to
    round, after `warmup` untimed rounds (the first call may allocate or compile). A machine
    that gets busier or quieter during the measurement therefore slows every candidate alike,
    and their ratios stay meaningful. The median ignores a few disturbed calls; the minimum is
    the best the machine did, $t_{\min} = \min_r t_r$.
    """
    if not candidates or not all(callable(fn) for fn in candidates.values()):
        raise TypeError(f"expected a non-empty mapping of names to callables, but got "
                        f"{candidates!r}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"expected repeats >= 1, but got {repeats!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"expected warmup >= 0, but got {warmup!r}")
    if statistic not in _STATISTICS:
        raise ValueError(f"expected statistic in {sorted(_STATISTICS)}, but got {statistic!r}")
    names = list(candidates)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_ in range(warmup + repeats):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            _synchronize()
            start = time.perf_counter()
            candidates[name]()
            _synchronize()
            if round_ >= warmup:
                samples[name].append(time.perf_counter() - start)
    return {name: _STATISTICS[statistic](samples[name]) for name in names}


def copy_bandwidth(numel: int = 2**24, dtype: torch.dtype | str = torch.float32,
                   device: torch.device | str = "cpu", *, in_place: bool = False,
                   repeats: int = 5, statistic: str = "median") -> float:
    r"""Bytes per second of a large copy `dst.copy_(src)`, counting the read and the write:
    $2 N s / t$.

    With `in_place=True`, the tensor is read and written back in place (`x.mul_(1)`). A copy
    into another tensor usually costs more than its $2Ns$ bytes: the processor first reads each
    destination cache line before overwriting it (write-allocate), so in-place updates, such as
    a fused Adam kernel's, can beat the copy's bandwidth.
    """
    if not isinstance(numel, int) or numel < 1:
        raise ValueError(f"expected a positive number of elements, but got {numel!r}")
    source = torch.ones(numel, dtype=as_dtype(dtype), device=device)
    target = torch.empty_like(source)
    copy = (lambda: source.mul_(1)) if in_place else (lambda: target.copy_(source))
    seconds = time_interleaved({"copy": copy}, repeats=repeats, warmup=1,
                               statistic=statistic)["copy"]
    return 2 * numel * source.element_size() / seconds


def _split(numel: int, tensors: int) -> list[int]:
    """`tensors` sizes that add up to `numel`, as equal as possible."""
    if not isinstance(tensors, int) or not isinstance(numel, int) or not 1 <= tensors <= numel:
        raise ValueError(f"expected 1 <= tensors <= numel, but got tensors={tensors!r}, "
                         f"numel={numel!r}")
    size, extra = divmod(numel, tensors)
    return [size + (i < extra) for i in range(tensors)]


_MAKE_ADAM: dict[str, Callable[..., Optimizer]] = {
    "torch_forloop": partial(torch.optim.Adam, foreach=False),
    "torch_foreach": partial(torch.optim.Adam, foreach=True),
    "torch_fused": partial(torch.optim.Adam, fused=True),
    "ours_eager": Adam,
    "ours_fused_eager": lambda params, **options: CompiledAdam(params, backend=None, **options),
    "ours_compiled": lambda params, **options: CompiledAdam(params, **options),
}


def adam_step_times(numel: int = 10_000_000, tensors: int = 20,
                    dtype: torch.dtype | str = torch.float32, device: torch.device | str = "cpu",
                    *, implementations: Sequence[str] = tuple(IMPLEMENTATIONS),
                    repeats: int = 5, warmup: int = 2, statistic: str = "median",
                    seed: int = 0) -> dict[str, float]:
    """Seconds per `optimizer.step()` of each Adam implementation on `numel` parameters split
    into `tensors` tensors (keys of `IMPLEMENTATIONS`).

    Every optimizer updates the same parameters with the same gradients (each keeps its own
    state), one step each in turn (`time_interleaved`); the warm-up rounds create the state and
    compile. The times exclude the forward and backward passes: only the step.

    The eager implementations allocate temporaries at every step; on the CPU a fresh allocation
    may come from the operating system and page-fault on first touch, so their times can vary
    from run to run (torch's `foreach=False` step has been seen at 25 and at 47 ms for the
    default size), while the one-pass kernels, which allocate nothing, stay steady.
    """
    if warmup < 1:
        raise ValueError(f"expected warmup >= 1 (the first step allocates the state and "
                         f"compiles), but got {warmup!r}")
    for implementation in implementations:
        adam_passes(implementation)  # a clear error for an unknown name
    generator = torch.Generator().manual_seed(seed)
    dtype = as_dtype(dtype)
    params = []
    for size in _split(numel, tensors):
        param = torch.randn(size, generator=generator).to(device, dtype).requires_grad_(True)
        param.grad = torch.randn(size, generator=generator).to(device, dtype)
        params.append(param)
    steps = {name: _MAKE_ADAM[name](params, lr=1e-4).step for name in implementations}
    return time_interleaved(steps, repeats=repeats, warmup=warmup, statistic=statistic)


# --------------------------------------------------------------------------------------------
# Counting compilations
# --------------------------------------------------------------------------------------------


class CompileCounter:
    """A `torch.compile` backend that counts the graphs it is given, then hands each to
    `backend` ("inductor", "eager", ... or a backend function).

    `torch.compile(fn, backend=CompileCounter())` compiles as usual; `.count` then says how many
    times torch compiled `fn`: once, plus once per recompilation.
    """

    def __init__(self, backend: str | Callable = "inductor"):
        if not (isinstance(backend, str) or callable(backend)):
            raise TypeError(f"expected a backend name such as 'inductor' or a backend function, "
                            f"but got {type(backend).__name__}")
        self.backend = backend
        self.count = 0

    def __call__(self, graph_module: torch.fx.GraphModule, example_inputs: list) -> Callable:
        self.count += 1
        backend = self.backend
        if isinstance(backend, str):
            backend = torch._dynamo.lookup_backend(backend)
        return backend(graph_module, example_inputs)

    def __repr__(self) -> str:
        return f"CompileCounter(backend={self.backend!r}, count={self.count})"


_COPIES = itertools.count(1)


def _own_copy(function: types.FunctionType) -> types.FunctionType:
    """`function` under a new name (`adam_update__1`, ...) with a code object of its own.

    torch keeps what it learns about a function per code object and per (file, line, name):
    the compiled versions, the limit of `torch._dynamo.config.recompile_limit` (8) of them, and
    which inputs it saw change (automatic dynamic). A copy with its own name starts afresh, so
    one optimizer's compilations do not depend on the optimizers created before it.
    """
    name = f"{function.__name__}_{next(_COPIES)}"
    code = function.__code__.replace(co_name=name, co_qualname=name)
    copy = types.FunctionType(code, function.__globals__, name, function.__defaults__,
                              function.__closure__)
    copy.__kwdefaults__ = function.__kwdefaults__
    copy.__doc__ = function.__doc__
    return copy


# --------------------------------------------------------------------------------------------
# Adam as one expression per tensor, compiled
# --------------------------------------------------------------------------------------------

_SCALARS = ("step_size", "inv_bias_correction2_sqrt", "beta1", "one_minus_beta1", "beta2",
            "one_minus_beta2", "eps", "weight_decay", "decay_factor")
"""The columns of the scalars of a step, one row per tensor."""


def _scalars_of(scalars: Tensor | Sequence[Sequence[float]], index: int, param: Tensor):
    """The scalars of tensor `index`: 0-dim tensors of `param`'s dtype, or the Python floats."""
    row = scalars[index]
    if isinstance(row, Tensor):
        return row.to(device=param.device, dtype=param.dtype).unbind()
    return row


def adam_update_(params: list[Tensor], grads: list[Tensor], exp_avgs: list[Tensor],
                 exp_avg_sqs: list[Tensor], scalars: Tensor | Sequence[Sequence[float]], *,
                 maximize: bool = False, weight_decay: bool = False,
                 decoupled_weight_decay: bool = False) -> None:
    r"""One Adam step on every tensor, in place: one expression per updated tensor.

    .. math::
        g_t &= \pm\nabla f(\theta_{t-1}) + \lambda\theta_{t-1} \quad
        (\text{or, decoupled: } \theta_{t-1} \leftarrow (1-\gamma\lambda)\theta_{t-1}) \\
        m_t &= \beta_1 m_{t-1} + (1-\beta_1)\,g_t, \qquad
        v_t = \beta_2 v_{t-1} + (1-\beta_2)\,g_t^2 \\
        \theta_t &= \theta_{t-1} - \frac{\gamma}{1-\beta_1^t}\,
        \frac{m_t}{\sqrt{v_t}\,(1-\beta_2^t)^{-1/2} + \epsilon}

    `scalars[i]` holds tensor i's scalars in the order of `_SCALARS`: the step size
    $\gamma/(1-\beta_1^t)$, $(1-\beta_2^t)^{-1/2}$, $\beta_1$, $1-\beta_1$, $\beta_2$,
    $1-\beta_2$, $\epsilon$, $\lambda$ and $1-\gamma\lambda$. Either a float64 tensor of shape
    (tensors, 9), so that compiled code takes new values without recompiling, or nested lists
    of Python floats (the naive way). `weight_decay` says whether $\lambda \ne 0$.

    Run eagerly, every operation is a pass over memory (`ADAM_PASSES["ours_fused_eager"]`);
    compiled, it is one loop per tensor that reads $\theta, g, m, v$ and writes $\theta, m, v$.
    Multiplying by $(1-\beta_2^t)^{-1/2}$ instead of dividing by its inverse saves one division
    per element, which a single CPU core notices.
    """
    for index, (param, grad, exp_avg, exp_avg_sq) in enumerate(
            zip(params, grads, exp_avgs, exp_avg_sqs, strict=True)):
        (step_size, inv_bias_correction2_sqrt, beta1, one_minus_beta1, beta2, one_minus_beta2,
         eps, decay, decay_factor) = _scalars_of(scalars, index, param)
        # g_t = -grad when maximizing, else grad
        g = -grad if maximize else grad
        if weight_decay and decoupled_weight_decay:
            # theta_{t-1} = (1 - lr * lambda) * theta_{t-1}
            param.mul_(decay_factor)
        elif weight_decay:
            # g_t = g_t + lambda * theta_{t-1}
            g = g + decay * param
        # m_t = beta1 * m_{t-1} + (1 - beta1) * g_t
        exp_avg.mul_(beta1).add_(one_minus_beta1 * g)
        # v_t = beta2 * v_{t-1} + (1 - beta2) * g_t^2
        exp_avg_sq.mul_(beta2).add_(one_minus_beta2 * g * g)
        # theta_t = theta_{t-1} - lr / (1 - beta1^t) * m_t / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)
        param.sub_(step_size * exp_avg / (exp_avg_sq.sqrt() * inv_bias_correction2_sqrt + eps))


class CompiledAdam(Optimizer):
    r"""Adam whose update, `adam_update_`, is compiled by `torch.compile` into one loop per tensor.

    Same arguments, defaults, state (`step`, `exp_avg`, `exp_avg_sq`) and param-group keys as
    `torch.optim.Adam`, and the same numbers: proved equal over 200 steps (`STEP_CHECKS`).

    .. math::
        \theta_t = \theta_{t-1} - \gamma\,\frac{m_t / (1-\beta_1^t)}
        {\sqrt{v_t / (1-\beta_2^t)} + \epsilon}

    Each step computes the scalars of every tensor on the host in float64, as torch does
    ($\gamma / (1-\beta_1^t)$, $1-\beta_2^t$, ...), and hands them to the compiled update as
    one tensor: a new learning rate (a scheduler) or a new step count changes its values, never
    the compiled code. `compilations` counts the compilations of this optimizer.

    Extra keywords: `backend` — the `torch.compile` backend ("inductor"; None runs the same
    update eagerly, without compiling); `python_floats=True` passes the scalars as Python floats
    instead, the naive way, to show what it costs (torch compiles again when they change).

    Note — what differs from `torch.optim.Adam`: `amsgrad=True` is refused (ValueError), and the
    switches `foreach`, `fused`, `capturable` and `differentiable` are not accepted (there is one
    implementation); complex or sparse gradients raise a TypeError. The update rounds
    differently: $m_t$ as $\beta_1 m + (1-\beta_1) g$ (the form of torch's fused kernel; the
    default step uses `lerp`), a multiplication by $(1-\beta_2^t)^{-1/2}$ instead of a
    division, and whatever fusing the compiler does. float64 results agree with torch's to
    ~1e-16; float32 ones to a few units in the last place (`FLOAT32_STEP_TOLERANCE`), about as
    closely as torch's own fused and default steps agree with each other. The scalars are
    rounded to the parameters' dtype, as torch's float32 and float64 kernels do (for float16
    and bfloat16 torch keeps them in float32). Each optimizer compiles its own copy of the update,
    so that torch's limit of 8 compiled versions per function
    (`torch._dynamo.config.recompile_limit`) counts this optimizer's versions only; hitting it
    raises an error instead of silently running uncompiled (`fullgraph=True`). float16
    parameters: eps = 1e-8 rounds to 0 in float16, so an element whose gradient and state are 0
    at a step gives 0 / 0 = NaN, as torch's `foreach=False` step does (torch's fused kernel
    computes in float32 and does not). A float32 tensor learning rate: torch then computes the
    step size (and $1 - \gamma\lambda$) in float32, we in float64, so float64 runs differ from
    torch's by ~1e-9. Under
    `ATEN_CPU_CAPABILITY`, inductor's graph cache is bypassed (`_inductor_for_this_cpu`).
    """

    def __init__(self, params, lr: float | Tensor = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False, backend: str | Callable | None = "inductor",
                 python_floats: bool = False):
        _check_learning_rate(lr)
        _check_at_least("epsilon value", "eps", eps, 0.0)
        _check_betas(betas)
        _check_at_least("weight_decay value", "weight_decay", weight_decay, 0.0)
        _refuse_amsgrad(amsgrad)
        if backend is not None and not (isinstance(backend, str) or callable(backend)):
            raise TypeError(f"expected backend to be a torch.compile backend name such as "
                            f"'inductor', a backend function or None, but got "
                            f"{type(backend).__name__}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults)
        self._build_update(backend, python_floats)

    def _build_update(self, backend, python_floats: bool) -> None:
        self.backend, self.python_floats = backend, bool(python_floats)
        self.compile_counter = None if backend is None else CompileCounter(
            _inductor_for_this_cpu() if backend == "inductor" else backend)
        update = _own_copy(adam_update_)
        self._update = update if backend is None else torch.compile(
            update, backend=self.compile_counter, fullgraph=True)

    @property
    def compilations(self) -> int:
        """How many times this optimizer's update was compiled (0 when it runs eagerly)."""
        return 0 if self.compile_counter is None else self.compile_counter.count

    def __getstate__(self):
        return {**super().__getstate__(), "backend": self.backend,
                "python_floats": self.python_floats}

    def __setstate__(self, state):
        backend, python_floats = state.pop("backend", "inductor"), state.pop("python_floats",
                                                                               False)
        super().__setstate__(state)
        self._build_update(backend, python_floats)

    def _tensors_of(self, group: dict) -> tuple[list[Tensor], ...]:
        """Parameters with a gradient, their gradients, state tensors and step counters."""
        params, grads, exp_avgs, exp_avg_sqs, steps = [], [], [], [], []
        for param in group["params"]:
            if param.grad is None:
                continue
            if param.grad.is_sparse or param.is_complex():
                raise TypeError(f"{type(self).__name__}: expected a dense real gradient, but got "
                                f"a {'sparse' if param.grad.is_sparse else 'complex'} one; use "
                                "torch.optim for sparse or complex parameters")
            state = self.state[param]
            if not state:
                state["step"] = _new_step()
                # m_0 = 0, v_0 = 0
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param,
                                                       memory_format=torch.preserve_format)
            params.append(param)
            grads.append(param.grad)
            exp_avgs.append(state["exp_avg"])
            exp_avg_sqs.append(state["exp_avg_sq"])
            steps.append(state["step"])
        return params, grads, exp_avgs, exp_avg_sqs, steps

    def _scalars(self, group: dict, steps: list[Tensor], device: torch.device):
        r"""Every tensor's scalars (`_SCALARS`), computed in float64 as torch computes them."""
        lr, eps, weight_decay = (float(group[key]) for key in ("lr", "eps", "weight_decay"))
        beta1, beta2 = (float(beta) for beta in group["betas"])
        rows = []
        for step in steps:
            t = step.item()
            # 1 - beta1^t and 1 - beta2^t: the bias corrections
            bias_correction1 = 1 - beta1**t
            bias_correction2 = 1 - beta2**t
            rows.append([lr / bias_correction1, 1 / bias_correction2**0.5, beta1, 1 - beta1,
                         beta2, 1 - beta2, eps, weight_decay, 1 - lr * weight_decay])
        if self.python_floats:
            return rows
        dtype = torch.float64 if supports_dtype(device, torch.float64) else torch.float32
        return torch.tensor(rows, dtype=dtype).to(device)

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        """Perform one optimization step; `closure` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            _refuse_amsgrad(group["amsgrad"])
            params, grads, exp_avgs, exp_avg_sqs, steps = self._tensors_of(group)
            if not params:
                continue
            for step in steps:
                # t = t + 1
                step += 1
            scalars = self._scalars(group, steps, params[0].device)
            self._update(params, grads, exp_avgs, exp_avg_sqs, scalars,
                         maximize=bool(group["maximize"]),
                         weight_decay=group["weight_decay"] != 0,
                         decoupled_weight_decay=bool(group["decoupled_weight_decay"]))
        return loss


def _inductor_for_this_cpu() -> str | Callable:
    """Inductor; without its on-disk graph cache when `ATEN_CPU_CAPABILITY` is set.

    torch 2.13's cache does not include that variable in its keys: C++ generated for AVX2 and
    reused under `ATEN_CPU_CAPABILITY=default` fails to compile, and scalar code generated under
    `default` would make later runs silently slower. Bypassing the cache keeps both apart.
    """
    if not os.environ.get("ATEN_CPU_CAPABILITY"):
        return "inductor"
    from torch._inductor.compile_fx import compile_fx

    return partial(compile_fx, config_patches={"fx_graph_cache": False})


def _refuse_amsgrad(amsgrad) -> None:
    if amsgrad:
        raise ValueError(f"CompiledAdam does not implement AMSGrad (expected amsgrad=False, but "
                         f"got {amsgrad!r}); use torch.optim.Adam or helpers.optim.Adam")


# --------------------------------------------------------------------------------------------
# The cost of compiling: cold (empty cache) and warm
# --------------------------------------------------------------------------------------------

_COMPILE_SCRIPT = """
import json, sys, time
import torch
start = time.perf_counter()
import torch._inductor.compile_fx  # the compiler's own import, timed apart
import_s = time.perf_counter() - start
from {module} import CompiledAdam, _split
numel, tensors, dtype = {numel}, {tensors}, getattr(torch, {dtype!r})
params = [torch.randn(n, dtype=dtype, requires_grad=True) for n in _split(numel, tensors)]
for p in params:
    p.grad = torch.randn_like(p)
optimizer = CompiledAdam(params, lr=1e-3)
start = time.perf_counter(); optimizer.step(); first = time.perf_counter() - start
times = []
for _ in range(5):
    start = time.perf_counter(); optimizer.step(); times.append(time.perf_counter() - start)
print(json.dumps(dict(import_s=import_s, first_step_s=first, step_s=min(times),
                      compilations=optimizer.compilations)))
"""


def compile_seconds(numel: int = 10_000, tensors: int = 2,
                    dtype: torch.dtype | str = torch.float32, *,
                    cache_dir: str | os.PathLike | None = None,
                    timeout: float = 300.0) -> dict[str, float]:
    r"""The one-off cost of compiling `CompiledAdam`'s update, measured in a fresh Python process.

    Returns `import_s` (importing the compiler, paid once per process), `first_step_s` (the
    first step: tracing, code generation, C++ compilation or the cache), `step_s` (a later
    step), `compile_s` = first - later, and `compilations`.
    `cache_dir` is the compiler's cache (`TORCHINDUCTOR_CACHE_DIR`): a new empty directory
    (the default) measures a cold compile; the same directory a second time measures a warm one.
    A new process, because the compiler also caches in memory.
    """
    dtype = as_dtype(dtype)
    _split(numel, tensors)  # a clear error for impossible sizes
    cache_dir = tempfile.mkdtemp(prefix="inductor_cold_") if cache_dir is None else cache_dir
    top_package = sys.modules[__name__.partition(".")[0]]
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(top_package.__file__)))
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": os.fspath(cache_dir),
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root,
                                                       os.environ.get("PYTHONPATH")]))}
    script = _COMPILE_SCRIPT.format(module=__name__, numel=numel, tensors=tensors,
                                    dtype=dtype_name(dtype))
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the compile-time measurement failed:\n{result.stderr[-2000:]}")
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    measured["compile_s"] = measured["first_step_s"] - measured["step_s"]
    return measured


# --------------------------------------------------------------------------------------------
# Profiling a training step
# --------------------------------------------------------------------------------------------

TRAINING_STEP_PARTS = ("forward", "backward", "optimizer")
_LABEL = "training step: {}"


@contextlib.contextmanager
def _quiet_file_descriptor(fd: int = 2):
    """Send what C++ code writes to `fd` to /dev/null for a moment (the profiler's start and stop
    lines, stamped with the time, which would make stored notebook outputs differ run to run)."""
    with contextlib.suppress(AttributeError, ValueError):
        sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def _training_step(model, loss_fn, optimizer, inputs, targets) -> None:
    """One step, each part under its own profiler label; GPU work waited for inside its part."""
    with torch.profiler.record_function(_LABEL.format("forward")):
        loss = loss_fn(model(inputs), targets)
        _synchronize()
    with torch.profiler.record_function(_LABEL.format("backward")):
        loss.backward()
        _synchronize()
    with torch.profiler.record_function(_LABEL.format("optimizer")):
        optimizer.step()
        optimizer.zero_grad()
        _synchronize()


def profile_training_step(model: torch.nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
                          optimizer: Optimizer, inputs: Tensor, targets: Tensor, *,
                          steps: int = 3, warmup: int = 1) -> dict[str, dict[str, float]]:
    r"""How one training step splits into forward, backward and optimizer, with `torch.profiler`.

    Runs `warmup` steps, then `steps` profiled ones, each part inside
    `record_function("training step: forward")` (and backward, optimizer); the optimizer part
    includes `zero_grad`. Returns, per part, `ms` (mean milliseconds per step, the wall time of
    its labelled range on the host, which waits for the GPU) and `fraction`
    ($t_{\text{part}} / \sum t$).

    The labelled ranges are found by their exact name among the host (CPU) events, so the GPU
    copies of the annotations and torch's own "Optimizer.step#..." events do not count twice.
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"expected steps >= 1, but got {steps!r}")
    if not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"expected warmup >= 0, but got {warmup!r}")
    step = partial(_training_step, model, loss_fn, optimizer, inputs, targets)
    for _ in range(warmup):
        step()
    activities = [torch.profiler.ProfilerActivity.CPU]
    profiler = torch.profiler.profile(activities=activities)
    with _quiet_file_descriptor():
        profiler.start()
    try:
        for _ in range(steps):
            step()
    finally:
        with _quiet_file_descriptor():
            profiler.stop()
    totals = dict.fromkeys(TRAINING_STEP_PARTS, 0.0)
    found = dict.fromkeys(TRAINING_STEP_PARTS, 0)
    labels = {_LABEL.format(section): section for section in TRAINING_STEP_PARTS}
    for event in profiler.events():
        section = labels.get(event.name)
        if section is not None and event.device_type == torch.autograd.DeviceType.CPU:
            totals[section] += event.time_range.elapsed_us() / 1000
            found[section] += 1
    missing = [s for s in TRAINING_STEP_PARTS if found[s] != steps]
    if missing:
        raise RuntimeError(f"expected {steps} profiler ranges for each of "
                           f"{TRAINING_STEP_PARTS}, but found {found}; this torch version "
                           "names its events differently")
    total = sum(totals.values())
    return {section: {"ms": totals[section] / steps, "fraction": totals[section] / total}
            for section in TRAINING_STEP_PARTS}


# --------------------------------------------------------------------------------------------
# Verification: CompiledAdam against torch.optim.Adam, 200 steps, params and state every step
# --------------------------------------------------------------------------------------------

FLOAT32_STEP_TOLERANCE = Tolerance(rtol=1.3e-6, atol=1e-6)
"""float32 tolerance of the 200-step comparison: torch.testing's rtol, an atol ten times
tighter than its default. The compiled update rounds in another order than torch's default step
(see `CompiledAdam`), one or two units in the last place per step (2^-24 ≈ 6e-8 relative). After
200 steps the largest difference measured is 2.4e-7 on parameters of size ~1, a fifth of what
this tolerance allows; torch's own `fused=True` and default steps differ by 6e-8 on the same
runs. A real mistake is caught with a wide margin: `eps` inside the square root moves the
parameters by ~1e-5, a missing bias correction by ~1e-2."""

STEP_CHECKED_OPTIONS: tuple[dict, ...] = (
    dict(lr=0.01),
    dict(lr=0.01, betas=(0.8, 0.9), eps=1e-3, weight_decay=0.1, maximize=True),
    dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
)
"""The option sets proved equal to torch's: every supported option at least once."""


def compiled_adam_check(options: dict, steps: int = 200) -> Check:
    """A `Check`: `CompiledAdam` and `torch.optim.Adam`, `steps` steps, params and state."""
    return Check(options_label("CompiledAdam", options),
                 partial(check_optimizer, CompiledAdam, steps=steps, **options),
                 partial(check_optimizer, torch.optim.Adam, steps=steps, **options),
                 softmax_regression_problem, dtypes=(torch.float64, torch.float32),
                 tolerances={torch.float32: FLOAT32_STEP_TOLERANCE})


def _scheduled_trajectory(optimizer_class: type[Optimizer], *, weight, bias, features, labels,
                          steps: int = 200) -> dict:
    """`check_optimizer` with the learning rate decayed by 2 % every step (ExponentialLR)."""
    return optimizer_trajectory(lambda params: optimizer_class(params, lr=0.01),
                                [weight, bias], partial(_minibatch_loss, features, labels, 1.0),
                                steps, partial(torch.optim.lr_scheduler.ExponentialLR,
                                               gamma=0.98))


STEP_CHECKS: tuple[Check, ...] = (
    *(compiled_adam_check(options) for options in STEP_CHECKED_OPTIONS),
    Check("CompiledAdam(lr=0.01) + ExponentialLR(gamma=0.98)",
          partial(_scheduled_trajectory, CompiledAdam),
          partial(_scheduled_trajectory, torch.optim.Adam), softmax_regression_problem,
          dtypes=(torch.float64, torch.float32),
          tolerances={torch.float32: FLOAT32_STEP_TOLERANCE}),
)
"""CompiledAdam equals torch.optim.Adam: 200 steps, every step's parameters and state."""

register(*STEP_CHECKS)

