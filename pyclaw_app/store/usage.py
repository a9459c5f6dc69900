"""One row per LLM call: what the Usage view and cost accounting read.

Writes are fire-and-forget (a usage row is never worth delaying a reply);
the queries aggregate in SQL and compute latency percentiles in Python,
since SQLite has no percentile function.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict
from dataclasses import dataclass

from pyclaw_app.model import UsageRow
from pyclaw_app.store.db import Database

__all__ = ["SpendRow", "UsageLog", "UsageRow", "UsageTotals"]


@dataclass(frozen=True, slots=True)
class UsageTotals:
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0


@dataclass(frozen=True, slots=True)
class SpendRow:
    """What one sender on one channel spent since a point in time (the budget guard's
    starting figures); ``today`` splits the rows at the second point given."""

    channel: str
    sender_id: str
    sender_name: str
    today: bool
    tokens: int
    cost: float


class UsageLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    def record(self, *, message_id: int | None, channel: str, provider: str, model: str,
               input_tokens: int, output_tokens: int, latency_ms: float, cost: float = 0.0,
               error: str | None = None) -> None:
        params = (time.time(), message_id, channel, provider, model, input_tokens, output_tokens,
                  latency_ms, cost, error)

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO llm_calls (ts, message_id, channel, provider, model, input_tokens,"
                " output_tokens, latency_ms, cost, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                params)

        self.db.write_nowait(op)

    async def totals(self, *, since: float | None = None, channel: str | None = None,
                     conv: str | None = None) -> UsageTotals:
        """Sums over calls since ``since``, optionally of one channel or one conversation."""
        where, params = _filters(since, None, channel)
        if conv is not None:
            where.append("message_id IN (SELECT id FROM messages WHERE conv=?)")
            params.append(conv)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        row = await self.db.fetchone(
            "SELECT COUNT(*) AS calls, COUNT(error) AS errors,"
            " COALESCE(SUM(input_tokens), 0) AS tin, COALESCE(SUM(output_tokens), 0) AS tout,"
            f" COALESCE(SUM(cost), 0) AS cost FROM llm_calls {clause}", tuple(params))
        assert row is not None
        return UsageTotals(row["calls"], row["errors"], row["tin"], row["tout"], row["cost"])

    async def spend_since(self, since: float, today: float) -> list[SpendRow]:
        """Tokens and cost per channel and sender since ``since``, split at ``today``.

        Calls still queued for writing are committed first, so a guard that starts
        from these figures misses none. One range scan of ``llm_calls_ts`` and a
        primary-key lookup of each call's message: run once when a guard starts, not
        per message (the guard keeps the figures up to date itself).
        """
        await self.db.write(lambda conn: None)
        rows = await self.db.fetchall(
            "SELECT c.channel AS channel, COALESCE(m.sender_id, '') AS sender,"
            " MAX(COALESCE(m.sender_name, '')) AS name, c.ts >= ? AS today,"
            " SUM(c.input_tokens + c.output_tokens) AS tokens, SUM(c.cost) AS cost"
            " FROM llm_calls c LEFT JOIN messages m ON m.id = c.message_id"
            " WHERE c.ts >= ? GROUP BY c.channel, sender, today", (today, since))
        return [SpendRow(r["channel"], r["sender"], r["name"], bool(r["today"]), r["tokens"],
                         r["cost"]) for r in rows]

    async def breakdown(self, *, since: float | None = None, until: float | None = None,
                        channel: str | None = None) -> list[UsageRow]:
        """Per local day, provider, model and channel; newest day first.

        Latency percentiles are over successful calls only (a failed call's time
        says more about the timeout than about the model).
        """
        where, params = _filters(since, until, channel)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        day = "date(ts, 'unixepoch', 'localtime')"
        rows = await self.db.fetchall(
            f"SELECT {day} AS day, provider, model, channel, COUNT(*) AS calls,"
            " COUNT(error) AS errors, SUM(input_tokens) AS tin, SUM(output_tokens) AS tout,"
            f" SUM(cost) AS cost FROM llm_calls {clause}"
            " GROUP BY day, provider, model, channel ORDER BY day DESC, provider, model, channel",
            tuple(params))
        ok_clause = f"{clause} AND error IS NULL" if clause else "WHERE error IS NULL"
        latencies: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
        for r in await self.db.fetchall(
                f"SELECT {day} AS day, provider, model, channel, latency_ms FROM llm_calls"
                f" {ok_clause}", tuple(params)):
            latencies[(r["day"], r["provider"], r["model"], r["channel"])].append(
                r["latency_ms"])
        out = []
        for r in rows:
            values = sorted(latencies.get((r["day"], r["provider"], r["model"], r["channel"]),
                                          []))
            out.append(UsageRow(r["day"], r["provider"], r["model"], r["channel"], r["calls"],
                                r["errors"], r["tin"], r["tout"], r["cost"],
                                _percentile(values, 50), _percentile(values, 95)))
        return out


def _filters(since: float | None, until: float | None,
             channel: str | None) -> tuple[list[str], list[object]]:
    where: list[str] = []
    params: list[object] = []
    if since is not None:
        where.append("ts >= ?")
        params.append(since)
    if until is not None:
        where.append("ts < ?")
        params.append(until)
    if channel is not None:
        where.append("channel = ?")
        params.append(channel)
    return where, params


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile; 0 for no values."""
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]
