"""Build the graded assignments: an nbgrader course directory from the solution notebooks.

The solution notebooks (exercises/solutions/) stay the single source. Each becomes one nbgrader
assignment, named like the notebook (``04_sgd_and_momentum``), through cell metadata given here
at build time:

* a cell with ``### BEGIN SOLUTION`` is an *answer* cell (grade_id ``<task>-answer``);
* the cell that calls a checker is a locked *test* cell worth the checker's points (grade_id
  ``<task>``); its ``### BEGIN HIDDEN TESTS`` block (see `helpers.exercises.grading`) is removed
  from the students' copy and restored by ``nbgrader autograde``;
* every other cell is locked (read-only).

    python -m helpers.exercises.release [COURSE_DIR]     # default build/classroom

writes COURSE_DIR/source/<assignment>/, runs ``nbgrader generate_assignment`` for every
assignment, and leaves the students' copies in COURSE_DIR/release/<assignment>/.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import nbformat

from helpers.exercises.student import BEGIN, BEGIN_HIDDEN, SOLUTIONS

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_COURSE = ROOT / "build" / "classroom"
COURSE_ID = "torch-eval-optim-course"
SCHEMA_VERSION = 3
_CHECK_CALL = re.compile(r"^(check_\w+)\((\w+)\)", re.M)
_IMPORTS = re.compile(r"^from (helpers\.exercises\.\w+) import", re.M)


def assignment_name(solution: Path) -> str:
    return solution.stem


def _checkers_module(notebook: nbformat.NotebookNode):
    """The chapter's checker module, imported: the one the notebook imports its checkers from."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and (found := _IMPORTS.search(cell.source)):
            return importlib.import_module(found.group(1))
    raise ValueError("expected a cell that imports the checkers (from helpers.exercises.<chapter> "
                     "import ...), but found none")


def _metadata(grade_id: str, *, solution: bool = False, grade: bool = False,
              points: int | None = None) -> dict:
    metadata = {"grade": grade, "grade_id": grade_id, "locked": not solution,
                "schema_version": SCHEMA_VERSION, "solution": solution, "task": False}
    if grade:
        metadata["points"] = points
    return metadata


def mark_for_nbgrader(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of a solution notebook with nbgrader's metadata on every cell.

    Each answer cell must be followed by the test cell that checks it, and each test cell must
    hold exactly one checker call and one hidden-test block; anything else is refused with what
    was found.
    """
    module = _checkers_module(notebook)
    marked = nbformat.from_dict(notebook)
    cells = marked.cells
    for index, cell in enumerate(cells):
        where = f"cell {index}"
        calls = _CHECK_CALL.findall(cell.source) if cell.cell_type == "code" else []
        if cell.cell_type == "code" and BEGIN in cell.source:
            following = cells[index + 1] if index + 1 < len(cells) else None
            checked = _CHECK_CALL.findall(following.source) if following is not None else []
            if calls or len(checked) != 1:
                raise ValueError(f"{where}: expected an answer cell followed by the one cell "
                                 f"that checks it, but found checker calls {calls} here and "
                                 f"{checked} next")
            cell.metadata["nbgrader"] = _metadata(f"{checked[0][0].removeprefix('check_')}-answer",
                                                  solution=True)
        elif calls:
            if len(calls) != 1 or BEGIN_HIDDEN not in cell.source:
                raise ValueError(f"{where}: expected a test cell with one checker call and a "
                                 f"{BEGIN_HIDDEN} block, but found calls {calls}")
            checker = calls[0][0]
            points = getattr(getattr(module, checker, None), "points", None)
            if points is None:
                raise ValueError(f"{where}: {checker} is not a task of {module.__name__}")
            cell.metadata["nbgrader"] = _metadata(checker.removeprefix("check_"), grade=True,
                                                  points=points)
        else:
            cell.metadata["nbgrader"] = _metadata(f"{cell.cell_type}-{index:02d}")
    return marked


def write_source(course: Path, solutions: list[Path]) -> list[str]:
    """The course directory's nbgrader_config.py and source/<assignment>/ notebooks; returns the
    assignments' names."""
    course.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(
        "c = get_config()  # noqa: F821 - nbgrader's configuration object\n"
        f"c.CourseDirectory.course_id = {COURSE_ID!r}\n"
        "c.Execute.timeout = 300  # seconds a cell may run when autograding\n")
    names = []
    for solution in solutions:
        name = assignment_name(solution)
        target = course / "source" / name / solution.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(mark_for_nbgrader(nbformat.read(solution, as_version=4)), target)
        names.append(name)
    return names


@contextmanager
def _alembic_on_path() -> Iterator[None]:
    """nbgrader runs `alembic` (its database migrations) by name: find this environment's."""
    previous = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), previous])
    try:
        yield
    finally:
        os.environ["PATH"] = previous


def run_nbgrader(course: Path, command: str, *args, **options) -> dict:
    """Call an nbgrader command (a method of `nbgrader.apps.NbGraderAPI`: generate_assignment,
    autograde, generate_feedback, ...) on the course directory; raise with nbgrader's log when it
    fails."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config import Config

    config = Config()
    config.CourseDirectory.root = str(course)
    config.CourseDirectory.course_id = COURSE_ID
    config.Execute.timeout = 300
    with _alembic_on_path():
        result = getattr(NbGraderAPI(config=config), command)(*args, **options)
    if not result["success"]:
        raise RuntimeError(f"nbgrader {command} {' '.join(map(str, args))} failed:\n"
                           f"{result.get('error', '')}{result.get('log', '')}")
    return result


def release(course: Path = DEFAULT_COURSE, solutions: list[Path] | None = None) -> list[Path]:
    """Write the course directory and generate every assignment's student release; returns the
    release folders."""
    solutions = sorted(SOLUTIONS.glob("*.ipynb")) if solutions is None else solutions
    for name in write_source(course, solutions):
        run_nbgrader(course, "generate_assignment", name, force=True, create=True)
    return [course / "release" / assignment_name(s) for s in solutions]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.exercises.release",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("course", nargs="?", type=Path, default=DEFAULT_COURSE,
                        help="the nbgrader course directory to write (default: build/classroom)")
    args = parser.parse_args(argv)
    for folder in release(args.course.resolve()):
        print(f"released: {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
