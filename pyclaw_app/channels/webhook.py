"""Webhook requests as a connector sees them, and the checks every platform's webhook needs.

The shared HTTP server turns an aiohttp request into a :class:`WebhookRequest`
(method, path, query, case-insensitive headers, raw body, the sender's address)
so connectors never import aiohttp. Signatures are verified over the raw bytes,
in constant time, before anything is parsed; platforms that sign a timestamp get
a replay window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "REPLAY_WINDOW",
    "WebhookRejected",
    "WebhookRequest",
    "WebhookResponse",
    "fresh_timestamp",
    "hmac_digest",
    "same_secret",
    "verify_hmac",
]

REPLAY_WINDOW = 300.0
"""Seconds a signed timestamp may be off from our clock (Slack and others use five minutes)."""


class _Headers(Mapping[str, str]):
    """Case-insensitive, read-only header view (HTTP header names are case-insensitive)."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, str]) -> None:
        self._items = {k.lower(): v for k, v in items.items()}

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    method: str
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    path: str = ""
    remote: str = ""
    """The sending peer's address as the server saw it (a reverse proxy's, behind one);
    refusals are counted per address. Empty when the transport has none."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", _Headers(self.headers))

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def json(self) -> Any:
        """The body as JSON; a body that is not JSON is the sender's error (400)."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise WebhookRejected(400, "body is not JSON", level="error") from None
        except RecursionError:  # a 100,000-deep array behind a valid signature
            raise WebhookRejected(400, "body nests too deeply to be read",
                                  level="error") from None


@dataclass(frozen=True, slots=True)
class WebhookResponse:
    status: int = 200
    body: str | bytes = ""
    content_type: str = "text/plain"
    stream: AsyncGenerator[bytes, None] | None = None
    """Sent after ``body`` as it is produced (server-sent events), for channels whose reply
    is the HTTP response itself; the server flushes each chunk."""


class WebhookRejected(Exception):
    """A request refused before it reached the journal; ``message`` goes to the channel log
    (never the payload) and, with ``status``, back to the sender."""

    def __init__(self, status: int, message: str, *, level: str = "warning") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.level = level


def hmac_digest(secret: str | bytes, message: bytes, *, algorithm: str = "sha256") -> bytes:
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, message, getattr(hashlib, algorithm)).digest()


def verify_hmac(secret: str | bytes, message: bytes, signature: str | None, *,
                encoding: str = "hex", prefix: str = "", algorithm: str = "sha256") -> bool:
    """Does ``signature`` (``prefix`` + hex or base64 of the HMAC of ``message``) match?

    Compared in constant time; a missing or malformed signature is simply False.
    """
    if not signature or not signature.startswith(prefix) or not secret:
        return False
    digest = hmac_digest(secret, message, algorithm=algorithm)
    if encoding == "hex":
        expected = digest.hex()
    elif encoding == "base64":
        expected = base64.b64encode(digest).decode()
    else:
        raise ValueError(f"unknown signature encoding {encoding!r}")
    return hmac.compare_digest(signature[len(prefix):].encode(), expected.encode())


def same_secret(given: str | None, expected: str) -> bool:
    """A shared-secret header (Telegram's secret token) compared in constant time."""
    return bool(given) and bool(expected) and hmac.compare_digest(
        given.encode(), expected.encode())  # type: ignore[union-attr]


def fresh_timestamp(value: str | None, *, window: float = REPLAY_WINDOW,
                    now: float | None = None) -> bool:
    """A signed Unix timestamp within ``window`` seconds of now: an old one is a replay."""
    if value is None or not value.strip().isdigit():
        return False
    current = time.time() if now is None else now
    return abs(current - int(value)) <= window
