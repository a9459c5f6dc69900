"""Settings → Profiles in the real app, in Debian's Chromium: add a profile for the local
chat through the generated form, save it, see its card, and find it in the config file."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

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


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    tmp = tmp_path_factory.mktemp("profiles_app")
    config = tmp / "config.yaml"
    config.write_text("# mine\nchannels:\n  local: {type: local}\n")
    port = free_port()
    env = clean_env(PYCLAW_SECRETS="file")  # never the machine's keyring
    with serve(app_args(port, tmp / "data", config), port, tmp / "app.log", env) as url:
        yield url, config


def test_add_a_profile_and_see_its_card(browser: Any, app: tuple[str, Path]) -> None:
    url, config = app
    page = open_app(browser, url, "Settings", 1360, 900)
    try:
        with picture_on_failure(page, "profiles"):
            page.get_by_role("button", name="Settings").first.click()
            click(page, "Add profile")
            page.get_by_text("Add a profile").wait_for(timeout=STEP_TIMEOUT_MS)
            fill(page, "Name *", "support")
            # a list field's name gains its hint ("comma-separated") once focused
            used_on = reach(page, page.get_by_label("Used on", exact=True))
            type_into(page, used_on, page.get_by_label(re.compile(r"^Used on")), "local")
            fill(page, "Answer in", "German")
            assert_no_error_box(page, "the profile form")

            click(page, "Save profile")
            page.get_by_text("Profile support saved: used from the next message."
                             ).wait_for(timeout=STEP_TIMEOUT_MS)
            expect(page.get_by_text("Used on local", exact=True)).to_have_count(1)
            expect(page.get_by_text("in German", exact=True)).to_have_count(1)
            assert_no_error_box(page, "the profiles section")
        # written before the notice shows
        saved = yaml.safe_load(config.read_text("utf-8")).get("profiles")
        assert saved == {"support": {"match": ["local"], "language": "German"}}
        assert config.read_text("utf-8").startswith("# mine\n")
    finally:
        page.close()
