"""Channel lifecycle: one runtime record per configured channel, and its start, stop,
reconfiguration and restart, each channel on its own (one failure never blocks the rest)
and each channel one operation at a time (one connector per channel, ever)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyclaw_app.channels import registry
from pyclaw_app.channels.contract import Connector, ConnectorSpec, StateStore, SubmitResult
from pyclaw_app.config import ChannelEntry
from pyclaw_app.errors import ConnectorError, FatalConnectorError
from pyclaw_app.model import ChannelState, EventKind, Inbound
from pyclaw_app.secrets import redactor

if TYPE_CHECKING:
    from pyclaw_app.gateway.host import Host

__all__ = ["ChannelContext", "ChannelLifecycle", "ChannelRuntime", "spec_of"]

_log = logging.getLogger(__name__)


def spec_of(type_name: str) -> ConnectorSpec | None:
    try:
        return registry.get_spec(type_name)
    except KeyError:
        return None


@dataclass
class ChannelRuntime:
    """What the gateway knows about one configured channel right now."""

    name: str
    type: str
    spec: ConnectorSpec | None
    entry: ChannelEntry
    connector: Connector | None = None
    state: ChannelState = ChannelState.STOPPED
    reason: str = ""
    last_error: str = ""
    last_message_ts: float | None = None
    last_heartbeat: float | None = None
    """Monotonic time of the last sign of life (poll, event, webhook): liveness is traffic."""
    fatal: bool = False
    """The last start failed in a way retrying cannot fix (bad token): no automatic restarts."""
    crashed: str | None = None
    """Why a background task of the running connector died; the supervisor restarts it."""
    ctx: ChannelContext | None = field(default=None, repr=False)
    stranded: set[int] = field(default_factory=set, repr=False)
    """Journal rows whose turn found the channel not running (a stop or restart under
    way): no lane has them, whatever their status says. The next start resumes them; a
    shared instance's sweep would otherwise take a ``processing`` one of a conversation it
    holds for one in its lane, and answer the chat's later messages first."""


class ChannelContext:
    """The ConnectorContext the gateway hands to one connector.

    It speaks for its connector only while that connector is the channel's current one
    (``runtime.ctx is self``): a stopping connector's state reports are not news. Once its
    stop is over (or abandoned) the context is *retired* and refuses ``submit``, so a
    connector that outlived its stop cannot journal, and so cannot acknowledge, anything:
    the platform keeps it for the next run.
    """

    def __init__(self, gateway: Host, runtime: ChannelRuntime) -> None:
        self._gateway = gateway
        self._runtime = runtime
        self._retired = False
        self.state: StateStore = gateway.store.channel_state.of(runtime.name)

    @property
    def channel(self) -> str:
        return self._runtime.name

    @property
    def _current(self) -> bool:
        return self._runtime.ctx is self

    def retire(self) -> None:
        self._retired = True

    async def submit(self, inbound: Inbound) -> SubmitResult:
        if self._retired:
            raise ConnectorError(
                f"channel {self._runtime.name!r} was stopped; this connector instance can no "
                "longer submit (the platform keeps the message for the next run)")
        return await self._gateway.intake.accept(inbound)

    def log(self, level: str, message: str, **data: Any) -> None:
        self._gateway.channel_log(self._runtime.name, level, message, **data)

    def set_state(self, state: ChannelState, reason: str = "") -> None:
        if self._current:
            self._gateway.set_state(self._runtime.name, state, reason)

    def heartbeat(self) -> None:
        if self._current:
            self._runtime.last_heartbeat = self._gateway.clock()

    def crashed(self, reason: str, *, fatal: bool = False) -> None:
        if not self._current:
            return
        reason = redactor(reason)
        self._runtime.crashed = reason
        self._runtime.fatal = self._runtime.fatal or fatal
        self._gateway.channel_log(self._runtime.name, "error", reason, fatal=fatal)
        self._gateway.set_state(self._runtime.name, ChannelState.OFFLINE, reason)

    def commands(self) -> list[tuple[str, str]]:
        return self._gateway.agent.commands()


