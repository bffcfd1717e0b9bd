"""Headless Chromium for the Manager's tests, driven by Playwright with the system's chromium
(never a downloaded browser). A missing browser skips the test with the reason, except in CI
(CI=true), where it fails. Every step's screenshot is saved under tests/artifacts/manager/."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers.require import require_binary

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "manager"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}


def require_playwright() -> Any:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        hint = "pip install playwright (the `test` extras); never `playwright install`"
        if os.environ.get("CI") == "true":
            pytest.fail(f"playwright is required in CI: {hint}", pytrace=False)
        pytest.skip(f"playwright not installed: {hint}")
    return async_playwright


class Shots:
    """Numbered screenshots of one test, kept as artifacts for people to look at."""

    def __init__(self, name: str) -> None:
        self.folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "-", name)
        self.folder.mkdir(parents=True, exist_ok=True)
        for old in self.folder.glob("*.png"):
            old.unlink()
        self.count = 0

    async def take(self, page: Any, step: str) -> None:
        self.count += 1
        await page.screenshot(path=self.folder / f"{self.count:02d}-{step}.png", full_page=True)


@pytest.fixture
async def chromium(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """A started headless Chromium; prints where the test's screenshots are."""
    binary = require_binary("chromium")
    async_playwright = require_playwright()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Shots:
    found = Shots(request.node.name)
    print(f"\nscreenshots: {found.folder}")
    return found


async def at_both_widths(page: Any, shots: Shots, step: str) -> None:
    """The page as it is, on a desktop (1280 px) and on a phone (390 px) screen, then back to
    the desktop."""
    for name, size in (("1280", DESKTOP), ("390", PHONE)):
        await page.set_viewport_size(size)
        await shots.take(page, f"{step}-{name}")
    await page.set_viewport_size(DESKTOP)
