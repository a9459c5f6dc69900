"""Plain rows the views render. Dataclasses only: the Android monitor has no pydantic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ChannelStatus", "Counters", "LogRow", "TrafficRow"]


@dataclass(frozen=True, slots=True)
class TrafficRow:
    """One journal row: a message in or a reply out."""

    id: int
    ts: float
    direction: str  # "in" | "out"
    channel: str
    chat: str
    sender: str
    text: str
    status: str
    thread: str | None = None
    reply_to_id: int | None = None  # for "out": the inbound journal row it answers
    latency_ms: float | None = None  # for "out": inbound received -> reply sent
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    name: str
    type: str
    title: str
    icon: str
    state: str  # a pyclaw_app.model.ChannelState value
    enabled: bool = True
    reason: str = ""
    last_error: str = ""
    last_message_ts: float | None = None
    config_error: str = ""


@dataclass(frozen=True, slots=True)
class LogRow:
    id: int
    ts: float
    channel: str
    level: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Counters:
    """Today's totals (local midnight onwards)."""

    inbound: int = 0
    outbound: int = 0
    failed: int = 0
