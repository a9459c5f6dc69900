"""XMPP errors (RFC 6120 8.3, XEP-0045) in pyclaw's words, in one place.

An error's ``type`` says what retrying can do: ``wait`` is transient (a rate limiter, a
busy server), ``cancel``, ``modify`` and ``auth`` are not. XMPP errors carry no delay, so
a ``wait`` is retried after :data:`WAIT_RETRY` seconds (the gateway's backoff grows it).
"""

from __future__ import annotations

from xml.etree.ElementTree import Element

from connectors.xmpp._parse import Bounce
from pyclaw_app.errors import ConnectorError, FatalConnectorError, RetryableError

__all__ = ["WAIT_RETRY", "bounce_error", "join_error_hint", "left_room_reason"]

WAIT_RETRY = 2.0
_MUC_USER = "http://jabber.org/protocol/muc#user"

_HINTS = {
    "not-acceptable": " (in a room: the bot is not an occupant of it)",
    "forbidden": " (the bot may not write there: banned, or without voice)",
    "item-not-found": " (no such user or room)",
    "service-unavailable": " (no such user, or it takes no messages from strangers)",
    "remote-server-not-found": " (that domain cannot be reached)",
    "policy-violation": " (a server or room limit, e.g. a rate limit or message size)",
}
_JOIN_HINTS = {
    "conflict": ": another occupant has that nick; set nick to a free one",
    "registration-required": ": the room is members-only; an owner must add the bot's JID",
    "forbidden": ": the bot's JID is banned from the room",
    "not-authorized": ": the room has a password (not supported)",
    "item-not-found": ": the room does not exist and this service does not let the bot "
                      "create it",
    "not-allowed": ": this service does not let the bot create the room",
    "service-unavailable": ": the room is full",
}
_LEFT = {
    "301": "banned from the room",
    "307": "kicked from the room",
    "321": "removed because its affiliation changed",
    "322": "removed because the room became members-only",
    "332": "removed because the room's service is shutting down",
}


def bounce_error(bounce: Bounce, what: str) -> ConnectorError:
    """The error message that refused one of our messages, as Retryable or Fatal."""
    detail = (f"{what}: refused with {bounce.type}/{bounce.condition}"
              f"{f' ({bounce.text})' if bounce.text else ''}")
    if bounce.type == "wait":
        return RetryableError(detail, retry_after=WAIT_RETRY)
    return FatalConnectorError(detail + _HINTS.get(bounce.condition, ""))


def join_error_hint(condition: str) -> str:
    return _JOIN_HINTS.get(condition, "")


def left_room_reason(presence: Element) -> str:
    """Why a room sent our occupant ``unavailable`` (XEP-0045 status codes, destroy)."""
    x = presence.find(f"{{{_MUC_USER}}}x")
    if x is None:
        return "the room sent us away without saying why"
    if x.find(f"{{{_MUC_USER}}}destroy") is not None:
        return "the room was destroyed"
    reason = (x.findtext(f"{{{_MUC_USER}}}item/{{{_MUC_USER}}}reason") or "").strip()
    for status in x.findall(f"{{{_MUC_USER}}}status"):
        if status.get("code") in _LEFT:
            return _LEFT[str(status.get("code"))] + (f" ({reason})" if reason else "")
    return "the room ended our presence" + (f" ({reason})" if reason else "")
