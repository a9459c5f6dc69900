"""SQLite: WAL, migrations, one writer thread that runs each batch in one hop.

Every write goes through :meth:`Database.write`, which queues an *op*; the
writer task takes whatever is queued and runs it as one transaction, resolving
each caller only after COMMIT. Many concurrent ``submit()`` calls thus share
one commit, which is what keeps the journal both durable and fast.

Ops are plain functions of a :class:`sqlite3.Connection`, and the writer runs
BEGIN, every op of the batch and COMMIT in a single call into its own thread.
aiosqlite would cost two thread hops per statement (each one a queue put, a
self-pipe wake-up of the event loop and a future), which was about a quarter
of the gateway's CPU under load. Coroutine ops (``async def op(conn)`` using
``await conn.execute(...)``, the aiosqlite style) still work: a batch holding
one is run statement by statement through :class:`_AsyncWriter`, slower but
with the same guarantees. Reads use a second connection through aiosqlite
(WAL lets them run beside the writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, Union

import aiosqlite

from pyclaw_app.backoff import Backoff
from pyclaw_app.errors import StoreError
from pyclaw_app.paths import private_dir, private_file
from pyclaw_app.store.schema import MIGRATIONS

__all__ = ["AsyncWriteOp", "Database", "SyncWriteOp", "WriteOp"]

_log = logging.getLogger(__name__)

T = TypeVar("T")
SyncWriteOp = Callable[[sqlite3.Connection], Any]
"""Runs in the writer thread, inside the batch's transaction: the fast kind."""
AsyncWriteOp = Callable[[Any], Awaitable[Any]]
"""``async def op(conn)`` with aiosqlite-style ``await conn.execute(sql, params)``."""
WriteOp = Union[SyncWriteOp, AsyncWriteOp]  # noqa: UP007 - a runtime alias, not an annotation
MAX_BATCH = 512
_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000", "foreign_keys=ON")

