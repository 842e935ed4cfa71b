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

import hashlib
import html
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

PASSED, NOT_IMPLEMENTED, WRONG = "passed", "not implemented", "wrong"
_SYMBOLS = {PASSED: "✓", NOT_IMPLEMENTED: "…", WRONG: "✗"}


class Forbidden(Exception):
    """Raised after the learner's function returns when it called something its task forbids
    (helpers.exercises.grading watches the calls); its message is the verdict."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one checker: a status and a message for the learner."""

    task: str
    status: str
    message: str

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    @property
    def symbol(self) -> str:
        """✓ passed, … not implemented yet, ✗ wrong."""
        return _SYMBOLS[self.status]

    def __str__(self) -> str:
        return f"{self.symbol} {self.task}: {self.message}"

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        colour = {PASSED: "#1a7f37", NOT_IMPLEMENTED: "#9a6700", WRONG: "#cf222e"}[self.status]
        return f"<p style='color:{colour};font-family:monospace'>{html.escape(str(self))}</p>"

    def _ipython_display_(self) -> None:
        """Shown as display data, not as the cell's result: nbgrader reads a test cell's result
        as partial credit, and a verdict is not a number of points."""
        show_as_display_data(self)


def show_as_display_data(shown) -> None:
    """Display `shown`'s text and HTML as display data (see `Verdict._ipython_display_`)."""
    from IPython.display import display

    display({"text/plain": str(shown), "text/html": shown._repr_html_()}, raw=True)


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


def as_number(a):
    """`a` as a Python number when it is one real value (int, float, NumPy scalar, one-element
    tensor or array), else None."""
    if isinstance(a, bool):
        return None
    if isinstance(a, int | float):
        return a
    if isinstance(a, np.generic | np.ndarray) and a.size == 1 and a.dtype.kind in "iuf":
        return a.item()
    if (isinstance(a, torch.Tensor) and a.numel() == 1 and a.dtype != torch.bool
            and not a.is_complex()):
        return a.item()
    return None


def _is_complex(a) -> bool:
    if isinstance(a, torch.Tensor):
        return a.is_complex()
    if isinstance(a, np.generic | np.ndarray):
        return a.dtype.kind == "c"
    if isinstance(a, tuple | list):
        return any(_is_complex(x) for x in a)
    return isinstance(a, complex)


_COMPLEX = ("your result is complex (torch.linalg.eigvals and eig always return complex "
            "numbers): for a symmetric matrix use torch.linalg.eigvalsh, whose eigenvalues are "
            "real and sorted, or take .real")


# The least a comparison in low precision asks for, (rtol, atol). float32 results of the same
# formula differ in their last bits between BLAS / LAPACK kernels, thread counts, and even two runs
# of one library (MKL's results can depend on memory alignment): about 1e-6 relative for linear
# algebra. Asking for more would reject a right answer, or miss a mistake, on some machines.
LOW_PRECISION_TOLERANCE = {torch.float32: (1e-5, 1e-6), torch.complex64: (1e-5, 1e-6),
                           torch.float16: (1e-3, 1e-5), torch.bfloat16: (1.6e-2, 1e-5)}


def tolerance(dtype: torch.dtype, rtol: float, atol: float) -> tuple[float, float]:
    """(rtol, atol) for comparing values of `dtype`: the requested ones, but never tighter than
    `LOW_PRECISION_TOLERANCE` for float32 and half precision."""
    floor_rtol, floor_atol = LOW_PRECISION_TOLERANCE.get(dtype, (0.0, 0.0))
    return max(rtol, floor_rtol), max(atol, floor_atol)


