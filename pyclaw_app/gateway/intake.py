"""Intake: what comes in is gated, journaled, then queued on its conversation's lane.

``accept`` is ``ctx.submit``: group chatter not addressed to the bot is
dropped before it is stored (``group_reply``), everything else is durable
before it returns, so the connector may acknowledge the platform. After a crash
``resume_unfinished`` picks up the open rows without answering anything twice.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING

from pyclaw_app.channels.contract import SubmitResult
from pyclaw_app.gateway.turn import Turn
from pyclaw_app.model import EventKind, Inbound, MessageStatus
from pyclaw_app.policy import addressed_to_bot

if TYPE_CHECKING:
    from pyclaw_app.gateway.host import Host

__all__ = ["MAX_INBOUND_CHARS", "Intake"]

MAX_INBOUND_CHARS = 32_000
"""Longer texts (a pasted 1 MB log) are cut before journal and LLM; the reply says so."""
IGNORED = SubmitResult(0, duplicate=False, ignored=True)


class Intake:
    def __init__(self, host: Host, turn: Turn) -> None:
        self._h = host
        self._turn = turn

    async def accept(self, inbound: Inbound) -> SubmitResult:
        """Journal first, then hand to the conversation's lane.

        Returns once the message is stored and the backlog has room (``Lanes.wait_for_room``).
        """
        h = self._h
        channel = inbound.address.channel
        rt = h.channels.get(channel)
        config = rt.entry.config if rt is not None else None
        if config is not None and not addressed_to_bot(inbound, config):
            return IGNORED  # group chatter not for us: not stored, not worth a log line
        if len(inbound.text) > MAX_INBOUND_CHARS:
            inbound = replace(inbound, text=inbound.text[:MAX_INBOUND_CHARS],
                              truncated_from=len(inbound.text))
        result = await h.store.journal.submit(inbound)
        if rt is not None:
            rt.last_message_ts = time.time()
        if result.duplicate:
            h.emit(EventKind.MESSAGE_DUPLICATE, channel, id=result.journal_id,
                   platform_id=inbound.platform_id)
            return result
        a = inbound.address
        h.emit(EventKind.MESSAGE_RECEIVED, channel, id=result.journal_id, chat=a.chat,
               thread=a.thread, sender=inbound.sender_name or inbound.sender_id,
               text=inbound.text, ts=inbound.ts)
        self._enqueue(result.journal_id, inbound)
        await h.lanes.wait_for_room()  # backpressure: the connector fetches no more till then
        return result

    def _enqueue(self, journal_id: int, inbound: Inbound) -> None:
        self._h.lanes.submit(inbound.address.key,
                             lambda: self._turn.process(journal_id, inbound), job_id=journal_id)

    async def resume_unfinished(self, channel: str | None = None) -> None:
        """Pick up journal rows a crash left open, without answering anything twice."""
        h = self._h
        journal = h.store.journal
        for row in await journal.unfinished():
            if channel is not None and row.channel != channel:
                continue
            if h.lanes.has_job(row.id):
                continue
            rt = h.channels.get(row.channel)
            if rt is None or rt.connector is None:
                continue  # resumed when that channel next starts with the gateway
            reply = await journal.reply_of(row.id)
            if reply is not None and reply.status == MessageStatus.SENT:
                await journal.set_status(row.id, MessageStatus.REPLIED)
                continue
            if reply is not None and reply.status == MessageStatus.PENDING:
                await self._interrupted(row.id, row.channel, row.chat, reply.id)
                continue
            h.channel_log(row.channel, "info", f"resuming message {row.id} after restart")
            self._enqueue(row.id, row.to_inbound())

    async def _interrupted(self, inbound_id: int, channel: str, chat: str, out_id: int) -> None:
        """A reply was going out when the process died: the part in flight may have been
        delivered, so it is marked uncertain and nothing of the reply is sent again."""
        h = self._h
        parts = await h.store.journal.parts(out_id)
        pending = [p for p in parts if p.status == "pending"]
        sent = sum(p.status == "sent" for p in parts)
        detail = ("interrupted while sending the reply; it may or may not have been "
                  "delivered, so it is not sent again")
        if sent:
            detail += f" ({sent} part(s) were delivered before)"
        error = f"uncertain: {detail}"
        await h.store.journal.fail_reply(
            out_id, inbound_id, error, part=(pending[0].idx, "uncertain") if pending else None)
        h.channel_log(channel, "warning", f"message {inbound_id}: {detail}")
        h.emit(EventKind.MESSAGE_FAILED, channel, id=inbound_id, chat=chat, error=error)

    async def retry(self, message_id: int) -> bool:
        """Answer a failed message again (the user or the UI asked for it).

        A reply that failed part-way is finished, not repeated: the parts that went out are
        kept and the rest of the same text is sent. Anything else gets a new answer.
        """
        h = self._h
        journal = h.store.journal
        row = await journal.get(message_id)
        if row is None or row.direction != "in" or row.status != MessageStatus.FAILED:
            return False
        reply = await journal.reply_of(row.id)
        if reply is not None and reply.status == MessageStatus.FAILED \
                and not (reply.error or "").startswith("uncertain"):
            parts = await journal.parts(reply.id)
            if any(p.status == "sent" for p in parts) and \
                    not any(p.status == "uncertain" for p in parts):
                h.lanes.submit(row.conv, lambda: self._turn.resume_reply(row, reply, parts),
                               job_id=row.id)
                return True
        await journal.set_status(row.id, MessageStatus.RECEIVED)
        self._enqueue(row.id, row.to_inbound())
        return True
