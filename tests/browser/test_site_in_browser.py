"""The website (make site): built with the network cut, in time, without a warning, every page
there, nothing loaded from another host; then read in Chromium: the home page, a chapter with its
math typeset and its figures drawn, search, and a live widget's static fallback."""

import html
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from helpers import site

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "browser"
BUILD_SECONDS = 180  # the budget: make site from a fresh clone in under 3 minutes
OUTSIDE = "import socket; socket.create_connection(('1.1.1.1', 443), timeout=5)"


def network_can_be_cut() -> bool:
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The site, built like `make site` (python -m helpers.site --build) in a fresh folder: with
    the network cut where this machine allows it (unshare -n), the time it took."""
    target = tmp_path_factory.mktemp("site") / "site"
    command = [sys.executable, "-m", "helpers.site", "--build", str(target)]
    offline = network_can_be_cut()
    if offline:
        # a process in a new network namespace has no network (only a loopback, down)
        reached = subprocess.run(["unshare", "-n", sys.executable, "-c", OUTSIDE],
                                 capture_output=True)
        assert reached.returncode != 0, "unshare -n did not cut the network"
        command = ["unshare", "-n", *command]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    assert done.returncode == 0, f"the site did not build:\n{done.stdout}\n{done.stderr}"
    return {"site": target, "seconds": seconds, "offline": offline, "log": done.stdout,
            "warnings": done.stderr}


def test_the_site_builds_offline_within_its_time_budget(built):
    if not built["offline"]:
        pytest.skip("this machine does not allow unshare -n, so the build ran with the network "
                    "(run the tests as root, as CI does, to cut it)")
    assert built["seconds"] < BUILD_SECONDS, f"took {built['seconds']:.0f} s"
    assert "website:" in built["log"]


def test_the_build_warns_of_nothing(built):
    assert not built["warnings"].strip(), built["warnings"]


def pages(root: Path) -> list[Path]:
    """The site's pages (not the theme's templates in _static)."""
    return [page for page in root.rglob("*.html") if "_static" not in page.parts]


def text_of(page: Path) -> str:
    """A page's text without its tags (Sphinx splits inline code into one tag per word)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page.read_text())))


def test_every_chapter_exercise_solution_and_the_guide_is_a_page(built):
    found = {p.relative_to(built["site"]).as_posix() for p in pages(built["site"])}
    expected = {p.relative_to(ROOT).with_suffix(".html").as_posix()
                for p in site.course_notebooks()}
    expected |= {"README.html", "docs/teaching.html", "search.html", "index.html"}
    assert expected <= found, sorted(expected - found)
    sources = built["site"] / "_sources"
    assert not sources.exists() or not any(sources.iterdir()), "a copy of every source"
    assert len(expected) == 38


