"""Several active gateways on one PostgreSQL database: who is alive, who holds what.

PostgreSQL is the whole coordination (no second broker): an instance is alive
exactly while its session holds the advisory lock ``(LIVE_CLASS, its id)``, so a
process that dies (SIGKILL, a lost machine) stops being alive the moment the server
sees its connection close, with no heartbeat to wait out. A channel that allows
one consumer (Telegram polling, a Discord gateway, an IMAP mailbox) is received by
the instance holding ``(LEASE_CLASS, the channel's key)`` on that same session.

Work is claimed per conversation in ``conv_claims``: a claim is taken when it is
free, already ours, or held by an instance no longer alive, in one
``INSERT ... ON CONFLICT DO UPDATE ... WHERE`` whose row lock makes two instances'
attempts take turns. The claim row is the "per-conversation claim" and its row lock
plays the part ``FOR UPDATE SKIP LOCKED`` would on a queue table: the journal stays
the queue, so nothing is copied into a second table and custody stays where it is.

Instances tell each other about work and events with LISTEN/NOTIFY: ``WORK`` wakes
the instance holding a conversation another one journaled a message for, ``EVENTS``
carries the live traffic so a panel on any instance sees all of it. Both are hints:
each instance also sweeps the journal every second, so a lost notification delays
a message by at most that, and loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
import zlib
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

import psycopg

from pyclaw_app.errors import StoreError, StoreUnreachable

__all__ = ["ALIVE_IDS", "CONFIG", "EVENTS", "SHARED_SETUP", "WORK", "ClusterLink", "Notice",
           "claim", "lease_key", "release", "release_all", "save_document"]

_log = logging.getLogger(__name__)

MIGRATION_LOCK = 7_310_301
"""The advisory lock key migrations hold (any constant the instances agree on)."""
INSTANCE_LOCK = 7_310_302
"""Held exclusively by a gateway that runs alone, shared by instances that share the work:
so one kind refuses to start beside the other."""
LIVE_CLASS = 7_310_303
"""``(LIVE_CLASS, id)``: instance ``id`` is alive."""
LEASE_CLASS = 7_310_304
"""``(LEASE_CLASS, lease_key(channel))``: the instance receiving for that channel."""
WORK = "pyclaw_work"
EVENTS = "pyclaw_events"
CONFIG = "pyclaw_config"
"""An instance saved a configuration change: the document is in ``shared_config``."""
LISTEN_RETRY = 1.0

SHARED_SETUP = (
    "CREATE SEQUENCE IF NOT EXISTS pyclaw_instances",
    "CREATE TABLE IF NOT EXISTS conv_claims (conv TEXT PRIMARY KEY, instance BIGINT NOT NULL,"
    " claimed_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS conv_claims_instance ON conv_claims (instance)",
    "CREATE TABLE IF NOT EXISTS shared_config (id INTEGER PRIMARY KEY CHECK (id = 1),"
    " document TEXT NOT NULL, saved_by TEXT NOT NULL, saved_at DOUBLE PRECISION NOT NULL)",
)
"""PostgreSQL-only coordination tables (shared instances exist only there), created by the
first instance that joins, under the migration lock."""

ALIVE_IDS = ("SELECT l.objid::bigint FROM pg_locks l WHERE l.locktype = 'advisory'"
             " AND l.database = (SELECT oid FROM pg_database WHERE datname ="
             f" current_database()) AND l.classid = {LIVE_CLASS}::oid AND l.objsubid = 2"
             " AND l.granted")
"""The ids of the live instances: those whose session holds their lock (one scan of the
lock table, which PostgreSQL evaluates once per statement)."""


def lease_key(channel: str) -> int:
    """A channel's lease key: stable across processes and versions (``hash`` is salted)."""
    return zlib.crc32(channel.encode()) & 0x7FFF_FFFF


def claim(conn: sqlite3.Connection, conv: str, me: int) -> int:
    """Take ``conv`` for instance ``me`` if it is free, ours, or its holder is dead; returns
    the holder afterwards (``me`` when taken). In the writer's transaction: the conflicting
    row stays locked until it commits, so two instances cannot both take it."""
    row = conn.execute(
        "INSERT INTO conv_claims (conv, instance, claimed_at) VALUES (?, ?, ?)"
        " ON CONFLICT (conv) DO UPDATE SET instance = excluded.instance,"
        " claimed_at = excluded.claimed_at WHERE conv_claims.instance = excluded.instance"
        f" OR conv_claims.instance NOT IN ({ALIVE_IDS}) RETURNING instance",
        (conv, me, time.time())).fetchone()
    if row is not None:
        return int(row[0])
    held = conn.execute("SELECT instance FROM conv_claims WHERE conv=?", (conv,)).fetchone()
    return int(held[0]) if held is not None else me


def save_document(conn: sqlite3.Connection, document: str, who: str) -> None:
    """The configuration one instance saved, for the others to adopt (``CONFIG``)."""
    conn.execute("INSERT INTO shared_config (id, document, saved_by, saved_at)"
                 " VALUES (1, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET document = excluded.document,"
                 " saved_by = excluded.saved_by, saved_at = excluded.saved_at",
                 (document, who, time.time()))


def release(conn: sqlite3.Connection, conv: str, me: int) -> None:
    conn.execute("DELETE FROM conv_claims WHERE conv=? AND instance=?", (conv, me))


def release_all(conn: sqlite3.Connection, me: int) -> None:
    conn.execute("DELETE FROM conv_claims WHERE instance=?", (me,))


