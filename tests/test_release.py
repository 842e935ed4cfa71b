"""The graded assignments: nbgrader's metadata from the solution notebooks, and a round trip
through nbgrader (generate, autograde, feedback) with three submissions per assignment."""

import re

import nbformat
import pytest
from nbgrader.api import Gradebook

from helpers.exercises import release, student
from helpers.exercises.grading import TASKS

# nbgrader's own database code warns about its session handling; nothing of the course's
pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")

SOLUTIONS = sorted(student.SOLUTIONS.glob("*.ipynb"))
NAMES = [p.stem for p in SOLUTIONS]
VISIBLE_CHECK = re.compile(r"\A(check_\w+)\((\w+)\)\n")
HIDDEN_GRADE = re.compile(r"^grade\((check_\w+), (\w+), seed=(\d+)\)$", re.M)


def nbgrader_cells(notebook, kind):
    return [c for c in notebook.cells if c.metadata["nbgrader"][kind]]


@pytest.mark.parametrize("path", SOLUTIONS, ids=NAMES)
def test_every_task_is_one_answer_cell_and_one_test_cell_worth_its_points(path):
    notebook = release.mark_for_nbgrader(nbformat.read(path, as_version=4))
    tasks = TASKS[release._checkers_module(notebook).__name__]
    tests = nbgrader_cells(notebook, "grade")
    assert [c.metadata.nbgrader.grade_id for c in tests] == [
        t.checker.removeprefix("check_") for t in tasks]
    assert [c.metadata.nbgrader.points for c in tests] == [t.points for t in tasks]
    assert all(c.metadata.nbgrader.locked for c in tests)
    answers = nbgrader_cells(notebook, "solution")
    assert [c.metadata.nbgrader.grade_id for c in answers] == [
        f"{c.metadata.nbgrader.grade_id}-answer" for c in tests]
    assert not any(c.metadata.nbgrader.locked for c in answers)
    others = [c for c in notebook.cells if c not in tests and c not in answers]
    assert all(c.metadata.nbgrader.locked for c in others)
    ids = [c.metadata.nbgrader.grade_id for c in notebook.cells]
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize("path", SOLUTIONS, ids=NAMES)
def test_each_hidden_test_grades_what_its_cell_checks_with_a_seed_of_its_own(path):
    cells = [c.source for c in nbformat.read(path, as_version=4).cells
             if c.cell_type == "code" and c.source.startswith("check_")]
    seeds = []
    for source in cells:
        visible, hidden = VISIBLE_CHECK.match(source), HIDDEN_GRADE.findall(source)
        assert visible and len(hidden) == 1, source
        assert hidden[0][:2] == visible.groups(), source
        assert student.BEGIN_HIDDEN in source and source.rstrip().endswith(student.END_HIDDEN)
        seeds.append(hidden[0][2])
    assert len(set(seeds)) == len(seeds)


def solution_notebook(*sources):
    cells = [nbformat.v4.new_code_cell("from helpers.exercises.mse_loss import check_mse")]
    cells += [nbformat.v4.new_code_cell(s) for s in sources]
    return nbformat.v4.new_notebook(cells=cells)


ANSWER = "def mse(a, b):\n    ### BEGIN SOLUTION\n    return a\n    ### END SOLUTION"
TEST = ("check_mse(mse)\n### BEGIN HIDDEN TESTS\nfrom helpers.exercises.grading import grade\n"
        "grade(check_mse, mse, seed=5)\n### END HIDDEN TESTS")


@pytest.mark.parametrize("sources, problem", [
    ((ANSWER,), "followed by the one cell that checks it"),
    ((ANSWER + "\ncheck_mse(mse)", TEST), "followed by the one cell that checks it"),
    ((ANSWER, "check_mse(mse)"), "a test cell with one checker call and a ### BEGIN HIDDEN"),
    ((ANSWER, TEST.replace("check_mse", "check_nothing")), "not a task of"),
])
def test_a_notebook_nbgrader_could_not_grade_right_is_refused(sources, problem):
    with pytest.raises(ValueError, match=problem):
        release.mark_for_nbgrader(solution_notebook(*sources))


