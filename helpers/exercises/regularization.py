"""Checkers for the exercises of chapter 09, overfitting and regularization.

The optimizer steps are compared with `torch.optim` itself: SGD with `weight_decay` over several
steps (through `helpers.exercises.momentum.check_steps`, the momentum buffer fed back), and
AdamW's first step. Soft-thresholding and the proximal L1 step are compared with
`helpers.regularization`; dropout with `torch.nn.functional.dropout` under the same seed; the
weight-decay groups through the weight decay `torch.optim.AdamW` gives each parameter of a
model. The learning-curve tasks take plain lists of losses, as `helpers.training.History` holds
them.

The tasks that ask for a built-in written by hand forbid it (`task(forbid=...)`): torch.optim
in the two optimizer steps, torch's softshrink in the two thresholding tasks, torch's dropout in
the dropout task. The answer of the question (task 8) is sealed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers import regularization
from helpers.exercises import (
    BadReturn,
    Diagnosis,
    Sealed,
    Verdict,
    check_answer,
    check_function,
    check_procedure,
    input_seed,
    lists_as_tuples,
    seeded,
)
from helpers.exercises.grading import task
from helpers.exercises.momentum import StepCase, check_steps, random_gradients

SOFTSHRINK = ("torch.nn.functional.softshrink", "torch._C._nn.softshrink",
              "torch.nn.modules.activation.Softshrink")
"""torch's soft-thresholding, as a function (a built-in of torch._C._nn) and as a module."""

DROPOUT = ("torch.nn.functional.dropout", "torch.dropout", "torch.dropout_", "torch.native_dropout",
           "torch.nn.modules.dropout")
"""torch's dropout: the function, the built-ins it calls, and the modules (nn.Dropout)."""

# --------------------------------------------------------------------------------------------
# Task 1: SGD with weight decay is SGD on the loss plus (λ/2)‖θ‖²
# --------------------------------------------------------------------------------------------


def _torch_sgd(param, grad, momentum_buffer, lr, momentum, weight_decay):
    """One step of torch.optim.SGD(momentum=..., weight_decay=...) on copies, as a pair."""
    p = param.detach().clone()
    optimizer = torch.optim.SGD([p], lr=lr, momentum=momentum, weight_decay=weight_decay)
    if momentum_buffer is not None:
        optimizer.state[p]["momentum_buffer"] = momentum_buffer.detach().clone()
    p.grad = grad.detach().clone()
    optimizer.step()
    return p.detach().clone(), optimizer.state[p]["momentum_buffer"].clone()


def _sgd_decay(decay: str = "gradient", factor: float = 1.0) -> Callable:
    """SGD with momentum and weight decay, the decay in one of the typical places:
    'gradient' (torch: factor * weight_decay * param added to the gradient, before the buffer),
    'decoupled' (a shrink of the current param, outside the buffer), 'updated' (a shrink of the
    param after the step) or 'none'."""
    def step(param, grad, momentum_buffer, lr, momentum, weight_decay):
        g = grad + factor * weight_decay * param if decay == "gradient" else grad
        b = g.clone() if momentum_buffer is None else momentum * momentum_buffer + g
        if decay == "decoupled":
            return param - lr * weight_decay * param - lr * b, b
        new = param - lr * b
        if decay == "updated":
            new = new - lr * weight_decay * new
        return new, b
    return step


def sgd_cases() -> list[StepCase]:
    """Task 1's runs: two decays in float64, one in float32."""
    g = seeded(91)
    return [
        StepCase(torch.randn(4, generator=g, dtype=torch.float64), random_gradients(g, 4, (4,)),
                 None, dict(lr=0.1, momentum=0.9, weight_decay=0.1)),
        StepCase(torch.randn(3, generator=g, dtype=torch.float64), random_gradients(g, 4, (3,)),
                 None, dict(lr=0.05, momentum=0.5, weight_decay=0.5)),
        StepCase(torch.randn(2, 3, generator=g), random_gradients(g, 3, (2, 3), torch.float32),
                 None, dict(lr=0.05, momentum=0.8, weight_decay=0.2)),
    ]