def _close(a, b, rtol: float, atol: float) -> bool:
    """Same type, shape and dtype, and equal values (NaN equal to NaN); a number may come as a
    Python, NumPy or one-element tensor value. Tensors in float32 or half precision are compared
    at no tighter than `LOW_PRECISION_TOLERANCE`."""
    if isinstance(b, torch.Tensor):
        rtol, atol = tolerance(b.dtype, rtol, atol)
        return (isinstance(a, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype
                and torch.allclose(a.detach(), b.detach(), rtol=rtol, atol=atol, equal_nan=True))
    if isinstance(b, tuple | list):
        return (isinstance(a, tuple | list) and len(a) == len(b)
                and all(_close(x, y, rtol, atol) for x, y in zip(a, b)))
    if isinstance(b, float | int) and not isinstance(b, bool):
        a = as_number(a)
        return a is not None and (math.isclose(a, b, rel_tol=rtol, abs_tol=atol)
                                  or (math.isnan(a) and math.isnan(b)))
    return a == b


# --------------------------------------------------------------------------------------------
# A wrong answer that is a constant multiple of the right one
# --------------------------------------------------------------------------------------------

_LARGEST_SMALL_FACTOR = 16  # numerators and denominators up to 16 count as "nice" everywhere
# (factor, how it is written, what it usually means): logarithms in another base
_LOG_FACTORS = (
    (1 / math.log(2), "1/ln 2", "a logarithm in base 2 (bits, log2) where the natural log "
                                "(nats, torch.log) belongs"),
    (1 / math.log(10), "1/ln 10", "a logarithm in base 10 (log10) where the natural log "
                                  "(torch.log) belongs"),
    (math.log(2), "ln 2", "the natural log where a logarithm in base 2 belongs"),
    (math.log(10), "ln 10", "the natural log where a logarithm in base 10 belongs"),
)
_FACTOR_TOLERANCE = {torch.float64: 1e-9, torch.float32: 1e-5, torch.float16: 2e-3,
                     torch.bfloat16: 1.6e-2}


def _sizes(inputs: Sequence) -> dict[int, str]:
    """The integers above 2 that the inputs carry, each with what it is: a tensor's number of
    elements or one of its dimensions, an integer argument."""
    sizes: dict[int, str] = {}
    for a in inputs:
        if isinstance(a, torch.Tensor):
            shape = tuple(a.shape)
            named = [(a.numel(), f"the number of elements of the input of shape {shape}")]
            named += [(n, f"dimension {d} of the input of shape {shape}")
                      for d, n in enumerate(shape)]
            for n, what in named:
                sizes.setdefault(n, what)
        elif isinstance(a, int) and not isinstance(a, bool):
            sizes.setdefault(a, f"the argument {a}")
    return {n: what for n, what in sizes.items() if n > 2}


def _as_float64(a) -> torch.Tensor | None:
    """`a` as a float64 tensor when it is real numbers (a tensor, an array, a number), else
    None."""
    if isinstance(a, torch.Tensor):
        return None if a.is_complex() or a.dtype == torch.bool else a.detach().cpu().double()
    if isinstance(a, np.generic | np.ndarray) and a.dtype.kind in "iuf":
        return torch.from_numpy(np.asarray(a, dtype=np.float64))
    number = as_number(a)
    return None if number is None else torch.tensor(float(number), dtype=torch.float64)


def _constant_factor(got, expected, rtol: float) -> float | None:
    """The k with got = k * expected everywhere (to relative `rtol`), or None: also when either is
    not real numbers, the shapes differ, a value is not finite, or expected is all zeros."""
    mine, theirs = _as_float64(got), _as_float64(expected)
    if mine is None or theirs is None:
        return None
    if mine.numel() == theirs.numel() == 1:  # one number, whatever it came as
        mine, theirs = mine.reshape(()), theirs.reshape(())
    if mine.shape != theirs.shape:
        return None
    if not (torch.isfinite(mine).all() and torch.isfinite(theirs).all()) or not theirs.any():
        return None
    k = ((mine * theirs).sum() / (theirs * theirs).sum()).item()
    scaled = k * theirs
    slack = rtol * scaled.abs() + 1e-3 * rtol * scaled.abs().max()
    if k == 0 or not torch.all((mine - scaled).abs() <= slack):
        return None
    return k


def _nice(k: float, sizes: dict[int, str], rtol: float) -> tuple[str, str] | None:
    """(k written as p/q or with a logarithm, what its numbers mean) when k is one, else None.
    p and q are small integers (up to 16) or sizes of the inputs."""
    candidates = sorted(set(range(1, _LARGEST_SMALL_FACTOR + 1)) | set(sizes))
    for q in candidates:
        p = round(abs(k) * q)
        if p in candidates and abs(abs(k) - p / q) <= rtol * abs(k):
            fraction = Fraction(p, q)
            numbers = {fraction.numerator, fraction.denominator}
            meaning = ", ".join(f"{n} = {sizes[n]}" for n in sorted(numbers) if n in sizes)
            if k < 0:
                return f"-{fraction}", meaning or ("the sign is flipped" if fraction == 1 else "")
            return f"{fraction}", meaning
    for factor, written, meaning in _LOG_FACTORS:
        if abs(k - factor) <= max(rtol, 1e-6) * factor:
            return f"{written} ≈ {factor:.4g}", meaning
    return None


def factor_hint(got, expected, inputs: Sequence = (), rtol: float = 0.0) -> str:
    """"yours is exactly k × the expected value" when the learner's answer is the expected one
    times a constant k (a sum for a mean, 1/2 · MSE, log2 for ln, a flipped sign), else "".

    k is written as a fraction p/q of small integers or of the inputs' sizes, with what those
    sizes are, or with the logarithm it stands for. For one number every answer is a multiple of
    the expected one, so only such a nice k is told; for tensors with two or more different
    values, any k is. Never raises: non-real, non-finite, zero or mis-shaped values give "".
    """
    try:
        dtype = expected.dtype if isinstance(expected, torch.Tensor) else torch.float64
        rtol = max(rtol, _FACTOR_TOLERANCE.get(dtype, 1e-5))
        k = _constant_factor(got, expected, rtol)
        if k is None or abs(k - 1) <= rtol:
            return ""
        nice = _nice(k, _sizes(inputs), rtol)
        if nice is None:
            theirs = _as_float64(expected)
            if theirs[theirs != 0].unique().numel() < 2:
                return ""
            return f"yours is exactly {k:.4g} × the expected value, everywhere"
        written, meaning = nice
        return f"yours is exactly {written} × the expected value" + (
            f" ({meaning})" if meaning else "")
    except Exception:  # noqa: BLE001 - a hint is a bonus: it must never break a verdict
        return ""


def _with_factor(message: str, got, expected, inputs: Sequence = (), rtol: float = 0.0) -> str:
    hint = factor_hint(got, expected, inputs, rtol)
    return f"{message}; {hint}" if hint else message


def values_differ(got: torch.Tensor, expected: torch.Tensor, inputs: Sequence = ()) -> str:
    """Where two tensors of one shape differ most, and by how much: "at index [i]: yours …,
    expected …", with enough digits to show the difference; "; yours is exactly k × the
    expected value" when that is so (see `factor_hint`; `inputs` name the sizes in k)."""
    difference = (got.detach().double() - expected.detach().double()).abs().nan_to_num(nan=math.inf)
    index = tuple(int(i) for i in torch.nonzero(difference == difference.max())[0])
    where = f" at index {list(index)}" if index else ""
    mine, theirs = got[index].item(), expected[index].item()
    digits = 6
    while digits < 17 and f"{mine:.{digits}g}" == f"{theirs:.{digits}g}":
        digits += 2
    message = f"{where}: yours {mine:.{digits}g}, expected {theirs:.{digits}g}"
    if expected.dtype == torch.float64 and abs(mine - theirs) <= 1e-5 * abs(theirs):
        message += (" (a float32-sized difference: look for a float32 value in this float64 "
                    "computation, e.g. a tensor where a Python number belongs)")
    return _with_factor(message, got, expected, inputs)


def kind_of(a) -> str:
    """What `a` is, in words that tell NumPy's values from torch's: "a NumPy float32 scalar"
    (not torch.float32), "a NumPy float64 array of shape (3,)", "list", "float"."""
    if isinstance(a, np.generic):
        return f"a NumPy {a.dtype} scalar"
    if isinstance(a, np.ndarray):
        return f"a NumPy {a.dtype} array of shape {a.shape}"
    return type(a).__name__


def _dtype_differs(got: torch.dtype, expected: torch.dtype, inputs: Sequence, where: str) -> str:
    """The dtype mismatch `where` it happened, with a hint that fits the inputs."""
    message = f"expected dtype {expected} but got {got} {where}"
    if any(isinstance(a, torch.Tensor) and a.dtype == expected for a in inputs):
        return message + ": compute in the input's dtype"
    if not expected.is_floating_point:
        return message
    shorthand = {torch.float64: " (or .double())", torch.float32: " (or .float())"}.get(
        expected, "")
    return message + f": convert integer values with .to({expected}){shorthand} first"


def _difference(task: str, got, expected, args, rtol: float, atol: float) -> Verdict:
    """A precise description of how `got` differs from `expected` (no diagnosis matched)."""
    on = f"on input {_describe(args)}"
    if got is None:
        return wrong(task, f"your function returned None {on}: did you forget `return`?")
    if isinstance(expected, torch.Tensor):
        if isinstance(got, np.generic | np.ndarray):
            return wrong(task, f"your function returned {kind_of(got)}; expected a torch tensor "
                               f"{on}: NumPy's {got.dtype} is not torch.{got.dtype}; compute "
                               "with torch functions (torch.log, torch.exp), not NumPy's or "
                               "math's")
        if not isinstance(got, torch.Tensor):
            return wrong(task, f"expected a tensor but your function returned "
                               f"{kind_of(got)} {on}")
        if got.shape != expected.shape:
            return wrong(task, f"expected shape {tuple(expected.shape)} but got "
                               f"{tuple(got.shape)} {on}")
        if got.dtype != expected.dtype:
            return wrong(task, _dtype_differs(got.dtype, expected.dtype, args, on))
        bad = torch.isfinite(expected) & ~torch.isfinite(got)
        if bad.any():
            return wrong(task, f"your result has inf or nan where the answer is finite {on}: "
                               "look for an overflow (exp of a large number) or a log of 0")
        return wrong(task, f"values differ {on}{values_differ(got, expected, args)}")
    return wrong(task, _with_factor(f"expected {expected!r} but got {got!r} {on}", got, expected,
                                    args, rtol))


def _fresh(case: tuple) -> tuple:
    """A copy of the inputs, so that a function changing them in place cannot spoil the next."""
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a for a in case)


