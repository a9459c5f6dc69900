"""SQLite, the embedded default: WAL, ``PRAGMA user_version`` migrations, a private file.

Reads use a second connection through aiosqlite (WAL lets them run beside the writer);
writes go through :class:`~pyclaw_app.store.db.Database`'s batching writer thread.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import aiosqlite

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

from pyclaw_app.errors import StoreError
from pyclaw_app.paths import private_dir, private_file
from pyclaw_app.store.db import Database
from pyclaw_app.store.schema import MIGRATIONS, split_sql

__all__ = ["SqliteDatabase"]

_log = logging.getLogger(__name__)
_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000", "foreign_keys=ON")
_TRANSIENT = ("full", "locked", "busy", "disk i/o")


class SqliteDatabase(Database):
    backend = "SQLite"
    begin = "BEGIN IMMEDIATE"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._reader: aiosqlite.Connection | None = None
        self._lock_file: IO[str] | None = None

    async def hold_instance_lock(self, who: str, *, wait: bool = False,
                                 on_wait: Callable[[str], None] | None = None) -> None:
        """An exclusive ``flock`` on ``<db>.lock`` (released by the OS if the process dies),
        holding who we are for the next one to read. Windows has no ``flock``: there the
        lock is not taken. No standby on SQLite (the config refuses it)."""
        if fcntl is None:
            return
        path = self.path.with_name(self.path.name + ".lock")
        handle = await asyncio.to_thread(_open_lock_file, path)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreError(f"another gateway is running on {self.path.parent} ({holder}); "
                             "stop it first, or give this one its own --data-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(who)
        handle.flush()
        self._lock_file = handle
        self.holds_instance = True

    async def _open_backend(self) -> None:
        private_dir(self.path.parent)
        for suffix in ("", "-wal", "-shm"):  # SQLite gives its side files the db's mode
            candidate = self.path.with_name(self.path.name + suffix)
            if suffix == "" or candidate.exists():
                private_file(candidate)
        self._writer = await self._in_thread(_connect_writer, self.path)
        self._reader = await aiosqlite.connect(self.path, isolation_level=None)
        self._reader.row_factory = sqlite3.Row
        await self._reader.execute("PRAGMA busy_timeout=5000")
        await self._reader.execute("PRAGMA query_only=ON")

    async def _close_backend(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing the file releases the flock
            self._lock_file = None
        if self._reader is not None:
            await self._reader.close()
            self._reader = None
        if self._writer is not None:
            await self._in_thread(self._writer.close)

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if self._reader is None:
            raise StoreError("database is not open")
        # One hop into aiosqlite's thread (execute + fetchall + close would be three).
        return list(await self._reader.execute_fetchall(sql, params))

    async def pragma(self, statement: str) -> Any:
        """Run a maintenance PRAGMA on the writer connection, outside the write queue.

        For settings that must apply even while the queue is stuck (``max_page_count`` when the
        disk is full, ``wal_checkpoint``); returns the first column of the first row, if any.
        """
        if self._writer is None:
            raise StoreError("database is not open")
        row = await self._in_thread(_fetchone, self._writer, f"PRAGMA {statement}")
        return row[0] if row else None

    def _transient(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.OperationalError) and any(
            word in str(exc).lower() for word in _TRANSIENT)


def _open_lock_file(path: Path) -> IO[str]:
    handle = path.open("a+", encoding="utf-8")
    private_file(path)
    handle.seek(0)
    return handle


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
            for statement in split_sql(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except sqlite3.Error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        _log.info("database migrated to version %d", number)


def _fetchone(conn: sqlite3.Connection, sql: str) -> Any:
    return conn.execute(sql).fetchone()
