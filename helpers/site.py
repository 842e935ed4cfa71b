"""The course as a website, and the links that run a notebook (Binder, or on your machine).

``python -m helpers.site --build build/site`` writes a static website of the executed course:
the README as its home page, every chapter, exercise notebook and worked solution with its stored
outputs, and the instructor's guide. Sphinx with myst-nb renders it (math, figures, a table of
contents, search) with the Sphinx Book Theme; nothing is executed and nothing is downloaded: MathJax
comes from an installed package (jupyter-server-mathjax) and is copied beside the pages, so the site
builds and reads offline, opened from disk or served.

The sources are staged first (a copy of the course's layout under the build folder), so that the
site can show what only a running kernel draws: a live widget becomes its static fallback, the
figure and status line it showed when the notebook was executed, with the settings it was drawn at.

Every notebook's first cell has a "run" line: a Binder link that opens that notebook in JupyterLab
in the browser, and the command that opens it on your machine. ``python -m helpers.site --links``
writes it (from pyproject.toml's repository address); ``--links --check`` and a test report
notebooks whose line is missing or out of date.
"""

from __future__ import annotations

import argparse
import copy
import html
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import nbformat

from helpers.slides import WIDGET_VIEW, package_folder

ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = ROOT / "docs" / "site"
BRANCH = "main"  # the branch Binder builds and the site's repository links point to
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
BINDER = "https://mybinder.org/v2/gh"
RUN_MARK = "▶ **Run this"
KINDS = {"notebooks": "chapter", "exercises": "exercise notebook", "solutions": "solution"}


# ---------------------------------------------------------------------------------------------
# the run links