def _same_mistake(learner: Callable, mistake: Callable, got, failing: tuple,
                  cases: Sequence[tuple], rtol: float, atol: float) -> bool:
    """Whether the learner's function equals a wrong implementation: on the failing case (whose
    output `got` is at hand), and on every other case where the wrong implementation runs."""
    def outputs_of(function, case):
        try:
            return function(*_fresh(case))
        except Exception:  # noqa: BLE001 - any failure means "no output here"
            return _FAILED

    first = outputs_of(mistake, failing)
    if first is _FAILED or not _close(got, first, rtol, atol):
        return False
    for case in cases:
        if case is failing or (theirs := outputs_of(mistake, case)) is _FAILED:
            continue
        if not _close(outputs_of(learner, case), theirs, rtol, atol):
            return False
    return True


_FAILED = object()


def lists_as_tuples(learner):
    """The learner's function with a returned list turned into a tuple, so that a pair may come
    back as either; anything not callable is passed through for the checker to describe."""
    if not callable(learner):
        return learner

    def as_tuple(*args):
        result = learner(*args)
        return tuple(result) if isinstance(result, list) else result
    return as_tuple


_NOT_BROADCAST = re.compile(r"The size of tensor a \((\d+)\) must match the size of tensor b "
                            r"\((\d+)\) at non-singleton dimension (\d+)")


