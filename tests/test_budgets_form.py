"""The budgets form: caps as rows, saved through the control plane into the YAML (comments
kept) and applied from the next message; the Usage view's list, editor and read-only mode
against a fake plane; every text of the form in Simplified Chinese."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import flet as ft
import pytest
import yaml

from pyclaw_app.agent import Agent
from pyclaw_app.budgets import BudgetConfig, CapRow, RowError, config_of, rows_of
from pyclaw_app.bus import Bus
from pyclaw_app.config import Config, load_config
from pyclaw_app.control import BudgetForm, BudgetRow, FieldError, UsageRow
from pyclaw_app.control.chat import ask
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.control.remote import RemoteControlPlane, RemoteError
from pyclaw_app.control.rights import ADMIN_TOKEN_KEY, MONITOR_TOKEN_KEY
from pyclaw_app.control.settings import budget_schema
from pyclaw_app.gateway import Gateway
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.ui.fake_plane import FakeControlPlane
from views.budgets_view import BudgetsSection, cap_words
from views.forms import parse_schema
from views.i18n import catalog
from views.usage import UsageView

LONG = "x" * 400  # ~111 prompt tokens estimated; the fake bills ~205 with its echo
WAIT = 20.0
COMMENT = "# the owner's note about budgets"


# ---- rows <-> the section ---------------------------------------------------------------------
@pytest.mark.parametrize(("section", "count"), [
    ({}, 0),
    ({"overall": {"monthly": {"cost": 50.0}}}, 1),
    ({"channels": {"telegram": {"daily": {"cost": 1.5, "tokens": 10_000}}},
      "each_person": {"daily": {"tokens": 5_000}, "monthly": {"cost": 3.0}}}, 4),
    ({"each_person": {"daily": {"tokens": 100}},
      "people": {"local": {"boss": None, "ann": {"daily": {"tokens": 900}}}},
      "reply_tokens": 64}, 2),
])
def test_every_cap_is_a_row_and_the_rows_make_the_same_section(
        section: dict[str, Any], count: int) -> None:
    config = BudgetConfig.model_validate(section)
    rows = rows_of(config)
    assert len(rows) == count  # one per scope, period and unit; an exemption is no cap
    assert config_of(rows, config) == config  # exemptions and reply_tokens are kept
    assert config_of(rows, BudgetConfig()).people.get("local", {}).get("boss", 1) == 1


def test_two_rows_for_one_cap_are_refused_on_the_second() -> None:
    row = CapRow(scope="channel", channel="local", period="daily", unit="cost", limit=1)
    with pytest.raises(RowError) as refused:
        config_of([row, row.model_copy(update={"limit": 2})], BudgetConfig())
    assert (refused.value.index, refused.value.field) == (1, "unit")


# ---- the control plane ------------------------------------------------------------------------
@pytest.fixture
async def plane(tmp_path: Path, fake_llm: FakeOpenAI) -> AsyncIterator[LocalControlPlane]:
    path = tmp_path / "pyclaw.yaml"
    path.write_text(yaml.safe_dump({
        "providers": [provider_section(fake_llm)],
        "agent": {"system_prompt": "Be brief.", "tools": []},
        "channels": {"local": {"type": "local", "rate_limit_per_minute": 0}},
    }) + f"{COMMENT}\nbudgets:\n  reply_tokens: 0\n", "utf-8")
    secrets = FileSecretStore(tmp_path / "secrets.json")
    config = load_config(path, secrets)
    assert not config.errors, config.errors
    store = await Store(tmp_path / "data").open()
    gateway = Gateway(config, store, Bus(), agent=Agent.from_config(config, store))
    await gateway.start()
    try:
        yield LocalControlPlane(gateway, secrets)
    finally:
        await gateway.stop()
        await store.close()


def saved_section(plane: LocalControlPlane) -> Any:
    path = plane.gateway.config.path
    assert path is not None
    text = path.read_text("utf-8")
    assert COMMENT in text  # a round-trip save keeps what the owner wrote
    return yaml.safe_load(text).get("budgets")


async def test_a_saved_cap_is_written_and_checked_from_the_next_message(
        plane: LocalControlPlane) -> None:
    gateway = plane.gateway
    assert await ask(gateway, LONG, chat="a", timeout=WAIT) == f"Echo: {LONG}"  # no cap
    cap = {"scope": "channel", "channel": "local", "period": "daily", "unit": "tokens",
           "limit": 150}
    assert await plane.save_budgets([cap]) == []
    assert saved_section(plane) == {"reply_tokens": 0,
                                    "channels": {"local": {"daily": {"tokens": 150}}}}
    form = await plane.budget_form()
    assert [dict(c) for c in form.caps] == [{**cap, "sender": "", "limit": 150.0}]
    # what was spent before the save counts: the first call already used the cap up
    assert await ask(gateway, "hi", chat="b", timeout=WAIT) == (
        "This assistant's daily budget for this channel is used up; it resets at 00:00.")

    raised = {**cap, "limit": 100_000}
    person = {"scope": "person", "channel": "local", "sender": "ann", "period": "monthly",
              "unit": "cost", "limit": 2.5}
    assert await plane.save_budgets([raised, person]) == []
    assert await ask(gateway, "hi", chat="c", timeout=WAIT) == "Echo: hi"
    assert saved_section(plane)["people"] == {"local": {"ann": {"monthly": {"cost": 2.5}}}}

    assert await plane.save_budgets([]) == []  # every cap removed
    assert saved_section(plane) in (None, {"reply_tokens": 0})
    assert not gateway.agent.budget.active


@pytest.mark.parametrize(("caps", "errors"), [
    ([{"scope": "channel", "channel": "nowhere", "period": "daily", "unit": "cost",
       "limit": 1}], [("caps.0.channel", "no channel is called 'nowhere' (configured: local)")]),
    ([{"scope": "person", "channel": "local", "period": "daily", "unit": "cost", "limit": 1}],
     [("caps.0.sender", "give the person's sender ID on that channel")]),
    ([{"scope": "overall", "period": "daily", "unit": "tokens", "limit": 1.5}],
     [("caps.0.limit", "a token limit is a whole number")]),
    ([{"scope": "overall", "period": "weekly", "unit": "cost", "limit": -1}],
     [("caps.0.period", "Input should be 'daily' or 'monthly'"),
      ("caps.0.limit", "Input should be greater than or equal to 0")]),
    ([{"scope": "overall", "period": "daily", "unit": "cost", "limit": 1},
      {"scope": "overall", "period": "daily", "unit": "cost", "limit": 2}],
     [("caps.1.unit", "another row already sets the daily cost cap of the same scope: "
                      "change that one instead")]),
    (["not a cap"], [("caps.0", "a cap must be a mapping of fields")]),
])
async def test_bad_caps_are_refused_under_their_fields_and_nothing_is_written(
        plane: LocalControlPlane, caps: list[Any], errors: list[tuple[str, str]]) -> None:
    path = plane.gateway.config.path
    assert path is not None
    before = path.read_text("utf-8")
    assert [(e.field, e.message) for e in await plane.save_budgets(caps)] == errors
    assert path.read_text("utf-8") == before
    assert plane.gateway.config.budgets == BudgetConfig(reply_tokens=0)


async def test_the_monitor_sees_the_form_and_only_the_admin_saves(
        tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({
        "server": {"port": 0, "control_api": True},
        "providers": [provider_section(fake_llm)],
        "budgets": {"overall": {"monthly": {"cost": 5.0}}}}))
    host = await GatewayHost.start(config, tmp_path / "data")
    try:
        assert host.server is not None
        secrets = host.runtime.secrets
        admin = await RemoteControlPlane(host.server.url, secrets.get(ADMIN_TOKEN_KEY) or ""
                                         ).connect()
        monitor = await RemoteControlPlane(host.server.url,
                                           secrets.get(MONITOR_TOKEN_KEY) or "").connect()
        try:
            form = await monitor.budget_form()
            assert [(c["scope"], c["period"], c["unit"], c["limit"]) for c in form.caps] == [
                ("overall", "monthly", "cost", 5.0)]
            assert form.schema["properties"]["channel"]["enum"] == ["local"]
            with pytest.raises(RemoteError, match="needs the admin token"):
                await monitor.save_budgets([])
            assert host.runtime.gateway.config.budgets.overall.monthly is not None
            assert await admin.save_budgets([{**form.caps[0], "limit": 7.0}]) == []
            [row] = await monitor.budgets()
            assert (row.scope, row.limit) == ("overall", 7.0)
            assert yaml.safe_load(config.read_text())["budgets"] == {
                "overall": {"monthly": {"cost": 7.0}}}
        finally:
            await admin.close()
            await monitor.close()
    finally:
        await host.stop()


# ---- the view -----------------------------------------------------------------------------------
class FormPlane(FakeControlPlane):
    """Budgets and their form in memory; saves are checked by the real rows' rules."""

    def __init__(self, caps: list[dict[str, Any]], *, read_only: bool = False) -> None:
        super().__init__()
        self.read_only = read_only
        self.caps = caps
        self.saves: list[list[dict[str, Any]]] = []

    async def usage(self, **kwargs: Any) -> list[UsageRow]:
        return []

    async def budgets(self) -> list[BudgetRow]:
        return []

    async def budget_form(self) -> BudgetForm:
        cfg = Config(path=None)
        return BudgetForm(tuple(self.caps), budget_schema(cfg))

    async def save_budgets(self, caps: list[dict[str, Any]]) -> list[FieldError]:
        self.saves.append(caps)
        errors = []
        for index, raw in enumerate(caps):
            if raw.get("limit") is None:
                errors.append(FieldError(f"caps.{index}.limit", "Field required"))
        if not errors:
            self.caps = [CapRow.model_validate(c).model_dump(mode="json") for c in caps]
        return errors


