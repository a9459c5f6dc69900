"""The message journal: every inbound message is durable before anyone acts on it.

States (see ``MessageStatus``): inbound ``received -> processing -> replied |
failed | skipped``; outbound ``pending -> sent | failed``. A row left in
``received``/``processing`` after a crash is resumed on the next start, unless
its reply was already sent, in which case it is simply closed as ``replied``.

Each part of a reply of several parts (or of a streamed draft) has its own
custody row in ``reply_parts``: written ``pending`` before it is sent, then
``sent`` with its platform id, ``failed`` (certainly not delivered) or
``uncertain`` (the answer was lost). The writes are folded into the reply's own
(a part's ``sent`` and the next part's ``pending`` are one transaction). A reply
of one part has no part rows: its own row is that part's custody.

A collected burst (``burst: collect``) is several inbound rows answered by one
turn: each names the burst's last message in ``answered_with``, the reply's
``reply_to`` is that last message, and every status written for the last one is
written for the whole burst in the same statement, so a burst is replied,
failed or resumed as one and none of its messages looks unanswered.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from pyclaw_app.channels.contract import SubmitResult
from pyclaw_app.errors import StoreError
from pyclaw_app.model import Address, Attachment, Inbound, MessageStatus
from pyclaw_app.store.db import Database

__all__ = ["HistoryTurn", "Journal", "JournalRow", "ReplyPart", "UnstorableMessage"]


class UnstorableMessage(StoreError):
    """The message itself cannot be stored (a text UTF-8 cannot encode, a field of the wrong
    type, too big for SQLite), so no retry ever could; the intake keeps it as a dead letter.
    A failing database raises a plain :class:`StoreError` instead (or makes writes wait)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"message cannot be stored: {reason}")
        self.reason = reason

Part = tuple[int, str]
"""(index, platform id) of a part that went out."""

_INSERT_IN = """
INSERT OR IGNORE INTO messages (direction, channel, account, chat, thread, conv, sender_id,
    sender_name, text, attachments, meta, platform_id, status, created_at, updated_at)
VALUES ('in', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'received', ?, ?)
"""
_COLUMNS = ("id, direction, channel, account, chat, thread, conv, sender_id, sender_name, text, "
            "attachments, meta, platform_id, reply_to, status, error, attempts, created_at, "
            "updated_at, answered_with")
_SET = "(id=? OR answered_with=?)"
"""An inbound message and, when it led a collected burst, the messages answered with it:
their fate is the lead's, written in the same statement."""
_RESET_POINT = "COALESCE((SELECT reset_after_id FROM conversations WHERE conv=?), 0)"
"""The last question a conversation's reset forgot (0: never reset); binds its conv."""


