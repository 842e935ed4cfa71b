"""Grading the exercises: points per task, tasks that forbid a built-in, hidden tests, a score.

Every chapter's checker is declared with `task`:

    @task(points=1, forbid=("torch.optim",))
    def check_sgd_step(sgd_step) -> Verdict: ...

which gives it three things.

* **Forbidden calls.** While the learner's function runs, every call it makes (directly or through
  other code) is watched. A call into what the task forbids (a dotted prefix: ``"torch.optim"``,
  ``"torch.nn.functional.cross_entropy"``), or into the course's own package (``helpers``, whose
  functions and references would solve any task), ends the check with a verdict that names the
  call. Methods of the objects a checker hands over (a model, a data set) stay allowed.
* **A score.** The latest verdict of each task is kept, and `score_summary()` (the last cell of
  every exercise notebook) shows the tasks of the chapter with their points.
* **Hidden tests.** A graded assignment's test cell ends with a block that the learner's copy
  does not contain::

      ### BEGIN HIDDEN TESTS
      from helpers.exercises.grading import grade
      grade(check_sgd_step, sgd_step, seed=5821)
      ### END HIDDEN TESTS

  `grade` runs the checker on its usual inputs, then on inputs drawn from `seed` (a number the
  learner never sees: every generator the checker builds with `seeded(n)` is seeded from ``n``
  and it), and raises AssertionError with the verdict unless both pass. An answer that
  special-cases the visible inputs, or calls what the task forbids, loses the task's points.
"""

from __future__ import annotations

import functools
import html
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import helpers.exercises as exercises
from helpers.exercises import (
    NOT_IMPLEMENTED,
    PASSED,
    Forbidden,
    Verdict,
    show_as_display_data,
    wrong,
)

COURSE_PACKAGE, CHECKERS_PACKAGE = "helpers", "helpers.exercises"


# --------------------------------------------------------------------------------------------
# Watching the calls of the learner's function
# --------------------------------------------------------------------------------------------


def _c_name(function) -> str:
    """The dotted name of a built-in (C) function as a learner writes it: torch.log_softmax,
    torch.Tensor.log_softmax, torch._C._nn.cross_entropy_loss."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None) or getattr(function, "__name__", "?")
    qualname = qualname.removeprefix("_VariableFunctionsClass.")
    if qualname.startswith("TensorBase."):  # torch.Tensor's methods are TensorBase's in C
        qualname = "Tensor." + qualname.removeprefix("TensorBase.")
    if module is None and qualname.startswith("Tensor."):
        module = "torch"
    return f"{module}.{qualname}" if module else qualname


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden_call(event: str, module: str | None, qualname: str,
                   forbid: Sequence[str]) -> str | None:
    """The dotted name of the call when it is forbidden, else None.

    `event` is "call" (Python code of `module`, with `qualname`) or "c_call" (a built-in whose
    dotted name is `qualname`). Code of the course's package that would do the task counts as
    forbidden everywhere (`_solves`).
    """
    name = qualname if event == "c_call" else f"{module}.{qualname}"
    if event == "call" and module and _matches(module, COURSE_PACKAGE) and _solves(module,
                                                                                    qualname):
        return name
    return name if any(_matches(name, prefix) for prefix in forbid) else None


def _solves(module: str, qualname: str) -> bool:
    """Whether calling this code of the course's package would do a task for the learner: a
    function of the checkers' modules (their references), or any function or method of the
    rest of the package (`helpers.optim.SGD.step`). Methods of the checkers' own classes (the
    model, the data a checker hands over), special methods (constructing an object) and nested
    functions are allowed."""
    if "<locals>" in qualname:
        return False
    if _matches(module, CHECKERS_PACKAGE):
        return "." not in qualname
    last = qualname.rsplit(".", 1)[-1]
    return not (last.startswith("__") and last.endswith("__"))


def guarded(learner, forbid: Sequence[str] = ()):
    """`learner` wrapped so that a call into `forbid` or into the course's package, made while it
    runs, raises `Forbidden` once it returns. Anything not callable comes back unchanged."""
    if not callable(learner):
        return learner
    forbid = tuple(forbid)

    @functools.wraps(learner)
    def watched(*args, **kwargs):
        found: list[str] = []

        def profile(frame, event, arg):
            if found:
                return
            if event == "call":
                code = frame.f_code
                name = forbidden_call(event, frame.f_globals.get("__name__"), code.co_qualname,
                                      forbid)
            elif event == "c_call":
                name = forbidden_call(event, None, _c_name(arg), forbid)
            else:
                return
            if name is not None:
                found.append(name)

        previous = sys.getprofile()
        sys.setprofile(profile)
        try:
            result = learner(*args, **kwargs)
        finally:
            sys.setprofile(previous)
        if found:
            raise Forbidden(_forbidden_message(found[0], forbid))
        return result

    return watched


# where torch keeps what a learner calls by another name: the internal prefix, the public one
_PUBLIC_NAMES = (
    ("torch._C._nn.", "torch.nn.functional."),
    ("torch._C._special.special_", "torch.special."),
    ("torch._C._linalg.linalg_", "torch.linalg."),
    ("torch._tensor.Tensor.", "torch.Tensor."),
    ("torch._functorch.apis.", "torch.func."),
    ("torch._functorch.eager_transforms.", "torch.func."),
)


def public_name(name: str) -> str:
    """`name` as a learner writes it: torch._C._nn.softplus is torch.nn.functional.softplus."""
    for internal, public in _PUBLIC_NAMES:
        if name.startswith(internal):
            return public + name.removeprefix(internal)
    return name


def _forbidden_message(name: str, forbid: Sequence[str]) -> str:
    banned = next((p for p in forbid if _matches(name, p)), None)
    shown = public_name(name)
    if banned is None:
        return (f"your function calls {shown}, the course's own code: this task asks you to "
                "write it yourself")
    return (f"your function calls {shown}: this task asks you to write it without "
            f"{public_name(banned)}")


# --------------------------------------------------------------------------------------------
# Tasks: points, forbidden calls, and the latest verdict of each
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One exercise task: its checker's name, the points it is worth, what it forbids."""

    checker: str
    points: int
    forbid: tuple[str, ...]


