"""Who may talk to the assistant on each channel: pairing codes and the sender allowlist
for direct messages, the owner's approvals of group chats.

Decisions live in SQLite, so ``pyclaw pairing`` and ``pyclaw groups`` can make them beside a
running gateway (both open the same WAL database) and a restart keeps them.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass
from enum import StrEnum

from pyclaw_app.store.db import Database

__all__ = [
    "CODE_ALPHABET",
    "CODE_TTL",
    "MAX_CODES_PER_SENDER",
    "MAX_PENDING",
    "MAX_PENDING_GROUPS",
    "SENDER_WINDOW",
    "AccessStore",
    "GroupRequest",
    "GroupStanding",
    "PairingRefusal",
    "PairingRequest",
]

# No 0/O, 1/I/L: codes are read aloud and typed from phones.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_TTL = 3600.0
MAX_PENDING = 3
"""Pending codes per channel: a flood of strangers cannot fill the owner's list."""
MAX_CODES_PER_SENDER = 2
"""Codes one sender may get per ``SENDER_WINDOW``: without it three strangers could hold
every slot, asking again each time their codes expire."""
SENDER_WINDOW = 86_400.0
MAX_PENDING_GROUPS = 20
"""Group requests waiting per channel; beyond that new groups are refused without a word."""


@dataclass(frozen=True, slots=True)
class PairingRequest:
    code: str
    channel: str
    sender_id: str
    sender_name: str
    chat: str
    status: str
    created_at: float
    expires_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> PairingRequest:
        return cls(**dict(row))


class PairingRefusal(StrEnum):
    """Why a sender got no code."""

    FULL = "full"
    """MAX_PENDING codes wait on this channel (the sender is told to try later)."""
    SENDER_LIMIT = "sender_limit"
    """The sender had MAX_CODES_PER_SENDER codes within SENDER_WINDOW."""
    REJECTED = "rejected"
    """The owner rejected this sender's code within SENDER_WINDOW."""


@dataclass(frozen=True, slots=True)
class GroupRequest:
    """A group chat that addressed the bot, and what the owner decided about it."""

    channel: str
    chat: str
    title: str
    requested_by: str
    status: str
    """pending, approved or rejected."""
    created_at: float
    decided_at: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> GroupRequest:
        return cls(**dict(row))


class GroupStanding(StrEnum):
    """A group's standing when it addresses the bot (see ``AccessStore.admit_group``)."""

    APPROVED = "approved"
    REJECTED = "rejected"
    PENDING = "pending"
    """It asked before and the owner has not decided yet."""
    REQUESTED = "requested"
    """It asked just now: a pending request was recorded (tell the group, once)."""
    FULL = "full"
    """It asked just now, but MAX_PENDING_GROUPS requests already wait: nothing recorded."""


_GROUP_COLUMNS = "channel, chat, title, requested_by, status, created_at, decided_at"
_PAIRING_COLUMNS = "code, channel, sender_id, sender_name, chat, status, created_at, expires_at"


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


class AccessStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def is_allowed(self, channel: str, sender_id: str) -> bool:
        row = await self.db.fetchone(
            "SELECT 1 FROM allowlist WHERE channel=? AND sender_id=?", (channel, sender_id))
        return row is not None

    async def allow(self, channel: str, sender_id: str, sender_name: str = "",
                    via: str = "manual") -> None:
        await self.db.execute(
            "INSERT INTO allowlist (channel, sender_id, sender_name, added_at, via)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (channel, sender_id, sender_name, time.time(), via))

    async def revoke(self, channel: str, sender_id: str) -> None:
        await self.db.execute("DELETE FROM allowlist WHERE channel=? AND sender_id=?",
                              (channel, sender_id))

    async def request_code(self, channel: str, sender_id: str, sender_name: str, chat: str,
                           now: float | None = None) -> PairingRequest | PairingRefusal:
        """The sender's pending code (reused) or a new one, or why there is none."""
        now = time.time() if now is None else now

        def op(conn: sqlite3.Connection) -> PairingRequest | PairingRefusal:
            conn.execute("UPDATE pairing SET status='expired' WHERE status='pending'"
                         " AND expires_at <= ?", (now,))
            pending = [PairingRequest(*r) for r in conn.execute(
                f"SELECT {_PAIRING_COLUMNS} FROM pairing WHERE channel=? AND status='pending'",
                (channel,))]
            mine = next((p for p in pending if p.sender_id == sender_id), None)
            if mine is not None:
                return mine
            recent = [status for (status,) in conn.execute(
                "SELECT status FROM pairing WHERE channel=? AND sender_id=? AND created_at > ?",
                (channel, sender_id, now - SENDER_WINDOW))]
            if "rejected" in recent:
                return PairingRefusal.REJECTED
            if len(recent) >= MAX_CODES_PER_SENDER:
                return PairingRefusal.SENDER_LIMIT
            if len(pending) >= MAX_PENDING:
                return PairingRefusal.FULL
            request = PairingRequest(new_code(), channel, sender_id, sender_name, chat,
                                     "pending", now, now + CODE_TTL)
            conn.execute(
                "INSERT INTO pairing (code, channel, sender_id, sender_name, chat, status,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (request.code, channel, sender_id, sender_name, chat, "pending", now,
                 request.expires_at))
            return request

        result: PairingRequest | PairingRefusal = await self.db.write(op)
        return result

    async def approve(self, code: str, now: float | None = None) -> PairingRequest | None:
        """Approve a pending, unexpired code: its sender joins the channel's allowlist."""
        now = time.time() if now is None else now
        code = code.strip().upper()

        def op(conn: sqlite3.Connection) -> PairingRequest | None:
            row = conn.execute(
                f"SELECT {_PAIRING_COLUMNS} FROM pairing WHERE code=? AND status='pending'"
                " AND expires_at > ?", (code, now)).fetchone()
            if row is None:
                return None
            request = PairingRequest(*row)
            conn.execute("UPDATE pairing SET status='approved' WHERE code=?", (code,))
            conn.execute(
                "INSERT INTO allowlist (channel, sender_id, sender_name, added_at, via)"
                " VALUES (?, ?, ?, ?, 'pairing') ON CONFLICT DO NOTHING",
                (request.channel, request.sender_id, request.sender_name, now))
            return request

        result: PairingRequest | None = await self.db.write(op)
        return result

    async def reject(self, code: str, now: float | None = None) -> PairingRequest | None:
        """Reject a pending, unexpired code: its slot is free at once, and its sender gets no
        new code for ``SENDER_WINDOW``."""
        now = time.time() if now is None else now
        code = code.strip().upper()

        def op(conn: sqlite3.Connection) -> PairingRequest | None:
            row = conn.execute(
                f"SELECT {_PAIRING_COLUMNS} FROM pairing WHERE code=? AND status='pending'"
                " AND expires_at > ?", (code, now)).fetchone()
            if row is None:
                return None
            conn.execute("UPDATE pairing SET status='rejected' WHERE code=?", (code,))
            return PairingRequest(*row)

        result: PairingRequest | None = await self.db.write(op)
        return result

    async def pending(self, now: float | None = None) -> list[PairingRequest]:
        now = time.time() if now is None else now
        rows = await self.db.fetchall(
            f"SELECT {_PAIRING_COLUMNS} FROM pairing WHERE status='pending' AND expires_at > ?"
            " ORDER BY created_at", (now,))
        return [PairingRequest.from_row(r) for r in rows]

    # ---- groups ----------------------------------------------------------------------------
    async def admit_group(self, channel: str, chat: str, *, requested_by: str = "",
                          now: float | None = None) -> GroupStanding:
        """The group's standing; the first time it asks, a pending request is recorded
        (``title`` stays empty: connectors report no group names yet).

        Only one caller ever sees ``REQUESTED`` for a group (the insert decides), so two
        threads of one forum group asking at once still get one notice between them.
        """
        row = await self.db.fetchone("SELECT status FROM group_access WHERE channel=? AND chat=?",
                                     (channel, chat))
        if row is not None:
            return GroupStanding(row["status"])
        now = time.time() if now is None else now

        def op(conn: sqlite3.Connection) -> GroupStanding:
            known = conn.execute("SELECT status FROM group_access WHERE channel=? AND chat=?",
                                 (channel, chat)).fetchone()
            if known is not None:
                return GroupStanding(known[0])
            (waiting,) = conn.execute(
                "SELECT COUNT(*) FROM group_access WHERE channel=? AND status='pending'",
                (channel,)).fetchone()
            if waiting >= MAX_PENDING_GROUPS:
                return GroupStanding.FULL
            conn.execute(
                "INSERT INTO group_access (channel, chat, requested_by, status, created_at)"
                " VALUES (?, ?, ?, 'pending', ?)", (channel, chat, requested_by, now))
            return GroupStanding.REQUESTED

        result: GroupStanding = await self.db.write(op)
        return result

    async def groups(self, status: str | None = None) -> list[GroupRequest]:
        """Every group that asked (or only those with ``status``), waiting ones first."""
        where, args = ("WHERE status=?", (status,)) if status else ("", ())
        rows = await self.db.fetchall(
            f"SELECT {_GROUP_COLUMNS} FROM group_access {where}"
            " ORDER BY status != 'pending', created_at", args)
        return [GroupRequest.from_row(r) for r in rows]

    async def pending_groups(self) -> list[GroupRequest]:
        return await self.groups("pending")

    async def approve_group(self, channel: str, chat: str, now: float | None = None
                            ) -> GroupRequest | None:
        """Let a group that asked talk to the bot (also after an earlier rejection); None
        when it never asked (groups approved in advance go in ``allow_groups``)."""
        return await self._decide_group(channel, chat, "approved", now)

    async def reject_group(self, channel: str, chat: str, now: float | None = None
                           ) -> GroupRequest | None:
        """Keep a group silent for good (also one approved before); None when it never asked."""
        return await self._decide_group(channel, chat, "rejected", now)

    async def _decide_group(self, channel: str, chat: str, status: str, now: float | None
                            ) -> GroupRequest | None:
        now = time.time() if now is None else now

        def op(conn: sqlite3.Connection) -> GroupRequest | None:
            cursor = conn.execute(
                "UPDATE group_access SET status=?, decided_at=? WHERE channel=? AND chat=?",
                (status, now, channel, chat))
            if cursor.rowcount == 0:
                return None
            row = conn.execute(f"SELECT {_GROUP_COLUMNS} FROM group_access WHERE channel=?"
                               " AND chat=?", (channel, chat)).fetchone()
            return GroupRequest(*row)

        result: GroupRequest | None = await self.db.write(op)
        return result
