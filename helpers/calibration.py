r"""Calibration: do a classifier's probabilities mean what they say?

A binary classifier is *calibrated* when, among the samples to which it gives probability $p$, a
share $p$ is positive: $P(Y = 1 \mid \hat p = p) = p$. Class weights and resampling (chapter 10)
buy recall on a rare class by pushing its probabilities up, so a class-weighted model's 0.9 may be
right half of the time. Two tools measure that, two repair it:

    calibration_curve            bin the predictions; per bin the share of positives y_b (prob_true)
                                 against the mean prediction p_b (prob_pred)
    expected_calibration_error   ECE = sum_b (n_b / N) |y_b - p_b|, the gap of that curve weighted
                                 by the samples in each bin
    fit_temperature              one T > 0: probabilities softmax(z / T) (or sigmoid(z / T)) of
                                 minimal cross-entropy; the argmax, and so accuracy, is unchanged
    fit_platt                    (a, b): probabilities sigmoid(a s + b), logistic regression on
                                 the single feature s (Platt scaling)

Both are maximum-likelihood fits on held-out data (the validation set: a calibration map fitted
on the training data learns little, as chapter 08's protocol says), computed in float64 by
Newton's method to about 1e-15 relative.

Names and semantics follow `sklearn.calibration`: `calibration_curve(y_true, y_prob, *,
pos_label=None, n_bins=5, strategy="uniform")` is scikit-learn's, bin for bin (the same edges,
built as NumPy builds them, the same side of each edge, empty bins dropped); `calibration_bins`
returns its counts as well, for a reliability diagram (`helpers.plots.plot_reliability_diagram`).

Notes (deliberate differences):
* y_true holds integer or bool labels (scikit-learn also takes floats and strings), pos_label is
  an integer, and y_prob floating-point probabilities; a column (N, 1) is an error, not squeezed.
* Results are tensors on the input's device: float64 (float32 on MPS, which has no float64).
* `expected_calibration_error` has no scikit-learn counterpart. torchmetrics'
  `binary_calibration_error` (read in torchmetrics 1.9.0) bins differently: 15 bins by default
  (ours 10); its bins are closed on the *left*, [e_k, e_{k+1}), through
  `torch.bucketize(p, edges, right=True) - 1`, so a probability exactly on an inner edge lands in
  the upper bin and p = 1.0 in an extra bin of its own, while ours, as scikit-learn's, are closed on
  the right, (e_k, e_{k+1}] (the first [0, e_1]); its edges are `torch.linspace` in the dtype of
  the predictions, ours NumPy's `linspace` in float64; and it applies a sigmoid when a prediction
  lies outside [0, 1], where ours raises. With no probability on an edge (1.0 included) the two
  agree, to about 1e-16 in float64.
* `fit_temperature` returns the temperature T; scikit-learn's `CalibratedClassifierCV(method=
  "temperature")` stores the inverse temperature beta = 1/T, and for binary decision values x
  uses the logits (-x, x), so its beta there is 1 / (2 T).
* `fit_platt` returns (a, b) of p = sigmoid(a s + b); scikit-learn's `_SigmoidCalibration` stores
  the opposite signs, p = 1 / (1 + exp(A s + B)), so A = -a and B = -b.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from typing import NamedTuple

import torch
from sklearn.exceptions import ConvergenceWarning  # the same class: one filter silences both
from torch import Tensor

from helpers.metrics.validation import (
    _as_tensor,
    _check_pos_label,
    _class_labels,
    _labels,
    _same_samples,
    _score_dtype,
    _scores,
)
from helpers.verify import Check, Tolerance, numpy_reference, register

__all__ = ["NORMS", "STRATEGIES", "CalibrationBins", "calibration_bins", "calibration_curve",
           "expected_calibration_error", "fit_platt", "fit_temperature"]

STRATEGIES = ("uniform", "quantile")
"""The values of `strategy`: bins of equal width, or of (about) equal numbers of samples."""

NORMS = ("l1", "l2", "max")
"""The values of `norm` in `expected_calibration_error`: ECE, RMS calibration error, MCE."""

_EPS = torch.finfo(torch.float64).eps


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _check_integer(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"expected {name} to be an integer >= {minimum}, but got {value!r}")
    return int(value)


def _check_strategy(strategy) -> None:
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"expected strategy to be 'uniform' or 'quantile', but got {strategy!r}")


def _positives(y_true, y_prob, pos_label) -> tuple[Tensor, Tensor]:
    """(y_true == pos_label, y_prob): binary labels and probabilities in [0, 1], or an error."""
    y_true, y_prob = _class_labels(y_true, "y_true"), _scores(y_prob, "y_prob")
    _same_samples(y_true, y_prob, "y_true and y_prob")
    if not len(y_true):
        raise ValueError("expected at least one sample, but y_true and y_prob are empty")
    low, high = y_prob.min().item(), y_prob.max().item()
    if low < 0 or high > 1:
        raise ValueError(f"expected probabilities in [0, 1] in y_prob, but got values from "
                         f"{low:.6g} to {high:.6g}; turn scores into probabilities first, e.g. "
                         "torch.sigmoid(logits)")
    classes = torch.unique(y_true).tolist()
    if len(classes) > 2:
        raise ValueError(f"expected binary y_true, but it holds {len(classes)} classes {classes}; "
                         "calibrate one class at a time: (y_true == k, y_prob[:, k])")
    if pos_label is None:
        if not (set(classes) <= {0, 1} or set(classes) <= {-1, 1}):
            raise ValueError(f"y_true holds the classes {classes}, so pos_label must be given: "
                             "expected labels in {0, 1} or {-1, 1}, or an explicit pos_label")
        pos_label = 1
    _check_pos_label(pos_label)
    return y_true == pos_label, y_prob


# --------------------------------------------------------------------------------------------
# The calibration curve
# --------------------------------------------------------------------------------------------


def _linspace(n_bins: int) -> list[float]:
    """NumPy's `linspace(0, 1, n_bins + 1)` bit for bit: k * (1 / n_bins), the last exactly 1.

    (`torch.linspace` fills its second half from the end, so some edges differ in the last bit:
    with 10 bins its 0.6 is NumPy's 0.6000000000000001, and the probability 0.6000000000000001
    would fall on the other side of it.)
    """
    step = 1.0 / n_bins
    return [k * step for k in range(n_bins)] + [1.0]


def _inner_edges(y_prob: Tensor, n_bins: int, strategy: str, dtype: torch.dtype) -> Tensor:
    r"""The n_bins - 1 inner bin edges $e_1 \le \dots \le e_{n-1}$ as scikit-learn computes them.

    "uniform": $e_k = k / n$. "quantile": `np.percentile(y_prob, q * 100)` at the levels
    $q_k = k/n$, the default "linear" method: in the sorted probabilities
    $x_{(0)} \le \dots \le x_{(N-1)}$, the virtual index $h = (N - 1) q$, $j = \lfloor h \rfloor$
    and $\gamma = h - j$ give $e = x_{(j)} + \gamma\, (x_{(j + 1)} - x_{(j)})$, evaluated from the
    upper end, $x_{(j+1)} - (1 - \gamma)(x_{(j + 1)} - x_{(j)})$, when $\gamma \ge 1/2$; the
    difference in the dtype of y_prob, the rest in float64: all as NumPy does.
    """
    grid = _linspace(n_bins)
    if strategy == "uniform":
        return torch.tensor(grid[1:-1], dtype=dtype, device=y_prob.device)
    levels = [g * 100 / 100 for g in grid[1:-1]]  # percentile() gets q * 100 and divides by 100
    ordered = torch.sort(y_prob).values
    last = len(ordered) - 1
    virtual = [last * q for q in levels]
    below = [last if h >= last else math.floor(h) for h in virtual]
    above = [last if h >= last else math.floor(h) + 1 for h in virtual]
    gamma = torch.tensor([h - math.floor(h) for h in virtual], dtype=dtype, device=y_prob.device)
    low, high = ordered[below], ordered[above]
    diff = (high - low).to(dtype)
    return torch.where(gamma >= 0.5, high.to(dtype) - diff * (1 - gamma),
                       low.to(dtype) + diff * gamma)


def _bin_ids(y_prob: Tensor, inner_edges: Tensor) -> Tensor:
    r"""The bin of each probability: the number of inner edges strictly below it.

    NumPy's `searchsorted(edges, p)` (side "left"): $p$ goes to bin $k$ when
    $e_k < p \le e_{k+1}$, so a probability on an edge belongs to the lower bin, 0 to the first
    and 1 to the last: bins closed on the right.
    """
    return torch.searchsorted(inner_edges, y_prob)


class CalibrationBins(NamedTuple):
    """The non-empty bins of a calibration curve, in increasing order of probability."""

    prob_true: Tensor  # the share of positives in each bin
    prob_pred: Tensor  # the mean predicted probability in each bin
    count: Tensor  # the number of samples in each bin (int64)


def calibration_bins(y_true, y_prob, *, pos_label=None, n_bins: int = 5,
                     strategy: str = "uniform") -> CalibrationBins:
    r"""`calibration_curve` and the number of samples in each of its bins.

    With $B_k$ the samples in bin $k$ and $n_k = |B_k|$ (bins with $n_k = 0$ are left out):

    .. math::
        \text{prob\_true}_k = \frac{1}{n_k} \sum_{i \in B_k} [y_i = \text{pos}], \qquad
        \text{prob\_pred}_k = \frac{1}{n_k} \sum_{i \in B_k} p_i

    The counts let a reliability diagram show how much data stands behind each point, and make
    the expected calibration error a count-weighted mean of the gaps.
    """
    positive, y_prob = _positives(y_true, y_prob, pos_label)
    n_bins = _check_integer("n_bins", n_bins, 1)
    _check_strategy(strategy)
    dtype = _score_dtype(y_prob.device)
    prob = y_prob.to(dtype)  # exact for float32 and float16 probabilities
    bins = _bin_ids(prob, _inner_edges(y_prob, n_bins, strategy, dtype))
    zeros = torch.zeros(n_bins, dtype=dtype, device=prob.device)
    count = torch.zeros(n_bins, dtype=torch.long, device=prob.device).index_add_(
        0, bins, torch.ones_like(bins))
    sum_true = zeros.index_add(0, bins, positive.to(dtype))  # positives in each bin
    sum_pred = zeros.index_add(0, bins, prob)  # predicted probabilities in each bin
    kept = count != 0
    return CalibrationBins(sum_true[kept] / count[kept], sum_pred[kept] / count[kept], count[kept])


def calibration_curve(y_true, y_prob, *, pos_label=None, n_bins: int = 5,
                      strategy: str = "uniform") -> tuple[Tensor, Tensor]:
    r"""The share of positives against the mean predicted probability, bin by bin.

    Split [0, 1] into `n_bins` bins with edges $0 = e_0 < e_1 < \dots < e_n = 1$: "uniform"
    $e_k = k/n$, or "quantile" $e_k$ = the $k/n$ quantile of y_prob (bins of about $N/n$ samples
    each; tied probabilities can make edges coincide and bins empty). Sample $i$ goes to the bin
    $k$ with $e_k < p_i \le e_{k+1}$ (the first bin includes 0). For each non-empty bin $B_k$:

    .. math::
        \text{prob\_true}_k = \frac{1}{|B_k|} \sum_{i \in B_k} [y_i = \text{pos}], \qquad
        \text{prob\_pred}_k = \frac{1}{|B_k|} \sum_{i \in B_k} p_i

    A calibrated model has prob_true close to prob_pred: its points lie on the diagonal of the
    reliability diagram. A point below it (prob_true < prob_pred) over-predicts the positive
    class: the bin holds fewer positives than predicted. That is over-confidence only where
    prob_pred > 0.5; below 0.5 such a model is under-confident (it should be surer of the
    negative). Above the diagonal it under-predicts the positive class, over-confident where
    prob_pred < 0.5. Returns (prob_true, prob_pred), with as many entries as there are non-empty
    bins. `pos_label` None means 1 for labels in {0, 1} or
    {-1, 1}. As `sklearn.calibration.calibration_curve`.
    """
    prob_true, prob_pred, _ = calibration_bins(y_true, y_prob, pos_label=pos_label,
                                               n_bins=n_bins, strategy=strategy)
    return prob_true, prob_pred


# --------------------------------------------------------------------------------------------
# The expected calibration error
# --------------------------------------------------------------------------------------------


def _calibration_error(bins: CalibrationBins, norm: str) -> Tensor:
    gap = (bins.prob_true - bins.prob_pred).abs()  # |y_b - p_b|
    if norm == "max":
        return gap.max()
    weight = bins.count.to(gap.dtype) / bins.count.sum()  # n_b / N
    if norm == "l1":
        return (weight * gap).sum()
    return (weight * gap**2).sum().sqrt()


def expected_calibration_error(y_true, y_prob, *, n_bins: int = 10, strategy: str = "uniform",
                               pos_label=None, norm: str = "l1") -> Tensor:
    r"""The expected calibration error: the gaps of the calibration curve, weighted by counts.

    With the bins of `calibration_curve` (the same `n_bins`, `strategy`, `pos_label`), $n_b$
    samples in bin $b$ out of $N$, $\bar y_b$ its share of positives and $\bar p_b$ its mean
    probability:

    .. math::
        \text{ECE} = \sum_b \frac{n_b}{N} \left| \bar y_b - \bar p_b \right|
        = \frac{1}{N} \sum_b \Big| \sum_{i \in b} (y_i - p_i) \Big|

    the mean, over samples, of the gap of their bin. norm="l2":
    $\sqrt{\sum_b \frac{n_b}{N} (\bar y_b - \bar p_b)^2}$ (root-mean-square calibration error);
    norm="max": $\max_b |\bar y_b - \bar p_b|$ over the non-empty bins (maximum calibration
    error, MCE), which a bin of a single sample can dominate. 0 for a model whose bin means agree;
    it depends on the binning, so compare models only at the same `n_bins` and `strategy`.
    Returns a 0-d tensor.

    Note: torchmetrics' `binary_calibration_error` computes the same three norms over other bins:
    15 by default, closed on the left, [e_k, e_{k+1}) (`torch.bucketize(p, edges, right=True)`),
    with p = 1.0 in a bin of its own; here, as in scikit-learn's `calibration_curve`, they are
    closed on the right, (e_k, e_{k+1}], so a probability on an edge counts in the lower bin.
    """
    if not isinstance(norm, str) or norm not in NORMS:
        raise ValueError(f"expected norm to be 'l1', 'l2' or 'max', but got {norm!r}")
    bins = calibration_bins(y_true, y_prob, pos_label=pos_label, n_bins=n_bins,
                            strategy=strategy)
    return _calibration_error(bins, norm)


# --------------------------------------------------------------------------------------------
# Temperature scaling
# --------------------------------------------------------------------------------------------


def _logits_and_targets(logits, targets) -> tuple[Tensor, Tensor]:
    """(N, C) logits in float64 (binary (N,) logits z as the two columns (0, z)), int64 targets."""
    z = _as_tensor(logits, "logits")
    if z.ndim not in (1, 2) or (z.ndim == 2 and z.shape[1] < 2):
        raise ValueError(f"expected logits of shape (N,) (binary: one logit per sample) or (N, C) "
                         f"with C >= 2 classes, but got shape {tuple(z.shape)}")
    if not z.is_floating_point():
        raise TypeError(f"expected floating-point logits, but got {z.dtype}")
    if not bool(torch.isfinite(z).all()):
        raise ValueError("expected finite logits, but got NaN or infinite values")
    y = _labels(targets, "targets")
    _same_samples(z, y, "logits and targets")
    if not len(y):
        raise ValueError("expected at least one sample, but logits and targets are empty")
    n_classes = 2 if z.ndim == 1 else z.shape[1]
    if bool(((y < 0) | (y >= n_classes)).any()):
        kind = "0 or 1 for binary logits" if z.ndim == 1 else f"in 0..{n_classes - 1}"
        raise ValueError(f"expected targets {kind}, but got values from {y.min().item()} to "
                         f"{y.max().item()}")
    z = z.detach().to(_score_dtype(z.device))
    if z.ndim == 1:  # sigmoid(z) = softmax((0, z))[1]
        z = torch.stack([torch.zeros_like(z), z], dim=1)
    return z, y


def _temperature_terms(z: Tensor, true_logit: Tensor, beta: float) -> tuple[float, float]:
    r"""$L'(\beta)$ and $L''(\beta)$ of the mean cross-entropy at inverse temperature $\beta$."""
    p = torch.softmax(beta * z, dim=1)
    expected = (p * z).sum(1)  # E_p[z_i]
    gradient = (expected - true_logit).mean()  # mean of E_p[z_i] - z_{i, y_i}
    curvature = (p * (z - expected[:, None]) ** 2).sum(1).mean()  # mean of Var_p(z_i)
    return gradient.item(), curvature.item()


