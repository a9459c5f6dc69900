"""In-process pub/sub that never blocks the gateway.

Each subscriber gets a bounded deque: when a view falls behind, its oldest
events are dropped and counted, and publishing stays O(subscribers) with no
awaits, so a frozen UI can never stall message handling.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

from pyclaw_app.model import Event

__all__ = ["Bus", "BusSubscription", "EventQueue"]


class EventQueue:
    """One reader's bounded queue: when it falls behind, its oldest events are dropped
    and counted, so whoever pushes never waits."""

    def __init__(self, maxsize: int) -> None:
        self._items: deque[Event] = deque()
        self._maxsize = maxsize
        self._ready = asyncio.Event()
        self.dropped = 0
        self.closed = False

    def push(self, event: Event) -> None:
        if len(self._items) >= self._maxsize:
            self._items.popleft()
            self.dropped += 1
        self._items.append(event)
        self._ready.set()

    async def get(self) -> Event:
        while not self._items:
            if self.closed:
                raise StopAsyncIteration
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    async def get_batch(self, max_items: int = 500, timeout: float | None = None) -> list[Event]:
        if not self._items and not self.closed:
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return []
        batch = []
        while self._items and len(batch) < max_items:
            batch.append(self._items.popleft())
        return batch

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        return await self.get()

    def close(self) -> None:
        self.closed = True
        self._ready.set()


class BusSubscription(EventQueue):
    def __init__(self, bus: Bus, maxsize: int) -> None:
        super().__init__(maxsize)
        self._bus = bus

    def close(self) -> None:
        super().close()
        self._bus._remove(self)


class Bus:
    def __init__(self) -> None:
        self._subs: list[BusSubscription] = []
        self.published = 0

    def subscribe(self, maxsize: int = 2000) -> BusSubscription:
        sub = BusSubscription(self, maxsize)
        self._subs.append(sub)
        return sub

    def publish(self, event: Event) -> None:
        self.published += 1
        for sub in self._subs:
            sub.push(event)

    def _remove(self, sub: BusSubscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)
