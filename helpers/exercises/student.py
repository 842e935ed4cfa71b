"""Derive the student notebooks (exercises/NN_topic.ipynb) from the solutions.

The solution notebooks in exercises/solutions/ are the single source of truth. In every code cell,
the lines from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` become ``raise NotImplementedError``
(nbgrader's convention) at the same indentation, and the hidden tests of graded assignments
(``### BEGIN HIDDEN TESTS`` to ``### END HIDDEN TESTS``) are removed; outputs and execution counts
are cleared, and the first cell's run line opens the student notebook (helpers/site.py).
(`make release` builds the graded version: helpers/exercises/release.py.)

    python -m helpers.exercises.student          # rewrite every student notebook
    python -m helpers.exercises.student --check  # exit 1 if any is out of date
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "exercises" / "solutions"


def strip_solutions(source: str) -> str:
    """Replace each solution block by a placeholder that raises `NotImplementedError`, and drop
    each hidden-test block."""
    lines, inside, out = source.splitlines(), None, []
    ends = {BEGIN: END, BEGIN_HIDDEN: END_HIDDEN}
    for number, line in enumerate(lines, 1):
        marker = line.strip()
        if marker in ends:
            if inside:
                raise ValueError(f"line {number}: {marker} inside a block opened by {inside}")
            inside = marker
            if marker == BEGIN:
                indent = re.match(r"\s*", line).group(0)
                out += [f"{indent}# your code here", f"{indent}raise NotImplementedError"]
        elif marker in ends.values():
            if inside is None or marker != ends[inside]:
                raise ValueError(f"line {number}: {marker} without {_opener(marker)}")
            inside = None
        elif inside is None:
            out.append(line)
    if inside:
        raise ValueError(f"{inside} is never closed by {ends[inside]}")
    return "\n".join(out).rstrip()


def _opener(end: str) -> str:
    return BEGIN if end == END else BEGIN_HIDDEN


_RELATIVE_LINK = re.compile(r"\]\((?![a-z]+:|#|/)([^)\s]+)\)")


def rebase_links(markdown: str) -> str:
    """Relative links written for exercises/solutions/, rewritten for exercises/."""
    def rebase(match: re.Match) -> str:
        target = os.path.normpath(os.path.join("solutions", match.group(1)))
        return f"]({Path(target).as_posix()})"

    return _RELATIVE_LINK.sub(rebase, markdown)


def student_notebook(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    student = nbformat.from_dict(solution)
    for cell in student.cells:
        if cell.cell_type == "markdown":
            cell.source = rebase_links(cell.source)
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source)
            cell.outputs = []
            cell.execution_count = None
    return student


def student_path(solution_path: Path) -> Path:
    return solution_path.parent.parent / solution_path.name


def render(solution_path: Path) -> str:
    from helpers.site import with_run_line

    notebook = student_notebook(nbformat.read(solution_path, as_version=4))
    relative = student_path(solution_path).relative_to(ROOT).as_posix()
    return nbformat.writes(with_run_line(notebook, relative)) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.exercises.student",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="only report student notebooks that are out of date")
    args = parser.parse_args(argv)
    stale = []
    for solution in sorted(SOLUTIONS.glob("*.ipynb")):
        target, text = student_path(solution), render(solution)
        if target.exists() and target.read_text() == text:
            continue
        stale.append(target)
        if not args.check:
            target.write_text(text)
    verb = "out of date" if args.check else "written"
    for path in stale:
        print(f"{verb}: {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
