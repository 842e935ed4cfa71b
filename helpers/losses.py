r"""Loss functions written by hand, with the signatures, defaults and semantics of
`torch.nn.functional` (and of `torchvision.ops` for the focal loss of chapter 10).

Notation (chapters 01 and 02): $x$ is the input (predictions or logits), $y$ the target, $N$ the
number of elements or samples, $C$ the number of classes, $p = \operatorname{softmax}(x)$.

Deliberate difference from torch: `mse_loss` refuses input and target of different shapes with a
`ValueError` that explains, where torch only warns and broadcasts (predictions of shape (N, 1)
against targets of shape (N,) silently become an (N, N) loss). A scalar target is refused too.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

from helpers.verify import Check, Tolerance, register

REDUCTIONS = ("none", "mean", "sum")


# --------------------------------------------------------------------------------------------
# Checking arguments: errors that say what was expected and what came
# --------------------------------------------------------------------------------------------


def _check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"expected reduction to be one of {REDUCTIONS}, but got {reduction!r}")


def _check_floating(name: str, tensor) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected {name} to be a torch.Tensor, but got {type(tensor).__name__}")
    if not tensor.is_floating_point():
        raise TypeError(f"expected {name} of a floating dtype, but got {tensor.dtype}")


def _shape(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half-precision inputs of softmax, log-softmax, softplus and cross-entropy are computed in
    float32 and rounded back. Note: torch's CPU float16 log-softmax rounds its intermediate sum
    to float16 (ours can differ from it by a few float16 steps, within the half-precision
    tolerance, and is closer to the exact value), and torch's float16 cross-entropy sums the
    batch in float16 (a mean over many samples can overflow to inf where ours stays finite)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """'none' keeps every element, 'sum' adds them, 'mean' divides the sum by their number."""
    if reduction == "none":
        return loss
    return loss.sum() if reduction == "sum" else loss.mean()


# --------------------------------------------------------------------------------------------
# Mean squared error (chapter 01)
# --------------------------------------------------------------------------------------------


def mse_loss(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    r"""Mean squared error, as `torch.nn.functional.mse_loss`.

    .. math::
        \ell_i = (x_i - y_i)^2, \qquad
        \text{mean: } \frac{1}{N}\sum_{i=1}^{N} \ell_i, \qquad \text{sum: } \sum_{i=1}^{N} \ell_i

    Input and target must have the same shape. Note: torch only warns when they differ and then
    broadcasts, so that an input of shape (N,) and a target of shape (N, 1) give, without an
    error, the mean over an (N, N) matrix of every prediction against every target; we raise
    instead. Mixed floating dtypes are promoted, as in torch. A second Note: an integer target
    is refused (torch promotes it to the input's dtype); write `target.float()` so the cast is
    visible.
    """
    _check_floating("input", input)
    _check_floating("target", target)
    _check_reduction(reduction)
    if input.shape != target.shape:
        raise ValueError(
            f"expected target of the input's shape {_shape(input)}, but got {_shape(target)}; "
            "torch would broadcast the two shapes against each other ((N, 1) and (N,) become an "
            "(N, N) loss): reshape one of them")
    return _reduce((input - target) ** 2, reduction)


def mse_loss_grad(input: torch.Tensor, target: torch.Tensor, reduction: str = "mean",
                  grad_output: torch.Tensor | None = None) -> torch.Tensor:
    r"""The gradient of `mse_loss` with respect to its input, derived by hand.

    .. math::
        \frac{\partial}{\partial x_i}\,\frac{1}{N}\sum_j (x_j - y_j)^2 = \frac{2}{N}(x_i - y_i)

    (without the $1/N$ for 'sum'; for 'none' each $\ell_i$ depends on $x_i$ alone). The result is
    multiplied by `grad_output`, the gradient arriving from above (1 by default; for 'none' a
    tensor of the input's shape).
    """
    mse_loss(input, target, reduction)  # the same checks as the loss itself
    grad = 2 * (input - target)
    if reduction == "mean":
        grad = grad / input.numel()
    return grad if grad_output is None else grad * grad_output


# --------------------------------------------------------------------------------------------
# Softmax and log-softmax (chapter 02)
# --------------------------------------------------------------------------------------------


def _stable_max(input: torch.Tensor, dim: int) -> torch.Tensor:
    """The row maximum to subtract, as a constant; 0 for a row of -inf (whose result is nan
    anyway), so that -inf - -inf does not appear. A row holding +inf gives nan, as in torch.
    An empty class dimension has no maximum: 0 then, and the result is empty, as torch's."""
    if input.dim() and input.size(dim) == 0:
        shape = list(input.shape)
        shape[dim] = 1
        return input.new_zeros(shape)
    m = input.detach().amax(dim=dim, keepdim=True)
    return torch.where(m == -torch.inf, torch.zeros_like(m), m)


def _softmax_input(name: str, input: torch.Tensor, dim, dtype: torch.dtype | None):
    """(input in the dtype to compute in, the dtype of the result), checked. As torch, `dtype`
    casts the input first (so an integer tensor with dtype=torch.float32 is accepted), and half
    precision is computed in float32 after that cast. `dim=None` is refused (see the Note)."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"expected input to be a torch.Tensor, but got {type(input).__name__}")
    if dim is None:
        raise TypeError(f"expected dim to be an int, but got None; {name} needs the dimension of "
                        "the classes (dim=1 for logits of shape (N, C)). torch's dim=None is "
                        "deprecated: it warns and guesses dim 0 for 0-, 1- and 3-D inputs, else 1")
    if dtype is not None:
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"expected dtype to be a floating torch.dtype, but got {dtype}")
        input = input.to(dtype)  # the cast comes first, as in torch
    if not input.is_floating_point():
        raise TypeError(f"expected input of a floating dtype, but got {input.dtype}; pass "
                        "dtype=torch.float32 (or float64) to cast it first")
    return input.to(_compute_dtype(input.dtype)), input.dtype


def log_softmax(input: torch.Tensor, dim: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    r"""Log-softmax along `dim`, with the log-sum-exp trick, as `torch.nn.functional.log_softmax`.

    .. math::
        \log p_c = x_c - \log\sum_k e^{x_k} = (x_c - m) - \log\sum_k e^{x_k - m},
        \qquad m = \max_k x_k

    Subtracting $m$ changes nothing mathematically, but the largest exponent becomes $e^0 = 1$:
    nothing overflows, and the sum is at least 1, so its log is finite. `dtype` casts the input
    before anything else (an integer tensor is accepted with a floating `dtype`), as in torch.

    Note: torch also accepts `dim=None`, with a deprecation warning and a guess of the dimension
    (dim 0 for 0-, 1- and 3-D inputs, else 1: the batch dimension of an (N, C, L) input); we
    raise a TypeError instead and require `dim`.
    """
    x, dtype = _softmax_input("log_softmax", input, dim, dtype)
    shifted = x - _stable_max(x, dim)
    return (shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))).to(dtype)


def softmax(input: torch.Tensor, dim: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    r"""Softmax along `dim`, shifted by the maximum, as `torch.nn.functional.softmax`.

    .. math::
        p_c = \frac{e^{x_c}}{\sum_k e^{x_k}} = \frac{e^{x_c - m}}{\sum_k e^{x_k - m}},
        \qquad m = \max_k x_k

    `dtype` casts first, and `dim=None` is refused, as for `log_softmax`.
    """
    x, dtype = _softmax_input("softmax", input, dim, dtype)
    exps = torch.exp(x - _stable_max(x, dim))
    return (exps / exps.sum(dim=dim, keepdim=True)).to(dtype)


# --------------------------------------------------------------------------------------------
# Cross-entropy (chapter 02)
# --------------------------------------------------------------------------------------------


def _is_probability_target(input: torch.Tensor, target: torch.Tensor) -> bool:
    """torch's rule: a floating target of the input's own shape holds class probabilities."""
    return target.is_floating_point() and target.shape == input.shape


def _check_cross_entropy(input, target, weight, ignore_index, reduction,
                         label_smoothing) -> int:
    """Every argument of `cross_entropy` checked; returns the class dimension."""
    _check_floating("input", input)
    _check_reduction(reduction)
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"expected target to be a torch.Tensor, but got {type(target).__name__}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"expected label_smoothing in [0, 1], but got {label_smoothing}")
    if input.dim() == 0:
        raise ValueError("expected input logits of shape (C,), (N, C) or (N, C, d1, ...), but "
                         "got a scalar")
    class_dim = 0 if input.dim() == 1 else 1
    n_classes = input.shape[class_dim]
    if weight is not None:
        _check_floating("weight", weight)
        if weight.shape != (n_classes,):
            raise ValueError(f"expected weight of shape ({n_classes},), one per class, but got "
                             f"{_shape(weight)}")
        if weight.dtype != input.dtype:
            raise TypeError(f"expected weight of the input's dtype {input.dtype}, but got "
                            f"{weight.dtype}")
    if _is_probability_target(input, target):
        if ignore_index >= 0:
            raise ValueError(f"ignore_index={ignore_index} applies to class-index targets only, "
                             "but the target holds class probabilities")
        return class_dim
    index_shape = _shape(input)[:class_dim] + _shape(input)[class_dim + 1:]
    if target.dtype not in (torch.int64, torch.uint8) or target.shape != index_shape:
        raise (TypeError if target.shape == index_shape else ValueError)(
            f"expected class indices of dtype torch.long (or torch.uint8) of shape "
            f"{index_shape}, or class probabilities of the input's shape {_shape(input)}, but "
            f"got {target.dtype} of shape {_shape(target)}")
    used = target[target != ignore_index]
    outside = used[(used < 0) | (used >= n_classes)]
    if outside.numel():
        raise ValueError(
            f"expected class indices in [0, {n_classes - 1}] (or ignore_index={ignore_index}), "
            f"but got {outside[0].item()}")
    return class_dim


def _along(tensor: torch.Tensor, class_dim: int, ndim: int) -> torch.Tensor:
    """A per-class vector shaped to broadcast along the class dimension of an ndim tensor."""
    return tensor.view((-1,) + (1,) * (ndim - class_dim - 1))


def _target_distribution(input, target, weight, ignore_index, label_smoothing, class_dim,
                         dtype) -> torch.Tensor:
    r"""$w_c\,q_{n,c}$: the smoothed target distribution of every sample, times the class
    weights; zero for ignored samples."""
    n_classes = input.shape[class_dim]
    if _is_probability_target(input, target):
        q = (1 - label_smoothing) * target.to(dtype) + label_smoothing / n_classes
    else:
        kept = target != ignore_index
        one_hot = F.one_hot(torch.where(kept, target, 0).long(), n_classes).to(dtype)
        q = (1 - label_smoothing) * one_hot.movedim(-1, class_dim) + label_smoothing / n_classes
        q = q * kept.unsqueeze(class_dim)
    return q if weight is None else _along(weight.to(dtype), class_dim, input.dim()) * q


def _mean_denominator(input, target, weight, ignore_index, class_dim, dtype) -> torch.Tensor:
    """What 'mean' divides by: the number of samples for probability targets; for class indices
    the total weight of the kept targets, sum_n w_{y_n} (their count when unweighted)."""
    if _is_probability_target(input, target):
        return torch.tensor(input.numel() / input.shape[class_dim], dtype=dtype)
    kept = target != ignore_index
    if weight is None:
        return kept.sum().to(dtype)
    return torch.where(kept, weight[torch.where(kept, target, 0).long()], 0).to(dtype).sum()


def cross_entropy(input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None,
                  ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> torch.Tensor:
    r"""Cross-entropy between logits and a target, as `torch.nn.functional.cross_entropy`.

    `input` holds logits of shape (C,), (N, C) or (N, C, d1, ...). `target` holds either class
    indices (an integer tensor of the input's shape without C) or class probabilities (a floating
    tensor of the input's shape). With $\varepsilon$ = `label_smoothing` and class weights $w$
    (all 1 by default), every sample compares $\log p = \operatorname{log\_softmax}(x)$ with a
    smoothed target distribution $q$:

    .. math::
        \ell_n = -\sum_{c=1}^{C} w_c\, q_{n,c} \log p_{n,c}, \qquad
        q_{n,c} = (1-\varepsilon)\, t_{n,c} + \frac{\varepsilon}{C},

    where $t_n$ is the one-hot vector of class $y_n$, or the given probabilities. For class
    indices, samples whose target is `ignore_index` contribute nothing, and 'mean' divides by
    the total weight of the remaining targets, $\sum_n w_{y_n}$ (torch's normalisation; the
    plain count when unweighted). For probability targets, 'mean' divides by the number of
    samples; a non-negative `ignore_index` raises, and a negative one (the default -100) is
    accepted and has no effect, as in torch.
    """
    class_dim = _check_cross_entropy(input, target, weight, ignore_index, reduction,
                                     label_smoothing)
    out_dtype = input.dtype
    if _is_probability_target(input, target):  # as in torch, a float64 target promotes
        out_dtype = torch.promote_types(input.dtype, target.dtype)
    dtype = _compute_dtype(out_dtype)
    log_p = log_softmax(input, dim=class_dim).to(dtype)
    if weight is not None:
        log_p = _along(weight.to(dtype), class_dim, input.dim()) * log_p  # w_c log p_c
    if _is_probability_target(input, target):
        q = (1 - label_smoothing) * target.to(dtype) + label_smoothing / input.shape[class_dim]
        loss = -(q * log_p).sum(dim=class_dim)
    else:  # pick -w_y log p_y with gather: a one-hot product would turn 0 * -inf into nan
        kept = target != ignore_index
        picked = torch.where(kept, target, 0).long().unsqueeze(class_dim)
        loss = -(1 - label_smoothing) * log_p.gather(class_dim, picked).squeeze(class_dim)
        if label_smoothing > 0:  # every class also gets eps / C of the target mass
            loss = loss - label_smoothing / input.shape[class_dim] * log_p.sum(dim=class_dim)
        loss = torch.where(kept, loss, torch.zeros_like(loss))
    if reduction == "mean":
        denominator = _mean_denominator(input, target, weight, ignore_index, class_dim, dtype)
        return (loss.sum() / denominator).to(out_dtype)
    return _reduce(loss, reduction).to(out_dtype)


def cross_entropy_grad(input: torch.Tensor, target: torch.Tensor,
                       weight: torch.Tensor | None = None, ignore_index: int = -100,
                       reduction: str = "mean", label_smoothing: float = 0.0,
                       grad_output: torch.Tensor | None = None) -> torch.Tensor:
    r"""The gradient of `cross_entropy` with respect to the logits, derived by hand.

    With $\tilde q_{n,c} = w_c q_{n,c}$ the weighted smoothed target of sample $n$ (zero for an
    ignored sample) and $p_n = \operatorname{softmax}(x_n)$:

    .. math::
        \frac{\partial \ell_n}{\partial x_{n,k}} = p_{n,k} \sum_c \tilde q_{n,c} - \tilde q_{n,k}

    which is the familiar $p - \text{one-hot}$ when there are no weights and no smoothing. 'sum'
    adds the samples' gradients, 'mean' divides them by the same denominator as the loss, and the
    result is multiplied by `grad_output` (for 'none', one value per sample).
    """
    class_dim = _check_cross_entropy(input, target, weight, ignore_index, reduction,
                                     label_smoothing)
    q = _target_distribution(input, target, weight, ignore_index, label_smoothing, class_dim,
                             input.dtype)
    grad = softmax(input, dim=class_dim) * q.sum(dim=class_dim, keepdim=True) - q
    if reduction == "mean":
        denominator = _mean_denominator(input, target, weight, ignore_index, class_dim,
                                        input.dtype)
        # every target ignored: the loss is 0/0 = nan, yet nothing pulls on the logits, and
        # torch's gradient is 0, so the zero gradient is kept as it is
        grad = grad / denominator if denominator != 0 else grad
    if grad_output is not None:
        grad = grad * (grad_output.unsqueeze(class_dim) if reduction == "none" else grad_output)
    return grad


# --------------------------------------------------------------------------------------------
# Binary cross-entropy with logits (chapter 02)
# --------------------------------------------------------------------------------------------


def softplus(input: torch.Tensor, beta: float = 1.0, threshold: float = 20.0) -> torch.Tensor:
    r"""Softplus, as `torch.nn.functional.softplus`.

    .. math::
        \operatorname{softplus}(x) = \frac{1}{\beta}\log\bigl(1 + e^{\beta x}\bigr)
        = \frac{1}{\beta}\Bigl(\max(\beta x, 0) + \log\bigl(1 + e^{-|\beta x|}\bigr)\Bigr)

    The second form never overflows and keeps full precision for very negative inputs, where
    $1 + e^{\beta x}$ would round to 1. Like torch, it returns $x$ itself where $\beta x >$
    `threshold`. The two sides of the max are chosen with `where` rather than `clamp` / `abs`, so
    that autograd gives the true derivative $\sigma(\beta x)$ at the kink $x = 0$ as well
    (`clamp` and `abs` would give 1 and 0 there).
    """
    _check_floating("input", input)
    z = beta * input.to(_compute_dtype(input.dtype))
    positive = z > 0
    exp_minus_abs = torch.exp(torch.where(positive, -z, z))  # e^{-|z|} <= 1: cannot overflow
    stable = (torch.where(positive, z, 0.0) + torch.log1p(exp_minus_abs)) / beta
    return torch.where(z > threshold, input, stable.to(input.dtype))


def binary_cross_entropy_with_logits(input: torch.Tensor, target: torch.Tensor,
                                     weight: torch.Tensor | None = None, reduction: str = "mean",
                                     pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    r"""Binary cross-entropy on logits, as `torch.nn.functional.binary_cross_entropy_with_logits`.

    With $\sigma$ the sigmoid, $\log\sigma(x) = -\operatorname{softplus}(-x)$ and
    $\log(1 - \sigma(x)) = -\operatorname{softplus}(x)$, so

    .. math::
        \ell_i = -w_i\bigl[p\,y_i \log\sigma(x_i) + (1 - y_i)\log(1 - \sigma(x_i))\bigr]
               = w_i\bigl[p\,y_i\operatorname{softplus}(-x_i)
                 + (1 - y_i)\operatorname{softplus}(x_i)\bigr]

    never takes the log of a rounded probability. `weight` ($w$) broadcasts against the input;
    `pos_weight` ($p$, one value per class, broadcast along the last dimension) scales the
    positive term. 'mean' averages over every element.
    """
    _check_floating("input", input)
    _check_floating("target", target)
    _check_reduction(reduction)
    if target.shape != input.shape:
        raise ValueError(f"expected target of the input's shape {_shape(input)}, but got "
                         f"{_shape(target)}")
    dtype = torch.promote_types(input.dtype, target.dtype)  # torch: the target may promote,
    x, y = input.to(dtype), target.to(dtype)  # weight and pos_weight follow the result
    positive_term = y * softplus(-x, threshold=float("inf"))  # -y log sigma(x)
    if pos_weight is not None:
        _check_broadcasts("pos_weight", pos_weight, input, f"e.g. shape ({input.shape[-1]},)")
        positive_term = pos_weight.to(dtype) * positive_term
    loss = positive_term + (1 - y) * softplus(x, threshold=float("inf"))  # -(1-y) log(1-sigma)
    if weight is not None:
        _check_broadcasts("weight", weight, input, "e.g. the input's shape")
        loss = weight.to(dtype) * loss
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits_grad(input: torch.Tensor, target: torch.Tensor,
                                          weight: torch.Tensor | None = None,
                                          reduction: str = "mean",
                                          pos_weight: torch.Tensor | None = None,
                                          grad_output: torch.Tensor | None = None) -> torch.Tensor:
    r"""The gradient of `binary_cross_entropy_with_logits` with respect to the logits, by hand.

    From $\operatorname{softplus}'(x) = \sigma(x)$ and $\operatorname{softplus}'(-x) \cdot (-1)
    = \sigma(x) - 1$:

    .. math::
        \frac{\partial \ell_i}{\partial x_i} = w_i\bigl[p\,y_i(\sigma(x_i) - 1)
            + (1 - y_i)\,\sigma(x_i)\bigr] = w_i\bigl[\sigma(x_i)(1 - y_i + p\,y_i) - p\,y_i\bigr]

    which is $\sigma(x) - y$ without weights. 'mean' divides by the number of elements; the result
    is multiplied by `grad_output` (for 'none', a tensor of the input's shape).
    """
    binary_cross_entropy_with_logits(input, target, weight, reduction, pos_weight)  # its checks
    dtype = torch.promote_types(input.dtype, target.dtype)
    x, y = input.to(dtype), target.to(dtype)
    p_y = y if pos_weight is None else pos_weight.to(dtype) * y
    grad = torch.sigmoid(x) * (1 - y + p_y) - p_y
    if weight is not None:
        grad = weight.to(dtype) * grad
    if reduction == "mean":
        grad = grad / input.numel()
    return grad if grad_output is None else grad * grad_output


def _check_broadcasts(name: str, tensor, input: torch.Tensor, example: str) -> None:
    """`tensor` must broadcast to the input's shape without enlarging it."""
    _check_floating(name, tensor)
    try:
        fits = torch.broadcast_shapes(tensor.shape, input.shape) == input.shape
    except RuntimeError:
        fits = False
    if not fits:
        raise ValueError(f"expected {name} to broadcast to the input's shape {_shape(input)} "
                         f"({example}), but got {_shape(tensor)}")


# --------------------------------------------------------------------------------------------
# Focal loss (chapter 10)
# --------------------------------------------------------------------------------------------


def sigmoid_focal_loss(inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                       gamma: float = 2, reduction: str = "none") -> torch.Tensor:
    r"""Focal loss on logits (Lin et al., 2017, for RetinaNet), as
    `torchvision.ops.sigmoid_focal_loss`.

    With $p = \sigma(x)$, write $p_t$ for the probability the model gives the true label, and
    $\alpha_t$ for that label's weight:

    .. math::
        p_t = p\,y + (1 - p)(1 - y), \qquad \alpha_t = \alpha\,y + (1 - \alpha)(1 - y)

    ($p_t = p$ for a positive $y = 1$, $1 - p$ for a negative $y = 0$). Binary cross-entropy is
    $-\log p_t$; the focal loss multiplies it by the modulating factor $(1 - p_t)^\gamma$:

    .. math::
        \mathrm{FL}(p_t) = -\alpha_t\,(1 - p_t)^\gamma \log p_t
        \quad\text{computed as}\quad
        \ell_i = \alpha_t\,(1 - p_t)^\gamma\,\mathrm{BCE}(x_i, y_i)

    An example the model already gets right, $p_t = 0.9$, keeps $(0.1)^2 = 1\%$ of its loss at
    $\gamma = 2$, while a hard one, $p_t = 0.1$, keeps 81 %: the many easy negatives of an
    imbalanced problem stop drowning the few hard examples. $\alpha$ weighs the positive class
    ($1 - \alpha$ the negative one); `alpha=-1` turns the weighting off. With `gamma=0` and
    `alpha=-1` every factor is 1 and the focal loss *is* `binary_cross_entropy_with_logits`
    (reduction 'none' by default here, as in torchvision).

    Stability: $-\log p_t$ comes from `binary_cross_entropy_with_logits`, which never takes the
    log of a rounded probability, and the modulating factor uses
    $1 - p_t = y\,\sigma(-x) + (1 - y)\,\sigma(x)$ rather than $1 - \sigma(x)$, which is 0 once
    $\sigma(x)$ rounds to 1 (from $x \approx 16.6$ in float32, $36.7$ in float64). Computed
    naively, $-\log(1 - \sigma(x))$ is then $\infty$, and $-\log\sigma(x)$ is $\infty$ once
    $\sigma(x)$ underflows to 0 (below $x \approx -88.7$ in float32). The factor itself is
    computed as $(1 - p_t)^\gamma = \exp(\gamma \log(1 - p_t))$, with $\log(1 - p_t)$ taken in
    log space ($\log\sigma(-x) = -x + \log\sigma(x)$ for a positive, $\log\sigma(x)$ for a
    negative): it never forms $0^\gamma$, so its gradient stays finite even where $\sigma(-x)$
    itself underflows to 0 (beyond $|x| \approx 88.7$ in float32, $709$ in float64). Soft targets
    $y \in [0, 1]$ are accepted, as in torchvision: then $\mathrm{BCE}(x, y)$ is the soft
    cross-entropy, and $p_t$, $\alpha_t$ the same mixtures.

    Notes: like recent torchvision (0.28), `alpha` must lie in $[0, 1]$ or be -1; releases
    before early 2025 took any negative `alpha` as "off" and any `alpha` > 1 as it came. Unlike
    torchvision, we refuse `gamma` < 0 (the factor would then grow for easy examples and be
    infinite at $p_t = 1$) and check input and target before computing anything. Where a
    logit saturates ($\sigma(x)$ rounds to 1) torchvision's $1 - p_t$ is exactly 0, and with
    $0 < \gamma < 1$ its gradient there is NaN; ours stays finite at any finite logit. Before
    that, its float32 $1 - p_t = 1 - (1 - p)$ loses digits to cancellation (5e-4 relative at
    $x = -9$, $y = 0$), which ours keeps.
    """
    _check_floating("inputs", inputs)
    _check_floating("targets", targets)
    _check_reduction(reduction)
    if targets.shape != inputs.shape:
        raise ValueError(f"expected targets of the inputs' shape {_shape(inputs)}, but got "
                         f"{_shape(targets)}")
    if not (0 <= alpha <= 1 or alpha == -1):
        raise ValueError(f"expected alpha in [0, 1], or -1 to turn the class weighting off, but "
                         f"got {alpha!r}")
    if not gamma >= 0:
        raise ValueError(f"expected gamma >= 0, but got {gamma!r}")
    dtype = torch.promote_types(inputs.dtype, targets.dtype)
    x, y = inputs.to(dtype), targets.to(dtype)
    # -log p_t = -[y log sigma(x) + (1 - y) log(1 - sigma(x))], never log of a rounded p
    cross_entropy = binary_cross_entropy_with_logits(x, y, reduction="none")
    # (1 - p_t)^gamma (-log p_t), the factor as exp(gamma log(1 - p_t)), never 0^gamma
    loss = torch.exp(gamma * _log_one_minus_p_t(x, y)) * cross_entropy
    if alpha >= 0:
        # alpha_t = alpha y + (1 - alpha)(1 - y)
        loss = (alpha * y + (1 - alpha) * (1 - y)) * loss
    return _reduce(loss, reduction)


def _log_one_minus_p_t(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    r"""$\log(1 - p_t)$ with $1 - p_t = y\,\sigma(-x) + (1 - y)\,\sigma(x)$, finite and with a
    finite gradient however large $|x|$: the greater sigmoid is factored out in log space,

    .. math:: \log(1 - p_t) = \log\sigma(|x|) + \log\bigl(w_{big} + w_{small}\,e^{-|x|}\bigr)

    ($w_{big} = 1 - y$, $w_{small} = y$ for $x \ge 0$, swapped below). The last log is
    $-|x|$ exactly where its argument underflows to 0 (a 0/1 label, $e^{-|x|} = 0$)."""
    positive = x >= 0
    magnitude = torch.where(positive, x, -x)  # |x|, with the gradient sign(x), 1 at x = 0
    big, small = torch.where(positive, 1 - y, y), torch.where(positive, y, 1 - y)
    inside = big + small * torch.exp(-magnitude)
    underflow = inside == 0  # then big = 0, small = 1: log(e^{-|x|}) = -|x|
    safe = torch.where(underflow, torch.ones_like(inside), inside)  # no log 0, even unselected
    return F.logsigmoid(magnitude) + torch.where(underflow, -magnitude, safe.log())


_TORCHVISION_OPERATORS: list = []
"""The `torch.library.Library` that declares torchvision's NMS operators where torchvision's own
extension cannot load; kept here, since a library's declarations die with the object."""


def torchvision_sigmoid_focal_loss(*args, **kwargs) -> torch.Tensor:
    """`torchvision.ops.sigmoid_focal_loss`, imported on first use: the reference of ours.

    torchvision's Linux wheels on PyPI are built against torch's CUDA wheels. Beside torch's
    CPU-only build, their C++ extension cannot load, and `import torchvision` then stops while
    registering shapes for its `nms` and `qnms` operators ("operator torchvision::nms does not
    exist"). The focal loss is plain Python and needs neither: in that case alone the two
    operators are declared (without kernels, so calling them would still fail) and the import
    is tried again.
    """
    try:
        from torchvision.ops import sigmoid_focal_loss as reference
    except RuntimeError as error:
        if "operator torchvision::" not in str(error) or _TORCHVISION_OPERATORS:
            raise
        for name in [m for m in sys.modules if m.split(".")[0] == "torchvision"]:
            del sys.modules[name]  # the half-imported package, so that it imports afresh
        library = torch.library.Library("torchvision", "FRAGMENT")
        for operator in ("nms", "qnms"):
            library.define(f"{operator}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TORCHVISION_OPERATORS.append(library)
        from torchvision.ops import sigmoid_focal_loss as reference
    return reference(*args, **kwargs)


# --------------------------------------------------------------------------------------------
# Checks run by `python -m helpers.verify` (the chapters show them as tables)
# --------------------------------------------------------------------------------------------


def _wide(generator: torch.Generator) -> tuple[torch.Tensor]:
    """Values from -40 to 40, both ends of softplus's threshold included."""
    x = 80 * torch.rand(1000, generator=generator, dtype=torch.float64) - 40
    return (torch.cat([x, torch.tensor([-40.0, -20.0, 0.0, 20.0, 40.0], dtype=torch.float64)]),)


def _regression(generator: torch.Generator):
    return (torch.randn(64, 3, generator=generator, dtype=torch.float64),
            torch.randn(64, 3, generator=generator, dtype=torch.float64))


def _logits_and_classes(generator: torch.Generator, ignored: bool = False):
    logits = 3 * torch.randn(32, 5, generator=generator, dtype=torch.float64)
    classes = torch.randint(0, 5, (32,), generator=generator)
    if ignored:
        classes[::4] = -100
    return logits, classes


def _logits_and_probabilities(generator: torch.Generator):
    logits = 3 * torch.randn(16, 5, 4, generator=generator, dtype=torch.float64)
    return logits, torch.softmax(torch.randn(16, 5, 4, generator=generator, dtype=torch.float64),
                                 dim=1)


def _binary(generator: torch.Generator):
    return (4 * torch.randn(32, 3, generator=generator, dtype=torch.float64),
            torch.rand(32, 3, generator=generator, dtype=torch.float64))


_CLASS_WEIGHT = torch.tensor([0.5, 1.0, 2.0, 1.5, 0.25], dtype=torch.float64)
_POS_WEIGHT = torch.tensor([1.0, 3.0, 0.5], dtype=torch.float64)
HALF_IN_STEPS = {torch.float16: Tolerance(rtol=1e-2, atol=1e-3)}
"""float16 tolerance for losses computed in several rounded steps (log-softmax, then a weighted
sum): torch's fused kernels round at other points than our step-by-step code, and each float16
rounding may move a value by 2**-11. About ten float16 ulps relative, one ulp of 1 absolute."""


def _same_dtype(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return tensor.to(device=like.device, dtype=like.dtype)


def loss_checks() -> list[Check]:
    """Every loss of chapters 01 and 02, reduction and option against torch, gradients included
    (the focal loss of chapter 10 has its own `focal_loss_checks`)."""
    checks = [
        Check("softplus", softplus, F.softplus, _wide, grad=True),
        Check("softplus beta=2 threshold=5", lambda x: softplus(x, beta=2.0, threshold=5.0),
              lambda x: F.softplus(x, beta=2.0, threshold=5.0), _wide, grad=True),
        Check("softmax", lambda x: softmax(x, dim=1), lambda x: F.softmax(x, dim=1),
              lambda g: _logits_and_classes(g)[:1], grad=True, tolerances=HALF_IN_STEPS),
        Check("log_softmax", lambda x: log_softmax(x, dim=1), lambda x: F.log_softmax(x, dim=1),
              lambda g: _logits_and_classes(g)[:1], grad=True, tolerances=HALF_IN_STEPS),
    ]
    for reduction in REDUCTIONS:
        checks.append(Check(
            f"mse_loss reduction={reduction}",
            lambda x, y, r=reduction: mse_loss(x, y, reduction=r),
            lambda x, y, r=reduction: F.mse_loss(x, y, reduction=r),
            _regression, grad=True))
        options = {"": {}, " weight": {"weight": _CLASS_WEIGHT},
                   " label_smoothing=0.1": {"label_smoothing": 0.1},
                   " weight label_smoothing=0.2": {"weight": _CLASS_WEIGHT,
                                                   "label_smoothing": 0.2}}
        for label, kwargs in options.items():
            for ignored in (False, True):
                name = (f"cross_entropy reduction={reduction}{label}"
                        + (" ignore_index" if ignored else ""))
                checks.append(Check(
                    name, _with_options(cross_entropy, kwargs, reduction),
                    _with_options(F.cross_entropy, kwargs, reduction),
                    lambda g, i=ignored: _logits_and_classes(g, i), grad=True,
                    tolerances=HALF_IN_STEPS))
        for label, kwargs in {" probabilities": {},
                              " probabilities weight label_smoothing=0.1": {
                                  "weight": _CLASS_WEIGHT[:5], "label_smoothing": 0.1}}.items():
            checks.append(Check(
                f"cross_entropy reduction={reduction}{label}",
                _with_options(cross_entropy, kwargs, reduction),
                _with_options(F.cross_entropy, kwargs, reduction),
                _logits_and_probabilities, grad=True, tolerances=HALF_IN_STEPS))
        for label, kwargs in {"": {}, " weight pos_weight": {
                "weight": _POS_WEIGHT.flip(0), "pos_weight": _POS_WEIGHT}}.items():
            checks.append(Check(
                f"binary_cross_entropy_with_logits reduction={reduction}{label}",
                _with_options(binary_cross_entropy_with_logits, kwargs, reduction),
                _with_options(F.binary_cross_entropy_with_logits, kwargs, reduction),
                _binary, grad=True, tolerances=HALF_IN_STEPS))
    return checks


FOCAL_SETTINGS = ((0.25, 2), (-1, 0), (-1, 2), (0.25, 0), (0.75, 0.5), (0.1, 5))
"""(alpha, gamma) pairs checked: torchvision's default, the plain BCE (-1, 0), each factor alone,
a gamma below 1 and a large one."""


def _hard_labels(generator: torch.Generator):
    """Logits of a detector's scale and 0/1 labels, about one in four positive."""
    return (4 * torch.randn(32, 3, generator=generator, dtype=torch.float64),
            (torch.rand(32, 3, generator=generator, dtype=torch.float64) < 0.25).double())


def _saturating(generator: torch.Generator):
    """Logits out to +-100 (sigma(x) rounds to 1 from 16.6 in float32, to 0 below -88.7), each
    with both labels: where a naive log(sigmoid) gives inf."""
    x = torch.tensor([-100.0, -40.0, -30.0, -17.0, -5.0, 0.0, 5.0, 17.0, 30.0, 40.0, 100.0],
                     dtype=torch.float64)
    return torch.cat([x, x]), torch.cat([torch.zeros_like(x), torch.ones_like(x)])


FOCAL_DTYPES = (torch.float64, torch.float32)
"""float16 is not checked: torchvision computes a float16 focal loss step by step in float16,
with torch's float16 BCE on the CPU (2**-7 = 0.0078 for the true 0.0067 at x = -5, y = 0, 16 %
off, where ours rounds once from float32), and its 1 - p_t is 0 wherever sigma(x) rounds to 1
(from x = 8.3 in float16), which makes its gradient NaN for gamma < 1. A float16 row would
measure torchvision's rounding, not the formula."""


def focal_loss_checks(ours=None) -> list[Check]:
    """`sigmoid_focal_loss` (or `ours`, to see a wrong version caught) against torchvision's, for
    every reduction and several alpha and gamma, on 0/1 labels, soft labels and saturating
    logits, gradients included, in float64 and float32 at the course's tolerances."""
    ours = ours or sigmoid_focal_loss
    checks = []
    for reduction in REDUCTIONS:
        for alpha, gamma in FOCAL_SETTINGS:
            options = {"alpha": alpha, "gamma": gamma}
            checks.append(Check(
                f"sigmoid_focal_loss reduction={reduction} alpha={alpha} gamma={gamma}",
                _with_options(ours, options, reduction),
                _with_options(torchvision_sigmoid_focal_loss, options, reduction),
                _hard_labels, grad=True, dtypes=FOCAL_DTYPES))
        checks.append(Check(
            f"sigmoid_focal_loss reduction={reduction} soft targets",
            _with_options(ours, {}, reduction),
            _with_options(torchvision_sigmoid_focal_loss, {}, reduction),
            _binary, grad=True, dtypes=FOCAL_DTYPES))
        for alpha, gamma in ((0.25, 2), (-1, 0)):  # gamma < 1: torchvision's gradient is NaN
            options = {"alpha": alpha, "gamma": gamma}
            checks.append(Check(
                f"sigmoid_focal_loss reduction={reduction} alpha={alpha} gamma={gamma} "
                "logits to +-100",
                _with_options(ours, options, reduction),
                _with_options(torchvision_sigmoid_focal_loss, options, reduction),
                _saturating, grad=True, dtypes=FOCAL_DTYPES))
    return checks


def _with_options(loss, options: dict, reduction: str):
    """`loss(x, y, reduction=..., **options)` with the option tensors on x's device and dtype."""

    def call(x, y):
        placed = {k: _same_dtype(v, x) if isinstance(v, torch.Tensor) else v
                  for k, v in options.items()}
        return loss(x, y, reduction=reduction, **placed)

    return call


register(*loss_checks(), *focal_loss_checks())
