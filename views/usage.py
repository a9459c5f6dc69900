"""Usage: LLM calls, tokens, cost and latency per day, provider, model and channel.

The plane returns one UsageRow per day x provider x model x channel; this
module sums them for the totals, the charts (tokens and cost per day, latency
per model) and the table. The sums are plain functions of the rows so they can
be tested without Flet. While shown, the view reloads itself as LLM calls
finish, in the background and at most once every ``RELOAD_INTERVAL`` seconds.
A Budgets card shows each spending cap (``budgets:`` in the config) against
what its day or month has spent, and the caps' list to add to, edit and remove
from (``views.budgets_view``), saved through the plane.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import flet as ft
import flet_charts as fch

from pyclaw_app.control import BudgetRow, ControlPlane, UsageRow
from pyclaw_app.model import Event, EventKind
from views.budgets_view import BudgetsSection
from views.dashboard import CounterCard
from views.i18n import t
from views.state import Clock

__all__ = [
    "RANGES",
    "BudgetCard",
    "UsageTotals",
    "UsageView",
    "budget_text",
    "daily",
    "day_span",
    "latency_by_model",
    "nice_scale",
    "per_day",
    "range_since",
    "totals",
]

_log = logging.getLogger(__name__)

RANGES: dict[str, tuple[str, int]] = {"today": ("Today", 1), "7d": ("7 days", 7),
                                      "30d": ("30 days", 30)}
"""Range key -> (label, number of local days including today)."""
ALL_CHANNELS = "*"
RELOAD_INTERVAL = 5.0
TABLE_LIMIT = 200
CHART_HEIGHT = 220
_RELOAD_ON = frozenset({EventKind.LLM_CALL, EventKind.REPLY_SENT, EventKind.MESSAGE_FAILED})
_PALETTE = (ft.Colors.INDIGO_400, ft.Colors.TEAL_400, ft.Colors.AMBER_600, ft.Colors.PINK_400,
            ft.Colors.LIGHT_BLUE_400, ft.Colors.DEEP_ORANGE_400, ft.Colors.LIME_600,
            ft.Colors.PURPLE_300)


# -- sums (no Flet) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UsageTotals:
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


def range_since(key: str, now: float) -> float:
    """Local midnight at the start of the range (today counts as one day)."""
    days = RANGES[key][1]
    start = datetime.fromtimestamp(now).date() - timedelta(days=days - 1)
    return datetime.combine(start, datetime.min.time()).timestamp()


def day_span(key: str, now: float) -> list[str]:
    """Every local day of the range, oldest first, as the plane spells days (YYYY-MM-DD).

    Days without calls still get a slot, so a quiet day shows as a gap, not as nothing.
    """
    today = datetime.fromtimestamp(now).date()
    days = RANGES[key][1]
    return [(today - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def totals(rows: Iterable[UsageRow]) -> UsageTotals:
    calls = errors = tin = tout = 0
    cost = 0.0
    for r in rows:
        calls += r.calls
        errors += r.errors
        tin += r.input_tokens
        tout += r.output_tokens
        cost += r.cost
    return UsageTotals(calls, errors, tin, tout, cost)


def daily(rows: Iterable[UsageRow]) -> dict[str, UsageTotals]:
    """day -> totals of that day."""
    groups: dict[str, list[UsageRow]] = defaultdict(list)
    for r in rows:
        groups[r.day].append(r)
    return {day: totals(group) for day, group in groups.items()}


def per_day(rows: Iterable[UsageRow], by: str) -> dict[str, dict[str, UsageTotals]]:
    """day -> (value of the ``by`` field, e.g. provider) -> totals."""
    cells: dict[str, dict[str, list[UsageRow]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        cells[r.day][str(getattr(r, by))].append(r)
    return {day: {key: totals(group) for key, group in groups.items()}
            for day, groups in cells.items()}


def latency_by_model(rows: Iterable[UsageRow]) -> dict[str, tuple[float, float]]:
    """provider/model -> (p50, p95) in ms, the call-weighted mean over its day x channel cells.

    The plane only has percentiles per cell; a weighted mean of them is what can
    honestly be drawn without the raw latencies (the table shows each cell exactly).
    """
    acc: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for r in rows:
        ok = r.calls - r.errors
        if ok <= 0:
            continue
        cell = acc[f"{r.provider}/{r.model}"]
        cell[0] += ok
        cell[1] += r.latency_p50_ms * ok
        cell[2] += r.latency_p95_ms * ok
    return {key: (p50 / n, p95 / n) for key, (n, p50, p95) in sorted(acc.items())}


def tokens(n: int) -> str:
    return f"{n:,}"


def money(cost: float) -> str:
    if cost == 0:
        return "$0"
    return f"${cost:,.2f}" if cost >= 1 else f"${cost:.4f}"


def ms(value: float) -> str:
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:.1f} s"


# -- budgets ----------------------------------------------------------------------------------


def budget_text(b: BudgetRow) -> tuple[str, str, str]:
    """(whose cap, spent of limit, when it resets) as the card words them."""
    who = {"overall": t("All channels"), "channel": t("Channel {name}", name=b.channel)}.get(
        b.scope, t("{sender} on {channel}", sender=b.sender_name or b.sender, channel=b.channel))
    fmt: Callable[[float], str] = money if b.unit == "cost" else (lambda v: tokens(int(v)))
    amount = (t("{spent} of {limit} tokens", spent=fmt(b.spent), limit=fmt(b.limit))
              if b.unit == "tokens" else t("{spent} of {limit}", spent=fmt(b.spent),
                                           limit=fmt(b.limit)))
    resets = datetime.fromtimestamp(b.resets_at)
    when = (t("resets at {time}", time=f"{resets:%H:%M}") if b.period == "daily"
            else t("resets on {day} at {time}", day=f"{resets.day} {resets:%b}",
                   time=f"{resets:%H:%M}"))
    period = {"daily": t("daily"), "monthly": t("monthly")}.get(b.period, b.period)
    return f"{who} · {period}", amount, when


class BudgetCard:
    """Each cap with a bar of how much of it is spent, and under them the caps to add,
    edit and remove (``section``); hidden when there is neither (no cap, and a gateway
    too old to serve the form)."""

    def __init__(self, section: BudgetsSection | None = None) -> None:
        self.rows = ft.Column(spacing=10)
        self.section = section
        controls: list[ft.Control] = [ft.Text(t("Budgets"), weight=ft.FontWeight.W_600),
                                      self.rows]
        if section is not None:
            controls += [ft.Divider(height=1), section.root]
        self.root = ft.Container(
            padding=14, border_radius=12, bgcolor=ft.Colors.SURFACE_CONTAINER_LOW,
            border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT), visible=False,
            content=ft.Column(spacing=10, controls=controls))

    def show(self, budgets: Sequence[BudgetRow]) -> None:
        self.root.visible = bool(budgets) or (self.section is not None
                                              and self.section.available)
        self.rows.controls = [self._row(b) for b in budgets]
        self.rows.visible = bool(budgets)

    @staticmethod
    def _row(b: BudgetRow) -> ft.Control:
        label, amount, when = budget_text(b)
        used = 1.0 if b.limit <= 0 else min(1.0, b.spent / b.limit)
        color = (ft.Colors.ERROR if used >= 1 else ft.Colors.AMBER_700 if used >= 0.8
                 else ft.Colors.PRIMARY)
        return ft.Column(spacing=4, controls=[
            ft.Row(alignment=ft.MainAxisAlignment.SPACE_BETWEEN, controls=[
                ft.Text(label), ft.Text(amount, color=color)]),
            ft.ProgressBar(value=used, color=color, bar_height=6, border_radius=3,
                           semantics_label=f"{label}: {amount}"),
            ft.Text(when, size=12, color=ft.Colors.ON_SURFACE_VARIANT)])


# -- charts ---------------------------------------------------------------------------------


def _short_day(day: str) -> str:
    try:
        return date.fromisoformat(day).strftime("%d %b")
    except ValueError:
        return day


def _bottom_axis(labels: Sequence[str], every: int = 1) -> fch.ChartAxis:
    return fch.ChartAxis(
        label_size=28,
        labels=[fch.ChartAxisLabel(value=i, label=ft.Text(text, size=11))
                for i, text in enumerate(labels) if i % every == 0 or i == len(labels) - 1],
    )


def nice_scale(top: float, ticks: int = 4) -> tuple[float, float]:
    """(axis maximum, label step) with round steps (1, 2, 2.5 or 5 x 10^n) above ``top``."""
    if top <= 0:
        return 1.0, 0.25
    raw = top / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return step * math.ceil(top / step - 1e-9), step


def _left_axis(title: str, step: float) -> fch.ChartAxis:
    return fch.ChartAxis(label_size=52, label_spacing=step, title=ft.Text(title, size=11),
                         title_size=20)


def _grid() -> fch.ChartGridLines:
    return fch.ChartGridLines(color=ft.Colors.with_opacity(0.15, ft.Colors.ON_SURFACE), width=1)


def _stacked_day_chart(days: Sequence[str], values: dict[str, dict[str, float]],
                       series: Sequence[str], colors: dict[str, str], axis_title: str,
                       fmt: Callable[[float], str]) -> fch.BarChart:
    """One stacked bar per day; ``values`` day -> series -> amount."""
    groups = []
    top = 0.0
    for i, day in enumerate(days):
        stack = []
        y = 0.0
        lines = []
        for name in series:
            amount = values.get(day, {}).get(name, 0.0)
            if amount <= 0:
                continue
            stack.append(fch.BarChartRodStackItem(from_y=y, to_y=y + amount,
                                                  color=colors[name]))
            lines.append(f"{name}: {fmt(amount)}")
            y += amount
        top = max(top, y)
        groups.append(fch.BarChartGroup(x=i, rods=[fch.BarChartRod(
            from_y=0, to_y=y, width=14 if len(days) > 10 else 28, stack_items=stack,
            border_radius=3, color=ft.Colors.TRANSPARENT,
            tooltip=f"{_short_day(day)}\n" + ("\n".join(lines) or t("no calls")))]))
    max_y, step = nice_scale(top)
    return fch.BarChart(
        groups=groups,
        height=CHART_HEIGHT,
        max_y=max_y,
        left_axis=_left_axis(axis_title, step),
        bottom_axis=_bottom_axis([_short_day(d) for d in days], every=5 if len(days) > 10 else 1),
        horizontal_grid_lines=_grid(),
        tooltip=fch.BarChartTooltip(bgcolor=ft.Colors.INVERSE_SURFACE),
        interactive=True,
    )


def _latency_chart(latency: dict[str, tuple[float, float]]) -> fch.BarChart:
    names = list(latency)
    top = max((p95 for _, p95 in latency.values()), default=0.0)
    groups = [
        fch.BarChartGroup(x=i, spacing=4, rods=[
            fch.BarChartRod(from_y=0, to_y=p50, width=16, color=ft.Colors.INDIGO_400,
                            border_radius=3,
                            tooltip=t("{model}\np50 {latency}", model=name,
                                      latency=ms(p50))),
            fch.BarChartRod(from_y=0, to_y=p95, width=16, color=ft.Colors.DEEP_ORANGE_300,
                            border_radius=3,
                            tooltip=t("{model}\np95 {latency}", model=name,
                                      latency=ms(p95))),
        ])
        for i, (name, (p50, p95)) in enumerate(latency.items())
    ]
    max_y, step = nice_scale(top)
    return fch.BarChart(
        groups=groups,
        height=CHART_HEIGHT,
        max_y=max_y,
        left_axis=_left_axis("ms", step),
        bottom_axis=_bottom_axis([n.split("/", 1)[-1] for n in names]),
        horizontal_grid_lines=_grid(),
        tooltip=fch.BarChartTooltip(bgcolor=ft.Colors.INVERSE_SURFACE),
    )


def _legend(items: Iterable[tuple[str, str]]) -> ft.Row:
    return ft.Row(wrap=True, spacing=14, controls=[
        ft.Row(tight=True, spacing=6, controls=[
            ft.Container(width=10, height=10, border_radius=2, bgcolor=color),
            ft.Text(label, size=12, color=ft.Colors.ON_SURFACE_VARIANT)])
        for label, color in items])


def _chart_card(title: str, chart: ft.Control, legend: ft.Control | None = None
                ) -> ft.Container:
    return ft.Container(
        padding=ft.Padding.only(left=12, right=20, top=12, bottom=8),
        border_radius=12,
        bgcolor=ft.Colors.SURFACE_CONTAINER_LOW,
        border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
        col={"xs": 12, "lg": 4},
        content=ft.Column(spacing=8, horizontal_alignment=ft.CrossAxisAlignment.STRETCH, controls=[
            ft.Text(title, weight=ft.FontWeight.W_600),
            *([legend] if legend is not None else []),
            chart,
        ]),
    )


# -- the view ---------------------------------------------------------------------------------

def _table_columns() -> tuple[tuple[str, bool], ...]:
    """(header, numeric) per column, in the page's language."""
    return ((t("Day"), False), (t("Provider"), False), (t("Model"), False),
            (t("Channel"), False), (t("Calls"), True), (t("Errors"), True),
            (t("Tokens in"), True), (t("Tokens out"), True), (t("Cost"), True),
            ("p50", True), ("p95", True))


