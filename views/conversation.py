"""Conversation: one chat, or one person's direct chats on all their linked channels, read as
a chat.

Reached from Logs (a Messages row's "Open conversation", or the Person filter's), not from
the navigation: it is a way of reading Logs, and the phone's bar already holds seven
destinations. Its route names what it shows (``/conversation/person/7``,
``/conversation/message/42``, ``/conversation/chat/<key>``), so Back, reload and links
work; the rail keeps Logs selected meanwhile.

Messages are bubbles (what people wrote on the right, the assistant on the left, a notice
in the error colour) with their time, their sender in a group, and their channel when
the timeline spans several. Between a question and its reply, one line sums up the turn
(LLM calls, tool calls, tokens, cost, time); it opens to each call, collapsed by default.
The newest page comes first and "Load older" reads the one before it, so a chat of ten
thousand messages costs a page at a time. New traffic in the chat offers a refresh rather
than moving what the reader is reading.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

import flet as ft

from pyclaw_app.control import (
    ControlPlane,
    ConversationPage,
    Exchange,
    LlmCall,
    ToolCall,
    TrafficRow,
)
from pyclaw_app.control.conversation import describe_chat
from pyclaw_app.model import Event, EventKind
from views import style
from views.i18n import t
from views.text_direction import is_rtl

__all__ = ["BACK_ROUTE", "PAGE_EXCHANGES", "ROUTE", "ConversationView", "Selection",
           "conversation_route", "parse_route", "turn_summary"]

_log = logging.getLogger(__name__)

ROUTE = "/conversation"
BACK_ROUTE = "/logs"
PAGE_EXCHANGES = 30
_KINDS = ("person", "message", "chat")
_TRAFFIC = (EventKind.MESSAGE_RECEIVED, EventKind.REPLY_SENT, EventKind.MESSAGE_FAILED)


@dataclass(frozen=True, slots=True)
class Selection:
    """What the view shows: ``kind`` "person" (an identity id), "message" (the chat of a
    journal message) or "chat" (a conversation key)."""

    kind: str
    value: str

    def query(self) -> dict[str, Any]:
        """The plane's keyword arguments for it."""
        if self.kind == "person":
            return {"person_id": int(self.value)}
        if self.kind == "message":
            return {"message_id": int(self.value)}
        return {"conv": self.value}


def conversation_route(*, person_id: int | None = None, message_id: int | None = None,
                       conv: str | None = None) -> str:
    if person_id is not None:
        return f"{ROUTE}/person/{person_id}"
    if message_id is not None:
        return f"{ROUTE}/message/{message_id}"
    if conv is not None:
        return f"{ROUTE}/chat/{quote(conv, safe='')}"
    return ROUTE


def parse_route(route: str) -> Selection | None:
    """The selection a route names; None for the bare route or one that names nothing."""
    parts = route.split("?", 1)[0].removeprefix(ROUTE).strip("/").split("/", 1)
    if len(parts) != 2 or parts[0] not in _KINDS or not parts[1]:
        return None
    kind, value = parts
    if kind != "chat" and not (value.isascii() and value.isdigit()):
        return None
    return Selection(kind, unquote(value) if kind == "chat" else value)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M")


def _stamp(ts: float) -> str:
    """The time of a message today, the date and time of an older one."""
    when = datetime.fromtimestamp(ts)
    return style.clock_time(ts) if when.date() == datetime.now().date() else _when(ts)


def _cost(cost: float) -> str:
    return f"${cost:.4f}" if cost < 1 else f"${cost:.2f}"


