r"""Data-parallel training past one machine: W processes, one replica each, gradients averaged.

Every process (a *rank* $r = 0, \dots, W-1$, $W$ the *world size*) holds a full copy of the model
and sees its own shard $B_r$ of each global batch $B = B_0 \cup \dots \cup B_{W-1}$. Two
collective operations keep the $W$ replicas one model:

* at the start, **broadcast** rank 0's parameters (and buffers) to every rank,
  $\theta^{(r)} \leftarrow \theta^{(0)}$ — `DistributedDataParallel` does it in its constructor;
* after every backward pass, **all-reduce** the gradients and divide by $W$:

  .. math::
      g = \frac{1}{W} \sum_{r=0}^{W-1} g_r, \qquad g_r = \nabla_\theta L_r, \quad
      L_r = \frac{1}{b} \sum_{i \in B_r} \ell_i(\theta).

  With the same local batch size $b$ on every rank ($N = Wb$ samples in the global batch),
  $g = \frac{1}{Wb}\sum_r \sum_{i\in B_r} \nabla\ell_i = \nabla \frac{1}{N}\sum_{i\in B} \ell_i$:
  the gradient of the mean loss over the global batch. Every rank then takes the same optimizer
  step from the same parameters with the same gradient, so the replicas stay identical, and the
  whole run equals one process training on the global batch — up to rounding, because the sums
  are grouped differently. `average_gradients` is this from scratch (`torch.distributed`'s
  `all_reduce`), and `data_parallel_runs` proves it equal to `DistributedDataParallel` after
  every step, bit for bit with $W = 2$.

Consequences a learner must know:

* **Effective batch size** = per-device batch $\times$ $W$ $\times$ gradient-accumulation steps
  (`effective_batch_size`); going from 1 to $W$ devices at a fixed per-device batch multiplies it
  by $W$. The **linear scaling rule** (Goyal et al. 2017) then multiplies the learning rate by
  the same factor, with a warm-up (`linear_scaled_lr`).
* DDP already averages. Dividing once more by $W$ (the loss, or the gradients) makes every
  gradient $W$ times too small, and SGD's steps with it; multiplying the loss by $W$
  (neuralmagic/sparseml#135) makes it $W$ times too large, the gradient of $\sum_r L_r$.
  Running the tutorial's `average_gradients` on top of DDP (kubeflow/pytorch-operator#122)
  all-reduces gradients that are already equal: $\frac1W \sum_r \bar g = \bar g$, the same
  numbers for twice the communication.
* Adam hides a constant gradient scale: $\hat m / \sqrt{\hat v}$ does not change when every
  gradient is multiplied by $c$ (up to $\epsilon$), so the wrong scale shows with SGD.

The launcher `launch(fn, args, world_size)` runs `fn(rank, *args)` in `world_size` fresh
processes joined by the gloo backend over the loopback interface, from a notebook, a script or
pytest, offline, and returns what every rank returned.
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
import multiprocessing
import numbers
import os
import pickle
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as torch_mp
import torch.nn.functional as F
from torch import Tensor, nn
from torch.multiprocessing import ProcessRaisedException
from torch.nn.parallel import DistributedDataParallel

from helpers.data import linear_classification
from helpers.efficiency.memory import _check_int
from helpers.verify import EXACT, Check, as_dtype, dtype_name, register

__all__ = ["average_gradients", "broadcast_parameters", "loopback_interface", "launch",
           "effective_batch_size", "linear_scaled_lr", "Variant", "data_parallel_variants",
           "DEFAULT_OPTIMIZERS", "SINGLE_PROCESS", "data_parallel_runs", "differences_per_step",
           "replica_spread", "first_update_ratio", "DATA_PARALLEL_CHECKS"]


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_positive(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"expected {name} to be a number, but got {type(value).__name__} "
                        f"{value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"expected a finite {name} > 0, but got {value!r}")
    return float(value)


def _check_importable(fn, name: str) -> None:
    """New processes import `fn` by its module and name: it must live at a module's top."""
    if not callable(fn):
        raise TypeError(f"expected {name} to be a function, but got {type(fn).__name__}")
    if isinstance(fn, functools.partial):
        return _check_importable(fn.func, name)
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", "")
    if module in (None, "__main__", "__mp_main__") or "<" in qualname:
        raise TypeError(
            f"expected {name} to be defined at the top level of an importable module (each "
            f"new process imports it by name), but got {qualname or fn!r} from "
            f"{module or 'nowhere'}; move it into a .py file next to the notebook and import it")


