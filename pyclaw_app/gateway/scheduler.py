"""The scheduler: a due job becomes a journaled firing, delivered like a reply.

Each pass (``tick``) fires the jobs that are due, then hands every open firing to its
conversation's lane, so a scheduled message never cuts into a reply being sent. Firing
is one transaction (``ScheduleStore.fire``): the occurrence, the journal row that
carries it and the job's next run, so an occurrence fires once across restarts. The
message then leaves through :class:`Delivery` under the journal's reply custody (each
part ``pending`` before it is sent, ``sent`` once the platform took it); a firing found
with its message still ``pending`` after a restart may have been delivered and is
marked uncertain, never sent again, exactly as a reply is.

Timing rules (``pyclaw_app.schedules``): the occurrence fired is the latest one due and
the next run is the first one after *now*, so a clock jump forward fires once, not once
per occurrence it jumped over, and a jump back fires nothing again. An occurrence seen
more than ``grace`` seconds after its time (the gateway was down, the machine slept, the
clock jumped) is *missed*: a ``run_once`` job sends it once, a ``skip`` job records it
as skipped. The clock is injected: wall-clock seconds, ``time.time`` by default.

Access is checked again at each firing: a job the assistant made for someone keeps the
rights of that someone, so once the owner revokes them (unpaired, taken out of
``allow_from``, the group rejected or no longer allowed) the job stops. The occurrence is
journaled as skipped with the reason, the channel log says it, and the job is paused with
the reason shown in Schedules and ``pyclaw schedules list``, until the owner resumes or
deletes it. Jobs the owner made (panel, CLI) are the owner's and are not checked.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pyclaw_app.agent import TurnHooks
from pyclaw_app.channels.contract import ChannelConfig
from pyclaw_app.errors import ProviderError
from pyclaw_app.gateway.delivery import PartFailed, reply_parts
from pyclaw_app.model import EventKind, MessageStatus
from pyclaw_app.schedules import OWNER, format_time
from pyclaw_app.secrets import redactor
from pyclaw_app.store.access import AccessStore
from pyclaw_app.store.journal import JournalRow
from pyclaw_app.store.schedules import SCHEDULED, Job, ScheduleStore

if TYPE_CHECKING:
    from pyclaw_app.gateway.host import Host

__all__ = ["MISSED_GRACE", "POLL", "Scheduler", "access_refusal"]

_log = logging.getLogger(__name__)

POLL = 5.0
"""Longest wait between passes: jobs made outside this process (the CLI, the assistant's
tool) and a wall clock that jumped are noticed within it."""
MISSED_GRACE = 60.0
"""Seconds late after which an occurrence counts as missed (``missed: skip`` drops it)."""
LOG_CHANNEL = "scheduler"


class Scheduler:
    def __init__(self, host: Host, store: ScheduleStore, *,
                 clock: Callable[[], float] = time.time, poll: float = POLL,
                 grace: float = MISSED_GRACE) -> None:
        self._h = host
        self._store = store
        self.clock = clock
        self.poll = poll
        self.grace = grace
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._waiting: set[int] = set()
        """Firings already reported as waiting for their channel (said once, not per pass)."""
        store.on_change(self.wake)

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("scheduler already started")
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="gateway:scheduler")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    def wake(self) -> None:
        """Look at the jobs now (one was made or changed, or the clock was moved)."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                await self.tick()
                delay = await self._delay()
            except Exception as exc:  # noqa: BLE001 - the next pass retries; said where people look
                _log.exception("scheduler pass failed")
                self._h.channel_log(LOG_CHANNEL, "error", f"scheduler pass failed: {exc}")
                delay = self.poll
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _delay(self) -> float:
        upcoming = await self._store.next_due()
        if upcoming is None:
            return self.poll
        return min(self.poll, max(0.05, upcoming - self.clock()))

    # ---- a pass ----------------------------------------------------------------------------
    async def tick(self) -> None:
        """Fire what is due now, then queue every open firing whose channel runs."""
        async with self._lock:
            now = self.clock()
            for job in await self._store.due(now):
                await self._fire(job, now)
            await self._queue_open()

    async def _fire(self, job: Job, now: float) -> None:
        assert job.next_run is not None
        occurrence = job.when.latest_due(job.next_run, now)
        following = job.when.next_after(now)
        late = now - occurrence
        channel = job.address.channel
        due = format_time(occurrence, job.when.tz)
        if late > self.grace and job.missed == "skip":
            if await self._store.skip(job, occurrence, following, now):
                self._h.channel_log(channel, "info", f"schedule {job.id}: the run due {due} "
                                    "was missed (pyclaw was not running, or the clock moved) "
                                    "and is skipped, as the job says", schedule=job.id)
            return
        text, meta = _firing(job, occurrence)
        rt = self._h.channels.get(channel)
        refusal = await access_refusal(job, rt.entry.config if rt is not None else None,
                                       self._h.store.access)
        if refusal is not None:
            await self._refuse(job, occurrence, text, meta, refusal, now)
            return
        message_id = await self._store.fire(job, occurrence, following, text, meta, now)
        if message_id is None:
            return
        note = f", {late:.0f} s late" if late > self.grace else ""
        if job.next_run < occurrence:
            note += f" (the runs from {format_time(job.next_run, job.when.tz)} on were missed; "
            note += "it is sent once, for the latest)"
        self._h.channel_log(channel, "info", f"schedule {job.id} fired for {due}{note}: "
                            f"message {message_id}", schedule=job.id, message_id=message_id)

    async def _refuse(self, job: Job, occurrence: float, text: str, meta: dict[str, Any],
                      reason: str, now: float) -> None:
        message_id = await self._store.refuse(job, occurrence, text, meta, reason, now)
        if message_id is None:
            return
        channel = job.address.channel
        self._h.channel_log(
            channel, "warning", f"schedule {job.id}: the run due "
            f"{format_time(occurrence, job.when.tz)} is skipped and the job paused: {reason}. "
            f"Resume it under Schedules (or `pyclaw schedules resume {job.id}`) once that is "
            "what you want, or delete it.", schedule=job.id, message_id=message_id)
        self._h.emit(EventKind.MESSAGE_SKIPPED, channel, id=message_id, chat=job.address.chat,
                     reason=reason, schedule=job.id)

    async def _queue_open(self) -> None:
        h = self._h
        for row in await self._store.open_firings():
            if h.lanes.has_job(row.id):
                continue
            rt = h.channels.get(row.channel)
            if rt is None or rt.connector is None:
                if row.id not in self._waiting:
                    self._waiting.add(row.id)
                    h.channel_log(row.channel, "warning", f"scheduled message {row.id} waits: "
                                  "the channel is not running")
                continue
            self._waiting.discard(row.id)
            if h.shared is not None and not await h.shared.offer(row.conv, row.channel,
                                                                   row.id):
                continue  # another instance answers this conversation, its firings too
            h.lanes.submit(row.conv, lambda message_id=row.id: self._deliver(message_id),
                           job_id=row.id)

    # ---- delivery --------------------------------------------------------------------------
    async def _deliver(self, message_id: int) -> None:
        h = self._h
        journal = h.store.journal
        row = await journal.get(message_id)
        if row is None or row.status != SCHEDULED:
            return
        rt = h.channels.get(row.channel)
        connector = rt.connector if rt is not None else None
        if connector is None:
            return  # waits for the channel; the next pass queues it again
        reply = await journal.reply_of(row.id)
        if reply is not None and reply.status == MessageStatus.SENT:
            await journal.set_status(row.id, MessageStatus.REPLIED)
            return
        if reply is not None and reply.status == MessageStatus.PENDING:
            await self._interrupted(row, reply.id)
            return
        meta: dict[str, Any] = json.loads(row.meta or "{}")
        started = time.time()
        text = await self._ask(row) if meta.get("action") == "task" else str(meta["body"])
        if text is None:
            return
        parts = reply_parts(text, connector.limits)
        recorded = len(parts) > 1
        out_id = await journal.add_outbound(row.id, row.address, text,
                                            first_part=parts[0] if recorded else None)
        try:
            ids = await h.delivery.send_parts(out_id, row.address, parts, None)
        except PartFailed as exc:
            status = "uncertain" if exc.uncertain else "failed"
            detail = redactor(str(exc))
            error = f"uncertain: {detail}" if exc.uncertain else f"send failed: {detail}"
            await journal.fail_reply(out_id, row.id, error, part=(exc.index, status))
            h.channel_log(row.channel, "warning" if exc.uncertain else "error",
                          f"scheduled message {row.id} (schedule {meta.get('schedule')}): "
                          f"{error}")
            h.emit(EventKind.MESSAGE_FAILED, row.channel, id=row.id, chat=row.chat, error=error)
            return
        await journal.complete_reply(out_id, row.id, ids, text,
                                     (len(parts) - 1, ids[-1]) if recorded else None)
        now = time.time()
        h.emit(EventKind.REPLY_SENT, row.channel, id=out_id, reply_to_id=row.id, chat=row.chat,
               thread=row.thread, text=text, scheduled=meta.get("schedule"),
               latency_ms=round((now - row.created_at) * 1000, 1),
               processing_ms=round((now - started) * 1000, 1))

    async def _ask(self, row: JournalRow) -> str | None:
        """The assistant's answer to a task; None (the firing failed, and says why) when
        no answer could be made."""
        h = self._h
        channel = row.channel

        def on_log(level: str, message: str) -> None:
            h.channel_log(channel, level, f"scheduled message {row.id}: {message}")

        try:
            async with h.lanes.llm_slots:
                reply = await h.agent.reply(row.to_inbound(), row.id, TurnHooks(on_log=on_log))
        except ProviderError as exc:
            detail = redactor(str(exc))
            await h.store.journal.set_status(row.id, MessageStatus.FAILED,
                                             f"LLM call failed: {detail}")
            h.channel_log(channel, "error", f"scheduled task {row.id} not run: LLM call "
                          f"failed: {detail} (retry it from Logs)")
            h.emit(EventKind.MESSAGE_FAILED, channel, id=row.id, chat=row.chat, error=detail)
            return None
        return reply.text

    async def _interrupted(self, row: JournalRow, out_id: int) -> None:
        """The message was going out when the process died: it may have been delivered, so
        it is marked uncertain and not sent again (the reply custody rule)."""
        h = self._h
        parts = await h.store.journal.parts(out_id)
        pending = [p for p in parts if p.status == "pending"]
        detail = ("interrupted while sending the scheduled message; it may or may not have "
                  "been delivered, so it is not sent again")
        error = f"uncertain: {detail}"
        await h.store.journal.fail_reply(
            out_id, row.id, error, part=(pending[0].idx, "uncertain") if pending else None)
        h.channel_log(row.channel, "warning", f"scheduled message {row.id}: {detail}")
        h.emit(EventKind.MESSAGE_FAILED, row.channel, id=row.id, chat=row.chat, error=error)

    # ---- the owner's retry -----------------------------------------------------------------
    async def owns(self, message_id: int) -> bool:
        """Whether journal row ``message_id`` is a firing (so its retry is the scheduler's)."""
        return await self._store.is_firing(message_id)

    async def retry(self, message_id: int) -> bool:
        """Deliver a failed firing again (its text, or a new answer to its task)."""
        row = await self._h.store.journal.get(message_id)
        if row is None or row.status != MessageStatus.FAILED:
            return False
        await self._store.reopen(message_id, time.time())
        self.wake()
        return True


