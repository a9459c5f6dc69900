"""The conversation view and the live traffic columns in the real app, in Debian's Chromium.

The real app (``python -m cli --web``) runs a Telegram channel against the fake Bot API and
the fake OpenAI API (both here, on a loop thread), its token in the data dir's secret file.
A user writes to the bot, once asking for a sum the model works out with the calculator
tool. From Logs' Messages tab the conversation opens as bubbles with the turn collapsed
between question and answer; opened, it names the LLM call. The Dashboard's live traffic has
a header over aligned columns, and on a 390 px phone two lines per message that show the
message whole.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pyclaw_app.secrets import FileSecretStore
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram
from tests.test_conversation import responder
from tests.ui.browser_support import (
    CHROMIUM,
    STEP_TIMEOUT_MS,
    FakesThread,
    app_args,
    assert_no_error_box,
    clean_env,
    free_port,
    open_app,
    picture_on_failure,
    reach,
    screenshot,
    serve,
    wait_until,
)

CHAT_ID = 5151
LONG = "Could you remind me what we planned for the weekend trip to the lake?"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


class _Fakes(FakesThread):
    def __init__(self) -> None:
        self.telegram = FakeTelegram()
        self.openai = FakeOpenAI()
        self.openai.responder = responder
        super().__init__(self.telegram, self.openai)


@pytest.fixture(scope="module")
def fakes() -> Iterator[_Fakes]:
    with _Fakes() as running:
        yield running


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, fakes: _Fakes) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("conversation_app")
    FileSecretStore(tmp / "data" / "secrets.json").set("channels.telegram.token",
                                                       fakes.telegram.token)
    config = tmp / "config.yaml"
    config.write_text(
        "providers:\n"
        f"  - {{name: fake, base_url: '{fakes.openai.base_url}', model: fake-model}}\n"
        "channels:\n"
        "  local: {type: local}\n"
        "  telegram:\n"
        "    type: telegram\n"
        f"    base_url: '{fakes.telegram.url}/bot'\n"
        "    poll_timeout: 1\n"
        "    dm_policy: open\n"
        "    stream_replies: false\n")
    port = free_port()
    env = clean_env(PYCLAW_SECRETS="file")
    with serve(app_args(port, tmp / "data", config), port, tmp / "app.log", env) as url:
        yield url


def _talk(fakes: _Fakes, text: str, replies: int) -> None:
    fakes.call(fakes.telegram.inject_message, CHAT_ID, text)
    sent = wait_until(lambda: len(fakes.call(fakes.telegram.sent_to, CHAT_ID)) >= replies,
                      timeout=20.0)
    assert sent, f"no reply to {text!r}"


def test_a_conversation_from_logs_and_the_traffic_columns(browser: Any, app: str,
                                                          fakes: _Fakes) -> None:
    page = open_app(browser, app, "Logs", 1280, 860)  # the gateway starts with the page
    with picture_on_failure(page, "conversation"):
        _talk(fakes, "hello there", 1)
        _talk(fakes, "calc 6*7", 2)
        _talk(fakes, LONG, 3)
        page.get_by_role("button", name="Logs").click()
        page.get_by_role("tab", name="Messages").click()
        page.get_by_text("calc 6*7").first.wait_for(timeout=STEP_TIMEOUT_MS)
        for attempt in range(3):  # a click on a row being replaced as the tab reloads is lost
            page.get_by_text("calc 6*7").first.click()
            try:
                page.get_by_role("button", name="Open conversation").wait_for(
                    timeout=STEP_TIMEOUT_MS // 3)
                break
            except playwright_sync.TimeoutError:
                if attempt == 2:
                    raise
        page.get_by_role("button", name="Open conversation").click()
        page.get_by_role("button", name="Back to Logs").wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text("The answer is 42").wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text("Echo: hello there").wait_for(timeout=STEP_TIMEOUT_MS)
        summary = page.get_by_text("2 LLM calls · 1 tool call", exact=False)
        expect(page.get_by_text("LLM call  fake · fake-model")).to_have_count(0)
        summary.first.click()  # collapsed until asked
        page.get_by_text("LLM call  fake · fake-model").first.wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text("Tool calculate").wait_for(timeout=STEP_TIMEOUT_MS)
        question = page.get_by_text("calc 6*7").first.bounding_box()
        answer = page.get_by_text("The answer is 42").first.bounding_box()
        assert question and answer and question["x"] > answer["x"]  # user right, bot left
        assert_no_error_box(page, "the conversation view")
        screenshot(page, "conversation")

    with picture_on_failure(page, "traffic"):
        page.get_by_role("button", name="Dashboard").click()
        header = [page.get_by_text(label, exact=True) for label in
                  ("Time", "Channel", "Direction", "Person", "Message", "Status")]
        reach(page, header[0])
        boxes = [h.bounding_box() for h in header]
        assert all(boxes) and len({round(b["y"]) for b in boxes}) == 1  # one header row
        assert [b["x"] for b in boxes] == sorted(b["x"] for b in boxes)
        # a feed row is one node of the accessibility tree: it starts under the header
        row = page.get_by_text(LONG).first.bounding_box()
        assert row is not None and abs(row["x"] - boxes[0]["x"]) < 12
        assert row["x"] + row["width"] > boxes[5]["x"]  # and runs to the Status column
        assert_no_error_box(page, "the dashboard")
        screenshot(page, "traffic")

    with picture_on_failure(page, "traffic-phone"):
        page.set_viewport_size({"width": 390, "height": 844})
        expect(page.get_by_text("Direction", exact=True)).to_have_count(0,
                                                                        timeout=STEP_TIMEOUT_MS)
        row = reach(page, page.get_by_text(LONG).first).bounding_box()
        assert row is not None and row["width"] > 300  # the message, not five characters
        assert row["height"] > 40  # its own lines under the who-and-when line
        assert_no_error_box(page, "the dashboard on a phone")
        heading = page.get_by_text("Live traffic", exact=True).bounding_box()
        assert heading is not None
        page.mouse.move(heading["x"] + 10, heading["y"] + 5)  # over the page, not the feed
        page.mouse.wheel(0, 2000)  # the feed fills the picture
        page.mouse.move(2, 2)
        screenshot(page, "traffic-phone")
    page.close()
