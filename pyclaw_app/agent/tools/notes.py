"""Notes in SQLite: what the ``save_note``/``recall_notes``/``delete_note`` tools read and write,
and what the prompt's long-term memory shows.

Where a note was made decides who sees it (:class:`NoteScope`, the rule is in
``pyclaw_app/agent/identity.py``): a note made in a direct message is the person's, seen in
their direct messages on every account linked to them; a note made in a group is the
group's, seen in that group only. Two people never see each other's direct-message notes,
and no group ever sees one.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from pyclaw_app.store.db import Database

__all__ = ["Note", "NoteScope", "Notes", "NotesStore"]

MAX_NOTE_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    text: str
    created_at: float
    channel: str = ""
    """The channel of the account that saved it."""


@dataclass(frozen=True, slots=True)
class NoteScope:
    """Whose notes one turn reads and writes."""

    author: tuple[str, str]
    """(channel, sender id) of the account writing new notes."""
    accounts: tuple[tuple[str, str], ...] = ()
    """A direct message: every account of the person (the author's, and those linked to
    it); their direct-message notes are read."""
    group: str | None = None
    """A group: its chat id on the author's channel; only notes made in it are read."""

    @classmethod
    def person(cls, author: tuple[str, str],
               accounts: tuple[tuple[str, str], ...] = ()) -> NoteScope:
        return cls(author, tuple(dict.fromkeys((author, *accounts))))

    @classmethod
    def of_group(cls, author: tuple[str, str], chat: str) -> NoteScope:
        return cls(author, (), chat)

    def where(self) -> tuple[str, tuple[str, ...]]:
        """The SQL condition on ``notes`` (and its parameters) selecting this scope."""
        if self.group is not None:
            return "channel=? AND chat=?", (self.author[0], self.group)
        rows = ", ".join("(?, ?)" for _ in self.accounts)
        return (f"chat IS NULL AND (channel, user_id) IN (VALUES {rows})",
                tuple(v for account in self.accounts for v in account))


class NotesStore:
    """The ``notes`` table; a turn works through :meth:`scoped`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def scoped(self, scope: NoteScope) -> Notes:
        return Notes(self.db, scope)


class Notes:
    """One turn's notes: only what its scope may see, written where its scope says."""

    def __init__(self, db: Database, scope: NoteScope) -> None:
        self.db = db
        self.scope = scope

    async def add(self, text: str) -> int:
        channel, user_id = self.scope.author
        params = (channel, user_id, self.scope.group, text[:MAX_NOTE_CHARS], time.time())

        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute("INSERT INTO notes (channel, user_id, chat, text, created_at)"
                               " VALUES (?, ?, ?, ?, ?)", params)
            assert cur.lastrowid is not None
            return cur.lastrowid

        note_id: int = await self.db.write(op)
        return note_id

    async def find(self, query: str = "", limit: int = 20) -> list[Note]:
        """Newest first; ``query`` filters by a case-insensitive substring."""
        pattern = "%" + query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        where, params = self.scope.where()
        rows = await self.db.fetchall(
            f"SELECT id, text, created_at, channel FROM notes WHERE {where}"
            " AND text LIKE ? ESCAPE '\\' ORDER BY id DESC LIMIT ?", (*params, pattern, limit))
        return [Note(r["id"], r["text"], r["created_at"], r["channel"]) for r in rows]

    async def delete(self, note_id: int) -> bool:
        where, params = self.scope.where()

        def op(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(f"DELETE FROM notes WHERE id=? AND {where}", (note_id, *params))
            return cur.rowcount == 1

        deleted: bool = await self.db.write(op)
        return deleted