@task(forbid=("torch.optim",))
def check_sgd_weight_decay_step(sgd_weight_decay_step) -> Verdict:
    """Task 1: `sgd_weight_decay_step(param, grad, momentum_buffer, lr, momentum, weight_decay)`
    -> (param, momentum_buffer), one step of torch.optim.SGD(lr, momentum, weight_decay) where
    `grad` is the gradient of the loss without the penalty (the buffer None before the first
    step)."""
    return check_steps("sgd_weight_decay_step", sgd_weight_decay_step, _torch_sgd, sgd_cases(), [
        Diagnosis(_sgd_decay(factor=0.5),
                  "the gradient of the penalty (lambda/2) ||theta||^2 is lambda * theta, not "
                  "lambda/2 * theta: the 1/2 is there to cancel the 2 of the square"),
        Diagnosis(_sgd_decay(factor=2.0),
                  "2 lambda theta is the gradient of lambda ||theta||^2: weight_decay=lambda "
                  "stands for the penalty (lambda/2) ||theta||^2, whose gradient is "
                  "lambda * theta"),
        Diagnosis(_sgd_decay("updated"),
                  "you decayed the weights after the step, the updated ones: the penalty's "
                  "gradient is taken at the current weights, g = grad + weight_decay * param, "
                  "before the step"),
        Diagnosis(_sgd_decay("decoupled"),
                  "your decay bypasses the momentum buffer (that is decoupled decay, SGDW): "
                  "torch adds weight_decay * param to the gradient BEFORE it enters the buffer, "
                  "b = momentum * b + (grad + weight_decay * param), so the decay has momentum "
                  "too"),
        Diagnosis(_sgd_decay(factor=-1.0),
                  "the penalty pulls the weights towards 0: its gradient +weight_decay * param "
                  "is added to the gradient, not subtracted"),
        Diagnosis(_sgd_decay("none"),
                  "weight_decay is ignored: add the penalty's gradient, weight_decay * param, "
                  "to the gradient"),
    ], state_name="momentum_buffer")


# --------------------------------------------------------------------------------------------
# Task 2: AdamW's first step, and why it is not Adam with an L2 term
# --------------------------------------------------------------------------------------------


def _torch_adamw(param, grad, lr, weight_decay=1e-2, eps=1e-8):
    """The first step of torch.optim.AdamW (default betas), on a copy."""
    p = param.detach().clone()
    optimizer = torch.optim.AdamW([p], lr=lr, weight_decay=weight_decay, eps=eps)
    p.grad = grad.detach().clone()
    optimizer.step()
    return p.detach().clone()


def _adamw_first(decay: str = "decoupled", eps_where: str = "outside",
                 default_decay: float = 1e-2) -> Callable:
    """AdamW's first step, theta (1 - lr lambda) - lr g / (|g| + eps), with one part changed:
    `decay` is 'decoupled', 'coupled' (Adam with L2 in the gradient), 'lr twice', 'no lr',
    'after' or 'none'."""
    def step(param, grad, lr, weight_decay=default_decay, eps=1e-8):
        g = grad + weight_decay * param if decay == "coupled" else grad
        shrink = {"decoupled": lr * weight_decay, "lr twice": lr * lr * weight_decay,
                  "no lr": weight_decay}.get(decay, 0.0)
        denom = (g * g + eps).sqrt() if eps_where == "inside" else g.abs() + eps
        new = param * (1 - shrink) - lr * g / denom  # m^_1 = g, v^_1 = g^2
        return new * (1 - lr * weight_decay) if decay == "after" else new
    return step


