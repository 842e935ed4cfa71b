"""Loss functions written by hand, with the signatures and defaults of `torch.nn.functional`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from helpers.verify import Check, register


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
    z = beta * input
    positive = z > 0
    exp_minus_abs = torch.exp(torch.where(positive, -z, z))  # e^{-|z|} <= 1: cannot overflow
    stable = (torch.where(positive, z, 0.0) + torch.log1p(exp_minus_abs)) / beta
    return torch.where(z > threshold, input, stable)


def _wide_inputs(generator: torch.Generator) -> tuple[torch.Tensor]:
    """Values from -40 to 40, both ends of softplus's threshold included."""
    x = 80 * torch.rand(1000, generator=generator, dtype=torch.float64) - 40
    return (torch.cat([x, torch.tensor([-40.0, -20.0, 0.0, 20.0, 40.0], dtype=torch.float64)]),)


register(
    Check("softplus", softplus, F.softplus, _wide_inputs, grad=True),
    Check("softplus beta=2 threshold=5", lambda x: softplus(x, beta=2.0, threshold=5.0),
          lambda x: F.softplus(x, beta=2.0, threshold=5.0), _wide_inputs, grad=True),
)
