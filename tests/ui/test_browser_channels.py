"""Channels and Logs in the real app, in Debian's Chromium (see /work/shared/ui-testing.md).

The real app (``python -m cli --web``) runs in a subprocess; the
fake Telegram Bot API and the fake OpenAI API run here on their own event
loop in a thread. Telegram is found in the Add channel catalog (categories,
search), configured through the generated form, goes online, answers a message
at the fake, and its lines show up in Logs. The tests are sync: sync Playwright
must not share a thread with a running asyncio loop. One Chromium and one app
serve the whole module.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyclaw_app.control.admin import channel_types
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram
from tests.ui.browser_support import (
    CHROMIUM,
    SCREENSHOTS,
    STEP_TIMEOUT_MS,
    FakesThread,
    app_args,
    choose,
    clean_env,
    click,
    fill,
    free_port,
    open_app,
    picture_on_failure,
    reach,
    screenshot,
    serve,
    wait_until,
)

CHAT_ID = 4242

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


class _Fakes(FakesThread):
    """FakeTelegram and FakeOpenAI on one loop thread; ``call`` runs code there."""

    def __init__(self) -> None:
        self.telegram = FakeTelegram()
        self.openai = FakeOpenAI()
        super().__init__(self.telegram, self.openai)


@pytest.fixture(scope="module")
def fakes() -> Iterator[_Fakes]:
    with _Fakes() as running:
        yield running


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, fakes: _Fakes) -> Iterator[str]:
    """The real app with only the local chat configured; Telegram is added through the UI."""
    tmp = tmp_path_factory.mktemp("channels_app")
    config = tmp / "config.yaml"
    config.write_text(
        "providers:\n"
        f"  - {{name: fake, base_url: '{fakes.openai.base_url}', model: fake-model}}\n"
        "channels:\n  local: {type: local}\n")
    port = free_port()
    env = clean_env(PYCLAW_SECRETS="file")  # never the machine's keyring
    with serve(app_args(port, tmp / "data", config), port, tmp / "app.log", env) as url:
        yield url


@pytest.fixture(scope="module")
def page(browser: Any, app: str) -> Iterator[Any]:
    """One page for the module: test (b) reads the logs of the channel test (a) set up."""
    tab = open_app(browser, app, "Channels", 1360, 900)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield tab
    tab.close()


def _find_in_catalog(page: Any, app: str) -> None:
    """The catalog's categories, its search (as you type, an empty result, back to all),
    the bundled logos, and its pictures at desktop and phone width."""
    catalog = channel_types()
    page.get_by_role("checkbox", name="Chat apps").wait_for(timeout=STEP_TIMEOUT_MS)
    logo = page.request.get(f"{app}/icons/channels/telegram.svg")  # served from assets/
    assert logo.ok and "<svg" in logo.text()
    screenshot(page, "channel-catalog", height=1400)
    page.emulate_media(color_scheme="dark")  # the theme follows the system's
    screenshot(page, "channel-catalog-dark", height=1400, settle_ms=1500)  # the theme fades
    page.emulate_media(color_scheme="light")
    before = page.viewport_size
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("button", name="Add LINE").wait_for(timeout=STEP_TIMEOUT_MS)
    screenshot(page, "channel-catalog-phone", settle_ms=1500)
    page.set_viewport_size(before)
    page.get_by_role("button", name="Add LINE").wait_for(timeout=STEP_TIMEOUT_MS)  # relaid out

    empty = page.get_by_text("No channel type matches “carrier pigeon”.")
    for _ in range(3):  # a fill that landed while the page was still relaying out is lost
        fill(page, "Search channel types", "carrier pigeon")  # no Enter: filters on change
        if wait_until(lambda: empty.is_visible(), timeout=5.0):
            break
        fill(page, "Search channel types", "")  # so that the next fill is a change
    empty.wait_for(timeout=STEP_TIMEOUT_MS)
    expect(page.get_by_role("button", name=re.compile(r"^Add (?!channel$)"))).to_have_count(0)
    click(page, "Show every channel type")
    expect(page.get_by_text("No channel type matches", exact=False)).to_have_count(0)

    page.get_by_role("checkbox", name="Team chat").click()
    page.get_by_role("button", name="Add Slack").wait_for(timeout=STEP_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Add Telegram")).to_have_count(0)
    page.get_by_role("checkbox", name="All").click()

    fill(page, "Search channel types", "tele")
    page.get_by_text(f"1 of {len(catalog)} channel types").wait_for(timeout=STEP_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Add Slack")).to_have_count(0)


def test_a_configure_telegram_through_the_form(page: Any, app: str, fakes: _Fakes) -> None:
    with picture_on_failure(page, "channels"):
        telegram = fakes.telegram
        page.get_by_role("button", name="Channels").click()
        page.get_by_text("Available channel types").wait_for(timeout=STEP_TIMEOUT_MS)
        _find_in_catalog(page, app)
        click(page, "Add Telegram")  # the only result
        page.get_by_text("Add a Telegram channel").wait_for(timeout=STEP_TIMEOUT_MS)

        fill(page, "Bot token *", telegram.token)
        # the endpoint and the polling wait are in the collapsed advanced section
        reach(page, page.get_by_role("button", name="Advanced settings")).click()
        fill(page, "Base URL", f"{telegram.url}/bot")
        fill(page, "Poll timeout", "1")
        choose(page, "Direct messages", "Open: anyone")

        click(page, "Test connection")
        page.get_by_text(f"connected as @{telegram.username}").wait_for(timeout=STEP_TIMEOUT_MS)
        # (docs/screenshots/channel-form.png is taken by test_browser_forms.py)

        click(page, "Save")
        page.get_by_text("Configured", exact=True).wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text("telegram · Telegram").wait_for(timeout=STEP_TIMEOUT_MS)
        expect(page.get_by_text("online", exact=True)).to_have_count(2, timeout=STEP_TIMEOUT_MS)

        fakes.call(telegram.inject_message, CHAT_ID, "hello from the browser test")
        sent = wait_until(lambda: fakes.call(telegram.sent_to, CHAT_ID))
        assert sent and sent[0].text == "Echo: hello from the browser test"
        assert telegram.token not in page.content()
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOTS / "channels.png"))


def _click_until_shown(page: Any, target: Any, shown: Any, attempts: int = 3) -> None:
    """Click ``target`` until ``shown`` appears: opening the Messages tab reloads its rows,
    and a click that lands on a row while it is being replaced opens nothing (as for a
    person, who clicks again)."""
    for attempt in range(attempts):
        target.first.click()
        try:
            shown.first.wait_for(timeout=STEP_TIMEOUT_MS // attempts)
            return
        except playwright_sync.TimeoutError:
            if attempt == attempts - 1:
                raise


def test_b_logs_filtered_to_that_channel(page: Any) -> None:
    with picture_on_failure(page, "logs"):
        page.get_by_role("button", name="Logs").click()
        page.get_by_role("tab", name="Log lines").wait_for(timeout=STEP_TIMEOUT_MS)
        choose(page, "Channel", "telegram")
        page.get_by_text("configuration applied").first.wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text("started").first.wait_for(timeout=STEP_TIMEOUT_MS)
        expect(page.get_by_text("local", exact=True)).to_have_count(0)
        page.get_by_role("tab", name="Messages").click()
        _click_until_shown(page, page.get_by_text("hello from the browser test"),
                           page.get_by_text("LLM calls"))
        page.get_by_text("fake-model").first.wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_role("tab", name="Log lines").click()  # the lines beside the detail
        page.get_by_text("configuration applied").first.wait_for(timeout=STEP_TIMEOUT_MS)
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOTS / "logs.png"))

        with page.expect_download(timeout=STEP_TIMEOUT_MS) as download:
            page.get_by_role("button", name="Export JSONL").click()
        lines = Path(download.value.path()).read_text("utf-8").splitlines()
        assert lines and all('"channel": "telegram"' in line for line in lines)