def turn_summary(exchange: Exchange) -> str:
    """"2 LLM calls · 1 tool call · 180 tokens · $0.0004 · 1.2 s" for the collapsed line."""
    calls, tools = exchange.llm_calls, exchange.tool_calls
    parts = []
    if calls:
        parts.append(t("{count} LLM call", count=len(calls)) if len(calls) == 1
                     else t("{count} LLM calls", count=len(calls)))
    if tools:
        parts.append(t("{count} tool call", count=len(tools)) if len(tools) == 1
                     else t("{count} tool calls", count=len(tools)))
    tokens = sum(c.input_tokens + c.output_tokens for c in calls)
    if tokens:
        parts.append(t("{count} tokens", count=tokens))
    cost = sum(c.cost for c in calls)
    if cost:
        parts.append(_cost(cost))
    spent = sum(c.latency_ms for c in calls)
    if spent:
        parts.append(style.latency(spent))
    failed = sum(1 for c in calls if c.error) + sum(1 for t in tools if t.failed)
    if failed:
        parts.append(t("{count} failed", count=failed))
    return " · ".join(parts)


def _llm_line(call: LlmCall) -> ft.Control:
    facts = [f"{call.provider} · {call.model}",
             t("{input} in / {output} out", input=call.input_tokens, output=call.output_tokens),
             style.latency(call.latency_ms)]
    if call.cost:
        facts.append(_cost(call.cost))
    controls: list[ft.Control] = [
        ft.Icon(ft.Icons.AUTO_AWESOME_OUTLINED, size=14, color=ft.Colors.PRIMARY),
        ft.Text(t("LLM call  {facts}", facts=" · ".join(facts)), size=12, expand=True)]
    column: list[ft.Control] = [ft.Row(controls, spacing=6)]
    if call.error:
        column.append(ft.Text(call.error, size=12, color=ft.Colors.ERROR))
    return ft.Column(column, spacing=2)


def _tool_line(call: ToolCall) -> ft.Control:
    color = ft.Colors.ERROR if call.failed else None
    return ft.Column(spacing=2, controls=[
        ft.Row(spacing=6, controls=[
            ft.Icon(ft.Icons.BUILD_OUTLINED, size=14, color=ft.Colors.TERTIARY),
            ft.Text(t("Tool {name}", name=call.name), size=12, weight=ft.FontWeight.W_600,
                    color=color)]),
        ft.Text(f"{call.arguments} → {call.result}", size=12,
                font_family="monospace", color=color, rtl=is_rtl(call.result)),
    ])


