"""Every view of the real app at desktop and phone width, in the light and the dark theme.

One app (the local chat answered by the OpenAI fake, one exchange so no view is empty),
one page per theme (the browser's colour scheme: the app follows the system by default).
Each shot is checked for Flutter error boxes and for the theme it claims, and is saved as
``docs/screenshots/matrix/<view>-<desktop|phone>-<light|dark>.png`` for the README.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.openai_api import FakeOpenAI
from tests.ui.browser_support import (
    CHROMIUM,
    SCREENSHOTS,
    FakesThread,
    app_args,
    assert_no_error_box,
    clean_env,
    drawn_in_theme,
    free_port,
    nav,
    screenshot,
    serve,
    type_into,
)
from views.shell import DESTINATIONS

STEP_TIMEOUT_MS = 20_000
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}
THEMES = ("light", "dark")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


class _Fakes(FakesThread):
    def __init__(self) -> None:
        self.openai = FakeOpenAI()
        super().__init__(self.openai)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("matrix_app")
    with _Fakes() as fakes:
        config = tmp / "config.yaml"
        config.write_text(
            "providers:\n"
            f"  - {{name: fake, base_url: '{fakes.openai.base_url}', model: fake-model}}\n"
            "channels:\n"
            "  local: {type: local}\n")
        port = free_port()
        env = clean_env(PYCLAW_SECRETS="file")
        with serve(app_args(port, tmp / "data", config), port, tmp / "app.log", env) as url:
            yield url


def _open(browser: Any, url: str, theme: str) -> Any:
    width, height = SIZES["desktop"]
    page = browser.new_page(viewport={"width": width, "height": height}, color_scheme=theme)
    page.goto(f"{url}/dashboard")
    placeholder = page.locator("flt-semantics-placeholder")
    placeholder.wait_for(state="attached", timeout=STEP_TIMEOUT_MS * 3)
    placeholder.dispatch_event("click")
    expect(nav(page, "Dashboard")).to_be_visible(timeout=STEP_TIMEOUT_MS * 3)
    return page


def _one_exchange(page: Any) -> None:
    nav(page, "Chat").click()
    field = page.get_by_label("Message", exact=True)
    field.wait_for(timeout=STEP_TIMEOUT_MS)
    type_into(page, field, field, "Hello! What can you do?")
    field.press("Enter")
    page.get_by_text("Echo: Hello! What can you do?").first.wait_for(timeout=STEP_TIMEOUT_MS)


@pytest.mark.parametrize("theme", THEMES)
def test_every_view_at_both_widths(browser: Any, app: str, theme: str) -> None:
    (SCREENSHOTS / "matrix").mkdir(parents=True, exist_ok=True)
    page = _open(browser, app, theme)
    try:
        if theme == THEMES[0]:
            _one_exchange(page)
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            for destination in DESTINATIONS:
                nav(page, destination.label).click()
                page.wait_for_url(re.compile(rf"{re.escape(destination.route)}$"),
                                  timeout=STEP_TIMEOUT_MS)
                where = f"{destination.label} at {size} width, {theme}"
                page.mouse.move(1, 1)  # no tooltip of the button just clicked in the picture
                background = (width - 3, height // 2)  # the view's right edge, half way down
                assert drawn_in_theme(page, dark=theme == "dark", at=background), \
                    f"{where}: not drawn in the {theme} theme"
                name = f"matrix/{destination.route.strip('/')}-{size}-{theme}"
                assert screenshot(page, name, settle_ms=700).exists()
                assert_no_error_box(page, where)
    finally:
        page.close()
