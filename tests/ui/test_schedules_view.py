"""The Schedules view against the fake plane, whose jobs follow the real rules
(pyclaw_app.schedules): the list, the Add form with its live explanation, errors on the
field they are about, pause/resume/delete, the read-only monitor, and the reloads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import flet as ft
import pytest
import yaml

from pyclaw_app.control import ChannelStatus, TrafficRow
from pyclaw_app.control.host import GatewayHost
from pyclaw_app.control.remote import AdminRequired, FieldRefused, RemoteControlPlane
from pyclaw_app.control.rights import ADMIN_TOKEN_KEY, MONITOR_TOKEN_KEY
from tests.conftest import provider_section
from tests.fakes.openai_api import FakeOpenAI
from tests.support import eventually
from tests.ui.fake_plane import FakeControlPlane
from views.schedules import (
    RELOAD_INTERVAL,
    SchedulesView,
    local_time,
    machine_zone,
    next_run_text,
    recent_chats,
    relative,
)
from views.shell import DESTINATIONS, Shell

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC).timestamp()  # a Wednesday
MONDAY_9_PARIS = datetime(2026, 12, 7, 8, 0, tzinfo=UTC).timestamp()
CHANNELS = [ChannelStatus("telegram", "telegram", "Telegram", "send", "online"),
            ChannelStatus("local", "local", "Local chat", "chat", "online")]


def shown_texts(node: object) -> str:
    """Every string a user can see in a control tree (invisible controls left out)."""
    out: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)
        elif isinstance(value, ft.BaseControl) and value.visible is not False:
            for name in ("value", "label", "content", "controls", "text", "tooltip"):
                walk(getattr(value, name, None))

    walk(node)
    return " | ".join(out)


class ReadOnlyPlane(FakeControlPlane):
    """What the monitor's remote plane says when its token is the monitor token."""

    read_only = True


class DialogPage:
    """Just enough of a page for a dialog's buttons: what was popped and updated."""

    def __init__(self) -> None:
        self.popped = 0
        self.updates = 0

    def pop_dialog(self) -> None:
        self.popped += 1

    def update(self) -> None:
        self.updates += 1


@pytest.fixture
def plane() -> FakeControlPlane:
    fake = FakeControlPlane(list(CHANNELS))
    fake.clock = lambda: NOW
    return fake


def make_view(plane: FakeControlPlane) -> SchedulesView:
    return SchedulesView(plane, wall_clock=lambda: NOW, zone="Europe/Paris")


def fill_recurring(view: SchedulesView, *, cron: str = "0 9 * * MON",
                   text: str = "weekly report", chat: str = "4242") -> None:
    form = view.form
    form.channel.value = "telegram"
    form.chat.value = chat
    form.text.value = text
    form.repeats.value = "cron"
    form.show_repeats()
    form.cron.value = cron


# -- text ----------------------------------------------------------------------------------


def test_machine_zone_from_tz_then_localtime_then_timezone_file(tmp_path: Path) -> None:
    zoneinfo = tmp_path / "usr" / "share" / "zoneinfo" / "Europe"
    zoneinfo.mkdir(parents=True)
    (zoneinfo / "Paris").write_bytes(b"TZif")
    link = tmp_path / "localtime"
    link.symlink_to(zoneinfo / "Paris")
    missing = tmp_path / "none"
    tz_file = tmp_path / "timezone"
    tz_file.write_text("America/New_York\n")

    assert machine_zone({"TZ": "Asia/Tokyo"}, link, tz_file) == "Asia/Tokyo"
    assert machine_zone({"TZ": ":/usr/share/zoneinfo/Asia/Tokyo"}, link, tz_file) == "Asia/Tokyo"
    assert machine_zone({}, link, tz_file) == "Europe/Paris"
    assert machine_zone({}, missing, tz_file) == "America/New_York"
    assert machine_zone({}, missing, missing) == "UTC"