def fit_temperature(logits, targets, *, max_iter: int = 100) -> Tensor:
    r"""The temperature $T > 0$ that minimises the mean cross-entropy of softmax(logits / T).

    With logits $z_i \in \mathbb{R}^C$, targets $y_i$ and the inverse temperature
    $\beta = 1/T$, the loss and its derivatives are

    .. math::
        L(\beta) = \frac{1}{N} \sum_i \Big( \log \sum_c e^{\beta z_{ic}} - \beta z_{i y_i} \Big),
        \qquad
        L'(\beta) = \frac{1}{N} \sum_i \big( \mathbb{E}_{p_i}[z_i] - z_{i y_i} \big), \qquad
        L''(\beta) = \frac{1}{N} \sum_i \operatorname{Var}_{p_i}(z_i) \ge 0

    where $p_i = \operatorname{softmax}(\beta z_i)$, because
    $\partial_\beta \log \sum_c e^{\beta z_{ic}} = \sum_c p_{ic} z_{ic}$ and
    $\partial_\beta p_{ic} = p_{ic} (z_{ic} - \mathbb{E}_{p_i}[z_i])$. $L$ is convex in $\beta$,
    so there is at most one minimum: the temperature at which the expected logit, averaged over
    the samples, equals the average logit of the true class. It is fitted by Newton's method on
    $u = \log T$ (so that $T$ stays positive), $\beta = e^{-u}$:

    .. math::
        \frac{dL}{du} = -\beta L'(\beta), \qquad
        \frac{d^2L}{du^2} = \beta L'(\beta) + \beta^2 L''(\beta), \qquad
        u \leftarrow u - \frac{dL/du}{d^2L/du^2}

    safeguarded by bisection inside a bracket of the root of $L'$, in float64, until the step in
    $u$ reaches rounding level. Binary logits of shape (N,) with 0/1 targets use
    sigmoid(z / T) = softmax((0, z) / T)[1], i.e. the binary cross-entropy with logits.

    The argmax of logits / T is that of the logits, so accuracy does not change; only the
    confidence does. T > 1 softens an over-confident model. There is no minimum when the logits
    rank the true class first for every sample (the loss falls as T -> 0; fit on held-out data),
    or when they score the true class no higher than the mean logit on average (T -> infinity);
    both raise ValueError. Returns a 0-d float64 tensor (float32 on MPS) on the logits' device.
    """
    max_iter = _check_integer("max_iter", max_iter, 1)
    z, y = _logits_and_targets(logits, targets)
    true_logit = z.gather(1, y[:, None]).squeeze(1)
    if bool((true_logit >= z.max(1).values).all()):
        raise ValueError("expected some samples whose true class is not ranked first, but the "
                         "logits rank the true class first for every sample: the cross-entropy "
                         "keeps falling as T -> 0 and has no minimum; fit the temperature on "
                         "held-out data, not on the data the model was trained on")
    if (z.mean(1) - true_logit).mean().item() >= 0:  # L'(0) >= 0: no beta > 0 does better
        raise ValueError("expected logits that score the true class above the mean logit on "
                         "average, but they do not: the cross-entropy is smallest as T -> "
                         "infinity (uniform probabilities)")

    def slope(u: float) -> float:  # L'(beta) at beta = e^-u; it decreases as u grows
        return _temperature_terms(z, true_logit, math.exp(-u))[0]

    # bracket the root: L' > 0 at u = cold (T too small), L' < 0 at u = hot (T too large)
    cold, hot = -1.0, 1.0
    while slope(cold) <= 0:
        cold *= 2
        if cold < -64:
            raise ValueError("expected the best temperature within [e^-64, e^64], but it is "
                             "smaller than e^-64")
    while slope(hot) >= 0:
        hot *= 2
        if hot > 64:
            raise ValueError("expected the best temperature within [e^-64, e^64], but it is "
                             "larger than e^64")
    u, last_step = 0.0, math.inf  # T = 1, inside the bracket
    eps = torch.finfo(z.dtype).eps  # rounding level: float64, or float32 on MPS
    for _ in range(max_iter):
        beta = math.exp(-u)
        gradient, curvature = _temperature_terms(z, true_logit, beta)
        if gradient == 0:
            break
        if gradient > 0:
            cold = u
        else:
            hot = u
        du = -beta * gradient  # dL/du
        d2u = beta * gradient + beta**2 * curvature  # d^2 L / du^2
        newton = u - du / d2u if d2u > 0 else math.nan
        if newton == u or cold < newton < hot:
            step, u = abs(newton - u), newton
            if step <= 4 * eps * max(1.0, abs(u)) or (step <= eps**0.5 and step >= last_step / 2):
                break  # at rounding level, or no longer converging quadratically: rounding noise
            last_step = step
        else:  # Newton would leave the bracket: bisect instead
            u, last_step = (cold + hot) / 2, math.inf
            if hot - cold <= 4 * eps * max(1.0, abs(u)):
                break
    else:
        warnings.warn(f"fit_temperature did not converge in max_iter={max_iter} Newton steps; "
                      f"the bracket of log T is [{cold:.17g}, {hot:.17g}]", ConvergenceWarning,
                      stacklevel=2)
    return torch.tensor(math.exp(u), dtype=z.dtype, device=z.device)


