"""The gateway: wires the flow of design.md §1 from its four parts.

platform -> connector -> Inbound -> journal -> lane -> agent -> Outbound -> connector,
with an Event on the bus for every step. Channel lifecycle (``channels``),
intake (``intake``), the turn (``turn``) and delivery (``delivery``) each live
in their own module; this class owns the shared state they work on and is what
the control plane and the supervisor talk to. It keeps no message state of its
own: everything it needs after a crash is in the journal.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyclaw_app.agent import Agent
from pyclaw_app.agent.mcp import McpManager
from pyclaw_app.attachments import AttachmentFiles, AttachmentPipeline, AttachmentSweeper
from pyclaw_app.bus import Bus
from pyclaw_app.channels.contract import Connector
from pyclaw_app.channels.webhook import WebhookRequest, WebhookResponse
from pyclaw_app.config import ChannelEntry, Config
from pyclaw_app.gateway.channels import ChannelLifecycle, ChannelRuntime, spec_of
from pyclaw_app.gateway.delivery import Delivery
from pyclaw_app.gateway.intake import Intake
from pyclaw_app.gateway.scheduler import Scheduler
from pyclaw_app.gateway.shared import SharedWork
from pyclaw_app.gateway.turn import Turn
from pyclaw_app.lanes import Lanes
from pyclaw_app.model import ChannelState, Event, EventKind
from pyclaw_app.policy import AccessPolicy
from pyclaw_app.secrets import redactor
from pyclaw_app.store import Store
from pyclaw_app.store.retention import Pruner
from pyclaw_app.supervisor import Supervisor

if TYPE_CHECKING:
    from pyclaw_app.store.cluster_link import ClusterLink

__all__ = ["Gateway"]

_log = logging.getLogger(__name__)

STREAM_INTERVAL = 1.0
"""Seconds between edits of a streamed draft: live to a reader, gentle on rate limits."""
STOP_TIMEOUT = 10.0


class Gateway:
    def __init__(self, config: Config, store: Store, bus: Bus | None = None, *,
                 agent: Agent | None = None, clock: Callable[[], float] = time.monotonic,
                 supervise: bool = True, wall_clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.bus = bus or Bus()
        self.lanes = Lanes(config.agent.max_concurrent_llm)
        self.mcp = McpManager(config.mcp_servers,
                              lambda level, message: self.channel_log("mcp", level, message))
        """The MCP servers; their tools join the agent's built-in ones per turn."""
        self.attachments = AttachmentPipeline(
            lambda: self.config, AttachmentFiles(store.db, store.data_dir / "attachments"),
            self._connector)
        """Pictures, voice notes and documents: fetched, checked, stored, read per turn."""
        self.agent = agent or Agent.from_config(config, store, tool_source=self.mcp,
                                                media=self.attachments)
        self.policy = AccessPolicy(store.access)
        self.channels: dict[str, ChannelRuntime] = {}
        self.shared: SharedWork | None = None
        """Set by :meth:`share` on an instance that shares the work (``storage.shared``)."""
        self.delivery = Delivery(store.journal, self._connector, self.channel_log)
        self.turn = Turn(self)
        self.intake = Intake(self, self.turn)
        self.lifecycle = ChannelLifecycle(self)
        self.supervisor = Supervisor(self) if supervise else None
        self.retention = Pruner(store.db, lambda: self.config.retention, sweepers=(
            AttachmentSweeper(lambda: self.config, self.attachments.files),))
        self.scheduler = Scheduler(self, store.schedules, clock=wall_clock)
        store.db.on_outage = self._store_outage
        self.stop_timeout = STOP_TIMEOUT
        self._retired_agents: list[Agent] = []
        self.stream_interval = STREAM_INTERVAL
        self._started = False

    # ---- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start every enabled channel (each on its own; one failure never blocks the rest)."""
        if self._started:
            raise RuntimeError("gateway already started")
        self._started = True
        for error in self.config.errors:
            _log.error("config: %s", error)
        for warning in self.config.warnings:
            _log.warning("config: %s", warning)
        for name, entry in self.config.channels.items():
            self.channels[name] = ChannelRuntime(name, entry.type, spec_of(entry.type), entry)
        if self.shared is not None:
            await self.shared.start()  # the free leases first: the channels start receiving
        elif settled := await self.store.journal.settle_interrupted_parts():
            self.channel_log("gateway", "warning", f"{settled} file(s) of replies already "
                             "sent were being uploaded when pyclaw stopped; each is marked "
                             "uncertain and not sent again")
        await self.mcp.start()  # in the background: the servers connect beside the channels
        await asyncio.gather(*(self.start_channel(n) for n in self.channels))
        await self.resume_unfinished()
        if self.supervisor is not None:
            self.supervisor.start()
        self.retention.start()  # the log tables' age and row limits, in the background
        self.scheduler.start()  # after the channels: a job missed while down fires now

    def share(self, link: ClusterLink, on_fenced: Callable[[str], None],
              reload: Callable[[], Config] | None = None) -> None:
        """Be one of several active instances on the store (``gateway/shared.py``), as
        ``link`` (joined); ``on_fenced`` ends the process if its session is lost, ``reload``
        reads the config file again when another instance saved a change to it."""
        if self._started:
            raise RuntimeError("share before the gateway starts")
        self.shared = SharedWork(self, link, on_fenced, reload)
        self.store.db.holds_instance = True

    async def config_saved(self) -> None:
        """The panel saved the config file: instances sharing the work adopt it too."""
        if self.shared is not None:
            await self.shared.publish_config()

    async def adopt(self, config: Config) -> None:
        """Run ``config`` from now on, as if each of its changes had been saved here: the
        channels that differ are applied (the others keep running), MCP servers and the
        assistant's settings take effect with the next turn."""
        old, self.config = self.config, config
        for name, entry in config.channels.items():
            current = self.channels.get(name)
            if current is None or _entry_differs(current.entry, entry):
                await self.apply_channel(entry)
        for name in set(self.channels) - set(config.channels):
            await self.remove_channel(name)
        if config.mcp_servers != old.mcp_servers:
            await self.mcp.apply(config.mcp_servers)
        await self.replace_agent(Agent.from_config(config, self.store, tool_source=self.mcp,
                                                   media=self.attachments))

    async def stop(self) -> None:
        if self.shared is not None:
            await self.shared.pause()
        await self.scheduler.stop()
        await self.retention.stop()
        if self.supervisor is not None:
            await self.supervisor.stop()
        await asyncio.gather(*(self.stop_channel(n) for n in list(self.channels)))
        await self.lanes.close()
        if self.shared is not None:
            await self.shared.leave()  # after the lanes: nothing of ours is in flight
        await self.mcp.stop()  # after the lanes: no turn is left calling a tool
        for agent in (*self._retired_agents, self.agent):
            await agent.close()
        self._retired_agents.clear()
        self._started = False

    async def start_channel(self, name: str) -> None:
        await self.lifecycle.start(name)

    async def stop_channel(self, name: str) -> None:
        await self.lifecycle.stop(name)

    async def replace_agent(self, agent: Agent) -> None:
        """New providers or settings take effect with the next turn; turns already running
        finish on the old agent, which is closed when the gateway stops."""
        self._retired_agents.append(self.agent)
        self.agent = agent
        self.channel_log("gateway", "info", "assistant settings applied")

    async def apply_channel(self, entry: ChannelEntry) -> None:
        """(Re)start a channel with a new config, without touching the others."""
        await self.lifecycle.apply(entry)
        if self.supervisor is not None:
            self.supervisor.reset(entry.name)

    async def remove_channel(self, name: str) -> None:
        if await self.lifecycle.remove(name) and self.supervisor is not None:
            self.supervisor.reset(name)

    async def restart_channel(self, name: str, reason: str, *,
                              still_needed: Callable[[], str | None] | None = None) -> None:
        """Stop and start the channel (under its lifecycle lock, like every start and stop);
        ``still_needed`` lets the supervisor re-check its reason once the lock is held."""
        await self.lifecycle.restart(name, reason, still_needed)

    async def resume_unfinished(self, channel: str | None = None) -> None:
        await self.intake.resume_unfinished(channel)

    async def retry(self, message_id: int) -> bool:
        if await self.scheduler.owns(message_id):
            return await self.scheduler.retry(message_id)
        return await self.intake.retry(message_id)

    async def webhook(self, name: str, request: WebhookRequest) -> WebhookResponse:
        """Route a webhook request to its channel; the connector verifies it before parsing
        (and reports the traffic with ``ctx.heartbeat``, as it does for every transport)."""
        rt = self.channels.get(name)
        if rt is None or rt.connector is None:
            return WebhookResponse(404, "no running channel by that name")
        try:
            return await rt.connector.handle_webhook(request)
        except Exception as exc:  # noqa: BLE001 - a bad request must not take the server down
            self.channel_log(name, "error", f"webhook handler failed: {exc!r}")
            return WebhookResponse(500, "internal error")

    # ---- the flow --------------------------------------------------------------------------
    def _connector(self, channel: str) -> Connector | None:
        rt = self.channels.get(channel)
        return rt.connector if rt is not None else None

    def _store_outage(self, error: str | None) -> None:
        """SQLite is refusing writes (or works again): say so where people look."""
        if error is not None:
            message = (f"database writes are failing ({error}); incoming messages are held "
                       "and retried, nothing is acknowledged until it is stored")
            _log.error("%s", message)
            self.emit(EventKind.LOG, "database", level="error", message=message)
        else:
            _log.warning("database writes work again")
            self.emit(EventKind.LOG, "database", level="info",
                      message="database writes work again")

    # ---- events and logs -------------------------------------------------------------------
    def set_state(self, name: str, state: ChannelState, reason: str = "") -> None:
        rt = self.channels.get(name)
        reason = redactor(reason)
        changed = rt is None or rt.state != state
        if rt is not None:
            if rt.state == state and rt.reason == reason:
                return
            rt.state, rt.reason = state, reason
            if state in (ChannelState.OFFLINE, ChannelState.DEGRADED) and reason:
                rt.last_error = reason
        if changed:  # kept in the channel log: the health history reads it back (control.health)
            said = f": {reason}" if reason and reason != state.value else ""
            self.channel_log(name, "info", f"state {state.value}{said}", kind="state",
                             state=state.value, reason=reason)
        self.emit(EventKind.CHANNEL_STATE, name, state=state.value, reason=reason)

    def channel_log(self, channel: str, level: str, message: str, **data: Any) -> None:
        message = redactor(message)
        self.store.logs.append(channel, level, message, data or None)
        logging.getLogger(f"pyclaw.channel.{channel}").log(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO), "%s", message)
        self.emit(EventKind.LOG, channel, level=level, message=message)

    def emit(self, kind: EventKind, channel: str, **data: Any) -> None:
        self.bus.publish(Event(kind, channel, data))

    def runtime_rows(self) -> list[ChannelRuntime]:
        return list(self.channels.values())


def _entry_differs(a: ChannelEntry, b: ChannelEntry) -> bool:
    if a.type != b.type or (a.config is None) != (b.config is None):
        return True
    if a.config is None or b.config is None:
        return str(a.error) != str(b.error)
    return a.config != b.config
