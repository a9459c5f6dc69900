"""The Chat view of the real app in Chromium shows the file the assistant sent: the model
(the OpenAI fake) calls the real ``send_file`` tool, the chip with the file's name, kind and
size appears above the reply it came with, and its save button downloads the very bytes
the gateway stored (web mode: Flet's FilePicker.save_file with the bytes is a browser
download). Shown again in a new session, the file is still in its place.

Helpers and the browser fixture come from ``test_browser`` and ``browser_support``; the
picture is ``docs/screenshots/chat-files.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_api import FakeOpenAI
from tests.test_chat_files_plane import NOTES, writes_notes
from tests.ui.browser_support import CHROMIUM, assert_no_error_box, screenshot
from tests.ui.test_browser import STEP_TIMEOUT_MS, _open, _send_chat, playwright_sync, real_app_with

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]


@pytest.fixture(scope="module")
def files_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with real_app_with(FakeOpenAI(responder=writes_notes),
                       tmp_path_factory.mktemp("chat_files_app")) as running:
        yield running


CHIP = re.compile(rf"^shopping\.md\nFile \(MD\) · {len(NOTES.encode())} bytes\nyour list$")
"""The chip with its caption, as a screen reader (and the locator) gets it."""


def _top(locator: Any) -> float:
    box = locator.bounding_box(timeout=STEP_TIMEOUT_MS)
    assert box is not None
    return float(box["y"])


def test_a_sent_file_is_a_chip_above_its_reply_and_downloads_its_bytes(
        browser: Any, files_app: tuple[str, Path]) -> None:
    url, log = files_app
    try:
        page = _open(browser, url)
    except playwright_sync.Error as exc:
        pytest.fail(f"the app did not come up ({exc.message.splitlines()[0]}); server log:\n"
                    f"{log.read_text()[-4000:]}")
    try:
        _send_chat(page, "Put my shopping list in a file")
        answer = page.get_by_text("Here is your list.")
        answer.wait_for(timeout=STEP_TIMEOUT_MS)
        name = page.get_by_label(CHIP)  # the file is read as one message: name, kind, size
        name.wait_for(timeout=STEP_TIMEOUT_MS)
        assert _top(name) < _top(answer)  # sent before the answer, shown before it
        assert_no_error_box(page, "chat with a file")
        screenshot(page, "chat-files")

        with page.expect_download(timeout=STEP_TIMEOUT_MS) as download:
            page.get_by_label("Save shopping.md", exact=True).click()
        assert download.value.suggested_filename == "shopping.md"
        assert Path(download.value.path()).read_bytes() == NOTES.encode()
        page.get_by_text("Saved shopping.md (see your browser's downloads).").last.wait_for(
            timeout=STEP_TIMEOUT_MS)

        page.close()
        page = _open(browser, url)  # a new session reads the chat afresh
        page.get_by_role("button", name="Chat").click()
        again = page.get_by_label(CHIP)
        again.wait_for(timeout=STEP_TIMEOUT_MS)
        assert _top(again) < _top(page.get_by_text("Here is your list."))
    finally:
        page.close()