# --------------------------------------------------------------------------------------------
# Platt scaling
# --------------------------------------------------------------------------------------------


def _platt_terms(features: Tensor, target: Tensor, theta: Tensor):
    r"""The mean log-loss of $\sigma(a s + b)$ at $\theta = (a, b)$, its gradient and Hessian."""
    f = features @ theta  # a s_i + b
    p = torch.sigmoid(f)
    loss = (torch.logaddexp(torch.zeros_like(f), f) - target * f).mean()
    gradient = features.T @ (p - target) / len(f)
    hessian = (features * (p * (1 - p))[:, None]).T @ features / len(f)
    return loss.item(), gradient, hessian


def fit_platt(scores, targets, *, smoothed_targets: bool = False,
              max_iter: int = 100) -> tuple[Tensor, Tensor]:
    r"""Platt scaling: the maximum-likelihood $(a, b)$ of $p_i = \sigma(a s_i + b)$.

    Logistic regression on the single feature $s$ (a score, logit or decision value):

    .. math::
        L(a, b) = \frac{1}{N} \sum_i \Big( \log\big(1 + e^{f_i}\big) - t_i f_i \Big), \quad
        f_i = a s_i + b, \qquad
        \nabla L = \frac{1}{N} \sum_i (p_i - t_i) \begin{pmatrix} s_i \\ 1 \end{pmatrix}, \qquad
        \nabla^2 L = \frac{1}{N} \sum_i p_i (1 - p_i)
        \begin{pmatrix} s_i^2 & s_i \\ s_i & 1 \end{pmatrix}

    with targets $t_i = y_i \in \{0, 1\}$. $L$ is convex; Newton's method
    $\theta \leftarrow \theta - (\nabla^2 L)^{-1} \nabla L$ with a backtracking line search, from
    $a = 0$ and $b = \log(\bar t / (1 - \bar t))$ (the best constant), in float64, until the step
    reaches rounding level. Equal to `LogisticRegression(C=np.inf)` (no penalty) on the column
    `s[:, None]`: a = `coef_[0, 0]`, b = `intercept_[0]`. Returns (a, b), 0-d float64 tensors
    (float32 on MPS).

    When the scores separate the classes (every positive scores at least as high as every
    negative, or the reverse) the likelihood grows without bound as $|a| \to \infty$ and there is
    no maximum: a ValueError, and a reason for the smoothed targets.

    Note: Platt (1999), and scikit-learn's `CalibratedClassifierCV(method="sigmoid")`, fit
    *smoothed* targets, $t_i = (N_+ + 1)/(N_+ + 2)$ for positives and $1/(N_- + 2)$ for negatives
    ($N_\pm$ the numbers of positives and negatives), a prior that keeps $(a, b)$ finite and
    gives slightly different values than the plain maximum-likelihood fit;
    `smoothed_targets=True` fits those, as scikit-learn's `_sigmoid_calibration` does (which
    returns $(-a, -b)$: its probabilities are $1 / (1 + e^{A s + B})$).
    """
    max_iter = _check_integer("max_iter", max_iter, 1)
    s, y = _scores(scores, "scores"), _class_labels(targets, "targets")
    _same_samples(s, y, "scores and targets")
    classes = torch.unique(y).tolist()
    if not set(classes) <= {0, 1}:
        raise ValueError(f"expected targets in {{0, 1}}, but got the classes {classes}; pass "
                         "(targets == pos_label)")
    if len(classes) < 2:
        present = f"only the class {classes[0]}" if classes else "no samples"
        raise ValueError(f"expected both classes 0 and 1 in targets, but got {present}: a "
                         "sigmoid fit needs positives and negatives")
    dtype = _score_dtype(s.device)
    s, positive = s.detach().to(dtype), y == 1
    eps = torch.finfo(dtype).eps  # rounding level
    if s.min() == s.max():
        raise ValueError("expected scores that vary, but every score is the same: a and b cannot "
                         "both be determined")
    target = positive.to(dtype)
    if smoothed_targets:
        n_pos = positive.sum().item()
        n_neg = len(y) - n_pos
        smoothed = torch.tensor([1.0 / (n_neg + 2.0), (n_pos + 1.0) / (n_pos + 2.0)], dtype=dtype,
                                device=s.device)
        target = smoothed[positive.long()]  # (N+ + 1) / (N+ + 2) or 1 / (N- + 2)
    else:
        pos, neg = s[positive], s[~positive]
        if neg.max() <= pos.min() or pos.max() <= neg.min():
            raise ValueError("expected classes whose scores overlap, but the scores separate "
                             "them: the likelihood grows without bound as |a| -> infinity and has "
                             "no maximum; pass smoothed_targets=True (Platt's targets) for a "
                             "finite fit")
    features = torch.stack([s, torch.ones_like(s)], dim=1)  # (s_i, 1)
    mean = target.mean().item()
    theta = torch.tensor([0.0, math.log(mean / (1 - mean))], dtype=dtype, device=s.device)
    loss, gradient, hessian = _platt_terms(features, target, theta)
    last_step = math.inf
    for _ in range(max_iter):
        direction = torch.linalg.solve(hessian, gradient)  # the Newton step (H^-1 g)
        decrease = (gradient @ direction).item()  # > 0: the loss falls along -direction
        rate = 1.0
        while True:  # backtrack until the loss falls enough (Armijo), up to rounding
            candidate = theta - rate * direction
            new_loss, new_gradient, new_hessian = _platt_terms(features, target, candidate)
            if new_loss <= loss - 1e-4 * rate * decrease + 8 * eps * abs(loss) or rate < 1e-10:
                break
            rate /= 2
        step = (rate * direction).abs().div(theta.abs().clamp(min=1.0)).max().item()
        theta, loss, gradient, hessian = candidate, new_loss, new_gradient, new_hessian
        if step <= 4 * eps or (step <= eps**0.5 and step >= last_step / 2):
            break  # at rounding level, or no longer converging quadratically: rounding noise
        last_step = step
    else:
        warnings.warn(f"fit_platt did not converge in max_iter={max_iter} Newton steps; the last "
                      f"relative step was {step:.3g}", ConvergenceWarning, stacklevel=2)
    return theta[0], theta[1]