def broadcast_failed(error: Exception) -> bool:
    """Whether `error` is torch's complaint about two shapes that do not broadcast."""
    return _NOT_BROADCAST.search(str(error)) is not None


def raised(error: Exception, args: Sequence = ()) -> str:
    """What the learner's function raising `error` on `args` tells: the error, the input, and for
    shapes that do not broadcast, the usual cause (a reduction without keepdim=True)."""
    message = f"your function raised {type(error).__name__}: {error} (on input {_describe(args)})"
    found = _NOT_BROADCAST.search(str(error))
    if found:
        a, b, dim = found.groups()
        message += (f": two tensors with {a} and {b} entries in dimension {dim} do not broadcast; "
                    "a reduction over a dimension (sum, max, mean, logsumexp) drops it unless you "
                    "pass keepdim=True")
    return message


def check_function(task: str, learner: Callable, reference: Callable, cases: Sequence[tuple],
                   diagnoses: Sequence[Diagnosis] = (), rtol: float = 1e-6,
                   atol: float = 1e-8,
                   explain: Callable[[Exception, tuple], str | None] | None = None) -> Verdict:
    """Run `learner(*case)` and `reference(*case)` for every case; return the first problem.

    Inputs are cloned for each call, so a learner's in-place change cannot spoil the next case.
    When an output differs, each diagnosis's wrong implementation is run on the same case and on
    every other case: if the learner's output equals it on all of them (cases where the wrong
    implementation itself fails do not count), its hint is the verdict. A mistake that agrees
    with the learner's by coincidence on one input does not get its hint. When the function
    raises, `explain(error, case)` may say why in the task's words (None: the generic `raised`).
    When no diagnosis matches, the verdict describes the difference, with "yours is exactly k ×
    the expected value" where that is so (`factor_hint`).
    """
    if not callable(learner):
        return wrong(task, f"expected a function, but got {type(learner).__name__}")
    for case in cases:
        expected = reference(*_fresh(case))
        try:
            got = learner(*_fresh(case))
        except NotImplementedError:
            return not_implemented(task)
        except Forbidden as error:  # the call it made is the verdict, whatever the case
            return wrong(task, str(error))
        except Exception as error:  # noqa: BLE001 - the learner's bug becomes a verdict
            told = None
            if explain is not None:
                try:
                    told = explain(error, case)
                except Exception:  # noqa: BLE001 - a broken explanation falls back to the generic
                    told = None
            return wrong(task, told or raised(error, case))
        if _close(got, expected, rtol, atol):
            continue
        if _is_complex(got) and not _is_complex(expected):
            return wrong(task, _COMPLEX)
        for diagnosis in diagnoses:
            if _same_mistake(learner, diagnosis.wrong, got, case, cases, rtol, atol):
                return wrong(task, diagnosis.hint)
        return _difference(task, got, expected, case, rtol, atol)
    return passed(task)