def test_relative_times_and_next_run_words(plane: FakeControlPlane) -> None:
    assert relative(NOW + 30, NOW) == "in 1 min"
    assert relative(NOW + 600, NOW) == "in 10 min"
    assert relative(NOW + 3 * 3600 + 5, NOW) == "in 3 h"
    assert relative(NOW + 86400, NOW) == "in 1 day"
    assert relative(NOW + 5 * 86400, NOW) == "in 5 days"
    assert relative(NOW - 1, NOW) == "due now"

    row = asyncio.run(plane.create_schedule("telegram", "1", "hi", cron="0 9 * * MON",
                                            timezone="Europe/Paris"))
    assert row.next_run == MONDAY_9_PARIS
    assert next_run_text(row, NOW) == f"Next run {local_time(MONDAY_9_PARIS)} (in 4 days)"
    paused = asyncio.run(plane.set_schedule_enabled(row.id, False))
    assert paused is not None and next_run_text(paused, NOW).startswith("Paused")


def test_recent_chats_newest_first_each_once_with_who_wrote() -> None:
    def row(chat: str, direction: str, sender: str) -> TrafficRow:
        return TrafficRow(id=1, ts=NOW, direction=direction, channel="telegram", chat=chat,
                          sender=sender, text="x", status="sent")

    rows = [row("7", "out", "assistant"), row("7", "in", "alice"), row("9", "in", "bob"),
            row("7", "in", "carol"), row("11", "out", "assistant")]
    assert recent_chats(rows) == [("7", "alice"), ("9", "bob"), ("11", "")]
    assert recent_chats(rows, limit=1) == [("7", "alice")]


# -- the list ------------------------------------------------------------------------------


async def test_list_shows_when_next_run_where_and_what(plane: FakeControlPlane) -> None:
    await plane.create_schedule("telegram", "4242", "weekly report", cron="0 9 * * MON",
                                timezone="Europe/Paris")
    await plane.create_schedule("local", "app", "water the plants", kind="task",
                                at="2026-12-03T18:30", timezone="Europe/Paris", missed="skip")
    view = make_view(plane)
    await view.load()

    assert not view.empty.visible
    # soonest first: the one-off tomorrow, then Monday's
    assert [c.row.body for c in view.cards.values()] == ["water the plants", "weekly report"]
    weekly = shown_texts(view.cards[1].root)
    assert "at 09:00 on Monday (Europe/Paris)" in weekly
    assert f"Next run {local_time(MONDAY_9_PARIS)} (in 4 days)" in weekly
    assert "telegram · chat 4242 · made by you" in weekly
    assert "Message: weekly report" in weekly and "sent once when back" in weekly
    task = shown_texts(view.cards[2].root)
    assert "once at 2026-12-03 18:30 CET" in task
    assert "Task: water the plants" in task and "Missed runs: skipped" in task
    assert "Pause job 1" in weekly and "Resume job 1" not in weekly


async def test_an_empty_list_says_how_to_add_one(plane: FakeControlPlane) -> None:
    view = make_view(plane)
    await view.load()
    assert view.empty.visible and view.list.controls == []
    assert "No scheduled jobs" in shown_texts(view.root)


async def test_a_failing_plane_is_said_on_the_view(plane: FakeControlPlane) -> None:
    async def broken(channel: str | None = None) -> list[Any]:
        raise ConnectionError("gateway went away")

    plane.schedules = broken  # type: ignore[method-assign]
    view = make_view(plane)
    await view.load()
    assert view.notice.visible and "gateway went away" in str(view.notice.value)


# -- the Add form --------------------------------------------------------------------------


async def test_form_offers_the_channels_and_their_recent_chats(plane: FakeControlPlane) -> None:
    plane.receive("telegram", "4242", "alice", "hello")
    plane.receive("local", "app", "you", "hi")
    view = make_view(plane)
    await view.load()
    form = view.form
    assert [o.key for o in form.channel.options] == ["telegram", "local"]
    assert form.channel.value == "telegram"
    assert form.timezone.value == "Europe/Paris"
    assert form.recent.visible and "4242 (alice)" in shown_texts(form.recent)
    assert "app" not in shown_texts(form.recent)

    form.use_chat("4242")
    assert form.chat.value == "4242"
    form.channel.value = "local"
    await form.load_recent()
    assert "app (you)" in shown_texts(form.recent)


