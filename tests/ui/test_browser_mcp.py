"""Settings → MCP servers in the real app, in Debian's Chromium: add a stdio server (the
SDK-built fake MCP server) through the generated form, Test connection lists its tools,
Save, and its card comes up with them."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.mcp_server import MODULE, ROOT
from tests.ui.browser_support import (
    CHROMIUM,
    STEP_TIMEOUT_MS,
    app_args,
    assert_no_error_box,
    clean_env,
    click,
    fill,
    free_port,
    open_app,
    picture_on_failure,
    reach,
    serve,
    type_into,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed"),
]

playwright_sync = pytest.importorskip("playwright.sync_api")
expect = playwright_sync.expect

TOOLS = ("add", "echo", "big", "slow", "fail", "die", "weird.name", "secret_echo")


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("mcp_app")
    config = tmp / "config.yaml"
    config.write_text("channels:\n  local: {type: local}\n")
    port = free_port()
    env = clean_env(PYCLAW_SECRETS="file")  # never the machine's keyring
    with serve(app_args(port, tmp / "data", config), port, tmp / "app.log", env) as url:
        yield url


def test_add_a_stdio_server_test_it_save_it_and_see_it_up(browser: Any, app: str) -> None:
    page = open_app(browser, app, "Settings", 1360, 900)
    try:
        with picture_on_failure(page, "mcp"):
            page.get_by_role("button", name="Settings").first.click()
            click(page, "Add MCP server")
            page.get_by_text("Add an MCP server").wait_for(timeout=STEP_TIMEOUT_MS)
            expect(page.get_by_role("button", name="Transport", exact=True)).to_have_count(1)
            expect(page.get_by_label("URL", exact=True)).to_have_count(0)  # HTTP only
            fill(page, "Name *", "files")
            fill(page, "Command", sys.executable)
            # a list field's name gains its hint ("comma-separated") once focused
            arguments = reach(page, page.get_by_label("Arguments", exact=True))
            type_into(page, arguments, page.get_by_label(re.compile(r"^Arguments")),
                      f"-m, {MODULE}")
            fill(page, "Working directory", str(ROOT))
            assert_no_error_box(page, "the MCP server form")

            click(page, "Test connection")
            page.get_by_text("8 tools available").wait_for(timeout=STEP_TIMEOUT_MS * 2)
            for tool in TOOLS:
                expect(page.get_by_text(tool, exact=True).first).to_be_attached()

            click(page, "Save MCP server")
            page.get_by_text("MCP server files saved: its tools are offered once it is up."
                             ).wait_for(timeout=STEP_TIMEOUT_MS)
            page.get_by_text("Up · 8 tools").wait_for(timeout=STEP_TIMEOUT_MS * 2)
            expect(page.get_by_text(f"stdio · {sys.executable} -m {MODULE}")).to_have_count(1)
            assert_no_error_box(page, "the MCP servers section")
    finally:
        page.close()
