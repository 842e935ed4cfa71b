r"""Mixed precision and loss scaling: autocast, float16's narrow range, and `GradScaler` by hand.

**Mixed precision** runs the matrix products of the forward and backward passes in a 16-bit
format while the parameters, the optimizer state and the update stay in float32. Two 16-bit
formats compete:

| format | exponent / mantissa bits | largest | smallest normal | smallest subnormal |
|---|---|---|---|---|
| float16 | 5 / 10 | 65504 | $2^{-14}\approx 6.1\cdot10^{-5}$ | $2^{-24}\approx 6.0\cdot10^{-8}$ |
| bfloat16 | 8 / 7 | $\approx 3.4\cdot10^{38}$ | $2^{-126}$ (float32's range) | $2^{-133}$ |

bfloat16 keeps float32's range and gives up precision (a relative step of $2^{-8}$); float16 is
eight times more precise ($2^{-11}$) but its range is narrow: a gradient element of at most
$2^{-25}$ rounds to 0 ("flushes"), one below $2^{-14}$ becomes subnormal and loses significant
bits, one from 65520 on overflows to inf.

**Loss scaling** moves the gradients into float16's range. Backpropagation is linear in the
seed gradient, so multiplying the loss by $S$ multiplies every gradient of the backward pass by
$S$:

.. math::
    \frac{\partial (S L)}{\partial a} = S\,\frac{\partial L}{\partial a}
    \quad\text{for every activation and parameter } a,

and the float16 window $[2^{-24}, 65504]$ for the stored $\hat g = S g$ becomes
$[2^{-24}/S,\; 65504/S]$ for the true gradient $g$. With $S = 2^k$ the products are exact (only
the exponent moves), so the scaling adds no rounding of its own. Before anything reads the
gradients (clipping, the optimizer), they are unscaled: $g = \hat g \cdot (1/S)$.

**Dynamic scaling** (`GradScaler`) searches for the largest $S$ that does not overflow. With
found_inf $= 1$ when any element of $\hat g$ is inf or NaN:

.. math::
    \text{found\_inf}:\quad & \text{skip the step},\quad S \leftarrow \beta S,\quad n \leftarrow 0
    \\
    \text{else}:\quad & \text{step},\quad n \leftarrow n + 1,\quad
    \text{if } n = N:\; S \leftarrow \gamma S,\; n \leftarrow 0

with $\beta$ = `backoff_factor` (0.5), $\gamma$ = `growth_factor` (2.0) and $N$ =
`growth_interval` (2000): halve on every overflow, double after $N$ clean steps in a row.

On the CPU, torch 2.13 autocasts to bfloat16 and to float16 alike (`torch.autocast("cpu",
dtype=torch.float16)` casts linear layers down, as on a GPU), so the whole float16 story,
overflow included, runs on a laptop. The other pieces of the section: `autocast_op_dtypes` and
`autocast_module_dtypes` report which dtype each op and module computes in under
`torch.autocast`; `autocast_error` measures a low-precision loss and gradient against a float64
reference; `float16_cast_fractions` counts the gradient values that flush, turn subnormal or
overflow, with and without a loss scale; and `clip_order_effect` runs the misconception "clip
the scaled gradients, then unscale".
`SCALER_CHECKS` prove our `GradScaler` equal to `torch.amp.GradScaler`, bit for bit, over whole
training runs; `python -m helpers.verify -k GradScaler` runs them.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import numbers
import warnings
from collections import abc, defaultdict
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from helpers.optim import softmax_regression_problem
from helpers.verify import EXACT, Check, register

__all__ = ["GradScaler", "OptState", "FLOAT16_TINY", "FLOAT16_SMALLEST_NORMAL", "FLOAT16_MAX",
           "scaler_trajectory", "SCALER_CHECKS", "autocast_op_dtypes", "autocast_module_dtypes",
           "autocast_error", "float16_cast_fractions", "clip_order_effect"]

FLOAT16_TINY = 2.0**-24
"""The smallest positive float16 (a subnormal); half of it and less rounds to 0."""
FLOAT16_SMALLEST_NORMAL = 2.0**-14
"""Below this a float16 is subnormal: it keeps fewer than 11 significant bits."""
FLOAT16_MAX = 65504.0
"""The largest finite float16; a value from 65520 up rounds to inf."""


# --------------------------------------------------------------------------------------------
# GradScaler
# --------------------------------------------------------------------------------------------


class OptState(Enum):
    """Where one optimizer stands in the current iteration: gradients scaled, unscaled, stepped."""

    READY = 0
    UNSCALED = 1
    STEPPED = 2


def _ready_optimizer_state() -> dict[str, Any]:
    """A fresh per-optimizer record (a module-level function, so that a scaler can be pickled)."""
    return {"stage": OptState.READY, "found_inf_per_device": {}}


def _check_growth_factor(growth_factor) -> None:
    _check_real("growth_factor", growth_factor)
    if not growth_factor > 1.0:
        raise ValueError(f"The growth factor must be > 1.0. (expected growth_factor > 1.0, "
                         f"but got {growth_factor!r})")


def _check_backoff_factor(backoff_factor) -> None:
    _check_real("backoff_factor", backoff_factor)
    if not 0.0 < backoff_factor < 1.0:
        raise ValueError(f"The backoff factor must be < 1.0. (expected 0 < backoff_factor < 1.0, "
                         f"but got {backoff_factor!r})")


def _check_growth_interval(growth_interval) -> None:
    if isinstance(growth_interval, bool) or not isinstance(growth_interval, numbers.Integral):
        raise TypeError(f"expected growth_interval to be an int, but got "
                        f"{type(growth_interval).__name__} {growth_interval!r}")
    if growth_interval < 1:
        raise ValueError(f"expected growth_interval >= 1, but got {growth_interval}")


def _check_real(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"expected {name} to be a float, but got {type(value).__name__} "
                        f"{value!r}")


class GradScaler:
    r"""Dynamic loss scaling, step for step the same as `torch.amp.GradScaler`.

    The loop, exactly torch's::

        scaler = GradScaler("cpu")                  # or "cuda"
        for x, y in data:
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.float16):
                loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()           # gradients S * g
            scaler.unscale_(optimizer)              # optional: g = (S g) / S, needed to clip
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            scaler.step(optimizer)                  # unscales if not done; skips on inf/NaN
            scaler.update()                         # S <- beta S on overflow, gamma S after N

    **Why scaling saves small gradients.** float16 represents $|x| \ge 2^{-24}$ (subnormal below
    $2^{-14}$); anything up to $2^{-25}$ rounds to 0. The chain rule is linear in the seed
    gradient, $\partial(SL)/\partial a = S\,\partial L/\partial a$, so backpropagating $SL$
    stores $\hat g = S g$ in every float16 buffer of the backward pass, and a true gradient $g$
    survives when $2^{-24}/S \le |g| \le 65504/S$. A power of two $S = 2^k$ only shifts the
    exponent: $S g$ carries the same significand as $g$, no rounding is added.

    **Why unscale before the optimizer and before clipping.** The optimizer must follow $g$,
    not $\hat g$: SGD would step $S$ times too far, weight decay $\lambda\theta$ would be drowned
    by $S g$, and Adam's $\epsilon$ would be compared with $S\sqrt{v}$. So $g = \hat g \cdot
    S^{-1}$, with $S^{-1}$ computed in float64 and rounded to float32 (exact for powers of two).
    Clipping reads $\lVert g\rVert$; on the scaled gradients $\lVert\hat g\rVert = S\lVert g\rVert$,
    so "clip to $c$, then unscale" clips $g$ to $c/S$: the threshold silently shrinks by $S$
    (`clip_order_effect`). Hence `unscale_` -> clip -> `step`.

    **Why skip and back off.** $S$ too large makes $\hat g$ overflow to inf (and inf - inf or
    0 * inf to NaN); the step is then skipped so that the parameters stay finite, and $S$ is
    multiplied by `backoff_factor`. After `growth_interval` finite steps in a row $S$ is
    multiplied by `growth_factor`, so the scaler keeps probing for the largest safe $S$.

    Arguments, defaults and methods are torch's: `device` ("cuda" by default, as in torch),
    `init_scale` ($2^{16}$), `growth_factor` (2.0), `backoff_factor` (0.5), `growth_interval`
    (2000), `enabled` (True); `scale`, `unscale_`, `step`, `update`, `get_scale`,
    `get_growth_factor` / `set_growth_factor`, `get_backoff_factor` / `set_backoff_factor`,
    `get_growth_interval` / `set_growth_interval`, `is_enabled`, `state_dict` /
    `load_state_dict` (the keys `scale`, `growth_factor`, `backoff_factor`, `growth_interval`,
    `_growth_tracker`). The scale is a float32 and the growth tracker an int32 0-dim tensor, both
    created by the first `scale()` on the device of its output. Optimizers that unscale inside
    their own fused kernel (`_step_supports_amp_scaling`, e.g. `Adam(fused=True)`) get the
    `grad_scale` and `found_inf` attributes torch gives them.

    Note — what differs from torch: (1) the constructor validates its arguments, also when
    disabled: `init_scale > 0`, `growth_factor > 1`, `0 < backoff_factor < 1` and an int
    `growth_interval >= 1` (torch checks only `growth_factor > 1` and `backoff_factor < 1`, with
    `AssertionError`, and accepts `backoff_factor=0` and a float interval, which later crashes in
    `update`); the setters validate too. Bad arguments raise `ValueError` / `TypeError` (torch's
    text first), call-order mistakes such as `step()` before `scale()` raise `RuntimeError` where
    torch raises `AssertionError`. (2) A disabled scaler still answers `get_growth_factor()` and
    the other getters (torch's raises `AttributeError`). (3) `device="cuda"` without CUDA warns
    and disables the scaler, as torch does, but looks only at `torch.cuda.is_available()` (torch
    also counts an installed torch_xla); a `torch.device` or "cuda:0" is accepted and kept as its
    type. (4) `update(new_scale)` accepts any real number (torch only a float). (5) `update()`
    reads the scale and found_inf on the host, one synchronization per step that torch's fused
    kernel avoids on a GPU.
    """

    def __init__(self, device: str | torch.device = "cuda", init_scale: float = 2.0**16,
                 growth_factor: float = 2.0, backoff_factor: float = 0.5,
                 growth_interval: int = 2000, enabled: bool = True) -> None:
        if not isinstance(device, str | torch.device):
            raise TypeError(f"expected device to be a device type such as 'cuda' or 'cpu', but "
                            f"got {type(device).__name__} {device!r}")
        _check_real("init_scale", init_scale)
        if not 0 < init_scale < math.inf:
            raise ValueError(f"expected a finite init_scale > 0, but got {init_scale!r}")
        _check_growth_factor(growth_factor)
        _check_backoff_factor(backoff_factor)
        _check_growth_interval(growth_interval)
        self._device = torch.device(device).type
        self._enabled = bool(enabled)
        if self._enabled and self._device == "cuda" and not torch.cuda.is_available():
            warnings.warn("GradScaler is enabled, but CUDA is not available.  Disabling. "
                          "(expected GradScaler('cpu') on a machine without CUDA)", stacklevel=2)
            self._enabled = False
        self._init_scale = init_scale
        self._scale: Tensor | None = None  # created by the first scale(), on its output's device
        self._growth_factor = growth_factor
        self._backoff_factor = backoff_factor
        self._growth_interval = growth_interval
        self._init_growth_tracker = 0
        self._growth_tracker: Tensor | None = None
        self._per_optimizer_states: dict[int, dict[str, Any]] = defaultdict(
            _ready_optimizer_state)

    # ---- the scale and the growth tracker ----------------------------------------------------

    def _lazy_init_scale_growth_tracker(self, device: torch.device) -> None:
        # S = init_scale (float32), n = 0 (int32), on the device of the first scaled output
        self._scale = torch.full((), self._init_scale, dtype=torch.float32, device=device)
        self._growth_tracker = torch.full((), self._init_growth_tracker, dtype=torch.int32,
                                          device=device)

    def _check_scale_growth_tracker(self, funcname: str) -> tuple[Tensor, Tensor]:
        if self._scale is None or self._growth_tracker is None:
            raise RuntimeError(f"Attempted {funcname} but _scale is None.  This may indicate your "
                               f"script did not use scaler.scale(loss or outputs) earlier in the "
                               f"iteration. (expected scaler.scale(loss).backward() before "
                               f"{funcname})")
        return self._scale, self._growth_tracker

    # ---- scale -------------------------------------------------------------------------------

    def scale(self, outputs):
        r"""$S \cdot$ `outputs`: a tensor, or the tensors of a (nested) list, tuple or iterable.

        Lists and tuples come back as the same type; another iterable comes back as a lazy
        `map`, as in torch. Disabled: `outputs` itself.
        """
        if not self._enabled:
            return outputs
        return self._scale_nested(outputs)

    def _scale_on(self, device: torch.device) -> Tensor:
        if self._scale is None:
            self._lazy_init_scale_growth_tracker(device)
        return self._scale.to(device=device, non_blocking=True)

    def _scale_nested(self, value):
        if isinstance(value, Tensor):
            # L_hat = S * L
            return value * self._scale_on(value.device)
        if isinstance(value, abc.Iterable):
            scaled = map(self._scale_nested, value)
            return type(value)(scaled) if isinstance(value, list | tuple) else scaled
        raise ValueError(f"outputs must be a Tensor or an iterable of Tensors (expected tensors, "
                         f"but got {type(value).__name__})")

    # ---- unscale_ ----------------------------------------------------------------------------

    def _inverse_scale(self) -> Tensor:
        r"""$1/S$ as a float32 tensor: the reciprocal in float64, then rounded (torch's way)."""
        if self._scale.device == torch.device("mps:0"):  # MPS has no float64
            return self._scale.reciprocal()
        # S^{-1} = fl32(1 / S) computed in float64
        return self._scale.double().reciprocal().float()

    @staticmethod
    def _unscale_grad_(grad: Tensor, inv_scale: Tensor, found_inf: Tensor) -> None:
        r"""found_inf $\leftarrow \max(\text{found\_inf}, [\exists i: \hat g_i \notin
        \mathbb{R}])$, then $g = \hat g \cdot S^{-1}$ in place (in float32 for 16-bit grads)."""
        # found_inf = max(found_inf, 1 if any element of g_hat is inf or NaN else 0)
        nonfinite = grad.isfinite().logical_not().any().to(found_inf.dtype)
        torch.maximum(found_inf, nonfinite, out=found_inf)
        # g = g_hat * S^{-1}, in float32 for float16 / bfloat16 (as torch's kernel computes it)
        low_precision = grad.dtype in (torch.float16, torch.bfloat16)
        compute_dtype = torch.float32 if low_precision else grad.dtype
        grad.copy_(grad.to(compute_dtype) * inv_scale.to(grad.device))

    def _unscale_grads_(self, optimizer: torch.optim.Optimizer, inv_scale: Tensor,
                        found_inf: Tensor, allow_fp16: bool) -> dict[torch.device, Tensor]:
        """Unscale every gradient of `optimizer`; one found_inf per device, as torch keeps them."""
        found_inf_per_device: dict[torch.device, Tensor] = {}
        with torch.no_grad():
            for group in optimizer.param_groups:
                for param in group["params"]:
                    if param.grad is None:
                        continue
                    if not allow_fp16 and param.grad.dtype == torch.float16:
                        raise ValueError("Attempting to unscale FP16 gradients. (expected float32 "
                                         "parameters and gradients: keep the model in float32 "
                                         "and let autocast run the forward in float16)")
                    if param.grad.is_sparse:
                        if param.grad.dtype is torch.float16:  # duplicates may overflow on sum
                            param.grad = param.grad.coalesce()
                        to_unscale = param.grad._values()
                    else:
                        to_unscale = param.grad
                    device = to_unscale.device
                    if device not in found_inf_per_device:
                        found_inf_per_device[device] = found_inf.to(device, copy=True)
                    self._unscale_grad_(to_unscale, inv_scale, found_inf_per_device[device])
        return found_inf_per_device

    def unscale_(self, optimizer: torch.optim.Optimizer) -> None:
        r"""Divide the gradients of `optimizer` by $S$, in place, and record whether any was
        inf or NaN. Call it at most once per optimizer between two `update()` calls."""
        if not self._enabled:
            return
        self._check_scale_growth_tracker("unscale_")
        optimizer_state = self._per_optimizer_states[id(optimizer)]
        if optimizer_state["stage"] is OptState.UNSCALED:
            raise RuntimeError("unscale_() has already been called on this optimizer since the "
                               "last update().")
        if optimizer_state["stage"] is OptState.STEPPED:
            raise RuntimeError("unscale_() is being called after step().")
        # found_inf = 0
        found_inf = torch.full((), 0.0, dtype=torch.float32, device=self._scale.device)
        optimizer_state["found_inf_per_device"] = self._unscale_grads_(
            optimizer, self._inverse_scale(), found_inf, allow_fp16=False)
        optimizer_state["stage"] = OptState.UNSCALED

    # ---- step --------------------------------------------------------------------------------

    def step(self, optimizer: torch.optim.Optimizer, *args, **kwargs):
        """Unscale (unless `unscale_` did), then `optimizer.step(*args, **kwargs)` unless an inf
        or NaN was found. Returns what `optimizer.step` returned, None when the step was skipped.

        Disabled: `optimizer.step(*args, **kwargs)` (a closure works then, not otherwise).
        """
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("Closure use is not currently supported if GradScaler is enabled.")
        self._check_scale_growth_tracker("step")
        optimizer_state = self._per_optimizer_states[id(optimizer)]
        if optimizer_state["stage"] is OptState.STEPPED:
            raise RuntimeError("step() has already been called since the last update().")
        if getattr(optimizer, "_step_supports_amp_scaling", False):
            return self._step_unscaling_inside(optimizer, optimizer_state, *args, **kwargs)
        if optimizer_state["stage"] is OptState.READY:
            self.unscale_(optimizer)
        if len(optimizer_state["found_inf_per_device"]) == 0:
            raise RuntimeError("No inf checks were recorded for this optimizer. (expected at "
                               "least one of its parameters to have a .grad)")
        retval = self._maybe_opt_step(optimizer, optimizer_state, *args, **kwargs)
        optimizer_state["stage"] = OptState.STEPPED
        return retval

    def _maybe_opt_step(self, optimizer, optimizer_state, *args, **kwargs):
        # step only when found_inf = 0 on every device
        if not sum(v.item() for v in optimizer_state["found_inf_per_device"].values()):
            return optimizer.step(*args, **kwargs)
        return None

    def _step_unscaling_inside(self, optimizer, optimizer_state, *args, **kwargs):
        """The fused optimizers' contract: they get S (or None once unscaled) and found_inf and
        unscale and skip inside their own kernel (older ones take `grad_scaler=self` instead)."""
        if "grad_scaler" in inspect.signature(optimizer.step).parameters:
            warnings.warn("GradScaler is going to stop passing itself as a keyword argument to "
                          "the passed optimizer. In the near future GradScaler registers "
                          "`grad_scale: Tensor` and `found_inf: Tensor` to the passed optimizer "
                          "and let the optimizer use them directly.", FutureWarning, stacklevel=3)
            retval = optimizer.step(*args, **{**kwargs, "grad_scaler": self})
            optimizer_state["stage"] = OptState.STEPPED
            return retval
        if optimizer_state["stage"] is OptState.READY:
            self._check_inf_per_device(optimizer)
        found_inf = sum(t.to(self._scale.device, non_blocking=True)
                        for t in optimizer_state["found_inf_per_device"].values())
        # the kernel divides by grad_scale: S (times a scale the caller set), None if unscaled
        optimizer.grad_scale = (getattr(optimizer, "grad_scale", None)
                                if optimizer_state["stage"] is OptState.UNSCALED
                                else self._scale * getattr(optimizer, "grad_scale", 1))
        optimizer.found_inf = found_inf
        retval = optimizer.step(*args, **kwargs)
        optimizer_state["stage"] = OptState.STEPPED
        del optimizer.grad_scale, optimizer.found_inf
        return retval

    def _check_inf_per_device(self, optimizer: torch.optim.Optimizer) -> dict:
        """found_inf of `optimizer`'s gradients without unscaling them (S^{-1} = 1)."""
        scale, _ = self._check_scale_growth_tracker("_check_inf_per_device")
        one = torch.full((), 1.0, dtype=torch.float32, device=scale.device)
        found_inf = torch.full((), 0.0, dtype=torch.float32, device=scale.device)
        state = self._per_optimizer_states[id(optimizer)]
        state["found_inf_per_device"] = self._unscale_grads_(optimizer, one, found_inf, True)
        return state["found_inf_per_device"]

    def _found_inf_per_device(self, optimizer: torch.optim.Optimizer) -> dict:
        return self._per_optimizer_states[id(optimizer)]["found_inf_per_device"]

    # ---- update ------------------------------------------------------------------------------

    def update(self, new_scale: float | Tensor | None = None) -> None:
        r"""Back off or grow $S$ from this iteration's found_inf (or set it to `new_scale`),
        then forget the iteration's per-optimizer records.

        .. math::
            \text{found\_inf}: S \leftarrow \beta S,\ n \leftarrow 0; \qquad
            \text{else}: n \leftarrow n+1,\ \text{and if } n = N:\ S \leftarrow \gamma S,\
            n \leftarrow 0
        """
        if not self._enabled:
            return
        self._check_scale_growth_tracker("update")
        if new_scale is not None:
            self._set_scale(new_scale)
        else:
            found_infs = [found_inf.to(device=self._scale.device, non_blocking=True)
                          for state in self._per_optimizer_states.values()
                          for found_inf in state["found_inf_per_device"].values()]
            if not found_infs:
                raise RuntimeError("No inf checks were recorded prior to update. (expected "
                                   "scaler.step(optimizer) or scaler.unscale_(optimizer) first)")
            self._update_scale_(found_inf=sum(t.item() for t in found_infs) > 0)
        self._per_optimizer_states = defaultdict(_ready_optimizer_state)

    def _update_scale_(self, found_inf: bool) -> None:
        """The growth / backoff rule of torch's `_amp_update_scale_`, in float32 and int32."""
        scale, tracker = self._scale.item(), int(self._growth_tracker.item())
        if found_inf:
            # S <- fl32(beta * S),  n <- 0
            self._scale.fill_(scale * self._backoff_factor)
            self._growth_tracker.fill_(0)
            return
        # n <- n + 1: one more finite step in a row
        successful = tracker + 1
        if successful == self._growth_interval:
            grown = torch.tensor(scale * self._growth_factor, dtype=torch.float32)
            # S <- fl32(gamma * S), unless that overflows float32 to inf;  n <- 0
            if torch.isfinite(grown):
                self._scale.copy_(grown)
            successful = 0
        self._growth_tracker.fill_(successful)

    def _set_scale(self, new_scale) -> None:
        if isinstance(new_scale, numbers.Real) and not isinstance(new_scale, bool):
            self._scale.fill_(new_scale)
            return
        reason = ("new_scale should be a float or a 1-element torch.cuda.FloatTensor or "
                  "torch.FloatTensor with requires_grad=False.")
        if not isinstance(new_scale, Tensor):
            raise TypeError(f"{reason} (expected a float, but got {type(new_scale).__name__})")
        if (new_scale.device.type != self._device or new_scale.numel() != 1
                or new_scale.requires_grad):
            raise ValueError(f"{reason} (expected one element on {self._device} without grad, "
                             f"but got {new_scale.numel()} on {new_scale.device.type}, "
                             f"requires_grad={new_scale.requires_grad})")
        self._scale.copy_(new_scale)

    # ---- getters, setters, state -------------------------------------------------------------

    def get_scale(self) -> float:
        """The current $S$ as a Python float (`init_scale` before the first `scale()`); 1.0 when
        disabled."""
        if not self._enabled:
            return 1.0
        return self._init_scale if self._scale is None else self._scale.item()

    def get_growth_factor(self) -> float:
        r"""$\gamma$, the factor $S$ grows by after `growth_interval` finite steps."""
        return self._growth_factor

    def set_growth_factor(self, new_factor: float) -> None:
        _check_growth_factor(new_factor)
        self._growth_factor = new_factor

    def get_backoff_factor(self) -> float:
        r"""$\beta$, the factor $S$ shrinks by after an overflow."""
        return self._backoff_factor

    def set_backoff_factor(self, new_factor: float) -> None:
        _check_backoff_factor(new_factor)
        self._backoff_factor = new_factor

    def get_growth_interval(self) -> int:
        """$N$, the number of finite steps in a row after which $S$ grows."""
        return self._growth_interval

    def set_growth_interval(self, new_interval: int) -> None:
        _check_growth_interval(new_interval)
        self._growth_interval = new_interval

    def _get_growth_tracker(self) -> int:
        if not self._enabled:
            return 0
        return (self._init_growth_tracker if self._growth_tracker is None
                else int(self._growth_tracker.item()))

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict[str, Any]:
        """torch's five entries: scale, growth_factor, backoff_factor, growth_interval,
        _growth_tracker; {} when disabled."""
        if not self._enabled:
            return {}
        return {"scale": self.get_scale(), "growth_factor": self._growth_factor,
                "backoff_factor": self._backoff_factor, "growth_interval": self._growth_interval,
                "_growth_tracker": self._get_growth_tracker()}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore what `state_dict()` returned (ours or torch's); a no-op when disabled."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError("The source state dict is empty, possibly because it was saved "
                               "from a disabled instance of GradScaler.")
        self._init_scale = state_dict["scale"]
        if self._scale is not None:
            self._scale.fill_(state_dict["scale"])
        self._growth_factor = state_dict["growth_factor"]
        self._backoff_factor = state_dict["backoff_factor"]
        self._growth_interval = state_dict["growth_interval"]
        self._init_growth_tracker = state_dict["_growth_tracker"]
        if self._growth_tracker is not None:
            self._growth_tracker.fill_(state_dict["_growth_tracker"])

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self._enabled:
            if len(self._per_optimizer_states) != 0:
                raise RuntimeError("A GradScaler instance may only be pickled at the beginning "
                                   "of an iteration, or at the end after scaler.update().")
            state["_init_scale"] = self.get_scale()
            state["_init_growth_tracker"] = self._get_growth_tracker()
            state["_scale"] = None
            state["_growth_tracker"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


# --------------------------------------------------------------------------------------------
# Ours against torch's: a whole training run, every step compared
# --------------------------------------------------------------------------------------------


def _linear_logits(weight: Tensor, bias: Tensor, features: Tensor) -> Tensor:
    return features @ weight.T + bias


def scaler_trajectory(scaler_class: type, *, weight: Tensor, bias: Tensor, features: Tensor,
                      labels: Tensor, steps: int = 40, optimizer: str = "Adam",
                      optimizer_options: Mapping | None = None,
                      inject: Mapping[int, float] | None = None,
                      max_norm: float | None = None, autocast_dtype: torch.dtype | None = None,
                      batch_size: int = 16, **scaler_options) -> dict[str, Any]:
    """Train a softmax regression with `scaler_class(**scaler_options)`; what every step left.

    Each step: `scale(loss).backward()`, then `inject[t]` (inf or NaN) written into one
    gradient element at step t (an overflow made to order), then with `max_norm`
    `unscale_` -> `clip_grad_norm_`, then `step` and `update`. `autocast_dtype` runs the forward
    under `torch.autocast` on the parameters' device (float16 there overflows for real).
    Returns `{"scale", "growth_tracker", "skipped"}` (one value per step; skipped = the
    optimizer's `step()` was not called), `"params"` (each parameter stacked over the steps)
    and `"state"` (per parameter, each state entry stacked over the steps, NaN at the steps
    before the optimizer created it: Adam has none until its first step that was not skipped).
    """
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"expected a positive number of steps, but got {steps!r}")
    if not isinstance(getattr(torch.optim, optimizer, None), type):
        raise ValueError(f"expected the name of a torch.optim optimizer such as 'Adam', but got "
                         f"{optimizer!r}")
    params = [weight.detach().clone().requires_grad_(True),
              bias.detach().clone().requires_grad_(True)]
    opt = getattr(torch.optim, optimizer)(params, **{"lr": 0.05, **(optimizer_options or {})})
    scaler = scaler_class(weight.device.type, **scaler_options)
    stepped = []
    opt.register_step_post_hook(lambda *_: stepped.append(True))
    inject = dict(inject or {})
    record = {"scale": [], "growth_tracker": [], "skipped": [], "params": [], "state": []}
    autocast = (torch.autocast(weight.device.type, dtype=autocast_dtype) if autocast_dtype
                else contextlib.nullcontext())
    for t in range(steps):
        opt.zero_grad()
        start = (t * batch_size) % len(features)
        x, y = features[start:start + batch_size], labels[start:start + batch_size]
        with torch.enable_grad():
            with autocast:
                loss = F.cross_entropy(_linear_logits(*params, x), y)
            scaler.scale(loss).backward()
        if t in inject:
            params[0].grad.view(-1)[t % params[0].numel()] = inject[t]
        if max_norm is not None:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(params, max_norm)
        calls = len(stepped)
        scaler.step(opt)
        scaler.update()
        state = scaler.state_dict()
        record["scale"].append(state["scale"])
        record["growth_tracker"].append(state["_growth_tracker"])
        record["skipped"].append(len(stepped) == calls)
        record["params"].append([p.detach().clone() for p in params])
        record["state"].append([{k: torch.as_tensor(v).clone() for k, v in opt.state[p].items()}
                                for p in params])
    return {"scale": torch.tensor(record["scale"], dtype=torch.float64),
            "growth_tracker": torch.tensor(record["growth_tracker"]),
            "skipped": torch.tensor(record["skipped"]),
            "params": [torch.stack(history) for history in zip(*record["params"])],
            "state": [_stack_states(history) for history in zip(*record["state"])]}


def _stack_states(history: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """One parameter's state dicts over the steps as {key: stacked values}, NaN where missing."""
    keys = list(dict.fromkeys(key for state in history for key in state))
    first = {key: next(state[key] for state in history if key in state) for key in keys}
    return {key: torch.stack([state[key] if key in state
                              else torch.full_like(first[key], math.nan) for state in history])
            for key in keys}


_INF, _NAN = math.inf, math.nan

_SCALER_RUNS: dict[str, dict] = {
    "GradScaler(growth_interval=3), Adam, inf/NaN injected": dict(
        growth_interval=3, init_scale=2.0**10,
        inject={4: _INF, 5: _NAN, 9: -_INF, 16: _INF, 17: _INF, 18: _NAN, 30: _NAN}),
    "GradScaler(1000.0, 1.5, 0.3, 2) + unscale_ + clip_grad_norm_, SGD": dict(
        init_scale=1000.0, growth_factor=1.5, backoff_factor=0.3, growth_interval=2,
        optimizer="SGD", optimizer_options=dict(lr=0.2, momentum=0.9, weight_decay=1e-2),
        max_norm=0.05, inject={3: _NAN, 7: _INF, 8: _INF, 21: -_INF}),
}
"""The runs `SCALER_CHECKS` compare: growth and backoff both happen, with and without clipping,
with powers of two and with scales whose reciprocal rounds."""

_AUTOCAST_RUN = dict(init_scale=2.0**24, growth_interval=4, autocast_dtype=torch.float16,
                     optimizer_options=dict(lr=0.02))
"""float16 autocast with an initial scale far too large: the scaled gradients overflow for
real, the scaler backs off until they fit and then keeps probing."""


def _scaler_check(name: str, options: dict, dtypes: tuple[torch.dtype, ...]) -> Check:
    return Check(name, partial(scaler_trajectory, GradScaler, **options),
                 partial(scaler_trajectory, torch.amp.GradScaler, **options),
                 softmax_regression_problem, dtypes=dtypes,
                 tolerances={dtype: EXACT for dtype in dtypes})


SCALER_CHECKS = tuple(
    [_scaler_check(name, options, (torch.float64, torch.float32))
     for name, options in _SCALER_RUNS.items()]
    + [_scaler_check("GradScaler(2**24, growth_interval=4) under float16 autocast",
                     _AUTOCAST_RUN, (torch.float32,))])
"""Ours vs `torch.amp.GradScaler`: scale, growth tracker, skipped steps, parameters and optimizer
state after every step, bit for bit (tolerance 0)."""

register(*SCALER_CHECKS)


# --------------------------------------------------------------------------------------------
# Precision: what autocast runs in which dtype, and what it costs
# --------------------------------------------------------------------------------------------


def _probe_ops() -> dict[str, Callable[[Tensor], Tensor]]:
    """Ops of a small classifier, each a function of one (4, 8) input."""
    def weight(x: Tensor) -> Tensor:  # a float32 (3, 8) weight on the input's device
        return torch.linspace(-1, 1, 24, device=x.device).reshape(3, 8)

    def labels(x: Tensor) -> Tensor:
        return torch.tensor([0, 1, 2, 0], device=x.device)

    return {
        "linear": lambda x: F.linear(x, weight(x)),
        "matmul": lambda x: x @ weight(x).T,
        "conv1d": lambda x: F.conv1d(x[None], weight(x)[:, :4, None]),
        "relu": F.relu,
        "gelu": F.gelu,
        "exp": torch.exp,
        "sum": torch.sum,
        "layer_norm": lambda x: F.layer_norm(x, (8,)),
        "softmax": lambda x: F.softmax(x, dim=-1),
        "log_softmax": lambda x: F.log_softmax(x, dim=-1),
        "cross_entropy": lambda x: F.cross_entropy(x[:, :3], labels(x)),
        "nll_loss": lambda x: F.nll_loss(x[:, :3], labels(x)),
        "mse_loss": lambda x: F.mse_loss(x, torch.zeros_like(x)),
        "binary_cross_entropy_with_logits":
            lambda x: F.binary_cross_entropy_with_logits(x, torch.zeros_like(x)),
    }


def autocast_op_dtypes(device_type: str = "cpu", dtype: torch.dtype = torch.bfloat16
                       ) -> dict[str, tuple[torch.dtype, torch.dtype]]:
    """Under `torch.autocast(device_type, dtype)`: each op's output dtype for a float32 input
    and for an input already in `dtype` (what the previous, autocast op produced).

    The two columns tell the three kinds of op apart: cast down (linear, matmul, conv: `dtype`
    from float32), cast up (losses: float32 from `dtype`), and "follow the input" (the rest).
    On the CPU (torch 2.13, bfloat16 and float16 alike) softmax, log_softmax, layer_norm, exp
    and sum follow their input, so a softmax after a linear layer runs in 16 bits; CUDA's
    autocast lists put them in float32. Only the losses go back up to float32 on both.
    """
    rows = {}
    x = torch.linspace(-2, 2, 32, device=device_type).reshape(4, 8)
    with torch.autocast(device_type, dtype=dtype):
        for name, op in _probe_ops().items():
            rows[name] = (op(x).dtype, op(x.to(dtype)).dtype)
    return rows


def autocast_module_dtypes(model: torch.nn.Module, inputs: Tensor, targets: Tensor | None = None,
                           loss_fn: torch.nn.Module | None = None, *, device_type: str = "cpu",
                           dtype: torch.dtype = torch.bfloat16) -> list[dict[str, Any]]:
    """One forward (and loss) under autocast; per leaf module: its input and output dtypes.

    Rows `{"module", "type", "input", "output"}` in call order (the dtype of the first input and
    of the output, None where that is not a tensor); `loss_fn` (a module such as
    `torch.nn.CrossEntropyLoss()`) gets the last row. The parameters keep their dtype.
    """
    rows: list[dict[str, Any]] = []

    def record(name: str):
        def hook(module, args, output):
            rows.append({"module": name, "type": type(module).__name__,
                         "input": getattr(args[0], "dtype", None) if args else None,
                         "output": getattr(output, "dtype", None)})
        return hook

    leaves = [(name, m) for name, m in model.named_modules() if not list(m.children())]
    if loss_fn is not None:
        leaves.append(("loss", loss_fn))
    handles = [m.register_forward_hook(record(name)) for name, m in leaves]
    try:
        with torch.no_grad(), torch.autocast(device_type, dtype=dtype):
            output = model(inputs)
            if loss_fn is not None:
                loss_fn(output, targets)
    finally:
        for handle in handles:
            handle.remove()
    return rows


def _relative_error(value: Tensor, reference: Tensor) -> float:
    r"""$\lVert x - x_{ref}\rVert_2 / \lVert x_{ref}\rVert_2$ in float64."""
    value, reference = value.double().flatten(), reference.double().flatten()
    return ((value - reference).norm() / reference.norm()).item()


def _loss_and_gradient(model: torch.nn.Module, inputs: Tensor, targets: Tensor,
                       loss_fn: Callable, dtype: torch.dtype, context) -> tuple[Tensor, Tensor]:
    """Loss and flat gradient of a copy of `model` whose parameters and inputs are in `dtype`."""
    model = copy.deepcopy(model).to(dtype)
    if targets.is_floating_point():
        targets = targets.to(dtype)
    with torch.enable_grad():
        with context:
            loss = loss_fn(model(inputs.to(dtype)), targets)
        loss.backward()
    return loss.detach(), torch.cat([p.grad.flatten() for p in model.parameters()])


def autocast_error(model: torch.nn.Module, inputs: Tensor, targets: Tensor,
                   loss_fn: Callable = F.cross_entropy, *, device_type: str = "cpu",
                   dtype: torch.dtype = torch.bfloat16) -> dict[str, float]:
    r"""Relative errors of the loss and of the whole gradient under `torch.autocast(dtype)`,
    against a float64 copy of the same model:

    .. math::
        \frac{|L - L_{64}|}{|L_{64}|}, \qquad
        \frac{\lVert \nabla L - \nabla L_{64}\rVert_2}{\lVert \nabla L_{64}\rVert_2}

    `dtype=torch.float32` runs without autocast: float32's own error, for comparison. `model`
    (float32 parameters) is left untouched: both runs use copies.
    """
    if dtype == torch.float32:
        context = contextlib.nullcontext()
    else:
        context = torch.autocast(device_type, dtype=dtype)
    loss, grad = _loss_and_gradient(model, inputs, targets, loss_fn, torch.float32, context)
    loss64, grad64 = _loss_and_gradient(model, inputs, targets, loss_fn, torch.float64,
                                        contextlib.nullcontext())
    return {"loss": _relative_error(loss, loss64), "grad": _relative_error(grad, grad64)}


def float16_cast_fractions(values: Tensor, scale: float = 1.0) -> dict[str, float]:
    r"""Where the non-zero `values` land when $S \cdot$ `values` is stored in float16.

    Fractions of the non-zero values (they sum to 1): ``"zero"`` (flushed: $|Sg| \le 2^{-25}$),
    ``"subnormal"`` ($0 < |\mathrm{fl}_{16}(Sg)| < 2^{-14}$, fewer significant bits),
    ``"normal"`` (full 11-bit precision) and ``"overflow"`` (inf: $|Sg| \ge 65520$). A good
    $S$ empties "zero" and "subnormal" without filling "overflow".
    """
    if not isinstance(values, Tensor) or not values.is_floating_point():
        raise TypeError(f"expected a floating-point tensor of gradient values, but got "
                        f"{type(values).__name__}")
    _check_real("scale", scale)
    if not 0 < scale < math.inf:
        raise ValueError(f"expected a finite scale > 0, but got {scale!r}")
    nonzero = values.detach().double().flatten()
    nonzero = nonzero[nonzero != 0]
    if nonzero.numel() == 0:
        raise ValueError("expected at least one non-zero value, but got none")
    # fl16(S * g): the value the scaled backward pass stores
    stored = (nonzero * scale).to(torch.float16).double().abs()
    counts = {"zero": stored == 0,
              "subnormal": (stored > 0) & (stored < FLOAT16_SMALLEST_NORMAL),
              "normal": (stored >= FLOAT16_SMALLEST_NORMAL) & (stored <= FLOAT16_MAX),
              "overflow": stored.isinf()}
    return {name: mask.double().mean().item() for name, mask in counts.items()}


def clip_order_effect(grads: Sequence[Tensor], *, max_norm: float, scale: float = 2.0**16,
                      scaler_class: type = GradScaler) -> dict[str, float]:
    r"""One SGD step (lr = 1) on the gradients `grads`, clipped to `max_norm` in the right order
    (`unscale_` -> clip -> `step`) and in the wrong one (clip -> `step`, which unscales after).

    .. math::
        \text{right: } \mathrm{clip}_c(\hat g / S) = \mathrm{clip}_c(g), \qquad
        \text{wrong: } \mathrm{clip}_c(\hat g) / S = \mathrm{clip}_{c/S}(g)

    Returns the norm of the true gradient, of each update, `effective_max_norm` = $c/S$ (the
    threshold the wrong order applies) and `too_small` = right / wrong update norms ($S$ once
    the true gradient is clipped anyway, $S\lVert g\rVert/c$ below that).
    """
    grads = [g.detach().float() for g in grads]
    if not grads:
        raise ValueError("expected at least one gradient tensor, but got none")
    if all(not g.any() for g in grads):
        raise ValueError("expected a non-zero gradient (the two orders' updates are compared "
                         "by their ratio), but got all zeros")
    norms = {}
    for order in ("right", "wrong"):
        params = [torch.zeros_like(g, requires_grad=True) for g in grads]
        optimizer = torch.optim.SGD(params, lr=1.0)
        scaler = scaler_class(grads[0].device.type, init_scale=scale)
        with torch.enable_grad():
            # L = sum_i <theta_i, g_i>, so that dL/dtheta_i = g_i; backward gives S * g_i
            scaler.scale(sum((p * g).sum() for p, g in zip(params, grads))).backward()
        if order == "right":
            scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        scaler.step(optimizer)
        scaler.update()
        # theta_1 = theta_0 - 1 * clipped g = -clipped g
        norms[order] = torch.cat([p.detach().flatten() for p in params]).norm().item()
    grad_norm = torch.cat([g.flatten() for g in grads]).norm().item()
    return {"grad_norm": grad_norm, "right_update_norm": norms["right"],
            "wrong_update_norm": norms["wrong"], "effective_max_norm": max_norm / scale,
            "too_small": norms["right"] / norms["wrong"]}
