"""Readable forms in the real app, in Debian's Chromium (see /work/shared/ui-testing.md).

The real app (``python -m cli --web``) runs in a subprocess with the fake OpenAI
API configured; the fake Telegram Bot API and a second fake OpenAI run here on a
loop thread. Every view, every channel type's add form and the provider form are
opened and checked for Flet's red error boxes; the Telegram form hides its webhook
fields in polling mode and shows them when the mode changes; the provider form
says "connection refused" and warns before saving a provider that failed its test.
The tests are sync: sync Playwright must not share a thread with a running asyncio
loop. One Chromium, one app and one page serve the module, in order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from pyclaw_app.control.admin import channel_types
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram
from tests.ui.browser_support import (
    CHROMIUM,
    STEP_TIMEOUT_MS,
    FakesThread,
    app_args,
    assert_no_error_box,
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
from views.forms import SAVED_SECRET_NOTE

VIEWS = {"Dashboard": "Live traffic", "Channels": "Available channel types", "Chat": None,
         "Logs": None, "Schedules": "No scheduled jobs", "Usage": "LLM calls",
         "Settings": "Appearance"}
"""Each navigation destination and a text that says its view is drawn (None: its button)."""
WEBHOOK = "Webhook (needs a public HTTPS URL)"
POLLING = "Polling (works behind NAT)"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


class _Fakes(FakesThread):
    def __init__(self) -> None:
        self.telegram = FakeTelegram()
        self.openai = FakeOpenAI()  # the app's own provider
        self.second = FakeOpenAI(models=("m-small", "m-large"))  # added through the form
        super().__init__(self.telegram, self.openai, self.second)


@pytest.fixture(scope="module")
def fakes() -> Iterator[_Fakes]:
    with _Fakes() as running:
        yield running


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, fakes: _Fakes) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("forms_app")
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
    tab = open_app(browser, app, "Channels", 1360, 900)
    yield tab
    tab.close()


def _expand_advanced(page: Any) -> None:
    click(page, re.compile(r"^Advanced settings"))
    page.wait_for_timeout(400)


def _count(page: Any, label: str) -> int:
    return int(page.get_by_label(label, exact=True).count())


def _open(page: Any, destination: str) -> None:
    # a rail destination is named "Channels Tab 2 of 6" (its label and position)
    page.get_by_role("button", name=re.compile(rf"^{destination}( Tab \d+ of \d+)?$")).click()
    ready = VIEWS[destination]
    if ready is not None:
        page.get_by_text(ready).first.wait_for(timeout=STEP_TIMEOUT_MS)
    page.wait_for_timeout(300)


def test_a_no_error_box_in_any_view(page: Any) -> None:
    with picture_on_failure(page, "forms-views"):
        for destination in VIEWS:
            _open(page, destination)
            assert_no_error_box(page, destination)

        # the form that had the red box: Add provider, with its advanced part open
        _open(page, "Settings")
        click(page, "Add provider")
        page.get_by_text("Add a provider").wait_for(timeout=STEP_TIMEOUT_MS)
        assert_no_error_box(page, "Add provider")
        _expand_advanced(page)
        assert_no_error_box(page, "Add provider, advanced")
        click(page, "Cancel")


ADDABLE = [t for t in channel_types() if not t.install]
"""Every channel type the app can add here (one whose SDK is missing offers its install
command instead of a form)."""


def _to_the_end(page: Any) -> None:
    """One long wheel to the end of the view (Flutter stops it at the last control), where
    a form's Advanced settings and Cancel are: no step-by-step scrolling through it."""
    page.mouse.move(page.viewport_size["width"] // 2, page.viewport_size["height"] // 2)
    page.mouse.wheel(0, 50_000)
    page.wait_for_timeout(150)


@pytest.mark.parametrize("kind", ADDABLE, ids=[t.type for t in ADDABLE])
def test_a_no_error_box_in_any_channel_form(page: Any, kind: Any) -> None:
    with picture_on_failure(page, f"forms-form-{kind.type}"):
        search = page.get_by_label("Search channel types", exact=True)
        if not search.is_visible():  # the first form; the others start where Cancel left
            _open(page, "Channels")
        # the catalog's search puts the type's card at the top, not thirty cards down
        fill(page, "Search channel types", kind.title)
        click(page, f"Add {kind.title}")
        page.get_by_text(f"Add a {kind.title} channel").wait_for(timeout=STEP_TIMEOUT_MS)
        assert_no_error_box(page, f"the {kind.title} form")
        if page.get_by_role("button", name=re.compile(r"^Advanced settings")).count():
            _to_the_end(page)
            _expand_advanced(page)
            assert_no_error_box(page, f"the {kind.title} form, advanced")
        _to_the_end(page)
        click(page, "Cancel")
        # the catalog as it was, for the tests after this one (an icon button: its label)
        reach(page, page.get_by_label("Clear search", exact=True)).click()


def test_b_telegram_form_hides_what_does_not_apply(page: Any, fakes: _Fakes) -> None:
    telegram = fakes.telegram
    with picture_on_failure(page, "forms-telegram"):
        _open(page, "Channels")
        click(page, "Add Telegram")
        page.get_by_text("Add a Telegram channel").wait_for(timeout=STEP_TIMEOUT_MS)

        # labels from the models, not field names in title case
        page.get_by_label("Bot token *", exact=True).wait_for(timeout=STEP_TIMEOUT_MS)
        for menu in ("Mode", "Direct messages", "Groups", "Answer in groups"):
            expect(page.get_by_role("button", name=menu, exact=True)).to_have_count(1)
        page.get_by_text("Access: who may talk to the assistant").wait_for()
        for raw in ("Dm Policy", "Base Url", "Token", "Rate Limit Per Minute"):
            expect(page.get_by_label(raw, exact=True)).to_have_count(0)
            expect(page.get_by_text(raw, exact=True)).to_have_count(0)

        # polling: no webhook fields; the advanced ones collapsed until asked for
        assert _count(page, "Webhook URL") == 0 and _count(page, "Webhook secret") == 0
        assert _count(page, "Base URL") == 0
        _expand_advanced(page)
        assert _count(page, "Base URL") == 1 and _count(page, "Poll timeout") == 1

        choose(page, "Mode", WEBHOOK)
        wait_until(lambda: _count(page, "Webhook URL") == 1)
        assert _count(page, "Webhook URL") == 1 and _count(page, "Webhook secret") == 1
        assert _count(page, "Poll timeout") == 0
        assert_no_error_box(page, "the Telegram form in webhook mode")
        choose(page, "Mode", POLLING)
        wait_until(lambda: _count(page, "Webhook URL") == 0)
        assert _count(page, "Webhook URL") == 0 and _count(page, "Poll timeout") == 1

        fill(page, "Bot token *", telegram.token)
        fill(page, "Base URL", f"{telegram.url}/bot")
        fill(page, "Poll timeout", "1")
        choose(page, "Direct messages", "Open: anyone")
        click(page, "Test connection")
        page.get_by_text(f"connected as @{telegram.username}").wait_for(timeout=STEP_TIMEOUT_MS)
        assert_no_error_box(page, "the Telegram form")
        screenshot(page, "channel-form", height=1500)

        click(page, "Save")
        page.get_by_text("telegram · Telegram").wait_for(timeout=STEP_TIMEOUT_MS)
        reach(page, page.get_by_label("Edit telegram", exact=True)).click()  # an icon button
        page.get_by_text("Edit telegram").first.wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text(SAVED_SECRET_NOTE).wait_for(timeout=STEP_TIMEOUT_MS)
        assert telegram.token not in page.content()
        assert_no_error_box(page, "the Telegram edit form")
        click(page, "Cancel")


def test_c_provider_test_says_refused_and_warns_before_saving(page: Any, fakes: _Fakes) -> None:
    refused = free_port()
    with picture_on_failure(page, "forms-provider"):
        _open(page, "Settings")
        click(page, "Add provider")
        page.get_by_text("Add a provider").wait_for(timeout=STEP_TIMEOUT_MS)
        expect(page.get_by_role("button", name="API type", exact=True)).to_have_count(1)
        fill(page, "Name *", "second")
        fill(page, "Base URL", f"http://127.0.0.1:{refused}/v1")
        fill(page, "API key", "sk-second-key")
        fill(page, "Model *", "m-small")
        click(page, "Test connection")
        page.get_by_text(re.compile(r"^connection refused: nothing is listening at "
                                    rf"127\.0\.0\.1:{refused}")).wait_for(
            timeout=STEP_TIMEOUT_MS)

        click(page, "Save provider")
        page.get_by_text("Save a provider that failed its test?").wait_for(
            timeout=STEP_TIMEOUT_MS)
        click(page, "Keep editing")
        expect(page.get_by_text("Save a provider that failed its test?")).to_have_count(0)

        fill(page, "Base URL", fakes.second.base_url)
        click(page, "Test connection")
        page.get_by_text("2 models available").wait_for(timeout=STEP_TIMEOUT_MS)
        expect(page.get_by_role("button", name="Available models", exact=True)).to_have_count(1)
        assert_no_error_box(page, "Add provider after a test")
        screenshot(page, "provider-form", height=1100)
        click(page, "Save provider")  # passed: no warning
        page.get_by_text("Provider saved — used from the next message.").wait_for(
            timeout=STEP_TIMEOUT_MS)
        page.get_by_text("Test passed: 2 models available").wait_for(timeout=STEP_TIMEOUT_MS)
        assert "sk-second-key" not in page.content()
        assert_no_error_box(page, "Settings after saving a provider")
