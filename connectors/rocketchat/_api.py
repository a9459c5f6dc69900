"""Rocket.Chat's REST API through the kit's ChannelHttp: the outcome mapping and history.

``rocketchat_API`` (the PyPI client) is synchronous on ``requests`` and raises one
exception for a refused connection and a lost answer alike, so the REST calls go through
``ChannelHttp`` (aiohttp): 5xx retryable, a lost answer to a POST ``DeliveryUncertain``,
redirects refused. Rocket.Chat's own error answers (``{"success": false, "error":
"... [errorType]", "errorType": ...}``, mostly HTTP 400) are sorted here: its rate limiter
answers 429 with ``X-RateLimit-Reset`` (epoch milliseconds, no Retry-After) and "You must
wait N seconds" in the text; a room the bot is not in, an over-long message and a bad
token each get a line that says what to fix.
"""

from __future__ import annotations

import email.utils
import re
import ssl
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from connectors.rocketchat._parse import RoomInfo, parse_time
from pyclaw_app.channels import ChannelHttp, HttpAnswer
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError

__all__ = ["HISTORY", "RoomGone", "advice", "fetch_history", "iso", "make_http",
           "rate_limit_wait", "server_clock", "tls_session"]

HISTORY = {"d": "im.history", "c": "channels.history", "p": "groups.history"}
"""The history endpoint of each room kind."""
PAGE = 100
_WAIT = re.compile(r"wait (\d+(?:\.\d+)?) seconds")
_CODE = re.compile(r"\[([\w.-]+)\]\s*$")
_ROOM_ERRORS = frozenset({"error-invalid-room", "error-room-not-found", "invalid-channel",
                          "error-not-allowed", "error-room-archived",
                          "not-allowed"})


class RoomGone(FatalConnectorError):
    """The room does not exist, or the bot may not read or write it (not a member)."""


def iso(ms: int) -> str:
    """Milliseconds as the ISO string the history endpoints take (``...T12:50:51.555Z``)."""
    when = datetime.fromtimestamp(ms / 1000, UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def server_clock(date: str | None, fallback: int) -> int:
    """The server's time (ms) from an answer's ``Date`` header, one second early (the
    header counts whole seconds); ``fallback`` without a readable one."""
    if not date:
        return fallback
    try:
        when = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return fallback
    if when.tzinfo is None:
        return fallback
    return int(when.timestamp() * 1000) - 1000


def rate_limit_wait(headers: Mapping[str, str], data: object,
                    now: float | None = None) -> float | None:
    """Seconds until the rate limiter lets the call through: ``X-RateLimit-Reset`` (epoch
    ms), else the "You must wait N seconds" of the error text."""
    reset = headers.get("X-RateLimit-Reset") or headers.get("x-ratelimit-reset")
    if reset:
        try:
            left = float(reset) / 1000 - (time.time() if now is None else now)
        except ValueError:
            left = None
        if left is not None and left == left:
            return max(0.0, min(left, 3600.0))
    text = data.get("error") if isinstance(data, dict) else None
    found = _WAIT.search(text) if isinstance(text, str) else None
    return float(found.group(1)) if found else None


def _error_type(data: object) -> str:
    if not isinstance(data, dict):
        return ""
    kind = data.get("errorType")
    if isinstance(kind, str) and kind:
        return kind
    error = data.get("error")
    if isinstance(error, str):
        found = _CODE.search(error)
        return found.group(1) if found else error if re.fullmatch(r"[\w-]+", error) else ""
    return ""


def _describe(data: Any) -> str | None:
    if isinstance(data, dict):
        for key in ("error", "message"):
            if isinstance(data.get(key), str):
                return data[key]
    return None


def _classify(answer: HttpAnswer, what: str, detail: str) -> ConnectorError | None:
    kind = _error_type(answer.data)
    if answer.status == 429 or kind == "error-too-many-requests":
        wait = rate_limit_wait(answer.headers, answer.data)
        after = f": retry after {wait:g}s" if wait is not None else ""
        return RetryableError(f"Rocket.Chat rate limit{after} ({what}: {detail})",
                              retry_after=wait)
    if answer.status == 401:
        return FatalConnectorError(f"Rocket.Chat refused the bot's credentials ({what}: "
                                   f"{detail}); check auth_token and user_id (a personal "
                                   "access token and the user id shown with it)")
    if kind == "error-message-size-exceeded":
        return FatalConnectorError(f"{what}: {detail}; set max_text to the server's "
                                   "Message_MaxAllowedSize")
    if kind in _ROOM_ERRORS and answer.status < 500:
        return RoomGone(f"{what}: {detail}; the room does not exist or the bot is not a "
                        "member of it (add the bot user to the room)")
    return None


def make_http(server_url: str, user_id: str, token: str,
              session: aiohttp.ClientSession) -> ChannelHttp:
    return ChannelHttp(f"{server_url}/api/v1", platform="Rocket.Chat",
                       auth=lambda: {"X-Auth-Token": token, "X-User-Id": user_id},
                       secrets=[token], describe=_describe, classify=_classify,
                       session=session)


def tls_session(ca_file: str, *, total: float | None,
                traces: Sequence[aiohttp.TraceConfig] = ()) -> aiohttp.ClientSession:
    """A session trusting the system's CAs or ``ca_file``'s, proxies from the environment
    ignored; ``total`` bounds each REST call (None for the long-lived socket)."""
    context = ssl.create_default_context(cafile=ca_file or None)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=context), trust_env=False,
                                 timeout=aiohttp.ClientTimeout(total=total, connect=30.0),
                                 trace_configs=list(traces) or None)


def advice(error: Exception) -> str:
    """The error, with what to do when it is the server's certificate being refused."""
    text = str(error)
    if "certificate" in text.lower():
        return (f"the server's TLS certificate was refused ({text}); if it is self-signed or "
                "from a private CA, set ca_file to that CA's PEM file")
    return text


async def fetch_history(http: ChannelHttp, room: RoomInfo, oldest: int, *,
                        limit: int) -> tuple[list[dict[str, Any]], bool]:
    """The room's messages from ``oldest`` (ms, inclusive) on, oldest first, at most
    ``limit`` (the newest ones); True when there were more. Thread replies included."""
    endpoint = HISTORY[room.kind]
    found: dict[str, dict[str, Any]] = {}
    offset, more = 0, False
    while True:
        page = await http.call("GET", f"/{endpoint}", params={
            "roomId": room.rid, "oldest": iso(oldest), "inclusive": "true",
            "count": str(PAGE), "offset": str(offset), "showThreadMessages": "true"})
        data = page.data if isinstance(page.data, dict) else {}
        messages = [m for m in data.get("messages") or [] if isinstance(m, dict)]
        for message in messages:
            if isinstance(message.get("_id"), str):
                found.setdefault(message["_id"], message)
        if len(messages) < PAGE:
            break
        if len(found) >= limit:
            more = True
            break
        offset += len(messages)
    ordered = sorted(found.values(), key=lambda m: parse_time(m.get("ts")) or 0)
    return ordered[-limit:], more or len(ordered) > limit
