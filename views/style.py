"""Colours, icons and text formats shared by the views, so every view says "online" the same way."""

from __future__ import annotations

import time
from datetime import datetime

import flet as ft

from views.i18n import t

__all__ = [
    "DIRECTION_ARROWS",
    "SEED_COLOR",
    "STATE_COLORS",
    "ago",
    "channel_icon",
    "clock_time",
    "direction_label",
    "latency",
    "state_color",
    "state_label",
]

SEED_COLOR = ft.Colors.INDIGO

STATE_COLORS: dict[str, str] = {
    "online": ft.Colors.GREEN_600,
    "connecting": ft.Colors.AMBER_700,
    "degraded": ft.Colors.ORANGE_700,
    "offline": ft.Colors.RED_600,
    "stopped": ft.Colors.GREY_600,
    "disabled": ft.Colors.GREY_500,
}

DIRECTION_ARROWS: dict[str, tuple[ft.IconData, str]] = {
    # direction -> (icon, colour); the words are direction_label's
    "in": (ft.Icons.ARROW_DOWNWARD, ft.Colors.BLUE_600),
    "out": (ft.Icons.ARROW_UPWARD, ft.Colors.GREEN_600),
    "failed": (ft.Icons.ERROR_OUTLINE, ft.Colors.RED_600),
}


def direction_label(direction: str) -> str:
    """What a person reads (and a screen reader says) for a message's direction."""
    labels = {"in": t("received"), "out": t("sent"), "failed": t("failed")}
    return labels.get(direction, labels["in"])


def state_color(state: str) -> str:
    return STATE_COLORS.get(state, ft.Colors.GREY_600)


def state_label(state: str) -> str:
    """A channel state as a person reads it (the value itself for one this panel does not know)."""
    labels = {"online": t("online"), "connecting": t("connecting"), "degraded": t("degraded"),
              "offline": t("offline"), "stopped": t("stopped"), "disabled": t("disabled")}
    return labels.get(state, state)


def channel_icon(name: str) -> ft.IconData:
    """Connector icons are Material icon names ("chat_bubble"); unknown ones get a generic one."""
    try:
        return getattr(ft.Icons, name.upper()) if name else ft.Icons.FORUM
    except AttributeError:
        return ft.Icons.FORUM


def ago(ts: float | None, now: float | None = None) -> str:
    """ "last message 5 s ago" style ages, coarse enough to read at a glance."""
    if ts is None:
        return t("no messages yet")
    seconds = max(0, int((time.time() if now is None else now) - ts))
    if seconds < 60:
        return t("last message {seconds} s ago", seconds=seconds)
    if seconds < 3600:
        return t("last message {minutes} min ago", minutes=seconds // 60)
    if seconds < 86400:
        return t("last message {hours} h ago", hours=seconds // 3600)
    return t("last message {days} d ago", days=seconds // 86400)


def clock_time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def latency(ms: float | None) -> str:
    if ms is None:
        return ""
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"
