"""The detail panel of the Logs view: a log line, or a journal record with its LLM calls.

A failed message gets a Retry button; the rest is read-only text the user
can select and copy into a bug report.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

import flet as ft

from pyclaw_app.control import ControlPlane, LogRow, MessageDetail, TrafficRow
from views import style
from views.conversation import conversation_route
from views.i18n import t
from views.text_direction import is_rtl

__all__ = ["LEVEL_COLORS", "DetailPanel", "level_color"]

_log = logging.getLogger(__name__)

LEVEL_COLORS: dict[str, str] = {
    "debug": ft.Colors.GREY_600,
    "info": ft.Colors.BLUE_600,
    "warning": ft.Colors.ORANGE_700,
    "error": ft.Colors.RED_600,
    "critical": ft.Colors.RED_900,
}


def level_color(level: str) -> str:
    return LEVEL_COLORS.get(level.lower(), ft.Colors.GREY_600)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _pair(label: str, value: str, *, color: str | None = None) -> ft.Control:
    return ft.Row(vertical_alignment=ft.CrossAxisAlignment.START, spacing=8, controls=[
        ft.Text(label, width=96, size=12, color=ft.Colors.ON_SURFACE_VARIANT),
        ft.Text(value, selectable=True, expand=True, size=13, color=color, rtl=is_rtl(value)),
    ])


def _heading(text: str) -> ft.Control:
    return ft.Text(text, weight=ft.FontWeight.W_600, size=14)


def _record(row: TrafficRow, platform_id: str | None = None) -> list[ft.Control]:
    failed = row.status == "failed" or bool(row.error)
    out = [
        _pair(t("Journal id"), str(row.id)),
        _pair(t("Time"), _when(row.ts)),
        _pair(t("Direction"), t("received") if row.direction == "in" else t("sent")),
        _pair(t("Channel"), row.channel),
        _pair(t("Chat"), row.chat + (t(" · thread {thread}", thread=row.thread)
                                     if row.thread else "")),
        _pair(t("Sender"), row.sender),
        _pair(t("Status"), row.status, color=ft.Colors.ERROR if failed else None),
    ]
    if platform_id:
        out.append(_pair(t("Platform id"), platform_id))
    if row.latency_ms is not None:
        out.append(_pair(t("Latency"), style.latency(row.latency_ms)))
    if row.error:
        out.append(_pair(t("Error"), row.error, color=ft.Colors.ERROR))
    out.append(ft.Container(
        padding=10, border_radius=8, bgcolor=ft.Colors.SURFACE_CONTAINER_HIGHEST,
        content=ft.Text(row.text or t("(no text)"), selectable=True, rtl=is_rtl(row.text))))
    return out


def _calls_table(calls: tuple[dict[str, Any], ...]) -> ft.Control:
    if not calls:
        return ft.Text(t("No LLM calls recorded for this message."), size=12,
                       color=ft.Colors.ON_SURFACE_VARIANT)
    rows = []
    for call in calls:
        error = str(call.get("error") or "")
        tokens = t("{input} in / {output} out", input=call.get("input_tokens", 0),
                   output=call.get("output_tokens", 0))
        rows.append(ft.DataRow(cells=[
            ft.DataCell(ft.Text(str(call.get("provider", "")))),
            ft.DataCell(ft.Text(str(call.get("model", "")))),
            ft.DataCell(ft.Text(tokens)),
            ft.DataCell(ft.Text(style.latency(call.get("latency_ms")))),
            ft.DataCell(ft.Text(error or t("ok"), color=ft.Colors.ERROR if error else
                                ft.Colors.GREEN_700, max_lines=3)),
        ]))
    return ft.Row(scroll=ft.ScrollMode.AUTO, controls=[ft.DataTable(
        column_spacing=16, heading_row_height=32, data_row_min_height=32,
        columns=[ft.DataColumn(ft.Text(name)) for name in
                 (t("Provider"), t("Model"), t("Tokens"), t("Latency"), t("Result"))],
        rows=rows)])


class DetailPanel:
    """Shows one selection; ``show_*`` only change controls, the caller updates the page."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.detail: MessageDetail | None = None
        self.body = ft.Column(spacing=8, scroll=ft.ScrollMode.AUTO, expand=True)
        self.retry_button = ft.FilledButton(t("Retry"), icon=ft.Icons.REPLAY, visible=False,
                                            on_click=self._on_retry,
                                            tooltip=t("Answer this message again"))
        self.retry_result = ft.Text(visible=False, size=13)
        self.conversation_button = ft.OutlinedButton(
            t("Open conversation"), icon=ft.Icons.FORUM_OUTLINED, visible=False,
            on_click=self._on_conversation, tooltip=t("Read this message's chat as a chat"))
        self.root = ft.Container(
            width=440,
            visible=False,
            padding=16,
            border_radius=12,
            border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
            bgcolor=ft.Colors.SURFACE_CONTAINER_LOW,
            content=ft.Column(expand=True, spacing=10, controls=[
                ft.Row([ft.Text(t("Details"), theme_style=ft.TextThemeStyle.TITLE_MEDIUM,
                                weight=ft.FontWeight.W_600, expand=True),
                        ft.IconButton(ft.Icons.CLOSE, tooltip=t("Close details"),
                                      on_click=lambda e: self.close())]),
                self.body,
                ft.Row([self.retry_button, self.conversation_button, self.retry_result],
                       wrap=True),
            ]),
        )

    def close(self) -> None:
        self.root.visible = False
        self.detail = None

    def show_log(self, row: LogRow, detail: MessageDetail | None) -> None:
        controls: list[ft.Control] = [
            _heading(t("Log line")),
            _pair(t("Time"), _when(row.ts)),
            _pair(t("Channel"), row.channel),
            _pair(t("Level"), row.level, color=level_color(row.level)),
            ft.Container(padding=10, border_radius=8,
                         bgcolor=ft.Colors.SURFACE_CONTAINER_HIGHEST,
                         content=ft.Text(row.message, selectable=True,
                                         rtl=is_rtl(row.message))),
        ]
        if row.data:
            controls.append(ft.Text(json.dumps(row.data, indent=2, ensure_ascii=False),
                                    selectable=True, font_family="monospace", size=12))
        self._fill(controls, detail)

    def show_message(self, detail: MessageDetail | None, message_id: int) -> None:
        if detail is None:
            self._fill([ft.Text(t("Message {id} is not in the journal.", id=message_id),
                                color=ft.Colors.ON_SURFACE_VARIANT)], None)
        else:
            self._fill([], detail)

    def _fill(self, controls: list[ft.Control], detail: MessageDetail | None) -> None:
        self.detail = detail
        if detail is not None:
            if controls:
                controls.append(ft.Divider(height=1))
            controls += [_heading(t("Message")), *_record(detail.message, detail.platform_id),
                         ft.Divider(height=1), _heading(t("LLM calls")),
                         _calls_table(detail.llm_calls)]
            if detail.reply is not None:
                controls += [ft.Divider(height=1), _heading(t("Reply")), *_record(detail.reply)]
        self.body.controls = controls
        self.retry_button.visible = detail is not None and self.failed
        self.conversation_button.visible = detail is not None
        self.retry_result.visible = False
        self.root.visible = True

    @property
    def failed(self) -> bool:
        d = self.detail
        if d is None:
            return False
        reply_failed = d.reply is not None and (d.reply.status == "failed" or bool(d.reply.error))
        return d.message.status == "failed" or bool(d.message.error) or reply_failed

    async def retry(self) -> bool:
        if self.detail is None:
            return False
        message_id = self.detail.message.id
        try:
            ok = await self.plane.retry_message(message_id)
            text = (t("Message {id} queued again; the reply shows up in Messages.",
                      id=message_id)
                    if ok else t("Message {id} cannot be retried now.", id=message_id))
        except Exception as exc:  # noqa: BLE001 - shown beside the button
            _log.warning("retry of %s failed: %s", message_id, exc)
            ok, text = False, t("Retry failed: {error}", error=exc)
        self.retry_result.value = text
        self.retry_result.color = ft.Colors.GREEN_700 if ok else ft.Colors.ERROR
        self.retry_result.visible = True
        return ok

    async def _on_conversation(self, e: ft.Event[ft.Control]) -> None:
        if self.detail is not None:
            await e.page.push_route(conversation_route(message_id=self.detail.message.id))

    async def _on_retry(self, e: ft.Event[ft.Control]) -> None:
        self.retry_button.disabled = True
        e.page.update()
        await self.retry()
        self.retry_button.disabled = False
        e.page.update()