async def test_the_rule_in_words_as_it_is_typed(plane: FakeControlPlane) -> None:
    view = make_view(plane)
    await view.load()
    form = view.form
    form.cron.value = "0 9 * * MON"
    await form.refresh_preview()
    assert form.preview.visible
    assert form.preview.value == ("Runs at 09:00 on Monday (Europe/Paris); next run "
                                  "2026-12-07 09:00 CET")

    form.cron.value = "0 9 * *"
    await form.refresh_preview()
    assert str(form.preview.value).startswith("Not yet valid:")
    assert "five" in str(form.preview.value)

    form.repeats.value = "once"
    form.show_repeats()
    assert form.at.visible and not form.cron.visible
    form.at.value = "2026-12-24 18:00"
    await form.refresh_preview()
    assert form.preview.value == "Runs once at 2026-12-24 18:00 CET"

    form.at.value = ""
    await form.refresh_preview()
    assert not form.preview.visible


async def test_a_task_relabels_the_text_field(plane: FakeControlPlane) -> None:
    view = make_view(plane)
    view.form.action.value = "task"
    view.form.show_action()
    assert view.form.text.label == "Task"
    view.form.action.value = "text"
    view.form.show_action()
    assert view.form.text.label == "Message"


async def test_saving_a_recurring_job_lists_it_and_closes_the_form(
        plane: FakeControlPlane) -> None:
    view = make_view(plane)
    await view.load()
    view.open_form()
    fill_recurring(view)
    view.form.missed.value = "skip"
    row = await view.form.save()

    assert row is not None
    assert (row.channel, row.chat, row.body, row.cron, row.timezone, row.missed) == (
        "telegram", "4242", "weekly report", "0 9 * * MON", "Europe/Paris", "skip")
    assert not view.form.root.visible and view.form.text.value == ""
    assert list(view.cards) == [row.id]
    assert "at 09:00 on Monday (Europe/Paris)" in shown_texts(view.list)


class RemotePlane(FakeControlPlane):
    """Answers as over a network: each call waits its turn, and a list is read when it is
    asked for, not when its answer arrives."""

    async def schedules(self, channel: str | None = None) -> list[Any]:
        rows = await super().schedules(channel)
        await asyncio.sleep(0.05)
        return rows

    async def create_schedule(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(0.01)
        return await super().create_schedule(*args, **kwargs)


@pytest.fixture
def remote_plane() -> RemotePlane:
    fake = RemotePlane(list(CHANNELS))
    fake.clock = lambda: NOW
    return fake


async def test_a_second_tap_on_save_while_saving_makes_no_second_job(
        remote_plane: RemotePlane) -> None:
    """The browser may deliver a double tap before it has drawn the button disabled."""
    plane = remote_plane
    view = make_view(plane)
    await view.load()
    view.open_form()
    fill_recurring(view)
    tap = SimpleNamespace(page=DialogPage())
    await asyncio.gather(view.form._save_clicked(tap), view.form._save_clicked(tap))

    assert [r.body for r in await plane.schedules()] == ["weekly report"]
    assert list(view.cards) == [r.id for r in await plane.schedules()]
    assert not view.form.save_button.disabled


async def test_a_background_reload_asked_before_a_save_does_not_hide_the_new_job(
        remote_plane: RemotePlane) -> None:
    view = make_view(remote_plane)
    view.root.visible = False
    await view.load()
    view.root.visible = True
    view.apply([], NOW + 1)  # opened: a background reload, of the list before the save
    view.open_form()
    fill_recurring(view)
    row = await view.form.save()
    assert row is not None
    await asyncio.sleep(0.1)  # the background reload has its (stale) answer by now
    view.apply([], NOW + 2)  # where its rows would be shown

    assert list(view.cards) == [row.id]


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"cron": "61 9 * * *"}, "cron", "not a cron expression"),
    ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
    ({"chat": " "}, "chat", "the chat is empty"),
    ({"text": ""}, "text", "the message is empty"),
    ({"channel": "gone"}, "channel", "no channel named 'gone'"),
    ({"repeats": "once", "at": "2026-12-01 09:00"}, "at", "is in the past"),
    ({"repeats": "once", "at": "next tuesday"}, "at", "not an ISO 8601 time"),
])
async def test_a_refused_job_names_its_field_and_saves_nothing(
        plane: FakeControlPlane, change: dict[str, str], field: str, words: str) -> None:
    view = make_view(plane)
    await view.load()
    view.open_form()
    fill_recurring(view)
    form = view.form
    for name, value in change.items():
        getattr(form, name).value = value
    form.show_repeats()

    assert await form.save() is None
    error = form.field_error(field)
    assert error is not None and words in error
    assert [f for f in form.fields if form.field_error(f)] == [field]
    assert plane.jobs == {} and form.root.visible
    assert form.text.value == change.get("text", "weekly report")  # nothing typed is lost

    # fixing it clears the error
    fill_recurring(view)
    form.repeats.value = "cron"
    form.show_repeats()
    form.timezone.value = "Europe/Paris"
    assert await form.save() is not None
    assert all(form.field_error(f) is None for f in form.fields)


