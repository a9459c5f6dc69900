"""One turn at a time per key (a conversation): what arrives for a key waits for the ones
before it, in arrival order, while other keys go on.

A Slack event waits only for the earlier events of its own conversation; a message in a
conversation another gateway instance is taking over waits until that instance's open rows
are queued. Both need the same thing: an ``asyncio.Lock`` per key (it wakes waiters first
come, first served) that exists only while someone holds or awaits it, so the map holds
only keys with work in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

__all__ = ["Turns"]


class Turns:
    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: dict[str, int] = {}

    @contextlib.asynccontextmanager
    async def turn(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiting[key] = self._waiting.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key], self._locks[key]

    def busy(self, key: str) -> bool:
        """Whether someone holds or awaits ``key``'s turn."""
        return key in self._locks

    def __len__(self) -> int:
        """Keys with a turn held or awaited."""
        return len(self._locks)
