"""Chromium for the browser tests: where it is and the flags it runs with (conftest.py gives each
test module one browser).

The location is a setting: the environment variable COURSE_CHROMIUM, by default Debian's
/usr/bin/chromium (Playwright cannot download its own browsers everywhere). Importing this module
skips the importing test module, with the reason, when Playwright or Chromium is missing.
"""

import os
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("COURSE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic",
                 "--no-first-run"]

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"no Chromium at {CHROMIUM}: set COURSE_CHROMIUM to its path, or install "
                "Debian's package 'chromium' (.ci/run installs it)", allow_module_level=True)
