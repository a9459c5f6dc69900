"""The durable baseline's per-message work: what a bot that keeps its promises must do at least.

The echo baselines (bench/baseline_bot.py, bench/baseline_bot_slack.py) store
nothing and call no model, so the gateway can never come near them. With
``--llm URL --db PATH`` they become the *durable baseline*: per message one
SQLite insert and commit before the platform is told the message was taken
(Telegram: before the next getUpdates confirms its offset; Slack: before the
Socket Mode ack), one streamed OpenAI-compatible chat completion over aiohttp,
the reply, and one SQLite update and commit. The database has the gateway's
pragmas (WAL, synchronous=NORMAL: pyclaw_app/store/sqlite.py), so a commit costs
what the gateway's costs; it runs on the event loop's thread, with no writer
thread and no batching, which is the least code, not the least latency.

What it still leaves out, on purpose: history, prompts, access policy, events,
retries and per-chat ordering. The gap between it and the gateway is what all
of that, plus the official SDKs, costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["DurableWork", "add_durable_arguments", "durable_work", "run_loop"]

_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000")
_SCHEMA = """CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    chat TEXT NOT NULL,
    platform_id TEXT NOT NULL,
    text TEXT NOT NULL,
    status TEXT NOT NULL,
    reply_id TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    UNIQUE (chat, platform_id)
)"""
SYSTEM_PROMPT = "You are a helpful assistant."


class DurableWork:
    """The store and the model of one durable baseline bot."""

    def __init__(self, db_path: Path, llm_url: str, model: str = "fake-model") -> None:
        self._db = sqlite3.connect(db_path, isolation_level=None)
        for pragma in _PRAGMAS:
            self._db.execute(f"PRAGMA {pragma}")
        self._db.execute(_SCHEMA)
        self._url = f"{llm_url.rstrip('/')}/chat/completions"
        self._model = model

    def received(self, chat: str, platform_id: str, text: str) -> int | None:
        """Journal one inbound message (insert + commit); None if it was journaled before
        (a redelivery), which must not be answered twice."""
        now = time.time()
        with self._db:
            cur = self._db.execute(
                "INSERT INTO messages (chat, platform_id, text, status, created_at, updated_at)"
                " VALUES (?, ?, ?, 'received', ?, ?) ON CONFLICT (chat, platform_id) DO NOTHING",
                (chat, platform_id, text, now, now))
        return cur.lastrowid if cur.rowcount else None

    def sent(self, row: int, reply_id: str) -> None:
        """Mark the message answered (update + commit)."""
        with self._db:
            self._db.execute("UPDATE messages SET status='sent', reply_id=?, updated_at=?"
                             " WHERE id=?", (reply_id, time.time(), row))

    async def answer(self, session: aiohttp.ClientSession, text: str) -> str:
        """One streamed chat completion, as the gateway asks for it (SSE, usage included)."""
        body = {"model": self._model, "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "system", "content": SYSTEM_PROMPT},
                             {"role": "user", "content": text}]}
        parts: list[str] = []
        async with session.post(self._url, json=body) as resp:
            resp.raise_for_status()
            async for line in resp.content:
                if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                    continue
                chunk: dict[str, Any] = json.loads(line[6:])
                for choice in chunk.get("choices") or ():
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        parts.append(content)
        return "".join(parts)

    def close(self) -> None:
        self._db.close()


def add_durable_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--llm", default=None, help="durable baseline: OpenAI-compatible base "
                        "URL, e.g. http://127.0.0.1:8082/v1 (needs --db)")
    parser.add_argument("--db", type=Path, default=None,
                        help="durable baseline: the SQLite file to journal into (needs --llm)")


def durable_work(args: argparse.Namespace) -> DurableWork | None:
    """The durable work asked for on the command line, or None for the echo baseline."""
    if (args.llm is None) != (args.db is None):
        raise SystemExit("--llm and --db go together (the durable baseline needs both)")
    return None if args.llm is None else DurableWork(args.db, args.llm)


def run_loop(main: Coroutine[Any, Any, None], *, uvloop: bool) -> None:
    """The durable baseline runs on uvloop where installed, as ``pyclaw gateway`` does (cli.py);
    the echo baseline stays on the standard loop its earlier figures were taken on."""
    if uvloop:
        try:
            import uvloop as _uvloop
        except ImportError:
            pass
        else:
            _uvloop.run(main)
            return
    asyncio.run(main)
