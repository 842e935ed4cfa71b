"""Grading: forbidden calls, points and the score, hidden inputs, and sealed answers."""

import math
import sys

import numpy as np
import pytest
import torch

import helpers.exercises as E
import helpers.exercises.mse_loss  # noqa: F401 - its tasks are listed below
from helpers import losses
from helpers.exercises import check_answer, check_function, seal, seeded
from helpers.exercises.grading import (
    TASKS,
    Forbidden,
    _c_name,
    forbidden_call,
    grade,
    guarded,
    hidden_inputs,
    public_name,
    score_summary,
    task,
)

# --------------------------------------------------------------------------------------------
# Which calls are forbidden
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("function, name", [
    (torch.log_softmax, "torch.log_softmax"),
    (torch.Tensor.log_softmax, "torch.Tensor.log_softmax"),
    (torch.ones(1).log_softmax, "torch.Tensor.log_softmax"),
    (torch._C._nn.cross_entropy_loss, "torch._C._nn.cross_entropy_loss"),
    (len, "builtins.len"),
])
def test_built_ins_are_named_as_a_learner_writes_them(function, name):
    assert _c_name(function) == name


def test_a_prefix_forbids_its_module_and_what_is_inside_only():
    forbid = ("torch.optim",)
    assert forbidden_call("call", "torch.optim.sgd", "SGD.step", forbid) == (
        "torch.optim.sgd.SGD.step")
    assert forbidden_call("call", "torch.optimizers", "f", forbid) is None
    assert forbidden_call("c_call", None, "torch.log_softmax", ("torch.log_softmax",))
    assert forbidden_call("c_call", None, "torch.log_softmax_x", ("torch.log_softmax",)) is None


def test_the_course_package_forbids_what_would_do_the_task():
    assert forbidden_call("call", "helpers.losses", "cross_entropy", ()) == (
        "helpers.losses.cross_entropy")
    assert forbidden_call("call", "helpers.optim", "SGD.step", ())
    assert forbidden_call("call", "helpers.exercises.momentum", "_sgd_reference", ())
    assert forbidden_call("call", "helpers.helpersx", "f", ())


def test_the_course_package_allows_constructors_handed_over_objects_and_closures():
    assert forbidden_call("call", "helpers.optim", "SGD.__init__", ()) is None
    assert forbidden_call("call", "helpers.exercises.evaluation", "_Classifier.forward", ()) is None
    assert forbidden_call("call", "helpers.exercises", "check.<locals>.f", ()) is None
    assert forbidden_call("call", "helpers.training", "fit.<locals>.step", ()) is None
    assert forbidden_call("call", "helpersx", "f", ()) is None


def _sgd_answer(param, grad):
    p = param.clone().requires_grad_(True)
    p.grad = grad.clone()
    torch.optim.SGD([p], lr=0.1).step()
    return p.detach()


def test_a_watched_function_that_calls_a_forbidden_built_in_is_stopped_after_it_returns():
    watched = guarded(_sgd_answer, forbid=("torch.optim",))
    with pytest.raises(Forbidden, match=r"calls torch\.optim\.\S+: this task asks you to write "
                                        r"it without torch\.optim"):
        watched(torch.ones(2), torch.ones(2))
    assert sys.getprofile() is None
    # allowed when the task does not forbid it
    assert torch.equal(guarded(_sgd_answer)(torch.ones(2), torch.ones(2)), torch.full((2,), 0.9))


def test_calling_the_course_s_own_code_is_stopped_and_named():
    def answer(x, y):
        return losses.mse_loss(x, y)

    with pytest.raises(Forbidden, match=r"calls helpers\.losses\.mse_loss, the course's own code"):
        guarded(answer)(torch.ones(2), torch.zeros(2))


def test_the_learner_s_own_error_passes_through_and_the_profiler_is_restored():
    def broken():
        raise KeyError("mine")

    def outer(frame, event, arg):
        return None

    sys.setprofile(outer)
    try:
        with pytest.raises(KeyError, match="mine"):
            guarded(broken)()
        assert sys.getprofile() is outer
    finally:
        sys.setprofile(None)


def test_what_is_not_callable_is_handed_on_unchanged():
    assert guarded("B") == "B"


# --------------------------------------------------------------------------------------------
# Tasks, points and the score
# --------------------------------------------------------------------------------------------


