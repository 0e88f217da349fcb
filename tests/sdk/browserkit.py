"""Chromium for the browser tests: Debian's /usr/bin/chromium driven by Playwright (never a browser
download), one per test module (the `browser` fixture in conftest.py), screenshots kept in
target/screenshots (CI keeps them as artifacts).

    shot(page, "reset", backend, "1-form")   # target/screenshots/reset-1-form-sqlite.png
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOTS = REPO_ROOT / "target" / "screenshots"


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the browser tests cannot run: {reason}")
    pytest.skip(reason)


def launch() -> Iterator:
    """A headless Chromium, closed when the generator is (a fixture body)."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"{CHROMIUM} is missing: apt-get install chromium (Debian's package; Playwright's own browser download is not used)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        _unavailable(f"the playwright package is not installed ({e}): pip install -r tests/sdk/requirements.txt")
    pw = sync_playwright().start()
    try:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    except BaseException:
        pw.stop()
        raise
    try:
        yield b
    finally:
        b.close()
        pw.stop()


def shot(page, prefix: str, backend: str, name: str):
    """A full-page screenshot `{prefix}-{name}-{backend}.png`; its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{prefix}-{name}-{backend}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 0
    return path
