r"""Gradient accumulation and the memory of training (chapter 11, sections 3 and 5).

**Gradient accumulation.** Split a batch of $N$ samples into micro-batches $B_1, \dots, B_k$ of
sizes $n_1 + \dots + n_k = N$. The big batch's mean loss is a weighted sum of the micro-batches'
mean losses,

.. math::
    L = \frac1N \sum_{j=1}^N \ell_j = \sum_{i=1}^k \frac{n_i}{N} L_i, \qquad
    L_i = \frac{1}{n_i} \sum_{j \in B_i} \ell_j, \qquad
    \nabla L = \sum_{i=1}^k \frac{n_i}{N} \nabla L_i,

and since `backward()` *adds* into `.grad`, backpropagating $\frac{n_i}{N} L_i$ for one
micro-batch after the other leaves $\nabla L$ in `.grad`, with the activations of one micro-batch
alive at a time (weight $1/k$ when the sizes are equal). Three ways to break it, each a function
here: no weight at all (the gradient is $k$ times too large), the weight $1/k$ with unequal sizes
(every sample of a small micro-batch weighs more: huggingface/transformers#24725, where the
"samples" are tokens), and a model whose output for one sample depends on the others in its
batch (BatchNorm's batch statistics), where no weighting gives the big batch's gradient.

**Memory of training.** Four things occupy memory: the parameters, their gradients (after
`backward`, until `zero_grad`), the optimizer's state (Adam: `exp_avg`, `exp_avg_sq` and a
0-dim `step` tensor per parameter tensor) and what autograd saves for the backward pass during
the forward pass. `saved_tensor_bytes` measures the last with
`torch.autograd.graph.saved_tensors_hooks`, counting each storage once: `Linear` saves its input
(when its weight needs a gradient) and its weight (when its input needs one), `ReLU` its output,
which is also the input the next `Linear` saves, so it is one storage saved twice.
`mlp_saved_bytes` counts the same by hand.

**Activation checkpointing.** Cut a stack of $L$ layers into $s$ segments; keep only each
segment's input during the forward pass and recompute a segment's activations when the backward
pass reaches it. The memory, in units of one layer's activations, is

.. math::
    M(s) \approx s + \frac{L}{s}, \qquad \frac{dM}{ds} = 1 - \frac{L}{s^2} = 0
    \;\Rightarrow\; s^* = \sqrt{L}, \quad M(s^*) = 2\sqrt{L},

against $L$ without checkpointing, for one extra forward pass of the checkpointed layers.

**Mixed precision and ZeRO.** Adam in float32 needs $4 + 4 + 8 = 16$ bytes per parameter
(parameters, gradients, the two moments). Mixed precision as in the ZeRO paper (Rajbhandari et
al. 2020) keeps 16-bit parameters and gradients and a float32 master copy beside the moments:
$2 + 2 + K$ with $K = 12$, again 16. `torch.autocast` keeps the float32 parameters and casts
on the fly, so it saves activation memory, not parameter memory. ZeRO splits over $N_d$
devices the optimizer state (stage 1), the gradients too (stage 2), and the parameters too
(stage 3, which is what FSDP's `FULL_SHARD` does):

.. math::
    (2 + 2 + K)\Psi, \quad 4\Psi + \frac{K\Psi}{N_d}, \quad 2\Psi + \frac{(2 + K)\Psi}{N_d},
    \quad \frac{(2 + 2 + K)\Psi}{N_d} \text{ bytes per device.}
"""

from __future__ import annotations

import copy
import math
import numbers
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.graph import saved_tensors_hooks
from torch.utils.checkpoint import checkpoint_sequential

from helpers.verify import EXACT, Check, register

__all__ = [
    # gradient accumulation
    "micro_batch_sizes", "accumulate_gradients", "accumulate_without_scaling",
    "accumulate_mean_of_means", "gradient_discrepancy",
    # memory accounting
    "storage_bytes", "parameter_bytes", "gradient_bytes", "optimizer_state_bytes",
    "model_state_bytes", "SavedBytes", "saved_tensor_bytes", "mlp", "mlp_saved_bytes",
    "training_step_memory",
    # activation checkpointing
    "deep_mlp", "sequential_forward", "count_forward_calls", "CheckpointCost",
    "checkpoint_cost", "checkpoint_saved_activations", "checkpoint_forward_calls",
    "best_segments",
    # mixed precision and ZeRO
    "adam_training_bytes", "ZERO_STAGES", "zero_bytes_per_device", "FSDP_SHARDING_STAGES",
    "fsdp_bytes_per_device", "format_bytes",
    "MEMORY_CHECKS",
]


