"""The train / evaluate loop, checkpoints, early stopping, and the digits task of chapter 06.

`fit` is the classic loop done right: the model in train mode while training and in eval mode
under `torch.no_grad()` while evaluating, `zero_grad` before every backward pass,
`scheduler.step()` after `optimizer.step()`, and a stop as soon as the loss is no longer finite
(or, with `EarlyStopping`, when the validation loss has stopped improving).
"""

from __future__ import annotations

import hashlib
import inspect
import itertools
import math
import os
import pickle
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers import metrics, schedules
from helpers.verify import Check, register


@dataclass
class History:
    """What one training run recorded."""

    lrs: list[float] = field(default_factory=list)  # learning rate used at each step
    step_losses: list[float] = field(default_factory=list)  # training loss of each step
    train_losses: list[float] = field(default_factory=list)  # mean training loss per epoch
    train_eval_losses: list[float] = field(default_factory=list)  # with evaluate_train=True: the
    #                         loss on the whole training set after each epoch, in eval mode
    val_losses: list[float] = field(default_factory=list)  # validation loss after each epoch
    val_accuracies: list[float] = field(default_factory=list)  # validation accuracy per epoch
    diverged: bool = False  # stopped early because the loss became inf or nan
    best_epoch: int | None = None  # with early stopping: the best epoch (1, 2, ...) so far
    stopped: bool = False  # early stopping ended the run (and restored the best epoch's weights)


def shuffled_batches(n_samples: int, batch_size: int,
                     generator: torch.Generator) -> Iterator[Tensor]:
    """Index tensors of one epoch: a fresh permutation cut into batches (the last may be short)."""
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, but got {batch_size}")
    order = torch.randperm(n_samples, generator=generator)
    return iter(order.split(batch_size))


