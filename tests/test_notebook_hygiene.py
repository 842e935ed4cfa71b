"""Every stored notebook is executed in order, clean, small, and honest about what nbval skips."""

import base64
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
EXECUTED = sorted([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("exercises/solutions/*.ipynb")])
# the learners' copies are stored unexecuted: a learner runs them (tests/test_exercises.py proves
# that they run); every other rule applies to them too
STUDENT = sorted(ROOT.glob("exercises/*.ipynb"))
ALL = EXECUTED + STUDENT
MAX_OUTPUT_BYTES = 500_000
SKIP_MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP")
SKIP_TAGS = ("nbval-ignore-output", "nbval-skip")


def code_cells(path):
    notebook = json.loads(path.read_text())
    return notebook, [c for c in notebook["cells"] if c["cell_type"] == "code"
                      and "".join(c["source"]).strip()]


def tags(cell):
    return cell.get("metadata", {}).get("tags", [])


def names(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def test_there_are_notebooks():
    assert ROOT.joinpath("notebooks/00_welcome_and_setup.ipynb") in EXECUTED


@pytest.mark.parametrize("path", EXECUTED, ids=names(EXECUTED))
def test_executed_in_order_top_to_bottom(path):
    _, cells = code_cells(path)
    counts = [c["execution_count"] for c in cells]
    assert None not in counts, f"{counts.count(None)} code cells were never run: make notebooks"
    assert counts == list(range(1, len(cells) + 1)), (
        f"execution counts {counts} are not 1..{len(cells)}: run it top to bottom (make notebooks)")


@pytest.mark.parametrize("path", EXECUTED, ids=names(EXECUTED))
def test_errors_only_where_expected(path):
    _, cells = code_cells(path)
    for number, cell in enumerate(cells, 1):
        raised = [o for o in cell["outputs"] if o["output_type"] == "error"]
        expected = "raises-exception" in tags(cell) or "nbval-raises-exception" in tags(cell)
        assert not raised or expected, (
            f"code cell {number} stores an error ({raised[0]['ename']}) but is not tagged "
            "raises-exception")
        if expected:
            assert raised, f"code cell {number} is tagged raises-exception but raised nothing"


@pytest.mark.parametrize("path", STUDENT, ids=names(STUDENT))
def test_student_notebooks_are_stored_unexecuted(path):
    _, cells = code_cells(path)
    ran = [n for n, c in enumerate(cells, 1) if c["execution_count"] is not None or c["outputs"]]
    assert not ran, f"code cells {ran} store a run: regenerate with make exercises"


@pytest.mark.parametrize("path", ALL, ids=names(ALL))
def test_kernel_is_python3(path):
    notebook, _ = code_cells(path)
    assert notebook["metadata"]["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", ALL, ids=names(ALL))
def test_outputs_are_small(path):
    _, cells = code_cells(path)
    for number, cell in enumerate(cells, 1):
        size = len(json.dumps(cell["outputs"]))
        assert size <= MAX_OUTPUT_BYTES, f"code cell {number} stores {size} bytes of output"


def has_reason(source):
    """A comment besides the nbval marker itself."""
    comments = [line.strip().lstrip("#").strip() for line in source.splitlines()
                if line.strip().startswith("#")]
    return any(c and c not in SKIP_MARKERS for c in comments)


@pytest.mark.parametrize("path", ALL, ids=names(ALL))
def test_every_skipped_comparison_says_why(path):
    _, cells = code_cells(path)
    for number, cell in enumerate(cells, 1):
        source = "".join(cell["source"])
        skips = any(t in tags(cell) for t in SKIP_TAGS) or any(m in source for m in SKIP_MARKERS)
        assert not skips or has_reason(source), (
            f"code cell {number} is excluded from nbval comparison without a comment saying why")


@pytest.mark.parametrize("path", ALL, ids=names(ALL))
def test_test_scaffolding_is_in_cell_tags_not_in_the_code(path):
    _, cells = code_cells(path)
    for number, cell in enumerate(cells, 1):
        marker = re.search(r"#\s*NBVAL_\w+", "".join(cell["source"]))
        assert not marker, (f"code cell {number} has {marker.group()} in its code: use the cell "
                            "tag (nbval-ignore-output, nbval-skip, raises-exception) instead")


def test_the_reason_check_can_fail():
    assert not has_reason("# NBVAL_IGNORE_OUTPUT\nprint(1)")
    assert has_reason("# NBVAL_IGNORE_OUTPUT\n# timings vary\nprint(1)")


def test_readme_course_map_links_every_notebook_and_exercise():
    readme = ROOT.joinpath("README.md").read_text()
    linked = set(re.findall(r"\]\((?![a-z]+:)([^)]+\.ipynb)\)", readme))  # not Binder's
    stored = {str(p.relative_to(ROOT)) for p in ROOT.glob("notebooks/*.ipynb")}
    stored |= {str(p.relative_to(ROOT)) for p in ROOT.glob("exercises/*.ipynb")}
    assert stored <= linked, f"not in the README's course map: {sorted(stored - linked)}"
    assert all(ROOT.joinpath(link).exists() for link in linked), "the README links a missing file"


@pytest.mark.parametrize("path", ALL, ids=names(ALL))
def test_links_between_notebooks_resolve(path):
    notebook, _ = code_cells(path)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            for link in re.findall(r"\]\(([^)#:]+\.ipynb)", "".join(cell["source"])):
                assert (path.parent / link).exists(), f"{path.name} links to missing {link}"


CHAPTERS = sorted(ROOT.glob("notebooks/*.ipynb"))


@pytest.mark.parametrize("path", CHAPTERS, ids=names(CHAPTERS))
def test_figures_are_sharp_on_a_projector(path):
    """Every stored figure is drawn at twice the size it is shown at (helpers.plots.sharp_png,
    installed by each chapter's first cell): at least 144 pixels per inch of a 72-dpi figure."""
    _, cells = code_cells(path)
    for number, cell in enumerate(cells, 1):
        for output in cell["outputs"]:
            if "image/png" not in output.get("data", {}):
                continue
            image = Image.open(io.BytesIO(base64.b64decode(output["data"]["image/png"])))
            shown = output.get("metadata", {}).get("image/png", {})
            assert "width" in shown, (
                f"code cell {number} stores a figure without a display size: call "
                "plots.show_sharp_figures() in the chapter's first cell")
            assert image.size[0] >= 2 * shown["width"] and image.size[1] >= 2 * shown["height"], (
                f"code cell {number}: a figure of {image.size} pixels shown at "
                f"{shown['width']}x{shown['height']}: not drawn at twice its size")
