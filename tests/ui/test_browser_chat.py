"""The Chat view of the real app in Chromium: a fenced code block keeps its indentation and
its copy button puts the code on the clipboard, a long reply shown again is collapsed and
opens with "Show more", and "Reset conversation" asks first (that a reload after it shows
nothing old is checked against a real gateway in ``test_chat_view.py``).

The real app (``pyclaw --web``) talks to a fake OpenAI whose answers depend on the
question. Helpers and the browser fixture come from ``test_browser`` (see there why
everything here is sync); the pictures are ``docs/screenshots/chat.png`` and
``chat-phone.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_api import FakeOpenAI
from tests.ui.browser_support import CHROMIUM, assert_no_error_box, screenshot
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

CODE = ('def greet(name: str) -> str:\n    """Say hello."""\n    if name:\n'
        '        return f"Hello, {name}!"\n    return "Hello!"')
CODE_REPLY = (f"Here is a **small** function:\n\n```python\n{CODE}\n```\n\n"
              "Call it as `greet(\"Ada\")`; it returns:\n\n- `Hello, Ada!` with a name\n"
              "- `Hello!` without one")
STORY = "\n\n".join(
    f"Chapter {n}. The gateway kept every word in its journal, answered each one in "
    "order, and never sent a part twice, even when the network dropped halfway through "
    "a reply and the platform asked it to wait." for n in range(1, 13)) + "\n\nThe end."


CODE_LABEL = re.compile(r'def greet\(name: str\) -> str:\n    """Say hello\."""\n    if name:\n'
                        r'        return')
"""The code block as a screen reader gets it: its lines, indentation kept."""
HEIGHT = 1100
"""Tall enough for both replies: Flutter's accessibility tree (which the locators read)
holds only what is on the screen."""


def answer(messages: list[dict[str, Any]]) -> str:
    question = str(next(m for m in reversed(messages) if m.get("role") == "user")["content"])
    if "function" in question:
        return CODE_REPLY
    if "story" in question:
        return STORY
    return f"Echo: {question}"


@pytest.fixture(scope="module")
def chat_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with real_app_with(FakeOpenAI(responder=answer),
                       tmp_path_factory.mktemp("chat_app")) as running:
        yield running


def test_code_blocks_copy_long_replies_open_and_reset_asks(
        browser: Any, chat_app: tuple[str, Path]) -> None:
    url, log = chat_app
    try:
        page = _open(browser, url, height=HEIGHT)
    except playwright_sync.Error as exc:
        pytest.fail(f"the app did not come up ({exc.message.splitlines()[0]}); server log:\n"
                    f"{log.read_text()[-4000:]}")
    expect = playwright_sync.expect
    try:
        _send_chat(page, "Tell me a long story")
        # a reply read as it was written stays open; shown again, it is collapsed
        page.get_by_role("button", name="Show less").wait_for(timeout=STEP_TIMEOUT_MS)
        page = _reopen_chat(browser, page, url)
        the_end = page.get_by_label(re.compile(r"The end\.$"))  # the bubble's text
        more = page.get_by_role("button", name="Show more")
        more.wait_for(timeout=STEP_TIMEOUT_MS)
        expect(the_end).to_have_count(0)

        _send_chat(page, "Can you write me a greeting function?")
        page.get_by_label(CODE_LABEL).wait_for(timeout=STEP_TIMEOUT_MS)
        copy_code = page.get_by_label("Copy code", exact=True)
        copy_code.wait_for(timeout=STEP_TIMEOUT_MS)  # the reply is complete: its code is a card
        assert_no_error_box(page, "chat")
        screenshot(page, "chat")
        page.set_viewport_size({"width": 390, "height": 844})
        page.get_by_role("tab", name="Chat").wait_for(timeout=STEP_TIMEOUT_MS)  # phone layout
        screenshot(page, "chat-phone")
        page.set_viewport_size({"width": 1280, "height": HEIGHT})
        page.get_by_role("button", name="Chat").wait_for(timeout=STEP_TIMEOUT_MS)  # the rail

        copy_code.click()
        page.get_by_text("Copied to the clipboard").last.wait_for(timeout=STEP_TIMEOUT_MS)
        assert page.evaluate("navigator.clipboard.readText()") == CODE

        more.click()
        the_end.wait_for(timeout=STEP_TIMEOUT_MS)

        empty = page.get_by_text(re.compile("^Say hello"))
        reset = page.get_by_role("button", name="Reset conversation")
        reset.click()
        page.get_by_text("Start a new conversation?").wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_role("button", name="Cancel").click()
        expect(page.get_by_text("Start a new conversation?")).to_have_count(0)
        expect(empty).to_have_count(0)  # nothing was reset
        reset.click()
        page.get_by_role("button", name="Reset", exact=True).click()
        empty.wait_for(timeout=STEP_TIMEOUT_MS)
        expect(page.get_by_label(CODE_LABEL)).to_have_count(0)
    finally:
        page.close()


def _reopen_chat(browser: Any, page: Any, url: str) -> Any:
    """The Chat view in a new page (a new session, which reads the history afresh)."""
    page.close()
    page = _open(browser, url, height=HEIGHT)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    page.get_by_role("button", name="Chat").click()
    page.get_by_label("Message", exact=True).wait_for(timeout=STEP_TIMEOUT_MS)
    return page
