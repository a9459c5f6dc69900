"""Intake: what comes in is gated, journaled, then queued on its conversation's lane.

``accept`` is ``ctx.submit``: group chatter not addressed to the bot is
dropped before it is stored (``group_reply``), everything else is durable
before it returns, so the connector may acknowledge the platform. After a crash
``resume_unfinished`` picks up the open rows without answering anything twice.
A channel with ``burst: collect`` hands its messages to ``bursts`` instead of
queueing a turn for each (``gateway/bursts.py``).

Every inbound path passes here, so this is the one place a message is made
storable: characters UTF-8 cannot encode (a lone surrogate, which a JSON
``\\ud800`` escape decodes to) are replaced with U+FFFD in its content, and the
row and the channel log say so. What still cannot be stored is kept raw as a
dead letter and ``submit`` returns, so one poison message cannot stop its
channel; a failing database (disk full) still holds the message unacknowledged.
"""

from __future__ import annotations

import json
import time
from dataclasses import fields, is_dataclass, replace
from typing import TYPE_CHECKING, Any

from pyclaw_app.channels.contract import SubmitResult
from pyclaw_app.gateway.bursts import Bursts
from pyclaw_app.gateway.turn import Turn
from pyclaw_app.model import Attachment, EventKind, Inbound, MessageStatus
from pyclaw_app.policy import addressed_to_bot, may_follow_up
from pyclaw_app.store import UnstorableMessage
from pyclaw_app.store.journal import JournalRow

if TYPE_CHECKING:
    from pyclaw_app.gateway.host import Host

__all__ = ["MAX_INBOUND_CHARS", "Intake", "repair_text", "storable"]

MAX_INBOUND_CHARS = 32_000
"""Longer texts (a pasted 1 MB log) are cut before journal and LLM; the reply says so."""
IGNORED = SubmitResult(0, duplicate=False, ignored=True)


