"""An in-memory ControlPlane for view tests and the fake-backed browser server.

It behaves like the real one where views can tell: bounded subscriptions that
drop the oldest events and count them, chat_send answered by events, and a
journal of traffic rows that recent_traffic/chat_history read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from pyclaw_app.control import (
    ChannelHealth,
    ChannelStatus,
    ChannelType,
    Counters,
    LogRow,
    McpServerRow,
    McpServers,
    ProviderHealth,
    ScheduleRow,
    StateSpan,
    TrafficRow,
)
from pyclaw_app.control.admin import channel_types
from pyclaw_app.control.health import build_health, record_log, record_state
from pyclaw_app.control.mcp import form_schema
from pyclaw_app.control.schedules import explain
from pyclaw_app.model import Event, EventKind
from pyclaw_app.schedules import ScheduleError, When, action_of, check_body, missed_of, when_of

__all__ = ["FakeControlPlane", "FakeSubscription"]


class FakeSubscription:
    def __init__(self, maxsize: int, on_close: Callable[[FakeSubscription], None]) -> None:
        self._queue: deque[Event] = deque()
        self._maxsize = maxsize
        self._dropped = 0
        self._wakeup = asyncio.Event()
        self._on_close = on_close
        self.closed = False

    @property
    def dropped(self) -> int:
        return self._dropped

    def put(self, event: Event) -> None:
        if self.closed:
            return
        if len(self._queue) >= self._maxsize:
            self._queue.popleft()
            self._dropped += 1
        self._queue.append(event)
        self._wakeup.set()

    async def __aiter__(self) -> AsyncIterator[Event]:
        while not self.closed:
            for event in await self.get_batch():
                yield event

    async def get_batch(self, max_items: int = 500, timeout: float | None = None) -> list[Event]:
        if not self._queue and not self.closed:
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout)
            except TimeoutError:
                return []
        batch = []
        while self._queue and len(batch) < max_items:
            batch.append(self._queue.popleft())
        return batch

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wakeup.set()
            self._on_close(self)


class FakeControlPlane:
    """Implements pyclaw_app.control.ControlPlane in memory."""

    def __init__(self, channels: list[ChannelStatus] | None = None, *,
                 config_errors: list[str] | None = None,
                 reply: Callable[[str], str] | None = lambda text: f"echo: {text}",
                 fail_with: str | None = None) -> None:
        self.channel_list = list(channels or [])
        self.errors = list(config_errors or [])
        self.reply = reply
        self.fail_with = fail_with
        self.rows: list[TrafficRow] = []
        self.counters = Counters()
        self.subscriptions: list[FakeSubscription] = []
        self.sent: list[tuple[str, str]] = []
        self.resets: list[str] = []
        self.health: dict[str, ChannelHealth] = {}
        """Seeded per-channel history; a channel without one has an empty day."""
        self.providers: dict[str, ProviderHealth] = {}
        self.mcp_rows: list[McpServerRow] = []
        """Configured MCP servers as mcp_servers() lists them (the admin fake saves here)."""
        self.clock: Callable[[], float] = time.time
        self._ids = itertools.count(1)
        self.jobs: dict[int, ScheduleRow] = {}
        """Scheduled jobs by id, checked by the real rules (pyclaw_app.schedules)."""
        self._job_ids = itertools.count(1)

    # -- driving the fake from a test ------------------------------------------------------

    def publish(self, event: Event) -> None:
        for sub in list(self.subscriptions):
            sub.put(event)

    def receive(self, channel: str, chat: str, sender: str, text: str,
                ts: float | None = None) -> Event:
        """A message arrives on a channel: journal it and publish MESSAGE_RECEIVED."""
        ts = time.time() if ts is None else ts
        row = TrafficRow(id=next(self._ids), ts=ts, direction="in", channel=channel, chat=chat,
                         sender=sender, text=text, status="received")
        self.rows.append(row)
        self._count("inbound")
        event = Event(EventKind.MESSAGE_RECEIVED, channel,
                      {"id": row.id, "chat": chat, "thread": None, "sender": sender,
                       "text": text, "ts": ts}, ts=ts)
        self.publish(event)
        return event

    def answer(self, inbound: Event, text: str, latency_ms: float = 120.0) -> Event:
        row = TrafficRow(id=next(self._ids), ts=time.time(), direction="out",
                         channel=inbound.channel, chat=inbound.data["chat"], sender="assistant",
                         text=text, status="sent", reply_to_id=inbound.data["id"],
                         latency_ms=latency_ms)
        self.rows.append(row)
        self._count("outbound")
        event = Event(EventKind.REPLY_SENT, inbound.channel,
                      {"id": row.id, "reply_to_id": inbound.data["id"], "chat": row.chat,
                       "thread": None, "text": text, "latency_ms": latency_ms})
        self.publish(event)
        return event

    def fail(self, inbound: Event, error: str) -> Event:
        event = Event(EventKind.MESSAGE_FAILED, inbound.channel,
                      {"id": inbound.data["id"], "error": error, "chat": inbound.data["chat"]})
        self.rows.append(TrafficRow(id=next(self._ids), ts=event.ts, direction="in",
                                    channel=inbound.channel, chat=inbound.data["chat"],
                                    sender=inbound.data["sender"], text=inbound.data["text"],
                                    status="failed", error=error))
        self._count("failed")
        self.publish(event)
        return event

    def delta(self, inbound: Event, text: str) -> Event:
        """The model wrote ``text`` more of its reply to ``inbound`` (REPLY_DELTA)."""
        event = Event(EventKind.REPLY_DELTA, inbound.channel,
                      {"id": inbound.data["id"], "chat": inbound.data["chat"], "delta": text})
        self.publish(event)
        return event

    def restart(self, inbound: Event) -> Event:
        """The text streamed so far for ``inbound`` was discarded (REPLY_RESET)."""
        event = Event(EventKind.REPLY_RESET, inbound.channel,
                      {"id": inbound.data["id"], "chat": inbound.data["chat"]})
        self.publish(event)
        return event

    def set_state(self, name: str, state: str, reason: str = "",
                  ts: float | None = None) -> Event:
        """A channel changes state: its status, its history and a CHANNEL_STATE event."""
        ts = self.clock() if ts is None else ts
        problem = state in ("offline", "degraded") and bool(reason)
        self.channel_list = [
            dataclasses.replace(c, state=state, reason=reason,
                                last_error=reason if problem else c.last_error)
            if c.name == name else c for c in self.channel_list]
        self.health[name] = record_state(self._health(name, ts), ts, state, reason)
        event = Event(EventKind.CHANNEL_STATE, name, {"state": state, "reason": reason}, ts=ts)
        self.publish(event)
        return event

    def log_line(self, channel: str, level: str, message: str, ts: float | None = None
                 ) -> Event:
        """A channel-log line as a LOG event; errors and warnings count in its history."""
        ts = self.clock() if ts is None else ts
        self.health[channel] = record_log(self._health(channel, ts), ts, level)
        event = Event(EventKind.LOG, channel, {"level": level, "message": message}, ts=ts)
        self.publish(event)
        return event

    def seed_health(self, channel: str, spans: list[StateSpan],
                    counts: dict[float, tuple[int, int]], changes: int = 0) -> ChannelHealth:
        health = build_health(channel, self.clock(), 24, spans, counts, changes)
        self.health[channel] = health
        return health

    def llm_call(self, provider: str, error: str | None = None) -> Event:
        """A provider call (LLM_CALL); its outcome is the provider's health."""
        ts = self.clock()
        old = self.providers.get(provider, ProviderHealth(provider, "idle"))
        self.providers[provider] = ProviderHealth(
            provider, "failing" if error else "ok", error or "", ts, old.calls + 1,
            old.errors + (1 if error else 0))
        event = Event(EventKind.LLM_CALL, "local", {"provider": provider, "model": "m",
                                                    "error": error}, ts=ts)
        self.publish(event)
        return event

    def _health(self, channel: str, now: float) -> ChannelHealth:
        return self.health.get(channel) or build_health(channel, now, 24, [], {}, 0)

    def _count(self, field: str) -> None:
        self.counters = dataclasses.replace(self.counters,
                                            **{field: getattr(self.counters, field) + 1})

    # -- the ControlPlane protocol ------------------------------------------------------------

    def subscribe(self, maxsize: int = 2000) -> FakeSubscription:
        sub = FakeSubscription(maxsize, self.subscriptions.remove)
        self.subscriptions.append(sub)
        return sub

    async def recent_traffic(self, limit: int = 200, channel: str | None = None
                             ) -> list[TrafficRow]:
        rows = [r for r in self.rows if channel is None or r.channel == channel]
        return list(reversed(rows[-limit:]))

    async def counters_today(self) -> Counters:
        return self.counters

    async def channels(self) -> list[ChannelStatus]:
        return list(self.channel_list)

    async def channel_health(self, channel: str | None = None, hours: int = 24
                             ) -> list[ChannelHealth]:
        now = self.clock()
        return [self._health(c.name, now) for c in self.channel_list
                if channel in (None, c.name)]

    async def provider_health(self) -> list[ProviderHealth]:
        return list(self.providers.values())

    async def logs(self, *, channel: str | None = None, level: str | None = None,
                   search: str | None = None, before_id: int | None = None,
                   limit: int = 100) -> list[LogRow]:
        return []

    async def chat_send(self, text: str, chat: str = "app") -> None:
        self.sent.append((chat, text))
        inbound = self.receive("local", chat, "you", text)
        if self.fail_with is not None:
            self.fail(inbound, self.fail_with)
        elif self.reply is not None:
            self.answer(inbound, self.reply(text))

    async def mcp_servers(self) -> McpServers:
        return McpServers(tuple(self.mcp_rows), form_schema())

    async def chat_history(self, chat: str = "app", limit: int = 100) -> list[TrafficRow]:
        rows = [r for r in self.rows if r.channel == "local" and r.chat == chat]
        return rows[-limit:]

    async def chat_reset(self, chat: str = "app") -> None:
        self.resets.append(chat)
        self.rows = [r for r in self.rows if not (r.channel == "local" and r.chat == chat)]

    def config_errors(self) -> list[str]:
        return list(self.errors)

    def channel_types(self) -> list[ChannelType]:
        return channel_types()  # the registry's, as the local plane lists them

    # -- scheduled jobs: in memory, by the rules the real plane applies -------------------------

    async def schedules(self, channel: str | None = None) -> list[ScheduleRow]:
        return [j for j in self.jobs.values() if channel in (None, j.channel)]

    async def explain_schedule(self, at: str | None = None, cron: str | None = None,
                               timezone: str | None = None) -> str:
        return explain(self.clock(), at=at, cron=cron, timezone=timezone)

    async def create_schedule(self, channel: str, chat: str, text: str, kind: str = "text",
                              at: str | None = None, in_minutes: float | None = None,
                              cron: str | None = None, timezone: str | None = None,
                              missed: str = "run_once", thread: str | None = None
                              ) -> ScheduleRow:
        names = [c.name for c in self.channel_list]
        if channel not in names:
            raise ScheduleError("channel", f"there is no channel named {channel!r} in the "
                                f"config (configured: {', '.join(sorted(names)) or 'none'})")
        if not chat.strip():
            raise ScheduleError("chat", "the chat is empty: give the chat's id as Logs shows it")
        action, body, policy = action_of(kind), check_body(text), missed_of(missed)
        now = self.clock()
        when = when_of(at=at, in_minutes=in_minutes, cron=cron, timezone=timezone, now=now)
        job = ScheduleRow(id=next(self._job_ids), channel=channel, chat=chat.strip(),
                          thread=thread, created_by="owner", action=action, body=body,
                          timing=when.describe(), cron=when.cron, at=when.at, timezone=when.tz,
                          missed=policy, enabled=True, next_run=when.first(now), last_run=None,
                          created_at=now)
        self.jobs[job.id] = job
        return job

    async def set_schedule_enabled(self, job_id: int, enabled: bool) -> ScheduleRow | None:
        job = self.jobs.get(job_id)
        if job is None:
            return None
        now, next_run = self.clock(), None
        if enabled:
            when = When(job.at, job.cron, job.timezone)
            if when.recurring:
                next_run = when.next_after(now)
            elif job.last_run is None and job.at is not None:
                if job.at <= now and job.missed == "skip":
                    raise ScheduleError("enabled", f"job {job_id}'s time has passed while it "
                                        "was paused, and it skips missed runs")
                next_run = job.at
            else:
                raise ScheduleError("enabled", f"job {job_id} ran already; nothing to resume")
        self.jobs[job_id] = dataclasses.replace(job, enabled=enabled, next_run=next_run)
        return self.jobs[job_id]

    async def delete_schedule(self, job_id: int) -> bool:
        return self.jobs.pop(job_id, None) is not None
