"""Each channel's small persistent key/value store: the cursors a restart must resume from
(a Matrix ``since`` token, an IMAP UIDVALIDITY/UID, a Telegram update offset)."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from pyclaw_app.store.db import Database

__all__ = ["ChannelStateStore", "ChannelStates"]


class ChannelStateStore:
    """One channel's view (``ctx.state``); values are stored as JSON."""

    def __init__(self, db: Database, channel: str) -> None:
        self._db = db
        self.channel = channel

    async def get(self, key: str, default: Any = None) -> Any:
        row = await self._db.fetchone(
            "SELECT value FROM channel_state WHERE channel=? AND key=?", (self.channel, key))
        return json.loads(row["value"]) if row is not None else default

    async def set(self, key: str, value: Any) -> None:
        encoded = json.dumps(value)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO channel_state (channel, key, value, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT(channel, key) DO UPDATE SET value=excluded.value,"
                " updated_at=excluded.updated_at", (self.channel, key, encoded, time.time()))

        await self._db.write(op)

    async def delete(self, key: str) -> None:
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM channel_state WHERE channel=? AND key=?",
                         (self.channel, key))

        await self._db.write(op)


class ChannelStates:
    def __init__(self, db: Database) -> None:
        self._db = db

    def of(self, channel: str) -> ChannelStateStore:
        return ChannelStateStore(self._db, channel)

    async def forget(self, channel: str) -> None:
        """A removed channel's cursors go with it (a new one of that name starts afresh)."""
        def op(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM channel_state WHERE channel=?", (channel,))

        await self._db.write(op)