class Intake:
    def __init__(self, host: Host, turn: Turn) -> None:
        self._h = host
        self._turn = turn
        self.bursts = Bursts(host, turn)
        """Channels with ``burst: collect`` queue their messages here, not a turn each."""
        self._resuming: dict[str, list[tuple[int, Inbound]]] = {}
        """Per channel being started: what it journaled before its open rows were queued."""

    async def accept(self, inbound: Inbound) -> SubmitResult:
        """Journal first, then hand to the conversation's lane.

        Returns once the message is stored and the backlog has room (``Lanes.wait_for_room``).
        """
        h = self._h
        channel = inbound.address.channel
        rt = h.channels.get(channel)
        config = rt.entry.config if rt is not None else None
        if config is not None and not addressed_to_bot(inbound, config):
            if not (may_follow_up(inbound, config)
                    and await h.store.journal.bot_spoke_in(inbound.address.key)):
                return IGNORED  # group chatter not for us: not stored, not worth a log line
            inbound = replace(inbound, reply_to_bot=True)  # a follow-up in the bot's thread
        arrived = inbound
        inbound, repaired = storable(inbound)
        if isinstance(inbound.text, str) and len(inbound.text) > MAX_INBOUND_CHARS:
            inbound = replace(inbound, text=inbound.text[:MAX_INBOUND_CHARS],
                              truncated_from=len(inbound.text))
        try:
            result = await h.store.journal.submit(inbound, repaired=repaired)
        except UnstorableMessage as exc:
            return await self._quarantine(arrived, exc.reason)
        if rt is not None:
            rt.last_message_ts = time.time()
        if result.duplicate:
            h.emit(EventKind.MESSAGE_DUPLICATE, channel, id=result.journal_id,
                   platform_id=inbound.platform_id)
            return result
        if repaired:
            h.channel_log(channel, "warning", f"message {result.journal_id}: "
                          f"{', '.join(repaired)} held characters UTF-8 cannot encode (lone "
                          "surrogates); each was replaced with U+FFFD",
                          message_id=result.journal_id, repaired=repaired)
        a = inbound.address
        h.emit(EventKind.MESSAGE_RECEIVED, channel, id=result.journal_id, chat=a.chat,
               thread=a.thread, sender=inbound.sender_name or inbound.sender_id,
               text=inbound.text, ts=inbound.ts)
        if (held := self._resuming.get(channel)) is not None:
            held.append((result.journal_id, inbound))  # older rows of its chat go first
        else:
            await self._dispatch(result.journal_id, inbound)
        await h.lanes.wait_for_room()  # backpressure: the connector fetches no more till then
        return result

    async def _quarantine(self, inbound: Inbound, reason: str) -> SubmitResult:
        """Keep what the journal refused as a dead letter and let the channel go on.

        Returns once the dead letter is durable; if the database cannot take even that, the
        error propagates and the platform is not acknowledged (it redelivers later).
        """
        h = self._h
        channel = inbound.address.channel
        platform_id = repair_text(str(inbound.platform_id))
        letter = await h.store.dead_letters.add(channel, platform_id, repair_text(reason),
                                                _raw(inbound))
        h.channel_log(channel, "error", f"dead letter {letter.id}: message {platform_id} could "
                      f"not be stored ({letter.reason}); it is kept raw and not answered "
                      f"(pyclaw dead-letters show {letter.id})", dead_letter=letter.id,
                      platform_id=platform_id)
        return SubmitResult(0, duplicate=False, quarantined=True)

    async def _dispatch(self, journal_id: int, inbound: Inbound) -> None:
        a = inbound.address
        if not await self._ours(journal_id, a.key, a.channel):
            pass  # another instance answers this conversation; it was told (gateway/shared.py)
        elif self.bursts.collects(a.channel):
            self.bursts.arrived(journal_id, a.channel, a.key)
        else:
            self._enqueue(journal_id, inbound)

    async def _ours(self, journal_id: int, conv: str, channel: str) -> bool:
        """Whether this gateway answers ``conv``: always, unless it shares the work with other
        instances and one of them holds the conversation."""
        shared = self._h.shared
        return shared is None or await shared.offer(conv, channel, journal_id)

    def _enqueue(self, journal_id: int, inbound: Inbound) -> None:
        self._h.lanes.submit(inbound.address.key,
                             lambda: self._turn.process(journal_id, inbound), job_id=journal_id)

    def hold(self, channel: str) -> None:
        """Queue nothing new of ``channel`` until its open rows are resumed
        (:meth:`resume_unfinished` with its name): a connector that starts receiving
        before them would answer a chat's new message before its old one. What it
        journals meanwhile is acknowledged as usual and queued after them."""
        self._resuming.setdefault(channel, [])

    async def let_through(self, channel: str, *, started: bool = True) -> None:
        """End :meth:`hold`; what came meanwhile is queued now, or, when the channel did
        not start, left in the journal for its next start."""
        held = self._resuming.get(channel)
        while started and held:  # what arrives meanwhile joins the end of the same list
            await self._dispatch(*held.pop(0))
        self._resuming.pop(channel, None)

    async def resume_unfinished(self, channel: str | None = None) -> None:
        """Pick up journal rows a crash left open, without answering anything twice.

        A collected burst is resumed through its last message, whose turn answers (or
        closes) the others with it; what no burst took yet on a collecting channel is
        collected again."""
        h = self._h
        try:
            if h.shared is not None:
                await h.shared.sweep()  # only what no live instance holds is ours to resume
                return
            for row in await h.store.journal.unfinished():
                if channel is None or row.channel == channel:
                    await self.resume_row(row, "after restart")
        finally:
            if channel is not None:
                if (rt := h.channels.get(channel)) is not None:
                    rt.stranded.clear()  # resumed now, or another instance's to resume
                await self.let_through(channel)

    async def resume_row(self, row: JournalRow, why: str | None) -> None:
        """Answer an open row nobody is answering, or close it if its reply went out; a
        reply that was going out is uncertain, never sent again. ``why`` is said in the
        channel log (None: a row another instance journaled for us, nothing to say)."""
        h = self._h
        journal = h.store.journal
        if h.lanes.has_job(row.id) or self.bursts.answering(row.id):
            return
        if row.answered_with not in (None, row.id):
            return  # resumed with the last message of its burst
        rt = h.channels.get(row.channel)
        if rt is None or rt.connector is None:
            if rt is not None:
                rt.stranded.add(row.id)
            return  # resumed when that channel next starts (or with the gateway)
        reply = await journal.reply_of(row.id)
        if reply is not None and reply.status == MessageStatus.SENT:
            await journal.set_status(row.id, MessageStatus.REPLIED)
            return
        if reply is not None and reply.status == MessageStatus.PENDING:
            await self._interrupted(row.id, row.channel, row.chat, reply.id)
            return
        rt.stranded.discard(row.id)
        if why is not None:
            h.channel_log(row.channel, "info", f"resuming message {row.id} {why}")
        if row.answered_with is None and row.status == MessageStatus.RECEIVED \
                and self.bursts.collects(row.channel):
            self.bursts.resume(row.id, row.conv)
        else:
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
        kept and the rest of the same text is sent. Anything else gets a new answer. Any
        message of a collected burst retries the burst.
        """
        h = self._h
        journal = h.store.journal
        row = await journal.get(message_id)
        if row is not None and row.answered_with not in (None, row.id):
            row = await journal.get(row.answered_with)  # a burst is retried as one
        if row is None or row.direction != "in" or row.status != MessageStatus.FAILED:
            return False
        if not await self._ours(row.id, row.conv, row.channel):
            return False  # another instance is answering this conversation right now
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


def repair_text(value: str) -> str:
    """``value`` with each character UTF-8 cannot encode (a lone UTF-16 surrogate) replaced
    by U+FFFD, and a surrogate pair joined into the character it stands for; ``value``
    itself when there is nothing to repair."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return value


_ATTACHMENT_TEXT = ("kind", "name", "mime", "url", "platform_id")


def storable(inbound: Inbound) -> tuple[Inbound, list[str]]:
    """``inbound`` with its content made storable, and the names of the fields that changed.

    Only content: ids are never rewritten, because two different ids must not become one
    (a sender's id decides pairing and the allowlist, a chat's where the reply goes). A
    broken id is refused by the journal and the message kept as a dead letter.
    """
    changes = _repaired_fields(inbound, ("text", "sender_name"))
    if isinstance(inbound.attachments, tuple):
        attachments = tuple(_repaired_attachment(a) for a in inbound.attachments)
        if attachments != inbound.attachments:
            changes["attachments"] = attachments
    return (replace(inbound, **changes) if changes else inbound), list(changes)


def _repaired_attachment(attachment: object) -> object:
    if not isinstance(attachment, Attachment):
        return attachment  # not ours to guess at: the journal refuses it with the reason
    changes = _repaired_fields(attachment, _ATTACHMENT_TEXT)
    return replace(attachment, **changes) if changes else attachment


def _repaired_fields(obj: object, names: tuple[str, ...]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for name in names:
        value = getattr(obj, name)
        if isinstance(value, str) and (fixed := repair_text(value)) != value:
            changes[name] = fixed
    return changes


def _raw(inbound: Inbound) -> bytes:
    """The message as the connector handed it over, losslessly: JSON's ASCII escapes keep a
    lone surrogate, ``repr`` a value of a type JSON has no word for."""
    return json.dumps(inbound, ensure_ascii=True, default=_plain).encode()


def _plain(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    return repr(value)
