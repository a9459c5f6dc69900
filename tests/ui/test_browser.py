"""The app in Flet web mode, driven in Debian's Chromium (see /work/shared/ui-testing.md).

Two servers, each started once per module in a subprocess on a free port:
the views on FakeControlPlane (``serve_fake``), and the real app
(``python -m cli --web``) whose gateway talks to a fake OpenAI API
running here in a thread. The tests are plain sync tests: sync Playwright must
not share a thread with a running asyncio loop, and while it is open it keeps
its own loop running on this thread, which is why the browser is module-scoped
(a session-scoped one breaks every async test collected after this file).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes.openai_api import FakeOpenAI
from tests.ui.browser_support import (
    CHROMIUM,
    SCREENSHOTS,
    FakesThread,
    app_args,
    free_port,
    open_app,
    serve,
)

STEP_TIMEOUT_MS = 10_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def fake_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("fake_app") / "server.log"
    with serve(["-m", "tests.ui.serve_fake", str(port)], port, log) as url:
        yield url


@contextlib.contextmanager
def real_app_with(llm: FakeOpenAI, tmp: Path) -> Iterator[tuple[str, Path]]:
    """(url, server log) of ``pyclaw --web`` on a fresh data dir with ``llm`` as its provider."""
    with FakesThread(llm):
        config = tmp / "config.yaml"
        config.write_text(
            "providers:\n"
            f"  - {{name: fake, base_url: '{llm.base_url}', model: fake-model}}\n")
        port = free_port()
        log = tmp / "server.log"
        with serve(app_args(port, tmp / "data", config), port, log) as url:
            yield url, log


@pytest.fixture(scope="module")
def real_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    with real_app_with(FakeOpenAI(), tmp_path_factory.mktemp("real_app")) as running:
        yield running


def _open(browser: object, url: str, width: int = 1280, height: int = 800) -> object:
    return open_app(browser, url, "Dashboard", width, height)


def _send_chat(page: object, text: str) -> None:
    page.get_by_role("button", name="Chat").click()
    field = page.get_by_label("Message")
    field.wait_for(timeout=STEP_TIMEOUT_MS)
    field.click()  # Flutter attaches its text-editing host on focus; filling earlier can be lost
    field.fill(text)
    playwright_sync.expect(field).to_have_value(text, timeout=STEP_TIMEOUT_MS)
    field.press("Enter")


# -- the views on the fake plane -----------------------------------------------------------


def test_dashboard_shows_channels_config_error_and_live_feed(browser: object,
                                                              fake_app: str) -> None:
    page = _open(browser, fake_app)
    try:
        assert page.url.endswith("/dashboard")
        page.get_by_text("config.yaml:12 channels.matrix.homeserver: field required").wait_for(
            timeout=STEP_TIMEOUT_MS)
        for name in ("telegram · Telegram", "work-slack · Slack", "matrix · Matrix"):
            page.get_by_text(name).wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text("degraded").wait_for(timeout=STEP_TIMEOUT_MS)
        # serve_fake has "alice" write every 3 s: the feed must grow without a reload
        # (a feed row is one semantics node: "received 12:00:01 telegram 1001 alice live ...")
        page.get_by_text("alice live message 1").first.wait_for(timeout=STEP_TIMEOUT_MS)
    finally:
        page.close()


def test_navigation_follows_the_route_and_narrow_layout(browser: object, fake_app: str) -> None:
    page = _open(browser, fake_app)
    try:
        page.get_by_role("button", name="Chat").click()
        page.get_by_label("Message").wait_for(timeout=STEP_TIMEOUT_MS)
        page.wait_for_url("**/chat", timeout=STEP_TIMEOUT_MS)
        page.set_viewport_size({"width": 420, "height": 800})
        # below 640 px the rail gives way to a bottom NavigationBar (tabs)
        page.get_by_role("tab", name="Dashboard").wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_role("tab", name="Dashboard").click()
        page.wait_for_url("**/dashboard", timeout=STEP_TIMEOUT_MS)
        page.get_by_text("Received today").wait_for(timeout=STEP_TIMEOUT_MS)
    finally:
        page.close()


def test_chat_with_the_fake_plane(browser: object, fake_app: str) -> None:
    page = _open(browser, fake_app)
    try:
        _send_chat(page, "ping from the browser")
        page.get_by_text("echo: ping from the browser", exact=True).wait_for(
            timeout=STEP_TIMEOUT_MS)
    finally:
        page.close()


# -- the real app: gateway + fake OpenAI ----------------------------------------------------


def test_real_app_chat_round_trip_then_dashboard_feed(browser: object,
                                                      real_app: tuple[str, Path]) -> None:
    url, log = real_app
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        page = _open(browser, url)
    except playwright_sync.Error as exc:
        pytest.fail(f"the app did not come up ({exc.message.splitlines()[0]}); server log:\n"
                    f"{log.read_text()[-4000:]}")
    try:
        _send_chat(page, "hello pyclaw")
        page.get_by_text("Echo: hello pyclaw", exact=True).wait_for(timeout=STEP_TIMEOUT_MS)
        # docs/screenshots/chat.png is test_browser_chat's (Markdown, code, a long reply)

        page.get_by_role("button", name="Dashboard").click()
        page.get_by_text("Live traffic").wait_for(timeout=STEP_TIMEOUT_MS)
        # a feed row reads as one line of its columns: "12:00:01 local in you hello pyclaw
        # 3 ms"; a reply's person is the chat it went to
        page.get_by_text("you hello pyclaw").wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text("to app Echo: hello pyclaw").wait_for(timeout=STEP_TIMEOUT_MS)
        page.wait_for_timeout(500)  # the rail's selection animation, for a clean picture
        page.screenshot(path=str(SCREENSHOTS / "dashboard.png"))
    finally:
        page.close()
