"""Schedules: the jobs that send a message (or run a task) at set times, and a form to add one.

A job fires once at a date and time, or on a cron expression, each read in an IANA time
zone (the machine's by default). While the owner types, the form asks the plane what the
timing means ("at 09:00 on Monday (Europe/Paris); next run ..."), checked by the same
rules a new job must pass; a refused job names its field, and the error goes there.

A read-only monitor token sees the list without the controls that would change it. The
list is reloaded when the view is opened, after each change, and every ``RELOAD_INTERVAL``
seconds while it is shown (a job that fired has a new next run; nothing on the bus says so).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import flet as ft

from pyclaw_app.control import ControlPlane, ScheduleRow, TrafficRow
from pyclaw_app.model import Event
from views.confirm import ask_first
from views.i18n import t
from views.state import Clock

__all__ = [
    "JobCard",
    "ScheduleForm",
    "SchedulesView",
    "action_choices",
    "local_time",
    "machine_zone",
    "missed_choices",
    "next_run_text",
    "recent_chats",
    "relative",
    "repeat_choices",
]

_log = logging.getLogger(__name__)

RELOAD_INTERVAL = 30.0
RECENT_CHATS = 6


def action_choices() -> dict[str, str]:
    """What a job does, by its stored kind (built per form: the words follow the language)."""
    return {"text": t("Send this message"), "task": t("Have the assistant do this (a task)")}


def repeat_choices() -> dict[str, str]:
    return {"once": t("Once, at a date and time"), "cron": t("Repeatedly (cron expression)")}


def missed_choices() -> dict[str, str]:
    return {"run_once": t("Send it once when the gateway is back"), "skip": t("Skip it")}


_FIELD_OF = {"in_minutes": "at"}
"""ScheduleError fields shown on another field's control (one with none: under the form)."""


# -- text (no Flet) ------------------------------------------------------------------------


def machine_zone(environ: Mapping[str, str] = os.environ,
                 localtime: Path = Path("/etc/localtime"),
                 timezone_file: Path = Path("/etc/timezone")) -> str:
    """This machine's IANA time zone name: ``TZ``, else what /etc/localtime links to, else
    /etc/timezone, else UTC (Windows and Android say it no other way the stdlib reads)."""
    tz = environ.get("TZ", "").strip().lstrip(":")
    if tz:
        name = _zone_in_path(tz) if tz.startswith("/") else tz
        if name:
            return name
    try:
        name = _zone_in_path(str(localtime.resolve(strict=True)))
        if name:
            return name
    except OSError:
        pass
    try:
        name = timezone_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    return name or "UTC"


def _zone_in_path(path: str) -> str:
    """``Europe/Paris`` from ``/usr/share/zoneinfo/Europe/Paris``; "" when it is not there."""
    marker = "zoneinfo/"
    return path.split(marker, 1)[1] if marker in path else ""


def local_time(ts: float) -> str:
    """A moment in the panel's local time, with its zone: ``Mon 2026-12-07 09:00 CET``."""
    return datetime.fromtimestamp(ts).astimezone().strftime("%a %Y-%m-%d %H:%M %Z").strip()