async def access_refusal(job: Job, config: ChannelConfig | None, access: AccessStore
                         ) -> str | None:
    """Why ``job`` may no longer fire by the channel's access rules, None when it may.

    The policy's admission rules (``pyclaw_app.policy``) for the job's address and
    creator, read only: nothing is requested (no pairing code, no group request) on
    behalf of someone who is not there. The owner's jobs and jobs of a channel no
    longer configured (they wait for it, as every firing does) are not checked.
    """
    if job.created_by == OWNER or config is None:
        return None
    channel, chat = job.address.channel, job.address.chat
    if job.is_group:
        policy = config.group_policy
        if policy == "disabled":
            return f"group messages are now disabled on channel {channel}"
        if policy == "open" or chat in config.allow_groups:
            return None
        if any(g.channel == channel and g.chat == chat
               for g in await access.groups("approved")):
            return None
        return f"group {chat} is no longer allowed on channel {channel}"
    who = (f"{job.creator_name} ({job.created_by})"
           if job.creator_name and job.creator_name != job.created_by else job.created_by)
    policy = config.dm_policy
    if policy == "open":
        return None
    if policy == "disabled":
        return f"direct messages are now disabled on channel {channel}"
    if job.created_by in config.allow_from or await access.is_allowed(channel,
                                                                      job.created_by):
        return None
    return (f"its creator {who} may no longer talk to the assistant on {channel} "
            "(not paired, nor in allow_from)")


def _firing(job: Job, occurrence: float) -> tuple[str, dict[str, Any]]:
    """The journal row's text (what history and Logs show as the turn's question) and meta
    (what is sent: the job as it was when it fired, even if it is changed or deleted)."""
    due = format_time(occurrence, job.when.tz)
    if job.action == "task":
        who = job.creator_name or job.created_by
        text = (f"(Scheduled task {job.id}, set up by {who}, due {due}. Your answer is sent to "
                f"this chat as a message.)\n{job.body}")
    else:
        text = f"(Scheduled message {job.id}, due {due}, sent as written.)"
    meta = {"schedule": job.id, "action": job.action, "body": job.body,
            "scheduled_for": occurrence, "is_group": job.is_group, "ts": occurrence}
    return text, meta
