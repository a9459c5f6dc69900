"""Settings and Usage in the real app, in Debian's Chromium (see /work/shared/ui-testing.md).

The real app (``python -m cli --web``) starts with no LLM provider;
a provider pointing at the fake OpenAI API (run here on its own loop in a
thread) is added through the Settings form with Test connection and the
model picker, a chat round trip then goes through it, and the Usage view
shows that call next to a week of earlier calls seeded into the store. The
tests are sync: sync Playwright must not share a thread with a running
asyncio loop. One Chromium, one app and one page serve the module.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_api import FakeOpenAI
from tests.ui.browser_support import (
    CHROMIUM,
    LOAD_TIMEOUT_MS,
    MORE_TAB,
    SCREENSHOTS,
    FakesThread,
    app_args,
    brightness,
    clean_env,
    drawn_in_theme,
    free_port,
    nav,
    open_app,
    screenshot,
    serve,
)

STEP_TIMEOUT_MS = 15_000
INPUT_SPOT = {"x": 24, "y": 20}
"""Where to click a text field: its input (the node's middle can be the help below it)."""
API_KEY = "sk-browser-test-key"
MODELS = ("fake-model", "fake-model-large")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


def _seed_history(data_dir: Path, loop: asyncio.AbstractEventLoop) -> None:
    """A week of earlier LLM calls, so the charts have days to compare (and a failed call).

    The store creates its schema on ``loop`` (this thread may be Playwright's).
    """
    from pyclaw_app.store import Store

    async def create() -> Path:
        store = await Store(data_dir).open()
        await store.close()
        return Path(store.db.path)

    db_path = asyncio.run_coroutine_threadsafe(create(), loop).result(timeout=30)
    now = time.time()
    rows = []
    for day in range(1, 7):
        for n in range(3 + day % 3):
            rows.append((now - day * 86400 - n * 60, "telegram", "openai-main", "gpt-4o",
                         800 + 120 * n + 40 * day, 150 + 30 * n, 600.0 + 90 * n + 20 * day,
                         0.004 + 0.001 * n, None))
        rows.append((now - day * 86400 - 600, "slack", "anthropic", "claude-sonnet",
                     1200 + 100 * day, 300, 1400.0 + 50 * day, 0.009,
                     "rate limited" if day == 3 else None))
    with contextlib.closing(sqlite3.connect(db_path)) as conn, conn:
        conn.executemany(
            "INSERT INTO llm_calls (ts, message_id, channel, provider, model, input_tokens,"
            " output_tokens, latency_ms, cost, error) VALUES (?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows)


class _FakeOpenAIThread(FakesThread):
    """FakeOpenAI (key required, two models) on its own loop thread."""

    def __init__(self) -> None:
        self.server = FakeOpenAI(api_key=API_KEY, models=MODELS)
        super().__init__(self.server)


@pytest.fixture(scope="module")
def openai() -> Iterator[_FakeOpenAIThread]:
    with _FakeOpenAIThread() as running:
        yield running


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, openai: _FakeOpenAIThread
        ) -> Iterator[tuple[str, Path, Path]]:
    """(url, config, log) of the real app with no provider yet and a week of usage history."""
    tmp = tmp_path_factory.mktemp("settings_app")
    config = tmp / "config.yaml"
    config.write_text("channels:\n  local: {type: local}\n")
    _seed_history(tmp / "data", openai.loop)
    port = free_port()
    log = tmp / "app.log"
    env = clean_env(PYCLAW_SECRETS="file")  # never the machine's keyring
    with serve(app_args(port, tmp / "data", config), port, log, env) as url:
        yield url, config, log


@pytest.fixture(scope="module")
def page(browser: Any, app: tuple[str, Path, Path]) -> Iterator[Any]:
    """One page for the module: the Usage test reads the call the Settings test enabled."""
    tab = open_app(browser, app[0], "Settings", 1360, 900)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield tab
    tab.close()


def _fill(page: Any, label: str, text: str, *, exact: bool = True, attempts: int = 3) -> Any:
    """Type into a text field; again if Flutter's editing host was not attached in time.

    Flutter attaches its text-editing host on focus, and under load a fill can
    land before it and be lost (seen with the password field).
    """
    field = page.get_by_label(label, exact=exact)
    field.wait_for(timeout=STEP_TIMEOUT_MS)
    for _ in range(attempts - 1):
        field.click(position=INPUT_SPOT)
        field.fill(text)
        with contextlib.suppress(AssertionError):
            expect(field).to_have_value(text, timeout=3000)
            return field
    field.click(position=INPUT_SPOT)
    field.fill(text)
    expect(field).to_have_value(text, timeout=STEP_TIMEOUT_MS)
    return field


def _choose(page: Any, label: str, option: str) -> None:
    """Open a Dropdown (a button named by its label, here) and pick an option by its text."""
    page.get_by_role("button", name=label, exact=True).click()
    page.get_by_role("button", name=option, exact=True).click()


BACKGROUND = (1300, 860)
"""A pixel of the Settings page's background at this module's viewport."""


def _open_settings(page: Any, url: str) -> None:
    """``url``'s Settings in ``page``, once its semantics show the Appearance section."""
    page.goto(f"{url}/settings")
    placeholder = page.locator("flt-semantics-placeholder")
    placeholder.wait_for(state="attached", timeout=LOAD_TIMEOUT_MS)
    placeholder.dispatch_event("click")
    page.get_by_text("Appearance").wait_for(timeout=LOAD_TIMEOUT_MS)


def _wait_text(page: Any, text: str, log: Path) -> None:
    """Wait for a text; on timeout, keep a picture and show the app's log in the failure."""
    try:
        page.get_by_text(text).wait_for(timeout=STEP_TIMEOUT_MS)
    except playwright_sync.Error:
        picture = log.with_name("failure.png")
        page.screenshot(path=str(picture))
        pytest.fail(f"{text!r} did not appear (picture: {picture}); app log:\n"
                    f"{log.read_text()[-3000:]}")


def test_a_add_provider_with_test_connection(page: Any, openai: _FakeOpenAIThread,
                                            app: tuple[str, Path, Path]) -> None:
    page.get_by_role("button", name="Settings").click()
    page.get_by_text("No provider yet", exact=False).wait_for(timeout=STEP_TIMEOUT_MS)
    page.get_by_role("button", name="Add provider").click()
    page.get_by_text("Add a provider").wait_for(timeout=STEP_TIMEOUT_MS)

    _fill(page, "Name *", "browser-llm")
    _fill(page, "Base URL", openai.server.base_url)
    _fill(page, "API key", API_KEY)
    _fill(page, "Model *", "fake-model")
    page.get_by_role("button", name="Test connection").click()
    _wait_text(page, "2 models available", app[2])
    _choose(page, "Available models", "fake-model-large")
    # (the input's DOM value only follows the canvas when focused: the saved row below says it)
    page.get_by_role("button", name="Save provider").click()
    _wait_text(page, "Provider saved — used from the next message.", app[2])
    page.get_by_text("browser-llm", exact=True).wait_for(timeout=STEP_TIMEOUT_MS)
    page.get_by_text(f"openai · fake-model-large · {openai.server.base_url} · API key saved"
                     ).wait_for(timeout=STEP_TIMEOUT_MS)
    config = app[1].read_text()
    assert "browser-llm" in config and API_KEY not in config  # the key went to the store
    assert API_KEY not in page.content()

    # the light theme (flet.toml says "system"; Chromium: light)
    assert brightness(page, *BACKGROUND) > 600
    page.get_by_role("button", name="Dark").click()  # applied at once
    assert drawn_in_theme(page, dark=True, at=BACKGROUND)
    screenshot(page, "settings", settle_ms=1500)  # after the theme's colour animation
    # remembered by this browser: a new session starts dark. A new tab always is one (Flet
    # keeps its session id in the tab's sessionStorage; the theme is in localStorage, carried
    # over); a reload is one only when the server has not yet seen the old connection go,
    # else it resumes the old session, dark already.
    context = page.context.browser.new_context(viewport=page.viewport_size,
                                               storage_state=page.context.storage_state())
    try:
        tab = context.new_page()
        _open_settings(tab, app[0])
        assert drawn_in_theme(tab, dark=True, at=BACKGROUND), "a new session is not dark"
    finally:
        context.close()
    _open_settings(page, app[0])
    assert drawn_in_theme(page, dark=True, at=BACKGROUND), "the reloaded page is not dark"
    page.get_by_role("button", name="Light").click()
    assert drawn_in_theme(page, dark=False, at=BACKGROUND)


def test_b_chat_uses_the_new_provider_and_usage_shows_the_call(
        page: Any, app: tuple[str, Path, Path]) -> None:
    page.get_by_role("button", name="Chat").click()
    _fill(page, "Message", "hello usage", exact=False).press("Enter")
    _wait_text(page, "Echo: hello usage", app[2])

    page.get_by_role("button", name="Usage").click()
    # the view reloads itself after LLM calls; the new row names the provider and model
    page.get_by_text("fake-model-large", exact=True).first.wait_for(timeout=STEP_TIMEOUT_MS)
    page.get_by_text("browser-llm", exact=True).first.wait_for(timeout=STEP_TIMEOUT_MS)
    page.get_by_text("Tokens per day").wait_for(timeout=STEP_TIMEOUT_MS)
    page.wait_for_timeout(1000)  # the bars grow in with an animation
    page.screenshot(path=str(SCREENSHOTS / "usage.png"))

    page.get_by_role("button", name="Today").click()
    expect(page.get_by_text("gpt-4o", exact=True)).to_have_count(0, timeout=STEP_TIMEOUT_MS)
    page.get_by_text("browser-llm", exact=True).first.wait_for(timeout=STEP_TIMEOUT_MS)


def test_c_phone_width(page: Any) -> None:
    """Below 640 px the navigation moves to the bottom bar (Settings and Usage under its
    More) and the cards take the whole width."""
    page.set_viewport_size({"width": 420, "height": 860})
    try:
        # the bar is drawn once the resize reached the app: only then is nav's choice right
        page.get_by_role("tab", name=MORE_TAB).wait_for(timeout=LOAD_TIMEOUT_MS)
        nav(page, "Settings").click()
        page.get_by_role("button", name="Add provider").wait_for(timeout=STEP_TIMEOUT_MS)
        nav(page, "Usage").click()
        page.get_by_text("Tokens per day").wait_for(timeout=STEP_TIMEOUT_MS)
    finally:
        page.set_viewport_size({"width": 1360, "height": 900})
