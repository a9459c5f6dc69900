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

This module holds the keys and the statements (run in the store's writer, so it needs no
driver); ``store/cluster_link.py`` holds the sessions. Instances tell each other about
work and events with LISTEN/NOTIFY: ``WORK`` wakes
the instance holding a conversation another one journaled a message for, ``EVENTS``
carries the live traffic so a panel on any instance sees all of it. Both are hints:
each instance also sweeps the journal every second, so a lost notification delays
a message by at most that, and loses nothing.
"""

from __future__ import annotations

import sqlite3
import time
import zlib

__all__ = ["ALIVE_IDS", "CONFIG", "EVENTS", "SHARED_SETUP", "WORK", "claim", "lease_key",
           "release", "release_all", "save_document"]


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
