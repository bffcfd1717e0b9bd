"""Fixtures of the Manager's browser tests, and where their screenshots went."""

from __future__ import annotations

import pytest

from tests.web.browser import ARTIFACTS, chromium, shots

__all__ = ["chromium", "shots"]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    taken = sorted(ARTIFACTS.glob("*/*.png")) if ARTIFACTS.exists() else []
    if taken:
        terminalreporter.write_line(f"Manager screenshots ({len(taken)}): {ARTIFACTS}")
