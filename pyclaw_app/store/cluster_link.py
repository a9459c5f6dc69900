"""The sessions an instance that shares the work holds of its own (``store/cluster.py``).

Its lock session is its life: the advisory locks on it say it is alive and which channels
it receives for, and PostgreSQL drops them the moment the session ends. A second session
only listens (LISTEN), and is opened again when it falls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

import psycopg

from pyclaw_app.errors import StoreError, StoreUnreachable
from pyclaw_app.store.cluster import (
    CONFIG,
    EVENTS,
    INSTANCE_LOCK,
    LEASE_CLASS,
    LIVE_CLASS,
    MIGRATION_LOCK,
    SHARED_SETUP,
    WORK,
    lease_key,
)

__all__ = ["ClusterLink", "Notice"]

_log = logging.getLogger(__name__)

LISTEN_RETRY = 1.0
"""Seconds before a fallen listening session is opened again."""


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
