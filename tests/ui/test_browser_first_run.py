"""The first-run guide in the real app, in Debian's Chromium (see /work/shared/ui-testing.md).

The app (``python -m cli --web``) starts with no provider, and the guide opens by itself.
The OpenAI fake plays the local server: ``PYCLAW_LOCAL_SERVERS`` points the guide's
detection at its random port (and at a closed one, which it must not offer). The test
walks every step, saving a screenshot of each to ``docs/screenshots/first-run-*.png``
(and step 1 at phone width), then checks that the saved provider answers in Chat, that
the finished guide stays closed on the next start, and that Settings opens it again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pyclaw_app.control.first_run import CANDIDATES_ENV, TEST_PROMPT
from tests.fakes.openai_api import FakeOpenAI
from tests.ui.browser_support import (
    CHROMIUM,
    LOAD_TIMEOUT_MS,
    FakesThread,
    app_args,
    assert_no_error_box,
    clean_env,
    free_port,
    open_app,
    screenshot,
    serve,
)

STEP_TIMEOUT_MS = 15_000
INPUT_SPOT = {"x": 24, "y": 20}
MODELS = ("llama3.2", "qwen2.5")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect


class _LocalServerThread(FakesThread):
    def __init__(self) -> None:
        self.server = FakeOpenAI(models=MODELS)
        super().__init__(self.server)


@pytest.fixture(scope="module")
def local_llm() -> Iterator[_LocalServerThread]:
    with _LocalServerThread() as running:
        yield running


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory, local_llm: _LocalServerThread
        ) -> Iterator[tuple[str, Path, Path]]:
    """(url, config, log) of the real app with no provider, its guide looking at the fake."""
    tmp = tmp_path_factory.mktemp("first_run_app")
    config = tmp / "config.yaml"
    config.write_text("channels:\n  local: {type: local}\n")
    port, closed = free_port(), free_port()
    log = tmp / "app.log"
    env = clean_env(PYCLAW_SECRETS="file",  # never the machine's keyring
                    **{CANDIDATES_ENV: f"Ollama={local_llm.server.port},LM Studio={closed}"})
    with serve(app_args(port, tmp / "data", config), port, log, env) as url:
        yield url, config, log


@contextlib.contextmanager
def _picture_on_failure(page: Any, log: Path) -> Iterator[None]:
    try:
        yield
    except (AssertionError, playwright_sync.Error) as exc:
        picture = log.with_name("failure.png")
        page.screenshot(path=str(picture))
        raise AssertionError(f"{str(exc)[:1500]}\n(picture: {picture}); app log:\n"
                             f"{log.read_text()[-3000:]}") from None


def _wait(page: Any, text: str, *, exact: bool = False) -> None:
    page.get_by_text(text, exact=exact).first.wait_for(timeout=STEP_TIMEOUT_MS)


def _click(page: Any, name: str) -> None:
    page.get_by_role("button", name=name, exact=True).click()


def _shot(page: Any, name: str, where: str) -> None:
    assert_no_error_box(page, where)
    screenshot(page, f"first-run-{name}", settle_ms=800)


def test_the_guide_from_first_start_to_a_working_chat(
        browser: Any, app: tuple[str, Path, Path], local_llm: _LocalServerThread) -> None:
    url, config, log = app
    base_url = local_llm.server.base_url
    page = open_app(browser, url, "Settings", 1360, 900)
    try:
        with _picture_on_failure(page, log):
            # 1: opened by itself; the fake is offered, the closed port is not
            _wait(page, "Set up pyclaw")
            _wait(page, f"Found Ollama at {base_url}.", exact=True)  # and nothing else
            _wait(page, "1 · Where do the answers come from?")
            page.get_by_role("button", name="Available models", exact=True).click()
            page.get_by_role("button", name="qwen2.5", exact=True).click()
            _shot(page, "1-provider", "step 1")
            page.set_viewport_size({"width": 390, "height": 844})
            _wait(page, "1 · Where do the answers come from?")
            _shot(page, "1-provider-phone", "step 1 on a phone")
            page.set_viewport_size({"width": 1360, "height": 900})
            _click(page, "Next: test it")

            # 2: a real completion through the fake
            _wait(page, f"Echo: {TEST_PROMPT}")
            _wait(page, f"qwen2.5 answered through 127.0.0.1:{local_llm.server.port}.")
            _shot(page, "2-test", "step 2")
            _click(page, "Save and continue")

            # 3: the local chat is there; the catalog is one click away
            _wait(page, "3 · A first channel")
            expect(page.get_by_role("button", name="Open the channel catalog")).to_have_count(1)
            _shot(page, "3-channel", "step 3")
            _click(page, "Next: pairing")

            # 4: pairing explained
            _wait(page, "4 · Who may talk to the assistant")
            _wait(page, "pyclaw pairing approve CODE")
            _shot(page, "4-pairing", "step 4")
            _click(page, "Finish")

            _wait(page, "pyclaw is set up")
            _wait(page, "Provider ollama saved and answering.")
            _shot(page, "5-done", "the summary")
            saved = config.read_text()
            assert "ollama" in saved and base_url in saved and "qwen2.5" in saved

            _click(page, "Talk to the assistant")
            field = page.get_by_label("Message", exact=False)
            field.wait_for(timeout=STEP_TIMEOUT_MS)
            field.click(position=INPUT_SPOT)
            field.fill("hello guide")
            field.press("Enter")
            _wait(page, "Echo: hello guide")

            # finished: the next start is the dashboard; Settings opens the guide again
            page.goto(url)
            placeholder = page.locator("flt-semantics-placeholder")
            placeholder.wait_for(state="attached", timeout=LOAD_TIMEOUT_MS)
            placeholder.dispatch_event("click")
            _wait(page, "Received today")
            page.wait_for_timeout(1500)
            expect(page.get_by_text("Set up pyclaw")).to_have_count(0)
            page.get_by_role("button", name="Settings").first.click()
            _click(page, "Open the setup guide")
            _wait(page, "Set up pyclaw")
            _wait(page, "1 · Where do the answers come from?")
    finally:
        page.close()
