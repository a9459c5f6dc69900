"""A reply streams into the Chat view of the real app, in Chromium, and ends as one bubble.

The real app (``pyclaw --web``) talks to a fake OpenAI that writes its answer
in small chunks with a pause between them, so the reply takes a couple of
seconds: the browser must show it growing (a strict prefix of the answer),
then the full text, in a single assistant bubble. The Dashboard then shows the
messages-per-minute line for the local channel. Helpers and the browser fixture
come from ``test_browser`` (see that module for why everything here is sync).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_api import FakeOpenAI
from tests.ui.browser_support import CHROMIUM
from tests.ui.test_browser import (
    STEP_TIMEOUT_MS,
    _open,
    _send_chat,
    playwright_sync,
    real_app_with,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

QUESTION = "please stream this sentence back slowly so that the chat view can show it growing"
ANSWER = f"Echo: {QUESTION}"
CHUNK_DELAY = 0.15  # x ~12 chunks of 8 characters: about two seconds of writing


@pytest.fixture(scope="module")
def slow_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with real_app_with(FakeOpenAI(chunk_delay=CHUNK_DELAY),
                       tmp_path_factory.mktemp("slow_app")) as running:
        yield running


def _watch_reply(page: object, timeout: float) -> list[str]:
    """Every distinct text of nodes starting "Echo:" seen until the full answer shows."""
    echoes = page.get_by_text(re.compile(r"^Echo:"))
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for text in echoes.all_inner_texts():
            if text not in seen:
                seen.append(text)
        if ANSWER in seen:
            return seen
        page.wait_for_timeout(40)
    pytest.fail(f"the full reply never showed; seen: {seen!r}")


def test_reply_streams_into_one_bubble(browser: object,
                                       slow_app: tuple[str, Path]) -> None:
    url, log = slow_app
    try:
        page = _open(browser, url)
    except playwright_sync.Error as exc:
        pytest.fail(f"the app did not come up ({exc.message.splitlines()[0]}); server log:\n"
                    f"{log.read_text()[-4000:]}")
    try:
        _send_chat(page, QUESTION)
        seen = _watch_reply(page, STEP_TIMEOUT_MS / 1000 * 2)
        partial = [t for t in seen if t != ANSWER]
        assert partial, "the reply appeared all at once, not streamed"
        assert all(ANSWER.startswith(t.rstrip()) for t in partial), seen
        page.wait_for_timeout(500)  # any late redraw would show a second bubble now
        assert page.get_by_text(ANSWER, exact=True).count() == 1

        page.get_by_role("button", name="Dashboard").click()
        page.get_by_text("Messages per minute").wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text("2 in the last hour").wait_for(timeout=STEP_TIMEOUT_MS)
    finally:
        page.close()