# -- pause, resume, delete ----------------------------------------------------------------


async def test_pause_resume_and_delete_with_confirmation(plane: FakeControlPlane) -> None:
    view = make_view(plane)
    await view.load()
    fill_recurring(view)
    row = await view.form.save()
    assert row is not None
    card = view.cards[row.id]

    assert await view.run(view.set_enabled, row.id, False)
    assert plane.jobs[row.id].enabled is False
    assert card.state.value == "paused" and card.resume.visible and not card.pause.visible
    assert "Paused" in str(card.next.value)

    assert await view.run(view.set_enabled, row.id, True)
    assert plane.jobs[row.id].next_run == MONDAY_9_PARIS
    assert card.state.value == "active" and card.pause.visible and not card.resume.visible

    dialog = view.confirm_delete(row, None)
    assert "Delete job 1?" in str(dialog.title.value)
    assert "weekly report" in str(dialog.content.value)
    cancel, delete = dialog.actions
    page = DialogPage()
    cancel.on_click(SimpleNamespace(page=page))
    assert page.popped == 1 and row.id in plane.jobs
    await delete.on_click(SimpleNamespace(page=page))
    assert page.popped == 2 and page.updates == 1
    assert plane.jobs == {} and view.cards == {} and view.empty.visible


async def test_a_job_gone_elsewhere_is_said_and_the_list_stays(
        plane: FakeControlPlane) -> None:
    view = make_view(plane)
    await view.load()
    fill_recurring(view)
    row = await view.form.save()
    assert row is not None
    await plane.delete_schedule(row.id)  # e.g. `pyclaw schedules delete` meanwhile
    assert not await view.run(view.delete, row.id)
    assert view.notice.visible and "gone already" in str(view.notice.value)


async def test_a_refused_resume_is_said(plane: FakeControlPlane) -> None:
    row = await plane.create_schedule("telegram", "1", "once", at="2026-12-02T12:00",
                                      timezone="UTC", missed="skip")
    await plane.set_schedule_enabled(row.id, False)
    plane.clock = lambda: NOW + 86400  # its time passes while it is paused
    view = make_view(plane)
    await view.load()
    assert not await view.run(view.set_enabled, row.id, True)
    assert "skips missed runs" in str(view.notice.value)


# -- the read-only monitor -----------------------------------------------------------------


async def test_a_read_only_token_sees_the_list_without_the_controls() -> None:
    plane = ReadOnlyPlane(list(CHANNELS))
    plane.clock = lambda: NOW
    await plane.create_schedule("telegram", "4242", "weekly report", cron="0 9 * * MON",
                                timezone="Europe/Paris")
    view = make_view(plane)
    await view.load()
    everything = shown_texts(view.root)
    assert "at 09:00 on Monday (Europe/Paris)" in everything
    assert "Read-only token" in everything
    assert "Add schedule" not in everything
    for verb in ("Pause", "Resume", "Delete"):
        assert f"{verb} job 1" not in everything