@dataclass(frozen=True, slots=True)
class JournalRow:
    id: int
    direction: str
    channel: str
    account: str
    chat: str
    thread: str | None
    conv: str
    sender_id: str
    sender_name: str
    text: str
    attachments: str | None
    meta: str | None
    platform_id: str | None
    reply_to: int | None
    status: str
    error: str | None
    attempts: int
    created_at: float
    updated_at: float
    answered_with: int | None = None
    """For an inbound message of a collected burst (``burst: collect``): the burst's last
    message, whose reply answers this one too (its own id for that last one)."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JournalRow:
        return cls(**dict(row))

    @property
    def address(self) -> Address:
        return Address(self.channel, self.chat, self.account, self.thread)

    def to_inbound(self) -> Inbound:
        meta: dict[str, Any] = json.loads(self.meta) if self.meta else {}
        attachments = tuple(Attachment(**a) for a in json.loads(self.attachments or "[]"))
        return Inbound(
            address=self.address, platform_id=self.platform_id or str(self.id), text=self.text,
            sender_id=self.sender_id, sender_name=self.sender_name, attachments=attachments,
            is_group=bool(meta.get("is_group")), mentioned=bool(meta.get("mentioned")),
            reply_to_bot=bool(meta.get("reply_to_bot")), ts=float(meta.get("ts", self.created_at)),
            truncated_from=meta.get("truncated_from"),
        )


@dataclass(frozen=True, slots=True)
class ReplyPart:
    out_id: int
    idx: int
    text: str
    status: str  # pending | sent | uncertain | failed
    platform_id: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class HistoryTurn:
    role: str  # "user" | "assistant"
    text: str
    id: int
    inbound_id: int
    """The question this turn belongs to (its own id for a question, the one it answers for
    a reply, the last message of its burst for a collected one): the conversation's order,
    which row ids are not in a burst."""


class Journal:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def submit(self, inbound: Inbound, *, repaired: Sequence[str] = ()) -> SubmitResult:
        """Journal ``inbound``; returns after COMMIT. A known platform id is a duplicate.

        ``repaired`` names the fields the intake rewrote to make them storable; the row's
        meta keeps them. Raises :class:`UnstorableMessage` for a message no retry could
        store, before anything is written.
        """
        now = time.time()
        a = inbound.address
        refusal = _refusal(inbound)
        if refusal is not None:
            raise UnstorableMessage(refusal)
        try:
            meta = json.dumps({"is_group": inbound.is_group, "mentioned": inbound.mentioned,
                               "reply_to_bot": inbound.reply_to_bot, "ts": inbound.ts,
                               "truncated_from": inbound.truncated_from,
                               **({"repaired": list(repaired)} if repaired else {})})
            attachments = (json.dumps([asdict(x) for x in inbound.attachments])
                           if inbound.attachments else None)
        except (TypeError, ValueError) as exc:  # ensure_ascii: a surrogate is no error here
            raise UnstorableMessage(f"its details or attachments are not JSON: {exc}") from exc
        params = (a.channel, a.account, a.chat, a.thread, a.key, inbound.sender_id,
                  inbound.sender_name, inbound.text, attachments, meta, inbound.platform_id, now,
                  now)

        def op(conn: sqlite3.Connection) -> SubmitResult | str:
            try:
                cur = conn.execute(_INSERT_IN, params)
            except sqlite3.DataError as exc:
                # Too big for SQLite: refused while binding, so the batch's transaction is
                # intact and its other writes commit; returned, not raised, for that reason.
                return f"too big for the database ({exc})"
            if cur.rowcount == 1 and cur.lastrowid is not None:
                return SubmitResult(cur.lastrowid, duplicate=False)
            row = conn.execute(
                "SELECT id FROM messages WHERE direction='in' AND channel=? AND platform_id=?",
                (a.channel, inbound.platform_id)).fetchone()
            assert row is not None
            return SubmitResult(int(row[0]), duplicate=True)

        result: SubmitResult | str = await self.db.write(op)
        if isinstance(result, str):
            raise UnstorableMessage(result)
        return result

    async def set_status(self, message_id: int, status: MessageStatus,
                         error: str | None = None) -> None:
        """The message's status, and its burst's when it led one (``_SET``)."""
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE messages SET status=?, error=?, updated_at=?,"
                " attempts = attempts + CASE WHEN ? = 'processing' THEN 1 ELSE 0 END"
                f" WHERE {_SET}",
                (status.value, error, time.time(), status.value, message_id, message_id))

        await self.db.write(op)

    def mark_processing(self, message_id: int) -> None:
        """Queue the 'processing' mark without waiting for its commit.

        Nothing depends on it being durable: after a crash 'received' and 'processing' rows
        are resumed alike, and the writer keeps queue order, so the reply's 'pending' row is
        still committed after it. Not waiting took p50 from 190 to 29 ms at 200 msg/s.
        """
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE messages SET status='processing', error=NULL, updated_at=?,"
                         f" attempts = attempts + 1 WHERE {_SET}",
                         (time.time(), message_id, message_id))

        self.db.write_nowait(op)

    async def add_outbound(self, inbound_id: int, address: Address, text: str,
                           first_part: str | None = None) -> int:
        """Record a reply as ``pending`` before it is sent (outbound custody), with its first
        part ``pending`` too when it is about to go."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> int:
            out_id = _insert_reply(conn, inbound_id, address, text, now)
            if first_part is not None:
                _begin_part(conn, out_id, 0, first_part, now)
            return out_id

        out_id: int = await self.db.write(op)
        return out_id

    async def begin_part(self, out_id: int, idx: int, text: str) -> None:
        """Part ``idx`` is about to be sent: ``pending`` is durable before the request goes."""
        now = time.time()
        await self.db.write(lambda conn: _begin_part(conn, out_id, idx, text, now))

    async def part_sent(self, out_id: int, part: Part, *, text: str | None = None,
                        next_part: tuple[int, str] | None = None) -> None:
        """Part went out (its final ``text`` when a draft was edited into it); the next part,
        when there is one, becomes ``pending`` in the same transaction."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            _part_sent(conn, out_id, part, text, now)
            if next_part is not None:
                _begin_part(conn, out_id, next_part[0], next_part[1], now)

        await self.db.write(op)

    async def part_failed(self, out_id: int, idx: int, status: str, error: str) -> None:
        """Part ``idx`` did not go out (``failed``) or may have (``uncertain``)."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE reply_parts SET status=?, error=?, updated_at=?"
                         " WHERE out_id=? AND idx=?", (status, error, now, out_id, idx))

        await self.db.write(op)

    async def add_outbound_file(self, inbound_id: int, address: Address, label: str,
                                file: str) -> int:
        """Record a reply whose first part is a file (the assistant sent one before it
        answered): the reply ``pending`` with ``label`` as its text until the answer's text
        replaces it, and part 0 ``pending`` with ``file`` (its JSON reference), in one
        transaction, before the upload starts."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> int:
            out_id = _insert_reply(conn, inbound_id, address, label, now)
            _begin_file_part(conn, out_id, 0, label, file, now)
            return out_id

        out_id: int = await self.db.write(op)
        return out_id

    async def begin_file_part(self, out_id: int, idx: int, label: str, file: str) -> None:
        """Part ``idx`` is a file about to be uploaded: ``pending`` with its reference, durable
        before the upload starts (a crash then leaves it for restart to mark uncertain)."""
        now = time.time()
        await self.db.write(lambda conn: _begin_file_part(conn, out_id, idx, label, file, now))

    async def begin_text(self, out_id: int, idx: int, part: str, text: str) -> None:
        """The answer's first text part is about to go as part ``idx`` of a reply that began
        with something else (a file): the reply's row takes the whole ``text`` in the same
        transaction, so Retry of a half-sent reply finds what is left to send."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE messages SET text=?, updated_at=? WHERE id=?", (text, now, out_id))
            _begin_part(conn, out_id, idx, part, now)

        await self.db.write(op)

    async def part_files(self, out_id: int) -> dict[int, str]:
        """The reply's file parts: index -> the file's JSON reference."""
        rows = await self.db.fetchall(
            "SELECT idx, file FROM reply_parts WHERE out_id=? AND file IS NOT NULL ORDER BY idx",
            (out_id,))
        return {int(r["idx"]): str(r["file"]) for r in rows}

    async def parts(self, out_id: int) -> list[ReplyPart]:
        rows = await self.db.fetchall(
            "SELECT out_id, idx, text, status, platform_id, error FROM reply_parts"
            " WHERE out_id=? ORDER BY idx", (out_id,))
        return [ReplyPart(**dict(r)) for r in rows]

    async def reopen_reply(self, out_id: int, inbound_id: int) -> None:
        """A failed reply is delivered again from its first unsent part (Retry)."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM reply_parts WHERE out_id=? AND status='failed'", (out_id,))
            conn.execute("UPDATE messages SET status='pending', error=NULL, updated_at=?"
                         " WHERE id=?", (now, out_id))
            conn.execute("UPDATE messages SET status='processing', error=NULL, updated_at=?,"
                         f" attempts = attempts + 1 WHERE {_SET}", (now, inbound_id, inbound_id))

        await self.db.write(op)

    async def complete_reply(self, out_id: int, inbound_id: int, platform_ids: list[str],
                             text: str | None = None, last_part: Part | None = None) -> None:
        """Mark the reply sent (with its final ``text`` when it was streamed) and its inbound
        message replied, in one transaction, with the part that went out last."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            if last_part is not None:
                _part_sent(conn, out_id, last_part, None, now)
            conn.execute(
                "UPDATE messages SET status='sent', platform_id=?, text=COALESCE(?, text),"
                " updated_at=? WHERE id=?", (",".join(platform_ids), text, now, out_id))
            conn.execute(
                f"UPDATE messages SET status='replied', error=NULL, updated_at=? WHERE {_SET}",
                (now, inbound_id, inbound_id))

        await self.db.write(op)

    async def close_with_notice(self, out_id: int, inbound_id: int, platform_ids: list[str],
                                reason: str, status: MessageStatus,
                                last_part: Part | None = None) -> None:
        """A notice went out instead of a reply (failure, pairing, rate limit).

        The notice row keeps ``reason`` as its error, which is how history leaves notices
        out of later prompts; the inbound row closes as ``status`` (failed or skipped).
        """
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            if last_part is not None:
                _part_sent(conn, out_id, last_part, None, now)
            conn.execute(
                "UPDATE messages SET status='sent', platform_id=?, error=?, updated_at=?"
                " WHERE id=?", (",".join(platform_ids), reason, now, out_id))
            conn.execute(f"UPDATE messages SET status=?, error=?, updated_at=? WHERE {_SET}",
                         (status.value, reason, now, inbound_id, inbound_id))

        await self.db.write(op)

    async def fail_reply(self, out_id: int, inbound_id: int, error: str,
                         part: tuple[int, str] | None = None) -> None:
        """Close the reply as failed; ``part`` is (index, ``failed`` | ``uncertain``) of the
        part that did not (or may not have) gone out."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            if part is not None:
                conn.execute("UPDATE reply_parts SET status=?, error=?, updated_at=?"
                             " WHERE out_id=? AND idx=?", (part[1], error, now, out_id, part[0]))
            conn.execute("UPDATE messages SET status='failed', error=?, updated_at=?"
                         " WHERE id=?", (error, now, out_id))
            conn.execute("UPDATE messages SET status='failed', error=?, updated_at=?"
                         f" WHERE {_SET}", (error, now, inbound_id, inbound_id))

        await self.db.write(op)

    async def settle_interrupted_parts(self) -> int:
        """Parts still ``pending`` under a reply already closed (a voice reply, uploaded
        after its text was recorded sent, when the process died) become ``uncertain``: the
        upload may have arrived, so it is never sent again, and Logs says so. Only at a
        start, before any turn runs; returns how many."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE reply_parts SET status='uncertain', error=?, updated_at=?"
                " WHERE status='pending' AND out_id IN (SELECT id FROM messages"
                " WHERE direction='out' AND status IN ('sent', 'failed'))",
                ("interrupted during the upload; it may have arrived, so it is not sent "
                 "again", now))
            return int(cur.rowcount or 0)

        settled: int = await self.db.write(op)
        return settled

    async def get(self, message_id: int) -> JournalRow | None:
        row = await self.db.fetchone(f"SELECT {_COLUMNS} FROM messages WHERE id=?", (message_id,))
        return JournalRow.from_row(row) if row else None

    async def unfinished(self, *, conv: str | None = None,
                         claimed_by: int | None = None) -> list[JournalRow]:
        """Inbound rows a crash left open, oldest first: of one conversation, or of the
        conversations instance ``claimed_by`` holds (shared instances on PostgreSQL,
        ``store/cluster.py``)."""
        where, params = "", ()
        if conv is not None:
            where, params = " AND conv=?", (conv,)
        elif claimed_by is not None:
            where = " AND conv IN (SELECT conv FROM conv_claims WHERE instance=?)"
            params = (claimed_by,)
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM messages WHERE direction='in'"
            f" AND status IN ('received', 'processing'){where} ORDER BY id", params)
        return [JournalRow.from_row(r) for r in rows]

    async def waiting_in(self, conv: str) -> list[JournalRow]:
        """The conversation's inbound messages no turn has taken yet, oldest first: what a
        burst may collect. A message once collected belongs to its burst for good, so it is
        never offered again (a retry answers the burst, not the message)."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM messages WHERE status='received' AND conv=?"
            " AND direction='in' AND answered_with IS NULL ORDER BY id", (conv,))
        return [JournalRow.from_row(r) for r in rows]

    async def collect(self, message_ids: Sequence[int]) -> None:
        """Answer ``message_ids`` (oldest first) together: each names the last, and all but
        the last are ``processing`` from now on (the last is marked when its turn starts).
        Durable before the turn asks the model, so a crash resumes the burst as one."""
        *earlier, lead = message_ids
        now = time.time()

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE messages SET answered_with=?, updated_at=? WHERE id=?",
                         (lead, now, lead))
            conn.execute(
                "UPDATE messages SET answered_with=?, status='processing', error=NULL,"
                f" attempts = attempts + 1, updated_at=? WHERE id IN ({_marks(earlier)})",
                (lead, now, *earlier))

        await self.db.write(op)

    async def bot_spoke_in(self, conv: str) -> bool:
        """Whether the bot has a reply in this conversation, delivered or on its way: a
        thread it took part in (``policy.may_follow_up``). Kept in the journal, so the rule
        holds across restarts."""
        row = await self.db.fetchone(
            "SELECT 1 FROM messages WHERE conv=? AND direction='out'"
            " AND status IN ('sent', 'pending') LIMIT 1", (conv,))
        return row is not None

    async def reply_of(self, inbound_id: int) -> JournalRow | None:
        """The latest reply to ``inbound_id``, or to the burst it was collected into."""
        row = await self.db.fetchone(
            f"SELECT {_COLUMNS} FROM messages WHERE direction='out' AND reply_to=COALESCE("
            "(SELECT answered_with FROM messages WHERE id=?), ?) ORDER BY id DESC LIMIT 1",
            (inbound_id, inbound_id))
        return JournalRow.from_row(row) if row else None

    async def history(self, conv: str, before_id: int, limit: int = 100,
                      after_id: int = 0) -> list[HistoryTurn]:
        """The exchanges of a conversation whose question lies between ``after_id`` and
        ``before_id`` (and after the last reset), newest first, each answer before its
        question; at most ``limit`` exchanges.

        An exchange is a replied question and its latest reply without an error (a notice
        is not a reply), paired by ``reply_to``: in a burst the replies to earlier questions
        are journaled after later questions, so cutting by row id showed the model
        "user, user" and each reply answered every earlier message again (issue 17). A
        question without a reply (failed, skipped, unfinished) is left out with its notice:
        shown alone, the next answer would answer it too.

        ``after_id`` is the last question the stored summary covers: reading the exchanges
        before it anyway made every message of a long chat read up to ``limit`` of them
        (bench.soak, 1,000 messages a chat).

        A collected burst (``burst: collect``) is one exchange of several questions: each
        is a user turn of its own, as it was sent, and the one reply follows the last. When
        ``before_id`` leads a burst, its earlier messages come first (newest first): they
        are the start of the question being answered now. ``limit`` counts questions."""
        # The lower bound is a scalar subquery, not a join, so SQLite uses it as an index
        # range bound: with a join it walked a long chat's every row (5.7 ms vs 0.2 ms for
        # 3,660 rows in one chat, bench.soak).
        # A plain join on reply_to, newest reply first, with older replies of one question
        # skipped below: a MAX(id) subquery per question cost 2.4 ms instead of 0.9 for 500
        # exchanges.
        rows = await self.db.fetchall(
            "SELECT q.id, q.text, a.id AS answer_id, a.text AS answer,"
            " COALESCE(q.answered_with, q.id) AS lead FROM messages q"
            " JOIN messages a ON a.reply_to=COALESCE(q.answered_with, q.id)"
            "   AND a.direction='out' AND a.status='sent' AND a.error IS NULL"
            " WHERE q.conv=? AND q.id < ? AND q.id > MAX(COALESCE("
            "   (SELECT reset_after_id FROM conversations WHERE conv=?), 0), ?)"
            " AND q.direction='in' AND q.status='replied'"
            " ORDER BY q.id DESC, a.id DESC LIMIT ?", (conv, before_id, conv, after_id, limit))
        burst = await self.db.fetchall(
            "SELECT id, text FROM messages WHERE answered_with=? AND id<? ORDER BY id DESC",
            (before_id, before_id))
        turns = [HistoryTurn("user", r["text"], r["id"], before_id) for r in burst]
        for r in rows:
            if turns and turns[-1].id == r["id"]:
                continue  # an older reply of the question just taken
            if not turns or turns[-1].inbound_id != r["lead"]:  # a new exchange: its answer
                turns.append(HistoryTurn("assistant", r["answer"], r["answer_id"], r["lead"]))
            turns.append(HistoryTurn("user", r["text"], r["id"], r["lead"]))
        return turns

    async def reset_conversation(self, conv: str, after_id: int | None = None) -> None:
        """History forgets the questions up to ``after_id`` (the ``/reset`` message: what a
        burst brought after it is kept) or, without it, every question so far."""
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO conversations (conv, reset_after_id, updated_at)"
                " VALUES (?, COALESCE(?, (SELECT MAX(id) FROM messages), 0), ?)"
                " ON CONFLICT(conv) DO UPDATE SET reset_after_id=excluded.reset_after_id,"
                " summary=NULL, updated_at=excluded.updated_at", (conv, after_id, time.time()))

        await self.db.write(op)

    async def recent(self, limit: int = 200, channel: str | None = None,
                     conv: str | None = None) -> list[JournalRow]:
        """Newest rows first."""
        where, params = [], []
        if channel:
            where.append("channel=?")
            params.append(channel)
        if conv:
            where.append("conv=?")
            params.append(conv)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM messages {clause} ORDER BY id DESC LIMIT ?",
            (*params, limit))
        return [JournalRow.from_row(r) for r in rows]

    async def since_reset(self, conv: str, limit: int = 200) -> list[JournalRow]:
        """The conversation's rows after its last reset, newest first: what it reads as
        now, cut where ``history`` cuts (a question after ``reset_after_id``, a reply to
        one), so a chat shown again after a reset does not bring the old exchange back.
        The ``/reset`` message and its answer lie at the cut and are left out with it."""
        rows = await self.db.fetchall(
            f"SELECT {_COLUMNS} FROM messages WHERE conv=? AND id > {_RESET_POINT}"
            f" AND (direction='in' OR COALESCE(reply_to, id) > {_RESET_POINT})"
            " ORDER BY id DESC LIMIT ?", (conv, conv, conv, limit))
        return [JournalRow.from_row(r) for r in rows]

    async def counts_since(self, since: float) -> dict[str, int]:
        rows = await self.db.fetchall(
            "SELECT direction, status, COUNT(*) AS n FROM messages WHERE created_at >= ?"
            " GROUP BY direction, status", (since,))
        counts = {"in": 0, "out": 0, "failed": 0}
        for r in rows:
            if r["direction"] == "in":
                counts["in"] += r["n"]
                if r["status"] == "failed":
                    counts["failed"] += r["n"]
            elif r["status"] == "sent":
                counts["out"] += r["n"]
        return counts


def _refusal(inbound: Inbound) -> str | None:
    """Why a text column of ``inbound`` cannot be stored, if one cannot. SQLite binds any
    ``str`` as UTF-8, which a lone surrogate cannot be encoded as: checked here, so the
    reason names the field."""
    a = inbound.address
    for name, value in (("channel", a.channel), ("account", a.account), ("chat", a.chat),
                        ("thread", a.thread), ("platform_id", inbound.platform_id),
                        ("sender_id", inbound.sender_id), ("sender_name", inbound.sender_name),
                        ("text", inbound.text)):
        if value is None and name == "thread":
            continue
        if not isinstance(value, str):
            return f"{name} is {type(value).__name__}, not text"
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            return (f"{name} holds U+{ord(value[exc.start]):04X} at index {exc.start}, which "
                    "UTF-8 cannot encode")
    return None


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" * len(values))


def _insert_reply(conn: sqlite3.Connection, inbound_id: int, address: Address, text: str,
                  now: float) -> int:
    """The reply's own row, ``pending``: written before any of it is sent."""
    cur = conn.execute(
        "INSERT INTO messages (direction, channel, account, chat, thread, conv, sender_id,"
        " sender_name, text, reply_to, status, created_at, updated_at)"
        " VALUES ('out', ?, ?, ?, ?, ?, 'assistant', 'assistant', ?, ?, 'pending', ?, ?)",
        (address.channel, address.account, address.chat, address.thread, address.key,
         text, inbound_id, now, now))
    assert cur.lastrowid is not None
    return cur.lastrowid