def adamw_cases() -> list[tuple]:
    """Task 2's inputs: gradients from 1e-9 (where eps counts) to 10, float32, the default
    weight_decay."""
    g = seeded(92)
    scales = torch.tensor([1e-9, 1e-3, 0.1, 1.0, 10.0], dtype=torch.float64)
    return [
        (torch.randn(5, generator=g, dtype=torch.float64),
         scales * torch.randn(5, generator=g, dtype=torch.float64), 0.1, 0.1),
        (torch.randn(2, 3, generator=g), torch.randn(2, 3, generator=g), 0.01, 0.5, 1e-6),
        (3 * torch.randn(4, generator=g, dtype=torch.float64),
         torch.randn(4, generator=g, dtype=torch.float64), 0.2),
    ]


@task(forbid=("torch.optim",))
def check_adamw_first_step(adamw_first_step) -> Verdict:
    """Task 2: `adamw_first_step(param, grad, lr, weight_decay=1e-2, eps=1e-8)`, the parameter
    after the first step of torch.optim.AdamW (default betas)."""
    return check_function("adamw_first_step", adamw_first_step, _torch_adamw, adamw_cases(), [
        Diagnosis(_adamw_first("coupled"),
                  "that is Adam with the L2 term in the gradient (torch.optim.Adam(weight_decay="
                  "...)): g + weight_decay * param is then divided by its own size, so the "
                  "decay is normalised away; AdamW shrinks the weights directly, "
                  "param * (1 - lr * weight_decay), and leaves the gradient alone"),
        Diagnosis(_adamw_first("lr twice"),
                  "the learning rate is in the shrink once: param * (1 - lr * weight_decay), "
                  "not lr^2"),
        Diagnosis(_adamw_first("no lr"),
                  "the shrink is scaled by the learning rate: param * (1 - lr * weight_decay), "
                  "not (1 - weight_decay)"),
        Diagnosis(_adamw_first("after"),
                  "torch shrinks the CURRENT weights, before the Adam step: "
                  "param * (1 - lr * weight_decay) - lr * g / (|g| + eps), not the updated ones"),
        Diagnosis(_adamw_first("none"),
                  "the weight decay is missing: shrink param by (1 - lr * weight_decay)"),
        Diagnosis(_adamw_first(default_decay=0.0),
                  "AdamW's default weight_decay is 1e-2 (Adam's is 0)"),
        Diagnosis(_adamw_first(eps_where="inside"),
                  "eps goes outside the square root, sqrt(v^) + eps = |g| + eps at the first "
                  "step"),
    ], rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Task 3: soft-thresholding
# --------------------------------------------------------------------------------------------


def threshold_cases() -> list[tuple]:
    g = seeded(93)
    return [
        (torch.tensor([-2.0, -0.5, -0.3, 0.0, 0.2, 0.5, 0.7, 3.0], dtype=torch.float64), 0.5),
        (torch.randn(3, 4, generator=g, dtype=torch.float64), 0.3),
        (torch.randn(6, generator=g), 0.8),
    ]


@task(forbid=SOFTSHRINK)
def check_soft_threshold(soft_threshold) -> Verdict:
    """Task 3: `soft_threshold(x, threshold)`, S_t(x) = sign(x) max(|x| - t, 0) element-wise."""
    return check_function("soft_threshold", soft_threshold, regularization.soft_threshold,
                          threshold_cases(), [
        Diagnosis(lambda x, t: x * (x.abs() > t),
                  "that is hard thresholding: you zeroed |x| <= t but kept the rest as it was; "
                  "soft-thresholding also shrinks every survivor by t towards 0, "
                  "sign(x) (|x| - t)"),
        Diagnosis(lambda x, t: (x.abs() - t).clamp_min(0),
                  "the sign is lost: max(|x| - t, 0) is the size of the result; multiply it by "
                  "sign(x)"),
        Diagnosis(lambda x, t: (x - t).clamp_min(0),
                  "max(x - t, 0) shrinks only the positive side and zeroes every negative "
                  "value: shrink |x| and put the sign back, sign(x) max(|x| - t, 0)"),
        Diagnosis(lambda x, t: x.clamp(-t, t),
                  "you clipped x to [-t, t]: soft-thresholding does the opposite, it sets "
                  "[-t, t] to 0 and shrinks the rest by t, sign(x) max(|x| - t, 0)"),
        Diagnosis(lambda x, t: x - t * x.sign(),
                  "the max(., 0) is missing: x - t sign(x) overshoots zero for |x| < t (that "
                  "is a subgradient step); every |x| <= t must become exactly 0"),
    ], rtol=1e-12, atol=0.0)


# --------------------------------------------------------------------------------------------
# Task 4: the proximal L1 step
# --------------------------------------------------------------------------------------------


def _proximal(param, grad, lr, l1):
    return regularization.soft_threshold(param - lr * grad, lr * l1)


def proximal_cases() -> list[tuple]:
    g = seeded(94)
    return [
        (0.3 * torch.randn(8, generator=g, dtype=torch.float64),
         torch.randn(8, generator=g, dtype=torch.float64), 0.1, 0.5),
        (0.5 * torch.randn(3, 4, generator=g, dtype=torch.float64),
         torch.randn(3, 4, generator=g, dtype=torch.float64), 0.5, 0.2),
        (0.2 * torch.randn(6, generator=g), torch.randn(6, generator=g), 0.05, 2.0),
    ]


@task(forbid=SOFTSHRINK)
def check_proximal_l1_step(proximal_l1_step) -> Verdict:
    """Task 4: `proximal_l1_step(param, grad, lr, l1)`, the parameter after one proximal
    gradient step on loss + l1 ||param||_1: S_(lr l1)(param - lr grad)."""
    def soft(x, t):  # nested, not the course's function: a diagnosis must run as a learner's
        return x.sign() * (x.abs() - t).clamp_min(0)

    return check_function("proximal_l1_step", proximal_l1_step, _proximal, proximal_cases(), [
        Diagnosis(lambda p, g, lr, l1: soft(p - lr * g, l1),
                  "the threshold is lr * l1, not l1: the step minimises (1 / (2 lr)) "
                  "||z - (param - lr grad)||^2 + l1 ||z||_1, whose solution shrinks by lr * l1"),
        Diagnosis(lambda p, g, lr, l1: p - lr * (g + l1 * p.sign()),
                  "that is a subgradient step, param - lr (grad + l1 sign(param)): it "
                  "overshoots zero and never lands on it; take the gradient step on the loss, "
                  "then soft-threshold by lr * l1"),
        Diagnosis(lambda p, g, lr, l1: soft(p, lr * l1) - lr * g,
                  "the order is: gradient step first, then the shrink, "
                  "S_(lr l1)(param - lr grad); shrinking first and stepping after leaves no "
                  "exact zeros"),
        Diagnosis(lambda p, g, lr, l1: (lambda z: z * (z.abs() > lr * l1))(p - lr * g),
                  "that is hard thresholding: the survivors must also shrink by lr * l1 "
                  "towards 0, sign(z) max(|z| - lr l1, 0)"),
        Diagnosis(lambda p, g, lr, l1: soft(p, lr * l1),
                  "the gradient step on the loss is missing: soft-threshold param - lr * grad, "
                  "not param"),
    ], rtol=1e-12, atol=1e-15)


# --------------------------------------------------------------------------------------------
# Task 5: inverted dropout
# --------------------------------------------------------------------------------------------


class _DropoutCase:
    """An input, p and training, the function called right after torch.manual_seed (in a
    forked random state: the checker leaves torch's as it found it). Within a hidden test the
    input and the mask's seed both come from the hidden seed."""

    def __init__(self, shape: tuple[int, ...], dtype: torch.dtype, p: float, training: bool,
                 seed: int):
        self.x = torch.randn(shape, generator=seeded(seed), dtype=dtype)
        self.p, self.training, self.seed = p, training, input_seed(seed)

    def __repr__(self) -> str:
        return (f"a {self.x.dtype} tensor of shape {tuple(self.x.shape)}, p={self.p}, "
                f"training={self.training}, called right after torch.manual_seed({self.seed})")

    def run(self, dropout: Callable):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            return dropout(self.x.clone(), self.p, self.training)


def _dropout(keep: str = "1 - p", scale: str = "1 / (1 - p)", in_eval: str = "identity",
             draw: str = "bernoulli") -> Callable:
    """Dropout with one part changed: the probability to keep, the scale of the kept values,
    what happens in eval mode, how the mask is drawn."""
    def dropout(x, p, training=True):
        if not training:
            return {"identity": x, "dropout": dropout(x, p, True),
                    "times 1 - p": x * (1 - p)}[in_eval]
        if draw == "rand":  # uniform draws of x's dtype: bernoulli_ draws them in float64
            mask = (torch.rand_like(x) < 1 - p).to(x.dtype)
        elif draw == "rand above p":
            mask = (torch.rand_like(x) >= p).to(x.dtype)
        else:
            mask = torch.empty_like(x).bernoulli_(1 - p if keep == "1 - p" else p)
        factor = {"1 / (1 - p)": 1 / (1 - p), "1 / p": 1 / p, "none": 1.0,
                  "1 - p": 1 - p}[scale]
        return x * mask * factor
    return dropout


_OTHER_MASK = ("right idea, but the mask is drawn differently from torch's, so the same seed "
               "gives another mask: draw it as torch does, torch.empty_like(x).bernoulli_(1 - p)")


def dropout_cases() -> list[_DropoutCase]:
    return [_DropoutCase((6, 5), torch.float64, 0.3, True, 95),
            _DropoutCase((4, 8), torch.float64, 0.3, False, 96),
            _DropoutCase((3, 7), torch.float64, 0.6, True, 97),
            _DropoutCase((2, 9), torch.float32, 0.2, True, 98)]


@task(forbid=DROPOUT)
def check_inverted_dropout(inverted_dropout) -> Verdict:
    """Task 5: `inverted_dropout(x, p, training=True)`, equal to torch.nn.functional.dropout
    under the same seed: the mask `torch.empty_like(x).bernoulli_(1 - p)`, the kept values
    divided by 1 - p; the identity when not training."""
    def reference(x, p, training=True):
        return F.dropout(x, p, training)

    return check_procedure("inverted_dropout", inverted_dropout, reference, dropout_cases(), [
        Diagnosis(_dropout(scale="none"),
                  "the kept values are not scaled: divide them by 1 - p, so that the "
                  "expectation E[dropout(x)] = x is the same in training and in evaluation"),
        Diagnosis(_dropout(scale="1 - p"),
                  "multiply the kept values by 1 / (1 - p), not by 1 - p: the expectation is "
                  "then x"),
        Diagnosis(_dropout(keep="p", scale="1 / p"),
                  "p is the probability to DROP an element (torch's convention, not a keep "
                  "probability): keep with probability 1 - p, bernoulli_(1 - p), and divide by "
                  "1 - p"),
        Diagnosis(_dropout(keep="p"),
                  "p is the probability to DROP an element: the mask keeps with probability "
                  "1 - p, torch.empty_like(x).bernoulli_(1 - p)"),
        Diagnosis(_dropout(in_eval="dropout"),
                  "in eval mode (training=False) dropout is the identity: return x unchanged; "
                  "dropping at evaluation makes every prediction random"),
        Diagnosis(_dropout(scale="none", in_eval="times 1 - p"),
                  "that is the original dropout, scaled at test time by 1 - p; inverted "
                  "dropout, torch's, divides by 1 - p in training and leaves evaluation alone"),
        *(Diagnosis(_dropout(draw=draw), _OTHER_MASK) for draw in ("rand", "rand above p")),
    ], rtol=1e-12, atol=0.0)


# --------------------------------------------------------------------------------------------
# Task 6: parameter groups without decay for biases and normalization layers
# --------------------------------------------------------------------------------------------


class _Block(torch.nn.Module):
    """A small convolutional classifier: a convolution, batch norm, a linear layer without
    bias, group norm, and a linear head."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(2, 4, kernel_size=3)
        self.norm = torch.nn.BatchNorm1d(4)
        self.project = torch.nn.Linear(4 * 6, 8, bias=False)
        self.group_norm = torch.nn.GroupNorm(2, 8)
        self.head = torch.nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.norm(self.conv(x))).flatten(1)
        return self.head(torch.relu(self.group_norm(self.project(h))))


class _Embedder(torch.nn.Module):
    """An embedding, layer norm, a linear layer: the shape of a tiny transformer's parts."""

    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(10, 6)
        self.ln = torch.nn.LayerNorm(6)
        self.out = torch.nn.Linear(6, 10)

    def forward(self, tokens: Tensor) -> Tensor:
        return self.out(self.ln(self.embed(tokens)))


_MODELS = {
    "an MLP with LayerNorm": lambda: torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.ReLU(), torch.nn.Linear(8, 3)),
    "a Conv1d - BatchNorm1d - Linear(bias=False) - GroupNorm - Linear classifier": _Block,
    "an Embedding - LayerNorm - Linear model": _Embedder,
}


