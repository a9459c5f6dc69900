"""Health at a glance in the real app, in Debian's Chromium (see /work/shared/ui-testing.md).

The real app (``python -m cli --web``) runs a Telegram channel against the fake Bot API,
which refuses the configured token from the start: the channel fails, and the frame says
so on every view (a badge on Channels, a banner naming the cause with a link to the
channel's logs). Once the fake accepts the token again, Start brings the channel back and
the badge and banner clear. The card offers only the actions of its state, and its strip
shows the hour the errors happened. A provider that fails a real call is counted on
Settings the same way, until its next call works.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.openai_api import FakeOpenAI, Fault
from tests.fakes.telegram_api import FakeTelegram
from tests.ui.browser_support import (
    CHROMIUM,
    FakesThread,
    app_args,
    assert_no_error_box,
    clean_env,
    free_port,
    open_app,
    screenshot,
    serve,
    wait_until,
)

STEP_TIMEOUT_MS = 20_000
CHAT_ID = 5151
REFUSED = "999999:RefusedTokenForTheHealthTest_abcdefgh"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


class _Fakes(FakesThread):
    def __init__(self) -> None:
        self.telegram = FakeTelegram()
        self.good_token = self.telegram.token
        self.telegram.token = REFUSED  # every call with the configured token is a 401
        self.openai = FakeOpenAI()
        super().__init__(self.telegram, self.openai)


@pytest.fixture(scope="module")
def fakes() -> Iterator[_Fakes]:
    with _Fakes() as running:
        yield running


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, fakes: _Fakes) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("health_app")
    config = tmp / "config.yaml"
    config.write_text(
        "providers:\n"
        f"  - {{name: fake, base_url: '{fakes.openai.base_url}', model: fake-model,"
        " max_retries: 0}\n"
        "channels:\n"
        "  local: {type: local}\n"
        "  telegram:\n"
        "    type: telegram\n"
        f"    token: '{fakes.good_token}'\n"
        f"    base_url: '{fakes.telegram.url}/bot'\n"
        "    poll_timeout: 1\n"
        "    dm_policy: open\n")
    port = free_port()
    env = clean_env(PYCLAW_SECRETS="file")
    with serve(app_args(port, tmp / "data", config), port, tmp / "app.log", env) as url:
        yield url


@pytest.fixture(scope="module")
def page(browser: Any, app: str) -> Iterator[Any]:
    tab = open_app(browser, app, "Channels", 1360, 900)
    yield tab
    tab.close()


def _button(page: Any, name: str) -> Any:
    """An icon button, found by its tooltip (which is what a screen reader says)."""
    return page.get_by_label(name, exact=True)


def _nav(page: Any, label: str) -> Any:
    """A navigation destination, whatever its badge says."""
    return page.get_by_role("button", name=re.compile(rf"(^|\s){label} Tab \d"))


def test_a_failed_channel_shows_in_the_frame_on_every_view(page: Any) -> None:
    expect(_nav(page, "1 failed Channels")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    page.get_by_text("Channel telegram is offline").wait_for(timeout=STEP_TIMEOUT_MS)
    page.get_by_text(re.compile("Telegram rejected the bot token")).first.wait_for(
        timeout=STEP_TIMEOUT_MS)
    for view in ("Chat", "Usage", "Dashboard"):  # the frame, not one view
        _nav(page, view).click()
        expect(page.get_by_text("Channel telegram is offline")).to_be_visible()
    expect(_nav(page, "Settings")).not_to_have_accessible_name(re.compile("failed"))

    _nav(page, "Channels").click()
    page.get_by_text("Configured", exact=True).wait_for(timeout=STEP_TIMEOUT_MS)
    # the card offers what a failed channel allows: start it again, or disable it
    expect(_button(page, "Start telegram")).to_be_visible()
    expect(_button(page, "Disable telegram")).to_be_visible()
    expect(_button(page, "Stop telegram")).to_have_count(0)
    expect(_button(page, "Restart telegram")).to_have_count(0)
    # the strip: the current hour has the start failure's error
    page.get_by_text(re.compile(r"^Last 24 h: [1-9]\d* errors? · ")).wait_for(
        timeout=STEP_TIMEOUT_MS)
    hour = re.compile(r"offline \d+ min.*; [1-9]\d* errors?,")  # an hour's tooltip
    expect(page.get_by_text(hour).first).to_be_attached()
    assert_no_error_box(page, "channels with a failed channel")
    screenshot(page, "channels-failed")


def test_the_same_at_phone_width(browser: Any, app: str) -> None:
    phone = open_app(browser, app, "telegram logs", 390, 844)  # the banner's link
    try:
        tab = phone.get_by_role("tab", name="1 failed Channels", exact=True)  # the bottom bar
        expect(tab).to_be_visible(timeout=STEP_TIMEOUT_MS)
        tab.click()
        phone.get_by_text("Channel telegram is offline").wait_for(timeout=STEP_TIMEOUT_MS)
        phone.get_by_text("Configured", exact=True).wait_for(timeout=STEP_TIMEOUT_MS)
        assert_no_error_box(phone, "channels at phone width")
        phone.mouse.move(200, 400)  # no tooltip over the bar in the picture
        phone.wait_for_timeout(1500)
        screenshot(phone, "channels-failed-phone")
    finally:
        phone.close()


def test_the_banner_link_opens_that_channels_logs(page: Any) -> None:
    _button(page, "Open the logs of telegram").click()
    page.get_by_role("tab", name="Log lines").wait_for(timeout=STEP_TIMEOUT_MS)
    page.get_by_text(re.compile("failed to start: .*rejected the bot token")).first.wait_for(
        timeout=STEP_TIMEOUT_MS)
    expect(page.get_by_text("local", exact=True)).to_have_count(0)  # only telegram's lines


def test_start_after_the_fix_clears_the_badge_and_offers_stop(page: Any, fakes: _Fakes) -> None:
    fakes.telegram.token = fakes.good_token
    _nav(page, "Channels").click()
    _button(page, "Start telegram").click()
    expect(_button(page, "Stop telegram")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(_nav(page, "Channels")).not_to_have_accessible_name(re.compile("failed"),
                                                               timeout=STEP_TIMEOUT_MS)
    expect(page.get_by_text("Channel telegram is offline")).to_have_count(0)
    expect(_button(page, "Restart telegram")).to_be_visible()
    expect(_button(page, "Start telegram")).to_have_count(0)
    telegram_day = re.compile(r"Last 24 h: [1-9]\d* errors? · .* · [4-9]\d* state changes")
    page.get_by_text(telegram_day).wait_for(timeout=STEP_TIMEOUT_MS)

    fakes.call(fakes.telegram.inject_message, CHAT_ID, "are you back?")
    sent = wait_until(lambda: fakes.call(fakes.telegram.sent_to, CHAT_ID))
    assert sent and sent[0].text == "Echo: are you back?"


def test_stop_disable_and_enable_offer_only_their_actions(page: Any) -> None:
    _button(page, "Stop telegram").click()
    expect(_button(page, "Start telegram")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(_button(page, "Stop telegram")).to_have_count(0)
    expect(_nav(page, "Channels")).not_to_have_accessible_name(re.compile("failed"))

    _button(page, "Disable telegram").click()
    expect(_button(page, "Enable telegram")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    for gone in ("Start telegram", "Stop telegram", "Restart telegram", "Disable telegram"):
        expect(_button(page, gone)).to_have_count(0)

    _button(page, "Enable telegram").click()
    expect(_button(page, "Stop telegram")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    expect(_button(page, "Enable telegram")).to_have_count(0)


def test_a_failing_provider_is_counted_on_settings_until_it_answers(page: Any,
                                                                    fakes: _Fakes) -> None:
    fakes.call(fakes.openai.faults.append, Fault(status=500))
    fakes.call(fakes.telegram.inject_message, CHAT_ID, "this one fails")
    expect(_nav(page, "1 failed Settings")).to_be_visible(timeout=STEP_TIMEOUT_MS)
    page.get_by_text("Provider fake is failing").wait_for(timeout=STEP_TIMEOUT_MS)

    fakes.call(fakes.telegram.inject_message, CHAT_ID, "and this one works")
    expect(_nav(page, "Settings")).not_to_have_accessible_name(re.compile("failed"),
                                                               timeout=STEP_TIMEOUT_MS)
    expect(page.get_by_text("Provider fake is failing")).to_have_count(0)