def _check_process_group(group) -> int:
    """The world size of `group`, once a process group exists."""
    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError("expected an initialized process group (run inside `launch(...)` or "
                           "after torch.distributed.init_process_group), but got none")
    return dist.get_world_size(group)


# --------------------------------------------------------------------------------------------
# From scratch: the two collectives of data-parallel training
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def broadcast_parameters(module: nn.Module, src: int = 0, group=None) -> None:
    r"""Copy rank `src`'s parameters and buffers into `module` on every rank, in place.

    .. math::
        \theta^{(r)} \leftarrow \theta^{(\mathrm{src})} \quad \text{for every rank } r

    What `DistributedDataParallel(module)` does when it is built, so that replicas initialized
    with different random draws start from one model. Call it on every rank (it is a collective).

    Note: DDP packs the tensors into buckets of 250 MiB and broadcasts each bucket; we broadcast
    one tensor at a time. The values are the same.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, but got {type(module).__name__}")
    _check_process_group(group)
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        # theta^(r) = theta^(src)
        dist.broadcast(tensor, src=src, group=group)


def _parameters(parameters) -> list[Tensor]:
    if isinstance(parameters, nn.Module):
        raise TypeError("expected tensors (model.parameters()), but got the module "
                        f"{type(parameters).__name__} itself")
    parameters = [parameters] if isinstance(parameters, Tensor) else list(parameters)
    if not all(isinstance(p, Tensor) for p in parameters):
        raise TypeError(f"expected tensors (e.g. model.parameters()), but got "
                        f"{sorted({type(p).__name__ for p in parameters})}")
    return parameters


@torch.no_grad()
def average_gradients(parameters: Tensor | Iterable[Tensor], group=None) -> None:
    r"""Replace every rank's gradients by their mean over the ranks, in place.

    .. math::
        g \leftarrow \frac{1}{W} \sum_{r=0}^{W-1} g_r

    Why the mean: with local losses $L_r = \frac{1}{n_r}\sum_{i \in B_r} \ell_i$ (the default
    `reduction="mean"`) and $N = \sum_r n_r$,

    .. math::
        \frac{1}{W}\sum_r \nabla L_r = \sum_r \sum_{i\in B_r} \frac{1}{W n_r} \nabla\ell_i
        \;\overset{n_r = N/W}{=}\; \frac{1}{N}\sum_{i \in B} \nabla\ell_i
        = \nabla\, \frac{1}{N}\sum_{i\in B} \ell_i ,

    the gradient of the mean loss over the global batch — when every rank has the same local
    batch size. With unequal local batches a sample on rank $r$ weighs $\frac{1}{W n_r}$ instead
    of $\frac1N$: samples on small shards count more. DDP does the same (and
    `DistributedSampler` pads the data with repeated samples, so that every rank gets as many as
    the others). The exact global mean then needs local sums divided by the global count,
    $L_r = \frac1N\sum_{i\in B_r}\ell_i$ (one all-reduce of the $n_r$), whose gradients are
    summed, not averaged — under DDP, which divides by $W$, that is the loss $W L_r$.

    Call it on every rank after `backward()` and before `optimizer.step()`. Parameters that do
    not require grad are skipped; one that requires grad but has none raises (DDP, by default,
    raises at the next forward), because a rank that skipped it would leave the others waiting
    in the all-reduce.

    Note: DDP multiplies each local gradient by $1/W$ while copying it into a bucket and then sums
    the buckets, $\sum_r \frac{g_r}{W}$, overlapping the communication with the backward pass; we
    sum each gradient after backward, then divide, $\frac1W\sum_r g_r$. Multiplying by a power of
    two is exact in floating point, and $g_0 + g_1$ has one order only, so with $W = 2$ the two
    give the same bits. With $W = 3$ ($\frac13$ is rounded) or $W = 4$ (gloo adds the ranks'
    values in an order that depends on where an element lies in the buffer, and DDP's bucket is
    not our tensor) they may differ in the last bit.
    """
    world_size = _check_process_group(group)
    for index, param in enumerate(_parameters(parameters)):
        if not param.requires_grad:
            continue
        if param.grad is None:
            raise ValueError(f"expected a gradient for every parameter that requires grad "
                             f"(call backward() first), but got None for parameter {index} of "
                             f"shape {tuple(param.shape)}")
        # sum_r g_r, the same on every rank
        dist.all_reduce(param.grad, op=dist.ReduceOp.SUM, group=group)
        # g = (1 / W) * sum_r g_r
        param.grad.div_(world_size)


# --------------------------------------------------------------------------------------------
# The launcher: W processes on this machine, joined by gloo over the loopback interface
# --------------------------------------------------------------------------------------------


def loopback_interface() -> str | None:
    """The name of the loopback network interface: "lo" on Linux, "lo0" on macOS and the BSDs;
    None where the system lists neither (Windows), and gloo then finds its own address."""
    try:
        names = {name for _, name in socket.if_nameindex()}
    except (AttributeError, OSError):
        return None
    return next((name for name in ("lo", "lo0") if name in names), None)


def _run_rank(rank: int, fn: Callable, args: tuple, world_size: int, run_dir: str,
              timeout: float) -> None:
    """What every new process runs: join the group, run `fn`, leave its result in a file."""
    torch.set_num_threads(1)  # W processes share the cores; one thread each does not oversubscribe
    interface = loopback_interface()
    if interface is not None:  # bind gloo to loopback: no hostname lookup, no network needed
        os.environ["GLOO_SOCKET_IFNAME"] = interface
    store = dist.FileStore(os.path.join(run_dir, "store"), world_size)
    try:
        dist.init_process_group("gloo", store=store, rank=rank, world_size=world_size,
                                timeout=timedelta(seconds=timeout))
    except RuntimeError as error:
        raise RuntimeError(f"expected rank {rank} to join the gloo process group over the "
                           f"loopback interface {interface!r} (is it up?), but got: {error}"
                           ) from error
    result = fn(rank, *args)
    # only after success: a failed rank keeps its group until its error is on disk, so that its
    # peers, which fail once it is gone, fail later and it is the one reported
    dist.destroy_process_group()
    with open(os.path.join(run_dir, f"result{rank}.pickle"), "wb") as file:
        pickle.dump(result, file)


def _first_failure(context, seen: ProcessRaisedException) -> ProcessRaisedException:
    """The error of the rank that failed first (the others may only have lost their peer)."""
    written = [(os.stat(path).st_mtime_ns, rank, path)
               for rank, path in enumerate(context.error_files) if os.path.exists(path)]
    if not written:
        return seen
    _, rank, path = min(written)
    if rank == seen.error_index:
        return seen
    with open(path, "rb") as file:
        trace = pickle.load(file)
    return ProcessRaisedException(f"\n\n-- Process {rank} terminated with the following "
                                  f"error:\n{trace}", rank, context.processes[rank].pid)


def _join(context, timeout: float) -> None:
    """Wait for every process; raise the first failure with its traceback, or a TimeoutError."""
    deadline = time.monotonic() + timeout
    spawn_log = logging.getLogger("torch.multiprocessing.spawn")
    level = spawn_log.level
    spawn_log.setLevel(logging.ERROR)  # "Terminating process ..." would print into the notebook
    try:
        # join() stops the other processes when one fails and raises its exception (torch's
        # ProcessRaisedException, the child's traceback in its message)
        while not context.join(timeout=max(deadline - time.monotonic(), 0.0), grace_period=1.0):
            if time.monotonic() >= deadline:
                running = [rank for rank, p in enumerate(context.processes) if p.is_alive()]
                raise TimeoutError(f"expected the {len(context.processes)} processes to "
                                   f"finish within timeout={timeout:g} s, but ranks {running} "
                                   "were still running; they were stopped")
    except ProcessRaisedException as seen:
        raise _first_failure(context, seen) from None
    finally:
        spawn_log.setLevel(level)


def _stop(context) -> None:
    """Kill what still runs (a timeout, an interrupted notebook cell) and remove error files."""
    for process in context.processes:
        if process.is_alive():
            process.kill()
        process.join()
    for path in context.error_files:
        if os.path.exists(path):
            os.remove(path)


_PRELOAD = ("torch", "torch._dynamo", "torch.distributed")
"""What the fork server imports once, so that every later process starts with it imported:
torch, and `torch._dynamo`, which `DistributedDataParallel` imports when it is built (1-3 s)."""


def _start_method() -> str:
    """A fork server on Linux; spawn elsewhere (macOS warns against forking a process that may
    have loaded system frameworks, and Windows cannot fork)."""
    if not sys.platform.startswith("linux"):
        return "spawn"
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(_PRELOAD))
    return "forkserver"


def launch(fn: Callable, args: tuple = (), world_size: int = 2, *,
           timeout: float = 60.0) -> list:
    r"""Run `fn(rank, *args)` in `world_size` new processes that form one gloo process group;
    return `[result of rank 0, result of rank 1, ...]`.

    Inside `fn`, `torch.distributed` is ready: `dist.get_rank()`, `dist.all_reduce(...)`,
    `DistributedDataParallel(model)`. Each process runs with `torch.set_num_threads(1)`.

    * **Start**: clean processes, never forks of the caller (a notebook kernel holds threads and
      state that a fork would copy half-way). On Linux they are forked from a *fork server*, a
      clean process started by the first launch that imports torch once: the first launch takes
      a few seconds, later ones a fraction of a second. Elsewhere each is *spawned* (a new
      interpreter, as `torch.multiprocessing.spawn` does). Either way the new process imports
      `fn` by name, so `fn` must be defined at the top level of an importable module (not in a
      notebook cell); `args` and the results must be picklable; and a script that calls
      `launch` must call it under `if __name__ == "__main__":`.
    * **Rendezvous**: a `FileStore` in a fresh temporary folder, so no port is chosen and two
      launches at once (parallel test workers) cannot collide; gloo then connects the ranks over
      the loopback interface (`GLOO_SOCKET_IFNAME` set to `loopback_interface()`: "lo" on Linux,
      "lo0" on macOS), so no network and no hostname lookup is needed.
    * **Results** come back through pickle files in that folder, which is removed afterwards.
    * **Errors**: if a rank raises, the others are stopped and torch's `ProcessRaisedException`
      is raised here, its message ending with that rank's own traceback; when several failed
      (a rank waiting in a collective fails once its peer is gone), the first one is reported.
    * **Never hangs**: after `timeout` seconds every process is killed and `TimeoutError` is
      raised; collectives inside also give up after `timeout`.

    Note: like `torch.multiprocessing.spawn(fn, args, nprocs)`, `fn` receives the rank first;
    unlike it, the process group is created for you, the results are returned, and on Linux the
    processes come from a fork server (which keeps the environment variables of the moment it
    started). What a rank prints reaches the caller's output (a notebook captures it too), in
    an order that changes from run to run: return what you want to show.
    """
    _check_importable(fn, "fn")
    if not isinstance(args, tuple):
        raise TypeError(f"expected args to be a tuple, but got {type(args).__name__}")
    world_size = _check_int("world_size", world_size, 1)
    timeout = _check_positive("timeout", timeout)
    with tempfile.TemporaryDirectory(prefix="data-parallel-", ignore_cleanup_errors=True) as run:
        context = torch_mp.start_processes(_run_rank, (fn, args, world_size, run, timeout),
                                           nprocs=world_size, join=False,
                                           start_method=_start_method())
        try:
            _join(context, timeout)
        finally:
            _stop(context)
        results = []
        for rank in range(world_size):
            with open(os.path.join(run, f"result{rank}.pickle"), "rb") as file:
                results.append(pickle.load(file))
        return results


# --------------------------------------------------------------------------------------------
# Batch size and learning rate across devices
# --------------------------------------------------------------------------------------------


def effective_batch_size(per_device_batch_size: int, world_size: int = 1,
                         accumulation_steps: int = 1) -> int:
    r"""The number of samples behind one optimizer step.

    .. math::
        B_{\mathrm{eff}} = b \times W \times A

    $b$ samples per device and backward pass, $W$ devices whose gradients are averaged, $A$
    backward passes accumulated before each step.
    """
    per_device_batch_size = _check_int("per_device_batch_size", per_device_batch_size, 1)
    world_size = _check_int("world_size", world_size, 1)
    accumulation_steps = _check_int("accumulation_steps", accumulation_steps, 1)
    # B_eff = b * W * A
    return per_device_batch_size * world_size * accumulation_steps


def linear_scaled_lr(base_lr: float, batch_size: int, base_batch_size: int) -> float:
    r"""The linear scaling rule (Goyal et al. 2017): multiply the batch by $k$, multiply the
    learning rate by $k$.

    .. math::
        \gamma = \gamma_0 \, \frac{B}{B_0}

    $\gamma_0$ is a learning rate known to work at batch size $B_0$ (Goyal et al.: 0.1 for 256
    ImageNet images with SGD and momentum). Why: $k$ SGD steps of size $\gamma_0$ on $k$ small
    batches move about as far as one step of size $k\gamma_0$ on their union, as long as the
    gradient changes little over those steps. It breaks down early in training (they warm the
    learning rate up over 5 epochs) and for very large batches (8k images was their limit);
    for Adam a square-root rule, $\gamma_0\sqrt{B/B_0}$, is often used instead.
    """
    base_lr = _check_positive("base_lr", base_lr)
    batch_size = _check_int("batch_size", batch_size, 1)
    base_batch_size = _check_int("base_batch_size", base_batch_size, 1)
    # lr = lr_0 * B / B_0
    return base_lr * batch_size / base_batch_size


# --------------------------------------------------------------------------------------------
# The proof: from scratch, DistributedDataParallel and one process, after every step
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """How a replica trains on its shard: wrapped in `DistributedDataParallel` or not, its loss
    multiplied by `loss_scale`, and `after_backward(model.parameters())` called between
    `backward()` and `optimizer.step()` (a top-level function, such as `average_gradients`).

    A replica that is not wrapped in DDP starts with `broadcast_parameters`."""

    ddp: bool = False
    loss_scale: float = 1.0
    after_backward: Callable[[Iterable[Tensor]], None] | None = None

    def __post_init__(self):
        if not isinstance(self.ddp, bool):
            raise TypeError(f"expected ddp to be a bool, but got {type(self.ddp).__name__}")
        _check_positive("loss_scale", self.loss_scale)
        if self.after_backward is not None:
            _check_importable(self.after_backward, "after_backward")


SINGLE_PROCESS = "single process"


def data_parallel_variants(world_size: int = 2) -> dict[str, Variant]:
    """The right way twice, no synchronization, and three misconceptions, by name.

    * "from scratch": `broadcast_parameters`, then `average_gradients` after every backward;
    * "DDP": `DistributedDataParallel`, nothing else;
    * "no gradient sync": broadcast once, then each rank trains on its own shard only;
    * "DDP + average_gradients": the tutorial's averaging on top of DDP
      (kubeflow/pytorch-operator#122);
    * "DDP, loss / W": averaging once more by hand; gradients W times too small;
    * "DDP, loss x W": neuralmagic/sparseml#135; gradients W times too large.

    With SGD the steps are W times too small or large; Adam barely notices.
    """
    world_size = _check_int("world_size", world_size, 1)
    return {
        "from scratch": Variant(after_backward=average_gradients),
        "DDP": Variant(ddp=True),
        "no gradient sync": Variant(),
        "DDP + average_gradients": Variant(ddp=True, after_backward=average_gradients),
        "DDP, loss / W": Variant(ddp=True, loss_scale=1 / world_size),
        "DDP, loss x W": Variant(ddp=True, loss_scale=float(world_size)),
    }


DEFAULT_OPTIMIZERS: dict[str, tuple[type[torch.optim.Optimizer], dict]] = {
    "SGD": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    "Adam": (torch.optim.Adam, {"lr": 0.01}),
}


def _mlp(dtype: torch.dtype, seed: int) -> nn.Module:
    """4 inputs -> 8 tanh units -> 3 logits, drawn by torch's default initialization."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def _flat(module: nn.Module) -> Tensor:
    """Every parameter of `module`, in order, as one vector (a copy)."""
    return torch.cat([p.detach().flatten() for p in module.parameters()]).clone()


def _problem(samples: int, dtype: torch.dtype, seed: int) -> tuple[Tensor, Tensor]:
    """The same data on every rank: a 4-feature, 3-class linear problem."""
    X, y = linear_classification(samples, 4, 3, generator=torch.Generator().manual_seed(seed))
    return X.to(dtype), y


def _replica(variant: Variant, dtype: torch.dtype, seed: int, rank: int) -> nn.Module:
    """Rank `rank`'s own random initial model, made rank 0's by DDP or by `broadcast_parameters`."""
    model = _mlp(dtype, seed + rank)
    if variant.ddp:
        return DistributedDataParallel(model)  # broadcasts rank 0's parameters and buffers
    broadcast_parameters(model)
    return model


def _train(model: nn.Module, variant: Variant, X: Tensor, y: Tensor, shard: slice, *,
           optimizer: tuple, steps: int) -> dict[str, Tensor]:
    """Train `model` for `steps` steps on `shard` of each global batch (rows `t*B .. (t+1)*B`).

    Returns the parameters before the first step and after each one, `(steps + 1, P)`, and the
    mean loss over all of X at those points, `(steps + 1,)`.
    """
    inner = model.module if isinstance(model, DistributedDataParallel) else model
    optimizer_class, options = optimizer
    opt = optimizer_class(model.parameters(), **options)
    batch_size = len(X) // steps
    params, losses = [_flat(inner)], [_mean_loss(inner, X, y)]
    for t in range(steps):
        x, target = X[t * batch_size:(t + 1) * batch_size], y[t * batch_size:(t + 1) * batch_size]
        opt.zero_grad()
        loss = F.cross_entropy(model(x[shard]), target[shard])
        if variant.loss_scale != 1.0:
            loss = loss * variant.loss_scale
        loss.backward()
        if variant.after_backward is not None:
            variant.after_backward(model.parameters())
        opt.step()
        params.append(_flat(inner))
        losses.append(_mean_loss(inner, X, y))
    return {"params": torch.stack(params), "loss": torch.stack(losses)}


@torch.no_grad()
def _mean_loss(module: nn.Module, X: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(module(X), y)


def _flat_grad(module: nn.Module) -> Tensor:
    return torch.cat([p.grad.flatten() for p in module.parameters()]).clone()


def _unequal_shards(rank: int, world_size: int, dtype: torch.dtype, seed: int) -> dict:
    r"""One backward pass with $n_r = 2(r + 1)$ samples on rank $r$: the global mean gradient,
    DDP's mean of the local means, and DDP with local sums divided by $N$, times $W$."""
    sizes = [2 * (r + 1) for r in range(world_size)]
    start, total = sum(sizes[:rank]), sum(sizes)
    X, y = _problem(total, dtype, seed + 1)
    x, target = X[start:start + sizes[rank]], y[start:start + sizes[rank]]
    model = _mlp(dtype, seed)
    F.cross_entropy(model(X), y).backward()
    out = {"global mean": _flat_grad(model)}
    ddp = DistributedDataParallel(_mlp(dtype, seed))
    F.cross_entropy(ddp(x), target).backward()
    out["DDP, local means"] = _flat_grad(ddp.module)
    ddp.zero_grad()
    # L_r = (1 / N) * sum_{i in B_r} l_i, times W against DDP's division by W
    (F.cross_entropy(ddp(x), target, reduction="sum") / total * world_size).backward()
    out["DDP, local sums / N x W"] = _flat_grad(ddp.module)
    return out


def _data_parallel_worker(rank: int, variants: dict, optimizers: dict, dtypes: tuple,
                          steps: int, global_batch_size: int, seed: int) -> dict:
    """What one rank computes for `data_parallel_runs`."""
    world_size = dist.get_world_size()
    local = global_batch_size // world_size
    shard = slice(rank * local, (rank + 1) * local)
    out = {"initial": {}, "runs": {}, "unequal": {}}
    for dtype in dtypes:
        name = dtype_name(dtype)
        X, y = _problem(steps * global_batch_size, dtype, seed)
        out["initial"][name] = _flat(_mlp(dtype, seed + rank))
        out["unequal"][name] = _unequal_shards(rank, world_size, dtype, seed)
        for optimizer_name, optimizer in optimizers.items():
            train = dict(optimizer=optimizer, steps=steps)
            # one process, the whole global batch, from rank 0's draw (where replicas start)
            runs = {SINGLE_PROCESS: _train(_mlp(dtype, seed), Variant(), X, y, slice(None),
                                           **train)}
            for variant_name, variant in variants.items():
                model = _replica(variant, dtype, seed, rank)
                runs[variant_name] = _train(model, variant, X, y, shard, **train)
            out["runs"][optimizer_name, name] = runs
    return out


def _check_optimizers(optimizers) -> dict:
    if not isinstance(optimizers, Mapping) or not optimizers:
        raise TypeError(f"expected a non-empty mapping name -> (optimizer class, options), but "
                        f"got {optimizers!r}")
    for name, value in optimizers.items():
        if not (isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], Mapping)
                and isinstance(value[0], type) and issubclass(value[0], torch.optim.Optimizer)):
            raise TypeError(f"expected optimizers[{name!r}] to be (an Optimizer class, a dict of "
                            f"options), but got {value!r}")
    return dict(optimizers)