@dataclass(frozen=True, slots=True)
class Notice:
    channel: str
    payload: str


class ClusterLink:
    """This instance's two sessions of its own: one holds its locks (alive, the channel
    leases), one listens. Only the lock session decides liveness; the listening one
    reconnects on its own, since a missed notification is covered by the sweep."""

    def __init__(self, conninfo: str, connect_args: dict[str, Any], who: str) -> None:
        self._conninfo = conninfo
        self._args = {**connect_args, "application_name": f"pyclaw shared {who}"[:63],
                      "autocommit": True}
        self.who = who
        self.id = 0
        self._locks: psycopg.AsyncConnection[Any] | None = None
        self._lock_guard = asyncio.Lock()
        self._leases: set[str] = set()

    async def join(self) -> int:
        """Become a live instance; returns its id. Refused while a gateway that runs alone
        (not shared) holds the store, naming it."""
        conn = await self._connect()
        try:
            if not await _scalar(conn, "SELECT pg_try_advisory_lock_shared(%s)",
                                 (INSTANCE_LOCK,)):
                holder = await _scalar(
                    conn, "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a"
                    " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objid = %s"
                    " AND l.classid = 0 AND l.granted AND l.mode = 'ExclusiveLock'",
                    (INSTANCE_LOCK,))
                raise StoreError(f"a gateway that runs alone ({holder or 'another process'}) "
                                 "holds this database; stop it, or set storage.shared: true "
                                 "on it as well")
            await _scalar(conn, "SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            try:
                for statement in SHARED_SETUP:
                    await conn.execute(statement)
            finally:
                await _scalar(conn, "SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
            self.id = int(await _scalar(conn, "SELECT nextval('pyclaw_instances')"))
            await _scalar(conn, "SELECT pg_advisory_lock(%s, %s)", (LIVE_CLASS, self.id))
        except BaseException:
            await conn.close()
            raise
        self._locks = conn
        return self.id

    async def alive(self) -> bool:
        """Whether our lock session still stands (a cheap round trip): if it fell, the
        others already count us dead and may be answering our conversations."""
        try:
            async with self._lock_guard:
                return await _scalar(self._require(), "SELECT 1") == 1
        except (psycopg.Error, OSError, StoreError):
            return False

    async def try_lease(self, channel: str) -> bool:
        if channel in self._leases:
            return True
        async with self._lock_guard:
            got = await _scalar(self._require(), "SELECT pg_try_advisory_lock(%s, %s)",
                                (LEASE_CLASS, lease_key(channel)))
        if got:
            self._leases.add(channel)
        return bool(got)

    async def release_lease(self, channel: str) -> None:
        if channel not in self._leases:
            return
        self._leases.discard(channel)
        with contextlib.suppress(psycopg.Error, OSError):
            async with self._lock_guard:
                await _scalar(self._require(), "SELECT pg_advisory_unlock(%s, %s)",
                              (LEASE_CLASS, lease_key(channel)))

    def holds_lease(self, channel: str) -> bool:
        return channel in self._leases

    @property
    def leases(self) -> Collection[str]:
        return frozenset(self._leases)

    async def lease_holder(self, channel: str) -> str | None:
        """Which instance receives for ``channel`` (its application name), if any."""
        async with self._lock_guard:
            name = await _scalar(
                self._require(), "SELECT a.application_name FROM pg_locks l JOIN"
                " pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
                " AND l.classid = %s AND l.objid = %s AND l.objsubid = 2 AND l.granted",
                (LEASE_CLASS, lease_key(channel)))
        return str(name).removeprefix("pyclaw shared ") if name else None

    async def notices(self) -> AsyncIterator[Notice]:
        """Notifications on ``WORK``, ``EVENTS`` and ``CONFIG``, for ever: a lost listening
        session is opened again after ``LISTEN_RETRY`` (the sweep covers what it missed)."""
        while True:
            try:
                conn = await self._connect()
            except StoreUnreachable as exc:
                _log.warning("cannot listen for other instances: %s", exc)
                await asyncio.sleep(LISTEN_RETRY)
                continue
            try:
                for channel in (WORK, EVENTS, CONFIG):
                    await conn.execute(f"LISTEN {channel}")
                async for note in conn.notifies():
                    yield Notice(note.channel, note.payload)
            except (psycopg.Error, OSError) as exc:
                _log.warning("listening for other instances failed, again in %.0f s: %s",
                             LISTEN_RETRY, exc)
                await asyncio.sleep(LISTEN_RETRY)
            finally:
                with contextlib.suppress(psycopg.Error, OSError):
                    await conn.close()

    async def close(self) -> None:
        """Leave: the locks go with the session, so the others see us gone at once."""
        conn, self._locks = self._locks, None
        self._leases.clear()
        if conn is not None:
            with contextlib.suppress(psycopg.Error, OSError):
                await conn.close()

    def _require(self) -> psycopg.AsyncConnection[Any]:
        if self._locks is None:
            raise StoreError("this instance has not joined (or has left) the shared store")
        return self._locks

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        try:
            return await psycopg.AsyncConnection.connect(self._conninfo, **self._args)
        except psycopg.OperationalError as exc:
            raise StoreUnreachable(f"cannot connect to PostgreSQL: {str(exc).strip()}") from exc


async def _scalar(conn: psycopg.AsyncConnection[Any], sql: str,
                  params: tuple[Any, ...] = ()) -> Any:
    cur = await conn.execute(sql, params)
    row = await cur.fetchone()
    return row[0] if row else None