async def test_the_monitor_over_the_control_api(tmp_path: Path, fake_llm: FakeOpenAI) -> None:
    """A real gateway behind the control API: the monitor token lists jobs and has the rule
    explained, is refused changes, and its view shows no editing controls; the admin token's
    view can add a job, a refusal said on the form."""
    config = tmp_path / "pyclaw.yaml"
    config.write_text(yaml.safe_dump({"server": {"port": 0, "control_api": True},
                                      "providers": [provider_section(fake_llm)],
                                      "channels": {"local": {"type": "local"}}}))
    host = await GatewayHost.start(config, tmp_path / "data")
    try:
        assert host.server is not None
        secrets = host.runtime.secrets
        monitor = await RemoteControlPlane(host.server.url,
                                           secrets.get(MONITOR_TOKEN_KEY) or "").connect()
        admin = await RemoteControlPlane(host.server.url,
                                         secrets.get(ADMIN_TOKEN_KEY) or "").connect()
        try:
            assert monitor.read_only and not admin.read_only
            words = await monitor.explain_schedule(cron="0 9 * * MON", timezone="Europe/Paris")
            assert words.startswith("at 09:00 on Monday (Europe/Paris); next run ")
            with pytest.raises(FieldRefused, match="not a cron expression") as refused:
                await monitor.explain_schedule(cron="0 9 * *", timezone="UTC")
            assert refused.value.field == "cron"
            with pytest.raises(AdminRequired):
                await monitor.create_schedule("local", "app", "hi", cron="* * * * *",
                                              timezone="UTC")

            view = SchedulesView(admin, zone="Europe/Paris")
            await view.load()
            fill_recurring(view, chat="app")
            view.form.channel.value = "local"
            view.form.cron.value = "0 9 * *"
            assert await view.form.save() is None
            error = view.form.field_error("cron")  # on its field, as on the desktop
            assert error is not None and "not a cron expression" in error
            assert not view.form.error.visible
            view.form.cron.value = "0 9 * * MON"
            assert await view.form.save() is not None

            watcher = SchedulesView(monitor, zone="UTC")
            await watcher.load()
            everything = shown_texts(watcher.root)
            assert "Message: weekly report" in everything and "local · chat app" in everything
            assert "Add schedule" not in everything and "Pause job 1" not in everything
        finally:
            await monitor.close()
            await admin.close()
    finally:
        await host.stop()


# -- reloads -------------------------------------------------------------------------------


async def test_reloads_when_opened_and_now_and_then_while_shown(
        plane: FakeControlPlane) -> None:
    calls = 0
    real = plane.schedules

    async def counted(channel: str | None = None) -> list[Any]:
        nonlocal calls
        calls += 1
        return await real(channel)

    plane.schedules = counted  # type: ignore[method-assign]
    view = make_view(plane)
    view.root.visible = False
    await view.load()
    assert calls == 1
    view.apply([], NOW + 1)  # hidden: nothing
    assert calls == 1 and view._reload is None

    await plane.create_schedule("telegram", "1", "made elsewhere", cron="* * * * *",
                                timezone="UTC")
    view.root.visible = True  # opened
    view.apply([], NOW + 2)
    await eventually(lambda: calls == 2)
    await asyncio.sleep(0)
    view.apply([], NOW + 3)  # the reload's rows are shown on the next tick
    assert [c.row.body for c in view.cards.values()] == ["made elsewhere"]

    view.apply([], NOW + 4)
    await asyncio.sleep(0)
    assert calls == 2  # shown, but not due yet
    view.apply([], NOW + 3 + RELOAD_INTERVAL)
    await eventually(lambda: calls == 3)


def test_the_shell_has_a_schedules_destination(plane: FakeControlPlane) -> None:
    assert "Schedules" in [d.label for d in DESTINATIONS]
    shell = Shell(plane)
    assert shell.show("/schedules") == "/schedules"
    assert isinstance(shell.current, SchedulesView)
