"""Control-level tests of the Channels and Logs views (no browser): forms from real schemas."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import flet as ft
import pytest
import yaml

from pyclaw_app.bus import Bus
from pyclaw_app.config import load_config
from pyclaw_app.control import (
    ChannelStatus,
    ChannelType,
    FieldError,
    GroupRow,
    LogRow,
    MessageDetail,
    PairingRow,
    ProbeOutcome,
    TrafficRow,
)
from pyclaw_app.control.local import LocalControlPlane
from pyclaw_app.gateway import Gateway
from pyclaw_app.model import Event, EventKind
from pyclaw_app.secrets import FileSecretStore
from pyclaw_app.store import Store
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.fakes.telegram_api import FakeTelegram
from tests.support import eventually
from tests.ui.fake_admin_plane import FakeAdminPlane
from views.channel_editor import ChannelEditor
from views.channels import ChannelsView
from views.forms import (
    BOOLEAN,
    CHOICE,
    INTEGER,
    JSON,
    LIST,
    NUMBER,
    SAVED_SECRET_HINT,
    SECRET,
    TEXT,
    SchemaForm,
    parse_schema,
)
from views.logs import MAX_ROWS, PAGE_SIZE, LogsView, message_id_of


def texts(node: object) -> str:
    """Every string value in a control tree (Text values, labels, cells), for assertions."""
    out: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, ft.BaseControl):
            for name in ("value", "label", "content", "controls", "rows", "cells", "columns",
                         "text"):
                walk(getattr(value, name, None))

    walk(node)
    return " | ".join(out)


def telegram_schema(plane: FakeAdminPlane) -> dict:
    return next(t for t in plane.channel_types() if t.type == "telegram").schema


@pytest.fixture
def plane() -> FakeAdminPlane:
    return FakeAdminPlane()


# -- forms -------------------------------------------------------------------------------------

def test_every_registered_schema_parses_into_known_kinds(plane: FakeAdminPlane) -> None:
    for channel_type in plane.channel_types():
        specs = parse_schema(channel_type.schema)
        assert specs, channel_type.type
        assert {s.kind for s in specs} <= {TEXT, SECRET, INTEGER, NUMBER, BOOLEAN, CHOICE, LIST}


def test_telegram_schema_fields(plane: FakeAdminPlane) -> None:
    specs = {s.name: s for s in parse_schema(telegram_schema(plane))}
    assert parse_schema(telegram_schema(plane))[0].name == "token"  # secrets first
    assert specs["token"].kind == SECRET and specs["token"].title == "Bot token"
    assert "BotFather" in specs["token"].help
    assert specs["enabled"].kind == BOOLEAN and specs["enabled"].default is True
    assert specs["dm_policy"].kind == CHOICE
    assert specs["dm_policy"].choices == ("pairing", "allowlist", "open", "disabled")
    assert specs["allow_from"].kind == LIST
    assert specs["poll_timeout"].kind == INTEGER and specs["poll_timeout"].default == 30
    assert specs["base_url"].kind == TEXT and specs["base_url"].title == "Base URL"


def test_refs_nullable_numbers_and_objects() -> None:
    schema = {
        "$defs": {"Colour": {"enum": ["red", "green"], "type": "string", "title": "Colour"}},
        "properties": {
            "colour": {"$ref": "#/$defs/Colour", "default": "red"},
            "ratio": {"anyOf": [{"type": "number"}, {"type": "null"}], "title": "Ratio"},
            "extra": {"type": "object", "title": "Extra"},
            "host": {"type": "string"},
        },
        "required": ["host"],
    }
    specs = {s.name: s for s in parse_schema(schema)}
    assert specs["colour"].kind == CHOICE and specs["colour"].choices == ("red", "green")
    assert specs["ratio"].kind == NUMBER and specs["ratio"].nullable
    assert specs["extra"].kind == JSON
    assert specs["host"].required and specs["host"].title == "Host"
    form = SchemaForm(schema)
    assert form["host"].input.label == "Host *"
    form["ratio"].input.value = "0.5"
    form["extra"].input.value = '{"a": 1}'
    assert form.values() == {"colour": "red", "ratio": 0.5, "extra": {"a": 1}}


def test_form_controls_and_values(plane: FakeAdminPlane) -> None:
    form = SchemaForm(telegram_schema(plane))
    token = form["token"].input
    assert isinstance(token, ft.TextField)
    assert token.password and token.can_reveal_password and token.label == "Bot token *"
    assert "BotFather" in str(token.helper)
    assert isinstance(form["enabled"].input, ft.Switch)
    assert isinstance(form["dm_policy"].input, ft.Dropdown)
    assert form["dm_policy"].input.value == "pairing"
    assert form["poll_timeout"].input.keyboard_type == ft.KeyboardType.NUMBER
    token.value = " 1:abc "
    form["allow_from"].input.value = "42, 43,,44"
    form["poll_timeout"].input.value = "5"
    form["dm_policy"].input.value = "open"
    values = form.values()
    assert values["token"] == "1:abc" and values["allow_from"] == ["42", "43", "44"]
    assert values["poll_timeout"] == 5 and values["dm_policy"] == "open"
    form["poll_timeout"].input.value = "soon"  # not a number: passed on, the gateway explains
    assert form.values()["poll_timeout"] == "soon"


def test_blank_optional_list_is_unset_not_empty(plane: FakeAdminPlane) -> None:
    form = SchemaForm(telegram_schema(plane))
    assert not form["allow_from"].spec.required
    for blank in ("", "   ", " , ,\n"):
        form["allow_from"].input.value = blank
        assert form["allow_from"].value() is None
        assert "allow_from" not in form.values()  # unset: the gateway keeps its default


def test_saved_secret_is_never_shown_and_blank_keeps_it(plane: FakeAdminPlane) -> None:
    form = SchemaForm(telegram_schema(plane), {"token": "should-not-appear"},
                      secrets_set=("token",))
    token = form["token"].input
    assert token.value == "" and token.hint_text == SAVED_SECRET_HINT
    assert "token" not in form.values()
    assert form["webhook_secret"].input.hint_text is None


def test_errors_go_under_their_fields(plane: FakeAdminPlane) -> None:
    form = SchemaForm(telegram_schema(plane))
    rest = form.show_errors([FieldError("poll_timeout", "too long"), FieldError("", "boom"),
                             FieldError("dm_policy", "bad"), FieldError("enabled", "odd")])
    assert form["poll_timeout"].input.error == "too long"
    assert form["dm_policy"].input.error_text == "bad"
    assert form["enabled"].error == "odd" and form["enabled"].error_text.visible
    assert rest == ["boom"]
    form.show_errors([])
    assert form["poll_timeout"].error is None and not form["enabled"].error_text.visible


# -- channels view -------------------------------------------------------------------------------

@pytest.fixture
def configured(plane: FakeAdminPlane) -> FakeAdminPlane:
    plane.configure("tg", "telegram", {"token": "1:secret", "dm_policy": "open"})
    plane.pairings = [PairingRow("ABCD2345", "tg", "77", "dora", time.time() + 1800)]
    return plane


async def test_channels_lists_configured_and_every_type(configured: FakeAdminPlane) -> None:
    view = ChannelsView(configured)
    await view.load()
    assert list(view.cards) == ["tg"]
    card = view.cards["tg"]
    assert card.state.value == "online" and card.offered == ("stop", "restart", "disable")
    assert list(view.catalog.cards) == [t.type for t in configured.channel_types()]
    assert view.pairing_section.visible and "ABCD2345" in texts(view.pairing_list)

    view.apply([Event(EventKind.CHANNEL_STATE, "tg", {"state": "degraded",
                                                      "reason": "429 from Telegram"})],
               time.time())
    assert card.state.value == "degraded" and card.detail.value == "429 from Telegram"
    assert card.detail.color == ft.Colors.ERROR


async def test_a_type_without_its_sdk_shows_the_install_command_not_add(
        plane: FakeAdminPlane) -> None:
    # A type no built-in channel has: a plugin channel whose SDK is not installed.
    missing = ChannelType(type="acme", title="Acme Chat", icon="extension_off",
                          description="Not available: needs acme_sdk.", docs_url="",
                          transport="", schema={}, install="pip install 'pyclaw-acme'")
    plane.extra_types.append(missing)
    view = ChannelsView(plane)
    await view.load()
    card = view.catalog.cards["acme"].root
    assert "pip install 'pyclaw-acme'" in texts(card) and "not installed" in texts(card)
    assert "Add Acme Chat" not in texts(card)
    assert "Add Telegram" in texts(view.catalog.cards["telegram"].root)


async def test_group_requests_are_shown_and_approved_or_rejected(plane: FakeAdminPlane) -> None:
    plane.groups = [GroupRow("tg", "-1001", "stranger", time.time()),
                    GroupRow("tg", "-1002", "", time.time())]
    view = ChannelsView(plane)
    await view.load()
    assert view.group_section.visible
    assert "group -1001 on tg" in texts(view.group_list)
    await view.decide_group("tg", "-1001", True)
    await view.decide_group("tg", "-1002", False)
    assert ("approve_group", "tg/-1001") in plane.calls
    assert ("reject_group", "tg/-1002") in plane.calls
    assert not view.group_section.visible


async def test_channel_actions_reach_the_plane(configured: FakeAdminPlane) -> None:
    view = ChannelsView(configured)
    await view.load()
    assert await view.guard(view.restart("tg"))
    assert await view.guard(view.set_enabled("tg", False))
    assert view.cards["tg"].offered == ("enable",)
    assert await view.guard(view.approve("ABCD2345"))
    assert not view.pairing_section.visible
    assert not await view.guard(view.approve("NOPE"))
    assert view.notice.visible and "NOPE" in view.notice.value
    dialog = view.confirm_delete("tg", None)
    assert "tg" in dialog.title.value
    assert [a.content for a in dialog.actions] == ["Cancel", "Delete"]
    await view.delete("tg")
    assert view.cards == {} and view.no_channels.visible
    assert ("restart", "tg") in configured.calls and ("delete", "tg") in configured.calls


async def test_add_telegram_validate_probe_save(plane: FakeAdminPlane) -> None:
    view = ChannelsView(plane)
    await view.load()
    editor = await view.add("telegram")
    assert view.editor_slot.content is editor.root and not view.list_page.visible
    assert editor.channel_name == "telegram"
    form = editor.form

    # inline validation only under fields the user has left
    form["poll_timeout"].input.value = "soon"
    editor._field_blurred(form["poll_timeout"])
    assert form["poll_timeout"].error and "integer" in form["poll_timeout"].error
    assert form["base_url"].error is None
    editor.name.value = "Not OK"
    editor._name_blurred(None)  # type: ignore[arg-type]
    assert editor.name.error and "lowercase" in editor.name.error
    assert not await editor.save()  # still invalid: nothing saved
    assert not any(c[0] == "save" for c in plane.calls)

    editor.name.value = "tg"
    form["poll_timeout"].input.value = "1"
    form["token"].input.value = "1:abc"
    form["dm_policy"].input.value = "open"

    plane.probe_gate = asyncio.Event()
    probe = asyncio.create_task(editor.test_connection(), name="test:probe")
    await plane.probing.wait()
    assert editor.progress.visible and editor.test_button.disabled
    plane.probe_gate.set()
    outcome = await probe
    assert outcome.ok and not editor.progress.visible
    assert editor.probe_result.value == "connected as @fake_bot"
    assert editor.probe_icon.visible and editor.probe_icon.icon == ft.Icons.CHECK_CIRCLE
    assert editor.probe_result.color == ft.Colors.GREEN_700

    plane.probe_outcome = ProbeOutcome(False, "Telegram rejected the bot token")
    await editor.test_connection()
    assert editor.probe_result.color == ft.Colors.ERROR and "rejected" in editor.probe_result.value

    assert await editor.save()
    saved = next(args for kind, args in plane.calls if kind == "save")
    assert saved[0:2] == ("tg", "telegram") and saved[2]["token"] == "1:abc"
    await editor._on_close(True)  # what the Save button does after a successful save
    assert view.list_page.visible and not view.editor_slot.visible and "tg" in view.cards


async def test_pick_another_type_rebuilds_the_form(plane: FakeAdminPlane) -> None:
    view = ChannelsView(plane)
    await view.load()
    editor = await view.add_default()
    assert editor.type_picker.visible
    editor.pick_type("slack")
    assert editor.channel_name == "slack" and "bot_token" in editor.form.fields
    assert editor.form_slot.content is editor.form.root


async def test_edit_shows_saved_secret_and_keeps_it(configured: FakeAdminPlane) -> None:
    view = ChannelsView(configured)
    await view.load()
    editor = await view.edit("tg")
    assert editor.name.read_only and not editor.type_picker.visible
    assert editor.form["token"].input.hint_text == SAVED_SECRET_HINT
    assert editor.form["dm_policy"].input.value == "open"
    editor.form["dm_policy"].input.value = "pairing"
    assert await editor.save()
    assert configured.secrets[("tg", "token")] == "1:secret"
    assert configured.configs["tg"][1]["dm_policy"] == "pairing"


async def test_form_level_errors_from_save_are_shown(plane: FakeAdminPlane) -> None:
    editor = ChannelEditor(plane, next(t for t in plane.channel_types() if t.type == "local"))
    editor.name.value = "me"

    async def refuse(*args: object) -> list[FieldError]:
        return [FieldError("", "could not save the config file: read-only")]

    plane.save_channel = refuse  # type: ignore[method-assign]
    assert not await editor.save()
    assert editor.form_error.visible and "read-only" in editor.form_error.value


# -- logs view ------------------------------------------------------------------------------

@pytest.fixture
def logged(plane: FakeAdminPlane) -> FakeAdminPlane:
    now = time.time()
    for i in range(250):
        plane.add_log("tg" if i % 2 else "slack", "error" if i % 10 == 0 else "info",
                      f"line {i}", ts=now - 3 * 3600 + i * 30 + 15)
    return plane


async def test_logs_page_with_load_older(logged: FakeAdminPlane) -> None:
    view = LogsView(logged)
    await view.load()
    assert len(view.rows) == PAGE_SIZE and view.rows[0].message == "line 249"
    assert view.older_button.visible
    assert await view.load_older() == PAGE_SIZE
    assert await view.load_older() == 50
    assert not view.older_button.visible
    assert [r.message for r in view.rows[-2:]] == ["line 1", "line 0"]
    assert len(view.lines.controls) == 250


async def test_logs_filters_reach_the_plane(logged: FakeAdminPlane) -> None:
    now = time.time()
    view = LogsView(logged, clock=lambda: now)
    await view.load()
    assert [o.key for o in view.channel_filter.options] == ["all"]
    await view.set_filter(channel="slack", level="error", search="line 2",
                          range_label="Last day")
    query = [args for kind, args in logged.calls if kind == "logs"][-1]
    assert query == {"channel": "slack", "level": "error", "search": "line 2",
                     "before_id": None, "since": now - 86400}
    assert [r.message for r in view.rows] == ["line 240", "line 230", "line 220", "line 210",
                                              "line 200", "line 20"]
    await view.set_filter(search="line 24")
    assert {r.message for r in view.rows} == {"line 24", *(f"line {n}" for n in range(240, 250))}
    await view.set_filter(range_label="Last hour")
    assert [r.message for r in view.rows] == [f"line {n}" for n in range(249, 239, -1)]
    await view.set_filter(range_label="Last 15 minutes")
    assert view.rows == [] and view.lines_empty.visible


async def test_live_log_lines_follow_the_filter_and_stay_bounded(
        logged: FakeAdminPlane) -> None:
    view = LogsView(logged)
    await view.set_filter(channel="tg")
    before = len(view.rows)
    view.apply([Event(EventKind.LOG, "tg", {"level": "warning", "message": "fresh"}),
                Event(EventKind.LOG, "slack", {"level": "info", "message": "elsewhere"}),
                Event(EventKind.MESSAGE_RECEIVED, "tg", {"id": 1, "chat": "1", "text": "x"})],
               time.time())
    assert len(view.rows) == before + 1 and view.rows[0].message == "fresh"
    assert [o.key for o in view.channel_filter.options] == ["all", "slack", "tg"]
    view.apply([Event(EventKind.LOG, "tg", {"level": "info", "message": f"m{i}"})
                for i in range(MAX_ROWS)], time.time())
    assert len(view.rows) == MAX_ROWS == len(view.lines.controls)
    assert view.rows[0].message == f"m{MAX_ROWS - 1}" and view.older_button.visible


async def test_live_lines_are_not_doubled_by_the_first_page(plane: FakeAdminPlane) -> None:
    view = LogsView(plane)
    await view.load()
    assert view.lines_empty.visible
    plane.add_log("tg", "info", "started")
    view.apply([Event(EventKind.LOG, "tg", {"level": "info", "message": "started"})],
               time.time())
    assert await view.load_older() == 0
    assert [r.message for r in view.rows] == ["started"]


def test_message_id_of() -> None:
    def row(message: str, **data: object) -> LogRow:
        return LogRow(1, 0.0, "tg", "info", message, dict(data))

    assert message_id_of(row("message 42: LLM call failed: 500")) == 42
    assert message_id_of(row("resuming message 7 after restart")) == 7
    assert message_id_of(row("started", message_id=9)) == 9
    assert message_id_of(row("started")) is None


def _failed_detail() -> MessageDetail:
    inbound = TrafficRow(42, time.time(), "in", "tg", "1001", "alice", "hello?", "failed",
                         error="provider fake: 500")
    call = {"ts": time.time(), "provider": "fake", "model": "fake-model", "input_tokens": 12,
            "output_tokens": 0, "latency_ms": 85.0, "cost": 0.0, "error": "500 Server Error"}
    return MessageDetail(inbound, "9", None, (call,))


async def test_detail_panel_shows_record_calls_and_retries(plane: FakeAdminPlane) -> None:
    plane.details[42] = _failed_detail()
    line = plane.add_log("tg", "error", "message 42: LLM call failed: 500")
    view = LogsView(plane)
    await view.load()
    await view.open_line(line)
    panel = view.detail
    assert panel.root.visible and panel.retry_button.visible
    text = texts(panel.body)
    assert "LLM call failed" in text and "fake-model" in text and "500 Server Error" in text
    assert "12 in / 0 out" in text and "hello?" in text
    assert await panel.retry()
    assert ("retry", 42) in plane.calls and panel.retry_result.color == ft.Colors.GREEN_700
    panel.close()
    assert not panel.root.visible

    await view.open_message(99)
    assert "not in the journal" in texts(panel.body) and not panel.retry_button.visible


async def test_messages_tab_and_export(plane: FakeAdminPlane) -> None:
    inbound = plane.receive("tg", "1001", "alice", "hi")
    plane.answer(inbound, "hello")
    plane.receive("slack", "C1", "bob", "yo")
    plane.add_log("tg", "info", "started")
    plane.add_log("slack", "error", "boom, \"quoted\"")
    view = LogsView(plane)
    await view.set_filter(channel="tg")
    assert len(view.messages.controls) == 2 and not view.messages_empty.visible
    assert (await view.export("jsonl")).count("\n") == 1
    await view.set_filter()
    csv_text = await view.export("csv")
    assert csv_text.splitlines()[0].startswith("id,ts,channel,level,message")
    assert '"boom, ""quoted"""' in csv_text


