"""The Add channel catalog: every channel type by category, with a search and category chips.

Thirty-odd types do not fit one glance, so the catalog is grouped the way people
look for a platform (the chat app their users have, their team's chat, an open
protocol, something for developers) and filtered as they type. The plane lists the
types in catalog order; groups are shown in the order they first appear. Cards are
built once per load and only shown or hidden while filtering, so typing sends a
handful of visibility changes, not thirty cards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence

import flet as ft

from pyclaw_app.control import ChannelType
from views.channel_icons import channel_badge
from views.i18n import t

__all__ = ["ALL", "OTHER", "ChannelCatalog", "TypeCard", "matches"]

ALL = ""
"""The category filter that shows every category."""
OTHER = "Other"
"""Where a type that names no category (a plugin's, an older gateway's) is listed."""

Handler = Callable[[ft.Event[ft.Control]], Awaitable[None]]
AddHandler = Callable[[str], Handler]
"""Given a type name, the click handler of its Add button."""


def category_of(kind: ChannelType) -> str:
    return kind.category or OTHER


def category_label(category: str) -> str:
    """A category as a person reads it: the gateway names the known ones in English (its
    ``Category`` values), a plugin's own category is shown as the plugin wrote it."""
    known = {"Chat apps": t("Chat apps"), "Team chat": t("Team chat"),
             "Open protocols": t("Open protocols"), "Developer": t("Developer"),
             OTHER: t("Other")}
    return known.get(category, category)


def matches(kind: ChannelType, query: str) -> bool:
    """Every word of ``query`` appears in the title, type name, description or category
    (case-insensitive, so "slack", "Team" and "企业微信" all find something); the category
    counts in English and in the page's language."""
    words = query.casefold().split()
    haystack = " ".join((kind.title, kind.type, kind.description, category_of(kind),
                         category_label(category_of(kind)))).casefold()
    return all(word in haystack for word in words)


def _card(content: ft.Control) -> ft.Container:
    return ft.Container(
        width=360,
        padding=14,
        border_radius=12,
        bgcolor=ft.Colors.SURFACE_CONTAINER_LOW,
        border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
        content=content,
    )


class TypeCard:
    """A connector type with its logo, description and an Add button; a type whose SDK is
    not installed shows the command that installs it instead."""

    def __init__(self, channel_type: ChannelType, configured: int, on_add: AddHandler) -> None:
        self.type = channel_type
        count = (t("{count} configured", count=configured) if configured
                 else t("not configured"))
        if channel_type.install:
            count = t("not installed")
            links: list[ft.Control] = [
                ft.Text(t("Install with:"), size=12, color=ft.Colors.ON_SURFACE_VARIANT),
                ft.Text(channel_type.install, font_family="monospace", size=12,
                        selectable=True),
            ]
        else:
            links = [
                ft.FilledTonalButton(t("Add {title}", title=channel_type.title), icon=ft.Icons.ADD,
                                     on_click=on_add(channel_type.type)),
            ]
        if channel_type.docs_url:
            links.append(ft.TextButton(t("Setup guide"), icon=ft.Icons.OPEN_IN_NEW,
                                       url=channel_type.docs_url,
                                       tooltip=t("{title} setup guide",
                                                   title=channel_type.title)))
        self.badge = channel_badge(channel_type, 40, dimmed=bool(channel_type.install))
        self.root = _card(ft.Column(spacing=8, controls=[
            ft.Row([self.badge,
                    ft.Column([ft.Text(channel_type.title, weight=ft.FontWeight.W_600),
                               ft.Text(" · ".join(filter(None, (channel_type.transport,
                                                                count))), size=12,
                                       color=ft.Colors.ON_SURFACE_VARIANT)],
                              spacing=0, expand=True)], spacing=12),
            ft.Text(channel_type.description, size=13, max_lines=3,
                    overflow=ft.TextOverflow.ELLIPSIS, visible=bool(channel_type.description)),
            ft.Row(links, wrap=True, spacing=8),
        ]))


class _Group:
    """One category's heading and cards."""

    def __init__(self, name: str, cards: list[TypeCard]) -> None:
        self.name = name
        self.cards = cards
        self.heading = ft.Text(category_label(name), theme_style=ft.TextThemeStyle.TITLE_SMALL,
                               color=ft.Colors.ON_SURFACE_VARIANT)
        self.root = ft.Column(spacing=8, controls=[
            self.heading,
            ft.Row(wrap=True, spacing=12, run_spacing=12,
                   vertical_alignment=ft.CrossAxisAlignment.START,
                   controls=[c.root for c in cards]),
        ])


