r"""Regularization: dropout, the L2 and L1 penalties, and the proximal step that makes L1 sparse.

Dropout (inverted, as torch does it): in training every element is kept with probability
$1 - p$ and scaled by $1/(1-p)$, so its expectation is unchanged; in evaluation it is the identity.

    mask_i ~ Bernoulli(1 - p)      dropout(x)_i = x_i * mask_i / (1 - p)      E[dropout(x)_i] = x_i

The penalties are added to a loss: $\frac{\lambda}{2}\lVert\theta\rVert_2^2$ (gradient
$\lambda\theta$, which is what SGD's `weight_decay=λ` adds to the gradient) and
$\lambda\lVert\theta\rVert_1$ (subgradient $\lambda\,\mathrm{sign}(\theta)$). A subgradient step on
L1 overshoots zero and oscillates around it; the proximal step, soft-thresholding
$S_t(x) = \mathrm{sign}(x)\max(|x| - t, 0)$ with $t = \text{lr}\cdot\lambda$, lands on exact zeros.

Names and semantics of `dropout` and `Dropout` follow `torch.nn.functional.dropout` and
`torch.nn.Dropout`; the mask is drawn the way torch draws it (`bernoulli_(1 - p)` on a tensor like
the input, then divided by $1 - p$), so under the same seed the two give the same numbers.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import torch
from torch import Tensor

from helpers.verify import DEFAULT_DTYPES, EXACT, Check, register

__all__ = ["Dropout", "dropout", "l1_penalty", "l2_penalty", "proximal_l1_step",
           "soft_threshold", "weight_decay_groups"]


def _check_p(p) -> float:
    """A probability in [0, 1]: a Python or NumPy number, or a one-element tensor (as torch
    accepts)."""
    try:
        if isinstance(p, str | bytes):
            raise TypeError
        value = float(p)
    except (TypeError, ValueError):
        raise TypeError(f"expected the dropout probability p to be a number, but got "
                        f"{type(p).__name__}") from None
    if not 0 <= value <= 1:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p!r}")
    return value


def dropout(input: Tensor, p: float = 0.5, training: bool = True,
            inplace: bool = False) -> Tensor:
    r"""Inverted dropout: $x \odot m / (1 - p)$ with $m_i \sim \mathrm{Bernoulli}(1 - p)$ in
    training, $x$ itself otherwise (`torch.nn.functional.dropout`).

    p = 0 returns `input` itself and draws nothing (torch's random stream is left as torch
    leaves it); p = 1 drops everything: the output is $x \cdot 0$ (NaN stays NaN, as in torch).
    """
    p = _check_p(p)
    if not isinstance(input, Tensor):
        raise TypeError(f"expected input to be a tensor, but got {type(input).__name__}")
    if not training or p == 0:
        return input
    if p == 1:
        return input.mul_(0) if inplace else input * 0
    mask = torch.empty_like(input).bernoulli_(1 - p)  # keep with probability 1 - p
    mask.div_(1 - p)  # 1 / (1 - p) on the kept ones: the expectation is x
    return input.mul_(mask) if inplace else input * mask


class Dropout(torch.nn.Module):
    """`dropout` as a module: active in train mode, the identity after `model.eval()`
    (`torch.nn.Dropout`)."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        self.p = _check_p(p)
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return dropout(input, self.p, self.training, self.inplace)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


def _parameters(parameters) -> list[Tensor]:
    if isinstance(parameters, Tensor):
        return [parameters]
    parameters = list(parameters)
    if not all(isinstance(p, Tensor) for p in parameters):
        raise TypeError(f"expected tensors (e.g. model.parameters()), but got "
                        f"{sorted({type(p).__name__ for p in parameters})}")
    return parameters


def _check_strength(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"expected {name} to be a number, but got {type(value).__name__}")
    if not value >= 0:
        raise ValueError(f"expected {name} >= 0, but got {value!r}")
    return float(value)


def _total(terms) -> Tensor:
    """The sum of 0-d tensors in their own dtype, a 0-d zero tensor when there are none."""
    terms = list(terms)
    return sum(terms[1:], terms[0]) if terms else torch.zeros(())


def l2_penalty(parameters: Tensor | Iterable[Tensor], weight_decay: float) -> Tensor:
    r"""$\frac{\lambda}{2} \sum_j \lVert\theta_j\rVert_2^2$: its gradient is $\lambda\theta$,
    the term SGD's `weight_decay=λ` adds to the gradient."""
    weight_decay = _check_strength("weight_decay", weight_decay)
    return weight_decay / 2 * _total(p.pow(2).sum() for p in _parameters(parameters))