# --------------------------------------------------------------------------------------------
# Checks against scikit-learn and scipy (`python -m helpers.verify -k calibration`)
# --------------------------------------------------------------------------------------------

FIT_BY_FUNCTION_VALUES = Tolerance(rtol=1e-7, atol=1e-7)
"""scipy's `minimize_scalar` compares loss values only, and a loss is flat at its minimum:
rounding in L hides a change in log T smaller than about sqrt(eps) ~ 1.5e-8, so the reference
itself is only that accurate; 1e-7 is the loosest float64 tolerance that `Check` accepts."""


def _overconfident(generator: torch.Generator, n: int = 400) -> tuple[Tensor, Tensor]:
    """A class-weighted model on imbalanced data: about 5 % positives, y ~ Bernoulli(sigmoid(eta)),
    and logits 3 eta + 3, three times too confident and shifted up: probabilities crowd 0 and 1."""
    eta = -4.0 + 1.5 * torch.randn(n, generator=generator, dtype=torch.float64)
    y = (torch.rand(n, generator=generator, dtype=torch.float64) < torch.sigmoid(eta)).long()
    return y, 3 * eta + 3


def _probabilities(generator: torch.Generator) -> dict:
    """Over-confident probabilities, 0 and 1 themselves, and the edges k/10 both as NumPy's
    linspace makes them (k * 0.1: 0.6000000000000001) and as the nearest doubles (0.6)."""
    y_true, logit = _overconfident(generator)
    y_prob = torch.sigmoid(logit)
    special = torch.tensor([0.0, 1.0, 1e-300, 1 - 2**-53] + [k * 0.1 for k in range(1, 10)]
                           + [k / 10 for k in range(1, 10)], dtype=torch.float64)
    y_prob[:len(special)] = special
    return {"y_true": y_true, "y_prob": y_prob}


