"""The tests every chapter's exercise checkers must pass, generated from its table of mistakes.

A test module defines `MISTAKES = {checker: [(wrong_answer, hint_substring), ...]}` and binds
`mistake_tests(MISTAKES)` to module-level names starting with `test_`, so that pytest collects them:

    (test_mistakes_get_their_hint, test_two_mistakes_per_task, test_missing_answers,
     test_broken_answers, test_diagnoses_reachable) = mistake_tests(MISTAKES)
"""

import sys

import pytest

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
        # an earlier diagnosis that equals a later one on the first failing case would hide it
        verdict = check(wrong)
        assert verdict.status == E.WRONG and verdict.message == hint, verdict.message

    return (test_a_typical_mistake_is_rejected_with_its_hint,
            test_every_task_has_at_least_two_diagnosed_mistakes,
            test_a_missing_answer_says_not_implemented,
            test_checkers_never_crash_on_broken_answers,
            test_every_diagnosis_is_reachable_with_its_own_hint)