class Decays(dict):
    """What task 6's checker compares: parameter name -> the weight decay AdamW gives it."""


class _GroupsCase:
    def __init__(self, model: str, weight_decay: float):
        self.model, self.weight_decay = model, weight_decay

    def __repr__(self) -> str:
        return f"{self.model}, weight_decay={self.weight_decay}"

    def run(self, weight_decay_groups: Callable) -> Decays | None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = _MODELS[self.model]()
            groups = weight_decay_groups(model, self.weight_decay)
        if groups is None:
            return None
        if isinstance(groups, dict) or not isinstance(groups, list | tuple) or not all(
                isinstance(group, dict) and "params" in group for group in groups):
            raise BadReturn(f"your function returned {type(groups).__name__}: return a list of "
                            f"parameter groups, dicts with 'params' and 'weight_decay'")
        try:
            optimizer = torch.optim.AdamW([dict(group) for group in groups], lr=1e-3)
        except Exception as error:  # noqa: BLE001 - what torch says about the groups
            raise BadReturn(f"your function returned groups that torch.optim.AdamW refuses: "
                            f"{error}") from None
        names = {id(parameter): name for name, parameter in model.named_parameters()}
        decays = Decays()
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if id(parameter) not in names:
                    raise BadReturn("your function returned groups with a tensor that is not "
                                    "one of the model's parameters: put the model's own "
                                    "parameters in the groups (model.named_parameters())")
                decays[names[id(parameter)]] = group["weight_decay"]
        missing = [name for name in names.values() if name not in decays]
        if missing:
            raise BadReturn(f"your function returned groups without {', '.join(missing)}: a "
                            f"parameter in no group is never trained; every parameter belongs "
                            f"to exactly one group")
        return Decays(sorted(decays.items()))


