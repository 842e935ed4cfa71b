"""The tests every chapter's exercise checkers must pass, generated from its table of mistakes.

A test module defines `MISTAKES = {checker: [(wrong_answer, hint_substring), ...]}` and the
solution notebook(s) of its chapter, and binds every shared test with one line:

    globals().update(exercise_tests(MISTAKES, SOLUTION))

That gives: each typical mistake is rejected with its hint, every task has two diagnosed mistakes,
a missing answer says "not implemented", a broken answer (None, an exception, not a function) or
an answer of the wrong type or shape is told and never crashes the checker, every diagnosis is
reachable with its own hint, every mistake keeps its hint on the hidden inputs of seeds 1 to 3,
every name a task forbids exists, every answer of the table `forbidden` (right, but by what its
task forbids) loses the task with a verdict naming its call, and every task that forbids something
is tried with such an answer; and with the solution notebooks, that they pass every checker,
one verdict per task, and that each task's solution passes `grade` for its notebook's hidden seed
and seeds 1 to 10.

The helpers the chapters' own tests share live here too: `solutions_of(path)` (a solution
notebook's answers by checker name), `resolve(dotted)` and `frozen(value)`.

The older binding still works: `(test_mistakes_get_their_hint, test_two_mistakes_per_task,
test_missing_answers, test_broken_answers, test_diagnoses_reachable) = mistake_tests(MISTAKES)`.
"""

import ast
import functools
import importlib
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from helpers import exercises as E
from helpers.exercises import grading


def not_implemented(*args, **kwargs):
    raise NotImplementedError


def diagnoses_of(check) -> list[tuple[object, str]]:
    """The (learner, hint) pairs a checker knows: its wrong implementations (or wrong answers,
    turned into functions), read by running it once with the framework's calls replaced."""
    found = []

    def spy_function(task, learner, reference, cases, diagnoses=(), **options):
        found.extend((d.wrong, d.hint) for d in diagnoses)
        return E.passed(task)

    def spy_answer(task, learner, expected, diagnoses=(), **options):
        # a sealed or disguised mistake cannot be written as an answer without the right one
        found.extend(((lambda answer=answer: answer), hint) for answer, hint in diagnoses
                     if not isinstance(answer, E.Sealed | E.Disguised))
        return E.passed(task)

    module = sys.modules[check.__module__]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(module, "check_function", spy_function, raising=False)
        patch.setattr(module, "check_answer", spy_answer, raising=False)
        patch.setattr(module, "check_steps", spy_function, raising=False)
        patch.setattr(module, "check_procedure", spy_function, raising=False)
        check(not_implemented)
    return found


def verdicts_of(notebook) -> list[E.Verdict]:
    """Run the notebook's code in-process; collect what each cell's last expression returns."""
    namespace, verdicts = {}, []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), namespace)  # noqa: S102 - our own notebooks
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)  # noqa: S307
            if isinstance(value, E.Verdict):
                verdicts.append(value)
    return verdicts


HIDDEN_TEST = re.compile(r"grade\((check_\w+), (\w+), seed=(\d+)\)")
"""A solution notebook's hidden test, as its check cells write it."""


@functools.cache
def solutions_of(path: Path) -> dict[str, tuple[Callable, Callable, int]]:
    """{checker name: (checker, the notebook's answer, the seed of its hidden test)} of a
    solution notebook: its cells run in-process, except the check cells (read for the checker,
    the answer and the seed, not run) and the closing score summary."""
    namespace, tests = {}, []
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type != "code" or "score_summary" in cell.source:
            continue
        if found := HIDDEN_TEST.findall(cell.source):
            tests += found
        else:
            exec(compile(cell.source, str(path), "exec"), namespace)  # noqa: S102 - our notebooks
    return {check: (namespace[check], namespace[answer], int(seed))
            for check, answer, seed in tests}


def resolve(dotted: str):
    """The object a dotted name stands for: its longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ImportError(dotted)


def frozen(value):
    """A hashable copy of an input: tensors as their values, sequences as tuples."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape), tuple(value.flatten().tolist())
    if isinstance(value, tuple | list):
        return tuple(frozen(v) for v in value)
    return value


def task_of(check) -> str:
    """The task name a checker reports (read from its verdict on a missing answer)."""
    return check(not_implemented).task