def _check_variants(variants) -> dict:
    if not isinstance(variants, Mapping) or not variants:
        raise TypeError(f"expected a non-empty mapping name -> Variant, but got {variants!r}")
    for name, variant in variants.items():
        if not isinstance(variant, Variant):
            raise TypeError(f"expected variants[{name!r}] to be a Variant, but got "
                            f"{type(variant).__name__}")
    if SINGLE_PROCESS in variants:
        raise ValueError(f"expected variant names other than {SINGLE_PROCESS!r} (the reference "
                         f"run has that name), but got {sorted(variants)}")
    return dict(variants)


def data_parallel_runs(variants: Mapping[str, Variant] | None = None, *, world_size: int = 2,
                       optimizers: Mapping[str, tuple] | None = None,
                       dtypes: tuple = (torch.float64, torch.float32), steps: int = 8,
                       global_batch_size: int = 16, seed: int = 0,
                       timeout: float = 60.0) -> dict:
    r"""Train a seeded MLP (4 -> 8 tanh -> 3, cross-entropy) with each variant in `world_size`
    processes, and once in one process on the whole global batch; record every step.

    Every rank draws its own initial model (seed + rank); DDP or `broadcast_parameters` makes it
    rank 0's. Global batch $t$ ($B$ = `global_batch_size` samples, the same data on every rank)
    is cut into $W$ contiguous shards of $B/W$; rank $r$ trains on shard $r$. The single process
    starts from rank 0's draw and trains on all $B$ samples: the model every correct variant must
    reproduce. `variants` defaults to `data_parallel_variants(world_size)`, `optimizers` to
    SGD(lr=0.1, momentum=0.9) and Adam(lr=0.01). All of it happens in one `launch`.

    Returns a dict:

    * `"params"[optimizer][dtype][name]`: `(W, steps + 1, P)`, each rank's parameters before the
      first step and after each one, for every variant and for "single process";
    * `"loss"[optimizer][dtype][name]`: `(W, steps + 1)`, the mean loss over all the data;
    * `"initial"[dtype]`: `(W, P)`, each rank's own draw, before any broadcast;
    * `"unequal"[dtype]`: one backward pass with $2(r+1)$ samples on rank $r$: `"global mean"`
      (one process, all $N$ samples), `"DDP, local means"` (the default) and
      `"DDP, local sums / N x W"` (the fix), each `(W, P)`;
    * `"world_size"`, `"steps"`, `"global_batch_size"`, `"seconds"` (wall time of the launch).
    """
    world_size = _check_int("world_size", world_size, 1)
    variants = _check_variants(data_parallel_variants(world_size) if variants is None
                               else variants)
    optimizers = _check_optimizers(DEFAULT_OPTIMIZERS if optimizers is None else optimizers)
    dtypes = tuple(as_dtype(d) for d in dtypes)
    steps = _check_int("steps", steps, 1)
    global_batch_size = _check_int("global_batch_size", global_batch_size, 1)
    if global_batch_size % world_size:
        raise ValueError(f"expected global_batch_size divisible by world_size={world_size} (the "
                         f"same local batch on every rank), but got {global_batch_size}")
    seed = _check_int("seed", seed, 0)
    start = time.perf_counter()
    per_rank = launch(_data_parallel_worker, (variants, optimizers, dtypes, steps,
                                              global_batch_size, seed), world_size,
                      timeout=timeout)
    seconds = time.perf_counter() - start
    names = [SINGLE_PROCESS, *variants]
    dtype_names = [dtype_name(d) for d in dtypes]

    def stacked(key, *path):
        return torch.stack([_get(result, *path)[key] for result in per_rank])

    return {
        "params": {o: {d: {n: stacked("params", "runs", (o, d), n) for n in names}
                       for d in dtype_names} for o in optimizers},
        "loss": {o: {d: {n: stacked("loss", "runs", (o, d), n) for n in names}
                     for d in dtype_names} for o in optimizers},
        "initial": {d: torch.stack([r["initial"][d] for r in per_rank]) for d in dtype_names},
        "unequal": {d: {k: torch.stack([r["unequal"][d][k] for r in per_rank])
                        for k in per_rank[0]["unequal"][d]} for d in dtype_names},
        "world_size": world_size, "steps": steps, "global_batch_size": global_batch_size,
        "seconds": seconds,
    }


