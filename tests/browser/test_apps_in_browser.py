"""The classroom apps as a class meets them: `make explore`'s Voila in headless Chromium.

Voila is started with the command of the Makefile's `explore` target (read with `make -n`), on a
free port, and stopped by its process group whatever happens; no kernel it started may outlive
it. Once its kernels run in advance (one per app), each app is opened: the time from navigation
to the explorer's image is printed and bounded, no error is shown, no code, nothing is fetched
from another host, a slider moved with the keyboard changes the image's bytes and the status
line, and leaving the page shuts its kernel down. A second server, with a culling timeout of
seconds, shows that an idle kernel is culled while its page is still open. Skipped, with the
reason, where Chromium or Playwright is missing (the checks of test_widgets_in_browser.py,
imported from it).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import chromium  # noqa: F401 - skips this module, with its reason, without Playwright or Chromium
import psutil
import pytest
from test_widgets_in_browser import SHOTS, free_port, stop

ROOT = Path(__file__).resolve().parents[2]
APPS = sorted(path.name for path in (ROOT / "apps").glob("*.ipynb"))
LOAD_BOUND_S = 30  # generous: a loaded machine takes several times the usual few seconds
KERNEL = "ipykernel_launcher"


def explore_command(port: int) -> tuple[list[str], dict[str, str]]:
    """The Voila command line of `make explore` (`make -n`, on `port`), and its environment."""
    dry_run = subprocess.run(["make", "-n", "explore", f"EXPLORE_PORT={port}"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    lines = dry_run.replace("\\\n", " ").splitlines()
    [line] = [line for line in lines if "/voila " in line]
    words = shlex.split(line)
    environment = {}
    while "=" in words[0] and not words[0].startswith("-"):  # leading VAR=value assignments
        name, _, value = words.pop(0).partition("=")
        environment[name] = value
    return words, environment


@dataclass(frozen=True)
class Voila:
    base: str  # http://127.0.0.1:<port>
    process: subprocess.Popen
    log: Path

    def kernels(self) -> list[psutil.Process]:
        """The kernel processes this server runs (Voila 0.5 has no API that lists them)."""
        try:
            children = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [child for child in children if _is_kernel(child)]

    def kernel(self, kernel_id: str) -> psutil.Process | None:
        """The process of the kernel `kernel_id` (its connection file is named after it)."""
        return next((kernel for kernel in self.kernels()
                     if any(f"kernel-{kernel_id}.json" in word for word in kernel.cmdline())),
                    None)

    def knows(self, kernel_id: str) -> bool:
        """Whether the server still has the kernel (GET /api/kernels/<id>: 200, or 404)."""
        try:
            with urllib.request.urlopen(f"{self.base}/api/kernels/{kernel_id}", timeout=10):
                return True
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise

    def gone(self, kernel_id: str) -> bool:
        return not self.knows(kernel_id) and self.kernel(kernel_id) is None

    def wait_for_pools(self, seconds: float = 300) -> None:
        """Wait until every app has a kernel run in advance (`preheat_kernel`): one kernel per
        app, and all of them quiet (Voila's log says "filled" when a kernel starts, before it has
        run the notebook)."""
        def busy_seconds() -> float:
            total = 0.0
            for kernel in self.kernels():
                try:
                    total += sum(kernel.cpu_times()[:2])
                except psutil.NoSuchProcess:
                    pass
            return total

        def quiet() -> bool:
            before = busy_seconds()
            time.sleep(2)
            return len(self.kernels()) >= len(APPS) and busy_seconds() - before < 0.2

        assert wait_for(quiet, seconds, step=0), \
            f"the apps' kernels were not ready in {seconds} s: {self.log.read_text()[-2000:]}"


def _is_kernel(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE and any(
            KERNEL in word for word in process.cmdline())
    except psutil.NoSuchProcess:
        return False


def wait_until_up(voila: Voila, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if voila.process.poll() is not None:
            raise RuntimeError(f"Voila exited with code {voila.process.returncode}: "
                               f"{voila.log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{voila.base}/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"Voila did not answer at {voila.base} within {seconds} s")


def with_options(command: list[str], **options) -> list[str]:
    """`command` with the value of each `--<option>=` replaced (traitlets refuses an option given
    twice); `option` names are written with `__` for the dot: `MappingKernelManager__cull_interval`.
    """
    command = list(command)
    for name, value in options.items():
        flag = "--" + name.replace("__", ".") + "="
        [index] = [i for i, word in enumerate(command) if word.startswith(flag)]
        command[index] = f"{flag}{value}"
    return command


@contextmanager
def serving(log: Path, **options) -> Iterator[Voila]:
    """`make explore`'s Voila on a free port (with `options` in place of the Makefile's values,
    see `with_options`), stopped at the end; asserts that no kernel it started outlives it."""
    port = free_port()
    command, environment = explore_command(port)
    handle = open(log, "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen([*with_options(command, **options), "--Voila.port_retries=0"],
                               cwd=ROOT,
                               env={**os.environ, **environment}, stdout=handle,
                               stderr=subprocess.STDOUT, start_new_session=True)
    voila = Voila(f"http://127.0.0.1:{port}", process, log)
    seen: dict[int, psutil.Process] = {}
    try:
        wait_until_up(voila)
        yield voila
    finally:
        seen.update({kernel.pid: kernel for kernel in voila.kernels()})
        stop(process)
        handle.close()
        left = [pid for pid, kernel in seen.items() if _is_kernel(kernel)]
        assert not left, f"kernels left running after the server stopped: {left}"


def wait_for(condition, seconds: float, step: float = 0.25) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


@pytest.fixture(scope="module")
def voila(tmp_path_factory):
    with serving(tmp_path_factory.mktemp("voila") / "voila.log") as server:
        server.wait_for_pools()
        yield server


def image_bytes(page) -> bytes:
    """The bytes of the explorer's image (ipywidgets shows them through a blob: URL, a new one
    at every update whether or not the picture changed: compare the bytes, not the URL)."""
    data = page.evaluate("""async () => {
        const image = document.querySelector('img.widget-image');
        const blob = await (await fetch(image.src)).blob();
        return await new Promise(resolve => {
            const reader = new FileReader();
            reader.onload = () => resolve(reader.result.split(',')[1]);
            reader.readAsDataURL(blob);
        });
    }""")
    return base64.b64decode(data)


def open_app(browser, voila: Voila, app: str) -> tuple[object, float, dict[str, str], str]:
    """A new page showing `app`, once the explorer's image is drawn; the seconds from navigation
    to that moment; (filled as the page runs) each URL the page asked of another host, with
    what became of the request: "fetched", or the browser's error ("csp" when
    the server's Content-Security-Policy stopped it before it left); and the page's kernel id."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    elsewhere: dict[str, str] = {}

    def record(request, outcome: str) -> None:
        if not request.url.startswith((voila.base, "data:", "blob:", "about:")):
            elsewhere[request.url] = outcome

    page.on("requestfinished", lambda request: record(request, "fetched"))
    page.on("requestfailed", lambda request: record(request, request.failure or "failed"))
    start = time.monotonic()
    page.goto(f"{voila.base}/voila/render/{app}", wait_until="commit",
              timeout=1000 * LOAD_BOUND_S * 4)
    page.wait_for_function("""() => {
        const image = document.querySelector('img.widget-image');
        return image !== null && image.complete && image.naturalWidth > 0;
    }""", timeout=1000 * LOAD_BOUND_S * 4)
    seconds = time.monotonic() - start
    kernel_id = page.evaluate(
        "() => JSON.parse(document.getElementById('jupyter-config-data').textContent).kernelId")
    return page, seconds, elsewhere, kernel_id


