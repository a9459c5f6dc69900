"""Bursts: what one person sends in a row, answered together in one turn (``burst: collect``).

People write "hi" / "can you" / "book a table" where one message would do. With
``burst: collect`` the intake hands a conversation's messages here instead of
queueing a turn for each. One *collector* per conversation waits in the
conversation's lane until the chat has been quiet for ``burst_settle`` seconds
(at most ``SETTLE_CAP`` times that after the first message it waited for), then
takes what the journal holds untaken (``Journal.waiting_in``): the oldest message
and those after it from the same sender, up to a command or another sender's
message. Each is admitted on its own (access policy, rate limit), the admitted
ones are collected in the journal in one write, and one turn answers them,
quoting the last. What arrives while that turn runs waits for the next
collector, queued behind it in the same lane: answered next, together, never twice.

Nothing here outlives the process: the journal says which messages a burst
collected, so after a crash the intake resumes the burst as one turn, and what no
burst took yet is collected anew.

Why ``separate`` is the default (``ChannelConfig.burst``):

* One reply per message, quoting it, is what people expect of a bot and what every
  existing configuration was written for; an upgrade must not change how a deployed
  bot answers.
* In groups a burst is usually several people: collecting never joins two senders,
  but with ``group_reply: all`` a quiet period is rare, so replies would come late.
* Programs that talk to pyclaw (the signed webhook, IRC or MQTT clients) expect an
  answer per request.
* Where it pays, turning it on is one line: personal chats on Telegram, WhatsApp or
  Signal, where people type in bursts. There it saves an LLM call per extra message
  (and each call would carry the whole history again), and gives one coherent
  answer instead of three that each saw only part of the question. Its price is
  the settle time on every reply; ``burst_settle: 0`` waits for nothing and still
  collects what arrives while the assistant is answering.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyclaw_app.agent.commands import parse_command
from pyclaw_app.model import Inbound
from pyclaw_app.store.journal import JournalRow

if TYPE_CHECKING:
    from pyclaw_app.gateway.host import Host
    from pyclaw_app.gateway.turn import Turn

__all__ = ["MAX_BURST", "SETTLE_CAP", "Bursts", "take_burst"]

SETTLE_CAP = 3
"""A chat that never goes quiet (a lively group) is answered at the latest this many settle
times after the first message its collector waited for."""
MAX_BURST = 20
"""Messages one turn answers at most; after an outage a long backlog is answered in
bursts of this many, not in one prompt."""


@dataclass(eq=False)
class _Collector:
    """A collector queued in a conversation's lane that has not taken its messages yet.

    ``job`` is its lane job id: the journal id of the message it was queued for, so the
    lanes (and a resume) see that message as taken care of.
    """

    job: int
    settle: float
    first: float
    last: float
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def until(self) -> float:
        return min(self.last + self.settle, self.first + self.settle * SETTLE_CAP)


class Bursts:
    def __init__(self, host: Host, turn: Turn, clock: Callable[[], float] | None = None
                 ) -> None:
        self._h = host
        self._turn = turn
        self.clock = clock or host.clock
        """Monotonic seconds the settle time is measured in; a test moves a fake one and
        calls :meth:`wake`."""
        self._waiting: dict[str, _Collector] = {}
        self._answering: set[int] = set()

    def collects(self, channel: str) -> bool:
        """Whether the channel answers bursts together: configured so, and not a channel
        whose every request waits for its own answer (``Capabilities.live``)."""
        rt = self._h.channels.get(channel)
        config = rt.entry.config if rt is not None else None
        if rt is None or config is None or config.burst != "collect":
            return False
        return rt.spec is None or not rt.spec.capabilities.live

    def arrived(self, journal_id: int, channel: str, conv: str) -> None:
        """A message of a collecting channel is journaled: the conversation's waiting
        collector waits on from now, or one is queued for it."""
        rt = self._h.channels.get(channel)
        settle = rt.entry.config.burst_settle if rt is not None and rt.entry.config else 0.0
        now = self.clock()
        waiting = self._pending(conv)
        if waiting is None:
            self._queue(conv, _Collector(journal_id, settle, now, now))
        else:
            waiting.last = now
            waiting.wake.set()

    def resume(self, journal_id: int, conv: str) -> None:
        """Messages a restart (or a stopped channel) left untaken: collected without a wait."""
        if self._pending(conv) is None:
            self._queue(conv, _Collector(journal_id, 0.0, 0.0, 0.0))

    def wake(self) -> None:
        """Look at the clock again now (a test moved it)."""
        for waiting in self._waiting.values():
            waiting.wake.set()

    def answering(self, journal_id: int) -> bool:
        """Whether a burst holding this message is being answered now."""
        return journal_id in self._answering

    def _pending(self, conv: str) -> _Collector | None:
        """The conversation's collector still to take its messages. Its lane job is checked
        too: closing the lanes (the gateway stopping) drops queued jobs unrun."""
        waiting = self._waiting.get(conv)
        if waiting is not None and not self._h.lanes.has_job(waiting.job):
            del self._waiting[conv]
            return None
        return waiting

    def _queue(self, conv: str, waiting: _Collector) -> None:
        self._waiting[conv] = waiting
        self._h.lanes.submit(conv, lambda: self._collect(conv, waiting), job_id=waiting.job)

    async def _collect(self, conv: str, waiting: _Collector) -> None:
        try:
            await self._settle(waiting)
        finally:
            if self._waiting.get(conv) is waiting:
                del self._waiting[conv]
        lanes = self._h.lanes
        rows = [r for r in await self._h.store.journal.waiting_in(conv)
                if r.id == waiting.job or not lanes.has_job(r.id)]
        burst = take_burst(rows)
        if len(burst) < len(rows):
            self.resume(rows[len(burst)].id, conv)  # the rest: the next turn, right after
        if burst:
            await self._answer(burst)

    async def _settle(self, waiting: _Collector) -> None:
        """Return once the chat has been quiet for the settle time (or the cap is reached)."""
        while (left := waiting.until() - self.clock()) > 0:
            waiting.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiting.wake.wait(), left)

    async def _answer(self, burst: Sequence[JournalRow]) -> None:
        h, turn = self._h, self._turn
        first = burst[0]
        connector = turn.connector_for(first.id, first.to_inbound())
        if connector is None:
            return
        admitted: list[tuple[int, Inbound]] = []
        for row in burst:
            inbound = row.to_inbound()
            if await turn.admit(connector, row.id, inbound):
                admitted.append((row.id, inbound))
        if not admitted:
            return
        ids = [journal_id for journal_id, _ in admitted]
        lead_id, lead = admitted[-1]
        self._answering.update(ids)
        try:
            if len(ids) > 1:
                await h.store.journal.collect(ids)
                h.channel_log(first.channel, "info", f"message {lead_id}: answering messages "
                              f"{', '.join(map(str, ids))}, sent in a row, in one reply",
                              message_id=lead_id, burst=ids)
            await turn.answer(connector, lead_id, lead)
        finally:
            self._answering.difference_update(ids)


def take_burst(rows: Sequence[JournalRow]) -> list[JournalRow]:
    """The messages one turn answers, from a conversation's untaken ones (oldest first):
    the oldest and those after it from the same sender, stopping before a command (answered
    on its own, by pyclaw) and after ``MAX_BURST``."""
    if not rows:
        return []
    first = rows[0]
    if parse_command(first.text) is not None:
        return [first]
    burst = [first]
    for row in rows[1:MAX_BURST]:
        if row.sender_id != first.sender_id or parse_command(row.text) is not None:
            break
        burst.append(row)
    return burst
