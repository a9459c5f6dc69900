"""Pairing codes and the sender allowlist: who may talk to the assistant on each channel."""

from __future__ import annotations

import secrets
import sqlite3
import time
from dataclasses import dataclass

from pyclaw_app.store.db import Database

__all__ = ["CODE_ALPHABET", "AccessStore", "PairingRequest"]

# No 0/O, 1/I/L: codes are read aloud and typed from phones.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
CODE_TTL = 3600.0
MAX_PENDING = 3


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
                           now: float | None = None) -> PairingRequest | None:
        """The sender's pending code (reused) or a new one; None when the channel is full."""
        now = time.time() if now is None else now

        def op(conn: sqlite3.Connection) -> PairingRequest | None:
            conn.execute("UPDATE pairing SET status='expired' WHERE status='pending'"
                         " AND expires_at <= ?", (now,))
            pending = [PairingRequest(*r) for r in conn.execute(
                "SELECT code, channel, sender_id, sender_name, chat, status, created_at,"
                " expires_at FROM pairing WHERE channel=? AND status='pending'", (channel,))]
            mine = next((p for p in pending if p.sender_id == sender_id), None)
            if mine is not None:
                return mine
            if len(pending) >= MAX_PENDING:
                return None
            request = PairingRequest(new_code(), channel, sender_id, sender_name, chat,
                                     "pending", now, now + CODE_TTL)
            conn.execute(
                "INSERT INTO pairing (code, channel, sender_id, sender_name, chat, status,"
                " created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (request.code, channel, sender_id, sender_name, chat, "pending", now,
                 request.expires_at))
            return request

        result: PairingRequest | None = await self.db.write(op)
        return result

    async def approve(self, code: str, now: float | None = None) -> PairingRequest | None:
        """Approve a pending, unexpired code: its sender joins the channel's allowlist."""
        now = time.time() if now is None else now
        code = code.strip().upper()

        def op(conn: sqlite3.Connection) -> PairingRequest | None:
            row = conn.execute(
                "SELECT code, channel, sender_id, sender_name, chat, status, created_at,"
                " expires_at FROM pairing WHERE code=? AND status='pending' AND expires_at > ?",
                (code, now)).fetchone()
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

    async def pending(self, now: float | None = None) -> list[PairingRequest]:
        now = time.time() if now is None else now
        rows = await self.db.fetchall(
            "SELECT code, channel, sender_id, sender_name, chat, status, created_at, expires_at"
            " FROM pairing WHERE status='pending' AND expires_at > ? ORDER BY created_at",
            (now,))
        return [PairingRequest.from_row(r) for r in rows]
