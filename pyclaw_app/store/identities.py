"""People behind accounts: which (channel, sender) accounts are one person, and the one-time
codes that link them.

A person who talks to the assistant from Telegram and from Slack is two senders to the
gateway. ``/link`` in one gives a short code; ``/link CODE`` from the other joins both
accounts to one *identity* (``pyclaw identities link`` does the same for the owner). An
account that was never linked has no identity row: it is a person of one account.

Codes work like pairing codes (``store/access.py``): the same alphabet, read aloud and typed
from phones; one pending code per account, reused until it expires; a few per day. They
differ where linking is riskier: a code lives ten minutes, works once, and wrong codes are
counted per account in SQLite (so a restart forgives nothing) until the account must wait.
A code redeemed too often wrong is not even looked at: the limit would limit nothing if a
right guess still worked.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pyclaw_app.store.access import CODE_ALPHABET
from pyclaw_app.store.db import Database

__all__ = [
    "LINK_CODE_LENGTH",
    "LINK_CODE_TTL",
    "MAX_LINK_CODES",
    "MAX_WRONG_CODES",
    "WRONG_CODE_WINDOW",
    "Account",
    "Identity",
    "IdentityStore",
    "LinkCode",
    "LinkRefusal",
    "RedeemRefusal",
    "Redeemed",
    "normalize_code",
]

LINK_CODE_LENGTH = 8
LINK_CODE_TTL = 600.0
"""Ten minutes: long enough to open the other app, short enough that a code seen over a
shoulder is soon worthless."""
MAX_LINK_CODES = 5
"""Codes one account may get per ``CODE_WINDOW`` (the pending one is reused, so this is
only reached by letting codes expire)."""
CODE_WINDOW = 86_400.0
MAX_WRONG_CODES = 5
"""Wrong codes one account may send per ``WRONG_CODE_WINDOW`` before it must wait."""
WRONG_CODE_WINDOW = 3600.0

_SEPARATORS = re.compile(r"[\s\-_.]+")


def normalize_code(text: str) -> str:
    """What the person meant to type: case, spaces and dashes do not matter."""
    return _SEPARATORS.sub("", text).upper()


def _new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(LINK_CODE_LENGTH))


@dataclass(frozen=True, slots=True)
class Account:
    """One sender on one channel, as the journal names it."""

    channel: str
    sender_id: str
    sender_name: str = ""
    via: str = ""
    """How it joined its identity: ``code`` (``/link``) or ``owner`` (CLI, control panel)."""
    linked_at: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return self.channel, self.sender_id

    def describe(self) -> str:
        name = f"{self.sender_name} " if self.sender_name else ""
        return f"{name}({self.channel} {self.sender_id})"


@dataclass(frozen=True, slots=True)
class Identity:
    id: int
    name: str
    created_at: float
    accounts: tuple[Account, ...]


@dataclass(frozen=True, slots=True)
class LinkCode:
    code: str
    channel: str
    sender_id: str
    sender_name: str
    created_at: float
    expires_at: float


class LinkRefusal(StrEnum):
    """Why an account got no new code."""

    TOO_MANY = "too_many"
    """MAX_LINK_CODES codes within CODE_WINDOW."""


class RedeemRefusal(StrEnum):
    """Why ``/link CODE`` linked nothing."""

    RATE_LIMITED = "rate_limited"
    """MAX_WRONG_CODES wrong codes within WRONG_CODE_WINDOW: the code was not looked at."""
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    USED = "used"
    OWN = "own"
    """The code was made by this same account (it goes to the *other* account)."""


@dataclass(frozen=True, slots=True)
class Redeemed:
    """A code that linked two accounts (or found them linked already)."""

    identity: Identity
    other: Account
    """The account that made the code."""
    already: bool = False


_ACCOUNT_COLUMNS = "channel, sender_id, sender_name, via, linked_at"


class IdentityStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # ---- reading ---------------------------------------------------------------------------
    async def accounts_of(self, channel: str, sender_id: str) -> list[Account]:
        """Every account of the person behind (channel, sender): the linked ones, or this
        account alone when it was never linked. The account itself comes first."""
        rows = await self.db.fetchall(
            f"SELECT {', '.join('b.' + c for c in _ACCOUNT_COLUMNS.split(', '))}"
            " FROM identity_accounts a JOIN identity_accounts b ON b.identity_id=a.identity_id"
            " WHERE a.channel=? AND a.sender_id=? ORDER BY b.linked_at, b.channel, b.sender_id",
            (channel, sender_id))
        accounts = [Account(*r) for r in rows]
        if not accounts:
            return [Account(channel, sender_id)]
        accounts.sort(key=lambda a: a.key != (channel, sender_id))
        return accounts

    async def identity_of(self, channel: str, sender_id: str) -> Identity | None:
        row = await self.db.fetchone(
            "SELECT identity_id FROM identity_accounts WHERE channel=? AND sender_id=?",
            (channel, sender_id))
        return await self.get(row[0]) if row is not None else None

    async def get(self, identity_id: int) -> Identity | None:
        row = await self.db.fetchone("SELECT id, name, created_at FROM identities WHERE id=?",
                                     (identity_id,))
        if row is None:
            return None
        accounts = await self.db.fetchall(
            f"SELECT {_ACCOUNT_COLUMNS} FROM identity_accounts WHERE identity_id=?"
            " ORDER BY linked_at, channel, sender_id", (identity_id,))
        return Identity(row["id"], row["name"], row["created_at"],
                        tuple(Account(*a) for a in accounts))

    async def list_all(self) -> list[Identity]:
        """Every identity with its accounts, the most recently created first."""
        rows = await self.db.fetchall(
            "SELECT i.id, i.name, i.created_at, a.channel, a.sender_id, a.sender_name, a.via,"
            " a.linked_at FROM identities i JOIN identity_accounts a ON a.identity_id=i.id"
            " ORDER BY i.created_at DESC, i.id DESC, a.linked_at, a.channel, a.sender_id")
        found: dict[int, Identity] = {}
        for r in rows:
            account = Account(r["channel"], r["sender_id"], r["sender_name"], r["via"],
                              r["linked_at"])
            known = found.get(r["id"])
            found[r["id"]] = Identity(r["id"], r["name"], r["created_at"],
                                      (*known.accounts, account) if known else (account,))
        return list(found.values())

    # ---- codes -----------------------------------------------------------------------------
    async def request_code(self, channel: str, sender_id: str, sender_name: str,
                           now: float | None = None) -> LinkCode | LinkRefusal:
        """The account's pending code (reused) or a new one, or why there is none."""
        now = time.time() if now is None else now

        def op(conn: sqlite3.Connection) -> LinkCode | LinkRefusal:
            conn.execute("DELETE FROM link_codes WHERE created_at < ?", (now - CODE_WINDOW,))
            conn.execute("DELETE FROM link_failures WHERE ts < ?", (now - WRONG_CODE_WINDOW,))
            pending = conn.execute(
                "SELECT code, channel, sender_id, sender_name, created_at, expires_at"
                " FROM link_codes WHERE channel=? AND sender_id=? AND used_at IS NULL"
                " AND expires_at > ? ORDER BY created_at DESC LIMIT 1",
                (channel, sender_id, now)).fetchone()
            if pending is not None:
                return LinkCode(*pending)
            (made,) = conn.execute(
                "SELECT COUNT(*) FROM link_codes WHERE channel=? AND sender_id=?",
                (channel, sender_id)).fetchone()
            if made >= MAX_LINK_CODES:
                return LinkRefusal.TOO_MANY
            code = LinkCode(_new_code(), channel, sender_id, sender_name, now,
                            now + LINK_CODE_TTL)
            conn.execute(
                "INSERT INTO link_codes (code, channel, sender_id, sender_name, created_at,"
                " expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (code.code, channel, sender_id, sender_name, now, code.expires_at))
            return code

        result: LinkCode | LinkRefusal = await self.db.write(op)
        return result

    async def redeem(self, code: str, channel: str, sender_id: str, sender_name: str,
                     now: float | None = None) -> Redeemed | RedeemRefusal:
        """Link this account with the one that made ``code``; a code works once, and every
        refusal but RATE_LIMITED counts as a wrong code of this account."""
        now = time.time() if now is None else now
        code = normalize_code(code)

        def op(conn: sqlite3.Connection) -> tuple[int, Account, bool] | RedeemRefusal:
            conn.execute("DELETE FROM link_failures WHERE ts < ?", (now - WRONG_CODE_WINDOW,))
            (wrong,) = conn.execute(
                "SELECT COUNT(*) FROM link_failures WHERE channel=? AND sender_id=? AND ts > ?",
                (channel, sender_id, now - WRONG_CODE_WINDOW)).fetchone()
            if wrong >= MAX_WRONG_CODES:
                return RedeemRefusal.RATE_LIMITED
            row = conn.execute(
                "SELECT channel, sender_id, sender_name, expires_at, used_at FROM link_codes"
                " WHERE code=?", (code,)).fetchone()
            refusal = _refusal(row, channel, sender_id, now)
            if refusal is not None:
                conn.execute("INSERT INTO link_failures (channel, sender_id, ts)"
                             " VALUES (?, ?, ?)", (channel, sender_id, now))
                return refusal
            conn.execute("UPDATE link_codes SET used_at=?, used_by=? WHERE code=?",
                         (now, f"{channel}:{sender_id}", code))
            other = Account(row[0], row[1], row[2])
            mine = _identity_id(conn, channel, sender_id)
            already = mine is not None and mine == _identity_id(conn, *other.key)
            identity_id = _link(conn, other, Account(channel, sender_id, sender_name), "code",
                                now)
            return identity_id, other, already

        result: tuple[int, Account, bool] | RedeemRefusal = await self.db.write(op)
        if isinstance(result, RedeemRefusal):
            return result
        identity_id, other, already = result
        identity = await self.get(identity_id)
        assert identity is not None
        return Redeemed(identity, other, already)

    async def void_code(self, code: str, now: float | None = None) -> bool:
        """Make a pending code useless (it was shown where others could read it)."""
        now = time.time() if now is None else now

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE link_codes SET used_at=?, used_by='void' WHERE code=?"
                " AND used_at IS NULL AND expires_at > ?", (now, normalize_code(code), now))
            return cursor.rowcount == 1

        voided: bool = await self.db.write(op)
        return voided

    # ---- owner's links ---------------------------------------------------------------------
    async def known_account(self, channel: str, sender_id: str) -> Account:
        """The account with the name the journal last saw for it ("" for one never seen)."""
        row = await self.db.fetchone(
            "SELECT sender_name FROM messages WHERE direction='in' AND channel=?"
            " AND sender_id=? ORDER BY id DESC LIMIT 1", (channel, sender_id))
        return Account(channel, sender_id, row["sender_name"] if row is not None else "")

    async def link(self, first: Account, second: Account, now: float | None = None
                   ) -> Identity:
        """Join two accounts (and everything already linked to either) into one identity."""
        if first.key == second.key:
            raise ValueError("an account cannot be linked to itself")
        now = time.time() if now is None else now

        def op(conn: sqlite3.Connection) -> int:
            return _link(conn, first, second, "owner", now)

        identity_id: int = await self.db.write(op)
        identity = await self.get(identity_id)
        assert identity is not None
        return identity

    async def unlink(self, channel: str, sender_id: str) -> bool:
        """The account leaves its identity (its notes stay with it); an identity left with
        one account is dissolved. False when the account was not linked."""
        def op(conn: sqlite3.Connection) -> bool:
            identity_id = _identity_id(conn, channel, sender_id)
            if identity_id is None:
                return False
            conn.execute("DELETE FROM identity_accounts WHERE channel=? AND sender_id=?",
                         (channel, sender_id))
            (left,) = conn.execute("SELECT COUNT(*) FROM identity_accounts WHERE identity_id=?",
                                   (identity_id,)).fetchone()
            if left < 2:
                conn.execute("DELETE FROM identity_accounts WHERE identity_id=?",
                             (identity_id,))
                conn.execute("DELETE FROM identities WHERE id=?", (identity_id,))
            return True

        unlinked: bool = await self.db.write(op)
        return unlinked

    # ---- one person's logs -----------------------------------------------------------------
    async def conversations_of(self, accounts: Sequence[tuple[str, str]], limit: int = 100
                               ) -> list[sqlite3.Row]:
        """The conversations the accounts wrote in, the latest first: channel, chat, thread,
        is_group, messages (theirs), last_ts."""
        where, params = _senders(accounts)
        rows: list[sqlite3.Row] = await self.db.fetchall(
            "SELECT channel, chat, thread, conv, COUNT(*) AS messages, MAX(created_at) AS"
            " last_ts, MAX(COALESCE(json_extract(meta, '$.is_group'), 0)) AS is_group"
            f" FROM messages WHERE direction='in' AND {where}"
            " GROUP BY conv ORDER BY last_ts DESC LIMIT ?", (*params, limit))
        return rows

    async def traffic_of(self, accounts: Sequence[tuple[str, str]], limit: int = 200
                         ) -> list[sqlite3.Row]:
        """The accounts' newest ``limit`` messages and the replies to them, newest first (in
        a group, only theirs: the others' messages are not this person's)."""
        where, params = _senders(accounts)
        rows: list[sqlite3.Row] = await self.db.fetchall(
            "WITH mine AS (SELECT id FROM messages"
            f" WHERE direction='in' AND {where} ORDER BY id DESC LIMIT ?)"
            " SELECT m.id, m.created_at, m.updated_at, m.direction, m.channel, m.chat,"
            " m.thread, m.sender_id, m.sender_name, m.text, m.status, m.reply_to, m.error,"
            " q.created_at AS asked_at FROM messages m LEFT JOIN messages q ON q.id=m.reply_to"
            " WHERE m.id IN (SELECT id FROM mine)"
            " OR (m.direction='out' AND m.reply_to IN (SELECT id FROM mine))"
            " ORDER BY m.id DESC", (*params, limit))
        return rows

    # ---- direct-message conversations ------------------------------------------------------
    async def remember_dm(self, conv: str, channel: str, sender_id: str) -> None:
        """Note that ``conv`` is a direct conversation with (channel, sender): its summary is
        then part of that person's memory in their other direct conversations."""
        await self.db.execute(
            "INSERT INTO dm_conversations (conv, channel, sender_id) VALUES (?, ?, ?)"
            " ON CONFLICT DO NOTHING", (conv, channel, sender_id))


