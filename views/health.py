"""Health at a glance: failed channels and providers in the app's frame, and a channel's day.

The frame shows what is broken wherever the user is: a count on the navigation entry
(Channels for channels, Settings for providers) and a banner naming each failure with its
cause and a button to its logs. Both follow the live events (``channel.state`` for
channels, ``llm.call`` for providers) and are plain data first (:class:`HealthState`), so
they are tested without Flet. A dismissed alert stays away until its cause changes; the
badge stays until the failure is over.

The per-channel history (:class:`ChannelHistories`, drawn by :func:`health_strip`) starts
from the plane's hourly buckets and moves forward with the same events, through the
bucketing functions the gateway uses.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import flet as ft

from pyclaw_app.control import (
    ChannelHealth,
    ChannelStatus,
    ControlPlane,
    HealthHour,
    ProviderHealth,
)
from pyclaw_app.control.health import (
    DAY_HOURS,
    HOUR,
    advance,
    build_health,
    record_log,
    record_state,
    shown_state,
)
from pyclaw_app.model import Event, EventKind
from views import style
from views.i18n import t
from views.state import ChannelBoard

__all__ = ["MAX_ALERTS", "Alert", "ChannelHistories", "HealthBanner", "HealthState",
           "health_strip", "health_summary", "hour_text"]

_log = logging.getLogger(__name__)

MAX_ALERTS = 3
"""Alerts shown in the banner; the rest are counted in one line (the badges count all)."""
FAILED_STATES = frozenset({"offline"})
CHANNELS_ROUTE = "/channels"
PROVIDERS_ROUTE = "/settings"


@dataclass(frozen=True, slots=True)
class Alert:
    key: str
    """``channel:<name>`` or ``provider:<name>``."""
    kind: str  # "channel" | "provider"
    name: str
    cause: str

    @property
    def title(self) -> str:
        if self.kind == "channel":
            return t("Channel {name} is offline", name=self.name)
        return t("Provider {name} is failing", name=self.name)


def _channel_cause(status: ChannelStatus) -> str:
    return status.config_error or status.reason or status.last_error or "offline"


class HealthState:
    """Which channels and providers are failing now, and which alerts the user dismissed."""

    def __init__(self) -> None:
        self.board = ChannelBoard()
        self.providers: dict[str, ProviderHealth] = {}
        self._dismissed: dict[str, str] = {}
        """Alert key -> the cause that was dismissed: a new cause shows again."""

    def reset(self, channels: Iterable[ChannelStatus], providers: Iterable[ProviderHealth]
              ) -> None:
        self.board.reset(channels)
        self.providers = {p.name: p for p in providers}

    def apply(self, events: Sequence[Event]) -> bool:
        """Channel states and provider calls; returns whether anything shown may change."""
        changed = bool(self.board.apply(events))
        for event in events:
            if event.kind is not EventKind.LLM_CALL:
                continue
            name = str(event.data.get("provider") or "")
            if not name:
                continue
            error = event.data.get("error")
            old = self.providers.get(name, ProviderHealth(name, "idle"))
            self.providers[name] = ProviderHealth(
                name, "failing" if error else "ok", str(error or ""), event.ts,
                old.calls + 1, old.errors + (1 if error else 0))
            changed = True
        return changed

    def failed_channels(self) -> list[ChannelStatus]:
        return [c for c in self.board.channels.values() if c.state in FAILED_STATES]

    def failing_providers(self) -> list[ProviderHealth]:
        return [p for p in self.providers.values() if p.state == "failing"]

    def badges(self) -> dict[str, int]:
        """The count to show on each navigation route (routes without failures: 0)."""
        return {CHANNELS_ROUTE: len(self.failed_channels()),
                PROVIDERS_ROUTE: len(self.failing_providers())}

    def _all_alerts(self) -> list[Alert]:
        return ([Alert(f"channel:{c.name}", "channel", c.name, _channel_cause(c))
                 for c in self.failed_channels()]
                + [Alert(f"provider:{p.name}", "provider", p.name, p.reason or "failing")
                   for p in self.failing_providers()])

    def alerts(self) -> list[Alert]:
        """Failures to show in the banner: all but those dismissed with the same cause."""
        return [a for a in self._all_alerts() if self._dismissed.get(a.key) != a.cause]

    def dismiss(self, key: str) -> None:
        for alert in self._all_alerts():
            if alert.key == key:
                self._dismissed[key] = alert.cause


OpenLogs = Callable[[Alert], Awaitable[str]]
"""Shows the logs for an alert; returns the route the page must go to."""


class HealthBanner:
    """The banner under the config banner, and the badge counts handed to the navigation.

    A Panel (load, apply, root) driven by the live session like the views.
    """

    def __init__(self, plane: ControlPlane, *, open_logs: OpenLogs,
                 on_badges: Callable[[dict[str, int]], None]) -> None:
        self.plane = plane
        self.state = HealthState()
        self._open_logs = open_logs
        self._on_badges = on_badges
        self.list = ft.Column(spacing=6)
        self.more = ft.Text(size=12, color=ft.Colors.ON_ERROR_CONTAINER, visible=False)
        self._root = ft.Container(
            visible=False,
            bgcolor=ft.Colors.ERROR_CONTAINER,
            padding=ft.Padding.symmetric(horizontal=20, vertical=10),
            content=ft.Column(spacing=4, controls=[self.list, self.more]),
        )

    @property
    def root(self) -> ft.Control:
        return self._root

    async def load(self) -> None:
        """Channels and provider health afresh; a failure is logged, never raised (the
        frame must come up even when the plane cannot say how things are)."""
        try:
            channels = await self.plane.channels()
            providers = await self.plane.provider_health()
        except Exception as exc:  # noqa: BLE001 - the banner is extra; the views go on
            _log.warning("health banner could not load: %s", exc)
            return
        self.state.reset(channels, providers)
        self.render()

    def apply(self, events: Sequence[Event], now: float) -> None:
        if self.state.apply(events):
            self.render()

    def render(self) -> None:
        alerts = self.state.alerts()
        self.list.controls = [self._row(a) for a in alerts[:MAX_ALERTS]]
        hidden = len(alerts) - MAX_ALERTS
        self.more.value = (t("and {count} more: see Channels and Settings", count=hidden)
                           if hidden > 0 else "")
        self.more.visible = hidden > 0
        self._root.visible = bool(alerts)
        self._on_badges(self.state.badges())

    async def open_logs(self, alert: Alert) -> str:
        return await self._open_logs(alert)

    def dismiss(self, key: str) -> None:
        self.state.dismiss(key)
        self.render()

    def _row(self, alert: Alert) -> ft.Control:
        async def logs(e: ft.Event[ft.Control]) -> None:
            route = await self.open_logs(alert)
            await e.page.push_route(route)
            e.page.update()

        def dismiss(e: ft.Event[ft.Control]) -> None:
            self.dismiss(alert.key)
            e.page.update()

        on = ft.Colors.ON_ERROR_CONTAINER
        # the link sits under the cause, not beside it: a phone keeps the width for the text
        return ft.Row(spacing=12, vertical_alignment=ft.CrossAxisAlignment.START, controls=[
            ft.Container(padding=ft.Padding.only(top=2), content=ft.Icon(
                ft.Icons.ERROR_OUTLINE, color=on, semantics_label=t("Failure"))),
            ft.Column(spacing=0, expand=True, controls=[
                ft.Text(alert.title, weight=ft.FontWeight.BOLD, color=on),
                # no max_lines: selectable text reserves every line it may have
                ft.Text(alert.cause, color=on, size=13, selectable=True),
                ft.TextButton(t("{name} logs", name=alert.name), icon=ft.Icons.RECEIPT_LONG,
                              on_click=logs,
                              tooltip=t("Open the logs of {name}", name=alert.name),
                              style=ft.ButtonStyle(color=on, padding=ft.Padding.symmetric(
                                  horizontal=4, vertical=0))),
            ]),
            ft.IconButton(ft.Icons.CLOSE, icon_color=on, icon_size=18, on_click=dismiss,
                          tooltip=t("Dismiss the {name} alert", name=alert.name)),
        ])


# ---- per-channel history ------------------------------------------------------------------

class ChannelHistories:
    """Each channel's last day, moved forward by events and by the clock."""

    def __init__(self, hours: int = DAY_HOURS) -> None:
        self.hours = hours
        self.by_channel: dict[str, ChannelHealth] = {}

    def reset(self, rows: Iterable[ChannelHealth]) -> None:
        self.by_channel = {h.channel: h for h in rows}

    def get(self, channel: str, now: float) -> ChannelHealth:
        health = self.by_channel.get(channel)
        if health is None:
            health = self.by_channel[channel] = build_health(channel, now, self.hours, [], {}, 0)
        return health

    def apply(self, events: Sequence[Event], now: float) -> set[str]:
        """State changes and error/warning lines; returns the channels whose strip changed
        (every one when a new hour began)."""
        changed: set[str] = set()
        for event in events:
            if not event.channel:
                continue
            if event.kind is EventKind.CHANNEL_STATE:
                state = str(event.data.get("state", ""))
                if state == "removed":
                    self.by_channel.pop(event.channel, None)
                    continue
                health = self.get(event.channel, event.ts)
                self.by_channel[event.channel] = record_state(
                    health, event.ts, state, str(event.data.get("reason", "")))
                changed.add(event.channel)
            elif event.kind is EventKind.LOG:
                level = str(event.data.get("level", ""))
                if level in ("error", "critical", "warning"):
                    health = self.get(event.channel, event.ts)
                    self.by_channel[event.channel] = record_log(health, event.ts, level)
                    changed.add(event.channel)
        for name, health in list(self.by_channel.items()):
            if health.hours and now >= health.hours[-1].start + HOUR:
                self.by_channel[name] = advance(health, now)
                changed.add(name)
        return changed


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M")


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def hour_text(hour: HealthHour) -> str:
    """What one hour of the strip says, in its tooltip and to a screen reader:
    "14:00–15:00: online 40 min, offline 20 min; 2 errors, 0 warnings"."""
    ranked = sorted(hour.states.items(), key=lambda kv: -kv[1])
    states = ", ".join(f"{state} {max(1, round(seconds / 60))} min"
                       for state, seconds in ranked) or "no state recorded"
    return (f"{_clock(hour.start)}–{_clock(hour.start + HOUR)}: {states}; "
            f"{_count(hour.errors, 'error')}, {_count(hour.warnings, 'warning')}")