@contextmanager
def _eval_mode(model: torch.nn.Module):
    """`model.eval()` inside the block; afterwards every module gets its own mode back, train or
    eval, also in a model whose modules were in mixed modes (a frozen batch norm, say)."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training


@torch.no_grad()
def evaluate(model: torch.nn.Module, X: Tensor, y: Tensor,
             loss_fn: Callable = F.cross_entropy) -> tuple[float, float]:
    """(mean loss, accuracy) of a classifier on (X, y), in eval mode without gradients; every
    module gets its own train / eval mode back afterwards.

    Accuracy is the share of samples whose highest logit is the true class (it needs one logit
    per class: an argmax over a single output is always 0).
    """
    with _eval_mode(model):
        logits = model(X)
        if logits.dim() != 2 or logits.shape[1] < 2:
            raise ValueError(f"expected logits of shape (N, C) with C >= 2 classes, but got "
                             f"{tuple(logits.shape)}")
        accuracy = (logits.argmax(dim=1) == y).double().mean().item()
        return loss_fn(logits, y).item(), accuracy


@torch.no_grad()
def evaluate_batches(model: torch.nn.Module, batches, loss_fn: Callable = F.cross_entropy
                     ) -> tuple[float, metrics.StreamingConfusionMatrix]:
    r"""(mean loss, confusion counts) of a classifier over an iterable of `(X, y)` batches, such
    as a `DataLoader`, in eval mode without gradients (each module's mode given back after).

    The loss of each batch is weighted by its size, $\frac1N \sum_b n_b \bar\ell_b$, and the
    predictions are counted into one `helpers.metrics.StreamingConfusionMatrix`: every metric
    read from it equals the metric of one pass over all the data, whatever the batches. Empty
    batches are skipped. The size weighting assumes that `loss_fn` returns the plain mean over
    the batch's samples (torch's default `reduction="mean"`, without `ignore_index` or class
    `weight`, whose means divide by another count).
    """
    with _eval_mode(model):
        counts = metrics.StreamingConfusionMatrix()
        total_loss, n = 0.0, 0
        for X, y in batches:
            if len(y) == 0:
                continue
            if y.dim() != 1:
                raise ValueError(f"expected labels of shape (N,), but got {tuple(y.shape)} (one "
                                 f"class index per sample, as cross-entropy takes them)")
            logits = model(X)
            if logits.dim() != 2 or logits.shape[1] < 2:
                raise ValueError(f"expected logits of shape (N, C) with C >= 2 classes, but got "
                                 f"{tuple(logits.shape)}")
            total_loss += loss_fn(logits, y).item() * len(y)
            n += len(y)
            counts.update(y, logits.argmax(dim=1))
        if n == 0:
            raise ValueError("expected at least one batch with samples, but got none")
        return total_loss / n, counts


class EarlyStopping:
    """Stop when the validation loss has not improved for `patience` epochs; keep the best weights.

    An epoch improves when its loss is below the best so far by more than `min_delta`
    (Keras' and Lightning's rule). `step(loss, model)` records the epoch and returns True when
    training should stop; `restore(model)` loads the weights of the best epoch (a copy is kept
    at every improvement). `state_dict()` / `load_state_dict()` let a checkpoint carry it.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"expected patience to be an integer >= 1, but got {patience!r}")
        if isinstance(min_delta, bool) or not isinstance(min_delta, int | float) or not (
                min_delta >= 0):
            raise ValueError(f"expected min_delta >= 0, but got {min_delta!r}")
        self.patience, self.min_delta = patience, min_delta
        self.best_loss = math.inf
        self.best_epoch = 0  # 0: no epoch recorded yet
        self.epoch = 0
        self.best_state: dict[str, Tensor] | None = None

    @property
    def bad_epochs(self) -> int:
        """Epochs since the last improvement."""
        return self.epoch - self.best_epoch

    def step(self, loss: float, model: torch.nn.Module) -> bool:
        self.epoch += 1
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_epoch = loss, self.epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        return self.bad_epochs >= self.patience

    def restore(self, model: torch.nn.Module) -> None:
        if self.best_state is None:
            raise ValueError("expected at least one recorded epoch before restore, but got none")
        model.load_state_dict(self.best_state)

    def state_dict(self) -> dict:
        return {"patience": self.patience, "min_delta": self.min_delta,
                "best_loss": self.best_loss, "best_epoch": self.best_epoch, "epoch": self.epoch,
                "best_state": self.best_state}

    def load_state_dict(self, state: dict) -> None:
        for key in ("patience", "min_delta", "best_loss", "best_epoch", "epoch", "best_state"):
            setattr(self, key, state[key])


def fit(model: torch.nn.Module, optimizer, data: tuple[Tensor, Tensor, Tensor, Tensor], *,
        epochs: int, batch_size: int, generator: torch.Generator, scheduler=None,
        loss_fn: Callable = F.cross_entropy, early_stopping: EarlyStopping | None = None,
        evaluate_train: bool = False) -> History:
    """Train on `data = (X_train, y_train, X_val, y_val)` with minibatches, evaluating after each
    epoch; `scheduler.step()` runs after every optimizer step. `history.train_losses` are the
    means of the minibatch losses of each epoch, in train mode (dropout on, the weights moving);
    with `evaluate_train=True` the whole training set is also evaluated after each epoch, like
    the validation set (`history.train_eval_losses`): the two losses of the generalization gap.

    With `early_stopping`, training ends once the validation loss has not improved for its
    `patience` epochs, and the model is given back the weights of the best epoch
    (`history.stopped`, `history.best_epoch`). If the epochs run out first, the model keeps the
    last epoch's weights, so that the run can go on: `early_stopping.restore(model)` takes the
    best ones. Calling `fit` again with the same objects goes on where it ended: `fit(epochs=k)`
    then `fit(epochs=m)` is `fit(epochs=k + m)`, bit for bit.
    """
    X_train, y_train, X_val, y_val = data
    history = History()
    for _ in range(epochs):
        model.train()
        epoch_losses = []
        for batch in shuffled_batches(len(y_train), batch_size, generator):
            history.lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.zero_grad()
            loss = loss_fn(model(X_train[batch]), y_train[batch])
            if not math.isfinite(loss.item()):
                history.diverged = True
                return history
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            history.step_losses.append(loss.item())
            epoch_losses.append(loss.item())
        history.train_losses.append(sum(epoch_losses) / len(epoch_losses))
        if evaluate_train:
            history.train_eval_losses.append(evaluate(model, X_train, y_train, loss_fn)[0])
        val_loss, val_accuracy = evaluate(model, X_val, y_val, loss_fn)
        history.val_losses.append(val_loss)
        history.val_accuracies.append(val_accuracy)
        if early_stopping is not None:
            history.stopped = early_stopping.step(val_loss, model)
            history.best_epoch = early_stopping.best_epoch
            if history.stopped:
                early_stopping.restore(model)
                break
    return history


