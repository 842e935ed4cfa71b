"""The widgets as a learner meets them: JupyterLab in headless Chromium, all cells run.

For every notebook with a live explorer: the widgets render (no "Error displaying widget"), a
slider moved with the keyboard changes the figure beside it (compared as screenshots), and no cell
shows an error. Notebook 00 must run cleanly too. JupyterLab is started from this interpreter on
127.0.0.1, on a free port, with a random token, over a temporary copy of the notebooks (so that
autosave cannot touch the repository), and stopped by its process id whatever happens. Each
notebook's kernel is shut down after its test (and checked gone), so that only one runs at a time.
Screenshots land in build/browser/.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import chromium  # noqa: F401 - skips this module, with its reason, without Playwright or Chromium
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "browser"
NO_NEWS = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                          "checkForUpdates": False}}
WIDGET_NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb")
                          if "Explorer(" in p.read_text())

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_lab(root: Path, port: int, token: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1",
               f"--port={port}", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
               "--LabApp.news_url=None", "--LabApp.check_for_updates_class="
               "jupyterlab.NeverCheckForUpdate"]
    # the settings that stop the news pop-up, as `make lab` writes them (fetchNews "false")
    overrides = root / "app-settings" / "overrides.d"
    overrides.mkdir(parents=True)
    (overrides / "course.json").write_text(json.dumps(NO_NEWS))
    command.append(f"--LabApp.app_settings_dir={root / 'app-settings'}")
    if os.geteuid() == 0:
        command.append("--allow-root")
    # render every cell (JupyterLab otherwise keeps only the visible ones in the page)
    settings = root / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    environment = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(root / "settings"),
                   "JUPYTERLAB_WORKSPACES_DIR": str(root / "workspaces")}
    log = open(root / "jupyterlab.log", "w")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=root, env=environment)


def wait_until_up(port: int, token: str, process: subprocess.Popen, seconds: float = 90):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}",
                                        timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer on port {port} within {seconds} s")


def stop(process: subprocess.Popen) -> None:
    """Stop the server this test started, and only it: its own process group."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@dataclass(frozen=True)
class Lab:
    base: str  # http://127.0.0.1:<port>
    token: str
    root: Path  # what the server serves: a copy of notebooks/ under root / "notebooks"


def kernel_ids(lab: Lab) -> set[str]:
    """The ids of the kernels the server is running (REST API GET /api/kernels)."""
    with urllib.request.urlopen(f"{lab.base}/api/kernels?token={lab.token}",
                                timeout=10) as response:
        return {kernel["id"] for kernel in json.load(response)}


def shut_down_kernels(lab: Lab, ids: set[str], seconds: float = 30) -> None:
    """Shut each kernel of `ids` down (DELETE /api/kernels/<id>) and wait until the server no
    longer lists it: a notebook's kernel (about 550 MB) must not outlive its test."""
    for kernel in ids & kernel_ids(lab):
        request = urllib.request.Request(f"{lab.base}/api/kernels/{kernel}?token={lab.token}",
                                         method="DELETE")
        with urllib.request.urlopen(request, timeout=30):
            pass
    deadline = time.monotonic() + seconds
    while ids & kernel_ids(lab) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not ids & kernel_ids(lab), f"kernels still running: {ids & kernel_ids(lab)}"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab serving a temporary copy of notebooks/."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(ROOT / "notebooks", root / "notebooks")
    port, token = free_port(), os.urandom(16).hex()
    process = start_lab(root, port, token)
    try:
        wait_until_up(port, token, process)
        yield Lab(f"http://127.0.0.1:{port}", token, root)
    finally:
        stop(process)
        assert process.poll() is not None, "the JupyterLab server is still running"


@contextmanager
def notebook_page(browser, lab: Lab, notebook: str, timeout_s: float = 240):
    """`open_and_run_all`, then, whatever happens, the page closed and the kernels it started
    shut down (asserted gone)."""
    before = kernel_ids(lab)
    page = None
    try:
        page = open_and_run_all(browser, lab, notebook, timeout_s)
        yield page
    finally:
        if page is not None:
            page.close()
        shut_down_kernels(lab, kernel_ids(lab) - before)


def open_and_run_all(browser, lab: Lab, notebook: str, timeout_s: float = 240):
    """A new page with `notebook` open and every cell run top to bottom with Shift+Enter, as a
    learner does ("Run All" would stop at a cell that raises on purpose); the kernel idle again.
    """
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(f"{lab.base}/lab/tree/notebooks/{notebook}?reset&token={lab.token}",
              timeout=90_000)  # reset: a fresh workspace, only this notebook open
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=90_000)
    # the kernel has started and is connected once the status bar says so
    page.locator(".jp-StatusBar-Widget").filter(has_text="| Idle").first.wait_for(
        timeout=90_000)
    cells = nbformat.read(lab.root / "notebooks" / notebook, as_version=4).cells
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.keyboard.press("Escape")  # command mode: Shift+Enter runs and moves on
    for _ in cells:
        page.keyboard.press("Shift+Enter", delay=20)
    code_cells = sum(cell.cell_type == "code" for cell in cells)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        prompts = [p.strip() for p in
                   page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()]
        done = [p for p in prompts if p[1:-2].isdigit()]
        if len(done) == code_cells:
            return page
        page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{Path(notebook).stem}-timeout.png"))
    raise TimeoutError(f"{notebook}: {len(done)} of {code_cells} code cells ran within "
                       f"{timeout_s} s; prompts {prompts}")