def _check_int(name: str, value, minimum: int) -> int:
    """`value` as an int >= `minimum`; a bool, float or string is a TypeError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"expected {name} to be an int, but got {type(value).__name__} "
                        f"({value!r})")
    if value < minimum:
        raise ValueError(f"expected {name} >= {minimum}, but got {value}")
    return int(value)


def _check_callable(name: str, value) -> None:
    if not callable(value):
        raise TypeError(f"expected {name} to be callable, but got {type(value).__name__}")


# --------------------------------------------------------------------------------------------
# Gradient accumulation
# --------------------------------------------------------------------------------------------


def micro_batch_sizes(batch_size: int, micro_batches: int | Sequence[int]) -> list[int]:
    r"""The sizes $n_1, \dots, n_k$ of the micro-batches, $\sum_i n_i = N$ = `batch_size`.

    An int $k$ cuts the batch as `torch.tensor_split(batch, k)` does: the first $N \bmod k$
    micro-batches hold $\lceil N/k \rceil$ samples, the others $\lfloor N/k \rfloor$. A list of
    sizes is taken as it is (as `torch.split(batch, sizes)` takes it) after checking that every
    size is at least 1 and that they add up to $N$.
    """
    batch_size = _check_int("the batch size", batch_size, 1)
    if isinstance(micro_batches, Sequence) and not isinstance(micro_batches, str | bytes):
        sizes = [_check_int("every micro-batch size", n, 1) for n in micro_batches]
        if not sizes or sum(sizes) != batch_size:
            raise ValueError(f"expected micro-batch sizes that add up to the batch size "
                             f"{batch_size}, but got {list(micro_batches)} (sum {sum(sizes)})")
        return sizes
    if isinstance(micro_batches, bool) or not isinstance(micro_batches, numbers.Integral):
        raise TypeError(f"expected the number of micro-batches as an int (or a list of sizes), "
                        f"but got {type(micro_batches).__name__} ({micro_batches!r})")
    k = int(micro_batches)
    if k < 1:
        raise ValueError(f"expected at least 1 micro-batch, but got {k}")
    if k > batch_size:
        raise ValueError(f"expected at most {batch_size} micro-batches (one sample each) for a "
                         f"batch of {batch_size}, but got {k}")
    # n_i = ceil(N / k) for the first N mod k micro-batches, floor(N / k) for the rest
    return [batch_size // k + (i < batch_size % k) for i in range(k)]


def _batch_size(input: Tensor, target: Tensor) -> int:
    for name, tensor in (("input", input), ("target", target)):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"expected {name} to be a tensor, but got {type(tensor).__name__}")
        if tensor.dim() == 0:
            raise ValueError(f"expected {name} with a batch dimension, but got a 0-dim tensor")
    if len(input) != len(target):
        raise ValueError(f"expected input and target with the same batch size, but got "
                         f"{len(input)} and {len(target)}")
    return len(input)


def _check_mean_reduction(loss_fn: Callable) -> None:
    """The weights n_i / N assume mean losses: refuse a loss module or partial that sums."""
    reduction = getattr(loss_fn, "reduction", None)
    if reduction is None:
        reduction = (getattr(loss_fn, "keywords", None) or {}).get("reduction", "mean")
    if reduction != "mean":
        raise ValueError(f"expected a loss_fn that averages over the micro-batch "
                         f"(reduction='mean': the weights n_i / N turn means into the big "
                         f"batch's mean), but got reduction={reduction!r}")


def _described(value) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _accumulate(model: Callable, loss_fn: Callable, input: Tensor, target: Tensor,
                micro_batches: int | Sequence[int], weight: Callable[[int, int, int], float]
                ) -> Tensor:
    """Forward and backward of `weight(n_i, N, k) * loss_fn(model(x_i), y_i)` per micro-batch."""
    _check_callable("model", model)
    _check_callable("loss_fn", loss_fn)
    _check_mean_reduction(loss_fn)
    batch_size = _batch_size(input, target)
    sizes = micro_batch_sizes(batch_size, micro_batches)
    total = torch.zeros((), dtype=input.dtype if input.is_floating_point() else None,
                        device=input.device)
    for x, y in zip(input.split(sizes), target.split(sizes)):
        # w_i L_i, with L_i the mean loss of micro-batch i
        mean_loss = loss_fn(model(x), y)
        if not isinstance(mean_loss, Tensor) or mean_loss.dim() != 0:
            raise ValueError(f"expected loss_fn to return one number, the micro-batch's mean "
                             f"loss, but got {_described(mean_loss)}")
        loss = weight(len(x), batch_size, len(sizes)) * mean_loss
        # .grad += w_i grad L_i   (backward adds into .grad)
        loss.backward()
        total = total + loss.detach()
    return total


def accumulate_gradients(model: Callable, loss_fn: Callable, input: Tensor, target: Tensor,
                         micro_batches: int | Sequence[int]) -> Tensor:
    r"""Add the big batch's gradient to `.grad`, one micro-batch at a time; return the loss.

    .. math::
        \texttt{.grad} \mathrel{+}= \sum_{i=1}^k \frac{n_i}{N} \nabla L_i = \nabla L,
        \qquad L = \sum_{i=1}^k \frac{n_i}{N} L_i

    `loss_fn(model(x_i), y_i)` must be the *mean* loss $L_i$ over the $n_i$ samples of
    micro-batch $i$ (`reduction="mean"`, the default of every torch loss), and `micro_batches` is
    $k$ or the list of sizes (`micro_batch_sizes`). Returns $L$, detached: the loss the big batch
    would report.

    Note: like `loss.backward()` it *adds* to `.grad`; call `optimizer.zero_grad()` before, as
    for one big batch. $n_i/N$ is the right weight when the loss is a plain mean over samples; a
    loss normalised by something else (class weights in `cross_entropy`, `ignore_index`, padding
    tokens) needs each micro-batch's share of *that* denominator instead.
    """
    # w_i = n_i / N
    return _accumulate(model, loss_fn, input, target, micro_batches, lambda n, N, k: n / N)


def accumulate_without_scaling(model: Callable, loss_fn: Callable, input: Tensor,
                               target: Tensor, micro_batches: int | Sequence[int]) -> Tensor:
    r"""The mistake of forgetting the weight: $\sum_i \nabla L_i$, $k\,\nabla L$ for equal sizes.

    Returns $\sum_i L_i$. Only to show the symptom; use `accumulate_gradients`.
    """
    # w_i = 1
    return _accumulate(model, loss_fn, input, target, micro_batches, lambda n, N, k: 1.0)


def accumulate_mean_of_means(model: Callable, loss_fn: Callable, input: Tensor,
                             target: Tensor, micro_batches: int | Sequence[int]) -> Tensor:
    r"""The mistake of weighting every micro-batch by $1/k$: $\frac1k \sum_i \nabla L_i$.

    Right when the sizes are equal; with unequal sizes a sample of micro-batch $i$ weighs
    $\frac{1}{k\,n_i}$ instead of $\frac1N$ (huggingface/transformers#24725). Returns
    $\frac1k \sum_i L_i$. Only to show the symptom; use `accumulate_gradients`.
    """
    # w_i = 1 / k
    return _accumulate(model, loss_fn, input, target, micro_batches, lambda n, N, k: 1 / k)


def _flat_gradient(model: nn.Module) -> Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                      for p in model.parameters()])


def gradient_discrepancy(model: nn.Module, loss_fn: Callable, input: Tensor, target: Tensor,
                         micro_batches: int | Sequence[int],
                         accumulate: Callable = accumulate_gradients) -> dict[str, float]:
    r"""How far accumulated gradients are from the big batch's, on copies of `model`.

    .. math::
        \text{relative\_error} = \frac{\lVert g_{acc} - g \rVert_2}{\lVert g \rVert_2},
        \qquad \text{norm\_ratio} = \frac{\lVert g_{acc} \rVert_2}{\lVert g \rVert_2}

    with $g$ the gradient of `loss_fn(model(input), target)` and $g_{acc}$ what `accumulate`
    (`accumulate_gradients` or one of the mistakes) leaves in `.grad`. Both are computed on deep
    copies, so the model, its gradients and its buffers (BatchNorm's running statistics) stay
    as they are.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected model to be a torch.nn.Module, but got "
                        f"{type(model).__name__}")
    big, accumulated = copy.deepcopy(model), copy.deepcopy(model)
    for copy_ in (big, accumulated):
        copy_.zero_grad(set_to_none=True)
    loss_fn(big(input), target).backward()
    accumulate(accumulated, loss_fn, input, target, micro_batches)
    g, g_acc = _flat_gradient(big), _flat_gradient(accumulated)
    return {"relative_error": ((g_acc - g).norm() / g.norm()).item(),
            "norm_ratio": (g_acc.norm() / g.norm()).item()}


# --------------------------------------------------------------------------------------------
# Memory accounting: parameters, gradients, optimizer state
# --------------------------------------------------------------------------------------------


def _storage_key(tensor: Tensor) -> tuple:
    """What identifies the memory behind a tensor: its device and its storage's address."""
    return (tensor.device.type, tensor.device.index, tensor.untyped_storage().data_ptr())


def storage_bytes(tensors: Iterable[Tensor]) -> int:
    r"""$\sum$ bytes of the distinct storages behind `tensors`: a storage shared by several
    tensors (views, a weight tied between two layers) counts once, and a view counts its whole
    storage."""
    seen: dict[tuple, int] = {}
    for tensor in tensors:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"expected tensors, but got {type(tensor).__name__}")
        seen.setdefault(_storage_key(tensor), tensor.untyped_storage().nbytes())
    return sum(seen.values())


