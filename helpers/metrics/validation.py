"""Validation shared by the metrics: say what was expected and what came.

The constants name the values that the arguments of `sklearn.metrics` take.
"""

from __future__ import annotations

import math
import numbers
import sys
import warnings

import numpy as np
import torch

AVERAGES = ("binary", "micro", "macro", "weighted", None)
"""The values of `average`: one class, pooled counts, plain mean, support-weighted mean, none."""

ZERO_DIVISIONS = ("warn", 0.0, 1.0, math.nan)
"""The values of `zero_division`, the score where a denominator is 0."""

NORMALIZATIONS = (None, "true", "pred", "all")
"""The values of `normalize` in `confusion_matrix`: divide by row, column or grand total."""

ALL_WARNINGS = ("precision", "recall", "f-score")




def _as_tensor(value, name: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray | list | tuple | range):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"expected numbers in {name}, but got NumPy dtype {array.dtype}")
        return torch.as_tensor(array)
    raise TypeError(f"expected {name} to be a tensor (or a list or NumPy array), but got "
                    f"{type(value).__name__}")


_TRUE_CLASSES = ("y_true", "targets")
"""The argument names that hold each sample's true class (the others hold predictions)."""


def _label_hint(name: str) -> str:
    """How to get class labels from what came in `name`: truth is not turned into labels the way
    predictions are."""
    if name in _TRUE_CLASSES:
        return (f"{name} holds each sample's true class, not a probability: pass the hard labels "
                "that soft targets (label smoothing, mixup) were made from")
    if name == "labels":
        return "labels names classes, e.g. labels=[0, 1, 2] or labels=range(3)"
    return "turn scores into labels first, e.g. (y_score >= 0.5).long() or y_score.argmax(dim=1)"


def _labels(value, name: str, *, whole_floats: bool = False) -> torch.Tensor:
    """`value` as a 1-D int64 tensor of class labels, or a ValueError / TypeError saying why not.

    Integer and bool labels are taken as they are. Floating-point labels are refused (TypeError),
    unless `whole_floats`: then, as scikit-learn, floats holding whole numbers (the 0.0 / 1.0
    targets of a BCE loss) are class labels, and any other value (0.5, NaN, inf) is a ValueError.
    """
    y = _as_tensor(value, name)
    if y.ndim != 1:
        hint = ""
        if y.ndim == 2 and y.shape[1] == 1:
            hint = ("; a column holds one value per sample: flatten it with .squeeze(1) (and "
                    "threshold a score, never take argmax over a single column)")
        elif y.ndim == 2 and name in _TRUE_CLASSES:
            hint = "; for one-hot targets of shape (N, C), take each sample's class: .argmax(dim=1)"
        elif y.ndim == 2 and y.is_floating_point():
            hint = "; for scores of shape (N, C), predict the labels with .argmax(dim=1)"
        raise ValueError(f"expected {name} of shape (N,) with one class label per sample, but got "
                         f"shape {tuple(y.shape)}{hint}")
    if y.is_complex():
        raise TypeError(f"expected integer class labels in {name}, but got {y.dtype} values; "
                        f"{_label_hint(name)}")
    if y.is_floating_point():
        # a whole number that int64 holds: finite, y == trunc(y), |y| < 2^63
        whole = torch.isfinite(y) & (y == y.trunc()) & (y.abs() < 2.0**63)
        if not whole_floats and y.numel():
            hint = ("they hold whole numbers: convert them with .long()" if bool(whole.all())
                    else _label_hint(name))
            raise TypeError(f"expected integer class labels in {name}, but got {y.dtype} values; "
                            f"{hint}")
        if not bool(whole.all()):
            example = y[~whole][0].item()
            raise ValueError(f"expected class labels in {name} (integers, or floats holding whole "
                             f"numbers such as 0.0 and 1.0), but got {y.dtype} values such as "
                             f"{example:.6g} that are not; {_label_hint(name)}")
    return y.long()


def _class_labels(value, name: str) -> torch.Tensor:
    """The labels of the metrics, taken as scikit-learn takes them: integers, bools, or floats
    holding whole numbers (0.0 / 1.0 targets); other floats are a ValueError (see `_labels`)."""
    return _labels(value, name, whole_floats=True)


def _scores(value, name: str) -> torch.Tensor:
    """`value` as a 1-D floating tensor of finite scores, or an error saying why not."""
    y = _as_tensor(value, name)
    if y.ndim != 1:
        raise ValueError(f"expected {name} of shape (N,) with one score per sample, but got shape "
                         f"{tuple(y.shape)}; score one class at a time: y_true == k against "
                         f"{name}[:, k]")
    if not y.is_floating_point():
        raise TypeError(f"expected floating-point scores in {name} (probabilities or logits), but "
                        f"got {y.dtype}")
    return _finite(y, name)