def repository_url() -> str:
    """The course's public repository, ``[project.urls] Repository`` in pyproject.toml."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["urls"]["Repository"].rstrip("/")


def binder_url(relative: str, branch: str = BRANCH) -> str:
    """Binder's address that builds the course's environment (environment.yml) and opens the
    notebook at `relative` (a path from the course's root) in JupyterLab."""
    match = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", repository_url())
    if match is None:
        raise ValueError(f"expected a https://github.com/OWNER/NAME repository address in "
                         f"pyproject.toml, but got {repository_url()!r}")
    owner, name = match.groups()
    return f"{BINDER}/{owner}/{name}/{branch}?urlpath=lab/tree/{relative}"


def local_command(relative: str) -> str:
    """The command that opens the notebook at `relative` in JupyterLab, run in the course's
    folder (given the notebook's path instead, JupyterLab would serve that notebook's folder
    alone, and the links to other folders would not open)."""
    return f'jupyter lab "--LabApp.default_url=/lab/tree/{relative}"'


def run_line(relative: str) -> str:
    """The markdown line that says how to run the notebook at `relative` (a path from the
    course's root, e.g. ``notebooks/03_gradient_descent.ipynb``)."""
    kind = KINDS[Path(relative).parent.name]
    readme = "../" * relative.count("/") + "README.md#set-up-without-make"
    return (f"{RUN_MARK} {kind}:** [on Binder]({binder_url(relative)}) (in the browser, nothing "
            f"to install; the first start takes a few minutes), or on your machine, in the "
            f"course's folder with its environment active ([set-up]({readme})): "
            f"`{local_command(relative)}`")


def with_run_line(notebook: nbformat.NotebookNode, relative: str) -> nbformat.NotebookNode:
    """`notebook` with its run line, right under the title in the first cell (replacing an
    older run line)."""
    first = notebook.cells[0] if notebook.cells else None
    if first is None or first.cell_type != "markdown" or not first.source.startswith("# "):
        raise ValueError(f"{relative}: expected a first markdown cell that starts with the "
                         f"title ('# ...'), but got {first.source[:40] if first else 'no cell'!r}")
    title, _, rest = first.source.partition("\n")
    rest = rest.lstrip("\n")
    if rest.startswith(RUN_MARK):
        rest = rest.partition("\n")[2].lstrip("\n")
    updated = copy.deepcopy(notebook)
    updated.cells[0].source = f"{title}\n\n{run_line(relative)}\n\n{rest}".rstrip("\n")
    return updated


def course_notebooks() -> list[Path]:
    """Every notebook a learner opens: chapters, exercises, solutions."""
    return sorted([*ROOT.glob("notebooks/*.ipynb"), *ROOT.glob("exercises/*.ipynb"),
                   *ROOT.glob("exercises/solutions/*.ipynb")])


def source_notebooks() -> list[Path]:
    """The notebooks that are written by hand: chapters and solutions (the exercise notebooks
    are derived from the solutions, run line included: helpers/exercises/student.py)."""
    return [path for path in course_notebooks() if path.parent.name != "exercises"]


def stale_run_lines(paths: list[Path], write: bool) -> list[Path]:
    """The notebooks among `paths` whose run line is missing or out of date (rewritten in place
    when `write`)."""
    stale = []
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        updated = with_run_line(notebook, path.relative_to(ROOT).as_posix())
        if updated.cells[0].source != notebook.cells[0].source:
            stale.append(path)
            if write:
                nbformat.write(updated, path)
    return stale


# ---------------------------------------------------------------------------------------------
# live widgets, shown as their static fallback


def widget_models(notebook: nbformat.NotebookNode) -> dict:
    """The saved state of the notebook's widgets, by model id (empty when none was saved)."""
    saved = notebook.metadata.get("widgets", {}).get(WIDGET_STATE, {})
    return saved.get("state", {})


def descendants(models: dict, model_id: str) -> list[dict]:
    """The widget `model_id` and every widget inside it, in display order."""
    model = models.get(model_id)
    if model is None:
        return []
    found = [model]
    for child in model["state"].get("children", []):
        found += descendants(models, child.removeprefix("IPY_MODEL_"))
    return found


def setting(model: dict, models: dict) -> str | None:
    """'description = value' of a control (slider, dropdown, checkbox) that is shown, None for
    other widgets and for controls hidden at the time (a control that does not apply)."""
    state = model["state"]
    layout = models.get(state.get("layout", "").removeprefix("IPY_MODEL_"), {}).get("state", {})
    if not state.get("description") or layout.get("display") == "none":
        return None
    if state.get("_options_labels") and state.get("index") is not None:
        value = state["_options_labels"][state["index"]]
    elif "value" in state:
        value = state["value"]
    else:
        return None
    if isinstance(value, float):
        value = f"{value:.4g}"
    description = state["description"]
    return f"{description} {value}" if description[-1] in "=<>" else f"{description} = {value}"


def image_of(model: dict) -> str | None:
    """The base64 PNG an image widget showed, None for other widgets."""
    if model["model_name"] != "ImageModel":
        return None
    buffers = [b for b in model.get("buffers", []) if b.get("path") == ["value"]]
    return buffers[0]["data"] if buffers and buffers[0].get("encoding") == "base64" else None


def static_fallback(models: dict, model_id: str, run: str) -> list[nbformat.NotebookNode]:
    """The outputs that stand for a live widget on a static page: a note with the settings it
    was drawn at and how to run it, its figure(s), and its status text."""
    tree = descendants(models, model_id)
    if not tree:
        raise ValueError(f"widget {model_id} has no saved state: execute the notebook with "
                         f"its widget state stored (make notebooks)")
    settings = [s for s in (setting(model, models) for model in tree) if s]
    note = ("<p class='course-widget-note'><strong>A live explorer.</strong> Here, the figure it "
            "drew when the notebook was executed"
            + (f" ({html.escape(', '.join(settings))})" if settings else "")
            + f". {run} to move its controls.</p>")
    outputs = [nbformat.v4.new_output("display_data", data={"text/html": note})]
    for model in tree:
        png = image_of(model)
        if png:
            outputs.append(nbformat.v4.new_output("display_data", data={"image/png": png}))
        if model["model_name"] == "HTMLModel" and model["state"].get("value"):
            outputs.append(nbformat.v4.new_output(
                "display_data", data={"text/html": model["state"]["value"]}))
    if len(outputs) == 1:
        raise ValueError(f"widget {model_id} saved no figure and no status to show")
    return outputs


def without_live_widgets(notebook: nbformat.NotebookNode, run: str) -> nbformat.NotebookNode:
    """A copy of `notebook` where every live widget's output is its static fallback, and no
    widget state is left for a page to load a widget manager for."""
    static = copy.deepcopy(notebook)
    models = widget_models(static)
    static.metadata.pop("widgets", None)
    for cell in static.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            view = output.get("data", {}).get(WIDGET_VIEW)
            outputs += static_fallback(models, view["model_id"], run) if view else [output]
        cell.outputs = outputs
    return static


# ---------------------------------------------------------------------------------------------
# the site


def mathjax_folder() -> Path:
    """MathJax 2.7 as jupyter-server-mathjax ships it."""
    return package_folder("jupyter_server_mathjax", "static", needed_by="the website's pages",
                          extra="site")


def toctree(caption: str, documents: list[str]) -> str:
    entries = "\n".join(documents)
    return f"\n\n```{{toctree}}\n:hidden:\n:caption: {caption}\n\n{entries}\n```\n"


def documents(pattern: str) -> list[str]:
    return [p.relative_to(ROOT).with_suffix("").as_posix() for p in sorted(ROOT.glob(pattern))]


def stage(source: Path) -> Path:
    """Copy what the site shows into `source` in the course's own layout (so every relative
    link between notebooks and documents holds), with live widgets as their static fallback,
    the solutions titled as such, and the README, the home page, given the table of contents."""
    if source.exists():
        shutil.rmtree(source)
    for path in course_notebooks():
        relative = path.relative_to(ROOT).as_posix()
        notebook = nbformat.read(path, as_version=4)
        binder = f"<a href='{binder_url(relative)}'>on Binder</a>"
        run = f"Run the notebook ({binder}, or on your machine)"
        notebook = without_live_widgets(notebook, run)
        if path.parent.name == "solutions":
            title = notebook.cells[0]
            title.source = re.sub(r"^# Exercises ", "# Solutions ", title.source)
        (source / relative).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, source / relative)
    (source / "docs").mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "docs" / "teaching.md", source / "docs" / "teaching.md")
    readme = (ROOT / "README.md").read_text()
    readme += toctree("Chapters", documents("notebooks/*.ipynb"))
    readme += toctree("Exercises", documents("exercises/*.ipynb"))
    readme += toctree("Solutions", documents("exercises/solutions/*.ipynb"))
    readme += toctree("Teaching", ["docs/teaching"])
    (source / "README.md").write_text(readme)
    return source


