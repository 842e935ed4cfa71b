"""Exercise checkers: solutions pass, typical mistakes get their hint, nothing crashes."""

import ast
import math
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from exercise_harness import mistake_tests
from nbclient import NotebookClient

from helpers import exercises as E
from helpers.exercises import cross_entropy as ce
from helpers.exercises import mse_loss as mse
from helpers.exercises import student

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted((ROOT / "exercises" / "solutions").glob("*.ipynb"))


def ids(paths):
    return [p.stem for p in paths]


# --------------------------------------------------------------------------------------------
# Typical wrong answers, per task: each must be rejected with its hint
# --------------------------------------------------------------------------------------------

def picked(x, y):
    return F.log_softmax(x, dim=1)[torch.arange(len(y)), y]


MISTAKES = {
    mse.check_mse: [
        (lambda x, y: ((x - y) ** 2).sum(), "the sum, not the mean"),
        (lambda x, y: (x - y).abs().mean(), "mean absolute error"),
        (lambda x, y: (x - y).mean() ** 2, "squared the mean residual"),
        (lambda x, y: ((x - y) ** 2).mean().sqrt(), "root mean squared"),
        (lambda x, y: ((x - y) ** 2).sum() / x.shape[0], "not by the number of rows"),
    ],
    mse.check_mse_grad: [
        (lambda x, y: (x - y) / x.numel(), "factor 2"),
        (lambda x, y: 2 * (x - y), "gradient of the sum"),
        (lambda x, y: 2 * (y - x) / x.numel(), "sign is flipped"),
        (lambda x, y: 2 * (x - y) / len(x), "not the number of rows"),
    ],
    mse.check_best_constant: [
        (lambda y: y.median(), "median minimises the mean ABSOLUTE error"),
        (lambda y: (y.max() + y.min()) / 2, "midrange"),
    ],
    mse.check_fixed_shapes: [
        (lambda p, t: ((p - t) ** 2).mean(), "still the broadcast loss"),
        (lambda p, t: ((p.squeeze(1) - t) ** 2).sum(), "values differ"),
    ],
    mse.check_gaussian_nll: [
        (lambda x, y, v: ((x - y) ** 2 / (2 * v)).sum() + x.numel() / 2 * math.log(v),
         "constant N/2 log(2 pi) is missing"),
        (lambda x, y, v: ((x - y) ** 2 / v).sum() + x.numel() / 2 * math.log(2 * math.pi * v),
         "divided by 2 var"),
        (lambda x, y, v: F.gaussian_nll_loss(x, y, torch.full_like(x, v), full=True),
         "mean over the samples"),
        (lambda x, y, v: ((x - y) ** 2).sum() / (2 * v) + len(x) / 2 * math.log(2 * math.pi * v),
         "every ELEMENT has its normaliser"),
    ],
    mse.check_sum_over_mean: [
        (lambda: 1 / 32, "the other way around"),
        (lambda: 64, "cancels"),
    ],
    ce.check_log_softmax: [
        (lambda x: torch.log(torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)), "overflow"),
        (lambda x: F.softmax(x, dim=-1), "returned the probabilities"),
        (lambda x: F.log_softmax(x, dim=0), "class dimension"),
        (lambda x: x - x.max(-1, keepdim=True).values, "only the first step"),
        (lambda x: F.log_softmax(x, dim=1), "the LAST dimension"),
        (lambda x: (x - x.max()) - torch.log(torch.exp(x - x.max()).sum(-1, keepdim=True)),
         "each row's own maximum"),
    ],
    ce.check_cross_entropy: [
        (lambda x, y: -picked(x, y).sum(), "the sum, not the mean"),
        (lambda x, y: picked(x, y).mean(), "sign is flipped"),
        (lambda x, y: -F.log_softmax(x, dim=1)[:, y].mean(), "(N, N) block"),
        (lambda x, y: -F.softmax(x, 1)[torch.arange(len(y)), y].mean(), "-log p, not -p"),
        (lambda x, y: F.cross_entropy(F.softmax(x, dim=1), y), "softmax twice"),
        (lambda x, y: -torch.log(F.softmax(x, 1)[torch.arange(len(y)), y]).mean(),
         "inf or nan where the answer is finite"),
    ],
    ce.check_cross_entropy_grad: [
        (lambda x, y: F.softmax(x, 1) - F.one_hot(y, x.shape[1]).to(x.dtype),
         "gradient of the sum"),
        (lambda x, y: (F.one_hot(y, x.shape[1]).to(x.dtype) - F.softmax(x, 1)) / len(y),
         "sign is flipped"),
        (lambda x, y: (x - F.one_hot(y, x.shape[1]).to(x.dtype)) / len(y), "not the raw logits"),
    ],
    ce.check_weighted_cross_entropy: [
        (lambda x, y, w: F.cross_entropy(x, y, weight=w, reduction="none").mean(),
         "total weight of the targets"),
        (lambda x, y, w: F.cross_entropy(x, y, weight=w, reduction="sum") / w.sum(),
         "not by the sum of all class weights"),
        (lambda x, y, w: F.cross_entropy(x, y), "weights are missing"),
    ],
    ce.check_smoothed_targets: [
        (lambda y, c, e: (1 - e) * F.one_hot(y, c).float()
         + e / (c - 1) * (1 - F.one_hot(y, c).float()), "ALL C classes"),
        (lambda y, c, e: F.one_hot(y, c).float() + e / c, "(1 - epsilon)"),
        (lambda y, c, e: (1 - e) * F.one_hot(y, c).float(), "share for every class is missing"),
        (lambda y, c, e: (1 - e) * F.one_hot(y, c).float()
         + e / c * (1 - F.one_hot(y, c).float()), "gets its epsilon / C share too"),
        (lambda y, c, e: (1 - e) * F.one_hot(y, c).double() + e / c,
         "convert integer values with .to(torch.float32) (or .float()) first"),
    ],
    ce.check_smoothing_floor: [
        (lambda: 0.0, "cannot reach 0"),
        (lambda: -(0.925 * math.log(0.925)), "all four classes"),
    ],
}
(test_a_typical_mistake_is_rejected_with_its_hint,
 test_every_task_has_at_least_two_diagnosed_mistakes,
 test_a_missing_answer_says_not_implemented,
 test_checkers_never_crash_on_broken_answers,
 test_every_diagnosis_is_reachable_with_its_own_hint) = mistake_tests(MISTAKES)