class _TurnDetails:
    """The one-line sum of a turn; clicked, the calls in the order they happened."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.chevron = ft.Icon(ft.Icons.EXPAND_MORE, size=16,
                               color=ft.Colors.ON_SURFACE_VARIANT)
        self.steps = ft.Column(spacing=6, visible=False)
        summary = turn_summary(exchange)
        self.box = ft.Container(
            margin=ft.Margin.only(left=8, right=8),
            padding=ft.Padding.symmetric(horizontal=10, vertical=6),
            border_radius=8,
            border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
            content=ft.Column(spacing=6, tight=True, controls=[
                ft.Container(
                    ink=True, on_click=self._on_click, border_radius=6,
                    tooltip=t("Show the LLM and tool calls"),
                    content=ft.Row(spacing=6, controls=[
                        ft.Icon(ft.Icons.MEMORY, size=16, color=ft.Colors.ON_SURFACE_VARIANT),
                        ft.Text(summary, size=12, color=ft.Colors.ON_SURFACE_VARIANT,
                                expand=True),
                        self.chevron])),
                self.steps,
            ]),
        )
        # a node of its own, like the bubbles beside it: else it merged into the exchange's
        self.root = ft.Semantics(container=True, content=self.box)

    @property
    def expanded(self) -> bool:
        return bool(self.steps.visible)

    def toggle(self) -> None:
        """Open (the steps are built the first time) or close the details."""
        if not self.steps.controls:
            timed: list[tuple[float, ft.Control]] = [
                *((c.ts, _llm_line(c)) for c in self.exchange.llm_calls),
                *((t.ts, _tool_line(t)) for t in self.exchange.tool_calls)]
            timed.sort(key=lambda pair: pair[0])
            self.steps.controls = [control for _, control in timed]
        self.steps.visible = not self.steps.visible
        self.chevron.icon = ft.Icons.EXPAND_LESS if self.steps.visible else ft.Icons.EXPAND_MORE

    def _on_click(self, e: ft.Event[ft.Control]) -> None:
        self.toggle()
        e.page.update()


def _bubble(row: TrafficRow, *, badge: bool, group: bool) -> ft.Control:
    """A message: the user's on the right, the assistant's on the left, notices in the error
    colour. Short ones size to their text; long ones take four fifths of the width (Flet has
    no max-width). Arabic or Hebrew runs right to left inside the bubble. Not selectable:
    Flet 1.0's selectable text is missing from the accessibility tree on the web."""
    mine = row.direction == "in"
    failed = row.status == "failed" or bool(row.error)
    notice = not mine and bool(row.error)
    text = row.text or (t("(no text)") if not row.error else "")
    if notice:
        bgcolor, color = ft.Colors.ERROR_CONTAINER, ft.Colors.ON_ERROR_CONTAINER
    elif mine:
        bgcolor, color = ft.Colors.PRIMARY_CONTAINER, ft.Colors.ON_PRIMARY_CONTAINER
    else:
        bgcolor, color = ft.Colors.SURFACE_CONTAINER_HIGHEST, None
    meta = [_stamp(row.ts)]
    if group and mine and row.sender:
        meta.insert(0, row.sender)
    if row.latency_ms is not None and not mine:
        meta.append(style.latency(row.latency_ms))
    if failed and not notice:
        meta.append(row.status)
    head: list[ft.Control] = []
    if badge:
        head.append(ft.Container(
            padding=ft.Padding.symmetric(horizontal=6, vertical=1), border_radius=8,
            bgcolor=ft.Colors.with_opacity(0.12, ft.Colors.ON_SURFACE),
            content=ft.Text(row.channel, size=10, weight=ft.FontWeight.W_600)))
    head.append(ft.Text(" · ".join(meta), size=11, color=ft.Colors.ON_SURFACE_VARIANT,
                        tooltip=_when(row.ts)))
    body: list[ft.Control] = [
        ft.Row(head, spacing=6, tight=True),
        ft.Text(text, color=color, rtl=is_rtl(text))]
    if row.error:
        body.append(ft.Text(row.error, size=12, color=ft.Colors.ERROR,
                            rtl=is_rtl(row.error)))
    radius = ft.BorderRadius.only(top_left=16, top_right=16, bottom_left=16 if mine else 4,
                                  bottom_right=4 if mine else 16)
    bubble = ft.Container(
        bgcolor=bgcolor, border_radius=radius,
        padding=ft.Padding.symmetric(horizontal=14, vertical=8),
        content=ft.Column(body, spacing=3, tight=True,
                          horizontal_alignment=ft.CrossAxisAlignment.END if mine
                          else ft.CrossAxisAlignment.START))
    # its own node in the accessibility tree: a screen reader reads one message at a time
    node = ft.Semantics(container=True, content=bubble)
    if len(text) <= 48 and "\n" not in text and not row.error:
        align = ft.MainAxisAlignment.END if mine else ft.MainAxisAlignment.START
        return ft.Row([node], alignment=align, data=row.direction)
    node.expand = 4
    spacer = ft.Container(expand=1)
    return ft.Row([spacer, node] if mine else [node, spacer], data=row.direction)