class Resources(HTMLParser):
    """What a page loads (scripts, style sheets, images, fonts, frames) and where it links."""

    def __init__(self):
        super().__init__()
        self.loaded, self.links = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source") and attrs.get("src"):
            self.loaded.append(attrs["src"])
        if tag == "link" and attrs.get("href") and "stylesheet" in (attrs.get("rel") or ""):
            self.loaded.append(attrs["href"])
        if tag == "link" and attrs.get("rel") == "preload" and attrs.get("href"):
            self.loaded.append(attrs["href"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def parsed(page: Path) -> Resources:
    resources = Resources()
    resources.feed(page.read_text())
    return resources


def is_local(url: str) -> bool:
    return not re.match(r"[a-z]+:|//", url) or url.startswith("data:")


def test_no_page_loads_anything_from_another_host_and_every_local_link_resolves(built):
    root = built["site"]
    for page in pages(root):
        resources = parsed(page)
        remote = [url for url in resources.loaded if not is_local(url)]
        assert not remote, f"{page.relative_to(root)} loads {remote}"
        for url in resources.loaded + resources.links:
            path = url.split("#")[0].split("?")[0]
            if is_local(url) and path and not url.startswith("data:"):
                assert (page.parent / path).resolve().exists(), f"{page.relative_to(root)}: {url}"
    css = " ".join(p.read_text() for p in root.rglob("*.css"))
    assert not re.search(r"@import\s+url\(\s*['\"]?(https?:)?//", css)


def test_each_notebook_page_says_how_to_run_that_notebook(built):
    for path in site.course_notebooks():
        relative = path.relative_to(ROOT).as_posix()
        page = built["site"] / Path(relative).with_suffix(".html")
        assert site.binder_url(relative).replace("&", "&amp;") in page.read_text(), relative
        assert site.local_command(relative) in text_of(page), relative
        assert "VBox(children" not in text_of(page), f"{relative} shows a widget's text form"


def test_a_solution_page_is_titled_as_the_solution_of_its_exercises(built):
    for path in sorted((ROOT / "exercises" / "solutions").glob("*.ipynb")):
        number = path.stem[:2]
        solution = built["site"] / "exercises" / "solutions" / f"{path.stem}.html"
        exercise = built["site"] / "exercises" / f"{path.stem}.html"
        assert re.search(rf"<title>Solutions {number} · ", solution.read_text()), path.name
        assert re.search(rf"<title>Exercises {number} · ", exercise.read_text()), path.name


@pytest.fixture(scope="module")
def page(browser, built):
    """A page of the site in Chromium, recording every request it makes."""
    opened = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests = []
    opened.on("request", lambda request: requests.append(request.url))
    opened.requests = requests
    yield opened
    opened.close()


def typeset(page) -> dict:
    """Wait until MathJax has typeset the page; the count of math elements and of rendered ones."""
    page.wait_for_function("typeof MathJax !== 'undefined' && MathJax.isReady === true && "
                           "MathJax.Hub.queue.pending === 0 && MathJax.Hub.queue.running === 0 "
                           "&& document.querySelectorAll('.MathJax_Processing').length === 0",
                           timeout=60_000)
    return page.evaluate(r"""() => {
      const math = [...document.querySelectorAll('#main-content .math.notranslate')];
      const text = document.querySelector('#main-content').innerText;
      return {
        math: math.length,
        rendered: math.filter(m => m.querySelector('.MathJax, .MathJax_Display')).length,
        errors: document.querySelectorAll('.MathJax_Error, merror').length,
        raw: (text.match(/\\\(|\\\[|\$\$/g) || []).length};
    }""")


def test_the_home_page_shows_the_course_map_and_leads_to_every_chapter(page, built):
    page.goto((built["site"] / "index.html").as_uri())
    page.wait_for_url("**/README.html")
    assert page.title().startswith("Evaluating and optimizing PyTorch models, from scratch")
    sidebar = page.locator(".bd-sidebar-primary").inner_text()
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        title = path.stem[:2]
        assert re.search(rf"^{title} · ", sidebar, re.M), f"chapter {title} not in the sidebar"
    page.get_by_role("link", name="03 · Gradient descent").first.click()
    page.wait_for_url("**/notebooks/03_gradient_descent.html")
    assert page.locator("h1").first.inner_text().startswith("03 · Gradient descent")


def test_a_chapter_has_its_math_typeset_and_its_figures_drawn(page, built):
    page.requests.clear()
    page.goto((built["site"] / "notebooks" / "04_sgd_and_momentum.html").as_uri())
    math = typeset(page)
    assert math["math"] > 50 and math["rendered"] == math["math"], math
    assert math["errors"] == 0 and math["raw"] == 0, math
    figures = page.evaluate("""() => [...document.querySelectorAll('.cell_output img')]
        .map(img => ({w: img.naturalWidth, shown: img.getBoundingClientRect().width}))""")
    assert len(figures) >= 5 and all(f["w"] > 100 and f["shown"] > 100 for f in figures), figures
    note = page.locator(".course-widget-note")
    assert note.count() == 1 and "A live explorer" in note.inner_text()
    assert "mybinder.org" in note.locator("a").get_attribute("href")
    launch = page.locator(".dropdown-launch-buttons a[href*='mybinder.org']")
    assert launch.count() == 1, "no Binder launch button"
    assert launch.get_attribute("href") == site.binder_url("notebooks/04_sgd_and_momentum.ipynb")
    outside = [url for url in page.requests if not url.startswith(("file:", "data:", "about:"))]
    assert not outside, outside
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.locator("#main-content .cell_output img").first.scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / "site_chapter_04.png"))


def test_search_finds_a_chapter_by_a_word_in_its_text(page, built):
    page.goto((built["site"] / "search.html").as_uri() + "?q=nesterov")
    results = page.locator("#search-results li")
    results.first.wait_for(timeout=30_000)
    assert "04 · SGD and momentum" in page.locator("#search-results").inner_text()
    page.goto((built["site"] / "search.html").as_uri() + "?q=qwzxv")
    page.wait_for_function("document.querySelector('#search-results p') !== null")
    assert results.count() == 0