def _finite(y: torch.Tensor, name: str) -> torch.Tensor:
    bad = int((~torch.isfinite(y)).sum())
    if bad:
        raise ValueError(f"expected finite scores in {name}, but got {bad} NaN or infinite values")
    return y


def _score_matrix(value, name: str) -> torch.Tensor:
    """`value` as finite floating scores of shape (N,) (binary) or (N, C), C >= 2 (one column per
    class), or an error saying why not."""
    y = _as_tensor(value, name)
    if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] < 2):
        hint = ("; a single column holds the score of the positive class: flatten it with "
                ".squeeze(1)" if y.ndim == 2 and y.shape[1] == 1 else "")
        raise ValueError(f"expected {name} of shape (N,) with the score of the positive class, or "
                         f"(N, C) with one column per class, but got shape {tuple(y.shape)}{hint}")
    if not y.is_floating_point():
        what = "probabilities" if name == "y_proba" else "probabilities or logits"
        raise TypeError(f"expected floating-point scores in {name} ({what}), but got {y.dtype}; "
                        "convert them with .double()")
    return _finite(y, name)


def _same_samples(first: torch.Tensor, second: torch.Tensor, names: str) -> None:
    if len(first) != len(second):
        raise ValueError(f"expected {names} of the same length, but got {len(first)} and "
                         f"{len(second)}")
    if first.device != second.device:
        raise ValueError(f"expected {names} on the same device, but got {first.device} and "
                         f"{second.device}")


def _sample_weight(value, like: torch.Tensor) -> torch.Tensor | None:
    """None, or a real 1-D tensor with one weight per sample of `like`."""
    if value is None:
        return None
    weight = _as_tensor(value, "sample_weight")
    if weight.shape != like.shape or weight.dtype == torch.bool or weight.is_complex():
        raise ValueError(f"expected sample_weight of shape {tuple(like.shape)} (one real weight "
                         f"per sample), but got {weight.dtype} of shape {tuple(weight.shape)}")
    _same_samples(like, weight, "the labels and sample_weight")
    return weight


def _check_some_weight(weighted: torch.Tensor) -> None:
    """As scikit-learn: a metric of samples that all weigh 0 is an error."""
    if not bool((weighted != 0).any()):
        raise ValueError("expected at least one non-zero sample weight, but every sample counted "
                         "has weight 0")


def _check_average(average) -> None:
    if average is not None and (not isinstance(average, str) or average not in AVERAGES):
        samples = ("; average='samples' is for multilabel targets, which these functions do not "
                   "take" if average == "samples" else "")
        raise ValueError("expected average to be one of 'binary', 'micro', 'macro', 'weighted' or "
                         f"None, but got {average!r}{samples}")


def _zero_division_value(zero_division) -> float:
    """The score for an undefined ratio: 0.0 for "warn", else `zero_division` (0, 1 or NaN)."""
    if isinstance(zero_division, str) and zero_division == "warn":
        return 0.0
    if isinstance(zero_division, numbers.Real) and (zero_division in (0, 1)
                                                    or math.isnan(zero_division)):
        return float(zero_division)
    raise ValueError("expected zero_division to be \"warn\", 0.0, 1.0 or nan, but got "
                     f"{zero_division!r}")


def _check_beta(beta) -> None:
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not beta >= 0:
        raise ValueError(f"expected beta >= 0 (inf allowed), but got {beta!r}")


def _check_pos_label(pos_label) -> int:
    """`pos_label` as an int: an integer, or as scikit-learn a float holding one (1.0)."""
    if isinstance(pos_label, numbers.Integral):
        return int(pos_label)
    if not isinstance(pos_label, numbers.Real):
        raise TypeError(f"expected an integer pos_label (a class label), but got {pos_label!r}")
    if not (math.isfinite(pos_label) and float(pos_label).is_integer()):
        raise ValueError(f"expected pos_label to be a class label, a whole number such as 1 or "
                         f"1.0, but got {pos_label!r}")
    return int(pos_label)


def _score_dtype(device: torch.device) -> torch.dtype:
    """float64, as scikit-learn; float32 on MPS, which has no float64."""
    return torch.float32 if device.type == "mps" else torch.float64


def _warn(message: str, category: type[Warning]) -> None:
    """Warn with the stack level of the first caller outside helpers.metrics: the user's line."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("helpers.metrics"):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