def _tied_probabilities(generator: torch.Generator) -> dict:
    """Probabilities on a grid of 0.01 with many ties (equal quantile edges, empty bins)."""
    data = _probabilities(generator)
    return {**data, "y_prob": data["y_prob"].round(decimals=2)}


def _multiclass_logits(generator: torch.Generator, n: int = 300) -> dict:
    """Four classes, class 3 rare (about 5 %), logits 2.5 times too confident."""
    eta = 1.5 * torch.randn(n, 4, generator=generator, dtype=torch.float64)
    eta[:, 3] -= 3.0
    y = torch.multinomial(torch.softmax(eta, dim=1), 1, generator=generator).squeeze(1)
    return {"logits": 2.5 * eta, "targets": y}


def _binary_logits(generator: torch.Generator) -> dict:
    y, logit = _overconfident(generator)
    return {"logits": logit, "targets": y}


def _platt_data(generator: torch.Generator) -> dict:
    y, logit = _overconfident(generator)
    return {"scores": logit, "targets": y}


def _sklearn_curve(y_true, y_prob, **options):
    from sklearn.calibration import calibration_curve as sklearn_calibration_curve

    return sklearn_calibration_curve(y_true, y_prob, **options)


def _reference_calibration_errors(y_true, y_prob, *, n_bins, strategy, pos_label=None) -> dict:
    """ECE, RMS and MCE from scikit-learn's curve and the counts of its bins, in NumPy."""
    import numpy as np

    prob_true, prob_pred = _sklearn_curve(y_true, y_prob, n_bins=n_bins, strategy=strategy,
                                          pos_label=pos_label)
    if strategy == "quantile":  # scikit-learn's own edges
        edges = np.percentile(y_prob, np.linspace(0, 1, n_bins + 1) * 100)
    else:
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    count = np.bincount(np.searchsorted(edges[1:-1], y_prob), minlength=n_bins)
    weight = count[count > 0] / len(y_prob)
    gap = np.abs(prob_true - prob_pred)
    return {"l1": np.sum(weight * gap), "l2": np.sqrt(np.sum(weight * gap**2)), "max": gap.max()}


