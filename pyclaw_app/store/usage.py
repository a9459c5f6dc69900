"""One row per LLM call: what the Usage view and cost accounting read."""

from __future__ import annotations

import time

import aiosqlite

from pyclaw_app.store.db import Database

__all__ = ["UsageLog"]


class UsageLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, *, message_id: int | None, channel: str, provider: str, model: str,
               input_tokens: int, output_tokens: int, latency_ms: float, cost: float = 0.0,
               error: str | None = None) -> None:
        params = (time.time(), message_id, channel, provider, model, input_tokens, output_tokens,
                  latency_ms, cost, error)

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO llm_calls (ts, message_id, channel, provider, model, input_tokens,"
                " output_tokens, latency_ms, cost, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params)

        self.db.write_nowait(op)
