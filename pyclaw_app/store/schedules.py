"""Scheduled jobs and their firings.

A job speaks to one conversation (an :class:`Address`) and keeps its next run. Firing
an occurrence is one transaction: the occurrence's row in ``schedule_runs`` (unique per
job and occurrence, so a second attempt is a no-op), the journal row that carries it
(status ``scheduled`` until its message is delivered; the scheduler then closes it
through the journal's own reply custody) and the job's next run. A crash on either side
of that transaction therefore leaves the occurrence either not fired (it fires on the
next pass) or fired exactly once (its journal row is resumed).

A job whose creator may no longer talk to the assistant is *refused* at fire time: the
occurrence is recorded as skipped with the reason, and the job is paused with that reason
(``paused_reason``), in one transaction. Finished runs are pruned by age
(``prune_runs``); an open firing and each job's latest run are always kept.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

from pyclaw_app.model import Address
from pyclaw_app.schedules import When
from pyclaw_app.store.db import Database
from pyclaw_app.store.journal import JournalRow

__all__ = ["FINISHED", "SCHEDULED", "Job", "Run", "ScheduleStore"]

SCHEDULED = "scheduled"
"""Journal status of a firing whose message is not delivered yet (apart from the inbound
``received``/``processing``, which the intake resumes through the agent)."""

FINISHED = ("replied", "skipped")
"""Journal statuses of a firing that is over: its run may be pruned. A ``failed`` one is
kept, since the owner may still Retry it (which finds it through its run)."""

_JOB_COLUMNS = ("id, channel, account, chat, thread, created_by, creator_name, is_group, action,"
                " body, at, cron, tz, missed, enabled, next_run, last_run, created_at,"
                " paused_reason")
_ROW_COLUMNS = ", ".join(f.name for f in fields(JournalRow))


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    address: Address
    created_by: str
    creator_name: str
    is_group: bool
    action: str  # "text" | "task"
    body: str
    when: When
    missed: str  # "run_once" | "skip"
    enabled: bool
    next_run: float | None
    last_run: float | None
    created_at: float
    paused_reason: str | None = None
    """Why the gateway paused the job (its creator lost access); None otherwise."""

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        return cls(row["id"], Address(row["channel"], row["chat"], row["account"], row["thread"]),
                   row["created_by"], row["creator_name"], bool(row["is_group"]), row["action"],
                   row["body"], When(row["at"], row["cron"], row["tz"]), row["missed"],
                   bool(row["enabled"]), row["next_run"], row["last_run"], row["created_at"],
                   row["paused_reason"])


@dataclass(frozen=True, slots=True)
class Run:
    """One occurrence of a job: ``fired`` (journal row ``message_id``) or ``skipped``
    (``reason`` says why, when it was not the missed policy)."""

    job_id: int
    scheduled_for: float
    status: str
    message_id: int | None
    created_at: float
    reason: str | None = None


class ScheduleStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every change made through this store (the scheduler
        wakes on it; changes from elsewhere, the CLI or the assistant's tool, it polls)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    async def add(self, address: Address, *, created_by: str, creator_name: str,
                  is_group: bool, action: str, body: str, when: When, missed: str,
                  now: float) -> Job:
        params = (address.channel, address.account, address.chat, address.thread, address.key,
                  created_by, creator_name, int(is_group), action, body, when.at, when.cron,
                  when.tz, missed, when.first(now), now, now)

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "INSERT INTO schedules (channel, account, chat, thread, conv, created_by,"
                " creator_name, is_group, action, body, at, cron, tz, missed, next_run,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
                " ?, ?)", params)
            assert cur.lastrowid is not None
            return cur.lastrowid

        job_id: int = await self.db.write(op)
        self._changed()
        job = await self.get(job_id)
        assert job is not None
        return job

    async def get(self, job_id: int) -> Job | None:
        row = await self.db.fetchone(f"SELECT {_JOB_COLUMNS} FROM schedules WHERE id=?",
                                     (job_id,))
        return Job.from_row(row) if row else None

    async def jobs(self, *, conv: str | None = None, channel: str | None = None) -> list[Job]:
        """Jobs in the order they were made, of one conversation or channel if given."""
        where, params = [], []
        if conv is not None:
            where.append("conv=?")
            params.append(conv)
        if channel is not None:
            where.append("channel=?")
            params.append(channel)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetchall(f"SELECT {_JOB_COLUMNS} FROM schedules{clause} ORDER BY id",
                                      tuple(params))
        return [Job.from_row(r) for r in rows]

    async def count(self, conv: str) -> int:
        row = await self.db.fetchone("SELECT COUNT(*) AS n FROM schedules WHERE conv=?"
                                     " AND next_run IS NOT NULL", (conv,))
        return int(row["n"]) if row else 0

    async def set_enabled(self, job_id: int, enabled: bool, next_run: float | None,
                          now: float) -> bool:
        """Pause, or resume with ``next_run``; False when there is no such job. Either way
        the gateway's reason for an earlier pause is the owner's decision now, so it goes."""
        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("UPDATE schedules SET enabled=?, next_run=?, updated_at=?,"
                               " paused_reason=NULL WHERE id=?",
                               (int(enabled), next_run, now, job_id))
            return cur.rowcount == 1

        done: bool = await self.db.write(op)
        self._changed()
        return done

    async def delete(self, job_id: int, conv: str | None = None) -> bool:
        """Delete a job (of ``conv`` only, when given) with its run history; a firing
        already journaled is still delivered."""
        def op(conn: sqlite3.Connection) -> bool:
            if conv is not None and conn.execute(
                    "SELECT 1 FROM schedules WHERE id=? AND conv=?", (job_id, conv)
            ).fetchone() is None:
                return False
            cur = conn.execute("DELETE FROM schedules WHERE id=?", (job_id,))
            return cur.rowcount == 1

        done: bool = await self.db.write(op)
        self._changed()
        return done

    async def due(self, now: float) -> list[Job]:
        rows = await self.db.fetchall(
            f"SELECT {_JOB_COLUMNS} FROM schedules WHERE enabled=1 AND next_run IS NOT NULL"
            " AND next_run <= ? ORDER BY next_run, id", (now,))
        return [Job.from_row(r) for r in rows]

    async def next_due(self) -> float | None:
        row = await self.db.fetchone("SELECT MIN(next_run) AS t FROM schedules WHERE enabled=1"
                                     " AND next_run IS NOT NULL")
        return float(row["t"]) if row and row["t"] is not None else None

    async def fire(self, job: Job, occurrence: float, next_run: float | None, text: str,
                   meta: dict[str, Any], now: float) -> int | None:
        """Journal ``occurrence`` of ``job`` and move the job on to ``next_run``, in one
        transaction. Returns the journal row's id; None when the occurrence was already
        journaled or the job changed since it was read (paused, deleted, moved on)."""
        a = job.address
        params = (a.channel, a.account, a.chat, a.thread, a.key, job.created_by,
                  job.creator_name, text, json.dumps(meta),
                  # Unique on its own; the occurrence's row in schedule_runs is what makes it once.
                  f"schedule:{job.id}:{occurrence:.0f}:{uuid.uuid4().hex[:12]}", SCHEDULED, now,
                  now)

        def op(conn: sqlite3.Connection) -> int | None:
            if not _claim(conn, job, occurrence, "fired", next_run, now):
                return None
            cur = conn.execute(
                "INSERT INTO messages (direction, channel, account, chat, thread, conv,"
                " sender_id, sender_name, text, meta, platform_id, status, created_at,"
                " updated_at) VALUES ('in', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", params)
            assert cur.lastrowid is not None
            conn.execute("UPDATE schedule_runs SET message_id=? WHERE job_id=? AND"
                         " scheduled_for=?", (cur.lastrowid, job.id, occurrence))
            return cur.lastrowid

        message_id: int | None = await self.db.write(op)
        return message_id

    async def skip(self, job: Job, occurrence: float, next_run: float | None,
                   now: float) -> bool:
        """Record ``occurrence`` as skipped (the job's missed policy) and move on."""
        done: bool = await self.db.write(
            lambda conn: _claim(conn, job, occurrence, "skipped", next_run, now))
        return done

    async def refuse(self, job: Job, occurrence: float, text: str, meta: dict[str, Any],
                     reason: str, now: float) -> int | None:
        """Journal ``occurrence`` as skipped for ``reason`` (the journal row says why, as a
        refused message's does) and pause the job with it, in one transaction. Returns the
        journal row's id; None when the occurrence was decided already or the job changed."""
        a = job.address
        params = (a.channel, a.account, a.chat, a.thread, a.key, job.created_by,
                  job.creator_name, text, json.dumps(meta),
                  f"schedule:{job.id}:{occurrence:.0f}:{uuid.uuid4().hex[:12]}", reason, now,
                  now)

        def op(conn: sqlite3.Connection) -> int | None:
            if not _claim(conn, job, occurrence, "skipped", None, now):
                return None
            cur = conn.execute(
                "INSERT INTO messages (direction, channel, account, chat, thread, conv,"
                " sender_id, sender_name, text, meta, platform_id, status, error, created_at,"
                " updated_at) VALUES ('in', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'skipped', ?, ?, ?)",
                params)
            assert cur.lastrowid is not None
            conn.execute("UPDATE schedule_runs SET message_id=?, reason=? WHERE job_id=? AND"
                         " scheduled_for=?", (cur.lastrowid, reason, job.id, occurrence))
            conn.execute("UPDATE schedules SET enabled=0, next_run=NULL, paused_reason=?,"
                         " updated_at=? WHERE id=?", (reason, now, job.id))
            return cur.lastrowid

        message_id: int | None = await self.db.write(op)
        if message_id is not None:
            self._changed()
        return message_id

    async def prune_runs(self, cutoff: float, batch: int) -> int:
        """Delete finished runs recorded before ``cutoff``, ``batch`` per write; how many
        went. Never a firing still open (its message not delivered, or failed and so still
        retried by the owner), never a job's latest run nor its last fired one."""
        removed = 0
        while True:
            keys = await self.db.fetchall(
                "SELECT r.job_id, r.scheduled_for FROM schedule_runs r"
                " LEFT JOIN messages m ON m.id = r.message_id"
                " JOIN schedules s ON s.id = r.job_id"
                " WHERE r.created_at < ?"
                " AND (r.message_id IS NULL OR m.status IN (?, ?))"
                " AND r.scheduled_for < (SELECT MAX(l.scheduled_for) FROM schedule_runs l"
                " WHERE l.job_id = r.job_id)"
                " AND (s.last_run IS NULL OR r.scheduled_for != s.last_run)"
                " ORDER BY r.created_at LIMIT ?", (cutoff, *FINISHED, batch))
            if not keys:
                return removed
            pairs = [(k["job_id"], k["scheduled_for"]) for k in keys]

            def op(conn: sqlite3.Connection, pairs: list[tuple[int, float]] = pairs) -> int:
                return sum(conn.execute("DELETE FROM schedule_runs WHERE job_id=? AND"
                                        " scheduled_for=?", pair).rowcount for pair in pairs)

            gone: int = await self.db.write(op)
            removed += gone
            if gone == 0:
                return removed

    async def open_firings(self) -> list[JournalRow]:
        """Firings whose message is not delivered yet, oldest first."""
        rows = await self.db.fetchall(
            f"SELECT {_ROW_COLUMNS} FROM messages WHERE status=? ORDER BY id", (SCHEDULED,))
        return [JournalRow.from_row(r) for r in rows]

    async def is_firing(self, message_id: int) -> bool:
        row = await self.db.fetchone("SELECT 1 FROM schedule_runs WHERE message_id=?",
                                     (message_id,))
        return row is not None

    async def reopen(self, message_id: int, now: float) -> None:
        """A failed firing is delivered again (the owner's Retry)."""
        await self.db.execute("UPDATE messages SET status=?, error=NULL, updated_at=? WHERE id=?",
                              (SCHEDULED, now, message_id))

    async def conversation_of(self, channel: str, chat: str, thread: str | None
                              ) -> tuple[str, bool]:
        """The bot account a conversation was last seen on and whether it is a group ('' and
        False if it never spoke): a job the owner makes for a chat joins that chat's
        conversation (its lane and history)."""
        row = await self.db.fetchone(
            "SELECT account, meta FROM messages WHERE direction='in' AND channel=? AND chat=?"
            " AND thread IS ? ORDER BY id DESC LIMIT 1", (channel, chat, thread))
        if row is None:
            return "", False
        meta = json.loads(row["meta"]) if row["meta"] else {}
        return str(row["account"]), bool(meta.get("is_group"))

    async def runs(self, job_id: int, limit: int = 50) -> list[Run]:
        rows = await self.db.fetchall(
            "SELECT job_id, scheduled_for, status, message_id, created_at, reason"
            " FROM schedule_runs"
            " WHERE job_id=? ORDER BY scheduled_for DESC LIMIT ?", (job_id, limit))
        return [Run(**dict(r)) for r in rows]


def _claim(conn: sqlite3.Connection, job: Job, occurrence: float, status: str,
           next_run: float | None, now: float) -> bool:
    """Take ``occurrence`` for ``job`` if it is still the job's due run and not taken yet;
    the job moves on to ``next_run`` either way it was decided."""
    current = conn.execute("SELECT next_run, enabled FROM schedules WHERE id=?",
                           (job.id,)).fetchone()
    if current is None or not current[1] or current[0] != job.next_run:
        return False  # deleted, paused or moved on since the scheduler read it
    conn.execute("UPDATE schedules SET next_run=?, last_run=?, updated_at=? WHERE id=?",
                 (next_run, occurrence if status == "fired" else job.last_run, now, job.id))
    cur = conn.execute("INSERT OR IGNORE INTO schedule_runs (job_id, scheduled_for, status,"
                       " created_at) VALUES (?, ?, ?, ?)", (job.id, occurrence, status, now))
    return cur.rowcount == 1
