"""Owns the connectors' lifecycle and wires the flow of design.md §1.

platform -> connector -> Inbound -> journal -> lane -> agent -> Outbound -> connector,
with an Event on the bus for every step. The gateway keeps no message state of
its own: everything it needs after a crash is in the journal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from connectors import registry
from connectors.base import Connector, ConnectorSpec, SubmitResult, split_text
from pyclaw_app.agent import Agent, CallRecord, Reply, TurnHooks, user_notice
from pyclaw_app.backoff import Backoff
from pyclaw_app.bus import Bus
from pyclaw_app.config import ChannelEntry, Config
from pyclaw_app.errors import (
    ConnectorError,
    DeliveryUncertain,
    FatalConnectorError,
    ProviderError,
    RetryableError,
)
from pyclaw_app.lanes import Lanes
from pyclaw_app.model import (
    ChannelState,
    Event,
    EventKind,
    Inbound,
    MessageStatus,
    Outbound,
)
from pyclaw_app.policy import AccessPolicy
from pyclaw_app.secrets import redactor
from pyclaw_app.store import Store
from pyclaw_app.streaming import DraftStream
from pyclaw_app.supervisor import Supervisor

__all__ = ["ChannelRuntime", "Gateway"]

_log = logging.getLogger(__name__)

T = TypeVar("T")
TYPING_DELAY = 1.0
TYPING_INTERVAL = 4.0
STREAM_INTERVAL = 1.0
"""Seconds between edits of a streamed draft: live to a reader, gentle on rate limits."""
MAX_INBOUND_CHARS = 32_000
"""Longer texts (a pasted 1 MB log) are cut before journal and LLM; the reply says so."""
STOP_TIMEOUT = 10.0
SEND_ATTEMPTS = 4


@dataclass
class _Custody:
    """The reply's journal row, once one exists (a streamed draft creates it early)."""

    out_id: int | None = None


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
    _ctx: _ChannelContext | None = field(default=None, repr=False)


class _ChannelContext:
    """The ConnectorContext the gateway hands to one connector."""

    def __init__(self, gateway: Gateway, runtime: ChannelRuntime) -> None:
        self._gateway = gateway
        self._runtime = runtime
        self._log = logging.getLogger(f"pyclaw.channel.{runtime.name}")

    @property
    def channel(self) -> str:
        return self._runtime.name

    async def submit(self, inbound: Inbound) -> SubmitResult:
        return await self._gateway.accept(inbound)

    def log(self, level: str, message: str, **data: Any) -> None:
        self._gateway.channel_log(self._runtime.name, level, message, **data)

    def set_state(self, state: ChannelState, reason: str = "") -> None:
        self._gateway.set_state(self._runtime.name, state, reason)

    def heartbeat(self) -> None:
        self._runtime.last_heartbeat = self._gateway.clock()

    def commands(self) -> list[tuple[str, str]]:
        return self._gateway.agent.commands()


