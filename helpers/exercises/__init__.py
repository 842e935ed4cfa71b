"""Checkers that give a learner immediate, targeted feedback on an exercise.

A checker runs the learner's function on several inputs (shapes, dtypes, edge cases) next to the
reference, and returns a `Verdict` that prints as one short line:

* ``✓ passed`` — equal to the reference on every case;
* ``… not implemented yet`` — the function still raises `NotImplementedError`;
* ``✗ <what is wrong>`` — a mistake the checker recognises (its output equals that of a known
  wrong implementation, a "diagnosis", and the hint says what to fix), or a precise description
  of the difference (an exception, `None`, a wrong type, shape or dtype, NaN, different values).

A checker never raises because of the learner's code: whatever the function does becomes a
verdict. One module per chapter holds that chapter's checkers.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

PASSED, NOT_IMPLEMENTED, WRONG = "passed", "not implemented", "wrong"
_SYMBOLS = {PASSED: "✓", NOT_IMPLEMENTED: "…", WRONG: "✗"}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one checker: a status and a message for the learner."""

    task: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def __str__(self) -> str:
        return f"{_SYMBOLS[self.status]} {self.task}: {self.message}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        colour = {PASSED: "#1a7f37", NOT_IMPLEMENTED: "#9a6700", WRONG: "#cf222e"}[self.status]
        return f"<p style='color:{colour};font-family:monospace'>{html.escape(str(self))}</p>"


@dataclass(frozen=True)
class Diagnosis:
    """A typical wrong implementation, and the hint to show when the learner's output equals it."""

    wrong: Callable
    hint: str


def passed(task: str) -> Verdict:
    return Verdict(task, PASSED, "passed")


def not_implemented(task: str) -> Verdict:
    return Verdict(task, NOT_IMPLEMENTED,
                   "not implemented yet: replace `raise NotImplementedError` with your code")


def wrong(task: str, message: str) -> Verdict:
    return Verdict(task, WRONG, message)


def _describe(args: Sequence) -> str:
    parts = []
    for a in args:
        if isinstance(a, torch.Tensor):
            parts.append(f"a {a.dtype} tensor of shape {tuple(a.shape)}")
        else:
            parts.append(repr(a))
    return ", ".join(parts)


def _close(a, b, rtol: float, atol: float) -> bool:
    """Same type, shape and dtype, and equal values (NaN equal to NaN)."""
    if isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
                and torch.allclose(a.detach(), b.detach(), rtol=rtol, atol=atol, equal_nan=True))
    if isinstance(b, tuple | list):
        return (isinstance(a, tuple | list) and len(a) == len(b)
                and all(_close(x, y, rtol, atol) for x, y in zip(a, b)))
    if isinstance(b, float | int) and isinstance(a, float | int | torch.Tensor):
        if isinstance(a, torch.Tensor):
            if a.numel() != 1:
                return False
            a = a.item()
        return math.isclose(a, b, rel_tol=rtol, abs_tol=atol) or (math.isnan(a) and math.isnan(b))
    return a == b


def _difference(task: str, got, expected, args, rtol: float, atol: float) -> Verdict:
    """A precise description of how `got` differs from `expected` (no diagnosis matched)."""
    on = f"on input {_describe(args)}"
    if got is None:
        return wrong(task, f"your function returned None {on}: did you forget `return`?")
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor):
            return wrong(task, f"expected a tensor but your function returned "
                               f"{type(got).__name__} {on}")
        if got.shape != expected.shape:
            return wrong(task, f"expected shape {tuple(expected.shape)} but got "
                               f"{tuple(got.shape)} {on}")
        if got.dtype != expected.dtype:
            return wrong(task, f"expected dtype {expected.dtype} but got {got.dtype} {on}: "
                               "compute in the input's dtype")
        bad = torch.isfinite(expected) & ~torch.isfinite(got)
        if bad.any():
            return wrong(task, f"your result has inf or nan where the answer is finite {on}: "
                               "look for an overflow (exp of a large number) or a log of 0")
        difference = (got.detach().double() - expected.detach().double()).abs()
        index = tuple(int(i) for i in torch.nonzero(difference == difference.max())[0])
        where = f" at index {list(index)}" if index else ""
        return wrong(task, f"values differ{where} {on}: yours {got[index].item():.6g}, "
                           f"expected {expected[index].item():.6g}")
    return wrong(task, f"expected {expected!r} but got {got!r} {on}")


def check_function(task: str, learner: Callable, reference: Callable, cases: Sequence[tuple],
                   diagnoses: Sequence[Diagnosis] = (), rtol: float = 1e-6,
                   atol: float = 1e-8) -> Verdict:
    """Run `learner(*case)` and `reference(*case)` for every case; return the first problem.

    Inputs are cloned for each call, so a learner's in-place change cannot spoil the next case.
    When an output differs, each diagnosis's wrong implementation is run on the same case: if the
    learner's output equals it, its hint is the verdict.
    """
    if not callable(learner):
        return wrong(task, f"expected a function, but got {type(learner).__name__}")
    for case in cases:
        def fresh(case=case):
            return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in case)

        expected = reference(*fresh())
        try:
            got = learner(*fresh())
        except NotImplementedError:
            return not_implemented(task)
        except Exception as error:  # noqa: BLE001 - the learner's bug becomes a verdict
            return wrong(task, f"your function raised {type(error).__name__}: {error} "
                               f"(on input {_describe(case)})")
        if _close(got, expected, rtol, atol):
            continue
        for diagnosis in diagnoses:
            try:
                if _close(got, diagnosis.wrong(*fresh()), rtol, atol):
                    return wrong(task, diagnosis.hint)
            except Exception:  # noqa: BLE001, S112 - a diagnosis that does not apply here
                continue
        return _difference(task, got, expected, case, rtol, atol)
    return passed(task)


def check_answer(task: str, learner: Callable[[], object], expected,
                 diagnoses: Sequence[tuple[object, str]] = (), rtol: float = 1e-6,
                 atol: float = 1e-8) -> Verdict:
    """For a conceptual task: `learner()` returns an answer, compared with `expected`.

    `diagnoses` pairs typical wrong answers with their hints.
    """
    if not callable(learner):
        return wrong(task, f"expected a function, but got {type(learner).__name__}")
    try:
        got = learner()
    except NotImplementedError:
        return not_implemented(task)
    except Exception as error:  # noqa: BLE001 - the learner's bug becomes a verdict
        return wrong(task, f"your function raised {type(error).__name__}: {error}")
    if got is None:
        return wrong(task, "your function returned None: did you forget `return`?")
    if _close(got, expected, rtol, atol):
        return passed(task)
    for answer, hint in diagnoses:
        if _close(got, answer, rtol, atol):
            return wrong(task, hint)
    return wrong(task, f"not the expected answer (you returned {got!r})")


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