def test_a_notebook_without_its_checkers_import_is_refused():
    with pytest.raises(ValueError, match="imports the checkers"):
        release.mark_for_nbgrader(nbformat.v4.new_notebook(cells=[
            nbformat.v4.new_code_cell("x = 1")]))


@pytest.mark.parametrize("path", SOLUTIONS, ids=NAMES)
def test_the_self_study_copy_holds_neither_solutions_nor_hidden_tests(path):
    text = student.student_path(path).read_text()
    for secret in ("BEGIN SOLUTION", "HIDDEN TESTS", "grade(", "seed="):
        assert secret not in text


# --------------------------------------------------------------------------------------------
# The round trip through nbgrader
# --------------------------------------------------------------------------------------------

# a typical mistake per assignment: (the task it breaks, the answer cell a learner writes)
MISTAKES = {
    "01_mse_loss": ("mse", "def mse(input, target):\n    return ((input - target) ** 2).sum()"),
    "02_cross_entropy": ("cross_entropy", "def cross_entropy(logits, target):\n"
                         "    log_p = log_softmax(logits)\n"
                         "    return -log_p[torch.arange(len(target)), target].sum()"),
    "03_gradient_descent": ("gd_step", "def gd_step(A, b, theta, lr):\n"
                            "    return theta + lr * (A @ theta - b)"),
    "04_sgd_and_momentum": ("minibatch_gradient",
                            "def minibatch_gradient(X, y, w, indices):\n"
                            "    Xb, yb = X[indices], y[indices]\n"
                            "    return 1 / len(indices) * Xb.T @ (Xb @ w - yb)"),
    "05_adaptive_optimizers": ("adagrad_step",
                               "def adagrad_step(param, grad, state_sum, lr, eps=1e-10):\n"
                               "    state_sum = state_sum + grad * grad\n"
                               "    return param - lr * grad / torch.sqrt(state_sum + eps), "
                               "state_sum"),
    "06_learning_rate": ("step_lr", "def step_lr(t, base_lr, step_size, gamma):\n"
                         "    return base_lr * gamma ** (t / step_size)"),
    "07_classification_metrics": ("confusion_matrix",
                                  "def confusion_matrix(y_true, y_pred, n_classes):\n"
                                  "    cells = y_pred * n_classes + y_true\n"
                                  "    return torch.bincount(cells, minlength=n_classes**2)"
                                  ".reshape(n_classes, n_classes)"),
    "08_training_and_evaluation": ("accuracy_over_loader",
                                   "def accuracy_over_loader(model, loader):\n"
                                   "    model.eval()\n"
                                   "    with torch.no_grad():\n"
                                   "        batches = [(model(X).argmax(dim=1) == y).float().mean()"
                                   "\n                   for X, y in loader]\n"
                                   "    return torch.stack(batches).mean().item()"),
    "09_overfitting_and_regularization": (
        "sgd_weight_decay_step",
        "def sgd_weight_decay_step(param, grad, momentum_buffer, lr, momentum, weight_decay):\n"
        "    buffer = grad.clone() if momentum_buffer is None else (\n"
        "        momentum * momentum_buffer + grad)\n"
        "    return param - lr * (buffer + weight_decay * param), buffer"),
    "10_imbalanced_data": ("matthews_from_counts",
                           "def matthews_from_counts(tp, fp, fn, tn):\n"
                           "    margins = (tp + fp) * (tp + fn) * (tn + fp) * (tn + fn)\n"
                           "    return (tp * tn - fp * fn) / math.sqrt(margins)"),
    "11_efficient_optimization": ("update_scale",
                                  "def update_scale(scale, growth_tracker, found_inf, "
                                  "growth_factor=2.0,\n"
                                  "                 backoff_factor=0.5, growth_interval=2000):\n"
                                  "    if found_inf:  # the count of clean steps not reset\n"
                                  "        return scale * backoff_factor, growth_tracker\n"
                                  "    growth_tracker += 1\n"
                                  "    if growth_tracker == growth_interval:\n"
                                  "        return scale * growth_factor, 0\n"
                                  "    return scale, growth_tracker"),
}


