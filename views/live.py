"""One live loop per page: subscription -> batches -> panels -> one page update.

The loop is the only place that pushes live changes to the client, so the
update rate is whatever ``LiveBatcher`` allows (design §5: ~10 a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence

from pyclaw_app.control import ControlPlane, Subscription
from views.panel import Panel
from views.state import Clock, LiveBatcher

__all__ = ["LiveSession"]

_log = logging.getLogger(__name__)


class LiveSession:
    """Owns a page's subscription and its named reader task; start/stop may be called repeatedly.

    A web client that disconnects keeps its Flet session for a while; stopping
    then and starting again on reconnect means a hidden tab costs the gateway
    no queue, and a returning one gets a fresh snapshot.
    """

    def __init__(self, plane: ControlPlane, panels: Sequence[Panel], refresh: Callable[[], None],
                 *, name: str = "ui-live", clock: Clock = time.monotonic,
                 wall_clock: Clock = time.time, min_interval: float = 0.1) -> None:
        self._plane = plane
        self._panels = list(panels)
        self._refresh = refresh
        self._name = name
        self._clock = clock
        self._wall_clock = wall_clock
        self._min_interval = min_interval
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._task is not None

    @property
    def dropped(self) -> int:
        return self._sub.dropped if self._sub is not None else 0

    async def start(self) -> None:
        """Subscribe first, then load the snapshot, so nothing between the two is missed."""
        async with self._lock:
            if self._task is not None:
                return
            sub = self._plane.subscribe()
            try:
                for panel in self._panels:
                    await panel.load()
            except BaseException:
                sub.close()
                raise
            self._sub = sub
            self._refresh()
            self._task = asyncio.create_task(self._pump(sub), name=self._name)

    async def stop(self) -> None:
        async with self._lock:
            task, sub = self._task, self._sub
            self._task = self._sub = None
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if sub is not None:
                sub.close()

    async def _pump(self, sub: Subscription) -> None:
        batcher = LiveBatcher(clock=self._clock, min_interval=self._min_interval)
        while True:
            batcher.add(await sub.get_batch(timeout=batcher.next_wait()))
            batch = batcher.take()
            if batch is None:
                # events came early: let more gather until the batch is due (and always
                # yield to the loop, even if get_batch returned without waiting)
                await asyncio.sleep(batcher.next_wait())
                continue
            now = self._wall_clock()
            for panel in self._panels:
                try:
                    panel.apply(batch, now)
                except Exception:  # noqa: BLE001 - logged with traceback; next batch goes on
                    # one bad event must not freeze every live view of the page
                    _log.exception("%s could not apply %d events", type(panel).__name__,
                                   len(batch))
            self._refresh()
