"""Logs: per-channel log lines paged from SQLite, journal records, details, export.

Filters (channel, level, time range, text) go to the plane's query; live
``log`` events matching them are added on top in the usual batches, in a
bounded window. A line about a message ("message 42: ...") and a row of the
Messages tab open the journal record with its LLM calls in the detail panel.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import flet as ft

from pyclaw_app.control import ControlPlane, LogRow, TrafficRow
from pyclaw_app.model import Event, EventKind
from views import style
from views.forms import labelled
from views.i18n import t
from views.message_detail import DetailPanel, level_color
from views.person_filter import PersonPicker
from views.traffic import cell, message_row

__all__ = [
    "ALL",
    "LEVELS",
    "MAX_ROWS",
    "PAGE_SIZE",
    "TIME_RANGES",
    "LogFilter",
    "LogsView",
    "message_id_of",
]

_log = logging.getLogger(__name__)

PAGE_SIZE = 100
MAX_ROWS = 1000
"""Live lines push the oldest out beyond this; "Load older" can still page further back."""
ALL = "all"
LEVELS = ("debug", "info", "warning", "error")
TIME_RANGES: dict[str, float | None] = {
    "Last 15 minutes": 15 * 60,
    "Last hour": 3600,
    "Last day": 86400,
    "All time": None,
}


def range_text(label: str) -> str:
    """A time range as shown in the filter; the English label stays its key."""
    shown = {"Last 15 minutes": t("Last 15 minutes"), "Last hour": t("Last hour"),
             "Last day": t("Last day"), "All time": t("All time")}
    return shown.get(label, label)


_MESSAGE_REF = re.compile(r"\bmessage (\d+)\b", re.IGNORECASE)


def message_id_of(row: LogRow) -> int | None:
    """The journal id a log line is about: ``data["message_id"]`` or "message N" in the text."""
    for key in ("message_id", "message"):
        value = row.data.get(key) if row.data else None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.isdigit():
            return int(value)
    match = _MESSAGE_REF.search(row.message)
    return int(match.group(1)) if match else None


@dataclass(frozen=True, slots=True)
class LogFilter:
    channel: str | None = None
    level: str | None = None
    search: str = ""
    range_label: str = "All time"

    def since(self, now: float) -> float | None:
        seconds = TIME_RANGES.get(self.range_label)
        return None if seconds is None else now - seconds

    def query(self, now: float) -> dict[str, Any]:
        """Keyword arguments for plane.logs / plane.export_logs."""
        return {"channel": self.channel, "level": self.level,
                "search": self.search or None, "since": self.since(now)}

    def matches(self, row: LogRow) -> bool:
        """Whether a live line belongs in the list (it is new, so in any time range)."""
        if self.channel is not None and row.channel != self.channel:
            return False
        if self.level is not None and row.level != self.level:
            return False
        needle = self.search.lower()
        return not needle or needle in row.message.lower()


def _level_chip(level: str) -> ft.Control:
    color = level_color(level)
    return ft.Container(
        width=72,
        content=ft.Container(
            padding=ft.Padding.symmetric(horizontal=8, vertical=2),
            border_radius=10,
            bgcolor=ft.Colors.with_opacity(0.14, color),
            content=ft.Text(level.upper(), size=11, weight=ft.FontWeight.BOLD, color=color),
        ),
    )


class LogsView:
    def __init__(self, plane: ControlPlane, *, clock: Any = time.time) -> None:
        self.plane = plane
        self._clock = clock
        self.filter = LogFilter()
        self.rows: list[LogRow] = []
        """Shown lines, newest first; live ones (not yet in a page) have id 0."""
        self.traffic: list[TrafficRow] = []
        self.exhausted = False
        self._picker: ft.FilePicker | None = None
        self.channel_names: set[str] = set()

        self.channel_filter = ft.Dropdown(label=t("Channel"), value=ALL, width=200,
                                          options=[ft.DropdownOption(key=ALL,
                                                                     text=t("All channels"))],
                                          on_select=self._on_filter)
        self.level_filter = ft.Dropdown(
            label=t("Level"), value=ALL, width=150, on_select=self._on_filter,
            options=[ft.DropdownOption(key=ALL, text=t("All levels")),
                     *(ft.DropdownOption(key=lv, text=lv) for lv in LEVELS)])
        self.range_filter = ft.Dropdown(
            label=t("Time range"), value="All time", width=190, on_select=self._on_filter,
            options=[ft.DropdownOption(key=k, text=range_text(k)) for k in TIME_RANGES])
        self.search_field = ft.TextField(label=t("Search"), prefix_icon=ft.Icons.SEARCH,
                                         width=260,
                                         on_submit=self._on_filter, dense=True)
        self.export_jsonl = ft.OutlinedButton(t("Export JSONL"), icon=ft.Icons.DOWNLOAD,
                                              on_click=self._on_export)
        self.export_csv = ft.OutlinedButton(t("Export CSV"), icon=ft.Icons.TABLE_VIEW,
                                            on_click=self._on_export)
        self.notice = ft.Text(visible=False, size=13, selectable=True)

        self.lines = ft.ListView(expand=True, spacing=1)
        self.lines_empty = ft.Text(t("No log lines match these filters."),
                                   color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        self.older_button = ft.TextButton(t("Load older"), icon=ft.Icons.EXPAND_MORE,
                                          on_click=self._on_older)
        self.messages = ft.ListView(expand=True, spacing=1)
        self.messages_empty = ft.Text(t("No messages in the journal for this channel yet."),
                                      color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        self.detail = DetailPanel(plane)
        self.person = PersonPicker(plane, self._on_person)

        lines_tab = ft.Column(expand=True, spacing=4, controls=[
            self.lines_empty, self.lines,
            ft.Row([self.older_button], alignment=ft.MainAxisAlignment.CENTER)])
        messages_tab = ft.Column(expand=True, spacing=4, controls=[
            ft.Row([ft.Text(t("The newest 200 journal records; pick one for its LLM calls."),
                            size=12, color=ft.Colors.ON_SURFACE_VARIANT, expand=True),
                    ft.IconButton(ft.Icons.REFRESH, tooltip=t("Refresh messages"),
                                  on_click=self._on_refresh_messages)]),
            self.messages_empty, self.messages])
        self.tabs = ft.Tabs(
            length=2,
            selected_index=0,
            expand=True,
            on_change=self._on_tab,
            content=ft.Column(expand=True, spacing=4, controls=[
                ft.TabBar(tabs=[ft.Tab(label=t("Log lines"), icon=ft.Icons.NOTES),
                                ft.Tab(label=t("Messages"), icon=ft.Icons.FORUM_OUTLINED)]),
                ft.TabBarView(expand=True, controls=[lines_tab, messages_tab]),
            ]),
        )
        self._root = ft.Column(expand=True, spacing=12, controls=[
            ft.Row([ft.Text(t("Logs"), theme_style=ft.TextThemeStyle.HEADLINE_SMALL, expand=True),
                    self.export_jsonl, self.export_csv]),
            ft.Row(wrap=True, spacing=12, run_spacing=8,
                   vertical_alignment=ft.CrossAxisAlignment.CENTER,
                   controls=[labelled(self.channel_filter, t("Channel")),
                             labelled(self.level_filter, t("Level")),
                             labelled(self.range_filter, t("Time range")), self.search_field,
                             self.person.root]),
            self.notice,
            ft.Row(expand=True, spacing=12, vertical_alignment=ft.CrossAxisAlignment.STRETCH,
                   controls=[
                       ft.Container(expand=True, border_radius=12, padding=6,
                                    border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
                                    content=self.tabs),
                       self.detail.root,
                   ]),
        ])

    @property
    def root(self) -> ft.Control:
        return self._root

    # -- loading -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Channel names for the filter, then both tabs; a failure is shown, never raised.

        The live session loads every panel before the page works at all, so one
        view's trouble must not take the others down.
        """
        try:
            await self._load()
        except Exception as exc:  # noqa: BLE001 - shown in the view
            _log.warning("logs view could not load: %s", exc)
            self._say(t("Could not load the logs: {error}", error=exc), error=True)

    async def _load(self) -> None:
        channels = await self.plane.channels()
        self.channel_names = {c.name for c in channels}
        if self.filter.channel:
            self.channel_names.add(self.filter.channel)
        self._show_channel_names()
        await self.person.load()
        await self.reload()

    def _show_channel_names(self) -> None:
        self.channel_filter.options = [
            ft.DropdownOption(key=ALL, text=t("All channels")),
            *(ft.DropdownOption(key=n, text=n) for n in sorted(self.channel_names))]

    async def reload(self) -> None:
        """Both tabs afresh for the current filter."""
        await self.load_lines()
        await self.load_messages()

    async def set_filter(self, *, channel: str | None = None, level: str | None = None,
                         search: str = "", range_label: str = "All time") -> None:
        """Change every filter at once (also mirrored in the filter controls) and reload."""
        self.filter = LogFilter(channel, level, search, range_label)
        self.channel_filter.value = channel or ALL
        self.level_filter.value = level or ALL
        self.range_filter.value = range_label
        self.search_field.value = search
        await self.reload()

    async def load_lines(self) -> None:
        rows = await self.plane.logs(**self.filter.query(self._clock()), limit=PAGE_SIZE)
        self.rows = list(rows)
        self.exhausted = len(rows) < PAGE_SIZE
        self.lines.controls = [self._line(r) for r in self.rows]
        self._show_lines_state()

    async def load_older(self) -> int:
        """The next page below the oldest paged line; returns how many lines came."""
        paged = [r.id for r in self.rows if r.id > 0]
        before = min(paged) if paged else None
        rows = await self.plane.logs(**self.filter.query(self._clock()), before_id=before,
                                     limit=PAGE_SIZE)
        if before is None:
            rows = self._without_live(rows)
        self.exhausted = len(rows) < PAGE_SIZE
        self.rows += rows
        self.lines.controls += [self._line(r) for r in rows]
        self._show_lines_state()
        return len(rows)

    def _without_live(self, rows: Sequence[LogRow]) -> list[LogRow]:
        """A first page fetched after live lines arrived repeats them: keep one copy."""
        live = [(r.channel, r.level, r.message) for r in self.rows if r.id == 0]
        kept = []
        for row in rows:
            key = (row.channel, row.level, row.message)
            if key in live:
                live.remove(key)
            else:
                kept.append(row)
        return kept

    async def load_messages(self) -> None:
        if self.person.selected is not None:
            self.traffic = await self.person.traffic(self.filter.channel)
        else:
            self.traffic = await self.plane.recent_traffic(200, channel=self.filter.channel)
        self.messages.controls = [self._traffic_line(r) for r in self.traffic]
        self.messages_empty.visible = not self.traffic

    def apply(self, events: Sequence[Event], now: float) -> None:
        fresh = []
        named = {e.channel for e in events if e.channel} - self.channel_names
        if named:  # a channel added since load: offer it in the filter
            self.channel_names |= named
            self._show_channel_names()
        for event in events:
            if event.kind is not EventKind.LOG:
                continue
            row = LogRow(id=0, ts=event.ts, channel=event.channel,
                         level=str(event.data.get("level", "info")),
                         message=str(event.data.get("message", "")))
            if self.filter.matches(row):
                fresh.append(row)
        if not fresh:
            return
        fresh.reverse()  # newest first, like the pages
        self.rows[0:0] = fresh
        self.lines.controls[0:0] = [self._line(r) for r in fresh]
        overflow = len(self.rows) - MAX_ROWS
        if overflow > 0:
            del self.rows[-overflow:]
            del self.lines.controls[-overflow:]
            self.exhausted = False
        self._show_lines_state()

    def _show_lines_state(self) -> None:
        self.lines_empty.visible = not self.rows
        self.older_button.visible = not self.exhausted

    # -- rows --------------------------------------------------------------------------------

    def _line(self, row: LogRow) -> ft.Control:
        about = message_id_of(row)

        async def clicked(e: ft.Event[ft.Control]) -> None:
            await self.open_line(row)
            e.page.update()

        return ft.Container(
            padding=ft.Padding.symmetric(horizontal=8, vertical=5),
            border_radius=6,
            ink=True,
            on_click=clicked,
            tooltip=t("Show details"),
            content=ft.Row(spacing=8, controls=[
                cell(style.clock_time(row.ts), 70, color=ft.Colors.ON_SURFACE_VARIANT),
                _level_chip(row.level),
                cell(row.channel, 110, weight=ft.FontWeight.W_500),
                cell(row.message.replace("\n", " "), None,
                      color=ft.Colors.ERROR if row.level in ("error", "critical") else None),
                ft.Icon(ft.Icons.CHAT_OUTLINED, size=16, color=ft.Colors.PRIMARY,
                        visible=about is not None, tooltip=t("About message {id}", id=about)),
            ]),
        )

    def _traffic_line(self, row: TrafficRow) -> ft.Control:
        async def clicked(e: ft.Event[ft.Control]) -> None:
            await self.open_message(row.id)
            e.page.update()

        return message_row(row, clicked)

    async def open_line(self, row: LogRow) -> None:
        about = message_id_of(row)
        detail = await self.plane.message_detail(about) if about is not None else None
        self.detail.show_log(row, detail)

    async def open_message(self, message_id: int) -> None:
        self.detail.show_message(await self.plane.message_detail(message_id), message_id)

    # -- export ------------------------------------------------------------------------------

    async def export(self, fmt: str) -> str:
        """All lines matching the filter (not just the loaded pages) as JSONL or CSV text."""
        return await self.plane.export_logs(fmt, **self.filter.query(self._clock()))

    async def _save_export(self, fmt: str, page: ft.Page | ft.BasePage) -> None:
        text = await self.export(fmt)
        data = text.encode("utf-8")
        name = f"pyclaw-logs.{fmt}"
        if self._picker is None:
            self._picker = ft.FilePicker()  # registers with the page; kept so it stays alive
        path = await self._picker.save_file(dialog_title=t("Export logs"), file_name=name,
                                            src_bytes=data)
        if page.web:
            self._say(t("Exported the matching lines as {name} (see your browser's downloads).",
                        name=name))
        elif path:  # Flet writes src_bytes to the chosen file on desktop
            self._say(t("Exported the matching lines to {path}.", path=path))

    def _say(self, text: str, *, error: bool = False) -> None:
        self.notice.value = text
        self.notice.color = ft.Colors.ERROR if error else ft.Colors.ON_SURFACE_VARIANT
        self.notice.visible = True

    # -- handlers ----------------------------------------------------------------------------

    async def _on_filter(self, e: ft.Event[ft.Control]) -> None:
        channel = self.channel_filter.value
        level = self.level_filter.value
        await self.set_filter(channel=None if channel in (None, ALL) else channel,
                              level=None if level in (None, ALL) else level,
                              search=(self.search_field.value or "").strip(),
                              range_label=self.range_filter.value or "All time")
        e.page.update()

    async def _on_person(self) -> None:
        """A person picked (or "Anyone"): the Messages tab shows their traffic."""
        await self.load_messages()
        if self.person.selected is not None:
            self.tabs.selected_index = 1

    async def _on_older(self, e: ft.Event[ft.Control]) -> None:
        await self.load_older()
        e.page.update()

    async def _on_tab(self, e: ft.Event[ft.Control]) -> None:
        if self.tabs.selected_index == 1:
            await self.load_messages()
            e.page.update()

    async def _on_refresh_messages(self, e: ft.Event[ft.Control]) -> None:
        await self.load_messages()
        e.page.update()

    async def _on_export(self, e: ft.Event[ft.Control]) -> None:
        fmt = "csv" if e.control is self.export_csv else "jsonl"
        try:
            await self._save_export(fmt, e.page)
        except Exception as exc:  # noqa: BLE001 - shown in the view, not raised into Flet
            _log.warning("log export failed: %s", exc)
            self._say(t("Export failed: {error}", error=exc), error=True)
        e.page.update()