_NORMS = (torch.nn.modules.batchnorm._NormBase, torch.nn.LayerNorm, torch.nn.GroupNorm)


def _groups(exempt: Callable, no_decay_value: float | None = 0.0) -> Callable:
    """Two groups: parameters with `exempt(module, name)` false decay, the others get
    `no_decay_value` (None: the key left out, so the optimizer's default applies)."""
    def weight_decay_groups(model, weight_decay):
        decay, no_decay = [], []
        for module in model.modules():
            for name, parameter in module.named_parameters(recurse=False):
                (no_decay if exempt(module, name) else decay).append(parameter)
        rest = {"params": no_decay}
        if no_decay_value is not None:
            rest["weight_decay"] = no_decay_value
        return [{"params": decay, "weight_decay": weight_decay}, rest]
    return weight_decay_groups


@task()
def check_weight_decay_groups(weight_decay_groups) -> Verdict:
    """Task 6: `weight_decay_groups(model, weight_decay)`, parameter groups for an optimizer in
    which biases and the parameters of normalization layers get weight_decay 0 and every other
    parameter `weight_decay`; compared through torch.optim.AdamW(groups, lr=1e-3)."""
    cases = [_GroupsCase(name, decay) for name, decay in zip(_MODELS, (0.1, 0.05, 0.01))]
    return check_procedure("weight_decay_groups", weight_decay_groups,
                           _groups(lambda module, name: isinstance(module, _NORMS)
                                   or name == "bias"), cases, [
        Diagnosis(_groups(lambda module, name: isinstance(module, _NORMS)),
                  "the biases decay: a bias multiplies no input, so pulling it towards 0 makes "
                  "the function no smoother; put every parameter named 'bias' in the group "
                  "with weight_decay 0"),
        Diagnosis(_groups(lambda module, name: name == "bias"),
                  "the normalization layers' scales decay (their 'weight'): decaying a norm's "
                  "scale pulls the layer's output towards 0 for no gain in smoothness; exempt "
                  "every parameter of BatchNorm, LayerNorm and GroupNorm"),
        Diagnosis(_groups(lambda module, name: isinstance(module, _NORMS) or name == "bias",
                          no_decay_value=None),
                  "the group without decay has no 'weight_decay' entry, so it takes the "
                  "optimizer's default (AdamW's is 1e-2): set 'weight_decay': 0.0 in it"),
        Diagnosis(_groups(lambda module, name: True),
                  "nothing decays: only the biases and the normalization layers' parameters "
                  "go in the group with weight_decay 0; the weights of linear, convolution and "
                  "embedding layers decay"),
        Diagnosis(_groups(lambda module, name: False),
                  "everything decays, as with AdamW(model.parameters(), weight_decay=...): put "
                  "the biases and the normalization layers' parameters in a group with "
                  "weight_decay 0"),
    ])