def _visible_input():
    return torch.randn(5, generator=seeded(7), dtype=torch.float64)


@task(points=2)
def check_double(double):
    return check_function("double", double, lambda x: 2 * x, [(_visible_input(),)])


@task(forbid="torch.optim")
def check_step(step):
    return check_function("step", step, lambda p, g: p - 0.1 * g,
                          [(torch.ones(3), torch.arange(3.0))])


MODULE = __name__


def test_each_checker_is_a_task_with_its_points_in_the_order_defined():
    assert [(t.checker, t.points, t.forbid) for t in TASKS[MODULE]] == [
        ("check_double", 2, ()), ("check_step", 1, ("torch.optim",))]
    assert check_double.points == 2 and check_step.forbid == ("torch.optim",)


@pytest.mark.parametrize("points", [0, -1, 1.5, True])
def test_points_must_be_a_positive_whole_number(points):
    with pytest.raises(ValueError, match="positive whole number of points"):
        task(points=points)


def test_a_forbidden_call_is_the_verdict_in_plain_words():
    verdict = check_step(_sgd_answer)
    assert verdict.status == E.WRONG
    assert verdict.message.startswith("your function calls torch.optim.")
    assert "Forbidden" not in verdict.message and "on input" not in verdict.message
    assert check_step(lambda p, g: p - 0.1 * g).passed


def test_the_score_adds_the_points_of_the_latest_verdicts():
    check_double(lambda x: 3 * x)
    check_step(lambda p, g: p - 0.1 * g)
    summary = score_summary(MODULE)
    assert (summary.points, summary.total) == (1, 3)
    text = str(summary)
    assert text.startswith("Score: 1/3 points (1 of 2 tasks passed)")
    assert "double    0/2  ✗" in text and "step      1/1  ✓ passed" in text
    check_double(lambda x: 2 * x)
    assert score_summary(MODULE).points == 3
    assert "<table>" in score_summary(MODULE)._repr_html_()


def test_a_task_not_run_yet_is_listed_as_such():
    summary = score_summary("helpers.exercises.mse_loss")
    assert summary.total == len(TASKS["helpers.exercises.mse_loss"])
    assert all(v is None or v.task for _, v in summary.rows)


def test_the_score_of_an_unknown_module_is_refused():
    with pytest.raises(ValueError, match="expected modules with exercise tasks"):
        score_summary("helpers.nothing")


def test_verdicts_and_the_score_are_shown_as_display_data_not_as_a_result():
    """nbgrader reads a test cell's result as partial credit: a verdict must not be one."""
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        published = []
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(shell.display_pub, "publish",
                          lambda data, metadata=None, **kwargs: published.append(data))
            # no result to show (an execute_result): the display itself is published
            assert shell.display_formatter.format(E.passed("x")) == ({}, {})
            assert shell.display_formatter.format(score_summary(MODULE)) == ({}, {})
        assert published[0]["text/plain"] == "✓ x: passed"
        assert "<p style=" in published[0]["text/html"]
        assert published[1]["text/plain"].startswith("Score: ")
    finally:  # the next test that needs a shell starts from none
        InteractiveShell.clear_instance()


# --------------------------------------------------------------------------------------------
# Hidden tests
# --------------------------------------------------------------------------------------------


def test_hidden_inputs_change_every_seeded_generator_and_end_with_the_block():
    visible = _visible_input()
    with hidden_inputs(918):
        hidden = _visible_input()
        assert torch.equal(hidden, _visible_input())  # reproducible within
    assert not torch.equal(visible, hidden)
    assert torch.equal(visible, _visible_input()) and E.HIDDEN_SEED is None
    with pytest.raises(RuntimeError), hidden_inputs(5):
        raise RuntimeError
    assert E.HIDDEN_SEED is None


@pytest.mark.parametrize("seed", [0, -3, 1.0, "7", True])
def test_a_hidden_seed_must_be_a_positive_whole_number(seed):
    with pytest.raises(ValueError, match="positive whole number"), hidden_inputs(seed):
        pass


def test_grade_passes_a_right_answer_and_returns_its_verdict():
    assert grade(check_double, lambda x: x + x, seed=4321).passed