def check_answer(task: str, learner: Callable[[], object], expected,
                 diagnoses: Sequence[tuple[object, str]] = (), rtol: float = 1e-6,
                 atol: float = 1e-8) -> Verdict:
    """For a conceptual task: `learner()` returns an answer, compared with `expected`.

    `expected` is the answer itself or, for a question whose answer a learner could otherwise read
    here, `Sealed` (compared at `SEAL_DIGITS` significant digits). `diagnoses` pairs typical
    wrong answers with their hints, `(mistake, hint)`, tried in their order once the answer is
    not the expected one; the first mistake the answer is gives its hint. A mistake is

    * a plain wrong answer, compared as `expected` is (at `rtol`, `atol`);
    * a `Sealed` wrong answer: the answer is that one when it opens the seal;
    * a `Disguised(undo, sealed=None)` one: the answer is that one when `undo(answer)` opens
      `sealed` (by default the expected seal); an `undo` that raises means "not this mistake".

    A typical wrong answer is often the right one in another form (its numbers swapped, in
    another unit, a factor too many): written plainly, it would give the right answer away, so it
    is sealed too, or described by the step (`undo`) that takes its disguise off.
    """
    if not callable(learner):
        return wrong(task, f"expected a function, but got {type(learner).__name__}")
    try:
        got = learner()
    except NotImplementedError:
        return not_implemented(task)
    except Forbidden as error:
        return wrong(task, str(error))
    except Exception as error:  # noqa: BLE001 - the learner's bug becomes a verdict
        return wrong(task, f"your function raised {type(error).__name__}: {error}")
    if got is None:
        return wrong(task, "your function returned None: did you forget `return`?")
    several = isinstance(expected, list | tuple) or (isinstance(expected, Sealed)
                                                       and expected.length is not None)
    if several and isinstance(got, torch.Tensor | np.ndarray):
        got = got.tolist()
    if _close(got, expected, rtol, atol) if not isinstance(expected, Sealed) else (
            _opens(expected, task, got)):
        return passed(task)
    if _is_complex(got):
        return wrong(task, _COMPLEX)
    for mistake, hint in diagnoses:
        if _is_mistake(got, mistake, task, expected, rtol, atol):
            return wrong(task, hint)
    if isinstance(expected, Sealed):
        return _sealed_difference(task, got, expected)
    if hint := factor_hint(got, expected, rtol=rtol):
        return wrong(task, f"not the expected answer (you returned {got!r}); {hint}")
    if _close(got, expected, 1e-2, 1e-6):
        return wrong(task, f"close, but not exact (you returned {got!r}): compute the answer "
                           "in float64 from its formula, without rounding")
    return wrong(task, f"not the expected answer (you returned {got!r})")