def relative(ts: float, now: float) -> str:
    """``in 5 min``, ``in 3 h``, ``in 2 days``; ``due now`` once it is not in the future."""
    seconds = int(ts - now)
    if seconds <= 0:
        return t("due now")
    if seconds < 3600:
        return t("in {minutes} min", minutes=max(1, seconds // 60))
    if seconds < 86400:
        return t("in {hours} h", hours=seconds // 3600)
    days = seconds // 86400
    return t("in 1 day") if days == 1 else t("in {days} days", days=days)


def next_run_text(row: ScheduleRow, now: float) -> str:
    """What comes next for a job, in the panel's local time."""
    if not row.enabled and row.paused_reason:
        return t("Paused by the gateway: {reason}. It runs again only when resumed",
                 reason=row.paused_reason)
    if not row.enabled:
        return t("Paused: it runs again only when resumed")
    if row.next_run is None:
        if row.last_run is not None:
            return t("Done: ran {when}", when=local_time(row.last_run))
        return t("No further runs")
    return t("Next run {when} ({relative})", when=local_time(row.next_run),
             relative=relative(row.next_run, now))


def recent_chats(rows: Sequence[TrafficRow], limit: int = RECENT_CHATS
                 ) -> list[tuple[str, str]]:
    """(chat, who wrote there) of newest-first traffic rows, each chat once; the writer is
    taken from the chat's latest inbound row (a reply's sender is the assistant)."""
    seen: dict[str, str] = {}
    for row in rows:
        if not row.chat:
            continue
        if row.chat not in seen:
            if len(seen) >= limit:
                continue
            seen[row.chat] = ""
        if not seen[row.chat] and row.direction == "in":
            seen[row.chat] = row.sender
    return list(seen.items())


def _options(choices: Mapping[str, str]) -> list[ft.DropdownOption]:
    return [ft.DropdownOption(key=key, text=text) for key, text in choices.items()]


# -- the form ------------------------------------------------------------------------------


class ScheduleForm:
    """Add a job: where, what, when (once or cron), in which zone, and what a missed run does."""

    def __init__(self, plane: ControlPlane, *, zone: str,
                 on_saved: Callable[[ScheduleRow], Awaitable[None]],
                 on_cancel: Callable[[], None]) -> None:
        self.plane = plane
        self._on_saved = on_saved
        self._on_cancel = on_cancel
        self._preview_seq = 0
        self.channel = ft.Dropdown(label=t("Channel"), width=260, options=[],
                                   on_select=self._channel_changed)
        self.chat = ft.TextField(label=t("Chat id"), width=260,
                                 helper=t("The chat's id as Logs shows it"))
        self.recent_label = ft.Text(t("Recent chats:"), size=12,
                                    color=ft.Colors.ON_SURFACE_VARIANT)
        self.recent = ft.Row(wrap=True, spacing=4, run_spacing=4, visible=False,
                             controls=[self.recent_label])
        self.action = ft.Dropdown(label=t("What it does"), width=340, value="text",
                                  options=_options(action_choices()),
                                  on_select=self._action_changed)
        self.text = ft.TextField(label=t("Message"), width=620, multiline=True, min_lines=2,
                                 max_lines=6,
                                 helper=t("Sent as written"))
        self.repeats = ft.Dropdown(label=t("When"), width=300, value="cron",
                                   options=_options(repeat_choices()),
                                   on_select=self._repeats_changed)
        # examples go in the helper, not a hint: a hint joins the label a screen reader hears
        self.at = ft.TextField(label=t("Date and time"), width=300,
                               helper=t("YYYY-MM-DD HH:MM, e.g. 2026-12-07 09:00"),
                               on_change=self._timing_changed)
        self.cron = ft.TextField(label=t("Cron expression"), width=300,
                                 helper=t("min hour day month weekday: 0 9 * * MON"),
                                 on_change=self._timing_changed)
        self.timezone = ft.TextField(label=t("Time zone"), width=220, value=zone,
                                     helper=t("IANA name, e.g. UTC"),
                                     on_change=self._timing_changed)
        self.missed = ft.Dropdown(label=t("If a run is missed"), width=400, value="run_once",
                                  options=_options(missed_choices()),
                                  helper_text=t("The gateway was down or the machine asleep"))
        self.preview = ft.Text(size=13, visible=False)
        self.error = ft.Text(color=ft.Colors.ERROR, visible=False, selectable=True)
        self.save_button = ft.FilledButton(t("Save schedule"), icon=ft.Icons.SAVE_OUTLINED,
                                           on_click=self._save_clicked)
        self.fields: dict[str, ft.TextField | ft.Dropdown] = {
            "channel": self.channel, "chat": self.chat, "action": self.action,
            "text": self.text, "at": self.at, "cron": self.cron, "timezone": self.timezone,
            "missed": self.missed}
        self.root = ft.Container(
            padding=16, border_radius=12, border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
            content=ft.Column(spacing=14, controls=[
                ft.Text(t("Add a schedule"), theme_style=ft.TextThemeStyle.TITLE_MEDIUM,
                        weight=ft.FontWeight.W_600),
                ft.Row(wrap=True, spacing=12, run_spacing=12,
                       vertical_alignment=ft.CrossAxisAlignment.START,
                       controls=[self.channel, self.chat]),
                self.recent,
                self.action,
                self.text,
                ft.Row(wrap=True, spacing=12, run_spacing=12,
                       vertical_alignment=ft.CrossAxisAlignment.START,
                       controls=[self.repeats, self.at, self.cron, self.timezone]),
                self.preview,
                self.missed,
                self.error,
                ft.Row(spacing=8, controls=[
                    self.save_button,
                    ft.TextButton(t("Cancel"), on_click=self._cancel_clicked)]),
            ]))
        self.show_repeats()

    # -- state ---------------------------------------------------------------------------------

    def set_channels(self, names: Sequence[str]) -> None:
        self.channel.options = [ft.DropdownOption(key=n, text=n) for n in names]
        if self.channel.value not in names:
            self.channel.value = names[0] if names else None

    async def load_recent(self) -> None:
        """The chats the chosen channel saw lately, offered as one-click fills."""
        channel = self.channel.value
        chats: list[tuple[str, str]] = []
        if channel:
            try:
                chats = recent_chats(await self.plane.recent_traffic(limit=200,
                                                                     channel=channel))
            except Exception as exc:  # noqa: BLE001 - the chat id can still be typed
                _log.warning("could not list recent chats of %s: %s", channel, exc)
        self.recent.controls = [self.recent_label, *(
            ft.TextButton(f"{chat} ({who})" if who else chat,
                          tooltip=t("Use chat {chat}", chat=chat),
                          on_click=lambda e, c=chat: self.use_chat(c, e.page))
            for chat, who in chats)]
        self.recent.visible = bool(chats)

    def use_chat(self, chat: str, page: ft.Page | ft.BasePage | None = None) -> None:
        self.chat.value = chat
        self.chat.error = None
        if page is not None:
            page.update()

    def show_repeats(self) -> None:
        once = self.repeats.value == "once"
        self.at.visible = once
        self.cron.visible = not once

    def show_action(self) -> None:
        task = self.action.value == "task"
        self.text.label = t("Task") if task else t("Message")
        self.text.helper = (t("The assistant answers it when it fires; its answer is sent")
                            if task else t("Sent as written"))

    def timing(self) -> dict[str, str | None]:
        """The timing as create_schedule and explain_schedule take it."""
        once = self.repeats.value == "once"
        return {"at": (self.at.value or "").strip() if once else None,
                "cron": None if once else (self.cron.value or "").strip(),
                "timezone": (self.timezone.value or "").strip() or None}

    def values(self) -> dict[str, str | None]:
        return {"channel": self.channel.value or "", "chat": (self.chat.value or "").strip(),
                "text": self.text.value or "", "kind": self.action.value or "text",
                "missed": self.missed.value or "run_once", **self.timing()}

    def clear_errors(self) -> None:
        for control in self.fields.values():
            if isinstance(control, ft.TextField):
                control.error = None
            else:
                control.error_text = None
        self.error.visible = False

    def show_error(self, field: str, message: str) -> None:
        """A refusal on the control it is about; one the form has no control for goes
        under the form."""
        control = self.fields.get(_FIELD_OF.get(field, field))
        if isinstance(control, ft.TextField):
            control.error = message
        elif isinstance(control, ft.Dropdown):
            control.error_text = message
        else:
            self.error.value = message
            self.error.visible = True

    def field_error(self, field: str) -> str | None:
        control = self.fields[field]
        value = control.error if isinstance(control, ft.TextField) else control.error_text
        return str(value) if value else None

    def reset(self) -> None:
        """Ready for the next job: the message goes, where and when stay as a starting point."""
        self.text.value = ""
        self.clear_errors()

    # -- work ----------------------------------------------------------------------------------

    async def refresh_preview(self) -> None:
        """The timing in words as far as it is typed; a later keystroke's answer wins."""
        self._preview_seq += 1
        seq = self._preview_seq
        timing = self.timing()
        if not (timing["at"] or timing["cron"]):
            self.preview.visible = False
            return
        try:
            words, failed = await self.plane.explain_schedule(**timing), False
        except Exception as exc:  # noqa: BLE001 - said under the fields while typing
            words, failed = str(exc), True
        if seq != self._preview_seq:
            return
        self.preview.value = (t("Not yet valid: {words}", words=words) if failed
                              else t("Runs {words}", words=words))
        self.preview.color = ft.Colors.ERROR if failed else ft.Colors.PRIMARY
        self.preview.visible = True

    async def save(self) -> ScheduleRow | None:
        """Create the job; a refusal is shown on its field and nothing else changes."""
        self.clear_errors()
        values = self.values()
        try:
            row = await self.plane.create_schedule(
                values["channel"] or "", values["chat"] or "", values["text"] or "",
                kind=values["kind"] or "text", at=values["at"], cron=values["cron"],
                timezone=values["timezone"], missed=values["missed"] or "run_once")
        except Exception as exc:  # noqa: BLE001 - every refusal is shown on the form
            self.show_error(str(getattr(exc, "field", "")), str(exc))
            return None
        self.reset()
        await self._on_saved(row)
        return row

    # -- handlers ------------------------------------------------------------------------------

    async def _channel_changed(self, e: ft.Event[ft.Dropdown]) -> None:
        await self.load_recent()
        e.page.update()

    def _action_changed(self, e: ft.Event[ft.Dropdown]) -> None:
        self.show_action()
        e.page.update()

    async def _repeats_changed(self, e: ft.Event[ft.Dropdown]) -> None:
        self.show_repeats()
        await self.refresh_preview()
        e.page.update()

    async def _timing_changed(self, e: ft.Event[ft.TextField]) -> None:
        await self.refresh_preview()
        e.page.update()

    def _cancel_clicked(self, e: ft.Event[ft.Control]) -> None:
        self._on_cancel()
        e.page.update()

    async def _save_clicked(self, e: ft.Event[ft.Control]) -> None:
        """One job per save: a second tap that reaches us before the browser has drawn the
        button disabled (a double click, a slow link) is ignored, not saved again."""
        if self.save_button.disabled:
            return
        self.save_button.disabled = True
        e.page.update()
        try:
            await self.save()
        finally:
            self.save_button.disabled = False
        e.page.update()


# -- the list ------------------------------------------------------------------------------


class JobCard:
    """One job: when in words, what comes next, where, what, and Pause/Resume and Delete."""

    def __init__(self, row: ScheduleRow, view: SchedulesView) -> None:
        self.row = row
        self.icon = ft.Icon(ft.Icons.REPEAT if row.cron else ft.Icons.EVENT, size=26)
        self.timing = ft.Text(row.timing, weight=ft.FontWeight.W_600, size=15)
        self.state = ft.Text(size=12, weight=ft.FontWeight.W_500)
        self.next = ft.Text(size=13)
        where = t("{channel} · chat {chat}", channel=row.channel, chat=row.chat) + (
            t(" · thread {thread}", thread=row.thread) if row.thread else "")
        who = t("you") if row.created_by == "owner" else row.created_by
        self.where = ft.Text(t("{where} · made by {who}", where=where, who=who), size=12,
                             color=ft.Colors.ON_SURFACE_VARIANT)
        self.body = ft.Text(t("Task: {body}", body=row.body) if row.action == "task"
                            else t("Message: {body}", body=row.body),
                            max_lines=3, overflow=ft.TextOverflow.ELLIPSIS)
        self.missed = ft.Text(t("Missed runs: skipped") if row.missed == "skip"
                              else t("Missed runs: sent once when back"),
                              size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.pause = ft.IconButton(ft.Icons.PAUSE_CIRCLE_OUTLINE,
                                   tooltip=t("Pause job {id}", id=row.id),
                                   on_click=view.handler(view.set_enabled, row.id, False))
        self.resume = ft.IconButton(ft.Icons.PLAY_CIRCLE_OUTLINE,
                                    tooltip=t("Resume job {id}", id=row.id),
                                    on_click=view.handler(view.set_enabled, row.id, True))
        self.delete = ft.IconButton(ft.Icons.DELETE_OUTLINE,
                                    tooltip=t("Delete job {id}", id=row.id),
                                    icon_color=ft.Colors.ERROR,
                                    on_click=lambda e: view.confirm_delete(self.row, e.page))
        self.actions = ft.Row(spacing=0, visible=not view.read_only,
                              controls=[self.pause, self.resume, self.delete])
        self.root = ft.Container(
            padding=14, border_radius=12, border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
            content=ft.Row(vertical_alignment=ft.CrossAxisAlignment.START, spacing=12,
                           controls=[
                               self.icon,
                               ft.Column(expand=True, spacing=4, controls=[
                                   ft.Row(wrap=True, spacing=10, controls=[self.timing,
                                                                           self.state]),
                                   self.next, self.where, self.body, self.missed]),
                               self.actions]))
        self.show(row, view.now)

    def show(self, row: ScheduleRow, now: float) -> None:
        self.row = row
        active = row.enabled and row.next_run is not None
        self.state.value = (t("paused") if not row.enabled else t("active") if active
                            else t("done"))
        self.state.color = (ft.Colors.GREEN_700 if active else ft.Colors.ON_SURFACE_VARIANT)
        self.icon.color = ft.Colors.PRIMARY if active else ft.Colors.ON_SURFACE_VARIANT
        self.next.value = next_run_text(row, now)
        self.pause.visible = row.enabled and row.next_run is not None
        self.resume.visible = not row.enabled


class SchedulesView:
    """The jobs, newest plan first by next run, with the Add form above them."""

    def __init__(self, plane: ControlPlane, *, wall_clock: Clock = time.time,
                 zone: str | None = None) -> None:
        self.plane = plane
        self._wall_clock = wall_clock
        # the monitor's remote plane says so when its token may only read (views.connect)
        self.read_only = bool(getattr(plane, "read_only", False))
        self.now = wall_clock()
        self.rows: list[ScheduleRow] = []
        self.cards: dict[int, JobCard] = {}
        self._shown = False
        self._last_reload = 0.0
        self._reload: asyncio.Task[list[ScheduleRow]] | None = None
        self.form = ScheduleForm(plane, zone=zone or machine_zone(), on_saved=self._saved,
                                 on_cancel=self.close_form)
        self.form.root.visible = False
        self.add_button = ft.FilledButton(t("Add schedule"), icon=ft.Icons.ADD_ALARM,
                                          visible=not self.read_only,
                                          on_click=self._add_clicked)
        self.refresh_button = ft.IconButton(ft.Icons.REFRESH, tooltip=t("Reload schedules"),
                                            on_click=self._refresh_clicked)
        self.read_only_note = ft.Text(t("Read-only token: the jobs are listed, but adding, "
                                        "pausing and deleting them needs the admin token "
                                        "(`pyclaw monitor-token --admin`)."),
                                      size=12, visible=self.read_only,
                                      color=ft.Colors.ON_SURFACE_VARIANT)
        self.notice = ft.Text(color=ft.Colors.ERROR, visible=False, selectable=True)
        self.list = ft.Column(spacing=10)
        self.empty = ft.Container(
            padding=24, border_radius=12, border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
            content=ft.Text(t("No scheduled jobs. Add one here, or ask the assistant in a "
                              "chat (\"remind me every Monday at 9\")."),
                            color=ft.Colors.ON_SURFACE_VARIANT))
        self._root = ft.Column(
            expand=True, spacing=14, scroll=ft.ScrollMode.AUTO,
            controls=[
                ft.Row(wrap=True, spacing=16, run_spacing=8,
                       alignment=ft.MainAxisAlignment.SPACE_BETWEEN,
                       vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=[
                           ft.Text(t("Schedules"), theme_style=ft.TextThemeStyle.HEADLINE_SMALL),
                           ft.Row(spacing=8, tight=True,
                                  controls=[self.add_button, self.refresh_button])]),
                self.read_only_note,
                self.notice,
                self.form.root,
                self.empty,
                self.list,
            ])

    @property
    def root(self) -> ft.Control:
        return self._root

    # -- data ----------------------------------------------------------------------------------

    async def load(self) -> None:
        """The configured channels for the form, then the jobs."""
        try:
            channels = await self.plane.channels()
        except Exception as exc:  # noqa: BLE001 - the list can still be shown
            _log.warning("could not list channels for the schedule form: %s", exc)
            channels = []
        self.form.set_channels([c.name for c in channels])
        await self.form.load_recent()
        await self.reload()

    async def reload(self) -> None:
        """The list as it is now. A background reload still under way was asked before
        this (and before the change that may have caused it): its rows are dropped."""
        if self._reload is not None:
            self._reload.cancel()
            self._reload = None
        self.now = self._last_reload = self._wall_clock()
        try:
            rows = await self.plane.schedules()
        except Exception as exc:  # noqa: BLE001 - said on the view; the old list stays
            _log.warning("could not load schedules: %s", exc)
            self.say(t("Could not load the schedules: {error}", error=exc))
            return
        self.notice.visible = False
        self._shown = self._root.visible is not False
        self.show(rows)

    def show(self, rows: Sequence[ScheduleRow]) -> None:
        def order(r: ScheduleRow) -> tuple[bool, float, int]:
            return (r.next_run is None or not r.enabled, r.next_run or 0.0, r.id)

        self.rows = sorted(rows, key=order)
        cards: dict[int, JobCard] = {}
        for row in self.rows:
            card = self.cards.get(row.id)
            if card is None:
                card = JobCard(row, self)
            else:
                card.show(row, self.now)
            cards[row.id] = card
        self.cards = cards
        self.list.controls = [c.root for c in cards.values()]
        self.empty.visible = not self.rows

    def say(self, message: str) -> None:
        self.notice.value = message
        self.notice.visible = True

    def apply(self, events: Sequence[Event], now: float) -> None:
        """Reload in the background when the view is opened, and now and then while shown."""
        task = self._reload
        if task is not None and task.done():
            self._reload = None
            try:
                rows = task.result()
            except asyncio.CancelledError:
                return
            except Exception as exc:  # noqa: BLE001 - shown, tried again on the next tick
                _log.warning("could not reload schedules: %s", exc)
                self.say(t("Could not load the schedules: {error}", error=exc))
                return
            self.notice.visible = False
            self.now = now
            self.show(rows)
            return
        shown = self._root.visible is not False
        opened = shown and not self._shown
        self._shown = shown
        if task is None and shown and (opened or now - self._last_reload >= RELOAD_INTERVAL):
            self._last_reload = now
            self._reload = asyncio.get_running_loop().create_task(
                self.plane.schedules(), name="ui-schedules-reload")

    # -- actions -------------------------------------------------------------------------------

    def handler(self, action: Callable[..., Awaitable[object]], *args: object
                ) -> Callable[[ft.Event[ft.Control]], Awaitable[None]]:
        async def on_event(e: ft.Event[ft.Control]) -> None:
            await self.run(action, *args)
            e.page.update()

        return on_event

    async def run(self, action: Callable[..., Awaitable[object]], *args: object) -> bool:
        """Do a change, then show the list as it is now; a refusal goes to the notice line."""
        self.notice.visible = False
        try:
            await action(*args)
        except Exception as exc:  # noqa: BLE001 - every failure is shown where it happened
            _log.warning("schedule action failed: %s", exc)
            self.say(t("That did not work: {error}", error=exc))
            return False
        await self.reload()
        return True

    async def set_enabled(self, job_id: int, enabled: bool) -> None:
        if await self.plane.set_schedule_enabled(job_id, enabled) is None:
            raise ValueError(t("job {id} is gone (deleted elsewhere?)", id=job_id))

    async def delete(self, job_id: int) -> None:
        if not await self.plane.delete_schedule(job_id):
            raise ValueError(t("job {id} is gone already", id=job_id))

    def confirm_delete(self, row: ScheduleRow, page: ft.Page | ft.BasePage | None
                       ) -> ft.AlertDialog:
        """Ask first: a deleted job cannot be brought back."""
        return ask_first(page, title=t("Delete job {id}?", id=row.id), action=t("Delete"),
                         body=t("\"{body}\" ({timing}) on {channel} will not be sent again. "
                                "To stop it for a while, pause it instead.",
                                body=row.body[:120], timing=row.timing, channel=row.channel),
                         on_confirm=lambda e: self.run(self.delete, row.id))

    def open_form(self) -> None:
        self.form.root.visible = True

    def close_form(self) -> None:
        self.form.root.visible = False
        self.form.clear_errors()

    async def _saved(self, row: ScheduleRow) -> None:
        self.close_form()
        await self.reload()

    # -- handlers ------------------------------------------------------------------------------

    async def _add_clicked(self, e: ft.Event[ft.Control]) -> None:
        self.open_form()
        await self.form.load_recent()
        await self.form.refresh_preview()
        e.page.update()

    async def _refresh_clicked(self, e: ft.Event[ft.Control]) -> None:
        await self.reload()
        e.page.update()
