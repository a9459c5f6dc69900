"""The app in Flet web mode, driven in Debian's Chromium (see /work/shared/ui-testing.md).

Two servers, each started once per module in a subprocess on a free port:
the views on FakeControlPlane (``serve_fake``), and the real app
(``python -m pyclaw_app.cli --web``) whose gateway talks to a fake OpenAI API
running here in a thread. The tests are plain sync tests: sync Playwright must
not share a thread with a running asyncio loop, and while it is open it keeps
its own loop running on this thread, which is why the browser is module-scoped
(a session-scoped one breaks every async test collected after this file).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--enable-unsafe-swiftshader"]
LOAD_TIMEOUT_MS = 30_000
STEP_TIMEOUT_MS = 10_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path,
                   timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port}:\n{log.read_text()[-3000:]}")


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONPATH"] = str(REPO)
    env.pop("DISPLAY", None)  # headless: Flet serves the page and opens no browser
    return env


@contextlib.contextmanager
def _server(args: list[str], port: int, log: Path, env: dict[str, str] | None = None
            ) -> Iterator[str]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, env=env or _clean_env())
    try:
        _wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_sync.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def fake_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    log = tmp_path_factory.mktemp("fake_app") / "server.log"
    with _server(["-m", "tests.ui.serve_fake", str(port)], port, log) as url:
        yield url


class _FakeOpenAIThread:
    """FakeOpenAI on its own event loop in a thread, so sync tests can use it."""

    def __init__(self) -> None:
        from tests.fakes.openai_api import FakeOpenAI

        self.server = FakeOpenAI()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-openai",
                                       daemon=True)

    def __enter__(self) -> _FakeOpenAIThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def real_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(url, server log) of ``pyclaw --web`` on a fresh data dir and a fake OpenAI provider."""
    if not (REPO / "pyclaw_app" / "cli.py").exists():
        pytest.skip("pyclaw_app/cli.py does not exist yet")
    tmp = tmp_path_factory.mktemp("real_app")
    with _FakeOpenAIThread() as openai:
        config = tmp / "config.yaml"
        config.write_text(
            "providers:\n"
            f"  - {{name: fake, base_url: '{openai.server.base_url}', model: fake-model}}\n")
        port = _free_port()
        args = ["-m", "pyclaw_app.cli", "--web", "--host", "127.0.0.1", "--port", str(port),
                "--data-dir", str(tmp / "data"), "--config", str(config)]
        log = tmp / "server.log"
        with _server(args, port, log) as url:
            yield url, log


def _open(browser: object, url: str, width: int = 1280, height: int = 800) -> object:
    """A page with Flutter's semantics tree on, so locators can see the controls."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    placeholder = page.locator("flt-semantics-placeholder")
    placeholder.wait_for(state="attached", timeout=LOAD_TIMEOUT_MS)
    placeholder.dispatch_event("click")
    page.get_by_role("button", name="Dashboard").wait_for(timeout=LOAD_TIMEOUT_MS)
    return page


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
        page.wait_for_timeout(300)  # let the progress ring disappear before the picture
        page.screenshot(path=str(SCREENSHOTS / "chat.png"))

        page.get_by_role("button", name="Dashboard").click()
        page.get_by_text("Live traffic").wait_for(timeout=STEP_TIMEOUT_MS)
        # feed rows read as one line each: "received 12:00:01 local app you hello pyclaw"
        page.get_by_text("you hello pyclaw").wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text("assistant Echo: hello pyclaw").wait_for(timeout=STEP_TIMEOUT_MS)
        page.wait_for_timeout(500)  # the rail's selection animation, for a clean picture
        page.screenshot(path=str(SCREENSHOTS / "dashboard.png"))
    finally:
        page.close()