def _is_mistake(got, mistake, task: str, expected, rtol: float, atol: float) -> bool:
    """Whether the learner's answer `got` is the typical wrong answer `mistake` (see
    `check_answer`)."""
    if isinstance(mistake, Sealed):
        return _opens(mistake, task, got)
    if isinstance(mistake, Disguised):
        sealed = mistake.sealed or expected
        if not isinstance(sealed, Sealed):
            raise TypeError(f"a Disguised mistake of {task!r} needs a Sealed answer to open: "
                            f"give it `sealed=` or seal the expected answer")
        try:
            undone = mistake.undo(got)
        except Exception:  # noqa: BLE001 - an answer of another kind is not this disguise
            return False
        return _opens(sealed, task, undone)
    return _close(got, mistake, rtol, atol)


# --------------------------------------------------------------------------------------------
# Answers kept sealed: a question's answer must not be readable in its checker
# --------------------------------------------------------------------------------------------

SEAL_DIGITS = 6  # an answer is compared at 6 significant digits (a relative 5e-7 or better)


def _fingerprint(value) -> str | None:
    """An answer as canonical text: each number at `SEAL_DIGITS` significant digits (a Python,
    NumPy or one-element tensor value alike, -0 as 0), a string stripped, a tuple or list (or a
    tensor or array of several values) element by element; None for anything else."""
    if isinstance(value, str):
        return "s:" + value.strip()
    if (isinstance(value, np.ndarray) and value.size != 1
            or isinstance(value, torch.Tensor) and value.numel() != 1):
        value = value.tolist()
    if isinstance(value, tuple | list):
        parts = [_fingerprint(v) for v in value]
        return None if None in parts else "(" + ",".join(parts) + ")"
    number = as_number(value)
    if number is None:
        return None
    number = float(number) + 0.0
    return f"{number:.{SEAL_DIGITS - 1}e}" if math.isfinite(number) else repr(number)


def _digest(task: str, fingerprint: str) -> str:
    return hashlib.sha256(f"{task}|{fingerprint}".encode()).hexdigest()


@dataclass(frozen=True)
class Sealed:
    """An expected answer kept as the SHA-256 digest of its fingerprint (see `seal`), so that a
    checker's source does not give it away; `length` is how many values a tuple answer holds
    (None for a single value): the shape of the answer is no secret. A typical wrong answer that
    is the right one in another form is sealed the same way, as the mistake of a `check_answer`
    diagnosis: written plainly, it would give the right answer away."""

    digest: str
    length: int | None = None


def _numbers(value) -> list[float]:
    if isinstance(value, tuple | list):
        return [x for v in value for x in _numbers(v)]
    number = as_number(value)
    return [] if number is None else [float(number)]


def seal(task: str, answer) -> Sealed:
    """`answer` of `task` sealed: run once while writing a checker and paste what it returns.

    Refuses an answer with a number within 1e-9 (relative) of a rounding boundary at
    `SEAL_DIGITS` digits, where a right answer computed in another order could round the other
    way."""
    fingerprint = _fingerprint(answer)
    if fingerprint is None:
        raise TypeError(f"expected numbers, a string, or a tuple of them, but got {answer!r}")
    for x in _numbers(answer):
        if len({_fingerprint(x * (1 + d)) for d in (-1e-9, 0.0, 1e-9)}) > 1:
            raise ValueError(f"{x!r} lies on a rounding boundary at {SEAL_DIGITS} significant "
                             "digits: seal another form of the answer")
    length = len(answer) if isinstance(answer, tuple | list) else None
    return Sealed(_digest(task, fingerprint), length)


@dataclass(frozen=True)
class Disguised:
    """A typical wrong answer of a question that is a sealed answer in disguise (a pair
    swapped, a factor b too many, a percentage for a fraction): `undo(answer)` takes the disguise
    off, and the learner's answer is this mistake when the result opens `sealed` (None: the
    task's expected seal). So the mistake is recognised without the right answer, or the rule
    that computes it, being written in the checker: a wrong answer written plainly would give
    the right one away. An `undo` that raises means "not this mistake". Used as the mistake of
    a `check_answer` diagnosis, `(Disguised(undo), hint)`."""

    undo: Callable[[object], object]
    sealed: Sealed | None = None


def swapped(pair):
    """A pair the other way round: the `undo` of a pair answered in the wrong order."""
    first, second = pair
    return second, first


