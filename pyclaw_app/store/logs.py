"""Per-channel log lines in SQLite, so the UI can page, filter and search them."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from pyclaw_app.secrets import redactor
from pyclaw_app.store.db import Database

__all__ = ["ChannelLog"]


class ChannelLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def append(self, channel: str, level: str, message: str, data: dict[str, Any] | None = None,
               ts: float | None = None) -> None:
        """Queue a line (redacted); it is committed with the next batch, nobody waits for it."""
        payload = redactor(json.dumps(data, default=str)) if data else None
        params = (ts or time.time(), channel, level, redactor(message), payload)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO channel_log (ts, channel, level, message, data)"
                         " VALUES (?, ?, ?, ?, ?)", params)

        self.db.write_nowait(op)

    async def page(self, *, channel: str | None = None, level: str | None = None,
                   search: str | None = None, before_id: int | None = None,
                   since: float | None = None, until: float | None = None,
                   limit: int = 100) -> list[dict[str, Any]]:
        """Newest first; pass the last row's id as ``before_id`` for the next page."""
        where, params = [], []
        for clause, value in (("channel = ?", channel), ("level = ?", level),
                              ("id < ?", before_id), ("ts >= ?", since), ("ts <= ?", until)):
            if value is not None:
                where.append(clause)
                params.append(value)
        if search:
            where.append("(message LIKE ? ESCAPE '\\' OR data LIKE ? ESCAPE '\\')")
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%"
            params += [pattern, pattern]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = await self.db.fetchall(
            f"SELECT id, ts, channel, level, message, data FROM channel_log {clause}"
            " ORDER BY id DESC LIMIT ?", (*params, limit))
        return [{**dict(r), "data": json.loads(r["data"]) if r["data"] else {}} for r in rows]