TASKS: dict[str, list[Task]] = {}  # module -> its tasks, in the order they are defined
_LATEST: dict[tuple[str, str], Verdict] = {}  # (module, checker) -> the latest verdict


def task(points: int = 1, forbid: Sequence[str] = ()) -> Callable:
    """Declare a checker: its task is worth `points` and forbids calls into `forbid`.

    The checker is called with the learner's function watched (`guarded`): a forbidden call
    raises `Forbidden`, which the shared checking code (`check_function`, `check_answer`) turns
    into the verdict. The verdict is kept for `score_summary`.
    """
    if not isinstance(points, int) or isinstance(points, bool) or points < 1:
        raise ValueError(f"expected a positive whole number of points, but got {points!r}")
    forbid = (forbid,) if isinstance(forbid, str) else tuple(forbid)

    def declare(check: Callable[[object], Verdict]) -> Callable[[object], Verdict]:
        module, name = check.__module__, check.__name__
        TASKS.setdefault(module, []).append(Task(name, points, forbid))

        @functools.wraps(check)
        def checker(learner) -> Verdict:
            verdict = check(guarded(learner, forbid))
            _LATEST[module, name] = verdict
            return verdict

        checker.points, checker.forbid = points, forbid
        return checker

    return declare


# --------------------------------------------------------------------------------------------
# The score of a chapter
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSummary:
    """The tasks of one or more chapters with the latest verdict of each and the points won."""

    rows: tuple[tuple[Task, Verdict | None], ...]

    @property
    def points(self) -> int:
        return sum(t.points for t, v in self.rows if v is not None and v.passed)

    @property
    def total(self) -> int:
        return sum(t.points for t, _ in self.rows)

    def _lines(self) -> Iterator[tuple[str, str, str]]:
        for t, verdict in self.rows:
            won = t.points if verdict is not None and verdict.passed else 0
            label = verdict.task if verdict is not None else t.checker.removeprefix("check_")
            if verdict is None:
                status = "· not checked yet: run its cell"
            elif verdict.status == NOT_IMPLEMENTED:
                status = "… not implemented yet"
            else:
                status = f"{verdict.symbol} {verdict.message}"
            yield label, f"{won}/{t.points}", status

    def __str__(self) -> str:
        passed = sum(1 for _, v in self.rows if v is not None and v.status == PASSED)
        lines = [f"Score: {self.points}/{self.total} points ({passed} of {len(self.rows)} tasks "
                 "passed)"]
        width = max((len(label) for label, _, _ in self._lines()), default=0)
        lines += [f"  {label:<{width}}  {points:>5}  {status}"
                  for label, points, status in self._lines()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _ipython_display_(self) -> None:
        show_as_display_data(self)

    def _repr_html_(self) -> str:
        head = html.escape(str(self).splitlines()[0])
        rows = "".join(f"<tr><td>{html.escape(a)}</td><td>{html.escape(b)}</td>"
                       f"<td style='text-align:left'>{html.escape(c)}</td></tr>"
                       for a, b, c in self._lines())
        return (f"<p><b>{head}</b></p><table><tr><th>task</th><th>points</th>"
                f"<th style='text-align:left'>latest verdict</th></tr>{rows}</table>")


def score_summary(*modules: str) -> ScoreSummary:
    """The score of the chapters whose checkers this kernel has run (or of `modules`, given by
    name): every task of each, with its points and latest verdict."""
    if not modules:
        modules = tuple(dict.fromkeys(module for module, _ in _LATEST))
    unknown = [m for m in modules if m not in TASKS]
    if unknown:
        raise ValueError(f"expected modules with exercise tasks ({', '.join(sorted(TASKS))}), "
                         f"but got {', '.join(unknown)}")
    return ScoreSummary(tuple((t, _LATEST.get((m, t.checker))) for m in modules
                              for t in TASKS[m]))


# --------------------------------------------------------------------------------------------
# Hidden tests
# --------------------------------------------------------------------------------------------


@contextmanager
def hidden_inputs(seed: int) -> Iterator[None]:
    """Within this block, `helpers.exercises.seeded(n)` draws from a generator seeded from both
    `n` and `seed`: other inputs of the same shapes and kinds."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 1:
        raise ValueError(f"expected a positive whole number as the hidden seed, but got {seed!r}")
    previous, exercises.HIDDEN_SEED = exercises.HIDDEN_SEED, seed
    try:
        yield
    finally:
        exercises.HIDDEN_SEED = previous


def grade(check: Callable[[object], Verdict], learner, *, seed: int) -> Verdict:
    """The hidden test of one task: `check(learner)` on the visible inputs, then on inputs drawn
    from `seed`; raises AssertionError with the verdict unless both pass."""
    verdict = check(learner)
    if verdict.passed:
        with hidden_inputs(seed):
            verdict = check(learner)
        if not verdict.passed:
            verdict = wrong(verdict.task, f"on the hidden inputs: {verdict.message}")
    if not verdict.passed:
        raise AssertionError(str(verdict))
    return verdict
