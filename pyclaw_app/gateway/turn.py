"""The turn: one journaled message through policy, the agent and delivery of its reply.

Runs inside the conversation's lane. The reply (or the notice that explains
why there is none) leaves through :class:`Delivery`, part by part under the
journal's custody; a streamed draft is part 0 and is edited into the reply. Files
the assistant sends while it answers (the ``send_file`` tool), and the spoken
version of a reply to a voice note (``voice_replies``), are parts of the same reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pyclaw_app.agent import CallRecord, Reply, TurnHooks, user_notice
from pyclaw_app.agent.budget import BudgetExceeded
from pyclaw_app.attachments import FileRow
from pyclaw_app.attachments.outbound import file_label
from pyclaw_app.channels.contract import ChannelConfig, Connector, OutboundFile
from pyclaw_app.errors import ConnectorError, DeliveryUncertain, ProviderError, RetryableError
from pyclaw_app.gateway.delivery import ChannelLog, Custody, PartFailed, reply_parts
from pyclaw_app.model import EventKind, Inbound, MessageStatus
from pyclaw_app.secrets import redactor
from pyclaw_app.store.journal import JournalRow, ReplyPart
from pyclaw_app.streaming import DraftStream

if TYPE_CHECKING:
    from pyclaw_app.gateway.host import Host

__all__ = ["Turn"]

_log = logging.getLogger(__name__)

TYPING_DELAY = 1.0
TYPING_INTERVAL = 4.0


class Turn:
    def __init__(self, host: Host) -> None:
        self._h = host

    async def process(self, journal_id: int, inbound: Inbound) -> None:
        connector = self.connector_for(journal_id, inbound)
        if connector is None or not await self.admit(connector, journal_id, inbound):
            return
        await self.answer(connector, journal_id, inbound)

    def connector_for(self, journal_id: int, inbound: Inbound) -> Connector | None:
        """The channel's running connector; None (and said) when the channel is not running:
        the message stays 'received' in the journal and is resumed when it runs again."""
        h = self._h
        channel = inbound.address.channel
        rt = h.channels.get(channel)
        if rt is None or rt.connector is None:
            h.channel_log(channel, "warning",
                          f"message {journal_id} waits: channel is not running")
            if rt is not None:
                rt.stranded.add(journal_id)
            return None
        return rt.connector

    async def admit(self, connector: Connector, journal_id: int, inbound: Inbound) -> bool:
        """Whether the message is to be answered. One that is not (empty, or refused by the
        access policy) is closed as skipped here, with the policy's notice if it has one;
        a burst (``gateway/bursts.py``) admits each of its messages on its own."""
        h = self._h
        channel = inbound.address.channel
        if not inbound.text.strip() and not inbound.attachments:
            await h.store.journal.set_status(journal_id, MessageStatus.SKIPPED, "empty message")
            h.channel_log(channel, "info", f"message {journal_id} skipped: empty message")
            h.emit(EventKind.MESSAGE_SKIPPED, channel, id=journal_id, reason="empty message")
            return False
        rt = h.channels.get(channel)
        config = rt.entry.config if rt is not None else None
        verdict = await h.policy.check(inbound, config) if config is not None else None
        if verdict is not None and not verdict.allowed:
            h.channel_log(channel, "info", f"message {journal_id} not answered: "
                          f"{verdict.reason}", sender=inbound.sender_id)
            if verdict.notice:
                await self._send_notice(connector, journal_id, inbound, verdict.notice,
                                        verdict.reason, MessageStatus.SKIPPED)
            else:
                await h.store.journal.set_status(journal_id, MessageStatus.SKIPPED,
                                                 verdict.reason)
            h.emit(EventKind.MESSAGE_SKIPPED, channel, id=journal_id, reason=verdict.reason,
                   notice=verdict.notice)
            return False
        return True

    async def answer(self, connector: Connector, journal_id: int, inbound: Inbound) -> None:
        """Ask the agent and deliver its reply, or the notice that says why there is none.

        For a collected burst ``journal_id`` is its last message: the journal gives the
        agent the earlier ones as they were sent, and closes them with it.
        """
        h = self._h
        channel = inbound.address.channel
        rt = h.channels.get(channel)
        config = rt.entry.config if rt is not None else None
        h.store.journal.mark_processing(journal_id)
        h.emit(EventKind.MESSAGE_PROCESSING, channel, id=journal_id)
        received_at = time.time()
        custody = Custody()
        stream = (self._draft_stream(connector, journal_id, inbound, custody)
                  if connector.capabilities.edit and config is not None
                  and config.stream_replies else None)
        files = _ConversationFiles(h, connector, journal_id, inbound, custody)
        try:
            reply = await self._ask_agent(connector, journal_id, inbound, stream, files)
        except ProviderError as exc:
            await self._answer_failure(connector, journal_id, inbound, exc, stream, custody)
            return
        out_id = await self._deliver(connector, journal_id, inbound, reply.text, received_at,
                                     stream, custody)
        if out_id is not None and _speaks(config, connector, inbound, h.channel_log):
            await self._voice_reply(journal_id, inbound, reply.text, out_id)

    async def resume_reply(self, row: JournalRow, reply: JournalRow,
                           parts: list[ReplyPart]) -> None:
        """Deliver the rest of a reply whose part failed: the parts that went out are not
        sent again, the rest of the same text follows (Retry on a half-sent reply)."""
        h = self._h
        inbound = row.to_inbound()
        rt = h.channels.get(row.channel)
        if rt is None or rt.connector is None:
            h.channel_log(row.channel, "warning", f"message {row.id} waits: channel is not "
                          "running")
            return
        files = await h.store.journal.part_files(reply.id)
        sent = [p for p in parts if p.status == "sent"]
        rest = _after(reply.text, [p.text for p in sent if p.idx not in files])
        todo = reply_parts(rest, rt.connector.limits) if rest.strip() else []
        first = max((p.idx for p in parts), default=-1) + 1
        ids = [p.platform_id or "" for p in sent]
        unsent = [files[p.idx] for p in parts if p.status == "failed" and p.idx in files]
        await h.store.journal.reopen_reply(reply.id, row.id)
        first = await self._resend_files(row.id, inbound, reply.id, first, unsent)
        if not todo:
            await h.store.journal.complete_reply(reply.id, row.id, ids)
            return
        await h.store.journal.begin_part(reply.id, first, todo[0])
        h.channel_log(row.channel, "info", f"message {row.id}: sending the remaining "
                      f"{len(todo)} part(s) of the reply; the {len(sent)} delivered are not "
                      "sent again")
        await self._send_reply(row.id, inbound, reply.id, todo, first, ids, None, reply.text,
                               time.time())

    async def _resend_files(self, journal_id: int, inbound: Inbound, out_id: int, first: int,
                            references: list[str]) -> int:
        """Send again the files of a reply that did not go out (Retry), from where they are
        stored, as new parts from ``first``; returns the index after them. One that fails
        again is logged and left failed: the rest of the reply still goes."""
        h = self._h
        custody = Custody(out_id, first)
        for reference in references:
            try:
                file = h.attachments.outbound.load(reference)
                await h.delivery.send_file(h.attachments.outbound, custody, journal_id,
                                           inbound.address, file, None)
            except (ValueError, ConnectorError) as exc:
                h.channel_log(inbound.address.channel, "warning", f"message {journal_id}: a "
                              f"file of the reply was not sent again: {redactor(str(exc))}")
        return custody.next_idx

    # ---- the agent --------------------------------------------------------------------------
    def _draft_stream(self, connector: Connector, journal_id: int, inbound: Inbound,
                      custody: Custody) -> DraftStream:
        """A live draft of the reply: part 0, recorded (pending) before it goes."""
        h = self._h
        address = inbound.address

        async def open_draft(text: str) -> str:
            async with custody.lock:  # a file being sent meanwhile takes the next index
                idx = custody.next_idx
                if custody.out_id is None:
                    custody.out_id = await h.store.journal.add_outbound(
                        journal_id, address, text, first_part=text)
                else:
                    await h.store.journal.begin_part(custody.out_id, idx, text)
                custody.next_idx = idx + 1
                custody.draft_idx = idx
            try:
                pid = await h.delivery.retrying(
                    address.channel, "send",
                    lambda c: c.send_part(address, text, inbound.platform_id))
            except ConnectorError as exc:
                status = "uncertain" if isinstance(exc, DeliveryUncertain) else "failed"
                await h.store.journal.part_failed(custody.out_id, idx, status, str(exc))
                raise
            await h.store.journal.part_sent(custody.out_id, (idx, pid))
            return pid

        async def edit(draft_id: str, text: str) -> None:
            current = h.channels[address.channel].connector
            if current is None:
                raise RetryableError(f"channel {address.channel} is restarting")
            await current.edit(address, draft_id, text)

        limits = connector.limits
        return DraftStream(open_draft=open_draft, edit=edit, limit=limits.max_text,
                           length=limits.text_length, interval=h.stream_interval,
                           name=f"{address.channel}:{journal_id}",
                           budget=h.delivery.edit_budget(address.channel, limits))

    async def _ask_agent(self, connector: Connector, journal_id: int, inbound: Inbound,
                         stream: DraftStream | None, files: _ConversationFiles) -> Reply:
        h = self._h
        channel = inbound.address.channel
        answered = asyncio.Event()
        typing: list[asyncio.Task[None]] = []
        typing_timer: asyncio.TimerHandle | None = None
        if connector.capabilities.typing:
            # A timer, not a task waiting out TYPING_DELAY: most answers come sooner, and
            # two tasks per message were measurable under load (bench/RESULTS.md, section 4).
            typing_timer = asyncio.get_running_loop().call_later(
                TYPING_DELAY, lambda: typing.append(asyncio.create_task(
                    self._keep_typing(connector, inbound, answered),
                    name=f"typing:{channel}:{journal_id}")))

        live = connector.capabilities.live

        def on_delta(delta: str) -> None:
            if stream is not None:
                stream.feed(delta)
            if live:
                connector.reply_delta(inbound.address, inbound.platform_id, delta)
            h.emit(EventKind.REPLY_DELTA, channel, id=journal_id, chat=inbound.address.chat,
                   delta=delta)

        def on_call(call: CallRecord) -> None:
            h.emit(EventKind.LLM_CALL, channel, id=journal_id, provider=call.provider,
                   model=call.model, input_tokens=call.input_tokens,
                   output_tokens=call.output_tokens, latency_ms=round(call.latency_ms, 1),
                   cost=call.cost, error=redactor(call.error) if call.error else None)

        def on_log(level: str, message: str) -> None:
            h.channel_log(channel, level, f"message {journal_id}: {message}")

        def on_restart() -> None:
            if stream is not None:
                stream.reset()
            if live:
                connector.reply_reset(inbound.address, inbound.platform_id)
            h.emit(EventKind.REPLY_RESET, channel, id=journal_id, chat=inbound.address.chat)

        try:
            async with h.lanes.llm_slots:
                return await h.agent.reply(inbound, journal_id,
                                           TurnHooks(on_delta, on_call, on_log, on_restart,
                                                     files))
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

    # ---- replies ----------------------------------------------------------------------------
    async def _answer_failure(self, connector: Connector, journal_id: int, inbound: Inbound,
                              error: ProviderError, stream: DraftStream | None,
                              custody: Custody) -> None:
        h = self._h
        channel = inbound.address.channel
        detail = redactor(str(error))
        status, kind, reason = MessageStatus.FAILED, EventKind.MESSAGE_FAILED, "error"
        if isinstance(error, BudgetExceeded):  # a refusal, like the policy's: not a failure
            status, kind, reason = MessageStatus.SKIPPED, EventKind.MESSAGE_SKIPPED, "reason"
            h.channel_log(channel, "info", f"message {journal_id} not answered: {detail}",
                          sender=inbound.sender_id)
            if error.tell_owner:  # once per cap and period
                h.channel_log(channel if error.limit.scope.kind != "overall" else "gateway",
                              "warning", error.owner_notice, budget=error.limit.key)
        else:
            h.channel_log(channel, "error", f"message {journal_id}: LLM call failed: {detail}",
                          provider=error.provider, status=error.status)
        notice = user_notice(error)
        draft = await stream.finish() if stream is not None else None
        if draft is not None and custody.out_id is not None:
            try:  # the partial answer the user saw becomes the notice
                await h.delivery.edit(inbound.address, draft, notice)
            except ConnectorError:
                pass
            else:
                await h.store.journal.close_with_notice(custody.out_id, journal_id, [draft],
                                                        detail, status)
                h.emit(kind, channel, id=journal_id, chat=inbound.address.chat,
                       **{reason: detail}, notice=notice)
                return
        await self._send_notice(connector, journal_id, inbound, notice, detail, status,
                                custody)
        h.emit(kind, channel, id=journal_id, chat=inbound.address.chat, **{reason: detail},
               notice=notice)

    async def _send_notice(self, connector: Connector, journal_id: int, inbound: Inbound,
                           notice: str, reason: str, status: MessageStatus,
                           custody: Custody | None = None) -> None:
        """Tell the sender why there is no answer; the inbound row closes as ``status``.
        When ``custody`` already has the reply's row (a file went out first), the notice is
        its next part, so that row is closed too."""
        journal = self._h.store.journal
        parts = reply_parts(notice, connector.limits)
        first = 0
        if custody is not None and custody.out_id is not None:
            out_id, first, recorded = custody.out_id, custody.next_idx, True
            await journal.begin_text(out_id, first, parts[0], notice)
        else:
            recorded = len(parts) > 1
            out_id = await journal.add_outbound(journal_id, inbound.address, notice,
                                                first_part=parts[0] if recorded else None)
        try:
            ids = await self._h.delivery.send_parts(out_id, inbound.address, parts,
                                                    inbound.platform_id, first_idx=first)
        except PartFailed as exc:
            await journal.fail_reply(out_id, journal_id, f"{reason}; notice not delivered: "
                                     f"{exc}", part=(exc.index, _part_status(exc)))
            if status != MessageStatus.FAILED:
                await journal.set_status(journal_id, status, reason)
        else:
            await journal.close_with_notice(
                out_id, journal_id, ids, reason, status,
                last_part=(first + len(parts) - 1, ids[-1]) if recorded else None)

    async def _deliver(self, connector: Connector, journal_id: int, inbound: Inbound, text: str,
                       received_at: float, stream: DraftStream | None,
                       custody: Custody) -> int | None:
        """Send the reply; returns its row once all of it went out, else None (said)."""
        h = self._h
        channel = inbound.address.channel
        if inbound.truncated_from:
            h.channel_log(channel, "warning", f"message {journal_id} was "
                          f"{inbound.truncated_from:,} characters; only the first "
                          f"{len(inbound.text):,} were read")
            text = (f"(Your message was {inbound.truncated_from:,} characters long; I read only "
                    f"the first {len(inbound.text):,}.)\n\n{text}")
        draft = await stream.finish() if stream is not None else None
        parts = reply_parts(text, connector.limits)
        journal = h.store.journal
        out_id = custody.out_id
        done: list[str] = []
        if draft is not None and out_id is not None:
            try:
                await h.delivery.edit(inbound.address, draft, parts[0])
            except ConnectorError as exc:
                h.channel_log(channel, "warning", f"could not finish the live draft ({exc}); "
                              "sending the reply anew")
            else:  # the draft is part 0 of the reply; the rest follows as new messages
                if len(parts) == 1:
                    await self._completed(journal_id, inbound, out_id, [draft], text,
                                          received_at, None)
                    return out_id
                assert custody.draft_idx is not None
                await journal.part_sent(out_id, (custody.draft_idx, draft), text=parts[0],
                                        next_part=(custody.next_idx, parts[1]))
                done, parts = [draft], parts[1:]
        # A reply of one part needs no part rows: its own row is that part's custody (and
        # one-part replies are most of them: two statements less per message, measured).
        recorded = out_id is not None or len(parts) > 1
        if out_id is None:
            out_id = await journal.add_outbound(journal_id, inbound.address, text,
                                                first_part=parts[0] if recorded else None)
        elif not done:
            await journal.begin_text(out_id, custody.next_idx, parts[0], text)
        reply_to = inbound.platform_id if not done else None
        sent = await self._send_reply(journal_id, inbound, out_id, parts, custody.next_idx, done,
                                      reply_to, text, received_at, recorded=recorded)
        return out_id if sent else None

    async def _send_reply(self, journal_id: int, inbound: Inbound, out_id: int,
                          parts: list[str], first_idx: int, done: list[str],
                          reply_to: str | None, text: str, received_at: float, *,
                          recorded: bool = True) -> bool:
        try:
            ids = await self._h.delivery.send_parts(out_id, inbound.address, parts, reply_to,
                                                    first_idx=first_idx)
        except PartFailed as exc:
            await self._reply_failed(inbound, journal_id, out_id, exc,
                                     delivered=len(done) + len(exc.sent),
                                     total=len(done) + len(parts))
            return False
        await self._completed(journal_id, inbound, out_id, [*done, *ids], text, received_at,
                              (first_idx + len(parts) - 1, ids[-1]) if recorded else None)
        return True

    async def _voice_reply(self, journal_id: int, inbound: Inbound, text: str,
                           out_id: int) -> None:
        """The reply, spoken, as one more part after its text (which went out already, so a
        voice reply that fails loses nothing: the channel log says why)."""
        h = self._h
        channel = inbound.address.channel

        def log(level: str, message: str) -> None:
            h.channel_log(channel, level, f"message {journal_id}: {message}")

        voice = await h.attachments.speak(text, log)
        if voice is None:
            return
        parts = await h.store.journal.parts(out_id)
        custody = Custody(out_id, max((p.idx for p in parts), default=0) + 1)
        try:
            await h.delivery.send_file(h.attachments.outbound, custody, journal_id,
                                       inbound.address, voice, inbound.platform_id)
        except ConnectorError as exc:
            log("warning", f"the voice reply was not sent: {redactor(str(exc))}")
        else:
            log("info", "voice reply sent")

    async def _completed(self, journal_id: int, inbound: Inbound, out_id: int, ids: list[str],
                         text: str, received_at: float, last_part: tuple[int, str] | None
                         ) -> None:
        h = self._h
        await h.store.journal.complete_reply(out_id, journal_id, ids, text, last_part)
        now = time.time()
        h.emit(EventKind.REPLY_SENT, inbound.address.channel, id=out_id, reply_to_id=journal_id,
               chat=inbound.address.chat, thread=inbound.address.thread, text=text,
               latency_ms=round((now - inbound.ts) * 1000, 1),
               processing_ms=round((now - received_at) * 1000, 1))

    async def _reply_failed(self, inbound: Inbound, journal_id: int, out_id: int,
                            exc: PartFailed, *, delivered: int, total: int) -> None:
        """Close a reply that did not go out (``send failed``) or may have (``uncertain``:
        never sent again); the journal, the channel log and the UI all say which."""
        h = self._h
        channel = inbound.address.channel
        detail = redactor(str(exc))
        if total > 1:
            detail = (f"part {exc.index + 1} of {total}: {detail}" + (
                f" ({delivered} part(s) before it were delivered and are not sent again)"
                if delivered else ""))
        error = f"uncertain: {detail}" if exc.uncertain else f"send failed: {detail}"
        await h.store.journal.fail_reply(out_id, journal_id, error,
                                         part=(exc.index, _part_status(exc)))
        if exc.uncertain:
            h.channel_log(channel, "warning", f"message {journal_id}: {detail}")
        else:
            h.channel_log(channel, "error", f"message {journal_id}: reply not delivered: "
                          f"{detail}")
        h.emit(EventKind.MESSAGE_FAILED, channel, id=journal_id, chat=inbound.address.chat,
               error=error)


class _ConversationFiles:
    """The ``send_file`` tool's way out (``FileSender``): to this message's conversation
    only, each file a part of the reply being written, under its custody."""

    def __init__(self, host: Host, connector: Connector, journal_id: int, inbound: Inbound,
                 custody: Custody) -> None:
        self._h = host
        self._connector = connector
        self._journal_id = journal_id
        self._inbound = inbound
        self._custody = custody

    @property
    def channel_title(self) -> str:
        return self._connector.spec.title

    @property
    def can_send(self) -> bool:
        return self._connector.capabilities.files

    async def received(self) -> list[FileRow]:
        return await self._h.attachments.files.received_in(self._inbound.address.key)

    def stored_path(self, row: FileRow) -> Path:
        assert row.path is not None
        return self._h.attachments.files.root / row.path

    async def send(self, file: OutboundFile) -> str:
        h, inbound = self._h, self._inbound
        pid = await h.delivery.send_file(h.attachments.outbound, self._custody, self._journal_id,
                                         inbound.address, file, inbound.platform_id)
        h.channel_log(inbound.address.channel, "info",
                      f"message {self._journal_id}: sent {file_label(file)}")
        return pid


def _speaks(config: ChannelConfig | None, connector: Connector, inbound: Inbound,
            log: ChannelLog) -> bool:
    """Whether this reply is also spoken: a voice note came in and the channel wants voice
    replies (and can send them: else the log says why there is none)."""
    if config is None or not config.voice_replies \
            or not any(a.kind == "audio" for a in inbound.attachments):
        return False
    if not connector.capabilities.files:
        log(inbound.address.channel, "warning", f"voice_replies is on, but {connector.spec.title} "
            "channels cannot send files; the reply went out as text only")
        return False
    return True


def _part_status(exc: PartFailed) -> str:
    return "uncertain" if exc.uncertain else "failed"


def _after(text: str, sent: list[str]) -> str:
    """What of ``text`` follows the parts already sent (they are consecutive pieces of it)."""
    rest = text
    for part in sent:
        at = rest.find(part)
        if at < 0:
            break
        rest = rest[at + len(part):]
    return rest
