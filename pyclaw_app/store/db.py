"""SQLite through aiosqlite: WAL, migrations, one writer task that batches.

Every write goes through :meth:`Database.write`, which queues a small
coroutine; the writer task runs whatever is queued inside one transaction and
resolves each caller only after COMMIT. Many concurrent ``submit()`` calls thus
share one commit, which is what keeps the journal both durable and fast. Reads
use a second connection (WAL lets them run beside the writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from pyclaw_app.backoff import Backoff
from pyclaw_app.errors import StoreError
from pyclaw_app.store.schema import MIGRATIONS

__all__ = ["Database", "WriteOp"]

_log = logging.getLogger(__name__)

T = TypeVar("T")
WriteOp = Callable[[aiosqlite.Connection], Awaitable[Any]]
MAX_BATCH = 512


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[tuple[WriteOp, asyncio.Future[Any] | None] | None] = (
            asyncio.Queue()
        )
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.writes = 0
        self.outage: str | None = None
        """The SQLite error writes are waiting out right now (disk full, locked), if any."""
        self.on_outage: Callable[[str | None], None] | None = None
        self._closing = False

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = await aiosqlite.connect(self.path, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000",
                       "foreign_keys=ON"):
            await self._writer.execute(f"PRAGMA {pragma}")
        await self._migrate(self._writer)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader.row_factory = sqlite3.Row
        await self._reader.execute("PRAGMA busy_timeout=5000")
        await self._reader.execute("PRAGMA query_only=ON")
        self._task = asyncio.create_task(self._write_loop(), name="store:writer")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            await self._queue.put(None)
            await self._task
            self._task = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    @staticmethod
    async def _migrate(conn: aiosqlite.Connection) -> None:
        async with conn.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = row[0] if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(script):
                    await conn.execute(statement)
                await conn.execute(f"PRAGMA user_version={number}")
                await conn.commit()
            except sqlite3.Error:
                await conn.rollback()
                raise
            _log.info("database migrated to version %d", number)

    async def write(self, op: WriteOp) -> Any:
        """Run ``op`` in the next batch; returns its result once the batch is committed."""
        if self._task is None:
            raise StoreError("database is not open")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((op, fut))
        return await fut

    def write_nowait(self, op: WriteOp) -> None:
        """Queue ``op`` without waiting for the commit (log lines, counters)."""
        if self._task is not None:
            self._queue.put_nowait((op, None))

    async def execute(self, sql: str, params: tuple[Any, ...] = ()) -> None:
        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(sql, params)

        await self.write(op)

    async def pragma(self, statement: str) -> Any:
        """Run a maintenance PRAGMA on the writer connection, outside the write queue.

        For settings that must apply even while the queue is stuck (``max_page_count`` when the
        disk is full, ``wal_checkpoint``); returns the first column of the first row, if any.
        """
        if self._writer is None:
            raise StoreError("database is not open")
        async with self._writer.execute(f"PRAGMA {statement}") as cur:
            row = await cur.fetchone()
        return row[0] if row else None

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise StoreError("database is not open")
        async with self._reader.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def _write_loop(self) -> None:
        assert self._writer is not None
        conn = self._writer
        stopping = False
        while not stopping:
            item = await self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            await self._run_batch(conn, batch)

    async def _run_batch(self, conn: aiosqlite.Connection,
                         batch: list[tuple[WriteOp, asyncio.Future[Any] | None]]) -> None:
        try:
            results = await self._transaction_riding_out_outages(conn, [op for op, _ in batch])
        except sqlite3.Error as exc:
            if len(batch) == 1:
                self._fail(batch[0][1], exc)
                return
            # One bad op must not fail its neighbours: retry each on its own.
            for op, fut in batch:
                try:
                    (result,) = await self._transaction(conn, [op])
                except sqlite3.Error as single_exc:
                    self._fail(fut, single_exc)
                else:
                    if fut is not None and not fut.done():
                        fut.set_result(result)
            return
        self.batches += 1
        self.writes += len(batch)
        for (_, fut), result in zip(batch, results, strict=True):
            if fut is not None and not fut.done():
                fut.set_result(result)

    async def _transaction_riding_out_outages(self, conn: aiosqlite.Connection,
                                              ops: list[WriteOp]) -> list[Any]:
        """Retry a batch while SQLite is full, locked or failing I/O; report it once.

        Callers of ``write()`` simply wait: nothing is acknowledged to a platform that
        is not committed, and nothing is lost while the disk is full.
        """
        backoff = Backoff(base=0.05, cap=5.0)
        while True:
            try:
                results = await self._transaction(conn, ops)
            except sqlite3.OperationalError as exc:
                if self._closing or not _transient(exc):
                    raise
                if self.outage is None:
                    self.outage = str(exc)
                    _log.error("SQLite write failed (%s); holding writes and retrying", exc)
                    if self.on_outage is not None:
                        self.on_outage(self.outage)
                await asyncio.sleep(backoff.next_delay())
                continue
            if self.outage is not None:
                _log.warning("SQLite writes work again after: %s", self.outage)
                self.outage = None
                if self.on_outage is not None:
                    self.on_outage(None)
            return results

    @staticmethod
    async def _transaction(conn: aiosqlite.Connection, ops: list[WriteOp]) -> list[Any]:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            results = [await op(conn) for op in ops]
            await conn.commit()
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                await conn.rollback()
            raise
        return results

    @staticmethod
    def _fail(fut: asyncio.Future[Any] | None, exc: sqlite3.Error) -> None:
        error = StoreError(f"SQLite write failed: {exc}")
        if fut is None:
            _log.error("background write failed: %s", exc)
        elif not fut.done():
            fut.set_exception(error)


_TRANSIENT = ("full", "locked", "busy", "disk i/o")


def _transient(exc: sqlite3.OperationalError) -> bool:
    return any(word in str(exc).lower() for word in _TRANSIENT)


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