_Item = tuple[WriteOp, "asyncio.Future[Any] | None"]


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.writes = 0
        self.outage: str | None = None
        """The SQLite error writes are waiting out right now (disk full, locked), if any."""
        self.on_outage: Callable[[str | None], None] | None = None
        self._closing = False

    async def open(self) -> None:
        private_dir(self.path.parent)
        for suffix in ("", "-wal", "-shm"):  # SQLite gives its side files the db's mode
            candidate = self.path.with_name(self.path.name + suffix)
            if suffix == "" or candidate.exists():
                private_file(candidate)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        try:
            self._writer = await self._in_thread(_connect_writer, self.path)
        except BaseException:
            self._thread.shutdown(wait=False)
            self._thread = None
            raise
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
        if self._reader is not None:
            await self._reader.close()
        if self._writer is not None:
            await self._in_thread(self._writer.close)
        if self._thread is not None:
            self._thread.shutdown(wait=True)
        self._reader = self._writer = None
        self._thread = None

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in the writer thread (the only thread that touches the writer)."""
        assert self._thread is not None
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

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
        def op(conn: sqlite3.Connection) -> None:
            conn.execute(sql, params)

        await self.write(op)

    async def pragma(self, statement: str) -> Any:
        """Run a maintenance PRAGMA on the writer connection, outside the write queue.

        For settings that must apply even while the queue is stuck (``max_page_count`` when the
        disk is full, ``wal_checkpoint``); returns the first column of the first row, if any.
        """
        if self._writer is None:
            raise StoreError("database is not open")
        row = await self._in_thread(_fetchone, self._writer, f"PRAGMA {statement}", ())
        return row[0] if row else None

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise StoreError("database is not open")
        # One hop into aiosqlite's thread (execute + fetchall + close would be three).
        return list(await self._reader.execute_fetchall(sql, params))

    async def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def _write_loop(self) -> None:
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
            await self._run_batch(batch)

    async def _run_batch(self, batch: list[_Item]) -> None:
        try:
            results = await self._transaction_riding_out_outages([op for op, _ in batch])
        except Exception as exc:  # noqa: BLE001 - failed to its callers, the writer stays up
            if len(batch) == 1:
                self._fail(batch[0][1], exc)
                return
            # One bad op must not fail its neighbours: retry each on its own.
            for op, fut in batch:
                try:
                    (result,) = await self._transaction([op])
                except Exception as single_exc:  # noqa: BLE001 - as above
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

    async def _transaction_riding_out_outages(self, ops: list[WriteOp]) -> list[Any]:
        """Retry a batch while SQLite is full, locked or failing I/O; report it once.

        Callers of ``write()`` simply wait: nothing is acknowledged to a platform that
        is not committed, and nothing is lost while the disk is full.
        """
        backoff = Backoff(base=0.05, cap=5.0)
        while True:
            try:
                results = await self._transaction(ops)
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

    async def _transaction(self, ops: list[WriteOp]) -> list[Any]:
        assert self._writer is not None
        conn = self._writer
        if not any(inspect.iscoroutinefunction(op) for op in ops):
            return await self._in_thread(_run_transaction, conn, ops)
        # A coroutine op needs the event loop between its statements: hop per statement.
        shim = _AsyncWriter(conn, self._in_thread)
        await self._in_thread(conn.execute, "BEGIN IMMEDIATE")
        try:
            results = []
            for op in ops:
                if inspect.iscoroutinefunction(op):
                    results.append(await op(shim))
                else:
                    results.append(await self._in_thread(op, conn))
            await self._in_thread(conn.execute, "COMMIT")
        except BaseException:
            await asyncio.shield(self._in_thread(_rollback, conn))
            raise
        return results

    @staticmethod
    def _fail(fut: asyncio.Future[Any] | None, exc: Exception) -> None:
        error = StoreError(f"SQLite write failed: {exc}")
        if fut is None:
            _log.error("background write failed: %s", exc)
        elif not fut.done():
            fut.set_exception(error)


class _AsyncWriter:
    """What a coroutine op gets as ``conn``: aiosqlite's ``execute`` over the writer thread."""

    def __init__(self, conn: sqlite3.Connection,
                 in_thread: Callable[..., Awaitable[Any]]) -> None:
        self._conn = conn
        self._in_thread = in_thread

    async def execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        cursor: sqlite3.Cursor = await self._in_thread(self._conn.execute, sql, params)
        return cursor

    async def execute_fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        rows: list[Any] = await self._in_thread(partial(_fetchall, self._conn, sql, params))
        return rows


def _connect_writer(path: Path) -> sqlite3.Connection:
    # check_same_thread=False only because close() is queued from the loop; every call still
    # runs in the one writer thread.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        for pragma in _PRAGMAS:
            conn.execute(f"PRAGMA {pragma}")
        _migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    row = conn.execute("PRAGMA user_version").fetchone()
    version = row[0] if row else 0
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except sqlite3.Error:
            _rollback(conn)
            raise
        _log.info("database migrated to version %d", number)


def _run_transaction(conn: sqlite3.Connection, ops: list[SyncWriteOp]) -> list[Any]:
    """One batch, in the writer thread: BEGIN, every op, COMMIT (or ROLLBACK)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        results = [op(conn) for op in ops]
        conn.execute("COMMIT")
    except StopIteration as exc:
        # An asyncio future cannot carry StopIteration: the caller would wait forever.
        _rollback(conn)
        raise RuntimeError(f"write op raised StopIteration: {exc!r}") from exc
    except BaseException:
        _rollback(conn)
        raise
    return results


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _fetchone(conn: sqlite3.Connection, sql: str, params: Iterable[Any]) -> Any:
    return conn.execute(sql, params).fetchone()


def _fetchall(conn: sqlite3.Connection, sql: str, params: Iterable[Any]) -> list[Any]:
    return conn.execute(sql, params).fetchall()


_TRANSIENT = ("full", "locked", "busy", "disk i/o")


def _transient(exc: sqlite3.OperationalError) -> bool:
    return any(word in str(exc).lower() for word in _TRANSIENT)


def _split_sql(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]