def mistake_tests(mistakes: dict):
    cases = [(check, wrong, hint) for check, table in mistakes.items() for wrong, hint in table]

    @pytest.mark.parametrize("check, wrong, hint", cases,
                             ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(cases)])
    def test_a_typical_mistake_is_rejected_with_its_hint(check, wrong, hint):
        verdict = check(wrong)
        assert verdict.status == E.WRONG, f"{check.__name__} accepted a wrong answer"
        assert hint in verdict.message, verdict.message

    def test_every_task_has_at_least_two_diagnosed_mistakes():
        assert all(len(table) >= 2 for table in mistakes.values())

    @pytest.mark.parametrize("check", list(mistakes), ids=lambda c: c.__name__)
    def test_a_missing_answer_says_not_implemented(check):
        verdict = check(not_implemented)
        assert verdict.status == E.NOT_IMPLEMENTED and "not implemented yet" in str(verdict)

    @pytest.mark.parametrize("check", list(mistakes), ids=lambda c: c.__name__)
    @pytest.mark.parametrize("learner, complaint", [
        (lambda *a, **k: None, "returned None"),
        (lambda *a, **k: 1 / 0, "raised ZeroDivisionError"),
        ("not a function", "expected a function"),
    ])
    def test_checkers_never_crash_on_broken_answers(check, learner, complaint):
        verdict = check(learner)
        assert verdict.status == E.WRONG and complaint in verdict.message

    known = [(check, wrong, hint) for check in mistakes for wrong, hint in diagnoses_of(check)]

    @pytest.mark.parametrize("check, wrong, hint", known,
                             ids=[f"{c.__name__}-{i}" for i, (c, _, _) in enumerate(known)])
    def test_every_diagnosis_is_reachable_with_its_own_hint(check, wrong, hint):
        # an earlier diagnosis that equals a later one on the first failing case would hide it;
        # the wrong implementation is the checker's own code (it may call the checker module's
        # functions, or compute with what the task forbids, its reference library), so it runs
        # unwatched: the checker as written, without `task`'s wrapper
        verdict = getattr(check, "__wrapped__", check)(wrong)
        assert verdict.status == E.WRONG and verdict.message == hint, verdict.message

    return (test_a_typical_mistake_is_rejected_with_its_hint,
            test_every_task_has_at_least_two_diagnosed_mistakes,
            test_a_missing_answer_says_not_implemented,
            test_checkers_never_crash_on_broken_answers,
            test_every_diagnosis_is_reachable_with_its_own_hint)


# answers of a wrong type, shape or value that no checker may crash on (nor accept)
WRONG_KINDS = {
    "a string": lambda *a, **k: "0.5",
    "a list": lambda *a, **k: [0.5, 1.5],
    "a NumPy float32 scalar": lambda *a, **k: np.float32(0.5),
    "a NumPy array": lambda *a, **k: np.full((3, 2), 0.5),
    "a tensor of an odd shape": lambda *a, **k: torch.full((17, 3), 0.5),
    "a 0-d nan tensor": lambda *a, **k: torch.tensor(float("nan")),
    "an integer tensor": lambda *a, **k: torch.tensor([7, 7, 7]),
    "the first input back": lambda *a, **k: a[0] if a else 0.5,
}