def answers_built_on(notebook) -> dict[str, set[str]]:
    """For each task's function, the tasks whose answers call it (cross_entropy calls
    log_softmax): a mistake there costs those tasks too."""
    answers = {re.search(r"^def (\w+)", c.source, re.M).group(1): c.source
               for c in notebook.cells if c.cell_type == "code" and student.BEGIN in c.source}
    return {name: {other for other, source in answers.items() if other != name
                   and re.search(rf"\b{name}\(", source.split("\n", 1)[1])}
            for name in answers}


@pytest.mark.parametrize("path", SOLUTIONS, ids=NAMES)
def test_each_typical_mistake_is_in_a_task_no_other_answer_builds_on(path):
    """So that it can cost exactly its own task's points."""
    broken = MISTAKES[path.stem][0]
    built_on = answers_built_on(nbformat.read(path, as_version=4))
    assert broken in built_on and not built_on[broken], built_on


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("classroom")
    release.release(root)
    return root


def test_the_release_holds_every_task_but_no_solution_and_no_hidden_test(course):
    for path in SOLUTIONS:
        released = course / "release" / path.stem / path.name
        text = released.read_text()
        for secret in ("BEGIN SOLUTION", "HIDDEN TESTS", "grade(", "seed="):
            assert secret not in text
        notebook = nbformat.read(released, as_version=4)
        assert len(nbgrader_cells(notebook, "grade")) == len(
            TASKS[release._checkers_module(notebook).__name__])


def submit(course, name, student_id, answers):
    """The student's copy of assignment `name` with its answer cells replaced by `answers`
    (grade_id -> source), handed in as `student_id`."""
    notebook = nbformat.read(course / "release" / name / f"{name}.ipynb", as_version=4)
    for cell in notebook.cells:
        grade_id = cell.metadata["nbgrader"]["grade_id"]
        if grade_id in answers:
            cell.source = answers[grade_id]
    folder = course / "submitted" / student_id / name
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / f"{name}.ipynb")


@pytest.mark.parametrize("name", NAMES)
def test_nbgrader_gives_the_solutions_full_marks_the_release_zero_and_a_mistake_its_points(
        course, name):
    source = nbformat.read(course / "source" / name / f"{name}.ipynb", as_version=4)
    solutions = {c.metadata.nbgrader.grade_id: c.source
                 for c in nbgrader_cells(source, "solution")}
    broken, mistake = MISTAKES[name]
    submit(course, name, "solutions", solutions)
    submit(course, name, "untouched", {})
    submit(course, name, "mistake", {**solutions, f"{broken}-answer": mistake})
    for student_id in ("solutions", "untouched", "mistake"):
        release.run_nbgrader(course, "autograde", name, student_id, force=True, create=True)
        release.run_nbgrader(course, "generate_feedback", name, student_id, force=True)
    points = {c.metadata.nbgrader.grade_id: c.metadata.nbgrader.points
              for c in nbgrader_cells(source, "grade")}
    total = sum(points.values())
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", release.COURSE_ID) as gradebook:
        def scores(student_id):
            submission = gradebook.find_submission(name, student_id)
            assert submission.max_score == total
            return {g.name: g.score for g in submission.notebooks[0].grades}

        assert scores("solutions") == points
        assert scores("untouched") == dict.fromkeys(points, 0)
        assert scores("mistake") == {**points, broken: 0}
    feedback = (course / "feedback" / "mistake" / name / f"{name}.html").read_text()
    assert f"Score: {float(total - points[broken])} / {float(total)}" in feedback
    assert f"✗ {broken}" in feedback  # the learner reads the checker's verdict


class _Config:
    """A stand-in for nbgrader's configuration object: attributes on demand."""

    def __getattr__(self, name):
        value = _Config()
        setattr(self, name, value)
        return value


def test_the_course_configuration_names_the_course_and_the_grading_timeout(tmp_path):
    solution = sorted(student.SOLUTIONS.glob("*.ipynb"))[0]
    assert release.write_source(tmp_path, [solution]) == [solution.stem]
    config = _Config()
    exec((tmp_path / "nbgrader_config.py").read_text(), {"get_config": lambda: config})  # noqa: S102
    assert config.CourseDirectory.course_id == release.COURSE_ID
    assert config.Execute.timeout == 300
    assert (tmp_path / "source" / solution.stem / solution.name).is_file()