def _module(model) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"expected a torch.nn.Module (the model, not model.parameters()), but "
                        f"got {type(model).__name__}")
    return model


def parameter_bytes(model: nn.Module) -> int:
    r"""Bytes of the parameters, $\sum_p \text{numel}(p) \cdot \text{itemsize}(p)$, each storage
    once (buffers such as BatchNorm's running statistics are not counted)."""
    return storage_bytes(_module(model).parameters())


def gradient_bytes(model: nn.Module) -> int:
    r"""Bytes of the `.grad` tensors that exist now: 0 before the first `backward` and after
    `zero_grad()` (which sets them to None), `parameter_bytes` in between."""
    return storage_bytes(p.grad for p in _module(model).parameters() if p.grad is not None)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    r"""Bytes of every tensor in `optimizer.state`, as torch stores them, each storage once.

    Adam: `exp_avg` and `exp_avg_sq` like each parameter, and `step`, a 0-dim float32 tensor
    per parameter tensor (float64 when torch's default dtype is float64): $8N + 4T$ bytes for
    $N$ float32 parameters in $T$ tensors. SGD with momentum: one `momentum_buffer` per
    parameter; without momentum, nothing. The state is created by the first `step()`.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"expected a torch.optim.Optimizer, but got {type(optimizer).__name__}")
    return storage_bytes(value for state in optimizer.state.values()
                         for value in state.values() if isinstance(value, Tensor))


def model_state_bytes(model: nn.Module,
                      optimizer: torch.optim.Optimizer | None = None) -> dict[str, int]:
    """{"parameters", "gradients", "optimizer_state"}: the bytes of each, as they are now."""
    return {"parameters": parameter_bytes(model), "gradients": gradient_bytes(model),
            "optimizer_state": 0 if optimizer is None else optimizer_state_bytes(optimizer)}


# --------------------------------------------------------------------------------------------
# Memory accounting: what autograd saves for the backward pass
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SavedBytes:
    """What autograd saved for the backward pass during one forward pass, each storage once.

    `parameters`: saved storages that are the model's parameters or buffers (a `Linear` saves
    its weight by reference: no extra memory). `parameter_copies`: new storages that are casts
    of a parameter, such as the 16-bit copy of a weight that a layer saves under
    `torch.autocast` (extra memory, held until the backward pass). `activations`: every other
    saved storage (the batch itself when a layer saves it, and the tensors the forward pass
    created). `storages`: how many distinct storages; `saves`: how many times autograd saved a
    tensor (one storage can be saved more than once).
    """

    parameters: int
    activations: int
    storages: int
    saves: int
    parameter_copies: int = 0

    @property
    def total(self) -> int:
        return self.parameters + self.parameter_copies + self.activations


@contextmanager
def _recording_saved_tensors() -> Iterator[list[Tensor]]:
    """Every tensor autograd saves inside the block, in order; each is kept alive until the
    list is dropped, so no storage address is reused while it is recorded."""
    saved: list[Tensor] = []

    def pack(tensor: Tensor) -> Tensor:
        saved.append(tensor)
        return tensor

    with saved_tensors_hooks(pack, lambda tensor: tensor):
        yield saved


_CASTS_AND_VIEWS = ("ToCopyBackward0", "TBackward0", "TransposeBackward0", "PermuteBackward0",
                    "ViewBackward0", "UnsafeViewBackward0", "ExpandBackward0", "AliasBackward0")


def _is_parameter_copy(tensor: Tensor, parameter_keys: set[tuple]) -> bool:
    """Whether `tensor` is a cast of a parameter (or a view of one): its autograd history is a
    chain of casts and views that ends at one of the parameters."""
    node = tensor.grad_fn
    while node is not None and node.name() in _CASTS_AND_VIEWS:
        node = node.next_functions[0][0]
    # AccumulateGrad, the end of a parameter's history, holds the parameter as .variable
    return hasattr(node, "variable") and _storage_key(node.variable) in parameter_keys


def _summary(saved: list[Tensor], parameter_keys: set[tuple]) -> SavedBytes:
    by_storage, copies = {}, set()
    for tensor in saved:
        key = _storage_key(tensor)
        by_storage[key] = tensor.untyped_storage().nbytes()
        if key not in parameter_keys and _is_parameter_copy(tensor, parameter_keys):
            copies.add(key)
    # each storage once: parameters (and buffers), copies of parameters, everything else
    params = sum(n for key, n in by_storage.items() if key in parameter_keys)
    copied = sum(by_storage[key] for key in copies)
    return SavedBytes(parameters=params, activations=sum(by_storage.values()) - params - copied,
                      storages=len(by_storage), saves=len(saved), parameter_copies=copied)


def _parameter_keys(fn, parameters) -> set[tuple]:
    if parameters is None:
        parameters = [*fn.parameters(), *fn.buffers()] if isinstance(fn, nn.Module) else []
    elif isinstance(parameters, nn.Module):
        parameters = [*parameters.parameters(), *parameters.buffers()]
    return {_storage_key(p) for p in parameters}


def saved_tensor_bytes(fn: Callable, *args, parameters: nn.Module | Iterable[Tensor] | None = None,
                       **kwargs) -> SavedBytes:
    r"""Bytes autograd saves for the backward pass while `fn(*args, **kwargs)` runs.

    .. math::
        \text{saved} = \sum_{\text{distinct storages } S} \text{nbytes}(S)

    measured with `torch.autograd.graph.saved_tensors_hooks`: every tensor autograd saves goes
    through the pack hook, and each storage is counted once (a `ReLU`'s output, saved by the
    `ReLU` and again as the next `Linear`'s input, is one storage). Storages of `parameters`
    (default: the parameters and buffers of `fn` when it is a module), and new storages that are
    casts of one of them, are counted apart (`SavedBytes`).
    Grad mode is the caller's: under `torch.no_grad()` nothing is saved. The output is dropped.

    Note: inside `torch.utils.checkpoint` (non-reentrant) the checkpoint's own hooks take over,
    so a checkpointed segment shows only the inputs the checkpoint keeps; its recomputation in
    the backward pass is not seen here. Under `torch.autocast` a layer saves a cast *copy* of
    its weight: a new storage, counted in `parameter_copies`.
    """
    _check_callable("fn", fn)
    keys = _parameter_keys(fn, parameters)
    with _recording_saved_tensors() as saved:
        fn(*args, **kwargs)
    return _summary(saved, keys)


def mlp(widths: Sequence[int], dropout: float = 0.0, *, activation: type[nn.Module] = nn.ReLU,
        bias: bool = True, device=None, dtype=None) -> nn.Sequential:
    r"""`Linear(d_0, d_1), ReLU, [Dropout], ..., Linear(d_{L-1}, d_L)`: widths $d_0 .. d_L$.

    A hidden layer is `Linear`, `activation()` and, with `dropout > 0`, `Dropout(dropout)`; the
    last `Linear` has no activation. Initialised by torch (seed it for repeatable weights).
    """
    widths = [_check_int("every width", w, 1) for w in widths]
    if len(widths) < 2:
        raise ValueError(f"expected at least two widths (input and output), but got {widths}")
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(d_in, d_out, bias=bias, device=device, dtype=dtype))
        if i < len(widths) - 2:
            layers.append(activation())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


_SAVES_OUTPUT = (nn.ReLU, nn.Tanh, nn.Sigmoid)  # derivative from the output: y>0, 1-y^2, y(1-y)
_SAVES_INPUT = (nn.GELU, nn.SiLU)  # backward from the input
_FUSED_DROPOUT_DEVICES = ("cuda", "xpu", "lazy", "privateuseone")  # mask saved as bool


def _leaf_modules(model: nn.Module) -> list[nn.Module]:
    if isinstance(model, nn.Sequential):
        return [leaf for child in model for leaf in _leaf_modules(child)]
    return [model]


def mlp_saved_bytes(model: nn.Sequential, input_shape: Sequence[int], *,
                    input_requires_grad: bool = False, device=None) -> SavedBytes:
    r"""What autograd saves during `model(input)`, counted by hand from what each layer saves.

    For an input of shape $(\dots, d)$ let $m$ be the number of rows (the product of the
    leading dimensions) and $b$ the bytes per element. Following the layers in order:

    * `Linear(d, d')` saves its input ($m d\, b$, unless that storage is saved already) when its
      weight needs a gradient, and its weight ($d d'\, b$, a parameter) when its input needs one
      (so the first layer saves no weight unless the input needs a gradient); never its bias;
    * `ReLU`, `Tanh`, `Sigmoid` save their output ($m d\, b$), which is then the next `Linear`'s
      input: one storage, saved twice; `GELU`, `SiLU` save their input instead;
    * `Dropout(p)` in training with $0 < p < 1$ computes `input * (mask / (1 - p))` and saves
      the scaled mask ($m d\, b$; CUDA's fused kernel saves a bool mask instead, $m d$ bytes),
      and its output is a new tensor; $p = 1$ saves a 0-dim zero; in eval mode, or with
      $p = 0$, it is the identity.

    A layer whose input does not need a gradient and whose parameters do not either saves
    nothing. `device` (default: the parameters') matters only for the dropout mask. Matches
    `saved_tensor_bytes(model, input)` exactly (tests and a registered check prove it).
    """
    layers = _leaf_modules(_module(model))
    shape = [_check_int("every input dimension", n, 1) for n in input_shape]
    first = next((p for p in model.parameters()), None)
    dtype = first.dtype if first is not None else torch.get_default_dtype()
    device = torch.device(device if device is not None else
                          first.device if first is not None else "cpu")
    itemsize = torch.empty((), dtype=dtype).element_size()
    rows = math.prod(shape[:-1])
    requires_grad, saved = bool(input_requires_grad), False  # saved: is the current tensor saved
    activations = storages = saves = 0
    weights: dict[int, Tensor] = {}  # the saved weights, each once (a tied weight is one)
    for layer in layers:
        width = shape[-1]
        if isinstance(layer, nn.Linear):
            if width != layer.in_features:
                raise ValueError(f"expected an input with {layer.in_features} features for "
                                 f"{layer}, but got {width}")
            if layer.weight.requires_grad:  # d loss / d W = grad_out^T x: saves x
                saves += 1
                if not saved:
                    activations, storages = activations + rows * width * itemsize, storages + 1
            if requires_grad:  # d loss / d x = grad_out W: saves W
                saves += 1
                if id(layer.weight) not in weights:
                    weights[id(layer.weight)] = layer.weight
                    storages += 1
            shape[-1] = layer.out_features
            requires_grad = requires_grad or any(p.requires_grad for p in layer.parameters())
            saved = False
        elif isinstance(layer, _SAVES_OUTPUT + _SAVES_INPUT):
            saves_output = isinstance(layer, _SAVES_OUTPUT)
            in_place = getattr(layer, "inplace", False)
            if requires_grad:
                saves += 1
                if not (saved and (in_place or not saves_output)):
                    activations, storages = activations + rows * width * itemsize, storages + 1
            saved = (requires_grad and saves_output) or (saved and in_place)
        elif isinstance(layer, nn.Dropout):
            if not layer.training or layer.p == 0:
                continue  # the identity: the same tensor goes on
            if requires_grad:
                if layer.p == 1:
                    mask = itemsize  # input * 0-dim zero
                elif device.type in _FUSED_DROPOUT_DEVICES:
                    mask = rows * width  # native_dropout's bool mask
                else:
                    mask = rows * width * itemsize  # bernoulli noise in the input's dtype
                activations, storages, saves = activations + mask, storages + 1, saves + 1
            saved = saved and layer.inplace
        else:
            raise TypeError(f"expected only Linear, {', '.join(m.__name__ for m in _SAVES_OUTPUT)}"
                            f", {', '.join(m.__name__ for m in _SAVES_INPUT)} and Dropout "
                            f"layers, but got {type(layer).__name__}")
    return SavedBytes(parameters=sum(w.untyped_storage().nbytes() for w in weights.values()),
                      activations=activations, storages=storages, saves=saves)


def training_step_memory(model: nn.Module, optimizer: torch.optim.Optimizer, input: Tensor,
                         target: Tensor, loss_fn: Callable = F.mse_loss, *,
                         autocast_dtype: torch.dtype | None = None) -> dict[str, int]:
    r"""Run one training step and measure each component of its memory, in bytes.

    Forward pass and loss (under `torch.autocast(input.device.type, autocast_dtype)` when
    `autocast_dtype` is given), `backward`, `optimizer.step()`; returns
    `{"parameters", "gradients", "optimizer_state", "saved_activations", "saved_parameters",
    "saved_parameter_copies"}`: the first three after the step (`model_state_bytes`), the
    others what the forward pass and the loss saved for the backward pass (`SavedBytes`).

    Under autocast the parameters, their gradients and the optimizer state stay float32 (the
    same bytes as without it); the saved activations take 2 bytes per element instead of 4, and
    a layer saves a 16-bit copy of its weight (2 bytes per element, extra) instead of the
    weight itself (no extra bytes).
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"expected a torch.optim.Optimizer, but got {type(optimizer).__name__}")
    keys = _parameter_keys(_module(model), None)
    autocast = (torch.autocast(input.device.type, dtype=autocast_dtype)
                if autocast_dtype is not None else nullcontext())
    with _recording_saved_tensors() as saved, autocast:
        loss = loss_fn(model(input), target)
    summary = _summary(saved, keys)
    saved.clear()
    loss.backward()
    optimizer.step()
    return {**model_state_bytes(model, optimizer), "saved_activations": summary.activations,
            "saved_parameters": summary.parameters,
            "saved_parameter_copies": summary.parameter_copies}


# --------------------------------------------------------------------------------------------
# Activation checkpointing
# --------------------------------------------------------------------------------------------


def deep_mlp(width: int, depth: int, *, device=None, dtype=None) -> nn.Sequential:
    """`depth` blocks `Sequential(Linear(width, width), ReLU())`: the layers that
    `checkpoint_sequential` cuts into segments. Initialised by torch (seed it first)."""
    width, depth = _check_int("width", width, 1), _check_int("depth", depth, 1)
    return nn.Sequential(*[nn.Sequential(nn.Linear(width, width, device=device, dtype=dtype),
                                         nn.ReLU()) for _ in range(depth)])


def _check_segments(model: nn.Sequential, segments: int) -> int:
    if not isinstance(model, nn.Sequential):
        raise TypeError(f"expected an nn.Sequential (its children are the layers to cut), but "
                        f"got {type(model).__name__}")
    segments = _check_int("segments", segments, 1)
    if segments > len(model):
        raise ValueError(f"expected at most {len(model)} segments for {len(model)} layers, but "
                         f"got {segments}")
    return segments


def sequential_forward(model: nn.Sequential, input: Tensor, segments: int = 1) -> Tensor:
    r"""`model(input)`, checkpointed in `segments` segments.

    `torch.utils.checkpoint.checkpoint_sequential(model, segments, input,
    use_reentrant=False)`: the first $s - 1$ segments of $\lfloor L/s \rfloor$ layers keep only
    their input and are recomputed in the backward pass; the last segment (the remaining
    layers) runs as usual. `segments=1` is the plain forward pass.
    """
    segments = _check_segments(model, segments)
    if segments == 1:
        return model(input)
    return checkpoint_sequential(model, segments, input, use_reentrant=False)


@contextmanager
def count_forward_calls(model: nn.Module) -> Iterator[Counter]:
    """Count the forward calls of each child of `model` inside the block (recomputations in a
    checkpointed backward pass included): `{child name: calls}`.

    Note: a call is counted when it starts (a forward *pre*-hook). A non-reentrant checkpoint
    stops its recomputation by raising an exception as soon as the last tensor it needs has
    been saved again (`torch.utils.checkpoint.set_checkpoint_early_stop`), inside the last
    layer's forward, so that layer's forward hook never fires although its work was done.
    """
    calls: Counter = Counter()
    handles = [child.register_forward_pre_hook(lambda *_, name=name: calls.update([name]))
               for name, child in _module(model).named_children()]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


@dataclass(frozen=True)
class CheckpointCost:
    """One forward and backward pass of `sequential_forward(model, input, segments)`.

    `saved`: what the forward pass saved for the backward pass; `forward_calls`: layer forward
    calls in the forward and the backward pass together; `gradients`: the gradients of
    $\\frac12\\lVert y \\rVert^2$ with respect to the model's parameters.
    """

    saved: SavedBytes
    forward_calls: int
    gradients: tuple[Tensor, ...]


def checkpoint_cost(model: nn.Sequential, input: Tensor, segments: int = 1) -> CheckpointCost:
    r"""Memory and compute of `sequential_forward(model, input, segments)`, measured exactly.

    The memory is `saved_tensor_bytes` of the forward pass; the compute is the number of layer
    forward calls (`count_forward_calls`), a count that is the same on every machine, unlike a
    time. The backward pass is that of $\frac12\lVert y\rVert^2$, through
    `torch.autograd.grad`, so `.grad` is left alone. For the `deep_mlp` of $L$ layers:
    `checkpoint_saved_activations` and `checkpoint_forward_calls` give both by hand.
    """
    segments = _check_segments(model, segments)
    params = [p for p in model.parameters() if p.requires_grad]
    keys = _parameter_keys(model, None)
    with count_forward_calls(model) as calls:
        with _recording_saved_tensors() as saved:
            output = sequential_forward(model, input, segments)
        summary = _summary(saved, keys)
        saved.clear()
        # d(||y||^2 / 2) / d theta
        gradients = torch.autograd.grad(0.5 * output.square().sum(), params)
    return CheckpointCost(summary, sum(calls.values()), gradients)


def _segment_layers(depth: int, segments: int) -> tuple[int, int]:
    """(layers per checkpointed segment, layers of the last segment) in checkpoint_sequential."""
    depth = _check_int("depth", depth, 1)
    segments = _check_int("segments", segments, 1)
    if segments > depth:
        raise ValueError(f"expected at most {depth} segments for {depth} layers, but got "
                         f"{segments}")
    size = depth // segments
    return size, depth - (segments - 1) * size


def checkpoint_saved_activations(depth: int, segments: int) -> int:
    r"""Activations the forward pass of a checkpointed `deep_mlp` saves, in layer outputs.

    .. math::
        M(s) = s + \Bigl(L - (s-1)\bigl\lfloor L/s \bigr\rfloor\Bigr)
        \;\approx\; s + \frac{L}{s}

    one input per segment (the checkpoints, and the last segment's first `Linear`), plus one
    `ReLU` output per layer of the last segment, which runs without checkpointing. $s = 1$
    gives $1 + L$: the input and every layer's output. Multiply by batch x width x bytes per
    element. In the backward pass segment $j$ is recomputed while the inputs of segments
    $1..j$ are kept: $j + \lfloor L/s \rfloor \le M(s)$, so $M(s)$ is the peak.
    """
    size, last = _segment_layers(depth, segments)
    # s segment inputs + the last segment's layer outputs
    return segments + last


def checkpoint_forward_calls(depth: int, segments: int) -> int:
    r"""Layer forward calls of a forward and a backward pass: $L + (s-1)\lfloor L/s \rfloor$.

    Every layer runs once in the forward pass, and the layers of the $s-1$ checkpointed
    segments once more in the backward pass: at most one extra forward pass.
    """
    size, _ = _segment_layers(depth, segments)
    # L + recomputed layers
    return depth + (segments - 1) * size


def best_segments(depth: int) -> int:
    r"""The number of segments that saves the least: $\arg\min_s M(s)$, near $\sqrt{L}$
    (the smallest such $s$ on a tie, the cheapest in recomputation)."""
    depth = _check_int("depth", depth, 1)
    return min(range(1, depth + 1), key=lambda s: (checkpoint_saved_activations(depth, s), s))


# --------------------------------------------------------------------------------------------
# Mixed precision and ZeRO: bytes per parameter
# --------------------------------------------------------------------------------------------

_PRECISIONS = ("float32", "mixed", "autocast")


def adam_training_bytes(num_parameters: int, precision: str = "float32", *,
                        num_tensors: int = 0) -> dict[str, int]:
    r"""Bytes of the model states of training $N$ parameters with Adam, per component.

    .. math::
        \text{float32:}\quad & 4N + 4N + (4 + 4)N = 16N \\
        \text{mixed:}\quad & 2N + 2N + (4 + 4 + 4)N = 16N \quad(K = 12) \\
        \text{autocast:}\quad & 4N + 4N + (4 + 4)N = 16N

    as `{"parameters", "gradients", "optimizer_state"}`. float32: parameters, gradients,
    `exp_avg` and `exp_avg_sq`. "mixed" is the ZeRO paper's mixed-precision training: 16-bit
    parameters and gradients, and an optimizer state of a float32 master copy of the
    parameters plus the two float32 moments. "autocast" (`torch.autocast`): the parameters stay
    float32 and are cast for each operation, so the model states are float32's; the saving is
    in the activations (`training_step_memory` measures it). `num_tensors` adds torch's 0-dim
    float32 `step` tensor per parameter tensor ($4T$ bytes, which the paper leaves out).
    """
    n = _check_int("num_parameters", num_parameters, 0)
    steps = 4 * _check_int("num_tensors", num_tensors, 0)
    if precision not in _PRECISIONS:
        raise ValueError(f"expected precision in {_PRECISIONS}, but got {precision!r}")
    if precision == "mixed":
        # 2N (16-bit) + 2N (16-bit) + (4 master + 4 exp_avg + 4 exp_avg_sq) N
        return {"parameters": 2 * n, "gradients": 2 * n, "optimizer_state": 12 * n + steps}
    # 4N + 4N + (4 exp_avg + 4 exp_avg_sq) N
    return {"parameters": 4 * n, "gradients": 4 * n, "optimizer_state": 8 * n + steps}


ZERO_STAGES = {0: "no sharding (data parallel)", 1: "P_os: optimizer state sharded",
               2: "P_os+g: optimizer state and gradients sharded",
               3: "P_os+g+p: optimizer state, gradients and parameters sharded"}
"""ZeRO's stages (Rajbhandari et al. 2020, Fig. 1); 0 is plain data parallelism."""


def zero_bytes_per_device(num_parameters: int, num_devices: int, stage: int, *,
                          optimizer_state_multiplier: int = 12) -> dict[str, float]:
    r"""Bytes of model states per device under ZeRO stage 0..3 (Rajbhandari et al. 2020).

    .. math::
        \text{stage 0:}\ (2 + 2 + K)\Psi, \quad
        \text{1:}\ 2\Psi + 2\Psi + \frac{K\Psi}{N_d}, \quad
        \text{2:}\ 2\Psi + \frac{(2 + K)\Psi}{N_d}, \quad
        \text{3:}\ \frac{(2 + 2 + K)\Psi}{N_d}

    for $\Psi$ = `num_parameters` in mixed precision (2-byte parameters and gradients), $K$ =
    `optimizer_state_multiplier` bytes of optimizer state per parameter (12 for Adam), $N_d$ =
    `num_devices`; as `{"parameters", "gradients", "optimizer_state"}`. The paper's Fig. 1:
    $\Psi = 7.5$ B, $N_d = 64$ gives 120 GB, 31.4 GB, 16.6 GB and 1.9 GB.

    Note: a shard is an exact fraction $\Psi / N_d$ here (real implementations pad to equal
    shards); activations, temporary buffers and fragmentation are not model states.
    """
    psi = _check_int("num_parameters", num_parameters, 0)
    devices = _check_int("num_devices", num_devices, 1)
    k = _check_int("optimizer_state_multiplier", optimizer_state_multiplier, 0)
    if isinstance(stage, bool) or not isinstance(stage, numbers.Integral):
        raise TypeError(f"expected the ZeRO stage as an int in {sorted(ZERO_STAGES)}, but got "
                        f"{type(stage).__name__} {stage!r}")
    if stage not in ZERO_STAGES:
        raise ValueError(f"expected a ZeRO stage in {sorted(ZERO_STAGES)}, but got {stage!r}")
    # stage s shards the optimizer state from s >= 1, the gradients from 2, the parameters at 3
    share = {part: 1 / devices if stage >= first else 1.0
             for part, first in (("optimizer_state", 1), ("gradients", 2), ("parameters", 3))}
    # 2 Psi parameters, 2 Psi gradients, K Psi optimizer state, each divided by N_d once sharded
    return {"parameters": 2 * psi * share["parameters"],
            "gradients": 2 * psi * share["gradients"],
            "optimizer_state": k * psi * share["optimizer_state"]}


FSDP_SHARDING_STAGES = {"NO_SHARD": 0, "SHARD_GRAD_OP": 2, "FULL_SHARD": 3}
"""`torch.distributed.fsdp.ShardingStrategy` names and the ZeRO stage each one is."""


def fsdp_bytes_per_device(num_parameters: int, num_devices: int,
                          sharding_strategy: str = "FULL_SHARD", *,
                          optimizer_state_multiplier: int = 12) -> dict[str, float]:
    """`zero_bytes_per_device` for an FSDP sharding strategy: `FULL_SHARD` (FSDP's default) is
    stage 3, `SHARD_GRAD_OP` stage 2, `NO_SHARD` stage 0 (DDP).

    Note: `HYBRID_SHARD` (full sharding inside a node, replication across nodes) is not
    covered: it needs the number of devices per node.
    """
    name = getattr(sharding_strategy, "name", sharding_strategy)  # the enum member or its name
    if name not in FSDP_SHARDING_STAGES:
        raise ValueError(f"expected a sharding strategy in {list(FSDP_SHARDING_STAGES)}, but got "
                         f"{sharding_strategy!r}")
    return zero_bytes_per_device(num_parameters, num_devices, FSDP_SHARDING_STAGES[name],
                                 optimizer_state_multiplier=optimizer_state_multiplier)


_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def format_bytes(num_bytes: float, *, binary: bool = False, digits: int = 1) -> str:
    r"""'31.4 GB': decimal units by default, 1 GB = $10^9$ bytes as the ZeRO paper counts;
    `binary=True` gives 1 GiB = $2^{30}$ bytes, as `nvidia-smi` and torch's memory summaries
    count. Below 1 kB (KiB) the bytes are shown whole ('512 B')."""
    if isinstance(num_bytes, bool) or not isinstance(num_bytes, numbers.Real):
        raise TypeError(f"expected a number of bytes, but got {type(num_bytes).__name__}")
    if not num_bytes >= 0 or math.isinf(num_bytes):
        raise ValueError(f"expected a finite number of bytes >= 0, but got {num_bytes!r}")
    digits = _check_int("digits", digits, 0)
    base, units = (1024, _BINARY_UNITS) if binary else (1000, _DECIMAL_UNITS)
    # the largest unit u with base^u <= num_bytes
    power = 0
    while power + 1 < len(units) and num_bytes >= base ** (power + 1):
        power += 1
    # 999 999 B is '1.0 MB', not '1000.0 kB': the next unit up when the rounding reaches it
    if power and power + 1 < len(units) and round(num_bytes / base ** power, digits) >= base:
        power += 1
    if power == 0:
        return f"{num_bytes:.0f} B"
    return f"{num_bytes / base ** power:.{digits}f} {units[power]}"


# --------------------------------------------------------------------------------------------
# Checks against torch (`python -m helpers.verify -k accumulation`)
# --------------------------------------------------------------------------------------------


def _linear_from(weight: Tensor, bias: Tensor) -> nn.Linear:
    """A Linear layer holding copies of `weight` and `bias` (no random initialisation drawn)."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], device="meta")
    layer.weight = nn.Parameter(weight.detach().clone())
    layer.bias = nn.Parameter(bias.detach().clone())
    return layer


def _mlp_from(weights: Sequence[Tensor], biases: Sequence[Tensor],
              activation: type[nn.Module] = nn.Tanh, dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(zip(weights, biases)):
        layers.append(_linear_from(w, b))
        if i < len(weights) - 1:
            layers.append(activation())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def _mlp_problem(generator: torch.Generator, widths: Sequence[int], batch: int,
                 classes: int | None = None) -> dict:
    """Weights, biases, a batch of inputs and targets (regression, or classes)."""
    weights = [torch.randn(d_out, d_in, generator=generator, dtype=torch.float64) / d_in ** 0.5
               for d_in, d_out in zip(widths[:-1], widths[1:])]
    biases = [0.1 * torch.randn(d_out, generator=generator, dtype=torch.float64)
              for d_out in widths[1:]]
    x = torch.randn(batch, widths[0], generator=generator, dtype=torch.float64)
    y = (torch.randint(classes, (batch,), generator=generator) if classes else
         torch.randn(batch, widths[-1], generator=generator, dtype=torch.float64))
    return {"weights": weights, "biases": biases, "x": x, "y": y}


def _gradients(model: nn.Module) -> tuple[Tensor, ...]:
    return tuple(p.grad for p in model.parameters())


@torch.enable_grad()
def _accumulated_gradients(weights, biases, x, y, *, loss_fn, micro_batches):
    model = _mlp_from(weights, biases)
    loss = accumulate_gradients(model, loss_fn, x, y, micro_batches)
    return loss, _gradients(model)


@torch.enable_grad()
def _big_batch_gradients(weights, biases, x, y, *, loss_fn, micro_batches):
    model = _mlp_from(weights, biases)
    loss = loss_fn(model(x), y)
    loss.backward()
    return loss.detach(), _gradients(model)


def _accumulation_check(name: str, loss_fn: Callable, micro_batches, classes=None) -> Check:
    def inputs(generator):
        return _mlp_problem(generator, (6, 10, 3), 16, classes)

    options = dict(loss_fn=loss_fn, micro_batches=micro_batches)
    return Check(name, lambda **kw: _accumulated_gradients(**kw, **options),
                 lambda **kw: _big_batch_gradients(**kw, **options), inputs,
                 dtypes=(torch.float64, torch.float32))


def _deep_problem(generator: torch.Generator) -> dict:
    problem = _mlp_problem(generator, (12,) * 9, 10)
    return {"weights": problem["weights"], "biases": problem["biases"], "x": problem["x"]}


@torch.enable_grad()
def _deep_gradients(weights, biases, x, segments):
    blocks = [nn.Sequential(_linear_from(w, b), nn.ReLU()) for w, b in zip(weights, biases)]
    return checkpoint_cost(nn.Sequential(*blocks), x, segments).gradients


def _saved_bytes_problem(generator: torch.Generator) -> dict:
    problem = _mlp_problem(generator, (5, 7, 6, 3), 9)
    return {"weights": problem["weights"], "biases": problem["biases"], "x": problem["x"]}


def _saved_bytes_by_hand(weights, biases, x):
    model = _mlp_from(weights, biases, nn.ReLU, dropout=0.5)
    counts = mlp_saved_bytes(model, x.shape, device=x.device)
    return torch.tensor([counts.parameters, counts.activations, counts.storages, counts.saves])


def _saved_bytes_measured(weights, biases, x):
    model = _mlp_from(weights, biases, nn.ReLU, dropout=0.5)
    devices = [] if x.device.type == "cpu" else [x.device]  # the masks leave torch's seed alone
    with torch.random.fork_rng(devices, device_type=x.device.type), torch.enable_grad():
        counts = saved_tensor_bytes(model, x)  # a training step's count, also under no_grad
    return torch.tensor([counts.parameters, counts.activations, counts.storages, counts.saves])


MEMORY_CHECKS = (
    _accumulation_check("gradient accumulation, micro-batches of 7+5+4 (mse_loss)",
                        F.mse_loss, [7, 5, 4]),
    _accumulation_check("gradient accumulation, k=3 micro-batches (cross_entropy)",
                        F.cross_entropy, 3, classes=3),
    Check("checkpoint_sequential gradients, 8 layers, 3 segments",
          lambda **kw: _deep_gradients(**kw, segments=3),
          lambda **kw: _deep_gradients(**kw, segments=1), _deep_problem,
          dtypes=(torch.float64, torch.float32)),
    Check("saved-for-backward bytes of an MLP: by hand vs saved_tensors_hooks",
          _saved_bytes_by_hand, _saved_bytes_measured,
          _saved_bytes_problem,
          tolerances={torch.float64: EXACT, torch.float32: EXACT, torch.float16: EXACT}),
)
"""Accumulated vs big-batch gradients (and losses); checkpointed vs plain gradients; the
by-hand count of saved bytes vs torch's hooks (integers: exact)."""

register(*MEMORY_CHECKS)