def health_summary(health: ChannelHealth) -> str:
    errors = sum(h.errors for h in health.hours)
    warnings = sum(h.warnings for h in health.hours)
    return (f"Last {len(health.hours)} h: {_count(errors, 'error')} · "
            f"{_count(warnings, 'warning')} · {_count(health.changes, 'state change')}")


BAR_WIDTH = 9
BAR_HEIGHT = 14


def _hour_bar(hour: HealthHour, peak: int) -> ft.Control:
    state = shown_state(hour.states)
    problems = hour.errors + hour.warnings
    height = 0 if not problems else 3 + round((BAR_HEIGHT - 3) * problems / max(peak, 1))
    text = hour_text(hour)
    return ft.Container(  # the tooltip is also what a screen reader says for the hour
        tooltip=text,
        content=ft.Column(spacing=2, controls=[
            ft.Container(width=BAR_WIDTH, height=BAR_HEIGHT, alignment=ft.Alignment.BOTTOM_CENTER,
                         content=ft.Container(
                             width=BAR_WIDTH, height=height, border_radius=2,
                             bgcolor=ft.Colors.RED_600 if hour.errors else ft.Colors.AMBER_700,
                             visible=bool(problems))),
            ft.Container(width=BAR_WIDTH, height=6, border_radius=2,
                         bgcolor=style.state_color(state) if state
                         else ft.Colors.OUTLINE_VARIANT),
        ]))


def health_strip(health: ChannelHealth) -> ft.Control:
    """The day as one bar per hour: errors and warnings above, the state below."""
    peak = max((h.errors + h.warnings for h in health.hours), default=0)
    return ft.Row(spacing=2, controls=[_hour_bar(h, peak) for h in health.hours])