def _begin_part(conn: sqlite3.Connection, out_id: int, idx: int, text: str, now: float) -> None:
    conn.execute("INSERT INTO reply_parts (out_id, idx, text, status, updated_at)"
                 " VALUES (?, ?, ?, 'pending', ?) ON CONFLICT (out_id, idx) DO UPDATE SET"
                 " text=excluded.text, status='pending', platform_id=NULL, error=NULL,"
                 " updated_at=excluded.updated_at", (out_id, idx, text, now))


def _begin_file_part(conn: sqlite3.Connection, out_id: int, idx: int, label: str, file: str,
                     now: float) -> None:
    conn.execute("INSERT INTO reply_parts (out_id, idx, text, status, file, updated_at)"
                 " VALUES (?, ?, ?, 'pending', ?, ?) ON CONFLICT (out_id, idx) DO UPDATE SET"
                 " text=excluded.text, status='pending', file=excluded.file, platform_id=NULL,"
                 " error=NULL, updated_at=excluded.updated_at", (out_id, idx, label, file, now))


def _part_sent(conn: sqlite3.Connection, out_id: int, part: Part, text: str | None,
               now: float) -> None:
    conn.execute("UPDATE reply_parts SET status='sent', platform_id=?, text=COALESCE(?, text),"
                 " error=NULL, updated_at=? WHERE out_id=? AND idx=?",
                 (part[1], text, now, out_id, part[0]))
