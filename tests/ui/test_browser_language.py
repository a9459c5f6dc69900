"""The panel's language in a real browser: the system's first, then the one chosen in Settings.

The real app (``python -m cli --web``) starts under a Chinese locale, so the navigation
is in Chinese; choosing English in Settings' Language control shows every view in English
at once, and a reload keeps it (the choice is in the browser's storage, like the theme).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.ui.browser_support import (
    CHROMIUM,
    app_args,
    clean_env,
    free_port,
    nav,
    open_app,
    screenshot,
    serve,
)

STEP_TIMEOUT_MS = 20_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app's URL, started with a Simplified Chinese locale. A provider is set (never
    called), so the first-run guide is not due: it would open over Settings whenever the
    page finishes loading after the test's first click (seen under load)."""
    tmp = tmp_path_factory.mktemp("language_app")
    config = tmp / "config.yaml"
    config.write_text(
        "providers:\n"
        "  - {name: local, base_url: 'http://127.0.0.1:9/v1', model: llama3}\n"
        "channels:\n  local: {type: local}\n")
    port = free_port()
    env = clean_env(PYCLAW_SECRETS="file", LANG="zh_CN.UTF-8", LC_ALL="zh_CN.UTF-8")
    with serve(app_args(port, tmp / "data", config), port, tmp / "app.log", env) as url:
        yield url


def test_the_system_language_first_then_the_chosen_one_even_after_a_reload(
        browser: Any, app: str) -> None:
    page = open_app(browser, app, "设置", 1280, 2400)  # tall: Appearance is on screen
    try:
        expect(nav(page, "渠道")).to_be_visible(timeout=STEP_TIMEOUT_MS)
        nav(page, "设置").click()
        language = page.get_by_role("button", name="语言", exact=True)
        expect(language).to_be_visible(timeout=STEP_TIMEOUT_MS)
        assert screenshot(page, "settings-zh", settle_ms=800).exists()
        language.click()
        page.get_by_role("button", name="English", exact=True).click()
        expect(nav(page, "Settings")).to_be_visible(timeout=STEP_TIMEOUT_MS)
        expect(nav(page, "Channels")).to_be_visible(timeout=STEP_TIMEOUT_MS)
        page.reload()
        placeholder = page.locator("flt-semantics-placeholder")
        placeholder.wait_for(state="attached", timeout=STEP_TIMEOUT_MS * 3)
        placeholder.dispatch_event("click")
        expect(nav(page, "Settings")).to_be_visible(timeout=STEP_TIMEOUT_MS * 3)
        expect(nav(page, "Channels")).to_be_visible(timeout=STEP_TIMEOUT_MS)
        assert nav(page, "设置").count() == 0
    finally:
        page.close()