class ConversationView:
    """One selection at a time; ``select`` (from the route) and ``load`` show it."""

    def __init__(self, plane: ControlPlane, *, page_size: int = PAGE_EXCHANGES) -> None:
        self.plane = plane
        self.page_size = page_size
        self.selection: Selection | None = None
        self.page: ConversationPage | None = None
        """The newest page read (its title, chats and person)."""
        self.exchanges: list[Exchange] = []
        """Every exchange loaded, oldest first."""
        self.older: int | None = None
        self.details: dict[int, _TurnDetails] = {}
        """The turn details of each loaded exchange, by its message's journal id."""
        self._loaded: Selection | None = None
        self._chats: set[tuple[str, str]] = set()

        self.title = ft.Text(t("Conversation"), theme_style=ft.TextThemeStyle.HEADLINE_SMALL,
                             max_lines=1, overflow=ft.TextOverflow.ELLIPSIS, expand=True)
        self.back_button = ft.TextButton(t("Back to Logs"), icon=ft.Icons.ARROW_BACK,
                                         on_click=self._on_back)
        self.refresh_button = ft.IconButton(ft.Icons.REFRESH, tooltip=t("Refresh conversation"),
                                            on_click=self._on_refresh)
        self.subtitle = ft.Text(size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.links = ft.Row(wrap=True, spacing=4, run_spacing=0)
        self.notice = ft.Text(size=13, visible=False)
        self.fresh_button = ft.FilledTonalButton(t("New messages: show them"),
                                                 icon=ft.Icons.ARROW_DOWNWARD, visible=False,
                                                 on_click=self._on_refresh)
        self.older_button = ft.TextButton(t("Load older"), icon=ft.Icons.EXPAND_LESS,
                                          on_click=self._on_older)
        self.start_note = ft.Text(t("The start of this conversation."), size=12,
                                  color=ft.Colors.ON_SURFACE_VARIANT)
        self._top = ft.Row([self.older_button, self.start_note],
                           alignment=ft.MainAxisAlignment.CENTER)
        # Reversed: the newest exchange is at the bottom and where the list opens, and
        # older pages are appended at the far end without moving what is being read.
        self.list = ft.ListView(expand=True, spacing=10, reverse=True,
                                padding=ft.Padding.symmetric(vertical=8))
        self._root = ft.Column(expand=True, spacing=8, controls=[
            ft.Row([self.back_button, self.title, self.refresh_button],
                   vertical_alignment=ft.CrossAxisAlignment.CENTER),
            self.subtitle, self.links, self.notice,
            ft.Container(expand=True, border_radius=12,
                         padding=ft.Padding.symmetric(horizontal=10),
                         border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
                         content=self.list),
            ft.Row([self.fresh_button], alignment=ft.MainAxisAlignment.CENTER),
        ])
        self._show_empty()

    @property
    def root(self) -> ft.Control:
        return self._root

    # -- what is shown -----------------------------------------------------------------------

    def select(self, route: str) -> bool:
        """Take the selection a route names; True when it differs from what is loaded (the
        caller then awaits ``load``)."""
        self.selection = parse_route(route)
        return self.selection != self._loaded

    async def open(self, route: str) -> None:
        if self.select(route):
            await self.load()

    async def load(self) -> None:
        """The newest page of the selection; a failure is shown, never raised."""
        selection = self.selection
        self._loaded = selection
        self.fresh_button.visible = False
        if selection is None:
            self._show_empty()
            return
        try:
            page = await self.plane.conversation(**selection.query(), limit=self.page_size)
        except Exception as exc:  # noqa: BLE001 - shown in the view (an older gateway, say)
            _log.warning("conversation %s could not be read: %s", selection, exc)
            self._show_empty(t("Could not read the conversation: {error}", error=exc), error=True)
            return
        if page is None:
            self._show_empty(t("There is no such conversation (any more): it may have been "
                               "removed by retention, or the person unlinked."), error=True)
            return
        self.page = page
        self.exchanges = list(page.exchanges)
        self.older = page.older
        self._chats = {(c.channel, c.chat) for c in page.chats}
        self.details = {}
        self._show_header(page)
        self.list.controls = [self._exchange(e) for e in reversed(self.exchanges)]
        self.list.controls.append(self._top)
        self._show_top()

    async def load_older(self) -> int:
        """The page before the oldest loaded exchange; returns how many exchanges came."""
        if self.selection is None or self.older is None:
            return 0
        page = await self.plane.conversation(**self.selection.query(), before_id=self.older,
                                             limit=self.page_size)
        if page is None:
            return 0
        self.exchanges[0:0] = page.exchanges
        self.older = page.older
        self.list.controls[-1:] = [*(self._exchange(e) for e in reversed(page.exchanges)),
                                   self._top]
        self._show_top()
        return len(page.exchanges)

    def apply(self, events: Sequence[Event], now: float) -> None:
        """Traffic in a chat on screen offers a refresh; what is read does not move."""
        if not self._chats or self.fresh_button.visible:
            return
        for event in events:
            if event.kind in _TRAFFIC and (
                    event.channel, str(event.data.get("chat", ""))) in self._chats:
                self.fresh_button.visible = True
                return

    # -- building ----------------------------------------------------------------------------

    @property
    def spans_channels(self) -> bool:
        return len({channel for channel, _ in self._chats}) > 1

    def _exchange(self, exchange: Exchange) -> ft.Control:
        group = any(c.is_group for c in (self.page.chats if self.page else ()))
        badge = self.spans_channels
        controls = [_bubble(exchange.message, badge=badge, group=group)]
        if exchange.llm_calls or exchange.tool_calls:
            details = _TurnDetails(exchange)
            self.details[exchange.message.id] = details
            controls.append(details.root)
        controls += [_bubble(r, badge=badge, group=group) for r in exchange.replies]
        return ft.Column(controls, spacing=6)

    def _show_header(self, page: ConversationPage) -> None:
        self.title.value = page.title
        chats = ", ".join(describe_chat(c) for c in page.chats)
        if page.person is not None and self.selection is not None \
                and self.selection.kind == "person":
            channels = len({c.channel for c in page.chats})
            self.subtitle.value = (
                t("Direct chats with {name} on {count} channel: {chats}", name=page.person.name,
                  count=channels, chats=chats) if channels == 1
                else t("Direct chats with {name} on {count} channels: {chats}",
                       name=page.person.name, count=channels, chats=chats))
        else:
            self.subtitle.value = chats
        links: list[ft.Control] = []
        if page.person is not None and (self.selection is None
                                        or self.selection.kind != "person"):
            links.append(self._link(t("All of {name}'s direct chats", name=page.person.name),
                                    ft.Icons.PERSON_OUTLINE,
                                    conversation_route(person_id=page.person.id)))
        links += [self._link(t("Open {chat}", chat=describe_chat(c)), ft.Icons.GROUPS_OUTLINED,
                             conversation_route(conv=c.conv)) for c in page.elsewhere]
        self.links.controls = links
        self.links.visible = bool(links)
        self.notice.visible = not page.exchanges
        if not page.exchanges:
            self._say(t("No messages in this conversation yet."))

    def _link(self, label: str, icon: ft.IconData, route: str) -> ft.Control:
        async def go(e: ft.Event[ft.Control]) -> None:
            await e.page.push_route(route)

        return ft.TextButton(label, icon=icon, on_click=go)

    def _show_top(self) -> None:
        self.older_button.visible = self.older is not None
        self.start_note.visible = self.older is None and bool(self.exchanges)

    def _show_empty(self, text: str = "", *, error: bool = False) -> None:
        self.page = None
        self.exchanges = []
        self.older = None
        self.details = {}
        self._chats = set()
        self.title.value = t("Conversation")
        self.subtitle.value = ""
        self.links.controls = []
        self.list.controls = []
        self._say(text or t("Open a conversation from Logs: a message's “Open conversation” "
                            "button in the Messages tab, or a person picked in the Person "
                            "filter."), error=error)

    def _say(self, text: str, *, error: bool = False) -> None:
        self.notice.value = text
        self.notice.color = ft.Colors.ERROR if error else ft.Colors.ON_SURFACE_VARIANT
        self.notice.visible = True

    # -- handlers ----------------------------------------------------------------------------

    async def _on_back(self, e: ft.Event[ft.Control]) -> None:
        await e.page.push_route(BACK_ROUTE)

    async def _on_refresh(self, e: ft.Event[ft.Control]) -> None:
        await self.load()
        e.page.update()

    async def _on_older(self, e: ft.Event[ft.Control]) -> None:
        try:
            await self.load_older()
        except Exception as exc:  # noqa: BLE001 - shown in the view, not raised into Flet
            _log.warning("older messages could not be read: %s", exc)
            self._say(t("Could not read older messages: {error}", error=exc), error=True)
        e.page.update()