def exercise_tests(mistakes: dict, *solutions: Path,
                   seeds_of: Callable[[str], Iterable[int]] = lambda name: range(1, 11),
                   right_on_some_inputs: Iterable[tuple[Callable, str]] = (),
                   may_be_missing: Mapping[str, str] | None = None,
                   memorised: Iterable[str] = (),
                   forbidden: Iterable[tuple[Callable, Callable, str]] = (),
                   every_forbidden_name_tried: bool = False) -> dict:
    """Every shared test of one chapter's checkers, by name, for `globals().update(...)`:
    `mistake_tests`'s five, answers of a wrong type or shape, every mistake keeping its hint on
    hidden inputs, every forbidden name existing, and, with the chapter's solution notebooks,
    that they pass every checker with exactly one verdict per task of `mistakes`, and `grade`
    for the hidden seeds.

    Options: `seeds_of(checker name)`, the hidden seeds besides the notebook's own that a task's
    solution is graded with (fewer for a slow task); `right_on_some_inputs`, (checker, hint) of
    mistakes that some random inputs do not reveal, left out on hidden inputs;
    `may_be_missing`, forbidden names that only some versions have, each with the reason (the
    test skips with it where the name does not resolve); `memorised`, checker names of tasks
    whose inputs are random: an answer that memorises their visible cases fails the hidden
    test; `forbidden`, (checker, answer, call) of answers that are right but call what their
    task forbids, `call` being the dotted name the watcher reports (`forbidden_call_tests`);
    `every_forbidden_name_tried`, that each name a task forbids is called by one of them (for
    chapters whose tasks forbid a library and the course's counterpart, not a family of names)."""
    names = ("test_a_typical_mistake_is_rejected_with_its_hint",
             "test_every_task_has_at_least_two_diagnosed_mistakes",
             "test_a_missing_answer_says_not_implemented",
             "test_checkers_never_crash_on_broken_answers",
             "test_every_diagnosis_is_reachable_with_its_own_hint")
    tests = dict(zip(names, mistake_tests(mistakes), strict=True))

    @pytest.mark.parametrize("check", list(mistakes), ids=lambda c: c.__name__)
    @pytest.mark.parametrize("kind", list(WRONG_KINDS))
    def test_checkers_tell_a_wrong_type_or_shape_and_never_crash(check, kind):
        verdict = check(WRONG_KINDS[kind])
        assert verdict.status == E.WRONG and verdict.message, verdict

    shared = [test_checkers_tell_a_wrong_type_or_shape_and_never_crash,
              hidden_input_test(mistakes, set(right_on_some_inputs)),
              forbidden_name_test(mistakes, may_be_missing or {}),
              *forbidden_call_tests(mistakes, list(forbidden), every_forbidden_name_tried)]
    if solutions:
        shared += solution_tests(mistakes, solutions, seeds_of)
    if memorised:
        shared.append(memorised_answer_test(solutions, list(memorised)))
    tests.update((test.__name__, test) for test in shared)
    return tests


def hidden_input_test(mistakes: dict, right_on_some_inputs: set) -> Callable:
    """The test that each typical mistake keeps its hint under hidden seeds 1 to 3."""
    @pytest.mark.parametrize("seed", [1, 2, 3])
    def test_on_hidden_inputs_every_typical_mistake_keeps_its_hint(seed):
        """A diagnosis holds for any inputs of the same kind, not for the visible ones only."""
        with grading.hidden_inputs(seed):
            for check, table in mistakes.items():
                for wrong, hint in table:
                    if (check, hint) in right_on_some_inputs:
                        continue
                    verdict = check(wrong)
                    assert verdict.status == E.WRONG and hint in verdict.message, (
                        check.__name__, verdict.message)

    return test_on_hidden_inputs_every_typical_mistake_keeps_its_hint


def forbidden_name_test(mistakes: dict, may_be_missing: Mapping[str, str]) -> Callable:
    """The test that every name a task forbids resolves: a misspelt name would forbid nothing."""
    @pytest.mark.parametrize("name", sorted({n for check in mistakes for n in check.forbid}))
    def test_every_forbidden_name_exists(name):
        """A misspelt name would forbid nothing."""
        if name in may_be_missing:
            try:
                resolve(name)
            except (ImportError, AttributeError):
                pytest.skip(f"{name}: {may_be_missing[name]}")
        assert resolve(name) is not None

    return test_every_forbidden_name_exists