def _senders(accounts: Sequence[tuple[str, str]]) -> tuple[str, tuple[str, ...]]:
    if not accounts:
        return "0", ()
    rows = ", ".join("(?, ?)" for _ in accounts)
    return (f"(channel, sender_id) IN (VALUES {rows})",
            tuple(v for account in accounts for v in account))


def _refusal(row: sqlite3.Row | tuple[object, ...] | None, channel: str, sender_id: str,
             now: float) -> RedeemRefusal | None:
    if row is None:
        return RedeemRefusal.UNKNOWN
    if (row[0], row[1]) == (channel, sender_id):
        return RedeemRefusal.OWN
    if row[4] is not None:
        return RedeemRefusal.USED
    if float(row[3]) <= now:  # type: ignore[arg-type]
        return RedeemRefusal.EXPIRED
    return None


def _identity_id(conn: sqlite3.Connection, channel: str, sender_id: str) -> int | None:
    row = conn.execute("SELECT identity_id FROM identity_accounts WHERE channel=?"
                       " AND sender_id=?", (channel, sender_id)).fetchone()
    return int(row[0]) if row is not None else None


def _link(conn: sqlite3.Connection, first: Account, second: Account, via: str,
          now: float) -> int:
    """The identity both accounts share afterwards; two identities merge into the older."""
    ids = [i for i in (_identity_id(conn, *first.key), _identity_id(conn, *second.key))
           if i is not None]
    if ids:
        keep = min(ids)
    else:
        name = first.sender_name or second.sender_name
        cursor = conn.execute("INSERT INTO identities (name, created_at) VALUES (?, ?)",
                              (name, now))
        assert cursor.lastrowid is not None
        keep = cursor.lastrowid
    for gone in {i for i in ids if i != keep}:
        conn.execute("UPDATE identity_accounts SET identity_id=? WHERE identity_id=?",
                     (keep, gone))
        conn.execute("DELETE FROM identities WHERE id=?", (gone,))
    for account in (first, second):
        conn.execute(
            "INSERT INTO identity_accounts (channel, sender_id, sender_name, identity_id, via,"
            " linked_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel, sender_id) DO UPDATE"
            " SET sender_name=CASE WHEN excluded.sender_name != '' THEN excluded.sender_name"
            " ELSE identity_accounts.sender_name END",
            (*account.key, account.sender_name, keep, via, now))
    return keep