def _range_label(key: str) -> str:
    """A range's name on its segment, in the page's language."""
    return {"today": t("Today"), "7d": t("7 days"), "30d": t("30 days")}.get(key, key)


def _table_row(r: UsageRow) -> ft.DataRow:
    cells = (r.day, r.provider, r.model, r.channel, str(r.calls), str(r.errors),
             tokens(r.input_tokens), tokens(r.output_tokens), money(r.cost),
             ms(r.latency_p50_ms) if r.calls > r.errors else "—",
             ms(r.latency_p95_ms) if r.calls > r.errors else "—")
    return ft.DataRow(cells=[
        ft.DataCell(ft.Text(v, color=ft.Colors.ERROR if i == 5 and r.errors else None))
        for i, v in enumerate(cells)])


class UsageView:
    """Range and channel filter on top, totals, three charts and the per-cell table."""

    def __init__(self, plane: ControlPlane, *, wall_clock: Clock = time.time) -> None:
        self.plane = plane
        self._wall_clock = wall_clock
        self.range_key = "7d"
        self.channel = ALL_CHANNELS
        self.rows: list[UsageRow] = []
        self.budgets: list[BudgetRow] = []
        self.budgets_section = BudgetsSection(plane, after_save=self.reload)
        self.budget_card = BudgetCard(self.budgets_section)
        self.now = 0.0
        self._stale = False
        self._last_reload = 0.0
        self._reload: asyncio.Task[tuple[list[UsageRow], list[BudgetRow]]] | None = None
        self.range_picker = ft.SegmentedButton(
            selected=[self.range_key],
            allow_multiple_selection=False,
            allow_empty_selection=False,
            segments=[ft.Segment(value=key, label=ft.Text(_range_label(key))) for key in RANGES],
            on_change=self._range_changed,
        )
        self.channel_picker = ft.Dropdown(
            label=t("Channel"), value=ALL_CHANNELS, width=220,
            options=[ft.DropdownOption(key=ALL_CHANNELS, text=t("All channels"))],
            on_select=self._channel_changed,
        )
        self.refresh_button = ft.IconButton(ft.Icons.REFRESH, tooltip=t("Reload usage"),
                                            on_click=self._refresh_clicked)
        self.progress = ft.ProgressRing(width=18, height=18, stroke_width=2.5, visible=False,
                                        semantics_label=t("Loading usage"))
        self.error = ft.Text(color=ft.Colors.ERROR, visible=False, selectable=True)
        self.cards = {
            "calls": CounterCard(t("LLM calls"), ft.Icons.BOLT, ft.Colors.INDIGO_500),
            "input_tokens": CounterCard(t("Tokens in"), ft.Icons.INPUT, ft.Colors.BLUE_600),
            "output_tokens": CounterCard(t("Tokens out"), ft.Icons.OUTPUT, ft.Colors.TEAL_600),
            "cost": CounterCard(t("Cost"), ft.Icons.PAYMENTS_OUTLINED, ft.Colors.GREEN_700),
            "errors": CounterCard(t("Errors"), ft.Icons.ERROR_OUTLINE, ft.Colors.RED_600),
        }
        self.charts = ft.ResponsiveRow(spacing=12, run_spacing=12)
        self.table = ft.DataTable(
            columns=[ft.DataColumn(ft.Text(h, weight=ft.FontWeight.BOLD), numeric=num)
                     for h, num in _table_columns()],
            column_spacing=22, heading_row_height=40, data_row_min_height=36,
            data_row_max_height=40,
        )
        self.table_note = ft.Text(size=12, color=ft.Colors.ON_SURFACE_VARIANT, visible=False)
        self.empty = ft.Container(
            padding=24, border_radius=12, border=ft.Border.all(1, ft.Colors.OUTLINE_VARIANT),
            content=ft.Text(t("No LLM calls in this range yet. Usage appears here once the "
                              "assistant has answered a message."),
                            color=ft.Colors.ON_SURFACE_VARIANT))
        self.details = ft.Column(spacing=14, controls=[
            self.charts,
            ft.Text(t("By day, provider, model and channel"),
                    theme_style=ft.TextThemeStyle.TITLE_MEDIUM, weight=ft.FontWeight.W_600),
            ft.Row([self.table], scroll=ft.ScrollMode.AUTO),
            self.table_note,
        ])
        self._root = ft.Column(
            expand=True,
            spacing=14,
            scroll=ft.ScrollMode.AUTO,
            controls=[
                ft.Container(padding=ft.Padding.only(top=6), content=ft.Row(  # room for labels
                       wrap=True, spacing=16, run_spacing=8,
                       alignment=ft.MainAxisAlignment.SPACE_BETWEEN,
                       vertical_alignment=ft.CrossAxisAlignment.CENTER, controls=[
                           ft.Text(t("Usage"), theme_style=ft.TextThemeStyle.HEADLINE_SMALL),
                           ft.Row(wrap=True, spacing=12, run_spacing=8, tight=True,
                                  vertical_alignment=ft.CrossAxisAlignment.CENTER,
                                  controls=[self.range_picker, self.channel_picker,
                                            self.refresh_button, self.progress])])),
                self.error,
                ft.Row(wrap=True, spacing=12, run_spacing=12,
                       controls=[c.root for c in self.cards.values()]),
                self.budget_card.root,
                self.empty,
                self.details,
            ],
        )
        self.render()

    @property
    def root(self) -> ft.Control:
        return self._root

    # -- data --------------------------------------------------------------------------------

    async def load(self) -> None:
        """Channel names for the filter, then the rows of the current range."""
        try:
            channels = await self.plane.channels()
        except Exception as exc:  # noqa: BLE001 - the filter keeps "All channels"
            _log.warning("could not list channels for the usage filter: %s", exc)
            channels = []
        self.set_channel_names([c.name for c in channels])
        await self.budgets_section.load()
        await self.reload()

    def set_channel_names(self, names: Iterable[str]) -> None:
        keep = {o.key for o in self.channel_picker.options}
        extra = [n for n in sorted(set(names)) if n not in keep]
        self.channel_picker.options += [ft.DropdownOption(key=n, text=n) for n in extra]

    async def fetch(self) -> list[UsageRow]:
        return await self.plane.usage(
            since=range_since(self.range_key, self.now),
            channel=None if self.channel == ALL_CHANNELS else self.channel)

    async def fetch_budgets(self) -> list[BudgetRow]:
        """The caps and their spend; none when the plane cannot say (a gateway from before
        budgets answers "unknown method"), which hides the card and nothing else."""
        try:
            return await self.plane.budgets()
        except Exception as exc:  # noqa: BLE001 - the rest of the view does not need it
            _log.debug("no budgets from the plane: %s", exc)
            return []

    async def _fetch_both(self) -> tuple[list[UsageRow], list[BudgetRow]]:
        return await self.fetch(), await self.fetch_budgets()

    async def reload(self) -> None:
        """Fetch and show the rows for the current range and channel."""
        self.now = self._wall_clock()
        self._last_reload = self.now
        self._stale = False
        try:
            rows = await self.fetch()
        except Exception as exc:  # noqa: BLE001 - said on the view; the old figures stay
            _log.warning("could not load usage: %s", exc)
            self.error.value = t("Could not load usage: {error}", error=exc)
            self.error.visible = True
            return
        self.error.visible = False
        self.budgets = await self.fetch_budgets()
        self.show(rows)

    def show(self, rows: Sequence[UsageRow]) -> None:
        self.rows = list(rows)
        self.set_channel_names(r.channel for r in self.rows)
        self.render()

    def apply(self, events: Sequence[Event], now: float) -> None:
        """New LLM calls make the figures stale; a background reload picks them up.

        Only while the view is shown: the shell keeps hidden views mounted, and a
        breakdown query every few seconds nobody looks at is load for nothing. A
        view shown again reloads on its next tick if anything changed meanwhile.
        """
        if any(e.kind in _RELOAD_ON for e in events):
            self._stale = True
        task = self._reload
        if task is not None and task.done():
            self._reload = None
            try:
                rows, self.budgets = task.result()
            except asyncio.CancelledError:
                return
            except Exception as exc:  # noqa: BLE001 - shown, tried again on the next call
                _log.warning("could not reload usage: %s", exc)
                self.error.value = t("Could not load usage: {error}", error=exc)
                self.error.visible = True
                return
            self.error.visible = False
            self.show(rows)
        elif (task is None and self._stale and self._root.visible is not False
              and now - self._last_reload >= RELOAD_INTERVAL):
            self.now = self._last_reload = now
            self._stale = False
            self._reload = asyncio.get_running_loop().create_task(self._fetch_both(),
                                                                   name="ui-usage-reload")

    # -- rendering ---------------------------------------------------------------------------

    def render(self) -> None:
        rows = self.rows
        total = totals(rows)
        self.cards["calls"].value.value = f"{total.calls:,}"
        self.cards["input_tokens"].value.value = tokens(total.input_tokens)
        self.cards["output_tokens"].value.value = tokens(total.output_tokens)
        self.cards["cost"].value.value = money(total.cost)
        self.cards["errors"].value.value = f"{total.errors:,}"
        self.budget_card.show(self.budgets)
        self.empty.visible = not rows
        self.details.visible = bool(rows)
        if not rows:
            self.charts.controls = []
            self.table.rows = []
            return
        days = day_span(self.range_key, self.now or self._wall_clock())
        in_range = set(days)
        days += sorted({r.day for r in rows} - in_range)  # clock skew: never hide a row
        self.charts.controls = [self._tokens_card(days), self._cost_card(days),
                                self._latency_card()]
        shown = sorted(rows, key=lambda r: (r.day, r.cost, r.calls), reverse=True)
        self.table.rows = [_table_row(r) for r in shown[:TABLE_LIMIT]]
        self.table_note.value = t("Showing the {limit} most expensive of {count} rows; pick a "
                                  "channel or a shorter range to see the rest.",
                                  limit=TABLE_LIMIT, count=len(rows))
        self.table_note.visible = len(rows) > TABLE_LIMIT

    def _tokens_card(self, days: list[str]) -> ft.Control:
        given, got = t("input"), t("output")  # the series' names, in the legend and tooltips
        values = {day: {given: float(total.input_tokens), got: float(total.output_tokens)}
                  for day, total in daily(self.rows).items()}
        colors = {given: ft.Colors.BLUE_400, got: ft.Colors.TEAL_400}
        chart = _stacked_day_chart(days, values, (given, got), colors, t("tokens"),
                                   lambda v: tokens(int(v)))
        return _chart_card(t("Tokens per day"), chart,
                           _legend([(given, colors[given]), (got, colors[got])]))

    def _cost_card(self, days: list[str]) -> ft.Control:
        by_provider = per_day(self.rows, "provider")
        providers = sorted({r.provider for r in self.rows})
        colors = {p: _PALETTE[i % len(_PALETTE)] for i, p in enumerate(providers)}
        values = {day: {p: t.cost for p, t in cell.items()} for day, cell in by_provider.items()}
        chart = _stacked_day_chart(days, values, providers, colors, "$", money)
        return _chart_card(t("Cost per day by provider"), chart,
                           _legend((p, colors[p]) for p in providers))

    def _latency_card(self) -> ft.Control:
        chart = _latency_chart(latency_by_model(self.rows))
        return _chart_card(t("Latency by model"), chart,
                           _legend([("p50", ft.Colors.INDIGO_400),
                                    ("p95", ft.Colors.DEEP_ORANGE_300)]))

    # -- handlers ----------------------------------------------------------------------------

    async def _reload_with_progress(self, e: ft.Event[ft.Control]) -> None:
        self.progress.visible = True
        e.page.update()
        try:
            await self.reload()
        finally:
            self.progress.visible = False
        e.page.update()

    async def _range_changed(self, e: ft.Event[ft.SegmentedButton]) -> None:
        self.select_range(next(iter(self.range_picker.selected or ["7d"])))
        await self._reload_with_progress(e)

    async def _channel_changed(self, e: ft.Event[ft.Dropdown]) -> None:
        self.channel = str(self.channel_picker.value or ALL_CHANNELS)
        await self._reload_with_progress(e)

    async def _refresh_clicked(self, e: ft.Event[ft.Control]) -> None:
        await self._reload_with_progress(e)

    def select_range(self, key: str) -> None:
        if key not in RANGES:
            raise ValueError(f"unknown range {key!r}; one of {', '.join(RANGES)}")
        self.range_key = key
        self.range_picker.selected = [key]
