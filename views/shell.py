"""The app frame: navigation (rail when wide, bar when narrow), banners, content.

The route is the single source of navigation truth: choosing a destination
pushes its route, and only the route-change handler switches the content.
A phone's bar holds at most five entries (seven labels wrapped on a 390 px
screen): the first four destinations and "More", a page (MORE_ROUTE) listing the rest.
Above the content sit the config-error banner and the health banner (views.health):
a failed channel or provider is named there and counted on its navigation entry,
whichever view is open.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import flet as ft

from pyclaw_app.control import ControlPlane
from pyclaw_app.model import Event
from views.channels import ChannelsView
from views.chat import ChatView
from views.conversation import BACK_ROUTE as CONVERSATION_PARENT
from views.conversation import ROUTE as CONVERSATION_ROUTE
from views.conversation import ConversationView
from views.dashboard import DashboardView
from views.first_run import SETUP_ROUTE, FirstRunGuide
from views.health import Alert, HealthBanner
from views.i18n import t
from views.logs import LogsView
from views.panel import Destination, Panel
from views.schedules import SchedulesView
from views.settings_view import SettingsView
from views.traffic import WidthAware
from views.usage import UsageView

__all__ = ["DESTINATIONS", "MORE_ROUTE", "PHONE_BAR_MAX", "WIDE_MIN_WIDTH", "MoreView", "Shell",
           "config_banner"]

WIDE_MIN_WIDTH = 640
PHONE_BAR_MAX = 5
"""Entries a phone's bar holds: Material's bar is for three to five, and "Dashboard" and
"Schedules" wrapped in a seventh of 390 px."""
MORE_ROUTE = "/more"

DESTINATIONS: list[Destination] = [
    Destination("/dashboard", "Dashboard", ft.Icons.DASHBOARD_OUTLINED, ft.Icons.DASHBOARD,
                DashboardView),
    Destination("/channels", "Channels", ft.Icons.HUB_OUTLINED, ft.Icons.HUB, ChannelsView),
    Destination("/chat", "Chat", ft.Icons.CHAT_BUBBLE_OUTLINE, ft.Icons.CHAT_BUBBLE, ChatView),
    Destination("/logs", "Logs", ft.Icons.RECEIPT_LONG_OUTLINED, ft.Icons.RECEIPT_LONG, LogsView),
    Destination("/schedules", "Schedules", ft.Icons.SCHEDULE_OUTLINED, ft.Icons.SCHEDULE,
                SchedulesView),
    Destination("/usage", "Usage", ft.Icons.INSIGHTS_OUTLINED, ft.Icons.INSIGHTS, UsageView),
    Destination("/settings", "Settings", ft.Icons.SETTINGS_OUTLINED, ft.Icons.SETTINGS,
                SettingsView),
]


def destination_labels() -> dict[str, str]:
    """The destinations' English labels in the page's language; built with each shell,
    since ``t`` answers for the page it runs on."""
    return {"Dashboard": t("Dashboard"), "Channels": t("Channels"), "Chat": t("Chat"),
            "Logs": t("Logs"), "Schedules": t("Schedules"), "Usage": t("Usage"),
            "Settings": t("Settings")}


class MoreView:
    """The destinations a phone's bar has no room for, as a list of named rows.

    Each row is a button named by its destination (what a screen reader says, and what
    the browser tests find it by) and carries the destination's failure badge.
    """

    def __init__(self, destinations: Sequence[Destination], labels: dict[str, str]) -> None:
        self.icons: dict[str, ft.Icon] = {d.route: ft.Icon(d.icon) for d in destinations}
        self.rows = [ft.ListTile(leading=self.icons[d.route],
                                 title=ft.Text(labels.get(d.label, d.label)),
                                 trailing=ft.Icon(ft.Icons.CHEVRON_RIGHT),
                                 on_click=self._opener(d.route))
                     for d in destinations]
        self._root = ft.Column(
            visible=False, spacing=4,
            controls=[ft.Text(t("More"), theme_style=ft.TextThemeStyle.HEADLINE_SMALL),
                      *self.rows])

    @property
    def root(self) -> ft.Control:
        return self._root

    async def load(self) -> None:
        """Nothing to fetch: the rows are the destinations."""

    def apply(self, events: Sequence[Event], now: float) -> None:
        """Nothing live: the badges come through ``Shell.show_badges``."""

    @staticmethod
    def _opener(route: str) -> Callable[[ft.Event[ft.ListTile]], Awaitable[None]]:
        async def open_route(e: ft.Event[ft.ListTile]) -> None:
            await e.page.push_route(route)

        return open_route


def config_banner(errors: Sequence[str]) -> ft.Control:
    """Config problems in full (they name file:line and field), impossible to overlook."""
    return ft.Container(
        visible=bool(errors),
        bgcolor=ft.Colors.ERROR_CONTAINER,
        padding=ft.Padding.symmetric(horizontal=20, vertical=12),
        content=ft.Row(
            vertical_alignment=ft.CrossAxisAlignment.START,
            spacing=12,
            controls=[
                ft.Icon(ft.Icons.WARNING_AMBER_ROUNDED, color=ft.Colors.ON_ERROR_CONTAINER,
                        semantics_label=t("Configuration problems")),
                ft.Column(
                    expand=True,
                    spacing=4,
                    controls=[
                        ft.Text(t("Configuration problems"), weight=ft.FontWeight.BOLD,
                                color=ft.Colors.ON_ERROR_CONTAINER),
                        *(ft.Text(err, color=ft.Colors.ON_ERROR_CONTAINER)
                          for err in errors),
                    ],
                ),
            ],
        ),
    )


class Shell:
    """Builds the frame for a plane; ``layout(width)`` and ``show(route)`` need no page."""

    def __init__(self, plane: ControlPlane,
                 destinations: Sequence[Destination] = tuple(DESTINATIONS)) -> None:
        if not destinations:
            raise ValueError("the shell needs at least one destination")
        self.destinations = list(destinations)
        self.panels: dict[str, Panel] = {d.route: d.build(plane) for d in self.destinations}
        self.guide = FirstRunGuide(plane)
        """The first-run guide on SETUP_ROUTE: no navigation entry of its own (Settings
        opens it; ``first_run_due`` says when the page should open it by itself)."""
        self.conversation = ConversationView(plane)
        """A person's or a chat's conversation on CONVERSATION_ROUTE/...: reached from Logs
        (which stays selected), so the phone's bar keeps its seven destinations."""
        self.banner = config_banner(plane.config_errors())
        self.health = HealthBanner(plane, open_logs=self.open_logs, on_badges=self.show_badges)
        self.banners = ft.Column(spacing=0, controls=[self.banner, self.health.root])
        labels = destination_labels()
        overflow = len(self.destinations) > PHONE_BAR_MAX
        self.on_bar = self.destinations[:PHONE_BAR_MAX - 1] if overflow else self.destinations
        """The destinations the phone's bar shows itself; the others are under "More"."""
        self.more = MoreView(self.destinations[len(self.on_bar):], labels)
        # Icons as controls: a badge shows on a destination's icon, not on the destination.
        # Per route: the rail's pair, then the bar's pair (on the bar) or its More row's icon
        self._icons: dict[str, list[ft.Icon]] = {
            d.route: [ft.Icon(d.icon), ft.Icon(d.selected_icon)] for d in self.destinations}
        for d in self.on_bar:
            self._icons[d.route] += [ft.Icon(d.icon), ft.Icon(d.selected_icon)]
        for route, icon in self.more.icons.items():
            self._icons[route].append(icon)
        self._more_icons = [ft.Icon(ft.Icons.MORE_HORIZ), ft.Icon(ft.Icons.MORE_HORIZ)]
        """The bar's "More" entry: its badge counts the failures of what it holds."""
        # Every view stays mounted and only the current one is visible: a control tree that
        # live events change while detached came back doubled when re-attached (Flet 1.0).
        self.content = ft.Container(
            expand=True, padding=ft.Padding.all(20),
            content=ft.Column(expand=True, spacing=0,
                              controls=[*(p.root for p in self.panels.values()),
                                        self.guide.root, self.conversation.root,
                                        self.more.root]))
        self.rail = ft.NavigationRail(
            selected_index=0,
            label_type=ft.NavigationRailLabelType.ALL,
            min_width=88,
            group_alignment=-0.95,
            leading=ft.Container(
                padding=ft.Padding.only(top=12, bottom=8),
                content=ft.Column(
                    spacing=2,
                    horizontal_alignment=ft.CrossAxisAlignment.CENTER,
                    controls=[ft.Image(src="icon.png", width=36, height=36,
                                       semantics_label=t("pyclaw logo")),
                              ft.Text("pyclaw", weight=ft.FontWeight.BOLD, size=13)],
                ),
            ),
            destinations=[
                ft.NavigationRailDestination(icon=self._icons[d.route][0],
                                             selected_icon=self._icons[d.route][1],
                                             label=labels.get(d.label, d.label))
                for d in self.destinations
            ],
        )
        more = [ft.NavigationBarDestination(icon=self._more_icons[0],
                                            selected_icon=self._more_icons[1], label=t("More"))]
        self.bar = ft.NavigationBar(
            selected_index=0,
            destinations=[
                *(ft.NavigationBarDestination(icon=self._icons[d.route][2],
                                              selected_icon=self._icons[d.route][3],
                                              label=labels.get(d.label, d.label))
                  for d in self.on_bar),
                *(more if overflow else []),
            ],
        )
        self.route = ""
        self.show(self.destinations[0].route)

    @property
    def default_route(self) -> str:
        return self.destinations[0].route

    def route_at(self, index: int) -> str:
        """The route of the rail's entry ``index``."""
        return self.destinations[index].route

    def bar_route_at(self, index: int) -> str:
        """The route of the phone bar's entry ``index``: past its destinations, "More"."""
        return self.on_bar[index].route if index < len(self.on_bar) else MORE_ROUTE

    def bar_index(self, route: str) -> int | None:
        """The bar's entry that stands for ``route``: its own, or "More" for what it holds."""
        index = next((i for i, d in enumerate(self.destinations) if d.route == route), None)
        if index is None and route != MORE_ROUTE:
            return None
        return index if index is not None and index < len(self.on_bar) else len(self.on_bar)

    def show(self, route: str) -> str:
        """Switch the content to ``route`` (unknown routes fall back to the first); returns it."""
        self.conversation.root.visible = self.more.root.visible = False
        if route == SETUP_ROUTE:
            self.route = route
            self.rail.selected_index = None  # the guide is no destination of its own
            for panel in self.panels.values():
                panel.root.visible = False
            self.guide.reopen()
            self.guide.root.visible = True
            return route
        self.guide.root.visible = False
        if route == CONVERSATION_ROUTE or route.startswith(f"{CONVERSATION_ROUTE}/"):
            return self._show_conversation(route)
        if route == MORE_ROUTE and self.more.rows:
            return self._show_more()
        index = next((i for i, d in enumerate(self.destinations) if d.route == route), 0)
        self.route = self.destinations[index].route
        self.rail.selected_index = index
        self.bar.selected_index = self.bar_index(self.route)
        for panel_route, panel in self.panels.items():
            panel.root.visible = panel_route == self.route
        return self.route

    def _show_conversation(self, route: str) -> str:
        """The conversation a route names; Logs, where it is opened from, stays selected."""
        logs = next((i for i, d in enumerate(self.destinations) if d.route == CONVERSATION_PARENT),
                    None)
        self.route = route
        self.rail.selected_index = logs
        self.bar.selected_index = None if logs is None else self.bar_index(CONVERSATION_PARENT)
        for panel in self.panels.values():
            panel.root.visible = False
        self.conversation.select(route)
        self.conversation.root.visible = True
        return route

    def _show_more(self) -> str:
        """The list of what the phone's bar has no room for; no rail entry is selected."""
        self.route = MORE_ROUTE
        self.rail.selected_index = None
        self.bar.selected_index = len(self.on_bar)
        for panel in self.panels.values():
            panel.root.visible = False
        self.more.root.visible = True
        return MORE_ROUTE

    async def load_route(self) -> bool:
        """Load what the shown route names and has not loaded yet (the conversation of
        ``/conversation/...``); True when something changed."""
        if self.route.startswith(CONVERSATION_ROUTE) and self.conversation.select(self.route):
            await self.conversation.load()
            return True
        return False

    def fit_width(self, width: float | None) -> None:
        """Tell the views that lay out by width (the traffic feed on a phone) the page's."""
        for panel in self.live_panels:
            if isinstance(panel, WidthAware):
                panel.fit_width(width)

    @property
    def current(self) -> Panel:
        if self.route.startswith(CONVERSATION_ROUTE):
            return self.conversation
        if self.route == MORE_ROUTE:
            return self.more
        return self.guide if self.route == SETUP_ROUTE else self.panels[self.route]

    def first_run_due(self, requested: str) -> bool:
        """Open the guide by itself: it is due (loaded: no provider, never skipped) and the
        page was opened at its root, not at a view someone asked for by its address."""
        return self.guide.wanted and requested in ("", "/") and self.route != SETUP_ROUTE

    @property
    def live_panels(self) -> list[Panel]:
        """What the live session loads and feeds: every view, the guide, the health banner."""
        return [*self.panels.values(), self.guide, self.conversation, self.health]

    async def open_logs(self, alert: Alert) -> str:
        """The Logs view filtered to what an alert is about (a channel's lines, or the lines
        naming a provider), shown; returns its route for the page to push."""
        route, logs = next(((r, p) for r, p in self.panels.items() if isinstance(p, LogsView)),
                           (self.route, None))
        if logs is not None:
            if alert.kind == "channel":
                await logs.set_filter(channel=alert.name)
            else:
                await logs.set_filter(search=alert.name)
        return self.show(route)

    def show_badges(self, counts: dict[str, int]) -> None:
        """A failure count on each destination that has failures (none: no badge), and on
        "More" the count of what it holds; a screen reader hears "1 failed Channels"."""
        held = sum(counts.get(row, 0) for row in self.more.icons)
        for icons, count in [*((icons, counts.get(route, 0))
                               for route, icons in self._icons.items()),
                             (self._more_icons, held)]:
            for icon in icons:
                spoken = t("{count} failed", count=count)
                icon.badge = ft.Badge(label=ft.Text(str(count), semantics_label=spoken),
                                      bgcolor=ft.Colors.ERROR) if count else None

    def badge(self, route: str) -> str | None:
        """The count a destination's badge shows (None: no badge), the same on rail and bar."""
        badge = self._icons[route][0].badge
        if not isinstance(badge, ft.Badge):
            return None
        return badge.label.value if isinstance(badge.label, ft.Text) else str(badge.label)

    @staticmethod
    def is_wide(width: float | None) -> bool:
        return width is None or width >= WIDE_MIN_WIDTH

    def layout(self, width: float | None) -> tuple[ft.Control, ft.NavigationBar | None]:
        """The page body and the bottom bar (None when the rail is used) for a page width."""
        wide = self.is_wide(width)
        if wide:
            main: ft.Control = ft.Row(
                expand=True,
                spacing=0,
                vertical_alignment=ft.CrossAxisAlignment.STRETCH,
                controls=[self.rail, ft.VerticalDivider(width=1), self.content],
            )
        else:
            main = self.content
        body = ft.Column(expand=True, spacing=0, controls=[self.banners, main])
        return body, (None if wide else self.bar)
