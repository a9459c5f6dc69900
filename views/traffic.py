"""Traffic lines: the Dashboard's live feed and the Logs view's Messages table.

The live feed is aligned columns under a header (time, channel, direction, person,
message, status); on a phone (narrower than ``NARROW_MAX_WIDTH``) each line becomes two: a
small line of who, where and when, and the message itself. The feed is rebuilt up to ten
times a second under load, so a line is kept to a Row of plain Texts (seven controls; a
phone line is three): bench/RESULTS.md measured what each control per line costs. The
Messages table shows a failed message's text and its error on lines of their own, the
error in the error colour.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import flet as ft

from pyclaw_app.control import TrafficRow
from views import style
from views.i18n import t
from views.state import FeedRow
from views.text_direction import is_rtl, isolate

__all__ = ["FEED_COLUMNS", "NARROW_MAX_WIDTH", "WidthAware", "cell", "feed_header",
           "feed_row_control", "is_narrow", "message_row"]

NARROW_MAX_WIDTH = 600
"""Below this page width (a phone held upright) the feed shows two lines per message."""
FEED_COLUMNS: tuple[tuple[str, int | None], ...] = (
    ("Time", 64), ("Channel", 110), ("Direction", 72), ("Person", 130), ("Message", None),
    ("Status", 90))
"""Header label and width of each column; the message takes what is left."""
_SIZE = 13


@runtime_checkable
class WidthAware(Protocol):
    """A view whose layout depends on the page's width; the shell tells it every resize."""

    def fit_width(self, width: float | None) -> None: ...


def is_narrow(width: float | None) -> bool:
    return width is not None and width < NARROW_MAX_WIDTH


def feed_header() -> ft.Control:
    """The column labels, aligned with ``feed_row_control``'s cells."""
    return ft.Row(spacing=8, controls=[
        ft.Text(label, width=width, expand=width is None, size=12, weight=ft.FontWeight.BOLD,
                color=ft.Colors.ON_SURFACE_VARIANT)
        for label, width in FEED_COLUMNS])


def _person(row: FeedRow) -> str:
    """Who the line is about: the sender of a message, the chat a reply went to."""
    if row.direction == "in" or (row.direction == "failed" and row.sender):
        return row.sender or row.chat
    return f"to {row.chat}" if row.chat else row.sender


def _status(row: FeedRow) -> str:
    if row.direction == "failed":
        return "failed"
    return style.latency(row.latency_ms)


def feed_row_control(row: FeedRow, narrow: bool = False) -> ft.Control:
    """One feed line: aligned cells, or (``narrow``) a meta line above the message.

    Each cell is its own Text, so an Arabic or Hebrew message runs right to left in its
    column without pulling its neighbours in; the phone's meta line fences each field in
    an isolate for the same reason. A failed line's message is in the error colour.
    """
    _, direction_color = style.DIRECTION_ARROWS.get(row.direction, style.DIRECTION_ARROWS["in"])
    direction = style.direction_label(row.direction)
    message = row.text.replace("\n", " ")
    error = ft.Colors.ERROR if row.direction == "failed" else None
    if narrow:
        meta = (style.clock_time(row.ts), direction, row.channel, _person(row), _status(row))
        return ft.Column(spacing=1, controls=[
            ft.Text("  ·  ".join(isolate(part) for part in meta if part), size=11,
                    color=ft.Colors.ON_SURFACE_VARIANT, max_lines=1, no_wrap=True,
                    overflow=ft.TextOverflow.ELLIPSIS),
            ft.Text(message, size=_SIZE, max_lines=2, overflow=ft.TextOverflow.ELLIPSIS,
                    rtl=is_rtl(message), color=error),
        ])
    values = (style.clock_time(row.ts), row.channel, direction, _person(row), message,
              _status(row))
    colors = (ft.Colors.ON_SURFACE_VARIANT, None, direction_color, None, error,
              error or ft.Colors.ON_SURFACE_VARIANT)
    return ft.Row(spacing=8, controls=[
        ft.Text(value, width=width, expand=width is None, size=_SIZE, max_lines=1,
                no_wrap=True, overflow=ft.TextOverflow.ELLIPSIS, rtl=is_rtl(value),
                color=color)
        for value, (_, width), color in zip(values, FEED_COLUMNS, colors, strict=True)])


def cell(value: str, width: int | None, **kwargs: Any) -> ft.Control:
    """One column of a Logs row; Arabic or Hebrew runs right to left in its column."""
    text = ft.Text(value, size=_SIZE, max_lines=1, overflow=ft.TextOverflow.ELLIPSIS,
                   no_wrap=True, rtl=is_rtl(value), **kwargs)
    return ft.Container(text, expand=True) if width is None else ft.Container(text, width=width)


Handler = Callable[[ft.Event[ft.Control]], Awaitable[None]]


def message_row(row: TrafficRow, on_open: Handler) -> ft.Control:
    """A row of the Messages table: time, direction, channel, sender, the text (and, for a
    failed message, the error on its own line in the error colour) and status. Clicked, it
    opens the message's detail, which offers its conversation (a button inside the row
    merged the whole row into one node of the accessibility tree)."""
    failed = row.status == "failed" or bool(row.error)
    icon, color = style.DIRECTION_ARROWS["failed" if failed else row.direction]
    spoken = style.direction_label("failed" if failed else row.direction)
    text = row.text.replace("\n", " ") or (t("(no text)") if row.error else "")
    message: ft.Control = cell(text, None)
    if row.error:
        error = row.error.replace("\n", " ")
        message = ft.Column(expand=True, spacing=0, controls=[
            ft.Text(text, size=_SIZE, max_lines=1, overflow=ft.TextOverflow.ELLIPSIS,
                    no_wrap=True, rtl=is_rtl(text)),
            ft.Text(error, size=12, color=ft.Colors.ERROR, max_lines=2,
                    overflow=ft.TextOverflow.ELLIPSIS, rtl=is_rtl(error))])
    return ft.Container(
        padding=ft.Padding.symmetric(horizontal=8, vertical=5),
        border_radius=6,
        ink=True,
        on_click=on_open,
        tooltip=t("Show details"),
        bgcolor=ft.Colors.with_opacity(0.08, ft.Colors.RED) if failed else None,
        content=ft.Row(spacing=8, controls=[
            cell(style.clock_time(row.ts), 70, color=ft.Colors.ON_SURFACE_VARIANT),
            ft.Icon(icon, color=color, size=16, semantics_label=spoken),
            cell(row.channel, 110, weight=ft.FontWeight.W_500),
            cell(row.sender, 110),
            message,
            cell(row.status, 80, color=ft.Colors.ERROR if failed else
                 ft.Colors.ON_SURFACE_VARIANT),
        ]),
    )
