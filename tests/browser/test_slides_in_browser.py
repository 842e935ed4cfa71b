"""A chapter's reveal.js deck as a lecturer opens it: from disk (file://), in headless Chromium.

The deck is built into a temporary folder with `helpers.slides.build_decks`; the test checks that
reveal.js started with one slide per "slide" or "subslide" cell, that MathJax typeset the
formulas (no raw ``$$`` left in the text), that a figure is displayed and fits on its slide, and
that the page requested nothing but files.
A second test removes MathJax and reveal.js from a copy of the folder and expects the same checks
to report both. Skipped with a reason when Chromium is missing, as the widget test is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import chromium  # noqa: E402, F401 - skips this module, with its reason, without Playwright or Chromium
import nbformat
import pytest

from helpers import slides

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "browser"
CHAPTER = slides.NOTEBOOKS / "04_sgd_and_momentum.ipynb"  # formulas, figures and a widget
REVEAL = "reveal.js/dist/reveal.js"


def expected_slides(notebook: Path) -> int:
    """The number of (sub)slides the deck of `notebook` must have: one per "slide" or
    "subslide" cell."""
    cells = nbformat.read(notebook, as_version=4).cells
    return sum(cell.metadata.get("slideshow", {}).get("slide_type") in {"slide", "subslide"}
               for cell in cells)


@pytest.fixture(scope="module")
def deck_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("slides")
    slides.build_decks([CHAPTER], folder)
    return folder


def total_slides(page) -> int | None:
    """Reveal.getTotalSlides() of the deck in `page`, None if reveal.js never became ready."""
    try:
        page.wait_for_function("document.querySelector('.reveal.ready') !== null",
                               timeout=10_000)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: reveal.js did not start
        return None
    return page.evaluate(
        f"new Promise(done => require(['{REVEAL}'], reveal => done(reveal.getTotalSlides())))")


def mathjax_done(page) -> bool:
    """Wait until MathJax has typeset the page; False if MathJax never loaded."""
    try:
        page.wait_for_function("window.MathJax !== undefined && MathJax.Hub !== undefined",
                               timeout=10_000)
    except Exception:  # noqa: BLE001 - playwright's TimeoutError: no MathJax
        return False
    return page.evaluate("new Promise(done => MathJax.Hub.Queue(() => done(true)))")


RAW_TEXT = """() => {
    const walker = document.createTreeWalker(document.querySelector('.reveal .slides'),
                                             NodeFilter.SHOW_TEXT);
    const parts = [];
    while (walker.nextNode()) {
        const tag = walker.currentNode.parentElement.tagName;
        if (tag !== 'SCRIPT' && tag !== 'STYLE') parts.push(walker.currentNode.textContent);
    }
    return parts.join('');
}"""

FIRST_FIGURE = """() => {
    const img = document.querySelector('.jp-OutputArea-output img');
    let section = img.closest('section');
    return {index: [...document.querySelectorAll('.reveal .slides > section')]
                       .indexOf(section.parentElement.closest('section') || section),
            sub: [...section.parentElement.children].indexOf(section)};
}"""


def figure_shown(page) -> dict:
    """Go to the slide of the deck's first figure; its natural and displayed size there."""
    where = page.evaluate(FIRST_FIGURE)
    page.evaluate(f"require(['{REVEAL}'], r => r.slide({where['index']}, {where['sub']}))")
    page.wait_for_timeout(1500)  # the slide transition
    return page.evaluate("""() => {
        const img = document.querySelector('section.present .jp-OutputArea-output img');
        if (!img) return {natural: 0, shown: 0, height: 0};
        return {natural: img.naturalWidth, shown: img.getBoundingClientRect().width,
                height: img.clientHeight};
    }""")


def deck_problems(page, deck: Path, slide_count: int, requested: list[str]) -> list[str]:
    """What is wrong with the deck open in `page`: reveal.js, MathJax, a figure, and any
    `requested` URL that is not a file (the deck must work offline)."""
    problems = []
    total = total_slides(page)
    if total != slide_count:
        problems.append(f"reveal.js: {total} slides, expected {slide_count}")
    if not mathjax_done(page):
        problems.append("MathJax did not load")
    elif page.locator(".MathJax, .MathJax_CHTML, mjx-container").count() == 0:
        problems.append("MathJax typeset no formula")
    if "$$" in page.evaluate(RAW_TEXT):
        problems.append("raw $$ left in the text")
    if total is not None:
        figure = figure_shown(page)
        if not (figure["natural"] > 0 and figure["shown"] > 0):
            problems.append(f"the first figure is not displayed: {figure}")
        elif figure["height"] > 400:
            problems.append(f"the first figure is {figure['height']} px tall, over 400 px")
    remote = [url for url in requested if url.split(":")[0] not in {"file", "data", "about"}]
    if remote:
        problems.append(f"requests beyond the deck's folder: {remote}")
    return problems


def open_deck(browser, deck: Path) -> tuple[object, list[str]]:
    """A new page showing `deck`, and the list that every URL the page requests is added to."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(deck.as_uri())
    return page, requested


def test_a_deck_opened_from_disk_shows_slides_formulas_and_figures(browser, deck_folder):
    deck = deck_folder / f"{CHAPTER.stem}.slides.html"
    page, requested = open_deck(browser, deck)
    try:
        problems = deck_problems(page, deck, expected_slides(CHAPTER), requested)
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{CHAPTER.stem}.slides.png"))
        page.close()
    assert expected_slides(CHAPTER) > 1
    assert not problems, f"{deck.name}: {problems}"


def test_the_checks_notice_a_deck_without_its_assets(browser, deck_folder, tmp_path):
    broken = shutil.copytree(deck_folder, tmp_path / "broken")
    shutil.rmtree(broken / "mathjax")
    shutil.rmtree(broken / "reveal.js")
    deck = broken / f"{CHAPTER.stem}.slides.html"
    page, requested = open_deck(browser, deck)
    try:
        problems = deck_problems(page, deck, expected_slides(CHAPTER), requested)
    finally:
        page.close()
    assert any(p.startswith("reveal.js: None slides") for p in problems), problems
    assert "MathJax did not load" in problems, problems
    assert "raw $$ left in the text" in problems, problems