class ChannelCatalog:
    """The search field, the category chips, the grouped cards and the "nothing found" line."""

    def __init__(self, on_add: AddHandler) -> None:
        self._on_add = on_add
        self.query = ""
        self.category = ALL
        self.cards: dict[str, TypeCard] = {}
        self.groups: list[_Group] = []
        self.clear_button = ft.IconButton(ft.Icons.CLOSE, tooltip=t("Clear search"),
                                          visible=False, on_click=self._on_clear)
        self.search_field = ft.TextField(
            # no hint_text: while focused it would join the label screen readers hear
            label=t("Search channel types"), prefix_icon=ft.Icons.SEARCH, dense=True,
            on_change=self._on_search, expand=True)
        self.chips = ft.Row(wrap=True, spacing=8, run_spacing=8)
        self.summary = ft.Text(size=12, color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        self.empty = ft.Text(visible=False, color=ft.Colors.ON_SURFACE_VARIANT)
        self.show_all = ft.TextButton(t("Show every channel type"), icon=ft.Icons.CLEAR_ALL,
                                      visible=False, on_click=self._on_clear)
        self.grid = ft.Column(spacing=18)
        self.root = ft.Column(spacing=12, controls=[
            # beside the field, not its suffix: a suffix has no button of its own for a
            # screen reader
            ft.ResponsiveRow([ft.Row([self.search_field, self.clear_button], spacing=4,
                                     col={"xs": 12, "md": 8, "xl": 5})]),
            self.chips,
            self.summary,
            ft.Row([self.empty, self.show_all], wrap=True, spacing=8,
                   vertical_alignment=ft.CrossAxisAlignment.CENTER),
            self.grid,
        ])

    # -- content -----------------------------------------------------------------------------

    def show(self, types: Sequence[ChannelType], configured: Mapping[str, int]) -> None:
        """(Re)build the cards for ``types`` (in the plane's catalog order), keeping the
        current search and category."""
        self.cards = {k.type: TypeCard(k, configured.get(k.type, 0), self._on_add)
                      for k in types}
        order: dict[str, list[TypeCard]] = {}
        for card in self.cards.values():
            order.setdefault(category_of(card.type), []).append(card)
        self.groups = [_Group(name, cards) for name, cards in order.items()]
        self.grid.controls = [g.root for g in self.groups]
        if self.category != ALL and self.category not in order:
            self.category = ALL
        self.chips.controls = [self._chip(ALL, t("All"))] + [
            self._chip(g.name, category_label(g.name)) for g in self.groups]
        self._filter()

    def _chip(self, category: str, label: str) -> ft.Chip:
        return ft.Chip(label=ft.Text(label), selected=category == self.category,
                       data=category, show_checkmark=False, on_select=self._on_chip)

    # -- filtering ---------------------------------------------------------------------------

    @property
    def shown(self) -> list[str]:
        """The type names on screen now, in order."""
        return [c.type.type for g in self.groups for c in g.cards if c.root.visible]

    def search(self, query: str) -> None:
        self.query = query
        self.search_field.value = query
        self._filter()

    def pick(self, category: str) -> None:
        """Show one category (``ALL``: every one)."""
        self.category = category
        for chip in self.chips.controls:
            if isinstance(chip, ft.Chip):
                chip.selected = chip.data == category
        self._filter()

    def _filter(self) -> None:
        total = shown = 0
        for group in self.groups:
            in_category = self.category in (ALL, group.name)
            visible = 0
            for card in group.cards:
                card.root.visible = in_category and matches(card.type, self.query)
                visible += card.root.visible
            group.root.visible = visible > 0
            total += len(group.cards)
            shown += visible
        query = self.query.strip()
        where = ("" if self.category == ALL
                 else t(" in {category}", category=category_label(self.category)))
        self.clear_button.visible = bool(query)
        self.summary.value = t("{shown} of {total} channel types{where}", shown=shown,
                               total=total, where=where)
        self.summary.visible = bool(query or where) and shown > 0
        self.empty.value = (t("No channel type matches “{query}”{where}.", query=query,
                              where=where) if query
                            else t("No channel types{where}.", where=where))
        self.empty.visible = self.show_all.visible = shown == 0 and total > 0

    # -- events ------------------------------------------------------------------------------

    def _on_search(self, e: ft.Event[ft.TextField]) -> None:
        self.query = self.search_field.value or ""
        self._filter()
        e.page.update()

    def _on_chip(self, e: ft.Event[ft.Chip]) -> None:
        chip = e.control
        # chips act as one choice: tapping the chosen one again goes back to All
        self.pick(str(chip.data) if chip.selected else ALL)
        e.page.update()

    def _on_clear(self, e: ft.Event[ft.Control]) -> None:
        self.search("")
        self.pick(ALL)
        e.page.update()