def move_slider(page, presses: int = 12) -> tuple[bytes, bytes, str, str]:
    """Press the right arrow on the first slider's handle until the image changes (a step may
    leave the picture as it was); the image and status before and after."""
    status = page.locator(".widget-html-content").first
    before, status_before = image_bytes(page), status.inner_text()
    page.locator(".widget-slider .noUi-handle").first.focus()
    after = before
    for _ in range(presses):
        page.keyboard.press("ArrowRight")
        if wait_for(lambda: image_bytes(page) != before, 5, step=0.2):
            after = image_bytes(page)
            break
    wait_for(lambda: status.inner_text() != status_before, 5, step=0.2)
    return before, after, status_before, status.inner_text()


def leave(page) -> None:
    """Leave the page, as a student who closes the tab or follows a link: the page's `unload`
    handler asks Voila to shut its kernel down."""
    page.goto("about:blank")
    page.close()


def test_apps_are_found():
    assert APPS == ["learning_rate.ipynb", "regularization.ipynb", "threshold.ipynb",
                    "training_runs.ipynb"]


@pytest.mark.parametrize("app", APPS)
def test_app_loads_and_its_slider_changes_the_figure(browser, voila, app):
    page, seconds, elsewhere, kernel_id = open_app(browser, voila, app)
    try:
        kernel = voila.kernel(kernel_id)
        assert kernel is not None and voila.knows(kernel_id), f"no kernel {kernel_id} runs"
        print(f"\n{app}: loaded in {seconds:.1f} s; kernel RSS "
              f"{kernel.memory_info().rss / 2**20:.0f} MB")
        assert seconds < LOAD_BOUND_S, f"{app} took {seconds:.1f} s to show its explorer"
        assert not page.get_by_text("Error displaying widget").count()
        assert not page.locator("[data-mime-type='application/vnd.jupyter.stderr']").count()
        assert "import" not in page.locator("body").inner_text(), "the code is shown"
        before, after, status_before, status_after = move_slider(page)
        digest = hashlib.sha256(after).hexdigest()[:12]
        print(f"{app}: status before: {status_before[:90]!r}\n{' ' * len(app)}  after:  "
              f"{status_after[:90]!r} (image {len(after)} bytes, sha256 {digest})")
        assert after != before, f"{app}: the slider moved but the image stayed the same"
        assert status_after != status_before, f"{app}: the status line did not change"
        leaks = {url: outcome for url, outcome in elsewhere.items()
                 if outcome not in ("csp", "net::ERR_BLOCKED_BY_CSP")}
        assert not leaks, f"{app} asked other hosts, and the policy did not stop it: {leaks}"
        if elsewhere:
            print(f"{app}: blocked by the Content-Security-Policy: {sorted(elsewhere)}")
    finally:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"app-{Path(app).stem}.png"))
        leave(page)
    assert wait_for(lambda: voila.gone(kernel_id), 30), \
        f"{app}: the kernel {kernel_id} outlived its closed page"