def _calibration_errors(y_true, y_prob, **options) -> dict:
    return {norm: expected_calibration_error(y_true, y_prob, norm=norm, **options)
            for norm in NORMS}


def _cross_entropy_numpy(logits, targets):
    """The mean cross-entropy of softmax(logits * exp(-u)) as a function of u = log T."""
    import numpy as np
    from scipy.special import logsumexp, softmax

    z = np.asarray(logits, dtype=np.float64)
    z = np.stack([np.zeros_like(z), z], axis=1) if z.ndim == 1 else z
    true_logit = z[np.arange(len(z)), targets]

    def loss(u):
        beta = np.exp(-u)
        return np.mean(logsumexp(beta * z, axis=1) - beta * true_logit)

    def slope(beta):  # L'(beta) = mean(E_p[z] - z_y), p = softmax(beta z)
        return np.mean(np.sum(softmax(beta * z, axis=1) * z, axis=1) - true_logit)

    return loss, slope


def _temperature_by_minimize_scalar(logits, targets):
    from scipy.optimize import minimize_scalar

    loss, _ = _cross_entropy_numpy(logits, targets)
    result = minimize_scalar(loss, bounds=(-10.0, 10.0), method="bounded",
                             options={"xatol": 1e-12, "maxiter": 1000})
    return float(math.exp(result.x))


