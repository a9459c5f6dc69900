"""Channel lifecycle: one runtime record per configured channel, and its start, stop,
reconfiguration and restart, each channel on its own (one failure never blocks the rest)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pyclaw_app.channels import registry
from pyclaw_app.channels.contract import Connector, ConnectorSpec, StateStore, SubmitResult
from pyclaw_app.config import ChannelEntry
from pyclaw_app.errors import FatalConnectorError
from pyclaw_app.model import ChannelState, Inbound
from pyclaw_app.secrets import redactor

if TYPE_CHECKING:
    from pyclaw_app.gateway.host import Host

__all__ = ["ChannelContext", "ChannelRuntime", "spec_of"]

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


class ChannelContext:
    """The ConnectorContext the gateway hands to one connector."""

    def __init__(self, gateway: Host, runtime: ChannelRuntime) -> None:
        self._gateway = gateway
        self._runtime = runtime
        self.state: StateStore = gateway.store.channel_state.of(runtime.name)

    @property
    def channel(self) -> str:
        return self._runtime.name

    async def submit(self, inbound: Inbound) -> SubmitResult:
        return await self._gateway.intake.accept(inbound)

    def log(self, level: str, message: str, **data: Any) -> None:
        self._gateway.channel_log(self._runtime.name, level, message, **data)

    def set_state(self, state: ChannelState, reason: str = "") -> None:
        if self._runtime.ctx is self:  # a stopped connector's late words are not news
            self._gateway.set_state(self._runtime.name, state, reason)

    def heartbeat(self) -> None:
        self._runtime.last_heartbeat = self._gateway.clock()

    def crashed(self, reason: str, *, fatal: bool = False) -> None:
        if self._runtime.ctx is not self:
            return
        reason = redactor(reason)
        self._runtime.crashed = reason
        self._runtime.fatal = self._runtime.fatal or fatal
        self._gateway.channel_log(self._runtime.name, "error", reason, fatal=fatal)
        self._gateway.set_state(self._runtime.name, ChannelState.OFFLINE, reason)

    def commands(self) -> list[tuple[str, str]]:
        return self._gateway.agent.commands()


class ChannelLifecycle:
    def __init__(self, gateway: Host) -> None:
        self._gw = gateway

    async def start(self, name: str) -> None:
        gw = self._gw
        rt = gw.channels[name]
        entry = rt.entry
        if entry.config is None:
            reason = str(entry.error) if entry.error else "invalid config"
            gw.set_state(name, ChannelState.OFFLINE, reason)
            rt.last_error = reason
            gw.channel_log(name, "error", f"not started: {reason}")
            return
        if not entry.config.enabled:
            gw.set_state(name, ChannelState.DISABLED, "disabled in config")
            return
        gw.set_state(name, ChannelState.CONNECTING, "starting")
        rt.fatal = False
        rt.crashed = None
        try:
            cls = registry.connector_class(entry.type)
            rt.connector = cls(name, entry.config)
            rt.ctx = ChannelContext(gw, rt)
            await rt.connector.start(rt.ctx)
        except Exception as exc:  # noqa: BLE001 - any start failure is this channel's alone
            fatal = rt.fatal = isinstance(exc, FatalConnectorError)
            message = redactor(f"failed to start: {exc}")
            rt.last_error = message
            gw.channel_log(name, "error", message, fatal=fatal)
            gw.set_state(name, ChannelState.OFFLINE, message)
            if rt.connector is not None:
                with contextlib.suppress(Exception):
                    await rt.connector.stop()
            rt.connector = None
            rt.ctx = None
            return
        rt.last_heartbeat = gw.clock()  # a fresh start gets a full liveness window
        gw.channel_log(name, "info", "started")

    async def stop(self, name: str) -> None:
        """Stop a channel; one whose ``stop()`` hangs is abandoned after ``stop_timeout``."""
        gw = self._gw
        timeout = gw.stop_timeout
        rt = gw.channels[name]
        if rt.connector is None:
            return
        connector, rt.connector = rt.connector, None
        task = asyncio.create_task(connector.stop(), name=f"stop:{name}")
        done, _ = await asyncio.wait({task}, timeout=timeout)
        rt.ctx = None
        if not done:
            task.cancel()  # not awaited: a stop() that ignores cancellation must not hang us
            gw.channel_log(name, "warning", f"stop() did not finish within {timeout:.0f}s; "
                           "the connector was abandoned")
        elif task.exception() is not None:
            gw.channel_log(name, "warning", f"stop did not finish cleanly: {task.exception()!r}")
        gw.set_state(name, ChannelState.STOPPED, "stopped")