def test_grade_fails_an_answer_that_memorised_the_visible_inputs():
    visible = _visible_input()
    memorised = {tuple(visible.tolist()): 2 * visible}

    def double(x):
        return memorised.get(tuple(x.tolist()), x)

    assert check_double(double).passed  # the visible check is fooled
    with pytest.raises(AssertionError, match="on the hidden inputs: values differ"):
        grade(check_double, double, seed=4321)


def test_grade_fails_a_wrong_answer_and_a_forbidden_call_with_the_verdict():
    with pytest.raises(AssertionError, match="✗ double: values differ"):
        grade(check_double, lambda x: 3 * x, seed=1)
    with pytest.raises(AssertionError, match="calls torch.optim"):
        grade(check_step, _sgd_answer, seed=1)
    with pytest.raises(AssertionError, match="not implemented yet"):
        grade(check_step, lambda p, g: (_ for _ in ()).throw(NotImplementedError), seed=1)


# --------------------------------------------------------------------------------------------
# Sealed answers
# --------------------------------------------------------------------------------------------

ANSWER = 0.4 * 90 / 99
SEALED = seal("variance", ANSWER)


def test_a_sealed_answer_does_not_show_the_answer():
    assert f"{ANSWER:.5e}"[:6] not in repr(SEALED) and "0.36" not in repr(SEALED)


@pytest.mark.parametrize("got", [ANSWER, np.float32(ANSWER), torch.tensor(ANSWER),
                                 torch.tensor([ANSWER]), ANSWER * (1 + 1e-12)])
def test_a_sealed_answer_opens_for_every_form_of_the_right_number(got):
    assert check_answer("variance", lambda: got, SEALED).passed


@pytest.mark.parametrize("got, told", [
    (2 * ANSWER, "exactly 2 × the expected value"),
    (-ANSWER, "the sign is flipped"),
    (ANSWER / math.log(2), "base 2"),
    (ANSWER * 1.001, "not the expected answer"),
    ("0.36", "not the expected answer"),
    (0.4, "no finite-population correction"),
])
def test_a_sealed_answer_still_gets_its_hints(got, told):
    verdict = check_answer("variance", lambda: got, SEALED,
                           [(0.4, "no finite-population correction")])
    assert verdict.status == E.WRONG and told in verdict.message, verdict


@pytest.mark.parametrize("k", [11 / 8, 3, 1 / 7, 10])
def test_a_sealed_answer_s_hint_never_names_a_factor_that_would_give_it_away(k):
    verdict = check_answer("variance", lambda: k * ANSWER, SEALED)
    assert verdict.status == E.WRONG and "×" not in verdict.message, verdict


def test_a_sealed_tuple_and_a_sealed_word():
    pair = seal("limits", (0.38, 0.38 / 2.8))
    assert check_answer("limits", lambda: [0.38, 0.38 / 2.8], pair).passed
    assert check_answer("limits", lambda: torch.tensor([0.38, 0.38 / 2.8]).double(), pair).passed
    assert "a tuple of 2 values" in check_answer("limits", lambda: (0.38,), pair).message
    assert check_answer("deploy", lambda: " B ", seal("deploy", "B")).passed
    assert not check_answer("deploy", lambda: "A", seal("deploy", "B")).passed


PAIR = seal("limits", (0.38, 0.38 / 2.8))
PAIR_MISTAKES = [
    ((0.38, 0.38), "both the same"),  # a plain wrong answer
    (seal("limits", (0.38 / 2.8, 0.38)), "the sealed pair the other way round"),
    (E.Disguised(lambda got: (got[0] / 100, got[1] / 100)), "percentages"),
    (E.Disguised(lambda got: got[0], seal("limits", 0.38)), "the first one alone is right"),
    (E.Disguised(lambda got: (got[1], got[0])), "swapped, but the sealed one was tried first"),
]


@pytest.mark.parametrize("got, told", [
    ((0.38, 0.38), "both the same"),
    ((0.38 / 2.8, 0.38), "the sealed pair the other way round"),
    (torch.tensor([38.0, 38.0 / 2.8], dtype=torch.float64), "percentages"),
    ((0.38, 1.0), "the first one alone is right"),
    ((0.5, 0.5), "not the expected answer"),
    ("two words", "expected a tuple of 2 values"),  # every undo raises: no mistake of these
])
def test_a_typical_mistake_may_be_plain_sealed_or_disguised_and_the_first_one_tells(got, told):
    verdict = check_answer("limits", lambda: got, PAIR, PAIR_MISTAKES)
    assert verdict.status == E.WRONG and verdict.message.startswith(told), verdict


