"""Channels that heal themselves.

Liveness is judged by traffic — the last successful poll, frame or webhook a
connector reported through ``ctx.heartbeat()`` — never by a "connected" flag,
because the classic failure is a connector that says it is connected and has
stopped receiving. A stalled channel, or one whose start failed for a reason
that may pass, is restarted with backoff and at most ``max_restarts_per_hour``
times; each restart runs in its own task, so one stuck connector (even one
whose ``stop()`` hangs) never delays the others. A restart takes the channel's
lifecycle lock like any Start or Stop from the panel, and re-checks its reason
once it holds it: a channel the user stopped or restarted meanwhile is left alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyclaw_app.backoff import Backoff
from pyclaw_app.channels.contract import ChannelConfig, Connector, ConnectorSpec, Transport
from pyclaw_app.model import ChannelState

__all__ = ["Supervised", "SupervisedChannel", "Supervisor", "SupervisorSettings"]

_log = logging.getLogger(__name__)

HOUR = 3600.0
STOP_WAIT = 5.0
"""Seconds ``stop`` waits for restarts in progress to end after cancelling them."""


@dataclass(frozen=True, slots=True)
class SupervisorSettings:
    stall_after: float = 180.0
    """Seconds without any sign of life before a polling/websocket channel counts as stalled."""
    check_every: float = 5.0
    max_restarts_per_hour: int = 6


class _Entry(Protocol):
    @property
    def config(self) -> ChannelConfig | None: ...


class SupervisedChannel(Protocol):
    """What the supervisor reads of one channel."""

    name: str
    spec: ConnectorSpec | None
    state: ChannelState
    last_error: str
    last_heartbeat: float | None
    fatal: bool
    crashed: str | None

    @property
    def entry(self) -> _Entry: ...

    @property
    def connector(self) -> Connector | None: ...


class Supervised(Protocol):
    """The narrow view of the gateway the supervisor needs: read channels, restart one."""

    clock: Callable[[], float]

    @property
    def channels(self) -> Mapping[str, SupervisedChannel]: ...

    async def restart_channel(self, name: str, reason: str, *,
                              still_needed: Callable[[], str | None] | None = None) -> None: ...

    def channel_log(self, channel: str, level: str, message: str, **data: Any) -> None: ...

    def set_state(self, name: str, state: ChannelState, reason: str = "") -> None: ...


@dataclass
class _Watch:
    restarts: deque[float] = field(default_factory=deque)
    backoff: Backoff = field(default_factory=lambda: Backoff(base=2.0, cap=300.0))
    not_before: float = 0.0
    task: asyncio.Task[None] | None = None
    gave_up: bool = False


class Supervisor:
    def __init__(self, gateway: Supervised, settings: SupervisorSettings | None = None) -> None:
        self.gateway = gateway
        self.settings = settings or SupervisorSettings()
        self._watches: dict[str, _Watch] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="gateway:supervisor")

    async def stop(self) -> None:
        """Cancel the loop and the restarts in progress; a restart stuck in a connector that
        ignores cancellation is left behind after ``STOP_WAIT`` (shutdown must end)."""
        tasks = [t for t in (self._task, *(w.task for w in self._watches.values())) if t]
        for task in tasks:
            task.cancel()
        self._task = None
        if not tasks:
            return
        ended, stuck = await asyncio.wait(tasks, timeout=STOP_WAIT)
        for task in ended:
            if not task.cancelled() and task.exception() is not None:
                _log.warning("%s failed: %r", task.get_name(), task.exception())
        for task in stuck:
            _log.warning("%s did not end after cancellation; left behind", task.get_name())

    def reset(self, name: str) -> None:
        """Forget the restart history (the user restarted or reconfigured the channel)."""
        self._watches.pop(name, None)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.check_every)
            try:
                self.check()
            except Exception:  # noqa: BLE001 - the supervisor itself must never die
                _log.exception("supervisor check failed")

    def check(self) -> None:
        """One pass over every channel; restarts what needs it in the background."""
        now = self.gateway.clock()
        for name, rt in self.gateway.channels.items():
            watch = self._watches.setdefault(name, _Watch())
            if watch.gave_up or (watch.task is not None and not watch.task.done()):
                continue
            reason = self._needs_restart(rt, now)
            if reason is None or now < watch.not_before:
                continue
            while watch.restarts and now - watch.restarts[0] > HOUR:
                watch.restarts.popleft()
            if len(watch.restarts) >= self.settings.max_restarts_per_hour:
                watch.gave_up = True
                message = (f"restarted {len(watch.restarts)} times in the last hour; automatic "
                           f"restarts stopped (last reason: {reason}). Restart it from the "
                           "Channels view once the cause is fixed.")
                self.gateway.channel_log(name, "error", message)
                self.gateway.set_state(name, ChannelState.OFFLINE, message)
                continue
            watch.restarts.append(now)
            watch.not_before = now + watch.backoff.next_delay()
            restart = self.gateway.restart_channel(
                name, reason, still_needed=lambda n=name: self._still_needed(n))
            watch.task = asyncio.create_task(restart, name=f"supervisor:restart:{name}")

    def _still_needed(self, name: str) -> str | None:
        rt = self.gateway.channels.get(name)
        return None if rt is None else self._needs_restart(rt, self.gateway.clock())

    def _needs_restart(self, rt: SupervisedChannel, now: float) -> str | None:
        entry = rt.entry
        if entry.config is None or not entry.config.enabled or rt.fatal:
            return None
        if rt.crashed is not None:
            return rt.crashed
        if rt.connector is None:
            if rt.state == ChannelState.OFFLINE:
                return f"start failed: {rt.last_error}"
            return None
        if rt.spec is None or rt.spec.transport in (Transport.LOCAL, Transport.WEBHOOK):
            return None
        if entry.config.needs_webhook() or not rt.connector.receives:
            return None  # the platform comes to us, or to another instance: no stall
        last = rt.last_heartbeat
        if last is not None and now - last > self.settings.stall_after:
            self.gateway.set_state(rt.name, ChannelState.DEGRADED,
                                   f"no traffic for {now - last:.0f}s")
            return f"stalled: no sign of life for {now - last:.0f}s"
        return None