# --------------------------------------------------------------------------------------------
# Checkpoints: stop after any epoch, go on later, bit for bit
# --------------------------------------------------------------------------------------------

_SAFE_SCALARS = (type(None), bool, int, float, str)  # exactly these types: np.float64 is a float
_SAFE_OBJECTS = (torch.Tensor, torch.dtype, torch.device)


def _check_extra(name: str, value) -> None:
    """`value` must load with `torch.load(weights_only=True)`: tensors, numbers, strings and
    lists, tuples or dicts of them."""
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_extra(f"{name}[{index}]", item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_extra(f"{name}[{key!r}]", item)
    elif type(value) not in _SAFE_SCALARS and not isinstance(value, _SAFE_OBJECTS):
        raise TypeError(f"expected {name} to be a tensor, number, string, or a list / tuple / "
                        f"dict of them (what weights_only loading accepts), but got "
                        f"{type(value).__name__}"
                        + (" (convert it with .item())" if hasattr(value, "item") else ""))


def save_checkpoint(path, model: torch.nn.Module, optimizer, scheduler=None,
                    generator: torch.Generator | None = None, **extra) -> None:
    """Save everything a run needs to go on as if it had never stopped.

    The model's parameters and buffers, the optimizer's state (momentum buffers, moment
    estimates, step counts), the scheduler's position, the state of `generator` (the data order
    of `fit`), torch's global random state on the CPU and, when CUDA is in use, on every GPU
    (dropout masks and other draws), and `extra` values such as the epoch or the early-stopping
    record, returned by `load_checkpoint`. The classes of the optimizer and scheduler are kept
    too, so that a checkpoint is not loaded into other ones.
    """
    for key, value in extra.items():
        _check_extra(key, value)
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "optimizer_class": type(optimizer).__name__,
                "scheduler": None if scheduler is None else scheduler.state_dict(),
                "scheduler_class": None if scheduler is None else type(scheduler).__name__,
                "generator": None if generator is None else generator.get_state(),
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if cuda else None,
                "extra": extra}, path)


_CHECKPOINT_KEYS = {"model", "optimizer", "optimizer_class", "scheduler", "scheduler_class",
                    "generator", "torch_rng", "cuda_rng", "extra"}


def _check_model_state(model: torch.nn.Module, state: dict) -> None:
    """Refuse a checkpoint of another model, with a message that lists every difference (keys,
    shapes, dtypes: a float64 run resumed in float32 would not be the same run)."""
    own = model.state_dict()
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    shapes = [f"{key}: checkpoint {tuple(state[key].shape)}, model {tuple(own[key].shape)}"
              for key in own if key in state and state[key].shape != own[key].shape]
    dtypes = [f"{key}: checkpoint {state[key].dtype}, model {own[key].dtype}"
              for key in own if key in state and state[key].dtype != own[key].dtype]
    if missing or unexpected or shapes or dtypes:
        problems = [f"missing keys {missing}" if missing else "",
                    f"unexpected keys {unexpected}" if unexpected else "",
                    f"other shapes ({'; '.join(shapes)})" if shapes else "",
                    f"other dtypes ({'; '.join(dtypes[:3])}{' ...' if len(dtypes) > 3 else ''})"
                    if dtypes else ""]
        raise ValueError("expected a checkpoint of this model, but got one with "
                         + ", ".join(p for p in problems if p))