class ChannelLifecycle:
    """Start, stop, restart, reconfiguration and removal, one at a time per channel.

    Each operation holds its channel's lock for its whole length, whoever asks (the
    panel's buttons, the Enabled switch, a saved form, the supervisor), so two calls can
    never interleave into two connectors for one channel. A new connector starts only
    after the old one's ``stop()`` returned, or was abandoned after ``stop_timeout`` with
    its context retired. Other channels are never waited for.
    """

    def __init__(self, gateway: Host) -> None:
        self._gw = gateway
        self._locks: dict[str, asyncio.Lock] = {}
        self._stopping: dict[str, asyncio.Task[None]] = {}
        """The stop in progress per channel; it outlives a caller that was cancelled."""

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _known(self, name: str) -> ChannelRuntime:
        try:
            return self._gw.channels[name]
        except KeyError:
            raise KeyError(f"no channel named {name!r}") from None

    # ---- operations (each under the channel's lock) ---------------------------------------
    async def start(self, name: str) -> None:
        """Start the channel; a channel already running (and not crashed) is left alone."""
        async with self._lock(name):
            rt = self._known(name)
            if rt.connector is not None and rt.crashed is None:
                return
            await self._stop(name)
            await self._start(name)

    async def stop(self, name: str) -> None:
        """Stop a channel; one whose ``stop()`` hangs is abandoned after ``stop_timeout``.
        A shared instance lets its lease go: another instance may receive for it."""
        async with self._lock(name):
            await self._stop(name)
            if self._gw.shared is not None:
                await self._gw.shared.let_lease_go(name)

    async def restart(self, name: str, reason: str,
                      still_needed: Callable[[], str | None] | None = None) -> None:
        """Stop and start again. ``still_needed`` is asked once the lock is held (the
        supervisor's reason may be gone by then: the user stopped or restarted it); the
        restart happens only if it still gives a reason."""
        async with self._lock(name):
            if still_needed is not None:
                if name not in self._gw.channels or (again := still_needed()) is None:
                    return
                reason = again
            self._known(name)  # an unknown name is a KeyError, as for start and stop
            self._gw.channel_log(name, "warning", f"restarting: {reason}")
            await self._stop(name)
            await self._start(name)

    async def apply(self, entry: ChannelEntry) -> None:
        """(Re)start a channel with a new config, without touching the others."""
        gw = self._gw
        async with self._lock(entry.name):
            old = gw.channels.get(entry.name)
            if old is not None:
                await self._stop(entry.name)
            rt = ChannelRuntime(entry.name, entry.type, spec_of(entry.type), entry)
            if old is not None:
                rt.last_message_ts = old.last_message_ts
                rt.stranded = old.stranded
            gw.channels[entry.name] = rt
            gw.channel_log(entry.name, "info", "configuration applied")
            await self._start(entry.name)

    async def remove(self, name: str) -> bool:
        """Stop the channel and forget it with its stored state; False if there was none."""
        gw = self._gw
        async with self._lock(name):
            if name not in gw.channels:
                return False
            await self._stop(name)
            if gw.shared is not None:
                await gw.shared.let_lease_go(name)
            del gw.channels[name]
            await gw.store.channel_state.forget(name)
        gw.emit(EventKind.CHANNEL_STATE, name, state="removed", reason="")
        return True

    # ---- the steps (the caller holds the lock) ---------------------------------------------
    async def _start(self, name: str) -> None:
        gw = self._gw
        await self._settled(name)
        rt = self._known(name)
        entry = rt.entry
        if entry.config is None:
            reason = str(entry.error) if entry.error else "invalid config"
            gw.set_state(name, ChannelState.OFFLINE, reason)
            rt.last_error = reason
            gw.channel_log(name, "error", f"not started: {reason}")
            return
        if not entry.config.enabled:
            if gw.shared is not None:
                await gw.shared.let_lease_go(name)
            gw.set_state(name, ChannelState.DISABLED, "disabled in config")
            return
        receives = True
        if gw.shared is not None and not gw.shared.receives(name):
            if not gw.shared.sends_only(name):
                gw.set_state(name, ChannelState.STOPPED, await gw.shared.standby_reason(name))
                return
            receives = False
        gw.set_state(name, ChannelState.CONNECTING, "starting")
        rt.fatal = False
        rt.crashed = None
        ctx = rt.ctx = ChannelContext(gw, rt)
        connector: Connector | None = None
        try:
            connector = rt.connector = registry.connector_class(entry.type)(name, entry.config)
            connector.receives = receives
            gw.intake.hold(name)  # until its open rows are queued, below
            await connector.start(ctx)
        except BaseException as exc:
            await gw.intake.let_through(name, started=False)
            rt.connector = rt.ctx = None
            await self._finish(name, connector, ctx)
            if not isinstance(exc, Exception):
                raise  # cancelled: the connector is stopped, the caller goes on ending
            fatal = rt.fatal = isinstance(exc, FatalConnectorError)
            message = redactor(f"failed to start: {exc}")
            rt.last_error = message
            gw.channel_log(name, "error", message, fatal=fatal)
            gw.set_state(name, ChannelState.OFFLINE, message)
            return
        rt.last_heartbeat = gw.clock()  # a fresh start gets a full liveness window
        gw.channel_log(name, "info", "started" if receives else
                       "started to send only: another instance receives for this channel")
        await gw.intake.resume_unfinished(name)  # what a stopped connector journaled

    async def _stop(self, name: str) -> None:
        rt = self._known(name)
        connector, ctx = rt.connector, rt.ctx
        if connector is None:
            await self._settled(name)
            return
        rt.connector = rt.ctx = None  # replies wait for the next run; late reports are ignored
        await self._finish(name, connector, ctx)
        self._gw.set_state(name, ChannelState.STOPPED, "stopped")

    async def _finish(self, name: str, connector: Connector | None,
                      ctx: ChannelContext | None) -> None:
        """Stop ``connector`` and retire ``ctx``, within ``stop_timeout`` even if the caller
        is cancelled meanwhile (the next operation waits for it in ``_settled``)."""
        self._stopping[name] = asyncio.create_task(
            self._stop_connector(name, connector, ctx), name=f"lifecycle:{name}:stop")
        await self._settled(name)

    async def _settled(self, name: str) -> None:
        """Wait for the channel's stop in progress, if any (a cancelled caller leaves it)."""
        job = self._stopping.get(name)
        if job is None:
            return
        await asyncio.shield(job)
        if self._stopping.get(name) is job:
            del self._stopping[name]

    async def _stop_connector(self, name: str, connector: Connector | None,
                              ctx: ChannelContext | None) -> None:
        gw = self._gw
        timeout = gw.stop_timeout
        try:
            if connector is None:
                return
            task = asyncio.create_task(connector.stop(), name=f"stop:{name}")
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()  # not awaited: a stop() that ignores cancellation must not hang us
                gw.channel_log(name, "warning", f"stop() did not finish within {timeout:.0f}s; "
                               "the connector was abandoned and can no longer submit")
            elif task.exception() is not None:
                gw.channel_log(name, "warning",
                               f"stop did not finish cleanly: {task.exception()!r}")
        finally:
            if ctx is not None:
                ctx.retire()
