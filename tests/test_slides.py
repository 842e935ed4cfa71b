"""The slide metadata of the chapter notebooks, the rules that derive it, and the offline decks.

`helpers.slides` writes each cell's ``metadata.slideshow.slide_type`` from a few rules; these
tests keep the stored metadata equal to what the rules give, check each rule on small notebooks,
and check that a built deck loads nothing from the network (its scripts and style sheets are
files beside it). The deck in a browser is tested in tests/browser/test_slides_in_browser.py.
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import nbformat
import pytest

from helpers import slides

new_markdown, new_code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell


def notebook(*cells) -> nbformat.NotebookNode:
    made = nbformat.v4.new_notebook()
    made.cells = list(cells)
    return made


def table_output(rows: int) -> nbformat.NotebookNode:
    html = "<table>" + "<tr><td>ok</td></tr>" * rows + "</table>"
    return nbformat.v4.new_output("execute_result", data={"text/html": html}, execution_count=1)


# ---------------------------------------------------------------------------------------------
# (a) the stored metadata is what the rules give


def test_every_chapter_has_up_to_date_slide_metadata():
    stale = slides.stale_notebooks(slides.chapter_notebooks(), write=False)
    assert not stale, (f"slide metadata out of date in {[p.name for p in stale]}: "
                       f"run `python -m helpers.slides`")
    assert len(slides.chapter_notebooks()) == 12
    for path in slides.chapter_notebooks():
        cells = nbformat.read(path, as_version=4).cells
        assert {c.metadata.slideshow.slide_type for c in cells} <= set(slides.SLIDE_TYPES)
        assert cells[0].metadata.slideshow.slide_type == "slide", path.name


def test_check_reports_a_changed_slide_type(tmp_path, capsys):
    chapter = shutil.copy(slides.NOTEBOOKS / "01_mse_loss.ipynb", tmp_path)
    assert slides.main(["--check", str(chapter)]) == 0
    changed = nbformat.read(chapter, as_version=4)
    changed.cells[2].metadata.slideshow.slide_type = "fragment"
    nbformat.write(changed, chapter)
    assert slides.main(["--check", str(chapter)]) == 1
    assert f"out of date: {Path(chapter).resolve()}" in capsys.readouterr().out
    assert slides.main([str(chapter)]) == 0  # rewritten
    assert slides.main(["--check", str(chapter)]) == 0


def test_rewriting_changes_the_slide_metadata_and_nothing_else(tmp_path):
    """A chapter stripped of its slide metadata, rewritten, is byte for byte the stored file:
    sources, outputs and the JSON layout are untouched."""
    stored = slides.NOTEBOOKS / "04_sgd_and_momentum.ipynb"
    stripped = nbformat.read(stored, as_version=4)
    for cell in stripped.cells:
        cell.metadata.pop("slideshow")
    copy = tmp_path / stored.name
    copy.write_text(nbformat.writes(stripped) + "\n")
    assert slides.stale_notebooks([copy], write=True) == [copy]
    assert copy.read_text() == stored.read_text()


def test_a_missing_notebook_is_named():
    with pytest.raises(FileNotFoundError, match="no such notebook: nowhere.ipynb"):
        slides.main(["--check", "nowhere.ipynb"])


# ---------------------------------------------------------------------------------------------
# (b) the rules


def test_headings_start_slides_and_subslides():
    cells = [new_markdown("# 99 · Title"), new_markdown("## Section"), new_code("x = 1"),
             new_markdown("### Part"), new_markdown("Text."), new_markdown("#### Detail")]
    assert slides.slide_types(notebook(*cells)) == [
        "slide", "slide", "-", "subslide", "-", "-"]


def test_the_first_cell_is_a_slide_even_without_a_heading():
    assert slides.slide_types(notebook(new_markdown("Just text."), new_markdown("More."))) == [
        "slide", "-"]


def test_setup_code_before_the_first_section_is_skipped():
    cells = [new_markdown("# Title"), new_code("import torch"), new_markdown("Intro."),
             new_markdown("## Section"), new_code("import math\nprint(math.pi)")]
    assert slides.slide_types(notebook(*cells)) == ["slide", "skip", "-", "slide", "-"]


def test_assert_only_cells_are_skipped():
    cells = [new_markdown("## Section"), new_code("# checks\nassert 1 + 1 == 2\nassert True"),
             new_code("assert True\nprint('shown')"), new_code("")]
    assert slides.slide_types(notebook(*cells)) == ["slide", "skip", "-", "-"]


def test_long_verification_tables_go_to_the_speaker_notes():
    tagged = {"tags": ["nbval-ignore-output"]}
    long_table = new_code("table", metadata=tagged, outputs=[table_output(40)])
    short_table = new_code("table", metadata=tagged, outputs=[table_output(5)])
    untagged = new_code("table", outputs=[table_output(40)])
    cells = [new_markdown("## Verification"), long_table, short_table, new_markdown("## Next"),
             untagged]
    # the untagged table is content: it stays in the deck, on a subslide of its own (40 rows)
    assert slides.slide_types(notebook(*cells)) == ["slide", "notes", "-", "slide", "subslide"]


def test_a_stretch_taller_than_a_slide_continues_on_a_subslide():
    half = "\n".join(f"line {n}" for n in range(slides.LINES_PER_SLIDE // 2 + 1))
    too_tall = "\n".join(f"line {n}" for n in range(3 * slides.LINES_PER_SLIDE))
    cells = [new_markdown("## Section"), new_markdown(half), new_markdown(half),
             new_markdown("short"), new_markdown(too_tall), new_markdown("after")]
    assert slides.slide_types(notebook(*cells)) == [
        "slide", "-", "subslide", "-", "subslide", "subslide"]


def test_display_equations_and_figures_count_as_tall():
    equations = "$$a = b$$\n" * 3
    assert slides.markdown_lines(equations) == 3 * (1 + slides.LINES_PER_DISPLAY_EQUATION)
    figure = nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})
    assert slides.estimated_lines(new_code("plot()", outputs=[figure])) == (
        1 + slides.LINES_PER_FIGURE)


def test_metadata_is_written_on_every_cell_and_nothing_else_changes():
    original = notebook(new_markdown("# T"), new_code("import os"), new_markdown("## S"))
    marked = slides.with_slide_metadata(original)
    assert [c.metadata.slideshow.slide_type for c in marked.cells] == ["slide", "skip", "slide"]
    assert all("slideshow" not in c.metadata for c in original.cells)  # a copy
    assert [c.source for c in marked.cells] == [c.source for c in original.cells]


# ---------------------------------------------------------------------------------------------
# (c) a built deck references only files beside it

BUILT = ("00_welcome_and_setup.ipynb", "04_sgd_and_momentum.ipynb")


class References(HTMLParser):
    """The URLs of a page's <script src>, <link href> and <img src>, and its inline scripts."""

    def __init__(self):
        super().__init__()
        self.urls, self.inline_scripts, self._in_script = [], [], False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.urls.append(attributes["src"])
        elif tag == "link" and attributes.get("href"):
            self.urls.append(attributes["href"])
        self._in_script = tag == "script" and not attributes.get("src")

    def handle_data(self, data):
        if self._in_script:
            self.inline_scripts.append(data)

    def handle_endtag(self, tag):
        self._in_script = False


