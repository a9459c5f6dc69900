"""The one interface views talk to.

The desktop app uses the in-process implementation; the Android monitor will
use a remote one over HTTP + WebSocket. Views therefore never touch the store,
the gateway or an SDK, only these methods and the plain rows in ``types``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from pyclaw_app.control.types import ChannelStatus, Counters, LogRow, TrafficRow
from pyclaw_app.model import Event

__all__ = ["ControlPlane", "Subscription"]


class Subscription(Protocol):
    """A bounded stream of events; when the reader is slow the oldest are dropped and counted."""

    @property
    def dropped(self) -> int: ...

    def __aiter__(self) -> AsyncIterator[Event]: ...

    async def get_batch(self, max_items: int = 500, timeout: float | None = None) -> list[Event]:
        """Wait for at least one event (or ``timeout``), then return all queued up to max_items."""
        ...

    def close(self) -> None: ...


class ControlPlane(Protocol):
    def subscribe(self, maxsize: int = 2000) -> Subscription: ...

    async def recent_traffic(self, limit: int = 200, channel: str | None = None
                             ) -> list[TrafficRow]: ...

    async def counters_today(self) -> Counters: ...

    async def channels(self) -> list[ChannelStatus]: ...

    async def logs(self, *, channel: str | None = None, level: str | None = None,
                   search: str | None = None, before_id: int | None = None,
                   limit: int = 100) -> list[LogRow]: ...

    async def chat_send(self, text: str, chat: str = "app") -> None:
        """Post as the user of the local channel; the reply arrives as events."""
        ...

    async def chat_history(self, chat: str = "app", limit: int = 100) -> list[TrafficRow]: ...

    async def chat_reset(self, chat: str = "app") -> None: ...

    def config_errors(self) -> list[str]: ...
