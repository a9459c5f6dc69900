"""What the browser tests share: one Chromium per test module (tests/ui/browser_support.py
has the rest)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.ui.browser_support import chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_sync = pytest.importorskip("playwright.sync_api")
    with chromium(playwright_sync) as running:
        yield running