def test_shape_dtype_and_type_problems_are_named():
    assert "expected shape (4, 3) but got (12,)" in mse.check_mse_grad(
        lambda x, y: (2 * (x - y) / x.numel()).flatten()).message
    assert "expected dtype torch.float32 but got torch.float64" in mse.check_mse(
        lambda x, y: ((x - y) ** 2).double().mean()).message
    assert "expected a tensor but your function returned float" in mse.check_mse(
        lambda x, y: ((x - y) ** 2).mean().item()).message


def test_a_learner_mutating_its_input_cannot_spoil_the_reference():
    def in_place(x, y):
        x -= y
        return (x**2).mean()

    assert mse.check_mse(in_place).passed


def test_a_number_may_come_as_python_numpy_or_tensor_value():
    def check(answer):
        return E.check_answer("task", lambda: answer, 0.1)

    float32_rounded = np.nextafter(np.float32(0.1), np.float32(1))  # float32 arithmetic's result
    assert all(check(a).passed for a in (0.1, float32_rounded, np.array([0.1]), torch.tensor(0.1)))
    assert not any(check(a).passed for a in (True, "0.1", torch.tensor([0.1, 0.1]), 0.2))


def test_a_list_answer_may_come_as_a_tensor_or_an_array():
    for answer in ([0.1, 0.2], torch.tensor([0.1, 0.2]), np.array([0.1, 0.2])):
        assert E.check_answer("task", lambda a=answer: a, [0.1, 0.2]).passed
    assert not E.check_answer("task", lambda: torch.tensor([0.1, 0.3]), [0.1, 0.2]).passed


def test_a_mistake_that_agrees_on_one_input_only_does_not_get_its_hint():
    cases = [(1.0,), (3.0,)]
    square, double = (lambda x: x**2), (lambda x: 2 * x)
    mistake = [E.Diagnosis(double, "you doubled")]
    learner = lambda x: 2.0 if x == 1 else x + 4  # noqa: E731 - equals `double` at x = 1 only
    assert E.check_function("task", double, square, cases, mistake).message == "you doubled"
    verdict = E.check_function("task", learner, square, cases, mistake)
    assert verdict.status == E.WRONG and "doubled" not in verdict.message