# --------------------------------------------------------------------------------------------
# Task 7: reading a learning curve
# --------------------------------------------------------------------------------------------


def _reading(*, by: str = "val", ties: str = "first", sign: int = 1, start: int = 1,
             at: str = "best") -> Callable:
    """(best epoch, gap) read from a learning curve, with one part changed: the curve whose
    minimum is taken (`by` 'val', 'train', or 'first rise': the epoch before the validation
    loss first goes up), which of tied epochs, the gap's sign, the first epoch's number, and
    where the gap is taken ('best' or 'last')."""
    def best_epoch_and_gap(train_losses, val_losses):
        losses = train_losses if by == "train" else val_losses
        best = min(range(len(losses)), key=lambda i: (losses[i], i if ties == "first" else -i))
        if by == "first rise":
            best = next((i for i in range(len(val_losses) - 1)
                         if val_losses[i + 1] > val_losses[i]), len(val_losses) - 1)
        where = len(losses) - 1 if at == "last" else best
        return best + start, sign * (val_losses[where] - train_losses[where])
    return best_epoch_and_gap


CURVES = [
    ([0.92, 0.61, 0.45, 0.36, 0.29, 0.23, 0.18, 0.14, 0.11],
     [0.95, 0.68, 0.55, 0.50, 0.49, 0.51, 0.55, 0.60, 0.66]),
    ([1.10, 0.80, 0.62, 0.50, 0.41, 0.33],
     [1.12, 0.86, 0.71, 0.64, 0.64, 0.67]),  # a tie at the best
    ([0.70, 0.52, 0.40, 0.31, 0.25, 0.20, 0.16],
     [0.74, 0.58, 0.49, 0.45, 0.47, 0.44, 0.48]),  # a second, lower minimum
]
"""Task 7's fixed curves: (train_losses, val_losses), one value per epoch."""


