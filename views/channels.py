"""Channels: every configured channel with its state and actions, every type ready to add.

The list follows ``channel.state`` events live (through the shared
ChannelBoard); adding or editing swaps the list for a ChannelEditor whose
form is generated from the type's schema, and saving applies the channel
to the running gateway without a restart.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import flet as ft

from pyclaw_app.control import (
    ChannelHealth,
    ChannelStatus,
    ChannelType,
    ControlPlane,
    GroupRow,
    PairingRow,
)
from pyclaw_app.model import Event
from views import style
from views.channel_catalog import ChannelCatalog
from views.channel_editor import ChannelEditor
from views.channel_icons import channel_badge
from views.confirm import ask_first
from views.health import ChannelHistories, health_strip, health_summary
from views.i18n import t
from views.state import ChannelBoard

__all__ = ["ChannelCard", "ChannelsView", "card_actions", "group_control", "pairing_control"]

_log = logging.getLogger(__name__)

Action = Callable[[str], Awaitable[object]]
Handler = Callable[[ft.Event[ft.Control]], Awaitable[None]]


def _section(title: str) -> ft.Text:
    return ft.Text(title, theme_style=ft.TextThemeStyle.TITLE_MEDIUM, weight=ft.FontWeight.W_600)


def _card(content: ft.Control, width: int | None = None) -> ft.Container:
    return ft.Container(
        width=width,
        padding=14,
        border_radius=12,
        bgcolor=ft.Colors.SURFACE_CONTAINER_LOW,
        border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
        content=content,
    )


LIVE_STATES = frozenset({"online", "connecting", "degraded"})


def card_actions(status: ChannelStatus) -> tuple[str, ...]:
    """The lifecycle actions that make sense in a channel's state, and only those.

    Enabled is the config ("run it with the gateway"); Start and Stop act on the running
    gateway now. A disabled channel can only be enabled (which starts it); a running one
    can be stopped, restarted or disabled; a stopped or failed one can be started again.
    """
    if not status.enabled or status.state == "disabled":
        return ("enable",)
    if status.state in LIVE_STATES:
        return ("stop", "restart", "disable")
    return ("start", "disable")


class ChannelCard:
    """A configured channel: state, last error, its last day and the actions its state allows."""

    def __init__(self, status: ChannelStatus, view: ChannelsView,
                 kind: ChannelType | None = None) -> None:
        name = status.name
        # the platform's logo, as in the catalog; the state is the dot and the word
        self.icon = channel_badge(kind, 40, fallback=status.icon)
        self.title = ft.Text(weight=ft.FontWeight.W_600, size=15, max_lines=1,
                             overflow=ft.TextOverflow.ELLIPSIS)
        self.dot = ft.Container(width=10, height=10, border_radius=5)
        self.state = ft.Text(weight=ft.FontWeight.W_500, size=13)
        # not selectable: a selectable text reserves all of its max_lines (the whole cause
        # can be copied from the banner and the logs)
        self.detail = ft.Text(size=12, max_lines=3, overflow=ft.TextOverflow.ELLIPSIS)
        self.strip = ft.Container()
        self.summary = ft.Text(size=11, color=ft.Colors.ON_SURFACE_VARIANT)
        self.history = ft.Column(spacing=4, visible=False, controls=[self.strip, self.summary])

        def button(icon: ft.IconData, tip: str, action: Action, *args: object
                   ) -> ft.IconButton:
            return ft.IconButton(icon, tooltip=tip, icon_size=20,
                                 on_click=view.handler(action, name, *args))

        self.lifecycle: dict[str, ft.IconButton] = {
            "start": button(ft.Icons.PLAY_ARROW_ROUNDED, t("Start {name}", name=name), view.start),
            "stop": button(ft.Icons.STOP_ROUNDED, t("Stop {name}", name=name), view.stop),
            "restart": button(ft.Icons.RESTART_ALT, t("Restart {name}", name=name),
                              view.restart),
            "enable": button(ft.Icons.POWER_SETTINGS_NEW, t("Enable {name}", name=name),
                             view.set_enabled, True),
            "disable": button(ft.Icons.DO_NOT_DISTURB_ON_OUTLINED, t("Disable {name}", name=name),
                              view.set_enabled, False),
        }
        self.actions = ft.Row(spacing=0, controls=[
            *self.lifecycle.values(),
            button(ft.Icons.EDIT_OUTLINED, t("Edit {name}", name=name), view.edit),
            ft.IconButton(ft.Icons.DELETE_OUTLINE, tooltip=t("Delete {name}", name=name),
                          icon_size=20,
                          icon_color=ft.Colors.ERROR,
                          on_click=lambda e: view.confirm_delete(name, e.page)),
        ])
        self.status = status
        self.root = _card(width=360, content=ft.Column(spacing=6, controls=[
            ft.Row([self.icon, ft.Column([self.title, ft.Row([self.dot, self.state], spacing=6)],
                                         spacing=2, expand=True)],
                   spacing=12),
            self.detail,
            self.history,
            ft.Row([self.actions], alignment=ft.MainAxisAlignment.END),
        ]))
        self.show(status)

    @property
    def offered(self) -> tuple[str, ...]:
        """The lifecycle actions shown now."""
        return tuple(k for k, b in self.lifecycle.items() if b.visible)

    def show(self, status: ChannelStatus) -> None:
        self.status = status
        color = style.state_color(status.state)
        self.title.value = (f"{status.name} · {status.title}"
                            if status.title and status.title != status.name else status.name)
        self.dot.bgcolor = color
        self.state.value = style.state_label(status.state)
        self.state.color = color
        problem = status.config_error or status.last_error
        self.detail.value = problem or status.reason
        self.detail.visible = bool(self.detail.value)
        self.detail.color = ft.Colors.ERROR if problem else ft.Colors.ON_SURFACE_VARIANT
        offered = card_actions(status)
        for key, control in self.lifecycle.items():
            control.visible = key in offered

    def show_health(self, health: ChannelHealth) -> None:
        self.strip.content = health_strip(health)
        self.summary.value = health_summary(health)
        self.history.visible = bool(health.hours)


def pairing_control(row: PairingRow, now: float,
                    on_approve: Handler) -> ft.Control:
    minutes = max(0, int((row.expires_at - now) // 60))
    who = row.sender_name or row.sender_id
    if row.sender_name and row.sender_id:
        who = f"{row.sender_name} ({row.sender_id})"
    return ft.Container(
        padding=ft.Padding.symmetric(horizontal=12, vertical=6),
        border_radius=8,
        bgcolor=ft.Colors.SECONDARY_CONTAINER,
        content=ft.Row(spacing=16, vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=[
            ft.Text(row.code, font_family="monospace", weight=ft.FontWeight.BOLD, size=16,
                    selectable=True),
            ft.Text(t("{who} on {channel}", who=who, channel=row.channel), expand=True),
            ft.Text(t("expires in {minutes} min", minutes=minutes), size=12,
                    color=ft.Colors.ON_SURFACE_VARIANT),
            ft.FilledButton(t("Approve"), icon=ft.Icons.CHECK, on_click=on_approve,
                            tooltip=t("Approve {code}", code=row.code)),
        ]),
    )


def group_control(row: GroupRow, on_approve: Handler, on_reject: Handler) -> ft.Control:
    return ft.Container(
        padding=ft.Padding.symmetric(horizontal=12, vertical=6),
        border_radius=8,
        bgcolor=ft.Colors.SECONDARY_CONTAINER,
        content=ft.Row(spacing=16, vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=[
            ft.Text(t("group {chat} on {channel}", chat=row.chat, channel=row.channel), expand=True,
                    selectable=True),
            ft.Text(t("asked by {who}", who=row.requested_by) if row.requested_by else "", size=12,
                    color=ft.Colors.ON_SURFACE_VARIANT),
            ft.FilledButton(t("Approve"), icon=ft.Icons.CHECK, on_click=on_approve,
                            tooltip=t("Approve group {chat}", chat=row.chat)),
            ft.OutlinedButton(t("Reject"), icon=ft.Icons.BLOCK, on_click=on_reject,
                              tooltip=t("Reject group {chat}", chat=row.chat)),
        ]),
    )


class ChannelsView:
    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        self.board = ChannelBoard()
        self.histories = ChannelHistories()
        self.types: list[ChannelType] = []
        self.cards: dict[str, ChannelCard] = {}
        self.pairing: list[PairingRow] = []
        self.groups: list[GroupRow] = []
        self.editor: ChannelEditor | None = None
        self.notice = ft.Text(color=ft.Colors.ERROR, visible=False, selectable=True)
        self.channel_grid = ft.Row(wrap=True, spacing=12, run_spacing=12,
                                   vertical_alignment=ft.CrossAxisAlignment.START)
        self.no_channels = ft.Text(t("No channels configured yet: add one below."),
                                   color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        self.catalog = ChannelCatalog(lambda type_name: self.handler(self.add, type_name))
        self.pairing_list = ft.Column(spacing=6)
        self.pairing_section = ft.Column(visible=False, spacing=8, controls=[
            ft.Row([_section(t("Pairing requests")),
                    ft.IconButton(ft.Icons.REFRESH, tooltip=t("Refresh pairing and group requests"),
                                  on_click=self.handler(self.load_requests))]),
            ft.Text(t("New senders got these codes; approve the ones you know."), size=12,
                    color=ft.Colors.ON_SURFACE_VARIANT),
            self.pairing_list,
        ])
        self.group_list = ft.Column(spacing=6)
        self.group_section = ft.Column(visible=False, spacing=8, controls=[
            _section(t("Group requests")),
            ft.Text(t("These groups mentioned the bot; it answers a group only once you "
                      "approve it (group_policy allowlist). Rejected groups stay silent."),
                    size=12,
                    color=ft.Colors.ON_SURFACE_VARIANT),
            self.group_list,
        ])
        self.add_button = ft.FilledButton(t("Add channel"), icon=ft.Icons.ADD,
                                          on_click=self.handler(self.add_default))
        self.list_page = ft.Column(
            expand=True,
            scroll=ft.ScrollMode.AUTO,
            spacing=14,
            controls=[
                ft.Row([ft.Text(t("Channels"), theme_style=ft.TextThemeStyle.HEADLINE_SMALL),
                        self.add_button], alignment=ft.MainAxisAlignment.SPACE_BETWEEN),
                self.notice,
                self.pairing_section,
                self.group_section,
                _section(t("Configured")),
                self.channel_grid,
                self.no_channels,
                _section(t("Available channel types")),
                self.catalog.root,
            ],
        )
        self.editor_slot = ft.Container(expand=True, visible=False)
        # both stay mounted and only their visibility flips: a subtree changed by live
        # events while detached from the page is not re-sent reliably when re-attached
        self._root = ft.Column(expand=True, spacing=0, controls=[self.list_page,
                                                                 self.editor_slot])

    @property
    def root(self) -> ft.Control:
        return self._root

    # -- loading -----------------------------------------------------------------------------

    async def load(self) -> None:
        """Snapshot of channels, types and pairing; a failure is shown, never raised.

        The live session loads every panel before the page works at all, so one
        view's trouble must not take the others down.
        """
        await self.guard(self._load())

    async def _load(self) -> None:
        self.types = self.plane.channel_types()
        channels = await self.plane.channels()
        self.board.reset(channels)
        await self._load_health()
        self.cards = {}
        self.channel_grid.controls = []
        for status in channels:
            self._add_card(status)
        self._show_types()
        await self.load_requests()

    async def load_requests(self) -> None:
        self.pairing = await self.plane.pairing_requests()
        now = time.time()
        self.pairing_list.controls = [
            pairing_control(row, now, self.handler(self.approve, row.code))
            for row in self.pairing
        ]
        self.pairing_section.visible = bool(self.pairing)
        self.groups = await self.plane.group_requests()
        self.group_list.controls = [
            group_control(row, self.handler(self.decide_group, row.channel, row.chat, True),
                          self.handler(self.decide_group, row.channel, row.chat, False))
            for row in self.groups
        ]
        self.group_section.visible = bool(self.groups)

    async def _load_health(self) -> None:
        """Each channel's last day; without it (an older gateway) the cards go without."""
        try:
            self.histories.reset(await self.plane.channel_health())
        except Exception as exc:  # noqa: BLE001 - the history is extra; the list still works
            _log.warning("channel health could not load: %s", exc)
            self.histories.reset(())

    def apply(self, events: Sequence[Event], now: float) -> None:
        for name in self.board.apply(events):
            status = self.board.channels[name]
            card = self.cards.get(name)
            if card is None:
                self._add_card(status)
            else:
                card.show(status)
        for name in self.histories.apply(events, now):
            card = self.cards.get(name)
            if card is not None:
                card.show_health(self.histories.get(name, now))

    def _add_card(self, status: ChannelStatus) -> None:
        kind = next((k for k in self.types if k.type == status.type), None)
        card = ChannelCard(status, self, kind)
        card.show_health(self.histories.get(status.name, time.time()))
        self.cards[status.name] = card
        self.channel_grid.controls.append(card.root)
        self.no_channels.visible = not self.cards

    def _show_types(self) -> None:
        configured: dict[str, int] = {}
        for status in self.board.channels.values():
            configured[status.type] = configured.get(status.type, 0) + 1
        self.catalog.show(self.types, configured)
        self.no_channels.visible = not self.cards

    def _default_type(self) -> str:
        """The first type in catalog order that is installed and not configured yet."""
        configured = {s.type for s in self.board.channels.values()}
        addable = [k.type for k in self.types if not k.install]
        fresh = [name for name in addable if name not in configured]
        return (fresh or addable or [""])[0]

    # -- actions (each reports failure in the notice line, never into Flet) ----------------

    def handler(self, action: Callable[..., Awaitable[object]], *args: object) -> Handler:
        """An async click handler running ``action(*args)`` (Flet awaits it as its own task)."""
        async def on_event(e: ft.Event[ft.Control]) -> None:
            await self.run(e, action, *args)

        return on_event

    async def run(self, e: ft.Event[ft.Control], action: Callable[..., Awaitable[object]],
                  *args: object) -> None:
        await self.guard(action(*args))
        e.page.update()

    async def guard(self, work: Awaitable[object]) -> bool:
        """Await an action; a failure goes to the notice line. Returns whether it worked."""
        self.notice.visible = False
        try:
            await work
        except Exception as exc:  # noqa: BLE001 - every failure is shown where it happened
            _log.warning("channel action failed: %s", exc)
            self.notice.value = t("That did not work: {error}", error=exc)
            self.notice.visible = True
            return False
        return True

    async def start(self, name: str) -> None:
        await self.plane.start_channel(name)

    async def stop(self, name: str) -> None:
        await self.plane.stop_channel(name)

    async def restart(self, name: str) -> None:
        await self.plane.restart_channel(name)

    async def set_enabled(self, name: str, enabled: bool) -> None:
        errors = await self.plane.set_channel_enabled(name, enabled)
        if errors:
            raise ValueError("; ".join(e.message for e in errors))
        await self._reload_channels()

    async def approve(self, code: str) -> None:
        if not await self.plane.approve_pairing(code):
            raise ValueError(t("code {code} is unknown or expired", code=code))
        await self.load_requests()

    async def decide_group(self, channel: str, chat: str, approve: bool) -> None:
        if not await self.plane.decide_group(channel, chat, approve):
            raise ValueError(t("group {chat} on {channel} is not waiting for a decision",
                               chat=chat, channel=channel))
        await self.load_requests()

    async def delete(self, name: str) -> None:
        await self.plane.delete_channel(name)
        await self._reload_channels()

    def confirm_delete(self, name: str, page: ft.Page | ft.BasePage | None) -> ft.AlertDialog:
        """Ask first: deleting removes the config entry and the stored secrets."""
        return ask_first(page, title=t("Delete channel {name}?", name=name), action=t("Delete"),
                         body=t("It stops now, and its settings and stored secrets are "
                                "removed. Its messages and logs stay."),
                         on_confirm=lambda e: self.run(e, self.delete, name))

    async def add_default(self) -> ChannelEditor:
        """"Add channel": the first type not configured yet (its form has a type picker)."""
        return await self.add(self._default_type())

    async def add(self, type_name: str) -> ChannelEditor:
        """Open an empty form for a new channel of ``type_name``."""
        channel_type = next(k for k in self.types if k.type == type_name)
        taken = set(self.board.channels)
        name = type_name
        n = 2
        while name in taken:
            name, n = f"{type_name}-{n}", n + 1
        return self._open(ChannelEditor(self.plane, channel_type, suggested_name=name,
                                        types=self.types, on_close=self._close_editor))

    async def edit(self, name: str) -> ChannelEditor:
        form = self.plane.channel_form(name)
        channel_type = next(k for k in self.types if k.type == form.type)
        return self._open(ChannelEditor(self.plane, channel_type, form,
                                        on_close=self._close_editor))

    def _open(self, editor: ChannelEditor) -> ChannelEditor:
        self.editor = editor
        self.editor_slot.content = editor.root
        self.editor_slot.visible = True
        self.list_page.visible = False
        return editor

    async def _close_editor(self, saved: bool) -> None:
        self.editor = None
        self.editor_slot.content = None
        self.editor_slot.visible = False
        self.list_page.visible = True
        if saved:
            await self._reload_channels()

    async def _reload_channels(self) -> None:
        channels = await self.plane.channels()
        self.board.reset(channels)
        known = set()
        for status in channels:
            known.add(status.name)
            card = self.cards.get(status.name)
            if card is None:
                self._add_card(status)
            else:
                card.show(status)
        for name in set(self.cards) - known:
            self.channel_grid.controls.remove(self.cards.pop(name).root)
        self._show_types()
