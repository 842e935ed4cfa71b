"""Slide metadata for the chapter notebooks, and reveal.js decks built from them.

A lecturer presents a chapter either live in JupyterLab (RISE) or from a static reveal.js deck;
both read each cell's ``metadata.slideshow.slide_type``. This module derives that metadata from a
few rules, so that no one edits it by hand and a new cell gets a sensible place in the deck:

1. The first cell starts a slide (a deck starts with the chapter's title).
2. A markdown cell that starts with a level-1 or level-2 heading (``#``, ``##``) starts a
   ``"slide"``; a level-3 heading (``###``) starts a ``"subslide"`` (reveal.js stacks those
   vertically under the slide).
3. Test scaffolding stays out of the deck (``"skip"``): the setup code before the chapter's first
   ``##`` heading (imports, seeds, small printing helpers), and code cells that only ``assert``.
4. A verification table with more than ``MAX_TABLE_ROWS`` rows (a cell tagged
   ``nbval-ignore-output`` whose HTML output is that long) goes to the speaker notes
   (``"notes"``): the chapter's one-line summary of it stays on the slide.
5. A long stretch continues on a new ``"subslide"``: cells are laid on the current (sub)slide while
   their estimated height (``estimated_lines``) fits ``LINES_PER_SLIDE``; the first cell that does
   not fit starts the next subslide. A single cell taller than a slide gets a subslide of its own,
   which the deck lets scroll.
6. Every other cell is ``"-"``: it continues the current slide.

    python -m helpers.slides                     # rewrite the metadata of every chapter notebook
    python -m helpers.slides --check             # exit 1 if any notebook's metadata is out of date
    python -m helpers.slides --build build/slides [NOTEBOOK ...]   # the offline reveal.js decks

Only the ``slideshow`` metadata changes; sources and outputs stay as they are.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib.util
import math
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

SLIDE, SUBSLIDE, CONTINUE, SKIP, NOTES = "slide", "subslide", "-", "skip", "notes"
SLIDE_TYPES = (SLIDE, SUBSLIDE, "fragment", CONTINUE, SKIP, NOTES)

# What one reveal.js slide of 960 x 700 px holds at the deck's 17 px text (15 px code).
LINES_PER_SLIDE = 26
CHARACTERS_PER_LINE = 95
LINES_PER_DISPLAY_EQUATION = 2  # a $$...$$ block is about twice as tall as a line of text
LINES_PER_FIGURE = 16  # the deck's CSS caps a figure at 400 px, about sixteen lines of text
MAX_TABLE_ROWS = 12
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

_HEADING = re.compile(r"(#{1,6})\s")


# ---------------------------------------------------------------------------------------------
# the rules


def heading_level(cell: nbformat.NotebookNode) -> int | None:
    """The level of the heading a markdown cell starts with (1 for ``#``), else None."""
    if cell.cell_type != "markdown":
        return None
    match = _HEADING.match(cell.source.lstrip())
    return len(match.group(1)) if match else None


def is_assert_only(cell: nbformat.NotebookNode) -> bool:
    """A code cell whose every statement is an ``assert``: a check, nothing to look at."""
    if cell.cell_type != "code":
        return False
    try:
        statements = ast.parse(cell.source).body
    except SyntaxError:
        return False
    return bool(statements) and all(isinstance(s, ast.Assert) for s in statements)


def table_rows(cell: nbformat.NotebookNode) -> int:
    """The number of HTML table rows in a code cell's outputs."""
    rows = 0
    for output in cell.get("outputs", []):
        html = output.get("data", {}).get("text/html", "")
        rows += len(re.findall(r"<tr[\s>]", "".join(html)))
    return rows


def is_verification_table(cell: nbformat.NotebookNode) -> bool:
    """A long result table whose rows depend on the machine (tagged ``nbval-ignore-output``)."""
    return ("nbval-ignore-output" in cell.metadata.get("tags", [])
            and table_rows(cell) > MAX_TABLE_ROWS)


def markdown_lines(source: str) -> int:
    """Estimated height of rendered markdown, in lines of text: wrapped paragraphs plus the
    extra height of display equations."""
    text_lines = sum(max(1, math.ceil(len(line) / CHARACTERS_PER_LINE))
                     for line in source.splitlines() if line.strip() and line.strip() != "$$")
    equations = source.count("$$") // 2
    return text_lines + LINES_PER_DISPLAY_EQUATION * equations


def output_lines(output: nbformat.NotebookNode) -> int:
    """Estimated height of one output, in lines of text."""
    if output.output_type == "stream":
        return "".join(output.text).count("\n") or 1
    if output.output_type == "error":
        return len(output.get("traceback", [])) + 1
    data = output.get("data", {})
    if "image/png" in data or "image/svg+xml" in data:
        return LINES_PER_FIGURE
    if "text/html" in data:
        return max(1, len(re.findall(r"<tr[\s>]", "".join(data["text/html"]))))
    return "".join(data.get("text/plain", "")).count("\n") + 1


def estimated_lines(cell: nbformat.NotebookNode) -> int:
    """Estimated height of a cell on a slide, in lines of text."""
    if cell.cell_type == "markdown":
        return markdown_lines(cell.source)
    lines = len(cell.source.splitlines())
    return lines + sum(output_lines(output) for output in cell.get("outputs", []))


def slide_types(notebook: nbformat.NotebookNode) -> list[str]:
    """The slide type of each cell of `notebook`, by the rules in this module's docstring."""
    types, lines_on_slide, seen_section = [], 0, False
    for index, cell in enumerate(notebook.cells):
        level = heading_level(cell)
        seen_section = seen_section or level == 2
        height = estimated_lines(cell)
        if index == 0 or (level is not None and level <= 2):
            kind, lines_on_slide = SLIDE, height
        elif level == 3:
            kind, lines_on_slide = SUBSLIDE, height
        elif cell.cell_type == "code" and (not seen_section or is_assert_only(cell)):
            kind = SKIP
        elif cell.cell_type == "code" and is_verification_table(cell):
            kind = NOTES
        elif lines_on_slide > 0 and lines_on_slide + height > LINES_PER_SLIDE:
            kind, lines_on_slide = SUBSLIDE, height
        else:
            kind, lines_on_slide = CONTINUE, lines_on_slide + height
        types.append(kind)
    return types


def with_slide_metadata(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `notebook` whose cells carry the slide types of `slide_types`."""
    marked = copy.deepcopy(notebook)
    for cell, kind in zip(marked.cells, slide_types(marked), strict=True):
        cell.metadata["slideshow"] = {"slide_type": kind}
    return marked


# ---------------------------------------------------------------------------------------------
# the notebooks


def chapter_notebooks() -> list[Path]:
    """The chapter notebooks, in course order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def render(path: Path) -> str:
    """The text of the notebook at `path` with up-to-date slide metadata, written as nbformat
    writes it (so that the file differs from the stored one in metadata lines only)."""
    notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    if notebook.nbformat != 4:
        raise ValueError(f"{path}: expected an nbformat 4 notebook but got version "
                         f"{notebook.nbformat}")
    return nbformat.writes(with_slide_metadata(notebook)) + "\n"


def stale_notebooks(paths: list[Path], write: bool) -> list[Path]:
    """The notebooks among `paths` whose slide metadata is out of date; rewritten if `write`."""
    stale = []
    for path in paths:
        text = render(path)
        if path.read_text() == text:
            continue
        stale.append(path)
        if write:
            path.write_text(text)
    return stale


# ---------------------------------------------------------------------------------------------
# the decks

# Extra style for the decks: text and code a little smaller than nbconvert's (a chapter is dense),
# no "In [n]:" prompts, figures that fit on a slide, wide code and tables that scroll sideways.
DECK_CSS = """\
:root {
  --jp-content-font-size1: 17px;
  --jp-code-font-size: 15px;
}
.reveal .jp-InputPrompt,
.reveal .jp-OutputPrompt {
  display: none;
}
.reveal .jp-OutputArea-output img {
  max-height: 400px;
  max-width: 100%;
  width: auto;
  height: auto;
}
.reveal .jp-OutputArea-output pre,
.reveal .jp-InputArea-editor,
.reveal .jp-RenderedHTMLCommon table {
  overflow-x: auto;
}
.reveal .slides section {
  text-align: left;
}
.reveal .slides h1,
.reveal .slides h2,
.reveal .slides h3 {
  text-transform: none;
}
"""
DECK_CSS_FILE = "course-slides.css"

# The reveal template of nbconvert without what it would fetch from the network: mermaid (a
# module script, which browsers refuse to load from file://) and the widget manager (the decks
# show the figures that stand beside each live widget); MathJax told to use the one web font
# that jupyter-server-mathjax ships (STIX-Web); plus the deck's own style sheet.
DECK_TEMPLATE = """\
{%- extends 'index.html.j2' -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{% block jupyter_widgets %}{% endblock jupyter_widgets %}
{%- block html_head_js_mathjax -%}
<script>window.MathJax = {"HTML-CSS": {availableFonts: ["STIX-Web"], preferredFont: "STIX-Web",
                                       webFont: "STIX-Web", imageFont: null}};</script>
{{ super() }}
{%- endblock html_head_js_mathjax -%}
{%- block html_head_css -%}
<link rel="stylesheet" href="{{ resources.deck_css_url }}">
{%- endblock html_head_css -%}
"""


def package_folder(package: str, *parts: str, needed_by: str = "the slide decks",
                   extra: str = "classroom") -> Path:
    """A folder shipped inside an installed Python package; a clear error when it is missing."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"{needed_by} need the package {package!r}: install the course with its "
            f"{extra} extra (pip install -e '.[{extra}]')")
    folder = Path(spec.origin).parent.joinpath(*parts)
    if not folder.is_dir():
        raise FileNotFoundError(f"expected {folder} inside the installed package {package!r}")
    return folder


def asset_sources() -> dict[str, Path]:
    """Where each asset of the decks comes from: files shipped by installed Python packages
    (reveal.js 5 in sphinx-revealjs, MathJax 2.7 in jupyter-server-mathjax, require.js in voila,
    jQuery in nbgrader), so that a build needs no network."""
    voila = Path(sys.prefix) / "share" / "jupyter" / "voila" / "templates" / "base" / "static"
    nbgrader = package_folder("nbgrader", "server_extensions", "formgrader", "static",
                              "node_modules", "jquery", "dist")
    sources = {
        "reveal.js": package_folder("sphinx_revealjs", "_static", "revealjs"),
        "mathjax": package_folder("jupyter_server_mathjax", "static"),
        "require.min.js": voila / "require.min.js",
        "jquery.min.js": nbgrader / "jquery.min.js",
    }
    missing = [str(path) for path in sources.values() if not path.exists()]
    if missing:
        raise FileNotFoundError(f"expected the deck assets at {missing}: install the course "
                                f"with its classroom extra (pip install -e '.[classroom]')")
    return sources


def copy_assets(target: Path) -> None:
    """Copy reveal.js, MathJax, require.js, jQuery and the deck's CSS into `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for name, source in asset_sources().items():
        if source.is_dir():
            shutil.copytree(source, target / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.map", "*.scss", "*.md"))
        else:
            shutil.copy2(source, target / name)
    (target / DECK_CSS_FILE).write_text(DECK_CSS)


def slides_exporter():
    """nbconvert's reveal.js exporter, every URL pointing at the assets beside the deck."""
    import jinja2
    from nbconvert import SlidesExporter

    return SlidesExporter(
        extra_loaders=[jinja2.DictLoader({"course_deck.html.j2": DECK_TEMPLATE})],
        template_file="course_deck.html.j2",
        reveal_url_prefix="reveal.js",
        reveal_theme="white",  # its fonts are files beside it (other themes fetch web fonts)
        reveal_scroll=True,
        mathjax_url="mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe",
        require_js_url="require.min.js",
        jquery_url="jquery.min.js",
        font_awesome_url="",
        jupyter_widgets_base_url="",
    )


def without_widget_views(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of `notebook` without the outputs of live widgets, which only a running kernel
    can draw (a static deck would show their text form, ``VBox(children=...)``)."""
    static = copy.deepcopy(notebook)
    static.metadata.pop("widgets", None)
    for cell in static.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if WIDGET_VIEW not in o.get("data", {})]
    return static


def build_deck(path: Path, target: Path, exporter=None) -> Path:
    """Write the reveal.js deck of the notebook at `path` into `target` (assets copied there
    by `copy_assets`); return the deck's path."""
    exporter = exporter or slides_exporter()
    notebook = without_widget_views(nbformat.read(path, as_version=4))
    resources = {"metadata": {"name": path.stem}, "deck_css_url": DECK_CSS_FILE}
    html, _ = exporter.from_notebook_node(notebook, resources=resources)
    deck = target / f"{path.stem}.slides.html"
    deck.write_text(html)
    return deck


def build_decks(paths: list[Path], target: Path) -> list[Path]:
    """The decks of `paths` in `target`, with their assets: a folder that works offline,
    opened from disk or served."""
    copy_assets(target)
    exporter = slides_exporter()
    return [build_deck(path, target, exporter) for path in paths]


# ---------------------------------------------------------------------------------------------
# the command line


def notebook_paths(names: list[str]) -> list[Path]:
    """The notebooks named on the command line (all chapters when none is)."""
    if not names:
        return chapter_notebooks()
    paths = [Path(name) for name in names]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"no such notebook: {', '.join(missing)}")
    return paths


def shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.slides",
                                     description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--check", action="store_true",
                        help="only report notebooks whose slide metadata is out of date")
    action.add_argument("--build", metavar="FOLDER", type=Path,
                        help="write a reveal.js deck per notebook, with its assets, to FOLDER")
    parser.add_argument("notebooks", nargs="*", help="notebooks (default: every chapter)")
    args = parser.parse_args(argv)
    paths = notebook_paths(args.notebooks)
    if args.build:
        started = time.perf_counter()
        decks = build_decks(paths, args.build)
        for deck in decks:
            print(f"written: {shown(deck)} ({deck.stat().st_size / 1e6:.1f} MB)")
        print(f"{len(decks)} decks in {time.perf_counter() - started:.1f} s")
        return 0
    stale = stale_notebooks(paths, write=not args.check)
    verb = "out of date" if args.check else "written"
    for path in stale:
        print(f"{verb}: {shown(path)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
