"""What the browser tests share: one headless Chromium per test module (see chromium.py)."""

import pytest


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for the tests of a module, closed after them."""
    from chromium import CHROMIUM, CHROMIUM_ARGS, playwright

    with playwright.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