def forbidden_call_tests(mistakes: dict, forbidden: list[tuple[Callable, Callable, str]],
                         every_name_tried: bool = False) -> list[Callable]:
    """The tests that each answer of `forbidden`, (checker, answer, call), is right unwatched
    (the checker as written, `check.__wrapped__`) and loses its task watched, told the call
    (as a learner writes it, `grading.public_name`) and the forbidden prefix it falls under;
    and that the checkers of the table are exactly the tasks of the chapter's modules that
    forbid something (`grading.TASKS`), so that no forbid goes untried; with `every_name_tried`,
    also that every name they forbid is the prefix of some answer's call."""
    @pytest.mark.parametrize("check, answer, call", forbidden,
                             ids=[f"{c.__name__}-{i}" for i, (c, *_) in enumerate(forbidden)])
    def test_an_answer_that_calls_what_its_task_forbids_loses_it_told_the_call(check, answer,
                                                                               call):
        unwatched = check.__wrapped__(answer)
        assert unwatched.passed, f"wrong even unwatched, not for its call alone: {unwatched}"
        banned = forbidden_prefix(check, call)
        verdict = check(answer)
        assert verdict.status == E.WRONG, f"accepted although it calls {call}: {verdict}"
        assert verdict.message == (f"your function calls {grading.public_name(call)}: this task "
                                   f"asks you to write it without {grading.public_name(banned)}"
                                   ), verdict.message

    def test_every_task_that_forbids_something_is_tried_with_an_answer_that_calls_it():
        modules = {check.__module__ for check in mistakes}
        forbidding = {(module, t.checker) for module in modules for t in grading.TASKS[module]
                      if t.forbid}
        tried = {(c.__module__, c.__name__) for c, *_ in forbidden}
        assert tried == forbidding, (f"never tried: {sorted(forbidding - tried)}; "
                                     f"forbid nothing: {sorted(tried - forbidding)}")

    def test_every_name_the_tasks_forbid_is_tried_by_some_answer():
        tried = {forbidden_prefix(check, call) for check, _, call in forbidden}
        assert tried == {name for check in mistakes for name in check.forbid}, tried

    return [test_an_answer_that_calls_what_its_task_forbids_loses_it_told_the_call,
            test_every_task_that_forbids_something_is_tried_with_an_answer_that_calls_it,
            *([test_every_name_the_tasks_forbid_is_tried_by_some_answer] if every_name_tried
              else [])]


def forbidden_prefix(check, call: str) -> str:
    """The entry of `check.forbid` that the dotted name `call` falls under (the first, as the
    verdict names it); a call it forbids nothing of is a mistake in the test's table."""
    for prefix in check.forbid:
        if call == prefix or call.startswith(prefix + "."):
            return prefix
    raise ValueError(f"{call} is not forbidden by {check.__name__} (forbid={check.forbid})")


def solution_tests(mistakes: dict, solutions: tuple[Path, ...],
                   seeds_of: Callable[[str], Iterable[int]]) -> list[Callable]:
    """The tests that the solution notebooks pass every checker (one verdict per task) and
    `grade` under their hidden seed and `seeds_of(checker name)`."""
    def test_the_solutions_pass_every_checker():
        verdicts = [v for path in solutions
                    for v in verdicts_of(nbformat.read(path, as_version=4))]
        assert all(v.passed for v in verdicts), [str(v) for v in verdicts if not v.passed]
        assert sorted(v.task for v in verdicts) == sorted(map(task_of, mistakes))

    @pytest.mark.parametrize("check", list(mistakes), ids=lambda c: c.__name__)
    def test_the_solutions_pass_the_hidden_tests_whatever_the_seed(check):
        found = {name: test for path in solutions for name, test in solutions_of(path).items()}
        assert check.__name__ in found, f"no hidden test of {check.__name__} in the solutions"
        checker, solution, seed = found[check.__name__]
        assert checker is check
        for hidden_seed in (seed, *seeds_of(check.__name__)):
            verdict = grading.grade(check, solution, seed=hidden_seed)
            assert verdict.passed, (hidden_seed, str(verdict))

    return [test_the_solutions_pass_every_checker,
            test_the_solutions_pass_the_hidden_tests_whatever_the_seed]


def memorised_answer_test(solutions: tuple[Path, ...], names: list[str]) -> Callable:
    """The test that an answer which knows only the visible cases (the solution's outputs on
    them, looked up) passes the visible check and fails the hidden test of tasks `names`."""
    @pytest.mark.parametrize("name", names)
    def test_an_answer_that_memorises_the_visible_cases_fails_the_hidden_test(name):
        found = {name: test for path in solutions for name, test in solutions_of(path).items()}
        check, solution, seed = found[name]
        table = {}

        def recorded(*inputs):
            table[frozen(inputs)] = solution(*inputs)
            return table[frozen(inputs)]

        def memorised(*inputs):  # looks the answer up; anything else it has not seen
            return table.get(frozen(inputs), 0.0)

        assert check(recorded).passed and check(memorised).passed
        with pytest.raises(AssertionError, match="on the hidden inputs"):
            grading.grade(check, memorised, seed=seed)

    return test_an_answer_that_memorises_the_visible_cases_fails_the_hidden_test