def _opens(sealed: Sealed, task: str, got) -> bool:
    """Whether `got` is the answer `sealed` keeps (a tensor or array of a tuple answer as the
    list of its values)."""
    if sealed.length is not None and isinstance(got, torch.Tensor | np.ndarray):
        got = got.tolist()
    fingerprint = _fingerprint(got)
    return fingerprint is not None and _digest(task, fingerprint) == sealed.digest


def _scaled(got, k: float):
    if isinstance(got, tuple | list):
        return [_scaled(v, k) for v in got]
    number = as_number(got)
    return None if number is None else number / k


# the factors a sealed answer's hint may name: the usual slips (a doubled or halved term, a
# flipped sign, a logarithm in another base). Any other k would give the answer away, since every
# wrong number is some multiple of the right one.
_SEALED_FACTORS = ((2.0, "2", ""), (0.5, "1/2", ""), (-1.0, "-1", "the sign is flipped"),
                   *((k, f"{written} ≈ {k:.4g}", meaning) for k, written, meaning in _LOG_FACTORS))


def _sealed_factor(sealed: Sealed, task: str, got) -> str:
    """"yours is exactly k × the expected value" for a k of `_SEALED_FACTORS` that opens the
    seal, else ""."""
    for k, written, meaning in _SEALED_FACTORS:
        scaled = _scaled(got, k)
        if scaled is not None and _opens(sealed, task, scaled):
            return f"yours is exactly {written} × the expected value" + (
                f" ({meaning})" if meaning else "")
    return ""


def _sealed_difference(task: str, got, sealed: Sealed) -> Verdict:
    if sealed.length is not None and isinstance(got, tuple | list) and len(got) != sealed.length:
        return wrong(task, f"expected a tuple of {sealed.length} values, but got {len(got)}: "
                           f"{got!r}")
    if sealed.length is not None and not isinstance(got, tuple | list):
        return wrong(task, f"expected a tuple of {sealed.length} values, but got {got!r}")
    if hint := _sealed_factor(sealed, task, got):
        return wrong(task, f"not the expected answer (you returned {got!r}); {hint}")
    return wrong(task, f"not the expected answer (you returned {got!r})")


HIDDEN_SEED: int | None = None  # set by a hidden test (grading.hidden_inputs): other inputs


def input_seed(seed: int) -> int:
    """The seed of a checker's inputs: `seed` itself, or within a hidden test one drawn from
    `seed` and the hidden seed (so that the learner cannot know the inputs)."""
    if HIDDEN_SEED is None:
        return seed
    return (seed * 6364136223846793005 + HIDDEN_SEED * 1442695040888963407) % 2**63


def seeded(seed: int) -> torch.Generator:
    """A fresh generator for a checker's inputs, seeded with `input_seed(seed)`."""
    return torch.Generator().manual_seed(input_seed(seed))


# --------------------------------------------------------------------------------------------
# Checking a function through a procedure that builds fresh objects for it
# --------------------------------------------------------------------------------------------


class BadReturn(Exception):
    """Raised by a procedure when the learner's function returned something it cannot go on
    with; its message, which starts with "your function returned", becomes the verdict."""


def check_procedure(task: str, learner, reference: Callable, cases: Sequence,
                    diagnoses: Sequence[Diagnosis] = (), rtol: float = 1e-6,
                    atol: float = 1e-8) -> Verdict:
    """`check_function` where every case is a procedure: `case.run(function)` builds fresh
    objects (a model, a loader, an optimizer, a generator), calls `function` with them, and
    returns what is compared; `repr(case)` describes it in one line.

    The learner's function, the reference and each diagnosis's wrong function all go through
    the same procedures, so a function that changes its objects (a model's mode, a generator's
    state) cannot spoil the next call.
    """
    if not callable(learner):
        return wrong(task, f"expected a function, but got {type(learner).__name__}")

    def through(function: Callable) -> Callable:
        return lambda case: case.run(function)

    verdict = check_function(task, through(learner), through(reference), [(c,) for c in cases],
                             [Diagnosis(through(d.wrong), d.hint) for d in diagnoses], rtol, atol)
    raised = f"your function raised {BadReturn.__name__}: "
    if verdict.message.startswith(raised):  # the procedure's words, not an error of the learner's
        return wrong(task, verdict.message.removeprefix(raised))
    return verdict