class Gateway:
    def __init__(self, config: Config, store: Store, bus: Bus | None = None, *,
                 agent: Agent | None = None, clock: Callable[[], float] = time.monotonic,
                 supervise: bool = True) -> None:
        self.config = config
        self.clock = clock
        self.store = store
        self.bus = bus or Bus()
        self.lanes = Lanes(config.agent.max_concurrent_llm)
        self.agent = agent or Agent.from_config(config, store)
        self.policy = AccessPolicy(store.access)
        self.channels: dict[str, ChannelRuntime] = {}
        self.supervisor = Supervisor(self) if supervise else None
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
        for name, entry in self.config.channels.items():
            try:
                spec = registry.get_spec(entry.type)
            except KeyError:
                spec = None
            self.channels[name] = ChannelRuntime(name, entry.type, spec, entry)
        await asyncio.gather(*(self.start_channel(n) for n in self.channels))
        await self.resume_unfinished()
        if self.supervisor is not None:
            self.supervisor.start()

    async def stop(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop()
        await asyncio.gather(*(self.stop_channel(n) for n in list(self.channels)))
        await self.lanes.close()
        for agent in (*self._retired_agents, self.agent):
            await agent.close()
        self._retired_agents.clear()
        self._started = False

    async def start_channel(self, name: str) -> None:
        rt = self.channels[name]
        entry = rt.entry
        if entry.config is None:
            reason = str(entry.error) if entry.error else "invalid config"
            self.set_state(name, ChannelState.OFFLINE, reason)
            rt.last_error = reason
            self.channel_log(name, "error", f"not started: {reason}")
            return
        if not entry.config.enabled:
            self.set_state(name, ChannelState.DISABLED, "disabled in config")
            return
        self.set_state(name, ChannelState.CONNECTING, "starting")
        rt.fatal = False
        try:
            cls = registry.connector_class(entry.type)
            rt.connector = cls(name, entry.config)
            rt._ctx = _ChannelContext(self, rt)
            await rt.connector.start(rt._ctx)
        except Exception as exc:  # noqa: BLE001 - any start failure is this channel's alone
            fatal = rt.fatal = isinstance(exc, FatalConnectorError)
            message = redactor(f"failed to start: {exc}")
            rt.last_error = message
            self.channel_log(name, "error", message, fatal=fatal)
            self.set_state(name, ChannelState.OFFLINE, message)
            if rt.connector is not None:
                with contextlib.suppress(Exception):
                    await rt.connector.stop()
            rt.connector = None
            return
        rt.last_heartbeat = self.clock()  # a fresh start gets a full liveness window
        self.channel_log(name, "info", "started")

    async def stop_channel(self, name: str) -> None:
        """Stop a channel; one whose ``stop()`` hangs is abandoned after ``stop_timeout``."""
        timeout = self.stop_timeout
        rt = self.channels[name]
        if rt.connector is None:
            return
        connector, rt.connector = rt.connector, None
        task = asyncio.create_task(connector.stop(), name=f"stop:{name}")
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()  # not awaited: a stop() that ignores cancellation must not hang us
            self.channel_log(name, "warning", f"stop() did not finish within {timeout:.0f}s; "
                             "the connector was abandoned")
        elif task.exception() is not None:
            self.channel_log(name, "warning",
                             f"stop did not finish cleanly: {task.exception()!r}")
        self.set_state(name, ChannelState.STOPPED, "stopped")

    async def replace_agent(self, agent: Agent) -> None:
        """New providers or settings take effect with the next turn; turns already running
        finish on the old agent, which is closed when the gateway stops."""
        self._retired_agents.append(self.agent)
        self.agent = agent
        self.channel_log("gateway", "info", "assistant settings applied")

    async def apply_channel(self, entry: ChannelEntry) -> None:
        """(Re)start a channel with a new config, without touching the others."""
        if entry.name in self.channels:
            await self.stop_channel(entry.name)
        try:
            spec = registry.get_spec(entry.type)
        except KeyError:
            spec = None
        old = self.channels.get(entry.name)
        rt = ChannelRuntime(entry.name, entry.type, spec, entry)
        if old is not None:
            rt.last_message_ts = old.last_message_ts
        self.channels[entry.name] = rt
        if self.supervisor is not None:
            self.supervisor.reset(entry.name)
        self.channel_log(entry.name, "info", "configuration applied")
        await self.start_channel(entry.name)
        await self.resume_unfinished(entry.name)

    async def remove_channel(self, name: str) -> None:
        if name in self.channels:
            await self.stop_channel(name)
            del self.channels[name]
            if self.supervisor is not None:
                self.supervisor.reset(name)
            self._emit(EventKind.CHANNEL_STATE, name, state="removed", reason="")

    async def restart_channel(self, name: str, reason: str) -> None:
        self.channel_log(name, "warning", f"restarting: {reason}")
        await self.stop_channel(name)
        await self.start_channel(name)
        await self.resume_unfinished(name)

    async def resume_unfinished(self, channel: str | None = None) -> None:
        """Pick up journal rows a crash left open, without answering anything twice."""
        for row in await self.store.journal.unfinished():
            if channel is not None and row.channel != channel:
                continue
            if self.lanes.has_job(row.id):
                continue
            rt = self.channels.get(row.channel)
            if rt is None or rt.connector is None:
                continue  # resumed when that channel next starts with the gateway
            reply = await self.store.journal.reply_of(row.id)
            if reply is not None and reply.status == MessageStatus.SENT:
                await self.store.journal.set_status(row.id, MessageStatus.REPLIED)
                continue
            if reply is not None and reply.status == MessageStatus.PENDING:
                error = ("interrupted while sending the reply; it may or may not have been "
                         "delivered, so it is not sent again")
                await self._reply_failed(row.channel, row.chat, row.id, reply.id, error,
                                         uncertain=True)
                continue
            self.channel_log(row.channel, "info", f"resuming message {row.id} after restart")
            self._enqueue(row.id, row.to_inbound())

    async def retry(self, message_id: int) -> bool:
        """Answer a failed message again (the user or the UI asked for it)."""
        row = await self.store.journal.get(message_id)
        if row is None or row.direction != "in" or row.status != MessageStatus.FAILED:
            return False
        await self.store.journal.set_status(row.id, MessageStatus.RECEIVED)
        self._enqueue(row.id, row.to_inbound())
        return True

    async def webhook(self, name: str, headers: Mapping[str, str], body: bytes) -> tuple[int, str]:
        """Route a webhook request to its channel; the connector verifies it before parsing."""
        rt = self.channels.get(name)
        handler = getattr(rt.connector, "handle_webhook", None) if rt is not None else None
        if handler is None:
            return 404, "no running webhook channel by that name"
        try:
            status, text = await handler(headers, body)
        except Exception as exc:  # noqa: BLE001 - a bad request must not take the server down
            self.channel_log(name, "error", f"webhook handler failed: {exc!r}")
            return 500, "internal error"
        if status < 300 and rt is not None:
            rt.last_heartbeat = time.time()
        return status, text

    # ---- the flow --------------------------------------------------------------------------
    async def accept(self, inbound: Inbound) -> SubmitResult:
        """ctx.submit(): journal first, then hand to the conversation's lane.

        Returns once the message is stored and the backlog has room (``Lanes.wait_for_room``).
        """
        if len(inbound.text) > MAX_INBOUND_CHARS:
            inbound = replace(inbound, text=inbound.text[:MAX_INBOUND_CHARS],
                              truncated_from=len(inbound.text))
        result = await self.store.journal.submit(inbound)
        channel = inbound.address.channel
        rt = self.channels.get(channel)
        if rt is not None:
            rt.last_message_ts = time.time()
        if result.duplicate:
            self._emit(EventKind.MESSAGE_DUPLICATE, channel, id=result.journal_id,
                       platform_id=inbound.platform_id)
            return result
        a = inbound.address
        self._emit(EventKind.MESSAGE_RECEIVED, channel, id=result.journal_id, chat=a.chat,
                   thread=a.thread, sender=inbound.sender_name or inbound.sender_id,
                   text=inbound.text, ts=inbound.ts)
        self._enqueue(result.journal_id, inbound)
        await self.lanes.wait_for_room()  # backpressure: the connector fetches no more till then
        return result

    def _enqueue(self, journal_id: int, inbound: Inbound) -> None:
        self.lanes.submit(inbound.address.key, lambda: self._process(journal_id, inbound),
                          job_id=journal_id)

    async def _process(self, journal_id: int, inbound: Inbound) -> None:
        channel = inbound.address.channel
        rt = self.channels.get(channel)
        if rt is None or rt.connector is None:
            # Stays 'received' in the journal: resumed when the channel runs again.
            self.channel_log(channel, "warning",
                             f"message {journal_id} waits: channel is not running")
            return
        connector = rt.connector
        if not inbound.text.strip() and not inbound.attachments:
            await self.store.journal.set_status(journal_id, MessageStatus.SKIPPED,
                                                "empty message")
            self.channel_log(channel, "info", f"message {journal_id} skipped: empty message")
            self._emit(EventKind.MESSAGE_SKIPPED, channel, id=journal_id, reason="empty message")
            return
        config = rt.entry.config
        verdict = await self.policy.check(inbound, config) if config is not None else None
        if verdict is not None and not verdict.allowed:
            self.channel_log(channel, "info", f"message {journal_id} not answered: "
                             f"{verdict.reason}", sender=inbound.sender_id)
            if verdict.notice:
                await self._send_notice(connector, journal_id, inbound, verdict.notice,
                                        verdict.reason, MessageStatus.SKIPPED)
            else:
                await self.store.journal.set_status(journal_id, MessageStatus.SKIPPED,
                                                    verdict.reason)
            self._emit(EventKind.MESSAGE_SKIPPED, channel, id=journal_id, reason=verdict.reason)
            return
        self.store.journal.mark_processing(journal_id)
        self._emit(EventKind.MESSAGE_PROCESSING, channel, id=journal_id)
        received_at = time.time()
        custody = _Custody()
        stream = (self._draft_stream(connector, journal_id, inbound, custody)
                  if connector.spec.capabilities.edit and config is not None
                  and config.stream_replies else None)
        try:
            reply = await self._ask_agent(connector, journal_id, inbound, stream)
        except ProviderError as exc:
            await self._answer_failure(connector, journal_id, inbound, exc, stream, custody)
            return
        await self._deliver(connector, journal_id, inbound, reply.text, received_at, stream,
                            custody)

    def _draft_stream(self, connector: Connector, journal_id: int, inbound: Inbound,
                      custody: _Custody) -> DraftStream:
        """A live draft of the reply; its out row is recorded (pending) before the draft goes."""
        address = inbound.address

        async def open_draft(text: str) -> str:
            if custody.out_id is None:
                custody.out_id = await self.store.journal.add_outbound(journal_id, address, text)
            ids = await self._send_with_retries(connector, Outbound(
                address, text, reply_to=inbound.platform_id, journal_id=custody.out_id))
            return ids[0]

        async def edit(draft_id: str, text: str) -> None:
            current = self.channels[address.channel].connector
            if current is None:
                raise RetryableError(f"channel {address.channel} is restarting")
            await current.edit(address, draft_id, text)

        limits = connector.spec.limits
        return DraftStream(open_draft=open_draft, edit=edit, limit=limits.max_text,
                           length=limits.text_length, interval=self.stream_interval,
                           name=f"{address.channel}:{journal_id}")

    async def _ask_agent(self, connector: Connector, journal_id: int, inbound: Inbound,
                         stream: DraftStream | None) -> Reply:
        channel = inbound.address.channel
        answered = asyncio.Event()
        typing: list[asyncio.Task[None]] = []
        typing_timer: asyncio.TimerHandle | None = None
        if connector.spec.capabilities.typing:
            # A timer, not a task waiting out TYPING_DELAY: most answers come sooner, and
            # two tasks per message were measurable under load (bench/RESULTS.md, section 4).
            typing_timer = asyncio.get_running_loop().call_later(
                TYPING_DELAY, lambda: typing.append(asyncio.create_task(
                    self._keep_typing(connector, inbound, answered),
                    name=f"typing:{channel}:{journal_id}")))

        def on_delta(delta: str) -> None:
            if stream is not None:
                stream.feed(delta)
            self._emit(EventKind.REPLY_DELTA, channel, id=journal_id, chat=inbound.address.chat,
                       delta=delta)

        def on_call(call: CallRecord) -> None:
            self._emit(EventKind.LLM_CALL, channel, id=journal_id, provider=call.provider,
                       model=call.model, input_tokens=call.input_tokens,
                       output_tokens=call.output_tokens, latency_ms=round(call.latency_ms, 1),
                       error=redactor(call.error) if call.error else None)

        def on_log(level: str, message: str) -> None:
            self.channel_log(channel, level, f"message {journal_id}: {message}")

        def on_restart() -> None:
            if stream is not None:
                stream.reset()
            self._emit(EventKind.REPLY_RESET, channel, id=journal_id, chat=inbound.address.chat)

        try:
            async with self.lanes.llm_slots:
                return await self.agent.reply(inbound, journal_id,
                                              TurnHooks(on_delta, on_call, on_log, on_restart))
        finally:
            if typing_timer is not None:
                typing_timer.cancel()
            answered.set()  # not cancel(): see _keep_typing
            for task in typing:
                await task

    async def _keep_typing(self, connector: Connector, inbound: Inbound,
                           answered: asyncio.Event) -> None:
        """Show "typing" now and every TYPING_INTERVAL until ``answered``.

        Started TYPING_DELAY after the message, so an answer within the first second
        shows no indicator at all. Stopped by the event, never cancelled: a connector's
        HTTP request cancelled mid-flight is not safe in every client library (httpcore
        1.0 leaks the pool slot, encode/httpcore#1093, which once wedged Telegram's pool).
        """
        while not answered.is_set():
            try:
                await connector.typing(inbound.address)
            except Exception as exc:  # noqa: BLE001 - a typing indicator is never worth failing for
                _log.debug("typing indicator failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(answered.wait(), TYPING_INTERVAL)

    async def _answer_failure(self, connector: Connector, journal_id: int, inbound: Inbound,
                              error: ProviderError, stream: DraftStream | None,
                              custody: _Custody) -> None:
        channel = inbound.address.channel
        detail = redactor(str(error))
        self.channel_log(channel, "error", f"message {journal_id}: LLM call failed: {detail}",
                         provider=error.provider, status=error.status)
        notice = user_notice(error)
        draft = await stream.finish() if stream is not None else None
        if draft is not None and custody.out_id is not None:
            try:  # the partial answer the user saw becomes the notice
                await self._edit_with_retries(connector, inbound, draft, notice)
            except ConnectorError:
                pass
            else:
                await self.store.journal.close_with_notice(custody.out_id, journal_id, [draft],
                                                           detail, MessageStatus.FAILED)
                self._emit(EventKind.MESSAGE_FAILED, channel, id=journal_id,
                           chat=inbound.address.chat, error=detail, notice=notice)
                return
        await self._send_notice(connector, journal_id, inbound, notice, detail,
                                MessageStatus.FAILED)
        self._emit(EventKind.MESSAGE_FAILED, channel, id=journal_id, chat=inbound.address.chat,
                   error=detail, notice=notice)

    async def _send_notice(self, connector: Connector, journal_id: int, inbound: Inbound,
                           notice: str, reason: str, status: MessageStatus) -> None:
        """Tell the sender why there is no answer; the inbound row closes as ``status``."""
        out_id = await self.store.journal.add_outbound(journal_id, inbound.address, notice)
        try:
            ids = await self._send_with_retries(connector, Outbound(
                inbound.address, notice, reply_to=inbound.platform_id, journal_id=out_id))
        except ConnectorError as exc:
            await self.store.journal.fail_reply(out_id, journal_id,
                                                f"{reason}; notice not delivered: {exc}")
            if status != MessageStatus.FAILED:
                await self.store.journal.set_status(journal_id, status, reason)
        else:
            await self.store.journal.close_with_notice(out_id, journal_id, ids, reason, status)

    async def _deliver(self, connector: Connector, journal_id: int, inbound: Inbound, text: str,
                       received_at: float, stream: DraftStream | None,
                       custody: _Custody) -> None:
        channel = inbound.address.channel
        if inbound.truncated_from:
            self.channel_log(channel, "warning", f"message {journal_id} was "
                             f"{inbound.truncated_from:,} characters; only the first "
                             f"{len(inbound.text):,} were read")
            text = (f"(Your message was {inbound.truncated_from:,} characters long; I read only "
                    f"the first {len(inbound.text):,}.)\n\n{text}")
        draft = await stream.finish() if stream is not None else None
        out_id = custody.out_id
        if out_id is None:
            out_id = await self.store.journal.add_outbound(journal_id, inbound.address, text)
        try:
            ids = None
            if draft is not None:
                ids = await self._finish_draft(connector, inbound, draft, text, out_id)
            if ids is None:
                ids = await self._send_with_retries(connector, Outbound(
                    inbound.address, text, reply_to=inbound.platform_id, journal_id=out_id))
        except ConnectorError as exc:
            await self._reply_failed(channel, inbound.address.chat, journal_id, out_id,
                                     redactor(str(exc)),
                                     uncertain=isinstance(exc, DeliveryUncertain))
            return
        await self.store.journal.complete_reply(out_id, journal_id, ids, text)
        latency = (time.time() - inbound.ts) * 1000
        self._emit(EventKind.REPLY_SENT, channel, id=out_id, reply_to_id=journal_id,
                   chat=inbound.address.chat, thread=inbound.address.thread, text=text,
                   latency_ms=round(latency, 1),
                   processing_ms=round((time.time() - received_at) * 1000, 1))

    async def _reply_failed(self, channel: str, chat: str, inbound_id: int, out_id: int,
                            detail: str, *, uncertain: bool) -> None:
        """Close a reply that did not go out (``send failed``) or may have (``uncertain``:
        never sent again); the journal, the channel log and the UI all say which."""
        error = f"uncertain: {detail}" if uncertain else f"send failed: {detail}"
        await self.store.journal.fail_reply(out_id, inbound_id, error)
        if uncertain:
            self.channel_log(channel, "warning", f"message {inbound_id}: {detail}")
        else:
            self.channel_log(channel, "error",
                             f"message {inbound_id}: reply not delivered: {detail}")
        self._emit(EventKind.MESSAGE_FAILED, channel, id=inbound_id, chat=chat, error=error)

    async def _finish_draft(self, connector: Connector, inbound: Inbound, draft: str,
                            text: str, out_id: int) -> list[str] | None:
        """Turn the draft into the final reply: edit in the first part, send the rest.

        Returns None when the draft cannot take the final text (the caller then sends the
        whole reply as new messages, so the user always gets it complete).
        """
        limits = connector.spec.limits
        parts = split_text(text, limits.max_text, limits.text_length)
        try:
            await self._edit_with_retries(connector, inbound, draft, parts[0])
        except ConnectorError as exc:
            self.channel_log(inbound.address.channel, "warning",
                             f"could not finish the live draft ({exc}); sending the reply anew")
            return None
        rest = "".join(parts[1:])
        if not rest:
            return [draft]
        return [draft, *await self._send_with_retries(connector, Outbound(
            inbound.address, rest, reply_to=None, journal_id=out_id))]

    async def _edit_with_retries(self, connector: Connector, inbound: Inbound, draft: str,
                                 text: str) -> None:
        async def edit(current: Connector) -> None:
            await current.edit(inbound.address, draft, text)

        await self._retrying(connector.name, edit, "edit")

    async def _send_with_retries(self, connector: Connector, outbound: Outbound) -> list[str]:
        async def send(current: Connector) -> list[str]:
            return await current.send(outbound)

        return await self._retrying(connector.name, send, "send")

    async def _retrying(self, name: str, action: Callable[[Connector], Awaitable[T]],
                        what: str) -> T:
        """Retry transient failures; raise ConnectorError when it cannot be done.

        Each attempt uses the channel's *current* connector, so a reply survives the
        supervisor restarting the channel underneath it.
        """
        backoff = Backoff(base=0.5, cap=30)
        for attempt in range(1, SEND_ATTEMPTS + 1):
            rt = self.channels.get(name)
            current = rt.connector if rt is not None else None
            try:
                if current is None:
                    raise RetryableError(f"channel {name} is restarting")
                return await action(current)
            except FatalConnectorError:
                raise
            except RetryableError as exc:
                if attempt == SEND_ATTEMPTS:
                    raise
                delay = backoff.next_delay(exc.retry_after or 0.0)
                self.channel_log(name, "warning", f"{what} failed ({exc}); retrying in "
                                 f"{delay:.1f}s")
                await asyncio.sleep(delay)
            except ConnectorError:
                raise
            except Exception as exc:
                raise ConnectorError(f"{type(exc).__name__}: {exc}") from exc
        raise ConnectorError(f"{what} failed")  # unreachable: the loop returns or raises

    def _store_outage(self, error: str | None) -> None:
        """SQLite is refusing writes (or works again): say so where people look."""
        if error is not None:
            message = (f"database writes are failing ({error}); incoming messages are held "
                       "and retried, nothing is acknowledged until it is stored")
            _log.error("%s", message)
            self._emit(EventKind.LOG, "database", level="error", message=message)
        else:
            _log.warning("database writes work again")
            self._emit(EventKind.LOG, "database", level="info",
                       message="database writes work again")

    # ---- events and logs -------------------------------------------------------------------
    def set_state(self, name: str, state: ChannelState, reason: str = "") -> None:
        rt = self.channels.get(name)
        reason = redactor(reason)
        if rt is not None:
            if rt.state == state and rt.reason == reason:
                return
            rt.state, rt.reason = state, reason
            if state in (ChannelState.OFFLINE, ChannelState.DEGRADED) and reason:
                rt.last_error = reason
        self._emit(EventKind.CHANNEL_STATE, name, state=state.value, reason=reason)

    def channel_log(self, channel: str, level: str, message: str, **data: Any) -> None:
        message = redactor(message)
        self.store.logs.append(channel, level, message, data or None)
        logging.getLogger(f"pyclaw.channel.{channel}").log(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO), "%s", message)
        self._emit(EventKind.LOG, channel, level=level, message=message)

    def _emit(self, kind: EventKind, channel: str, **data: Any) -> None:
        self.bus.publish(Event(kind, channel, data))

    def runtime_rows(self) -> list[ChannelRuntime]:
        return list(self.channels.values())