def lines(section: BudgetsSection) -> list[str]:
    return [row.controls[1].value for row in section.lines.controls
            if isinstance(row, ft.Row)]


def buttons(section: BudgetsSection) -> list[str]:
    return [c.tooltip for row in section.lines.controls if isinstance(row, ft.Row)
            for c in row.controls if isinstance(c, ft.IconButton)]


CHANNEL_CAP = {"scope": "channel", "channel": "telegram", "sender": "", "period": "daily",
               "unit": "cost", "limit": 1.0}


async def test_the_card_lists_the_caps_and_adds_edits_and_removes_them() -> None:
    plane = FormPlane([CHANNEL_CAP])
    view = UsageView(plane, wall_clock=lambda: 0.0)
    await view.load()
    section = view.budgets_section
    assert view.budget_card.root.visible  # the form shows though nothing is spent yet
    assert lines(section) == ["Channel telegram · daily · $1.00"]
    assert buttons(section) == ["Edit cap Channel telegram · daily · $1.00",
                                "Remove cap Channel telegram · daily · $1.00"]

    editor = section.open_editor(None)
    assert not editor.form.shown("sender") and not editor.form.shown("channel")
    editor.form["unit"].input.value = "tokens"
    editor.form["period"].input.value = "monthly"
    assert not await editor.save()  # no limit given: said under the field, nothing lost
    assert editor.form["limit"].error == "Field required" and section.editor is editor
    editor.form["limit"].input.value = "5000"
    assert await editor.save()
    assert plane.saves[-1][0] == CHANNEL_CAP
    assert lines(section) == ["Channel telegram · daily · $1.00",
                              "Everything together · monthly · 5,000 tokens"]
    assert section.notice.ok and section.editor is None

    editor = section.open_editor(0)
    editor.form["limit"].input.value = "2.5"
    assert await editor.save()
    assert lines(section)[0] == "Channel telegram · daily · $2.50"

    assert await section.remove(0)
    assert lines(section) == ["Everything together · monthly · 5,000 tokens"]
    assert section.notice.message == (
        "Cap removed: Channel telegram · daily · $2.50")


