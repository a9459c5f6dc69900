"""The monitor in Chromium: connect screen -> a real gateway's dashboard -> remembered on restart.

Two subprocesses: ``pyclaw gateway`` with the control API on a loopback port,
and ``pyclaw monitor --web`` with no URL (the connect screen). The restart steps
(a new tab, so a new Flet session, on the same browser storage) check that
flet-web really keeps the URL (SharedPreferences) and the token
(flet-secure-storage: WebCrypto-encrypted localStorage) and really forgets them.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ui.browser_support import (
    CHROMIUM,
    LOAD_TIMEOUT_MS,
    REPO,
    SCREENSHOTS,
    clean_env,
    free_port,
    serve,
)

STEP_TIMEOUT_MS = 15_000
CHANNEL = "frontdesk"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(URL, token) of ``pyclaw gateway`` with the control API on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("monitored_gateway")
    port = free_port()
    config = tmp / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"host": "127.0.0.1", "port": port, "control_api": True},
        "channels": {"local": {"type": "local"}, CHANNEL: {"type": "local"}}}))
    paths = ["--config", str(config), "--data-dir", str(tmp / "data")]
    env = clean_env(PYCLAW_SECRETS="file")
    token = subprocess.run([sys.executable, "-m", "cli", "monitor-token", *paths],
                           cwd=REPO, env=env, capture_output=True, text=True,
                           check=True).stdout.strip()
    with serve(["-m", "cli", "gateway", *paths], port, tmp / "gateway.log",
               env) as url:
        yield url, token


@pytest.fixture(scope="module")
def monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(URL, log) of ``pyclaw monitor --web`` without a gateway URL: the connect screen."""
    log = tmp_path_factory.mktemp("monitor") / "monitor.log"
    port = free_port()
    with serve(["-m", "cli", "monitor", "--web", "--host", "127.0.0.1", "--port",
                str(port)], port, log) as url:
        yield url, log


def _fill(page: Any, label: str, text: str) -> None:
    field = page.get_by_label(label)
    for _ in range(3):
        # Flutter attaches its text-editing host on focus; a fill that lands before it is
        # lost (as in test_browser_channels), so focus, fill, and check that it stuck
        field.click()
        page.wait_for_timeout(100)
        field.fill(text)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if field.input_value() == text:
                return
            page.wait_for_timeout(100)
    playwright_sync.expect(field).to_have_value(text, timeout=STEP_TIMEOUT_MS)


def _open_tab(context: Any, url: str) -> Any:
    """A tab with Flutter's semantics on (open_app, in a context that can hold more tabs)."""
    page = context.new_page()
    page.goto(url)
    placeholder = page.locator("flt-semantics-placeholder")
    placeholder.wait_for(state="attached", timeout=LOAD_TIMEOUT_MS)
    placeholder.dispatch_event("click")
    return page


def _restart(page: Any) -> Any:
    """An app restart: a new tab on the same browser storage, so a new Flet session (a
    reload would reconnect to the old session, kept in the tab's sessionStorage)."""
    fresh = _open_tab(page.context, page.url)
    page.close()
    return fresh


def test_connect_to_a_real_gateway_then_reload_reconnects_from_storage(
        browser: Any, gateway: tuple[str, str], monitor: tuple[str, Path]) -> None:
    gateway_url, token = gateway
    monitor_url, log = monitor
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = _open_tab(context, monitor_url)
        page.get_by_role("button", name="Connect").wait_for(timeout=LOAD_TIMEOUT_MS)
    except playwright_sync.Error as exc:
        pytest.fail(f"the monitor did not come up ({exc.message.splitlines()[0]}); log:\n"
                    f"{log.read_text()[-4000:]}")
    try:
        _fill(page, "Gateway URL", gateway_url)
        _fill(page, "API token", "not-the-token")
        page.get_by_role("button", name="Connect").click()
        page.get_by_text("refused this token").wait_for(timeout=STEP_TIMEOUT_MS)

        _fill(page, "API token", token)
        page.get_by_role("button", name="Connect").click()
        page.get_by_text(f"Monitoring {gateway_url}").wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text(f"{CHANNEL} · ").first.wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text("Received today").wait_for(timeout=STEP_TIMEOUT_MS)
        assert token not in page.content()
        page.wait_for_timeout(500)  # the rail's selection animation, for a clean picture
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "monitor-connect.png"))

        page = _restart(page)  # the same browser storage, nothing typed
        page.get_by_text(f"Monitoring {gateway_url}").wait_for(timeout=STEP_TIMEOUT_MS)
        page.get_by_text(f"{CHANNEL} · ").first.wait_for(timeout=STEP_TIMEOUT_MS)

        # Disconnect forgets nothing (a password field's value is not in the DOM to read)
        page.get_by_role("button", name="Disconnect").click()
        playwright_sync.expect(page.get_by_label("Gateway URL")).to_have_value(
            gateway_url, timeout=STEP_TIMEOUT_MS)
        page.get_by_role("button", name="Forget this gateway").click()
        page.get_by_text("no longer remembers").wait_for(timeout=STEP_TIMEOUT_MS)

        page = _restart(page)
        page.get_by_role("button", name="Connect").wait_for(timeout=STEP_TIMEOUT_MS)
        page.wait_for_timeout(1500)  # room for a (wrong) auto-connect from storage
        playwright_sync.expect(page.get_by_label("Gateway URL")).to_have_value("")
        assert page.get_by_text("Monitoring").count() == 0
    finally:
        context.close()
    assert token not in log.read_text()