def l1_penalty(parameters: Tensor | Iterable[Tensor], l1: float) -> Tensor:
    r"""$\lambda \sum_j \lVert\theta_j\rVert_1$: its (sub)gradient is $\lambda\,\mathrm{sign}
    (\theta)$, 0 at $\theta = 0$ (autograd's choice)."""
    l1 = _check_strength("l1", l1)
    return l1 * _total(p.abs().sum() for p in _parameters(parameters))


def soft_threshold(x: Tensor, threshold: float) -> Tensor:
    r"""$S_t(x) = \mathrm{sign}(x)\max(|x| - t, 0)$, the proximal operator of
    $t\lVert\cdot\rVert_1$: $\arg\min_z \tfrac12 (z - x)^2 + t|z|$, element-wise. Every
    $|x| \le t$ becomes exactly 0."""
    threshold = _check_strength("threshold", threshold)
    if not isinstance(x, Tensor):
        raise TypeError(f"expected x to be a tensor, but got {type(x).__name__}")
    return x.sign() * (x.abs() - threshold).clamp_min(0)


@torch.no_grad()
def proximal_l1_step(parameters: Tensor | Iterable[Tensor], lr: float, l1: float) -> None:
    r"""After a gradient step on the loss without the penalty, $\theta \leftarrow
    S_{\text{lr}\cdot\lambda}(\theta)$ in place (proximal gradient descent, ISTA)."""
    threshold = _check_strength("lr", lr) * _check_strength("l1", l1)
    for p in _parameters(parameters):
        p.copy_(soft_threshold(p, threshold))


def weight_decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two parameter groups for an optimizer: the weight matrices, which decay, and the
    parameters that should not, with weight_decay 0: every parameter with fewer than two
    dimensions (biases of every kind, the scale and shift of normalization layers, PReLU slopes)
    and every parameter of a normalization layer.

    `torch.optim.AdamW(weight_decay_groups(model, 0.01), lr=...)`. Decay is meant to keep the
    maps from inputs to outputs small; a bias or a norm's shift is an offset, and a norm's scale
    only rescales a normalized activation (with the next layer able to undo it), so decaying them
    buys no smoothness. A weight shared by two modules appears once.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"expected a torch.nn.Module (the model, not model.parameters()), but "
                        f"got {type(model).__name__}")
    weight_decay = _check_strength("weight_decay", weight_decay)
    norms = (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm, torch.nn.GroupNorm,
             torch.nn.RMSNorm)
    decay, no_decay, seen = [], [], set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if id(parameter) in seen:  # a tied weight (shared by two modules) goes in once
                continue
            seen.add(id(parameter))
            exempt = isinstance(module, norms) or parameter.dim() < 2 or "bias" in name
            (no_decay if exempt else decay).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


# --------------------------------------------------------------------------------------------
# Checks against torch (`python -m helpers.verify -k dropout`)
# --------------------------------------------------------------------------------------------


def _seeded(fn, seed: int = 1234):
    """Run `fn` right after seeding torch on the input's device: the same mask for both sides."""
    def run(x, *args):
        torch.manual_seed(seed)
        return fn(x, *args)
    return run


_BIT_FOR_BIT = {dtype: EXACT for dtype in DEFAULT_DTYPES}  # the same mask, the same products


def _dropout_check(p: float, training: bool = True) -> Check:
    # for 0 < p < 1 torch's CUDA kernel is a fused one with a random stream of its own: the same
    # mask can only be asked of the CPU (elsewhere: `tests/test_regularization.py` compares the
    # distribution)
    same_stream = not training or p in (0.0, 1.0)
    return Check(f"dropout p={p} training={training}", _seeded(lambda x: dropout(x, p, training)),
                 _seeded(lambda x: torch.nn.functional.dropout(x, p, training)),
                 lambda generator: (torch.randn(8, 33, generator=generator,
                                                dtype=torch.float64),),
                 tolerances=_BIT_FOR_BIT, grad=True, devices=None if same_stream else ("cpu",))


def _module_check() -> Check:
    def ours(x):
        return Dropout(0.3)(x)

    def theirs(x):
        return torch.nn.Dropout(0.3)(x)

    return Check("Dropout(p=0.3) module", _seeded(ours), _seeded(theirs),
                 lambda generator: (torch.randn(4, 5, 6, generator=generator,
                                                dtype=torch.float64),),
                 tolerances=_BIT_FOR_BIT, grad=True, devices=("cpu",))


CHECKS = [_dropout_check(p) for p in (0.0, 0.1, 0.5, 0.9, 1.0)] + [
    _dropout_check(0.5, training=False), _module_check()]
register(*CHECKS)