def references(deck: Path) -> References:
    parser = References()
    parser.feed(deck.read_text())
    return parser


@pytest.fixture(scope="module")
def decks(tmp_path_factory) -> list[Path]:
    target = tmp_path_factory.mktemp("slides")
    return slides.build_decks([slides.NOTEBOOKS / name for name in BUILT], target)


def test_decks_are_written_where_asked(decks):
    assert [deck.name for deck in decks] == [
        "00_welcome_and_setup.slides.html", "04_sgd_and_momentum.slides.html"]


@pytest.mark.parametrize("index", range(len(BUILT)))
def test_a_deck_loads_no_url_from_the_network(decks, index):
    found = references(decks[index])
    assert len(found.urls) >= 6, found.urls  # reveal.js, its theme, MathJax, require.js, ...
    remote = [url for url in found.urls if urlsplit(url).scheme or url.startswith("//")]
    assert not remote, f"{decks[index].name} loads {remote}"
    imports = [script for script in found.inline_scripts if "http://" in script
               or "https://" in script.replace("https://github.com/hakimel", "")]
    assert not imports, f"{decks[index].name} has inline scripts naming URLs: {imports}"


@pytest.mark.parametrize("index", range(len(BUILT)))
def test_every_asset_a_deck_names_is_beside_it(decks, index):
    deck = decks[index]
    missing = [url for url in references(deck).urls
               if not (deck.parent / urlsplit(url).path).is_file()]
    assert not missing, f"{deck.name} names missing files {missing}"
    for module in ("reveal.js/dist/reveal.js", "reveal.js/plugin/notes/notes.js"):
        assert module in deck.read_text()  # loaded by require.js, not by a <script src>
        assert (deck.parent / module).is_file()


_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)""")


def css_urls(stylesheet: Path, seen: set[Path] | None = None) -> list[tuple[Path, str]]:
    """Every url(...) of a style sheet and of the sheets it @imports, with the sheet naming it."""
    seen = set() if seen is None else seen
    if stylesheet in seen:
        return []
    seen.add(stylesheet)
    found = []
    for url in _CSS_URL.findall(stylesheet.read_text(errors="replace")):
        found.append((stylesheet, url))
        path = urlsplit(url).path
        if path.endswith(".css") and not urlsplit(url).scheme:
            found += css_urls((stylesheet.parent / path).resolve(), seen)
    return found


@pytest.mark.parametrize("index", range(len(BUILT)))
def test_the_style_sheets_of_a_deck_load_only_files_beside_it(decks, index):
    """The theme's fonts come from files too: a theme that @imports web fonts would fetch them."""
    deck = decks[index]
    sheets = [deck.parent / urlsplit(url).path for url in references(deck).urls
              if urlsplit(url).path.endswith(".css")]
    assert len(sheets) >= 3, sheets  # reveal.css, the theme, the course's own
    urls = [found for sheet in sheets for found in css_urls(sheet)]
    remote = [url for _, url in urls if urlsplit(url).scheme not in {"", "data"}]
    assert not remote, f"{deck.name}'s style sheets load {remote}"
    missing = [url for sheet, url in urls if not urlsplit(url).scheme
               and not (sheet.parent / urlsplit(url).path).is_file()]
    assert not missing, f"{deck.name}'s style sheets name missing files {missing}"


