"""The tests every chapter's exercise checkers must pass, generated from its table of mistakes.

A test module defines `MISTAKES = {checker: [(wrong_answer, hint_substring), ...]}` and the
solution notebook(s) of its chapter, and binds every shared test with one line:

    globals().update(exercise_tests(MISTAKES, SOLUTION))

That gives: each typical mistake is rejected with its hint, every task has two diagnosed mistakes,
a missing answer says "not implemented", a broken answer (None, an exception, not a function) or
an answer of the wrong type or shape is told and never crashes the checker, every diagnosis is
reachable with its own hint, and the solution notebook passes every checker, one verdict per task.

The older binding still works: `(test_mistakes_get_their_hint, test_two_mistakes_per_task,
test_missing_answers, test_broken_answers, test_diagnoses_reachable) = mistake_tests(MISTAKES)`.
"""

import ast
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from helpers import exercises as E


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
        found.extend(((lambda answer=answer: answer), hint) for answer, hint in diagnoses)
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
        # functions), so it runs unwatched: the checker as written, without `task`'s wrapper
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


def exercise_tests(mistakes: dict, *solutions: Path) -> dict:
    """Every shared test of one chapter's checkers, by name, for `globals().update(...)`:
    `mistake_tests`'s five, answers of a wrong type or shape, and, with the chapter's solution
    notebooks, that they pass every checker with exactly one verdict per task of `mistakes`."""
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

    tests[test_checkers_tell_a_wrong_type_or_shape_and_never_crash.__name__] = (
        test_checkers_tell_a_wrong_type_or_shape_and_never_crash)
    if solutions:
        def test_the_solutions_pass_every_checker():
            verdicts = [v for path in solutions
                        for v in verdicts_of(nbformat.read(path, as_version=4))]
            assert all(v.passed for v in verdicts), [str(v) for v in verdicts if not v.passed]
            assert sorted(v.task for v in verdicts) == sorted(map(task_of, mistakes))

        tests[test_the_solutions_pass_every_checker.__name__] = (
            test_the_solutions_pass_every_checker)
    return tests