def test_a_rounding_size_difference_is_shown_with_the_digits_that_differ():
    expected = torch.tensor([1.0, 1.097190001], dtype=torch.float64)
    message = E.values_differ(expected + torch.tensor([0.0, 1e-9], dtype=torch.float64), expected)
    assert message.startswith(" at index [1]: yours 1.09719") and "float32-sized" in message
    assert message.count("1.0971900") == 2  # digits enough to see where the two differ
    assert "float32-sized" not in E.values_differ(expected * 2, expected)


def test_every_correct_form_of_the_stable_log_softmax_passes():
    def by_hand(x):
        m = x.max(-1, keepdim=True).values
        return x - (m + torch.log(torch.exp(x - m).sum(-1, keepdim=True)))

    assert ce.check_log_softmax(by_hand).passed
    assert ce.check_log_softmax(lambda x: x - torch.logsumexp(x, -1, keepdim=True)).passed


def test_a_complex_answer_is_explained_not_crashed_on():
    eigvals = torch.linalg.eigvals
    for verdict in (E.check_answer("task", lambda: eigvals(torch.eye(2))[0], 1.0),
                    E.check_function("task", lambda A: 2 / eigvals(A)[0], lambda A: 2.0,
                                     [(torch.eye(2),)])):
        assert verdict.status == E.WRONG and "eigvalsh" in verdict.message
    assert E.as_number(torch.tensor(1 + 0j)) is None


def test_a_rounded_answer_is_told_it_is_close():
    verdict = E.check_answer("task", lambda: (1.0, 3.16), (1.0, 10**0.5))
    assert verdict.status == E.WRONG and "close, but not exact" in verdict.message
    assert "close" not in E.check_answer("task", lambda: (1.0, 3.0), (1.0, 10**0.5)).message


def test_verdicts_render_as_one_line():
    verdict = E.wrong("task", "what is wrong")
    assert str(verdict) == "✗ task: what is wrong"
    assert "#cf222e" in verdict._repr_html_() and "what is wrong" in verdict._repr_html_()
    assert str(E.passed("task")) == "✓ task: passed"


# --------------------------------------------------------------------------------------------
# Solutions, student notebooks, and the generator
# --------------------------------------------------------------------------------------------


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


@pytest.mark.parametrize("path", SOLUTIONS, ids=ids(SOLUTIONS))
def test_solutions_pass_every_checker(path):
    verdicts = verdicts_of(nbformat.read(path, as_version=4))
    assert len(verdicts) >= 3
    assert all(v.passed for v in verdicts), [str(v) for v in verdicts if not v.passed]


@pytest.mark.parametrize("path", SOLUTIONS, ids=ids(SOLUTIONS))
def test_student_notebook_runs_and_reports_not_implemented_for_every_task(path):
    notebook = nbformat.read(student.student_path(path), as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent.parent)}}).execute()
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    shown = [o.data["text/plain"] for o in outputs if "text/plain" in o.get("data", {})]
    assert len(shown) == len(verdicts_of(nbformat.read(path, as_version=4)))
    assert all("not implemented yet" in text for text in shown), shown


def test_committed_student_notebooks_are_up_to_date():
    assert student.main(["--check"]) == 0, "run: python -m helpers.exercises.student"
    solutions = {p.name for p in SOLUTIONS}
    students = {p.name for p in (ROOT / "exercises").glob("*.ipynb")}
    assert students == solutions


def test_strip_solutions_keeps_indentation_and_the_rest():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n\nf"
    assert student.strip_solutions(source) == (
        "def f(x):\n    # your code here\n    raise NotImplementedError\n\n\nf")


@pytest.mark.parametrize("source, problem", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_unbalanced_markers_are_refused(source, problem):
    with pytest.raises(ValueError, match=problem):
        student.strip_solutions(source)


def test_student_links_are_rebased():
    assert student.rebase_links("[c](../../notebooks/01_mse_loss.ipynb)") == (
        "[c](../notebooks/01_mse_loss.ipynb)")
    assert student.rebase_links("[w](https://example.org/x.ipynb)") == (
        "[w](https://example.org/x.ipynb)")