def test_the_command_line_builds_the_decks_it_is_given(tmp_path, capsys):
    """`make slides` runs `python -m helpers.slides --build build/slides`."""
    chapter = slides.NOTEBOOKS / "01_mse_loss.ipynb"
    assert slides.main(["--build", str(tmp_path / "deck"), str(chapter)]) == 0
    assert (tmp_path / "deck" / "01_mse_loss.slides.html").is_file()
    assert "1 decks in" in capsys.readouterr().out


def test_a_missing_asset_package_is_explained(monkeypatch):
    monkeypatch.setattr(slides.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="classroom extra"):
        slides.asset_sources()


def tagged_table(rows: int) -> nbformat.NotebookNode:
    html = "<table>" + "<tr><td>ok</td></tr>" * rows + "</table>"
    output = nbformat.v4.new_output("execute_result", data={"text/html": html},
                                    execution_count=1)
    return new_code("t", metadata={"tags": ["nbval-ignore-output"]}, outputs=[output])


def test_a_table_of_exactly_the_limit_stays_on_the_slide_and_one_row_more_goes_to_the_notes():
    cells = [new_markdown("## Verification"), tagged_table(slides.MAX_TABLE_ROWS),
             new_markdown("## Next"), tagged_table(slides.MAX_TABLE_ROWS + 1)]
    assert slides.slide_types(notebook(*cells)) == ["slide", "-", "slide", "notes"]


def lines(count: int) -> str:
    return "\n".join(f"line {n}" for n in range(count))


def test_a_slide_holds_exactly_its_lines_and_the_next_line_starts_a_subslide():
    heading = new_markdown("## Section")  # one line
    fills = new_markdown(lines(slides.LINES_PER_SLIDE - 1))
    assert slides.slide_types(notebook(heading, fills)) == ["slide", "-"]
    assert slides.slide_types(notebook(heading, fills, new_markdown("one more"))) == [
        "slide", "-", "subslide"]


def test_an_svg_figure_counts_as_tall_as_a_png_one():
    figure = nbformat.v4.new_output("display_data", data={"image/svg+xml": "<svg></svg>",
                                                          "text/plain": "<Figure>"})
    assert slides.estimated_lines(new_code("plot()", outputs=[figure])) == (
        1 + slides.LINES_PER_FIGURE)


def widget_output(model_id: str, text: str) -> nbformat.NotebookNode:
    view = {"model_id": model_id, "version_major": 2, "version_minor": 0}
    return nbformat.v4.new_output("display_data",
                                  data={slides.WIDGET_VIEW: view, "text/plain": text})


# a widget whose state the notebook keeps (nbconvert would render its view) and one whose state
# it lacks (nbconvert would show its text form)
KEPT = widget_output("abc123", "VBox(children=(Dropdown(),))")
LOST = widget_output("zzz999", "HBox(children=(Button(),))")
FIGURE_OUTPUT = nbformat.v4.new_output("display_data", data={"text/plain": "<the figure>"})
STATE = "application/vnd.jupyter.widget-state+json"


def widget_notebook() -> nbformat.NotebookNode:
    made = notebook(new_markdown("# Explorer"),
                    new_code("explorer()", outputs=[KEPT, LOST, FIGURE_OUTPUT]))
    made.metadata["widgets"] = {STATE: {"state": {"abc123": {"model_name": "VBoxModel"}},
                                        "version_major": 2, "version_minor": 0}}
    return made


def test_a_static_copy_drops_live_widget_views_and_their_state_and_keeps_the_rest():
    original = widget_notebook()
    static = slides.without_widget_views(original)
    assert static.cells[1].outputs == [FIGURE_OUTPUT]
    assert "widgets" not in static.metadata
    assert len(original.cells[1].outputs) == 3 and "widgets" in original.metadata  # a copy


def test_a_deck_holds_no_widget_view_of_a_live_widget(tmp_path):
    path = tmp_path / "99_explorer.ipynb"
    nbformat.write(widget_notebook(), path)
    html = slides.build_deck(path, tmp_path).read_text()
    assert "abc123" not in html and slides.WIDGET_VIEW not in html
    assert "children=" not in html
    assert "&lt;the figure&gt;" in html  # the outputs beside the widget stay


def test_check_leaves_a_stale_notebook_as_it_is(tmp_path, capsys):
    stored = slides.NOTEBOOKS / "01_mse_loss.ipynb"
    changed = nbformat.read(stored, as_version=4)
    changed.cells[2].metadata.slideshow.slide_type = "fragment"
    chapter = tmp_path / stored.name
    nbformat.write(changed, chapter)
    before = chapter.read_text()
    assert slides.main(["--check", str(chapter)]) == 1
    assert chapter.read_text() == before
    assert slides.main(["--check", str(chapter)]) == 1  # still out of date