def _get(tree: dict, *path):
    for key in path:
        tree = tree[key]
    return tree


# --------------------------------------------------------------------------------------------
# Reading the runs
# --------------------------------------------------------------------------------------------


def _trajectory(runs: dict, name: str, optimizer: str, dtype) -> Tensor:
    dtype = dtype_name(as_dtype(dtype))
    try:
        by_name = runs["params"][optimizer][dtype]
    except KeyError:
        raise ValueError(f"expected an optimizer in {sorted(runs['params'])} and a dtype in "
                         f"{sorted(next(iter(runs['params'].values())))}, but got "
                         f"{optimizer!r} and {dtype!r}") from None
    if name not in by_name:
        raise ValueError(f"expected a run in {sorted(by_name)}, but got {name!r}")
    return by_name[name]


def differences_per_step(runs: dict, first: str, second: str = "DDP", *, optimizer: str = "SGD",
                         dtype: torch.dtype | str = torch.float64) -> Tensor:
    r"""$\max_{r, j} |\theta^{\text{first}}_{t, r, j} - \theta^{\text{second}}_{t, r, j}|$ for
    $t = 0$ (after the broadcast) and after every step: a float64 vector of `steps + 1`."""
    a = _trajectory(runs, first, optimizer, dtype).double()
    b = _trajectory(runs, second, optimizer, dtype).double()
    return (a - b).abs().amax(dim=(0, 2))


