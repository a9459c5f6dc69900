"""The Logs view's "Person" filter: one person's messages across their linked accounts.

People link their accounts with ``/link`` in chat (or the owner with ``pyclaw identities
link``); picking one here shows, in the Messages tab, what they wrote on every linked
channel and the replies, with a line naming their accounts and conversations. A gateway
that cannot list people (an older one, seen through the monitor) hides the picker.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import flet as ft

from pyclaw_app.control import ControlPlane, PersonDetail, PersonRow, TrafficRow
from views.conversation import conversation_route
from views.forms import labelled
from views.i18n import t

__all__ = ["ANYONE", "PersonPicker", "describe_person"]

_log = logging.getLogger(__name__)

ANYONE = "anyone"
MAX_LISTED_CONVERSATIONS = 6


def describe_person(detail: PersonDetail) -> str:
    """"Ann: telegram 1001, slack U0001 · 2 conversations: telegram 1001 (5), ..." """
    person = detail.person
    accounts = ", ".join(f"{a.channel} {a.sender_id}" for a in person.accounts)
    shown = detail.conversations[:MAX_LISTED_CONVERSATIONS]
    talks = ", ".join(_conversation(c.channel, c.chat, c.thread, c.is_group, c.messages)
                      for c in shown)
    more = len(detail.conversations) - len(shown)
    count = len(detail.conversations)
    line = (t("{name}: {accounts} · 1 conversation", name=person.name, accounts=accounts)
            if count == 1 else t("{name}: {accounts} · {count} conversations",
                                 name=person.name, accounts=accounts, count=count))
    return (line + (f": {talks}" if talks else "")
            + (t(" and {more} more", more=more) if more > 0 else ""))


def _conversation(channel: str, chat: str, thread: str | None, is_group: bool,
                  messages: int) -> str:
    """"telegram group 1001 thread 7 (5)": one of a person's conversations."""
    where = t("{channel} group {chat}", channel=channel, chat=chat) if is_group else (
        f"{channel} {chat}")
    if thread:
        where = t("{where} thread {thread}", where=where, thread=thread)
    return f"{where} ({messages})"


class PersonPicker:
    def __init__(self, plane: ControlPlane,
                 on_change: Callable[[], Awaitable[None]]) -> None:
        self.plane = plane
        self._on_change = on_change
        self.people: list[PersonRow] = []
        self.selected: int | None = None
        self.detail: PersonDetail | None = None
        self.dropdown = ft.Dropdown(label=t("Person"), value=ANYONE, width=220,
                                    on_select=self._on_select,
                                    options=[ft.DropdownOption(key=ANYONE, text=t("Anyone"))])
        self.summary = ft.Text(size=12, color=ft.Colors.ON_SURFACE_VARIANT, selectable=True,
                               visible=False)
        self.open_button = ft.TextButton(t("Open conversation"), icon=ft.Icons.FORUM_OUTLINED,
                                         visible=False, on_click=self._on_open,
                                         tooltip=t("Read this person's direct chats as one chat"))
        self.root = ft.Container(visible=False, content=ft.Column(
            spacing=2, tight=True, controls=[
                ft.Row([labelled(self.dropdown, t("Person")), self.open_button], spacing=8,
                       tight=True, vertical_alignment=ft.CrossAxisAlignment.CENTER),
                self.summary]))

    async def load(self) -> None:
        """The people to pick from; the picker shows only when there is someone."""
        try:
            self.people = await self.plane.people()
        except Exception as exc:  # noqa: BLE001 - an older gateway: no picker, nothing broken
            _log.info("people could not be listed (%s); the Person filter is hidden", exc)
            self.people = []
        if self.selected is not None and all(p.id != self.selected for p in self.people):
            self.selected, self.detail = None, None
        self.dropdown.options = [
            ft.DropdownOption(key=ANYONE, text=t("Anyone")),
            *(ft.DropdownOption(key=str(p.id), text=p.name) for p in self.people)]
        self.dropdown.value = str(self.selected) if self.selected is not None else ANYONE
        self.root.visible = bool(self.people)
        self._show_summary()

    async def select(self, person_id: int | None) -> None:
        self.selected = person_id
        self.dropdown.value = str(person_id) if person_id is not None else ANYONE
        self.detail = None
        self._show_summary()
        await self._on_change()

    async def traffic(self, channel: str | None, limit: int = 200) -> list[TrafficRow]:
        """The selected person's latest messages and the replies (only ``channel``'s when
        set), read afresh so a refresh shows new ones."""
        if self.selected is None:
            return []
        self.detail = await self.plane.person_detail(self.selected, limit)
        self._show_summary()
        if self.detail is None:
            return []
        return [r for r in self.detail.traffic if channel is None or r.channel == channel]

    def _show_summary(self) -> None:
        self.summary.value = describe_person(self.detail) if self.detail is not None else ""
        self.summary.visible = self.detail is not None
        self.open_button.visible = self.selected is not None

    async def _on_open(self, e: ft.Event[ft.Control]) -> None:
        if self.selected is not None:
            await e.page.push_route(conversation_route(person_id=self.selected))

    async def _on_select(self, e: ft.Event[ft.Control]) -> None:
        value = self.dropdown.value
        await self.select(None if value in (None, ANYONE) else int(value))
        e.page.update()