def _temperature_by_brentq(logits, targets):
    """The root of L'(beta), found by scipy's brentq to rounding level: T = 1 / beta."""
    from scipy.optimize import brentq

    _, slope = _cross_entropy_numpy(logits, targets)
    return 1 / brentq(slope, 1e-6, 1e6, xtol=1e-300, rtol=4 * _EPS, maxiter=1000)


def _logistic_regression(x, y, *, fit_intercept=True, sample_weight=None):
    """scikit-learn's unpenalised logistic regression on one feature, solved to rounding level."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=np.inf, fit_intercept=fit_intercept, solver="newton-cholesky",
                               tol=1e-15, max_iter=1000)
    model.fit(np.asarray(x, dtype=np.float64)[:, None], y, sample_weight=sample_weight)
    return model.coef_[0, 0], (model.intercept_[0] if fit_intercept else 0.0)


def _temperature_by_logistic_regression(logits, targets):
    """Binary: sigmoid(z / T) is logistic regression on z without intercept; 1/T = coef_."""
    return 1 / _logistic_regression(logits, targets, fit_intercept=False)[0]


def _platt_by_logistic_regression(scores, targets, smoothed_targets=False):
    """Smoothed targets t_i as weights: each sample is a positive of weight t_i and a negative
    of weight 1 - t_i, which gives the same log-likelihood."""
    import numpy as np

    if not smoothed_targets:
        return _logistic_regression(scores, targets)
    positive = targets == 1
    n_pos, n_neg = positive.sum(), (~positive).sum()
    t = np.where(positive, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    return _logistic_regression(np.concatenate([scores, scores]),
                                np.r_[np.ones_like(targets), np.zeros_like(targets)],
                                sample_weight=np.r_[t, 1 - t])


_FLOATS = (torch.float64, torch.float32)


def _curve_check(strategy: str, n_bins: int, inputs, **options) -> Check:
    settings = ", ".join(f"{k}={v!r}" for k, v in {"strategy": strategy, "n_bins": n_bins,
                                                     **options}.items())
    return Check(f"calibration_curve {settings} vs sklearn",
                 functools.partial(calibration_curve, strategy=strategy, n_bins=n_bins, **options),
                 numpy_reference(functools.partial(_sklearn_curve, strategy=strategy,
                                                   n_bins=n_bins, **options)),
                 inputs, dtypes=_FLOATS)


def _error_check(strategy: str, n_bins: int, inputs) -> Check:
    return Check(f"expected_calibration_error l1/l2/max strategy={strategy!r} n_bins={n_bins} vs "
                 "sklearn calibration_curve + counts",
                 functools.partial(_calibration_errors, strategy=strategy, n_bins=n_bins),
                 numpy_reference(functools.partial(_reference_calibration_errors,
                                                   strategy=strategy, n_bins=n_bins)),
                 inputs, dtypes=_FLOATS)


def _float64_tolerance(tolerance: Tolerance) -> dict:
    return {torch.float64: tolerance}


CHECKS: tuple[Check, ...] = (
    _curve_check("uniform", 10, _probabilities),
    _curve_check("uniform", 7, _probabilities, pos_label=0),
    _curve_check("quantile", 10, _tied_probabilities),
    _error_check("uniform", 10, _probabilities),
    _error_check("quantile", 8, _tied_probabilities),
    Check("fit_temperature multiclass vs scipy minimize_scalar (calibration)", fit_temperature,
          numpy_reference(_temperature_by_minimize_scalar), _multiclass_logits, dtypes=_FLOATS,
          tolerances=_float64_tolerance(FIT_BY_FUNCTION_VALUES)),
    Check("fit_temperature multiclass vs scipy brentq on L'(1/T) (calibration)", fit_temperature,
          numpy_reference(_temperature_by_brentq), _multiclass_logits, dtypes=_FLOATS),
    Check("fit_temperature binary vs sklearn LogisticRegression(fit_intercept=False) "
          "(calibration)", fit_temperature,
          numpy_reference(_temperature_by_logistic_regression), _binary_logits, dtypes=_FLOATS),
    Check("fit_platt vs sklearn LogisticRegression (calibration)", fit_platt,
          numpy_reference(_platt_by_logistic_regression), _platt_data, dtypes=_FLOATS),
    Check("fit_platt smoothed_targets=True vs sklearn weighted LogisticRegression (calibration)",
          functools.partial(fit_platt, smoothed_targets=True),
          numpy_reference(functools.partial(_platt_by_logistic_regression,
                                            smoothed_targets=True)),
          _platt_data, dtypes=_FLOATS),
)
"""Every function of this module against scikit-learn or scipy, in float64 and float32."""

register(*CHECKS)
