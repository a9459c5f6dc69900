"""Per-conversation agent state in the ``conversations`` table.

The journal owns ``reset_after_id`` (``/reset``); the agent adds what it
needs to carry between turns: the compaction summary and the last question
it covers, the model picked with ``/model``, and whether the user was
already told that a fallback model is answering. Both points count questions
(inbound ids): an exchange is before or after them as a whole, its reply with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import aiosqlite

from pyclaw_app.store.db import Database

__all__ = ["ConversationState", "Conversations"]


@dataclass(frozen=True, slots=True)
class ConversationState:
    summary: str | None = None
    summary_until: int = 0
    """The last question (inbound id) the summary covers, with its reply; history resumes
    with the next question."""
    model: str | None = None
    """``provider:model`` chosen with /model, or None for the configured chain."""
    fallback_notified: bool = False


class Conversations:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, conv: str) -> ConversationState:
        row = await self.db.fetchone(
            "SELECT reset_after_id, summary, summary_until, model, fallback_notified"
            " FROM conversations WHERE conv=?", (conv,))
        if row is None:
            return ConversationState()
        # A summary from before a /reset covers nothing any more.
        summary_until = max(row["summary_until"], row["reset_after_id"])
        return ConversationState(row["summary"], summary_until, row["model"],
                                 bool(row["fallback_notified"]))

    async def set_summary(self, conv: str, summary: str, until_id: int) -> None:
        """``until_id``: the last question folded into ``summary``."""
        await self._upsert(conv, "summary=?, summary_until=?", (summary, until_id))

    async def set_model(self, conv: str, model: str | None) -> None:
        await self._upsert(conv, "model=?", (model,))

    async def set_fallback_notified(self, conv: str, notified: bool) -> None:
        await self._upsert(conv, "fallback_notified=?", (int(notified),))

    async def _upsert(self, conv: str, assignments: str, values: tuple[object, ...]) -> None:
        now = time.time()

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO conversations (conv, updated_at) VALUES (?, ?)"
                " ON CONFLICT(conv) DO NOTHING", (conv, now))
            await conn.execute(
                f"UPDATE conversations SET {assignments}, updated_at=? WHERE conv=?",
                (*values, now, conv))

        await self.db.write(op)