def raising_cells(notebook: Path) -> list[bool]:
    """For each code cell of `notebook`, in order, whether it is tagged `raises-exception`."""
    return ["raises-exception" in cell.metadata.get("tags", [])
            for cell in nbformat.read(notebook, as_version=4).cells
            if cell.cell_type == "code"]


def errors_shown(page, notebook: Path | None = None) -> list[str]:
    """Tracebacks in cells that are not expected to raise (tagged `raises-exception` in
    `notebook`, the file the page shows)."""
    expected = raising_cells(notebook) if notebook is not None else []
    texts = []
    for index, cell in enumerate(page.locator(".jp-CodeCell").all()):
        if cell.locator(".jp-RenderedText[data-mime-type='application/vnd.jupyter.stderr']"
                        ).count() and cell.locator(".jp-OutputArea-output pre").filter(
                has_text="Traceback").count():
            source = cell.locator(".jp-InputArea-editor").inner_text()
            tagged = index < len(expected) and expected[index]
            if not tagged and "raises-exception" not in source and \
                    "verify(softplus_naive" not in source:
                texts.append(source[:80])
    return texts


def slider_moves_figure(page, explorer, presses: int = 40) -> tuple[bool, str]:
    """Move the explorer's first slider with the keyboard, a few steps at a time, until its
    figure changes (a small step may leave the picture as it was, e.g. no count changes)."""
    image = explorer.locator(".widget-image").first
    before = image.screenshot()
    handle = explorer.locator(".widget-slider .noUi-handle").first
    handle.focus()
    for _ in range(presses // 4):
        for _ in range(4):
            page.keyboard.press("ArrowRight")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            page.wait_for_timeout(250)
            if image.screenshot() != before:
                return True, ""
    return False, f"the slider moved {presses} steps but the figure stayed the same"


def check_explorers(page, notebook: str, presses: int = 40) -> list[str]:
    problems = []
    if page.get_by_text("official Jupyter news").count():  # NO_NEWS removes it
        problems.append("JupyterLab's news pop-up is shown")
    if page.get_by_text("Error displaying widget").count():
        problems.append("Error displaying widget")
    explorers = page.locator(".jp-OutputArea-output > .widget-vbox").filter(
        has=page.locator(".widget-image")).filter(has=page.locator(".widget-slider"))
    if explorers.count() == 0:
        problems.append("no explorer with a slider and a figure rendered")
    for index in range(explorers.count()):
        explorer = explorers.nth(index)
        explorer.scroll_into_view_if_needed()
        moved, why = slider_moves_figure(page, explorer, presses)
        if not moved:
            problems.append(f"explorer {index + 1}: {why}")
    return problems


@pytest.mark.parametrize("notebook", WIDGET_NOTEBOOKS)
def test_explorers_render_and_answer_the_keyboard(browser, lab, notebook):
    with notebook_page(browser, lab, notebook) as page:
        try:
            problems = check_explorers(page, notebook) + [
                f"error in cell: {text}"
                for text in errors_shown(page, lab.root / "notebooks" / notebook)]
        finally:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"{Path(notebook).stem}.png"), full_page=False)
    assert not problems, f"{notebook}: {problems}"
    assert kernel_ids(lab) == set(), "a notebook's kernel outlived its test"


def test_welcome_notebook_runs_cleanly(browser, lab):
    with notebook_page(browser, lab, "00_welcome_and_setup.ipynb") as page:
        try:
            assert page.get_by_text("6 CPU rows, all passed").count() == 1
            assert not errors_shown(page)
        finally:
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "00_welcome_and_setup.png"))
    assert kernel_ids(lab) == set(), "the welcome notebook's kernel outlived its test"


def test_the_check_fails_on_a_broken_widget(browser, lab):
    """A callback that raises leaves the figure unchanged: the check above must notice."""
    broken = nbformat.v4.new_notebook()
    broken.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
    broken.cells.append(nbformat.v4.new_code_cell(
        "import ipywidgets as w\n"
        "from helpers.widgets import ThresholdExplorer\n"
        "import torch\n"
        "g = torch.Generator().manual_seed(0)\n"
        "explorer = ThresholdExplorer(torch.randint(0, 2, (50,), generator=g), "
        "torch.rand(50, generator=g, dtype=torch.float64), threshold=0.5)\n"
        "def broken(change):\n"
        "    raise RuntimeError('a broken callback')\n"
        "explorer.box.unobserve_all('value')\n"
        "explorer.box.observe(broken, names='value')\n"
        "explorer"))
    nbformat.write(broken, lab.root / "notebooks" / "zz_broken_widget.ipynb")
    with notebook_page(browser, lab, "zz_broken_widget.ipynb") as page:
        # a working explorer's figure changes within 4 presses; 8 (10 s of waiting) prove it stuck
        problems = check_explorers(page, "zz_broken_widget.ipynb", presses=8)
    assert kernel_ids(lab) == set()
    assert any("figure stayed the same" in p for p in problems), problems