def replica_spread(runs: dict, name: str, *, optimizer: str = "SGD",
                   dtype: torch.dtype | str = torch.float64) -> Tensor:
    r"""How far the replicas of one run are apart, $\max_{r, j} |\theta_{t,r,j} - \theta_{t,0,j}|$,
    at $t = 0$ and after every step (0 while they are one model)."""
    params = _trajectory(runs, name, optimizer, dtype).double()
    return (params - params[:1]).abs().amax(dim=(0, 2))


def first_update_ratio(runs: dict, name: str, reference: str = "DDP", *, optimizer: str = "SGD",
                       dtype: torch.dtype | str = torch.float64) -> float:
    r"""$\lVert\theta_1 - \theta_0\rVert / \lVert\theta^{\text{ref}}_1 - \theta^{\text{ref}}_0
    \rVert$ on rank 0: how much larger the first step of `name` is than the reference's.

    For SGD the first step is $-\gamma g_1$ (the momentum buffer starts at $g_1$), so a gradient
    scaled by $c$ gives the ratio $c$; Adam's first step is $-\gamma\,\mathrm{sign}(g_1)$ up to
    $\epsilon$, and the ratio stays near 1 whatever $c$.
    """
    def first_step(run: str) -> Tensor:
        params = _trajectory(runs, run, optimizer, dtype).double()[0]
        return params[1] - params[0]

    return (first_step(name).norm() / first_step(reference).norm()).item()