def test_the_index_page_lists_every_app(browser, voila):
    """The page a class opens first (http://127.0.0.1:8866/): every app, nothing from elsewhere
    fetched (font-awesome's stylesheet, which Voila's page names, is stopped by the policy)."""
    page = browser.new_page()
    fetched = []
    page.on("requestfinished", lambda request: None if request.url.startswith(voila.base)
            else fetched.append(request.url))
    try:
        page.goto(f"{voila.base}/")
        for app in APPS:
            page.get_by_text(app, exact=True).wait_for(timeout=30_000)
    finally:
        page.close()
    assert not fetched, f"the index page fetched from other hosts: {fetched}"


def test_an_idle_kernel_is_culled_while_its_page_is_open(browser, tmp_path):
    """The culling of `make explore` with a timeout of seconds instead of minutes: the kernel of a
    page left open and untouched goes; the log says it was culled."""
    log = tmp_path / "voila.log"
    with serving(log, MappingKernelManager__cull_idle_timeout=4,
                 MappingKernelManager__cull_interval=1) as voila:
        page, _, _, kernel_id = open_app(browser, voila, "threshold.ipynb")
        try:
            assert voila.knows(kernel_id) and voila.kernel(kernel_id) is not None
            culled = wait_for(lambda: voila.gone(kernel_id), 40)
            assert not page.is_closed()
        finally:
            page.close()
        assert culled, f"the idle kernel {kernel_id} was not culled"
        assert f"Culling 'idle' kernel 'python3' ({kernel_id})" in log.read_text()
