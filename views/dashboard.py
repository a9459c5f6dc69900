"""Dashboard: channel tiles, today's counters, messages per minute and the live traffic feed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import datetime

import flet as ft
import flet_charts as fch

from pyclaw_app.control import ChannelStatus, ChannelType, ControlPlane
from pyclaw_app.model import Event
from views import style
from views.channel_icons import channel_badge
from views.i18n import t
from views.state import (
    ChannelBoard,
    Clock,
    CountersState,
    FeedRow,
    MessageRate,
    TrafficWindow,
    feed_row_from_event,
    feed_row_from_traffic,
)
from views.traffic import feed_header, feed_row_control, is_narrow

__all__ = ["ChannelTile", "CounterCard", "DashboardView", "RateChart", "feed_row_control"]

_log = logging.getLogger(__name__)

FEED_WINDOW = 300
FEED_SNAPSHOT = 200
FEED_HEIGHT = 480
CHART_MINUTES = 60
# journal rows read at load for the chart: more than this in the last hour leaves its start short
CHART_HISTORY = 1000
CHART_HEIGHT = 180
SERIES_COLORS = (
    ft.Colors.BLUE_600, ft.Colors.GREEN_600, ft.Colors.ORANGE_700, ft.Colors.PURPLE_400,
    ft.Colors.TEAL_600, ft.Colors.PINK_400, ft.Colors.INDIGO_400, ft.Colors.BROWN_400,
    ft.Colors.CYAN_700, ft.Colors.LIME_800, ft.Colors.RED_400, ft.Colors.AMBER_800,
)
# new lines shown per batch (~10 a second): more is unreadable and only costs the page; a
# line is seven controls since the feed has columns (one Text before), hence 20, not 50
FEED_BATCH_ROWS = 20


class ChannelTile:
    """One channel's card; its controls are kept so a state change edits them in place.

    ``kind`` is the channel's type, for the platform's logo the Channels view shows too
    (None: a type this gateway does not know, drawn with its Material icon).
    """

    def __init__(self, status: ChannelStatus, kind: ChannelType | None = None) -> None:
        # the logo keeps its platform's colour: the state is the dot and the word
        self.icon = channel_badge(kind, 40, fallback=status.icon)
        self.title = ft.Text(weight=ft.FontWeight.W_600, max_lines=1,
                             overflow=ft.TextOverflow.ELLIPSIS)
        self.dot = ft.Container(width=10, height=10, border_radius=5)
        self.state = ft.Text(weight=ft.FontWeight.W_500, size=13)
        self.reason = ft.Text(size=12, max_lines=2, overflow=ft.TextOverflow.ELLIPSIS,
                              color=ft.Colors.ON_SURFACE_VARIANT)
        self.last = ft.Text(size=12, color=ft.Colors.ON_SURFACE_VARIANT)
        self.status = status
        self.root = ft.Container(
            width=270,
            height=126,
            padding=14,
            border_radius=12,
            bgcolor=ft.Colors.SURFACE_CONTAINER_LOW,
            border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
            content=ft.Row(
                vertical_alignment=ft.CrossAxisAlignment.START,
                spacing=12,
                controls=[
                    self.icon,
                    ft.Column(
                        expand=True,
                        spacing=3,
                        controls=[
                            self.title,
                            ft.Row([self.dot, self.state], spacing=6),
                            self.reason,
                            self.last,
                        ],
                    ),
                ],
            ),
        )
        self.show(status, None)

    def show(self, status: ChannelStatus, now: float | None) -> None:
        self.status = status
        color = style.state_color(status.state)
        self.title.value = status.title or status.name
        if status.title and status.title != status.name:
            self.title.value = f"{status.name} · {status.title}"
        self.dot.bgcolor = color
        self.state.value = style.state_label(status.state)
        self.state.color = color
        detail = status.config_error or status.last_error or status.reason
        self.reason.value = detail
        self.reason.visible = bool(detail)
        self.reason.color = (ft.Colors.ERROR if status.config_error or status.last_error
                             else ft.Colors.ON_SURFACE_VARIANT)
        self.tick(now)

    def tick(self, now: float | None) -> None:
        self.last.value = style.ago(self.status.last_message_ts, now)


class CounterCard:
    def __init__(self, label: str, icon: ft.IconData, color: str) -> None:
        self.label = label
        self.value = ft.Text("0", size=28, weight=ft.FontWeight.BOLD, color=color)
        self.root = ft.Container(
            padding=ft.Padding.symmetric(horizontal=18, vertical=12),
            border_radius=12,
            bgcolor=ft.Colors.SURFACE_CONTAINER_LOW,
            border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
            content=ft.Row(
                spacing=14,
                tight=True,
                controls=[
                    ft.Icon(icon, color=color, size=26),
                    ft.Column([ft.Text(label, size=12, color=ft.Colors.ON_SURFACE_VARIANT),
                               self.value], spacing=0),
                ],
            ),
        )

    def set(self, value: int) -> None:
        self.value.value = str(value)


class RateChart:
    """Messages per minute per channel, one line each, over the last ``minutes`` minutes.

    Lines and their points are kept and edited in place, so a new message
    changes one point's value on the wire, not the whole chart; a channel keeps
    its colour for the life of the view.
    """

    def __init__(self, minutes: int = CHART_MINUTES) -> None:
        self.minutes = minutes
        self.lines: dict[str, fch.LineChartData] = {}
        self.legend_counts: dict[str, ft.Text] = {}
        self._colors: dict[str, str] = {}
        # x is minutes before now; the axis starts one minute early so that the
        # labels, placed every quarter of the window from its start, land on round values
        step = max(1, minutes // 4)
        self.chart = fch.LineChart(
            min_x=-minutes, max_x=0, min_y=0, max_y=_nice_max(0), expand=True,
            animation=ft.Animation(duration=0),  # re-drawn up to 10 times a second
            horizontal_grid_lines=fch.ChartGridLines(color=ft.Colors.OUTLINE_VARIANT, width=1,
                                                     dash_pattern=[3, 3]),
            border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
            left_axis=fch.ChartAxis(label_size=36, label_spacing=1),
            bottom_axis=fch.ChartAxis(label_size=24, label_spacing=step, labels=[
                fch.ChartAxisLabel(value=-ago, label=ft.Text(
                    t("{minutes} min ago", minutes=ago) if ago else t("now"), size=11,
                    color=ft.Colors.ON_SURFACE_VARIANT))
                for ago in range(0, minutes + 1, step)]),
            tooltip=fch.LineChartTooltip(fit_inside_horizontally=True,
                                         fit_inside_vertically=True),
        )
        self.legend = ft.Row(wrap=True, spacing=16, run_spacing=4)
        self.empty = ft.Text(t("No messages in the last hour."), size=12,
                             color=ft.Colors.ON_SURFACE_VARIANT)
        self.partial = ft.Text(size=12, color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        self.root = ft.Container(
            padding=ft.Padding.only(left=6, right=16, top=12, bottom=8),
            border_radius=12,
            border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
            content=ft.Column(spacing=8, controls=[
                ft.Container(self.chart, height=CHART_HEIGHT),
                ft.Container(ft.Column([self.legend, self.empty, self.partial], spacing=4),
                             padding=ft.Padding.only(left=12)),
            ]),
        )

    def show(self, series: dict[str, list[int]], partial_before: float | None = None) -> None:
        """Make the lines match ``series`` (channel -> counts per minute, oldest first)."""
        for channel in [c for c in self.lines if c not in series]:
            del self.lines[channel], self.legend_counts[channel]
        for channel, counts in series.items():
            line = self.lines.get(channel)
            if line is None:
                self._add_line(channel, counts)
                continue
            for point, count in zip(line.points, counts, strict=True):
                if point.y != count:
                    point.y = count
                    point.tooltip = f"{channel}: {count}"
            self.legend_counts[channel].value = _per_hour(counts)
        if list(self.lines) != [line.data for line in self.chart.data_series]:
            self.chart.data_series = list(self.lines.values())
            self.legend.controls = [self._legend_entry(c) for c in self.lines]
        peak = max((max(counts) for counts in series.values()), default=0)
        self.chart.max_y = _nice_max(peak)
        self.chart.left_axis.label_spacing = self.chart.max_y / 5
        self.chart.horizontal_grid_lines.interval = self.chart.max_y / 5
        self.empty.visible = not series
        self.partial.visible = partial_before is not None
        if partial_before is not None:
            since = datetime.fromtimestamp(partial_before).strftime("%H:%M")
            self.partial.value = t("Before {since} the counts are low: only the newest "
                                   "{count} messages were read at start.",
                                   since=since, count=CHART_HISTORY)

    def _add_line(self, channel: str, counts: list[int]) -> None:
        color = self._colors.setdefault(channel,
                                        SERIES_COLORS[len(self._colors) % len(SERIES_COLORS)])
        first = -(len(counts) - 1)
        self.lines[channel] = fch.LineChartData(
            data=channel, color=color, stroke_width=2, curved=True,
            prevent_curve_over_shooting=True, point=False,
            points=[fch.LineChartDataPoint(first + i, n, tooltip=f"{channel}: {n}")
                    for i, n in enumerate(counts)])
        self.legend_counts[channel] = ft.Text(_per_hour(counts), size=12,
                                              color=ft.Colors.ON_SURFACE_VARIANT)

    def _legend_entry(self, channel: str) -> ft.Control:
        dot = ft.Container(width=10, height=10, border_radius=5, bgcolor=self._colors[channel])
        return ft.Row([dot, ft.Text(channel, size=12, weight=ft.FontWeight.W_500),
                       self.legend_counts[channel]], spacing=6, tight=True)


def _per_hour(counts: list[int]) -> str:
    return t("{count} in the last hour", count=sum(counts))


def _nice_max(peak: int) -> int:
    """The y-axis top: 5 at least, else the next 1-2-5 step that leaves a little headroom."""
    scale = 1
    while True:
        for step in (5, 10, 20):
            if step * scale >= peak * 1.1:
                return step * scale
        scale *= 10


class DashboardView:
    """Reads a snapshot on load, then follows the plane's events in batches."""

    def __init__(self, plane: ControlPlane, *, window: int = FEED_WINDOW,
                 clock: Clock = time.time) -> None:
        self.plane = plane
        self.board = ChannelBoard()
        self.counts = CountersState()
        self.window = TrafficWindow(window)
        self.rate = MessageRate(CHART_MINUTES, clock=clock)
        self.rate_chart = RateChart(CHART_MINUTES)
        self._chart_minute: int | None = None
        self.tiles: dict[str, ChannelTile] = {}
        self.kinds: dict[str, ChannelType] = {}
        """Channel types by name, for the tiles' logos (read at load)."""
        self.counters = {
            "inbound": CounterCard(t("Received today"), ft.Icons.CALL_RECEIVED, ft.Colors.BLUE_600),
            "outbound": CounterCard(t("Replied today"), ft.Icons.CALL_MADE, ft.Colors.GREEN_600),
            "failed": CounterCard(t("Failed today"), ft.Icons.ERROR_OUTLINE, ft.Colors.RED_600),
        }
        self.tile_row = ft.Row(wrap=True, spacing=12, run_spacing=12,
                               vertical_alignment=ft.CrossAxisAlignment.START)
        self.no_channels = ft.Text(t("No channels configured yet."),
                                   color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        self.feed = ft.ListView(expand=True, spacing=10,
                                padding=ft.Padding.symmetric(horizontal=8, vertical=5))
        self.feed_empty = ft.Text(t("No traffic yet: messages appear here as they arrive."),
                                  color=ft.Colors.ON_SURFACE_VARIANT)
        self.feed_skipped = ft.Text(size=12, color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        self.narrow = False
        """A phone's width: two lines per feed row, no column header (views/traffic.py)."""
        self.feed_header = ft.Column(spacing=4, controls=[
            ft.Container(padding=ft.Padding.symmetric(horizontal=8, vertical=4),
                         content=feed_header()),
            ft.Divider(height=1)])
        # The page scrolls (tiles wrap to many rows on a phone); the feed scrolls inside
        # a fixed-height box, because a scrolling column cannot give it "the rest".
        self._root = ft.Column(
            expand=True,
            spacing=14,
            scroll=ft.ScrollMode.AUTO,
            controls=[
                ft.Text(t("Dashboard"), theme_style=ft.TextThemeStyle.HEADLINE_SMALL),
                ft.Row(wrap=True, spacing=12, run_spacing=12,
                       controls=[c.root for c in self.counters.values()]),
                _section(t("Channels")),
                self.tile_row,
                self.no_channels,
                _section(t("Messages per minute")),
                self.rate_chart.root,
                _section(t("Live traffic")),
                ft.Container(
                    height=FEED_HEIGHT,
                    border_radius=12,
                    padding=6,
                    border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
                    content=ft.Column([self.feed_header, self.feed_empty,
                                       self.feed_skipped, self.feed],
                                      spacing=4, expand=True),
                ),
            ],
        )

    @property
    def root(self) -> ft.Control:
        return self._root

    async def load(self) -> None:
        channels, counters, traffic = await asyncio.gather(
            self.plane.channels(), self.plane.counters_today(),
            self.plane.recent_traffic(CHART_HISTORY))
        self.kinds = {kind.type: kind for kind in self.plane.channel_types()}
        self.board.reset(channels)
        self.counts.reset(counters)
        self.window.clear()
        self.feed.controls.clear()
        self.tiles.clear()
        self.tile_row.controls.clear()
        for status in channels:
            self._add_tile(status)
        self._show_counters()
        self.rate.reset(traffic, complete=len(traffic) < CHART_HISTORY)
        self._show_rate()
        newest = traffic[:FEED_SNAPSHOT]  # the plane lists newest first
        rows = sorted((feed_row_from_traffic(r) for r in newest), key=lambda r: r.ts)
        self._push_rows(rows)

    def apply(self, events: Sequence[Event], now: float) -> None:
        for name in self.board.apply(events):
            status = self.board.channels[name]
            tile = self.tiles.get(name)
            if tile is None:
                self._add_tile(status)
            else:
                tile.show(status, now)
        for tile in self.tiles.values():
            tile.tick(now)
        fresh: list[Event] = []
        rows: list[FeedRow] = []
        keys: set[str] = set()
        for event in events:
            row = feed_row_from_event(event)
            if row is not None and row.key not in self.window and row.key not in keys:
                keys.add(row.key)
                fresh.append(event)
                rows.append(row)
        if self.counts.apply(fresh):
            self._show_counters()
        if self.rate.apply(fresh) or self.rate.current_minute() != self._chart_minute:
            self._show_rate()  # once per batch, and when the minute turns
        skipped = max(0, len(rows) - FEED_BATCH_ROWS)
        self.feed_skipped.visible = skipped > 0
        self.feed_skipped.value = t("{count} more lines just now, too fast to list "
                                    "(all counted above)", count=skipped)
        self._push_rows(rows[skipped:])

    def fit_width(self, width: float | None) -> None:
        """Two-line feed rows below a phone's width, columns above; rebuilt on a change."""
        narrow = is_narrow(width)
        if narrow == self.narrow:
            return
        self.narrow = narrow
        self.feed_header.visible = not narrow
        self.feed.controls = [feed_row_control(r, narrow) for r in reversed(self.window.rows)]

    def _add_tile(self, status: ChannelStatus) -> None:
        tile = ChannelTile(status, self.kinds.get(status.type))
        self.tiles[status.name] = tile
        self.tile_row.controls.append(tile.root)
        self.no_channels.visible = not self.tiles

    def _show_counters(self) -> None:
        c = self.counts.counters
        self.counters["inbound"].set(c.inbound)
        self.counters["outbound"].set(c.outbound)
        self.counters["failed"].set(c.failed)

    def _show_rate(self) -> None:
        self._chart_minute = self.rate.current_minute()
        self.rate_chart.show(self.rate.series(), self.rate.partial_before)

    def _push_rows(self, rows: list[FeedRow]) -> None:
        """Mirror the window in the ListView, newest on top, without rebuilding kept rows."""
        added, evicted = self.window.push(rows)
        if evicted:
            del self.feed.controls[len(self.feed.controls) - evicted:]
        if added:
            self.feed.controls[0:0] = [feed_row_control(r, self.narrow)
                                       for r in reversed(added)]
        self.feed_empty.visible = not self.feed.controls
        self.no_channels.visible = not self.tiles


def _section(title: str) -> ft.Control:
    return ft.Text(title, theme_style=ft.TextThemeStyle.TITLE_MEDIUM, weight=ft.FontWeight.W_600)