# --------------------------------------------------------------------------------------------
# Checks (`python -m helpers.verify -k parallel`): one launch, cached, serves every row
# --------------------------------------------------------------------------------------------


@functools.cache
def _default_runs() -> dict:
    return data_parallel_runs()


def _run_of(name: str, optimizer: str) -> Callable[[Tensor], Tensor]:
    """The parameters of run `name` after every step, in the dtype of the check's row."""
    def trajectory(anchor: Tensor) -> Tensor:
        return _default_runs()["params"][optimizer][dtype_name(anchor.dtype)][name]
    return trajectory


def _anchor(generator: torch.Generator) -> tuple[Tensor]:
    """No input: a 0-d tensor whose dtype tells which run to read."""
    return (torch.zeros((), dtype=torch.float64),)


def _parallel_check(name: str, reference: str, optimizer: str, exact: bool) -> Check:
    return Check(f"data parallel W=2, {optimizer}: {name} vs {reference}, every step",
                 _run_of(name, optimizer), _run_of(reference, optimizer), _anchor,
                 dtypes=(torch.float64, torch.float32),
                 tolerances={torch.float64: EXACT, torch.float32: EXACT} if exact else {},
                 devices=("cpu",))


DATA_PARALLEL_CHECKS: tuple[Check, ...] = tuple(
    check for optimizer in DEFAULT_OPTIMIZERS for check in (
        _parallel_check("from scratch", "DDP", optimizer, exact=True),
        _parallel_check("from scratch", SINGLE_PROCESS, optimizer, exact=False)))
"""average_gradients equals DistributedDataParallel bit for bit (W = 2), and data-parallel
training equals one process on the global batch at the course's tolerances; gloo runs on the CPU
only, so other devices show a skipped row."""

register(*DATA_PARALLEL_CHECKS)
