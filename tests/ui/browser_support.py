"""What every browser test needs: the app in a subprocess, fakes on a loop thread, Chromium.

Fixtures stay in the test modules and module-scoped: sync Playwright keeps an event loop
running on the main thread, and a session-scoped browser would break every async test
collected after it.
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
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--enable-unsafe-swiftshader"]
LOAD_TIMEOUT_MS = 30_000

T = TypeVar("T")


class _Server(Protocol):
    async def start(self) -> Any: ...
    async def stop(self) -> None: ...


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path,
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


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["PYTHONPATH"] = str(REPO)
    env.pop("DISPLAY", None)  # headless: Flet serves the page and opens no browser
    env.update(extra)
    return env


@contextlib.contextmanager
def serve(args: list[str], port: int, log: Path, env: dict[str, str] | None = None
          ) -> Iterator[str]:
    """Run ``python *args`` until the block ends; yields its URL once it listens."""
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, env=env or clean_env())
    try:
        wait_for_port(port, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def app_args(port: int, data_dir: Path, config: Path) -> list[str]:
    """``pyclaw --web`` on a fresh data dir and config."""
    return ["-m", "cli", "--web", "--host", "127.0.0.1", "--port", str(port),
            "--data-dir", str(data_dir), "--config", str(config)]


class FakesThread:
    """Fake platforms / LLM APIs on one event loop in a thread, so sync tests can use them."""

    def __init__(self, *servers: _Server) -> None:
        self.servers = servers
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="ui-fakes",
                                       daemon=True)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=15)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        async def on_loop() -> T:
            return fn(*args)

        return self.run(on_loop())

    def __enter__(self) -> FakesThread:
        self.thread.start()
        for server in self.servers:
            self.run(server.start())
        return self

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            with contextlib.suppress(Exception):
                self.run(server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@contextlib.contextmanager
def chromium(playwright_sync: Any) -> Iterator[Any]:
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_app(browser: Any, url: str, ready: str, width: int = 1280, height: int = 800) -> Any:
    """A page with Flutter's semantics tree on (so locators see the controls), once the
    navigation button ``ready`` is there."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(url)
    placeholder = page.locator("flt-semantics-placeholder")
    placeholder.wait_for(state="attached", timeout=LOAD_TIMEOUT_MS)
    placeholder.dispatch_event("click")
    page.get_by_role("button", name=ready).wait_for(timeout=LOAD_TIMEOUT_MS)
    return page