def test_a_disguised_mistake_is_tried_after_the_ones_before_it_and_never_passes():
    swapped = [(E.Disguised(E.swapped), "swapped")]
    assert check_answer("limits", lambda: (0.38 / 2.8, 0.38), PAIR, swapped).message == "swapped"
    assert check_answer("limits", lambda: (0.38, 0.38 / 2.8), PAIR, swapped).passed


def test_a_disguised_mistake_needs_a_seal_to_open():
    with pytest.raises(TypeError, match="needs a Sealed answer"):
        check_answer("plain", lambda: 2.0, 1.0, [(E.Disguised(lambda got: got / 2), "doubled")])
    verdict = check_answer("plain", lambda: 2.0, 1.0,
                           [(E.Disguised(lambda got: got / 2, seal("plain", 1.0)), "doubled")])
    assert verdict.message == "doubled"


def test_a_seal_is_bound_to_its_task():
    assert not check_answer("other task", lambda: ANSWER, SEALED).passed


def test_an_answer_on_a_rounding_boundary_or_of_no_known_kind_is_not_sealed():
    with pytest.raises(ValueError, match="rounding boundary"):
        seal("x", 0.1234565)
    with pytest.raises(TypeError, match="expected numbers"):
        seal("x", {"a": 1})


@pytest.mark.parametrize("internal, public", [
    ("torch._C._nn.softplus", "torch.nn.functional.softplus"),
    ("torch._functorch.apis.grad", "torch.func.grad"),
    ("torch._tensor.Tensor.backward", "torch.Tensor.backward"),
    ("torch._C._special.special_log_softmax", "torch.special.log_softmax"),
    ("torch.optim.sgd.SGD.step", "torch.optim.sgd.SGD.step"),
])
def test_a_forbidden_call_is_named_as_a_learner_writes_it(internal, public):
    assert public_name(internal) == public


def test_the_verdict_names_the_public_name_of_a_forbidden_built_in():
    def answer(x):
        return torch.nn.functional.softplus(x)

    with pytest.raises(Forbidden, match=r"calls torch\.nn\.functional\.softplus: this task asks "
                                        r"you to write it without torch\.nn\.functional\.softplus"):
        guarded(answer, forbid=("torch._C._nn.softplus",))(torch.ones(2))


def _draw(n: int) -> torch.Tensor:
    return torch.randn(4, generator=seeded(n), dtype=torch.float64)


def test_hidden_inputs_keep_the_checker_s_generators_apart():
    """Within a hidden test, two generators a checker seeds differently still differ (a model's
    weights and its data must not be drawn from one stream), and another hidden seed gives
    other inputs."""
    with hidden_inputs(918):
        first, second = _draw(1), _draw(2)
    with hidden_inputs(919):
        other = _draw(1)
    assert not torch.equal(first, second)
    assert not torch.equal(first, other)
    assert E.input_seed(1) == 1


def test_a_sealed_zero_opens_for_a_negative_zero():
    """-0.0 is the answer 0 (a sum of negative terms that cancels): the seal opens for it."""
    zero = seal("offset", 0.0)
    assert check_answer("offset", lambda: -0.0, zero).passed
    assert check_answer("offset", lambda: torch.tensor(-0.0), zero).passed


PAIR = seal("limits", (0.38, 0.38 / 2.8))


def test_a_tensor_answer_to_a_sealed_tuple_is_read_as_its_values():
    """A tensor of the right length is a tuple answer: a wrong one is told by its values and
    gets the factor hint, not a complaint about its type."""
    doubled = check_answer("limits", lambda: 2 * torch.tensor([0.38, 0.38 / 2.8]).double(), PAIR)
    assert "exactly 2 × the expected value" in doubled.message, doubled
    other = check_answer("limits", lambda: torch.tensor([0.5, 0.5]), PAIR)
    assert other.message == "not the expected answer (you returned [0.5, 0.5])", other


def test_grade_draws_the_hidden_inputs_from_the_seed_it_is_given():
    """The seed written in the hidden test is the one used: a grade can be replayed."""
    seen = []

    def check(learner):
        seen.append(E.HIDDEN_SEED)
        return E.passed("probe")

    grade(check, lambda: None, seed=4321)
    assert seen == [None, 4321]
