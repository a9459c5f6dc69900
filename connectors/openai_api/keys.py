"""Bearer keys for the OpenAI-compatible API: one per client, issued by the owner.

A key is 32 random bytes; only its SHA-256 is stored (in the channel's ``ctx.state``,
so the database never holds a usable key). A slow password hash would add nothing:
the key has 256 bits of entropy, which no dictionary reaches. The CLI issues and
revokes keys beside a running gateway (both share the SQLite file); the connector
reads the table on each request, so a revoked key stops working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from typing import Any

from pyclaw_app.channels import StateStore

__all__ = ["CLIENTS_KEY", "PREFIX", "client_for", "clients", "issue", "revoke"]

CLIENTS_KEY = "clients"
"""``ctx.state`` key: {client name: {"sha256": hex digest, "created": unix time}}."""
PREFIX = "pck-"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def clients(state: StateStore) -> dict[str, dict[str, Any]]:
    table = await state.get(CLIENTS_KEY, {})
    return table if isinstance(table, dict) else {}


async def issue(state: StateStore, client: str) -> str:
    """A new key for ``client`` (replacing its old one); returned once, never stored."""
    if not _NAME.fullmatch(client):
        raise ValueError("a client name is 1-64 letters, digits or _.@- (it names the "
                         "conversation in logs)")
    key = PREFIX + secrets.token_urlsafe(32)
    table = await clients(state)
    table[client] = {"sha256": _digest(key), "created": int(time.time())}
    await state.set(CLIENTS_KEY, table)
    return key


async def revoke(state: StateStore, client: str) -> bool:
    table = await clients(state)
    if table.pop(client, None) is None:
        return False
    await state.set(CLIENTS_KEY, table)
    return True


async def client_for(state: StateStore, key: str) -> str | None:
    """The client a presented key was issued to, or None."""
    if not key.startswith(PREFIX):
        return None
    digest = _digest(key)
    for client, entry in (await clients(state)).items():
        stored = entry.get("sha256") if isinstance(entry, dict) else None
        if isinstance(stored, str) and hmac.compare_digest(stored, digest):
            return client
    return None