# The home page is README.html (links from the notebooks to the README stay valid); index.html,
# what a browser or a web server opens first, sends the reader there.
REDIRECT = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="0; url=README.html">
<title>Evaluating and optimizing PyTorch models, from scratch</title></head>
<body><a href="README.html">Evaluating and optimizing PyTorch models, from scratch</a></body></html>
"""


def build(target: Path, source: Path | None = None) -> Path:
    """Build the website into `target` (sources staged in `source`, by default beside it);
    Sphinx warnings, such as a broken link, fail the build."""
    target = target.resolve()
    source = (source or target.with_name(target.name + "-source")).resolve()
    stage(source)
    if target.exists():
        shutil.rmtree(target)
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going",
               "-c", str(CONF_DIR), "-d", str(source / ".doctrees"), str(source), str(target)]
    subprocess.run(command, check=True)
    shutil.copytree(mathjax_folder(), target / "_static" / "mathjax")
    (target / "index.html").write_text(REDIRECT)
    return target


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.site",
                                     description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--build", metavar="FOLDER", type=Path,
                        help="write the website to FOLDER (open FOLDER/index.html)")
    action.add_argument("--links", action="store_true",
                        help="write the run line into every notebook's first cell")
    parser.add_argument("--check", action="store_true",
                        help="with --links: only report notebooks whose run line is out of date")
    args = parser.parse_args(argv)
    if args.check and not args.links:
        parser.error("--check goes with --links")
    if args.build:
        started = time.perf_counter()
        site = build(args.build)
        print(f"website: {site / 'index.html'} ({size(site) / 1e6:.1f} MB, "
              f"{time.perf_counter() - started:.0f} s)")
        return 0
    stale = stale_run_lines(source_notebooks(), write=not args.check)
    for path in stale:
        print(f"{'out of date' if args.check else 'written'}: {path.relative_to(ROOT)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
