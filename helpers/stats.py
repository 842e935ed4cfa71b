r"""How sure is a test score? Intervals for a proportion, the bootstrap, and McNemar's test.

A test set of $n$ samples on which a model is right $k$ times estimates the model's accuracy $p$
on the population the samples came from by $\hat p = k / n$. The count $k$ is binomial,
$k \sim \mathrm{B}(n, p)$, so $\hat p$ has standard error $\sqrt{p(1-p)/n}$, and an interval says
which accuracies are compatible with the count:

    wald      p_hat +- z sqrt(p_hat (1 - p_hat) / n)          (the normal approximation at p_hat)
    wilson    every p with |p_hat - p| <= z sqrt(p (1 - p) / n), solved for p:
              center = (k + z^2 / 2) / (n + z^2),
              half   = z / (n + z^2) sqrt(k (n - k) / n + z^2 / 4)

with $z = \Phi^{-1}\big(\tfrac{1 + \text{confidence\_level}}{2}\big)$. Two models scored on the
*same* test samples are compared with McNemar's test, which looks only at the samples on which they
disagree.

Names and semantics follow `scipy.stats`: `proportion_ci(k, n, confidence_level, method)` is
`scipy.stats.binomtest(k, n).proportion_ci(confidence_level, method)` for the two-sided methods
"wilson" and "wilsoncc", plus "wald", which scipy does not offer (it is shown because it is what
"accuracy ± 2 standard errors" means, and it fails near 0 and 1); `bootstrap_ci` is
`scipy.stats.bootstrap(..., paired=True, method="percentile")` for statistics of labelled samples;
`mcnemar(table, exact=True, correction=True)` is `statsmodels.stats.contingency_tables.mcnemar`.

Notes (deliberate differences): `proportion_ci` defaults to "wilson", scipy to "exact"
(Clopper-Pearson, which needs the inverse of the incomplete beta function, not in torch); the
exact McNemar p-value sums binomial terms in float64 through `lgamma`, equal to scipy to about
1e-12 relative for up to a few thousand disagreements and drifting to about 1e-10 at 10^5.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from helpers.metrics import _labels  # the course's label validation: one message everywhere
from helpers.verify import Check, register

__all__ = ["ConfidenceInterval", "McNemarResult", "PROPORTION_CI_METHODS", "bootstrap_ci",
           "bootstrap_distribution", "mcnemar", "paired_table", "proportion_ci"]

PROPORTION_CI_METHODS = ("wilson", "wilsoncc", "wald")


class ConfidenceInterval(NamedTuple):
    """The bounds of a confidence interval (the names of scipy's)."""

    low: float
    high: float


class McNemarResult(NamedTuple):
    """McNemar's test: the statistic and its two-sided p-value (the names of statsmodels')."""

    statistic: float
    pvalue: float


def _check_count(name: str, value, minimum: int) -> int:
    """An integer (Python, NumPy, or a one-element integer tensor) >= minimum, as an int."""
    if isinstance(value, Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = value.item()
    try:
        number = None if isinstance(value, bool) else operator.index(value)
    except TypeError:
        number = None
    if number is None or number < minimum:
        raise ValueError(f"expected {name} to be an integer >= {minimum}, but got {value!r}")
    return number


def _check_confidence_level(confidence_level) -> float:
    if not (isinstance(confidence_level, int | float) and 0 < confidence_level < 1):
        raise ValueError(f"expected 0 < confidence_level < 1, but got {confidence_level!r}")
    return float(confidence_level)


def normal_quantile(probability: float) -> float:
    r"""$\Phi^{-1}(q)$, the standard normal quantile (scipy's `ndtri`), in float64."""
    return torch.special.ndtri(torch.tensor(probability, dtype=torch.float64)).item()


def proportion_ci(k, n, confidence_level: float = 0.95, method: str = "wilson"
                  ) -> ConfidenceInterval:
    r"""A two-sided confidence interval for a proportion $p$ from $k$ successes in $n$ trials.

    "wilson": the $p$ whose own standard error puts $\hat p = k/n$ within $z$ of it,
    $(p - \hat p)^2 \le z^2 p (1 - p) / n$, a quadratic in $p$ whose roots are
    $\dfrac{k + z^2/2}{n + z^2} \pm \dfrac{z}{n + z^2}\sqrt{\dfrac{k (n-k)}{n} + \dfrac{z^2}{4}}$;
    "wilsoncc" the same with a continuity correction (Newcombe 1998); "wald"
    $\hat p \pm z \sqrt{\hat p (1 - \hat p)/n}$, not clipped to $[0, 1]$ (its failure is the
    lesson). As scipy does, the Wilson bounds are exactly 0 when $k = 0$ and 1 when $k = n$.
    """
    n = _check_count("n", n, 1)
    k = _check_count("k", k, 0)
    if k > n:
        raise ValueError(f"expected k <= n, but got k = {k} and n = {n}")
    confidence_level = _check_confidence_level(confidence_level)
    if method not in PROPORTION_CI_METHODS:
        raise ValueError(f"expected method in {PROPORTION_CI_METHODS}, but got {method!r}")
    z = normal_quantile(0.5 + 0.5 * confidence_level)
    p = k / n
    q = 1 - p
    if method == "wald":
        half = z * math.sqrt(p * q / n)
        return ConfidenceInterval(p - half, p + half)
    denominator = 2 * (n + z**2)
    center = (2 * n * p + z**2) / denominator
    if method == "wilson":
        half = z / denominator * math.sqrt(4 * n * p * q + z**2)
        low, high = center - half, center + half
    else:  # the continuity correction widens each side by about 1 / (2n)
        low = 0.0 if k == 0 else center - (
            1 + z * math.sqrt(z**2 - 2 - 1 / n + 4 * p * (n * q + 1))) / denominator
        high = 1.0 if k == n else center + (
            1 + z * math.sqrt(z**2 + 2 - 1 / n + 4 * p * (n * q - 1))) / denominator
    return ConfidenceInterval(0.0 if k == 0 else low, 1.0 if k == n else high)


def _labelled_samples(samples: tuple[Tensor, ...]) -> int:
    if not samples or not all(isinstance(s, Tensor) for s in samples):
        raise TypeError(f"expected one or more tensors of samples, but got "
                        f"{[type(s).__name__ for s in samples]}")
    lengths = [len(s) if s.ndim else 0 for s in samples]
    if len(set(lengths)) != 1 or lengths[0] < 1:
        raise ValueError(f"expected tensors with the same number (>= 1) of samples, but got "
                         f"{lengths}")
    return lengths[0]


def bootstrap_distribution(statistic: Callable[..., Tensor], *samples: Tensor,
                           n_resamples: int = 9999,
                           generator: torch.Generator | None = None) -> Tensor:
    r"""The statistic on `n_resamples` bootstrap resamples: float64 tensor of shape (B,).

    Each resample draws $n$ indices uniformly *with replacement* and takes the same indices from
    every tensor of `samples` (paired: a sample's label stays with its prediction), e.g.
    `bootstrap_distribution(accuracy_score, y_true, y_pred, generator=g)`.
    """
    n = _labelled_samples(samples)
    n_resamples = _check_count("n_resamples", n_resamples, 1)
    indices = torch.randint(n, (n_resamples, n), generator=generator)
    values = []
    for i in indices:
        value = torch.as_tensor(statistic(*(s[i] for s in samples)))
        if value.numel() != 1:
            raise ValueError(f"expected the statistic to return one number, but it returned "
                             f"shape {tuple(value.shape)}")
        values.append(value.item())
    return torch.tensor(values, dtype=torch.float64)


def bootstrap_ci(statistic: Callable[..., Tensor], *samples: Tensor,
                 confidence_level: float = 0.95, n_resamples: int = 9999,
                 generator: torch.Generator | None = None) -> ConfidenceInterval:
    r"""The percentile bootstrap interval of any statistic of labelled samples.

    The quantiles $\alpha/2$ and $1 - \alpha/2$, $\alpha = 1 - $ `confidence_level`, of
    `bootstrap_distribution` (linear interpolation between order statistics, NumPy's default
    `percentile`): scipy's `bootstrap(samples, statistic, paired=True, method="percentile")`,
    with torch's random numbers instead of NumPy's.
    """
    confidence_level = _check_confidence_level(confidence_level)
    values = bootstrap_distribution(statistic, *samples, n_resamples=n_resamples,
                                    generator=generator)
    alpha = 1 - confidence_level
    low, high = torch.quantile(values, torch.tensor([alpha / 2, 1 - alpha / 2],
                                                    dtype=torch.float64)).tolist()
    return ConfidenceInterval(low, high)


def paired_table(y_true, y_pred_a, y_pred_b) -> Tensor:
    r"""The 2 x 2 table of two classifiers on the same samples (int64):

        [[both right,           A right, B wrong],
         [A wrong, B right,     both wrong      ]]
    """
    y_true, a, b = (_labels(v, name) for v, name in
                    ((y_true, "y_true"), (y_pred_a, "y_pred_a"), (y_pred_b, "y_pred_b")))
    if not len(y_true) == len(a) == len(b):
        raise ValueError(f"expected the same number of samples, but got {len(y_true)}, {len(a)} "
                         f"and {len(b)}")
    a_right, b_right = a == y_true, b == y_true
    return torch.tensor([[(a_right & b_right).sum(), (a_right & ~b_right).sum()],
                         [(~a_right & b_right).sum(), (~a_right & ~b_right).sum()]])


def _binomial_cdf_half(k: int, n: int) -> float:
    r"""$P(X \le k)$ for $X \sim \mathrm{B}(n, 1/2)$: $2^{-n} \sum_{i \le k} \binom{n}{i}$."""
    i = torch.arange(k + 1, dtype=torch.float64)
    log_terms = (math.lgamma(n + 1) - torch.lgamma(i + 1) - torch.lgamma(n - i + 1)
                 - n * math.log(2))
    return torch.logsumexp(log_terms, 0).exp().item()


def mcnemar(table, exact: bool = True, correction: bool = True) -> McNemarResult:
    r"""McNemar's test that two classifiers scored on the same samples are equally accurate.

    Only the discordant cells count: $b$ samples that A got right and B wrong, $c$ the other way.
    Under the null hypothesis each of the $b + c$ disagreements goes either way with probability
    1/2, so $b \sim \mathrm{B}(b + c, 1/2)$.

    exact: statistic $\min(b, c)$, p-value $\min\big(1, 2 P(X \le \min(b, c))\big)$ for
    $X \sim \mathrm{B}(b + c, 1/2)$ — the two-sided binomial test (scipy's `binomtest`).
    Otherwise the chi-square approximation $\chi^2 = (|b - c| - 1)^2 / (b + c)$ (without the
    $-1$ when `correction=False`) with 1 degree of freedom, p-value $= \operatorname{erfc}
    (\sqrt{\chi^2 / 2})$. With no disagreements at all the p-value is 1.
    """
    table = torch.as_tensor(table)
    if table.shape != (2, 2) or table.is_floating_point() or (table < 0).any():
        negative = table.shape == (2, 2) and bool((table < 0).any())
        raise ValueError(f"expected a 2 x 2 table of counts (as paired_table returns), but got "
                         f"{table.dtype} of shape {tuple(table.shape)}"
                         + (" with a negative count" if negative else ""))
    b, c = int(table[0, 1]), int(table[1, 0])
    if exact:
        smaller = min(b, c)
        return McNemarResult(float(smaller),
                             min(1.0, 2 * _binomial_cdf_half(smaller, b + c)))
    if b + c == 0:
        return McNemarResult(0.0, 1.0)
    statistic = (abs(b - c) - (1 if correction else 0)) ** 2 / (b + c)
    return McNemarResult(statistic, math.erfc(math.sqrt(statistic / 2)))


# --------------------------------------------------------------------------------------------
# Checks against scipy (`python -m helpers.verify -k stats`)
# --------------------------------------------------------------------------------------------


def _counts(generator: torch.Generator, size: int = 40) -> list[tuple[int, int]]:
    """Random (k, n) with n up to 1000, and the edge cases k = 0, k = n, n = 1."""
    n = torch.randint(1, 1001, (size,), generator=generator)
    k = (torch.rand(size, generator=generator, dtype=torch.float64) * (n + 1)).long()
    return [(0, 1), (1, 1), (0, 50), (50, 50)] + list(zip(k.tolist(), n.tolist()))


def _interval_check(method: str) -> Check:
    def ours(counts):
        return torch.tensor([proportion_ci(k, n, 0.95, method) for k, n in counts],
                            dtype=torch.float64)

    def scipy_reference(counts):
        from scipy.stats import binomtest

        return torch.tensor([tuple(binomtest(k, n).proportion_ci(0.95, method))
                             for k, n in counts], dtype=torch.float64)

    return Check(f"proportion_ci method={method!r} vs scipy binomtest", ours, scipy_reference,
                 lambda generator: (_counts(generator),), dtypes=(torch.float64,),
                 devices=("cpu",))


def _mcnemar_check(exact: bool) -> Check:
    def ours(counts):
        return torch.tensor([mcnemar([[0, b], [c, 0]], exact=exact).pvalue for b, c in counts],
                            dtype=torch.float64)

    def scipy_reference(counts):
        from scipy.stats import binomtest, chi2

        if exact:
            return torch.tensor([binomtest(min(b, c), b + c).pvalue for b, c in counts],
                                dtype=torch.float64)
        return torch.tensor([chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1) for b, c in counts],
                            dtype=torch.float64)

    def inputs(generator):
        return ([(b, c) for b, c in torch.randint(0, 300, (40, 2), generator=generator).tolist()
                 if b + c > 0] + [(0, 1), (5, 5), (0, 30)],)

    name = "binomtest" if exact else "chi2.sf with continuity correction"
    return Check(f"mcnemar exact={exact} vs scipy {name}", ours, scipy_reference, inputs,
                 dtypes=(torch.float64,), devices=("cpu",))


CHECKS = [_interval_check("wilson"), _interval_check("wilsoncc"), _mcnemar_check(True),
          _mcnemar_check(False)]
register(*CHECKS)
