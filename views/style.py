"""Colours, icons and text formats shared by the views, so every view says "online" the same way."""

from __future__ import annotations

import time
from datetime import datetime

import flet as ft

__all__ = [
    "DIRECTION_ARROWS",
    "SEED_COLOR",
    "STATE_COLORS",
    "ago",
    "channel_icon",
    "clock_time",
    "latency",
    "state_color",
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

DIRECTION_ARROWS: dict[str, tuple[ft.IconData, str, str]] = {
    # direction -> (icon, colour, what a screen reader says)
    "in": (ft.Icons.ARROW_DOWNWARD, ft.Colors.BLUE_600, "received"),
    "out": (ft.Icons.ARROW_UPWARD, ft.Colors.GREEN_600, "sent"),
    "failed": (ft.Icons.ERROR_OUTLINE, ft.Colors.RED_600, "failed"),
}


def state_color(state: str) -> str:
    return STATE_COLORS.get(state, ft.Colors.GREY_600)


def channel_icon(name: str) -> ft.IconData:
    """Connector icons are Material icon names ("chat_bubble"); unknown ones get a generic one."""
    try:
        return getattr(ft.Icons, name.upper()) if name else ft.Icons.FORUM
    except AttributeError:
        return ft.Icons.FORUM


def ago(ts: float | None, now: float | None = None) -> str:
    """ "last message 5 s ago" style ages, coarse enough to read at a glance."""
    if ts is None:
        return "no messages yet"
    seconds = max(0, int((time.time() if now is None else now) - ts))
    if seconds < 60:
        return f"last message {seconds} s ago"
    if seconds < 3600:
        return f"last message {seconds // 60} min ago"
    if seconds < 86400:
        return f"last message {seconds // 3600} h ago"
    return f"last message {seconds // 86400} d ago"


def clock_time(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def latency(ms: float | None) -> str:
    if ms is None:
        return ""
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"
