"""Per-user notes in SQLite: what the ``save_note``/``recall_notes`` tools read and write.

A note belongs to one sender on one channel, so two people talking to the
same bot never see each other's notes, even in a shared group chat.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiosqlite

from pyclaw_app.store.db import Database

__all__ = ["Note", "NotesStore"]

MAX_NOTE_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    text: str
    created_at: float


class NotesStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, channel: str, user_id: str, text: str) -> int:
        params = (channel, user_id, text[:MAX_NOTE_CHARS], time.time())

        async def op(conn: aiosqlite.Connection) -> int:
            cur = await conn.execute(
                "INSERT INTO notes (channel, user_id, text, created_at) VALUES (?, ?, ?, ?)",
                params)
            assert cur.lastrowid is not None
            return cur.lastrowid

        note_id: int = await self.db.write(op)
        return note_id

    async def find(self, channel: str, user_id: str, query: str = "",
                   limit: int = 20) -> list[Note]:
        """The user's notes, newest first; ``query`` filters by a case-insensitive substring."""
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        rows = await self.db.fetchall(
            "SELECT id, text, created_at FROM notes WHERE channel=? AND user_id=?"
            " AND text LIKE ? ESCAPE '\\' ORDER BY id DESC LIMIT ?",
            (channel, user_id, pattern, limit))
        return [Note(r["id"], r["text"], r["created_at"]) for r in rows]

    async def delete(self, channel: str, user_id: str, note_id: int) -> bool:
        async def op(conn: aiosqlite.Connection) -> bool:
            cur = await conn.execute(
                "DELETE FROM notes WHERE id=? AND channel=? AND user_id=?",
                (note_id, channel, user_id))
            return cur.rowcount == 1

        deleted: bool = await self.db.write(op)
        return deleted