def drawn_curve(seed: int) -> tuple[list[float], list[float]]:
    """A learning curve drawn from `seeded(seed)`, one loss per epoch rounded to 3 decimals:
    the training loss falls steadily; the validation loss falls with it, then rises as the
    model overfits, with noise."""
    g = seeded(seed)
    epochs = int(torch.randint(8, 14, (1,), generator=g))
    t = torch.arange(epochs, dtype=torch.float64)
    train = torch.exp(-(0.15 + 0.3 * torch.rand(1, generator=g, dtype=torch.float64)) * t)
    overfit = (0.3 + 0.5 * torch.rand(1, generator=g, dtype=torch.float64)) * (t / epochs) ** 2
    val = 0.05 + train + overfit + 0.02 * torch.randn(epochs, generator=g, dtype=torch.float64)
    return [round(v, 3) for v in train.tolist()], [round(v, 3) for v in val.tolist()]


@task()
def check_best_epoch_and_gap(best_epoch_and_gap) -> Verdict:
    """Task 7: `best_epoch_and_gap(train_losses, val_losses)`, the epoch (counted from 1, the
    first if tied) with the lowest validation loss, and the generalization gap there,
    val - train."""
    cases = [(list(train), list(val)) for train, val in [*CURVES, drawn_curve(99)]]
    return check_function("best_epoch_and_gap", lists_as_tuples(best_epoch_and_gap), _reading(),
                          cases, [
        Diagnosis(_reading(by="train"),
                  "that is the epoch of the lowest TRAINING loss, which keeps falling while the "
                  "model overfits: the best epoch is the one with the lowest validation loss"),
        Diagnosis(_reading(by="first rise"),
                  "you stopped at the first rise of the validation loss: it is noisy and may "
                  "fall again to a lower minimum; the best epoch has the lowest validation loss "
                  "of all"),
        Diagnosis(_reading(sign=-1),
                  "the gap has the wrong sign: the generalization gap is val - train, positive "
                  "when the model does better on the data it was trained on"),
        Diagnosis(_reading(start=0),
                  "count epochs from 1, as fit and EarlyStopping do: the first epoch is 1, not "
                  "index 0"),
        Diagnosis(_reading(at="last"),
                  "that is the gap after the last epoch: take it at the best epoch, the one "
                  "whose weights early stopping keeps"),
        Diagnosis(_reading(ties="last"),
                  "when two epochs tie, the first is the best: a later epoch with the same "
                  "loss is no improvement (loss < best, strictly)"),
    ], rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Task 8 (a question): which weight decay to choose
# --------------------------------------------------------------------------------------------


@task()
def check_chosen_weight_decay(chosen_weight_decay) -> Verdict:
    """Task 8 (a question): the weight decay to choose among the five runs of the task's table
    (training, validation and test loss of each), by the protocol of chapter 08. The answer is
    sealed; the wrong answers are the decays with the lowest training loss, the smallest gap
    and the lowest test loss."""
    return check_answer("chosen_weight_decay", chosen_weight_decay, Sealed(
        "e5df2fe6db3f41b33763dcf2c288af8613c3cc282a44dc3a926df76340e2abf0"), [
        (0.0, "that is the lowest TRAINING loss: with less regularization the model fits its "
              "training data better, always; it is the validation loss that says how it does "
              "on new data"),
        (1e-1, "that is the smallest generalization gap: a model that fits nothing has no gap "
               "either (this one underfits: its validation loss is the worst of all); choose "
               "the lowest validation loss"),
        (1e-2, "that is the lowest TEST loss: choosing by it makes the test set a second "
               "validation set, and its number is then biased; choose on validation, report "
               "the test loss of the chosen one"),
    ], rtol=1e-12, atol=0.0)