# -- the real plane ---------------------------------------------------------------------------

async def test_editor_against_the_real_plane(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    """The generated form drives the real ChannelAdmin: probe, save, online, secret kept."""
    path = tmp_path / "pyclaw.yaml"
    path.write_text(yaml.safe_dump({"providers": [provider_section(fake_llm)]}))
    secrets = FileSecretStore(tmp_path / "data" / "secrets.json")
    store = await Store(tmp_path / "data").open()
    gateway = Gateway(load_config(path, secrets), store, Bus())
    await gateway.start()
    try:
        async with FakeTelegram() as telegram:
            plane = LocalControlPlane(gateway, secrets, path)
            view = ChannelsView(plane)
            await view.load()
            editor = await view.add("telegram")
            form = editor.form
            form["token"].input.value = telegram.token
            form["base_url"].input.value = f"{telegram.url}/bot"
            form["poll_timeout"].input.value = "1"
            form["dm_policy"].input.value = "open"
            outcome = await editor.test_connection()
            assert outcome.ok and f"@{telegram.username}" in editor.probe_result.value
            assert await editor.save()
            await editor._on_close(True)
            await eventually(lambda: gateway.channels["telegram"].state.value == "online")
            status: ChannelStatus = next(c for c in await plane.channels()
                                         if c.name == "telegram")
            assert status.enabled
            edit = await view.edit("telegram")
            assert edit.form["token"].input.hint_text == SAVED_SECRET_HINT
            assert edit.form["token"].input.value == ""
            assert telegram.token not in path.read_text()
            await plane.stop_channel("telegram")
    finally:
        await gateway.stop()
        await store.close()


async def test_views_load_on_a_plane_without_the_admin_side() -> None:
    """A plane that cannot answer (an older remote one, say) gives a notice, not a dead page."""
    from tests.ui.fake_plane import FakeControlPlane

    bare = FakeControlPlane()
    channels, logs = ChannelsView(bare), LogsView(bare)  # type: ignore[arg-type]
    await channels.load()
    await logs.load()
    assert channels.notice.visible and logs.notice.visible
