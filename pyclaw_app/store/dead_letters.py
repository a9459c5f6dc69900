"""Dead letters: inbound messages the journal could not store, kept raw with the reason.

One poison message must not stop its channel: the platform is acknowledged and the
channel goes on, so the refused payload has to be kept somewhere a person can read it
(``pyclaw dead-letters``, the channel's log). A dead letter is itself always storable:
its text fields come repaired from the intake, and a payload longer than SQLite takes is
cut to what it takes.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from pyclaw_app.store.db import Database

__all__ = ["DeadLetter", "DeadLetters"]

MAX_PAGE = 500


@dataclass(frozen=True, slots=True)
class DeadLetter:
    id: int
    ts: float
    channel: str
    platform_id: str
    reason: str
    size: int
    """Bytes of ``raw``."""
    raw: bytes | None = None
    """The payload as it was refused; only :meth:`DeadLetters.get` loads it, so a listing
    stays small whatever the payloads weigh."""


class DeadLetters:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, channel: str, platform_id: str, reason: str, raw: bytes) -> DeadLetter:
        """Keep ``raw``; returns once it is durable, so the platform may then be acknowledged.
        The letter returned has the reason as stored (it says when the payload was cut)."""
        now = time.time()

        def op(conn: sqlite3.Connection) -> DeadLetter:
            # A payload refused for its size would be refused here too: keep what fits in
            # half of SQLite's row limit, the rest of the row being the reason and ids.
            room = conn.getlimit(sqlite3.SQLITE_LIMIT_LENGTH) // 2
            kept, why = raw, reason
            if len(raw) > room:
                kept = raw[:room]
                why = f"{reason} (raw cut to its first {room:,} of {len(raw):,} bytes)"
            cur = conn.execute("INSERT INTO dead_letters (ts, channel, platform_id, reason, raw)"
                               " VALUES (?, ?, ?, ?, ?)", (now, channel, platform_id, why, kept))
            assert cur.lastrowid is not None
            return DeadLetter(cur.lastrowid, now, channel, platform_id, why, len(kept))

        letter: DeadLetter = await self.db.write(op)
        return letter

    async def list(self, *, channel: str | None = None, before_id: int | None = None,
                   limit: int = 100) -> list[DeadLetter]:
        """Newest first, without ``raw``; pass the last id as ``before_id`` for the next page."""
        where, params = [], []
        for clause, value in (("channel = ?", channel), ("id < ?", before_id)):
            if value is not None:
                where.append(clause)
                params.append(value)
        filters = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetchall(
            "SELECT id, ts, channel, platform_id, reason, length(raw) AS size FROM dead_letters"
            f" {filters} ORDER BY id DESC LIMIT ?", (*params, max(1, min(limit, MAX_PAGE))))
        return [DeadLetter(**dict(r)) for r in rows]

    async def count(self, channel: str | None = None) -> int:
        if channel is None:
            row = await self.db.fetchone("SELECT COUNT(*) FROM dead_letters")
        else:
            row = await self.db.fetchone("SELECT COUNT(*) FROM dead_letters WHERE channel = ?",
                                         (channel,))
        return int(row[0]) if row is not None else 0

    async def get(self, dead_id: int) -> DeadLetter | None:
        row = await self.db.fetchone(
            "SELECT id, ts, channel, platform_id, reason, length(raw) AS size, raw"
            " FROM dead_letters WHERE id = ?", (dead_id,))
        return DeadLetter(**dict(row)) if row is not None else None