async def test_a_read_only_token_sees_the_caps_but_no_buttons() -> None:
    plane = FormPlane([CHANNEL_CAP], read_only=True)
    section = BudgetsSection(plane)
    await section.load()
    assert lines(section) == ["Channel telegram · daily · $1.00"]
    assert buttons(section) == [] and not section.add_button.visible


async def test_an_older_gateway_without_the_form_keeps_the_card_as_it_was() -> None:
    view = UsageView(FakeControlPlane(), wall_clock=lambda: 0.0)
    await view.load()
    assert not view.budgets_section.available and not view.budget_card.root.visible


def test_a_cap_in_words() -> None:
    assert cap_words({"scope": "person", "channel": "local", "sender": "ann",
                      "period": "daily", "unit": "cost", "limit": 0.5}) == (
        "ann on local · daily · $0.50")
    assert cap_words({"scope": "each_person", "period": "monthly", "unit": "tokens",
                      "limit": 12000}) == "Every person on their own · monthly · 12,000 tokens"


# ---- Simplified Chinese -------------------------------------------------------------------------
def test_every_text_of_the_form_has_a_chinese_entry() -> None:
    zh = catalog("zh-CN")
    cfg = Config(path=None)
    missing = []
    for spec in parse_schema(budget_schema(cfg)):
        texts = [spec.title, *spec.options]
        if spec.help:
            texts.append(spec.help)
        missing += [text for text in texts if text not in zh]
    assert missing == []