def load_checkpoint(path, model: torch.nn.Module, optimizer, scheduler=None,
                    generator: torch.Generator | None = None) -> dict:
    """Restore what `save_checkpoint` saved into fresh objects; return its `extra` values.

    Loads with `weights_only=True` (no arbitrary code from the file), and restores torch's
    global random state, so that the next dropout mask is the one the interrupted run would
    have drawn. Before loading anything it refuses, with every difference named, a file that is
    not such a checkpoint, a checkpoint of another model (keys, shapes, dtypes), of another
    optimizer or scheduler class, or of other parameter groups.
    """
    checkpoint = torch.load(path, weights_only=True)
    # every refusal comes before anything is loaded: a refused checkpoint leaves the objects as
    # they were
    if not isinstance(checkpoint, dict) or not _CHECKPOINT_KEYS <= checkpoint.keys():
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"expected a checkpoint written by save_checkpoint (keys "
                         f"{sorted(_CHECKPOINT_KEYS)}), but got {found}")
    _check_model_state(model, checkpoint["model"])
    for role, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        saved = checkpoint[f"{role}_class"]
        if obj is not None and saved is not None and saved != type(obj).__name__:
            raise ValueError(f"expected a checkpoint of a {type(obj).__name__} {role}, but it "
                             f"holds the state of a {saved}")
    groups = [len(g["params"]) for g in optimizer.param_groups]
    saved_groups = [len(g["params"]) for g in checkpoint["optimizer"]["param_groups"]]
    if groups != saved_groups:
        raise ValueError(f"expected an optimizer with parameter groups of sizes {saved_groups}, "
                         f"as in the checkpoint, but got {groups}")
    if (scheduler is None) != (checkpoint["scheduler"] is None):
        raise ValueError(f"expected {'no ' if scheduler is None else 'a '}scheduler state, as "
                         f"the scheduler passed, but the checkpoint has "
                         f"{'none' if checkpoint['scheduler'] is None else 'one'}")
    if generator is not None and checkpoint["generator"] is None:
        raise ValueError("expected a generator state in the checkpoint, but it was saved "
                         "without a generator")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    if generator is not None:
        generator.set_state(checkpoint["generator"])
    torch.set_rng_state(checkpoint["torch_rng"])
    if checkpoint["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(checkpoint["cuda_rng"])
    return checkpoint["extra"]


# --------------------------------------------------------------------------------------------
# Chapter 06: an MLP on scikit-learn's digits, under every learning-rate setting
# --------------------------------------------------------------------------------------------

SCHEDULES = ("constant", "step", "cosine", "one-cycle")


def digits_mlp(seed: int = 0, hidden: int = 64, dtype: torch.dtype = torch.float32
               ) -> torch.nn.Module:
    """64 pixels -> `hidden` ReLU units -> 10 logits, initialised from `seed` (drawn in float32,
    torch's default, then converted to `dtype`: the same starting point in every dtype)."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(),
                               torch.nn.Linear(hidden, 10)).to(dtype)


def make_scheduler(optimizer, schedule: str, total_steps: int, warmup_steps: int = 0):
    """One of `SCHEDULES` over `total_steps`, after a linear warm-up from 1% of the rate over
    `warmup_steps` (one-cycle warms up by itself: its first 30% rise from max_lr / 25)."""
    if schedule not in SCHEDULES:
        raise ValueError(f"expected a schedule in {SCHEDULES}, but got {schedule!r}")
    if not 0 <= warmup_steps < total_steps:
        raise ValueError(f"expected 0 <= warmup_steps < total_steps ({total_steps}), but got "
                         f"{warmup_steps}")
    if schedule == "one-cycle":
        return schedules.OneCycleLR(optimizer, max_lr=optimizer.param_groups[0]["lr"],
                                    total_steps=total_steps)
    remaining = total_steps - warmup_steps
    main = {"constant": lambda: schedules.LinearLR(optimizer, 1.0, 1.0, total_iters=1),
            "step": lambda: schedules.StepLR(optimizer, step_size=math.ceil(remaining / 3),
                                             gamma=0.1),  # decays after 1/3 and 2/3 only
            "cosine": lambda: schedules.CosineAnnealingLR(optimizer, T_max=remaining)}[schedule]
    if warmup_steps == 0:
        return main()
    warmup = schedules.LinearLR(optimizer, start_factor=0.01, total_iters=warmup_steps)
    return schedules.SequentialLR(optimizer, [warmup, main()], milestones=[warmup_steps])


def train_digits(data, lr: float, schedule: str = "constant", warmup_steps: int = 0, *,
                 epochs: int = 12, batch_size: int = 64, momentum: float = 0.9,
                 seed: int = 0) -> History:
    """One run of the digits MLP with SGD (momentum 0.9) at base rate `lr` under a schedule.

    The model takes the dtype of the data. One-cycle also cycles the momentum (0.95 -> 0.85 ->
    0.95, as torch's OneCycleLR does), so its runs do not keep `momentum`."""
    model = digits_mlp(seed, dtype=data[0].dtype)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    steps = epochs * math.ceil(len(data[1]) / batch_size)
    scheduler = make_scheduler(optimizer, schedule, steps, warmup_steps)
    return fit(model, optimizer, data, epochs=epochs, batch_size=batch_size,
               generator=torch.Generator().manual_seed(seed + 1), scheduler=scheduler)


@dataclass
class RunGrid:
    """Training runs for every (lr, schedule, warm-up) of a grid, and how long they took."""

    lrs: list[float]
    schedules: list[str]
    warmups: list[int]
    runs: dict[tuple[float, str, int], History]
    seconds: float

    def nearest_lr(self, lr: float) -> float:
        """The grid's learning rate closest to `lr` on a log scale."""
        return min(self.lrs, key=lambda candidate: abs(math.log(candidate / lr)))

    def run(self, lr: float, schedule: str, warmup: int) -> History:
        """The precomputed run nearest to the request (one-cycle ignores the warm-up)."""
        warmup = 0 if schedule == "one-cycle" else min(self.warmups, key=lambda w: abs(w - warmup))
        return self.runs[(self.nearest_lr(lr), schedule, warmup)]


def precompute_grid(data, lrs: Sequence[float], schedules_: Sequence[str] = SCHEDULES,
                    warmups: Sequence[int] = (0, 50), **train_options) -> RunGrid:
    """Train once for every setting so that a widget only looks results up."""
    start = time.perf_counter()
    runs = {}
    for lr, schedule, warmup in itertools.product(lrs, schedules_, warmups):
        if schedule == "one-cycle" and warmup != warmups[0]:
            continue
        key = (lr, schedule, 0 if schedule == "one-cycle" else warmup)
        runs[key] = train_digits(data, lr, schedule, key[2], **train_options)
    return RunGrid(list(lrs), list(schedules_), list(warmups), runs,
                   time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# Check: evaluation in batches equals one pass (`python -m helpers.verify -k evaluate_batches`)
# --------------------------------------------------------------------------------------------


def _linear_model(weight: Tensor, bias: Tensor) -> torch.nn.Module:
    model = torch.nn.Linear(weight.shape[1], weight.shape[0], device=weight.device,
                            dtype=weight.dtype)
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
    return model


def _batched(X, y, weight, bias):
    loss, counts = evaluate_batches(_linear_model(weight, bias),
                                    zip(X.split(23), y.split(23)))  # the last batch is short
    return torch.tensor(loss, dtype=torch.float64), counts.confusion_matrix()


def _one_pass(X, y, weight, bias):
    from sklearn.metrics import confusion_matrix

    logits = X @ weight.T + bias
    matrix = confusion_matrix(y.cpu().numpy(), logits.argmax(1).cpu().numpy(), labels=range(4))
    return (F.cross_entropy(logits, y).double().cpu(),
            torch.as_tensor(matrix, device=X.device))  # all 4 classes occur in 200 samples


def _batched_inputs(generator: torch.Generator):
    X = torch.randn(200, 6, generator=generator, dtype=torch.float64)
    return (X, torch.randint(4, (200,), generator=generator),
            torch.randn(4, 6, generator=generator, dtype=torch.float64),
            torch.randn(4, generator=generator, dtype=torch.float64))


CHECKS = [Check("evaluate_batches (loss, confusion matrix) vs one pass + sklearn", _batched,
                _one_pass, _batched_inputs, dtypes=(torch.float64, torch.float32))]
register(*CHECKS)


# --------------------------------------------------------------------------------------------
# Precomputed runs, kept on disk: the classroom apps (apps/, served with Voila) load them
# --------------------------------------------------------------------------------------------

CACHE_DIR = Path(__file__).resolve().parents[1] / "build" / "cache"
"""Where `cached` keeps its results: the build folder of the course, never committed."""

_RESULT = TypeVar("_RESULT")


def _feed(digest, value) -> None:
    """Add `value` to `digest`: tensors by dtype, shape and bytes (their pickle holds memory
    addresses), containers element by element, anything else by its repr."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"tensor {value.dtype} {tuple(value.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, list | tuple):
        digest.update(f"{type(value).__name__} {len(value)};".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, dict):
        digest.update(f"dict {len(value)};".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key)
            _feed(digest, value[key])
    else:
        digest.update(f"{value!r};".encode())


def fingerprint(compute: Callable, *args, **kwargs) -> str:
    """What decides the result of `compute(*args, **kwargs)`, hashed: the function's name and
    source (a function defined in a notebook cell has one too), the arguments, the source of
    the modules of `helpers` imported so far (what `compute` can run; an edit elsewhere in the
    package does not count), and the versions of Python, torch, numpy and scikit-learn. A change
    of any of these gives another fingerprint, so a stale result is never read back."""
    digest = hashlib.sha256()
    digest.update(f"{compute.__module__}.{compute.__qualname__};".encode())
    try:
        digest.update(inspect.getsource(compute).encode())
    except (OSError, TypeError):  # no source to read: the name alone
        pass
    _feed(digest, (args, kwargs))
    for name in sorted(name for name in sys.modules if name.partition(".")[0] == "helpers"):
        source = getattr(sys.modules[name], "__file__", None)
        digest.update(f"{name};".encode())
        digest.update(Path(source).read_bytes() if source else b"")
    versions = [platform.python_version()] + [metadata.version(name) for name in
                                              ("torch", "numpy", "scikit-learn")]
    digest.update(" ".join(versions).encode())
    return digest.hexdigest()[:16]


def cached(compute: Callable[..., _RESULT], *args, cache_dir: str | os.PathLike | None = None,
           **kwargs) -> _RESULT:
    """`compute(*args, **kwargs)`, computed once and then read back from `cache_dir` (default
    `CACHE_DIR`).

    Why: an explorer over real training runs needs a grid of runs that takes seconds to train
    (chapter 06's 105 runs, chapter 09's sweeps); a classroom app that trained them on every
    visit would make each student wait, and a class would queue on the CPU. The file is named
    after `compute` and its `fingerprint`, so another argument, another version of `helpers` or
    of torch computes afresh (and replaces the older file of that name). The file is written
    under a temporary name and then renamed, so a kernel that reads it while another one writes
    sees the old file or the whole new one, never half of it. The result must be picklable; the
    files are this machine's own (pickle runs code on load: never copy them from elsewhere).
    """
    directory = Path(CACHE_DIR if cache_dir is None else cache_dir)
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in compute.__qualname__)
    path = directory / f"{name}-{fingerprint(compute, *args, **kwargs)}.pkl"
    if path.exists():
        with path.open("rb") as file:
            return pickle.load(file)
    result = compute(*args, **kwargs)
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            pickle.dump(result, file, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    for older in directory.glob(f"{name}-*.pkl"):
        if older != path:
            older.unlink(missing_ok=True)
    return result
