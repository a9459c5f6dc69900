"""PostgreSQL: the store several gateway instances share.

The same batching writer as SQLite (one connection in one thread, one transaction per
batch), a second connection for reads, and the same migrations translated to
PostgreSQL's types. Instances may start together: migrations run under an advisory
lock, so exactly one of them migrates and the others wait and find the work done.

A lost server is an outage like a full disk is for SQLite: writes wait (nothing is
acknowledged that is not committed), the writer reconnects with backoff, and the
outage is reported once. A batch whose COMMIT was sent when the link broke may or may
not have committed; retrying it is safe for the journal (inbound rows are unique per
platform id, reply parts are written before they are sent).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg

from pyclaw_app.errors import StoreError, StoreUnreachable
from pyclaw_app.store.cluster import INSTANCE_LOCK, MIGRATION_LOCK
from pyclaw_app.store.cluster_link import ClusterLink
from pyclaw_app.store.db import Database
from pyclaw_app.store.pg_conn import PgConnection, Row
from pyclaw_app.store.pg_sql import PG_PRELUDE, translate_ddl
from pyclaw_app.store.schema import MIGRATIONS, split_sql

__all__ = ["PostgresDatabase"]

_log = logging.getLogger(__name__)
T = TypeVar("T")
STANDBY_POLL = 1.0
"""Seconds between a standby's attempts at the lock: its takeover time, at most."""
CONNECT_TIMEOUT = 10


class PostgresDatabase(Database):
    backend = "PostgreSQL"

    def __init__(self, conninfo: str, *, password: str | None = None,
                 application_name: str = "pyclaw") -> None:
        super().__init__()
        self._conninfo = conninfo
        self._connect_args: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT,
                                              "application_name": application_name}
        if password:
            self._connect_args["password"] = password
        self._reads: ThreadPoolExecutor | None = None
        self._reader: PgConnection | None = None
        self._lock_conn: PgConnection | None = None

    async def hold_instance_lock(self, who: str, *, wait: bool = False,
                                 on_wait: Callable[[str], None] | None = None) -> None:
        """A session advisory lock on a connection of its own (the server drops it when the
        process or its link dies, so a standby takes over within ``STANDBY_POLL``); its
        ``application_name`` says who holds it.

        A gateway that runs alone: a second one is refused, or with ``wait`` stands by.
        Instances that share the work join through :meth:`cluster_link` instead."""
        args = {**self._connect_args, "application_name": f"pyclaw gateway {who}"[:63]}
        conn = await self._in_reader(lambda: self._connect_with(args))
        told = False
        try:
            while not await self._in_reader(_try_lock, conn):
                holder = await self._in_reader(_lock_holder, conn)
                if not wait:
                    raise StoreError(f"another gateway is running on PostgreSQL {self.where}"
                                     f" ({holder}); stop it, set storage.standby: true to "
                                     "stand by for it, or storage.shared: true on every "
                                     "gateway to share the work")
                if not told and on_wait is not None:
                    on_wait(holder)
                    told = True
                await asyncio.sleep(STANDBY_POLL)
        except BaseException:
            await self._in_reader(conn.close)
            raise
        self._lock_conn = conn
        self.holds_instance = True

    def cluster_link(self, who: str) -> ClusterLink:
        """Sessions of their own for an instance that shares the work (``storage.shared``)."""
        return ClusterLink(self._conninfo, self._connect_args, who)

    @property
    def where(self) -> str:
        """The server and database, without credentials: for messages and the UI."""
        info = psycopg.conninfo.conninfo_to_dict(self._conninfo)
        host = info.get("host") or "localhost"
        return f"{host}:{info.get('port') or 5432}/{info.get('dbname') or ''}"

    def connect(self) -> PgConnection:
        """A new connection to the same database."""
        return self._connect_with(self._connect_args)

    def _connect_with(self, args: dict[str, Any]) -> PgConnection:
        try:
            return PgConnection.connect(self._conninfo, **args)
        except psycopg.OperationalError as exc:
            raise StoreUnreachable(f"cannot connect to PostgreSQL at {self.where}: "
                             f"{str(exc).strip()}") from exc

    async def _open_backend(self) -> None:
        self._writer = await self._in_thread(self._connect_and_migrate)
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-reader")
        self._reader = await self._in_reader(self.connect)

    async def _close_backend(self) -> None:
        if self._lock_conn is not None:
            await self._in_reader(self._lock_conn.close)
            self._lock_conn = None
        if self._reader is not None:
            await self._in_reader(self._reader.close)
            self._reader = None
        if self._reads is not None:
            self._reads.shutdown(wait=True)
            self._reads = None
        if self._writer is not None:
            await self._in_thread(self._writer.close)

    async def _in_reader(self, fn: Callable[..., T], *args: Any) -> T:
        assert self._reads is not None
        return await asyncio.get_running_loop().run_in_executor(self._reads, fn, *args)

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        if self._reads is None:
            raise StoreError("database is not open")
        return await self._in_reader(self._read, sql, params)

    def _read(self, sql: str, params: tuple[Any, ...]) -> list[Row]:
        """In the reader thread; a broken link is reconnected once before the read fails."""
        try:
            return self._read_once(sql, params)
        except (sqlite3.OperationalError, StoreUnreachable) as exc:
            _log.debug("read failed, reconnecting once: %s", exc)
        try:
            return self._read_once(sql, params)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"PostgreSQL read failed: {exc}") from exc

    def _read_once(self, sql: str, params: tuple[Any, ...]) -> list[Row]:
        if self._reader is None or not self._reader.usable:
            self._reader = self.connect()
        return self._reader.execute(sql, params).fetchall()

    def _transient(self, exc: BaseException) -> bool:
        cause = exc.__cause__ if isinstance(exc, sqlite3.Error) else exc
        return isinstance(cause, StoreUnreachable | psycopg.OperationalError)

    def _recover(self) -> None:
        if self._writer is not None and self._writer.usable:
            return
        try:
            self._writer = self.connect()
        except StoreError as exc:
            _log.debug("reconnect failed: %s", exc)

    def _connect_and_migrate(self) -> PgConnection:
        conn = self.connect()
        try:
            _migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn


def _try_lock(conn: PgConnection) -> bool:
    row = conn.execute("SELECT pg_try_advisory_lock(?)", (INSTANCE_LOCK,)).fetchone()
    return bool(row and row[0])


def _lock_holder(conn: PgConnection) -> str:
    row = conn.execute("SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a"
                       " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objid = ?"
                       " AND l.granted", (INSTANCE_LOCK,)).fetchone()
    return str(row[0]) if row and row[0] else "another process"


def _migrate(conn: PgConnection) -> None:
    conn.execute("SELECT pg_advisory_lock(?)", (MIGRATION_LOCK,))
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        version = int(row[0]) if row else 0
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        if version < len(MIGRATIONS):
            for statement in PG_PRELUDE:
                conn.raw.execute(statement)
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.execute("BEGIN")
            try:
                for statement in split_sql(script):
                    conn.raw.execute(translate_ddl(statement))
                conn.execute("UPDATE schema_version SET version=?", (number,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            _log.info("database migrated to version %d", number)
    finally:
        if conn.usable:
            conn.execute("SELECT pg_advisory_unlock(?)", (MIGRATION_LOCK,))
